"""Visual report of enhanced images: a contact sheet (PNG) and a sortable HTML page.

Per image: dark input | enhanced | reference, with PSNR (float, [0,1]) and MATLAB-style SSIM when a
reference is given, brightness before and after, the percentage of clipped pixels (a channel >= 250),
NIQE and colourfulness, LOE against the dark input when one is given, and captions when a captions
file is given. Every ``--compare`` folder gets the same measures. The page is one self-contained HTML file
(plain JavaScript, nothing fetched from the network); clicking a column header sorts by it, metric columns
worst first, so the worst cases are one click away. Thumbnails live in ``thumbs/`` beside it and link to the
full-size files.

Images are matched across folders by their path relative to the folder without the suffix
(``a/b.jpg`` in PRED_DIR matches ``a/b.png`` in ``--gt``).
"""

from __future__ import annotations

import csv
import html
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from lumicap.errors import LumicapError, shown
from lumicap.files import atomic_write, replacing
from lumicap.names import NIQE_REPORT_CHOICES

REPORT_FILES = ("index.html", "contact_sheet.png", "metrics.csv")
# Left in every report folder, so a later report over a parent folder never reports on this one's sheets and
# thumbnails (folders that hold REPORT_FILES and thumbs/ are recognised too: reports written before the marker).
REPORT_MARKER = ".lumicap-report"
THUMB_SIZE = 256  # longest side of a thumbnail, in pixels
SHEET_ROWS = 40  # images per contact-sheet page; more go to contact_sheet_2.png, ...
# A channel whose 8-bit level is at least lumicap.metrics.noref.CLIP_THRESHOLD (250) counts as clipped
# (``clipped_share``); on float images in [0, 1], the values that round to such a level.
CLIP_LEVEL = (250 - 0.5) / 255.0
NIQE_CHOICES = NIQE_REPORT_CHOICES


@dataclass
class ReportRow:
    key: str  # relative path without suffix
    enhanced: Path
    low: Path | None = None
    reference: Path | None = None
    psnr: float | None = None
    ssim: float | None = None
    mean_low: float | None = None
    mean_enhanced: float | None = None
    clipped_pct: float | None = None  # percentage of enhanced pixels with a channel >= 250
    clipped_pct_low: float | None = None
    niqe: float | None = None  # NaN: under 96x96 or no texture; None: not measured (--niqe-mode off)
    niqe_low: float | None = None
    colourfulness: float | None = None
    loe: float | None = None  # against the dark input
    note: str = ""
    captions: dict[str, str] = field(default_factory=dict)
    thumbs: dict[str, str] = field(default_factory=dict)  # role -> thumbnail path relative to the report
    # --compare: label -> that folder's image of the same key, measured as the enhanced one; shown beside it
    # on the contact sheet, in the table and in metrics.csv
    compared: dict[str, "Compared"] = field(default_factory=dict)


@dataclass
class Compared:
    path: Path
    psnr: float | None = None
    ssim: float | None = None
    clipped_pct: float | None = None
    niqe: float | None = None
    colourfulness: float | None = None
    loe: float | None = None


@dataclass
class Report:
    out_dir: Path
    rows: list[ReportRow]
    html: Path
    sheets: list[Path]
    csv: Path
    failed: list[str] = field(default_factory=list)  # one line per image that could not be read (left out)
    niqe_mode: str = "gray"
    notes: list[str] = field(default_factory=list)  # one line each: inputs a --low/--gt/--compare folder lacks

    def summary_line(self) -> str:
        text = f"report of {len(self.rows)} images: {self.html}"
        scored = [r for r in self.rows if r.psnr is not None]
        if scored:
            text += (
                f" (mean PSNR {sum(r.psnr for r in scored) / len(scored):.2f} dB, "
                f"mean SSIM {sum(r.ssim for r in scored) / len(scored):.4f} over {len(scored)} with references)"
            )
        niqe = _mean(r.niqe for r in self.rows)
        if niqe is not None:
            text += f"; mean NIQE {self.niqe_mode} {niqe:.3f}"
        return text


def _mean(values) -> float | None:
    """Mean of the values that were measured (None: not measured, NaN: undefined); None if there are none."""
    kept = [v for v in values if v is not None and not math.isnan(v)]
    return sum(kept) / len(kept) if kept else None


