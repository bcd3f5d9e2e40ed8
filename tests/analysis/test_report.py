"""Reports: stable text against stored expected output, HTML structure, grid tables and figures."""

import base64
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis import InputError, store
from analysis.report import layer_points, overhead_table, write_report
from tests.analysis.helpers import make_ab_results, make_grid_results, run_row

EXPECTED = Path(__file__).parent / "expected"


def _check_expected(name: str, text: str, update: bool = False):
    path = EXPECTED / name
    if update:  # regenerate by hand after a deliberate change: flip to True once, review the diff
        path.write_text(text)
    assert text == path.read_text()


def test_ab_report_text_is_stable(tmp_path):
    paths = write_report(make_ab_results(tmp_path / "ab"))
    _check_expected("ab_report.md", paths["md"].read_text())
    assert sorted(p.name for p in (tmp_path / "ab" / "figures").iterdir()) == [
        "final_loss.png", "loss_curves.png", "train_time.png",
    ]  # fmt: skip


def test_grid_report_text_is_stable(tmp_path):
    paths = write_report(make_grid_results(tmp_path / "g"))
    _check_expected("grid_report.md", paths["md"].read_text())
    assert paths["figure:layer_ablation"].exists()


def test_report_is_deterministic(tmp_path):
    root = make_ab_results(tmp_path / "ab")
    first = write_report(root)["html"].read_bytes()
    assert write_report(root)["html"].read_bytes() == first


