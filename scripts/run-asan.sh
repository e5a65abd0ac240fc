#!/usr/bin/env bash
# Builds the C++ core with AddressSanitizer + UBSan, runs the codec smoke test, then transcodes
# 1,000 randomly damaged corpus files. Any memory error, leak or undefined behaviour aborts with
# a report. The JPEG decoder's check and the codec smoke test (8 threads of transcodes) also run
# under ThreadSanitizer, with every helper thread on (docs/decisions/0012): a data race between
# the lanes of a decode or the planes of a resize aborts them.
set -o errexit -o nounset -o pipefail

corpus=${1:-../shared/corpus}
count=${2:-1000}
build=build/asan
tsan=build/tsan

cmake -S native -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DAPPLIANCE_SANITIZE=address -DAPPLIANCE_TESTS=ON >/dev/null
cmake --build "$build" --target damage_loop codecs_smoke jpeg_coefficients
cmake -S native -B "$tsan" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DAPPLIANCE_SANITIZE=thread -DAPPLIANCE_TESTS=ON >/dev/null
cmake --build "$tsan" --target jpeg_coefficients codecs_smoke
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
python native/tests/make_codec_samples.py "$corpus" build/codec_samples >/dev/null
"$build/codecs_smoke" "$corpus" build/codec_samples | tail -n 1
# Our JPEG entropy decoder against libjpeg-turbo's coefficients, coefficient for coefficient, and
# its scaled planes against an exact IDCT: the corpus as it is, and made progressive by jpegtran,
# with restart intervals, and with a scan script that refines DC and AC by successive
# approximation.
progressive=build/progressive_samples
rm -rf "$progressive" && mkdir -p "$progressive"
printf '%s\n' '0,1,2: 0-0, 0, 2;' '0: 1-5, 0, 2;' '1: 1-63, 0, 1;' '2: 1-63, 0, 1;' \
  '0: 6-63, 0, 2;' '0: 1-63, 2, 1;' '0,1,2: 0-0, 2, 1;' '0,1,2: 0-0, 1, 0;' '1: 1-63, 1, 0;' \
  '2: 1-63, 1, 0;' '0: 1-63, 1, 0;' >"$progressive/refine.scans"
for photo in "$corpus"/*.jpg; do
  name=$(basename "$photo")
  jpegtran -progressive -outfile "$progressive/p_$name" "$photo"
  jpegtran -progressive -restart 3B -outfile "$progressive/r_$name" "$photo"
  if [[ "$name" != *gray* ]]; then
    jpegtran -scans "$progressive/refine.scans" -restart 1 -outfile "$progressive/s_$name" "$photo"
  fi
done
"$build/jpeg_coefficients" --checks-only "$corpus"/*.jpg "$progressive"/*.jpg | tail -n 3
TSAN_OPTIONS=halt_on_error=1 APPLIANCE_DECODE_HELPERS=3 \
  "$tsan/jpeg_coefficients" --checks-only "$corpus"/*.jpg "$progressive"/*.jpg | tail -n 1
TSAN_OPTIONS=halt_on_error=1 APPLIANCE_DECODE_HELPERS=3 \
  "$tsan/codecs_smoke" "$corpus" build/codec_samples | tail -n 1
"$build/damage_loop" "$corpus" "$count"
