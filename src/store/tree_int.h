/*
 * tree_int: the node layout shared by tree.c (operations), tree_json.c
 * (rendering) and tree_snap.c (snapshots and hashing). Private to
 * src/store/tree*.c: nothing outside the tree module may include it.
 */
#ifndef COREBOX_TREE_INT_H
#define COREBOX_TREE_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "corebox/tree.h"

#define NODE_DIR 1u

/*
 * One node, one allocation: the fixed header, then for a directory the
 * pointer to its children table, then the name bytes, then (files) the
 * value bytes. Full paths are never stored; they are rebuilt from the
 * parent chain when needed.
 */
struct tree_node {
	struct tree_node *parent; /* NULL for the root */
	uint64_t created;
	uint64_t modified;
	int64_t expire;	   /* TREE_PERMANENT or ns since the epoch */
	uint32_t heap_pos; /* 1 + position in the TTL heap; 0 when not in it */
	uint32_t name_len;
	uint32_t len;	   /* file: value bytes; directory: number of children */
	uint8_t flags;
	uint8_t cap_log2;  /* directory: table has 1 << cap_log2 slots */
	uint8_t pad[2];
	char data[];
};

struct tree {
	struct tree_node *root;
	struct watch_hub *hub;
	uint64_t k0, k1; /* SipHash key for children tables */
	uint64_t index;
	int64_t now;
	size_t nodes;
	struct tree_stats stats;
	struct tree_node **heap; /* TTL min-heap */
	size_t heap_len, heap_cap;
	char *scratch; /* room for the longest path ever created */
	size_t scratch_cap;
	char *getkey; /* key of the last borrowed GET event or expiry */
	size_t getkey_cap;
};

static inline bool
node_is_dir(const struct tree_node *n)
{
	return (n->flags & NODE_DIR) != 0;
}

static inline struct tree_node **
dir_slots(const struct tree_node *n)
{
	struct tree_node **s;

	memcpy(&s, n->data, sizeof(s));
	return s;
}

static inline void
dir_set_slots(struct tree_node *n, struct tree_node **s)
{
	memcpy(n->data, &s, sizeof(s));
}

static inline char *
node_name(const struct tree_node *n)
{
	return (char *)n->data + (node_is_dir(n) ? sizeof(struct tree_node **) : 0);
}

static inline const char *
node_value(const struct tree_node *n)
{
	return node_name(n) + n->name_len;
}

static inline size_t
dir_cap(const struct tree_node *n)
{
	return dir_slots(n) != NULL ? (size_t)1 << n->cap_log2 : 0;
}

static inline bool
node_hidden(const struct tree_node *n)
{
	return n->name_len > 0 && node_name(n)[0] == '_';
}

/* tree.c internals used by the other tree files. */
uint64_t tree_siphash(uint64_t k0, uint64_t k1, const void *data, size_t len);
struct tree_node *tree_node_alloc(bool dir, const char *name, size_t name_len, const char *value, size_t value_len);
void tree_node_free_all(struct tree_node *n);
struct tree_node *tree_child(const struct tree *t, const struct tree_node *dir, const char *name, size_t len);
int tree_dir_reserve(const struct tree *t, struct tree_node *dir, size_t extra);
void tree_dir_insert(const struct tree *t, struct tree_node *dir, struct tree_node *c);
int tree_heap_reserve(struct tree *t, size_t extra);
void tree_heap_push(struct tree *t, struct tree_node *n);
int tree_node_path_cmp(const struct tree_node *a, const struct tree_node *b);
int tree_scratch_reserve(struct tree *t, size_t len);
int tree_node_path(struct tree *t, const struct tree_node *n, char **buf, size_t *cap, size_t *len);
struct tree *tree_alloc(uint64_t seed, struct watch_hub *hub);

#endif
