#!/usr/bin/env bash
# Response compression: a 4 KiB JSON answer through nginx (1 worker, `gzip on` at level 6,
# as flowgate's gzip) and through flowgate (1 worker, a route with `transform = { compress
# = true }`), each asked plain and with every coding it offers (nginx: gzip; flowgate:
# gzip, br, zstd), in alternating closed-loop phases (wrk -t2 -c32, GET) so that all of
# them meet the same noise. Prints per target and coding the median req/s, CPU per
# request, bytes per answer, and the ratios to nginx plain and nginx gzip.
#
#   bench/transforms.sh [--rounds N] [--duration S]
#
# Loopback only; every phase lasts --duration seconds. Needs what bench/run.sh needs.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
ROUNDS=5; DUR=5
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) ROUNDS="$2"; shift 2 ;;
    --duration) DUR="$2"; shift 2 ;;
    *) sed -n 2,11p "$0"; exit 2 ;;
  esac
done
OUT_SUFFIX=-transforms
source bench/lib.sh

# The answer: 4 KiB of JSON, as an API's list would be, served from a file.
json="$RUN/json-4k.json"
python3 - "$json" <<'PY'
import json, sys
rows = [{"id": i, "name": f"customer {i}", "plan": "enterprise" if i % 3 else "team",
         "region": ["eu-west-1", "us-east-1", "ap-south-1"][i % 3], "active": i % 5 != 0,
         "mrr": round(1234.5 + i * 17.25, 2)} for i in range(200)]
s, n = "", 1
while len(s) < 4096:
    s = json.dumps({"data": rows[:n], "next": None}); n += 1
open(sys.argv[1], "w").write(s)
PY
nginx_conf mock4k 18083 "" "location / { default_type application/json; root $RUN; try_files /json-4k.json =404; }"
nginx_conf gzproxy 18084 "upstream mock4k { server 127.0.0.1:18083; keepalive 128; keepalive_requests 10000000; }
  gzip on; gzip_comp_level 6; gzip_min_length 500; gzip_types application/json; gzip_vary on;" \
  "location / { proxy_pass http://mock4k; proxy_http_version 1.1; proxy_set_header Connection \"\"; }"
start_nginx mock4k gzproxy
start_gateway flowgate 18186 transforms
PID[nginx]="$(cat "$RUN/gzproxy.pid")"
URL[nginx]="http://127.0.0.1:18084/api/customers"; URL[flowgate]="http://127.0.0.1:18186/api/customers"
UPSTREAM_PID="$(cat "$RUN/mock4k.pid")"
for t in nginx flowgate; do
  for _ in $(seq 50); do curl -fsS -o /dev/null "${URL[$t]}" && break; sleep 0.1; done
done
# Each answer decoded must be the upstream's JSON.
for c in gzip br zstd; do
  curl -fsS -H "accept-encoding: $c" -o "$RUN/got.$c" -D "$RUN/head.$c" "${URL[flowgate]}"
  grep -qi "content-encoding: $c" "$RUN/head.$c" || { echo "flowgate did not answer $c" >&2; exit 1; }
done
python3 - "$RUN" "$json" <<'PY'
import gzip, subprocess, sys
run, want = sys.argv[1], open(sys.argv[2], "rb").read()
assert gzip.decompress(open(f"{run}/got.gzip", "rb").read()) == want, "gzip"
assert subprocess.run(["zstd", "-dc", f"{run}/got.zstd"], capture_output=True).stdout == want, "zstd"
PY

phases=("nginx identity" "nginx gzip" "flowgate identity" "flowgate gzip" "flowgate br" "flowgate zstd")
for r in $(seq "$ROUNDS"); do
  for p in "${phases[@]}"; do
    set -- $p; t="$1"; c="$2"
    echo "round $r: $t $c" >&2
    phase "$t" "$r" "$c" wrk -t2 -c32 -d"${DUR}s" -H "accept-encoding: $c" "${URL[$t]}"
  done
done

python3 - "$OUT" "$ROUNDS" "${phases[@]}" <<'PY'
import json, re, statistics as st, sys
out, rounds, phases = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
rows = {}
for p in phases:
    t, c = p.split()
    for r in range(1, rounds + 1):
        f = f"{out}/{t}-r{r}-{c}"
        text = open(f"{f}.out").read()
        n = int(re.search(r"(\d+) requests in", text).group(1))
        rps = float(re.search(r"Requests/sec:\s+([0-9.]+)", text).group(1))
        m = re.search(r"Transfer/sec:\s+([0-9.]+)([KMG]?B)", text)
        per = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3}[m.group(2)]
        size = float(m.group(1)) * per / rps
        s = json.load(open(f"{f}.sample.json"))
        rows.setdefault(p, []).append((rps, s["cpu_s"] / n * 1e6, size))
def cell(xs, f="{:.1f}"):
    return f"{f.format(st.median(xs))} [{f.format(min(xs))}–{f.format(max(xs))}]"
print(f"Rounds: {rounds}; medians [min-max]; ratios within a round.\n")
print("| target | coding | req/s | CPU µs/req | bytes/answer (with head) | req/s vs nginx gzip | CPU vs nginx gzip |")
print("|---|---|---|---|---|---|---|")
base = rows["nginx gzip"]
for p in phases:
    t, c = p.split()
    xs = rows[p]
    rr = [a[0] / b[0] for a, b in zip(xs, base)]
    cr = [a[1] / b[1] for a, b in zip(xs, base)]
    print(f"| {t} | {c} | {cell([x[0] for x in xs], '{:.0f}')} | {cell([x[1] for x in xs])} | "
          f"{cell([x[2] for x in xs], '{:.0f}')} | {cell(rr, '{:.2f}')}x | {cell(cr, '{:.2f}')}x |")
print(f"\nraw results: {out}")
PY
