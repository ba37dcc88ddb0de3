/* Unit tests for store/watch: history hits and the 401 "cleared" error,
 * recursive and hidden matching, watchers under deleted and expired
 * directories, stream versus one-shot, cancellation (also from inside
 * callbacks), refresh events, 10,000 watchers, and allocation failures. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "corebox/buf.h"
#include "corebox/err.h"
#include "corebox/mem.h"
#include "corebox/tree.h"
#include "corebox/watch.h"

#define S(x) (x), strlen(x)
#define SEC INT64_C(1000000000)
#define NOW (INT64_C(1795318800) * SEC)

/* What a watcher saw. */
struct seen {
	int calls;
	char keys[8][64];
	enum tree_action actions[8];
	uint64_t index[8];
	struct watcher *cancel_other; /* cancel this one from the callback */
	bool cancel_self;
	struct tree_event *kept;      /* a reference taken in the callback */
};

static void
on_event(void *arg, struct watcher *w, struct tree_event *ev)
{
	struct seen *s = arg;

	if (s->calls < 8) {
		snprintf(s->keys[s->calls], sizeof(s->keys[0]), "%s", ev->node.key);
		s->actions[s->calls] = ev->action;
		s->index[s->calls] = tree_event_index(ev);
	}
	s->calls++;
	if (s->cancel_other != NULL) {
		watch_cancel(s->cancel_other);
		s->cancel_other = NULL;
	}
	if (s->cancel_self)
		watch_cancel(w);
	if (s->kept == NULL)
		s->kept = tree_event_ref(ev);
}

static void
seen_free(struct seen *s)
{
	tree_event_unref(s->kept);
	s->kept = NULL;
}

struct fx {
	struct tree *t;
	struct watch_hub *hub;
};

static struct fx
fx_new(void)
{
	struct fx f;

	f.hub = watch_hub_new(0);
	assert_non_null(f.hub);
	f.t = tree_new(3, f.hub);
	assert_non_null(f.t);
	tree_set_now(f.t, NOW);
	return f;
}

static void
fx_free(struct fx *f)
{
	tree_free(f->t);
	watch_hub_free(f->hub);
}

static void
set_ok(struct fx *f, const char *key, const char *value)
{
	struct tree_event *ev = NULL;

	assert_int_equal(tree_set(f->t, S(key), false, S(value), TREE_PERMANENT, false, &ev, NULL), 0);
	tree_event_unref(ev);
}

static struct watcher *
watch(struct fx *f, const char *key, bool recursive, bool stream, uint64_t since, struct seen *s)
{
	struct watcher *w = NULL;
	struct tree_event *hit = NULL;

	assert_int_equal(watch_add(f->hub, S(key), recursive, stream, since, tree_index(f->t), on_event, s, &w, &hit,
	    NULL), 0);
	assert_null(hit);
	assert_non_null(w);
	return w;
}

