#!/bin/sh
# One data node of a Redis Sentinel group (docs/redis.md#compose-and-kubernetes): the role's file from
# deploy/redis, included unchanged, plus what makes the node part of the group. The same script runs in
# deploy/compose/redis-sentinel.yml and in the Kubernetes component deploy/k8s/components/redis-sentinel;
# e2e/test/sentinel-scripts.test.ts runs it natively through a failover.
#
#   REDIS_ROLE              session or queue: $REDIS_ETC/<role>.conf
#   REDIS_ANNOUNCE          this node's host name (or fixed address) as the others reach it
#   REDIS_FIRST_PRIMARY     host[:port] of the node that is the primary on the group's very first start
#   REDIS_REPLICA_PASSWORD  the `replica` user's password, which every node replicates with
#   REDIS_PRIMARY_RESTART_DELAY_S  how long a node that was the primary waits before it starts again
#                           (default 15: above the sentinels' down-after of 5 s plus a failover)
#   REDIS_ETC, REDIS_DATA, REDIS_BIND, REDIS_PORT  default /usr/local/etc/redis, /data, 0.0.0.0, 6379
# The users: $REDIS_ETC/users.acl (aclFile with the `replica` and `sentinel` users).
#
# The sentinels rewrite a node's file (CONFIG REWRITE) when they make it a replica or a primary, so it
# lives in the data directory. Of that file only the replication line is kept across restarts: the role
# settings always come from the role file, and a node comes back as what the sentinels last made it (a
# primary that crashed comes back as one, and the sentinels turn it into a replica of the new primary).
set -eu
etc=${REDIS_ETC:-/usr/local/etc/redis}
data=${REDIS_DATA:-/data}
port=${REDIS_PORT:-6379}
conf=$data/node.conf
case $REDIS_FIRST_PRIMARY in
  *:*) first_host=${REDIS_FIRST_PRIMARY%:*} first_port=${REDIS_FIRST_PRIMARY##*:} ;;
  *) first_host=$REDIS_FIRST_PRIMARY first_port=6379 ;;
esac
if [ -f "$conf" ]; then
  replication=$(grep -E '^(replicaof|slaveof) ' "$conf" || true)
elif [ "$REDIS_ANNOUNCE:$port" != "$first_host:$first_port" ]; then
  replication="replicaof $first_host $first_port"
else
  replication=""
fi
# A primary that crashed and is restarted at once (Compose's restart policy, the kubelet) would be back
# before the sentinels saw it down, still the primary but holding only its last snapshot, and its replica
# would copy that loss. So it waits until they have promoted the replica; it then starts as a primary and
# they turn it into a replica of the new one. (On the group's very first start there is no file: no wait.)
if [ -f "$conf" ] && [ -z "$replication" ]; then
  sleep "${REDIS_PRIMARY_RESTART_DELAY_S:-15}"
fi
printf 'include %s/%s.conf\n%s\n' "$etc" "$REDIS_ROLE" "$replication" >"$conf.new"
mv "$conf.new" "$conf"
# Named, not by address (Compose passes fixed addresses): a restarted pod comes back with a new address.
exec redis-server "$conf" --bind "${REDIS_BIND:-0.0.0.0}" --port "$port" --dir "$data" \
  --aclfile "$etc/users.acl" \
  --masteruser replica --masterauth "$REDIS_REPLICA_PASSWORD" \
  --replica-announce-ip "$REDIS_ANNOUNCE"
