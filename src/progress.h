/* progress.h: the per-worker shared-memory progress page.
 *
 * The supervisor creates one page per worker (a memfd mapped in both
 * processes). The runner bumps it on every unit of progress (denoise step,
 * token, audio chunk, frame) with two relaxed atomic stores: no IPC message
 * per step. The supervisor reads it each tick to judge a busy worker. Times
 * are CLOCK_MONOTONIC nanoseconds, which both processes share.
 *
 * Before READY the worker also records its startup phase here, so the
 * supervisor can say where a warmup that never finished is stuck even when
 * the worker can no longer send anything. */
#ifndef MEDIAD_PROGRESS_H
#define MEDIAD_PROGRESS_H

#include <stdatomic.h>
#include <stdint.h>

/* Startup phases of a worker, in order. The supervisor zeroes the page
 * before each spawn, so a fresh process starts in PHASE_STARTING. */
enum worker_phase {
	PHASE_STARTING,    /* process started, execution thread not yet running */
	PHASE_DEVICE_OPEN, /* opening the device */
	PHASE_MODEL_LOAD,  /* runner open: loading weights */
	PHASE_WARMUP,      /* runner warmup: running the served shapes */
	PHASE_GOLDEN,      /* recording the golden deep-probe digest */
	PHASE_READY,       /* warmed up, READY sent */
};

struct progress_page {
	_Atomic uint64_t steps;        /* total progress steps ever made by this worker */
	_Atomic uint64_t last_ns;      /* time of the last step */
	_Atomic uint64_t last_step_ns; /* duration of the last step */
	_Atomic uint64_t request_id;   /* request being run (first of the batch), 0 idle */
	_Atomic uint64_t started_ns;   /* when the current run started */
	_Atomic uint32_t phase;        /* enum worker_phase */
};

/* Create a page: returns the memfd (inheritable by exec) and maps it; -errno. */
int progress_create(struct progress_page **out);
/* Map an inherited page fd (worker side). */
int progress_map(int fd, struct progress_page **out);
void progress_unmap(struct progress_page *p);

/* Runner side: one step made now. */
void progress_step(struct progress_page *p);
void progress_begin(struct progress_page *p, uint64_t request_id);
void progress_end(struct progress_page *p);

/* Worker side: entering a startup phase. */
void progress_set_phase(struct progress_page *p, enum worker_phase phase);
/* Supervisor side: the phase last recorded. */
enum worker_phase progress_phase(const struct progress_page *p);
/* "starting", "device_open", "model_load", "warmup", "golden_digest", "ready". */
const char *progress_phase_name(enum worker_phase phase);

#endif
