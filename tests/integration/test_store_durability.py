"""Durability of corebox's etcd: what was answered survives a clean stop, a
SIGKILL at any moment, a torn WAL tail and snapshots with purging, and a
corrupt WAL stops the server instead of serving wrong data.

Each test starts its own server on 127.0.0.1 (etcdproc), bounded in requests
and time, and never touches a process it did not start.
"""

import http.client
import json
import os
import random
import re
import signal
import socket
import struct
import subprocess
import threading
import time

import pytest

import etcdproc

pytestmark = pytest.mark.skipif(etcdproc.kind_unavailable("corebox") is not None,
                                reason=str(etcdproc.kind_unavailable("corebox")))

WAL_RECORD_HEADER = 12
WAL_REC_ENTRY = 5


def keys_put(srv, key, value, **params):
    body = "value=%s" % value
    qs = "&".join("%s=%s" % kv for kv in params.items())
    path = "/v2/keys%s%s" % (key, "?" + qs if qs else "")
    return srv.request("PUT", path, body=body,
                       headers={"Content-Type": "application/x-www-form-urlencoded"})


def keys_get(srv, key, **params):
    qs = "&".join("%s=%s" % kv for kv in params.items())
    st, hdrs, body = srv.request("GET", "/v2/keys%s%s" % (key, "?" + qs if qs else ""))
    return st, dict(hdrs), json.loads(body) if body else None


def snapshot_state(srv):
    """The whole visible tree (sorted) and the store index."""
    st, hdrs, body = keys_get(srv, "/", recursive="true", sorted="true")
    assert st == 200
    node = body["node"]
    # ttl counts down between two reads; expiration is the stable fact.
    def strip(n):
        n.pop("ttl", None)
        for c in n.get("nodes", []):
            strip(c)
    strip(node)
    return node, int(hdrs["X-Etcd-Index"])


def hard_kill_and_start(srv):
    srv.kill()
    srv._spawn()
    srv.wait_ready()


def wal_files(srv):
    d = os.path.join(srv.data_dir, "member", "wal")
    return sorted(os.path.join(d, f) for f in os.listdir(d) if f.endswith(".wal"))


def wal_records(path):
    """(offset, type, length) of every record up to the zero-filled tail."""
    with open(path, "rb") as f:
        data = f.read()
    recs, off = [], 0
    while off + WAL_RECORD_HEADER <= len(data):
        crc, length, typ = struct.unpack_from("<IIB", data, off)
        if crc == 0 and length == 0 and typ == 0:
            break
        recs.append((off, typ, length))
        off += WAL_RECORD_HEADER + length
    return recs


