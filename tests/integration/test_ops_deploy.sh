#!/usr/bin/env bash
# docker-compose.yml, checked as far as this machine allows (no container
# engine here): every directory a container writes (a bind mount of
# ./build/compose/... without :ro) is created by the init service and
# handed to the containers' user (chown 10001), init runs with the rights
# to do so, and no service restarts after a clean exit (a finished run
# must not restart-loop). The network side is test_ops_netns_dial_out.sh.
source "$(dirname "$0")/lib.sh"
python3 - "$ROOT/docker-compose.yml" <<'PY' || fail "docker-compose.yml"
import re, sys
import yaml
doc = yaml.safe_load(open(sys.argv[1]))
svcs = doc["services"]
init = svcs["init"]
script = "\n".join(init["command"]) if isinstance(init["command"], list) else init["command"]
made = set()
for line in script.splitlines():
    m = re.match(r"\s*mkdir -p (.*)", line)
    if m:
        for w in m.group(1).split():
            made.add(w.split("/$$")[0])
for line in script.splitlines():
    m = re.match(r"\s*for p in (.*); do mkdir -p keys/\$\$p; done", line)
    if m:
        made.update("keys/" + p for p in m.group(1).split())
assert str(init.get("user")) == "0", "init must run as root to create and chown the host dirs"
assert "chown -R 10001:10001 /state" in script, "init does not give /state to uid 10001"
problems = []
for name, s in svcs.items():
    if name == "init":
        continue
    pol = s.get("restart", "no")
    if pol in ("always", "unless-stopped"):
        problems.append(f"{name}: restart {pol} restarts a finished run forever")
    assert str(s.get("user")) == "10001", (name, s.get("user"))
    for v in s.get("volumes", []):
        host, _, rest = v.partition(":")
        if rest.endswith(":ro") or not host.startswith("./build/compose/"):
            continue
        rel = host[len("./build/compose/"):]
        if rel not in made:
            problems.append(f"{name}: writes {host}, which init never creates (docker would make it root-owned)")
assert not problems, "\n".join(problems)
print("compose: every writable mount created by init:", sorted(m for m in made if not m.startswith("keys/")))
PY
echo ok
