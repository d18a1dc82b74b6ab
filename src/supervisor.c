/* supervisor.c: the supervisor's event loop, dispatch and request endings.
 *
 * One epoll set holds libmicrohttpd's epoll fd, a signalfd (SIGCHLD,
 * SIGTERM, SIGINT) and every worker socket. The wait timeout is the earliest
 * of the canary tick, the oldest request deadline, a batch delay, a
 * pending restart and a worker's warmup deadline, so deadlines are enforced
 * without a timer per request. */
#include "server.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <microhttpd.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "log.h"
#include "runner.h"
#include "util.h"

#define TAG_MHD 1
#define TAG_SIG 2
#define TAG_WORKER 16

uint64_t server_new_id(struct server *s)
{
	return ++s->next_id;
}

int server_ready_workers(const struct server *s)
{
	int n = 0;

	for (int i = 0; i < s->n_workers; i++)
		if (worker_is_ready(s, &s->workers[i]))
			n++;
	return n;
}

int server_is_serving(const struct server *s)
{
	return !s->draining && server_ready_workers(s) >= s->cfg->min_ready_workers;
}

void server_not_serving_reason(const struct server *s, char *out, size_t n)
{
	size_t len = 0;
	int ready = server_ready_workers(s);

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
		if (worker_is_ready(s, w))
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
			snprintf(why, sizeof(why), "%s%s%s", worker_state_name(w->state),
				 w->down_reason[0] ? ": " : "", w->down_reason);
		}
		len += (size_t)snprintf(out + len, n - len, "; worker %s %s", w->id, why);
	}
}

/* Answer a pending request (HTTP or job) with an error and forget it. */
void server_fail_request(struct server *s, struct pending *p, int status, const char *msg)
{
	int was_dispatched = p->sr.worker >= 0;
	int wi = p->sr.worker;

	sched_remove(&s->sched, &p->sr);
	if (was_dispatched) {
		struct worker *w = &s->workers[wi];
		canary_request_finished(&w->canary, now_s());
		if (w->sock >= 0)
			workers_send(s, w, IPC_CANCEL, 0, 0, p->sr.id, NULL, 0, -1);
	}
	if (p->kind == OWN_HTTP) {
		struct hreq *h = p->h;
		log_write(status >= 500 ? LOG_WARN : LOG_INFO, h->request_id, NULL,
			  "request %s failed with %d: %s", h->path, status, msg);
		h->pend = NULL;
		if (h->streaming)
			http_stream_end(s, h, status, msg);
		else
			http_complete_error(s, h, status, msg);
	} else {
		struct job *j = jobs_get(s->jobs, p->job_id);
		if (j && !jobs_is_final(j))
			jobs_fail(j, status, msg);
	}
	if (p->in_fd >= 0)
		close(p->in_fd);
	free(p->params);
	free(p);
}

static void dispatch_batch(struct server *s, int wi, struct sched_req **batch, int n)
{
	struct worker *w = &s->workers[wi];
	double now = now_s();

	for (int i = 0; i < n; i++) {
		struct pending *p = (struct pending *)batch[i];
		int fd = p->in_fd >= 0 ? dup(p->in_fd) : -1;
		canary_request_started(&w->canary, now);
		p->dispatched_at = now;
		if (p->kind == OWN_JOB) {
			struct job *j = jobs_get(s->jobs, p->job_id);
			if (j)
				jobs_set_status(j, JOB_IN_PROGRESS);
		}
		workers_send(s, w, IPC_TASK, i + 1 < n ? IPC_F_BATCH_MORE : 0, p->sr.kind, p->sr.id,
			     p->params, p->params_len, fd);
	}
}

void server_dispatch(struct server *s)
{
	struct sched_req *batch[SCHED_MAX_BATCH];
	double now = now_s();
	int wi, n;

	while ((n = sched_next_batch(&s->sched, now, &wi, batch, &s->batch_wake)) > 0)
		dispatch_batch(s, wi, batch, n);
}

static void expire_deadlines(struct server *s, double now)
{
	struct sched_req *r;

	while ((r = sched_expired(&s->sched, now))) {
		struct pending *p = (struct pending *)r;
		char msg[160];
		if (r->worker >= 0) {
			struct worker *w = &s->workers[r->worker];
			const char *lc[] = {s->cfg->model_runner->name,
					    w->id, "progress"};
			canary_request_timed_out(&w->canary, now);
			metrics_add(s->m_canary_fail, lc, 1);
			w->error_count++;
			snprintf(msg, sizeof(msg),
				 "request exceeded REQUEST_PROCESSING_TIMEOUT_SECONDS (%g s) on "
				 "worker %s",
				 s->cfg->request_processing_timeout_seconds, w->id);
		} else {
			snprintf(msg, sizeof(msg),
				 "request waited in the queue past REQUEST_PROCESSING_TIMEOUT_SECONDS "
				 "(%g s)",
				 s->cfg->request_processing_timeout_seconds);
		}
		server_fail_request(s, p, 504, msg);
	}
}

