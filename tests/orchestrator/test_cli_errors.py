"""One line, exit 2, for the mistakes a newcomer makes following the README (issue 17.6): a results
folder that is not there (the folders that are, nearest first) and a Ray address nothing answers at."""

from __future__ import annotations

import json
import socket
import sys

import pytest

from orchestrator.cli import main
from tests.orchestrator.helpers import write_spec


def _results_folder(path):
    path.mkdir(parents=True)
    (path / "sweep.json").write_text(json.dumps({"name": path.name, "kind": "grid"}))


@pytest.mark.parametrize("verb", ["status", "report"])
def test_a_missing_results_folder_names_those_that_exist_nearest_first(tmp_path, capsys, verb):
    """`ablate run sweeps/drop_one_mlp.yaml --profile cpu` writes results/drop_one_mlp-cpu."""
    results = tmp_path / "results"
    for name in ("demo", "drop_one_mlp-cpu", "record_ab-cpu"):
        _results_folder(results / name)
    (results / "notes").mkdir()  # not a results folder: not offered
    assert main([verb, str(results / "drop_one_mlp")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    listed = ", ".join(str(results / n) for n in ("drop_one_mlp-cpu", "demo", "record_ab-cpu"))
    missing = results / "drop_one_mlp"
    assert (
        err == f"ablate: error: {missing}: no such results folder; {results} has {listed} (nearest first)\n"
    )


def test_a_missing_results_folder_where_there_is_none(tmp_path, capsys):
    assert main(["status", str(tmp_path / "drop_one_mlp")]) == 2
    err = capsys.readouterr().err
    assert (
        f"no such results folder, and {tmp_path} holds none; `ablate run SPEC` writes results/<spec name>"
        in err
    )
    assert main(["report", str(tmp_path / "no" / "x")]) == 2
    assert f"nor is there a folder {tmp_path / 'no'}" in capsys.readouterr().err


def _closed_loopback_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the block ends: nothing listens there


def test_an_address_nothing_answers_at_is_one_line_before_ray_starts(tmp_path, capsys):
    """README's cluster section on one machine: `ray start --head --port=6390` binds the node's address,
    so `--address 127.0.0.1:6390` finds nobody; Ray would retry for minutes and end in a traceback."""
    port = _closed_loopback_port()
    results = tmp_path / "r"
    argv = ["run", str(write_spec(tmp_path)), "--results", str(results), "--plain", "--no-report"]
    assert main([*argv, "--address", f"127.0.0.1:{port}"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(
        f"ablate: error: --address 127.0.0.1:{port}: nothing listens"
    )
    assert "binds this machine's address, not 127.0.0.1" in err and "--address auto" in err
    assert not results.exists()  # nothing written
    assert "ray" not in sys.modules or not sys.modules["ray"].is_initialized()
    assert main([*argv, "--address", "127.0.0.1"]) == 2
    assert "--address 127.0.0.1: give host:port, e.g. 10.0.0.5:6379, or auto" in capsys.readouterr().err


def test_an_address_that_answers_passes_the_check():
    from orchestrator.commands import check_ray_address

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        check_ray_address(f"127.0.0.1:{server.getsockname()[1]}")  # no error
    check_ray_address("auto")  # Ray finds it (or says it found none: one line too)
    check_ray_address(None)  # ablate's own Ray


def test_the_readmes_status_and_report_examples_name_folders_its_runs_write():
    """An `ablate status|report results/X` of the README names the folder the `ablate run` line above it
    in its block writes (results/<spec name>, results/<name>-<profile> with --profile), or, in a block
    without one, a folder some run of the README writes."""
    import re
    from pathlib import Path

    from orchestrator.spec import load_spec

    root = Path(__file__).resolve().parents[2]
    blocks = re.findall(r"```bash\n(.*?)```", (root / "README.md").read_text(), flags=re.S)
    run = re.compile(r"^ablate run (sweeps/\S+\.yaml)(?:.*?--profile (\w+))?", flags=re.M)
    every = {"demo"} | {
        load_spec(root / m[1], profile=m[2]).name for b in blocks for m in run.finditer(b, re.M)
    }
    checked = 0
    for block in blocks:
        last = None
        for line in block.splitlines():
            if m := run.match(line):
                last = load_spec(root / m[1], profile=m[2]).name
            elif m := re.match(r"ablate (?:status|report) results/(\S+)", line):
                assert (m[1] == last) if last else (m[1] in every), line
                checked += 1
    assert checked >= 2


@pytest.mark.parametrize("verb", ["status", "report"])
@pytest.mark.parametrize(
    ("edit", "said"),
    [
        ({"arms": 7}, "arms is 7, not a list of arm names"),
        ({"run_ids": ["a", 5]}, "run_ids[1] is 5, not a run id (a string)"),
        ({"target_val_loss": "3.28"}, 'target_val_loss is "3.28", not a number'),
        ({"planned_runs": True}, "planned_runs is true, not a count"),
        ({"name": {"x": 1}}, 'name is {"x": 1}, not a string'),
        ({"point_layers": {"r1": {"mlp_off": "4"}}}, 'point_layers["r1"] is {"mlp_off": "4"}, not an object'),
    ],
)
def test_a_sweep_json_field_of_the_wrong_type_is_one_line_naming_file_and_field(
    tmp_path, capsys, verb, edit, said
):
    """A hand-edited sweep.json (or one of another version) is the file and field, not a TypeError."""
    from tests.analysis.helpers import make_ab_results

    root = make_ab_results(tmp_path / "ab")
    sweep = json.loads((root / "sweep.json").read_text())
    (root / "sweep.json").write_text(json.dumps({**sweep, **edit}))
    assert main([verb, str(root)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"ablate: error: {root / 'sweep.json'}: {said}"), err
    assert "delete the key" in err


@pytest.mark.parametrize("verb", ["status", "report"])
def test_a_truncated_sweep_json_is_one_line(tmp_path, capsys, verb):
    """Status used to read a truncated sweep.json as no sweep.json (every run counted, no arms named)."""
    from tests.analysis.helpers import make_ab_results

    root = make_ab_results(tmp_path / "ab")
    text = (root / "sweep.json").read_text()
    (root / "sweep.json").write_text(text[: len(text) // 2])
    assert main([verb, str(root)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"ablate: error: {root / 'sweep.json'}: not valid JSON") and err.count("\n") == 1


def test_ablate_data_runs_the_corpus_tools_under_its_own_name(tmp_path, capsys):
    """`ablate data VERB ...` is trainer.corpus's command line (README's lines), in this process."""
    argv = ["data", "synth", "--out", str(tmp_path / "s"), "--train-tokens", "500", "--val-tokens", "100"]
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out)["files"] == ["synth_val_000000.bin", "synth_train_000000.bin"]
    (tmp_path / "file").write_text("")
    assert main(["data", "synth", "--out", str(tmp_path / "file")]) == 2
    assert capsys.readouterr().err.startswith(f"ablate data: error: --out {tmp_path / 'file'}: is a file")
    with pytest.raises(SystemExit) as e:
        main(["data", "synth", "--seed", "x"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1 and err.endswith("; see ablate data synth --help\n")
    with pytest.raises(SystemExit) as e:
        main(["data", "--", "--help"])  # as the verb's own help says
    assert e.value.code == 0 and capsys.readouterr().out.startswith("usage: ablate data [-h] {synth,text,")
