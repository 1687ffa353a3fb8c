#!/usr/bin/env bash
# flowgate's admission-control benchmark (issue 4), on examples/bench/admission.toml:
#   cost     - one gateway with auth on (:18186), two virtual keys alternated in each round:
#              `open` (no limits) and `limited` (a limit of 1,000,000 requests/s that never
#              triggers), on a pass-through route (open, limited) and on memory-cache hits
#              (open-hit, limited-hit); direct and nginx (:18082) for scale. Closed loop.
#   accuracy - the config as it is (:18180): 3x its per-client limit (100/s, burst 10) for
#              --accuracy seconds; what the gateway let through vs the theory, R*T + B.
# then the criterion micro-benchmark of the local limiter, and prints a Markdown report.
#
#   bench/admission.sh [--rounds N] [--duration S] [--accuracy S] [--conc 32]
#
# Loopback only; every phase is bounded by its duration (and `timeout`).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
ROUNDS=3; DUR=10; ACC=30; CONC=32
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) ROUNDS="$2"; shift 2 ;;
    --duration) DUR="$2"; shift 2 ;;
    --accuracy) ACC="$2"; shift 2 ;;
    --conc) CONC="$2"; shift 2 ;;
    *) sed -n 2,12p "$0"; exit 2 ;;
  esac
done
OUT_SUFFIX=-admission
source bench/lib.sh
CONFIG=examples/bench/admission.toml
# The benchmark's keys (examples/bench/admission.toml has their hashes).
OPEN_KEY=fgk_5aa83be7c3b68c8acd8085a084ffbc2837308600a299fa3d
LIMITED_KEY=fgk_47ec499bc5037999c435e00bf893c01d0a97fca2a3ce0c47

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for n in mock proxy; do [ -f "$RUN/$n.pid" ] && kill -QUIT "$(cat "$RUN/$n.pid")" 2>/dev/null || true; done
}
trap cleanup EXIT
for n in mock proxy; do nginx -p "$RUN" -e "$RUN/$n.error.log" -c "$RUN/$n.conf"; done
FLOWGATE__AUTH__ENABLED=true FLOWGATE__SERVER__LISTEN=127.0.0.1:18186 FLOWGATE__SERVER__ADMIN_LISTEN=127.0.0.1:18196 \
  "$BIN" serve --config "$CONFIG" > "$RUN/admission-cost.log" 2>&1 &
COST=$!; pids+=("$COST")
"$BIN" serve --config "$CONFIG" > "$RUN/admission.log" 2>&1 &
ACCURACY=$!; pids+=("$ACCURACY")

declare -A URL PID KEY
URL[direct]="http://127.0.0.1:18081$URL_PATH"; PID[direct]="$(cat "$RUN/mock.pid")"
URL[nginx]="http://127.0.0.1:18082$URL_PATH";  PID[nginx]="$(cat "$RUN/proxy.pid")"
for t in open limited; do
  URL[$t]="http://127.0.0.1:18186/keyed$URL_PATH"; PID[$t]=$COST
  URL[$t-hit]="http://127.0.0.1:18186/keyed-cached$URL_PATH"; PID[$t-hit]=$COST
done
KEY[open]=$OPEN_KEY; KEY[open-hit]=$OPEN_KEY; KEY[limited]=$LIMITED_KEY; KEY[limited-hit]=$LIMITED_KEY
for t in "${!URL[@]}"; do
  for _ in $(seq 50); do
    curl -fsS -o /dev/null -X POST -H "authorization: Bearer ${KEY[$t]:-none}" -H "content-type: application/json" \
      --data-binary @bench/conf/request.json "${URL[$t]}" && break
    sleep 0.1
  done
done

for r in $(seq 1 "$ROUNDS"); do
  # Alternate the order of the pair each round: drift of a shared machine favours neither.
  if [ $((r % 2)) -eq 1 ]; then pairs="open limited open-hit limited-hit"; else pairs="limited open limited-hit open-hit"; fi
  for t in direct nginx $pairs; do
    echo "round $r: $t" >&2
    auth=(); [ -n "${KEY[$t]:-}" ] && auth=(-H "authorization: Bearer ${KEY[$t]}")
    timeout 10 wrk -t2 -c "$CONC" -d 2s "${auth[@]}" -s "$lua" "${URL[$t]}" > /dev/null 2>&1 || true
    phase "$t" "$r" "closed" wrk -t2 -c "$CONC" -d "${DUR}s" --latency "${auth[@]}" -s "$lua" "${URL[$t]}"
  done
