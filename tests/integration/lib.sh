# Helpers for integration tests: sourced, never run. Tests start the real
# binaries from build/bin, poll for conditions with deadlines (never a bare
# sleep for correctness), and clean up every process they start.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BIN=${METAFL_BIN:-$ROOT/build/bin}   # METAFL_BIN: test another build
export PATH="$BIN:$PATH"
TEST_TMP=$(mktemp -d "${TMPDIR:-/tmp}/metafl-test.XXXXXX")
_PIDS=()

# Starts a command in the background, its output to $TEST_TMP/NAME.log.
# Usage: start_bg NAME cmd args...   (sets LAST_PID)
start_bg() {
  local name=$1; shift
  "$@" >"$TEST_TMP/$name.log" 2>&1 &
  LAST_PID=$!
  _PIDS+=("$LAST_PID")
}

# Polls `cmd` every 0.1 s until it succeeds or SECONDS_LIMIT passes.
# Usage: wait_for SECONDS_LIMIT cmd args...
wait_for() {
  local limit=$1; shift
  local deadline=$(( $(date +%s%N) + limit * 1000000000 ))
  until "$@" >/dev/null 2>&1; do
    if [ "$(date +%s%N)" -gt "$deadline" ]; then
      echo "timed out after ${limit}s waiting for: $*" >&2
      return 1
    fi
    sleep 0.1
  done
}

fail() { echo "FAIL: $*" >&2; exit 1; }

_cleanup() {
  local rc=$?
  for pid in "${_PIDS[@]:-}"; do
    [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  if [ $rc -ne 0 ]; then
    for f in "$TEST_TMP"/*.log; do
      [ -f "$f" ] || continue
      echo "--- $f (last 30 lines)"; tail -n 30 "$f"
    done
  fi
  rm -rf "$TEST_TMP"
}
trap _cleanup EXIT
