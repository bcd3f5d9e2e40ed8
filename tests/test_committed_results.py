"""The results committed from the GPU machine still read with today's code and hold what the README
and the closing notes quote from them (so they never drift from the code unnoticed)."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from analysis import store
from analysis.report import overhead_table
from orchestrator.spec import load_spec

ROOT = Path(__file__).resolve().parents[1]
GPU_RESULTS = sorted(p for p in (ROOT / "results").glob("h200-*") if p.is_dir())
SPEED_KEYS = [
    "gpu",
    "torch",
    "date",
    "steps",
    "upstream_step_ms",
    "ours_step_ms",
    "ratio_ours_over_upstream",
    "ours_mlp0_step_ms",
    "mlp0_ratio",
    "upstream_peak_mib",
    "ours_peak_mib",
    "upstream_val_loss",
    "ours_val_loss",
    "cold_startup_s",
    "warm_startup_s",
]


def test_trainer_speed_summary_has_every_key_and_consistent_ratios():
    summary = json.loads((ROOT / "benchmarks" / "results" / "h200.json").read_text())
    assert set(SPEED_KEYS) <= set(summary), set(SPEED_KEYS) - set(summary)
    assert "H200" in summary["gpu"] and summary["steps"] == 80 and summary["preset"] == "pr117"
    runs = summary["runs"]
    assert all(r["exit_code"] == 0 for r in runs.values())
    base = [runs["base"]["step_ms"], runs["base-warm"]["step_ms"]]
    assert summary["ours_step_ms"] == pytest.approx(sum(base) / 2, abs=0.01)
    assert summary["ratio_ours_over_upstream"] == pytest.approx(
        summary["ours_step_ms"] / summary["upstream_step_ms"], abs=1e-4
    )
    assert summary["mlp0_ratio"] == pytest.approx(
        summary["ours_mlp0_step_ms"] / summary["ours_step_ms"], abs=1e-4
    )
    assert summary["ratio_ours_over_upstream"] <= 1.03  # issue 6's bar
    assert summary["ours_peak_mib"] <= 1.10 * summary["upstream_peak_mib"]
    assert abs(summary["ours_val_loss"] - summary["upstream_val_loss"]) <= 0.02
    assert summary["warm_startup_s"] < summary["cold_startup_s"]


@pytest.mark.parametrize("folder", GPU_RESULTS, ids=lambda p: p.name)
def test_committed_gpu_results_read_with_todays_code(folder):
    sweep = store.read_sweep(folder)
    spec = load_spec(folder / "spec.yaml", profile=sweep.get("profile"))
    assert spec.name == sweep["name"]
    runs = store.read_runs(folder)
    status = json.loads((folder / "status.json").read_text())
    if status["state"] == "partial":  # a sweep in parts (--time-limit): the runs so far, and what is left
        assert set(runs["run_id"]) < set(sweep["run_ids"])
        assert len(runs) + status["deferred"] == len(sweep["run_ids"])
    else:
        assert len(runs) == len(sweep["run_ids"]) and set(runs["run_id"]) == set(sweep["run_ids"])
    assert (runs["status"] == "ok").all() and (runs["schema_version"] == store.SCHEMA_VERSION).all()
    assert runs["gpu_name"].str.contains("H200").all() and (runs["gpus"] == spec.resources.gpus_per_run).all()
    assert runs["final_val_loss"].between(1.0, 11.0).all() and (runs["train_time_ms"] > 0).all()
    schema = pq.read_schema(next((folder / "runs").glob("*.parquet")))
    fixed = [name for name, _ in store.BASE_FIELDS + store.TAIL_FIELDS]
    assert [n for n in schema.names if not n.startswith("knob_")] == fixed  # columns and their order
    steps = store.read_steps(folder)
    assert set(steps["run_id"]) == set(runs["run_id"])
    assert steps.groupby("run_id")["val_loss"].count().min() >= 2  # first and last validation
    phases = set(overhead_table(runs)["phase"])
    # the first run on the machine compiled, or (the seeding demo's second half) was seeded
    assert any(p.startswith(("cold", "seeded")) for p in phases), phases
    for name in ("report.md", "report.html"):
        assert (folder / name).stat().st_size > 0
    assert list((folder / "figures").glob("*.png"))
    md = (folder / "report.md").read_text()
    assert sweep["name"] in md and "NVIDIA H200" in md
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    assert size < 4 << 20, f"{folder.name} is {size / 2**20:.1f} MiB; trim its logs (compact results)"


@pytest.mark.parametrize("folder", GPU_RESULTS, ids=lambda p: p.name)
def test_committed_reports_are_todays_redraw(folder, tmp_path):
    """`ablate report` on a copy writes report.md byte for byte as committed, and the same figures: a
    change of the report's text or figures by design redraws these folders (`ablate report
    results/<folder>`) and the README's copies in docs/img (the PNGs' bytes depend on the matplotlib
    build, so the figures are compared by name here and their copies below)."""
    import shutil

    from analysis.report import write_report

    copy = tmp_path / folder.name
    shutil.copytree(folder, copy)
    paths = write_report(copy)
    assert paths["md"].read_text() == (folder / "report.md").read_text(), f"redraw {folder.name}"
    drawn = sorted(k.split(":", 1)[1] + ".png" for k in paths if k.startswith("figure:"))
    assert drawn == sorted(p.name for p in (folder / "figures").glob("*.png"))


def test_readme_figures_are_the_committed_ones():
    copies = {
        "h200_ab_train_time.png": "h200-ab/figures/train_time.png",
        "h200_layer_ablation.png": "h200-drop-one-mlp/figures/layer_ablation.png",
        "h200_text_layer_ablation.png": "h200-text-drop-one-mlp/figures/layer_ablation.png",
    }
    for img, figure in copies.items():
        assert (ROOT / "docs" / "img" / img).read_bytes() == (ROOT / "results" / figure).read_bytes(), img
        assert f"docs/img/{img}" in (ROOT / "README.md").read_text()


def _phase(table, prefix: str):
    return table[table["phase"].str.startswith(prefix)].iloc[0]


def test_h200_ab_holds_the_readmes_verdict_and_overheads():
    folder = ROOT / "results" / "h200-ab"
    runs = store.read_runs(folder).sort_values(["block", "order_index"])
    assert runs["arm"].tolist() == ["baseline", "mlp0", "mlp0", "baseline"] * 2  # ABBA, 4 + 4
    assert runs["node_id"].nunique() == 1  # every block on one node: the paired test uses all of them
    secs = runs.assign(s=runs["train_time_ms"] / 1000).groupby("arm")["s"].mean()
    gain = secs["baseline"] - secs["mlp0"]
    paired = runs.pivot(index="block", columns="arm", values="train_time_ms")
    assert gain > 0 and (paired["mlp0"] < paired["baseline"]).all()  # the seed's direction, every block
    table = overhead_table(runs)
    cold, warm = _phase(table, "cold"), _phase(table, "warm")
    assert cold["runs"] == 1 and warm["mean_startup_s"] <= cold["mean_startup_s"] / 10  # issue 7's bar
    readme = (ROOT / "README.md").read_text()
    quoted = [
        f"{secs['mlp0']:.2f} s against {secs['baseline']:.2f} s",
        f"**{gain:.2f} s or {100 * gain / secs['baseline']:.1f} % faster**",
        f"| {cold['mean_startup_s']:.0f} s |",
        f"| {warm['mean_startup_s']:.1f} s (max {warm['max_startup_s']:.1f} s) |",
        f"Warm is {warm['mean_startup_s'] / cold['mean_startup_s']:.3f} of cold",
    ]
    for text in quoted:
        assert text in readme, f"README no longer says {text!r} (results/h200-ab)"
    ratio = warm["mean_startup_s"] / cold["mean_startup_s"]
    assert f"warm: {ratio:.3f} of a cold start" in (folder / "report.md").read_text()


def test_seed_demo_start_ups_are_the_readmes():
    """Start -> step-0 validation from the driver's time stamps, cold then seeded (issue 7's demo)."""
    text = (ROOT / "benchmarks" / "results" / "h200_seed_demo.txt").read_text()
    first, complete = text.split("\n# The complete seeded run", 1)
    stamps = re.findall(r"^\[(\d\d:\d\d:\d\d)\] .*?(start \w+ on node|step 0/)", first, flags=re.M)
    times = [dt.datetime.strptime(t, "%H:%M:%S") for t, _ in stamps]
    kinds = ["start" if k.startswith("start") else "val0" for _, k in stamps]
    assert kinds == ["start", "val0", "start", "val0"]
    cold_s, seeded_s = ((times[i + 1] - times[i]).seconds for i in (0, 2))
    assert seeded_s <= cold_s / 10 and "wiping the node's compile cache" in first
    readme = (ROOT / "README.md").read_text()
    assert f"validation {seeded_s} s after it started, against {cold_s} s cold" in readme
    # the complete seeded run: its row says seeded, its start-up is a tenth of the cold run's at most
    seeded = store.read_runs(ROOT / "results" / "h200-seed-demo-seeded").iloc[0]
    cold = store.read_runs(ROOT / "results" / "h200-seed-demo-cold").iloc[0]
    assert seeded["compile_cache"] == "seeded" and cold["compile_cache"] == "cold"
    assert seeded["run_id"] == cold["run_id"]  # one config: the seeded start-up is comparable
    assert seeded["startup_s"] <= cold["startup_s"] / 10
    assert "compile cache seeded from another node" in complete
    assert f"start-up {seeded['startup_s']:.1f} s" in complete
    quoted = f"start-up of {seeded['startup_s']:.1f} s against {cold['startup_s']:.1f} s"
    assert quoted in readme, f"README no longer says {quoted!r} (results/h200-seed-demo-*)"


def test_h200_drop_one_holds_the_readmes_figures():
    folder = ROOT / "results" / "h200-drop-one-mlp"
    runs = store.read_runs(folder)
    layers = {tuple(json.loads(r["knob_mlp_off"])): r for _, r in runs.iterrows()}
    assert set(layers) == {(), (0,), (11,)}  # the baseline and layers 0 and 11, one run each
    base = layers[()]
    assert base["compile_cache"] == "cold"
    readme = " ".join((ROOT / "README.md").read_text().split())  # line breaks as spaces
    for layer in (0, 11):
        r = layers[(layer,)]
        assert r["step_avg_ms"] < base["step_avg_ms"]  # the seed's direction: less time a step
        pct = 100 * (base["step_avg_ms"] - r["step_avg_ms"]) / base["step_avg_ms"]
        quoted = (
            f"layer {layer}: {r['step_avg_ms']:.1f} ms a step ({pct:.1f} % less), "
            f"val loss {r['final_val_loss']:.4f}"
        )
        assert quoted in readme, f"README no longer says {quoted!r} (results/h200-drop-one-mlp)"
    assert f"baseline {base['step_avg_ms']:.1f} ms, val loss {base['final_val_loss']:.4f}" in readme


def test_h200_text_spread_holds_the_readmes_figures():
    """The first real-text runs (issue 18): the baseline's spread and the drop of layer 11's MLP."""
    runs = store.read_runs(ROOT / "results" / "h200-text-spread")
    assert (runs["status"] == "ok").all() and set(runs["gpu_name"]) == {"NVIDIA H200"}
    base = runs[runs["arm"] == "baseline"]["final_val_loss"]
    drop = runs[runs["arm"] == "drop_11"]["final_val_loss"]
    assert len(base) == 4 and len(drop) == 1 and len(set(runs["seed"])) == 5  # each run its own seed
    readme = (ROOT / "README.md").read_text()
    gpu = (ROOT / "docs" / "gpu.md").read_text()
    quoted = [
        f"val loss {base.min():.4f} to {base.max():.4f}",
        f"(mean {base.mean():.4f}, sd {base.std():.4f}), and without layer 11's MLP at {drop.iloc[0]:.4f}, "
        f"{drop.iloc[0] - base.mean():.3f} worse",
    ]
    for text in quoted:
        assert text in readme.replace("\n", " "), f"README no longer says {text!r} (results/h200-text-spread)"
    assert f"{base.min():.4f}-{base.max():.4f} (mean {base.mean():.4f}, sd {base.std():.4f})" in gpu.replace(
        "\n  ", " "
    )


def test_h200_text_side_by_side_holds_the_readmes_figures():
    """Ours against upstream on real text (issue 18): the committed JSON, and the README and docs/gpu.md
    quoting it."""
    summary = json.loads((ROOT / "benchmarks" / "results" / "h200_text.json").read_text())
    assert "H200" in summary["gpu"] and summary["preset"] == "pr117" and summary["val_tokens"] == 1048576
    runs = summary["runs"]
    assert set(runs) == {"base", "upstream"} and all(r["exit_code"] == 0 for r in runs.values())
    ours, up = summary["ours_step_ms"], summary["upstream_step_ms"]
    assert summary["ratio_ours_over_upstream"] == pytest.approx(ours / up, abs=1e-4) and ours / up <= 1.03
    readme = (ROOT / "README.md").read_text().replace("\n", " ")
    gpu = (ROOT / "docs" / "gpu.md").read_text().replace("\n  ", " ")
    ratio = f"{summary['ratio_ours_over_upstream']:.3f}"
    losses = f"{summary['ours_val_loss']:.4f} vs {summary['upstream_val_loss']:.4f}"
    assert f"{summary['steps']} steps at `pr117`" in readme
    assert f"{ours:.2f} vs {up:.2f} ms a step ({ratio}), val loss {losses}" in readme
    assert f"{ours:.2f} ms a step ours, {up:.2f} ms upstream's ({ratio}); val loss" in gpu
    assert f"{summary['ours_val_loss']:.4f} ours, {summary['upstream_val_loss']:.4f} upstream's" in gpu


def test_h200_text_seeds_hold_the_readmes_figures():
    """Our seed spread at the side-by-side's length (issue 18): the committed JSON, the README's quote,
    and its claim that upstream's val loss lies between two of our seeds."""
    seeds = json.loads((ROOT / "benchmarks" / "results" / "h200_text_seeds.json").read_text())
    side = json.loads((ROOT / "benchmarks" / "results" / "h200_text.json").read_text())
    assert seeds["preset"] == side["preset"] == "pr117" and seeds["steps"] == side["steps"]
    assert seeds["val_tokens"] == side["val_tokens"] and "upstream" not in seeds["runs"]
    runs = seeds["runs"]
    assert all(r["exit_code"] == 0 for r in runs.values())
    base, s1 = runs["base"]["val_loss"], runs["s1"]["val_loss"]
    assert min(base, s1) < side["upstream_val_loss"] < max(base, s1)
    readme = " ".join((ROOT / "README.md").read_text().split())
    assert (f"two seeds of ours on these shards end at val loss {base:.4f} (seed 0) and {s1:.4f} (seed 1), "
            f"{abs(base - s1):.4f} apart") in readme  # fmt: skip
    assert f"upstream's {side['upstream_val_loss']:.4f} lies between them" in readme


def test_readme_cpu_timings_are_the_committed_measurement():
    """The README's quiet-machine CPU timings are benchmarks/readme_timings.py's committed output."""
    t = json.loads((ROOT / "benchmarks" / "results" / "readme_timings-2026-12-01.json").read_text())
    assert all(t[k]["exit"] == 0 for k in ("demo", "trainer", "drop_one_mlp", "record_ab"))

    def said(seconds: float) -> str:
        m, s = divmod(round(seconds), 60)
        return f"{m} min {s:02d} s" if m else f"{s} s"

    row = next(
        line for line in (ROOT / "README.md").read_text().splitlines() if line.startswith("| demo sweep")
    )
    assert f"At {t['demo']['load'].split(' (')[0]} ({t['date']}" in row
    assert f"demo {said(t['demo']['wall_s'])} ({t['demo']['step_ms']:.0f} ms a step)" in row
    assert f"`drop_one_mlp --profile cpu` {said(t['drop_one_mlp']['wall_s'])}" in row
    assert f"`record_ab --profile cpu` {said(t['record_ab']['wall_s'])}" in row
    assert f"{t['record_ab']['step_ms']:.1f} ms a step)" in row


WORDS = {2: "two", 3: "three", 4: "four"}


def report_table(folder: Path, heading: str) -> list[dict[str, str]]:
    """The rows of the committed report.md's table under the section whose heading starts with
    `heading`, each a dict of column -> cell text (what the README quotes from it)."""
    lines = (folder / "report.md").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"## {heading}"))
    body = []
    for line in lines[start + 1 :]:
        if line.startswith("## "):
            break
        if line.startswith("|"):
            body.append([c.strip() for c in line.strip().strip("|").split("|")])
    head, _, *rows = body
    return [dict(zip(head, row, strict=True)) for row in rows]


def test_h200_text_figure_holds_the_readmes_figures():
    """The real-text figure (issue 18): the README's comparison with the seed quotes the committed runs
    and report as they are (losses from the runs, times and tests from the report's tables, which a
    test elsewhere keeps equal to today's redraw)."""
    folder = ROOT / "results" / "h200-text-drop-one-mlp"
    runs = store.read_runs(folder).sort_values("started_at")
    base = runs[runs["arm"] == "baseline"]
    base_loss = base["final_val_loss"].mean()
    table = report_table(folder, "Configurations against the baseline")
    readme = " ".join((ROOT / "README.md").read_text().split())
    values = ", ".join(f"{v:.4f}" for v in base["final_val_loss"])
    values = " and ".join(values.rsplit(", ", 1))
    quoted = [
        f"all {len(runs)} of its 41 runs",
        f"baseline's {WORDS[len(base)]} runs end at val loss {values} (mean {table[0]['mean_val_loss']})",
    ]
    for arm, other in [("drop_one", set()), ("drop_0_and_one", {0})]:
        at = runs[runs["arm"] == arm]
        layer = [max(set(json.loads(k)) - other) for k in at["knob_mlp_off"]]
        points = at.groupby(layer)["final_val_loss"].mean()
        lo, hi = points.idxmin(), points.idxmax()
        below = int((points < base_loss).sum())
        quoted.append(f"between {points[lo]:.4f} (layer {lo}) and {points[hi]:.4f} (layer {hi}), {below} of "
                      f"the {len(points)} below")  # fmt: skip
    lo, hi = base["final_val_loss"].min(), base["final_val_loss"].max()
    points = runs[runs["arm"] != "baseline"].groupby("knob_mlp_off")["final_val_loss"].mean()
    inside = int(points.between(lo, hi).sum())
    quoted.append(f"shaded band is the baseline's {WORDS[len(base)]} runs: {inside} of the {len(points)} "
                  "points lie inside it")  # fmt: skip
    spread = (folder / "report.md").read_text().split("run-to-run sd of final val loss: ", 1)[1]
    pooled = r"([\d.]+) \(pooled over (\d+) configurations with repeats, (\d+) degrees"
    sd, configs, dof = re.match(pooled, spread).groups()
    quoted.append(f"is {float(sd):.4f} ({dof} degrees of freedom;")
    quoted.append(f"pooled over the {configs} configurations with repeats")
    of_three = r"points of 3 runs \(\d+\) against the baseline's 4: .*? a loss difference of (\S+) "
    three = re.search(of_three, spread)
    quoted.append(f"baseline's four shows a loss difference of {three.group(1)} (Welch")
    needed = re.search(r"0.02 \(Welch, 5 % two-sided, 80 % power at this sd\): \d+ / (\d+)", spread)
    quoted.append(f"one of 0.01 would need {needed.group(1)} runs a point")
    contrasts = {r["contrast"]: r for r in report_table(folder, "Contrasts")}

    def contrast(key: str) -> dict:
        return next(r for label, r in contrasts.items() if key in label)

    for key, words in [
        ("MLP 0 costs little", "end {0} higher ({mean}; the rise's interval {rise}, p {p})"),
        ("last MLP", "end {0} higher ({mean}; the rise's interval {rise}, p {p})"),
        ("only the first and last", "ends {1} lower than MLP 0, the seed's direction reversed ({ci}, p {p})"),
        ("one of 9-11 costs", "means are equal ({mean} each; {ci}, p {p})"),
        ("no dip at 6 and 7", "end {1} lower than the others ({ci}, p {p})"),
    ]:
        r = contrast(key)
        d = float(r["loss_delta"])
        lo, hi = (float(x) for x in r["loss_ci95"].strip("[]").split(", "))
        rise = f"[{-hi:.4f}, {-lo:.4f}]"  # the table says baseline - config
        quoted.append(words.format(f"{-d:.4f}", f"{d:.4f}", mean=r["mean_val_loss"], ci=r["loss_ci95"],
                                   rise=rise, p=f"{float(r['loss_p']):.2f}"))  # fmt: skip
    # times: the grid table's, node-adjusted (its heading says so), and the contrasts' time columns
    base_row, rows = table[0], table[1:]
    base_s = float(base_row["mean_time_s"])
    mlp0 = next(r for r in rows if r["config"].endswith("-> [0])"))
    quoted.append(f"trains {float(mlp0['time_delta_s']):.2f} s less of the baseline's {base_s:.2f} s "
                  f"({100 * float(mlp0['time_delta_s']) / base_s:.1f} %, p {mlp0['time_p']})")  # fmt: skip
    for arm, what in [("drop_one", "single drop takes"), ("drop_0_and_one", "double drop")]:
        saved = [float(r["time_delta_s"]) for r in rows if r["config"].startswith(arm + " ")]
        quoted.append(f"{what} {min(saved):.2f}-{max(saved):.2f} s")
    late = contrast("one of 9-11 costs")
    quoted.append(f"saves {float(late['time_delta_s']):.2f} s more than one of 1-8 (p {late['time_p']})")
    verdict = (folder / "report.md").read_text().split("```\n", 2)[1]
    assert "0 significantly lower loss, 0 significantly higher (Holm-corrected" in verdict
    for text in quoted:
        assert text in readme, f"README no longer says {text!r} (results/h200-text-drop-one-mlp)"


