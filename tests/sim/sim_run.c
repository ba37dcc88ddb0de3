/*
 * sim_run: the randomized mode of the raft simulator. A seed fixes the
 * cluster size's parameters (loss, delay, duplication, crash and partition
 * rates, reconfigurations, transfers, snapshot frequency, raft options) and
 * every later decision. The run is a discrete-event simulation: each step
 * pops the earliest event (a tick, an fsync completing, a message arriving,
 * a client request or a fault) and handles exactly that. After `steps`
 * steps the faults stop, the network heals and every node restarts
 * (liveness phase): a proposal must then commit within
 * SIM_LIVENESS_STEPS_MAX steps. It must draw every random choice from
 * w->rng so that a seed replays exactly.
 */
#include <stdint.h>
#include <string.h>

#include "corebox/err.h"
#include "corebox/raft.h"
#include "sim.h"

static void
params_from_seed(struct sim_world *w)
{
	struct sim_rng *g = &w->rng;
	struct sim_params *p = &w->p;
	struct raft_options *o = &w->base;

	p->loss_permille = sim_below(g, 3) == 0 ? 0 : (unsigned)sim_below(g, 150);
	p->dup_permille = (unsigned)sim_below(g, 60);
	p->delay_min = 1;
	p->delay_max = 2 + (unsigned)sim_below(g, 18);
	p->spike_permille = (unsigned)sim_below(g, 20);
	/* Mostly fast disks; some slow ones leave raft running for long while
	 * a ready is being made durable. */
	p->disk_max = sim_chance(g, 750) ? (unsigned)sim_below(g, 6) : 5 + (unsigned)sim_below(g, 40);
	p->tick_every = 10;
	p->chaos_min = 2;
	p->chaos_max = 10 + (unsigned)sim_below(g, 30);
	p->crash_weight = 1 + (unsigned)sim_below(g, 8);
	p->partition_weight = 1 + (unsigned)sim_below(g, 8);
	p->reconfig_weight = (unsigned)sim_below(g, 5);
	p->transfer_weight = (unsigned)sim_below(g, 4);
	p->compact_every = 4 + (unsigned)sim_below(g, 40);
	p->down_max = 50 + (unsigned)sim_below(g, 600);

	raft_options_init(o, 1);
	o->election_ticks = 5 + (unsigned)sim_below(g, 6);
	o->heartbeat_ticks = 1 + (unsigned)sim_below(g, 2);
	o->max_inflight_msgs = 1 + (unsigned)sim_below(g, 8);
	o->max_msg_bytes = 1 + (size_t)sim_below(g, 200);
	o->max_committed_bytes = 1 + (size_t)sim_below(g, 400);
	o->snapshot_catchup_entries = sim_below(g, 6);
	o->pre_vote = sim_chance(g, 850);
	o->check_quorum = sim_chance(g, 850);
	o->max_uncommitted_bytes = sim_chance(g, 500) ? 0 : 2000 + sim_below(g, 4000);
}

static int
pick_up_slot(struct sim_world *w)
{
	int up[SIM_NODES_MAX], n = 0;

	for (int i = 0; i < w->n; i++)
		if (w->nodes[i].state == SLOT_UP)
			up[n++] = i;
	return n == 0 ? -1 : up[sim_below(&w->rng, (uint64_t)n)];
}

static struct sim_node *
pick_client_node(struct sim_world *w)
{
	struct sim_node *l = sim_leader(w);
	int s;

	if (l != NULL && sim_chance(&w->rng, 600))
		return l;
	s = pick_up_slot(w);
	return s < 0 ? NULL : &w->nodes[s];
}

static void
heal(struct sim_world *w)
{
	memset(w->blocked, 0, sizeof(w->blocked));
	sim_tracef(w, "heal");
}

static void
partition(struct sim_world *w)
{
	struct sim_rng *g = &w->rng;
	int kind = (int)sim_below(g, 3), a = (int)sim_below(g, (uint64_t)w->n);

	if (kind == 0) {
		for (int i = 0; i < w->n; i++)
			if (i != a)
				w->blocked[a][i] = w->blocked[i][a] = true;
		sim_tracef(w, "isolate slot %d", a);
	} else if (kind == 1) {
		bool side[SIM_NODES_MAX];

		for (int i = 0; i < w->n; i++)
			side[i] = sim_chance(g, 500);
		for (int i = 0; i < w->n; i++)
			for (int j = 0; j < w->n; j++)
				if (side[i] != side[j])
					w->blocked[i][j] = true;
		sim_tracef(w, "split the network in two");
	} else {
		int b = (int)sim_below(g, (uint64_t)w->n);

		if (a != b)
			w->blocked[a][b] = true;
		sim_tracef(w, "block slot %d -> slot %d (one way)", a, b);
	}
}

static void
crash(struct sim_world *w)
{
	int s = pick_up_slot(w);
	struct sim_node *nd;

	if (s < 0)
		return;
	nd = &w->nodes[s];
	sim_node_crash(w, nd, true);
	sim_schedule(w, w->now + 1 + sim_below(&w->rng, w->p.down_max), EV_RESTART, s, nd->inc,
	    NULL);
}

