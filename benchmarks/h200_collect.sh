#!/usr/bin/env bash
# Copy what the detached chain (benchmarks/h200_chain.sh) has so far into $OUT (at most 8 files):
# the summary JSON, the chain's logs, the runs' own output on the node, and the results folders.
set -u
W=${1:-/tmp/chain}
OUT=${OUT:?set OUT}
tail -n 8 "$W"/../chain.log 2>/dev/null
tail -n 4 "$W"/speed.log "$W"/textspeed.log "$W"/h200_*.log 2>/dev/null
cp "$W/h200.json" "$W/compile_gap.json" "$W/h200_text.json" "$OUT/" 2>/dev/null
[ -f "$W/pr117.profile.txt" ] && cp "$W/pr117.profile.txt" "$OUT/"
cp "$W"/../chain.log "$OUT/" 2>/dev/null
tar czf "$OUT/logs.tgz" -C "$W" --exclude='cache-*' --exclude='*.bin' --exclude=results --exclude=upstream \
    --exclude=upstream_train_gpt.py . 2>/dev/null
[ -d ~/.cache/ablate/runs ] && tar czf "$OUT/node-runs.tgz" -C ~/.cache/ablate runs
[ -d "$W/results" ] && tar czf "$OUT/results.tgz" -C "$W" results
ls -la "$OUT"
