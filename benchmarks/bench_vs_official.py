"""Side by side: lumicap's networks against their official implementations, same weights, one process.

The official code is not part of lumicap (it may not be redistributed here). Keep a local copy under
``--official-root`` (default ``.official/`` in the repository, git-ignored), one folder per model holding the
repository's files at their repository paths (``BASELINES`` lists repository, commit and files):

    .official/retinexformer/basicsr/models/archs/RetinexFormer_arch.py      (needs einops)
    .official/iat/IAT_enhance/model/{IAT_main,blocks,global_net}.py        (+ a timm stand-in in IAT_enhance/timm/)
    .official/llformer/model/LLFormer.py                                    (needs einops)
    .official/mirnet/networks/MIRNet_model.py + mirnet/utils/antialias.py  (utils/__init__.py may be empty)
    .official/uhdfour/src/EnhanceN_arch_LOL.py
    .official/snr_aware/models/archs/{low_light_transformer,arch_util}.py + models/archs/transformer/*.py
                                                                            (+ a cv2 stand-in: forward never uses it)

A folder ``_site`` under the root is put on the import path (``pip install --target .official/_site einops``).
``--check-golden`` first runs each official copy on ``../shared/golden`` (the checkpoints, inputs and outputs
the official code wrote) and prints the largest difference: a copy that is not the official code shows here.

For each model: the official class is built with its published configuration, its state dict is read into
lumicap's network (``lumicap.models.official``'s key maps, the same path as ``--weights`` of an official
file), the eval outputs are compared once on a 96x64 image, then both are timed in interleaved rounds whose
order alternates (official first, then lumicap first, ...), so that a busy machine slows both alike:

- train step: forward, L1 loss on the image, backward, Adam step, ``zero_grad``, at the model's batch x patch;
  each side steps with its own training code's Adam: the official ``torch.optim.Adam`` (the reference
  per-tensor loop on the CPU) and the one lumicap's trainer builds (fused where torch has the kernel,
  ``train.fused_optimizer``); ``--reference-adam`` gives lumicap the reference loop too (the networks alone);
- inference: ``torch.inference_mode``, eval, one image of the model's size (the sizes of issue 26's table).

Each side's figure is the median of its rounds (wall clock); the ratio is the median of the per-round ratios
(lumicap / official, lower is faster), with their interquartile range: pairs measured seconds apart see
the same load, so the ratio is far steadier than either time on a shared machine. The same ratio is also
given in process CPU time (all threads), which counts the work done rather than the waiting a busy
machine adds. ``--also-loaded`` adds
lumicap's network as ``load_inference_model`` returns it (weights read from a file) beside the one built by
``build_model`` + ``load_state_dict``.

SNR-Aware's official forward takes the SNR mask its test script builds (``models/Video_base_model4_m.py``
``test4``: the data loader's 5x5 box blur, ``cv2.blur``, then the luma ratio, normalised by its maximum);
the mask is computed inside the timed call (lumicap computes the same map inside ``forward``). Its
inference size is 608x400: the official network needs sides that are multiples of 16 (its LOL test
resizes every image to 608x400); lumicap pads to 16 itself.

``--memory`` instead measures peak resident memory of one inference per side and size, each in its own
process (randomly initialised weights: memory does not depend on them), with the official test scripts'
padding or cropping where a size needs it.

    OMP_WAIT_POLICY=PASSIVE python benchmarks/bench_vs_official.py --threads 2 --rounds 9 --check-golden
    OMP_WAIT_POLICY=PASSIVE python benchmarks/bench_vs_official.py --models iat --also-loaded --rounds 15
    python benchmarks/bench_vs_official.py --memory --sizes 600x400,1920x1080 --threads 2
    python benchmarks/bench_vs_official.py --models mirnet --profile 15 --rounds 0   # where the time goes

One file of your own: ``--model iat --official path/to/IAT_main.py --official-class IAT --official-kwargs
'{"type": "lol"}'`` (its imports must resolve; the state dict must load into lumicap's network).

On a machine shared with other jobs, OpenMP's default busy-waiting makes every multi-threaded figure
wildly slower (threads spin against each other's jobs); ``OMP_WAIT_POLICY=PASSIVE`` in the environment keeps
the comparison about the networks. The run records the policy and the load average before and after.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402
from _common import Column  # noqa: E402

BENCHMARK = "vs_official"
DEFAULT_ROOT = _common.REPO_ROOT / ".official"
GOLDEN = _common.REPO_ROOT.parent / "shared" / "golden"
PROBE_SIZE = (64, 96)  # H, W: a multiple of 16, which every official network accepts
COLUMNS = [
    Column("model", "model"),
    Column("measure", "measure"),
    Column("side", "lumicap"),
    Column("official_s", "official (s)", "{:.3f}"),
    Column("lumicap_s", "lumicap (s)", "{:.3f}"),
    Column("ratio", "lumicap / official", "{:.2f}"),
    Column("ratio_iqr", "ratio IQR"),
    Column("cpu_ratio", "CPU-time ratio", "{:.2f}"),
    Column("cpu_ratio_iqr", "CPU-time IQR"),
]
# On CUDA the inference rows also carry each side's peak allocated GPU memory (one inference after the rounds).
GPU_MEMORY_COLUMNS = [
    Column("official_peak_mib", "official peak GPU (MiB)", "{:.0f}"),
    Column("lumicap_peak_mib", "lumicap peak GPU (MiB)", "{:.0f}"),
]
MEMORY_COLUMNS = [
    Column("model", "model"),
    Column("size", "inference"),
    Column("official_mib", "official peak RSS (MiB)", "{:.0f}"),
    Column("lumicap_mib", "lumicap peak RSS (MiB)", "{:.0f}"),
    Column("official_added_mib", "official added (MiB)", "{:.0f}"),
    Column("lumicap_added_mib", "lumicap added (MiB)", "{:.0f}"),
    Column("killed", "killed by the OOM killer"),
]


@dataclass(frozen=True)
class Baseline:
    """One official implementation: where it comes from, how to build and feed it, what to time."""

    model: str  # lumicap registry name
    repo: str
    commit: str
    files: tuple[str, ...]  # repository files the class needs (the first one holds it)
    cls: str
    kwargs: dict[str, Any]  # the published (LOL) configuration
    import_root: str = "."  # folder (relative to the model's folder) its imports are relative to
    batch: int = 1
    patch: int = 128
    size: str = "600x400"
    output: int | None = None  # index of the image in a tuple output (None: not a tuple, or the last)
    multiple: int = 1  # the official network needs H and W to be multiples of this ...
    fit: str = "pad"  # ... and its test script pads (reflect) or crops (top-left) to get there
    needs_mask: bool = False
    stand_ins: tuple[str, ...] = field(default_factory=tuple)


BASELINES = {
    b.model: b
    for b in (
        Baseline("iat", "cuiziteng/Illumination-Adaptive-Transformer", "c76472265247f47cea57649af28b15018bb64cb1",
                 ("IAT_enhance/model/IAT_main.py", "IAT_enhance/model/blocks.py", "IAT_enhance/model/global_net.py"),
                 "IAT", {"in_dim": 3, "with_global": True, "type": "lol"}, import_root="IAT_enhance", batch=4,
                 patch=192, stand_ins=("IAT_enhance/timm (trunc_normal_, DropPath, to_2tuple)",)),
        Baseline("retinexformer", "caiyuanhao1998/Retinexformer", "ad5c0918b94b9cec1dbd2fe296499c13e7ccac78",
                 ("basicsr/models/archs/RetinexFormer_arch.py",), "RetinexFormer",
                 {"in_channels": 3, "out_channels": 3, "n_feat": 40, "stage": 1, "num_blocks": [1, 2, 2]},
                 batch=4, patch=192, multiple=4),
        Baseline("llformer", "TaoWangzj/LLFormer", "ed5e7bf61d2dc64ba3b4552b90eb68a38f6c5302", ("model/LLFormer.py",),
                 "LLFormer", {"inp_channels": 3, "out_channels": 3, "dim": 16, "num_blocks": [2, 4, 8, 16],
                              "num_refinement_blocks": 2, "heads": [1, 2, 4, 8], "ffn_expansion_factor": 2.66,
                              "bias": False, "LayerNorm_type": "WithBias", "attention": True, "skip": False},
                 size="256x256", multiple=16),
        Baseline("mirnet", "swz30/MIRNet", "6934e830cac66b6c774d74dc6321d4f43fc8a928",
                 ("networks/MIRNet_model.py", "utils/antialias.py"), "MIRNet",
                 {"in_channels": 3, "out_channels": 3, "n_feat": 64, "kernel_size": 3, "stride": 2, "n_RRG": 3,
                  "n_MSRB": 2, "height": 3, "width": 2, "bias": False},
                 size="256x256", multiple=4),
        Baseline("uhdfour", "Li-Chongyi/UHDFour_code", "2349d6f0526aff4c2ad9dbf168d93f928bf844f0",
                 ("src/EnhanceN_arch_LOL.py",), "InteractNet", {"nc": 16}, batch=2, output=0, multiple=8, fit="crop"),
        Baseline("snr_aware", "dvlab-research/SNR-Aware-Low-Light-Enhance", "1113144c82adc8bcc4a9ec27749ed75f196a4e4d",
                 ("models/archs/low_light_transformer.py", "models/archs/arch_util.py",
                  "models/archs/transformer/Models.py"), "low_light_transformer",
                 {"nf": 64, "nframes": 5, "groups": 8, "front_RBs": 1, "back_RBs": 1, "center": None,
                  "predeblur": True, "HR_in": True, "w_TSA": True},
                 batch=2, size="608x400", multiple=16, needs_mask=True, stand_ins=("cv2 (imported, never used)",)),
    )
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="all", help=f"comma list of {', '.join(BASELINES)} (default: all)")
    parser.add_argument("--official-root", default=str(DEFAULT_ROOT), help="folder of the official copies (see above)")
    parser.add_argument("--model", default=None, help="with --official: the lumicap registry name")
    parser.add_argument("--official", default=None, help="a local copy of one official model's Python file")
    parser.add_argument("--official-class", default=None, help="with --official: class in that file to build")
    parser.add_argument("--official-kwargs", default="{}", help="with --official: JSON constructor arguments")
    parser.add_argument("--official-output", type=int, default=None, help="with --official: index of the image in a tuple output")
    parser.add_argument("--overrides", default="{}", help="JSON constructor overrides for lumicap's build_model")
    parser.add_argument("--batch", type=int, default=None, help="training batch (default: the model's, 4 with --official)")
    parser.add_argument("--patch", type=int, default=None, help="training patch side (default: the model's, 192 with --official)")
    parser.add_argument("--size", default=None, help="inference WxH (default: the model's, 600x400 with --official)")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved timed rounds per measure (default: %(default)s)")
    parser.add_argument("--skip", choices=["train", "inference"], default=None, help="leave one measure out")
    parser.add_argument("--also-loaded", action="store_true", help="also time lumicap's network as load_inference_model returns it")
    parser.add_argument("--check-golden", action="store_true", help="first run the official copies on the golden cases")
    parser.add_argument("--golden", default=str(GOLDEN), help="folder of the golden cases (default: %(default)s)")
    parser.add_argument("--reference-adam", action="store_true",
                        help="train steps: lumicap's side also uses torch.optim.Adam's reference loop (default: the "
                        "Adam lumicap's trainer builds, fused where torch has it), to time the networks alone")
    parser.add_argument("--profile", type=int, default=0, metavar="N", help="print the N ops with the most self time, per side and measure")
    parser.add_argument("--memory", action="store_true", help="peak RSS of one inference per side and size (child processes)")
    parser.add_argument("--sizes", default="600x400,1920x1080", help="with --memory: inference sizes (default: %(default)s)")
    parser.add_argument("--memory-child", choices=["official", "lumicap"], default=None, help=argparse.SUPPRESS)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="(default: %(default)s)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's)")
    parser.add_argument("--out-dir", default=str(_common.RESULTS_DIR), help="folder of the results files")
    parser.add_argument("--no-save", action="store_true", help="print the table only, write no results file")
    parser.add_argument("--rows-out", default=None, metavar="FILE.jsonl", help="append each row as a JSON line (gpu_campaign.py)")
    parser.add_argument("--note", action="append", default=[], help="a line about the conditions (repeatable)")
    return parser


# ------------------------------------------------------------------------------------ official code


def selected_baselines(args: argparse.Namespace) -> list[Baseline]:
    from lumicap.errors import LumicapError

    if args.official:
        if not (args.model and args.official_class):
            raise LumicapError("--official needs --model (lumicap's name) and --official-class")
        official = Path(args.official).expanduser().resolve()
        return [Baseline(args.model, "(local file)", "", (official.name,), args.official_class,
                         json.loads(args.official_kwargs), import_root="..", batch=4, patch=192,
                         output=args.official_output)]
    return [BASELINES[name] for name in _common.parse_list(args.models, list(BASELINES), "model")]


def official_file(args: argparse.Namespace, baseline: Baseline) -> Path:
    if args.official:
        return Path(args.official).expanduser().resolve()
    return Path(args.official_root).expanduser().resolve() / baseline.model / baseline.files[0]


def load_official_class(args: argparse.Namespace, baseline: Baseline) -> type:
    """Import the official file as its repository would (its import root on ``sys.path``), then forget the
    modules it brought along: several officials use the same package names (``model``, ``models``, ``utils``)."""
    from lumicap.errors import LumicapError

    file = official_file(args, baseline)
    if not file.is_file():
        raise LumicapError(f"official {baseline.model}: {file}: no such file (fetch {baseline.repo} @ "
                           f"{baseline.commit[:7] or '?'}: {', '.join(baseline.files)}; see --help)")
    root = (file.parent if args.official else file.parents[len(Path(baseline.files[0]).parts) - 1]) / baseline.import_root
    paths = [str(root.resolve()), str(file.parent)]
    site = Path(args.official_root).expanduser() / "_site"
    if site.is_dir():
        paths.append(str(site.resolve()))
    before = set(sys.modules)
    sys.path[:0] = paths
    try:
        spec = importlib.util.spec_from_file_location(f"official_{baseline.model}_{file.stem}", file)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    except ImportError as exc:
        raise LumicapError(f"official {baseline.model}: {file.name}: {exc} (install what it imports, e.g. into "
                           f"{site})") from None
    finally:
        del sys.path[: len(paths)]
        for name in set(sys.modules) - before:
            origin = getattr(sys.modules[name], "__file__", None) or ""
            if origin.startswith(str(file.parents[len(Path(baseline.files[0]).parts) - 1])) and "_site" not in origin:
                del sys.modules[name]
    cls = getattr(module, baseline.cls, None)
    if cls is None:
        raise LumicapError(f"official {baseline.model}: {file}: no class '{baseline.cls}' in it")
    return cls


def snr_mask_as_official_test(x: torch.Tensor) -> torch.Tensor:
    """The mask SNR-Aware's test script feeds its network (``Video_base_model4_m.py`` ``test4``), from the
    data loader's ``cv2.blur(img, (5, 5))`` (5x5 box, border reflected without repeating the edge)."""
    blurred = F.avg_pool2d(F.pad(x, (2, 2, 2, 2), mode="reflect"), 5, stride=1)
    dark = x[:, 0:1] * 0.299 + x[:, 1:2] * 0.587 + x[:, 2:3] * 0.114
    light = blurred[:, 0:1] * 0.299 + blurred[:, 1:2] * 0.587 + blurred[:, 2:3] * 0.114
    mask = light / ((dark - light).abs() + 0.0001)
    peak = mask.view(mask.shape[0], -1).max(dim=1)[0].view(-1, 1, 1, 1)
    return (mask / (peak + 0.0001)).clamp(0, 1.0).float()


