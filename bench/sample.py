#!/usr/bin/env python3
"""Samples a process tree while a load phase runs: peak RSS and CPU seconds used.

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
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime + stime
        except OSError:
            pass
    return total / TICK

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
c0, peak = cpu(pids), rss(pids)
while not stop:
    time.sleep(0.2)
    pids = tree(roots)
    peak = max(peak, rss(pids))
json.dump({"cpu_s": cpu(pids) - c0, "rss_peak_mib": round(peak, 1)}, open(out, "w"))
