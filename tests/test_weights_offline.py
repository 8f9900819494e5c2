"""Weights on machines without network: the offline switch, one error naming every missing file, no
leftovers from failed downloads, bundle -> import, and what `weights verify` may vouch for.

Sources are local: ``file://`` URLs and a fake Hugging Face client serving a local folder. The socket
layer is patched in every test, so an attempt to reach the network is recorded (and refused) instead of
made; offline tests assert that there were none.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import socket
import tarfile
from pathlib import Path

import pytest
import torch

from lumicap.cli import main
from lumicap.errors import WeightsError
from lumicap.teacher import PRESETS, ClipCapTeacher, save_tiny_teacher
from lumicap.weights import KNOWN_SETS, KNOWN_WEIGHTS, KnownWeights, MissingWeightsError, WeightsSet, known_weights


def run_cli(capsys, *argv):
    code = main(["weights", *map(str, argv)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def tree(folder: Path) -> dict[str, str]:
    """Every file and folder below ``folder`` (sha256 of files), to show what a command left behind."""
    if not folder.exists():
        return {}
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
        for p in sorted(folder.rglob("*"))
    }


@pytest.fixture
def connections(monkeypatch):
    """Record (and refuse) every attempt to resolve a host name or open a connection."""
    attempts: list[str] = []

    def refuse(what):
        def call(*args, **kwargs):
            attempts.append(f"{what}{args[1:2] if what == 'connect' else args[:1]}")
            raise OSError("test: network is unreachable")

        return call

    monkeypatch.setattr(socket, "getaddrinfo", refuse("getaddrinfo"))
    monkeypatch.setattr(socket, "create_connection", refuse("create_connection"))
    monkeypatch.setattr(socket.socket, "connect", refuse("connect"))
    monkeypatch.setattr(socket.socket, "connect_ex", refuse("connect_ex"))
    for variable in ("LUMICAP_OFFLINE", "HF_HUB_OFFLINE"):
        monkeypatch.delenv(variable, raising=False)
    return attempts


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """A fake Hugging Face client serving ``<hub>/<repo_id>/<filename>`` in the hub's cache layout (the
    returned path is a link into a blob store, as the real client's is)."""
    import huggingface_hub

    root = tmp_path / "hub"
    served: list[str] = []

    def hf_hub_download(repo_id, filename, cache_dir=None, **kwargs):
        source = root / repo_id / filename
        if not source.is_file():
            raise OSError(f"404: {repo_id}/{filename}")
        served.append(f"{repo_id}/{filename}")
        blob = Path(cache_dir) / "blobs" / hashlib.sha256(source.read_bytes()).hexdigest()
        blob.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, blob)
        link = Path(cache_dir) / "snapshots" / "main" / filename
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(blob)
        return str(link)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", hf_hub_download)
    root.mkdir()
    return root, served


@pytest.fixture
def teacher_source(tmp_path, monkeypatch, hub):
    """A teacher preset 'test-teacher' over three catalogue files, as a future catalogue entry would be:
    a URL file with a published sha256, a Hugging Face file and a URL file without one (recorded at
    download). Returns the source folder (a local teacher holding the same files)."""
    source = save_tiny_teacher(tmp_path / "source", "mlp", seed=3, clip_format="openai")
    hub_root, _ = hub
    (hub_root / "test-org" / "clipcap").mkdir(parents=True)
    shutil.copyfile(source / "clipcap.pt", hub_root / "test-org" / "clipcap" / "clipcap.pt")
    clip = source / "clip_visual.pt"
    entries = [
        KnownWeights("test-clip", "clip_visual.pt", "tiny CLIP", url=clip.as_uri(),
                     sha256=hashlib.sha256(clip.read_bytes()).hexdigest()),
        KnownWeights("test-clipcap", "clipcap.pt", "tiny ClipCap", repo_id="test-org/clipcap"),
        KnownWeights("test-tokenizer", "tokenizer.json", "tiny tokenizer", url=(source / "tokenizer" / "tokenizer.json").as_uri()),
    ]
    known_weights()  # populate the catalogue before adding to it
    for entry in entries:
        monkeypatch.setitem(KNOWN_WEIGHTS, entry.name, entry)
    manifest = json.loads((source / "teacher.json").read_text())
    manifest.update(clip={**manifest["clip"], "weights": "test-clip"}, clipcap="test-clipcap", tokenizer="test-tokenizer")
    monkeypatch.setitem(PRESETS, "test-teacher", manifest)
    monkeypatch.setitem(KNOWN_SETS, "test-teacher", WeightsSet("test-teacher", tuple(e.name for e in entries), "test"))
    return source


