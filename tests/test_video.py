"""`lumicap enhance clip.mp4`: frames, timing, rotation and sound kept; the file rules of photos; one line for a
bad file; and the temporal smoothing (``lumicap.inference.temporal``) that keeps the result steady.

Clips are a few dark 64x48 frames made here with PyAV (``_video_support``); the model is the shipped default
(IAT, 0.4 MB) or a random IAT / tiny conv network saved in the real formats."""

from __future__ import annotations

import fractions
import os
import sys

import numpy as np
import pytest
import torch

from _video_support import (audio_packets, dark_frames, decoded_frames, first_frame_rotation, frame_times,
                            make_clip)
from lumicap.cli import main
from lumicap.files import is_partial_file
from lumicap.inference.fullres import FullResolutionTransform, PredictedTransform
from lumicap.inference.temporal import SceneCutDetector, TransformSmoother, luminance
from lumicap.inference.video import FrameEnhancer
from lumicap.models import build_model

pytestmark = pytest.mark.usefixtures("one_thread")


def _enhance(*args) -> int:
    return main(["enhance", *map(str, args), "--no-progress"])


def _mean_level(frames: list[np.ndarray]) -> float:
    return float(np.mean([f.mean() for f in frames]))


# ------------------------------------------------------------------------------------------------ files


def test_a_clip_keeps_its_frames_timing_size_and_sound(tmp_path, capsys):
    clip = make_clip(tmp_path / "night.mp4", frames=10)
    assert _enhance(clip, "--out", tmp_path / "out") == 0
    out = tmp_path / "out" / "night.mp4"
    assert "1 video (10 frames" in capsys.readouterr().out
    assert frame_times(out) == pytest.approx(frame_times(clip), abs=1e-6) and len(frame_times(out)) == 10
    before, after = decoded_frames(clip), decoded_frames(out)
    assert after[0].shape == before[0].shape == (48, 64, 3)
    assert _mean_level(after) > 1.5 * _mean_level(before)  # enhanced, not copied
    sound_in, sound_out = audio_packets(clip), audio_packets(out)
    assert len(sound_in) > 3 and sound_out == sound_in  # every packet, same bytes, same times
    import av

    with av.open(str(clip)) as source, av.open(str(out)) as result:
        stream = result.streams.video[0]
        assert stream.codec_context.name == "h264" and stream.codec_context.pix_fmt == "yuv420p"
        assert stream.guessed_rate == fractions.Fraction(24000, 1001)
        assert stream.average_rate == source.streams.video[0].average_rate


def test_variable_frame_timing_and_rotation_are_kept(tmp_path):
    times = [0.0, 0.04, 0.1, 0.11, 0.3, 0.5]  # a phone's variable frame rate
    mov = make_clip(tmp_path / "phone.mov", frames=6, times=times, rotation=90, audio=None)
    mkv = make_clip(tmp_path / "cam.mkv", frames=6, times=times, audio=None)  # Matroska: no frame count stored
    assert _enhance(mov, mkv, "--out", tmp_path / "out") == 0
    assert frame_times(tmp_path / "out" / "phone.mp4") == pytest.approx(times, abs=1e-4)
    assert frame_times(tmp_path / "out" / "cam.mp4") == pytest.approx(times, abs=1e-3)  # mkv keeps milliseconds
    assert first_frame_rotation(mov) == 90 and first_frame_rotation(tmp_path / "out" / "phone.mp4") == 90
    assert first_frame_rotation(tmp_path / "out" / "cam.mp4") == 0


def test_container_codec_and_a_sound_mp4_cannot_hold(tmp_path, capsys):
    clip = make_clip(tmp_path / "old.mov", frames=4, audio="pcm_u8")  # 8-bit PCM: fine in .mov, not in .mp4
    assert _enhance(clip, "--out", tmp_path / "out") == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("lumicap: error: ") and "pcm_u8" in err[0] and "--video-format mkv" in err[0]
    assert not (tmp_path / "out").exists() or os.listdir(tmp_path / "out") == []
    assert _enhance(clip, "--out", tmp_path / "out", "--video-format", "mkv", "--codec", "hevc", "--crf", "30") == 0
    out = tmp_path / "out" / "old.mkv"
    import av

    with av.open(str(out)) as container:
        assert container.streams.video[0].codec_context.name == "hevc"
    assert audio_packets(out) == audio_packets(clip) and len(frame_times(out)) == 4


