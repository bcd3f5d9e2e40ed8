"""Planning: run identity, seeds, ordering into blocks, identity diffs and the --dry-run text."""

from __future__ import annotations

import dataclasses
import shlex
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analysis.knobdiff import layer_axis
from orchestrator import plan as plan_mod
from orchestrator.plan import ab_pattern, describe_plan, make_plan, seed_from_run_id, spec_identity_diff
from orchestrator.spec import load_spec, parse_spec

AB_SPEC = """\
name: tiny-ab
kind: ab
order: abba
runs_per_arm: 2
resources: {gpus_per_run: 2}
estimate_min: 3
timeout_min: 10
retries: 2
arms:
  baseline: {command: [bash, run.sh, base]}
  candidate: {command: [bash, run.sh, cand], env: {MODE: fast}}
"""

# run_id, seed, arm, replicate, block, order_index of AB_SPEC with run.sh = "echo hello\n". The ids
# hash a command arm (no trainer source involved), so they change only if the identity recipe
# changes: a change here would orphan every stored result of every user.
AB_EXPECTED = [
    ("1c9ad08b40f73fb6", 479907979, "baseline", 0, 0, 0),
    ("8934bc8900c43dd1", 154451081, "candidate", 0, 0, 1),
    ("5926b5d714a4bfa4", 1495709143, "candidate", 1, 1, 0),
    ("04ad35dbd784521e", 78460379, "baseline", 1, 1, 1),
]

AB_DESCRIBED = """\
sweep tiny-ab (kind ab, profile -): 4 runs in 2 blocks, 2 GPU(s) per run, each block on an exclusive node
baseline arm: baseline; target val loss: none

block  #  arm        point  rep gpus       seed  run_id            state
    0  0  baseline   -        0    2  479907979  1c9ad08b40f73fb6  done
    0  1  candidate  -        0    2  154451081  8934bc8900c43dd1  todo
    1  0  candidate  -        1    2 1495709143  5926b5d714a4bfa4  todo
    1  1  baseline   -        1    2   78460379  04ad35dbd784521e  todo

arms:
  baseline     2 runs,  1 point(s)
      bash run.sh base
  candidate    2 runs,  1 point(s)
      vs baseline: base -> cand, env MODE: (unset) -> fast
      bash run.sh cand

to run: 3 of 4 runs (1 done)
estimate: ~0.30 GPU-hours; 0.15 run-hours one after another (rough: start-up and compile included)
"""


@pytest.fixture
def ab_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "run.sh").write_text("echo hello\n")
    (tmp_path / "ab.yaml").write_text(AB_SPEC)
    return tmp_path


def test_stored_run_ids_and_seeds(ab_dir):
    plan = make_plan(load_spec("ab.yaml"))
    got = [(r.run_id, r.seed, r.arm, r.replicate, r.block, r.order_index) for r in plan.runs]
    assert got == AB_EXPECTED
    first = plan.runs[0]
    assert first.command == ("bash", "run.sh", "base") and not first.is_trainer and first.params == {}
    assert first.timeout_s == 600 and first.retries == 2 and first.gpus == 2
    assert first.script_sha256 == "5dbad7dd0b9b122dcd9956884390f4aac4738caba8ff53498a7ab6718b176c30"
    assert plan.runs[1].env == {"MODE": "fast"}
    assert all(b.exclusive_node for b in plan.blocks)  # the default for kind ab


def test_describe_plan_text(ab_dir):
    plan = make_plan(load_spec("ab.yaml"))
    assert describe_plan(plan, done_run_ids=frozenset({AB_EXPECTED[0][0]})) == AB_DESCRIBED


def test_planning_is_deterministic(ab_dir):
    assert make_plan(load_spec("ab.yaml")) == make_plan(load_spec("ab.yaml"))


def test_editing_a_named_script_makes_new_runs(ab_dir):
    before = [r.run_id for r in make_plan(load_spec("ab.yaml")).runs]
    (ab_dir / "run.sh").write_text("echo changed\n")
    after = make_plan(load_spec("ab.yaml")).runs
    assert set(before).isdisjoint(r.run_id for r in after)
    assert {r.seed for r in after} == {seed_from_run_id(r.run_id) for r in after}


def test_a_script_is_found_relative_to_the_spec_folder(tmp_path, monkeypatch):
    (tmp_path / "sweeps").mkdir()
    (tmp_path / "sweeps" / "job.py").write_text("print(1)\n")
    (tmp_path / "sweeps" / "s.yaml").write_text("name: s\narms: {a: {command: [python, job.py]}}\n")
    monkeypatch.chdir(tmp_path)
    run = make_plan(load_spec("sweeps/s.yaml")).runs[0]
    assert run.script_sha256 == plan_mod.file_sha256(tmp_path / "sweeps" / "job.py")


