"""etcd v2 keys-API conformance: the same requests against a reference server
and a subject server, answers compared after normalisation.

The reference is Debian's etcd 3.4 run with --enable-v2=true; the subject is
corebox's `etcd` applet. COREBOX_CONF_REFERENCE / COREBOX_CONF_SUBJECT
(kinds "etcd" or "corebox") choose the pair; with both set to etcd, two
independent etcd instances are compared, which is how this suite was
validated. The test_selfcheck_* tests always run etcd against etcd and also
prove that a perturbed answer is caught.

This file must never talk to anything but the two servers it started on
127.0.0.1, and every loop in it is bounded in count and time.

How a scenario runs
-------------------
SCENARIOS is data: each scenario is a list of steps (method, path, form or raw
body, headers, and options). Before a scenario each server is reset: every
top-level key it lists or that an earlier scenario touched (hidden `_` keys
are not listed, so those are remembered) is deleted recursively; then a hidden
key `/_conformance_base` is written and deleted, and the X-Etcd-Index of that
delete is the scenario's base index B (at least 2 on any server, so that
index 0, which etcd uses for "no index" in parameter errors, is never
confused with B). Both servers then run the steps at the same time, one
thread each, and every step's answers are compared.

Step paths and bodies may contain templates: {B+3} is the base index plus 3
(the third write of the scenario has modifiedIndex B+3), {K:B+3} is the same
number zero-padded to 20 digits as in-order POST keys are named.

Compared for every step
-----------------------
- status code;
- headers: Content-Type, Allow, Location, X-Content-Type-Options and the
  Access-Control-* (CORS) headers exactly; X-Etcd-Index after index
  normalisation; X-Raft-Index, X-Raft-Term and X-Etcd-Cluster-Id present or
  absent (their values depend on the raft log and the cluster identity, which
  differ between any two clusters). Date, Content-Length and
  Transfer-Encoding are not compared: Go chunks any body over 2 KiB and the
  length follows from the normalised body, which is compared;
- the body twice: as raw text after textual normalisation (so field order,
  JSON string escaping, spacing and the trailing newline must match byte for
  byte), and as parsed JSON after the same normalisation (a readable diff
  when only values differ);
- for long-poll watches: whether the response headers arrived before the
  event was written (etcd flushes them when the watch is registered).

Normalisations, and why
-----------------------
1. Indexes are relative: every number in an index position (the
   X-Etcd-Index header; "modifiedIndex", "createdIndex" and "index" fields)
   becomes "B+k" / "B-k" relative to the scenario's base index. Two fresh
   servers start at different store indexes (etcd 3.4 starts its v2 store at
   3 to 5 depending on its bootstrap writes), but every successful write and
   every expiry adds exactly one, and clients compute waitIndex as
   modifiedIndex+1, so the offsets are part of the contract and compared
   exactly (a plain "order of appearance" mapping would hide an index that
   moves on a failed write). The value 0 stays 0: etcd answers parameter
   errors before consulting the store with X-Etcd-Index: 0 and "index":0.
2. In-order keys: a 20-digit path component in a "key" or "cause" string
   (POST names keys after the index, zero-padded) is replaced by its
   relative index.
3. Error causes that echo indexes: for errorCode 101 with prevIndex in the
   request, the final "[X != Y]" has X replaced by the prevIndex text the step
   sent (a template or a literal) and Y (the node's modifiedIndex) made
   relative; for errorCode 401 "[A/R]", A (the oldest index in the event
   history) is made relative and R replaced by the waitIndex text sent.
4. "expiration" becomes "<EXP>" after checking it is RFC 3339 in UTC with
   Go's trimmed nanoseconds (no trailing zeros) and, when the node also has
   "ttl", that it lies ttl seconds (+-2 s) after the moment of the answer.
5. "ttl" becomes "<TTL>"; the two servers' ttl values, in order of
   appearance, must differ by at most 2 s (the servers are asked at nearly
   the same moment, etcd rounds the remaining time up, and a loaded machine
   can delay one thread by a second).
6. Unordered listings (mode "unordered"): etcd lists a directory's children
   in Go map order, which is random, unless sorted=true. Those steps sort
   every "nodes" array by key before comparing and compare a re-serialised
   text (field order still compared, string escaping not).
7. Server identity (modes "members", "urltext"): the server's own client and
   peer URLs become <CURL>/<PURL> and member ids <ID>, then the text is
   compared exactly.
8. Shape only (mode "shape") for /version and /v2/stats/*: counters,
   versions, times and ids differ between any two servers; the ordered field
   names, the JSON types and the trailing newline are compared.
9. Mode "status" (/metrics): only status and Content-Type; the metric set is
   the implementation's own.
"""

import concurrent.futures
import http.client
import json
import os
import re
import socket
import threading
import time
import urllib.parse

import pytest

REQUEST_TIMEOUT_S = 5.0
RESET_TIMEOUT_S = 3.0
SCENARIO_MAX_S = 150.0       # a hung subject must not hold the suite for long
TRANSPORT_ERRORS_MAX = 3     # consecutive failed requests end a scenario
ASYNC_HEADERS_WAIT_S = 3.0   # how long a watch may take to send its headers
ASYNC_ANSWER_WAIT_S = 8.0    # how long an awaited watch may take to answer
POLL_MAX_S = 6.0
POLL_COUNT_MAX = 120
REPEAT_MAX_S = 90.0
REPEAT_COUNT_MAX = 2000
TTL_TOLERANCE_S = 2
EXPIRATION_SLACK_S = 2.0
FORM = "application/x-www-form-urlencoded"

# ---------------------------------------------------------------------------
# Steps


def K(path=""):
    """Keys API path."""
    return "/v2/keys" + path


def step(method, path, form=None, body=None, headers=None, expect=None, **opt):
    """One request. form: dict or list of pairs, sent urlencoded with the form
    Content-Type; body: raw str/bytes sent as is (Content-Type only if given
    in headers). expect: the status the reference must answer (guards the
    scenario itself against rot). Options: mode, start (async id), events
    (stream: events to read), await_ (async id), poll (status to wait for),
    repeat (count), sleep (seconds before), label."""
    s = {"method": method, "path": path, "form": form, "body": body,
         "headers": dict(headers or {}), "expect": expect}
    s.update(opt)
    return s


def GET(path, **kw):
    return step("GET", path, **kw)


def PUT(path, form=None, **kw):
    return step("PUT", path, form=form, **kw)


def POST(path, form=None, **kw):
    return step("POST", path, form=form, **kw)


def DELETE(path, **kw):
    return step("DELETE", path, **kw)


def HEAD(path, **kw):
    return step("HEAD", path, **kw)


def AWAIT(name, **kw):
    return {"await_": name, "method": None, "path": None, "expect": kw.pop("expect", None), **kw}


V = lambda v: {"value": v}  # noqa: E731

# ---------------------------------------------------------------------------
# Scenarios

S = {}

S["basic_crud"] = [
    GET(K("/"), expect=200),
    GET(K("/a"), expect=404),
    PUT(K("/a"), V("1"), expect=201),
    GET(K("/a"), expect=200, label="read back"),
    PUT(K("/a?value=2"), expect=200, label="value in the query string"),
    PUT(K("/a"), body="value=3&value=4", headers={"Content-Type": FORM}, expect=200,
        label="first of two values wins"),
    PUT(K("/a?value=q"), V("body"), expect=200, label="body value wins over query"),
    PUT(K("/a"), expect=200, label="no value: empty string"),
    GET(K("/a"), expect=200),
    HEAD(K("/a"), expect=200),
    HEAD(K("/nope"), expect=404),
    GET(K("/a?quorum=true"), expect=200),
    GET(K("/nope?quorum=true"), expect=404),
    DELETE(K("/a"), expect=200),
    DELETE(K("/a"), expect=404),
    GET(K(""), expect=200, label="/v2/keys without trailing slash"),
    PUT(K("/b"), V("x"), expect=201),
    GET(K(""), expect=200),
    GET(K("?recursive=true"), expect=200),
    PUT(K("/c/"), V("trailing slash"), expect=201),
    GET(K("/c"), expect=200),
    GET(K("/c/"), expect=200),
]

