"""Teacher weights in every real format, loaded through the public API only.

The OpenAI conversions are checked against reference forward passes written here from the CLIP paper's
description of its towers (not against our converter); the Hugging Face folder against transformers'
own ``CLIPModel.from_pretrained``; the transformer mapper against a reference written from ClipCap's
description; GPT-2 against the file's own tensors.
"""

from __future__ import annotations

import json
import pickle
import warnings
import zipfile

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lumicap.errors import WeightsError
from lumicap.teacher import ClipCapTeacher, load_clip_image_encoder, save_tiny_teacher


pytestmark = pytest.mark.usefixtures("one_thread")


# ------------------------------------------------------------------------------ reference forward passes
def _layer_norm(x, sd, name):
    return F.layer_norm(x, x.shape[-1:], sd[f"{name}.weight"], sd[f"{name}.bias"], eps=1e-5)


def reference_vit(sd: dict[str, torch.Tensor], pixels: torch.Tensor, heads: int) -> torch.Tensor:
    """CLIP ViT from the paper: patch conv, class token, positions, ln_pre, pre-norm blocks with
    QuickGELU, ln_post on the class token, linear projection. Weights in OpenAI's ``visual.*`` names."""
    sd = {k[len("visual."):]: v.float() for k, v in sd.items() if k.startswith("visual.")}
    patch = sd["conv1.weight"].shape[-1]
    x = F.conv2d(pixels, sd["conv1.weight"], stride=patch).flatten(2).transpose(1, 2)  # (B, N, W)
    batch, _, width = x.shape
    x = torch.cat([sd["class_embedding"].expand(batch, 1, width), x], dim=1) + sd["positional_embedding"]
    x = _layer_norm(x, sd, "ln_pre")
    blocks = len({k.split(".")[2] for k in sd if k.startswith("transformer.resblocks.")})
    head_dim = width // heads
    for n in range(blocks):
        p = f"transformer.resblocks.{n}."
        h = _layer_norm(x, sd, p + "ln_1")
        q, k, v = (h @ sd[p + "attn.in_proj_weight"].t() + sd[p + "attn.in_proj_bias"]).chunk(3, dim=-1)
        q, k, v = (t.reshape(batch, -1, heads, head_dim).transpose(1, 2) for t in (q, k, v))
        attention = torch.softmax(q @ k.transpose(-1, -2) / head_dim**0.5, dim=-1)
        h = (attention @ v).transpose(1, 2).reshape(batch, -1, width)
        x = x + h @ sd[p + "attn.out_proj.weight"].t() + sd[p + "attn.out_proj.bias"]
        h = _layer_norm(x, sd, p + "ln_2") @ sd[p + "mlp.c_fc.weight"].t() + sd[p + "mlp.c_fc.bias"]
        h = h * torch.sigmoid(1.702 * h)
        x = x + h @ sd[p + "mlp.c_proj.weight"].t() + sd[p + "mlp.c_proj.bias"]
    return _layer_norm(x[:, 0], sd, "ln_post") @ sd["proj"]


