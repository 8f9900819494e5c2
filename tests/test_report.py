"""`lumicap report`: contact sheet, sortable HTML page and metrics table from folders of images."""

from __future__ import annotations

import csv
import json
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pytest
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from lumicap.cli import main


def _save(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


@pytest.fixture
def folders(tmp_path):
    rng = np.random.default_rng(0)
    names = ["beach", "night/street", "odd_size"]
    for name in names:
        reference = rng.integers(60, 230, size=(48, 64, 3), dtype=np.uint8)
        noise = rng.integers(-25, 25, size=reference.shape)
        enhanced = np.clip(reference.astype(int) + noise, 0, 255).astype(np.uint8)
        _save(tmp_path / "pred" / f"{name}.png", enhanced)
        _save(tmp_path / "low" / f"{name}.png", (reference // 8).astype(np.uint8))
        if name == "odd_size":
            reference = reference[:40]
        _save(tmp_path / "gt" / f"{name}.jpg" if name == "beach" else tmp_path / "gt" / f"{name}.png", reference)
    return tmp_path


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links, self.rows = [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag in ("a", "img"):
            self.links.append(attrs.get("href") or attrs.get("src"))
        if tag == "tr" and "id" in attrs:
            self.rows.append(attrs["id"])


def test_report_has_every_image_with_independently_checked_metrics(folders, capsys):
    captions = folders / "caps.json"
    captions.write_text(json.dumps({"beach": {"input": "a dark <b>beach</b>", "enhanced": "a sunny beach"}}))
    out = folders / "report"
    code = main(["report", str(folders / "pred"), "--low", str(folders / "low"), "--gt", str(folders / "gt"),
                 "--captions", str(captions), "--out", str(out)])
    assert code == 0
    assert "report of 3 images" in capsys.readouterr().out

    page = (out / "index.html").read_text()
    parser = _Links()
    parser.feed(page)
    assert sorted(parser.rows) == ["beach", "night/street", "odd_size"]
    for link in parser.links:  # every thumbnail and full-size link resolves to a file
        assert (out / unquote(link)).is_file(), link
    assert "http://" not in page and "https://" not in page  # nothing fetched from the network
    assert "&lt;b&gt;beach&lt;/b&gt;" in page and "a sunny beach" in page
    assert "<script>" in page and "sorted-" in page

    rows = {r["name"]: r for r in csv.DictReader(open(out / "metrics.csv"))}
    for name in ("beach", "night/street"):
        pred = np.asarray(Image.open(folders / "pred" / f"{name}.png"))
        gt_file = folders / "gt" / (f"{name}.jpg" if name == "beach" else f"{name}.png")
        gt = np.asarray(Image.open(gt_file))
        expected_psnr = peak_signal_noise_ratio(gt, pred, data_range=255)
        expected_ssim = structural_similarity(gt, pred, gaussian_weights=True, sigma=1.5,
                                              use_sample_covariance=False, data_range=255, channel_axis=-1)
        assert float(rows[name]["PSNR"]) == pytest.approx(expected_psnr, abs=1e-3)
        assert float(rows[name]["SSIM"]) == pytest.approx(expected_ssim, abs=1e-5)
        assert f"{expected_psnr:.2f}" in page
    assert rows["odd_size"]["PSNR"] == "" and "size differs" in rows["odd_size"]["note"]
    assert float(rows["beach"]["mean_low"]) < float(rows["beach"]["mean_enhanced"])

    sheet = Image.open(out / "contact_sheet.png")
    assert sheet.width >= 3 * 64 and sheet.height >= 3 * 48  # three columns (dark, enhanced, reference), three rows


def test_report_without_references_and_refusing_to_overwrite(folders, capsys):
    out = folders / "r"
    assert main(["report", str(folders / "pred"), "--out", str(out)]) == 0
    page = (out / "index.html").read_text()
    assert "PSNR" not in page and page.count("<tr id=") == 3
    first = (out / "index.html").stat().st_mtime_ns
    assert main(["report", str(folders / "pred"), "--out", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (out / "index.html").stat().st_mtime_ns == first
    assert main(["report", str(folders / "pred"), "--out", str(out), "--overwrite", "--gt", str(folders / "gt")]) == 0
    assert re.search(r"PSNR \(dB\)", (out / "index.html").read_text())


def test_report_of_an_empty_folder_is_one_line_error(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["report", str(tmp_path / "empty"), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no image files" in err[0]


def test_report_compares_another_models_outputs_scene_by_scene(folders, capsys):
    rng = np.random.default_rng(1)
    expected = {}
    for name in ["beach", "night/street"]:  # odd_size's reference differs in size: no PSNR, still shown
        gt_path = next((folders / "gt").glob(f"{name}.*")) if "/" not in name else folders / "gt" / f"{name}.png"
        reference = np.asarray(Image.open(gt_path).convert("RGB"))
        old = np.clip(reference.astype(int) + rng.integers(-60, 60, size=reference.shape), 0, 255).astype(np.uint8)
        old[:6] = 255  # a clipped band: 6 of 48 rows
        _save(folders / "old" / f"{name}.png", old)
        expected[name] = (peak_signal_noise_ratio(reference, old, data_range=255), 100 * (old >= 250).any(axis=2).mean())
    out = folders / "report"
    assert main(["report", str(folders / "pred"), "--low", str(folders / "low"), "--gt", str(folders / "gt"),
                 "--compare", f"old={folders / 'old'}", "--out", str(out)]) == 0
    with open(out / "metrics.csv", newline="") as fh:
        rows = {r["name"]: r for r in csv.DictReader(fh)}
    for name, (psnr_value, clipped) in expected.items():
        assert float(rows[name]["old PSNR"]) == pytest.approx(psnr_value, abs=1e-3)
        assert float(rows[name]["old clipped_pct"]) == pytest.approx(clipped, abs=1e-3)  # a percentage
        assert float(rows[name]["old PSNR"]) < float(rows[name]["PSNR"])  # old is noisier than pred
    assert rows["odd_size"]["old PSNR"] == ""  # no old image for that scene
    with Image.open(out / "contact_sheet.png") as sheet:  # dark input | old | enhanced | reference
        assert sheet.size[0] == 8 + 4 * (256 + 8)
    page = (out / "index.html").read_text()
    assert "old PSNR (dB)" in page and "old clipped %" in page and "old NIQE gray" in page and "old LOE" in page
    parser = _Links()
    parser.feed(page)
    for link in parser.links:  # every image and link the page names exists
        if link and not link.startswith("#"):
            assert (out / unquote(link)).exists(), link


@pytest.mark.parametrize("bad, message", [("old", "expected LABEL=DIR"), ("enhanced=x", "choose another label")])
def test_report_compare_mistakes_are_one_line_errors(folders, capsys, bad, message):
    assert main(["report", str(folders / "pred"), "--compare", bad, "--out", str(folders / "r")]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_report_gives_no_reference_measures_for_every_column(tmp_path, capsys):
    """NIQE, clipping (%), colourfulness and LOE of PRED_DIR and of a --compare folder, as lumicap.metrics
    gives them (photos big enough for NIQE's 96x96 blocks)."""
    from skimage import data

    from lumicap.metrics import clipped_share, colourfulness, loe, niqe

    photos = {"astro": data.astronaut()[:120, :200], "cup": data.coffee()[:120, :200]}
    for name, photo in photos.items():
        photo = np.ascontiguousarray(photo)
        _save(tmp_path / "low" / f"{name}.png", (photo // 6).astype(np.uint8))
        _save(tmp_path / "pred" / f"{name}.png", photo)
        _save(tmp_path / "old" / f"{name}.png", np.clip(photo.astype(int) + 40, 0, 255).astype(np.uint8))
    out = tmp_path / "report"
    assert main(["report", str(tmp_path / "pred"), "--low", str(tmp_path / "low"), "--compare",
                 f"old={tmp_path / 'old'}", "--niqe-mode", "y", "--out", str(out)]) == 0
    assert "mean NIQE y" in capsys.readouterr().out
    rows = {r["name"]: r for r in csv.DictReader(open(out / "metrics.csv"))}
    for name in photos:
        low, pred, old = (np.asarray(Image.open(tmp_path / folder / f"{name}.png")) for folder in ("low", "pred", "old"))
        row = rows[name]
        assert float(row["niqe_y"]) == pytest.approx(niqe(pred, "y"), abs=1e-4)
        assert float(row["niqe_y_low"]) == pytest.approx(niqe(low, "y"), abs=1e-4)
        assert float(row["clipped_pct"]) == pytest.approx(100 * clipped_share(pred), abs=1e-3)
        assert float(row["colourfulness"]) == pytest.approx(colourfulness(pred), abs=1e-3)
        assert float(row["loe"]) == pytest.approx(loe(low, pred), abs=1e-2)
        assert float(row["old niqe_y"]) == pytest.approx(niqe(old, "y"), abs=1e-4)
        assert float(row["old clipped_pct"]) == pytest.approx(100 * clipped_share(old), abs=1e-3)
        assert float(row["old loe"]) == pytest.approx(loe(low, old), abs=1e-2)
    page = (out / "index.html").read_text()
    assert "NIQE y in" in page and "old NIQE y" in page and "old colourfulness" in page
    assert main(["report", str(tmp_path / "pred"), "--niqe-mode", "off", "--out", str(tmp_path / "r2")]) == 0
    header = (tmp_path / "r2" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert not any(column.startswith("niqe") for column in header) and "clipped_pct" in header
