#!/usr/bin/env bash
# Create .venv (if missing) and install xinstruct with everything it needs. Safe to rerun.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
# torch first, pinned: on these machines 2.13.0 is a CPU build on disk; unpinned, pip would fetch a multi-GB CUDA build.
.venv/bin/python -m pip install -q --disable-pip-version-check torch==2.13.0
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[dev]"
if [ "${1:-}" = "--browser" ] && [ ! -x /usr/bin/chromium ]; then
  # Debian's chromium for the real-browser test (never a browser downloaded by a test tool)
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -q && $SUDO apt-get install -y -q chromium chromium-driver fonts-noto-core >/dev/null
fi