def reference_resnet(sd: dict[str, torch.Tensor], pixels: torch.Tensor) -> torch.Tensor:
    """CLIP's modified ResNet from the paper: 3-conv stem + avgpool, bottlenecks that average-pool when
    they downsample (shortcut too), and an attention pool whose query is the mean feature."""
    sd = {k[len("visual."):]: v.float() for k, v in sd.items() if k.startswith("visual.")}

    def bn(x, name):
        return F.batch_norm(x, sd[f"{name}.running_mean"], sd[f"{name}.running_var"], sd[f"{name}.weight"],
                            sd[f"{name}.bias"], training=False, eps=1e-5)

    x = pixels
    for i, stride in ((1, 2), (2, 1), (3, 1)):
        x = F.relu(bn(F.conv2d(x, sd[f"conv{i}.weight"], stride=stride, padding=1), f"bn{i}"))
    x = F.avg_pool2d(x, 2)
    for stage in range(1, 5):
        blocks = len({k.split(".")[1] for k in sd if k.startswith(f"layer{stage}.")})
        for b in range(blocks):
            p = f"layer{stage}.{b}."
            stride = 2 if stage > 1 and b == 0 else 1
            out = F.relu(bn(F.conv2d(x, sd[p + "conv1.weight"]), p + "bn1"))
            out = F.relu(bn(F.conv2d(out, sd[p + "conv2.weight"], padding=1), p + "bn2"))
            out = F.avg_pool2d(out, stride) if stride > 1 else out
            out = bn(F.conv2d(out, sd[p + "conv3.weight"]), p + "bn3")
            if p + "downsample.0.weight" in sd:
                shortcut = F.avg_pool2d(x, stride) if stride > 1 else x
                shortcut = bn(F.conv2d(shortcut, sd[p + "downsample.0.weight"]), p + "downsample.1")
            else:
                shortcut = x
            x = F.relu(out + shortcut)
    tokens = x.flatten(2).permute(2, 0, 1)  # (HW, B, C)
    tokens = torch.cat([tokens.mean(dim=0, keepdim=True), tokens]) + sd["attnpool.positional_embedding"][:, None]
    width = tokens.shape[-1]  # 32 x the stem width; CLIP gives the pool one head per 64 channels
    out, _ = F.multi_head_attention_forward(
        tokens, tokens, tokens, width, width // 64,
        in_proj_weight=None,
        in_proj_bias=torch.cat([sd["attnpool.q_proj.bias"], sd["attnpool.k_proj.bias"], sd["attnpool.v_proj.bias"]]),
        bias_k=None, bias_v=None, add_zero_attn=False, dropout_p=0.0,
        out_proj_weight=sd["attnpool.c_proj.weight"], out_proj_bias=sd["attnpool.c_proj.bias"],
        use_separate_proj_weight=True, q_proj_weight=sd["attnpool.q_proj.weight"],
        k_proj_weight=sd["attnpool.k_proj.weight"], v_proj_weight=sd["attnpool.v_proj.weight"], need_weights=False,
    )
    return out[0]


def reference_transformer_mapper(sd: dict[str, torch.Tensor], embedding: torch.Tensor, prefix_length: int, heads: int):
    """ClipCap's transformer mapper from its description: linear -> clip_length tokens, learned constants
    appended, pre-norm blocks (attention with query / fused key-value projections, ReLU MLP), keep the
    last prefix_length positions."""
    sd = {k[len("clip_project."):]: v.float() for k, v in sd.items() if k.startswith("clip_project.")}
    width = sd["prefix_const"].shape[1]
    x = (embedding @ sd["linear.weight"].t() + sd["linear.bias"]).reshape(embedding.shape[0], -1, width)
    x = torch.cat([x, sd["prefix_const"].expand(x.shape[0], -1, -1)], dim=1)
    batch, length, _ = x.shape
    head_dim = width // heads
    layers = len({k.split(".")[2] for k in sd if k.startswith("transformer.layers.")})
    for n in range(layers):
        p = f"transformer.layers.{n}."
        h = _layer_norm(x, sd, p + "norm1")
        q = (h @ sd[p + "attn.to_queries.weight"].t()).reshape(batch, length, heads, head_dim)
        kv = (h @ sd[p + "attn.to_keys_values.weight"].t()).reshape(batch, length, 2, heads, head_dim)
        scores = torch.einsum("bnhd,bmhd->bnmh", q, kv[:, :, 0]) / head_dim**0.5
        h = torch.einsum("bnmh,bmhd->bnhd", scores.softmax(dim=2), kv[:, :, 1]).reshape(batch, length, width)
        x = x + h @ sd[p + "attn.project.weight"].t() + sd[p + "attn.project.bias"]
        h = torch.relu(_layer_norm(x, sd, p + "norm2") @ sd[p + "mlp.fc1.weight"].t() + sd[p + "mlp.fc1.bias"])
        x = x + h @ sd[p + "mlp.fc2.weight"].t() + sd[p + "mlp.fc2.bias"]
    return x[:, -prefix_length:]


