"""A configuration's difference from the baseline arm, knob by knob, as short stable text.

`knob_diff({"attn_off": [7], ...}, {"attn_off": [3], ...})` is `["attn_off: [7] -> [3]"]`: what
`ablate run --dry-run` shows under each arm and what the report names each configuration by, so an
arm that also undoes something of the baseline (a per-layer list given in full) says so where it is read.
`layer_axis` is the one guess, for the plan and the report alike, of the layer each value of a knob
swept a layer at a time sweeps. Inputs are resolved knob values (a run's `params`: every knob,
per-layer knobs as lists of num_layers entries). Standard library only: the dry-run runs where pandas
and numpy may be missing.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

IGNORED = frozenset({"seed"})
"""Knobs that differ per replicate by design (the seed comes from the run id), never a difference."""

IMPLIED_BY = {"mlp_paths": "mlp_off", "attn_paths": "attn_off"}
"""A layer without an MLP (attention) has 0 paths there: a change the `*_off` list already shows."""


def value_text(value: Any) -> str:
    """A knob value as it reads in a diff: `[0, 3]`, `null`, `true`, `glu`; `-` for a per-layer null."""
    if isinstance(value, list):
        return "[" + ", ".join("-" if v is None else value_text(v) for v in value) + "]"
    if isinstance(value, str):
        return value
    return json.dumps(value)


def layer_ranges(layers: Sequence[int]) -> str:
    """Sorted layers as ranges: [0, 1, 2, 5, 7, 8] -> "0-2,5,7-8"."""
    parts: list[str] = []
    for x in layers:
        if parts and x == int(parts[-1].rpartition("-")[2]) + 1:
            parts[-1] = f"{parts[-1].partition('-')[0]}-{x}"
        else:
            parts.append(str(x))
    return ",".join(parts)


def knob_diff(base: dict[str, Any], other: dict[str, Any]) -> list[str]:
    """One text per knob whose value differs, sorted by knob name: `steps: 1670 -> 1705`,
    `attn_off: [7] -> [3]`, `mlp_kind: {6: relu2 -> double}` (per-layer lists: the layers that
    changed), `mlp_kind: relu2 -> glu in all 12 layers`. A knob missing on one side reads `null`."""
    layers = other.get("num_layers") if base.get("num_layers") == other.get("num_layers") else None
    out = []
    for knob in sorted(set(base) | set(other)):
        old, new = base.get(knob), other.get(knob)
        if knob in IGNORED or _same(old, new):
            continue
        text = _per_layer(knob, old, new, layers, base, other)
        if text is None:
            text = f"{value_text(old)} -> {value_text(new)}"
        if text:
            out.append(f"{knob}: {text}")
    return out


def diff_text(base: dict[str, Any], other: dict[str, Any]) -> str:
    """`knob_diff` joined by ", ", or "same as the baseline"."""
    return ", ".join(knob_diff(base, other)) or "same as the baseline"


def _same(a: Any, b: Any) -> bool:
    if type(a) is type(b):
        return a == b  # without JSON: a grid of 10,000 points compares ~70 knobs each
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)  # 1 and 1.0 differ


def _per_layer(knob: str, old: Any, new: Any, layers: int | None, base: dict, other: dict) -> str | None:
    """The per-layer view of two lists of one entry per layer; "" when the `*_off` change already says
    it all; None when the values are not two such lists (the caller shows them whole)."""
    if not (isinstance(old, list) and isinstance(new, list) and layers and len(old) == len(new) == layers):
        return None
    changed = [i for i, (a, b) in enumerate(zip(old, new, strict=True)) if not _same(a, b)]
    off = IMPLIED_BY.get(knob)
    if off is not None:
        moved = _toggled(base.get(off), other.get(off))
        changed = [i for i in changed if not (i in moved and {old[i], new[i]} == {0, 1})]
        if not changed:
            return ""
    olds, news = {_key(old[i]) for i in changed}, {_key(new[i]) for i in changed}
    if len(changed) == layers and len(olds) == len(news) == 1:
        return f"{_entry(old[0])} -> {_entry(new[0])} in all {layers} layers"
    return "{" + ", ".join(f"{i}: {_entry(old[i])} -> {_entry(new[i])}" for i in changed) + "}"


def _toggled(a: Any, b: Any) -> set[int]:
    """Layers in one of two layer lists and not the other."""
    return _layer_set(a) ^ _layer_set(b)


def _layer_set(value: Any) -> set[int]:
    return {x for x in value if isinstance(x, int)} if isinstance(value, list) else set()


def _key(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def _entry(value: Any) -> str:
    return "-" if value is None else value_text(value)


def canonical(value: Any) -> str:
    """A value as canonical JSON (sorted keys): the key `layer_axis` gives each value by."""
    return json.dumps(value, sort_keys=True, default=str)


def layer_axis(values: Sequence[Any]) -> dict[str, int] | None:
    """{value: the layer it sweeps} (values as `canonical` JSON) for a knob swept one layer at a time,
    else None: every value a list of layer indices that differs from what all of them share by one layer
    (`{each_layer: "0-11"}` is [[0], ..., [11]]; with `with: [0]`, [[0, 1], ..., [0, 11]]; a list grid of
    such lists alike; a value may come more than once, as in one per run). One value sweeps nothing."""
    lists = [v for v in values if _is_layers(v)]
    if len(lists) < len(values) or len({canonical(v) for v in lists}) < 2:
        return None
    common = set.intersection(*(set(v) for v in lists))
    extra = [sorted(set(v) - common) for v in lists]
    if any(len(e) != 1 for e in extra):
        return None
    return {canonical(v): e[0] for v, e in zip(lists, extra, strict=True)}


def _is_layers(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(x, int) and not isinstance(x, bool) for x in value)
