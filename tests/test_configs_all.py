"""Every YAML under configs/ loads, validates, and builds its model, losses, MFR block and data pipeline.

The data pipeline runs on tiny fake datasets in each config's layout (no real dataset is read); VGG
terms are checked for the one-line missing-weights error, then built with allow_missing_perceptual.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lumicap.config import Config, load_config, to_dict
from lumicap.errors import LumicapError

REPO = Path(__file__).resolve().parents[1]
CONFIGS = sorted((REPO / "configs").rglob("*.yaml"))
FAKE_PAIRS, FAKE_TEST_PAIRS, FAKE_SIZE = 36, 2, (264, 260)  # (width, height): above every recipe's patch size


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _write_pair(low_path: Path, high_path: Path, rng) -> None:
    high = rng.integers(20, 255, (FAKE_SIZE[1], FAKE_SIZE[0], 3), dtype=np.uint8)
    low_path.parent.mkdir(parents=True, exist_ok=True)
    high_path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((high // 5).astype(np.uint8)).save(low_path, compress_level=0)
    Image.fromarray(high).save(high_path, compress_level=0)


@pytest.fixture(scope="module")
def fake_roots(tmp_path_factory) -> dict[str, Path]:
    """One tiny dataset per layout, in that layout's real folder and file naming."""
    rng = np.random.default_rng(0)
    roots = {}
    for layout in ("lol-v1", "lol-v2-real", "lol-v2-synthetic"):
        root = tmp_path_factory.mktemp(layout)
        for split, count in (("train", FAKE_PAIRS), ("test", FAKE_TEST_PAIRS)):
            for i in range(1, count + 1):
                if layout == "lol-v1":
                    folder = root / ("our485" if split == "train" else "eval15")
                    _write_pair(folder / "low" / f"{i}.png", folder / "high" / f"{i}.png", rng)
                elif layout == "lol-v2-real":
                    folder = root / split.capitalize()
                    _write_pair(folder / "Low" / f"low{i:05d}.png", folder / "Normal" / f"normal{i:05d}.png", rng)
                else:
                    folder = root / split.capitalize()
                    _write_pair(folder / "Low" / f"r{i:04d}.png", folder / "Normal" / f"r{i:04d}.png", rng)
        roots[layout] = root
    return roots


@pytest.fixture(scope="module")
def tiny_teacher(tmp_path_factory) -> Path:
    from lumicap.teacher import save_tiny_teacher

    return save_tiny_teacher(tmp_path_factory.mktemp("teacher"))


@functools.lru_cache(maxsize=None)
def _model(name: str, overrides: tuple):
    from lumicap.models import build_model

    torch.manual_seed(0)
    return build_model(name, **dict(overrides))


@functools.lru_cache(maxsize=None)
def _splits(root: str, layout: str, train: str, test: str, fraction: float, seed: int):
    from lumicap.engine.data import resolve_splits

    cfg = load_config(CONFIGS[0], [f"data.root={root}", f"data.layout={layout}", f"data.train_split={train}",
                                   f"data.test_split={test}", f"data.val_fraction={fraction}", f"data.val_seed={seed}"])
    return resolve_splits(cfg)


_CHECKED_FORWARD: set = set()


def _check_training_forward(cfg: Config) -> None:
    """One training forward per (model, objective) at 64x64, through the stage's real loss module."""
    from lumicap.engine.train import TrainingForward
    from lumicap.losses import StageLoss

    model = _model(cfg.model.name, tuple(sorted(cfg.model.overrides.items())))
    for stage in cfg.stages:
        key = (cfg.model.name, stage.objective, tuple(sorted(stage.losses)))
        if key in _CHECKED_FORWARD:
            continue
        g = torch.Generator().manual_seed(0)
        low, high = torch.rand(2, 3, 64, 64, generator=g) * 0.2, torch.rand(2, 3, 64, 64, generator=g)
        outputs, model_terms = TrainingForward(model)(low, high, stage.name, stage.objective)
        loss = StageLoss(stage.losses, allow_model_terms=stage.objective != "enhance", allow_missing_perceptual=True)
        total, terms = loss(outputs, high, model_terms)
        assert torch.isfinite(total), (stage.name, terms)
        if stage.mfr:
            assert outputs["output"].shape == high.shape, f"stage {stage.name} gives no image for the MFR term"
        _CHECKED_FORWARD.add(key)


