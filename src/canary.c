/* canary.c: the per-worker canary state machine (see canary.h, HEALTH.md).
 *
 * Every entry point updates the counters, then canary_settle() derives the
 * state from the misses and the probe in flight and records a transition
 * when it changed. STARTING and DISABLED are set explicitly by the lifecycle
 * calls and never derived. */
#include "canary.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "util.h"
#include "banned.h"

static const char *const state_names[CANARY_STATE_COUNT] = {
	"starting", "healthy", "probing", "suspect", "dead", "disabled",
};

static const char *const tier_names[CANARY_TIER_COUNT] = {
	"shallow", "deep", "progress",
};

static const char *const outcome_names[CANARY_OUTCOME_COUNT] = {
	"ok", "miss", "timeout", "error", "late", "skipped", "aborted",
};

static const char *const event_names[CANARY_EV_COUNT] = {
	"ready", "lost", "probe", "answer", "timeout", "abort", "stall", "deadline", "progress",
};

const char *canary_state_name(enum canary_state s)
{
	return (unsigned)s < CANARY_STATE_COUNT ? state_names[s] : "unknown";
}

const char *canary_tier_name(enum canary_tier t)
{
	if (t == CANARY_TIER_NONE)
		return "none";
	return (unsigned)t < CANARY_TIER_COUNT ? tier_names[t] : "unknown";
}

const char *canary_outcome_name(enum canary_outcome o)
{
	return (unsigned)o < CANARY_OUTCOME_COUNT ? outcome_names[o] : "unknown";
}

const char *canary_event_name(enum canary_event e)
{
	return (unsigned)e < CANARY_EV_COUNT ? event_names[e] : "unknown";
}

const char *canary_act_name(enum canary_act a)
{
	switch (a) {
	case CANARY_ACT_NONE:
		return "none";
	case CANARY_ACT_PROBE:
		return "probe";
	case CANARY_ACT_SKIPPED:
		return "skipped";
	}
	return "unknown";
}

static double clamp_duration(double d)
{
	return d > 0 ? d : 0; /* also maps NaN to 0 */
}

void canary_init(struct canary *c, const struct canary_settings *s)
{
	memset(c, 0, sizeof(*c));
	c->set = *s;
	c->set.wait_s = clamp_duration(s->wait_s);
	c->set.probe_timeout_s = clamp_duration(s->probe_timeout_s);
	c->set.deep_timeout_s = clamp_duration(s->deep_timeout_s);
	c->set.grace_s = clamp_duration(s->grace_s);
	c->set.progress_timeout_s = clamp_duration(s->progress_timeout_s);
	if (c->set.dead_misses < 1)
		c->set.dead_misses = 1;
	if (c->set.deep_every_n < 1)
		c->set.deep_every_n = 1;
	c->state = s->enabled ? CANARY_STARTING : CANARY_DISABLED;
	c->probe.tier = CANARY_TIER_NONE;
	c->cause_tier = CANARY_TIER_NONE;
	c->cause_outcome = CANARY_OK;
	for (int t = 0; t < CANARY_TIER_COUNT; t++) {
		c->last_ok_at[t] = -1;
		c->last_miss[t] = CANARY_OK;
	}
	c->last_probe_ok = -1;
}

/* Probes and misses only exist between ready and lost. */
static int canary_running(const struct canary *c)
{
	return c->state != CANARY_STARTING && c->state != CANARY_DISABLED;
}

static void canary_record(struct canary *c, const struct canary_transition *tr)
{
	int slot;

	if (c->ring_len == CANARY_RING) {
		c->ring_start = (c->ring_start + 1) % CANARY_RING;
		c->ring_len--;
		c->ring_dropped++;
	}
	slot = (c->ring_start + c->ring_len) % CANARY_RING;
	c->ring[slot] = *tr;
	c->ring_len++;
}

/* Set the state; record a transition if it changed. */
static void canary_enter(struct canary *c, enum canary_state to, double now,
			 enum canary_event ev, enum canary_tier tier,
			 enum canary_outcome oc, double latency_s)
{
	struct canary_transition tr = {
		.from = c->state, .to = to, .event = ev, .tier = tier, .outcome = oc,
		.at = now, .latency_s = latency_s,
	};

	if (to == c->state)
		return;
	c->state = to;
	canary_record(c, &tr);
}

static int canary_worst(const struct canary *c)
{
	int worst = 0;

	for (int t = 0; t < CANARY_TIER_COUNT; t++)
		worst = MAX(worst, c->misses[t]);
	return worst;
}

