#!/usr/bin/env bash
# composekit's stand-in for the official postgres image entrypoint (same contract, own code):
# POSTGRES_USER / POSTGRES_PASSWORD / POSTGRES_DB / POSTGRES_INITDB_ARGS / POSTGRES_HOST_AUTH_METHOD,
# PGDATA, and /docker-entrypoint-initdb.d (*.sh run or sourced, *.sql and *.sql.gz through psql with
# ON_ERROR_STOP, in sorted order, only when the data directory is empty).
# One deliberate improvement: a failed initialisation leaves a marker, and every later start refuses
# with the reason instead of serving a half-initialised database.
set -Eeo pipefail

log() { echo "composekit-postgres: $*" >&2; }

if [ "${1:0:1}" = '-' ]; then set -- postgres "$@"; fi

if [ "$1" = 'postgres' ] && [ "$(id -u)" = '0' ]; then
  mkdir -p "$PGDATA"
  chown -R postgres:postgres "$PGDATA" /var/run/postgresql
  chmod 0700 "$PGDATA"
  exec setpriv --reuid=postgres --regid=postgres --init-groups "$BASH_SOURCE" "$@"
fi

marker="$PGDATA/COMPOSEKIT_INIT_FAILED"

run_init_scripts() {
  local f
  local -a psql=(psql -v ON_ERROR_STOP=1 --no-psqlrc --username "$POSTGRES_USER" --no-password --dbname "$POSTGRES_DB")
  export PGPASSWORD="${PGPASSWORD:-$POSTGRES_PASSWORD}"
  while IFS= read -r -d '' f; do
    current_step="$f"
    case "$f" in
      *.sh)
        if [ -x "$f" ]; then log "running $f"; "$f"
        else log "sourcing $f"; . "$f"; fi ;;
      *.sql)    log "running $f"; "${psql[@]}" -f "$f"; echo ;;
      *.sql.gz) log "running $f"; gunzip -c "$f" | "${psql[@]}"; echo ;;
      *)        log "ignoring $f" ;;
    esac
  done < <(find /docker-entrypoint-initdb.d -mindepth 1 -maxdepth 1 \( -type f -o -type l \) -print0 | sort -z)
}

init_failed() {
  local rc=$?
  echo "initialisation failed (exit $rc) while running: ${current_step:-initdb}" > "$marker"
  log "ERROR: initialisation failed while running ${current_step:-initdb}; the database is NOT usable."
  log "fix the script, then remove the volume (docker compose down -v) and start again"
  pg_ctl -D "$PGDATA" -m immediate -w stop >/dev/null 2>&1 || true
  exit 1
}

if [ "$1" = 'postgres' ]; then
  if [ -f "$marker" ]; then
    log "ERROR: this data directory's initialisation failed earlier: $(cat "$marker")"
    log "fix the init script, then remove the volume (docker compose down -v) and start again"
    exit 1
  fi
  if [ ! -s "$PGDATA/PG_VERSION" ]; then
    export POSTGRES_USER="${POSTGRES_USER:-postgres}"
    export POSTGRES_DB="${POSTGRES_DB:-$POSTGRES_USER}"
    auth="${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}"
    if [ -z "${POSTGRES_PASSWORD:-}" ] && [ "$auth" != 'trust' ]; then
      log "ERROR: POSTGRES_PASSWORD is not set; set it (or POSTGRES_HOST_AUTH_METHOD=trust for throwaway databases)"
      exit 1
    fi
    trap init_failed ERR
    current_step=initdb
    pwfile="$(mktemp)"
    printf '%s' "${POSTGRES_PASSWORD:-}" > "$pwfile"
    # shellcheck disable=SC2086
    initdb --username="$POSTGRES_USER" --pwfile="$pwfile" --auth-local=trust --auth-host="$auth" \
      -D "$PGDATA" $POSTGRES_INITDB_ARGS >/dev/null
    rm -f "$pwfile"
    printf '\nhost all all all %s\n' "$auth" >> "$PGDATA/pg_hba.conf"
    echo "listen_addresses = '*'" >> "$PGDATA/postgresql.auto.conf"
    current_step="temporary server"
    # unix socket only while initialising: a TCP health check cannot pass before we are done
    pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -p 5432" -w start >/dev/null
    if [ "$POSTGRES_DB" != 'postgres' ]; then
      current_step="CREATE DATABASE $POSTGRES_DB"
      psql -v ON_ERROR_STOP=1 --no-psqlrc --username "$POSTGRES_USER" --dbname postgres \
        -v db="$POSTGRES_DB" <<<'CREATE DATABASE :"db";' >/dev/null
    fi
    current_step="/docker-entrypoint-initdb.d"
    run_init_scripts
    current_step="stopping temporary server"
    pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
    trap - ERR
    log "initialisation complete; starting postgres"
  fi
  shift
  exec postgres "$@"
fi

exec "$@"
