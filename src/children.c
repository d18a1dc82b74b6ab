/* children.c: the worker processes (see children.h): spawn, the IPC
 * channel, death, the restart budget, RESET_DEVICE_COMMAND, respawn,
 * shutdown. Events go up through the struct children_events it was given. */
#include "children.h"

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
#include <unistd.h>

#include "log.h"
#include "server.h"
#include "util.h"
#include "banned.h"

static const char *g_self_exe = "/proc/self/exe";

void children_init(struct server *s, const struct children_events *ev)
{
	s->child_ev = ev;
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
	}
}

int children_spawn(struct server *s, struct worker *w)
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
	struct epoll_event ev = {.events = EPOLLIN, .data.u64 = CHILDREN_TAG + (uint64_t)w->index};
	epoll_ctl(s->epfd, EPOLL_CTL_ADD, w->sock, &ev);
	log_info("worker %s started (pid %d)", w->id, (int)pid);
	return 0;
}

void children_send(struct server *s, struct worker *w, uint16_t type, uint32_t flags,
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
	ev.data.u64 = CHILDREN_TAG + (uint64_t)w->index;
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

void children_kill(struct server *s, struct worker *w, const char *label, const char *reason)
{
	if (w->pid <= 0)
		return;
	log_warn("killing worker %s (pid %d): %s", w->id, (int)w->pid, reason);
	snprintf(w->down_reason, sizeof(w->down_reason), "%s", reason);
	snprintf(w->kill_label, sizeof(w->kill_label), "%s", label);
	kill(w->pid, SIGKILL);
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
	log_info("worker %s ready after %.3f s (runner %s, model %s, deep probe %s)%s", w->id,
		 now - w->spawn_mono, w->runner, w->model,
		 w->deep_supported ? "supported" : "unsupported",
		 w->warmup_overdue ? ", past WORKER_WARMUP_TIMEOUT_SECONDS" : "");
	s->child_ev->ready(s, w);
}

static void on_frame(struct server *s, struct worker *w, struct ipc_frame *f)
{
	switch (f->hdr.type) {
	case IPC_HELLO:
		w->state = W_WARMING;
		return;
	case IPC_READY:
		on_ready(s, w, f->payload, f->hdr.len);
		return;
	default:
		s->child_ev->frame(s, w, f);
	}
}

void children_flush(struct server *s)
{
	for (int i = 0; i < s->n_workers; i++) {
		struct worker *w = &s->workers[i];
		if (w->sock >= 0 && w->out.head)
			children_on_io(s, w, EPOLLOUT);
	}
}

int children_channel_full(const struct worker *w, double now, double block_s)
{
	return w->sock < 0 ||
	       (w->out.pending > 0 && !(w->out_blocked_since > 0 && now - w->out_blocked_since > block_s));
}

void children_on_io(struct server *s, struct worker *w, uint32_t events)
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
				children_kill(s, w, "protocol", "corrupt IPC frame");
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
	w->state = W_DOWN;
	s->child_ev->exited(s, w, why);
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

void children_revive(struct server *s, struct worker *w, const char *why)
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

void children_reap(struct server *s)
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

int children_alive(const struct server *s)
{
	int n = 0;

	for (int i = 0; i < s->n_workers; i++)
		if (s->workers[i].pid > 0)
			n++;
	return n;
}

void children_restart(struct server *s, struct worker *w, const char *why)
{
	if (w->state == W_FAILED || w->state == W_DOWN) {
		children_revive(s, w, why);
		return;
	}
	children_kill(s, w, "manual", why);
}

void children_respawn_due(struct server *s, double now)
{
	for (int i = 0; i < s->n_workers; i++) {
		struct worker *w = &s->workers[i];
		if (w->state == W_DOWN && w->reset_pid == 0 && now >= w->restart_at &&
		    !s->draining)
			children_spawn(s, w);
	}
}

double children_next_respawn(const struct server *s)
{
	double t = 0;

	for (int i = 0; i < s->n_workers; i++) {
		const struct worker *w = &s->workers[i];
		if (w->state == W_DOWN && w->reset_pid == 0 && (t == 0 || w->restart_at < t))
			t = w->restart_at;
	}
	return t;
}

void children_tick(struct server *s, double now)
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
		if (w->state == W_DOWN && now >= w->restart_at && !s->draining)
			children_spawn(s, w);
	}
}

void children_shutdown(struct server *s)
{
	double deadline = now_s() + 5.0;

	for (int i = 0; i < s->n_workers; i++) {
		struct worker *w = &s->workers[i];
		if (w->sock >= 0) {
			children_send(s, w, IPC_SHUTDOWN, 0, 0, 0, NULL, 0, -1);
			ipc_out_flush(&w->out, w->sock);
		}
	}
	while (children_alive(s) && now_s() < deadline) {
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
