"""`lumicap models`: every registered enhancement network with its size, cost and origin."""

from __future__ import annotations

import json

# (label, height, width): the published 256x256 convention and a LOL image (600 wide, 400 high).
MAC_SIZES = (("256x256", 256, 256), ("600x400", 400, 600))


def register(sub):
    parser = sub.add_parser(
        "models",
        help="list the enhancement networks (parameters vs official, GMACs, paper)",
        description="List the enhancement networks: parameter count against the official implementation's, "
        "GMACs (multiply-accumulates, FlopCounterMode convention: convs and matrix products only) at 256x256 "
        "and 600x400, and the paper.",
    )
    parser.add_argument("names", nargs="*", help="only these models (default: all)")
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON instead of a table")
    parser.add_argument("--no-flops", action="store_true", help="skip the MAC counts (faster)")
    parser.set_defaults(func=run)


def _rows(names: list[str], with_flops: bool) -> list[dict]:
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


def _table(rows: list[dict], with_flops: bool) -> str:
    header = ["model", "params (M)", "official (M)", "diff"]
    if with_flops:
        header += [f"GMACs {label}" for label, _, _ in MAC_SIZES]
    header.append("paper")
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
    widths = [max(len(str(c)) for c in col) for col in zip(header, *lines)]
    fmt = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    out = [fmt(header), fmt(["-" * w for w in widths])] + [fmt(cells) for cells in lines]
    if with_flops:
        out.append("GMACs: 1e9 multiply-accumulates of convolutions and matrix products (FlopCounterMode / 2).")
    return "\n".join(out)


def run(args):
    rows = _rows(args.names, with_flops=not args.no_flops)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(_table(rows, with_flops=not args.no_flops))
    return 0
