#!/usr/bin/env bash
# Starts (or stops) a Redis Cluster of three or more masters on loopback, for tests and for trying
# Materi against a cluster by hand. Idempotent: running `start` again on a healthy cluster changes
# nothing; `stop` on a stopped cluster does nothing.
#
#   bash scripts/redis-cluster.sh [start] [PORT...]   # default ports 7101 7102 7103
#   bash scripts/redis-cluster.sh stop [PORT...]
#
# Each node keeps its files in $REDIS_CLUSTER_DIR/<port> (default: a directory under $TMPDIR
# named after the first port); `stop` removes that directory. Every port P also needs P + 10000
# free (the cluster bus). Nothing is persisted: no RDB, no AOF. With REDIS_CLUSTER_REPLICAS=N
# (default 0) every master gets N replicas: give masters x (N + 1) ports, e.g. six for N=1.
set -euo pipefail

log() { printf 'redis-cluster: %s\n' "$*" >&2; }
fail() { log "$*"; exit 1; }

command=start
case "${1:-}" in
  start | stop) command=$1; shift ;;
  -h | --help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
esac
ports=("$@")
if [ "${#ports[@]}" -eq 0 ]; then ports=(7101 7102 7103); fi
for port in "${ports[@]}"; do
  if ! [[ "$port" =~ ^[0-9]+$ ]] || [ "$port" -lt 1 ] || [ "$port" -gt 55535 ]; then
    fail "port \"$port\" is not a number from 1 to 55535 (the cluster bus uses port + 10000)"
  fi
done
replicas=${REDIS_CLUSTER_REPLICAS:-0}
[[ "$replicas" =~ ^[0-9]+$ ]] || fail "REDIS_CLUSTER_REPLICAS \"$replicas\" is not a whole number"
dir=${REDIS_CLUSTER_DIR:-${TMPDIR:-/tmp}/materi-redis-cluster-${ports[0]}}

cli() { # cli <port> <args...>
  local port=$1; shift
  redis-cli -h 127.0.0.1 -p "$port" "$@"
}

answers() { cli "$1" ping 2>/dev/null | grep -q PONG; }

# `cluster info` field of a node, e.g. cluster_state; empty when the node does not answer.
cluster_field() {
  cli "$1" cluster info 2>/dev/null | tr -d '\r' | sed -n "s/^$2:\(.*\)$/\1/p"
}

wait_until() { # wait_until <what> <tries of 0.1 s> <command...>
  local what=$1 tries=$2; shift 2
  for _ in $(seq 1 "$tries"); do
    if "$@"; then return 0; fi
    sleep 0.1
  done
  fail "$what"
}

node_dir() { cli "$1" config get dir 2>/dev/null | tr -d '\r' | sed -n 2p; }

# Whether the Redis on a port is a node this script started with this directory: `stop` must
# never shut down some other Redis (the machine's own on 6379) that happens to answer there.
ours() {
  local port=$1 expected
  expected=$(cd "$dir/$port" 2>/dev/null && pwd -P) || return 1
  [ "$(node_dir "$port")" = "$expected" ]
}

stop_cluster() {
  for port in "${ports[@]}"; do
    if answers "$port"; then
      if ! ours "$port"; then
        log "left the Redis on port $port running: it is not a node started from $dir"
        continue
      fi
      cli "$port" shutdown nosave >/dev/null 2>&1 || true
      wait_until "the node on port $port did not stop" 100 sh -c "! redis-cli -h 127.0.0.1 -p $port ping >/dev/null 2>&1"
      log "stopped the node on port $port"
    fi
    rm -rf "${dir:?}/$port"
  done
  # The directory goes once no node of it is left (a `stop` of some ports keeps the others').
  if [ -d "$dir" ] && [ -z "$(find "$dir" -mindepth 1 -maxdepth 1 -type d)" ]; then rm -rf "$dir"; fi
}

start_node() {
  local port=$1
  if answers "$port"; then return; fi
  # A node that is not running starts afresh: an old nodes-P.conf would bring back a stale cluster.
  rm -rf "${dir:?}/$port"
  mkdir -p "$dir/$port"
  redis-server --port "$port" --cluster-enabled yes --cluster-config-file "nodes-$port.conf" \
    --cluster-node-timeout 2000 --save '' --appendonly no --dir "$dir/$port" --daemonize yes \
    --bind 127.0.0.1 --logfile "$dir/$port/redis.log" >/dev/null ||
    fail "redis-server did not start on port $port (see $dir/$port/redis.log)"
}

all_ok() {
  for port in "${ports[@]}"; do
    [ "$(cluster_field "$port" cluster_state)" = ok ] || return 1
    [ "$(cluster_field "$port" cluster_known_nodes)" = "${#ports[@]}" ] || return 1
    # A replica counts once it has copied its master, and every node knows it as one.
    if cli "$port" info replication 2>/dev/null | grep -q '^role:slave'; then
      cli "$port" info replication | tr -d '\r' | grep -q '^master_link_status:up$' || return 1
    fi
    local known_replicas
    known_replicas=$(cli "$port" cluster nodes 2>/dev/null | awk '$3 ~ /(^|,)slave(,|$)/' | wc -l)
    [ "$known_replicas" = $((${#ports[@]} - ${#ports[@]} / (replicas + 1))) ] || return 1
  done
}

start_cluster() {
  local masters=$((${#ports[@]} / (replicas + 1)))
  [ $((masters * (replicas + 1))) = "${#ports[@]}" ] ||
    fail "${#ports[@]} ports do not divide into masters with $replicas replica(s) each"
  [ "$masters" -ge 3 ] || fail "a cluster needs at least three masters, got $masters"
  command -v redis-server >/dev/null || fail "redis-server is not installed (Debian package redis-server)"
  # Checked for every port before any node starts, so a refusal leaves nothing behind.
  for port in "${ports[@]}"; do
    if answers "$port" && ! ours "$port"; then
      fail "port $port is taken by a Redis that this script did not start from $dir"
    fi
  done
  for port in "${ports[@]}"; do start_node "$port"; done
  for port in "${ports[@]}"; do
    wait_until "the node on port $port did not answer (see $dir/$port/redis.log)" 100 answers "$port"
  done
  if all_ok; then
    log "cluster on ports ${ports[*]} is up"
    return
  fi
  local fresh=1
  for port in "${ports[@]}"; do
    if [ "$(cluster_field "$port" cluster_known_nodes)" != 1 ] ||
      [ "$(cluster_field "$port" cluster_slots_assigned)" != 0 ]; then fresh=0; fi
  done
  if [ "$fresh" = 1 ]; then
    local nodes=()
    for port in "${ports[@]}"; do nodes+=("127.0.0.1:$port"); done
    redis-cli --cluster create "${nodes[@]}" --cluster-replicas "$replicas" --cluster-yes >"$dir/create.log" 2>&1 ||
      fail "redis-cli --cluster create failed: $(tail -n 3 "$dir/create.log" | tr '\n' ' ')"
  fi
  # A half-formed cluster (nodes restarted, gossip still spreading) gets time to settle; one
  # that never does is an error rather than something to repair silently.
  wait_until "the cluster on ports ${ports[*]} did not reach cluster_state:ok; stop it with: $0 stop ${ports[*]}" \
    200 all_ok
  log "cluster on ports ${ports[*]} is up (files in $dir)"
}

if [ "$command" = stop ]; then stop_cluster; else start_cluster; fi
