/*
 * etcdctl's cluster commands: member list|add|remove|update over
 * /v2/members (client/v2's MembersAPI: same requests, same status checks,
 * same messages) and cluster-health, which asks every member's client URLs
 * for /health.
 *
 * Errors are printed as etcdctl prints them here (the bare error text, exit
 * code 1), not through handleError, because that is what etcdctl does for
 * these commands. It must never remove or update a member the user did not
 * name by ID.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "corebox/buf.h"
#include "corebox/err.h"
#include "corebox/etcdctl.h"
#include "corebox/http.h"
#include "corebox/json.h"
#include "corebox/mem.h"

/* cluster-health --forever waits this long between rounds. */
#define HEALTH_INTERVAL_S 10
/* Dial timeout of the /health client (getTransport: min(30s, total-timeout)). */
#define HEALTH_DIAL_MS_MAX 30000u
/* Peer URLs accepted by member update. */
#define PEER_URLS_MAX 64

struct members_url {
	const char *suffix; /* NULL, "leader" or a member ID */
};

static int
build_members_url(struct buf *url, const struct ctl_endpoint *ep, void *arg)
{
	const struct members_url *mu = arg;
	struct buf p = BUF_INIT, q = BUF_INIT;
	int rc = ctl_url_join_path(&p, ep->path, "/v2/members");

	if (rc == 0 && mu != NULL && mu->suffix != NULL)
		rc = ctl_url_join_path(&q, buf_cstr(&p), mu->suffix);
	else if (rc == 0)
		rc = buf_puts(&q, buf_cstr(&p));
	if (rc == 0)
		rc = buf_puts(url, ep->scheme_host);
	if (rc == 0)
		rc = ctl_url_escape_path(url, buf_head(&q), buf_avail(&q));
	buf_free(&p);
	buf_free(&q);
	return rc;
}

void
ctl_members_request(struct ctl_request *rq)
{
	memset(rq, 0, sizeof(*rq));
	rq->method = "GET";
	rq->build_url = build_members_url;
	rq->arg = NULL;
}

/* Prints err.Error() and a newline on stderr (fmt.Fprintln), returns 1. */
static int
print_err(struct ctl *c, const struct ctl_err *e)
{
	ctl_err_text(&c->err, e);
	buf_putc(&c->err, '\n');
	return CTL_EXIT_BAD_ARGS;
}

/* MembersAPI.List. Returns 0, or -1 with e set. */
static int
members_list(struct ctl *c, uint64_t deadline, struct ctl_members *ms, struct ctl_err *e)
{
	struct ctl_request rq;
	struct ctl_result res;
	int rc;

	ctl_members_request(&rq);
	if (ctl_client_do(&c->client, &rq, deadline, &res, e) < 0)
		return -1;
	if (res.status != 200) {
		ctl_err_msg(e, false, "unexpected status code %d", res.status);
		ctl_result_free(&res);
		return -1;
	}
	rc = ctl_members_parse(ms, res.body, res.body_len);
	if (rc < 0) {
		ctl_err_go_json(e, res.body, res.body_len);
	}
	ctl_result_free(&res);
	return rc < 0 ? -1 : 0;
}