# ------------------------------------------------------------------------------------------ offline switch
@pytest.mark.parametrize("variable", ["LUMICAP_OFFLINE", "HF_HUB_OFFLINE"])
def test_offline_teacher_names_every_missing_file_without_touching_the_network(tmp_path, monkeypatch, connections, variable):
    from lumicap.teacher import MultimodalFeatureLoss

    monkeypatch.setenv(variable, "1")
    cache = tmp_path / "cache"
    with pytest.raises(MissingWeightsError) as info:
        MultimodalFeatureLoss.from_pretrained("clipcap-coco", cache_dir=cache)
    message = str(info.value)
    assert connections == []  # not even a name lookup, for the OpenAI URL as for the hub
    assert "\n" not in message and f"offline: {variable}=1" in message
    assert "teacher 'clipcap-coco' needs 3 weight files" in message
    for name in ("clip-vit-b32-openai", "clipcap-coco", "gpt2-tokenizer"):
        entry = known_weights()[name]
        assert f"'{name}' ({entry.filename}" in message
        assert f"from {entry.source} -> {cache / name / entry.filename}" in message
    assert "openaipublic.azureedge.net/clip/models/" in message and "huggingface.co/akhaliq/" in message
    assert f"'lumicap weights download clipcap-coco --cache-dir {cache}'" in message
    assert "'lumicap weights bundle clipcap-coco --out lumicap-weights.tar'" in message
    assert not cache.exists()  # nothing created


def test_offline_cli_download_is_a_summary_line_then_one_line_per_missing_file(capsys, tmp_path, monkeypatch, connections):
    monkeypatch.setenv("LUMICAP_OFFLINE", "yes")
    cache = tmp_path / "cache"
    code, out, err = run_cli(capsys, "--cache-dir", cache, "download", "clipcap-coco-transformer", "lpips")
    assert code == 2 and out == "" and connections == []
    lines = err.splitlines()
    names = ("clip-rn50x4-openai", "clipcap-coco-transformer", "gpt2-tokenizer", "alexnet-torchvision", "lpips-alex-v0.1")
    assert len(lines) == 1 + len(names) + 1 and all(line.startswith("lumicap: error: ") for line in lines)
    assert "5 weight files" in lines[0] and "'lumicap weights download clipcap-coco-transformer lpips" in lines[0]
    assert len(lines[0]) < 250  # the summary, not the whole story
    for line, name in zip(sorted(lines[1:-1]), sorted(names)):
        assert f"missing '{name}'" in line and str(cache / name / known_weights()[name].filename) in line
    assert "drive.usercontent.google.com" in err and "download.pytorch.org" in err
    assert "lumicap weights bundle" in lines[-1] and "lumicap weights import" in lines[-1]
    assert not cache.exists()


def test_downloads_disabled_lists_every_lpips_file(tmp_path, monkeypatch, connections):
    from lumicap.metrics.lpips import load_lpips

    monkeypatch.setenv("LUMICAP_CACHE", str(tmp_path / "cache"))
    with pytest.raises(MissingWeightsError) as info:
        load_lpips(download=False)
    message = str(info.value)
    assert "LPIPS needs 2 weight files" in message and "downloads disabled" in message
    assert "alexnet-owt-7be5be79.pth" in message and "alex.pth" in message
    assert "'lumicap weights download lpips'" in message and connections == []


