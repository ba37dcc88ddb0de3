"""corebox etcd's command line, environment, identity and lifecycle as etcd
2.3 has them: flag errors and exit codes, ETCD_* variables, the single-member
bootstrap checks, member and cluster IDs derived as etcd derives them, the
data dir winning on restart, graceful SIGTERM/SIGINT, the peer listener.

Servers listen on 127.0.0.1 only, every wait is bounded, and only processes
started here are signalled.
"""

import hashlib
import http.client
import json
import os
import signal
import socket
import subprocess
import tempfile
import time

import pytest

import etcdproc

pytestmark = pytest.mark.skipif(etcdproc.kind_unavailable("corebox") is not None,
                                reason=str(etcdproc.kind_unavailable("corebox")))

RUN_TIMEOUT_S = 20


def etcd_argv(*args):
    return [etcdproc.corebox_bin(), "etcd"] + list(args)


def run(args, env=None, cwd=None, timeout=RUN_TIMEOUT_S):
    e = {k: v for k, v in os.environ.items() if not k.startswith("ETCD")}
    e.update(env or {})
    p = subprocess.run(etcd_argv(*args), stdin=subprocess.DEVNULL, capture_output=True,
                       env=e, cwd=cwd, timeout=timeout)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def local_args(tmp, name="default", cport=None, pport=None):
    cport = cport or etcdproc.free_port()
    pport = pport or etcdproc.free_port()
    c, p = "http://127.0.0.1:%d" % cport, "http://127.0.0.1:%d" % pport
    return ["--name", name, "--data-dir", os.path.join(tmp, "data"),
            "--listen-client-urls", c, "--advertise-client-urls", c,
            "--listen-peer-urls", p, "--initial-advertise-peer-urls", p,
            "--initial-cluster", "%s=%s" % (name, p)], cport, pport


class Proc:
    """A server started with an explicit argv (and env, cwd)."""

    def __init__(self, args, port, env=None, cwd=None):
        e = {k: v for k, v in os.environ.items() if not k.startswith("ETCD")}
        e.update(env or {})
        self.port = port
        self.log = tempfile.TemporaryFile()
        self.p = subprocess.Popen(etcd_argv(*args), stdin=subprocess.DEVNULL, stdout=self.log,
                                  stderr=subprocess.STDOUT, env=e, cwd=cwd, start_new_session=True)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.p.poll() is not None:
                raise AssertionError("exited %s: %s" % (self.p.returncode, self.output()))
            try:
                st, _, _ = etcdproc.http_request(port, "GET", "/version", timeout=1)
                if st == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise AssertionError("not ready: " + self.output())

    def output(self):
        self.log.seek(0)
        return self.log.read().decode("utf-8", "replace")

    def req(self, method, path, body=None, headers=None, port=None):
        if body is not None and headers is None:
            headers = {"Content-Type": "application/x-www-form-urlencoded"}
        return etcdproc.http_request(port or self.port, method, path, body, headers)

    def stop(self, sig=signal.SIGTERM):
        if self.p.poll() is None:
            self.p.send_signal(sig)
            try:
                return self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(5)
                raise AssertionError("did not stop on %s" % sig)
        return self.p.returncode


@pytest.fixture
def tmp():
    d = tempfile.mkdtemp(prefix="corebox-it-flags-")
    yield d
    subprocess.run(["rm", "-rf", d], check=False)


def test_version():
    rc, out, _ = run(["--version"])
    assert rc == 0
    assert out.startswith("etcd Version: 2.3.8\nGit SHA: corebox-")
    assert "Go OS/Arch: linux/amd64" in out


def test_unknown_flag_exits_2():
    rc, out, err = run(["--no-such-flag"])
    assert rc == 2
    assert "flag provided but not defined: -no-such-flag" in err
    assert "usage: etcd [flags]" in out + err


def test_positional_argument_is_rejected(tmp):
    args, _, _ = local_args(tmp)
    rc, out, err = run(args + ["extra"])
    assert rc == 1
    assert "'extra' is not a valid flag" in out + err