def test_html_structure_verdict_first_images_embedded_tables(tmp_path):
    html = write_report(make_grid_results(tmp_path / "g"))["html"].read_text()
    assert html.startswith("<!DOCTYPE html>")
    headings = re.findall(r"<h2>(.*?)</h2>", html)
    assert headings[0] == "Verdict" and "Figures" in headings
    assert html.index('id="verdict"') < html.index("<table>")
    imgs = re.findall(r'<img alt="(\w+)" src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert {name for name, _ in imgs} == {"train_time", "final_loss", "layer_ablation"}
    assert all(base64.b64decode(data)[:8] == b"\x89PNG\r\n\x1a\n" for _, data in imgs)
    assert "<table><thead><tr><th>config</th>" in html and "no test (n=1)" in html
    assert 'src="figures/' not in html and "http" not in html  # self-contained


def test_layer_points_infer_the_layer_not_common_to_the_arm(tmp_path):
    runs = store.read_runs(make_grid_results(tmp_path / "g"))
    pts = layer_points(runs)
    assert set(pts["series"]) == {"drop_one (mlp_off)", "drop_0_and_one (mlp_off)"}
    assert sorted(set(pts.loc[pts["series"] == "drop_0_and_one (mlp_off)", "layer"])) == list(range(1, 12))
    assert len(pts) == 11 + 22
    # each point carries its run's train time, for the figure's time panel
    others = runs.loc[runs["arm"] != "baseline", "train_time_ms"] / 1000.0
    assert sorted(pts["train_time_s"]) == pytest.approx(sorted(others))


def test_layer_points_from_label_column(tmp_path):
    for i, layer in enumerate([2, 5]):
        row = run_row(f"x{i}", "drop", loss=3.3, time_ms=1.0)
        store.write_run(tmp_path, {**row, "label": {"mlp_off": [0, layer]}, "knob_mlp_off": f"[0, {layer}]"},
                        {"mlp_off": "json"})  # fmt: skip
    runs = store.read_runs(tmp_path)
    assert sorted(layer_points(runs)["layer"]) == [2, 5]
    from analysis.summary import config_names

    assert sorted(config_names(runs)) == ["drop mlp_off=[0, 2]", "drop mlp_off=[0, 5]"]


def test_overhead_cold_then_warm(tmp_path):
    runs = store.read_runs(make_ab_results(tmp_path / "ab"))
    table = overhead_table(runs).set_index("phase")
    # no cache state recorded: the first run of each arm on each node counts as cold (2 arms x 2 nodes)
    assert table.at["cold: empty compile cache", "runs"] == 4
    assert table.at["warm: config compiled on this node before", "runs"] == 4
    runs["compile_cache"] = "seeded"
    assert overhead_table(runs)["phase"].tolist() == ["seeded: cache restored from another node"]


def test_overhead_tells_a_new_config_on_a_warm_cache_from_a_warm_config(tmp_path):
    """What the executor recorded (the node cache's state) refined by config: on one node, the
    first run compiles cold; the other arm's first run finds a warm cache but compiles its own graphs."""
    runs = store.read_runs(make_ab_results(tmp_path / "ab"))
    runs = runs[runs["node_id"] == runs["node_id"].iloc[0]].copy()
    runs["compile_cache"] = "warm"
    first = runs.sort_values("order_index").index[0]
    runs.loc[first, "compile_cache"] = "cold"
    table = overhead_table(runs).set_index("phase")["runs"].to_dict()
    n = len(runs)
    assert table == {
        "cold: empty compile cache": 1,
        "new config on a warm cache": 1,
        "warm: config compiled on this node before": n - 2,
    }


def test_overhead_tells_a_config_compiled_on_another_node_from_a_new_one(tmp_path):
    """A sweep in parts, each on a fresh machine: the second machine's first run of a config that the
    first machine ran (its graphs may be in the carried cache) is neither new nor warm on that node."""
    runs = store.read_runs(make_ab_results(tmp_path / "ab")).sort_values("order_index")
    nodes = runs["node_id"].unique()
    assert len(nodes) == 2
    later = runs["node_id"] == nodes[1]
    runs["started_at"] = pd.Timestamp("2026-12-01", tz="UTC") + pd.to_timedelta(
        runs["order_index"] + later * 1000, unit="s"
    )  # every run of the second node after every run of the first
    runs["compile_cache"] = "warm"
    for node in nodes:
        runs.loc[runs.index[runs["node_id"] == node][0], "compile_cache"] = (
            "cold" if node == nodes[0] else "seeded"
        )
    table = overhead_table(runs).set_index("phase")["runs"].to_dict()
    # each node's first run is cold / seeded; on the first node the other arm is new, on the second it
    # ran before (on the first node); the rest are warm
    assert table == {
        "cold: empty compile cache": 1,
        "seeded: cache restored from another node": 1,
        "new config on a warm cache": 1,
        "config compiled elsewhere before, on a seeded cache": 1,
        "warm: config compiled on this node before": len(runs) - 4,
    }


def test_overhead_keeps_a_hosts_cache_across_node_ids_and_two_cold_nodes_apart(tmp_path):
    """(a) One machine, a sweep in two `ablate run`s: each embedded Ray gives the host a new node id,
    the cache stays, so the second part's runs of configs of the first are warm. (b) Two nodes that
    both began cold never shared a cache: the second's first run of each config is a new config."""
    runs = store.read_runs(make_ab_results(tmp_path / "ab")).sort_values("order_index")
    runs["started_at"] = pd.Timestamp("2026-12-01", tz="UTC") + pd.to_timedelta(
        runs["block"] * 100 + runs["order_index"], unit="s"
    )
    runs["compile_cache"] = "warm"
    one = runs.copy()
    one["hostname"] = "vm"
    one["node_id"] = np.where(one["block"] < 2, "ray-a", "ray-b")  # two `ablate run`s
    one.loc[one.sort_values("started_at").index[0], "compile_cache"] = "cold"
    table = overhead_table(one).set_index("phase")["runs"].to_dict()
    assert table == {
        "cold: empty compile cache": 1,
        "new config on a warm cache": 1,
        "warm: config compiled on this node before": len(one) - 2,
    }
    two = runs.copy()  # host-n0 and host-n1 (blocks alternate), each node's first run cold
    for node in two["node_id"].unique():
        two.loc[two[two["node_id"] == node].sort_values("started_at").index[0], "compile_cache"] = "cold"
    table = overhead_table(two).set_index("phase")["runs"].to_dict()
    assert table == {
        "cold: empty compile cache": 2,
        "new config on a warm cache": 2,
        "warm: config compiled on this node before": len(two) - 4,
    }


def test_report_without_target_skips_the_record_rule(tmp_path):
    md = write_report(make_ab_results(tmp_path / "ab", target=None))["md"].read_text()
    assert "record rule: skipped (no target: synthetic data)" in md and "p=" not in md.split("## Runs")[0]


def test_report_of_a_folder_with_no_runs_yet(tmp_path):
    (tmp_path / "sweep.json").write_text('{"name": "empty", "kind": "ab"}')
    md = write_report(tmp_path)["md"].read_text()
    assert "no finished runs yet" in md


def test_report_of_a_missing_folder_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="no such results folder"):
        write_report(tmp_path / "nope")


def test_kind_inferred_without_sweep_json(tmp_path):
    root = make_ab_results(tmp_path / "ab")
    (root / "sweep.json").unlink()
    md = write_report(root)["md"].read_text()
    assert "## A/B summary" in md and "record rule: skipped" in md  # no sweep.json: no known target
    assert "# Report: fixture" in md  # the name comes from the runs' sweep column


def test_runs_of_an_earlier_plan_are_kept_but_left_out(tmp_path):
    import json

    root = make_ab_results(tmp_path / "ab")
    sweep = json.loads((root / "sweep.json").read_text())
    current = sorted(p.stem for p in (root / "runs").glob("*.parquet"))
    (root / "sweep.json").write_text(json.dumps({**sweep, "run_ids": current}))
    before = write_report(root)["md"].read_text()
    # a run from an older trainer (another run id) with an absurd time: it must not move any number
    store.write_run(root, run_row("old001", "candidate", loss=9.0, time_ms=999_000, when=9), {})
    after = write_report(root)["md"].read_text()
    note = "1 run(s) of an earlier plan (another version of the code or spec) are kept in runs/"
    assert note in after
    assert "\n".join(line for line in after.splitlines() if note not in line) + "\n" == before
    assert (root / "runs" / "old001.parquet").exists()  # nothing is deleted


