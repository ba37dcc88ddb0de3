/*
 * watch: etcd v2's watcher hub and event history, pure.
 *
 * Watchers are grouped by their clean path in an open-addressing table.
 * Every prefix of a watched path has a group too (possibly without
 * watchers of its own) carrying the number of watchers at or below it, so
 * an event walks at most depth(key) groups and stops at the first prefix
 * nobody watches, and the tree can ask cheaply whether a removed subtree
 * has watchers at all. Groups point at their parent group, so giving up a
 * watcher fixes the counts without hashing.
 *
 * Callbacks run while the hub iterates its lists, and they may cancel any
 * watcher or register new ones. So while a notification is running, watchers
 * and groups are only unlinked, never freed: they go on zombie lists that
 * the outermost notification frees when it ends. This module must never do
 * I/O or read a clock.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "corebox/err.h"
#include "corebox/mem.h"
#include "corebox/tree.h"
#include "corebox/watch.h"
#include "tree_int.h"

/* Fixed hash keys: watch paths are chosen by clients, but a collision costs
 * one probe per watcher group, and groups are bounded by the watchers the
 * server admits. */
#define WK0 UINT64_C(0x243f6a8885a308d3)
#define WK1 UINT64_C(0x13198a2e03707344)

struct wgroup {
	struct wgroup *parent;	/* group of the parent path; NULL for "/" */
	struct watcher *head, *tail;
	struct wgroup *zombie_next;
	uint64_t hash;
	uint64_t below;		/* watchers on this path or under it */
	bool dead;		/* unlinked from the table by notify_end */
	bool swept;		/* queued for notify_end */
	size_t key_len;
	char key[];
};

struct watcher {
	struct watch_hub *hub;
	struct wgroup *group;	/* NULL: parked (path too deep to ever fire) */
	struct watcher *prev, *next;
	struct watcher *zombie_next;
	watch_fn fn;
	void *arg;
	uint64_t since;
	uint64_t start;
	uint64_t serial;	/* registration order */
	bool recursive;
	bool stream;
	bool removed;
};

struct watch_hub {
	struct wgroup **slots;
	size_t cap;		/* power of two */
	size_t used;
	uint64_t count;		/* registered watchers */
	uint64_t serial;	/* watchers ever registered */
	uint64_t cur_index;	/* index of the event being delivered */
	uint64_t cur_limit;	/* serial when its delivery began */
	unsigned notifying;	/* nesting depth of notifications */
	struct watcher *zombies;
	struct wgroup *gzombies; /* groups to sweep when notifying ends */
	struct watcher *parked;	/* list of watchers deeper than the tree allows */
	/* History ring (etcd's eventQueue + EventHistory). */
	struct tree_event **events;
	size_t capacity, front, back, size;
	uint64_t start_index, last_index;
};

/* ------------------------------------------------------------------ */
/* Group table                                                         */
/* ------------------------------------------------------------------ */

static uint64_t
path_hash(const char *p, size_t len)
{
	return tree_siphash(WK0, WK1, p, len);
}

static struct wgroup *
group_find(const struct watch_hub *hub, const char *p, size_t len, uint64_t h)
{
	size_t mask = hub->cap - 1, i;

	if (hub->cap == 0)
		return NULL;
	for (i = (size_t)h & mask; hub->slots[i] != NULL; i = (i + 1) & mask) {
		struct wgroup *g = hub->slots[i];

		if (g->hash == h && g->key_len == len && memcmp(g->key, p, len) == 0)
			return g;
	}
	return NULL;
}

static void
group_place(struct wgroup **slots, size_t cap, struct wgroup *g)
{
	size_t mask = cap - 1, i = (size_t)g->hash & mask;

	while (slots[i] != NULL)
		i = (i + 1) & mask;
	slots[i] = g;
}

