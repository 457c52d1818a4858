#!/usr/bin/env bash
# Makes a fresh Debian machine (as root) ready, doing only what is missing, so it is safe to run again.
#
#   setup.sh [test]   make setup, make test (so CI), make bench: Docker Engine running, the Consul build
#                     cached, staticcheck, AWS's EC2 metadata emulator, Chromium, and a second, current
#                     Docker Engine (built from the Go module proxy) running beside Debian's on its own
#                     socket (scripts/engine-start.sh).
#   setup.sh demo     make demo: Docker Engine (Debian's docker.io) running, curl and the CA
#                     certificates. Nothing else: scripts/demo.sh builds Consul itself, and only when no
#                     agent answers on 127.0.0.1:8500.
#
# Prints nothing but progress on stderr; exports nothing (callers find tools in the cache directory).
# What it installs and starts is recorded in the cache (apt-installed, dockerd.pid) for
# scripts/clean-all.sh (make clean-all), which undoes it.
set -euo pipefail

mode=${1:-test}
case $mode in
test | demo) ;;
*)
  echo "usage: setup.sh [test|demo]" >&2
  exit 2
  ;;
esac

cache=${ECSR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ecs-registrator}
mkdir -p "$cache/bin"
here=$(cd "$(dirname "$0")" && pwd)

# as_root WHAT: stop with a clear message when a step that needs root is due and this is not root.
as_root() {
  if [ "$(id -u)" != 0 ]; then
    echo "setup: $1 needs root: run as root (see README, \"Run it\")" >&2
    exit 1
  fi
}

# Go is not installed here: the builds need the version go.mod names (or a Go that fetches it).
command -v go >/dev/null 2>&1 || {
  echo "setup: no go on the PATH: install Go (go.mod's go line names the version; see README, \"Run it\")" >&2
  exit 1
}

need_apt=()
command -v dockerd >/dev/null 2>&1 || need_apt+=(docker.io)
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
# The Go module proxy is HTTPS (go build, the Consul build), and the image copies the CA bundle.
[ -r /etc/ssl/certs/ca-certificates.crt ] || need_apt+=(ca-certificates)
if [ "$mode" = test ]; then
  command -v ip >/dev/null 2>&1 || need_apt+=(iproute2)
  command -v chromium >/dev/null 2>&1 || need_apt+=(chromium) # the status page's browser test
  command -v iptables >/dev/null 2>&1 || need_apt+=(iptables)
  # runc for the current engine is built with cgo against libseccomp (scripts/engine-build.sh).
  command -v gcc >/dev/null 2>&1 || need_apt+=(gcc libc6-dev)
  command -v pkg-config >/dev/null 2>&1 || need_apt+=(pkgconf)
  [ -r /usr/include/seccomp.h ] || need_apt+=(libseccomp-dev)
  # botocore's parameter validation of packaging's aws ecs inputs (packaging/lint_test.go).
  /usr/bin/python3 -c 'import botocore' >/dev/null 2>&1 || need_apt+=(python3-botocore)
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  as_root "installing ${need_apt[*]} (apt-get)"
  echo "setup: installing ${need_apt[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq "${need_apt[@]}" >&2
  printf '%s\n' "${need_apt[@]}" >>"$cache/apt-installed"
fi

# dockerd: start it when the socket does not answer (no systemd in containers and CI machines).
if ! docker version >/dev/null 2>&1; then
  as_root "starting dockerd"
  echo "setup: starting dockerd (log: $cache/dockerd.log)" >&2
  # In a session of its own: a Ctrl-C of the make that started it (make demo, make test) must not
  # reach it; the terminal sends SIGINT to the whole foreground process group.
  setsid nohup dockerd >"$cache/dockerd.log" 2>&1 &
  echo $! >"$cache/dockerd.pid" # this dockerd is setup's: make clean-all stops it
  for _ in $(seq 1 120); do
    docker version >/dev/null 2>&1 && break
    sleep 0.5
  done
  docker version >/dev/null 2>&1 || { echo "setup: dockerd did not start; see $cache/dockerd.log" >&2; tail -20 "$cache/dockerd.log" >&2; exit 1; }
fi

if [ "$mode" = demo ]; then
  exit 0
fi

"$here/consul-build.sh" >/dev/null

# The current Docker Engine (API 1.5x) beside Debian's 20.10 (API 1.41), for the tests' second pass:
# built once into the cache, started when its socket does not answer.
"$here/engine-start.sh" >/dev/null

if [ ! -x "$cache/bin/staticcheck" ]; then
  echo "setup: installing staticcheck" >&2
  GOBIN="$cache/bin" go install honnef.co/go/tools/cmd/staticcheck@v0.8.2 >&2
fi

# AWS's own EC2 instance metadata emulator, for the IMDS tests.
if [ ! -x "$cache/bin/ec2-metadata-mock" ]; then
  echo "setup: installing ec2-metadata-mock" >&2
  GOBIN="$cache/bin" go install github.com/aws/amazon-ec2-metadata-mock/cmd/ec2-metadata-mock@v1.13.0 >&2
fi
