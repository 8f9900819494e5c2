"""Enhance video files: decode with PyAV, enhance frame by frame (steady over time), encode, keep the sound.

The output has the input's frames (same count, size and timestamps, so the same frame rate and the same
variable-rate timing), its rotation (the display matrix is copied, the pixels are not turned), its colour
tags (decoded and encoded with the same YUV matrix), and every audio stream copied packet for packet, not
re-encoded. Video: H.264 (``libx264``) yuv420p at CRF 18 by default (visually lossless for most footage;
``crf`` and ``codec`` change it). Frames with an odd width or height cannot be 4:2:0, so they are encoded
4:4:4 (said in a note).

Frames go through the model one at a time (``FrameEnhancer``), through the same chain of steps as a photo
(``fullres.with_transform_step``): for a network that predicts a transform (IAT, the default), the network
runs on a copy of the frame of at most ``network_megapixels``, its transform is smoothed over time
(``lumicap.inference.temporal``) between ``FullResolutionTransform.predict`` and ``apply``, and whatever
wraps the transform for photos (highlight protection) follows; any other network enhances each frame as a
photo (``enhance_image``: tiles included) and, when smoothing, its frames' channel levels are steadied.

The file is written to a hidden temporary file beside the target and renamed into place at the end
(``lumicap.files.replacing``), so an interrupted run (Ctrl-C, an error, a kill) never leaves a half-written
video under the output's name; the leftover of a killed run is removed by the next run into the same folder
(``lumicap.files.remove_stale_partial_files``).
PyAV (``pip install 'lumicap[video]'``) bundles FFmpeg's libraries: no ffmpeg program is needed.
"""

from __future__ import annotations

import contextlib
import fractions
import math
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from lumicap.errors import LumicapError, shown
from lumicap.files import replacing
from lumicap.inference.fullres import FullResolutionTransform, with_transform_step
from lumicap.inference.temporal import DEFAULT_SMOOTH_SECONDS, OutputLevelSmoother, TransformSmoother
from lumicap.inference.tiling import TileSettings, enhance_image
from lumicap.names import TEMPORAL_MODES, TemporalMode, VideoCodec, VideoFormat

VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mov", ".mkv", ".avi", ".webm")
# --video-format (lumicap.names.VideoFormat): output suffix -> FFmpeg muxer.
VIDEO_FORMATS: dict[VideoFormat, str] = {"mp4": "mp4", "mov": "mov", "mkv": "matroska"}
# --codec (lumicap.names.VideoCodec): name -> FFmpeg encoder (both bundled in PyAV's wheels).
VIDEO_CODECS: dict[VideoCodec, str] = {"h264": "libx264", "hevc": "libx265"}
DEFAULT_CRF = 18
# The network's frame size for video when --network-megapixels is not given (see the README's video
# section for what it costs in quality and buys in speed).
VIDEO_NETWORK_MEGAPIXELS = 0.1
INSTALL_HINT = "pip install 'lumicap[video]' (PyAV, which bundles FFmpeg's libraries)"


def is_video_file(path: str | os.PathLike) -> bool:
    name = os.fspath(path)
    return name.lower().endswith(VIDEO_EXTENSIONS) and not os.path.basename(name).startswith(".")


def _av(source: str | os.PathLike | None = None):
    try:
        import av
    except ImportError:
        where = f"{shown(source)}: " if source is not None else ""
        raise LumicapError(f"{where}enhancing videos needs PyAV: {INSTALL_HINT}") from None
    return av


def require_video_support(source: str | os.PathLike, settings: "VideoSettings") -> None:
    """Before the model is loaded and any file is touched: PyAV and the chosen encoder are there."""
    av = _av(source)
    settings.check()
    encoder = VIDEO_CODECS[settings.codec]
    if encoder not in av.codecs_available:
        raise LumicapError(f"this PyAV build has no {encoder} encoder for --codec {settings.codec}; use --codec h264")


def describe_video_enhancement(model, settings: "VideoSettings") -> str:
    """How the frames of a video will be enhanced and written (one line for the user)."""
    enhancer = FrameEnhancer(model, getattr(model, "device", torch.device("cpu")), temporal=settings.temporal,
                             smooth_seconds=settings.smooth_seconds, network_megapixels=settings.network_megapixels)
    return f"{enhancer.describe()}; {settings.codec} CRF {settings.crf} in .{settings.fmt}, sound copied"


