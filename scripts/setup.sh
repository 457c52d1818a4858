#!/usr/bin/env bash
# Makes a fresh Debian machine (as root) ready for the tests and the demo: Docker Engine running, the
# Consul build cached, staticcheck installed, and a second, current Docker Engine (built from the Go module
# proxy) running beside Debian's on its own socket (scripts/engine-start.sh). Safe to run again: it only
# does what is missing.
# Prints nothing but progress on stderr; exports nothing (callers find tools in the cache directory).
set -euo pipefail

cache=${ECSR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ecs-registrator}
mkdir -p "$cache/bin"
here=$(cd "$(dirname "$0")" && pwd)

need_apt=()
command -v dockerd >/dev/null 2>&1 || need_apt+=(docker.io)
command -v ip >/dev/null 2>&1 || need_apt+=(iproute2)
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
[ -r /etc/ssl/certs/ca-certificates.crt ] || need_apt+=(ca-certificates) # copied into the image
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium) # the status page's browser test
command -v iptables >/dev/null 2>&1 || need_apt+=(iptables)
# runc for the current engine is built with cgo against libseccomp (scripts/engine-build.sh).
command -v gcc >/dev/null 2>&1 || need_apt+=(gcc libc6-dev)
command -v pkg-config >/dev/null 2>&1 || need_apt+=(pkgconf)
[ -r /usr/include/seccomp.h ] || need_apt+=(libseccomp-dev)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing ${need_apt[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq "${need_apt[@]}" >&2
fi

# dockerd: start it when the socket does not answer (no systemd in containers and CI machines).
if ! docker version >/dev/null 2>&1; then
  echo "setup: starting dockerd (log: $cache/dockerd.log)" >&2
  nohup dockerd >"$cache/dockerd.log" 2>&1 &
  for _ in $(seq 1 120); do
    docker version >/dev/null 2>&1 && break
    sleep 0.5
  done
  docker version >/dev/null 2>&1 || { echo "setup: dockerd did not start; see $cache/dockerd.log" >&2; tail -20 "$cache/dockerd.log" >&2; exit 1; }
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