def test_bad_url_and_bad_values(tmp):
    rc, _, err = run(["--listen-client-urls", "localhost:2379"])
    assert rc == 2
    assert 'invalid value "localhost:2379" for flag -listen-client-urls: URL scheme must be http or https' in err
    rc, _, err = run(["--listen-peer-urls", "http://127.0.0.1:1/path"])
    assert rc == 2 and "URL must not contain a path" in err
    rc, _, err = run(["--initial-cluster-state", "maybe"])
    assert rc == 2 and 'invalid value "maybe" for flag -initial-cluster-state' in err
    rc, _, err = run(["--snapshot-count", "many"])
    assert rc == 2
    rc, _, err = run(["--peers", "a,b"])
    assert rc == 2 and "no longer supported" in err


def test_listen_without_advertise(tmp):
    rc, out, err = run(["--listen-client-urls", "http://127.0.0.1:%d" % etcdproc.free_port(),
                        "--data-dir", os.path.join(tmp, "d")])
    assert rc == 1
    assert "-advertise-client-urls is required when -listen-client-urls is set explicitly" in out + err


def test_election_timeout_checks(tmp):
    args, _, _ = local_args(tmp)
    rc, out, err = run(args + ["--heartbeat-interval", "300", "--election-timeout", "1000"])
    assert rc == 1 and "should be at least as 5 times as" in out + err
    rc, out, err = run(args + ["--election-timeout", "60000"])
    assert rc == 1 and "is too long" in out + err


def test_bootstrap_checks(tmp):
    args, cport, pport = local_args(tmp)
    p = "http://127.0.0.1:%d" % pport
    # This member's name is not in the initial cluster.
    a = list(args)
    a[a.index("--initial-cluster") + 1] = "other=%s" % p
    rc, out, err = run(a)
    assert rc == 1
    assert "find local name" in out + err and "default" in out + err
    # Its URLs do not match the advertised ones.
    a[a.index("--initial-cluster") + 1] = "default=http://127.0.0.1:1"
    rc, out, err = run(a)
    assert rc == 1 and "--initial-cluster must include default=%s" % p in out + err
    # Clustering needs Raft, which this single-member server does not run.
    a[a.index("--initial-cluster") + 1] = "default=%s,b=http://127.0.0.1:2" % p
    rc, out, err = run(a)
    assert rc == 1 and "single member" in out + err
    # Joining an existing cluster without data.
    rc, out, err = run(args + ["--initial-cluster-state", "existing"])
    assert rc == 1 and "existing" in out + err
    # Duplicate URLs.
    a[a.index("--initial-cluster") + 1] = "default=%s,b=%s" % (p, p)
    rc, out, err = run(a)
    assert rc == 1 and "duplicate url" in out + err
    assert not os.path.exists(os.path.join(tmp, "data", "member", "wal"))


def etcd_ids(peer_urls, token):
    b = "".join(sorted(peer_urls)).encode() + token.encode()
    mid = hashlib.sha1(b).digest()[:8]
    cid = hashlib.sha1(mid).digest()[:8]
    return "%x" % int.from_bytes(mid, "big"), "%x" % int.from_bytes(cid, "big")


def test_ids_as_etcd_and_data_dir_wins(tmp):
    args, cport, pport = local_args(tmp)
    s = Proc(args + ["--initial-cluster-token", "tok-1"], cport)
    try:
        mid, cid = etcd_ids(["http://127.0.0.1:%d" % pport], "tok-1")
        st, hdrs, body = s.req("GET", "/v2/members")
        assert st == 200
        assert dict(hdrs)["X-Etcd-Cluster-Id"] == cid
        m = json.loads(body)["members"]
        assert m == [{"id": mid, "name": "default", "peerURLs": ["http://127.0.0.1:%d" % pport],
                      "clientURLs": ["http://127.0.0.1:%d" % cport]}]
        st, _, body = s.req("GET", "/v2/stats/self")
        assert json.loads(body)["id"] == mid and json.loads(body)["state"] == "StateLeader"
        assert json.loads(s.req("GET", "/v2/stats/leader")[2]) == {"leader": mid, "followers": {}}
        # The peer listener answers etcd's peer endpoints.
        st, hdrs, body = s.req("GET", "/members", port=pport)
        assert st == 200 and json.loads(body)[0]["id"] == int(mid, 16)
        st, _, body = s.req("GET", "/version", port=pport)
        assert st == 200 and json.loads(body)["etcdserver"] == "2.3.8"
        assert s.req("PUT", "/v2/keys/k", "value=1")[0] == 201
        assert s.stop() == 0
    finally:
        s.stop(signal.SIGKILL)
    # Restart with another token and cluster flags: the data dir wins.
    a = list(args)
    a[a.index("--initial-cluster") + 1] = "somebody=http://127.0.0.1:9"
    s = Proc(a + ["--initial-cluster-token", "tok-2"], cport)
    try:
        st, hdrs, body = s.req("GET", "/v2/keys/k")
        assert st == 200 and dict(hdrs)["X-Etcd-Cluster-Id"] == cid
        assert "restarting member" in s.output()
    finally:
        s.stop()


