"""The multicall front door of the corebox binary: --list, --install [-s]
[DIR], dispatch on argv[0] (basename, a login shell's leading '-' stripped)
and on the first argument, and exit 127 for unknown applets.

Tests that need applets use whatever `corebox --list` prints and skip with
the reason when it prints nothing. Everything happens in temporary
directories; nothing is installed anywhere else and no server is started.
"""

import os
import re
import shutil
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import etcdproc  # noqa: E402

RUN_TIMEOUT_S = 10
APPLETS_DEF = os.path.join(etcdproc.REPO, "src", "applets.def")


def corebox():
    binary = etcdproc.corebox_bin()
    if not os.access(binary, os.X_OK):
        pytest.skip("corebox binary %s is missing (build it or set COREBOX_BIN)" % binary)
    return binary


def run(argv, executable=None, cwd=None):
    return subprocess.run(argv, executable=executable, capture_output=True, timeout=RUN_TIMEOUT_S,
                          stdin=subprocess.DEVNULL, cwd=cwd)


def applets():
    out = run([corebox(), "--list"])
    assert out.returncode == 0, out.stderr
    return out.stdout.decode().split()


def need_applets():
    names = applets()
    if not names:
        pytest.skip("`corebox --list` prints no applets yet")
    return names


@pytest.fixture
def own_copy(tmp_path):
    """A copy of the binary in a temporary directory, so that hard links and
    the default install directory (the binary's own) stay inside tmp_path."""
    d = tmp_path / "bin"
    d.mkdir()
    dst = d / "corebox"
    shutil.copy2(corebox(), dst)
    return dst


def test_list_prints_one_name_per_line_sorted_unique():
    out = run([corebox(), "--list"])
    assert out.returncode == 0
    assert out.stderr == b""
    text = out.stdout.decode()
    names = text.split("\n")[:-1] if text else []
    assert text == "" or text.endswith("\n")
    for n in names:
        assert re.fullmatch(r"[a-z][a-z0-9_-]*", n), "bad applet name %r" % n
    assert names == sorted(names), "dispatch is a binary search: the list must be sorted"
    assert len(set(names)) == len(names)


def test_list_matches_applets_def():
    binary = corebox()
    if not os.path.realpath(binary).startswith(os.path.realpath(etcdproc.REPO) + os.sep):
        pytest.skip("%s is not built from this tree" % binary)
    if os.path.getmtime(binary) < os.path.getmtime(APPLETS_DEF):
        pytest.skip("%s is older than src/applets.def: rebuild to compare" % binary)
    with open(APPLETS_DEF) as f:
        src = f.read()
    declared = re.findall(r'^APPLET\(\s*\w+\s*,\s*"([^"]+)"', src, re.M)
    assert applets() == sorted(declared)


def test_version_help_and_no_arguments():
    out = run([corebox(), "--version"])
    assert out.returncode == 0
    assert re.fullmatch(rb"corebox \S+\n", out.stdout), out.stdout
    out = run([corebox(), "--help"])
    assert out.returncode == 0
    assert b"Usage: corebox APPLET" in out.stdout
    out = run([corebox()])
    assert out.returncode == 1, "no applet given is a usage error"
    assert b"Usage: corebox APPLET" in out.stderr
    assert out.stdout == b""


def test_unknown_applet_as_argument_exits_127():
    out = run([corebox(), "nosuch"])
    assert out.returncode == 127
    assert out.stderr == b"corebox: applet not found: nosuch\n"
    assert out.stdout == b""


def test_unknown_applet_through_symlink_exits_127(tmp_path):
    link = tmp_path / "nosuch"
    os.symlink(corebox(), link)
    out = run([str(link), "--version"])
    assert out.returncode == 127
    assert out.stderr == b"nosuch: applet not found\n"
    assert out.stdout == b""


def test_unknown_applet_with_login_dash_exits_127():
    out = run(["-nosuch"], executable=corebox())
    assert out.returncode == 127
    assert out.stderr == b"nosuch: applet not found\n", "the leading '-' is stripped"


