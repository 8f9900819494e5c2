"""Per-iteration cost of the MFR loss with full-size random teachers.

One iteration is what a training step adds: the teacher's forward pass on the reference (no gradient)
plus the forward and backward passes on the enhanced output (gradient w.r.t. the output pixels only;
the enhancement network's own backward is not included). Random weights of the published sizes:
``coco`` = ViT-B/32 + 10x768 MLP + GPT-2 124M, ``transformer`` = RN50x4 + 40-token transformer mapper +
GPT-2 124M. Timings are medians over ``--repeats`` after ``--warmup`` iterations; CUDA timings are
synchronised. ``fused`` runs reference and output as one batch (see ``MultimodalFeatureLoss``).

    python benchmarks/bench_mfr.py                           # CPU (and CUDA when present), batch 8, 128 px
    python benchmarks/bench_mfr.py --device cuda --size 256 --teachers coco,transformer --amp
    python benchmarks/bench_mfr.py --device cuda --modes default --fuse both --graph both --teacher-dtype fp32,bf16

The MFR-overhead goal of issue 26 (at most 8 ms per step at batch 8 on an H100) is about launches and memory
traffic, not arithmetic, so three things are timed against each other:

- ``--graph on``: the whole MFR forward and its backward to the output pixels captured once in a CUDA graph
  and replayed (static input buffers; what a trainer would wrap in an autograd function);
- ``--fuse off`` (with or without the graph): the reference pass runs without autograd and the output pass
  alone is differentiated, so backward covers the 8 output images and not the 8 references as well (fused
  passes share every batched op, so their backward also works through the reference half); the graph takes
  away the extra launches that made fused passes faster on GPUs;
- ``--teacher-dtype bf16``: the teacher's weights in bfloat16 (not autocast), with the precision check of
  issue 16: loss and gradient against the fp32 teacher on the same batch (relative error, cosine).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

TEACHER_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
MODES = {
    # Which terms cost what: time "clip-only" (CLIP embedding term), "clip+prefix" (adds the mapper) and
    # "default" (adds GPT-2 over the prefix); the differences are each term's share of the step.
    "clip-only": {"weights": (1.0, 0.0, 0.0)},
    "clip+prefix": {"weights": (1.0, 1.0, 0.0)},
    "default": {},  # L1, last GPT-2 layer, crop
    "all-layers": {"gpt_layers": "all"},
    "caption": {"caption_conditioned": True, "max_caption_tokens": 20},
}


def graphed_loss_and_grad(mfr, output, target):
    """The MFR loss and its gradient w.r.t. ``output`` as one CUDA graph: returns ``replay(output, target)``
    which copies into the captured buffers and replays (no kernel launches from Python)."""
    static_x = output.detach().clone().requires_grad_(True)
    static_t = target.detach().clone()
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm-up outside the capture (allocations, lazy initialisation)
        for _ in range(3):
            torch.autograd.grad(mfr(static_x, static_t), static_x)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static_loss = mfr(static_x, static_t)
        (static_grad,) = torch.autograd.grad(static_loss, static_x)

    def replay(x, t):
        with torch.no_grad():
            static_x.copy_(x)
            static_t.copy_(t)
        graph.replay()
        return static_loss, static_grad

    return replay


def loss_and_grad(mfr, output, target):
    x = output.detach().clone().requires_grad_(True)
    loss = mfr(x, target)
    (grad,) = torch.autograd.grad(loss, x)
    return loss.detach().float(), grad.float()


def precision_error(reference, other) -> dict[str, float]:
    """How far (loss, grad) ``other`` is from ``reference`` (the fp32 teacher's)."""
    (loss32, grad32), (loss, grad) = reference, other
    return {
        "loss_rel": float((loss - loss32).abs() / loss32.abs().clamp_min(1e-12)),
        "grad_rel": float((grad - grad32).norm() / grad32.norm().clamp_min(1e-12)),
        "grad_cosine": float(torch.nn.functional.cosine_similarity(grad.flatten(), grad32.flatten(), dim=0)),
    }


def measure(mfr, output, target, device, repeats, warmup, amp, graph=False):
    replay = graphed_loss_and_grad(mfr, output, target) if graph else None

    def step():
        if replay is not None:
            replay(output, target)
            return
        x = output.detach().requires_grad_(True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            loss = mfr(x, target)
        loss.backward()

    def reference_only():
        # The teacher's full no-gradient pass on the reference: CLIP, mapper, GPT-2 over the prefix.
        with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            prefix = mfr.teacher.prefix_embeddings(mfr.teacher.clip_embedding(target, mfr.preprocess))
            mfr.teacher.language_model(prefix)

    results = []
    for fn in (step, reference_only):
        for _ in range(warmup):
            fn()
        times = []
        for _ in range(repeats):
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            fn()
            if device.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
        results.append(statistics.median(times) * 1000)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="all", choices=["all", "cpu", "cuda"])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=128, help="square patch size (default 128)")
    parser.add_argument("--teachers", default="coco", help="comma list of coco, transformer")
    parser.add_argument("--modes", default="default,caption", help=f"comma list of {', '.join(MODES)}")
    parser.add_argument("--fuse", default="both", choices=["both", "on", "off"])
    parser.add_argument("--repeats", type=int, default=None, help="default: 3 on CPU, 20 on CUDA")
    parser.add_argument("--warmup", type=int, default=None, help="default: 1 on CPU, 5 on CUDA")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's)")
    parser.add_argument("--amp", action="store_true", help="also time bf16 autocast")
    parser.add_argument("--tiny", action="store_true", help="tiny random teacher (a CPU smoke run), not full size")
    parser.add_argument("--graph", default="off", choices=["off", "on", "both"],
                        help="also time the loss and its backward replayed as one CUDA graph (CUDA only)")
    parser.add_argument("--teacher-dtype", default="fp32", help="comma list of fp32, bf16: the teacher's weight dtype")
    parser.add_argument("--rows-out", default=None, metavar="FILE.jsonl", help="append each row as a JSON line")
    args = parser.parse_args()
    import json

    from lumicap.teacher import MultimodalFeatureLoss, build_random_teacher

    if args.threads:
        torch.set_num_threads(args.threads)
    devices = ["cpu", "cuda"] if args.device == "all" else [args.device]
    devices = [d for d in devices if d == "cpu" or torch.cuda.is_available()]
    fuses = {"both": [False, True], "on": [True], "off": [False]}[args.fuse]
    graphs = {"both": [False, True], "on": [True], "off": [False]}[args.graph]
    teacher_dtypes = [name.strip() for name in args.teacher_dtype.split(",") if name.strip()]
    unknown = [name for name in teacher_dtypes if name not in TEACHER_DTYPES]
    if unknown or not teacher_dtypes:
        parser.error(f"--teacher-dtype: unknown {', '.join(unknown) or args.teacher_dtype!r}; known: fp32, bf16")
    variants = {"coco": "mlp", "transformer": "transformer"}
    print(f"torch {torch.__version__}, CPU threads {torch.get_num_threads()}"
          + (f", GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""))
    header = (f"{'device':6} {'teacher':12} {'mode':11} {'fused':5} {'amp':4} {'dtype':5} {'graph':5} {'batch':>5} "
              f"{'size':>5} {'iter ms':>9} {'ref fwd ms':>10}")
    print(header)
    print("-" * len(header))
    for device_name in devices:
        device = torch.device(device_name)
        repeats = args.repeats or (20 if device.type == "cuda" else 3)
        warmup = args.warmup if args.warmup is not None else (5 if device.type == "cuda" else 1)
        for teacher_name in args.teachers.split(","):
            teacher = build_random_teacher(variants[teacher_name], full_size=not args.tiny).to(device)
            g = torch.Generator().manual_seed(0)
            target = torch.rand(args.batch, 3, args.size, args.size, generator=g).to(device)
            output = (target + 0.05 * torch.randn(target.shape, generator=g).to(device)).clamp(0, 1)
            fp32_reference = {}
            for dtype_name in teacher_dtypes:
                teacher.to(TEACHER_DTYPES[dtype_name])
                for mode in args.modes.split(","):
                    for fuse in fuses:
                        mfr = MultimodalFeatureLoss(teacher, fuse_passes=fuse, **MODES[mode])
                        # Precision check: the same batch through the fp32 teacher (first) and this one.
                        result = loss_and_grad(mfr, output, target)
                        if dtype_name == "fp32":
                            fp32_reference[(mode, fuse)] = result
                        precision = (precision_error(fp32_reference[(mode, fuse)], result)
                                     if dtype_name != "fp32" and (mode, fuse) in fp32_reference else None)
                        for graph in graphs:
                            for amp in ([False, True] if args.amp and dtype_name == "fp32" and not graph else [False]):
                                row = {"device": device_name, "teacher": teacher_name, "mode": mode, "fused": fuse,
                                       "amp": "bf16" if amp else "none", "teacher_dtype": dtype_name, "graph": graph,
                                       "batch": args.batch, "size": args.size, "iter_ms": None, "reference_ms": None}
                                if precision is not None:
                                    row["precision_vs_fp32"] = precision
                                if graph and device.type != "cuda":
                                    row["error"] = "CUDA graphs need a CUDA device"
                                else:
                                    try:
                                        row["iter_ms"], row["reference_ms"] = measure(
                                            mfr, output, target, device, repeats, warmup, amp, graph)
                                    except Exception as exc:  # a capture that fails is a result, not a crash
                                        row["error"] = " ".join(f"{type(exc).__name__}: {exc}".split())[:200]
                                if args.rows_out:
                                    with open(args.rows_out, "a") as handle:
                                        handle.write(json.dumps(row) + "\n")
                                figures = (f"{row['iter_ms']:9.1f} {row['reference_ms']:10.1f}" if row["iter_ms"] is not None
                                           else f"  {row.get('error')}")
                                print(f"{device_name:6} {teacher_name:12} {mode:11} {str(fuse):5} {'bf16' if amp else 'no':4} "
                                      f"{dtype_name:5} {str(graph):5} {args.batch:5d} {args.size:5d} {figures}"
                                      + (f"  vs fp32: {precision}" if precision else ""), flush=True)
            teacher.to(torch.float32)
            del teacher
            if device.type == "cuda":
                torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
