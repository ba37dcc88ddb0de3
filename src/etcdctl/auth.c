/*
 * etcdctl's v2 auth commands: user add|get|list|remove|grant|revoke|passwd,
 * role add|get|list|remove|grant|revoke and auth enable|disable, over
 * /v2/auth as client/v2's AuthUserAPI, AuthRoleAPI and AuthAPI drive it
 * (same JSON bodies, byte for byte, same status checks, same messages,
 * including the quirk that `user get` prints one empty role name per role
 * object before the names).
 *
 * Passwords are read from stdin (echo off on a terminal) like speakeasy;
 * they are never printed, and freed as soon as the request is built.
 */
#include <stdio.h>
#include <string.h>

#include "corebox/buf.h"
#include "corebox/err.h"
#include "corebox/etcdctl.h"
#include "corebox/json.h"
#include "corebox/mem.h"

/* Role names or permission paths handled per list. */
#define AUTH_LIST_MAX 4096

struct auth_url {
	const char *action; /* "users", "roles", "enable" */
	const char *name;   /* NULL or "" for the collection */
};

static int
build_auth_url(struct buf *url, const struct ctl_endpoint *ep, void *arg)
{
	const struct auth_url *au = arg;
	struct buf a = BUF_INIT, b = BUF_INIT, p = BUF_INIT;
	int rc = ctl_url_join_path(&a, ep->path, "/v2/auth");

	if (rc == 0)
		rc = ctl_url_join_path(&b, buf_cstr(&a), au->action);
	if (rc == 0 && au->name != NULL && au->name[0] != '\0')
		rc = ctl_url_join_path(&p, buf_cstr(&b), au->name);
	else if (rc == 0)
		rc = buf_puts(&p, buf_cstr(&b));
	if (rc == 0)
		rc = buf_puts(url, ep->scheme_host);
	if (rc == 0)
		rc = ctl_url_escape_path(url, buf_head(&p), buf_avail(&p));
	buf_free(&a);
	buf_free(&b);
	buf_free(&p);
	return rc;
}

/* One /v2/auth request; returns 0 with res, or -1 with e. */
static int
auth_do(struct ctl *c, const char *method, const char *action, const char *name, const struct buf *body,
	struct ctl_result *res, struct ctl_err *e)
{
	struct auth_url au = { action, name };
	struct ctl_request rq = { 0 };

	rq.method = method;
	rq.build_url = build_auth_url;
	rq.arg = &au;
	if (body != NULL) {
		rq.content_type = "application/json";
		rq.body = buf_head(body);
		rq.body_len = buf_avail(body);
	} else if (name == NULL || name[0] == '\0') {
		rq.content_type = "application/json";
	}
	return ctl_client_do(&c->client, &rq, ctl_deadline(c), res, e);
}

/* Status check of addRemoveUser/addRemoveRole/enableDisable (200 or 201). */
static int
auth_simple(struct ctl *c, const char *method, const char *action, const char *name, const struct buf *body,
	struct ctl_err *e)
{
	struct ctl_result res;

	if (auth_do(c, method, action, name, body, &res, e) < 0)
		return -1;
	if (res.status != 200 && res.status != 201) {
		ctl_err_from_message(e, &res);
		ctl_result_free(&res);
		return -1;
	}
	ctl_result_free(&res);
	return 0;
}

static int
print_err(struct ctl *c, struct ctl_err *e)
{
	ctl_err_text(&c->err, e);
	buf_putc(&c->err, '\n');
	ctl_err_free(e);
	return CTL_EXIT_BAD_ARGS;
}

static int
no_args(struct ctl *c, int argc)
{
	if (argc == 0)
		return 0;
	buf_puts(&c->err, "No arguments accepted\n");
	return CTL_EXIT_BAD_ARGS;
}

/* ------------------------------------------------------------------ */
/* Users                                                               */
/* ------------------------------------------------------------------ */

struct user {
	char *name;
	char **roles;
	size_t nroles;
};

static void
user_free(struct user *u)
{
	mem_free(u->name);
	for (size_t i = 0; i < u->nroles; i++)
		mem_free(u->roles[i]);
	mem_free(u->roles);
	memset(u, 0, sizeof(*u));
}

