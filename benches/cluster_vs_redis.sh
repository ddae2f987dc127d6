#!/usr/bin/env bash
# Cluster mode, shoal-server against redis-server 7 on loopback, side by side in one run: three
# masters of each made by redis-cli --cluster create, loaded with about KEYS keys of 16-byte
# values (default 100k, written by redis-benchmark --cluster).
#   RESULT cluster_set_P16 <shoal> <redis> <ratio>   redis-benchmark --cluster SET -P 16 (rps)
#   RESULT cluster_get_P16 <shoal> <redis> <ratio>   the same for GET
#   RESULT reshard_ms <shoal> <redis> <ratio>        redis-cli --cluster reshard of SLOTS slots
#                                                    (default 1000) from the first master to
#                                                    the second, keys and all
#   RESULT reshard_stall_ms_max / _p99 <shoal> <redis>   the longest (and 99th percentile)
#                                                    PING round trip to the source master
#                                                    during the reshard, one every ms: how long
#                                                    MIGRATE keeps its other clients waiting
#
#   benches/cluster_vs_redis.sh
#   KEYS=20000 SLOTS=200 benches/cluster_vs_redis.sh
set -euo pipefail
cd "$(dirname "$0")/.."

KEYS=${KEYS:-100000}
SLOTS=${SLOTS:-1000}

# shellcheck source=benches/lib.sh
source benches/lib.sh

declare -A BIN=([shoal]=target/release/shoal-server [redis]=$(command -v redis-server))
declare -A FIRST RESULT

cluster() { # name: starts three masters, makes them a cluster, sets FIRST[name]
    local name=$1 ports=() port
    for i in 1 2 3; do
        port=$(free_port_with_bus)
        mkdir -p "$TMP/$name$i"
        "${BIN[$name]}" --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
            --cluster-enabled yes --dir "$TMP/$name$i" --logfile "$TMP/$name$i.log" &
        PIDS+=($!)
        ready "$port"
        ports+=("127.0.0.1:$port")
    done
    redis-cli --cluster create "${ports[@]}" --cluster-yes >/dev/null
    FIRST[$name]=${ports[0]#127.0.0.1:}
    for _ in $(seq 500); do
        redis-cli -p "${FIRST[$name]}" cluster info | grep -q cluster_state:ok && break
        sleep 0.02
    done
    sleep 1 # every node learns every other's slots
}

rps() { # name test
    redis-benchmark --cluster -p "${FIRST[$1]}" -c 50 -n "$KEYS" -r "$KEYS" -d 16 -P 16 -t "$2" \
        --csv 2>/dev/null | awk -F'"' '/^"[A-Z]/ { print $4 }' | tail -1
}

# probe PORT FILE: PINGs PORT once a millisecond until FILE exists, then prints "max p99" ms.
probe() {
    python3 - "$1" "$2" <<'PY'
import os, socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
times = []
while not os.path.exists(sys.argv[2]):
    t0 = time.perf_counter()
    s.sendall(b"PING\r\n")
    got = b""
    while not got.endswith(b"\r\n"):
        got += s.recv(64)
    times.append((time.perf_counter() - t0) * 1000)
    time.sleep(0.001)
times.sort()
print("%.2f %.2f" % (times[-1], times[len(times) * 99 // 100]))
PY
}

reshard() { # name: "ms stall_max stall_p99"
    local port=${FIRST[$1]} from to start stop
    from=$(redis-cli -p "$port" cluster myid)
    to=$(redis-cli -p "$port" cluster nodes | awk '/master/ && !/myself/ { print $1; exit }')
    rm -f "$TMP/stop"
    probe "$port" "$TMP/stop" >"$TMP/probe" &
    local prober=$!
    start=$(now_ms)
    redis-cli --cluster reshard "127.0.0.1:$port" --cluster-from "$from" --cluster-to "$to" \
        --cluster-slots "$SLOTS" --cluster-yes >/dev/null
    stop=$(now_ms)
    touch "$TMP/stop"
    wait "$prober"
    echo "$((stop - start)) $(cat "$TMP/probe")"
}

for name in shoal redis; do
    cluster "$name"
    RESULT[$name.set]=$(rps "$name" set)
    RESULT[$name.get]=$(rps "$name" get)
    read -r ms max p99 < <(reshard "$name")
    RESULT[$name.reshard]=$ms RESULT[$name.max]=$max RESULT[$name.p99]=$p99
    echo "$name: set ${RESULT[$name.set]} get ${RESULT[$name.get]} rps; reshard $ms ms, stall max $max p99 $p99 ms" >&2
done

for t in set get; do
    echo "RESULT cluster_${t}_P16 ${RESULT[shoal.$t]} ${RESULT[redis.$t]} $(ratio "${RESULT[shoal.$t]}" "${RESULT[redis.$t]}")"
done
echo "RESULT reshard_ms ${RESULT[shoal.reshard]} ${RESULT[redis.reshard]} $(ratio "${RESULT[shoal.reshard]}" "${RESULT[redis.reshard]}")"
echo "RESULT reshard_stall_ms_max ${RESULT[shoal.max]} ${RESULT[redis.max]}"
echo "RESULT reshard_stall_ms_p99 ${RESULT[shoal.p99]} ${RESULT[redis.p99]}"
