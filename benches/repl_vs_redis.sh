#!/usr/bin/env bash
# Replication, shoal-server against redis-server 7 on loopback, side by side in one run: a
# primary and one replica of each, KEYS keys of 16-byte values (default 1M).
#   RESULT full_sync_ms <shoal> <redis> <ratio>   REPLICAOF of a fresh replica until its
#                                                 offset equals the primary's (Redis:
#                                                 diskless, no delay)
#   RESULT set_P16_replica <shoal> <redis>        SET -P 16 with the replica attached, over
#                                                 the same primary alone (rps ratios; the
#                                                 median of ROUNDS alternating pairs)
#   RESULT catch_up_ms <shoal> <redis>            after the last reply of SETS pipelined SETs,
#                                                 until the replica's offset equals the
#                                                 primary's (median of the rounds)
#   RESULT wait_ms_p50 / wait_ms_p99 <shoal> <redis>   SET then WAIT 1 0 from one client, the
#                                                 pair's round trip (2000 pairs)
#
#   benches/repl_vs_redis.sh
#   KEYS=200000 SETS=200000 ROUNDS=3 benches/repl_vs_redis.sh
set -euo pipefail
cd "$(dirname "$0")/.."

KEYS=${KEYS:-1000000}
SETS=${SETS:-1000000}
ROUNDS=${ROUNDS:-5}

# shellcheck source=benches/lib.sh
source benches/lib.sh

declare -A BIN=([shoal]=target/release/shoal-server [redis]=$(command -v redis-server))
declare -A PID PORT

