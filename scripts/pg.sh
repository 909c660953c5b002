#!/usr/bin/env bash
# A throwaway PostgreSQL cluster under the project folder (.drover/pg), on a free loopback port.
#   scripts/pg.sh start | stop | restart | url | status
# As root, initdb refuses to run, so the server runs as the unprivileged 'postgres' user.
# DROVER_PG_OPTIONS adds server options (benchmarks load pg_stat_statements with it); tests use none.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
home=${DROVER_PG_HOME:-$root/.drover/pg}
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[[ -n $bin ]] || { echo "pg.sh: no PostgreSQL server found (run scripts/deps.sh)" >&2; exit 1; }

# The cluster's real folder: .drover/pg itself, or the /tmp folder it links to.
data() { echo "$(readlink -f "$home")/data"; }

as_pg() {
    if [[ $(id -u) -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

free_port() {
    local port
    for port in $(shuf -i 55432-55632); do
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then echo "$port"; return; fi
    done
    echo "pg.sh: no free port in 55432-55632" >&2
    exit 1
}

start() {
    stop_quietly
    rm -rf "$home"
    mkdir -p "$(dirname "$home")"
    if [[ $(id -u) -eq 0 ]]; then
        id postgres >/dev/null 2>&1 || useradd --system --home-dir /var/lib/postgresql --shell /bin/false postgres
        mkdir -p "$home"
        chown postgres: "$home"
        if ! runuser -u postgres -- test -w "$home"; then
            # The project folder is not reachable by 'postgres' (e.g. under /root): keep the
            # cluster in /tmp and leave a link to it in the project folder.
            rmdir "$home"
            local dir
            dir=$(mktemp -d /tmp/drover-pg.XXXXXX)
            chown postgres: "$dir"
            ln -s "$dir" "$home"
        fi
    else
        mkdir -p "$home"
    fi
    local port
    echo "pg.sh: initdb in $home" >&2
    as_pg "$bin/initdb" -D "$(data)" -U drover --auth=trust -E UTF8 --no-instructions >"$home.initdb.log" 2>&1 \
        || { cat "$home.initdb.log" >&2; exit 1; }
    # A port nothing listens on may still be bound (a client's ephemeral port): try a few.
    local attempt
    for attempt in 1 2 3 4 5; do
        port=$(free_port)
        if as_pg "$bin/pg_ctl" -D "$(data)" -l "$(data)/server.log" -w -t 60 start -o \
            "-p $port -k $(data) -c listen_addresses=127.0.0.1 -c fsync=on ${DROVER_PG_OPTIONS:-}" >/dev/null; then
            break
        fi
        [[ $attempt -lt 5 ]] || { tail -5 "$(data)/server.log" >&2; exit 1; }
        echo "pg.sh: port $port is taken; trying another" >&2
        sleep 1
    done
    as_pg "$bin/createdb" -h 127.0.0.1 -p "$port" -U drover drover
    echo "$port" >"$home/port"
    echo "pg.sh: PostgreSQL $("$bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$port" >&2
}

stop_quietly() {
    if [[ -e $home && -f $(data)/postmaster.pid ]]; then
        as_pg "$bin/pg_ctl" -D "$(data)" -m fast -w stop >/dev/null 2>&1 || true
    fi
}

case "${1:-}" in
    start) start ;;
    stop)
        stop_quietly
        target=$(readlink -f "$home" || true)
        rm -rf "$home" "$home.initdb.log"
        if [[ $target == /tmp/drover-pg.* ]]; then rm -rf "$target"; fi
        ;;
    restart) as_pg "$bin/pg_ctl" -D "$(data)" -m fast -w -t 60 restart >/dev/null ;;
    url) echo "postgresql://drover@127.0.0.1:$(cat "$home/port")/drover" ;;
    status) as_pg "$bin/pg_ctl" -D "$(data)" status ;;
    *) echo "usage: scripts/pg.sh start|stop|restart|url|status" >&2; exit 2 ;;
esac
