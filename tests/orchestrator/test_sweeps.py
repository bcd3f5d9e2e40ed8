"""The ready sweeps in sweeps/: each parses and plans as written (8-GPU nodes) and with --profile cpu,
with the run counts and contents of the seed's experiments."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.plan import describe_plan, make_plan
from orchestrator.spec import load_spec

SWEEPS = Path(__file__).resolve().parents[2] / "sweeps"

# file -> (runs as written, runs with --profile cpu)
RUN_COUNTS = {
    "demo.yaml": (8, 8),  # (baseline + mlp0) x 3 + drop-one over 2 layers x 1
    "drop_one_mlp.yaml": ((1 + 12 + 11) * 2, 1 + 3 + 2),
    "ve_patterns.yaml": (8 * 2, 8),
    "gated_mlp.yaml": ((1 + 3 + 12) * 2, 1 + 3 + 3),
    "doubled_mlp.yaml": ((1 + 6) * 2, 1 + 6),
    "variable_block.yaml": ((1 + 4 + 2) * 2, 1 + 4 + 2),
    "record_ab.yaml": (10 + 10, 3 + 3),
    "speedrun_ab.yaml": (4 + 4, 2 + 2),
    "h200_ab.yaml": (4 + 4, 2 + 2),
    "h200_drop_one_mlp.yaml": (1 + 2, 1 + 2),
    "h200_seed_demo.yaml": (1, 1),
    "h200_text_spread.yaml": (4 + 1, 2 + 1),
}
# GPUs per run and the target, where a sweep is not an 8-GPU FineWeb sweep: the H200 sweeps run one GPU
# per run on synthetic shards (no target); the demo is CPU-only.
GPU_SWEEPS = {
    "h200_ab.yaml": (1, None),
    "h200_drop_one_mlp.yaml": (1, None),
    "h200_seed_demo.yaml": (1, None),
    "h200_text_spread.yaml": (1, None),
}


def _plan(name: str, profile: str | None = None):
    spec = load_spec(SWEEPS / name, profile=profile)
    return spec, make_plan(spec)


def test_every_sweep_is_counted():
    assert sorted(p.name for p in SWEEPS.glob("*.yaml")) == sorted(RUN_COUNTS)


@pytest.mark.parametrize("name", sorted(RUN_COUNTS))
def test_sweep_plans_as_written_and_on_cpu(name):
    full, cpu = RUN_COUNTS[name]
    spec, plan = _plan(name)
    assert len(plan.runs) == full
    assert len({r.run_id for r in plan.runs}) == full
    assert describe_plan(plan).startswith(f"sweep {spec.name} ")
    cspec, cplan = _plan(name, "cpu")
    assert len(cplan.runs) == cpu
    assert all(r.gpus == 0 for r in cplan.runs)
    assert all(r.preset == "tiny" and r.is_trainer for r in cplan.runs)
    assert cspec.target_val_loss is None
    if name != "demo.yaml":
        gpus, target = GPU_SWEEPS.get(name, (8, 3.28))
        assert all(r.gpus == gpus for r in plan.runs)
        assert spec.target_val_loss == target
        assert cspec.name == f"{spec.name}-cpu"  # CPU results never mix with GPU results
        assert all(r.params["steps"] <= 60 for r in cplan.runs)  # small enough for the ci tier


def _arm_params(plan, arm):
    return [r.params for r in plan.runs if r.arm == arm and r.replicate == 0]


def test_drop_one_mlp_series():
    _, plan = _plan("drop_one_mlp.yaml")
    assert [p["mlp_off"] for p in _arm_params(plan, "drop_one")] == [[i] for i in range(12)]
    assert [p["mlp_off"] for p in _arm_params(plan, "drop_0_and_one")] == [[0, i] for i in range(1, 12)]
    assert (
        _arm_params(plan, "baseline")[0]["mlp_off"] == []
        and _arm_params(plan, "baseline")[0]["steps"] == 1670
    )
    # replicates interleave: all of replicate 0 before any of replicate 1
    assert [r.replicate for r in plan.runs] == [0] * 24 + [1] * 24
    # on one H200 (benchmarks/h200_chain.sh part dropall): the same 24 points at h200-mini, once each,
    # on synthetic shards with no target, the blue series before the red one (a sweep in two parts)
    spec, h200 = _plan("drop_one_mlp.yaml", "h200")
    assert [(r.arm, r.params["mlp_off"]) for r in h200.runs] == [
        (r.arm, r.params["mlp_off"]) for r in plan.runs
    ][:24]
    assert all(r.gpus == 1 and r.preset == "h200-mini" and r.params["steps"] == 300 for r in h200.runs)
    assert spec.target_val_loss is None and spec.name == "drop_one_mlp-h200"
    assert spec.resources.compile_cache_dir is not None  # the first run publishes its cache there


def test_ve_patterns_are_the_issue_list():
    _, plan = _plan("ve_patterns.yaml")

    def pat(text):
        return [None if t == "-" else (t if t == "x0" else int(t)) for t in text.split()]

    expected = {
        "baseline": pat("0 1 2 - - - - - - 0 1 2"),
        "first_none": pat("- 0 1 2 - - - - - 0 1 2"),
        "last_none": pat("- 0 1 2 - - - - 0 1 2 -"),
        "two_tables": pat("- 0 1 - - - - - - - 0 1"),
        "two_tables_twice": pat("- 0 1 - - - - - 0 1 0 1"),
        "two_tables_end": pat("- - - - - - - - - - 0 1"),
        "two_tables_norm": pat("- 0 1 - - - - - - - 0 1"),
        "x0_value": pat("- 0 1 - - - - - - x0 0 1"),
    }
    for arm, pattern in expected.items():
        (params,) = _arm_params(plan, arm)
        assert params["ve_pattern"] == pattern, arm
        assert params["ve_norm"] == (arm == "two_tables_norm")
        assert (params["mlp_off"], params["steps"]) == ([0], 1705)  # the seed's record


def test_gated_mlp_arms():
    _, plan = _plan("gated_mlp.yaml")
    glu_all = _arm_params(plan, "glu_all")
    assert [p["glu_hidden"] for p in glu_all] == [768, 1536, 3072]
    assert all(p["mlp_kind"] == ["glu"] * 12 for p in glu_all)
    glu_one = _arm_params(plan, "glu_one")
    assert [p["mlp_kind"].index("glu") for p in glu_one] == list(range(12))
    assert all(p["mlp_kind"].count("glu") == 1 and p["glu_hidden"] == 768 for p in glu_one)
    assert all(p["mlp_off"] == [] for p in glu_all + glu_one)  # from the speedrun baseline


def test_doubled_mlp_flag_combinations():
    _, plan = _plan("doubled_mlp.yaml")
    flags = ("double_diagonal", "double_zero_init", "double_norm_first", "double_norm_mid", "double_residual")
    got = {}
    for arm in plan.arms:
        (p,) = _arm_params(plan, arm)
        assert p["mlp_off"] == [0, 7] and p["steps"] == 1705
        got[arm] = (p["mlp_kind"][6], {f for f in flags if p[f]})
    assert got == {
        "baseline": ("relu2", set()),
        "double": ("double", set()),
        "norm_first": ("double", {"double_norm_first"}),
        "norm_mid": ("double", {"double_norm_mid"}),
        "norm_first_residual": ("double", {"double_norm_first", "double_residual"}),
        "diag_zero_norm_first_residual": (
            "double",
            {"double_diagonal", "double_zero_init", "double_norm_first", "double_residual"},
        ),
        "diag_norm_first_residual": ("double", {"double_diagonal", "double_norm_first", "double_residual"}),
    }


def test_variable_block_paths():
    _, plan = _plan("variable_block.yaml")
    attn = [p["attn_paths"] for p in _arm_params(plan, "attn_paths")]
    assert [(a[0], a[11]) for a in attn] == [(2, 1), (4, 1), (1, 2), (1, 4)]
    mlp = [p["mlp_paths"] for p in _arm_params(plan, "mlp_paths")]
    assert [(m[0], m[7], m[11]) for m in mlp] == [(0, 1, 2), (0, 2, 1)]


def test_record_ab_interleaves_two_commands_on_one_node():
    spec, plan = _plan("record_ab.yaml")
    assert plan.kind == "ab" and len(plan.blocks) == 10
    assert all(b.exclusive_node and len(b.runs) == 2 for b in plan.blocks)
    assert [[r.arm for r in b.runs] for b in plan.blocks[:2]] == [
        ["baseline", "candidate"],
        ["candidate", "baseline"],
    ]
    assert {r.command[-1] for r in plan.runs} == {"records/prev/train_gpt.py", "records/new/train_gpt.py"}
    assert all(r.command[0] == "torchrun" and not r.is_trainer for r in plan.runs)
    _, cplan = _plan("record_ab.yaml", "cpu")
    assert {r.arm: r.params["mlp_off"] for r in cplan.runs} == {"baseline": [], "candidate": [0]}
    assert cplan.target_val_loss is None and len(cplan.blocks) == 3


def test_demo_is_small_and_blocked_per_replicate():
    spec, plan = _plan("demo.yaml")
    assert spec.name == "demo" and load_spec(SWEEPS / "demo.yaml", profile="cpu").name == "demo"
    # two CPUs end together: block 0's four runs on one, blocks 1 and 2 (two each) on the other
    assert [[r.arm for r in b.runs] for b in plan.blocks] == [
        ["baseline", "mlp0", "drop_one", "drop_one"],
        ["mlp0", "baseline"],
        ["baseline", "mlp0"],
    ]
    assert [r.label.get("mlp_off") for r in plan.runs if r.arm == "drop_one"] == [[6], [11]]
    assert all(r.gpus == 0 and r.timeout_s == 300 and r.params["steps"] == 24 for r in plan.runs)
    # the estimate (tiny: ~0.2 s/step + start-up) keeps a run near ten seconds on an idle machine
    assert all(r.estimate_s < 15 for r in plan.runs)


@pytest.mark.ci
@pytest.mark.parametrize("name", ["record_ab.yaml", "drop_one_mlp.yaml"])
def test_cpu_profile_runs_end_to_end_into_a_report(name, tmp_path):
    """Issue 5: the ci tier runs the cpu profiles of record_ab and drop_one_mlp into reports."""
    from analysis.store import read_runs
    from orchestrator.cli import main

    _, plan = _plan(name, "cpu")  # planned first: the ids hash the trainer source as it is now
    out = tmp_path / "results"
    args = ["run", str(SWEEPS / name), "--profile", "cpu", "--results", str(out), "--plain"]
    if name == "record_ab.yaml":  # in two parts: the first invocation starts one block and exits 3
        assert main([*args, "--max-blocks", "1"]) == 3
        assert sorted(read_runs(out)["run_id"]) == sorted(r.run_id for r in plan.blocks[0].runs)
    assert main(args) == 0
    runs = read_runs(out)
    assert sorted(runs["run_id"]) == sorted(r.run_id for r in plan.runs)
    assert set(runs["status"]) == {"ok"}
    for block in plan.blocks:  # every block ran on one node, in the planned order
        mine = runs[runs["block"] == block.block_id].sort_values("order_index")
        assert list(mine["run_id"]) == [r.run_id for r in block.runs]
        assert mine["node_id"].nunique() == 1
    assert (out / "report.md").is_file() and (out / "report.html").is_file()
    assert list((out / "figures").glob("*.png"))


def test_speedrun_ab_synthetic_profile_is_the_full_ab_without_a_target():
    """Issue 9's run: the seed's A/B at full scale on shards made on the GPU machine."""
    spec, plan = _plan("speedrun_ab.yaml", "synthetic")
    full_spec, full = _plan("speedrun_ab.yaml")
    assert spec.name == "speedrun_ab-synthetic" and spec.target_val_loss is None
    assert len(plan.runs) == len(full.runs) == 8 and all(r.gpus == 8 for r in plan.runs)
    assert [r.arm for r in plan.runs] == [r.arm for r in full.runs]
    assert all(r.command[:3] == ("torchrun", "--standalone", "--nproc_per_node=8") for r in plan.runs)
    assert all(r.command[-2:] == ("--data-dir", "/tmp/shards") for r in plan.runs)
    steps = {r.arm: r.params["steps"] for r in plan.runs}
    assert steps == {"baseline": 1670, "record": 1705} and spec.resources.compile_cache_dir
