/* requests.h: the request owner. One unit of work (an HTTP inference request
 * or a job) from admission to its end.
 *
 * A request is created by a route handler (requests_new), admitted to the
 * scheduler (requests_admit), dispatched to a worker (requests_dispatch),
 * and ended exactly once, whatever ends it: a result or an error from the
 * worker, the worker's death or dead canary, its deadline, the client going
 * away, a job cancel, a hopeless queue, shutdown. Every ending goes through
 * one finish path (requests.c: request_finish) that takes the request out of
 * the scheduler, tells the worker's canary, sends the worker a cancel when
 * it still runs the request, tells the owner through its callbacks, closes
 * the input and frees everything.
 *
 * Nothing here knows HTTP or the job store: the owner (the handler that
 * created the request) is told through struct request_ops. */
#ifndef MEDIAD_REQUESTS_H
#define MEDIAD_REQUESTS_H

#include <stddef.h>
#include <stdint.h>

#include "ipc.h"
#include "scheduler.h"

struct server;
struct worker;
struct request;

/* Why a request ended. */
enum request_end_kind {
	REQ_END_RESULT,      /* the worker answered (status, body or fd) */
	REQ_END_STREAM,      /* the worker ended a stream (status; error in msg, or NULL) */
	REQ_END_ERROR,       /* failed on our side: status and msg (worker death, deadline,
				dead canary, hopeless queue, shutdown) */
	REQ_END_CLIENT_GONE, /* the client went away (499): nobody to answer */
	REQ_END_CANCELLED,   /* cancelled by its owner (job cancel): nobody to answer */
};

struct request_end {
	enum request_end_kind kind;
	int status;
	const char *msg;   /* REQ_END_ERROR, REQ_END_STREAM: error text or NULL */
	const char *ctype; /* REQ_END_RESULT */
	const char *body;
	size_t len;
	int fd;            /* RESULT, STREAM: the frame's fd, handed to the owner (-1 none) */
};

/* What the owner of a request is told. Each callback may be NULL. */
struct request_ops {
	/* the request was sent to a worker */
	void (*started)(struct server *s, struct request *r);
	/* a streamed piece of the result (or a job event) */
	void (*chunk)(struct server *s, struct request *r, const char *ctype, const char *data,
		      size_t len);
	/* the request ended; called once, just before it is freed. The owner
	 * takes e->fd (closes it or keeps it). */
	void (*finish)(struct server *s, struct request *r, const struct request_end *e);
};

struct request {
	struct sched_req sr;     /* first member: a sched_req * is a request * */
	const struct request_ops *ops;
	void *owner;             /* the owner's object (an HTTP request), or NULL */
	char job_id[40];         /* job requests: the job's id */
	char *params;            /* JSON text sent to the worker */
	size_t params_len;
	int in_fd;               /* input payload, owned (-1 none) */
	double dispatched_at;
};

/* A new request of kind with params (JSON text, copied) and input fd (owned
 * from now on, -1 none), told through ops. Not admitted yet. */
struct request *requests_new(struct server *s, enum task_kind kind, uint64_t batch_key,
			     const char *params, int in_fd, const struct request_ops *ops,
			     void *owner);
/* Free a request that was never admitted (its owner is not told). */
void requests_free(struct request *r);
/* Admit r to the scheduler: 0, or -EAGAIN when the queue is full (then r is
 * still the caller's to free). Dispatches at once, so the queue bound counts
 * only requests that really wait. */
int requests_admit(struct server *s, struct request *r);
/* Send every batch that can go now. */
void requests_dispatch(struct server *s);
/* A RESULT, CHUNK or END frame from worker w: complete the request it
 * belongs to (late answers are dropped; the frame's fd is always taken). */
void requests_on_frame(struct server *s, struct worker *w, struct ipc_frame *f);
/* End r with an error status and message (the owner answers it). */
void requests_fail(struct server *s, struct request *r, int status, const char *msg);
/* End r without an answer: the client is gone (REQ_END_CLIENT_GONE) or its
 * owner cancelled it (REQ_END_CANCELLED). A running request is cancelled on
 * its worker and its slot is free at once. */
void requests_cancel(struct server *s, struct request *r, enum request_end_kind kind);
/* 504 every request past its deadline; a dispatched one is a progress miss
 * of its worker's canary. Returns how many requests on workers expired. */
int requests_expire(struct server *s, double now);
/* Fail every request in flight on w with 503 msg (each counts in w's
 * error_count). */
void requests_fail_worker(struct server *s, struct worker *w, const char *msg);
/* 503 every queued request when no worker can take work. */
void requests_fail_hopeless(struct server *s);
/* 503 every live request (shutdown). */
void requests_fail_all(struct server *s, const char *msg);
/* The live request with this id, or NULL. */
struct request *requests_find(struct server *s, uint64_t id);

#endif
