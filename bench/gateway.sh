#!/usr/bin/env bash
# bench/gateway.sh -- mc gateway vs nginx and HAProxy as an east->west mTLS L4 pair, on loopback.
#
#   wrk --HTTP/1.1--> east (plain TCP in) ==mTLS, TLS 1.3, client cert==> west --TCP--> backend
#
# Scenarios: direct (wrk -> backend), nginx-mtls, haproxy-mtls, mc-mtls (target/release/mc,
# static --config), and mc-base (the same with the MC_BASE binary, when set). Each is measured
# in two modes with wrk:
#   keep-alive  CONNS long-lived client connections: req/s, p50, p99
#   close       'Connection: close': every request is a new client connection, so nginx/HAProxy
#               open a new TLS connection east->west per request (with session resumption);
#               mc opens a new HTTP/2 stream on its one pooled connection.
# Also: east+west CPU time per request (user+system, from /proc) and peak RSS (VmHWM) of the
# gateway processes. Runs are round-robin over scenarios; medians of REPS runs are reported.
#
# Environment [default]:
#   MC [target/release/mc]   MC_BASE [unset]: a second mc binary (scenario mc-base), e.g. a
#     release build of an earlier commit, measured in the same run as a named baseline
#   DURATION [5]  REPS [3]  CONNS [32]  WARMUP [1]
#   PIN [1]  pin wrk on CPU LOADGEN_CPU [0], backend + gateways on SUT_CPU [1]
#   BASE_PORT [29000]   SCENARIOS ["direct nginx-mtls haproxy-mtls mc-mtls"]
#   OUT [-]   also write the Markdown table to this file
# Needs: apt-get install -y nginx-light libnginx-mod-stream haproxy wrk curl openssl
# Every process started is stopped by its recorded PID on exit.
set -euo pipefail

MC=${MC:-target/release/mc}
DURATION=${DURATION:-5}
REPS=${REPS:-3}
CONNS=${CONNS:-32}
WARMUP=${WARMUP:-1}
PIN=${PIN:-1}
LOADGEN_CPU=${LOADGEN_CPU:-0}
SUT_CPU=${SUT_CPU:-1}
BASE_PORT=${BASE_PORT:-29000}
SCENARIOS=${SCENARIOS:-"direct nginx-mtls haproxy-mtls mc-mtls"}
OUT=${OUT:-}
NGINX_STREAM_MODULE=${NGINX_STREAM_MODULE:-/usr/lib/nginx/modules/ngx_stream_module.so}

die() { echo "gateway.sh: $*" >&2; exit 1; }
log() { echo "[$(date +%H:%M:%S)] $*" >&2; }

for bin in nginx haproxy wrk curl openssl taskset awk; do
  command -v "$bin" >/dev/null || die "missing $bin (apt-get install -y nginx-light libnginx-mod-stream haproxy wrk curl)"
done
[[ -x $MC ]] || die "no mc binary at $MC (cargo build --release)"
MC=$(cd "$(dirname "$MC")" && pwd)/$(basename "$MC")
[[ -n ${MC_BASE:-} && " $SCENARIOS " != *" mc-base "* ]] && SCENARIOS="$SCENARIOS mc-base"
if [[ " $SCENARIOS " == *" mc-base "* ]]; then
  [[ -x ${MC_BASE:-} ]] || die "scenario mc-base needs MC_BASE=<path to an mc binary> (got '${MC_BASE:-}')"
  MC_BASE=$(cd "$(dirname "$MC_BASE")" && pwd)/$(basename "$MC_BASE")
fi

WORK=$(mktemp -d /tmp/mc-bench.XXXXXX)
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  [[ -n ${KEEP:-} ]] || rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

lg() { if [[ $PIN == 1 ]]; then taskset -c "$LOADGEN_CPU" "$@"; else "$@"; fi; }

# start NAME CMD... -- runs CMD in the background on the SUT CPU; PID in $WORK/NAME.pid
start() {
  local name=$1; shift
  # exec: the recorded PID is the server itself (CPU and RSS are read from /proc/PID).
  if [[ $PIN == 1 ]]; then
    (exec taskset -c "$SUT_CPU" "$@" >"$WORK/$name.log" 2>&1) &
  else
    (exec "$@" >"$WORK/$name.log" 2>&1) &
  fi
  local pid=$!
  PIDS+=("$pid")
  echo "$pid" >"$WORK/$name.pid"
}

