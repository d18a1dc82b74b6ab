/* test_scheduler.c: unit tests of admission, dispatch, batching and
 * deadlines (src/scheduler.c).
 *
 * The scheduler is pure bookkeeping with the clock passed in, so every case
 * here drives it with made-up times: the bounded queue and its -EAGAIN, FIFO
 * order, least-loaded worker choice, per-worker windows, gated workers,
 * batches of equal kind and key only, the batch delay of a busy worker,
 * lookup by id among thousands, removal from the queue and from a worker,
 * fail-over requeue in the original order, expiry in deadline order and
 * iteration over a worker's requests while removing them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "scheduler.h"
#include "banned.h"

#define TIMEOUT 10.0

static void req_init(struct sched_req *r, uint64_t id, enum task_kind kind, uint64_t key,
                     double arrival)
{
	memset(r, 0, sizeof(*r));
	r->id = id;
	r->kind = kind;
	r->batch_key = key;
	r->arrival = arrival;
	r->deadline = arrival + TIMEOUT;
	r->worker = -7; /* admission must set -1 */
}

/* Admit `n` requests with ids 1..n, all of one kind, arriving at t = i. */
static void admit_n(struct sched *s, struct sched_req *r, int n, enum task_kind kind)
{
	for (int i = 0; i < n; i++) {
		req_init(&r[i], (uint64_t)i + 1, kind, 0, (double)i);
		assert_int_equal(sched_admit(s, &r[i]), 0);
		assert_int_equal(r[i].worker, -1);
	}
}

static void all_dispatchable(struct sched *s)
{
	for (int i = 0; i < s->n_workers; i++)
		sched_set_dispatchable(s, i, 1);
}

/* One batch; returns its size and checks the bookkeeping of the worker. */
static int next(struct sched *s, double now, int *wi, struct sched_req **out)
{
	double wake = -1;
	int n = sched_next_batch(s, now, wi, out, &wake);

	for (int i = 0; i < n; i++)
		assert_int_equal(out[i]->worker, *wi);
	if (n > 0)
		assert_true(wake == -1);
	return n;
}

/* Ids of the queue, head first. */
static int queue_ids(struct sched *s, uint64_t *ids, int max)
{
	int n = 0;

	for (struct sched_req *r = s->q_head; r; r = r->q_next) {
		assert_true(n < max);
		assert_int_equal(r->worker, -1);
		ids[n++] = r->id;
	}
	assert_int_equal(n, s->n_queued);
	return n;
}

static void test_init_clamps(void **state)
{
	struct sched s;

	sched_init(&s, 8, 0, 0, 100);
	assert_int_equal(s.max_batch, 1);
	assert_int_equal(s.n_workers, SCHED_MAX_WORKERS);
	for (int i = 0; i < s.n_workers; i++) {
		assert_int_equal(s.workers[i].dispatchable, 0); /* gated until ready */
		assert_int_equal(s.workers[i].window, SCHED_WINDOW_BATCHES);
	}
	assert_false(sched_any_dispatchable(&s));
	sched_release(&s);

	sched_init(&s, 8, 1000, 0, 2);
	assert_int_equal(s.max_batch, SCHED_MAX_BATCH);
	assert_int_equal(s.workers[0].window, SCHED_WINDOW_BATCHES * SCHED_MAX_BATCH);
	sched_release(&s);
}

static void test_admission_bound(void **state)
{
	struct sched s;
	struct sched_req r[8], *out[SCHED_MAX_BATCH];
	int wi;

	sched_init(&s, 4, 1, 0, 1);
	admit_n(&s, r, 4, TASK_IMAGE_GEN);
	assert_int_equal(s.n_queued, 4);
	assert_int_equal(s.n_live, 4);
	req_init(&r[4], 5, TASK_IMAGE_GEN, 0, 4);
	assert_int_equal(sched_admit(&s, &r[4]), -EAGAIN);
	assert_int_equal(s.n_queued, 4);
	assert_int_equal(s.n_live, 4);
	assert_null(sched_find(&s, 5)); /* a rejected request is not tracked */
	assert_ptr_equal(sched_oldest(&s), &r[0]);

	/* the bound is on the queue: dispatching makes room again */
	sched_set_dispatchable(&s, 0, 1);
	assert_int_equal(next(&s, 4, &wi, out), 1);
	assert_int_equal(s.n_queued, 3);
	assert_int_equal(s.n_live, 4);
	assert_int_equal(sched_admit(&s, &r[4]), 0);
	req_init(&r[5], 6, TASK_IMAGE_GEN, 0, 5);
	assert_int_equal(sched_admit(&s, &r[5]), -EAGAIN);
	/* and so does removing a queued request */
	sched_remove(&s, &r[2]);
	assert_int_equal(sched_admit(&s, &r[5]), 0);
	assert_int_equal(s.n_queued, 4);
	assert_int_equal(s.n_live, 5);
	sched_release(&s);
}

