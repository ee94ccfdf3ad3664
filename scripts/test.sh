#!/usr/bin/env bash
# Install vidscale with its test and VapourSynth extras into .venv and run the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/venv.sh test,vs
exec .venv/bin/python -m pytest "$@"
