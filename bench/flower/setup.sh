#!/usr/bin/env bash
# The Flower baseline's Python environment: a venv under ~/.cache/fedchain-flower with a pinned
# flwr (gRPC server and client processes on loopback; no `ray`, no simulation extra) and numpy.
# Idempotent: a venv that already has these versions is left alone.
set -euo pipefail
VENV="${FEDCHAIN_FLOWER_VENV:-$HOME/.cache/fedchain-flower}"
FLWR_VERSION="1.42.0"
NUMPY_VERSION="2.4.6"
if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" - <<PY 2>/dev/null
import importlib.metadata as m, sys
sys.exit(0 if m.version("flwr") == "$FLWR_VERSION" and m.version("numpy") == "$NUMPY_VERSION" else 1)
PY
then
    echo "flower venv ready: $VENV (flwr $FLWR_VERSION, numpy $NUMPY_VERSION)"
    exit 0
fi
python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet --upgrade pip
"$VENV/bin/pip" install --quiet "flwr==$FLWR_VERSION" "numpy==$NUMPY_VERSION"
echo "flower venv ready: $VENV (flwr $FLWR_VERSION, numpy $NUMPY_VERSION)"