def test_an_output_file_the_run_writes_does_not_change_its_id(tmp_path, monkeypatch):
    """Only the program and its scripts / configs are identity: a run that writes --out x.json must
    not get a new id (and run again) because it ran; editing the script or its config does."""
    (tmp_path / "job.py").write_text("print(1)\n")
    (tmp_path / "cfg.yaml").write_text("lr: 1\n")
    (tmp_path / "s.yaml").write_text(
        "name: s\narms: {a: {command: [python, job.py, --config, cfg.yaml, --out, out.json]}}\n"
    )
    monkeypatch.chdir(tmp_path)
    first = make_plan(load_spec("s.yaml")).runs[0].run_id
    (tmp_path / "out.json").write_text("{}")
    assert make_plan(load_spec("s.yaml")).runs[0].run_id == first
    (tmp_path / "cfg.yaml").write_text("lr: 2\n")
    after_config = make_plan(load_spec("s.yaml")).runs[0].run_id
    (tmp_path / "job.py").write_text("print(2)\n")
    after_script = make_plan(load_spec("s.yaml")).runs[0].run_id
    assert len({first, after_config, after_script}) == 3


def test_seeds_differ_per_replicate_and_fit_31_bits():
    spec = parse_spec({"name": "s", "repeats": 20, "trainer": {"preset": "tiny"}, "arms": {"baseline": {}}})
    runs = make_plan(spec).runs
    assert len({r.seed for r in runs}) == 20
    assert all(0 <= r.seed < 2**31 for r in runs)
    assert [r.replicate for r in runs] == list(range(20))


def test_trainer_source_is_part_of_the_identity(monkeypatch):
    spec = parse_spec({"name": "s", "trainer": {"preset": "tiny"}, "arms": {"baseline": {}}})
    first = make_plan(spec).runs[0].run_id
    monkeypatch.setattr(plan_mod, "trainer_source_hash", lambda: "edited")
    assert make_plan(spec).runs[0].run_id != first


def test_source_hash_covers_the_training_code_but_not_the_corpus_builders(tmp_path):
    pkg = tmp_path / "trainer"
    (pkg / "english").mkdir(parents=True)
    (pkg / "model.py").write_text("W = 1\n")
    (pkg / "english" / "build.py").write_text("GOAL = 1\n")
    first = plan_mod.source_hash(pkg, plan_mod.DATA_BUILDERS)
    (pkg / "english" / "build.py").write_text("GOAL = 2\n")  # a corpus tool edited: same runs
    assert plan_mod.source_hash(pkg, plan_mod.DATA_BUILDERS) == first
    assert plan_mod.source_hash(pkg) != first  # not skipped, it would count
    (pkg / "model.py").write_text("W = 2\n")  # the model edited: new runs
    assert plan_mod.source_hash(pkg, plan_mod.DATA_BUILDERS) != first
    (pkg / "model.py").write_text("W = 1\n")
    (pkg / "english.py").write_text("")  # only the subfolder is skipped, not a module of that name
    assert plan_mod.source_hash(pkg, plan_mod.DATA_BUILDERS) != first
    builders = Path(plan_mod.__file__).parents[1] / "trainer" / "english"
    assert "english" in plan_mod.DATA_BUILDERS and builders.is_dir()


def test_trainer_arm_commands_params_and_labels():
    spec = parse_spec({
        "name": "s", "trainer": {"preset": "tiny", "set": {"steps": 30}}, "resources": {"gpus_per_run": 4},
        "arms": {"baseline": {},
                 "drop": {"set": {"ve_norm": True}, "grid": {"mlp_off": {"each_layer": "3,5"}}}},
    })  # fmt: skip
    plan = make_plan(spec)
    base, d3, d5 = plan.runs
    assert base.command == (
        "torchrun", "--standalone", "--nproc_per_node=4", "-m", "trainer",
        "--preset", "tiny", "--set", "steps=30",
    )  # fmt: skip
    assert d3.command[-4:] == ("--set", "ve_norm=true", "--set", "mlp_off=[3]")
    assert d3.label == {"mlp_off": [3]} and d5.label == {"mlp_off": [5]} and base.label == {}
    assert d3.is_trainer and d3.preset == "tiny" and d3.params["mlp_off"] == [3] and d3.params["steps"] == 30
    assert plan.knob_types == {"mlp_off": "json", "ve_norm": "bool", "steps": "int"}
    assert d3.estimate_s == pytest.approx(5.0 + 30 * 0.18)
    one_gpu = make_plan(
        dataclasses.replace(spec, resources=dataclasses.replace(spec.resources, gpus_per_run=1))
    )
    assert one_gpu.runs[0].command[:3] == ("python", "-m", "trainer")


