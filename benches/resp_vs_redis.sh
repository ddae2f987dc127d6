#!/usr/bin/env bash
# shoal-server against redis-server 7 on loopback, side by side in one run.
#
#   benches/resp_vs_redis.sh            # N=200000 requests per test
#   N=50000 benches/resp_vs_redis.sh    # quicker
#   TESTS="zadd lpush" PIPELINES=16 KEYS=0 benches/resp_vs_redis.sh   # a subset, no RSS
#   SHOAL_ARGS="--io-threads 1" benches/resp_vs_redis.sh                # extra shoal-server flags
#
# For each of set, get, incr, lpush, rpop, sadd, hset, zadd, lrange_100, without and with
# -P 16, it runs `redis-benchmark -c 50` against both servers, alternating them, and prints
#   RESULT <test>[_P16] <shoal_rps> <redis_rps> <ratio> p99_ms <shoal_p99> <redis_p99>
# then the geometric mean of the ratios per pipelining mode, and the resident memory of
# each server after loading 1M keys of 16-byte values.
set -euo pipefail
cd "$(dirname "$0")/.."

N=${N:-200000}
KEYS=${KEYS:-1000000}
read -r -a TESTS <<<"${TESTS:-set get incr lpush rpop sadd hset zadd lrange_100}"
read -r -a PIPELINES <<<"${PIPELINES:-1 16}"

# shellcheck source=benches/lib.sh
source benches/lib.sh

start() { # name binary port [extra flags...]
    "$2" --port "$3" --bind 127.0.0.1 --save '' --appendonly no --dir "$TMP" \
        --logfile "$TMP/$1.log" "${@:4}" &
    PIDS+=($!)
    for _ in $(seq 100); do
        redis-cli -p "$3" ping >/dev/null 2>&1 && return
        sleep 0.1
    done
    echo "$1 did not start" >&2
    exit 1
}

SHOAL_PORT=$(free_port)
read -r -a SHOAL_ARGS <<<"${SHOAL_ARGS:-}"
start shoal target/release/shoal-server "$SHOAL_PORT" "${SHOAL_ARGS[@]}"
SHOAL_PID=${PIDS[-1]}
REDIS_PORT=$(free_port)
start redis "$(command -v redis-server)" "$REDIS_PORT"
REDIS_PID=${PIDS[-1]}

# One redis-benchmark run; prints "rps p99_ms".
bench() { # port test pipeline
    redis-benchmark -p "$1" -c 50 -n "$N" -r 100000 -t "$2" -P "$3" --csv 2>/dev/null |
        awk -F'","' 'NR==2 { gsub(/"/, "", $2); gsub(/"/, "", $7); print $2, $7 }'
}

for p in "${PIPELINES[@]}"; do
    suffix=""
    [ "$p" = 16 ] && suffix="_P16"
    ratios=()
    for t in "${TESTS[@]}"; do
        read -r s_rps s_p99 < <(bench "$SHOAL_PORT" "$t" "$p")
        read -r r_rps r_p99 < <(bench "$REDIS_PORT" "$t" "$p")
        ratio=$(awk -v a="$s_rps" -v b="$r_rps" 'BEGIN { printf "%.3f", a / b }')
        ratios+=("$ratio")
        echo "RESULT ${t}${suffix} $s_rps $r_rps $ratio p99_ms $s_p99 $r_p99"
    done
    geomean=$(printf '%s\n' "${ratios[@]}" | awk '{ s += log($1) } END { printf "%.3f", exp(s / NR) }')
    echo "RESULT geomean${suffix} $geomean"
done

# Resident memory after KEYS keys of 16-byte values, loaded the same way into both.
[ "$KEYS" -gt 0 ] || exit 0
write_keys "$KEYS" "$TMP/load.resp"
for port in "$SHOAL_PORT" "$REDIS_PORT"; do
    # Both start from an empty dataset with the benchmarks' freed memory given back.
    redis-cli -p "$port" flushall >/dev/null
    redis-cli -p "$port" memory purge >/dev/null
    redis-cli -p "$port" --pipe <"$TMP/load.resp" >/dev/null
done
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
s_rss=$(rss_kb "$SHOAL_PID")
r_rss=$(rss_kb "$REDIS_PID")
echo "RESULT rss_kb_${KEYS}_keys $s_rss $r_rss $(awk -v a="$s_rss" -v b="$r_rss" 'BEGIN { printf "%.3f", a / b }')"
