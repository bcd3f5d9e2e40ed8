"""Contrasts: a spec's questions about a layer grid (the seed's "one of 9-11 costs more than one of the
middle"), checked when the spec and the plan are made, stored in sweep.json, answered by the report."""

from __future__ import annotations

import json

import pytest

from analysis import store
from analysis.resultsdir import ResultsDir, SweepInfo
from analysis.summary import contrast_table
from orchestrator.commands import sweep_info
from orchestrator.plan import make_plan, plan_contrasts, spec_identity_diff
from orchestrator.spec import SpecError, load_spec, parse_spec
from tests.analysis.helpers import run_row

ARMS = {
    "baseline": {},
    "drop_one": {"grid": {"mlp_off": {"each_layer": "0-2"}}},
    "drop_0_and_one": {"grid": {"mlp_off": {"each_layer": "1-2", "with": [0]}}},
    "wide": {"set": {"model_dim": 64}},
}


def _spec(contrasts, arms=ARMS):
    return parse_spec({"name": "s", "trainer": {"preset": "tiny"}, "arms": arms, "contrasts": contrasts})


def test_a_contrast_reads_the_arm_its_layers_and_what_it_is_against():
    spec = _spec([
        {"arm": "drop_0_and_one", "layers": "2", "against": 1},
        {"label": "  MLP 0\n  alone ", "arm": "drop_one", "layers": [0], "against": "baseline"},
    ])  # fmt: skip
    first, second = spec.contrasts
    assert (first.label, first.layers, first.against) == (
        "drop_0_and_one: layers 2 vs layers 1",
        (2,),
        (1,),
    )
    assert (second.label, second.against) == ("MLP 0 alone", None)
    assert plan_contrasts(spec) == (
        {"label": first.label, "arm": "drop_0_and_one", "knob": "mlp_off", "layers": [2], "against": [1]},
        {"label": "MLP 0 alone", "arm": "drop_one", "knob": "mlp_off", "layers": [0], "against": "baseline"},
    )


@pytest.mark.parametrize(
    "contrasts, message",
    [
        ({"arm": "drop_one"}, "contrasts: expected a list of {arm, layers, against}, got a mapping"),
        ([{"arm": "drop_one", "layers": 0}], "contrasts[0].against: missing"),
        ([{"arm": "drop_on", "layers": 0, "against": "baseline"}], "contrasts[0].arm: drop_on is not an arm"),
        ([{"arm": "baseline", "layers": 0, "against": 1}],
         "contrasts[0].arm: 'baseline' is the baseline arm"),
        ([{"arm": "drop_one", "layers": "0-", "against": 1}], "contrasts[0].layers: 0- is not a layer range"),
        ([{"arm": "drop_one", "layers": 0, "against": "basline"}],
         'contrasts[0].against: basline is neither "baseline" nor layers of arm \'drop_one\' such as "1-8"'),
        ([{"arm": "drop_one", "layers": "0-1", "against": "1-2"}],
         "contrasts[0].against: layer 1 is in layers"),
        ([{"arm": "drop_one", "layers": 0, "against": 1, "lable": "x"}], "contrasts[0].lable: unknown key"),
        ([{"arm": "drop_one", "layers": 0, "against": 1, "label": 3}], "contrasts[0].label: expected text"),
    ],
)  # fmt: skip
def test_a_contrast_written_wrong_is_one_line_naming_it(contrasts, message):
    with pytest.raises(SpecError) as err:
        _spec(contrasts)
    assert message in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize(
    "contrast, message",
    [
        ({"arm": "drop_one", "layers": 5, "against": "baseline"},
         "contrasts[0].layers: layer 5 is not a point of arm 'drop_one' (its mlp_off points: 0-2)"),
        ({"arm": "drop_0_and_one", "layers": 2, "against": 0},
         "contrasts[0].against: layer 0 is not a point of arm 'drop_0_and_one' (its mlp_off points: 1-2)"),
        ({"arm": "wide", "layers": 0, "against": "baseline"},
         "contrasts[0].arm: arm 'wide' does not sweep one knob a layer at a time"),
    ],
)  # fmt: skip
def test_the_plan_checks_a_contrast_against_the_arms_points(contrast, message):
    with pytest.raises(SpecError) as err:
        make_plan(_spec([contrast]))
    assert message in str(err.value)


def test_contrasts_change_no_run_and_a_resumed_sweep_may_add_them():
    without = parse_spec({"name": "s", "trainer": {"preset": "tiny"}, "arms": ARMS})
    with_them = _spec([{"arm": "drop_one", "layers": 2, "against": 0}])
    assert spec_identity_diff(without, with_them) == []
    assert [r.run_id for r in make_plan(without).runs] == [r.run_id for r in make_plan(with_them).runs]


