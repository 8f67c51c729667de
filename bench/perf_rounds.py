#!/usr/bin/env python3
"""Where the daemons' CPU goes, from a perf profile of bench/rounds_engine.sh
(docs/PERFORMANCE.md, "Where a 1M round's CPU goes").

    perf record -F 499 -o run.data -- bash bench/rounds_engine.sh OUT.json
    perf script -i run.data -F comm,pid,tid,ip,sym,dso --show-mmap-events |
        python3 bench/perf_rounds.py COORD_CPU_MS SITES_CPU_MS [--symbols]

COORD_CPU_MS / SITES_CPU_MS: the run's cpu_coord_ms / cpu_sites_ms per round
(OUT.json). Samples are attributed to a daemon by process id (every thread,
ZeroMQ's I/O threads included), grouped into components, and each group's
share of that daemon's samples is applied to its CPU per round. The profile
spans whole processes, start-up and the final evaluation included: use many
rounds (ROUNDS_R=30) so the rounds dominate.

Debian 12's libsodium is stripped: its hot code is recognised by address
ranges (offsets in libsodium.so.23.3.0, 1.0.18) found by profiling probe
programs that call one primitive each. On another libsodium build those
samples show up as "libsodium: unmapped".
"""
import collections
import re
import sys

SODIUM_RANGES = [  # (start, end, component), file offsets
    (0x41e00, 0x42400, "CURVE cipher (XSalsa20-Poly1305)"),  # salsa20 xmm6int
    (0x35000, 0x35700, "CURVE cipher (XSalsa20-Poly1305)"),  # poly1305 sse2
    (0x3e900, 0x3f600, "BLAKE2b"),                           # compress avx2
    (0x1ab00, 0x1ac00, "BLAKE2b"),                           # update
    (0x0e000, 0x11000, "Ed25519"),
]
ROLES = {"metafl-coordina": "coordinator", "metafl-site-age": "sites"}
MMAP = re.compile(r"\s*\S+\s+(\d+)/\d+\s+PERF_RECORD_MMAP2 \d+/\d+: "
                  r"\[0x([0-9a-f]+)\(0x[0-9a-f]+\) @ 0x([0-9a-f]+) .*r-xp .*libsodium")
SAMPLE = re.compile(r"\s*(.+?)\s+(\d+)/(\d+)\s+([0-9a-f]+)\s+(.*)\s+\((.*)\)\s*$")


def component(base, pid, ip, sym, dso):
    """Component name of one sample."""
    if "openblas" in dso or re.search(r"mfl_nn_|s_meta_train|mfl_learner_meta_train|"
                                      r"mfl_model_|mfl_meta_", sym):
        return "local training"
    if "libsodium" in dso:
        if pid in base:
            off = ip - base[pid][0] + base[pid][1]
            for lo, hi, name in SODIUM_RANGES:
                if lo <= off < hi:
                    return name
        return "libsodium: unmapped"
    if "kallsyms" in dso:
        return "kernel"
    if dso.startswith("libc"):
        return "libc memcpy/memset/malloc"
    if dso.startswith("metafl"):
        return "other metafl code"
    return "other"


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    cpu = {"coordinator": float(sys.argv[1]), "sites": float(sys.argv[2])}
    show_syms = "--symbols" in sys.argv[3:]
    base, main_comm, samples = {}, {}, []
    for line in sys.stdin:
        m = MMAP.match(line)
        if m:
            base[m.group(1)] = (int(m.group(2), 16), int(m.group(3), 16))
            continue
        if "PERF_RECORD" in line:
            continue
        m = SAMPLE.match(line)
        if not m:
            continue
        comm, pid, tid, ip, sym, dso = m.groups()
        if pid == tid:
            main_comm[pid] = comm
        samples.append((pid, int(ip, 16), sym.strip(), dso.split("/")[-1]))
    per = {r: collections.Counter() for r in cpu}
    syms = {r: collections.Counter() for r in cpu}
    for pid, ip, sym, dso in samples:
        role = ROLES.get(main_comm.get(pid, ""))
        if not role:
            continue  # the harness (bash, python, bench_rounds_floor)
        per[role][component(base, pid, ip, sym, dso)] += 1
        syms[role][f"{dso}: {sym}"] += 1
    total = collections.Counter()
    for role, c in per.items():
        n = sum(c.values()) or 1
        print(f"{role}: {n} samples, {cpu[role]:.1f} ms CPU per round")
        for k, v in c.most_common():
            ms = v / n * cpu[role]
            total[k] += ms
            print(f"  {100 * v / n:5.1f} %  {ms:6.1f} ms  {k}")
        if show_syms:
            for k, v in syms[role].most_common(15):
                print(f"        {100 * v / n:5.1f} %  {k}")
    print(f"total: {sum(total.values()):.1f} ms CPU per round")
    for k, v in total.most_common():
        print(f"  {v:6.1f} ms  {k}")


if __name__ == "__main__":
    main()
