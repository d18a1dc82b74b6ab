/* serving.c: who may serve, and if nobody, why (see serving.h). */
#include "serving.h"

#include <stdio.h>

#include "server.h"
#include "banned.h"

const char *serving_worker_state_name(int st)
{
	static const char *names[] = {"starting", "warming_up", "ready", "restarting", "failed",
				      "stopped"};
	return st >= 0 && st <= W_STOPPED ? names[st] : "unknown";
}

int serving_worker_ready(const struct server *s, const struct worker *w)
{
	if (w->state != W_READY)
		return 0;
	if (!s->cfg->canary_gate_readiness)
		return 1;
	return !w->stalled && canary_is_ready(&w->canary);
}

int serving_ready_workers(const struct server *s)
{
	int n = 0;

	for (int i = 0; i < s->n_workers; i++)
		if (serving_worker_ready(s, &s->workers[i]))
			n++;
	return n;
}

int serving_is_serving(const struct server *s)
{
	return !s->draining && serving_ready_workers(s) >= s->cfg->min_ready_workers;
}

int serving_recoverable(const struct server *s)
{
	for (int i = 0; i < s->n_workers; i++)
		if (s->workers[i].state != W_FAILED)
			return 1;
	return 0;
}

void serving_reason(const struct server *s, char *out, size_t n)
{
	size_t len = 0;
	int ready = serving_ready_workers(s);

	out[0] = 0;
	if (s->draining) {
		snprintf(out, n, "draining");
		return;
	}
	if (ready >= s->cfg->min_ready_workers)
		return;
	int failed = 0, overdue = 0;
	for (int i = 0; i < s->n_workers; i++) {
		failed += s->workers[i].state == W_FAILED;
		overdue += s->workers[i].warmup_overdue && s->workers[i].state != W_READY;
	}
	if (!s->ever_ready && !failed && !overdue) {
		snprintf(out, n, "model warming up");
		return;
	}
	if (ready == 0)
		len = (size_t)snprintf(out, n, "no workers are ready");
	else
		len = (size_t)snprintf(out, n, "not enough ready workers (%d of %d required)",
				       ready, s->cfg->min_ready_workers);
	for (int i = 0; i < s->n_workers && len < n; i++) {
		const struct worker *w = &s->workers[i];
		char why[200];
		if (serving_worker_ready(s, w))
			continue;
		if (w->state == W_READY && w->stalled) {
			snprintf(why, sizeof(why),
				 "stalled: a request made no progress for the progress budget");
		} else if (w->state == W_READY && w->canary.state == CANARY_DEAD) {
			canary_describe(&w->canary, why, sizeof(why));
		} else if (w->state == W_READY) {
			snprintf(why, sizeof(why), "not ready (canary %s)",
				 canary_state_name(w->canary.state));
		} else {
			snprintf(why, sizeof(why), "%s%s%s", serving_worker_state_name(w->state),
				 w->down_reason[0] ? ": " : "", w->down_reason);
		}
		len += (size_t)snprintf(out + len, n - len, "; worker %s %s", w->id, why);
	}
}

void serving_update_dispatch(struct server *s)
{
	for (int i = 0; i < s->n_workers; i++) {
		struct worker *w = &s->workers[i];
		int on = serving_worker_ready(s, w) && w->sock >= 0 && !w->stalled;
		sched_set_dispatchable(&s->sched, i, on);
		/* a probe in flight counts as load, so an idle worker is preferred
		 * over one whose probe a request would have to wait behind */
		s->sched.workers[i].extra_load = w->canary.probe.active ? 1 : 0;
	}
}
