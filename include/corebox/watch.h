/*
 * watch: etcd v2's watcher hub and event history (etcd v2.3
 * store/watcher_hub.go, watcher.go, event_history.go, event_queue.go) as a
 * pure module: no I/O, no clock, no threads.
 *
 * The hub keeps the last WATCH_HISTORY_EVENTS events (one reference each)
 * and the registered watchers, indexed by their cleaned path in a hash table
 * so that an event costs O(depth of its key), whatever the number of
 * watchers. The tree (corebox/tree.h) feeds the hub from inside its writes;
 * the server registers watchers for long-poll and stream requests and is
 * called back synchronously when an event matches.
 *
 * Matching rules (etcd's):
 *  - an event on key K is offered to the watchers registered on "/" and on
 *    every prefix path of K, down to K itself;
 *  - a watcher on W fires when W == K, or when it is recursive and K is
 *    below W and no segment of K after W starts with '_' (hidden keys are
 *    seen only by watchers on their exact path), and only if the event's
 *    index >= the watcher's since index;
 *  - when a delete, compareAndDelete or expire removes a directory, every
 *    watcher registered exactly on a removed node's path fires with that
 *    event (recursive or not, hidden or not);
 *  - refresh events go into the history but are offered to nobody, and are
 *    skipped by history scans;
 *  - a one-shot watcher is removed when it fires; a stream watcher stays.
 *
 * Callbacks run inside tree writes (see tree.h): they must not call tree_*
 * on the tree feeding this hub, nor watch_hub_free. They may take a
 * reference on the event (tree_event_ref) to use it later, cancel any
 * watcher (their own included) and register new watchers (which do not see
 * the event being delivered).
 *
 * Errors: 0 or -ERR_xxx; -ERR_INVAL with err filled (code 401) when the
 * requested index has left the history; -ERR_NOMEM (nothing registered).
 */
#ifndef COREBOX_WATCH_H
#define COREBOX_WATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "corebox/tree.h"

/* etcd keeps this many events, hard-coded (store.go newWatchHub(1000)). */
#define WATCH_HISTORY_EVENTS 1000

struct watch_hub;
struct watcher;

/*
 * Called when a registered watcher fires. ev is borrowed for the duration of
 * the call (take a reference to keep it). For a one-shot watcher, w has
 * already been unregistered and is freed right after the callback returns:
 * the caller must drop its pointer to it (calling watch_cancel(w) inside the
 * callback is allowed and does nothing). A stream watcher stays registered
 * until watch_cancel.
 */
typedef void (*watch_fn)(void *arg, struct watcher *w, struct tree_event *ev);

/* A hub keeping history_events events (0 means WATCH_HISTORY_EVENTS).
 * NULL when out of memory. */
struct watch_hub *watch_hub_new(size_t history_events);

/* Frees the hub, its history references and every watcher still registered
 * (without calling their callbacks: their owners must have been told). */
void watch_hub_free(struct watch_hub *hub);

/* Number of registered watchers (etcd's "watchers" in /v2/stats/store). */
uint64_t watch_hub_count(const struct watch_hub *hub);

/*
 * etcd Store.Watch + watcherHub.watch. key is cleaned like tree keys.
 * since_index 0 means store_index + 1. store_index is the tree's current
 * index (tree_index), reported with a 401 error and remembered as the
 * watcher's start index (the X-Etcd-Index of the watch response).
 *
 * On success exactly one of these holds:
 *  - *hit != NULL: an event at or after since_index matching the watch was
 *    found in the history. The caller owns one reference. No watcher is
 *    registered, even for a stream (etcd sends that one event only), and
 *    *out is NULL.
 *  - *out != NULL: the watcher is registered; fn(arg, w, ev) will be called.
 * Errors: -ERR_INVAL with err = {401, "the requested history has been
 * cleared [START/SINCE]", store_index}; -ERR_NOMEM. err may be NULL.
 */
int watch_add(struct watch_hub *hub, const char *key, size_t key_len, bool recursive, bool stream,
    uint64_t since_index, uint64_t store_index, watch_fn fn, void *arg, struct watcher **out,
    struct tree_event **hit, struct tree_error *err);

/* Unregisters and frees a watcher (the client went away). O(1), no callback.
 * Safe inside any callback of this hub. NULL is ignored. */
void watch_cancel(struct watcher *w);

/* The store index when the watcher was registered. */
uint64_t watch_start_index(const struct watcher *w);
bool watch_is_stream(const struct watcher *w);

/* History bounds as etcd's EventHistory (StartIndex, LastIndex); 0, 0 while
 * empty. */
uint64_t watch_history_start(const struct watch_hub *hub);
uint64_t watch_history_last(const struct watch_hub *hub);

/* Drops the whole history (after a snapshot replaced the tree). Watchers
 * stay registered. */
void watch_history_reset(struct watch_hub *hub);

/*
 * Called by the tree (and by tests); never fail, never allocate.
 *
 * watch_hub_notify: adds ev to the history (taking a reference; the oldest
 * event is released when full) and offers it to the watchers on every
 * prefix of its key (etcd notify).
 * watch_hub_record: adds ev to the history only (refresh events).
 * watch_hub_notify_removed: offers ev to the watchers registered exactly on
 * path (path_len bytes, already clean) because that node was removed
 * (etcd notifyWatchers(e, path, deleted=true)). Does not touch the history.
 */
void watch_hub_notify(struct watch_hub *hub, struct tree_event *ev);
void watch_hub_record(struct watch_hub *hub, struct tree_event *ev);
void watch_hub_notify_removed(struct watch_hub *hub, struct tree_event *ev, const char *path, size_t path_len);

/* True when some watcher is registered on path or below it; lets the tree
 * skip building paths of removed nodes nobody watches. */
bool watch_hub_watched_under(const struct watch_hub *hub, const char *path, size_t path_len);

#endif