static int
push_str(char ***v, size_t *n, const char *s, size_t len)
{
	char **nv;

	if (*n >= AUTH_LIST_MAX)
		return -ERR_LIMIT;
	nv = mem_realloc(*v, (*n + 1) * sizeof(*nv));
	if (nv == NULL)
		return -ERR_NOMEM;
	*v = nv;
	nv[*n] = mem_strndup(s, len);
	if (nv[*n] == NULL)
		return -ERR_NOMEM;
	(*n)++;
	return 0;
}

static char *
node_str(const struct json_node *n)
{
	const char *s = "";
	size_t len = 0;

	if (n != NULL && n->type != JSON_NULL && json_get_str(n, &s, &len) < 0)
		return NULL;
	return mem_strndup(s, len);
}

/*
 * modUser's decoding: into client.User (roles as strings); role objects
 * leave an empty string each and an error, after which the names are
 * decoded as client.UserRoles and appended.
 */
static int
user_parse(struct user *u, const char *body, size_t len, char *errmsg, size_t errlen)
{
	struct json_doc *doc = NULL;
	const struct json_node *root, *roles, *r;
	bool objects = false;
	int rc = 0;

	memset(u, 0, sizeof(*u));
	if (json_parse(body, len, &ctl_json_limits, &doc, NULL, 0) < 0) {
		ctl_go_json_error(body, len, errmsg, errlen);
		return -ERR_PARSE;
	}
	root = json_doc_root(doc);
	u->name = node_str(json_get_fold(root, "user"));
	if (u->name == NULL) {
		snprintf(errmsg, errlen, "json: cannot unmarshal into Go struct field User.user of type string");
		rc = -ERR_PARSE;
		goto out;
	}
	roles = json_get_fold(root, "roles");
	if (roles != NULL && roles->type != JSON_NULL && roles->type != JSON_ARRAY) {
		snprintf(errmsg, errlen, "json: cannot unmarshal into Go struct field User.roles of type []string");
		rc = -ERR_PARSE;
		goto out;
	}
	for (r = json_first(roles); r != NULL && rc == 0; r = r->next) {
		if (r->type == JSON_STRING) {
			rc = push_str(&u->roles, &u->nroles, r->u.str.s, r->u.str.len);
		} else {
			objects = objects || r->type == JSON_OBJECT;
			rc = push_str(&u->roles, &u->nroles, "", 0);
		}
	}
	if (rc == 0 && objects) {
		for (r = json_first(roles); r != NULL && rc == 0; r = r->next) {
			const struct json_node *name = json_get_fold(r, "role");
			const char *s = "";
			size_t n = 0;

			if (r->type == JSON_OBJECT && name != NULL && name->type == JSON_STRING) {
				s = name->u.str.s;
				n = name->u.str.len;
			} else if (r->type != JSON_OBJECT && r->type != JSON_NULL) {
				snprintf(errmsg, errlen, "json: cannot unmarshal object into Go struct field User.roles of type string");
				rc = -ERR_PARSE;
				break;
			}
			rc = push_str(&u->roles, &u->nroles, s, n);
		}
	}
	if (rc == -ERR_NOMEM || rc == -ERR_LIMIT)
		snprintf(errmsg, errlen, "%s", err_str(rc));
out:
	json_doc_free(doc);
	if (rc < 0)
		user_free(u);
	return rc;
}

/* modUser: a request whose 200 answer is a user. Returns 0 or -1 with e. */
static int
mod_user(struct ctl *c, const char *method, const char *name, const struct buf *body, struct user *u,
	struct ctl_err *e)
{
	struct ctl_result res;
	char msg[CTL_ERR_TEXT_BYTES];

	if (auth_do(c, method, "users", name, body, &res, e) < 0)
		return -1;
	if (res.status != 200) {
		ctl_err_from_message(e, &res);
		ctl_result_free(&res);
		return -1;
	}
	if (user_parse(u, res.body, res.body_len, msg, sizeof(msg)) < 0) {
		ctl_err_msg(e, false, "%s", msg);
		ctl_result_free(&res);
		return -1;
	}
	ctl_result_free(&res);
	return 0;
}