def test_every_trainer_command_resolves_to_its_params():
    """What the trainer will parse from the command line is exactly what was planned and hashed."""
    from trainer.config import config_to_dict, parse_set, resolve

    spec = parse_spec({
        "name": "s", "trainer": {"preset": "tiny"},
        "arms": {"a": {"grid": {"mlp_kind": {"each_layer": "0,11", "value": "glu"}, "adam_eps": [1e-9]}},
                 "b": {"set": {"ve_pattern": "- 0 1 - - - - - - x0 0 1", "attn_paths": {0: 2}}}},
    })  # fmt: skip
    for run in make_plan(spec).runs:
        args = run.command[run.command.index("trainer") + 1 :]
        sets = [args[i + 1] for i, a in enumerate(args) if a == "--set"]
        assert config_to_dict(resolve(run.preset, parse_set(sets))) == run.params
        assert shlex.split(shlex.join(run.command)) == list(run.command)


def test_command_arm_running_the_trainer_gets_seeds_and_params():
    spec = parse_spec({
        "name": "s", "kind": "ab", "runs_per_arm": 2,
        "arms": {"baseline": {"command": ["python", "-m", "trainer", "--preset", "tiny"]},
                 "mlp0": {"command": ["python", "-m", "trainer", "--preset", "tiny",
                                      "--set", "mlp_off=[0]"]}},
    })  # fmt: skip
    plan = make_plan(spec)
    assert all(r.is_trainer and r.preset == "tiny" for r in plan.runs)
    assert {r.arm: r.params["mlp_off"] for r in plan.runs} == {"baseline": [], "mlp0": [0]}
    assert plan.knob_types == {"mlp_off": "json", "steps": "int"}


def _grid_spec(**kw):
    data = {"name": "g", "trainer": {"preset": "tiny"}, "repeats": 2,
            "arms": {"baseline": {}, "d": {"grid": {"mlp_off": [[1], [2]]}}}}  # fmt: skip
    data.update(kw)
    return parse_spec(data)


def test_grid_interleaves_replicates_one_run_per_block():
    plan = make_plan(_grid_spec())
    seq = [(r.arm, str(r.label), r.replicate) for r in plan.runs]
    assert seq == [
        ("baseline", "{}", 0), ("d", "{'mlp_off': [1]}", 0), ("d", "{'mlp_off': [2]}", 0),
        ("baseline", "{}", 1), ("d", "{'mlp_off': [1]}", 1), ("d", "{'mlp_off': [2]}", 1),
    ]  # fmt: skip
    assert [len(b.runs) for b in plan.blocks] == [1] * 6
    assert [r.block for r in plan.runs] == list(range(6))
    assert not any(b.exclusive_node for b in plan.blocks)


def test_per_replicate_blocks_with_arm_repeats_and_abba():
    spec = _grid_spec(blocks="per_replicate", order="abba", repeats=1,
                      arms={"baseline": {"repeats": 3}, "mlp0": {"set": {"mlp_off": [0]}, "repeats": 3},
                            "d": {"grid": {"mlp_off": [[3], [6]]}}})  # fmt: skip
    blocks = make_plan(spec).blocks
    names = [[(r.arm, r.replicate) for r in b.runs] for b in blocks]
    assert names == [
        [("baseline", 0), ("mlp0", 0), ("d", 0), ("d", 0)],
        [("mlp0", 1), ("baseline", 1)],
        [("baseline", 2), ("mlp0", 2)],
    ]
    for b in blocks:
        assert [r.order_index for r in b.runs] == list(range(len(b.runs)))
        assert {r.block for r in b.runs} == {b.block_id}


def test_per_replicate_random_order_is_seeded():
    orders = {}
    for seed in (1, 2):
        spec = _grid_spec(blocks="per_replicate", order="random-blocks", seed=seed, repeats=6)
        orders[seed] = [[(r.arm, str(r.label)) for r in b.runs] for b in make_plan(spec).blocks]
        again = [[(r.arm, str(r.label)) for r in b.runs] for b in make_plan(spec).blocks]
        assert again == orders[seed]
    assert orders[1] != orders[2]
    assert all(sorted(map(str, b)) == sorted(map(str, orders[1][0])) for b in orders[1])


