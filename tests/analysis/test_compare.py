"""`ablate compare` never lies silently: one run counts once, every skipped file is said, record folders
split by upstream's conventions, pooled schedules warn. Logs come from our writer (tests/analysis/helpers).
"""

import gzip
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from analysis import logs as logs_module
from orchestrator.cli import main
from tests.analysis.helpers import (
    FAKE_CODE,
    SEED_BASELINE_LOSS,
    SEED_BASELINE_MS,
    SEED_CANDIDATE_LOSS,
    SEED_CANDIDATE_MS,
    step_lines,
    upstream_log,
    write_seed_logs,
)

EXPECTED = Path(__file__).parent / "expected"
SEED_LINES = {  # the seed's printed numbers, at their places in the text (the golden test's)
    2: "candidate: p=0.0003 ",
    3: "baseline: p=0.0000 ",
    5: "candidate: 163.0351 ",
    6: "baseline: 164.4524 ",
    7: "Time improve: 1.4173 sec",
}


def _ablate(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _assert_seed(code, out, err):
    assert code == 0, err
    lines = out.splitlines()
    for i, start in SEED_LINES.items():
        assert lines[i].startswith(start), (i, lines[i])
    assert "(n=10," in lines[2] and "(n=10," in lines[3] and "warning:" not in out


def _error_line(code, out, err, *needles):
    assert code == 2 and out == "" and err.startswith("ablate: error: ") and err.count("\n") == 1, err
    for needle in needles:
        assert needle in err, err
    return err


def _write_arm(folder: Path, losses, times_ms, steps=20, prefix="run", code=FAKE_CODE) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, (loss, ms) in enumerate(zip(losses, times_ms, strict=True)):
        (folder / f"{prefix}{i:02d}.txt").write_text(upstream_log(steps, loss, ms, val_every=5, code=code))
    return folder


def _write_2026_record(root: Path, baseline: str, candidate: str) -> Path:
    """A record folder of one subfolder per arm (2026 style), plus the files such a folder also holds."""
    _write_arm(root / baseline, SEED_BASELINE_LOSS, SEED_BASELINE_MS)
    _write_arm(root / candidate, SEED_CANDIDATE_LOSS, SEED_CANDIDATE_MS)
    (root / "README.md").write_text("# a record\n")
    (root / "analyze_sweep.py").write_text("import re\n")
    return root


def _spellings(tmp_path):
    """The README's form (baseline a glob in the candidate's folder) with the two paths spelled apart."""
    folder = write_seed_logs(tmp_path / "pr120")
    (tmp_path / "sub").mkdir()
    (tmp_path / "link").symlink_to(folder)
    return {
        "relative": (tmp_path, "pr120/comparison_*.txt", "pr120"),
        "absolute": (tmp_path, "pr120/comparison_*.txt", str(folder)),
        "dotdot": (tmp_path / "sub", "../pr120/comparison_*", "../sub/../pr120/"),
        "symlink": (tmp_path, str(folder / "comparison_*.txt"), "link"),
        "glob vs folder": (folder, "./comparison_*.txt", "."),
    }


@pytest.mark.parametrize("how", ["relative", "absolute", "dotdot", "symlink", "glob vs folder"])
def test_readme_form_spelled_five_ways_gives_the_seed(tmp_path, capsys, monkeypatch, how):
    cwd, baseline, candidate = _spellings(tmp_path)[how]
    monkeypatch.chdir(cwd)
    _assert_seed(*_ablate(capsys, "compare", "--baseline-logs", baseline, "--candidate-logs", candidate))


def test_record_folder_form_is_golden(tmp_path, capsys, monkeypatch):
    write_seed_logs(tmp_path / "pr120")
    monkeypatch.chdir(tmp_path)
    code, out, err = _ablate(capsys, "compare", "pr120")
    _assert_seed(code, out, err)
    assert out == (EXPECTED / "compare_seed_record.txt").read_text()


def test_one_arm_form_gives_the_record_rule_and_times(tmp_path, capsys, monkeypatch):
    write_seed_logs(tmp_path / "pr120")
    monkeypatch.chdir(tmp_path)
    code, out, err = _ablate(capsys, "compare", "--logs", "pr120", "--exclude-prefix", "comparison_")
    assert code == 0, err
    assert out == (EXPECTED / "compare_seed_logs.txt").read_text()
    assert "runs: p=0.0003  (n=10, mean 3.27780" in out and "mean train time (s): 163.0351" in out
    data = json.loads(_ablate(capsys, "compare", "--logs", "pr120/comparison_*", "--json")[1])
    assert data["arms"]["runs"]["n"] == 10 and f"{data['arms']['runs']['p_value']:.4f}" == "0.0000"
    assert data["verdict"].startswith("the runs pass the record rule (p=0.0000 (1.4e-05) vs 3.28)")


def test_same_files_on_both_sides_are_refused(tmp_path, capsys):
    folder = write_seed_logs(tmp_path / "pr120")
    (tmp_path / "again").symlink_to(folder)
    for other in (tmp_path / "again", f"{folder}/../pr120/"):
        err = _error_line(*_ablate(capsys, "compare", "--baseline-logs", folder, "--candidate-logs", other))
        assert "all 20 files matched by both --baseline-logs and --candidate-logs" in err
    glob_all = f"{folder}/*"  # a glob for every file of the folder is the folder again
    _error_line(
        *_ablate(capsys, "compare", "--baseline-logs", glob_all, "--candidate-logs", folder), "same set"
    )


def test_overlap_error_advice_works(tmp_path, capsys):
    """Two folders sharing files: the error's advice (the baseline as a glob of its files) then works."""
    folder = write_seed_logs(tmp_path / "pr120")
    nested = tmp_path / "pr120" / "comparison"
    nested.mkdir()
    for p in folder.glob("comparison_*"):
        p.rename(nested / p.name)
    err = _error_line(*_ablate(capsys, "compare", "--baseline-logs", nested, "--candidate-logs", folder))
    assert "matched by both" in err and "as a glob" in err and "--exclude-prefix" not in err
    advice = f"{nested}/comparison_*"
    _assert_seed(*_ablate(capsys, "compare", "--baseline-logs", advice, "--candidate-logs", folder))


def test_one_log_in_both_arms_is_refused(tmp_path, capsys):
    folder = write_seed_logs(tmp_path / "pr120")
    base, cand = tmp_path / "base", tmp_path / "cand"
    base.mkdir()
    cand.mkdir()
    for p in folder.iterdir():
        shutil.copy(p, (base if p.name.startswith("comparison_") else cand) / p.name)
    shutil.copy(cand / "run03.txt", base / "comparison_00.txt")  # a candidate run among the baseline's
    code, out, err = _ablate(capsys, "compare", "--baseline-logs", base, "--candidate-logs", cand)
    _error_line(
        code, out, err, "run03.txt (--candidate-logs) and comparison_00.txt", "same log (identical content)"
    )


def test_exact_copies_count_once_with_a_warning(tmp_path, capsys):
    folder = write_seed_logs(tmp_path / "pr120")
    for p in sorted(folder.glob("run*.txt")):
        shutil.copy(p, folder / f"copy_of_{p.name}")
    base = f"{folder}/comparison_*"
    code, out, err = _ablate(capsys, "compare", "--baseline-logs", base, "--candidate-logs", folder)
    assert code == 0 and "candidate: p=0.0003  (n=10," in out and "Time improve: 1.4173 sec" in out
    warning = "warning: candidate: 10 duplicate logs counted once: run00.txt (exact copy of "
    assert warning + "copy_of_run00.txt)" in out
    assert "candidate 10 used, 10 skipped (duplicate 10; --verbose lists them)" in out
    data = json.loads(
        _ablate(capsys, "compare", "--baseline-logs", base, "--candidate-logs", folder, "--json")[1]
    )
    assert data["arms"]["candidate"]["n"] == 10 and "10 duplicate logs" in data["warnings"][0]
    assert {s["reason"] for s in data["files"]["candidate"]["skipped"]} >= {"exact copy of copy_of_run00.txt"}


def test_three_copies_of_one_run_are_one_run(tmp_path, capsys):
    arm = _write_arm(tmp_path / "one", [3.2700], [160000])
    for k in (1, 2):
        shutil.copy(arm / "run00.txt", arm / f"again{k}.txt")
    code, out, _ = _ablate(capsys, "compare", "--logs", arm)
    assert code == 0 and "runs: p=n/a  (n=1: no test" in out and "record rule: no test (runs n=1)" in out
    assert "2 duplicate logs counted once: again2.txt (exact copy of again1.txt), run00.txt" in out


def _tee_capture(text: str) -> str:
    """What `torchrun --tee` captures of a run upstream's script logs: its stdout, each line prefixed."""
    body = text[text.index("step:0/") :]
    return "W0905 torch/distributed/run.py: Setting OMP_NUM_THREADS\n" + "".join(
        f"[default0]:{x}\n" for x in body.splitlines()
    )


def test_copies_of_a_run_in_other_forms_count_once(tmp_path, capsys):
    """CRLF ends, a tee capture, a note appended: one run each, said as a duplicate naming both files."""
    folder = write_seed_logs(tmp_path / "pr120")
    run = [(folder / f"run0{i}.txt").read_text() for i in range(3)]
    (folder / "run00_crlf.txt").write_bytes(run[0].replace("\n", "\r\n").encode())
    (folder / "run01_tee.log").write_text(_tee_capture(run[1]))
    (folder / "run02_noted.txt").write_text(run[2] + "# seed 2, rerun on node 3\n")
    shutil.copy(folder / "run03.txt", folder / "run03_copy.txt")  # an exact copy still says so
    code, out, err = _ablate(capsys, "compare", folder)
    _assert_seed(code, out.replace("\nwarning: ", "\n"), err)  # the seed's n=10, times and p-values
    assert "candidate 10 used (the other files), 4 skipped (duplicate 4)" in out
    warning = "warning: candidate: 4 duplicate logs counted once: "
    assert (
        out.count("warning:") == 1
        and warning
        + (
            "run00_crlf.txt (the same run as run00.txt: identical step lines), "
            "run01_tee.log (the same run as run01.txt: identical step lines; one has a code header, the "
            "other none), "
            "run02_noted.txt (the same run as run02.txt: identical step lines) and 1 more"
        )
        in out
    )
    assert "skipped candidate log run03_copy.txt: exact copy of run03.txt" in out


def test_a_copy_whose_code_header_was_edited_is_the_same_run_and_says_so(tmp_path, capsys):
    """The step lines, to the millisecond, are the run: a copy whose embedded code was edited afterwards
    counts once, and the duplicate's reason says the headers differ."""
    folder = write_seed_logs(tmp_path / "pr120")
    text = (folder / "run05.txt").read_text()
    cut = text.index("step:0/")
    code = text[:cut]
    assert code.strip(), "the fixture's logs embed their code"
    (folder / "run05_edited.txt").write_text(code.replace("import", "import  ", 1) + text[cut:])
    code_, out, err = _ablate(capsys, "compare", folder)
    _assert_seed(code_, out.replace("\nwarning: ", "\n"), err)
    assert (
        "run05_edited.txt (the same run as run05.txt: identical step lines; their code headers differ, "
        "so one was edited after the run)" in out
    )


def test_one_run_in_both_arms_by_its_step_lines_is_refused(tmp_path, capsys, monkeypatch):
    folder = write_seed_logs(tmp_path / "pr120")
    monkeypatch.chdir(tmp_path)
    crlf = (folder / "run04.txt").read_text().replace("\n", "\r\n")
    (folder / "comparison_04.txt").write_bytes(crlf.encode())  # a candidate run among the baseline's
    _error_line(
        *_ablate(capsys, "compare", "pr120"),
        "run04.txt (pr120 other files) and comparison_04.txt (pr120 comparison_* files) are the same run "
        "(identical step lines): one run cannot count in both arms",
    )


def test_a_file_of_two_runs_is_not_counted_and_warns(tmp_path, capsys):
    """Two logs concatenated, or a capture appended to: which run would count is a guess; say it, skip it."""
    folder = write_seed_logs(tmp_path / "pr120")
    first = (folder / "run08.txt").read_text()
    second = (folder / "run09.txt").read_text()
    (folder / "run08.txt").write_text(first + second)
    (folder / "run09.txt").unlink()
    lines = (first + second).split("\n")
    at = 1 + next(i for i, x in enumerate(lines) if i >= first.count("\n") and x.startswith("step:0/"))
    code, out, _ = _ablate(capsys, "compare", folder)
    assert code == 0 and "candidate: p=0.0021  (n=8," in out  # read as one run, it was n=9
    assert "candidate 8 used (the other files), 1 skipped (several runs 1)" in out
    skip = f"skipped candidate log run08.txt: holds 2 runs (step 0 again at line {at}); split it into one "
    assert skip + "file per run" in out
    assert (
        f"warning: candidate: 1 log not counted, holding several runs: run08.txt (2 runs, step 0 again at "
        f"line {at}); split it into one file per run"
    ) in out
    _error_line(*_ablate(capsys, "compare", folder, "--strict"), "--strict: 1 warning: candidate: 1 log not")
    stdout = "".join(f"{x}\n" for x in step_lines(20, 3.27, 160000, val_every=5))
    (folder / "run09.txt").write_text(stdout * 2)  # a capture appended to: no header
    data = json.loads(_ablate(capsys, "compare", folder, "--json")[1])
    assert data["arms"]["candidate"]["n"] == 8 and len(data["warnings"]) == 1
    assert "run09.txt (2 runs, step 0 again at line 22)" in data["warnings"][0]


def test_a_diverged_run_warns_a_truncated_one_is_a_note(tmp_path, capsys):
    folder = write_seed_logs(tmp_path / "pr120")
    good = (folder / "run09.txt").read_text()
    (folder / "run10.txt").write_text(re.sub(r"step:10/20 val_loss:[\d.]+", "step:10/20 val_loss:nan", good))
    (folder / "run11.txt").write_text(good[: good.index("step:15/20")])
    code, out, _ = _ablate(capsys, "compare", folder)
    assert code == 0 and "candidate: p=0.0003  (n=10," in out
    assert "candidate 10 used (the other files), 2 skipped (diverged 1, truncated 1)" in out
    assert "skipped candidate log run11.txt: truncated (stopped at step 14 of 20)" in out
    warnings = [x for x in out.splitlines() if x.startswith("warning:")]
    assert warnings == [
        "warning: candidate: 1 run diverged, not counted: run10.txt (non-finite val_loss at step 10)"
    ]
    _error_line(
        *_ablate(capsys, "compare", folder, "--strict"), "--strict: 1 warning: candidate: 1 run diverged"
    )
    (folder / "run10.txt").unlink()
    assert "warning:" not in _ablate(capsys, "compare", folder)[1]  # truncated alone: a note, no warning


def test_unreadable_log_is_a_skip_with_its_reason_or_one_line(tmp_path, capsys, monkeypatch):
    folder = write_seed_logs(tmp_path / "pr120")
    real_read = logs_module._read_bytes

    def deny(path):  # tests run as root here, where chmod 000 still reads: refuse as the OS would
        if Path(path).name.startswith(("run03", "comparison_")):
            raise PermissionError(13, "Permission denied", str(path))
        return real_read(path)

    monkeypatch.setattr(logs_module, "_read_bytes", deny)
    code, out, _ = _ablate(capsys, "compare", "--logs", folder, "--exclude-prefix", "comparison_")
    assert code == 0 and "(n=9," in out and "skipped log run03.txt: cannot read it (Permission denied)" in out
    assert "logs: 9 used, 1 skipped (unreadable 1)" in out
    err = _error_line(*_ablate(capsys, "compare", folder))
    assert "comparison_00.txt: cannot read it (Permission denied); comparison_01.txt" in err


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a file whatever its mode")
def test_unreadable_log_by_its_mode(tmp_path, capsys):
    folder = write_seed_logs(tmp_path / "pr120")
    (folder / "run03.txt").chmod(0)
    code, out, _ = _ablate(capsys, "compare", folder)
    assert code == 0 and "skipped candidate log run03.txt: cannot read it (Permission denied)" in out


def test_name_too_long_is_one_line(tmp_path, capsys):
    folder = write_seed_logs(tmp_path / "pr120")
    long = tmp_path / ("x" * 300)
    for argv in (["--baseline-logs", long, "--candidate-logs", folder], ["--logs", f"{long}/sub"], [long]):
        _error_line(*_ablate(capsys, "compare", *argv), "File name too long")


def test_captures_out_gz_and_subfolders_parse(tmp_path, capsys):
    arm = tmp_path / "arm"
    (arm / "node0").mkdir(parents=True)
    body = step_lines(20, SEED_CANDIDATE_LOSS[0], SEED_CANDIDATE_MS[0], val_every=5)
    torchrun = ["W0905 12:00:00 torch/distributed/run.py:793] Setting OMP_NUM_THREADS", "*" * 40]
    (arm / "tee.log").write_text("\n".join(torchrun + [f"[default0]:{line}" for line in body]) + "\n")
    (arm / "slurm-123.out").write_text(upstream_log(20, SEED_CANDIDATE_LOSS[1], SEED_CANDIDATE_MS[1]))
    (arm / "run.txt.gz").write_bytes(
        gzip.compress(upstream_log(20, SEED_CANDIDATE_LOSS[2], SEED_CANDIDATE_MS[2]).encode())
    )
    (arm / "node0" / "run.txt").write_text(upstream_log(20, SEED_CANDIDATE_LOSS[3], SEED_CANDIDATE_MS[3]))
    (arm / "run.metrics.jsonl").write_text("{}\n")  # not a log
    data = json.loads(_ablate(capsys, "compare", "--logs", arm, "--json")[1])
    used = sorted(os.path.relpath(p, arm) for p in data["files"]["runs"]["used"])
    assert used == ["node0/run.txt", "run.txt.gz", "slurm-123.out", "tee.log"]
    mean = sum(SEED_CANDIDATE_LOSS[:4]) / 4
    assert data["arms"]["runs"]["n"] == 4 and abs(data["arms"]["runs"]["mean_val_loss"] - mean) < 1e-12
    assert data["files"]["runs"]["skipped"] == [] and data["warnings"] == []


def test_broken_links_and_bad_gzip_are_skipped_with_reasons(tmp_path, capsys):
    folder = write_seed_logs(tmp_path / "pr120")
    (folder / "run98.txt").symlink_to(tmp_path / "gone.txt")
    (folder / "run99.txt.gz").write_bytes(b"\x1f\x8b not gzip at all")
    code, out, _ = _ablate(capsys, "compare", folder)
    assert code == 0 and "candidate 10 used (the other files), 2 skipped (unreadable 2)" in out
    assert "skipped candidate log run98.txt: broken link (its target does not exist)" in out
    assert "skipped candidate log run99.txt.gz: cannot read it (not a readable gzip file" in out


def test_an_empty_arm_lists_every_reason(tmp_path, capsys):
    folder = write_seed_logs(tmp_path / "pr120")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a.txt").write_text(upstream_log(20, 3.28, 1000)[:-400])
    (bad / "b.txt").write_text("Traceback (most recent call last):\n  boom\n")
    (bad / "c.txt").write_text("")
    (bad / "d.txt").write_text(
        "\n".join(step_lines(20, 3.28, 1000)[:5] + ["diverged: non-finite train loss"])
    )
    code, out, err = _ablate(
        capsys, "compare", "--baseline-logs", f"{folder}/comparison_*", "--candidate-logs", bad
    )
    _error_line(code, out, err, "--candidate-logs: no log reached its final val line (status ok): ")
    reasons = ["a.txt: truncated (stopped at step", "b.txt: garbled (no step lines", "c.txt: empty (no log",
               "d.txt: diverged (diverged: non-finite train loss)"]  # fmt: skip
    assert all(text in err for text in reasons)


def test_tee_captures_without_stripping_would_all_be_skipped(tmp_path, capsys):
    """The issue's case: every line prefixed `[default0]:` (the rank-0 worker of torchrun --tee)."""
    arm = tmp_path / "tee"
    arm.mkdir()
    for i, (loss, ms) in enumerate(zip(SEED_CANDIDATE_LOSS, SEED_CANDIDATE_MS, strict=True)):
        text = "\n".join(f"[default0]:{line}" for line in step_lines(20, loss, ms, val_every=5))
        (arm / f"run{i}.log").write_text(text + "\n[default0]:peak memory allocated: 1 MiB reserved: 2 MiB\n")
    code, out, _ = _ablate(capsys, "compare", "--logs", arm)
    assert code == 0 and "runs: p=0.0003  (n=10," in out and "mean train time (s): 163.0351" in out


def test_many_skipped_files_are_counted_and_listed_with_verbose(tmp_path, capsys):
    folder = write_seed_logs(tmp_path / "pr120")
    for k in range(7):
        (folder / f"crash{k}.txt").write_text(upstream_log(20, 3.28, 1000 + k)[:-400])
    base = f"{folder}/comparison_*"
    code, out, _ = _ablate(capsys, "compare", "--baseline-logs", base, "--candidate-logs", folder)
    assert code == 0 and "candidate 10 used, 7 skipped (truncated 7; --verbose lists them)" in out
    assert "skipped candidate log" not in out
    out = _ablate(capsys, "compare", "--baseline-logs", base, "--candidate-logs", folder, "--verbose")[1]
    assert out.count("skipped candidate log crash") == 7


def test_mixed_schedules_warn_and_strict_refuses(tmp_path, capsys):
    arm = _write_arm(tmp_path / "mixed", SEED_CANDIDATE_LOSS[:6], SEED_CANDIDATE_MS[:6], steps=20)
    _write_arm(arm, SEED_CANDIDATE_LOSS[6:], SEED_CANDIDATE_MS[6:], steps=25, prefix="long")
    code, out, _ = _ablate(capsys, "compare", "--logs", arm)
    assert code == 0 and "(n=10," in out
    assert (
        "warning: logs: runs of different lengths pooled: 20 steps (6 runs: run00.txt, run01.txt, run02.txt"
        in out
    )
    assert "25 steps (4 runs: long00.txt, long01.txt, long02.txt and 1 more)" in out
    data = json.loads(_ablate(capsys, "compare", "--logs", arm, "--json")[1])
    assert len(data["warnings"]) == 1 and "different lengths" in data["warnings"][0]
    _error_line(*_ablate(capsys, "compare", "--logs", arm, "--strict"), "--strict: 1 warning: logs: runs of")


def test_counts_of_one_are_in_the_singular(tmp_path, capsys):
    arm = _write_arm(tmp_path / "few", SEED_CANDIDATE_LOSS[:3], SEED_CANDIDATE_MS[:3], steps=20)
    _write_arm(arm, SEED_CANDIDATE_LOSS[3:4], SEED_CANDIDATE_MS[3:4], steps=25, prefix="long")
    shutil.copy(arm / "run00.txt", arm / "again.txt")
    out = _ablate(capsys, "compare", "--logs", arm)[1]
    assert "20 steps (3 runs: again.txt, run01.txt, run02.txt), 25 steps (1 run: long00.txt)" in out
    assert "logs: 1 duplicate log counted once: run00.txt (exact copy of again.txt)" in out
    one = _write_arm(tmp_path / "one", SEED_CANDIDATE_LOSS[:1], SEED_CANDIDATE_MS[:1])
    out = _ablate(capsys, "compare", "--logs", one, "--target", "none")[1]
    assert out.startswith("verdict: no target: 1 run, mean train time 163.0780 s")


def test_different_training_code_warns_but_not_comments_or_seeds(tmp_path, capsys):
    arm = _write_arm(tmp_path / "code", SEED_CANDIDATE_LOSS[:5], SEED_CANDIDATE_MS[:5])
    _write_arm(
        arm, SEED_CANDIDATE_LOSS[5:7], SEED_CANDIDATE_MS[5:7], prefix="note", code="# run 3\n" + FAKE_CODE
    )
    out = _ablate(capsys, "compare", "--logs", arm)[1]
    assert "warning:" not in out  # a leading comment is no code change
    _write_arm(arm, SEED_CANDIDATE_LOSS[7:], SEED_CANDIDATE_MS[7:], prefix="new", code=FAKE_CODE + "x = 1\n")
    out = _ablate(capsys, "compare", "--logs", arm)[1]
    assert "warning: logs: runs of different training code pooled (their log headers differ): 7 runs (" in out
    assert "3 runs (new00.txt, new01.txt, new02.txt)" in out


def test_our_trainer_logs_differ_by_seed_by_design(tmp_path, capsys):
    arm = tmp_path / "ours"
    arm.mkdir()
    for i, (loss, ms) in enumerate(zip(SEED_CANDIDATE_LOSS, SEED_CANDIDATE_MS, strict=True)):
        header = [
            '{"mlp_off": [0]}',
            f'{{"seed": {1000 + i}}}',
            '{"steps": 20}',
            "=" * 100,
            "Device: cpu",
            "=" * 100,
        ]
        (arm / f"{i:016x}.txt").write_text("\n".join(header + step_lines(20, loss, ms, val_every=5)) + "\n")
    code, out, _ = _ablate(capsys, "compare", "--logs", arm)
    assert code == 0 and "(n=10," in out and "warning:" not in out


@pytest.mark.parametrize(
    ("baseline", "candidate"), [("master-s1480", "xsa-gated-s1410"), ("baseline", "this_pr")]
)
def test_2026_record_folder_splits_by_subfolder(tmp_path, capsys, baseline, candidate):
    root = _write_2026_record(tmp_path / "2026-05-07_X", baseline, candidate)
    (root / "figures").mkdir()  # a subfolder without logs is no arm
    code, out, err = _ablate(capsys, "compare", root)
    _assert_seed(code, out, err)
    assert f"logs: baseline 10 used ({baseline}/); candidate 10 used ({candidate}/)" in out


def test_record_folder_whose_baseline_cannot_be_told(tmp_path, capsys):
    root = _write_2026_record(tmp_path / "rec", "prev_s1670", "new_s1705")
    _error_line(*_ablate(capsys, "compare", root), "(new_s1705/, prev_s1670/)", "--baseline NAME")
    _assert_seed(*_ablate(capsys, "compare", root, "--baseline", "prev_s1670/"))
    _error_line(*_ablate(capsys, "compare", root, "--baseline", "nope"), "--baseline nope: not a subfolder")


def test_a_copied_arm_subfolder_is_a_count_not_a_baseline_name(tmp_path, capsys):
    """Two subfolders named like the baseline among three: the count is the problem, not which one."""
    root = _write_2026_record(tmp_path / "rec", "master-s1480", "xsa-gated-s1410")
    shutil.copytree(root / "master-s1480", root / "master-s1480 (copy)")
    err = _error_line(*_ablate(capsys, "compare", root), "3 subfolders of logs", "--baseline-logs DIR")
    assert "--baseline NAME" not in err
    _error_line(*_ablate(capsys, "compare", root, "--baseline", "master-s1480"), "3 subfolders of logs")


def test_a_link_between_arm_subfolders_names_both_spellings(tmp_path, capsys):
    root = _write_2026_record(tmp_path / "rec", "master-s1480", "xsa-gated-s1410")
    (root / "master-s1480" / "extra.txt").symlink_to(root / "xsa-gated-s1410" / "run03.txt")
    err = _error_line(*_ablate(capsys, "compare", root), "keep it in one arm's subfolder only")
    assert f"master-s1480/ (as {root}/master-s1480/extra.txt)" in err
    assert f"xsa-gated-s1410/ (as {root}/xsa-gated-s1410/run03.txt)" in err
    assert "ablate compare DIR" not in err and "as a glob" not in err


def test_record_form_advice_keeps_the_prefix_filters(tmp_path, capsys):
    root = tmp_path / "rec"
    _write_arm(root, SEED_CANDIDATE_LOSS, SEED_CANDIDATE_MS)
    _write_arm(root, SEED_CANDIDATE_LOSS[:2], SEED_CANDIDATE_MS[:2], prefix="old")
    _error_line(
        *_ablate(capsys, "compare", root, "--exclude-prefix", "old"),
        f"ablate compare --logs {root} --exclude-prefix old",
    )
    _error_line(*_ablate(capsys, "compare", root, "--include-prefix", "x"), "no log files (read with")
    one = tmp_path / "one"
    _write_arm(one / "a_master", SEED_CANDIDATE_LOSS[:3], SEED_CANDIDATE_MS[:3], prefix="old")
    _error_line(  # one pair of parentheses: the subfolder and the filter it was read with
        *_ablate(capsys, "compare", one, "--include-prefix", "old"),
        "one subfolder of logs (a_master/; read with --include-prefix old); a record folder has",
    )


@pytest.mark.parametrize(
    ("layout", "message"),
    [
        ("flat", "one set of logs, no comparison_* files; compare two sets with --baseline-logs"),
        ("three", "3 subfolders of logs (a_master/, b/, c/)"),
        ("one", "one subfolder of logs (a_master/)"),
        ("only-comparison", "only comparison_* logs"),
        ("empty", "no log files"),
    ],
)
def test_record_folders_that_do_not_split(tmp_path, capsys, layout, message):
    root = tmp_path / "rec"
    root.mkdir()
    if layout == "flat":
        _write_arm(root, SEED_CANDIDATE_LOSS, SEED_CANDIDATE_MS)
    for name in {"three": ["a_master", "b", "c"], "one": ["a_master"]}.get(layout, []):
        _write_arm(root / name, SEED_CANDIDATE_LOSS[:3], SEED_CANDIDATE_MS[:3])
    if layout == "only-comparison":
        _write_arm(root, SEED_BASELINE_LOSS, SEED_BASELINE_MS, prefix="comparison_")
    _error_line(*_ablate(capsys, "compare", root), message)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "give one of: a record folder (ablate compare DIR), --baseline-logs with --candidate-logs"),
        (["{d}", "--logs", "{d}"], "give only one of:"),
        (["--baseline-logs", "{d}/comparison_*"], "--candidate-logs is missing"),
        (["--logs", "{d}", "--baseline", "x"], "--baseline x: names a subfolder of a record folder"),
        (["{d}", "--baseline", "x"], "{d} has comparison_* files, which are its baseline"),
        (["{d}/run00.txt"], "not a folder"),
        (["{d}/nonexist"], "nonexist: no such folder (give a record folder"),
    ],
)
def test_compare_forms_are_checked(tmp_path, capsys, argv, message):
    folder = write_seed_logs(tmp_path / "pr120")
    _error_line(*_ablate(capsys, "compare", *[a.format(d=folder) for a in argv]), message.format(d=folder))


