"""corebox's etcdctl against Debian's etcdctl (ETCDCTL_API=2), side by side.

Every scenario is a script of etcdctl invocations. It runs once with Debian's
etcdctl and once with `corebox etcdctl`, each time on a freshly reset key
space of the SAME server, and stdout, stderr and exit code of every step must
be equal after normalising what legitimately differs between two runs:
indexes become relative to the run's base index, TTLs are compared to within
2 s, expiration times, the server's URL and the version number are replaced
by placeholders. The scripts run against Debian's etcd 3.4 and, when the
corebox binary has an `etcd` applet, against corebox's server too.

Watches and exec-watch are bounded: they start from an index that is already
in the history (so they never wait for a write that raced ahead of them),
every process has a timeout, and forever-watchers are interrupted with SIGINT
once they printed what was expected.

Never talks to anything but servers started here on 127.0.0.1.
"""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import etcdproc  # noqa: E402

CMD_TIMEOUT_S = 20.0
WATCH_TIMEOUT_S = 10.0
DEBIAN_VERSION = "3.4.23"
OUR_VERSION = "2.3.8"
FORM = "application/x-www-form-urlencoded"

pytestmark = pytest.mark.skipif(not os.access(etcdproc.DEBIAN_ETCDCTL, os.X_OK),
                                reason="%s is missing (scripts/setup installs etcd-client)"
                                % etcdproc.DEBIAN_ETCDCTL)


def corebox_ctl_unavailable():
    applets = etcdproc.corebox_applets()
    if applets is None:
        return "corebox binary %s is missing (set COREBOX_BIN)" % etcdproc.corebox_bin()
    if "etcdctl" not in applets:
        return "%s has no etcdctl applet" % etcdproc.corebox_bin()
    return None


if corebox_ctl_unavailable():
    pytestmark = [pytestmark, pytest.mark.skip(reason=corebox_ctl_unavailable())]


# ---------------------------------------------------------------- running

def base_env(extra=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ETCDCTL_", "ETCD_"))}
    env["ETCDCTL_API"] = "2"
    env.update(extra or {})
    return env


def argv_for(impl, args):
    if impl == "debian":
        return [etcdproc.DEBIAN_ETCDCTL] + list(args)
    return [etcdproc.corebox_bin(), "etcdctl"] + list(args)


class Step:
    """One etcdctl run. args may use {URL} (the server), {B+n} (base index
    plus n), {DEAD} (a closed port), {HOLE} (a port that never answers)."""

    def __init__(self, rc, *args, stdin=b"", env=None, endpoints=True, sort=False, kind="run",
                 lines=0, index=False, writes=()):
        self.rc = rc
        self.args = list(args)
        self.stdin = stdin
        self.env = env or {}
        self.endpoints = endpoints
        self.sort = sort
        self.kind = kind      # run | watch (wait for N lines, then SIGINT)
        self.lines = lines
        self.index = index    # indexes inside "Compare failed" causes too
        self.writes = writes  # (key, value) written once the watcher runs


def S(rc, *args, **kw):
    return Step(rc, *args, **kw)


def render(text, ctx):
    def sub(m):
        what = m.group(1)
        if what == "URL":
            return ctx["url"]
        if what == "DEAD":
            return "http://127.0.0.1:%d" % ctx["dead"]
        if what == "HOLE":
            return "http://127.0.0.1:%d" % ctx["hole"]
        if what == "TMP":
            return ctx["tmp"]
        if what.startswith("B"):
            return str(ctx["base"] + int(what[1:] or "0"))
        return m.group(0)
    return re.sub(r"\{(URL|DEAD|HOLE|TMP|B[+-]?\d*)\}", sub, text)


class Out:
    def __init__(self, rc, stdout, stderr):
        self.rc = rc
        self.stdout = stdout
        self.stderr = stderr


def run_step(impl, step, ctx):
    args = [render(a, ctx) for a in step.args]
    env = base_env({k: render(v, ctx) for k, v in step.env.items()})
    if step.endpoints:
        args = ["--endpoints", ctx["url"]] + args
    argv = argv_for(impl, args)
    if step.kind == "watch":
        return run_watch(argv, env, step, ctx)
    try:
        p = subprocess.run(argv, input=step.stdin, capture_output=True, env=env, timeout=CMD_TIMEOUT_S)
    except subprocess.TimeoutExpired as e:
        return Out("timeout", e.stdout or b"", e.stderr or b"")
    return Out(p.returncode, p.stdout, p.stderr)


def run_watch(argv, env, step, ctx):
    """Runs a watcher until it printed step.lines lines (or WATCH_TIMEOUT_S),
    then interrupts it as a user's Ctrl-C would. step.writes are made while
    it waits (the step gives --after-index so none can be missed)."""
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                         env=env, start_new_session=True)
    os.set_blocking(p.stdout.fileno(), False)
    out = b""
    deadline = time.monotonic() + WATCH_TIMEOUT_S
    try:
        if step.writes:
            time.sleep(0.3)
            for key, value in step.writes:
                st, _, _ = etcdproc.http_request(ctx["url"], "PUT", "/v2/keys" + key,
                                                 ("value=" + value).encode(), {"Content-Type": FORM})
                assert st in (200, 201), st
        while time.monotonic() < deadline and out.count(b"\n") < step.lines and p.poll() is None:
            chunk = p.stdout.read()
            if chunk:
                out += chunk
            time.sleep(0.02)
        if p.poll() is None:
            time.sleep(0.2)
            os.killpg(p.pid, signal.SIGINT)
        try:
            p.wait(5.0)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(5.0)
        os.set_blocking(p.stdout.fileno(), True)
        out += p.stdout.read() or b""
        return Out(p.returncode, out, p.stderr.read() or b"")
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(5.0)
        p.stdout.close()
        p.stderr.close()


# ---------------------------------------------------------------- state

def request(server, method, path, body=None, headers=None):
    st, hdrs, data = etcdproc.http_request(server.port, method, path, body, headers)
    return st, dict(hdrs), data


def reset(server):
    """Deletes every top-level key, then writes and deletes a base key; the
    index of that delete is the run's base."""
    st, _, body = request(server, "GET", "/v2/keys/")
    assert st == 200, (st, body)
    for node in json.loads(body).get("node", {}).get("nodes", []) or []:
        name = node["key"]
        request(server, "DELETE", "/v2/keys%s?recursive=true" % quote_path(name))
    st, _, _ = request(server, "PUT", "/v2/keys/_ctl_base", b"value=x", {"Content-Type": FORM})
    assert st in (200, 201)
    st, hdrs, _ = request(server, "DELETE", "/v2/keys/_ctl_base")
    assert st == 200
    return int(hdrs["X-Etcd-Index"])


def quote_path(p):
    import urllib.parse
    return urllib.parse.quote(p, safe="/")


