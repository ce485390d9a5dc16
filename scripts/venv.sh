#!/usr/bin/env bash
# Prints the path of the project's virtual environment, creating it first if needed.
#
# The environment lives under ~/.cache (not in the checkout) and is keyed by a hash of
# requirements.txt, so every fresh clone on the same machine (CI included) reuses it instead of
# downloading torch again. A half-built environment is never reused: `.installed` is written last.
set -euo pipefail
cd "$(dirname "$0")/.."
python_bin="${PYTHON:-python3.11}"
hash=$(cat requirements.txt | sha256sum | cut -c1-12)
venv="${LITHOSEG_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/lithoseg/venv-$hash}"
mkdir -p "$(dirname "$venv")"
# one builder at a time: a second `make` started meanwhile waits here instead of deleting the
# environment the first is filling
exec 9>"$venv.lock"
flock 9
if [ ! -f "$venv/.installed" ]; then
  echo "creating virtual environment $venv (first run downloads a few GB)" >&2
  rm -rf "$venv"
  "$python_bin" -m venv "$venv"
  # torchvision from PyPI only loads against PyPI's torch build of the same release. Some machines
  # carry a local CPU-only torch wheel in pip's find-links; point find-links at an empty folder so
  # the PyPI pair is what gets installed.
  empty_links=$(mktemp -d)
  PIP_FIND_LINKS="$empty_links" "$venv/bin/pip" install --quiet --upgrade pip >&2
  PIP_FIND_LINKS="$empty_links" "$venv/bin/pip" install --quiet -r requirements.txt >&2
  rmdir "$empty_links"
  "$venv/bin/python" -c "import torch, torchvision, timm, segmentation_models_pytorch, ray.serve" >&2
  touch "$venv/.installed"
fi
echo "$venv"
