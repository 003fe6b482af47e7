#!/usr/bin/env bash
# HTTP requests per second of the server's capture route on loopback, against bare uvicorn.
#
# Starts the server (once per store engine) and then uvicorn serving plaintext_app.py, each
# on a free loopback port, and drives each with wrk for DURATION seconds. Every request to
# the server carries a registered session's payload host name (capture.lua cycles through
# NAMES of them), so the server records every one; /metrics shows how many it recorded.
# Both run one process on uvloop with the httptools parser.
#
# Environment variables:
#   PYTHON       interpreter with the interactsh package, uvicorn and uvloop (default python3)
#   DURATION     seconds per wrk run (default 15)
#   SESSIONS     sessions registered on the server (default 100)
#   NAMES        distinct payload host names (default 100000)
#   CONNECTIONS  wrk -c (default 50)
#   ENGINES      store engines to run the server with (default "rust python")
#   KEEP_WORK    set to keep the logs and wrk outputs in the temporary directory
# Needs wrk (Debian: apt-get install wrk).
set -euo pipefail

PYTHON=${PYTHON:-python3}
DURATION=${DURATION:-15}
SESSIONS=${SESSIONS:-100}
NAMES=${NAMES:-100000}
CONNECTIONS=${CONNECTIONS:-50}
ENGINES=${ENGINES:-"rust python"}
DOMAIN=oast.test
HERE=$(cd "$(dirname "$0")" && pwd)
HELPERS="$HERE/load_helpers.py"

if ! command -v wrk >/dev/null; then
    echo "load_http.sh: wrk is not installed: install it (Debian: apt-get install wrk)" >&2
    exit 2
fi
if ! [[ "$DURATION" =~ ^[0-9]+$ ]] || ((DURATION < 1 || DURATION > 300)); then
    echo "load_http.sh: DURATION=$DURATION must be whole seconds from 1 to 300" >&2
    exit 2
fi

WORK=$(mktemp -d /tmp/bench-http.XXXXXX)
STARTED_PID=""
cleanup() {
    if [[ -n "$STARTED_PID" ]] && kill -0 "$STARTED_PID" 2>/dev/null; then
        kill "$STARTED_PID" 2>/dev/null || true
        wait "$STARTED_PID" 2>/dev/null || true
    fi
    if [[ -n "${KEEP_WORK:-}" ]]; then echo "load_http.sh: files kept in $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

stop_started() {
    kill "$STARTED_PID"
    wait "$STARTED_PID" || true
    STARTED_PID=""
}

# Runs wrk against 127.0.0.1 port $1 with the names file; the full output goes to $2. Sets RPS
# and REQUESTS, and fails when a response was not 2xx or 3xx or a socket error occurred.
run_wrk() {
    wrk -t 1 -c "$CONNECTIONS" -d "${DURATION}s" -s "$HERE/capture.lua" "http://127.0.0.1:$1/" \
        -- "$WORK/names.txt" >"$2" 2>&1
    RPS=$(awk '/Requests\/sec:/ {print $2}' "$2")
    REQUESTS=$(awk '/requests in/ {print $1}' "$2")
    if grep -qE 'Non-2xx|Socket errors' "$2"; then
        echo "load_http.sh: wrk saw failed requests:" >&2
        cat "$2" >&2
        exit 1
    fi
}

# Runs the interactsh server with store engine $1; sets RPS, REQUESTS and COUNTERS.
measure_server() {
    local engine=$1 ports http_port url
    read -r -a ports <<<"$("$PYTHON" "$HELPERS" ports 7)"
    http_port=${ports[1]}
    url="http://127.0.0.1:$http_port"
    HOME="$WORK" "$PYTHON" -m interactsh.cli -listen-ip 127.0.0.1 -ip 127.0.0.1 -domain "$DOMAIN" \
        -dns-port "${ports[0]}" -http-port "$http_port" -https-port "${ports[2]}" -smtp-port "${ports[3]}" \
        -smtps-port "${ports[4]}" -smtp-autotls-port "${ports[5]}" -ldap-port "${ports[6]}" \
        -store-engine "$engine" -metrics >"$WORK/server-$engine.log" 2>&1 &
    STARTED_PID=$!
    "$PYTHON" "$HELPERS" wait-tcp "$http_port" 30
    "$PYTHON" "$HELPERS" register "$url" "$SESSIONS" >"$WORK/ids.txt"
    "$PYTHON" "$HELPERS" names "$WORK/ids.txt" "$NAMES" "$DOMAIN" >"$WORK/names.txt"
    run_wrk "$http_port" "$WORK/wrk-$engine.txt"
    COUNTERS=$("$PYTHON" "$HELPERS" metrics "$url")
    stop_started
    if grep -q Traceback "$WORK/server-$engine.log"; then
        echo "load_http.sh: the server logged a traceback:" >&2
        cat "$WORK/server-$engine.log" >&2
        exit 1
    fi
}

# Runs uvicorn with plaintext_app.py; sets RPS and REQUESTS.
measure_uvicorn() {
    local port
    port=$("$PYTHON" "$HELPERS" ports 1)
    "$PYTHON" -m uvicorn plaintext_app:app --app-dir "$HERE" --host 127.0.0.1 --port "$port" \
        --http httptools --loop uvloop --lifespan off --no-access-log --no-server-header \
        --log-level warning >"$WORK/uvicorn.log" 2>&1 &
    STARTED_PID=$!
    "$PYTHON" "$HELPERS" wait-tcp "$port" 30
    run_wrk "$port" "$WORK/wrk-uvicorn.txt"
    stop_started
}

echo "# load_http.sh: wrk -t 1 -c $CONNECTIONS -d ${DURATION}s, $NAMES host names over $SESSIONS sessions"
uvicorn_rps=""
for engine in $ENGINES; do
    measure_server "$engine"
    server_rps=$RPS
    echo "server ($engine store): $server_rps requests/s, $REQUESTS requests, counters $COUNTERS"
    if [[ -z "$uvicorn_rps" ]]; then
        # uvicorn gets the same requests, from the names file that the first server run wrote.
        measure_uvicorn
        uvicorn_rps=$RPS
        echo "uvicorn plaintext: $uvicorn_rps requests/s, $REQUESTS requests"
    fi
    awk -v a="$server_rps" -v b="$uvicorn_rps" -v e="$engine" \
        'BEGIN { printf "ratio server (%s store) / uvicorn plaintext: %.3f (target >= 0.6)\n", e, a / b }'
done
