"""`ablate compare` and `ablate report` through the real `ablate` entry point (orchestrator.cli.main)."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from analysis.cli import parse_target
from analysis.stats import DEFAULT_TARGET
from orchestrator.cli import main
from tests.analysis.helpers import make_ab_results, upstream_log, write_seed_logs


def _ablate(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_golden_seed_numbers_from_one_record_folder(tmp_path, capsys):
    folder = write_seed_logs(tmp_path / "pr120")
    code, out, err = _ablate(
        capsys,
        "compare",
        "--baseline-logs",
        str(folder / "comparison_*.txt"),
        "--candidate-logs",
        str(folder),
    )
    assert code == 0, err
    lines = out.splitlines()
    # exactly the seed's printed numbers, in its order: p new, p prev, mean time new, prev, improvement
    assert lines[2].startswith("candidate: p=0.0003 ")
    assert lines[3].startswith("baseline: p=0.0000 ")
    assert lines[5].startswith("candidate: 163.0351 ")
    assert lines[6].startswith("baseline: 164.4524 ")
    assert lines[7].startswith("Time improve: 1.4173 sec")
    assert lines[0].startswith(
        "verdict: candidate passes the record rule (p=0.0003 vs 3.28); candidate faster"
    )
    assert "(n=10," in lines[2] and "(n=10," in lines[3]


def test_compare_json_shape(tmp_path, capsys):
    folder = write_seed_logs(tmp_path / "pr120")
    code, out, _ = _ablate(
        capsys,
        "compare",
        "--baseline-logs",
        f"{folder}/comparison_*",
        "--candidate-logs",
        str(folder),
        "--json",
    )
    assert code == 0
    data = json.loads(out)
    assert data["target"] == 3.28
    for arm in ("baseline", "candidate"):
        assert {
            "n",
            "mean_val_loss",
            "sd_val_loss",
            "t",
            "p_value",
            "mean_train_time_s",
            "sd_train_time_s",
        } <= set(data["arms"][arm])
        assert data["arms"][arm]["n"] == 10
    td = data["time_delta"]
    assert {
        "mean_s",
        "welch_t",
        "welch_df",
        "p_one_sided",
        "p_two_sided",
        "ci95_low_s",
        "ci95_high_s",
    } <= set(td)
    assert (
        f"{td['mean_s']:.4f}" == "1.4173"
        and td["welch_t"] > 0
        and td["ci95_low_s"] < 1.4173 < td["ci95_high_s"]
    )
    assert f"{data['arms']['candidate']['p_value']:.4f}" == "0.0003"


def test_compare_with_prefix_flags_and_bad_logs(tmp_path, capsys):
    folder = write_seed_logs(tmp_path / "pr120")
    (folder / "run99.txt").write_text(upstream_log(20, 3.28, 1000)[:-300])  # truncated
    code, out, _ = _ablate(
        capsys, "compare", "--baseline-logs", f"{folder}/comparison_*", "--candidate-logs", str(folder),
        "--exclude-prefix", "run99", "--target", "none",
    )  # fmt: skip
    assert code == 0 and "record rule: skipped" in out and "Time improve: 1.4173 sec" in out
    code, out, _ = _ablate(
        capsys, "compare", "--baseline-logs", f"{folder}/comparison_*", "--candidate-logs", str(folder)
    )
    assert code == 0 and "skipped candidate log run99.txt: truncated" in out and "p=0.0003" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--baseline-logs", "{d}/nope", "--candidate-logs", "{d}"], "nope: no such folder or file"),
        (["--baseline-logs", "{d}/*.log", "--candidate-logs", "{d}"], "no log files matched"),
        (
            ["--baseline-logs", "{d}", "--candidate-logs", "{d}"],
            "matched by both --baseline-logs and --candidate",
        ),
        (
            ["--baseline-logs", "{d}/comparison_*", "--candidate-logs", "{d}", "--target", "low"],
            "--target: 'low'",
        ),
    ],
)
def test_compare_user_errors_are_one_line(tmp_path, capsys, argv, message):
    folder = write_seed_logs(tmp_path / "pr120")
    code, out, err = _ablate(capsys, "compare", *[a.format(d=folder) for a in argv])
    assert code == 2 and out == ""
    assert err.startswith("ablate: error: ") and message in err and err.count("\n") == 1


def test_report_verb(tmp_path, capsys):
    root = make_ab_results(tmp_path / "ab")
    code, out, _ = _ablate(capsys, "report", str(root))
    assert code == 0 and out.startswith("verdict: candidate passes the record rule")
    assert (root / "report.md").exists() and (root / "report.html").exists()
    code, _, err = _ablate(capsys, "report", str(tmp_path / "missing"))
    assert code == 2 and "no such results folder" in err


def test_compare_help_documents_one_folder_use(capsys):
    with pytest.raises(SystemExit):
        main(["compare", "--help"])
    out = capsys.readouterr().out
    assert "comparison_*" in out and "--exclude-prefix" in out
    for text in ("RECORD_DIR", "--baseline NAME", "--logs DIR_OR_GLOB", "read with its subfolders", "*.out",
                 "gzip", "[default0]:", "--verbose", "--strict", f"(default {DEFAULT_TARGET})"):  # fmt: skip
        assert text in " ".join(out.split()), text


def test_one_definition_of_the_target_and_the_bootstrap_seed():
    from analysis import report, summary

    assert parse_target(None) == DEFAULT_TARGET and parse_target("none") is None
    assert parse_target("3.2") == 3.2
    assert summary.BOOTSTRAP_SEED == report.BOOTSTRAP_SEED  # compare's numbers are the report's
    sources = sorted(Path(summary.__file__).parent.glob("*.py"))
    defined = [p.name for p in sources if re.search(r"^BOOTSTRAP_SEED\s*[:=]", p.read_text(), re.MULTILINE)]
    assert defined == ["summary.py"]  # imported elsewhere, so one change moves both


def test_analysis_never_imports_ray_or_torch():
    code = (
        "import sys\n"
        "import analysis, analysis.logs, analysis.store, analysis.stats, analysis.sequential\n"
        "import analysis.figures, analysis.summary, analysis.report, analysis.cli, analysis.compare\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('ray', 'torch'))\n"
        "print(bad)\n"
        "sys.exit(1 if bad else 0)\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