def test_the_socket_patch_sees_a_real_download_attempt(tmp_path, connections):
    """The control for the tests above: without the offline switch the same call does try the network
    (here refused by the patch); the first failure stops the others, and the error still lists them all."""
    from lumicap.teacher import MultimodalFeatureLoss

    cache = tmp_path / "cache"
    with pytest.raises(MissingWeightsError) as info:
        MultimodalFeatureLoss.from_pretrained("clipcap-coco", cache_dir=cache)
    assert connections and all("openaipublic" in attempt for attempt in connections)
    message = str(info.value)
    assert "downloading 'clip-vit-b32-openai' failed" in message and "needs 3 weight files" in message
    assert tree(cache) == {}  # the failed download left no file, no folder, no temporary


# ------------------------------------------------------------------------------------------ failed downloads
def test_failed_downloads_leave_nothing_behind(tmp_path, monkeypatch, connections, hub):
    known_weights()
    cache = tmp_path / "cache"
    (cache / "other").mkdir(parents=True)  # an existing cache: only its contents may not change
    wrong = tmp_path / "wrong.bin"
    wrong.write_bytes(b"not the published file")
    entries = [
        KnownWeights("test-gone", "gone.bin", "404", url=(tmp_path / "nowhere.bin").as_uri()),
        KnownWeights("test-wrong", "wrong.bin", "sha mismatch", url=wrong.as_uri(), sha256="0" * 64),
        KnownWeights("test-hub-gone", "x.safetensors", "hub 404", repo_id="test-org/none"),
    ]
    for entry in entries:
        monkeypatch.setitem(KNOWN_WEIGHTS, entry.name, entry)
        with pytest.raises(WeightsError) as info:
            main_download(entry.name, cache)
        assert "\n" not in str(info.value)
    assert tree(cache) == {"other": "dir"}


def main_download(name: str, cache: Path):
    from lumicap.weights import resolve_weights

    return resolve_weights(name, root=cache)


# ------------------------------------------------------------------------------------------ bundle -> import
@pytest.mark.parametrize("kind", ["tar", "folder"])
def test_bundle_then_import_on_a_machine_without_network(capsys, tmp_path, monkeypatch, connections, hub, teacher_source, kind):
    online, offline = tmp_path / "online-cache", tmp_path / "offline-cache"
    bundle = tmp_path / "carry" / ("weights.tar" if kind == "tar" else "weights")
    code, out, err = run_cli(capsys, "--cache-dir", online, "bundle", "test-teacher", "--out", bundle)
    assert code == 0, err
    assert [line.split(":")[0] for line in out.splitlines()[:3]] == ["test-clip", "test-clipcap", "test-tokenizer"]
    assert hub[1] == ["test-org/clipcap/clipcap.pt"] and connections == []  # downloaded from the local sources

    # The machine without network: nothing may even look for it.
    monkeypatch.setenv("LUMICAP_OFFLINE", "1")
    code, out, err = run_cli(capsys, "import", bundle, "--cache-dir", offline)
    assert code == 0, err
    assert sorted(line.split(":")[0] for line in out.splitlines()) == ["test-clip", "test-clipcap", "test-tokenizer"]
    assert all(" installed " in line for line in out.splitlines())
    for cached, original in [
        (offline / "test-clip" / "clip_visual.pt", teacher_source / "clip_visual.pt"),
        (offline / "test-clipcap" / "clipcap.pt", teacher_source / "clipcap.pt"),
        (offline / "test-tokenizer" / "tokenizer.json", teacher_source / "tokenizer" / "tokenizer.json"),
    ]:
        assert cached.read_bytes() == original.read_bytes()
    assert not [p for p in offline.iterdir() if p.name.startswith(".")]  # no staging left

    code, out, _ = run_cli(capsys, "verify", "test-teacher", "--cache-dir", offline)
    assert code == 0 and out.count(": ok ") == 3 and "imported from bundle" in out

    teacher = ClipCapTeacher.from_pretrained("test-teacher", cache_dir=offline)
    reference = ClipCapTeacher.from_pretrained(teacher_source)  # the same files, read from the source folder
    images = torch.rand(2, 3, 37, 45, generator=torch.Generator().manual_seed(0))
    assert torch.equal(teacher.clip_embedding(images), reference.clip_embedding(images))
    assert teacher.caption(images, max_tokens=5) == reference.caption(images, max_tokens=5)

    before = tree(offline)  # importing again changes nothing
    code, out, _ = run_cli(capsys, "import", bundle, "--cache-dir", offline)
    assert code == 0 and out.count("already cached") == 3 and tree(offline) == before
    assert connections == []


