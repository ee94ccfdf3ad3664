#!/usr/bin/env bash
# A venv for Real-ESRGAN's video script (benchmarks/vs_realesrgan.py), beside vidscale's .venv.
# It reuses vidscale's torch, numpy and OpenCV (a .pth file) and adds basicsr, realesrgan and
# ffmpeg-python without their pinned dependencies (basicsr's would pull an older torch stack).
# The script also needs the ffmpeg and ffprobe programs (Debian: apt-get install ffmpeg).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${1:-.cache/peers-venv}"
MAIN_SITE="$("${VIDSCALE_PYTHON:-.venv/bin/python}" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
[ -x "$VENV/bin/python" ] || "${PYTHON:-python3.12}" -m venv "$VENV"
PEER_SITE="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
echo "$MAIN_SITE" > "$PEER_SITE/vidscale-main.pth"
"$VENV/bin/python" -m pip install -q --no-deps --no-build-isolation \
    basicsr==1.4.2 realesrgan==0.3.0 ffmpeg-python==0.2.0
"$VENV/bin/python" -m pip install -q setuptools addict future pyyaml scipy scikit-image lmdb yapf
echo "$VENV/bin/python"
