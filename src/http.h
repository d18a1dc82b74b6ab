/* http.h: the libmicrohttpd adapter.
 *
 * Connections, reading requests (with the slow-client deadlines),
 * suspend/resume while work runs elsewhere, noticing a client that goes
 * away while its request is suspended, replies and streamed replies. It
 * knows nothing of what a route means: the layer above is told through
 * struct http_handlers and answers through the http_reply_* functions. */
#ifndef MEDIAD_HTTP_H
#define MEDIAD_HTTP_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "apierr.h"
#include "buf.h"
#include "router.h"

struct server;
struct MHD_Connection;
struct form;
struct MHD_Response;
struct MHD_PostProcessor;
struct hreq;
struct http_chunk;

/* A body piece goes here instead of into h->body when set (multipart). */
typedef void http_body_fn(struct server *s, struct hreq *h, const char *data, size_t size);

/* One HTTP request (per MHD connection request). */
struct hreq {
	struct MHD_Connection *conn;
	char request_id[80];
	char path[256];
	double t0;
	struct buf body;
	int too_large;

	/* set by the layer above, read by the adapter */
	const char *metric;      /* route label of mediad_requests_total; NULL: "unmatched" */
	const char *successor;   /* answered through a legacy alias: the successor's path */
	http_body_fn *body_sink;
	int form_error;          /* the body was refused while read (an HTTP status) */
	void *work;              /* the layer above's work for this request (not read here) */

	/* the layer above's own data (not read here; freed here) */
	unsigned method;
	struct route_match match;
	int in_fd;               /* upload memfd */
	size_t in_size;
	struct form *form;       /* multipart body being read (form.h), NULL for JSON */

	/* adapter state */
	int held;                /* suspended for work that is not finished */
	int client_gone;
	int suspended;
	int waiting_chunk;       /* suspended inside the stream reader */
	struct MHD_Response *resp; /* ready to queue */
	int status;
	int done;                /* response queued */
	int streaming;
	int stream_ended;
	int stream_sse;
	struct http_chunk *c_head, *c_tail;
	struct { const char *name; char value[160]; } hdr[2]; /* extra reply headers */
	int n_hdr;
};

struct http_handlers {
	/* headers are in: route, check, prepare for the body; 1 when it answered */
	int (*begin)(struct server *s, struct hreq *h, const char *url, const char *method);
	/* the whole body is in: answer now or http_hold() */
	void (*handle)(struct server *s, struct hreq *h);
	/* the client of a held request went away (the reply is dropped; 499) */
	void (*gone)(struct server *s, struct hreq *h);
};

int http_start(struct server *s, const struct http_handlers *hh);
void http_stop(struct server *s);
void http_run(struct server *s);
/* Close connections whose request headers or body are overdue (every tick). */
void http_expire(struct server *s, double now);
/* Suspended connections whose client went away (s->http_watch_fd readable). */
void http_watch_run(struct server *s);

/* Keep h for work that ends later: suspend it until a reply; the handlers'
 * gone() is called if the client goes away first. */
void http_hold(struct server *s, struct hreq *h);
const char *http_header(const struct hreq *h, const char *name);
const char *http_query_arg(const struct hreq *h, const char *name);
/* An extra header for the reply (at most 2). */
void http_add_header(struct hreq *h, const char *name, const char *value);

/* Replies: each answers h once. */
void http_reply_buf(struct server *s, struct hreq *h, int status, const char *ctype,
		    struct buf *b);
void http_reply_copy(struct server *s, struct hreq *h, int status, const char *ctype,
		     const void *data, size_t len);
void http_reply_json(struct server *s, struct hreq *h, int status, json_t *o);
void http_reply_error(struct server *s, struct hreq *h, const struct api_error *err);
void http_reply_err(struct server *s, struct hreq *h, enum api_err code, const char *param,
		    const char *msg);
/* A result: fd >= 0 is a memfd sent as the body (taken), else body/len. */
void http_complete(struct server *s, struct hreq *h, int status, const char *ctype,
		   const char *body, size_t len, int fd);
void http_complete_error(struct server *s, struct hreq *h, int status, const char *msg);
/* Send an fd of size bytes as the body (taken). */
void http_reply_fd(struct server *s, struct hreq *h, int status, const char *ctype, int fd,
		   uint64_t size);
/* Streamed replies: the first chunk sends the headers (200). */
void http_stream_chunk(struct server *s, struct hreq *h, const char *ctype, const char *data,
		       size_t len);
void http_stream_end(struct server *s, struct hreq *h, int status, const char *err);

#endif