def test_the_seeds_spec_asks_the_seeds_questions_in_every_profile():
    for profile in (None, "cpu", "h200", "h200-text"):
        plan = make_plan(load_spec("sweeps/drop_one_mlp.yaml", profile=profile))
        assert plan.contrasts and all(c["knob"] == "mlp_off" for c in plan.contrasts)
    full = {
        c["label"]: c for c in make_plan(load_spec("sweeps/drop_one_mlp.yaml", profile="h200-text")).contrasts
    }
    late = full["seed: with MLP 0 off, one of 9-11 costs more than one of the middle"]
    assert (late["arm"], late["layers"], late["against"]) == (
        "drop_0_and_one",
        [9, 10, 11],
        list(range(1, 9)),
    )


def test_sweep_json_keeps_the_contrasts_and_reads_them_back(tmp_path):
    plan = make_plan(_spec([{"arm": "drop_one", "layers": 2, "against": 0}]))
    info = sweep_info(plan, tmp_path / "s.yaml")
    ResultsDir(tmp_path).write_sweep(info)
    back = ResultsDir(tmp_path).read_sweep()
    assert back.contrasts == list(plan.contrasts)
    no = sweep_info(
        make_plan(parse_spec({"name": "s", "trainer": {"preset": "tiny"}, "arms": ARMS})), tmp_path
    )
    assert "contrasts" not in no.to_json()  # folders of specs without contrasts: sweep.json as before


def test_layer_ranges_read_as_written():
    from analysis.knobdiff import layer_ranges

    assert layer_ranges([0, 1, 2, 5, 7, 8]) == "0-2,5,7-8"
    assert layer_ranges([11]) == "11" and layer_ranges([]) == "" and layer_ranges([9, 10, 11]) == "9-11"
    assert layer_ranges([1, 2, 3, 4, 5, 8, 9, 10, 11]) == "1-5,8-11"


def test_a_hand_edited_contrast_in_sweep_json_is_one_line(tmp_path):
    from analysis import InputError

    bad = {
        "name": "s",
        "contrasts": [{"label": "x", "arm": "a", "knob": "mlp_off", "layers": [], "against": 1}],
    }
    (tmp_path / "sweep.json").write_text(json.dumps(bad))
    with pytest.raises(InputError) as err:
        ResultsDir(tmp_path).read_sweep()
    assert "contrasts[0] is" in str(err.value) and "\n" not in str(err.value)


def _contrast_runs(tmp_path):
    """Baseline 3.30, 3.32; drop_one at layer 0: 3.31, 3.33; at layer 1: 3.40; at layer 2: 3.42, 3.44."""
    rows = [("b0", "baseline", None, 3.30, 1000.0), ("b1", "baseline", None, 3.32, 1010.0),
            ("a0", "drop_one", 0, 3.31, 900.0), ("a1", "drop_one", 0, 3.33, 905.0),
            ("c0", "drop_one", 1, 3.40, 950.0), ("d0", "drop_one", 2, 3.42, 960.0),
            ("d1", "drop_one", 2, 3.44, 970.0)]  # fmt: skip
    layers = {}
    for i, (rid, arm, layer, loss, ms) in enumerate(rows):
        params = {} if layer is None else {"mlp_off": [layer]}
        store.write_run(
            tmp_path, run_row(rid, arm, loss=loss, time_ms=ms, params=params, when=i), {"mlp_off": "json"}
        )
        if layer is not None:
            layers[rid] = {"mlp_off": layer}
    return store.read_runs(tmp_path), layers


def test_a_side_of_several_points_counts_each_point_once(tmp_path):
    """Layers 1-2 against layer 0: point 2 ran twice, point 1 once, so the side is the two point means
    (3.40 and 3.43, mean 3.415; the three runs pooled would say 3.4233); layer 0, one point, is its runs."""
    import numpy as np
    from scipy import stats as sp

    runs, layers = _contrast_runs(tmp_path)
    contrasts = [
        {"label": "late", "arm": "drop_one", "knob": "mlp_off", "layers": [1, 2], "against": [0]},
        {"label": "zero", "arm": "drop_one", "knob": "mlp_off", "layers": [0], "against": "baseline"},
        {"label": "one", "arm": "drop_one", "knob": "mlp_off", "layers": [1], "against": "baseline"},
    ]
    table = contrast_table(runs, contrasts, layers, "baseline").set_index("contrast")
    late = table.loc["late"]
    side, other = np.array([3.40, 3.43]), np.array([3.31, 3.33])
    welch = sp.ttest_ind(other, side, equal_var=False)
    assert (late["points"], late["n"], late["against_points"], late["n_against"]) == (
        "2 of 2",
        3,
        "1 of 1",
        2,
    )
    assert late["mean_val_loss"] == pytest.approx(3.415) and late["against"] == "layers 0"
    assert late["loss_delta"] == pytest.approx(other.mean() - side.mean())  # negative: the late ones cost
    assert late["loss_p"] == pytest.approx(welch.pvalue, rel=1e-6)
    ci = welch.confidence_interval()
    assert late["loss_ci95"] == f"[{ci.low:.4f}, {ci.high:.4f}]"
    assert late["time_delta_s"] == pytest.approx(0.9025 - (0.95 + 0.965) / 2)
    zero = table.loc["zero"]  # one point against the baseline: runs against runs
    assert (
        zero["against"],
        zero["against_points"],
        zero["mean_val_loss"],
        zero["against_mean_val_loss"],
    ) == ("baseline", "-", pytest.approx(3.32), pytest.approx(3.31))
    assert zero["loss_p"] == pytest.approx(sp.ttest_ind([3.30, 3.32], [3.31, 3.33], equal_var=False).pvalue)
    one = table.loc["one"]  # one run on its side: its mean, no test
    assert (
        one["points"] == "1 of 1" and one["loss_p"] == "no test (n=1)" and one["loss_ci95"] == "no test (n=1)"
    )


