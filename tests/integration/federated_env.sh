# Fixture for the federated integration tests (sourced after lib.sh, never
# run): keys, three synthetic hospitals, site configs and a coordinator
# config, all under $TEST_TMP. Small model, short deadlines: each test
# stays well under a minute.
#
#   fed_setup ROUNDS [extra coordinator YAML lines...]
#       creates $TEST_TMP/{keys,allow,data,sites,coordinator.yaml} with a
#       free port in $FED_PORT; sites site-a, site-b, site-c.
#   fed_site NAME [agent args...]     starts one site agent (LAST_PID)
#   fed_coordinator [args...]         starts the coordinator (LAST_PID)
#   fed_rounds_done RUN_DIR           rounds closed so far (metrics lines)
#   fed_final_hash RUN_DIR            θ BLAKE2b after the last closed round
#   fed_simulate CONFIG               `metafl simulate` into ./sim ($sim_hash)
#   fed_secagg_setup ROUNDS [...]     fed_setup + secure aggregation + rosters
#   fed_run_exit_after_eval SECONDS [site args...]
#                                     coordinator + every site, to the end
#   fed_coordinator_finishes PID SECONDS [LOG]   waits for a clean exit
#   (and the others below, each with its own comment)

FED_SITES=(site-a site-b site-c)

# A free TCP port on 127.0.0.1, reserved for this test (lib.sh free_port).
fed_free_port() { free_port; }

# Deterministic synthetic rows: y = [x1 + 0.5 x2 − x3 + noise > 0], site
# offset shifts the feature distribution (non-IID hospitals).
fed_make_csv() {
  local path=$1 seed=$2 rows=$3 shift=$4
  awk -v seed="$seed" -v n="$rows" -v sh="$shift" 'BEGIN {
    srand(seed); print "x1,x2,x3,y";
    for (i = 0; i < n; i++) {
      x1 = rand() * 4 - 2 + sh; x2 = rand() * 4 - 2; x3 = rand() * 4 - 2 - sh / 2;
      z = x1 + 0.5 * x2 - x3 + (rand() - 0.5);
      printf "%.4f,%.4f,%.4f,%d\n", x1, x2, x3, (z > 0) ? 1 : 0;
    }
  }' >"$path"
}

