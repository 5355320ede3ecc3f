#!/usr/bin/env bash
# Set up the machine (scripts/bootstrap.sh), then sandbox a few real programs through the
# library and print their verdicts (scripts/demo.py). Run as root: sudo scripts/demo.sh
# Exits 0 when every verdict is the expected one.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ $(id -u) != 0 ]]; then
    echo "demo: cellbox needs root (namespaces, mounts, cgroups); run: sudo $0" >&2
    exit 1
fi
scripts/bootstrap.sh
exec .venv/bin/python scripts/demo.py "$@"
