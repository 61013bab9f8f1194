#!/usr/bin/env bash
# Install deepqoe with its test extras and run the test suite (the README's test command).
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install --quiet "torch==2.13.0"
python -m pip install --quiet -e ".[dev,video,serve,text]"
export DEEPQOE_DATA="${DEEPQOE_DATA:-$(cd .. && pwd)/shared/datasets}"
if [ ! -d "$DEEPQOE_DATA" ]; then
  echo "note: DEEPQOE_DATA=$DEEPQOE_DATA is not a folder: the tests that need the real datasets are skipped" \
       "(with CI=true they fail instead)" >&2
fi
python -m pytest -q tests "$@"