# ---------------------------------------------------------------- normalising

_R_ERRIDX = re.compile(r"\[(\d+)\]$", re.M)
_R_EXT = re.compile(r"^(Created-Index|Modified-Index|Index): (\d+)$", re.M)
_R_TTL_LINE = re.compile(r"^TTL: (-?\d+)$", re.M)
_R_JSON_IDX = re.compile(r'"(modifiedIndex|createdIndex)":(\d+)')
_R_JSON_EXP = re.compile(r'"expiration":"[^"]*"')
_R_JSON_TTL = re.compile(r'"ttl":(-?\d+)')
_R_SEQ = re.compile(r"(?<=/)(\d{20})(?=/|$|\s|\)|\")", re.M)
_R_CAUSE_IDX = re.compile(r"\[(\S*) != (\d+)\]\)")
_R_WATCH_IDX = re.compile(r"(ETCD_WATCH_MODIFIED_INDEX=|idx=)(\d+)")
_R_WAITIDX = re.compile(r"waitIndex=(\d+)")
_R_LOGTIME = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6} ", re.M)


def rel(n, base):
    n = int(n)
    return "0" if n == 0 else "B%+d" % (n - base)


def normalise(text, ctx, ttls, step):
    base = ctx["base"]
    text = text.decode("utf-8", "replace")
    text = text.replace(ctx["url"], "<URL>")
    if "tmp" in ctx:
        text = text.replace(ctx["tmp"], "<TMP>")
    text = text.replace("etcdctl version: " + DEBIAN_VERSION, "etcdctl version: " + OUR_VERSION)
    text = text.replace("VERSION:\n   " + DEBIAN_VERSION + "\n", "VERSION:\n   " + OUR_VERSION + "\n")
    # speakeasy runs stty, which complains when stdin is not a terminal.
    text = "".join(l for l in text.splitlines(True) if not l.startswith("stty: "))
    text = _R_LOGTIME.sub("<TIME> ", text)
    if step.index:
        text = _R_CAUSE_IDX.sub(lambda m: "[%s != %s])" % (m.group(1), rel(m.group(2), base)), text)
    text = _R_ERRIDX.sub(lambda m: "[%s]" % rel(m.group(1), base), text)
    text = _R_EXT.sub(lambda m: "%s: %s" % (m.group(1), rel(m.group(2), base)), text)
    text = _R_JSON_IDX.sub(lambda m: '"%s":"%s"' % (m.group(1), rel(m.group(2), base)), text)
    text = _R_JSON_EXP.sub('"expiration":"<EXP>"', text)
    text = _R_SEQ.sub(lambda m: "<%s>" % rel(m.group(1), base), text)
    text = _R_WATCH_IDX.sub(lambda m: "%s%s" % (m.group(1), rel(m.group(2), base)), text)
    text = _R_WAITIDX.sub(lambda m: "waitIndex=%s" % rel(m.group(1), base), text)

    def ttl(m):
        ttls.append(int(m.group(1)))
        return m.group(0).replace(m.group(1), "<TTL>")
    text = _R_TTL_LINE.sub(ttl, text)
    text = _R_JSON_TTL.sub(ttl, text)
    if step.sort:
        text = "\n".join(sorted(text.splitlines()))
    return text


def run_script(impl, server, steps, extra_ctx, setup=None):
    ctx = dict(extra_ctx)
    ctx["url"] = server.url
    if setup is not None:
        setup(server)
    ctx["base"] = reset(server)
    results = []
    for st in steps:
        o = run_step(impl, st, ctx)
        ttls = []
        results.append((o.rc, normalise(o.stdout, ctx, ttls, st), normalise(o.stderr, ctx, ttls, st), ttls))
    return results


def compare(name, steps, ref, sub):
    problems = []
    for i, (st, a, b) in enumerate(zip(steps, ref, sub)):
        title = "step %d: etcdctl %s" % (i, " ".join(st.args))
        if st.rc is not None and a[0] != st.rc:
            problems.append("%s: Debian's etcdctl exited %s, the script expects %s (stdout %r stderr %r)"
                            % (title, a[0], st.rc, a[1][:300], a[2][:300]))
        if a[0] != b[0]:
            problems.append("%s: exit code Debian %s, corebox %s" % (title, a[0], b[0]))
        for what, x, y in (("stdout", a[1], b[1]), ("stderr", a[2], b[2])):
            if x != y:
                problems.append("%s: %s differs\n  Debian:  %r\n  corebox: %r" % (title, what, x, y))
        if len(a[3]) != len(b[3]) or any(abs(x - y) > 2 for x, y in zip(a[3], b[3])):
            problems.append("%s: TTLs Debian %s, corebox %s" % (title, a[3], b[3]))
    assert not problems, "scenario %s:\n" % name + "\n".join(problems)


# ---------------------------------------------------------------- fixtures

def server_kinds():
    return ["etcd", "corebox"]


@pytest.fixture(scope="module", params=server_kinds())
def server(request):
    reason = etcdproc.kind_unavailable(request.param)
    if reason:
        pytest.skip(reason)
    srv = etcdproc.Server(request.param)
    try:
        srv.start()
    except etcdproc.ServerError as e:
        srv.cleanup()
        pytest.fail("could not start %s: %s" % (request.param, e))
    yield srv
    srv.cleanup()


@pytest.fixture(scope="module")
def ports(tmp_path_factory):
    """A port nobody listens on, one that accepts connections but never
    answers (its backlog is never accepted), and a scratch directory."""
    dead = etcdproc.free_port()
    hole = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    hole.bind(("127.0.0.1", 0))
    hole.listen(64)
    tmp = tmp_path_factory.mktemp("etcdctl")
    (tmp / "empty" / "member" / "snap").mkdir(parents=True)
    yield {"dead": dead, "hole": hole.getsockname()[1], "tmp": str(tmp)}
    hole.close()


# ---------------------------------------------------------------- scenarios

VALUE_ODD = "a<b>&c\"d\\e\tf\x01g\u2028h\u00e9i/j"

