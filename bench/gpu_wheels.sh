#!/usr/bin/env bash
# Fetch, here, the wheels that bench/gpu_session.sh needs on the GPU machine (Python 3.12,
# no network there). The image there already has torch, torchvision, typer, rich, click,
# numpy, einops, pybind11, scikit-build-core, pytest and hypothesis; it lacks these.
#
#     bash bench/gpu_wheels.sh          # into .whl/ (git-ignored through .git/info/exclude)
#
# Then: device run with carry [".whl"] and command `bash bench/gpu_session.sh`.
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
mkdir -p .whl
py=${PYTHON:-python3}
# Pinned to what this project's CI installs, so the GPU figures come from the same code paths.
wheels=(
  "duckdb==$(.venv/bin/python -c 'import duckdb; print(duckdb.__version__)')"
  "ruamel.yaml==$(.venv/bin/python -c 'import ruamel.yaml; print(ruamel.yaml.__version__)')"
  ruamel.yaml.clib jsonschema jsonschema-specifications referencing rpds-py
  "vit-pytorch==$(.venv/bin/python -c 'import importlib.metadata as m; print(m.version("vit-pytorch"))')"
)
platforms=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64; do
  platforms+=(--platform "$p")
done
for w in "${wheels[@]}"; do
  "$py" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp "${platforms[@]}" -d .whl "$w"
done
# vit-pytorch and jsonschema's helpers are pure Python: any platform tag does.
ls -l .whl
du -sh .whl