/* The cause is the worst tier; among equals the current cause is kept, so
 * the reason shown does not hop between tiers with the same streak. */
static void canary_update_cause(struct canary *c, int worst)
{
	enum canary_tier cause = CANARY_TIER_NONE;

	if (worst > 0) {
		if (c->cause_tier != CANARY_TIER_NONE && c->misses[c->cause_tier] == worst) {
			cause = c->cause_tier;
		} else {
			for (int t = 0; t < CANARY_TIER_COUNT && cause == CANARY_TIER_NONE; t++)
				if (c->misses[t] == worst)
					cause = (enum canary_tier)t;
		}
	}
	c->cause_tier = cause;
	c->cause_outcome = cause == CANARY_TIER_NONE ? CANARY_OK : c->last_miss[cause];
}

/* Derive the state of a running canary from its misses and probe. */
static void canary_settle(struct canary *c, double now, enum canary_event ev,
			  enum canary_tier tier, enum canary_outcome oc, double latency_s)
{
	int worst = canary_worst(c);
	enum canary_state to;

	canary_update_cause(c, worst);
	if (worst >= c->set.dead_misses)
		to = CANARY_DEAD;
	else if (worst > 0)
		to = CANARY_SUSPECT;
	else if (c->probe.active)
		to = CANARY_PROBING;
	else
		to = CANARY_HEALTHY;
	canary_enter(c, to, now, ev, tier, oc, latency_s);
}

static void canary_clear_misses(struct canary *c)
{
	for (int t = 0; t < CANARY_TIER_COUNT; t++)
		c->misses[t] = 0;
}

/* Forget the probe in flight; a probe that ended without a result gives its
 * number back so the same tier is tried next. */
static void canary_retire(struct canary *c, int without_result)
{
	if (without_result && c->probe.numbered)
		c->probe_number--;
	memset(&c->probe, 0, sizeof(c->probe));
	c->probe.tier = CANARY_TIER_NONE;
}

/* One miss of tier. After a miss that leaves the worker short of dead the
 * idle timer is left alone, so the next probe confirms at once; a dead
 * worker goes back to the normal cadence. */
static void canary_miss(struct canary *c, double now, enum canary_event ev,
			enum canary_tier tier, enum canary_outcome oc, double latency_s)
{
	c->misses[tier]++;
	c->last_miss[tier] = oc;
	c->last_miss_at[tier] = now;
	c->outcomes[tier][oc]++;
	canary_settle(c, now, ev, tier, oc, latency_s);
	if (c->state == CANARY_DEAD)
		c->idle_since = now;
}

void canary_worker_ready(struct canary *c, double now)
{
	if (c->state == CANARY_DISABLED)
		return;
	canary_retire(c, 1);
	canary_clear_misses(c);
	c->ready_at = now;
	c->idle_since = now;
	c->progress_at = now;
	c->stall_counted = 0;
	c->cause_tier = CANARY_TIER_NONE;
	c->cause_outcome = CANARY_OK;
	canary_enter(c, CANARY_HEALTHY, now, CANARY_EV_READY, CANARY_TIER_NONE, CANARY_OK, 0);
}

void canary_worker_lost(struct canary *c, double now)
{
	c->busy = 0;
	c->stall_counted = 0;
	if (c->state == CANARY_DISABLED)
		return;
	if (c->probe.active)
		c->outcomes[c->probe.tier][CANARY_ABORTED]++;
	canary_retire(c, 1);
	canary_clear_misses(c);
	c->cause_tier = CANARY_TIER_NONE;
	c->cause_outcome = CANARY_OK;
	canary_enter(c, CANARY_STARTING, now, CANARY_EV_LOST, CANARY_TIER_NONE, CANARY_ABORTED, 0);
}

void canary_request_started(struct canary *c, double now)
{
	enum canary_tier tier;
	double age;

	if (c->busy++ == 0) {
		c->progress_at = now;
		c->stall_counted = 0;
	}
	if (!canary_running(c) || !c->probe.active)
		return;
	tier = c->probe.tier;
	age = now - c->probe.sent_at;
	c->outcomes[tier][CANARY_ABORTED]++;
	canary_retire(c, 1);
	canary_settle(c, now, CANARY_EV_ABORT, tier, CANARY_ABORTED, age);
}

void canary_request_finished(struct canary *c, double now)
{
	if (c->busy <= 0)
		return;
	c->busy--;
	c->idle_since = now;
	c->progress_at = now;
	c->stall_counted = 0;
}