def test_ab_patterns():
    assert ab_pattern("alternate", 3, 1, 0) == ["AB", "AB", "AB"]
    assert ab_pattern("abba", 4, 1, 0) == ["AB", "BA", "AB", "BA"]
    assert ab_pattern("abba", 2, 2, 0) == ["ABBA", "ABBA"]
    assert ab_pattern("alternate", 1, 3, 0) == ["ABABAB"]
    rnd = ab_pattern("random-blocks", 50, 2, seed=7)
    assert rnd == ab_pattern("random-blocks", 50, 2, seed=7) != ab_pattern("random-blocks", 50, 2, seed=8)
    assert all(Counter(b) == {"A": 2, "B": 2} for b in rnd)
    assert len(set(rnd)) > 1


@pytest.mark.parametrize("order", ["alternate", "abba", "random-blocks"])
def test_ab_blocks_hold_block_size_of_each_arm(order):
    spec = parse_spec({
        "name": "ab", "kind": "ab", "order": order, "runs_per_arm": 6, "block_size": 2,
        "trainer": {"preset": "tiny"},
        "arms": {"cand": {"set": {"mlp_off": [0]}}, "baseline": {}},
    })  # fmt: skip
    plan = make_plan(spec)
    assert plan.baseline_arm == "baseline" and len(plan.blocks) == 3
    for block in plan.blocks:
        assert Counter(r.arm for r in block.runs) == {"baseline": 2, "cand": 2}
    for arm in ("baseline", "cand"):
        assert [r.replicate for r in plan.runs if r.arm == arm] == list(range(6))
    assert len({r.run_id for r in plan.runs}) == 12


def test_identity_diff_ignores_timeouts_retries_and_description():
    base = {"name": "s", "trainer": {"preset": "tiny", "set": {"steps": 10}}, "arms": {"baseline": {}}}
    a = parse_spec(base)
    b = parse_spec(
        {**base, "timeout_min": 3, "retries": 5, "description": "x", "resources": {"cpus_per_run": 2}}
    )
    assert spec_identity_diff(a, b) == []
    c = parse_spec({**base, "trainer": {"preset": "tiny", "set": {"steps": 11}}, "repeats": 2})
    assert spec_identity_diff(a, c) == ["repeats", "trainer.set.steps"]
    d = parse_spec({**base, "arms": {"baseline": {}, "mlp0": {"set": {"mlp_off": [0]}}}})
    assert spec_identity_diff(a, d) == ["arms.mlp0", "arm_order"]


def test_profiles_rename_the_sweep_and_keep_the_raw_spec(tmp_path):
    text = (
        "name: s\narms: {baseline: {}}\n"
        "profiles:\n  cpu: {trainer: {preset: tiny}, resources: {gpus_per_run: 0}}\n"
    )
    path = Path(tmp_path / "s.yaml")
    path.write_text(text)
    spec = load_spec(path, profile="cpu")
    assert (spec.name, spec.preset, spec.resources.gpus_per_run, spec.profile) == ("s-cpu", "tiny", 0, "cpu")
    assert "profiles" in spec.raw and spec.raw["name"] == "s"
    plan = make_plan(spec)
    assert plan.profile == "cpu" and plan.name == "s-cpu" and plan.runs[0].sweep == "s-cpu"


@settings(max_examples=40, deadline=None)
@given(
    order=st.sampled_from(["alternate", "abba", "random-blocks"]),
    n_blocks=st.integers(1, 12),
    size=st.integers(1, 4),
    seed=st.integers(0, 2**31 - 1),
)
def test_ab_pattern_properties(order, n_blocks, size, seed):
    blocks = ab_pattern(order, n_blocks, size, seed)
    assert len(blocks) == n_blocks
    assert all(Counter(b) == {"A": size, "B": size} for b in blocks)
    if order != "random-blocks":  # pairs: each A next to its B, the first pair of the sweep is AB
        assert all(b[i : i + 2] in ("AB", "BA") for b in blocks for i in range(0, 2 * size, 2))
        assert blocks[0].startswith("AB")


