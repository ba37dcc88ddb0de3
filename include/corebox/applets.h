/*
 * applets: the multicall table generated from src/applets.def, and dispatch.
 */
#ifndef COREBOX_APPLETS_H
#define COREBOX_APPLETS_H

struct applet {
	const char *name;
	int (*main)(int argc, char **argv);
	const char *usage;
	const char *version;
};

#define APPLET(id, name, usage, version) int id##_main(int argc, char **argv);
#include "../../src/applets.def"
#undef APPLET

extern const struct applet applet_table[];
extern const unsigned applet_count;

/* Looks up an applet by name (exact); NULL if there is none. */
const struct applet *applet_find(const char *name);
/* The usage line of a named applet, or "" if unknown. */
const char *applet_usage(const char *name);
/* Runs the multicall dispatch for a process's argv; returns the exit code. */
int applet_dispatch(int argc, char **argv);

#endif
