#!/usr/bin/env bash
# The proxy's own share of a request's latency at a fixed rate: for the nginx proxy (1
# worker), this build of flowgate (1 worker) and optionally another flowgate binary, in
# alternating phases, the time from the read that brings a request in to the write that
# sends it upstream, and from the read of the upstream's answer to the write to the client.
# Measured from the kernel's syscall tracepoints (`perf record -e raw_syscalls:*`), so it
# excludes the wake-ups and the network, which are the same for every proxy; also prints
# oha's p50/p99 for each phase. With --with-client, oha is traced too, and the time around
# the proxy is measured as well: from oha's send to the proxy's read of the request, from the
# proxy's write of the answer to oha's read of it, and the proxy's own step from waking in
# `epoll_wait` to reading the request (tracing oha slows it: its p50/p99 then read high).
#
#   bench/critical.sh [--rounds N] [--duration S] [--rate R] [--other PATH-TO-ANOTHER-FLOWGATE]
#                     [--with-client]
#
# Loopback only. Needs what bench/run.sh needs, plus perf (Debian: linux-perf) and the right
# to trace (root, or kernel.perf_event_paranoid <= -1).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
ROUNDS=3; DUR=5; RATE=1000; OTHER=""; WITH_CLIENT=""
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) ROUNDS="$2"; shift 2 ;;
    --duration) DUR="$2"; shift 2 ;;
    --rate) RATE="$2"; shift 2 ;;
    --other) OTHER="$2"; shift 2 ;;
    --with-client) WITH_CLIENT=1; shift ;;
    *) sed -n 2,17p "$0"; exit 2 ;;
  esac
done
command -v perf >/dev/null || { echo "perf not found: apt-get install linux-perf" >&2; exit 1; }
OUT_SUFFIX=-critical
source bench/lib.sh
source bench/side-by-side.sh
# nginx's requests are served by its worker process, not by the master the pid file names.
PID[nginx]="$(pgrep -P "$(cat "$RUN/proxy.pid")" | head -1)"

for r in $(seq "$ROUNDS"); do
  for t in "${targets[@]}"; do
    echo "round $r: $t" >&2
    f="$OUT/$t-r$r"
    # A warm-up, so that every phase finds its connections open.
    oha -q "$RATE" -z 1s -c 32 "${oha_args[@]}" "${URL[$t]}" > /dev/null
    oha -q "$RATE" -z "${DUR}s" -c 32 --latency-correction "${oha_args[@]}" "${URL[$t]}" > "$f.oha.json" &
    load=$!
    sleep 0.5
    traced="${PID[$t]}"
    [ -n "$WITH_CLIENT" ] && traced="$traced,$load"
    echo "${PID[$t]} ${WITH_CLIENT:+$load}" > "$f.pids"
    perf record -q -e raw_syscalls:sys_enter,raw_syscalls:sys_exit -p "$traced" -o "$f.perf" \
      -- sleep $((DUR - 1)) > /dev/null 2>&1 || true
    wait "$load"
    # Which of the target's sockets lead to the upstream (kept alive after the phase; those
    # opened during it are also found by their `connect` in the trace).
    ss -Htnp dst 127.0.0.1:18081 | grep -o "pid=${PID[$t]},fd=[0-9]*" | cut -d= -f3 > "$f.upstream-fds" || true
    perf script -i "$f.perf" -F pid,tid,time,event,trace > "$f.trace" 2>/dev/null
    rm -f "$f.perf"
  done
done

python3 - "$OUT" "$ROUNDS" "$RATE" "${targets[@]}" <<'PY'
import json, re, statistics as st, sys
out, rounds, rate, targets = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4:]
READS, WRITEV, CONNECT = {0, 45}, 20, 42
line_re = re.compile(r'\s*(\d+)/(\d+)\s+([\d.]+):\s+raw_syscalls:sys_(enter|exit): NR (\d+) (?:\((\w+)|= (-?\d+))')
SENDS, EPOLL_WAIT = {1, 20, 44}, 232

def calls(path):
    """The trace's completed syscalls in time order: (enter µs, exit µs, pid, tid, nr, fd, ret)."""
    entered, done = {}, []
    for line in open(path):
        m = line_re.match(line)
        if not m:
            continue
        pid, tid, t, kind, nr, fd, ret = m.groups()
        t, nr = float(t) * 1e6, int(nr)
        if kind == "enter":
            entered[tid] = (t, nr, int(fd, 16))
        elif tid in entered:
            t0, enr, efd = entered.pop(tid)
            done.append((t0, t, int(pid), tid, enr, efd, int(ret)))
    done.sort()
    return done