def test_there_are_configs_for_every_registered_model_and_they_are_current(capsys):
    from lumicap.models import list_models

    sys.path.insert(0, str(REPO / "scripts"))
    try:
        import make_configs
    finally:
        sys.path.remove(str(REPO / "scripts"))
    stems = {p.stem for p in CONFIGS}
    for info in list_models():
        for dataset in make_configs.DATASETS:
            for variant in ("baseline", "mfr"):
                assert f"{info.name}-{dataset}-{variant}" in stems, f"no config for {info.name} {dataset} {variant}"
    assert make_configs.main(["--check"]) == 0, "configs/ is stale: run python scripts/make_configs.py\n" + capsys.readouterr().out


@pytest.mark.parametrize("path", CONFIGS, ids=[str(p.relative_to(REPO / "configs")) for p in CONFIGS])
def test_config_builds_model_losses_mfr_and_data(path, fake_roots, tiny_teacher, tmp_path, monkeypatch):
    from lumicap.engine.data import BatchStream
    from lumicap.losses import StageLoss

    cfg = load_config(path)
    assert cfg.name == path.stem

    # An -mfr config is exactly its baseline plus the MFR block.
    baseline = path.with_name(path.name.replace("-mfr.yaml", "-baseline.yaml"))
    if path.stem.endswith("-mfr") and baseline.is_file():
        ours, theirs = to_dict(cfg), to_dict(load_config(baseline))
        assert {k for k in ours if ours[k] != theirs[k]} == {"mfr", "name"}
        assert cfg.mfr.enabled and any(stage.mfr for stage in cfg.stages)
        from lumicap.teacher import MultimodalFeatureLoss

        MultimodalFeatureLoss.from_pretrained(
            str(tiny_teacher), weights=cfg.mfr.weights, distance=cfg.mfr.distance, gpt_layers=cfg.mfr.gpt_layers,
            preprocess=cfg.mfr.preprocess, normalize=cfg.mfr.normalize,
            caption_conditioned=cfg.mfr.caption_conditioned, kl_weight=cfg.mfr.kl_weight,
        )

    # Losses: VGG terms need weights; without them the error is one line unless explicitly allowed.
    monkeypatch.setenv("LUMICAP_CACHE", str(tmp_path / "empty-cache"))
    for stage in cfg.stages:
        kwargs = {"allow_model_terms": stage.objective != "enhance"}
        if any(name.startswith("vgg") for name in stage.losses):
            with pytest.raises(LumicapError) as info:
                StageLoss(stage.losses, **kwargs)
            assert "allow_missing_perceptual" in str(info.value) and "\n" not in str(info.value)
            assert StageLoss(stage.losses, allow_missing_perceptual=True, **kwargs).dropped
        else:
            StageLoss(stage.losses, **kwargs)

    _check_training_forward(cfg)

    # Data: the config's splits and every stage's batches, on a fake dataset in the config's layout.
    if cfg.data.layout not in fake_roots:
        pytest.skip(f"no fake dataset for layout {cfg.data.layout}")
    d = cfg.data
    test_split = d.test_split if d.test_split in ("train", "test") else "test"
    train_split = d.train_split if d.train_split in ("train", "test") else "train"
    splits = _splits(str(fake_roots[d.layout]), d.layout, train_split, test_split, d.val_fraction, d.val_seed)
    assert len(splits.test) == FAKE_TEST_PAIRS and splits.val and len(splits.train) + len(splits.val) == FAKE_PAIRS
    data_cfg = cfg.model_copy(update={"data": d.model_copy(update={"cache": False, "num_workers": 0})})
    for stage in cfg.stages:
        stream = BatchStream(data_cfg, stage, splits.train, rank=0, world=1, seed=0)
        batch = stream.next()
        h, w = (stage.patch_size, stage.patch_size) if stage.patch_size else (FAKE_SIZE[1], FAKE_SIZE[0])
        assert batch["low"].shape == batch["high"].shape == (stage.batch_size, 3, h, w)
