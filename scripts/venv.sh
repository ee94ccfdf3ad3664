#!/usr/bin/env bash
# Create .venv with Python >= 3.12 (VapourSynth's wheels need it) and install
# vidscale into it in editable mode with the extras given as arguments.
set -euo pipefail
cd "$(dirname "$0")/.."

find_python() {
    local c
    for c in python3.12 python3.13 python3.14 python3; do
        if command -v "$c" >/dev/null && "$c" -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then
            command -v "$c"; return
        fi
    done
    if command -v pyenv >/dev/null; then  # pyenv shims hide versions that are not selected
        for v in $(pyenv versions --bare | grep -E '^3\.(1[2-9])(\.[0-9]+)?$' | sort -V); do
            echo "$(pyenv root)/versions/$v/bin/python3"; return
        done
    fi
    echo "no Python >= 3.12 found" >&2; exit 1
}

if [ ! -x .venv/bin/python ]; then
    "$(find_python)" -m venv .venv
fi
extras="${1:-}"
spec="."
[ -n "$extras" ] && spec=".[$extras]"
.venv/bin/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e "$spec"
# vspipe finds its Python through a per-install entry in the user's VapourSynth configuration
if [ -x .venv/bin/vapoursynth ]; then
    .venv/bin/vapoursynth config >/dev/null
fi
