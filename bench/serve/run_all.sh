#!/bin/sh
# bench/serve/run_all.sh [build-dir] [soak-seconds]: the four serve benchmarks one
# after another against a RELEASE build (default build-release; make it with
# `meson setup build-release --buildtype=release && ninja -C build-release`).
# Takes about 20 minutes with the defaults (soak 300 s, paced mirror ~11 min).
set -eu
here=$(dirname "$0")
build=${1:-build-release}
soak=${2:-300}
for b in "$build/cli/busymirror" "$build/emulator/gcal-emulator"; do
    [ -x "$b" ] || { echo "run_all.sh: $b missing: build a release tree first" >&2; exit 2; }
done
echo "== push latency"; python3 "$here/push_latency.py" --build "$build"
echo "== coalescing";   python3 "$here/coalescing.py" --build "$build"
echo "== memory soak";  python3 "$here/memory_soak.py" --build "$build" --duration "$soak"
echo "== paced mirror"; python3 "$here/paced_mirror.py" --build "$build"
