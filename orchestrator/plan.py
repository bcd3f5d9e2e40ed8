"""Planning: a validated ``Spec`` in, an ordered ``Plan`` of blocks of ``RunSpec`` out. Pure: no Ray.

Run identity (docs/contracts.md, ``_run``): ``run_id`` is 16 hex digits of sha256 over the canonical JSON
of the sweep name, arm, replicate, resolved knob values (runs of our trainer; else null), command, cwd
and env, the content hash of the program and of every script or config file the command names
(``CODE_SUFFIXES``), and (whenever the command runs our trainer) a hash of the trainer package's source
less its corpus builders (``DATA_BUILDERS``), so editing the trainer or a record script makes new runs.
The seed of a replicate is the first 31 bits of its run_id: distinct per replicate, recorded, and stable
across resubmissions.

Order: grid sweeps interleave replicates (replicate 0 of every point, then replicate 1, ...) so a
sweep stopped half way is balanced; A/B sweeps pair the two arms in blocks that run on one node.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
import random
import shlex
import shutil
from pathlib import Path
from typing import Any

from analysis.knobdiff import canonical as _canonical
from analysis.knobdiff import layer_axis, layer_ranges
from orchestrator.runspec import Block, GridPoint, Plan, RunSpec
from orchestrator.spec import (
    NON_IDENTITY_FIELDS,
    Arm,
    Spec,
    SpecError,
    grid_points,
    parse_trainer_args,
    trainer_command_args,
)

# Rough cost of one run per preset, for --dry-run estimates only: (fixed seconds for start-up and
# compile, seconds per step, the GPU count the step time was measured on; 0 = CPU). speedrun/pr117:
# the seed's ~96 ms/step on 8 H100s plus ~90 s of compile and validation; h200-mini: its preset
# comment (~130 ms/step on one H200); tiny: ~0.18 s/step and ~4 s of start-up on one CPU core
# (measured). A spec's estimate_min wins.
PRESET_COST: dict[str, tuple[float, float, int]] = {
    "speedrun": (90.0, 0.096, 8),
    "pr117": (90.0, 0.098, 8),
    "h200-mini": (60.0, 0.13, 1),
    "tiny": (5.0, 0.18, 0),
}


def short_hash(obj: Any, n: int = 16) -> str:
    """``n`` hex digits of sha256 over the canonical JSON of ``obj`` (sorted keys, no spaces)."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:n]


def seed_from_run_id(run_id: str) -> int:
    """The replicate's seed: the first 31 bits of its run_id (a non-negative int32)."""
    return int(run_id[:8], 16) & 0x7FFFFFFF


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


DATA_BUILDERS = ("english",)
"""Subpackages of the trainer that build corpora and never run in training: a run's shards are recorded
in its row (their identity), so editing a corpus builder must not make every run of a sweep new (a sweep
run in parts over several GPU sessions would start again)."""


def trainer_source_hash() -> str:
    """sha256 over the trainer package's Python sources (names and contents), found without importing it;
    the corpus builders of ``DATA_BUILDERS`` left out."""
    found = importlib.util.find_spec("trainer")
    if found is None or not found.submodule_search_locations:
        return "missing"
    return source_hash(Path(next(iter(found.submodule_search_locations))), DATA_BUILDERS)


def source_hash(root: Path, skip: tuple[str, ...] = ()) -> str:
    """sha256 over the ``*.py`` files under ``root`` (relative names and contents), leaving out the
    top-level subfolders named in ``skip``."""
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if "__pycache__" in path.parts or (len(rel.parts) > 1 and rel.parts[0] in skip):
            continue
        h.update(path.relative_to(root).as_posix().encode() + b"\0")
        h.update(path.read_bytes() + b"\0")
    return h.hexdigest()


CODE_SUFFIXES = frozenset({".py", ".sh", ".bash", ".yaml", ".yml", ".toml", ".cfg", ".ini"})
"""Files that are part of what a run *is* (scripts and their configs): their content is in its id."""


def lookup_roots(cwd: str | None, spec_folder: str) -> list[Path]:
    """Where a command's relative file arguments are looked for, in order: the arm's cwd, the spec's
    folder, the current folder."""
    return [*([Path(cwd)] if cwd else []), Path(spec_folder), Path(".")]


def find_named(arg: str, cwd: str | None, spec_folder: str) -> Path | None:
    """The file a command argument names, relative to `lookup_roots` (an absolute path as it is)."""
    candidates = [Path(arg)] if Path(arg).is_absolute() else [r / arg for r in lookup_roots(cwd, spec_folder)]
    return next((p for p in candidates if p.is_file()), None)


