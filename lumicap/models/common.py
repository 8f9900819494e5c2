"""Pieces shared by several networks: padding to a multiple and back, speed helpers that keep the numbers."""

from __future__ import annotations

import contextlib
import threading

import torch
import torch.nn.functional as F
from torch import nn

_PLAIN = threading.local()


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Pad ``x`` (B,C,H,W) on the bottom/right to a multiple of ``multiple``; returns (padded, (H, W)).

    Reflect padding (as the LLIE test scripts do) keeps image statistics at the border; when the image
    is smaller than the pad, reflection is impossible and replicate padding is used instead.
    """
    h, w = x.shape[-2:]
    pad_h = (multiple - h % multiple) % multiple
    pad_w = (multiple - w % multiple) % multiple
    if pad_h == 0 and pad_w == 0:
        return x, (h, w)
    mode = "reflect" if pad_h < h and pad_w < w else "replicate"
    return F.pad(x, (0, pad_w, 0, pad_h), mode=mode), (h, w)


def crop_to(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return x[..., : size[0], : size[1]]


def eager_inference() -> bool:
    """Whether the inference-only fast paths may run: autograd is off and eager PyTorch executes the
    model. Not while a tracer or compiler records it (ONNX export, ``torch.jit.trace``, ``torch.compile``):
    in-place updates and shape-dependent Python loops do not survive recording, so those get the plain form.
    """
    if torch.is_grad_enabled() or torch.jit.is_tracing() or getattr(_PLAIN, "active", False):
        return False
    compiler = getattr(torch, "compiler", None)
    return not (compiler is not None and hasattr(compiler, "is_compiling") and compiler.is_compiling())


@contextlib.contextmanager
def plain_forward():
    """Within it, networks run their plain form even without autograd (no inference-only fast paths): what
    the architecture computes, written once. MAC counting uses it, so a count does not depend on whether a
    fast path (IAT's chunked in-place tail) was taken, nor on the grad mode it was called in."""
    previous = getattr(_PLAIN, "active", False)
    _PLAIN.active = True
    try:
        yield
    finally:
        _PLAIN.active = previous


class GELUInPlaceWithoutGrad(nn.Module):
    """Exact GELU (as ``nn.GELU()``) that overwrites its input when autograd is off.

    At inference a wide activation map is then not a fresh allocation: on the CPU a large fresh tensor
    costs page faults, more than the GELU itself (``benchmarks/README.md``). Use it only where the input is
    a temporary nobody else reads (e.g. a convolution's output inside ``nn.Sequential``). Otherwise (autograd
    on, tracing) it is ``F.gelu``.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not eager_inference():
            return F.gelu(x)
        return torch.ops.aten.gelu_(x)


def conv_gelu_fused(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor | None:
    """``F.gelu(conv(x))`` (exact GELU) as one oneDNN convolution with the GELU applied as it writes its
    output, or None where that is not available (autograd on, a tracer or compiler recording, not a CPU
    tensor, no oneDNN, a conv with padding other than zeros). The wide activation map is then written once,
    not written and rewritten by a separate GELU: 5-15% less time for Retinexformer's 1x1 and depth-wise
    convs at 600x400 (``benchmarks/README.md``). The same arithmetic as the two ops (within 1.2e-6)."""
    if (
        x.device.type != "cpu"
        or not eager_inference()
        or conv.padding_mode != "zeros"
        or isinstance(conv.padding, str)
        or not _ONEDNN_FUSED_CONV
    ):
        return None
    return torch.ops.mkldnn._convolution_pointwise(
        x, conv.weight, conv.bias, list(conv.padding), list(conv.stride), list(conv.dilation), conv.groups,
        "gelu", [], "none",
    )


# oneDNN's fused convolution + element-wise op (the one Inductor's CPU backend emits); absent from builds
# without oneDNN.
_ONEDNN_FUSED_CONV = torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_convolution_pointwise")


def channels_last_without_grad(x: torch.Tensor) -> torch.Tensor:
    """``x`` in channels-last memory when autograd is off, else unchanged.

    A convolution follows its input's layout, so this switches the convs after it to oneDNN's NHWC kernels,
    much faster on the CPU for 3x3 and depth-wise convs (``benchmarks/README.md``). Only for inference: for
    some networks NHWC backward was slower.
    """
    if not eager_inference():
        return x
    return x.contiguous(memory_format=torch.channels_last)


# When a 1x1 convolution runs as a batched matrix product (PointwiseConv). Measured on the CPU (torch 2.13,
# 2 threads, process CPU time, 2026-12-07; benchmarks/README.md): with autograd, ``torch.baddbmm`` with the
# bias fused took 5-80% less time than oneDNN's convolution for a forward+backward at every width tried
# (12->12: 5x less, 96->96 at 2x64x64: 10 against 17 ms, 576->192: 75 against 101 ms); without autograd it
# is faster up to about 48x48 channels and slower for wider layers.
NARROW_POINTWISE_INFERENCE = 48 * 48


class PointwiseConv(nn.Conv2d):
    """``nn.Conv2d(in_channels, out_channels, 1)`` (same parameters, initialisation and state-dict keys) that
    runs as one batched matrix product over the channels with the bias added in the same call
    (``torch.baddbmm``) where that is faster (see ``NARROW_POINTWISE_INFERENCE``): the same arithmetic summed
    in another order (float rounding, ~1e-7 relative). Inputs that are not contiguous 4-d NCHW tensors (e.g.
    channels-last, which oneDNN's convolution takes as it is) go through the convolution."""

    def __init__(self, in_channels: int, out_channels: int, bias: bool = True):
        super().__init__(in_channels, out_channels, 1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or not x.is_contiguous() or (
            not torch.is_grad_enabled() and self.in_channels * self.out_channels > NARROW_POINTWISE_INFERENCE
        ):
            return super().forward(x)
        b, c, h, w = x.shape
        weight = self.weight.view(1, self.out_channels, c).expand(b, -1, -1)
        pixels = x.view(b, c, h * w)
        if self.bias is None:
            out = torch.bmm(weight, pixels)
        else:
            out = torch.baddbmm(self.bias.view(1, -1, 1).expand(b, -1, h * w), weight, pixels)
        return out.view(b, self.out_channels, h, w)
