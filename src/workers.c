/* workers.c: worker processes as the supervisor sees them.
 *
 * Spawn (fork + exec of this binary in worker mode, a socketpair and a
 * progress page), frame handling, death (seen at once through SIGCHLD:
 * in-flight requests answered 503 at once, restart with exponential backoff
 * under a budget per window), and the per-tick canary work: progress
 * reading, probes, timeouts, transitions, gating and the on-dead policy. */
#include "server.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

#define TAG_WORKER 16

static const char *g_self_exe = "/proc/self/exe";

static void canary_settle(struct server *s, struct worker *w);
static void on_dead(struct server *s, struct worker *w);
static void log_transition(struct server *s, struct worker *w,
			   const struct canary_transition *t);

const char *worker_state_name(enum worker_state st)
{
	static const char *names[] = {"starting", "warming_up", "ready", "restarting", "failed",
				      "stopped"};
	return st <= W_STOPPED ? names[st] : "unknown";
}

int worker_is_ready(const struct server *s, const struct worker *w)
{
	if (w->state != W_READY)
		return 0;
	if (!s->cfg->canary_gate_readiness)
		return 1;
	return !w->stalled && canary_is_ready(&w->canary);
}

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

void workers_init(struct server *s)
{
	struct canary_settings cs;

	canary_settings_from(s->cfg, &cs);
	for (int i = 0; i < s->n_workers; i++) {
		struct worker *w = &s->workers[i];
		memset(w, 0, sizeof(*w));
		w->index = i;
		snprintf(w->id, sizeof(w->id), "%s", s->cfg->device_group[i]);
		w->sock = -1;
		w->reset_out = -1;
		w->state = W_DOWN;
		ipc_reader_init(&w->rd);
		ipc_out_init(&w->out);
		w->progress_fd = progress_create(&w->progress);
		if (w->progress_fd < 0) {
			log_error("cannot create the progress page of worker %s", w->id);
			abort();
		}
		canary_init(&w->canary, &cs);
	}
}

void workers_update_dispatch(struct server *s)
{
	for (int i = 0; i < s->n_workers; i++) {
		struct worker *w = &s->workers[i];
		int on = worker_is_ready(s, w) && w->sock >= 0 && !w->stalled;
		sched_set_dispatchable(&s->sched, i, on);
		/* a probe in flight counts as load, so an idle worker is preferred
		 * over one whose probe a request would have to wait behind */
		s->sched.workers[i].extra_load = w->canary.probe.active ? 1 : 0;
	}
}

int workers_spawn(struct server *s, struct worker *w)
{
	char incarnation[16];
	int sv[2];
	pid_t pid;

	snprintf(incarnation, sizeof(incarnation), "%d", w->spawns);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		log_error("socketpair for worker %s failed: %s", w->id, strerror(errno));
		w->state = W_DOWN;
		w->restart_at = now_s() + 1.0;
		return -errno;
	}
	memset(w->progress, 0, sizeof(*w->progress));
	pid = fork();
	if (pid < 0) {
		int e = errno;
		close(sv[0]);
		close(sv[1]);
		log_error("fork for worker %s failed: %s", w->id, strerror(e));
		w->state = W_DOWN;
		w->restart_at = now_s() + 1.0;
		return -e;
	}
	if (pid == 0) {
		sigset_t all;
		int a = fcntl(sv[1], F_DUPFD, 10), b = fcntl(w->progress_fd, F_DUPFD, 10);
		sigemptyset(&all);
		sigprocmask(SIG_SETMASK, &all, NULL);
		signal(SIGPIPE, SIG_DFL);
		if (a < 0 || b < 0 || dup2(a, 3) < 0 || dup2(b, 4) < 0)
			_exit(127);
		close_range(5, ~0u, 0);
		unsetenv("API_KEY"); /* workers never check keys */
		execl(g_self_exe, "mediad", "--worker", "--worker-id", w->id,
		      "--worker-incarnation", incarnation, "--ipc-fd", "3", "--progress-fd", "4",
		      (char *)NULL);
		_exit(127);
	}
	close(sv[1]);
	fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK);
	w->sock = sv[0];
	w->pid = pid;
	w->state = W_SPAWNING;
	w->start_wall = wall_s();
	w->spawn_mono = now_s();
	w->spawns++;
	w->warmup_overdue = 0;
	w->ready_wall = 0;
	w->kill_label[0] = 0;
	w->stalled = 0;
	w->out_blocked_since = 0;
	w->progress_seen = 0;
	w->want_out = 0;
	ipc_reader_release(&w->rd);
	ipc_reader_init(&w->rd);
	ipc_out_release(&w->out);
	ipc_out_init(&w->out);
	struct epoll_event ev = {.events = EPOLLIN, .data.u64 = TAG_WORKER + (uint64_t)w->index};
	epoll_ctl(s->epfd, EPOLL_CTL_ADD, w->sock, &ev);
	log_info("worker %s started (pid %d)", w->id, (int)pid);
	return 0;
}