# ------------------------------------------------------------------------------------------- matching


def is_report_folder(folder: Path) -> bool:
    """A folder ``lumicap report`` wrote: its marker, or (older reports) its three files and ``thumbs/``."""
    if (folder / REPORT_MARKER).is_file():
        return True
    return all((folder / name).is_file() for name in REPORT_FILES) and (folder / "thumbs").is_dir()


def index_images(folder: Path, exclude: Path | None = None) -> dict[str, Path]:
    """Image files under ``folder`` (recursively) by relative path without suffix; nothing under ``exclude``
    (the report's own folder) nor under any other folder a lumicap report wrote (its sheets and thumbnails
    are not photos: a second report over the same folder counted them as 9 more)."""
    from lumicap.data.io import is_image_file

    if not folder.is_dir():
        raise LumicapError(f"{shown(folder)}: no such folder")
    excluded = exclude.resolve() if exclude is not None else None
    found: dict[str, Path] = {}
    for here, subfolders, files in os.walk(folder):
        base = Path(here)
        # Prune hidden folders, the excluded folder and report folders before descending into them.
        subfolders[:] = sorted(
            name for name in subfolders
            if not name.startswith(".") and not is_report_folder(base / name)
            and (excluded is None or (base / name).resolve() != excluded)
        )
        for name in sorted(files):
            path = base / name
            if name.startswith(".") or not (path.is_file() and is_image_file(path)):
                continue
            if excluded is not None and path.resolve().is_relative_to(excluded):
                continue
            found.setdefault(path.relative_to(folder).with_suffix("").as_posix(), path)
    return dict(sorted(found.items()))


def read_captions(path: Path) -> dict[str, dict[str, str]]:
    """Captions file: JSON mapping an image key (relative path with or without suffix) to a caption
    string or to ``{label: caption}`` (``lumicap enhance --caption`` writes ``{"input": .., "enhanced": ..}``)."""
    from lumicap.jsonfile import read_json

    raw = read_json(path, what="captions JSON file")
    if not isinstance(raw, dict):
        raise LumicapError(f"{path}: expected a JSON object mapping image names to captions")
    captions: dict[str, dict[str, str]] = {}
    for key, value in raw.items():
        if isinstance(value, str):
            value = {"caption": value}
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise LumicapError(f"{path}: captions for '{key}' must be a string or an object of strings")
        captions[Path(key).with_suffix("").as_posix() if Path(key).suffix else key] = dict(value)
    return captions


# -------------------------------------------------------------------------------------------- building


