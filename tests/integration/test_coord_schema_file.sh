#!/usr/bin/env bash
# The consortium's schema comes from the coordinator's own schema file, not
# from the first Hello (issue 10 item 4, issue 14 item 4), over real daemons
# and real CURVE:
#   1. a schema that does not fit the model stops the coordinator at start,
#      naming its config line, the schema file and both widths;
#   2. a wrong site that connects FIRST (a renamed column, same width) is
#      refused with the column that differs, and so is a site with a
#      fourth column; neither locks anyone out;
#   3. the honest sites (two referencing the schema file, one with the same
#      schema inline) are welcomed and complete the run.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/federated_env.sh"

fed_setup 2 "data.schema=schema.yaml"
RUN=$TEST_TMP/run
cat >"$TEST_TMP/schema.yaml" <<'EOF2'
header: true
columns:
  - x1
  - x2
  - x3
  - x4
  - {name: y, kind: label, rule: class, n_classes: 2}
EOF2

# 1. Four features for a 3-input model: refused before anything binds.
if metafl-coordinator --config "$TEST_TMP/coordinator.yaml" >"$TEST_TMP/bad.log" 2>&1; then
  fail "the coordinator started with a schema that does not fit the model"
fi
line=$(grep -n '^  schema:' "$TEST_TMP/coordinator.yaml" | cut -d: -f1)
grep -q "coordinator.yaml:$line: data.schema: .*schema.yaml describes 4 features, but the model mlp:3-8-1 takes 3 inputs" \
  "$TEST_TMP/bad.log" || { cat "$TEST_TMP/bad.log"; fail "start-up refusal does not say what differs"; }
[ ! -e "$RUN/status.json" ] || fail "the refused coordinator wrote a status file"

sed -i '/^  - x4$/d' "$TEST_TMP/schema.yaml"
# Honest sites a and b reference the file; c keeps its inline copy.
for s in site-a site-b; do
  python3 - "$TEST_TMP/sites/$s.yaml" <<'PY'
import re, sys
p = sys.argv[1]
t = open(p).read()
t = re.sub(r"  schema:\n(    .*\n)+", "  schema: ../schema.yaml\n", t)
open(p, "w").write(t)
PY
  grep -q 'schema: ../schema.yaml' "$TEST_TMP/sites/$s.yaml" || fail "could not rewrite $s"
done

# Two wrong sites with admitted keys: site-h renames x3 (same width),
# site-d has a fourth column.
for s in site-h site-d; do
  metafl keygen $s --dir "$TEST_TMP/keys" >/dev/null
  cp "$TEST_TMP/keys/$s.pub" "$TEST_TMP/allow/"
  mkdir -p "$TEST_TMP/run-$s"
done
awk 'BEGIN { srand(3); print "x1,x2,w3,y";
  for (i = 0; i < 80; i++) printf "%.3f,%.3f,%.3f,%d\n", rand(), rand(), rand(), i % 2 }' \
  >"$TEST_TMP/data/site-h.csv"
sed -e 's/site-c/site-h/g' -e 's/^      - x3$/      - w3/' \
  "$TEST_TMP/sites/site-c.yaml" >"$TEST_TMP/sites/site-h.yaml"
awk 'BEGIN { srand(5); print "x1,x2,x3,x4,y";
  for (i = 0; i < 80; i++) printf "%.3f,%.3f,%.3f,%.3f,%d\n", rand(), rand(), rand(), rand(), i % 2 }' \
  >"$TEST_TMP/data/site-d.csv"
sed -e 's/site-c/site-d/g' -e 's/^      - x3$/      - x3\n      - x4/' \
  "$TEST_TMP/sites/site-c.yaml" >"$TEST_TMP/sites/site-d.yaml"

fed_coordinator
COORD=$LAST_PID
# 2. The wrong sites come first.
for s in site-h site-d; do
  fed_site $s
  pid=$LAST_PID
  wait_for 20 bash -c "! kill -0 $pid 2>/dev/null" || fail "$s kept running after the refusal"
  if wait "$pid"; then fail "$s exited 0 after being refused"; fi
  grep -q 'REJECT_SCHEMA' "$TEST_TMP/$s.log" || fail "$s's log does not name REJECT_SCHEMA"
done
grep -q "refused Hello: site site-h: its data schema differs from the consortium's: column 3: the consortium has 'numeric x3', the site 'numeric w3'" \
  "$TEST_TMP/coordinator.log" || fail "site-h's refusal does not name the column"
grep -q "column 3: the consortium has 'numeric x3', the site 'numeric w3'" "$TEST_TMP/site-h.log" ||
  fail "site-h was not told which column differs"
grep -q "refused Hello: site site-d: its data schema differs from the consortium's: the site has 4 features, the consortium 3: the site has an extra column 4 'x4' (numeric)" \
  "$TEST_TMP/coordinator.log" || fail "site-d's refusal does not say what differs"

# 3. The honest sites are welcomed after them.
for s in "${FED_SITES[@]}"; do fed_site "$s"; done
wait_for 60 bash -c "! kill -0 $COORD 2>/dev/null" || fail "coordinator did not finish"
wait "$COORD" || fail "coordinator exited with status $?"
[ "$(fed_rounds_done "$RUN")" -eq 2 ] || fail "expected 2 rounds"
for s in "${FED_SITES[@]}"; do
  grep -q "site $s says hello" "$TEST_TMP/coordinator.log" || fail "$s was not welcomed"
done
grep -q '"site":"site-h"' "$RUN/audit.log" && fail "site-h appears in the audit log"
grep -q '"site":"site-d"' "$RUN/audit.log" && fail "site-d appears in the audit log"
echo "ok: schema from the coordinator's file; wrong first sites refused with what differs; honest sites ran"