@contextlib.contextmanager
def cuda_calls_stay_on_cpu(active: bool):
    """SNR-Aware's forward moves an unused coordinate grid with ``.cuda()``; on the CPU that is a no-op here."""
    if not active:
        yield
        return
    original = torch.Tensor.cuda
    torch.Tensor.cuda = lambda self, *args, **kwargs: self
    try:
        yield
    finally:
        torch.Tensor.cuda = original


def official_forward(baseline: Baseline, model: torch.nn.Module, device: torch.device) -> Callable[[torch.Tensor], torch.Tensor]:
    def forward(x: torch.Tensor) -> torch.Tensor:
        with cuda_calls_stay_on_cpu(device.type == "cpu" and baseline.needs_mask):
            out = model(x, snr_mask_as_official_test(x)) if baseline.needs_mask else model(x)
        if isinstance(out, (tuple, list)):
            return out[-1 if baseline.output is None else baseline.output]
        return out

    return forward


def fit_for_official(baseline: Baseline, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
    """What the official test script does to a size the network cannot take (pad or crop to ``multiple``)."""
    h, w = x.shape[-2:]
    m = baseline.multiple
    if h % m == 0 and w % m == 0:
        return x, (h, w)
    if baseline.fit == "crop":
        return x[..., : h // m * m, : w // m * m], (h // m * m, w // m * m)
    return F.pad(x, (0, (m - w % m) % m, 0, (m - h % m) % m), mode="reflect"), (h, w)


def transfer_weights(official: torch.nn.Module, ours: torch.nn.Module, name: str) -> None:
    """The official state dict into lumicap's network: as is when the keys agree, else through the model's
    official key map (the path ``--weights`` of an official file takes)."""
    from lumicap.errors import LumicapError
    from lumicap.models import official as formats

    state = official.state_dict()
    try:
        ours.load_state_dict(state, strict=True)
        return
    except RuntimeError as exc:
        first_error = next((line.strip() for line in str(exc).splitlines()[1:] if line.strip()), str(exc))
    fmt = formats.official_format(name)
    if fmt is not None:
        converted = formats.convert(fmt, state, ours)
        fitted = formats.fit_to_model(converted.state, ours)
        if not converted.unknown and not any(formats.fit_problems(fitted, ours.state_dict())):
            ours.load_state_dict(fitted, strict=True)
            return
    raise LumicapError(f"the official state dict does not load into '{name}': {first_error[:200]}")


def loaded_copy(official: torch.nn.Module, name: str, overrides: dict) -> torch.nn.Module:
    """lumicap's network as ``load_inference_model`` returns it, from the official weights saved to a file."""
    from lumicap.inference import load_inference_model

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "official.pth"
        torch.save(official.state_dict(), path)
        return load_inference_model(name, "cpu", weights=path, overrides=overrides).module


# --------------------------------------------------------------------------------------------- timing


def quartiles(values: list[float]) -> tuple[float, float, float]:
    if len(values) == 1:
        return values[0], values[0], values[0]
    q1, q2, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, q2, q3


def interleaved(fns: dict[str, Callable[[], None]], rounds: int, device: torch.device) -> dict[str, dict[str, list[float]]]:
    """Wall-clock and process CPU seconds per call for each side, ``rounds`` times, the order reversed every
    other round. CPU time (all threads of this process) counts the work done and hardly what other jobs do to
    the wall clock: on a shared machine it is the steadier figure of the two."""
    names = list(fns)
    for name in names:  # warm-up: first calls allocate and pick kernels
        fns[name]()
    samples: dict[str, dict[str, list[float]]] = {name: {"wall": [], "cpu": []} for name in names}
    for i in range(rounds):
        for name in names if i % 2 == 0 else reversed(names):
            _common.synchronize(device)
            start, start_cpu = time.perf_counter(), time.process_time()
            fns[name]()
            _common.synchronize(device)
            samples[name]["wall"].append(time.perf_counter() - start)
            samples[name]["cpu"].append(time.process_time() - start_cpu)
    return samples


def cuda_peaks(fns: dict[str, Callable[[], None]], device: torch.device) -> dict[str, float]:
    """Peak allocated GPU memory (MiB) of one call of each side, from a clean slate."""
    peaks = {}
    for name, fn in fns.items():
        _common.release_memory(device)
        with _common.PeakMemory(device) as peak:
            fn()
        peaks[name] = peak.mib
    return peaks


def profile_table(fn: Callable[[], None], rows: int, device: torch.device) -> str:
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    fn()
    with profile(activities=activities) as prof:
        fn()
    key = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    return prof.key_averages().table(sort_by=key, row_limit=rows)


def run(args: argparse.Namespace) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    from lumicap.models import build_model

    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    overrides = json.loads(args.overrides)
    record = _common.row_recorder(rows := [], args.rows_out)
    golden = check_golden(args) if args.check_golden else {}
    checks: dict[str, Any] = {}
    load_before = os.getloadavg()
    for baseline in selected_baselines(args):
        torch.manual_seed(0)
        official = load_official_class(args, baseline)(**baseline.kwargs).to(device)
        ours = build_model(baseline.model, **overrides).to(device)
        transfer_weights(official, ours, baseline.model)
        sides: dict[str, torch.nn.Module] = {"official": official, "lumicap": ours}
        if args.also_loaded:
            sides["lumicap (loaded)"] = loaded_copy(official, baseline.model, overrides).to(device)
        forwards = {name: (official_forward(baseline, m, device) if name == "official" else m) for name, m in sides.items()}

        gen = torch.Generator().manual_seed(1)
        probe = torch.rand(1, 3, *PROBE_SIZE, generator=gen).to(device)
        for model in sides.values():
            model.eval()
        with torch.no_grad():
            reference = forwards["official"](probe)
            diffs = {name: (forwards[name](probe) - reference).abs().max().item() for name in sides if name != "official"}
        checks[baseline.model] = {"max_abs_diff_eval": max(diffs.values()), "golden": golden.get(baseline.model)}
        print(f"{baseline.model}: max |official - lumicap| on a {PROBE_SIZE[1]}x{PROBE_SIZE[0]} image, eval: "
              + ", ".join(f"{name} {d:.2e}" for name, d in diffs.items()), flush=True)

        measures: dict[str, dict[str, Callable[[], None]]] = {}
        if args.skip != "train":
            batch, patch = args.batch or baseline.batch, args.patch or baseline.patch
            x = torch.rand(batch, 3, patch, patch, generator=gen).to(device)
            target = torch.rand(batch, 3, patch, patch, generator=gen).to(device)
            # Each side's own optimizer: the official training code's torch.optim.Adam, and for lumicap the
            # Adam its trainer builds (fused where torch has the kernel); --reference-adam gives both the former.
            from lumicap.engine.train import fused_optimizer_kwargs

            lumicap_adam = {} if args.reference_adam else fused_optimizer_kwargs(None, device)
            optimizers = {name: torch.optim.Adam(m.parameters(), lr=1e-4, **({} if name == "official" else lumicap_adam))
                          for name, m in sides.items()}

            def train_step(name: str) -> None:
                sides[name].train()
                loss = (forwards[name](x) - target).abs().mean()
                loss.backward()
                optimizers[name].step()
                optimizers[name].zero_grad(set_to_none=True)

            measures[f"train step, batch {batch}, {patch}x{patch}"] = {n: (lambda n=n: train_step(n)) for n in sides}
        if args.skip != "inference":
            width, height = (int(v) for v in (args.size or baseline.size).lower().split("x"))
            image = torch.rand(1, 3, height, width, generator=gen).to(device)

            def infer(name: str) -> None:
                sides[name].eval()
                with torch.inference_mode():
                    forwards[name](image)

            measures[f"inference {width}x{height}"] = {n: (lambda n=n: infer(n)) for n in sides}
        for label, fns in measures.items():
            if args.profile:
                for name, fn in fns.items():
                    print(f"\n== {baseline.model}, {label}, {name} ==\n{profile_table(fn, args.profile, device)}", flush=True)
            if args.rounds < 1:
                continue
            load = os.getloadavg()[0]
            samples = interleaved(fns, args.rounds, device)
            official_s = statistics.median(samples["official"]["wall"])
            peaks = cuda_peaks(fns, device) if device.type == "cuda" and label.startswith("inference") else {}
            for name in (n for n in sides if n != "official"):
                ratios = {clock: quartiles([a / b for a, b in zip(samples[name][clock], samples["official"][clock])])
                          for clock in ("wall", "cpu")}
                (q1, ratio, q3), (c1, cpu_ratio, c3) = ratios["wall"], ratios["cpu"]
                record({"model": baseline.model, "measure": label, "side": name.replace("lumicap", "").strip(" ()") or "built",
                        "official_s": official_s, "lumicap_s": statistics.median(samples[name]["wall"]), "ratio": ratio,
                        "ratio_iqr": f"{q1:.2f}-{q3:.2f}", "cpu_ratio": cpu_ratio, "cpu_ratio_iqr": f"{c1:.2f}-{c3:.2f}",
                        "samples_s": {"official": samples["official"], name: samples[name]},
                        "load_1min": [load, os.getloadavg()[0]],
                        **({"official_peak_mib": peaks["official"], "lumicap_peak_mib": peaks[name]} if peaks else {})})
                print(f"  {label}, {name}: official {official_s:.3f} s, lumicap {rows[-1]['lumicap_s']:.3f} s, "
                      f"ratio {ratio:.2f} (IQR {q1:.2f}-{q3:.2f}), CPU-time ratio {cpu_ratio:.2f} (IQR {c1:.2f}-{c3:.2f})",
                      flush=True)
        official = ours = None  # free this model's networks before the next one is built
        sides.clear()
        forwards.clear()
        measures.clear()
        _common.release_memory(device)
    env = _common.environment(device)
    env.update(load_before=load_before, load_after=os.getloadavg(), omp_wait_policy=os.environ.get("OMP_WAIT_POLICY"))
    settings = {k: getattr(args, k) for k in ("models", "overrides", "batch", "patch", "size", "rounds", "threads",
                                              "also_loaded", "device")}
    settings["official"] = {b.model: {"repo": b.repo, "commit": b.commit, "files": list(b.files), "class": b.cls,
                                      "kwargs": b.kwargs, "stand_ins": list(b.stand_ins),
                                      "file": official_file(args, b).name} for b in selected_baselines(args)}
    settings["checks"] = checks
    return rows, {"env": env, "settings": settings}


# ---------------------------------------------------------------------------------- golden and memory


def check_golden(args: argparse.Namespace) -> dict[str, float]:
    """Run each official copy on the golden cases (checkpoint in the official container, official pre-
    processing) and return the largest difference from the official outputs, per model."""
    import numpy as np

    results: dict[str, float] = {}
    for baseline in selected_baselines(args):
        cases = sorted((Path(args.golden) / baseline.model).glob("*/case.json"))
        if not cases:
            print(f"golden: {baseline.model}: no cases under {Path(args.golden) / baseline.model}", flush=True)
            continue
        cls = load_official_class(args, baseline)
        worst = 0.0
        for case_file in cases:
            case = json.loads(case_file.read_text())
            net = cls(**case["official"]["constructor_args"]).eval()
            raw = torch.load(case_file.parent / case["checkpoint"]["file"], map_location="cpu", weights_only=True)
            state = raw.get("params") or raw.get("state_dict") or raw
            net.load_state_dict({k.removeprefix("module."): v for k, v in state.items()}, strict=True)
            x = torch.from_numpy(np.load(case_file.parent / "input.npy"))
            fitted, (h, w) = fit_for_official(baseline, x)
            with torch.no_grad():
                y = official_forward(baseline, net, torch.device("cpu"))(fitted)[..., :h, :w]
            worst = max(worst, float(np.abs(y.numpy() - np.load(case_file.parent / "output.npy")).max()))
        results[baseline.model] = worst
        print(f"golden: official {baseline.model} copy reproduces {len(cases)} golden outputs within {worst:.1e}", flush=True)
    return results


def memory_child(args: argparse.Namespace) -> None:
    """One inference of one side at ``--size`` in this fresh process; prints its RSS figures as JSON."""
    from lumicap.models import build_model

    if args.threads:
        torch.set_num_threads(args.threads)
    (baseline,) = selected_baselines(args)
    torch.manual_seed(0)
    if args.memory_child == "official":
        net = load_official_class(args, baseline)(**baseline.kwargs).eval()
        forward = official_forward(baseline, net, torch.device("cpu"))
    else:
        net = forward = build_model(baseline.model, **json.loads(args.overrides)).eval()
    width, height = (int(v) for v in args.size.lower().split("x"))
    image = torch.rand(1, 3, height, width)
    before = _rss_now_mib()
    start = time.perf_counter()
    with torch.inference_mode():
        if args.memory_child == "official":
            fitted, (h, w) = fit_for_official(baseline, image)
            out = forward(fitted)[..., :h, :w]
        else:
            out = forward(image)
    seconds = time.perf_counter() - start
    print(json.dumps({"peak_mib": _common._rss_peak_mib(), "before_mib": before, "seconds": seconds,
                      "output": list(out.shape)}))


def _rss_now_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run_memory(args: argparse.Namespace) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    from lumicap.errors import LumicapError

    record = _common.row_recorder(rows := [], args.rows_out)
    script = Path(__file__).resolve()
    for baseline in selected_baselines(args):
        for size in args.sizes.split(","):
            row: dict[str, Any] = {"model": baseline.model, "size": size}
            for side in ("official", "lumicap"):
                which = (["--model", args.model, "--official", args.official, "--official-class", args.official_class,
                          "--official-kwargs", args.official_kwargs] if args.official else ["--models", baseline.model])
                command = [sys.executable, str(script), "--memory-child", side, *which, "--size", size,
                           "--official-root", args.official_root, "--overrides", args.overrides]
                if args.threads:
                    command += ["--threads", str(args.threads)]
                done = subprocess.run(command, capture_output=True, text=True)
                if done.returncode in (-9, 137):  # SIGKILL: the kernel's out-of-memory killer, a result in itself
                    row[f"{side}_mib"] = row[f"{side}_added_mib"] = None
                    row.setdefault("killed", []).append(side)
                    continue
                if done.returncode != 0:
                    last = (done.stderr.strip().splitlines() or ["no output"])[-1]
                    raise LumicapError(f"memory of {side} {baseline.model} at {size} failed: {last[:200]}")
                figures = json.loads(done.stdout.strip().splitlines()[-1])
                row[f"{side}_mib"] = figures["peak_mib"]
                row[f"{side}_added_mib"] = figures["peak_mib"] - figures["before_mib"]
                row[f"{side}_s"] = figures["seconds"]
            row["killed"] = ", ".join(row.get("killed", [])) or None
            record(row)
            print(f"  {baseline.model} {size}: " + ", ".join(
                f"{side} " + ("killed (out of memory)" if row[f"{side}_mib"] is None else f"{row[f'{side}_mib']:.0f} MiB")
                for side in ("official", "lumicap")), flush=True)
    env = _common.environment(torch.device("cpu"))
    env.update(load_after=os.getloadavg(), omp_wait_policy=os.environ.get("OMP_WAIT_POLICY"))
    return rows, {"env": env, "settings": {"models": args.models, "sizes": args.sizes, "threads": args.threads}}


def main(argv: list[str] | None = None):
    args = build_parser().parse_args(argv)
    if args.memory_child:
        return _common.run_or_exit(memory_child, args)
    if args.memory:
        rows, meta = _common.run_or_exit(run_memory, args)
        notes = ["peak resident set size (VmHWM) of a fresh process that builds one network and enhances one image "
                 "(inference mode); 'added' is the peak minus the resident size just before the image",
                 "official side: the test script's padding/cropping where a size needs it; lumicap pads inside forward",
                 f"a side the kernel's out-of-memory killer stopped has no figure (this machine: "
                 f"{_common.total_memory_gib():.0f} GiB, shared with the other processes running)"]
        return _common.report(BENCHMARK + "_memory", args, meta["env"], meta["settings"], MEMORY_COLUMNS, rows, notes)
    rows, meta = _common.run_or_exit(run, args)
    env = meta["env"]
    checks = meta["settings"]["checks"]
    notes = [
        "same weights (official state dict read into lumicap); max output difference (eval, 96x64): "
        + ", ".join(f"{m} {c['max_abs_diff_eval']:.1e}" for m, c in checks.items()),
        f"interleaved rounds, order alternating, {args.rounds} rounds: times are wall-clock medians, the ratios are "
        f"medians of the per-round ratios in wall-clock and in process CPU time (IQR beside each); {env['cpu_threads']} threads, OMP_WAIT_POLICY={env['omp_wait_policy'] or 'unset'}",
        "load average (1/5/15 min) before {:.1f}/{:.1f}/{:.1f}, after {:.1f}/{:.1f}/{:.1f}".format(*env["load_before"], *env["load_after"]),
    ]
    if args.skip != "train":
        notes.append("train steps: the official side steps torch.optim.Adam (reference loop); lumicap's side "
                     + ("the same (--reference-adam: the networks alone)" if args.reference_adam
                        else "the Adam its trainer builds (fused where torch has the kernel)"))
    golden = {m: c["golden"] for m, c in checks.items() if c.get("golden") is not None}
    if golden:
        notes.append("official copies reproduce ../shared/golden within " + ", ".join(f"{m} {d:.1e}" for m, d in golden.items()))
    columns = COLUMNS + (GPU_MEMORY_COLUMNS if args.device == "cuda" else [])
    return _common.report(BENCHMARK, args, env, meta["settings"], columns, rows, notes)


if __name__ == "__main__":
    main()
