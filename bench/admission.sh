#!/usr/bin/env bash
# flowgate's admission-control benchmark (issue 4), on examples/bench/admission.toml:
#   cost     - one gateway with auth on (:18186), two virtual keys alternated in each round:
#              `open` (no limits) and `limited` (a limit of 1,000,000 requests/s that never
#              triggers), on a pass-through route (open, limited) and on memory-cache hits
#              (open-hit, limited-hit); direct and nginx (:18082) for scale. Closed loop.
#   shared   - the `limited` key again, on a gateway whose counts are shared through a
#              private redis-server (:18379): the cost of a Redis round trip per request.
#   accuracy - the config as it is (:18180): 3x its per-client limit (100/s, burst 10) for
#              --accuracy seconds; what the gateway let through vs the theory, R*T + B;
#              then two replicas sharing the limit through Redis (:18188, :18189), each
#              sent 1.5x the limit at the same time.
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

start_nginx mock proxy
FLOWGATE__AUTH__ENABLED=true FLOWGATE__SERVER__LISTEN=127.0.0.1:18186 FLOWGATE__SERVER__ADMIN_LISTEN=127.0.0.1:18196 \
  setsid "$BIN" serve --config "$CONFIG" > "$RUN/admission-cost.log" 2>&1 &
COST=$!; pids+=("$COST")
setsid "$BIN" serve --config "$CONFIG" > "$RUN/admission.log" 2>&1 &
ACCURACY=$!; pids+=("$ACCURACY")
setsid redis-server --port 18379 --bind 127.0.0.1 --save "" --appendonly no > "$RUN/redis.log" 2>&1 &
pids+=("$!")
for _ in $(seq 50); do redis-cli -p 18379 ping > /dev/null 2>&1 && break; sleep 0.1; done
shared_gw() { # port [VAR=value...]: a gateway on $CONFIG counting in the private Redis
  local port="$1"; shift
  env FLOWGATE__SHARED_LIMITS__URL=redis://127.0.0.1:18379 FLOWGATE__SERVER__LISTEN="127.0.0.1:$port" \
    FLOWGATE__SERVER__ADMIN_LISTEN="127.0.0.1:$((port + 10))" "$@" \
    setsid "$BIN" serve --config "$CONFIG" > "$RUN/admission-$port.log" 2>&1 &
  pids+=("$!"); SHARED_PID=$!
}
shared_gw 18187 FLOWGATE__AUTH__ENABLED=true; SHARED_COST=$SHARED_PID
shared_gw 18188
shared_gw 18189

declare -A URL PID KEY
URL[direct]="http://127.0.0.1:18081$URL_PATH"; PID[direct]="$(cat "$RUN/mock.pid")"
URL[nginx]="http://127.0.0.1:18082$URL_PATH";  PID[nginx]="$(cat "$RUN/proxy.pid")"
for t in open limited; do
  URL[$t]="http://127.0.0.1:18186/keyed$URL_PATH"; PID[$t]=$COST
  URL[$t-hit]="http://127.0.0.1:18186/keyed-cached$URL_PATH"; PID[$t-hit]=$COST
done
URL[shared]="http://127.0.0.1:18187/keyed$URL_PATH"; PID[shared]=$SHARED_COST
KEY[open]=$OPEN_KEY; KEY[shared]=$LIMITED_KEY; KEY[open-hit]=$OPEN_KEY; KEY[limited]=$LIMITED_KEY; KEY[limited-hit]=$LIMITED_KEY
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
  for t in direct nginx $pairs shared; do
    echo "round $r: $t" >&2
    auth=(); [ -n "${KEY[$t]:-}" ] && auth=(-H "authorization: Bearer ${KEY[$t]}")
    timeout 10 wrk -t2 -c "$CONC" -d 2s "${auth[@]}" -s "$lua" "${URL[$t]}" > /dev/null 2>&1 || true
    phase "$t" "$r" "closed" wrk -t2 -c "$CONC" -d "${DUR}s" --latency "${auth[@]}" -s "$lua" "${URL[$t]}"
  done
done

# Accuracy: 3x the limit from one client address, to one gateway, then to two sharing it.
count() { # admin-port status: chat requests answered with status
  curl -fsS "http://127.0.0.1:$1/metrics" | awk -v st="status=\"$2\"" '/^flowgate_requests_total\{/ && /route="chat"/ && index($0, st) {s += $2} END {print s + 0}'
}
accuracy() { # name rate admin-port...
  local name="$1" rate="$2"; shift 2
  local a0=0 f0=0 a1=0 f1=0 p
  for p in "$@"; do a0=$((a0 + $(count "$p" 200))); f0=$((f0 + $(count "$p" 429))); done
  echo "accuracy ($name): $rate req/s to each of $# for ${ACC}s" >&2
  local i=0 ohas=()
  for p in "$@"; do
    timeout $((ACC + 30)) oha -z "${ACC}s" -q "$rate" -c 8 "${oha_args[@]}" "http://127.0.0.1:$((p - 10))$URL_PATH" \
      > "$OUT/accuracy-$name-$i.oha.json" 2>&1 &
    ohas+=("$!"); i=$((i + 1))
  done
  wait "${ohas[@]}" || true
  sleep 1.5
  for p in "$@"; do a1=$((a1 + $(count "$p" 200))); f1=$((f1 + $(count "$p" 429))); done
  echo "{\"accepted\": $((a1 - a0)), \"refused\": $((f1 - f0)), \"rate\": 100, \"burst\": 10, \"seconds\": $ACC}" > "$OUT/accuracy-$name.json"
}
accuracy local 300 18190
accuracy shared 150 18198 18199

cargo bench --locked -q -p flowgate-admission --bench limiter -- --noplot > "$OUT/criterion.txt" 2>&1 || echo "warning: criterion failed" >&2

python3 - "$OUT" <<'PY' | tee "$OUT/report.md"
import json, re, statistics, sys
sys.path.insert(0, "bench")
from report import wrk, load_sample
out = sys.argv[1]
targets = ["direct", "nginx", "open", "limited", "open-hit", "limited-hit", "shared"]
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
for a, b, what in [("limited", "open", "pass-through"), ("limited-hit", "open-hit", "cache hits"), ("shared", "open", "a limit shared through Redis, pass-through"), ("limited", "nginx", "limited pass-through vs nginx")]:
    r = ratio(a, b)
    if r: print(f"- {a} / {b} ({what}): **{r[0]:.3f}×** [{r[1]:.3f}–{r[2]:.3f}]")
for name, what in [("local", "one gateway"), ("shared", "two gateways sharing it through Redis")]:
    acc = json.load(open(f"{out}/accuracy-{name}.json"))
    totals = []
    for f in sorted(glob.glob(f"{out}/accuracy-{name}-*.oha.json")):
        o = open(f).read()
        totals.append(json.loads(o[o.index("{"):])["summary"]["total"])
    total = max(totals)
    theory = acc["rate"] * total + acc["burst"]
    print(f"- accuracy, {what}: 3× the limit ({acc['rate']}/s, burst {acc['burst']}) for {total:.2f} s: accepted {acc['accepted']}, refused {acc['refused']}; "
          f"theory R·T + B = {theory:.0f}: **{(acc['accepted'] - theory) / theory * 100:+.2f}%**")
crit = open(f"{out}/criterion.txt").read()
for name, t in re.findall(r"^(local/[^\n]+?)\s+time:\s+\[\S+ \S+ (\S+ \S+) \S+ \S+\]", crit, re.M):
    print(f"- criterion {name.strip()}: {t} (median)")
PY
echo "raw results: $OUT" >&2