SCENARIOS = {
    "set_get_formats": [
        S(0, "set", "/a", "1"),
        S(0, "get", "/a"),
        S(0, "-o", "extended", "get", "/a"),
        S(0, "-o", "json", "get", "/a"),
        S(0, "-o", "extended", "set", "/a", "2"),
        S(0, "-o", "json", "set", "/a", "3"),
        S(0, "--output=json", "set", "--ttl", "100", "/a", "4"),
        S(0, "-o", "extended", "get", "/a"),
        S(0, "-o", "json", "get", "/a"),
        S(0, "set", "/odd", VALUE_ODD),
        S(0, "-o", "json", "get", "/odd"),
        S(0, "get", "/odd"),
        S(0, "set", "/sp ace/q?x#y%z", "v"),
        S(0, "get", "/sp ace/q?x#y%z"),
        S(0, "-o", "bogus", "get", "/a"),
        S(0, "-o", "bogus", "set", "/a", "5"),
    ],
    "get_errors": [
        S(4, "get", "/nope"),
        S(4, "-o", "json", "get", "/nope"),
        S(4, "-o", "extended", "get", "/nope/deeper"),
        S(0, "set", "/d/x", "1"),
        S(1, "get", "/d"),
        S(1, "get"),
        S(0, "get", "--quorum", "/d/x"),
        S(0, "get", "-q", "--sort", "/d/x"),
        S(1, "get", "-q", "--quorum", "/d/x"),
    ],
    "set_conditions": [
        S(0, "set", "/a", "1"),
        S(0, "set", "--swap-with-value", "1", "/a", "2"),
        S(4, "set", "--swap-with-value", "nope", "/a", "3"),
        S(0, "set", "--swap-with-index", "{B+2}", "/a", "4"),
        S(4, "set", "--swap-with-index", "1", "/a", "5", index=True),
        S(0, "-o", "extended", "set", "/a", "6", "--ttl", "30"),
        S(0, "set", "/a", "--", "-v"),
        S(0, "set", "--", "/b", "-v"),
        S(0, "set", "/c", "--bogus"),
        S(1, "set", "/x"),
        S(1, "set"),
        S(1, "set", "--ttl", "abc", "/x", "y"),
        S(1, "set", "--ttl"),
        S(1, "set", "--bogus", "/x", "y"),
        S(0, "set", "--ttl=0x10", "/hex", "v"),
    ],
    "stdin_values": [
        S(0, "set", "/in", stdin=b"from stdin\n"),
        S(0, "get", "/in"),
        S(0, "mk", "/in2", stdin=b"mk value"),
        S(0, "update", "/in2", stdin=b"updated"),
        S(1, "set", "/empty", stdin=b""),
        S(1, "mk", "/empty", stdin=b""),
    ],
    "mk_mkdir_update": [
        S(0, "mk", "/m", "1"),
        S(4, "mk", "/m", "2"),
        S(0, "-o", "extended", "mk", "--ttl", "50", "/m2", "x"),
        S(0, "mkdir", "/dir"),
        S(4, "mkdir", "/dir"),
        S(0, "mkdir", "--ttl", "40", "/dir2"),
        S(0, "-o", "json", "get", "/m"),
        S(0, "mk", "--in-order", "/queue", "job1"),
        S(0, "-o", "extended", "mk", "--in-order", "/queue", "job2"),
        S(0, "-o", "json", "mk", "--in-order", "--ttl", "20", "/queue", "job3"),
        S(0, "ls", "--sort", "/queue"),
        S(0, "update", "/m", "3"),
        S(4, "update", "/nope", "3"),
        S(0, "-o", "extended", "update", "--ttl", "60", "/m", "4"),
        S(4, "setdir", "/dir"),
        S(0, "setdir", "--ttl", "30", "/newdir"),
        S(0, "setdir", "/m"),
        S(0, "updatedir", "--ttl", "20", "/dir"),
        S(4, "updatedir", "/nodir"),
        S(1, "mkdir"),
        S(1, "updatedir"),
        S(1, "update", "/m"),
    ],
    "rm_rmdir": [
        S(0, "set", "/a", "1"),
        S(0, "rm", "/a"),
        S(4, "rm", "/a"),
        S(0, "set", "/b", "2"),
        S(0, "-o", "extended", "rm", "/b"),
        S(0, "set", "/c", "3"),
        S(0, "-o", "json", "rm", "/c"),
        S(0, "set", "/d", "4"),
        S(4, "rm", "--with-value", "nope", "/d"),
        S(0, "rm", "--with-value", "4", "/d"),
        S(0, "set", "/e", "5"),
        S(4, "rm", "--with-index", "1", "/e", index=True),
        S(0, "rm", "--with-index", "{B+9}", "/e"),
        S(0, "mkdir", "/dir"),
        S(0, "set", "/dir2/x", "1"),
        S(4, "rm", "/dir"),
        S(0, "rm", "--dir", "/dir"),
        S(4, "rmdir", "/dir2"),
        S(0, "rm", "-r", "/dir2"),
        S(0, "mkdir", "/dir3"),
        S(0, "rmdir", "/dir3"),
        S(1, "rm"),
        S(1, "rmdir"),
        S(4, "rmdir", "/nope"),
    ],
    "ls": [
        S(0, "set", "/l/a", "1"),
        S(0, "set", "/l/b/c", "2"),
        S(0, "mkdir", "/l/e"),
        S(0, "ls", "/l", sort=True),
        S(0, "ls", "--sort", "/l"),
        S(0, "ls", "-p", "--sort", "/l"),
        S(0, "ls", "-r", "--sort", "/l"),
        S(0, "ls", "-r", "-p", "--sort", "/"),
        S(0, "ls", "--sort", "-q"),
        S(0, "ls", "/l/a"),
        S(0, "-o", "extended", "ls", "/l/e"),
        S(0, "-o", "json", "ls", "--sort", "/l"),
        S(0, "-o", "json", "ls", "-r", "--sort", "/l"),
        S(4, "ls", "/nope"),
        S(1, "ls", "--sort=nope", "/l"),
        # Deep trees: 80 directory levels are 160 levels of JSON.
        S(0, "set", "".join("/d%d" % i for i in range(80)), "deep"),
        S(0, "ls", "-r", "/d0"),
        S(0, "-o", "json", "ls", "-r", "/d0"),
        S(0, "-o", "json", "get", "".join("/d%d" % i for i in range(80))),
    ],
    "watch_history": [
        S(0, "set", "/w/a", "1"),
        S(0, "mkdir", "/w/d"),
        S(0, "set", "/w/a", "2"),
        S(0, "rm", "/w/a"),
        S(0, "set", "/w/b", "3"),
        S(0, "watch", "--after-index", "{B}", "/w/a"),
        S(0, "-o", "extended", "watch", "--after-index", "{B+1}", "/w/a"),
        S(0, "-o", "json", "watch", "-r", "--after-index", "{B}", "/w"),
        S(0, "watch", "--after-index", "{B+3}", "/w/a"),
        S(0, "watch", "-r", "-f", "--after-index", "{B}", "/w", kind="watch", lines=8),
        S(0, "-o", "json", "watch", "-f", "-r", "--after-index", "{B}", "/w", kind="watch", lines=8),
        S(1, "watch"),
        S(0, "watch", "--after-index", "{B+5}", "/w/live", kind="watch", lines=1, writes=[("/w/live", "now")]),
        # Simple output: "Index:" of a watch answer depends on whether the event
        # was already in the history when the next poll came.
        S(0, "watch", "-r", "-f", "--after-index", "{B+6}", "/w/live2", kind="watch", lines=4,
          writes=[("/w/live2/a", "1"), ("/w/live2/b", "2")]),
    ],
    "exec_watch": [
        S(0, "set", "/x/a", "1"),
        S(0, "mkdir", "/x/d"),
        S(0, "set", "/x/a", "hello world"),
        S(0, "rm", "/x/a"),
        S(0, "exec-watch", "--after-index", "{B}", "-r", "/x", "--", "sh", "-c",
          'echo "$ETCD_WATCH_ACTION|$ETCD_WATCH_KEY|$ETCD_WATCH_VALUE|idx=$ETCD_WATCH_MODIFIED_INDEX"',
          kind="watch", lines=3, sort=True),
        S(0, "exec-watch", "--after-index", "{B}", "printf", "%s\\n", "/x/a", kind="watch", lines=2, sort=True),
        S(1, "exec-watch", "--after-index", "{B}", "-r", "/x/a", "--", "/nonexistent/cmd", kind="watch", lines=1),
        S(1, "exec-watch", "--after-index", "{B}", "-r", "/x/a", "--", "no-such-command-xyz", kind="watch",
          lines=1),
        S(0, "exec-watch", "--after-index", "{B+4}", "-r", "/x/live", "--", "sh", "-c", 'echo "live $ETCD_WATCH_VALUE"',
          kind="watch", lines=2, sort=True, writes=[("/x/live", "one"), ("/x/live", "two")]),
        S(1, "exec-watch", "/x"),
        S(1, "exec-watch"),
    ],
    "members": [
        S(0, "member", "list"),
        S(1, "member", "list", "extra"),
        S(1, "member", "add"),
        S(1, "member", "add", "n1", "bogus"),
        S(1, "member", "add", "n1", "http://127.0.0.1"),
        S(1, "member", "add", "n1", "http://127.0.0.1:1/path"),
        S(1, "member", "remove"),
        S(1, "member", "remove", "nope"),
        S(1, "member", "remove", "default"),
        S(1, "member", "update"),
        S(1, "member", "update", "1234", "http://127.0.0.1:5"),
        S(1, "member", "update", "1234", "bogus"),
        S(0, "cluster-health"),
    ],
    "debug_and_sync": [
        S(0, "--debug", "set", "/k", "v a&l=u+e"),
        S(0, "--debug", "get", "/k"),
        S(0, "--debug", "--no-sync", "get", "/k"),
        S(4, "--debug", "--no-sync", "set", "--swap-with-value", "a b&c", "/k", "x"),
        S(0, "--debug", "--no-sync", "mk", "--in-order", "--ttl", "5", "/q", "x"),
        S(4, "--debug", "--no-sync", "rm", "--with-index", "3", "-r", "--dir", "/q", index=True),
        S(0, "--debug", "--no-sync", "mkdir", "/md"),
        S(0, "--debug", "--no-sync", "mkdir", "--ttl", "5", "/md2"),
        S(0, "--debug", "--no-sync", "ls", "-r", "--sort", "--quorum", "/md"),
        S(0, "--debug", "--no-sync", "watch", "--after-index", "{B}", "/k"),
        S(0, "--debug", "member", "list"),
        S(0, "--debug", "cluster-health"),
        S(0, "--no-sync", "--endpoints", "{URL}", "get", "/k", endpoints=False),
    ],
    "endpoints_and_env": [
        S(0, "set", "/e", "v"),
        S(0, "get", "/e", endpoints=False, env={"ETCDCTL_ENDPOINTS": "{URL}"}),
        S(0, "get", "/e", endpoints=False, env={"ETCDCTL_ENDPOINT": "{URL}"}),
        S(0, "get", "/e", endpoints=False, env={"ETCDCTL_PEERS": "{URL}"}),
        S(0, "--peers", "{URL}", "get", "/e", endpoints=False),
        S(0, "-C", "{URL}", "get", "/e", endpoints=False),
        S(0, "--endpoint", "{URL}", "get", "/e", endpoints=False),
        S(0, "--endpoints", "{URL}", "get", "/e", endpoints=False, env={"ETCDCTL_ENDPOINTS": "{DEAD}"}),
        S(0, "--endpoints", "{DEAD},{URL}", "get", "/e", endpoints=False),
        S(0, "--no-sync", "--endpoints", "{DEAD},{URL}", "get", "/e", endpoints=False),
        S(2, "--endpoints", "{DEAD}", "get", "/e", endpoints=False),
        S(4, "--no-sync", "--endpoints", "{DEAD}", "get", "/e", endpoints=False),
        S(4, "--no-sync", "--endpoints", "{DEAD}", "mk", "/new", "v", endpoints=False),
        S(4, "--no-sync", "--endpoints", "{DEAD}", "rm", "/e", endpoints=False),
        S(1, "--endpoints", "127.0.0.1:2379", "get", "/e", endpoints=False),
        S(2, "--endpoints", "{DEAD}", "member", "list", endpoints=False),
        S(1, "--no-sync", "--endpoints", "{DEAD}", "member", "list", endpoints=False),
        S(4, "--endpoints", "{DEAD}", "cluster-health", endpoints=False),
        S(2, "--endpoints", "{DEAD}", "get", endpoints=False),
    ],
    "timeouts": [
        S(0, "set", "/t", "v"),
        S(4, "--timeout", "300ms", "--endpoints", "{HOLE}", "get", "/t", endpoints=False),
        S(4, "--timeout", "300ms", "--no-sync", "--endpoints", "{HOLE}", "get", "/t", endpoints=False),
        S(0, "--timeout", "300ms", "--no-sync", "--endpoints", "{HOLE},{URL}", "get", "/t", endpoints=False),
        S(2, "--total-timeout", "400ms", "--endpoints", "{HOLE}", "get", "/t", endpoints=False),
        S(4, "--timeout", "0", "--total-timeout", "400ms", "--no-sync", "--endpoints", "{HOLE}", "get", "/t",
          endpoints=False),
        S(1, "--timeout", "1", "get", "/t"),
        S(1, "--timeout", "abc", "get", "/t"),
    ],
    "backup_errors": [
        S(1, "backup", "--data-dir", "/nonexistent", "--backup-dir", "{TMP}/bk", endpoints=False),
        S(1, "backup", "--data-dir", "{TMP}/empty", "--backup-dir", "{TMP}/bk", endpoints=False),
        S(1, "backup", "--data-dir", "{TMP}/empty", "--wal-dir", "{TMP}/nowal", "--backup-dir", "{TMP}/bk",
          endpoints=False),
    ],
    "cli": [
        S(0, endpoints=False),
        S(0, "--help", endpoints=False),
        S(0, "-h", endpoints=False),
        S(0, "help", endpoints=False),
        S(0, "--version", endpoints=False),
        S(0, "-v", endpoints=False),
        S(0, "help", "set", endpoints=False),
        S(0, "h", "get", endpoints=False),
        S(0, "help", "member", endpoints=False),
        S(3, "help", "bogus", endpoints=False),
        S(3, "bogus", endpoints=False),
        S(1, "--bogus", "get", "/x", endpoints=False),
        S(1, "---sort", "get", "/x", endpoints=False),
        S(1, "-o", "json", "--output", "simple", "get", "/x", endpoints=False),
        S(0, "member", endpoints=False),
        S(0, "member", "--help", endpoints=False),
        S(0, "member", "help", endpoints=False),
        S(0, "member", "help", "list", endpoints=False),
        S(3, "member", "bogus", endpoints=False),
        S(1, "member", "--bogus", endpoints=False),
        S(1, "member", "list", "--bogus", endpoints=False),
        S(0, "user", endpoints=False),
        S(0, "role", "-h", endpoints=False),
        S(0, "auth", "--help", endpoints=False),
    ] + [S(0, c, "--help", endpoints=False) for c in (
        "set", "get", "mk", "mkdir", "setdir", "update", "updatedir", "rm", "rmdir", "ls", "watch",
        "exec-watch", "cluster-health", "backup")] + [
        S(0, g, s, "-h", endpoints=False) for g, subs in (
            ("member", ("list", "add", "remove", "update")),
            ("user", ("add", "get", "list", "remove", "grant", "revoke", "passwd")),
            ("role", ("add", "get", "list", "remove", "grant", "revoke")),
            ("auth", ("enable", "disable"))) for s in subs],
}

