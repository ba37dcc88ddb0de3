#!/bin/sh
# Side-by-side benchmark of corebox's etcd and Debian's etcd 3.4 (--enable-v2)
# on 127.0.0.1, each with a fresh data dir. Both run at once and every wrk
# run alternates between them (ROUNDS rounds, the best kept for each), so a
# busy shared machine disturbs both alike:
#   - PUT/s to distinct keys with 1, 16 and 64 connections, p50/p99 latency;
#   - GET/s of one key with 16 and 64 connections;
#   - peak RSS (VmHWM) after loading 100,000 keys of 100 bytes, and the data
#     dir size (du) at that point;
#   - start-up time to the first answered GET.
# Prints each figure and the ratio corebox/etcd. Prints figures only; never
# fails because a number is bad. Bounded: about 3 minutes with the defaults
# (2 rounds x 10 wrk runs x 5 s, plus loading KEYS keys into each server).
#
#   bench/store.sh                      COREBOX_BIN defaults to build/corebox
#   DURATION=10 ROUNDS=3 KEYS=100000 bench/store.sh
#
# Needs wrk, curl and /usr/bin/etcd (Debian's etcd-server).
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
COREBOX_BIN=${COREBOX_BIN:-$top/build/corebox}
ETCD_BIN=${ETCD_BIN:-/usr/bin/etcd}
DURATION=${DURATION:-5}
KEYS=${KEYS:-100000}
WRK_THREADS=${WRK_THREADS:-2}
ROUNDS=${ROUNDS:-2}

for tool in wrk curl "$ETCD_BIN" "$COREBOX_BIN"; do
	command -v "$tool" >/dev/null 2>&1 || { echo "store.sh: $tool not found" >&2; exit 1; }
done

work=$(mktemp -d /tmp/corebox-bench.XXXXXX)
server_pids=
cleanup() {
	for p in $server_pids; do
		kill -9 "$p" 2>/dev/null
	done
	rm -rf "$work"
}
trap cleanup EXIT INT TERM

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# wrk scripts: distinct keys per thread and request; a loader that stops
# each thread after its share of KEYS answered writes.
cat >"$work/put.lua" <<'EOF'
local threads = {}
local n = 0
function setup(thread)
	n = n + 1
	thread:set("tid", n)
end
function init(args)
	counter = 0
	value = string.rep("v", 100)
	body = "value=" .. value
	hdrs = { ["Content-Type"] = "application/x-www-form-urlencoded" }
	prefix = "/v2/keys/bench/" .. (args[1] or "p") .. "/t" .. tid .. "-"
	limit = tonumber(args[2] or "0")
	answered = 0
end
function request()
	counter = counter + 1
	return wrk.format("PUT", prefix .. counter, hdrs, body)
end
function response(status, headers, body)
	answered = answered + 1
	if limit > 0 and answered >= limit then
		wrk.thread:stop()
	end
end
EOF

# A loader writing exactly KEYS distinct keys over N connections.
cat >"$work/load.py" <<'EOF'
import asyncio, sys
port, total, conns = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
body = b"value=" + b"v" * 100
next_key = 0
async def worker():
    global next_key
    r, w = await asyncio.open_connection("127.0.0.1", port)
    while next_key < total:
        k = next_key
        next_key += 1
        w.write(b"PUT /v2/keys/bench/load/k%08d HTTP/1.1\r\nHost: b\r\n"
                b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n%s"
                % (k, len(body), body))
        head = await r.readuntil(b"\r\n\r\n")
        n = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                n = int(line.split(b":")[1])
        await r.readexactly(n)
        if not head.startswith(b"HTTP/1.1 20"):
            raise SystemExit("load: %r" % head[:40])
    w.close()
async def main():
    await asyncio.gather(*(worker() for _ in range(conns)))
asyncio.run(main())
EOF