def populate(srv, n=30):
    for i in range(n):
        st, _, _ = keys_put(srv, "/dur/k%03d" % i, "v%d" % i)
        assert st in (200, 201)
    assert keys_put(srv, "/dur/dir", "", dir="true")[0] == 201
    assert keys_put(srv, "/dur/ttl", "t", ttl="3600")[0] == 201
    st, _, _ = srv.request("POST", "/v2/keys/dur/queue", body="value=q1",
                           headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert st == 201
    st, _, _ = srv.request("DELETE", "/v2/keys/dur/k000")
    assert st == 200
    assert keys_put(srv, "/dur/k001", "cas", prevValue="v1")[0] == 200


def test_clean_restart_recovers_state_and_indexes(make_server):
    srv = make_server("corebox")
    populate(srv)
    before, index = snapshot_state(srv)
    srv.restart()
    after, index2 = snapshot_state(srv)
    assert after == before
    # The restarted member publishes its attributes again, as etcd does:
    # exactly one more store index.
    assert index2 == index + 1
    # Writes continue from there.
    st, hdrs, body = keys_put(srv, "/dur/next", "n")
    assert st == 201
    assert json.loads(body)["node"]["modifiedIndex"] == index2 + 1


def test_sigkill_loses_nothing_answered(make_server):
    srv = make_server("corebox")
    populate(srv)
    before, index = snapshot_state(srv)
    hard_kill_and_start(srv)
    after, index2 = snapshot_state(srv)
    assert after == before
    assert index2 == index + 1


def test_raft_term_grows_per_start(make_server):
    srv = make_server("corebox")
    _, hdrs, _ = keys_get(srv, "/")
    term = int(hdrs["X-Raft-Term"])
    assert term == 2  # a new member's first term as leader, as etcd
    srv.restart()
    _, hdrs, _ = keys_get(srv, "/")
    assert int(hdrs["X-Raft-Term"]) == term + 1


def test_torn_tail_is_truncated_and_logged(make_server):
    srv = make_server("corebox")
    for i in range(20):
        assert keys_put(srv, "/torn/k%02d" % i, "v%d" % i)[0] in (200, 201)
    srv.stop()
    last = wal_files(srv)[-1]
    recs = wal_records(last)
    entries = [r for r in recs if r[1] == WAL_REC_ENTRY]
    assert entries, "no entry records found in %s" % last
    off, _, length = recs[-1]
    # Cut the last record in the middle, as a crash during write() would.
    with open(last, "r+b") as f:
        f.truncate(off + WAL_RECORD_HEADER + length // 2)
    srv._spawn()
    srv.wait_ready()
    log = srv.log_tail(20000)
    assert "torn" in log, log
    # Everything before the torn record is there.
    for i in range(19):
        st, _, body = keys_get(srv, "/torn/k%02d" % i)
        assert st == 200 and body["node"]["value"] == "v%d" % i
    # And the server goes on writing.
    assert keys_put(srv, "/torn/after", "x")[0] == 201
    srv.restart()
    assert keys_get(srv, "/torn/after")[0] == 200


def test_corruption_in_an_earlier_record_refuses_to_start(make_server):
    srv = make_server("corebox")
    for i in range(20):
        assert keys_put(srv, "/bad/k%02d" % i, "value%d" % i)[0] in (200, 201)
    srv.stop()
    path = wal_files(srv)[-1]
    entries = [r for r in wal_records(path) if r[1] == WAL_REC_ENTRY]
    off, _, length = entries[len(entries) // 2]
    with open(path, "r+b") as f:
        f.seek(off + WAL_RECORD_HEADER + length - 1)
        b = f.read(1)
        f.seek(off + WAL_RECORD_HEADER + length - 1)
        f.write(bytes([b[0] ^ 0xFF]))
    argv = srv.argv()
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
    out = (p.stdout + p.stderr).decode("utf-8", "replace")
    assert p.returncode == 1, out
    assert "wal" in out and ("crc" in out or "corrupt" in out), out
    # Nothing was served and nothing was changed: the file still fails.
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
    assert p.returncode == 1


@pytest.mark.parametrize("fork", ["true", "false"])
def test_snapshots_and_purge(make_server, fork):
    """Snapshots every --snapshot-count entries, written by a forked child
    (the default) or in the loop; old WAL segments and snapshots purged."""
    srv = make_server("corebox", extra_args=[
        "--snapshot-count", "200", "--max-snapshots", "2", "--max-wals", "2",
        "--corebox-wal-segment-bytes", "16384", "--corebox-snapshot-fork=" + fork])
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
    for i in range(1500):
        conn.request("PUT", "/v2/keys/snap/k%04d" % (i % 700), body="value=%d" % i,
                     headers={"Content-Type": "application/x-www-form-urlencoded"})
        r = conn.getresponse()
        r.read()
        assert r.status in (200, 201)
    conn.close()
    st, _, _ = srv.request("DELETE", "/v2/keys/snap/k0001")
    assert st == 200
    before, index = snapshot_state(srv)
    snapdir = os.path.join(srv.data_dir, "member", "snap")
    # Purging follows the snapshot that triggers it; give the server a turn.
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        snaps = [f for f in os.listdir(snapdir) if f.endswith(".snap")]
        if len(snaps) <= 2 and len(wal_files(srv)) <= 3:
            break
        time.sleep(0.1)
    snaps = [f for f in os.listdir(snapdir) if f.endswith(".snap")]
    assert 1 <= len(snaps) <= 2, snaps
    assert len(wal_files(srv)) <= 3, wal_files(srv)
    assert "saved snapshot" in srv.log_tail(200000)
    srv.restart()
    after, index2 = snapshot_state(srv)
    assert after == before
    assert index2 == index + 1
    assert "recovered store from snapshot" in srv.log_tail(5000)
    # A kill right after a restart from a snapshot also recovers.
    hard_kill_and_start(srv)
    after, _ = snapshot_state(srv)
    assert after == before


class Writer(threading.Thread):
    """Writes /crash/<id>/<seq> one after another, each only after the
    previous one was answered; records what was acknowledged."""

    def __init__(self, port, wid, start_seq, stop):
        super().__init__(daemon=True)
        self.port, self.wid, self.seq, self.stop_ev = port, wid, start_seq, stop
        self.acked = []

    def run(self):
        try:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=3)
            while not self.stop_ev.is_set() and len(self.acked) < 2000:
                conn.request("PUT", "/v2/keys/crash/w%d/%08d" % (self.wid, self.seq),
                             body="value=%d" % self.seq,
                             headers={"Content-Type": "application/x-www-form-urlencoded"})
                r = conn.getresponse()
                body = r.read()
                if r.status not in (200, 201):
                    return
                node = json.loads(body)["node"]
                self.acked.append((self.seq, node["modifiedIndex"]))
                self.seq += 1
        except (OSError, http.client.HTTPException, ValueError):
            return


@pytest.mark.parametrize("sync_mode,default_rounds", [("inline", 50), ("thread", 20)])
def test_random_sigkill_under_concurrent_writes(make_server, sync_mode, default_rounds):
    """SIGKILL at random moments while 8 writers write; after every restart
    each writer's keys must be exactly its acknowledged writes, plus at most
    the one write it had in flight, with the indexes it was told. Both WAL
    sync modes: in the loop (the default) and on the helper thread."""
    rounds = int(os.environ.get("COREBOX_CRASH_ROUNDS", str(default_rounds)))
    budget_s = float(os.environ.get("COREBOX_CRASH_SECONDS", "80"))
    writers_n = 8
    rng = random.Random(int(os.environ.get("COREBOX_CRASH_SEED", str(int(time.time())))))
    srv = make_server("corebox", extra_args=["--snapshot-count", "300",
                                             "--corebox-wal-segment-bytes", "65536",
                                             "--corebox-wal-sync", sync_mode])
    next_seq = [0] * writers_n
    acked = [dict() for _ in range(writers_n)]   # seq -> modifiedIndex
    started = time.monotonic()
    done = 0
    for rnd in range(rounds):
        if time.monotonic() - started > budget_s:
            break
        stop = threading.Event()
        ws = [Writer(srv.port, i, next_seq[i], stop) for i in range(writers_n)]
        for w in ws:
            w.start()
        time.sleep(rng.uniform(0.005, 0.12))
        srv.proc.send_signal(signal.SIGKILL)
        stop.set()
        for w in ws:
            w.join(10)
            assert not w.is_alive()
        srv.kill()
        for i, w in enumerate(ws):
            for seq, idx in w.acked:
                acked[i][seq] = idx
            # The write in flight (if any) may or may not have landed.
            next_seq[i] = w.seq + 1
        srv._spawn()
        srv.wait_ready()
        st, _, body = keys_get(srv, "/crash", recursive="true", sorted="true")
        assert st == 200, body
        present = [dict() for _ in range(writers_n)]
        for d in body["node"].get("nodes", []):
            wid = int(d["key"].rsplit("/w", 1)[1])
            for n in d.get("nodes", []):
                present[wid][int(n["key"].rsplit("/", 1)[1])] = (n["value"], n["modifiedIndex"])
        for i in range(writers_n):
            for seq, idx in acked[i].items():
                assert seq in present[i], "round %d: acknowledged write w%d/%d lost" % (rnd, i, seq)
                assert present[i][seq] == (str(seq), idx), \
                    "round %d: w%d/%d has %r, was answered with index %d" % (rnd, i, seq, present[i][seq], idx)
            extra = set(present[i]) - set(acked[i])
            # Only a write that was sent (in flight at the kill) may appear
            # without an answer, and never one past it.
            for seq in extra:
                assert seq < next_seq[i], "round %d: w%d/%d appeared but was never sent" % (rnd, i, seq)
                acked[i][seq] = present[i][seq][1]
            # Indexes follow each writer's order.
            order = sorted(present[i])
            idxs = [present[i][s][1] for s in order]
            assert idxs == sorted(idxs)
        done += 1
    assert done >= min(rounds, 50) or time.monotonic() - started > budget_s, done
    assert done >= min(20, rounds), "only %d crash rounds fit in the time budget" % done
    print("crash rounds: %d, acknowledged writes checked: %d" % (done, sum(len(a) for a in acked)))


def test_ttl_expires_through_the_log_across_restarts(make_server):
    srv = make_server("corebox")
    st, _, body = keys_put(srv, "/ttl/short", "s", ttl="1")
    created = json.loads(body)["node"]["modifiedIndex"]
    assert keys_put(srv, "/ttl/long", "l", ttl="3600")[0] == 201
    srv.stop()
    time.sleep(1.5)
    srv._spawn()
    srv.wait_ready()
    # The key expired while the server was down: the new leader proposes the
    # expiry at once, and it takes the next index like any write.
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and keys_get(srv, "/ttl/short")[0] == 200:
        time.sleep(0.05)
    assert keys_get(srv, "/ttl/short")[0] == 404
    st, _, body = srv.request("GET", "/v2/keys/ttl/short?wait=true&waitIndex=%d" % (created + 1))
    ev = json.loads(body)
    assert ev["action"] == "expire" and ev["prevNode"]["value"] == "s"
    st, _, body = keys_get(srv, "/ttl/long")
    assert st == 200 and 3590 <= body["node"]["ttl"] <= 3600
    # The expiry itself is in the log: after another restart it stays.
    srv.restart()
    assert keys_get(srv, "/ttl/short")[0] == 404


def test_pipelined_read_sees_the_write_before_it(make_server):
    """Go's server handles a connection's requests one after another, so a
    GET pipelined behind a PUT on the same connection sees the PUT."""
    srv = make_server("corebox")
    s = socket.create_connection(("127.0.0.1", srv.port))
    try:
        reqs = b""
        for i in range(20):
            body = b"value=v%d" % i
            reqs += (b"PUT /v2/keys/pipe HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Type: application/x-www-form-urlencoded\r\n"
                     b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
            reqs += b"GET /v2/keys/pipe HTTP/1.1\r\nHost: x\r\n\r\n"
        s.sendall(reqs)
        s.settimeout(5)
        f = s.makefile("rb")
        for i in range(20):
            for method in ("PUT", "GET"):
                status = f.readline()
                assert status.startswith(b"HTTP/1.1 20"), status
                length = 0
                while True:
                    line = f.readline()
                    if line in (b"\r\n", b""):
                        break
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                node = json.loads(f.read(length))["node"]
                assert node["value"] == "v%d" % i, (method, i, node)
    finally:
        s.close()
