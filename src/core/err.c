/* Messages for the error enum; the table is the X-macro in err.h. */
#include "corebox/err.h"

static const char *const err_msgs[] = {
#define ERR_MSG(name, msg) [name - ERR_FIRST_] = msg,
	ERR_LIST(ERR_MSG)
#undef ERR_MSG
};

const char *
err_str(int code)
{
	if (code < 0)
		code = -code;
	if (code == 0)
		return "success";
	if (code <= ERR_FIRST_ || code >= ERR_LAST_)
		return "unknown error";
	return err_msgs[code - ERR_FIRST_];
}
