#!/usr/bin/env bash
# make demo: a Consul dev agent (or the agent already on 127.0.0.1:8500), the daemon, and a labelled
# sample container; prints what Consul holds and how to look; Ctrl-C removes what it started. Expects
# `make build` and `scripts/setup.sh demo` to have run (make demo does both).
#
# `demo.sh clean` removes what a demo that could not clean up (killed, its terminal closed) left: its
# container and image, and the daemon and Consul agent it started, found by the pids it recorded.
# make clean-all runs it; so does every demo, first.
set -euo pipefail
cd "$(dirname "$0")/.."
cache=${ECSR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ecs-registrator}
# The demo's files: the pids of what it starts, Consul's log, the sample image's build context.
work=$cache/demo
daemon_pid=
consul_pid=
removed=
agent_found= # a Consul agent answered on 127.0.0.1:8500 before the demo started one
# What the demo's processes look like (a recorded pid is trusted only while its command line matches:
# pids are reused).
daemon_cmd='bin/ecs-registrator -consul 127.0.0.1:8500 -ip 127.0.0.1 -log-format text*'
consul_cmd='*/consul-v* agent -dev -client 127.0.0.1 -bind 127.0.0.1 *'

# The daemon and a Consul agent the demo starts run in sessions of their own (setsid): a Ctrl-C in the
# terminal reaches only this script, whose cleanup then stops things in order. The container goes first
# and the daemon, still running, deregisters it; the daemon stops only once Consul no longer holds the
# demo's service, and the Consul agent (if the demo started it) last. Otherwise an agent that was already
# running kept `web` registered after the demo.
cleanup() {
  trap '' INT TERM HUP # a second Ctrl-C must not cut this short; every step below is bounded
  removed=
  if docker rm -f ecsr-demo-web >/dev/null 2>&1 || ! docker container inspect ecsr-demo-web >/dev/null 2>&1; then
    removed=1
  fi
  if [ -n "$daemon_pid" ]; then
    for _ in $(seq 1 100); do
      demo_registered || break
      sleep 0.1
    done
    if demo_registered; then
      echo "demo: Consul still holds a service of ecsr-demo-web after 10 s; see curl -s http://127.0.0.1:8500/v1/agent/services" >&2
    fi
    stop "$daemon_pid"
  fi
  [ -z "$consul_pid" ] || stop "$consul_pid"
  if ! docker image rm ecsr-workload:demo >/dev/null 2>&1 && docker image inspect ecsr-workload:demo >/dev/null 2>&1; then
    removed=
  fi
  rm -rf "$work"
}

# demo_registered: the Consul agent holds a service of the demo's container.
demo_registered() {
  curl -fsS --max-time 2 http://127.0.0.1:8500/v1/agent/services 2>/dev/null | grep -q ecsr-demo-web
}

# stop PID: SIGTERM, then SIGKILL if it still runs 10 s later.
stop() {
  kill -TERM "$1" 2>/dev/null || return 0
  for _ in $(seq 1 100); do
    running "$1" || break
    sleep 0.1
  done
  if running "$1"; then kill -KILL "$1" 2>/dev/null || true; fi
  wait "$1" 2>/dev/null || true
}

# running PID: the process exists and has not exited (an exited child stays a zombie until waited for).
running() {
  local state
  state=$(sed -n 's/^.*) \([A-Z]\).*/\1/p' "/proc/$1/stat" 2>/dev/null) || return 1
  [ -n "$state" ] && [ "$state" != Z ]
}

# recorded PIDFILE PATTERN: prints the pid in PIDFILE when that process runs and its command line
# matches PATTERN.
recorded() {
  local pid
  pid=$(cat "$1" 2>/dev/null) || return 0
  if [[ $pid =~ ^[0-9]+$ ]] && running "$pid"; then
    # shellcheck disable=SC2053 # the pattern is a glob on purpose
    if [[ $(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) == $2 ]]; then
      echo "$pid"
    fi
  fi
}

# leftovers: what an earlier demo left (see the top) goes.
leftovers() {
  daemon_pid=$(recorded "$work/daemon.pid" "$daemon_cmd")
  consul_pid=$(recorded "$work/consul.pid" "$consul_cmd")
  [ -z "$daemon_pid" ] || echo "demo: stopping the daemon an earlier demo left running (pid $daemon_pid)" >&2
  [ -z "$consul_pid" ] || echo "demo: stopping the Consul agent an earlier demo left running (pid $consul_pid)" >&2
  cleanup
  daemon_pid='' consul_pid=''
}

