#!/usr/bin/env bash
# A throwaway PostgreSQL for tests and benchmarks: its own data directory, on loopback.
#   scripts/pg.sh start DIR PORT   - install PostgreSQL if missing, init DIR, start, print the URL
#   scripts/pg.sh stop DIR         - stop it (fast shutdown)
#   scripts/pg.sh kill DIR         - stop it at once (immediate shutdown: no checkpoint)
# PostgreSQL refuses to run as root: as root, the server runs as the `postgres` user.
set -euo pipefail
cmd=${1:?start|stop|kill}; dir=${2:?data directory}
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"

bindir() {
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  [ -n "$d" ] && [ -x "$d/postgres" ] && echo "$d"
}
if ! bindir >/dev/null; then
  echo "pg.sh: installing PostgreSQL (Debian package)" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends postgresql >/dev/null
fi
BIN=$(bindir)
as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case $cmd in
  start)
    port=${3:?port}
    [ -L "$dir" ] && { echo "pg.sh: $dir is a symlink; refusing" >&2; exit 2; }
    mkdir -p "$dir"
    [ "$(id -u)" = 0 ] && chown postgres: "$dir"
    if [ ! -f "$dir/PG_VERSION" ]; then
      as_owner "$BIN/initdb" -D "$dir" -U gatehouse --auth=trust -E UTF8 >/dev/null
    fi
    as_owner "$BIN/pg_ctl" -D "$dir" -l "$dir/server.log" -w -t 30 \
      -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=on -c synchronous_commit=on" start >/dev/null
    as_owner "$BIN/psql" -h 127.0.0.1 -p "$port" -U gatehouse -d postgres -qAtc \
      "SELECT 1 FROM pg_database WHERE datname = 'gatehouse'" | grep -q 1 ||
      as_owner "$BIN/createdb" -h 127.0.0.1 -p "$port" -U gatehouse gatehouse
    echo "postgres://gatehouse@127.0.0.1:$port/gatehouse"
    ;;
  stop) as_owner "$BIN/pg_ctl" -D "$dir" -m fast -w stop >/dev/null ;;
  kill) as_owner "$BIN/pg_ctl" -D "$dir" -m immediate -w stop >/dev/null ;;
  *) echo "usage: $0 start DIR PORT | stop DIR | kill DIR" >&2; exit 2 ;;
esac