S["root"] = [
    PUT(K("/"), V("x"), expect=400),
    PUT(K("/?dir=true"), expect=400),
    PUT(K(""), V("x"), expect=400),
    DELETE(K("/"), expect=400),
    DELETE(K("/?recursive=true"), expect=400),
    DELETE(K("/?dir=true"), expect=400),
    DELETE(K(""), expect=400),
    POST(K("/"), V("in root"), expect=201),
    GET(K("/?sorted=true"), expect=200),
    GET(K("/?recursive=true&sorted=true"), expect=200),
    HEAD(K("/"), expect=200),
]

S["dirs"] = [
    PUT(K("/d?dir=true"), expect=201),
    GET(K("/d"), expect=200),
    PUT(K("/d?dir=true"), expect=403, label="dir over dir: 102"),
    PUT(K("/d?dir=true&prevExist=false"), expect=412, label="105"),
    PUT(K("/d?dir=true&prevExist=true"), expect=200, label="update dir"),
    PUT(K("/d"), V("x"), expect=403, label="value over dir: 102"),
    PUT(K("/d?dir=true"), V("x"), expect=403),
    PUT(K("/e?dir=true"), V("ignored"), expect=201, label="value ignored for dir=true"),
    PUT(K("/d/sub"), V("1"), expect=201),
    PUT(K("/d/sub2/deep"), V("2"), expect=201),
    GET(K("/d?sorted=true"), expect=200),
    GET(K("/d/?sorted=true"), expect=200),
    GET(K("/d?recursive=true&sorted=true"), expect=200),
    HEAD(K("/d"), expect=200),
    DELETE(K("/d"), expect=403, label="dir without dir=true: 102"),
    DELETE(K("/d?dir=true"), expect=403, label="non-empty dir: 108"),
    DELETE(K("/d/sub2?dir=true"), expect=403),
    DELETE(K("/d/sub"), expect=200),
    DELETE(K("/d/sub2/deep"), expect=200),
    DELETE(K("/d/sub2?dir=true"), expect=200),
    DELETE(K("/d?dir=true"), expect=200),
    GET(K("/d"), expect=404),
    PUT(K("/r/s/t"), V("1"), expect=201),
    DELETE(K("/r?recursive=true"), expect=200),
    GET(K("/r/s/t"), expect=404),
    DELETE(K("/e?recursive=true&dir=true"), expect=200),
    DELETE(K("/nodir?dir=true"), expect=404),
]

S["dir_vs_file"] = [
    PUT(K("/f"), V("x"), expect=201),
    PUT(K("/f?dir=true"), expect=200, label="dir=true replaces a file"),
    GET(K("/f"), expect=200),
    PUT(K("/g"), V("x"), expect=201),
    PUT(K("/g?dir=true&prevExist=false"), expect=412, label="105"),
    PUT(K("/g/sub"), V("x"), expect=400, label="104 under a file"),
    GET(K("/g/sub"), expect=400),
    DELETE(K("/g/sub"), expect=400),
    POST(K("/g"), V("x"), expect=400, label="POST into a file: 104"),
    PUT(K("/g?dir=true&prevExist=true"), expect=200, label="update file with dir=true"),
    GET(K("/g"), expect=200),
    DELETE(K("/g?dir=true"), expect=200, label="dir=true deletes a file"),
    PUT(K("/h"), V("x"), expect=201),
    DELETE(K("/h?recursive=true"), expect=200, label="recursive deletes a file"),
]

S["sorted_listing"] = [
    PUT(K("/l/b"), V("2"), expect=201),
    PUT(K("/l/a"), V("1"), expect=201),
    PUT(K("/l/z/y/x"), V("3"), expect=201),
    PUT(K("/l/m?dir=true"), expect=201),
    PUT(K("/l/%C3%A9"), V("accent"), expect=201),
    PUT(K("/l/B"), V("upper"), expect=201),
    GET(K("/l?sorted=true"), expect=200),
    GET(K("/l?recursive=true&sorted=true"), expect=200),
    GET(K("/l?recursive=true"), expect=200, mode="unordered"),
    GET(K("/l"), expect=200, mode="unordered"),
    GET(K("/l?sorted=1"), expect=200),
    GET(K("/l?sorted=TRUE&recursive=T"), expect=200),
    GET(K("/l?sorted=false&recursive=0"), expect=200, mode="unordered"),
    GET(K("/l/z?recursive=true&sorted=true"), expect=200),
]

S["values"] = [
    PUT(K("/v"), V("<>&"), expect=201),
    PUT(K("/v"), V("line1\nline2\r\n\ttab"), expect=200),
    PUT(K("/v"), V("\x01\x1f\x7f"), expect=200),
    PUT(K("/v"), V("\x00nul"), expect=200),
    PUT(K("/v"), V("quote\" backslash\\ slash/"), expect=200),
    PUT(K("/v"), V("\u2028\u2029"), expect=200),
    PUT(K("/v"), V("\u00e9\u20ac\U0001F600 snowman \u2603"), expect=200),
    PUT(K("/v"), body="value=%FF%FE%C3", headers={"Content-Type": FORM}, expect=200,
        label="invalid UTF-8 becomes U+FFFD"),
    PUT(K("/v"), body="value=a+b%2Bc", headers={"Content-Type": FORM}, expect=200),
    PUT(K("/v"), V(""), expect=200),
    GET(K("/v"), expect=200),
    PUT(K("/w"), V(" leading and trailing "), expect=201),
    GET(K("/w"), expect=200),
]

S["key_encoding"] = [
    PUT(K("/u/%E2%98%83"), V("snowman"), expect=201),
    PUT(K("/u/a%2Fb"), V("slash"), expect=201, label="%2F is a path separator"),
    PUT(K("/u/%00x"), V("nul"), expect=201),
    PUT(K("/u/sp%20ace"), V("space"), expect=201),
    PUT(K("/u/q%3Fx"), V("question"), expect=201),
    PUT(K("/u/h%23x"), V("hash"), expect=201),
    PUT(K("/u/pct%25x"), V("percent"), expect=201),
    PUT(K("/u/plus+x"), V("plus"), expect=201),
    PUT(K("/u/%7Etilde"), V("tilde"), expect=201),
    GET(K("/u?recursive=true&sorted=true"), expect=200),
    GET(K("/u/%E2%98%83"), expect=200),
    GET(K("/u/a/b"), expect=200),
    PUT(K("/u//dbl"), V("1"), expect=301, label="double slash redirect"),
    PUT(K("/u/a/../b"), V("1"), expect=301),
    PUT(K("/u/./c"), V("1"), expect=301),
    PUT(K("/u/%2E%2E/pd"), V("1"), expect=301),
    PUT(K("/../x"), V("1"), expect=301),
    GET(K("/u/../u/b?recursive=true"), expect=301, label="redirect keeps the query"),
    GET(K("/u//%E2%98%83"), expect=301),
    DELETE(K("/u//x"), expect=301),
    GET(K("/u/dbl"), expect=404, label="nothing was written by the redirects"),
]

S["ttl"] = [
    PUT(K("/t?ttl=100"), V("1"), expect=201),
    GET(K("/t"), expect=200),
    PUT(K("/t?ttl=abc"), V("1"), expect=400),
    PUT(K("/t?ttl=-1"), V("1"), expect=400),
    PUT(K("/t?ttl=1.5"), V("1"), expect=400),
    PUT(K("/t?ttl=99999999999999999999"), V("1"), expect=400),
    PUT(K("/t?ttl="), V("2"), expect=200, label="empty ttl: permanent"),
    PUT(K("/t?ttl=200"), V("3"), expect=200),
    PUT(K("/t?prevExist=true"), V("4"), expect=200, label="update without ttl clears it"),
    PUT(K("/t?prevExist=true&ttl=300"), V("5"), expect=200),
    GET(K("/t"), expect=200),
    PUT(K("/td?dir=true&ttl=100"), expect=201),
    PUT(K("/td/x"), V("1"), expect=201),
    GET(K("/td?recursive=true"), expect=200),
    PUT(K("/td?dir=true&ttl=200"), expect=403),
    PUT(K("/td?dir=true&prevExist=true&ttl=200"), expect=200, label="ttl on existing dir"),
    PUT(K("/td?dir=true&prevExist=true"), expect=200, label="removes the dir's ttl"),
    POST(K("/tq?ttl=100"), V("x"), expect=201),
]

