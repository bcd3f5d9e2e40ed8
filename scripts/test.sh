#!/usr/bin/env bash
# The default test tier (under 10 minutes on 2 cores). Extra args go to pytest, e.g. `-m ci` for the heavy tier.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec python3 -m pytest -q "$@"