@dataclass(frozen=True)
class VideoSettings:
    """How ``lumicap enhance`` writes videos (its ``--video-format``, ``--codec``, ``--crf``, ``--temporal``)."""

    fmt: VideoFormat = "mp4"
    codec: VideoCodec = "h264"
    crf: int = DEFAULT_CRF
    temporal: TemporalMode = "smooth"
    smooth_seconds: float = DEFAULT_SMOOTH_SECONDS
    network_megapixels: float | None = None  # None: VIDEO_NETWORK_MEGAPIXELS

    def check(self) -> None:
        if self.fmt not in VIDEO_FORMATS:
            raise LumicapError(f"unknown video format '{self.fmt}'; choose one of {', '.join(VIDEO_FORMATS)}")
        if self.codec not in VIDEO_CODECS:
            raise LumicapError(f"unknown video codec '{self.codec}'; choose one of {', '.join(VIDEO_CODECS)}")
        if not 0 <= self.crf <= 51:
            raise LumicapError(f"--crf {self.crf} is outside 0-51 (lower is better quality; 18 is visually lossless)")
        if self.temporal not in TEMPORAL_MODES:
            raise LumicapError(f"unknown --temporal '{self.temporal}'; choose one of {', '.join(TEMPORAL_MODES)}")
        if not self.smooth_seconds > 0:
            raise LumicapError(f"--smooth-seconds must be > 0, got {self.smooth_seconds}")
        if self.network_megapixels is not None and self.network_megapixels < 0:
            raise LumicapError(f"--network-megapixels must be >= 0 (0: whole frames), got {self.network_megapixels}")


@dataclass
class EnhancedVideo:
    """What ``enhance_video`` wrote."""

    path: Path
    frames: int
    seconds: float  # wall clock, decode to close
    audio_streams: int
    cut_frames: list[int] = field(default_factory=list)  # where the smoothing restarted (0: the first frame)
    notes: list[str] = field(default_factory=list)

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


# ------------------------------------------------------------------------------------------------ frames


class FrameEnhancer:
    """Enhances the frames of one video, in order: ``enhancer(frame, dt)`` -> the enhanced frame.

    ``frame``: (1, 3, H, W) float in [0, 1] on the CPU; ``dt``: seconds since the previous frame. Returns
    (3, H, W) on the CPU. Holds the smoothing state, so use a new one per video.
    """

    def __init__(self, model, device: torch.device, tiles=None, temporal: TemporalMode = "smooth",
                 smooth_seconds: float = DEFAULT_SMOOTH_SECONDS, network_megapixels: float | None = None):
        self.model, self.device, self.tiles = model, device, tiles or TileSettings()
        limit = VIDEO_NETWORK_MEGAPIXELS if network_megapixels is None else network_megapixels
        # The model's own chain (highlight protection and whatever else photos get) with its transform step
        # rebuilt for video; 0 means no limit: whole frames (still split into predict / apply, to smooth).
        module = model if isinstance(model, torch.nn.Module) else model.module  # an InferenceModel holds its module
        self.chain = with_transform_step(module, limit if limit > 0 else float("inf"),
                                         adjust=self._smooth if temporal == "smooth" else None)
        self.transform = self.chain
        while self.transform is not None and not isinstance(self.transform, FullResolutionTransform):
            self.transform = self.transform.module  # the step itself: network size, predict, apply
        self.smoother = None
        if temporal == "smooth":
            smoother = TransformSmoother if self.chain is not None else OutputLevelSmoother
            self.smoother = smoother(smooth_seconds)
        self._dt = 0.0

    def _smooth(self, x: torch.Tensor, transform):
        return self.smoother(x, transform, self._dt)

    def describe(self) -> str:
        if self.transform is not None:
            limit = self.transform.network_megapixels
            size = "whole frames" if math.isinf(limit) else f"at most {limit:g} MP per frame"
            how = f"network on {size}, its transform applied at full resolution"
            if self.chain is not self.transform:
                how += " (then as for photos: " + _wrappers(self.chain) + ")"
            if self.smoother is not None:
                seconds = self.smoother.average.seconds
                how += f"; gamma, colour matrix and map levels smoothed over {seconds:g} s, reset at cuts"
            return how
        how = "each frame enhanced as a photo"
        if self.smoother is not None:
            how += f"; channel levels smoothed over {self.smoother.average.seconds:g} s, reset at cuts"
        return how

    @property
    def cut_frames(self) -> list[int]:
        return list(self.smoother.cut_frames) if self.smoother is not None else []

    @torch.no_grad()
    def __call__(self, frame: torch.Tensor, dt: float) -> torch.Tensor:
        if self.chain is not None:
            self._dt = dt  # for _smooth, called by the chain between predict and apply
            return self.chain(frame.to(self.device))[0].cpu()
        enhanced = enhance_image(self.model, frame[0], self.device, self.tiles, inplace=False)
        if self.smoother is not None:
            enhanced = self.smoother(frame, enhanced[None], dt)[0]
        return enhanced


