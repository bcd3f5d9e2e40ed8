"""Sweep specs: parse a YAML file into a frozen, validated ``Spec`` (the edge of the orchestrator).

Every check names the path of the bad field and what would be valid, in one line:
``sweeps/x.yaml: arms.drop_one.grid.mlp_of: unknown knob 'mlp_of'; did you mean 'mlp_off'?``.
Knob names and values are checked by the trainer's own registry (``trainer.config``), so a bad knob
fails at load time, not hours later on a GPU node.

The language (see sweeps/README.md for examples):

- ``trainer: {preset, set, data_dir}``: the knobs every trainer arm starts from, and its shards.
- ``arms: {name: ARM}``; an ARM is ``{set: {knob: value}}`` (one configuration), ``{grid: {knob:
  [values]}}`` (the cartesian product; ``set`` may be given too, applied to every point), or
  ``{command: [argv...], cwd, env}`` (any program, never through a shell). In a grid, ``repeats``
  on an arm overrides the spec's; on a grid that sweeps a layer it may also be a mapping from layer
  ranges to counts, ``{"0,9-11": 3, rest: 1}`` (more replicates where the effects are expected).
- Grid shorthand for per-layer ablations: ``{each_layer: "0-11"}`` is ``[[0], [1], ..., [11]]``;
  ``{each_layer: "1-11", with: [0]}`` is ``[[0, 1], [0, 2], ...]``; ``{each_layer: "0-11", value:
  glu}`` is ``[{0: glu}, {1: glu}, ...]``. Ranges are ``"a-b"``, comma lists ``"0,6,11"`` or YAML lists.
- Layer lists (the registry's ``layer_set`` knobs, `layer_list_knobs`: ``mlp_off``, ``attn_off``) given
  in full replace what is under them; ``{add: [3]}`` / ``{remove: [7]}`` edit it (the preset,
  ``trainer.set``, the arm's ``set``, its grid: each level over the one below), and ``{add_each: RANGE}``
  / ``{remove_each: RANGE}`` are grids of such edits (``with`` composes as for ``each_layer``). An edit
  is resolved here to the list it makes.
  ``long_window_layers`` holds layer indices too but is a plain tuple knob: full values only.
- ``kind: ab``: exactly two arms, ``runs_per_arm`` each, interleaved in blocks of ``block_size`` A's
  and B's on one node, in ``order`` alternate | abba | random-blocks (seeded by ``seed``).
- ``kind: grid`` with ``blocks: per_replicate``: one replicate of every arm runs back to back on one
  node, in ``order`` (so a grid can hold an A/B-style comparison too).
- ``profiles: {name: {...}}``: overrides deep-merged over the spec by ``--profile name`` (mappings
  merge key by key, anything else replaces). A profile's sweep is named ``<name>-<profile>`` unless
  the profile sets ``name``, so its results never mix with the full-size sweep's.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from analysis.knobdiff import layer_ranges
from orchestrator.errors import UserError, one_line


class SpecError(UserError):
    """A mistake in a sweep spec: one line ``<file>: <field.path>: <what is wrong>; <what is valid>``."""


KINDS = ("grid", "ab")
ORDERS = ("alternate", "abba", "random-blocks")
BLOCKINGS = ("per_run", "per_replicate")
TOP_KEYS = (
    "name", "description", "kind", "trainer", "resources", "repeats", "runs_per_arm", "order",
    "block_size", "blocks", "seed", "timeout_s", "timeout_min", "retries", "target_val_loss",
    "estimate_min", "baseline", "arms", "contrasts", "profiles",
)  # fmt: skip
TRAINER_KEYS = ("preset", "set", "data_dir")
RESOURCE_KEYS = ("gpus_per_run", "cpus_per_run", "exclusive_node", "compile_cache_dir")
TRAINER_ARM_KEYS = ("set", "grid", "repeats")
COMMAND_ARM_KEYS = ("command", "cwd", "env", "repeats")
EACH_LAYER_KEYS = ("each_layer", "add_each", "remove_each", "with", "value")
EACH_LAYER_FORMS = ("each_layer", "add_each", "remove_each")
CONTRAST_KEYS = ("label", "arm", "layers", "against")
EDIT_KEYS = ("add", "remove")
"""An edit of an inherited layer list: ``attn_off: {add: [3]}`` is the list below it plus layer 3."""
NON_IDENTITY_FIELDS = (
    "description",
    "timeout_s",
    "retries",
    "estimate_min",
    "profiles",
    "contrasts",
    "resources.cpus_per_run",
    "resources.compile_cache_dir",
    "data_dir",
)
"""Spec fields that may change between submissions of one sweep: they do not change what runs."""

_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_RESERVED_KNOBS = {"seed": "the seed is derived per replicate from the run_id; remove it"}


@dataclass(frozen=True)
class Resources:
    gpus_per_run: int = 1
    """GPUs per run (0 = CPU). A trainer arm with more than one runs under torchrun, a process per GPU."""
    cpus_per_run: float = 1.0
    exclusive_node: bool = False
    """Hold the whole node while a block runs (default true for kind ab: timing depends on neighbours)."""
    compile_cache_dir: str | None = None
    """A folder every node sees (e.g. NFS): compile caches are seeded from it instead of through Ray."""


@dataclass(frozen=True)
class Arm:
    """One arm: trainer knobs (``set`` plus an expanded ``grid``) or an arbitrary ``command``."""

    name: str
    set: dict[str, Any] = field(default_factory=dict)
    grid: tuple[tuple[str, tuple[Any, ...]], ...] = ()
    """(knob, values) pairs in spec order; the arm's runs are their cartesian product."""
    command: tuple[str, ...] | None = None
    cwd: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    repeats: int | None = None
    """Replicates of each grid point (None = the spec's ``repeats``); with ``repeats_at``, of the points
    whose swept layer it does not name."""
    repeats_at: tuple[tuple[tuple[int, ...], int], ...] = ()
    """(layers, replicates) pairs from ``repeats: {"0,9-11": 3, rest: 1}``: a grid point whose swept layer
    is in ``layers`` runs that many times (the plan checks that the grid sweeps those layers)."""
    grid_layers: dict[str, tuple[int, ...]] = field(default_factory=dict)
    """The layer each value of a grid knob sweeps, per knob given by the layer-list shorthand
    (``{each_layer: "0-11"}``, with ``with``, ``{add_each: ...}``, ``{remove_each: ...}``): the layer the
    point adds or removes. Knobs whose values are written out are left to the plan (``layer_axis``)."""
    removed: dict[str, tuple[int, ...]] = field(default_factory=dict)
    """Layers this arm takes out of an inherited layer list in so many words (``{remove: [7]}``, in its
    set or grid), per knob: turning them back on is meant, so the plan does not warn about it. ``set``
    and ``grid`` hold the lists that edits make (``{add: [3]}`` over ``[7]`` is ``[3, 7]``)."""

    @property
    def is_command(self) -> bool:
        return self.command is not None


