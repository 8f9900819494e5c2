"""`lumicap weights list|download|path|verify` against a temporary cache; downloads use file:// URLs or a
patched hub client, never the network."""

from __future__ import annotations

import hashlib

import pytest

from lumicap.cli import main
from lumicap.weights import KNOWN_WEIGHTS, KnownWeights, known_weights


def run_cli(capsys, *argv):
    code = main(["weights", *map(str, argv)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def local_entry(tmp_path, monkeypatch):
    """A known-weights entry whose source is a local file (sha256 published, as OpenAI's are)."""
    source = tmp_path / "source" / "tiny-weights.bin"
    source.parent.mkdir()
    source.write_bytes(b"lumicap test weights " * 5000)
    entry = KnownWeights(
        name="test-local",
        filename="tiny-weights.bin",
        url=source.as_uri(),
        sha256=hashlib.sha256(source.read_bytes()).hexdigest(),
        size=source.stat().st_size,
        description="test entry",
    )
    known_weights()  # populate the catalogue before adding to it
    monkeypatch.setitem(KNOWN_WEIGHTS, entry.name, entry)
    return entry


def test_list_shows_every_known_file_and_cache_state(capsys, tmp_path, local_entry):
    code, out, _ = run_cli(capsys, "--cache-dir", tmp_path / "cache", "list")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["NAME", "SIZE", "CACHED", "SOURCE"]
    for name in ("clipcap-coco", "clip-vit-b32-openai", "clip-rn50x4-openai", "gpt2-tokenizer", "test-local"):
        assert any(line.split()[0] == name for line in lines), name
    row = next(line for line in lines if line.startswith("test-local"))
    assert " no " in row and local_entry.url in row and "105.0 KB" in row  # 21 bytes x 5000
    vit = next(line for line in lines if line.startswith("clip-vit-b32-openai"))
    assert "40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af/ViT-B-32.pt" in vit


def test_download_path_verify_round_trip(capsys, tmp_path, local_entry):
    cache = tmp_path / "cache"
    code, out, err = run_cli(capsys, "path", "test-local", "--cache-dir", cache)
    assert code == 1 and out.strip() == str(cache / "test-local" / "tiny-weights.bin") and "not downloaded" in err

    code, out, err = run_cli(capsys, "download", "test-local", "--cache-dir", cache)
    assert code == 0 and "downloaded" in out
    assert "tiny-weights.bin" in err and "100%" in err  # the progress bar
    cached = cache / "test-local" / "tiny-weights.bin"
    assert cached.read_bytes() == (tmp_path / "source" / "tiny-weights.bin").read_bytes()

    code, out, _ = run_cli(capsys, "path", "test-local", "--cache-dir", cache)
    assert code == 0 and out.strip() == str(cached)
    code, out, _ = run_cli(capsys, "--cache-dir", cache, "verify", "test-local")
    assert code == 0 and "ok" in out and local_entry.sha256 in out
    code, out, _ = run_cli(capsys, "--cache-dir", cache, "list")
    assert " yes " in next(line for line in out.splitlines() if line.startswith("test-local"))
    code, out, _ = run_cli(capsys, "download", "test-local", "--cache-dir", cache)
    assert code == 0 and "already cached" in out

    cached.write_bytes(b"tampered")
    code, out, err = run_cli(capsys, "verify", "test-local", "--cache-dir", cache)
    assert code == 2 and err.count("\n") == 1 and "does not match" in err and str(cached) in err


def test_offline_download_is_one_line_that_says_what_where_and_where_to(capsys, tmp_path, monkeypatch):
    import huggingface_hub

    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", offline)
    cache = tmp_path / "cache"
    code, out, err = run_cli(capsys, "download", "gpt2-tokenizer", "--cache-dir", cache)
    assert code == 2 and out == "" and err.count("\n") == 1
    assert "tokenizer.json" in err
    assert "https://huggingface.co/openai-community/gpt2/resolve/main/tokenizer.json" in err
    assert str(cache / "gpt2-tokenizer" / "tokenizer.json") in err
    assert not (cache / "gpt2-tokenizer" / "tokenizer.json").exists()


def test_a_web_page_instead_of_the_file_is_refused(capsys, tmp_path, monkeypatch):
    page = tmp_path / "confirm.html"
    page.write_text("<html><body>Google Drive can't scan this file for viruses</body></html>")
    entry = KnownWeights(name="test-page", filename="weights.pt", url=page.as_uri(), description="test")
    known_weights()
    monkeypatch.setitem(KNOWN_WEIGHTS, entry.name, entry)
    code, _, err = run_cli(capsys, "download", "test-page", "--cache-dir", tmp_path / "cache")
    assert code == 2 and "web page" in err and err.count("\n") == 1
    assert not (tmp_path / "cache" / "test-page" / "weights.pt").exists()


def test_unknown_name_lists_the_known_ones(capsys):
    code, _, err = run_cli(capsys, "path", "clip-vit-h14")
    assert code == 2 and "unknown weights 'clip-vit-h14'" in err and "clipcap-coco" in err
