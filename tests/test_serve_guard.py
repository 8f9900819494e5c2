"""`lumicap serve` answers only its own page (issue 25, item 1): a request naming another host (DNS rebinding)
and a state-changing request sent from another website (CSRF: a cross-site text/plain POST) are refused with
403 and one log line, and nothing is queued; the page itself, and clients that are not web pages, still work."""

from __future__ import annotations

import json
import urllib.parse

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("starlette", reason="lumicap serve needs the serve extra (starlette, uvicorn)")
pytest.importorskip("uvicorn", reason="lumicap serve needs the serve extra (starlette, uvicorn)")

from _serve_support import register_tiny, request, save_tiny_safetensors, serve_in_thread, wait_for  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def tiny_model(tmp_path, monkeypatch):
    register_tiny(monkeypatch)
    return save_tiny_safetensors(tmp_path / "model")


def _png(tmp_path) -> bytes:
    path = tmp_path / "dark.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 80, size=(24, 32, 3), dtype=np.uint8)).save(path)
    return path.read_bytes()


def _post_photo(base: str, data: bytes, headers: dict[str, str]):
    status, _, body = request(f"{base}/api/jobs?{urllib.parse.urlencode({'name': 'dark.png'})}", data, headers=headers)
    return status, json.loads(body)


def test_cross_site_post_is_refused_and_queues_nothing(tmp_path, tiny_model, capfd):
    with serve_in_thread([tiny_model], tmp_path / "work") as served:
        # What a hostile page's <form enctype="text/plain"> or fetch(..., {mode: "no-cors"}) makes the browser send.
        status, answer = _post_photo(served.url, _png(tmp_path), {"Origin": "http://evil.example", "Content-Type": "text/plain"})
        assert status == 403 and "evil.example" in answer["error"] and "another website" in answer["error"]
        status, answer = _post_photo(served.url, _png(tmp_path), {"Origin": "null"})  # a sandboxed frame, a file: page
        assert status == 403
        # A browser that sends Sec-Fetch-Site but no Origin is refused too.
        status, _ = _post_photo(served.url, _png(tmp_path), {"Sec-Fetch-Site": "cross-site"})
        assert status == 403
        assert served.jobs._jobs == {}
        assert not list((served.workdir / "incoming").iterdir())
        # The page itself (same origin) and a client that is not a web page (no Origin: curl, scripts) are served.
        host = urllib.parse.urlsplit(served.url).netloc
        status, answer = _post_photo(served.url, _png(tmp_path), {"Origin": f"http://{host}", "Sec-Fetch-Site": "same-origin"})
        assert status == 202, answer
        assert wait_for(served.url, answer["id"])["state"] == "done"
        status, answer = _post_photo(served.url, _png(tmp_path), {})
        assert status == 202, answer
    refused = [line for line in capfd.readouterr().err.splitlines() if "refused" in line]
    assert len(refused) == 3 and all(line.startswith("lumicap serve: refused POST /api/jobs") for line in refused)


def test_requests_naming_another_host_are_refused(tmp_path, tiny_model):
    """DNS rebinding: the attacker's name resolves to 127.0.0.1, so its page can reach and read the server,
    but the browser still sends the attacker's name in Host."""
    with serve_in_thread([tiny_model], tmp_path / "work") as served:
        port = urllib.parse.urlsplit(served.url).port
        for host in (f"rebind.evil.example:{port}", "evil.example", f"localhost.evil.example:{port}", "", "a:b:c"):
            status, _, body = request(f"{served.url}/api/info", headers={"Host": host})
            assert status == 403, (host, body)
            assert "is not this server" in json.loads(body)["error"]
        status, answer = _post_photo(served.url, _png(tmp_path), {"Host": "evil.example", "Origin": "http://evil.example"})
        assert status == 403 and served.jobs._jobs == {}
        for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"LOCALHOST.:{port}", f"[::1]:{port}", f"127.0.0.2:{port}"):
            status, _, _ = request(f"{served.url}/api/info", headers={"Host": host})
            assert status == 200, host
        assert request(f"{served.url}/", headers={"Host": "evil.example"})[0] == 403


def test_allowed_hosts_follow_the_binding_and_allow_host():
    from lumicap.serve.guard import AllowedHosts

    local = AllowedHosts.for_binding("127.0.0.1")
    assert local.allows("localhost") and local.allows("127.0.0.1") and local.allows("::1")
    assert not local.allows("192.168.1.5") and not local.allows("evil.example")
    everywhere = AllowedHosts.for_binding("0.0.0.0")
    assert everywhere.allows("192.168.1.5") and everywhere.allows("fe80::1") and not everywhere.allows("evil.example")
    lan = AllowedHosts.for_binding("192.168.1.5", ["photos.lan"])
    assert lan.allows("192.168.1.5") and lan.allows("PHOTOS.LAN") and not lan.allows("10.0.0.1")
    assert AllowedHosts.for_binding("127.0.0.1", ["*"]).allows("anything.example")


@pytest.mark.parametrize("value, name", [("127.0.0.1:7860", "127.0.0.1"), ("[::1]:7860", "::1"), ("localhost", "localhost"),
                                         ("[::1]", "::1"), ("a:b", None), ("[::1]x", None), (":80", None), ("", None)])
def test_host_header_parsing(value, name):
    from lumicap.serve.guard import split_host

    assert split_host(value) == name


def test_allow_host_widens_the_page(tmp_path, tiny_model):
    from lumicap.serve.guard import AllowedHosts

    allowed = AllowedHosts.for_binding("127.0.0.1", ["photos.lan"])
    with serve_in_thread([tiny_model], tmp_path / "work", allowed_hosts=allowed) as served:
        port = urllib.parse.urlsplit(served.url).port
        assert request(f"{served.url}/api/info", headers={"Host": f"photos.lan:{port}"})[0] == 200
        status, answer = _post_photo(served.url, _png(tmp_path),
                                     {"Host": f"photos.lan:{port}", "Origin": f"http://photos.lan:{port}"})
        assert status == 202, answer
        assert request(f"{served.url}/api/info", headers={"Host": "other.lan"})[0] == 403
