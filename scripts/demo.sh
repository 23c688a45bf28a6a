#!/usr/bin/env bash
# The main job, end to end on this machine: set-up (idempotent), then a stand-in postgres in a
# throwaway Compose project that runs init-scripts/ on first start, queried, and taken down.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/bootstrap.sh"
exec "$ROOT/.venv/bin/python" "$ROOT/scripts/demo.py" "$@"
