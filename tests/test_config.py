"""Config schema: YAML + base chain + dotted overrides, and one-line errors naming the key."""

from __future__ import annotations

import pytest

from lumicap.config import BUILTIN_LOSSES, apply_overrides, dump_yaml, from_dict, load_config, parse_value, to_dict
from lumicap.errors import ConfigError

BASE_YAML = """
model: {name: iat}
data: {root: /data/LOL-v1, layout: lol-v1}
stages:
  - name: patches
    iterations: 100
    batch_size: 8
    patch_size: 128
    losses: {l1: 1.0}
    optimizer: {name: adam, lr: 2e-4}
    scheduler: {name: cosine_restart_cyclic, periods: [40, 60], restart_weights: [1, 1], eta_mins: [3e-4, 1e-6]}
  - name: whole
    iterations: 50
    batch_size: 4
    patch_size: null
    losses: {l1: 1.0, ssim: 0.5}
"""


@pytest.fixture
def base_file(tmp_path):
    path = tmp_path / "exp-baseline.yaml"
    path.write_text(BASE_YAML)
    return path


def test_load_fills_defaults_and_names_run_after_file(base_file):
    cfg = load_config(base_file)
    assert cfg.name == "exp-baseline"
    assert cfg.stages[0].optimizer.lr == pytest.approx(2e-4)  # "2e-4" is a float, not a string
    assert cfg.stages[0].scheduler.eta_mins == [3e-4, 1e-6]
    assert cfg.stages[1].patch_size is None
    assert cfg.train.amp == "none" and cfg.train.select_on == "val" and not cfg.mfr.enabled
    assert cfg.total_iterations == 150
    assert load_config(base_file, ["train.max_iters=30"]).total_iterations == 30


def test_base_chain_merges_sections_and_mfr_file_adds_block(base_file, tmp_path):
    mfr = tmp_path / "exp-mfr.yaml"
    mfr.write_text("base: exp-baseline.yaml\nmfr: {enabled: true, teacher: clipcap-coco, weights: [1, 0.5, 2]}\n")
    cfg, base = load_config(mfr), load_config(base_file)
    assert cfg.name == "exp-mfr"
    assert cfg.mfr.enabled and cfg.mfr.weights == (1.0, 0.5, 2.0)
    a, b = to_dict(cfg), to_dict(base)
    assert {k for k in a if a[k] != b[k]} == {"mfr", "name"}


def test_base_loop_is_an_error(tmp_path):
    (tmp_path / "a.yaml").write_text("base: b.yaml\n")
    (tmp_path / "b.yaml").write_text("base: a.yaml\n")
    with pytest.raises(ConfigError, match="loops"):
        load_config(tmp_path / "a.yaml")