def test_a_block_split_across_nodes_is_left_out_of_the_paired_test(tmp_path):
    """A sweep resumed on another machine can leave a block's pair on two nodes (~3 % apart on
    H200s): the paired test must not take that difference for the candidate's effect."""
    from analysis.report import ab_section, block_deltas

    folder = make_ab_results(tmp_path / "ab")
    runs = store.read_runs(folder)
    sweep = store.read_sweep(folder)
    ok = runs[runs["status"] == "ok"]
    n_before = len(block_deltas(ok, "baseline", "candidate")["time_s"])
    moved = runs.index[(runs["block"] == 1) & (runs["arm"] == "candidate")][0]
    runs.loc[moved, "node_id"] = "elsewhere"
    ok = runs[runs["status"] == "ok"]
    assert len(block_deltas(ok, "baseline", "candidate")["time_s"]) == n_before - 1
    _, lines = ab_section(runs, sweep, 3.28)
    assert "left out of the paired test: 1 block(s) whose runs ran on different nodes (1)" in lines


def test_overhead_says_where_the_start_up_went_when_the_runs_said(tmp_path):
    runs = store.read_runs(make_ab_results(tmp_path / "ab"))
    assert "mean_compile_s" not in overhead_table(runs)  # scripts that do not say: no empty columns
    runs["compile_cache"] = "warm"
    runs["compile_s"], runs["warmup_s"], runs["val_s"] = 12.0, 20.0, 3.0
    row = overhead_table(runs).iloc[0]
    assert (row["mean_compile_s"], row["mean_warmup_s"], row["mean_val_s"]) == (12.0, 20.0, 3.0)


def test_overhead_ratios_against_the_cold_start():
    from analysis.report import OVERHEAD_PHASES, overhead_ratios

    table = pd.DataFrame(
        {
            "phase": [OVERHEAD_PHASES[k] for k in ("cold", "seeded", "warm")],
            "runs": [1, 2, 6],
            "mean_startup_s": [400.0, 40.0, 30.0],
            "max_startup_s": [400.0, 41.0, 33.0],
        }
    )
    assert overhead_ratios(table) == [
        "warm: 0.075 of a cold start (30.0 s mean over 6 run(s) vs 400.0 s)",
        "seeded: 0.100 of a cold start (40.0 s mean over 2 run(s) vs 400.0 s)",
    ]
    assert overhead_ratios(table.iloc[1:]) == []  # nothing to measure against without a cold run
    assert overhead_ratios(table.iloc[:0]) == []


def test_layer_figure_spans_the_models_layers_from_run_params(tmp_path):
    from analysis.report import make_figures

    for i, layer in enumerate([2, 5]):
        row = run_row(f"x{i}", "drop", loss=3.3, time_ms=1.0, params={"mlp_off": [layer], "num_layers": 12})
        store.write_run(tmp_path, row, {"mlp_off": "json"})
    store.write_run(tmp_path, run_row("b", "base", loss=3.3, time_ms=1.0, params={"num_layers": 12}), {})
    fig = make_figures(store.read_runs(tmp_path), pd.DataFrame(), "base", None)["layer_ablation"]
    assert list(fig.axes[-1].get_xticks()) == list(range(12))


def test_the_layer_figure_draws_the_layers_the_plan_recorded(tmp_path):
    """sweep.json's point_layers, not the knob values: one finished point is drawn, and path counts
    that the inference of older folders would take for layers are not."""
    import json

    from analysis.resultsdir import ResultsDir, SweepInfo

    store.write_run(tmp_path, run_row("b0", "base", loss=3.30, time_ms=1000.0), {})
    drop = run_row("x0", "drop", loss=3.31, time_ms=900.0, params={"mlp_off": [0, 4]})
    store.write_run(tmp_path, {**drop, "label": {"mlp_off": [0, 4]}}, {"mlp_off": "json"})
    for i, counts in enumerate([[2, 1, 1], [4, 1, 1]]):
        row = run_row(f"p{i}", "paths", loss=3.3, time_ms=950.0, params={"attn_paths": counts})
        store.write_run(tmp_path, row, {"attn_paths": "json"})
    runs = store.read_runs(tmp_path)
    inferred = layer_points(runs)
    assert set(inferred["series"]) == {"paths (attn_paths)"}  # the old folders' rule, and its mistake
    recorded = layer_points(runs, {"x0": {"mlp_off": 4}})
    assert recorded[["series", "layer", "final_val_loss"]].values.tolist() == [["drop (mlp_off)", 4, 3.31]]
    assert recorded["train_time_s"].tolist() == [0.9]
    ResultsDir(tmp_path).write_sweep(SweepInfo("s", "grid", None, "base", ("base", "drop", "paths"),
                                               point_layers={"x0": {"mlp_off": 4}}))  # fmt: skip
    assert "figure:layer_ablation" in write_report(tmp_path)
    assert json.loads((tmp_path / "sweep.json").read_text())["point_layers"] == {"x0": {"mlp_off": 4}}
    ResultsDir(tmp_path).write_sweep(SweepInfo("s", "grid", None, "base", point_layers={}))
    assert "figure:layer_ablation" not in write_report(tmp_path)


