"""`lumicap serve` through HTTP on a free loopback port: results equal `lumicap enhance`'s files, the safety
rules (limits, non-images, traversal names, the queue), references, captions, progress, start and stop.
The page itself is driven in a real browser in test_serve_browser.py."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("starlette", reason="lumicap serve needs the serve extra (starlette, uvicorn)")
pytest.importorskip("uvicorn", reason="lumicap serve needs the serve extra (starlette, uvicorn)")

from _serve_support import (  # noqa: E402
    GATE,
    register_gated,
    request,
    save_gated_safetensors,
    serve_in_thread,
    upload,
    wait_for,
)
from lumicap.cli import main  # noqa: E402
from lumicap.serve.jobs import safe_name  # noqa: E402


pytestmark = pytest.mark.usefixtures("one_thread")


def _photo_bytes(path: Path, height=37, width=53, seed=0, fmt="PNG") -> bytes:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 80, size=(height, width, 3), dtype=np.uint8)).save(path, format=fmt)
    return path.read_bytes()


def _cli_enhance(photo: Path, out: Path, model, *extra) -> Path:
    code = main(["enhance", str(photo), "--out", str(out), "--model", str(model), "--device", "cpu", "--no-progress", *map(str, extra)])
    assert code == 0
    return out


def _files_under(folder: Path) -> list[Path]:
    """Files below ``folder``; a job folder the server removes while it is walked is simply not there."""
    for _ in range(20):
        try:
            return sorted(p for p in folder.rglob("*") if p.is_file())
        except FileNotFoundError:  # removed between listing and entering it: walk again
            time.sleep(0.05)
    raise AssertionError(f"{folder} kept changing while it was listed")


# ------------------------------------------------------------------------------------------- results


def test_result_and_download_are_the_files_lumicap_enhance_writes(tmp_path, tiny_model):
    photo = tmp_path / "in" / "night shot.jpg"
    photo.parent.mkdir()
    data = _photo_bytes(photo, fmt="JPEG")
    cli_png = _cli_enhance(photo, tmp_path / "cli-png", tiny_model) / "night shot.png"
    cli_jpg = _cli_enhance(photo, tmp_path / "cli-jpg", tiny_model, "--format", "jpg", "--quality", "80") / "night shot.jpg"

    with serve_in_thread([tiny_model], tmp_path / "work") as served:
        status, answer = upload(served.url, "night shot.jpg", data)
        assert status == 202 and answer["state"] in ("queued", "running", "done")
        done = wait_for(served.url, answer["id"])
        assert done["state"] == "done", done
        assert done["output_name"] == "night shot.png" and (done["width"], done["height"]) == (53, 37)
        assert done["seconds"] > 0 and done["model"] == "tiny (tiny_conv_test, given to lumicap serve)"
        assert done["model_name"] == "tiny"
        # Not the shipped default: the model's name joins the file name lumicap enhance gives.
        assert done["download_name"] == "night shot-tiny.png"
        status, headers, png = request(f"{served.url}/api/jobs/{answer['id']}/download")
        assert status == 200 and png == cli_png.read_bytes()
        assert "night shot-tiny.png" in urllib.parse.unquote(headers["content-disposition"])
        status, headers, jpg = request(f"{served.url}/api/jobs/{answer['id']}/download?format=jpg&quality=80")
        assert status == 200 and jpg == cli_jpg.read_bytes()
        assert "night shot-tiny.jpg" in urllib.parse.unquote(headers["content-disposition"])
        for which in ("input", "output"):
            status, headers, preview = request(f"{served.url}/api/jobs/{answer['id']}/preview/{which}")
            assert status == 200 and headers["content-type"] == "image/jpeg" and preview[:2] == b"\xff\xd8"
        status, _, body = request(f"{served.url}/api/jobs/{answer['id']}/download?format=jpg&quality=0")
        assert status == 400 and "1-100" in json.loads(body)["error"]


def test_big_photos_are_tiled_as_the_cli_tiles_them_with_progress(tmp_path, tiny_model):
    from lumicap.inference import TileSettings, plan_tiles

    photo = tmp_path / "wide.png"
    data = _photo_bytes(photo, height=70, width=101, seed=4)
    cli = _cli_enhance(photo, tmp_path / "cli", tiny_model, "--tile", "32", "--tile-overlap", "8") / "wide.png"
    with serve_in_thread([tiny_model], tmp_path / "work", tiles=TileSettings(tile=32, overlap=8)) as served:
        _, answer = upload(served.url, "wide.png", data)
        done = wait_for(served.url, answer["id"])
        expected = plan_tiles(70, 101, 32, 8).count
        assert done["tiles_total"] == done["tiles_done"] == expected > 1
        assert request(f"{served.url}/api/jobs/{answer['id']}/download")[2] == cli.read_bytes()


def test_each_card_has_the_niqe_of_the_dark_and_the_enhanced_photo(tmp_path, tiny_model):
    from lumicap.data.io import read_image_array
    from lumicap.metrics import niqe

    photo = tmp_path / "shot.png"
    data = _photo_bytes(photo, height=120, width=200, seed=3)  # two 96x96 blocks: NIQE is defined
    cli = _cli_enhance(photo, tmp_path / "cli", tiny_model) / "shot.png"
    small = tmp_path / "small.png"
    small_data = _photo_bytes(small, height=40, width=48, seed=1)
    with serve_in_thread([tiny_model], tmp_path / "work") as served:
        done = wait_for(served.url, upload(served.url, "shot.png", data)[1]["id"])
        assert done["niqe"]["input"] == pytest.approx(niqe(read_image_array(photo)), abs=1e-9)
        assert done["niqe"]["enhanced"] == pytest.approx(niqe(read_image_array(cli)), abs=1e-9)  # of the PNG's levels
        done = wait_for(served.url, upload(served.url, "small.png", small_data)[1]["id"])
        assert done["niqe"] == {"input": None, "enhanced": None}  # under 96x96: no NIQE, and valid JSON


def test_reference_photo_gives_the_evaluators_psnr_and_ssim(tmp_path, tiny_model):
    photo, reference = tmp_path / "dark.png", tmp_path / "bright.png"
    data = _photo_bytes(photo, height=40, width=48, seed=1)
    rng = np.random.default_rng(9)
    Image.fromarray(rng.integers(60, 255, size=(40, 48, 3), dtype=np.uint8)).save(reference)
    cli = _cli_enhance(photo, tmp_path / "cli", tiny_model)
    gt_dir = tmp_path / "gt"
    gt_dir.mkdir()
    (gt_dir / "dark.png").write_bytes(reference.read_bytes())
    assert main(["eval", "--pred", str(cli), "--gt", str(gt_dir), "--out", str(tmp_path / "eval")]) == 0
    summary = json.loads((tmp_path / "eval" / "summary.json").read_text())

    with serve_in_thread([tiny_model], tmp_path / "work") as served:
        _, answer = upload(served.url, "dark.png", data)
        wait_for(served.url, answer["id"])
        status, body = _post_reference(served.url, answer["id"], "bright.png", reference.read_bytes())
        assert status == 202, body
        done = wait_for(served.url, answer["id"], reference=True)
        assert done["reference"]["state"] == "done" and done["reference"]["name"] == "bright.png"
        assert done["reference"]["psnr"] == pytest.approx(summary["psnr"], abs=1e-9)
        assert done["reference"]["ssim"] == pytest.approx(summary["ssim"], abs=1e-9)
        small = tmp_path / "small.png"
        status, body = _post_reference(served.url, answer["id"], "small.png", _photo_bytes(small, 20, 20))
        assert status == 400 and "same size" in body["error"] and "20x20" in body["error"]


def _post_reference(base, job_id, name, data):
    status, _, body = request(f"{base}/api/jobs/{job_id}/reference?{urllib.parse.urlencode({'name': name})}", data)
    return status, json.loads(body)


def test_captions_of_the_dark_and_enhanced_photo_with_a_teacher(tmp_path, tiny_model):
    from lumicap.data.io import read_image
    from lumicap.inference import enhance_image, load_inference_model
    from lumicap.inference.captions import CaptionWriter
    from lumicap.teacher import ClipCapTeacher, save_tiny_teacher

    teacher_dir = save_tiny_teacher(tmp_path / "teacher", "mlp", seed=5)
    photo = tmp_path / "dark.png"
    data = _photo_bytes(photo, height=40, width=48, seed=2)
    with serve_in_thread([tiny_model], tmp_path / "work", teacher=teacher_dir) as served:
        status, _, body = request(f"{served.url}/api/info")
        assert json.loads(body)["teacher"] == str(teacher_dir)
        _, answer = upload(served.url, "dark.png", data)
        done = wait_for(served.url, answer["id"])
    writer = CaptionWriter(ClipCapTeacher.from_pretrained(teacher_dir), tmp_path)
    assert done["captions"]["input"] == writer.caption(read_image(photo))
    # As `enhance --caption`, the enhanced photo is captioned before its rounding to 8-bit levels.
    model = load_inference_model(tiny_model, "cpu")
    enhanced = enhance_image(model, read_image(photo), torch.device("cpu"))
    assert done["captions"]["enhanced"] == writer.caption(enhanced)


# -------------------------------------------------------------------------------------------- safety


def test_non_images_get_one_line_and_nothing_is_kept(tmp_path, tiny_model):
    with serve_in_thread([tiny_model], tmp_path / "work") as served:
        for name, data in (("notes.png", b"just some text, not a picture\n" * 4),
                           ("empty.jpg", b""),
                           ("fake.jpg", b"\xff\xd8\xff" + b"\x00" * 40)):
            status, answer = upload(served.url, name, data)
            assert status == 400, answer
            message = answer["error"]
            assert message.startswith(name) and "\n" not in message and str(served.workdir) not in message
        status, answer = upload(served.url, "notes.png", b"just some text, not a picture\n")
        assert "not an image" in answer["error"]
        assert _files_under(served.workdir) == []  # no job, no leftover upload
        # A real header over broken pixel data is only found out when decoding: the job fails with the
        # reason, and its files go at once.
        status, answer = upload(served.url, "cut.png", _photo_bytes(tmp_path / "whole.png")[:80])
        assert status == 202
        failed = wait_for(served.url, answer["id"])
        assert failed["state"] == "failed" and failed["message"].startswith("cut.png: cannot decode image")
        assert str(served.workdir) not in failed["message"]
        deadline = time.monotonic() + 5  # the failed state is shown while its folder is being removed
        while _files_under(served.workdir) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _files_under(served.workdir) == []
        status, _, body = request(f"{served.url}/api/jobs/{answer['id']}/download")
        assert status == 409 and "not enhanced" in json.loads(body)["error"]


def test_a_video_upload_is_refused_with_the_command_that_enhances_it(tmp_path, tiny_model):
    with serve_in_thread([tiny_model], tmp_path / "work") as served:
        status, answer = upload(served.url, "night clip.mp4", b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 64)
        assert status == 400 and "\n" not in answer["error"]
        assert answer["error"].startswith("night clip.mp4: a video") and "lumicap enhance 'night clip.mp4' --out" in answer["error"]
        assert _files_under(served.workdir) == []


def test_size_and_megapixel_limits(tmp_path, tiny_model):
    big = tmp_path / "big.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, size=(300, 400, 3), dtype=np.uint8)).save(big)  # 0.12 MP, ~360 KB
    wide = tmp_path / "wide.png"
    Image.new("RGB", (1000, 700), (10, 10, 10)).save(wide)  # 0.7 MP, a few KB
    with serve_in_thread([tiny_model], tmp_path / "work", max_bytes=100_000, max_megapixels=0.5) as served:
        status, answer = upload(served.url, "big.png", big.read_bytes())
        assert status == 413 and "above this server's upload limit of 0.1 MB" in answer["error"]
        status, answer = upload(served.url, "wide.png", wide.read_bytes())
        assert status == 413 and "1000x700 is 0.7 megapixels" in answer["error"] and "limit of 0.5" in answer["error"]
        assert _files_under(served.workdir) == []
        status, answer = upload(served.url, "ok.png", _photo_bytes(tmp_path / "ok.png"))
        assert status == 202


@pytest.mark.parametrize("raw, expected", [
    ("../../etc/passwd", "passwd"),
    ("..\\..\\Windows\\win.ini", "win.ini"),
    ("/abs/path/photo.png", "photo.png"),
    ("C:\\Users\\x\\photo.png", "photo.png"),
    ("..", "photo"),
    (".hidden.png", "hidden.png"),
    ("a\x00b\nc.png", "abc.png"),
    ("", "photo"),
    ("x" * 300 + ".png", "x" * 116 + ".png"),
])
def test_safe_name(raw, expected):
    assert safe_name(raw) == expected


def test_no_path_can_be_read_or_written_through_the_page(tmp_path, tiny_model):
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = outside / "secret.txt"
    secret.write_text("do not serve me")
    work = tmp_path / "srv" / "work"
    photo = _photo_bytes(tmp_path / "p.png")
    with serve_in_thread([tiny_model], work) as served:
        before = set(_files_under(tmp_path)) - set(_files_under(work))
        ids = []
        for name in ("../../../outside/evil.png", "..\\..\\outside\\evil.png", str(outside / "evil.png"), "%2e%2e%2fevil.png"):
            status, answer = upload(served.url, name, photo)
            assert status == 202 and "/" not in answer["name"] and "\\" not in answer["name"], answer
            ids.append(answer["id"])
        for job_id in ids:
            assert wait_for(served.url, job_id)["state"] == "done"
        # Everything the jobs wrote is inside the server's folder; nothing appeared or changed elsewhere.
        assert set(_files_under(tmp_path)) - set(_files_under(work)) == before
        assert all(p.resolve().is_relative_to(work.resolve()) for p in _files_under(work))
        probes = [
            "/static/../../../outside/secret.txt", "/static/..%2f..%2f..%2foutside%2fsecret.txt",
            f"/static/{secret}", "/static/%2e%2e/app.py", "/static/jobs.py", "/../../../etc/passwd",
            f"/api/jobs/..%2f..%2f{ids[0]}/download", "/api/jobs/../../etc/passwd/download",
            f"/api/jobs/{ids[0]}/preview/..%2f..%2finput", f"/api/jobs/{ids[0]}/preview/../../output/x",
            f"/api/jobs/{ids[0]}/download?format=..%2f..%2fsecret.txt",
        ]
        for path in probes:
            status, _, body = _raw_get(served.url, path)
            assert status in (400, 404), (path, status)
            assert b"do not serve me" not in body and b"import " not in body
        status, answer = upload(served.url, "x.png", photo, model="../../outside/secret.txt")
        assert status == 400 and "unknown model" in answer["error"]
        # A job's files are reachable by its id only, and the ids are random.
        assert len({i for i in ids}) == 4 and all(len(i) == 16 for i in ids)


def _raw_get(base: str, path: str):
    """GET with the path sent exactly as written (urllib would not normalise, but be explicit)."""
    import http.client

    host, port = base.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    connection.putrequest("GET", path, skip_accept_encoding=True)
    connection.endheaders()
    response = connection.getresponse()
    body = response.read()
    connection.close()
    return response.status, dict(response.getheaders()), body


def test_concurrent_uploads_wait_in_line(tmp_path, monkeypatch):
    register_gated(monkeypatch)
    model = save_gated_safetensors(tmp_path / "model")
    GATE.clear()
    photos = [_photo_bytes(tmp_path / f"p{i}.png", seed=i) for i in range(5)]
    with serve_in_thread([model], tmp_path / "work", max_waiting=3) as served:
        status, first = upload(served.url, "p0.png", photos[0])
        assert status == 202
        deadline = time.monotonic() + 30
        while job_state(served, first["id"])["state"] != "running":
            assert time.monotonic() < deadline, "the first job never started"
            time.sleep(0.05)
        # Three uploads at once while the worker is busy (the gated network waits for GATE).
        answers = [None] * 3

        def send(i):
            answers[i] = upload(served.url, f"p{i + 1}.png", photos[i + 1])

        threads = [threading.Thread(target=send, args=(i,)) for i in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert all(status == 202 for status, _ in answers), answers
        waiting = [job_state(served, answer["id"]) for _, answer in answers]
        assert [s["state"] for s in waiting] == ["queued"] * 3
        assert sorted(s["ahead"] for s in waiting) == [0, 1, 2]
        assert job_state(served, first["id"])["state"] == "running"
        # With three waiting (this test server's queue limit), one more is refused with a message, not crashed.
        status, answer = upload(served.url, "p4.png", photos[4])
        assert status == 503 and "waiting" in answer["error"]
        GATE.set()
        done = [wait_for(served.url, a["id"]) for a in [first] + [answer for _, answer in answers]]
        assert all(d["state"] == "done" for d in done)
        jobs = sorted((served.jobs.get(d["id"]) for d in done), key=lambda j: j.started)
        for earlier, later in zip(jobs, jobs[1:]):
            assert earlier.finished <= later.started  # one at a time, never overlapping


def job_state(served, job_id):
    return served.jobs.public(served.jobs.get(job_id))


# ----------------------------------------------------------------------------------- menu and command


def test_menu_offers_default_given_models_and_cached_registry_weights(tmp_path, tiny_model, monkeypatch):
    from lumicap import weights
    from lumicap.inference import load_inference_model, save_inference_model
    from lumicap.serve.jobs import ModelMenu

    cache = tmp_path / "cache"
    monkeypatch.setenv("LUMICAP_CACHE", str(cache))
    weights._populate()
    entry = weights.KnownWeights(name="tiny_conv_test-lol-example", filename="tiny.safetensors", description="test")
    missing = weights.KnownWeights(name="tiny_conv_test-not-downloaded", filename="x.safetensors", description="test")
    monkeypatch.setitem(weights.KNOWN_WEIGHTS, entry.name, entry)
    monkeypatch.setitem(weights.KNOWN_WEIGHTS, missing.name, missing)
    torch.manual_seed(3)
    from _enhance_support import TinyConv

    save_inference_model(weights.cached_path(entry), "tiny_conv_test", TinyConv().state_dict())

    menu = ModelMenu.build([str(tiny_model)], None, "cpu")
    keys = [item["key"] for item in menu.listing()]
    assert keys == ["default", "retinexformer-lumicap", "iat-lumicap-2026-11", "model-1", "weights:tiny_conv_test-lol-example"]
    assert menu.selected == "model-1" and menu.listing()[3]["selected"]
    default_name = load_inference_model("default", "cpu").name  # whatever the package ships
    labels = [item["label"] for item in menu.listing()]
    assert labels == [f"default ({default_name}, shipped)", "retinexformer-lumicap (retinexformer, shipped)",
                      "iat-lumicap-2026-11 (iat, shipped)", "tiny (tiny_conv_test, given to lumicap serve)",
                      "tiny_conv_test-lol-example (tiny_conv_test, downloaded)"]
    assert [item["name"] for item in menu.listing()] == ["default", "retinexformer-lumicap", "iat-lumicap-2026-11",
                                                         "tiny", "tiny_conv_test-lol-example"]
    cached = menu.load("weights:tiny_conv_test-lol-example")
    assert cached.name == "tiny_conv_test"
    expected = load_inference_model("tiny_conv_test", "cpu", weights=str(weights.cached_path(entry)))
    for (k, a), (_, b) in zip(cached.module.state_dict().items(), expected.module.state_dict().items()):
        assert torch.equal(a, b), k


def test_downloads_keep_the_photos_colour_profile_as_the_cli_does(tmp_path, tiny_model):
    from PIL import ImageCms

    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    photo = tmp_path / "phone.jpg"
    rng = np.random.default_rng(6)
    Image.fromarray(rng.integers(0, 80, size=(30, 40, 3), dtype=np.uint8)).save(photo, quality=95, icc_profile=profile)
    cli_png = _cli_enhance(photo, tmp_path / "cli-png", tiny_model) / "phone.png"
    cli_jpg = _cli_enhance(photo, tmp_path / "cli-jpg", tiny_model, "--format", "jpg", "--quality", "85") / "phone.jpg"
    with serve_in_thread([tiny_model], tmp_path / "work") as served:
        _, answer = upload(served.url, "phone.jpg", photo.read_bytes())
        assert wait_for(served.url, answer["id"])["state"] == "done"
        png = request(f"{served.url}/api/jobs/{answer['id']}/download")[2]
        jpg = request(f"{served.url}/api/jobs/{answer['id']}/download?format=jpg&quality=85")[2]
    assert png == cli_png.read_bytes() and jpg == cli_jpg.read_bytes()
    assert Image.open(cli_jpg).info["icc_profile"] == profile


def test_one_photo_by_two_models_downloads_as_two_names(tmp_path):
    photo = tmp_path / "10.png"
    data = _photo_bytes(photo, height=24, width=32, seed=5)
    with serve_in_thread(["default"], tmp_path / "work") as served:
        jobs = {}
        for model in ("default", "retinexformer-lumicap"):
            status, answer = upload(served.url, "10.png", data, model=model)
            assert status == 202, answer
            jobs[model] = wait_for(served.url, answer["id"])
        assert [jobs[m]["model_name"] for m in jobs] == ["default", "retinexformer-lumicap"]
        assert [jobs[m]["download_name"] for m in jobs] == ["10.png", "10-retinexformer-lumicap.png"]
        for model, job in jobs.items():
            status, headers, _ = request(f"{served.url}/api/jobs/{job['id']}/download?format=jpg&quality=90")
            assert status == 200 and job["download_name"][:-4] + ".jpg" in urllib.parse.unquote(headers["content-disposition"])


def test_command_errors_are_one_line(tmp_path, capsys, monkeypatch):
    code = main(["serve", "--model", str(tmp_path / "missing.safetensors"), "--port", "0"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "missing.safetensors" in err
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # as if the serve extra were not installed
    code = main(["serve", "--port", "0"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "pip install" in err and "[serve]" in err


def _start_command(tmp_path: Path, model: Path, *extra) -> tuple[subprocess.Popen, str, str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", "TMPDIR": str(tmp_path)}
    process = subprocess.Popen(
        [sys.executable, "-m", "lumicap", "serve", "--model", str(model), "--port", "0", "--device", "cpu", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    lines = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line)
        if line.startswith("results are kept in"):
            address = next(l for l in lines if "open http" in l).split()[3]
            return process, address.rstrip("/"), line.split()[4]
    process.kill()
    raise AssertionError(f"lumicap serve did not start: {''.join(lines)}{process.stderr.read()}")


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_command_binds_loopback_and_removes_its_folder_on_exit(tmp_path, stop):
    from lumicap.inference import save_inference_model
    from lumicap.models import build_model

    torch.manual_seed(0)
    model, _ = save_inference_model(tmp_path / "iat.safetensors", "iat", build_model("iat").state_dict())
    process, address, workdir = _start_command(tmp_path, model)
    try:
        assert address.startswith("http://127.0.0.1:")
        status, answer = upload(address, "p.png", _photo_bytes(tmp_path / "p.png", 24, 20))
        assert status == 202
        assert wait_for(address, answer["id"])["state"] == "done"
        assert any(Path(workdir).rglob("p.png"))
        process.send_signal(stop)
        out, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 0, err
    assert "stopped; removed" in out and "Traceback" not in err and "warning" not in err
    assert not Path(workdir).exists()


def test_stopping_while_a_photo_is_enhanced(tmp_path):
    from lumicap.inference import save_inference_model
    from lumicap.models import build_model

    torch.manual_seed(0)
    model, _ = save_inference_model(tmp_path / "iat.safetensors", "iat", build_model("iat").state_dict())
    process, address, workdir = _start_command(tmp_path, model)
    try:
        # About 0.7 MP in one whole-image pass: seconds of work, not interruptible between tiles.
        status, answer = upload(address, "big.png", _photo_bytes(tmp_path / "big.png", 700, 1000))
        assert status == 202
        deadline = time.monotonic() + 60
        while request(f"{address}/api/jobs/{answer['id']}")[2].find(b'"running"') < 0:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 0, err
    assert "stopped" in out and "terminate called" not in err and "Traceback" not in err
    assert not Path(workdir).exists()


def test_other_hosts_print_a_warning(tmp_path):
    from lumicap.inference import save_inference_model
    from lumicap.models import build_model

    model, _ = save_inference_model(tmp_path / "iat.safetensors", "iat", build_model("iat").state_dict())
    process, address, workdir = _start_command(tmp_path, model, "--host", "0.0.0.0")
    try:
        assert request(f"{address}/api/info")[0] == 200
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert "warning: listening on 0.0.0.0" in err and "--host 127.0.0.1" in err
    assert process.returncode == 0 and not Path(workdir).exists()


def test_the_page_loads_nothing_from_elsewhere(tmp_path, tiny_model):
    from importlib import resources

    folder = resources.files("lumicap.serve").joinpath("static")
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["app.js", "index.html", "style.css"]
    for name in names:
        text = folder.joinpath(name).read_text()
        assert "http://" not in text and "https://" not in text and "//cdn" not in text, name
    with serve_in_thread([tiny_model], tmp_path / "work") as served:
        status, headers, body = request(f"{served.url}/")
        assert status == 200 and b"/static/app.js" in body
        assert "default-src 'self'" in headers["content-security-policy"]