def named_files(command: tuple[str, ...], cwd: str | None, spec_folder: str) -> dict[str, str]:
    """{argument: sha256} for the program and every script or config file the command names
    (CODE_SUFFIXES), looked up by `find_named`. Other files are left out on purpose: a run that writes
    ``--out result.json`` must not change its own id by having run."""
    out: dict[str, str] = {}
    for i, arg in enumerate(command):
        if not arg or arg.startswith("-"):
            continue
        if i > 0 and Path(arg).suffix.lower() not in CODE_SUFFIXES:
            continue
        hit = find_named(arg, cwd, spec_folder)
        if hit is not None:
            out[arg] = file_sha256(hit)
    return out


SCRIPT_SUFFIXES = (".py", ".sh")
TORCHRUN_FLAGS = frozenset(
    {"-h", "--help", "--standalone", "--run-path", "--run_path", "--virtual-local-rank",
     "--virtual_local_rank"}
)  # fmt: skip
"""torchrun's options that take no value (every other ``--option`` without ``=`` takes the next argument)."""
PYTHON_VALUE_FLAGS = frozenset({"-W", "-X", "--check-hash-based-pycs"})


def command_scripts(command: tuple[str, ...]) -> list[str]:
    """The scripts a command runs, which must exist: the first non-option argument after ``python``
    (``python3``, ...) or after ``torchrun`` and its options (none for ``-m module``, ``-c code`` or
    torchrun's ``--no-python``), and every other non-option argument ending in .py or .sh (not the code
    after a ``-c``)."""
    argv = list(command)
    found = []
    first = _launched_script(argv)
    if first is not None:
        found.append(first)
    for prev, arg in zip(["", *argv], argv, strict=False):
        if prev == "-c":  # code for python or a shell (`bash -c "python x.py"`), not a file's name
            continue
        if arg and not arg.startswith("-") and arg.lower().endswith(SCRIPT_SUFFIXES) and arg not in found:
            found.append(arg)
    return found


def _launched_script(argv: list[str]) -> str | None:
    launcher = Path(argv[0]).name if argv else ""
    torchrun = launcher == "torchrun"
    if not (torchrun or launcher.startswith("python")):
        return None
    i = 1
    while i < len(argv):
        arg = argv[i]
        if not arg.startswith("-"):
            return arg
        if torchrun:
            if arg in ("-m", "--module", "--no-python", "--no_python"):
                return None  # a module, or a program found on PATH
            if "=" not in arg and arg not in TORCHRUN_FLAGS:
                i += 1  # the option's value
        elif arg == "-" or arg.startswith(("-c", "-m")):
            return None  # stdin, -c code, -m module
        elif arg in PYTHON_VALUE_FLAGS:
            i += 1
        i += 1
    return None


def missing_scripts(spec: Spec) -> list[tuple[str, str]]:
    """(arm, script) for every script a command arm runs that `find_named` does not find (a program
    named without a folder, as ``command: [tool.sh]``, may also be on PATH)."""
    out = []
    for arm in spec.arms:
        for script in command_scripts(arm.command or ()):
            on_path = arm.command is not None and script == arm.command[0] and "/" not in script
            if find_named(script, arm.cwd, spec.folder) is None and not (on_path and shutil.which(script)):
                out.append((arm.name, script))
    return out


def _looked_in(spec: Spec, arm: Arm) -> str:
    """`lookup_roots` in words: "sweeps (the spec's folder) or the current folder"."""
    labelled = [(Path(arm.cwd), "the arm's cwd")] if arm.cwd else []
    labelled += [(Path(spec.folder), "the spec's folder")]
    named: dict[Path, str] = {}
    for root, what in labelled:
        named.setdefault(root.resolve(), f"{root} ({what})")
    named[Path(".").resolve()] = "the current folder"
    words = list(named.values())
    return ", ".join(words[:-1]) + " or " + words[-1] if len(words) > 1 else words[0]


def script_warnings(spec: Spec) -> list[str]:
    """A warning line per script a command arm runs that is nowhere the plan looks (for --dry-run)."""
    return [
        f"warning: {spec.source}: arms.{arm}.command: {script} not found in "
        f"{_looked_in(spec, spec.arm(arm))}; its runs would fail: run from the folder that holds it, "
        "or set the arm's cwd"
        for arm, script in missing_scripts(spec)
    ]


def check_scripts(spec: Spec) -> None:
    """Raise SpecError (one line) when a command arm's script is nowhere the plan looks: before any run."""
    missing = missing_scripts(spec)
    if not missing:
        return
    arm, script = missing[0]
    more = "".join(f"; also arms.{a}.command: {s}" for a, s in missing[1:])
    raise SpecError(
        f"{spec.source}: arms.{arm}.command: {script} not found in {_looked_in(spec, spec.arm(arm))}{more}; "
        "run from the folder that holds it, or set the arm's cwd (nothing was run)"
    )


def yaml_literal(value: Any) -> str:
    """``value`` as a compact YAML flow literal for ``--set k=v``: JSON, except that floats keep a dot
    (YAML 1.1 reads ``1e-10`` as a string, ``1.0e-10`` as a float)."""
    if isinstance(value, float):
        text = repr(value)
        return text.replace("e", ".0e") if "e" in text and "." not in text else text
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(yaml_literal(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(str(k))}:{yaml_literal(v)}" for k, v in value.items()) + "}"
    return json.dumps(value)


