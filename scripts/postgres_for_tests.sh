#!/usr/bin/env bash
# A throwaway PostgreSQL server for the sweep tests (one Optuna study shared
# among workers, as users share one among machines): Debian's PostgreSQL,
# listening on 127.0.0.1 only, on a free port from 54329 up, trusting every
# local connection, with its socket and log inside the cluster directory.
#
#   scripts/postgres_for_tests.sh [DIR]     start (DIR: default a new mktemp -d)
#   scripts/postgres_for_tests.sh --stop DIR
#
# Start prints exactly one line on stdout, the SQLAlchemy URL of the empty
# database nn_gpu_test, e.g. postgresql://postgres@127.0.0.1:54329/nn_gpu_test;
# everything else goes to stderr. So:
#
#   export NN_GPU_TEST_POSTGRES="$(scripts/postgres_for_tests.sh /tmp/pg)"
#
# Starting again on the same DIR reuses the cluster (started if it was not).
# Stop it with --stop DIR, or by hand as the owner of DIR (the server never
# runs as root; as root it runs as the user postgres):
#
#   runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl -D DIR stop
#
# then remove DIR. Missing PostgreSQL is apt-installed when run as root (as
# on CI); the package's own cluster, if apt starts one on 5432, is not used.
set -euo pipefail

say() { echo "postgres_for_tests: $*" >&2; }
die() { say "$*"; exit 1; }

find_bindir() {
  local initdb
  # The newest of Debian's versioned installs (/usr/lib/postgresql/N/bin).
  initdb=$(ls -d /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -n 1 || true)
  [[ -n $initdb ]] && dirname "$initdb"
}

# Run a command as the cluster's owner: postgres when we are root.
as_owner() {
  if [[ $(id -u) -eq 0 ]]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

if [[ ${1:-} == --stop ]]; then
  dir=${2:?usage: $0 --stop DIR}
  bindir=$(find_bindir) || die "no PostgreSQL under /usr/lib/postgresql: nothing to stop"
  if [[ -f $dir/postmaster.pid ]]; then
    (cd / && as_owner "$bindir/pg_ctl" -D "$dir" -m fast -w stop) >&2
  else
    say "no server running in $dir"
  fi
  exit 0
fi

bindir=$(find_bindir) || true
if [[ -z $bindir ]]; then
  [[ $(id -u) -eq 0 ]] \
    || die "PostgreSQL's server is not installed: run 'sudo apt-get install postgresql' (Debian/Ubuntu), then again"
  say "installing Debian's postgresql package"
  # apt's output to stderr: stdout carries only the URL.
  {
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql
  } >&2
  bindir=$(find_bindir) || die "apt installed postgresql, but no /usr/lib/postgresql/*/bin/initdb"
fi

dir=${1:-}
if [[ -z $dir ]]; then
  dir=$(mktemp -d -t nn_gpu_pg.XXXXXX)
fi
mkdir -p "$dir"
dir=$(cd "$dir" && pwd -P)
(( ${#dir} <= 90 )) || die "$dir is too long a path for the server's unix socket: pick a shorter one"
if [[ $(id -u) -eq 0 ]]; then
  id postgres >/dev/null 2>&1 || die "no user postgres (Debian's postgresql package creates it)"
  chown postgres: "$dir"
  chmod 700 "$dir"
  as_owner test -w "$dir" \
    || die "the user postgres cannot reach $dir (a parent directory is private?): pick one under /tmp"
fi
# Every command as postgres from a directory it may enter.
cd "$dir"

conf=$dir/test_server.conf
log=$dir/server.log

if [[ ! -f $dir/PG_VERSION ]]; then
  [[ -z $(ls -A "$dir") ]] || die "$dir is neither empty nor a PostgreSQL cluster"
  say "initdb $dir"
  initdb_out=$(as_owner "$bindir/initdb" -D "$dir" --username=postgres --auth=trust \
    --encoding=UTF8 --locale=C --no-sync 2>&1) \
    || die "initdb failed:$(echo; echo "$initdb_out")"
  # Loopback and the socket inside the cluster only; a test server need not
  # survive a crash, so no fsync either.
  as_owner sh -c 'printf "%s\n" "include_if_exists '"'"'test_server.conf'"'"'" >> postgresql.conf'
fi

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

write_conf() {
  as_owner sh -c 'cat > test_server.conf' <<EOF
listen_addresses = '127.0.0.1'
port = $1
unix_socket_directories = '${dir//\'/\'\'}'
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
}

if as_owner "$bindir/pg_ctl" -D "$dir" status >/dev/null 2>&1; then
  port=$(sed -n 's/^port = \([0-9]*\)$/\1/p' "$conf")
  say "reusing the server already running in $dir on port $port"
else
  started=
  for port in $(seq 54329 54428); do
    port_in_use "$port" && continue
    write_conf "$port"
    seen=0
    if [[ -f $log ]]; then seen=$(wc -l < "$log"); fi
    # A port taken between the check and the start (another cluster starting
    # at the same time) fails the start: then try the next one.
    if as_owner "$bindir/pg_ctl" -D "$dir" -l "$log" -w -t 60 start </dev/null >&2; then
      started=1
      break
    fi
    tail -n +"$((seen + 1))" "$log" 2>/dev/null | grep -q 'could not bind\|could not create any TCP/IP sockets' \
      || die "the server in $dir did not start; the end of its log, $log:$(echo; tail -n 20 "$log" 2>/dev/null)"
    say "port $port is taken, trying the next"
  done
  [[ -n $started ]] || die "no free port in 54329-54428 on 127.0.0.1"
fi

for _ in $(seq 1 60); do
  "$bindir/pg_isready" -q -h 127.0.0.1 -p "$port" -U postgres && break
  sleep 0.5
done
"$bindir/pg_isready" -h 127.0.0.1 -p "$port" -U postgres >&2 \
  || die "the server in $dir does not accept connections on 127.0.0.1:$port; see $log"

psql=("$bindir/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres -d postgres)
if [[ -z $("${psql[@]}" -tA -c "SELECT 1 FROM pg_database WHERE datname = 'nn_gpu_test'") ]]; then
  "${psql[@]}" -c 'CREATE DATABASE nn_gpu_test' >&2
fi
say "server running in $dir (stop: $0 --stop $dir)"
echo "postgresql://postgres@127.0.0.1:$port/nn_gpu_test"