def test_existing_outputs_are_kept_unless_overwrite_and_inputs_never_replaced(tmp_path, capsys):
    clip = make_clip(tmp_path / "a.mp4", frames=3, audio=None)
    out = tmp_path / "out"
    assert _enhance(clip, "--out", out) == 0
    written = (out / "a.mp4").stat().st_mtime_ns
    assert _enhance(clip, "--out", out) == 0
    assert "skipped 1 whose output exists" in capsys.readouterr().out
    assert (out / "a.mp4").stat().st_mtime_ns == written
    assert _enhance(clip, "--out", out, "--overwrite") == 0
    assert (out / "a.mp4").stat().st_mtime_ns != written
    original = clip.read_bytes()
    for extra in ([], ["--overwrite"]):
        assert _enhance(clip, "--out", tmp_path, *extra) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "would replace the input itself" in err[0]
    mov = make_clip(tmp_path / "b.mov", frames=2, audio=None)
    assert _enhance(mov, clip, "--out", tmp_path, "--video-format", "mov", "--overwrite") == 2
    assert "would replace the input itself" in capsys.readouterr().err
    assert clip.read_bytes() == original and not (tmp_path / "b.mp4").exists()


def test_ctrl_c_leaves_no_half_written_video(tmp_path, monkeypatch, capsys):
    clip = make_clip(tmp_path / "long.mp4", frames=8)
    out = tmp_path / "out"
    seen_parts, calls = [], []
    enhance_frame = FrameEnhancer.__call__

    def interrupted(self, frame, dt):
        seen_parts.extend(name for name in os.listdir(out) if name.endswith(".part"))
        calls.append(dt)
        if len(calls) == 4:
            raise KeyboardInterrupt  # as Ctrl-C does, in the middle of the clip
        return enhance_frame(self, frame, dt)

    monkeypatch.setattr(FrameEnhancer, "__call__", interrupted)
    assert _enhance(clip, "--out", out) == 130
    assert "interrupted" in capsys.readouterr().err
    assert os.listdir(out) == []  # neither long.mp4 nor its temporary file
    # While it ran, the output was a hidden temporary file of the kind a later run removes when its writer is dead.
    assert seen_parts and all(is_partial_file(name) for name in seen_parts)


