#!/usr/bin/env bash
# The whole suite: installs what the tests need into .venv, then lint, types and tests.
# Extra arguments go to pytest (e.g. `bash scripts/test.sh -k replay`).
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test]'

.venv/bin/ruff check riskmon tests
.venv/bin/ruff format --check riskmon tests
.venv/bin/mypy --strict riskmon

status=0
.venv/bin/python -m pytest "$@" || status=$?
if [ "$status" -eq 5 ]; then
    echo "error: pytest collected no tests" >&2
    exit 1
fi
exit "$status"
