#!/bin/sh
# One sentinel of the Redis Sentinel groups (docs/redis.md#compose-and-kubernetes), monitoring one or
# several groups. The same script runs in deploy/compose/redis-sentinel.yml and in the Kubernetes
# component deploy/k8s/components/redis-sentinel; e2e/test/sentinel-scripts.test.ts runs it natively.
#
#   SENTINEL_ANNOUNCE        this sentinel's host name (or fixed address) as the others reach it
#   SENTINEL_MASTERS         each group as <master name>=<host[:port] of its first primary>, space-separated,
#                            e.g. "atoll-session=redis-session atoll-queue=redis-queue"
#   REDIS_SENTINEL_PASSWORD  the `sentinel` user's password: on the data nodes and on the other sentinels
#   SENTINEL_DOWN_AFTER_MS   how long a primary may not answer before it counts as down (default 5000)
#   SENTINEL_FAILOVER_TIMEOUT_MS  (default 10000; a failover that did not happen, e.g. a split vote,
#                                 is tried again after twice this)
#   REDIS_ETC, REDIS_DATA, REDIS_BIND, SENTINEL_PORT  default /usr/local/etc/redis, /data, 0.0.0.0, 26379
# The users: $REDIS_ETC/sentinel-users.acl (`user` lines, hashes only: sentinelAclFile).
#
# Sentinel keeps what it learns (the current primary, the epochs, the replicas and the other sentinels) in
# its own file. On every start the file is written anew from the settings and users above, keeping those
# learnt lines: a changed password takes effect with a restart, and a sentinel that restarts after a
# failover still knows the new primary (one that forgot it would point at the old primary again).
set -eu
etc=${REDIS_ETC:-/usr/local/etc/redis}
data=${REDIS_DATA:-/data}
conf=$data/sentinel.conf
touch "$conf"
learnt() { grep -E "$1" "$conf" || true; }
{
  echo "port ${SENTINEL_PORT:-26379}"
  echo "bind ${REDIS_BIND:-0.0.0.0}"
  echo "dir $data"
  # Names, not addresses (Compose passes fixed addresses): pods come back with new addresses.
  echo "sentinel resolve-hostnames yes"
  echo "sentinel announce-hostnames yes"
  echo "sentinel announce-ip $SENTINEL_ANNOUNCE"
  cat "$etc/sentinel-users.acl"
  echo "sentinel sentinel-user sentinel"
  echo "sentinel sentinel-pass $REDIS_SENTINEL_PASSWORD"
  learnt '^sentinel (myid|current-epoch) '
  for master in $SENTINEL_MASTERS; do
    name=${master%%=*}
    first=${master#*=}
    case $first in *:*) first="${first%:*} ${first##*:}" ;; *) first="$first 6379" ;; esac
    monitor=$(learnt "^sentinel monitor $name ")
    echo "${monitor:-sentinel monitor $name $first 2}"
    echo "sentinel auth-user $name sentinel"
    echo "sentinel auth-pass $name $REDIS_SENTINEL_PASSWORD"
    echo "sentinel down-after-milliseconds $name ${SENTINEL_DOWN_AFTER_MS:-5000}"
    echo "sentinel failover-timeout $name ${SENTINEL_FAILOVER_TIMEOUT_MS:-10000}"
    echo "sentinel parallel-syncs $name 1"
    learnt "^sentinel (config-epoch|leader-epoch|known-replica|known-sentinel) $name "
  done
} >"$conf.new"
mv "$conf.new" "$conf"
exec redis-server "$conf" --sentinel
