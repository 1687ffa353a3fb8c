#!/usr/bin/env bash
# The dashboard's page weight and time to first render in headless Chromium: runs the
# browser test (tests/dashboard.rs: a gateway with real traffic, every page opened)
# --rounds times and prints the median of what the browser measured on loading
# /dashboard: bytes of the page and its assets, first contentful paint, DOMContentLoaded,
# and the login form usable (from navigation).
#
#   bench/dashboard.sh [--rounds N]
#
# Needs what scripts/test.sh installs (chromium, node, playwright-core in target/test-node).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=5
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) ROUNDS="$2"; shift 2 ;;
    *) sed -n 2,10p "$0"; exit 2 ;;
  esac
done
export FLOWGATE_TEST_NODE_MODULES="${FLOWGATE_TEST_NODE_MODULES:-$PWD/target/test-node/node_modules}"
export FLOWGATE_TEST_CHROMIUM="${FLOWGATE_TEST_CHROMIUM:-$(command -v chromium)}"
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for _ in $(seq "$ROUNDS"); do
  cargo test --locked -q -p flowgate-gateway --test dashboard -- --nocapture 2>/dev/null |
    sed -n 's/^dashboard report: //p' >>"$out"
done
python3 - "$out" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
if not rows:
    sys.exit("no report: did the browser test pass? (cargo test -p flowgate-gateway --test dashboard)")
med = lambda k: statistics.median(r[k] for r in rows)
print(f"rounds: {len(rows)}")
print(f"page weight (page + script + style, uncompressed): {med('page_weight_bytes'):.0f} bytes")
print(f"first contentful paint: {med('first_contentful_paint_ms'):.0f} ms")
print(f"DOMContentLoaded: {med('dom_content_loaded_ms'):.0f} ms")
print(f"login form usable (from navigation, as the test sees it): {med('login_visible_ms'):.0f} ms")
PY