def test_configurations_are_named_by_their_difference_from_the_baseline(tmp_path):
    """Every knob a run's params differ in from the baseline arm's, the undone baseline included; runs
    without knobs (other programs) keep the label or the arm."""
    from analysis.summary import arm_difference, config_names

    base = {"attn_off": [7], "mlp_off": [0], "num_layers": 12, "seed": 0, "steps": 100}
    rows = [
        ("b0", "baseline", base),
        ("b1", "baseline", base),
        ("a0", "attn3", {**base, "attn_off": [3], "seed": 5}),  # the seed is never a difference
        ("k0", "kept", {**base, "attn_off": [3, 7]}),
        ("s0", "same", dict(base)),
        ("l0", "longer", {**base, "mlp_off": [], "steps": 120}),
        ("c0", "script", {}),
    ]
    for run_id, arm, params in rows:
        store.write_run(tmp_path, run_row(run_id, arm, loss=3.3, time_ms=1.0, params=params), {})
    runs = store.read_runs(tmp_path)
    names = dict(zip(runs["run_id"], config_names(runs, "baseline"), strict=True))
    assert names == {
        "b0": "baseline",
        "b1": "baseline",
        "a0": "attn3 (attn_off: [7] -> [3])",
        "k0": "kept (attn_off: [7] -> [3, 7])",
        "s0": "same (same as the baseline)",
        "l0": "longer (mlp_off: [0] -> [], steps: 100 -> 120)",
        "c0": "script",
    }
    assert arm_difference(runs, "baseline", "attn3") == "attn_off: [7] -> [3]"
    assert arm_difference(runs, "baseline", "script") is None


def test_failed_runs_table_gives_each_reason(tmp_path):
    """report.md/html list every failed or timed-out run with the first line of its error."""
    root = make_grid_results(tmp_path / "g")
    failures = [
        (
            "f0",
            "failed",
            "exit code 2: python: can't open file 'x.py': [Errno 2] No such file\nlog: empty\n...",
        ),
        ("f1", "timeout", "timed out after 60 s; log: truncated\nstep:3/40 train_time:1ms step_avg:1.00ms"),
        ("f2", "failed", "exit code 1: sort | uniq failed"),
        ("f3", "diverged", "exit code 3: diverged: non-finite train loss at step 2"),  # a result, not listed
    ]
    for i, (run_id, status, error) in enumerate(failures):
        row = run_row(run_id, "drop_one", loss=None, time_ms=None, status=status, when=40 + i)
        store.write_run(root, {**row, "error": error, "attempt": 2}, {})
    paths = write_report(root)
    md = paths["md"].read_text()
    section = md[md.index("## Failed runs") :].split("\n## ")[0]
    assert section.splitlines()[2:] == [
        "| run_id | arm | status | attempt | reason |",
        "|---|---|---|---|---|",
        "| f0 | drop_one | failed | 2 | exit code 2: python: can't open file 'x.py': [Errno 2] No such "
        "file |",
        "| f1 | drop_one | timeout | 2 | timed out after 60 s; log: truncated |",
        "| f2 | drop_one | failed | 2 | exit code 1: sort \\| uniq failed |",
    ]
    html = paths["html"].read_text()
    assert "<td>timed out after 60 s; log: truncated</td>" in html and "non-finite" not in html
    from analysis.summary import failure_lines

    assert failure_lines(store.read_runs(root))[1:] == [
        "  1 failed (drop_one 1; f2): exit code 1: sort | uniq failed",
        "  1 failed (drop_one 1; f0): exit code 2: python: can't open file 'x.py': [Errno 2] No such file",
        "  1 timeout (drop_one 1; f1): timed out after 60 s; log: truncated",
    ]


def test_no_failed_runs_no_table(tmp_path):
    md = write_report(make_ab_results(tmp_path / "ab"))["md"].read_text()
    assert "Failed runs" not in md


