/* worker.c: the worker process loop. See worker.h. */
#include "worker/worker.h"

#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "apierr.h"
#include "device.h"
#include "runners/dit/dit_kernels.h"
#include "faults.h"
#include "ipc.h"
#include "log.h"
#include "progress.h"
#include "runner.h"
#include "util.h"

struct exec_item {
	struct exec_item *next;
	struct ipc_hdr hdr;
	char *payload;
	int fd;
};

#define CANCEL_RING 256

static void faults_open_gate(void);

struct runner_ctx {
	const struct config *cfg;
	int sock;
	pthread_mutex_t send_lock;
	struct progress_page *progress;

	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct exec_item *head, *tail;
	int stopping;

	uint64_t cancelled[CANCEL_RING];
	unsigned cancel_next;

	struct device dev;
	const struct runner_ops *runner;
	void *rstate;
	struct runner_info info;
	uint64_t golden;
	int have_golden;
};

static void ctx_send(struct runner_ctx *ctx, uint16_t type, uint32_t flags, uint32_t aux,
		     uint64_t id, const void *p1, size_t n1, const void *p2, size_t n2, int fd)
{
	int r;

	pthread_mutex_lock(&ctx->send_lock);
	r = ipc_send(ctx->sock, type, flags, aux, id, p1, n1, p2, n2, fd);
	pthread_mutex_unlock(&ctx->send_lock);
	if (fd >= 0)
		close(fd);
	if (r < 0) {
		log_error("lost the supervisor while sending %s: %s", ipc_type_name(type),
			  strerror(-r));
		_exit(WORKER_EXIT_IPC);
	}
}

/* --- runner_ctx calls --- */

void runner_progress(struct runner_ctx *ctx)
{
	progress_step(ctx->progress);
}

const struct config *runner_config(struct runner_ctx *ctx)
{
	return ctx->cfg;
}

int runner_cancelled(struct runner_ctx *ctx, struct runner_task *t)
{
	int hit = 0;

	pthread_mutex_lock(&ctx->lock);
	for (unsigned i = 0; i < CANCEL_RING; i++)
		if (ctx->cancelled[i] == t->id)
			hit = 1;
	pthread_mutex_unlock(&ctx->lock);
	return hit;
}

static int body_to_memfd(const struct buf *body)
{
	int fd = memfd_create("mediad-result", MFD_CLOEXEC);

	if (fd < 0)
		return -errno;
	if (write_all(fd, body->data, body->len) < 0) {
		close(fd);
		return -EIO;
	}
	return fd;
}

void runner_reply(struct runner_ctx *ctx, struct runner_task *t, int status, const char *ctype,
		  struct buf *body)
{
	size_t clen = strlen(ctype) + 1;

	if (t->answered) {
		buf_release(body);
		return;
	}
	t->answered = 1;
	if (body->len > IPC_INLINE_MAX) {
		int fd = body_to_memfd(body);
		if (fd >= 0) {
			ctx_send(ctx, IPC_RESULT, 0, (uint32_t)status, t->id, ctype, clen, NULL, 0, fd);
			buf_release(body);
			return;
		}
	}
	ctx_send(ctx, IPC_RESULT, 0, (uint32_t)status, t->id, ctype, clen, body->data, body->len,
		 -1);
	buf_release(body);
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
	size_t clen = strlen(ctype) + 1;

	if (t->answered)
		return;
	ctx_send(ctx, IPC_CHUNK, 0, 200, t->id, ctype, clen, data, len, -1);
}

void runner_end(struct runner_ctx *ctx, struct runner_task *t)
{
	if (t->answered)
		return;
	t->answered = 1;
	ctx_send(ctx, IPC_END, 0, 200, t->id, NULL, 0, NULL, 0, -1);
}

/* --- execution queue --- */

static void queue_push(struct runner_ctx *ctx, struct exec_item *it)
{
	pthread_mutex_lock(&ctx->lock);
	it->next = NULL;
	if (ctx->tail)
		ctx->tail->next = it;
	else
		ctx->head = it;
	ctx->tail = it;
	pthread_cond_signal(&ctx->cond);
	pthread_mutex_unlock(&ctx->lock);
}

static struct exec_item *queue_pop(struct runner_ctx *ctx)
{
	struct exec_item *it;

