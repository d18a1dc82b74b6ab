/* requests.c: the request owner (see requests.h): admission, dispatch and
 * the one finish path every ending of a request goes through. */
#include "requests.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "children.h"
#include "log.h"
#include "server.h"
#include "serving.h"
#include "util.h"
#include "banned.h"

struct request *requests_new(struct server *s, enum task_kind kind, uint64_t batch_key,
			     const char *params, int in_fd, const struct request_ops *ops,
			     void *owner)
{
	struct request *r = xcalloc(1, sizeof(*r));
	double now = now_s();

	r->sr.id = ++s->next_id;
	r->sr.kind = kind;
	r->sr.batch_key = batch_key;
	r->sr.arrival = now;
	r->sr.deadline = now + s->cfg->request_processing_timeout_seconds;
	r->sr.owner = r;
	r->ops = ops;
	r->owner = owner;
	r->in_fd = in_fd;
	r->params = xstrdup(params);
	r->params_len = strlen(r->params);
	return r;
}

void requests_free(struct request *r)
{
	if (!r)
		return;
	if (r->in_fd >= 0)
		close(r->in_fd);
	free(r->params);
	free(r);
}

/* The one finish path: every ending of a request comes here, once. */
static void request_finish(struct server *s, struct request *r, const struct request_end *e)
{
	int wi = r->sr.worker;

	sched_remove(&s->sched, &r->sr);
	if (wi >= 0) {
		struct worker *w = &s->workers[wi];
		/* the worker still runs it unless the ending came from the worker */
		int running = e->kind != REQ_END_RESULT && e->kind != REQ_END_STREAM && w->sock >= 0;
		if (running && w->n_orphans < (int)ARRAY_SIZE(w->orphans))
			w->orphans[w->n_orphans++] = r->sr.id; /* busy until it answers */
		else
			canary_request_finished(&w->canary, now_s());
		if (running)
			children_send(s, w, IPC_CANCEL, 0, 0, r->sr.id, NULL, 0, -1);
	}
	if (r->ops->finish)
		r->ops->finish(s, r, e);
	else if (e->fd >= 0)
		close(e->fd);
	requests_free(r);
}

int requests_admit(struct server *s, struct request *r)
{
	if (sched_admit(&s->sched, &r->sr) < 0)
		return -EAGAIN;
	/* dispatch now, so the queue bound counts only requests that really
	 * wait (a burst handled in one loop pass is not refused early) */
	requests_dispatch(s);
	return 0;
}

static void dispatch_batch(struct server *s, int wi, struct sched_req **batch, int n)
{
	struct worker *w = &s->workers[wi];
	double now = now_s();

	for (int i = 0; i < n; i++) {
		struct request *r = (struct request *)batch[i];
		int fd = r->in_fd >= 0 ? dup(r->in_fd) : -1;
		canary_request_started(&w->canary, now);
		r->dispatched_at = now;
		if (r->ops->started)
			r->ops->started(s, r);
		children_send(s, w, IPC_TASK, i + 1 < n ? IPC_F_BATCH_MORE : 0, r->sr.kind, r->sr.id,
			      r->params, r->params_len, fd);
	}
}

void requests_dispatch(struct server *s)
{
	struct sched_req *batch[SCHED_MAX_BATCH];
	double now = now_s();
	int wi, n;

	while ((n = sched_next_batch(&s->sched, now, &wi, batch, &s->batch_wake)) > 0)
		dispatch_batch(s, wi, batch, n);
}

struct request *requests_find(struct server *s, uint64_t id)
{
	return (struct request *)sched_find(&s->sched, id);
}

