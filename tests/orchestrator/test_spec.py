# ruff: noqa: E501  (the table stores each exact one-line message)
"""The spec parser's one-line errors: a table of malformed specs, each with its exact message.

Each message is ``<file>: <field.path>: <what is wrong>; <what is valid>``; the file prefix is
checked once and left out of the table.
"""

from __future__ import annotations

import pytest
import yaml

from orchestrator.cli import UserError
from orchestrator.plan import make_plan
from orchestrator.spec import SpecError, deep_merge, dump_raw, load_spec, parse_spec

BASE = "name: t\ntrainer: {preset: tiny}\nresources: {gpus_per_run: 0}\n"
ARMS = "arms:\n  baseline: {}\n  mlp0: {set: {mlp_off: [0]}}\n"
AB = "kind: ab\narms:\n  baseline: {}\n  mlp0: {set: {mlp_off: [0]}}\n"
# name -> (spec text, expected message after the file name)
CASES = {
    "duplicate_arm": (
        BASE + "arms:\n  baseline: {}\n  baseline: {set: {steps: 3}}\n",
        "duplicate key 'baseline' at line 6, column 3; give each key once",
    ),
    "yaml_syntax": (
        BASE + "arms: {baseline: {}\n",
        "YAML syntax error at line 5, column 1: expected ',' or '}', but got '<stream end>'; fix the YAML syntax there",
    ),
    "yaml_tab": (
        "name: t\narms:\n\tbaseline: {}\n",
        "YAML syntax error at line 3, column 1: found character '\\t' that cannot start any token; fix the YAML syntax there",
    ),
    "top_not_mapping": (
        "- a\n- b\n",
        "expected a mapping of spec fields at the top, got a list; see sweeps/README.md",
    ),
    "empty_file": (
        "",
        "expected a mapping of spec fields at the top, got null; see sweeps/README.md",
    ),
    "unknown_top_key": (
        BASE + ARMS + "repeat: 2\n",
        "repeat: unknown key; allowed: name, description, kind, trainer, resources, repeats, runs_per_arm, order, block_size, blocks, seed, timeout_s, timeout_min, retries, target_val_loss, estimate_min, baseline, arms, contrasts, profiles",
    ),
    "missing_name": (
        "trainer: {preset: tiny}\n" + ARMS,
        "name: missing; give the sweep a name (it names the results folder)",
    ),
    "unsafe_name": (
        "name: ../x\n" + ARMS,
        "name: ../x is not a safe name; use letters, digits, '.', '_', '-' (starting with a letter or digit, no '..')",
    ),
    "name_with_slash": (
        "name: a/b\n" + ARMS,
        "name: a/b is not a safe name; use letters, digits, '.', '_', '-' (starting with a letter or digit, no '..')",
    ),
    "name_not_string": (
        "name: [a]\n" + ARMS,
        "name: a list is not a safe name; use letters, digits, '.', '_', '-' (starting with a letter or digit, no '..')",
    ),
    "bad_kind": (
        BASE + ARMS + "kind: sweep\n",
        "kind: sweep is not valid; choose one of: grid, ab",
    ),
    "unknown_preset": (
        "name: t\ntrainer: {preset: huge}\n" + ARMS,
        "trainer.preset: unknown preset huge; choose one of: speedrun, pr117, h200-mini, tiny",
    ),
    "unknown_trainer_key": (
        "name: t\ntrainer: {preset: tiny, knobs: {}}\n" + ARMS,
        "trainer.knobs: unknown key; allowed: preset, set, data_dir",
    ),
    "unknown_knob_in_trainer_set": (
        "name: t\ntrainer: {preset: tiny, set: {mlp_of: [0]}}\n" + ARMS,
        "trainer.set.mlp_of: unknown knob 'mlp_of'; did you mean 'mlp_off'? (see --list-knobs)",
    ),
    "bad_knob_value_trainer_set": (
        "name: t\ntrainer: {preset: tiny, set: {steps: -3}}\n" + ARMS,
        "trainer.set.steps: -3 must be >= 1",
    ),
    # a mistake in trainer.set comes first, as it is read: not after an arm's, nor blamed on an arm
    "trainer_set_before_an_arms_unknown_knob": (
        "name: t\ntrainer: {preset: tiny, set: {steps: -3}}\narms: {baseline: {}, x: {grid: {mlp_of: [[1]]}}}\n",
        "trainer.set.steps: -3 must be >= 1",
    ),
    "trainer_set_under_an_arms_edit": (
        "name: t\ntrainer: {preset: tiny, set: {steps: -3}}\narms: {baseline: {}, x: {set: {mlp_off: {add: [3]}}}}\n",
        "trainer.set.steps: -3 must be >= 1",
    ),
    "trainer_set_under_an_add_each_grid": (
        "name: t\ntrainer: {preset: tiny, set: {steps: -3}}\narms: {x: {grid: {mlp_off: {add_each: 0-2}}}}\n",
        "trainer.set.steps: -3 must be >= 1",
    ),
    "seed_knob": (
        BASE + "arms:\n  baseline: {set: {seed: 3}}\n",
        "arms.baseline.set.seed: the seed is derived per replicate from the run_id; remove it",
    ),
    "unknown_knob_in_arm": (
        BASE + "arms:\n  baseline: {}\n  x: {set: {mlp_of: [0]}}\n",
        "arms.x.set.mlp_of: unknown knob 'mlp_of'; did you mean 'mlp_off'? (see --list-knobs)",
    ),
    "bad_layer_in_arm": (
        BASE + "arms:\n  baseline: {}\n  x: {set: {mlp_off: [12]}}\n",
        "arms.x.set.mlp_off: layer 12 out of range 0..11",
    ),
    "bad_grid_value": (
        BASE + "arms:\n  baseline: {}\n  x: {grid: {mlp_off: [[1], [13]]}}\n",
        "arms.x.grid.mlp_off[1]: layer 13 out of range 0..11",
    ),
    "grid_not_list": (
        BASE + "arms:\n  baseline: {}\n  x: {grid: {mlp_off: 3}}\n",
        "arms.x.grid.mlp_off: expected a non-empty list of values or {each_layer: RANGE}, got 3",
    ),
    "grid_empty_list": (
        BASE + "arms:\n  baseline: {}\n  x: {grid: {mlp_off: []}}\n",
        "arms.x.grid.mlp_off: expected a non-empty list of values or {each_layer: RANGE}, got an empty list",
    ),
    "grid_duplicate": (
        BASE + "arms:\n  baseline: {}\n  x: {grid: {steps: [10, 20, 10]}}\n",
        "arms.x.grid.steps[2]: duplicate value 10; each grid value once",
    ),
    "grid_unknown_knob": (
        BASE + "arms:\n  baseline: {}\n  x: {grid: {mlp_offf: [[1]]}}\n",
        "arms.x.grid.mlp_offf: unknown knob 'mlp_offf'; did you mean 'mlp_off'? (see --list-knobs)",
    ),
    "each_layer_bad_range": (
        BASE + 'arms:\n  x: {grid: {mlp_off: {each_layer: "3-1"}}}\n',
        'arms.x.grid.mlp_off.each_layer: 3-1 is not a layer range; use "0-11", "0,6,11" or [0, 6, 11]',
    ),
    "each_layer_missing": (
        BASE + "arms:\n  x: {grid: {mlp_off: {with: [0]}}}\n",
        'arms.x.grid.mlp_off: a grid mapping needs each_layer, add_each or remove_each: RANGE (e.g. "0-11"); or give a list of values',
    ),
    "each_layer_unknown_key": (
        BASE + 'arms:\n  x: {grid: {mlp_off: {each_layer: "0-3", plus: [0]}}}\n',
        "arms.x.grid.mlp_off.plus: unknown key; allowed: each_layer, add_each, remove_each, with, value",
    ),
    "each_layer_with_and_value": (
        BASE + 'arms:\n  x: {grid: {mlp_kind: {each_layer: "0-3", with: [0], value: glu}}}\n',
        "arms.x.grid.mlp_kind.value: given together with 'with'; use one: with (layer lists) or value ({layer: value})",
    ),
    "each_layer_out_of_range": (
        BASE + 'arms:\n  x: {grid: {mlp_off: {each_layer: "0-12"}}}\n',
        "arms.x.grid.mlp_off[12]: layer 12 out of range 0..11",
    ),
    "each_layer_bad_value": (
        BASE + 'arms:\n  x: {grid: {mlp_kind: {each_layer: "0-3", value: gelu}}}\n',
        'arms.x.grid.mlp_kind[0]: layer 0: "gelu" is not one of: relu2, glu, double',
    ),
    "arms_missing": (
        BASE,
        "arms: missing; give at least one arm, e.g. arms: {baseline: {}}",
    ),
    "arms_empty": (
        BASE + "arms: {}\n",
        "arms: empty; give at least one arm, e.g. arms: {baseline: {}}",
    ),
    "arms_list": (
        BASE + "arms: [baseline]\n",
        "arms: expected a mapping, got a list",
    ),
    "arm_bad_name": (
        BASE + "arms:\n  'a b': {}\n",
        "arms.a b: a b is not a safe name; use letters, digits, '.', '_', '-' (starting with a letter or digit, no '..')",
    ),
    "arm_unknown_key": (
        BASE + "arms:\n  baseline: {sets: {steps: 3}}\n",
        "arms.baseline.sets: unknown key; allowed: set, grid, repeats, command, cwd, env",
    ),
    "arm_not_mapping": (
        BASE + "arms:\n  baseline: 3\n",
        "arms.baseline: expected a mapping, got 3",
    ),
    "cwd_on_trainer_arm": (
        BASE + "arms:\n  baseline: {cwd: /tmp}\n",
        "arms.baseline.cwd: only for command arms; add command: [argv...] or remove it",
    ),
    "command_with_set": (
        BASE + "arms:\n  a: {command: [echo, hi], set: {steps: 3}}\n",
        "arms.a.set: unknown key; allowed: command, cwd, env, repeats",
    ),
    "command_not_list": (
        BASE + "arms:\n  a: {command: echo hi}\n",
        "arms.a.command: expected a non-empty list of arguments, got echo hi",
    ),
    "command_empty": (
        BASE + "arms:\n  a: {command: []}\n",
        "arms.a.command: expected a non-empty list of arguments, got an empty list",
    ),
    "command_nested": (
        BASE + "arms:\n  a: {command: [echo, [x]]}\n",
        "arms.a.command[1]: expected a string argument, got a list",
    ),
    "env_not_mapping": (
        BASE + "arms:\n  a: {command: [echo], env: [A=1]}\n",
        "arms.a.env: expected a mapping, got a list",
    ),
    "env_nested_value": (
        BASE + "arms:\n  a: {command: [echo], env: {A: [1]}}\n",
        "arms.a.env.A: expected a text value, got a list",
    ),
    "trainer_command_bad_knob": (
        BASE + "arms:\n  a: {command: [python, -m, trainer, --set, 'mlp_of=[0]']}\n",
        "arms.a.command: unknown knob 'mlp_of'; did you mean 'mlp_off'? (see --list-knobs)",
    ),
    "trainer_command_bad_preset": (
        BASE + "arms:\n  a: {command: [python, -m, trainer, --preset, huge]}\n",
        "arms.a.command: unknown preset 'huge'; choose one of: speedrun, pr117, h200-mini, tiny",
    ),
    "repeats_zero": (
        BASE + ARMS + "repeats: 0\n",
        "repeats: 0 is too small; expected an integer >= 1",
    ),
    "repeats_string": (
        BASE + ARMS + "repeats: two\n",
        "repeats: expected an integer >= 1, got two",
    ),
    "arm_repeats_bool": (
        BASE + "arms:\n  baseline: {repeats: true}\n",
        "arms.baseline.repeats: expected an integer >= 1, got true",
    ),
    "gpus_negative": (
        "name: t\nresources: {gpus_per_run: -1}\n" + ARMS,
        "resources.gpus_per_run: -1 is too small; expected an integer >= 0",
    ),
    "cpus_zero": (
        "name: t\nresources: {cpus_per_run: 0}\n" + ARMS,
        "resources.cpus_per_run: 0 must be > 0; expected a positive number",
    ),
    "resources_unknown_key": (
        "name: t\nresources: {gpus: 8}\n" + ARMS,
        "resources.gpus: unknown key; allowed: gpus_per_run, cpus_per_run, exclusive_node, compile_cache_dir",
    ),
    "resources_before_an_arms_unknown_knob": (  # as a spec is written: resources, then arms
        "name: t\nresources: {gpus: 8}\narms: {baseline: {}, x: {set: {mlp_of: [0]}}}\n",
        "resources.gpus: unknown key; allowed: gpus_per_run, cpus_per_run, exclusive_node, compile_cache_dir",
    ),
    "exclusive_not_bool": (
        "name: t\nresources: {exclusive_node: yes please}\n" + ARMS,
        "resources.exclusive_node: expected true or false, got yes please",
    ),
    "both_timeouts": (
        BASE + ARMS + "timeout_s: 60\ntimeout_min: 1\n",
        "timeout_min: given together with timeout_s; give one of them",
    ),
    "timeout_negative": (
        BASE + ARMS + "timeout_min: -5\n",
        "timeout_min: -5 must be > 0; expected a positive number",
    ),
    "retries_negative": (
        BASE + ARMS + "retries: -1\n",
        "retries: -1 is too small; expected an integer >= 0",
    ),
    "target_string": (
        BASE + ARMS + "target_val_loss: low\n",
        "target_val_loss: expected a number, got low",
    ),
    "baseline_not_arm": (
        BASE + ARMS + "baseline: base\n",
        "baseline: base is not an arm; choose one of: baseline, mlp0",
    ),
    "grid_runs_per_arm": (
        BASE + ARMS + "runs_per_arm: 3\n",
        "runs_per_arm: only for kind ab; for kind grid use repeats",
    ),
    "grid_block_size": (
        BASE + ARMS + "block_size: 2\n",
        "block_size: only for kind ab; for kind grid use blocks: per_replicate",
    ),
    "grid_order_without_blocks": (
        BASE + ARMS + "order: abba\n",
        "order: orders runs within a block; for kind grid it needs blocks: per_replicate",
    ),
    "bad_blocks": (
        BASE + ARMS + "blocks: per_node\n",
        "blocks: per_node is not valid; choose one of: per_run, per_replicate",
    ),
    "bad_order": (
        BASE + ARMS + "blocks: per_replicate\norder: zigzag\n",
        "order: zigzag is not valid; choose one of: alternate, abba, random-blocks",
    ),
    "ab_repeats": (
        BASE + AB + "repeats: 3\n",
        "repeats: only for kind grid; for kind ab use runs_per_arm",
    ),
    "ab_three_arms": (
        BASE + "kind: ab\narms: {a: {}, b: {}, c: {}}\n",
        "arms: kind ab needs exactly 2 arms (baseline and candidate), got 3",
    ),
    "ab_grid_arm": (
        BASE + "kind: ab\narms:\n  baseline: {}\n  x: {grid: {steps: [1, 2]}}\n",
        "arms.x.grid: kind ab compares two single configurations; use set, or kind grid",
    ),
    "ab_not_multiple": (
        BASE + AB + "runs_per_arm: 5\nblock_size: 2\n",
        "runs_per_arm: 5 is not a multiple of block_size 2; every block holds block_size of each arm",
    ),
    "ab_bad_order": (
        BASE + AB + "order: ab\n",
        "order: ab is not valid; choose one of: alternate, abba, random-blocks",
    ),
    "ab_arm_repeats": (
        BASE + "kind: ab\narms:\n  baseline: {repeats: 2}\n  mlp0: {set: {mlp_off: [0]}}\n",
        "arms.baseline.repeats: only for kind grid; for kind ab use runs_per_arm",
    ),
    "profiles_not_mapping": (
        BASE + ARMS + "profiles: [cpu]\n",
        "profiles: expected a mapping, got a list",
    ),
    "profile_unknown_key": (
        BASE + ARMS + "profiles:\n  cpu: {gpu: 0}\n",
        "profiles.cpu.gpu: unknown key; allowed: name, description, kind, trainer, resources, repeats, runs_per_arm, order, block_size, blocks, seed, timeout_s, timeout_min, retries, target_val_loss, estimate_min, baseline, arms, contrasts",
    ),
    "profile_bad_name": (
        BASE + ARMS + "profiles:\n  'c/u': {}\n",
        "profiles.c/u: c/u is not a safe name; use letters, digits, '.', '_', '-' (starting with a letter or digit, no '..')",
    ),
    "duplicate_resolved_point": (
        BASE + "arms:\n  x: {grid: {mlp_kind: [glu, [glu,glu,glu,glu,glu,glu,glu,glu,glu,glu,glu,glu]]}}\n",
        'arms.x.grid: mlp_kind=["glu","glu","glu","glu","glu","glu","glu","glu","glu","glu","glu","glu"] and mlp_kind="glu" resolve to the same configuration; give each grid value once',
    ),
    "description_not_text": (
        BASE + ARMS + "description: [a]\n",
        "description: expected text, got a list",
    ),
    "estimate_zero": (
        BASE + ARMS + "estimate_min: 0\n",
        "estimate_min: 0 must be > 0; expected a positive number",
    ),
    # edits of inherited layer lists: {add: [...]}, {remove: [...]}, add_each / remove_each
    "edit_not_a_layer_list": (
        BASE + "arms:\n  x: {set: {mlp_kind: {add: [3]}}}\n",
        "arms.x.set.mlp_kind: add/remove edit a layer list (attn_off, mlp_off); mlp_kind takes a full value or {layer: value}",
    ),
    "edit_of_long_window_layers": (  # layer indices, but a plain tuple knob: no {layer: value} either
        BASE + "arms:\n  x: {set: {long_window_layers: {add: [3]}}}\n",
        "arms.x.set.long_window_layers: add/remove edit a layer list (attn_off, mlp_off); long_window_layers takes a full value",
    ),
    "edit_unknown_key": (
        BASE + "arms:\n  x: {set: {mlp_off: {plus: [3]}}}\n",
        "arms.x.set.mlp_off.plus: unknown key; allowed: add, remove",
    ),
    "edit_empty": (
        BASE + "arms:\n  x: {set: {mlp_off: {}}}\n",
        "arms.x.set.mlp_off: empty edit; give add: [layers] and/or remove: [layers]",
    ),
    "edit_out_of_range": (
        BASE + "arms:\n  x: {set: {attn_off: {add: [12]}}}\n",
        "arms.x.set.attn_off.add: layer 12 out of range 0..11",
    ),
    "edit_bad_layers": (
        BASE + "arms:\n  x: {set: {attn_off: {add: three}}}\n",
        'arms.x.set.attn_off.add: three is not a layer range; use "0-11", "0,6,11" or [0, 6, 11]',
    ),
    "edit_adds_an_inherited_layer": (
        BASE.replace("{preset: tiny}", "{preset: tiny, set: {mlp_off: [0]}}")
        + "arms:\n  x: {set: {mlp_off: {add: [0, 3]}}}\n",
        "arms.x.set.mlp_off.add: layer 0 is already in the inherited mlp_off [0]; leave it out",
    ),
    "edit_removes_a_layer_not_there": (
        BASE + "arms:\n  x: {set: {attn_off: {remove: [3]}}}\n",
        "arms.x.set.attn_off.remove: layer 3 is not in the inherited attn_off [7]; nothing to remove",
    ),
    "edit_in_trainer_set": (
        BASE.replace("{preset: tiny}", "{preset: tiny, set: {mlp_off: {remove: [0]}}}") + ARMS,
        "trainer.set.mlp_off.remove: layer 0 is not in the inherited mlp_off []; nothing to remove",
    ),
    "edit_adds_and_removes_a_layer": (
        BASE + "arms:\n  x: {set: {attn_off: {add: [7], remove: [7]}}}\n",
        "arms.x.set.attn_off: layer 7 is both added and removed; give it in one of them",
    ),
    "edit_as_a_whole_grid": (
        BASE + "arms:\n  x: {grid: {mlp_off: {add: [3]}}}\n",
        'arms.x.grid.mlp_off: an edit ({add: ...} or {remove: ...}) is one value; a grid takes a list of values, e.g. [{add: [3]}, {add: [5]}], or {add_each: "3,5"}',
    ),
    "edit_grid_value_bad": (
        BASE + "arms:\n  x: {grid: {attn_off: [{add: [3]}, {remove: [2]}]}}\n",
        "arms.x.grid.attn_off[1].remove: layer 2 is not in the inherited attn_off [7]; nothing to remove",
    ),
    "edit_grid_value_twice": (
        BASE + "arms:\n  x: {grid: {attn_off: [[3, 7], {add: [3]}]}}\n",
        "arms.x.grid.attn_off[1]: makes [3, 7], as value 0 does; each grid value once",
    ),
    "add_each_over_an_inherited_layer": (
        BASE.replace("{preset: tiny}", "{preset: tiny, set: {mlp_off: [0]}}")
        + 'arms:\n  x: {grid: {mlp_off: {add_each: "0-11"}}}\n',
        "arms.x.grid.mlp_off.add_each: layer 0 is already in the inherited mlp_off [0]; leave it out of the range",
    ),
    "remove_each_a_layer_not_there": (
        BASE + 'arms:\n  x: {grid: {attn_off: {remove_each: "6-7"}}}\n',
        "arms.x.grid.attn_off.remove_each: layer 6 is not in the inherited attn_off [7]; nothing to remove",
    ),
    "add_each_with_value": (
        BASE + 'arms:\n  x: {grid: {mlp_off: {add_each: "1-3", value: 1}}}\n',
        "arms.x.grid.mlp_off.value: add_each edits a layer list; for {layer: value} points use each_layer with value",
    ),
    "add_each_and_each_layer": (
        BASE + 'arms:\n  x: {grid: {mlp_off: {each_layer: "1-3", add_each: "1-3"}}}\n',
        "arms.x.grid.mlp_off.add_each: given together with each_layer; use one of them",
    ),
    "add_each_on_a_per_layer_value": (
        BASE + 'arms:\n  x: {grid: {mlp_kind: {add_each: "1-3"}}}\n',
        "arms.x.grid.mlp_kind.add_each: add/remove edit a layer list (attn_off, mlp_off); mlp_kind takes a full value or {layer: value}",
    ),
}


