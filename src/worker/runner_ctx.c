/* worker/runner_ctx.c: the calls runners make on their context (runner.h),
 * on top of the owner's hooks (worker/runner_ctx.h). Every task is answered
 * once: a second answer is dropped here, whatever the runner does. */
#include "worker/runner_ctx.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "apierr.h"
#include "buf.h"
#include "runner.h"
#include "util.h"

void runner_ctx_init(struct runner_ctx *ctx, const struct runner_ctx_hooks *hooks, void *owner,
		     const struct config *cfg)
{
	ctx->hooks = hooks;
	ctx->owner = owner;
	ctx->cfg = cfg;
}

void runner_progress(struct runner_ctx *ctx)
{
	ctx->hooks->progress(ctx->owner);
}

const struct config *runner_config(struct runner_ctx *ctx)
{
	return ctx->cfg;
}

int runner_cancelled(struct runner_ctx *ctx, struct runner_task *t)
{
	return ctx->hooks->cancelled(ctx->owner, t->id);
}

void runner_reply(struct runner_ctx *ctx, struct runner_task *t, int status, const char *ctype,
		  struct buf *body)
{
	if (t->answered) {
		buf_release(body);
		return;
	}
	t->answered = 1;
	ctx->hooks->result(ctx->owner, t->id, status, ctype, body);
}

void runner_reply_images(struct runner_ctx *ctx, struct runner_task *t, const struct buf *b64,
			 int n, double generation_time, uint64_t seed)
{
	struct buf body;

	buf_init(&body, BUF_UNLIMITED);
	buf_puts(&body, "{\"images\":[");
	for (int i = 0; i < n; i++) {
		buf_puts(&body, i ? ",\"" : "\"");
		buf_append(&body, b64[i].data, b64[i].len);
		buf_puts(&body, "\"");
	}
	buf_printf(&body, "],\"generation_time\":%.6f,\"seed\":%llu,\"created\":%lld,\"data\":[",
		   generation_time, (unsigned long long)seed, (long long)wall_s());
	for (int i = 0; i < n; i++) {
		buf_puts(&body, i ? ",{\"b64_json\":\"" : "{\"b64_json\":\"");
		buf_append(&body, b64[i].data, b64[i].len);
		buf_puts(&body, "\"}");
	}
	buf_puts(&body, "]}");
	runner_reply(ctx, t, 200, "application/json", &body);
}

void runner_reply_error(struct runner_ctx *ctx, struct runner_task *t, int status,
			const char *param, const char *fmt, ...)
{
	struct api_error err;
	struct buf body;
	va_list ap;

	err.code = api_err_from_status(status);
	snprintf(err.param, sizeof(err.param), "%s", param ? param : "");
	va_start(ap, fmt);
	vsnprintf(err.message, sizeof(err.message), fmt, ap);
	va_end(ap);
	buf_init(&body, BUF_UNLIMITED);
	api_error_json(&err, &body);
	runner_reply(ctx, t, status, "application/json", &body);
}

void runner_chunk(struct runner_ctx *ctx, struct runner_task *t, const char *ctype,
		  const void *data, size_t len)
{
	if (t->answered)
		return;
	ctx->hooks->chunk(ctx->owner, t->id, ctype, data, len);
}

void runner_end(struct runner_ctx *ctx, struct runner_task *t)
{
	if (t->answered)
		return;
	t->answered = 1;
	ctx->hooks->end(ctx->owner, t->id);
}