# ------------------------------------------------------------------------------ random OpenAI-layout files
def openai_vit_weights(width=128, layers=2, patch=8, image=32, out=24, seed=0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)

    def rnd(*shape, scale=0.1):
        return torch.randn(*shape, generator=g) * scale

    grid = image // patch
    sd = {
        "visual.conv1.weight": rnd(width, 3, patch, patch, scale=0.05),
        "visual.class_embedding": rnd(width),
        "visual.positional_embedding": rnd(grid * grid + 1, width),
        "visual.ln_pre.weight": 1 + rnd(width), "visual.ln_pre.bias": rnd(width),
        "visual.ln_post.weight": 1 + rnd(width), "visual.ln_post.bias": rnd(width),
        "visual.proj": rnd(width, out),
        # OpenAI's files also hold the text tower and three scalar entries; the image loader ignores them.
        "token_embedding.weight": rnd(10, 16), "positional_embedding": rnd(7, 16), "text_projection": rnd(16, out),
        "input_resolution": torch.tensor(image), "context_length": torch.tensor(7), "vocab_size": torch.tensor(10),
    }
    for n in range(layers):
        p = f"visual.transformer.resblocks.{n}."
        sd.update({
            p + "attn.in_proj_weight": rnd(3 * width, width), p + "attn.in_proj_bias": rnd(3 * width),
            p + "attn.out_proj.weight": rnd(width, width), p + "attn.out_proj.bias": rnd(width),
            p + "ln_1.weight": 1 + rnd(width), p + "ln_1.bias": rnd(width),
            p + "mlp.c_fc.weight": rnd(4 * width, width), p + "mlp.c_fc.bias": rnd(4 * width),
            p + "mlp.c_proj.weight": rnd(width, 4 * width), p + "mlp.c_proj.bias": rnd(width),
            p + "ln_2.weight": 1 + rnd(width), p + "ln_2.bias": rnd(width),
        })
    # OpenAI ships fp16 weights.
    return {k: v.half() if v.is_floating_point() else v for k, v in sd.items()}