void workers_send(struct server *s, struct worker *w, uint16_t type, uint32_t flags,
		  uint32_t aux, uint64_t id, const void *payload, size_t len, int fd)
{
	if (w->sock < 0) {
		if (fd >= 0)
			close(fd);
		return;
	}
	ipc_out_push(&w->out, type, flags, aux, id, payload, len, fd);
}

static void set_want_out(struct server *s, struct worker *w, int on)
{
	struct epoll_event ev;

	if (w->want_out == on || w->sock < 0)
		return;
	w->want_out = on;
	ev.events = EPOLLIN | (on ? EPOLLOUT : 0);
	ev.data.u64 = TAG_WORKER + (uint64_t)w->index;
	epoll_ctl(s->epfd, EPOLL_CTL_MOD, w->sock, &ev);
}

static void close_channel(struct server *s, struct worker *w)
{
	if (w->sock < 0)
		return;
	epoll_ctl(s->epfd, EPOLL_CTL_DEL, w->sock, NULL);
	close(w->sock);
	w->sock = -1;
	w->want_out = 0;
	ipc_out_release(&w->out);
	ipc_out_init(&w->out);
}

void workers_kill(struct server *s, struct worker *w, const char *label, const char *reason)
{
	if (w->pid <= 0)
		return;
	log_warn("killing worker %s (pid %d): %s", w->id, (int)w->pid, reason);
	snprintf(w->down_reason, sizeof(w->down_reason), "%s", reason);
	snprintf(w->kill_label, sizeof(w->kill_label), "%s", label);
	kill(w->pid, SIGKILL);
}

/* Fail every request in flight on w: 503 JSON at once (streams get a final
 * error event). */
static void fail_inflight(struct server *s, struct worker *w, const char *why)
{
	struct sched_req *r;

	while ((r = sched_worker_first(&s->sched, w->index))) {
		w->error_count++;
		server_fail_request(s, (struct pending *)r, 503, why);
	}
}

static void on_ready(struct server *s, struct worker *w, const char *payload, size_t len)
{
	json_t *o = json_loadb(payload, len, 0, NULL);
	double now = now_s();

	if (o) {
		snprintf(w->runner, sizeof(w->runner), "%s",
			 json_string_value(json_object_get(o, "runner")) ?: "");
		snprintf(w->model, sizeof(w->model), "%s",
			 json_string_value(json_object_get(o, "model")) ?: "");
		snprintf(w->device, sizeof(w->device), "%s",
			 json_string_value(json_object_get(o, "device")) ?: "");
		w->deep_supported = json_is_true(json_object_get(o, "deep_supported"));
		w->synthetic_weights = json_is_true(json_object_get(o, "synthetic_weights"));
		const char *voices = json_string_value(json_object_get(o, "voices"));
		const char *dv = json_string_value(json_object_get(o, "default_voice"));
		if (voices && !s->limits.voices) {
			/* validate voices at admission, with the runner's own list */
			int n = 0;
			snprintf(s->voice_store, sizeof(s->voice_store), "%s", voices);
			for (char *p = s->voice_store; p && *p && n < 32;) {
				char *comma = strchr(p, ',');
				s->voice_list[n++] = p;
				if (comma)
					*comma++ = 0;
				p = comma;
			}
			s->voice_list[n] = NULL;
			s->limits.voices = s->voice_list;
			if (dv) {
				snprintf(s->default_voice, sizeof(s->default_voice), "%s", dv);
				s->limits.default_voice = s->default_voice;
			}
		}
		json_decref(o);
	}
	w->state = W_READY;
	w->ready_wall = wall_s();
	w->down_reason[0] = 0;
	w->canary.set.deep_enabled = s->cfg->canary_deep_probe_enabled && w->deep_supported;
	canary_worker_ready(&w->canary, now);
	canary_settle(s, w);
	log_info("worker %s ready after %.3f s (runner %s, model %s, deep probe %s)%s", w->id,
		 now - w->spawn_mono, w->runner, w->model,
		 w->deep_supported ? "supported" : "unsupported",
		 w->warmup_overdue ? ", past WORKER_WARMUP_TIMEOUT_SECONDS" : "");
	workers_update_dispatch(s);
	if (!s->ever_ready && server_is_serving(s)) {
		s->ever_ready = 1;
		sd_notify(0, "READY=1\nSTATUS=serving");
		log_info("serving: %d of %d workers ready", server_ready_workers(s), s->n_workers);
	} else if (server_is_serving(s)) {
		s->ever_ready = 1;
	}
}


