"""MIRNet's official checkpoints (swz30/MIRNet, ``networks/MIRNet_model.py``, ``utils/antialias.py``).

- Container: ``{"epoch", "state_dict", "optimizer"}`` (``train_denoising.py``, used for enhancement too);
  the model is wrapped in ``nn.DataParallel`` on the two-GPU config, so keys start with ``module.``
  (``utils/model_utils.py`` ``load_checkpoint`` accepts both forms, as lumicap does).
- Names: ``body.G`` (RRG) -> ``groups.G``; its ``body.M`` (MSRB) -> ``blocks.M`` and its last ``body.N``
  conv -> ``conv``. Inside an MSRB: ``blocks.J.I`` (stream J, column I; the columns are one module) ->
  ``dau.J``, with ``SA.spatial.conv``, ``CA.conv_du.0/2``, ``conv1x1`` -> ``spatial_attention.conv``,
  ``channel_attention.excite.0/2``, ``merge``; ``down.{C}_{S}`` / ``up.{C}_{S}`` (a C-channel stream
  resized by S) -> ``resample.{K}_{J}`` (stream K to stream J); ``last_up.{K}`` ->
  ``to_full_resolution.{K-1}``; ``top``/``bot`` -> ``conv_path``/``skip_path`` (``skip_conv`` upwards);
  ``selective_kernel.J.conv_du``/``fcs`` -> ``fuse.J.squeeze``/``select``.
- Tied tensors: every DAU's PReLU is one default-argument instance in the official code, so all
  ``blocks.*.body.1.weight`` keys are one tensor (``dau_activation.weight`` here), and a stream's
  columns share their DAU; the file lists each shared tensor under every name (they must agree).
- Left out: the 48 ``filt`` buffers of the anti-aliasing downsamplers: fixed [1, 2, 1] x [1, 2, 1] / 16
  blur kernels that lumicap builds itself; they are checked to be exactly that kernel.
- Published LOL checkpoint: ``model_lol.pth`` (lumicap's defaults), 797 keys, 654 distinct tensors.
"""

from __future__ import annotations

import math

import torch

from lumicap.errors import WeightsError
from lumicap.models.official import OfficialFormat, Rule, ignore

_MSRB = r"body\.(?P<g>\d+)\.body\.(?P<m>\d+)\."
_LEAF = r"(?P<leaf>weight|bias)"


def _block(m) -> str:
    return f"groups.{m['g']}.blocks.{m['m']}."


def _stream(channels: int, model) -> int:
    """Stream index of a ``channels``-wide feature: stream k is n_feat * 2**k wide."""
    return int(round(math.log2(channels / model.conv_in.weight.shape[0])))


def _resample(m, model) -> str:
    source = _stream(int(m["c"]), model)
    steps = int(round(math.log2(int(m["s"]))))
    target = source + steps if m["dir"] == "down" else source - steps
    return f"{_block(m)}resample.{source}_{target}.{m['step']}."


def _path(m, upward: bool) -> str:
    if m["half"] == "top":
        return f"conv_path.{m['idx']}.{m['leaf']}"
    return f"skip_conv.{m['leaf']}" if upward else f"skip_path.{m['idx']}.{m['leaf']}"


_RESIZE = r"(?P<half>top|bot)\.(?P<idx>\d+)\." + _LEAF

_DAU_PARTS = {"SA.spatial.conv": "spatial_attention.conv", "CA.conv_du": "channel_attention.excite", "conv1x1": "merge"}


def _check_blur_filters(state: dict[str, torch.Tensor]) -> None:
    taps = torch.tensor([1.0, 2.0, 1.0])
    kernel = torch.outer(taps, taps) / 16.0
    for key, value in state.items():
        if key.endswith(".filt") and not value.is_meta:  # a meta tensor describes a shape, not values
            if value.dim() != 4 or tuple(value.shape[1:]) != (1, 3, 3) or not torch.allclose(
                value.float(), kernel.expand_as(value), atol=1e-7
            ):
                raise WeightsError(f"{key}: not the fixed 3x3 binomial blur kernel the official MIRNet builds")


FORMAT = OfficialFormat(
    model="mirnet",
    description="official MIRNet checkpoint (swz30/MIRNet, networks/MIRNet_model.py)",
    rules=(
        ignore(_MSRB + r"(down|up|last_up)\..+\.filt", "fixed blur-kernel buffers (checked; rebuilt by lumicap)"),
        Rule(r"conv_(?P<io>in|out)\." + _LEAF, r"conv_\g<io>.\g<leaf>"),
        Rule(r"body\.(?P<g>\d+)\.body\.(?P<m>\d+)\." + _LEAF, r"groups.\g<g>.conv.\g<leaf>"),
        Rule(_MSRB + r"blocks\.\d+\.\d+\.body\.1\.weight", "dau_activation.weight"),
        Rule(_MSRB + r"blocks\.(?P<j>\d+)\.\d+\.body\.(?P<i>[02])\." + _LEAF,
             lambda m, _: f"{_block(m)}dau.{m['j']}.body.{m['i']}.{m['leaf']}"),
        Rule(_MSRB + r"blocks\.(?P<j>\d+)\.\d+\.(?P<part>SA\.spatial\.conv|CA\.conv_du|conv1x1)(?P<i>\.\d+)?\." + _LEAF,
             lambda m, _: f"{_block(m)}dau.{m['j']}.{_DAU_PARTS[m['part']]}{m['i'] or ''}.{m['leaf']}"),
        Rule(_MSRB + r"(?P<dir>down)\.(?P<c>\d+)_(?P<s>\d+)\.body\.(?P<step>\d+)\." + _RESIZE,
             lambda m, model: _resample(m, model) + _path(m, upward=False)),
        Rule(_MSRB + r"(?P<dir>up)\.(?P<c>\d+)_(?P<s>\d+)\.body\.(?P<step>\d+)\." + _RESIZE,
             lambda m, model: _resample(m, model) + _path(m, upward=True)),
        Rule(_MSRB + r"last_up\.(?P<k>\d+)\.body\.(?P<step>\d+)\." + _RESIZE,
             lambda m, _: f"{_block(m)}to_full_resolution.{int(m['k']) - 1}.{m['step']}." + _path(m, upward=True)),
        Rule(_MSRB + r"conv_out\." + _LEAF, lambda m, _: f"{_block(m)}conv_out.{m['leaf']}"),
        Rule(_MSRB + r"selective_kernel\.(?P<j>\d+)\.conv_du\.(?P<i>\d+)\." + _LEAF,
             lambda m, _: f"{_block(m)}fuse.{m['j']}.squeeze.{m['i']}.{m['leaf']}"),
        Rule(_MSRB + r"selective_kernel\.(?P<j>\d+)\.fcs\.(?P<i>\d+)\." + _LEAF,
             lambda m, _: f"{_block(m)}fuse.{m['j']}.select.{m['i']}.{m['leaf']}"),
    ),
    check=_check_blur_filters,
)
