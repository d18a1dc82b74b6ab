/* api.h: the route handlers, by family, and the dispatcher that reaches
 * them from the route table.
 *
 * api.c: what happens before a handler runs (route match, 404/405, auth,
 * early 503, body limits), the handler of each enum handler, and the
 * HTTP adapter's callbacks (struct http_handlers api_http). Then one file
 * per family: api_health.c (health, liveness, metrics, models, config),
 * api_infer.c (inference and job creation: body parsing, validation,
 * admission), api_jobs.c (job routes and the job store as a request owner),
 * api_ops.c (fault injection, device resets). */
#ifndef MEDIAD_API_H
#define MEDIAD_API_H

#include "http.h"

struct server;

/* Set up what the handlers need (libsodium); 0 or -1. */
int api_init(void);
/* The HTTP adapter's callbacks (given to http_start). */
extern const struct http_handlers api_http;

typedef void api_handler_fn(struct server *s, struct hreq *h);

/* api_health.c */
api_handler_fn api_health, api_liveness, api_livez, api_startupz, api_metrics, api_models,
	api_config;
void api_health_body(struct server *s, struct buf *out, int *status);
void api_liveness_body(struct server *s, struct buf *out, int *status);
/* The same bodies from a cache that is rebuilt only when the state they show
 * changed; the pointer is valid until the next call. */
const struct buf *api_health_cached(struct server *s, int *status);
const struct buf *api_liveness_cached(struct server *s, int *status);
void api_cache_free(struct server *s);

/* api_infer.c */
api_handler_fn api_infer;
/* Before the body is read: multipart set-up for task kinds that take it;
 * 1 when it answered. */
int api_infer_begin(struct server *s, struct hreq *h);
/* The client of an inference request went away: its work is cancelled. */
void api_infer_gone(struct server *s, struct hreq *h);

/* api_jobs.c */
api_handler_fn api_job;
/* The request owner callbacks of a job (a job's run on a worker). */
extern const struct request_ops api_job_ops;

/* api_ops.c */
api_handler_fn api_faults, api_reset_device, api_deep_reset;

#endif