done

# Accuracy: 3x the limit from one client address.
ADMIN=http://127.0.0.1:18190
accepted() { curl -fsS "$ADMIN/metrics" | awk '/^flowgate_requests_total\{/ && /route="chat"/ && /status="200"/ {s += $2} END {print s + 0}'; }
refused() { curl -fsS "$ADMIN/metrics" | awk '/^flowgate_requests_total\{/ && /route="chat"/ && /status="429"/ {s += $2} END {print s + 0}'; }
a0=$(accepted); f0=$(refused)
echo "accuracy: 300 req/s for ${ACC}s" >&2
timeout $((ACC + 30)) oha -z "${ACC}s" -q 300 -c 8 "${oha_args[@]}" "http://127.0.0.1:18180$URL_PATH" > "$OUT/accuracy.oha.json" 2>&1 || true
sleep 1.5
echo "{\"accepted\": $(( $(accepted) - a0 )), \"refused\": $(( $(refused) - f0 )), \"rate\": 100, \"burst\": 10, \"seconds\": $ACC}" > "$OUT/accuracy.json"

cargo bench --locked -q -p flowgate-admission --bench limiter -- --noplot > "$OUT/criterion.txt" 2>&1 || echo "warning: criterion failed" >&2

python3 - "$OUT" <<'PY' | tee "$OUT/report.md"
import json, re, statistics, sys
sys.path.insert(0, "bench")
from report import wrk, load_sample
out = sys.argv[1]
targets = ["direct", "nginx", "open", "limited", "open-hit", "limited-hit"]
runs = {t: [] for t in targets}
import glob, os
for f in sorted(glob.glob(f"{out}/*-closed.out")):
    name = os.path.basename(f)
    t, r = re.match(r"(.+)-r(\d+)-closed\.out", name).groups()
    s = load_sample(f[:-4] + ".sample.json")
    w = wrk(f)
    w["cpu_us"] = s.get("cpu_s", 0) / w["requests"] * 1e6 if w["requests"] else None
    runs[t].append((int(r), w))
def med(xs):
    xs = [x for x in xs if x is not None]
    return (statistics.median(xs), min(xs), max(xs)) if xs else None
def ratio(a, b):
    ra = dict(runs[a]); rb = dict(runs[b])
    return med([ra[r]["rps"] / rb[r]["rps"] for r in ra if r in rb and rb[r]["rps"]])
print("| target | req/s (median) | p50 ms | p99 ms | CPU µs/req | errors |")
print("| --- | ---: | ---: | ---: | ---: | ---: |")
for t in targets:
    ws = [w for _, w in runs[t]]
    if not ws: continue
    m = lambda k: med([w[k] for w in ws])
    f = lambda v, d=0: "-" if v is None else f"{v[0]:.{d}f}"
    print(f"| {t} | {f(m('rps'))} | {f(m('p50'), 2)} | {f(m('p99'), 2)} | {f(m('cpu_us'), 1)} | {sum(w['errors'] for w in ws)} |")
print()
for a, b, what in [("limited", "open", "pass-through"), ("limited-hit", "open-hit", "cache hits"), ("limited", "nginx", "limited pass-through vs nginx")]:
    r = ratio(a, b)
    if r: print(f"- {a} / {b} ({what}): **{r[0]:.3f}×** [{r[1]:.3f}–{r[2]:.3f}]")
acc = json.load(open(f"{out}/accuracy.json"))
o = open(f"{out}/accuracy.oha.json").read()
total = json.loads(o[o.index("{"):])["summary"]["total"]
theory = acc["rate"] * total + acc["burst"]
print(f"- accuracy: 3× the limit ({acc['rate']}/s, burst {acc['burst']}) for {total:.2f} s: accepted {acc['accepted']}, refused {acc['refused']}; "
      f"theory R·T + B = {theory:.0f}: **{(acc['accepted'] - theory) / theory * 100:+.2f}%**")
crit = open(f"{out}/criterion.txt").read()
for name, t in re.findall(r"^(local/[^\n]+?)\s+time:\s+\[\S+ \S+ (\S+ \S+) \S+ \S+\]", crit, re.M):
    print(f"- criterion {name.strip()}: {t} (median)")
PY
echo "raw results: $OUT" >&2
