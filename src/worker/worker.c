/* worker/worker.c: the worker process: the reader thread, the execution
 * thread and the hooks behind the runners' context. See worker.h.
 *
 * Layers: this file calls the registry row config.c resolved
 * (runners/registry.h), the runner's ops, the device's ops and
 * worker/runner_ctx.c; none of those calls back into it except through the
 * runner_ctx hooks it installs. */
#include "worker/worker.h"

#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "device.h"
#include "faults.h"
#include "ipc.h"
#include "log.h"
#include "progress.h"
#include "runner.h"
#include "runners/registry.h"
#include "util.h"
#include "worker/runner_ctx.h"

struct exec_item {
	struct exec_item *next;
	struct ipc_hdr hdr;
	char *payload;
	int fd;
};

#define CANCEL_RING 256

static void faults_open_gate(void);

/* The worker process's state: one per process. */
struct worker_state {
	const struct config *cfg;
	struct runner_ctx rctx; /* what the runner answers through (owner: this) */
	int sock;
	pthread_mutex_t send_lock;
	struct progress_page *progress;

	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct exec_item *head, *tail;
	int stopping;

	uint64_t cancelled[CANCEL_RING];
	unsigned cancel_next;

	struct mediad_device dev;
	struct device_plugin plugin; /* DEVICE_PLUGIN's handle, when one is used */
	const struct runner_ops *runner;
	void *rstate;
	struct runner_info info;
	uint64_t golden;
	int have_golden;
};

