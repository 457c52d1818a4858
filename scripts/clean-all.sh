#!/usr/bin/env bash
# make clean-all: undoes what make demo, make test and make bench set up and started on this machine.
#
# It removes the demo's container, image, daemon and Consul agent (scripts/demo.sh clean); on the Docker
# engine, the containers named ecsr-* or made from an ecsr-* image, the ecsr-* images (the tests' and the
# demo's) and the images `make image` tags by default ($IMAGE and $IMAGE-<arch>: make test's smoke test
# builds them); the second Docker Engine with its data root, exec root, socket, bridge and firewall rule
# (scripts/engine-start.sh purge); what killed test runs left behind (/run/ecsr-*, $TMPDIR/ecsr-*, ecsrN
# bridges); the dockerd scripts/setup.sh started, if it started one; and the cache
# (~/.cache/ecs-registrator: the Consul and Docker Engine builds, staticcheck, ec2-metadata-mock, logs).
# The Makefile removes bin/, artifacts/ and dist/ after it.
#
# It leaves the Debian packages and Go's module and build caches (both may serve more than this
# project): it prints the commands that remove them. Run as root; it refuses while a test run or setup
# is going, which would lose its Docker engine, Consul or cache.
set -euo pipefail
cd "$(dirname "$0")/.."
cache=${ECSR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ecs-registrator}
image=${IMAGE:-ecs-registrator:latest}
archs=${IMAGE_ARCHS:-amd64 arm64}
tmp=${TMPDIR:-/tmp}

if [ "$(id -u)" != 0 ]; then
  echo "clean-all: run as root: it stops dockerd and removes /var/lib/ecsr-engine, /run/ecsr-* and bridges" >&2
  exit 1
fi

# cmdline PID: the process's arguments, separated by spaces; fails when it has gone.
cmdline() { tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null; }

# stop_pid PID: SIGTERM, then SIGKILL 30 s later. The process is not this script's child.
stop_pid() {
  kill -TERM "$1" 2>/dev/null || return 0
  for _ in $(seq 1 60); do
    kill -0 "$1" 2>/dev/null || return 0
    sleep 0.5
  done
  kill -KILL "$1" 2>/dev/null || true
}

# unmount_under DIR: lazily unmounts everything mounted at or below DIR, deepest first.
unmount_under() {
  awk -v r="$1" '$2 == r || index($2, r "/") == 1 { print $2 }' /proc/self/mounts | sort -r |
    while read -r m; do umount -l "$m" 2>/dev/null || true; done
}

# in_module PID: the process runs in a checkout of this module (go test runs a test binary in its
# package's directory, at most two below the module's).
in_module() {
  local dir d
  dir=$(readlink "/proc/$1/cwd" 2>/dev/null) || return 1
  for d in "$dir" "$dir/.." "$dir/../.."; do
    if grep -qs '^module github.com/ecs-registrator/ecs-registrator$' "$d/go.mod"; then return 0; fi
  done
  return 1
}

# The demo first: its Consul agent runs from the cache too.
bash scripts/demo.sh clean

# A test run or setup that is going (of any checkout: they share the cache and the engines) would lose
# its Docker engine, Consul or cache: refuse. What a killed one left running goes. This script and the
# processes that started it (make clean-all, a shell) are neither.
# parent PID: prints the process's parent's pid.
parent() {
  local stat pp
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  read -r _ pp _ <<<"${stat##*)}" # pid (comm) state ppid ...: comm may hold spaces
  echo "$pp"
}
ancestors=" "
p=$$
while [[ $p =~ ^[0-9]+$ ]] && [ "$p" -gt 1 ]; do
  ancestors+="$p "
  p=$(parent "$p") || break
