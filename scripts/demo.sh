#!/usr/bin/env bash
# make demo: a local Consul dev agent, the daemon, and a labelled sample container; prints what Consul
# holds and how to look; Ctrl-C cleans up. Expects `make setup build` to have run (make demo does both).
set -euo pipefail
cd "$(dirname "$0")/.."
cache=${ECSR_CACHE:-$HOME/.cache/ecs-registrator}
consul=$("scripts/consul-build.sh")
work=$(mktemp -d)
daemon_pid=
consul_pid=

# The daemon and a Consul agent the demo starts run in sessions of their own (setsid): a Ctrl-C in the
# terminal reaches only this script, whose cleanup then stops things in order. The container goes first
# and the daemon, still running, deregisters it; the daemon stops only once Consul no longer holds the
# demo's service, and the Consul agent (if the demo started it) last. Otherwise an agent that was already
# running kept `web` registered after the demo.
cleanup() {
  trap '' INT TERM HUP # a second Ctrl-C must not cut this short; every step below is bounded
  echo
  echo "demo: cleaning up"
  docker rm -f ecsr-demo-web >/dev/null 2>&1 || true
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
  rm -rf "$work"
}

# demo_registered: the Consul agent holds a service of the demo's container.
demo_registered() {
  curl -fsS http://127.0.0.1:8500/v1/agent/services 2>/dev/null | grep -q ecsr-demo-web
}

# stop PID (a child of this script): SIGTERM, then SIGKILL if it still runs 10 s later.
stop() {
  kill -TERM "$1" 2>/dev/null || return 0
  for _ in $(seq 1 100); do
    running "$1" || break
    sleep 0.1
  done
  running "$1" && kill -KILL "$1" 2>/dev/null
  wait "$1" 2>/dev/null || true
}

# running PID: the process exists and has not exited (an exited child stays a zombie until waited for).
running() {
  local state
  state=$(sed -n 's/^.*) \([A-Z]\).*/\1/p' "/proc/$1/stat" 2>/dev/null) || return 1
  [ -n "$state" ] && [ "$state" != Z ]
}

trap cleanup EXIT
trap 'exit 0' INT TERM HUP

if curl -fsS http://127.0.0.1:8500/v1/status/leader >/dev/null 2>&1; then
  echo "demo: using the Consul agent already on 127.0.0.1:8500"
else
  echo "demo: starting a Consul dev agent on 127.0.0.1:8500 (log: $work/consul.log)"
  setsid "$consul" agent -dev -client 127.0.0.1 -bind 127.0.0.1 -hcl 'ports { grpc_tls = -1 }' >"$work/consul.log" 2>&1 &
  consul_pid=$!
  for _ in $(seq 1 100); do
    [ -n "$(curl -fsS http://127.0.0.1:8500/v1/status/leader 2>/dev/null | tr -d '"')" ] && break
    sleep 0.2
  done
fi

echo "demo: building the sample workload image (FROM scratch, no registry)"
CGO_ENABLED=0 go build -trimpath -o "$work/workload" ./internal/testenv/workload
printf 'FROM scratch\nCOPY workload /workload\nENTRYPOINT ["/workload"]\n' >"$work/Dockerfile"
DOCKER_BUILDKIT=0 docker build -q -t ecsr-workload:demo "$work" >/dev/null 2>&1

echo "demo: starting ecs-registrator (status server on 127.0.0.1:9555)"
setsid bin/ecs-registrator -consul 127.0.0.1:8500 -ip 127.0.0.1 -log-format text &
daemon_pid=$!
for _ in $(seq 1 100); do curl -fsS http://127.0.0.1:9555/readyz >/dev/null 2>&1 && break; sleep 0.1; done

echo "demo: starting a sample container: docker run -l SERVICE_NAME=web -l SERVICE_CHECK_HTTP=/health -p 8080 ..."
docker rm -f ecsr-demo-web >/dev/null 2>&1 || true
docker run -d --name ecsr-demo-web -l SERVICE_NAME=web -l SERVICE_TAGS=demo -l SERVICE_CHECK_HTTP=/health -l SERVICE_CHECK_INTERVAL=2s -e PORTS=8080 -p 8080 ecsr-workload:demo >/dev/null
for _ in $(seq 1 50); do
  [ "$(curl -fsS http://127.0.0.1:8500/v1/catalog/service/web 2>/dev/null)" != "[]" ] && break
  sleep 0.1
done

echo
echo "Consul now holds:"
curl -fsS http://127.0.0.1:8500/v1/agent/services | python3 -c '
import json, sys
for s in json.load(sys.stdin).values():
    print("  %-40s %-8s %s:%s tags=%s" % (s["ID"], s["Service"], s["Address"], s["Port"], ",".join(s.get("Tags") or [])))' 2>/dev/null \
  || curl -fsS http://127.0.0.1:8500/v1/agent/services
cat <<MSG

Status page: http://127.0.0.1:9555/   (why each container is or is not in Consul)

Look for yourself:
  bin/ecs-registrator status                                      # the same as a table
  curl -s http://127.0.0.1:8500/v1/health/service/web?passing   # the instance Consul routes to
  docker stop ecsr-demo-web                                       # drains: gone from Consul at once
  docker start ecsr-demo-web                                      # back again
  Consul UI: http://127.0.0.1:8500/ui

Ctrl-C stops the demo and removes what it started.
MSG
wait
