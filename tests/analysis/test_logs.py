"""Log parsing: upstream files with a code header, stdout captures, and every way a log goes wrong."""

import gzip
import math
import os
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analysis import InputError
from analysis.logs import (
    code_fingerprint,
    collect_logs,
    match_logs,
    parse_log_bytes,
    parse_log_file,
    parse_log_text,
    parse_step_line,
    read_log,
    run_identity,
    scan_logs,
)
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


# The two readings (every step line, or the final lines `ablate compare` needs) and the two inputs (text,
# or bytes decoded only after the header) agree on everything but `steps`.
def _summary(log) -> str:
    return repr(replace(log, steps=()))  # repr: NaN figures compare equal as text


def prop_final_lines_reading_agrees(lines, sep):
    text = sep.join(lines)
    full = parse_log_text(text)
    fast = parse_log_text(text, all_steps=False)
    assert _summary(fast) == _summary(full)
    assert set(map(repr, fast.steps)) <= set(map(repr, full.steps))
    assert _summary(parse_log_bytes(text.encode("utf-8", "surrogatepass"), all_steps=False)) == _summary(full)


def prop_bytes_reading_agrees(junk, tail):
    data = junk + upstream_log(10, 3.28, 1000, val_every=3).encode() + tail
    assert repr(parse_log_bytes(data)) == repr(parse_log_text(data.decode("utf-8", errors="replace")))


special_lines = st.sampled_from(
    [
        "step:3/3 val_loss:3.0 train_time:3ms step_avg:1.00ms",
        "step:3/3 val_loss:nan train_time:3ms step_avg:1.00ms",
        "step:3/3 train_time:3ms step_avg:1.00ms",
        "[default0]:step:3/3 val_loss:3.0 train_time:3ms step_avg:1.00ms",
        "peak memory allocated: 1 MiB reserved: 2 MiB",
        "diverged: x",
        "=" * 100,
    ]
)
PROPERTIES["logs: final-lines reading agrees with the full one"] = (
    (
        st.lists(st.one_of(mixed_lines.map("\n".join), special_lines), max_size=30),
        st.sampled_from(["\n", "\r\n"]),
    ),
    prop_final_lines_reading_agrees,
)
PROPERTIES["logs: bytes reading agrees with text"] = (
    (st.binary(max_size=120), st.binary(max_size=40)),
    prop_bytes_reading_agrees,
)

test_final_lines_reading_agrees = settings(max_examples=300, deadline=None)(
    given(*PROPERTIES["logs: final-lines reading agrees with the full one"][0])(
        prop_final_lines_reading_agrees
    )
)
test_bytes_reading_agrees = settings(max_examples=100, deadline=None)(
    given(*PROPERTIES["logs: bytes reading agrees with text"][0])(prop_bytes_reading_agrees)
)


def test_final_lines_reading_keeps_val_lines_and_the_last_line():
    text = upstream_log(20, 3.2806, 163078, val_every=5)
    fast = parse_log_text(text, all_steps=False)
    assert [s.step for s in fast.steps] == [0, 5, 10, 15, 20]
    cut = parse_log_text(text[: text.index("step:18/20")], all_steps=False)
    assert cut.status == "truncated" and [s.step for s in cut.steps] == [0, 5, 10, 15, 17]


def test_torchrun_tee_prefixes_are_dropped():
    lines = step_lines(10, 3.29, 5000, val_every=5)
    tee = "\n".join(
        ["W0905 torch/distributed/run.py: Setting OMP_NUM_THREADS", *(f"[default0]:{x}" for x in lines)]
    )
    log = parse_log_text(tee)
    assert log.status == "ok" and log.final_val_loss == 3.29 and log.train_time_ms == 5000
    assert parse_log_text(tee.replace("[default0]:", "[trainer3]:")).status == "ok"
    noted = tee.replace("W0905", "[default0]:warmup step: compiling\nW0905", 1)  # a `step:` before the first
    assert parse_log_text(noted).final_val_loss == 3.29  # step line is no step line: still a tee capture


def test_step_line_keys_are_lower_case_as_printed():
    assert parse_step_line("STEP:1/1 VAL_LOSS:3.2 TRAIN_TIME:1ms STEP_AVG:1.00ms") is None
    assert parse_step_line("step:1/1 val_loss:NaN train_time:1ms step_avg:1.00ms").val_loss != 0  # nan


def test_parse_log_file_reads_gzip(tmp_path):
    p = tmp_path / "run.txt.gz"
    p.write_bytes(gzip.compress(upstream_log(10, 3.2806, 163078).encode()))
    assert parse_log_file(p).final_val_loss == 3.2806
    (tmp_path / "bad.gz").write_bytes(b"\x1f\x8b\x08 cut")
    with pytest.raises(InputError, match="bad.gz: cannot read it \\(not a readable gzip file"):
        parse_log_file(tmp_path / "bad.gz")


def test_code_fingerprint_names_the_script_only():
    plain = upstream_log(10, 3.28, 1000).encode()
    fp = code_fingerprint(plain)
    assert fp is not None and len(fp) == 16
    assert code_fingerprint(b"# run 7 of 10\n\n" + plain) == fp  # a leading note changes no training
    assert code_fingerprint(upstream_log(12, 3.3, 2000).encode()) == fp  # other steps, times: same code
    assert code_fingerprint(plain.replace(b"Running Python 3.12.7", b"Running Python 3.13")) == fp
    assert code_fingerprint(plain.replace(b"val_loss_every = 125", b"val_loss_every = 250")) != fp
    assert code_fingerprint(b"step:1/1 val_loss:3.3 train_time:1ms step_avg:1.00ms") is None  # no header
    ours = [b'{"mlp_off": [0]}', b'{"seed": 1}', b'{"steps": 20}', SEP.encode(), b"Device: cpu", SEP.encode()]
    other_seed = [*ours[:1], b'{"seed": 2}', *ours[2:]]
    assert code_fingerprint(b"\n".join(ours)) == code_fingerprint(b"\n".join(other_seed))
    assert code_fingerprint(b"\n".join(ours)) != code_fingerprint(b"\n".join(ours).replace(b"[0]", b"[1]"))


