"""Exponential moving average of a model's weights (validation and test then use the average).

``shadow = decay * shadow + (1 - decay) * weights`` after every optimizer step, for every floating
point parameter and buffer; integer buffers (BatchNorm's counters) are copied. The average lives in a
full copy of the module so it can be evaluated directly.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


class ModelEMA:
    def __init__(self, model: nn.Module, decay: float):
        self.decay = decay
        self.module = copy.deepcopy(model).eval()
        for param in self.module.parameters():
            param.requires_grad_(False)
        self.updates = 0

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        current = model.state_dict()
        for name, shadow in self.module.state_dict().items():
            value = current[name].detach()
            if shadow.dtype.is_floating_point:
                shadow.mul_(self.decay).add_(value.to(shadow.dtype), alpha=1 - self.decay)
            else:
                shadow.copy_(value)

    def state_dict(self) -> dict:
        return {"decay": self.decay, "updates": self.updates, "module": self.module.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.decay = float(state["decay"])
        self.updates = int(state["updates"])
        self.module.load_state_dict(state["module"])
