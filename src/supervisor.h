/* supervisor.h: the supervisor process's entry point. */
#ifndef MEDIAD_SUPERVISOR_H
#define MEDIAD_SUPERVISOR_H

#include "config.h"

/* Run the supervisor until it stops; returns the process exit code. */
int supervisor_run(struct config *cfg, const char *self_exe);

#endif
