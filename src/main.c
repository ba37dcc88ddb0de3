/* The corebox binary: everything is an applet; see src/applets.c. */
#include "corebox/applets.h"

int
main(int argc, char **argv)
{
	return applet_dispatch(argc, argv);
}
