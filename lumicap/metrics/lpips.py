"""LPIPS (Zhang et al. 2018), AlexNet trunk with the v0.1 linear heads, written for lumicap.

Distance between two images x0, x1 in [0, 1]:

1. map to [-1, 1], then the v0.1 scaling layer ``(x - shift) / scale`` with shift (-0.030, -0.088, -0.188)
   and scale (0.458, 0.448, 0.450) (ImageNet statistics expressed for [-1, 1] inputs);
2. AlexNet ``features`` (torchvision layout): the ReLU outputs after conv1..conv5 (64, 192, 384, 256,
   256 channels);
3. each feature map is unit-normalised over channels (``f / (||f||_2 + 1e-10)``), the squared
   difference is weighted per channel by a 1x1 convolution without bias (the linear head, (1, C, 1, 1)),
   averaged over space, and the five layers are summed.

Weights come from two real files: torchvision's AlexNet checkpoint (keys ``features.{0,3,6,8,10}.*``;
``classifier.*`` is ignored) and the LPIPS heads file (keys ``lin{0..4}.model.1.weight``; ``model.0`` is
the dropout of the original training code). Both load through ``lumicap.weights`` (cache, sha256,
``weights_only``). Without weights, ``try_load_lpips`` returns the reason instead of a module so that
an evaluation can report "LPIPS unavailable: <reason>" and go on.
"""

from __future__ import annotations

import os

import torch
import torch.nn as nn

from lumicap.errors import WeightsError
from lumicap.metrics._checks import as_batch

ALEXNET_CHANNELS = (64, 192, 384, 256, 256)
# Indices in torchvision's ``AlexNet.features`` of the ReLUs whose outputs LPIPS compares.
_RELU_INDICES = (1, 4, 7, 9, 11)
_CONV_SHAPES = {
    0: (64, 3, 11, 11),
    3: (192, 64, 5, 5),
    6: (384, 192, 3, 3),
    8: (256, 384, 3, 3),
    10: (256, 256, 3, 3),
}
DEFAULT_ALEX_WEIGHTS = "alexnet-torchvision"
DEFAULT_LIN_WEIGHTS = "lpips-alex-v0.1"