# bye says what the demo removed and what stays.
bye() {
  if [ -n "$removed" ]; then
    echo "demo: removed the sample container and its image${daemon_pid:+, stopped the daemon}${consul_pid:+, stopped the Consul agent it started}."
  else
    echo "demo: could not remove the sample container ecsr-demo-web or its image ecsr-workload:demo (does dockerd answer?); make clean-all removes them${daemon_pid:+. Stopped the daemon}${consul_pid:+, and the Consul agent it started}."
  fi
  if [ -n "$agent_found" ]; then
    echo "demo: the Consul agent that was already on 127.0.0.1:8500 runs on."
  fi
  echo "demo: left: bin/ecs-registrator, the Consul build in $cache, dockerd (scripts/setup.sh started it if it"
  echo "      did not answer) and the Debian packages setup installed. make clean-all undoes all but the packages"
  echo "      and prints the apt-get command that removes those."
}

if [ "${1:-}" = clean ]; then
  leftovers
  exit 0
fi

leftovers
mkdir -p "$work/image"
trap 'echo; echo "demo: cleaning up"; cleanup; bye' EXIT
trap 'exit 0' INT TERM HUP

if curl -fsS --max-time 2 http://127.0.0.1:8500/v1/status/leader >/dev/null 2>&1; then
  echo "demo: using the Consul agent already on 127.0.0.1:8500 (the demo leaves it running)"
  agent_found=1
else
  # Cached after the first build (about 6 minutes on 2 cores).
  consul=$(scripts/consul-build.sh)
  echo "demo: starting a Consul dev agent on 127.0.0.1:8500 (log: $work/consul.log)"
  setsid "$consul" agent -dev -client 127.0.0.1 -bind 127.0.0.1 -hcl 'ports { grpc_tls = -1 }' >"$work/consul.log" 2>&1 &
  consul_pid=$!
  echo "$consul_pid" >"$work/consul.pid"
  for _ in $(seq 1 100); do
    [ -n "$(curl -fsS --max-time 2 http://127.0.0.1:8500/v1/status/leader 2>/dev/null | tr -d '"')" ] && break
    sleep 0.2
  done
  if [ -z "$(curl -fsS --max-time 2 http://127.0.0.1:8500/v1/status/leader 2>/dev/null | tr -d '"')" ]; then
    echo "demo: the Consul dev agent has no leader after 20 s; its log ends:" >&2
    tail -20 "$work/consul.log" >&2
    exit 1
  fi
fi

echo "demo: building the sample workload image (FROM scratch, no registry)"
CGO_ENABLED=0 go build -trimpath -o "$work/image/workload" ./internal/testenv/workload
printf 'FROM scratch\nCOPY workload /workload\nENTRYPOINT ["/workload"]\n' >"$work/image/Dockerfile"
if ! out=$(DOCKER_BUILDKIT=0 docker build -q -t ecsr-workload:demo "$work/image" 2>&1); then
  echo "demo: docker build failed: $out" >&2
  exit 1
fi

echo "demo: starting ecs-registrator (status server on 127.0.0.1:9555)"
setsid bin/ecs-registrator -consul 127.0.0.1:8500 -ip 127.0.0.1 -log-format text &
daemon_pid=$!
echo "$daemon_pid" >"$work/daemon.pid"
for _ in $(seq 1 100); do
  curl -fsS --max-time 2 http://127.0.0.1:9555/readyz >/dev/null 2>&1 && break
  running "$daemon_pid" || break
  sleep 0.1
done
if ! running "$daemon_pid"; then
  echo "demo: ecs-registrator exited (its log is above; is 127.0.0.1:9555 in use?)" >&2
  exit 1
fi

echo "demo: starting a sample container: docker run -l SERVICE_NAME=web -l SERVICE_CHECK_HTTP=/health -p 8080 ..."
docker run -d --name ecsr-demo-web -l SERVICE_NAME=web -l SERVICE_TAGS=demo -l SERVICE_CHECK_HTTP=/health -l SERVICE_CHECK_INTERVAL=2s -e PORTS=8080 -p 8080 ecsr-workload:demo >/dev/null
for _ in $(seq 1 50); do
  demo_registered && break
  sleep 0.1
done

echo
echo "Consul now holds:"
curl -fsS http://127.0.0.1:8500/v1/agent/services | python3 -c '
import json, sys
for s in json.load(sys.stdin).values():
    print("  %-40s %-8s %s:%s tags=%s" % (s["ID"], s["Service"], s["Address"], s["Port"], ",".join(s.get("Tags") or [])))' 2>/dev/null ||
  curl -fsS http://127.0.0.1:8500/v1/agent/services
cat <<MSG

Status page: http://127.0.0.1:9555/   (why each container is or is not in Consul)

Look for yourself:
  bin/ecs-registrator status                                      # the same as a table
  curl -s http://127.0.0.1:8500/v1/health/service/web?passing   # the instance Consul routes to
  docker stop ecsr-demo-web                                       # drains: gone from Consul at once
  docker start ecsr-demo-web                                      # back again
  Consul UI: http://127.0.0.1:8500/ui

Ctrl-C stops the demo: it removes the sample container and image and stops the daemon$([ -z "$consul_pid" ] || echo " and the Consul agent").
MSG
wait
