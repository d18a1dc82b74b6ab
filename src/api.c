/* api.c: from the HTTP adapter to the route handlers.
 *
 * Checks happen in the order HEALTH.md requires: method and path (404/405),
 * auth (401), serving (503), body (400/413/422), queue (429); the route
 * table (router.c) says which handler of which family (api_*.c) answers. */
#include "api.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "server.h"
#include "serving.h"
#include "util.h"
#include "banned.h"

static api_handler_fn *const handlers[] = {
	[H_HEALTH] = api_health,
	[H_LIVEZ] = api_livez,
	[H_STARTUPZ] = api_startupz,
	[H_LIVENESS] = api_liveness,
	[H_METRICS] = api_metrics,
	[H_MODELS] = api_models,
	[H_CONFIG] = api_config,
	[H_RESET_DEVICE] = api_reset_device,
	[H_DEEP_RESET] = api_deep_reset,
	[H_FAULTS] = api_faults,
	[H_INFER] = api_infer,
	[H_JOB_CREATE] = api_infer,
	[H_JOB_GET] = api_job,
	[H_JOB_LIST] = api_job,
	[H_JOB_DOWNLOAD] = api_job,
	[H_JOB_CANCEL] = api_job,
	[H_JOB_METRICS] = api_job,
	[H_JOB_LOGS] = api_job,
	[H_JOB_CHECKPOINTS] = api_job,
	[H_CATALOG] = api_job,
};

int api_init(void)
{
	if (sodium_init() < 0) {
		log_error("libsodium failed to initialise");
		return -1;
	}
	return 0;
}

static int auth_ok(struct server *s, struct hreq *h)
{
	const char *hdr;
	unsigned char a[32], b[32];

	if (s->cfg->no_auth)
		return 1;
	hdr = http_header(h, "Authorization");
	if (!hdr || strncasecmp(hdr, "Bearer ", 7))
		return 0;
	hdr += 7;
	while (*hdr == ' ')
		hdr++;
	/* constant time: compare fixed-size digests of both keys */
	crypto_generichash(a, sizeof(a), (const unsigned char *)hdr, strlen(hdr), NULL, 0);
	crypto_generichash(b, sizeof(b), (const unsigned char *)s->cfg->api_key,
			   strlen(s->cfg->api_key), NULL, 0);
	return sodium_memcmp(a, b, sizeof(a)) == 0;
}

static int is_inference(const struct route *rt)
{
	return rt->handler == H_INFER || rt->handler == H_JOB_CREATE;
}

static void api_handle(struct server *s, struct hreq *h)
{
	handlers[h->match.route->handler](s, h);
}

static int api_begin(struct server *s, struct hreq *h, const char *url, const char *method)
{
	int m;

	h->method = router_method(method);
	m = router_match(url, h->method, s->services, &h->match);
	if (!s->cfg->enable_fault_injection && !strcmp(url, "/debug/faults"))
		m = -1; /* fault injection off: the route does not exist */
	if (m < 0) {
		char msg[300];
		snprintf(msg, sizeof(msg), "Not Found: %.200s", url);
		h->match.route = NULL;
		http_reply_err(s, h, AE_NOT_FOUND, NULL, msg);
		return 1;
	}
	if (m == 0) {
		char allow[96], msg[320];
		router_allow_header(h->match.allowed, allow, sizeof(allow));
		snprintf(msg, sizeof(msg), "Method %.10s not allowed on %.100s (allowed: %s)", method,
			 url, allow);
		http_add_header(h, "Allow", allow);
		http_reply_err(s, h, AE_METHOD, NULL, msg);
		return 1;
	}
	h->metric = h->match.route->metric;
	if (h->match.legacy)
		h->successor = h->match.route->path;
	if (h->match.route->auth && !auth_ok(s, h)) {
		http_add_header(h, "WWW-Authenticate", "Bearer");
		http_reply_err(s, h, AE_UNAUTHORIZED, NULL, "Invalid or missing API Key");
		return 1;
	}
	if (h->match.route->services == SVC_TRAINING) {
		const char *org = http_header(h, "X-TT-Organization");
		if (!org || !*org) {
			http_reply_err(s, h, AE_UNAUTHORIZED, NULL,
				       "X-TT-Organization header is required");
			return 1;
		}
	}
	if (is_inference(h->match.route) && !serving_is_serving(s)) {
		const char *cl0 = http_header(h, "Content-Length");
		int64_t n0 = 0;
		/* answer 503 before reading the body, unless the body is small: then
		 * read it first (the handler checks serving again), so a client that
		 * sends its whole body before reading gets the 503, not a reset */
		if (!cl0 || parse_i64(cl0, &n0) < 0 || n0 > (1 << 20)) {
			api_handle(s, h);
			return 1;
		}
	}
	const char *cl = http_header(h, "Content-Length");
	int64_t clen;
	if (cl && parse_i64(cl, &clen) == 0 && clen > s->cfg->max_request_body_bytes) {
		char msg[128];
		snprintf(msg, sizeof(msg), "request body of %lld bytes exceeds %lld "
			 "(MAX_REQUEST_BODY_BYTES)", (long long)clen,
			 (long long)s->cfg->max_request_body_bytes);
		http_reply_err(s, h, AE_TOO_LARGE, NULL, msg);
		return 1;
	}
	if (is_inference(h->match.route))
		return api_infer_begin(s, h);
	return 0;
}

const struct http_handlers api_http = {
	.begin = api_begin,
	.handle = api_handle,
	.gone = api_infer_gone,
};
