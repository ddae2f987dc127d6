#!/usr/bin/env bash
# Failover, shoal-server against redis-server 7, side by side in one run, by the shared anchor
# script ../shared/anchors/redis_cluster_failover.sh (6 nodes on ports 7001-7006, 3 masters +
# 3 replicas, a writer RPUSHing to one key, kill -9 of that key's master; RUNS runs each,
# medians). For each node timeout (default "1000 5000"):
#   RESULT failover_first_write_ms_<timeout> <shoal> <redis> <ratio>   kill -> first write
#                                                    acknowledged by the promoted replica
#   RESULT failover_promoted_ms_<timeout> <shoal> <redis> <ratio>      kill -> the replica is
#                                                    master in a third node's CLUSTER NODES
#   RESULT failover_lost_<timeout> <shoal> <redis>   writes acknowledged before the kill and
#                                                    missing afterwards
#
#   benches/failover_vs_redis.sh
#   RUNS=1 TIMEOUTS=1000 benches/failover_vs_redis.sh
set -euo pipefail
cd "$(dirname "$0")/.."

TIMEOUTS=${TIMEOUTS:-1000 5000}
export RUNS=${RUNS:-3}
ANCHOR=${ANCHOR:-../shared/anchors/redis_cluster_failover.sh}
[ -f "$ANCHOR" ] || { echo "the anchor script is not at $ANCHOR (set ANCHOR=)" >&2; exit 1; }

# shellcheck source=benches/lib.sh
source benches/lib.sh

# field NAME LINE: the value of NAME=... in the anchor's RESULT line.
field() { tr ' ' '\n' <<<"$2" | awk -F= -v k="$1" '$1 == k { print $2 }'; }

for timeout in $TIMEOUTS; do
    declare -A LINE=()
    for server in shoal redis; do
        bin=$(command -v redis-server)
        [ "$server" = shoal ] && bin=$PWD/target/release/shoal-server
        LINE[$server]=$(SERVER_BIN=$bin LABEL=$server bash "$ANCHOR" "$timeout" | tee "$TMP/$server-$timeout.log" | grep '^RESULT server=')
        echo "${LINE[$server]}"
    done
    for what in first_write_ms promoted_ms; do
        key=$what
        [ "$what" = promoted_ms ] && key=failover_promoted_ms
        s=$(field "$key" "${LINE[shoal]}")
        r=$(field "$key" "${LINE[redis]}")
        echo "RESULT failover_${what}_$timeout $s $r $(ratio "$s" "$r")"
    done
    echo "RESULT failover_lost_$timeout $(field lost "${LINE[shoal]}") $(field lost "${LINE[redis]}")"
done
