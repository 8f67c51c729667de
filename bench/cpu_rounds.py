#!/usr/bin/env python3
"""CPU time per round of the real daemons (bench/rounds_engine.sh, issue 6).

    cpu_rounds.py METRICS_JSONL ROUNDS OUT COORD_PID SITE_PID...

Watches the coordinator's metrics.jsonl. The coordinator appends (and
flushes) one line when a round's close is done, before the next round
opens, so at that moment every site has sent its update and waits: the
line is the round boundary. At the line of round 1 and of round ROUNDS it
reads utime + stime of the coordinator and of every site agent from
/proc/PID/stat (whole process: threads that already ended, e.g. the
coordinator's per-round hash and audit helpers, are included) and writes

    coord_ms sites_ms rounds

to OUT: CPU milliseconds per round over rounds 2..ROUNDS (the rounds whose
median the bench reports), coordinator and the sum over the sites. Start-up
(key loading, data, connecting) and the final evaluation lie outside the
two boundaries and are not counted. Each sample is late by the time the
poll takes to see the line (≤ ~2 ms, the same at both ends, so it mostly
cancels), and /proc counts in clock ticks (1/CLK_TCK s, 10 ms here) per
process: per round that is ±10 ms / (ROUNDS − 1) per process, fine for the
1M rows (hundreds of ms), coarse for small models (say so when reading
them). Writes "null null 0" if the boundaries were not seen (run failed).

Polls every 2 ms: one stat() per poll, far below the daemons' CPU.
"""
import os
import sys
import time


def cpu_ticks(pid):
    """utime + stime of the whole process in clock ticks, or None if gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            s = f.read()
    except OSError:
        return None
    # comm may contain spaces: the fields after it start past the last ')'
    fields = s[s.rindex(")") + 2:].split()
    return int(fields[11]) + int(fields[12])  # fields 14, 15 of stat(5)


def main():
    metrics, rounds, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    coord = int(sys.argv[4])
    sites = [int(p) for p in sys.argv[5:]]
    tick_ms = 1000.0 / os.sysconf("SC_CLK_TCK")
    marks = {}  # round -> (coord ticks, site ticks)
    seen = 0
    buf = ""
    pos = 0
    while rounds not in marks:
        try:
            size = os.stat(metrics).st_size
        except OSError:
            size = 0
        if size > pos:
            with open(metrics) as f:
                f.seek(pos)
                chunk = f.read()
            pos += len(chunk.encode())
            buf += chunk
            while "\n" in buf:
                line, buf = buf.split("\n", 1)
                if '"event":"round"' not in line:
                    continue
                r = None
                for part in line.split(","):
                    if part.startswith('"round":'):
                        r = int(part.split(":")[1])
                if r in (1, rounds) and r not in marks:
                    c = cpu_ticks(coord)
                    ss = [cpu_ticks(p) for p in sites]
                    if c is not None and None not in ss:
                        marks[r] = (c, sum(ss))
                seen = max(seen, r or 0)
        elif cpu_ticks(coord) is None:
            break  # coordinator gone before the last boundary
        time.sleep(0.002)
    with open(out, "w") as f:
        if 1 in marks and rounds in marks and rounds > 1:
            n = rounds - 1
            c = (marks[rounds][0] - marks[1][0]) * tick_ms / n
            s = (marks[rounds][1] - marks[1][1]) * tick_ms / n
            f.write(f"{c:.1f} {s:.1f} {n}\n")
        else:
            f.write("null null 0\n")


if __name__ == "__main__":
    main()
