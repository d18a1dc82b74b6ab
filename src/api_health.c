/* api_health.c: the health and metadata routes: /health (and its aliases),
 * /tt-liveness, /livez, /startupz, /metrics, /v1/models, /v1/config.
 * Everything here reads the supervisor's own state only (serving.c says who
 * may serve), so health answers stay fast whatever the workers are doing. */
#include "api.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "log.h"
#include "runner.h"
#include "server.h"
#include "serving.h"
#include "util.h"
#include "banned.h"

static const char *overall_canary_state(const struct server *s)
{
	/* the worst state across workers; "disabled" when the monitor is off */
	static const int rank[CANARY_STATE_COUNT] = {
		[CANARY_DISABLED] = 0, [CANARY_HEALTHY] = 1, [CANARY_PROBING] = 2,
		[CANARY_STARTING] = 3, [CANARY_SUSPECT] = 4,  [CANARY_DEAD] = 5,
	};
	enum canary_state worst = s->cfg->canary_enabled ? CANARY_HEALTHY : CANARY_DISABLED;

	for (int i = 0; i < s->n_workers; i++) {
		enum canary_state st = s->workers[i].canary.state;
		if (rank[st] > rank[worst])
			worst = st;
	}
	return canary_state_name(worst);
}

static int canary_alive(const struct server *s)
{
	for (int i = 0; i < s->n_workers; i++)
		if (s->workers[i].canary.state == CANARY_DEAD)
			return 0;
	return 1;
}

void api_health_body(struct server *s, struct buf *out, int *status)
{
	int ready = serving_ready_workers(s);

	if (serving_is_serving(s)) {
		*status = 200;
		buf_printf(out, "{\"status\":\"healthy\",\"model_ready\":true,\"ready_workers\":%d,"
				"\"workers\":%d,\"canary_state\":\"%s\"}",
			   ready, s->n_workers, overall_canary_state(s));
		return;
	}
	char why[768];
	serving_reason(s, why, sizeof(why));
	*status = 503;
	buf_printf(out, "{\"status\":\"unhealthy\",\"model_ready\":false,\"ready_workers\":%d,"
			"\"workers\":%d,\"canary_state\":\"%s\",\"error\":",
		   ready, s->n_workers, overall_canary_state(s));
	buf_json_str(out, why);
	buf_puts(out, "}");
}

static void put_time(struct buf *out, double t)
{
	if (t > 0)
		buf_printf(out, "%.3f", t);
	else
		buf_puts(out, "null");
}

/* The wall clock minus the monotonic one, to the millisecond, so that a body
 * and its cache key see the same value. */
static double mono_to_wall_ms(void)
{
	return (double)llround((wall_s() - now_s()) * 1000.0) / 1000.0;
}

