"""IAT computed the fast way (channels-last, norms and layer scales folded into the 1x1 convs, a chunked
in-place tail without autograd) equals the plain formula, keeps the official state-dict layout, loads the
files users have, and matches the official model's golden outputs where ``../shared/golden`` exists."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lumicap.errors import LumicapError
from lumicap.inference import load_inference_model
from lumicap.inference.loading import save_inference_model
from lumicap.models import build_model
from lumicap.models.iat import DropPath, PEMBlock

GOLDEN = Path(__file__).resolve().parents[2] / "shared" / "golden" / "iat"


def _perturbed(module: torch.nn.Module, seed: int = 0, scale: float = 0.1) -> torch.nn.Module:
    # Random values everywhere, so a folded norm, layer scale or bias that went missing shows.
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn(p.shape, generator=gen, dtype=p.dtype))
    return module


def _plain_block(block: PEMBlock, x: torch.Tensor) -> torch.Tensor:
    """The block's formula step by step on an NCHW map, each piece used as the official code uses it."""
    x = x + block.pos_embed(x)
    tokens = lambda t: t.permute(0, 2, 3, 1)  # noqa: E731
    nchw = lambda t: t.permute(0, 3, 1, 2)  # noqa: E731
    x = x + block.gamma_1 * block.conv2(block.attn(block.conv1(nchw(block.norm1(tokens(x))))))
    return x + block.gamma_2 * block.mlp(nchw(block.norm2(tokens(x))))


@pytest.fixture
def block() -> PEMBlock:
    torch.manual_seed(0)
    return _perturbed(PEMBlock(16)).double().eval()


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_block_and_its_gradients_equal_the_plain_formula(block, layout):
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(2, 16, 13, 17, generator=gen, dtype=torch.float64)
    grads = {}
    for name, fn in (("plain", lambda t: _plain_block(block, t)), ("fast", block)):
        block.zero_grad(set_to_none=True)
        inp = x.contiguous(memory_format=layout).requires_grad_(True)
        out = fn(inp)
        (out * torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out)).sum().backward()
        grads[name] = (out.detach(), inp.grad, {k: p.grad.clone() for k, p in block.named_parameters()})
    (out_p, gin_p, gp), (out_f, gin_f, gf) = grads["plain"], grads["fast"]
    torch.testing.assert_close(out_f, out_p, rtol=0, atol=1e-12)
    torch.testing.assert_close(gin_f, gin_p, rtol=0, atol=1e-12)
    assert gp.keys() == gf.keys() and len(gp) == 20  # every parameter of the block
    for key in gp:
        torch.testing.assert_close(gf[key], gp[key], rtol=1e-10, atol=1e-12, msg=key)


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_inference_path_in_chunks_equals_the_plain_formula(block, layout, monkeypatch):
    # 13x17 = 221 tokens per image in chunks of 50: several full chunks and a remainder.
    monkeypatch.setattr(PEMBlock, "CHUNK_TOKENS", 50)
    x = torch.rand(2, 16, 13, 17, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    with torch.no_grad():
        expected = _plain_block(block, x)
        got = block(x.contiguous(memory_format=layout))
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-12)
    with torch.inference_mode():
        torch.testing.assert_close(block(x), expected, rtol=0, atol=1e-12)


def test_drop_path_scales_whole_samples():
    drop = DropPath(0.5).train()
    torch.manual_seed(3)
    residual, branch = torch.rand(64, 2, 3, 5), torch.rand(64, 2, 3, 5)
    out = drop.add_to(residual, branch)
    kept = torch.isclose(out, residual + 2 * branch).flatten(1).all(1)
    dropped = torch.equal(out[~kept], residual[~kept])
    assert dropped and 0 < int(kept.sum()) < 64  # each sample either whole (x 1/keep) or dropped
    assert torch.equal(drop.eval().add_to(residual, branch), residual + branch)