def _load(tmp_path, monkeypatch, text: str, profile: str | None = None):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "s.yaml").write_text(text)
    return make_plan(load_spec("s.yaml", profile=profile))


def test_the_table_is_big_enough():
    assert len(CASES) >= 30


@pytest.mark.parametrize("case", sorted(CASES))
def test_malformed_spec_gives_its_one_line_error(case, tmp_path, monkeypatch):
    text, expected = CASES[case]
    with pytest.raises(SpecError) as info:
        _load(tmp_path, monkeypatch, text)
    message = str(info.value)
    assert message == f"s.yaml: {expected}"
    assert "\n" not in message
    assert isinstance(info.value, UserError)  # so `ablate` prints it as one line and exits 2


def test_unknown_profile_names_the_profiles(tmp_path, monkeypatch):
    text = BASE + ARMS + "profiles: {cpu: {}, small: {repeats: 1}}\n"
    with pytest.raises(
        SpecError, match=r"^s\.yaml: --profile: 'gpu' is not a profile of this spec; profiles: cpu, small$"
    ):
        _load(tmp_path, monkeypatch, text, profile="gpu")


def test_missing_file_is_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(
        SpecError, match=r"^nope\.yaml: no such spec file; pass a YAML file such as sweeps/demo\.yaml$"
    ):
        load_spec("nope.yaml")


