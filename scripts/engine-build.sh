#!/usr/bin/env bash
# Builds a current Docker Engine from the Go module proxy, beside Debian's docker.io 20.10 (API 1.41):
# dockerd and docker-proxy from github.com/moby/moby/v2 (the Engine 29 line, API 1.5x, what current ECS
# hosts run) and runc with seccomp (Debian's runc 1.1.5 refuses the time namespace that engine asks for).
# download.docker.com is not reachable here; the module proxy is. The binaries are cached outside the
# repo, so a rerun costs nothing. Prints the directory that holds dockerd, docker-proxy and runc.
# Needs cgo and Debian's libseccomp-dev for runc (scripts/setup.sh installs it).
set -euo pipefail

# beta.18 is the newest tag whose dependencies the proxy serves (beta.25 needs a buildkit it does not).
moby=v2.0.0-beta.18
runc=v1.4.4
cache=${ECSR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ecs-registrator}
dir=$cache/engine/$moby

ok() {
  [ -x "$dir/dockerd" ] && [ -x "$dir/docker-proxy" ] && [ -x "$dir/runc" ] &&
    "$dir/dockerd" --version >/dev/null 2>&1 &&
    [[ $'\n'$("$dir/runc" --version 2>/dev/null)$'\n' == *$'\n'"runc version ${runc#v}"$'\n'* ]]
}
if ok; then
  echo "$dir"
  exit 0
fi

mkdir -p "$dir"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
start=$SECONDS
echo "building docker engine $moby and runc $runc (about 10 CPU-minutes: 6 minutes on 2 idle cores; cached in $dir)" >&2

# The engine reports dockerversion.Version; upstream sets it from the release tag, which a module build
# does not have. Say which release line it is (the module's releases/versions.yaml) and which tag.
src=$(go mod download -json "github.com/moby/moby/v2@$moby" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
[ -n "$src" ] || { echo "engine-build: go mod download gave no module dir" >&2; exit 1; }
next=$(sed -n 's/^[[:space:]]*next:[[:space:]]*"\{0,1\}\([0-9.]*\)"\{0,1\}.*/\1/p' "$src/releases/versions.yaml" 2>/dev/null || true)
version=${next:+$next-dev+}moby-$moby
ldflags="-s -w -X github.com/moby/moby/v2/dockerversion.Version=$version -X github.com/moby/moby/v2/dockerversion.GitCommit=$moby"

# go install with @version builds the module as published (it has no replace directives), static as
# upstream's static_build: no cgo, so no btrfs/journald/nftables headers are needed.
GOBIN="$work" CGO_ENABLED=0 GOFLAGS=-buildvcs=false go install -trimpath \
  -tags "netgo osusergo static_build nri_no_wasm" -ldflags "$ldflags" \
  "github.com/moby/moby/v2/cmd/dockerd@$moby" "github.com/moby/moby/v2/cmd/docker-proxy@$moby" >&2
echo "engine-build: dockerd and docker-proxy built in $((SECONDS - start))s" >&2

# runc's seccomp support is cgo against libseccomp (its Makefile's default tags).
GOBIN="$work" CGO_ENABLED=1 GOFLAGS=-buildvcs=false go install -trimpath \
  -tags "seccomp urfave_cli_no_docs" -ldflags "-X main.gitCommit=$runc" \
  "github.com/opencontainers/runc@$runc" >&2

for b in dockerd docker-proxy runc; do
  mv -f "$work/$b" "$dir/$b"
done
ok || { echo "engine-build: the built binaries do not run" >&2; exit 1; }
echo "engine-build: done in $((SECONDS - start))s" >&2
echo "$dir"