AUTH_SCRIPT = [
    S(0, "user", "list"),
    S(0, "user", "add", "root:pw"),
    S(0, "user", "get", "root"),
    S(0, "role", "add", "r1"),
    S(1, "role", "add", "r1"),
    S(0, "role", "list"),
    S(0, "role", "grant", "--path", "/foo/*", "--read", "r1"),
    S(1, "role", "grant", "--path", "/foo/*", "--read", "r1"),
    S(1, "role", "grant", "--path", "foo", "--rw", "r1"),
    S(1, "role", "grant", "--path", "/foo//x", "--readwrite", "r1"),
    S(1, "role", "grant", "--path", "/x", "r1"),
    S(1, "role", "grant", "--read", "r1"),
    S(0, "role", "grant", "--path", "/bar", "--write", "r1"),
    S(0, "role", "get", "r1"),
    S(0, "role", "revoke", "--path", "/bar", "--write", "r1"),
    S(1, "role", "revoke", "--path", "/bar", "--write", "r1"),
    S(0, "user", "add", "bob", stdin=b"bobpw\n"),
    S(1, "user", "add", "carol", stdin=b""),
    S(0, "user", "grant", "--roles", "r1", "bob"),
    S(0, "user", "get", "bob"),
    S(1, "user", "grant", "--roles", "r1", "--roles", "root", "bob"),
    S(0, "user", "grant", "--roles", "root", "bob"),
    S(0, "user", "get", "bob"),
    S(1, "user", "grant", "bob"),
    S(1, "user", "grant", "--roles", "r1"),
    S(0, "user", "revoke", "--roles", "root", "bob"),
    S(1, "user", "revoke", "--roles", "nope", "bob"),
    S(0, "user", "passwd", "bob", stdin=b"newpw\n"),
    S(1, "user", "get", "nobody"),
    S(1, "user", "remove", "nobody"),
    S(1, "role", "get", "nope"),
    S(1, "role", "remove", "nope"),
    S(1, "user", "get"),
    S(1, "role", "get"),
    S(1, "user", "list", "x"),
    S(0, "--debug", "user", "get", "bob"),
    S(0, "--debug", "role", "get", "r1"),
    S(0, "auth", "enable"),
    S(1, "auth", "enable"),
    S(1, "auth", "enable", "extra"),
    S(0, "-u", "root:pw", "set", "/secret", "s"),
    S(4, "-u", "root:bad", "get", "/secret"),
    S(4, "-u", "bob:newpw", "get", "/secret"),
    S(0, "-u", "root", "get", "/secret", stdin=b"pw\n"),
    S(0, "get", "/secret", env={"ETCDCTL_USERNAME": "root:pw"}),
    S(0, "-u", "root:pw", "user", "list"),
    S(0, "-u", "root:pw", "user", "remove", "bob"),
    S(0, "-u", "root:pw", "role", "remove", "r1"),
    S(0, "-u", "root:pw", "auth", "disable"),
    S(1, "auth", "disable"),
    S(0, "user", "remove", "root"),
]