/* json.Marshal(client.User): password, grant and revoke are omitempty. */
static int
user_body(struct buf *b, const char *user, const char *password, const char *const *grant, size_t ngrant,
	const char *const *revoke, size_t nrevoke)
{
	int rc = buf_puts(b, "{\"user\":");

	if (rc == 0)
		rc = json_escape_go(b, user, strlen(user));
	if (rc == 0 && password != NULL && password[0] != '\0') {
		rc = buf_puts(b, ",\"password\":");
		if (rc == 0)
			rc = json_escape_go(b, password, strlen(password));
	}
	if (rc == 0)
		rc = buf_puts(b, ",\"roles\":null");
	for (int k = 0; k < 2 && rc == 0; k++) {
		const char *const *v = k == 0 ? grant : revoke;
		size_t n = k == 0 ? ngrant : nrevoke;

		if (n == 0)
			continue;
		rc = buf_puts(b, k == 0 ? ",\"grant\":[" : ",\"revoke\":[");
		for (size_t i = 0; i < n && rc == 0; i++) {
			if (i > 0)
				rc = buf_putc(b, ',');
			if (rc == 0)
				rc = json_escape_go(b, v[i], strlen(v[i]));
		}
		if (rc == 0)
			rc = buf_putc(b, ']');
	}
	return rc == 0 ? buf_putc(b, '}') : rc;
}

/* mustUserAPIAndName: exactly one argument, then the client. */
static int
user_setup(struct ctl *c, int argc)
{
	if (argc != 1) {
		buf_puts(&c->err, "Please provide a username\n");
		return CTL_EXIT_BAD_ARGS;
	}
	return ctl_client_setup(c, true);
}

/* mustNewAuth*API prints the endpoints once more under --debug. */
static void
debug_endpoints(struct ctl *c)
{
	if (!c->g[CTL_G_DEBUG].b)
		return;
	buf_puts(&c->err, "Cluster-Endpoints: ");
	ctl_client_endpoints_str(&c->err, &c->client, ", ");
	buf_putc(&c->err, '\n');
}

static int
user_add(struct ctl *c, const struct ctl_cmd *cmd, struct ctl_val *vals, int argc, char **argv)
{
	struct buf body = BUF_INIT;
	struct ctl_err e = { 0 };
	char *user, *pass = NULL;
	const char *colon;
	int code = user_setup(c, argc), rc;

	(void)cmd;
	(void)vals;
	if (code != 0)
		return code;
	debug_endpoints(c);
	colon = strchr(argv[0], ':');
	user = colon != NULL ? mem_strndup(argv[0], (size_t)(colon - argv[0])) : mem_strdup(argv[0]);
	if (user == NULL)
		return print_err(c, (ctl_err_msg(&e, false, "out of memory"), &e));
	if (colon != NULL) {
		pass = mem_strdup(colon + 1);
		rc = pass != NULL ? 0 : -ERR_NOMEM;
	} else {
		rc = ctl_ask_password(c, "New password: ", &pass);
	}
	if (rc < 0) {
		buf_printf(&c->err, "Error reading password: %s\n", err_str(rc));
		mem_free(user);
		return CTL_EXIT_BAD_ARGS;
	}
	rc = user_body(&body, user, pass, NULL, 0, NULL, 0);
	mem_free(pass);
	if (rc == 0)
		rc = auth_simple(c, "PUT", "users", user, &body, &e);
	else
		ctl_err_msg(&e, false, "out of memory");
	buf_free(&body);
	if (rc < 0) {
		mem_free(user);
		return print_err(c, &e);
	}
	buf_printf(&c->out, "User %s created\n", user);
	mem_free(user);
	return 0;
}

static int
user_get(struct ctl *c, const struct ctl_cmd *cmd, struct ctl_val *vals, int argc, char **argv)
{
	struct user u;
	struct ctl_err e = { 0 };
	int code = user_setup(c, argc);

	(void)cmd;
	(void)vals;
	if (code != 0)
		return code;
	debug_endpoints(c);
	if (mod_user(c, "GET", argv[0], NULL, &u, &e) < 0)
		return print_err(c, &e);
	buf_printf(&c->out, "User: %s\nRoles: ", u.name);
	for (size_t i = 0; i < u.nroles; i++)
		buf_printf(&c->out, "%s%s", i ? " " : "", u.roles[i]);
	buf_putc(&c->out, '\n');
	user_free(&u);
	return 0;
}

