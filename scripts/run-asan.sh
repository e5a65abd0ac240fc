#!/usr/bin/env bash
# Builds the C++ core with AddressSanitizer + UBSan, runs the codec smoke test, then transcodes
# 1,000 randomly damaged corpus files. Any memory error, leak or undefined behaviour aborts with
# a report.
set -o errexit -o nounset -o pipefail

corpus=${1:-../shared/corpus}
count=${2:-1000}
build=build/asan

cmake -S native -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DAPPLIANCE_SANITIZE=ON -DAPPLIANCE_TESTS=ON >/dev/null
cmake --build "$build" --target damage_loop codecs_smoke
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
python native/tests/make_codec_samples.py "$corpus" build/codec_samples >/dev/null
"$build/codecs_smoke" "$corpus" build/codec_samples | tail -n 1
"$build/damage_loop" "$corpus" "$count"
