"""`lumicap serve` in a thread of the test process, on a free loopback port, with the real app, queue and
model loading; plus small HTTP helpers (urllib, no extra client library)."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch

from _enhance_support import TinyConv, register_tiny, save_tiny_safetensors  # noqa: F401  (re-exported)
from lumicap.models import registry
from lumicap.models.registry import ModelInfo, Recipe

GATED_NAME = "gated_conv_test"
GATE = threading.Event()  # a gated network waits for it: keeps the worker busy while a test looks at the queue


class GatedConv(TinyConv):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not GATE.wait(timeout=60):
            raise RuntimeError("gate never opened")
        return super().forward(x)


def register_gated(monkeypatch) -> None:
    registry.list_models()
    info = ModelInfo(GATED_NAME, lambda **kw: GatedConv(**kw), paper="test network", official_params=None,
                     params_source="", recipe=Recipe(stages=()))
    monkeypatch.setitem(registry.MODELS, GATED_NAME, info)


def save_gated_safetensors(folder: Path) -> Path:
    from lumicap.inference import save_inference_model

    torch.manual_seed(1)
    path, _ = save_inference_model(folder / "gated.safetensors", GATED_NAME, TinyConv().state_dict(),
                                   overrides={}, training_command="(test)")
    return path


@dataclass
class Served:
    url: str
    jobs: object  # lumicap.serve.jobs.JobQueue
    workdir: Path


@contextmanager
def serve_in_thread(specs, workdir: Path, *, weights=None, tiles=None, max_bytes=50_000_000, max_megapixels=50.0,
                    teacher=None, max_waiting=None, allowed_hosts=None):
    import uvicorn

    from lumicap.commands.serve import _listen, _load_captioner
    from lumicap.inference import TileSettings
    from lumicap.serve.app import create_app
    from lumicap.serve.jobs import MAX_WAITING, JobQueue, Limits, ModelMenu

    menu = ModelMenu.build([str(s) for s in specs], weights, "cpu")
    captioner = _load_captioner(str(teacher), menu.device) if teacher else None
    limits = Limits(max_bytes=max_bytes, max_megapixels=max_megapixels, max_waiting=max_waiting or MAX_WAITING)
    jobs = JobQueue(workdir, menu, tiles or TileSettings(), limits, captioner)
    sock = _listen("127.0.0.1", 0)
    extra = {"allowed_hosts": allowed_hosts} if allowed_hosts is not None else {}
    app = create_app(jobs, teacher=str(teacher) if teacher else None, **extra)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    try:
        yield Served(f"http://127.0.0.1:{sock.getsockname()[1]}", jobs, workdir)
    finally:
        GATE.set()
        server.should_exit = True
        thread.join(timeout=15)
        jobs.close()
        sock.close()


def request(url: str, data: bytes | None = None, method: str | None = None,
            headers: dict[str, str] | None = None) -> tuple[int, dict, bytes]:
    """(status, headers, body) without raising for 4xx/5xx answers; ``headers`` replace urllib's (Host too)."""
    req = urllib.request.Request(url, data=data, method=method or ("POST" if data is not None else "GET"))
    if data is not None:
        req.add_header("Content-Type", "application/octet-stream")
    for key, value in (headers or {}).items():
        req.add_header(key, value)
    try:
        with urllib.request.urlopen(req, timeout=60) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def upload(base: str, name: str, data: bytes, model: str | None = None) -> tuple[int, dict]:
    query = {"name": name, **({"model": model} if model else {})}
    status, _, body = request(f"{base}/api/jobs?{urllib.parse.urlencode(query)}", data)
    return status, json.loads(body)


def job(base: str, job_id: str) -> dict:
    status, _, body = request(f"{base}/api/jobs/{job_id}")
    assert status == 200, body
    return json.loads(body)


def wait_for(base: str, job_id: str, timeout: float = 120.0, reference: bool = False) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = job(base, job_id)
        busy = state["state"] in ("queued", "running")
        if reference and state["reference"] is not None:
            busy = busy or state["reference"]["state"] in ("queued", "running")
        if not busy:
            return state
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} not finished after {timeout} s: {state}")
