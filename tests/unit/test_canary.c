/* test_canary.c: unit tests for the canary state machine (src/canary.c).
 *
 * A fake clock drives every transition of HEALTH.md sections 2-4: probes
 * and their cadence, timeouts, error and wrong-digest answers, per-tier
 * streaks, aborts by real requests, late answers, skips, grace, the progress
 * tier and its budget, worker loss and readiness, and a tick-by-tick
 * simulation of a hanging device checking the detection bound
 * wait + misses x (timeout + tick) + tick. No sleeps, no real clock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "canary.h"
#include "banned.h"

#define EPS 1e-9
#define assert_near(a, b) assert_true(fabs((double)(a) - (double)(b)) < 1e-6)

/* Defaults of HEALTH.md section 4, grace 0 so probes start after wait_s. */
static struct canary_settings defaults(void)
{
	struct canary_settings s = {
		.enabled = 1,
		.deep_enabled = 1,
		.wait_s = 5,
		.probe_timeout_s = 3,
		.deep_timeout_s = 60,
		.grace_s = 0,
		.progress_timeout_s = 0,
		.dead_misses = 3,
		.deep_every_n = 3,
	};
	return s;
}

/* A canary with a fake clock ticking every `tick` seconds from t = 0. */
struct sim {
	struct canary c;
	double tick;
	long k;
	double now;
};

static void sim_init(struct sim *s, const struct canary_settings *set, double tick)
{
	canary_init(&s->c, set);
	s->tick = tick;
	s->k = 0;
	s->now = 0;
}

/* Ready at the current time. */
static void sim_ready(struct sim *s)
{
	canary_worker_ready(&s->c, s->now);
}

static struct canary_action sim_tick_full(struct sim *s, int full)
{
	s->k++;
	s->now = s->k * s->tick;
	return canary_tick(&s->c, s->now, full);
}

static struct canary_action sim_tick(struct sim *s)
{
	return sim_tick_full(s, 0);
}

/* Tick until a probe is sent, at most limit_s seconds; fails otherwise. */
static struct canary_action sim_next_probe(struct sim *s, double limit_s)
{
	double until = s->now + limit_s + EPS;

	while (s->now + s->tick <= until) {
		struct canary_action a = sim_tick(s);
		if (a.kind == CANARY_ACT_PROBE)
			return a;
	}
	fail_msg("no probe within %.3f s (now %.3f)", limit_s, s->now);
	return (struct canary_action){ 0 };
}

/* Answer probe a right away (a millisecond after the tick that sent it). */
static enum canary_outcome sim_answer(struct sim *s, const struct canary_action *a,
				      enum canary_outcome o)
{
	return canary_probe_result(&s->c, s->now + 0.001, a->generation, a->tier, o, 0.001);
}

/* Probe and answer; returns the probe's tier. */
static enum canary_tier sim_probe_answer(struct sim *s, enum canary_outcome o)
{
	struct canary_action a = sim_next_probe(s, 1000);

	sim_answer(s, &a, o);
	return a.tier;
}

/* Drain up to max transitions into out; returns how many. */
static int drain(struct canary *c, struct canary_transition *out, int max)
{
	return canary_drain_transitions(c, out, max);
}

static int drained_to(struct canary *c, enum canary_state to)
{
	struct canary_transition tr[CANARY_RING];
	int n = drain(c, tr, CANARY_RING), hits = 0;

	for (int i = 0; i < n; i++)
		hits += tr[i].to == to;
	return hits;
}

static void assert_describe(const struct canary *c, const char *want)
{
	char buf[128];

	canary_describe(c, buf, sizeof(buf));
	assert_string_equal(buf, want);
}

static void test_names(void **state)
{
	static const char *const states[] = {
		"starting", "healthy", "probing", "suspect", "dead", "disabled",
	};
	static const char *const outcomes[] = {
		"ok", "miss", "timeout", "error", "late", "skipped", "aborted",
	};

	for (int i = 0; i < CANARY_STATE_COUNT; i++)
		assert_string_equal(canary_state_name((enum canary_state)i), states[i]);
	for (int i = 0; i < CANARY_OUTCOME_COUNT; i++)
		assert_string_equal(canary_outcome_name((enum canary_outcome)i), outcomes[i]);
	assert_string_equal(canary_outcome_name(CANARY_MISMATCH), "miss");
	assert_string_equal(canary_tier_name(CANARY_TIER_SHALLOW), "shallow");
	assert_string_equal(canary_tier_name(CANARY_TIER_DEEP), "deep");
	assert_string_equal(canary_tier_name(CANARY_TIER_PROGRESS), "progress");
	assert_string_equal(canary_tier_name(CANARY_TIER_NONE), "none");
	assert_string_equal(canary_tier_name(CANARY_TIER_COUNT), "unknown");
	assert_string_equal(canary_state_name(CANARY_STATE_COUNT), "unknown");
	assert_string_equal(canary_state_name((enum canary_state)-3), "unknown");
	assert_string_equal(canary_outcome_name(CANARY_OUTCOME_COUNT), "unknown");
	assert_string_equal(canary_event_name(CANARY_EV_READY), "ready");
	assert_string_equal(canary_event_name(CANARY_EV_PROGRESS), "progress");
	assert_string_equal(canary_event_name(CANARY_EV_COUNT), "unknown");
	assert_string_equal(canary_act_name(CANARY_ACT_PROBE), "probe");
	assert_string_equal(canary_act_name(CANARY_ACT_SKIPPED), "skipped");
	assert_string_equal(canary_act_name(CANARY_ACT_NONE), "none");
}

static void test_init_starting(void **state)
{
	struct canary_settings set = defaults();
	struct sim s;

	sim_init(&s, &set, 1);
	assert_int_equal(s.c.state, CANARY_STARTING);
	assert_false(canary_is_ready(&s.c));
	assert_describe(&s.c, "starting");
	for (int t = 0; t < 100; t++) {
		struct canary_action a = sim_tick(&s);
		assert_int_equal(a.kind, CANARY_ACT_NONE);
		assert_false(a.timed_out);
	}
	/* busy and stalled while starting: still nothing */
	canary_request_started(&s.c, s.now);
	for (int t = 0; t < 100; t++)
		assert_false(sim_tick(&s).progress_miss);
	assert_int_equal(s.c.state, CANARY_STARTING);
	assert_int_equal(drained_to(&s.c, CANARY_STARTING), 0);
	for (int t = 0; t < CANARY_TIER_COUNT; t++) {
		assert_true(s.c.last_ok_at[t] < 0);
		assert_int_equal(s.c.misses[t], 0);
	}
	assert_true(s.c.last_probe_ok < 0);
}

static void test_disabled_never_probes(void **state)
{
	struct canary_settings set = defaults();
	struct sim s;

	set.enabled = 0;
	sim_init(&s, &set, 1);
	assert_int_equal(s.c.state, CANARY_DISABLED);
	assert_true(canary_is_ready(&s.c));
	sim_ready(&s);
	assert_int_equal(s.c.state, CANARY_DISABLED);
	for (int t = 0; t < 1000; t++)
		assert_int_equal(sim_tick(&s).kind, CANARY_ACT_NONE);
	canary_request_started(&s.c, s.now);
	for (int t = 0; t < 100; t++)
		assert_false(sim_tick(&s).progress_miss);
	canary_request_timed_out(&s.c, s.now);
	canary_request_finished(&s.c, s.now);
	canary_worker_lost(&s.c, s.now);
	assert_int_equal(s.c.state, CANARY_DISABLED);
	assert_int_equal(s.c.probes_sent[CANARY_TIER_SHALLOW], 0);
	assert_int_equal(s.c.probes_sent[CANARY_TIER_DEEP], 0);
	assert_int_equal(canary_probe_result(&s.c, s.now, 1, CANARY_TIER_SHALLOW, CANARY_OK, 0),
			 CANARY_LATE);
	assert_int_equal(drained_to(&s.c, CANARY_HEALTHY), 0);
	assert_describe(&s.c, "disabled");
}

