#!/usr/bin/env bash
# Creates (or refreshes) the Python venv the local tools use: <repo>/.venv with the CPU build of
# torch, the training package's requirements and the test/lint tools. Idempotent: a second run only
# checks that the requirements are satisfied.
#
# Offline machines with a package mirror configured in pip (extra-index-url / find-links) would
# otherwise spend ~9 s per package retrying the public index it cannot reach: when pypi.org does not
# resolve, pip is told not to retry, so it falls through to the mirror at once.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv="$repo/.venv"
python=${PYTHON:-python3}

if ! command -v "$python" >/dev/null 2>&1; then
  echo "setup-venv: '$python' not found. Install Python 3.10 or newer (or set PYTHON=/path/to/python3)." >&2
  exit 1
fi
if ! "$python" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)'; then
  echo "setup-venv: $("$python" --version 2>&1) is too old; spot-sweep needs Python 3.10 or newer (set PYTHON=...)." >&2
  exit 1
fi

if ! "$python" -c 'import socket; socket.getaddrinfo("pypi.org", 443)' >/dev/null 2>&1; then
  export PIP_RETRIES=0
fi

if [ ! -x "$venv/bin/python" ]; then
  echo "setup-venv: creating $venv"
  "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$repo/training/requirements-dev.txt"
echo "setup-venv: $("$venv/bin/python" -c 'import torch, sys; print(f"python {sys.version.split()[0]}, torch {torch.__version__}")') ready in $venv"
