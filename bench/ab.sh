#!/usr/bin/env bash
# Side-by-side pass-through CPU per request: the nginx proxy (1 worker) against this build of
# flowgate (1 worker) and, optionally, another flowgate binary (a previous commit's, say), in
# alternating closed-loop phases (wrk -t2 -c32) so that all of them meet the same noise.
# Prints per target the median req/s, user and kernel CPU per request, the per-round ratios
# to nginx, and context switches per request of the target and of the mock upstream behind
# it (how often each went to sleep and had to be woken).
#
#   bench/ab.sh [--rounds N] [--duration S] [--other PATH-TO-ANOTHER-FLOWGATE]
#
# Loopback only; every phase lasts --duration seconds. Needs what bench/run.sh needs.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
ROUNDS=6; DUR=6; OTHER=""
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) ROUNDS="$2"; shift 2 ;;
    --duration) DUR="$2"; shift 2 ;;
    --other) OTHER="$2"; shift 2 ;;
    *) sed -n 2,9p "$0"; exit 2 ;;
  esac
done
OUT_SUFFIX=-ab
source bench/lib.sh

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for n in mock proxy; do [ -f "$RUN/$n.pid" ] && kill -QUIT "$(cat "$RUN/$n.pid")" 2>/dev/null || true; done
}
trap cleanup EXIT
for n in mock proxy; do nginx -p "$RUN" -e "$RUN/$n.error.log" -c "$RUN/$n.conf"; done

declare -A URL PID
start() { # name port binary
  FLOWGATE__SERVER__LISTEN="127.0.0.1:$2" FLOWGATE__SERVER__ADMIN_LISTEN="127.0.0.1:$(($2 + 10))" \
    "$3" serve --config examples/bench/passthrough.toml > "$RUN/ab-$1.log" 2>&1 &
  pids+=("$!"); PID[$1]=$!; URL[$1]="http://127.0.0.1:$2$URL_PATH"
}
URL[nginx]="http://127.0.0.1:18082$URL_PATH"; PID[nginx]="$(cat "$RUN/proxy.pid")"
targets=(nginx flowgate)
start flowgate 18186 "$BIN"
if [ -n "$OTHER" ]; then start other 18187 "$OTHER"; targets+=(other); fi
for t in "${targets[@]}"; do
  for _ in $(seq 50); do curl -fsS -o /dev/null -X POST --data-binary @bench/conf/request.json "${URL[$t]}" && break; sleep 0.1; done
done

UPSTREAM_PID="$(cat "$RUN/mock.pid")"
for r in $(seq "$ROUNDS"); do
  for t in "${targets[@]}"; do
    echo "round $r: $t" >&2
    phase "$t" "$r" closed wrk -t2 -c32 -d"${DUR}s" -s "$lua" "${URL[$t]}"
  done
done

python3 - "$OUT" "$ROUNDS" "${targets[@]}" <<'PY'
import json, re, statistics as st, sys
out, rounds, targets = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
rows = {}
for t in targets:
    for r in range(1, rounds + 1):
        text = open(f"{out}/{t}-r{r}-closed.out").read()
        n = int(re.search(r"(\d+) requests in", text).group(1))
        rps = float(re.search(r"Requests/sec:\s+([0-9.]+)", text).group(1))
        s = json.load(open(f"{out}/{t}-r{r}-closed.sample.json"))
        u = json.load(open(f"{out}/{t}-r{r}-closed.upstream.json"))
        rows.setdefault(t, []).append((rps, s["user_s"] / n * 1e6, (s["cpu_s"] - s["user_s"]) / n * 1e6,
                                       s["switches"] / n, u["switches"] / n))
print(f"Rounds: {rounds}; medians [min-max]; ratios within a round.\n")
print("| target | req/s | user µs/req | kernel µs/req | CPU µs/req | req/s vs nginx | CPU vs nginx "
      "| switches/req | upstream switches/req |")
print("|---|---|---|---|---|---|---|---|---|")
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
          f"{cell(rr, '{:.2f}')}x | {cell(cr, '{:.2f}')}x | {cell(sw, '{:.2f}')} | {cell(usw, '{:.2f}')} |")
print(f"\nraw results: {out}")
PY