def _mixed_grid(root):
    """baseline x2, a plain `set: {mlp_off: [0]}` arm x2, a drop-one grid over layers 3 and 6 (recorded
    by the plan), and an arm that drops MLP 0 but also trains longer; every run with a val curve."""
    from analysis.resultsdir import ResultsDir, SweepInfo

    runs = [("b0", "baseline", [], 100), ("b1", "baseline", [], 100), ("m0", "mlp0", [0], 100),
            ("m1", "mlp0", [0], 100), ("d3", "drop_one", [3], 100), ("d6", "drop_one", [6], 100),
            ("w0", "longer", [0], 120)]  # fmt: skip
    for k, (run_id, arm, mlp_off, steps) in enumerate(runs):
        row = run_row(run_id, arm, loss=3.30 + 0.001 * k, time_ms=1000.0 + k, block=k, when=k,
                      params={"mlp_off": mlp_off, "steps": steps, "num_layers": 12})  # fmt: skip
        store.write_run(root, row, {"mlp_off": "json", "steps": "int"})
        store.write_steps(
            root, run_id, [{"step": s, "val_loss": 4.0 - s / 100 + 0.001 * k} for s in (0, 50, 100)]
        )
    arms = ("baseline", "mlp0", "drop_one", "longer")
    layers = {"d3": {"mlp_off": 3}, "d6": {"mlp_off": 6}}
    ResultsDir(root).write_sweep(SweepInfo("mixed", "grid", None, "baseline", arms, point_layers=layers))
    return root


def test_a_plain_set_arm_is_the_layer_point_it_adds(tmp_path):
    """`mlp0: {set: {mlp_off: [0]}}` against a baseline without it is layer 0 of the layer figure, as a
    grid point is; an arm that also changes another knob (steps) is not a layer ablation."""
    runs = store.read_runs(_mixed_grid(tmp_path))
    pts = layer_points(runs, {"d3": {"mlp_off": 3}, "d6": {"mlp_off": 6}}, "baseline")
    got = sorted(pts[["series", "arm", "layer"]].itertuples(index=False, name=None))
    assert got == [("drop_one (mlp_off)", "drop_one", 3), ("drop_one (mlp_off)", "drop_one", 6),
                   ("mlp0 (mlp_off)", "mlp0", 0), ("mlp0 (mlp_off)", "mlp0", 0)]  # fmt: skip
    # older folders (no recorded layers) too; and without a baseline arm there is nothing to add to
    assert sorted(layer_points(runs, None, "baseline")["layer"]) == [0, 0, 3, 6]
    assert sorted(layer_points(runs, {"d3": {"mlp_off": 3}, "d6": {"mlp_off": 6}})["layer"]) == [3, 6]
    # a baseline that already drops MLP 0: [0] is no ablation of it, [0, 5] is layer 5
    moved = runs.assign(knob_mlp_off=runs["knob_mlp_off"].replace({"[]": "[0]", "[3]": "[0, 5]"}))
    assert layer_points(moved[moved["arm"] != "drop_one"], None, "baseline").empty
    pts = layer_points(moved[moved["run_id"] != "d6"], None, "baseline")
    assert pts[["series", "layer"]].values.tolist() == [["drop_one (mlp_off)", 5]]


def test_every_figure_gives_a_configuration_the_same_colour(tmp_path):
    from matplotlib.colors import to_hex

    from analysis.report import make_figures

    root = _mixed_grid(tmp_path)
    sweep = store.read_sweep(root)
    runs, steps = store.read_runs(root), store.read_steps(root)
    figs = make_figures(runs, steps, "baseline", None, sweep["point_layers"], sweep["arms"], "grid")
    boxes = figs["final_loss"].axes[0]
    names = [t.get_text() for t in boxes.get_yticklabels()]
    assert names == [
        "baseline",
        "mlp0 (mlp_off: [] -> [0])",
        "drop_one (mlp_off: [] -> [3])",
        "drop_one (mlp_off: [] -> [6])",
        "longer (mlp_off: [] -> [0], steps: 100 -> 120)",
    ]
    box_color = dict(
        zip(names, (to_hex(p.get_facecolor(), keep_alpha=False) for p in boxes.patches), strict=True)
    )
    assert box_color["baseline"] == "#000000" and len(set(box_color.values())) == 5
    curves = figs["loss_curves"].axes[0]
    curve_color = {
        line.get_label(): line.get_color() for line in curves.lines if not line.get_label().startswith("_")
    }
    assert curve_color.pop("baseline mean (n=2)") == "#000000"
    assert curve_color == {n: c for n, c in box_color.items() if n != "baseline"}
    times = figs["train_time"].axes[0]
    dot_color = {t.get_text(): to_hex(h.get_color()) for t, h in zip(times.get_legend().get_texts(),
                 times.get_legend().legend_handles, strict=True)}  # fmt: skip
    assert dot_color == box_color
    layer = figs["layer_ablation"].axes[0]
    series = {c.get_label(): to_hex(c.lines[0].get_color()) for c in layer.containers}
    assert set(series) == {"mlp0 (mlp_off)", "drop_one (mlp_off)"}  # `longer` is no layer ablation
    assert series["mlp0 (mlp_off)"] == box_color["mlp0 (mlp_off: [] -> [0])"]  # an arm of one configuration
    mlp0 = next(c for c in layer.containers if c.get_label() == "mlp0 (mlp_off)")
    assert list(mlp0.lines[0].get_xdata()) == [0]  # drawn as the layer-0 point


