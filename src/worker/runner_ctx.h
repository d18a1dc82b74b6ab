/* worker/runner_ctx.h: the context a runner answers its tasks through, as
 * its owner (the worker process) builds it.
 *
 * runner_ctx.c implements the calls runner.h declares (runner_reply,
 * runner_chunk, runner_progress, ...): it keeps the once-only answer rule
 * and formats bodies, and hands every frame to the hooks below. It sits
 * below the runners and never calls the worker by name, so the call order
 * is runner_ctx <- runners/<name> <- runners/registry <- worker. */
#ifndef MEDIAD_WORKER_RUNNER_CTX_H
#define MEDIAD_WORKER_RUNNER_CTX_H

#include <stddef.h>
#include <stdint.h>

struct buf;
struct config;

/* What the owner does with a runner's answers; owner is runner_ctx.owner. */
struct runner_ctx_hooks {
	/* One unit of progress on the current batch. */
	void (*progress)(void *owner);
	/* 1 when the task was abandoned by the supervisor. */
	int (*cancelled)(void *owner, uint64_t task_id);
	/* The full answer; takes body's storage (releases it). */
	void (*result)(void *owner, uint64_t task_id, int status, const char *ctype,
		       struct buf *body);
	/* A stream chunk (the first commits a 200 with ctype). */
	void (*chunk)(void *owner, uint64_t task_id, const char *ctype, const void *data,
		      size_t len);
	/* The end of a stream. */
	void (*end)(void *owner, uint64_t task_id);
};

struct runner_ctx {
	const struct runner_ctx_hooks *hooks;
	void *owner;
	const struct config *cfg;
};

/* Fill ctx; it keeps the pointers, which must outlive it. */
void runner_ctx_init(struct runner_ctx *ctx, const struct runner_ctx_hooks *hooks, void *owner,
		     const struct config *cfg);

#endif
