"""Watchers at scale on corebox's etcd: 10,000 concurrent long-poll watches
on one node, woken only by the writes that concern them; watchers whose
clients went away are cancelled and cost nothing; streams; expiry events.

Raw sockets through asyncio (stdlib only). Every loop is bounded in count and
time; only 127.0.0.1 is contacted, only servers this file started.
"""

import asyncio
import json
import os
import resource
import socket
import time

import pytest

import etcdproc

pytestmark = pytest.mark.skipif(etcdproc.kind_unavailable("corebox") is not None,
                                reason=str(etcdproc.kind_unavailable("corebox")))

WATCHERS = int(os.environ.get("COREBOX_WATCHERS", "10000"))
KEYS = 100


def raise_nofile(n):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, max(soft, n))
    if want > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return want


def watchers_count(srv):
    st, _, body = srv.request("GET", "/v2/stats/store")
    assert st == 200
    return json.loads(body)["watchers"]


def wait_for(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError("timed out waiting for %s" % what)


async def open_watch(port, path):
    r, w = await asyncio.open_connection("127.0.0.1", port)
    w.write(("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path).encode())
    await w.drain()
    return r, w


async def read_head(r):
    head = await r.readuntil(b"\r\n\r\n")
    return head.decode()


async def read_chunk(r):
    size = int((await r.readline()).strip(), 16)
    data = await r.readexactly(size + 2)
    return data[:-2]


def test_ten_thousand_long_polls_woken_only_by_their_writes(make_server):
    n = WATCHERS
    if raise_nofile(n + 200) < n + 200:
        pytest.skip("RLIMIT_NOFILE too low for %d watchers" % n)
    srv = make_server("corebox")
    st, hdrs, _ = srv.request("PUT", "/v2/keys/w/k0", body="value=start",
                              headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert st == 201

    async def main():
        conns = []
        # Connect in batches so the listen backlog is never the limit.
        for start in range(0, n, 500):
            batch = [open_watch(srv.port, "/v2/keys/w/k%d?wait=true" % (i % KEYS))
                     for i in range(start, min(n, start + 500))]
            conns.extend(await asyncio.gather(*batch))
        # Every watch gets its head at once (etcd flushes it on registration).
        heads = await asyncio.wait_for(asyncio.gather(*(read_head(r) for r, _ in conns)), 60)
        assert all(h.startswith("HTTP/1.1 200") for h in heads)
        loop = asyncio.get_running_loop()
        count = await loop.run_in_executor(None, watchers_count, srv)
        assert count == n
        # Writes to keys nobody watches and to a sibling directory wake nobody.
        for key in ("/w/other", "/x/k1", "/w/k1/child"):
            await loop.run_in_executor(None, lambda k=key: srv.request(
                "PUT", "/v2/keys" + k, body="value=x",
                headers={"Content-Type": "application/x-www-form-urlencoded"}))
        # (/w/k1/child creates the directory /w/k1 on the way: the event is
        # on /w/k1/child, which a non-recursive watcher of /w/k1 ignores.)
        await asyncio.sleep(0.3)
        count = await loop.run_in_executor(None, watchers_count, srv)
        assert count == n, "an unrelated write woke %d watchers" % (n - count)
        # One write to k7 wakes exactly the watchers of k7.
        await loop.run_in_executor(None, lambda: srv.request(
            "PUT", "/v2/keys/w/k7", body="value=seven",
            headers={"Content-Type": "application/x-www-form-urlencoded"}))
        woken = [i for i in range(n) if i % KEYS == 7]
        events = await asyncio.wait_for(asyncio.gather(*(read_chunk(conns[i][0]) for i in woken)), 30)
        for e in events:
            ev = json.loads(e)
            assert ev["action"] == "set" and ev["node"]["key"] == "/w/k7" and ev["node"]["value"] == "seven"
        # Each one-shot response ends with the last chunk.
        ends = await asyncio.wait_for(asyncio.gather(*(read_chunk(conns[i][0]) for i in woken)), 30)
        assert all(x == b"" for x in ends)
        count = await loop.run_in_executor(None, watchers_count, srv)
        assert count == n - len(woken)
        # Nobody else received anything.
        others = [conns[i][0] for i in range(n) if i % KEYS != 7][:500]

        async def silent(r):
            try:
                await asyncio.wait_for(r.read(1), 0.3)
                return False
            except asyncio.TimeoutError:
                return True
        assert all(await asyncio.gather(*(silent(r) for r in others)))
        # The clients go away: every watcher is cancelled.
        for _, w in conns:
            w.close()
        await asyncio.sleep(0)

    asyncio.run(main())
    wait_for(lambda: watchers_count(srv) == 0, 20, "watchers to drop to 0")
    # The server is still healthy and answers.
    st, _, _ = srv.request("GET", "/v2/keys/w/k7")
    assert st == 200


def test_disconnected_watchers_cost_nothing(make_server):
    srv = make_server("corebox")
    socks = []
    for i in range(200):
        s = socket.create_connection(("127.0.0.1", srv.port))
        path = "/v2/keys/dc/k%d?wait=true" % (i % 10) if i % 2 else \
               "/v2/keys/dc?wait=true&recursive=true&stream=true"
        s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path).encode())
        socks.append(s)
    wait_for(lambda: watchers_count(srv) == 200, 10, "200 watchers")
    for s in socks:
        s.close()
    wait_for(lambda: watchers_count(srv) == 0, 10, "watchers to drop to 0")
    # Writes after that reach nobody and do not fail.
    for i in range(10):
        st, _, _ = srv.request("PUT", "/v2/keys/dc/k%d" % i, body="value=v",
                               headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert st in (200, 201)
    assert watchers_count(srv) == 0
    st, _, body = srv.request("GET", "/metrics")
    assert st == 200 and b"etcd_debugging_store_watchers 0" in body


def test_stream_gets_every_event_including_expiry(make_server):
    srv = make_server("corebox")

    async def main():
        r, w = await open_watch(srv.port, "/v2/keys/s?wait=true&recursive=true&stream=true")
        head = await asyncio.wait_for(read_head(r), 5)
        assert "Transfer-Encoding: chunked" in head
        loop = asyncio.get_running_loop()
        put = lambda k, b: srv.request("PUT", "/v2/keys" + k, body=b,
                                       headers={"Content-Type": "application/x-www-form-urlencoded"})
        await loop.run_in_executor(None, put, "/s/a", "value=1")
        await loop.run_in_executor(None, put, "/s/t", "value=2&ttl=1")
        await loop.run_in_executor(None, put, "/s/_hidden", "value=3")
        got = []
        deadline = time.monotonic() + 5
        while len(got) < 3 and time.monotonic() < deadline:
            got.append(json.loads(await asyncio.wait_for(read_chunk(r), 5)))
        assert [(e["action"], e["node"]["key"]) for e in got] == \
            [("set", "/s/a"), ("set", "/s/t"), ("expire", "/s/t")]
        assert "value" not in got[2]["node"] and got[2]["prevNode"]["value"] == "2"
        w.close()

    asyncio.run(main())
    wait_for(lambda: watchers_count(srv) == 0, 5, "stream watcher cancelled")


def test_watch_history_and_cleared_index(make_server):
    srv = make_server("corebox")
    put = lambda k, v: srv.request("PUT", "/v2/keys" + k, body="value=" + v,
                                   headers={"Content-Type": "application/x-www-form-urlencoded"})
    st, hdrs, body = put("/h/a", "1")
    first = json.loads(body)["node"]["modifiedIndex"]
    st, hdrs, body = srv.request("GET", "/v2/keys/h/a?wait=true&waitIndex=%d" % first)
    assert st == 200 and json.loads(body)["node"]["value"] == "1"
    for i in range(1005):
        put("/h/b", str(i))
    st, hdrs, body = srv.request("GET", "/v2/keys/h/a?wait=true&waitIndex=%d" % first)
    err = json.loads(body)
    assert st == 400 and err["errorCode"] == 401
    assert err["message"] == "The event in requested index is outdated and cleared"
