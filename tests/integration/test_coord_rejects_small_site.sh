#!/usr/bin/env bash
# A hospital whose training rows cannot form the run's episodes (a class
# with fewer than k_shot + n_query rows, in a 2-way ProtoNets run) is told
# so at Hello with REJECT_DATA and its class counts, instead of failing
# every round; it stops (retrying cannot help); the other sites finish the
# run (issue 13 item 4, issue 10 item 11's first case).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/federated_env.sh"

fed_setup 2 "model.spec=mlp:3-8" "algorithm.name=protonet" "algorithm.n_way=2" \
  "algorithm.k_shot=5" "algorithm.n_query=5" "rounds.wait_for_sites=2"
RUN=$TEST_TMP/run
# site-c keeps only 6 positive rows: after its 0.75 split, at most 5 train.
awk -F, 'NR == 1 || $4 == "0" || n++ < 6' "$TEST_TMP/data/site-c.csv" >"$TEST_TMP/data/small.csv"
mv "$TEST_TMP/data/small.csv" "$TEST_TMP/data/site-c.csv"

fed_coordinator
COORD=$LAST_PID
fed_site site-c
C_PID=$LAST_PID
wait_for 20 bash -c "! kill -0 $C_PID 2>/dev/null" || fail "site-c kept running after the refusal"
if wait "$C_PID"; then fail "site-c exited 0 after being refused"; fi
grep -q "coordinator refused this site: REJECT_DATA: site site-c: its training rows cannot form 2-way 5-shot episodes with 5 queries: 1 of its classes have the 10 rows each needs (rows per class: 0=[0-9]* 1=[0-5])" \
  "$TEST_TMP/site-c.log" || fail "site-c was not told why, with its class counts"
grep -q "refused Hello: site site-c: its training rows cannot form" "$TEST_TMP/coordinator.log" ||
  fail "the coordinator's log does not say why site-c was refused"

fed_site site-a
fed_site site-b
wait_for 60 bash -c "! kill -0 $COORD 2>/dev/null" || fail "coordinator did not finish"
wait "$COORD" || fail "coordinator exited with status $?"
[ "$(fed_rounds_done "$RUN")" -eq 2 ] || fail "expected 2 rounds"
grep -q '"site":"site-c"' "$RUN/audit.log" && fail "site-c appears in the audit log"
echo "ok: the site that cannot form episodes was told at Hello; the run completed without it"
