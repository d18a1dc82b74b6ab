/* server.h: the supervisor process: state shared by its modules.
 *
 * One process, one thread, one epoll loop (supervisor.c) drives
 * libmicrohttpd in external-epoll mode (http.c), the worker sockets and
 * processes (workers.c), the scheduler (sched.c), the canaries (canary.c),
 * the job store (jobs.c) and the metrics (metrics.c). Nothing here blocks:
 * health answers come from this state alone. */
#ifndef MEDIAD_SERVER_H
#define MEDIAD_SERVER_H

#include <jansson.h>
#include <stdint.h>
#include <sys/types.h>

#include "buf.h"
#include "canary.h"
#include "config.h"
#include "ipc.h"
#include "jobs.h"
#include "metrics.h"
#include "progress.h"
#include "router.h"
#include "scheduler.h"
#include "validate.h"

struct MHD_Daemon;
struct MHD_Connection;
struct MHD_Response;
struct form;

enum worker_state {
	W_SPAWNING, /* process started, hello not yet seen */
	W_WARMING,  /* hello seen, warming up */
	W_READY,    /* warmed up (the canary decides whether it is dispatchable) */
	W_DOWN,     /* process gone; restart scheduled */
	W_FAILED,   /* restart budget exhausted (or policy): stays out */
	W_STOPPED,  /* shut down on purpose (drain) */
};

struct worker {
	int index;
	char id[64];           /* "0" or "0,1" */
	enum worker_state state;
	pid_t pid;
	int sock;              /* -1 when not running */
	struct ipc_reader rd;
	struct ipc_out out;
	int want_out;          /* EPOLLOUT armed */
	double out_blocked_since; /* when the socket stopped taking our frames, 0 = draining */
	struct progress_page *progress;
	int progress_fd;
	uint64_t progress_seen; /* steps counter at the last check */

	double start_wall;     /* wall clock when the current process started */
	double ready_wall;     /* wall clock when it became ready, 0 = not yet */
	double spawn_mono;
	int spawns;            /* processes started in this slot (the next one's incarnation) */
	int warmup_overdue;    /* the current process missed WORKER_WARMUP_TIMEOUT_SECONDS */
	int restart_count;     /* restarts ever */
	double restarts[1024]; /* monotonic times of recent restarts (window); >= the max budget */
	int n_restarts;
	double restart_at;     /* W_DOWN: when to respawn */
	char down_reason[256]; /* why it went down / failed */
	char kill_label[16];   /* set when we killed it on purpose: restart reason label */
	int error_count;       /* real requests that failed on this worker */
	int stalled;           /* a request made no progress for a whole budget: no new work */
	int reset_pid;         /* RESET_DEVICE_COMMAND running for this worker, 0 none */
	int reset_out;         /* memfd with its output */
	double reset_started;
	double reset_deadline;

	struct canary canary;
	int deep_supported;
	char runner[32];
	char model[128];
	char device[64];
	int synthetic_weights;
};

enum owner_kind { OWN_HTTP, OWN_JOB };

struct chunk {
	struct chunk *next;
	size_t len, off;
	char data[];
};

/* One HTTP request (per MHD connection request). */
struct hreq {
	struct MHD_Connection *conn;
	struct route_match match;
	unsigned method;
	char request_id[80];
	char path[256];
	double t0;
	struct buf body;
	int too_large;
	int in_fd;              /* uploaded file (memfd), -1 none */
	size_t in_size;
	struct form *form;      /* multipart body being read, NULL for JSON */

	int suspended;
	int waiting_chunk;      /* suspended inside the stream reader */
	struct MHD_Response *resp; /* ready to queue */
	int status;
	int done;               /* response queued */
	int gone;               /* MHD finished with the connection */

	/* in the scheduler */
	struct pending *pend;

	/* streaming */
	int streaming;
	int stream_ended;
	int stream_sse;
	struct chunk *c_head, *c_tail;
};

/* A unit of work in the scheduler: an HTTP request or a job. */
struct pending {
	struct sched_req sr;
	enum owner_kind kind;
	struct hreq *h;
	char job_id[40];
	char *params;  /* JSON text */
	size_t params_len;
	int in_fd;     /* input payload, owned */
	double dispatched_at;
};

/* A health body kept between requests: rebuilt only when one of the values
 * it is made from changed (api.c). key holds those values; n > max means
 * they did not fit and the body is rebuilt every time. */
#define BODY_KEY_MAX (16 + 32 * SCHED_MAX_WORKERS)
struct body_cache {
	uint64_t key[BODY_KEY_MAX];
	int n;
	int valid;
	int status;
	struct buf body;
};

