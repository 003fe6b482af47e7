#!/usr/bin/env bash
# Runs every benchmark of benches/ in turn and writes the outputs and a machine description
# into the directory $1, for docs/benchmarks.md.
#
# Environment variables:
#   PYTHON  interpreter with a release build of the interactsh package, pytest-benchmark,
#           redis and dnspython installed (default python3)
#   COUNT   records per kind and engine in resident_bytes.py (default 1000000)
#   plus the variables of load_dns.sh and load_http.sh (DURATION...).
set -euo pipefail

if [[ $# -ne 1 ]]; then
    echo "usage: benches/run_all.sh OUTPUT_DIRECTORY" >&2
    exit 2
fi
OUT=$1
PYTHON=${PYTHON:-python3}
COUNT=${COUNT:-1000000}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
mkdir -p "$OUT"
export PYTHON

describe_machine() {
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "nproc: $(nproc)"
    echo "cpu: $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)"
    echo "memory: $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)"
    echo "kernel: $(uname -srm)"
    echo "python: $("$PYTHON" --version 2>&1)"
    echo "rustc: $(rustc --version 2>/dev/null || echo 'not installed')"
    echo "extension: $("$PYTHON" -c 'import interactsh._core as core; print(core.__file__)')"
    # The extension may come from a wheel built from another tree: record its source separately.
    echo "checkout HEAD: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo 'not a git checkout')"
    echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
}

describe_machine >"$OUT/machine.txt"
cd "$ROOT"
echo "store engines (pytest-benchmark)..." >&2
# CPU time of the process, not wall time: on a shared machine, time spent descheduled would
# otherwise land in whichever round was running.
"$PYTHON" -m pytest benches/test_store_bench.py --benchmark-only -p no:cacheprovider \
    --benchmark-timer time.process_time --benchmark-json "$OUT/store.json" >"$OUT/store.txt" 2>&1
"$PYTHON" benches/ratios.py "$OUT/store.json" >"$OUT/store.md"
echo "resident bytes ($COUNT records per kind and engine)..." >&2
"$PYTHON" benches/resident_bytes.py --count "$COUNT" --json "$OUT/resident.json" >"$OUT/resident.md"
echo "DNS load..." >&2
bash benches/load_dns.sh >"$OUT/dns.txt"
echo "HTTP load..." >&2
bash benches/load_http.sh >"$OUT/http.txt"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/machine.txt"
echo "outputs in $OUT" >&2
