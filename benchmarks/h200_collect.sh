#!/usr/bin/env bash
# Copy what the detached chain (benchmarks/h200_chain.sh) has so far into $OUT (at most 8 files):
# the summary JSON, the chain's logs, the runs' own output on the node, and the results folders.
#   bash benchmarks/h200_collect.sh /tmp/chain            # what the chain has so far
#   bash benchmarks/h200_collect.sh /tmp/chain --cache    # also the node's compile cache, for the next
#       session to start seeded instead of cold (64 s instead of ~8 min at h200-mini): xz -6 packed as
#       compile-cache.tar.xz.part00, part01, ... (15 MiB each: $OUT takes 8 files of 16 MiB, 64 MiB in
#       all, and the parts get what the other files leave); on this machine
#       `cat compile-cache.tar.xz.part* > data/h200-compile-cache.tar.xz` (docs/gpu.md)
#   bash benchmarks/h200_collect.sh /tmp/chain --wait 520 [--cache]   # first wait until the chain has
#       ended (its log's `done` line) or 520 s have passed, whichever comes first: the last call of a
#       session ends as soon as the chain does
#   bash benchmarks/h200_collect.sh /tmp/chain --cache-only   # the cache alone, in all of $OUT: for a
#       cache that did not fit beside the other files (a call of its own after the last collect)
#   bash benchmarks/h200_collect.sh /tmp/chain --wait 540 --cache-if-left   # --cache only while a
#       sweep under $W/results has runs left (its status.json's state is not "finished"): a finished figure needs
#       no cache next time, and packing it costs a minute of the last call (decided on the machine,
#       since that call's command is written before its outcome is known)
set -u
W=${1:-/tmp/chain}
OUT=${OUT:?set OUT}
shift
wait_s=0
cache=0
only=0
while [ $# -gt 0 ]; do
    case "$1" in
        --cache) cache=1 ;;
        --cache-only) cache=1; only=1 ;;
        --cache-if-left) cache=2 ;;
        --wait) wait_s=${2:-}; shift ;;
        *) echo "h200_collect.sh: unknown argument $1 (use --cache, --cache-if-left, --cache-only, --wait SECONDS)" >&2; exit 2 ;;
    esac
    shift
done
case "$wait_s" in
    '' | *[!0-9]*) echo "h200_collect.sh: --wait takes whole seconds (e.g. --wait 540), got '$wait_s'" >&2; exit 2 ;;
esac
start=$SECONDS
until grep -q '\] done$' "$W"/../chain.log 2>/dev/null || [ $((SECONDS - start)) -ge "$wait_s" ]; do
    sleep 5
done
[ "$wait_s" -gt 0 ] && echo "waited $((SECONDS - start)) s for the chain"
if [ "$only" = 0 ]; then
    tail -n 8 "$W"/../chain.log 2>/dev/null
    tail -n 4 "$W"/speed.log "$W"/textspeed.log "$W"/textseeds.log "$W"/h200_*.log 2>/dev/null
    cp "$W/h200.json" "$W/compile_gap.json" "$W/h200_text.json" "$W/h200_text_seeds.json" "$OUT/" 2>/dev/null
    [ -f "$W/pr117.profile.txt" ] && cp "$W/pr117.profile.txt" "$OUT/"
    cp "$W"/../chain.log "$OUT/" 2>/dev/null
    tar czf "$OUT/logs.tgz" -C "$W" --exclude='cache-*' --exclude='*.bin' --exclude=results --exclude=upstream \
        --exclude=upstream_train_gpt.py . 2>/dev/null
    [ -d ~/.cache/ablate/runs ] && tar czf "$OUT/node-runs.tgz" -C ~/.cache/ablate runs
    [ -d "$W/results" ] && tar czf "$OUT/results.tgz" -C "$W" results
fi
if [ "$cache" = 2 ]; then
    if grep -Eqs '"state": "(partial|running|cancelled)"' "$W"/results/*/status.json; then
        cache=1
    else
        echo "no sweep under $W/results has runs left: the compile cache is not packed (--cache-if-left)"
    fi
fi
if [ "$cache" = 1 ]; then
    # the node's cache (orchestrator/nodecache.py: <root>/<node>/{inductor,triton}), in the layout of the
    # shared folder's ablate-compile-cache.tar, so that unpacked there it seeds the next machine
    node=$(ls -d ~/.cache/ablate/compile/*/ 2>/dev/null | head -n 1)
    if [ -n "$node" ] && [ -d "$node/inductor" ]; then
        # xz -6: on 2026-12-01's 256 MB cache (2 threads, the CPU machine) 15.2 MB in 45 s, where -4 gave
        # 20.7 MB and -9 13.6 MB in 77 s; -6's 24 MiB blocks keep 16 threads busy, -9's 192 MiB ones 4
        tar cf - -C "$node" inductor triton 2>/dev/null | xz -T0 -6 > /tmp/compile-cache.tar.xz
        size=$(stat -c %s /tmp/compile-cache.tar.xz)
        part=$((15 * 1024 * 1024))
        used=$(find "$OUT" -maxdepth 1 -type f -printf '%s\n' | awk '{s += $1} END {print s + 0}')
        files=$(find "$OUT" -maxdepth 1 -type f | wc -l)
        room=$((64 * 1024 * 1024 - used - 1024 * 1024))     # a MiB spare
        slots=$((8 - files))
        parts=$(((size + part - 1) / part))
        if [ "$size" -le "$room" ] && [ "$parts" -le "$slots" ]; then
            # under other names first: a call cut short leaves no part that looks whole
            rm -rf /tmp/cache-parts && mkdir /tmp/cache-parts
            split -b 15M -d /tmp/compile-cache.tar.xz /tmp/cache-parts/compile-cache.tar.xz.part
            mv /tmp/cache-parts/* "$OUT/"
            echo "compile cache of $node: $(du -sh "$node" | cut -f1) packed to $size bytes in $parts part(s)"
        else
            echo "compile cache of $node packs to $size bytes ($parts part(s) of 15 MiB): \$OUT has room" \
                "for $((room > 0 ? room : 0)) bytes in $slots file(s) beside the rest; not copied"
        fi
    else
        echo "no node compile cache under ~/.cache/ablate/compile"
    fi
fi
ls -la "$OUT"
