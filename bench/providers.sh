#!/usr/bin/env bash
# The cost of translation: OpenAI clients served by an upstream speaking Anthropic's Messages
# API, or Bedrock's runtime API, against the same requests passed through to the same
# simulator's OpenAI API. `flowgate sim` (:18085 and :18086, 32 tokens, 20 ms apart when
# streamed) answers all three; flowgate (one worker) runs three times: `anthropic`
# (examples/bench/anthropic.toml, translating), `bedrock` (examples/bench/bedrock.toml,
# translating and signing; the simulator checks every signature) and `passthrough`
# (anthropic.toml with FLOWGATE__POOLS__CLAUDE__PROVIDER=openai), in alternating phases:
#   whole   non-streamed requests, closed loop (oha -c 32): req/s and CPU per request;
#   stream  streamed requests (oha -c 200): CPU per request, and per streamed event;
#   open    1,000 streamed requests open at once (oha -c 1000): peak RSS over idle, per stream.
#
#   bench/providers.sh [--rounds N] [--duration S]
#
# Loopback only; every phase lasts --duration seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
ROUNDS=3; DUR=8
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) ROUNDS="$2"; shift 2 ;;
    --duration) DUR="$2"; shift 2 ;;
    *) sed -n 2,13p "$0"; exit 2 ;;
  esac
done
OUT_SUFFIX=-providers
source bench/lib.sh
ulimit -n 65536 2>/dev/null || true
export ANTHROPIC_API_KEY=sk-ant-bench
export AWS_ACCESS_KEY_ID=AKIABENCH0000000000 AWS_SECRET_ACCESS_KEY=bench-secret

TOKENS=32
setsid "$BIN" sim --listen 127.0.0.1:18085 --token-ms 20 --tokens $TOKENS > "$RUN/providers-sim.log" 2>&1 &
pids+=("$!")
setsid "$BIN" sim --listen 127.0.0.1:18086 --token-ms 20 --tokens $TOKENS --aws-region us-east-1 > "$RUN/providers-sim-bedrock.log" 2>&1 &
pids+=("$!")
start_gateway anthropic 18186 anthropic
start_gateway passthrough 18187 anthropic FLOWGATE__POOLS__CLAUDE__PROVIDER=openai
start_gateway bedrock 18188 bedrock
whole="$RUN/providers-whole.json"; stream="$RUN/providers-stream.json"
echo '{"model":"claude-sonnet","max_tokens":32,"messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Summarize the quarterly infrastructure cost report"}]}' > "$whole"
echo '{"model":"claude-sonnet","max_tokens":32,"stream":true,"messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Summarize the quarterly infrastructure cost report"}]}' > "$stream"
targets=(anthropic bedrock passthrough)
for t in "${targets[@]}"; do
  for _ in $(seq 50); do curl -fsS -o /dev/null -X POST --data-binary @"$whole" "${URL[$t]}" && break; sleep 0.1; done
done
rss() { awk '/^VmRSS:/ {print $2 / 1024}' "/proc/$1/status"; }
load() { # target round phase concurrency body
  phase "$1" "$2" "$3" oha -z "${DUR}s" -c "$4" -m POST -D "$5" -H "content-type: application/json" \
    --no-tui --output-format json --disable-compression "${URL[$1]}"
}
for r in $(seq "$ROUNDS"); do
  for t in "${targets[@]}"; do
    echo "round $r: $t" >&2
    load "$t" "$r" whole 32 "$whole"
    load "$t" "$r" stream 200 "$stream"
    rss "${PID[$t]}" > "$OUT/$t-r$r.rss0"
    load "$t" "$r" open 1000 "$stream"
  done
done

python3 - "$OUT" "$ROUNDS" "$TOKENS" "${targets[@]}" <<'PY'
import json, statistics as st, sys
sys.path.insert(0, "bench")
from report import oha
out, rounds, tokens, targets = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
rows = {}
for t in targets:
    for r in range(1, rounds + 1):
        row = {}
        for ph in ("whole", "stream", "open"):
            o = oha(f"{out}/{t}-r{r}-{ph}.out")
            s = json.load(open(f"{out}/{t}-r{r}-{ph}.sample.json"))
            row[ph] = {"rps": o["rps"], "p50": o["p50"], "p99": o["p99"], "errors": o["errors"],
                       "cpu": s["cpu_s"] / max(o["requests"], 1) * 1e6, "rss": s["rss_peak_mib"]}
        row["rss0"] = float(open(f"{out}/{t}-r{r}.rss0").read())
        rows.setdefault(t, []).append(row)
def cell(xs, f="{:.1f}"):
    return f"{f.format(st.median(xs))} [{f.format(min(xs))}–{f.format(max(xs))}]"
p = rows["passthrough"]
# A streamed answer is the simulator's TOKENS content events plus 4 more (start, block start, ping or
# role, stop events) on the Anthropic side; per event, the CPU difference over TOKENS + 4.
events = tokens + 4
print(f"Rounds: {rounds}; medians [min-max]; ratios to passthrough within a round.\n")
print("| measure | anthropic (translated) | bedrock (translated, signed) | passthrough (OpenAI) | anthropic / pass | bedrock / pass |")
print("|---|---|---|---|---|---|")
def line(name, get, f="{:.1f}", ratio=True):
    cells = [cell([get(x) for x in rows[t]], f) for t in ("anthropic", "bedrock", "passthrough")]
    ratios = [cell([get(x) / get(y) for x, y in zip(rows[t], p)], "{:.2f}") + "x" if ratio else "" for t in ("anthropic", "bedrock")]
    print(f"| {name} | " + " | ".join(cells + ratios) + " |")
line("whole answers, req/s (c=32)", lambda x: x["whole"]["rps"], "{:.0f}")
line("whole answers, CPU µs/req", lambda x: x["whole"]["cpu"])
line("whole answers, p50 ms", lambda x: x["whole"]["p50"], "{:.2f}", False)
line("whole answers, p99 ms", lambda x: x["whole"]["p99"], "{:.2f}", False)
line("streams, CPU µs/req (c=200)", lambda x: x["stream"]["cpu"])
for t in ("anthropic", "bedrock"):
    print(f"| {t} streams, CPU added per event, µs | {cell([(x['stream']['cpu'] - y['stream']['cpu']) / events for x, y in zip(rows[t], p)], '{:.2f}')} | | | | |")
line("1,000 open streams, RSS per stream KiB", lambda x: (x["open"]["rss"] - x["rss0"]) * 1024 / 1000, ratio=False)
print("| errors (all phases) | " + " | ".join(str(sum(x[ph]["errors"] for x in rows[t] for ph in ("whole", "stream", "open"))) for t in ("anthropic", "bedrock", "passthrough")) + " | | |")
print(f"\nraw results: {out}")
PY
