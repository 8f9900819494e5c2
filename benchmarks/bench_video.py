"""Video: flicker per frame vs smoothed on three clips made from the project's photos, and frames per second.

Part ``flicker`` (quality of the temporal smoothing, ``lumicap.inference.temporal``). Three clips, frames
quantised to 8 bits as a decoder would give them, 30 fps:

- ``static``: one LOL-v1 eval15 dark photo (600x400) held for ``--clip-frames`` frames, fresh Gaussian sensor
  noise (sigma 2 levels of 255) on each;
- ``pan``: a 640x360 window sliding across DICM/30 (960x608) from left to right over 1.5x as many frames
  (about 2.4 px per frame at the default length), with the same noise;
- ``cut``: one eval15 photo, then another, half the frames each.

Each clip goes through ``FrameEnhancer`` (the per-frame step of ``lumicap enhance clip.mp4``, without the
H.264 round trip, whose own noise would blur the comparison) in these modes:

- ``photo``: each frame as ``lumicap enhance`` treats a photo (the network on the whole frame);
- ``none``: ``--temporal none``: each frame on its own, the network at the video size (see ``--network-megapixels``);
- ``global``: gamma and colour matrix smoothed, the gain/offset maps as predicted;
- ``smooth``: ``--temporal smooth``, the default: gamma, colour matrix and the maps' levels smoothed, reset at cuts;
- ``no-reset``: as ``smooth`` but never reset (what the cut detector is worth).

Measures: flicker = mean absolute change of a frame's mean luminance (Rec. 709 weights) from the frame
before, in 8-bit levels, and its ratio to ``none`` (goal on ``static``: ``smooth`` <= 0.25x); brightness =
the clip's mean luminance against ``none`` (goal: within 2%); cuts = frames where the smoothing restarted
(the first frame is one); settle = frames after the true cut until each channel's mean is within 2% of the
new scene's look (the ``none`` channel means averaged over the frames after the cut) for the rest of the
clip (goal: <= 5).

Part ``eval15``: what the video's smaller network input costs in quality: LOL-v1 eval15 mean PSNR / SSIM
(8-bit outputs, as ``lumicap eval`` measures them) with the network on the whole 600x400 photo (as photos
are enhanced) and at the video size. Never used to choose anything in the model.

Part ``speed``: ``enhance_video`` end to end (decode, enhance, H.264 CRF 18 encode, mux; one second of AAC
sound copied) on a clip of ``--frames`` frames of the static scene resized to each ``--sizes`` size,
median of ``--repeats`` runs after a warm-up, modes interleaved per round; and, apart, the network step
(``predict``) and the full-resolution step (``apply``) per frame.

    python benchmarks/bench_video.py --threads 2                       # everything, the shipped default model
    python benchmarks/bench_video.py --threads 2 --model NEW.safetensors   # the same for another model
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402
from _common import Column  # noqa: E402

BENCHMARK = "video"
SHARED_DATA = _common.REPO_ROOT.parent / "shared" / "data"
# Photos under --data (default ../shared/data beside the checkout); a bundled sample photo stands in for an absent one.
STATIC_PHOTO = Path("lol-v1") / "eval15" / "low" / "1.png"
CUT_PHOTO = Path("lol-v1") / "eval15" / "low" / "22.png"
PAN_PHOTO = Path("unpaired") / "DICM" / "30.jpg"
FPS = 30.0
NOISE_LEVELS = 2.0
MODES = ("photo", "none", "global", "smooth", "no-reset")
PARTS = ("flicker", "eval15", "speed")

FLICKER_COLUMNS = [
    Column("clip", "clip"),
    Column("mode", "mode"),
    Column("flicker", "flicker (levels)", "{:.3f}"),
    Column("flicker_ratio", "x none", "{:.2f}"),
    Column("brightness", "mean luminance", "{:.1f}"),
    Column("brightness_diff_pct", "vs none %", "{:+.2f}"),
    Column("cuts", "restarts at"),
    Column("settle", "settle (frames)"),
    Column("error", "error"),
]
EVAL_COLUMNS = [
    Column("network", "network input"),
    Column("psnr", "eval15 PSNR (dB)", "{:.2f}"),
    Column("ssim", "SSIM", "{:.3f}"),
    Column("error", "error"),
]
SPEED_COLUMNS = [
    Column("size", "size"),
    Column("mode", "mode"),
    Column("network", "network input"),
    Column("fps", "fps end to end", "{:.1f}"),
    Column("cpu_ms", "CPU ms/frame", "{:.0f}"),
    Column("predict_ms", "network ms/frame", "{:.0f}"),
    Column("apply_ms", "full-res ms/frame", "{:.0f}"),
    Column("error", "error"),
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default", help="--model value (default: the shipped default)")
    parser.add_argument("--data", default=str(SHARED_DATA), help="folder with lol-v1/ and unpaired/ (default: %(default)s)")
    parser.add_argument("--parts", default="flicker,eval15,speed", help="comma list of flicker, eval15, speed (default all)")
    parser.add_argument("--clip-frames", type=int, default=60, help="frames of the static and cut clips (default 60)")
    parser.add_argument("--clip-scale", type=float, default=1.0,
                        help="resize the clips' photos by this factor first (default 1; the test suite uses a small one)")
    parser.add_argument("--frames", type=int, default=30, help="frames of the speed clips (default 30)")
    parser.add_argument("--sizes", default="640x360,1920x1080", help="comma list of WxH for the speed part")
    parser.add_argument("--network-megapixels", type=float, default=None,
                        help="the network's frame size for video (default: lumicap's video default)")
    parser.add_argument("--speed-modes", default="smooth,whole,photo",
                        help="speed part: smooth (the default video path), whole (network on whole frames), none, "
                        "photo (the eval15 photo through lumicap enhance, interleaved: a reference for the load, "
                        "its quiet-machine time is in the README's model card)")
    _common.add_common_arguments(parser)
    return parser


# ------------------------------------------------------------------------------------------------ clips


DATA = [SHARED_DATA]  # set from --data by run()


def _photo(relative: Path, fallback_index: int) -> torch.Tensor:
    """(3, H, W) in [0, 1]: the photo under --data, or a darkened bundled sample photo where it is absent."""
    from lumicap.data.io import read_image

    if (DATA[0] / relative).is_file():
        return read_image(DATA[0] / relative)
    return _demo_photos()[fallback_index]


@functools.lru_cache(maxsize=1)
def _demo_photos() -> list[torch.Tensor]:
    from lumicap.data.io import read_image
    from lumicap.report.demo import write_demo_inputs

    with tempfile.TemporaryDirectory(prefix="lumicap-bench-video-") as folder:
        demo = write_demo_inputs(Path(folder))
        return [read_image(path) for path in sorted(demo.low_dir.glob("*.png"))]


def _noisy(frame: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    noise = torch.randn(frame.shape, generator=generator) * (NOISE_LEVELS / 255.0)
    return ((frame + noise).clamp(0, 1) * 255.0).round() / 255.0  # 8-bit, as decoded video


def make_clips(frames: int, scale: float = 1.0) -> dict[str, tuple[list[torch.Tensor], int | None]]:
    """{name: (frames (1,3,H,W), index of the true cut or None)}."""
    generator = torch.Generator().manual_seed(0)

    def scaled(photo: torch.Tensor) -> torch.Tensor:
        if scale == 1.0:
            return photo
        size = [max(8, round(side * scale)) for side in photo.shape[-2:]]
        return F.interpolate(photo[None], size=size, mode="area")[0]

    static = scaled(_photo(STATIC_PHOTO, 0))
    other = scaled(_photo(CUT_PHOTO, 1))
    wide = scaled(_photo(PAN_PHOTO, 2))
    if other.shape != static.shape:
        other = F.interpolate(other[None], size=static.shape[-2:], mode="area")[0]
    clips: dict[str, tuple[list[torch.Tensor], int | None]] = {}
    clips["static"] = ([_noisy(static, generator)[None] for _ in range(frames)], None)
    height, width = min(round(360 * scale), wide.shape[1]), min(round(640 * scale), wide.shape[2] * 2 // 3)
    pan_frames = frames * 3 // 2
    travel = wide.shape[2] - width
    top = (wide.shape[1] - height) // 2
    pan = []
    for index in range(pan_frames):
        left = round(index * travel / max(1, pan_frames - 1))
        pan.append(_noisy(wide[:, top : top + height, left : left + width], generator)[None])
    clips["pan"] = (pan, None)
    half = frames // 2
    clips["cut"] = ([_noisy(static, generator)[None] for _ in range(half)]
                    + [_noisy(other, generator)[None] for _ in range(frames - half)], half)
    return clips


# ---------------------------------------------------------------------------------------------- flicker


def _enhancer(model, mode: str, network_megapixels: float | None):
    from lumicap.inference.temporal import SceneCutDetector
    from lumicap.inference.video import FrameEnhancer

    if mode == "photo":
        from lumicap.inference import enhance_image

        return lambda frame, dt: enhance_image(model, frame[0], model.device)
    enhancer = FrameEnhancer(model, model.device, temporal="none" if mode == "none" else "smooth",
                             network_megapixels=network_megapixels)
    if mode == "global" and hasattr(enhancer.smoother, "smooth_map_levels"):
        enhancer.smoother.smooth_map_levels = False
    if mode == "no-reset":
        enhancer.smoother.cuts = SceneCutDetector(threshold=float("inf"), brightness_ratio=float("inf"))
    return enhancer


def _quantised(frame: torch.Tensor) -> torch.Tensor:
    return (frame.clamp(0, 1) * 255.0).round() / 255.0  # what the encoder is given


def measure_flicker(model, clips, network_megapixels) -> list[dict[str, Any]]:
    from lumicap.inference.temporal import luminance

    rows = []
    for name, (frames, cut) in clips.items():
        results = {}
        for mode in MODES:
            enhancer = _enhancer(model, mode, network_megapixels)
            start = time.perf_counter()
            with torch.no_grad():
                outputs = [_quantised(enhancer(frame, 1.0 / FPS)) for frame in frames]
            levels = torch.stack([luminance(out).mean() for out in outputs]) * 255.0
            channels = torch.stack([out.mean(dim=(-2, -1)) for out in outputs]) * 255.0  # (T, 3)
            results[mode] = (levels, channels, getattr(enhancer, "cut_frames", None))
            print(f"  {name:6} {mode:8} {len(frames)} frames in {time.perf_counter() - start:.1f} s", flush=True)
        base_levels, base_channels, _ = results["none"]
        base_flicker = float((base_levels[1:] - base_levels[:-1]).abs().mean())
        for mode in MODES:
            levels, channels, cuts = results[mode]
            flicker = float((levels[1:] - levels[:-1]).abs().mean())
            row = {
                "clip": name, "mode": mode, "frames": len(frames), "flicker": flicker,
                "flicker_ratio": flicker / base_flicker if base_flicker > 0 else None,
                "brightness": float(levels.mean()),
                "brightness_diff_pct": 100.0 * (float(levels.mean()) / float(base_levels.mean()) - 1.0),
                "cuts": ",".join(map(str, cuts)) if cuts is not None else None,
                "settle": settle_frames(channels, base_channels, cut) if cut is not None else None,
                "error": None,
            }
            rows.append(row)
    return rows


def settle_frames(channels: torch.Tensor, reference: torch.Tensor, cut: int, tolerance: float = 0.02) -> int:
    """Frames after ``cut`` until every channel mean stays within ``tolerance`` of the new scene's look to the end.

    The new scene's look: the per-frame (``none``) channel means averaged over the frames after the cut (the
    per-frame result itself wobbles from frame to frame). ``channels``, ``reference``: (T, 3).
    """
    look = reference[cut:].mean(dim=0)
    close = ((channels - look).abs() <= tolerance * look.clamp_min(1.0)).all(dim=1)
    settled = len(close)
    for index in range(len(close) - 1, cut - 1, -1):
        if not close[index]:
            break
        settled = index
    return settled - cut


# ----------------------------------------------------------------------------------------------- eval15


def measure_eval15(model, network_megapixels: float | None) -> list[dict[str, Any]]:
    from lumicap.data.io import read_image
    from lumicap.inference.fullres import FullResolutionTransform, supports_full_resolution_transform
    from lumicap.inference.video import VIDEO_NETWORK_MEGAPIXELS
    from lumicap.metrics import psnr, ssim_matlab

    lows = sorted((DATA[0] / "lol-v1" / "eval15" / "low").glob("*.png"))
    module = model.module  # the network inside the steps around it (highlight protection, chroma, transform)
    while not supports_full_resolution_transform(module) and isinstance(getattr(module, "module", None), torch.nn.Module):
        module = module.module
    if not lows or not supports_full_resolution_transform(module):
        why = "no eval15 photos under --data" if not lows else f"{model.name} predicts no transform"
        return [{"network": "-", "psnr": None, "ssim": None, "error": why}]
    video_limit = VIDEO_NETWORK_MEGAPIXELS if network_megapixels is None else network_megapixels
    rows = []
    for label, limit in (("whole photo (as photos)", float("inf")), (f"at most {video_limit:g} MP (video)", video_limit)):
        wrapped = FullResolutionTransform(module, limit if limit > 0 else float("inf"))
        scores = []
        for low in lows:
            high = low.parent.parent / "high" / low.name
            image, reference = read_image(low)[None], read_image(high)[None]
            with torch.no_grad():
                out = (wrapped(image).clamp(0, 1) * 255).round() / 255
            scores.append((float(psnr(out, reference)), float(ssim_matlab(out, reference))))
        height, width = image.shape[-2:]
        net_h, net_w = wrapped.network_size(height, width)
        rows.append({"network": f"{label}: {net_w}x{net_h}", "psnr": statistics.mean(p for p, _ in scores),
                     "ssim": statistics.mean(q for _, q in scores), "error": None})
        print(f"  eval15 {label}: {rows[-1]['psnr']:.2f} dB", flush=True)
    return rows


# ------------------------------------------------------------------------------------------------ speed


def write_speed_clip(path: Path, photo: torch.Tensor, size: tuple[int, int], frames: int) -> Path:
    import av
    import numpy as np

    height, width = size
    resized = F.interpolate(photo[None], size=(height, width), mode="bilinear", align_corners=False)[0]
    generator = torch.Generator().manual_seed(1)
    container = av.open(str(path), "w", format="mp4")
    video = container.add_stream("libx264", rate=int(FPS))
    video.width, video.height, video.pix_fmt = width, height, "yuv420p"
    video.codec_context.options = {"crf": "18"}
    sound = container.add_stream("aac", rate=48000, layout="mono")
    for index in range(frames):
        array = (_noisy(resized, generator) * 255).round().byte().permute(1, 2, 0).contiguous().numpy()
        frame = av.VideoFrame.from_ndarray(array, format="rgb24")
        frame.pts = index
        container.mux(video.encode(frame))
    container.mux(video.encode())
    for start in range(0, 48000, 1024):
        chunk = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        chunk.sample_rate, chunk.pts = 48000, start
        container.mux(sound.encode(chunk))
    container.mux(sound.encode())
    container.close()
    return path


def _time_photo(model, photo: Path, out: Path) -> float:
    """Seconds of ``enhance_files`` on one photo (PNG in and out), as ``bench_enhance.py`` times it."""
    from lumicap.inference import collect_inputs, enhance_files

    start = time.perf_counter()
    summary = enhance_files(collect_inputs([photo]), out, model, model.device, overwrite=True, progress=False)
    if summary.failed:
        raise RuntimeError(summary.failed[0][1])
    return time.perf_counter() - start


def _speed_settings(mode: str, network_megapixels: float | None):
    from lumicap.inference.video import VideoSettings

    if mode == "whole":
        return VideoSettings(network_megapixels=0.0)
    return VideoSettings(temporal="none" if mode == "none" else "smooth", network_megapixels=network_megapixels)


def measure_speed(model, sizes, frames: int, modes: list[str], repeats: int, warmup: int,
                  network_megapixels: float | None, scratch: Path) -> list[dict[str, Any]]:
    from lumicap.inference.video import FrameEnhancer, enhance_video

    photo = _photo(STATIC_PHOTO, 0)
    photo_file = scratch / "photo.png"
    from lumicap.data.io import write_image

    write_image(photo_file, photo)
    rows = []
    for height, width in sizes:
        key = f"{width}x{height}"
        clip = write_speed_clip(scratch / f"clip_{key}.mp4", photo, (height, width), frames)
        samples: dict[str, list[float]] = {mode: [] for mode in modes}
        cpu: dict[str, list[float]] = {mode: [] for mode in modes}
        errors: dict[str, str] = {}
        for round_index in range(warmup + repeats):
            for mode in modes:
                if mode in errors:
                    continue
                cpu_start = time.process_time()
                try:
                    if mode == "photo":
                        count, seconds = 1, _time_photo(model, photo_file, scratch / "photo_out")
                    else:
                        result = enhance_video(clip, scratch / f"out_{key}_{mode}.mp4", model, model.device,
                                               _speed_settings(mode, network_megapixels))
                        count, seconds = result.frames, result.seconds
                except Exception as exc:
                    errors[mode] = _common.one_line(exc)
                    continue
                if round_index >= warmup:
                    samples[mode].append(count / seconds)
                    cpu[mode].append((time.process_time() - cpu_start) * 1000.0 / count)
            print(f"  {key}: round {round_index + 1}/{warmup + repeats} done", flush=True)
        frame = torch.rand(1, 3, height, width) * 0.3
        for mode in modes:
            if mode == "photo":
                rows.append({"size": f"{photo.shape[2]}x{photo.shape[1]} photo", "mode": "photo (reference)",
                             "network": "as lumicap enhance PHOTO", "fps": statistics.median(samples[mode]) if samples[mode] else None,
                             "fps_samples": samples[mode], "cpu_ms": statistics.median(cpu[mode]) if cpu[mode] else None,
                             "predict_ms": None, "apply_ms": None, "error": errors.get(mode)})
                continue
            settings = _speed_settings(mode, network_megapixels)
            enhancer = FrameEnhancer(model, model.device, temporal=settings.temporal,
                                     network_megapixels=settings.network_megapixels)
            row = {"size": key, "mode": mode, "network": None, "fps": None, "fps_samples": samples[mode], "cpu_ms": None,
                   "predict_ms": None, "apply_ms": None, "error": errors.get(mode)}
            if samples[mode]:
                row["fps"] = statistics.median(samples[mode])
                row["cpu_ms"] = statistics.median(cpu[mode])
            if enhancer.transform is not None:
                net_h, net_w = enhancer.transform.network_size(height, width)
                row["network"] = f"{net_w}x{net_h}"
                with torch.no_grad():
                    predicted = enhancer.transform.predict(frame)
                    row["predict_ms"] = _common.time_function(lambda: enhancer.transform.predict(frame), model.device,
                                                              repeats, warmup).median_ms
                    row["apply_ms"] = _common.time_function(lambda: enhancer.transform.apply(frame, predicted),
                                                            model.device, repeats, warmup).median_ms
            else:
                row["network"] = "whole frame (per photo)"
            rows.append(row)
            print(f"  {key} {mode:6}: {row['fps'] or 0:.1f} fps {row['error'] or ''}", flush=True)
    return rows


# ------------------------------------------------------------------------------------------------- main


def run(args: argparse.Namespace):
    import bench_inference
    from lumicap.errors import LumicapError
    from lumicap.inference import load_inference_model
    from lumicap.inference.video import VIDEO_NETWORK_MEGAPIXELS

    if args.threads:
        torch.set_num_threads(args.threads)
    DATA[0] = Path(args.data).expanduser()
    parts = _common.parse_list(args.parts, PARTS, "part")
    speed_modes = _common.parse_list(args.speed_modes, ("smooth", "whole", "none", "photo"), "speed mode")
    if args.clip_frames < 4 or args.frames < 1 or not 0 < args.clip_scale <= 1:
        raise LumicapError("--clip-frames must be at least 4, --frames at least 1, --clip-scale in (0, 1]")
    device = torch.device("cpu")
    repeats, warmup = _common.repeats_and_warmup(args, device)
    model = load_inference_model(args.model, "cpu")
    env = _common.environment(device)
    env["load_average"] = _load_average()
    print(_common.describe_environment(env), f"load {env['load_average']}", flush=True)
    flicker_rows, eval_rows, speed_rows = [], [], []
    if "flicker" in parts:
        flicker_rows = measure_flicker(model, make_clips(args.clip_frames, args.clip_scale), args.network_megapixels)
    if "eval15" in parts:
        eval_rows = measure_eval15(model, args.network_megapixels)
    if "speed" in parts:
        with tempfile.TemporaryDirectory(prefix="lumicap-bench-video-") as scratch:
            speed_rows = measure_speed(model, bench_inference.parse_sizes(args.sizes), args.frames, speed_modes,
                                       repeats, warmup, args.network_megapixels, Path(scratch))
    env["load_average_after"] = _load_average()
    settings = {
        "model": args.model, "model_name": model.name, "parts": parts, "clip_frames": args.clip_frames,
        "clip_scale": args.clip_scale,
        "frames": args.frames, "sizes": args.sizes, "repeats": repeats, "warmup": warmup,
        "threads": torch.get_num_threads(),
        "network_megapixels": args.network_megapixels if args.network_megapixels is not None else VIDEO_NETWORK_MEGAPIXELS,
        "photos": [str(p) if (DATA[0] / p).is_file() else f"{p} absent: a demo photo"
                   for p in (STATIC_PHOTO, CUT_PHOTO, PAN_PHOTO)],
    }
    return flicker_rows, eval_rows, speed_rows, {"env": env, "settings": settings}


def _load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def main(argv: list[str] | None = None):
    args = build_parser().parse_args(argv)
    flicker_rows, eval_rows, speed_rows, meta = _common.run_or_exit(run, args)
    s, env = meta["settings"], meta["env"]
    notes = [
        f"model {s['model']} ({s['model_name']}); video network input at most {s['network_megapixels']:g} MP; "
        f"{s['threads']} torch threads; load average {env['load_average']} before, {env['load_average_after']} after",
    ]
    paths = []
    if flicker_rows:
        notes_f = notes + [
            f"clips: static and cut {s['clip_frames']} frames, pan {s['clip_frames'] * 3 // 2}, 30 fps, Gaussian noise "
            f"{NOISE_LEVELS:g} levels per frame; photos {', '.join(s['photos'])}",
            "flicker: mean |change of a frame's mean luminance| in 8-bit levels; settle: frames after the cut until "
            "each channel mean stays within 2% of the new scene's per-frame ('none') look, averaged over its frames",
        ]
        paths.append(_common.report(f"{BENCHMARK}_flicker", args, env, s, FLICKER_COLUMNS, flicker_rows, notes_f))
    if eval_rows:
        paths.append(_common.report(f"{BENCHMARK}_eval15", args, env, s, EVAL_COLUMNS, eval_rows, notes + [
            "LOL-v1 eval15 (15 pairs), 8-bit outputs, float PSNR, MATLAB-style SSIM, no GT-mean; gamma/colour from "
            "the same network input as the maps"]))
    if speed_rows:
        notes_s = notes + [
            f"fps: enhance_video end to end (decode, enhance, H.264 CRF 18 encode, AAC copied) on {s['frames']} frames, "
            f"median of {s['repeats']} runs after {s['warmup']}, modes interleaved; CPU ms/frame: the process's CPU time "
            "(all its threads: torch, FFmpeg's decoder and x264) per frame, less sensitive to other jobs than the wall "
            "clock; network/full-res ms: median per frame, measured apart; photo (reference): photos per second of "
            "the 600x400 eval15 photo through enhance_files in the same rounds (0.27 s, 3.7 per second, on the quiet "
            "machine: README model card), so fps x 3.7 / reference estimates the quiet figure",
        ]
        paths.append(_common.report(f"{BENCHMARK}_speed", args, env, s, SPEED_COLUMNS, speed_rows, notes_s))
    return paths


if __name__ == "__main__":
    main()