static int
member_list(struct ctl *c, const struct ctl_cmd *cmd, struct ctl_val *vals, int argc, char **argv)
{
	struct ctl_members ms = { 0 };
	struct ctl_member leader = { 0 };
	struct members_url mu = { "leader" };
	struct ctl_request rq;
	struct ctl_result res;
	struct ctl_err e = { 0 };
	uint64_t deadline;
	int code;

	(void)cmd;
	(void)vals;
	(void)argv;
	if (argc != 0) {
		buf_puts(&c->err, "No arguments accepted\n");
		return CTL_EXIT_BAD_ARGS;
	}
	code = ctl_client_setup(c, true);
	if (code != 0)
		return code;
	deadline = ctl_deadline(c);
	if (members_list(c, deadline, &ms, &e) < 0) {
		code = print_err(c, &e);
		ctl_err_free(&e);
		return code;
	}
	ctl_members_request(&rq);
	rq.arg = &mu;
	if (ctl_client_do(&c->client, &rq, deadline, &res, &e) == 0) {
		if (res.status != 200)
			ctl_err_msg(&e, false, "unexpected status code %d", res.status);
		else if (ctl_member_parse_one(&leader, res.body, res.body_len) < 0) {
			ctl_err_go_json(&e, res.body, res.body_len);
		}
		ctl_result_free(&res);
	}
	if (e.kind != CTL_E_NONE) {
		buf_puts(&c->err, "Failed to get leader:  ");
		print_err(c, &e);
		ctl_err_free(&e);
		ctl_members_free(&ms);
		return CTL_EXIT_BAD_ARGS;
	}
	for (size_t i = 0; i < ms.n; i++) {
		const struct ctl_member *m = &ms.m[i];

		if (m->name[0] == '\0') {
			buf_printf(&c->out, "%s[unstarted]: peerURLs=", m->id);
			for (size_t j = 0; j < m->npeer; j++)
				buf_printf(&c->out, "%s%s", j ? "," : "", m->peer_urls[j]);
			buf_putc(&c->out, '\n');
			continue;
		}
		buf_printf(&c->out, "%s: name=%s peerURLs=", m->id, m->name);
		for (size_t j = 0; j < m->npeer; j++)
			buf_printf(&c->out, "%s%s", j ? "," : "", m->peer_urls[j]);
		buf_puts(&c->out, " clientURLs=");
		for (size_t j = 0; j < m->nclient; j++)
			buf_printf(&c->out, "%s%s", j ? "," : "", m->client_urls[j]);
		buf_printf(&c->out, " isLeader=%s\n", strcmp(m->id, leader.id) == 0 ? "true" : "false");
	}
	ctl_member_free(&leader);
	ctl_members_free(&ms);
	return 0;
}

/* POST or PUT of {"peerURLs": [...]}; validated and sorted as types.NewURLs. */
static int
members_write(struct ctl *c, const char *method, const char *id, char **urls, size_t n, uint64_t deadline,
	struct ctl_result *res, struct ctl_err *e)
{
	struct members_url mu = { id };
	struct ctl_request rq;
	struct buf body = BUF_INIT;
	char msg[CTL_ERRMSG_BYTES];
	int rc;

	rc = ctl_peer_urls_body(&body, urls, n, msg, sizeof(msg));
	if (rc < 0) {
		ctl_err_msg(e, false, "%s", rc == -ERR_NOMEM ? "out of memory" : msg);
		buf_free(&body);
		return -1;
	}
	ctl_members_request(&rq);
	rq.method = method;
	rq.arg = id != NULL ? &mu : NULL;
	rq.content_type = "application/json";
	rq.body = buf_head(&body);
	rq.body_len = buf_avail(&body);
	rc = ctl_client_do(&c->client, &rq, deadline, res, e);
	buf_free(&body);
	return rc;
}

