"""Log parsing: upstream files with a code header, stdout captures, and every way a log goes wrong."""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analysis import InputError
from analysis.logs import collect_logs, parse_log_file, parse_log_text, parse_step_line
from tests.analysis.helpers import FAKE_CODE, SEP, step_lines, upstream_log


def test_step_line_whole_line_only():
    rec = parse_step_line("step:1705/1705 val_loss:3.2806 train_time:163078ms step_avg:95.65ms\r\n")
    assert rec.step == 1705 and rec.total_steps == 1705
    assert rec.val_loss == 3.2806 and rec.train_time_ms == 163078 and rec.step_avg_ms == 95.65
    plain = parse_step_line("step:17/1705 train_time:1620ms step_avg:95.29ms")
    assert plain.val_loss is None and plain.train_time_ms == 1620
    assert parse_step_line('print0(f"step:17/1705 train_time:1620ms step_avg:95.29ms")') is None
    assert parse_step_line("xx step:17/1705 train_time:1620ms step_avg:95.29ms") is None
    assert parse_step_line("step:17/1705 train_time:16") is None


def test_upstream_file_reads_only_after_header():
    # The fake header holds a line that looks like a finished run with loss 9.9999: it must be ignored.
    log = parse_log_text(upstream_log(10, 3.2806, 163078, val_every=5))
    assert log.has_header and log.status == "ok"
    assert log.final_val_loss == 3.2806 and log.train_time_ms == 163078
    assert log.last_step == log.total_steps == 10
    assert [s.step for s in log.steps] == list(range(11))
    assert [s.val_loss is not None for s in log.steps].count(True) == 3  # steps 0, 5, 10
    assert log.peak_mem_mib == 34489 and log.reserved_mem_mib == 48516


def test_header_without_body_is_empty_not_code():
    text = "\n".join([FAKE_CODE, SEP, "versions", SEP, ""])
    log = parse_log_text(text)
    assert log.status == "empty" and log.steps == ()


def test_stdout_capture_without_header_and_with_garbage():
    lines = step_lines(10, 3.29, 5000)
    lines.insert(3, "W1128 some warning from torch step:3")
    lines.insert(6, "\x00\x01 binary junk")
    log = parse_log_text("\n".join(lines))
    assert not log.has_header and log.status == "ok" and log.final_val_loss == 3.29


def test_our_information_lines_change_nothing():
    """The trainer's `backends:` first line and `compile:` last line are for people, not parsers."""
    lines = step_lines(10, 3.29, 5000)
    plain = parse_log_text("\n".join(lines))
    lines.insert(0, "backends: attention flex, fp8 head on, torch.compile on")
    lines.append("compile: compile_s:171.3 backend_s:150.2 frames:5 graphs:5 warmup_ms:160000 val_ms:9000")
    assert parse_log_text("\n".join(lines)) == plain


def test_crlf_gives_the_same_result():
    text = upstream_log(10, 3.2806, 163078)
    assert parse_log_text(text.replace("\n", "\r\n")) == parse_log_text(text)


def test_truncated_mid_line_and_mid_run():
    text = "\n".join(step_lines(10, 3.29, 5000)[:7]) + "\nstep:7/10 train_ti"
    log = parse_log_text(text)
    assert log.status == "truncated" and log.final_val_loss is None
    assert log.last_step == 6 and "stopped at step 6" in log.message


def test_last_step_without_final_val_line_is_truncated():
    lines = step_lines(10, 3.29, 5000)[:-1] + ["step:10/10 train_time:5000ms step_avg:500.00ms"]
    assert parse_log_text("\n".join(lines)).status == "truncated"


@pytest.mark.parametrize("bad", ["nan", "inf", "NaN"])
def test_non_finite_loss_is_diverged(bad):
    lines = step_lines(10, 3.29, 5000, val_every=5)
    lines[5] = f"step:5/10 val_loss:{bad} train_time:2500ms step_avg:500.00ms"
    log = parse_log_text("\n".join(lines[:7]))
    assert log.status == "diverged" and "step 5" in log.message and log.final_val_loss is None


def test_trainer_diverged_line():
    text = "\n".join(step_lines(10, 3.29, 5000)[:4] + ["diverged: non-finite train loss at step 4"])
    log = parse_log_text(text)
    assert log.status == "diverged" and log.message == "diverged: non-finite train loss at step 4"


def test_empty_and_garbled():
    assert parse_log_text("").status == "empty"
    assert parse_log_text("  \n\n").status == "empty"
    assert parse_log_text("Traceback (most recent call last):\n  boom\n").status == "garbled"