int canary_request_timed_out(struct canary *c, double now)
{
	if (!canary_running(c))
		return 0;
	canary_miss(c, now, CANARY_EV_DEADLINE, CANARY_TIER_PROGRESS, CANARY_TIMEOUT,
		    now - c->progress_at);
	return 1;
}

void canary_progress(struct canary *c, double now, double step_at, double step_s)
{
	int cleared = 0;

	if (step_s > 0 && isfinite(step_s)) {
		c->steps[c->step_pos] = step_s;
		c->step_pos = (c->step_pos + 1) % CANARY_STEPS;
		if (c->n_steps < CANARY_STEPS)
			c->n_steps++;
	}
	c->progress_at = now;
	c->stall_counted = 0;
	if (!canary_running(c))
		return;
	if (!(step_at <= now))
		step_at = now; /* also NaN */
	c->last_ok_at[CANARY_TIER_PROGRESS] = step_at;
	/* a step made before a miss (read by the next tick) does not undo it:
	 * three deadlines in a row on a worker that stopped stepping must reach
	 * DEAD and stay there until the monitor acted on it */
	for (int t = 0; t < CANARY_TIER_COUNT; t++) {
		if (c->misses[t] > 0 && c->last_miss_at[t] < step_at) {
			c->misses[t] = 0;
			cleared = 1;
		}
	}
	if (cleared || canary_worst(c) == 0)
		canary_settle(c, now, CANARY_EV_PROGRESS, CANARY_TIER_PROGRESS, CANARY_OK, 0);
}

double canary_progress_budget(const struct canary *c)
{
	double slowest = 0;

	if (c->set.progress_timeout_s > 0)
		return c->set.progress_timeout_s;
	for (int i = 0; i < c->n_steps; i++)
		if (c->steps[i] > slowest)
			slowest = c->steps[i];
	return MAX(CANARY_PROGRESS_FLOOR_S, CANARY_PROGRESS_FACTOR * slowest);
}

/* The tier of the next probe, and whether it uses up a probe number: a deep
 * turn is deferred while the shallow tier is missing (see canary.h). */
static enum canary_tier canary_next_tier(const struct canary *c, int *numbered)
{
	int deep_turn = c->set.deep_enabled &&
			(c->probe_number + 1) % (uint64_t)c->set.deep_every_n == 0;

	if (deep_turn && c->misses[CANARY_TIER_SHALLOW] > 0) {
		*numbered = 0;
		return CANARY_TIER_SHALLOW;
	}
	*numbered = 1;
	return deep_turn ? CANARY_TIER_DEEP : CANARY_TIER_SHALLOW;
}

/* (a) of canary_tick(). */
static void canary_check_timeout(struct canary *c, double now, struct canary_action *a)
{
	enum canary_tier tier = c->probe.tier;
	double age = now - c->probe.sent_at;

	if (!c->probe.active || !(now > c->probe.deadline))
		return;
	a->timed_out = 1;
	a->timeout_tier = tier;
	a->timeout_generation = c->probe.generation;
	canary_retire(c, 0);
	canary_miss(c, now, CANARY_EV_TIMEOUT, tier, CANARY_TIMEOUT, age);
}

/* (b) of canary_tick(). */
static void canary_check_progress(struct canary *c, double now, struct canary_action *a)
{
	double budget = canary_progress_budget(c);

	a->stalled_s = now - c->progress_at;
	if (!(a->stalled_s > (c->stall_counted + 1) * budget))
		return;
	c->stall_counted++;
	a->progress_miss = 1;
	canary_miss(c, now, CANARY_EV_STALL, CANARY_TIER_PROGRESS, CANARY_TIMEOUT, a->stalled_s);
}

/* (c) of canary_tick(). */
static void canary_maybe_probe(struct canary *c, double now, int channel_full,
			       struct canary_action *a)
{
	enum canary_tier tier;
	int numbered;

