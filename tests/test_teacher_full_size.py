"""Random teachers with the real sizes (ViT-B/32 + 10x768 MLP + GPT-2 124M; RN50x4 + 40-token transformer
mapper), saved in the real formats and loaded through the public API. Slow (about 1.5 GB written): run
with ``python -m pytest -m slow tests/test_teacher_full_size.py``."""

from __future__ import annotations

import pytest
import torch

from lumicap.teacher import ClipCapTeacher, MultimodalFeatureLoss, save_random_teacher

pytestmark = pytest.mark.slow


def count(module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_vit_b32_mlp_gpt2_full_size(tmp_path):
    folder = save_random_teacher(tmp_path / "coco-like", "mlp", clip_format="openai", full_size=True)
    teacher = ClipCapTeacher.from_pretrained(folder)
    # ViT-B/32 image tower: 768 wide, 12 blocks, 7x7+1 positions, 512-d projection.
    width, grid = 768, 7
    block = 4 * width * width + 4 * width + 2 * (width * 4 * width) + 4 * width + width + 4 * width
    vit = width * 3 * 32 * 32 + width + (grid * grid + 1) * width + 2 * 2 * width + 12 * block + width * 512
    assert count(teacher.clip) == vit == 87_849_216
    assert count(teacher.mapper) == 512 * 3840 + 3840 + 3840 * 7680 + 7680 == 31_468_800
    assert count(teacher.gpt) == 124_439_808  # GPT-2 small, lm_head tied to the token embedding
    images = torch.rand(2, 3, 96, 128)
    with torch.no_grad():
        embedding = teacher.clip_embedding(images)
        prefix = teacher.prefix_embeddings(embedding)
    assert embedding.shape == (2, 512) and prefix.shape == (2, 10, 768)
    assert len(teacher.caption(images[:1], max_tokens=5)) == 1

    mfr = MultimodalFeatureLoss(teacher)
    assert mfr(images.clone(), images).item() == 0.0
    output = (images + 0.05 * torch.randn_like(images)).clamp(0, 1).requires_grad_(True)
    loss = mfr(output, images)
    loss.backward()
    assert loss.item() > 0 and output.grad.abs().sum() > 0
    assert all(p.grad is None for p in teacher.parameters())


def test_rn50x4_transformer_mapper_full_size(tmp_path):
    folder = save_random_teacher(tmp_path / "coco-transformer-like", "transformer", full_size=True)
    teacher = ClipCapTeacher.from_pretrained(folder)
    assert teacher.image_size == 288 and teacher.clip.output_dim == 640
    width, hidden, layers = 768, 1536, 8
    layer = 2 * 2 * width + width * width + width * 2 * width + width * width + width + width * hidden + hidden + hidden * width + width
    assert count(teacher.mapper) == 640 * 40 * width + 40 * width + 40 * width + layers * layer == 57_520_128
    images = torch.rand(1, 3, 120, 160)
    with torch.no_grad():
        prefix = teacher.prefix_embeddings(teacher.clip_embedding(images))
    assert prefix.shape == (1, 40, 768)
    mfr = MultimodalFeatureLoss(teacher, preprocess="tile")
    output = (images + 0.05 * torch.randn_like(images)).clamp(0, 1).requires_grad_(True)
    loss = mfr(output, images)
    loss.backward()
    assert loss.item() > 0 and torch.isfinite(output.grad).all()