@settings(max_examples=25, deadline=None)
@given(repeats=st.lists(st.integers(1, 4), min_size=1, max_size=4))
def test_grid_interleaving_is_replicate_major(repeats):
    arms = {f"a{i}": {"command": ["echo", str(i)], "repeats": r} for i, r in enumerate(repeats)}
    runs = make_plan(parse_spec({"name": "g", "arms": arms})).runs
    assert [r.replicate for r in runs] == sorted(r.replicate for r in runs)
    assert Counter(r.arm for r in runs) == {f"a{i}": r for i, r in enumerate(repeats)}
    assert len({r.seed for r in runs}) == len(runs)


def test_data_dir_reaches_trainer_commands_but_not_run_ids():
    from orchestrator.plan import make_plan, spec_identity_diff
    from orchestrator.spec import parse_spec

    base = {"name": "d", "trainer": {"preset": "tiny"}, "resources": {"gpus_per_run": 0},
            "arms": {"baseline": {}, "mlp0": {"set": {"mlp_off": [0]}}}}  # fmt: skip
    plain = parse_spec(base, "d.yaml")
    here = parse_spec({**base, "trainer": {"preset": "tiny", "data_dir": "/data/a"}}, "d.yaml")
    there = parse_spec({**base, "trainer": {"preset": "tiny", "data_dir": "/data/b"}}, "d.yaml")
    plain_runs, here_runs, there_runs = (make_plan(s).runs for s in (plain, here, there))
    assert all(r.command[-2:] == ("--data-dir", "/data/a") for r in here_runs)
    assert all("--data-dir" not in r.command for r in plain_runs)
    # moving the shards is not a new experiment: same run ids, and the spec may be resubmitted
    ids = [[r.run_id for r in runs] for runs in (plain_runs, here_runs, there_runs)]
    assert ids[0] == ids[1] == ids[2]
    assert spec_identity_diff(here, there) == []


def test_the_plan_records_the_layer_each_grid_point_sweeps():
    spec = parse_spec({
        "name": "s", "trainer": {"preset": "tiny"}, "resources": {"gpus_per_run": 0},
        "arms": {"baseline": {},
                 "one": {"grid": {"mlp_off": {"each_layer": "3,5"}, "steps": [10, 20]}},
                 "zero_and": {"grid": {"mlp_off": {"each_layer": "1-3", "with": [0]}}},
                 "listed": {"grid": {"attn_off": [[0, 7], [0, 9]]}},
                 "paths": {"grid": {"attn_paths": [{0: 2}, {0: 4}]}},
                 "single": {"grid": {"mlp_off": {"each_layer": "4"}}}},
    })  # fmt: skip
    by_arm: dict[str, list] = {}
    for r in make_plan(spec).runs:
        by_arm.setdefault(r.arm, []).append((r.point.values, r.point.layers))
    assert by_arm["baseline"] == [({}, {})]
    assert [layers for _, layers in by_arm["one"]] == [{"mlp_off": 3}] * 2 + [{"mlp_off": 5}] * 2
    assert by_arm["one"][1][0] == {"mlp_off": [3], "steps": 20}
    assert by_arm["zero_and"] == [({"mlp_off": [0, n]}, {"mlp_off": n}) for n in (1, 2, 3)]
    assert [layers for _, layers in by_arm["listed"]] == [{"attn_off": 7}, {"attn_off": 9}]
    # path counts per layer are values, not layers; a grid of one point sweeps nothing
    assert [layers for _, layers in by_arm["paths"]] == [{}, {}] and by_arm["single"] == [
        ({"mlp_off": [4]}, {})
    ]
    assert layer_axis(([0], [0, 1, 2])) is None and layer_axis(([True], [False])) is None


def test_the_reports_guess_for_older_folders_is_the_plans_own():
    """Results without recorded layers: the report infers each run's layer from its knob values with
    the plan's function (`knobdiff.layer_axis`), a value per run (replicates repeat it): the layers the
    plan gives the points of a grid written out, replicate by replicate."""
    import json

    import pandas as pd

    from analysis.report import layer_points

    spec = parse_spec({
        "name": "s", "trainer": {"preset": "tiny"}, "resources": {"gpus_per_run": 0}, "repeats": 2,
        "arms": {"baseline": {},
                 "zero_and": {"grid": {"mlp_off": [[0, 1], [0, 5], [0, 11]]}},
                 "steps": {"grid": {"steps": [3, 4]}},
                 "single": {"set": {"mlp_off": [4]}}},
    })  # fmt: skip
    runs = make_plan(spec).runs
    rows = pd.DataFrame(
        {"run_id": r.run_id, "arm": r.arm, "status": "ok", "final_val_loss": 3.0, "train_time_ms": 1.0,
         "knob_mlp_off": json.dumps(r.params["mlp_off"])} for r in runs
    )  # fmt: skip
    pts = layer_points(rows)
    planned = [(r.arm, r.point.layers["mlp_off"]) for r in runs if r.point.layers]
    assert sorted(zip(pts["arm"], pts["layer"], strict=True)) == sorted(planned)
    assert len(planned) == 6 and set(pts["series"]) == {"zero_and (mlp_off)"}


