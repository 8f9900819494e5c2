"""ONNX: export any loadable lumicap network with dynamic batch, height and width, and run ``.onnx`` files.

``export_onnx(model, path)`` writes the network (not the full-resolution wrapper) with opset 17 through
PyTorch's TorchScript-based exporter (it needs neither ``onnxscript`` nor a download); the file's metadata
records the registry name and where the weights came from. ``OnnxEnhancer(path)`` runs a file with ONNX
Runtime on the CPU and is called like the network, so ``lumicap enhance --model F.onnx`` tiles, writes and
reports exactly as for a PyTorch model. Both need the optional extra: ``pip install "lumicap[onnx]"``.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lumicap.errors import LumicapError, WeightsError
from lumicap.files import not_regular, replacing

OPSET = 17
INPUT_NAME, OUTPUT_NAME = "image", "enhanced"


def _require(module: str):
    try:
        return __import__(module)
    except ImportError:
        raise LumicapError(
            f'{module} is not installed; ONNX support is an optional extra: pip install "lumicap[onnx]"'
        ) from None


def export_onnx(network: nn.Module, path: str | os.PathLike, metadata: dict[str, str] | None = None,
                check_size: tuple[int, int] = (37, 53)) -> float | None:
    """Write ``network`` to ``path`` (.onnx) with dynamic batch/height/width; returns the largest absolute
    difference between ONNX Runtime's and PyTorch's output on a random ``check_size`` image (None when
    onnxruntime is not installed). The file is written beside ``path`` and renamed into place."""
    _require("onnx")
    path = Path(path)
    if path.suffix != ".onnx":
        raise LumicapError(f"{path}: ONNX files end in .onnx")
    network = network.eval().cpu()
    example = torch.rand(1, 3, *check_size, generator=torch.Generator().manual_seed(0))
    axes = {0: "batch", 2: "height", 3: "width"}
    with replacing(path) as tmp:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter's notice
            try:
                torch.onnx.export(
                    network, (example,), str(tmp), input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                    dynamic_axes={INPUT_NAME: axes, OUTPUT_NAME: axes}, opset_version=OPSET, dynamo=False,
                )
            except torch.onnx.errors.OnnxExporterError as exc:  # an operator the exporter cannot write
                reason = " ".join(str(exc).split())
                raise LumicapError(
                    f"{path}: this network cannot be written as ONNX (opset {OPSET}): {reason[:200]}"
                ) from None
        if metadata:
            import onnx

            model = onnx.load(str(tmp))
            for key, value in metadata.items():
                entry = model.metadata_props.add()
                entry.key, entry.value = str(key), str(value)
            onnx.save(model, str(tmp))
        difference = None
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            pass
        else:
            with torch.no_grad():
                expected = network(example)
            got = OnnxEnhancer(tmp)(example)
            difference = float((got - expected).abs().max())
    return difference


class OnnxEnhancer:
    """An ``.onnx`` enhancement network run by ONNX Runtime (CPU); ``enhancer(x)`` maps (B,3,H,W) -> (B,3,H,W)."""

    def __init__(self, path: str | os.PathLike, threads: int | None = None):
        ort = _require("onnxruntime")
        self.path = Path(path)
        if not self.path.is_file():
            raise WeightsError(not_regular(self.path) or f"{self.path}: no such file")
        options = ort.SessionOptions()
        options.log_severity_level = 3  # warnings about unused initialisers are not the user's concern
        if threads:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types for broken files
            text = " ".join(str(exc).split())[:200]
            raise WeightsError(f"{self.path}: not a readable ONNX model ({text})") from None
        self.input_name = _check_signature(self.path, self.session.get_inputs(), self.session.get_outputs())
        self.metadata: dict[str, Any] = dict(self.session.get_modelmeta().custom_metadata_map)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Run the model on a (B,3,H,W) batch; its result is checked (a float image of the same size, finite),
        since a wrong one would otherwise be written as a black, white or mis-sized picture."""
        array = x.detach().to("cpu", torch.float32).contiguous().numpy()
        try:
            (out, *_) = self.session.run(None, {self.input_name: array})
        except Exception as exc:  # onnxruntime's own exception types: shapes the graph cannot take, ...
            text = " ".join(str(exc).split())[:200]
            raise LumicapError(f"{self.path}: ONNX Runtime failed on a {_shape(array.shape)} input ({text})") from None
        shape = tuple(getattr(out, "shape", ()))
        if shape != array.shape:
            raise LumicapError(f"{self.path}: the model's output is {_shape(shape)} for a {_shape(array.shape)} input; "
                               "an enhancer must return an image of the same size")
        if getattr(out, "dtype", None) is None or out.dtype.kind != "f":
            raise LumicapError(
                f"{self.path}: the model's output holds {out.dtype} values; an enhancer returns floats in [0, 1]"
            )
        result = torch.from_numpy(out).float()
        if not bool(torch.isfinite(result).all()):
            bad = int((~torch.isfinite(result)).sum())
            raise LumicapError(f"{self.path}: the model's output holds {bad:,} NaN or infinite values for this image "
                               "(written, they would be black or white pixels)")
        return result


_FLOAT_TYPES = ("tensor(float)", "tensor(float16)", "tensor(double)")


def _check_signature(path: Path, inputs, outputs) -> str:
    """The input's name, when the model takes one (batch, 3, height, width) float image of any size and returns
    one of the same kind; otherwise one ``WeightsError`` line saying what the file declares."""

    def declared(arg) -> str:
        dims = ", ".join(str(d) if isinstance(d, int) else (d or "?") for d in (arg.shape or []))
        return f"'{arg.name}' {arg.type.removeprefix('tensor(').rstrip(')')} [{dims}]"

    def problem(arg, role: str) -> str | None:
        shape = arg.shape or []
        if len(shape) != 4:
            return f"its {role} {declared(arg)} is not a (batch, channels, height, width) image"
        if isinstance(shape[1], int) and shape[1] != 3:
            return f"its {role} {declared(arg)} has {shape[1]} channel(s); lumicap's images have 3 (RGB)"
        if arg.type not in (("tensor(float)",) if role == "input" else _FLOAT_TYPES):
            return f"its {role} {declared(arg)} is not a float{'32' if role == 'input' else ''} image"
        if role == "input" and (isinstance(shape[2], int) or isinstance(shape[3], int)):
            return (f"its input {declared(arg)} has a fixed height or width; lumicap needs dynamic ones "
                    "(lumicap export writes them)")
        return None

    if len(inputs) != 1 or len(outputs) != 1:
        found = ", ".join(declared(a) for a in [*inputs, *outputs])
        return _refuse(path, f"it takes {len(inputs)} input(s) and returns {len(outputs)} output(s) ({found}); "
                             "an enhancer takes one image and returns one")
    for arg, role in ((inputs[0], "input"), (outputs[0], "output")):
        found = problem(arg, role)
        if found:
            _refuse(path, found)
    return inputs[0].name


def _refuse(path: Path, reason: str):
    raise WeightsError(f"{path}: not an image enhancer lumicap can run: {reason}")


def _shape(shape) -> str:
    return "x".join(str(d) for d in shape) if shape else "a scalar"
