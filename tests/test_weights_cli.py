"""`lumicap weights list|download|path|verify` against a temporary cache; downloads use file:// URLs or a
patched hub client, never the network."""

from __future__ import annotations

import hashlib

import pytest
import torch

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
    from lumicap.inference.loading import SHIPPED_MODELS

    assert "default" in SHIPPED_MODELS and "retinexformer-lumicap" in SHIPPED_MODELS
    assert lines[-1].startswith(f"shipped inside the package (no download): {', '.join(SHIPPED_MODELS)};")
    assert "'lumicap models'" in lines[-1]


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


def test_offline_download_says_what_where_and_where_to(capsys, tmp_path, monkeypatch):
    import huggingface_hub

    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", offline)
    cache = tmp_path / "cache"
    code, out, err = run_cli(capsys, "download", "gpt2-tokenizer", "--cache-dir", cache)
    # A summary line, one line for the file, one for the way without network.
    assert code == 2 and out == "" and err.count("\n") == 3
    assert "tokenizer.json" in err.splitlines()[1]
    assert "https://huggingface.co/openai-community/gpt2/resolve/main/tokenizer.json" in err
    assert str(cache / "gpt2-tokenizer" / "tokenizer.json") in err
    assert not cache.exists()  # no file, no empty folder, no hub cache left behind


def test_a_web_page_instead_of_the_file_is_refused(capsys, tmp_path, monkeypatch):
    page = tmp_path / "confirm.html"
    page.write_text("<html><body>Google Drive can't scan this file for viruses</body></html>")
    entry = KnownWeights(name="test-page", filename="weights.pt", url=page.as_uri(), description="test")
    known_weights()
    monkeypatch.setitem(KNOWN_WEIGHTS, entry.name, entry)
    code, _, err = run_cli(capsys, "download", "test-page", "--cache-dir", tmp_path / "cache")
    assert code == 2 and "web page" in err.splitlines()[0] and err.count("\n") == 3  # summary, file, offline way
    assert not (tmp_path / "cache").exists()  # no file, no empty folder, no temporary left behind


def test_unknown_name_lists_the_known_ones(capsys):
    code, _, err = run_cli(capsys, "path", "clip-vit-h14")
    assert code == 2 and "unknown weights 'clip-vit-h14'" in err and "clipcap-coco" in err


def test_verify_does_not_vouch_for_a_planted_file(capsys, tmp_path):
    """A pickle placed in the cache as 'clipcap-coco' (no published sha256) was reported "ok (recorded at
    download)" and got a .sha256 that blessed it; it is unverified, now and after it has been loaded."""
    from lumicap.weights import resolve_weights

    cache = tmp_path / "cache"
    planted = cache / "clipcap-coco" / "coco_weights.pt"
    planted.parent.mkdir(parents=True)
    torch.save({"clip_project.model.0.weight": torch.zeros(2, 2)}, planted)
    assert resolve_weights("clipcap-coco", root=cache) == planted  # usable: a file placed by hand works ...
    for _ in range(2):
        code, out, _ = run_cli(capsys, "--cache-dir", cache, "verify", "clipcap-coco")
        line = next(line for line in out.splitlines() if line.startswith("clipcap-coco:"))
        assert code == 1 and "unverified: not downloaded by lumicap" in line and " ok " not in line
    assert sorted(p.name for p in planted.parent.iterdir()) == ["coco_weights.pt"]  # ... but nothing blesses it

    # A record written by an older lumicap on first load proves no download either.
    alex = cache / "lpips-alex-v0.1" / "alex.pth"
    alex.parent.mkdir(parents=True)
    alex.write_bytes(b"planted")
    alex.with_name("alex.pth.sha256").write_text(hashlib.sha256(b"planted").hexdigest() + "  alex.pth\n")
    code, out, _ = run_cli(capsys, "--cache-dir", cache, "verify", "lpips-alex-v0.1")
    assert code == 1 and out.startswith("lpips-alex-v0.1: unverified: not downloaded by lumicap")


def test_verify_vouches_for_what_lumicap_downloaded_without_a_published_hash(capsys, tmp_path):
    source = tmp_path / "w.bin"
    source.write_bytes(b"weights " * 100)
    known_weights()
    entry = KnownWeights("test-unpinned", "w.bin", "test", url=source.as_uri())
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(KNOWN_WEIGHTS, entry.name, entry)
        cache = tmp_path / "cache"
        assert run_cli(capsys, "--cache-dir", cache, "download", "test-unpinned")[0] == 0
        code, out, _ = run_cli(capsys, "--cache-dir", cache, "verify", "test-unpinned")
        digest = hashlib.sha256(source.read_bytes()).hexdigest()
        assert code == 0 and f"ok  sha256 {digest} (recorded by lumicap, downloaded from {source.as_uri()})" in out

        (cache / "test-unpinned" / "w.bin").write_bytes(b"replaced")
        code, _, err = run_cli(capsys, "--cache-dir", cache, "verify", "test-unpinned")
        assert code == 2 and "does not match" in err and err.count("\n") == 1
