/* canary.h: the per-worker canary state machine of HEALTH.md sections 2-4.
 *
 * Pure logic: no I/O, no clock reads, no allocation, no logging. The
 * supervisor owns one struct canary per worker, feeds it events with the
 * monotonic time `now` (seconds), performs the actions canary_tick() returns
 * (send a probe, count a skip), and drains the state transitions to log them
 * and to update metrics. Everything the supervisor needs to render /health,
 * /tt-liveness and /metrics is a documented field of the struct.
 *
 * Rules (HEALTH.md):
 * - three tiers: shallow and deep probes go only to idle workers; a busy
 *   worker is judged by the progress it reports instead;
 * - misses are counted per tier; a success resets only its own tier, progress
 *   on a real request resets every tier whose last miss came before that
 *   progress was made (a step made before a miss, read after it, proves
 *   nothing about the worker since the miss); severity is the worst tier:
 *   >= dead_misses -> DEAD, > 0 -> SUSPECT, else HEALTHY. PROBING is shown only
 *   while a probe is in flight and the severity is healthy, so a dead or
 *   suspect worker never flaps back to a 200 while it is re-probed;
 * - at most one probe in flight per worker; every probe carries a generation
 *   (strictly increasing, never 0) so an answer to an abandoned probe is
 *   recognised as late and dropped; a real request arriving during a probe
 *   aborts it without a miss; a full channel is a skip, not a miss;
 * - no probes during the startup grace after the worker became ready, and
 *   none until the worker has been idle for wait_s;
 * - probe number k (1, 2, ...) is deep when deep probes are enabled and k is
 *   a multiple of deep_every_n.
 *
 * Timing, and why: a probe is timed out at the first tick strictly after its
 * deadline, and a probe that ended in a miss (timeout, error, wrong digest)
 * on a worker that is not yet dead is followed by the next probe at once (the
 * same tick for a timeout, the next tick for a miss answer) instead of after
 * wait_s. A deep probe that falls due while the shallow tier is missing is
 * deferred (a shallow probe goes instead, without using up the deep turn), so
 * a worker that stops answering is declared dead within
 *     wait_s + dead_misses x (probe_timeout_s + tick) + tick
 * of its last activity (grace aside). Outside that bound: a wedge that
 * begins while a deep probe is in flight costs that probe's deep_timeout_s +
 * tick on top, and with deep_every_n = 1 every probe is deep, so
 * deep_timeout_s replaces probe_timeout_s. An answer that arrives after its
 * probe's deadline (before a tick noticed) counts as a timeout, so the
 * verdict does not depend on the tick's phase. A healthy or dead worker
 * waits wait_s after each probe, so a dead worker under CANARY_ON_DEAD=gate
 * is re-probed at the normal cadence and recovers on the failing tier's next
 * success. A probe that ends without a result (aborted, abandoned) or is
 * skipped does not use up its number: the same tier goes next.
 *
 * Thread safety: none; one thread (the supervisor's event loop) owns it. */
#ifndef MEDIAD_CANARY_H
#define MEDIAD_CANARY_H

#include <stddef.h>
#include <stdint.h>

/* Transitions kept until drained; older ones are overwritten (and counted). */
#define CANARY_RING 8
/* Recent progress step durations kept for the automatic progress budget. */
#define CANARY_STEPS 32
/* Automatic progress budget: max(floor, factor x slowest recent step). */
#define CANARY_PROGRESS_FLOOR_S 10.0
#define CANARY_PROGRESS_FACTOR 10.0

/* The settings of HEALTH.md section 4 that concern one worker's canary.
 * canary_init() copies them and clamps nonsense: dead_misses and
 * deep_every_n to at least 1, negative durations to 0. */