static void liveness_body(struct server *s, struct buf *out, int *status, double mono_to_wall)
{
	int serving = serving_is_serving(s);
	const char *runner = s->workers[0].runner[0] ? s->workers[0].runner
						      : s->cfg->model_runner->name;

	*status = serving ? 200 : 503;
	buf_printf(out, "{\"status\":\"alive\",\"model_ready\":%s,\"queue_size\":%d,"
			"\"max_queue_size\":%d,\"device_mesh_shape\":[1,%d],\"device\":",
		   serving ? "true" : "false", sched_waiting(&s->sched), s->cfg->max_queue_size,
		   s->n_workers);
	buf_json_str(out, s->workers[0].device[0] ? s->workers[0].device
		      : config_device_name(s->cfg));
	buf_puts(out, ",\"runner_in_use\":");
	buf_json_str(out, runner);
	buf_printf(out, ",\"canary_alive\":%s,\"canary_state\":\"%s\",\"ready_workers\":%d,"
			"\"min_ready_workers\":%d,\"worker_info\":{",
		   canary_alive(s) ? "true" : "false", overall_canary_state(s),
		   serving_ready_workers(s), s->cfg->min_ready_workers);
	for (int i = 0; i < s->n_workers; i++) {
		const struct worker *w = &s->workers[i];
		const struct canary *c = &w->canary;
		if (i)
			buf_puts(out, ",");
		buf_json_str(out, w->id);
		buf_puts(out, ":{\"worker_id\":");
		buf_json_str(out, w->id);
		buf_printf(out, ",\"pid\":%d,\"is_alive\":%s,\"is_ready\":%s,\"state\":\"%s\","
				"\"start_time\":",
			   (int)w->pid, w->pid > 0 ? "true" : "false",
			   serving_worker_ready(s, w) ? "true" : "false", serving_worker_state_name(w->state));
		put_time(out, w->start_wall);
		buf_puts(out, ",\"ready_time\":");
		put_time(out, w->ready_wall);
		buf_printf(out, ",\"restart_count\":%d,\"error_count\":%d,\"canary_state\":\"%s\","
				"\"misses\":{\"shallow\":%d,\"deep\":%d,\"progress\":%d},"
				"\"last_probe_ok\":",
			   w->restart_count, w->error_count, canary_state_name(c->state),
			   c->misses[CANARY_TIER_SHALLOW], c->misses[CANARY_TIER_DEEP],
			   c->misses[CANARY_TIER_PROGRESS]);
		put_time(out, c->last_probe_ok >= 0 ? c->last_probe_ok + mono_to_wall : 0);
		buf_printf(out, ",\"deep\":\"%s\",\"in_flight\":%d",
			   w->state != W_READY ? "unknown"
			   : !w->deep_supported ? "unsupported"
			   : s->cfg->canary_deep_probe_enabled ? "enabled" : "disabled",
			   s->sched.workers[i].n_inflight);
		if (c->state == CANARY_DEAD || c->state == CANARY_SUSPECT) {
			char why[200];
			canary_describe(c, why, sizeof(why));
			buf_puts(out, ",\"canary_reason\":");
			buf_json_str(out, why);
		}
		if (w->down_reason[0] && w->state != W_READY) {
			buf_puts(out, ",\"reason\":");
			buf_json_str(out, w->down_reason);
		}
		buf_puts(out, "}");
	}
	buf_puts(out, "}");
	if (!serving) {
		char why[768];
		serving_reason(s, why, sizeof(why));
		buf_puts(out, ",\"error\":");
		buf_json_str(out, why);
	}
	buf_puts(out, "}");
}

void api_liveness_body(struct server *s, struct buf *out, int *status)
{
	liveness_body(s, out, status, mono_to_wall_ms());
}

/* --- cached bodies ---
 * /health and /tt-liveness are polled by every probe and load balancer, and
 * formatting the liveness body (floats, strings per worker) cost more than
 * the rest of the request. The key below lists every value the two bodies
 * are made from; while it is unchanged the last body is sent again. Anything
 * a body starts to show must be added here too: SANITIZE builds
 * (make check-san) rebuild the body on every request and abort on a
 * difference, so a forgotten input fails the black-box suite. */
struct keyb {
	struct body_cache *c;
	uint64_t k[BODY_KEY_MAX];
	int n;
};

static void kput(struct keyb *kb, uint64_t v)
{
	if (kb->n < BODY_KEY_MAX)
		kb->k[kb->n] = v;
	kb->n++;
}

static void kputd(struct keyb *kb, double d)
{
	uint64_t u;
	memcpy(&u, &d, sizeof(u));
	kput(kb, u);
}

static void kputs(struct keyb *kb, const char *str)
{
	kput(kb, XXH3_64bits(str, strlen(str)));
}

static void state_key(struct server *s, struct keyb *kb)
{
	kput(kb, (uint64_t)s->draining);
	kput(kb, (uint64_t)s->ever_ready);
	kput(kb, (uint64_t)s->n_workers);
	for (int i = 0; i < s->n_workers; i++) {
		const struct worker *w = &s->workers[i];
		const struct canary *c = &w->canary;
		kput(kb, (uint64_t)w->state);
		kput(kb, (uint64_t)serving_worker_ready(s, w));
		kput(kb, (uint64_t)w->stalled);
		kput(kb, (uint64_t)w->warmup_overdue);
		kput(kb, (uint64_t)c->state);
		kput(kb, (uint64_t)c->cause_tier);
		kput(kb, (uint64_t)c->cause_outcome);
		kput(kb, (uint64_t)c->probe.tier);
		for (int t = 0; t < CANARY_TIER_COUNT; t++)
			kput(kb, (uint64_t)c->misses[t]);
		kputs(kb, w->id);
		kputs(kb, w->down_reason);
	}
}

