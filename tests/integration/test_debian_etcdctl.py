"""Debian's etcdctl (ETCDCTL_API=2) as a client of the subject server, its
stdout, stderr and exit code compared with the same commands against the
reference server (see test_conformance for the pairing and the reset).

Normalised before comparing: the index in "Error: ... [N]", the
"Created-Index:", "Modified-Index:" and "Index:" lines of -o extended and the
index fields of -o json become relative to the scenario's base index; 20-digit
in-order key names likewise; "TTL:" lines and "ttl" fields become <TTL> with
the values compared to within 2 s; "expiration" becomes <EXP>; the server's
own URL becomes <URL>. Listings without --sort are compared as sorted lines
(etcd lists in Go map order).

Never talks to anything but the two servers the fixture started on 127.0.0.1;
every command runs with a timeout and background watchers are killed.
"""

import concurrent.futures
import os
import re
import signal
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import etcdproc  # noqa: E402
from test_conformance import reset_state, do_request, FORM, rel, render  # noqa: E402

CMD_TIMEOUT_S = 15.0
WATCH_WRITES_MAX = 20
WATCH_WRITE_GAP_S = 0.25

pytestmark = pytest.mark.skipif(not os.access(etcdproc.DEBIAN_ETCDCTL, os.X_OK),
                                reason="%s is missing (scripts/setup installs etcd-client)"
                                % etcdproc.DEBIAN_ETCDCTL)


def ctl_env():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ETCDCTL_", "ETCD_"))}
    env["ETCDCTL_API"] = "2"
    return env


def ctl_argv(server, args):
    return [etcdproc.DEBIAN_ETCDCTL, "--endpoints", server.url] + list(args)


class Out:
    def __init__(self, rc, stdout, stderr, sort=False, index_compare=False):
        self.rc = rc
        self.index_compare = index_compare
        self.stdout = stdout.decode("utf-8", "replace")
        self.stderr = stderr.decode("utf-8", "replace")
        self.sort = sort