struct canary_settings {
	int enabled;               /* CANARY_ENABLED: 0 = state DISABLED, never probes */
	int deep_enabled;          /* CANARY_DEEP_PROBE_ENABLED: 0 = shallow probes only */
	double wait_s;             /* CANARY_WAIT_SECONDS: idle time before a probe */
	double probe_timeout_s;    /* CANARY_PROBE_TIMEOUT_SECONDS: shallow deadline */
	double deep_timeout_s;     /* CANARY_DEEP_PROBE_TIMEOUT_SECONDS: deep deadline */
	double grace_s;            /* CANARY_STARTUP_GRACE_SECONDS: no probes after ready */
	double progress_timeout_s; /* CANARY_PROGRESS_TIMEOUT_SECONDS: 0 = automatic */
	int dead_misses;           /* CANARY_DEAD_MISSES: consecutive misses of a tier -> dead */
	int deep_every_n;          /* CANARY_DEEP_EVERY_N: every Nth probe is deep */
};

enum canary_state {
	CANARY_STARTING, /* worker process starting or warming up */
	CANARY_HEALTHY,
	CANARY_PROBING,  /* healthy, with a probe in flight */
	CANARY_SUSPECT,  /* some tier missed, fewer than dead_misses times in a row */
	CANARY_DEAD,     /* some tier missed dead_misses times in a row */
	CANARY_DISABLED, /* CANARY_ENABLED=false: no monitor */
	CANARY_STATE_COUNT
};

enum canary_tier {
	CANARY_TIER_NONE = -1, /* an event that concerns no tier (ready, lost) */
	CANARY_TIER_SHALLOW,
	CANARY_TIER_DEEP,
	CANARY_TIER_PROGRESS,
	CANARY_TIER_COUNT
};

enum canary_outcome {
	CANARY_OK,
	CANARY_MISMATCH, /* deep probe answered with a wrong digest (rendered "miss") */
	CANARY_TIMEOUT,  /* no answer (or no progress) before the deadline */
	CANARY_ERROR,    /* the worker answered that the probe failed */
	CANARY_LATE,     /* answer to a probe that is no longer in flight: dropped */
	CANARY_SKIPPED,  /* a probe was due but the worker's channel was full */
	CANARY_ABORTED,  /* the probe was abandoned: real request or worker lost */
	CANARY_OUTCOME_COUNT
};

/* What caused a transition. */
enum canary_event {
	CANARY_EV_READY,    /* canary_worker_ready() */
	CANARY_EV_LOST,     /* canary_worker_lost() */
	CANARY_EV_PROBE,    /* a probe was sent (canary_tick()) */
	CANARY_EV_ANSWER,   /* canary_probe_result() */
	CANARY_EV_TIMEOUT,  /* a probe passed its deadline (canary_tick()) */
	CANARY_EV_ABORT,    /* a real request aborted a probe (canary_request_started()) */
	CANARY_EV_STALL,    /* a busy worker made no progress for a budget (canary_tick()) */
	CANARY_EV_DEADLINE, /* a real request passed its hard deadline */
	CANARY_EV_PROGRESS, /* a real request made progress (canary_progress()) */
	CANARY_EV_COUNT
};

/* One state change. tier and outcome are those of the event: the probe's
 * tier and recorded outcome for PROBE (CANARY_OK), ANSWER, TIMEOUT and ABORT
 * (CANARY_ABORTED); CANARY_TIER_PROGRESS with CANARY_TIMEOUT for STALL and
 * DEADLINE, with CANARY_OK for PROGRESS; CANARY_TIER_NONE for READY
 * (CANARY_OK) and LOST (CANARY_ABORTED). latency_s: the probe's latency for
 * ANSWER, time since sending for TIMEOUT and ABORT, time without progress for
 * STALL, 0 otherwise. at: the `now` of the event. */
struct canary_transition {
	enum canary_state from, to;
	enum canary_event event;
	enum canary_tier tier;
	enum canary_outcome outcome;
	double at;
	double latency_s;
};

/* The probe in flight, if active. */
struct canary_probe {
	int active;
	enum canary_tier tier;
	uint64_t generation;
	double sent_at;
	double deadline;   /* sent_at + the tier's timeout */
	int numbered;      /* it used up a probe number (returned on abort) */
};

enum canary_act {
	CANARY_ACT_NONE,    /* nothing to send */
	CANARY_ACT_PROBE,   /* send a probe of `tier` with `generation`, due by `deadline` */
	CANARY_ACT_SKIPPED, /* a probe of `tier` was due, the channel is full: count a skip */
};