def test_a_profile_error_points_at_the_merged_field(tmp_path, monkeypatch):
    text = BASE + ARMS + "profiles:\n  cpu: {trainer: {set: {steps: 0}}}\n"
    _load(tmp_path, monkeypatch, text)  # valid without the profile
    with pytest.raises(SpecError, match=r"^s\.yaml: trainer\.set\.steps: 0 must be >= 1$"):
        _load(tmp_path, monkeypatch, text, profile="cpu")


def test_defaults_and_conversions():
    spec = parse_spec(
        {"name": "s", "timeout_min": 2.5, "arms": {"a": {}, "b": {"command": ["x"], "env": {"F": True}}}}
    )
    assert spec.timeout_s == 150.0 and spec.retries == 1 and spec.repeats == 1
    assert spec.baseline == "a"  # no arm named baseline: the first
    assert spec.kind == "grid" and spec.resources.exclusive_node is False and spec.preset == "speedrun"
    assert spec.arm("b").env == {"F": "true"} and spec.arm("b").is_command
    ab = parse_spec({"name": "s", "kind": "ab", "arms": {"x": {}, "baseline": {}}})
    assert ab.resources.exclusive_node is True and ab.baseline == "baseline" and ab.runs_per_arm == 1


def test_each_layer_shorthand():
    spec = parse_spec(
        {
            "name": "s",
            "arms": {
                "one": {"grid": {"mlp_off": {"each_layer": "0-2,11"}}},
                "pair": {"grid": {"mlp_off": {"each_layer": [0, 1, 2], "with": [0]}}},
                "kind": {"grid": {"mlp_kind": {"each_layer": "5", "value": "glu"}}},
            },
        }
    )
    assert spec.arm("one").grid == (("mlp_off", ([0], [1], [2], [11])),)
    assert spec.arm("pair").grid == (("mlp_off", ([0, 1], [0, 2])),)  # [0] + 0 would repeat layer 0
    assert spec.arm("kind").grid == (("mlp_kind", ({5: "glu"},)),)


