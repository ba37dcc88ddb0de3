#!/bin/sh
# etcdctl start-up cost: N sequential `etcdctl get /key` runs (as a shell
# script looping over etcdctl does) with corebox's etcdctl and with Debian's
# etcdctl (ETCDCTL_API=2), against one server, and the ratio of the two.
# Target: corebox's loop takes at most a tenth of Debian's.
#
# Usage: bench/etcdctl.sh [N]        (default 1000)
# Environment:
#   COREBOX_BIN   corebox binary (default: build/corebox next to this script)
#   ETCDCTL_BIN   the original (default /usr/bin/etcdctl)
#   ETCD_BIN      server started for the run (default /usr/bin/etcd, with
#                 --enable-v2=true); set BENCH_ENDPOINT to use a running one
#   BENCH_SERVER  "etcd" (Debian's, default) or "corebox" (corebox etcd)
#   BENCH_ENDPOINT  an already running server's client URL: nothing is started
#
# The server listens on 127.0.0.1 only, on free ports, with a temporary data
# directory; both are removed on exit. Prints figures, never fails on them.
set -eu

N=${1:-1000}
HERE=$(cd "$(dirname "$0")" && pwd)
COREBOX_BIN=${COREBOX_BIN:-$HERE/../build/corebox}
ETCDCTL_BIN=${ETCDCTL_BIN:-/usr/bin/etcdctl}
ETCD_BIN=${ETCD_BIN:-/usr/bin/etcd}
BENCH_SERVER=${BENCH_SERVER:-etcd}

case "$N" in
''|*[!0-9]*) echo "usage: $0 [N]" >&2; exit 2 ;;
esac
for b in "$COREBOX_BIN" "$ETCDCTL_BIN"; do
	[ -x "$b" ] || { echo "$b: not found or not executable" >&2; exit 2; }
done

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

TMP=$(mktemp -d /tmp/etcdctl-bench.XXXXXX)
PID=
cleanup() {
	if [ -n "$PID" ]; then
		kill "$PID" 2>/dev/null || true
		wait "$PID" 2>/dev/null || true
	fi
	rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

if [ -n "${BENCH_ENDPOINT:-}" ]; then
	EP=$BENCH_ENDPOINT
else
	CP=$(free_port)
	PP=$(free_port)
	EP=http://127.0.0.1:$CP
	PEER=http://127.0.0.1:$PP
	set -- --name bench --data-dir "$TMP/data" --listen-client-urls "$EP" --advertise-client-urls "$EP" \
		--listen-peer-urls "$PEER" --initial-advertise-peer-urls "$PEER" --initial-cluster "bench=$PEER"
	if [ "$BENCH_SERVER" = corebox ]; then
		"$COREBOX_BIN" etcd "$@" >"$TMP/server.log" 2>&1 &
	else
		[ -x "$ETCD_BIN" ] || { echo "$ETCD_BIN: not found" >&2; exit 2; }
		"$ETCD_BIN" --enable-v2=true "$@" >"$TMP/server.log" 2>&1 &
	fi
	PID=$!
	i=0
	until "$COREBOX_BIN" etcdctl --endpoints "$EP" set /key value >/dev/null 2>&1; do
		i=$((i + 1))
		if [ $i -ge 100 ]; then
			echo "server did not come up; log:" >&2
			cat "$TMP/server.log" >&2
			exit 1
		fi
		sleep 0.1
	done
fi
"$COREBOX_BIN" etcdctl --endpoints "$EP" set /key value >/dev/null

# Elapsed seconds of N runs of "$@" (output discarded; any failure stops the bench).
run_loop() {
	start=$(date +%s%N)
	i=0
	while [ $i -lt "$N" ]; do
		"$@" >/dev/null || { echo "run $i of: $* failed" >&2; exit 1; }
		i=$((i + 1))
	done
	end=$(date +%s%N)
	echo $(( (end - start) / 1000000 ))
}

# One warm-up run of each so both start with the page cache warm.
"$COREBOX_BIN" etcdctl --endpoints "$EP" get /key >/dev/null
ETCDCTL_API=2 "$ETCDCTL_BIN" --endpoints "$EP" get /key >/dev/null

export ETCDCTL_API=2
COREBOX_MS=$(run_loop "$COREBOX_BIN" etcdctl --endpoints "$EP" get /key)
DEBIAN_MS=$(run_loop "$ETCDCTL_BIN" --endpoints "$EP" get /key)

echo "server: $BENCH_SERVER ($EP), $N sequential 'etcdctl get /key' runs"
printf 'corebox etcdctl: %6d ms total, %7.3f ms per run\n' "$COREBOX_MS" "$(echo "$COREBOX_MS / $N" | bc -l)"
printf 'Debian etcdctl:  %6d ms total, %7.3f ms per run\n' "$DEBIAN_MS" "$(echo "$DEBIAN_MS / $N" | bc -l)"
if [ "$DEBIAN_MS" -gt 0 ]; then
	printf 'ratio corebox/Debian: %.3f (target <= 0.100)\n' "$(echo "$COREBOX_MS / $DEBIAN_MS" | bc -l)"
fi