def auth_supported(server):
    st, _, _ = request(server, "GET", "/v2/auth/enable")
    return st == 200


def auth_cleanup(server):
    """Leaves the server with auth disabled and no users or roles but root's."""
    import base64
    hdr = {"Authorization": "Basic " + base64.b64encode(b"root:pw").decode()}
    request(server, "DELETE", "/v2/auth/enable", None, hdr)
    for u in ("bob", "carol", "root"):
        request(server, "DELETE", "/v2/auth/users/" + u, None, hdr)
    for r in ("r1", "guest"):
        request(server, "DELETE", "/v2/auth/roles/" + r, None, hdr)


def run_pair(name, steps, server, ports, setup=None):
    ref = run_script("debian", server, steps, ports, setup)
    sub = run_script("corebox", server, steps, ports, setup)
    compare(name, steps, ref, sub)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_etcdctl_compat(server, ports, name):
    run_pair(name, SCENARIOS[name], server, ports)


def test_etcdctl_auth_compat(server, ports):
    if not auth_supported(server):
        pytest.skip("%s has no v2 auth API yet" % server.kind)
    try:
        run_pair("auth", AUTH_SCRIPT, server, ports, setup=auth_cleanup)
    finally:
        auth_cleanup(server)


def test_etcdctl_version_text():
    """`corebox etcdctl --version` and `-v` print the 2.x text, and the
    multicall's --version says the same."""
    for args in (["--version"], ["-v"], ["-v", "get"]):
        p = subprocess.run(argv_for("corebox", args), capture_output=True, env=base_env(), timeout=10)
        assert p.returncode == 0
        assert p.stdout == b"etcdctl version: 2.3.8\nAPI version: 2\n"


def test_etcdctl_discovery_srv_errors(tmp_path):
    """-D with a domain nobody serves fails like etcdctl (exit 1, both
    lookups named), without a server: the resolver gets NXDOMAIN or no
    answer from the configured nameserver."""
    p = subprocess.run(argv_for("corebox", ["-D", "corebox-test.invalid", "get", "/x"]), capture_output=True,
                       env=base_env(), timeout=30)
    assert p.returncode == 1
    assert p.stderr.startswith(b"dns lookup errors: lookup _etcd-client-ssl._tcp.corebox-test.invalid")
    assert b"lookup _etcd-client._tcp.corebox-test.invalid" in p.stderr