static void
test_history_hit(void **state)
{
	struct fx f = fx_new();
	struct watcher *w = NULL;
	struct tree_event *hit = NULL;
	struct buf b = BUF_INIT;

	(void)state;
	set_ok(&f, "/a/b", "1");
	set_ok(&f, "/a/c", "2");
	set_ok(&f, "/x", "3");
	/* since 1 on /a/c: the first matching event at or after 1 is 2 */
	assert_int_equal(watch_add(f.hub, S("/a/c"), false, false, 1, 3, on_event, NULL, &w, &hit, NULL), 0);
	assert_null(w);
	assert_non_null(hit);
	assert_int_equal(tree_event_index(hit), 2);
	assert_int_equal(tree_event_json(&b, hit, 0), 0);
	assert_string_equal(buf_cstr(&b), "{\"action\":\"set\",\"node\":{\"key\":\"/a/c\",\"value\":\"2\",\"modifiedIndex\":2,\"createdIndex\":2}}");
	tree_event_unref(hit);
	/* recursive on /a from 1: event 1 */
	assert_int_equal(watch_add(f.hub, S("a/"), true, true, 1, 3, on_event, NULL, &w, &hit, NULL), 0);
	assert_int_equal(tree_event_index(hit), 1);
	assert_null(w); /* even a stream is not registered after a hit */
	tree_event_unref(hit);
	/* non-recursive /a sees nothing in history: registered */
	assert_int_equal(watch_add(f.hub, S("/a"), false, false, 1, 3, on_event, NULL, &w, &hit, NULL), 0);
	assert_null(hit);
	assert_non_null(w);
	assert_int_equal(watch_start_index(w), 3);
	assert_false(watch_is_stream(w));
	assert_int_equal(watch_hub_count(f.hub), 1);
	watch_cancel(w);
	assert_int_equal(watch_hub_count(f.hub), 0);
	/* "/ab" is not under "/a" */
	set_ok(&f, "/ab", "4");
	assert_int_equal(watch_add(f.hub, S("/a"), true, false, 3, 4, NULL, NULL, &w, &hit, NULL), 0);
	assert_null(hit);
	watch_cancel(w);
	/* etcd's history scan ignores the hidden rule (checked against etcd
	 * 3.4: a recursive watch on /hh from the index of /hh/_x returns it) */
	set_ok(&f, "/hh/_x", "1");
	assert_int_equal(watch_add(f.hub, S("/hh"), true, false, 5, 5, NULL, NULL, &w, &hit, NULL), 0);
	assert_non_null(hit);
	assert_int_equal(tree_event_index(hit), 5);
	tree_event_unref(hit);
	/* since 0 means the next index */
	assert_int_equal(watch_add(f.hub, S("/ab"), false, false, 0, 5, NULL, NULL, &w, &hit, NULL), 0);
	assert_null(hit);
	watch_cancel(w);
	buf_free(&b);
	fx_free(&f);
}

static void
test_history_cleared(void **state)
{
	struct fx f = fx_new();
	struct watcher *w = NULL;
	struct tree_event *hit = NULL;
	struct tree_error e = TREE_ERROR_INIT;
	struct buf b = BUF_INIT;

	(void)state;
	for (int i = 0; i < 1005; i++)
		set_ok(&f, "/k", "v");
	assert_int_equal(watch_history_start(f.hub), 6);
	assert_int_equal(watch_history_last(f.hub), 1005);
	assert_int_equal(watch_add(f.hub, S("/k"), false, false, 5, 1005, on_event, NULL, &w, &hit, &e), -ERR_INVAL);
	assert_null(w);
	assert_null(hit);
	assert_int_equal(e.code, 401);
	assert_string_equal(e.cause, "the requested history has been cleared [6/5]");
	assert_int_equal(e.index, 1005);
	assert_int_equal(tree_error_json(&b, e.code, e.cause, e.cause_len, e.index), 0);
	assert_string_equal(buf_cstr(&b), "{\"errorCode\":401,\"message\":\"The event in requested index is outdated and cleared\","
	    "\"cause\":\"the requested history has been cleared [6/5]\",\"index\":1005}");
	tree_error_free(&e);
	assert_int_equal(watch_add(f.hub, S("/k"), false, false, 6, 1005, on_event, NULL, &w, &hit, &e), 0);
	assert_int_equal(tree_event_index(hit), 6);
	tree_event_unref(hit);
	/* after a reset the history is empty and old indexes just wait */
	watch_history_reset(f.hub);
	assert_int_equal(watch_add(f.hub, S("/k"), false, false, 5, 1005, on_event, NULL, &w, &hit, &e), 0);
	assert_null(hit);
	assert_non_null(w);
	watch_cancel(w);
	buf_free(&b);
	fx_free(&f);
}

