# The integration phase of tests/run-tests.sh (sourced by it, never run:
# it adds to the runner's passed / failed / skipped counters).
#
# Integration tests mostly wait (for daemons, rounds, deadlines), so they
# run INTEGRATION_JOBS at a time, each script in its own process with its
# own log ($LOGS/integration-NAME.log) and its own $TEST_TMP, ports and keys
# (tests/integration/lib.sh). A result line is printed whole by this
# process when its test ends (in the order tests end), with the test's wall
# and CPU seconds; a failure prints its log's last lines under it. Scripts
# that mark themselves with a line "# runner: alone" (a timing bound that
# other tests' load could break) run first, one at a time, with nothing
# else running.
#
# Knobs: INTEGRATION_JOBS (default: nproc + 1, at least 2: the tests use
# about a third of a core each on average), TEST_FILTER (as for every
# phase). The longest tests of the previous run ($LOGS/integration-times)
# start first, so that no long test starts last and runs alone at the end.

s_int_default_jobs() {
  local n
  n=$(nproc 2>/dev/null || echo 2)
  [ "$n" -ge 1 ] || n=1
  n=$((n + 1))
  [ "$n" -ge 2 ] || n=2
  echo "$n"
}

# CPU seconds (user + sys) of the finished children, from `times`' second line.
s_int_cpu() {
  sed -n 2p "$1" 2>/dev/null | awk '{ s = 0; for (i = 1; i <= NF; i++) {
      split($i, a, "m"); sub("s", "", a[2]); s += a[1] * 60 + a[2] } printf "%.1f", s }'
}

# Starts one script in the background; the PID -> name map is s_int_name.
s_int_start() {
  local script=$1 name log
  name=$(basename "$script" .sh)
  log="$LOGS/integration-$name.log"
  rm -f "$log.times"
  ( timeout 600 bash "$script" >"$log" 2>&1
    rc=$?
    times >"$log.times"
    exit "$rc" ) &
  s_int_name[$!]=$name
  s_int_t0[$name]=$(date +%s%N)
}

# Waits for one running test to end and reports it.
s_int_reap() {
  local pid rc name log secs cpu
  wait -n -p pid
  rc=$?
  [ -n "${pid:-}" ] || return 1
  name=${s_int_name[$pid]}
  unset "s_int_name[$pid]"
  log="$LOGS/integration-$name.log"
  secs=$(( ($(date +%s%N) - ${s_int_t0[$name]}) / 1000000000 ))
  cpu=$(s_int_cpu "$log.times")
  echo "$name $secs" >>"$LOGS/integration-times.new"
  if [ "$rc" -eq 0 ]; then
    passed=$((passed + 1)); echo "ok   integration/$name (${secs}s, ${cpu}s cpu)"
  elif [ "$rc" -eq 77 ]; then
    # Exit 77 (automake's convention): the script could not run here and
    # says why on a "SKIP:" line; counted as skipped, never as passed.
    skipped=$((skipped + 1))
    echo "SKIP integration/$name: $(sed -n 's/^SKIP: //p' "$log" | head -n 1)"
  else
    s_fail 1 "integration/$name"
    echo "FAIL integration/$name (exit $rc, ${secs}s); last lines of $log:"
    tail -n 40 "$log" | sed 's/^/    /'
  fi
}

run_integration_tests() {
  local jobs=${INTEGRATION_JOBS:-$(s_int_default_jobs)}
  local script name alone=() rest=()
  declare -gA s_int_name=() s_int_t0=()
  for script in tests/integration/test_*.sh; do
    [ -f "$script" ] || continue
    name=$(basename "$script" .sh)
    [[ $name =~ $FILTER ]] || continue
    if grep -q '^# runner: alone' "$script"; then alone+=("$script"); else rest+=("$script"); fi
  done
  [ $((${#alone[@]} + ${#rest[@]})) -gt 0 ] || return 0
  # Longest first by the last run's times; tests without a time (new ones)
  # first of all, then the rest in name order.
  if [ -s "$LOGS/integration-times" ] && [ "${#rest[@]}" -gt 1 ]; then
    mapfile -t rest < <(for script in "${rest[@]}"; do
        name=$(basename "$script" .sh)
        t=$(awk -v n="$name" '$1 == n { t = $2 } END { print (t == "" ? 999999 : t) }' "$LOGS/integration-times")
        printf '%s\t%s\n' "$t" "$script"
      done | sort -s -t$'\t' -k1,1nr | cut -f2)
  fi
  echo "integration: ${#alone[@]} alone, then ${#rest[@]} at $jobs at a time (INTEGRATION_JOBS)"
  local t0=$SECONDS
  rm -f "$LOGS/integration-times.new"
  for script in "${alone[@]}"; do
    s_int_start "$script"
    s_int_reap
  done
  for script in "${rest[@]}"; do
    while [ "${#s_int_name[@]}" -ge "$jobs" ]; do s_int_reap || break; done
    s_int_start "$script"
  done
  while [ "${#s_int_name[@]}" -gt 0 ]; do s_int_reap || break; done
  for name in "${s_int_name[@]}"; do  # never: wait lost a child
    s_fail 1 "integration/$name"; echo "FAIL integration/$name: the runner lost its process"
  done
  # Keep the times of tests this run did not run (a TEST_FILTER run).
  if [ -f "$LOGS/integration-times" ]; then
    awk 'NR == FNR { seen[$1] = 1; next } !($1 in seen)' \
      "$LOGS/integration-times.new" "$LOGS/integration-times" >>"$LOGS/integration-times.new"
  fi
  mv "$LOGS/integration-times.new" "$LOGS/integration-times"
  echo "integration: $((${#alone[@]} + ${#rest[@]})) scripts in $((SECONDS - t0))s"
}