static void test_ready_probe_ok(void **state)
{
	struct canary_settings set = defaults();
	struct canary_transition tr[CANARY_RING];
	struct canary_action a;
	struct sim s;
	int n;

	sim_init(&s, &set, 1);
	sim_ready(&s);
	assert_int_equal(s.c.state, CANARY_HEALTHY);
	assert_true(canary_is_ready(&s.c));
	n = drain(&s.c, tr, CANARY_RING);
	assert_int_equal(n, 1);
	assert_int_equal(tr[0].from, CANARY_STARTING);
	assert_int_equal(tr[0].to, CANARY_HEALTHY);
	assert_int_equal(tr[0].event, CANARY_EV_READY);
	assert_int_equal(tr[0].tier, CANARY_TIER_NONE);

	/* idle wait: nothing at 1..4, the probe at 5 */
	for (int t = 1; t < 5; t++)
		assert_int_equal(sim_tick(&s).kind, CANARY_ACT_NONE);
	a = sim_tick(&s);
	assert_int_equal(a.kind, CANARY_ACT_PROBE);
	assert_near(s.now, 5);
	assert_int_equal(a.tier, CANARY_TIER_SHALLOW);
	assert_true(a.generation > 0);
	assert_near(a.deadline, 8);
	assert_int_equal(s.c.state, CANARY_PROBING);
	assert_true(canary_is_ready(&s.c));
	assert_describe(&s.c, "probing: shallow probe in flight");
	assert_int_equal(s.c.probe.active, 1);
	assert_int_equal(s.c.probe.generation, a.generation);
	assert_near(s.c.probe.sent_at, 5);
	assert_int_equal(s.c.probes_sent[CANARY_TIER_SHALLOW], 1);

	assert_int_equal(canary_probe_result(&s.c, 5.25, a.generation, a.tier, CANARY_OK, 0.25),
			 CANARY_OK);
	assert_int_equal(s.c.state, CANARY_HEALTHY);
	assert_false(s.c.probe.active);
	assert_near(s.c.last_ok_at[CANARY_TIER_SHALLOW], 5.25);
	assert_near(s.c.last_probe_ok, 5.25);
	assert_true(s.c.last_ok_at[CANARY_TIER_DEEP] < 0);
	assert_int_equal(s.c.outcomes[CANARY_TIER_SHALLOW][CANARY_OK], 1);
	n = drain(&s.c, tr, CANARY_RING);
	assert_int_equal(n, 2);
	assert_int_equal(tr[0].to, CANARY_PROBING);
	assert_int_equal(tr[0].event, CANARY_EV_PROBE);
	assert_int_equal(tr[1].from, CANARY_PROBING);
	assert_int_equal(tr[1].to, CANARY_HEALTHY);
	assert_int_equal(tr[1].event, CANARY_EV_ANSWER);
	assert_int_equal(tr[1].outcome, CANARY_OK);
	assert_near(tr[1].latency_s, 0.25);
	assert_near(tr[1].at, 5.25);

	/* the next probe waits wait_s after the answer: 10.25 -> tick 11 */
	a = sim_next_probe(&s, 100);
	assert_near(s.now, 11);
	assert_int_equal(a.generation, 2);
}

static void test_idle_wait_after_request(void **state)
{
	struct canary_settings set = defaults();
	struct sim s;

	sim_init(&s, &set, 1);
	sim_ready(&s);
	for (int t = 0; t < 3; t++)
		sim_tick(&s);
	canary_request_started(&s.c, s.now);
	for (int t = 0; t < 20; t++) {
		canary_progress(&s.c, s.now, s.now, 0.5);
		assert_int_equal(sim_tick(&s).kind, CANARY_ACT_NONE);
	}
	canary_request_finished(&s.c, s.now); /* at 23 */
	assert_int_equal(s.c.busy, 0);
	for (int t = 0; t < 4; t++)
		assert_int_equal(sim_tick(&s).kind, CANARY_ACT_NONE);
	assert_int_equal(sim_tick(&s).kind, CANARY_ACT_PROBE);
	assert_near(s.now, 28);
	/* a stray finish is ignored */
	canary_request_finished(&s.c, s.now);
	assert_int_equal(s.c.busy, 0);
}

static void test_three_timeouts_dead(void **state)
{
	struct canary_settings set = defaults();
	struct canary_transition tr[CANARY_RING];
	struct canary_action a;
	struct sim s;
	int n;

	sim_init(&s, &set, 1);
	sim_ready(&s);
	drain(&s.c, tr, CANARY_RING);
	a = sim_next_probe(&s, 10);
	assert_near(s.now, 5);
	/* deadline 8: the tick at 8 is not past it, 9 is; a new probe goes at once */
	for (int t = 6; t <= 8; t++)
		assert_int_equal(sim_tick(&s).kind, CANARY_ACT_NONE);
	a = sim_tick(&s);
	assert_true(a.timed_out);
	assert_int_equal(a.timeout_tier, CANARY_TIER_SHALLOW);
	assert_int_equal(a.timeout_generation, 1);
	assert_int_equal(a.kind, CANARY_ACT_PROBE);
	assert_int_equal(a.generation, 2);
	assert_int_equal(s.c.state, CANARY_SUSPECT);
	assert_int_equal(s.c.misses[CANARY_TIER_SHALLOW], 1);
	assert_true(canary_is_ready(&s.c));
	assert_describe(&s.c, "suspect: shallow probe timeout (1 consecutive miss)");
	/* second timeout at 13, third at 17 */
	for (int t = 10; t <= 13; t++)
		a = sim_tick(&s);
	assert_true(a.timed_out);
	assert_int_equal(s.c.state, CANARY_SUSPECT);
	assert_int_equal(s.c.misses[CANARY_TIER_SHALLOW], 2);
	for (int t = 14; t <= 17; t++)
		a = sim_tick(&s);
	assert_true(a.timed_out);
	assert_int_equal(s.c.state, CANARY_DEAD);
	assert_false(canary_is_ready(&s.c));
	assert_int_equal(s.c.cause_tier, CANARY_TIER_SHALLOW);
	assert_int_equal(s.c.cause_outcome, CANARY_TIMEOUT);
	assert_int_equal(s.c.outcomes[CANARY_TIER_SHALLOW][CANARY_TIMEOUT], 3);
	assert_describe(&s.c, "dead: shallow probe timeout (3 consecutive misses)");
	/* dead: back to the wait_s cadence, so no probe on the dead tick */
	assert_int_equal(a.kind, CANARY_ACT_NONE);

	n = drain(&s.c, tr, CANARY_RING);
	assert_int_equal(n, 3);
	assert_int_equal(tr[0].to, CANARY_PROBING);
	assert_int_equal(tr[1].from, CANARY_PROBING);
	assert_int_equal(tr[1].to, CANARY_SUSPECT);
	assert_int_equal(tr[1].event, CANARY_EV_TIMEOUT);
	assert_int_equal(tr[1].tier, CANARY_TIER_SHALLOW);
	assert_int_equal(tr[1].outcome, CANARY_TIMEOUT);
	assert_near(tr[1].latency_s, 4);
	assert_int_equal(tr[2].from, CANARY_SUSPECT);
	assert_int_equal(tr[2].to, CANARY_DEAD);
	assert_near(tr[2].at, 17);
}

