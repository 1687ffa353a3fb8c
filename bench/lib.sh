# Shared by the benchmark scripts, sourced from the repository's root after they read their
# options: installs what they need, builds flowgate, writes the nginx configs of the mock
# upstream (:18081) and of the nginx proxy flowgate is compared with (:18082), the wrk
# script, and `phase`, which runs one load phase while sampling its target's CPU and memory.
#   needs: ROOT, DUR; sets: RUN, OUT, BIN, URL_PATH, lua, oha_args, nginx_conf, proxy_loc, phase,
#   pids, start_nginx, start_gateway, URL, PID (and stops what they name on exit)
RUN="${BENCH_RUN_DIR:-/tmp/flowgate-bench}"
OUT="$ROOT/bench/out/$(date -u +%Y%m%dT%H%M%SZ)${OUT_SUFFIX:-}"
mkdir -p "$RUN/tmp" "$OUT"

need=(); command -v nginx >/dev/null || need+=(nginx); command -v wrk >/dev/null || need+=(wrk)
command -v redis-server >/dev/null || need+=(redis-server)
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
command -v oha >/dev/null || { echo "oha not found: cargo install --locked oha" >&2; exit 1; }

# FLOWGATE_BIN: a flowgate binary built already (a copy kept aside), instead of this tree's.
if [ -n "${FLOWGATE_BIN:-}" ]; then BIN="$FLOWGATE_BIN"; else
  cargo build --release --locked -q -p flowgate
  BIN="$ROOT/target/release/flowgate"
fi

body="$(tr -d '\n' < bench/conf/mock-response.json)"
nginx_conf() { # name port extra-http extra-server [workers] [listen-flags]
  cat > "$RUN/$1.conf" <<NGX
worker_processes ${5:-1};
pid $RUN/$1.pid;
error_log $RUN/$1.error.log warn;
events { worker_connections 8192; multi_accept on; }
http {
  access_log off;
  client_body_temp_path $RUN/tmp/$1-body; proxy_temp_path $RUN/tmp/$1-proxy;
  fastcgi_temp_path $RUN/tmp/$1-fcgi; uwsgi_temp_path $RUN/tmp/$1-uwsgi; scgi_temp_path $RUN/tmp/$1-scgi;
  keepalive_requests 10000000;
  keepalive_timeout 120s;
  client_body_buffer_size 64k;
  $3
  server {
    listen 127.0.0.1:$2 backlog=4096 ${6:-};
    $4
  }
}
NGX
}
# Every process under test (flowgate, the simulators, Redis) is started with `setsid`, in a
# session of its own, as nginx's daemons are: with the kernel's autogroup scheduling each
# session is its own scheduling group, and a target left in the load generator's session
# shares the generator's CPU share and wakes behind it
# (docs/decisions/2026-11-23-bench-targets-own-session.md).
# What to stop on exit: background processes (`pids+=("$!")`) and the nginx instances
# started with `start_nginx`.
pids=(); nginxes=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for n in "${nginxes[@]}"; do [ -f "$RUN/$n.pid" ] && kill -QUIT "$(cat "$RUN/$n.pid")" 2>/dev/null || true; done
}
trap cleanup EXIT
# start_gateway NAME PORT CONFIG [ENV...]: flowgate serving examples/bench/CONFIG.toml on
# PORT (admin on PORT+10) with ENV, in a session of its own; URL[NAME] is its chat URL,
# PID[NAME] its process, its log $RUN/CONFIG-NAME.log.
declare -A URL PID
start_gateway() {
  local name="$1" port="$2" config="$3"; shift 3
  env "$@" FLOWGATE__SERVER__LISTEN="127.0.0.1:$port" FLOWGATE__SERVER__ADMIN_LISTEN="127.0.0.1:$((port + 10))" \
    setsid "$BIN" serve --config "examples/bench/$config.toml" > "$RUN/$config-$name.log" 2>&1 &
  pids+=("$!"); PID[$name]=$!; URL[$name]="http://127.0.0.1:$port/v1/chat/completions"
}
start_nginx() { # name... (configs written by nginx_conf or by the script)
  for n in "$@"; do nginx -p "$RUN" -e "$RUN/$n.error.log" -c "$RUN/$n.conf"; nginxes+=("$n"); done
}
nginx_conf mock 18081 "" "location / { default_type application/json; return 200 '$body'; }"
proxy_loc="location / { proxy_pass http://mock; proxy_http_version 1.1; proxy_set_header Connection \"\"; }"
# The upstream keep-alive connections are never retired (nginx closes one every 1000 requests by
# default; flowgate does not), so that both proxies keep the same connections for a whole run.
nginx_conf proxy 18082 "upstream mock { server 127.0.0.1:18081; keepalive 128; keepalive_requests 10000000; }" "$proxy_loc"
URL_PATH=/v1/chat/completions

lua="$RUN/post.lua"
python3 - "$lua" <<'PY'
import json, sys
body = open("bench/conf/request.json").read().strip()
open(sys.argv[1], "w").write('wrk.method = "POST"\nwrk.body = %s\nwrk.headers["content-type"] = "application/json"\n' % json.dumps(body))
PY

phase() { # target round name cmd...
  local t="$1" r="$2" name="$3"; shift 3
  local f="$OUT/$t-r$r-$name"
  python3 bench/sample.py "$f.sample.json" ${PID[$t]} & local sp=$!
  # UPSTREAM_PID (optional): the upstream's process tree, sampled alongside.
  local up=""
  if [ -n "${UPSTREAM_PID:-}" ]; then python3 bench/sample.py "$f.upstream.json" "$UPSTREAM_PID" & up=$!; fi
  timeout -k 5 $((DUR + 30)) "$@" > "$f.out" 2>&1 || echo "warning: $t $name exited non-zero" >&2
  kill -TERM "$sp" $up; wait "$sp" $up || true
}
oha_args=(-m POST -D bench/conf/request.json -H "content-type: application/json" --no-tui --output-format json --disable-compression)