@pytest.fixture
def bundle_folder(capsys, tmp_path, connections, teacher_source):
    folder = tmp_path / "bundle"
    code, _, err = run_cli(capsys, "--cache-dir", tmp_path / "online", "bundle", "test-teacher", "--out", folder)
    assert code == 0, err
    return folder


def refused(capsys, bundle, cache, *expected):
    code, out, err = run_cli(capsys, "import", bundle, "--cache-dir", cache)
    assert code == 2 and out == "" and err.count("\n") == 1 and "refused, nothing installed" in err, err
    for text in expected:
        assert text in err, (text, err)
    return err


def test_a_tampered_file_refuses_the_whole_bundle(capsys, tmp_path, bundle_folder):
    tokenizer = bundle_folder / "test-tokenizer" / "tokenizer.json"
    tokenizer.write_text(tokenizer.read_text().replace('"merges"', '"MERGES"', 1))  # same size, other bytes
    cache = tmp_path / "cache"
    refused(capsys, bundle_folder, cache, "'test-tokenizer/tokenizer.json'", "does not match the manifest")
    assert not cache.exists()  # the two good files were not installed either, and no folder was left


def test_a_tampered_tar_is_refused(capsys, tmp_path, bundle_folder):
    tampered = tmp_path / "tampered.tar"
    with tarfile.open(tampered, "w") as tar:
        for path in sorted(bundle_folder.rglob("*")):
            if path.is_file():
                data = path.read_bytes()
                if path.name == "clipcap.pt":
                    data = data[:-1] + bytes([data[-1] ^ 1])  # one bit
                info = tarfile.TarInfo(path.relative_to(bundle_folder).as_posix())
                info.size = len(data)
                import io

                tar.addfile(info, io.BytesIO(data))
    refused(capsys, tampered, tmp_path / "cache", "'test-clipcap/clipcap.pt'", "does not match the manifest")


def test_a_rewritten_manifest_cannot_replace_a_published_file(capsys, tmp_path, bundle_folder):
    """File and manifest changed together: a file with a published sha256 is still refused."""
    clip = bundle_folder / "test-clip" / "clip_visual.pt"
    clip.write_bytes(clip.read_bytes() + b"\0")
    manifest = json.loads((bundle_folder / "lumicap-weights.json").read_text())
    for item in manifest["files"]:
        if item["name"] == "test-clip":
            item["sha256"] = hashlib.sha256(clip.read_bytes()).hexdigest()
    (bundle_folder / "lumicap-weights.json").write_text(json.dumps(manifest))
    refused(capsys, bundle_folder, tmp_path / "cache", "'test-clip'", "is not the published")


def test_unknown_files_and_names_are_refused(capsys, tmp_path, bundle_folder):
    (bundle_folder / "test-clip" / "extra.pt").write_bytes(b"payload")
    manifest = json.loads((bundle_folder / "lumicap-weights.json").read_text())
    manifest["files"].append({"name": "not-in-catalogue", "filename": "x.pt", "path": "not-in-catalogue/x.pt",
                              "sha256": "0" * 64, "size": 7})
    (bundle_folder / "lumicap-weights.json").write_text(json.dumps(manifest))
    refused(capsys, bundle_folder, tmp_path / "cache", "unknown file 'test-clip/extra.pt'",
            "'not-in-catalogue' is not in this lumicap's weights catalogue")


def _tar_of(bundle_folder: Path, out: Path, mode: str = "w", replace: dict[str, bytes] | None = None) -> Path:
    """The bundle folder as a tar (``mode`` "w:gz" compresses), with some members' bytes replaced."""
    import io

    with tarfile.open(out, mode) as tar:
        for path in sorted(bundle_folder.rglob("*")):
            if path.is_file():
                name = path.relative_to(bundle_folder).as_posix()
                data = (replace or {}).get(name, path.read_bytes())
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return out


