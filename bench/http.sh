#!/bin/sh
# bench/http.sh: requests per second of corebox's HTTP server against nginx
# for the trivial response (etcd's GET /version), side by side.
#
# Starts `$COREBOX_BIN etcd` and Debian's nginx (one worker, `return 200`
# with the same JSON body and Content-Type, config in a temporary directory),
# both on 127.0.0.1 with free ports, and runs wrk against each at 1, 16 and
# 64 connections. Prints a table and the corebox/nginx ratio per row. A
# benchmark, not a test: it never fails on the figures.
#
# Environment: COREBOX_BIN (default build/corebox), BENCH_SECONDS per run
# (default 10), BENCH_CONNS (default "1 16 64").
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
bin=${COREBOX_BIN:-$top/build/corebox}
secs=${BENCH_SECONDS:-10}
conns=${BENCH_CONNS:-"1 16 64"}
body='{"etcdserver":"2.3.8","etcdcluster":"2.3.0"}'

die() {
	echo "bench/http.sh: $*" >&2
	exit 1
}

command -v wrk >/dev/null 2>&1 || die "wrk is not installed (apt-get install wrk)"
nginx=$(command -v nginx 2>/dev/null || echo /usr/sbin/nginx)
[ -x "$nginx" ] || die "nginx is not installed (apt-get install nginx-light)"
[ -x "$bin" ] || die "$bin not found: build corebox first or set COREBOX_BIN"
command -v python3 >/dev/null 2>&1 || die "python3 is needed to pick free ports"

tmp=$(mktemp -d /tmp/corebox-bench-http.XXXXXX)
cb_pid=
ng_pid=
cleanup() {
	rc=$?
	set +e
	trap - EXIT
	if [ -n "$cb_pid" ]; then kill "$cb_pid" 2>/dev/null; wait "$cb_pid" 2>/dev/null; fi
	if [ -n "$ng_pid" ]; then kill "$ng_pid" 2>/dev/null; wait "$ng_pid" 2>/dev/null; fi
	rm -rf "$tmp"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Waits up to 10 s for GET url to return the body while process pid lives;
# returns 1 if it never does.
wait_ready() {
	python3 - "$1" "$2" "$body" <<'EOF'
import os, sys, time, urllib.request
url, pid, want = sys.argv[1], int(sys.argv[2]), sys.argv[3]
end = time.monotonic() + 10
while time.monotonic() < end:
    try:
        os.kill(pid, 0)
    except OSError:
        sys.exit(1)
    try:
        if urllib.request.urlopen(url, timeout=1).read().decode() == want:
            sys.exit(0)
    except Exception:
        pass
    time.sleep(0.1)
sys.exit(1)
EOF
}

# Requests/sec from one wrk run (threads <= connections, at most 2: two cores).
rps() {
	c=$1
	t=2
	[ "$c" -lt 2 ] && t=1
	wrk -t"$t" -c"$c" -d"${secs}s" "$2" 2>/dev/null | awk '/^Requests\/sec:/ { print $2 }'
}

cb_port=$(free_port)
cb_peer=$(free_port)
ng_port=$(free_port)

"$bin" etcd --name bench --data-dir "$tmp/etcd" \
	--listen-client-urls "http://127.0.0.1:$cb_port" \
	--advertise-client-urls "http://127.0.0.1:$cb_port" \
	--listen-peer-urls "http://127.0.0.1:$cb_peer" \
	--initial-advertise-peer-urls "http://127.0.0.1:$cb_peer" \
	--initial-cluster "bench=http://127.0.0.1:$cb_peer" \
	>"$tmp/etcd.log" 2>&1 &
cb_pid=$!
if ! wait_ready "http://127.0.0.1:$cb_port/version" "$cb_pid"; then
	echo "bench/http.sh: corebox's etcd applet did not answer GET /version with $body" >&2
	echo "(the etcd applet does not exist yet or failed to start; its log:)" >&2
	sed 's/^/  /' "$tmp/etcd.log" | tail -n 20 >&2
	exit 1
fi

mkdir -p "$tmp/nginx"
cat >"$tmp/nginx/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/error.log;
events { worker_connections 1024; }
http {
	access_log off;
	client_body_temp_path $tmp/nginx/body;
	proxy_temp_path $tmp/nginx/proxy;
	fastcgi_temp_path $tmp/nginx/fastcgi;
	uwsgi_temp_path $tmp/nginx/uwsgi;
	scgi_temp_path $tmp/nginx/scgi;
	server {
		listen 127.0.0.1:$ng_port;
		location / {
			default_type application/json;
			return 200 '$body';
		}
	}
}
EOF
"$nginx" -p "$tmp/nginx" -e "$tmp/nginx/error.log" -c "$tmp/nginx/nginx.conf" >"$tmp/nginx.out" 2>&1 &
ng_pid=$!
if ! wait_ready "http://127.0.0.1:$ng_port/version" "$ng_pid"; then
	echo "bench/http.sh: nginx did not start:" >&2
	cat "$tmp/nginx.out" "$tmp/nginx/error.log" >&2 2>/dev/null
	exit 1
fi

echo "GET /version, wrk ${secs}s per run, 127.0.0.1 ($(nproc) cores)"
printf '%-6s %14s %14s %8s\n' conns corebox_rps nginx_rps ratio
for c in $conns; do
	a=$(rps "$c" "http://127.0.0.1:$cb_port/version")
	b=$(rps "$c" "http://127.0.0.1:$ng_port/version")
	printf '%-6s %14s %14s %8s\n' "$c" "${a:-n/a}" "${b:-n/a}" \
		"$(awk -v a="${a:-0}" -v b="${b:-0}" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }')"
done