static void test_fifo_dispatch(void **state)
{
	struct sched s;
	struct sched_req r[6], *out[SCHED_MAX_BATCH];
	static const enum task_kind kinds[6] = {TASK_CHAT,   TASK_EMBED, TASK_CHAT,
	                                        TASK_SPEECH, TASK_EMBED, TASK_CHAT};
	int wi;

	sched_init(&s, 16, 1, 0, 1);
	s.workers[0].window = 100;
	sched_set_dispatchable(&s, 0, 1);
	for (int i = 0; i < 6; i++) {
		req_init(&r[i], 100 + (uint64_t)i, kinds[i], 0, i * 0.1);
		assert_int_equal(sched_admit(&s, &r[i]), 0);
	}
	for (int i = 0; i < 6; i++) {
		assert_int_equal(next(&s, 1, &wi, out), 1);
		assert_int_equal(wi, 0);
		assert_ptr_equal(out[0], &r[i]);
	}
	assert_int_equal(next(&s, 1, &wi, out), 0);
	assert_int_equal(s.n_queued, 0);
	assert_int_equal(s.workers[0].n_inflight, 6);
	/* the worker's in-flight list is in dispatch order */
	int i = 0;
	for (struct sched_req *q = sched_worker_first(&s, 0); q; q = q->q_next)
		assert_ptr_equal(q, &r[i++]);
	assert_int_equal(i, 6);
	sched_release(&s);
}

static void test_empty_queue(void **state)
{
	struct sched s;
	struct sched_req *out[SCHED_MAX_BATCH];
	double wake = -1;
	int wi = -5;

	sched_init(&s, 4, 4, 0.5, 2);
	all_dispatchable(&s);
	assert_int_equal(sched_next_batch(&s, 0, &wi, out, &wake), 0);
	assert_true(wake == -1);
	assert_int_equal(wi, -5);
	assert_null(sched_oldest(&s));
	assert_null(sched_expired(&s, 1e9));
	assert_null(sched_find(&s, 1));
	sched_release(&s);
}

static void test_least_loaded(void **state)
{
	struct sched s;
	struct sched_req r[12], *out[SCHED_MAX_BATCH];
	int wi;

	sched_init(&s, 16, 1, 0, 3);
	for (int i = 0; i < 3; i++)
		s.workers[i].window = 10;
	all_dispatchable(&s);
	admit_n(&s, r, 12, TASK_IMAGE_GEN);

	/* ties go to the lowest index, then load spreads evenly */
	static const int expect[6] = {0, 1, 2, 0, 1, 2};
	for (int i = 0; i < 6; i++) {
		assert_int_equal(next(&s, 20, &wi, out), 1);
		assert_int_equal(wi, expect[i]);
		assert_ptr_equal(out[0], &r[i]);
	}
	/* worker 1 finishes both: it is least loaded now, twice */
	sched_remove(&s, &r[1]);
	sched_remove(&s, &r[4]);
	assert_int_equal(s.workers[1].n_inflight, 0);
	assert_int_equal(next(&s, 20, &wi, out), 1);
	assert_int_equal(wi, 1);
	assert_ptr_equal(out[0], &r[6]);
	assert_int_equal(next(&s, 20, &wi, out), 1);
	assert_int_equal(wi, 1);
	/* all at 2 again: lowest index */
	assert_int_equal(next(&s, 20, &wi, out), 1);
	assert_int_equal(wi, 0);
	/* worker 2 finishes one: 3 / 2 / 1 -> worker 2, then 2 / 2 -> worker 1 */
	sched_remove(&s, &r[2]);
	assert_int_equal(next(&s, 20, &wi, out), 1);
	assert_int_equal(wi, 2);
	assert_int_equal(next(&s, 20, &wi, out), 1);
	assert_int_equal(wi, 1);
	sched_release(&s);
}