/* Requests queued while no worker can take them are answered 503 at once
 * rather than left to wait for a restart or their deadline (HEALTH.md: fail
 * over to other ready workers, or 503 when none; never queued to a dead
 * worker). Admission already refuses new requests in that state. */
static void fail_queue_if_hopeless(struct server *s)
{
	char why[512];

	if (!s->sched.q_head || sched_any_dispatchable(&s->sched))
		return;
	server_not_serving_reason(s, why, sizeof(why));
	while (s->sched.q_head)
		server_fail_request(s, (struct pending *)s->sched.q_head, 503,
				    why[0] ? why : "no worker can take the request");
}

static void handle_signals(struct server *s)
{
	struct signalfd_siginfo si;

	while (read(s->sigfd, &si, sizeof(si)) == sizeof(si)) {
		if (si.ssi_signo == SIGCHLD) {
			workers_reap(s);
		} else if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) {
			if (!s->draining) {
				s->draining = 1;
				s->drain_deadline = now_s() + s->cfg->drain_timeout_seconds;
				log_info("%s received: draining (readiness 503, in-flight requests "
					 "finish, up to %g s)",
					 si.ssi_signo == SIGTERM ? "SIGTERM" : "SIGINT",
					 s->cfg->drain_timeout_seconds);
				sd_notify(0, "STOPPING=1\nSTATUS=draining");
			} else {
				log_warn("second signal: stopping now");
				s->stop = 1;
			}
		}
	}
}

/* Answer every live request (shutdown): nobody is left waiting. */
static void fail_all(struct server *s, const char *msg)
{
	struct sched_req *r;

	while ((r = sched_oldest(&s->sched)))
		server_fail_request(s, (struct pending *)r, 503, msg);
}

/* Let libmicrohttpd send what was resumed, for a bounded time. */
static void flush_http(struct server *s)
{
	double until = now_s() + 0.5;

	while (now_s() < until) {
		struct epoll_event ev;
		http_run(s);
		if (epoll_wait(s->mhd_epfd, &ev, 1, 20) <= 0 && !s->resumed)
			break;
		s->resumed = 0;
	}
}

static void notify_status(struct server *s, double now)
{
	static double last_status;
	static char last[160];
	static uint64_t wd_usec;
	static int wd_checked;
	static double last_wd;
	char status[160];
	int recoverable = 0;

	if (!wd_checked) {
		wd_checked = 1;
		if (sd_watchdog_enabled(0, &wd_usec) <= 0)
			wd_usec = 0;
	}
	for (int i = 0; i < s->n_workers; i++)
		if (s->workers[i].state != W_FAILED)
			recoverable = 1;
	/* WATCHDOG=1 only while the loop runs and some worker can still serve */
	if (wd_usec && recoverable && now - last_wd >= (double)wd_usec / 2e6) {
		sd_notify(0, "WATCHDOG=1");
		last_wd = now;
	}
	snprintf(status, sizeof(status), "STATUS=%s: %d/%d workers ready, queue %d",
		 s->draining ? "draining" : server_is_serving(s) ? "serving" : "not serving",
		 server_ready_workers(s), s->n_workers, sched_waiting(&s->sched));
	if (strcmp(status, last) && now - last_status >= 1.0) {
		sd_notify(0, status);
		snprintf(last, sizeof(last), "%s", status);
		last_status = now;
	}
}

static int drain_done(struct server *s)
{
	if (!s->draining)
		return 0;
	if (s->sched.n_live == 0)
		return 1;
	return now_s() >= s->drain_deadline;
}

