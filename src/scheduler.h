/* scheduler.h: admission queue, dispatch to workers, deadlines, batching.
 *
 * Pure bookkeeping, no I/O: the supervisor owns the sockets and the clock
 * and asks the scheduler what to do. A request is admitted into a bounded
 * FIFO (429 beyond MAX_QUEUE_SIZE), dispatched in batches of compatible
 * requests (same task kind and batch key) to the least-loaded dispatchable
 * worker with room in its window, and found again by id when its result
 * arrives. Every request has a deadline; because all requests share one
 * timeout, arrival order is deadline order and expiry is O(expired). */
#ifndef MEDIAD_SCHEDULER_H
#define MEDIAD_SCHEDULER_H

#include <stddef.h>
#include <stdint.h>

#include "task.h"

#define SCHED_MAX_WORKERS 16
#define SCHED_MAX_BATCH 64
/* A worker holds at most this many batches at once: one running and the next
 * ones ready, so it never idles waiting for the supervisor, while a wedged
 * worker strands only a few requests (which are answered when it is caught). */
#define SCHED_WINDOW_BATCHES 4

struct sched_req {
	uint64_t id;
	enum task_kind kind;
	uint64_t batch_key;  /* requests batch together only with equal kind and key */
	double arrival;
	double deadline;
	int worker;          /* -1 while queued */
	void *owner;         /* the HTTP request or job this belongs to */
	/* links */
	struct sched_req *q_prev, *q_next; /* queue, or the worker's in-flight list */
	struct sched_req *a_prev, *a_next; /* all live requests in arrival order */
	struct sched_req *h_next;          /* id hash chain */
};

struct sched_worker {
	int dispatchable; /* ready and not gated */
	int window;       /* max requests in flight */
	int n_inflight;
	int extra_load;   /* counted as load when choosing (e.g. a health probe in flight) */
	struct sched_req *head, *tail;
};

struct sched {
	int max_queue;
	int max_batch;
	double batch_delay_s;
	int n_queued;
	int n_live;
	struct sched_req *q_head, *q_tail;
	struct sched_req *a_head, *a_tail;
	struct sched_req **hash;
	size_t hash_cap;
	int n_workers;
	struct sched_worker workers[SCHED_MAX_WORKERS];
};

void sched_init(struct sched *s, int max_queue, int max_batch, double batch_delay_s,
		int n_workers);
void sched_release(struct sched *s);

/* Requests admitted and waiting to run: those in the queue plus those
 * handed to a worker behind the batch it is running. This is what
 * MAX_QUEUE_SIZE bounds and what queue_size / mediad_queue_depth report. */
int sched_waiting(const struct sched *s);

/* Admit a request (caller owns the struct; id, kind, batch_key, arrival,
 * deadline, owner set). 0, or -EAGAIN when sched_waiting() is at the bound. */
int sched_admit(struct sched *s, struct sched_req *r);

/* Pick the next batch to send: returns its size n (0 when nothing can be
 * dispatched now) with the requests in out[] (moved to the worker's in-flight
 * list) and the worker in *worker. When requests wait only for the batch
 * delay, *wake_at is set to when to ask again (else left untouched). */
int sched_next_batch(struct sched *s, double now, int *worker, struct sched_req **out,
		     double *wake_at);

struct sched_req *sched_find(struct sched *s, uint64_t id);
/* Remove a finished (or abandoned) request from every list. */
void sched_remove(struct sched *s, struct sched_req *r);
/* Put a worker's in-flight requests back at the head of the queue in arrival
 * order (fail-over); returns how many. Use sched_worker_inflight to fail them
 * instead. */
int sched_requeue_worker(struct sched *s, int worker);
/* First in-flight request of a worker (to iterate while removing). */
struct sched_req *sched_worker_first(struct sched *s, int worker);
/* The oldest live request whose deadline is <= now, or NULL. */
struct sched_req *sched_expired(struct sched *s, double now);
/* Oldest live request (for timer computation), or NULL. */
static inline struct sched_req *sched_oldest(struct sched *s)
{
	return s->a_head;
}
void sched_set_dispatchable(struct sched *s, int worker, int on);
int sched_any_dispatchable(const struct sched *s);

#endif