	if (c->probe.active || now < c->ready_at + c->set.grace_s ||
	    now - c->idle_since < c->set.wait_s)
		return;
	tier = canary_next_tier(c, &numbered);
	a->tier = tier;
	if (channel_full) {
		a->kind = CANARY_ACT_SKIPPED;
		c->outcomes[tier][CANARY_SKIPPED]++;
		return;
	}
	c->probe_number += (uint64_t)numbered;
	c->probe.active = 1;
	c->probe.tier = tier;
	c->probe.generation = ++c->generation;
	c->probe.sent_at = now;
	c->probe.deadline = now + (tier == CANARY_TIER_DEEP ? c->set.deep_timeout_s
							    : c->set.probe_timeout_s);
	c->probe.numbered = numbered;
	c->probes_sent[tier]++;
	a->kind = CANARY_ACT_PROBE;
	a->generation = c->probe.generation;
	a->deadline = c->probe.deadline;
	canary_settle(c, now, CANARY_EV_PROBE, tier, CANARY_OK, 0);
}

struct canary_action canary_tick(struct canary *c, double now, int channel_full)
{
	struct canary_action a = {
		.kind = CANARY_ACT_NONE,
		.tier = CANARY_TIER_NONE,
		.timeout_tier = CANARY_TIER_NONE,
	};

	if (!canary_running(c))
		return a;
	canary_check_timeout(c, now, &a);
	if (c->busy > 0)
		canary_check_progress(c, now, &a);
	else
		canary_maybe_probe(c, now, channel_full, &a);
	return a;
}

static int canary_answer_outcome(enum canary_outcome o)
{
	return o == CANARY_OK || o == CANARY_MISMATCH || o == CANARY_ERROR || o == CANARY_TIMEOUT;
}

enum canary_outcome canary_probe_result(struct canary *c, double now, uint64_t generation,
					enum canary_tier tier, enum canary_outcome outcome,
					double latency_s)
{
	enum canary_outcome rec = canary_answer_outcome(outcome) ? outcome : CANARY_ERROR;

	if (!canary_running(c) || !c->probe.active || generation != c->probe.generation ||
	    tier != c->probe.tier) {
		if (tier == CANARY_TIER_SHALLOW || tier == CANARY_TIER_DEEP)
			c->outcomes[tier][CANARY_LATE]++;
		return CANARY_LATE;
	}
	if (rec == CANARY_OK && now > c->probe.deadline)
		rec = CANARY_TIMEOUT;
	canary_retire(c, 0);
	if (rec != CANARY_OK) {
		canary_miss(c, now, CANARY_EV_ANSWER, tier, rec, latency_s);
		return rec;
	}
	c->outcomes[tier][CANARY_OK]++;
	c->misses[tier] = 0;
	c->last_ok_at[tier] = now;
	c->last_probe_ok = now;
	c->idle_since = now;
	canary_settle(c, now, CANARY_EV_ANSWER, tier, CANARY_OK, latency_s);
	return CANARY_OK;
}

int canary_drain_transitions(struct canary *c, struct canary_transition *out, int max)
{
	int n = 0;

	while (n < max && c->ring_len > 0) {
		out[n++] = c->ring[c->ring_start];
		c->ring_start = (c->ring_start + 1) % CANARY_RING;
		c->ring_len--;
	}
	return n;
}

/* What a miss of tier with outcome oc was, e.g. "deep probe timeout". */
static const char *canary_miss_what(enum canary_tier tier, enum canary_outcome oc)
{
	if (tier == CANARY_TIER_PROGRESS)
		return "timeout";
	switch (oc) {
	case CANARY_MISMATCH:
		return tier == CANARY_TIER_DEEP ? "wrong digest" : "wrong result";
	case CANARY_TIMEOUT:
		return "timeout";
	default:
		return "error";
	}
}

int canary_describe(const struct canary *c, char *out, size_t n)
{
	const char *state = canary_state_name(c->state);
	enum canary_tier tier = c->cause_tier;
	int misses;

	switch (c->state) {
	case CANARY_SUSPECT:
	case CANARY_DEAD:
		if (tier == CANARY_TIER_NONE)
			break;
		misses = c->misses[tier];
		return snprintf(out, n, "%s: %s%s %s (%d consecutive %s)", state,
				canary_tier_name(tier),
				tier == CANARY_TIER_PROGRESS ? "" : " probe",
				canary_miss_what(tier, c->cause_outcome), misses,
				misses == 1 ? "miss" : "misses");
	case CANARY_PROBING:
		return snprintf(out, n, "%s: %s probe in flight", state,
				canary_tier_name(c->probe.tier));
	default:
		break;
	}
	return snprintf(out, n, "%s", state);
}

int canary_is_ready(const struct canary *c)
{
	switch (c->state) {
	case CANARY_HEALTHY:
	case CANARY_PROBING:
	case CANARY_SUSPECT:
	case CANARY_DISABLED:
		return 1;
	default:
		return 0;
	}
}