def test_a_remove_each_grid_records_the_layer_each_point_turns_back_on():
    """{remove_each: "0-3"} over mlp_off [0, 1, 2, 3]: each point is the list less one layer, which the
    guess from the values cannot place (they share nothing); the spec's shorthand names it. Run ids are
    the resolved knobs, whatever the shorthand."""
    base = {
        "name": "s",
        "trainer": {"preset": "tiny", "set": {"mlp_off": [0, 1, 2, 3]}},
        "resources": {"gpus_per_run": 0},
    }
    shorthand = parse_spec(
        {
            **base,
            "arms": {
                "baseline": {},
                "on": {"grid": {"mlp_off": {"remove_each": "0-3"}}},
                "added": {"grid": {"attn_off": {"add_each": "5,6"}}},
            },
        }
    )
    written = parse_spec({**base, "arms": {"baseline": {}, "on": {"grid": {"mlp_off": [[1, 2, 3], [0, 2, 3],
                                                                                     [0, 1, 3], [0, 1, 2]]}},
                                           "added": {"grid": {"attn_off": [[5, 7], [6, 7]]}}}})  # fmt: skip
    runs = [r for r in make_plan(shorthand).runs if r.arm == "on"]
    assert [r.point.layers for r in runs] == [{"mlp_off": n} for n in range(4)]
    assert [r.point.values["mlp_off"] for r in runs] == [[1, 2, 3], [0, 2, 3], [0, 1, 3], [0, 1, 2]]
    assert layer_axis(tuple(r.point.values["mlp_off"] for r in runs)) is None  # no guess finds it
    added = [r.point.layers for r in make_plan(shorthand).runs if r.arm == "added"]
    assert added == [{"attn_off": 5}, {"attn_off": 6}]  # tiny's attn_off [7] plus one
    ids = {r.run_id for r in make_plan(shorthand).runs}
    assert ids == {r.run_id for r in make_plan(written).runs}


def test_sweep_json_holds_the_plans_run_ids_and_grid_layers():
    from orchestrator.commands import sweep_info

    plan = make_plan(load_spec(Path(__file__).resolve().parents[2] / "sweeps" / "demo.yaml"))
    info = sweep_info(plan, Path("sweeps/demo.yaml")).to_json()
    assert info["run_ids"] == [r.run_id for r in plan.runs] and info["planned_runs"] == 8
    drop = {r.run_id: r.point.layers["mlp_off"] for r in plan.runs if r.arm == "drop_one"}
    assert info["point_layers"] == {rid: {"mlp_off": layer} for rid, layer in drop.items()}
    assert sorted(drop.values()) == [6, 11]
    # the description, the profile's where it sets one (the report's first lines); none: no key
    spec = Path(__file__).resolve().parents[2] / "sweeps" / "drop_one_mlp.yaml"
    text = sweep_info(make_plan(load_spec(spec, profile="h200-text")), spec).to_json()["description"]
    assert text.startswith("The seed's figure at h200-mini") and "4 runs a point" in text
    assert sweep_info(make_plan(load_spec(spec)), spec).to_json()["description"].startswith("Drop one MLP")
    assert "description" not in sweep_info(dataclasses.replace(plan, description=""), spec).to_json()


# ---------------------------------------------------------------------------------------------
# Issue 17: each arm's difference from the baseline, warnings for what an arm turns back on, scripts.

RECORD_BASE = """\
name: w
trainer: {preset: tiny, set: {mlp_off: [0]}}
resources: {gpus_per_run: 0}
arms:
  baseline: {}
  attn3: {set: {attn_off: [3]}}
  attn3_kept: {set: {attn_off: {add: [3]}}}
  attn7_on: {set: {attn_off: {remove: [7]}}}
  drop_one: {grid: {mlp_off: {each_layer: "0,3,6"}}}
  drop_more: {grid: {mlp_off: {add_each: "3,6"}}}
  all_on: {set: {mlp_off: {remove: [0]}}, grid: {mlp_off: {each_layer: "3,6"}}}
  cmd: {command: [python, -m, trainer, --preset, tiny, --set, "mlp_off=[0]", --set, "attn_off=[2]"]}
"""