def run_ctl(server, args, base, sort=False):
    args = [render(a, base) for a in args]
    try:
        p = subprocess.run(ctl_argv(server, args), capture_output=True, env=ctl_env(),
                           timeout=CMD_TIMEOUT_S, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        return Out(None, e.stdout or b"", (e.stderr or b"") + b"\n<timed out>")
    return Out(p.returncode, p.stdout, p.stderr, sort,
               index_compare=bool({"--with-index", "--swap-with-index"} & set(args)))


def run_watch(server, args, base, key_path, value, forever=False):
    """Starts `etcdctl ARGS` in the background, then writes key_path=value
    (again every WATCH_WRITE_GAP_S, at most WATCH_WRITES_MAX times, in case
    the watcher was not registered yet) until the watcher prints a line; a
    non-forever watch must then exit by itself, a forever one is killed."""
    args = [render(a, base) for a in args]
    p = subprocess.Popen(ctl_argv(server, args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env=ctl_env(), stdin=subprocess.DEVNULL, start_new_session=True)
    os.set_blocking(p.stdout.fileno(), False)
    out = b""
    try:
        for _ in range(WATCH_WRITES_MAX):
            r = do_request(server, "PUT", "/v2/keys" + key_path,
                           ("value=" + value).encode(), {"Content-Type": FORM})
            assert r.status in (200, 201), (r.status, r.error, r.body)
            deadline = time.monotonic() + WATCH_WRITE_GAP_S
            while time.monotonic() < deadline and b"\n" not in out:
                chunk = p.stdout.read()
                if chunk:
                    out += chunk
                time.sleep(0.02)
            if b"\n" in out:
                break
        if forever:
            time.sleep(0.2)
            os.killpg(p.pid, signal.SIGKILL)
        try:
            p.wait(5.0)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(5.0)
            return Out(None, out, b"<did not exit after the event>")
        os.set_blocking(p.stdout.fileno(), True)
        out += p.stdout.read() or b""
        err = p.stderr.read() or b""
        return Out("killed" if forever else p.returncode, out, err)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(5.0)
        p.stdout.close()
        p.stderr.close()


_R_ERRIDX = re.compile(r"\[(\d+)\]$", re.M)
_R_EXT = re.compile(r"^(Created-Index|Modified-Index|Index): (\d+)$", re.M)
_R_TTL_LINE = re.compile(r"^TTL: (-?\d+)$", re.M)
_R_JSON_IDX = re.compile(r'"(modifiedIndex|createdIndex)":(\d+)')
_R_JSON_EXP = re.compile(r'"expiration":"[^"]*"')
_R_JSON_TTL = re.compile(r'"ttl":(-?\d+)')
_R_SEQ = re.compile(r"(?<=/)(\d{20})(?=/|$|\s|\))", re.M)


_R_CAUSE_IDX = re.compile(r"\[(\S*) != (\d+)\]\)")


def normalise(text, base, server, ttls, sort, index_compare=False):
    text = text.replace(server.url, "<URL>")
    if index_compare:
        # "Compare failed ([sent != modifiedIndex])": the second is an index.
        text = _R_CAUSE_IDX.sub(lambda m: "[%s != %s])" % (m.group(1), rel(m.group(2), base)), text)
    text = _R_ERRIDX.sub(lambda m: "[%s]" % rel(m.group(1), base), text)
    text = _R_EXT.sub(lambda m: "%s: %s" % (m.group(1), rel(m.group(2), base)), text)
    text = _R_JSON_IDX.sub(lambda m: '"%s":"%s"' % (m.group(1), rel(m.group(2), base)), text)
    text = _R_JSON_EXP.sub('"expiration":"<EXP>"', text)
    text = _R_SEQ.sub(lambda m: "<%s>" % rel(m.group(1), base), text)

    def ttl(m):
        ttls.append(int(m.group(1)))
        return m.group(0).replace(m.group(1), "<TTL>")
    text = _R_TTL_LINE.sub(ttl, text)
    text = _R_JSON_TTL.sub(ttl, text)
    if sort:
        text = "\n".join(sorted(text.splitlines()))
    return text


def compare_out(a, base_a, srv_a, b, base_b, srv_b):
    diffs = []
    if a.rc != b.rc:
        diffs.append("exit code: reference %s, subject %s" % (a.rc, b.rc))
    ta, tb = [], []
    for what in ("stdout", "stderr"):
        x = normalise(getattr(a, what), base_a, srv_a, ta, a.sort, a.index_compare)
        y = normalise(getattr(b, what), base_b, srv_b, tb, b.sort, b.index_compare)
        if x != y:
            diffs.append("%s:\n  reference %r\n  subject   %r" % (what, x, y))
    if len(ta) != len(tb) or any(abs(x - y) > 2 for x, y in zip(ta, tb)):
        diffs.append("ttl: reference %s, subject %s" % (ta, tb))
    return diffs


# A step: ("ctl", args...) runs and compares; ("ctl-sorted", args...) compares
# lines sorted; ("watch", key, value, args...) / ("watch-forever", ...) run a
# background watcher; every step also states the reference's exit code.
def C(rc, *args):
    return ("ctl", rc, args)


def CS(rc, *args):
    return ("ctl-sorted", rc, args)


def W(rc, key, value, *args):
    return ("watch", rc, (key, value) + args)


def WF(key, value, *args):
    return ("watch-forever", "killed", (key, value) + args)


CTL = {
    "set_get": [
        C(0, "set", "/a", "1"),
        C(0, "get", "/a"),
        C(0, "set", "/a", "2", "--ttl", "100"),
        C(0, "-o", "extended", "get", "/a"),
        C(0, "-o", "json", "get", "/a"),
        C(4, "get", "/nope"),
        C(0, "set", "/d/x", "1"),
        C(1, "get", "/d"),
        C(0, "set", "/a", "3", "--swap-with-value", "2"),
        C(4, "set", "/a", "4", "--swap-with-value", "2"),
        C(0, "set", "/a", "5", "--swap-with-index", "{B+4}"),
        C(4, "set", "/a", "6", "--swap-with-index", "1"),
        C(0, "-o", "extended", "set", "/a", "7"),
        C(0, "get", "--quorum", "/a"),
        C(1, "get"),
        C(1, "set", "/x"),
        C(0, "set", "/v", "multi word value with <>&"),
        C(0, "get", "/v"),
    ],
    "mk_mkdir_update": [
        C(0, "mk", "/m", "1"),
        C(4, "mk", "/m", "2"),
        C(0, "mk", "/t", "1", "--ttl", "100"),
        C(0, "-o", "extended", "get", "/t"),
        C(0, "mkdir", "/dir"),
        C(4, "mkdir", "/dir"),
        C(4, "mkdir", "/m"),
        C(0, "mkdir", "/tdir", "--ttl", "100"),
        C(0, "update", "/m", "3"),
        C(4, "update", "/nope", "3"),
        C(0, "update", "/m", "4", "--ttl", "200"),
        C(0, "-o", "extended", "get", "/m"),
        C(0, "setdir", "/sd"),
        C(0, "updatedir", "/sd", "--ttl", "100"),
        C(4, "updatedir", "/nope", "--ttl", "100"),
        C(0, "mk", "--in-order", "/q", "first"),
        C(0, "mk", "--in-order", "/q", "second"),
        C(0, "ls", "--sort", "/q"),
        C(0, "-o", "json", "mk", "/j", "json"),
    ],
    "ls": [
        C(0, "set", "/l/b", "1"),
        C(0, "set", "/l/a", "1"),
        C(0, "set", "/l/d/e/f", "1"),
        C(0, "mkdir", "/l/empty"),
        C(0, "set", "/top", "1"),
        C(0, "ls", "--sort"),
        CS(0, "ls"),
        C(0, "ls", "--sort", "/l"),
        C(0, "ls", "-r", "--sort", "/l"),
        C(0, "ls", "-p", "--sort", "/l"),
        C(0, "ls", "-r", "-p", "--sort"),
        C(0, "ls", "/top"),
        C(4, "ls", "/nope"),
        C(0, "-o", "extended", "ls", "--sort", "/l"),
        C(0, "ls", "--sort", "/l/d/e"),
    ],
    "rm": [
        C(0, "set", "/r/a", "1"),
        C(0, "set", "/r/b", "2"),
        C(0, "mkdir", "/r/empty"),
        C(4, "rm", "/r"),
        C(4, "rm", "--dir", "/r"),
        C(0, "rm", "--dir", "/r/empty"),
        C(4, "rm", "/r/a", "--with-value", "9"),
        C(0, "rm", "/r/a", "--with-value", "1"),
        C(4, "rm", "/r/b", "--with-index", "1"),
        C(0, "rm", "/r/b", "--with-index", "{B+2}"),
        C(4, "rm", "/r/nope"),
        C(0, "set", "/r/c/d", "1"),
        C(0, "rm", "--recursive", "/r"),
        C(4, "get", "/r"),
        C(4, "rmdir", "/nope"),
        C(0, "mkdir", "/e"),
        C(0, "rmdir", "/e"),
        C(0, "-o", "extended", "set", "/x", "1"),
        C(0, "-o", "extended", "rm", "/x"),
    ],
    "watch": [
        C(0, "set", "/k", "0"),
        C(0, "set", "/k", "1"),
        C(0, "watch", "--after-index", "{B+1}", "/k"),
        C(0, "-o", "json", "watch", "--after-index", "{B+1}", "/k"),
        C(0, "-o", "extended", "watch", "--after-index", "{B+0}", "/k"),
        C(0, "set", "/wd/x", "1"),
        C(0, "watch", "-r", "--after-index", "{B+1}", "/wd"),
        # Background watchers last: they may need more than one write to see
        # one (see run_watch), which moves the indexes of later steps.
        W(0, "/k", "one", "watch", "/k"),
        W(0, "/wd/x", "three", "watch", "-r", "/wd"),
        WF("/k", "four", "watch", "--forever", "/k"),
    ],
    "exec_watch": [
        C(0, "set", "/k", "0"),
        # Debian's etcdctl 3.4 drops "--" when no flag precedes the key and
        # then takes the LAST argument as the key: this form is the one that
        # works without -r.
        WF("/k", "fired", "exec-watch", "sh", "-c",
           'echo "$ETCD_WATCH_ACTION $ETCD_WATCH_KEY $ETCD_WATCH_VALUE"', "/k"),
        WF("/ed/y", "deep", "exec-watch", "-r", "/ed", "--", "sh", "-c",
           'echo "$ETCD_WATCH_ACTION $ETCD_WATCH_KEY $ETCD_WATCH_VALUE"'),
        C(1, "exec-watch", "/k"),
    ],
}


def run_script(server, script):
    base = reset_state(server, ())
    outs = []
    for kind, _, args in script:
        if kind in ("ctl", "ctl-sorted"):
            outs.append(run_ctl(server, args, base, sort=(kind == "ctl-sorted")))
        else:
            key, value = args[0], args[1]
            outs.append(run_watch(server, args[2:], base, key, value, forever=(kind == "watch-forever")))
    return base, outs


@pytest.mark.parametrize("name", sorted(CTL))
def test_etcdctl(conformance_pair, name):
    ref, sub = conformance_pair
    script = CTL[name]
    with concurrent.futures.ThreadPoolExecutor(2) as ex:
        fa = ex.submit(run_script, ref, script)
        fb = ex.submit(run_script, sub, script)
        (base_a, outs_a), (base_b, outs_b) = fa.result(), fb.result()
    problems = []
    for (kind, rc, args), a, b in zip(script, outs_a, outs_b):
        title = "etcdctl %s" % " ".join(args if kind.startswith("ctl") else args[2:])
        if a.rc != rc:
            problems.append("%s: scenario expects the reference to exit %s, it exited %s (stdout %r, stderr %r)"
                            % (title, rc, a.rc, a.stdout, a.stderr))
        d = compare_out(a, base_a, ref, b, base_b, sub)
        if d:
            problems.append(title + "\n  " + "\n  ".join(d))
    if problems:
        pytest.fail("%s vs %s, etcdctl %s:\n%s" % (ref.kind, sub.kind, name, "\n".join(problems)),
                    pytrace=False)


def test_etcdctl_unreachable_endpoint():
    """Exit code 2 and the cluster-unavailable message when nothing listens:
    a guard for the error-path normalisation, no server needed."""
    port = etcdproc.free_port()
    p = subprocess.run([etcdproc.DEBIAN_ETCDCTL, "--endpoints", "http://127.0.0.1:%d" % port, "get", "/a"],
                       capture_output=True, env=ctl_env(), timeout=CMD_TIMEOUT_S)
    assert p.returncode == 2
    assert b"cluster is unavailable or misconfigured" in p.stderr