fed_setup() {
  local rounds=$1; shift
  mkdir -p "$TEST_TMP"/{keys,allow,data,sites}
  metafl keygen coordinator --dir "$TEST_TMP/keys" >/dev/null
  local i=0
  for s in "${FED_SITES[@]}"; do
    metafl keygen "$s" --dir "$TEST_TMP/keys" >/dev/null
    cp "$TEST_TMP/keys/$s.pub" "$TEST_TMP/allow/"
    mkdir -p "$TEST_TMP/run-$s"
    fed_make_csv "$TEST_TMP/data/$s.csv" $((11 + i)) 240 "$(awk -v i=$i 'BEGIN{print (i-1)*0.5}')"
    i=$((i + 1))
  done
  FED_PORT=$(fed_free_port)
  for s in "${FED_SITES[@]}"; do
    cat >"$TEST_TMP/sites/$s.yaml" <<EOF
site:
  id: $s
  key_file: ../keys/$s.key
coordinator:
  endpoint: tcp://127.0.0.1:$FED_PORT
  public_key: ../keys/coordinator.pub
data:
  source: csv
  path: ../data/$s.csv
  train_fraction: 0.75
  split_seed: 3
  standardize: site
  schema:
    header: true
    columns:
      - x1
      - x2
      - x3
      - {name: y, kind: label, rule: class, n_classes: 2}
runtime:
  threads: 1
audit:
  log: ../run-$s/audit.log
limits:
  heartbeat_s: 0.5
EOF
  done
  cat >"$TEST_TMP/coordinator.yaml" <<EOF
coordinator:
  listen: tcp://127.0.0.1:$FED_PORT
  key: keys/coordinator.key
  allow_dir: allow
  run_dir: run
model:
  spec: mlp:3-8-1
  loss: bce
  init_seed: 5
algorithm:
  name: reptile
  inner_steps: 5
  inner_lr: 0.05
  meta_batch: 2
  outer_steps: 2
  outer_lr: 1.0
  batch_size: 32
rounds:
  count: $rounds
  min_sites: 2
  wait_for_sites: 3
  deadline_s: 20
  seed: 7
server:
  optimizer: sgd
  lr: 1.0
eval:
  adapt_steps: 5
  adapt_lr: 0.05
  deadline_s: 10
limits:
  heartbeat_s: 0.5
  site_timeout_s: 30
sites:
  - sites/site-a.yaml
  - sites/site-b.yaml
  - sites/site-c.yaml
EOF
  # Extra lines replace whole top-level keys: pass them as "KEY.SUB: value"
  # pairs handled by a tiny rewriter (keeps the YAML above the single source).
  for kv in "$@"; do
    local key=${kv%%=*} val=${kv#*=}
    local sect=${key%%.*} sub=${key#*.}
    python3 - "$TEST_TMP/coordinator.yaml" "$sect" "$sub" "$val" <<'PY'
import sys
path, sect, sub, val = sys.argv[1:]
lines = open(path).read().split("\n")
out, in_sect, done = [], False, False
for ln in lines:
    if ln and not ln.startswith(" "):
        if in_sect and not done:
            out.append(f"  {sub}: {val}"); done = True
        in_sect = ln.rstrip(":") == sect
    if in_sect and ln.strip().startswith(sub + ":"):
        out.append(f"  {sub}: {val}"); done = True; continue
    out.append(ln)
if not done:
    out.append(f"{sect}:\n  {sub}: {val}")
open(path, "w").write("\n".join(out))
PY
  done
}

fed_site() {
  local name=$1; shift
  start_bg "$name" metafl-site-agent --config "$TEST_TMP/sites/$name.yaml" "$@"
}

fed_coordinator() {
  start_bg coordinator metafl-coordinator --config "$TEST_TMP/coordinator.yaml" "$@"
}

# fed_run_to_end: every site agent and the coordinator started, then waits
# (up to 90 s) until the coordinator has finished its rounds and exited.
fed_run_to_end() {
  local s
  for s in "${FED_SITES[@]}"; do fed_site "$s"; done
  fed_coordinator
  local coord=$LAST_PID
  _fed_coord_gone() { ! kill -0 "$coord" 2>/dev/null; }
  wait_for 90 _fed_coord_gone || fail "the coordinator did not finish its rounds"
}

fed_rounds_done() {
  local f=$1/metrics.jsonl
  [ -f "$f" ] || { echo 0; return; }
  grep -c '"event":"round"' "$f" || true
}

fed_final_hash() {
  grep '"event":"round"' "$1/metrics.jsonl" | tail -n 1 | sed 's/.*"theta_blake2b":"\([0-9a-f]*\)".*/\1/'
}

# fed_secagg_rosters: gives each site its own secure-aggregation roster (a
# copy of every site's public key), as a hospital is provisioned with the
# consortium's keys and never takes them from the coordinator.
fed_secagg_rosters() {
  local s
  for s in "${FED_SITES[@]}"; do
    mkdir -p "$TEST_TMP/roster-$s"
    cp "$TEST_TMP"/keys/site-*.pub "$TEST_TMP/roster-$s/"
    printf 'secure_aggregation:\n  roster: ../roster-%s\n' "$s" >>"$TEST_TMP/sites/$s.yaml"
  done
}

# fed_expect_simulate_match RUN_DIR: runs `metafl simulate` on
# coordinator.yaml into $TEST_TMP/sim and fails unless its final θ is the
# daemons' (RUN_DIR's), bit for bit; leaves the hash in $sim_hash.
fed_expect_simulate_match() {
  fed_simulate "$TEST_TMP/coordinator.yaml"
  local daemon_hash
  daemon_hash=$(fed_final_hash "$1")
  echo "daemons:  $daemon_hash"
  echo "simulate: $sim_hash"
  [ -n "$daemon_hash" ] && [ "$daemon_hash" = "$sim_hash" ] ||
    fail "final θ differs: daemons $daemon_hash, simulate $sim_hash"
}

# fed_simulate CONFIG: runs `metafl simulate` on CONFIG into $TEST_TMP/sim
# (output in $TEST_TMP/simulate.out and .log, shown on failure) and leaves
# its final θ hash in $sim_hash.
fed_simulate() {
  metafl simulate --config "$1" --run-dir "$TEST_TMP/sim" >"$TEST_TMP/simulate.out" \
    2>"$TEST_TMP/simulate.log" || { cat "$TEST_TMP/simulate.log"; fail "simulate failed"; }
  sim_hash=$(fed_final_hash "$TEST_TMP/sim")
}

# fed_secagg_section FILE [LINE...]: appends a secure_aggregation section
# (enabled, threshold 3, then each LINE, e.g. "word_bits: 32") to FILE.
fed_secagg_section() {
  local file=$1 line; shift
  printf 'secure_aggregation:\n  enabled: true\n  threshold: 3\n' >>"$file"
  for line in "$@"; do printf '  %s\n' "$line" >>"$file"; done
}

# fed_secagg_setup ROUNDS [overrides...]: fed_setup, secure aggregation on
# in coordinator.yaml (threshold 3) and each site's roster.
fed_secagg_setup() {
  fed_setup "$@"
  fed_secagg_section "$TEST_TMP/coordinator.yaml"
  fed_secagg_rosters
}

# fed_coordinator_finishes PID SECONDS [LOG]: waits up to SECONDS for the
# coordinator PID to exit and fails, with LOG's last 30 lines if given,
# unless it exited with status 0.
fed_coordinator_finishes() {
  local pid=$1 secs=$2 log=${3:-} rc=0
  wait_for "$secs" bash -c "! kill -0 $pid 2>/dev/null" ||
    { [ -z "$log" ] || tail -n 30 "$log"; fail "the coordinator did not finish"; }
  wait "$pid" || rc=$?
  [ "$rc" -eq 0 ] || { [ -z "$log" ] || tail -n 30 "$log"; fail "the coordinator exited with status $rc"; }
}

# fed_run_exit_after_eval SECONDS [site args...]: starts the coordinator
# (its pid in $COORD) and every site with --exit-after-eval and the args,
# then fed_coordinator_finishes within SECONDS.
fed_run_exit_after_eval() {
  local secs=$1 s; shift
  fed_coordinator
  COORD=$LAST_PID
  for s in "${FED_SITES[@]}"; do fed_site "$s" --exit-after-eval "$@"; done
  fed_coordinator_finishes "$COORD" "$secs" "$TEST_TMP/coordinator.log"
}

# fed_expect_secagg_rounds N: the coordinator's log shows N rounds summed by
# secure aggregation of the three sites (threshold 3, every pair) and no
# rejected message.
fed_expect_secagg_rounds() {
  local log=$TEST_TMP/coordinator.log
  [ "$(grep -c 'secure aggregation of 3 sites (threshold 3, every pair), sum unmasked' "$log")" -eq "$1" ] ||
    { cat "$log"; fail "not every round was summed by secure aggregation"; }
  ! grep -q 'rejected message' "$log" || { cat "$log"; fail "a message was rejected"; }
}