/* A list answer: the "user" or "role" of each element of the named array. */
static int
list_names(struct ctl *c, const char *action, const char *field, const char *key)
{
	struct ctl_result res;
	struct ctl_err e = { 0 };
	struct json_doc *doc = NULL;
	const struct json_node *arr, *el;

	if (auth_do(c, "GET", action, NULL, NULL, &res, &e) < 0)
		return print_err(c, &e);
	if (res.status != 200) {
		ctl_err_from_message(&e, &res);
		ctl_result_free(&res);
		return print_err(c, &e);
	}
	if (json_parse(res.body, res.body_len, &ctl_json_limits, &doc, NULL, 0) < 0) {
		ctl_err_go_json(&e, res.body, res.body_len);
		ctl_result_free(&res);
		return print_err(c, &e);
	}
	arr = json_get_fold(json_doc_root(doc), key);
	for (el = json_first(arr); el != NULL; el = el->next) {
		const struct json_node *n = el->type == JSON_OBJECT ? json_get_fold(el, field) : el;

		if (n != NULL && n->type == JSON_STRING)
			buf_append(&c->out, n->u.str.s, n->u.str.len);
		buf_putc(&c->out, '\n');
	}
	json_doc_free(doc);
	ctl_result_free(&res);
	return 0;
}

/* user list / role list: no arguments, then every name on its own line. */
static int
list_cmd(struct ctl *c, int argc, const char *action, const char *field)
{
	int code = no_args(c, argc);

	if (code == 0)
		code = ctl_client_setup(c, true);
	if (code != 0)
		return code;
	debug_endpoints(c);
	return list_names(c, action, field, action);
}

/*
 * user remove / role remove: setup_code is what user_setup or role_setup
 * returned (argv[0] exists only when it is 0); what is "User" or "Role".
 */
static int
remove_cmd(struct ctl *c, int setup_code, const char *action, const char *what, char **argv)
{
	struct ctl_err e = { 0 };

	if (setup_code != 0)
		return setup_code;
	debug_endpoints(c);
	if (auth_simple(c, "DELETE", action, argv[0], NULL, &e) < 0)
		return print_err(c, &e);
	buf_printf(&c->out, "%s %s removed\n", what, argv[0]);
	return 0;
}

static int
user_list(struct ctl *c, const struct ctl_cmd *cmd, struct ctl_val *vals, int argc, char **argv)
{
	(void)cmd;
	(void)vals;
	(void)argv;
	return list_cmd(c, argc, "users", "user");
}

static int
user_remove(struct ctl *c, const struct ctl_cmd *cmd, struct ctl_val *vals, int argc, char **argv)
{
	(void)cmd;
	(void)vals;
	return remove_cmd(c, user_setup(c, argc), "users", "User", argv);
}

static int
user_grant_revoke(struct ctl *c, struct ctl_val *vals, int argc, char **argv, bool grant)
{
	struct user cur, upd;
	struct buf body = BUF_INIT;
	struct ctl_err e = { 0 };
	int code, rc;

	if (vals[0].nlist == 0) {
		buf_puts(&c->err, "No roles specified; please use `--roles`\n");
		return CTL_EXIT_BAD_ARGS;
	}
	code = user_setup(c, argc);
	if (code != 0)
		return code;
	debug_endpoints(c);
	if (mod_user(c, "GET", argv[0], NULL, &cur, &e) < 0)
		return print_err(c, &e);
	user_free(&cur);
	rc = grant ? user_body(&body, argv[0], NULL, vals[0].list, vals[0].nlist, NULL, 0)
		   : user_body(&body, argv[0], NULL, NULL, 0, vals[0].list, vals[0].nlist);
	if (rc < 0) {
		buf_free(&body);
		return print_err(c, (ctl_err_msg(&e, false, "out of memory"), &e));
	}
	rc = mod_user(c, "PUT", argv[0], &body, &upd, &e);
	buf_free(&body);
	if (rc < 0)
		return print_err(c, &e);
	user_free(&upd);
	buf_printf(&c->out, "User %s updated\n", argv[0]);
	return 0;
}

static int
user_grant(struct ctl *c, const struct ctl_cmd *cmd, struct ctl_val *vals, int argc, char **argv)
{
	(void)cmd;
	return user_grant_revoke(c, vals, argc, argv, true);
}

static int
user_revoke(struct ctl *c, const struct ctl_cmd *cmd, struct ctl_val *vals, int argc, char **argv)
{
	(void)cmd;
	return user_grant_revoke(c, vals, argc, argv, false);
}