static int
member_add(struct ctl *c, const struct ctl_cmd *cmd, struct ctl_val *vals, int argc, char **argv)
{
	struct ctl_members ms = { 0 };
	struct ctl_member m = { 0 };
	struct ctl_result res;
	struct ctl_err e = { 0 };
	struct buf conf = BUF_INIT;
	uint64_t deadline;
	int code;

	(void)cmd;
	(void)vals;
	if (argc != 2) {
		buf_puts(&c->err, "Provide a name and a single member peerURL\n");
		return CTL_EXIT_BAD_ARGS;
	}
	code = ctl_client_setup(c, true);
	if (code != 0)
		return code;
	deadline = ctl_deadline(c);
	if (members_write(c, "POST", NULL, &argv[1], 1, deadline, &res, &e) < 0)
		goto fail;
	if (res.status == 409) {
		ctl_err_from_message(&e, &res);
		ctl_result_free(&res);
		goto fail;
	}
	if (res.status != 201) {
		ctl_err_msg(&e, false, "unexpected status code %d", res.status);
		ctl_result_free(&res);
		goto fail;
	}
	if (ctl_member_parse_one(&m, res.body, res.body_len) < 0) {
		ctl_err_go_json(&e, res.body, res.body_len);
		ctl_result_free(&res);
		goto fail;
	}
	ctl_result_free(&res);
	buf_printf(&c->out, "Added member named %s with ID %s to cluster\n", argv[0], m.id);
	if (members_list(c, deadline, &ms, &e) < 0) {
		ctl_member_free(&m);
		goto fail;
	}
	for (size_t i = 0; i < ms.n; i++) {
		for (size_t j = 0; j < ms.m[i].npeer; j++) {
			const char *name = strcmp(ms.m[i].id, m.id) == 0 ? argv[0] : ms.m[i].name;

			buf_printf(&conf, "%s%s=%s", buf_avail(&conf) ? "," : "", name, ms.m[i].peer_urls[j]);
		}
	}
	buf_puts(&c->out, "\nETCD_NAME=");
	ctl_quote(&c->out, argv[0], strlen(argv[0]));
	buf_puts(&c->out, "\nETCD_INITIAL_CLUSTER=");
	ctl_quote(&c->out, buf_head(&conf) != NULL ? buf_head(&conf) : "", buf_avail(&conf));
	buf_puts(&c->out, "\nETCD_INITIAL_CLUSTER_STATE=\"existing\"\n");
	buf_free(&conf);
	ctl_members_free(&ms);
	ctl_member_free(&m);
	return 0;
fail:
	code = print_err(c, &e);
	ctl_err_free(&e);
	return code;
}

static int
member_remove(struct ctl *c, const struct ctl_cmd *cmd, struct ctl_val *vals, int argc, char **argv)
{
	struct ctl_members ms = { 0 };
	struct members_url mu;
	struct ctl_request rq;
	struct ctl_result res;
	struct ctl_err e = { 0 };
	const char *id;
	uint64_t deadline;
	bool found = false;
	int code;

	(void)cmd;
	(void)vals;
	if (argc != 1) {
		buf_puts(&c->err, "Provide a single member ID\n");
		return CTL_EXIT_BAD_ARGS;
	}
	id = argv[0];
	code = ctl_client_setup(c, true);
	if (code != 0)
		return code;
	deadline = ctl_deadline(c);
	if (members_list(c, deadline, &ms, &e) < 0) {
		buf_puts(&c->err, "Error while verifying ID against known members: ");
		code = print_err(c, &e);
		ctl_err_free(&e);
		return code;
	}
	for (size_t i = 0; i < ms.n; i++) {
		if (strcmp(ms.m[i].id, id) == 0)
			found = true;
		if (strcmp(ms.m[i].name, id) == 0) {
			buf_printf(&c->err, "Found a member named %s; if this is correct, please use its ID, eg:\n"
				"\tetcdctl member remove %s\n", ms.m[i].name, ms.m[i].id);
			buf_puts(&c->err, "For more details, read the documentation at "
				"https://github.com/etcd-io/etcd/blob/master/Documentation/runtime-configuration.md#remove-a-member\n\n");
		}
	}
	ctl_members_free(&ms);
	if (!found) {
		buf_printf(&c->err, "Couldn't find a member in the cluster with an ID of %s.\n", id);
		return CTL_EXIT_BAD_ARGS;
	}
	mu.suffix = id;
	ctl_members_request(&rq);
	rq.method = "DELETE";
	rq.arg = &mu;
	if (ctl_client_do(&c->client, &rq, deadline, &res, &e) == 0) {
		if (res.status != 204 && res.status != 410)
			ctl_err_msg(&e, false, "unexpected status code %d", res.status);
		ctl_result_free(&res);
	}
	if (e.kind != CTL_E_NONE) {
		buf_printf(&c->err, "Received an error trying to remove member %s: ", id);
		ctl_err_text(&c->err, &e);
		ctl_err_free(&e);
		return CTL_EXIT_BAD_ARGS;
	}
	buf_printf(&c->out, "Removed member %s from cluster\n", id);
	return 0;
}

