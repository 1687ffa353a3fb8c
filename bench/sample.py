#!/usr/bin/env python3
"""Samples a process tree while a load phase runs: peak RSS, CPU seconds used (in all,
and in user space alone: on loopback much of a server's system time is the kernel
delivering its writes to the load generator's sockets and waking it) and context switches
(voluntary and not, over all threads: how often the tree went to sleep or was put aside).

usage: sample.py OUT.json PID [PID...]   (runs until SIGTERM, then writes OUT.json)
"""
import json, os, signal, sys, time

out, roots = sys.argv[1], [int(p) for p in sys.argv[2:]]
TICK = os.sysconf("SC_CLK_TCK")

def tree(pids):
    seen, todo = set(), list(pids)
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        try:
            for t in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{t}/children") as f:
                    todo += [int(c) for c in f.read().split()]
        except OSError:
            pass
    return seen

def cpu(pids):
    """(user + system, user) CPU seconds."""
    total, user = 0, 0
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime + stime
            user += int(fields[11])
        except OSError:
            pass
    return total / TICK, user / TICK

def switches(pids):
    n = 0
    for p in pids:
        try:
            for t in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{t}/status") as f:
                    for line in f:
                        if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                            n += int(line.split()[1])
        except OSError:
            pass
    return n

def rss(pids):
    kb = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        kb += int(line.split()[1])
        except OSError:
            pass
    return kb / 1024

stop = False
def on_term(*_):
    global stop
    stop = True
signal.signal(signal.SIGTERM, on_term)

pids = tree(roots)
c0, s0, peak = cpu(pids), switches(pids), rss(pids)
while not stop:
    time.sleep(0.2)
    pids = tree(roots)
    peak = max(peak, rss(pids))
c1, s1 = cpu(pids), switches(pids)
json.dump({"cpu_s": c1[0] - c0[0], "user_s": c1[1] - c0[1], "switches": s1 - s0,
           "rss_peak_mib": round(peak, 1)}, open(out, "w"))