# ---------------------------------------------------------------------------------------------
# One run's identity and command.


@dataclasses.dataclass(frozen=True)
class _Unit:
    """One configuration of one arm (a grid point): everything of a run except its replicate."""

    arm: Arm
    point: GridPoint
    command: tuple[str, ...]
    params: dict[str, Any]
    preset: str | None
    is_trainer: bool
    files: dict[str, str]
    repeats: int
    estimate_s: float | None


def _trainer_launcher(gpus: int) -> list[str]:
    if gpus <= 1:
        return ["python", "-m", "trainer"]
    return ["torchrun", "--standalone", f"--nproc_per_node={gpus}", "-m", "trainer"]


def _estimate(spec: Spec, preset: str | None, params: dict[str, Any]) -> float | None:
    if spec.estimate_min is not None:
        return 60.0 * spec.estimate_min
    if preset not in PRESET_COST:
        return None
    fixed, step_s, ref_gpus = PRESET_COST[preset]
    gpus = spec.resources.gpus_per_run
    scale = ref_gpus / gpus if ref_gpus and gpus else 1.0
    return fixed + params.get("steps", 0) * step_s * scale


def _trainer_unit(spec: Spec, arm: Arm, point: GridPoint, repeats: int) -> _Unit:
    from trainer.config import config_to_dict, resolve

    overrides = {**spec.trainer_set, **arm.set, **point.values}
    params = config_to_dict(resolve(spec.preset, overrides))
    command = [*_trainer_launcher(spec.resources.gpus_per_run), "--preset", spec.preset]
    for knob in overrides:
        command += ["--set", f"{knob}={yaml_literal(params[knob])}"]
    return _Unit(arm, point, tuple(command), params, spec.preset, True, {}, repeats,
                 _estimate(spec, spec.preset, params))  # fmt: skip


def _command_unit(spec: Spec, arm: Arm, repeats: int) -> _Unit:
    from trainer.config import config_to_dict, resolve

    assert arm.command is not None
    files = named_files(arm.command, arm.cwd, spec.folder)
    trainer_args = trainer_command_args(arm.command)
    params: dict[str, Any] = {}
    preset = None
    if trainer_args is not None:
        preset, overrides = parse_trainer_args(trainer_args)
        params = config_to_dict(resolve(preset, overrides))
    return _Unit(arm, GridPoint(), arm.command, params, preset, trainer_args is not None, files, repeats,
                 _estimate(spec, preset, params))  # fmt: skip


def _units(spec: Spec) -> list[_Unit]:
    units = []
    for arm in spec.arms:
        repeats = arm.repeats or (spec.runs_per_arm if spec.kind == "ab" else spec.repeats)
        if arm.is_command:
            units.append(_command_unit(spec, arm, repeats))
        else:
            points = arm_points(arm)
            counts = point_repeats(spec, arm, points, repeats)
            units.extend(_trainer_unit(spec, arm, p, n) for p, n in zip(points, counts, strict=True))
    return units


def layer_knob(points: list[GridPoint]) -> str | None:
    """The knob ``points`` sweep one layer at a time (every point one layer of it), else None."""
    swept = {k for p in points for k in p.layers}
    if len(swept) != 1 or any(len(p.layers) != 1 for p in points):
        return None
    return next(iter(swept))


def point_repeats(spec: Spec, arm: Arm, points: list[GridPoint], default: int) -> list[int]:
    """Replicates of each of ``points``: ``default``, or what ``arm.repeats_at`` gives the layer a point
    sweeps. Every layer named there must be a point of a grid that sweeps one knob by layer."""
    if not arm.repeats_at:
        return [default] * len(points)
    where = f"{spec.source}: arms.{arm.name}.repeats"
    knob = layer_knob(points)
    if knob is None:
        raise SpecError(
            f"{where}: repeats by layer needs a grid that sweeps one knob a layer at a time "
            '(e.g. mlp_off: {each_layer: "0-11"}); give an integer'
        )
    layers = [p.layers[knob] for p in points]
    count = {layer: n for named, n in arm.repeats_at for layer in named}
    missing = sorted(set(count) - set(layers))
    if missing:
        raise SpecError(
            f"{where}: layer {missing[0]} is not a point of this arm's grid; name swept layers only"
        )
    return [count.get(layer, default) for layer in layers]


def arm_points(arm: Arm) -> list[GridPoint]:
    """The arm's grid points in spec order, each with the layer it sweeps per knob swept by layer."""
    layer_of = {knob: _layers_by_value(arm, knob, values) for knob, values in arm.grid}
    points = []
    for values in grid_points(arm):
        layers = {k: layer_of[k][_canonical(v)] for k, v in values.items() if layer_of.get(k)}
        points.append(GridPoint(values, layers))
    return points