@pytest.mark.parametrize("mode", ["w", "w:gz"])
def test_a_member_larger_than_its_manifest_entry_is_refused_before_it_is_written(capsys, tmp_path, bundle_folder,
                                                                                 monkeypatch, mode):
    """A 14 MB .tar.gz (or a 10 KB sparse tar) can hold a member of gigabytes: before, every byte of it went
    into the cache before the sha256 refused it. Now its size in the tar header is compared with the manifest
    first and nothing is extracted."""
    from lumicap import weights_bundle

    big = 8 << 20  # compresses to a few KB in the .tar.gz
    bundle = _tar_of(bundle_folder, tmp_path / f"big.tar{'.gz' if 'gz' in mode else ''}", mode,
                     {"test-clipcap/clipcap.pt": b"\0" * big})
    written = []
    real_open = open

    def watching_open(file, mode="r", *args, **kwargs):  # every file import_bundle opens for writing
        handle = real_open(file, mode, *args, **kwargs)
        if "w" in mode:
            written.append(handle)
        return handle

    monkeypatch.setattr(weights_bundle, "open", watching_open, raising=False)
    declared = json.loads((bundle_folder / "lumicap-weights.json").read_text())["files"][1]["size"]
    err = refused(capsys, bundle, tmp_path / "cache", "'test-clipcap/clipcap.pt' is 8,388,608 bytes in the bundle",
                  f"the manifest says {declared:,}")
    assert "sha256" not in err and written == []
    assert not (tmp_path / "cache").exists()


def test_a_copy_stops_at_the_declared_size(tmp_path):
    """Whatever a reader reports beforehand, no copy writes more than the manifest's size."""
    import io

    from lumicap.weights_bundle import _copy_at_most

    dest = tmp_path / "out"
    problem = _copy_at_most(io.BytesIO(b"x" * 5000), dest, 1000, chunk=64)
    assert problem is not None and "more than the 1,000 bytes" in problem
    assert dest.stat().st_size <= 1000
    assert _copy_at_most(io.BytesIO(b"y" * 1000), dest, 1000, chunk=64) is None and dest.read_bytes() == b"y" * 1000


def test_import_needs_the_free_space_first(capsys, tmp_path, bundle_folder, monkeypatch):
    from lumicap import weights_bundle

    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(weights_bundle.shutil, "disk_usage", lambda path: usage._replace(free=1000))
    cache = tmp_path / "cache"
    refused(capsys, bundle_folder, cache, "need", "GB free")
    assert not cache.exists()


def test_a_manifest_listing_no_files_is_an_error(capsys, tmp_path, bundle_folder):
    manifest = json.loads((bundle_folder / "lumicap-weights.json").read_text())
    for item in manifest["files"]:
        shutil.rmtree(bundle_folder / item["name"])
    manifest["files"] = []
    (bundle_folder / "lumicap-weights.json").write_text(json.dumps(manifest))
    code, out, err = run_cli(capsys, "import", bundle_folder, "--cache-dir", tmp_path / "cache")
    assert code == 2 and err.count("\n") == 1 and "lists no files" in err  # before: exit 0, nothing said


def test_cache_dir_that_is_a_file_is_one_line(capsys, tmp_path, bundle_folder):
    not_a_folder = tmp_path / "cache-file"
    not_a_folder.write_text("x")
    for action in (["import", bundle_folder], ["list"], ["verify", "test-teacher"]):
        code, out, err = run_cli(capsys, "--cache-dir", not_a_folder, *action)
        assert code == 2 and err.count("\n") == 1 and "not a folder" in err, (action, err)
    assert not_a_folder.read_text() == "x"


def test_links_in_a_tar_are_never_followed(capsys, tmp_path, bundle_folder):
    linked = tmp_path / "linked.tar"
    with tarfile.open(linked, "w") as tar:
        for path in sorted(bundle_folder.rglob("*")):
            if path.is_file() and path.name != "tokenizer.json":
                tar.add(path, arcname=path.relative_to(bundle_folder).as_posix())
        info = tarfile.TarInfo("test-tokenizer/tokenizer.json")
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(info)
    refused(capsys, linked, tmp_path / "cache", "'test-tokenizer/tokenizer.json': missing from the bundle, or not one plain file")