/* Room for extra more groups at load factor 1/2. */
static int
table_reserve(struct watch_hub *hub, size_t extra)
{
	size_t want = hub->used + extra, cap = hub->cap ? hub->cap : 16;
	struct wgroup **nw;

	if (hub->cap != 0 && want * 2 <= hub->cap)
		return 0;
	while (want * 2 > cap)
		cap *= 2;
	nw = mem_calloc(cap, sizeof(*nw));
	if (nw == NULL)
		return -ERR_NOMEM;
	for (size_t i = 0; i < hub->cap; i++)
		if (hub->slots[i] != NULL)
			group_place(nw, cap, hub->slots[i]);
	mem_free(hub->slots);
	hub->slots = nw;
	hub->cap = cap;
	return 0;
}

static void
table_remove(struct watch_hub *hub, struct wgroup *g)
{
	size_t mask = hub->cap - 1, i = (size_t)g->hash & mask, j;

	while (hub->slots[i] != g)
		i = (i + 1) & mask;
	hub->slots[i] = NULL;
	j = i;
	for (;;) {
		size_t k;

		j = (j + 1) & mask;
		if (hub->slots[j] == NULL)
			break;
		k = (size_t)hub->slots[j]->hash & mask;
		if ((i <= j) ? (i < k && k <= j) : (i < k || k <= j))
			continue;
		hub->slots[i] = hub->slots[j];
		hub->slots[j] = NULL;
		i = j;
	}
	hub->used--;
}

/*
 * Drops the groups nobody watches any more, from g up to the root (the
 * counts only grow towards the root, so that is a chain). Outside a
 * notification they are freed at once; inside one they are queued for
 * notify_end, because the notification may be standing on them.
 */
static void
groups_release(struct watch_hub *hub, struct wgroup *g)
{
	while (g != NULL && g->below == 0) {
		struct wgroup *parent = g->parent;

		if (hub->notifying > 0) {
			if (!g->swept) {
				g->swept = true;
				g->zombie_next = hub->gzombies;
				hub->gzombies = g;
			}
		} else {
			table_remove(hub, g);
			mem_free(g);
		}
		g = parent;
	}
}

/* ------------------------------------------------------------------ */
/* Hub                                                                 */
/* ------------------------------------------------------------------ */

struct watch_hub *
watch_hub_new(size_t history_events)
{
	struct watch_hub *hub = mem_calloc(1, sizeof(*hub));

	if (hub == NULL)
		return NULL;
	hub->capacity = history_events ? history_events : WATCH_HISTORY_EVENTS;
	hub->events = mem_calloc(hub->capacity, sizeof(*hub->events));
	if (hub->events == NULL) {
		mem_free(hub);
		return NULL;
	}
	return hub;
}

void
watch_history_reset(struct watch_hub *hub)
{
	for (size_t i = 0; i < hub->capacity; i++) {
		tree_event_unref(hub->events[i]);
		hub->events[i] = NULL;
	}
	hub->front = hub->back = hub->size = 0;
	hub->start_index = hub->last_index = 0;
}

static void
free_watchers(struct watcher *w)
{
	while (w != NULL) {
		struct watcher *next = w->next;

		mem_free(w);
		w = next;
	}
}

void
watch_hub_free(struct watch_hub *hub)
{
	if (hub == NULL)
		return;
	/* Never called from inside a notification, so no zombies exist. */
	for (size_t i = 0; i < hub->cap; i++) {
		struct wgroup *g = hub->slots[i];

		if (g == NULL)
			continue;
		free_watchers(g->head);
		mem_free(g);
	}
	free_watchers(hub->parked);
	watch_history_reset(hub);
	mem_free(hub->events);
	mem_free(hub->slots);
	mem_free(hub);
}

uint64_t
watch_hub_count(const struct watch_hub *hub)
{
	return hub->count;
}

uint64_t
watch_history_start(const struct watch_hub *hub)
{
	return hub->start_index;
}

uint64_t
watch_history_last(const struct watch_hub *hub)
{
	return hub->last_index;
}

uint64_t
watch_start_index(const struct watcher *w)
{
	return w->start;
}

bool
watch_is_stream(const struct watcher *w)
{
	return w->stream;
}

/* ------------------------------------------------------------------ */
/* History                                                             */
/* ------------------------------------------------------------------ */