def _layers_by_value(arm: Arm, knob: str, values: tuple[Any, ...]) -> dict[str, int] | None:
    """{value: layer} for one grid knob: the layers the spec's shorthand swept (``Arm.grid_layers``: a
    ``remove_each`` point is the list less its layer, which no guess from the values finds), else the
    guess from the values written out (`analysis.knobdiff.layer_axis`)."""
    swept = arm.grid_layers.get(knob)  # one layer per value: the shorthand made both
    if swept is not None:
        return {_canonical(v): layer for v, layer in zip(values, swept, strict=True)}
    return layer_axis(values)


def _data_args(spec: Spec, unit: _Unit) -> tuple[str, ...]:
    """``--data-dir`` for trainer arms: where the shards are, not what they are, so it stays out of the
    run id (each run records its shards' identity in its row)."""
    is_trainer_arm = unit.is_trainer and unit.arm.command is None
    return ("--data-dir", spec.data_dir) if (is_trainer_arm and spec.data_dir is not None) else ()


def _run(spec: Spec, unit: _Unit, replicate: int, trainer_hash: str) -> RunSpec:
    identity = {
        "sweep": spec.name,
        "arm": unit.arm.name,
        "replicate": replicate,
        "params": unit.params or None,
        "command": list(unit.command),
        "cwd": unit.arm.cwd,
        "env": unit.arm.env,
        "files": unit.files,
        "trainer": trainer_hash if unit.is_trainer else None,
    }
    run_id = short_hash(identity)
    shas = [unit.files[k] for k in unit.files]
    return RunSpec(
        run_id=run_id,
        sweep=spec.name,
        arm=unit.arm.name,
        replicate=replicate,
        seed=seed_from_run_id(run_id),
        command=unit.command + _data_args(spec, unit),
        params=unit.params,
        preset=unit.preset,
        is_trainer=unit.is_trainer,
        cwd=unit.arm.cwd,
        env=dict(unit.arm.env),
        gpus=spec.resources.gpus_per_run,
        cpus=spec.resources.cpus_per_run,
        timeout_s=spec.timeout_s,
        retries=spec.retries,
        script_sha256=",".join(shas) if shas else None,
        point=unit.point,
        estimate_s=unit.estimate_s,
    )


# ---------------------------------------------------------------------------------------------
# Ordering into blocks.


def _place(runs: list[RunSpec], block_id: int) -> list[RunSpec]:
    return [dataclasses.replace(r, block=block_id, order_index=i) for i, r in enumerate(runs)]


def _block(spec: Spec, block_id: int, runs: list[RunSpec]) -> Block:
    r = spec.resources
    return Block(block_id, tuple(_place(runs, block_id)), r.gpus_per_run, r.cpus_per_run, r.exclusive_node)


def _grid_blocks(spec: Spec, units: list[_Unit], trainer_hash: str) -> list[Block]:
    """Replicate-major interleaving; one block per run, or (per_replicate) one per replicate index."""
    rounds = []
    for rep in range(max(u.repeats for u in units)):
        rounds.append([_run(spec, u, rep, trainer_hash) for u in units if rep < u.repeats])
    if spec.blocks == "per_run":
        flat = [r for rnd in rounds for r in rnd]
        return [_block(spec, i, [r]) for i, r in enumerate(flat)]
    rng = random.Random(spec.seed)
    return [_block(spec, i, _ordered(spec.order, i, rnd, rng)) for i, rnd in enumerate(rounds)]


def _ordered(order: str, index: int, runs: list[RunSpec], rng: random.Random) -> list[RunSpec]:
    """The runs of one per-replicate block in ``order``: as listed, reversed on odd blocks, or shuffled."""
    if order == "abba" and index % 2:
        return runs[::-1]
    if order == "random-blocks":
        runs = list(runs)
        rng.shuffle(runs)
    return runs


def ab_pattern(order: str, n_blocks: int, block_size: int, seed: int) -> list[str]:
    """The arm sequence of every block ("A"/"B" strings of length 2 * block_size).

    alternate: AB AB ...; abba: pairs alternate AB, BA, AB, ... across the whole sweep (so with
    block_size 1 the blocks go AB | BA | AB and with 2 they are ABBA | ABBA); random-blocks: each
    block a permutation of its A's and B's drawn from random.Random(seed).
    """
    rng = random.Random(seed)
    out = []
    for b in range(n_blocks):
        if order == "random-blocks":
            seq = ["A", "B"] * block_size
            rng.shuffle(seq)
            out.append("".join(seq))
            continue
        pairs = [b * block_size + j for j in range(block_size)]
        out.append("".join("BA" if order == "abba" and p % 2 else "AB" for p in pairs))
    return out


