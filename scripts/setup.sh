#!/usr/bin/env bash
# Idempotent set-up for a fresh Debian/Ubuntu host. Quick when everything is already there.
#
#   bash scripts/setup.sh          what `doorwatch trace` needs: the build tools (clang, libbpf headers),
#                                  libbpf at run time, npm dependencies, the build, tracefs. (`npm start`)
#   bash scripts/setup.sh --test   the same, plus the test and development tool chain: real servers the
#                                  tests run (rsyslog, syslog-ng, nats-server, Prometheus), Go for the chart
#                                  renderer, fixtures' compilers... (`npm test`, `npm run bench`, .ci/run)
set -euo pipefail
cd "$(dirname "$0")/.."

WITH_TESTS=0
LIST=0 # --list: print the Debian packages of the chosen set, one a line, and do nothing
for arg in "$@"; do
  case "$arg" in
    --test) WITH_TESTS=1 ;;
    --list) LIST=1 ;;
    *) echo "setup: unknown option \"$arg\": use no option (run), --test (run + tests), --list" >&2; exit 2 ;;
  esac
done

SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
# Where syslog-ng-core is unpacked for the tests (test/helpers/syslog-ng.ts names it too).
SYSLOG_NG_ROOT=/opt/doorwatch-test/syslog-ng-core

# Commands (or files) -> Debian packages that provide them.
# The main job: build the BPF object and run `doorwatch trace`.
declare -A NEED=(
  [clang]=clang               # the BPF object (clang's own BPF backend: no llc)
)
declare -A NEED_FILES=(
  [/usr/include/bpf/bpf_helpers.h]=libbpf-dev   # the BPF object's headers; pulls libbpf1 (loaded at run time)
)

# Tests, bench and `npm run manifests` only (--test). Add a test's package here, with who uses it.
declare -A TEST_NEED=(
  [bpftool]=bpftool           # BTF checks in the tests, program stats in the bench
  [bpftrace]=bpftrace         # the bench's comparison tracer
  [ip]=iproute2               # pods' network namespaces (test/helpers/pod-sim.ts)
  [python3]=python3           # test servers, the gRPC interop peer, the pty of the terminal-log test
  [gcc]=gcc                   # test fixtures (test/fixtures/*.c) and bench/storm.c
  [openssl]=openssl           # test PKI (test/helpers/pki.ts)
  [rsyslogd]=rsyslog          # test/helpers/rsyslog.ts
  [nats-server]=nats-server   # test/helpers/nats-server.ts
  [socat]=socat               # third-party servers of test/kernel/user-address-matrix.test.ts
  [ncat]=ncat                 # (ditto)
  [strace]=strace             # the jsonl sink's rotation test (test/integration/sink-jsonl.test.ts)
  [nginx]=nginx-light         # (ditto)
  [promtool]=prometheus       # promtool (metrics, chart alerts) and Prometheus 2.42 (the dashboard test)
  # test/helm-render (the Helm chart rendered without helm): Go and Debian's Go packages, built offline.
  [go]=golang-go
)
declare -A TEST_NEED_FILES=(
  [/usr/include/liburing.h]=liburing-dev         # test/fixtures/uring_acceptor.c
  [/usr/share/doc/rsyslog-gnutls]=rsyslog-gnutls # rsyslog's TLS input
  [/usr/lib/python3/dist-packages/grpc]=python3-grpcio
  [/usr/lib/python3/dist-packages/google/protobuf]=python3-protobuf
  # sprig pulls its own dependencies (semver, goutils, xstrings, mergo, copystructure, cast, x/crypto...).
  [/usr/share/gocode/src/github.com/Masterminds/sprig]=golang-github-masterminds-sprig-dev
  [/usr/share/gocode/src/sigs.k8s.io/yaml]=golang-k8s-sigs-yaml-dev
  [/usr/share/gocode/src/github.com/xeipuuv/gojsonschema]=golang-github-xeipuuv-gojsonschema-dev
)
# Shared libraries (soname, as ldconfig lists it) -> packages.
declare -A NEED_LIBS=(
  [libbpf.so.1]=libbpf1       # loaded by the agent at run time (koffi)
)
declare -A TEST_NEED_LIBS=(
  # syslog-ng-core's own dependencies: the package itself is unpacked beside rsyslog (below).
  [libivykis.so.0]=libivykis0
  [libnet.so.1]=libnet1
  [libpcre.so.3]=libpcre3
)
if (( WITH_TESTS )); then
  for k in "${!TEST_NEED[@]}"; do NEED[$k]=${TEST_NEED[$k]}; done
  for k in "${!TEST_NEED_FILES[@]}"; do NEED_FILES[$k]=${TEST_NEED_FILES[$k]}; done
  for k in "${!TEST_NEED_LIBS[@]}"; do NEED_LIBS[$k]=${TEST_NEED_LIBS[$k]}; done
fi

if (( LIST )); then
  printf '%s\n' "${NEED[@]}" "${NEED_FILES[@]}" "${NEED_LIBS[@]}" | LC_ALL=C sort -u
  (( WITH_TESTS )) && echo "syslog-ng-core (unpacked into $SYSLOG_NG_ROOT)"
  exit 0
fi

missing=()
for cmd in "${!NEED[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${NEED[$cmd]}")
done
for f in "${!NEED_FILES[@]}"; do
  [[ -e "$f" ]] || missing+=("${NEED_FILES[$f]}")
done
libs=$(ldconfig -p 2>/dev/null | awk '{print $1}' || true)
for lib in "${!NEED_LIBS[@]}"; do
  grep -qxF "$lib" <<<"$libs" || missing+=("${NEED_LIBS[$lib]}")
done
export DEBIAN_FRONTEND=noninteractive
if (( ${#missing[@]} )); then
  echo "setup: installing ${missing[*]}" >&2
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # Debian's prometheus package also starts a server on :9090 (the agent's default health port); the tests only
  # run its binaries, with their own configuration and ports.
  if [[ " ${missing[*]} " == *" prometheus "* ]] && command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet prometheus 2>/dev/null; then
    $SUDO systemctl disable --now prometheus >/dev/null 2>&1 || true
  fi
fi

# syslog-ng (the second real syslog receiver of the tests, test/helpers/syslog-ng.ts): Debian's syslog-ng-core
# conflicts with rsyslog (both provide system-log-daemon), so its package is unpacked into its own directory,
# never installed or started as a service; the tests run its binary from there.
if (( WITH_TESTS )) && [[ ! -x $SYSLOG_NG_ROOT/usr/sbin/syslog-ng ]]; then
  echo "setup: unpacking Debian's syslog-ng-core into $SYSLOG_NG_ROOT" >&2
  tmp=$(mktemp -d)
  chmod 1777 "$tmp" # as root, apt downloads as the _apt user
  if ! (cd "$tmp" && apt-get download -qq syslog-ng-core 2>/dev/null); then
    $SUDO apt-get update -qq
    (cd "$tmp" && apt-get download -qq syslog-ng-core)
  fi
  $SUDO mkdir -p "$SYSLOG_NG_ROOT"
  $SUDO dpkg-deb -x "$tmp"/syslog-ng-core_*.deb "$SYSLOG_NG_ROOT"
  rm -rf "$tmp"
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
