# shellcheck shell=bash
# A throwaway PostgreSQL cluster for the tests. Source this file, then:
#
#   start_test_postgres            # starts it (or reuses a running one) and exports
#                                  # KEYSTEAD_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:PORT/keystead_test
#   trap stop_test_postgres EXIT   # stops it and deletes its data when the caller exits
#
# The cluster lives in a fresh mktemp directory, listens on 127.0.0.1 only, trusts local
# connections (no password) and runs with fsync off: it holds test data and nothing else.
# Debian's `postgresql` package provides it (installed with apt-get when missing). initdb
# refuses to run as root, so as root the cluster runs as the `postgres` user.
# Set KEYSTEAD_TEST_POSTGRES_PORT to prefer a port other than 55432 (the next free one is used).

_ks_pg_bindir() {
  local dir
  dir=$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -n 1)
  if [[ -n "$dir" && -x "$dir/initdb" ]]; then
    printf '%s\n' "$dir"
  fi
}

_ks_pg_install() {
  echo "postgres.sh: installing PostgreSQL (apt-get install -y postgresql)" >&2
  local sudo=()
  if [[ $EUID -ne 0 ]]; then
    command -v sudo >/dev/null || {
      echo "postgres.sh: PostgreSQL is missing and installing it needs root (apt-get install -y postgresql)" >&2
      return 1
    }
    sudo=(sudo -n)
  fi
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null &&
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
}

# Runs a PostgreSQL tool as the cluster's owner: `postgres` when we are root, else ourselves.
_ks_pg_as_owner() {
  if [[ $EUID -eq 0 ]]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

_ks_port_in_use() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

start_test_postgres() {
  local bindir
  bindir=$(_ks_pg_bindir)

  # Idempotent: a cluster this shell (or a parent) already started, or a server the caller
  # points at, is reused when it answers.
  if [[ -n "${KEYSTEAD_TEST_POSTGRES_URL:-}" && -n "$bindir" ]] &&
    "$bindir/pg_isready" -q -d "$KEYSTEAD_TEST_POSTGRES_URL" -t 2; then
    return 0
  fi

  if [[ -z "$bindir" ]]; then
    _ks_pg_install || return 1
    bindir=$(_ks_pg_bindir)
    [[ -n "$bindir" ]] || {
      echo "postgres.sh: initdb not found under /usr/lib/postgresql/*/bin after installing" >&2
      return 1
    }
  fi

  local port=${KEYSTEAD_TEST_POSTGRES_PORT:-55432} tries=0
  while _ks_port_in_use "$port"; do
    port=$((port + 1))
    tries=$((tries + 1))
    if ((tries > 100)); then
      echo "postgres.sh: no free port near ${KEYSTEAD_TEST_POSTGRES_PORT:-55432}" >&2
      return 1
    fi
  done

  local dir
  dir=$(mktemp -d "${TMPDIR:-/tmp}/keystead-pg.XXXXXX") || return 1
  chmod 755 "$dir" # the socket directory must be reachable by clients of any user
  if [[ $EUID -eq 0 ]]; then
    chown postgres:postgres "$dir"
  fi

  if ! _ks_pg_as_owner "$bindir/initdb" -D "$dir/data" -A trust -U postgres -E UTF8 \
    --no-locale --no-sync >"$dir/initdb.log" 2>&1; then
    echo "postgres.sh: initdb failed:" >&2
    cat "$dir/initdb.log" >&2
    rm -rf "$dir"
    return 1
  fi

  local opts="-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off"
  opts+=" -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
  if ! _ks_pg_as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 \
    -o "$opts" start >/dev/null; then
    echo "postgres.sh: PostgreSQL did not start:" >&2
    cat "$dir/server.log" >&2
    rm -rf "$dir"
    return 1
  fi

  export KEYSTEAD_TEST_POSTGRES_DIR="$dir"
  export KEYSTEAD_TEST_POSTGRES_BIN="$bindir"
  if ! "$bindir/createdb" -h 127.0.0.1 -p "$port" -U postgres keystead_test; then
    stop_test_postgres
    return 1
  fi
  export KEYSTEAD_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$port/keystead_test"
  echo "postgres.sh: PostgreSQL on 127.0.0.1:$port (data in $dir)" >&2
}

# Stops the cluster start_test_postgres started and deletes its directory. Safe to call
# twice, or when nothing was started (then it leaves KEYSTEAD_TEST_POSTGRES_URL alone).
stop_test_postgres() {
  local dir=${KEYSTEAD_TEST_POSTGRES_DIR:-} bindir=${KEYSTEAD_TEST_POSTGRES_BIN:-}
  [[ -n "$dir" ]] || return 0
  if [[ -n "$bindir" && -f "$dir/data/postmaster.pid" ]]; then
    _ks_pg_as_owner "$bindir/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
  fi
  rm -rf "$dir"
  unset KEYSTEAD_TEST_POSTGRES_DIR KEYSTEAD_TEST_POSTGRES_BIN KEYSTEAD_TEST_POSTGRES_URL
}
