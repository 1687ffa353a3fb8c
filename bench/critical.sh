#!/usr/bin/env bash
# The proxy's own share of a request's latency at a fixed rate: for the nginx proxy (1
# worker), this build of flowgate (1 worker) and optionally another flowgate binary, in
# alternating phases, the time from the read that brings a request in to the write that
# sends it upstream, and from the read of the upstream's answer to the write to the client.
# Measured from the kernel's syscall tracepoints (`perf record -e raw_syscalls:*`), so it
# excludes the wake-ups and the network, which are the same for every proxy; also prints
# oha's p50/p99 for each phase.
#
#   bench/critical.sh [--rounds N] [--duration S] [--rate R] [--other PATH-TO-ANOTHER-FLOWGATE]
#
# Loopback only. Needs what bench/run.sh needs, plus perf (Debian: linux-perf) and the right
# to trace (root, or kernel.perf_event_paranoid <= -1).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
ROUNDS=3; DUR=5; RATE=1000; OTHER=""
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) ROUNDS="$2"; shift 2 ;;
    --duration) DUR="$2"; shift 2 ;;
    --rate) RATE="$2"; shift 2 ;;
    --other) OTHER="$2"; shift 2 ;;
    *) sed -n 2,13p "$0"; exit 2 ;;
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
    perf record -q -e raw_syscalls:sys_enter,raw_syscalls:sys_exit -p "${PID[$t]}" -o "$f.perf" \
      -- sleep $((DUR + 1)) > /dev/null 2>&1 &
    rec=$!
    sleep 0.5
    oha -q "$RATE" -z "${DUR}s" -c 32 --latency-correction "${oha_args[@]}" "${URL[$t]}" > "$f.oha.json"
    # Which of the target's sockets lead to the upstream (kept alive after the phase; those
    # opened during it are also found by their `connect` in the trace).
    ss -Htnp dst 127.0.0.1:18081 | grep -o "pid=${PID[$t]},fd=[0-9]*" | cut -d= -f3 > "$f.upstream-fds" || true
    wait "$rec" || true
    perf script -i "$f.perf" -F tid,time,event,trace > "$f.trace" 2>/dev/null
    rm -f "$f.perf"
  done
done

python3 - "$OUT" "$ROUNDS" "$RATE" "${targets[@]}" <<'PY'
import json, re, statistics as st, sys
out, rounds, rate, targets = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4:]
READS, WRITEV, CONNECT = {0, 45}, 20, 42
line_re = re.compile(r'\s*(\d+)\s+([\d.]+):\s+raw_syscalls:sys_(enter|exit): NR (\d+) (?:\((\w+)|= (-?\d+))')

def legs(path, upstream):
    """Per request, µs from the read that brought its data in to the writev that passed it
    on: the request's leg (client read → upstream writev) and its answer's (upstream read →
    client writev). When a turn reads several, they are matched first in, first out."""
    req, resp = [], []
    entered = {}
    waiting = {True: [], False: []}  # reads not yet passed on, by "came from upstream"
    for line in open(path):
        m = line_re.match(line)
        if not m:
            continue
        tid, t, kind, nr, fd, ret = m.groups()
        tid, t, nr = int(tid), float(t) * 1e6, int(nr)
        if kind == "enter":
            entered[tid] = (nr, int(fd, 16))
            if nr == CONNECT:
                upstream.add(int(fd, 16))
            if nr == WRITEV:
                to_upstream = entered[tid][1] in upstream
                # A write to the upstream passes on what a client sent, and the reverse.
                pending = waiting[not to_upstream]
                if pending:
                    (req if to_upstream else resp).append(t - pending.pop(0))
        elif tid in entered:
            enr, efd = entered.pop(tid)
            if enr in READS and int(ret) > 0:
                waiting[efd in upstream].append(t)
    return req, resp

def oha(path):
    lat = json.load(open(path))["latencyPercentiles"]
    return lat["p50"] * 1e6, lat["p99"] * 1e6

rows = {t: [] for t in targets}
for r in range(1, rounds + 1):
    for t in targets:
        f = f"{out}/{t}-r{r}"
        upstream = {int(x) for x in open(f + ".upstream-fds").read().split()}
        req, resp = legs(f + ".trace", upstream)
        p50, p99 = oha(f + ".oha.json")
        rows[t].append((st.median(req) if req else float("nan"), st.median(resp) if resp else float("nan"), len(req), p50, p99))

def cell(xs, fmt="{:.0f}"):
    return f"{fmt.format(st.median(xs))} [{fmt.format(min(xs))}–{fmt.format(max(xs))}]"

print(f"\nRate {rate} req/s, rounds: {rounds}; medians [min-max] of the per-round medians, µs.\n")
print("| target | request leg (read → upstream writev) | answer leg (upstream read → client writev) | both legs | requests traced | oha p50 | oha p99 |")
print("|---|---|---|---|---|---|---|")
for t in targets:
    rs = rows[t]
    print(f"| {t} | {cell([x[0] for x in rs])} | {cell([x[1] for x in rs])} | {cell([x[0] + x[1] for x in rs])} "
          f"| {cell([x[2] for x in rs])} | {cell([x[3] for x in rs])} | {cell([x[4] for x in rs])} |")
print(f"\nraw results: {out}")
PY
