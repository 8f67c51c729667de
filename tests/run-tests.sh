#!/usr/bin/env bash
# Runs every test metafl has and ends with one line
# "N passed, M failed, K skipped" (skips name what was absent, e.g. ../shared).
#   unit        build/tests/test_*        (cmocka; each case counts)
#   sanitized   build/san/tests/test_*    (the same cases under ASan+UBSan)
#   fuzz        build/fuzz/bin/fuzz_*     (libFuzzer, FUZZ_SECONDS each, FUZZ_JOBS at once)
#   integration tests/integration/test_*.sh (real processes; a script counts;
#               exit 77 with a "SKIP: why" line counts as skipped;
#               INTEGRATION_JOBS at once, tests/run-integration.sh)
# Environment: TEST_FILTER=regex runs only matching names; FUZZ_SECONDS
# (default 10); FUZZ_JOBS, INTEGRATION_JOBS. Logs of every run go to
# build/test-logs/.
set -u
cd "$(dirname "$0")/.."
LOGS=build/test-logs
mkdir -p "$LOGS"
FILTER=${TEST_FILTER:-.}
FUZZ_SECONDS=${FUZZ_SECONDS:-10}
passed=0
failed=0
skipped=0
failures=()

s_fail() { failed=$((failed + $1)); failures+=("$2"); }

# A cmocka binary: count its passed and failed cases; a crash that leaves no
# summary counts as one failure.
run_unit() {
  local bin=$1 label=$2 log
  log="$LOGS/${label//\//-}.log"
  timeout 600 "$bin" >"$log" 2>&1
  local rc=$?
  local p f
  p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$log" | tail -n 1)
  f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$log" | tail -n 1)
  local k
  k=$(sed -n 's/^\[  SKIPPED \] \([0-9]*\) test.*/\1/p' "$log" | tail -n 1)
  p=${p:-0}; f=${f:-0}; k=${k:-0}
  skipped=$((skipped + k))
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
  passed=$((passed + p))
  if [ "$f" -gt 0 ]; then
    s_fail "$f" "$label"
    echo "FAIL $label ($f failed, exit $rc); last lines of $log:"
    tail -n 25 "$log" | sed 's/^/    /'
  else
    if [ "$k" -gt 0 ]; then
      echo "ok   $label ($p cases, $k SKIPPED:"; grep -iE 'skip|absent|not found' "$log" | head -n 5 | sed 's/^/       /'; echo "     )"
    else
      echo "ok   $label ($p cases)"
    fi
  fi
}

for bin in build/tests/test_*; do
  [ -x "$bin" ] || continue
  name=$(basename "$bin")
  [[ $name =~ $FILTER ]] || continue
  run_unit "$bin" "unit/$name"
done

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
for bin in build/san/tests/test_*; do
  [ -x "$bin" ] || continue
  name=$(basename "$bin")
  [[ $name =~ $FILTER ]] || continue
  run_unit "$bin" "asan+ubsan/$name"
done

# Fuzz targets are single-threaded: run FUZZ_JOBS of them at once (default:
# every core), each for FUZZ_SECONDS, then report them in name order.
FUZZ_JOBS=${FUZZ_JOBS:-$(nproc)}
fuzz_names=()
for bin in build/fuzz/bin/fuzz_*; do
  [ -x "$bin" ] || continue
  name=$(basename "$bin")
  [[ $name =~ $FILTER ]] || continue
  while [ "$(jobs -rp | wc -l)" -ge "$FUZZ_JOBS" ]; do wait -n || true; done
  seeds=tests/fuzz/corpus/${name#fuzz_}
  work=build/fuzz/corpus/${name#fuzz_}
  mkdir -p "$work"
  dirs=("$work"); [ -d "$seeds" ] && dirs+=("$seeds")
  log="$LOGS/fuzz-$name.log"
  rm -f "$log.rc"
  ( timeout $((FUZZ_SECONDS + 120)) "$bin" -max_total_time="$FUZZ_SECONDS" -rss_limit_mb=2048 \
      -artifact_prefix="build/fuzz/crash-$name-" "${dirs[@]}" >"$log" 2>&1
    echo $? >"$log.rc" ) &
  fuzz_names+=("$name")
done
wait
for name in "${fuzz_names[@]}"; do
  log="$LOGS/fuzz-$name.log"
  if [ "$(cat "$log.rc" 2>/dev/null)" = 0 ]; then
    passed=$((passed + 1)); echo "ok   fuzz/$name (${FUZZ_SECONDS}s)"
  else
    s_fail 1 "fuzz/$name"
    echo "FAIL fuzz/$name; last lines of $log:"; tail -n 30 "$log" | sed 's/^/    /'
  fi
done

# Integration tests: several at a time (INTEGRATION_JOBS), tests/run-integration.sh.
source tests/run-integration.sh
run_integration_tests

echo
if [ "$failed" -gt 0 ]; then
  echo "failed: ${failures[*]}"
fi
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
