# Shared by the benchmark scripts (sourced from the repository root): builds shoal-server,
# checks for Redis's tools, makes a temporary folder that goes away with the child processes
# in PIDS on exit, and writes the key set both servers are loaded with.

cargo build --release --quiet --bin shoal-server
command -v redis-server >/dev/null && command -v redis-benchmark >/dev/null || {
    echo "needs redis-server and redis-benchmark (apt-get install redis-server redis-tools)" >&2
    exit 1
}

TMP=$(mktemp -d)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$TMP"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# A free TCP port whose cluster bus port (+10000, UDP) is free too.
free_port_with_bus() {
    python3 - <<'PY'
import socket
while True:
    s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]
    if port >= 55000:
        continue
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        u.bind(("127.0.0.1", port + 10000))
    except OSError:
        continue
    print(port)
    break
PY
}

now_ms() { date +%s%3N; }
best() { sort -n | head -1; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / b }'; }
# ready PORT: waits until a server answers PING there.
ready() {
    for _ in $(seq 5000); do
        redis-cli -p "$1" ping 2>/dev/null | grep -q PONG && return
        sleep 0.002
    done
    echo "server on $1 did not start" >&2
    exit 1
}

# write_keys N FILE: N SETs of key:I to I in 16 digits, in RESP, for redis-cli --pipe.
write_keys() {
    python3 - "$1" >"$2" <<'PY'
import sys
out = sys.stdout.buffer
for i in range(int(sys.argv[1])):
    k = b"key:%d" % i
    v = b"%016d" % i
    out.write(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$16\r\n%s\r\n" % (len(k), k, v))
PY
}