# Refuse to start on a port someone already serves: we would measure the wrong process.
ensure_free() {
  local port
  for port in "$@"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      die "127.0.0.1:$port is already in use (a leftover run?); set BASE_PORT to another range"
    fi
  done
}

wait_port() {
  local port=$1 i
  for ((i = 0; i < 100; i++)); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

# ---------------------------------------------------------------- PKI (openssl, P-256)
pki() {
  local d=$WORK/pki
  mkdir -p "$d"
  cd "$d"
  ec() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1.key" 2>/dev/null; }
  ec ca
  openssl req -x509 -new -key ca.key -subj /CN=bench-anchor -days 2 -out ca.crt \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
  sign() { # name subject ext
    ec "$1"
    openssl req -new -key "$1.key" -subj "$2" -out "$1.csr" 2>/dev/null
    printf '%b' "$3" >"$1.ext"
    openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
      -extfile "$1.ext" -out "$1.crt" 2>/dev/null
  }
  # mc: one issuer per cluster; each gateway mints its own leaf from it.
  sign west-issuer /CN=issuer-west "basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\n"
  sign east-issuer /CN=issuer-east "basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\n"
  # nginx/HAProxy: a server cert for west and a client cert for east, straight from the anchor.
  sign west /CN=west.mc.test "subjectAltName=DNS:west.mc.test\nextendedKeyUsage=serverAuth\n"
  sign east /CN=east.mc.test "subjectAltName=DNS:east.mc.test\nextendedKeyUsage=clientAuth\n"
  cat west.crt west.key >west.pem
  cat east.crt east.key >east.pem
  cd - >/dev/null
}

# ---------------------------------------------------------------- processes
BACKEND_PORT=$((BASE_PORT + 80))

nginx_conf() { # file body
  cat >"$1" <<CONF
load_module $NGINX_STREAM_MODULE;
daemon off;
master_process off;
worker_processes 1;
pid $1.pid;
error_log $1.err warn;
events { worker_connections 8192; }
$2
CONF
}

start_backend() {
  nginx_conf "$WORK/backend.conf" "http {
  access_log off;
  keepalive_requests 1000000;
  server { listen 127.0.0.1:$BACKEND_PORT backlog=4096; location / { return 200 \"ok\n\"; } }
}"
  ensure_free "$BACKEND_PORT"
  start backend nginx -c "$WORK/backend.conf" -e "$WORK/backend.err"
  wait_port "$BACKEND_PORT" || die "backend did not start"
}

# start_mc_pair NAME BINARY EAST_PORT WEST_PORT: an mc gateway pair with a static config.
start_mc_pair() {
  local name=$1 bin=$2 e=$3 w=$4 p=$WORK/pki
  cat >"$WORK/$name-west.yaml" <<CONF
cluster: west
anchors: $p/ca.crt
issuerCert: $p/west-issuer.crt
issuerKey: $p/west-issuer.key
exports:
- name: backend
  namespace: default
  ports: [{port: 80, backend: "127.0.0.1:$BACKEND_PORT"}]
CONF
  cat >"$WORK/$name-east.yaml" <<CONF
cluster: east
anchors: $p/ca.crt
issuerCert: $p/east-issuer.crt
issuerKey: $p/east-issuer.key
listeners:
- {port: $e, peer: west, authority: "backend.default.svc.cluster.local:80"}
peers:
- {name: west, address: "127.0.0.1:$w", identity: mc-gateway.mc-system.west.cluster.local}
CONF
  # One worker thread each, like the one-worker nginx/HAProxy they are compared with.
  TOKIO_WORKER_THREADS=1 start "$name-west" "$bin" gateway --config "$WORK/$name-west.yaml" \
    --inbound-addr "127.0.0.1:$w" --admin-addr "127.0.0.1:$((e + 3))"
  wait_port "$w" || { cat "$WORK/$name-west.log" >&2; die "mc west did not start"; }
  TOKIO_WORKER_THREADS=1 start "$name-east" "$bin" gateway --config "$WORK/$name-east.yaml" \
    --inbound-addr "127.0.0.1:$((e + 4))" --admin-addr "127.0.0.1:$((e + 2))" \
    --outbound-ip 127.0.0.1
  GATEWAY_PIDS[$name]="$(<"$WORK/$name-east.pid") $(<"$WORK/$name-west.pid")"
}

# Ports of scenario i: east = BASE+100+10i, west = east+1, admin ports east+2/east+3.
declare -A EAST_PORT GATEWAY_PIDS
start_scenario() {
  local name=$1 i=$2 e w p=$WORK/pki
  e=$((BASE_PORT + 100 + 10 * i)); w=$((e + 1))
  EAST_PORT[$name]=$e
  [[ $name == direct ]] || ensure_free "$e" "$w" $((e + 2)) $((e + 3)) $((e + 4))
  case $name in
    direct) EAST_PORT[$name]=$BACKEND_PORT; GATEWAY_PIDS[$name]=""; return ;;
    nginx-mtls)
      nginx_conf "$WORK/nginx-west.conf" "stream {
  server {
    listen 127.0.0.1:$w ssl backlog=4096;
    ssl_protocols TLSv1.3;
    ssl_certificate $p/west.crt; ssl_certificate_key $p/west.key;
    ssl_client_certificate $p/ca.crt; ssl_verify_client on;
    ssl_session_cache shared:S:10m;
    proxy_pass 127.0.0.1:$BACKEND_PORT;
  }
}"
      nginx_conf "$WORK/nginx-east.conf" "stream {
  server {
    listen 127.0.0.1:$e backlog=4096;
    proxy_pass 127.0.0.1:$w;
    proxy_ssl on; proxy_ssl_protocols TLSv1.3;
    proxy_ssl_certificate $p/east.crt; proxy_ssl_certificate_key $p/east.key;
    proxy_ssl_trusted_certificate $p/ca.crt; proxy_ssl_verify on;
    proxy_ssl_name west.mc.test; proxy_ssl_server_name on;
    proxy_ssl_session_reuse on;
  }
}"
      start nginx-west nginx -c "$WORK/nginx-west.conf" -e "$WORK/nginx-west.err"
      wait_port "$w" || die "nginx west did not start"
      start nginx-east nginx -c "$WORK/nginx-east.conf" -e "$WORK/nginx-east.err"
      GATEWAY_PIDS[$name]="$(<"$WORK/nginx-east.pid") $(<"$WORK/nginx-west.pid")" ;;
    haproxy-mtls)
      cat >"$WORK/haproxy-west.cfg" <<CONF