def test_grid_verdict_counts_in_words_and_the_baseline_has_its_row(tmp_path):
    from analysis.report import grid_section

    for k, (arm, loss) in enumerate([("base", 3.30), ("base", 3.31), ("cand", 3.28), ("cand", 3.285)]):
        store.write_run(tmp_path, run_row(f"r{k}", arm, loss=loss, time_ms=1000.0 + k, when=k), {})
    runs = store.read_runs(tmp_path)
    verdict, table = grid_section(runs, {"baseline_arm": "base"}, None)
    assert verdict.startswith("1 configuration against base (n=2): ") and verdict.endswith(
        "0 with n=1 (no test)"
    )
    first = table.iloc[0]
    assert (first["config"], first["n"], first["loss_delta"], first["loss_p"]) == (
        "base (baseline)",
        2,
        "-",
        "-",
    )
    assert first["mean_val_loss"] == pytest.approx(3.305) and first["mean_time_s"] == pytest.approx(1.0005)
    assert table["config"].tolist()[1:] == ["cand"]
    verdict, table = grid_section(runs[runs["run_id"] != "r1"], {"baseline_arm": "base"}, None)
    assert verdict.endswith("no test (the baseline has n=1)") and table["loss_p"].tolist() == [
        "-",
        "no test (n=1)",
    ]