S["ttl_expiry"] = [
    PUT(K("/e?ttl=1"), V("soon"), expect=201),
    GET(K("/e"), expect=404, poll=404, label="expires within the bounded wait"),
    GET(K("/e?wait=true&waitIndex={B+2}"), expect=200, label="expire event in history"),
    PUT(K("/ed?dir=true&ttl=1"), expect=201),
    PUT(K("/ed/child"), V("x"), expect=201),
    GET(K("/ed"), expect=404, poll=404),
    GET(K("/ed/child"), expect=404),
    GET(K("/ed?wait=true&waitIndex={B+5}"), expect=200),
    PUT(K("/z?ttl=0"), V("gone at once"), expect=201),
    GET(K("/z"), expect=404, poll=404),
]

S["refresh"] = [
    PUT(K("/rk"), V("1"), expect=201),
    PUT(K("/rk?refresh=true&ttl=100"), V("2"), expect=400, label="value on refresh: 211"),
    PUT(K("/rk?refresh=true"), expect=400, label="refresh without ttl: 212"),
    PUT(K("/rk?refresh=true&ttl="), expect=400),
    PUT(K("/rk?refresh=maybe&ttl=100"), expect=400),
    PUT(K("/nr?refresh=true&ttl=100"), expect=404),
    PUT(K("/rk?refresh=true&ttl=100"), expect=200),
    GET(K("/rk"), expect=200),
    PUT(K("/rk?refresh=true&ttl=200"), V(""), expect=200, label="empty value is no value"),
    PUT(K("/rk?refresh=true&ttl=300&prevValue=1"), expect=200),
    PUT(K("/rk?refresh=true&ttl=300&prevValue=2"), expect=412),
    PUT(K("/rk?refresh=true&ttl=300&prevIndex={B+4}"), expect=200),
    PUT(K("/rk?refresh=true&ttl=300&prevExist=false"), expect=412),
    PUT(K("/rd?dir=true"), expect=201),
    PUT(K("/rd?refresh=true&ttl=100"), expect=403),
    PUT(K("/rd?refresh=true&ttl=100&prevExist=true"), expect=200),
    GET(K("/rk?wait=true"), start="w", label="refresh does not wake watchers"),
    PUT(K("/rk?refresh=true&ttl=400"), expect=200),
    PUT(K("/rk"), V("after"), expect=200),
    AWAIT("w", expect=200),
]

S["cas_prev_value"] = [
    PUT(K("/c"), V("one"), expect=201),
    PUT(K("/c?prevValue=one"), V("two"), expect=200),
    PUT(K("/c?prevValue=one"), V("three"), expect=412),
    PUT(K("/c?prevValue="), V("x"), expect=400, label="201"),
    PUT(K("/missing?prevValue=one"), V("x"), expect=404),
    PUT(K("/c?prevValue=two&ttl=100"), V("t"), expect=200),
    PUT(K("/c?prevValue=%5Bodd%20!%3D%20value%5D"), V("x"), expect=412),
    PUT(K("/cd?dir=true"), expect=201),
    PUT(K("/cd?prevValue=x"), V("y"), expect=403),
    PUT(K("/n"), V("12"), expect=201),
    PUT(K("/n?prevValue=13"), V("14"), expect=412),
    GET(K("/c"), expect=200),
]

S["cas_prev_index"] = [
    PUT(K("/c"), V("one"), expect=201),
    PUT(K("/c?prevIndex={B+1}"), V("two"), expect=200),
    PUT(K("/c?prevIndex={B+1}"), V("three"), expect=412),
    PUT(K("/c?prevIndex=1"), V("three"), expect=412, label="literal index echoed"),
    PUT(K("/c?prevIndex=abc"), V("x"), expect=400, label="203"),
    PUT(K("/c?prevIndex=-1"), V("x"), expect=400),
    PUT(K("/c?prevIndex="), V("x"), expect=400),
    PUT(K("/c?prevIndex=0"), V("zero"), expect=200, label="0 means no prevIndex"),
    PUT(K("/missing?prevIndex={B+1}"), V("x"), expect=404),
    PUT(K("/c?prevIndex={B+3}&prevExist=true"), V("four"), expect=200),
    GET(K("/c"), expect=200),
]

S["cas_both"] = [
    PUT(K("/c"), V("one"), expect=201),
    PUT(K("/c?prevValue=bad&prevIndex={B+9}"), V("x"), expect=412, label="both wrong"),
    PUT(K("/c?prevValue=one&prevIndex={B+9}"), V("x"), expect=412, label="index wrong"),
    PUT(K("/c?prevValue=bad&prevIndex={B+1}"), V("x"), expect=412, label="value wrong"),
    PUT(K("/c?prevValue=one&prevIndex={B+1}"), V("x"), expect=200, label="both right"),
    PUT(K("/c?prevValue=x&prevIndex={B+2}&prevExist=true"), V("y"), expect=200),
    PUT(K("/c?prevValue=y&prevExist=false"), V("z"), expect=412),
]

S["prev_exist"] = [
    PUT(K("/p?prevExist=false"), V("1"), expect=201, label="create"),
    PUT(K("/p?prevExist=false"), V("2"), expect=412, label="105"),
    PUT(K("/q?prevExist=true"), V("1"), expect=404),
    PUT(K("/p?prevExist=true"), V("3"), expect=200, label="update"),
    PUT(K("/p?prevExist=maybe"), V("x"), expect=400),
    PUT(K("/p?prevExist="), V("x"), expect=400),
    PUT(K("/p?prevExist=TRUE"), V("4"), expect=200),
    PUT(K("/p?prevExist=0"), V("5"), expect=412),
    PUT(K("/p?prevExist=true&prevValue=4"), V("6"), expect=200),
    PUT(K("/p?prevExist=true&prevValue=nope"), V("7"), expect=412),
    PUT(K("/p?prevExist=false&prevIndex={B+1}"), V("8"), expect=412),
    PUT(K("/pd?dir=true&prevExist=false"), expect=201),
    PUT(K("/pd/x?prevExist=false"), V("1"), expect=201),
    GET(K("/p"), expect=200),
]

S["compare_and_delete"] = [
    PUT(K("/c"), V("one"), expect=201),
    DELETE(K("/c?prevValue=two"), expect=412),
    DELETE(K("/c?prevIndex={B+9}"), expect=412),
    DELETE(K("/c?prevValue=one&prevIndex={B+9}"), expect=412),
    DELETE(K("/c?prevValue="), expect=400),
    DELETE(K("/c?prevIndex=abc"), expect=400),
    DELETE(K("/c?prevValue=one"), expect=200, label="compareAndDelete"),
    PUT(K("/c"), V("again"), expect=201),
    DELETE(K("/c?prevIndex={B+3}"), expect=200),
    DELETE(K("/c?prevValue=again"), expect=404),
    PUT(K("/cd/x"), V("1"), expect=201),
    DELETE(K("/cd?prevValue=1&recursive=true"), expect=403),
    DELETE(K("/cd?dir=true&prevIndex={B+3}"), expect=403),
    DELETE(K("/cd/x?prevExist=true"), expect=200),
]

