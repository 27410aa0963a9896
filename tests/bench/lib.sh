# Shared by the benchmark scripts in tests/bench (run, postfix, load,
# callgrind, compare, hooks); sourced, not run. It sets `set -euo pipefail`,
# moves to the repository root and defines:
#
#   step MSG...                 a progress line on stderr
#   need CMD:PACKAGE...         install (apt-get, as root) the packages of missing commands
#   build                       cargo build --release of qmail-smtpd and the examples;
#                               sets smtpd, fakeq, fakecp, bench (paths); smtpd is
#                               $BENCH_SMTPD if set (another build of ours to measure)
#   build_musl                  the same qmail-smtpd for x86_64-unknown-linux-musl
#                               (README, Install), where that target is
#                               installed; sets smtpd_musl (empty if not).
#                               After build, which sets target_dir
#   sandbox                     a temp qmail home in $dir: control/me localhost,
#                               rcpthosts example.org, a self-signed RSA-2048
#                               certificate ($dir/cert.pem, $dir/key.pem,
#                               control/servercert.pem), and a self-signed
#                               ECDSA P-256 one in $dir/ecdsa.pem (key
#                               included; certificate alone in
#                               $dir/ecdsa-cert.pem) for TLS_SERVER_CERT;
#                               removed on exit unless BENCH_KEEP=1
#   free_port                   a free loopback port
#   start NAME [TCPSERVER-OPTS...] -- PROG [ARGS...]
#                               tcpserver on 127.0.0.1 (-R -H -l localhost) with a
#                               clean environment (PATH, QMAILHOME, QMAILQUEUE and
#                               the NAME=VALUE words in the array start_env);
#                               sets port_NAME and pid_NAME; killed on exit.
#                               The words in the array start_wrap (if any)
#                               come first: a command that execs the rest
#                               (tcpserver's pid stays $!), e.g. unshare -m
#   idle PID                    wait (at most 60 s) until tcpserver PID has no
#                               child left (its sessions have ended)
#   median                      the median of the numbers on stdin ("?" if none)
#   bench_run PORT ARGS...      one smtp-bench run against 127.0.0.1:PORT (with --ca
#                               $bench_ca, default $dir/cert.pem)
#   measure PORT KEY... -- ARGS run smtp-bench $reps times, print the median of
#                               each KEY (space-separated)
#   key KEY                     the value of KEY=... in the lines on stdin, one a line
#
# Scripts may define on_exit (called first by the exit trap) and append to
# the array pids (killed and waited for on exit).
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
root=$(pwd)

step() { printf '\n==> %s\n' "$*" >&2; }

need() {
  local missing=() pair
  for pair in "$@"; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  step "installing ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then
    echo "run as root, or install: ${missing[*]}" >&2
    exit 1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

build() {
  step "building qmail-smtpd and the examples (release)"
  cargo build --release --quiet --bin qmail-smtpd --examples
  target_dir=${CARGO_TARGET_DIR:-$root/target}
  case $target_dir in /*) ;; *) target_dir="$root/$target_dir" ;; esac
  smtpd="$target_dir/release/qmail-smtpd"
  fakeq="$target_dir/release/examples/fake-qmail-queue"
  fakecp="$target_dir/release/examples/fake-checkpassword"
  bench="$target_dir/release/examples/smtp-bench"
  # Another build of ours to measure (a musl or non-PIE one), with the same
  # client and stand-ins.
  smtpd=${BENCH_SMTPD:-$smtpd}
}

build_musl() {
  local musl=x86_64-unknown-linux-musl
  smtpd_musl=""
  if ! rustup target list --installed 2>/dev/null | grep -qx "$musl"; then
    step "no musl build: the $musl target is not installed (rustup target add $musl)"
    return 0
  fi
  step "building qmail-smtpd for $musl (release)"
  cargo build --release --quiet --target "$musl" --bin qmail-smtpd
  smtpd_musl="$target_dir/$musl/release/qmail-smtpd"
}

pids=()
dir=""
bench_cleanup() {
  local p
  if declare -F on_exit >/dev/null; then
    on_exit || true
  fi
  for p in "${pids[@]}"; do
    kill "$p" 2>/dev/null || true
  done
  for p in "${pids[@]}"; do
    wait "$p" 2>/dev/null || true
  done
  if [ -n "$dir" ]; then
    if [ -n "${BENCH_KEEP:-}" ]; then
      echo "sandbox kept: $dir" >&2
    else
      rm -rf "$dir"
    fi
  fi
}
trap bench_cleanup EXIT
trap 'exit 130' INT TERM

sandbox() {
  dir=$(mktemp -d "${TMPDIR:-/tmp}/qsmtpd-bench.XXXXXX")
  step "sandbox in $dir"
  mkdir -p "$dir/control"
  echo localhost >"$dir/control/me"
  echo example.org >"$dir/control/rcpthosts"
  (
    umask 077
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost \
      -keyout "$dir/key.pem" -out "$dir/cert.pem" 2>/dev/null
    cat "$dir/cert.pem" "$dir/key.pem" >"$dir/control/servercert.pem"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
      -subj /CN=localhost -keyout "$dir/ecdsa-key.pem" -out "$dir/ecdsa-cert.pem" 2>/dev/null
    cat "$dir/ecdsa-cert.pem" "$dir/ecdsa-key.pem" >"$dir/ecdsa.pem"
  )
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

start_env=()
start_wrap=()
start() {
  local name=$1 port opts=()
  shift
  while [ "$1" != -- ]; do opts+=("$1"); shift; done
  shift
  port=$(free_port)
  "${start_wrap[@]}" env -i PATH="$PATH" QMAILHOME="$dir" QMAILQUEUE="$fakeq" "${start_env[@]}" \
    tcpserver -R -H -l localhost "${opts[@]}" 127.0.0.1 "$port" "$@" \
    </dev/null 2>"$dir/tcpserver-$name.log" &
  pids+=($!)
  printf -v "pid_$name" %s "$!"
  local i
  for i in $(seq 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      printf -v "port_$name" %s "$port"
      return
    fi
    sleep 0.05
  done
  echo "tcpserver $name did not start: $(cat "$dir/tcpserver-$name.log")" >&2
  exit 1
}

idle() {
  local i
  for i in $(seq 600); do
    pgrep -P "$1" >/dev/null || return 0
    sleep 0.1
  done
  echo "tcpserver $1 still has children after 60 s" >&2
  exit 1
}

median() {
  sort -g | awk '{v[NR]=$1} END {if (NR==0) {print "?"; exit}
    if (NR%2) print v[(NR+1)/2]; else printf "%.3f\n", (v[NR/2]+v[NR/2+1])/2}'
}

key() {
  sed -n "s/.* $1=\([0-9.]*\).*/\1/p"
}

bench_run() {
  local port=$1
  shift
  "$bench" --addr "127.0.0.1:$port" --ca "${bench_ca:-$dir/cert.pem}" "$@" || {
    echo "smtp-bench $* (port $port) failed" >&2
    return 1
  }
}

measure() {
  local port=$1 keys=() k r out
  shift
  while [ "$1" != -- ]; do keys+=("$1"); shift; done
  shift
  : >"$dir/runs.txt"
  for r in $(seq "$reps"); do
    out=$(bench_run "$port" "$@")
    echo "$out" >>"$dir/runs.txt"
    echo "  $out" >&2
  done
  cat "$dir/runs.txt" >>"$dir/all-runs.txt"
  for k in "${keys[@]}"; do
    printf '%s ' "$(key "$k" <"$dir/runs.txt" | median)"
  done
  echo
}
