#!/usr/bin/env bash
# Copy what the detached chain (benchmarks/h200_chain.sh) has so far into $OUT (at most 8 files):
# the summary JSON, the chain's logs, the runs' own output on the node, and the results folders.
#   bash benchmarks/h200_collect.sh /tmp/chain            # what the chain has so far
#   bash benchmarks/h200_collect.sh /tmp/chain --cache    # also the node's compile cache, for the next
#       session to start seeded instead of cold (~30 s instead of ~7.5 min at h200-mini): xz-packed as
#       compile-cache.tar.xz.part00, part01 (15 MiB each, at most two: $OUT takes 16 MiB a file); on
#       this machine `cat compile-cache.tar.xz.part* > data/h200-compile-cache.tar.xz` (docs/gpu.md)
set -u
W=${1:-/tmp/chain}
OUT=${OUT:?set OUT}
tail -n 8 "$W"/../chain.log 2>/dev/null
tail -n 4 "$W"/speed.log "$W"/textspeed.log "$W"/textseeds.log "$W"/h200_*.log 2>/dev/null
cp "$W/h200.json" "$W/compile_gap.json" "$W/h200_text.json" "$W/h200_text_seeds.json" "$OUT/" 2>/dev/null
[ -f "$W/pr117.profile.txt" ] && cp "$W/pr117.profile.txt" "$OUT/"
cp "$W"/../chain.log "$OUT/" 2>/dev/null
tar czf "$OUT/logs.tgz" -C "$W" --exclude='cache-*' --exclude='*.bin' --exclude=results --exclude=upstream \
    --exclude=upstream_train_gpt.py . 2>/dev/null
[ -d ~/.cache/ablate/runs ] && tar czf "$OUT/node-runs.tgz" -C ~/.cache/ablate runs
[ -d "$W/results" ] && tar czf "$OUT/results.tgz" -C "$W" results
if [ "${2:-}" = --cache ]; then
    # the node's cache (orchestrator/nodecache.py: <root>/<node>/{inductor,triton}), in the layout of the
    # shared folder's ablate-compile-cache.tar, so that unpacked there it seeds the next machine
    node=$(ls -d ~/.cache/ablate/compile/*/ 2>/dev/null | head -n 1)
    if [ -n "$node" ] && [ -d "$node/inductor" ]; then
        tar cf - -C "$node" inductor triton 2>/dev/null | xz -T0 -4 > /tmp/compile-cache.tar.xz
        size=$(stat -c %s /tmp/compile-cache.tar.xz)
        if [ "$size" -le $((30 * 1024 * 1024)) ]; then
            split -b 15M -d /tmp/compile-cache.tar.xz "$OUT/compile-cache.tar.xz.part"
            echo "compile cache of $node: $(du -sh "$node" | cut -f1) packed to $size bytes"
        else
            echo "compile cache of $node packs to $size bytes, over the 30 MiB two parts hold: not copied"
        fi
    else
        echo "no node compile cache under ~/.cache/ablate/compile"
    fi
fi
ls -la "$OUT"
