"""Replicates per grid point: ``repeats: {LAYERS: n, rest: m}`` on a grid that sweeps a layer."""

from __future__ import annotations

from collections import Counter

import pytest

from orchestrator.plan import make_plan, spec_identity_diff
from orchestrator.spec import SpecError, parse_spec


def _spec(arm: dict, **top) -> dict:
    return {"name": "s", "trainer": {"preset": "tiny"}, "arms": {"baseline": {}, "a": arm}, **top}


def _counts(spec: dict) -> Counter:
    return Counter((r.arm, r.point.layers.get("mlp_off")) for r in make_plan(parse_spec(spec)).runs)


def test_layers_named_get_their_count_and_the_rest_theirs():
    counts = _counts(
        _spec({"grid": {"mlp_off": {"each_layer": "0-11"}}, "repeats": {"0,9-11": 3, "rest": 2}})
    )
    assert {layer: counts["a", layer] for layer in range(12)} == {
        layer: 3 if layer in (0, 9, 10, 11) else 2 for layer in range(12)
    }
    assert counts["baseline", None] == 1  # the spec's repeats


def test_without_rest_the_others_take_the_specs_repeats_and_with_lists_sweep_their_extra_layer():
    counts = _counts(
        _spec({"grid": {"mlp_off": {"each_layer": "1-11", "with": [0]}}, "repeats": {10: 4}}, repeats=2)
    )
    assert counts["a", 10] == 4 and counts["a", 1] == 2 and counts["baseline", None] == 2
    assert sum(n for (arm, _), n in counts.items() if arm == "a") == 10 * 2 + 4


def test_replicates_keep_their_ids_when_more_are_asked_for_at_some_layers():
    """More repeats at a few layers adds runs and keeps every run already planned (a sweep in parts)."""
    once = make_plan(parse_spec(_spec({"grid": {"mlp_off": {"each_layer": "0-3"}}})))
    more = make_plan(parse_spec(_spec({"grid": {"mlp_off": {"each_layer": "0-3"}}, "repeats": {"0": 3}})))
    assert {r.run_id for r in once.runs} < {r.run_id for r in more.runs}
    assert len(more.runs) == len(once.runs) + 2
    stored, new = (
        parse_spec(_spec({"grid": {"mlp_off": {"each_layer": "0-3"}}, "repeats": r})) for r in (1, {0: 3})
    )
    assert spec_identity_diff(stored, new) == ["arms.a.repeats", "arms.a.repeats_at"]


@pytest.mark.parametrize(
    ("arm", "message"),
    [
        ({"set": {"mlp_off": [0]}, "repeats": {"0": 3}}, "arms.a.repeats: repeats by layer needs a grid"),
        ({"grid": {"steps": [10, 20]}, "repeats": {"0": 2}}, "sweeps one knob a layer at a time"),
        ({"grid": {"mlp_off": {"each_layer": "0-11"}}, "repeats": {"0,13": 3}}, "layer 13 is not a point"),
        ({"grid": {"mlp_off": {"each_layer": "0-11"}}, "repeats": {"0,1": 3, "1": 2}}, "layer 1 is also in"),
        (
            {"grid": {"mlp_off": {"each_layer": "0-11"}}, "repeats": {"0": 0}},
            "arms.a.repeats.0: 0 is too small",
        ),
        ({"grid": {"mlp_off": {"each_layer": "0-11"}}, "repeats": {"x": 2}}, "is not a layer range"),
        ({"grid": {"mlp_off": {"each_layer": "0-11"}}, "repeats": {"rest": "two"}}, "arms.a.repeats.rest"),
        ({"grid": {"mlp_off": {"each_layer": "0-11"}}, "repeats": {}}, "arms.a.repeats: empty"),
    ],
)
def test_bad_repeats_by_layer_is_one_line_naming_the_field(arm, message):
    with pytest.raises(SpecError) as err:
        make_plan(parse_spec(_spec(arm)))
    assert message in str(err.value) and "\n" not in str(err.value)


def test_the_real_text_figure_runs_every_point_once_and_the_seeds_large_effects_three_times():
    from pathlib import Path

    from orchestrator.spec import load_spec

    sweeps = Path(__file__).resolve().parents[2] / "sweeps"
    spec = load_spec(sweeps / "drop_one_mlp.yaml", profile="h200-text")
    runs = make_plan(spec).runs
    counts = Counter((r.arm, r.point.layers.get("mlp_off")) for r in runs)
    assert counts["baseline", None] == 4
    assert {layer: counts["drop_one", layer] for layer in range(12)} == {
        layer: 3 if layer in (0, 9, 10, 11) else 1 for layer in range(12)
    }
    assert {layer: counts["drop_0_and_one", layer] for layer in range(1, 12)} == {
        layer: 3 if layer in (9, 10, 11) else 1 for layer in range(1, 12)
    }
    assert len(runs) == 41 and all(r.gpus == 1 and r.preset == "h200-mini" for r in runs)
    assert spec.name == "h200-text-drop-one-mlp" and spec.data_dir == "/tmp/text"
    assert spec.target_val_loss is None
    # replicate 0 of all 24 points comes first: the first device sessions draw the whole figure once
    assert {r.replicate for r in runs[:24]} == {0} and len({(r.arm, str(r.label)) for r in runs[:24]}) == 24
    synthetic = load_spec(sweeps / "drop_one_mlp.yaml", profile="h200")
    assert not {r.run_id for r in runs} & {r.run_id for r in make_plan(synthetic).runs}
