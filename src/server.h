/* server.h: the supervisor process: the state its modules share.
 *
 * One process, one thread, one epoll loop (supervisor.c) drives
 * libmicrohttpd in external-epoll mode (http.c), the route handlers
 * (api*.c), the request owner (requests.c), the canary driver (monitor.c),
 * the worker processes (children.c), the scheduler (scheduler.c), the
 * canaries (canary.c), the job store (jobs.c) and the metrics (metrics.c).
 * Nothing here blocks: health answers come from this state alone. This
 * header holds data only; each module's functions are in its own header. */
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
struct children_events;

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
	/* requests the supervisor ended (cancel, client gone, deadline) while
	 * this worker still ran them: the canary counts the worker busy until
	 * the worker's own answer for each arrives (a wedged worker that lost
	 * its client is still judged by progress) */
	uint64_t orphans[64];
	int n_orphans;
	int deep_supported;
	char runner[32];
	char model[128];
	char device[64];
	int synthetic_weights;
};

/* A health body kept between requests: rebuilt only when one of the values
 * it is made from changed (api_health.c). key holds those values; n > max means
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
	const char *model_type; /* model_type label of the tt_canary_* metrics */

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
	const struct children_events *child_ev; /* how children.c tells the layers above */
	int http_watch_fd;     /* http.c's epoll set of suspended connections, in the loop */

	/* metric families */
	struct metric_family *m_requests, *m_duration, *m_queue, *m_ready, *m_alive,
		*m_restarts, *m_canary_state, *m_canary_fail, *m_canary_lat, *m_canary_last,
		*m_probes, *m_transitions, *m_stall, *m_deep_supported, *m_inflight,
		*m_read_timeouts,
		*m_warmup_timeouts;
};

#endif
