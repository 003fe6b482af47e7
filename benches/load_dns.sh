#!/usr/bin/env bash
# DNS queries per second of the server on loopback, every query recorded, against NSD.
#
# Starts the server (once per store engine) and NSD in turn on free loopback ports, each
# serving oast.test with the same response shape (A record, NS authority, glue), and drives
# each with dnsperf for DURATION seconds. Every query names a registered session, so the
# server records every one; /metrics shows how many it recorded. NSD runs one server
# process (server-count 1), as the server runs one event loop.
#
# Environment variables:
#   PYTHON       interpreter with the interactsh package and dnspython (default python3)
#   DURATION     seconds per dnsperf run (default 15)
#   SESSIONS     sessions registered on the server (default 100)
#   NAMES        distinct query names (default 100000)
#   OUTSTANDING  dnsperf -q, queries in flight (default 100)
#   ENGINES      store engines to run the server with (default "rust python")
#   KEEP_WORK    set to keep the logs and dnsperf outputs in the temporary directory
# Needs dnsperf and nsd (Debian: apt-get install dnsperf nsd).
set -euo pipefail

PYTHON=${PYTHON:-python3}
DURATION=${DURATION:-15}
SESSIONS=${SESSIONS:-100}
NAMES=${NAMES:-100000}
OUTSTANDING=${OUTSTANDING:-100}
ENGINES=${ENGINES:-"rust python"}
DOMAIN=oast.test
HERE=$(cd "$(dirname "$0")" && pwd)
HELPERS="$HERE/load_helpers.py"

for tool in dnsperf nsd; do
    if ! command -v "$tool" >/dev/null; then
        echo "load_dns.sh: $tool is not installed: install it (Debian: apt-get install dnsperf nsd)" >&2
        exit 2
    fi
done
if ! [[ "$DURATION" =~ ^[0-9]+$ ]] || ((DURATION < 1 || DURATION > 300)); then
    echo "load_dns.sh: DURATION=$DURATION must be whole seconds from 1 to 300" >&2
    exit 2
fi

