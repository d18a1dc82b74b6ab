/* validate.h: request body validation for every inference and job route.
 *
 * validate_request checks a parsed JSON body against the rules of API.md for
 * one task kind and produces the normalized parameters a worker runs with
 * (defaults filled in, aliases resolved: n -> number_of_images, size ->
 * width/height, text -> input). On a bad body it fills err with
 * AE_INVALID_FIELD (422) naming the field and the rule, e.g.
 * "num_inference_steps must be an integer between 4 and 50", AE_TOO_LARGE
 * (413) for an audio file over 50 MiB, or AE_BAD_REQUEST (400) when the body
 * is not a JSON object. It never changes the body, and leaves *out alone on
 * failure. A JSON null counts as an absent field. */
#ifndef MEDIAD_VALIDATE_H
#define MEDIAD_VALIDATE_H

#include <jansson.h>
#include <stdint.h>

#include "apierr.h"
#include "task.h"

struct validate_limits {
	int image_min_size, image_max_size, image_size_multiple; /* e.g. 64, 1024, 16; default size 512 */
	int image_default_size;
	int video_max_frames;          /* e.g. 64 */
	int llm_max_tokens;            /* e.g. 4096 */
	const char *const *voices;     /* NULL-terminated list for TASK_SPEECH; NULL = any */
	const char *default_voice;
};

void validate_limits_default(struct validate_limits *lim);

/* body: borrowed. On success *out is a new reference to an object. 0 / -1. */
int validate_request(enum task_kind kind, json_t *body, const struct validate_limits *lim,
		     json_t **out, struct api_error *err);

/* The seed of normalized params: 1 with *seed set when the client gave one,
 * 0 when absent (the worker picks one and reports it). jansson integers are
 * int64, so a seed above INT64_MAX is stored as a string of its digits; read
 * it with this, never with json_integer_value. */
int validate_params_seed(const json_t *params, uint64_t *seed);

#endif
