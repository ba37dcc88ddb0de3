/*
 * sim: command line of the raft simulator (see sim.h for the model).
 *
 *   sim [--seeds N] [--seed-base B] [--nodes 3,5,7] [--steps N] [--long]
 *       runs N seeds (B, B+1, ...; seed i uses the next size in --nodes) and
 *       prints one line per failing seed with the command that replays it;
 *   sim --seed S --nodes N [--steps N] [--trace]
 *       runs one seed, optionally printing every event;
 *   sim --script FILE [--golden FILE [--update-golden]]
 *       runs a scripted scenario and compares (or rewrites) its transcript;
 *   --expect-violation KIND
 *       self-test: exit 1 (a failure meson expects) only if some seed
 *       violates KIND; 0 if no seed does or another invariant broke.
 * It must stay deterministic: the only clock read measures speed.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "corebox/buf.h"
#include "corebox/mem.h"
#include "sim.h"

#define NODES_LIST_MAX 8

struct opts {
	uint64_t seeds;
	uint64_t seed_base;
	uint64_t seed;
	bool one_seed;
	int nodes[NODES_LIST_MAX];
	int n_nodes;
	uint64_t steps;
	bool steps_set;
	bool trace;
	bool long_mode;
	bool quiet;
	const char *script;
	const char *golden;
	bool update_golden;
	const char *expect;
};

static void
usage(void)
{
	fprintf(stderr,
	    "usage: sim [--seeds N] [--seed-base B] [--nodes 3,5,7] [--steps N] [--long] [--quiet]\n"
	    "       sim --seed S --nodes N [--steps N] [--trace]\n"
	    "       sim --script FILE [--golden FILE [--update-golden]]\n"
	    "       [--expect-violation KIND]\n");
}

static int
parse_num(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0')
		return -1;
	*out = v;
	return 0;
}

static int
parse_nodes(const char *s, struct opts *o)
{
	char copy[128], *p, *save = NULL;
	uint64_t v;

	if (strlen(s) >= sizeof(copy))
		return -1;
	strcpy(copy, s);
	o->n_nodes = 0;
	for (p = strtok_r(copy, ",", &save); p != NULL; p = strtok_r(NULL, ",", &save)) {
		if (o->n_nodes == NODES_LIST_MAX || parse_num(p, &v) != 0 || v < 1 ||
		    v > SIM_NODES_MAX)
			return -1;
		o->nodes[o->n_nodes++] = (int)v;
	}
	return o->n_nodes > 0 ? 0 : -1;
}

static int
parse_args(int argc, char **argv, struct opts *o)
{
	memset(o, 0, sizeof(*o));
	o->seeds = 100;
	o->seed_base = 1;
	o->nodes[0] = 3;
	o->nodes[1] = 5;
	o->nodes[2] = 7;
	o->n_nodes = 3;
	o->steps = 1000;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		int used = 1;

		if (!strcmp(a, "--seeds") && v)
			used = parse_num(v, &o->seeds) == 0 ? 2 : -1;
		else if (!strcmp(a, "--seed-base") && v)
			used = parse_num(v, &o->seed_base) == 0 ? 2 : -1;
		else if (!strcmp(a, "--seed") && v)
			used = parse_num(v, &o->seed) == 0 ? (o->one_seed = true, 2) : -1;
		else if (!strcmp(a, "--nodes") && v)
			used = parse_nodes(v, o) == 0 ? 2 : -1;
		else if (!strcmp(a, "--steps") && v)
			used = parse_num(v, &o->steps) == 0 ? (o->steps_set = true, 2) : -1;
		else if (!strcmp(a, "--script") && v)
			o->script = v, used = 2;
		else if (!strcmp(a, "--golden") && v)
			o->golden = v, used = 2;
		else if (!strcmp(a, "--expect-violation") && v)
			o->expect = v, used = 2;
		else if (!strcmp(a, "--trace"))
			o->trace = true;
		else if (!strcmp(a, "--long"))
			o->long_mode = true;
		else if (!strcmp(a, "--quiet"))
			o->quiet = true;
		else if (!strcmp(a, "--update-golden"))
			o->update_golden = true;
		else
			used = -1;
		if (used < 0) {
			fprintf(stderr, "sim: bad argument %s\n", a);
			return -1;
		}
		i += used - 1;
	}
	if (o->long_mode && !o->steps_set)
		o->steps = 20000;
	return 0;
}

static int
read_file(const char *path, struct buf *b)
{
	FILE *f = fopen(path, "rb");
	char tmp[4096];
	size_t n;

	if (f == NULL)
		return -1;
	while ((n = fread(tmp, 1, sizeof(tmp), f)) > 0)
		buf_append(b, tmp, n);
	fclose(f);
	return 0;
}

/* 1 if the violation text starts with one of the comma-separated kinds. */
static bool
kind_matches(const char *expect, const char *fail)
{
	size_t kind = strcspn(fail, ":");

	while (*expect) {
		size_t n = strcspn(expect, ",");

		if (n == kind && !strncmp(expect, fail, n))
			return true;
		expect += n;
		if (*expect == ',')
			expect++;
	}
	return false;
}

