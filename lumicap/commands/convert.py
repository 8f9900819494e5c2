"""`lumicap convert NAME FILE --out X.safetensors`: any checkpoint lumicap reads -> a lumicap inference model."""

from __future__ import annotations


def register(sub):
    parser = sub.add_parser(
        "convert",
        help="convert an official or lumicap checkpoint into a lumicap inference model (.safetensors + .json)",
        description=(
            "Read FILE as weights of model NAME (official checkpoints of the baselines are detected by content: "
            "BasicSR 'params', DataParallel 'module.' keys, the authors' names; RetinexNet's TensorFlow folder "
            "needs pip install 'lumicap[tf]'), check that every weight fits, and write OUT (.safetensors) with "
            "its JSON sidecar recording the source file's name and sha256. NAME may also be the catalogue name "
            "of official weights (lumicap weights list), then FILE is optional. Nothing is written when the file "
            "does not fit, and existing outputs need --overwrite."
        ),
    )
    parser.add_argument("name", metavar="NAME", help="registry model (e.g. llformer) or official weights name")
    parser.add_argument("file", metavar="FILE", nargs="?", help="checkpoint file or TensorFlow checkpoint folder")
    parser.add_argument("--out", metavar="X.safetensors", required=True, help="output weights (sidecar: X.json)")
    parser.add_argument(
        "--override", metavar="KEY=VALUE", action="append", default=[],
        help="constructor override of the model for a checkpoint of another size (YAML value, e.g. "
        "n_feat=16 or num_blocks=[1,2,2]); repeatable",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace existing output files")
    parser.set_defaults(func=run)


def run(args) -> int:
    from pathlib import Path

    from lumicap.errors import LumicapError
    from lumicap.inference import load_inference_model, save_inference_model

    out = Path(args.out)
    if out.suffix != ".safetensors":
        raise LumicapError(f"--out {out}: inference models are written as .safetensors")
    from lumicap.files import check_output_file

    for existing in (out, out.with_suffix(".json")):
        if existing.exists() and not args.overwrite:
            raise LumicapError(f"{existing}: already exists (pass --overwrite to replace it)")
        check_output_file(existing, "--out" if existing == out else "sidecar")
    overrides = _parse_overrides(args.override)
    if args.file is None:
        from lumicap.weights.catalogue import official_model

        if official_model(args.name) is None:
            raise LumicapError(
                f"FILE is needed: '{args.name}' is not a name of official weights (lumicap weights list)"
            )
        model = load_inference_model(args.name, "cpu", overrides=overrides, highlight_protection=False, chroma_gain=1)
    else:
        model = load_inference_model(
            args.name, "cpu", weights=args.file, overrides=overrides, highlight_protection=False, chroma_gain=1
        )
    record = {
        "converted_by": "lumicap convert",
        "source_file": _source_name(args.file or model.source),
        "source_sha256": _sha256_of(Path(args.file) if args.file else None, model),
    }
    if args.file is None:
        record["weights"] = args.name  # the catalogue name of the official weights
    for key in ("official_format", "official_keys_left_out"):
        if key in model.metadata:
            record[key] = model.metadata[key]
    path, sidecar = save_inference_model(
        out, model.name, model.module.state_dict(), model.metadata.get("overrides"), overwrite=args.overwrite, **record
    )
    if model.note:
        print(f"note: {model.note}")
    print(f"{model.name} from {model.source} -> {path} (+ {sidecar.name})")
    return 0


def _parse_overrides(items: list[str]) -> dict:
    import yaml

    from lumicap.errors import LumicapError

    overrides = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise LumicapError(f"--override {item!r}: expected KEY=VALUE")
        try:
            overrides[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise LumicapError(f"--override {item!r}: the value is not valid YAML") from None
    return overrides


def _source_name(text: str) -> str:
    from pathlib import Path

    return Path(text.split(" (")[0]).name


def _sha256_of(path, model):
    """sha256 of the source file; of each file for a checkpoint folder (a TensorFlow checkpoint)."""
    from pathlib import Path

    from lumicap.weights import sha256_of

    if path is None:  # a catalogue name: the cached file(s)
        from lumicap.weights import cached_path, get_known
        from lumicap.weights.catalogue import official_model

        entry = official_model(model.metadata["weights"])
        files = {Path(get_known(f).filename).name if len(entry.files) == 1 else f: cached_path(get_known(f))
                 for f in entry.files}
        if len(files) == 1:
            return sha256_of(next(iter(files.values())))
        return {name: sha256_of(file) for name, file in files.items()}
    path = Path(path).expanduser()
    if path.is_dir():
        return {str(f.relative_to(path)): sha256_of(f) for f in sorted(path.rglob("*")) if f.is_file()}
    return sha256_of(path)