def legs(trace, proxy, upstream):
    """Per request, µs from the read that brought its data in to the writev that passed it
    on: the request's leg (client read → upstream writev) and its answer's (upstream read →
    client writev). When a turn reads several, they are matched first in, first out."""
    req, resp = [], []
    waiting = {True: [], False: []}  # reads not yet passed on, by "came from upstream"
    for t0, t1, pid, _, nr, fd, ret in trace:
        if pid != proxy:
            continue
        if nr == CONNECT:
            upstream.add(fd)
        elif nr == WRITEV:
            to_upstream = fd in upstream
            # A write to the upstream passes on what a client sent, and the reverse.
            pending = waiting[not to_upstream]
            if pending:
                (req if to_upstream else resp).append(t0 - pending.pop(0))
        elif nr in READS and ret > 0:
            waiting[fd in upstream].append(t1)
    return req, resp

def around(trace, proxy, client, upstream):
    """µs from the client's send to the proxy's read of the request, from the proxy's write
    of the answer to the client's read of it (each matched with the latest call before it
    on the other side: at a fixed rate requests are far apart), and from the proxy's
    `epoll_wait` returning to its read of the request."""
    inbound, outbound, wake = [], [], []
    sent = wrote = None
    last = {}
    for t0, t1, pid, tid, nr, fd, ret in trace:
        if pid == client:
            if nr in SENDS and ret > 0:
                sent = t0
            elif nr in READS and ret > 0 and wrote is not None:
                outbound.append(t1 - wrote)
                wrote = None
        elif pid == proxy:
            if nr in READS and ret > 0 and fd not in upstream:
                if sent is not None:
                    inbound.append(t1 - sent)
                    sent = None
                prev = last.get(tid)
                if prev and prev[4] == EPOLL_WAIT:
                    wake.append(t0 - prev[1])
            elif nr == WRITEV and fd not in upstream:
                wrote = t0
            last[tid] = (t0, t1, pid, tid, nr)
    return inbound, outbound, wake

def oha(path):
    lat = json.load(open(path))["latencyPercentiles"]
    return lat["p50"] * 1e6, lat["p99"] * 1e6

rows = {t: [] for t in targets}
for r in range(1, rounds + 1):
    for t in targets:
        f = f"{out}/{t}-r{r}"
        upstream = {int(x) for x in open(f + ".upstream-fds").read().split()}
        pids = [int(x) for x in open(f + ".pids").read().split()]
        trace = calls(f + ".trace")
        req, resp = legs(trace, pids[0], upstream)
        p50, p99 = oha(f + ".oha.json")
        med = lambda xs: st.median(xs) if xs else float("nan")
        row = (med(req), med(resp), len(req), p50, p99)
        if len(pids) > 1:
            row += tuple(med(xs) for xs in around(trace, pids[0], pids[1], upstream))
        rows[t].append(row)

def cell(xs, fmt="{:.0f}"):
    return f"{fmt.format(st.median(xs))} [{fmt.format(min(xs))}–{fmt.format(max(xs))}]"

print(f"\nRate {rate} req/s, rounds: {rounds}; medians [min-max] of the per-round medians, µs.\n")
client = len(rows[targets[0]][0]) > 5
extra = " client send → proxy read | proxy write → client read | proxy wake → read |" if client else ""
print("| target | request leg (read → upstream writev) | answer leg (upstream read → client writev) | both legs | requests traced | oha p50 | oha p99 |" + extra)
print("|---|---|---|---|---|---|---|" + ("---|---|---|" if client else ""))
for t in targets:
    rs = rows[t]
    line = (f"| {t} | {cell([x[0] for x in rs])} | {cell([x[1] for x in rs])} | {cell([x[0] + x[1] for x in rs])} "
            f"| {cell([x[2] for x in rs])} | {cell([x[3] for x in rs])} | {cell([x[4] for x in rs])} |")
    if client:
        line += "".join(f" {cell([x[i] for x in rs])} |" for i in (5, 6, 7))
    print(line)
print(f"\nraw results: {out}")
PY
