#!/usr/bin/env sh
# Creates tools/reference/.venv with the reference's pinned dependencies (requirements.txt,
# checked by hash). Run once, from anywhere; needs python3 (3.11) and PyPI or PIP_FIND_LINKS.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
python=${PYTHON:-python3}
"$python" -m venv "$here/.venv"
"$here/.venv/bin/python" -m pip install --quiet --require-hashes --only-binary=:all: \
    -r "$here/requirements.txt"
"$here/.venv/bin/python" -c "import lightgbm, pyarrow; print('reference environment ready:', '$here/.venv', 'lightgbm', lightgbm.__version__)"
