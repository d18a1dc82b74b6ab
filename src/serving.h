/* serving.h: who may serve, and if nobody, why.
 *
 * The one place that decides whether a worker is ready (alive, warmed up,
 * its canary not dead unless CANARY_GATE_READINESS=false, not stalled),
 * whether the server is serving (not draining, at least MIN_READY_WORKERS
 * ready), why not, and whether any worker can still recover. /health,
 * /tt-liveness, /livez, sd_notify, admission and dispatch all ask here.
 * Reads the supervisor's state only. */
#ifndef MEDIAD_SERVING_H
#define MEDIAD_SERVING_H

#include <stddef.h>

struct server;
struct worker;

int serving_worker_ready(const struct server *s, const struct worker *w);
int serving_ready_workers(const struct server *s);
int serving_is_serving(const struct server *s);
/* Why the server is not serving (for 503 bodies); empty when serving. Every
 * value it reads must also be in the health body cache key (api_health.c). */
void serving_reason(const struct server *s, char *out, size_t n);
/* 1 while some worker has not exhausted its restart budget (/livez 200,
 * the systemd watchdog is fed). */
int serving_recoverable(const struct server *s);
/* Tell the scheduler which workers may get work now (after any change of
 * readiness), and count a probe in flight as load. */
void serving_update_dispatch(struct server *s);
/* "starting", "warming_up", "ready", "restarting", "failed", "stopped". */
const char *serving_worker_state_name(int state);

#endif