def test_import_never_overwrites_a_different_cached_file(capsys, tmp_path, bundle_folder):
    cache = tmp_path / "cache"
    mine = cache / "test-clipcap" / "clipcap.pt"
    mine.parent.mkdir(parents=True)
    mine.write_bytes(b"the user's own file")
    before = tree(cache)
    refused(capsys, bundle_folder, cache, "already holds a different clipcap.pt", "never replaced")
    assert tree(cache) == before


def test_import_vouches_for_an_identical_file_placed_by_hand(capsys, tmp_path, bundle_folder):
    cache = tmp_path / "cache"
    by_hand = cache / "test-tokenizer" / "tokenizer.json"
    by_hand.parent.mkdir(parents=True)
    shutil.copyfile(bundle_folder / "test-tokenizer" / "tokenizer.json", by_hand)
    assert run_cli(capsys, "verify", "test-tokenizer", "--cache-dir", cache)[0] == 1  # unverified so far
    code, out, _ = run_cli(capsys, "import", bundle_folder, "--cache-dir", cache)
    assert code == 0 and "test-tokenizer: already cached, now verified" in out and out.count(" installed ") == 2
    code, out, _ = run_cli(capsys, "verify", "test-teacher", "--cache-dir", cache)
    assert code == 0 and out.count(": ok ") == 3


def test_bundle_refuses_existing_outputs_and_unverified_cache_files(capsys, tmp_path, connections, teacher_source):
    online = tmp_path / "online"
    taken = tmp_path / "taken.tar"
    taken.write_bytes(b"someone's file")
    code, _, err = run_cli(capsys, "--cache-dir", online, "bundle", "test-teacher", "--out", taken)
    assert code == 2 and "already exists" in err and taken.read_bytes() == b"someone's file"

    planted = online / "test-tokenizer" / "tokenizer.json"  # put there by hand: nothing vouches for it
    planted.parent.mkdir(parents=True)
    planted.write_text("{}")
    code, _, err = run_cli(capsys, "--cache-dir", online, "bundle", "test-teacher", "--out", tmp_path / "b.tar")
    assert code == 2 and err.count("\n") == 1 and "'test-tokenizer'" in err and "not downloaded by lumicap" in err
    assert not (tmp_path / "b.tar").exists()


def test_a_future_catalogue_entry_needs_nothing_else(capsys, tmp_path, monkeypatch, connections):
    """An entry as a pretrained-baseline checkpoint would be added: list, download, bundle, import, verify."""
    source = tmp_path / "LOL_v1.pth"
    torch.save({"conv.weight": torch.ones(1)}, source)
    known_weights()
    entry = dataclasses.replace(
        KnownWeights("test-baseline-lol", "LOL_v1.pth", "a baseline checkpoint", url=source.as_uri()), size=1234
    )
    monkeypatch.setitem(KNOWN_WEIGHTS, entry.name, entry)
    code, out, _ = run_cli(capsys, "--cache-dir", tmp_path / "a", "list")
    assert code == 0 and any(line.split()[:3] == ["test-baseline-lol", "1.2", "KB"] for line in out.splitlines())
    assert run_cli(capsys, "--cache-dir", tmp_path / "a", "bundle", "test-baseline-lol", "--out", tmp_path / "b.tar")[0] == 0
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert run_cli(capsys, "--cache-dir", tmp_path / "c", "import", tmp_path / "b.tar")[0] == 0
    code, out, _ = run_cli(capsys, "--cache-dir", tmp_path / "c", "verify", "test-baseline-lol")
    assert code == 0 and "ok" in out and (tmp_path / "c" / "test-baseline-lol" / "LOL_v1.pth").read_bytes() == source.read_bytes()
    assert connections == [] and os.environ["HF_HUB_OFFLINE"] == "1"