static void test_one_timeout_suspect_then_healthy(void **state)
{
	struct canary_settings set = defaults();
	struct canary_action a;
	struct sim s;

	sim_init(&s, &set, 1);
	sim_ready(&s);
	sim_next_probe(&s, 10);
	for (int t = 0; t < 4; t++)
		a = sim_tick(&s);
	assert_true(a.timed_out);
	assert_int_equal(a.kind, CANARY_ACT_PROBE);
	assert_int_equal(s.c.state, CANARY_SUSPECT);
	/* suspect while re-probed, never probing */
	assert_int_equal(drained_to(&s.c, CANARY_PROBING), 1);
	assert_int_equal(sim_tick(&s).kind, CANARY_ACT_NONE);
	assert_int_equal(s.c.state, CANARY_SUSPECT);
	assert_int_equal(sim_answer(&s, &a, CANARY_OK), CANARY_OK);
	assert_int_equal(s.c.state, CANARY_HEALTHY);
	assert_int_equal(s.c.misses[CANARY_TIER_SHALLOW], 0);
	assert_int_equal(s.c.cause_tier, CANARY_TIER_NONE);
	assert_int_equal(drained_to(&s.c, CANARY_HEALTHY), 1);
	assert_describe(&s.c, "healthy");
}

static void test_error_dead_with_one_miss(void **state)
{
	struct canary_settings set = defaults();
	struct canary_transition tr[CANARY_RING];
	struct canary_action a;
	struct sim s;

	set.dead_misses = 1;
	sim_init(&s, &set, 1);
	sim_ready(&s);
	a = sim_next_probe(&s, 10);
	drain(&s.c, tr, CANARY_RING);
	assert_int_equal(sim_answer(&s, &a, CANARY_ERROR), CANARY_ERROR);
	assert_int_equal(s.c.state, CANARY_DEAD);
	assert_false(canary_is_ready(&s.c));
	assert_describe(&s.c, "dead: shallow probe error (1 consecutive miss)");
	assert_int_equal(drain(&s.c, tr, CANARY_RING), 1);
	assert_int_equal(tr[0].from, CANARY_PROBING);
	assert_int_equal(tr[0].to, CANARY_DEAD);
	assert_int_equal(tr[0].outcome, CANARY_ERROR);
	assert_int_equal(tr[0].event, CANARY_EV_ANSWER);
}

static void test_settings_clamped(void **state)
{
	struct canary_settings set = defaults();
	struct sim s;

	set.dead_misses = 0;
	set.deep_every_n = 0;
	set.wait_s = -4;
	sim_init(&s, &set, 1);
	assert_int_equal(s.c.set.dead_misses, 1);
	assert_int_equal(s.c.set.deep_every_n, 1);
	assert_near(s.c.set.wait_s, 0);
	sim_ready(&s);
	/* every probe deep, wait 0: probe on the first tick; one error -> dead */
	assert_int_equal(sim_probe_answer(&s, CANARY_ERROR), CANARY_TIER_DEEP);
	assert_int_equal(s.c.state, CANARY_DEAD);
}

static void test_success_resets_only_its_tier(void **state)
{
	struct canary_settings set = defaults();
	struct sim s;

	set.deep_every_n = 2;
	sim_init(&s, &set, 1);
	sim_ready(&s);
	assert_int_equal(sim_probe_answer(&s, CANARY_OK), CANARY_TIER_SHALLOW);
	assert_int_equal(sim_probe_answer(&s, CANARY_ERROR), CANARY_TIER_DEEP);
	assert_int_equal(s.c.misses[CANARY_TIER_DEEP], 1);
	assert_int_equal(sim_probe_answer(&s, CANARY_ERROR), CANARY_TIER_SHALLOW);
	assert_int_equal(s.c.misses[CANARY_TIER_SHALLOW], 1);
	assert_int_equal(s.c.state, CANARY_SUSPECT);
	assert_int_equal(s.c.cause_tier, CANARY_TIER_DEEP); /* first to reach the worst */
	/* probe 4 is a deep turn, deferred while shallow is missing */
	assert_int_equal(sim_probe_answer(&s, CANARY_OK), CANARY_TIER_SHALLOW);
	assert_int_equal(s.c.misses[CANARY_TIER_SHALLOW], 0);
	assert_int_equal(s.c.misses[CANARY_TIER_DEEP], 1);
	assert_int_equal(s.c.state, CANARY_SUSPECT);
	assert_describe(&s.c, "suspect: deep probe error (1 consecutive miss)");
	/* the deferred deep turn comes next and clears the deep tier */
	assert_int_equal(sim_probe_answer(&s, CANARY_OK), CANARY_TIER_DEEP);
	assert_int_equal(s.c.misses[CANARY_TIER_DEEP], 0);
	assert_int_equal(s.c.state, CANARY_HEALTHY);
	assert_true(s.c.last_ok_at[CANARY_TIER_DEEP] > 0);
}

static void test_deep_streak_survives_shallow_ok(void **state)
{
	struct canary_settings set = defaults();
	struct canary_transition tr[CANARY_RING];
	int dead_at = 0;
	struct sim s;

	sim_init(&s, &set, 1);
	sim_ready(&s);
	drain(&s.c, tr, CANARY_RING);
	for (int p = 1; p <= 9; p++) {
		struct canary_action a = sim_next_probe(&s, 100);
		int n;

		assert_int_equal(a.tier, p % 3 == 0 ? CANARY_TIER_DEEP : CANARY_TIER_SHALLOW);
		sim_answer(&s, &a, a.tier == CANARY_TIER_DEEP ? CANARY_ERROR : CANARY_OK);
		assert_int_equal(s.c.misses[CANARY_TIER_DEEP], p / 3);
		n = drain(&s.c, tr, CANARY_RING);
		for (int i = 0; i < n; i++) {
			if (p > 3)
				assert_int_not_equal(tr[i].to, CANARY_PROBING);
			if (tr[i].to == CANARY_DEAD)
				dead_at = p;
		}
		if (p >= 3 && p < 9)
			assert_int_equal(s.c.state, CANARY_SUSPECT);
	}
	assert_int_equal(dead_at, 9);
	assert_int_equal(s.c.state, CANARY_DEAD);
	assert_int_equal(s.c.misses[CANARY_TIER_SHALLOW], 0);
	assert_describe(&s.c, "dead: deep probe error (3 consecutive misses)");
}

static void test_wrong_digest_dead(void **state)
{
	struct canary_settings set = defaults();
	struct sim s;

	sim_init(&s, &set, 1);
	sim_ready(&s);
	for (int p = 1; p <= 9; p++) {
		struct canary_action a = sim_next_probe(&s, 100);
		enum canary_outcome o = a.tier == CANARY_TIER_DEEP ? CANARY_MISMATCH : CANARY_OK;

		assert_int_equal(sim_answer(&s, &a, o), o);
	}
	assert_int_equal(s.c.state, CANARY_DEAD);
	assert_int_equal(s.c.cause_outcome, CANARY_MISMATCH);
	assert_int_equal(s.c.outcomes[CANARY_TIER_DEEP][CANARY_MISMATCH], 3);
	assert_describe(&s.c, "dead: deep probe wrong digest (3 consecutive misses)");
}

static void test_deep_cadence(void **state)
{
	struct canary_settings set = defaults();
	struct sim s;

	sim_init(&s, &set, 1);
	sim_ready(&s);
	for (int p = 1; p <= 12; p++)
		assert_int_equal(sim_probe_answer(&s, CANARY_OK),
				 p % 3 == 0 ? CANARY_TIER_DEEP : CANARY_TIER_SHALLOW);
	assert_int_equal(s.c.probes_sent[CANARY_TIER_SHALLOW], 8);
	assert_int_equal(s.c.probes_sent[CANARY_TIER_DEEP], 4);

	set.deep_every_n = 1;
	sim_init(&s, &set, 1);
	sim_ready(&s);
	for (int p = 1; p <= 4; p++)
		assert_int_equal(sim_probe_answer(&s, CANARY_OK), CANARY_TIER_DEEP);

	set.deep_every_n = 3;
	set.deep_enabled = 0;
	sim_init(&s, &set, 1);
	sim_ready(&s);
	for (int p = 1; p <= 30; p++)
		assert_int_equal(sim_probe_answer(&s, CANARY_OK), CANARY_TIER_SHALLOW);
	assert_int_equal(s.c.probes_sent[CANARY_TIER_DEEP], 0);
	assert_int_equal(s.c.probes_sent[CANARY_TIER_SHALLOW], 30);
}