def corebox_server_unavailable():
    return etcdproc.kind_unavailable("corebox")


def ctl_ok(args):
    p = subprocess.run(argv_for("corebox", args), capture_output=True, env=base_env(), timeout=CMD_TIMEOUT_S)
    assert p.returncode == 0, (args, p.stdout, p.stderr)
    return p.stdout


def member_id(server):
    st, _, body = request(server, "GET", "/v2/stats/self")
    assert st == 200, body
    return json.loads(body)["id"]


@pytest.fixture
def restored(tmp_path):
    """A corebox member with data, backed up WHILE RUNNING, and a second member
    started from the backup with --force-new-cluster. Yields (original id,
    restored server)."""
    reason = corebox_server_unavailable()
    if reason:
        pytest.skip(reason)
    src = etcdproc.Server("corebox")
    dst = etcdproc.Server("corebox", extra_args=["--force-new-cluster"])
    try:
        src.start()
        ep = ["--endpoints", src.url]
        ctl_ok(ep + ["set", "/bk/a", "1"])
        ctl_ok(ep + ["mkdir", "/bk/dir"])
        ctl_ok(ep + ["set", "/bk/b", "two words"])
        old_id = member_id(src)
        ctl_ok(["backup", "--data-dir", src.data_dir, "--backup-dir", dst.data_dir])
        ctl_ok(ep + ["set", "/bk/after", "not in the backup"])
        src.stop()
        dst.check_keys = False
        dst.start()
        yield old_id, dst
    finally:
        src.cleanup()
        dst.cleanup()


def test_etcdctl_backup_restores_data(restored):
    """The backup holds the data written before it (not after), and the member
    started from it has a new member ID."""
    old_id, dst = restored
    ep = ["--no-sync", "--endpoints", dst.url]
    assert ctl_ok(ep + ["get", "/bk/a"]) == b"1\n"
    assert ctl_ok(ep + ["get", "/bk/b"]) == b"two words\n"
    assert ctl_ok(ep + ["ls", "--sort", "-p", "/bk"]) == b"/bk/a\n/bk/b\n/bk/dir/\n"
    assert member_id(dst) != old_id
    p = subprocess.run(argv_for("corebox", ep + ["get", "/bk/after"]), capture_output=True, env=base_env(),
                       timeout=CMD_TIMEOUT_S)
    assert p.returncode == 4 and p.stderr.startswith(b"Error:  100: Key not found (/bk/after)")


def test_etcdctl_backup_force_new_cluster_membership(restored):
    """After the restore the cluster is one healthy member with the new ID."""
    _, dst = restored
    out = ctl_ok(["--endpoints", dst.url, "member", "list"])
    assert out.count(b"\n") == 1 and b"isLeader=true" in out
    assert ctl_ok(["--endpoints", dst.url, "cluster-health"]).endswith(b"cluster is healthy\n")


# ---------------------------------------------------------------- a fake etcd

import http.server  # noqa: E402
import threading  # noqa: E402


class FakeEtcd:
    """A scripted HTTP server on 127.0.0.1: answers (method, path) from a
    table so that both etcdctls meet the same odd cluster (unreachable or
    unstarted members, 5xx answers, bad bodies, redirects)."""

    def __init__(self):
        self.routes = {}
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _answer(self):
                n = int(self.headers.get("Content-Length") or 0)
                if n:
                    self.rfile.read(n)
                path = self.path.split("?")[0]
                st, hdrs, body = fake.routes.get((self.command, path),
                                                 (404, {}, b'{"message":"not found"}'))
                body = body.replace(b"{FAKE}", fake.url.encode()).replace(b"{REAL}", fake.real.encode())
                self.send_response(st)
                for k, v in hdrs.items():
                    self.send_header(k, v.replace("{REAL}", fake.real))
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_PUT = do_POST = do_DELETE = _answer

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = "http://127.0.0.1:%d" % self.httpd.server_address[1]
        self.real = ""
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def members_json(*members):
    return json.dumps({"members": [
        {"id": i, "name": n, "peerURLs": p, "clientURLs": c} for i, n, p, c in members]}).encode()


J = {"Content-Type": "application/json"}

FAKE_SCENARIOS = {
    "health_degraded": ({
        ("GET", "/v2/members"): (200, J, members_json(
            ("a1", "one", ["http://127.0.0.1:2380"], ["{FAKE}"]),
            ("b2", "two", ["http://127.0.0.1:2381"], ["{DEAD}"]),
            ("c3", "", ["http://127.0.0.1:2382"], []))),
        ("GET", "/health"): (200, J, b'{"health": "true"}'),
    }, [S(5, "cluster-health"), S(5, "--debug", "cluster-health"), S(1, "member", "list")]),
    "health_unavailable": ({
        ("GET", "/v2/members"): (200, J, members_json(("a1", "one", ["http://p:1"], ["{FAKE}"]))),
        ("GET", "/health"): (200, J, b'{"health": "false"}'),
    }, [S(5, "cluster-health")]),
    "health_bool": ({
        ("GET", "/v2/members"): (200, J, members_json(("a1", "one", ["http://p:1"], ["{FAKE}", "{FAKE}"]))),
        ("GET", "/health"): (200, J, b'{"health": true}'),
    }, [S(0, "cluster-health")]),
    "member_leader_errors": ({
        ("GET", "/v2/members"): (200, J, members_json(
            ("a1", "one", ["http://p:1", "http://p:2"], ["{FAKE}"]), ("b2", "", ["http://p:3"], []))),
        ("GET", "/v2/members/leader"): (500, J, b'{"message":"During election"}'),
    }, [S(1, "member", "list"), S(1, "--no-sync", "member", "list")]),
    "member_add_remove_statuses": ({
        ("GET", "/v2/members"): (200, J, members_json(("a1", "one", ["http://p:1"], ["{FAKE}"]))),
        ("POST", "/v2/members"): (409, J, b'{"message":"membership: peerURL exists"}'),
        ("DELETE", "/v2/members/a1"): (404, J, b'{"message":"No such member"}'),
        ("PUT", "/v2/members/a1"): (400, J, b'{"message":"bad"}'),
    }, [S(1, "member", "add", "n", "http://127.0.0.1:9"), S(1, "member", "remove", "a1"),
        S(1, "member", "update", "a1", "http://127.0.0.1:9"), S(1, "member", "remove", "one")]),
    "keys_server_errors": ({
        ("GET", "/v2/members"): (200, J, members_json(("a1", "one", ["http://p:1"], ["{FAKE}"]))),
        ("GET", "/v2/keys/bad"): (502, {}, b"bad gateway"),
        ("GET", "/v2/keys/nole"): (503, {}, b""),
        ("GET", "/v2/keys/junk"): (200, J, b"<html>"),
        ("GET", "/v2/keys/empty"): (200, J, b""),
        ("GET", "/v2/keys/text404"): (404, {}, b"404 page not found\n"),
        ("GET", "/v2/keys/badidx"): (200, {"X-Etcd-Index": "12x"},
                                     b'{"action":"get","node":{"key":"/badidx","value":"v"}}'),
        ("GET", "/v2/keys/odd"): (200, {"X-Etcd-Index": "7"},
                                  b'{"action":"get","node":{"key":"/odd","value":"v","nodes":[],'
                                  b'"expiration":"2030-01-02T03:04:05.120000000+00:00","ttl":3,"extra":1}}'),
        ("GET", "/v2/keys/moved"): (307, {"Location": "{REAL}/v2/keys/moved?quorum=false"}, b""),
        ("DELETE", "/v2/keys/gone"): (500, {}, b""),
        ("PUT", "/v2/keys/mk"): (503, {}, b""),
    }, [S(4, "get", "/bad"), S(4, "get", "/nole"), S(4, "get", "/junk"), S(4, "get", "/empty"),
        S(4, "get", "/text404"), S(4, "get", "/badidx"), S(0, "-o", "json", "get", "/odd"),
        S(0, "-o", "extended", "get", "/odd"), S(0, "get", "/moved"), S(4, "rm", "/gone"),
        S(4, "mk", "/mk", "v"), S(4, "--debug", "get", "/bad")]),
    "sync_no_client_urls": ({
        ("GET", "/v2/members"): (200, J, members_json(("a1", "one", ["http://p:1"], []))),
    }, [S(4, "get", "/x"), S(5, "--no-sync", "cluster-health")]),
    "sync_moves_endpoints": ({
        ("GET", "/v2/members"): (200, J, members_json(("a1", "one", ["http://p:1"], ["{REAL}"]))),
    }, [S(0, "get", "/moved"), S(0, "--debug", "get", "/moved")]),
    "sync_server_error": ({
        ("GET", "/v2/members"): (500, J, b'{"message":"oops"}'),
        ("GET", "/v2/keys/x"): (200, J, b'{"action":"get","node":{"key":"/x","value":"still"}}'),
    }, [S(0, "get", "/x"), S(0, "--debug", "get", "/x")]),
}