@dataclass(frozen=True)
class Contrast:
    """A question the report answers about an arm that sweeps a layer: do the runs of the points at
    ``layers`` end at another loss than those at ``against`` (layers of the same arm), or than the
    baseline arm's runs (``against`` None)? E.g. the seed's "with MLP 0 off, dropping one of layers 9-11
    costs more than one of the middle": ``{arm: drop_0_and_one, layers: "9-11", against: "1-8"}``."""

    label: str
    arm: str
    layers: tuple[int, ...]
    against: tuple[int, ...] | None = None


@dataclass(frozen=True)
class Spec:
    """A validated sweep spec with its profile applied. Fields mirror the YAML keys."""

    name: str
    kind: str
    arms: tuple[Arm, ...]
    baseline: str
    preset: str = "speedrun"
    trainer_set: dict[str, Any] = field(default_factory=dict)
    data_dir: str | None = None
    """Shard folder passed to trainer arms as --data-dir (relative: to the folder ablate runs in);
    None lets the trainer choose (the tiny preset makes its synthetic corpus)."""
    resources: Resources = Resources()
    repeats: int = 1
    runs_per_arm: int = 1
    order: str = "alternate"
    block_size: int = 1
    blocks: str = "per_run"
    seed: int = 0
    timeout_s: float | None = None
    retries: int = 1
    target_val_loss: float | None = None
    estimate_min: float | None = None
    description: str = ""
    contrasts: tuple[Contrast, ...] = ()
    """Questions for the report (``contrasts:``); they do not change what runs."""
    profile: str | None = None
    source: str = ""
    """The spec file as given to load_spec (for messages and sweep.json)."""
    folder: str = "."
    """The spec file's folder: command arguments naming files are looked up relative to it too."""
    raw: dict[str, Any] = field(default_factory=dict)
    """The YAML as submitted (before the profile): write it with ``dump_raw`` to store the spec."""

    def arm(self, name: str) -> Arm:
        return next(a for a in self.arms if a.name == name)


def dump_raw(spec: Spec) -> str:
    """The spec as submitted, as YAML text (for ``results/<name>/spec.yaml``)."""
    return yaml.safe_dump(spec.raw, sort_keys=False)


# ---------------------------------------------------------------------------------------------
# Small checkers: each returns the value or raises SpecError naming the path.


class _Ctx:
    """Where we are: the file (for messages)."""

    def __init__(self, source: str):
        self.source = source

    def fail(self, path: str, msg: str) -> SpecError:
        text = f"{self.source}: {path}: {msg}" if path else f"{self.source}: {msg}"
        return SpecError(one_line(text))


def _describe(value: Any) -> str:
    if value == [] or value == {}:
        return "an empty list" if isinstance(value, list) else "an empty mapping"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    # width=inf: YAML would wrap a long value onto several lines, and an error is one line
    text = yaml.safe_dump(value, default_flow_style=True, width=float("inf"))
    return " ".join(text.strip().removesuffix("...").split())


def _mapping(ctx: _Ctx, value: Any, path: str, allowed: tuple[str, ...] | None = None) -> dict:
    if not isinstance(value, Mapping):
        raise ctx.fail(path, f"expected a mapping, got {_describe(value)}")
    if allowed is not None:
        for key in value:
            if key not in allowed:
                where = f"{path}.{key}" if path else str(key)
                raise ctx.fail(where, f"unknown key; allowed: {', '.join(allowed)}")
    return dict(value)


