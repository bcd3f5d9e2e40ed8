"""The typed events between a block's worker and the driver: fields, wire form, Ray's pickling."""

from __future__ import annotations

import pickle

import pytest

from orchestrator import events
from orchestrator.events import BlockLost, BlockStart, CachePacked, RunEnd, RunStart, Step, coerce, from_wire


def test_an_event_is_typed_and_reads_as_its_wire_dict():
    e = RunStart("r1", 2, node_id="n1", compile_cache="warm")
    assert (e.run_id, e.attempt, e.node_id, e.compile_cache) == ("r1", 2, "n1", "warm")
    assert e == {"type": "run_start", "run_id": "r1", "attempt": 2, "node_id": "n1", "compile_cache": "warm"}
    assert e["attempt"] == e.attempt and e.get("step") is None and "run_id" in e
    with pytest.raises(TypeError, match="immutable"):
        e["attempt"] = 3
    with pytest.raises(AttributeError):
        e.attempt = 3  # frozen


def test_events_survive_pickling_as_ray_sends_them():
    for e in (RunEnd({"run_id": "r", "status": "ok"}, [{"step": 1}], "log\n"), BlockLost("node died"),
              BlockStart("n", "h", ["0", "1"]), Step("r", 5, 10, 3.25), CachePacked(b"tar")):  # fmt: skip
        again = pickle.loads(pickle.dumps(e))
        assert type(again) is type(e) and again == e and dict(again) == dict(e)


def test_from_wire_types_a_workers_dict_and_refuses_what_it_does_not_know():
    e = from_wire({"type": "run", "row": {"run_id": "r"}, "steps": [], "log": "", "extra": 1})
    assert isinstance(e, RunEnd) and e.row == {"run_id": "r"} and "extra" not in e
    assert from_wire(e) is e
    assert isinstance(from_wire({"type": "block_end"}), events.BlockEnd)
    assert from_wire({"type": "block_lost"}).error == "block lost"
    with pytest.raises(RuntimeError, match="unknown event from a block: 'gossip'"):
        from_wire({"type": "gossip"})
    with pytest.raises(RuntimeError, match="unknown event from a block: 'bytes'"):
        from_wire(b"raw")
    assert coerce("run_start", {"run_id": "r", "attempt": 1}) == RunStart("r", 1)
    assert coerce("message", None) is None


def test_every_kind_has_one_class():
    assert sorted(events.KINDS) == sorted(
        ["block_start", "preflight_failed", "run_start", "step", "attempt", "run", "cache", "cache_next",
         "block_end", "block_lost", "block_cancelled"]
    )  # fmt: skip
    assert all(cls.kind == kind for kind, cls in events.KINDS.items())