static void test_window_limit(void **state)
{
	struct sched s;
	struct sched_req r[8], *out[SCHED_MAX_BATCH];
	int wi;

	/* single requests: at most `window` in flight */
	sched_init(&s, 16, 1, 0, 1);
	s.workers[0].window = 2;
	sched_set_dispatchable(&s, 0, 1);
	admit_n(&s, r, 4, TASK_EMBED);
	assert_int_equal(next(&s, 5, &wi, out), 1);
	assert_int_equal(next(&s, 5, &wi, out), 1);
	assert_int_equal(next(&s, 5, &wi, out), 0);
	assert_int_equal(s.n_queued, 2);
	assert_int_equal(s.workers[0].n_inflight, 2);
	assert_int_equal(r[2].worker, -1);
	sched_remove(&s, &r[0]);
	assert_int_equal(next(&s, 5, &wi, out), 1);
	assert_ptr_equal(out[0], &r[2]);
	assert_int_equal(next(&s, 5, &wi, out), 0);
	sched_release(&s);

	/* batches are cut to the room left in the window */
	sched_init(&s, 16, 8, 0, 1);
	s.workers[0].window = 3;
	sched_set_dispatchable(&s, 0, 1);
	admit_n(&s, r, 5, TASK_EMBED);
	assert_int_equal(next(&s, 5, &wi, out), 3);
	assert_ptr_equal(out[0], &r[0]);
	assert_ptr_equal(out[2], &r[2]);
	assert_int_equal(next(&s, 5, &wi, out), 0);
	sched_remove(&s, &r[1]);
	assert_int_equal(next(&s, 5, &wi, out), 1);
	assert_ptr_equal(out[0], &r[3]);
	assert_int_equal(s.workers[0].n_inflight, 3);
	sched_release(&s);

	/* a full worker is skipped for one with room even if that one is busier
	 * in absolute terms */
	sched_init(&s, 16, 1, 0, 2);
	s.workers[0].window = 1;
	s.workers[1].window = 4;
	all_dispatchable(&s);
	admit_n(&s, r, 4, TASK_EMBED);
	assert_int_equal(next(&s, 5, &wi, out), 1);
	assert_int_equal(wi, 0);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(next(&s, 5, &wi, out), 1);
		assert_int_equal(wi, 1);
	}
	sched_release(&s);
}

static void test_not_dispatchable(void **state)
{
	struct sched s;
	struct sched_req r[6], *out[SCHED_MAX_BATCH];
	double wake = -1;
	int wi;

	sched_init(&s, 16, 1, 0, 3);
	for (int i = 0; i < 3; i++)
		s.workers[i].window = 10;
	admit_n(&s, r, 6, TASK_SPEECH);
	/* nobody ready: nothing moves, and no wake-up is asked for */
	assert_false(sched_any_dispatchable(&s));
	assert_int_equal(sched_next_batch(&s, 1, &wi, out, &wake), 0);
	assert_true(wake == -1);
	assert_int_equal(s.n_queued, 6);

	sched_set_dispatchable(&s, 1, 1);
	assert_true(sched_any_dispatchable(&s));
	for (int i = 0; i < 4; i++) {
		assert_int_equal(next(&s, 1, &wi, out), 1);
		assert_int_equal(wi, 1);
	}
	/* gated with requests in flight: they stay, new ones go elsewhere */
	sched_set_dispatchable(&s, 1, 0);
	sched_set_dispatchable(&s, 2, 1);
	assert_int_equal(s.workers[1].n_inflight, 4);
	assert_int_equal(next(&s, 1, &wi, out), 1);
	assert_int_equal(wi, 2);
	sched_set_dispatchable(&s, 2, 0);
	assert_false(sched_any_dispatchable(&s));
	assert_int_equal(next(&s, 1, &wi, out), 0);
	assert_int_equal(s.n_queued, 1);
	assert_int_equal(s.workers[0].n_inflight, 0);
	sched_release(&s);
}