/* Act on the canary's state changes at once (not at the next tick): log
 * each transition, update who may get work, and apply the on-dead policy
 * on a dead edge. Call after every event that feeds the canary. */
static void canary_settle(struct server *s, struct worker *w)
{
	struct canary_transition tr[CANARY_RING];
	int n = canary_drain_transitions(&w->canary, tr, CANARY_RING);
	int dead_edge = 0;

	for (int i = 0; i < n; i++) {
		log_transition(s, w, &tr[i]);
		if (tr[i].to == CANARY_DEAD && tr[i].from != CANARY_DEAD)
			dead_edge = 1;
	}
	workers_update_dispatch(s);
	/* act only if it is still dead (progress may already have revived it) */
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
	const char *model = s->cfg->model_runner->name;
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

static void on_probe_result(struct server *s, struct worker *w, const struct ipc_frame *f)
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
	canary_settle(s, w);
	if (rec != CANARY_OK && rec != CANARY_LATE)
		log_warn("worker %s %s probe %llu: %s%s%s (%.3f s)", w->id, canary_tier_name(tier),
			 (unsigned long long)f->hdr.id, canary_outcome_name(rec), err ? ": " : "",
			 err ? err : "", lat);
	json_decref(o);
}

static void on_frame(struct server *s, struct worker *w, struct ipc_frame *f)
{
	struct sched_req *r;
	struct pending *p;

	switch (f->hdr.type) {
	case IPC_HELLO:
		w->state = W_WARMING;
		return;
	case IPC_READY:
		on_ready(s, w, f->payload, f->hdr.len);
		return;
	case IPC_PROBE_RESULT:
		on_probe_result(s, w, f);
		return;
	case IPC_RESULT:
	case IPC_CHUNK:
	case IPC_END:
		break;
	default:
		log_warn("worker %s sent an unexpected %s frame", w->id, ipc_type_name(f->hdr.type));
		if (f->fd >= 0)
			close(f->fd);
		return;
	}
	r = sched_find(&s->sched, f->hdr.id);
	if (!r || r->worker != w->index) {
		/* a late answer for a request already finished: dropped */
		log_debug("dropping late %s for request %llu", ipc_type_name(f->hdr.type),
			  (unsigned long long)f->hdr.id);
		if (f->fd >= 0)
			close(f->fd);
		return;
	}
	p = (struct pending *)r;
	const char *ctype = f->payload;
	size_t clen = f->hdr.len ? strnlen(f->payload, f->hdr.len) : 0;
	const char *body = f->payload + (clen < f->hdr.len ? clen + 1 : clen);
	size_t blen = f->hdr.len - (size_t)(body - f->payload);

	if (f->hdr.type == IPC_CHUNK) {
		if (p->kind == OWN_HTTP)
			http_stream_chunk(s, p->h, ctype, body, blen);
		else
			api_job_event(s, p, body, blen);
		if (f->fd >= 0)
			close(f->fd);
		return;
	}
	sched_remove(&s->sched, r);
	canary_request_finished(&w->canary, now_s());
	if (f->hdr.aux >= 500)
		w->error_count++;
	if (p->kind == OWN_HTTP) {
		p->h->pend = NULL;
		if (f->hdr.type == IPC_END)
			http_stream_end(s, p->h, (int)f->hdr.aux, NULL);
		else
			http_complete(s, p->h, (int)f->hdr.aux, ctype, body, blen, f->fd);
	} else {
		api_job_result(s, p, (int)f->hdr.aux, body, blen, f->fd);
	}
	if (p->in_fd >= 0)
		close(p->in_fd);
	free(p->params);
	free(p);
}