S["malformed_params"] = [
    PUT(K("/m"), V("1"), expect=201),
    GET(K("/m?recursive=maybe"), expect=400),
    PUT(K("/m?recursive=maybe"), V("1"), expect=400),
    DELETE(K("/m?recursive=maybe"), expect=400),
    PUT(K("/m?dir=xyz"), expect=400),
    DELETE(K("/m?dir=xyz"), expect=400),
    GET(K("/m?wait=maybe"), expect=400),
    GET(K("/m?stream=maybe"), expect=400),
    GET(K("/m?quorum=maybe"), expect=400),
    GET(K("/m?sorted=maybe"), expect=400),
    GET(K("/m?sorted="), expect=400, label="empty boolean is invalid"),
    GET(K("/m?wait=true&waitIndex=abc"), expect=400),
    GET(K("/m?wait=true&waitIndex=-5"), expect=400),
    PUT(K("/m?waitIndex=abc"), V("1"), expect=400),
    PUT(K("/m?wait=true"), V("1"), expect=400, label="wait only with GET"),
    DELETE(K("/m?wait=true"), expect=400),
    POST(K("/m?wait=true"), V("1"), expect=400),
    GET(K("/m?waitIndex=3"), expect=200, label="waitIndex without wait is ignored"),
    GET(K("/m?stream=true"), expect=200, label="stream without wait is a get"),
    GET(K("/m?unknown=1&value=x"), expect=200, label="unknown parameters ignored"),
    GET(K("/m?ttl=abc"), expect=400, label="GET validates ttl too"),
    GET(K("/m?prevIndex=x"), expect=400),
    GET(K("/m?prevValue="), expect=400),
    GET(K("/m?recursive=true&recursive=maybe"), expect=200, label="first value wins"),
    GET(K("/m?recursive=maybe&recursive=true"), expect=400),
    GET(K("/m"), expect=200, label="nothing changed"),
]

S["malformed_bodies"] = [
    PUT(K("/b"), body="value=%zz", headers={"Content-Type": FORM}, expect=400),
    PUT(K("/b"), body="value=a%", headers={"Content-Type": FORM}, expect=400),
    PUT(K("/b?value=%zz"), expect=400),
    PUT(K("/b"), body="value=a;b=c", headers={"Content-Type": FORM}, expect=400),
    PUT(K("/b"), body="value=plain", headers={"Content-Type": "text/plain"}, expect=201,
        label="non-form body ignored"),
    PUT(K("/b"), body="value=nohdr", expect=200, label="no Content-Type: body ignored"),
    PUT(K("/b"), body='{"value":"j"}', headers={"Content-Type": "application/json"}, expect=200),
    PUT(K("/b"), body="value=cs", headers={"Content-Type": FORM + "; charset=utf-8"}, expect=200),
    PUT(K("/b"), body="value=up", headers={"Content-Type": "Application/X-WWW-Form-Urlencoded"},
        expect=200),
    PUT(K("/b"), body="=x&&value=amp&", headers={"Content-Type": FORM}, expect=200),
    PUT(K("/b"), body="value", headers={"Content-Type": FORM}, expect=200, label="key without ="),
    GET(K("/b"), expect=200),
]

S["hidden"] = [
    PUT(K("/_h"), V("root hidden"), expect=201),
    PUT(K("/hd/_h"), V("1"), expect=201),
    PUT(K("/hd/v"), V("2"), expect=201),
    PUT(K("/hd/_hd/x"), V("3"), expect=201),
    GET(K("/hd?sorted=true"), expect=200),
    GET(K("/hd?recursive=true&sorted=true"), expect=200),
    GET(K("/hd/_h"), expect=200),
    GET(K("/hd/_hd?recursive=true"), expect=200),
    GET(K("/?sorted=true"), expect=200),
    GET(K("/_h"), expect=200),
    POST(K("/_q"), V("in hidden dir"), expect=201),
    GET(K("/_q?sorted=true"), expect=200),
    DELETE(K("/hd/_h"), expect=200),
    DELETE(K("/_h"), expect=200),
    GET(K("/hd/_x"), expect=404),
]

S["in_order"] = [
    POST(K("/q"), V("first"), expect=201),
    POST(K("/q"), V("second"), expect=201),
    POST(K("/q?dir=true"), expect=201),
    POST(K("/q?ttl=100"), V("ttl"), expect=201),
    GET(K("/q?sorted=true"), expect=200),
    GET(K("/q?recursive=true&sorted=true"), expect=200),
    GET(K("/q/{K:B+1}"), expect=200),
    DELETE(K("/q/{K:B+1}"), expect=200),
    PUT(K("/q/{K:B+2}?prevIndex={B+2}"), V("swapped"), expect=200),
    POST(K("/q/{K:B+3}"), V("nested"), expect=201),
    POST(K("/q?prevExist=false"), V("flags ignored"), expect=201),
    POST(K("/deep/a/b"), V("makes dirs"), expect=201),
    GET(K("/q?sorted=true"), expect=200),
    GET(K("/q/{K:B+99}"), expect=404),
]

S["watch_history"] = [
    PUT(K("/w/a"), V("1"), expect=201),
    PUT(K("/w/a"), V("2"), expect=200),
    PUT(K("/w/b"), V("3"), expect=201),
    GET(K("/w/a?wait=true&waitIndex={B+1}"), expect=200),
    GET(K("/w/a?wait=true&waitIndex={B+2}"), expect=200),
    GET(K("/w?wait=true&waitIndex={B+3}&recursive=true"), expect=200),
    GET(K("/w?wait=true&waitIndex={B+1}&recursive=true"), expect=200),
    GET(K("/?wait=true&waitIndex={B+1}&recursive=true"), expect=200),
    DELETE(K("/w/a"), expect=200),
    GET(K("/w/a?wait=true&waitIndex={B+3}"), expect=200, label="skips other keys"),
    PUT(K("/w?dir=true&prevExist=true&ttl=100"), expect=200),
    GET(K("/w?wait=true&waitIndex={B+1}"), expect=200, label="non-recursive skips children"),
    HEAD(K("/w/a?wait=true&waitIndex={B+1}"), expect=400, label="HEAD may not wait"),
]

S["watch_longpoll"] = [
    PUT(K("/lp/k"), V("0"), expect=201),
    GET(K("/lp/k?wait=true"), start="w1"),
    PUT(K("/lp/k"), V("1"), expect=200),
    AWAIT("w1", expect=200),
    GET(K("/lp?wait=true&recursive=true"), start="w2"),
    PUT(K("/lp/new/deep"), V("2"), expect=201),
    AWAIT("w2", expect=200),
    GET(K("/lp/k?wait=true"), start="w3"),
    DELETE(K("/lp?recursive=true"), expect=200),
    AWAIT("w3", expect=200, label="child watcher sees the parent's delete"),
    GET(K("/lp/missing?wait=true"), start="w4"),
    PUT(K("/lp/missing"), V("born"), expect=201),
    AWAIT("w4", expect=200),
    GET(K("/lp/f?wait=true&waitIndex={B+8}"), start="w5", label="future waitIndex"),
    PUT(K("/lp/f"), V("at B+6"), expect=201),
    PUT(K("/lp/f"), V("at B+7"), expect=200),
    PUT(K("/lp/f"), V("at B+8"), expect=200),
    AWAIT("w5", expect=200),
    GET(K("/lp/k?wait=true&waitIndex=0"), start="w6", label="waitIndex=0 waits"),
    PUT(K("/lp/k"), V("9"), expect=201),
    AWAIT("w6", expect=200),
    GET(K("/lp/c?wait=true"), start="w7"),
    PUT(K("/lp/c?prevExist=false"), V("cas"), expect=201),
    AWAIT("w7", expect=200),
    GET(K("/lp/t?wait=true"), start="w8", label="expiry wakes a watcher"),
    PUT(K("/lp/t?ttl=1"), V("x"), expect=201),
    AWAIT("w8", expect=200),
    GET(K("/lp/t?wait=true&waitIndex={B+12}"), expect=200, poll=200),
]

S["watch_stream"] = [
    PUT(K("/s"), V("0"), expect=201),
    GET(K("/s?wait=true&stream=true"), start="st", events=2),
    PUT(K("/s"), V("1"), expect=200),
    PUT(K("/s"), V("2"), expect=200),
    AWAIT("st", expect=200),
    GET(K("/sd?wait=true&stream=true&recursive=true"), start="st2", events=3),
    PUT(K("/sd/a"), V("1"), expect=201),
    PUT(K("/sd/b"), V("2"), expect=201),
    PUT(K("/sd/a?prevValue=1"), V("3"), expect=200),
    AWAIT("st2", expect=200),
]

