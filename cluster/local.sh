#!/usr/bin/env bash
# A multi-node Ray cluster on this machine (loopback), for development and for the tests
# (tests/loopback.py starts exactly this): a head and worker nodes, each a separate raylet
# with its own CPUs.
#
#   cluster/local.sh start              # then: RAY_ADDRESS=http://127.0.0.1:8265 ray job submit --working-dir . -- python pipelines/distill_all.py
#   cluster/local.sh status
#   cluster/local.sh stop-node worker1  # what `ray stop` on that machine would do: its raylet and workers die
#   cluster/local.sh stop               # only this cluster's processes; other Rays on the machine live on
#
# Each node gets its own --temp-dir under $ROOT: nodes sharing one would share the
# runtime-env directory, and a node unpacking a job's working_dir for the first time
# replaces the copy the driver is running in (Ray unpacks with overwrite). The temp dirs
# are also how `stop` finds this cluster's processes (every Ray daemon names its session
# directory on its command line; workers are the daemons' descendants), where `ray stop`
# would kill every Ray process on the machine. Keep $ROOT short: Ray's socket paths live
# under it and must stay under 108 bytes.
set -euo pipefail

RAY="${RAY:-ray}"
ROOT="${SDD_LOCAL_CLUSTER_DIR:-/tmp/sdd-ray-local}"
HEAD_CPUS="${HEAD_CPUS:-1}"
WORKER_CPUS="${WORKER_CPUS:-1}"
WORKERS="${WORKERS:-2}"
PORT="${PORT:-6390}"
DASHBOARD_PORT="${DASHBOARD_PORT:-8265}"
AGENT_PORT="${AGENT_PORT:-52365}"  # worker i listens on AGENT_PORT + i (one machine, one port each)

# pids of processes whose command line names the directory, and all their descendants
tree_of() {
  local pids todo pid children
  pids="$(pgrep -f -- "$1" || true)"
  todo="$pids"
  while [ -n "$todo" ]; do
    children=""
    for pid in $todo; do
      children="$children $(pgrep -P "$pid" || true)"
    done
    todo="$(echo $children)"
    pids="$pids $todo"
  done
  echo $pids | tr ' ' '\n' | { grep -v "^$$\$" || true; } | sort -u | tr '\n' ' '
}

# SIGTERM to every process of the named directories, one grace period, then SIGKILL
stop_trees() {
  local pids="" dir
  for dir in "$@"; do
    pids="$pids $(tree_of "$dir")"
  done
  [ -z "${pids// /}" ] && return 0
  kill -TERM $pids 2>/dev/null || true
  for _ in $(seq 1 50); do
    pids="$(for p in $pids; do if kill -0 "$p" 2>/dev/null; then echo "$p"; fi; done)"
    [ -z "$pids" ] && return 0
    sleep 0.1
  done
  kill -KILL $pids 2>/dev/null || true
}

case "${1:-}" in
  start)
    mkdir -p "$ROOT"
    export RAY_AUTH_MODE="${RAY_AUTH_MODE:-disabled}"
    "$RAY" start --head --node-ip-address 127.0.0.1 --port "$PORT" --num-cpus "$HEAD_CPUS" \
      --include-dashboard true --dashboard-host 127.0.0.1 --dashboard-port "$DASHBOARD_PORT" \
      --temp-dir "$ROOT/head" --disable-usage-stats --dashboard-agent-listen-port "$AGENT_PORT"
    pids=()
    for i in $(seq 1 "$WORKERS"); do  # workers start in parallel: each `ray start` takes seconds
      "$RAY" start --address "127.0.0.1:$PORT" --node-ip-address 127.0.0.1 --num-cpus "$WORKER_CPUS" \
        --resources "{\"worker$i\": 1}" --temp-dir "$ROOT/worker$i" --disable-usage-stats \
        --dashboard-agent-listen-port "$((AGENT_PORT + i))" > "$ROOT/worker$i.start.log" 2>&1 &
      pids+=($!)
    done
    for i in "${!pids[@]}"; do
      wait "${pids[$i]}" || { cat "$ROOT/worker$((i + 1)).start.log" >&2; exit 1; }
    done
    echo "dashboard and job API: http://127.0.0.1:$DASHBOARD_PORT (export RAY_ADDRESS=http://127.0.0.1:$DASHBOARD_PORT)"
    ;;
  stop-node)
    node="${2:?usage: $0 stop-node head|worker<i>}"
    stop_trees "$ROOT/$node/"
    ;;
  stop)
    dirs=()
    for i in $(seq 1 "$WORKERS"); do
      dirs+=("$ROOT/worker$i/")
    done
    stop_trees "${dirs[@]}" "$ROOT/head/"
    ;;
  status)
    "$RAY" status --address "127.0.0.1:$PORT"
    ;;
  *)
    echo "usage: $0 start|status|stop-node <node>|stop" >&2
    exit 2
    ;;
esac
