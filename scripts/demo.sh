#!/usr/bin/env bash
# The main job: a demo sweep (short A/B + drop-one-MLP grid, tiny model, CPU) on an embedded
# local Ray, ending in results/demo/report.md, report.html and figures/. Extra args go to `ablate run`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec ablate run sweeps/demo.yaml "$@"
