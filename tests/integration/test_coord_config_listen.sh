#!/usr/bin/env bash
# Issue 10 item 12: the coordinator's `listen` is validated like the site
# agent's endpoint, with FILE:LINE: port 99999 used to listen silently on
# 34463 (the port wrapped), a missing `listen` said only "cannot bind :
# Invalid argument"; a YAML syntax error names line and column.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/federated_env.sh"
fed_setup 1
CFG=$TEST_TMP/coordinator.yaml

expect_refused() { # NAME WANT...
  local name=$1; shift
  if timeout 10 metafl-coordinator --config "$CFG" >"$TEST_TMP/$name.log" 2>&1; then
    fail "$name: the coordinator started"
  fi
  for want in "$@"; do
    grep -qF -- "$want" "$TEST_TMP/$name.log" || fail "$name: no '$want' in: $(cat "$TEST_TMP/$name.log")"
  done
  ! grep -q "listening on" "$TEST_TMP/$name.log" || fail "$name: it listened"
}

cp "$CFG" "$TEST_TMP/good.yaml"
sed -i "s|listen: tcp://127.0.0.1:$FED_PORT|listen: tcp://127.0.0.1:99999|" "$CFG"
expect_refused port "coordinator.yaml:2: key 'coordinator.listen'" "port '99999'" "1-65535"

cp "$TEST_TMP/good.yaml" "$CFG"
sed -i "/listen:/d" "$CFG"
expect_refused missing "coordinator.yaml:1: missing required key 'coordinator.listen'" "tcp://0.0.0.0:7000"

cp "$TEST_TMP/good.yaml" "$CFG"
sed -i "s|listen: tcp://127.0.0.1:$FED_PORT|listen: tcp://127.0.0.1:7x|" "$CFG"
expect_refused notnum "coordinator.yaml:2:" "port '7x'"

cp "$TEST_TMP/good.yaml" "$CFG"
sed -i "s|  spec: mlp:3-8-1|  spec: [mlp:3-8-1|" "$CFG"
expect_refused syntax "coordinator.yaml:" "flow sequence"
grep -qE "coordinator\.yaml:[0-9]+:[0-9]+: " "$TEST_TMP/syntax.log" || fail "no LINE:COLUMN in: $(cat "$TEST_TMP/syntax.log")"

echo "listen validated (port range, missing key) and YAML errors carry line and column"
