"""Short version of scripts/soak_resume.py: `lumicap train` (IAT, 16-pixel patches, MFR with a tiny random
teacher, EMA, mixup) is interrupted six times, once by each kind of stop: SIGKILL inside a checkpoint write,
during start-up and between checkpoints; SIGTERM; SIGINT; --max-iters. Each time it is resumed with
`lumicap train --resume`; it must end bit-identical to an uninterrupted run, with the same validations,
best.pt, selection and test figures."""

from __future__ import annotations

import os
import signal

import pytest

from reliability.soak import SoakSettings, run_soak

pytestmark = pytest.mark.skipif(not hasattr(os, "killpg") or not hasattr(signal, "SIGKILL"), reason="needs POSIX signals")

KINDS = ("mid-write", "sigterm", "startup", "max-iters", "between", "sigint")


def test_stopped_and_resumed_training_equals_uninterrupted(tmp_path):
    settings = SoakSettings(
        work_dir=tmp_path,
        stops=len(KINDS),
        iterations=30,
        ckpt_every=2,
        val_every=4,
        patch_size=16,
        image_size=24,
        train_pairs=4,
        test_pairs=1,
        kind_sequence=KINDS,
        write_chunks=4,
        write_delay_ms=50.0,  # a 200 ms write: the kill lands inside it even on a busy machine
        process_timeout_s=600,
    )
    report = run_soak(settings, progress=lambda line: None)

    assert not report.failed_invocations, report.text()
    assert report.stops == len(KINDS), report.text()
    assert report.stops_by_kind == {kind: 1 for kind in KINDS}
    assert report.mid_write_confirmed >= 1, report.text()  # a kill really landed inside a checkpoint write
    assert report.clean_exits == 3, report.text()  # SIGTERM, SIGINT and --max-iters end the process cleanly
    assert report.resumes + report.fresh_restarts == report.invocations - 1 >= len(KINDS)
    assert report.checkpoints_checked >= 2 and not report.corrupt_checkpoints, report.text()
    assert not report.unreadable_records and report.unreadable_log_lines == 0
    assert report.partial_writes_left and not report.stale_temp_files  # left by the kill, removed on resume
    assert report.final_iteration == report.reference_iteration == 30
    assert report.validated == report.reference_validated == [4, 8, 12, 16, 20, 24, 28, 30], report.text()
    assert report.best == report.reference_best and report.selected == report.reference_selected, report.text()
    assert report.max_weight_difference == 0.0 and report.identical, report.text()
    assert report.test_metrics and report.test_metrics == report.reference_test_metrics
