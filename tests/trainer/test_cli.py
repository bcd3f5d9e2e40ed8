"""``python -m trainer`` end to end: output contract, log files, exit codes, usage errors."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from trainer.__main__ import run_cli

REPO = Path(__file__).resolve().parents[2]
STEP_RE = re.compile(r"step:(\d+)/(\d+) train_time:(\d+)ms step_avg:(\d+\.\d\d)ms")
VAL_RE = re.compile(r"step:(\d+)/(\d+) val_loss:(\d+\.\d{4}) train_time:(\d+)ms step_avg:(\d+\.\d\d)ms")
MEM_RE = re.compile(r"peak memory allocated: (\d+) MiB reserved: (\d+) MiB")
INFO_RE = re.compile(r"(backends|compile): ")
# a short tiny run: 4 steps, validation at 0, 2 and 4 on 2,048 tokens
SHORT = ["--preset", "tiny", "--set", "steps=4", "--set", "val_every=2", "--set", "val_tokens=2048"]


def run_trainer(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "trainer", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def val_losses(stdout: str) -> list[float]:
    return [float(m.group(3)) for line in stdout.splitlines() if (m := VAL_RE.fullmatch(line))]


def test_short_run_writes_upstream_lines_log_and_metrics(tmp_path):
    proc = run_trainer(*SHORT, "--seed", "3", "--run-id", "r1", "--log-dir", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert [int(m.group(1)) for line in lines if (m := STEP_RE.fullmatch(line))] == [1, 2, 3, 4]
    assert [int(m.group(1)) for line in lines if (m := VAL_RE.fullmatch(line))] == [0, 2, 4]
    assert MEM_RE.fullmatch(lines[-1])
    # upstream's lines, plus our own information lines under prefixes upstream never prints
    assert lines[0] == "backends: attention sdpa, fp8 head off, torch.compile off"
    assert all(
        STEP_RE.fullmatch(x) or VAL_RE.fullmatch(x) or MEM_RE.fullmatch(x) or INFO_RE.match(x) for x in lines
    )

    text = (tmp_path / "r1.txt").read_text().splitlines()
    seps = [i for i, line in enumerate(text) if line == "=" * 100]
    assert len(seps) == 2
    assert text[seps[1] + 1 :] == lines  # after the header: exactly stdout
    header = {k: v for line in text[: seps[0]] for k, v in json.loads(line).items()}
    assert header["steps"] == 4 and header["seed"] == 3 and header["model_dim"] == 64

    events = [json.loads(x) for x in (tmp_path / "r1.metrics.jsonl").read_text().splitlines()]
    kinds = [e["event"] for e in events]
    assert kinds[0] == "start" and kinds[-1] == "end"
    start, end = events[0], events[-1]
    assert start["run_id"] == "r1" and start["seed"] == 3 and start["world_size"] == 1
    assert (
        start["config"]["steps"] == 4
        and start["data"]["train"]
        and len(start["data"]["sha256_first_train"]) == 64
    )
    steps = [e for e in events if e["event"] == "step"]
    assert [e["step"] for e in steps] == [1, 2, 3, 4]
    assert all(isinstance(e["train_loss"], float) and e["train_loss"] > 0 for e in steps)
    vals = [e for e in events if e["event"] == "val"]
    assert [e["step"] for e in vals] == [0, 2, 4]
    assert [round(e["val_loss"], 4) for e in vals] == val_losses(proc.stdout)
    assert end["status"] == "ok" and end["steps"] == 4
    assert end["warmup_ms"] == 0.0 and end["val_ms"] > 0  # tiny: no compile warm-up; 3 validations
    assert end["peak_mem_mib"] == int(MEM_RE.fullmatch(lines[-1]).group(1)) > 0
    # train_time excludes validation: the last val event carries the same clock as the last step
    assert vals[-1]["train_time_ms"] >= steps[-1]["train_time_ms"] > 0


def test_divergence_exits_3_with_last_line(tmp_path):
    # the soft-capped logits keep merely huge learning rates finite; weights that overflow do not
    proc = run_trainer(*SHORT, "--set", "lr_muon=3e38", "--run-id", "d", "--log-dir", str(tmp_path))
    assert proc.returncode == 3, (proc.stdout[-500:], proc.stderr[-500:])
    last = proc.stdout.splitlines()[-1]
    m = re.fullmatch(r"diverged: non-finite train loss at step (\d+)", last)
    assert m, last
    events = [json.loads(x) for x in (tmp_path / "d.metrics.jsonl").read_text().splitlines()]
    assert events[-1]["event"] == "end" and events[-1]["status"] == "diverged"
    assert events[-1]["steps"] == int(m.group(1))
    bad = [e for e in events if e["event"] == "step" and e["train_loss"] is None]
    assert bad and bad[0]["step"] == int(m.group(1))


def run_in_process(argv: list[str], capsys) -> tuple[int, str, str]:
    """``python -m trainer ARGV`` without a new interpreter (usage paths never start training)."""
    try:
        code = run_cli(argv)
    except SystemExit as e:  # argparse's --help and usage errors exit
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--set", "stepz=3"], "stepz"),
        (["--set", "steps=-1"], "steps"),
        (["--set", "mlp_off=[99]"], "mlp_off"),
        (["--set", "nonsense"], "KNOB=VALUE"),
        (["--preset", "nope"], "nope"),
        (["--preset", "speedrun"], "--data-dir"),
        (["--device", "tpu"], "--device"),
        (["--data-dir", "no/such/dir"], "no/such/dir"),
        (["--log-dir", "somewhere"], "--run-id"),
        (["--run-id", "r1"], "--run-id and --log-dir go together"),
    ],
)
def test_usage_errors_are_one_line_exit_2(args, needle, capsys):
    code, _, err = run_in_process(args, capsys)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and needle in lines[0], err


def test_usage_error_from_the_real_command_has_no_traceback():
    proc = run_trainer("--preset", "tiny", "--set", "mlp_of=[0]")
    assert proc.returncode == 2 and proc.stdout == ""
    assert (
        proc.stderr.strip()
        == "trainer: error: unknown knob 'mlp_of'; did you mean 'mlp_off'? (see --list-knobs)"
    )


def test_help_list_knobs_print_config(capsys):
    code, out, _ = run_in_process(["--help"], capsys)
    assert code == 0
    for word in ("tiny", "speedrun", "h200-mini", "pr117", "mlp_off=[0]", "exit codes", "diverged"):
        assert word in out
    code, out, _ = run_in_process(["--list-knobs"], capsys)
    assert code == 0 and "mlp_off" in out and "lr_muon" in out
    code, out, _ = run_in_process(
        ["--preset", "tiny", "--set", "mlp_off=[0]", "--seed", "7", "--print-config"], capsys
    )
    assert code == 0
    resolved = json.loads(out)
    assert resolved["mlp_off"] == [0] and resolved["seed"] == 7 and resolved["model_dim"] == 64


def test_list_knobs_shows_the_presets_values(capsys):
    code, out, _ = run_in_process(["--preset", "tiny", "--set", "mlp_off=[0]", "--list-knobs"], capsys)
    assert code == 0 and out.startswith("values of preset tiny")
    assert "  model_dim = 64  # 768\n" in out and "  mlp_off = [0]  # []\n" in out
    assert "  num_layers = 12\n" in out  # the same as the default: no '#'
    _, plain, _ = run_in_process(["--list-knobs"], capsys)
    assert "  model_dim = 768\n" in plain and "#" not in plain.split("presets:")[0]
    code, _, err = run_in_process(["--preset", "tiny", "--set", "mlp_of=[0]", "--list-knobs"], capsys)
    assert code == 2 and "unknown knob 'mlp_of'" in err


def test_shards_beyond_the_vocabulary_are_one_line_naming_the_knobs(tmp_path, capsys):
    from trainer.corpus import synth_corpus

    synth_corpus(tmp_path, vocab_size=50257, train_tokens=3000, val_tokens=3000, seed=1)
    code, _, err = run_in_process(["--preset", "tiny", "--data-dir", str(tmp_path)], capsys)
    assert code == 2 and err.count("\n") == 1
    assert "token ids up to 50256, beyond vocab_size 1024" in err and "--set vocab_size=50257" in err
    assert "bos_id" in err and "Traceback" not in err


@pytest.mark.ci
def test_tiny_preset_learns_at_least_one_nat():
    """The acceptance criterion: the full tiny run's last val loss is >= 1.0 below its first."""
    proc = run_trainer("--preset", "tiny", timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    losses = val_losses(proc.stdout)
    assert len(losses) >= 2
    assert losses[-1] <= losses[0] - 1.0, losses
