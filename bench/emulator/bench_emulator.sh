#!/bin/sh
# bench/emulator/bench_emulator.sh: builds gcal-emulator and its benchmark in a
# release build dir (no sanitizers) and prints list pages/s and batch inserts/s.
#   bench/emulator/bench_emulator.sh [batches=200] [list_rounds=5]
set -eu
src=$(cd "$(dirname "$0")/../.." && pwd)
build=${BM_BENCH_BUILD:-/tmp/busymirror-bench-build}
if [ ! -f "$build/build.ninja" ]; then
    meson setup "$build" "$src" --buildtype=release -Db_ndebug=true >/dev/null
fi
ninja -C "$build" emulator/gcal-emulator emulator/bench_emulator >/dev/null
exec "$build/emulator/bench_emulator" "$build/emulator/gcal-emulator" "${1:-200}" "${2:-5}"
