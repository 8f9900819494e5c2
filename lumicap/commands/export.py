"""`lumicap export MODEL --format onnx|safetensors --out FILE`: a trained network in a portable file.

``onnx``: the network with dynamic batch, height and width (opset 17), checked against PyTorch on an odd-sized
image when ONNX Runtime is installed; run it with ``lumicap enhance --model FILE.onnx``.
``safetensors``: lumicap's inference format (weights + JSON sidecar), what the shipped default model is.
"""

from __future__ import annotations


def register(sub) -> None:
    parser = sub.add_parser(
        "export",
        help="write a model (default, file, run folder, or NAME --weights) as ONNX or safetensors",
        description="Export a network for other runtimes (ONNX) or as a lumicap inference model (safetensors). "
        "Existing files are never replaced unless --overwrite.",
    )
    parser.add_argument(
        "model",
        metavar="MODEL",
        help="'default', a .safetensors/.pt file, a run folder, or a registry name with --weights",
    )
    parser.add_argument("--weights", metavar="FILE", help="state-dict file for MODEL given as a registry name")
    parser.add_argument("--format", required=True, choices=["onnx", "safetensors"])
    parser.add_argument("--out", required=True, metavar="FILE", help="output file (.onnx or .safetensors)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    parser.set_defaults(func=run)


def run(args) -> int:
    from pathlib import Path

    from lumicap.errors import LumicapError
    from lumicap.inference import load_inference_model, save_inference_model

    out = Path(args.out)
    suffix = {"onnx": ".onnx", "safetensors": ".safetensors"}[args.format]
    if out.suffix != suffix:
        raise LumicapError(f"--out {out}: a {args.format} file must end in {suffix}")
    targets = [out] if args.format == "onnx" else [out, out.with_suffix(".json")]
    existing = [str(p) for p in targets if p.exists()]
    if existing and not args.overwrite:
        raise LumicapError(f"{', '.join(existing)} already exists (pass --overwrite to replace it)")
    if not out.parent.is_dir():
        raise LumicapError(f"--out {out}: folder {out.parent} does not exist")
    from lumicap.files import check_output_file

    for target in targets:
        check_output_file(target, "--out" if target == out else "sidecar")
    if args.model.lower().endswith(".onnx"):
        raise LumicapError(
            f"{args.model}: already an ONNX file; export takes a PyTorch model (a .safetensors or checkpoint file, "
            "a run folder, 'default', or NAME --weights FILE)"
        )
    # safetensors: the bare network; the full-resolution wrapper, chroma gain and highlight protection are
    # inference settings recorded in the sidecar, which the export keeps. ONNX has no sidecar: the per-pixel steps
    # after the network (chroma gain, highlight protection) go into the graph, so the file gives the picture
    # lumicap enhance gives (the full-resolution wrapper resizes by photo size and stays out).
    bare = args.format != "onnx"
    model = load_inference_model(
        args.model, "cpu", weights=args.weights, network_megapixels=0,
        highlight_protection=False if bare else None, chroma_gain=1 if bare else None,
    )
    network = model.module
    record = {k: v for k, v in model.metadata.items() if k not in ("format", "version", "model", "overrides")}
    if args.format == "onnx":
        from lumicap.inference.onnx_model import export_onnx

        difference = export_onnx(network, out, metadata={"lumicap_model": model.name, "lumicap_source": model.source})
        check = (
            "onnxruntime not installed: not checked"
            if difference is None
            else f"max |ONNX - PyTorch| {difference:.2e} on a 53x37 image"
        )
        print(f"wrote {out} ({model.describe().replace(' on cpu', '', 1)}; {check})")
        return 0
    overrides = model.metadata.get("overrides", {}) if isinstance(model.metadata.get("overrides"), dict) else {}
    paths = save_inference_model(out, model.name, network.state_dict(), overrides, overwrite=args.overwrite,
                                 **{"exported_from": model.source, **record})
    print(f"wrote {paths[0]} and {paths[1].name} ({model.name} from {model.source})")
    return 0
