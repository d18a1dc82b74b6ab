/* admission.h: the admission rules that differ by task kind, in one table.
 *
 * For each task kind: the service that must be mounted for it, whether a
 * multipart/form-data body is accepted, whether it carries an upload (the
 * "file" field, multipart or base64 JSON) and its size limit, and how its
 * requests are keyed for batching. The inference handler (api_infer.c)
 * reads these; nothing else decides them. */
#ifndef MEDIAD_ADMISSION_H
#define MEDIAD_ADMISSION_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "task.h"

/* The upload cap of the audio tasks (bytes). */
#define ADMISSION_MAX_UPLOAD (50u << 20)

struct task_rules {
	unsigned services;    /* SVC_* bits of which one must be mounted */
	int multipart;        /* multipart/form-data bodies accepted */
	int upload;           /* carries a "file" upload, sent to the worker as a memfd */
	size_t max_upload;    /* upload bytes allowed (also bounded by MAX_REQUEST_BODY_BYTES) */
	/* requests batch together only with equal kind and key (NULL: 0) */
	uint64_t (*batch_key)(json_t *params);
};

/* The rules of kind (an all-zero row for TASK_NONE or out of range). */
const struct task_rules *admission_rules(enum task_kind kind);

#endif
