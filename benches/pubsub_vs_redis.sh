#!/usr/bin/env bash
# Pub/sub fan-out, shoal-server against redis-server 7, side by side in one run, by the shared
# anchor script ../shared/anchors/redis_pubsub.sh (10 subscribers of one channel; publishers:
# redis-py pipelines, raw pre-encoded batches, and redis-benchmark -c 4 -P 64; RUNS runs each,
# medians):
#   RESULT pubsub_delivered_per_s <shoal> <redis> <ratio>          redis-benchmark publisher
#   RESULT pubsub_delivered_per_s_raw <shoal> <redis> <ratio>      raw-socket publisher
#   RESULT pubsub_delivered_per_s_redispy <shoal> <redis> <ratio>  redis-py publisher
#
#   benches/pubsub_vs_redis.sh
#   RUNS=1 DURATION=2 benches/pubsub_vs_redis.sh
set -euo pipefail
cd "$(dirname "$0")/.."

export RUNS=${RUNS:-3}
ANCHOR=${ANCHOR:-../shared/anchors/redis_pubsub.sh}
[ -f "$ANCHOR" ] || { echo "the anchor script is not at $ANCHOR (set ANCHOR=)" >&2; exit 1; }

# shellcheck source=benches/lib.sh
source benches/lib.sh

# field NAME LINE: the value of NAME=... in the anchor's RESULT line.
field() { tr ' ' '\n' <<<"$2" | awk -F= -v k="$1" '$1 == k { print $2 }'; }

declare -A LINE=()
for server in shoal redis; do
    bin=$(command -v redis-server)
    [ "$server" = shoal ] && bin=$PWD/target/release/shoal-server
    LINE[$server]=$(SERVER_BIN=$bin LABEL=$server bash "$ANCHOR" | tee "$TMP/$server.log" | grep '^RESULT server=')
    grep -E '^(MEDIAN|server:)' "$TMP/$server.log"
    echo "${LINE[$server]}"
done
for what in delivered_per_s delivered_per_s_raw delivered_per_s_redispy; do
    s=$(field "$what" "${LINE[shoal]}")
    r=$(field "$what" "${LINE[redis]}")
    echo "RESULT pubsub_$what $s $r $(ratio "$s" "$r")"
done
