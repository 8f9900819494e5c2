"""VGG16/VGG19 feature extractor and perceptual loss, loading torchvision's published ImageNet checkpoints.

torchvision cannot be imported beside this project's torch, so the network is built here with torchvision's
exact layout: ``features`` is one ``nn.Sequential`` of conv3x3 / ReLU / max-pool layers made from the
configurations "D" (VGG16) and "E" (VGG19) of Simonyan & Zisserman, so the checkpoint keys
``features.N.weight`` / ``features.N.bias`` of ``vgg16-397923af.pth`` and ``vgg19-dcbb9e9d.pth`` load as they
are. The ``classifier.*`` keys are ignored (perceptual losses use convolutional features only).

Layers are named as in the literature: ``conv{block}_{i}`` is the convolution output (before its ReLU),
``relu{block}_{i}`` the activation after it, ``pool{block}`` the max-pool. Examples: VGG19 ``conv4_4`` is
``features.25``, VGG16 ``relu3_2`` is ``features.13``.

Weights come through ``lumicap.weights``: a file path, or a known name (``vgg16-torchvision``,
``vgg19-torchvision``) looked up in the cache, whose sha256 must start with the prefix in torchvision's file
name. A file of the wrong architecture fails with one line naming the file and the first mismatched key.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from lumicap.errors import WeightsError

# torchvision's cfgs "D" and "E": output channels of each conv3x3, "M" = 2x2 max-pool.
VGG_CONFIGS: dict[str, list[int | str]] = {
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "vgg19": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}
DEFAULT_WEIGHTS = {"vgg16": "vgg16-torchvision", "vgg19": "vgg19-torchvision"}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _check_arch(arch: str) -> str:
    if arch not in VGG_CONFIGS:
        raise ValueError(f"unknown VGG architecture {arch!r}; choose one of {sorted(VGG_CONFIGS)}")
    return arch


def layer_names(arch: str) -> list[str]:
    """Names of ``features``' modules in order (index i of the list is ``features.i``)."""
    names: list[str] = []
    block, conv = 1, 0
    for value in VGG_CONFIGS[_check_arch(arch)]:
        if value == "M":
            names.append(f"pool{block}")
            block, conv = block + 1, 0
        else:
            conv += 1
            names += [f"conv{block}_{conv}", f"relu{block}_{conv}"]
    return names


def layer_index(arch: str, layer: str | int) -> int:
    """Index in ``features`` of a named layer (``"relu3_2"``) or a plain index."""
    names = layer_names(arch)
    if isinstance(layer, int):
        if not 0 <= layer < len(names):
            raise ValueError(f"{arch} has features.0 to features.{len(names) - 1}, got {layer}")
        return layer
    if layer not in names:
        raise ValueError(f"{arch} has no layer {layer!r}; layers are {', '.join(names)}")
    return names.index(layer)


def expected_shapes(arch: str) -> dict[str, tuple[int, ...]]:
    """The ``features.*`` keys and shapes of torchvision's checkpoint for ``arch``."""
    shapes: dict[str, tuple[int, ...]] = {}
    in_channels, index = 3, 0
    for value in VGG_CONFIGS[_check_arch(arch)]:
        if value == "M":
            index += 1
            continue
        shapes[f"features.{index}.weight"] = (int(value), in_channels, 3, 3)
        shapes[f"features.{index}.bias"] = (int(value),)
        in_channels, index = int(value), index + 2
    return shapes


