/*
 * Multicall dispatch, as BusyBox does it: the basename of argv[0] (a leading
 * '-' from a login shell stripped) selects the applet; as "corebox" the first
 * argument does. `--list`, `--install [-s] [DIR]`, `--help` and every
 * applet's `--version` are handled here and nowhere else.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "corebox/applets.h"

/* A duplicate id in applets.def redeclares an enumerator: a build error. */
enum applet_ids {
#define APPLET(id, name, usage, version) APPLET_ID_##id,
#include "applets.def"
#undef APPLET
	APPLET_ID_COUNT_
};

const struct applet applet_table[] = {
#define APPLET(id, name, usage, version) { name, id##_main, usage, version },
#include "applets.def"
#undef APPLET
	{ NULL, NULL, NULL, NULL }
};

const unsigned applet_count = APPLET_ID_COUNT_;

static int
applet_cmp(const void *key, const void *elem)
{
	return strcmp((const char *)key, ((const struct applet *)elem)->name);
}

const struct applet *
applet_find(const char *name)
{
	if (applet_count == 0)
		return NULL;
	return bsearch(name, applet_table, applet_count, sizeof(applet_table[0]), applet_cmp);
}

const char *
applet_usage(const char *name)
{
	const struct applet *a = applet_find(name);

	return a != NULL ? a->usage : "";
}

static void
corebox_usage(FILE *f)
{
	fprintf(f,
		"corebox %s: the CoreOS cluster stack in one binary\n"
		"\n"
		"Usage: corebox APPLET [ARGS...]\n"
		"   or: APPLET [ARGS...]   (through a link named after the applet)\n"
		"   or: corebox --list\n"
		"   or: corebox --install [-s] [DIR]\n"
		"   or: corebox --help | --version\n"
		"\n"
		"Applets:\n",
		COREBOX_VERSION);
	for (unsigned i = 0; i < applet_count; i++)
		fprintf(f, "  %s\n", applet_table[i].usage);
}

/* Links every applet name in dir to this binary; names that exist are kept. */
static int
corebox_install(int symbolic, const char *dir)
{
	char self[PATH_MAX], path[PATH_MAX];
	ssize_t n;
	int rc = 0;

	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n < 0) {
		fprintf(stderr, "corebox: --install: /proc/self/exe: %s\n", strerror(errno));
		return 1;
	}
	self[n] = '\0';
	if (dir == NULL) {
		char *slash = strrchr(self, '/');
		static char own[PATH_MAX];

		snprintf(own, sizeof(own), "%.*s", (int)(slash - self), self);
		dir = own[0] ? own : "/";
	}
	for (unsigned i = 0; i < applet_count; i++) {
		int r;

		if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, applet_table[i].name) >= sizeof(path)) {
			fprintf(stderr, "corebox: --install: %s: path too long\n", dir);
			return 1;
		}
		if (access(path, F_OK) == 0)
			continue;
		if (symbolic)
			r = symlink(self, path);
		else
			r = linkat(AT_FDCWD, "/proc/self/exe", AT_FDCWD, path, AT_SYMLINK_FOLLOW);
		if (r != 0) {
			fprintf(stderr, "corebox: --install: %s: %s\n", path, strerror(errno));
			rc = 1;
		}
	}
	return rc;
}

static int
run_applet(const struct applet *a, int argc, char **argv)
{
	if (argc == 2 && (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-version") == 0)) {
		fputs(a->version, stdout);
		return 0;
	}
	return a->main(argc, argv);
}

static int
corebox_main(int argc, char **argv)
{
	const struct applet *a;

	if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		corebox_usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 1 : 0;
	}
	if (strcmp(argv[1], "--version") == 0) {
		printf("corebox %s\n", COREBOX_VERSION);
		return 0;
	}
	if (strcmp(argv[1], "--list") == 0) {
		for (unsigned i = 0; i < applet_count; i++)
			printf("%s\n", applet_table[i].name);
		return 0;
	}
	if (strcmp(argv[1], "--install") == 0) {
		int symbolic = 0, i = 2;

		if (i < argc && strcmp(argv[i], "-s") == 0) {
			symbolic = 1;
			i++;
		}
		if (argc - i > 1) {
			fprintf(stderr, "Usage: corebox --install [-s] [DIR]\n");
			return 1;
		}
		return corebox_install(symbolic, i < argc ? argv[i] : NULL);
	}
	a = applet_find(argv[1]);
	if (a == NULL) {
		fprintf(stderr, "corebox: applet not found: %s\n", argv[1]);
		return 127;
	}
	return run_applet(a, argc - 1, argv + 1);
}

int
applet_dispatch(int argc, char **argv)
{
	const char *name;
	const struct applet *a;

	if (argc < 1 || argv[0] == NULL)
		return 127;
	name = strrchr(argv[0], '/');
	name = name != NULL ? name + 1 : argv[0];
	if (name[0] == '-')
		name++;
	if (strcmp(name, "corebox") == 0)
		return corebox_main(argc, argv);
	a = applet_find(name);
	if (a == NULL) {
		fprintf(stderr, "%s: applet not found\n", name);
		return 127;
	}
	return run_applet(a, argc, argv);
}
