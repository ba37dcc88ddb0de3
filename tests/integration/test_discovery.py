"""The etcd discovery protocol client (store/discovery) against real stores.

Each scenario is a story: a discovery token is made on a real store (Debian's
etcd with --enable-v2, and corebox's own etcd applet), then separate
processes run discovery against it at the same time, exactly as members
booting with --discovery would. The processes are tests/unit/discovery_probe
from a development build (the store server's --discovery wiring comes
later); the suite is skipped with the reason when no probe is built.

Probe found through $COREBOX_DISCOVERY_PROBE, else next to $COREBOX_BIN's
build directory (<build>/tests/unit, <build>-dev/tests/unit), else
<repo>/build-dev/tests/unit.

Servers listen on 127.0.0.1 only, every wait is bounded, and only processes
started here are signalled.
"""

import json
import os
import subprocess
import time

import pytest

import etcdproc

PROBE_TIMEOUT_S = 30
KINDS = ["etcd", "corebox"]


def probe_path():
    env = os.environ.get("COREBOX_DISCOVERY_PROBE")
    if env:
        return env
    build = os.path.dirname(os.path.abspath(etcdproc.corebox_bin()))
    for d in (build, build + "-dev", os.path.join(etcdproc.REPO, "build-dev")):
        p = os.path.join(d, "tests", "unit", "discovery_probe")
        if os.access(p, os.X_OK):
            return p
    return None


PROBE = probe_path()

pytestmark = pytest.mark.skipif(
    PROBE is None,
    reason="tests/unit/discovery_probe is not built (meson setup -Ddev=true; "
           "or set COREBOX_DISCOVERY_PROBE)")


def probe_env(extra=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("ETCD")}
    env.pop("DISCOVERY_PROBE_PROXY", None)
    env.update(extra or {})
    return env


def start_probe(*args, env=None):
    return subprocess.Popen([PROBE] + [str(a) for a in args], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=probe_env(env))


