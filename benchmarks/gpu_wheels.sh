#!/usr/bin/env bash
# Fetch, on a machine with package-registry access, the wheels a GPU box without it needs to run gpu_check.sh,
# into .whl/ (git-ignored: add `/.whl/` to .git/info/exclude). The box is expected to hold torch, transformers,
# huggingface_hub, numpy, safetensors, tqdm, pandas, pyarrow, requests and friends already (the lab's CUDA image:
# Python 3.12, torch 2.11, transformers 5.17, huggingface_hub 1.33); these are what `import sae_lens` and saetui's
# benchmarks pull that it lacks, at versions that work with those (sae-lens 6.53.0 is the oldest that does: see
# scripts/compat). textual is not here: gpu_check.sh runs no app code.
#
# Found by emulating the image: a site folder holding only the image's packages (from the compat venv), the
# dry run of gpu_check.sh in it, adding the distribution of each missing module until every step passed.
# About 25 MB (wandb alone is 20).
#
#   bash benchmarks/gpu_wheels.sh          # then, on the box, from the repository root, with .whl carried:
#   python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
#       .whl/*.whl && export PYTHONPATH=/tmp/site && PYTHON=python3 bash benchmarks/gpu_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=${1:-.whl}
PY_VERSION=${SAETUI_WHEELS_PYTHON:-3.12}  # the box's Python
WHEELS=(
  sae-lens==6.53.0 transformer-lens==3.9.0 better-abc==0.0.3 simple-parsing==0.1.9 docstring-parser==0.18.0
  datasets==5.2.0 multiprocess==0.70.19 dill==0.4.1
  wandb==0.31.0 opentelemetry-api==1.45.2
  pydantic==2.14.4 pydantic-core==2.50.5 typing-inspection==0.4.5 annotated-types==0.8.0
  platformdirs==4.14.9
)
PLATFORMS=()
for p in manylinux_2_35 manylinux_2_34 manylinux_2_31 manylinux_2_28 manylinux_2_27 manylinux_2_24 manylinux_2_17 \
         manylinux2014 manylinux1; do
  PLATFORMS+=(--platform "${p}_x86_64")
done
mkdir -p "$DEST"
python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$PY_VERSION" --implementation cp \
  "${PLATFORMS[@]}" --platform any -d "$DEST" "${WHEELS[@]}"
count=$(ls "$DEST"/*.whl | wc -l)
echo "gpu_wheels: $count wheels, $(du -ch "$DEST"/*.whl | tail -1 | cut -f1) in $DEST"
if (( count != ${#WHEELS[@]} )); then
  echo "gpu_wheels: expected ${#WHEELS[@]} wheels: remove stale ones from $DEST (two versions of one stop the install)" >&2
  exit 1
fi
