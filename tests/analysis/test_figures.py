"""Figure functions return the figure and axes, draw what the data holds, and never save."""

import pandas as pd
import pytest

from analysis import figures


def test_layer_ablation_lines_intervals_and_reference_lines():
    pts = pd.DataFrame(
        {
            "series": ["drop one"] * 3 + ["drop 0 and one"] * 4,
            "layer": [1, 2, 3, 1, 1, 2, 2],
            "final_val_loss": [3.29, 3.30, 3.31, 3.30, 3.31, 3.32, 3.34],
        }
    )
    fig, axes = figures.layer_ablation(pts, baseline_mean=3.278, target=3.28)
    (ax,) = axes  # no train_time_s column: the loss panel alone
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert sorted(labels) == ["baseline mean", "drop 0 and one", "drop one", "target 3.28"]
    hlines = {line.get_label(): line.get_ydata()[0] for line in ax.lines if line.get_label() in labels}
    assert hlines["baseline mean"] == 3.278 and hlines["target 3.28"] == 3.28
    assert ax.get_xlabel() == "layer index" and fig.axes == [ax]
    assert list(ax.get_xticks()) == [1, 2, 3]
    # n == 2 points get an error bar, n == 1 points a zero one
    ebar = next(c for c in ax.containers if c.get_label() == "drop 0 and one")
    assert list(ebar.lines[0].get_ydata()) == pytest.approx([3.305, 3.33])
    half = [abs(seg[1][1] - seg[0][1]) / 2 for seg in ebar.lines[2][0].get_segments()]
    assert half[0] == pytest.approx(12.7062 * 0.0070711 / 2**0.5, rel=1e-3)  # t(0.975, df=1) * sd / sqrt(2)
    single = next(c for c in ax.containers if c.get_label() == "drop one")
    assert all(seg[1][1] == seg[0][1] for seg in single.lines[2][0].get_segments())
    fig2, _ = figures.layer_ablation(pts, None, None)
    assert sorted(t.get_text() for t in fig2.axes[0].get_legend().get_texts()) == [
        "drop 0 and one",
        "drop one",
    ]


def _joining_lines(ax):
    """x data of the lines that join points (not markers alone, not reference lines)."""
    return [
        list(line.get_xdata())
        for line in ax.lines
        if line.get_linestyle() != "None" and not line.get_label().startswith(("baseline", "target"))
    ]


def test_layer_ablation_joins_adjacent_layers_only_and_draws_train_time():
    pts = pd.DataFrame(
        {
            "series": ["drop one"] * 5,
            "layer": [0, 1, 2, 5, 11],
            "final_val_loss": [3.27, 3.30, 3.31, 3.30, 3.29],
            "train_time_s": [150.1, 152.0, 152.3, 151.9, 150.0],
        }
    )
    fig, (loss_ax, time_ax) = figures.layer_ablation(pts, 3.28, None, baseline_time_s=153.0)
    assert fig.axes == [loss_ax, time_ax]
    # 0-1-2 is one line; 5 and 11 stand alone (no line drawn across layers that never ran)
    assert _joining_lines(loss_ax) == [[0, 1, 2]] and _joining_lines(time_ax) == [[0, 1, 2]]
    assert time_ax.get_ylabel() == "train time (s)" and loss_ax.get_ylabel() == "final val loss"
    ref = {line.get_label(): line.get_ydata()[0] for line in time_ax.lines}
    assert ref["baseline mean"] == 153.0
    times = next(c for c in time_ax.containers if c.get_label() == "drop one")
    assert list(times.lines[0].get_ydata()) == [150.1, 152.0, 152.3, 151.9, 150.0]
    assert list(time_ax.get_xticks()) == list(range(12)) and time_ax.get_xlabel() == "layer index"
    # the model's layer count puts every layer on the axis, those left out of the grid too
    _, axes = figures.layer_ablation(pts[pts["layer"] < 6], 3.28, None, num_layers=12)
    assert list(axes[-1].get_xticks()) == list(range(12))
    _, axes = figures.layer_ablation(pts[pts["layer"] < 6], 3.28, None)
    assert list(axes[-1].get_xticks()) == list(range(6))


def test_train_times_marker_per_node_and_loss_distribution():
    runs = pd.DataFrame(
        {
            "arm": ["a", "b", "a", "b"],
            "node_id": ["n0", "n0", "n1", None],
            "hostname": ["h0", "h0", "h1", "h2"],
            "train_time_ms": [1000.0, 900.0, 1100.0, 950.0],
            "final_val_loss": [3.3, 3.2, 3.31, 3.21],
        }
    )
    fig, ax = figures.train_times(runs)
    assert sorted(t.get_text() for t in ax.get_legend().get_texts()) == [
        "a @ n0",
        "a @ n1",
        "b @ h2",
        "b @ n0",
    ]
    assert ax.get_ylabel() == "train time (s)"
    fig, ax = figures.loss_distribution(runs)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b"]


def test_loss_curves_one_line_per_run():
    runs = pd.DataFrame({"run_id": ["r1", "r2"], "arm": ["a", "b"]})
    steps = pd.DataFrame(
        {"run_id": ["r1", "r1", "r2", "r2"], "step": [0, 10, 0, 10], "val_loss": [10.0, 4.0, 10.0, 4.2]}
    )
    fig, ax = figures.loss_curves(steps, runs)
    drawn = [line for line in ax.lines if len(line.get_xdata())]
    assert len(drawn) == 2 and [t.get_text() for t in ax.get_legend().get_texts()] == ["a", "b"]


def test_loss_curves_keep_the_untrained_first_validation_off_the_scale():
    runs = pd.DataFrame({"run_id": ["r1", "r2"], "arm": ["a", "b"]})
    steps = pd.DataFrame(
        {
            "run_id": ["r1"] * 3 + ["r2"] * 3,
            "step": [0, 100, 200] * 2,
            "val_loss": [10.8, 3.02, 2.75, 10.8, 3.01, 2.76],
        }
    )
    _, ax = figures.loss_curves(steps, runs)
    lo, hi = ax.get_ylim()
    assert lo < 2.75 and 3.02 < hi < 4.0  # the later validations fill the axis
    assert ax.get_title().endswith("(step 0 off the scale)") and 0 < ax.get_xlim()[0] < 100
    # a curve without such a jump keeps every point on the axis
    gradual = steps.assign(val_loss=[3.4, 3.3, 3.2, 3.41, 3.31, 3.21])
    _, ax = figures.loss_curves(gradual, runs)
    assert ax.get_ylim()[1] >= 3.41 and "off the scale" not in ax.get_title()
    # a first and a last validation only: nothing would be left to draw, so nothing is cut
    two = steps[steps["step"] != 100]
    _, ax = figures.loss_curves(two, runs)
    assert ax.get_ylim()[1] >= 10.8 and "off the scale" not in ax.get_title()