static void
transfer(struct sim_world *w)
{
	struct sim_node *l = sim_leader(w), *to;
	struct raft_status st;
	int rc;

	if (l == NULL)
		return;
	raft_status(l->r, &st);
	if (st.conf.n < 2)
		return;
	to = sim_node_by_id(w, st.conf.ids[sim_below(&w->rng, st.conf.n)]);
	if (to == NULL || to == l)
		return;
	rc = raft_transfer_leader(l->r, to->id);
	sim_tracef(w, "n%llu: transfer leadership to n%llu: %s", (unsigned long long)l->id,
	    (unsigned long long)to->id, rc ? err_str(rc) : "started");
	if (rc == 0) {
		w->n_transfers++;
		sim_pump(w, l);
		/* Half the time it is a clean shutdown: stop once handed over. */
		if (sim_chance(&w->rng, 500))
			sim_schedule(w, w->now + 20 + sim_below(&w->rng, 80), EV_CRASH, l->slot,
			    l->inc, NULL);
	}
}

static void
reconfig(struct sim_world *w)
{
	struct sim_node *l = sim_leader(w), *target = NULL;
	struct raft_status st;
	int min_members = w->n <= 3 ? 2 : w->n - 2, rc;
	enum raft_conf_op op;

	if (l == NULL)
		return;
	raft_status(l->r, &st);
	for (int i = 0; i < w->n; i++)
		if (w->nodes[i].state != SLOT_PARKED && w->nodes[i].joining &&
		    !raft_config_has(&st.conf, w->nodes[i].id))
			target = &w->nodes[i];
	if (target == NULL) {
		for (int i = 0; i < w->n && target == NULL; i++) {
			if (w->nodes[i].state != SLOT_PARKED)
				continue;
			if (sim_node_start(w, i, w->next_id++, false, NULL, 0) != 0)
				return;
			target = &w->nodes[i];
			target->joining = true;
		}
	}
	if (target != NULL) {
		op = RAFT_CONF_ADD;
	} else {
		if ((int)st.conf.n <= min_members)
			return;
		/* Now and then the leader removes itself. */
		if (sim_chance(&w->rng, 150)) {
			target = l;
		} else {
			uint64_t id = st.conf.ids[sim_below(&w->rng, st.conf.n)];

			target = sim_node_by_id(w, id);
		}
		if (target == NULL)
			return;
		op = RAFT_CONF_REMOVE;
	}
	rc = raft_propose_conf_change(l->r, op, target->id, "peer", 4, NULL);
	sim_tracef(w, "n%llu: propose %s n%llu: %s", (unsigned long long)l->id,
	    op == RAFT_CONF_ADD ? "add" : "remove", (unsigned long long)target->id,
	    rc ? err_str(rc) : "ok");
	if (rc == 0)
		w->n_reconfigs++;
	sim_pump(w, l);
}

static void
chaos(struct sim_world *w)
{
	struct sim_rng *g = &w->rng;
	const struct sim_params *p = &w->p;
	unsigned weights[] = {
		40, 25, p->crash_weight, p->partition_weight, 5, p->transfer_weight,
		p->reconfig_weight,
	};
	unsigned total = 0, r, k = 0;
	struct sim_node *nd;

	for (size_t i = 0; i < sizeof(weights) / sizeof(weights[0]); i++)
		total += weights[i];
	r = (unsigned)sim_below(g, total);
	while (r >= weights[k])
		r -= weights[k++];
	switch (k) {
	case 0:
		if ((nd = pick_client_node(w)) != NULL)
			sim_client_write(w, nd, (int)sim_below(g, SIM_KEYS));
		break;
	case 1:
		if ((nd = pick_client_node(w)) != NULL)
			sim_client_read(w, nd, (int)sim_below(g, SIM_KEYS));
		break;
	case 2:
		crash(w);
		break;
	case 3:
		partition(w);
		break;
	case 4:
		heal(w);
		break;
	case 5:
		transfer(w);
		break;
	case 6:
		reconfig(w);
		break;
	}
}

static void
enter_liveness(struct sim_world *w)
{
	w->phase = PHASE_LIVENESS;
	w->live_start = w->step;
	sim_tracef(w, "liveness: faults stop, network heals, every node restarts");
	heal(w);
	w->p.loss_permille = 0;
	w->p.dup_permille = 0;
	w->p.spike_permille = 0;
	for (int i = 0; i < w->n; i++)
		if (w->nodes[i].state == SLOT_DOWN)
			sim_schedule(w, w->now + 1, EV_RESTART, i, w->nodes[i].inc, NULL);
	sim_schedule(w, w->now + 1, EV_LIVE, -1, 0, NULL);
}

