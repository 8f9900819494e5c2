"""The work behind ``lumicap serve``: the model menu, the queue of uploaded photos, and their files.

One worker thread runs jobs in arrival order, so concurrent uploads wait in line instead of competing
for memory. Each photo goes through ``lumicap.inference.enhance_file``, the step ``lumicap enhance`` runs
per file, so the PNG a job writes is byte for byte the file the command line writes.

Nothing the browser sends becomes a path: jobs are looked up by a random id, model choices by a menu key,
and an uploaded file's name is cut down to a plain base name (``safe_name``) used only inside the job's
own folder under the server's temporary directory.
"""

from __future__ import annotations

import json
import os
import queue
import secrets
import shlex
import shutil
import sys
import threading
import time
import traceback
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal

import torch

from lumicap.errors import LumicapError
from lumicap.files import move_into_place
from lumicap.limits import check_finite
from lumicap.names import model_key

PREVIEW_SIDE = 1280  # previews on the page; downloads are full resolution
PREVIEW_QUALITY = 90
MAX_NAME_CHARS = 120
# File names are limited in bytes (255 on most file systems), and 120 emoji are 480 bytes of UTF-8: names are
# cut to this many bytes, which leaves room for the prefixes and suffixes the job's files add.
MAX_NAME_BYTES = 180
MAX_WAITING = 64  # jobs queued beyond this are refused ("try again later") rather than piling up on disk
_FORBIDDEN_NAME_CHARS = set('/\\:*?"<>|')