# etcd quirk kept on purpose: a stream watcher on the exact key gets a
# delete (and a compareAndDelete) event twice, once for the key and once as
# the "deleted" notification; a child deleted under a recursive watch once.
S["watch_stream_deletes"] = [
    PUT(K("/sx"), V("0"), expect=201),
    GET(K("/sx?wait=true&stream=true"), start="sx", events=6),
    PUT(K("/sx"), V("1"), expect=200),
    DELETE(K("/sx"), expect=200),
    PUT(K("/sx"), V("2"), expect=201),
    DELETE(K("/sx?prevValue=2"), expect=200),
    AWAIT("sx", expect=200, label="set, delete twice, set, compareAndDelete twice"),
    GET(K("/sy?wait=true&stream=true&recursive=true"), start="sy", events=2),
    PUT(K("/sy/c"), V("1"), expect=201),
    DELETE(K("/sy/c"), expect=200),
    AWAIT("sy", expect=200),
]

S["event_history_cleared"] = [
    PUT(K("/many"), V("x"), expect=200, repeat=1005, label="1005 writes"),
    GET(K("/many?wait=true&waitIndex={B+1}"), expect=400, label="401 EventIndexCleared"),
    GET(K("/many?wait=true&waitIndex={B+5}"), expect=400),
    GET(K("/many?wait=true&waitIndex={B+6}"), expect=200, label="oldest kept event"),
    GET(K("/many?wait=true&waitIndex={B+1000}"), expect=200),
    GET(K("/?wait=true&waitIndex={B+2}&recursive=true"), expect=400),
    GET(K("/many"), expect=200),
]

S["methods_and_routes"] = [
    PUT(K("/a"), V("1"), expect=201),
    step("PATCH", K("/a"), expect=405),
    step("FOO", K("/a"), expect=405),
    step("OPTIONS", K("/a"), expect=200),
    step("OPTIONS", K("/a"), headers={"Origin": "http://x.example",
                                      "Access-Control-Request-Method": "PUT"}, expect=200),
    GET(K("/a"), headers={"Origin": "http://x.example"}, expect=200),
    GET("/v2/keysx", expect=404),
    GET("/v2/key", expect=404),
    GET("/v2", expect=404),
    GET("/v2/", expect=404),
    GET("/", expect=404),
    GET("/nope", expect=404),
    step("PUT", "/version", expect=405),
    step("POST", "/health", expect=405),
    step("POST", "/v2/stats/store", expect=405),
    step("PUT", "/v2/machines", expect=405),
    step("DELETE", "/v2/members", expect=405),
    GET("/v2/stats/self/", expect=404),
    GET(K("/a"), expect=200, label="nothing changed"),
]

MIB = 1024 * 1024
S["large_values"] = [
    PUT(K("/big"), V("a" * (int(1.5 * MIB) - 64)), expect=201, label="just under 1.5 MiB"),
    PUT(K("/big"), V("b" * (int(1.5 * MIB) + 64)), expect=200, label="just over 1.5 MiB"),
    GET(K("/big"), expect=200),
    PUT(K("/big"), body=b"value=" + b"c" * (10 * MIB), headers={"Content-Type": FORM},
        expect=400, label="form body over 10 MiB"),
    GET(K("/big?quorum=true"), expect=200, label="unchanged"),
]

S["other_endpoints"] = [
    GET("/version", expect=200, mode="shape"),
    GET("/health", expect=200),
    GET("/v2/stats/self", expect=200, mode="shape"),
    GET("/v2/stats/store", expect=200, mode="shape"),
    GET("/v2/stats/leader", expect=200, mode="shape"),
    GET("/v2/members", expect=200, mode="members"),
    GET("/v2/machines", expect=200, mode="urltext"),
    HEAD("/v2/machines", expect=200),
    GET("/metrics", expect=200, mode="status"),
]

SCENARIOS = list(S.items())


def count_requests(scenarios=None):
    """(steps, HTTP requests) in the suite; repeat steps count once as a step
    and their full count as requests, poll steps count once."""
    steps = reqs = 0
    for _, sc in scenarios or SCENARIOS:
        for s in sc:
            if s.get("method") is None:
                continue
            steps += 1
            reqs += s.get("repeat", 1)
    return steps, reqs

# ---------------------------------------------------------------------------
# Running


_TEMPLATE = re.compile(r"\{(K:)?B([+-]\d+)\}")


def render(text, base):
    def sub(m):
        n = base + int(m.group(2))
        return "%020d" % n if m.group(1) else str(n)
    if isinstance(text, bytes):
        return text
    return _TEMPLATE.sub(sub, text)


def raw_param(s, name):
    """The text a step sent for a query or form parameter, undecoded and
    unrendered (templates kept), or None."""
    for src in (s.get("path") or "").partition("?")[2], s.get("body") if isinstance(s.get("body"), str) else "":
        for part in (src or "").split("&"):
            k, _, v = part.partition("=")
            if k == name:
                return v
    form = s.get("form")
    if form:
        for k, v in (form.items() if isinstance(form, dict) else form):
            if k == name:
                return v
    return None


def prepare(s, base):
    path = render(s["path"], base)
    headers = dict(s["headers"])
    body = s.get("body")
    if s.get("form") is not None:
        form = s["form"]
        pairs = form.items() if isinstance(form, dict) else form
        body = urllib.parse.urlencode([(k, render(v, base)) for k, v in pairs])
        headers.setdefault("Content-Type", FORM)
    elif isinstance(body, str):
        body = render(body, base)
    if isinstance(body, str):
        body = body.encode("utf-8")
    return path, body, headers


class Result:
    def __init__(self, status=None, headers=None, body=b"", error=None, t_wall=None,
                 early=None):
        self.status = status
        self.headers = headers or []
        self.body = body
        self.error = error
        self.t_wall = t_wall if t_wall is not None else time.time()
        self.early = early

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None


def do_request(server, method, path, body, headers, timeout=REQUEST_TIMEOUT_S):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        return Result(resp.status, resp.getheaders(), data)
    except (OSError, http.client.HTTPException) as e:
        return Result(error="%s: %s" % (type(e).__name__, e))
    finally:
        conn.close()


class AsyncRequest:
    """A request answered later (a watch): runs in its own thread; the
    connection is closed by finish() if no answer came in time."""

    def __init__(self, server, method, path, body, headers, events=None):
        self.conn = http.client.HTTPConnection("127.0.0.1", server.port,
                                               timeout=ASYNC_ANSWER_WAIT_S + 2)
        self.args = (method, path, body, headers)
        self.events = events
        self.headers_in = threading.Event()
        self.done = threading.Event()
        self.result = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        try:
            method, path, body, headers = self.args
            self.conn.request(method, path, body=body, headers=headers)
            resp = self.conn.getresponse()
            self.headers_in.set()
            if self.events:
                lines = []
                for _ in range(self.events):
                    line = resp.readline()
                    if not line:
                        break
                    lines.append(line)
                data = b"".join(lines)
            else:
                data = resp.read()
            self.result = Result(resp.status, resp.getheaders(), data)
        except (OSError, http.client.HTTPException, ValueError) as e:
            self.result = Result(error="%s: %s" % (type(e).__name__, e))
        finally:
            self.done.set()

    def finish(self, early):
        if not self.done.wait(ASYNC_ANSWER_WAIT_S):
            try:
                if self.conn.sock is not None:
                    self.conn.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self.done.wait(2.0)
            res = Result(error="no answer within %.0f s" % ASYNC_ANSWER_WAIT_S)
        else:
            res = self.result
        self.conn.close()
        res.early = early
        return res


# Top-level names each server has seen written, so that reset_state can
# delete hidden ones (the root listing does not show them).
_touched = {}


def _top_name(path):
    if not path or not path.startswith("/v2/keys/"):
        return None
    rest = path[len("/v2/keys/"):].partition("?")[0]
    name = rest.split("/")[0]
    if name in ("", ".", "..") or "{" in name:
        return None
    return name


