/* worker.h: the worker process (one per device group).
 *
 * Started by the supervisor with fork+exec of the same binary in worker mode.
 * Two threads: the reader takes frames from the supervisor (tasks and probes
 * go to the execution queue; faults and cancels are applied at once, so a
 * hung execution thread can still be released by clearing faults), and the
 * executor opens the device, warms the runner up, then runs batches and
 * probes in arrival order. */
#ifndef MEDIAD_WORKER_H
#define MEDIAD_WORKER_H

#include "config.h"

/* Exit codes of a worker process (the supervisor logs them). */
enum worker_exit {
	WORKER_EXIT_OK = 0,
	WORKER_EXIT_USAGE = 2,
	WORKER_EXIT_DEVICE = 3, /* device open failed */
	WORKER_EXIT_WARMUP = 4, /* runner open or warmup failed */
	WORKER_EXIT_IPC = 5,    /* supervisor went away or sent garbage */
};

/* Run the worker process; returns its exit code. incarnation counts the
 * workers the supervisor started on this device before this one. */
int worker_main(const struct config *cfg, const char *worker_id, int incarnation, int ipc_fd,
		int progress_fd);

#endif