class AlexNetFeatures(nn.Module):
    """torchvision's AlexNet ``features`` stack (same indices, so its checkpoint keys load directly)."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(64, 192, kernel_size=5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(192, 384, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv2d(384, 256, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv2d(256, 256, kernel_size=3, padding=1),
            nn.ReLU(),
        )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outputs = []
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in _RELU_INDICES:
                outputs.append(x)
        return outputs


class LinearHead(nn.Module):
    """Per-channel weights of one layer's squared feature difference (a 1x1 conv, no bias).

    ``model.0`` was a dropout in the original training code; keeping the index makes the weight key
    ``model.1.weight``, as in the published files.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.model = nn.Sequential(nn.Identity(), nn.Conv2d(channels, 1, kernel_size=1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class LPIPS(nn.Module):
    """LPIPS distance per image pair: ``forward(pred, gt) -> (B,)`` for inputs in [0, 1] (lower = closer).

    Frozen and in eval mode. Gradients still flow to the inputs, so it also works as a loss.
    """

    def __init__(self):
        super().__init__()
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1), persistent=False)
        self.alexnet = AlexNetFeatures()
        for index, channels in enumerate(ALEXNET_CHANNELS):
            self.add_module(f"lin{index}", LinearHead(channels))
        self.requires_grad_(False)
        self.eval()

    def heads(self) -> list[LinearHead]:
        return [getattr(self, f"lin{index}") for index in range(len(ALEXNET_CHANNELS))]

    def forward(self, pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
        pred, gt = as_batch(pred, gt, "lpips")
        if min(pred.shape[-2:]) < 32:
            raise ValueError(f"lpips: images must be at least 32x32 for AlexNet, got {tuple(pred.shape[-2:])}")
        features = self.alexnet(self._scaled(torch.cat([pred, gt], dim=0)))
        total = 0.0
        for feature, head in zip(features, self.heads()):
            f_pred, f_gt = _unit_normalize(feature).chunk(2, dim=0)
            total = total + head((f_pred - f_gt) ** 2).mean(dim=(-2, -1))
        return total.flatten()

    def _scaled(self, x: torch.Tensor) -> torch.Tensor:
        return (x * 2.0 - 1.0 - self.shift) / self.scale

    def load_alexnet(self, state: dict, source: str) -> None:
        features = {k[len("features."):]: v for k, v in state.items() if k.startswith("features.")}
        expected = {
            f"{i}.{kind}": shape if kind == "weight" else shape[:1]
            for i, shape in _CONV_SHAPES.items()
            for kind in ("weight", "bias")
        }
        _check_keys(features, expected, source, "torchvision AlexNet checkpoint", prefix="features.")
        self.alexnet.features.load_state_dict(features)

    def load_heads(self, state: dict, source: str) -> None:
        expected = {f"lin{i}.model.1.weight": (1, c, 1, 1) for i, c in enumerate(ALEXNET_CHANNELS)}
        heads = {k: v for k, v in state.items() if k in expected}
        _check_keys(heads, expected, source, "LPIPS v0.1 AlexNet head file", prefix="")
        for index, head in enumerate(self.heads()):
            head.model[1].weight.data.copy_(heads[f"lin{index}.model.1.weight"])


def _unit_normalize(feature: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    return feature / (feature.pow(2).sum(dim=1, keepdim=True).sqrt() + eps)


def _check_keys(state: dict, expected: dict, source: str, what: str, prefix: str) -> None:
    missing = [prefix + k for k in expected if k not in state]
    if missing:
        raise WeightsError(
            f"{source}: not a {what}: missing {', '.join(missing[:4])}{' ...' if len(missing) > 4 else ''}"
        )
    for key, shape in expected.items():
        value = state[key]
        if not isinstance(value, torch.Tensor):
            raise WeightsError(f"{source}: {prefix}{key} is a {type(value).__name__}, not a tensor")
        if tuple(value.shape) != tuple(shape):
            raise WeightsError(
                f"{source}: {prefix}{key} has shape {tuple(value.shape)}, expected {tuple(shape)} ({what})"
            )
        if not torch.isfinite(value).all():
            raise WeightsError(f"{source}: {prefix}{key} contains NaN or infinite values")


def load_lpips(
    alex_weights: str | os.PathLike = DEFAULT_ALEX_WEIGHTS,
    lin_weights: str | os.PathLike = DEFAULT_LIN_WEIGHTS,
    *,
    download: bool = True,
) -> LPIPS:
    """Build LPIPS from the two weight files (paths, or known names resolved via cache / download)."""
    from lumicap.weights import ensure_weights, known_weights, load_state_dict, resolve_weights

    # Known names missing from the cache are fetched, or named in one error, together.
    known = [
        os.fspath(w) for w in (alex_weights, lin_weights) if os.fspath(w) in known_weights() and not os.path.exists(w)
    ]
    if known:
        fetch = ["lpips"] if known == [DEFAULT_ALEX_WEIGHTS, DEFAULT_LIN_WEIGHTS] else None
        ensure_weights(known, download=download, needed_by="LPIPS", fetch_names=fetch)
    model = LPIPS()
    alex_path = resolve_weights(alex_weights, download=download)
    model.load_alexnet(load_state_dict(alex_path), str(alex_path))
    lin_path = resolve_weights(lin_weights, download=download)
    model.load_heads(load_state_dict(lin_path), str(lin_path))
    return model


def try_load_lpips(
    alex_weights: str | os.PathLike = DEFAULT_ALEX_WEIGHTS,
    lin_weights: str | os.PathLike = DEFAULT_LIN_WEIGHTS,
    *,
    download: bool = True,
) -> tuple[LPIPS | None, str | None]:
    """``(model, None)``, or ``(None, one-line reason)`` when the weights cannot be had."""
    try:
        return load_lpips(alex_weights, lin_weights, download=download), None
    except WeightsError as exc:
        return None, str(exc)
