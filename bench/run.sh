#!/usr/bin/env bash
# flowgate's loopback benchmark: the same load against
#   direct   - the mock upstream itself (nginx returning a fixed chat.completion, :18081)
#   nginx    - nginx as a reverse proxy in front of it (1 worker, upstream keepalive, :18082)
#   flowgate - flowgate pass-through (examples/bench/passthrough.toml, 1 worker, :18180)
# and, closed loop only, both proxies with 2 workers:
#   nginx2   - the same nginx proxy with worker_processes 2 (:18083)
#   flowgate2 - the same flowgate with workers = 2 (:18181)
# and flowgate answering from its cache (examples/bench/cache.toml, issue 3):
#   cache    - L1 (memory) hits, 1 worker (:18182; closed loop and fixed rates)
#   cache2   - the same with 2 workers (:18183; closed loop)
#   l2       - memory tier off, hits from a private redis-server on :18379 (:18184; fixed rates)
#   l3       - memory tier off, hits from the disk tier (:18185; fixed rates)
# and, once at the end, 100 concurrent identical misses against `cache` (single-flight).
# in interleaved rounds, and prints throughput, latency percentiles, CPU per request, peak
# RSS, and the ratios flowgate/nginx and overheads vs direct (docs/benchmarks.md).
#
#   bench/run.sh [--rounds N] [--duration S] [--rates "1000 3000"] [--conc 32]
#
# Loopback only. Every phase is bounded by --duration (and `timeout`). Needs nginx, wrk
# (Debian packages) and oha (cargo install oha); installs nginx and wrk when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
ROUNDS=2; DUR=10; RATES="1000 3000"; CONC=32; WARM=3
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) ROUNDS="$2"; shift 2 ;;
    --duration) DUR="$2"; shift 2 ;;
    --rates) RATES="$2"; shift 2 ;;
    --conc) CONC="$2"; shift 2 ;;
    *) sed -n 2,12p "$0"; exit 2 ;;
  esac
done
source bench/lib.sh
nginx_conf proxy2 18083 "upstream mock { server 127.0.0.1:18081; keepalive 128; keepalive_requests 10000000; }" "$proxy_loc" 2

start_nginx mock proxy proxy2
setsid "$BIN" serve --config examples/bench/passthrough.toml > "$RUN/flowgate.log" 2>&1 &
FG=$!; pids+=("$FG")
FLOWGATE__SERVER__WORKERS=2 FLOWGATE__SERVER__LISTEN=127.0.0.1:18181 FLOWGATE__SERVER__ADMIN_LISTEN=127.0.0.1:18191 \
  setsid "$BIN" serve --config examples/bench/passthrough.toml > "$RUN/flowgate2.log" 2>&1 &
FG2=$!; pids+=("$FG2")
setsid redis-server --port 18379 --bind 127.0.0.1 --save "" --appendonly no > "$RUN/redis.log" 2>&1 &
pids+=("$!")
rm -rf "$RUN/l3"
cache_gw() { # name port workers [VAR=value...]
  local name="$1" port="$2" workers="$3"; shift 3
  env FLOWGATE__SERVER__LISTEN="127.0.0.1:$port" FLOWGATE__SERVER__ADMIN_LISTEN="127.0.0.1:$((port + 10))" \
    FLOWGATE__SERVER__WORKERS="$workers" "$@" \
    setsid "$BIN" serve --config examples/bench/cache.toml > "$RUN/$name.log" 2>&1 &
  pids+=("$!"); PID[$name]=$!; URL[$name]="http://127.0.0.1:$port/v1/chat/completions"; ADMIN[$name]="http://127.0.0.1:$((port + 10))"
}
declare -A URL PID ADMIN
for _ in $(seq 50); do redis-cli -p 18379 ping > /dev/null 2>&1 && break; sleep 0.1; done
cache_gw cache 18182 1
cache_gw cache2 18183 2
cache_gw l2 18184 1 FLOWGATE__CACHE__MEMORY=0 FLOWGATE__CACHE__REDIS__URL=redis://127.0.0.1:18379
cache_gw l3 18185 1 FLOWGATE__CACHE__MEMORY=0 FLOWGATE__CACHE__DISK__PATH="$RUN/l3/cache.redb"
for port in 18081 18082 18083 18180 18181 18182 18183 18184 18185; do
  for _ in $(seq 50); do curl -fsS -o /dev/null -X POST --data-binary @bench/conf/request.json "http://127.0.0.1:$port$URL_PATH" && break; sleep 0.1; done
