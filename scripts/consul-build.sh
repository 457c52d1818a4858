#!/usr/bin/env bash
# Builds Consul v1.14.11 from the Go module proxy (Debian does not package Consul and nothing else is
# reachable) and caches the binary outside the repo, so a rerun costs nothing. Prints the binary's path.
set -euo pipefail

version=v1.14.11
cache=${ECSR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ecs-registrator}
bin=$cache/consul-$version
if [ -x "$bin" ] && "$bin" version >/dev/null 2>&1; then
  echo "$bin"
  exit 0
fi

mkdir -p "$cache"
work=$(mktemp -d)
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT

echo "building consul $version (about 6 minutes on 2 cores; cached at $bin)" >&2
dir=$(go mod download -json "github.com/hashicorp/consul@$version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
[ -n "$dir" ] || { echo "consul-build: go mod download gave no module dir" >&2; exit 1; }
cp -r "$dir" "$work/consul"
chmod -R u+w "$work/consul"
cd "$work/consul"
# The module's replace directives point at sibling directories that the module zip does not contain.
go mod edit -dropreplace=github.com/hashicorp/consul/api \
  -dropreplace=github.com/hashicorp/consul/sdk \
  -dropreplace=github.com/hashicorp/consul/proto-public
GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath -o "$bin.tmp" . >&2
mv "$bin.tmp" "$bin"
echo "$bin"
