"""Process helpers for the integration suites: start an etcd-compatible server
(corebox's `etcd` applet or Debian's etcd 3.4 with the v2 API enabled) on
127.0.0.1 with free ports and a fresh data directory, wait until it answers,
and stop, kill or restart it.

Never listens anywhere but 127.0.0.1, never waits without a bound, and never
touches a process it did not start itself.
"""

import atexit
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
DEFAULT_COREBOX_BIN = os.path.join(REPO, "build", "corebox")
DEBIAN_ETCD = "/usr/bin/etcd"
DEBIAN_ETCDCTL = "/usr/bin/etcdctl"

READY_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 5.0
START_ATTEMPTS_MAX = 3  # a free port can be taken between probe and bind


def corebox_bin():
    return os.environ.get("COREBOX_BIN", DEFAULT_COREBOX_BIN)


def corebox_applets(binary=None):
    """Applet names printed by `corebox --list`, or None if it cannot run."""
    binary = binary or corebox_bin()
    if not os.access(binary, os.X_OK):
        return None
    try:
        out = subprocess.run([binary, "--list"], capture_output=True,
                             timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    return [l.strip() for l in out.stdout.decode("utf-8", "replace").splitlines() if l.strip()]


def kind_unavailable(kind):
    """None if servers of this kind can run here, else the reason they cannot."""
    if kind == "etcd":
        if not os.access(DEBIAN_ETCD, os.X_OK):
            return "%s is missing (scripts/setup installs Debian's etcd-server)" % DEBIAN_ETCD
        return None
    if kind == "corebox":
        binary = corebox_bin()
        applets = corebox_applets(binary)
        if applets is None:
            return "corebox binary %s is missing or does not run (set COREBOX_BIN)" % binary
        if "etcd" not in applets:
            return "%s --list has no etcd applet yet" % binary
        return None
    return "unknown server kind %r (want etcd or corebox)" % kind


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


def http_request(url_or_port, method, path, body=None, headers=None, timeout=5.0):
    """One request on a fresh connection; returns (status, headers, body bytes).

    http.client sends the path exactly as given (no dot-segment removal, no
    re-quoting), which the conformance suite needs."""
    port = url_or_port if isinstance(url_or_port, int) else int(url_or_port.rsplit(":", 1)[1])
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, resp.getheaders(), data
    finally:
        conn.close()


class ServerError(Exception):
    pass


# Processes started here and not yet reaped: killed at interpreter exit so an
# interrupted run (Ctrl-C, a crash in the harness) leaves nothing listening.
_live = set()


@atexit.register
def _kill_leftovers():
    for proc in list(_live):
        if proc.poll() is None:
            proc.kill()


class Server:
    """One server process. Attributes: kind, url, port, peer_port, data_dir,
    proc, log_path. The data directory lives in a private temporary directory
    removed by cleanup()."""

    def __init__(self, kind, name="default", extra_args=None, check_keys=True):
        reason = kind_unavailable(kind)
        if reason:
            raise ServerError(reason)
        self.kind = kind
        self.name = name
        self.extra_args = list(extra_args or [])
        self.check_keys = check_keys
        self.tmp = tempfile.mkdtemp(prefix="corebox-it-%s-" % kind)
        self.data_dir = os.path.join(self.tmp, "data")
        self.log_path = os.path.join(self.tmp, "server.log")
        self.proc = None
        self.port = None
        self.peer_port = None
        self.url = None
        self._log = None

    # -- command line -------------------------------------------------
    def argv(self):
        peer = "http://127.0.0.1:%d" % self.peer_port
        if self.kind == "corebox":
            argv = [corebox_bin(), "etcd"]
        else:
            argv = [DEBIAN_ETCD]
        argv += [
            "--name", self.name,
            "--data-dir", self.data_dir,
            "--listen-client-urls", self.url,
            "--advertise-client-urls", self.url,
            "--listen-peer-urls", peer,
            "--initial-advertise-peer-urls", peer,
            "--initial-cluster", "%s=%s" % (self.name, peer),
        ]
        if self.kind == "etcd":
            argv.append("--enable-v2=true")
        return argv + self.extra_args

    # -- lifecycle ----------------------------------------------------
    def start(self):
        """Start on free ports (retrying if a port was taken meanwhile) and
        wait until ready. Keeps the ports chosen on the first success so that
        restart() comes back on the same URL."""
        last = None
        for _ in range(START_ATTEMPTS_MAX):
            if self.port is None or last is not None:
                self.port = free_port()
                self.peer_port = free_port()
                while self.peer_port == self.port:
                    self.peer_port = free_port()
                self.url = "http://127.0.0.1:%d" % self.port
            try:
                self._spawn()
                self.wait_ready()
                return self
            except ServerError as e:
                last = e
                self.kill()
                if os.path.isdir(self.data_dir) and not self._has_data:
                    shutil.rmtree(self.data_dir, ignore_errors=True)
        raise last

    _has_data = False

    def _spawn(self):
        self._log = open(self.log_path, "ab")
        self._log.write(("\n=== %s\n" % " ".join(self.argv())).encode())
        self._log.flush()
        env = dict(os.environ)
        # Debian's etcd reads ETCD_* variables; none from the caller may leak in.
        for k in list(env):
            if k.startswith("ETCD_") or k.startswith("ETCDCTL_"):
                del env[k]
        self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL,
                                     stdout=self._log, stderr=subprocess.STDOUT,
                                     env=env, start_new_session=True)
        _live.add(self.proc)

    def log_tail(self, n=4000):
        try:
            with open(self.log_path, "rb") as f:
                data = f.read()
            return data[-n:].decode("utf-8", "replace")
        except OSError:
            return ""

    def wait_ready(self, timeout=READY_TIMEOUT_S):
        """Wait until /version answers and (check_keys) the keys API serves the
        root with a stable X-Etcd-Index: etcd 3.4 writes its member attributes
        and cluster version into the v2 store just after start, and a test must
        not see those writes land between two of its requests."""
        deadline = time.monotonic() + timeout
        last_err = None
        stage = "version"
        prev_index = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServerError("%s exited with %s during start-up:\n%s" %
                                  (self.kind, self.proc.returncode, self.log_tail()))
            try:
                if stage == "version":
                    st, _, body = http_request(self.port, "GET", "/version", timeout=1.0)
                    if st == 200:
                        stage = "keys" if self.check_keys else "done"
                        if self.kind == "etcd":
                            v = json.loads(body)
                            if v.get("etcdcluster") == "not_decided":
                                stage = "version"
                if stage == "keys":
                    st, hdrs, _ = http_request(self.port, "GET", "/v2/keys/", timeout=1.0)
                    if st == 200:
                        idx = dict(hdrs).get("X-Etcd-Index")
                        if idx is not None and idx == prev_index:
                            stage = "done"
                        prev_index = idx
                if stage == "done":
                    self._has_data = True
                    return
            except (OSError, http.client.HTTPException, ValueError) as e:
                last_err = e
            time.sleep(0.1)
        raise ServerError("%s at %s not ready after %.0f s (stage %s, last error %r):\n%s" %
                          (self.kind, self.url, timeout, stage, last_err, self.log_tail()))

    def stop(self):
        """SIGTERM, then SIGKILL if it has not exited within STOP_TIMEOUT_S."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(STOP_TIMEOUT_S)
        self._close_log()

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                pass
        self._close_log()

    def restart(self):
        """Stop and start again on the same URL with the same data dir."""
        self.stop()
        self._spawn()
        self.wait_ready()
        return self

    def _close_log(self):
        if self.proc is not None and self.proc.poll() is not None:
            _live.discard(self.proc)
        if self._log is not None:
            self._log.close()
            self._log = None

    def cleanup(self):
        self.kill()
        shutil.rmtree(self.tmp, ignore_errors=True)

    # -- convenience --------------------------------------------------
    def request(self, method, path, body=None, headers=None, timeout=5.0):
        return http_request(self.port, method, path, body, headers, timeout)

    def __repr__(self):
        return "<Server %s %s>" % (self.kind, self.url)
