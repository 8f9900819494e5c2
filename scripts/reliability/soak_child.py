"""``python -m reliability.soak_child ARGS...``: ``lumicap ARGS...`` as the soak harness runs it.

Two harness-only changes, neither of which alters what is computed:

- one CPU thread, so every invocation (killed, resumed or uninterrupted) runs the same kernels and an
  exact resume can be told apart from floating-point noise;
- with ``LUMICAP_SOAK_WRITE_CHUNKS``/``LUMICAP_SOAK_WRITE_DELAY_MS`` set, ``torch.save`` into an open file
  writes its bytes in that many chunks with a pause after each. A tiny model's checkpoint is written in
  about a millisecond, too fast for a SIGKILL to land inside it by chance; the pauses widen that window
  so the soak can kill processes mid-write on purpose. The library's own code path is untouched.
"""

from __future__ import annotations

import io
import os
import sys
import time

CHUNKS_ENV = "LUMICAP_SOAK_WRITE_CHUNKS"
DELAY_ENV = "LUMICAP_SOAK_WRITE_DELAY_MS"


def install_slow_checkpoint_writes(chunks: int, delay_ms: float) -> None:
    import torch

    real_save = torch.save

    def slow_save(obj, f, *args, **kwargs):
        if not hasattr(f, "write"):  # a path: torch opens the file itself; keep the real behaviour
            return real_save(obj, f, *args, **kwargs)
        buffer = io.BytesIO()
        real_save(obj, buffer, *args, **kwargs)
        data = buffer.getvalue()
        step = max(1, -(-len(data) // chunks))
        for start in range(0, len(data), step):
            f.write(data[start : start + step])
            f.flush()
            time.sleep(delay_ms / 1000.0)
        return None

    torch.save = slow_save


def main(argv: list[str]) -> int:
    import torch

    torch.set_num_threads(1)
    chunks = int(os.environ.get(CHUNKS_ENV, "0") or 0)
    if chunks > 0:
        install_slow_checkpoint_writes(chunks, float(os.environ.get(DELAY_ENV, "10")))
    from lumicap.cli import main as lumicap_main

    return lumicap_main(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
