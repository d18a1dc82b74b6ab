/* monitor.c: the canary driver (see monitor.h). canary.c decides; this
 * file feeds it, sends its probes, counts and logs what it decided, and
 * acts on a dead worker. */
#include "monitor.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <systemd/sd-daemon.h>

#include "children.h"
#include "log.h"
#include "requests.h"
#include "server.h"
#include "serving.h"
#include "util.h"
#include "banned.h"

static void monitor_settle(struct server *s, struct worker *w);
static void on_dead(struct server *s, struct worker *w);
static void log_transition(struct server *s, struct worker *w,
			   const struct canary_transition *t);

static void canary_settings_from(const struct config *cfg, struct canary_settings *cs)
{
	cs->enabled = cfg->canary_enabled;
	cs->deep_enabled = cfg->canary_deep_probe_enabled;
	cs->wait_s = cfg->canary_wait_seconds;
	cs->probe_timeout_s = cfg->canary_probe_timeout_seconds;
	cs->deep_timeout_s = cfg->canary_deep_probe_timeout_seconds;
	cs->grace_s = cfg->canary_startup_grace_seconds;
	cs->progress_timeout_s = cfg->canary_progress_timeout_seconds;
	cs->dead_misses = cfg->canary_dead_misses;
	cs->deep_every_n = cfg->canary_deep_every_n;
}

void monitor_init(struct server *s)
{
	struct canary_settings cs;

	canary_settings_from(s->cfg, &cs);
	for (int i = 0; i < s->n_workers; i++)
		canary_init(&s->workers[i].canary, &cs);
}

void monitor_worker_ready(struct server *s, struct worker *w)
{
	w->canary.set.deep_enabled = s->cfg->canary_deep_probe_enabled && w->deep_supported;
	w->n_orphans = 0;
	canary_worker_ready(&w->canary, now_s());
	monitor_settle(s, w);
	if (!s->ever_ready && serving_is_serving(s)) {
		s->ever_ready = 1;
		sd_notify(0, "READY=1\nSTATUS=serving");
		log_info("serving: %d of %d workers ready", serving_ready_workers(s), s->n_workers);
	} else if (serving_is_serving(s)) {
		s->ever_ready = 1;
	}
}

void monitor_worker_lost(struct server *s, struct worker *w)
{
	w->n_orphans = 0;
	canary_worker_lost(&w->canary, now_s());
	monitor_settle(s, w);
}

void monitor_settle_all(struct server *s)
{
	for (int i = 0; i < s->n_workers && !s->stop; i++)
		monitor_settle(s, &s->workers[i]);
}

/* Act on the canary's state changes at once (not at the next tick): log
 * each transition, update who may get work, and apply the on-dead policy
 * on a dead edge. Called after every event that feeds the canary. */
static void monitor_settle(struct server *s, struct worker *w)
{
	struct canary_transition tr[CANARY_RING];
	int n = canary_drain_transitions(&w->canary, tr, CANARY_RING);
	int dead_edge = 0;

	for (int i = 0; i < n; i++) {
		log_transition(s, w, &tr[i]);
		if (tr[i].to == CANARY_DEAD && tr[i].from != CANARY_DEAD)
			dead_edge = 1;
	}
	serving_update_dispatch(s);
	/* act only if it is still dead: only progress made after the miss or a
	 * success of the failing tier revives a worker (canary.h), and that
	 * means it works; a stale progress reading no longer does */
	if (dead_edge && w->canary.state == CANARY_DEAD)
		on_dead(s, w);
}

static enum canary_outcome outcome_parse(const char *s)
{
	if (!s)
		return CANARY_ERROR;
	if (!strcmp(s, "ok"))
		return CANARY_OK;
	if (!strcmp(s, "mismatch"))
		return CANARY_MISMATCH;
	if (!strcmp(s, "timeout"))
		return CANARY_TIMEOUT;
	return CANARY_ERROR;
}

static void record_probe_metrics(struct server *s, struct worker *w, enum canary_tier tier,
				 enum canary_outcome out, double latency)
{
	const char *model = s->model_type;
	const char *depth = canary_tier_name(tier);
	const char *lp[] = {w->id, depth, canary_outcome_name(out)};
	const char *lc[] = {model, w->id, depth};

	metrics_add(s->m_probes, lp, 1);
	if (out == CANARY_MISMATCH || out == CANARY_TIMEOUT || out == CANARY_ERROR)
		metrics_add(s->m_canary_fail, lc, 1);
	if (out == CANARY_OK || out == CANARY_MISMATCH || out == CANARY_ERROR)
		metrics_observe(s->m_canary_lat, lc, latency);
	if (out == CANARY_OK) {
		const char *lw[] = {model, w->id};
		metrics_set(s->m_canary_last, lw, wall_s());
	}
}

