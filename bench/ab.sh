#!/usr/bin/env bash
# Side-by-side pass-through CPU per request: the nginx proxy (1 worker) against this build of
# flowgate (1 worker) and, optionally, another flowgate binary (a previous commit's, say), in
# alternating closed-loop phases (wrk -t2 -c32) so that all of them meet the same noise.
# Prints per target the median req/s, user and kernel CPU per request, the per-round ratios
# to nginx, and context switches per request of the target and of the mock upstream behind
# it (how often each went to sleep and had to be woken). With --rate R the phases are open
# loop at R req/s instead (oha -q R -c 32, latency-corrected, after a 1-s warm-up), and the
# table adds each target's p50 and p99: the low-rate comparison, where caches are cold.
#
#   bench/ab.sh [--rounds N] [--duration S] [--rate R] [--other PATH-TO-ANOTHER-FLOWGATE]
#               [--tls | --listen-tls [--handshakes]]
#
# --tls: the upstream speaks TLS (an nginx TLS mock), nginx as `proxy_pass https://` with
# keep-alive and session reuse against flowgate's https:// pool (examples/bench/tls-upstream.toml).
# --listen-tls: the clients speak TLS (keep-alive), nginx `listen ssl` against flowgate's
# [server.tls] (examples/bench/tls-listener.toml). With --handshakes every request is a new
# connection and a full handshake (oha --disable-keepalive -c 32): req/s is handshakes/s.
#
# Loopback only; every phase lasts --duration seconds. Needs what bench/run.sh needs.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
ROUNDS=6; DUR=6; OTHER=""; RATE=""; TLS=""; LISTEN_TLS=""; HANDSHAKES=""
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) ROUNDS="$2"; shift 2 ;;
    --duration) DUR="$2"; shift 2 ;;
    --other) OTHER="$2"; shift 2 ;;
    --rate) RATE="$2"; shift 2 ;;
    --tls) TLS=1; shift ;;
    --listen-tls) LISTEN_TLS=1; shift ;;
    --handshakes) HANDSHAKES=1; shift ;;
    *) sed -n 2,18p "$0"; exit 2 ;;
  esac
done
OUT_SUFFIX=-ab
source bench/lib.sh
source bench/side-by-side.sh

UPSTREAM_PID="$(cat "$RUN/$UPSTREAM.pid")"
PHASE=closed; [ -n "$RATE" ] && PHASE="q$RATE"
[ -n "$HANDSHAKES" ] && { [ -n "$LISTEN_TLS" ] || { echo "--handshakes needs --listen-tls" >&2; exit 2; }; PHASE=handshakes; }
[ -n "$LISTEN_TLS" ] && oha_args+=(--cacert bench/tls/ca.pem)
for r in $(seq "$ROUNDS"); do
  for t in "${targets[@]}"; do
    echo "round $r: $t" >&2
    if [ -n "$HANDSHAKES" ]; then
      phase "$t" "$r" "$PHASE" oha -z "${DUR}s" -c 32 --disable-keepalive "${oha_args[@]}" "${URL[$t]}"
    elif [ -n "$RATE" ]; then
      oha -q "$RATE" -z 1s -c 32 "${oha_args[@]}" "${URL[$t]}" > /dev/null
      phase "$t" "$r" "$PHASE" oha -q "$RATE" -z "${DUR}s" -c 32 --latency-correction "${oha_args[@]}" "${URL[$t]}"
    else
      phase "$t" "$r" "$PHASE" wrk -t2 -c32 -d"${DUR}s" -s "$lua" "${URL[$t]}"
    fi
  done
done

python3 - "$OUT" "$ROUNDS" "$PHASE" "${targets[@]}" <<'PY'
import json, re, statistics as st, sys
sys.path.insert(0, "bench")
from report import oha
out, rounds, phase, targets = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4:]
rows, lat = {}, {}
for t in targets:
    for r in range(1, rounds + 1):
        f = f"{out}/{t}-r{r}-{phase}"
        if phase != "closed":  # oha, open loop
            o = oha(f"{f}.out")
            n, rps = o["requests"], o["rps"]
            lat.setdefault(t, []).append((o["p50"] * 1000, o["p99"] * 1000))
        else:
            text = open(f"{f}.out").read()
            n = int(re.search(r"(\d+) requests in", text).group(1))
            rps = float(re.search(r"Requests/sec:\s+([0-9.]+)", text).group(1))
        s = json.load(open(f"{f}.sample.json"))
        u = json.load(open(f"{f}.upstream.json"))
        rows.setdefault(t, []).append((rps, s["user_s"] / n * 1e6, (s["cpu_s"] - s["user_s"]) / n * 1e6,
                                       s["switches"] / n, u["switches"] / n))
print(f"Rounds: {rounds}; medians [min-max]; ratios within a round.\n")
print("| target | req/s | user µs/req | kernel µs/req | CPU µs/req | req/s vs nginx | CPU vs nginx "
      "| switches/req | upstream switches/req |" + (" p50 µs | p99 µs | p50 − nginx's µs |" if lat else ""))
print("|---|---|---|---|---|---|---|---|---|" + ("---|---|---|" if lat else ""))
def cell(xs, f="{:.1f}"):
    return f"{f.format(st.median(xs))} [{f.format(min(xs))}–{f.format(max(xs))}]"
for t in targets:
    rps = [x[0] for x in rows[t]]; u = [x[1] for x in rows[t]]; k = [x[2] for x in rows[t]]
    cpu = [a + b for a, b in zip(u, k)]
    sw = [x[3] for x in rows[t]]; usw = [x[4] for x in rows[t]]
    base = rows["nginx"]
    rr = [a[0] / b[0] for a, b in zip(rows[t], base)]
    cr = [(a[1] + a[2]) / (b[1] + b[2]) for a, b in zip(rows[t], base)]
    print(f"| {t} | {cell(rps, '{:.0f}')} | {cell(u)} | {cell(k)} | {cell(cpu)} | "
          f"{cell(rr, '{:.2f}')}x | {cell(cr, '{:.2f}')}x | {cell(sw, '{:.2f}')} | {cell(usw, '{:.2f}')} |"
          + (f" {cell([x[0] for x in lat[t]], '{:.0f}')} | {cell([x[1] for x in lat[t]], '{:.0f}')} | "
             f"{cell([a[0] - b[0] for a, b in zip(lat[t], lat['nginx'])], '{:.0f}')} |" if lat else ""))
print(f"\nraw results: {out}")
PY