static void
history_add(struct watch_hub *hub, struct tree_event *ev)
{
	struct tree_event *old = hub->events[hub->back];

	hub->events[hub->back] = tree_event_ref(ev);
	hub->back = (hub->back + 1) % hub->capacity;
	if (hub->size == hub->capacity)
		hub->front = (hub->front + 1) % hub->capacity;
	else
		hub->size++;
	tree_event_unref(old);
	hub->last_index = tree_event_index(ev);
	hub->start_index = tree_event_index(hub->events[hub->front]);
}

static bool
has_prefix(const char *s, size_t sl, const char *p, size_t pl)
{
	return sl >= pl && memcmp(s, p, pl) == 0;
}

/* etcd EventHistory.scan. */
static int
history_scan(struct watch_hub *hub, const char *key, size_t klen, bool recursive, uint64_t index,
    struct tree_event **hit, uint64_t store_index, struct tree_error *err)
{
	size_t i;

	*hit = NULL;
	if (index < hub->start_index) {
		char cause[96];
		int n = snprintf(cause, sizeof(cause), "the requested history has been cleared [%llu/%llu]",
		    (unsigned long long)hub->start_index, (unsigned long long)index);

		if (tree_error_set(err, TREE_E_EVENT_INDEX_CLEARED, cause, (size_t)n, store_index) != 0)
			return -ERR_NOMEM;
		return -ERR_INVAL;
	}
	/* Events carry consecutive indexes (one per store index), so the
	 * requested one sits at a fixed offset from the front. */
	if (index > hub->last_index || hub->size == 0 || index - hub->start_index >= hub->size)
		return 0;
	i = (hub->front + (size_t)(index - hub->start_index)) % hub->capacity;
	for (;;) {
		struct tree_event *e = hub->events[i];

		if (e != NULL && !e->refresh) {
			bool ok = e->node.key_len == klen && memcmp(e->node.key, key, klen) == 0;

			/* Recursive: the key followed by '/' is a prefix of the
			 * event's key ("/" already ends with one). */
			if (recursive && !ok && has_prefix(e->node.key, e->node.key_len, key, klen)) {
				ok = klen == 1 || (e->node.key_len > klen && e->node.key[klen] == '/');
			}
			/* A deleted or expired directory matches every watch whose
			 * key starts with its key, as a plain string prefix. */
			if ((e->action == TREE_DELETE || e->action == TREE_EXPIRE) && e->has_prev && e->prev.dir &&
			    has_prefix(key, klen, e->prev.key, e->prev.key_len))
				ok = true;
			if (ok) {
				*hit = tree_event_ref(e);
				return 0;
			}
		}
		i = (i + 1) % hub->capacity;
		if (i == hub->back)
			return 0;
	}
}

/* ------------------------------------------------------------------ */
/* Registration                                                        */
/* ------------------------------------------------------------------ */

static unsigned
segments(const char *p, size_t len)
{
	unsigned d = 0;

	if (len <= 1)
		return 0;
	for (size_t i = 0; i < len; i++)
		if (p[i] == '/')
			d++;
	return d;
}

/* Finds or creates the groups of every prefix of p (the root first) and
 * counts one more watcher in each. Returns the group of p itself. */
static int
groups_acquire(struct watch_hub *hub, const char *p, size_t len, struct wgroup **out)
{
	struct wgroup *fresh[TREE_DEPTH_MAX + 1], *parent = NULL, *g = NULL;
	unsigned depth = segments(p, len), nfresh = 0, k = 0;
	size_t ends[TREE_DEPTH_MAX + 1];

	/* ends[i]: length of the i-th prefix ("/" is prefix 0). */
	ends[0] = 1;
	for (size_t i = 1; i < len; i++)
		if (p[i] == '/')
			ends[++k] = i;
	if (len > 1)
		ends[++k] = len;
	/* Allocate the missing groups first so nothing changes on failure. */
	if (table_reserve(hub, depth + 1) != 0)
		return -ERR_NOMEM;
	for (unsigned i = 0; i <= depth; i++) {
		uint64_t h = path_hash(p, ends[i]);

		if (group_find(hub, p, ends[i], h) != NULL)
			continue;
		fresh[nfresh] = mem_calloc(1, sizeof(struct wgroup) + ends[i]);
		if (fresh[nfresh] == NULL) {
			while (nfresh > 0)
				mem_free(fresh[--nfresh]);
			return -ERR_NOMEM;
		}
		fresh[nfresh]->hash = h;
		fresh[nfresh]->key_len = ends[i];
		memcpy(fresh[nfresh]->key, p, ends[i]);
		nfresh++;
	}
	k = 0;
	for (unsigned i = 0; i <= depth; i++) {
		uint64_t h = path_hash(p, ends[i]);

		g = group_find(hub, p, ends[i], h);
		if (g == NULL) {
			g = fresh[k++];
			g->parent = parent;
			group_place(hub->slots, hub->cap, g);
			hub->used++;
		}
		g->below++;
		parent = g;
	}
	*out = g;
	return 0;
}