static int
run_golden(const struct opts *o)
{
	struct buf got = BUF_INIT, want = BUF_INIT;
	char fail[512] = "";
	int rc = sim_run_script(o->script, o->golden ? &got : NULL,
	    o->golden == NULL && o->expect == NULL, fail, sizeof(fail));
	const char *g, *x;
	int line = 1;

	if (o->expect != NULL) {
		buf_free(&got);
		if (rc == 1 && kind_matches(o->expect, fail)) {
			printf("sim: the checker caught the planted bug (%s)\n", fail);
			return 1;
		}
		printf("sim: the planted bug (%s) went unnoticed\n", o->expect);
		return 0;
	}
	if (o->golden == NULL || rc == 2) {
		buf_free(&got);
		return rc;
	}
	if (o->update_golden) {
		FILE *f = fopen(o->golden, "wb");

		if (f == NULL || fwrite(buf_head(&got), 1, buf_avail(&got), f) != buf_avail(&got)) {
			fprintf(stderr, "sim: cannot write %s\n", o->golden);
			rc = 2;
		}
		if (f != NULL)
			fclose(f);
		printf("sim: wrote %s\n", o->golden);
		buf_free(&got);
		return rc;
	}
	if (read_file(o->golden, &want) != 0) {
		fprintf(stderr, "sim: cannot read %s (run with --update-golden)\n", o->golden);
		buf_free(&got);
		return 2;
	}
	g = buf_cstr(&got);
	x = buf_cstr(&want);
	if (strcmp(g, x) != 0) {
		while (*g && *g == *x) {
			if (*g == '\n')
				line++;
			g++;
			x++;
		}
		while (g > buf_head(&got) && g[-1] != '\n' && x[-1] != '\n')
			g--, x--;
		fprintf(stderr, "sim: %s differs from %s at line %d\n  want: %.*s\n  got:  %.*s\n",
		    o->script, o->golden, line, (int)strcspn(x, "\n"), x, (int)strcspn(g, "\n"), g);
		rc = 1;
	} else if (rc == 0) {
		printf("sim: %s matches %s\n", o->script, o->golden);
	}
	buf_free(&got);
	buf_free(&want);
	return rc;
}

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct totals {
	uint64_t steps, msgs, elections, snaps, reads, writes, crashes, reconfigs, transfers;
	uint64_t live_steps;
};

static int
run_one(const struct opts *o, const char *prog, uint64_t seed, int nodes, struct totals *t,
    bool *expected)
{
	struct sim_world *w = mem_calloc(1, sizeof(*w));
	int rc;

	if (w == NULL)
		return 2;
	rc = sim_run_seed(w, seed, nodes, o->steps, o->trace);
	t->steps += w->step;
	t->msgs += w->n_msgs_delivered;
	t->elections += w->n_elections;
	t->snaps += w->n_snapshots_sent;
	t->reads += w->chk.n_reads_checked;
	t->writes += w->chk.n_writes_acked;
	t->crashes += w->n_crashes;
	t->reconfigs += w->n_reconfigs;
	if (t->live_steps < w->live_steps)
		t->live_steps = w->live_steps;
	t->transfers += w->n_transfers;
	if (rc != 0) {
		if (o->expect != NULL && kind_matches(o->expect, w->fail))
			*expected = true;
		printf("FAIL seed=%llu nodes=%d step=%llu: %s\n", (unsigned long long)seed, nodes,
		    (unsigned long long)w->step, w->fail);
		printf("  replay: %s --seed %llu --nodes %d --steps %llu --trace\n", prog,
		    (unsigned long long)seed, nodes, (unsigned long long)o->steps);
	}
	sim_world_free(w);
	mem_free(w);
	return rc;
}

int
main(int argc, char **argv)
{
	struct opts o;
	struct totals t = { 0 };
	uint64_t failed = 0, ran = 0;
	bool expected = false;
	double t0, dt;

	if (parse_args(argc, argv, &o) != 0) {
		usage();
		return 2;
	}
	if (o.script != NULL)
		return run_golden(&o);
	t0 = now_s();
	if (o.one_seed) {
		failed = run_one(&o, argv[0], o.seed, o.nodes[0], &t, &expected) != 0;
		ran = 1;
	} else {
		for (uint64_t i = 0; i < o.seeds; i++) {
			uint64_t seed = o.seed_base + i;
			int nodes = o.nodes[seed % (uint64_t)o.n_nodes];

			ran++;
			if (run_one(&o, argv[0], seed, nodes, &t, &expected) != 0) {
				failed++;
				if (o.expect != NULL || failed >= 10)
					break;
			}
			if (o.long_mode && !o.quiet && ran % 100 == 0) {
				printf("sim: %llu seeds, %llu failed, %.1f s\n", (unsigned long long)ran,
				    (unsigned long long)failed, now_s() - t0);
				fflush(stdout);
			}
		}
	}
	dt = now_s() - t0;
	if (!o.quiet || failed)
		printf("sim: %llu seeds, %llu failed, %.2f s (%.0f seeds/s, %.0f steps/s); "
		    "%llu steps, %llu messages, %llu elections, %llu snapshots sent, "
		    "%llu writes acked, %llu reads checked, %llu crashes, %llu reconfigurations, "
		    "%llu transfers; liveness took at most %llu steps\n",
		    (unsigned long long)ran, (unsigned long long)failed, dt,
		    dt > 0 ? (double)ran / dt : 0.0, dt > 0 ? (double)t.steps / dt : 0.0,
		    (unsigned long long)t.steps, (unsigned long long)t.msgs,
		    (unsigned long long)t.elections, (unsigned long long)t.snaps,
		    (unsigned long long)t.writes, (unsigned long long)t.reads,
		    (unsigned long long)t.crashes, (unsigned long long)t.reconfigs,
		    (unsigned long long)t.transfers, (unsigned long long)t.live_steps);
	if (o.expect != NULL) {
		if (expected) {
			printf("sim: the checker caught the planted bug (%s)\n", o.expect);
			return 1;
		}
		printf("sim: the planted bug (%s) went unnoticed\n", o.expect);
		return 0;
	}
	return failed ? 1 : 0;
}
