"""What `lumicap serve` keeps per upload (issue 25, items 2, 10 and 13): reference photos wait in the same line
as photos and count against the same limit, one per photo at a time, removed once measured; JPEG downloads
are encoded on request and not kept; an upload name of 130 emoji (480 bytes, over the file system's 255) is
cut to a name the disk takes instead of failing with HTTP 500."""

from __future__ import annotations

import json
import time
import urllib.parse

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("starlette", reason="lumicap serve needs the serve extra (starlette, uvicorn)")
pytest.importorskip("uvicorn", reason="lumicap serve needs the serve extra (starlette, uvicorn)")

from _serve_support import (  # noqa: E402
    GATE,
    register_gated,
    register_tiny,
    request,
    save_gated_safetensors,
    save_tiny_safetensors,
    serve_in_thread,
    upload,
    wait_for,
)
from lumicap.serve.jobs import safe_name  # noqa: E402

MAX_NAME_BYTES = 255 - 75  # what the file system takes, less the longest prefix/suffix a job's files add

pytestmark = pytest.mark.usefixtures("one_thread")


def _png(path, seed=0, size=(24, 32)) -> bytes:
    Image.fromarray(np.random.default_rng(seed).integers(0, 80, size=(*size, 3), dtype=np.uint8)).save(path)
    return path.read_bytes()


def _post_reference(base, job_id, name, data):
    status, _, body = request(f"{base}/api/jobs/{job_id}/reference?{urllib.parse.urlencode({'name': name})}", data)
    return status, json.loads(body)


def _wait_running(served, job_id):
    deadline = time.monotonic() + 30
    while served.jobs.get(job_id).state != "running":
        assert time.monotonic() < deadline, "the job never started"
        time.sleep(0.05)


def test_reference_uploads_count_against_the_queue_limit(tmp_path, monkeypatch):
    register_gated(monkeypatch)
    model = save_gated_safetensors(tmp_path / "model")
    GATE.set()
    photo = _png(tmp_path / "p.png")
    with serve_in_thread([model], tmp_path / "work", max_waiting=1) as served:
        _, done = upload(served.url, "done.png", photo)
        assert wait_for(served.url, done["id"])["state"] == "done"
        GATE.clear()  # the next photo keeps the worker busy
        _, busy = upload(served.url, "busy.png", photo)
        _wait_running(served, busy["id"])
        status, waiting = upload(served.url, "waiting.png", photo)
        assert status == 202  # the one place in line
        for _ in range(3):  # before: every one accepted and kept on disk, the line past its limit
            status, answer = _post_reference(served.url, done["id"], "ref.png", photo)
            assert status == 503 and "waiting" in answer["error"], answer
        assert not (served.jobs.get(done["id"]).folder / "reference").exists()
        assert len(served.jobs._waiting) == 1
        GATE.set()


def test_one_reference_per_photo_at_a_time_and_its_file_goes_once_measured(tmp_path, monkeypatch):
    register_gated(monkeypatch)
    model = save_gated_safetensors(tmp_path / "model")
    GATE.set()
    photo = _png(tmp_path / "p.png")
    with serve_in_thread([model], tmp_path / "work") as served:
        _, done = upload(served.url, "done.png", photo)
        wait_for(served.url, done["id"])
        GATE.clear()
        _, busy = upload(served.url, "busy.png", photo)
        _wait_running(served, busy["id"])
        status, _ = _post_reference(served.url, done["id"], "ref.png", photo)
        assert status == 202
        for _ in range(3):
            status, answer = _post_reference(served.url, done["id"], "again.png", photo)
            assert status == 409 and "already being measured" in answer["error"], answer
        assert len(list((served.jobs.get(done["id"]).folder / "reference").iterdir())) == 1
        GATE.set()
        measured = wait_for(served.url, done["id"], reference=True)
        assert measured["reference"]["state"] == "done" and measured["reference"]["psnr"] > 0
        assert list((served.jobs.get(done["id"]).folder / "reference").iterdir()) == []
        status, _ = _post_reference(served.url, done["id"], "next.png", photo)  # a new one once measured
        assert status == 202


def test_jpeg_downloads_are_not_kept(tmp_path, monkeypatch):
    register_tiny(monkeypatch)
    model = save_tiny_safetensors(tmp_path / "model")
    with serve_in_thread([model], tmp_path / "work") as served:
        _, answer = upload(served.url, "dark.png", _png(tmp_path / "dark.png"))
        wait_for(served.url, answer["id"])
        folder = served.jobs.get(answer["id"]).folder
        before = sorted(p.relative_to(folder) for p in folder.rglob("*"))
        bodies = {}
        for quality in range(40, 52):
            status, headers, body = request(f"{served.url}/api/jobs/{answer['id']}/download?format=jpg&quality={quality}")
            assert status == 200 and headers["content-type"] == "image/jpeg" and body[:2] == b"\xff\xd8"
            # the name lumicap enhance gives it, with the model's name (not the default: issue 27's page)
            assert headers["content-disposition"] == 'attachment; filename="dark-tiny.jpg"'
            bodies[quality] = body
        assert len(set(bodies.values())) == len(bodies)  # each quality its own encoding
        assert sorted(p.relative_to(folder) for p in folder.rglob("*")) == before  # before: one file per quality


def test_upload_named_with_130_emoji_is_enhanced_under_a_shorter_name(tmp_path, monkeypatch):
    register_tiny(monkeypatch)
    model = save_tiny_safetensors(tmp_path / "model")
    name = "\U0001f319" * 130 + ".png"  # 520 bytes of UTF-8
    with serve_in_thread([model], tmp_path / "work") as served:
        status, answer = upload(served.url, name, _png(tmp_path / "dark.png"))
        assert status == 202, answer  # before: ENAMETOOLONG, HTTP 500
        done = wait_for(served.url, answer["id"])
        assert done["state"] == "done" and done["name"].endswith(".png")
        assert len(done["name"].encode()) <= MAX_NAME_BYTES
        status, headers, _ = request(f"{served.url}/api/jobs/{answer['id']}/download?format=jpg&quality=90")
        assert status == 200 and urllib.parse.unquote(headers["content-disposition"]).endswith(".jpg")
        status, reference = _post_reference(served.url, answer["id"], name, _png(tmp_path / "dark.png"))
        assert status == 202, reference
        assert wait_for(served.url, answer["id"], reference=True)["reference"]["state"] == "done"


@pytest.mark.parametrize("raw", ["\U0001f319" * 130 + ".png", "\u6f22" * 119 + ".jpeg", "a" * 300, "x." + "\U0001f319" * 60],
                         ids=["130-emoji", "119-cjk", "300-ascii", "emoji-suffix"])
def test_safe_names_fit_in_the_byte_limit(raw):
    name = safe_name(raw)
    assert 0 < len(name.encode()) <= MAX_NAME_BYTES and not name.startswith(".")