def build_report(
    pred_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    low_dir: str | os.PathLike | None = None,
    gt_dir: str | os.PathLike | None = None,
    captions: str | os.PathLike | None = None,
    overwrite: bool = False,
    title: str | None = None,
    compare: dict[str, str | os.PathLike] | None = None,
    niqe_mode: str = "gray",
) -> Report:
    """Measure and draw every image in ``pred_dir``; write index.html, contact sheet(s), metrics.csv.

    An existing report in ``out_dir`` is replaced only with ``overwrite``. ``captions`` defaults to
    ``pred_dir/captions.json`` when that file exists. ``compare`` maps a label to another folder of enhanced
    images (another model's outputs of the same inputs): each is measured the same way and shown beside
    ``pred_dir``'s image, so two models can be judged scene by scene. ``niqe_mode``: ``"gray"``, ``"y"``
    (see ``lumicap.metrics.niqe``) or ``"off"`` (no NIQE: about 2 s per 12-megapixel image on one core).
    """
    if niqe_mode not in NIQE_CHOICES:
        raise LumicapError(f"NIQE mode must be one of {', '.join(NIQE_CHOICES)}, got {niqe_mode!r}")
    pred_dir, out_dir = Path(pred_dir), Path(out_dir)
    predictions = index_images(pred_dir, exclude=out_dir)
    if not predictions:
        raise LumicapError(f"{shown(pred_dir)}: no image files to report on")
    lows = index_images(Path(low_dir), exclude=out_dir) if low_dir is not None else {}
    refs = index_images(Path(gt_dir), exclude=out_dir) if gt_dir is not None else {}
    if captions is None and (pred_dir / "captions.json").is_file():
        captions = pred_dir / "captions.json"
    caption_map = read_captions(Path(captions)) if captions is not None else {}
    for label in compare or {}:
        if label in ("low", "enhanced", "reference") or not label.strip():
            raise LumicapError(f"--compare {label!r}: choose another label (low, enhanced and reference are taken)")
    compared = {label: index_images(Path(folder), exclude=out_dir) for label, folder in (compare or {}).items()}
    for label, images in compared.items():
        if not images:
            raise LumicapError(f"--compare {label}={shown(compare[label])}: no image files there to compare with")
    sources = [(f"--low {shown(low_dir)}", lows)] if low_dir is not None else []
    sources += [(f"--gt {shown(gt_dir)}", refs)] if gt_dir is not None else []
    sources += [(f"--compare {label}={shown(compare[label])}", images) for label, images in compared.items()]
    notes = [_lacking(what, index, predictions) for what, index in sources]
    existing = [out_dir / name for name in REPORT_FILES if (out_dir / name).exists()]
    if existing and not overwrite:
        raise LumicapError(f"{existing[0]}: a report already exists there; pass --overwrite to replace it")

    if out_dir.exists() and not out_dir.is_dir():
        raise LumicapError(f"{out_dir}: exists and is not a folder (--out)")
    thumbs_dir = out_dir / "thumbs"
    thumbs_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / REPORT_MARKER).write_text('{"format": "lumicap-report", "version": 1}\n', encoding="utf-8")
    rows, failed = [], []
    for index, (key, enhanced_path) in enumerate(predictions.items()):
        row = ReportRow(key=key, enhanced=enhanced_path, low=lows.get(key), reference=refs.get(key))
        row.captions = caption_map.get(key) or caption_map.get(Path(key).name, {})
        row.compared = {label: Compared(images[key]) for label, images in compared.items() if key in images}
        try:
            _measure_and_thumbnail(row, index, thumbs_dir, out_dir, niqe_mode)
        except LumicapError as exc:  # an unreadable image is left out, as enhance skips one
            failed.append(str(exc))
            continue
        rows.append(row)
    if not rows:
        raise LumicapError(f"{shown(pred_dir)}: none of the {len(predictions)} images could be read ({failed[0]})")
    sheets = write_contact_sheets(rows, out_dir, show_low=bool(lows), show_reference=bool(refs),
                                  compared=list(compared))
    csv_path = write_metrics_csv(rows, out_dir / "metrics.csv", compared=list(compared), niqe_mode=niqe_mode)
    html_path = out_dir / "index.html"
    atomic_write(html_path, render_html(rows, out_dir, sheets, title or f"lumicap report: {pred_dir}",
                                        compared=list(compared), niqe_mode=niqe_mode))
    return Report(out_dir, rows, html_path, sheets, csv_path, failed, niqe_mode, [note for note in notes if note])


def _lacking(what: str, index: dict[str, Path], predictions: dict[str, Path]) -> str | None:
    """A note naming the images of PRED_DIR that ``index`` (a --low/--gt/--compare folder) has no match for."""
    missing = [key for key in predictions if key not in index]
    if not missing:
        return None
    shown_keys = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
    return f"{what} has no image for {len(missing)} of the {len(predictions)} images: {shown_keys}"


def _no_reference_measures(image, low, niqe_mode: str) -> dict[str, float | None]:
    """Clipping (%), colourfulness, NIQE and, given the dark input of the same size, LOE, of a (3, H, W)
    image: the measures ``lumicap eval`` takes without a reference (``lumicap.metrics``)."""
    from lumicap.metrics import as_uint8_rgb, clipped_share, colourfulness, loe
    from lumicap.metrics.judges import NiqeJudge

    levels = as_uint8_rgb(image)
    measures = {"clipped_pct": 100.0 * clipped_share(levels), "colourfulness": colourfulness(levels),
                "niqe": None, "loe": None}
    if niqe_mode != "off":
        measures["niqe"] = NiqeJudge(niqe_mode).score(levels)[f"niqe_{niqe_mode}"]
    if low is not None and low.shape == image.shape:
        measures["loe"] = loe(as_uint8_rgb(low), levels)
    return measures