@pytest.mark.parametrize("name", sorted(FAKE_SCENARIOS))
def test_etcdctl_compat_fake_cluster(ports, name):
    """Odd clusters a real single-member etcd cannot show: both etcdctls
    against the same scripted server, outputs compared."""
    reason = etcdproc.kind_unavailable("etcd")
    if reason:
        pytest.skip(reason)
    routes, steps = FAKE_SCENARIOS[name]
    fake = FakeEtcd()
    real = etcdproc.Server("etcd")
    try:
        real.start()
        fake.real = real.url
        request(real, "PUT", "/v2/keys/moved", b"value=here", {"Content-Type": FORM})
        fake.routes = {}
        for k, (st, hdrs, body) in routes.items():
            fake.routes[k] = (st, hdrs, body.replace(b"{DEAD}", ("http://127.0.0.1:%d" % ports["dead"]).encode()))
        ctx = dict(ports)
        ctx["url"] = fake.url
        ctx["base"] = 0
        out = {}
        for impl in ("debian", "corebox"):
            res = []
            for st in steps:
                o = run_step(impl, st, ctx)
                ttls = []
                a = normalise(o.stdout, ctx, ttls, st).replace(real.url, "<REAL>")
                b = normalise(o.stderr, ctx, ttls, st).replace(real.url, "<REAL>")
                res.append((o.rc, a, b, ttls))
            out[impl] = res
        compare(name, steps, out["debian"], out["corebox"])
    finally:
        fake.close()
        real.cleanup()


def run_on_tty(argv, env, answer, timeout=CMD_TIMEOUT_S):
    """Runs argv on a pseudo-terminal, types answer after the first ': '
    prompt, and returns (exit code, everything the terminal showed)."""
    import pty
    import select
    pid, fd = pty.fork()
    if pid == 0:
        try:
            os.execve(argv[0], argv, env)
        finally:
            os._exit(127)
    out = b""
    typed = False
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            r, _, _ = select.select([fd], [], [], 0.1)
            if fd in r:
                try:
                    chunk = os.read(fd, 4096)
                except OSError:
                    break
                if not chunk:
                    break
                out += chunk
            if not typed and b": " in out:
                time.sleep(0.2)  # let the program turn echo off first
                os.write(fd, answer)
                typed = True
        _, status = os.waitpid(pid, 0)
        return os.waitstatus_to_exitcode(status), out
    finally:
        os.close(fd)
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (OSError, ChildProcessError):
            pass


def test_etcdctl_password_prompt_on_tty(server):
    """A password asked on a terminal is not echoed, for the new-password
    prompt of `user add` and the -u prompt alike, as with Debian's etcdctl."""
    if not auth_supported(server):
        pytest.skip("%s has no v2 auth API yet" % server.kind)
    shown = {}
    try:
        for impl in ("debian", "corebox"):
            auth_cleanup(server)
            rc, out = run_on_tty(argv_for(impl, ["--endpoints", server.url, "user", "add", "bob"]), base_env(),
                                 b"s3cret-pw\n")
            assert rc == 0, (impl, out)
            assert b"s3cret-pw" not in out, (impl, out)
            rc2, out2 = run_on_tty(argv_for(impl, ["--endpoints", server.url, "-u", "bob", "user", "get", "bob"]),
                                   base_env(), b"s3cret-pw\n")
            assert b"s3cret-pw" not in out2, (impl, out2)
            shown[impl] = (rc, out, rc2, out2)
        assert shown["corebox"] == shown["debian"]
        assert shown["corebox"][1] == b"New password: \r\nUser bob created\r\n"
    finally:
        auth_cleanup(server)