static void test_generation_increasing(void **state)
{
	struct canary_settings set = defaults();
	uint64_t last = 0;
	struct sim s;

	sim_init(&s, &set, 1);
	sim_ready(&s);
	for (int p = 0; p < 20; p++) {
		struct canary_action a = sim_next_probe(&s, 100);

		assert_true(a.generation > last);
		last = a.generation;
		if (p % 4 == 1)
			canary_request_started(&s.c, s.now + 0.5); /* abort */
		else if (p % 4 == 2)
			continue; /* let it time out */
		else
			sim_answer(&s, &a, CANARY_OK);
		if (s.c.busy)
			canary_request_finished(&s.c, s.now + 0.6);
	}
}

static void test_one_probe_in_flight(void **state)
{
	struct canary_settings set = defaults();
	struct canary_action a;
	struct sim s;

	set.deep_every_n = 2;
	sim_init(&s, &set, 0.25);
	sim_ready(&s);
	sim_probe_answer(&s, CANARY_OK);
	/* the deep probe: 60 s in flight, every tick meanwhile is NONE */
	a = sim_next_probe(&s, 10);
	assert_int_equal(a.tier, CANARY_TIER_DEEP);
	while (s.now + s.tick <= a.deadline) {
		struct canary_action b = sim_tick(&s);
		assert_int_equal(b.kind, CANARY_ACT_NONE);
		assert_false(b.timed_out);
		assert_int_equal(s.c.probe.generation, a.generation);
	}
	assert_int_equal(s.c.probes_sent[CANARY_TIER_SHALLOW], 1);
	assert_int_equal(s.c.probes_sent[CANARY_TIER_DEEP], 1);
	assert_int_equal(canary_probe_result(&s.c, a.deadline - 0.01, a.generation, a.tier,
					     CANARY_OK, 59.99), CANARY_OK);
	assert_int_equal(s.c.state, CANARY_HEALTHY);
}

static void test_request_aborts_probe(void **state)
{
	struct canary_settings set = defaults();
	struct canary_transition tr[CANARY_RING];
	struct canary_action a, b;
	struct sim s;
	int n;

	sim_init(&s, &set, 1);
	sim_ready(&s);
	sim_probe_answer(&s, CANARY_OK);
	sim_probe_answer(&s, CANARY_OK);
	a = sim_next_probe(&s, 100);
	assert_int_equal(a.tier, CANARY_TIER_DEEP);
	drain(&s.c, tr, CANARY_RING);
	canary_request_started(&s.c, s.now + 0.5);
	assert_int_equal(s.c.state, CANARY_HEALTHY);
	assert_false(s.c.probe.active);
	assert_int_equal(s.c.busy, 1);
	assert_int_equal(s.c.misses[CANARY_TIER_DEEP], 0);
	assert_int_equal(s.c.outcomes[CANARY_TIER_DEEP][CANARY_ABORTED], 1);
	n = drain(&s.c, tr, CANARY_RING);
	assert_int_equal(n, 1);
	assert_int_equal(tr[0].from, CANARY_PROBING);
	assert_int_equal(tr[0].to, CANARY_HEALTHY);
	assert_int_equal(tr[0].event, CANARY_EV_ABORT);
	assert_int_equal(tr[0].outcome, CANARY_ABORTED);
	assert_int_equal(tr[0].tier, CANARY_TIER_DEEP);

	/* its answer comes late, even a failing one: nothing changes */
	assert_int_equal(canary_probe_result(&s.c, s.now + 0.7, a.generation, a.tier,
					     CANARY_ERROR, 0.7), CANARY_LATE);
	assert_int_equal(s.c.state, CANARY_HEALTHY);
	assert_int_equal(s.c.misses[CANARY_TIER_DEEP], 0);
	assert_int_equal(s.c.outcomes[CANARY_TIER_DEEP][CANARY_LATE], 1);
	assert_int_equal(drain(&s.c, tr, CANARY_RING), 0);
	/* no probe while busy, not even past a deadline */
	for (int t = 0; t < 70; t++) {
		canary_progress(&s.c, s.now, s.now, 0.1);
		assert_int_equal(sim_tick(&s).kind, CANARY_ACT_NONE);
	}
	canary_request_finished(&s.c, s.now);
	/* the aborted deep turn is retried as deep */
	b = sim_next_probe(&s, 100);
	assert_int_equal(b.tier, CANARY_TIER_DEEP);
	assert_true(b.generation > a.generation);
	assert_int_equal(s.c.probes_sent[CANARY_TIER_DEEP], 2);
}

static void test_skip_on_full_channel(void **state)
{
	struct canary_settings set = defaults();
	struct canary_action a;
	struct sim s;
	uint64_t gen, number;

	sim_init(&s, &set, 1);
	sim_ready(&s);
	sim_probe_answer(&s, CANARY_OK);
	sim_probe_answer(&s, CANARY_OK);
	gen = s.c.generation;
	number = s.c.probe_number;
	/* answered at 12.001: nothing due until 18 */
	for (int t = 0; t < 5; t++)
		assert_int_equal(sim_tick_full(&s, 1).kind, CANARY_ACT_NONE);
	for (int t = 0; t < 3; t++) {
		a = sim_tick_full(&s, 1);
		assert_int_equal(a.kind, CANARY_ACT_SKIPPED);
		assert_int_equal(a.tier, CANARY_TIER_DEEP);
		assert_int_equal(a.generation, 0);
	}
	assert_int_equal(s.c.state, CANARY_HEALTHY);
	assert_int_equal(s.c.misses[CANARY_TIER_DEEP], 0);
	assert_int_equal(s.c.outcomes[CANARY_TIER_DEEP][CANARY_SKIPPED], 3);
	assert_int_equal(s.c.generation, gen);
	assert_int_equal(s.c.probe_number, number);
	assert_int_equal(drained_to(&s.c, CANARY_SUSPECT), 0);
	a = sim_tick(&s);
	assert_int_equal(a.kind, CANARY_ACT_PROBE);
	assert_int_equal(a.tier, CANARY_TIER_DEEP);
	assert_int_equal(a.generation, gen + 1);
}

static void test_grace(void **state)
{
	struct canary_settings set = defaults();
	struct sim s;

	set.grace_s = 30;
	sim_init(&s, &set, 1);
	sim_ready(&s);
	for (int t = 1; t < 30; t++)
		assert_int_equal(sim_tick(&s).kind, CANARY_ACT_NONE);
	assert_int_equal(sim_tick(&s).kind, CANARY_ACT_PROBE);
	assert_near(s.now, 30);

	/* grace restarts when the worker is ready again */
	canary_worker_lost(&s.c, s.now);
	sim_tick(&s);
	sim_ready(&s); /* at 31 */
	for (int t = 0; t < 29; t++)
		assert_int_equal(sim_tick(&s).kind, CANARY_ACT_NONE);
	assert_int_equal(sim_tick(&s).kind, CANARY_ACT_PROBE);
	assert_near(s.now, 61);
}