def _wrappers(chain) -> str:
    """The steps around the transform, for the user: e.g. 'highlight protection'."""
    names = []
    while chain is not None and hasattr(chain, "module") and not hasattr(chain, "predict"):
        names.append(" ".join(re.findall(r"[A-Z][a-z]*", type(chain).__name__)).lower() or type(chain).__name__)
        chain = chain.module
    return ", ".join(names)


def frame_to_tensor(frame) -> torch.Tensor:
    """A decoded PyAV frame -> (1, 3, H, W) float32 RGB in [0, 1], with the frame's own YUV matrix and range."""
    array = frame.to_ndarray(format="rgb24")
    return torch.from_numpy(array).permute(2, 0, 1)[None].float().div_(255.0)


def tensor_to_frame(image: torch.Tensor, like, pix_fmt: str):
    """(3, H, W) in [0, 1] -> a PyAV frame in ``pix_fmt``, converted with ``like``'s YUV matrix, limited range."""
    av = _av()
    array = image.clamp(0.0, 1.0).mul(255.0).round_().to(torch.uint8).permute(1, 2, 0).contiguous().numpy()
    rgb = av.VideoFrame.from_ndarray(array, format="rgb24")
    rgb.colorspace = like.colorspace  # the matrix of the input's decoding, so colours make the round trip
    return rgb.reformat(format=pix_fmt, dst_color_range="MPEG")


# ------------------------------------------------------------------------------------------------- files


def enhance_video(
    source: str | os.PathLike,
    target: str | os.PathLike,
    model,
    device: torch.device,
    settings: VideoSettings = VideoSettings(),
    tiles=None,
    on_frame: Callable[[int, int | None], None] | None = None,
) -> EnhancedVideo:
    """Enhance the video ``source`` into ``target`` (written as given: the caller decides about existing files).

    ``on_frame(done, total)`` after each frame (``total``: the container's frame count, None when it does not
    say). An unreadable, corrupt or truncated video raises a one-line ``LumicapError`` naming it; nothing is
    left under ``target`` then, nor after Ctrl-C.
    """
    av = _av(source)
    settings.check()
    source, target = Path(source), Path(target)
    start = time.perf_counter()
    enhancer = FrameEnhancer(model, device, tiles, settings.temporal, settings.smooth_seconds,
                             settings.network_megapixels)
    try:
        reader = av.open(str(source), metadata_errors="replace")
    except (av.FFmpegError, UnicodeDecodeError, OSError) as exc:
        raise LumicapError(f"{shown(source)}: not a readable video ({_reason(exc)})") from None
    target.parent.mkdir(parents=True, exist_ok=True)
    # PyAV's muxer writes (and seeks in) a path of its own, so the video goes to lumicap.files' temporary
    # path beside the target (the container is named, not guessed from the .part suffix), renamed at the end.
    with reader, replacing(target) as tmp:
        result = _transcode(av, reader, source, tmp, enhancer, settings, on_frame)
    result.path = target
    result.seconds = time.perf_counter() - start
    result.cut_frames = enhancer.cut_frames
    return result


def _transcode(av, reader, source: Path, tmp: Path, enhancer: FrameEnhancer, settings: VideoSettings, on_frame):
    if not reader.streams.video:
        raise LumicapError(f"{shown(source)}: no video stream (an audio-only or empty file?)")
    stream = reader.streams.video[0]
    stream.thread_type = "AUTO"  # frame-parallel decoding
    audio_in = list(reader.streams.audio)
    announced = stream.frames or None  # exact where the container stores it (mp4, mov)
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate or fractions.Fraction(30)
    time_base = stream.time_base or 1 / fractions.Fraction(rate)
    # Elsewhere (Matroska, WebM, AVI) estimated from the duration: for the progress bar and the truncation note.
    estimated = round(reader.duration / 1_000_000 * float(rate)) if reader.duration else None
    total = announced or estimated
    notes: list[str] = []
    writer = None
    video_out = audio_out = None
    pending_audio = []  # audio packets read before the first frame decided the output's settings
    frames = 0
    previous_time = None
    try:
        for packet in reader.demux(stream, *audio_in):
            if packet.stream.type == "audio":
                if packet.dts is None:
                    continue  # the demuxer's end-of-stream marker, not data
                if writer is None:
                    pending_audio.append(packet)
                else:
                    _mux_audio(writer, packet, audio_out)
                continue
            for frame in _decode(av, packet, source, frames):
                if writer is None:
                    writer, video_out, audio_out, pix_fmt = _open_writer(av, tmp, source, frame, stream, rate,
                                                                         time_base, audio_in, settings, notes)
                    for held in pending_audio:
                        _mux_audio(writer, held, audio_out)
                    pending_audio.clear()
                pts = frame.pts if frame.pts is not None else round(frames / rate / time_base)
                now = float(pts * time_base)
                dt = now - previous_time if previous_time is not None else 0.0
                previous_time = now
                enhanced = enhancer(frame_to_tensor(frame), dt if dt > 0 else float(1 / rate))
                out = tensor_to_frame(enhanced, frame, pix_fmt)
                out.pts, out.time_base = pts, time_base
                writer.mux(video_out.encode(out))
                frames += 1
                if on_frame is not None:
                    on_frame(frames, total)
        if writer is None:
            raise LumicapError(f"{shown(source)}: no video frame could be decoded (empty or truncated file)")
        writer.mux(video_out.encode(None))
        writer.close()
        writer = None
    except av.FFmpegError as exc:
        raise LumicapError(f"{shown(source)}: cannot be enhanced after {frames} frames ({_reason(exc)})") from None
    finally:
        if writer is not None:
            with contextlib.suppress(Exception):
                writer.close()
    if announced and frames < announced:
        notes.append(f"{shown(source)}: {frames} of the {announced} frames its header announces could be decoded "
                     "(truncated?); the output has those")
    elif not announced and estimated and frames < 0.9 * estimated - 1:
        notes.append(f"{shown(source)}: {frames} frames could be decoded where its duration says about {estimated} "
                     "(truncated?); the output has those")
    return EnhancedVideo(path=tmp, frames=frames, seconds=0.0, audio_streams=len(audio_in), notes=notes)