def test_etcdctl_man_page_matches_help():
    """man/etcdctl.1 documents every command, subcommand and flag that
    `etcdctl --help` and `etcdctl COMMAND --help` show, and its synopsis is
    the applet's usage line."""
    man = open(os.path.join(etcdproc.REPO, "man", "etcdctl.1"), encoding="utf-8").read()

    def help_of(*args):
        p = subprocess.run(argv_for("corebox", list(args) + ["--help"]), capture_output=True, env=base_env(),
                           timeout=10)
        assert p.returncode == 0, (args, p.stderr)
        return p.stdout.decode()

    def section(text, title):
        part = text.split(title + ":\n", 1)[1]
        return [l for l in part.split("\n\n", 1)[0].splitlines() if l.strip()]

    def flags(lines):
        out = []
        for l in lines:
            for name in l.strip().split("  ")[0].split(", "):
                out.append(name.split(" ")[0])
        return out

    app = help_of()
    missing = []
    for f in flags(section(app, "GLOBAL OPTIONS")):
        if f.replace("-", "\\-") not in man:
            missing.append("global flag " + f)
    for l in section(app, "COMMANDS"):
        cmd = l.split()[0].rstrip(",")
        if cmd == "help":
            continue
        text = help_of(cmd)
        if "COMMANDS:" in text:
            for sl in section(text, "COMMANDS"):
                sub = sl.split()[0]
                if not re.search(r'\.SS "(?:[^"]*\| )?%s %s\b' % (cmd, sub), man):
                    missing.append("command %s %s" % (cmd, sub))
                for f in flags(section(help_of(cmd, sub), "OPTIONS")) if "OPTIONS:" in help_of(cmd, sub) else []:
                    if f.replace("-", "\\-") not in man:
                        missing.append("flag %s of %s %s" % (f, cmd, sub))
            continue
        if not re.search(r'\.SS "%s\b' % re.escape(cmd), man):
            missing.append("command " + cmd)
        if "OPTIONS:" in text:
            for f in flags(section(text, "OPTIONS")):
                if f.replace("-", "\\-") not in man:
                    missing.append("flag %s of %s" % (f, cmd))
    assert not missing, "not in man/etcdctl.1: " + ", ".join(missing)
    assert ".B etcdctl\n.RI [ \"global options\" ]\n.I command\n.RI [ \"command options\" ]\n.RI [ arguments... ]" in man


# ---------------------------------------------------------------- TLS

def make_certs(d):
    """A CA, a server certificate for 127.0.0.1 signed by it, and an
    unrelated CA; EC P-256 keys made with the openssl command."""
    def ossl(*args):
        subprocess.run(["openssl"] + list(args), cwd=d, check=True, capture_output=True, timeout=30)
    for ca in ("ca", "other"):
        ossl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", ca + ".key", "-out", ca + ".crt", "-days", "2", "-subj", "/CN=" + ca)
    ossl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", "server.key",
         "-out", "server.csr", "-subj", "/CN=127.0.0.1")
    with open(os.path.join(d, "ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n"
                "keyUsage=digitalSignature,keyEncipherment\n")
    ossl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
         "-out", "server.crt", "-days", "2", "-extfile", "ext")


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory):
    """Debian's etcd serving clients over https on 127.0.0.1 (peers in plain
    http), with the certificates in .dir."""
    import shutil
    import ssl
    import urllib.request
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is missing")
    reason = etcdproc.kind_unavailable("etcd")
    if reason:
        pytest.skip(reason)
    d = str(tmp_path_factory.mktemp("tls"))
    make_certs(d)
    port, peer = etcdproc.free_port(), etcdproc.free_port()
    url = "https://127.0.0.1:%d" % port
    purl = "http://127.0.0.1:%d" % peer
    log = open(os.path.join(d, "etcd.log"), "wb")
    proc = subprocess.Popen([etcdproc.DEBIAN_ETCD, "--enable-v2=true", "--data-dir", os.path.join(d, "data"),
                             "--listen-client-urls", url, "--advertise-client-urls", url,
                             "--listen-peer-urls", purl, "--initial-advertise-peer-urls", purl,
                             "--initial-cluster", "default=" + purl,
                             "--cert-file", os.path.join(d, "server.crt"),
                             "--key-file", os.path.join(d, "server.key")],
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            env=base_env(), start_new_session=True)
    ctx = ssl.create_default_context(cafile=os.path.join(d, "ca.crt"))
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                urllib.request.urlopen(url + "/v2/keys/", context=ctx, timeout=1).read()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    pytest.fail("TLS etcd did not start:\n" + open(os.path.join(d, "etcd.log")).read()[-3000:])
                time.sleep(0.1)

        class TLSServer:
            pass
        srv = TLSServer()
        srv.url, srv.dir, srv.port, srv.ssl = url, d, port, ctx
        yield srv
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(5)
        log.close()


def test_etcdctl_tls_compat(tls_server, ports):
    """https endpoints, --ca-file/--cert-file/--key-file and their variables,
    certificate errors: both etcdctls against one TLS etcd."""
    d = tls_server.dir
    ca, other = os.path.join(d, "ca.crt"), os.path.join(d, "other.crt")
    crt, key = os.path.join(d, "server.crt"), os.path.join(d, "server.key")
    plain = "http://127.0.0.1:%d" % tls_server.port
    steps = [
        S(0, "--ca-file", ca, "set", "/t", "v"),
        S(0, "--ca-file", ca, "-o", "extended", "get", "/t"),
        S(0, "get", "/t", env={"ETCDCTL_CA_FILE": ca}),
        S(4, "get", "/t"),
        S(4, "--no-sync", "get", "/t"),
        S(4, "--ca-file", other, "get", "/t"),
        S(1, "--ca-file", os.path.join(d, "missing.crt"), "get", "/t"),
        S(1, "--cert-file", crt, "get", "/t"),
        S(0, "--ca-file", ca, "--cert-file", crt, "--key-file", key, "get", "/t"),
        S(0, "get", "/t", env={"ETCDCTL_CA_FILE": ca, "ETCDCTL_CERT_FILE": crt, "ETCDCTL_KEY_FILE": key}),
        S(0, "--ca-file", ca, "cluster-health"),
        S(0, "--ca-file", ca, "--debug", "member", "list"),
        S(4, "--endpoints", plain, "get", "/t", endpoints=False),
        S(4, "--no-sync", "--endpoints", plain, "get", "/t", endpoints=False),
    ]
    import urllib.request

    def tls_reset():
        def req(method, path, body=None):
            r = urllib.request.Request(tls_server.url + path, data=body, method=method,
                                       headers={"Content-Type": FORM})
            try:
                with urllib.request.urlopen(r, context=tls_server.ssl, timeout=5) as resp:
                    return resp.headers.get("X-Etcd-Index")
            except urllib.error.HTTPError as e:
                return e.headers.get("X-Etcd-Index")
        req("DELETE", "/v2/keys/t")
        req("PUT", "/v2/keys/_ctl_base", b"value=x")
        return int(req("DELETE", "/v2/keys/_ctl_base"))

    ctx = dict(ports)
    ctx["url"] = tls_server.url
    out = {}
    for impl in ("debian", "corebox"):
        ctx["base"] = tls_reset()
        res = []
        for st in steps:
            o = run_step(impl, st, ctx)
            ttls = []
            res.append((o.rc, normalise(o.stdout, ctx, ttls, st), normalise(o.stderr, ctx, ttls, st), ttls))
        out[impl] = res
    compare("tls", steps, out["debian"], out["corebox"])
