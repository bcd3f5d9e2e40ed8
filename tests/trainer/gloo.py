"""Two-process gloo tests: a free loopback port per attempt, and a clean exit of the workers."""

from __future__ import annotations

import os
import socket
import sys

import torch.multiprocessing as mp


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn_on_free_port(worker, args: tuple, nprocs: int = 2, tries: int = 3) -> None:
    """mp.spawn(worker, (port, *args)); a port taken between picking and binding (other tests' Ray
    or gloo) is retried with another, any other failure is raised."""
    for attempt in range(tries):
        try:
            mp.spawn(worker, args=(free_port(), *args), nprocs=nprocs, join=True)
            return
        except mp.ProcessRaisedException as e:
            if "address already in use" not in str(e).lower() or attempt == tries - 1:
                raise


def exit_now() -> None:
    """End a worker without interpreter teardown: now and then a native thread left by torch aborts
    the process at exit ("terminate called without an active exception", ~1 in 10 under pytest),
    after its results are written; that says nothing about the code under test."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