static int
user_passwd(struct ctl *c, const struct ctl_cmd *cmd, struct ctl_val *vals, int argc, char **argv)
{
	struct user u;
	struct buf body = BUF_INIT;
	struct ctl_err e = { 0 };
	char *pass = NULL;
	int code = user_setup(c, argc), rc;

	(void)cmd;
	(void)vals;
	if (code != 0)
		return code;
	debug_endpoints(c);
	if (mod_user(c, "GET", argv[0], NULL, &u, &e) < 0)
		return print_err(c, &e);
	user_free(&u);
	rc = ctl_ask_password(c, "New password: ", &pass);
	if (rc < 0) {
		buf_printf(&c->err, "Error reading password: %s\n", err_str(rc));
		return CTL_EXIT_BAD_ARGS;
	}
	rc = user_body(&body, argv[0], pass, NULL, 0, NULL, 0);
	mem_free(pass);
	if (rc < 0) {
		buf_free(&body);
		return print_err(c, (ctl_err_msg(&e, false, "out of memory"), &e));
	}
	rc = mod_user(c, "PUT", argv[0], &body, &u, &e);
	buf_free(&body);
	if (rc < 0)
		return print_err(c, &e);
	user_free(&u);
	buf_puts(&c->out, "Password updated\n");
	return 0;
}

static const struct ctl_flag roles_flags[] = {
	{ "roles", CTL_F_SLICE, "--roles value", "List of roles to grant or revoke" },
};

static const struct ctl_cmd user_subs[] = {
	{ "add", NULL, "add a new user for the etcd cluster", "<user>", NULL, NULL, 0, NULL, 0, user_add },
	{ "get", NULL, "get details for a user", "<user>", NULL, NULL, 0, NULL, 0, user_get },
	{ "list", NULL, "list all current users", "<user>", NULL, NULL, 0, NULL, 0, user_list },
	{ "remove", NULL, "remove a user for the etcd cluster", "<user>", NULL, NULL, 0, NULL, 0, user_remove },
	{ "grant", NULL, "grant roles to an etcd user", "<user>", NULL, roles_flags, 1, NULL, 0, user_grant },
	{ "revoke", NULL, "revoke roles for an etcd user", "<user>", NULL, roles_flags, 1, NULL, 0, user_revoke },
	{ "passwd", NULL, "change password for a user", "<user>", NULL, NULL, 0, NULL, 0, user_passwd },
};

const struct ctl_cmd ctl_user_cmd = {
	"user", NULL, "user add, grant and revoke subcommands", NULL, NULL, NULL, 0,
	user_subs, sizeof(user_subs) / sizeof(user_subs[0]), NULL,
};

/* ------------------------------------------------------------------ */
/* Roles                                                               */
/* ------------------------------------------------------------------ */

struct strlist {
	char **v;
	size_t n;
	bool null; /* JSON null / absent: nil in Go, which DeepEqual tells from [] */
};

struct role {
	char *name;
	struct strlist read, write;
	bool grant, revoke; /* the optional members were present */
};

static void
strlist_free(struct strlist *l)
{
	for (size_t i = 0; i < l->n; i++)
		mem_free(l->v[i]);
	mem_free(l->v);
	memset(l, 0, sizeof(*l));
}

static void
role_free(struct role *r)
{
	mem_free(r->name);
	strlist_free(&r->read);
	strlist_free(&r->write);
	memset(r, 0, sizeof(*r));
}

static int
strlist_parse(struct strlist *l, const struct json_node *a)
{
	l->null = a == NULL || a->type == JSON_NULL;
	if (l->null)
		return 0;
	if (a->type != JSON_ARRAY)
		return -ERR_PARSE;
	for (const struct json_node *e = json_first(a); e != NULL; e = e->next) {
		int rc;

		if (e->type != JSON_STRING && e->type != JSON_NULL)
			return -ERR_PARSE;
		rc = e->type == JSON_STRING ? push_str(&l->v, &l->n, e->u.str.s, e->u.str.len)
					    : push_str(&l->v, &l->n, "", 0);
		if (rc < 0)
			return rc;
	}
	return 0;
}

