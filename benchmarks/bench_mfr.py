"""Per-iteration cost of the MFR loss with full-size random teachers.

One iteration is what a training step adds: the teacher's forward pass on the reference (no gradient)
plus the forward and backward passes on the enhanced output (gradient w.r.t. the output pixels only;
the enhancement network's own backward is not included). Random weights of the published sizes:
``coco`` = ViT-B/32 + 10x768 MLP + GPT-2 124M, ``transformer`` = RN50x4 + 40-token transformer mapper +
GPT-2 124M. Timings are medians over ``--repeats`` after ``--warmup`` iterations; CUDA timings are
synchronised. ``fused`` runs reference and output as one batch (see ``MultimodalFeatureLoss``).

    python benchmarks/bench_mfr.py                           # CPU (and CUDA when present), batch 8, 128 px
    python benchmarks/bench_mfr.py --device cuda --size 256 --teachers coco,transformer --amp
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

MODES = {
    # Which terms cost what: time "clip-only" (CLIP embedding term), "clip+prefix" (adds the mapper) and
    # "default" (adds GPT-2 over the prefix); the differences are each term's share of the step.
    "clip-only": {"weights": (1.0, 0.0, 0.0)},
    "clip+prefix": {"weights": (1.0, 1.0, 0.0)},
    "default": {},  # L1, last GPT-2 layer, crop
    "all-layers": {"gpt_layers": "all"},
    "caption": {"caption_conditioned": True, "max_caption_tokens": 20},
}


def measure(mfr, output, target, device, repeats, warmup, amp):
    def step():
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
    parser.add_argument("--rows-out", default=None, metavar="FILE.jsonl", help="append each row as a JSON line")
    args = parser.parse_args()
    import json

    from lumicap.teacher import MultimodalFeatureLoss, build_random_teacher

    if args.threads:
        torch.set_num_threads(args.threads)
    devices = ["cpu", "cuda"] if args.device == "all" else [args.device]
    devices = [d for d in devices if d == "cpu" or torch.cuda.is_available()]
    fuses = {"both": [False, True], "on": [True], "off": [False]}[args.fuse]
    variants = {"coco": "mlp", "transformer": "transformer"}
    print(f"torch {torch.__version__}, CPU threads {torch.get_num_threads()}"
          + (f", GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""))
    header = f"{'device':6} {'teacher':12} {'mode':11} {'fused':5} {'amp':4} {'batch':>5} {'size':>5} {'iter ms':>9} {'ref fwd ms':>10}"
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
            for mode in args.modes.split(","):
                for fuse in fuses:
                    for amp in ([False, True] if args.amp else [False]):
                        mfr = MultimodalFeatureLoss(teacher, fuse_passes=fuse, **MODES[mode])
                        iteration, reference = measure(mfr, output, target, device, repeats, warmup, amp)
                        if args.rows_out:
                            with open(args.rows_out, "a") as handle:
                                handle.write(json.dumps({
                                    "device": device_name, "teacher": teacher_name, "mode": mode, "fused": fuse,
                                    "amp": "bf16" if amp else "none", "batch": args.batch, "size": args.size,
                                    "iter_ms": iteration, "reference_ms": reference}) + "\n")
                        print(f"{device_name:6} {teacher_name:12} {mode:11} {str(fuse):5} {'bf16' if amp else 'no':4} "
                              f"{args.batch:5d} {args.size:5d} {iteration:9.1f} {reference:10.1f}", flush=True)
            del teacher
            if device.type == "cuda":
                torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