def test_whole_model_grad_and_no_grad_paths_agree():
    torch.manual_seed(4)
    model = _perturbed(build_model("iat"), scale=0.02).eval()
    x = torch.rand(1, 3, 37, 53, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        fast = model.training_outputs(x)
    slow = model.training_outputs(x)  # autograd on: the differentiable path
    for key in ("mul", "add", "output"):
        torch.testing.assert_close(fast[key], slow[key].detach(), rtol=0, atol=1e-5, msg=key)
        assert fast[key].is_contiguous()


def test_inference_path_under_bf16_autocast():
    # In-place ops are not autocast: the chunked tail must follow the map's dtype as F.linear would.
    torch.manual_seed(10)
    model = _perturbed(build_model("iat"), scale=0.02).eval()
    x = torch.rand(1, 3, 40, 48, generator=torch.Generator().manual_seed(11))
    with torch.no_grad():
        reference = model.training_outputs(x)  # float32
    with torch.autocast("cpu", dtype=torch.bfloat16):
        with torch.no_grad():
            fast = model.training_outputs(x)
        plain = model.training_outputs(x)
    for key in ("mul", "add", "output"):
        assert fast[key].dtype == plain[key].dtype
        # bf16 keeps ~3 significant digits (mul reaches ~8 here): both paths are that close to float32
        fast_error = (fast[key].float() - reference[key]).abs().max()
        plain_error = (plain[key].detach().float() - reference[key]).abs().max()
        assert fast_error < 2 * plain_error + 0.02 and fast_error < 0.15, (key, fast_error, plain_error)


def test_onnx_export_records_the_plain_path(tmp_path, monkeypatch):
    # The chunked in-place tail is eager-only: a traced export must hold the plain form, which works for
    # any size (here the eager run needs many chunks, the export was traced on another size).
    pytest.importorskip("onnxruntime", reason="ONNX Runtime is in the test extra (pip install -e '.[test]')")
    from lumicap.inference.onnx_model import OnnxEnhancer, export_onnx

    monkeypatch.setattr(PEMBlock, "CHUNK_TOKENS", 64)
    torch.manual_seed(8)
    model = _perturbed(build_model("iat"), scale=0.02).eval()
    assert export_onnx(model, tmp_path / "iat.onnx") < 1e-4
    x = torch.rand(1, 3, 41, 67, generator=torch.Generator().manual_seed(9))
    with torch.no_grad():
        expected = model(x)
    assert (OnnxEnhancer(tmp_path / "iat.onnx")(x) - expected).abs().max() < 1e-4


def test_files_in_the_1x1_conv_layout_load(tmp_path):
    # The state dict keeps the official (and earlier lumicap) shapes: a 1x1 conv is (out, in, 1, 1).
    torch.manual_seed(6)
    model = _perturbed(build_model("iat"), scale=0.02).eval()
    state = model.state_dict()
    assert state["local_net.mul_blocks.0.conv1.weight"].shape == (16, 16, 1, 1)
    assert state["local_net.add_blocks.2.mlp.fc2.weight"].shape == (16, 64, 1, 1)
    x = torch.rand(1, 3, 21, 34, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        expected = model(x)
    safetensors_path, _ = save_inference_model(tmp_path / "iat.safetensors", "iat", state)
    torch.save(dict(state), tmp_path / "official_layout.pth")  # a bare state dict, as the official code saves
    for loaded in (load_inference_model(safetensors_path), load_inference_model("iat", weights=tmp_path / "official_layout.pth")):
        with torch.no_grad():
            torch.testing.assert_close(loaded(x), expected, rtol=0, atol=0)


# ------------------------------------------------------------------------- official golden cases


def _golden_cases() -> list[Path]:
    if not (GOLDEN / "weights.pth").is_file():
        return []
    return sorted(p for p in GOLDEN.iterdir() if (p / "input.npy").is_file())


@pytest.fixture(scope="module")
def golden_model():
    if not _golden_cases():
        pytest.skip(f"official IAT golden cases not found at {GOLDEN} (only present on development machines)")
    return load_inference_model("iat", weights=GOLDEN / "weights.pth").module


def test_state_dict_layout_is_the_official_one(golden_model):
    manifest = json.loads((GOLDEN / "manifest.json").read_text())
    official = {k["key"]: tuple(k["shape"]) for k in manifest["state_dict"]["keys"]}
    ours = {k: tuple(v.shape) for k, v in build_model("iat").state_dict().items()}
    assert ours == official and len(ours) == 161  # names and shapes; the order may differ


@pytest.mark.parametrize("case", _golden_cases() or ["absent"], ids=lambda p: getattr(p, "name", p))
def test_matches_the_official_golden_outputs(golden_model, case):
    x = torch.from_numpy(np.load(case / "input.npy"))
    aux = np.load(case / "aux.npz")
    for grad in (False, True):  # the chunked inference path and the differentiable one
        with torch.set_grad_enabled(grad):
            got = golden_model.training_outputs(x)
        np.testing.assert_allclose(got["output"].detach().numpy(), np.load(case / "output.npy"), rtol=0, atol=1e-5)
        for key in aux.files:
            np.testing.assert_allclose(got[key].detach().numpy(), aux[key], rtol=0, atol=1e-5, err_msg=key)


# ------------------------------------------------------------------- border, whole-image context
def test_reflect_border_leaves_no_frame_and_keeps_the_layout():
    torch.manual_seed(3)
    zeros = _perturbed(build_model("iat")).eval()
    reflect = build_model("iat", border="reflect").eval()
    reflect.load_state_dict(zeros.state_dict())  # same parameters, same keys
    flat = torch.full((1, 3, 30, 41), 0.3)
    with torch.no_grad():
        framed, clean = zeros(flat), reflect(flat)
    # a flat photo must come out flat; with zero padding the outer pixels see black and differ
    assert (framed - framed[..., 15:16, 20:21]).abs().amax() > 1e-3
    assert (clean - clean[..., 15:16, 20:21]).abs().amax() < 1e-5
    # inside the border the two agree (the local branch sees 11 pixels each way)
    x = torch.rand(1, 3, 40, 52)
    with torch.no_grad():
        a, b = zeros.local_net(x), reflect.local_net(x)
    for m_a, m_b in zip(a, b):
        torch.testing.assert_close(m_a[..., 12:-12, 12:-12], m_b[..., 12:-12, 12:-12], rtol=0, atol=1e-5)
    tiny = torch.rand(1, 3, 5, 7)  # smaller than the pad: edge replication instead of reflection
    with torch.no_grad():
        assert reflect(tiny).shape == tiny.shape


def test_global_branch_sees_the_whole_image_context_and_the_downscaled_view():
    torch.manual_seed(4)
    model = _perturbed(build_model("iat", global_downscale=2)).eval()
    whole = torch.rand(2, 3, 40, 60)
    crop = whole[..., 8:40, 10:42]
    with torch.no_grad():
        gamma, color = model.global_net(F.avg_pool2d(whole, 2))
        out = model.training_outputs(crop, context=whole)
        alone = model.training_outputs(crop)
        whole_out = model(whole)
    torch.testing.assert_close(out["gamma"], gamma)
    torch.testing.assert_close(out["color"], color)
    assert not torch.allclose(alone["gamma"], gamma)  # without context the crop judges itself
    # the crop's output with its whole image as context equals that region of the whole image's output
    # away from the crop's edges (the local branch pads the crop itself)
    torch.testing.assert_close(out["output"][..., 12:-12, 12:-12], whole_out[..., 20:28, 22:30], rtol=0, atol=1e-5)
    with pytest.raises(LumicapError, match="global_downscale"):
        build_model("iat", global_downscale=0)