# Starts a server and measures the time to its first answered GET: prints
# "PID MS". The server keeps running after this helper exits.
cat >"$work/start.py" <<'EOF'
import os, socket, subprocess, sys, time
port, log = int(sys.argv[1]), sys.argv[2]
t0 = time.monotonic()
p = subprocess.Popen(sys.argv[3:], stdin=subprocess.DEVNULL, stdout=open(log, "wb"),
                     stderr=subprocess.STDOUT, start_new_session=True)
req = b"GET /v2/keys/ HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n"
while time.monotonic() - t0 < 20:
    if p.poll() is not None:
        sys.exit("server exited: see %s" % log)
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=1)
        s.sendall(req)
        if s.recv(12).startswith(b"HTTP/1.1 200"):
            s.close()
            break
        s.close()
    except OSError:
        pass
    time.sleep(0.001)
print(p.pid, int((time.monotonic() - t0) * 1000))
EOF

# start KIND: starts a fresh server of that kind; sets pid_KIND, port_KIND,
# dir_KIND and the file KIND.startup (ms to the first answered GET).
start() {
	kind=$1
	port=$(free_port)
	pport=$(free_port)
	datadir="$work/$kind.data"
	rm -rf "$datadir"
	c="http://127.0.0.1:$port"
	p="http://127.0.0.1:$pport"
	set -- --name bench --data-dir "$datadir" --listen-client-urls "$c" --advertise-client-urls "$c" \
		--listen-peer-urls "$p" --initial-advertise-peer-urls "$p" --initial-cluster "bench=$p"
	if [ "$kind" = corebox ]; then
		set -- "$COREBOX_BIN" etcd "$@"
	else
		set -- "$ETCD_BIN" --enable-v2=true "$@"
	fi
	set -- $(python3 "$work/start.py" "$port" "$work/$kind.log" "$@")
	eval "pid_$kind=$1 port_$kind=$port dir_$kind=$datadir"
	echo "$2" >"$work/$kind.startup"
	server_pids="$server_pids $1"
}

stop() {
	eval "pid=\$pid_$1"
	kill "$pid" 2>/dev/null
	i=0
	while kill -0 "$pid" 2>/dev/null && [ $i -lt 500 ]; do
		sleep 0.01
		i=$((i + 1))
	done
	kill -9 "$pid" 2>/dev/null
}

# "rps p50_ms p99_ms" from wrk's output (latencies converted to ms)
parse_wrk() {
	awk '
	function ms(v) {
		if (v ~ /us$/) { sub(/us$/, "", v); return v / 1000 }
		if (v ~ /ms$/) { sub(/ms$/, "", v); return v + 0 }
		if (v ~ /s$/) { sub(/s$/, "", v); return v * 1000 }
		return v
	}
	/Requests\/sec:/ { rps = $2 }
	/^ +50%/ { p50 = ms($2) }
	/^ +99%/ { p99 = ms($2) }
	END { printf "%d %.3f %.3f\n", rps, p50, p99 }
	' "$work/wrk.out"
}

# run KIND WHAT CONNS TAG: one wrk run; keeps the best run per figure in
# KIND.WHAT.CONNS (the machine is shared: the best of ROUNDS is the least
# disturbed one, for both servers alike).
run() {
	kind=$1 what=$2 conns=$3 tag=$4
	eval "port=\$port_$kind"
	threads=$WRK_THREADS
	[ "$conns" -lt "$threads" ] && threads=$conns
	if [ "$what" = put ]; then
		wrk -t"$threads" -c"$conns" -d"${DURATION}s" --latency -s "$work/put.lua" "http://127.0.0.1:$port" -- "$tag" \
			>"$work/wrk.out" 2>&1
	else
		wrk -t"$threads" -c"$conns" -d"${DURATION}s" --latency "http://127.0.0.1:$port/v2/keys/bench/one" \
			>"$work/wrk.out" 2>&1
	fi
	new=$(parse_wrk)
	f="$work/$kind.$what.$conns"
	if [ ! -f "$f" ] || [ "${new%% *}" -gt "$(cut -d' ' -f1 "$f")" ]; then
		echo "$new" >"$f"
	fi
}