def test_identical_runs_report_without_a_runtime_warning(tmp_path):
    """Runs with equal losses and times (a cached or deterministic job) once printed scipy's
    'catastrophic cancellation' RuntimeWarning; the tests are numpy and scipy.special now: the report
    and the A/B lines say n/a where there is no spread, and nothing is printed beside them."""
    import json
    import warnings

    from analysis import summary

    for k, arm in enumerate(["baseline", "candidate"] * 3):
        row = run_row(f"i{k}", arm, loss=3.3, time_ms=1000.0, block=k // 2, order=k % 2, when=k)
        store.write_run(tmp_path, row, {})
        store.write_steps(
            tmp_path, row["run_id"], [{"step": s, "val_loss": 4.0 - s / 100} for s in (0, 50, 100)]
        )
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning fails the test
        for kind in ("ab", "grid"):
            sweep = {"name": "same", "kind": kind, "target_val_loss": 3.28, "baseline_arm": "baseline"}
            (tmp_path / "sweep.json").write_text(json.dumps(sweep))
            md = write_report(tmp_path)["md"].read_text()
        same = {a: {"loss": [3.3] * 3, "time_s": [1.0] * 3} for a in ("baseline", "candidate")}
        s = summary.ab_summary(same, 3.28, np.random.default_rng(0), {"time_s": [0.0] * 3, "loss": [0.0] * 3})
        lines = summary.ab_lines(s) + summary.ab_extra_lines(s)
    assert "timing difference not significant (0.0000 s, p=n/a)" in summary.ab_verdict(s)
    assert "Welch t=n/a df=1.0 p(one-sided, candidate faster)=n/a p(two-sided)=n/a" in lines
    row = next(line for line in md.splitlines() if line.startswith("| candidate |")).split(" | ")
    assert row[1:4] == ["3", "3.3000", "0.0000"] and row[6:8] == ["0.0000", "n/a"]  # no spread in time: no p


def test_grid_report_says_what_its_repeats_can_tell_apart(tmp_path):
    """The spread section: sd pooled over the configurations with repeats (baseline x3 and the 11
    drop_0_and_one points x2 of the fixture); points of one run said to have no test (as the table
    says), points of two priced by Welch, uncorrected and at the table's Holm bar over its 22
    configurations; the runs a point needs; none of it without repeats."""
    from analysis import stats, summary
    from analysis.report import SPREAD_HEADING

    folder = make_grid_results(tmp_path / "g")
    runs = store.read_runs(folder)
    names = summary.config_names(runs, "baseline")
    sd, df = stats.pooled_sd(g.to_numpy(float) for _, g in runs.groupby(names)["final_val_loss"])
    assert df == 2 + 11
    lines = summary.spread_lines(runs, "baseline")
    head = f"run-to-run sd of final val loss: {sd:.5f} (pooled over 12 configurations with"
    assert lines[0].startswith(head) and "13 degrees of freedom" in lines[0]
    assert lines[1] == (
        "points of 1 run (11): no test in the table (a contrast over several points, the spec's "
        "`contrasts`, tests them together)"
    )
    two, two_holm = (stats.welch_detectable(sd, 2, 3, alpha=a) for a in (0.05, 0.05 / 22))
    assert lines[2].startswith("points of 2 runs (11) against the baseline's 3: Welch, 5 % two-sided")
    assert f"a loss difference of {two:.4f} ({two_holm:.4f} at the table's Holm bar (5 %/22))" in lines[2]
    n, n_holm = (stats.welch_runs_needed(0.01, sd, alpha=a) for a in (0.05, 0.05 / 22))
    assert n < n_holm
    needed = lines[3].split("80 % power at this sd): ")[1]
    plain, holm = needed.split(" uncorrected; ")
    assert plain.split(" / ")[1] == str(n) and holm.split(" / ")[1] == str(n_holm)
    md = write_report(folder)["md"].read_text()
    assert f"## {SPREAD_HEADING}" in md and lines[3] in md
    single = runs[~names.duplicated()]  # one run a configuration
    assert summary.spread_lines(single, "baseline")[0].startswith("run-to-run spread: unknown")
    assert summary.spread_lines(runs, None) == []


def test_report_says_the_sweeps_description_as_a_paragraph_after_the_verdict(tmp_path):
    from analysis.report import ABOUT_HEADING

    folder = make_grid_results(tmp_path / "g")
    sweep = json.loads((folder / "sweep.json").read_text())
    text = "Why these repeats: <a baseline sd of 0.0078>\n  over four runs."
    (folder / "sweep.json").write_text(json.dumps({**sweep, "description": text}))
    paths = write_report(folder)
    md = paths["md"].read_text()
    headings = re.findall(r"^## (.*)$", md, flags=re.M)
    assert headings[:2] == ["Verdict", ABOUT_HEADING]
    para = md.split(f"## {ABOUT_HEADING}\n\n", 1)[1].split("\n\n", 1)[0]
    # prose, not a code block; escaped so that a renderer shows "<a baseline ...>" and drops nothing
    assert para == "Why these repeats: &lt;a baseline sd of 0.0078&gt; over four runs."
    html_text = paths["html"].read_text()
    assert "<p>Why these repeats: &lt;a baseline sd of 0.0078&gt; over four runs.</p>" in html_text
    (folder / "sweep.json").write_text(json.dumps({**sweep, "description": "# not a heading, 1. no list"}))
    md = write_report(folder)["md"].read_text()
    assert "\\# not a heading, 1. no list" in md
    (folder / "sweep.json").write_text(json.dumps({**sweep, "description": 3}))
    with pytest.raises(InputError, match="description is 3, not a string"):
        write_report(folder)


def _grid_in_parts(root, second_baseline=True):
    """A grid run in two parts on two nodes, the second 0.5 s faster: part 1 the baseline and layer 1,
    part 2 (its own node) layer 2 and, unless said otherwise, the baseline again. Layer 1 saves 1.0 s,
    layer 2 1.2 s."""
    rng = np.random.default_rng(5)
    plan = [("baseline", [], "n1"), ("drop_one", [1], "n1"), ("baseline", [], "n1"), ("drop_one", [1], "n1"),
            ("drop_one", [2], "n2"), ("drop_one", [2], "n2")]  # fmt: skip
    if second_baseline:
        plan += [("baseline", [], "n2"), ("baseline", [], "n2")]
    saves = {(): 0.0, (1,): 1.0, (2,): 1.2}
    for k, (arm, off, node) in enumerate(plan):
        ms = 40800 - 1000 * saves[tuple(off)] - (500 if node == "n2" else 0) + 10 * rng.standard_normal()
        row = run_row(f"p{k:02d}", arm, loss=3.15, time_ms=round(ms), params={"mlp_off": off}, node=node,
                      when=k)  # fmt: skip
        store.write_run(root, row, {"mlp_off": "json"})
    sweep = {"name": "parts", "kind": "grid", "target_val_loss": None, "baseline_arm": "baseline",
             "arms": ["baseline", "drop_one"], "planned_runs": len(plan)}  # fmt: skip
    (root / "sweep.json").write_text(json.dumps(sweep))
    return root


def test_a_grid_on_several_nodes_compares_train_times_like_for_like(tmp_path):
    """A sweep in parts, each on its own machine: layer 2 ran only on the faster node. As run, it would
    read 1.2 + ~0.25 s faster than the baseline; with each node's fitted offset taken off, the table,
    the layer figure and the node section say 1.2 s. The train-time figure keeps the times as run."""
    from analysis.report import NODE_HEADING, build_sections, node_adjusted

    folder = _grid_in_parts(tmp_path / "g")
    runs = store.read_runs(folder)
    adjusted, lines, _ = node_adjusted(runs, "baseline")
    assert lines[0].startswith("8 ok runs on 2 nodes. Each node's offset is fitted over all its ok runs")
    assert lines[1].startswith("node n1 on host-n1 (4 runs, 2026-11-01 12:00 to 12:15 UTC): +0.25")
    assert lines[2].startswith("node n2 on host-n2 (4 runs, 2026-11-01 12:20 to 12:35 UTC): -0.25")
    assert (runs["train_time_ms"] != adjusted["train_time_ms"]).all()  # a copy: the runs are as they were
    _, sections, figs = build_sections(folder)
    heads = dict(sections)
    table = next(v for k, v in sections if k.startswith("Configurations against the baseline"))
    head = next(k for k, _ in sections if k.startswith("Configurations against the baseline"))
    assert head.endswith("train times node-adjusted, their p the node fit's, see Node speed)")
    delta = dict(zip(table["config"], table["time_delta_s"], strict=True))
    assert delta["drop_one (mlp_off: [] -> [2])"] == pytest.approx(1.2, abs=0.03)
    assert delta["drop_one (mlp_off: [] -> [1])"] == pytest.approx(1.0, abs=0.03)
    assert heads[NODE_HEADING] == lines
    time_axis = figs["layer_ablation"].axes[1]
    assert time_axis.get_ylabel() == "train time (s), node-adjusted"
    (x,), (y,) = zip(*[ln.get_data() for ln in time_axis.lines if len(ln.get_xdata()) == 2][:1], strict=True)
    assert list(x) == [1, 2] and y[1] - y[0] == pytest.approx(-0.2, abs=0.03)
    spread = next(v for k, v in sections if k.startswith("Run-to-run spread"))
    assert "s (the node fit's residual sd, 4 degrees of freedom)" in spread[0]
    shown = sorted(y for pts in figs["train_time"].axes[0].collections for _, y in pts.get_offsets())
    assert shown == pytest.approx(sorted(runs["train_time_ms"] / 1000.0))  # the train-time figure: as run
    md = write_report(folder)["md"].read_text()
    assert f"## {NODE_HEADING}" in md


def test_a_contrast_on_several_nodes_is_the_node_fits_test(tmp_path):
    """A contrast's time on a grid in parts: the fit's estimate and p (`NodeFit.test`), not Welch on the
    adjusted runs (which would not count the offsets' error)."""
    from analysis import summary
    from analysis.report import node_adjusted

    runs = store.read_runs(_grid_in_parts(tmp_path / "g"))
    adjusted, _, fit = node_adjusted(runs, "baseline")
    layers = {r: {"mlp_off": json.loads(p)["mlp_off"][-1]} for r, p in zip(runs["run_id"], runs["params"],
              strict=True) if json.loads(p)["mlp_off"]}  # fmt: skip
    one_layer = {"arm": "drop_one", "knob": "mlp_off", "layers": [2]}
    c = [{"label": "layer 2", **one_layer, "against": "baseline"},
         {"label": "2 vs 1", **one_layer, "against": [1]}]  # fmt: skip
    table = summary.contrast_table(adjusted, c, layers, "baseline", fit).set_index("contrast")
    names = summary.config_names(adjusted[adjusted["status"] == "ok"], "baseline")
    two, one = (next(n for n in names if n.endswith(f"[{k}])")) for k in (2, 1))
    assert (table.at["layer 2", "time_delta_s"], table.at["layer 2", "time_p"]) == fit.test(
        {"baseline": 1.0, two: -1.0}
    )
    assert table.at["2 vs 1", "time_delta_s"] == pytest.approx(0.2, abs=0.03)
    assert table.at["2 vs 1", "time_p"] == fit.test({one: 1.0, two: -1.0})[1]
    welch = summary.contrast_table(adjusted, c, layers, "baseline").set_index("contrast")
    assert welch.at["2 vs 1", "time_p"] != table.at["2 vs 1", "time_p"]


def test_an_ab_on_two_nodes_and_runs_without_a_node_id_are_not_adjusted(tmp_path):
    """An A/B keeps its paired test within blocks (no Node speed section), and a grid with an ok run that
    has no node id compares its times as they ran, saying why."""
    from analysis.report import NODE_HEADING, build_sections, node_adjusted

    ab = make_ab_results(tmp_path / "ab")
    assert store.read_runs(ab)["node_id"].nunique() == 2
    assert NODE_HEADING not in dict(build_sections(ab)[1])
    runs = store.read_runs(_grid_in_parts(tmp_path / "g"))
    runs.loc[runs.index[0], "node_id"] = None
    same, lines, fit = node_adjusted(runs, "baseline")
    assert same is runs and fit is None
    assert lines == ["runs on 2 nodes, but 1 ok run without a node id: train times compare as they ran, "
                     "node speed included"]  # fmt: skip


def test_nodes_no_configuration_links_keep_their_times_and_say_so(tmp_path):
    """Without a baseline on the second node its speed cannot be told from layer 2's own: no adjustment,
    a line that says the deltas include node speed; on one node, no section at all."""
    from analysis.report import node_adjusted

    runs = store.read_runs(_grid_in_parts(tmp_path / "g", second_baseline=False))
    same, lines, fit = node_adjusted(runs, "baseline")
    assert same is runs and len(lines) == 1 and fit is None
    assert lines[0].startswith("runs on 2 nodes that no configuration links into one group")
    one = runs.assign(node_id="n1")
    assert node_adjusted(one, "baseline") == (one, [], None)