def test_layer_list_edits_apply_over_each_level_below():
    """preset -> trainer.set -> the arm's set -> its grid: an edit is resolved over the level below."""
    spec = parse_spec(
        {
            "name": "s",
            "trainer": {"preset": "tiny", "set": {"mlp_off": [0], "attn_off": {"add": [3]}}},
            "arms": {
                "baseline": {},
                "attn7_on": {"set": {"attn_off": {"remove": [7]}}},
                "more": {"grid": {"mlp_off": {"add_each": "1,2"}}},
                "more_with": {"grid": {"mlp_off": {"add_each": "1,2", "with": [5]}}},
                "fewer": {"grid": {"mlp_off": {"remove_each": "0"}}},
                "mixed": {"grid": {"mlp_off": [{"add": [4]}, [6], {"remove": [0], "add": [1]}]}},
                "stacked": {"set": {"mlp_off": {"add": [3]}}, "grid": {"mlp_off": {"add_each": "4"}}},
            },
        }
    )
    assert spec.trainer_set == {"mlp_off": [0], "attn_off": [3, 7]}  # tiny's [7] plus 3
    assert spec.arm("attn7_on").set == {"attn_off": [3]}
    assert spec.arm("attn7_on").removed == {"attn_off": (7,)}  # said in so many words
    assert spec.arm("more").grid == (("mlp_off", ([0, 1], [0, 2])),)
    assert spec.arm("more_with").grid == (("mlp_off", ([0, 1, 5], [0, 2, 5])),)
    assert spec.arm("fewer").grid == (("mlp_off", ([],)),) and spec.arm("fewer").removed == {"mlp_off": (0,)}
    assert spec.arm("mixed").grid == (("mlp_off", ([0, 4], [6], [1])),)
    assert spec.arm("stacked").grid == (("mlp_off", ([0, 3, 4],)),)
    assert spec.arm("more").removed == {} and spec.arm("baseline").removed == {}


