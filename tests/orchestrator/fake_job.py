"""A stand-in for the trainer in orchestrator tests: prints modded-nanogpt step lines, fails on demand.

    python fake_job.py [--steps N] [--sleep S] [--loss X] [--exit CODE] [--fail-once MARKER]
                       [--diverge] [--hang] [--unless PATH] [--child] [--pid-dir DIR [--tag NAME]]
                       [--write-cache] [--seed N --run-id ID --log-dir DIR]

--fail-once MARKER: exit 1 unless MARKER exists (and create it), so the first attempt fails and a
retry succeeds. --unless PATH: --exit and --hang hold only while PATH does not exist (a test
"repairs" a failing run by creating it, as a user fixes a full disk).
--child: start a grandchild that sleeps (tests that the whole group dies).
--pid-dir: write `<pid>` files there for the job and its grandchild, so tests can check with psutil;
with --tag NAME they hold `job NAME <start time>` / `child NAME` (which run a process belongs to).
--write-cache: put a file in $TORCHINDUCTOR_CACHE_DIR (a fake compile cache) and say whether one was there.
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--sleep", type=float, default=0.0)
    p.add_argument("--loss", type=float, default=3.25)
    p.add_argument("--exit", type=int, default=0)
    p.add_argument("--fail-once")
    p.add_argument("--diverge", action="store_true")
    p.add_argument("--hang", action="store_true")
    p.add_argument("--unless")
    p.add_argument("--child", action="store_true")
    p.add_argument("--pid-dir")
    p.add_argument("--tag")
    p.add_argument("--write-cache", action="store_true")
    p.add_argument("--seed", type=int)
    p.add_argument("--run-id")
    p.add_argument("--log-dir")
    return p.parse_args()


def record_pids(args) -> None:
    if not args.pid_dir:
        return
    d = Path(args.pid_dir)
    d.mkdir(parents=True, exist_ok=True)
    tag = f" {args.tag} {time.time():.6f}" if args.tag else ""
    (d / f"{os.getpid()}").write_text(f"job{tag}")
    if args.child:
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        (d / f"{child.pid}").write_text(f"child {args.tag}" if args.tag else "child")


def fake_cache(args) -> None:
    cache = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    if not (args.write_cache and cache):
        return
    path = Path(cache) / "fx" / "graph.bin"
    print(f"cache: {'hit' if path.exists() else 'miss'}", flush=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"compiled" * 16)


def main() -> int:
    args = parse()
    if args.unless and Path(args.unless).exists():
        args.exit, args.hang = 0, False
    record_pids(args)
    print(f"gpus: {os.environ.get('CUDA_VISIBLE_DEVICES', '')}", flush=True)
    fake_cache(args)
    if args.fail_once and not Path(args.fail_once).exists():
        Path(args.fail_once).write_text("failed once")
        print("crash: failing on purpose (first attempt)", flush=True)
        return 1
    metrics = None
    if args.run_id and args.log_dir:
        metrics = open(Path(args.log_dir) / f"{args.run_id}.metrics.jsonl", "w")  # noqa: SIM115
        metrics.write(json.dumps({"event": "start", "run_id": args.run_id, "seed": args.seed}) + "\n")
    n, t = args.steps, 0.0
    for step in range(n + 1):
        if args.hang and step == 1:
            time.sleep(600)
        time.sleep(args.sleep)
        t += max(args.sleep, 0.001) * 1000
        avg = t / max(step, 1)
        loss = args.loss + (n - step) * 0.1
        if args.diverge and step == 2:
            print(f"diverged: non-finite train loss at step {step}", flush=True)
            return 3
        if metrics:
            metrics.write(
                json.dumps({"event": "step", "step": step, "train_loss": loss + 0.05, "train_time_ms": t})
            )
            metrics.write("\n")
        if step in (0, n):
            print(
                f"step:{step}/{n} val_loss:{loss:.4f} train_time:{t:.0f}ms step_avg:{avg:.2f}ms", flush=True
            )
        else:
            print(f"step:{step}/{n} train_time:{t:.0f}ms step_avg:{avg:.2f}ms", flush=True)
    print("peak memory allocated: 10 MiB reserved: 20 MiB", flush=True)
    if metrics:
        end = {"event": "end", "status": "ok", "steps": n, "train_time_ms": t, "warmup_ms": 1500.0}
        end.update(val_ms=250.0, compile={"compile_s": 1.25, "frames": 2, "graphs": 2})
        metrics.write(json.dumps(end) + "\n")
        metrics.close()
    if args.exit:
        print(f"crash: exit {args.exit} on purpose", flush=True)
    return args.exit


if __name__ == "__main__":
    sys.exit(main())
