/* supervisor.c: the supervisor's event loop; wires the layers together.
 *
 * One epoll set holds libmicrohttpd's epoll fd, the HTTP adapter's watch
 * set of suspended connections, a signalfd (SIGCHLD, SIGTERM, SIGINT) and
 * every worker socket. The wait timeout is the earliest
 * of the canary tick, the oldest request deadline, a batch delay, a
 * pending restart and a worker's warmup deadline, so deadlines are enforced
 * without a timer per request. */
#include "supervisor.h"

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

#include "api.h"
#include "children.h"
#include "http.h"
#include "log.h"
#include "monitor.h"
#include "requests.h"
#include "runner.h"
#include "server.h"
#include "serving.h"
#include "util.h"
#include "banned.h"

#define TAG_MHD 1
#define TAG_SIG 2
#define TAG_HTTP_WATCH 3

/* children.c tells us about a worker: route each event to its owner. */
static void on_child_ready(struct server *s, struct worker *w)
{
	monitor_worker_ready(s, w);
}

static void on_child_frame(struct server *s, struct worker *w, struct ipc_frame *f)
{
	switch (f->hdr.type) {
	case IPC_PROBE_RESULT:
		monitor_on_probe_result(s, w, f);
		if (f->fd >= 0)
			close(f->fd);
		return;
	case IPC_RESULT:
	case IPC_CHUNK:
	case IPC_END:
		requests_on_frame(s, w, f);
		return;
	default:
		log_warn("worker %s sent an unexpected %s frame", w->id, ipc_type_name(f->hdr.type));
		if (f->fd >= 0)
			close(f->fd);
	}
}

static void on_child_exited(struct server *s, struct worker *w, const char *why)
{
	monitor_worker_lost(s, w);
	requests_fail_worker(s, w, why);
}

static const struct children_events child_events = {
	.ready = on_child_ready,
	.frame = on_child_frame,
	.exited = on_child_exited,
};

static void expire_deadlines(struct server *s, double now)
{
	/* a deadline on a worker feeds its canary: act on it at once */
	if (requests_expire(s, now) > 0)
		monitor_settle_all(s);
}

static void handle_signals(struct server *s)
{
	struct signalfd_siginfo si;

	while (read(s->sigfd, &si, sizeof(si)) == sizeof(si)) {
		if (si.ssi_signo == SIGCHLD) {
			children_reap(s);
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
	recoverable = serving_recoverable(s);
	/* WATCHDOG=1 only while the loop runs and some worker can still serve */
	if (wd_usec && recoverable && now - last_wd >= (double)wd_usec / 2e6) {
		sd_notify(0, "WATCHDOG=1");
		last_wd = now;
	}
	snprintf(status, sizeof(status), "STATUS=%s: %d/%d workers ready, queue %d",
		 s->draining ? "draining" : serving_is_serving(s) ? "serving" : "not serving",
		 serving_ready_workers(s), s->n_workers, sched_waiting(&s->sched));
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
	double respawn = children_next_respawn(s);
	if (respawn > 0 && respawn < t)
		t = respawn;
	for (int i = 0; i < s->n_workers; i++) {
		double warm = monitor_warmup_deadline(&s->workers[i],
						      s->cfg->worker_warmup_timeout_seconds);
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
	ev.data.u64 = TAG_HTTP_WATCH;
	epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->http_watch_fd, &ev);
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

int supervisor_run(struct config *cfg, const char *self_exe)
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
	s->model_type = cfg->model_runner->name;
	s->http_watch_fd = -1;
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
	if (api_init() < 0)
		return 1;
	if ((r = http_start(s, &api_http)) < 0)
		return r == -2 ? 2 : 1; /* 2: configuration error, do not restart */
	if ((r = setup_loop(s)) < 0) {
		log_error("event loop setup failed: %s", strerror(-r));
		return 1;
	}
	children_init(s, &child_events);
	monitor_init(s);
	for (int i = 0; i < s->n_workers; i++)
		children_spawn(s, &s->workers[i]);
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
			else if (tag == TAG_HTTP_WATCH)
				http_watch_run(s);
			else if (tag == TAG_SIG)
				handle_signals(s);
			else if (tag >= CHILDREN_TAG && tag < CHILDREN_TAG + (uint64_t)s->n_workers)
				children_on_io(s, &s->workers[tag - CHILDREN_TAG], evs[i].events);
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
			children_tick(s, now);
			monitor_tick(s, now);
			notify_status(s, now);
			s->next_tick = now + cfg->canary_tick_seconds;
		}
		children_respawn_due(s, now);
		monitor_warmup_due(s, now);
		expire_deadlines(s, now);
		if (s->batch_wake > 0 && now >= s->batch_wake)
			s->batch_wake = 0;
		requests_dispatch(s);
		requests_fail_hopeless(s);
		children_flush(s);
		if (s->resumed) {
			s->resumed = 0;
			http_run(s);
		}
		if (drain_done(s))
			break;
	}
	log_info("stopping: shutting workers down");
	requests_fail_all(s, s->exit_code == 70 ? "server exiting: a worker is dead (CANARY_ON_DEAD=exit)"
				       : "server stopping");
	children_shutdown(s);
	flush_http(s);
	http_stop(s);
	api_cache_free(s);
	jobs_free(s->jobs);
	metrics_free(s->metrics);
	sched_release(&s->sched);
	log_info("stopped (exit %d)", s->exit_code);
	return s->exit_code;
}
