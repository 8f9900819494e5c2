"""The networks compute what the official code computes, reading the official checkpoint formats.

Oracle: ``../shared/golden/`` (see its README): for each baseline with official code, a checkpoint saved by
that code's own saving path (BasicSR ``params``, ``DataParallel`` ``module.`` keys, ``epoch/state_dict/
optimizer`` dicts, TensorFlow savers) with random weights, fixed inputs and the outputs the official model
computed. Every case goes through ``load_inference_model(name, weights=FILE, overrides=case overrides)``,
the same crop the official test script makes (UHDFour: top-left to a multiple of 8), and must match
``output.npy`` within 1e-5. The full-size ``manifest.json`` of each published configuration (keys, shapes,
tied keys, buffers) must map onto lumicap's default model completely. Skips where ``../shared`` is absent.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from lumicap.errors import WeightsError
from lumicap.inference import load_inference_model
from lumicap.models import build_model
from lumicap.models.official import convert, fit_problems, fit_to_model, official_format

GOLDEN = Path(__file__).resolve().parents[2] / "shared" / "golden"
TOLERANCE = 1e-5
MODELS_WITH_CASES = ("retinexformer", "iat", "llformer", "uhdfour", "mirnet", "retinexnet")
MANIFEST_MODELS = MODELS_WITH_CASES[:-1] + ("snr_aware",)


def _cases() -> list[Path]:
    return sorted(GOLDEN.glob("*/*/case.json")) if GOLDEN.is_dir() else []


def _need_golden() -> None:
    if not (GOLDEN / "README.md").is_file():
        pytest.skip(f"golden vectors of the official implementations not found at {GOLDEN} (development machines only)")


def _need_tensorflow() -> None:
    pytest.importorskip("tensorflow", reason="reading RetinexNet's TensorFlow checkpoint needs pip install -e '.[tf]'")


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the official outputs were computed single-threaded
    yield
    torch.set_num_threads(threads)


def _load_case(case_file: Path):
    case = json.loads(case_file.read_text())
    checkpoint = case["checkpoint"]
    weights = case_file.parent / (checkpoint.get("file") or checkpoint["dir"])
    model = load_inference_model(case["lumicap"]["build_model"], "cpu", weights=weights,
                                 overrides=case["lumicap"]["overrides"])
    return case, model


def _official_crop(case: dict, x: torch.Tensor) -> torch.Tensor:
    """The pre-processing of the official test script that changes the output's size (UHDFour's loader
    crops the image top-left to a multiple of 8); the padding ones happen inside lumicap's models."""
    if case["preprocessing"]["kind"].startswith("crop top-left to a multiple of 8"):
        h, w = x.shape[-2:]
        return x[..., : h // 8 * 8, : w // 8 * 8]
    return x


def test_every_model_with_official_code_has_golden_cases():
    _need_golden()
    found = {p.parent.parent.name for p in _cases()}
    assert found == set(MODELS_WITH_CASES), found
    assert (GOLDEN / "snr_aware" / "manifest.json").is_file()  # no small official configuration: manifest only


@pytest.mark.parametrize("case_file", _cases(), ids=[f"{p.parent.parent.name}-{p.parent.name}" for p in _cases()])
def test_golden_case_matches_the_official_output(case_file):
    _need_golden()
    if case_file.parent.parent.name == "retinexnet":
        _need_tensorflow()
    case, model = _load_case(case_file)
    x = _official_crop(case, torch.from_numpy(np.load(case_file.parent / "input.npy")))
    expected = np.load(case_file.parent / "output.npy")
    with torch.no_grad():
        outputs = model.module.training_outputs(x) if hasattr(model.module, "training_outputs") else {}
        y = outputs["output"] if outputs else model(x)
    assert tuple(y.shape) == tuple(case["output"]["shape"])
    diff = float(np.abs(y.numpy() - expected).max())
    assert diff <= TOLERANCE, f"max abs difference {diff:.2e} from the official output"
    aux_file = case_file.parent / "aux.npz"
    if aux_file.is_file() and outputs:  # RetinexNet's decomposition, UHDFour's low-resolution output
        aux = np.load(aux_file)
        names = {"output_lowres": "output_lowres"}
        for name in aux.files:
            ours = outputs.get(names.get(name, name))
            if ours is not None:
                assert float(np.abs(ours.numpy() - aux[name]).max()) <= TOLERANCE, name


def test_official_keys_left_out_are_named(capsys):
    """LLFormer's unused parameters are reported in one line (and recorded), not silently dropped."""
    _need_golden()
    case = GOLDEN / "llformer" / "64x64" / "case.json"
    _, model = _load_case(case)
    assert model.note is not None and "\n" not in model.note
    assert "coefficient" in model.note and "never uses" in model.note
    assert sorted(model.metadata["official_keys_left_out"]) == ["coefficient", "skip_2_1.weight"]


def test_without_overrides_a_small_checkpoint_is_one_line_with_the_hint():
    _need_golden()
    with pytest.raises(WeightsError) as info:
        load_inference_model("retinexformer", "cpu", weights=GOLDEN / "retinexformer" / "weights.pth")
    message = str(info.value)
    assert "\n" not in message and "shape mismatches" in message and "overrides" in message


def test_a_file_of_another_model_is_refused_in_one_line():
    _need_golden()
    with pytest.raises(WeightsError) as info:
        load_inference_model("llformer", "cpu", weights=GOLDEN / "mirnet" / "weights.pth")
    assert "\n" not in str(info.value) and "weights do not fit model 'llformer'" in str(info.value)


def test_mirnet_tied_tensors_must_agree(tmp_path):
    """Keys that are one tensor in the official model but differ in the file cannot come from it."""
    _need_golden()
    raw = torch.load(GOLDEN / "mirnet" / "weights.pth", map_location="cpu", weights_only=True)
    state = {k: v.clone() for k, v in raw["state_dict"].items()}
    key = "module.body.0.body.0.blocks.0.1.body.0.weight"  # column 1 of stream 0: the column-0 DAU again
    state[key] += 1.0
    torch.save({**raw, "state_dict": state}, tmp_path / "tampered.pth")
    case = json.loads((GOLDEN / "mirnet" / "64x64" / "case.json").read_text())
    with pytest.raises(WeightsError) as info:
        load_inference_model("mirnet", "cpu", weights=tmp_path / "tampered.pth", overrides=case["lumicap"]["overrides"])
    assert "differ" in str(info.value) and key.removeprefix("module.") in str(info.value)


# ------------------------------------------------------------------------------- full-size key manifests


def _meta_state(manifest: dict) -> dict[str, torch.Tensor]:
    """The published checkpoint's keys as shape-only tensors; keys the official model ties share one."""
    dtypes = {"float32": torch.float32, "int64": torch.int64}
    state: dict[str, torch.Tensor] = {}
    for entry in manifest["state_dict"]["keys"]:
        alias = entry.get("same_tensor_as")
        state[entry["key"]] = state[alias] if alias else torch.empty(entry["shape"], dtype=dtypes[entry["dtype"]],
                                                                    device="meta")
    return state


@pytest.mark.parametrize("name", MANIFEST_MODELS)
def test_full_size_manifest_maps_completely(name):
    _need_golden()
    manifest = json.loads((GOLDEN / name / "manifest.json").read_text())
    with torch.device("meta"):
        model = build_model(name)  # lumicap's defaults are the published configuration
    state = _meta_state(manifest)
    conversion = convert(official_format(name), state, model)
    fitted = fit_to_model(conversion.state, model)
    missing, unexpected, mismatched = fit_problems(fitted, model.state_dict())
    assert not conversion.unknown, conversion.unknown[:5]
    assert not missing and not unexpected and not mismatched, (missing[:3], unexpected[:3], mismatched[:3])
    left_out = {k for keys in conversion.ignored.values() for k in keys}
    prefix = manifest["published_checkpoint"].get("key_prefix_in_file", "")
    if name == "mirnet":  # exactly the persistent blur buffers
        assert left_out == {k.removeprefix(prefix) for k in manifest["buffers"]["persistent"]}
    elif name == "llformer":
        assert left_out == {"coefficient", "skip_2_1.weight"}
    elif name == "uhdfour":  # every block's two never-called 3x3 convs
        assert left_out and all(".frequency_spatial." in k or ".spatial_frequency." in k for k in left_out)
    else:
        assert not left_out


def test_retinexnet_graph_and_published_variables_map_as_the_official_savers_restore():
    """The released graph's 32 variables map completely; of the published files exactly what the official
    savers restore is used (DecomNet/* from Decom, RelightNet/* from Relight), the rest is named."""
    _need_golden()
    manifest = json.loads((GOLDEN / "retinexnet" / "manifest.json").read_text())
    with torch.device("meta"):
        model = build_model("retinexnet")
    fmt = official_format("retinexnet")

    def meta(variables, prefix=""):
        return {prefix + v["name"]: torch.empty(v["shape"], device="meta") for v in variables}

    graph = convert(fmt, meta(manifest["official_graph_variables"]["trainable"]), model)
    assert not graph.unknown and not graph.ignored
    assert not any(fit_problems(fit_to_model(graph.state, model), model.state_dict()))

    published = manifest["published_checkpoint"]
    state = {**meta(published["Decom"]["variables"], "Decom/"), **meta(published["Relight"]["variables"], "Relight/")}
    conversion = convert(fmt, state, model)
    assert not conversion.unknown
    assert not any(fit_problems(fit_to_model(conversion.state, model), model.state_dict()))
    used = set(state) - set(conversion.ignored_keys)
    restored = {f"Decom/{k}" for k in published["Decom"]["restored_by_official_saver"]}
    restored |= {f"Relight/{k}" for k in published["Relight"]["restored_by_official_saver"]}
    assert used == restored


def test_tensorflow_checkpoint_files_apart_read_as_the_folder(tmp_path):
    """The download cache keeps each file of a TF checkpoint in its own folder (retinexnet-lol-v1-official):
    read from there, the variables are those of the checkpoint folder itself."""
    _need_golden()
    _need_tensorflow()
    from lumicap.models.official.tf_checkpoint import read_tf_checkpoint, read_tf_checkpoint_files

    model_dir = GOLDEN / "retinexnet" / "model"
    parts = {}
    for folder in ("Decom", "Relight"):
        index = tmp_path / f"{folder}-index" / "RetinexNet-tensorflow.index"
        data = tmp_path / f"{folder}-data" / "RetinexNet-tensorflow.data-00000-of-00001"
        for source, target in ((model_dir / folder / index.name, index), (model_dir / folder / data.name, data)):
            target.parent.mkdir()
            target.write_bytes(source.read_bytes())
        parts[folder] = (index, data)
    apart, together = read_tf_checkpoint_files(parts), read_tf_checkpoint(model_dir)
    assert sorted(apart) == sorted(together) and len(together) == 28
    assert all(torch.equal(apart[k], together[k]) for k in together)


def test_training_starts_from_an_official_checkpoint():
    """model.init_weights takes the official file as it is: the model then computes the official output."""
    _need_golden()
    from lumicap.engine.train import load_init_weights

    case_file = GOLDEN / "llformer" / "67x101" / "case.json"
    case = json.loads(case_file.read_text())
    model = build_model("llformer", **case["lumicap"]["overrides"])
    note = load_init_weights(model, str(GOLDEN / "llformer" / "weights.pth"), "llformer")
    assert note and "coefficient" in note
    with torch.no_grad():
        y = model.eval()(torch.from_numpy(np.load(case_file.parent / "input.npy")))
    assert float(np.abs(y.numpy() - np.load(case_file.parent / "output.npy")).max()) <= TOLERANCE
