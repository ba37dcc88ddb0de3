"""pytest fixtures shared by the integration suites: servers started on
127.0.0.1 with free ports and fresh data directories (see etcdproc.py), killed
and removed at teardown whether the test passed or not.

Server kinds: "corebox" ($COREBOX_BIN etcd, default <repo>/build/corebox) and
"etcd" (Debian's /usr/bin/etcd with --enable-v2=true). A test that needs a kind
that cannot run here is skipped with the reason.

The conformance pairing is chosen by the environment:
  COREBOX_CONF_REFERENCE  kind whose answers are taken as right (default etcd)
  COREBOX_CONF_SUBJECT    kind under test (default corebox)
With COREBOX_CONF_SUBJECT=etcd two independent etcd instances are compared,
which is how the suite itself is validated.
"""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import etcdproc  # noqa: E402


def reference_kind():
    return os.environ.get("COREBOX_CONF_REFERENCE", "etcd")


def subject_kind():
    return os.environ.get("COREBOX_CONF_SUBJECT", "corebox")


def require_kind(kind):
    reason = etcdproc.kind_unavailable(kind)
    if reason:
        pytest.skip(reason)


@pytest.fixture
def make_server():
    """Factory: make_server(kind, **kw) starts a server that is killed and
    removed when the test ends, however it ends."""
    started = []

    def make(kind, **kw):
        require_kind(kind)
        srv = etcdproc.Server(kind, **kw)
        started.append(srv)
        try:
            srv.start()
        except etcdproc.ServerError as e:
            pytest.fail("could not start %s: %s" % (kind, e))
        return srv

    yield make
    for srv in started:
        srv.cleanup()


@pytest.fixture
def etcd_server(make_server):
    return make_server("etcd")


@pytest.fixture
def corebox_server(make_server):
    return make_server("corebox")


@pytest.fixture
def subject_server(make_server):
    return make_server(subject_kind())


@pytest.fixture
def reference_server(make_server):
    return make_server(reference_kind())


def _start_pair(kinds):
    for k in kinds:
        require_kind(k)
    servers = []
    try:
        for k in kinds:
            srv = etcdproc.Server(k)
            servers.append(srv)
            srv.start()
    except etcdproc.ServerError as e:
        for srv in servers:
            srv.cleanup()
        pytest.fail("could not start %s: %s" % (kinds, e))
    return servers


@pytest.fixture(scope="module")
def conformance_pair():
    """(reference, subject) servers shared by one module's tests; each test
    resets the key space itself (see test_conformance.reset_state)."""
    servers = _start_pair([reference_kind(), subject_kind()])
    yield tuple(servers)
    for srv in servers:
        srv.cleanup()


@pytest.fixture(scope="module")
def etcd_pair():
    """Two independent Debian etcd instances: used to prove the comparison
    machinery calls identical servers equal and catches real differences."""
    servers = _start_pair(["etcd", "etcd"])
    yield tuple(servers)
    for srv in servers:
        srv.cleanup()
