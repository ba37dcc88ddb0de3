/*
 * sim_script: scripted scenarios for golden transcripts (as etcd's
 * raft/testdata). A script is a list of commands, one per line ('#' starts
 * a comment); each command is echoed as "> command" and followed by the
 * trace of what it caused. The network is a FIFO queue that only moves
 * when told (deliver, stabilize) and fsyncs complete at once, so a script's
 * trace is a pure function of the script and of raft. The safety checker
 * runs after every command and every delivered message.
 *
 * Commands (node arguments are member ids, "3" or "n3"):
 *   nodes N [et=E hb=H inflight=I msgbytes=B catchup=C prevote=0|1 checkquorum=0|1]
 *   tick NODE|all [COUNT]     campaign NODE
 *   deliver [COUNT]           stabilize          drop [FROM TO]
 *   put NODE KEY [COUNT]      get NODE KEY
 *   isolate NODE   block FROM TO   heal   crash NODE   restart NODE
 *   compact NODE   transfer NODE TO   add LEADER   remove LEADER NODE
 *   status         log NODE           progress LEADER   queue
 * It must never touch the world except through sim_world.c.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "corebox/buf.h"
#include "corebox/err.h"
#include "corebox/mem.h"
#include "corebox/raft.h"
#include "sim.h"

#define SCRIPT_ARGS_MAX 16
#define STABILIZE_MAX 100000

static int
parse_u64(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (s[0] == 'n')
		s++;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0')
		return -1;
	*out = v;
	return 0;
}

static struct sim_node *
arg_node(struct sim_world *w, const char *s)
{
	uint64_t id;

	if (parse_u64(s, &id) != 0)
		return NULL;
	return sim_node_by_id(w, id);
}

static void
deliver_one(struct sim_world *w)
{
	struct sim_netmsg *m = w->fifo[0];

	memmove(w->fifo, w->fifo + 1, (w->n_fifo - 1) * sizeof(*w->fifo));
	w->n_fifo--;
	sim_deliver(w, m);
	sim_netmsg_unref(m);
	sim_after_step(w);
}

static void
print_status(struct sim_world *w)
{
	for (int i = 0; i < w->n; i++) {
		struct sim_node *nd = &w->nodes[i];
		struct raft_status st;
		struct buf b = BUF_INIT;

		if (nd->state == SLOT_PARKED)
			continue;
		if (nd->state == SLOT_DOWN) {
			sim_tracef(w, "n%llu: down", (unsigned long long)nd->id);
			continue;
		}
		raft_status(nd->r, &st);
		buf_printf(&b, "n%llu: %s term=%llu vote=%llu lead=%llu commit=%llu applied=%llu "
		    "last=%llu@%llu snap=%llu conf=[", (unsigned long long)st.id,
		    raft_role_name(st.role), (unsigned long long)st.term,
		    (unsigned long long)st.vote, (unsigned long long)st.lead,
		    (unsigned long long)st.commit, (unsigned long long)st.applied,
		    (unsigned long long)st.last_index, (unsigned long long)st.last_term,
		    (unsigned long long)st.snap_index);
		for (uint32_t k = 0; k < st.conf.n; k++)
			buf_printf(&b, "%s%llu", k ? " " : "", (unsigned long long)st.conf.ids[k]);
		buf_puts(&b, "]");
		for (int k = 0; k < SIM_KEYS; k++)
			if (nd->sm.kv[k].value)
				buf_printf(&b, " k%d=%llu", k, (unsigned long long)nd->sm.kv[k].value);
		sim_tracef(w, "%s", buf_cstr(&b));
		buf_free(&b);
	}
}

static void
print_log(struct sim_world *w, struct sim_node *nd)
{
	struct raft_status st;
	struct buf b = BUF_INIT;

	raft_status(nd->r, &st);
	buf_printf(&b, "n%llu log: snap=%llu@%llu", (unsigned long long)nd->id,
	    (unsigned long long)st.snap_index, (unsigned long long)st.snap_term);
	for (uint64_t i = st.first_index; i <= st.last_index; i++) {
		uint64_t t = 0;

		raft_term_at(nd->r, i, &t);
		buf_printf(&b, " %llu@%llu", (unsigned long long)i, (unsigned long long)t);
	}
	sim_tracef(w, "%s", buf_cstr(&b));
	buf_free(&b);
}

static void
print_progress(struct sim_world *w, struct sim_node *nd)
{
	static const char *const states[] = { "probe", "replicate", "snapshot" };
	struct raft_status st;

	raft_status(nd->r, &st);
	for (uint32_t k = 0; k < st.conf.n; k++) {
		struct raft_progress_info pi;

		if (raft_progress(nd->r, st.conf.ids[k], &pi) != 0) {
			sim_tracef(w, "n%llu: not the leader", (unsigned long long)nd->id);
			return;
		}
		sim_tracef(w, "  n%llu: %s match=%llu next=%llu inflight=%u%s%s",
		    (unsigned long long)pi.id, states[pi.state], (unsigned long long)pi.match,
		    (unsigned long long)pi.next, pi.inflight, pi.paused ? " paused" : "",
		    pi.recent_active ? "" : " inactive");
	}
}

static int
set_option(struct raft_options *o, const char *kv)
{
	const char *eq = strchr(kv, '=');
	uint64_t v;

	if (eq == NULL || parse_u64(eq + 1, &v) != 0)
		return -1;
	if (!strncmp(kv, "et=", 3))
		o->election_ticks = (unsigned)v;
	else if (!strncmp(kv, "hb=", 3))
		o->heartbeat_ticks = (unsigned)v;
	else if (!strncmp(kv, "inflight=", 9))
		o->max_inflight_msgs = (unsigned)v;
	else if (!strncmp(kv, "msgbytes=", 9))
		o->max_msg_bytes = (size_t)v;
	else if (!strncmp(kv, "catchup=", 8))
		o->snapshot_catchup_entries = v;
	else if (!strncmp(kv, "prevote=", 8))
		o->pre_vote = v != 0;
	else if (!strncmp(kv, "checkquorum=", 12))
		o->check_quorum = v != 0;
	else
		return -1;
	return 0;
}

static int
run_command(struct sim_world *w, char **a, int n, char *err, size_t errlen)
{
	struct sim_node *nd = NULL, *nd2 = NULL;
	uint64_t v = 0;
	int rc;

#define NEED(k) do { if (n < (k)) { snprintf(err, errlen, "%s: missing argument", a[0]); \
	return -1; } } while (0)
#define NODE(i, var) do { NEED((i) + 1); if (((var) = arg_node(w, a[i])) == NULL) { \
	snprintf(err, errlen, "%s: no node %s", a[0], a[i]); return -1; } } while (0)

	if (!strcmp(a[0], "nodes")) {
		uint64_t ids[SIM_NODES_MAX];

		NEED(2);
		if (parse_u64(a[1], &v) != 0 || v < 1 || v > SIM_NODES_MAX || w->n != 0) {
			snprintf(err, errlen, "nodes: bad count or already created");
			return -1;
		}
		for (int i = 2; i < n; i++)
			if (set_option(&w->base, a[i]) != 0) {
				snprintf(err, errlen, "nodes: bad option %s", a[i]);
				return -1;
			}
		w->n = (int)v;
		for (int i = 0; i < w->n; i++)
			ids[i] = w->next_id++;
		for (int i = 0; i < w->n; i++)
			if (sim_node_start(w, i, ids[i], true, ids, w->n) != 0)
				return -1;
		return 0;
	}
	if (w->n == 0) {
		snprintf(err, errlen, "%s before nodes", a[0]);
		return -1;
	}
	if (!strcmp(a[0], "tick")) {
		uint64_t count = 1;

		NEED(2);
		if (n > 2 && parse_u64(a[2], &count) != 0)
			return snprintf(err, errlen, "tick: bad count"), -1;
		for (uint64_t c = 0; c < count && !w->failed; c++) {
			if (!strcmp(a[1], "all")) {
				for (int i = 0; i < w->n; i++)
					sim_tick(w, &w->nodes[i]);
			} else {
				NODE(1, nd);
				sim_tick(w, nd);
			}
			sim_after_step(w);
		}
	} else if (!strcmp(a[0], "campaign")) {
		NODE(1, nd);
		if ((rc = raft_campaign(nd->r)) != 0)
			sim_tracef(w, "campaign: %s", err_str(rc));
		sim_pump(w, nd);
	} else if (!strcmp(a[0], "deliver")) {
		uint64_t count = 1;

		if (n > 1 && parse_u64(a[1], &count) != 0)
			return snprintf(err, errlen, "deliver: bad count"), -1;
		for (uint64_t c = 0; c < count && w->n_fifo > 0 && !w->failed; c++)
			deliver_one(w);
	} else if (!strcmp(a[0], "stabilize")) {
		for (int c = 0; w->n_fifo > 0 && !w->failed; c++) {
			if (c >= STABILIZE_MAX)
				return snprintf(err, errlen, "stabilize: no end"), -1;
			deliver_one(w);
		}
	} else if (!strcmp(a[0], "drop")) {
		uint64_t from = 0, to = 0;
		size_t j = 0, dropped = 0;

		if (n > 2 && (parse_u64(a[1], &from) != 0 || parse_u64(a[2], &to) != 0))
			return snprintf(err, errlen, "drop: bad ids"), -1;
		for (size_t i = 0; i < w->n_fifo; i++) {
			struct sim_netmsg *m = w->fifo[i];

			if (n > 2 && (m->from != from || m->to != to)) {
				w->fifo[j++] = m;
				continue;
			}
			dropped++;
			sim_netmsg_unref(m);
		}
		w->n_fifo = j;
		sim_tracef(w, "dropped %zu messages", dropped);
	} else if (!strcmp(a[0], "put") || !strcmp(a[0], "get")) {
		uint64_t key, count = 1;

		NODE(1, nd);
		NEED(3);
		if (parse_u64(a[2], &key) != 0 || key >= SIM_KEYS)
			return snprintf(err, errlen, "%s: bad key", a[0]), -1;
		if (n > 3 && parse_u64(a[3], &count) != 0)
			return snprintf(err, errlen, "%s: bad count", a[0]), -1;
		/* All requests of one command arrive in one loop turn. */
		w->hold = true;
		for (uint64_t c = 0; c < count; c++) {
			if (a[0][0] == 'p')
				sim_client_write(w, nd, (int)key);
			else
				sim_client_read(w, nd, (int)key);
		}
		w->hold = false;
		sim_pump(w, nd);
	} else if (!strcmp(a[0], "isolate")) {
		NODE(1, nd);
		for (int i = 0; i < w->n; i++)
			if (i != nd->slot)
				w->blocked[nd->slot][i] = w->blocked[i][nd->slot] = true;
	} else if (!strcmp(a[0], "block")) {
		NODE(1, nd);
		NODE(2, nd2);
		w->blocked[nd->slot][nd2->slot] = true;
	} else if (!strcmp(a[0], "heal")) {
		memset(w->blocked, 0, sizeof(w->blocked));
	} else if (!strcmp(a[0], "crash")) {
		NODE(1, nd);
		sim_node_crash(w, nd, false);
	} else if (!strcmp(a[0], "restart")) {
		NODE(1, nd);
		sim_node_restart(w, nd);
	} else if (!strcmp(a[0], "compact")) {
		NODE(1, nd);
		if ((rc = sim_compact(w, nd)) != 0)
			sim_tracef(w, "compact: %s", err_str(rc));
	} else if (!strcmp(a[0], "transfer")) {
		NODE(1, nd);
		NODE(2, nd2);
		rc = raft_transfer_leader(nd->r, nd2->id);
		sim_tracef(w, "transfer: %s", rc ? err_str(rc) : "started");
		sim_pump(w, nd);
	} else if (!strcmp(a[0], "add")) {
		int slot = -1;

		NODE(1, nd);
		for (int i = 0; i < SIM_NODES_MAX && slot < 0; i++)
			if (w->nodes[i].state == SLOT_PARKED)
				slot = i;
		if (slot < 0)
			return snprintf(err, errlen, "add: no free slot"), -1;
		if (slot >= w->n)
			w->n = slot + 1;
		v = w->next_id++;
		sim_tracef(w, "n%llu: started empty", (unsigned long long)v);
		if (sim_node_start(w, slot, v, false, NULL, 0) != 0)
			return -1;
		rc = raft_propose_conf_change(nd->r, RAFT_CONF_ADD, v, NULL, 0, NULL);
		sim_tracef(w, "add n%llu: %s", (unsigned long long)v, rc ? err_str(rc) : "proposed");
		sim_pump(w, nd);
	} else if (!strcmp(a[0], "remove")) {
		NODE(1, nd);
		NEED(3);
		if (parse_u64(a[2], &v) != 0)
			return snprintf(err, errlen, "remove: bad id"), -1;
		rc = raft_propose_conf_change(nd->r, RAFT_CONF_REMOVE, v, NULL, 0, NULL);
		sim_tracef(w, "remove n%llu: %s", (unsigned long long)v, rc ? err_str(rc) : "proposed");
		sim_pump(w, nd);
	} else if (!strcmp(a[0], "queue")) {
		for (size_t i = 0; i < w->n_fifo; i++) {
			struct raft_msg m;
			struct buf b = BUF_INIT;

			if (raft_msg_decode(w->fifo[i]->bytes, w->fifo[i]->len, &m) == 0) {
				sim_fmt_msg(&b, &m);
				raft_msg_clear(&m);
			}
			sim_tracef(w, "  queued n%llu -> n%llu %s", (unsigned long long)w->fifo[i]->from,
			    (unsigned long long)w->fifo[i]->to, buf_cstr(&b));
			buf_free(&b);
		}
	} else if (!strcmp(a[0], "status")) {
		print_status(w);
	} else if (!strcmp(a[0], "log")) {
		NODE(1, nd);
		print_log(w, nd);
	} else if (!strcmp(a[0], "progress")) {
		NODE(1, nd);
		print_progress(w, nd);
	} else {
		snprintf(err, errlen, "unknown command %s", a[0]);
		return -1;
	}
	sim_after_step(w);
	return 0;