/* What canary_tick() asks for and what it noticed. timed_out and
 * progress_miss are reported whatever `kind` is (a timeout and the next
 * probe can come in the same tick); a progress miss is the supervisor's cue
 * to fail the request in flight if it wants to. */
struct canary_action {
	enum canary_act kind;
	enum canary_tier tier;       /* PROBE, SKIPPED: the probe's tier; else NONE */
	uint64_t generation;         /* PROBE: the generation to put on the probe; else 0 */
	double deadline;             /* PROBE: when it times out; else 0 */
	int timed_out;               /* the probe in flight timed out: a TIMEOUT miss */
	enum canary_tier timeout_tier;  /* its tier (NONE when !timed_out) */
	uint64_t timeout_generation; /* its generation (0 when !timed_out) */
	int progress_miss;           /* a progress miss was counted on this tick */
	double stalled_s;            /* busy: seconds since the last progress; idle: 0 */
};

/* One worker's canary. Callers read the fields (documented below) and change
 * them only through the functions. */
struct canary {
	struct canary_settings set;
	enum canary_state state;
	int misses[CANARY_TIER_COUNT];       /* consecutive misses per tier */
	uint64_t probes_sent[CANARY_TIER_COUNT]; /* shallow and deep probes sent */
	/* outcomes[tier][outcome]: answers, timeouts, skips, aborts and late
	 * answers per tier; for the progress tier only misses are counted. */
	uint64_t outcomes[CANARY_TIER_COUNT][CANARY_OUTCOME_COUNT];
	double last_ok_at[CANARY_TIER_COUNT]; /* monotonic; < 0 = never */
	double last_probe_ok;                 /* last successful probe of any tier; < 0 = never */
	int busy;                             /* real requests in flight on this worker */
	struct canary_probe probe;            /* the probe in flight */
	/* Why the worker is suspect or dead: the worst tier and its last miss;
	 * CANARY_TIER_NONE / CANARY_OK while the severity is healthy. */
	enum canary_tier cause_tier;
	enum canary_outcome cause_outcome;

	/* internal bookkeeping */
	enum canary_outcome last_miss[CANARY_TIER_COUNT];
	double last_miss_at[CANARY_TIER_COUNT]; /* when each tier last missed */
	double ready_at;        /* when the worker became ready (grace start) */
	double idle_since;      /* last activity: ready, request end, probe end */
	double progress_at;     /* last progress (or busy start) */
	int stall_counted;      /* progress misses counted since progress_at */
	uint64_t probe_number;  /* probes numbered so far (deep cadence) */
	uint64_t generation;    /* last generation issued */
	double steps[CANARY_STEPS];
	int n_steps, step_pos;
	struct canary_transition ring[CANARY_RING];
	int ring_start, ring_len;
	uint64_t ring_dropped;  /* transitions overwritten before being drained */
};

/* Reset c and copy the settings: state STARTING, or DISABLED when
 * !s->enabled. No transition is recorded for the initial state. */
void canary_init(struct canary *c, const struct canary_settings *s);

/* The worker finished warming up: HEALTHY, every tier's misses 0, any probe
 * abandoned, the startup grace and the idle timer start at now. Also valid
 * from any other state (the canary starts over). No effect when DISABLED. */
void canary_worker_ready(struct canary *c, double now);

/* The worker process died or is being restarted: STARTING, misses cleared,
 * the probe in flight abandoned (its answer will be late), the requests in
 * flight forgotten (busy 0; later canary_request_finished() calls for them
 * are ignored). No effect on the state when DISABLED. */
void canary_worker_lost(struct canary *c, double now);

/* A real request was sent to the worker. The first one (busy 0 -> 1) starts
 * progress tracking; a probe in flight is aborted: no miss, its generation
 * retired, its probe number given back so the same tier goes next. */
void canary_request_started(struct canary *c, double now);

/* A real request on the worker ended (any way). Restarts the idle timer;
 * while other requests remain it counts as progress for stall tracking
 * (it does not clear misses). Ignored when the worker is not busy. */
void canary_request_finished(struct canary *c, double now);

