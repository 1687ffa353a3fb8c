#!/usr/bin/env bash
# The metrics history, alert rules and traces on the request path (issue 24): the nginx
# mock upstream (:18081) behind flowgate (one worker, examples/bench/observability.toml)
# twice, alternating:
#   off  the history and traces off (and with no history, no rule is read);
#   on   as written: the history sampled every second into a data directory, four rules
#        read every second, 1% of requests traced and their spans exported.
# Each round: a closed loop (oha -c 32, --duration seconds) for throughput and CPU a
# request, then a fixed 5,000 requests a second for the CPU the control plane adds.
#
#   bench/observability.sh [--rounds N] [--duration S]
#
# Loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
ROUNDS=3; DUR=10
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) ROUNDS="$2"; shift 2 ;;
    --duration) DUR="$2"; shift 2 ;;
    *) sed -n 2,13p "$0"; exit 2 ;;
  esac
done
OUT_SUFFIX=-observability
source bench/lib.sh
ulimit -n 65536 2>/dev/null || true
start_nginx mock
DATA="$RUN/observability-data"; rm -rf "$DATA"
start_gateway off 18186 observability FLOWGATE__HISTORY__ENABLED=false FLOWGATE__TRACING__ENABLED=false
start_gateway on 18187 observability FLOWGATE__SERVER__DATA_DIR="$DATA"
targets=(off on)
for t in "${targets[@]}"; do
  for _ in $(seq 50); do curl -fsS -o /dev/null -X POST -H 'content-type: application/json' \
    --data-binary @bench/conf/request.json "${URL[$t]}" && break; sleep 0.1; done
done
for r in $(seq "$ROUNDS"); do
  for t in "${targets[@]}"; do
    echo "round $r: $t" >&2
    phase "$t" "$r" whole oha -z "${DUR}s" -c 32 "${oha_args[@]}" "${URL[$t]}"
    phase "$t" "$r" rate5k oha -z "${DUR}s" -c 32 -q 5000 "${oha_args[@]}" "${URL[$t]}"
  done
done
curl -fsS "http://127.0.0.1:18197/metrics" | grep -E '^flowgate_trace_|^flowgate_alerts' > "$OUT/on-metrics.txt" || true
du -sb "$DATA" | cut -f1 > "$OUT/on-data-bytes.txt"

python3 - "$OUT" "$ROUNDS" <<'PY'
import json, statistics as st, sys
sys.path.insert(0, "bench")
from report import oha
out, rounds = sys.argv[1], int(sys.argv[2])
rows = {}
for t in ("off", "on"):
    for r in range(1, rounds + 1):
        row = {}
        for phase in ("whole", "rate5k"):
            o = oha(f"{out}/{t}-r{r}-{phase}.out")
            s = json.load(open(f"{out}/{t}-r{r}-{phase}.sample.json"))
            row[phase] = {"rps": o["rps"], "p50": o["p50"], "p99": o["p99"], "errors": o["errors"],
                          "cpu": s["cpu_s"] / max(o["requests"], 1) * 1e6, "rss": s["rss_peak_mib"]}
        rows.setdefault(t, []).append(row)
def cell(xs, f="{:.1f}"):
    return f"{f.format(st.median(xs))} [{f.format(min(xs))}–{f.format(max(xs))}]"
print(f"Rounds: {rounds}; medians [min-max]; ratios to `off` within a round.\n")
print("| measure | off | on (history, rules, traces 1%) | on / off |")
print("|---|---|---|---|")
def line(name, get, f="{:.1f}", ratio=True):
    cells = [cell([get(x) for x in rows[t]], f) for t in ("off", "on")]
    r = cell([get(x) / get(y) for x, y in zip(rows["on"], rows["off"])], "{:.3f}") + "x" if ratio else ""
    print(f"| {name} | " + " | ".join(cells + [r]) + " |")
line("req/s (c=32)", lambda x: x["whole"]["rps"], "{:.0f}")
line("CPU µs/req (c=32)", lambda x: x["whole"]["cpu"])
line("p99 ms (c=32)", lambda x: x["whole"]["p99"], "{:.2f}", False)
line("req/s (fixed 5,000)", lambda x: x["rate5k"]["rps"], "{:.0f}")
line("CPU µs/req at 5,000 req/s", lambda x: x["rate5k"]["cpu"])
added = [(x["rate5k"]["cpu"] - y["rate5k"]["cpu"]) * 5000 / 1e6 for x, y in zip(rows["on"], rows["off"])]
print(f"| CPU added at 5,000 req/s (cores) | | | {cell(added, '{:.3f}')} |")
line("peak RSS MiB", lambda x: x["whole"]["rss"], ratio=False)
print(f"\ndata directory (on): {int(open(f'{out}/on-data-bytes.txt').read()) / 1e6:.1f} MB")
print(open(f"{out}/on-metrics.txt").read())
print(f"raw results: {out}")
PY