def check_vgg_state_dict(state: dict, arch: str, source: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Return the ``features.*`` tensors of ``state`` or raise a one-line ``WeightsError`` naming ``source`` and
    the first key that is missing, has the wrong shape, or does not belong to ``arch``."""
    expected = expected_shapes(arch)
    for key, shape in expected.items():
        if key not in state:
            raise WeightsError(f"{source}: not a torchvision {arch} checkpoint: missing key '{key}'")
        value = state[key]
        if not isinstance(value, torch.Tensor):
            raise WeightsError(f"{source}: key '{key}' is a {type(value).__name__}, not a tensor")
        if tuple(value.shape) != shape:
            raise WeightsError(
                f"{source}: not a torchvision {arch} checkpoint: '{key}' has shape {tuple(value.shape)}, "
                f"expected {shape}"
            )
    extra = sorted((k for k in state if k.startswith("features.") and k not in expected), key=_key_order)
    if extra:
        raise WeightsError(f"{source}: not a torchvision {arch} checkpoint: unexpected key '{extra[0]}'")
    return {key: state[key] for key in expected}


def _key_order(key: str) -> tuple[int, str]:
    parts = key.split(".")
    return (int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 1 << 30, key)


def resolve_vgg_weights(arch: str, weights: str | os.PathLike | None = None, *, download: bool = False) -> Path:
    """Local file for ``arch``'s weights: ``weights`` (a path or known name, default ``{arch}-torchvision``).

    A missing file fails with one line naming the file and how to get it.
    """
    from lumicap.weights import ensure_weights, known_weights, resolve_weights

    default = DEFAULT_WEIGHTS[_check_arch(arch)]
    name = os.fspath(weights) if weights is not None else default
    if name in known_weights() and not os.path.exists(name):
        return ensure_weights([name], download=download, needed_by=f"the {arch} perceptual loss")[name]
    return resolve_weights(name, download=download)


def require_vgg(arch: str, weights: str | os.PathLike | None = None, *, download: bool = False) -> Path:
    """Fail early (before any training step) when a recipe needs VGG weights that are not available.

    Returns the checkpoint path after checking that it holds torchvision's ``arch`` features. The training
    engine calls this at start for recipes with a ``vgg16``/``vgg19`` term, unless the user asked to drop the
    term (``allow_missing_perceptual=True``).
    """
    from lumicap.weights import load_state_dict

    path = resolve_vgg_weights(arch, weights, download=download)
    check_vgg_state_dict(load_state_dict(path), arch, path)
    return path


class VGGFeatures(nn.Module):
    """torchvision-layout VGG ``features`` truncated after ``last_layer`` (all layers when ``None``).

    ``forward(x, layers)`` returns ``{layer_name: activation}`` for the requested layers. The input is used as
    given (normalise before calling when the weights expect ImageNet statistics).
    """

    def __init__(self, arch: str = "vgg19", last_layer: str | int | None = None) -> None:
        super().__init__()
        self.arch = _check_arch(arch)
        names = layer_names(arch)
        stop = len(names) if last_layer is None else layer_index(arch, last_layer) + 1
        layers: list[nn.Module] = []
        in_channels = 3
        for value in VGG_CONFIGS[arch]:
            if len(layers) >= stop:
                break
            if value == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                # not in-place: an earlier ReLU output may be requested while later layers still run
                layers += [nn.Conv2d(in_channels, int(value), 3, padding=1), nn.ReLU()]
                in_channels = int(value)
        self.features = nn.Sequential(*layers[:stop])
        self.names = names[:stop]

    def load_checkpoint(self, path: str | os.PathLike) -> "VGGFeatures":
        """Load torchvision's checkpoint file (validated in full, then the layers this module keeps)."""
        from lumicap.weights import load_state_dict

        tensors = check_vgg_state_dict(load_state_dict(path), self.arch, path)
        own = self.features.state_dict()
        self.features.load_state_dict(
            {k[len("features.") :]: v for k, v in tensors.items() if k[len("features.") :] in own}
        )
        return self

    def forward(self, x: torch.Tensor, layers: Sequence[str | int]) -> dict[str, torch.Tensor]:
        wanted = {layer_index(self.arch, layer): layer for layer in layers}
        if max(wanted) >= len(self.features):
            raise ValueError(f"layer {wanted[max(wanted)]!r} is beyond this extractor's last layer {self.names[-1]!r}")
        out: dict[str, torch.Tensor] = {}
        for index, module in enumerate(self.features):
            x = module(x)
            if index in wanted:
                out[str(wanted[index])] = x
                if len(out) == len(wanted):
                    break
        return out


# Perceptual-loss settings of the recipes that use one (read from the official code / paper).
PERCEPTUAL_PRESETS: dict[str, dict] = {
    # UHDFour (src/networks.py VGG19 feature_mode: features[0:26] = conv4_4 before its ReLU; UHDFour_model.py:
    # nn.MSELoss on those features, images fed in [0,1] without ImageNet normalisation).
    "uhdfour": {"arch": "vgg19", "layers": ("conv4_4",), "criterion": "mse", "normalize": False},
    # RCTNet (paper, Sec. 3.5): sum of L1 distances of VGG16 layers 2, 4, 6 (relu1_2, relu2_2, relu3_2), ImageNet
    # normalisation (torchvision weights expect it).
    "rctnet": {"arch": "vgg16", "layers": ("relu1_2", "relu2_2", "relu3_2"), "criterion": "l1", "normalize": True},
}


class VGGPerceptualLoss(nn.Module):
    """sum_l layer_weight_l * criterion(phi_l(output), phi_l(target)) with a frozen, eval-mode VGG.

    Args:
        arch: ``"vgg16"`` or ``"vgg19"``.
        layers: layer names (``"relu2_2"``, ``"conv4_4"``) or ``features`` indices.
        weights: checkpoint path or known name; default ``{arch}-torchvision`` from the cache.
        criterion: ``"l1"`` or ``"mse"`` (mean over elements of each layer).
        normalize: subtract ImageNet mean / divide by std first (inputs are RGB in [0, 1]).
        layer_weights: per-layer factors (default 1 each).
        download: allow fetching a known checkpoint that is not in the cache.
    """

    def __init__(
        self,
        arch: str = "vgg19",
        layers: Sequence[str | int] = ("relu5_4",),
        weights: str | os.PathLike | None = None,
        criterion: str = "l1",
        normalize: bool = True,
        layer_weights: Sequence[float] | None = None,
        *,
        download: bool = False,
    ) -> None:
        super().__init__()
        if criterion not in ("l1", "mse"):
            raise ValueError(f"criterion must be 'l1' or 'mse', got {criterion!r}")
        self.layers = tuple(layers)
        if not self.layers:
            raise ValueError("at least one VGG layer is needed")
        self.layer_weights = tuple(layer_weights) if layer_weights is not None else (1.0,) * len(self.layers)
        if len(self.layer_weights) != len(self.layers):
            raise ValueError(f"{len(self.layers)} layers but {len(self.layer_weights)} layer_weights")
        self.criterion = criterion
        self.normalize = normalize
        last = max(self.layers, key=lambda layer: layer_index(arch, layer))
        path = resolve_vgg_weights(arch, weights, download=download)
        self.vgg = VGGFeatures(arch, last_layer=last).load_checkpoint(path)
        self.vgg.requires_grad_(False)
        self.vgg.eval()
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    @classmethod
    def from_preset(cls, preset: str, weights: str | os.PathLike | None = None, **kwargs) -> "VGGPerceptualLoss":
        """The perceptual term of a recipe (``"uhdfour"``, ``"rctnet"``), see ``PERCEPTUAL_PRESETS``."""
        if preset not in PERCEPTUAL_PRESETS:
            raise ValueError(f"unknown perceptual preset {preset!r}; known: {sorted(PERCEPTUAL_PRESETS)}")
        return cls(**{**PERCEPTUAL_PRESETS[preset], "weights": weights, **kwargs})

    def train(self, mode: bool = True) -> "VGGPerceptualLoss":
        super().train(mode)
        self.vgg.eval()  # a frozen reference network never switches to training behaviour
        return self

    def features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.normalize:
            x = (x - self.mean) / self.std
        return self.vgg(x, self.layers)

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if output.shape != target.shape:
            raise ValueError(f"output {tuple(output.shape)} and target {tuple(target.shape)} differ in shape")
        distance = F.l1_loss if self.criterion == "l1" else F.mse_loss
        out_features = self.features(output)
        with torch.no_grad():
            target_features = self.features(target)
        total = output.new_zeros(())
        for layer, weight in zip(self.layers, self.layer_weights):
            total = total + weight * distance(out_features[str(layer)], target_features[str(layer)])
        return total
