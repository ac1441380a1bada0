#!/usr/bin/env bash
# Sets up the Python venv used by bench/peers/paillier_peers.py.
#
# Idempotent: creates the venv only if missing, and pip skips packages that are
# already installed at the pinned version. A peer that cannot be installed does
# not fail the script; a "PEER UNAVAILABLE" line says which one and why.
#
# Env: FEDCHAIN_PY_VENV (default: $HOME/.cache/fedchain-py)
#      PYTHON           (interpreter used to create the venv; default: python3)
set -u

VENV="${FEDCHAIN_PY_VENV:-$HOME/.cache/fedchain-py}"
PYTHON_BIN="${PYTHON:-python3}"

# Pinned versions (checked with `pip index versions <pkg>` on 2026-11-25).
PHE_VERSION="1.5.0"        # python-paillier
GMPY2_VERSION="2.2.1"      # phe uses gmpy2 automatically when importable
FATE_UTILS_VERSION="0.1.0" # FATE's Rust crypto; the only release on PyPI ("fate_utils 0.1").
                           # Binary wheels only (manylinux_2_24 x86_64, cp310/cp311 seen; none for
                           # cp312): with a newer default python, set PYTHON=python3.11.
NUMPY_VERSION="1.26.4"     # fate_utils needs numpy at runtime but does not declare it; wheel predates numpy 2

log() { echo "[setup.sh] $*" >&2; }

if [ ! -x "$VENV/bin/python" ]; then
    log "creating venv at $VENV"
    mkdir -p "$(dirname "$VENV")"
    if ! "$PYTHON_BIN" -m venv "$VENV"; then
        echo "ERROR: could not create venv at $VENV with $PYTHON_BIN" >&2
        exit 1
    fi
else
    log "venv already exists at $VENV"
fi

PY="$VENV/bin/python"
PIP=("$PY" -m pip --disable-pip-version-check)

unavailable=" "

# install_peer <key> <peer description> <pip requirement...>
install_peer() {
    local key="$1" peer="$2"; shift 2
    local out
    if out=$("${PIP[@]}" install --quiet "$@" 2>&1); then
        log "installed: $*"
        return 0
    fi
    local why
    why=$(printf '%s\n' "$out" | grep -E 'ERROR|error:' | grep -v 'Ignored the following versions' | tail -n 2 | tr '\n' ' ')
    [ -z "$why" ] && why=$(printf '%s\n' "$out" | tail -n 2 | tr '\n' ' ')
    echo "PEER UNAVAILABLE: $peer (pip install $* failed: $why)"
    unavailable+="$key "
    return 1
}

# gmpy2 first: phe works without it (pure-Python fallback, much slower), so a
# gmpy2 failure is reported but phe is still installed.
install_peer gmpy2 "gmpy2 (phe will run WITHOUT gmpy2 acceleration)" "gmpy2==$GMPY2_VERSION" || true
install_peer phe "phe (python-paillier)" "phe==$PHE_VERSION" || true
install_peer fate_utils "fate_utils" "numpy==$NUMPY_VERSION" "fate_utils==$FATE_UTILS_VERSION" || true

# Check imports actually work (a wheel can install but fail to load).
check_import() {
    local peer="$1" stmt="$2" out
    case "$unavailable" in *" $peer "*) return 0 ;; esac  # already reported
    if out=$("$PY" -c "$stmt" 2>&1); then
        log "import ok: $peer ($out)"
    else
        echo "PEER UNAVAILABLE: $peer (import failed: $(printf '%s\n' "$out" | tail -n 1))"
    fi
}
check_import "gmpy2" "import gmpy2; print(gmpy2.version())"
check_import "phe" "import phe; print(phe.__version__)"
check_import "fate_utils" "import importlib.metadata as m, fate_utils.paillier; print(m.version('fate_utils'))"

echo "VENV_PYTHON=$PY"