static int
member_update(struct ctl *c, const struct ctl_cmd *cmd, struct ctl_val *vals, int argc, char **argv)
{
	struct ctl_result res;
	struct ctl_err e = { 0 };
	char *urls[PEER_URLS_MAX];
	size_t n = 0;
	char *copy, *p;
	int code;

	(void)cmd;
	(void)vals;
	if (argc != 2) {
		buf_puts(&c->err, "Provide an ID and a list of comma separated peerURL (0xabcd http://example.com,http://example1.com)\n");
		return CTL_EXIT_BAD_ARGS;
	}
	code = ctl_client_setup(c, true);
	if (code != 0)
		return code;
	copy = mem_strdup(argv[1]);
	if (copy == NULL) {
		buf_puts(&c->err, "out of memory\n");
		return CTL_EXIT_BAD_ARGS;
	}
	/* strings.Split(urls, ","): empty parts stay (and fail validation). */
	for (p = copy; n < PEER_URLS_MAX;) {
		char *comma = strchr(p, ',');

		urls[n++] = p;
		if (comma == NULL)
			break;
		*comma = '\0';
		p = comma + 1;
	}
	if (members_write(c, "PUT", argv[0], urls, n, ctl_deadline(c), &res, &e) == 0) {
		if (res.status == 404 || res.status == 409)
			ctl_err_from_message(&e, &res);
		else if (res.status != 204)
			ctl_err_msg(&e, false, "unexpected status code %d", res.status);
		ctl_result_free(&res);
	}
	mem_free(copy);
	if (e.kind != CTL_E_NONE) {
		code = print_err(c, &e);
		ctl_err_free(&e);
		return code;
	}
	buf_printf(&c->out, "Updated member with ID %s in cluster\n", argv[0]);
	return 0;
}

static const struct ctl_cmd member_subs[] = {
	{ "list", NULL, "enumerate existing cluster members", " ", NULL, NULL, 0, NULL, 0, member_list },
	{ "add", NULL, "add a new member to the etcd cluster", "<name> <peerURL>", NULL, NULL, 0, NULL, 0,
		member_add },
	{ "remove", NULL, "remove an existing member from the etcd cluster", "<memberID>", NULL, NULL, 0, NULL, 0,
		member_remove },
	{ "update", NULL, "update an existing member in the etcd cluster", "<memberID> <peerURLs>", NULL, NULL, 0,
		NULL, 0, member_update },
};

const struct ctl_cmd ctl_member_cmd = {
	"member", NULL, "member add, remove and list subcommands", NULL, NULL, NULL, 0,
	member_subs, sizeof(member_subs) / sizeof(member_subs[0]), NULL,
};

/* ------------------------------------------------------------------ */
/* cluster-health                                                      */
/* ------------------------------------------------------------------ */

static void
on_interrupt(int sig)
{
	(void)sig;
	_exit(0);
}

/* GET <url>/health with a plain client: 1 healthy, 0 unhealthy, -1 failed (why set). */
static int
check_health(struct ctl *c, const char *url, char *why, size_t whylen)
{
	struct http_call_spec spec;
	struct http_result hr;
	struct json_doc *doc = NULL;
	struct buf u = BUF_INIT;
	const struct json_node *h;
	uint64_t dial = HEALTH_DIAL_MS_MAX;
	int rc, out = -1;

	if (c->total_timeout_ns > 0 && (uint64_t)(c->total_timeout_ns / 1000000) < dial)
		dial = (uint64_t)(c->total_timeout_ns / 1000000);
	if (buf_printf(&u, "%s/health", url) < 0) {
		snprintf(why, whylen, "out of memory");
		return -1;
	}
	memset(&spec, 0, sizeof(spec));
	spec.method = "GET";
	spec.url = buf_cstr(&u);
	spec.connect_timeout_ms = dial > 0 ? dial : 1;
	rc = http_fetch(c->client.sync, &spec, &hr);
	if (rc < 0) {
		snprintf(why, whylen, "Get \"%s\": %s", buf_cstr(&u), hr.errmsg);
		goto out;
	}
	if (json_parse(hr.body, hr.body_len, &ctl_json_limits, &doc, NULL, 0) < 0) {
		ctl_go_json_error(hr.body, hr.body_len, why, whylen);
		goto out;
	}
	/* struct{ Health string }, then struct{ Health bool }. */
	h = json_get_fold(json_doc_root(doc), "health");
	if (h != NULL && h->type == JSON_STRING)
		out = h->u.str.len == 4 && memcmp(h->u.str.s, "true", 4) == 0;
	else if (h != NULL && h->type == JSON_BOOL)
		out = h->u.b != 0;
	else if (h == NULL || h->type == JSON_NULL)
		out = 0;
	else
		snprintf(why, whylen, "json: cannot unmarshal %s into Go struct field .Health of type bool",
			h->type == JSON_NUMBER ? "number" : h->type == JSON_ARRAY ? "array" : "object");
out:
	json_doc_free(doc);
	http_result_free(&hr);
	buf_free(&u);
	return out;
}

