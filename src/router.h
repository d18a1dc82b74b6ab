/* router.h: the route table and path matching.
 *
 * Every HTTP route mediad serves is one entry here: path (with {id}
 * segments), method, the service that mounts it, whether it needs the API
 * key, what handles it and, for inference routes, the task kind. A legacy
 * un-versioned alias answers like its /v1 twin with deprecation headers. A
 * new route therefore cannot forget auth: tests walk this table. */
#ifndef MEDIAD_ROUTER_H
#define MEDIAD_ROUTER_H

#include <stddef.h>

#include "task.h"

enum http_method {
	M_GET = 1 << 0,
	M_HEAD = 1 << 1,
	M_POST = 1 << 2,
	M_DELETE = 1 << 3,
	M_PUT = 1 << 4,
	M_PATCH = 1 << 5,
	M_OPTIONS = 1 << 6,
	M_OTHER = 1 << 7,
};

enum handler {
	H_HEALTH,        /* /health /readyz /v2/health/ready */
	H_LIVEZ,         /* /livez /v2/health/live */
	H_STARTUPZ,
	H_LIVENESS,      /* /tt-liveness */
	H_METRICS,
	H_MODELS,
	H_CONFIG,        /* /v1/config */
	H_RESET_DEVICE,  /* POST /tt-reset-device */
	H_DEEP_RESET,    /* POST /tt-deep-reset */
	H_FAULTS,        /* POST|DELETE /debug/faults */
	H_INFER,         /* synchronous inference: task kind set */
	H_JOB_CREATE,    /* asynchronous: task kind set */
	H_JOB_GET,
	H_JOB_LIST,
	H_JOB_DOWNLOAD,
	H_JOB_CANCEL,
	H_JOB_METRICS,
	H_JOB_LOGS,
	H_JOB_CHECKPOINTS,
	H_CATALOG,
};

struct route {
	const char *path;     /* "/v1/videos/generations/{id}/download" */
	unsigned method;      /* one M_* bit (M_GET routes also answer HEAD) */
	unsigned services;    /* SVC_* bits that mount it; 0 = always mounted */
	int auth;             /* needs the API key */
	enum handler handler;
	enum task_kind task;
	const char *metric;   /* label for mediad_requests_total{route} */
	const char *legacy;   /* legacy alias path or NULL */
	int job_type;         /* enum job_type for job routes */
};

extern const struct route router_routes[];
extern const size_t router_n_routes;

struct route_match {
	const struct route *route; /* NULL: no route for this method */
	unsigned allowed;          /* methods any route on this path accepts (for 405 Allow) */
	int legacy;                /* matched through the legacy alias */
	char id[80];               /* the {id} segment, if any */
};

/* Match path and method among routes mounted for `services`. Returns 1 when
 * a route matched, 0 when the path exists with other methods (405: see
 * m->allowed), -1 when no route has this path (404). */
int router_match(const char *path, unsigned method, unsigned services, struct route_match *m);
unsigned router_method(const char *name);
/* "GET, HEAD, POST" for an Allow header. */
void router_allow_header(unsigned methods, char *out, size_t n);

#endif
