#!/usr/bin/env bash
# "Sites only dial out", proven on a network: the coordinator and three site
# agents each in their own network namespace (ip netns, a veth pair per
# site), with nftables in every site namespace dropping all inbound
# connections (new TCP/UDP to the site: dropped; only replies to what the
# site opened get in). The federated run still completes (3 rounds, 3
# updates each, a final evaluation), no site has a listening socket, and a
# connection attempt from the coordinator's side to a site is dropped.
# The stand-in for running the containers of docker-compose.yml, which
# this machine cannot (no container engine). Needs root; skipped (exit 77,
# counted as skipped with the reason) only if a namespace cannot be made.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/federated_env.sh"

skip() { echo "SKIP: $*"; trap - EXIT; rm -rf "$TEST_TMP"; exit 77; }
[ "$(id -u)" -eq 0 ] || skip "needs root to create network namespaces"
command -v ip >/dev/null || skip "no ip (iproute2)"
command -v nft >/dev/null || fail "nft missing: deploy/install-deps.sh installs nftables"

P=mfl$$
NSS=("$P-coord" "$P-a" "$P-b" "$P-c")
ns_cleanup() {
  local n
  for n in "${NSS[@]}"; do ip netns del "$n" 2>/dev/null || true; done
}
trap '_rc=$?; ns_cleanup; (exit $_rc); _cleanup' EXIT
ip netns add "$P-coord" 2>/dev/null || skip "cannot create a network namespace here ($(ip netns add "$P-probe" 2>&1; ip netns del "$P-probe" 2>/dev/null))"
ip netns exec "$P-coord" ip link set lo up

fed_setup 3
PORT=7000
sed -i "s#listen: tcp://127.0.0.1:[0-9]*#listen: tcp://0.0.0.0:$PORT#" "$TEST_TMP/coordinator.yaml"
i=1
for s in "${FED_SITES[@]}"; do
  ns=${NSS[$i]}
  ip netns add "$ns"
  ip netns exec "$ns" ip link set lo up
  ip link add "$P-c$i" type veth peer name "$P-s$i"
  ip link set "$P-c$i" netns "$P-coord"
  ip link set "$P-s$i" netns "$ns"
  ip netns exec "$P-coord" ip addr add "10.231.$i.1/24" dev "$P-c$i"
  ip netns exec "$P-coord" ip link set "$P-c$i" up
  ip netns exec "$ns" ip addr add "10.231.$i.2/24" dev "$P-s$i"
  ip netns exec "$ns" ip link set "$P-s$i" up
  # The hospital's firewall: nothing comes in unless the site asked for it.
  ip netns exec "$ns" nft -f - <<NFT
table inet hospital {
  chain input {
    type filter hook input priority 0; policy drop;
    iif lo accept
    ct state established,related accept
    counter drop
  }
}
NFT
  sed -i "s#endpoint: tcp://127.0.0.1:[0-9]*#endpoint: tcp://10.231.$i.1:$PORT#" "$TEST_TMP/sites/$s.yaml"
  i=$((i + 1))
done

# The firewall is real: from the coordinator's side, a connection to a
# site is dropped (times out), not even refused.
probe() { # NS HOST PORT -> prints connected / refused / timeout
  ip netns exec "$1" python3 -c '
import socket, sys
s = socket.socket(); s.settimeout(1.5)
try:
    s.connect((sys.argv[1], int(sys.argv[2]))); print("connected")
except ConnectionRefusedError: print("refused")
except OSError: print("timeout")' "$2" "$3"
}
[ "$(probe "$P-coord" 10.231.1.2 22)" = timeout ] || fail "inbound to site-a was not dropped"

start_bg coordinator ip netns exec "$P-coord" metafl-coordinator --config "$TEST_TMP/coordinator.yaml"
COORD=$LAST_PID
listening() { [ "$(ip netns exec "$P-coord" ss -Hltn "sport = :$PORT" | wc -l)" -eq 1 ]; }
wait_for 20 listening || fail "the coordinator does not listen on :$PORT in its namespace"
i=1
for s in "${FED_SITES[@]}"; do
  start_bg "$s" ip netns exec "${NSS[$i]}" metafl-site-agent --config "$TEST_TMP/sites/$s.yaml"
  i=$((i + 1))
done
RUN=$TEST_TMP/run
two_rounds() { [ "$(fed_rounds_done "$RUN")" -ge 1 ]; }
wait_for 60 two_rounds || fail "no round closed across the namespaces"
# Mid-run: the sites listen on nothing (TCP or UDP).
for n in "$P-a" "$P-b" "$P-c"; do
  l=$(ip netns exec "$n" ss -Hltnu | wc -l)
  [ "$l" -eq 0 ] || { ip netns exec "$n" ss -ltnu; fail "$n has listening sockets"; }
done
wait_for 60 bash -c "! kill -0 $COORD 2>/dev/null" || fail "the run did not finish"
wait "$COORD" || fail "coordinator failed"
[ "$(fed_rounds_done "$RUN")" -eq 3 ] || fail "$(fed_rounds_done "$RUN") rounds"
[ "$(grep -c '"event":"round".*"accepted":3' "$RUN/metrics.jsonl")" -eq 3 ] || fail "not every site's update in every round"
[ "$(grep -c '"event":"eval"' "$RUN/metrics.jsonl")" -eq 3 ] || fail "not every site evaluated"
dropped=$(ip netns exec "$P-a" nft list ruleset | sed -n 's/.*counter packets \([0-9]*\).*drop.*/\1/p')
echo "site-a's firewall dropped $dropped inbound packet(s); 3 rounds over outbound connections only"
[ "${dropped:-0}" -ge 1 ] || fail "site-a's drop rule never fired (the probe did not reach it?)"
echo ok