def test_env_and_default_data_dir(tmp):
    cport, pport = etcdproc.free_port(), etcdproc.free_port()
    c, p = "http://127.0.0.1:%d" % cport, "http://127.0.0.1:%d" % pport
    env = {"ETCD_NAME": "envnode", "ETCD_LISTEN_CLIENT_URLS": c, "ETCD_ADVERTISE_CLIENT_URLS": c,
           "ETCD_LISTEN_PEER_URLS": p, "ETCD_INITIAL_ADVERTISE_PEER_URLS": p}
    # Without --initial-cluster, a renamed member defaults to its own name.
    env["ETCD_INITIAL_CLUSTER"] = "envnode=%s" % p
    s = Proc([], cport, env=env, cwd=tmp)
    try:
        assert os.path.isdir(os.path.join(tmp, "envnode.etcd", "member", "wal"))
        st, _, body = s.req("GET", "/v2/members")
        assert json.loads(body)["members"][0]["name"] == "envnode"
    finally:
        assert s.stop(signal.SIGINT) == 0
    # The command line wins over the environment, single dash works.
    args, cport2, _ = local_args(tmp, name="cli")
    args = [a.replace("--", "-", 1) if a.startswith("--") else a for a in args]
    s = Proc(args, cport2, env={"ETCD_NAME": "ignored"})
    try:
        st, _, body = s.req("GET", "/v2/members")
        assert json.loads(body)["members"][0]["name"] == "cli"
    finally:
        s.stop()


def test_graceful_stop_answers_and_exits_0(tmp):
    args, cport, _ = local_args(tmp)
    s = Proc(args, cport)
    for i in range(50):
        assert s.req("PUT", "/v2/keys/g/%d" % i, "value=%d" % i)[0] == 201
    rc = s.stop(signal.SIGTERM)
    assert rc == 0, s.output()
    assert "shutting down" in s.output()
    s = Proc(args, cport)
    try:
        st, _, body = s.req("GET", "/v2/keys/g?recursive=true")
        assert len(json.loads(body)["node"]["nodes"]) == 50
    finally:
        s.stop()


def test_data_dir_is_locked(tmp):
    args, cport, _ = local_args(tmp)
    s = Proc(args, cport)
    try:
        args2, _, _ = local_args(tmp)
        rc, out, err = run(args2)
        assert rc == 1, out + err
    finally:
        s.stop()


def test_cors_list(tmp):
    args, cport, _ = local_args(tmp)
    s = Proc(args + ["--cors", "http://a.example,http://b.example"], cport)
    try:
        _, hdrs, _ = s.req("GET", "/v2/keys/", headers={"Origin": "http://b.example"})
        assert dict(hdrs).get("Access-Control-Allow-Origin") == "http://b.example"
        _, hdrs, _ = s.req("GET", "/v2/keys/", headers={"Origin": "http://evil.example"})
        assert "Access-Control-Allow-Origin" not in dict(hdrs)
        st, hdrs, body = s.req("OPTIONS", "/v2/keys/x", headers={"Origin": "http://a.example"})
        assert st == 200 and body == b""
        assert dict(hdrs)["Access-Control-Allow-Methods"] == "POST, GET, OPTIONS, PUT, DELETE"
    finally:
        s.stop()


