#!/usr/bin/env bash
# The main job, end to end on this machine: set-up (idempotent), then scripts/demo.py scaffolds
# a migrator-layout project and deploys it (a new migration, a refused and a failed release,
# rollback, expand/backfill/contract, history), and takes it down (see its docstring).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/bootstrap.sh"
exec "$ROOT/.venv/bin/python" "$ROOT/scripts/demo.py" "$@"