static int
role_parse(struct role *r, const char *body, size_t len, char *errmsg, size_t errlen)
{
	struct json_doc *doc = NULL;
	const struct json_node *root, *kv;
	int rc;

	memset(r, 0, sizeof(*r));
	if (json_parse(body, len, &ctl_json_limits, &doc, NULL, 0) < 0) {
		ctl_go_json_error(body, len, errmsg, errlen);
		return -ERR_PARSE;
	}
	root = json_doc_root(doc);
	r->name = node_str(json_get_fold(root, "role"));
	kv = json_get_fold(json_get_fold(root, "permissions"), "kv");
	rc = r->name != NULL ? 0 : -ERR_PARSE;
	if (rc == 0)
		rc = strlist_parse(&r->read, json_get_fold(kv, "read"));
	if (rc == 0)
		rc = strlist_parse(&r->write, json_get_fold(kv, "write"));
	r->grant = json_get_fold(root, "grant") != NULL && json_get_fold(root, "grant")->type != JSON_NULL;
	r->revoke = json_get_fold(root, "revoke") != NULL && json_get_fold(root, "revoke")->type != JSON_NULL;
	if (rc < 0) {
		snprintf(errmsg, errlen, "%s", rc == -ERR_PARSE ?
			"json: cannot unmarshal into Go value of type client.Role" : err_str(rc));
		role_free(r);
	}
	json_doc_free(doc);
	return rc;
}

static bool
strlist_equal(const struct strlist *a, const struct strlist *b)
{
	if (a->null != b->null || a->n != b->n)
		return false;
	for (size_t i = 0; i < a->n; i++)
		if (strcmp(a->v[i], b->v[i]) != 0)
			return false;
	return true;
}

/* reflect.DeepEqual of two decoded client.Role values. */
static bool
role_equal(const struct role *a, const struct role *b)
{
	return strcmp(a->name, b->name) == 0 && strlist_equal(&a->read, &b->read) &&
		strlist_equal(&a->write, &b->write) && a->grant == b->grant && a->revoke == b->revoke;
}

/* modRole. Returns 0 or -1 with e. */
static int
mod_role(struct ctl *c, const char *method, const char *name, const struct buf *body, struct role *r,
	struct ctl_err *e)
{
	struct ctl_result res;
	char msg[CTL_ERR_TEXT_BYTES];

	if (auth_do(c, method, "roles", name, body, &res, e) < 0)
		return -1;
	if (res.status != 200) {
		ctl_err_from_message(e, &res);
		ctl_result_free(&res);
		return -1;
	}
	if (role_parse(r, res.body, res.body_len, msg, sizeof(msg)) < 0) {
		ctl_err_msg(e, false, "%s", msg);
		ctl_result_free(&res);
		return -1;
	}
	ctl_result_free(&res);
	return 0;
}

enum perm {
	PERM_READ,
	PERM_WRITE,
	PERM_READWRITE,
};

/* json.Marshal(client.Role) with an optional grant or revoke of one path. */
static int
role_body(struct buf *b, const char *role, const char *change, const char *path, enum perm perm)
{
	int rc = buf_puts(b, "{\"role\":");

	if (rc == 0)
		rc = json_escape_go(b, role, strlen(role));
	if (rc == 0)
		rc = buf_puts(b, ",\"permissions\":{\"kv\":{\"read\":null,\"write\":null}}");
	if (rc == 0 && change != NULL) {
		rc = buf_printf(b, ",\"%s\":{\"kv\":{\"read\":", change);
		if (rc == 0 && perm != PERM_WRITE) {
			rc = buf_putc(b, '[');
			if (rc == 0)
				rc = json_escape_go(b, path, strlen(path));
			if (rc == 0)
				rc = buf_putc(b, ']');
		} else if (rc == 0) {
			rc = buf_puts(b, "null");
		}
		if (rc == 0)
			rc = buf_puts(b, ",\"write\":");
		if (rc == 0 && perm != PERM_READ) {
			rc = buf_putc(b, '[');
			if (rc == 0)
				rc = json_escape_go(b, path, strlen(path));
			if (rc == 0)
				rc = buf_putc(b, ']');
		} else if (rc == 0) {
			rc = buf_puts(b, "null");
		}
		if (rc == 0)
			rc = buf_puts(b, "}}");
	}
	return rc == 0 ? buf_putc(b, '}') : rc;
}

static int
role_setup(struct ctl *c, int argc)
{
	if (argc != 1) {
		buf_puts(&c->err, "Please provide a role name\n");
		return CTL_EXIT_BAD_ARGS;
	}
	return ctl_client_setup(c, true);
}