static void test_batching(void **state)
{
	struct sched s;
	struct sched_req r[7], *out[SCHED_MAX_BATCH];
	uint64_t ids[8];
	int wi;
	static const struct {
		enum task_kind kind;
		uint64_t key;
	} spec[7] = {
	    {TASK_IMAGE_GEN, 1}, /* 1 */
	    {TASK_CHAT, 1},      /* 2: other kind, same key */
	    {TASK_IMAGE_GEN, 1}, /* 3 */
	    {TASK_IMAGE_GEN, 2}, /* 4: same kind, other key */
	    {TASK_IMAGE_GEN, 1}, /* 5 */
	    {TASK_IMAGE_GEN, 1}, /* 6: past max_batch */
	    {TASK_CHAT, 1},      /* 7 */
	};

	sched_init(&s, 16, 3, 0, 1);
	s.workers[0].window = 100;
	sched_set_dispatchable(&s, 0, 1);
	for (int i = 0; i < 7; i++) {
		req_init(&r[i], (uint64_t)i + 1, spec[i].kind, spec[i].key, i);
		assert_int_equal(sched_admit(&s, &r[i]), 0);
	}
	assert_int_equal(next(&s, 10, &wi, out), 3);
	assert_ptr_equal(out[0], &r[0]);
	assert_ptr_equal(out[1], &r[2]);
	assert_ptr_equal(out[2], &r[4]);
	/* the others keep their order */
	assert_int_equal(queue_ids(&s, ids, 8), 4);
	assert_int_equal(ids[0], 2);
	assert_int_equal(ids[1], 4);
	assert_int_equal(ids[2], 6);
	assert_int_equal(ids[3], 7);
	/* next batch starts at the new head: both chats */
	assert_int_equal(next(&s, 10, &wi, out), 2);
	assert_ptr_equal(out[0], &r[1]);
	assert_ptr_equal(out[1], &r[6]);
	assert_int_equal(next(&s, 10, &wi, out), 1);
	assert_ptr_equal(out[0], &r[3]);
	assert_int_equal(next(&s, 10, &wi, out), 1);
	assert_ptr_equal(out[0], &r[5]);
	assert_int_equal(next(&s, 10, &wi, out), 0);
	assert_int_equal(s.workers[0].n_inflight, 7);
	sched_release(&s);
}

static void test_batch_delay(void **state)
{
	struct sched s;
	struct sched_req r[8], *out[SCHED_MAX_BATCH];
	double wake;
	int wi = -1;

	sched_init(&s, 16, 4, 0.5, 1);
	sched_set_dispatchable(&s, 0, 1);

	/* an idle worker takes a lone request at once */
	req_init(&r[0], 1, TASK_IMAGE_GEN, 0, 0.0);
	assert_int_equal(sched_admit(&s, &r[0]), 0);
	wake = -1;
	assert_int_equal(sched_next_batch(&s, 0.0, &wi, out, &wake), 1);
	assert_true(wake == -1);

	/* a busy worker waits for a fuller batch until first arrival + delay */
	req_init(&r[1], 2, TASK_IMAGE_GEN, 0, 1.0);
	assert_int_equal(sched_admit(&s, &r[1]), 0);
	wake = -1;
	assert_int_equal(sched_next_batch(&s, 1.0, &wi, out, &wake), 0);
	assert_true(wake == 1.5);
	assert_int_equal(r[1].worker, -1);
	assert_int_equal(s.n_queued, 1);
	req_init(&r[2], 3, TASK_IMAGE_GEN, 0, 1.2);
	assert_int_equal(sched_admit(&s, &r[2]), 0);
	wake = -1;
	assert_int_equal(sched_next_batch(&s, 1.3, &wi, out, &wake), 0);
	assert_true(wake == 1.5); /* still the first one's arrival */
	wake = -1;
	assert_int_equal(sched_next_batch(&s, 1.5, &wi, out, &wake), 2);
	assert_true(wake == -1);
	assert_ptr_equal(out[0], &r[1]);
	assert_ptr_equal(out[1], &r[2]);

	/* a full batch does not wait */
	for (int i = 3; i < 7; i++) {
		req_init(&r[i], (uint64_t)i + 1, TASK_IMAGE_GEN, 0, 2.0);
		assert_int_equal(sched_admit(&s, &r[i]), 0);
	}
	wake = -1;
	assert_int_equal(sched_next_batch(&s, 2.0, &wi, out, &wake), 4);
	assert_true(wake == -1);
	sched_release(&s);

	/* two workers, one busy: the idle one is least loaded and takes it now */
	sched_init(&s, 16, 4, 0.5, 2);
	all_dispatchable(&s);
	req_init(&r[0], 1, TASK_CHAT, 0, 0.0);
	assert_int_equal(sched_admit(&s, &r[0]), 0);
	assert_int_equal(next(&s, 0.0, &wi, out), 1);
	assert_int_equal(wi, 0);
	req_init(&r[1], 2, TASK_CHAT, 0, 0.1);
	assert_int_equal(sched_admit(&s, &r[1]), 0);
	wake = -1;
	assert_int_equal(sched_next_batch(&s, 0.1, &wi, out, &wake), 1);
	assert_int_equal(wi, 1);
	assert_true(wake == -1);
	/* now both busy: wait */
	req_init(&r[2], 3, TASK_CHAT, 0, 0.2);
	assert_int_equal(sched_admit(&s, &r[2]), 0);
	wake = -1;
	assert_int_equal(sched_next_batch(&s, 0.2, &wi, out, &wake), 0);
	assert_true(wake == 0.2 + 0.5);
	/* the worker frees up before the delay: dispatch at once */
	sched_remove(&s, &r[0]);
	wake = -1;
	assert_int_equal(sched_next_batch(&s, 0.3, &wi, out, &wake), 1);
	assert_int_equal(wi, 0);
	assert_true(wake == -1);
	sched_release(&s);
}