global
  nbthread 1
  maxconn 8000
  ssl-default-bind-options ssl-min-ver TLSv1.3
defaults
  mode tcp
  timeout connect 5s
  timeout client 60s
  timeout server 60s
frontend west
  bind 127.0.0.1:$w ssl crt $p/west.pem ca-file $p/ca.crt verify required
  default_backend be
backend be
  server backend 127.0.0.1:$BACKEND_PORT
CONF
      cat >"$WORK/haproxy-east.cfg" <<CONF
global
  nbthread 1
  maxconn 8000
  ssl-default-server-options ssl-min-ver TLSv1.3
defaults
  mode tcp
  timeout connect 5s
  timeout client 60s
  timeout server 60s
frontend east
  bind 127.0.0.1:$e
  default_backend be
backend be
  server west 127.0.0.1:$w ssl crt $p/east.pem ca-file $p/ca.crt verify required sni str(west.mc.test) verifyhost west.mc.test
CONF
      start haproxy-west haproxy -db -f "$WORK/haproxy-west.cfg"
      wait_port "$w" || die "haproxy west did not start"
      start haproxy-east haproxy -db -f "$WORK/haproxy-east.cfg"
      GATEWAY_PIDS[$name]="$(<"$WORK/haproxy-east.pid") $(<"$WORK/haproxy-west.pid")" ;;
    mc-mtls) start_mc_pair "$name" "$MC" "$e" "$w" ;;
    mc-base) start_mc_pair "$name" "$MC_BASE" "$e" "$w" ;;
    *) die "unknown scenario $name" ;;
  esac
  wait_port "$e" || die "$name: east did not listen on $e"
  local body
  for _ in 1 2 3 4 5 6 7 8 9 10; do
    body=$(curl -sS --max-time 5 "http://127.0.0.1:$e/" 2>/dev/null) && [[ $body == ok ]] && break
    sleep 0.3
  done
  [[ $body == ok ]] || die "$name: no 'ok' through the pair (got '$body')"
  log "$name: path OK"
}

