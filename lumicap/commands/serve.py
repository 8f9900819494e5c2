"""`lumicap serve`: a local web page to try the enhancer on your own photos (needs the serve extra)."""

from __future__ import annotations

import os
import sys

from lumicap.commands.options import (
    add_device_option,
    add_model_options,
    add_tiling_options,
    finite_float,
    int_in_range,
    tile_settings,
)
from lumicap.limits import MAX_UPLOAD_MB_RANGE, MAX_UPLOAD_MEGAPIXELS_RANGE, check_finite

DEFAULT_PORT = 7860
DEFAULT_MAX_UPLOAD_MB = 50.0
DEFAULT_MAX_UPLOAD_MEGAPIXELS = 50.0


def register(sub):
    parser = sub.add_parser(
        "serve",
        help="a local web page to try the enhancer (pip install -e '.[serve]')",
        description=(
            "Serve a page where you drop dark photos and get them enhanced (side by side, before/after "
            "slider, download with the name 'lumicap enhance' writes). Binds 127.0.0.1 unless --host says "
            "otherwise; results live in a temporary folder removed on exit. Ctrl-C stops."
        ),
    )
    add_model_options(parser, several=True)
    add_device_option(parser)
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1: this machine only; others print a warning)")
    parser.add_argument(
        "--allow-host", metavar="NAME", action="append", default=[],
        help="also answer requests addressed to this host name (repeatable; '*': any). By default the page answers "
        "to localhost, 127.0.0.1, [::1] and the --host address (any IP address when --host is 0.0.0.0 or ::); "
        "requests naming another host, and uploads sent from another website, are refused (403)",
    )
    parser.add_argument("--port", type=int_in_range(0, 65535), default=DEFAULT_PORT,
                        help=f"port (default {DEFAULT_PORT}; 0 picks a free one)")
    parser.add_argument("--teacher", metavar="NAME|DIR",
                        help="caption the dark and the enhanced photo with this ClipCap teacher (e.g. clipcap-coco)")
    add_tiling_options(parser)
    parser.add_argument("--max-upload-mb", type=finite_float(*MAX_UPLOAD_MB_RANGE, low_open=True),
                        default=DEFAULT_MAX_UPLOAD_MB, metavar="MB",
                        help=f"refuse uploads above this size (default {DEFAULT_MAX_UPLOAD_MB:g})")
    parser.add_argument("--max-upload-megapixels", type=finite_float(*MAX_UPLOAD_MEGAPIXELS_RANGE, low_open=True),
                        default=DEFAULT_MAX_UPLOAD_MEGAPIXELS, metavar="MP",
                        help=f"refuse photos above this many megapixels (default {DEFAULT_MAX_UPLOAD_MEGAPIXELS:g})")
    parser.set_defaults(func=run)


