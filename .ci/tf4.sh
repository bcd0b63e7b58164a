#!/usr/bin/env bash
# Run the tests marked `tf4` under transformers 4.57.6, in a second environment `.venv-tf4`.
#
# The venv sees the system site-packages (torch, auto-round, pytest, ...), so only transformers
# and what it drags along are installed into it: huggingface_hub < 1 and tokenizers 0.22 (transformers
# 4.57 pins), and datasets < 5 (auto-round imports datasets, and datasets 5 needs huggingface_hub >= 1).
# Idempotent: an existing venv with the right transformers is reused as is.
# Usage: .ci/tf4.sh [extra pytest args]
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${TF4_VENV:-$ROOT/.venv-tf4}"
PYTHON="${PYTHON:-python3}"
TF4_VERSION="4.57.6"
TF4_REQUIREMENTS=("transformers==$TF4_VERSION" "datasets<5")

cd "$ROOT"
if [ ! -x "$VENV/bin/python" ]; then
    echo "tf4: creating $VENV"
    "$PYTHON" -m venv --system-site-packages "$VENV"
fi
installed="$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("transformers"), m.version("datasets"))' 2>/dev/null || true)"
if [[ "$installed" != "$TF4_VERSION "[0-4].* ]]; then
    echo "tf4: installing transformers==$TF4_VERSION (found '${installed:-none}')"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${TF4_REQUIREMENTS[@]}"
fi
if ! "$VENV/bin/python" -m pip show autoround-scaffold 2>/dev/null \
    | grep -q "^Editable project location: $ROOT$"; then
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -e "$ROOT"
fi
"$VENV/bin/python" -c 'import transformers, torch; print(f"tf4: transformers {transformers.__version__}, torch {torch.__version__}")'
exec "$VENV/bin/python" -m pytest -m tf4 -q -p no:cacheprovider "$@"