def test_dotted_overrides_by_index_and_stage_name(base_file):
    cfg = load_config(
        base_file,
        ["train.amp=bf16", "stages.0.iterations=10", "stages.whole.optimizer.lr=1e-5", "stages.1.losses={l1: 2}",
         "mfr.gpt_layers=[1, 3]", "train.grad_clip=0.01"],
    )
    assert cfg.train.amp == "bf16"
    assert cfg.stages[0].iterations == 10
    assert cfg.stages[1].optimizer.lr == pytest.approx(1e-5)
    assert cfg.stages[1].losses == {"l1": 2.0}
    assert cfg.mfr.gpt_layers == [1, 3]
    assert cfg.train.grad_clip == pytest.approx(0.01)


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.lerning_rate=1", "train.lerning_rate: unknown key (given 1); allowed: seed, amp,"),
        ("train.amp=fp32", "train.amp: got 'fp32'; allowed: one of none, bf16, fp16"),
        ("stages.0.batch_size=2.5", "stages.0.batch_size: got 2.5; allowed: an integer in 1..65536"),
        ("stages.0.iterations=-5", "stages.0.iterations: got -5; allowed: an integer in 1..2147483647"),
        ("stages.0.iterations=true", "stages.0.iterations: got True; allowed: an integer"),
        ("mfr.weights=[1, 2]", "mfr.weights: got [1, 2]; allowed: a list of 3 items, each a finite number in [0, "),
        ("mfr.distance=l3", "mfr.distance: got 'l3'; allowed: one of l1, l2, cosine"),
        ("stages.0.losses.perceptual=1", "stages.0.losses.perceptual: unknown key (given 1.0); allowed: built-in losses: l1,"),
        ("stages.0.scheduler.gamma=0.5", "stages.0.scheduler.gamma: got 0.5; allowed: null (not used by scheduler 'cosine_restart_cyclic'"),
        ("stages.0.scheduler.periods=[10, 20]", "stages.0.scheduler.periods: got [10, 20]; allowed: periods that sum to at least the stage's 100"),
        ("stages.1.scheduler={name: multistep}", "stages.1.scheduler.milestones: missing required key (scheduler 'multistep' needs it)"),
        ("data.val_fraction=1.5", "data.val_fraction: got 1.5; allowed: a finite number in [0, 1)"),
        ("train.ema_decay=1.0", "train.ema_decay: got 1.0; allowed: a finite number in (0, 1) or null"),
        ("stages.9.iterations=1", "override key 'stages.9': index 9 out of range"),
        ("stages.decompose.iterations=1", "override key 'stages.decompose': no item named 'decompose' (items: patches, whole)"),
        ("train.seed", "is not of the form key=value"),
        ("name=../x", "name: got '../x'; allowed: a string matching"),
    ],
)
def test_bad_values_are_one_line_errors_naming_the_key(base_file, override, message):
    with pytest.raises(ConfigError) as info:
        load_config(base_file, [override])
    lines = info.value.problems
    assert str(info.value) == "\n".join(lines)
    assert any(message in line for line in lines), lines
    for line in lines:  # schema problems name the file; override syntax problems name the override
        assert line.startswith(str(base_file)) or line.startswith("override"), line


def test_missing_required_and_wrong_top_level(tmp_path):
    (tmp_path / "c.yaml").write_text("model: {name: iat}\nstages: []\n")
    with pytest.raises(ConfigError, match="data: missing required key"):
        load_config(tmp_path / "c.yaml")
    (tmp_path / "d.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(tmp_path / "d.yaml")
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "missing.yaml")


def test_dump_and_reload_round_trip(base_file, tmp_path):
    cfg = load_config(base_file, ["mfr.enabled=true", "train.ema_decay=0.999"])
    again = tmp_path / "again.yaml"
    again.write_text(dump_yaml(cfg))
    assert to_dict(load_config(again)) == to_dict(cfg)


def test_parse_value_reads_yaml_scalars():
    assert parse_value("1e-4") == pytest.approx(1e-4)
    assert parse_value("10") == 10 and isinstance(parse_value("10"), int)
    assert parse_value("null") is None
    assert parse_value("[0.9, 0.99]") == [0.9, 0.99]
    assert parse_value("bf16") == "bf16"


def test_config_loss_names_match_the_loss_module():
    from lumicap.losses import BUILTIN

    assert set(BUILTIN) == set(BUILTIN_LOSSES)


def test_model_defined_stage_losses_allowed_for_other_objectives(base_file):
    cfg = load_config(base_file, ["stages.0.objective=decompose", "stages.0.losses={recon: 1.0, smooth: 0.1}"])
    assert cfg.stages[0].losses == {"recon": 1.0, "smooth": 0.1}
    with pytest.raises(ConfigError, match=r"stages.0.losses.smooth: got -1; allowed: a finite number in \[0, "):
        from_dict(apply_overrides(to_dict(cfg), ["stages.0.losses.smooth=-1"]))