def _measure_and_thumbnail(
    row: ReportRow, index: int, thumbs_dir: Path, out_dir: Path, niqe_mode: str = "gray"
) -> None:
    from lumicap.data.io import read_image
    from lumicap.metrics import as_uint8_rgb, clipped_share

    enhanced = read_image(row.enhanced)
    row.mean_enhanced = float(enhanced.mean())
    images = {"enhanced": enhanced}
    low = None
    if row.low is not None:
        low = read_image(row.low)
        row.mean_low = float(low.mean())
        row.clipped_pct_low = 100.0 * clipped_share(as_uint8_rgb(low))
        if niqe_mode != "off":
            row.niqe_low = _no_reference_measures(low, None, niqe_mode)["niqe"]
        images["low"] = low
    measures = _no_reference_measures(enhanced, low, niqe_mode)
    row.clipped_pct, row.colourfulness, row.niqe, row.loe = (
        measures[k] for k in ("clipped_pct", "colourfulness", "niqe", "loe")
    )
    reference = read_image(row.reference) if row.reference is not None else None
    if reference is not None:
        images["reference"] = reference
        if reference.shape == enhanced.shape and min(enhanced.shape[1:]) < 11:
            row.note = f"{tuple(enhanced.shape[1:])} is smaller than SSIM's 11x11 window: not measured"
        elif reference.shape == enhanced.shape:
            row.psnr, row.ssim = measure(enhanced, reference)
        else:
            row.note = f"size differs from reference ({tuple(enhanced.shape[1:])} vs {tuple(reference.shape[1:])})"
    for number, (label, other) in enumerate(row.compared.items()):
        image = read_image(other.path)
        measures = _no_reference_measures(image, low, niqe_mode)
        other.clipped_pct, other.colourfulness, other.niqe, other.loe = (
            measures[k] for k in ("clipped_pct", "colourfulness", "niqe", "loe"))
        if reference is not None and reference.shape == image.shape and min(image.shape[1:]) >= 11:
            other.psnr, other.ssim = measure(image, reference)
        images[f"compare{number}"] = image
    for role, image in images.items():
        target = thumbs_dir / f"{index:05d}_{role}.jpg"
        _save_thumbnail(image, target)
        row.thumbs[role] = target.relative_to(out_dir).as_posix()


def measure(enhanced, reference) -> tuple[float, float]:
    """PSNR (float images in [0,1]) and MATLAB-style SSIM (uint8 levels) of two (3,H,W) tensors."""
    from lumicap.metrics import psnr, ssim_matlab

    return float(psnr(enhanced, reference)), float(ssim_matlab(enhanced, reference))


def _to_pil(image):
    from PIL import Image

    array = image.clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).numpy()
    return Image.fromarray(array)


def _save_thumbnail(image, target: Path) -> None:
    from PIL import Image

    picture = _to_pil(image)
    picture.thumbnail((THUMB_SIZE, THUMB_SIZE), Image.Resampling.LANCZOS)
    picture.save(target, format="JPEG", quality=90)


# ------------------------------------------------------------------------------------------ contact sheet


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)  # Pillow >= 10.1 ships a scalable default font
    except TypeError:
        return ImageFont.load_default()


def row_label(row: ReportRow) -> str:
    parts = [row.key]
    if row.psnr is not None:
        parts.append(f"PSNR {row.psnr:.2f} dB  SSIM {row.ssim:.4f}")
    elif row.note:
        parts.append(row.note)
    if row.niqe is not None and not math.isnan(row.niqe):
        parts.append(f"NIQE {row.niqe:.2f}")
    for label, other in row.compared.items():
        numbers = []
        if other.psnr is not None:
            numbers.append(f"{other.psnr:.2f} dB  {other.ssim:.4f}")
        if other.niqe is not None and not math.isnan(other.niqe):
            numbers.append(f"NIQE {other.niqe:.2f}")
        if numbers:
            parts.append(f"{label}: " + "  ".join(numbers))
    return "   ".join(parts)