def test_an_edit_is_the_same_run_as_the_list_it_makes():
    """Run identity is the resolved knobs: {add: [3]} over [7] and [3, 7] are one run, and a spec
    rewritten from one spelling to the other is not a changed spec."""
    from orchestrator.plan import spec_identity_diff

    def spec(value):
        return parse_spec(
            {
                "name": "s",
                "trainer": {"preset": "tiny"},
                "arms": {"baseline": {}, "x": {"set": {"attn_off": value}}},
            },
            "s.yaml",
        )

    edited, listed = spec({"add": [3]}), spec([3, 7])
    assert [r.run_id for r in make_plan(edited).runs] == [r.run_id for r in make_plan(listed).runs]
    assert spec_identity_diff(edited, listed) == []
    assert make_plan(edited).runs[1].command[-2:] == ("--set", "attn_off=[3,7]")


def test_deep_merge_merges_mappings_and_replaces_the_rest():
    base = {"a": {"x": 1, "y": [1, 2]}, "b": 1, "c": {"k": {"z": 0}}}
    over = {"a": {"y": [3]}, "c": {"k": None}, "d": 4}
    assert deep_merge(base, over) == {"a": {"x": 1, "y": [3]}, "b": 1, "c": {"k": None}, "d": 4}
    assert base == {"a": {"x": 1, "y": [1, 2]}, "b": 1, "c": {"k": {"z": 0}}}  # not mutated