int
watch_add(struct watch_hub *hub, const char *key, size_t key_len, bool recursive, bool stream,
    uint64_t since_index, uint64_t store_index, watch_fn fn, void *arg, struct watcher **out,
    struct tree_event **hit, struct tree_error *err)
{
	char small[256], *p = small;
	size_t len;
	struct watcher *w;
	int rc;

	*out = NULL;
	*hit = NULL;
	if (key_len + 1 > sizeof(small)) {
		p = mem_alloc(key_len + 1);
		if (p == NULL)
			return -ERR_NOMEM;
	}
	len = tree_path_clean(p, key, key_len);
	if (since_index == 0)
		since_index = store_index + 1;
	rc = history_scan(hub, p, len, recursive, since_index, hit, store_index, err);
	if (rc != 0 || *hit != NULL)
		goto out;
	w = mem_calloc(1, sizeof(*w));
	if (w == NULL) {
		rc = -ERR_NOMEM;
		goto out;
	}
	w->hub = hub;
	w->fn = fn;
	w->arg = arg;
	w->since = since_index;
	w->start = store_index;
	w->recursive = recursive;
	w->stream = stream;
	w->serial = hub->serial++;
	if (segments(p, len) > TREE_DEPTH_MAX) {
		/* No node can exist that deep, so it can never fire: park it,
		 * as etcd would keep it waiting. */
		w->next = hub->parked;
		if (hub->parked != NULL)
			hub->parked->prev = w;
		hub->parked = w;
	} else {
		struct wgroup *g;

		if ((rc = groups_acquire(hub, p, len, &g)) != 0) {
			mem_free(w);
			goto out;
		}
		w->group = g;
		w->prev = g->tail;
		if (g->tail != NULL)
			g->tail->next = w;
		else
			g->head = w;
		g->tail = w;
	}
	hub->count++;
	*out = w;
out:
	if (p != small)
		mem_free(p);
	return rc;
}

/* Takes w off its list and the counts; frees it unless a notification is
 * walking the lists. */
static void
watcher_remove(struct watcher *w)
{
	struct watch_hub *hub = w->hub;
	struct wgroup *g = w->group;

	if (w->removed)
		return;
	w->removed = true;
	/* The unlinked watcher keeps its next pointer so that an iteration
	 * standing on it can still move on. */
	if (w->prev != NULL)
		w->prev->next = w->next;
	else if (g != NULL)
		g->head = w->next;
	else
		hub->parked = w->next;
	if (w->next != NULL)
		w->next->prev = w->prev;
	else if (g != NULL)
		g->tail = w->prev;
	hub->count--;
	for (struct wgroup *x = g; x != NULL; x = x->parent)
		x->below--;
	groups_release(hub, g);
	if (hub->notifying > 0) {
		w->zombie_next = hub->zombies;
		hub->zombies = w;
	} else {
		mem_free(w);
	}
}

void
watch_cancel(struct watcher *w)
{
	if (w == NULL || w->removed)
		return;
	watcher_remove(w);
}

/* ------------------------------------------------------------------ */
/* Notification                                                        */
/* ------------------------------------------------------------------ */

static void
notify_begin(struct watch_hub *hub)
{
	hub->notifying++;
}

