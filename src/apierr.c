/* apierr.c: see apierr.h. */
#include "apierr.h"

#include <stdarg.h>
#include <stdio.h>

static const struct {
	int status;
	const char *type;
} table[AE_COUNT] = {
	[AE_OK] = {200, "ok"},
	[AE_BAD_JSON] = {400, "invalid_request_error"},
	[AE_BAD_REQUEST] = {400, "invalid_request_error"},
	[AE_UNAUTHORIZED] = {401, "authentication_error"},
	[AE_NOT_FOUND] = {404, "not_found_error"},
	[AE_METHOD] = {405, "invalid_request_error"},
	[AE_TOO_LARGE] = {413, "invalid_request_error"},
	[AE_CONFLICT] = {409, "invalid_request_error"},
	[AE_UNSUPPORTED_MEDIA] = {415, "invalid_request_error"},
	[AE_INVALID_FIELD] = {422, "invalid_request_error"},
	[AE_QUEUE_FULL] = {429, "rate_limit_error"},
	[AE_INTERNAL] = {500, "server_error"},
	[AE_NOT_READY] = {503, "service_unavailable"},
	[AE_DRAINING] = {503, "service_unavailable"},
	[AE_WORKER_LOST] = {503, "service_unavailable"},
	[AE_DEADLINE] = {504, "timeout_error"},
};

int api_err_status(enum api_err code)
{
	return code < AE_COUNT ? table[code].status : 500;
}

const char *api_err_type(enum api_err code)
{
	return code < AE_COUNT ? table[code].type : "server_error";
}

int api_error_set(struct api_error *err, enum api_err code, const char *param, const char *fmt, ...)
{
	va_list ap;

	err->code = code;
	snprintf(err->param, sizeof(err->param), "%s", param ? param : "");
	va_start(ap, fmt);
	vsnprintf(err->message, sizeof(err->message), fmt, ap);
	va_end(ap);
	return -1;
}

void api_error_json(const struct api_error *err, struct buf *out)
{
	buf_puts(out, "{\"error\":{\"message\":");
	buf_json_str(out, err->message);
	buf_puts(out, ",\"type\":");
	buf_json_str(out, api_err_type(err->code));
	buf_puts(out, ",\"param\":");
	if (err->param[0])
		buf_json_str(out, err->param);
	else
		buf_puts(out, "null");
	buf_printf(out, ",\"code\":%d},\"detail\":", api_err_status(err->code));
	buf_json_str(out, err->message);
	buf_puts(out, "}");
}

enum api_err api_err_from_status(int status)
{
	switch (status) {
	case 400: return AE_BAD_REQUEST;
	case 401: return AE_UNAUTHORIZED;
	case 404: return AE_NOT_FOUND;
	case 405: return AE_METHOD;
	case 413: return AE_TOO_LARGE;
	case 409: return AE_CONFLICT;
	case 415: return AE_UNSUPPORTED_MEDIA;
	case 422: return AE_INVALID_FIELD;
	case 429: return AE_QUEUE_FULL;
	case 503: return AE_NOT_READY;
	case 504: return AE_DEADLINE;
	default: return AE_INTERNAL;
	}
}