def test_json_keeps_its_keys_and_gains_verdict_files_warnings(tmp_path, capsys):
    folder = write_seed_logs(tmp_path / "pr120")
    (folder / "run99.txt").write_text(upstream_log(20, 3.28, 1000)[:-300])
    data = json.loads(_ablate(capsys, "compare", folder, "--json")[1])
    assert {"target", "arms", "time_delta", "loss_delta", "runs_needed", "sequential", "skipped"} <= set(data)
    assert data["verdict"].startswith("candidate passes the record rule (p=0.0003 vs 3.28); candidate faster")
    assert data["warnings"] == [] and set(data["files"]) == {"baseline", "candidate"}
    assert sorted(Path(p).name for p in data["files"]["baseline"]["used"]) == [
        f"comparison_{i:02d}.txt" for i in range(10)
    ]
    assert data["files"]["candidate"]["skipped"] == [
        {"path": str(folder / "run99.txt"), "reason": "truncated (stopped at step 14 of 20)"}
    ]
    assert data["skipped"]["candidate"] == ["run99.txt: truncated (stopped at step 14 of 20)"]


def test_tiny_p_values_gain_their_value(tmp_path, capsys):
    folder = write_seed_logs(tmp_path / "pr120")
    out = _ablate(capsys, "compare", folder)[1]
    assert "baseline: p=0.0000 (1.4e-05)  (n=10," in out
    assert "p(one-sided, candidate faster)=0.0000 (2.9e-12) p(two-sided)=0.0000 (5.7e-12)" in out


