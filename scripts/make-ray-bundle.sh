#!/usr/bin/env bash
# A slim Ray for a machine that has Python and torch but neither Ray nor a package registry (our GPU
# machines: docs/gpu.md). Built here: Ray's wheel, the requirements of Ray the GPU image lacks, and any
# PACKAGE named, all for the target's Python, unpacked, trimmed of the Ray libraries ablate never
# loads, and packed into DEST/site.tar.xz (the tree that travels to the GPU machine has a size limit),
# with DEST/activate.sh beside it. It names what Ray and each PACKAGE require that the bundle lacks
# (their extras left out): that must be on the target already.
#
#   bash scripts/make-ray-bundle.sh DEST [PACKAGE ...]   e.g. .devcarry (git-ignored), or .devcarry pydantic
#   source DEST/activate.sh                              on the target: unpacks once, puts it on PYTHONPATH
#
# Settings: RAY_VERSION (default 2.60.0, the Ray the tests here run), BUNDLE_PYTHON (default 3.12, the
# GPU image's python3), WHEELS=DIR takes every wheel from DIR instead of the registry (offline).
set -euo pipefail

dest=${1:?usage: bash scripts/make-ray-bundle.sh DEST [PACKAGE ...]}
shift
ray_version=${RAY_VERSION:-2.60.0}
py=${BUNDLE_PYTHON:-3.12}
# Ray's own requirements that the GPU image does not have (its package list: the device notes):
# jsonschema and what jsonschema needs beyond attrs. click, filelock, msgpack, packaging, protobuf,
# pyyaml and requests are there already, and a second copy first on the path would shadow them.
missing=(jsonschema jsonschema-specifications referencing rpds-py)
# Ray libraries ablate never imports (it uses the core: init, remote tasks, wait, get, cancel, nodes):
# RLlib, the Java jars, LLM, Tune, Train, Serve, Data and AIR (~55 MB of the ~150 MB unpacked)
unused=(rllib jars llm tune train serve data air)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
source_args=()
if [ -n "${WHEELS:-}" ]; then source_args=(--no-index --find-links "$WHEELS"); fi
python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
    --python-version "$py" --implementation cp --platform manylinux_2_28_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 ${source_args[@]+"${source_args[@]}"} \
    -d "$work/wheels" "ray==$ray_version" "${missing[@]}" "$@"

site=$work/site
mkdir -p "$site/bin"
# unpack keeping each file's mode: Ray's servers (gcs_server, raylet) must stay executable
python3 - "$site" "$work"/wheels/*.whl <<'PY'
import sys
import zipfile
from pathlib import Path

site = Path(sys.argv[1])
for wheel in sys.argv[2:]:
    with zipfile.ZipFile(wheel) as z:
        for info in z.infolist():
            path = Path(z.extract(info, site))
            mode = (info.external_attr >> 16) & 0o777
            if mode and not info.is_dir():
                path.chmod(mode)
PY
for lib in "${unused[@]}"; do rm -rf "${site:?}/ray/$lib"; done
find "$site/ray/dashboard" -name '*.map' -delete 2>/dev/null || true  # the web UI's source maps
find "$site" -name __pycache__ -type d -prune -exec rm -rf {} +
# `ray start` and friends: unpacking a wheel makes no console scripts, so write the one we need
printf '#!/usr/bin/env python3\nimport sys\n\nfrom ray.scripts.scripts import main\n\nsys.exit(main())\n' \
    > "$site/bin/ray"
chmod +x "$site/bin/ray"

# What Ray and each PACKAGE named require that is not in the bundle must be on the target already:
# say which, to check there
python3 - "$site" ray "$@" <<'PY'
import re
import sys
from email.parser import Parser
from pathlib import Path

site = Path(sys.argv[1])
def norm(name):
    return re.sub(r"[-_.]+", "-", name).lower()
def name_of(spec):  # a requirement's project name: "pydantic>=2; python_version > '3'" -> pydantic
    return norm(re.split(r"[\s;<>=!~\[(@]", spec.strip(), maxsplit=1)[0])
infos = {norm(p.name.removesuffix(".dist-info").rsplit("-", 1)[0]): p for p in site.glob("*.dist-info")}
expected = set()
for name in dict.fromkeys(name_of(spec) for spec in sys.argv[2:]):
    if name not in infos:  # named by a path or URL that pip resolved to another project name
        print(f"{name}: no {name}-*.dist-info in the bundle; its requirements are not checked")
        continue
    meta = Parser().parsestr(infos[name].joinpath("METADATA").read_text())
    needs = sorted({name_of(r) for r in meta.get_all("Requires-Dist") or [] if "extra ==" not in r})
    print(f"{meta['Name']} {meta['Version']} requires: {', '.join(needs) or 'nothing'}")
    expected.update(n for n in needs if n not in infos)
print(f"in the bundle: {', '.join(sorted(infos))}")
print(f"expected on the target: {', '.join(sorted(expected)) or 'nothing'}")
PY

mkdir -p "$dest"
tar -C "$site" -cf - . | xz -T0 -6 > "$dest/site.tar.xz"
stamp=$(sha256sum "$dest/site.tar.xz" | cut -c1-16)
cat > "$dest/activate.sh" <<ACTIVATE
# Source me on the target (bash): unpacks this bundle once and puts it first on PYTHONPATH (and its
# \`ray\` on PATH). Made by scripts/make-ray-bundle.sh: ray $ray_version for Python $py.
_bundle=\$(cd "\$(dirname "\${BASH_SOURCE[0]}")" && pwd)
_site=\${ABLATE_RAY_SITE:-/tmp/ablate-ray-site-$stamp}
if [ ! -f "\$_site/.unpacked" ]; then
    mkdir -p "\$_site" && tar -C "\$_site" -xJf "\$_bundle/site.tar.xz" && touch "\$_site/.unpacked" \\
        || { echo "activate.sh: could not unpack \$_bundle/site.tar.xz into \$_site" >&2; return 1; }
fi
export PYTHONPATH="\$_site\${PYTHONPATH:+:\$PYTHONPATH}"
export PATH="\$_site/bin:\$PATH"
unset _bundle _site
ACTIVATE
echo "$dest: $(du -sh "$dest/site.tar.xz" | cut -f1) (ray $ray_version for Python $py, $(ls "$work"/wheels | wc -l) wheels)"