def reset_state(server, scenario=()):
    """Delete every top-level key, then write and delete a hidden key; the
    returned base index is the X-Etcd-Index of that delete."""
    names = set(_touched.setdefault(id(server), set()))
    if server.proc is not None and server.proc.poll() is not None:
        raise AssertionError("%s has exited with %s:\n%s" % (server, server.proc.returncode, server.log_tail()))
    if getattr(server, "unresponsive", None):
        raise AssertionError("%s stopped answering earlier: %s" % (server, server.unresponsive))
    r = do_request(server, "GET", "/v2/keys/", None, {}, timeout=RESET_TIMEOUT_S)
    if r.error:
        # Fail every later scenario at once instead of waiting for each.
        server.unresponsive = r.error
    if r.status != 200:
        raise AssertionError("%s: cannot list root: %s %s %r" % (server, r.status, r.error, r.body[:200]))
    for node in json.loads(r.body).get("node", {}).get("nodes", []) or []:
        names.add(urllib.parse.quote(node["key"][1:], safe=""))
    for name in sorted(names):
        do_request(server, "DELETE", "/v2/keys/%s?recursive=true" % name, None, {}, timeout=RESET_TIMEOUT_S)
    for s in scenario:
        n = _top_name(s.get("path"))
        if n:
            _touched[id(server)].add(n)
    r = do_request(server, "PUT", "/v2/keys/_conformance_base", b"value=x", {"Content-Type": FORM},
                   timeout=RESET_TIMEOUT_S)
    if r.status not in (200, 201):
        raise AssertionError("%s: cannot write base key: %s %s" % (server, r.status, r.error))
    r = do_request(server, "DELETE", "/v2/keys/_conformance_base", None, {}, timeout=RESET_TIMEOUT_S)
    if r.status != 200:
        raise AssertionError("%s: cannot delete base key: %s %s" % (server, r.status, r.error))
    return int(r.header("X-Etcd-Index"))


def run_scenario(server, scenario):
    """Runs the steps on one server; returns (base, [Result per step])."""
    base = reset_state(server, scenario)
    results = []
    pending = {}
    deadline = time.monotonic() + SCENARIO_MAX_S
    errors = 0
    try:
        for s in scenario:
            if errors >= TRANSPORT_ERRORS_MAX or time.monotonic() > deadline:
                why = ("%d requests in a row failed" % errors if errors >= TRANSPORT_ERRORS_MAX
                       else "scenario took over %.0f s" % SCENARIO_MAX_S)
                results.append(Result(error="not sent: " + why))
                continue
            if results and results[-1] is not None:
                errors = errors + 1 if results[-1].error else 0
                if errors >= TRANSPORT_ERRORS_MAX:
                    results.append(Result(error="not sent: %d requests in a row failed" % errors))
                    continue
            if s.get("sleep"):
                time.sleep(s["sleep"])
            if s.get("await_"):
                ar, early = pending.pop(s["await_"])
                results.append(ar.finish(early))
                continue
            path, body, headers = prepare(s, base)
            if s.get("start"):
                ar = AsyncRequest(server, s["method"], path, body, headers, s.get("events"))
                early = ar.headers_in.wait(ASYNC_HEADERS_WAIT_S)
                pending[s["start"]] = (ar, early)
                results.append(None)
                continue
            if s.get("poll") is not None:
                deadline = time.monotonic() + POLL_MAX_S
                for _ in range(POLL_COUNT_MAX):
                    r = do_request(server, s["method"], path, body, headers)
                    if r.status == s["poll"] or time.monotonic() > deadline:
                        break
                    time.sleep(0.05)
                results.append(r)
                continue
            if s.get("repeat"):
                n = min(s["repeat"], REPEAT_COUNT_MAX)
                deadline = time.monotonic() + REPEAT_MAX_S
                conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=REQUEST_TIMEOUT_S)
                try:
                    for i in range(n):
                        if time.monotonic() > deadline:
                            r = Result(error="repeat: only %d of %d requests in %.0f s" % (i, n, REPEAT_MAX_S))
                            break
                        conn.request(s["method"], path, body=body, headers=headers)
                        resp = conn.getresponse()
                        r = Result(resp.status, resp.getheaders(), resp.read())
                        if r.status >= 300:
                            break
                except (OSError, http.client.HTTPException) as e:
                    r = Result(error="repeat: %s" % e)
                finally:
                    conn.close()
                results.append(r)
                continue
            results.append(do_request(server, s["method"], path, body, headers))
    finally:
        for ar, early in pending.values():
            ar.finish(early)
    return base, results


def run_pair(ref, sub, scenario):
    with concurrent.futures.ThreadPoolExecutor(2) as ex:
        fa = ex.submit(run_scenario, ref, scenario)
        fb = ex.submit(run_scenario, sub, scenario)
        return fa.result(), fb.result()

# ---------------------------------------------------------------------------
# Normalisation


EXACT_HEADERS = ("Content-Type", "Allow", "Location", "X-Content-Type-Options",
                 "Access-Control-Allow-Origin", "Access-Control-Allow-Methods",
                 "Access-Control-Allow-Headers")
PRESENCE_HEADERS = ("X-Raft-Index", "X-Raft-Term", "X-Etcd-Cluster-Id")
_EXPIRATION = re.compile(r"^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d*[1-9]))?Z$")
_R_INDEX = re.compile(r'"(modifiedIndex|createdIndex|index)":(\d+)')
_R_EXP = re.compile(r'"expiration":"((?:[^"\\]|\\.)*)"')
_R_TTL = re.compile(r'"ttl":(-?\d+)')
_R_KEYSTR = re.compile(r'"(key|cause)":"((?:[^"\\]|\\.)*)"')
_R_SEQ = re.compile(r"(?<=/)(\d{20})(?=/|$|\\|\")")
_R_CAUSE_IDX = re.compile(r"\[(\d+) != (\d+)\]$")
_R_CAUSE_HIST = re.compile(r"\[(\d+)/(\d+)\]$")


def rel(n, base):
    n = int(n)
    return "0" if n == 0 else "B%+d" % (n - base)


def parse_expiration(text):
    m = _EXPIRATION.match(text)
    if not m:
        return None
    import calendar
    y, mo, d, h, mi, s = (int(x) for x in m.groups()[:6])
    frac = float("0." + m.group(7)) if m.group(7) else 0.0
    return calendar.timegm((y, mo, d, h, mi, s)) + frac


class Normalised:
    def __init__(self):
        self.status = None
        self.error = None
        self.headers = {}
        self.text = None
        self.obj = None
        self.ttls = []
        self.problems = []
        self.early = None


def _norm_string(value, field, base, s, errcode):
    """Normalises a decoded "key" or "cause" string."""
    value = _R_SEQ.sub(lambda m: "<%s>" % rel(m.group(1), base), value)
    if field == "cause" and errcode == 101:
        pi = raw_param(s, "prevIndex")
        if pi not in (None, "", "0"):
            value = _R_CAUSE_IDX.sub(lambda m: "[%s != %s]" % (pi, rel(m.group(2), base)), value)
    if field == "cause" and errcode == 401:
        wi = raw_param(s, "waitIndex")
        value = _R_CAUSE_HIST.sub(lambda m: "[%s/%s]" % (rel(m.group(1), base), wi), value)
    return value


def _walk(obj, base, s, errcode, norm, t_wall):
    if isinstance(obj, list):
        return [_walk(x, base, s, errcode, norm, t_wall) for x in obj]
    if not isinstance(obj, dict):
        return obj
    out = {}
    for k, v in obj.items():
        if k in ("modifiedIndex", "createdIndex", "index") and isinstance(v, int):
            out[k] = rel(v, base)
        elif k == "expiration" and isinstance(v, str):
            exp = parse_expiration(v)
            if exp is None:
                norm.problems.append("expiration %r is not RFC 3339 UTC with trimmed nanoseconds" % v)
            elif isinstance(obj.get("ttl"), int):
                delta = exp - t_wall - obj["ttl"]
                if abs(delta) > EXPIRATION_SLACK_S:
                    norm.problems.append("expiration %s is %.1f s away from now+ttl(%d)" % (v, delta, obj["ttl"]))
            out[k] = "<EXP>"
        elif k == "ttl" and isinstance(v, int):
            out[k] = "<TTL>"
        elif k in ("key", "cause") and isinstance(v, str):
            out[k] = _norm_string(v, k, base, s, errcode)
        else:
            out[k] = _walk(v, base, s, errcode, norm, t_wall)
    return out


def _sort_nodes(obj):
    if isinstance(obj, list):
        return [_sort_nodes(x) for x in obj]
    if isinstance(obj, dict):
        out = {k: _sort_nodes(v) for k, v in obj.items()}
        if isinstance(out.get("nodes"), list):
            out["nodes"] = sorted(out["nodes"], key=lambda n: str(n.get("key")) if isinstance(n, dict) else "")
        return out
    return obj