static void test_late_old_generation(void **state)
{
	struct canary_settings set = defaults();
	struct canary_action a, b;
	struct sim s;

	sim_init(&s, &set, 1);
	sim_ready(&s);
	a = sim_next_probe(&s, 10);
	for (int t = 0; t < 4; t++)
		b = sim_tick(&s);
	assert_true(b.timed_out);
	assert_int_equal(b.kind, CANARY_ACT_PROBE);
	assert_int_equal(s.c.misses[CANARY_TIER_SHALLOW], 1);
	/* the first probe finally answers OK: late, dropped */
	assert_int_equal(canary_probe_result(&s.c, s.now + 0.1, a.generation, a.tier, CANARY_OK,
					     4.1), CANARY_LATE);
	assert_int_equal(s.c.misses[CANARY_TIER_SHALLOW], 1);
	assert_int_equal(s.c.state, CANARY_SUSPECT);
	assert_true(s.c.probe.active);
	assert_int_equal(s.c.probe.generation, b.generation);
	assert_true(s.c.last_probe_ok < 0);
	/* unknown generation, or the right one with the wrong tier: late */
	assert_int_equal(canary_probe_result(&s.c, s.now, 999, CANARY_TIER_SHALLOW, CANARY_OK, 0),
			 CANARY_LATE);
	assert_int_equal(canary_probe_result(&s.c, s.now, b.generation, CANARY_TIER_DEEP,
					     CANARY_OK, 0), CANARY_LATE);
	assert_int_equal(canary_probe_result(&s.c, s.now, b.generation, (enum canary_tier)7,
					     CANARY_OK, 0), CANARY_LATE);
	assert_true(s.c.probe.active);
	assert_int_equal(sim_answer(&s, &b, CANARY_OK), CANARY_OK);
	assert_int_equal(s.c.state, CANARY_HEALTHY);
	/* a second answer to the same probe is late */
	assert_int_equal(sim_answer(&s, &b, CANARY_OK), CANARY_LATE);
}

static void test_answer_after_deadline_is_timeout(void **state)
{
	struct canary_settings set = defaults();
	struct canary_action a;
	struct sim s;

	sim_init(&s, &set, 1);
	sim_ready(&s);
	a = sim_next_probe(&s, 10);
	/* exactly at the deadline: on time */
	assert_int_equal(canary_probe_result(&s.c, a.deadline, a.generation, a.tier, CANARY_OK,
					     3), CANARY_OK);
	a = sim_next_probe(&s, 10);
	/* after the deadline, before a tick noticed: a timeout */
	assert_int_equal(canary_probe_result(&s.c, a.deadline + 0.5, a.generation, a.tier,
					     CANARY_OK, 3.5), CANARY_TIMEOUT);
	assert_int_equal(s.c.misses[CANARY_TIER_SHALLOW], 1);
	assert_int_equal(s.c.state, CANARY_SUSPECT);
	/* outcomes that are not answers count as errors */
	a = sim_next_probe(&s, 10);
	assert_int_equal(sim_answer(&s, &a, CANARY_SKIPPED), CANARY_ERROR);
	assert_int_equal(s.c.misses[CANARY_TIER_SHALLOW], 2);
}

static void test_miss_reprobes_at_next_tick(void **state)
{
	struct canary_settings set = defaults();
	struct canary_action a;
	struct sim s;
	double t;

	sim_init(&s, &set, 1);
	sim_ready(&s);
	a = sim_next_probe(&s, 10);
	sim_answer(&s, &a, CANARY_ERROR);
	t = s.now;
	a = sim_next_probe(&s, 10);
	assert_near(s.now, t + 1);
	sim_answer(&s, &a, CANARY_ERROR);
	a = sim_next_probe(&s, 10);
	assert_near(s.now, t + 2);
	sim_answer(&s, &a, CANARY_ERROR);
	assert_int_equal(s.c.state, CANARY_DEAD);
	/* dead: re-probed at the normal cadence, still dead while probing */
	t = s.now + 0.001;
	a = sim_next_probe(&s, 10);
	assert_near(s.now, ceil(t + 5));
	assert_int_equal(s.c.state, CANARY_DEAD);
	assert_describe(&s.c, "dead: shallow probe error (3 consecutive misses)");
}

static void test_dead_sticky_then_recovers(void **state)
{
	struct canary_settings set = defaults();
	struct canary_transition tr[CANARY_RING];
	struct canary_action a;
	struct sim s;
	int n;

	sim_init(&s, &set, 1);
	sim_ready(&s);
	while (s.c.state != CANARY_DEAD)
		sim_tick(&s);
	drain(&s.c, tr, CANARY_RING);
	/* hanging: re-probed, timing out, dead throughout */
	for (int i = 0; i < 3; i++) {
		char why[128];

		a = sim_next_probe(&s, 10);
		assert_int_equal(s.c.state, CANARY_DEAD);
		assert_false(canary_is_ready(&s.c));
		canary_describe(&s.c, why, sizeof(why));
		assert_true(strncmp(why, "dead: shallow probe timeout (", 29) == 0);
	}
	assert_int_equal(drain(&s.c, tr, CANARY_RING), 0);
	assert_true(s.c.misses[CANARY_TIER_SHALLOW] >= 3);
	/* the device is back: the failing tier's next success heals */
	a = sim_next_probe(&s, 20);
	assert_int_equal(s.c.state, CANARY_DEAD);
	assert_int_equal(sim_answer(&s, &a, CANARY_OK), CANARY_OK);
	assert_int_equal(s.c.state, CANARY_HEALTHY);
	n = drain(&s.c, tr, CANARY_RING);
	assert_int_equal(n, 1);
	assert_int_equal(tr[0].from, CANARY_DEAD);
	assert_int_equal(tr[0].to, CANARY_HEALTHY);
	assert_true(canary_is_ready(&s.c));
}

static void test_lost_then_ready(void **state)
{
	struct canary_settings set = defaults();
	struct canary_transition tr[CANARY_RING];
	struct canary_action a;
	struct sim s;

	sim_init(&s, &set, 1);
	sim_ready(&s);
	a = sim_next_probe(&s, 10);
	sim_answer(&s, &a, CANARY_ERROR);
	a = sim_next_probe(&s, 10);
	canary_request_started(&s.c, s.now + 0.2); /* aborts a */
	canary_request_finished(&s.c, s.now + 0.3);
	a = sim_next_probe(&s, 10);
	canary_request_started(&s.c, s.now); /* aborts, leaves the worker busy */
	assert_int_equal(s.c.busy, 1);
	drain(&s.c, tr, CANARY_RING);

	canary_worker_lost(&s.c, s.now + 0.5);
	assert_int_equal(s.c.state, CANARY_STARTING);
	assert_false(canary_is_ready(&s.c));
	assert_int_equal(s.c.busy, 0);
	assert_int_equal(s.c.misses[CANARY_TIER_SHALLOW], 0);
	assert_false(s.c.probe.active);
	assert_int_equal(s.c.cause_tier, CANARY_TIER_NONE);
	assert_int_equal(drain(&s.c, tr, CANARY_RING), 1);
	assert_int_equal(tr[0].from, CANARY_SUSPECT);
	assert_int_equal(tr[0].to, CANARY_STARTING);
	assert_int_equal(tr[0].event, CANARY_EV_LOST);
	/* the failed request's finish after the loss is ignored */
	canary_request_finished(&s.c, s.now + 0.6);
	assert_int_equal(s.c.busy, 0);
	assert_int_equal(sim_answer(&s, &a, CANARY_OK), CANARY_LATE);
	for (int t = 0; t < 50; t++)
		assert_int_equal(sim_tick(&s).kind, CANARY_ACT_NONE);

	/* lost while a probe is in flight */
	sim_ready(&s);
	a = sim_next_probe(&s, 10);
	canary_worker_lost(&s.c, s.now);
	assert_int_equal(s.c.outcomes[CANARY_TIER_SHALLOW][CANARY_ABORTED], 3);
	assert_int_equal(sim_answer(&s, &a, CANARY_OK), CANARY_LATE);
	sim_tick(&s);
	sim_ready(&s);
	assert_int_equal(s.c.state, CANARY_HEALTHY);
	assert_int_equal(drain(&s.c, tr, CANARY_RING), 4);
	assert_int_equal(tr[3].from, CANARY_STARTING);
	assert_int_equal(tr[3].to, CANARY_HEALTHY);
	/* only the answered probe used up a number: aborted and abandoned ones
	 * gave theirs back */
	assert_int_equal(s.c.probe_number, 1);
}