static void
test_recursive_hidden(void **state)
{
	struct fx f = fx_new();
	struct seen rec = { 0 }, exact = { 0 }, hid = { 0 }, root = { 0 }, plain = { 0 };

	(void)state;
	watch(&f, "/a", true, true, 0, &rec);
	watch(&f, "/a/_h", false, true, 0, &hid);
	watch(&f, "/", true, true, 0, &root);
	watch(&f, "/a", false, true, 0, &plain);
	watch(&f, "/a/b", false, true, 0, &exact);
	set_ok(&f, "/a/b", "1");	 /* 1: rec, root, exact */
	set_ok(&f, "/a/_h", "2");	 /* 2: hid only */
	set_ok(&f, "/a/_d/x", "3");	 /* 3: nobody */
	set_ok(&f, "/_top", "4");	 /* 4: nobody */
	set_ok(&f, "/a/b/../c", "5");	 /* 5: rec, root (key /a/c) */
	assert_int_equal(rec.calls, 2);
	assert_string_equal(rec.keys[1], "/a/c");
	assert_int_equal(root.calls, 2);
	assert_int_equal(exact.calls, 1);
	assert_int_equal(hid.calls, 1);
	assert_int_equal(hid.index[0], 2);
	assert_int_equal(plain.calls, 0);
	/* a change on the directory itself reaches the plain watcher */
	{
		struct tree_event *ev = NULL;

		assert_int_equal(tree_update(f.t, S("/a"), NULL, 0, NOW + 100 * SEC, false, &ev, NULL), 0);
		tree_event_unref(ev);
	}
	assert_int_equal(plain.calls, 1);
	assert_int_equal(plain.actions[0], TREE_UPDATE);
	assert_int_equal(watch_hub_count(f.hub), 5);
	seen_free(&rec);
	seen_free(&exact);
	seen_free(&hid);
	seen_free(&root);
	seen_free(&plain);
	fx_free(&f);
}

static void
test_delete_dir_notifies_children(void **state)
{
	struct fx f = fx_new();
	struct seen child = { 0 }, sub = { 0 }, hid = { 0 }, stream = { 0 }, other = { 0 };
	struct tree_event *ev = NULL;

	(void)state;
	set_ok(&f, "/d/c/x", "1");
	set_ok(&f, "/d/_h", "2");
	set_ok(&f, "/e", "3");
	watch(&f, "/d/c/x", false, false, 0, &child);
	watch(&f, "/d/c", false, false, 0, &sub);	/* not recursive, still fires */
	watch(&f, "/d/_h", false, false, 0, &hid);	/* hidden, still fires */
	watch(&f, "/d/c/x/nothere", false, false, 0, &other);
	watch(&f, "/e", false, true, 0, &stream);
	assert_int_equal(watch_hub_count(f.hub), 5);
	assert_int_equal(tree_delete(f.t, S("/d"), true, true, &ev, NULL), 0);
	tree_event_unref(ev);
	assert_int_equal(child.calls, 1);
	assert_string_equal(child.keys[0], "/d");
	assert_int_equal(child.actions[0], TREE_DELETE);
	assert_int_equal(sub.calls, 1);
	assert_int_equal(hid.calls, 1);
	assert_int_equal(other.calls, 0); /* no node there */
	assert_int_equal(watch_hub_count(f.hub), 2);
	/* etcd sends a stream watcher on a deleted file the event twice:
	 * once as a removed node, once as the event's own path */
	assert_int_equal(tree_delete(f.t, S("/e"), false, false, &ev, NULL), 0);
	tree_event_unref(ev);
	assert_int_equal(stream.calls, 2);
	assert_int_equal(stream.index[0], 5);
	assert_int_equal(stream.index[1], 5);
	/* the history knows deleted directories cover paths below them,
	 * even as a plain string prefix, as etcd */
	{
		struct watcher *w = NULL;
		struct tree_event *hit = NULL;

		assert_int_equal(watch_add(f.hub, S("/d/c/x"), false, false, 4, 5, NULL, NULL, &w, &hit, NULL), 0);
		assert_int_equal(tree_event_index(hit), 4);
		tree_event_unref(hit);
		assert_int_equal(watch_add(f.hub, S("/dzz"), false, false, 4, 5, NULL, NULL, &w, &hit, NULL), 0);
		assert_int_equal(tree_event_index(hit), 4);
		tree_event_unref(hit);
		assert_int_equal(watch_add(f.hub, S("/e2"), false, false, 5, 5, on_event, &other, &w, &hit, NULL), 0);
		assert_null(hit); /* /e was a file */
		watch_cancel(w);
	}
	seen_free(&child);
	seen_free(&sub);
	seen_free(&hid);
	seen_free(&stream);
	seen_free(&other);
	fx_free(&f);
}

