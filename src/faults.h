/* faults.h: fault injection inside a worker (tests and drills).
 *
 * The supervisor forwards POST/DELETE /debug/faults as IPC_FAULT frames; the
 * worker's reader thread applies them here, and the real code paths (device
 * ping, deep probe, run) consult them. A hang really blocks the calling
 * thread until the faults are cleared, so a cleared hang releases it (its
 * late answer is then recognised by generation and dropped). */
#ifndef MEDIAD_FAULTS_H
#define MEDIAD_FAULTS_H

#include <stdint.h>

enum fault_kind {
	FAULT_HANG_PING,
	FAULT_HANG_DEEP,
	FAULT_HANG_RUN,
	FAULT_ERROR_PING,
	FAULT_ERROR_DEEP,
	FAULT_CORRUPT_DEEP,
	FAULT_CRASH,
	FAULT_SLOW_MS,
	FAULT_COUNT
};

/* -1 when unknown. */
int fault_parse(const char *name);
const char *fault_name(enum fault_kind k);
/* "hang_ping|hang_deep|..." for error messages. */
const char *fault_names_joined(void);

/* count <= 0 = until cleared. value: for slow_ms the milliseconds. */
void faults_set(enum fault_kind k, int64_t value, int64_t count);
void faults_clear(void);
/* 1 if the fault is active (consumes one use when counted), 0 otherwise. */
int faults_take(enum fault_kind k, int64_t *value);
/* Block the calling thread until faults_clear(). */
void faults_hang(void);

#endif