def test_profile_merges_one_grid_of_one_arm(tmp_path):
    text = (
        "name: s\narms:\n  baseline: {}\n  d: {set: {ve_norm: true}, grid: {mlp_off: {each_layer: '0-11'}}}\n"
        "profiles:\n  cpu: {trainer: {preset: tiny}, arms: {d: {grid: {mlp_off: {each_layer: '3'}}}}}\n"
    )
    (tmp_path / "s.yaml").write_text(text)
    spec = load_spec(tmp_path / "s.yaml", profile="cpu")
    assert spec.arm("d").grid == (("mlp_off", ([3],)),) and spec.arm("d").set == {"ve_norm": True}
    assert yaml.safe_load(dump_raw(spec)) == yaml.safe_load(text)  # the spec as submitted


def test_compile_cache_dir_is_a_resource_and_not_identity(tmp_path):
    from orchestrator.plan import spec_identity_diff
    from orchestrator.spec import SpecError, parse_spec

    base = {
        "name": "s",
        "trainer": {"preset": "tiny"},
        "resources": {"gpus_per_run": 0},
        "arms": {"baseline": {}},
    }
    a = parse_spec(base, "s.yaml")
    b = parse_spec({**base, "resources": {"gpus_per_run": 0, "compile_cache_dir": "/shared/cc"}}, "s.yaml")
    assert b.resources.compile_cache_dir == "/shared/cc"
    assert spec_identity_diff(a, b) == []
    import pytest

    with pytest.raises(SpecError, match="resources.compile_cache_dir: expected a folder path"):
        parse_spec({**base, "resources": {"compile_cache_dir": 3}}, "s.yaml")
