"""ONNX files that are not image enhancers, or whose results are wrong (issue 25, item 5): the model's declared
inputs and outputs are checked when it loads (one float image in, one of the same kind out, 3 channels, any
size), and every result is checked (same size, float, finite). Before, NaN outputs became black images,
infinities white ones, a 1x1 output a 1x1 file, int64 outputs black images, all with exit 0 and "0 failed",
and 1-channel models ended in an onnxruntime traceback."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

onnx = pytest.importorskip("onnx", reason="ONNX support is in the test extra (pip install -e '.[test]')")
pytest.importorskip("onnxruntime", reason="ONNX support is in the test extra (pip install -e '.[test]')")
from onnx import TensorProto, helper  # noqa: E402

from _reliability_support import assert_one_line_error  # noqa: E402
from reliability.fuzzrun import run_cli  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")

DYNAMIC = ["batch", 3, "height", "width"]


def _model(path: Path, nodes, out_type=TensorProto.FLOAT, in_shape=DYNAMIC, out_shape=DYNAMIC, initializers=(),
           in_type=TensorProto.FLOAT, extra_outputs=()) -> Path:
    graph = helper.make_graph(
        nodes, "test",
        [helper.make_tensor_value_info("image", in_type, in_shape)],
        [helper.make_tensor_value_info("enhanced", out_type, out_shape), *extra_outputs],
        initializer=list(initializers),
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def _scalar(name: str, value: float):
    return helper.make_tensor(name, TensorProto.FLOAT, [], [value])


def _photo(folder: Path, width: int = 64, height: int = 96) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "a.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 80, size=(height, width, 3), dtype=np.uint8)).save(path)
    return path


def _enhance(tmp_path: Path, model: Path, *extra: str):
    photo = _photo(tmp_path / "in")
    out = tmp_path / f"out-{model.stem}"
    rc, stdout, stderr, tb = run_cli(["enhance", str(photo), "--out", str(out), "--model", str(model), "--no-progress", *extra])
    return rc, stdout, stderr, tb, out


# Results that are wrong, from models that declare the right signature.
RESULT_CASES = {
    "nan": ([helper.make_node("Mul", ["image", "k"], ["enhanced"])], [_scalar("k", float("nan"))], "NaN or infinite"),
    "inf": ([helper.make_node("Div", ["image", "k"], ["enhanced"])], [_scalar("k", 0.0)], "NaN or infinite"),
    "one-pixel": ([helper.make_node("ReduceMean", ["image"], ["enhanced"], axes=[2, 3], keepdims=1)], [],
                  "output is 1x3x1x1 for a 1x3x96x64 input"),
    "twice-as-wide": ([helper.make_node("Concat", ["image", "image"], ["enhanced"], axis=3)], [],
                      "output is 1x3x96x128 for a 1x3x96x64 input"),
}


@pytest.mark.parametrize("case", sorted(RESULT_CASES))
def test_wrong_results_fail_the_image_instead_of_being_written(tmp_path, case):
    nodes, initializers, expected = RESULT_CASES[case]
    model = _model(tmp_path / f"{case}.onnx", nodes, initializers=initializers)
    rc, out, err, tb, folder = _enhance(tmp_path, model)
    assert tb is None, tb
    assert rc == 1 and "1 failed" in out, (out, err)
    errors = [line for line in err.splitlines() if line.startswith("lumicap: error:")]
    assert len(errors) == 1 and expected in errors[0] and f"{case}.onnx" in errors[0], err
    assert not list(folder.glob("*.png"))  # nothing written for it


# Models whose declared signature is not an image enhancer's: refused when loaded, in one line.
def _cast(to):
    return [helper.make_node("Cast", ["image"], ["enhanced"], to=to)]


SIGNATURE_CASES = {
    "int64-output": (dict(nodes=_cast(TensorProto.INT64), out_type=TensorProto.INT64), "int64"),
    "one-channel-input": (dict(nodes=[helper.make_node("Identity", ["image"], ["enhanced"])],
                               in_shape=["batch", 1, "height", "width"], out_shape=["batch", 1, "height", "width"]),
                          "1 channel(s)"),
    "one-channel-output": (dict(nodes=[helper.make_node("ReduceMean", ["image"], ["enhanced"], axes=[1], keepdims=1)],
                                out_shape=["batch", 1, "height", "width"]), "1 channel(s)"),
    "fixed-size": (dict(nodes=[helper.make_node("Identity", ["image"], ["enhanced"])], in_shape=[1, 3, 64, 64],
                        out_shape=[1, 3, 64, 64]), "fixed height or width"),
    "two-outputs": (dict(nodes=[helper.make_node("Identity", ["image"], ["enhanced"]),
                                helper.make_node("Identity", ["image"], ["extra"])],
                         extra_outputs=[helper.make_tensor_value_info("extra", TensorProto.FLOAT, DYNAMIC)]),
                    "returns 2 output(s)"),
    "flat-output": (dict(nodes=[helper.make_node("Flatten", ["image"], ["enhanced"])], out_shape=["batch", "n"]),
                    "is not a (batch, channels, height, width) image"),
}


@pytest.mark.parametrize("case", sorted(SIGNATURE_CASES))
def test_models_that_are_not_enhancers_are_refused_when_loaded(tmp_path, case):
    spec, expected = SIGNATURE_CASES[case]
    model = _model(tmp_path / f"{case}.onnx", **spec)
    rc, out, err, tb, folder = _enhance(tmp_path, model)
    line = assert_one_line_error(rc, out, err, tb, f"{case}.onnx", "not an image enhancer", expected)
    assert "Traceback" not in line and not folder.exists()


@pytest.mark.parametrize("case", ["one-channel-input", "int64-output"])
def test_serve_refuses_them_before_it_listens(tmp_path, case):
    pytest.importorskip("starlette")
    from lumicap.errors import LumicapError
    from lumicap.serve.jobs import ModelMenu

    spec, expected = SIGNATURE_CASES[case]
    model = _model(tmp_path / f"{case}.onnx", **spec)
    with pytest.raises(LumicapError, match=re.escape(expected)):
        ModelMenu.build([str(model)], None, "cpu")


def test_a_proper_model_still_runs(tmp_path):
    """An identity-like enhancer (x * 0.5 + 0.25) that declares the right signature is written as usual."""
    nodes = [helper.make_node("Mul", ["image", "half"], ["scaled"]), helper.make_node("Add", ["scaled", "quarter"], ["enhanced"])]
    model = _model(tmp_path / "ok.onnx", nodes, initializers=[_scalar("half", 0.5), _scalar("quarter", 0.25)])
    rc, out, err, tb, folder = _enhance(tmp_path, model)
    assert tb is None and rc == 0, err
    written = np.asarray(Image.open(folder / "a.png")).astype(float)
    source = np.asarray(Image.open(tmp_path / "in" / "a.png")).astype(float)
    assert np.abs(written - np.round(source * 0.5 + 0.25 * 255)).max() <= 1
