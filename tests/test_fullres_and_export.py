"""Large photos through a transform applied at full resolution (``lumicap.inference.fullres``), and
``lumicap export`` to ONNX / safetensors with ``lumicap enhance --model F.onnx``. Random IAT weights saved
in the real inference format; ONNX Runtime is part of the test extra."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from _enhance_support import register_tiny, save_tiny_safetensors
from lumicap.cli import main
from lumicap.errors import LumicapError
from lumicap.inference import load_inference_model, save_inference_model
from lumicap.inference.fullres import FullResolutionTransform
from lumicap.models import build_model


def _iat(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = build_model("iat").eval()
    # Random (not initial) weights everywhere, so the branches do something input-dependent.
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model


def _save(model, folder, **record):
    path, _ = save_inference_model(folder / "iat.safetensors", "iat", model.state_dict(), **record)
    return path


def _image(h, w, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (0.3 * torch.rand(1, 3, h, w, generator=g)).clamp(0, 1)


def test_small_photos_run_the_network_unchanged():
    model = _iat()
    wrapped = FullResolutionTransform(model, network_megapixels=0.01)
    x = _image(41, 57)  # 2,337 pixels, under the 10,000-pixel limit
    with torch.no_grad():
        assert torch.equal(wrapped(x), model(x))


def test_large_photos_apply_the_predicted_transform_at_full_resolution():
    # A network whose transform does not depend on resolution (constant gain/offset maps, input-independent
    # gamma and colour matrix) must give exactly its own full-resolution output through the wrapper: this checks
    # the upsampling and the application of M, A, the colour matrix and the gamma.
    model = _iat()
    with torch.no_grad():
        for end, value in ((model.local_net.mul_end[0], 1.7), (model.local_net.add_end[0], 0.05)):
            end.weight.zero_()
            end.bias.fill_(value)
        model.global_net.generator.attn.v.weight.zero_()  # queries ignore the image
    wrapped = FullResolutionTransform(model, network_megapixels=0.001)
    x = _image(67, 95)
    seen = []
    hook = model.local_net.register_forward_pre_hook(lambda m, args: seen.append(args[0].shape[-2:]))
    with torch.no_grad():
        got, expected = wrapped(x), model(x)
    hook.remove()
    assert seen[0][0] * seen[0][1] <= 1000 and seen[1] == (67, 95)  # the wrapper's network pass was small
    assert torch.allclose(got, expected, atol=1e-6)


def test_large_photos_keep_their_detail_and_stay_close_to_the_whole_pass():
    model = _iat()
    x = _image(120, 160, seed=3)
    with torch.no_grad():
        whole = model(x)
        fast = FullResolutionTransform(model, network_megapixels=0.005)(x)  # network at ~1/4 of the pixels
        naive = torch.nn.functional.interpolate(
            model(torch.nn.functional.interpolate(x, scale_factor=0.5, mode="area")), size=(120, 160), mode="bilinear")
    assert fast.shape == whole.shape and torch.isfinite(fast).all()
    # Applying the transform to the full-resolution pixels beats upsampling a low-resolution result.
    assert (fast - whole).abs().mean() < (naive - whole).abs().mean()


def test_sidecar_setting_wraps_and_enhance_does_not_tile(tmp_path):
    path = _save(_iat(), tmp_path, inference={"network_megapixels": 0.002})
    model = load_inference_model(path)
    assert model.handles_large_images and "network at most 0.002 MP" in model.describe()
    assert not load_inference_model(path, network_megapixels=0).handles_large_images  # 0 turns it off
    calls = []
    model.module.module.register_forward_pre_hook(lambda m, args: calls.append(args[0].shape))
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 60, (90, 130, 3), dtype=np.uint8)).save(src / "big.png")
    from lumicap.inference import TileSettings, collect_inputs, enhance_files

    summary = enhance_files(collect_inputs([src]), tmp_path / "out", model, model.device,
                            tiles=TileSettings(max_megapixels=None), progress=False)
    assert len(summary.enhanced) == 1 and calls == []  # the wrapper ran the branches, not a tiled forward


def test_bad_settings_are_one_line(tmp_path, monkeypatch):
    path = _save(_iat(), tmp_path, inference={"network_megapixels": "lots"})
    with pytest.raises(LumicapError, match="network_megapixels") as info:
        load_inference_model(path)
    assert "\n" not in str(info.value)
    register_tiny(monkeypatch)
    tiny = save_tiny_safetensors(tmp_path / "tiny")
    with pytest.raises(LumicapError, match="predicts a transform"):
        load_inference_model(tiny, network_megapixels=1.0)


def test_onnx_export_matches_pytorch_on_an_odd_size_and_enhance_runs_it(tmp_path, capsys):
    pytest.importorskip("onnxruntime", reason="ONNX Runtime is in the test extra (pip install -e '.[test]')")
    model = _iat()
    weights = _save(model, tmp_path, inference={"network_megapixels": 1.0})
    onnx_path = tmp_path / "iat.onnx"
    assert main(["export", str(weights), "--format", "onnx", "--out", str(onnx_path)]) == 0
    assert "max |ONNX - PyTorch|" in capsys.readouterr().out
    from lumicap.inference.onnx_model import OnnxEnhancer

    runner = OnnxEnhancer(onnx_path)
    assert runner.metadata["lumicap_model"] == "iat"
    for h, w in ((29, 45), (64, 33)):  # dynamic height and width, odd sizes
        x = _image(h, w, seed=h)
        with torch.no_grad():
            expected = model(x)
        assert (runner(x) - expected).abs().max() < 1e-4

    src = tmp_path / "in"
    src.mkdir()
    array = np.random.default_rng(1).integers(0, 60, (37, 51, 3), dtype=np.uint8)
    Image.fromarray(array).save(src / "a.png")
    for name, spec in (("torch", str(weights)), ("onnx", str(onnx_path))):
        assert main(["enhance", str(src), "--out", str(tmp_path / name), "--model", spec, "--no-progress"]) == 0
    a = np.asarray(Image.open(tmp_path / "torch" / "a.png")).astype(int)
    b = np.asarray(Image.open(tmp_path / "onnx" / "a.png")).astype(int)
    assert np.abs(a - b).max() <= 1  # the same network, 8-bit rounding apart

    # refusals: an existing output, a wrong suffix, --weights with an ONNX file, a broken file
    assert main(["export", str(weights), "--format", "onnx", "--out", str(onnx_path)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["export", str(weights), "--format", "onnx", "--out", str(tmp_path / "x.pt")]) == 2
    assert main(["enhance", str(src), "--out", str(tmp_path / "o3"), "--model", str(onnx_path), "--weights", "w.pt"]) == 2
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"\x08\x07garbage" * 10)
    assert main(["enhance", str(src), "--out", str(tmp_path / "o4"), "--model", str(broken)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("lumicap: error:") and "broken.onnx" in err[-1] and "Traceback" not in "\n".join(err)


def test_onnx_export_carries_the_chroma_gain_and_highlight_protection(tmp_path, capsys):
    """ONNX has no sidecar: the per-pixel steps after the network go into the graph, so the file gives the
    picture lumicap enhance gives (network on the whole photo)."""
    pytest.importorskip("onnxruntime", reason="ONNX Runtime is in the test extra (pip install -e '.[test]')")
    steps = {"network_megapixels": 1.0, "chroma_gain": 1.4, "highlight_protection": [0.5, 0.9]}
    weights = _save(_iat(), tmp_path, inference=steps)
    onnx_path = tmp_path / "iat.onnx"
    assert main(["export", str(weights), "--format", "onnx", "--out", str(onnx_path)]) == 0
    assert "chroma x1.4" in capsys.readouterr().out
    from lumicap.inference.onnx_model import OnnxEnhancer

    runner = OnnxEnhancer(onnx_path)
    with_steps = load_inference_model(weights, network_megapixels=0)
    bare = load_inference_model(weights, network_megapixels=0, highlight_protection=False, chroma_gain=1)
    x = _image(31, 42, seed=3)
    x[..., :8, :] = 0.95  # a bright band the protection gives back
    with torch.no_grad():
        expected, plain = with_steps(x.clone()), bare(x.clone())
    assert (runner(x) - expected).abs().max() < 1e-4
    assert (expected - plain).abs().max() > 0.01  # the steps changed the picture, and the file has them


def test_export_safetensors_keeps_the_record_and_loads(tmp_path):
    model = _iat()
    weights = _save(model, tmp_path, inference={"network_megapixels": 0.5}, training_command="(test)")
    out = tmp_path / "copy.safetensors"
    assert main(["export", str(weights), "--format", "safetensors", "--out", str(out)]) == 0
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert sidecar["model"] == "iat" and sidecar["inference"] == {"network_megapixels": 0.5}
    again = load_inference_model(out)
    x = _image(33, 47)
    with torch.no_grad():
        assert torch.equal(again.module.module(x), model(x))


@pytest.mark.parametrize("name,overrides,sizes", [
    # Retinexformer sums its norms in blocks of 8192 tokens: 96x100 has 9600 at the first level
    ("retinexformer", {"n_feat": 8, "num_blocks": [1, 1, 1]}, ((29, 45), (96, 100))),
    # SNR-Aware skips masked keys only in eager PyTorch: the graph keeps the official masked softmax
    ("snr_aware", {"nf": 8, "n_layers": 1, "d_inner": 32, "short_range_RBs": 1}, ((29, 45), (48, 64))),
])
def test_onnx_export_of_networks_with_eager_only_shortcuts_holds_at_other_sizes(name, overrides, sizes, tmp_path, capsys):
    pytest.importorskip("onnxruntime", reason="ONNX Runtime is in the test extra (pip install -e '.[test]')")
    torch.manual_seed(0)
    model = build_model(name, **overrides).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    weights, _ = save_inference_model(tmp_path / f"{name}.safetensors", name, model.state_dict(), overrides=overrides)
    onnx_path = tmp_path / f"{name}.onnx"
    assert main(["export", str(weights), "--format", "onnx", "--out", str(onnx_path)]) == 0
    from lumicap.inference.onnx_model import OnnxEnhancer

    runner = OnnxEnhancer(onnx_path)
    for h, w in sizes:
        x = _image(h, w, seed=h)
        if name == "snr_aware":  # one bright, clean patch, so some keys are kept where the trace kept none
            x[..., :16, :16] = 0.9
        with torch.no_grad():
            expected = model(x)
        assert (runner(x) - expected).abs().max() < 1e-4, (h, w)


def test_an_operator_the_onnx_exporter_cannot_write_is_one_line(tmp_path, capsys, monkeypatch):
    pytest.importorskip("onnx", reason="ONNX is in the test extra (pip install -e '.[test]')")
    weights = _save(_iat(), tmp_path)

    def refuse(*args, **kwargs):  # what torch's exporter raises for e.g. aten::col2im at opset 17
        raise torch.onnx.errors.UnsupportedOperatorError("aten::col2im", 17, 18)

    monkeypatch.setattr(torch.onnx, "export", refuse)
    out = tmp_path / "iat.onnx"
    assert main(["export", str(weights), "--format", "onnx", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "iat.onnx" in err[0] and "col2im" in err[0] and "cannot be written as ONNX" in err[0]
    assert not out.exists() and not list(tmp_path.glob("*.onnx*"))  # no partial file left behind
