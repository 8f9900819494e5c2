"""`lumicap models` names everything `--model` takes, at once, and IAT's MACs are one number everywhere.

The listing is checked against the sources it must cover (the package's shipped models, the catalogue's
official weights, the registry), the shipped names it lists are loaded for real, and the cache column is
read from a cache folder the test fills. MACs: counted on the plain forward, so the grad mode (which picks
IAT's chunked in-place tail) does not change the count, and the README, the model card and the recipe's
comment quote the count the code makes.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from lumicap.cli import main
from lumicap.inference.loading import ASSETS_DIR, SHIPPED_MODELS, load_inference_model
from lumicap.models import list_models

REPO = Path(__file__).resolve().parents[1]


def _listing(capsys, *args: str) -> str:
    assert main(["models", *args]) == 0
    return capsys.readouterr().out


def test_listing_names_shipped_models_official_weights_and_networks(tmp_path, capsys, monkeypatch):
    from lumicap.weights import cached_path, get_known
    from lumicap.weights.catalogue import OFFICIAL_MODELS

    import lumicap.models.flops as flops

    def no_counting(*args, **kwargs):
        raise AssertionError("MACs are counted only with --flops")

    monkeypatch.setattr(flops, "model_macs", no_counting)
    # One official name "downloaded": its file in a cache folder of the test's own.
    entry = get_known(OFFICIAL_MODELS["iat-lol-v1-official"].files[0])
    cached = cached_path(entry, tmp_path)
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"placeholder")
    data = json.loads(_listing(capsys, "--json", "--cache-dir", str(tmp_path)))
    assert [row["name"] for row in data["shipped"]] == list(SHIPPED_MODELS)
    networks = {name: json.loads((ASSETS_DIR / filename).with_suffix(".json").read_text())["model"]
                for name, filename in SHIPPED_MODELS.items()}
    assert {row["name"]: row["network"] for row in data["shipped"]} == networks
    assert networks["default"] == "iat" and networks["retinexformer-lumicap"] == "retinexformer"
    official = {row["name"]: row for row in data["official"]}
    assert sorted(official) == sorted(OFFICIAL_MODELS)
    assert official["iat-lol-v1-official"]["cached"] is True
    assert official["iat-lol-v2-real-official"]["cached"] is False
    assert official["iat-lol-v2-real-official"]["downloads_by_itself"] is True
    assert official["retinexformer-lol-v1-official"]["downloads_by_itself"] is False  # Google Drive
    assert [row["name"] for row in data["networks"]] == [info.name for info in list_models()]

    text = _listing(capsys, "--cache-dir", str(tmp_path))
    lines = text.splitlines()
    for name in list(SHIPPED_MODELS) + sorted(OFFICIAL_MODELS) + [info.name for info in list_models()]:
        assert any(line.split()[:1] == [name] for line in lines), f"{name} missing from the listing"
    assert "need --weights FILE" in text
    row = next(line for line in lines if line.split()[:1] == ["iat-lol-v1-official"])
    assert row.rstrip().endswith("cached")
    row = next(line for line in lines if line.split()[:1] == ["iat-lol-v2-real-official"])
    assert "not cached" in row


def test_every_shipped_name_listed_loads():
    for name, filename in SHIPPED_MODELS.items():
        model = load_inference_model(name, "cpu")
        assert model.name == json.loads((ASSETS_DIR / filename).with_suffix(".json").read_text())["model"]


def test_a_network_name_without_weights_points_to_trained_names(tmp_path, capsys):
    photo = tmp_path / "a.png"
    from PIL import Image

    Image.new("RGB", (8, 8)).save(photo)
    assert main(["enhance", str(photo), "--out", str(tmp_path / "o"), "--model", "retinexformer"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "--weights FILE" in err[0] and "retinexformer-lumicap" in err[0]
    assert "retinexformer-lol-v1-official" in err[0] and "lumicap models" in err[0]
    assert main(["enhance", str(photo), "--out", str(tmp_path / "o"), "--model", "retinexfromer"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown model 'retinexfromer'" in err[0] and "lumicap models" in err[0]


def test_iat_macs_do_not_depend_on_the_grad_mode():
    from lumicap.models import build_model
    from lumicap.models.flops import count_macs

    torch.manual_seed(0)
    model = build_model("iat").eval()
    with torch.no_grad():  # the mode where IAT's chunked in-place tail would run
        without_grad = count_macs(model, (1, 3, 64, 96))
    with torch.enable_grad():
        with_grad = count_macs(model, (1, 3, 64, 96))
    assert without_grad == with_grad
    # The 16x16 point-wise products of the six blocks' tails alone are 6 * (16*16 + 2*16*64) per pixel;
    # a count that missed the in-place tail would fall below them plus the stem.
    assert without_grad > 64 * 96 * (6 * (16 * 16 + 2 * 16 * 64) + 16 * 3 * 9)


def test_iat_macs_are_the_same_in_the_readme_model_card_and_recipes():
    """The README's table counts the network (`iat`, official architecture); the model card and the recipes
    count the model they describe (the default's sidecar overrides, e.g. a reflect border)."""
    from lumicap.models.flops import model_macs

    at_256 = model_macs("iat", 256, 256) / 1e9
    at_600x400 = model_macs("iat", 400, 600) / 1e9
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    row = next(line for line in readme.splitlines() if line.startswith("| `iat` |"))
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert (cells[4], cells[5]) == (f"{at_256:.2f}", f"{at_600x400:.2f}")
    card = re.search(r"IAT \(Cui et al\., BMVC 2022: 91k parameters, ([\d.]+) GMACs at 600×400", readme)
    if card is not None:  # the model card may leave the figure out; when it gives one, it is the default's
        overrides = json.loads((ASSETS_DIR / "default_model.json").read_text()).get("overrides") or {}
        assert card.group(1) == f"{model_macs('iat', 400, 600, **overrides) / 1e9:.2f}"
    for recipe in sorted((REPO / "configs").rglob("*.yaml")):
        text = recipe.read_text(encoding="utf-8")
        quoted = re.search(r"([\d.]+) GMACs at 600x400", text)
        if quoted is not None:
            from lumicap.config import load_config

            overrides = load_config(recipe).model.overrides
            assert quoted.group(1) == f"{model_macs('iat', 400, 600, **overrides) / 1e9:.2f}", recipe


@pytest.mark.parametrize("names", [["iat"]])
def test_flops_column_only_with_the_flag(capsys, names):
    text = _listing(capsys, *names, "--flops")
    assert "GMACS 600x400" in text and "5.26" in text
    assert "GMACS" not in _listing(capsys, *names)
