"""Tiled inference: coverage of the tile plan, blend weights, tiled == whole pass for a local network,
and the peak memory of a large photo through the whole enhance path (in a fresh process)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from _enhance_support import register_tiny, save_tiny_safetensors
from lumicap.inference import load_inference_model
from lumicap.inference.tiling import axis_weights, blend_ramp, plan_tiles, run_tiled, run_whole

TESTS_DIR = Path(__file__).resolve().parent


@pytest.mark.parametrize("length,tile,overlap", [(100, 100, 16), (101, 64, 16), (1000, 128, 32), (300, 96, 48)])
def test_tiles_cover_the_axis_with_at_least_the_overlap(length, tile, overlap):
    plan = plan_tiles(length, length, tile, overlap)
    starts = plan.ys
    assert starts[0] == 0 and starts[-1] + plan.tile_h == length
    for a, b in zip(starts, starts[1:]):
        assert a < b and a + plan.tile_h - b >= overlap  # neighbours overlap at least `overlap`


def test_blend_weights_sum_to_one_over_a_nominal_overlap_and_never_vanish():
    ramp = blend_ramp(32)
    assert torch.allclose(ramp + ramp.flip(0), torch.ones(32))
    assert ramp[: 32 // 4].eq(0).all() and ramp[-(32 // 4) :].eq(1).all()
    # Along a whole axis, the summed weight of the tiles covering each pixel is positive.
    plan = plan_tiles(500, 500, 96, 32)
    total = torch.zeros(500)
    for y in plan.ys:
        total[y : y + plan.tile_h] += axis_weights(y, plan.tile_h, 500, 32)
    assert total.min() > 0.4


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    register_tiny(monkeypatch)
    return load_inference_model(save_tiny_safetensors(tmp_path), "cpu")


@pytest.mark.parametrize("size,tile,overlap", [((190, 301), 64, 16), ((128, 128), 64, 32), ((97, 250), 48, 8)])
def test_tiled_equals_whole_pass_for_a_local_network(tiny, size, tile, overlap):
    torch.manual_seed(0)
    image = torch.rand(3, *size) * 0.4
    whole = run_whole(tiny, image)
    tiled = run_tiled(tiny, image, tile=tile, overlap=overlap)
    assert plan_tiles(*size, tile, overlap).count > 1
    assert (tiled - whole).abs().max().item() <= 1 / 255
    # In place gives the same result and writes into the input buffer.
    buffer = image.clone()
    result = run_tiled(tiny, buffer, tile=tile, overlap=overlap, inplace=True)
    assert result.data_ptr() == buffer.data_ptr() and torch.equal(result, tiled)


def test_tiles_too_small_for_the_receptive_field_do_differ(tiny):
    # Overlap 4 leaves a 1-pixel margin, less than the network's 2-pixel reach: the check above can fail.
    torch.manual_seed(0)
    image = torch.rand(3, 100, 100) * 0.4
    difference = (run_tiled(tiny, image, tile=32, overlap=4) - run_whole(tiny, image)).abs().max().item()
    assert difference > 1e-4


# Peak resident memory of `enhance` on an 8-megapixel photo, measured in a fresh process so that nothing
# else in the test session counts. Bound stated in the README: 40 bytes per pixel plus 150 MB (the float
# image, 12 B/px, is the largest piece; writing the file briefly holds two more float copies).
PEAK_BYTES_PER_PIXEL = 40
PEAK_FIXED_MB = 150

_MEMORY_SCRIPT = textwrap.dedent(
    """
    import json, resource, sys
    from pathlib import Path
    import numpy as np, torch
    torch.set_num_threads(2)
    sys.path.insert(0, {tests!r})
    from PIL import Image
    from lumicap.models import registry
    import _enhance_support as support
    registry._REGISTRY[support.TINY_NAME] = support.tiny_info()
    from lumicap.inference import TileSettings, collect_inputs, enhance_files, load_inference_model
    work = Path({work!r})
    height, width = {height}, {width}
    rng = np.random.default_rng(0)
    coarse = rng.integers(0, 70, size=(height // 32, width // 32, 3), dtype=np.uint8)
    Image.fromarray(coarse).resize((width, height), Image.BILINEAR).save(work / "big.png", compress_level=1)
    del coarse
    model = load_inference_model(support.save_tiny_safetensors(work), "cpu")
    import lumicap.data.io, lumicap.inference.tiling, tqdm  # everything imported before the baseline
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    summary = enhance_files(collect_inputs([work / "big.png"]), work / "out", model, model.device,
                            fmt="jpg", tiles=TileSettings(), progress=False)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out = Image.open(work / "out" / "big.jpg")
    print(json.dumps({{"increase_kb": after - before, "size": out.size, "failed": len(summary.failed)}}))
    """
)


@pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss is in kilobytes on Linux (bytes on macOS)")
def test_large_photo_peak_memory_is_bounded(tmp_path):
    height, width = 2304, 3456  # 8.0 megapixels: tiled by default (above the 2 MP CPU budget)
    script = _MEMORY_SCRIPT.format(tests=str(TESTS_DIR), work=str(tmp_path), height=height, width=width)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["failed"] == 0 and tuple(result["size"]) == (width, height)
    increase_mb = result["increase_kb"] / 1024
    bound_mb = PEAK_BYTES_PER_PIXEL * height * width / 2**20 + PEAK_FIXED_MB
    # A whole-image pass of even this tiny network would hold ~8 float maps of the photo (> 1 GB).
    assert increase_mb < bound_mb, f"peak RSS grew {increase_mb:.0f} MB, bound {bound_mb:.0f} MB"


def test_out_of_memory_in_a_whole_pass_falls_back_to_tiles_then_to_a_clear_error():
    from lumicap.errors import LumicapError
    from lumicap.inference import TileSettings, enhance_image

    shapes = []

    def allocator_limited(x):  # stands in for a network whose activations fit only below 512 columns
        shapes.append(tuple(x.shape[-2:]))
        if x.shape[-1] > 512:
            raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 9 GB")
        return x * 0.5

    image = torch.rand(3, 400, 600)
    out = enhance_image(allocator_limited, image, torch.device("cpu"), TileSettings(max_megapixels=5))
    assert shapes[0] == (400, 600) and all(s == (400, 512) for s in shapes[1:]) and len(shapes) == 3
    assert torch.allclose(out, image * 0.5)

    def never_fits(x):
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")

    with pytest.raises(LumicapError, match="try --tile 256"):
        enhance_image(never_fits, image, torch.device("cpu"), TileSettings(max_megapixels=5))