def _decode(av, packet, source: Path, done: int):
    """The frames of one packet (the demuxer's last, empty packet flushes the frames the decoder holds)."""
    try:
        return packet.decode()
    except av.FFmpegError as exc:
        raise LumicapError(f"{shown(source)}: corrupt video data after frame {done} ({_reason(exc)})") from None


def _open_writer(av, tmp: Path, source: Path, first, stream, rate, time_base, audio_in, settings: VideoSettings, notes):
    """The output container at ``tmp``, its video stream set up from the first decoded frame, and a copy of
    every audio stream; a container that cannot hold a stream's codec is one line before any frame is encoded."""
    writer = av.open(str(tmp), "w", format=VIDEO_FORMATS[settings.fmt])
    try:
        video_out = writer.add_stream(VIDEO_CODECS[settings.codec], rate=rate)
        video_out.width, video_out.height = first.width, first.height
        pix_fmt = "yuv420p"
        if first.width % 2 or first.height % 2:
            pix_fmt = "yuv444p"
            notes.append(f"{shown(source)}: {first.width}x{first.height} has an odd side, so it is encoded 4:4:4 "
                         "(some players only play 4:2:0)")
        video_out.pix_fmt = pix_fmt
        video_out.time_base = time_base
        context = video_out.codec_context
        context.time_base = time_base
        context.options = {"crf": str(settings.crf)}
        context.colorspace = first.colorspace
        context.color_primaries = first.color_primaries
        context.color_trc = first.color_trc
        context.color_range = 1  # MPEG (limited), as tensor_to_frame writes it
        if stream.sample_aspect_ratio:
            video_out.sample_aspect_ratio = stream.sample_aspect_ratio
        matrix = _display_matrix(av, first)
        if matrix is not None:
            video_out.set_display_matrix(matrix)
        if stream.metadata.get("language"):
            video_out.metadata["language"] = stream.metadata["language"]
        audio_out = {}
        codecs = ", ".join(sorted({a.codec_context.name for a in audio_in}))
        try:
            for audio in audio_in:
                audio_out[audio.index] = writer.add_stream_from_template(audio)
            writer.start_encoding()
        except (av.FFmpegError, ValueError) as exc:
            sound = f"its sound ({codecs}) as it is" if codecs else "it"
            hint = "; --video-format mkv can" if codecs and settings.fmt != "mkv" else ""
            raise LumicapError(
                f"{shown(source)}: a .{settings.fmt} file with {settings.codec} video cannot hold {sound} "
                f"({_reason(exc)}){hint}"
            ) from None
    except BaseException:
        with contextlib.suppress(Exception):
            writer.close()
        raise
    return writer, video_out, audio_out, pix_fmt


def _mux_audio(writer, packet, audio_out: dict) -> None:
    """Copy one audio packet as it is (its timestamps are rescaled from the input's time base by the muxer)."""
    packet.stream = audio_out[packet.stream.index]
    writer.mux(packet)


def _display_matrix(av, frame) -> list[int] | None:
    """The frame's display matrix (rotation/flip for players), as FFmpeg's nine native int32, or None."""
    wanted = av.sidedata.sidedata.Type.DISPLAYMATRIX
    for data in frame.side_data:
        if data.type == wanted:
            return [int(v) for v in np.frombuffer(memoryview(data), dtype=np.int32)]
    return None


def _reason(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return " ".join(str(text).split())[:200] or type(exc).__name__