def test_bad_videos_get_one_line_and_leave_nothing(tmp_path, capsys):
    good = make_clip(tmp_path / "good.mp4", frames=20).read_bytes()
    (tmp_path / "junk.mp4").write_bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    (tmp_path / "empty.mov").write_bytes(b"")
    (tmp_path / "cut.mp4").write_bytes(good[: len(good) // 2])  # mp4's index is at the end: unreadable
    damaged = bytearray(good)
    damaged[len(good) // 3 : len(good) // 3 + 1500] = np.random.default_rng(1).integers(0, 256, 1500, dtype=np.uint8).tobytes()
    (tmp_path / "damaged.mp4").write_bytes(bytes(damaged))
    names = ["junk.mp4", "empty.mov", "cut.mp4", "damaged.mp4"]
    assert _enhance(*(tmp_path / n for n in names), "--out", tmp_path / "out") == 1
    captured = capsys.readouterr()
    errors = [line for line in captured.err.splitlines() if line.startswith("lumicap: error:")]
    assert len(errors) == 4 and captured.err.strip().splitlines() == errors  # nothing else (no FFmpeg log)
    for name in names:
        assert sum(name in line for line in errors) == 1
    assert "4 failed" in captured.out and os.listdir(tmp_path / "out") == []


def test_a_truncated_matroska_clip_gives_what_it_has_with_a_note(tmp_path, capsys):
    rng = np.random.default_rng(0)
    grainy = [rng.integers(0, 80, (48, 64, 3), dtype=np.uint8) for _ in range(24)]  # frames of similar size
    whole = make_clip(tmp_path / "whole.mkv", frames=grainy, audio=None).read_bytes()
    (tmp_path / "cut.mkv").write_bytes(whole[: len(whole) // 2])
    assert _enhance(tmp_path / "cut.mkv", "--out", tmp_path / "out") == 0
    notes = [line for line in capsys.readouterr().err.splitlines() if "lumicap: note:" in line]
    assert len(notes) == 1 and "cut.mkv" in notes[0] and "truncated" in notes[0]
    assert 0 < len(frame_times(tmp_path / "out" / "cut.mp4")) < 24


def test_without_pyav_a_video_is_one_line_with_the_install_command(tmp_path, monkeypatch, capsys):
    clip = make_clip(tmp_path / "a.mp4", frames=2, audio=None)
    monkeypatch.setitem(sys.modules, "av", None)  # import av now fails as if it were not installed
    assert _enhance(clip, "--out", tmp_path / "out") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "a.mp4" in err[0] and "pip install 'lumicap[video]'" in err[0]
    assert not (tmp_path / "out" / "a.mp4").exists()


def test_other_networks_enhance_each_frame_as_a_photo(tmp_path, tiny_model, capsys):
    model_file = tiny_model
    clip = make_clip(tmp_path / "a.mkv", frames=5)
    assert _enhance(clip, "--model", model_file, "--temporal", "none", "--out", tmp_path / "out") == 0
    assert "each frame enhanced as a photo" in capsys.readouterr().out
    from lumicap.inference import enhance_image, load_inference_model

    model = load_inference_model(model_file)
    expected = enhance_image(model, torch.from_numpy(decoded_frames(clip)[0]).permute(2, 0, 1).float() / 255, model.device)
    got = torch.from_numpy(decoded_frames(tmp_path / "out" / "a.mp4")[0]).permute(2, 0, 1).float() / 255
    assert (got - expected).abs().mean() < 0.02  # the same picture, through H.264 at CRF 18


# --------------------------------------------------------------------------------------- per-frame path


def _random_iat(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = build_model("iat").eval()
    with torch.no_grad():  # random (not initial) weights: gamma and colour depend on the frame
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model


def _frames(count: int, seed: int = 0, level: int = 40) -> list[torch.Tensor]:
    return [torch.from_numpy(a).permute(2, 0, 1)[None].float() / 255 for a in dark_frames(count, seed=seed, level=level)]


def test_video_frames_go_through_the_photo_pipeline():
    # Without smoothing a frame gets exactly what a photo of it gets from the model's chain (here highlight
    # protection around a chroma gain around the full-resolution transform, as load_inference_model stacks
    # them) at that network size: one per-frame function.
    from lumicap.inference.chroma import ChromaGain
    from lumicap.inference.highlights import HighlightProtection

    iat = _random_iat()
    frame = _frames(1)[0]
    frame[..., :10, :10] = 0.95  # a bright corner, where highlight protection keeps the input
    for limit in (0.001, 0.0):
        photo = HighlightProtection(ChromaGain(FullResolutionTransform(iat, limit or float("inf")), 1.3))
        enhancer = FrameEnhancer(photo, torch.device("cpu"), temporal="none", network_megapixels=limit)
        with torch.no_grad():
            assert torch.equal(enhancer(frame, 1 / 24), photo(frame)[0])
        assert "highlight protection, chroma gain" in enhancer.describe()
    assert torch.allclose(enhancer(frame, 1 / 24)[..., :10, :10], frame[0, :, :10, :10])
    # Whole frames give the network's own forward, also with the reflect border and a coarser global view.
    torch.manual_seed(1)
    framed = build_model("iat", border="reflect", global_downscale=2).eval()
    with torch.no_grad():
        whole = FrameEnhancer(framed, torch.device("cpu"), temporal="none", network_megapixels=0.0)(frame, 1 / 24)
        assert torch.equal(whole, framed(frame)[0])
    seen = []
    iat.local_net.register_forward_pre_hook(lambda m, args: seen.append(tuple(args[0].shape[-2:])))
    FrameEnhancer(iat, torch.device("cpu"), temporal="none", network_megapixels=0.001)(frame, 1 / 24)
    assert seen[-1][0] * seen[-1][1] <= 1000  # the network saw a small copy of the 64x48 frame
    # Smoothing goes inside the same chain: the photo model itself is left as it was.
    smoothed = FrameEnhancer(photo, torch.device("cpu"), temporal="smooth", network_megapixels=0.001)
    smoothed(frame, 1 / 24)
    assert photo.module.module.adjust is None and photo.module.module.network_megapixels == float("inf")
    assert smoothed.chain.module.module.adjust is not None and isinstance(smoothed.chain, HighlightProtection)
    assert isinstance(smoothed.chain.module, ChromaGain) and smoothed.chain.module.gain == 1.3


def test_smoothing_steadies_a_noisy_static_scene_without_changing_its_brightness():
    iat = _random_iat(seed=2)
    frames = _frames(24, seed=3)
    levels = {}
    for mode in ("none", "smooth"):
        enhancer = FrameEnhancer(iat, torch.device("cpu"), temporal=mode, network_megapixels=0.0)
        levels[mode] = torch.stack([luminance(enhancer(f, 1 / 24)).mean() for f in frames])
    flicker = {mode: (lv[1:] - lv[:-1]).abs().mean() for mode, lv in levels.items()}
    assert flicker["none"] > 0 and flicker["smooth"] < 0.5 * flicker["none"]
    assert abs(levels["smooth"].mean() / levels["none"].mean() - 1) < 0.02


def _transform(gamma: float, level: float) -> PredictedTransform:
    return PredictedTransform(mul=torch.full((1, 3, 4, 4), level), add=torch.zeros(1, 3, 4, 4),
                              gamma=torch.tensor([[gamma]]), color=torch.eye(3)[None])


def test_the_smoother_averages_over_seconds_and_restarts_at_a_cut():
    scene = _frames(1)[0]
    other = torch.flip(scene, dims=[-1, -2]) * 3  # another picture, and brighter
    smoother = TransformSmoother(seconds=0.5)
    first = smoother(scene, _transform(1.0, 2.0), dt=0.04)
    assert first.gamma.item() == 1.0  # the first frame is its own average
    second = smoother(scene, _transform(2.0, 4.0), dt=0.04)
    weight = 1 - np.exp(-0.04 / 0.5)
    assert second.gamma.item() == pytest.approx(1.0 + weight, rel=1e-6)
    assert second.mul.mean().item() == pytest.approx(2.0 + 2.0 * weight, rel=1e-5)  # the map's level, averaged
    # Twice the time between frames (12 fps instead of 25) moves the average further.
    slower = TransformSmoother(seconds=0.5)
    slower(scene, _transform(1.0, 2.0), dt=0.08)
    assert slower(scene, _transform(2.0, 4.0), dt=0.08).gamma.item() > second.gamma.item()
    after_cut = smoother(other, _transform(3.0, 1.0), dt=0.04)
    assert after_cut.gamma.item() == 3.0 and after_cut.mul.mean().item() == pytest.approx(1.0)
    assert smoother.cut_frames == [0, 2]


def test_scene_cuts_are_found_and_noise_or_a_slow_pan_is_not_a_cut():
    big = torch.from_numpy(dark_frames(1, height=96, width=160, seed=5)[0]).permute(2, 0, 1)[None].float() / 255
    detector = SceneCutDetector()
    pan = [big[..., 10:58, 4 * t : 4 * t + 96] + 0.005 * torch.randn(1, 3, 48, 96) for t in range(12)]
    assert [detector(f) for f in pan] == [True] + [False] * 11
    other = torch.rand(1, 3, 48, 96) * 0.2
    assert detector(other) is True  # a different scene
    assert detector(other * 1.1) is False  # a little brighter: not a cut
    assert detector(other * 2.5) is True  # the light switched on