def test_compare_imports_no_report_stack(tmp_path):
    """The compare path reads logs without pandas, matplotlib or scipy.stats (seconds of imports)."""
    folder = write_seed_logs(tmp_path / "pr120")
    code = (
        "import sys\n"
        "from orchestrator.cli import main\n"
        f"assert main(['compare', {str(folder)!r}]) == 0\n"
        "heavy = ('pandas', 'matplotlib', 'scipy.stats', 'pyarrow', 'analysis.report', 'analysis.store')\n"
        "print('loaded:', sorted(m for m in heavy if m in sys.modules))\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "loaded: []" in res.stdout and "Time improve: 1.4173 sec" in res.stdout


def test_readme_quotes_the_golden_output():
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert (EXPECTED / "compare_seed_record.txt").read_text() in readme


def test_a_record_subfolder_that_cannot_be_listed_is_one_line(tmp_path, capsys, monkeypatch):
    root = _write_2026_record(tmp_path / "rec", "master-s1480", "xsa-gated-s1410")
    real_entries = logs_module.folder_entries

    def deny(folder):
        if folder.endswith("xsa-gated-s1410"):
            raise PermissionError(13, "Permission denied", folder)
        return real_entries(folder)

    monkeypatch.setattr(logs_module, "folder_entries", deny)
    _error_line(
        *_ablate(capsys, "compare", root), "xsa-gated-s1410: cannot list this folder (Permission denied)"
    )
