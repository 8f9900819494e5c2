"""Training logs: a tqdm progress bar (ETA, current losses), TensorBoard scalars/images, a JSONL file.

Only rank 0 creates a ``RunLogger``; the others get ``NullLogger``. Every record written to
TensorBoard is also one line of ``log.jsonl`` (``{"kind": "train" | "val" | "test" | "event", "iter":
..., <tag>: <value>, ...}``), which is what scripts and ``lumicap compare`` read.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Mapping

import torch

from lumicap.jsonfile import dumps


class NullLogger:
    def scalars(self, kind: str, iteration: int, values: Mapping[str, float]) -> None:
        pass

    def images(self, tag: str, iteration: int, image: torch.Tensor) -> None:
        pass

    def event(self, iteration: int, **fields: Any) -> None:
        pass

    def progress(self, iteration: int, values: Mapping[str, float]) -> None:
        pass

    def message(self, text: str) -> None:
        pass

    def close(self) -> None:
        pass


class RunLogger(NullLogger):
    def __init__(self, run_dir: Path, start_iteration: int, total_iterations: int, show_progress: bool = True):
        from torch.utils.tensorboard import SummaryWriter
        from tqdm import tqdm

        # purge_step drops events a previous, interrupted invocation wrote after its last checkpoint.
        self.tb = SummaryWriter(str(run_dir / "tb"), purge_step=start_iteration + 1 if start_iteration else None)
        self.jsonl = open(run_dir / "log.jsonl", "a", encoding="utf-8")
        self.bar = tqdm(
            total=total_iterations,
            initial=start_iteration,
            desc=run_dir.parent.parent.name + "/" + run_dir.name,
            dynamic_ncols=True,
            disable=not show_progress,
            unit="it",
        )
        self.show_progress = show_progress

    def _write(self, record: dict) -> None:
        self.jsonl.write(dumps(record) + "\n")
        self.jsonl.flush()

    def scalars(self, kind: str, iteration: int, values: Mapping[str, float]) -> None:
        for tag, value in values.items():
            self.tb.add_scalar(f"{kind}/{tag}", value, iteration)
        self._write({"kind": kind, "iter": iteration, "time": round(time.time(), 3), **values})

    def images(self, tag: str, iteration: int, image: torch.Tensor) -> None:
        self.tb.add_image(tag, image.clamp(0, 1).float().cpu(), iteration)

    def event(self, iteration: int, **fields: Any) -> None:
        self._write({"kind": "event", "iter": iteration, "time": round(time.time(), 3), **fields})

    def progress(self, iteration: int, values: Mapping[str, float]) -> None:
        """Advance the bar; ``values`` (the current losses) replace the shown ones when given."""
        if values:
            self.bar.set_postfix({k: f"{v:.4g}" for k, v in values.items()}, refresh=False)
        self.bar.update(iteration - self.bar.n)

    def message(self, text: str) -> None:
        if self.show_progress:
            self.bar.write(text)
        else:
            print(text, flush=True)

    def close(self) -> None:
        self.bar.close()
        self.tb.flush()
        self.tb.close()
        self.jsonl.close()