static int
role_add(struct ctl *c, const struct ctl_cmd *cmd, struct ctl_val *vals, int argc, char **argv)
{
	struct role r;
	struct buf body = BUF_INIT;
	struct ctl_err e = { 0 };
	int code = role_setup(c, argc), rc;

	(void)cmd;
	(void)vals;
	if (code != 0)
		return code;
	debug_endpoints(c);
	if (mod_role(c, "GET", argv[0], NULL, &r, &e) == 0) {
		role_free(&r);
		buf_printf(&c->err, "Role %s already exists\n", argv[0]);
		return CTL_EXIT_BAD_ARGS;
	}
	ctl_err_free(&e);
	rc = role_body(&body, argv[0], NULL, NULL, PERM_READ);
	if (rc == 0)
		rc = auth_simple(c, "PUT", "roles", argv[0], &body, &e);
	else
		ctl_err_msg(&e, false, "out of memory");
	buf_free(&body);
	if (rc < 0)
		return print_err(c, &e);
	buf_printf(&c->out, "Role %s created\n", argv[0]);
	return 0;
}

static int
role_get(struct ctl *c, const struct ctl_cmd *cmd, struct ctl_val *vals, int argc, char **argv)
{
	struct role r;
	struct ctl_err e = { 0 };
	int code = role_setup(c, argc);

	(void)cmd;
	(void)vals;
	if (code != 0)
		return code;
	debug_endpoints(c);
	if (mod_role(c, "GET", argv[0], NULL, &r, &e) < 0)
		return print_err(c, &e);
	buf_printf(&c->out, "Role: %s\nKV Read:\n", r.name);
	for (size_t i = 0; i < r.read.n; i++)
		buf_printf(&c->out, "\t%s\n", r.read.v[i]);
	buf_puts(&c->out, "KV Write:\n");
	for (size_t i = 0; i < r.write.n; i++)
		buf_printf(&c->out, "\t%s\n", r.write.v[i]);
	role_free(&r);
	return 0;
}

static int
role_list(struct ctl *c, const struct ctl_cmd *cmd, struct ctl_val *vals, int argc, char **argv)
{
	(void)cmd;
	(void)vals;
	(void)argv;
	return list_cmd(c, argc, "roles", "role");
}

static int
role_remove(struct ctl *c, const struct ctl_cmd *cmd, struct ctl_val *vals, int argc, char **argv)
{
	(void)cmd;
	(void)vals;
	return remove_cmd(c, role_setup(c, argc), "roles", "Role", argv);
}

static int
role_grant_revoke(struct ctl *c, struct ctl_val *vals, int argc, char **argv, bool grant)
{
	const char *path = vals[0].s != NULL ? vals[0].s : "";
	struct buf canon = BUF_INIT, body = BUF_INIT;
	struct role cur, upd;
	struct ctl_err e = { 0 };
	int nperm = (vals[1].b != 0) + (vals[2].b != 0) + (vals[3].b != 0), code, rc;
	enum perm perm;

	if (path[0] == '\0') {
		buf_puts(&c->err, "No path specified; please use `--path`\n");
		return CTL_EXIT_BAD_ARGS;
	}
	if (ctl_url_canonical_path(&canon, path, strlen(path)) < 0 || strcmp(buf_cstr(&canon), path) != 0) {
		buf_printf(&c->err, "Not canonical path; please use `--path=%s`\n", buf_cstr(&canon));
		buf_free(&canon);
		return CTL_EXIT_BAD_ARGS;
	}
	buf_free(&canon);
	if (nperm != 1) {
		buf_puts(&c->err, "Please specify exactly one of --read, --write or --readwrite\n");
		return CTL_EXIT_BAD_ARGS;
	}
	perm = vals[1].b ? PERM_READ : vals[2].b ? PERM_WRITE : PERM_READWRITE;
	code = role_setup(c, argc);
	if (code != 0)
		return code;
	debug_endpoints(c);
	if (mod_role(c, "GET", argv[0], NULL, &cur, &e) < 0)
		return print_err(c, &e);
	rc = role_body(&body, argv[0], grant ? "grant" : "revoke", path, perm);
	if (rc == 0)
		rc = mod_role(c, "PUT", argv[0], &body, &upd, &e);
	else
		ctl_err_msg(&e, false, "out of memory");
	buf_free(&body);
	if (rc < 0) {
		role_free(&cur);
		return print_err(c, &e);
	}
	if (role_equal(&cur, &upd))
		buf_puts(&c->out, grant ? "Role unchanged; already granted" : "Role unchanged; already revoked");
	buf_printf(&c->out, "Role %s updated\n", argv[0]);
	role_free(&cur);
	role_free(&upd);
	return 0;
}