def _shape(obj):
    if isinstance(obj, dict):
        return [(k, _shape(v)) for k, v in obj.items()]
    if isinstance(obj, list):
        return ["list"] + [_shape(x) for x in obj[:1]]
    if isinstance(obj, bool):
        return "bool"
    if isinstance(obj, int):
        return "int"
    if isinstance(obj, float):
        return "number"
    if isinstance(obj, str):
        return "string"
    return "null"


def _norm_text(text, base, s, errcode, norm):
    text = _R_INDEX.sub(lambda m: '"%s":"%s"' % (m.group(1), rel(m.group(2), base)), text)
    text = _R_EXP.sub('"expiration":"<EXP>"', text)

    def ttl(m):
        norm.ttls.append(int(m.group(1)))
        return '"ttl":"<TTL>"'
    text = _R_TTL.sub(ttl, text)

    def keystr(m):
        try:
            decoded = json.loads('"%s"' % m.group(2))
        except ValueError:
            return m.group(0)
        new = _norm_string(decoded, m.group(1), base, s, errcode)
        if new == decoded:
            return m.group(0)
        # Only 20-digit components, "[n != m]" and "[a/b]" change, and JSON
        # escapes none of their characters: rewriting the raw escaped text in
        # place keeps the server's own escaping as what is compared.
        return '"%s":"%s"' % (m.group(1), _norm_string(m.group(2), m.group(1), base, s, errcode))
    return _R_KEYSTR.sub(keystr, text)


def normalise(result, base, s, server):
    norm = Normalised()
    if result is None:
        norm.error = "no result"
        return norm
    norm.status = result.status
    norm.error = result.error
    norm.early = result.early
    if result.error:
        return norm
    mode = s.get("mode", "full")
    for h in EXACT_HEADERS:
        norm.headers[h] = result.header(h)
    if mode in ("status",):
        norm.headers = {"Content-Type": result.header("Content-Type")}
        return norm
    for h in PRESENCE_HEADERS:
        norm.headers[h] = "present" if result.header(h) is not None else None
    xi = result.header("X-Etcd-Index")
    norm.headers["X-Etcd-Index"] = rel(xi, base) if xi is not None and xi.isdigit() else xi
    text = result.body.decode("utf-8", "surrogateescape")
    try:
        lines = [json.loads(l) for l in text.splitlines() if l.strip()] if text.strip() else []
    except ValueError:
        lines = None
    errcode = None
    if lines and isinstance(lines[0], dict):
        errcode = lines[0].get("errorCode")
    if mode == "shape":
        norm.text = "trailing newline" if text.endswith("\n") else "no trailing newline"
        norm.obj = [_shape(x) for x in lines] if lines is not None else text
        return norm
    if mode in ("members", "urltext"):
        peer = "http://127.0.0.1:%d" % server.peer_port
        text = text.replace(server.url, "<CURL>").replace(peer, "<PURL>")
        text = re.sub(r'"id":"[0-9a-f]+"', '"id":"<ID>"', text)
        norm.text = text
        norm.obj = None
        return norm
    if lines is None:
        norm.text = text
        return norm
    objs = [_walk(o, base, s, errcode, norm, result.t_wall) for o in lines]
    if mode == "unordered":
        objs = [_sort_nodes(o) for o in objs]
        norm.text = "\n".join(json.dumps(o, ensure_ascii=False, separators=(",", ":")) for o in objs)
        norm.ttls = []
        _collect_ttls(lines, norm.ttls)
    else:
        norm.text = _norm_text(text, base, s, errcode, norm)
    norm.obj = objs
    return norm


def _collect_ttls(obj, out):
    if isinstance(obj, list):
        for x in obj:
            _collect_ttls(x, out)
    elif isinstance(obj, dict):
        if isinstance(obj.get("ttl"), int):
            out.append(obj["ttl"])
        for v in obj.values():
            _collect_ttls(v, out)


def _short(x, n=1500):
    s = x if isinstance(x, str) else repr(x)
    return s if len(s) <= n else s[:n] + "...(%d chars)" % len(s)


def compare(a, b):
    """Differences between two normalised answers, as readable lines."""
    diffs = []
    if a.error or b.error:
        if bool(a.error) != bool(b.error):
            diffs.append("transport: reference %r, subject %r" % (a.error, b.error))
        return diffs
    if a.status != b.status:
        diffs.append("status: reference %s, subject %s" % (a.status, b.status))
    for h in sorted(set(a.headers) | set(b.headers)):
        if a.headers.get(h) != b.headers.get(h):
            diffs.append("header %s: reference %r, subject %r" % (h, a.headers.get(h), b.headers.get(h)))
    if a.early != b.early:
        diffs.append("watch headers sent before the event: reference %s, subject %s" % (a.early, b.early))
    if a.obj != b.obj:
        diffs.append("parsed body:\n  reference %s\n  subject   %s" % (_short(a.obj), _short(b.obj)))
    if a.text != b.text:
        i = next((i for i, (x, y) in enumerate(zip(a.text or "", b.text or "")) if x != y),
                 min(len(a.text or ""), len(b.text or "")))
        diffs.append("raw body differs at byte %d:\n  reference %s\n  subject   %s" %
                     (i, _short(repr((a.text or "")[max(0, i - 60):i + 100])),
                      _short(repr((b.text or "")[max(0, i - 60):i + 100]))))
    if len(a.ttls) != len(b.ttls):
        diffs.append("ttl fields: reference %s, subject %s" % (a.ttls, b.ttls))
    else:
        for x, y in zip(a.ttls, b.ttls):
            if abs(x - y) > TTL_TOLERANCE_S:
                diffs.append("ttl: reference %d, subject %d (tolerance %d)" % (x, y, TTL_TOLERANCE_S))
    for p in a.problems:
        diffs.append("reference: " + p)
    for p in b.problems:
        diffs.append("subject: " + p)
    return diffs


def step_title(i, s):
    if s.get("await_"):
        t = "await %s" % s["await_"]
    else:
        t = "%s %s" % (s["method"], s["path"] if len(s["path"]) < 120 else s["path"][:120] + "...")
        if s.get("start"):
            t = "start %s: %s" % (s["start"], t)
    if s.get("label"):
        t += "  (%s)" % s["label"]
    return "step %d: %s" % (i, t)


def compare_runs(scenario, ref_run, sub_run, ref, sub):
    """All differences of one scenario, plus broken expectations of the
    reference itself."""
    (base_a, res_a), (base_b, res_b) = ref_run, sub_run
    problems = []
    starts = {s["start"]: s for s in scenario if s.get("start")}
    for i, s in enumerate(scenario):
        if s.get("start"):
            continue
        ra, rb = res_a[i], res_b[i]
        ns = starts.get(s.get("await_"), s)
        if s.get("expect") is not None and (ra is None or ra.status != s["expect"]):
            problems.append("%s\n  scenario expects the reference to answer %s, it answered %s %s %r" %
                            (step_title(i, s), s["expect"], ra and ra.status, ra and ra.error,
                             ra and ra.body[:300]))
        d = compare(normalise(ra, base_a, ns, ref), normalise(rb, base_b, ns, sub))
        if d:
            problems.append(step_title(i, s) + "\n  " + "\n  ".join(d))
    return problems

# ---------------------------------------------------------------------------
# Tests


@pytest.mark.parametrize("name,scenario", SCENARIOS, ids=[n for n, _ in SCENARIOS])
def test_conformance(conformance_pair, name, scenario):
    ref, sub = conformance_pair
    ref_run, sub_run = run_pair(ref, sub, scenario)
    problems = compare_runs(scenario, ref_run, sub_run, ref, sub)
    if problems:
        pytest.fail("%s vs %s, scenario %s: %d difference(s)\n%s" %
                    (ref.kind, sub.kind, name, len(problems), "\n".join(problems)), pytrace=False)


def test_suite_size():
    steps, reqs = count_requests()
    assert steps >= 150, "the conformance suite must send at least 150 distinct requests"
    assert reqs >= steps