def _ab_blocks(spec: Spec, units: list[_Unit], trainer_hash: str) -> list[Block]:
    a = next(u for u in units if u.arm.name == spec.baseline)
    b = next(u for u in units if u.arm.name != spec.baseline)
    n_blocks = spec.runs_per_arm // spec.block_size
    count = {"A": 0, "B": 0}
    blocks = []
    for i, seq in enumerate(ab_pattern(spec.order, n_blocks, spec.block_size, spec.seed)):
        runs = []
        for letter in seq:
            runs.append(_run(spec, a if letter == "A" else b, count[letter], trainer_hash))
            count[letter] += 1
        blocks.append(_block(spec, i, runs))
    return blocks


def _knob_types(spec: Spec, units: list[_Unit]) -> dict[str, str]:
    """Store column types of the knobs this sweep sets (plus steps, always), in registry order."""
    from trainer.config import knob_types

    used = {"steps", *spec.trainer_set}
    for arm in spec.arms:
        used |= set(arm.set) | {k for k, _ in arm.grid}
        args = trainer_command_args(arm.command) if arm.is_command else None
        if args is not None:
            used |= set(parse_trainer_args(args)[1])
    return {k: t for k, t in knob_types().items() if k in used}


def make_plan(spec: Spec) -> Plan:
    """Every run of ``spec`` with its id, seed, command and place (block, order within the block)."""
    units = _units(spec)
    trainer_hash = trainer_source_hash() if any(u.is_trainer for u in units) else ""
    blocks = (
        _ab_blocks(spec, units, trainer_hash)
        if spec.kind == "ab"
        else _grid_blocks(spec, units, trainer_hash)
    )
    _check_unique(spec, blocks)
    return Plan(
        name=spec.name,
        kind=spec.kind,
        blocks=tuple(blocks),
        baseline_arm=spec.baseline,
        arms=tuple(a.name for a in spec.arms),
        target_val_loss=spec.target_val_loss,
        knob_types=_knob_types(spec, units),
        profile=spec.profile,
        description=spec.description,
        contrasts=plan_contrasts(spec),
    )


def plan_contrasts(spec: Spec) -> tuple[dict[str, Any], ...]:
    """The spec's contrasts as sweep.json stores them, each checked against its arm's grid: the arm sweeps
    one knob a layer at a time and both sides name points of it (SpecError otherwise)."""
    out = []
    for i, c in enumerate(spec.contrasts):
        where = f"{spec.source}: contrasts[{i}]"
        arm = spec.arm(c.arm)
        hint = ""
        if spec.profile:
            p = spec.profile
            hint = f"; if profile {p} changes this grid, give profiles.{p} its own contrasts"
        points = [] if arm.is_command else arm_points(arm)
        knob = layer_knob(points)
        if knob is None:
            raise SpecError(
                f"{where}.arm: arm {c.arm!r} does not sweep one knob a layer at a time "
                f'(e.g. mlp_off: {{each_layer: "0-11"}}); a contrast compares the points of such a grid{hint}'
            )
        others = [k for k, values in arm.grid if k != knob and len(values) > 1]
        if others:
            raise SpecError(
                f"{where}.arm: arm {c.arm!r} also sweeps {others[0]}, so a layer is several configurations; "
                "a contrast compares the points of a grid over layers alone"
            )
        have = {p.layers[knob] for p in points}
        for side, layers in (("layers", c.layers), ("against", c.against or ())):
            missing = sorted(set(layers) - have)
            if missing:
                raise SpecError(
                    f"{where}.{side}: layer {missing[0]} is not a point of arm {c.arm!r} "
                    f"(its {knob} points: {layer_ranges(sorted(have))}){hint}"
                )
        against: Any = "baseline" if c.against is None else list(c.against)
        out.append(
            {"label": c.label, "arm": c.arm, "knob": knob, "layers": list(c.layers), "against": against}
        )
    return tuple(out)


def _check_unique(spec: Spec, blocks: list[Block]) -> None:
    # Grid values are checked for duplicates in the spec, but two spellings of one value ({0: glu}
    # and a full list) resolve to the same run; that would be one run counted twice.
    seen: dict[str, RunSpec] = {}
    for run in (r for b in blocks for r in b.runs):
        if run.run_id in seen:
            here, first = _point(run.point.values), _point(seen[run.run_id].point.values)
            raise SpecError(
                f"{spec.source}: arms.{run.arm}.grid: {here} and {first} "
                "resolve to the same configuration; give each grid value once"
            )
        seen[run.run_id] = run


# ---------------------------------------------------------------------------------------------
# Plan-time warnings: an arm that turns back on what the baseline arm has off.

OFF_KNOBS = {"mlp_off": "MLP", "attn_off": "attention"}
"""Layer lists that switch a part of a layer off, and the part, for warnings."""


def turned_on(base: dict[str, Any], params: dict[str, Any]) -> dict[str, list[int]]:
    """{knob: layers} that the baseline's params have off (OFF_KNOBS) and ``params`` has on."""
    out = {}
    for knob in OFF_KNOBS:
        on = sorted(set(base.get(knob) or ()) - set(params.get(knob) or ()))
        if on and knob in params:
            out[knob] = on
    return out


