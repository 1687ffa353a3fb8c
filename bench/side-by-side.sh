# Shared by bench/ab.sh and bench/critical.sh, sourced after bench/lib.sh: starts the mock
# upstream, the nginx proxy (1 worker), this build of flowgate (1 worker, :18186) and, when
# OTHER names another flowgate binary, that one too (:18187); stops them all on exit.
# With TLS set, the upstream is an nginx TLS mock (:18443, a certificate of a CA the script
# makes in bench/tls/), the nginx proxy passes to it over TLS (:18088, keep-alive, session
# reuse, verified) and flowgate uses examples/bench/tls-upstream.toml.
# With LISTEN_TLS set, the clients speak TLS: nginx `listen ssl` (:18089, the same
# certificate, session tickets on as by default) and flowgate with [server.tls]
# (examples/bench/tls-listener.toml), both in front of the plain mock upstream.
#   needs: RUN, BIN, URL_PATH, OUT_SUFFIX, OTHER, TLS, LISTEN_TLS; sets: targets, URL, PID,
#   UPSTREAM, SCHEME
CONFIG=examples/bench/passthrough.toml; PROXY_PORT=18082; UPSTREAM=mock; SCHEME=http
PROXY=proxy
if [ -n "${LISTEN_TLS:-}" ]; then
  [ -z "$OTHER" ] && [ -z "${TLS:-}" ] || { echo "--listen-tls compares with nginx only (no --other, no --tls)" >&2; exit 2; }
  bash bench/tls-certs.sh
  nginx_conf tlsfront 18089 "upstream mock { server 127.0.0.1:18081; keepalive 128; keepalive_requests 10000000; }" \
    "ssl_certificate $ROOT/bench/tls/server.pem; ssl_certificate_key $ROOT/bench/tls/server.key; $proxy_loc" 1 ssl
  start_nginx mock tlsfront
  CONFIG=examples/bench/tls-listener.toml; PROXY_PORT=18089; SCHEME=https; PROXY=tlsfront
elif [ -n "${TLS:-}" ]; then
  [ -z "$OTHER" ] || { echo "--tls compares with nginx only (no --other)" >&2; exit 2; }
  bash bench/tls-certs.sh
  tls="ssl_certificate $ROOT/bench/tls/server.pem; ssl_certificate_key $ROOT/bench/tls/server.key;"
  nginx_conf tlsmock 18443 "$tls" "location / { default_type application/json; return 200 '$body'; }" 1 ssl
  nginx_conf tlsproxy 18088 "upstream tlsmock { server 127.0.0.1:18443; keepalive 128; keepalive_requests 10000000; }" \
    "location / { proxy_pass https://tlsmock; proxy_http_version 1.1; proxy_set_header Connection \"\"; proxy_ssl_session_reuse on; proxy_ssl_verify on; proxy_ssl_trusted_certificate $ROOT/bench/tls/ca.pem; proxy_ssl_name localhost; proxy_ssl_server_name on; }"
  start_nginx tlsmock tlsproxy
  CONFIG=examples/bench/tls-upstream.toml; PROXY_PORT=18088; UPSTREAM=tlsmock; PROXY=tlsproxy
else
  start_nginx mock proxy
fi

declare -A URL PID
start() { # name port binary
  FLOWGATE__SERVER__LISTEN="127.0.0.1:$2" FLOWGATE__SERVER__ADMIN_LISTEN="127.0.0.1:$(($2 + 10))" \
    setsid "$3" serve --config "$CONFIG" > "$RUN/${OUT_SUFFIX#-}-$1.log" 2>&1 &
  pids+=("$!"); PID[$1]=$!; URL[$1]="$SCHEME://127.0.0.1:$2$URL_PATH"
}
URL[nginx]="$SCHEME://127.0.0.1:$PROXY_PORT$URL_PATH"; PID[nginx]="$(cat "$RUN/$PROXY.pid")"
targets=(nginx flowgate)
start flowgate 18186 "$BIN"
if [ -n "$OTHER" ]; then start other 18187 "$OTHER"; targets+=(other); fi
curl_tls=(); [ "$SCHEME" = https ] && curl_tls=(--cacert bench/tls/ca.pem)
for t in "${targets[@]}"; do
  for _ in $(seq 50); do curl -fsS "${curl_tls[@]}" -o /dev/null -X POST --data-binary @bench/conf/request.json "${URL[$t]}" && break; sleep 0.1; done
done
