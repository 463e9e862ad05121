#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/CMakeLists.txt) with clang in their own build directory and
# runs each for a set time. `make fuzz` runs it (60 s a target, growing a corpus under the build
# directory); the fuzz_smoke test runs it with --smoke (5 s a target over the seed corpus only).
# Exit status 1 when any target crashed, hung or failed a check; its input is kept as
# <build-dir>/fuzz-artifacts/<target>/crash-… (or timeout-…, leak-…, oom-…) with the log beside
# it — reproduce with <build-dir>/fuzz/<target>_fuzz <that file>.
#
#   fuzz/run_fuzzers.sh [--build-dir DIR] [--seconds N] [--smoke] [TARGET...]
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="$ROOT/build-fuzz"
SECONDS_EACH=60
SMOKE=0
TARGETS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --build-dir) BUILD_DIR="$2"; shift 2 ;;
    --seconds) SECONDS_EACH="$2"; shift 2 ;;
    --smoke) SMOKE=1; shift ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    -*) echo "run_fuzzers: unknown option $1" >&2; exit 2 ;;
    *) TARGETS+=("$1"); shift ;;
  esac
done
if [ ${#TARGETS[@]} -eq 0 ]; then
  TARGETS=(http_request multipart v1_json rest_request mcp_jsonrpc aca frame_reader cell_protocol config_file)
fi

if ! command -v clang++ >/dev/null; then
  echo "run_fuzzers: clang++ is missing; run scripts/install-deps.sh (Debian: clang, libclang-rt-14-dev)" >&2
  exit 1
fi

# -O1 is what libFuzzer's documentation uses; line tables are enough for the sanitizers' stacks.
# The smoke build, made once per build tree and then only rebuilt where sources changed, does
# without optimization: it compiles in about half the time and runs only seconds.
OPT="-O1"
if [ "$SMOKE" = 1 ]; then OPT="-O0"; fi
if [ ! -f "$BUILD_DIR/CMakeCache.txt" ]; then
  cmake -S "$ROOT" -B "$BUILD_DIR" -G Ninja -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE= \
        "-DCMAKE_CXX_FLAGS=$OPT -gline-tables-only" -DPYCELL_FUZZ=ON -DPYCELL_BUILD_TESTS=OFF \
        -DPYCELL_BUILD_BENCH=OFF >/dev/null
fi
cmake --build "$BUILD_DIR" --target pycell_fuzzers

# Undefined behaviour and leaks are crashes too (whatever `make sanitize` exported for its own
# binaries). The symbolizer (Debian: llvm-14) gives the stacks file:line.
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:symbolize=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:symbolize=1"
for symbolizer in "$(command -v llvm-symbolizer || true)" /usr/lib/llvm-14/bin/llvm-symbolizer; do
  if [ -x "$symbolizer" ]; then
    export ASAN_SYMBOLIZER_PATH="$symbolizer"
    break
  fi
done

failed=()
printf '%-14s %12s %9s %7s %8s  %s\n' target executions exec/s cov corpus result
for target in "${TARGETS[@]}"; do
  binary="$BUILD_DIR/fuzz/${target}_fuzz"
  seeds="$ROOT/fuzz/corpus/$target"
  artifacts="$BUILD_DIR/fuzz-artifacts/$target"
  mkdir -p "$artifacts"
  # New inputs go to the first directory: a corpus kept under the build directory (make fuzz
  # builds on what earlier runs found), or a throw-away one (smoke: the seeds alone).
  if [ "$SMOKE" = 1 ]; then
    work="$(mktemp -d)"
  else
    work="$BUILD_DIR/fuzz-corpus/$target"
    mkdir -p "$work"
  fi
  case "$target" in
    v1_json|rest_request|mcp_jsonrpc|aca) dict=json ;;
    http_request) dict=http ;;
    multipart) dict=multipart ;;
    config_file) dict=toml ;;
    *) dict="" ;;
  esac
  options=(-max_total_time="$SECONDS_EACH" -timeout=30 -rss_limit_mb=2048 -print_final_stats=1
           -artifact_prefix="$artifacts/")
  if [ -n "$dict" ]; then options+=(-dict="$ROOT/fuzz/dict/$dict.dict"); fi
  log="$artifacts/last-run.log"
  status=0
  "$binary" "${options[@]}" "$work" "$seeds" >"$log" 2>&1 || status=$?
  if [ "$SMOKE" = 1 ]; then rm -rf "$work"; fi
  executions=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  per_second=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  coverage=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
  corpus=$(grep -o 'corp: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
  result=ok
  if [ "$status" -ne 0 ]; then
    result="FAILED (exit $status; log $log)"
    failed+=("$target")
  fi
  printf '%-14s %12s %9s %7s %8s  %s\n' "$target" "${executions:--}" "${per_second:--}" \
         "${coverage:--}" "${corpus:--}" "$result"
  if [ "$status" -ne 0 ]; then
    grep -E 'ERROR|SUMMARY|_fuzz: |runtime error|Test unit written' "$log" | head -20 >&2 || true
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "run_fuzzers: failed: ${failed[*]}" >&2
  exit 1
fi