int
ctl_cmd_cluster_health(struct ctl *c, const struct ctl_cmd *cmd, struct ctl_val *vals, int argc, char **argv)
{
	struct ctl_members ms = { 0 };
	struct ctl_err e = { 0 };
	bool forever = vals[0].b;
	int code;

	(void)cmd;
	(void)argc;
	(void)argv;
	if (forever) {
		struct sigaction sa;

		/* etcdctl exits 0 on Ctrl-C; output is flushed after every round. */
		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = on_interrupt;
		sigemptyset(&sa.sa_mask);
		sigaction(SIGINT, &sa, NULL);
	}
	code = ctl_client_setup(c, false);
	if (code != 0)
		return code;
	if (members_list(c, 0, &ms, &e) < 0) {
		buf_puts(&c->out, "cluster may be unhealthy: failed to list members\n");
		code = ctl_handle_error(c, CTL_EXIT_SERVER_ERROR, &e);
		ctl_err_free(&e);
		return code;
	}
	for (;;) {
		size_t healthy = 0;

		for (size_t i = 0; i < ms.n; i++) {
			const struct ctl_member *m = &ms.m[i];
			bool checked = false;

			if (m->nclient == 0) {
				buf_printf(&c->out, "member %s is unreachable: no available published client urls\n", m->id);
				continue;
			}
			for (size_t j = 0; j < m->nclient; j++) {
				char why[CTL_ERR_TEXT_BYTES];
				int h = check_health(c, m->client_urls[j], why, sizeof(why));

				if (h < 0) {
					buf_printf(&c->out, "failed to check the health of member %s on %s: %s\n", m->id,
						m->client_urls[j], why);
					continue;
				}
				checked = true;
				if (h) {
					healthy++;
					buf_printf(&c->out, "member %s is healthy: got healthy result from %s\n", m->id,
						m->client_urls[j]);
				} else {
					buf_printf(&c->out, "member %s is unhealthy: got unhealthy result from %s\n", m->id,
						m->client_urls[j]);
				}
				break;
			}
			if (!checked) {
				buf_printf(&c->out, "member %s is unreachable: [", m->id);
				for (size_t j = 0; j < m->nclient; j++)
					buf_printf(&c->out, "%s%s", j ? " " : "", m->client_urls[j]);
				buf_puts(&c->out, "] are all unreachable\n");
			}
		}
		if (healthy == ms.n)
			buf_puts(&c->out, "cluster is healthy\n");
		else if (healthy == 0)
			buf_puts(&c->out, "cluster is unavailable\n");
		else
			buf_puts(&c->out, "cluster is degraded\n");
		if (!forever) {
			code = healthy == ms.n ? 0 : CTL_EXIT_CLUSTER_NOT_HEALTHY;
			break;
		}
		buf_printf(&c->out, "\nnext check after %d second...\n\n", HEALTH_INTERVAL_S);
		ctl_flush(c);
		sleep(HEALTH_INTERVAL_S);
	}
	ctl_members_free(&ms);
	return code;
}