class UploadRejected(LumicapError):
    """An upload the server will not process; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Limits:
    """What one upload may be and how many may wait; every value finite and positive (a NaN limit would
    compare false with every upload and so switch the limit off)."""

    max_bytes: int
    max_megapixels: float
    max_waiting: int = MAX_WAITING

    def __post_init__(self):
        for what, value in (("max_bytes", self.max_bytes), ("max_waiting", self.max_waiting)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise LumicapError(f"upload limit {what} must be a whole number of at least 1, got {value!r}")
        try:
            check_finite(self.max_megapixels, 0, None, low_open=True, what="upload limit max_megapixels")
        except ValueError as exc:
            raise LumicapError(str(exc)) from None


def safe_name(raw: str) -> str:
    """The uploaded file's base name, harmless inside a job folder.

    Folders (either slash), drive letters, control and reserved characters go; leading dots go (no
    hidden files, no ``..``); long names (over ``MAX_NAME_CHARS`` characters or ``MAX_NAME_BYTES`` bytes of
    UTF-8) keep their suffix. An empty result becomes ``photo``.
    """
    base = raw.replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(ch for ch in base if ch.isprintable() and ch not in _FORBIDDEN_NAME_CHARS)
    base = base.strip().lstrip(".").strip()
    if len(base) > MAX_NAME_CHARS or len(base.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
        stem, suffix = os.path.splitext(base)
        suffix = suffix[:10] if len(suffix.encode("utf-8", "surrogatepass")) <= 40 else ""
        room = MAX_NAME_BYTES - len(suffix.encode("utf-8", "surrogatepass"))
        stem = stem[: MAX_NAME_CHARS - len(suffix)]
        stem = stem.encode("utf-8", "surrogatepass")[:room].decode("utf-8", "ignore").strip()
        base = (stem + suffix).lstrip(".") if stem else ""
    return base or "photo"


# --------------------------------------------------------------------------------------------- model menu


@dataclass(frozen=True)
class MenuEntry:
    """One model of the menu. ``name`` is what a person calls it (shown on each card, and added to the
    download's file name unless the entry is the shipped default); ``label`` is the menu's line:
    ``NAME (NETWORK, WHERE FROM)`` for every entry alike."""

    key: str  # what the page sends back; never a path
    label: str
    spec: str  # for load_inference_model
    weights: str | None = None
    network_megapixels: float | None = None
    name: str = ""

    @property
    def is_default(self) -> bool:
        return self.key == "default"


class ModelMenu:
    """The models the page offers: the shipped default, the ``--model`` arguments, and registry models
    whose weights sit in the cache. Loaded on first use; the ``keep`` most recent stay in memory."""

    def __init__(self, entries: list[MenuEntry], selected: str, device: torch.device, keep: int = 2):
        self.entries = {entry.key: entry for entry in entries}
        self.selected = selected
        self.device = device
        self.keep = keep
        self._loaded: OrderedDict[str, Any] = OrderedDict()

    @classmethod
    def build(
        cls, specs: list[str], weights: str | None, device: str | torch.device, network_megapixels: float | None = None
    ) -> "ModelMenu":
        """Load each ``--model`` once now, so a bad file fails the command before the server starts.
        ``weights`` and ``network_megapixels`` apply to the ``--model`` entries, as in ``lumicap enhance``."""
        from lumicap.inference import DEFAULT_METADATA, DEFAULT_WEIGHTS, load_inference_model, resolve_device

        target = resolve_device(device)
        entries: list[MenuEntry] = []
        loaded = {}
        default_given = "default" in specs and weights is None
        if DEFAULT_WEIGHTS.is_file() and DEFAULT_METADATA.is_file():
            entries.append(MenuEntry("default", f"default ({_default_model_name()}, shipped)", "default",
                                     network_megapixels=network_megapixels if default_given else None, name="default"))
        from lumicap.inference.loading import ASSETS_DIR, SHIPPED_MODELS

        for name, filename in SHIPPED_MODELS.items():  # the other models in the package (offline, by name)
            if name != "default" and name not in specs and (ASSETS_DIR / filename).is_file():
                network = _sidecar_model_name(ASSETS_DIR / filename)
                entries.append(MenuEntry(name, f"{name} ({network}, shipped)", name, name=name))
        selected = None
        for index, spec in enumerate(specs):
            if spec == "default" and weights is None:
                loaded["default"] = load_inference_model("default", target, network_megapixels=network_megapixels)
                selected = selected or "default"
                continue
            model = load_inference_model(spec, target, weights=weights, network_megapixels=network_megapixels)
            key = f"model-{index + 1}"
            name = _spec_name(spec if weights is None else weights)
            entries.append(MenuEntry(key, f"{name} ({model.name}, given to lumicap serve)", spec, weights,
                                     network_megapixels, name=name))
            loaded[key] = model
            selected = selected or key
        entries.extend(_cached_catalog_entries())
        if not entries:
            raise LumicapError("no model to serve: the default model is not installed; pass --model FILE|RUN_DIR")
        menu = cls(entries, selected or entries[0].key, target)
        for key in list(loaded)[: menu.keep]:
            menu._loaded[key] = loaded[key]
        return menu

    def listing(self) -> list[dict[str, Any]]:
        return [{"key": e.key, "label": e.label, "name": e.name, "selected": e.key == self.selected}
                for e in self.entries.values()]

    def entry(self, key: str) -> MenuEntry:
        if key not in self.entries:
            raise UploadRejected(f"unknown model '{key[:40]}'; choose one from the menu")
        return self.entries[key]

    def load(self, key: str):
        from lumicap.inference import load_inference_model

        if key in self._loaded:
            self._loaded.move_to_end(key)
            return self._loaded[key]
        entry = self.entry(key)
        while len(self._loaded) >= self.keep:
            self._loaded.popitem(last=False)  # drop the least recently used before loading another
        model = load_inference_model(entry.spec, self.device, weights=entry.weights,
                                     network_megapixels=entry.network_megapixels)
        self._loaded[key] = model
        return model


def _default_model_name() -> str:
    from lumicap.inference import DEFAULT_WEIGHTS

    return _sidecar_model_name(DEFAULT_WEIGHTS)


def _sidecar_model_name(weights: Path) -> str:
    """The network a shipped model's sidecar names (``iat``), for the menu."""
    try:
        return str(json.loads(weights.with_suffix(".json").read_text())["model"])
    except (OSError, ValueError, KeyError, TypeError):
        return "network unknown"


def _spec_name(spec: str) -> str:
    """A short name for a ``--model``/``--weights`` argument: a file's name without its suffix, a run folder's
    experiment and seed (``runs/iat-first/20260101-120000/seed0`` -> ``iat-first-seed0``), a name as it is."""
    path = Path(spec)
    if path.is_dir() and path.name.startswith("seed") and path.parent.parent.name:
        return safe_name(f"{path.parent.parent.name}-{path.name}")
    return safe_name(path.stem if path.suffix else path.name)


def _cached_catalog_entries() -> list[MenuEntry]:
    """Known weight files named after a registry network (``<model>-...``) that are already cached."""
    from lumicap.models import list_models
    from lumicap.weights import cached_path, known_weights

    from lumicap.weights.catalogue import OFFICIAL_MODELS

    names = sorted((info.name for info in list_models()), key=len, reverse=True)
    # Official weights in several files (RetinexNet's TensorFlow checkpoints) are one entry, not one per file.
    parts = {f: m for m in OFFICIAL_MODELS.values() if len(m.files) > 1 for f in m.files}
    entries = []
    for weight_name, known in sorted(known_weights().items()):
        key = model_key(weight_name)
        model = next((n for n in names if key.startswith(n + "_")), None)
        if model is not None and weight_name not in parts and cached_path(known).is_file():
            entries.append(MenuEntry(f"weights:{weight_name}", f"{weight_name} ({model}, downloaded)", model,
                                     weight_name, name=weight_name))
    for official in {id(m): m for m in parts.values()}.values():
        if all(cached_path(known_weights()[f]).is_file() for f in official.files):
            entries.append(MenuEntry(f"weights:{official.name}", f"{official.name} ({official.model}, downloaded)",
                                     official.model, official.name, name=official.name))
    return entries


# -------------------------------------------------------------------------------------------------- jobs

JobState = Literal["queued", "running", "done", "failed"]  # of a job, and of a reference measurement


@dataclass
class Reference:
    """A reference photo uploaded for a finished job, and its PSNR/SSIM against the result once measured."""

    name: str  # safe base name of the upload
    path: Path  # on the server; never shown to the page
    state: JobState = "queued"
    message: str | None = None  # why it failed
    psnr: float | None = None
    ssim: float | None = None

    def public(self) -> dict[str, Any]:
        """What the page sees: name and state, the message of a failure, the measures once done."""
        view: dict[str, Any] = {"name": self.name, "state": self.state}
        if self.message is not None:
            view["message"] = self.message
        if self.state == "done":
            view.update(psnr=self.psnr, ssim=self.ssim)
        return view


@dataclass
class Job:
    id: str
    name: str  # safe base name of the upload
    folder: Path
    model_key: str
    height: int
    width: int
    state: JobState = "queued"
    message: str = ""
    tiles_done: int = 0
    tiles_total: int = 0
    model_label: str = ""
    seconds: float | None = None
    bit_depth: int = 8
    captions: dict[str, str] | None = None
    niqe: dict[str, float | None] | None = None  # {"input", "enhanced"}: NIQE gray; None where undefined
    reference: Reference | None = None
    started: float | None = None  # wall-clock times, for the page and for checking the queue's order
    finished: float | None = None

    @property
    def input_path(self) -> Path:
        return self.folder / "input" / self.name

    @property
    def output_name(self) -> str:
        """The file name ``lumicap enhance`` gives this photo's PNG."""
        from lumicap.inference import InputImage, output_path

        return output_path(InputImage(self.input_path, Path(self.name)), Path(), "png").name

    @property
    def output_path(self) -> Path:
        return self.folder / "output" / self.output_name


@dataclass(eq=False)
class _Task:
    job: Job
    run: Callable[[], None] = field(repr=False)
    reference: Reference | None = None  # set for a measurement against a reference photo


class JobQueue:
    """Uploaded photos and reference photos, processed one at a time by one worker thread."""

    def __init__(self, workdir: Path, menu: ModelMenu, tiles, limits: Limits, captioner=None):
        self.workdir = Path(workdir)
        self.menu = menu
        self.tiles = tiles
        self.limits = limits
        self.captioner = captioner
        self._jobs: dict[str, Job] = {}
        self._waiting: list[_Task] = []
        self._lock = threading.Lock()
        self._queue: queue.Queue[_Task | None] = queue.Queue()
        self._stopping = threading.Event()
        (self.workdir / "incoming").mkdir(parents=True, exist_ok=True)
        self._thread = threading.Thread(target=self._work, name="lumicap-serve-worker", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ called by the web handlers

    def incoming_file(self) -> Path:
        """A fresh file to stream an upload into before it is checked."""
        return self.workdir / "incoming" / secrets.token_hex(8)

    def submit(self, raw_name: str, model_key: str, received: Path) -> Job:
        """Check an upload streamed into ``received`` and queue it; ``UploadRejected`` leaves nothing behind."""
        name = safe_name(raw_name)
        try:
            self.menu.entry(model_key)
            height, width = self._check_image(received, name)
            with self._lock:
                if len(self._waiting) >= self.limits.max_waiting:
                    raise UploadRejected(
                        f"{name}: {len(self._waiting)} photos are already waiting; try again later", 503
                    )
                job_id = secrets.token_hex(8)
                job = Job(job_id, name, self.workdir / "jobs" / job_id, model_key, height, width)
                job.input_path.parent.mkdir(parents=True)
                move_into_place(received, job.input_path)
                self._jobs[job.id] = job
                self._enqueue(_Task(job, lambda: self._enhance(job)))
        finally:
            received.unlink(missing_ok=True)
        return job

    def submit_reference(self, job_id: str, raw_name: str, received: Path) -> Job:
        """Queue PSNR/SSIM of a finished job's result against an uploaded reference photo."""
        name = safe_name(raw_name)
        try:
            job = self.get(job_id)
            if job.state != "done":
                raise UploadRejected(f"{_not_done(job)}; add the reference when its result is shown", 409)
            height, width = self._check_image(received, name)
            if (height, width) != (job.height, job.width):
                raise UploadRejected(
                    f"{name} is {width}x{height}, the photo is {job.width}x{job.height}: a reference must have "
                    "the same size"
                )
            with self._lock:
                # A reference waits in the same line as photos, so it counts against the same limit; and one
                # reference per photo at a time (its file is removed once measured).
                if len(self._waiting) >= self.limits.max_waiting:
                    raise UploadRejected(
                        f"{name}: {len(self._waiting)} photos are already waiting; try again later", 503
                    )
                if job.reference is not None and job.reference.state in ("queued", "running"):
                    raise UploadRejected(
                        f"{name}: a reference for {job.name} is already being measured; add another when it is "
                        "done", 409
                    )
                target = job.folder / "reference" / f"{secrets.token_hex(4)}-{name}"
                target.parent.mkdir(parents=True, exist_ok=True)
                move_into_place(received, target)
                reference = Reference(name, target)
                job.reference = reference
                self._enqueue(_Task(job, lambda: self._measure(job, reference), reference))
        finally:
            received.unlink(missing_ok=True)
        return job

    def get(self, job_id: str) -> Job:
        job = self._jobs.get(job_id)
        if job is None:
            raise UploadRejected("no such job (the server was restarted, or the link is wrong)", 404)
        return job

    def public(self, job: Job) -> dict[str, Any]:
        """What the page sees of a job (no server paths)."""
        with self._lock:
            ahead = next((i for i, task in enumerate(self._waiting) if task.job is job), None)
        reference = job.reference.public() if job.reference is not None else None
        return {
            "id": job.id,
            "name": job.name,
            "state": job.state,
            "message": job.message,
            "ahead": ahead,
            "tiles_done": job.tiles_done,
            "tiles_total": job.tiles_total,
            "width": job.width,
            "height": job.height,
            "model": job.model_label or self.menu.entries[job.model_key].label,
            "model_name": self.menu.entries[job.model_key].name,
            "seconds": job.seconds,
            "bit_depth": job.bit_depth,
            "output_name": job.output_name,
            "download_name": self.download_name(job),
            "captions": job.captions,
            "niqe": job.niqe,
            "reference": reference,
        }

    def preview(self, job_id: str, which: str) -> Path:
        job = self.get(job_id)
        if which not in ("input", "output") or job.state != "done":
            raise UploadRejected("no such preview", 404)
        return job.folder / f"preview-{which}.jpg"

    def download_name(self, job: Job, suffix: str = ".png") -> str:
        """The name ``lumicap enhance`` gives the result, with the model's name added when it is not the
        shipped default: the same photo enhanced by two models downloads as two files (``10-retinexformer-
        lumicap.png`` beside ``10.png``)."""
        entry = self.menu.entries[job.model_key]
        stem = Path(job.output_name).stem
        if not entry.is_default and entry.name:
            stem = f"{stem}-{entry.name}"
        return stem + suffix

    def download(self, job_id: str, fmt: str, quality: int) -> tuple[Path | bytes, str]:
        """(the PNG file ``lumicap enhance`` writes, or the bytes of a JPEG at ``quality``; name to save as, as
        ``download_name`` gives it).

        The JPEG is encoded on request from the PNG's levels, which for 8-bit photos are exactly the levels
        ``lumicap enhance --format jpg --quality Q`` encodes, so it is the same file too. It is not kept: a
        job holds one result however many qualities are downloaded.
        """
        from lumicap.data.io import image_icc_profile, read_image, write_image

        job = self.get(job_id)
        if job.state != "done":
            raise UploadRejected(_not_done(job), 409)
        if fmt == "png":
            return job.output_path, self.download_name(job)
        if fmt != "jpg":
            raise UploadRejected(f"unknown format '{fmt[:10]}'; png or jpg")
        if not 1 <= quality <= 100:
            raise UploadRejected(f"JPEG quality {quality} is outside 1-100")
        # The writer lumicap enhance uses (same bytes; the PNG carries the photo's ICC profile, so does the JPEG),
        # into a file of this request's own, read back and removed.
        scratch = job.folder / f"download-{secrets.token_hex(6)}.jpg"
        try:
            write_image(scratch, read_image(job.output_path), bit_depth=8, quality=quality,
                        icc_profile=image_icc_profile(job.output_path))
            return scratch.read_bytes(), self.download_name(job, ".jpg")
        finally:
            scratch.unlink(missing_ok=True)

    def close(self, wait: float = 0.0) -> bool:
        """Stop taking work (a tiled job in progress stops at its next tile); True if the worker is still
        busy after ``wait`` seconds (a whole-image pass cannot be interrupted)."""
        self._stopping.set()
        self._queue.put(None)
        self._thread.join(timeout=wait)
        return self._thread.is_alive()

    # ------------------------------------------------------------------ inside

    def _check_image(self, path: Path, name: str) -> tuple[int, int]:
        from lumicap.data.io import image_size
        from lumicap.inference.video import is_video_file

        if is_video_file(name):  # the page shows photos side by side; videos are the command's
            raise UploadRejected(
                f"{name}: a video; this page enhances photos: use lumicap enhance {shlex.quote(name)} --out DIR"
            )
        try:
            height, width = image_size(path)
        except LumicapError as exc:
            raise UploadRejected(_without_path(str(exc), path, name)) from None
        megapixels = height * width / 1e6
        if megapixels > self.limits.max_megapixels:
            raise UploadRejected(
                f"{name}: {width}x{height} is {megapixels:.1f} megapixels, above this server's limit of "
                f"{self.limits.max_megapixels:g} (lumicap serve --max-upload-megapixels)",
                413,
            )
        return height, width

    def _enqueue(self, task: _Task) -> None:
        self._waiting.append(task)
        self._queue.put(task)

    def _work(self) -> None:
        while True:
            task = self._queue.get()
            if task is None or self._stopping.is_set():
                return
            with self._lock:
                self._waiting.remove(task)
            try:
                task.run()
            except _Stopped:
                return
            except Exception as exc:  # a bug must not stall the queue: report it and go on
                traceback.print_exc(file=sys.stderr)
                self._fail(task, f"internal error ({type(exc).__name__}); see the server's console")

    def _fail(self, task: _Task, message: str) -> None:
        if task.reference is not None:
            task.reference.message, task.reference.state = message, "failed"  # state last: the page polls
        else:
            task.job.state, task.job.message, task.job.finished = "failed", message, time.time()

    def _enhance(self, job: Job) -> None:
        from lumicap.inference import enhance_file

        job.state, job.started = "running", time.time()
        try:
            model = self.menu.load(job.model_key)
            job.model_label = self.menu.entries[job.model_key].label

            def on_tile(done: int, total: int) -> None:
                if self._stopping.is_set():
                    raise _Stopped
                job.tiles_done, job.tiles_total = done, total

            start = time.perf_counter()
            result = enhance_file(job.input_path, job.output_path, model, model.device, "png", self.tiles,
                                  keep_input=True, on_tile=on_tile)
            job.seconds = time.perf_counter() - start
        except (LumicapError, OSError) as exc:
            job.state, job.message, job.finished = (
                "failed",
                _without_path(str(exc), job.input_path, job.name),
                time.time(),
            )
            shutil.rmtree(job.folder, ignore_errors=True)  # nothing to show or download: keep nothing
            return
        job.bit_depth = result.bit_depth
        _write_preview(result.low, job.folder / "preview-input.jpg")
        _write_preview(result.enhanced, job.folder / "preview-output.jpg")
        job.niqe = {"input": _niqe(result.low), "enhanced": _niqe(result.enhanced)}
        if self.captioner is not None:
            try:
                job.captions = {
                    "input": self.captioner.caption(result.low),
                    "enhanced": self.captioner.caption(result.enhanced),
                }
            except LumicapError as exc:
                job.captions = {"error": str(exc)}
        job.state, job.finished = "done", time.time()

    def _measure(self, job: Job, reference: Reference) -> None:
        """PSNR and SSIM by ``lumicap eval``'s evaluator, on the PNG result as written."""
        from lumicap.engine.evaluate import evaluate_pairs

        reference.state = "running"
        try:
            rows, _ = evaluate_pairs([job.output_path], [reference.path], names=[job.name])
        except LumicapError as exc:
            reference.message = _without_path(str(exc), reference.path, reference.name)
            reference.state = "failed"  # last: the page polls from another thread
            return
        finally:
            reference.path.unlink(missing_ok=True)  # measured (or not): the figures are all that is kept
        reference.psnr, reference.ssim, reference.state = rows[0]["psnr"], rows[0]["ssim"], "done"


class _Stopped(Exception):
    """The server is shutting down: abandon the job in progress."""


def _not_done(job: Job) -> str:
    return (
        f"{job.name} is not enhanced yet"
        if job.state in ("queued", "running")
        else f"{job.name} was not enhanced ({job.message})"
    )


def _without_path(message: str, path: Path, name: str) -> str:
    """Error messages name the file; the page should see the upload's name, not the server's folders."""
    return message.replace(str(path), name)


def _niqe(image: torch.Tensor) -> float | None:
    """NIQE (gray, as ``lumicap eval``) of the 8-bit levels the PNG holds; None under 96x96 or without
    texture (JSON has no NaN)."""
    import math

    from lumicap.metrics.judges import NiqeJudge

    value = NiqeJudge("gray").score(image)["niqe_gray"]
    return None if math.isnan(value) else value


def _write_preview(image: torch.Tensor, path: Path) -> None:
    from PIL import Image

    levels = image.detach().clamp(0, 1).mul(255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    picture = Image.fromarray(levels)
    picture.thumbnail((PREVIEW_SIDE, PREVIEW_SIDE), Image.Resampling.LANCZOS)
    picture.save(path, format="JPEG", quality=PREVIEW_QUALITY)