static void
live_probe(struct sim_world *w)
{
	struct sim_node *l = sim_leader(w);
	struct sim_op *op = w->live_op ? &w->ops[w->live_op] : NULL;

	if (w->phase != PHASE_LIVENESS)
		return;
	if (l != NULL && (op == NULL || op->state == SIM_OP_FAILED ||
	    w->now - w->live_op_time > 400 || op->slot != l->slot || op->inc != l->inc)) {
		w->live_op = sim_client_write(w, l, 0);
		w->live_op_time = w->now;
	}
	sim_schedule(w, w->now + 10, EV_LIVE, -1, 0, NULL);
}

void
sim_step_random(struct sim_world *w)
{
	struct sim_event ev;
	struct sim_node *nd;
	size_t i = 0;

	if (w->n_heap == 0) {
		sim_failf(w, "stall", "no event left to run");
		return;
	}
	ev = w->heap[0];
	w->heap[0] = w->heap[--w->n_heap];
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;

		if (l < w->n_heap && (w->heap[l].time < w->heap[m].time ||
		    (w->heap[l].time == w->heap[m].time && w->heap[l].seq < w->heap[m].seq)))
			m = l;
		if (r < w->n_heap && (w->heap[r].time < w->heap[m].time ||
		    (w->heap[r].time == w->heap[m].time && w->heap[r].seq < w->heap[m].seq)))
			m = r;
		if (m == i)
			break;
		{
			struct sim_event t = w->heap[i];

			w->heap[i] = w->heap[m];
			w->heap[m] = t;
		}
		i = m;
	}
	w->now = ev.time;
	w->step++;
	nd = ev.slot >= 0 ? &w->nodes[ev.slot] : NULL;
	switch (ev.type) {
	case EV_TICK:
		if (nd->state != SLOT_UP || nd->inc != ev.inc)
			break;
		sim_tick(w, nd);
		if (nd->state == SLOT_UP && nd->inc == ev.inc)
			sim_schedule(w, w->now + w->p.tick_every - 1 + sim_below(&w->rng, 3), EV_TICK,
			    nd->slot, nd->inc, NULL);
		break;
	case EV_SYNC:
		if (nd->state != SLOT_UP || nd->inc != ev.inc)
			break;
		sim_finish_ready(w, nd);
		sim_pump(w, nd);
		break;
	case EV_DELIVER:
		sim_deliver(w, ev.msg);
		sim_netmsg_unref(ev.msg);
		break;
	case EV_CHAOS:
		if (w->phase != PHASE_CHAOS)
			break;
		chaos(w);
		sim_schedule(w, w->now + w->p.chaos_min +
		    sim_below(&w->rng, w->p.chaos_max - w->p.chaos_min + 1), EV_CHAOS, -1, 0, NULL);
		break;
	case EV_RESTART:
		if (nd->state == SLOT_DOWN && nd->inc == ev.inc)
			sim_node_restart(w, nd);
		break;
	case EV_CRASH:
		if (w->phase != PHASE_CHAOS || nd->state != SLOT_UP || nd->inc != ev.inc)
			break;
		sim_tracef(w, "n%llu: clean shutdown", (unsigned long long)nd->id);
		sim_node_crash(w, nd, false);
		sim_schedule(w, w->now + 1 + sim_below(&w->rng, w->p.down_max), EV_RESTART,
		    nd->slot, nd->inc, NULL);
		break;
	case EV_LIVE:
		live_probe(w);
		break;
	}
	sim_after_step(w);
	for (int k = 0; k < w->n; k++)
		if (w->nodes[k].joining && w->nodes[k].state == SLOT_UP) {
			struct raft_status st;

			raft_status(w->nodes[k].r, &st);
			if (raft_config_has(&st.conf, st.id))
				w->nodes[k].joining = false;
		}
}

int
sim_run_seed(struct sim_world *w, uint64_t seed, int n, uint64_t steps, bool trace)
{
	uint64_t ids[SIM_NODES_MAX];

	sim_world_init(w, seed, n, false);
	if (trace) {
		w->tracing = true;
		w->trace_fp = stdout;
	}
	params_from_seed(w);
	w->steps = steps;
	for (int i = 0; i < n; i++)
		ids[i] = w->next_id++;
	for (int i = 0; i < n; i++)
		if (sim_node_start(w, i, ids[i], true, ids, n) != 0)
			return 1;
	sim_schedule(w, w->now + w->p.chaos_min, EV_CHAOS, -1, 0, NULL);
	while (!w->failed && w->phase != PHASE_DONE) {
		if (w->phase == PHASE_CHAOS && w->step >= steps)
			enter_liveness(w);
		sim_step_random(w);
		if (w->phase == PHASE_LIVENESS) {
			if (w->live_op != 0 && w->ops[w->live_op].state == SIM_OP_ACKED) {
				w->live_steps = w->step - w->live_start;
				sim_tracef(w, "liveness: committed after %llu steps",
				    (unsigned long long)w->live_steps);
				w->phase = PHASE_DONE;
			} else if (w->step - w->live_start > SIM_LIVENESS_STEPS_MAX) {
				sim_failf(w, "liveness",
				    "no proposal committed within %u steps after faults stopped",
				    SIM_LIVENESS_STEPS_MAX);
			}
		}
	}
	return w->failed ? 1 : 0;
}