def test_several_urls_ipv4_and_ipv6(tmp):
    if not socket_has_ipv6():
        pytest.skip("no IPv6 loopback")
    p4, p6, pp = etcdproc.free_port(), etcdproc.free_port(), etcdproc.free_port()
    urls = "http://127.0.0.1:%d,http://[::1]:%d" % (p4, p6)
    peer = "http://127.0.0.1:%d" % pp
    s = Proc(["--data-dir", os.path.join(tmp, "d"), "--listen-client-urls", urls,
              "--advertise-client-urls", urls, "--listen-peer-urls", peer,
              "--initial-advertise-peer-urls", peer, "--initial-cluster", "default=%s" % peer], p4)
    try:
        assert s.req("PUT", "/v2/keys/six", "value=6")[0] == 201
        conn = http.client.HTTPConnection("::1", p6, timeout=5)
        conn.request("GET", "/v2/keys/six")
        r = conn.getresponse()
        assert r.status == 200 and json.loads(r.read())["node"]["value"] == "6"
        conn.close()
        st, _, body = s.req("GET", "/v2/machines")
        # Sorted and joined as etcd's cluster.ClientURLs.
        assert body.decode() == ", ".join(sorted(["http://127.0.0.1:%d" % p4, "http://[::1]:%d" % p6]))
    finally:
        s.stop()


def socket_has_ipv6():
    try:
        x = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        x.bind(("::1", 0))
        x.close()
        return True
    except OSError:
        return False


def test_metrics_count_requests_and_fsyncs(tmp):
    args, cport, _ = local_args(tmp)
    s = Proc(args, cport)
    try:
        for i in range(5):
            assert s.req("PUT", "/v2/keys/m%d" % i, "value=x")[0] == 201
        assert s.req("GET", "/v2/keys/nope")[0] == 404
        st, hdrs, body = s.req("GET", "/metrics")
        assert st == 200
        assert dict(hdrs)["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
        text = body.decode()

        def value(line_prefix):
            for line in text.splitlines():
                if line.startswith(line_prefix + " "):
                    return float(line.split()[-1])
            raise AssertionError("%s missing:\n%s" % (line_prefix, text))
        assert value('etcd_http_received_total{method="PUT"}') == 5
        assert value('etcd_http_failed_total{code="404",method="GET"}') == 1
        assert value('corebox_http_responses_total{code="201",method="PUT"}') == 5
        assert value("etcd_disk_wal_fsync_duration_seconds_count") >= 1
        assert value('etcd_disk_wal_fsync_duration_seconds_bucket{le="+Inf"}') == \
            value("etcd_disk_wal_fsync_duration_seconds_count")
        assert value('etcd_http_successful_duration_seconds_count{method="PUT"}') == 5
        assert value("corebox_store_keys") >= 6
        assert value("etcd_debugging_store_watchers") == 0
        assert value("etcd_server_proposals_pending") == 0
    finally:
        s.stop()


def test_force_new_cluster_after_backup(tmp):
    """etcdctl backup gives the data a new member ID; --force-new-cluster
    then makes a one-member cluster of it with etcd's default peer URL, the
    old member removed, and every key kept."""
    applets = etcdproc.corebox_applets() or []
    if "etcdctl" not in applets:
        pytest.skip("no etcdctl applet to make a backup with")
    args, cport, pport = local_args(tmp)
    s = Proc(args, cport)
    old_id = json.loads(s.req("GET", "/v2/members")[2])["members"][0]["id"]
    for i in range(10):
        assert s.req("PUT", "/v2/keys/b/%d" % i, "value=%d" % i)[0] == 201
    assert s.stop() == 0
    backup = os.path.join(tmp, "backup")
    p = subprocess.run([etcdproc.corebox_bin(), "etcdctl", "backup", "--data-dir",
                        os.path.join(tmp, "data"), "--backup-dir", backup],
                       capture_output=True, timeout=RUN_TIMEOUT_S)
    assert p.returncode == 0, p.stderr
    a = list(args)
    a[a.index("--data-dir") + 1] = backup
    s = Proc(a + ["--force-new-cluster"], cport)
    try:
        members = json.loads(s.req("GET", "/v2/members")[2])["members"]
        assert len(members) == 1
        m = members[0]
        assert m["id"] != old_id
        assert m["peerURLs"] == ["http://localhost:2380"]
        assert m["name"] == "default" and m["clientURLs"] == ["http://127.0.0.1:%d" % cport]
        st, _, body = s.req("GET", "/v2/keys/b?recursive=true")
        assert st == 200 and len(json.loads(body)["node"]["nodes"]) == 10
        assert s.stop() == 0
    finally:
        s.stop(signal.SIGKILL)
    # The new membership is in the log: a plain restart keeps it.
    s = Proc(a, cport)
    try:
        members = json.loads(s.req("GET", "/v2/members")[2])["members"]
        assert [x["id"] for x in members] == [m["id"]]
    finally:
        s.stop()