def test_read_log_never_raises(tmp_path):
    good = tmp_path / "a.txt"
    good.write_text(upstream_log(10, 3.28, 1000))
    f = read_log(good)
    assert f.error is None and f.log.status == "ok" and len(f.digest) == 16 and f.code is not None
    assert read_log(tmp_path / "missing.txt").error == "cannot read it (No such file or directory)"
    assert read_log(tmp_path, "is a folder").error == "is a folder"
    crlf = tmp_path / "crlf.txt"  # read once: the same code and figures as the public functions give
    crlf.write_bytes(upstream_log(10, 3.28, 1000).replace("\n", "\r\n").encode())
    f = read_log(crlf)
    assert f.code == code_fingerprint(good.read_bytes())
    assert f.log == parse_log_bytes(crlf.read_bytes(), all_steps=False)
    assert f.log.status == "ok" and f.log.final_val_loss == 3.28


def test_scan_logs_recursion_links_and_names(tmp_path):
    (tmp_path / "sub" / "deeper").mkdir(parents=True)
    for name in (
        "a.txt",
        "b.LOG",
        "c.out",
        "d.txt.gz",
        "sub/e.txt",
        "sub/deeper/f.log",
        "README.md",
        "g.metrics.jsonl",
    ):
        (tmp_path / name).write_text("x")
    (tmp_path / "sub" / "loop").symlink_to(tmp_path)  # a loop of links ends
    (tmp_path / "broken.txt").symlink_to(tmp_path / "gone.txt")
    os.mkfifo(tmp_path / "pipe.log")
    top = {p.name: why for p, why in scan_logs(tmp_path)}
    problems = {"broken.txt": "broken link (its target does not exist)", "pipe.log": "not a regular file"}
    assert top == {"a.txt": None, "b.LOG": None, "c.out": None, "d.txt.gz": None, **problems}
    deep = [str(p.relative_to(tmp_path)) for p in match_logs(tmp_path, recursive=True)]
    assert deep == ["a.txt", "b.LOG", "c.out", "d.txt.gz", "sub/deeper/f.log", "sub/e.txt"]
    looped = match_logs(str(tmp_path / "**" / "f.log"))  # a glob follows the loop: same file, many names
    assert {os.path.realpath(p) for p in looped} == {str((tmp_path / "sub/deeper/f.log").resolve())}
    with pytest.raises(InputError, match="File name too long"):
        scan_logs(tmp_path / ("x" * 300))


def _step0_line(text: str, after: int = 0) -> int:
    """The line number (from 1) of the first step-0 line of `text` after line `after`."""
    lines = text.split("\n")
    return next(i + 1 for i, x in enumerate(lines) if i >= after and x.startswith("step:0/"))


def test_two_runs_in_one_file_are_restarts_at_their_step_0_lines():
    one, two = upstream_log(20, 3.2806, 163078, val_every=5), upstream_log(20, 3.2764, 163129, val_every=5)
    assert parse_log_text(one).restarts == () and parse_log_text(one).runs == 1
    joined = one + two  # two logs concatenated: the second's header lies inside the first's body
    at = one.count("\n") + _step0_line(two)
    for log in (parse_log_text(joined), parse_log_text(joined, all_steps=False)):
        assert log.restarts == (at,) and log.runs == 2
    assert parse_log_bytes(joined.replace("\n", "\r\n").encode(), all_steps=False).restarts == (at,)
    body = "\n".join(step_lines(20, 3.28, 1000)) + "\n"  # a stdout capture appended to, three times
    thrice = parse_log_text(body * 3, all_steps=False)
    assert thrice.restarts == (22, 43) and thrice.runs == 3
    tee = "".join(f"[default0]:{x}\n" for x in (body * 2).splitlines())
    assert parse_log_text(tee).restarts == (22,)


def test_a_repeated_step_0_line_is_no_restart():
    lines = step_lines(20, 3.28, 1000)
    assert parse_log_text("\n".join([lines[0], *lines])).restarts == ()  # step 0 printed twice
    cut = "\n".join(lines[:1] + ["Traceback ...", "step:0/25 val_loss:10.8 train_time:0ms step_avg:0.02ms"])
    assert parse_log_text(cut).restarts == ()  # a start again after a crash at step 0: no step lost


def test_run_identity_is_the_step_lines_read():
    text = upstream_log(20, 3.2806, 163078, val_every=5)
    ident = run_identity(parse_log_text(text, all_steps=False))
    assert ident is not None and len(ident) == 16
    body = text[text.index("step:0/") :]
    copies = [
        text.replace("\n", "\r\n"),  # saved on Windows
        "W0905 torchrun\n" + "".join(f"[default0]:{x}\n" for x in body.splitlines()),  # a tee capture
        text + "# rerun of seed 3, kept for reference\n",  # a note added
        body,  # the stdout of the run without the file's header
    ]
    assert {run_identity(parse_log_text(c, all_steps=False)) for c in copies} == {ident}
    other = upstream_log(20, 3.2806, 163079, val_every=5)  # one ms apart: another run
    assert run_identity(parse_log_text(other, all_steps=False)) != ident
    crash = parse_log_text("\n".join(step_lines(20, 3.28, 1000)[:1]), all_steps=False)
    assert crash.status == "truncated" and run_identity(crash) is None  # step 0 alone names no run