def plan_warnings(spec: Spec, plan: Plan) -> list[str]:
    """One line per arm whose runs turn back on a layer's MLP or attention that the baseline arm has
    off, unless the arm says so with ``{remove: [...]}``: a per-layer list given in full replaces the
    inherited one, so ``attn_off: [3]`` over the baseline's ``[7]`` also turns layer 7 back on."""
    base = next((r for r in plan.runs if r.arm == plan.baseline_arm), None)
    if base is None or not base.params:
        return []
    lines = []
    for arm in spec.arms:
        if arm.name == plan.baseline_arm:
            continue
        points = _point_runs([r for r in plan.runs if r.arm == arm.name])
        hits = [(r, turned_on(base.params, r.params)) for r in points if r.params]
        hits = [(r, _unmeant(arm, on)) for r, on in hits]
        hits = [(r, on) for r, on in hits if on]
        if hits:
            lines.append(_turned_on_line(spec, arm, base, hits, len(points)))
    return lines


def _unmeant(arm: Arm, on: dict[str, list[int]]) -> dict[str, list[int]]:
    out = {k: [x for x in v if x not in arm.removed.get(k, ())] for k, v in on.items()}
    return {k: v for k, v in out.items() if v}


def _point_runs(runs: list[RunSpec]) -> list[RunSpec]:
    """The first run of each grid point, in plan order."""
    seen: dict[str, RunSpec] = {}
    for r in runs:
        seen.setdefault(_canonical(r.point.values), r)
    return list(seen.values())


def _turned_on_line(spec: Spec, arm: Arm, base: RunSpec, hits: list, n_points: int) -> str:
    from analysis.knobdiff import value_text

    run, on = hits[0]
    knob = next(iter(on))
    layers = ", ".join(str(x) for x in on[knob])
    what = f"the {OFF_KNOBS[knob]} of layer{'s' if len(on[knob]) > 1 else ''} {layers}"
    change = f"{knob}: {value_text(base.params[knob])} -> {value_text(run.params[knob])}"
    off = f"off in the baseline arm '{spec.baseline}'"
    where = (
        f" in {len(hits)} of {n_points} points (e.g. {change}; {off})"
        if n_points > 1
        else f" ({change}; {off})"
    )
    others = sorted({k for _, o in hits for k in o} - {knob})
    also = f", and layers of {', '.join(others)} too" if others else ""
    head = f"warning: {spec.source}: arms.{arm.name}: turns {what} back on"
    return f"{head}{where}{also}; {_turned_on_fix(spec, arm, knob, on[knob])} (sweeps/README.md)"


def _turned_on_fix(spec: Spec, arm: Arm, knob: str, layers: list[int]) -> str:
    """The advice of a turned-on warning. A trainer arm starts from trainer.set, not from the baseline
    arm's set: a layer that only the baseline arm's set has off is not the arm's to add to or remove."""
    from trainer.config import resolve

    if arm.is_command:
        return f"to keep it off list it in the command's --set {knob}=[...] too"
    inherited = set(getattr(resolve(spec.preset, spec.trainer_set), knob))
    own = [x for x in layers if x not in inherited]
    if own:
        named = f"layer{'s' if len(own) > 1 else ''} {', '.join(str(x) for x in own)}"
        return (
            f"{named} {'are' if len(own) > 1 else 'is'} off in arms.{spec.baseline}.set, which the other "
            "arms do not start from: to keep it off list it in this arm's set too (or move it to "
            f"trainer.set, which every arm starts from); if it is meant, move it to trainer.set and say "
            f"so in this arm's set: {knob}: {{remove: [{', '.join(str(x) for x in own)}]}}"
        )
    return (
        f"to keep it off add to the list ({knob}: {{add: [...]}}, in a grid {{add_each: RANGE}}); "
        f"if it is meant, say so: {knob}: {{remove: [{', '.join(str(x) for x in layers)}]}} in the arm's set"
    )


# ---------------------------------------------------------------------------------------------
# Identity diff of a resubmitted spec.


def _identity_view(spec: Spec) -> dict[str, Any]:
    skip = {"source", "folder", "raw", "profile", "arms", "trainer_set", "resources", "preset"}
    view: dict[str, Any] = {
        f.name: getattr(spec, f.name) for f in dataclasses.fields(spec) if f.name not in skip
    }
    view["trainer"] = {"preset": spec.preset, "set": spec.trainer_set}
    view["resources"] = dataclasses.asdict(spec.resources)
    # `removed` says how a list was written ({remove: [7]}), not what runs: the lists are in set and grid
    view["arms"] = {
        a.name: {k: v for k, v in dataclasses.asdict(a).items() if k != "removed"}
        | {"grid": {k: list(v) for k, v in a.grid}}
        for a in spec.arms
    }
    view["arm_order"] = [a.name for a in spec.arms]
    for path in NON_IDENTITY_FIELDS:
        head, _, tail = path.partition(".")
        if tail:
            view.get(head, {}).pop(tail, None)
        else:
            view.pop(head, None)
    return view