static int
role_grant(struct ctl *c, const struct ctl_cmd *cmd, struct ctl_val *vals, int argc, char **argv)
{
	(void)cmd;
	return role_grant_revoke(c, vals, argc, argv, true);
}

static int
role_revoke(struct ctl *c, const struct ctl_cmd *cmd, struct ctl_val *vals, int argc, char **argv)
{
	(void)cmd;
	return role_grant_revoke(c, vals, argc, argv, false);
}

static const struct ctl_flag grant_flags[] = {
	{ "path", CTL_F_STRING, "--path value", "Path granted for the role to access" },
	{ "read", CTL_F_BOOL, "--read", "Grant read-only access" },
	{ "write", CTL_F_BOOL, "--write", "Grant write-only access" },
	{ "readwrite, rw", CTL_F_BOOL, "--readwrite, --rw", "Grant read-write access" },
};

static const struct ctl_flag revoke_flags[] = {
	{ "path", CTL_F_STRING, "--path value", "Path revoked for the role to access" },
	{ "read", CTL_F_BOOL, "--read", "Revoke read access" },
	{ "write", CTL_F_BOOL, "--write", "Revoke write access" },
	{ "readwrite, rw", CTL_F_BOOL, "--readwrite, --rw", "Revoke read-write access" },
};

static const struct ctl_cmd role_subs[] = {
	{ "add", NULL, "add a new role for the etcd cluster", "<role> ", NULL, NULL, 0, NULL, 0, role_add },
	{ "get", NULL, "get details for a role", "<role>", NULL, NULL, 0, NULL, 0, role_get },
	{ "list", NULL, "list all roles", " ", NULL, NULL, 0, NULL, 0, role_list },
	{ "remove", NULL, "remove a role from the etcd cluster", "<role>", NULL, NULL, 0, NULL, 0, role_remove },
	{ "grant", NULL, "grant path matches to an etcd role", "<role>", NULL, grant_flags, 4, NULL, 0, role_grant },
	{ "revoke", NULL, "revoke path matches for an etcd role", "<role>", NULL, revoke_flags, 4, NULL, 0,
		role_revoke },
};

const struct ctl_cmd ctl_role_cmd = {
	"role", NULL, "role add, grant and revoke subcommands", NULL, NULL, NULL, 0,
	role_subs, sizeof(role_subs) / sizeof(role_subs[0]), NULL,
};

/* ------------------------------------------------------------------ */
/* auth enable|disable                                                 */
/* ------------------------------------------------------------------ */

static int
auth_enable_disable(struct ctl *c, int argc, bool enable)
{
	struct ctl_err e = { 0 };
	int code = no_args(c, argc);

	if (code == 0)
		code = ctl_client_setup(c, true);
	if (code != 0)
		return code;
	debug_endpoints(c);
	if (auth_simple(c, enable ? "PUT" : "DELETE", "enable", NULL, NULL, &e) < 0)
		return print_err(c, &e);
	buf_puts(&c->out, enable ? "Authentication Enabled\n" : "Authentication Disabled\n");
	return 0;
}

static int
auth_enable(struct ctl *c, const struct ctl_cmd *cmd, struct ctl_val *vals, int argc, char **argv)
{
	(void)cmd;
	(void)vals;
	(void)argv;
	return auth_enable_disable(c, argc, true);
}

static int
auth_disable(struct ctl *c, const struct ctl_cmd *cmd, struct ctl_val *vals, int argc, char **argv)
{
	(void)cmd;
	(void)vals;
	(void)argv;
	return auth_enable_disable(c, argc, false);
}

static const struct ctl_cmd auth_subs[] = {
	{ "enable", NULL, "enable auth access controls", " ", NULL, NULL, 0, NULL, 0, auth_enable },
	{ "disable", NULL, "disable auth access controls", " ", NULL, NULL, 0, NULL, 0, auth_disable },
};

const struct ctl_cmd ctl_auth_cmd = {
	"auth", NULL, "overall auth controls", NULL, NULL, NULL, 0,
	auth_subs, sizeof(auth_subs) / sizeof(auth_subs[0]), NULL,
};