#undef NODE
#undef NEED
}

int
sim_run_script(const char *path, struct buf *out, bool echo, char *fail, size_t fail_len)
{
	struct sim_world *w = mem_calloc(1, sizeof(*w));
	FILE *f = fopen(path, "r");
	char line[1024], err[256];
	int lineno = 0, rc = 0;

	if (f == NULL || w == NULL) {
		fprintf(stderr, "sim: %s: %s\n", path, strerror(errno));
		mem_free(w);
		if (f != NULL)
			fclose(f);
		return 2;
	}
	sim_world_init(w, 1, 0, true);
	w->tracing = true;
	if (echo)
		w->trace_fp = stdout;
	while (fgets(line, sizeof(line), f) != NULL && !w->failed) {
		char *a[SCRIPT_ARGS_MAX], *p, *save = NULL;
		int n = 0;

		lineno++;
		if ((p = strchr(line, '#')) != NULL)
			*p = '\0';
		line[strcspn(line, "\r\n")] = '\0';
		for (p = strtok_r(line, " \t", &save); p != NULL && n < SCRIPT_ARGS_MAX;
		    p = strtok_r(NULL, " \t", &save))
			a[n++] = p;
		if (n == 0)
			continue;
		{
			struct buf cmd = BUF_INIT;

			for (int i = 0; i < n; i++)
				buf_printf(&cmd, "%s%s", i ? " " : "", a[i]);
			sim_tracef(w, "> %s", buf_cstr(&cmd));
			buf_free(&cmd);
		}
		if (run_command(w, a, n, err, sizeof(err)) != 0) {
			fprintf(stderr, "sim: %s:%d: %s\n", path, lineno, err);
			rc = 2;
			break;
		}
	}
	fclose(f);
	if (w->failed) {
		fprintf(stderr, "sim: %s: %s\n", path, w->fail);
		if (fail != NULL)
			snprintf(fail, fail_len, "%s", w->fail);
		rc = 1;
	}
	if (out != NULL)
		buf_append(out, buf_head(&w->trace), buf_avail(&w->trace));
	sim_world_free(w);
	mem_free(w);
	return rc;
}
