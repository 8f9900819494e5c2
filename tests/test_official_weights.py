"""Official checkpoints load wherever lumicap takes weights, `lumicap convert` writes inference models from
them, RetinexNet pads as TensorFlow does, initialisations follow the official code, and the catalogue names
work as models. Tiny random models saved in the official containers; no network (downloads are patched
to fail as offline). The oracle tests against the official code's outputs are in test_official_golden.py.
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from _reliability_support import assert_one_line_error, truncate, write_code_pickle
from lumicap.errors import WeightsError
from lumicap.inference import load_inference_model
from lumicap.models import build_model
from reliability.fuzzrun import run_cli

SMALL_RETINEXFORMER = {"n_feat": 8, "stage": 1, "num_blocks": [1, 1, 1]}


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _retinexformer(seed: int = 0):
    torch.manual_seed(seed)
    return build_model("retinexformer", **SMALL_RETINEXFORMER).eval()


def _same_output(a, b, x) -> bool:
    with torch.no_grad():
        return torch.equal(a(x), b(x))


X = torch.rand(1, 3, 20, 28, generator=torch.Generator().manual_seed(1))


# ------------------------------------------------------------------------------------------ containers


@pytest.mark.parametrize("container", ["basicsr", "basicsr-ema-too", "dataparallel", "epoch-state-optimizer"])
def test_official_containers_load_by_content(tmp_path, container):
    net = _retinexformer()
    state = net.state_dict()
    if container == "basicsr":
        payload = {"params": state}
    elif container == "basicsr-ema-too":  # the official test script loads "params", so does lumicap
        payload = {"params": state, "params_ema": _retinexformer(seed=5).state_dict()}
    elif container == "dataparallel":
        payload = {f"module.{k}": v for k, v in state.items()}
    else:
        optimizer = torch.optim.Adam(net.parameters(), lr=1e-4)
        payload = {"epoch": 7, "state_dict": state, "optimizer": optimizer.state_dict()}
    torch.save(payload, tmp_path / "official.pth")
    loaded = load_inference_model("retinexformer", "cpu", weights=tmp_path / "official.pth",
                                  overrides=SMALL_RETINEXFORMER)
    assert loaded.metadata["overrides"] == SMALL_RETINEXFORMER
    assert _same_output(loaded, net, X)


def test_equal_layouts_of_a_tensor_are_reshaped(tmp_path):
    """A 1x1 conv's (out, in, 1, 1) and a linear layer's (out, in) hold the same map: a file in either form
    loads, so a key map survives a layer changing between them."""
    net = _retinexformer()
    state = net.state_dict()
    one_by_one = [k for k, v in state.items() if v.dim() == 4 and v.shape[-2:] == (1, 1)]
    assert one_by_one
    state = {k: v.flatten(1) if k in one_by_one else v for k, v in state.items()}
    torch.save(state, tmp_path / "linear-layout.pth")
    loaded = load_inference_model("retinexformer", "cpu", weights=tmp_path / "linear-layout.pth",
                                  overrides=SMALL_RETINEXFORMER)
    assert _same_output(loaded, net, X)


def test_an_official_file_missing_a_tensor_is_one_line(tmp_path):
    state = _retinexformer().state_dict()
    state.pop(sorted(state)[3])
    torch.save({"params": state}, tmp_path / "short.pth")
    with pytest.raises(WeightsError) as info:
        load_inference_model("retinexformer", "cpu", weights=tmp_path / "short.pth", overrides=SMALL_RETINEXFORMER)
    assert "\n" not in str(info.value) and "1 missing keys" in str(info.value)


# ------------------------------------------------------------------------------------------ lumicap convert


def _official_retinexformer_file(tmp_path: Path) -> tuple[Path, torch.nn.Module]:
    net = _retinexformer()
    path = tmp_path / "LOL_v1.pth"
    torch.save({"params": net.state_dict()}, path)
    return path, net


OVERRIDE_ARGS = ["--override", "n_feat=8", "--override", "stage=1", "--override", "num_blocks=[1, 1, 1]"]


def test_convert_writes_an_inference_model_with_its_source_recorded(tmp_path):
    source, net = _official_retinexformer_file(tmp_path)
    out = tmp_path / "out" / "retinexformer-small.safetensors"
    rc, stdout, stderr, tb = run_cli(["convert", "retinexformer", str(source), "--out", str(out), *OVERRIDE_ARGS])
    assert tb is None and rc == 0, stderr
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert sidecar["model"] == "retinexformer" and sidecar["overrides"] == SMALL_RETINEXFORMER
    assert sidecar["source_file"] == "LOL_v1.pth"
    assert sidecar["source_sha256"] == hashlib.sha256(source.read_bytes()).hexdigest()
    assert _same_output(load_inference_model(out, "cpu"), net, X)

    # and the result is an ordinary --model for enhance
    from PIL import Image

    photos = tmp_path / "photos"
    photos.mkdir()
    Image.new("RGB", (21, 13), (30, 20, 10)).save(photos / "dark.png")
    rc, stdout, stderr, tb = run_cli(["enhance", str(photos), "--out", str(tmp_path / "enhanced"), "--model", str(out),
                                      "--no-progress"])
    assert tb is None and rc == 0, stderr
    assert (tmp_path / "enhanced" / "dark.png").is_file()

    # existing outputs are not replaced without --overwrite
    before = out.read_bytes()
    assert_one_line_error(*run_cli(["convert", "retinexformer", str(source), "--out", str(out), *OVERRIDE_ARGS]),
                          "already exists")
    assert out.read_bytes() == before


@pytest.mark.parametrize("damage", ["wrong-model", "truncated", "code-pickle"])
def test_convert_refuses_bad_files_in_one_line_and_writes_nothing(tmp_path, damage):
    source, _ = _official_retinexformer_file(tmp_path)
    marker = tmp_path / "ran"
    expected = str(source)
    if damage == "wrong-model":
        torch.manual_seed(0)
        torch.save(build_model("iat").state_dict(), source)  # an IAT file given as Retinexformer
        expected = "weights do not fit model 'retinexformer'"
    elif damage == "truncated":
        truncate(source, 0.5)
    else:
        write_code_pickle(source, marker)
    out = tmp_path / "out" / "converted.safetensors"
    assert_one_line_error(*run_cli(["convert", "retinexformer", str(source), "--out", str(out), *OVERRIDE_ARGS]),
                          expected)
    assert not marker.exists()
    assert not out.parent.exists() or not any(out.parent.iterdir())


def test_enhance_takes_an_official_file_with_weights(tmp_path):
    """`lumicap enhance --model NAME --weights FILE` with an official container (IAT: the published size)."""
    from PIL import Image

    torch.manual_seed(3)
    iat = build_model("iat").eval()
    torch.save(iat.state_dict(), tmp_path / "best_Epoch_lol_v1.pth")
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.new("RGB", (19, 11), (40, 30, 20)).save(photos / "dark.png")
    rc, stdout, stderr, tb = run_cli(["enhance", str(photos), "--out", str(tmp_path / "out"), "--model", "iat",
                                      "--weights", str(tmp_path / "best_Epoch_lol_v1.pth"), "--no-progress"])
    assert tb is None and rc == 0, stderr
    assert (tmp_path / "out" / "dark.png").is_file()


# ------------------------------------------------------------------------------------------ catalogue


def test_official_names_are_listed_and_work_as_models():
    from lumicap.weights import known_weights
    from lumicap.weights.catalogue import OFFICIAL_MODELS

    models = {entry.model for entry in OFFICIAL_MODELS.values()}
    assert models == {"retinexformer", "iat", "snr_aware", "retinexnet", "llformer", "uhdfour", "mirnet"}
    files = known_weights()
    for entry in OFFICIAL_MODELS.values():
        assert all(name in files for name in entry.files)
    rc, stdout, _, tb = run_cli(["weights", "list"])
    assert tb is None and rc == 0
    listed = {line.split()[0] for line in stdout.splitlines() if line.strip()}
    assert set(OFFICIAL_MODELS) <= listed  # each official name is a set (its file(s) listed above it)
    retinexnet = next(line for line in stdout.splitlines() if line.startswith("retinexnet-lol-v1-official "))
    assert all(f in retinexnet for f in OFFICIAL_MODELS["retinexnet-lol-v1-official"].files)


def test_offline_official_name_says_where_to_download_and_where_to_put(tmp_path, monkeypatch):
    monkeypatch.setenv("LUMICAP_OFFLINE", "1")
    monkeypatch.setenv("LUMICAP_CACHE", str(tmp_path / "cache"))
    with pytest.raises(WeightsError) as info:
        load_inference_model("retinexformer-lol-v1-official", "cpu")
    message = str(info.value)
    assert "\n" not in message
    assert "drive.google.com" in message and "LOL_v1.pth" in message
    assert str(tmp_path / "cache" / "retinexformer-lol-v1-official" / "LOL_v1.pth") in message
    with pytest.raises(WeightsError) as info:  # RetinexNet: all four TF files named in the one line
        load_inference_model("retinexnet-lol-v1-official", "cpu")
    message = str(info.value)
    assert "\n" not in message and "4 weight files" in message
    assert "lumicap weights download retinexnet-lol-v1-official" in message


def test_official_name_loads_from_the_cache_and_checks_the_pinned_sha256(tmp_path, monkeypatch):
    """A cached file under an official name is used as that model; one that is not the published file
    (sha256 pinned from the authors' repository) is refused, not loaded."""
    monkeypatch.setenv("LUMICAP_CACHE", str(tmp_path / "cache"))
    target = tmp_path / "cache" / "iat-lol-v1-official" / "best_Epoch_lol_v1.pth"
    target.parent.mkdir(parents=True)
    torch.save(build_model("iat").state_dict(), target)
    with pytest.raises(WeightsError) as info:
        load_inference_model("iat-lol-v1-official", "cpu")
    assert "does not match" in str(info.value) and "\n" not in str(info.value)


def test_training_preflight_accepts_official_files_and_names(tmp_path, monkeypatch):
    """model.init_weights is checked before a run starts through the same loader the trainer uses: an
    official container passes, an official name that is not cached (offline) is one problem line."""
    from lumicap.engine.preflight import _check_init_weights

    source, _ = _official_retinexformer_file(tmp_path)
    problems: list[str] = []
    _check_init_weights(str(source), "retinexformer", build_model("retinexformer", **SMALL_RETINEXFORMER), problems)
    assert problems == []

    monkeypatch.setenv("LUMICAP_OFFLINE", "1")
    monkeypatch.setenv("LUMICAP_CACHE", str(tmp_path / "cache"))
    _check_init_weights("iat-lol-v1-official", "iat", build_model("iat"), problems)
    assert len(problems) == 1 and "\n" not in problems[0]
    assert problems[0].startswith("model.init_weights: ") and "best_Epoch_lol_v1.pth" in problems[0]


# ------------------------------------------------------------------------------------------ RetinexNet


@pytest.mark.parametrize("size", [6, 7])
def test_retinexnet_stride2_convs_pad_like_tensorflow_same(size):
    """TF 'SAME' at stride 2 with a 3x3 kernel: an even side is padded 0 before and 1 after (a symmetric
    padding=1 would shift every output by a pixel), an odd side 1 and 1."""
    from lumicap.models.retinexnet import SameStrideConv2d

    conv = SameStrideConv2d(1, 1, 3, stride=2)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[0, 0, 0, 0] = 1.0  # picks the padded input's top-left tap
        conv.bias.zero_()
    x = torch.arange(size * size, dtype=torch.float32).view(1, 1, size, size) + 1
    y = conv(x)
    n = math.ceil(size / 2)
    assert y.shape[-2:] == (n, n)
    before = 0 if size % 2 == 0 else 1
    padded = F.pad(x, (before, 3 - before, before, 3 - before))  # generous bottom/right: only taps used matter
    assert torch.equal(y[0, 0], padded[0, 0, 0 : 2 * n : 2, 0 : 2 * n : 2])


def test_retinexnet_stride2_convs_equal_tensorflow():
    tf = pytest.importorskip("tensorflow", reason="comparing with TensorFlow's conv2d needs pip install -e '.[tf]'")
    from lumicap.models.retinexnet import SameStrideConv2d

    torch.manual_seed(0)
    conv = SameStrideConv2d(4, 5, 3, stride=2)
    for h, w in ((8, 10), (9, 7)):
        x = torch.rand(1, 4, h, w)
        kernel = conv.weight.detach().permute(2, 3, 1, 0).numpy()
        expected = tf.nn.conv2d(x.permute(0, 2, 3, 1).numpy(), kernel, strides=2, padding="SAME")
        expected = expected + conv.bias.detach().numpy()
        with torch.no_grad():
            ours = conv(x).permute(0, 2, 3, 1).numpy()
        assert abs(ours - expected.numpy()).max() < 1e-5


def _write_tf_checkpoint(tf, folder: Path, variables: dict) -> None:
    """A V2 checkpoint bundle as tf.compat.v1.train.Saver writes it (plus its 'checkpoint' file)."""
    folder.mkdir(parents=True)
    prefix = folder / "RetinexNet-tensorflow"
    names = sorted(variables)
    tf.raw_ops.SaveV2(prefix=str(prefix), tensor_names=names, shape_and_slices=[""] * len(names),
                      tensors=[tf.constant(variables[n]) for n in names])
    (folder / "checkpoint").write_text(
        'model_checkpoint_path: "RetinexNet-tensorflow"\nall_model_checkpoint_paths: "RetinexNet-tensorflow"\n'
    )


def _official_relight(tf, r, i, v):
    """The official RelightNet graph (weichen582/RetinexNet model.py), written with tf.nn ops (NHWC)."""
    def conv(x, name, stride=1, relu=False):
        y = tf.nn.conv2d(x, v[f"RelightNet/{name}/kernel"], strides=stride, padding="SAME")
        y = y + v[f"RelightNet/{name}/bias"]
        return tf.nn.relu(y) if relu else y

    def resize(x, like):
        return tf.compat.v1.image.resize_nearest_neighbor(x, tf.shape(like)[1:3])

    conv0 = conv(tf.concat([r, i], 3), "conv2d")
    conv1 = conv(conv0, "conv2d_1", 2, True)
    conv2 = conv(conv1, "conv2d_2", 2, True)
    conv3 = conv(conv2, "conv2d_3", 2, True)
    deconv1 = conv(resize(conv3, conv2), "conv2d_4", relu=True) + conv2
    deconv2 = conv(resize(deconv1, conv1), "conv2d_5", relu=True) + conv1
    deconv3 = conv(resize(deconv2, conv0), "conv2d_6", relu=True) + conv0
    gathered = tf.concat([resize(deconv1, deconv3), resize(deconv2, deconv3), deconv3], 3)
    return conv(conv(gathered, "conv2d_7"), "conv2d_8")


def test_retinexnet_tensorflow_checkpoint_in_the_official_layout(tmp_path):
    """model/Decom + model/Relight as the official savers lay them out (with Adam slots and a stale
    DecomNet copy beside, as the published files have): converted, the relight network computes what the
    official graph computes on the same weights."""
    tf = pytest.importorskip("tensorflow", reason="building a TensorFlow checkpoint needs pip install -e '.[tf]'")
    import numpy as np

    rng = np.random.RandomState(0)
    c, layers = 8, 2
    decom = {"DecomNet/shallow_feature_extraction/kernel": (9, 9, 4, c),
             "DecomNet/shallow_feature_extraction/bias": (c,)}
    for n in range(layers):
        decom |= {f"DecomNet/activated_layer_{n}/kernel": (3, 3, c, c), f"DecomNet/activated_layer_{n}/bias": (c,)}
    decom |= {"DecomNet/recon_layer/kernel": (3, 3, c, 4), "DecomNet/recon_layer/bias": (4,)}
    relight = {}
    for n, (k, cin, cout) in enumerate([(3, 4, c)] + [(3, c, c)] * 6 + [(1, 3 * c, c), (3, c, 1)]):
        name = "conv2d" if n == 0 else f"conv2d_{n}"
        relight |= {f"RelightNet/{name}/kernel": (k, k, cin, cout), f"RelightNet/{name}/bias": (cout,)}
    values = {n: rng.normal(0, 0.2, s).astype(np.float32) for n, s in (decom | relight).items()}
    extras = {f"{n}/AdamOptimizer": np.zeros_like(values[n]) for n in relight} | {"beta1_power": np.float32(0.9)}
    stale = {n: np.zeros_like(values[n]) for n in decom}  # the Relight file's own DecomNet: not restored
    _write_tf_checkpoint(tf, tmp_path / "model" / "Decom", {n: values[n] for n in decom})
    _write_tf_checkpoint(tf, tmp_path / "model" / "Relight", {n: values[n] for n in relight} | extras | stale)

    model = load_inference_model("retinexnet", "cpu", weights=tmp_path / "model",
                                 overrides={"channels": c, "decom_layers": layers})
    assert "optimizer variables" in model.note and "DecomNet variables in Relight" in model.note
    x = torch.rand(1, 3, 10, 14, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        out = model.module.training_outputs(x)
    r = out["reflectance"].permute(0, 2, 3, 1).numpy()
    i = out["illumination"].permute(0, 2, 3, 1).numpy()
    expected = _official_relight(tf, r, i, {k: tf.constant(v) for k, v in values.items()}).numpy()
    ours = out["illumination_delta"].permute(0, 2, 3, 1).numpy()
    assert abs(ours - expected).max() < 1e-5


def test_retinexnet_checkpoint_without_tensorflow_names_the_extra(tmp_path, monkeypatch):
    folder = tmp_path / "model" / "Decom"
    folder.mkdir(parents=True)
    (folder / "RetinexNet-tensorflow.index").write_bytes(b"\0" * 16)
    (folder / "RetinexNet-tensorflow.data-00000-of-00001").write_bytes(b"\0" * 16)
    monkeypatch.setitem(sys.modules, "tensorflow", None)  # "import tensorflow" fails as when not installed
    out = tmp_path / "converted.safetensors"
    line = assert_one_line_error(*run_cli(["convert", "retinexnet", str(tmp_path / "model"), "--out", str(out)]),
                                 "lumicap[tf]")
    assert "TensorFlow" in line and not out.exists()


# ------------------------------------------------------------------------------------------ initialisation


def test_initialisations_follow_the_official_code():
    torch.manual_seed(0)
    snr = build_model("snr_aware", n_layers=1, d_inner=64)
    for block in (*snr.feature_extraction, *snr.recon_trunk, *snr.recon_trunk_light):
        for conv in (block.conv1, block.conv2):  # EDVR ResidualBlock_noBN: Kaiming normal x 0.1, zero bias
            fan_in = conv.weight[0].numel()
            assert conv.weight.std().item() == pytest.approx(0.1 * math.sqrt(2 / fan_in), rel=0.1)
            assert not conv.bias.any()

    net = build_model("retinexnet")
    for conv in (m for m in net.modules() if isinstance(m, torch.nn.Conv2d)):  # tf.layers: Glorot uniform
        k = conv.weight[0, 0].numel()
        limit = math.sqrt(6 / (k * (conv.in_channels + conv.out_channels)))
        assert conv.weight.abs().max().item() <= limit
        assert conv.weight.std().item() == pytest.approx(limit / math.sqrt(3), rel=0.15)
        assert not conv.bias.any()

    uhd = build_model("uhdfour")
    for conv in (uhd.lowres_net.merge2, uhd.lowres_net.merge1):  # ConvTranspose2d defaults: fan-in = out side
        bound = 1 / math.sqrt(conv.out_channels)
        assert conv.weight.abs().max().item() <= bound
        assert conv.weight.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.05)


def test_serve_menu_offers_multi_file_official_weights_once(tmp_path, monkeypatch):
    """`lumicap serve` lists cached catalogue weights by model; RetinexNet's four TF files are one entry."""
    pytest.importorskip("starlette", reason="lumicap serve needs the serve extra")
    from lumicap.serve.jobs import _cached_catalog_entries
    from lumicap.weights import cached_path, get_known
    from lumicap.weights.catalogue import OFFICIAL_MODELS

    monkeypatch.setenv("LUMICAP_CACHE", str(tmp_path / "cache"))
    files = OFFICIAL_MODELS["retinexnet-lol-v1-official"].files
    for name in files[:-1]:
        target = cached_path(get_known(name))
        target.parent.mkdir(parents=True)
        target.write_bytes(b"x")
    assert not [e for e in _cached_catalog_entries() if "retinexnet" in e.key]  # one file still missing
    target = cached_path(get_known(files[-1]))
    target.parent.mkdir(parents=True)
    target.write_bytes(b"x")
    entries = [e for e in _cached_catalog_entries() if "retinexnet" in e.key]
    assert [(e.key, e.spec, e.weights) for e in entries] == [
        ("weights:retinexnet-lol-v1-official", "retinexnet", "retinexnet-lol-v1-official")
    ]