static void test_busy_progress_never_trips(void **state)
{
	struct canary_settings set = defaults();
	struct sim s;

	sim_init(&s, &set, 1);
	sim_ready(&s);
	sim_tick(&s);
	canary_request_started(&s.c, s.now);
	/* a 1000 s request with a 2 s step every 2 s: budget 20 s */
	for (int t = 0; t < 1000; t++) {
		struct canary_action a;

		if (t % 2 == 1)
			canary_progress(&s.c, s.now, s.now, 2.0);
		a = sim_tick(&s);
		assert_int_equal(a.kind, CANARY_ACT_NONE);
		assert_false(a.progress_miss);
		assert_true(a.stalled_s <= 2 + EPS);
		assert_int_equal(s.c.state, CANARY_HEALTHY);
	}
	assert_near(canary_progress_budget(&s.c), 20);
	assert_int_equal(s.c.probes_sent[CANARY_TIER_SHALLOW], 0);
	assert_near(s.c.last_ok_at[CANARY_TIER_PROGRESS], s.now - 1);
	assert_int_equal(drained_to(&s.c, CANARY_SUSPECT), 0);
}

static void test_progress_misses_to_dead(void **state)
{
	struct canary_settings set = defaults();
	struct canary_transition tr[CANARY_RING];
	struct canary_action a;
	struct sim s;
	int misses = 0;

	set.progress_timeout_s = 10;
	sim_init(&s, &set, 1);
	sim_ready(&s);
	drain(&s.c, tr, CANARY_RING);
	canary_request_started(&s.c, s.now); /* at 0 */
	for (int t = 1; t <= 31; t++) {
		a = sim_tick(&s);
		assert_int_equal(a.kind, CANARY_ACT_NONE);
		assert_near(a.stalled_s, t);
		if (a.progress_miss) {
			misses++;
			assert_true(t == 11 || t == 21 || t == 31);
		}
		if (t == 11) {
			assert_int_equal(s.c.state, CANARY_SUSPECT);
			assert_describe(&s.c, "suspect: progress timeout (1 consecutive miss)");
		}
	}
	assert_int_equal(misses, 3);
	assert_int_equal(s.c.state, CANARY_DEAD);
	assert_int_equal(s.c.cause_tier, CANARY_TIER_PROGRESS);
	assert_describe(&s.c, "dead: progress timeout (3 consecutive misses)");
	assert_int_equal(drain(&s.c, tr, CANARY_RING), 2);
	assert_int_equal(tr[0].event, CANARY_EV_STALL);
	assert_int_equal(tr[0].tier, CANARY_TIER_PROGRESS);
	assert_int_equal(tr[0].outcome, CANARY_TIMEOUT);
	assert_near(tr[0].latency_s, 11);
	assert_int_equal(tr[1].to, CANARY_DEAD);

	/* a stalled supervisor catches up one miss per tick, not all at once */
	sim_init(&s, &set, 1);
	sim_ready(&s);
	canary_request_started(&s.c, 0);
	a = canary_tick(&s.c, 45, 0);
	assert_true(a.progress_miss);
	assert_int_equal(s.c.misses[CANARY_TIER_PROGRESS], 1);
	a = canary_tick(&s.c, 46, 0);
	assert_int_equal(s.c.misses[CANARY_TIER_PROGRESS], 2);
}

static void test_progress_resets_all_tiers(void **state)
{
	struct canary_settings set = defaults();
	struct canary_transition tr[CANARY_RING];
	struct sim s;

	set.deep_every_n = 2;
	set.dead_misses = 5;
	sim_init(&s, &set, 1);
	sim_ready(&s);
	sim_probe_answer(&s, CANARY_OK);
	sim_probe_answer(&s, CANARY_MISMATCH);
	sim_probe_answer(&s, CANARY_ERROR);
	canary_request_started(&s.c, s.now + 0.5);
	canary_request_timed_out(&s.c, s.now + 0.6);
	assert_int_equal(s.c.misses[CANARY_TIER_SHALLOW], 1);
	assert_int_equal(s.c.misses[CANARY_TIER_DEEP], 1);
	assert_int_equal(s.c.misses[CANARY_TIER_PROGRESS], 1);
	assert_int_equal(s.c.state, CANARY_SUSPECT);
	drain(&s.c, tr, CANARY_RING);
	canary_progress(&s.c, s.now + 0.7, s.now + 0.7, 0.05);
	for (int t = 0; t < CANARY_TIER_COUNT; t++)
		assert_int_equal(s.c.misses[t], 0);
	assert_int_equal(s.c.state, CANARY_HEALTHY);
	assert_int_equal(drain(&s.c, tr, CANARY_RING), 1);
	assert_int_equal(tr[0].event, CANARY_EV_PROGRESS);
	assert_int_equal(tr[0].tier, CANARY_TIER_PROGRESS);
	assert_int_equal(tr[0].outcome, CANARY_OK);
}

/* Item 8 of the restructuring issue: three deadline 504s on one worker
 * took it suspect -> dead -> healthy in the same instant, because the tick
 * that read the progress page saw steps made *before* the deadlines and
 * progress reset every tier, so the dead edge was never acted on. Progress
 * now clears only misses older than the step it reports. */
static void test_deadlines_dead_not_undone_by_older_progress(void **state)
{
	struct canary_settings set = defaults();
	struct canary_transition tr[CANARY_RING];
	struct sim s;
	int n;

	set.dead_misses = 3;
	sim_init(&s, &set, 1);
	sim_ready(&s);
	drain(&s.c, tr, CANARY_RING);
	canary_request_started(&s.c, 10);
	canary_request_started(&s.c, 10);
	canary_request_started(&s.c, 10);
	/* the worker stepped at 11, then stopped; three requests hit their deadline */
	for (int i = 0; i < 3; i++)
		assert_int_equal(canary_request_timed_out(&s.c, 20), 1);
	assert_int_equal(s.c.state, CANARY_DEAD);
	assert_int_equal(s.c.misses[CANARY_TIER_PROGRESS], 3);
	/* the next tick reads the step of 11: older than the misses */
	canary_progress(&s.c, 20.1, 11, 0.1);
	assert_int_equal(s.c.state, CANARY_DEAD);
	assert_int_equal(s.c.misses[CANARY_TIER_PROGRESS], 3);
	assert_false(canary_is_ready(&s.c));
	n = drain(&s.c, tr, CANARY_RING);
	assert_int_equal(n, 2); /* healthy -> suspect -> dead, no way back */
	assert_int_equal(tr[1].to, CANARY_DEAD);
	assert_int_equal(tr[1].event, CANARY_EV_DEADLINE);
	/* a step at the same instant as the miss is not after it either */
	canary_progress(&s.c, 20.2, 20, 0.1);
	assert_int_equal(s.c.state, CANARY_DEAD);
	/* a step made after the deadlines proves the worker moves again */
	canary_progress(&s.c, 21, 20.5, 0.1);
	assert_int_equal(s.c.state, CANARY_HEALTHY);
	assert_int_equal(s.c.misses[CANARY_TIER_PROGRESS], 0);
	assert_int_equal(drain(&s.c, tr, CANARY_RING), 1);
	assert_int_equal(tr[0].event, CANARY_EV_PROGRESS);
}

/* A slow worker that keeps stepping is not dead: each deadline is one miss
 * (504, suspect), and its next step clears it, so misses never add up. */