def _record_plan(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "w.yaml").write_text(RECORD_BASE)
    spec = load_spec("w.yaml")
    return spec, make_plan(spec)


def test_dry_run_shows_each_arms_difference_from_the_baseline_knob_by_knob(tmp_path, monkeypatch):
    _, plan = _record_plan(tmp_path, monkeypatch)
    lines = [ln.strip() for ln in describe_plan(plan).splitlines() if ln.strip().startswith("vs baseline")]
    assert lines == [
        "vs baseline: attn_off: [7] -> [3]",
        "vs baseline: attn_off: [7] -> [3, 7]",
        "vs baseline: attn_off: [7] -> []",
        "vs baseline at mlp_off=[0]: same as the baseline",
        "vs baseline at mlp_off=[3]: mlp_off: [0] -> [3]",
        "vs baseline at mlp_off=[6]: mlp_off: [0] -> [6]",
        "vs baseline at mlp_off=[0,3]: mlp_off: [0] -> [0, 3]",
        "vs baseline at mlp_off=[0,6]: mlp_off: [0] -> [0, 6]",
        "vs baseline at mlp_off=[3]: mlp_off: [0] -> [3]",
        "vs baseline at mlp_off=[6]: mlp_off: [0] -> [6]",
        "vs baseline: attn_off: [7] -> [2]",
    ]


def test_an_arm_turning_back_on_what_the_baseline_has_off_is_warned(tmp_path, monkeypatch):
    """Not when the list is added to ({add}, add_each) or the arm removes the layer in so many words."""
    spec, plan = _record_plan(tmp_path, monkeypatch)
    warnings = plan_mod.plan_warnings(spec, plan)
    assert [w.split(": ")[2] for w in warnings] == ["arms.attn3", "arms.drop_one", "arms.cmd"]
    assert warnings[0] == (
        "warning: w.yaml: arms.attn3: turns the attention of layer 7 back on (attn_off: [7] -> [3]; off in "
        "the baseline arm 'baseline'); to keep it off add to the list (attn_off: {add: [...]}, in a grid "
        "{add_each: RANGE}); if it is meant, say so: attn_off: {remove: [7]} in the arm's set "
        "(sweeps/README.md)"
    )
    assert "turns the MLP of layer 0 back on in 2 of 3 points (e.g. mlp_off: [0] -> [3];" in warnings[1]
    assert (
        "the attention of layer 7 back on" in warnings[2]
        and "the command's --set attn_off=[...]" in warnings[2]
    )
    assert all("\n" not in w for w in warnings)


def test_a_layer_the_baseline_arms_own_set_has_off_is_advised_from_that_set():
    """Other arms start from trainer.set, not from the baseline arm's set: an {add: ...} (add_each) there
    does not keep it off and {remove: ...} of it is refused, so the advice names the baseline arm's set
    and trainer.set; what it says to do silences the warning."""
    arms = {"baseline": {"set": {"mlp_off": [0]}}, "x": {"set": {"mlp_off": [3]}},
            "g": {"grid": {"mlp_off": {"add_each": "3,5"}}}}  # fmt: skip
    spec = parse_spec({"name": "s", "trainer": {"preset": "tiny"}, "resources": {"gpus_per_run": 0},
                       "arms": arms}, "w.yaml")  # fmt: skip
    warnings = plan_mod.plan_warnings(spec, make_plan(spec))
    advice = (
        "layer 0 is off in arms.baseline.set, which the other arms do not start from: to keep it off list "
        "it in this arm's set too (or move it to trainer.set, which every arm starts from); if it is meant, "
        "move it to trainer.set and say so in this arm's set: mlp_off: {remove: [0]} (sweeps/README.md)"
    )
    assert [w.split(": ")[2] for w in warnings] == ["arms.x", "arms.g"]
    assert all(w.endswith(f"'baseline'); {advice}") for w in warnings)
    assert "{add: [...]}" not in warnings[0]
    kept = {"baseline": {}, "x": {"set": {"mlp_off": [0, 3]}},
            "g": {"grid": {"mlp_off": {"add_each": "3,5"}}},
            "on": {"set": {"mlp_off": {"remove": [0]}}}}  # fmt: skip
    moved = parse_spec({"name": "s", "trainer": {"preset": "tiny", "set": {"mlp_off": [0]}},
                        "resources": {"gpus_per_run": 0}, "arms": kept}, "w.yaml")  # fmt: skip
    assert plan_mod.plan_warnings(moved, make_plan(moved)) == []


