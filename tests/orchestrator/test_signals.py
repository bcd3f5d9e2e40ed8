"""SIGTERM / SIGHUP take Ctrl-C's path: an exception the driver's cancel path handles, exit 128 + n."""

import os
import signal

import pytest

from orchestrator import cli
from orchestrator.signals import Terminated, stop_signals_interrupt


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_stop_signal_raises_terminated_inside_and_handlers_come_back(signum):
    before = signal.getsignal(signum)
    with pytest.raises(Terminated) as caught, stop_signals_interrupt():
        os.kill(os.getpid(), signum)  # the handler runs as os.kill returns
        pytest.fail("the signal did not interrupt")
    assert caught.value.signum == signum and caught.value.exit_code == 128 + signum
    assert isinstance(caught.value, KeyboardInterrupt)  # the driver's Ctrl-C path catches it
    assert signal.getsignal(signum) == before


def test_cli_exits_128_plus_signal_with_one_line(monkeypatch, capsys):
    def stopped(_args):
        raise Terminated(signal.SIGTERM)

    monkeypatch.setattr(cli, "cmd_data", stopped)
    assert cli.main(["data", "synth"]) == 143
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["ablate: stopped by SIGTERM: running runs cancelled, finished results kept"]