struct server {
	struct config *cfg;
	int epfd;
	int sigfd;
	struct MHD_Daemon *mhd;
	int mhd_epfd;
	int port;
	unsigned services;

	int n_workers;
	struct worker workers[SCHED_MAX_WORKERS];
	struct sched sched;
	struct jobs *jobs;
	struct metrics *metrics;
	struct validate_limits limits;
	char voice_store[256];           /* the runner's voices, from the first READY */
	const char *voice_list[33];      /* NULL-terminated pointers into voice_store */
	char default_voice[32];
	uint64_t next_id;
	double started_mono;
	double started_wall;
	int ever_ready;
	int draining;
	double drain_deadline;
	int exit_code;
	int stop;
	double next_tick;
	double batch_wake;
	int resumed;           /* connections resumed this loop iteration */
	double mhd_due;        /* when libmicrohttpd wants MHD_run again (0 = only on events) */
	struct body_cache health_cache, liveness_cache;

	/* metric families */
	struct metric_family *m_requests, *m_duration, *m_queue, *m_ready, *m_alive,
		*m_restarts, *m_canary_state, *m_canary_fail, *m_canary_lat, *m_canary_last,
		*m_probes, *m_transitions, *m_stall, *m_deep_supported, *m_inflight,
		*m_read_timeouts,
		*m_warmup_timeouts;
};

/* supervisor.c */
int server_run(struct config *cfg, const char *self_exe);
int server_ready_workers(const struct server *s);
int server_is_serving(const struct server *s);
/* Why the server is not serving (for 503 bodies); empty when serving. Every
 * value it reads must also be in the health body cache key (api.c). */
void server_not_serving_reason(const struct server *s, char *out, size_t n);
void server_dispatch(struct server *s);
void server_fail_request(struct server *s, struct pending *p, int status, const char *msg);
uint64_t server_new_id(struct server *s);

/* workers.c */
void workers_init(struct server *s);
int workers_spawn(struct server *s, struct worker *w);
void workers_on_io(struct server *s, struct worker *w, uint32_t events);
void workers_reap(struct server *s);
void workers_tick(struct server *s, double now);
/* Respawn workers whose backoff has passed (called every loop iteration). */
void workers_respawn_due(struct server *s, double now);
/* When w's current process must have sent READY (monotonic s), or 0 when no
 * warmup deadline applies: timeout_s <= 0 (off), not starting or warming up,
 * no process, or already acted on. Pure: reads w only. */
double workers_warmup_deadline(const struct worker *w, double timeout_s);
/* Act on every worker past its warmup deadline (called every loop
 * iteration; the loop's wait ends at the earliest deadline). */
void workers_warmup_due(struct server *s, double now);
/* SIGKILL the worker on purpose; label is the restart reason metric label
 * (canary_dead, warmup_timeout, manual, protocol), reason the text shown to
 * operators. */
void workers_kill(struct server *s, struct worker *w, const char *label, const char *reason);
/* Bring a failed (budget exhausted) or down worker back now (operator reset). */
void workers_revive(struct server *s, struct worker *w, const char *why);
void workers_send(struct server *s, struct worker *w, uint16_t type, uint32_t flags,
		  uint32_t aux, uint64_t id, const void *payload, size_t len, int fd);
void workers_shutdown(struct server *s);
int workers_alive(const struct server *s);
int worker_is_ready(const struct server *s, const struct worker *w);
void workers_update_dispatch(struct server *s);
const char *worker_state_name(enum worker_state st);

/* http.c */
int http_start(struct server *s);
void http_stop(struct server *s);
void http_run(struct server *s);
/* Close connections whose request headers or body are overdue (every tick). */
void http_expire(struct server *s, double now);
/* Deliver results to a request (from workers.c / supervisor.c). */
void http_complete(struct server *s, struct hreq *h, int status, const char *ctype,
		   const char *body, size_t len, int fd);
void http_complete_error(struct server *s, struct hreq *h, int status, const char *msg);
void http_stream_chunk(struct server *s, struct hreq *h, const char *ctype, const char *data,
		       size_t len);
void http_stream_end(struct server *s, struct hreq *h, int status, const char *err);

/* api.c: health bodies and job events */
void api_health_body(struct server *s, struct buf *out, int *status);
void api_liveness_body(struct server *s, struct buf *out, int *status);
/* The same bodies from a cache that is rebuilt only when the state they show
 * changed; the pointer is valid until the next call. */
const struct buf *api_health_cached(struct server *s, int *status);
const struct buf *api_liveness_cached(struct server *s, int *status);
void api_cache_free(struct server *s);
void api_job_event(struct server *s, struct pending *p, const char *data, size_t len);
void api_job_result(struct server *s, struct pending *p, int status, const char *body,
		    size_t len, int fd);

#endif
