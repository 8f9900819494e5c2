"""Judges (lumicap.metrics.judges): one interface over NIQE, the exposure measures and the captioner; the
teacher judge with tiny random teachers saved in the real formats (a Hugging Face ViT + MLP mapper, an
OpenAI-layout ResNet + transformer mapper)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from skimage import data

from lumicap.metrics import (
    ExposureJudge,
    NiqeJudge,
    TeacherJudge,
    clipped_share,
    colourfulness,
    loe,
    make_judge,
    mean_brightness,
    niqe,
)
from lumicap.metrics.judges import Judge, judge_names
from lumicap.teacher import MultimodalFeatureLoss, save_tiny_teacher

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module", params=["mlp", "transformer"])
def teacher_dir(request, tmp_path_factory):
    return save_tiny_teacher(tmp_path_factory.mktemp(f"judge-{request.param}"), request.param, seed=3)


def _photos():
    enhanced = np.ascontiguousarray(data.astronaut()[::2, ::2])  # 256 x 256
    low = (enhanced // 6).astype(np.uint8)
    return enhanced, low


def test_niqe_and_exposure_judges_give_the_measures_of_the_functions():
    enhanced, low = _photos()
    assert NiqeJudge("y").score(enhanced) == {"niqe_y": niqe(enhanced, "y")}
    with_low = NiqeJudge().score(enhanced, low=low)
    assert with_low == {"niqe_gray": niqe(enhanced), "niqe_gray_low": niqe(low)}
    assert math.isnan(NiqeJudge().score(enhanced[:95])["niqe_gray"])  # under one 96x96 block: undefined

    exposure = ExposureJudge().score(enhanced, low=low)
    assert exposure["brightness"] == mean_brightness(enhanced) and exposure["colourfulness"] == colourfulness(enhanced)
    assert exposure["clipped_pct"] == 100 * clipped_share(enhanced)
    assert exposure["clipped_pct_change"] == pytest.approx(100 * (clipped_share(enhanced) - clipped_share(low)))
    assert exposure["loe"] == loe(low, enhanced)
    assert set(ExposureJudge().score(enhanced)) == {"brightness", "clipped_pct", "colourfulness"}


def test_judges_are_made_by_name_and_unknown_names_are_refused():
    assert {"niqe", "exposure", "teacher"} <= set(judge_names())
    assert isinstance(make_judge("niqe", mode="y"), NiqeJudge) and make_judge("niqe", mode="y").mode == "y"
    with pytest.raises(ValueError, match="unknown judge 'brisque'"):
        make_judge("brisque")
    with pytest.raises(ValueError, match="mode"):
        NiqeJudge("rgb")
    with pytest.raises(TypeError):
        Judge()  # the interface alone cannot score


def test_teacher_judge_distances_are_the_loss_terms_without_gradient(teacher_dir):
    judge = TeacherJudge(str(teacher_dir), captions=True)
    enhanced, low = _photos()
    reference = np.ascontiguousarray(data.chelsea()[:256, :256])
    scores = judge.score(enhanced, reference=reference, low=low)

    def tensor(array):
        return torch.from_numpy(array).permute(2, 0, 1).float().div(255).unsqueeze(0)

    loss = MultimodalFeatureLoss.from_pretrained(teacher_dir)
    with torch.no_grad():
        loss(tensor(enhanced), tensor(reference))
    expected = loss.last_terms
    for term in ("clip", "prefix", "gpt"):
        assert scores[f"teacher_{term}_vs_ref"] == pytest.approx(expected[f"mfr_{term}"], rel=1e-6)
        assert scores[f"teacher_{term}_vs_low"] > 0
    assert all(p.grad is None and not p.requires_grad for p in judge.loss.teacher.parameters())
    assert isinstance(scores["caption"], str) and isinstance(scores["caption_low"], str)
    assert scores["caption_ref"] == judge.loss.teacher.caption(tensor(reference))[0].strip()


def test_teacher_judge_gives_zero_for_an_unchanged_photo_and_sees_only_the_centre(teacher_dir):
    judge = TeacherJudge(str(teacher_dir))
    enhanced, _ = _photos()
    wide = np.concatenate([enhanced, enhanced[:, :64]], axis=1)  # 256 x 320: the crop leaves 32 px each side
    same = judge.score(wide, reference=wide.copy())
    assert all(value == 0.0 for value in same.values())
    edited = wide.copy()
    edited[:, :8] = 255  # outside CLIP's centre crop
    assert all(value == 0.0 for value in judge.score(edited, reference=wide).values())
    edited[100:150, 100:150] = 255  # inside it
    assert all(value > 0 for value in judge.score(edited, reference=wide).values())
    assert judge.score(wide) == {}  # nothing to compare with, no captions asked for


def test_teacher_judge_shrinks_big_photos_as_the_captions_do(teacher_dir):
    from lumicap.teacher.preprocess import shrink_for_teacher

    judge = TeacherJudge(str(teacher_dir))
    big = np.ascontiguousarray(np.repeat(np.repeat(data.astronaut(), 2, axis=0), 2, axis=1))  # 1024 x 1024
    darker = (big // 2).astype(np.uint8)
    scores = judge.score(big, low=darker)
    small = {k: shrink_for_teacher(torch.from_numpy(v).permute(2, 0, 1).float().div(255)) for k, v in
             (("big", big), ("darker", darker))}
    assert small["big"].shape[-2:] == (448, 448)
    with torch.no_grad():
        judge.loss(small["big"].unsqueeze(0), small["darker"].unsqueeze(0))
    assert scores["teacher_gpt_vs_low"] == pytest.approx(judge.loss.last_terms["mfr_gpt"], rel=1e-6)
    with pytest.raises(ValueError, match="low image"):
        judge.score(big, low=darker[:512])
