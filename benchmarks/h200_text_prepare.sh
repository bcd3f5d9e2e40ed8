#!/usr/bin/env bash
# The first call of a real-text GPU session (docs/gpu.md, "Real English text on the H200"): unpack the
# carried shards into $TEXT (default /tmp/text), check each against its sha256 in the corpus's manifest,
# and, when the compile cache was carried too, put it where sweeps/drop_one_mlp.yaml --profile h200-text
# seeds its first run from ($SHARED, default /tmp/ablate-shared-cache).
#   bash benchmarks/h200_text_prepare.sh [SHARDS.tar.xz [CACHE.tar.xz]]
#   (defaults data/english.tar.xz and data/h200-compile-cache.tar.xz; a missing cache is only said)
# Each does what was carried: when the two do not fit one call's 64 MiB, carry the cache in one call and
# the shards in the next, running this in both (the machine keeps /tmp while it is held); without the
# shards it checks the corpus an earlier call unpacked into $TEXT, and there being none is the error.
set -eu
TEXT=${TEXT:-/tmp/text}
SHARED=${SHARED:-/tmp/ablate-shared-cache}
shards=${1:-data/english.tar.xz}
cache=${2:-data/h200-compile-cache.tar.xz}
if [ -f "$shards" ]; then
    tmp=$(mktemp -d)
    tar xJf "$shards" -C "$tmp"
    [ -f "$tmp/english/manifest.json" ] || { echo "$shards: no english/manifest.json inside (not an ablate data english build)"; exit 1; }
    mkdir -p "$TEXT"
    mv "$tmp"/english/* "$TEXT"/
    rm -rf "$tmp"
elif [ -f "$TEXT/manifest.json" ]; then
    echo "no $shards carried: checking the corpus an earlier call unpacked into $TEXT"
elif [ -f "$cache" ]; then
    echo "no $shards carried and no corpus in $TEXT yet: carry the shards in the next call and run this again"
else
    echo "no $shards, no $cache and no corpus in $TEXT: build the shards on the CPU machine and carry them (docs/gpu.md)"
    exit 1
fi
[ -f "$TEXT/manifest.json" ] && python3 - "$TEXT" <<'PY'
import hashlib, json, sys
from pathlib import Path
text = Path(sys.argv[1])
shards = json.loads((text / "manifest.json").read_text())["shards"]
for s in shards:
    path = text / s["file"]
    if not path.is_file():
        sys.exit(f"{path}: missing; the manifest lists it")
    if hashlib.sha256(path.read_bytes()).hexdigest() != s["sha256"]:
        sys.exit(f"{path}: sha256 differs from the manifest's; carry the corpus again")
print(f"{text}: {len(shards)} shards, {sum(s['tokens'] for s in shards):,} tokens, sha256 as the manifest says")
PY
if [ -f "$cache" ]; then
    mkdir -p "$SHARED"
    xz -dc "$cache" > "$SHARED/.ablate-compile-cache.tar" && mv "$SHARED/.ablate-compile-cache.tar" "$SHARED/ablate-compile-cache.tar"
    echo "compile cache: $SHARED/ablate-compile-cache.tar ($(du -h "$SHARED/ablate-compile-cache.tar" | cut -f1)); the first run seeds from it"
elif [ -f "$SHARED/ablate-compile-cache.tar" ]; then
    echo "no $cache carried: the one an earlier call put in $SHARED seeds the first run"
else
    echo "no $cache carried: the first run compiles cold"
fi