void workers_on_io(struct server *s, struct worker *w, uint32_t events)
{
	if (w->sock < 0)
		return;
	if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
		for (;;) {
			ssize_t n = ipc_reader_fill(&w->rd, w->sock);
			struct ipc_frame f;
			int r;

			while ((r = ipc_reader_next(&w->rd, &f)) == 1) {
				on_frame(s, w, &f);
				if (w->sock < 0)
					return;
			}
			if (r < 0) {
				log_error("worker %s sent a corrupt frame; killing it", w->id);
				workers_kill(s, w, "protocol", "corrupt IPC frame");
				close_channel(s, w);
				return;
			}
			if (n == -EAGAIN)
				break;
			if (n <= 0) {
				/* EOF: the process is exiting or broken; SIGCHLD finishes the job */
				close_channel(s, w);
				if (w->pid > 0)
					kill(w->pid, SIGKILL);
				return;
			}
		}
	}
	if (w->out.head) {
		int r = ipc_out_flush(&w->out, w->sock);
		if (r == -EAGAIN) {
			if (w->out_blocked_since == 0)
				w->out_blocked_since = now_s();
			set_want_out(s, w, 1);
		} else if (r == 0) {
			w->out_blocked_since = 0;
			set_want_out(s, w, 0);
		} else {
			close_channel(s, w);
		}
	} else if (w->want_out) {
		set_want_out(s, w, 0);
	}
}

/* Start RESET_DEVICE_COMMAND for w (sh -c CMD sh DEVICE_ID; also
 * MEDIAD_DEVICE_ID in its environment); its output goes to a memfd that is
 * logged when it exits. The respawn waits for it (bounded by
 * RESET_DEVICE_TIMEOUT_SECONDS). 0 when started. */
static int reset_device(struct server *s, struct worker *w)
{
	int out = memfd_create("mediad-reset-output", 0);
	pid_t pid;

	if (out < 0)
		return -errno;
	pid = fork();
	if (pid < 0) {
		close(out);
		log_error("cannot run RESET_DEVICE_COMMAND for worker %s: %s", w->id, strerror(errno));
		return -errno;
	}
	if (pid == 0) {
		sigset_t all;
		int nul = open("/dev/null", O_RDONLY);
		sigemptyset(&all);
		sigprocmask(SIG_SETMASK, &all, NULL);
		signal(SIGPIPE, SIG_DFL);
		if (nul >= 0)
			dup2(nul, 0);
		dup2(out, 1);
		dup2(out, 2);
		close_range(3, ~0u, 0);
		setenv("MEDIAD_DEVICE_ID", w->id, 1);
		unsetenv("API_KEY");
		execl("/bin/sh", "sh", "-c", s->cfg->reset_device_command, "sh", w->id, (char *)NULL);
		_exit(127);
	}
	w->reset_pid = pid;
	w->reset_out = out;
	w->reset_started = now_s();
	w->reset_deadline = w->reset_started + s->cfg->reset_device_timeout_seconds;
	log_info("worker %s: running RESET_DEVICE_COMMAND (pid %d)", w->id, (int)pid);
	return 0;
}

static void reset_finished(struct server *s, struct worker *w, int status)
{
	char text[1024];
	char fields[1400];
	ssize_t n = pread(w->reset_out, text, sizeof(text) - 1, 0);
	struct buf esc;

	text[n > 0 ? n : 0] = 0;
	close(w->reset_out);
	w->reset_out = -1;
	w->reset_pid = 0;
	buf_init(&esc, sizeof(fields));
	buf_json_str(&esc, text);
	int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	snprintf(fields, sizeof(fields),
		 "\"event\":\"reset_device\",\"device_id\":\"%s\",\"exit_code\":%d,"
		 "\"duration_s\":%.3f,\"output\":%s",
		 w->id, code, now_s() - w->reset_started, esc.data ? esc.data : "\"\"");
	buf_release(&esc);
	log_write(code == 0 ? LOG_INFO : LOG_WARN, NULL, fields,
		  "worker %s: RESET_DEVICE_COMMAND exited with code %d%s", w->id, code,
		  WIFSIGNALED(status) ? " (killed)" : "");
	/* the backoff counts from now */
	double backoff = w->restart_at - w->reset_started;
	w->restart_at = now_s() + (backoff > 0 ? backoff : 0);
}

static const char *restart_reason_label(const struct worker *w, int status)
{
	if (w->kill_label[0])
		return w->kill_label;
	if (WIFSIGNALED(status))
		return "crash";
	return "exit";
}