def write_contact_sheets(rows: list[ReportRow], out_dir: Path, show_low: bool, show_reference: bool,
                         compared: list[str] = ()) -> list[Path]:
    """One PNG per ``SHEET_ROWS`` images: a row per image with its label above the thumbnails
    (dark input | compared folders | enhanced | reference)."""
    from PIL import Image, ImageDraw

    compare_roles = [f"compare{i}" for i in range(len(compared))]
    roles = [r for r, shown in (("low", show_low), *((c, True) for c in compare_roles), ("enhanced", True),
                                ("reference", show_reference)) if shown]
    headers = {"low": "dark input", "enhanced": "enhanced" if not compared else "enhanced (PRED_DIR)",
               "reference": "reference", **dict(zip(compare_roles, compared))}
    gap, label_h, header_h = 8, 22, 26
    font, header_font = _font(14), _font(16)
    sheets = []
    pages = [rows[i : i + SHEET_ROWS] for i in range(0, len(rows), SHEET_ROWS)]
    for page_index, page in enumerate(pages):
        heights = []
        for row in page:
            sizes = [Image.open(out_dir / row.thumbs[r]).size[1] for r in roles if r in row.thumbs]
            heights.append(max(sizes))
        width = gap + len(roles) * (THUMB_SIZE + gap)
        height = header_h + sum(label_h + h + gap for h in heights) + gap
        sheet = Image.new("RGB", (width, height), (24, 24, 24))
        draw = ImageDraw.Draw(sheet)
        for column, role in enumerate(roles):
            draw.text((gap + column * (THUMB_SIZE + gap), 5), headers[role], fill=(235, 235, 235), font=header_font)
        y = header_h
        for row, row_height in zip(page, heights):
            draw.text((gap, y + 3), row_label(row), fill=(255, 220, 120), font=font)
            y += label_h
            for column, role in enumerate(roles):
                if role not in row.thumbs:
                    continue
                with Image.open(out_dir / row.thumbs[role]) as thumb:
                    sheet.paste(thumb.convert("RGB"), (gap + column * (THUMB_SIZE + gap), y))
            y += row_height + gap
        name = "contact_sheet.png" if page_index == 0 else f"contact_sheet_{page_index + 1}.png"
        target = out_dir / name
        with replacing(target) as tmp:
            sheet.save(tmp, format="PNG")
        sheets.append(target)
    return sheets


# ---------------------------------------------------------------------------------------------- tables

def csv_columns(niqe_mode: str = "gray") -> tuple[str, ...]:
    """metrics.csv's columns for PRED_DIR's images (each --compare LABEL adds ``LABEL <column>`` for the
    measured ones). Clipping is a percentage; NIQE is named after its mode; empty cells: not measured."""
    niqe = () if niqe_mode == "off" else (f"niqe_{niqe_mode}", f"niqe_{niqe_mode}_low")
    return ("name", "PSNR", "SSIM", "mean_low", "mean_enhanced", "clipped_pct", "clipped_pct_low", *niqe,
            "colourfulness", "loe", "note")


def compared_csv_columns(niqe_mode: str = "gray") -> tuple[str, ...]:
    niqe = () if niqe_mode == "off" else (f"niqe_{niqe_mode}",)
    return ("PSNR", "SSIM", "clipped_pct", *niqe, "colourfulness", "loe")


COLUMNS = csv_columns()  # with the default NIQE mode


def _fmt(value: float | None, digits: int) -> str:
    if value is None or math.isnan(value):
        return ""
    if math.isinf(value):  # identical images have infinite PSNR; spelled so JavaScript parses it
        return "Infinity" if value > 0 else "-Infinity"
    return f"{value:.{digits}f}"


def write_metrics_csv(rows: list[ReportRow], path: Path, compared: list[str] = (), niqe_mode: str = "gray") -> Path:
    columns, other_columns = csv_columns(niqe_mode), compared_csv_columns(niqe_mode)
    with replacing(path) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow([*columns, *(f"{label} {m}" for label in compared for m in other_columns)])
        for row in rows:
            values = {"name": row.key, "PSNR": _fmt(row.psnr, 4), "SSIM": _fmt(row.ssim, 6),
                      "mean_low": _fmt(row.mean_low, 4), "mean_enhanced": _fmt(row.mean_enhanced, 4),
                      "clipped_pct": _fmt(row.clipped_pct, 3), "clipped_pct_low": _fmt(row.clipped_pct_low, 3),
                      f"niqe_{niqe_mode}": _fmt(row.niqe, 4), f"niqe_{niqe_mode}_low": _fmt(row.niqe_low, 4),
                      "colourfulness": _fmt(row.colourfulness, 3), "loe": _fmt(row.loe, 2), "note": row.note}
            extra = []
            for label in compared:
                other = row.compared.get(label)
                if other is None:
                    extra += [""] * len(other_columns)
                    continue
                measured = {"PSNR": _fmt(other.psnr, 4), "SSIM": _fmt(other.ssim, 6),
                            "clipped_pct": _fmt(other.clipped_pct, 3), f"niqe_{niqe_mode}": _fmt(other.niqe, 4),
                            "colourfulness": _fmt(other.colourfulness, 3), "loe": _fmt(other.loe, 2)}
                extra += [measured[m] for m in other_columns]
            writer.writerow([*(values[c] for c in columns), *extra])
    return path