done

URL[direct]="http://127.0.0.1:18081$URL_PATH"; PID[direct]="$(cat "$RUN/mock.pid")"
URL[nginx]="http://127.0.0.1:18082$URL_PATH";  PID[nginx]="$(cat "$RUN/proxy.pid")"
URL[flowgate]="http://127.0.0.1:18180$URL_PATH"; PID[flowgate]="$FG"
URL[nginx2]="http://127.0.0.1:18083$URL_PATH";  PID[nginx2]="$(cat "$RUN/proxy2.pid")"
URL[flowgate2]="http://127.0.0.1:18181$URL_PATH"; PID[flowgate2]="$FG2"

for r in $(seq 1 "$ROUNDS"); do
  for t in direct nginx flowgate; do
    echo "round $r: $t" >&2
    timeout $((WARM + 20)) oha -z "${WARM}s" -c "$CONC" "${oha_args[@]}" "${URL[$t]}" > /dev/null 2>&1 || true
    phase "$t" "$r" "closed" wrk -t2 -c "$CONC" -d "${DUR}s" --latency -s "$lua" "${URL[$t]}"
    for q in $RATES; do
      phase "$t" "$r" "q$q" oha -z "${DUR}s" -q "$q" -c "$CONC" --latency-correction "${oha_args[@]}" "${URL[$t]}"
    done
  done
  for t in nginx2 flowgate2; do
    echo "round $r: $t" >&2
    timeout $((WARM + 20)) oha -z "${WARM}s" -c "$CONC" "${oha_args[@]}" "${URL[$t]}" > /dev/null 2>&1 || true
    phase "$t" "$r" "closed" wrk -t2 -c "$CONC" -d "${DUR}s" --latency -s "$lua" "${URL[$t]}"
  done
  for t in cache cache2 l2 l3; do
    echo "round $r: $t" >&2
    timeout $((WARM + 20)) oha -z "${WARM}s" -c "$CONC" "${oha_args[@]}" "${URL[$t]}" > /dev/null 2>&1 || true
    case "$t" in cache|cache2)
      phase "$t" "$r" "closed" wrk -t2 -c "$CONC" -d "${DUR}s" --latency -s "$lua" "${URL[$t]}" ;;
    esac
    case "$t" in cache|l2|l3)
      for q in $RATES; do
        phase "$t" "$r" "q$q" oha -z "${DUR}s" -q "$q" -c "$CONC" --latency-correction "${oha_args[@]}" "${URL[$t]}"
      done ;;
    esac
  done
done

# Single-flight: 100 concurrent identical requests for a key nobody asked for yet.
flight_body="$RUN/flight.json"
sed "s/quarterly infrastructure cost report/single-flight probe $(date +%s%N)/" bench/conf/request.json > "$flight_body"
upstream_count() { curl -fsS "${ADMIN[cache]}/metrics" | awk '/^flowgate_upstream_duration_seconds_count/ {s += $2} END {print s + 0}'; }
before="$(upstream_count)"
oha -n 100 -c 100 -m POST -D "$flight_body" -H "content-type: application/json" --no-tui --output-format json \
  "${URL[cache]}" > "$OUT/flight.oha.json" 2>&1 || echo "warning: flight exited non-zero" >&2
after="$(upstream_count)"
echo "{\"requests\": 100, \"upstream_requests\": $((after - before))}" > "$OUT/flight.json"
curl -fsS "${ADMIN[cache]}/api/v1/performance/cache/stats" > "$OUT/cache-stats.json" || true

python3 bench/report.py "$OUT" --rates "$RATES" --conc "$CONC" | tee "$OUT/report.md"
echo "raw results: $OUT" >&2