def _int(ctx: _Ctx, value: Any, path: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ctx.fail(path, f"expected an integer >= {minimum}, got {_describe(value)}")
    if value < minimum:
        raise ctx.fail(path, f"{value} is too small; expected an integer >= {minimum}")
    return value


def _number(ctx: _Ctx, value: Any, path: str, positive: bool = True) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ctx.fail(path, f"expected a number, got {_describe(value)}")
    if positive and value <= 0:
        raise ctx.fail(path, f"{value} must be > 0; expected a positive number")
    return float(value)


def _choice(ctx: _Ctx, value: Any, path: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ctx.fail(path, f"{_describe(value)} is not valid; choose one of: {', '.join(choices)}")
    return value


def _safe_name(ctx: _Ctx, value: Any, path: str) -> str:
    ok = isinstance(value, str) and _SAFE_NAME.fullmatch(value) and ".." not in value
    if not ok:
        raise ctx.fail(
            path,
            f"{_describe(value)} is not a safe name; use letters, digits, '.', '_', '-' "
            "(starting with a letter or digit, no '..')",
        )
    return value


def _str_list(ctx: _Ctx, value: Any, path: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise ctx.fail(path, f"expected a non-empty list of arguments, got {_describe(value)}")
    out = []
    for i, v in enumerate(value):
        if isinstance(v, bool) or not isinstance(v, (str, int, float)):
            raise ctx.fail(f"{path}[{i}]", f"expected a string argument, got {_describe(v)}")
        out.append(str(v))
    return tuple(out)


# ---------------------------------------------------------------------------------------------
# Loading: YAML text -> dict -> profile merge -> Spec.


class _DuplicateKey(yaml.MarkedYAMLError):
    """PyYAML keeps the last of two equal keys silently; in a spec that would drop an arm or a knob."""


def _unique_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen = []
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *anchor` merges; not a key of its own
            continue
        key = loader.construct_object(key_node, deep=True)
        if key in seen:
            raise _DuplicateKey(problem=f"duplicate key {key!r}", problem_mark=key_node.start_mark)
        seen.append(key)
    return loader.construct_mapping(node, deep=deep)


class _SpecLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys."""

    yaml_constructors = {**yaml.SafeLoader.yaml_constructors, "tag:yaml.org,2002:map": _unique_mapping}


def _read_yaml(path: Path, source: str) -> Any:
    ctx = _Ctx(source)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ctx.fail("", "no such spec file; pass a YAML file such as sweeps/demo.yaml") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ctx.fail(
            "", f"cannot read the spec ({exc.__class__.__name__}); pass a readable YAML text file"
        ) from None
    try:
        return yaml.load(text, Loader=_SpecLoader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "somewhere"
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        if isinstance(exc, _DuplicateKey):
            raise ctx.fail("", f"{problem} at {where}; give each key once") from None
        raise ctx.fail("", f"YAML syntax error at {where}: {problem}; fix the YAML syntax there") from None


def deep_merge(base: Any, over: Any) -> Any:
    """``over`` merged into ``base``: mappings merge key by key, anything else replaces (no mutation)."""
    if isinstance(base, Mapping) and isinstance(over, Mapping):
        out = {k: copy.deepcopy(v) for k, v in base.items()}
        for key, value in over.items():
            out[key] = deep_merge(base[key], value) if key in base else copy.deepcopy(value)
        return out
    return copy.deepcopy(over)


def _apply_profile(ctx: _Ctx, raw: dict, profile: str | None) -> dict:
    profiles = _mapping(ctx, raw.get("profiles") or {}, "profiles")
    for name, body in profiles.items():
        _safe_name(ctx, name, f"profiles.{name}")
        _mapping(
            ctx,
            body if body is not None else {},
            f"profiles.{name}",
            tuple(k for k in TOP_KEYS if k != "profiles"),
        )
    base = {k: v for k, v in raw.items() if k != "profiles"}
    if profile is None:
        return base
    if profile not in profiles:
        have = ", ".join(profiles) if profiles else "none (this spec defines no profiles)"
        raise ctx.fail("--profile", f"'{profile}' is not a profile of this spec; profiles: {have}")
    merged = deep_merge(base, profiles[profile] or {})
    if "name" not in (profiles[profile] or {}) and isinstance(merged.get("name"), str):
        merged["name"] = f"{merged['name']}-{profile}"
    return merged


def load_spec(path: str | Path, profile: str | None = None) -> Spec:
    """Read, profile-merge and validate the spec at ``path``; raises SpecError (one line) on any mistake."""
    path = Path(path)
    return parse_spec(_read_yaml(path, str(path)), str(path), profile=profile, folder=str(path.parent))


def parse_spec(data: Any, source: str = "<spec>", profile: str | None = None, folder: str = ".") -> Spec:
    """Validate an already-parsed spec mapping, as ``load_spec`` does for a file. ``source`` names it in
    messages; ``folder`` is where command arguments naming files are also looked up."""
    ctx = _Ctx(source)
    if not isinstance(data, Mapping):
        raise ctx.fail(
            "", f"expected a mapping of spec fields at the top, got {_describe(data)}; see sweeps/README.md"
        )
    raw = dict(data)
    _mapping(ctx, raw, "", TOP_KEYS)
    merged = _apply_profile(ctx, raw, profile)
    spec = _build(ctx, merged)
    return dataclasses.replace(spec, profile=profile, source=source, folder=folder, raw=raw)


# ---------------------------------------------------------------------------------------------
# Building the Spec from the merged mapping.


def _build(ctx: _Ctx, d: dict) -> Spec:
    if "name" not in d:
        raise ctx.fail("name", "missing; give the sweep a name (it names the results folder)")
    name = _safe_name(ctx, d["name"], "name")
    kind = _choice(ctx, d.get("kind", "grid"), "kind", KINDS)
    description = d.get("description") or ""
    if not isinstance(description, str):
        raise ctx.fail("description", f"expected text, got {_describe(description)}")
    preset, trainer_set, data_dir = _trainer_section(ctx, d.get("trainer"))
    resources = _resources(ctx, d.get("resources"), kind)  # in the order a spec is written: before arms
    arms = _arms(ctx, d.get("arms"), _Over(ctx, "trainer.set", preset, trainer_set))
    layout = _layout(ctx, d, kind, arms)
    baseline = _baseline(ctx, d.get("baseline"), arms)
    _check_knobs(ctx, preset, trainer_set, arms)
    contrasts = _contrasts(ctx, d.get("contrasts"), arms, baseline)
    return Spec(
        name=name,
        kind=kind,
        arms=arms,
        baseline=baseline,
        preset=preset,
        trainer_set=trainer_set,
        data_dir=data_dir,
        resources=resources,
        description=description,
        timeout_s=_timeout(ctx, d),
        retries=_int(ctx, d.get("retries", 1), "retries", 0),
        target_val_loss=_target(ctx, d.get("target_val_loss")),
        estimate_min=None
        if d.get("estimate_min") is None
        else _number(ctx, d["estimate_min"], "estimate_min"),
        seed=_int(ctx, d.get("seed", 0), "seed", 0),
        contrasts=contrasts,
        **layout,
    )


def _trainer_section(ctx: _Ctx, value: Any) -> tuple[str, dict[str, Any], str | None]:
    from trainer.config import PRESETS

    t = _mapping(ctx, value if value is not None else {}, "trainer", TRAINER_KEYS)
    preset = t.get("preset", "speedrun")
    if preset not in PRESETS:
        raise ctx.fail(
            "trainer.preset", f"unknown preset {_describe(preset)}; choose one of: {', '.join(PRESETS)}"
        )
    sets, _ = _flatten_level(
        ctx, "trainer.set", _Over(ctx, "", preset, {}), _knob_map(ctx, t.get("set"), "trainer.set")
    )
    # its values before any arm's: an arm resolves over them, and would be blamed for their mistake
    _resolve_at(ctx, "trainer.set", preset, sets, tuple(sets))
    data_dir = t.get("data_dir")
    if data_dir is not None and (not isinstance(data_dir, str) or not data_dir.strip()):
        raise ctx.fail("trainer.data_dir", f"expected a folder of .bin shards, got {_describe(data_dir)}")
    return preset, sets, data_dir


def _knob_map(ctx: _Ctx, value: Any, path: str) -> dict[str, Any]:
    from trainer.config import ConfigError, check_knob_names

    m = _mapping(ctx, value if value is not None else {}, path)
    for key in m:
        if key in _RESERVED_KNOBS:
            raise ctx.fail(f"{path}.{key}", _RESERVED_KNOBS[key])
        try:
            check_knob_names({key: None})
        except ConfigError as exc:
            raise ctx.fail(f"{path}.{key}", str(exc)) from None
    return m


def _resources(ctx: _Ctx, value: Any, kind: str) -> Resources:
    r = _mapping(ctx, value if value is not None else {}, "resources", RESOURCE_KEYS)
    exclusive = r.get("exclusive_node", kind == "ab")
    if not isinstance(exclusive, bool):
        raise ctx.fail("resources.exclusive_node", f"expected true or false, got {_describe(exclusive)}")
    return Resources(
        gpus_per_run=_int(ctx, r.get("gpus_per_run", 1), "resources.gpus_per_run", 0),
        cpus_per_run=_number(ctx, r.get("cpus_per_run", 1), "resources.cpus_per_run"),
        exclusive_node=exclusive,
        compile_cache_dir=_cache_dir(ctx, r.get("compile_cache_dir")),
    )


def _cache_dir(ctx: _Ctx, value: Any) -> str | None:
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise ctx.fail("resources.compile_cache_dir", f"expected a folder path, got {_describe(value)}")
    return value


def _timeout(ctx: _Ctx, d: dict) -> float | None:
    if "timeout_s" in d and "timeout_min" in d:
        raise ctx.fail("timeout_min", "given together with timeout_s; give one of them")
    if d.get("timeout_min") is not None:
        return 60.0 * _number(ctx, d["timeout_min"], "timeout_min")
    if d.get("timeout_s") is not None:
        return _number(ctx, d["timeout_s"], "timeout_s")
    return None


def _target(ctx: _Ctx, value: Any) -> float | None:
    if value is None:
        return None
    return _number(ctx, value, "target_val_loss")


def _baseline(ctx: _Ctx, value: Any, arms: tuple[Arm, ...]) -> str:
    names = [a.name for a in arms]
    if value is None:
        return "baseline" if "baseline" in names else names[0]
    if value not in names:
        raise ctx.fail("baseline", f"{_describe(value)} is not an arm; choose one of: {', '.join(names)}")
    return value


_CONTRAST_EXAMPLE = '[{arm: drop_0_and_one, layers: "9-11", against: "1-8"}]'


def _contrasts(ctx: _Ctx, value: Any, arms: tuple[Arm, ...], baseline: str) -> tuple[Contrast, ...]:
    """``contrasts:``, a list of {arm, layers, against, label}; whether the arm's grid sweeps those
    layers is the plan's to check (it knows the points)."""
    if value is None or value == []:  # a profile clears the spec's with `contrasts: []`
        return ()
    if not isinstance(value, list):
        raise ctx.fail("contrasts", f"expected a list of {{arm, layers, against}}, got {_describe(value)}; "
                       f"e.g. {_CONTRAST_EXAMPLE}")  # fmt: skip
    names = [a.name for a in arms]
    out = []
    for i, item in enumerate(value):
        path = f"contrasts[{i}]"
        m = _mapping(ctx, item, path, CONTRAST_KEYS)
        for key in ("arm", "layers", "against"):
            if key not in m:
                raise ctx.fail(f"{path}.{key}", f"missing; a contrast names all of arm, layers, against, "
                               f"e.g. {_CONTRAST_EXAMPLE}")  # fmt: skip
        arm = m["arm"]
        if arm not in names:
            raise ctx.fail(
                f"{path}.arm", f"{_describe(arm)} is not an arm; choose one of: {', '.join(names)}"
            )
        if arm == baseline:
            raise ctx.fail(
                f"{path}.arm", f"{arm!r} is the baseline arm; name an arm whose grid sweeps a layer"
            )
        layers = _parse_layers(ctx, m["layers"], f"{path}.layers")
        against = m["against"]
        if against == "baseline":
            other = None
        else:
            try:
                other = _parse_layers(ctx, against, f"{path}.against")
            except SpecError:
                why = f'is neither "baseline" nor layers of arm {arm!r} such as "1-8"'
                why += " (a contrast stays within one arm)"
                raise ctx.fail(f"{path}.against", f"{_describe(against)} {why}") from None
            both = sorted(set(layers) & set(other))
            if both:
                raise ctx.fail(f"{path}.against", f"layer {both[0]} is in layers too; the two sides "
                               "must not share a layer")  # fmt: skip
        label = m.get("label")
        if label is None:
            side = "the baseline" if other is None else f"layers {layer_ranges(sorted(other))}"
            label = f"{arm}: layers {layer_ranges(sorted(layers))} vs {side}"
        elif not isinstance(label, str) or not label.strip():
            raise ctx.fail(f"{path}.label", f"expected text, got {_describe(label)}")
        label = " ".join(label.split())
        if any(c.label == label for c in out):
            raise ctx.fail(
                f"{path}.label", f"{label!r} is the label of an earlier contrast; give each its own"
            )
        out.append(Contrast(label=label, arm=arm, layers=layers, against=other))
    return tuple(out)


def _layout(ctx: _Ctx, d: dict, kind: str, arms: tuple[Arm, ...]) -> dict[str, Any]:
    """repeats / runs_per_arm / order / block_size / blocks, checked against the kind."""
    if kind == "ab":
        return _ab_layout(ctx, d, arms)
    for key, hint in (("runs_per_arm", "use repeats"), ("block_size", "use blocks: per_replicate")):
        if key in d:
            raise ctx.fail(key, f"only for kind ab; for kind grid {hint}")
    blocks = _choice(ctx, d.get("blocks", "per_run"), "blocks", BLOCKINGS)
    if "order" in d and blocks != "per_replicate":
        raise ctx.fail("order", "orders runs within a block; for kind grid it needs blocks: per_replicate")
    return {
        "repeats": _int(ctx, d.get("repeats", 1), "repeats", 1),
        "blocks": blocks,
        "order": _choice(ctx, d.get("order", "alternate"), "order", ORDERS),
    }


def _ab_layout(ctx: _Ctx, d: dict, arms: tuple[Arm, ...]) -> dict[str, Any]:
    for key, hint in (("repeats", "use runs_per_arm"), ("blocks", "use block_size")):
        if key in d:
            raise ctx.fail(key, f"only for kind grid; for kind ab {hint}")
    if len(arms) != 2:
        raise ctx.fail("arms", f"kind ab needs exactly 2 arms (baseline and candidate), got {len(arms)}")
    for arm in arms:
        if arm.grid:
            raise ctx.fail(
                f"arms.{arm.name}.grid", "kind ab compares two single configurations; use set, or kind grid"
            )
        if arm.repeats is not None:
            raise ctx.fail(f"arms.{arm.name}.repeats", "only for kind grid; for kind ab use runs_per_arm")
    runs = _int(ctx, d.get("runs_per_arm", 1), "runs_per_arm", 1)
    size = _int(ctx, d.get("block_size", 1), "block_size", 1)
    if runs % size:
        raise ctx.fail(
            "runs_per_arm",
            f"{runs} is not a multiple of block_size {size}; every block holds block_size of each arm",
        )
    return {
        "runs_per_arm": runs,
        "block_size": size,
        "order": _choice(ctx, d.get("order", "alternate"), "order", ORDERS),
    }


# ---------------------------------------------------------------------------------------------
# Arms and grids.


def _arms(ctx: _Ctx, value: Any, trainer: _Over) -> tuple[Arm, ...]:
    if value is None:
        raise ctx.fail("arms", "missing; give at least one arm, e.g. arms: {baseline: {}}")
    arms = _mapping(ctx, value, "arms")
    if not arms:
        raise ctx.fail("arms", "empty; give at least one arm, e.g. arms: {baseline: {}}")
    return tuple(_arm(ctx, name, body, trainer) for name, body in arms.items())


def _arm(ctx: _Ctx, name: Any, body: Any, trainer: _Over) -> Arm:
    path = f"arms.{name}"
    _safe_name(ctx, name, path)
    body = {} if body is None else body
    if isinstance(body, Mapping) and "command" in body:
        return _command_arm(ctx, name, _mapping(ctx, body, path, COMMAND_ARM_KEYS))
    b = _mapping(ctx, body, path, TRAINER_ARM_KEYS + ("command", "cwd", "env"))
    for key in ("cwd", "env"):
        if key in b:
            raise ctx.fail(f"{path}.{key}", "only for command arms; add command: [argv...] or remove it")
    repeats, repeats_at = _arm_repeats(ctx, b.get("repeats"), f"{path}.repeats", "grid" in b)
    sets, removed = _flatten_level(ctx, f"{path}.set", trainer, _knob_map(ctx, b.get("set"), f"{path}.set"))
    over = _Over(ctx, f"{path}.set", trainer.preset, {**trainer.overrides, **sets}, tuple(sets))
    grid, layers = _grid(ctx, b.get("grid"), f"{path}.grid", over, removed) if "grid" in b else ((), {})
    return Arm(name=name, set=sets, grid=grid, grid_layers=layers, repeats=repeats, repeats_at=repeats_at,
               removed=removed)  # fmt: skip


def _arm_repeats(
    ctx: _Ctx, value: Any, path: str, has_grid: bool
) -> tuple[int | None, tuple[tuple[tuple[int, ...], int], ...]]:
    """An arm's ``repeats``: an integer, or ``{LAYERS: n, ..., rest: m}`` on a grid (``rest`` optional:
    the spec's ``repeats``). Returns (the count for other points, (layers, count) pairs)."""
    if value is None:
        return None, ()
    if not isinstance(value, Mapping):
        return _int(ctx, value, path, 1), ()
    if not has_grid:
        raise ctx.fail(path, "repeats by layer needs a grid that sweeps a layer; give an integer")
    if not value:
        raise ctx.fail(path, 'empty; give counts per layer range, e.g. {"0,9-11": 3, rest: 1}')
    rest, pairs, seen = None, [], {}
    for key, n in value.items():
        if key == "rest":
            rest = _int(ctx, n, f"{path}.rest", 1)
            continue
        layers = _parse_layers(ctx, key, f"{path}.{key}")
        for layer in layers:
            if layer in seen:
                raise ctx.fail(
                    f"{path}.{key}", f"layer {layer} is also in {seen[layer]!r}; name each layer once"
                )
            seen[layer] = key
        pairs.append((layers, _int(ctx, n, f"{path}.{key}", 1)))
    return rest, tuple(pairs)


def _command_arm(ctx: _Ctx, name: str, b: dict) -> Arm:
    path = f"arms.{name}"
    command = _str_list(ctx, b["command"], f"{path}.command")
    cwd = b.get("cwd")
    if cwd is not None and not isinstance(cwd, str):
        raise ctx.fail(f"{path}.cwd", f"expected a folder path, got {_describe(cwd)}")
    env = _mapping(ctx, b.get("env") or {}, f"{path}.env")
    for key, v in env.items():
        if not isinstance(key, str) or isinstance(v, (Mapping, list)) or v is None:
            raise ctx.fail(f"{path}.env.{key}", f"expected a text value, got {_describe(v)}")
    repeats = None if b.get("repeats") is None else _int(ctx, b["repeats"], f"{path}.repeats", 1)
    env_s = {k: (str(v).lower() if isinstance(v, bool) else str(v)) for k, v in env.items()}
    return Arm(name=name, command=command, cwd=cwd, env=env_s, repeats=repeats)


def _grid(
    ctx: _Ctx, value: Any, path: str, over: _Over, removed: dict[str, tuple[int, ...]]
) -> tuple[tuple[tuple[str, tuple[Any, ...]], ...], dict[str, tuple[int, ...]]]:
    """The arm's (knob, values) pairs, each edit of a layer list resolved over ``over`` (the arm's set
    on the spec's), and the layer each shorthand value sweeps, per knob (``Arm.grid_layers``); the layers
    an edit removes are added to ``removed``."""
    knobs = _knob_map(ctx, value, path)
    if not knobs:
        raise ctx.fail(path, "empty; give {knob: [values]}")
    out, swept = [], {}
    for knob, values in knobs.items():
        vals, where, layers = _grid_values(ctx, values, f"{path}.{knob}")
        flat: list[Any] = []
        seen: dict[str, int] = {}
        for i, (v, at) in enumerate(zip(vals, where, strict=True)):
            key = yaml.safe_dump(v, default_flow_style=True)
            if key in seen:
                raise ctx.fail(f"{path}.{knob}[{i}]", f"duplicate value {_describe(v)}; each grid value once")
            seen[key] = i
            if _is_edit(knob, v):
                v, gone = _edit_layers(ctx, at, knob, v, over, shorthand=layers is not None)
                if gone:
                    removed[knob] = tuple(sorted({*removed.get(knob, ()), *gone}))
            _check_new_value(ctx, f"{path}.{knob}[{i}]", v, flat)
            flat.append(v)
        out.append((knob, tuple(flat)))
        if layers is not None and len(layers) > 1:  # a grid of one point sweeps nothing
            swept[knob] = layers
    return tuple(out), swept


def _check_new_value(ctx: _Ctx, path: str, value: Any, before: list[Any]) -> None:
    """A layer list equal to an earlier value's (``{add: [1]}`` over ``[]``, and ``[1]``) would be one run
    twice: refused, naming the earlier value. (Values written alike are refused before they resolve.)"""
    if not isinstance(value, list):
        return
    same = next((j for j, w in enumerate(before) if isinstance(w, list) and _same_list(w, value)), None)
    if same is not None:
        raise ctx.fail(
            path, f"makes {_layers_text(tuple(value))}, as value {same} does; each grid value once"
        )


def _same_list(a: list, b: list) -> bool:
    return json.dumps(a, default=str) == json.dumps(b, default=str)  # [1] and [true] stay apart


def _grid_values(
    ctx: _Ctx, value: Any, path: str
) -> tuple[tuple[Any, ...], list[str], tuple[int, ...] | None]:
    """(values, the path to name in an error about each value, the layer each value sweeps when the
    layer-list shorthand made them, else None)."""
    if isinstance(value, Mapping):
        if any(k in EDIT_KEYS for k in value):
            raise ctx.fail(
                path,
                "an edit ({add: ...} or {remove: ...}) is one value; a grid takes a list of values, "
                'e.g. [{add: [3]}, {add: [5]}], or {add_each: "3,5"}',
            )
        return _each_layer(ctx, dict(value), path)
    if not isinstance(value, list) or not value:
        raise ctx.fail(
            path, f"expected a non-empty list of values or {{each_layer: RANGE}}, got {_describe(value)}"
        )
    return tuple(value), [f"{path}[{i}]" for i in range(len(value))], None


def _each_layer(ctx: _Ctx, m: dict, path: str) -> tuple[tuple[Any, ...], list[str], tuple[int, ...] | None]:
    """``{each_layer: R}`` -> [[l] ...]; with ``with: W`` -> [sorted(W + [l]) ...] (layers in W skipped);
    with ``value: v`` -> [{l: v} ...]. ``add_each`` / ``remove_each`` make the edits ``{add: [l]}`` /
    ``{remove: [l]}`` instead (with ``with: W``: of W and l). Also returns each list's layer ``l`` (None
    for ``value``: its points are values of a per-layer knob, not layer lists)."""
    _mapping(ctx, m, path, EACH_LAYER_KEYS)
    forms = [f for f in EACH_LAYER_FORMS if f in m]
    if not forms:
        raise ctx.fail(
            path,
            'a grid mapping needs each_layer, add_each or remove_each: RANGE (e.g. "0-11"); '
            "or give a list of values",
        )
    if len(forms) > 1:
        raise ctx.fail(f"{path}.{forms[1]}", f"given together with {forms[0]}; use one of them")
    form = forms[0]
    if "with" in m and "value" in m:
        raise ctx.fail(
            f"{path}.value",
            "given together with 'with'; use one: with (layer lists) or value ({layer: value})",
        )
    if "value" in m and form != "each_layer":
        raise ctx.fail(
            f"{path}.value",
            f"{form} edits a layer list; for {{layer: value}} points use each_layer with value",
        )
    layers = _parse_layers(ctx, m[form], f"{path}.{form}")
    where = f"{path}.{form}"
    if "value" in m:
        return tuple({layer: copy.deepcopy(m["value"])} for layer in layers), [where] * len(layers), None
    extra = m.get("with", [])
    if not isinstance(extra, list) or any(isinstance(x, bool) or not isinstance(x, int) for x in extra):
        raise ctx.fail(f"{path}.with", f"expected a list of layer indices like [0], got {_describe(extra)}")
    swept = tuple(layer for layer in layers if layer not in extra)
    lists = [sorted(set(extra) | {layer}) for layer in swept]
    if form != "each_layer":
        lists = [{form.removesuffix("_each"): x} for x in lists]
    return tuple(lists), [where] * len(lists), swept


# ---------------------------------------------------------------------------------------------
# Edits of inherited layer lists: {add: [...], remove: [...]} over what the level below resolves to.


class _Over:
    """What a level of knobs is written over: the preset and the overrides under it. The config they
    resolve to is built once, when an edit needs the inherited list (``path`` names the level whose
    ``written`` keys would be at fault)."""

    def __init__(self, ctx: _Ctx, path: str, preset: str, overrides: dict, written: tuple[str, ...] = ()):
        self.ctx, self.path, self.preset, self.overrides, self.written = ctx, path, preset, overrides, written
        self._config: Any = None

    def config(self) -> Any:
        if self._config is None:
            self._config = _resolve_at(self.ctx, self.path, self.preset, self.overrides, self.written)
        return self._config


def layer_list_knobs() -> tuple[str, ...]:
    """The knobs that are lists of layer indices (the trainer's ``layer_set`` kind): what add/remove edit."""
    from trainer.config import KNOBS

    return tuple(sorted(k.name for k in KNOBS if k.kind == "layer_set"))


def _is_per_layer(knob: str) -> bool:
    """A knob of one value per layer (``mlp_kind``, ``attn_paths``, ...): it also takes ``{layer: value}``."""
    from trainer.config import KNOBS, PER_LAYER_KINDS

    return any(k.name == knob and k.kind in PER_LAYER_KINDS for k in KNOBS)


def _is_edit(knob: str, value: Any) -> bool:
    """A mapping naming add/remove (on another knob too: an edit on the wrong knob), or one written for a
    layer list with a key that is not a layer index (a misspelt edit). ``{3: true}`` on a layer list is
    not an edit: the registry says what a layer list takes. ``{}`` there is an empty edit."""
    if not isinstance(value, Mapping):
        return False
    if any(k in EDIT_KEYS for k in value):
        return True
    if knob not in layer_list_knobs():
        return False
    return not value or any(isinstance(k, bool) or not isinstance(k, int) for k in value)


def _flatten_level(
    ctx: _Ctx, path: str, over: _Over, level: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, tuple[int, ...]]]:
    """``level`` with each edit resolved to the list it makes over ``over`` and the level's own other
    values (key order kept), and the layers its edits remove, per knob."""
    edits = [k for k, v in level.items() if _is_edit(k, v)]
    if not edits:
        return dict(level), {}
    plain = {k: v for k, v in level.items() if k not in edits}
    under = _Over(ctx, path, over.preset, {**over.overrides, **plain}, tuple(plain))
    out, removed = {}, {}
    for knob, value in level.items():
        if knob in edits:
            out[knob], gone = _edit_layers(ctx, f"{path}.{knob}", knob, value, under)
            if gone:
                removed[knob] = gone
        else:
            out[knob] = value
    return out, removed


def _edit_layers(
    ctx: _Ctx, path: str, knob: str, edit: Any, over: _Over, shorthand: bool = False
) -> tuple[list[int], tuple[int, ...]]:
    """(the layer list ``edit`` makes of the inherited one, the layers it removes). ``path`` is where
    the edit was written; with ``shorthand`` (an edit a grid's ``add_each`` / ``remove_each`` made) that
    path is named as it is, not with ``.add`` / ``.remove`` after it."""
    if knob not in layer_list_knobs():
        raise ctx.fail(
            path,
            f"add/remove edit a layer list ({', '.join(layer_list_knobs())}); "
            f"{knob} takes a full value{' or {layer: value}' if _is_per_layer(knob) else ''}",
        )
    m = _mapping(ctx, edit, path, EDIT_KEYS)
    if not m:
        raise ctx.fail(path, "empty edit; give add: [layers] and/or remove: [layers]")
    at = {key: path if shorthand else f"{path}.{key}" for key in EDIT_KEYS}
    cfg = over.config()
    inherited = tuple(getattr(cfg, knob))
    add = _edit_part(ctx, at["add"], m["add"], cfg.num_layers) if "add" in m else ()
    remove = _edit_part(ctx, at["remove"], m["remove"], cfg.num_layers) if "remove" in m else ()
    have = f"the inherited {knob} {_layers_text(inherited)}"
    both = sorted(set(add) & set(remove))
    if both:
        raise ctx.fail(path, f"layer {both[0]} is both added and removed; give it in one of them")
    hint = " of the range" if shorthand else ""
    for layer in add:
        if layer in inherited:
            raise ctx.fail(at["add"], f"layer {layer} is already in {have}; leave it out{hint}")
    for layer in remove:
        if layer not in inherited:
            raise ctx.fail(at["remove"], f"layer {layer} is not in {have}; nothing to remove")
    return sorted((set(inherited) | set(add)) - set(remove)), tuple(remove)


def _edit_part(ctx: _Ctx, path: str, value: Any, num_layers: int) -> tuple[int, ...]:
    layers = _parse_layers(ctx, value, path)
    for layer in layers:
        if layer >= num_layers:
            raise ctx.fail(path, f"layer {layer} out of range 0..{num_layers - 1}")
    return layers


def _layers_text(layers: tuple[int, ...]) -> str:
    return "[" + ", ".join(str(x) for x in layers) + "]"


def _parse_layers(ctx: _Ctx, value: Any, path: str) -> tuple[int, ...]:
    """A layer range: ``"0-11"``, ``"0,6,11"``, ``"1-3,7"``, a YAML list of ints, or one int."""
    bad = f'{_describe(value)} is not a layer range; use "0-11", "0,6,11" or [0, 6, 11]'
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    if isinstance(value, str):
        value = _range_items(value)
        if value is None:
            raise ctx.fail(path, bad)
    if (
        not isinstance(value, list)
        or not value
        or any(isinstance(x, bool) or not isinstance(x, int) or x < 0 for x in value)
    ):
        raise ctx.fail(path, bad)
    return tuple(dict.fromkeys(value))


def _range_items(text: str) -> list[int] | None:
    out: list[int] = []
    for part in text.split(","):
        m = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if not m:
            return None
        lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
        if hi < lo:
            return None
        out.extend(range(lo, hi + 1))
    return out


# ---------------------------------------------------------------------------------------------
# Knob values: checked by the trainer's registry, at the path where each value was written.


def grid_points(arm: Arm) -> list[dict[str, Any]]:
    """The arm's grid points in spec order (the last knob varies fastest); [{}] without a grid."""
    points: list[dict[str, Any]] = [{}]
    for knob, values in arm.grid:
        points = [{**p, knob: v} for p in points for v in values]
    return points


def _resolve_at(ctx: _Ctx, path: str, preset: str, overrides: dict, written: tuple[str, ...] = ()) -> Any:
    """Resolve through the trainer's registry; a message about a knob in ``written`` (the keys
    written at ``path``) points at that key: ``trainer.set.steps: -3 must be >= 1``."""
    from trainer.config import ConfigError, resolve

    try:
        return resolve(preset, overrides)
    except ConfigError as exc:
        msg = str(exc)
        knob, sep, rest = msg.partition(": ")
        if not (sep and knob in written):
            raise ctx.fail(path, msg) from None
        at = path if path.endswith("]") else f"{path}.{knob}"  # a grid path already names its knob
        raise ctx.fail(at, rest) from None


def _check_knobs(ctx: _Ctx, preset: str, trainer_set: dict, arms: tuple[Arm, ...]) -> None:
    """Every arm's knobs over ``trainer_set`` (checked when the trainer section was read)."""
    for arm in arms:
        if arm.is_command:
            _check_trainer_command(ctx, arm)
            continue
        base = {**trainer_set, **arm.set}
        _resolve_at(ctx, f"arms.{arm.name}.set", preset, base, tuple(arm.set))
        for knob, values in arm.grid:
            for i, v in enumerate(values):
                _resolve_at(ctx, f"arms.{arm.name}.grid.{knob}[{i}]", preset, {**base, knob: v}, (knob,))
        if len(arm.grid) > 1:
            for point in grid_points(arm):
                _resolve_at(ctx, f"arms.{arm.name}.grid {_describe(point)}", preset, {**base, **point})


def trainer_command_args(command: tuple[str, ...]) -> tuple[str, ...] | None:
    """The trainer's own arguments when ``command`` runs our trainer (``python -m trainer ...`` or
    ``torchrun ... -m trainer ...``), else None."""
    argv = list(command)
    for i in range(len(argv) - 1):
        if argv[i] == "-m" and argv[i + 1] == "trainer":
            launcher = Path(argv[0]).name
            if launcher.startswith("python") or launcher == "torchrun":
                return tuple(argv[i + 2 :])
    return None


def parse_trainer_args(args: tuple[str, ...]) -> tuple[str, dict[str, Any]]:
    """(preset, overrides) from trainer arguments (``--preset P``, ``--set K=V``); raises ConfigError."""
    from trainer.config import DEFAULT_PRESET, ConfigError, parse_set

    preset, sets = DEFAULT_PRESET, []
    it = iter(args)
    for a in it:
        if a == "--preset" or a == "--set":
            nxt = next(it, None)
            if nxt is None:
                raise ConfigError(f"{a} needs a value")
            preset, sets = (nxt, sets) if a == "--preset" else (preset, [*sets, nxt])
        elif a.startswith("--preset="):
            preset = a.split("=", 1)[1]
        elif a.startswith("--set="):
            sets.append(a.split("=", 1)[1])
    return preset, parse_set(sets)


def _check_trainer_command(ctx: _Ctx, arm: Arm) -> None:
    """A command arm that runs our trainer gets its --preset/--set checked like a trainer arm."""
    from trainer.config import ConfigError, resolve

    args = trainer_command_args(arm.command)
    if args is None:
        return
    try:
        preset, overrides = parse_trainer_args(args)
        if "seed" in overrides:
            raise ConfigError("seed: " + _RESERVED_KNOBS["seed"])
        resolve(preset, overrides)
    except ConfigError as exc:
        raise ctx.fail(f"arms.{arm.name}.command", str(exc)) from None