static void test_slow_worker_with_progress_not_dead(void **state)
{
	struct canary_settings set = defaults();
	struct sim s;

	set.dead_misses = 2;
	sim_init(&s, &set, 1);
	sim_ready(&s);
	canary_request_started(&s.c, 10);
	for (int i = 0; i < 5; i++) {
		double t = 20 + i;
		canary_request_timed_out(&s.c, t);
		assert_int_equal(s.c.state, CANARY_SUSPECT);
		canary_progress(&s.c, t + 0.5, t + 0.4, 0.4);
		assert_int_equal(s.c.state, CANARY_HEALTHY);
	}
}

/* Progress clears only the tiers that missed before it: a deep miss after
 * the step stays. */
static void test_progress_clears_only_older_misses(void **state)
{
	struct canary_settings set = defaults();
	struct sim s;

	sim_init(&s, &set, 1);
	sim_ready(&s);
	canary_request_started(&s.c, 10);
	canary_request_timed_out(&s.c, 12);
	s.c.misses[CANARY_TIER_DEEP] = 1; /* as if a deep probe missed at 14 */
	s.c.last_miss_at[CANARY_TIER_DEEP] = 14;
	canary_progress(&s.c, 15, 13, 0.1);
	assert_int_equal(s.c.misses[CANARY_TIER_PROGRESS], 0);
	assert_int_equal(s.c.misses[CANARY_TIER_DEEP], 1);
	assert_int_equal(s.c.state, CANARY_SUSPECT);
}

static void test_request_timed_out_suspect(void **state)
{
	struct canary_settings set = defaults();
	struct sim s;

	sim_init(&s, &set, 1);
	sim_ready(&s);
	canary_request_started(&s.c, 1);
	canary_progress(&s.c, 2, 2, 0.1);
	canary_request_timed_out(&s.c, 5);
	assert_int_equal(s.c.state, CANARY_SUSPECT);
	assert_int_equal(s.c.misses[CANARY_TIER_PROGRESS], 1);
	assert_true(canary_is_ready(&s.c));
	assert_describe(&s.c, "suspect: progress timeout (1 consecutive miss)");
	assert_int_equal(s.c.outcomes[CANARY_TIER_PROGRESS][CANARY_TIMEOUT], 1);
}

static void test_progress_budget(void **state)
{
	struct canary_settings set = defaults();
	struct canary c;

	canary_init(&c, &set);
	assert_near(canary_progress_budget(&c), 10);
	/* warmup steps while starting feed the budget */
	canary_progress(&c, 0, 0, 1.5);
	assert_int_equal(c.state, CANARY_STARTING);
	assert_near(canary_progress_budget(&c), 15);
	canary_worker_ready(&c, 1);
	canary_progress(&c, 2, 2, 0.5);
	assert_near(canary_progress_budget(&c), 15);
	canary_progress(&c, 3, 3, 2.0);
	assert_near(canary_progress_budget(&c), 20);
	canary_progress(&c, 4, 4, NAN);
	canary_progress(&c, 5, 5, -1);
	canary_progress(&c, 6, 6, 0);
	canary_progress(&c, 7, 7, INFINITY);
	assert_near(canary_progress_budget(&c), 20);
	/* the slow steps age out after CANARY_STEPS quicker ones */
	for (int i = 0; i < CANARY_STEPS - 1; i++)
		canary_progress(&c, 8 + i, 8 + i, 0.2);
	assert_near(canary_progress_budget(&c), 20);
	canary_progress(&c, 100, 100, 0.2);
	assert_near(canary_progress_budget(&c), 10);

	/* explicit budget wins */
	set.progress_timeout_s = 7;
	canary_init(&c, &set);
	canary_progress(&c, 0, 0, 5);
	assert_near(canary_progress_budget(&c), 7);
	canary_worker_ready(&c, 0);
	canary_request_started(&c, 0);
	assert_false(canary_tick(&c, 7, 0).progress_miss);
	assert_true(canary_tick(&c, 7.5, 0).progress_miss);
}

static void test_auto_budget_stall(void **state)
{
	struct canary_settings set = defaults();
	struct sim s;
	int miss_at = -1;

	sim_init(&s, &set, 1);
	sim_ready(&s);
	canary_request_started(&s.c, 0);
	canary_progress(&s.c, 0, 0, 3.0); /* budget 30 s */
	for (int t = 1; t <= 40 && miss_at < 0; t++)
		if (sim_tick(&s).progress_miss)
			miss_at = t;
	assert_int_equal(miss_at, 31);
}

static void test_finish_with_others_in_flight(void **state)
{
	struct canary_settings set = defaults();
	struct sim s;

	set.progress_timeout_s = 10;
	sim_init(&s, &set, 1);
	sim_ready(&s);
	canary_request_started(&s.c, 0);
	canary_request_started(&s.c, 5); /* does not restart the stall clock */
	assert_int_equal(s.c.busy, 2);
	assert_near(s.c.progress_at, 0);
	canary_request_finished(&s.c, 8); /* the other one is still running */
	for (int t = 1; t <= 18; t++)
		assert_false(sim_tick(&s).progress_miss);
	assert_true(sim_tick(&s).progress_miss); /* 19 > 8 + 10 */
	canary_request_finished(&s.c, s.now);
	assert_int_equal(s.c.busy, 0);
	assert_near(sim_tick(&s).stalled_s, 0);
}

static void test_transition_ring(void **state)
{
	struct canary_settings set = defaults();
	struct canary_transition tr[2 * CANARY_RING];
	struct sim s;
	int n;

	sim_init(&s, &set, 1);
	sim_ready(&s); /* 1 transition */
	for (int p = 0; p < 6; p++)
		sim_probe_answer(&s, CANARY_OK); /* 2 each */
	assert_int_equal(s.c.ring_dropped, 13 - CANARY_RING);
	n = drain(&s.c, tr, 3);
	assert_int_equal(n, 3);
	assert_int_equal(tr[0].to, CANARY_PROBING); /* oldest kept: the 6th */
	assert_int_equal(tr[0].event, CANARY_EV_PROBE);
	assert_int_equal(tr[1].to, CANARY_HEALTHY);
	n = drain(&s.c, tr, 2 * CANARY_RING);
	assert_int_equal(n, CANARY_RING - 3);
	assert_int_equal(tr[n - 1].to, CANARY_HEALTHY);
	assert_true(tr[n - 1].at > tr[0].at);
	assert_int_equal(drain(&s.c, tr, 2 * CANARY_RING), 0);
	assert_int_equal(drain(&s.c, tr, 0), 0);
}

static void test_describe_truncates(void **state)
{
	struct canary_settings set = defaults();
	char small[8];
	struct sim s;
	int n;

	set.dead_misses = 1;
	sim_init(&s, &set, 1);
	sim_ready(&s);
	sim_probe_answer(&s, CANARY_ERROR);
	n = canary_describe(&s.c, small, sizeof(small));
	assert_int_equal(n, (int)strlen("dead: shallow probe error (1 consecutive miss)"));
	assert_string_equal(small, "dead: s");
	assert_int_equal(canary_describe(&s.c, NULL, 0), n);
}