# -- self checks: the comparison machinery itself ---------------------------

SELFCHECK = ["basic_crud", "in_order", "cas_both", "ttl", "watch_longpoll", "event_history_cleared"]


@pytest.fixture(scope="module")
def selfcheck_runs(etcd_pair):
    """Selected scenarios run once against two independent etcd instances.
    The second one first takes seven extra writes, so that its indexes are
    shifted and the comparison has to go through the index normalisation."""
    a, b = etcd_pair
    for _ in range(7):
        r = do_request(b, "PUT", "/v2/keys/_selfcheck_shift", b"value=x", {"Content-Type": FORM})
        assert r.status in (200, 201), (r.status, r.error)
    return {n: run_pair(a, b, S[n]) for n in SELFCHECK}


@pytest.mark.parametrize("name", SELFCHECK)
def test_selfcheck_identical_servers_compare_equal(etcd_pair, selfcheck_runs, name):
    a, b = etcd_pair
    ra, rb = selfcheck_runs[name]
    assert ra[0] != rb[0], "the two servers should have different base indexes"
    problems = compare_runs(S[name], ra, rb, a, b)
    assert not problems, "\n".join(problems)


def _perturbed(run, i, fn):
    base, results = run
    r = results[i]
    new = Result(r.status, list(r.headers), r.body, r.error, r.t_wall, r.early)
    fn(new)
    results = list(results)
    results[i] = new
    return base, results


def _index_of(scenario, pred):
    return next(i for i, s in enumerate(scenario) if pred(s))


PERTURBATIONS = {
    "value changed": ("basic_crud", lambda s: s.get("label") == "read back",
                      lambda r: setattr(r, "body", r.body.replace(b'"value":"', b'"value":"X'))),
    "field order swapped": ("basic_crud", lambda s: s.get("label") == "read back",
                            lambda r: setattr(r, "body", re.sub(
                                rb'"modifiedIndex":(\d+),"createdIndex":(\d+)',
                                rb'"createdIndex":\2,"modifiedIndex":\1', r.body))),
    "index off by one": ("basic_crud", lambda s: s.get("label") == "value in the query string",
                         lambda r: setattr(r, "body", re.sub(
                             rb'"modifiedIndex":(\d+)', lambda m: b'"modifiedIndex":%d' % (int(m.group(1)) + 1),
                             r.body, count=1))),
    "X-Etcd-Index moved": ("basic_crud", lambda s: s["method"] == "DELETE",
                           lambda r: setattr(r, "headers", [(k, str(int(v) + 1) if k == "X-Etcd-Index" else v)
                                                            for k, v in r.headers])),
    "raft header missing": ("basic_crud", lambda s: s["method"] == "DELETE",
                            lambda r: setattr(r, "headers", [(k, v) for k, v in r.headers if k != "X-Raft-Term"])),
    "status changed": ("basic_crud", lambda s: s["method"] == "HEAD",
                       lambda r: setattr(r, "status", 204)),
    "escaping differs": ("basic_crud", lambda s: s.get("label") == "read back",
                         lambda r: setattr(r, "body", r.body.replace(b'"key":"/a"', b'"key":"\\/a"'))),
    "trailing newline lost": ("basic_crud", lambda s: s.get("label") == "read back",
                              lambda r: setattr(r, "body", r.body.rstrip(b"\n"))),
    "in-order key renumbered": ("in_order", lambda s: s["method"] == "GET" and "sorted" in s["path"],
                                lambda r: setattr(r, "body", re.sub(
                                    rb"/(\d{20})", lambda m: b"/%020d" % (int(m.group(1)) + 1), r.body, count=1))),
    "cause index differs": ("cas_both", lambda s: s.get("label") == "index wrong",
                            lambda r: setattr(r, "body", re.sub(
                                rb"!= (\d+)\]", lambda m: b"!= %d]" % (int(m.group(1)) + 1), r.body))),
    "ttl far off": ("ttl", lambda s: s["method"] == "GET" and s["path"] == K("/t"),
                    lambda r: setattr(r, "body", re.sub(rb'"ttl":(\d+)', lambda m: b'"ttl":%d' % (int(m.group(1)) - 5),
                                                        r.body))),
    "expiration malformed": ("ttl", lambda s: s["method"] == "GET" and s["path"] == K("/t"),
                             lambda r: setattr(r, "body", re.sub(rb'"expiration":"([^"]*)Z"',
                                                                 rb'"expiration":"\1+00:00"', r.body))),
    "watch event differs": ("watch_longpoll", lambda s: s.get("await_") == "w2",
                            lambda r: setattr(r, "body", r.body.replace(b'"action":"set"', b'"action":"create"'))),
    "watch headers late": ("watch_longpoll", lambda s: s.get("await_") == "w1",
                           lambda r: setattr(r, "early", False)),
    "401 cause differs": ("event_history_cleared", lambda s: s.get("label") == "401 EventIndexCleared",
                          lambda r: setattr(r, "body", re.sub(rb"\[(\d+)/", lambda m: b"[%d/" % (int(m.group(1)) + 1),
                                                              r.body))),
}


@pytest.mark.parametrize("what", sorted(PERTURBATIONS))
def test_selfcheck_perturbation_is_detected(etcd_pair, selfcheck_runs, what):
    a, b = etcd_pair
    name, pick, fn = PERTURBATIONS[what]
    scenario = S[name]
    ra, rb = selfcheck_runs[name]
    i = _index_of(scenario, pick)
    before = compare_runs(scenario, ra, rb, a, b)
    assert not before, "\n".join(before)
    rb2 = _perturbed(rb, i, fn)
    assert rb2[1][i].body != rb[1][i].body or rb2[1][i].headers != rb[1][i].headers or \
        rb2[1][i].status != rb[1][i].status or rb2[1][i].early != rb[1][i].early, "perturbation changed nothing"
    after = compare_runs(scenario, ra, rb2, a, b)
    assert after, "perturbation %r was not detected" % what


def test_selfcheck_index_offsets_not_absolute():
    """Two answers whose absolute indexes differ but whose offsets from their
    bases agree compare equal; a different offset does not."""
    s = GET(K("/x"))

    class Srv:
        url, peer_port = "http://127.0.0.1:1", 2

    def res(idx, mod):
        body = ('{"action":"get","node":{"key":"/x","value":"v","modifiedIndex":%d,"createdIndex":%d}}\n'
                % (mod, mod)).encode()
        return Result(200, [("Content-Type", "application/json"), ("X-Etcd-Index", str(idx))], body)
    a = normalise(res(12, 11), 10, s, Srv)
    b = normalise(res(1012, 1011), 1010, s, Srv)
    assert compare(a, b) == []
    c = normalise(res(1012, 1012), 1010, s, Srv)
    assert compare(a, c)


# -- the harness itself -------------------------------------------------------


@pytest.mark.parametrize("kind", sorted({"etcd", os.environ.get("COREBOX_CONF_SUBJECT", "corebox")}))
def test_harness_restart_keeps_data_and_url(make_server, kind):
    """stop()/restart() come back on the same URL with the same data; kill()
    leaves no process. Also a durability check of the subject: an
    acknowledged write survives a clean restart and a SIGKILL."""
    srv = make_server(kind)
    url, data_dir = srv.url, srv.data_dir
    r = do_request(srv, "PUT", "/v2/keys/durable", b"value=kept", {"Content-Type": FORM})
    assert r.status == 201, (r.status, r.error, r.body)
    srv.restart()
    assert (srv.url, srv.data_dir) == (url, data_dir)
    r = do_request(srv, "GET", "/v2/keys/durable", None, {})
    assert r.status == 200 and json.loads(r.body)["node"]["value"] == "kept"
    r = do_request(srv, "PUT", "/v2/keys/durable", b"value=after-restart", {"Content-Type": FORM})
    assert r.status == 200
    srv.kill()
    assert srv.proc.poll() is not None
    assert do_request(srv, "GET", "/version", None, {}, timeout=1.0).error
    srv.restart()
    r = do_request(srv, "GET", "/v2/keys/durable", None, {})
    assert r.status == 200 and json.loads(r.body)["node"]["value"] == "after-restart"