echo "corebox: $COREBOX_BIN"
echo "etcd:    $($ETCD_BIN --version | head -1)"
echo "wrk runs of ${DURATION}s, best of $ROUNDS alternating rounds; $KEYS keys loaded"
echo

start corebox
start etcd
sleep 1 # etcd 3.4 writes its member attributes right after start
for kind in corebox etcd; do
	eval "port=\$port_$kind"
	curl -sf -o /dev/null -XPUT "http://127.0.0.1:$port/v2/keys/bench/one" -d value=hello
done
r=1
while [ $r -le "$ROUNDS" ]; do
	for c in 1 16 64; do
		run corebox put "$c" "r$r-c$c"
		run etcd put "$c" "r$r-c$c"
	done
	for c in 16 64; do
		run corebox get "$c" x
		run etcd get "$c" x
	done
	r=$((r + 1))
done
stop corebox
stop etcd

# Fresh servers for the memory and disk figures: exactly KEYS keys of 100
# bytes each, written over 64 keep-alive connections.
for kind in corebox etcd; do
	start "$kind"
	sleep 1
	eval "port=\$port_$kind pid=\$pid_$kind dir=\$dir_$kind"
	python3 "$work/load.py" "$port" "$KEYS" 64 >"$work/$kind.load" 2>&1
	awk '/VmHWM/ { print $2 }' "/proc/$pid/status" >"$work/$kind.rss"
	du -sk "$dir" | awk '{ print $1 }' >"$work/$kind.du"
	stop "$kind"
done

ratio() {
	awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 == 0) print "-"; else printf "%.2f", a / b }'
}

printf '%-28s %14s %14s %10s\n' "figure" "corebox" "etcd 3.4" "cb/etcd"
for c in 1 16 64; do
	set -- $(cat "$work/corebox.put.$c") ; cr=$1 cp50=$2 cp99=$3
	set -- $(cat "$work/etcd.put.$c") ; er=$1 ep50=$2 ep99=$3
	printf '%-28s %14s %14s %10s\n' "PUT/s, $c conn" "$cr" "$er" "$(ratio "$cr" "$er")"
	printf '%-28s %14s %14s %10s\n' "  PUT p50 ms, $c conn" "$cp50" "$ep50" "$(ratio "$cp50" "$ep50")"
	printf '%-28s %14s %14s %10s\n' "  PUT p99 ms, $c conn" "$cp99" "$ep99" "$(ratio "$cp99" "$ep99")"
done
for c in 16 64; do
	set -- $(cat "$work/corebox.get.$c") ; cr=$1 cp50=$2 cp99=$3
	set -- $(cat "$work/etcd.get.$c") ; er=$1 ep50=$2 ep99=$3
	printf '%-28s %14s %14s %10s\n' "GET/s one key, $c conn" "$cr" "$er" "$(ratio "$cr" "$er")"
	printf '%-28s %14s %14s %10s\n' "  GET p99 ms, $c conn" "$cp99" "$ep99" "$(ratio "$cp99" "$ep99")"
done
cr=$(cat "$work/corebox.rss"); er=$(cat "$work/etcd.rss")
printf '%-28s %14s %14s %10s\n' "peak RSS KiB, $KEYS keys" "$cr" "$er" "$(ratio "$cr" "$er")"
cr=$(cat "$work/corebox.du"); er=$(cat "$work/etcd.du")
printf '%-28s %14s %14s %10s\n' "data dir KiB, $KEYS keys" "$cr" "$er" "$(ratio "$cr" "$er")"
cr=$(cat "$work/corebox.startup"); er=$(cat "$work/etcd.startup")
printf '%-28s %14s %14s %10s\n' "start-up to first GET, ms" "$cr" "$er" "$(ratio "$cr" "$er")"
