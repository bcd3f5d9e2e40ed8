"""A driver process for fault tests: joins a Ray cluster and runs a hand-built A/B plan of fake jobs.

    python sweep_script.py RESULTS_DIR ADDRESS N_BLOCKS SCRATCH [fake job args...]

Exits 130 on Ctrl-C (SIGINT) and 128 + n on SIGTERM / SIGHUP like `ablate run`; prints the driver's
plain progress lines.
"""

import sys
from pathlib import Path

from orchestrator.driver import ResultsLock, SweepDriver, SweepOptions
from orchestrator.executor import BlockContext, RayExecutor
from orchestrator.progress import PlainProgress
from orchestrator.signals import Terminated, stop_signals_interrupt
from tests.orchestrator.helpers import ab_plan


def main() -> int:
    results, address, n_blocks, scratch, *job_args = sys.argv[1:]
    plan = ab_plan(int(n_blocks), *job_args, gpus=8)
    executor = RayExecutor.start(address)
    ctx = BlockContext(scratch_root=scratch, use_compile_cache=False, grace_s=1.0)
    try:
        with ResultsLock(Path(results)):
            driver = SweepDriver(
                plan,
                Path(results),
                executor,
                ctx=ctx,
                options=SweepOptions(cancel_grace_s=10),
                progress=PlainProgress(),
            )
            with stop_signals_interrupt():
                driver.run()
    except Terminated as e:
        print(f"stopped by {e.name}", flush=True)
        return e.exit_code
    except KeyboardInterrupt:
        print("interrupted", flush=True)
        return 130
    finally:
        executor.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
