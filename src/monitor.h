/* monitor.h: the canary driver, one canary per worker.
 *
 * Feeds each worker's pure state machine (canary.c) with what happens:
 * ready, lost, probe answers, progress read from the shared page, request
 * deadlines; sends the probes canary_tick() asks for; records the probe
 * metrics and logs the transitions; and acts on a dead edge per
 * CANARY_ON_DEAD (fail the worker's requests, gate, kill for a restart, or
 * exit). Also the warmup deadline (WORKER_WARMUP_TIMEOUT_SECONDS), where the
 * canary cannot see yet. */
#ifndef MEDIAD_MONITOR_H
#define MEDIAD_MONITOR_H

struct server;
struct worker;
struct ipc_frame;

void monitor_init(struct server *s);
/* The worker sent READY (children.c told us). */
void monitor_worker_ready(struct server *s, struct worker *w);
/* The worker's process is gone. */
void monitor_worker_lost(struct server *s, struct worker *w);
/* An IPC_PROBE_RESULT frame from w. */
void monitor_on_probe_result(struct server *s, struct worker *w, const struct ipc_frame *f);
/* Progress, probes and timeouts of every ready worker (every tick). */
void monitor_tick(struct server *s, double now);
/* Act on what the canaries recorded since the last call: log transitions,
 * update who may get work, act on dead edges. Call after anything that fed
 * a canary from outside the monitor (e.g. request deadlines). */
void monitor_settle_all(struct server *s);
/* When w's current process must have sent READY (monotonic s), or 0 when no
 * warmup deadline applies: timeout_s <= 0 (off), not starting or warming up,
 * no process, or already acted on. Pure: reads w only. */
double monitor_warmup_deadline(const struct worker *w, double timeout_s);
/* Act on every worker past its warmup deadline (every loop iteration; the
 * loop's wait ends at the earliest deadline). */
void monitor_warmup_due(struct server *s, double now);

#endif