static void worker_exited(struct server *s, struct worker *w, int status)
{
	double now = now_s();
	char what[96], why[256];
	const char *label = restart_reason_label(w, status);

	if (WIFSIGNALED(status))
		snprintf(what, sizeof(what), "killed by signal %d (%s)", WTERMSIG(status),
			 strsignal(WTERMSIG(status)));
	else
		snprintf(what, sizeof(what), "exited with code %d", WEXITSTATUS(status));
	snprintf(why, sizeof(why), "worker %s died (%s)", w->id, what);
	close_channel(s, w);
	w->pid = 0;
	int was_ready = w->state == W_READY;
	canary_worker_lost(&w->canary, now);
	w->state = W_DOWN;
	workers_update_dispatch(s);
	fail_inflight(s, w, why);
	if (!w->kill_label[0])
		snprintf(w->down_reason, sizeof(w->down_reason), "%s", what);
	if (s->draining || s->stop) {
		w->state = W_STOPPED;
		log_info("worker %s stopped: %s", w->id, what);
		return;
	}
	log_write(was_ready ? LOG_WARN : LOG_ERROR, NULL, NULL, "worker %s (%s) %s", w->id,
		  was_ready ? "serving" : "not yet ready", what);
	int manual = !strcmp(label, "manual");
	/* restart budget within the window (operator resets do not count) */
	int keep = 0;
	for (int i = 0; i < w->n_restarts; i++)
		if (now - w->restarts[i] < s->cfg->worker_restart_window_seconds)
			w->restarts[keep++] = w->restarts[i];
	w->n_restarts = keep;
	if (!manual && (w->n_restarts >= s->cfg->max_worker_restart_count ||
			w->n_restarts >= (int)ARRAY_SIZE(w->restarts))) {
		char last[256];
		/* killed on purpose: the reason it was killed says more than the signal */
		snprintf(last, sizeof(last), "%s", w->kill_label[0] ? w->down_reason : what);
		w->state = W_FAILED;
		snprintf(w->down_reason, sizeof(w->down_reason),
			 "restart budget exhausted: %d restarts within %d s (last: %.180s)",
			 w->n_restarts, s->cfg->worker_restart_window_seconds, last);
		log_error("worker %s stays down: %s", w->id, w->down_reason);
		return;
	}
	double backoff = 0.1;
	for (int i = 0; i < w->n_restarts && backoff < 30; i++)
		backoff *= 2;
	if (backoff > 30 || manual)
		backoff = manual ? 0 : 30;
	if (!manual)
		w->restarts[w->n_restarts++] = now;
	w->restart_count++;
	w->restart_at = now + backoff;
	const char *lr[] = {w->id, label};
	metrics_add(s->m_restarts, lr, 1);
	if (s->cfg->reset_device_command[0] && reset_device(s, w) == 0) {
		log_info("worker %s restart %d waits for RESET_DEVICE_COMMAND, then %.2f s backoff",
			 w->id, w->restart_count, backoff);
		return;
	}
	log_info("worker %s restart %d scheduled in %.2f s", w->id, w->restart_count, backoff);
}

void workers_revive(struct server *s, struct worker *w, const char *why)
{
	const char *lr[] = {w->id, "manual"};

	if (w->state != W_FAILED && w->state != W_DOWN)
		return;
	w->n_restarts = 0;
	w->state = W_DOWN;
	w->restart_count++;
	w->restart_at = now_s();
	snprintf(w->down_reason, sizeof(w->down_reason), "%s", why);
	metrics_add(s->m_restarts, lr, 1);
	log_info("worker %s: %s", w->id, why);
	if (s->cfg->reset_device_command[0] && w->reset_pid == 0)
		reset_device(s, w);
}

void workers_reap(struct server *s)
{
	int status;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		for (int i = 0; i < s->n_workers; i++) {
			if (s->workers[i].pid == pid)
				worker_exited(s, &s->workers[i], status);
			else if (s->workers[i].reset_pid == pid)
				reset_finished(s, &s->workers[i], status);
		}
	}
}

int workers_alive(const struct server *s)
{
	int n = 0;

	for (int i = 0; i < s->n_workers; i++)
		if (s->workers[i].pid > 0)
			n++;
	return n;
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
	fail_inflight(s, w, msg);
	switch (s->cfg->canary_on_dead) {
	case ON_DEAD_GATE:
		log_warn("%s: out of rotation until its probes succeed again", msg);
		break;
	case ON_DEAD_RESTART:
		workers_kill(s, w, "canary_dead", "canary dead");
		break;
	case ON_DEAD_EXIT:
		exit_for_dead_worker(s, msg);
		break;
	}
}