def test_argv0_dash_corebox_is_corebox():
    out = run(["-corebox", "--list"], executable=corebox())
    assert out.returncode == 0
    assert out.stdout.decode().split() == applets()


def test_argv0_path_uses_basename(tmp_path):
    out = run([str(tmp_path / "some" / "dir" / "corebox"), "--version"], executable=corebox())
    assert out.returncode == 0
    assert out.stdout.startswith(b"corebox ")


def test_login_dash_etcd_dispatches():
    names = need_applets()
    name = "etcd" if "etcd" in names else names[0]
    direct = run([corebox(), name, "--version"])
    dashed = run(["-" + name, "--version"], executable=corebox())
    assert direct.returncode == 0
    assert dashed.returncode == 0
    assert dashed.stdout == direct.stdout and dashed.stdout != b""
    if name != "etcd":
        pytest.skip("no etcd applet yet; checked -%s instead" % name)


def test_install_without_applets_creates_nothing(tmp_path):
    if applets():
        pytest.skip("applets exist: covered by the install tests below")
    d = tmp_path / "links"
    d.mkdir()
    out = run([corebox(), "--install", "-s", str(d)])
    assert out.returncode == 0, out.stderr
    assert os.listdir(d) == []


def test_install_symlinks_every_applet_and_each_runs(tmp_path):
    names = need_applets()
    d = tmp_path / "links"
    d.mkdir()
    out = run([corebox(), "--install", "-s", str(d)])
    assert out.returncode == 0, out.stderr
    assert sorted(os.listdir(d)) == sorted(names)
    target = os.path.realpath(corebox())
    for n in names:
        p = d / n
        assert os.path.islink(p), "%s is not a symlink" % p
        assert os.path.realpath(p) == target
        v = run([str(p), "--version"])
        assert v.returncode == 0, "%s --version: %r" % (n, v.stderr)
        assert v.stdout == run([corebox(), n, "--version"]).stdout


def test_install_skips_existing_names(tmp_path):
    names = need_applets()
    d = tmp_path / "links"
    d.mkdir()
    keep = d / names[0]
    keep.write_bytes(b"not corebox\n")
    os.chmod(keep, 0o640)
    before = os.stat(keep)
    out = run([corebox(), "--install", "-s", str(d)])
    assert out.returncode == 0, out.stderr
    after = os.stat(keep)
    assert not os.path.islink(keep)
    assert keep.read_bytes() == b"not corebox\n"
    assert (after.st_ino, after.st_mtime_ns, after.st_mode) == (before.st_ino, before.st_mtime_ns, before.st_mode)
    for n in names[1:]:
        assert os.path.islink(d / n)
    again = run([corebox(), "--install", "-s", str(d)])
    assert again.returncode == 0, "a second install over complete links succeeds"


def test_install_without_s_makes_hard_links(own_copy):
    names = need_applets()
    d = own_copy.parent.parent / "hard"
    d.mkdir()
    out = run([str(own_copy), "--install", str(d)])
    assert out.returncode == 0, out.stderr
    ino = os.stat(own_copy).st_ino
    for n in names:
        p = d / n
        assert not os.path.islink(p)
        assert os.stat(p).st_ino == ino, "%s is not a hard link to the binary" % p
        assert run([str(p), "--version"]).returncode == 0
    assert os.stat(own_copy).st_nlink == 1 + len(names)


def test_install_defaults_to_the_binary_directory(own_copy):
    names = need_applets()
    out = run([str(own_copy), "--install", "-s"])
    assert out.returncode == 0, out.stderr
    assert sorted(os.listdir(own_copy.parent)) == sorted(names + ["corebox"])


def test_install_usage_errors(tmp_path):
    out = run([corebox(), "--install", "-s", str(tmp_path), "extra"])
    assert out.returncode == 1
    assert b"Usage: corebox --install [-s] [DIR]" in out.stderr
    assert os.listdir(tmp_path) == []


def test_install_into_missing_directory_fails(tmp_path):
    names = need_applets()
    out = run([corebox(), "--install", "-s", str(tmp_path / "missing")])
    assert out.returncode == 1
    assert names[0].encode() in out.stderr