def test_parse_log_file_damaged_bytes(tmp_path):
    p = tmp_path / "x.txt"
    p.write_bytes(upstream_log(10, 3.28, 1000).encode() + b"\xff\xfe garbage")
    assert parse_log_file(p).status == "ok"
    with pytest.raises(InputError, match="no such log file"):
        parse_log_file(tmp_path / "missing.txt")


def test_collect_logs_folder_glob_and_prefixes(tmp_path):
    for name in ("a.txt", "b.log", "comparison_c.txt", "d.metrics.jsonl"):
        (tmp_path / name).write_text(upstream_log(4, 3.28, 1000))
    names = lambda res: [p.name for p, _ in res]
    assert names(collect_logs(tmp_path)) == ["a.txt", "b.log", "comparison_c.txt"]
    assert names(collect_logs(tmp_path, exclude_prefix="comparison_")) == ["a.txt", "b.log"]
    assert names(collect_logs(tmp_path, include_prefix="comparison_")) == ["comparison_c.txt"]
    assert names(collect_logs(str(tmp_path / "comparison_*.txt"))) == ["comparison_c.txt"]
    assert all(
        log.status == "ok" and math.isclose(log.final_val_loss, 3.28) for _, log in collect_logs(tmp_path)
    )


def test_collect_logs_errors(tmp_path):
    with pytest.raises(InputError, match="no such folder"):
        collect_logs(tmp_path / "nope")
    with pytest.raises(InputError, match="no log files matched"):
        collect_logs(str(tmp_path / "*.txt"))


def test_our_trainer_header_config_json_lines():
    header = ['{"mlp_off": [0]}', '{"steps": 10}', SEP, "Running Python 3.11", "Device: cpu", SEP]
    log = parse_log_text(
        "\n".join([*header, *step_lines(10, 4.5, 900), "peak memory allocated: 12 MiB reserved: 12 MiB"])
    )
    assert log.has_header and log.status == "ok" and log.final_val_loss == 4.5 and log.peak_mem_mib == 12


# Properties (plain functions over drawn values, with their strategies in PROPERTIES): the tests below run
# them with a few examples, benchmarks/reliability.py with thousands.
STATUSES = {"ok", "truncated", "diverged", "empty", "garbled"}
junk_lines = st.lists(st.text(alphabet=st.characters(codec="utf-8"), max_size=80), max_size=30)
numbers = st.one_of(
    st.integers(-3, 10**20).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.sampled_from(["nan", "inf", "-inf", "NaN", "1e999", "3.2806", "", "0x10", "١٢"]),
)
step_like = st.builds(
    lambda s, t, v, ms, avg, val: (
        f"step:{s}/{t}" + (f" val_loss:{v}" if val else "") + f" train_time:{ms}ms step_avg:{avg}ms"
    ),
    numbers,
    numbers,
    numbers,
    numbers,
    numbers,
    st.booleans(),
)
mixed_lines = st.lists(
    st.one_of(step_like, st.text(max_size=40), st.sampled_from(["=" * 100, "diverged: x", "\r"])), max_size=40
)


def _check_log(log) -> None:
    assert log.status in STATUSES
    assert "\n" not in log.message
    if log.status == "ok":
        assert log.final_val_loss is not None and math.isfinite(log.final_val_loss)


def prop_any_text_around_a_good_log(junk, cut):
    good = step_lines(12, 3.3, 1200)[:cut]
    _check_log(parse_log_text("\n".join(junk[:5] + good + junk[5:])))


def prop_step_like_lines(lines, sep):
    _check_log(parse_log_text(sep.join(lines)))


PROPERTIES = {
    "logs: junk around a good log": ((junk_lines, st.integers(0, 12)), prop_any_text_around_a_good_log),
    "logs: step-like lines, odd numbers": (
        (mixed_lines, st.sampled_from(["\n", "\r\n", "\r"])),
        prop_step_like_lines,
    ),
}
"""name -> (strategies, property): what benchmarks/reliability.py runs with more examples."""

test_any_text_parses_to_a_status = settings(max_examples=150, deadline=None)(
    given(*PROPERTIES["logs: junk around a good log"][0])(prop_any_text_around_a_good_log)
)
test_step_like_lines_with_odd_numbers_parse_to_a_status = settings(max_examples=150, deadline=None)(
    given(*PROPERTIES["logs: step-like lines, odd numbers"][0])(prop_step_like_lines)
)
