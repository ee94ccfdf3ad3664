#!/usr/bin/env bash
# Install vidscale into .venv and upscale the bundled sample clip x2 into out/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/venv.sh
mkdir -p out
.venv/bin/vidscale samples/bunny.webm out/bunny-x2.mp4 --scale 2 --overwrite
echo "wrote out/bunny-x2.mp4"
