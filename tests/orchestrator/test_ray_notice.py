"""Ray's 'Token authentication is enabled' notice stays off the console of `ablate run` (issue 17.6):
filtered while the embedded Ray starts, nothing else of Ray's logging and nothing of its auth touched."""

from __future__ import annotations

import logging
import os

from orchestrator.cli import main
from tests.orchestrator.helpers import write_spec

RAY_AUTH_LOGGER = "ray._private.authentication.authentication_token_setup"


def test_the_embedded_start_drops_the_token_notice_only(monkeypatch):
    import ray
    from ray._private import ray_constants

    from orchestrator import executor

    monkeypatch.setenv(
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", os.environ.get("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "1")
    )
    monkeypatch.setattr(ray_constants, "ENABLE_RAY_CLUSTER", ray_constants.ENABLE_RAY_CLUSTER)
    logger = logging.getLogger(RAY_AUTH_LOGGER)

    def fake_init(**kwargs):  # what Ray 2.60's ray.init logs when it starts a cluster, and another warning
        logger.warning(f"{executor.TOKEN_NOTICE}. Set the mode to disabled to opt out.")
        logger.warning("some other warning of Ray's")

    monkeypatch.setattr(ray, "init", fake_init)
    seen = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())
    logger.addHandler(handler)  # on the logger itself: Ray's loggers need not propagate to the root
    try:
        executor.start_local_ray(num_cpus=1)
        assert seen == ["some other warning of Ray's"]
        logger.warning(f"{executor.TOKEN_NOTICE}.")  # after the start: the filter is gone again
        assert seen[1:] == [f"{executor.TOKEN_NOTICE}."] and not logger.filters
    finally:
        logger.removeHandler(handler)


def test_ablate_run_prints_no_token_notice(tmp_path, capsys, monkeypatch):
    # Ray sets RAY_AUTH_MODE=token in this process on its first start and says nothing on later ones:
    # unset, as on a fresh `ablate run`, so the notice comes (and must be filtered) whatever ran before
    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    argv = ["run", str(write_spec(tmp_path)), "--results", str(tmp_path / "r"), "--plain", "--no-report"]
    assert main([*argv, "--num-cpus", "2"]) == 0
    out, err = capsys.readouterr()
    assert "sweep done: 4 ok" in out
    assert "Token authentication" not in out + err
