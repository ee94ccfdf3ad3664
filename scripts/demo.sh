#!/usr/bin/env bash
# Install vidscale into .venv and upscale the bundled sample clip x2 into out/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/venv.sh
mkdir -p out
# a cartoon: the anime preset (Real-CUGAN x2, anti-flicker pass, 10-bit x265)
.venv/bin/vidscale samples/bunny.webm out/bunny-x2.mp4 --preset anime --overwrite
echo "wrote out/bunny-x2.mp4"
