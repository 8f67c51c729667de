# Shared machinery of deploy/demo.sh and deploy/app.sh (sourced, never run):
# headings, errors, polling waits, the coordinator's bound endpoint and
# stopping every process the script started.
#
#   RUN_NAME   prefix of error messages (demo, app)
#   RUN_LOGS   directory whose *.log files are shown when the script fails
#   PIDS       array of the processes this script started (stopped on exit)

PIDS=()
# Stops every process in PIDS (only those: by id), then waits for them.
run_stop_all() {
  local pid
  for pid in "${PIDS[@]:-}"; do
    [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]:-}"; do
    [ -n "$pid" ] && wait "$pid" 2>/dev/null || true
  done
  PIDS=()
}
run_cleanup() {
  local rc=$?
  run_stop_all
  if [ $rc -ne 0 ]; then
    echo "$RUN_NAME: failed (exit $rc); logs are in $RUN_LOGS/" >&2
    for f in "$RUN_LOGS"/*.log; do
      [ -f "$f" ] || continue
      echo "--- $f (last 15 lines)" >&2; tail -n 15 "$f" >&2
    done
  fi
  exit $rc
}
trap run_cleanup EXIT
trap 'exit 130' INT TERM

# Bold headings on a terminal only, so logs and CI output stay plain text.
if [ -t 1 ]; then
  say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
else
  say() { printf '==> %s\n' "$*"; }
fi
die() { echo "$RUN_NAME: $*" >&2; exit 1; }
# Polls `cmd` every 0.1 s for at most $1 seconds.
wait_for() {
  local limit=$1; shift
  local deadline=$(( $(date +%s) + limit ))
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -le "$deadline" ] || return 1
    sleep 0.1
  done
}
# The endpoint a coordinator bound, from its log ("listening on tcp://...;").
endpoint_of() {
  sed -n 's/.*listening on \(tcp:\/\/[^;]*\);.*/\1/p' "$1" | head -n 1
}