static void ctx_send(struct worker_state *ctx, uint16_t type, uint32_t flags, uint32_t aux,
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

/* --- the hooks behind the runners' context (worker/runner_ctx.h) --- */

static void hook_progress(void *owner)
{
	struct worker_state *ctx = owner;

	progress_step(ctx->progress);
}

static int hook_cancelled(void *owner, uint64_t task_id)
{
	struct worker_state *ctx = owner;
	int hit = 0;

	pthread_mutex_lock(&ctx->lock);
	for (unsigned i = 0; i < CANCEL_RING; i++)
		if (ctx->cancelled[i] == task_id)
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

/* Large bodies go through a memfd. */
static void hook_result(void *owner, uint64_t task_id, int status, const char *ctype,
			struct buf *body)
{
	struct worker_state *ctx = owner;
	size_t clen = strlen(ctype) + 1;

	if (body->len > IPC_INLINE_MAX) {
		int fd = body_to_memfd(body);
		if (fd >= 0) {
			ctx_send(ctx, IPC_RESULT, 0, (uint32_t)status, task_id, ctype, clen, NULL, 0,
				 fd);
			buf_release(body);
			return;
		}
	}
	ctx_send(ctx, IPC_RESULT, 0, (uint32_t)status, task_id, ctype, clen, body->data,
		 body->len, -1);
	buf_release(body);
}

static void hook_chunk(void *owner, uint64_t task_id, const char *ctype, const void *data,
		       size_t len)
{
	ctx_send(owner, IPC_CHUNK, 0, 200, task_id, ctype, strlen(ctype) + 1, data, len, -1);
}

static void hook_end(void *owner, uint64_t task_id)
{
	ctx_send(owner, IPC_END, 0, 200, task_id, NULL, 0, NULL, 0, -1);
}

static const struct runner_ctx_hooks worker_hooks = {
	.progress = hook_progress,
	.cancelled = hook_cancelled,
	.result = hook_result,
	.chunk = hook_chunk,
	.end = hook_end,
};

/* --- execution queue --- */

static void queue_push(struct worker_state *ctx, struct exec_item *it)
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

static struct exec_item *queue_pop(struct worker_state *ctx)
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

static void send_probe_result(struct worker_state *ctx, const struct exec_item *it,
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

static void run_probe(struct worker_state *ctx, const struct exec_item *it)
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

static void run_batch(struct worker_state *ctx, struct exec_item **items, size_t n)
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
		if (runner_cancelled(&ctx->rctx, t)) {
			/* every task gets one final answer, so the supervisor
			 * knows this worker is done with it */
			runner_reply_error(&ctx->rctx, t, 499, NULL, "cancelled before it ran");
			continue;
		}
		t->params = json_loadb(items[i]->payload, items[i]->hdr.len, 0, &jerr);
		if (!t->params || !json_is_object(t->params)) {
			runner_reply_error(&ctx->rctx, t, 500, NULL, "worker received malformed params: %s",
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
		ctx->runner->run(ctx->rstate, live, n_live, &ctx->rctx);
		progress_end(ctx->progress);
	}
	for (size_t i = 0; i < n; i++) {
		struct runner_task *t = &tasks[i];
		if (!t->answered)
			runner_reply_error(&ctx->rctx, t, 500, NULL, "runner %s did not answer the task",
					   ctx->runner->name);
		json_decref(t->params);
		if (t->in_fd >= 0)
			close(t->in_fd);
	}
	free(live);
	free(tasks);
}

static void send_ready(struct worker_state *ctx)
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

/* The device's ops: DEVICE_PLUGIN's when set, else the DEVICE row (or the
 * runner's default device). 0 or -errno with err filled. */
static int device_choose(struct worker_state *ctx, char *err, size_t errlen)
{
	const char *name = config_device_name(ctx->cfg);

	if (ctx->cfg->device_plugin[0]) {
		int r = device_plugin_open(&ctx->plugin, ctx->cfg->device_plugin, err, errlen);
		if (r < 0)
			return r;
		ctx->dev.ops = ctx->plugin.ops;
		return 0;
	}
	ctx->dev.ops = device_find(name);
	if (!ctx->dev.ops) {
		snprintf(err, errlen, "no device backend called %s", name);
		return -ENOENT;
	}
	return 0;
}

static int warm_up(struct worker_state *ctx)
{
	char err[512] = "";
	int r;

	progress_set_phase(ctx->progress, PHASE_DEVICE_OPEN);
	r = device_choose(ctx, err, sizeof(err));
	if (r == 0)
		r = ctx->dev.ops->open(&ctx->dev, err, sizeof(err));
	if (r < 0) {
		log_error("device %s open failed: %s", ctx->dev.ids, err);
		return WORKER_EXIT_DEVICE;
	}
	/* The restart path: a worker started after another one died on this
	 * device resets it before use, when the backend can. */
	if (ctx->dev.incarnation > 0 && ctx->dev.ops->reset) {
		r = ctx->dev.ops->reset(&ctx->dev);
		if (r < 0) {
			log_error("device %s (%s) reset failed: %s", ctx->dev.ids,
				  ctx->dev.ops->name, strerror(-r));
			return WORKER_EXIT_DEVICE;
		}
		log_info("device %s (%s) reset (incarnation %d)", ctx->dev.ids, ctx->dev.ops->name,
			 ctx->dev.incarnation);
	}
	ctx->runner = ctx->cfg->model_runner->ops;
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
	struct worker_state *ctx = arg;
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
	device_plugin_close(&ctx->plugin);
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

static void cancel_add(struct worker_state *ctx, uint64_t id)
{
	pthread_mutex_lock(&ctx->lock);
	ctx->cancelled[ctx->cancel_next++ % CANCEL_RING] = id;
	pthread_mutex_unlock(&ctx->lock);
}

int worker_main(const struct config *cfg, const char *worker_id, int incarnation, int ipc_fd,
		int progress_fd)
{
	static struct worker_state ctx;
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
	runner_ctx_init(&ctx.rctx, &worker_hooks, &ctx, cfg);
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
	/* the runner's setup runs while this process is still single-threaded */
	if (cfg->model_runner->setup && cfg->model_runner->setup(cfg) < 0) {
		log_error("runner %s setup failed", cfg->model_runner->name);
		return WORKER_EXIT_WARMUP;
	}
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
