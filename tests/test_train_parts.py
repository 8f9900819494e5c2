"""Engine parts: schedules (vs. their published formulas), EMA, atomic checkpoints, RNG state, sampler."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch

from lumicap.config import SchedulerConfig
from lumicap.engine import checkpoint as ckpt
from lumicap.engine.data import ResumableSampler
from lumicap.engine.ema import ModelEMA
from lumicap.engine.schedulers import StageScheduler, lr_at
from lumicap.errors import LumicapError


def test_cyclic_cosine_restart_follows_basicsr_formula():
    # Retinexformer: base 2e-4, periods [46000, 104000], eta_mins [3e-4, 1e-6]; restart weights 1.
    cfg = SchedulerConfig(name="cosine_restart_cyclic", periods=[46000, 104000], restart_weights=[1, 1], eta_mins=[3e-4, 1e-6])

    def basicsr(t):  # written out from the BasicSR docstring: cycle i covers (C[i-1], C[i]]
        cumulative = [46000, 150000]
        i = next(k for k, c in enumerate(cumulative) if t <= c)
        start = 0 if i == 0 else cumulative[i - 1]
        eta = [3e-4, 1e-6][i]
        period = [46000, 104000][i]
        return eta + 0.5 * (2e-4 - eta) * (1 + math.cos(math.pi * (t - start) / period))

    for t in (0, 1, 23000, 45999, 46000, 46001, 100000, 149999, 150000):
        assert lr_at(cfg, 2e-4, t, 150000) == pytest.approx(basicsr(t), rel=1e-12)
    assert lr_at(cfg, 2e-4, 0, 150000) == pytest.approx(2e-4)
    assert lr_at(cfg, 2e-4, 46000, 150000) == pytest.approx(3e-4)  # the first cycle rises to eta_min
    assert lr_at(cfg, 2e-4, 46001, 150000) == pytest.approx(2e-4, rel=1e-6)  # restart
    assert lr_at(cfg, 2e-4, 150000, 150000) == pytest.approx(1e-6)


def test_multistep_and_cosine_with_warmup():
    ms = SchedulerConfig(name="multistep", milestones=[10, 20], gamma=0.5)
    assert [lr_at(ms, 1.0, t, 30) for t in (0, 9, 10, 19, 20, 29)] == [1, 1, 0.5, 0.5, 0.25, 0.25]
    cos = SchedulerConfig(name="cosine", warmup_iters=4, eta_min=0.1)
    assert [lr_at(cos, 1.0, t, 14) for t in range(4)] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert lr_at(cos, 1.0, 9, 14) == pytest.approx(0.1 + 0.45 * (1 + math.cos(math.pi * 0.5)))
    assert lr_at(cos, 1.0, 14, 14) == pytest.approx(0.1)
    plain = SchedulerConfig(name="cosine", t_max=10)
    assert lr_at(plain, 1.0, 10, 100) == pytest.approx(0.0) and lr_at(plain, 1.0, 50, 100) == pytest.approx(0.0)


def test_stage_scheduler_sets_rates_and_resumes():
    params = [torch.nn.Parameter(torch.zeros(1))]
    opt = torch.optim.Adam(params, lr=1.0)
    cfg = SchedulerConfig(name="multistep", milestones=[2], gamma=0.1)
    sched = StageScheduler(opt, cfg, 5)
    rates = [opt.param_groups[0]["lr"]]
    for _ in range(3):
        sched.step()
        rates.append(opt.param_groups[0]["lr"])
    assert rates == pytest.approx([1.0, 1.0, 0.1, 0.1])
    fresh_opt = torch.optim.Adam(params, lr=1.0)
    fresh = StageScheduler(fresh_opt, cfg, 5)
    fresh.load_state_dict(sched.state_dict())
    assert fresh_opt.param_groups[0]["lr"] == pytest.approx(0.1)


def test_ema_is_the_exponential_average_of_weights():
    model = torch.nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(0.0)
    ema = ModelEMA(model, decay=0.5)
    for value in (1.0, 2.0):
        with torch.no_grad():
            model.weight.fill_(value)
        ema.update(model)
    # 0 -> 0.5*0 + 0.5*1 = 0.5 -> 0.5*0.5 + 0.5*2 = 1.25
    assert torch.allclose(ema.module.weight, torch.full((1, 2), 1.25))
    assert not any(p.requires_grad for p in ema.module.parameters())
    other = ModelEMA(torch.nn.Linear(2, 1, bias=False), decay=0.9)
    other.load_state_dict(ema.state_dict())
    assert other.decay == 0.5 and other.updates == 2 and torch.equal(other.module.weight, ema.module.weight)


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    ckpt.atomic_save({"format": ckpt.FORMAT, "iteration": 1, "w": torch.ones(3)}, path)

    def crash(obj, fh, *args, **kwargs):
        fh.write(b"partial bytes")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError):
        ckpt.atomic_save({"format": ckpt.FORMAT, "iteration": 2}, path)
    monkeypatch.undo()
    state = ckpt.load_checkpoint(path)
    assert state["iteration"] == 1 and torch.equal(state["w"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temporary file left behind


def test_checkpoint_load_errors_are_one_line(tmp_path):
    with pytest.raises(LumicapError, match="checkpoint not found"):
        ckpt.load_checkpoint(tmp_path / "nope.pt")
    (tmp_path / "broken.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(LumicapError, match="cannot load checkpoint"):
        ckpt.load_checkpoint(tmp_path / "broken.pt")
    torch.save({"model": {}}, tmp_path / "foreign.pt")
    with pytest.raises(LumicapError, match="not a lumicap training checkpoint"):
        ckpt.load_checkpoint(tmp_path / "foreign.pt")


def test_rng_states_survive_a_weights_only_round_trip(tmp_path):
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    np.random.normal()  # leaves a cached gaussian in numpy's legacy state
    ckpt.atomic_save({"format": ckpt.FORMAT, "rng": ckpt.rng_state()}, tmp_path / "r.pt")
    expected = (random.random(), np.random.normal(), torch.rand(3))
    random.seed(9), np.random.seed(9), torch.manual_seed(9)
    ckpt.set_rng_state(ckpt.load_checkpoint(tmp_path / "r.pt")["rng"])
    got = (random.random(), np.random.normal(), torch.rand(3))
    assert got[0] == expected[0] and got[1] == expected[1] and torch.equal(got[2], expected[2])


def test_sampler_order_depends_only_on_seed_and_epoch_and_can_start_midway():
    data = list(range(23))
    a = ResumableSampler(data, num_replicas=1, rank=0, seed=5)
    a.set_epoch(3)
    full = list(a)
    assert sorted(full) == data and full != data
    b = ResumableSampler(data, num_replicas=1, rank=0, seed=5)
    b.set_epoch(3)
    b.start = 8
    assert list(b) == full[8:]
    ranks = [ResumableSampler(data, num_replicas=2, rank=r, seed=5) for r in (0, 1)]
    for s in ranks:
        s.set_epoch(3)
    shards = [list(s) for s in ranks]
    assert not set(shards[0]) & set(shards[1]) and len(shards[0]) == len(shards[1]) == 11
