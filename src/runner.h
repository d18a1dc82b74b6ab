/* runner.h: the model interface a worker runs.
 *
 * A runner declares the services it can serve, loads and warms up its model
 * on a device, runs batches of tasks, and replays its warmed forward pass as
 * the deep health probe. Runners answer each task through the runner_ctx
 * calls below (worker/runner_ctx.c implements them, below every runner; it
 * reaches the worker only through the hooks the worker put in the ctx): a
 * full reply, or a stream of chunks ended by runner_end. Every task of a batch must be answered exactly
 * once. Progress is reported with runner_progress (shared memory, cheap). */
#ifndef MEDIAD_RUNNER_H
#define MEDIAD_RUNNER_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "config.h"
#include "device.h"
#include "task.h"

struct runner_task {
	uint64_t id;
	enum task_kind kind;
	json_t *params; /* validated, normalized (validate.h); owned by the worker */
	int in_fd;      /* input payload (audio upload), -1 none; owned by the worker */
	int answered;
};

struct runner_info {
	char model[128];       /* served model name */
	char device[64];       /* device description */
	unsigned services;     /* SVC_* bits this runner can serve */
	int deep_supported;    /* 0: the runner has no real deep probe, and says so */
	int synthetic_weights; /* 1 when no weights file was given */
	int max_batch;
	char voices[256];      /* TTS: "slt,rms,..." (comma-separated), "" = any */
	char default_voice[32];
};

struct runner_ctx;

struct runner_ops {
	const char *name;
	/* 0 or -errno with err filled. *state is the runner's own. */
	int (*open)(const struct config *cfg, struct mediad_device *dev, void **state, char *err,
		    size_t errlen);
	/* Load, run the served shapes once, record the golden deep-probe digest. */
	int (*warmup)(void *state, struct runner_info *info, char *err, size_t errlen);
	/* Run a batch (n >= 1 tasks of the same kind). */
	void (*run)(void *state, struct runner_task **batch, size_t n, struct runner_ctx *ctx);
	/* Replay the warmed forward; 0 with *digest set, or -errno with err.
	 * NULL when the runner has no real deep probe. */
	int (*deep_probe)(void *state, uint64_t *digest, char *err, size_t errlen);
	void (*close)(void *state);
};

/* --- calls a runner makes on its context (worker/runner_ctx.c) --- */

/* One unit of progress on the current batch. */
void runner_progress(struct runner_ctx *ctx);
/* Full answer; takes the body's storage. Large bodies go through a memfd. */
void runner_reply(struct runner_ctx *ctx, struct runner_task *t, int status, const char *ctype,
		  struct buf *body);
/* Error answer: JSON error body with this status and message. */
void runner_reply_error(struct runner_ctx *ctx, struct runner_task *t, int status,
			const char *param, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
/* Streaming: the first chunk commits a 200 with ctype; then more chunks;
 * runner_end closes the stream. For job tasks chunks are job events (JSON). */
void runner_chunk(struct runner_ctx *ctx, struct runner_task *t, const char *ctype,
		  const void *data, size_t len);
void runner_end(struct runner_ctx *ctx, struct runner_task *t);
/* Answer an image generation with the body of API.md: {"images":[b64...],
 * "generation_time":S,"seed":N,"created":T,"data":[{"b64_json":...}]}.
 * b64[i] holds image i, base64-encoded; the caller keeps them. */
void runner_reply_images(struct runner_ctx *ctx, struct runner_task *t, const struct buf *b64,
			 int n, double generation_time, uint64_t seed);
/* 1 when the supervisor abandoned this task (deadline, client gone, job cancelled). */
int runner_cancelled(struct runner_ctx *ctx, struct runner_task *t);
/* The worker's config. */
const struct config *runner_config(struct runner_ctx *ctx);

#endif
