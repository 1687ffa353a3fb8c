#!/usr/bin/env bash
# Runs flowgate's whole test suite on a fresh Debian machine with the Rust toolchain.
# Installs what the tests need when it is missing (Debian packages), then runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
# Later suites start private redis-server / postgres processes on loopback; install them now
# so that a fresh machine has everything the suite may need.
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
# deploy/'s Prometheus rules are checked and unit-tested with promtool.
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
# The dashboard is tested in a real headless Chromium (Debian's), driven by playwright-core
# (npm, installed below into target/test-node; it downloads no browser).
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v node >/dev/null 2>&1 || need+=(nodejs)
command -v npm >/dev/null 2>&1 || need+=(npm)
# The e-mail notifier's tests talk to a real SMTP server, aiosmtpd (PyPI), and the admin
# API's OpenAPI document is checked by openapi-spec-validator (PyPI), both kept in a venv
# under target/ (Debian's Python is externally managed).
py=target/test-python/bin/python
pypi=(aiosmtpd openapi-spec-validator)
has_pypi() { "$py" -c "import aiosmtpd, openapi_spec_validator" >/dev/null 2>&1; }
if ! has_pypi; then
  command -v python3 >/dev/null 2>&1 || need+=(python3)
  python3 -c "import ensurepip" >/dev/null 2>&1 || need+=(python3-venv)
fi
# The database advisor's tests start a private PostgreSQL with pg_stat_statements and
# HypoPG (the package of the installed server's major version).
pg_major() { ls /usr/lib/postgresql 2>/dev/null | sort -n | tail -1; }
[ -n "$(pg_major)" ] && [ -x "/usr/lib/postgresql/$(pg_major)/bin/initdb" ] || need+=(postgresql)
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
apt_install() {
  echo "installing: $*"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null
}
if [ ${#need[@]} -gt 0 ]; then
  apt_install "${need[@]}"
fi
if [ ! -f "/usr/share/postgresql/$(pg_major)/extension/hypopg.control" ]; then
  apt_install "postgresql-$(pg_major)-hypopg"
fi

if ! has_pypi; then
  echo "installing: ${pypi[*]} (PyPI) into target/test-python"
  rm -rf target/test-python
  python3 -m venv target/test-python
  target/test-python/bin/pip install -q "${pypi[@]}"
fi
export FLOWGATE_TEST_PYTHON="$PWD/$py"

playwright=1.65.1
if [ ! -f "target/test-node/node_modules/playwright-core/package.json" ] ||
  ! grep -q "\"version\": \"$playwright\"" target/test-node/node_modules/playwright-core/package.json; then
  echo "installing: playwright-core@$playwright (npm) into target/test-node"
  mkdir -p target/test-node
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --no-save --no-audit --no-fund \
    --prefix target/test-node "playwright-core@$playwright" >/dev/null
fi
export FLOWGATE_TEST_NODE_MODULES="$PWD/target/test-node/node_modules"
export FLOWGATE_TEST_CHROMIUM="$(command -v chromium)"

# A clean build gains nothing from the incremental cache, which doubled the disk it took
# (docs/decisions/2026-12-07-lean-test-builds.md); a caller may still ask for it.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
cargo test --workspace --all-targets --locked
cargo test --workspace --doc --locked
# Every shipped example must pass `flowgate check` (the TLS benchmark's names the CA that
# bench/tls-certs.sh makes; provider keys get placeholders unless set).
bash bench/tls-certs.sh
for f in examples/*.toml examples/*/*.toml; do
  [ -e "$f" ] || continue
  ANTHROPIC_API_KEY="${ANTHROPIC_API_KEY:-sk-ant-placeholder}" \
    AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-AKIAPLACEHOLDER}" \
    AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-placeholder}" \
    OPENAI_API_KEY="${OPENAI_API_KEY:-sk-placeholder}" \
    AZURE_OPENAI_API_KEY="${AZURE_OPENAI_API_KEY:-placeholder}" \
    GEMINI_API_KEY="${GEMINI_API_KEY:-placeholder}" \
    FLOWGATE_WEBHOOK_SECRET="${FLOWGATE_WEBHOOK_SECRET:-placeholder}" \
    SLACK_WEBHOOK_URL="${SLACK_WEBHOOK_URL:-https://hooks.slack.com/services/placeholder}" \
    PAGERDUTY_ROUTING_KEY="${PAGERDUTY_ROUTING_KEY:-placeholder}" \
    DATABASE_URL="${DATABASE_URL:-postgres://advisor:placeholder@127.0.0.1:5432/app}" \
    cargo run --locked -q -p flowgate -- check --config "$f" >/dev/null || { echo "example $f fails flowgate check" >&2; exit 1; }
done
echo "examples: all pass flowgate check"
# The admin API's OpenAPI document, checked by an independent validator.
cargo run --locked -q -p flowgate -- openapi --output target/openapi.json
target/test-python/bin/openapi-spec-validator target/openapi.json
promtool check rules deploy/prometheus/flowgate-rules.yml
(cd deploy/prometheus && promtool test rules flowgate-rules.test.yml)