#ifdef MEDIAD_SELF_CHECK
static void self_check(const struct body_cache *c, const struct buf *fresh, int status,
		       const char *what)
{
	if (status == c->status && fresh->len == c->body.len &&
	    memcmp(fresh->data, c->body.data, fresh->len) == 0)
		return;
	log_error("self-check: cached %s body is stale (its key misses an input)\ncached %d "
		  "%.*s\nfresh  %d %.*s", what, c->status, (int)c->body.len, c->body.data, status,
		  (int)fresh->len, fresh->data);
	abort();
}
#endif

typedef void body_fn(struct server *s, struct buf *out, int *status, double mono_to_wall);

/* The cached body for kb's key: rebuilt with build when the key changed. */
static const struct buf *cached_body(struct server *s, struct keyb *kb, body_fn *build,
				     double mono_to_wall, const char *what, int *status)
{
	struct body_cache *c = kb->c;

	if (!c->valid || kb->n > BODY_KEY_MAX || c->n != kb->n ||
	    memcmp(c->key, kb->k, (size_t)kb->n * sizeof(uint64_t))) {
		if (!c->body.max)
			buf_init(&c->body, BUF_UNLIMITED);
		buf_reset(&c->body);
		build(s, &c->body, &c->status, mono_to_wall);
		c->valid = kb->n <= BODY_KEY_MAX;
		c->n = kb->n;
		if (c->valid)
			memcpy(c->key, kb->k, (size_t)kb->n * sizeof(uint64_t));
	}
#ifdef MEDIAD_SELF_CHECK
	else {
		struct buf fresh;
		int st = 200;
		buf_init(&fresh, BUF_UNLIMITED);
		build(s, &fresh, &st, mono_to_wall);
		self_check(c, &fresh, st, what);
		buf_release(&fresh);
	}
#endif
	*status = c->status;
	return &c->body;
}

static void health_body(struct server *s, struct buf *out, int *status, double mono_to_wall)
{
	api_health_body(s, out, status);
}

const struct buf *api_health_cached(struct server *s, int *status)
{
	struct keyb kb;

	kb.c = &s->health_cache;
	kb.n = 0; /* k[] is filled up to n: no need to clear its 4 KB */
	state_key(s, &kb);
	return cached_body(s, &kb, health_body, 0, "/health", status);
}

const struct buf *api_liveness_cached(struct server *s, int *status)
{
	struct keyb kb;
	double mono_to_wall = mono_to_wall_ms();

	kb.c = &s->liveness_cache;
	kb.n = 0;
	state_key(s, &kb);
	kputd(&kb, mono_to_wall);
	kput(&kb, (uint64_t)sched_waiting(&s->sched));
	for (int i = 0; i < s->n_workers; i++) {
		const struct worker *w = &s->workers[i];
		kput(&kb, (uint64_t)w->pid);
		kput(&kb, (uint64_t)w->restart_count);
		kput(&kb, (uint64_t)w->error_count);
		kput(&kb, (uint64_t)w->deep_supported);
		kput(&kb, (uint64_t)s->sched.workers[i].n_inflight);
		kputd(&kb, w->start_wall);
		kputd(&kb, w->ready_wall);
		kputd(&kb, w->canary.last_probe_ok);
		kputs(&kb, w->runner);
		kputs(&kb, w->device);
	}
	return cached_body(s, &kb, liveness_body, mono_to_wall, "/tt-liveness", status);
}

void api_cache_free(struct server *s)
{
	buf_release(&s->health_cache.body);
	buf_release(&s->liveness_cache.body);
	s->health_cache.valid = s->liveness_cache.valid = 0;
}