start() { # name bin-key [extra flags]; sets PID[name], PORT[name]
    local name=$1 bin=$2
    PORT[$name]=$(free_port_with_bus)
    mkdir -p "$TMP/$name"
    "${BIN[$bin]}" --port "${PORT[$name]}" --bind 127.0.0.1 --save '' --appendonly no \
        --dir "$TMP/$name" --logfile "$TMP/$name.log" "${@:3}" &
    PID[$name]=$!
    PIDS+=($!)
    ready "${PORT[$name]}"
}
stop() { redis-cli -p "${PORT[$1]}" shutdown nosave >/dev/null 2>&1 || true; wait "${PID[$1]}" 2>/dev/null || true; }
cli() { local name=$1; shift; redis-cli -p "${PORT[$name]}" "$@"; }
offset() { cli "$1" info replication | tr -d '\r' | awk -F: '$1 == "master_repl_offset" { print $2 }'; }
wait_ms() { # name: "p50 p99" of SET + WAIT 1 0 round trips
    python3 - "${PORT[$1]}" <<'PY'
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
pair = b"*3\r\n$3\r\nSET\r\n$1\r\nw\r\n$1\r\n1\r\n*3\r\n$4\r\nWAIT\r\n$1\r\n1\r\n$1\r\n0\r\n"
times = []
for _ in range(2000):
    t0 = time.perf_counter()
    s.sendall(pair)
    got = b""
    while got.count(b"\r\n") < 2:
        got += s.recv(64)
    times.append((time.perf_counter() - t0) * 1000)
times.sort()
print("%.3f %.3f" % (times[len(times) // 2], times[len(times) * 99 // 100]))
PY
}
set_rps() { # name
    redis-benchmark -p "${PORT[$1]}" -c 50 -n "$SETS" -r "$KEYS" -d 16 -P 16 -t set --csv 2>/dev/null |
        awk -F'","' 'NR==2 { gsub(/"/, "", $2); print $2 }'
}
# with_replica SYS: "rps catch_up_ms" of SET -P 16 on the primary; catch-up runs from the
# benchmark's exit (its last reply) until the replica's offset equals the primary's, polled
# over connections opened before (a redis-cli per poll takes longer than what is measured).
with_replica() {
    python3 - "${PORT[$1_p]}" "${PORT[$1_r]}" "$SETS" "$KEYS" <<'PY'
import socket, subprocess, sys, time
primary, replica, sets, keys = sys.argv[1:5]
def connect(port):
    s = socket.create_connection(("127.0.0.1", int(port)))
    return s, s.makefile("rb")
def offset(conn):
    s, f = conn
    s.sendall(b"INFO replication\r\n")
    body = f.read(int(f.readline()[1:]) + 2)
    line = next(l for l in body.split(b"\r\n") if l.startswith(b"master_repl_offset:"))
    return int(line.split(b":")[1])
p, r = connect(primary), connect(replica)
csv = subprocess.run(["redis-benchmark", "-p", primary, "-c", "50", "-n", sets, "-r", keys,
                      "-d", "16", "-P", "16", "-t", "set", "--csv"],
                     capture_output=True, text=True, check=True).stdout
t0 = time.perf_counter()
want = offset(p)
while offset(r) < want:
    pass
print(csv.splitlines()[1].split('","')[1].strip('"'), "%.1f" % ((time.perf_counter() - t0) * 1000))
PY
}
# caught_up PRIMARY REPLICA: waits until both offsets are equal.
caught_up() {
    local want
    want=$(offset "$1")
    until [ "$(offset "$2")" = "$want" ]; do sleep 0.001; done
}

write_keys "$KEYS" "$TMP/load.resp"

# attach SYS: REPLICAOF on the replica, until it is up and caught up.
attach() {
    cli "$1_r" replicaof 127.0.0.1 "${PORT[$1_p]}" >/dev/null
    until cli "$1_r" info replication | grep -q '^master_link_status:up'; do sleep 0.001; done
    caught_up "$1_p" "$1_r"
}
# detach SYS: REPLICAOF NO ONE on the replica, until the primary has no replica left.
detach() {
    cli "$1_r" replicaof no one >/dev/null
    until cli "$1_p" info replication | grep -q '^connected_slaves:0'; do sleep 0.001; done
}
# median of the arguments
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

declare -A SYNC_MS CATCH_UP WAIT_MS RATIOS
for sys in shoal redis; do
    start "${sys}_p" "$sys" --repl-diskless-sync yes --repl-diskless-sync-delay 0
    cli "${sys}_p" --pipe <"$TMP/load.resp" >/dev/null
    start "${sys}_r" "$sys"
    # A first run, not counted: the loaded tables finish growing, the caches warm up.
    set_rps "${sys}_p" >/dev/null
    # This machine's speed drifts between runs by more than the effect measured: alone and
    # with-replica runs alternate, and the median of the rounds' ratios is reported.
    for round in $(seq "$ROUNDS"); do
        alone=$(set_rps "${sys}_p")
        t0=$(now_ms)
        attach "$sys"
        [ "$round" = 1 ] && SYNC_MS[$sys]=$(($(now_ms) - t0))
        [ "$(cli "${sys}_r" dbsize)" = "$(cli "${sys}_p" dbsize)" ] || { echo "$sys replica has $(cli "${sys}_r" dbsize) keys" >&2; exit 1; }
        read -r with catch_up <<<"$(with_replica "$sys")"
        CATCH_UP[$sys]+="$catch_up "
        RATIOS[$sys]+="$(ratio "$with" "$alone") "
        echo "$sys round $round: $alone rps alone, $with with a replica" >&2
        [ "$round" = "$ROUNDS" ] || detach "$sys"
    done
    WAIT_MS[$sys]=$(wait_ms "${sys}_p")
    stop "${sys}_r"
    stop "${sys}_p"
done
echo "RESULT full_sync_ms ${SYNC_MS[shoal]} ${SYNC_MS[redis]} $(ratio "${SYNC_MS[shoal]}" "${SYNC_MS[redis]}")"
# shellcheck disable=SC2086 # the ratios are words
echo "RESULT set_P16_replica $(median ${RATIOS[shoal]}) $(median ${RATIOS[redis]})" \
    "(median of $ROUNDS rounds; shoal ${RATIOS[shoal]}; redis ${RATIOS[redis]})"
# shellcheck disable=SC2086 # the times are words
echo "RESULT catch_up_ms $(median ${CATCH_UP[shoal]}) $(median ${CATCH_UP[redis]})" \
    "(shoal ${CATCH_UP[shoal]}; redis ${CATCH_UP[redis]})"
read -r shoal_p50 shoal_p99 <<<"${WAIT_MS[shoal]}"
read -r redis_p50 redis_p99 <<<"${WAIT_MS[redis]}"
echo "RESULT wait_ms_p50 $shoal_p50 $redis_p50"
echo "RESULT wait_ms_p99 $shoal_p99 $redis_p99"
