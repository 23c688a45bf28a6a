#!/usr/bin/env bash
# The whole test suite: set-up (idempotent), lint, types, the import contract, then pytest against the real Docker
# engine, real Compose and real PostgreSQL. Extra arguments go to pytest (e.g. -m "not slow").
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/bootstrap.sh
V="$ROOT/.venv/bin"
"$V/ruff" check composekit tests bench scripts
"$V/ruff" format --check composekit tests bench scripts
"$V/mypy" --no-error-summary
"$V/lint-imports" --no-cache >/dev/null || "$V/lint-imports" --no-cache  # the layers, as a contract
set +e
# two workers, a test file each at a time: most of the suite waits on Docker and PostgreSQL, and
# files are independent (own Compose projects, ports, host cluster per worker);
# COMPOSEKIT_TEST_WORKERS=0 runs it in one process
"$V/pytest" -n "${COMPOSEKIT_TEST_WORKERS:-2}" --dist loadfile --durations=40 "$@"
rc=$?
set -e
if [ "$rc" = 5 ]; then echo "test.sh: pytest collected no tests — that is a failure" >&2; exit 1; fi
exit "$rc"
