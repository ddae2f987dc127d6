#!/usr/bin/env bash
# Snapshots, shoal-server against redis-server 7 on loopback, side by side in one run, on the
# same KEYS keys of 16-byte values (default 1M):
#   RESULT save_ms <shoal> <redis> <ratio>          SAVE, best of ROUNDS
#   RESULT load_ms <shoal> <redis> <ratio>          start-up until PING answers, best of ROUNDS
#   RESULT bgsave_peak_rss_ratio <shoal> <redis>    peak RSS during BGSAVE under a SET load,
#                                                   over RSS before (Redis: parent + child)
#   RESULT bgsave_copied_bytes <shoal> <redis>      rdb_last_cow_size of that BGSAVE
#   RESULT set_P16_<policy> <shoal_rps> <redis_rps> <shoal_vs_no_aof> <redis_vs_no_aof>
#                                                   SET -P 16 with appendonly no, appendfsync
#                                                   everysec and always
#
#   benches/persist_vs_redis.sh
#   KEYS=200000 ROUNDS=1 benches/persist_vs_redis.sh
set -euo pipefail
cd "$(dirname "$0")/.."

KEYS=${KEYS:-1000000}
ROUNDS=${ROUNDS:-3}

# shellcheck source=benches/lib.sh
source benches/lib.sh

declare -A BIN=([shoal]=target/release/shoal-server [redis]=$(command -v redis-server))
declare -A PORT=([shoal]=$(free_port) [redis]=$(free_port))
declare -A PID

start() { # name [extra flags]; sets PID[name]
    mkdir -p "$TMP/$1"
    "${BIN[$1]}" --port "${PORT[$1]}" --bind 127.0.0.1 --save '' --appendonly no \
        --dir "$TMP/$1" --logfile "$TMP/$1.log" "${@:2}" &
    PID[$1]=$!
    PIDS+=($!)
    ready "${PORT[$1]}"
}
stop() { redis-cli -p "${PORT[$1]}" shutdown nosave >/dev/null 2>&1 || true; wait "${PID[$1]}" 2>/dev/null || true; }
cli() { local name=$1; shift; redis-cli -p "${PORT[$name]}" "$@"; }
field() { cli "$1" info persistence | tr -d '\r' | awk -F: -v f="$2" '$1 == f { print $2 }'; }
rss_kb() { local kb; kb=$(awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || true); echo "${kb:-0}"; }

write_keys "$KEYS" "$TMP/load.resp"

declare -A SAVE_MS LOAD_MS
for name in shoal redis; do
    start "$name"
    cli "$name" --pipe <"$TMP/load.resp" >/dev/null
    times=()
    for _ in $(seq "$ROUNDS"); do
        t0=$(now_ms)
        cli "$name" save >/dev/null
        times+=($(($(now_ms) - t0)))
    done
    SAVE_MS[$name]=$(printf '%s\n' "${times[@]}" | best)
    stop "$name"
    times=()
    for _ in $(seq "$ROUNDS"); do
        t0=$(now_ms)
        start "$name"
        times+=($(($(now_ms) - t0)))
        [ "$(cli "$name" dbsize)" = "$KEYS" ] || { echo "$name loaded $(cli "$name" dbsize) keys" >&2; exit 1; }
        stop "$name"
    done
    LOAD_MS[$name]=$(printf '%s\n' "${times[@]}" | best)
done
echo "RESULT save_ms ${SAVE_MS[shoal]} ${SAVE_MS[redis]} $(ratio "${SAVE_MS[shoal]}" "${SAVE_MS[redis]}")"
echo "RESULT load_ms ${LOAD_MS[shoal]} ${LOAD_MS[redis]} $(ratio "${LOAD_MS[shoal]}" "${LOAD_MS[redis]}")"

# BGSAVE while redis-benchmark keeps overwriting the same keys.
declare -A PEAK COPIED
for name in shoal redis; do
    start "$name"
    before=$(rss_kb "${PID[$name]}")
    redis-benchmark -p "${PORT[$name]}" -c 20 -n 100000000 -r "$KEYS" -d 16 -P 16 -t set -q >/dev/null 2>&1 &
    load=$!
    sleep 1
    before=$(rss_kb "${PID[$name]}")
    cli "$name" bgsave >/dev/null
    peak=$before
    while [ "$(field "$name" rdb_bgsave_in_progress)" != 0 ]; do
        rss=$(rss_kb "${PID[$name]}")
        for child in $(pgrep -P "${PID[$name]}" || true); do rss=$((rss + $(rss_kb "$child"))); done
        [ "$rss" -gt "$peak" ] && peak=$rss
        sleep 0.002
    done
    kill "$load" 2>/dev/null || true
    wait "$load" 2>/dev/null || true
    PEAK[$name]=$(ratio "$peak" "$before")
    COPIED[$name]=$(field "$name" rdb_last_cow_size)
    stop "$name"
done
echo "RESULT bgsave_peak_rss_ratio ${PEAK[shoal]} ${PEAK[redis]}"
echo "RESULT bgsave_copied_bytes ${COPIED[shoal]} ${COPIED[redis]}"

# SET -P 16 throughput by fsync policy, each server against itself without an AOF.
declare -A RPS
for policy in no everysec always; do
    for name in shoal redis; do
        rm -rf "${TMP:?}/$name"
        flags=(--appendonly no)
        [ "$policy" != no ] && flags=(--appendonly yes --appendfsync "$policy")
        start "$name" "${flags[@]}"
        RPS[$name.$policy]=$(redis-benchmark -p "${PORT[$name]}" -c 50 -n 1000000 -r "$KEYS" -d 16 -P 16 -t set --csv 2>/dev/null |
            awk -F'","' 'NR==2 { gsub(/"/, "", $2); print $2 }')
        stop "$name"
    done
    echo "RESULT set_P16_$policy ${RPS[shoal.$policy]} ${RPS[redis.$policy]}" \
        "$(ratio "${RPS[shoal.$policy]}" "${RPS[shoal.no]}") $(ratio "${RPS[redis.$policy]}" "${RPS[redis.no]}")"
done