static void
notify_end(struct watch_hub *hub)
{
	struct wgroup *list;

	if (--hub->notifying > 0)
		return;
	while (hub->zombies != NULL) {
		struct watcher *w = hub->zombies;

		hub->zombies = w->zombie_next;
		mem_free(w);
	}
	/* Unlink every queued group still unwatched (a watcher may have come
	 * back to one meanwhile), then free them: a group's parent may be
	 * queued too, so nothing is freed while the list is being read. */
	list = hub->gzombies;
	hub->gzombies = NULL;
	for (struct wgroup *g = list; g != NULL; g = g->zombie_next) {
		g->swept = false;
		if (g->below == 0) {
			table_remove(hub, g);
			g->dead = true;
		}
	}
	while (list != NULL) {
		struct wgroup *g = list;

		list = g->zombie_next;
		if (g->dead)
			mem_free(g);
	}
}

/* etcd isHidden: is the part of key after watch path hidden? */
static bool
hidden_below(const char *wp, size_t wl, const char *key, size_t kl)
{
	if (wl > kl)
		return false;
	/* path.Clean("/" + rest) contains "/_" iff a segment of rest starts
	 * with '_'. */
	for (size_t i = wl; i < kl; i++) {
		if (key[i] == '_' && (i == wl || key[i - 1] == '/'))
			return true;
	}
	return false;
}

/* etcd watcherHub.notifyWatchers for the watchers registered on g. */
static void
notify_group(struct watch_hub *hub, struct wgroup *g, struct tree_event *ev, bool deleted)
{
	const char *key = ev->node.key;
	size_t kl = ev->node.key_len;
	bool original = g->key_len == kl && memcmp(g->key, key, kl) == 0;
	struct watcher *w = g->head;
	uint64_t limit;

	if (!original && hidden_below(g->key, g->key_len, key, kl))
		return;
	/* Watchers registered by callbacks while an event is being delivered
	 * (its removal notices and its own notify) wait for the next event,
	 * as they would behind etcd's lock. Events have distinct indexes. */
	if (hub->cur_index != tree_event_index(ev)) {
		hub->cur_index = tree_event_index(ev);
		hub->cur_limit = hub->serial;
	}
	limit = hub->cur_limit;
	while (w != NULL) {
		struct watcher *next = w->next;

		if (!w->removed && w->serial < limit && (w->recursive || original || deleted) &&
		    tree_event_index(ev) >= w->since) {
			if (!w->stream)
				watcher_remove(w);
			if (w->fn != NULL)
				w->fn(w->arg, w, ev);
		}
		w = next;
	}
}

void
watch_hub_record(struct watch_hub *hub, struct tree_event *ev)
{
	history_add(hub, ev);
}

void
watch_hub_notify(struct watch_hub *hub, struct tree_event *ev)
{
	const char *key = ev->node.key;
	size_t kl = ev->node.key_len, i = 1;

	history_add(hub, ev);
	if (hub->used == 0)
		return;
	notify_begin(hub);
	/* "/", then each prefix of the key, down to the key itself. A prefix
	 * without a group has no watchers at or below it: stop there. */
	for (;;) {
		size_t end = i == 1 ? 1 : i;
		struct wgroup *g = group_find(hub, key, end, path_hash(key, end));

		if (g == NULL)
			break;
		if (g->head != NULL)
			notify_group(hub, g, ev, false);
		if (i >= kl)
			break;
		i = i == 1 ? 2 : i + 1;
		while (i < kl && key[i] != '/')
			i++;
	}
	notify_end(hub);
}

void
watch_hub_notify_removed(struct watch_hub *hub, struct tree_event *ev, const char *path, size_t path_len)
{
	struct wgroup *g;

	if (hub == NULL || hub->used == 0)
		return;
	g = group_find(hub, path, path_len, path_hash(path, path_len));
	if (g == NULL || g->head == NULL)
		return;
	notify_begin(hub);
	notify_group(hub, g, ev, true);
	notify_end(hub);
}

bool
watch_hub_watched_under(const struct watch_hub *hub, const char *path, size_t path_len)
{
	const struct wgroup *g;

	if (hub == NULL || hub->used == 0)
		return false;
	g = group_find(hub, path, path_len, path_hash(path, path_len));
	return g != NULL && g->below > 0;
}
