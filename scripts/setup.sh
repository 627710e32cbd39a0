#!/usr/bin/env bash
# Idempotent set-up for a fresh Debian/Ubuntu host: system packages, npm
# dependencies, build, and the kernel mounts the probes need. Quick when
# everything is already there. Used by `npm start`, `npm test` and .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi

# Commands (or files) -> Debian packages that provide them.
# Each is used by the build, the tests or `npm run bench`:
declare -A NEED=(
  [clang]=clang               # the BPF object (clang's own BPF backend: no llc)
  [bpftool]=bpftool           # BTF checks in the tests, program stats in the bench
  [bpftrace]=bpftrace         # the bench's comparison tracer
  [ip]=iproute2               # pods' network namespaces (test/helpers/pod-sim.ts)
  [python3]=python3           # test servers and the gRPC interop peer
  [gcc]=gcc                   # test fixtures (test/fixtures/*.c) and bench/storm.c
  [openssl]=openssl           # test PKI (test/helpers/pki.ts)
  [rsyslogd]=rsyslog
  [nats-server]=nats-server
  [promtool]=prometheus       # tests only: promtool (metrics, chart alerts) and Prometheus 2.42 (the dashboard test)
  # test/helm-render (the Helm chart rendered without helm): Go and Debian's Go packages, built offline.
  [go]=golang-go
)
declare -A NEED_FILES=(
  [/usr/include/bpf/bpf_helpers.h]=libbpf-dev
  [/usr/include/liburing.h]=liburing-dev
  [/usr/share/doc/rsyslog-gnutls]=rsyslog-gnutls
  [/usr/lib/python3/dist-packages/grpc]=python3-grpcio
  [/usr/lib/python3/dist-packages/google/protobuf]=python3-protobuf
  # sprig pulls its own dependencies (semver, goutils, xstrings, mergo, copystructure, cast, x/crypto...).
  [/usr/share/gocode/src/github.com/Masterminds/sprig]=golang-github-masterminds-sprig-dev
  [/usr/share/gocode/src/sigs.k8s.io/yaml]=golang-k8s-sigs-yaml-dev
  [/usr/share/gocode/src/github.com/xeipuuv/gojsonschema]=golang-github-xeipuuv-gojsonschema-dev
)
missing=()
for cmd in "${!NEED[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${NEED[$cmd]}")
done
for f in "${!NEED_FILES[@]}"; do
  [[ -e "$f" ]] || missing+=("${NEED_FILES[$f]}")
done
ldconfig -p 2>/dev/null | grep -q 'libbpf.so.1 ' || missing+=(libbpf1)
if (( ${#missing[@]} )); then
  echo "setup: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # Debian's prometheus package also starts a server on :9090 (the agent's default health port); the tests only
  # run its binaries, with their own configuration and ports.
  if [[ " ${missing[*]} " == *" prometheus "* ]] && command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet prometheus 2>/dev/null; then
    $SUDO systemctl disable --now prometheus >/dev/null 2>&1 || true
  fi
fi

# npm ci only when the lock file changed since the last install.
if [[ ! -f node_modules/.package-lock.json ]] || [[ package-lock.json -nt node_modules/.package-lock.json ]]; then
  npm ci --no-audit --no-fund
fi

npm run --silent build

# Syscall tracepoints are attached through tracefs.
if [[ ! -e /sys/kernel/tracing/events/syscalls ]] && [[ ! -e /sys/kernel/debug/tracing/events/syscalls ]]; then
  echo "setup: mounting tracefs at /sys/kernel/tracing" >&2
  $SUDO mount -t tracefs nodev /sys/kernel/tracing
fi