static void
test_expire_notifies(void **state)
{
	struct fx f = fx_new();
	struct seen child = { 0 }, root = { 0 };
	struct tree_event *ev = NULL;

	(void)state;
	assert_int_equal(tree_set(f.t, S("/t/a"), false, S("1"), NOW + 5 * SEC, false, &ev, NULL), 0);
	tree_event_unref(ev);
	assert_int_equal(tree_update(f.t, S("/t"), NULL, 0, NOW + 2 * SEC, false, &ev, NULL), 0);
	tree_event_unref(ev);
	watch(&f, "/t/a", false, false, 0, &child);
	watch(&f, "/", true, true, 0, &root);
	assert_int_equal(tree_delete_expired(f.t, NOW + 3 * SEC), 1);
	assert_int_equal(child.calls, 1);
	assert_int_equal(child.actions[0], TREE_EXPIRE);
	assert_string_equal(child.keys[0], "/t");
	assert_int_equal(root.calls, 1);
	assert_int_equal(root.index[0], 3);
	seen_free(&child);
	seen_free(&root);
	fx_free(&f);
}

static void
test_stream_oneshot_since(void **state)
{
	struct fx f = fx_new();
	struct seen one = { 0 }, st = { 0 }, later = { 0 };
	struct watcher *ws;

	(void)state;
	watch(&f, "/k", false, false, 0, &one);
	ws = watch(&f, "/k", false, true, 0, &st);
	/* waiting for index 3: index 1 and 2 do not count */
	watch(&f, "/k", false, false, 3, &later);
	set_ok(&f, "/k", "1");
	set_ok(&f, "/k", "2");
	assert_int_equal(one.calls, 1);
	assert_int_equal(st.calls, 2);
	assert_int_equal(later.calls, 0);
	set_ok(&f, "/k", "3");
	assert_int_equal(later.calls, 1);
	assert_int_equal(later.index[0], 3);
	assert_int_equal(watch_hub_count(f.hub), 1);
	watch_cancel(ws);
	set_ok(&f, "/k", "4");
	assert_int_equal(st.calls, 3);
	assert_int_equal(watch_hub_count(f.hub), 0);
	/* the kept reference outlives the history slot */
	assert_int_equal(tree_event_index(one.kept), 1);
	seen_free(&one);
	seen_free(&st);
	seen_free(&later);
	fx_free(&f);
}

static void
test_cancel_in_callback(void **state)
{
	struct fx f = fx_new();
	struct seen a = { 0 }, b = { 0 }, c = { 0 }, d = { 0 };
	struct watcher *wb, *wd;

	(void)state;
	watch(&f, "/k", false, true, 0, &a);
	wb = watch(&f, "/k", false, true, 0, &b);
	watch(&f, "/k", false, true, 0, &c);
	wd = watch(&f, "/", true, true, 0, &d);
	/* a cancels b (next in the list) and c cancels itself */
	a.cancel_other = wb;
	c.cancel_self = true;
	set_ok(&f, "/k", "1");
	assert_int_equal(a.calls, 1);
	assert_int_equal(b.calls, 0);
	assert_int_equal(c.calls, 1);
	assert_int_equal(d.calls, 1);
	assert_int_equal(watch_hub_count(f.hub), 2);
	/* cancelling a deeper group's last watcher from a shallower one */
	watch_cancel(wd);
	{
		struct seen e = { 0 };
		struct watcher *we = watch(&f, "/k/deep/er", false, false, 0, &e);

		d.calls = 0;
		watch(&f, "/", true, true, 0, &d);
		d.cancel_other = we;
		set_ok(&f, "/k2", "1");
		assert_int_equal(d.calls, 1);
		assert_false(watch_hub_watched_under(f.hub, S("/k/deep")));
		assert_true(watch_hub_watched_under(f.hub, S("/k")));
		seen_free(&e);
	}
	set_ok(&f, "/k", "2");
	assert_int_equal(a.calls, 2);
	assert_int_equal(c.calls, 1);
	watch_cancel(NULL);
	seen_free(&a);
	seen_free(&b);
	seen_free(&c);
	seen_free(&d);
	fx_free(&f);
}

/* A callback that registers another watcher on the same path. */
struct rearm {
	struct watch_hub *hub;
	struct seen inner;
	int calls;
	struct watcher *added;
};

static void
on_rearm(void *arg, struct watcher *w, struct tree_event *ev)
{
	struct rearm *r = arg;
	struct tree_event *hit = NULL;

	(void)w;
	r->calls++;
	if (r->added == NULL) {
		/* since = this event's index: not in the history yet while the
		 * deleted node's watchers are told */
		assert_int_equal(watch_add(r->hub, ev->node.key, ev->node.key_len, false, true,
		    tree_event_index(ev), tree_event_index(ev) - 1, on_event, &r->inner, &r->added, &hit, NULL), 0);
		assert_null(hit);
	}
}

