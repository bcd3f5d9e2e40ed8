"""Property tests of the spec parser: any input gives a Spec or a one-line SpecError, never another
exception, and names that become folder names are always safe."""

import re

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.spec import SpecError, load_spec, parse_spec

KEYS = ["name", "kind", "trainer", "resources", "repeats", "runs_per_arm", "order", "block_size", "blocks",
        "timeout_min", "timeout_s", "retries", "target_val_loss", "arms", "baseline", "profiles", "seed",
        "preset", "set", "grid", "command", "mlp_off", "steps", "gpus_per_run", "each_layer", "with",
        "cpu", "baseline", "mlp0", "data_dir", "cwd", "env", "../x", "a/b", "\x00"]  # fmt: skip
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


def _check(spec_or_error):
    if isinstance(spec_or_error, SpecError):
        assert "\n" not in str(spec_or_error)
        return
    spec = spec_or_error
    for name in (spec.name, *(a.name for a in spec.arms)):
        assert SAFE.fullmatch(name) and ".." not in name


def _parse(data, profile=None):
    try:
        return parse_spec(data, "fuzz.yaml", profile=profile)
    except SpecError as e:
        return e


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(specs, st.sampled_from([None, "cpu"]))
def test_any_mapping_gives_a_spec_or_one_line_error(data, profile):
    _check(_parse(data, profile))


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=200))
def test_any_text_file_gives_a_spec_or_one_line_error(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("fuzz") / "spec.yaml"
    path.write_text(text)
    try:
        _check(load_spec(path))
    except SpecError as e:
        _check(e)


@settings(max_examples=80, deadline=None)
@given(st.text(min_size=1, max_size=20))
def test_sweep_names_that_are_not_safe_folder_names_are_refused(name):
    data = {"name": name, "trainer": {"preset": "tiny"}, "resources": {"gpus_per_run": 0}, "arms": {"b": {}}}
    result = _parse(data)
    if not isinstance(result, SpecError):
        assert SAFE.fullmatch(result.name) and ".." not in result.name and "/" not in result.name


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
