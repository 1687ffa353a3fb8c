# Shared by bench/ab.sh and bench/critical.sh, sourced after bench/lib.sh: starts the mock
# upstream, the nginx proxy (1 worker), this build of flowgate (1 worker, :18186) and, when
# OTHER names another flowgate binary, that one too (:18187); stops them all on exit.
#   needs: RUN, BIN, URL_PATH, OUT_SUFFIX, OTHER; sets: targets, URL, PID
start_nginx mock proxy

declare -A URL PID
start() { # name port binary
  FLOWGATE__SERVER__LISTEN="127.0.0.1:$2" FLOWGATE__SERVER__ADMIN_LISTEN="127.0.0.1:$(($2 + 10))" \
    setsid "$3" serve --config examples/bench/passthrough.toml > "$RUN/${OUT_SUFFIX#-}-$1.log" 2>&1 &
  pids+=("$!"); PID[$1]=$!; URL[$1]="http://127.0.0.1:$2$URL_PATH"
}
URL[nginx]="http://127.0.0.1:18082$URL_PATH"; PID[nginx]="$(cat "$RUN/proxy.pid")"
targets=(nginx flowgate)
start flowgate 18186 "$BIN"
if [ -n "$OTHER" ]; then start other 18187 "$OTHER"; targets+=(other); fi
for t in "${targets[@]}"; do
  for _ in $(seq 50); do curl -fsS -o /dev/null -X POST --data-binary @bench/conf/request.json "${URL[$t]}" && break; sleep 0.1; done
done