# Each range of the schema at its edges: the last allowed value passes, the first one outside fails
# with a line naming the key and the value.
RANGES = [
    ("stages.0.optimizer.lr", ["1e-12", "10"], ["0", "-1e-4", "10.5", "1e300", ".inf", ".nan"]),
    ("stages.0.optimizer.eps", ["1e-12", "1"], ["0", "-1", "2"]),
    ("stages.0.optimizer.momentum", ["0", "0.999", "null"], ["-1", "1", "1.0"]),
    ("stages.0.optimizer.betas", ["[0, 0.999]"], ["[0.9, 1]", "[-0.1, 0.9]", "[0.9]"]),
    ("stages.0.optimizer.weight_decay", ["0", "10"], ["-1e-4", "11"]),
    ("stages.0.batch_size", ["1", "65536"], ["0", "-2", "65537"]),
    ("stages.1.patch_size", ["11", "null"], ["10", "8"]),  # stage 1 has an ssim loss: 11x11 windows
    ("stages.0.patch_size", ["8"], ["7", "0"]),
    ("stages.1.iterations", ["1", "2147483647"], ["0", "2147483648"]),
    ("train.seed", ["0", str(2**63 - 1)], ["-1", str(2**63), str(2**64)]),
    ("data.val_seed", [str(2**63 - 1)], [str(2**63)]),
    ("train.grad_clip", ["0.01", "null"], ["0", "-1", ".inf"]),
    ("train.max_minutes", ["0.5"], ["0", ".nan"]),
    ("data.num_workers", ["0", "256"], ["-1", "257"]),
    ("data.mixup_alpha", ["0.1"], ["0", "-1"]),
    ("stages.0.losses.l1", ["0", "1e6"], ["-1", "1e7", ".inf"]),
    ("mfr.kl_weight", ["0"], ["-0.5"]),
    ("eval.val_images", ["0"], ["-1"]),
    ("stages.0.scheduler.eta_mins", ["[0, 0]"], ["[-1e-6, 0]"]),
]


@pytest.mark.parametrize("key, good, bad", RANGES, ids=[r[0] for r in RANGES])
def test_every_range_at_its_edges(base_file, key, good, bad):
    for text in good:
        load_config(base_file, [f"{key}={text}"])
    for text in bad:
        with pytest.raises(ConfigError) as info:
            load_config(base_file, [f"{key}={text}"])
        (line,) = info.value.problems
        named = line.split(": ")[1]  # the key itself, or one of its items (betas.1)
        assert named == key or named.startswith(key + "."), line
        assert ": got " in line and "; allowed: " in line


def test_schema_constants_match_the_code_they_describe():
    from lumicap.config.schema import LAYOUTS, SSIM_WINDOW
    from lumicap.data import LAYOUTS as DATA_LAYOUTS
    from lumicap.metrics.ssim import WINDOW_SIZE

    assert SSIM_WINDOW == WINDOW_SIZE
    assert set(LAYOUTS) == {"auto", *DATA_LAYOUTS}


def test_model_overrides_are_checked_against_the_constructor(base_file):
    load_config(base_file, ["model.overrides={variant: exp, in_dim: 4, with_global: false}"])
    with pytest.raises(ConfigError) as info:
        load_config(base_file, ["model.overrides={variant: evil, in_dim: 0, with_globl: true, n_feat: 3}"])
    lines = sorted(line.split(": ", 1)[1] for line in info.value.problems)
    assert lines == [
        "model.overrides.in_dim: got 0; allowed: an integer in 1..2147483647",
        "model.overrides.n_feat: unknown key (given 3); allowed: arguments of iat: in_dim, with_global, variant, "
        "border, global_downscale",
        "model.overrides.variant: got 'evil'; allowed: one of lol, exp",
        "model.overrides.with_globl: unknown key (given True); allowed: arguments of iat: in_dim, with_global, "
        "variant, border, global_downscale (did you mean with_global?)",
    ]
    with pytest.raises(ConfigError, match="model.name: got 'iatt'; allowed: one of iat, llformer"):
        load_config(base_file, ["model.name=iatt"])


def test_parse_value_reads_floats_written_without_a_dot():
    assert parse_value("1e-4") == pytest.approx(1e-4) and isinstance(parse_value("1e-4"), float)
    assert parse_value("2E3") == 2000.0 and isinstance(parse_value("-5e+2"), float)
