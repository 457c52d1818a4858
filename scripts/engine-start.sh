#!/usr/bin/env bash
# Starts the current Docker Engine that scripts/engine-build.sh builds, beside Debian's dockerd, when its
# socket does not answer; prints its DOCKER_HOST. `engine-start.sh stop` stops it (its containers too);
# `engine-start.sh purge` stops it and removes everything of it outside the cache (make clean-all): its
# data root, exec root, socket, pidfile, bridge and firewall rule.
# The tests run against it with DOCKER_HOST set to what this prints (the Makefile's second pass).
#
# Everything is its own, so the two engines never fight: socket, data root, exec root (and so its own
# containerd, started by dockerd from Debian's containerd binary, unless a system containerd listens on
# /run/containerd/containerd.sock: then it shares that one, in containerd namespaces of its own), pidfile,
# and a bridge of its own
# (ecsr-br0, not docker0). It leaves iptables to this script (--iptables=false): two dockerds rewriting
# the same DOCKER chains undo each other. Published ports still work through its docker-proxy, and the host
# reaches its containers' IPs on the bridge directly. No --default-address-pool: with it, a restart
# deletes docker0, which is Debian's dockerd's bridge.
set -euo pipefail

sock=${ECSR_ENGINE_SOCK:-/run/ecsr-engine.sock}
host=unix://$sock
root=/var/lib/ecsr-engine
execroot=/run/ecsr-engine # short: containerd's shim sockets live under it (108-byte limit)
pidfile=/run/ecsr-engine.pid
bridge=ecsr-br0
bip=${ECSR_ENGINE_BIP:-10.213.0.1/24}
cache=${ECSR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ecs-registrator}
log=$cache/engine/dockerd.log
here=$(cd "$(dirname "$0")" && pwd)

answers() { curl -fsS --max-time 2 --unix-socket "$sock" http://engine/_ping >/dev/null 2>&1; }

stop() {
  if [ -r "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    pid=$(cat "$pidfile")
    kill -TERM "$pid"
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  fi
}

if [ "${1:-}" = stop ]; then
  stop
  exit 0
fi

if [ "${1:-}" = purge ]; then
  stop
  if [ -r "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    echo "engine-start: dockerd $(cat "$pidfile") did not stop in 30 s; killing it" >&2
    kill -KILL "$(cat "$pidfile")" 2>/dev/null || true
    sleep 1
  fi
  # What a killed dockerd leaves running: the containerd it started (its files are in the exec root),
  # the shims of its containers (in that containerd, or in the system one under its namespace), and
  # the shims' children, its containers' processes.
  shims=" "
  for p in /proc/[0-9]*; do
    cmd=$(tr '\0' ' ' <"$p/cmdline" 2>/dev/null) || continue
    case $cmd in
    *"$execroot/"* | *"-namespace ecsr-engine "*) shims+="${p#/proc/} " ;;
    esac
  done
  if [ "$shims" != " " ]; then
    for p in /proc/[0-9]*; do
      # pid (comm) state ppid ...: comm may hold spaces, so read after the last ')'.
      stat=$(cat "$p/stat" 2>/dev/null) || continue
      read -r _ ppid _ <<<"${stat##*)}"
      if [[ $shims == *" $ppid "* ]]; then kill -KILL "${p#/proc/}" 2>/dev/null || true; fi
    done
    for pid in $shims; do kill -KILL "$pid" 2>/dev/null || true; done
  fi
  # Its containers' overlays and network namespaces stay mounted when they were not removed first.
  for dir in "$root" "$execroot"; do
    awk -v r="$dir" '$2 == r || index($2, r "/") == 1 { print $2 }' /proc/self/mounts | sort -r |
      while read -r m; do umount -l "$m" 2>/dev/null || true; done
  done
  rm -rf "$root" "$execroot" "$sock" "$pidfile"
  if command -v iptables >/dev/null 2>&1; then
    while iptables -C FORWARD -i "$bridge" -o "$bridge" -j ACCEPT 2>/dev/null; do
      iptables -D FORWARD -i "$bridge" -o "$bridge" -j ACCEPT
    done
  fi
  if ip link show "$bridge" >/dev/null 2>&1; then ip link delete "$bridge"; fi
  # A system containerd it shared keeps the engine's namespaces (images, snapshots) until they are
  # emptied; ctr is Debian's containerd's CLI.
  if [ -S /run/containerd/containerd.sock ] && command -v ctr >/dev/null 2>&1; then
    for ns in ecsr-engine ecsr-engine-plugins; do
      ctr namespaces ls -q 2>/dev/null | grep -qx "$ns" || continue
      ctr -n "$ns" containers ls -q 2>/dev/null | xargs -r ctr -n "$ns" containers rm >/dev/null 2>&1 || true
      ctr -n "$ns" images ls -q 2>/dev/null | xargs -r ctr -n "$ns" images rm >/dev/null 2>&1 || true
      ctr -n "$ns" content ls -q 2>/dev/null | xargs -r ctr -n "$ns" content rm >/dev/null 2>&1 || true
      ctr -n "$ns" leases ls -q 2>/dev/null | xargs -r ctr -n "$ns" leases rm >/dev/null 2>&1 || true
      ctr namespaces rm "$ns" >/dev/null 2>&1 ||
        echo "engine-start: the system containerd keeps namespace $ns (ctr -n $ns ... ls shows what is in it)" >&2
    done
  fi
  exit 0
fi

# The bridge, and the one firewall rule the engine's containers need: with br_netfilter, traffic between
# two containers on a bridge goes through FORWARD, whose policy Debian's dockerd sets to DROP, accepting
# only docker0's. Without it container-to-container calls (the mesh test's proxies) time out. Done on
# every run, so that it holds again after the system dockerd was restarted.
network() {
  if ! ip link show "$bridge" >/dev/null 2>&1; then
    ip link add name "$bridge" type bridge
  fi
  [[ $(ip -4 -o addr show dev "$bridge") == *" inet $bip "* ]] || ip addr add "$bip" dev "$bridge"
  ip link set "$bridge" up
  if command -v iptables >/dev/null 2>&1; then
    iptables -C FORWARD -i "$bridge" -o "$bridge" -j ACCEPT 2>/dev/null ||
      iptables -I FORWARD -i "$bridge" -o "$bridge" -j ACCEPT
  fi
}

if answers; then
  network
  echo "$host"
  exit 0
fi

bin=$("$here/engine-build.sh")
mkdir -p "$(dirname "$log")" "$root"
network

# A previous run killed without cleanup leaves a pidfile dockerd refuses to overwrite while that pid lives.
if [ -r "$pidfile" ] && ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then rm -f "$pidfile"; fi

echo "setup: starting docker engine from $bin on $host (log: $log)" >&2
# PATH: dockerd finds containerd and its shim there (Debian's); its own binaries go first.
PATH="$bin:$PATH" nohup setsid "$bin/dockerd" \
  -H "$host" \
  --data-root "$root" \
  --exec-root "$execroot" \
  --pidfile "$pidfile" \
  --containerd-namespace ecsr-engine --containerd-plugins-namespace ecsr-engine-plugins \
  --bridge "$bridge" --iptables=false --ip6tables=false --ip-masq=false \
  --userland-proxy=true --userland-proxy-path "$bin/docker-proxy" \
  --add-runtime "ecsr-runc=$bin/runc" --default-runtime ecsr-runc \
  >"$log" 2>&1 </dev/null &
for _ in $(seq 1 120); do
  answers && break
  sleep 0.5
done
answers || { echo "setup: the docker engine did not start; see $log" >&2; tail -20 "$log" >&2; exit 1; }
echo "$host"