def _link(target: Path, out_dir: Path) -> str:
    return quote(Path(os.path.relpath(target.resolve(), out_dir.resolve())).as_posix())


_PAGE_STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5em;background:#181818;color:#e8e8e8}
a{color:#8cc8ff}table{border-collapse:collapse}td,th{padding:4px 8px;border-bottom:1px solid #333;vertical-align:top}
th{cursor:pointer;position:sticky;top:0;background:#262626;text-align:left;user-select:none}
th.sorted-asc::after{content:" \\25B2"}th.sorted-desc::after{content:" \\25BC"}
td.num{text-align:right;font-variant-numeric:tabular-nums}img{max-width:256px;max-height:256px;display:block}
.caption{font-size:0.85em;color:#bbb;max-width:28em}.hint{color:#aaa}
"""

# Sorting: numbers compare as numbers, empty cells go last; metric columns sort worst first on the
# first click (data-first="asc" for PSNR/SSIM, "desc" for clipping), a second click reverses.
_PAGE_SCRIPT = """
document.querySelectorAll('th[data-col]').forEach(function (th) {
  th.addEventListener('click', function () {
    var table = th.closest('table'), body = table.tBodies[0], col = +th.dataset.col;
    var numeric = th.dataset.type === 'num';
    var dir = th.classList.contains('sorted-' + (th.dataset.first || 'asc'))
      ? (th.dataset.first === 'desc' ? 'asc' : 'desc') : (th.dataset.first || 'asc');
    table.querySelectorAll('th').forEach(function (h) { h.classList.remove('sorted-asc', 'sorted-desc'); });
    th.classList.add('sorted-' + dir);
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = a.cells[col].dataset.value, y = b.cells[col].dataset.value;
      if (x === '' && y === '') return 0;
      if (x === '') return 1;
      if (y === '') return -1;
      var c = numeric ? (parseFloat(x) - parseFloat(y)) : x.localeCompare(y);
      return dir === 'asc' ? c : -c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
  });
});
"""


def render_html(rows: list[ReportRow], out_dir: Path, sheets: list[Path], title: str,
                compared: list[str] = (), niqe_mode: str = "gray") -> str:
    esc = html.escape
    has_low = any(r.low for r in rows)
    has_ref = any(r.reference for r in rows)
    has_caps = any(r.captions for r in rows)
    num, worst_low, worst_high = (
        'data-type="num"',
        'data-type="num" data-first="asc"',
        'data-type="num" data-first="desc"',
    )
    columns = [("#", num), ("name", "")]  # (header, sort attributes), in table order
    if has_low:
        columns.append(("dark input", ""))
    columns += [(label, "") for label in compared]
    columns.append(("enhanced", ""))
    if has_ref:
        columns += [("reference", ""), ("PSNR (dB)", worst_low), ("SSIM", worst_low)]
        columns += [(f"{label} PSNR (dB)", worst_low) for label in compared]
    if has_low:
        columns += [("mean in", worst_low), ("clipped % in", worst_high)]
    columns += [("mean out", worst_low), ("clipped %", worst_high)]
    has_niqe = niqe_mode != "off"
    niqe_name = f"NIQE {niqe_mode}"
    if has_niqe:
        if has_low:
            columns.append((f"{niqe_name} in", worst_high))
        columns.append((niqe_name, worst_high))
    columns.append(("colourfulness", worst_low))
    if has_low:
        columns.append(("LOE", worst_high))
    for label in compared:  # the same measures for every compared folder
        columns.append((f"{label} clipped %", worst_high))
        if has_niqe:
            columns.append((f"{label} {niqe_name}", worst_high))
        columns.append((f"{label} colourfulness", worst_low))
        if has_low:
            columns.append((f"{label} LOE", worst_high))
    if has_caps:
        columns.append(("captions", ""))
    columns.append(("note", ""))

    def image_cell(row: ReportRow, role: str, path: Path | None) -> str:
        if path is None or role not in row.thumbs:
            return '<td data-value=""></td>'
        return (
            f'<td data-value=""><a href="{_link(path, out_dir)}"><img loading="lazy" '
            f'src="{quote(row.thumbs[role])}" alt="{esc(role)} {esc(row.key)}"></a></td>'
        )

    def num_cell(value: float | None, digits: int, scale: float = 1.0) -> str:
        text = _fmt(None if value is None else value * scale, digits)
        return f'<td class="num" data-value="{text}">{text}</td>'

    body = []
    for number, row in enumerate(rows, start=1):
        cells = [
            f'<td class="num" data-value="{number}">{number}</td>',
            f'<td data-value="{esc(row.key)}">{esc(row.key)}</td>',
        ]
        if has_low:
            cells.append(image_cell(row, "low", row.low))
        for number, label in enumerate(compared):
            other = row.compared.get(label)
            cells.append(image_cell(row, f"compare{number}", other.path if other else None))
        cells.append(image_cell(row, "enhanced", row.enhanced))
        if has_ref:
            cells.append(image_cell(row, "reference", row.reference))
            cells += [num_cell(row.psnr, 2), num_cell(row.ssim, 4)]
            cells += [num_cell(row.compared[label].psnr if label in row.compared else None, 2) for label in compared]
        if has_low:
            cells += [num_cell(row.mean_low, 3), num_cell(row.clipped_pct_low, 2)]
        cells += [num_cell(row.mean_enhanced, 3), num_cell(row.clipped_pct, 2)]
        if has_niqe:
            if has_low:
                cells.append(num_cell(row.niqe_low, 2))
            cells.append(num_cell(row.niqe, 2))
        cells.append(num_cell(row.colourfulness, 1))
        if has_low:
            cells.append(num_cell(row.loe, 1))
        for label in compared:
            other = row.compared.get(label)
            cells.append(num_cell(other.clipped_pct if other else None, 2))
            if has_niqe:
                cells.append(num_cell(other.niqe if other else None, 2))
            cells.append(num_cell(other.colourfulness if other else None, 1))
            if has_low:
                cells.append(num_cell(other.loe if other else None, 1))
        if has_caps:
            text = "<br>".join(f"<b>{esc(k)}</b>: {esc(v)}" for k, v in row.captions.items())
            cells.append(f'<td class="caption" data-value="">{text}</td>')
        cells.append(f'<td data-value="{esc(row.note)}">{esc(row.note)}</td>')
        body.append(f'<tr id="{esc(row.key)}">' + "".join(cells) + "</tr>")

    th = "".join(f'<th data-col="{i}" {attrs}>{esc(name)}</th>' for i, (name, attrs) in enumerate(columns))
    scored = [r for r in rows if r.psnr is not None]
    summary = f"{len(rows)} images"
    if scored:
        summary += (
            f"; mean PSNR {sum(r.psnr for r in scored) / len(scored):.2f} dB, "
            f"mean SSIM {sum(r.ssim for r in scored) / len(scored):.4f} ({len(scored)} with references; "
            f"PSNR on float RGB in [0,1], SSIM MATLAB-style on 8-bit RGB)"
        )
    niqe_mean = _mean(r.niqe for r in rows) if has_niqe else None
    if niqe_mean is not None:
        summary += f"; mean {niqe_name} {niqe_mean:.3f} (lower is better)"
    summary += ("; clipped %: pixels with a channel >= 250; colourfulness: Hasler-Suesstrunk"
                + ("; LOE: lightness order error against the dark input (Wang et al. 2013)" if has_low else ""))
    sheet_links = " ".join(f'<a href="{quote(s.name)}">{esc(s.name)}</a>' for s in sheets)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{esc(title)}</title><style>{_PAGE_STYLE}</style></head><body>\n"
        f"<h1>{esc(title)}</h1>\n<p>{esc(summary)}. Contact sheet: {sheet_links}. "
        '<a href="metrics.csv">metrics.csv</a></p>\n'
        '<p class="hint">Click a column header to sort; metric columns put the worst images first.</p>\n'
        f"<table><thead><tr>{th}</tr></thead><tbody>\n" + "\n".join(body) + "\n</tbody></table>\n"
        f"<script>{_PAGE_SCRIPT}</script>\n</body></html>\n"
    )