static void test_find_many(void **state)
{
	enum { N = 5000 };
	struct sched s;
	struct sched_req *r = calloc(N, sizeof(*r));

	assert_non_null(r);
	sched_init(&s, N, 8, 0, 1);
	/* ids that share their low bits stress the hash */
	for (int i = 0; i < N; i++) {
		req_init(&r[i], ((uint64_t)i << 20) | 0xabc, TASK_EMBED, 0, i * 1e-3);
		assert_int_equal(sched_admit(&s, &r[i]), 0);
	}
	assert_int_equal(s.n_live, N);
	for (int i = 0; i < N; i++)
		assert_ptr_equal(sched_find(&s, r[i].id), &r[i]);
	assert_null(sched_find(&s, 0));
	assert_null(sched_find(&s, 0xabc + 1));
	assert_null(sched_find(&s, ((uint64_t)N << 20) | 0xabc));

	/* move some to a worker: still found */
	sched_set_dispatchable(&s, 0, 1);
	s.workers[0].window = 64;
	struct sched_req *out[SCHED_MAX_BATCH];
	int wi;
	for (int k = 0; k < 8; k++)
		assert_int_equal(next(&s, 10, &wi, out), 8);
	for (int i = 0; i < 64; i++)
		assert_ptr_equal(sched_find(&s, r[i].id), &r[i]);

	/* remove every third (queued and in flight alike) */
	for (int i = 0; i < N; i += 3)
		sched_remove(&s, &r[i]);
	for (int i = 0; i < N; i++) {
		if (i % 3 == 0)
			assert_null(sched_find(&s, r[i].id));
		else
			assert_ptr_equal(sched_find(&s, r[i].id), &r[i]);
	}
	assert_int_equal(s.n_live, N - (N + 2) / 3);
	assert_int_equal(s.workers[0].n_inflight, 64 - 22);
	assert_int_equal(s.n_queued, s.n_live - s.workers[0].n_inflight);

	/* an id can be reused once its request is gone */
	struct sched_req again;
	req_init(&again, r[0].id, TASK_EMBED, 0, 99);
	assert_int_equal(sched_admit(&s, &again), 0);
	assert_ptr_equal(sched_find(&s, r[0].id), &again);
	sched_remove(&s, &again);
	assert_null(sched_find(&s, r[0].id));

	for (int i = 0; i < N; i++)
		sched_remove(&s, &r[i]);
	assert_int_equal(s.n_live, 0);
	assert_int_equal(s.n_queued, 0);
	assert_int_equal(s.workers[0].n_inflight, 0);
	assert_null(sched_oldest(&s));
	assert_null(s.q_head);
	assert_null(s.q_tail);
	sched_release(&s);
	free(r);
}

