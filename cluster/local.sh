#!/usr/bin/env bash
# A multi-node Ray cluster on this machine (loopback), for development: a head and two
# worker nodes, each a separate raylet with its own CPUs, like the one the tests start.
#
#   cluster/local.sh start     # then: RAY_ADDRESS=http://127.0.0.1:8265 ray job submit --working-dir . -- python pipelines/distill_all.py
#   cluster/local.sh status
#   cluster/local.sh stop      # note: `ray stop` stops every Ray process on this machine
#
# Each node gets its own --temp-dir: nodes sharing one would share the runtime-env
# directory, and a node unpacking a job's working_dir for the first time replaces the copy
# the driver is running in (Ray unpacks with overwrite).
set -euo pipefail

RAY="${RAY:-ray}"
ROOT="${SDD_LOCAL_CLUSTER_DIR:-/tmp/sdd-ray-local}"
HEAD_CPUS="${HEAD_CPUS:-1}"
WORKER_CPUS="${WORKER_CPUS:-1}"
WORKERS="${WORKERS:-2}"
PORT="${PORT:-6390}"
DASHBOARD_PORT="${DASHBOARD_PORT:-8265}"
AGENT_PORT="${AGENT_PORT:-52365}"  # worker i listens on AGENT_PORT + i (one machine, one port each)

case "${1:-}" in
  start)
    mkdir -p "$ROOT"
    export RAY_AUTH_MODE="${RAY_AUTH_MODE:-disabled}"
    "$RAY" start --head --node-ip-address 127.0.0.1 --port "$PORT" --num-cpus "$HEAD_CPUS" \
      --include-dashboard true --dashboard-host 127.0.0.1 --dashboard-port "$DASHBOARD_PORT" \
      --temp-dir "$ROOT/head" --disable-usage-stats --dashboard-agent-listen-port "$AGENT_PORT"
    for i in $(seq 1 "$WORKERS"); do
      "$RAY" start --address "127.0.0.1:$PORT" --node-ip-address 127.0.0.1 --num-cpus "$WORKER_CPUS" \
        --resources "{\"worker$i\": 1}" --temp-dir "$ROOT/worker$i" --disable-usage-stats \
        --dashboard-agent-listen-port "$((AGENT_PORT + i))"
    done
    echo "dashboard and job API: http://127.0.0.1:$DASHBOARD_PORT (export RAY_ADDRESS=http://127.0.0.1:$DASHBOARD_PORT)"
    ;;
  stop)
    "$RAY" stop --force
    ;;
  status)
    "$RAY" status --address "127.0.0.1:$PORT"
    ;;
  *)
    echo "usage: $0 start|stop|status" >&2
    exit 2
    ;;
esac