	pthread_mutex_lock(&ctx->lock);
	while (!ctx->head)
		pthread_cond_wait(&ctx->cond, &ctx->lock);
	it = ctx->head;
	ctx->head = it->next;
	if (!ctx->head)
		ctx->tail = NULL;
	pthread_mutex_unlock(&ctx->lock);
	return it;
}

static void item_free(struct exec_item *it)
{
	if (it->fd >= 0)
		close(it->fd);
	free(it->payload);
	free(it);
}

static void sleep_ms(double ms)
{
	struct timespec ts;

	if (ms <= 0)
		return;
	ts.tv_sec = (time_t)(ms / 1000);
	ts.tv_nsec = (long)((ms - (double)ts.tv_sec * 1000) * 1e6);
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static void maybe_crash(void)
{
	if (faults_take(FAULT_CRASH, NULL)) {
		log_warn("fault injection: crashing now");
		abort();
	}
}

/* --- probes --- */

static void send_probe_result(struct runner_ctx *ctx, const struct exec_item *it,
			      const char *outcome, const char *digest, const char *error,
			      double latency)
{
	json_t *o = json_pack("{s:s,s:f}", "outcome", outcome, "latency_s", latency);
	char *text;

	if (digest)
		json_object_set_new(o, "digest", json_string(digest));
	if (error)
		json_object_set_new(o, "error", json_string(error));
	text = json_dumps(o, JSON_COMPACT);
	ctx_send(ctx, IPC_PROBE_RESULT, 0, it->hdr.aux, it->hdr.id, text, strlen(text), NULL, 0,
		 -1);
	free(text);
	json_decref(o);
}

static void run_probe(struct runner_ctx *ctx, const struct exec_item *it)
{
	char err[256] = "";
	uint64_t t0 = now_ns();
	int deep = it->hdr.aux == 1;
	int r;

	maybe_crash();
	if (!deep) {
		r = ctx->dev.ops->ping(&ctx->dev, ctx->cfg->canary_probe_timeout_seconds, err,
				       sizeof(err));
		send_probe_result(ctx, it, r == 0 ? "ok" : (r == -ETIMEDOUT ? "timeout" : "error"),
				  NULL, r == 0 ? NULL : err, (double)(now_ns() - t0) / 1e9);
		return;
	}
	if (!ctx->runner->deep_probe || !ctx->have_golden) {
		send_probe_result(ctx, it, "error", NULL, "deep probe unsupported by this runner",
				  0);
		return;
	}
	if (faults_take(FAULT_HANG_DEEP, NULL)) {
		log_warn("fault injection: deep probe hangs");
		faults_hang();
	}
	if (faults_take(FAULT_ERROR_DEEP, NULL)) {
		send_probe_result(ctx, it, "error", NULL, "fault injection: error_deep",
				  (double)(now_ns() - t0) / 1e9);
		return;
	}
	uint64_t digest = 0;
	char hex[17];
	r = ctx->runner->deep_probe(ctx->rstate, &digest, err, sizeof(err));
	double lat = (double)(now_ns() - t0) / 1e9;
	snprintf(hex, sizeof(hex), "%016llx", (unsigned long long)digest);
	if (r < 0) {
		send_probe_result(ctx, it, "error", NULL, err[0] ? err : strerror(-r), lat);
	} else if (digest != ctx->golden) {
		char msg[128];
		snprintf(msg, sizeof(msg), "digest %s differs from golden %016llx", hex,
			 (unsigned long long)ctx->golden);
		send_probe_result(ctx, it, "mismatch", hex, msg, lat);
	} else {
		send_probe_result(ctx, it, "ok", hex, NULL, lat);
	}
}

/* --- tasks --- */

static void run_batch(struct runner_ctx *ctx, struct exec_item **items, size_t n)
{
	struct runner_task *tasks = xcalloc(n, sizeof(*tasks));
	struct runner_task **live = xcalloc(n, sizeof(*live));
	size_t n_live = 0;
	int64_t slow = 0;

	for (size_t i = 0; i < n; i++) {
		struct runner_task *t = &tasks[i];
		json_error_t jerr;

		t->id = items[i]->hdr.id;
		t->kind = (enum task_kind)items[i]->hdr.aux;
		t->in_fd = items[i]->fd;
		items[i]->fd = -1;
		if (runner_cancelled(ctx, t)) {
			t->answered = 1;
			continue;
		}
		t->params = json_loadb(items[i]->payload, items[i]->hdr.len, 0, &jerr);
		if (!t->params || !json_is_object(t->params)) {
			runner_reply_error(ctx, t, 500, NULL, "worker received malformed params: %s",
					   jerr.text);
			continue;
		}
		live[n_live++] = t;
	}
	if (n_live) {
		maybe_crash();
		progress_begin(ctx->progress, live[0]->id);
		if (faults_take(FAULT_HANG_RUN, NULL)) {
			log_warn("fault injection: run hangs");
			faults_hang();
		}
		if (faults_take(FAULT_SLOW_MS, &slow))
			sleep_ms((double)slow);
		ctx->runner->run(ctx->rstate, live, n_live, ctx);
		progress_end(ctx->progress);
	}
	for (size_t i = 0; i < n; i++) {
		struct runner_task *t = &tasks[i];
		if (!t->answered)
			runner_reply_error(ctx, t, 500, NULL, "runner %s did not answer the task",
					   ctx->runner->name);
		json_decref(t->params);
		if (t->in_fd >= 0)
			close(t->in_fd);
	}
	free(live);
	free(tasks);
}

static void send_ready(struct runner_ctx *ctx)
{
	json_t *o = json_pack("{s:s,s:s,s:s,s:I,s:b,s:b,s:i,s:s}", "runner", ctx->runner->name,
			      "model", ctx->info.model, "device", ctx->info.device, "services",
			      (json_int_t)ctx->info.services, "deep_supported",
			      ctx->info.deep_supported && ctx->runner->deep_probe, "synthetic_weights",
			      ctx->info.synthetic_weights, "max_batch", ctx->info.max_batch,
			      "device_ids", ctx->dev.ids);
	char *text;

	if (ctx->info.voices[0])
		json_object_set_new(o, "voices", json_string(ctx->info.voices));
	if (ctx->info.default_voice[0])
		json_object_set_new(o, "default_voice", json_string(ctx->info.default_voice));
	text = json_dumps(o, JSON_COMPACT);
	ctx_send(ctx, IPC_READY, 0, 0, 0, text, strlen(text), NULL, 0, -1);
	free(text);
	json_decref(o);
}

static int warm_up(struct runner_ctx *ctx)
{
	char err[512] = "";
	int r;

	ctx->dev.ops = ctx->cfg->model_runner == RUNNER_MOCK ? &device_mock_ops : &device_cpu_ops;
	progress_set_phase(ctx->progress, PHASE_DEVICE_OPEN);
	r = ctx->dev.ops->open(&ctx->dev, err, sizeof(err));
	if (r < 0) {
		log_error("device %s open failed: %s", ctx->dev.ids, err);
		return WORKER_EXIT_DEVICE;
	}
	ctx->runner = runner_find(ctx->cfg->model_runner);
	if (!ctx->runner) {
		log_error("runner %s is not built into this binary",
			  runner_kind_name(ctx->cfg->model_runner));
		return WORKER_EXIT_WARMUP;
	}
	progress_set_phase(ctx->progress, PHASE_MODEL_LOAD);
	r = ctx->runner->open(ctx->cfg, &ctx->dev, &ctx->rstate, err, sizeof(err));
	if (r < 0) {
		log_error("runner %s open failed: %s", ctx->runner->name, err);
		return WORKER_EXIT_WARMUP;
	}
	ctx->info.max_batch = ctx->cfg->max_batch_size;
	progress_set_phase(ctx->progress, PHASE_WARMUP);
	r = ctx->runner->warmup(ctx->rstate, &ctx->info, err, sizeof(err));
	if (r < 0) {
		log_error("runner %s warmup failed: %s", ctx->runner->name, err);
		return WORKER_EXIT_WARMUP;
	}
	if (ctx->runner->deep_probe && ctx->info.deep_supported) {
		progress_set_phase(ctx->progress, PHASE_GOLDEN);
		r = ctx->runner->deep_probe(ctx->rstate, &ctx->golden, err, sizeof(err));
		if (r < 0) {
			log_error("golden deep-probe replay failed: %s", err);
			return WORKER_EXIT_WARMUP;
		}
		ctx->have_golden = 1;
	}
	log_info("warmed up: runner %s, model %s, device %s, deep probe %s", ctx->runner->name,
		 ctx->info.model, ctx->info.device, ctx->have_golden ? "supported" : "unsupported");
	return 0;
}

static void *exec_main(void *arg)
{
	struct runner_ctx *ctx = arg;
	int r = warm_up(ctx);

	if (r)
		_exit(r);
	faults_open_gate();
	progress_set_phase(ctx->progress, PHASE_READY);
	send_ready(ctx);
	for (;;) {
		struct exec_item *it = queue_pop(ctx);

		if (it->hdr.type == IPC_SHUTDOWN) {
			item_free(it);
			break;
		}
		if (it->hdr.type == IPC_PROBE) {
			run_probe(ctx, it);
			item_free(it);
			continue;
		}
		/* IPC_TASK: gather the batch */
		struct exec_item *batch[64];
		size_t n = 0;
		batch[n++] = it;
		while ((it->hdr.flags & IPC_F_BATCH_MORE) && n < ARRAY_SIZE(batch)) {
			it = queue_pop(ctx);
			if (it->hdr.type != IPC_TASK) { /* protocol slip: run what we have */
				queue_push(ctx, it);
				break;
			}
			batch[n++] = it;
		}
		run_batch(ctx, batch, n);
		for (size_t i = 0; i < n; i++)
			item_free(batch[i]);
	}
	if (ctx->runner && ctx->runner->close)
		ctx->runner->close(ctx->rstate);
	if (ctx->dev.ops && ctx->dev.ops->close)
		ctx->dev.ops->close(&ctx->dev);
	log_info("worker stopped");
	exit(WORKER_EXIT_OK);
	return NULL;
}

/* Faults that arrive before warmup finished wait until the golden digest
 * is taken (a corrupt_deep must corrupt probes, not the reference). */
static struct {
	pthread_mutex_t lock;
	int ready;
	struct buf pending; /* concatenated "len:payload" records */
} g_faults = {PTHREAD_MUTEX_INITIALIZER, 0, {NULL, 0, 0, 1 << 16}};

static void apply_fault_now(const char *payload, size_t len);

static void apply_fault(const char *payload, size_t len)
{
	pthread_mutex_lock(&g_faults.lock);
	if (!g_faults.ready) {
		uint32_t n = (uint32_t)len;
		if (buf_append(&g_faults.pending, &n, sizeof(n)) == 0 &&
		    buf_append(&g_faults.pending, payload, len) == 0)
			log_info("fault injection: deferred until warmup has finished");
		pthread_mutex_unlock(&g_faults.lock);
		return;
	}
	pthread_mutex_unlock(&g_faults.lock);
	apply_fault_now(payload, len);
}

static void faults_open_gate(void)
{
	pthread_mutex_lock(&g_faults.lock);
	g_faults.ready = 1;
	for (size_t off = 0; off + sizeof(uint32_t) <= g_faults.pending.len;) {
		uint32_t n;
		memcpy(&n, g_faults.pending.data + off, sizeof(n));
		off += sizeof(n);
		apply_fault_now(g_faults.pending.data + off, n);
		off += n;
	}
	buf_release(&g_faults.pending);
	pthread_mutex_unlock(&g_faults.lock);
}

static void apply_fault_now(const char *payload, size_t len)
{
	json_t *o;
	const char *name = NULL;
	json_int_t value = 0, count = 0;
	int kind;

	if (len == 0) {
		faults_clear();
		log_info("fault injection: all faults cleared");
		return;
	}
	o = json_loadb(payload, len, 0, NULL);
	if (!o || json_unpack(o, "{s:s,s?I,s?I}", "fault", &name, "value", &value, "count",
			      &count) < 0 ||
	    (kind = fault_parse(name)) < 0) {
		log_warn("fault injection: ignoring malformed fault frame");
		json_decref(o);
		return;
	}
	faults_set((enum fault_kind)kind, value, count);
	log_warn("fault injection: %s set (value %lld, count %lld)", name, (long long)value,
		 (long long)count);
	json_decref(o);
}

static void cancel_add(struct runner_ctx *ctx, uint64_t id)
{
	pthread_mutex_lock(&ctx->lock);
	ctx->cancelled[ctx->cancel_next++ % CANCEL_RING] = id;
	pthread_mutex_unlock(&ctx->lock);
}

int worker_main(const struct config *cfg, const char *worker_id, int incarnation, int ipc_fd,
		int progress_fd)
{
	static struct runner_ctx ctx;
	struct ipc_reader rd;
	pthread_t exec;
	char hello[64];

	log_init("worker", worker_id, (enum log_level)cfg->log_level);
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() == 1)
		return WORKER_EXIT_IPC;
	signal(SIGPIPE, SIG_IGN);
	memset(&ctx, 0, sizeof(ctx));
	ctx.cfg = cfg;
	ctx.sock = ipc_fd;
	pthread_mutex_init(&ctx.send_lock, NULL);
	pthread_mutex_init(&ctx.lock, NULL);
	pthread_cond_init(&ctx.cond, NULL);
	snprintf(ctx.dev.ids, sizeof(ctx.dev.ids), "%s", worker_id);
	ctx.dev.incarnation = incarnation;
	if (cfg->worker_threads > 0) {
		ctx.dev.threads = cfg->worker_threads;
	} else {
		/* the machine's cores shared between the workers */
		cpu_set_t set;
		long cores = sysconf(_SC_NPROCESSORS_ONLN);
		if (sched_getaffinity(0, sizeof(set), &set) == 0)
			cores = CPU_COUNT(&set); /* respects cpusets (containers) */
		ctx.dev.threads = (int)MAX(1, cores / MAX(1, cfg->n_devices));
	}
	if (progress_map(progress_fd, &ctx.progress) < 0) {
		log_error("cannot map the progress page");
		return WORKER_EXIT_USAGE;
	}
	/* BLIS reads its environment once: settle it while this process is
	 * still single-threaded (dit_kernels_init may setenv BLIS_ARCH_TYPE) */
	if (cfg->model_runner == RUNNER_DIT)
		dit_kernels_init();
	snprintf(hello, sizeof(hello), "{\"pid\":%d}", (int)getpid());
	ctx_send(&ctx, IPC_HELLO, 0, 0, 0, hello, strlen(hello), NULL, 0, -1);
	if (pthread_create(&exec, NULL, exec_main, &ctx) != 0) {
		log_error("cannot start the execution thread");
		return WORKER_EXIT_USAGE;
	}
	ipc_reader_init(&rd);
	for (;;) {
		struct ipc_frame f;
		int r;

		while ((r = ipc_reader_next(&rd, &f)) == 1) {
			switch (f.hdr.type) {
			case IPC_TASK:
			case IPC_PROBE:
			case IPC_SHUTDOWN: {
				struct exec_item *it = xcalloc(1, sizeof(*it));
				it->hdr = f.hdr;
				it->payload = xmalloc(f.hdr.len + 1);
				memcpy(it->payload, f.payload, f.hdr.len);
				it->payload[f.hdr.len] = 0;
				it->fd = f.fd;
				queue_push(&ctx, it);
				break;
			}
			case IPC_FAULT:
				apply_fault(f.payload, f.hdr.len);
				break;
			case IPC_CANCEL:
				cancel_add(&ctx, f.hdr.id);
				break;
			default:
				log_warn("ignoring unexpected frame %s", ipc_type_name(f.hdr.type));
				if (f.fd >= 0)
					close(f.fd);
			}
		}
		if (r < 0) {
			log_error("corrupt frame from the supervisor; exiting");
			_exit(WORKER_EXIT_IPC);
		}
		ssize_t n = ipc_reader_fill(&rd, ipc_fd);
		if (n == 0) {
			/* supervisor gone: nothing left to serve */
			_exit(WORKER_EXIT_OK);
		}
		if (n == -EAGAIN) {
			struct pollfd pfd = {.fd = ipc_fd, .events = POLLIN};
			poll(&pfd, 1, -1);
			continue;
		}
		if (n < 0) {
			log_error("reading from the supervisor failed: %s", strerror((int)-n));
			_exit(WORKER_EXIT_IPC);
		}
	}
}