/* --- routes --- */

static void update_gauges(struct server *s)
{
	const char *model = s->model_type;

	metrics_set(s->m_queue, NULL, sched_waiting(&s->sched));
	metrics_clear(s->m_canary_state);
	for (int i = 0; i < s->n_workers; i++) {
		struct worker *w = &s->workers[i];
		const char *lw[] = {w->id};
		metrics_set(s->m_ready, lw, serving_worker_ready(s, w));
		metrics_set(s->m_alive, lw, w->pid > 0);
		metrics_set(s->m_inflight, lw, s->sched.workers[i].n_inflight);
		metrics_set(s->m_deep_supported, lw, w->deep_supported);
		double stall = 0;
		if (w->canary.busy > 0)
			stall = now_s() - w->canary.progress_at;
		metrics_set(s->m_stall, lw, stall);
		for (int st = 0; st < CANARY_STATE_COUNT; st++) {
			const char *lc[] = {model, w->id, canary_state_name((enum canary_state)st)};
			metrics_set(s->m_canary_state, lc, w->canary.state == (enum canary_state)st);
		}
	}
}

static void reply_body(struct server *s, struct hreq *h, const struct buf *body, int status)
{
	http_reply_copy(s, h, status, "application/json", body->data, body->len);
}

void api_health(struct server *s, struct hreq *h)
{
	int status = 200;
	const struct buf *body = api_health_cached(s, &status);

	reply_body(s, h, body, status);
}

void api_liveness(struct server *s, struct hreq *h)
{
	int status = 200;
	const struct buf *body = api_liveness_cached(s, &status);

	reply_body(s, h, body, status);
}

void api_livez(struct server *s, struct hreq *h)
{
	struct buf b;
	int status = 200;

	buf_init(&b, BUF_UNLIMITED);
	if (serving_recoverable(s)) {
		buf_puts(&b, "{\"status\":\"alive\"}");
	} else {
		status = 503;
		buf_puts(&b, "{\"status\":\"dead\",\"error\":\"no worker can recover: restart "
			     "budget exhausted on every worker\"}");
	}
	http_reply_buf(s, h, status, "application/json", &b);
}

void api_startupz(struct server *s, struct hreq *h)
{
	struct buf b;
	int status = 200;

	buf_init(&b, BUF_UNLIMITED);
	if (s->ever_ready) {
		buf_puts(&b, "{\"phase\":\"started\"}");
	} else {
		int warming = 0;
		for (int i = 0; i < s->n_workers; i++)
			if (s->workers[i].state == W_WARMING)
				warming = 1;
		status = 503;
		buf_printf(&b, "{\"phase\":\"%s\",\"elapsed_s\":%.3f}",
			   warming ? "warming_up" : "starting_workers", now_s() - s->started_mono);
	}
	http_reply_buf(s, h, status, "application/json", &b);
}

void api_metrics(struct server *s, struct hreq *h)
{
	struct buf b;

	buf_init(&b, BUF_UNLIMITED);
	update_gauges(s);
	metrics_render(s->metrics, &b);
	http_reply_buf(s, h, 200, "text/plain; version=0.0.4; charset=utf-8", &b);
}

void api_models(struct server *s, struct hreq *h)
{
	const char *model = s->workers[0].model[0] ? s->workers[0].model
		: (s->cfg->model_name[0] ? s->cfg->model_name : "mediad-mock");
	json_t *o = json_pack("{s:s,s:[{s:s,s:s,s:I,s:s,s:s,s:b}]}", "object", "list", "data",
			      "id", model, "object", "model", "created",
			      (json_int_t)s->started_wall, "owned_by", "mediad", "runner",
			      s->cfg->model_runner->name, "synthetic_weights",
			      s->workers[0].synthetic_weights);

	http_reply_json(s, h, 200, o);
	json_decref(o);
}

void api_config(struct server *s, struct hreq *h)
{
	struct buf b;

	buf_init(&b, BUF_UNLIMITED);
	config_dump_json(s->cfg, &b);
	http_reply_buf(s, h, 200, "application/json", &b);
}
