#!/usr/bin/env bash
# Install vidscale with its test, VapourSynth and web extras (and Chromium) into .venv and run the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/venv.sh test,vs,web
# the web page's tests drive Debian's Chromium through its WebDriver
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
    sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get update -q
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends chromium chromium-driver
fi
# the HDR tests read outputs back with ffprobe too (Debian's ffmpeg)
if ! command -v ffprobe >/dev/null; then
    sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get update -q
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends ffmpeg
fi
# the ncnn originals that no wheel carries (realsr-df2k-jpeg-x4's): downloaded once, for the tests
VIDSCALE_ENGINE_SOURCES="${VIDSCALE_ENGINE_SOURCES:-$(bash scripts/engine_sources.sh)}"
export VIDSCALE_ENGINE_SOURCES
exec .venv/bin/python -m pytest "$@"
