#!/usr/bin/env bash
# A secret key that others can read is refused with a message that says how
# to fix it; after chmod 600 the same coordinator starts.
source "$(dirname "$0")/lib.sh"

cd "$TEST_TMP"
mkdir -p keys allow run
metafl keygen coordinator --dir keys >/dev/null
cat >coordinator.yaml <<'YAML'
coordinator: {listen: "tcp://127.0.0.1:*", key: keys/coordinator.key, allow_dir: allow, run_dir: run}
model: {spec: "mlp:2-4-1", loss: bce}
algorithm: {name: reptile, batch_size: 16, outer_steps: 3}
rounds: {count: 1, wait_for_sites: 1, min_sites: 1, deadline_s: 5}
output: {checkpoint_dir: run/checkpoints, metrics: run/metrics.jsonl, status: run/status.json}
YAML

chmod 644 keys/coordinator.key
if timeout 20 metafl-coordinator --config coordinator.yaml >refused.log 2>&1; then
  fail "coordinator started with a world-readable secret key"
fi
grep -q 'keys/coordinator.key: secret key is readable by others (mode 0644); run chmod 600 keys/coordinator.key' refused.log \
  || fail "unclear refusal: $(cat refused.log)"

chmod 600 keys/coordinator.key
start_bg coordinator metafl-coordinator --config coordinator.yaml
wait_for 20 grep -q "listening on" "$TEST_TMP/coordinator.log" || fail "coordinator did not start after chmod 600"
echo ok
