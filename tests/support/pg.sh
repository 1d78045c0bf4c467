#!/usr/bin/env bash
# A real PostgreSQL server for tests (Debian's package): initdb into a fresh directory as a non-root user, on a
# free port on 127.0.0.1, stopped afterwards.
#   (DIR's parent must be searchable by the postgres user when run as root)
#   pg.sh start DIR     prints the conninfo of the server's "postgres" database (user taskhubd, no password)
#   pg.sh stop DIR      also stops the servers of DIR/*/ (tests that need a server of their own start it there,
#                       so that one stop ends them all even when such a test died half-way)
#   pg.sh createdb DIR NAME   creates database NAME (if missing) and prints its conninfo
#   pg.sh restart DIR   a fast shutdown (connections cut, as in a failover) and a start on the same port
set -euo pipefail
cmd=$1 dir=$2
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -n "$bin" ] || { echo "pg.sh: PostgreSQL is not installed (apt-get install postgresql)" >&2; exit 1; }
as=()
if [ "$(id -u)" = 0 ]; then as=(runuser -u postgres --); fi # initdb refuses to run as root
case "$cmd" in
start)
  mkdir -p "$dir"
  [ "$(id -u)" = 0 ] && chown postgres "$dir"
  "${as[@]}" "$bin/initdb" -D "$dir/data" -A trust -U taskhubd -E UTF8 --no-sync >"$dir/initdb.log" 2>&1 ||
    { cat "$dir/initdb.log" >&2; exit 1; }
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  "${as[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=200" start >/dev/null ||
    { cat "$dir/server.log" >&2; exit 1; }
  echo "$port" >"$dir/port"
  echo "host=127.0.0.1 port=$port user=taskhubd dbname=postgres"
  ;;
stop)
  for d in "$dir"/*/data "$dir/data"; do
    [ -f "$d/postmaster.pid" ] && "${as[@]}" "$bin/pg_ctl" -D "$d" -m fast -w stop >/dev/null 2>&1 || true
  done
  ;;
restart)
  "${as[@]}" "$bin/pg_ctl" -D "$dir/data" -m fast -w -t 60 restart >/dev/null || { cat "$dir/server.log" >&2; exit 1; }
  ;;
createdb)
  port=$(cat "$dir/port")
  "$bin/psql" -qAt "host=127.0.0.1 port=$port user=taskhubd dbname=postgres" \
    -c "SELECT 1 FROM pg_database WHERE datname = '$3'" | grep -q 1 ||
    "$bin/createdb" -h 127.0.0.1 -p "$port" -U taskhubd "$3"
  echo "host=127.0.0.1 port=$port user=taskhubd dbname=$3"
  ;;
*) echo "usage: pg.sh start|stop|restart DIR | createdb DIR NAME" >&2; exit 2 ;;
esac