def _diff(a: Any, b: Any, path: str, out: list[str]) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in list(dict.fromkeys([*a, *b])):
            sub = f"{path}.{key}" if path else str(key)
            if key not in a or key not in b:
                out.append(sub)
            else:
                _diff(a[key], b[key], sub, out)
        return
    if json.dumps(a, sort_keys=True, default=str) != json.dumps(b, sort_keys=True, default=str):
        out.append(path)


def spec_identity_diff(stored: Spec, new: Spec) -> list[str]:
    """Field paths (e.g. ``trainer.set.steps``, ``arms.mlp0``) where ``new`` differs from ``stored`` in
    what identifies or orders runs; timeouts, retries, cpus, description and estimates are ignored."""
    out: list[str] = []
    _diff(_identity_view(stored), _identity_view(new), "", out)
    return out


# ---------------------------------------------------------------------------------------------
# --dry-run text.


def _point(values: dict[str, Any]) -> str:
    if not values:
        return "-"
    return " ".join(f"{k}={yaml_literal(v)}" for k, v in values.items())


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.2f}"


def _contrast_sides(c: dict[str, Any]) -> str:
    other = "the baseline arm" if c["against"] == "baseline" else layer_ranges(c["against"])
    return f"{c['arm']}: {c['knob']} {layer_ranges(c['layers'])} vs {other}"


@dataclasses.dataclass(frozen=True)
class Measured:
    """What a results folder's finished runs took (the dry-run's estimate from them): mean wall seconds
    per arm, and over all, of the ok runs of the plan that did not start on an empty compile cache."""

    runs: int
    wall_s: float
    by_arm: dict[str, float]
    """arm -> mean wall of its first runs of a configuration (what a configuration not run yet takes)."""
    repeat_wall_s: float | None = None
    """Mean wall of the runs whose configuration (arm and grid point) had run before them: what a run
    left whose configuration has run here takes (its graphs are compiled). None: no such run yet."""
    repeats: int = 0
    """How many runs `repeat_wall_s` is the mean of."""
    configs: frozenset[tuple[str, str]] = frozenset()
    """(arm, point) of the configurations that have run (`config_key`)."""


def config_key(run: RunSpec) -> tuple[str, str]:
    """A run's configuration, seeds apart: its arm and its grid point's values."""
    return run.arm, json.dumps(run.point.values, sort_keys=True, default=str)


def describe_plan(
    plan: Plan, done_run_ids: frozenset[str] | set[str] = frozenset(), measured: Measured | None = None
) -> str:
    """The plan as text: a header, the blocks and their runs in order, per-arm totals and an estimate.

    Runs already in ``done_run_ids`` are marked ``done`` and left out of the estimate; with ``measured``
    (the folder's finished runs) a second estimate says what the runs left take at the pace measured.
    """
    runs = plan.runs
    gpus = max((b.gpus for b in plan.blocks), default=0)
    exclusive = ", each block on an exclusive node" if any(b.exclusive_node for b in plan.blocks) else ""
    lines = [
        f"sweep {plan.name} (kind {plan.kind}, profile {plan.profile or '-'}): {len(runs)} runs in "
        f"{len(plan.blocks)} blocks, {gpus} GPU(s) per run{exclusive}",
        f"baseline arm: {plan.baseline_arm}; target val loss: "
        f"{'none' if plan.target_val_loss is None else plan.target_val_loss}",
        *([plan.description] if plan.description else []),
        *(f"contrast (the report answers it): {c['label']} [{_contrast_sides(c)}]" for c in plan.contrasts),
        "",
    ]
    aw = max([3, *(len(r.arm) for r in runs)])
    pw = max([5, *(len(_point(r.point.values)) for r in runs)])
    lines.append(
        f"{'block':>5} {'#':>2}  {'arm':<{aw}}  {'point':<{pw}}  {'rep':>3} {'gpus':>4} {'seed':>10}  "
        f"{'run_id':<16}  state"
    )
    for block in plan.blocks:
        for r in block.runs:
            state = "done" if r.run_id in done_run_ids else "todo"
            lines.append(
                f"{block.block_id:>5} {r.order_index:>2}  {r.arm:<{aw}}  {_point(r.point.values):<{pw}}  "
                f"{r.replicate:>3} "
                f"{r.gpus:>4} {r.seed:>10}  {r.run_id:<16}  {state}"
            )
    lines += ["", *_arm_totals(plan), "", *_estimate_lines(plan, done_run_ids, measured)]
    return "\n".join(lines) + "\n"


POINT_DIFF_LINES = 32
"""Grid points of one arm whose difference from the baseline the dry-run lists (a big grid: the first)."""


