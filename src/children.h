/* children.h: the worker processes as the supervisor sees them.
 *
 * Spawn (fork + exec of this binary in worker mode, a socketpair and a
 * progress page), the IPC channel (frames in, frames out), death (seen at
 * once through SIGCHLD), the restart budget with exponential backoff,
 * RESET_DEVICE_COMMAND, respawn and shutdown. Nothing else: what a frame
 * means and what a death means for requests and canaries is decided above,
 * told through the callbacks given to children_init. */
#ifndef MEDIAD_CHILDREN_H
#define MEDIAD_CHILDREN_H

#include <stddef.h>
#include <stdint.h>

struct server;
struct worker;
struct ipc_frame;

/* How children.c tells the layers above about a worker. */
struct children_events {
	/* READY arrived: w->state is W_READY, w's runner, model, device and
	 * deep_supported are filled in */
	void (*ready)(struct server *s, struct worker *w);
	/* any frame other than HELLO and READY (probe results, request
	 * results, chunks, stream ends); the callee takes f->fd */
	void (*frame)(struct server *s, struct worker *w, struct ipc_frame *f);
	/* the process is gone (w->state is W_DOWN, its channel closed): why is
	 * "worker 0 died (killed by signal 9 (Killed))"; called before the
	 * restart is scheduled */
	void (*exited)(struct server *s, struct worker *w, const char *why);
};

/* Loop tag of worker i's socket: CHILDREN_TAG + i. */
#define CHILDREN_TAG 16

void children_init(struct server *s, const struct children_events *ev);
int children_spawn(struct server *s, struct worker *w);
void children_on_io(struct server *s, struct worker *w, uint32_t events);
/* Flush every worker's pending output (each loop iteration). */
void children_flush(struct server *s);
void children_reap(struct server *s);
/* RESET_DEVICE_COMMAND deadlines and due respawns (every tick). */
void children_tick(struct server *s, double now);
/* Respawn workers whose backoff has passed (called every loop iteration). */
void children_respawn_due(struct server *s, double now);
/* When the loop must wake for a respawn (monotonic s), or 0. */
double children_next_respawn(const struct server *s);
/* SIGKILL the worker on purpose; label is the restart reason metric label
 * (canary_dead, warmup_timeout, manual, protocol), reason the text shown to
 * operators. */
void children_kill(struct server *s, struct worker *w, const char *label, const char *reason);
/* Bring a failed (budget exhausted) or down worker back now (operator reset). */
void children_revive(struct server *s, struct worker *w, const char *why);
/* Kill it if it runs, revive it if it is down (operator reset). */
void children_restart(struct server *s, struct worker *w, const char *why);
void children_send(struct server *s, struct worker *w, uint16_t type, uint32_t flags,
		   uint32_t aux, uint64_t id, const void *payload, size_t len, int fd);
/* 1 when a probe should not be queued behind w's output now: no channel, or
 * output waiting that has not been blocked for longer than block_s (a
 * channel blocked that long belongs to a wedged worker). */
int children_channel_full(const struct worker *w, double now, double block_s);
void children_shutdown(struct server *s);
int children_alive(const struct server *s);

#endif
