/* runners/registry.h: the runners built into this binary, one row each.
 *
 * A row says everything mediad needs to know about a runner before any
 * worker starts: its name (MODEL_RUNNER), the services it serves (the
 * supervisor mounts only those routes), its ops, the device it runs on
 * unless DEVICE says otherwise, and a setup hook the worker process calls
 * while it is still single-threaded. The registry sits above the runners
 * and below the worker and config: config.c parses MODEL_RUNNER by name
 * here, the worker takes the ops from the row.
 *
 * This header declares no runner: registry.c includes each runner's own
 * header. Adding a runner is its folder plus one row in registry.c. */
#ifndef MEDIAD_RUNNERS_REGISTRY_H
#define MEDIAD_RUNNERS_REGISTRY_H

#include <stddef.h>

struct config;
struct runner_ops;

struct runner_desc {
	const char *name;          /* MODEL_RUNNER value */
	unsigned services;         /* SVC_* bits (config.h) it can serve */
	const struct runner_ops *ops;
	const char *default_device; /* a devices/registry.c name: "cpu", "mock" */
	/* Called once by the worker process before it starts any thread (e.g.
	 * libraries that read their environment once); NULL = nothing. 0 or
	 * -errno (the worker then exits). */
	int (*setup)(const struct config *cfg);
	const char *settings;      /* the runner's own settings, for --help; "" = none */
};

/* The row named name[0..len) (any case), or NULL when no runner of that name
 * is built. */
const struct runner_desc *runner_registry_find(const char *name, size_t len);
/* Row i (0, 1, ...), or NULL past the last row. */
const struct runner_desc *runner_registry_at(size_t i);

#endif