double workers_warmup_deadline(const struct worker *w, double timeout_s)
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
		workers_kill(s, w, "warmup_timeout", reason);
		break;
	}
	case ON_DEAD_EXIT:
		kill(w->pid, SIGKILL); /* a wedged worker would hold the shutdown 5 s */
		exit_for_dead_worker(s, msg);
		break;
	}
}

void workers_warmup_due(struct server *s, double now)
{
	if (s->draining)
		return;
	for (int i = 0; i < s->n_workers && !s->stop; i++) {
		struct worker *w = &s->workers[i];
		double due = workers_warmup_deadline(w, s->cfg->worker_warmup_timeout_seconds);
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
		canary_progress(&w->canary, now, (double)step_ns / 1e9);
		w->stalled = 0;
	}
	/* a channel that is full for a moment is a skip, not a miss; one that has
	 * not drained for a whole probe timeout belongs to a wedged worker: probe
	 * anyway, so the probe times out behind it and counts */
	int channel_full = w->sock < 0 ||
			   (w->out.pending > 0 &&
			    !(w->out_blocked_since > 0 &&
			      now - w->out_blocked_since > s->cfg->canary_probe_timeout_seconds));
	a = canary_tick(&w->canary, now, channel_full);
	if (a.timed_out)
		record_probe_metrics(s, w, a.timeout_tier, CANARY_TIMEOUT,
				     s->cfg->canary_probe_timeout_seconds);
	if (a.progress_miss) {
		const char *lc[] = {s->cfg->model_runner->name,
				    w->id, "progress"};
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
			workers_update_dispatch(s);
			fail_inflight(s, w, msg);
		}
	}
	if (a.kind == CANARY_ACT_PROBE) {
		workers_send(s, w, IPC_PROBE, 0, a.tier == CANARY_TIER_DEEP ? 1 : 0, a.generation,
			     NULL, 0, -1);
		s->sched.workers[w->index].extra_load = 1;
	} else if (a.kind == CANARY_ACT_SKIPPED) {
		record_probe_metrics(s, w, a.tier, CANARY_SKIPPED, 0);
	}
	canary_settle(s, w);
}

void workers_respawn_due(struct server *s, double now)
{
	for (int i = 0; i < s->n_workers; i++) {
		struct worker *w = &s->workers[i];
		if (w->state == W_DOWN && w->reset_pid == 0 && now >= w->restart_at &&
		    !s->draining)
			workers_spawn(s, w);
	}
}

void workers_tick(struct server *s, double now)
{
	for (int i = 0; i < s->n_workers; i++) {
		struct worker *w = &s->workers[i];

		if (w->reset_pid > 0) {
			if (now >= w->reset_deadline) {
				log_warn("worker %s: RESET_DEVICE_COMMAND still running after %g s; "
					 "killing it", w->id, s->cfg->reset_device_timeout_seconds);
				kill(w->reset_pid, SIGKILL);
				w->reset_deadline = now + 3600;
			}
			continue;
		}
		if (w->state == W_DOWN && now >= w->restart_at && !s->draining) {
			workers_spawn(s, w);
			continue;
		}
		if (w->state == W_READY)
			canary_work(s, w, now);
	}
}

void workers_shutdown(struct server *s)
{
	double deadline = now_s() + 5.0;

	for (int i = 0; i < s->n_workers; i++) {
		struct worker *w = &s->workers[i];
		if (w->sock >= 0) {
			workers_send(s, w, IPC_SHUTDOWN, 0, 0, 0, NULL, 0, -1);
			ipc_out_flush(&w->out, w->sock);
		}
	}
	while (workers_alive(s) && now_s() < deadline) {
		int status;
		pid_t pid = waitpid(-1, &status, WNOHANG);
		if (pid > 0) {
			for (int i = 0; i < s->n_workers; i++)
				if (s->workers[i].pid == pid) {
					s->workers[i].pid = 0;
					s->workers[i].state = W_STOPPED;
				}
			continue;
		}
		usleep(10000);
	}
	for (int i = 0; i < s->n_workers; i++) {
		struct worker *w = &s->workers[i];
		if (w->pid > 0) {
			log_warn("worker %s did not stop in time; killing it", w->id);
			kill(w->pid, SIGKILL);
			waitpid(w->pid, NULL, 0);
			w->pid = 0;
		}
		close_channel(s, w);
		ipc_reader_release(&w->rd);
		progress_unmap(w->progress);
		close(w->progress_fd);
	}
}