void requests_on_frame(struct server *s, struct worker *w, struct ipc_frame *f)
{
	struct request *r = requests_find(s, f->hdr.id);

	if (!r || r->sr.worker != w->index) {
		/* a late answer for a request already finished: dropped; its
		 * worker is no longer busy with it once the answer is final */
		if (f->hdr.type == IPC_RESULT || f->hdr.type == IPC_END)
			for (int i = 0; i < w->n_orphans; i++)
				if (w->orphans[i] == f->hdr.id) {
					w->orphans[i] = w->orphans[--w->n_orphans];
					canary_request_finished(&w->canary, now_s());
					break;
				}
		log_debug("dropping late %s for request %llu", ipc_type_name(f->hdr.type),
			  (unsigned long long)f->hdr.id);
		if (f->fd >= 0)
			close(f->fd);
		return;
	}
	const char *ctype = f->payload;
	size_t clen = f->hdr.len ? strnlen(f->payload, f->hdr.len) : 0;
	const char *body = f->payload + (clen < f->hdr.len ? clen + 1 : clen);
	size_t blen = f->hdr.len - (size_t)(body - f->payload);

	if (f->hdr.type == IPC_CHUNK) {
		if (r->ops->chunk)
			r->ops->chunk(s, r, ctype, body, blen);
		if (f->fd >= 0)
			close(f->fd);
		return;
	}
	if (f->hdr.aux >= 500)
		w->error_count++;
	struct request_end e = {
		.kind = f->hdr.type == IPC_END ? REQ_END_STREAM : REQ_END_RESULT,
		.status = (int)f->hdr.aux,
		.ctype = ctype,
		.body = body,
		.len = blen,
		.fd = f->fd,
	};
	request_finish(s, r, &e);
}

void requests_fail(struct server *s, struct request *r, int status, const char *msg)
{
	struct request_end e = {.kind = REQ_END_ERROR, .status = status, .msg = msg, .fd = -1};

	request_finish(s, r, &e);
}

void requests_cancel(struct server *s, struct request *r, enum request_end_kind kind)
{
	struct request_end e = {.kind = kind, .status = kind == REQ_END_CLIENT_GONE ? 499 : 0,
				.fd = -1};

	request_finish(s, r, &e);
}

int requests_expire(struct server *s, double now)
{
	struct sched_req *sr;
	int on_workers = 0;

	while ((sr = sched_expired(&s->sched, now))) {
		char msg[160];
		if (sr->worker >= 0) {
			struct worker *w = &s->workers[sr->worker];
			const char *lc[] = {s->model_type, w->id, "progress"};
			if (canary_request_timed_out(&w->canary, now))
				metrics_add(s->m_canary_fail, lc, 1);
			w->error_count++;
			on_workers++;
			snprintf(msg, sizeof(msg),
				 "request exceeded REQUEST_PROCESSING_TIMEOUT_SECONDS (%g s) on "
				 "worker %s",
				 s->cfg->request_processing_timeout_seconds, w->id);
		} else {
			snprintf(msg, sizeof(msg),
				 "request waited in the queue past REQUEST_PROCESSING_TIMEOUT_SECONDS "
				 "(%g s)",
				 s->cfg->request_processing_timeout_seconds);
		}
		requests_fail(s, (struct request *)sr, 504, msg);
	}
	return on_workers;
}

void requests_fail_worker(struct server *s, struct worker *w, const char *msg)
{
	struct sched_req *sr;

	while ((sr = sched_worker_first(&s->sched, w->index))) {
		w->error_count++;
		requests_fail(s, (struct request *)sr, 503, msg);
	}
}

/* Requests queued while no worker can take them are answered 503 at once
 * rather than left to wait for a restart or their deadline (HEALTH.md: fail
 * over to other ready workers, or 503 when none; never queued to a dead
 * worker). Admission already refuses new requests in that state. */
void requests_fail_hopeless(struct server *s)
{
	char why[512];

	if (!s->sched.q_head || sched_any_dispatchable(&s->sched))
		return;
	serving_reason(s, why, sizeof(why));
	while (s->sched.q_head)
		requests_fail(s, (struct request *)s->sched.q_head, 503,
			      why[0] ? why : "no worker can take the request");
}

void requests_fail_all(struct server *s, const char *msg)
{
	struct sched_req *sr;

	while ((sr = sched_oldest(&s->sched)))
		requests_fail(s, (struct request *)sr, 503, msg);
}
