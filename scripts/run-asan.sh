#!/usr/bin/env bash
# Builds the C++ core with AddressSanitizer + UBSan and transcodes 1,000
# randomly damaged corpus files with it. Any memory error aborts with a report.
set -o errexit -o nounset -o pipefail

corpus=${1:-../shared/corpus}
count=${2:-1000}
build=build/asan

cmake -S native -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DAPPLIANCE_SANITIZE=ON -DAPPLIANCE_TESTS=ON >/dev/null
cmake --build "$build" --target damage_loop
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
  "$build/damage_loop" "$corpus" "$count"