WORK=$(mktemp -d /tmp/bench-dns.XXXXXX)
STARTED_PID=""
cleanup() {
    if [[ -n "$STARTED_PID" ]] && kill -0 "$STARTED_PID" 2>/dev/null; then
        kill "$STARTED_PID" 2>/dev/null || true
        wait "$STARTED_PID" 2>/dev/null || true
    fi
    if [[ -n "${KEEP_WORK:-}" ]]; then echo "load_dns.sh: files kept in $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

stop_started() {
    kill "$STARTED_PID"
    wait "$STARTED_PID" || true
    STARTED_PID=""
}

# Prints the queries per second of one dnsperf run against 127.0.0.1 port $1; the full
# output goes to $2.
run_dnsperf() {
    dnsperf -s 127.0.0.1 -p "$1" -d "$WORK/queries.txt" -l "$DURATION" -q "$OUTSTANDING" >"$2" 2>&1
    awk '/Queries per second:/ {print $4}' "$2"
}

# Runs the interactsh server with store engine $1; sets QPS, COMPLETED and COUNTERS.
measure_server() {
    local engine=$1 ports dns_port http_port url
    read -r -a ports <<<"$("$PYTHON" "$HELPERS" ports 7)"
    dns_port=${ports[0]}
    http_port=${ports[1]}
    url="http://127.0.0.1:$http_port"
    HOME="$WORK" "$PYTHON" -m interactsh.cli -listen-ip 127.0.0.1 -ip 127.0.0.1 -domain "$DOMAIN" \
        -dns-port "$dns_port" -http-port "$http_port" -https-port "${ports[2]}" -smtp-port "${ports[3]}" \
        -smtps-port "${ports[4]}" -smtp-autotls-port "${ports[5]}" -ldap-port "${ports[6]}" \
        -store-engine "$engine" -metrics >"$WORK/server-$engine.log" 2>&1 &
    STARTED_PID=$!
    "$PYTHON" "$HELPERS" wait-tcp "$http_port" 30
    "$PYTHON" "$HELPERS" register "$url" "$SESSIONS" >"$WORK/ids.txt"
    "$PYTHON" "$HELPERS" names "$WORK/ids.txt" "$NAMES" "$DOMAIN" --dnsperf >"$WORK/queries.txt"
    QPS=$(run_dnsperf "$dns_port" "$WORK/dnsperf-$engine.txt")
    COMPLETED=$(awk '/Queries completed:/ {print $3}' "$WORK/dnsperf-$engine.txt")
    COUNTERS=$("$PYTHON" "$HELPERS" metrics "$url")
    stop_started
    if grep -q Traceback "$WORK/server-$engine.log"; then
        echo "load_dns.sh: the server logged a traceback:" >&2
        cat "$WORK/server-$engine.log" >&2
        exit 1
    fi
}

# Writes the NSD configuration and zone for oast.test into $WORK/nsd, listening on port $1.
write_nsd_config() {
    local port=$1 dir="$WORK/nsd"
    mkdir -p "$dir"
    cat >"$dir/$DOMAIN.zone" <<EOF
\$ORIGIN $DOMAIN.
\$TTL 3600
@    IN SOA ns1.$DOMAIN. mail.$DOMAIN. 1 3600 600 86400 3600
@    IN NS  ns1.$DOMAIN.
@    IN NS  ns2.$DOMAIN.
ns1  IN A   127.0.0.1
ns2  IN A   127.0.0.1
*    IN A   127.0.0.1
EOF
    cat >"$dir/nsd.conf" <<EOF
server:
    ip-address: 127.0.0.1@$port
    server-count: 1
    username: ""
    chroot: ""
    zonesdir: "$dir"
    database: ""
    zonelistfile: "$dir/zone.list"
    xfrdfile: "$dir/xfrd.state"
    pidfile: "$dir/nsd.pid"
    logfile: "$dir/nsd.log"
    verbosity: 0
    # Debian builds NSD with response rate limiting on (200 responses a second per /24 by
    # default), which would drop most of dnsperf's queries from 127.0.0.1.
    rrl-ratelimit: 0
    rrl-whitelist-ratelimit: 0
    # Include the NS authority and glue in every response, as the interactsh server does.
    minimal-responses: no
remote-control:
    control-enable: no
zone:
    name: $DOMAIN
    zonefile: "$dir/$DOMAIN.zone"
EOF
}

# Runs NSD; sets QPS.
measure_nsd() {
    local port
    port=$("$PYTHON" "$HELPERS" ports 1)
    write_nsd_config "$port"
    nsd -d -c "$WORK/nsd/nsd.conf" >"$WORK/nsd/stdout.log" 2>&1 &
    STARTED_PID=$!
    "$PYTHON" "$HELPERS" wait-dns "$port" "ready.$DOMAIN" 30
    QPS=$(run_dnsperf "$port" "$WORK/dnsperf-nsd.txt")
    stop_started
}

echo "# load_dns.sh: dnsperf -l $DURATION -q $OUTSTANDING, $NAMES names over $SESSIONS sessions"
nsd_qps=""
for engine in $ENGINES; do
    measure_server "$engine"
    server_qps=$QPS
    echo "server ($engine store): $server_qps queries/s, $COMPLETED completed, counters $COUNTERS"
    if [[ -z "$nsd_qps" ]]; then
        # NSD gets the query file that the first server run wrote.
        measure_nsd
        nsd_qps=$QPS
        echo "nsd (server-count 1): $nsd_qps queries/s"
    fi
    awk -v a="$server_qps" -v b="$nsd_qps" -v e="$engine" \
        'BEGIN { printf "ratio server (%s store) / nsd: %.3f (target >= 0.5)\n", e, a / b }'
done