def finish(p):
    try:
        out, err = p.communicate(timeout=PROBE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        pytest.fail("discovery_probe did not finish within %d s" % PROBE_TIMEOUT_S)
    return p.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")


def run_probe(*args, env=None):
    return finish(start_probe(*args, env=env))


_seq = [0]


def new_token(srv, size):
    """A fresh discovery token on srv; size None leaves _config/size unset."""
    _seq[0] += 1
    path = "/v2/keys/_etcd/registry/it%d-%d" % (os.getpid(), _seq[0])
    if size is not None:
        st, _, body = srv.request("PUT", path + "/_config/size", body="value=%s" % size,
                                  headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert st == 201, body
    return srv.url + path, path


@pytest.mark.parametrize("kind", KINDS)
def test_three_members_then_full(make_server, kind):
    srv = make_server(kind)
    url, path = new_token(srv, 3)
    members = [("infra%d" % i, "%x" % (0x8e9e05c52164694d + i), "http://127.0.0.1:%d" % (12380 + i))
               for i in range(3)]
    # Three members boot at once and wait for each other.
    procs = [start_probe("join", url, name, mid, peer) for name, mid, peer in members]
    results = [finish(p) for p in procs]
    for rc, out, err in results:
        assert rc == 0, (out, err)
    clusters = {out.strip() for _, out, _ in results}
    assert len(clusters) == 1, clusters
    cluster = clusters.pop()
    assert sorted(cluster.split(",")) == sorted("%s=%s" % (n, p) for n, _, p in members)

    # The order is registration order: the createdIndex of each key.
    order = []
    for name, mid, peer in members:
        st, _, body = srv.request("GET", "%s/%s" % (path, mid))
        assert st == 200, body
        order.append((json.loads(body)["node"]["createdIndex"], "%s=%s" % (name, peer)))
    assert cluster == ",".join(v for _, v in sorted(order))

    # A fourth member finds the cluster full and does not register.
    rc, out, _ = run_probe("join", url, "infra3", "abc", "http://127.0.0.1:42380")
    assert rc == 1
    assert out.strip() == "DISCOVERY_ERR_FULL_CLUSTER: discovery: cluster is full"
    st, _, _ = srv.request("GET", path + "/abc")
    assert st == 404

    # A member whose id is registered already (restart after a failed boot).
    rc, out, _ = run_probe("join", url, "infra0", members[0][1], members[0][2])
    assert rc == 1
    assert out.strip() == "DISCOVERY_ERR_DUPLICATE_ID: discovery: found duplicate id"

    # A proxy reads the same cluster and its peer URLs, sorted.
    rc, out, err = run_probe("get", url)
    assert rc == 0, (out, err)
    lines = out.splitlines()
    assert lines[0] == cluster
    assert lines[1] == ",".join(sorted(p for _, _, p in members))


@pytest.mark.parametrize("kind", KINDS)
def test_size_key_errors(make_server, kind):
    srv = make_server(kind)
    url, _ = new_token(srv, None)
    rc, out, _ = run_probe("join", url, "me", "1", "http://127.0.0.1:2380")
    assert (rc, out.strip()) == (1, "DISCOVERY_ERR_SIZE_NOT_FOUND: discovery: size key not found")
    for bad in ("three", "0", "-1", "2.5"):
        url, _ = new_token(srv, bad)
        rc, out, _ = run_probe("join", url, "me", "1", "http://127.0.0.1:2380")
        assert (rc, out.strip()) == (1, "DISCOVERY_ERR_BAD_SIZE_KEY: discovery: size key is bad"), bad


@pytest.mark.parametrize("kind", KINDS)
def test_duplicate_name(make_server, kind):
    srv = make_server(kind)
    url, _ = new_token(srv, 2)
    procs = [start_probe("join", url, "same", "a", "http://127.0.0.1:1001"),
             start_probe("join", url, "same", "b", "http://127.0.0.1:1002")]
    for p in procs:
        rc, out, _ = finish(p)
        assert (rc, out.strip()) == (1, "DISCOVERY_ERR_DUPLICATE_NAME: discovery: found duplicate name")


@pytest.mark.parametrize("kind", KINDS)
def test_late_member_is_waited_for(make_server, kind):
    srv = make_server(kind)
    url, _ = new_token(srv, 2)
    first = start_probe("join", url, "a", "a", "http://127.0.0.1:1001")
    time.sleep(0.5)
    assert first.poll() is None, "the first member must wait for the second"
    rc, out, err = run_probe("join", url, "b", "b", "http://127.0.0.1:1002")
    assert rc == 0, (out, err)
    rc1, out1, err1 = finish(first)
    assert rc1 == 0, (out1, err1)
    assert out1 == out
    assert out.strip() == "a=http://127.0.0.1:1001,b=http://127.0.0.1:1002"


def test_unreachable_endpoint_gives_up():
    url = "http://127.0.0.1:%d/v2/keys/_etcd/registry/x" % etcdproc.free_port()
    t0 = time.monotonic()
    rc, out, err = run_probe("join", url, "me", "1", "http://127.0.0.1:2380", 3, 10)
    assert (rc, out.strip()) == (1, "DISCOVERY_ERR_TOO_MANY_RETRIES: discovery: too many retries")
    # Three retries were logged with their back-off, then the probe gave up.
    assert err.count("retrying") == 3, err
    assert "connection refused" in err
    assert time.monotonic() - t0 < 10


def test_configuration_errors():
    cases = [
        (("join", "ftp://127.0.0.1:1/x", "me", "1", "http://127.0.0.1:2380"), {},
         "DISCOVERY_ERR_INVALID_URL: discovery: invalid URL"),
        (("join", "http://127.0.0.1:1", "me", "1", "http://127.0.0.1:2380"), {},
         "DISCOVERY_ERR_INVALID_URL: discovery: invalid URL"),
        (("get", "https://127.0.0.1:1/x"), {},
         "DISCOVERY_ERR_UNSUPPORTED: discovery: https discovery URLs are not supported yet (no TLS transport)"),
        (("join", "http://127.0.0.1:1/x", "me", "1", "http://127.0.0.1:2380"),
         {"DISCOVERY_PROBE_PROXY": "http://127.0.0.1:3128"},
         "DISCOVERY_ERR_UNSUPPORTED: discovery: --discovery-proxy is not supported "
         "(corebox's HTTP client cannot use a proxy)"),
    ]
    for args, env, want in cases:
        rc, out, _ = run_probe(*args, env=env)
        assert (rc, out.strip()) == (1, want), args