def _arm_totals(plan: Plan) -> list[str]:
    """Per arm: its runs and points, how each point differs from the baseline arm, its first command."""
    lines = ["arms:"]
    aw = max([3, *(len(a) for a in plan.arms)])
    base = next((r for r in plan.runs if r.arm == plan.baseline_arm), None)
    for arm in plan.arms:
        mine = [r for r in plan.runs if r.arm == arm]
        points = len({_canonical(r.point.values) for r in mine})
        lines.append(f"  {arm:<{aw}}  {len(mine):>3} runs, {points:>2} point(s)")
        if base is not None and arm != plan.baseline_arm:
            lines += _point_diffs(plan.baseline_arm, base, mine)
        if mine:  # the first run's command: the others differ only in their grid point
            lines.append(f"      {shlex.join(mine[0].command)}")
    return lines


def _point_diffs(baseline: str, base: RunSpec, runs: list[RunSpec]) -> list[str]:
    """`vs <baseline>[ at <point>]: <difference>` for each grid point of ``runs`` in plan order (the first
    POINT_DIFF_LINES of a big grid: the run table lists every point)."""
    points = _point_runs(runs)
    lines = []
    for r in points[:POINT_DIFF_LINES]:
        at = f" at {_point(r.point.values)}" if len(points) > 1 else ""
        lines.append(f"      vs {baseline}{at}: {run_diff(base, r)}")
    if len(points) > POINT_DIFF_LINES:
        lines.append(f"      ... and {len(points) - POINT_DIFF_LINES} more points")
    return lines


def run_diff(base: RunSpec, run: RunSpec) -> str:
    """How ``run`` differs from ``base`` as one text: knob by knob (``attn_off: [7] -> [3]``) when both
    run our trainer, else the command's changed arguments; then cwd and env where they differ."""
    from analysis.knobdiff import knob_diff

    if base.params and run.params:
        parts = knob_diff(base.params, run.params)
    else:
        parts = _argv_diff(list(base.command), list(run.command))
    if base.cwd != run.cwd:
        parts.append(f"cwd: {base.cwd or '.'} -> {run.cwd or '.'}")
    for key in sorted(set(base.env) | set(run.env)):
        if base.env.get(key) != run.env.get(key):
            parts.append(f"env {key}: {base.env.get(key, '(unset)')} -> {run.env.get(key, '(unset)')}")
    return ", ".join(parts) or "same as the baseline"


def _argv_diff(a: list[str], b: list[str]) -> list[str]:
    """The arguments that differ between two commands: ``records/prev/x.py -> records/new/x.py``."""
    import difflib

    out = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if op != "equal":
            out.append(f"{shlex.join(a[i1:i2]) or '(nothing)'} -> {shlex.join(b[j1:j2]) or '(nothing)'}")
    return out


def _estimate_lines(
    plan: Plan, done: frozenset[str] | set[str], measured: Measured | None = None
) -> list[str]:
    todo = [r for r in plan.runs if r.run_id not in done]
    lines = _plain_estimate_lines(plan, todo)
    if todo and measured is not None and measured.runs:

        def pace(r: RunSpec) -> float:
            if measured.repeat_wall_s is not None and config_key(r) in measured.configs:
                return measured.repeat_wall_s
            return measured.by_arm.get(r.arm, measured.wall_s)

        repeats = sum(config_key(r) in measured.configs for r in todo) if measured.repeat_wall_s else 0
        of_repeats = (
            f", {repeats} of them repeats of a configuration that ran here ({measured.repeat_wall_s:.0f} s "
            f"each, as the {measured.repeats} repeat(s) so far)"
            if repeats
            else ""
        )
        lines.append(
            f"measured here: {measured.runs} finished run(s) that did not compile cold took "
            f"{measured.wall_s:.0f} s each (wall, start-up included); the {len(todo)} left, one after "
            f"another: ~{_minutes(sum(pace(r) for r in todo))}{of_repeats}"
        )
    return lines


def _minutes(seconds: float) -> str:
    m = round(seconds / 60)
    return f"{m} min" if m < 120 else f"{seconds / 3600:.1f} h"


def _plain_estimate_lines(plan: Plan, todo: list[RunSpec]) -> list[str]:
    known = [r for r in todo if r.estimate_s is not None]
    run_s = sum(r.estimate_s for r in known)
    gpu_s = sum(r.estimate_s * r.gpus for r in known)
    lines = [f"to run: {len(todo)} of {len(plan.runs)} runs ({len(plan.runs) - len(todo)} done)"]
    if not todo:
        return lines
    if not known:
        return [*lines, "no estimate: these are command runs (set estimate_min in the spec)"]
    what = f"~{_hours(gpu_s)} GPU-hours" if gpu_s else f"~{_hours(run_s)} hours of CPU runs (no GPUs)"
    lines.append(
        f"estimate: {what}; {_hours(run_s)} run-hours one after another "
        "(rough: start-up and compile included)"
    )
    if len(known) < len(todo):
        lines.append(f"no estimate for {len(todo) - len(known)} command runs (set estimate_min in the spec)")
    return lines
