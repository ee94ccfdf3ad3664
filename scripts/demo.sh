#!/usr/bin/env bash
# Install vidscale into .venv and upscale the bundled sample x2 into out/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/venv.sh
mkdir -p out
.venv/bin/vidscale samples/bunny.png out/bunny-x2.png --scale 2 --overwrite
echo "wrote out/bunny-x2.png"
