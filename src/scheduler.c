/* scheduler.c: see scheduler.h. */
#include "scheduler.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

static size_t hash_slot(const struct sched *s, uint64_t id)
{
	id ^= id >> 33;
	id *= 0xff51afd7ed558ccdull;
	id ^= id >> 33;
	return (size_t)(id & (s->hash_cap - 1));
}

void sched_init(struct sched *s, int max_queue, int max_batch, double batch_delay_s,
		int n_workers)
{
	memset(s, 0, sizeof(*s));
	s->max_queue = max_queue;
	s->max_batch = MIN(MAX(max_batch, 1), SCHED_MAX_BATCH);
	s->batch_delay_s = batch_delay_s;
	s->n_workers = MIN(n_workers, SCHED_MAX_WORKERS);
	s->hash_cap = 1024;
	while (s->hash_cap < (size_t)max_queue * 2)
		s->hash_cap <<= 1;
	s->hash = xcalloc(s->hash_cap, sizeof(*s->hash));
	for (int i = 0; i < s->n_workers; i++)
		s->workers[i].window = SCHED_WINDOW_BATCHES * s->max_batch;
}

void sched_release(struct sched *s)
{
	free(s->hash);
	s->hash = NULL;
}

static void list_append(struct sched_req **head, struct sched_req **tail, struct sched_req *r)
{
	r->q_next = NULL;
	r->q_prev = *tail;
	if (*tail)
		(*tail)->q_next = r;
	else
		*head = r;
	*tail = r;
}

static void list_unlink(struct sched_req **head, struct sched_req **tail, struct sched_req *r)
{
	if (r->q_prev)
		r->q_prev->q_next = r->q_next;
	else
		*head = r->q_next;
	if (r->q_next)
		r->q_next->q_prev = r->q_prev;
	else
		*tail = r->q_prev;
	r->q_prev = r->q_next = NULL;
}

int sched_waiting(const struct sched *s)
{
	int n = s->n_queued;

	for (int i = 0; i < s->n_workers; i++)
		if (s->workers[i].n_inflight > s->max_batch)
			n += s->workers[i].n_inflight - s->max_batch;
	return n;
}

int sched_admit(struct sched *s, struct sched_req *r)
{
	size_t slot;

	if (sched_waiting(s) >= s->max_queue)
		return -EAGAIN;
	r->worker = -1;
	list_append(&s->q_head, &s->q_tail, r);
	s->n_queued++;
	r->a_next = NULL;
	r->a_prev = s->a_tail;
	if (s->a_tail)
		s->a_tail->a_next = r;
	else
		s->a_head = r;
	s->a_tail = r;
	slot = hash_slot(s, r->id);
	r->h_next = s->hash[slot];
	s->hash[slot] = r;
	s->n_live++;
	return 0;
}

struct sched_req *sched_find(struct sched *s, uint64_t id)
{
	for (struct sched_req *r = s->hash[hash_slot(s, id)]; r; r = r->h_next)
		if (r->id == id)
			return r;
	return NULL;
}

void sched_remove(struct sched *s, struct sched_req *r)
{
	struct sched_req **pp = &s->hash[hash_slot(s, r->id)];

	while (*pp && *pp != r)
		pp = &(*pp)->h_next;
	if (!*pp)
		return; /* not live */
	*pp = r->h_next;
	if (r->worker < 0) {
		list_unlink(&s->q_head, &s->q_tail, r);
		s->n_queued--;
	} else {
		struct sched_worker *w = &s->workers[r->worker];
		list_unlink(&w->head, &w->tail, r);
		w->n_inflight--;
	}
	if (r->a_prev)
		r->a_prev->a_next = r->a_next;
	else
		s->a_head = r->a_next;
	if (r->a_next)
		r->a_next->a_prev = r->a_prev;
	else
		s->a_tail = r->a_prev;
	r->a_prev = r->a_next = NULL;
	r->worker = -1;
	s->n_live--;
}

static int pick_worker(struct sched *s)
{
	int best = -1;

	for (int i = 0; i < s->n_workers; i++) {
		struct sched_worker *w = &s->workers[i];
		if (!w->dispatchable || w->n_inflight >= w->window)
			continue;
		if (best < 0 || w->n_inflight + w->extra_load <
				     s->workers[best].n_inflight + s->workers[best].extra_load)
			best = i;
	}
	return best;
}

int sched_next_batch(struct sched *s, double now, int *worker, struct sched_req **out,
		     double *wake_at)
{
	struct sched_req *first = s->q_head;
	struct sched_worker *w;
	int n = 0, avail, wi;

	if (!first)
		return 0;
	wi = pick_worker(s);
	if (wi < 0)
		return 0;
	w = &s->workers[wi];
	avail = MIN(s->max_batch, w->window - w->n_inflight);
	/* gather compatible requests in FIFO order */
	for (struct sched_req *r = first; r && n < avail; r = r->q_next)
		if (r->kind == first->kind && r->batch_key == first->batch_key)
			out[n++] = r;
	if (n < s->max_batch && s->batch_delay_s > 0 && now < first->arrival + s->batch_delay_s &&
	    w->n_inflight > 0) {
		/* a busy worker: wait a little for a fuller batch */
		*wake_at = first->arrival + s->batch_delay_s;
		return 0;
	}
	for (int i = 0; i < n; i++) {
		struct sched_req *r = out[i];
		list_unlink(&s->q_head, &s->q_tail, r);
		s->n_queued--;
		r->worker = wi;
		list_append(&w->head, &w->tail, r);
		w->n_inflight++;
	}
	*worker = wi;
	return n;
}

int sched_requeue_worker(struct sched *s, int worker)
{
	struct sched_worker *w = &s->workers[worker];
	int n = 0;

	/* insert in reverse at the queue head so the oldest is first again */
	while (w->tail) {
		struct sched_req *r = w->tail;
		list_unlink(&w->head, &w->tail, r);
		w->n_inflight--;
		r->worker = -1;
		r->q_prev = NULL;
		r->q_next = s->q_head;
		if (s->q_head)
			s->q_head->q_prev = r;
		else
			s->q_tail = r;
		s->q_head = r;
		s->n_queued++;
		n++;
	}
	return n;
}

struct sched_req *sched_worker_first(struct sched *s, int worker)
{
	return s->workers[worker].head;
}

struct sched_req *sched_expired(struct sched *s, double now)
{
	if (s->a_head && s->a_head->deadline <= now)
		return s->a_head;
	return NULL;
}

void sched_set_dispatchable(struct sched *s, int worker, int on)
{
	s->workers[worker].dispatchable = on;
}

int sched_any_dispatchable(const struct sched *s)
{
	for (int i = 0; i < s->n_workers; i++)
		if (s->workers[i].dispatchable)
			return 1;
	return 0;
}
