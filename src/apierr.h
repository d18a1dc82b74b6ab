/* apierr.h: the one place where API-level failures become HTTP statuses.
 *
 * Handlers never invent a status code: they fill a struct api_error with one
 * of these codes and a message, and api_error_json renders the body both
 * OpenAI and upstream clients read:
 *   {"error":{"message":"...","type":"...","param":"..."|null,"code":N},
 *    "detail":"..."}  */
#ifndef MEDIAD_APIERR_H
#define MEDIAD_APIERR_H

#include "buf.h"

enum api_err {
	AE_OK = 0,
	AE_BAD_JSON,        /* 400 invalid_request_error */
	AE_BAD_REQUEST,     /* 400 */
	AE_UNAUTHORIZED,    /* 401 authentication_error */
	AE_NOT_FOUND,       /* 404 not_found_error */
	AE_METHOD,          /* 405 */
	AE_TOO_LARGE,       /* 413 */
	AE_CONFLICT,        /* 409 (job already final) */
	AE_UNSUPPORTED_MEDIA, /* 415 */
	AE_INVALID_FIELD,   /* 422 invalid_request_error, param set */
	AE_QUEUE_FULL,      /* 429 rate_limit_error */
	AE_INTERNAL,        /* 500 server_error */
	AE_NOT_READY,       /* 503 service_unavailable (warming up, no ready worker, gated) */
	AE_DRAINING,        /* 503 */
	AE_WORKER_LOST,     /* 503: the worker that held the request died or was declared dead */
	AE_DEADLINE,        /* 504 timeout_error */
	AE_COUNT
};

struct api_error {
	enum api_err code;
	char message[384];
	char param[64]; /* field name for 422, "" if none */
};

int api_err_status(enum api_err code);
const char *api_err_type(enum api_err code);
/* Fill err (message formatted, param may be NULL). Returns -1 for use as
 * `return api_error_set(...)`. */
int api_error_set(struct api_error *err, enum api_err code, const char *param, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
void api_error_json(const struct api_error *err, struct buf *out);
/* Map an HTTP status back to the closest code (for errors a worker reports). */
enum api_err api_err_from_status(int status);

#endif
