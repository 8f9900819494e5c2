"""Pairing (every layout, every bad-input case), datasets, augmentation determinism, scene splits, loaders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lumicap.data import (
    ImagePair,
    PairedImageDataset,
    UnpairedImageDataset,
    build_loader,
    detect_layout,
    find_pairs,
    mixup_pairs,
    read_image,
    resolve_split,
    scene_groups,
    set_loader_epoch,
    split_by_scene,
)
from lumicap.errors import DatasetError


def save(path: Path, h: int = 8, w: int = 8, seed: int = 0, array: np.ndarray | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if array is None:
        array = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    Image.fromarray(array).save(path)
    return path


def make_split(folder: Path, low: str, high: str, low_names, high_names=None, size=(8, 8)):
    for i, name in enumerate(low_names):
        save(folder / low / name, *size, seed=i)
    for i, name in enumerate(high_names if high_names is not None else low_names):
        save(folder / high / name, *size, seed=100 + i)


# ------------------------------------------------------------------------------------------ layouts
def test_lol_v1_layout(tmp_path):
    make_split(tmp_path / "our485", "low", "high", ["10.png", "2.png", "1.png"])
    make_split(tmp_path / "eval15", "low", "high", ["5.png", "7.png"])
    assert detect_layout(tmp_path) == "lol-v1"
    train = resolve_split(tmp_path, "train")
    assert [p.name for p in train] == ["1", "2", "10"]  # natural order
    assert train[0] == ImagePair(tmp_path / "our485/low/1.png", tmp_path / "our485/high/1.png", "1")
    assert [p.name for p in resolve_split(tmp_path, "test")] == ["5", "7"]
    assert [p.name for p in resolve_split(tmp_path, "eval15")] == ["5", "7"]  # literal folder name
    with pytest.raises(DatasetError, match=r"no split 'val80'.*available: eval15, our485"):
        resolve_split(tmp_path, "val80")


def test_lol_v2_real_layout_pairs_low_and_normal_prefixes(tmp_path):
    make_split(tmp_path / "Train", "Low", "Normal", ["low00001.png", "low00002.png"], ["normal00001.png", "normal00002.png"])
    # case-tolerant: lower-case folders and an upper-case prefix on one file
    make_split(tmp_path / "test", "low", "normal", ["LOW00690.png", "low00691.png"], ["normal00690.png", "normal00691.png"])
    assert detect_layout(tmp_path) == "lol-v2-real"
    train = resolve_split(tmp_path, "train")
    assert [(p.low.name, p.high.name, p.name) for p in train] == [
        ("low00001.png", "normal00001.png", "00001"),
        ("low00002.png", "normal00002.png", "00002"),
    ]
    assert [p.name for p in resolve_split(tmp_path, "Test")] == ["00690", "00691"]


def test_lol_v2_synthetic_layout(tmp_path):
    make_split(tmp_path / "Train", "Low", "Normal", ["r0001.png", "r0002.png"])
    make_split(tmp_path / "Test", "Low", "Normal", ["r0009.png"])
    assert detect_layout(tmp_path) == "lol-v2-synthetic"
    pairs = resolve_split(tmp_path, "test")
    assert [(p.low.parent.name, p.high.parent.name, p.name) for p in pairs] == [("Low", "Normal", "r0009")]


def test_generic_folders_layout_and_override(tmp_path):
    make_split(tmp_path, "low", "high", ["a.png", "b.jpg"], ["a.png", "b.png"])  # stems match across formats
    assert detect_layout(tmp_path) == "folders"
    assert [(p.low.name, p.high.name) for p in resolve_split(tmp_path, None)] == [("a.png", "a.png"), ("b.jpg", "b.png")]
    # A LOL-v1 tree read as plain folders: split names are literal then.
    v1 = tmp_path / "v1"
    make_split(v1 / "eval15", "low", "high", ["1.png"])
    assert [p.name for p in resolve_split(v1, "eval15", layout="folders")] == ["1"]
    with pytest.raises(DatasetError, match="no split 'test'"):
        resolve_split(v1, "test", layout="folders")
    with pytest.raises(DatasetError, match="unknown layout"):
        resolve_split(v1, "test", layout="lol-v3")


def test_unrecognised_root_names_nested_datasets(tmp_path):
    make_split(tmp_path / "Real_captured" / "Train", "Low", "Normal", ["low00001.png"], ["normal00001.png"])
    make_split(tmp_path / "Synthetic" / "Train", "Low", "Normal", ["r1.png"])
    with pytest.raises(DatasetError, match="Real_captured, Synthetic: pass one of those"):
        detect_layout(tmp_path)


def test_non_image_and_hidden_files_are_ignored(tmp_path):
    make_split(tmp_path, "low", "high", ["1.png"])
    (tmp_path / "low" / "notes.txt").write_text("x")
    (tmp_path / "high" / "Thumbs.db").write_bytes(b"\0")
    save(tmp_path / "high" / "._1.png")  # macOS resource fork companion
    assert len(find_pairs(tmp_path / "low", tmp_path / "high")) == 1


# ------------------------------------------------------------------------------------- bad input
def test_all_pairing_problems_are_reported_in_one_error(tmp_path):
    low, high = tmp_path / "low", tmp_path / "high"
    for name in ["1.png", "2.png", "3.png", "5.png"]:
        save(low / name)
    save(high / "1.png", 8, 9)  # size mismatch: 9 wide
    save(high / "2.png")
    save(high / "2.jpg")  # duplicate stem
    save(high / "4.png")  # no low partner
    with pytest.raises(DatasetError) as exc:
        find_pairs(low, high)
    message = str(exc.value)
    assert "\n" not in message
    assert "1 duplicate stem(s) in high" in message and "2.jpg = 2.png" in message
    assert "2 low image(s) without a high partner" in message and "3.png, 5.png" in message
    assert "1 high image(s) without a low partner" in message and "4.png" in message
    assert "1 size mismatch(es)" in message and "1 (8x8 vs 9x8)" in message


def test_long_problem_lists_are_compact(tmp_path):
    for i in range(15):
        save(tmp_path / "low" / f"{i}.png")
    save(tmp_path / "high" / "0.png")
    with pytest.raises(DatasetError, match=r"14 low image\(s\) without.*10\.png, \.\.\. \(\+4 more\)"):
        find_pairs(tmp_path / "low", tmp_path / "high")


@pytest.mark.parametrize("damage", ["zero bytes", "truncated", "not an image"])
def test_unreadable_files_are_listed_with_the_other_problems(tmp_path, damage):
    make_split(tmp_path, "low", "high", ["1.png", "2.png"], ["1.png"])
    bad = tmp_path / "high" / "1.png"
    if damage == "zero bytes":
        bad.write_bytes(b"")
    elif damage == "truncated":
        bad.write_bytes(bad.read_bytes()[:20])
    else:
        bad.write_text("hello")
    with pytest.raises(DatasetError) as exc:
        find_pairs(tmp_path / "low", tmp_path / "high")
    message = str(exc.value)
    assert "unreadable" in message and str(bad) in message and "2.png" in message and "\n" not in message


def test_missing_or_empty_folders(tmp_path):
    with pytest.raises(DatasetError, match="no such folder"):
        find_pairs(tmp_path / "a", tmp_path / "b")
    (tmp_path / "a").mkdir()
    save(tmp_path / "b" / "1.png")
    with pytest.raises(DatasetError, match="no images"):
        find_pairs(tmp_path / "a", tmp_path / "b")


def test_dataset_reports_size_mismatch_of_unchecked_pairs(tmp_path):
    pair = ImagePair(save(tmp_path / "l.png", 8, 8), save(tmp_path / "h.png", 8, 10), "x")
    with pytest.raises(DatasetError, match="size mismatch"):
        PairedImageDataset([pair])


# -------------------------------------------------------------------------------------- datasets
def _complement_pairs(tmp_path: Path, count: int = 4, h: int = 12, w: int = 12) -> list[ImagePair]:
    """Pairs whose high image is 255 - low: any misaligned crop/flip between the two shows up."""
    pairs = []
    for i in range(count):
        array = np.random.default_rng(i).integers(0, 256, (h, w, 3), dtype=np.uint8)
        low = save(tmp_path / "low" / f"{i}.png", array=array)
        high = save(tmp_path / "high" / f"{i}.png", array=255 - array)
        pairs.append(ImagePair(low, high, str(i)))
    return pairs


def test_whole_images_equal_the_files(tmp_path):
    pairs = _complement_pairs(tmp_path, count=2, h=6, w=9)
    for cache in (True, False):
        sample = PairedImageDataset(pairs, cache=cache)[1]
        assert sample["name"] == "1"
        assert torch.equal(sample["low"], read_image(pairs[1].low))
        assert torch.equal(sample["high"], read_image(pairs[1].high))


def test_crops_and_augmentation_keep_low_and_high_aligned(tmp_path):
    dataset = PairedImageDataset(_complement_pairs(tmp_path), patch_size=5, augment=True, seed=3)
    for epoch in range(3):
        dataset.set_epoch(epoch)
        for index in range(len(dataset)):
            sample = dataset[index]
            assert sample["low"].shape == (3, 5, 5)
            assert torch.allclose(sample["low"] + sample["high"], torch.ones(3, 5, 5))


def test_augmentation_is_a_function_of_seed_epoch_index(tmp_path):
    pairs = _complement_pairs(tmp_path)
    a = PairedImageDataset(pairs, patch_size=6, augment=True, seed=7)
    b = PairedImageDataset(pairs, patch_size=6, augment=True, seed=7, cache=False)
    other_seed = PairedImageDataset(pairs, patch_size=6, augment=True, seed=8)
    for index in range(4):
        assert torch.equal(a[index]["low"], b[index]["low"])
    assert any(not torch.equal(a[i]["low"], other_seed[i]["low"]) for i in range(4))
    first = [a[i]["low"] for i in range(4)]
    a.set_epoch(1)
    assert any(not torch.equal(first[i], a[i]["low"]) for i in range(4))
    a.set_epoch(0)
    assert all(torch.equal(first[i], a[i]["low"]) for i in range(4))


def test_augmentation_reaches_all_eight_flips_and_rotations(tmp_path):
    pairs = _complement_pairs(tmp_path, count=1, h=4, w=4)
    image = read_image(pairs[0].low)
    transforms = [torch.rot90(image.flip(-1) if f else image, k, (-2, -1)) for f in (0, 1) for k in range(4)]
    dataset = PairedImageDataset(pairs, augment=True)
    seen = set()
    for epoch in range(64):
        dataset.set_epoch(epoch)
        low = dataset[0]["low"]
        matches = [i for i, t in enumerate(transforms) if torch.equal(low, t)]
        assert len(matches) == 1  # always a flip/rotation of the image, never anything else
        seen.add(matches[0])
    assert seen == set(range(8))


def test_non_square_images_keep_their_shape_under_augmentation(tmp_path):
    dataset = PairedImageDataset(_complement_pairs(tmp_path, h=4, w=7), augment=True)
    for epoch in range(8):
        dataset.set_epoch(epoch)
        assert dataset[0]["low"].shape == (3, 4, 7)


def test_patch_larger_than_image(tmp_path):
    dataset = PairedImageDataset(_complement_pairs(tmp_path, count=1, h=6, w=6), patch_size=8)
    with pytest.raises(DatasetError, match="smaller than patch_size 8"):
        dataset[0]


def test_16bit_pairs_keep_precision(tmp_path):
    from lumicap.data import write_image

    levels = torch.randint(0, 65536, (3, 6, 6), generator=torch.Generator().manual_seed(0)).double()
    low = write_image(tmp_path / "l.png", (levels / 65535).float(), bit_depth=16)
    high = save(tmp_path / "h.png", 6, 6)  # an 8-bit reference beside a 16-bit input
    sample = PairedImageDataset([ImagePair(low, high, "p")])[0]
    assert torch.equal(torch.round(sample["low"].double() * 65535), levels)
    assert torch.equal(sample["high"], read_image(high))


def test_loader_workers_give_the_same_batches_and_see_set_epoch(tmp_path):
    dataset = PairedImageDataset(_complement_pairs(tmp_path), patch_size=4, augment=True, seed=1)

    def epochs(num_workers):
        loader = build_loader(dataset, batch_size=2, shuffle=True, num_workers=num_workers, seed=5)
        out = []
        for epoch in range(2):
            set_loader_epoch(loader, epoch)
            out.append([(batch["name"], batch["low"].clone()) for batch in loader])
        return out, loader

    single, _ = epochs(0)
    multi, loader = epochs(2)
    assert loader.persistent_workers
    for epoch_single, epoch_multi in zip(single, multi):
        for (names_a, low_a), (names_b, low_b) in zip(epoch_single, epoch_multi):
            assert names_a == names_b and torch.equal(low_a, low_b)
    flat = lambda epoch: torch.cat([low for _, low in epoch])  # noqa: E731
    assert not torch.equal(flat(single[0]), flat(single[1]))  # epochs differ in order or augmentation


def test_eval_loader_yields_whole_images_in_order(tmp_path):
    dataset = PairedImageDataset(_complement_pairs(tmp_path, count=3, h=5, w=7))
    loader = build_loader(dataset, batch_size=1, shuffle=False)
    batches = list(loader)
    assert [b["name"][0] for b in batches] == ["0", "1", "2"]
    assert batches[0]["low"].shape == (1, 3, 5, 7)


def test_distributed_sampler_under_a_process_group(tmp_path):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        dataset = PairedImageDataset(_complement_pairs(tmp_path))
        loader = build_loader(dataset, batch_size=2, shuffle=True, seed=0, distributed=True)
        assert type(loader.sampler).__name__ == "DistributedSampler"
        set_loader_epoch(loader, 3)
        assert loader.sampler.epoch == 3 and dataset.epoch == 3
        assert sorted(n for b in loader for n in b["name"]) == ["0", "1", "2", "3"]
    finally:
        dist.destroy_process_group()


def test_mixup_uses_one_lambda_and_permutation_for_low_and_high():
    low = torch.rand(4, 3, 5, 5, generator=torch.Generator().manual_seed(0))
    high = 2 * low + 1  # any per-pixel affine map commutes with a convex mix using the same lambda
    mixed_low, mixed_high = mixup_pairs(low, high, torch.Generator().manual_seed(9))
    assert torch.allclose(mixed_high, 2 * mixed_low + 1, atol=1e-6)
    again_low, _ = mixup_pairs(low, high, torch.Generator().manual_seed(9))
    assert torch.equal(mixed_low, again_low)
    # every mixed sample lies between two batch samples: lam*x_i + (1-lam)*x_j
    assert not torch.equal(mixed_low, low)
    assert mixed_low.min() >= low.min() and mixed_low.max() <= low.max()


def test_unpaired_dataset(tmp_path):
    save(tmp_path / "b.jpg", 5, 6)
    save(tmp_path / "a.png", 4, 4)
    (tmp_path / "readme.txt").write_text("x")
    dataset = UnpairedImageDataset(tmp_path)
    assert [dataset[i]["name"] for i in range(len(dataset))] == ["a", "b"]
    assert dataset[1]["low"].shape == (3, 5, 6)
    assert UnpairedImageDataset([tmp_path / "a.png"])[0]["path"] == str(tmp_path / "a.png")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no images"):
        UnpairedImageDataset(tmp_path / "empty")


# ---------------------------------------------------------------------------------- scene splits
def test_scene_groups_follow_reference_pixels_not_file_bytes(tmp_path):
    scene = np.random.default_rng(0).integers(0, 256, (6, 6, 3), dtype=np.uint8)
    other = 255 - scene
    highs = [
        save(tmp_path / "h0.png", array=scene),
        save(tmp_path / "h1.bmp", array=scene),  # same pixels, different file format
        save(tmp_path / "h2.png", array=other),
        save(tmp_path / "h3.png", array=scene),
    ]
    pairs = [ImagePair(h, h, str(i)) for i, h in enumerate(highs)]
    assert scene_groups(pairs) == [0, 0, 1, 0]


def test_split_by_scene_never_leaks_and_is_seeded(tmp_path):
    pairs = [ImagePair(Path(f"l{i}.png"), Path(f"h{i}.png"), str(i)) for i in range(40)]
    groups = [i // 3 for i in range(40)]  # 14 scenes of up to 3 exposures
    train, val = split_by_scene(pairs, 0.25, seed=1, groups=groups)
    assert len(train) + len(val) == 40 and 10 <= len(val) <= 12
    scene_of = {p.name: g for p, g in zip(pairs, groups)}
    assert not {scene_of[p.name] for p in train} & {scene_of[p.name] for p in val}
    assert split_by_scene(pairs, 0.25, seed=1, groups=groups) == (train, val)
    assert split_by_scene(pairs, 0.25, seed=2, groups=groups)[1] != val
    assert split_by_scene(pairs, 0.0, groups=groups) == (pairs, [])
    with pytest.raises(DatasetError, match="same scene"):
        split_by_scene(pairs[:3], 0.5, groups=[0, 0, 0])


def test_split_by_scene_reads_the_references(tmp_path):
    scene = np.random.default_rng(0).integers(0, 256, (4, 4, 3), dtype=np.uint8)
    pairs = []
    for i in range(6):
        high = save(tmp_path / f"h{i}.png", array=scene if i < 3 else np.roll(scene, i, axis=0))
        pairs.append(ImagePair(high, high, str(i)))
    train, val = split_by_scene(pairs, 0.3, seed=0)
    shared_scene = {"0", "1", "2"}
    names_val = {p.name for p in val}
    assert names_val >= shared_scene or not names_val & shared_scene


def test_exposure_augmentation_scales_only_the_low_image(tmp_path):
    pairs = _complement_pairs(tmp_path)
    plain = PairedImageDataset(pairs, patch_size=6, augment=True, seed=5)
    scaled = PairedImageDataset(pairs, patch_size=6, augment=True, seed=5, exposure_range=(0.5, 3.0))
    factors = []
    for epoch in range(6):
        plain.set_epoch(epoch)
        scaled.set_epoch(epoch)
        for index in range(len(pairs)):
            a, b = plain[index], scaled[index]
            assert torch.equal(a["high"], b["high"])  # same crop and flips; the reference is untouched
            unclipped = (b["low"] < 1.0) & (a["low"] > 0.02)
            ratio = b["low"][unclipped] / a["low"][unclipped]
            assert torch.allclose(ratio, ratio[0].expand_as(ratio), rtol=1e-5)  # one factor per sample
            factors.append(float(ratio[0]))
            assert torch.equal(b["low"], (a["low"] * ratio[0]).clamp(0, 1)) or torch.allclose(
                b["low"], (a["low"] * ratio[0]).clamp(0, 1), atol=1e-6)
    assert 0.5 <= min(factors) and max(factors) <= 3.0 and max(factors) / min(factors) > 2  # spread over the range
    again = PairedImageDataset(pairs, patch_size=6, augment=True, seed=5, exposure_range=(0.5, 3.0), cache=False)
    again.set_epoch(5)
    scaled.set_epoch(5)
    assert all(torch.equal(again[i]["low"], scaled[i]["low"]) for i in range(len(pairs)))  # reproducible
    with pytest.raises(DatasetError, match="exposure_range"):
        PairedImageDataset(pairs, exposure_range=(2.0, 1.0))


def _contains(whole: torch.Tensor, crop: torch.Tensor) -> bool:
    """Whether ``crop`` (3, p, p) is a window of ``whole`` (3, H, W)."""
    p = crop.shape[-1]
    windows = whole.unfold(1, p, 1).unfold(2, p, 1)  # (3, H-p+1, W-p+1, p, p)
    return bool((windows == crop[:, None, None]).all(dim=0).all(dim=-1).all(dim=-1).any())


@pytest.mark.parametrize("size", [(12, 12), (10, 14)])
def test_whole_image_context_has_the_crops_flips_and_exposure(tmp_path, size):
    pairs = _complement_pairs(tmp_path, h=size[0], w=size[1])
    dataset = PairedImageDataset(pairs, patch_size=5, augment=True, seed=2, exposure_range=(0.5, 2.0), context=True)
    square = size[0] == size[1]
    for epoch in range(4):
        dataset.set_epoch(epoch)
        for index in range(len(pairs)):
            sample = dataset[index]
            context, low = sample["context"], sample["low"]
            assert context.shape[0] == 3 and (square or context.shape[1:] == size)  # 90-degree turns only when square
            # the crop is a window of the (flipped, rotated, exposure-scaled) whole image it was cut from
            assert _contains(context, low), f"epoch {epoch} sample {index}: crop not inside its context"
    assert "context" not in PairedImageDataset(pairs, patch_size=5, augment=True)[0]
    assert "context" not in PairedImageDataset(pairs, context=True)[0]  # whole images are their own context


def test_identity_samples_have_the_reference_as_input(tmp_path):
    pairs = _complement_pairs(tmp_path)
    always = PairedImageDataset(pairs, patch_size=6, augment=True, seed=1, exposure_range=(0.5, 3.0),
                                identity_fraction=1.0, context=True)
    for index in range(len(pairs)):
        sample = always[index]
        assert torch.equal(sample["low"], sample["high"])  # no exposure factor on the reference either
        assert _contains(sample["context"], sample["high"])
        assert torch.allclose(sample["context"].mean(), 1 - read_image(pairs[index].low).mean(), atol=1e-6)
    some = PairedImageDataset(pairs * 25, patch_size=6, augment=True, seed=1, identity_fraction=0.3)
    share = np.mean([torch.equal(some[i]["low"], some[i]["high"]) for i in range(len(some))])
    assert 0.15 < share < 0.45
    plain = PairedImageDataset(pairs, patch_size=6, augment=True, seed=1)
    never = PairedImageDataset(pairs, patch_size=6, augment=True, seed=1, identity_fraction=0.0)
    assert all(torch.equal(plain[i]["low"], never[i]["low"]) for i in range(len(pairs)))  # off: same draws as before
    with pytest.raises(DatasetError, match="identity_fraction"):
        PairedImageDataset(pairs, identity_fraction=1.5)
