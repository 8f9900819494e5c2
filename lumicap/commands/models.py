"""`lumicap models`: every name `--model` takes, in three sections, and the networks' sizes and costs.

1. shipped models (inside the package, offline): ``default`` and the other ``SHIPPED_MODELS``;
2. official pretrained weights by name (the catalogue's ``OFFICIAL_MODELS``), with whether their files are
   in the cache already (else the first use downloads them, or says where to get a Google Drive file);
3. the registry's networks: usable as ``--model NAME --weights FILE`` only (random weights otherwise), with
   parameter counts against the official code's and, with ``--flops``, GMACs at 256x256 and 600x400.

MACs are counted only when asked: a count runs every network's forward (on the meta device where it can),
which takes seconds to tens of seconds on a laptop CPU, while the listing is wanted at once.
"""

from __future__ import annotations

import json

# (label, height, width): the published 256x256 convention and a LOL image (600 wide, 400 high).
MAC_SIZES = (("256x256", 256, 256), ("600x400", 400, 600))
# What else --model takes besides names (the same forms as `lumicap enhance --model`).
OTHER_FORMS = ("FILE.safetensors (with its .json sidecar), a lumicap training checkpoint (.pt) or run folder "
               "(its checkpoints/best.pt), FILE.onnx (lumicap export)")


def register(sub):
    parser = sub.add_parser(
        "models",
        help="list every name --model takes: shipped models, official weights (cached or not), networks",
        description="List every name that works as --model (lumicap enhance, serve, eval, export): the models "
        "shipped in the package, official pretrained weights by name (with whether they are in the cache), and "
        "the networks, which need --weights FILE. Networks are shown with their parameter count against the "
        "official implementation's and, with --flops, GMACs (multiply-accumulates of convolutions and matrix "
        "products, FlopCounterMode / 2) at 256x256 and 600x400.",
    )
    parser.add_argument("names", nargs="*", help="only these networks (default: everything)")
    parser.add_argument("--json", action="store_true",
                        help="print JSON: {\"shipped\": [...], \"official\": [...], \"networks\": [...]}")
    parser.add_argument("--flops", action="store_true",
                        help="also count each network's GMACs (runs a forward per network and size: seconds)")
    parser.add_argument("--no-flops", action="store_true", help="no MAC counts (the default; kept for old scripts)")
    parser.add_argument("--cache-dir", metavar="DIR",
                        help="weights cache to look in (default $LUMICAP_CACHE or ~/.cache/lumicap)")
    parser.set_defaults(func=run)


# ------------------------------------------------------------------------------------------------ sections


def shipped_rows() -> list[dict]:
    """The models inside the package: name, the network, and what their sidecar says they were trained on."""
    from lumicap.inference.loading import ASSETS_DIR, SHIPPED_MODELS
    from lumicap.jsonfile import read_json

    rows = []
    for name, filename in SHIPPED_MODELS.items():
        sidecar = (ASSETS_DIR / filename).with_suffix(".json")
        row = {"name": name, "network": None, "installed": sidecar.is_file(), "data": None}
        if row["installed"]:
            try:
                record = read_json(sidecar, what="JSON sidecar")
            except Exception:  # a broken sidecar is reported by the model loader, not by a listing
                record = {}
            if isinstance(record, dict):
                row["network"] = record.get("model") if isinstance(record.get("model"), str) else None
                row["data"] = record.get("data") if isinstance(record.get("data"), str) else None
        rows.append(row)
    return rows


def official_rows(root=None) -> list[dict]:
    """Official pretrained weights usable by name, with whether every file is in the cache now and whether
    a missing one downloads by itself (a Google Drive file wants a browser)."""
    from lumicap.weights import cached_path, known_weights
    from lumicap.weights_catalog import OFFICIAL_MODELS

    known = known_weights()
    rows = []
    for name, entry in sorted(OFFICIAL_MODELS.items()):
        files = [known[file] for file in entry.files]
        rows.append({
            "name": name,
            "network": entry.model,
            "trained_on": entry.trained_on,
            "cached": all(cached_path(file, root).is_file() for file in files),
            "downloads_by_itself": not any("drive.google.com/drive" in file.source or "/file/d/" in file.source
                                           for file in files),
        })
    return rows


