#!/usr/bin/env bash
# Pricing and the spend ledger on the request path (issue 23): the nginx mock upstream
# (:18081, its answer reports 31 + 64 tokens) behind flowgate (one worker) three times,
# from examples/bench/cost.toml:
#   off       [cost] enabled = false: nothing read, priced or counted;
#   on        answers metered and priced, every request in the ledger (a file in a data
#             directory, written every second) and in the budget's counter (its limit
#             raised out of reach);
#   blocking  as written: the global budget of $0.002 an hour is spent after ~47 requests,
#             and the rest are refused (429 insufficient_quota) without going upstream.
# Phases of --duration seconds, oha -c 32, alternating; then the ledger's file size for the
# requests it holds.
#
#   bench/cost.sh [--rounds N] [--duration S]
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
    *) sed -n 2,16p "$0"; exit 2 ;;
  esac
done
OUT_SUFFIX=-cost
source bench/lib.sh
ulimit -n 65536 2>/dev/null || true
start_nginx mock
DATA="$RUN/cost-data"; rm -rf "$DATA"
start_gateway off 18186 cost FLOWGATE__COST__ENABLED=false
start_gateway on 18187 cost FLOWGATE__COST__BUDGETS__0__LIMIT_USD=1000000000 FLOWGATE__SERVER__DATA_DIR="$DATA"
start_gateway blocking 18188 cost
targets=(off on blocking)
for t in "${targets[@]}"; do
  for _ in $(seq 50); do curl -fsS -o /dev/null -X POST -H 'content-type: application/json' \
    --data-binary @bench/conf/request.json "${URL[$t]}" && break; sleep 0.1; done
done
for r in $(seq "$ROUNDS"); do
  for t in "${targets[@]}"; do
    echo "round $r: $t" >&2
    phase "$t" "$r" whole oha -z "${DUR}s" -c 32 "${oha_args[@]}" "${URL[$t]}"
  done
done
sleep 2 # the last write of the ledger
admin="http://127.0.0.1:18197"
curl -fsS "$admin/api/v1/cost/summary?window=1h" > "$OUT/on-summary.json"
curl -fsS "$admin/metrics" | grep -E '^flowgate_ledger' > "$OUT/on-ledger-metrics.txt" || true
stat -c %s "$DATA/ledger.redb" > "$OUT/on-ledger-bytes.txt"

python3 - "$OUT" "$ROUNDS" "${targets[@]}" <<'PY'
import json, statistics as st, sys
sys.path.insert(0, "bench")
from report import oha
out, rounds, targets = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
rows = {}
for t in targets:
    for r in range(1, rounds + 1):
        o = oha(f"{out}/{t}-r{r}-whole.out")
        s = json.load(open(f"{out}/{t}-r{r}-whole.sample.json"))
        rows.setdefault(t, []).append({"rps": o["rps"], "p50": o["p50"], "p99": o["p99"], "errors": o["errors"],
                                       "cpu": s["cpu_s"] / max(o["requests"], 1) * 1e6, "rss": s["rss_peak_mib"]})
def cell(xs, f="{:.1f}"):
    return f"{f.format(st.median(xs))} [{f.format(min(xs))}–{f.format(max(xs))}]"
off = rows["off"]
print(f"Rounds: {rounds}; medians [min-max]; ratios to `off` within a round.\n")
print("| measure | off | on (priced, ledger) | blocking (budget spent) | on / off | blocking / off |")
print("|---|---|---|---|---|---|")
def line(name, get, f="{:.1f}", ratio=True):
    cells = [cell([get(x) for x in rows[t]], f) for t in ("off", "on", "blocking")]
    ratios = [cell([get(x) / get(y) for x, y in zip(rows[t], off)], "{:.3f}") + "x" if ratio else "" for t in ("on", "blocking")]
    print(f"| {name} | " + " | ".join(cells + ratios) + " |")
line("req/s (c=32)", lambda x: x["rps"], "{:.0f}")
line("CPU µs/req", lambda x: x["cpu"])
line("p50 ms", lambda x: x["p50"], "{:.2f}", False)
line("p99 ms", lambda x: x["p99"], "{:.2f}", False)
line("peak RSS MiB", lambda x: x["rss"], ratio=False)
s = json.load(open(f"{out}/on-summary.json"))["total"]
size = int(open(f"{out}/on-ledger-bytes.txt").read())
print(f"\nledger (on): {s['requests']} requests, ${s['usd']} priced; file {size / 1e6:.1f} MB")
print(open(f"{out}/on-ledger-metrics.txt").read())
print(f"raw results: {out}")
PY