/* A real request passed REQUEST_PROCESSING_TIMEOUT_SECONDS (HEALTH.md: 504
 * and the worker is suspect): one progress miss, at now. A slow worker
 * that keeps making progress clears it with its next step; one that made no
 * step since keeps it, and dead_misses such deadlines in a row make it DEAD
 * (and only progress made after the last of them, or a restart, revives
 * it). Returns 1 when a miss was counted, 0 when ignored (not running:
 * STARTING or DISABLED). */
int canary_request_timed_out(struct canary *c, double now);

/* The worker made progress on a real request (a denoising step, a token, an
 * audio chunk): the last step was made at step_at (<= now; the supervisor
 * reads the progress page a tick later) and took step_s (<= 0 or NaN:
 * unknown). Resets the stall timer and the misses of every tier whose last
 * miss is older than step_at: progress made before a miss does not undo it.
 * Steps reported while STARTING (warmup) only feed the automatic budget. */
void canary_progress(struct canary *c, double now, double step_at, double step_s);

/* The current progress budget in seconds: the explicit progress_timeout_s,
 * or max(CANARY_PROGRESS_FLOOR_S, CANARY_PROGRESS_FACTOR x the slowest of
 * the last CANARY_STEPS steps). */
double canary_progress_budget(const struct canary *c);

/* Call every tick. In order: (a) a probe past its deadline (now > deadline)
 * is a TIMEOUT miss of its tier and is retired; (b) a busy worker gets no
 * probe, but a progress miss when it has gone without progress for one more
 * whole budget (at most one per tick); (c) an idle worker past its grace,
 * with no probe in flight and idle for wait_s, is due a probe: PROBE, or
 * SKIPPED when channel_full (no miss, the probe number is not used up, the
 * next tick tries again). Nothing happens while STARTING or DISABLED. */
struct canary_action canary_tick(struct canary *c, double now, int channel_full);

/* The worker answered probe `generation` of `tier` with `outcome` (OK,
 * MISMATCH, ERROR or TIMEOUT; anything else is taken as ERROR) after
 * latency_s. Returns the outcome as recorded: CANARY_LATE (and nothing but
 * the late counter changes) when that probe is not the one in flight;
 * CANARY_TIMEOUT for an OK answer that came after the probe's deadline;
 * otherwise the outcome given. OK resets the tier's misses and sets its
 * last_ok_at and last_probe_ok to now; any other outcome is one miss. */
enum canary_outcome canary_probe_result(struct canary *c, double now, uint64_t generation,
					enum canary_tier tier, enum canary_outcome outcome,
					double latency_s);

/* Move up to max recorded transitions, oldest first, to out; returns how
 * many. Those are then forgotten. */
int canary_drain_transitions(struct canary *c, struct canary_transition *out, int max);

/* Why the worker is in its state, for /health and logs, e.g.
 * "dead: deep probe timeout (3 consecutive misses)" or "healthy"; the caller
 * adds "worker 0 ". snprintf convention: the length the full text needs;
 * out (of n bytes, may be 0) always NUL-terminated when n > 0. */
int canary_describe(const struct canary *c, char *out, size_t n);

/* 1 when the canary does not keep the worker out of rotation: HEALTHY,
 * PROBING, SUSPECT, and DISABLED (no monitor). 0 for STARTING and DEAD.
 * The supervisor applies CANARY_GATE_READINESS itself. */
int canary_is_ready(const struct canary *c);

/* Names as used in JSON and metric labels; "unknown" when out of range.
 * States: "starting" "healthy" "probing" "suspect" "dead" "disabled".
 * Tiers: "shallow" "deep" "progress" ("none" for CANARY_TIER_NONE).
 * Outcomes: "ok" "miss" "timeout" "error" "late" "skipped" "aborted".
 * Events: "ready" "lost" "probe" "answer" "timeout" "abort" "stall"
 * "deadline" "progress". Actions: "none" "probe" "skipped". */
const char *canary_state_name(enum canary_state s);
const char *canary_tier_name(enum canary_tier t);
const char *canary_outcome_name(enum canary_outcome o);
const char *canary_event_name(enum canary_event e);
const char *canary_act_name(enum canary_act a);

#endif