static void test_remove(void **state)
{
	struct sched s;
	struct sched_req r[6], *out[SCHED_MAX_BATCH];
	uint64_t ids[8];
	int wi;

	sched_init(&s, 16, 1, 0, 1);
	s.workers[0].window = 10;
	admit_n(&s, r, 6, TASK_TOKENIZE);

	/* from the queue: head, middle, tail */
	sched_remove(&s, &r[0]);
	sched_remove(&s, &r[3]);
	sched_remove(&s, &r[5]);
	assert_int_equal(s.n_queued, 3);
	assert_int_equal(s.n_live, 3);
	assert_int_equal(queue_ids(&s, ids, 8), 3);
	assert_int_equal(ids[0], 2);
	assert_int_equal(ids[1], 3);
	assert_int_equal(ids[2], 5);
	assert_ptr_equal(sched_oldest(&s), &r[1]);
	assert_int_equal(r[0].worker, -1);

	/* removing again is harmless */
	sched_remove(&s, &r[3]);
	assert_int_equal(s.n_queued, 3);
	assert_int_equal(s.n_live, 3);

	/* from in flight */
	sched_set_dispatchable(&s, 0, 1);
	assert_int_equal(next(&s, 10, &wi, out), 1);
	assert_int_equal(next(&s, 10, &wi, out), 1);
	assert_int_equal(s.workers[0].n_inflight, 2);
	sched_remove(&s, &r[1]);
	assert_int_equal(s.workers[0].n_inflight, 1);
	assert_int_equal(s.n_queued, 1);
	assert_int_equal(s.n_live, 2);
	assert_int_equal(r[1].worker, -1);
	assert_null(sched_find(&s, 2));
	assert_ptr_equal(sched_worker_first(&s, 0), &r[2]);
	assert_ptr_equal(sched_oldest(&s), &r[2]);
	sched_remove(&s, &r[1]);
	assert_int_equal(s.workers[0].n_inflight, 1);
	assert_int_equal(s.n_live, 2);
	/* the removed ones are never dispatched */
	assert_int_equal(next(&s, 10, &wi, out), 1);
	assert_ptr_equal(out[0], &r[4]);
	assert_int_equal(next(&s, 10, &wi, out), 0);
	sched_release(&s);
}

static void test_requeue_worker(void **state)
{
	struct sched s;
	struct sched_req r[8], *out[SCHED_MAX_BATCH];
	uint64_t ids[8];
	int wi;

	sched_init(&s, 16, 1, 0, 2);
	s.workers[0].window = 10;
	s.workers[1].window = 10;
	sched_set_dispatchable(&s, 0, 1);
	admit_n(&s, r, 5, TASK_TRANSCRIBE);
	for (int i = 0; i < 3; i++)
		assert_int_equal(next(&s, 10, &wi, out), 1);
	assert_int_equal(s.workers[0].n_inflight, 3);

	assert_int_equal(sched_requeue_worker(&s, 1), 0); /* nothing there */
	assert_int_equal(sched_requeue_worker(&s, 0), 3);
	assert_int_equal(s.workers[0].n_inflight, 0);
	assert_null(sched_worker_first(&s, 0));
	assert_int_equal(s.n_live, 5);
	/* back at the head, before the ones that never left, in the original order */
	assert_int_equal(queue_ids(&s, ids, 8), 5);
	for (int i = 0; i < 5; i++)
		assert_int_equal(ids[i], i + 1);
	for (int i = 0; i < 5; i++)
		assert_ptr_equal(sched_find(&s, r[i].id), &r[i]);

	/* fail-over: the other worker gets them in that order */
	sched_set_dispatchable(&s, 0, 0);
	sched_set_dispatchable(&s, 1, 1);
	for (int i = 0; i < 5; i++) {
		assert_int_equal(next(&s, 10, &wi, out), 1);
		assert_int_equal(wi, 1);
		assert_ptr_equal(out[0], &r[i]);
	}
	sched_release(&s);

	/* with batches: the in-flight order of a batch is kept, and a requeued
	 * request can be removed again */
	sched_init(&s, 16, 4, 0, 1);
	sched_set_dispatchable(&s, 0, 1);
	req_init(&r[0], 1, TASK_CHAT, 0, 0);
	req_init(&r[1], 2, TASK_EMBED, 0, 1);
	req_init(&r[2], 3, TASK_CHAT, 0, 2);
	for (int i = 0; i < 3; i++)
		assert_int_equal(sched_admit(&s, &r[i]), 0);
	assert_int_equal(next(&s, 10, &wi, out), 2); /* 1 and 3 */
	assert_int_equal(sched_requeue_worker(&s, 0), 2);
	assert_int_equal(queue_ids(&s, ids, 8), 3);
	assert_int_equal(ids[0], 1);
	assert_int_equal(ids[1], 3);
	assert_int_equal(ids[2], 2);
	assert_ptr_equal(s.q_tail, &r[1]);
	sched_remove(&s, &r[2]);
	sched_remove(&s, &r[0]);
	assert_int_equal(queue_ids(&s, ids, 8), 1);
	assert_ptr_equal(s.q_head, &r[1]);
	assert_ptr_equal(s.q_tail, &r[1]);
	assert_int_equal(s.n_live, 1);
	sched_release(&s);
}