def test_the_time_test_counts_its_own_values(tmp_path):
    """Runs without a train time leave the loss tested and say the time's own count."""
    runs, layers = _contrast_runs(tmp_path)
    runs.loc[runs["arm"] == "baseline", "train_time_ms"] = float("nan")
    c = [{"label": "zero", "arm": "drop_one", "knob": "mlp_off", "layers": [0], "against": "baseline"}]
    row = contrast_table(runs, c, layers, "baseline").iloc[0]
    assert isinstance(row["loss_p"], float) and row["time_p"] == "no test (n=0)"


def test_the_report_has_the_contrasts_table_when_sweep_json_asks(tmp_path):
    from analysis.report import CONTRASTS_HEADING, write_report

    _, layers = _contrast_runs(tmp_path)
    contrasts = [{"label": "late", "arm": "drop_one", "knob": "mlp_off", "layers": [1, 2, 7], "against": [0]}]
    ResultsDir(tmp_path).write_sweep(SweepInfo("s", "grid", None, "baseline", ("baseline", "drop_one"),
                                               point_layers=layers, contrasts=contrasts))  # fmt: skip
    md = write_report(tmp_path)["md"].read_text()
    assert f"## {CONTRASTS_HEADING}" in md
    assert "| late | 2 of 3 | 3 | 3.4150 | layers 0 | 1 of 1 | 2 | 3.3200 | -0.0950 |" in md
    ResultsDir(tmp_path).write_sweep(SweepInfo("s", "grid", None, "baseline", point_layers=layers))
    assert CONTRASTS_HEADING not in write_report(tmp_path)["md"].read_text()


@pytest.mark.parametrize(
    "contrasts, message",
    [
        ([{"arm": "drop_one", "layers": 0, "against": ["baseline"]}],
         "contrasts[0].against: a list is neither \"baseline\" nor layers of arm 'drop_one' such as \"1-8\" "
         "(a contrast stays within one arm)"),
        ([{"arm": "drop_one", "layers": 0, "against": None}], 'neither "baseline" nor layers of arm'),
        ([{"arm": "drop_one", "layers": 0, "against": 1, "label": "x"},
          {"arm": "drop_one", "layers": 2, "against": 1, "label": " x "}],
         "contrasts[1].label: 'x' is the label of an earlier contrast; give each its own"),
    ],
)  # fmt: skip
def test_more_contrast_mistakes_are_one_line(contrasts, message):
    with pytest.raises(SpecError) as err:
        _spec(contrasts)
    assert message in str(err.value) and "\n" not in str(err.value)


SMALL = {"grid": {"mlp_off": {"each_layer": "0-1"}}}


def test_a_profile_clears_contrasts_with_an_empty_list_and_a_shrunk_grid_is_said():
    raw = {"name": "s", "trainer": {"preset": "tiny"}, "arms": ARMS,
           "contrasts": [{"arm": "drop_one", "layers": 2, "against": 0}],
           "profiles": {"none": {"contrasts": []}, "small": {"arms": {"drop_one": SMALL}}}}  # fmt: skip
    assert parse_spec(raw, profile="none").contrasts == ()
    with pytest.raises(SpecError) as err:
        make_plan(parse_spec(raw, profile="small"))
    assert (
        "layer 2 is not a point of arm 'drop_one' (its mlp_off points: 0-1); if profile small changes this "
        "grid, give profiles.small its own contrasts" in str(err.value)
    )


def test_an_arm_that_also_sweeps_another_knob_is_refused():
    arms = {**ARMS, "drop_one": {"grid": {"mlp_off": {"each_layer": "0-2"}, "steps": [10, 12]}}}
    with pytest.raises(SpecError) as err:
        make_plan(_spec([{"arm": "drop_one", "layers": 2, "against": 0}], arms=arms))
    assert "arm 'drop_one' also sweeps steps, so a layer is several configurations" in str(err.value)


def test_the_dry_run_lists_each_contrast_with_its_sides():
    from orchestrator.plan import describe_plan

    spec = _spec([{"arm": "drop_one", "layers": "1-2", "against": "baseline"},
                  {"arm": "drop_0_and_one", "layers": 2, "against": 1}])  # fmt: skip
    text = describe_plan(make_plan(spec))
    assert (
        "contrast (the report answers it): drop_one: layers 1-2 vs the baseline [drop_one: mlp_off 1-2 "
        "vs the baseline arm]" in text
    )
    assert "[drop_0_and_one: mlp_off 2 vs 1]" in text