def _in_parts(folder: Path) -> bool:
    """A sweep still in parts, or one that ran in parts (its runs on several nodes: the real-text figure)
    and may get more repeats in another session."""
    if json.loads((folder / "status.json").read_text())["state"] == "partial":
        return True
    return store.read_runs(folder)["node_id"].nunique() > 1


IN_PARTS = [p for p in GPU_RESULTS if _in_parts(p)]


def test_the_real_text_figure_is_a_sweep_in_parts():
    assert [p.name for p in IN_PARTS] == ["h200-text-drop-one-mlp"]


@pytest.mark.parametrize("folder", IN_PARTS, ids=lambda p: p.name)
def test_a_sweep_in_parts_resumes_with_todays_code(folder):
    """A committed sweep in parts (the real-text figure: done, and open to more repeats) resumes only
    while today's plan gives its runs the ids they have: the trainer's source hash is in each id, so an
    edit of trainer/ (its corpus builders excepted) would start the figure again on the GPU machine. Keep
    trainer/ as it is while it may get repeats, or restart it on purpose (docs/gpu.md)."""
    from orchestrator.plan import make_plan

    sweep = store.read_sweep(folder)
    plan = make_plan(load_spec(folder / "spec.yaml", profile=sweep.get("profile")))
    today = {r.run_id for r in plan.runs}
    done = set(store.read_runs(folder)["run_id"])
    assert done <= today, (
        f"{len(done - today)} of {folder.name}'s {len(done)} runs have other ids in today's plan: "
        "trainer/ or the spec changed since its first part"
    )
    assert today == set(sweep["run_ids"])
