#!/usr/bin/env bash
# Reading PostgreSQL's log for slow query shapes: `flowgate advise --log` against pgBadger
# (the usual tool for it, Debian's package) on the same generated stderr log, in the same
# run. The log: --entries timed statements (log_min_duration_statement) of 24 shapes with
# varying constants, a third through the extended protocol (execute + DETAIL parameters),
# some over several lines, among checkpoint and connection lines, with Debian's
# log_line_prefix. Prints each tool's median wall time and peak memory over --rounds, and
# the shapes flowgate found.
#
#   bench/querylog.sh [--entries N] [--rounds N]
#
# Needs pgbadger (apt-get install pgbadger) and builds flowgate in release.
set -euo pipefail
cd "$(dirname "$0")/.."
ENTRIES=200000
ROUNDS=3
while [ $# -gt 0 ]; do
  case "$1" in
    --entries) ENTRIES="$2"; shift 2 ;;
    --rounds) ROUNDS="$2"; shift 2 ;;
    *) sed -n 2,12p "$0"; exit 2 ;;
  esac
done
command -v pgbadger >/dev/null || { echo "pgbadger is missing: apt-get install pgbadger" >&2; exit 1; }
cargo build --locked --release -q -p flowgate
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 - "$ENTRIES" "$work/postgresql.log" <<'PY'
import random, sys
n, path = int(sys.argv[1]), sys.argv[2]
random.seed(7)
tables = ["leads", "accounts", "events", "tickets", "orders", "invoices"]
shapes = []
for t in tables:
    shapes += [
        lambda t=t: f"SELECT * FROM {t} WHERE id = {random.randint(1, 10**6)}",
        lambda t=t: f"SELECT count(*) FROM {t}\n  WHERE account_id = {random.randint(1, 5000)}\n  AND status = '{random.choice(['open', 'won', 'lost'])}'",
        lambda t=t: f"UPDATE {t} SET updated_at = now() WHERE id = {random.randint(1, 10**6)}",
        lambda t=t: f"SELECT a.name, count(*) FROM {t} x JOIN accounts a ON a.id = x.account_id WHERE x.created_at > now() - INTERVAL '{random.randint(1, 30)} days' GROUP BY a.name ORDER BY 2 DESC LIMIT {random.choice([10, 50])}",
    ]
with open(path, "w") as f:
    for i in range(n):
        ts = f"2026-12-07 {10 + i * 8 // n:02d}:{(i // 60) % 60:02d}:{i % 60:02d}.{i % 1000:03d} UTC"
        pid = 1000 + i % 50
        pre = f"{ts} [{pid}] app@crm "
        if i % 500 == 0:
            f.write(f"{ts} [{pid}] LOG:  checkpoint starting: time\n")
            f.write(f"{pre}LOG:  connection authorized: user=app database=crm\n")
        sql = random.choice(shapes)().replace("\n", "\n\t")
        ms = random.lognormvariate(3, 1.2)
        if i % 3 == 0:
            f.write(f"{pre}LOG:  duration: {ms:.3f} ms  execute <unnamed>: {sql}\n")
            f.write(f"{pre}DETAIL:  parameters: $1 = '{i}'\n")
        else:
            f.write(f"{pre}LOG:  duration: {ms:.3f} ms  statement: {sql}\n")
PY
size=$(stat -c %s "$work/postgresql.log")
echo "log: $ENTRIES timed statements, $((size / 1024 / 1024)) MiB"
run() { # name, command...: median seconds and KB over ROUNDS
  local name=$1; shift
  local times=() mem=()
  for _ in $(seq "$ROUNDS"); do
    /usr/bin/time -f "%e %M" -o "$work/t" "$@" >"$work/out.$name" 2>/dev/null
    read -r t m <"$work/t"; times+=("$t"); mem+=("$m")
  done
  printf '%s\n' "${times[@]}" | sort -n | sed -n "$(( (ROUNDS + 1) / 2 ))p" >"$work/$name.s"
  printf '%s\n' "${mem[@]}" | sort -n | sed -n "$(( (ROUNDS + 1) / 2 ))p" >"$work/$name.kb"
  echo "$name: $(cat "$work/$name.s") s, $(( $(cat "$work/$name.kb") / 1024 )) MiB peak"
}
run flowgate target/release/flowgate advise --log "$work/postgresql.log" --slow-ms 0 --format json
run pgbadger pgbadger -q -f stderr --prefix '%m [%p] %q%u@%d ' -j 1 -x json -o "$work/pgbadger.json" "$work/postgresql.log"
python3 - "$work" <<'PY'
import json, sys
w = sys.argv[1]
f = float(open(f"{w}/flowgate.s").read()); p = float(open(f"{w}/pgbadger.s").read())
v = json.load(open(f"{w}/out.flowgate"))
print(f"flowgate / pgbadger wall time: {f / p:.3f} (pgbadger {p / f:.1f}x the time)")
print(f"flowgate: {v['log']['statements']} statements, {v['log']['shapes']} shapes; top: {v['slow_queries'][0]['query']!r} x{v['slow_queries'][0]['calls']}")
PY