def openai_resnet_weights(width=8, blocks=(1, 2, 1, 1), image=64, out=24, seed=0) -> dict[str, torch.Tensor]:
    """Keys as in OpenAI's RN checkpoints: stem conv/bn 1-3, layerN.B.{conv,bn}{1,2,3}, downsample.{0,1}, attnpool."""
    g = torch.Generator().manual_seed(seed)
    sd: dict[str, torch.Tensor] = {}

    def conv(name, cout, cin, k):
        sd[f"visual.{name}.weight"] = torch.randn(cout, cin, k, k, generator=g) * (cin * k * k) ** -0.5

    def bn(name, c):
        sd[f"visual.{name}.weight"] = 1 + 0.1 * torch.randn(c, generator=g)
        sd[f"visual.{name}.bias"] = 0.1 * torch.randn(c, generator=g)
        sd[f"visual.{name}.running_mean"] = 0.1 * torch.randn(c, generator=g)
        sd[f"visual.{name}.running_var"] = 0.5 + torch.rand(c, generator=g)
        sd[f"visual.{name}.num_batches_tracked"] = torch.tensor(0)

    conv("conv1", width // 2, 3, 3), bn("bn1", width // 2)
    conv("conv2", width // 2, width // 2, 3), bn("bn2", width // 2)
    conv("conv3", width, width // 2, 3), bn("bn3", width)
    channels = width
    for stage, count in enumerate(blocks, start=1):
        planes = width * 2 ** (stage - 1)
        for b in range(count):
            p = f"layer{stage}.{b}."
            conv(p + "conv1", planes, channels, 1), bn(p + "bn1", planes)
            conv(p + "conv2", planes, planes, 3), bn(p + "bn2", planes)
            conv(p + "conv3", planes * 4, planes, 1), bn(p + "bn3", planes * 4)
            if b == 0:
                conv(p + "downsample.0", planes * 4, channels, 1), bn(p + "downsample.1", planes * 4)
            channels = planes * 4
    dim, grid = width * 32, image // 32
    sd["visual.attnpool.positional_embedding"] = torch.randn(grid * grid + 1, dim, generator=g) / dim**0.5
    for name, cout in (("q_proj", dim), ("k_proj", dim), ("v_proj", dim), ("c_proj", out)):
        sd[f"visual.attnpool.{name}.weight"] = torch.randn(cout, dim, generator=g) * dim**-0.5
        sd[f"visual.attnpool.{name}.bias"] = 0.1 * torch.randn(cout, generator=g)
    return {k: v.half() if v.is_floating_point() else v for k, v in sd.items()}


class _OpenAIArchiveModule(nn.Module):
    """A module whose parameters carry OpenAI's dotted names and whose forward is a reference pass."""

    def __init__(self, sd, forward_fn):
        super().__init__()
        self._forward_fn = forward_fn
        for key, value in sd.items():
            owner = self
            *path, leaf = key.split(".")
            for part in path:
                if not hasattr(owner, part):
                    owner.add_module(part, nn.Module())
                owner = getattr(owner, part)
            if value.is_floating_point():
                owner.register_parameter(leaf, nn.Parameter(value.float(), requires_grad=False))
            else:
                owner.register_buffer(leaf, value)

    def forward(self, pixels):
        return self._forward_fn(dict(self.state_dict()), pixels)


def save_torchscript(sd, forward_fn, example, path):
    module = _OpenAIArchiveModule(sd, forward_fn).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(module, example)
    traced.half()  # OpenAI's archives hold fp16 tensors
    traced.save(str(path))


def _fp32(sd):
    return {k: v.float() if v.is_floating_point() else v for k, v in sd.items()}


# ------------------------------------------------------------------------------------------------ tests
def test_openai_vit_state_dict_matches_paper_reference(tmp_path):
    sd = openai_vit_weights()
    torch.save(sd, tmp_path / "ViT-tiny.pt")
    tower = load_clip_image_encoder(tmp_path / "ViT-tiny.pt")  # heads = width // 64 = 2, as OpenAI
    assert (tower.image_size, tower.output_dim) == (32, 24)
    pixels = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        ours, reference = tower(pixels), reference_vit(_fp32(sd), pixels, heads=2)
    assert torch.allclose(ours, reference, atol=1e-4, rtol=1e-4), (ours - reference).abs().max()


def test_openai_vit_torchscript_archive_matches_paper_reference(tmp_path):
    sd = openai_vit_weights(seed=1)
    path = tmp_path / "ViT-B-32-like.pt"
    save_torchscript(_fp32(sd), lambda s, x: reference_vit(s, x, heads=2), torch.randn(1, 3, 32, 32), path)
    assert any("/code/" in name for name in zipfile.ZipFile(path).namelist()), "not a TorchScript archive"
    tower = load_clip_image_encoder(path)
    pixels = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        ours, reference = tower(pixels), reference_vit(_fp32(sd), pixels, heads=2)
    assert torch.allclose(ours, reference, atol=1e-4, rtol=1e-4), (ours - reference).abs().max()


@pytest.mark.parametrize("archive", [False, True], ids=["state_dict", "torchscript"])
def test_openai_resnet_matches_paper_reference(tmp_path, archive):
    sd = openai_resnet_weights()
    path = tmp_path / "RN-tiny.pt"
    if archive:
        save_torchscript(_fp32(sd), reference_resnet, torch.randn(1, 3, 64, 64), path)
    else:
        torch.save(sd, path)
    tower = load_clip_image_encoder(path)
    assert (tower.image_size, tower.output_dim) == (64, 24)
    pixels = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        ours, reference = tower(pixels), reference_resnet(_fp32(sd), pixels)
    assert torch.allclose(ours, reference, atol=1e-4, rtol=1e-4), (ours - reference).abs().max()


def test_torchscript_archive_with_code_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    payload = b"\x80\x02cos\nsystem\nq\x00X\x04\x00\x00\x00trueq\x01\x85q\x02Rq\x03."  # os.system("true")
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("evil/data.pkl", payload)
        archive.writestr("evil/code/__torch__.py", "")
    with pytest.raises(WeightsError, match="os.system.*not plain weights"):
        load_clip_image_encoder(path)


def test_hf_clip_folder_matches_transformers_loader(tmp_path):
    from transformers import CLIPModel

    folder = save_tiny_teacher(tmp_path / "teacher", "mlp", clip_format="hf") / "clip"
    config = json.loads((folder / "config.json").read_text())
    assert "vision_config" in config and "text_config" in config  # the openai/clip-vit-base-patch32 layout
    ours = load_clip_image_encoder(folder)
    reference_model = CLIPModel.from_pretrained(str(folder)).eval()
    pixels = torch.randn(2, 3, ours.image_size, ours.image_size)
    with torch.no_grad():
        reference = reference_model.get_image_features(pixel_values=pixels)
        reference = reference if torch.is_tensor(reference) else reference.pooler_output
        assert torch.allclose(ours(pixels), reference, atol=1e-5)


@pytest.fixture(scope="module")
def tiny_teachers(tmp_path_factory):
    root = tmp_path_factory.mktemp("teachers")
    return {
        (variant, fmt): save_tiny_teacher(root / f"{variant}-{fmt}", variant, seed=3, clip_format=fmt)
        for variant, fmt in (("mlp", "hf"), ("mlp", "openai"), ("transformer", "hf"))
    }


@pytest.mark.parametrize("key", [("mlp", "hf"), ("mlp", "openai"), ("transformer", "hf")], ids="-".join)
def test_tiny_teacher_loads_frozen_with_file_weights(tiny_teachers, key):
    folder = tiny_teachers[key]
    teacher = ClipCapTeacher.from_pretrained(folder)
    assert not teacher.training and all(not m.training for m in teacher.modules())
    assert all(not p.requires_grad for p in teacher.parameters())
    teacher.train()
    assert not teacher.training, "train() must not unfreeze the teacher"
    images = torch.rand(2, 3, 40, 56)
    with torch.no_grad():
        embedding = teacher.clip_embedding(images)
        prefix = teacher.prefix_embeddings(embedding)
    assert embedding.shape == (2, 32)
    assert prefix.shape == (2, teacher.prefix_length, teacher.gpt.config.n_embd)

    clipcap = torch.load(folder / "clipcap.pt", weights_only=True)
    if key[0] == "mlp":
        # Legacy causal-mask buffers are in the file, and the GPT-2 weights come from it.
        assert "gpt.transformer.h.0.attn.bias" in clipcap and "gpt.transformer.h.0.attn.masked_bias" in clipcap
        assert torch.equal(teacher.gpt.transformer.h[1].mlp.c_fc.weight, clipcap["gpt.transformer.h.1.mlp.c_fc.weight"])
        w0, b0 = clipcap["clip_project.model.0.weight"], clipcap["clip_project.model.0.bias"]
        w2, b2 = clipcap["clip_project.model.2.weight"], clipcap["clip_project.model.2.bias"]
        reference = (torch.tanh(embedding @ w0.t() + b0) @ w2.t() + b2).view_as(prefix)
    else:
        from safetensors.torch import load_file

        gpt_file = load_file(str(folder / "gpt2" / "model.safetensors"))
        assert "h.0.attn.bias" in gpt_file  # Hugging Face's original GPT-2 layout, legacy buffer included
        assert torch.equal(teacher.gpt.transformer.wte.weight, gpt_file["wte.weight"])
        normalised = embedding / embedding.norm(dim=-1, keepdim=True)  # the transformer model's convention
        reference = reference_transformer_mapper(clipcap, normalised, teacher.prefix_length, heads=2)
    assert torch.allclose(prefix, reference, atol=1e-5), (prefix - reference).abs().max()
    captions = teacher.caption(images[:1], max_tokens=5)
    assert len(captions) == 1 and isinstance(captions[0], str)


# ------------------------------------------------------------------------------------------------ errors
def _copy_teacher(src, dst):
    import shutil

    shutil.copytree(src, dst)
    return dst


def test_truncated_clipcap_file_is_one_line_error(tiny_teachers, tmp_path):
    folder = _copy_teacher(tiny_teachers[("mlp", "openai")], tmp_path / "t")
    data = (folder / "clipcap.pt").read_bytes()
    (folder / "clipcap.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError) as info:
        ClipCapTeacher.from_pretrained(folder)
    assert "clipcap.pt" in str(info.value) and "\n" not in str(info.value)


def test_missing_mapper_key_is_named(tiny_teachers, tmp_path):
    folder = _copy_teacher(tiny_teachers[("mlp", "openai")], tmp_path / "t")
    state = torch.load(folder / "clipcap.pt", weights_only=True)
    del state["clip_project.model.2.weight"]
    torch.save(state, folder / "clipcap.pt")
    with pytest.raises(WeightsError, match="clip_project.model.2.weight"):
        ClipCapTeacher.from_pretrained(folder)


class _NotWeights:
    pass


def test_pickle_that_builds_objects_is_refused(tiny_teachers, tmp_path):
    folder = _copy_teacher(tiny_teachers[("mlp", "openai")], tmp_path / "t")
    with open(folder / "clipcap.pt", "wb") as fh:
        torch.save({"clip_project.model.0.weight": _NotWeights()}, fh, pickle_module=pickle)
    with pytest.raises(WeightsError, match="refused"):
        ClipCapTeacher.from_pretrained(folder)


def test_manifest_errors_name_the_problem(tiny_teachers, tmp_path):
    folder = _copy_teacher(tiny_teachers[("mlp", "openai")], tmp_path / "t")
    manifest = json.loads((folder / "teacher.json").read_text())
    with pytest.raises(WeightsError, match="not a teacher preset"):
        ClipCapTeacher.from_pretrained(tmp_path / "nowhere")
    (folder / "teacher.json").write_text(json.dumps({**manifest, "clipcap": "missing.pt"}))
    with pytest.raises(WeightsError, match="'clipcap'.*missing.pt"):
        ClipCapTeacher.from_pretrained(folder)
    (folder / "teacher.json").write_text(json.dumps({k: v for k, v in manifest.items() if k != "prefix_length"}))
    with pytest.raises(WeightsError, match="prefix_length"):
        ClipCapTeacher.from_pretrained(folder)
    # A prefix length that does not divide the mapper's output.
    (folder / "teacher.json").write_text(json.dumps({**manifest, "prefix_length": 3}))
    with pytest.raises(WeightsError, match="prefix length 3"):
        ClipCapTeacher.from_pretrained(folder)


def test_clip_and_mapper_dimensions_must_agree(tiny_teachers, tmp_path):
    folder = _copy_teacher(tiny_teachers[("mlp", "openai")], tmp_path / "t")
    torch.save(openai_vit_weights(out=24), folder / "other_clip.pt")  # 24-d embeddings, the mapper wants 32
    manifest = json.loads((folder / "teacher.json").read_text())
    (folder / "teacher.json").write_text(json.dumps({**manifest, "clip": {"weights": "other_clip.pt"}}))
    with pytest.raises(WeightsError, match="expects 32-d CLIP embeddings"):
        ClipCapTeacher.from_pretrained(folder)
