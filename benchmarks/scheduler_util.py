"""Scheduler utilisation: 40 jobs of `sleep 5 s`, 8 fake GPUs each, on 2 fake 8-GPU nodes (a Ray Cluster).

    python benchmarks/scheduler_util.py [--jobs 40] [--sleep 5] [--per-block 1]

Prints utilisation = total job time / (2 × makespan) (goal ≥ 0.95) and the overhead per job
(launch to exit minus the sleep). Each job is a real `run_attempt` subprocess launched by the real
driver and Ray executor; the makespan runs from the first submission to the last stored result.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from orchestrator.driver import SweepDriver, SweepOptions  # noqa: E402
from orchestrator.executor import BlockContext, RayExecutor  # noqa: E402
from orchestrator.runspec import Block, Plan, RunSpec  # noqa: E402


def sleep_plan(jobs: int, sleep_s: float, per_block: int) -> Plan:
    """`jobs` runs of `python -c 'sleep'`, `per_block` of them per 8-GPU block."""
    runs = [
        RunSpec(
            run_id=f"j{i:03d}",
            sweep="bench",
            arm="sleep",
            replicate=i,
            seed=i,
            command=("python", "-S", "-c", f"import time; time.sleep({sleep_s})"),
            gpus=8,
            block=i // per_block,
            order_index=i % per_block,
        )
        for i in range(jobs)
    ]
    blocks = tuple(
        Block(block_id=b, runs=tuple(r for r in runs if r.block == b), gpus=8)
        for b in sorted({r.block for r in runs})
    )
    return Plan(
        name="bench",
        kind="grid",
        blocks=blocks,
        baseline_arm="sleep",
        arms=("sleep",),
        target_val_loss=None,
        knob_types={},
    )


def start_cluster():
    """Two nodes of 8 fake GPUs (and 2 CPUs) each, on loopback."""
    import ray
    from ray._private import ray_constants
    from ray.cluster_utils import Cluster

    ray_constants.ENABLE_RAY_CLUSTER = False
    os.environ.pop("CUDA_VISIBLE_DEVICES", None)  # fake GPUs: Ray refuses them if this is ''
    cluster = Cluster(
        initialize_head=True, head_node_args={"num_cpus": 2, "num_gpus": 8, "node_ip_address": "127.0.0.1"}
    )
    cluster.add_node(num_cpus=2, num_gpus=8, node_ip_address="127.0.0.1")
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False)
    return cluster


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, default=40)
    ap.add_argument("--sleep", type=float, default=5.0, help="seconds each job sleeps")
    ap.add_argument("--per-block", type=int, default=1, help="jobs per block (back to back on one node)")
    args = ap.parse_args()
    cluster = start_cluster()
    executor = RayExecutor()
    with tempfile.TemporaryDirectory() as tmp:
        results = Path(tmp) / "res"
        plan = sleep_plan(args.jobs, args.sleep, args.per_block)
        ctx = BlockContext(scratch_root=tmp, use_compile_cache=False)
        t0 = time.monotonic()
        SweepDriver(plan, results, executor, ctx=ctx, options=SweepOptions(poll_s=0.05)).run()
        makespan = time.monotonic() - t0
        from analysis.store import read_runs

        runs = read_runs(results)
    executor.shutdown()
    import ray

    ray.shutdown()
    cluster.shutdown()
    walls = list(runs.wall_s)
    util = sum(walls) / (2 * makespan)
    over = [w - args.sleep for w in walls]
    print(
        f"jobs {len(walls)} (ok {int((runs.status == 'ok').sum())}), sleep {args.sleep:g} s, "
        "2 nodes × 8 fake GPUs"
    )
    print(f"makespan {makespan:.1f} s (ideal {args.jobs * args.sleep / 2:.1f} s)")
    print(f"utilisation {util:.3f} (goal >= 0.95; total job time {sum(walls):.1f} s / (2 × makespan))")
    print(
        f"overhead per job (launch to exit − sleep): median {statistics.median(over) * 1000:.0f} ms, "
        f"max {max(over) * 1000:.0f} ms"
    )
    sched = (makespan - args.jobs * statistics.mean(walls) / 2) / (args.jobs / 2)
    print(f"scheduling gap per job slot (makespan − busy time per node, per job): {sched * 1000:.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
