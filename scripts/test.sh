#!/usr/bin/env bash
# Install vidscale with its test and VapourSynth extras into .venv and run the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/venv.sh test,vs
# the ncnn originals that no wheel carries (realsr-df2k-jpeg-x4's): downloaded once, for the tests
VIDSCALE_ENGINE_SOURCES="${VIDSCALE_ENGINE_SOURCES:-$(bash scripts/engine_sources.sh)}"
export VIDSCALE_ENGINE_SOURCES
exec .venv/bin/python -m pytest "$@"
