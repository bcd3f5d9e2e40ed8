#!/usr/bin/env bash
# The first call of a real-text GPU session (docs/gpu.md, "Real English text on the H200"): unpack the
# carried shards into $TEXT (default /tmp/text), check each against its sha256 in the corpus's manifest,
# and, when the compile cache was carried too, put it where sweeps/drop_one_mlp.yaml --profile h200-text
# seeds its first run from ($SHARED, default /tmp/ablate-shared-cache).
#   bash benchmarks/h200_text_prepare.sh [SHARDS.tar.xz [CACHE.tar.xz]]
#   (defaults data/english.tar.xz and data/h200-compile-cache.tar.xz; a missing cache is only said)
set -eu
TEXT=${TEXT:-/tmp/text}
SHARED=${SHARED:-/tmp/ablate-shared-cache}
shards=${1:-data/english.tar.xz}
cache=${2:-data/h200-compile-cache.tar.xz}
[ -f "$shards" ] || { echo "no $shards: build it on the CPU machine and carry it (docs/gpu.md)"; exit 1; }
tmp=$(mktemp -d)
tar xJf "$shards" -C "$tmp"
[ -f "$tmp/english/manifest.json" ] || { echo "$shards: no english/manifest.json inside (not an ablate data english build)"; exit 1; }
mkdir -p "$TEXT"
mv "$tmp"/english/* "$TEXT"/
rm -rf "$tmp"
python3 - "$TEXT" <<'PY'
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
else
    echo "no $cache carried: the first run compiles cold"
fi
