#!/usr/bin/env bash
# HTTP/2 to the upstream against the HTTP/1.1 pool: C concurrent streamed chat requests
# (closed loop, oha -c C) to `flowgate sim` streaming 20 tokens 20 ms apart after 50 ms,
# directly and through flowgate (one worker, examples/bench/h2-upstream.toml) with its pool
# on h2c, then on HTTP/1.1 (FLOWGATE__POOLS__SIM__PROTOCOL=http1), in alternating phases.
# Prints per target the whole answer's p50 and p99, the p99 added over direct access in the
# same round, flowgate's CPU per request, its peak RSS over its idle RSS per concurrent
# stream, and the upstream connections it opened.
#
#   bench/h2.sh [--rounds N] [--duration S] [--concurrency C]
#
# Loopback only; every phase lasts --duration seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
ROUNDS=3; DUR=10; CONC=1000
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) ROUNDS="$2"; shift 2 ;;
    --duration) DUR="$2"; shift 2 ;;
    --concurrency) CONC="$2"; shift 2 ;;
    *) sed -n 2,12p "$0"; exit 2 ;;
  esac
done
OUT_SUFFIX=-h2
source bench/lib.sh
ulimit -n 65536 2>/dev/null || true

setsid "$BIN" sim --listen 127.0.0.1:18101 --latency-ms 50 --token-ms 20 --tokens 20 > "$RUN/h2-sim.log" 2>&1 &
pids+=("$!"); SIM=$!
declare -A URL PID ADMIN
start() { # name port admin-port [env...]
  local name="$1" port="$2" admin="$3"; shift 3
  env "$@" FLOWGATE__SERVER__LISTEN="127.0.0.1:$port" FLOWGATE__SERVER__ADMIN_LISTEN="127.0.0.1:$admin" \
    setsid "$BIN" serve --config examples/bench/h2-upstream.toml > "$RUN/h2-$name.log" 2>&1 &
  pids+=("$!"); PID[$name]=$!; URL[$name]="http://127.0.0.1:$port/v1/chat/completions"; ADMIN[$name]=$admin
}
start h2 18186 18196
start h1 18187 18197 FLOWGATE__POOLS__SIM__PROTOCOL=http1
URL[direct]="http://127.0.0.1:18101/v1/chat/completions"; PID[direct]=$SIM
body="$RUN/h2-request.json"
echo '{"model":"gpt-4o-mini","stream":true,"max_tokens":20,"messages":[{"role":"user","content":"Summarize the quarterly infrastructure cost report"}]}' > "$body"
targets=(direct h2 h1)
for t in "${targets[@]}"; do
  for _ in $(seq 50); do curl -fsS -o /dev/null -X POST --data-binary @"$body" "${URL[$t]}" && break; sleep 0.1; done
done
connects() { # connections flowgate $1 has opened to the simulator so far
  curl -fsS "http://127.0.0.1:${ADMIN[$1]}/metrics" | awk '/^flowgate_upstream_connects_total/ {s += $2} END {print s + 0}'
}
rss() { awk '/^VmRSS:/ {print $2 / 1024}' "/proc/$1/status"; }
for r in $(seq "$ROUNDS"); do
  for t in "${targets[@]}"; do
    echo "round $r: $t" >&2
    f="$OUT/$t-r$r"
    [ "$t" = direct ] || { connects "$t" > "$f.connects0"; rss "${PID[$t]}" > "$f.rss0"; }
    phase "$t" "$r" c"$CONC" oha -z "${DUR}s" -c "$CONC" -m POST -D "$body" -H "content-type: application/json" \
      --no-tui --output-format json --disable-compression "${URL[$t]}"
    [ "$t" = direct ] || connects "$t" > "$f.connects1"
  done
done

python3 - "$OUT" "$ROUNDS" "$CONC" "${targets[@]}" <<'PY'
import json, statistics as st, sys
sys.path.insert(0, "bench")
from report import oha
out, rounds, conc, targets = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
rows = {}
for t in targets:
    for r in range(1, rounds + 1):
        f = f"{out}/{t}-r{r}"
        o = oha(f"{f}-c{conc}.out")
        s = json.load(open(f"{f}-c{conc}.sample.json"))
        row = {"rps": o["rps"], "p50": o["p50"], "p99": o["p99"], "errors": o["errors"],
               "cpu": s["cpu_s"] / max(o["requests"], 1) * 1e6}
        if t != "direct":
            row["kib_stream"] = (s["rss_peak_mib"] - float(open(f"{f}.rss0").read())) * 1024 / conc
            row["conns"] = float(open(f"{f}.connects1").read()) - float(open(f"{f}.connects0").read())
        rows.setdefault(t, []).append(row)
def cell(xs, f="{:.1f}"):
    return f"{f.format(st.median(xs))} [{f.format(min(xs))}–{f.format(max(xs))}]"
print(f"Rounds: {rounds}; {conc} concurrent streamed requests; medians [min-max].\n")
print("| target | req/s | errors | p50 ms | p99 ms | p99 added over direct, ms | CPU µs/req | RSS per stream, KiB | upstream connections opened |")
print("|---|---|---|---|---|---|---|---|---|")
for t in targets:
    x = rows[t]
    added = [a["p99"] - d["p99"] for a, d in zip(x, rows["direct"])]
    print(f"| {t} | {cell([a['rps'] for a in x], '{:.0f}')} | {sum(a['errors'] for a in x)} | {cell([a['p50'] for a in x])} | {cell([a['p99'] for a in x])} | "
          + (f"{cell(added)} | {cell([a['cpu'] for a in x])} | {cell([a['kib_stream'] for a in x])} | {cell([a['conns'] for a in x], '{:.0f}')} |"
             if t != "direct" else f"— | {cell([a['cpu'] for a in x])} | — | — |"))
print(f"\nraw results: {out}")
PY