static int loop_timeout_ms(struct server *s, double now)
{
	double t = s->next_tick;
	struct sched_req *o = sched_oldest(&s->sched);
	unsigned long long mhd_to = 0;

	if (o && o->deadline < t)
		t = o->deadline;
	if (s->batch_wake > 0 && s->batch_wake < t)
		t = s->batch_wake;
	for (int i = 0; i < s->n_workers; i++) {
		const struct worker *w = &s->workers[i];
		double warm = workers_warmup_deadline(w, s->cfg->worker_warmup_timeout_seconds);
		if (w->state == W_DOWN && w->reset_pid == 0 && w->restart_at < t)
			t = w->restart_at;
		if (warm > 0 && !s->draining && warm < t)
			t = warm;
	}
	if (s->draining && now + 0.05 < t)
		t = now + 0.05;
	double ms = (t - now) * 1000.0;
	if (ms < 0)
		ms = 0;
	s->mhd_due = 0;
	if (MHD_get_timeout(s->mhd, &mhd_to) == MHD_YES) {
		/* libmicrohttpd has work of its own (ready connections in its
		 * edge-triggered list, connection timeouts): run it when due */
		s->mhd_due = now + (double)mhd_to / 1000.0;
		if ((double)mhd_to < ms)
			ms = (double)mhd_to;
	}
	return (int)ceil(ms);
}

static int setup_loop(struct server *s)
{
	sigset_t mask;
	struct epoll_event ev = {0};

	sigemptyset(&mask);
	sigaddset(&mask, SIGCHLD);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);
	s->sigfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	s->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (s->sigfd < 0 || s->epfd < 0)
		return -errno;
	ev.events = EPOLLIN;
	ev.data.u64 = TAG_SIG;
	epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->sigfd, &ev);
	ev.data.u64 = TAG_MHD;
	epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->mhd_epfd, &ev);
	return 0;
}

static void metrics_setup(struct server *s)
{
	static const char *const l_route_code[] = {"route", "code", NULL};
	static const char *const l_route[] = {"route", NULL};
	static const char *const l_worker[] = {"worker", NULL};
	static const char *const l_worker_reason[] = {"worker", "reason", NULL};
	static const char *const l_cstate[] = {"model_type", "worker", "state", NULL};
	static const char *const l_cdepth[] = {"model_type", "worker", "depth", NULL};
	static const char *const l_cw[] = {"model_type", "worker", NULL};
	static const char *const l_probes[] = {"worker", "depth", "outcome", NULL};
	static const char *const l_trans[] = {"worker", "from", "to", NULL};
	static const double probe_buckets[] = {0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05,
					       0.1,    0.5,    1,     2.5,   5,    10,   30, 60};
	struct metrics *m = metrics_new();

	s->metrics = m;
	s->m_requests = metrics_family(m, METRIC_COUNTER, "mediad_requests_total",
				       "HTTP requests answered, by route and status code",
				       l_route_code, NULL, 0);
	s->m_duration = metrics_family(m, METRIC_HISTOGRAM, "mediad_request_duration_seconds",
				       "Time from request arrival to response, by route", l_route,
				       NULL, 0);
	s->m_queue = metrics_family(m, METRIC_GAUGE, "mediad_queue_depth",
				    "Requests admitted and waiting for a worker", NULL, NULL, 0);
	s->m_inflight = metrics_family(m, METRIC_GAUGE, "mediad_requests_in_flight",
				       "Requests dispatched to a worker and not yet answered",
				       l_worker, NULL, 0);
	s->m_ready = metrics_family(m, METRIC_GAUGE, "mediad_worker_ready",
				    "1 when the worker is ready to serve (alive, warm, canary not dead)",
				    l_worker, NULL, 0);
	s->m_alive = metrics_family(m, METRIC_GAUGE, "mediad_worker_alive",
				    "1 when the worker process is running", l_worker, NULL, 0);
	s->m_restarts = metrics_family(m, METRIC_COUNTER, "mediad_worker_restarts_total",
				       "Worker restarts, by reason", l_worker_reason, NULL, 0);
	s->m_canary_state = metrics_family(m, METRIC_GAUGE, "tt_canary_state",
					   "Canary state of each worker (one-hot)", l_cstate, NULL, 0);
	s->m_canary_fail = metrics_family(m, METRIC_COUNTER, "tt_canary_failures_total",
					  "Canary probe misses (timeout, error, wrong digest)",
					  l_cdepth, NULL, 0);
	s->m_canary_lat = metrics_family(m, METRIC_HISTOGRAM, "tt_canary_probe_latency_seconds",
					 "Latency of answered canary probes", l_cdepth,
					 probe_buckets, ARRAY_SIZE(probe_buckets));
	s->m_canary_last = metrics_family(m, METRIC_GAUGE, "tt_canary_last_success_timestamp",
					  "Unix time of the last successful probe", l_cw, NULL, 0);
	s->m_probes = metrics_family(m, METRIC_COUNTER, "mediad_canary_probes_total",
				     "Canary probes by depth and outcome", l_probes, NULL, 0);
	s->m_transitions = metrics_family(m, METRIC_COUNTER, "mediad_canary_transitions_total",
					  "Canary state transitions", l_trans, NULL, 0);
	s->m_stall = metrics_family(m, METRIC_GAUGE, "mediad_progress_stall_seconds",
				    "Seconds since a busy worker last made progress (0 when idle)",
				    l_worker, NULL, 0);
	s->m_warmup_timeouts = metrics_family(m, METRIC_COUNTER,
					      "mediad_worker_warmup_timeouts_total",
					      "Worker processes not ready within "
					      "WORKER_WARMUP_TIMEOUT_SECONDS of their start",
					      l_worker, NULL, 0);
	s->m_deep_supported = metrics_family(m, METRIC_GAUGE, "mediad_canary_deep_supported",
					     "1 when the worker's runner has a real deep probe",
					     l_worker, NULL, 0);
}