static void
test_register_in_callback(void **state)
{
	struct fx f = fx_new();
	struct rearm r = { 0 };
	struct watcher *w = NULL;
	struct tree_event *hit = NULL, *ev = NULL;

	(void)state;
	r.hub = f.hub;
	set_ok(&f, "/k", "1");
	assert_int_equal(watch_add(f.hub, S("/k"), false, true, 0, 1, on_rearm, &r, &w, &hit, NULL), 0);
	/* a stream on a deleted file hears the delete twice (see above) */
	assert_int_equal(tree_delete(f.t, S("/k"), false, false, &ev, NULL), 0);
	tree_event_unref(ev);
	assert_int_equal(r.calls, 2);
	assert_non_null(r.added);
	/* the watcher added during the delivery did not get that event */
	assert_int_equal(r.inner.calls, 0);
	set_ok(&f, "/k", "2");
	assert_int_equal(r.inner.calls, 1);
	assert_int_equal(r.inner.index[0], 3);
	seen_free(&r.inner);
	fx_free(&f);
}

static void
test_refresh_silent(void **state)
{
	struct fx f = fx_new();
	struct seen s = { 0 };
	struct tree_event *ev = NULL, *hit = NULL;
	struct watcher *w = NULL;

	(void)state;
	assert_int_equal(tree_set(f.t, S("/r"), false, S("v"), NOW + 10 * SEC, false, &ev, NULL), 0);
	tree_event_unref(ev);
	watch(&f, "/r", false, true, 0, &s);
	assert_int_equal(tree_update(f.t, S("/r"), NULL, 0, NOW + 20 * SEC, true, &ev, NULL), 0);
	tree_event_unref(ev);
	assert_int_equal(tree_set(f.t, S("/r"), false, NULL, 0, NOW + 30 * SEC, true, &ev, NULL), 0);
	tree_event_unref(ev);
	assert_int_equal(tree_cas(f.t, S("/r"), S("v"), 0, NULL, 0, NOW + 40 * SEC, true, &ev, NULL), 0);
	tree_event_unref(ev);
	assert_int_equal(s.calls, 0);
	/* in history (the indexes stay consecutive) but skipped by scans */
	assert_int_equal(watch_history_last(f.hub), 4);
	assert_int_equal(watch_add(f.hub, S("/r"), false, false, 2, 4, NULL, NULL, &w, &hit, NULL), 0);
	assert_null(hit);
	watch_cancel(w);
	set_ok(&f, "/r", "x");
	assert_int_equal(s.calls, 1);
	assert_int_equal(s.index[0], 5);
	seen_free(&s);
	fx_free(&f);
}

static void
test_many_watchers(void **state)
{
	struct fx f = fx_new();
	struct seen *s = calloc(10000, sizeof(*s));
	char k[32];

	(void)state;
	assert_non_null(s);
	for (int i = 0; i < 10000; i++) {
		snprintf(k, sizeof(k), "/svc/%d/state", i);
		watch(&f, k, false, false, 0, &s[i]);
	}
	assert_int_equal(watch_hub_count(f.hub), 10000);
	/* each write fires exactly its own watcher */
	for (int i = 0; i < 10000; i += 7) {
		snprintf(k, sizeof(k), "/svc/%d/state", i);
		set_ok(&f, k, "up");
		assert_int_equal(s[i].calls, 1);
	}
	for (int i = 0; i < 10000; i++)
		assert_int_equal(s[i].calls, i % 7 == 0 ? 1 : 0);
	assert_int_equal(watch_hub_count(f.hub), 10000 - 1429);
	/* Watchers on nodes that exist fire when their parent goes; the
	 * others (no node there) stay registered. */
	{
		struct tree_event *ev = NULL;

		for (int i = 1; i < 10000; i += 7) {
			snprintf(k, sizeof(k), "/svc/%d/state", i);
			set_ok(&f, k, "up");
			assert_int_equal(s[i].calls, 1);
			watch(&f, k, false, false, 0, &s[i]);
		}
		assert_int_equal(watch_hub_count(f.hub), 10000 - 1429);
		assert_int_equal(tree_delete(f.t, S("/svc"), true, true, &ev, NULL), 0);
		tree_event_unref(ev);
	}
	for (int i = 0; i < 10000; i++) {
		if (i % 7 == 1) {
			assert_int_equal(s[i].calls, 2);
			assert_int_equal(s[i].actions[1], TREE_DELETE);
			assert_string_equal(s[i].keys[1], "/svc");
		}
		seen_free(&s[i]);
	}
	assert_int_equal(watch_hub_count(f.hub), 10000 - 1429 - 1429);
	free(s);
	fx_free(&f); /* frees the watchers still registered */
}