done
busy=
orphans=
# leftover: the process goes if a killed test run left it (it was handed to init), else something
# uses it.
leftover() {
  if [ "$(parent "$pid")" = 1 ]; then orphans+="$pid "; else busy+="  $pid $cmd"$'\n'; fi
}
for p in /proc/[0-9]*; do
  pid=${p#/proc/}
  [[ $ancestors == *" $pid "* ]] && continue
  cmd=$(cmdline "$pid") || continue
  argv0=${cmd%% *}
  case "${argv0##*/} $cmd" in
  "dockerd "*" --exec-root /run/ecsr-engine "*) ;; # the second engine: purged below
  "dockerd "*" --exec-root /run/ecsr-"*) leftover ;; # a test's private dockerd
  *" scripts/setup.sh"* | *"/scripts/setup.sh"* | *"scripts/consul-build.sh"* | *"scripts/engine-build.sh"*)
    busy+="  $pid $cmd"$'\n'
    ;;
  *.test" "*" -test."* | "go "* | "make "*)
    # A test binary, go test, or make test, check, lint, bench or setup, in a checkout of this module.
    read -r _ word _ <<<"$cmd"
    if { [[ $argv0 == *.test ]] || [[ $argv0 == *go && $word == test ]] ||
      [[ $argv0 == *make && " $cmd " =~ \ (test|check|lint|bench|setup)\  ]]; } && in_module "$pid"; then
      busy+="  $pid $cmd"$'\n'
    fi
    ;;
  *)
    # Run from the cache: a test's Consul agent or metadata emulator, staticcheck.
    if [[ $argv0 == "$cache/"* ]]; then leftover; fi
    ;;
  esac
done
if [ -n "$busy" ]; then
  echo "clean-all: a test run or setup is going, or something runs from $cache (it would lose its Docker" >&2
  echo "engine, Consul or cache); run this once it ends:" >&2
  printf '%s' "$busy" | cut -c1-200 >&2
  exit 1
fi
for pid in $orphans; do
  echo "clean-all: stopping what a test run that did not finish left running: $(cmdline "$pid" | cut -c1-120)" >&2
  stop_pid "$pid"
done

if docker version >/dev/null 2>&1; then
  ids=$(docker ps -a --format '{{.ID}} {{.Names}} {{.Image}}' | awk '$2 ~ /^ecsr-/ || $3 ~ /^ecsr-/ { print $1 }')
  if [ -n "$ids" ]; then
    echo "clean-all: removing the containers named ecsr-* or made from an ecsr-* image" >&2
    # shellcheck disable=SC2086 # one ID a word
    docker rm -f $ids >/dev/null || echo "clean-all: some of them could not be removed: docker ps -a" >&2
  fi
  images=$(docker image ls --format '{{.Repository}}:{{.Tag}}' | grep '^ecsr-' || true)
  for arch in $archs; do images+=" $image-$arch"; done
  images+=" $image"
  for i in $images; do
    docker image inspect "$i" >/dev/null 2>&1 || continue
    echo "clean-all: removing the image $i" >&2
    docker image rm "$i" >/dev/null || echo "clean-all: kept the image $i (a container uses it)" >&2
  done
fi

echo "clean-all: stopping the second Docker Engine and removing its files" >&2
bash scripts/engine-start.sh purge

for d in /run/ecsr-* "$tmp"/ecsr-*; do
  [ -e "$d" ] || continue
  echo "clean-all: removing $d (left by a test run that did not finish)" >&2
  unmount_under "$d"
  rm -rf "$d"
done
if command -v ip >/dev/null 2>&1; then
  for b in $(ip -o link show type bridge | awk -F': ' '{ sub(/@.*/, "", $2); print $2 }' | grep -E '^ecsr[0-9]+$' || true); do
    echo "clean-all: removing the bridge $b (left by a test's private dockerd)" >&2
    ip link delete "$b"
  done
fi

if pid=$(cat "$cache/dockerd.pid" 2>/dev/null) && [[ $pid =~ ^[0-9]+$ ]] && [[ $(cmdline "$pid") == dockerd* ]]; then
  echo "clean-all: stopping the dockerd scripts/setup.sh started (pid $pid)" >&2
  stop_pid "$pid"
fi

packages=
if [ -s "$cache/apt-installed" ]; then
  packages=$(sort -u "$cache/apt-installed" | tr '\n' ' ')
fi
echo "clean-all: removing $cache" >&2
rm -rf "$cache"

echo "clean-all: done. Left on this machine:"
if [ -n "$packages" ]; then
  echo "- the Debian packages scripts/setup.sh installed here: $packages(and what they pulled in). If nothing"
  echo "  else needs them: apt-get purge $packages&& apt-get autoremove --purge"
else
  echo "- any Debian packages scripts/setup.sh installed: it recorded none here. It installs, when missing,"
  echo "  docker.io, curl and ca-certificates (make demo), and iproute2, iptables, chromium, gcc, libc6-dev,"
  echo "  pkgconf and libseccomp-dev (make test): apt-get purge <those> && apt-get autoremove --purge"
fi
echo "  Purging docker.io also deletes Docker's data root, /var/lib/docker: every image and container in it."
echo "- Go's module and build caches (the sources and objects of the Consul, Docker Engine and daemon builds,"
echo "  shared with any other Go work): go clean -modcache -cache"
