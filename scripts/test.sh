#!/usr/bin/env bash
# Install deepqoe with its test extras and run the test suite (the README's test command).
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install --quiet "torch==2.13.0"
python -m pip install --quiet -e ".[dev,video,serve,text]"
export DEEPQOE_DATA="${DEEPQOE_DATA:-$(cd .. && pwd)/shared/datasets}"
python -m pytest -q tests "$@"
