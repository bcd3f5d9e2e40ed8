"""Property tests of the spec parser: any input gives a Spec or a one-line SpecError, never another
exception, and names that become folder names (sweep, profile, arm) are always safe.

Each property is a plain function over drawn values, listed in PROPERTIES with its strategies: the
tests below run them with a few examples each, `benchmarks/reliability.py` with thousands.
"""

import re
import tempfile
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.spec import SpecError, load_spec, parse_spec

KEYS = ["name", "kind", "trainer", "resources", "repeats", "runs_per_arm", "order", "block_size", "blocks",
        "timeout_min", "timeout_s", "retries", "target_val_loss", "arms", "baseline", "profiles", "seed",
        "preset", "set", "grid", "command", "mlp_off", "steps", "gpus_per_run", "each_layer", "with",
        "cpu", "baseline", "mlp0", "data_dir", "cwd", "env", "../x", "a/b", "\x00", "a\nb",
        "\x1b[2J"]  # fmt: skip
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 20), st.floats(allow_nan=True), st.sampled_from(KEYS), st.text()
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(KEYS), inner, max_size=4)
    ),
    max_leaves=12,
)
specs = st.dictionaries(st.sampled_from(KEYS), values, max_size=8)
SAFE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
# names as a YAML key can hold them: any text, near misses of the safe alphabet, and non-strings
NEAR_MISSES = ["..", "a..b", ".hidden", "-x", "a/b", "a\\b", "/abs", "a b", "a\nb", "a\x00", "\x1b[31m", "é",
               "a\u2028b", "x" * 300, "CON", "a.", "0"]  # fmt: skip
names = st.one_of(
    st.text(min_size=1, max_size=20),
    st.from_regex(r"[A-Za-z0-9._/\\ -]{1,12}", fullmatch=True),
    st.sampled_from(NEAR_MISSES),
    st.integers(-5, 5),
    st.booleans(),
    st.none(),
)
BASE = {"trainer": {"preset": "tiny"}, "resources": {"gpus_per_run": 0}}


def _safe(name) -> bool:
    return isinstance(name, str) and bool(SAFE.fullmatch(name)) and ".." not in name


def _check(spec_or_error):
    if isinstance(spec_or_error, SpecError):
        text = str(spec_or_error)
        assert "\n" not in text and text.isprintable(), repr(text)  # one line, no control characters
        return
    spec = spec_or_error
    for name in (spec.name, *(a.name for a in spec.arms), *([spec.profile] if spec.profile else [])):
        assert _safe(name), name


def _parse(data, profile=None):
    try:
        return parse_spec(data, "fuzz.yaml", profile=profile)
    except SpecError as e:
        return e


def prop_any_mapping(data, profile):
    _check(_parse(data, profile))


_TMP: list[tempfile.TemporaryDirectory] = []


def prop_any_text_file(text):
    if not _TMP:
        _TMP.append(tempfile.TemporaryDirectory(prefix="ablate-fuzz-"))
    path = Path(_TMP[0].name) / "spec.yaml"
    path.write_text(text)
    try:
        _check(load_spec(path))
    except SpecError as e:
        _check(e)


def prop_sweep_name(name):
    result = _parse({**BASE, "name": name, "arms": {"b": {}}})
    _check(result)
    if not isinstance(result, SpecError):
        assert _safe(result.name)


def prop_profile_name(name, select):
    """A profile's name becomes part of the sweep's folder name (`<name>-<profile>`)."""
    result = _parse(
        {**BASE, "name": "x", "arms": {"b": {}}, "profiles": {name: {}}},
        profile=name if select and isinstance(name, str) else None,
    )
    _check(result)
    if not isinstance(result, SpecError):
        assert _safe(name) and _safe(result.name)


def prop_arm_name(name):
    result = _parse({**BASE, "name": "x", "arms": {name: {}}})
    _check(result)
    if not isinstance(result, SpecError):
        assert [a.name for a in result.arms] == [name] and _safe(name)


PROPERTIES = {
    "spec: any mapping": ((specs, st.sampled_from([None, "cpu"])), prop_any_mapping),
    "spec: any YAML text": ((st.text(max_size=200),), prop_any_text_file),
    "spec: sweep names": ((names,), prop_sweep_name),
    "spec: profile names": ((names, st.booleans()), prop_profile_name),
    "spec: arm names": ((names,), prop_arm_name),
}
"""name -> (strategies, property): what benchmarks/reliability.py runs with more examples."""


def _test(name: str, examples: int):
    strategies, prop = PROPERTIES[name]
    return settings(max_examples=examples, deadline=None, suppress_health_check=[HealthCheck.too_slow])(
        given(*strategies)(prop)
    )


test_any_mapping_gives_a_spec_or_one_line_error = _test("spec: any mapping", 150)
test_any_text_file_gives_a_spec_or_one_line_error = _test("spec: any YAML text", 60)
test_sweep_names_that_are_not_safe_folder_names_are_refused = _test("spec: sweep names", 80)
test_profile_names_that_are_not_safe_folder_names_are_refused = _test("spec: profile names", 80)
test_arm_names_that_are_not_safe_folder_names_are_refused = _test("spec: arm names", 80)


def test_a_python_object_tag_is_not_executed(tmp_path):
    path = tmp_path / "evil.yaml"
    path.write_text("name: !!python/object/apply:os.system ['touch pwned']\narms: {b: {}}\n")
    try:
        load_spec(path)
    except SpecError as e:
        assert "\n" not in str(e)
    assert not (tmp_path / "pwned").exists() and not __import__("os").path.exists("pwned")
    assert yaml.safe_load("a: 1") == {"a": 1}


def test_a_long_unprintable_name_is_reported_on_one_line():
    """Found by the fuzzer: YAML wrapped long escaped values onto two lines of the error."""
    bad = "0" + "\x1f" * 4 + "\x06" * 2 + "\x7f" * 4 + "\U00010000" * 4 + "0"
    result = _parse({"name": bad})
    assert isinstance(result, SpecError) and "\n" not in str(result) and "is not a safe name" in str(result)


def test_a_key_with_a_line_break_or_escape_is_reported_on_one_printable_line():
    """Found by the profile/arm-name properties: the key is part of the error's field path, and a key with
    a line break (or a terminal escape) split the one-line error or reached the terminal raw."""
    for data in (
        {**BASE, "name": "x", "arms": {"a\nb": {}}},
        {**BASE, "name": "x", "arms": {"b": {}}, "profiles": {"c\x1b[2Jd": {}}},
        {**BASE, "name": "x", "arms": {"b": {"set": {"k\u2028v": 1}}}},
        {"na\nme": "x"},
    ):
        err = _parse(data)
        assert isinstance(err, SpecError)
        assert str(err).isprintable() and ("\\n" in str(err) or "\\x1b" in str(err) or "\\u2028" in str(err))