def test_the_shipped_sweeps_warn_of_nothing_turned_back_on():
    import yaml

    for path in sorted((Path(__file__).parents[2] / "sweeps").glob("*.yaml")):
        for profile in [None, *(yaml.safe_load(path.read_text()).get("profiles") or {})]:
            spec = load_spec(path, profile=profile)
            assert plan_mod.plan_warnings(spec, make_plan(spec)) == [], (path, profile)


@pytest.mark.parametrize(
    ("command", "scripts"),
    [
        (
            ["torchrun", "--standalone", "--nproc_per_node=8", "records/prev/train_gpt.py"],
            ["records/prev/train_gpt.py"],
        ),
        (["torchrun", "--nproc_per_node", "8", "train.py", "--config", "cfg.py"], ["train.py", "cfg.py"]),
        (["torchrun", "--standalone", "-m", "trainer", "--preset", "tiny"], []),
        (["torchrun", "--no-python", "bash", "run.sh"], ["run.sh"]),
        (["python", "-m", "trainer", "--set", "steps=3"], []),
        (["python3", "-u", "-W", "ignore", "job"], ["job"]),
        (["/usr/bin/python3.11", "job.py", "--out=result.py"], ["job.py"]),
        (["python", "-c", "print(1)"], []),
        (["bash", "run.sh", "base"], ["run.sh"]),
        (["./go.sh", "x"], ["./go.sh"]),
        (["make", "all"], []),
        (["bash", "-c", "python x.py"], []),
        (["python", "-c", "import sys; sys.exit(1)", "data.sh"], ["data.sh"]),
    ],
)
def test_the_scripts_a_command_runs(command, scripts):
    assert plan_mod.command_scripts(tuple(command)) == scripts


def test_a_script_is_looked_for_where_named_files_are(tmp_path, monkeypatch):
    (tmp_path / "sweeps").mkdir()
    (tmp_path / "up").mkdir()
    (tmp_path / "up" / "in_cwd.py").write_text("")
    (tmp_path / "sweeps" / "in_spec_folder.py").write_text("")
    (tmp_path / "here.sh").write_text("")
    (tmp_path / "sweeps" / "s.yaml").write_text(
        "name: s\narms:\n"
        "  a: {command: [python, in_cwd.py], cwd: up}\n"
        "  b: {command: [python, in_spec_folder.py]}\n"
        "  c: {command: [bash, here.sh]}\n"
        f"  d: {{command: [python, {tmp_path / 'here.sh'}]}}\n"
        "  e: {command: [python, gone.py], cwd: up}\n"
        "  f: {command: [torchrun, --standalone, -m, trainer]}\n"
    )
    monkeypatch.chdir(tmp_path)
    spec = load_spec("sweeps/s.yaml")
    assert plan_mod.missing_scripts(spec) == [("e", "gone.py")]
    assert plan_mod.script_warnings(spec) == [
        "warning: sweeps/s.yaml: arms.e.command: gone.py not found in up (the arm's cwd), sweeps (the spec's "
        "folder) or the current folder; its runs would fail: run from the folder that holds it, or set the "
        "arm's cwd"
    ]
    from orchestrator.spec import SpecError

    with pytest.raises(
        SpecError, match=r"^sweeps/s\.yaml: arms\.e\.command: gone\.py not found in up .*\(nothing was run\)$"
    ):
        plan_mod.check_scripts(spec)


def test_a_command_arm_differs_by_its_arguments_cwd_and_env(ab_dir):
    plan = make_plan(load_spec("ab.yaml"))
    base, cand = plan.runs[0], plan.runs[1]
    assert plan_mod.run_diff(base, cand) == "base -> cand, env MODE: (unset) -> fast"
    longer = dataclasses.replace(cand, command=(*cand.command, "--fast"), env={}, cwd="elsewhere")
    assert plan_mod.run_diff(base, longer) == "base -> cand --fast, cwd: . -> elsewhere"


def test_a_big_grid_lists_the_first_points_differences():
    spec = parse_spec(
        {
            "name": "s",
            "trainer": {"preset": "tiny"},
            "arms": {"baseline": {}, "g": {"grid": {"steps": list(range(1, 41))}}},
        }
    )
    lines = [ln.strip() for ln in describe_plan(make_plan(spec)).splitlines() if ln.startswith("      ")]
    diffs = [ln for ln in lines if ln.startswith("vs baseline")]
    assert len(diffs) == plan_mod.POINT_DIFF_LINES and diffs[0] == "vs baseline at steps=1: steps: 200 -> 1"
    assert "... and 8 more points" in lines
