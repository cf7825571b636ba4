#!/bin/sh
# bench/gateway/bench_gateway.sh: notification throughput of the gateway over
# HTTPS with keep-alive, committing to SQLite (WAL, synchronous=FULL), side by
# side with the same h2o + TLS setup answering 200 at once. Needs wrk and the
# openssl command (apt-get install wrk openssl).
#   bench/gateway/bench_gateway.sh [seconds=10] [connections=64] [wrk_threads=2] [gateway_threads=1]
set -eu
src=$(cd "$(dirname "$0")/../.." && pwd)
secs=${1:-10} conns=${2:-64} wthreads=${3:-2} gthreads=${4:-1}
command -v wrk >/dev/null || { echo "bench_gateway: needs wrk (apt-get install wrk)" >&2; exit 69; }
build=${BM_BENCH_BUILD:-/tmp/busymirror-bench-build}
if [ ! -f "$build/build.ninja" ]; then
    meson setup "$build" "$src" --buildtype=release -Db_ndebug=true >/dev/null
fi
ninja -C "$build" gateway/bench_gateway >/dev/null
tmp=$(mktemp -d /tmp/bm-bench-gw.XXXXXX)
pid=""
cleanup() { [ -z "$pid" ] || kill "$pid" 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT INT TERM
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=localhost \
    -keyout "$tmp/key.pem" -out "$tmp/cert.pem" 2>/dev/null

run() { # run MODE_FLAG LABEL
    rm -f "$tmp/port"
    "$build/gateway/bench_gateway" --cert "$tmp/cert.pem" --key "$tmp/key.pem" --db "$tmp/q.db" \
        --port-file "$tmp/port" --token-file "$tmp/token" --threads "$gthreads" $1 2>"$tmp/$2.log" &
    pid=$!
    i=0
    while [ ! -s "$tmp/port" ]; do
        i=$((i + 1)); [ $i -lt 100 ] || { cat "$tmp/$2.log" >&2; exit 1; }; sleep 0.1
    done
    BM_TOKEN=$(cat "$tmp/token") wrk -t"$wthreads" -c"$conns" -d"${secs}s" -s "$src/bench/gateway/notify.lua" \
        "https://127.0.0.1:$(cat "$tmp/port")/google/notify" | grep '^RESULT' | sed "s/^RESULT/$2/"
    kill "$pid"; wait "$pid" || true; pid=""
    grep 'commits of' "$tmp/$2.log" | sed 's/^bench_gateway: /  /' || true
}
echo "wrk: ${secs}s, $conns connections, $wthreads threads; gateway: $gthreads loop thread(s), TLS, HTTP/1.1 keep-alive"
noop=$(run --noop noop); echo "$noop"
commit=$(run "" commit); echo "$commit"
rps() { echo "$1" | head -1 | sed 's/.*rps=\([0-9.]*\).*/\1/'; }
awk -v c="$(rps "$commit")" -v n="$(rps "$noop")" 'BEGIN { printf "ratio commit/noop: %.2f (target >= 0.8)\n", c / n }'
