#!/usr/bin/env bash
# flowgate's load-balancing benchmark (issue 5), on examples/bench/balance.toml: three
# simulated endpoints (:18101 20 ms, :18102 100 ms, :18103 20 ms failing 20% with 500),
# the same open-loop load (--rate requests/s for --duration s, latency corrected) through
#   - flowgate with each strategy, switched through the admin API: without retries (pool
#     `plain`), with retries (pool `llm`), with retries and a breaker opening at a 10%
#     failure share (pool `ejecting`), and p2c_ewma with hedging at the pool's p95;
#   - nginx (:18083) round robin over the same three, retrying 5xx once
#     (proxy_next_upstream), the reference a reverse proxy gives.
# Each run has a fresh gateway (balancer state does not carry over). Reports p50/p99, the
# client-visible error rate and upstream requests per request (from the simulators' own
# counts), as Markdown.
#
#   bench/balance.sh [--duration S] [--rate R] [--conc C]
#
# Loopback only; every phase is bounded by its duration (and `timeout`).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
DUR=20; RATE=50; CONC=32
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) DUR="$2"; shift 2 ;;
    --rate) RATE="$2"; shift 2 ;;
    --conc) CONC="$2"; shift 2 ;;
    *) sed -n 2,13p "$0"; exit 2 ;;
  esac
done
OUT_SUFFIX=-balance
source bench/lib.sh
CONFIG=examples/bench/balance.toml

setsid "$BIN" sim --listen 127.0.0.1:18101 --latency-ms 20 --seed 1 > "$RUN/sim-18101.log" 2>&1 & pids+=("$!")
setsid "$BIN" sim --listen 127.0.0.1:18102 --latency-ms 100 --seed 2 > "$RUN/sim-18102.log" 2>&1 & pids+=("$!")
setsid "$BIN" sim --listen 127.0.0.1:18103 --latency-ms 20 --error-rate 0.2 --seed 3 > "$RUN/sim-18103.log" 2>&1 & pids+=("$!")
nginx_conf lb 18083 \
  "upstream sims { server 127.0.0.1:18101; server 127.0.0.1:18102; server 127.0.0.1:18103; keepalive 64; }" \
  "location / { proxy_pass http://sims; proxy_http_version 1.1; proxy_set_header Connection \"\"; proxy_next_upstream error timeout http_500 http_502 http_503 http_504 non_idempotent; proxy_next_upstream_tries 2; }"
start_nginx lb
GW=""
gateway() { # a fresh gateway (each run starts from the same balancer state)
  if [ -n "$GW" ]; then kill "$GW"; wait "$GW" 2>/dev/null || true; fi
  setsid "$BIN" serve --config "$CONFIG" >> "$RUN/balance.log" 2>&1 & GW=$!; pids+=("$GW")
  for _ in $(seq 100); do curl -fsS -o /dev/null http://127.0.0.1:18190/health && return; sleep 0.05; done
}
gateway
for url in http://127.0.0.1:18101 http://127.0.0.1:18102 http://127.0.0.1:18103 http://127.0.0.1:18083; do
  for _ in $(seq 100); do
    curl -s -o /dev/null -X POST -H "content-type: application/json" --data-binary @bench/conf/request.json "$url/v1/chat/completions" && break
    sleep 0.1
  done
done

upstream() { # requests the three simulators have received so far
  local n=0
  for p in 18101 18102 18103; do
    n=$((n + $(curl -fsS "http://127.0.0.1:$p/sim/stats" | python3 -c 'import json,sys; print(json.load(sys.stdin)["requests"])')))
  done
  echo "$n"
}
strategy() { # name: every pool of a fresh gateway
  gateway
  for pool in llm plain ejecting; do
    local ok=""
    for _ in $(seq 50); do
      curl -fsS -o /dev/null -X POST http://127.0.0.1:18190/api/v1/performance/load-balancer/strategy \
        -d "{\"pool\": \"$pool\", \"strategy\": \"$1\"}" 2>/dev/null && { ok=1; break; }
      sleep 0.1
    done
    [ -n "$ok" ] || { echo "cannot set strategy $1 on pool $pool" >&2; exit 1; }
  done
}
run() { # name url route (the x-bench header: plain, ejecting, hedged; anything else: chat)
  local before after
  before=$(upstream)
  timeout -k 5 $((DUR + 30)) oha -z "${DUR}s" -q "$RATE" -c "$CONC" --latency-correction "${oha_args[@]}" \
    -H "x-bench: $3" "$2" \
    > "$OUT/$1.json" 2> "$OUT/$1.err" || echo "warning: $1 exited non-zero" >&2
  after=$(upstream)
  echo "$((after - before))" > "$OUT/$1.upstream"
  echo "done: $1" >&2
}
G=http://127.0.0.1:18180
for s in round_robin least_loaded random p2c_ewma; do
  for m in plain retries ejecting; do
    strategy "$s"
    run "$s-$m" "$G/v1/chat/completions" "$m"
  done
done
strategy p2c_ewma
run "p2c_ewma-hedged" "$G/v1/chat/completions" hedged
run "nginx-retries" "http://127.0.0.1:18083/v1/chat/completions" none

python3 - "$OUT" "$RATE" "$DUR" <<'PY'
import json, os, sys
out, rate, dur = sys.argv[1], sys.argv[2], sys.argv[3]
rows = [f"{s}-{m}" for s in ["round_robin", "least_loaded", "random", "p2c_ewma"]
        for m in ["plain", "retries", "ejecting"]] + ["p2c_ewma-hedged", "nginx-retries"]
res = {}
for r in rows:
    j = json.load(open(os.path.join(out, r + ".json")))
    codes = j.get("statusCodeDistribution", {})
    # Requests still in flight when the duration ran out are not answers.
    errors = {k: v for k, v in j.get("errorDistribution", {}).items() if k != "aborted due to deadline"}
    total = sum(codes.values()) + sum(errors.values())
    ok = codes.get("200", 0)
    assert ok > 0, f"{r}: no successful answer: {codes}"
    up = int(open(os.path.join(out, r + ".upstream")).read())
    p = j["latencyPercentiles"]
    res[r] = dict(p50=p["p50"] * 1e3, p99=p["p99"] * 1e3, err=(total - ok) / max(total, 1), up=up / max(total, 1), n=total)
print(f"Open loop, {rate} requests/s for {dur} s per row (oha, latency corrected); endpoints 20 ms, 100 ms, 20 ms failing 20%.\n")
print("| run | requests | p50 ms | p99 ms | errors | upstream / request | p99 vs round_robin (same retries) |")
print("|---|---|---|---|---|---|---|")
for r in rows:
    x = res[r]
    mode = r.rsplit("-", 1)[1]
    base = res["round_robin-" + ("retries" if mode in ("hedged",) or r.startswith("nginx") else mode)]["p99"]
    print(f"| {r} | {x['n']} | {x['p50']:.1f} | {x['p99']:.1f} | {x['err'] * 100:.2f}% | {x['up']:.3f} | {x['p99'] / base:.2f}x |")
PY
echo "raw results: $OUT" >&2
