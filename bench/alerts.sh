#!/usr/bin/env bash
# Alert latency (issue 24): from a rule's condition holding (plus its `for`) to each
# receiver (a signed webhook, a Slack-format webhook, e-mail over SMTP) having the
# notification, and from the condition ending to the resolution; see bench/alerts.py.
#
#   bench/alerts.sh [--cycles N]
#
# Loopback only: the simulator :18081, flowgate :18180/:18190, receivers :18089 and :18025.
set -euo pipefail
cd "$(dirname "$0")/.."
CYCLES=3
while [ $# -gt 0 ]; do
  case "$1" in
    --cycles) CYCLES="$2"; shift 2 ;;
    *) sed -n 2,8p "$0"; exit 2 ;;
  esac
done
OUT="bench/out/$(date -u +%Y%m%dT%H%M%SZ)-alerts"
if [ -n "${FLOWGATE_BIN:-}" ]; then BIN="$FLOWGATE_BIN"; else
  cargo build --release --locked -q -p flowgate
  BIN="$PWD/target/release/flowgate"
fi
py=target/test-python/bin/python
if ! "$py" -c "import aiosmtpd" >/dev/null 2>&1; then
  python3 -m venv target/test-python && target/test-python/bin/pip install -q aiosmtpd
fi
"$py" bench/alerts.py "$BIN" "$OUT" "$CYCLES" | tee "$OUT.md"
mv "$OUT.md" "$OUT/summary.md"
echo "results: $OUT" >&2