def network_rows(names: list[str], with_flops: bool) -> list[dict]:
    import torch

    from lumicap.models import list_models, model_info
    from lumicap.models.flops import model_macs

    infos = [model_info(n) for n in names] if names else list_models()
    rows = []
    for info in infos:
        with torch.device("meta"):  # parameter shapes only: nothing is allocated or initialised
            params = sum(p.numel() for p in info.builder().parameters())
        row = {
            "name": info.name,
            "params": params,
            "official_params": info.official_params,
            "params_diff_pct": (
                round(100.0 * (params - info.official_params) / info.official_params, 3)
                if info.official_params
                else None
            ),
            "params_source": info.params_source,
            "paper": info.paper,
        }
        if with_flops:
            for label, h, w in MAC_SIZES:
                row[f"gmacs_{label}"] = round(model_macs(info.name, h, w) / 1e9, 3)
        rows.append(row)
    return rows


# ------------------------------------------------------------------------------------------------ printing


def _columns(header: list[str], lines: list[list[str]], indent: str = "  ") -> list[str]:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *lines)]
    fmt = lambda cells: indent + "  ".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    return [fmt(header)] + [fmt(cells) for cells in lines]


def _shipped_text(rows: list[dict]) -> list[str]:
    lines = []
    for row in rows:
        if not row["installed"]:
            what = "not installed in this copy of lumicap"
        else:
            what = f"{row['network'] or '?'} trained by lumicap"
            what += " (used when no --model is given)" if row["name"] == "default" else ""
        lines.append([row["name"], what])
    return ["shipped with lumicap (offline):"] + _columns(["NAME", "WHAT"], lines)


def _official_text(rows: list[dict]) -> list[str]:
    lines = []
    for row in rows:
        if row["cached"]:
            state = "cached"
        elif row["downloads_by_itself"]:
            state = "not cached: downloaded on first use"
        else:
            state = "not cached: fetch by hand from Google Drive ('lumicap weights download NAME' says where)"
        lines.append([row["name"], row["network"], row["trained_on"], state])
    return ["official pretrained weights (the authors' checkpoints, by name):"] + _columns(
        ["NAME", "NETWORK", "TRAINED ON", "CACHE"], lines)


def _networks_text(rows: list[dict], with_flops: bool) -> list[str]:
    header = ["NAME", "PARAMS (M)", "OFFICIAL (M)", "DIFF"]
    if with_flops:
        header += [f"GMACS {label}" for label, _, _ in MAC_SIZES]
    header.append("PAPER")
    lines = []
    for row in rows:
        official = row["official_params"]
        cells = [
            row["name"],
            f"{row['params'] / 1e6:.3f}",
            f"{official / 1e6:.3f}" if official else "-",
            f"{row['params_diff_pct']:+.2f}%" if official else "-",
        ]
        if with_flops:
            cells += [f"{row[f'gmacs_{label}']:.2f}" for label, _, _ in MAC_SIZES]
        cells.append(row["paper"])
        lines.append(cells)
    out = ["networks (need --weights FILE: a checkpoint of that network; alone they have random weights):"]
    out += _columns(header, lines)
    if with_flops:
        out.append("GMACs: 1e9 multiply-accumulates of convolutions and matrix products (FlopCounterMode / 2), "
                   "counted on each network's plain forward.")
    return out


def run(args):
    from pathlib import Path

    with_flops = bool(args.flops)
    root = Path(args.cache_dir).expanduser() if args.cache_dir else None
    only_networks = bool(args.names)
    shipped = [] if only_networks else shipped_rows()
    official = [] if only_networks else official_rows(root)
    if not args.json and not only_networks:
        # These two sections need no torch: shown at once, before the networks are built for their counts.
        print("\n\n".join("\n".join(block) for block in (_shipped_text(shipped), _official_text(official))),
              end="\n\n", flush=True)
    networks = network_rows(args.names, with_flops)
    if args.json:
        print(json.dumps({"shipped": shipped, "official": official, "networks": networks}, indent=2))
        return 0
    blocks = [_networks_text(networks, with_flops)]
    if not only_networks:
        blocks.append([f"--model also takes {OTHER_FORMS}."])
    print("\n\n".join("\n".join(block) for block in blocks))
    return 0
