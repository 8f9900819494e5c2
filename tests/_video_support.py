"""Tiny video clips made in the test itself with PyAV (a few frames of a few dozen pixels; nothing committed),
and readers for what a test checks in the output: frame times, rotation, audio packets."""

from __future__ import annotations

import fractions
from pathlib import Path

import av
import numpy as np

FORMATS = {".mp4": "mp4", ".mov": "mov", ".mkv": "matroska"}
AUDIO_SAMPLE_FORMAT = {"aac": "fltp", "pcm_s16le": "s16", "pcm_u8": "u8"}


def dark_frames(count: int, height: int = 48, width: int = 64, seed: int = 0, level: int = 40) -> list[np.ndarray]:
    """A dark scene (a gradient with a lighter square) with a little fresh noise on every frame."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([level * x / width, level * y / height, np.full_like(x, level / 2, dtype=float)], axis=-1)
    base[height // 4 : height // 2, width // 4 : width // 2] += level
    return [np.clip(base + rng.normal(0, 2, base.shape), 0, 255).astype(np.uint8) for _ in range(count)]


def make_clip(
    path: Path,
    frames: list[np.ndarray] | int = 8,
    rate: fractions.Fraction = fractions.Fraction(24000, 1001),
    audio: str | None = "aac",
    times: list[float] | None = None,
    rotation: int | None = None,
) -> Path:
    """Write ``frames`` (RGB uint8 arrays, or a count of ``dark_frames``) as H.264 into ``path`` (container from
    the suffix), with a second of ``audio`` (codec name; None: no sound). ``times``: each frame's time in
    seconds (variable frame rate); default ``i / rate``. ``rotation``: a display matrix for players."""
    if isinstance(frames, int):
        frames = dark_frames(frames)
    height, width = frames[0].shape[:2]
    container = av.open(str(path), "w", format=FORMATS[path.suffix])
    video = container.add_stream("libx264", rate=rate)
    video.width, video.height, video.pix_fmt = width, height, "yuv420p" if width % 2 == 0 and height % 2 == 0 else "yuv444p"
    time_base = fractions.Fraction(1, 90000)
    video.codec_context.time_base = time_base
    video.time_base = time_base
    if rotation is not None:
        video.set_display_rotation(rotation)
    sound = container.add_stream(audio, rate=8000, layout="mono") if audio else None
    for index, array in enumerate(frames):
        frame = av.VideoFrame.from_ndarray(array, format="rgb24")
        seconds = times[index] if times is not None else index / rate
        frame.pts, frame.time_base = round(seconds / time_base), time_base
        container.mux(video.encode(frame))
    container.mux(video.encode())
    if sound is not None:
        rng = np.random.default_rng(1)
        sample_format = AUDIO_SAMPLE_FORMAT[audio]
        for start in range(0, 8000, 1024):
            samples = rng.uniform(-0.3, 0.3, (1, 1024)).astype(np.float32)
            if sample_format == "s16":
                samples = (samples * 32767).astype(np.int16)
            elif sample_format == "u8":
                samples = (samples * 127 + 128).astype(np.uint8)
            chunk = av.AudioFrame.from_ndarray(samples, format=sample_format, layout="mono")
            chunk.sample_rate, chunk.pts = 8000, start
            container.mux(sound.encode(chunk))
        container.mux(sound.encode())
    container.close()
    return path


def frame_times(path: Path) -> list[float]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return [float(frame.pts * stream.time_base) for frame in container.decode(stream)]


def decoded_frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def audio_packets(path: Path) -> list[tuple[float, bytes]]:
    """(time in seconds, payload) of every audio packet."""
    with av.open(str(path)) as container:
        if not container.streams.audio:
            return []
        stream = container.streams.audio[0]
        return [(float(p.pts * stream.time_base), bytes(p)) for p in container.demux(stream) if p.dts is not None]


def first_frame_rotation(path: Path) -> int:
    with av.open(str(path)) as container:
        return next(container.decode(video=0)).rotation