def run(args) -> int:
    import shutil
    import signal
    import tempfile
    from pathlib import Path

    from lumicap.errors import LumicapError

    try:
        import starlette  # noqa: F401
        import uvicorn
    except ImportError as exc:
        raise LumicapError(
            f"lumicap serve needs the 'serve' extra ({exc.name} is not installed): "
            f"pip install 'lumicap[serve]', or from a checkout pip install -e \".[serve]\""
        ) from None
    from lumicap.serve.app import create_app
    from lumicap.serve.guard import AllowedHosts
    from lumicap.serve.jobs import JobQueue, Limits, ModelMenu

    _check_numbers(args)
    # Every setting is checked before anything is loaded, bound or created (the folder below included).
    tiles = tile_settings(args)
    limits = Limits(max_bytes=int(args.max_upload_mb * 1e6), max_megapixels=args.max_upload_megapixels)
    specs = args.model or ["default"]
    if args.weights is not None and len(specs) != 1:
        raise LumicapError("--weights goes with exactly one --model NAME")
    # Models and teacher first: a bad file is reported before anything listens.
    menu = ModelMenu.build(specs, args.weights, args.device, network_megapixels=args.network_megapixels)
    captioner = _load_captioner(args.teacher, menu.device) if args.teacher else None
    sock = _listen(args.host, args.port)
    port = sock.getsockname()[1]
    workdir = Path(tempfile.mkdtemp(prefix="lumicap-serve-"))
    jobs = JobQueue(workdir, menu, tiles, limits, captioner)
    allowed = AllowedHosts.for_binding(args.host, args.allow_host)
    app = create_app(jobs, teacher=args.teacher, allowed_hosts=allowed)

    local = _is_loopback(args.host)
    shown_host = args.host if local else "127.0.0.1"
    shown_host = f"[{shown_host}]" if ":" in shown_host else shown_host
    print(f"lumicap serve: open http://{shown_host}:{port}/ in a browser (Ctrl-C stops)", flush=True)
    print(f"model: {menu.entries[menu.selected].label} on {menu.device}; "
          f"{len(menu.entries)} in the menu; teacher: {args.teacher or 'none (captions off)'}", flush=True)
    print(f"results are kept in {workdir} until the server stops", flush=True)
    if not local:
        print(
            f"lumicap serve: warning: listening on {args.host}: anyone who can reach this machine on port {port} "
            f"can use this page (upload photos, use its CPU/GPU); use --host 127.0.0.1 to keep it local. It answers to "
            f"{allowed.describe()}: a machine name others type needs --allow-host NAME",
            file=sys.stderr,
            flush=True,
        )

    def stop_on_sigterm(signum, frame):
        raise KeyboardInterrupt

    # uvicorn shuts down gracefully on SIGINT/SIGTERM, then re-raises the signal: with this handler a
    # SIGTERM ends here as a KeyboardInterrupt too, so the finally below removes the folder.
    previous = signal.signal(signal.SIGTERM, stop_on_sigterm)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off", timeout_graceful_shutdown=3)
    try:
        uvicorn.Server(config).run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        busy = jobs.close(wait=2.0)
        sock.close()
        shutil.rmtree(workdir, ignore_errors=True)
        abandoned = " (abandoned the photo in progress)" if busy else ""
        print(f"lumicap serve: stopped{abandoned}; removed {workdir}", flush=True)
    if busy:
        # Waiting for a whole-image pass could take minutes, and tearing the interpreter down under a
        # running torch thread aborts in C++; the folder is gone, so end the process here.
        sys.stderr.flush()
        os._exit(0)
    return 0


def _check_numbers(args) -> None:
    from lumicap.errors import LumicapError

    # The parser took each upload limit only finite and in its range (finite_float); the same again for
    # callers that build the arguments themselves. The tiling options are TileSettings' (tile_settings).
    try:
        check_finite(args.max_upload_mb, *MAX_UPLOAD_MB_RANGE, low_open=True, what="--max-upload-mb")
        check_finite(args.max_upload_megapixels, *MAX_UPLOAD_MEGAPIXELS_RANGE, low_open=True,
                     what="--max-upload-megapixels")
    except ValueError as exc:
        raise LumicapError(str(exc)) from None


def _load_captioner(teacher: str, device):
    from lumicap.errors import LumicapError
    from lumicap.inference.captions import CaptionWriter
    from lumicap.teacher import ClipCapTeacher

    try:
        model = ClipCapTeacher.from_pretrained(teacher, device=device)
    except LumicapError as exc:
        raise LumicapError(f"--teacher '{teacher}' is not available ({exc})") from None
    return CaptionWriter(model, out_dir=".")  # only its caption() is used: nothing is written


def _listen(host: str, port: int):
    """A listening socket bound here, so the real port (for --port 0) is known before serving."""
    import socket

    from lumicap.errors import LumicapError

    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(64)
    except OSError as exc:
        raise LumicapError(
            f"cannot listen on {host}:{port} ({exc.strerror or exc}); choose another --port or --host"
        ) from None
    return sock


def _is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