int server_run(struct config *cfg, const char *self_exe)
{
	static struct server srv;
	struct server *s = &srv;
	struct epoll_event evs[64];
	int r;

	memset(s, 0, sizeof(*s));
	s->cfg = cfg;
	s->services = cfg->model_service & cfg->model_runner->services;
	if (!s->services) {
		/* MODEL_SERVICE names nothing this runner serves: mount what it does */
		s->services = cfg->model_runner->services;
		log_warn("MODEL_SERVICE does not include what runner %s serves; mounting its own "
			 "routes", cfg->model_runner->name);
	}
	s->started_mono = now_s();
	s->started_wall = wall_s();
	s->n_workers = cfg->n_devices;
	s->exit_code = 0;
	validate_limits_default(&s->limits);
	sched_init(&s->sched, cfg->max_queue_size, cfg->max_batch_size,
		   cfg->max_batch_delay_time_ms / 1000.0, s->n_workers);
	s->jobs = jobs_new();
	metrics_setup(s);
	config_export_env(cfg);
	if ((r = http_start(s)) < 0)
		return r == -2 ? 2 : 1; /* 2: configuration error, do not restart */
	if ((r = setup_loop(s)) < 0) {
		log_error("event loop setup failed: %s", strerror(-r));
		return 1;
	}
	workers_init(s);
	for (int i = 0; i < s->n_workers; i++)
		workers_spawn(s, &s->workers[i]);
	s->next_tick = now_s();

	while (!s->stop) {
		double now = now_s();
		int n = epoll_wait(s->epfd, evs, ARRAY_SIZE(evs), loop_timeout_ms(s, now));

		if (n < 0 && errno != EINTR) {
			log_error("epoll_wait failed: %s", strerror(errno));
			s->exit_code = 1;
			break;
		}
		for (int i = 0; i < n; i++) {
			uint64_t tag = evs[i].data.u64;
			if (tag == TAG_MHD)
				http_run(s);
			else if (tag == TAG_SIG)
				handle_signals(s);
			else if (tag >= TAG_WORKER && tag < TAG_WORKER + (uint64_t)s->n_workers)
				workers_on_io(s, &s->workers[tag - TAG_WORKER], evs[i].events);
		}
		now = now_s();
		if (s->mhd_due > 0 && now >= s->mhd_due)
			http_run(s);
		if (now >= s->next_tick) {
			/* libmicrohttpd takes its listening socket out of its epoll set
			 * at MAX_CONNECTIONS and puts it back only inside MHD_run: run it
			 * every tick, or a burst of connections leaves us deaf for good */
			http_expire(s, now);
			http_run(s);
			workers_tick(s, now);
			notify_status(s, now);
			s->next_tick = now + cfg->canary_tick_seconds;
		}
		workers_respawn_due(s, now);
		workers_warmup_due(s, now);
		expire_deadlines(s, now);
		if (s->batch_wake > 0 && now >= s->batch_wake)
			s->batch_wake = 0;
		server_dispatch(s);
		fail_queue_if_hopeless(s);
		for (int i = 0; i < s->n_workers; i++) {
			struct worker *w = &s->workers[i];
			if (w->sock >= 0 && w->out.head)
				workers_on_io(s, w, EPOLLOUT);
		}
		if (s->resumed) {
			s->resumed = 0;
			http_run(s);
		}
		if (drain_done(s))
			break;
	}
	log_info("stopping: shutting workers down");
	fail_all(s, s->exit_code == 70 ? "server exiting: a worker is dead (CANARY_ON_DEAD=exit)"
				       : "server stopping");
	workers_shutdown(s);
	flush_http(s);
	http_stop(s);
	api_cache_free(s);
	jobs_free(s->jobs);
	metrics_free(s->metrics);
	sched_release(&s->sched);
	log_info("stopped (exit %d)", s->exit_code);
	return s->exit_code;
}
