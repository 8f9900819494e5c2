"""The web side of ``lumicap serve``: one static page and a small JSON API, as a Starlette app.

    GET  /                              the page (static/index.html; its script and style under /static/)
    GET  /api/info                      models, limits, teacher
    POST /api/jobs?name=N&model=KEY     body: the photo's bytes -> 202 {job} | 4xx {"error": one line}
    GET  /api/jobs/ID                   the job: queued (how many ahead) | running (tiles) | done | failed
    GET  /api/jobs/ID/preview/input|output     downscaled JPEG previews
    GET  /api/jobs/ID/download?format=png|jpg&quality=Q    the full-resolution result, CLI file name
    POST /api/jobs/ID/reference?name=N  body: a reference photo -> PSNR/SSIM in the job

Uploads are streamed to disk and counted: past the size limit nothing more is written and the request
is answered 413. The page is served with a Content-Security-Policy that allows this server only, so the
browser itself guarantees the page fetches nothing from the internet. Requests naming another host, and
state-changing requests sent from another website, are refused before any route sees them
(``lumicap.serve.guard``).
"""

from __future__ import annotations

from importlib import resources
from urllib.parse import quote

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from lumicap.serve.guard import AllowedHosts, HostOriginGuard
from lumicap.serve.jobs import JobQueue, UploadRejected, safe_name

STATIC_TYPES = {"index.html": "text/html; charset=utf-8", "app.js": "text/javascript; charset=utf-8",
                "style.css": "text/css; charset=utf-8"}
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; object-src 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def create_app(jobs: JobQueue, teacher: str | None = None, allowed_hosts: AllowedHosts | None = None) -> Starlette:
    """The app; ``allowed_hosts``: the ``Host`` names it answers to (default: loopback names only)."""
    def static_file(name: str) -> Response:
        if name not in STATIC_TYPES:  # a fixed list: nothing else on disk is reachable
            return JSONResponse({"error": "not found"}, status_code=404)
        body = resources.files("lumicap.serve").joinpath("static", name).read_bytes()
        return Response(body, media_type=STATIC_TYPES[name], headers={**SECURITY_HEADERS, "Cache-Control": "no-cache"})

    async def index(request: Request) -> Response:
        return static_file("index.html")

    async def static(request: Request) -> Response:
        return static_file(request.path_params["name"])

    async def info(request: Request) -> Response:
        return JSONResponse({
            "models": jobs.menu.listing(),
            "teacher": teacher,
            "max_bytes": jobs.limits.max_bytes,
            "max_megapixels": jobs.limits.max_megapixels,
        })

    async def upload(request: Request) -> Response:
        name = safe_name(request.query_params.get("name", ""))
        model = request.query_params.get("model") or jobs.menu.selected
        received = await _receive(request, jobs, name)
        job = await run_in_threadpool(jobs.submit, name, model, received)
        return JSONResponse(jobs.public(job), status_code=202)

    async def reference(request: Request) -> Response:
        name = safe_name(request.query_params.get("name", ""))
        received = await _receive(request, jobs, name)
        job = await run_in_threadpool(jobs.submit_reference, request.path_params["job_id"], name, received)
        return JSONResponse(jobs.public(job), status_code=202)

    async def status(request: Request) -> Response:
        return JSONResponse(jobs.public(jobs.get(request.path_params["job_id"])))

    async def preview(request: Request) -> Response:
        path = jobs.preview(request.path_params["job_id"], request.path_params["which"])
        return FileResponse(path, media_type="image/jpeg")

    async def download(request: Request) -> Response:
        fmt = request.query_params.get("format", "png")
        try:
            quality = int(request.query_params.get("quality", "95"))
        except ValueError:
            raise UploadRejected("JPEG quality must be a whole number from 1 to 100") from None
        result, filename = await run_in_threadpool(jobs.download, request.path_params["job_id"], fmt, quality)
        if isinstance(result, bytes):  # a JPEG encoded for this request (not kept on disk)
            return Response(result, media_type="image/jpeg", headers={"Content-Disposition": _attachment(filename)})
        return FileResponse(result, media_type="image/png", filename=filename)

    async def rejected(request: Request, exc: UploadRejected) -> Response:
        return JSONResponse({"error": str(exc)}, status_code=exc.status)

    routes = [
        Route("/", index),
        Route("/static/{name}", static),
        Route("/api/info", info),
        Route("/api/jobs", upload, methods=["POST"]),
        Route("/api/jobs/{job_id}", status),
        Route("/api/jobs/{job_id}/preview/{which}", preview),
        Route("/api/jobs/{job_id}/download", download),
        Route("/api/jobs/{job_id}/reference", reference, methods=["POST"]),
    ]
    guard = Middleware(HostOriginGuard, allowed=allowed_hosts or AllowedHosts())
    return Starlette(routes=routes, exception_handlers={UploadRejected: rejected}, middleware=[guard])


def _attachment(filename: str) -> str:
    """``Content-Disposition`` for a download, as FileResponse writes it (RFC 6266 ``filename*`` when needed)."""
    quoted = quote(filename)
    return f"attachment; filename*=utf-8''{quoted}" if quoted != filename else f'attachment; filename="{filename}"'


async def _receive(request: Request, jobs: JobQueue, name: str):
    """Stream the request body into a fresh file; past the size limit keep reading but stop writing."""
    limit = jobs.limits.max_bytes
    received = jobs.incoming_file()
    size = 0
    # Reading the rest of an over-size body (and throwing it away) lets the client see the answer;
    # closing the connection mid-upload would show up as a network error instead of the message.
    try:
        with open(received, "wb") as fh:
            async for chunk in request.stream():
                size += len(chunk)
                if size <= limit:
                    fh.write(chunk)
    except BaseException:  # the browser went away mid-upload (or the server is stopping): keep nothing
        received.unlink(missing_ok=True)
        raise
    if size > limit:
        received.unlink(missing_ok=True)
        raise UploadRejected(
            f"{name}: {size / 1e6:.1f} MB is above this server's upload limit of {limit / 1e6:g} MB (lumicap "
            "serve --max-upload-mb)",
            413,
        )
    if size == 0:
        received.unlink(missing_ok=True)
        raise UploadRejected(f"{name}: empty upload (0 bytes)")
    return received
