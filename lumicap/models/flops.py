"""Multiply-accumulate (MAC) counting with ``torch.utils.flop_counter.FlopCounterMode``.

Convention: ``FlopCounterMode`` counts 2 FLOPs per multiply-add of matrix products and convolutions
(``mm``, ``bmm``, ``addmm``, convolutions incl. transposed, scaled-dot-product attention); MACs = FLOPs / 2.
The count is of each network's plain forward (``lumicap.models.common.plain_forward``): inference-only fast
paths, such as IAT's chunked in-place tail whose in-place products FlopCounterMode would not see, are switched
off, so one architecture has one count whatever the grad mode or device. Element-wise ops, normalisation,
pooling, interpolation, softmax and FFTs are NOT counted. Papers in this field mostly publish "FLOPs" that
are really MACs from a profiler (fvcore / thop / ptflops count one multiply-add as one op), and fvcore
additionally counts a few element-wise ops (norms, upsampling), so a published figure can sit a little above
ours; some also divide by 2**30 instead of 1e9.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["count_macs", "model_macs"]


def count_macs(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """MACs of one ``model(x)`` forward with ``x`` of ``input_shape`` on the model's device.

    A model built on the ``meta`` device is counted without any arithmetic (shapes only), which makes
    large inputs cheap on a CPU.
    """
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    x = torch.rand(input_shape, device=device) if device.type != "meta" else torch.empty(input_shape, device=device)
    from lumicap.models.common import plain_forward

    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), plain_forward(), FlopCounterMode(display=False) as counter:
            model(x)
    finally:
        model.train(was_training)
    return counter.get_total_flops() // 2


def model_macs(name: str, height: int, width: int, **overrides) -> int:
    """MACs of registered model ``name`` on a 1x3xHxW input: on the meta device when the model's forward
    allows it (no data-dependent Python control flow), else with real CPU tensors."""
    from lumicap.models.registry import build_model

    try:
        with torch.device("meta"):
            model = build_model(name, **overrides)
        return count_macs(model, (1, 3, height, width))
    except (NotImplementedError, RuntimeError):
        model = build_model(name, **overrides)
        return count_macs(model, (1, 3, height, width))