static void
test_deep_watch_parked(void **state)
{
	struct fx f = fx_new();
	struct seen s = { 0 };
	char key[TREE_DEPTH_MAX * 2 + 8];
	size_t n = 0;
	struct watcher *w = NULL;
	struct tree_event *hit = NULL;

	(void)state;
	for (int i = 0; i <= TREE_DEPTH_MAX; i++) {
		key[n++] = '/';
		key[n++] = 'p';
	}
	assert_int_equal(watch_add(f.hub, key, n, true, true, 0, 0, on_event, &s, &w, &hit, NULL), 0);
	assert_non_null(w);
	assert_int_equal(watch_hub_count(f.hub), 1);
	set_ok(&f, "/p/p", "1");
	assert_int_equal(s.calls, 0);
	watch_cancel(w);
	assert_int_equal(watch_hub_count(f.hub), 0);
	/* two parked, freed with the hub */
	assert_int_equal(watch_add(f.hub, key, n, true, true, 0, 0, on_event, &s, &w, &hit, NULL), 0);
	assert_int_equal(watch_add(f.hub, key, n, true, true, 0, 0, on_event, &s, &w, &hit, NULL), 0);
	fx_free(&f);
}

static void
test_watch_nomem(void **state)
{
	struct fx f = fx_new();
	struct seen s = { 0 };

	(void)state;
	watch(&f, "/a", true, false, 0, &s);
	for (long n = 0;; n++) {
		struct watcher *w = NULL;
		struct tree_event *hit = NULL;
		int rc;

		mem_fail_after(n);
		rc = watch_add(f.hub, S("/a/b/c/d"), false, false, 0, 0, on_event, &s, &w, &hit, NULL);
		mem_fail_reset();
		if (rc == 0) {
			assert_non_null(w);
			break;
		}
		assert_int_equal(rc, -ERR_NOMEM);
		assert_null(w);
		assert_int_equal(watch_hub_count(f.hub), 1);
		assert_false(watch_hub_watched_under(f.hub, S("/a/b")));
	}
	assert_int_equal(watch_hub_count(f.hub), 2);
	assert_true(watch_hub_watched_under(f.hub, S("/a/b/c")));
	set_ok(&f, "/a/b/c/d", "1");
	assert_int_equal(s.calls, 2);
	assert_int_equal(watch_hub_count(f.hub), 0);
	assert_false(watch_hub_watched_under(f.hub, S("/")));
	/* a cleared error whose cause cannot be copied */
	for (int i = 0; i < 1001; i++)
		set_ok(&f, "/z", "v");
	{
		struct watcher *w = NULL;
		struct tree_event *hit = NULL;
		struct tree_error e = TREE_ERROR_INIT;

		mem_fail_after(0);
		assert_int_equal(watch_add(f.hub, S("/z"), false, false, 1, 1002, on_event, &s, &w, &hit, &e), -ERR_NOMEM);
		mem_fail_reset();
		assert_int_equal(e.code, 0);
	}
	seen_free(&s);
	fx_free(&f);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_history_hit),
		cmocka_unit_test(test_history_cleared),
		cmocka_unit_test(test_recursive_hidden),
		cmocka_unit_test(test_delete_dir_notifies_children),
		cmocka_unit_test(test_expire_notifies),
		cmocka_unit_test(test_stream_oneshot_since),
		cmocka_unit_test(test_cancel_in_callback),
		cmocka_unit_test(test_register_in_callback),
		cmocka_unit_test(test_refresh_silent),
		cmocka_unit_test(test_many_watchers),
		cmocka_unit_test(test_deep_watch_parked),
		cmocka_unit_test(test_watch_nomem),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