void monitor_on_probe_result(struct server *s, struct worker *w, const struct ipc_frame *f)
{
	json_t *o = json_loadb(f->payload, f->hdr.len, 0, NULL);
	const char *oc = o ? json_string_value(json_object_get(o, "outcome")) : NULL;
	const char *err = o ? json_string_value(json_object_get(o, "error")) : NULL;
	double lat = o ? json_number_value(json_object_get(o, "latency_s")) : 0;
	enum canary_tier tier = f->hdr.aux == 1 ? CANARY_TIER_DEEP : CANARY_TIER_SHALLOW;
	enum canary_outcome got = outcome_parse(oc);
	enum canary_outcome rec = canary_probe_result(&w->canary, now_s(), f->hdr.id, tier, got, lat);

	record_probe_metrics(s, w, tier, rec, lat);
	if (rec == CANARY_OK && w->stalled)
		w->stalled = 0;
	monitor_settle(s, w);
	if (rec != CANARY_OK && rec != CANARY_LATE)
		log_warn("worker %s %s probe %llu: %s%s%s (%.3f s)", w->id, canary_tier_name(tier),
			 (unsigned long long)f->hdr.id, canary_outcome_name(rec), err ? ": " : "",
			 err ? err : "", lat);
	json_decref(o);
}

static void log_transition(struct server *s, struct worker *w, const struct canary_transition *t)
{
	char fields[256];
	const char *lt[] = {w->id, canary_state_name(t->from), canary_state_name(t->to)};

	metrics_add(s->m_transitions, lt, 1);
	snprintf(fields, sizeof(fields),
		 "\"event\":\"canary_transition\",\"from\":\"%s\",\"to\":\"%s\",\"tier\":\"%s\","
		 "\"outcome\":\"%s\",\"cause\":\"%s\",\"latency_s\":%.6f",
		 canary_state_name(t->from), canary_state_name(t->to), canary_tier_name(t->tier),
		 canary_outcome_name(t->outcome), canary_event_name(t->event), t->latency_s);
	enum log_level lvl = t->to == CANARY_DEAD || t->to == CANARY_SUSPECT ? LOG_WARN : LOG_INFO;
	if ((t->to == CANARY_PROBING && t->from == CANARY_HEALTHY) ||
	    (t->from == CANARY_PROBING && t->to == CANARY_HEALTHY))
		lvl = LOG_DEBUG;
	if (log_enabled(lvl))
		log_write_worker(lvl, w->id, NULL, fields, "worker %s canary %s -> %s (%s %s %s)", w->id,
			  canary_state_name(t->from), canary_state_name(t->to),
			  canary_tier_name(t->tier), canary_event_name(t->event),
			  canary_outcome_name(t->outcome));
}

/* CANARY_ON_DEAD=exit: stop the loop; server_run answers what is left and
 * exits 70. */
static void exit_for_dead_worker(struct server *s, const char *msg)
{
	log_error("%s: CANARY_ON_DEAD=exit, exiting with code 70", msg);
	sd_notify(0, "STOPPING=1\nSTATUS=exiting: a worker is dead (CANARY_ON_DEAD=exit)");
	s->exit_code = 70;
	s->stop = 1;
}

static void on_dead(struct server *s, struct worker *w)
{
	char why[256], msg[400];

	canary_describe(&w->canary, why, sizeof(why));
	snprintf(msg, sizeof(msg), "worker %s %s", w->id, why);
	if (!s->cfg->canary_gate_readiness) {
		log_warn("%s (CANARY_GATE_READINESS=false: reported only, still serving)", msg);
		return;
	}
	requests_fail_worker(s, w, msg);
	switch (s->cfg->canary_on_dead) {
	case ON_DEAD_GATE:
		log_warn("%s: out of rotation until its probes succeed again", msg);
		break;
	case ON_DEAD_RESTART:
		children_kill(s, w, "canary_dead", "canary dead");
		break;
	case ON_DEAD_EXIT:
		exit_for_dead_worker(s, msg);
		break;
	}
}

double monitor_warmup_deadline(const struct worker *w, double timeout_s)
{
	if (timeout_s <= 0 || w->pid <= 0 || w->warmup_overdue || w->kill_label[0])
		return 0;
	if (w->state != W_SPAWNING && w->state != W_WARMING)
		return 0;
	return w->spawn_mono + timeout_s;
}

/* w has been starting or warming up for longer than
 * WORKER_WARMUP_TIMEOUT_SECONDS: it is dead in warmup (a wedged device, a
 * hung model load). The canary cannot see it (it probes ready workers only),
 * so CANARY_ON_DEAD acts here: restart kills it (the respawn is a new warmup
 * with a new deadline, under the restart budget); exit exits 70; gate leaves
 * it running, out of rotation as before, and it joins if READY ever comes.
 * CANARY_GATE_READINESS does not apply: the worker was never ready. */