static void test_cause_follows_worst_tier(void **state)
{
	struct canary_settings set = defaults();
	struct sim s;

	set.deep_every_n = 2;
	set.dead_misses = 4;
	sim_init(&s, &set, 1);
	sim_ready(&s);
	sim_probe_answer(&s, CANARY_TIMEOUT); /* shallow 1 (worker-side timeout) */
	assert_int_equal(s.c.cause_tier, CANARY_TIER_SHALLOW);
	assert_int_equal(s.c.cause_outcome, CANARY_TIMEOUT);
	sim_probe_answer(&s, CANARY_OK); /* deep turn deferred: shallow OK */
	sim_probe_answer(&s, CANARY_MISMATCH); /* deep 1 */
	assert_int_equal(s.c.cause_tier, CANARY_TIER_DEEP);
	sim_probe_answer(&s, CANARY_ERROR); /* shallow 1: tie, cause kept */
	assert_int_equal(s.c.cause_tier, CANARY_TIER_DEEP);
	sim_probe_answer(&s, CANARY_OK); /* deep turn deferred again: shallow OK */
	sim_probe_answer(&s, CANARY_OK); /* deep OK: no tier missing */
	assert_int_equal(s.c.state, CANARY_HEALTHY);
	assert_int_equal(s.c.cause_tier, CANARY_TIER_NONE);
	sim_probe_answer(&s, CANARY_ERROR); /* shallow 1 */
	sim_probe_answer(&s, CANARY_ERROR); /* shallow 2 (deep turn deferred) */
	sim_probe_answer(&s, CANARY_OK);    /* deep turn deferred: shallow OK */
	sim_probe_answer(&s, CANARY_ERROR); /* deep 1 */
	assert_int_equal(s.c.cause_tier, CANARY_TIER_DEEP);
	assert_describe(&s.c, "suspect: deep probe error (1 consecutive miss)");
}

/* Hanging-device simulation: the worker answers `oks` probes at once, then
 * never again. Ticks every `tick` seconds from t = 0; ready at `phase`.
 * Returns the dead edge time; *first_miss the first timeout, *last_ok the
 * last activity (ready or last answer), *first_hang_deep whether the first
 * unanswered probe was deep. */
static double hang_sim(const struct canary_settings *set, double tick, double phase, int oks,
		       double *first_miss, double *last_ok, int *first_hang_deep)
{
	struct canary_transition tr[CANARY_RING];
	struct canary c;
	int answered = 0;

	canary_init(&c, set);
	canary_worker_ready(&c, phase);
	*last_ok = phase;
	*first_miss = -1;
	*first_hang_deep = -1;
	for (long k = (long)floor(phase / tick) + 1; k < 1000000; k++) {
		double now = k * tick;
		struct canary_action a = canary_tick(&c, now, 0);
		int n;

		if (a.timed_out && *first_miss < 0)
			*first_miss = now;
		if (a.kind == CANARY_ACT_PROBE && answered < oks) {
			double at = now + tick / 10;

			assert_int_equal(canary_probe_result(&c, at, a.generation, a.tier,
							     CANARY_OK, tick / 10), CANARY_OK);
			*last_ok = at;
			answered++;
		} else if (a.kind == CANARY_ACT_PROBE && *first_hang_deep < 0) {
			*first_hang_deep = a.tier == CANARY_TIER_DEEP;
		}
		n = canary_drain_transitions(&c, tr, CANARY_RING);
		for (int i = 0; i < n; i++)
			if (tr[i].to == CANARY_DEAD)
				return tr[i].at;
	}
	fail_msg("never dead");
	return -1;
}

static void test_detection_bound(void **state)
{
	static const struct {
		double wait, timeout, tick;
		int misses, every_n, deep;
	} cases[] = {
		{ 5, 3, 1, 3, 3, 1 },     /* defaults */
		{ 1, 1, 0.2, 2, 3, 1 },   /* black-box test sizes */
		{ 1, 1, 0.1, 2, 2, 1 },
		{ 0.5, 2, 0.25, 4, 2, 1 },
		{ 5, 3, 1, 1, 3, 1 },
		{ 5, 3, 1, 3, 3, 0 },
		{ 2, 0.3, 0.05, 5, 4, 1 },
	};
	static const double phases[] = { 0, 0.013, 0.37, 0.5, 0.999 };
	int checked = 0;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct canary_settings set = defaults();

		set.wait_s = cases[i].wait;
		set.probe_timeout_s = cases[i].timeout;
		set.deep_timeout_s = 60;
		set.dead_misses = cases[i].misses;
		set.deep_every_n = cases[i].every_n;
		set.deep_enabled = cases[i].deep;
		for (size_t p = 0; p < sizeof(phases) / sizeof(phases[0]); p++) {
			for (int oks = 0; oks < 7; oks++) {
				double tick = cases[i].tick, phase = phases[p] * tick * 7;
				double per_miss = set.probe_timeout_s + tick;
				double bound = set.wait_s + set.dead_misses * per_miss + tick;
				double first_miss, last_ok, dead_at, least;
				int deep_first;

				dead_at = hang_sim(&set, tick, phase, oks, &first_miss, &last_ok,
						   &deep_first);
				/* a wedge that begins on a deep probe costs its timeout */
				if (deep_first)
					bound += set.deep_timeout_s + tick;
				assert_true(dead_at - last_ok <= bound + EPS);
				assert_true(first_miss > 0);
				assert_true(dead_at >= first_miss - EPS);
				assert_true(first_miss - last_ok >= set.wait_s + set.probe_timeout_s
								     - EPS);
				least = set.wait_s + set.dead_misses * set.probe_timeout_s;
				if (!deep_first)
					assert_true(dead_at - last_ok >= least - EPS);
				checked++;
			}
		}
	}
	assert_int_equal(checked, 7 * 5 * 7);
}

/* The same with grace: nothing before grace ends, then the bound from it. */
static void test_detection_bound_after_grace(void **state)
{
	struct canary_settings set = defaults();
	double first_miss, last_ok, dead_at, bound;
	int deep_first;

	set.grace_s = 30;
	dead_at = hang_sim(&set, 1, 0.4, 0, &first_miss, &last_ok, &deep_first);
	bound = set.dead_misses * (set.probe_timeout_s + 1) + 1;
	assert_true(first_miss >= 0.4 + 30 + set.probe_timeout_s);
	assert_true(dead_at <= 0.4 + 30 + bound + EPS);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_init_starting),
		cmocka_unit_test(test_disabled_never_probes),
		cmocka_unit_test(test_ready_probe_ok),
		cmocka_unit_test(test_idle_wait_after_request),
		cmocka_unit_test(test_three_timeouts_dead),
		cmocka_unit_test(test_one_timeout_suspect_then_healthy),
		cmocka_unit_test(test_error_dead_with_one_miss),
		cmocka_unit_test(test_settings_clamped),
		cmocka_unit_test(test_success_resets_only_its_tier),
		cmocka_unit_test(test_deep_streak_survives_shallow_ok),
		cmocka_unit_test(test_wrong_digest_dead),
		cmocka_unit_test(test_deep_cadence),
		cmocka_unit_test(test_generation_increasing),
		cmocka_unit_test(test_one_probe_in_flight),
		cmocka_unit_test(test_request_aborts_probe),
		cmocka_unit_test(test_skip_on_full_channel),
		cmocka_unit_test(test_grace),
		cmocka_unit_test(test_late_old_generation),
		cmocka_unit_test(test_answer_after_deadline_is_timeout),
		cmocka_unit_test(test_miss_reprobes_at_next_tick),
		cmocka_unit_test(test_dead_sticky_then_recovers),
		cmocka_unit_test(test_lost_then_ready),
		cmocka_unit_test(test_busy_progress_never_trips),
		cmocka_unit_test(test_progress_misses_to_dead),
		cmocka_unit_test(test_progress_resets_all_tiers),
		cmocka_unit_test(test_request_timed_out_suspect),
		cmocka_unit_test(test_deadlines_dead_not_undone_by_older_progress),
		cmocka_unit_test(test_slow_worker_with_progress_not_dead),
		cmocka_unit_test(test_progress_clears_only_older_misses),
		cmocka_unit_test(test_progress_budget),
		cmocka_unit_test(test_auto_budget_stall),
		cmocka_unit_test(test_finish_with_others_in_flight),
		cmocka_unit_test(test_transition_ring),
		cmocka_unit_test(test_describe_truncates),
		cmocka_unit_test(test_cause_follows_worst_tier),
		cmocka_unit_test(test_detection_bound),
		cmocka_unit_test(test_detection_bound_after_grace),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