# ---------------------------------------------------------------- measuring
cpu_ticks() { # sum of utime+stime of the given PIDs
  local t=0 pid
  for pid in "$@"; do
    t=$((t + $(awk '{print $14 + $15}' "/proc/$pid/stat")))
  done
  echo "$t"
}
peak_rss_kb() {
  local t=0 pid
  for pid in "$@"; do
    t=$((t + $(awk '/^VmHWM/ {print $2}' "/proc/$pid/status")))
  done
  echo "$t"
}
busy_ticks() { awk '/^cpu / {print $2+$3+$4+$7+$8+$9, $2+$3+$4+$5+$6+$7+$8+$9}' /proc/stat; }
to_ms() { # wrk latency (e.g. 412.00us, 1.23ms, 2.00s) -> ms
  awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n += 0; else if (v ~ /s$/) n *= 1000; printf "%.3f", n }'
}
CLK_TCK=$(getconf CLK_TCK)

# run_wrk NAME MODE REP -> appends a row to $WORK/results.tsv
run_wrk() {
  local name=$1 mode=$2 rep=$3 port=${EAST_PORT[$1]} extra=() out pids t0 t1 b0 b1
  [[ $mode == close ]] && extra=(-H 'Connection: close')
  read -r -a pids <<<"${GATEWAY_PIDS[$name]}"
  if ((rep == 0)); then
    lg wrk -t1 -c"$CONNS" -d"${WARMUP}s" "${extra[@]}" "http://127.0.0.1:$port/" >/dev/null 2>&1 || true
    return
  fi
  t0=$(cpu_ticks "${pids[@]}")
  read -r b0 tot0 < <(busy_ticks)
  out=$(lg wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency "${extra[@]}" "http://127.0.0.1:$port/")
  read -r b1 tot1 < <(busy_ticks)
  t1=$(cpu_ticks "${pids[@]}")
  echo "$out" >"$WORK/wrk-$name-$mode-$rep.txt"
  local rps p50 p99 reqs errs us
  rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
  p50=$(to_ms "$(awk '$1 == "50%" {print $2}' <<<"$out")")
  p99=$(to_ms "$(awk '$1 == "99%" {print $2}' <<<"$out")")
  reqs=$(awk '/requests in/ {print $1}' <<<"$out")
  errs=$(awk '/Socket errors/ {gsub(",", ""); s += $4 + $6 + $8 + $10} /Non-2xx/ {s += $NF} END {print s + 0}' <<<"$out")
  us=-
  if ((${#pids[@]} > 0 && reqs > 0)); then
    us=$(awk -v t=$((t1 - t0)) -v hz="$CLK_TCK" -v r="$reqs" 'BEGIN {printf "%.1f", t / hz * 1e6 / r}')
  fi
  local machine_busy
  machine_busy=$(awk -v b=$((b1 - b0)) -v t=$((tot1 - tot0)) 'BEGIN {printf "%.0f", t ? 100 * b / t : 0}')
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
    "$name" "$mode" "$rep" "$rps" "$p50" "$p99" "$reqs" "$errs" "$us" "$machine_busy" >>"$WORK/results.tsv"
  log "$name $mode rep $rep: $rps req/s p50 ${p50}ms p99 ${p99}ms cpu ${us}us/req errors $errs (machine busy ${machine_busy}%)"
}

median() { sort -g | awk '{a[NR] = $1} END {if (NR == 0) print "-"; else if (NR % 2) print a[(NR + 1) / 2]; else printf "%.3f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
col() { # name mode column -> median
  awk -F'\t' -v n="$1" -v m="$2" -v c="$3" '$1 == n && $2 == m && $c != "-" {print $c}' "$WORK/results.tsv" | median
}

# ---------------------------------------------------------------- main
log "work dir $WORK; scenarios: $SCENARIOS; ${REPS}x${DURATION}s, $CONNS connections, PIN=$PIN"
pki
start_backend
i=0
for s in $SCENARIOS; do start_scenario "$s" "$i"; i=$((i + 1)); done
: >"$WORK/results.tsv"
for rep in $(seq 0 "$REPS"); do
  for s in $SCENARIOS; do
    for mode in keep-alive close; do run_wrk "$s" "$mode" "$rep"; done
  done
done
declare -A RSS
for s in $SCENARIOS; do
  read -r -a pids <<<"${GATEWAY_PIDS[$s]}"
  RSS[$s]=-
  ((${#pids[@]} > 0)) && RSS[$s]=$(peak_rss_kb "${pids[@]}")
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || b == 0) print "-"; else printf "%.2f", a / b }'; }
{
  echo "| scenario | keep-alive req/s | p50 ms | p99 ms | close conn/s | p50 ms | p99 ms | CPU µs/req ka / close | peak RSS east+west | errors |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  for s in $SCENARIOS; do
    errs=$(awk -F'\t' -v n="$s" '$1 == n {e += $8} END {print e + 0}' "$WORK/results.tsv")
    rss=${RSS[$s]}; [[ $rss != - ]] && rss="$((rss / 1024)) MiB"
    printf '| %s | %s | %s | %s | %s | %s | %s | %s / %s | %s | %s |\n' "$s" \
      "$(col "$s" keep-alive 4)" "$(col "$s" keep-alive 5)" "$(col "$s" keep-alive 6)" \
      "$(col "$s" close 4)" "$(col "$s" close 5)" "$(col "$s" close 6)" \
      "$(col "$s" keep-alive 9)" "$(col "$s" close 9)" "$rss" "$errs"
  done
  if [[ " $SCENARIOS " == *" mc-mtls "* && " $SCENARIOS " == *" nginx-mtls "* ]]; then
    echo
    echo "Ratios to nginx-mtls in the same run (higher is better for req/s and conn/s, lower for the rest):"
    echo
    echo "| scenario | keep-alive req/s | ka p50 | ka p99 | close conn/s | close p50 | close p99 | CPU/req ka | CPU/req close | peak RSS |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    for s in $SCENARIOS; do
      [[ $s == direct || $s == nginx-mtls ]] && continue
      r=()
      for mc_col in "keep-alive 4" "keep-alive 5" "keep-alive 6" "close 4" "close 5" "close 6" "keep-alive 9" "close 9"; do
        read -r m c <<<"$mc_col"
        r+=("$(ratio "$(col "$s" "$m" "$c")" "$(col nginx-mtls "$m" "$c")")")
      done
      r+=("$(ratio "${RSS[$s]}" "${RSS[nginx-mtls]}")")
      printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$s/nginx" "${r[@]}"
    done
  fi
  if [[ " $SCENARIOS " == *" mc-mtls "* && " $SCENARIOS " == *" mc-base "* ]]; then
    echo
    echo "mc-mtls against the named baseline mc-base ($MC_BASE) in the same run:"
    echo
    echo "| | keep-alive req/s | ka p50 | ka p99 | close conn/s | close p50 | close p99 | CPU/req ka | CPU/req close | peak RSS |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    r=()
    for mc_col in "keep-alive 4" "keep-alive 5" "keep-alive 6" "close 4" "close 5" "close 6" "keep-alive 9" "close 9"; do
      read -r m c <<<"$mc_col"
      r+=("$(ratio "$(col mc-mtls "$m" "$c")" "$(col mc-base "$m" "$c")")")
    done
    r+=("$(ratio "${RSS[mc-mtls]}" "${RSS[mc-base]}")")
    printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "mc-mtls/mc-base" "${r[@]}"
  fi
  echo
  echo "Median machine busy % during the runs (all CPUs, includes the benchmark itself): $(awk -F'\t' '{print $10}' "$WORK/results.tsv" | median)"
} | tee "$WORK/table.md"
[[ -n $OUT ]] && cp "$WORK/table.md" "$OUT"
exit 0