static void test_expired_order(void **state)
{
	struct sched s;
	struct sched_req r[5], *out[SCHED_MAX_BATCH], *e;
	int wi;

	/* mixed kinds so dispatch order differs from arrival order */
	static const enum task_kind kinds[5] = {TASK_CHAT, TASK_EMBED, TASK_CHAT, TASK_EMBED,
	                                        TASK_CHAT};

	sched_init(&s, 16, 4, 0, 1);
	sched_set_dispatchable(&s, 0, 1);
	for (int i = 0; i < 5; i++) {
		req_init(&r[i], (uint64_t)i + 1, kinds[i], 0, i);
		assert_int_equal(sched_admit(&s, &r[i]), 0);
	}
	assert_int_equal(next(&s, 4, &wi, out), 3); /* 1 3 5 in flight; 2 4 queued */

	assert_null(sched_expired(&s, TIMEOUT - 0.001));
	assert_ptr_equal(sched_expired(&s, TIMEOUT), &r[0]); /* deadline <= now */
	assert_ptr_equal(sched_oldest(&s), &r[0]);

	int n = 0;
	while ((e = sched_expired(&s, 100))) {
		assert_ptr_equal(e, &r[n]);
		sched_remove(&s, e);
		n++;
		if (n == 2) {
			/* later ones have not expired yet at the earlier time */
			assert_null(sched_expired(&s, TIMEOUT + 1.5));
		}
	}
	assert_int_equal(n, 5);
	assert_int_equal(s.n_live, 0);
	sched_release(&s);
}

static void test_worker_first_while_removing(void **state)
{
	struct sched s;
	struct sched_req r[9], *out[SCHED_MAX_BATCH], *q;
	int wi, n = 0;
	uint64_t seen[9];

	sched_init(&s, 16, 1, 0, 2);
	s.workers[0].window = 10;
	s.workers[1].window = 10;
	all_dispatchable(&s);
	admit_n(&s, r, 9, TASK_SPEECH);
	for (int i = 0; i < 8; i++)
		assert_int_equal(next(&s, 10, &wi, out), 1);
	/* 1 3 5 7 on worker 0, 2 4 6 8 on worker 1, 9 queued */
	assert_int_equal(s.workers[0].n_inflight, 4);
	while ((q = sched_worker_first(&s, 0))) {
		assert_int_equal(q->worker, 0);
		seen[n++] = q->id;
		sched_remove(&s, q);
		assert_true(n <= 4);
	}
	assert_int_equal(n, 4);
	for (int i = 0; i < 4; i++)
		assert_int_equal(seen[i], 2 * (uint64_t)i + 1);
	assert_int_equal(s.workers[0].n_inflight, 0);
	assert_int_equal(s.workers[1].n_inflight, 4);
	assert_int_equal(s.n_queued, 1);
	assert_int_equal(s.n_live, 5);
	assert_ptr_equal(sched_worker_first(&s, 1), &r[1]);
	sched_release(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_init_clamps),
	    cmocka_unit_test(test_admission_bound),
	    cmocka_unit_test(test_fifo_dispatch),
	    cmocka_unit_test(test_empty_queue),
	    cmocka_unit_test(test_least_loaded),
	    cmocka_unit_test(test_window_limit),
	    cmocka_unit_test(test_not_dispatchable),
	    cmocka_unit_test(test_batching),
	    cmocka_unit_test(test_batch_delay),
	    cmocka_unit_test(test_find_many),
	    cmocka_unit_test(test_remove),
	    cmocka_unit_test(test_requeue_worker),
	    cmocka_unit_test(test_expired_order),
	    cmocka_unit_test(test_worker_first_while_removing),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