static void warmup_timed_out(struct server *s, struct worker *w, double now)
{
	static const char *const policy[] = {"gate", "restart", "exit"};
	enum on_dead act = s->cfg->canary_on_dead;
	const char *phase = progress_phase_name(progress_phase(w->progress));
	double elapsed = now - w->spawn_mono;
	const char *lw[] = {w->id};
	char fields[256], msg[256];

	w->warmup_overdue = 1;
	metrics_add(s->m_warmup_timeouts, lw, 1);
	snprintf(w->down_reason, sizeof(w->down_reason),
		 "warmup timed out: not ready after %.1f s (WORKER_WARMUP_TIMEOUT_SECONDS %g), "
		 "phase %s", elapsed, s->cfg->worker_warmup_timeout_seconds, phase);
	snprintf(fields, sizeof(fields),
		 "\"event\":\"warmup_timeout\",\"device_ids\":\"%s\",\"pid\":%d,"
		 "\"elapsed_s\":%.3f,\"timeout_s\":%g,\"phase\":\"%s\",\"action\":\"%s\"",
		 w->id, (int)w->pid, elapsed, s->cfg->worker_warmup_timeout_seconds, phase,
		 policy[act]);
	snprintf(msg, sizeof(msg), "worker %s (devices %s, pid %d) is dead in warmup: not ready "
		 "after %.3f s (WORKER_WARMUP_TIMEOUT_SECONDS %g), phase %s",
		 w->id, w->id, (int)w->pid, elapsed, s->cfg->worker_warmup_timeout_seconds, phase);
	log_write_worker(LOG_ERROR, w->id, NULL, fields, "%s; CANARY_ON_DEAD=%s", msg,
			 policy[act]);
	switch (act) {
	case ON_DEAD_GATE:
		break; /* not ready, so already out of rotation; down_reason says why */
	case ON_DEAD_RESTART: {
		char reason[sizeof(w->down_reason)];
		snprintf(reason, sizeof(reason), "%s", w->down_reason);
		children_kill(s, w, "warmup_timeout", reason);
		break;
	}
	case ON_DEAD_EXIT:
		kill(w->pid, SIGKILL); /* a wedged worker would hold the shutdown 5 s */
		exit_for_dead_worker(s, msg);
		break;
	}
}

void monitor_warmup_due(struct server *s, double now)
{
	if (s->draining)
		return;
	for (int i = 0; i < s->n_workers && !s->stop; i++) {
		struct worker *w = &s->workers[i];
		double due = monitor_warmup_deadline(w, s->cfg->worker_warmup_timeout_seconds);
		if (due > 0 && now >= due)
			warmup_timed_out(s, w, now);
	}
}

static void canary_work(struct server *s, struct worker *w, double now)
{
	struct canary_action a;
	uint64_t steps = atomic_load_explicit(&w->progress->steps, memory_order_acquire);

	if (steps != w->progress_seen) {
		uint64_t step_ns = atomic_load_explicit(&w->progress->last_step_ns,
							memory_order_relaxed);
		w->progress_seen = steps;
		uint64_t at_ns = atomic_load_explicit(&w->progress->last_ns, memory_order_relaxed);
		/* the steps were made at at_ns, maybe before a miss counted since the
		 * last tick: the canary clears misses only for progress after them */
		canary_progress(&w->canary, now, at_ns ? (double)at_ns / 1e9 : now,
				(double)step_ns / 1e9);
		w->stalled = 0;
	}
	/* a channel that is full for a moment is a skip, not a miss; one that has
	 * not drained for a whole probe timeout belongs to a wedged worker: probe
	 * anyway, so the probe times out behind it and counts */
	int channel_full = children_channel_full(w, now, s->cfg->canary_probe_timeout_seconds);
	a = canary_tick(&w->canary, now, channel_full);
	if (a.timed_out)
		record_probe_metrics(s, w, a.timeout_tier, CANARY_TIMEOUT,
				     s->cfg->canary_probe_timeout_seconds);
	if (a.progress_miss) {
		const char *lc[] = {s->model_type, w->id, "progress"};
		metrics_add(s->m_canary_fail, lc, 1);
		log_warn("worker %s made no progress for %.2f s (budget %.2f s): failing its requests "
			 "and taking it out of rotation",
			 w->id, a.stalled_s, canary_progress_budget(&w->canary));
		if (!w->stalled && s->cfg->canary_gate_readiness) {
			char msg[200];
			snprintf(msg, sizeof(msg),
				 "worker %s made no progress for %.1f s (progress budget %.1f s)", w->id,
				 a.stalled_s, canary_progress_budget(&w->canary));
			w->stalled = 1;
			serving_update_dispatch(s);
			requests_fail_worker(s, w, msg);
		}
	}
	if (a.kind == CANARY_ACT_PROBE) {
		children_send(s, w, IPC_PROBE, 0, a.tier == CANARY_TIER_DEEP ? 1 : 0, a.generation,
			     NULL, 0, -1);
		s->sched.workers[w->index].extra_load = 1;
	} else if (a.kind == CANARY_ACT_SKIPPED) {
		record_probe_metrics(s, w, a.tier, CANARY_SKIPPED, 0);
	}
	monitor_settle(s, w);
}

void monitor_tick(struct server *s, double now)
{
	for (int i = 0; i < s->n_workers && !s->stop; i++) {
		struct worker *w = &s->workers[i];
		if (w->state == W_READY && w->reset_pid == 0)
			canary_work(s, w, now);
	}
}
