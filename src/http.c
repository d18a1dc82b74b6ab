/* http.c: libmicrohttpd adapter, request routing and the route handlers.
 *
 * libmicrohttpd runs in external-epoll mode: its epoll fd sits in the
 * supervisor's epoll set and MHD_run is called when it is readable.
 * Inference requests are suspended while a worker runs them and resumed when
 * the result (or an error) arrives; streamed results are fed to a callback
 * response that suspends itself while it waits for the next chunk.
 *
 * Checks happen in the order HEALTH.md requires: method and path (404/405),
 * auth (401), serving (503), body (400/413/422), queue (429). */
#include "server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "faults.h"
#include "form.h"
#include "log.h"
#include "media.h"
#include "util.h"

#define MAX_UPLOAD_BYTES (50u << 20)

static struct server *g_srv;

/* --- read deadlines (slow clients) ---
 * CONNECTION_TIMEOUT_SECONDS is libmicrohttpd's idle timeout: a client that
 * sends one byte a second is never idle. Every connection therefore has a
 * phase: waiting for headers (since it opened or its last response was
 * sent), reading a body, or busy (headers and body in; the request is ours).
 * The headers must be complete within REQUEST_HEADER_TIMEOUT_SECONDS; a body
 * gets REQUEST_BODY_TIMEOUT_SECONDS plus one second per REQUEST_BODY_MIN_RATE
 * bytes received. Past that the tick writes a 408 and shuts the socket, and
 * libmicrohttpd closes the connection. The headers list is in deadline
 * order (appended with the current time), so the tick looks only at expired
 * entries; bodies in progress are few and scanned. */
enum hc_phase { HC_HEADERS, HC_BODY, HC_BUSY };

struct hconn {
	struct hconn *prev, *next;
	enum hc_phase phase;
	int fd;
	double since;
	uint64_t body_bytes;
	struct hreq *h;
};

struct hc_list {
	struct hconn *head, *tail;
};

static struct hc_list hc_headers, hc_bodies;

static struct hc_list *hc_list_of(enum hc_phase ph)
{
	return ph == HC_HEADERS ? &hc_headers : ph == HC_BODY ? &hc_bodies : NULL;
}

static void hc_unlink(struct hconn *c)
{
	struct hc_list *l = hc_list_of(c->phase);

	if (!l)
		return;
	if (c->prev)
		c->prev->next = c->next;
	else
		l->head = c->next;
	if (c->next)
		c->next->prev = c->prev;
	else
		l->tail = c->prev;
	c->prev = c->next = NULL;
}

static void hc_set_phase(struct hconn *c, enum hc_phase ph, double now)
{
	struct hc_list *l;

	hc_unlink(c);
	c->phase = ph;
	c->since = now;
	c->body_bytes = 0;
	if (!(l = hc_list_of(ph)))
		return;
	c->prev = l->tail;
	if (l->tail)
		l->tail->next = c;
	else
		l->head = c;
	l->tail = c;
}

static struct hconn *hc_of(struct MHD_Connection *conn)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	return ci ? ci->socket_context : NULL;
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
			  enum MHD_ConnectionNotificationCode code)
{
	struct hconn *c = *socket_context;

	if (code == MHD_CONNECTION_NOTIFY_STARTED) {
		const union MHD_ConnectionInfo *ci =
			MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
		c = xcalloc(1, sizeof(*c));
		c->fd = ci ? ci->connect_fd : -1;
		c->phase = HC_BUSY;
		hc_set_phase(c, HC_HEADERS, now_s());
		*socket_context = c;
	} else if (c) {
		hc_unlink(c);
		free(c);
		*socket_context = NULL;
	}
}

/* Answer 408 on the socket and shut it: libmicrohttpd then sees the end of
 * the stream and closes the connection (and completes its request). */
static void hc_cut(struct server *s, struct hconn *c, const char *what, const char *setting)
{
	char body[320], msg[512];
	int n, m;

	n = snprintf(body, sizeof(body),
		     "{\"detail\":\"request %s not received in time (%s): connection closed\","
		     "\"error\":{\"message\":\"request %s not received in time (%s): connection "
		     "closed\",\"type\":\"timeout_error\",\"code\":\"request_timeout\"}}",
		     what, setting, what, setting);
	m = snprintf(msg, sizeof(msg),
		     "HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n"
		     "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", n, body);
	const char *lbl[] = {c->phase == HC_HEADERS ? "headers" : "body"};
	metrics_add(s->m_read_timeouts, lbl, 1);
	if (c->h)
		c->h->status = 408;
	hc_set_phase(c, HC_BUSY, now_s());
	if (c->fd < 0)
		return;
	if (send(c->fd, msg, (size_t)m, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
		log_debug("408 to a slow client not sent: %s", strerror(errno));
	shutdown(c->fd, SHUT_RDWR);
}

void http_expire(struct server *s, double now)
{
	const struct config *cfg = s->cfg;
	struct hconn *c, *next;

	while ((c = hc_headers.head) && now - c->since >= cfg->request_header_timeout_seconds)
		hc_cut(s, c, "headers", "REQUEST_HEADER_TIMEOUT_SECONDS");
	for (c = hc_bodies.head; c; c = next) {
		next = c->next;
		double allowed = cfg->request_body_timeout_seconds +
				 (double)c->body_bytes / cfg->request_body_min_rate;
		if (now - c->since >= allowed)
			hc_cut(s, c, "body", "REQUEST_BODY_TIMEOUT_SECONDS, REQUEST_BODY_MIN_RATE");
	}
}

/* --- responses --- */

static void add_common_headers(struct hreq *h, struct MHD_Response *resp, int status)
{
	MHD_add_response_header(resp, "X-Request-Id", h->request_id);
	if (status == 503)
		MHD_add_response_header(resp, "Retry-After", "5");
	if (h->match.legacy && h->match.route) {
		char link[200];
		snprintf(link, sizeof(link), "<%s>; rel=\"successor-version\"", h->match.route->path);
		MHD_add_response_header(resp, "Deprecation", "true");
		MHD_add_response_header(resp, "Sunset", "2026-06-30");
		MHD_add_response_header(resp, "Link", link);
	}
}

/* Queue now (inside the access handler) or park and resume (async). */
static void deliver(struct server *s, struct hreq *h, int status, struct MHD_Response *resp)
{
	add_common_headers(h, resp, status);
	h->status = status;
	if (h->suspended) {
		h->resp = resp;
		h->suspended = 0;
		MHD_resume_connection(h->conn);
		s->resumed = 1;
		return;
	}
	if (MHD_queue_response(h->conn, (unsigned)status, resp) != MHD_YES)
		log_warn("could not queue a %d response", status);
	h->done = 1;
	MHD_destroy_response(resp);
}

static void respond_buf(struct server *s, struct hreq *h, int status, const char *ctype,
			struct buf *b)
{
	size_t len;
	char *data = buf_detach(b, &len);
	struct MHD_Response *resp =
		MHD_create_response_from_buffer(len, data, MHD_RESPMEM_MUST_FREE);

	MHD_add_response_header(resp, "Content-Type", ctype);
	deliver(s, h, status, resp);
}

static void respond_json(struct server *s, struct hreq *h, int status, json_t *o)
{
	char *text = json_dumps(o, JSON_COMPACT);
	struct buf b;

	buf_init(&b, BUF_UNLIMITED);
	buf_puts(&b, text);
	free(text);
	respond_buf(s, h, status, "application/json", &b);
}

static void respond_error(struct server *s, struct hreq *h, const struct api_error *err)
{
	struct buf b;

	buf_init(&b, BUF_UNLIMITED);
	api_error_json(err, &b);
	respond_buf(s, h, api_err_status(err->code), "application/json", &b);
}

static void respond_err(struct server *s, struct hreq *h, enum api_err code, const char *param,
			const char *msg)
{
	struct api_error err;

	api_error_set(&err, code, param, "%s", msg);
	respond_error(s, h, &err);
}

void http_complete_error(struct server *s, struct hreq *h, int status, const char *msg)
{
	respond_err(s, h, api_err_from_status(status), NULL, msg);
}

void http_complete(struct server *s, struct hreq *h, int status, const char *ctype,
		   const char *body, size_t len, int fd)
{
	struct MHD_Response *resp;

	if (fd >= 0) {
		struct stat st;
		if (fstat(fd, &st) < 0) {
			close(fd);
			http_complete_error(s, h, 500, "worker result could not be read");
			return;
		}
		resp = MHD_create_response_from_fd((uint64_t)st.st_size, fd);
	} else {
		resp = MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
	}
	MHD_add_response_header(resp, "Content-Type", ctype && *ctype ? ctype : "application/json");
	deliver(s, h, status, resp);
}

/* --- streaming --- */

static ssize_t stream_reader(void *cls, uint64_t pos, char *out, size_t max)
{
	struct hreq *h = cls;
	size_t n = 0;

	while (h->c_head && n < max) {
		struct chunk *c = h->c_head;
		size_t take = MIN(max - n, c->len - c->off);
		memcpy(out + n, c->data + c->off, take);
		n += take;
		c->off += take;
		if (c->off == c->len) {
			h->c_head = c->next;
			if (!h->c_head)
				h->c_tail = NULL;
			free(c);
		}
	}
	if (n)
		return (ssize_t)n;
	if (h->stream_ended)
		return MHD_CONTENT_READER_END_OF_STREAM;
	h->waiting_chunk = 1;
	MHD_suspend_connection(h->conn);
	return 0;
}

static void chunk_push(struct hreq *h, const char *data, size_t len)
{
	struct chunk *c = xmalloc(sizeof(*c) + len);

	c->next = NULL;
	c->len = len;
	c->off = 0;
	memcpy(c->data, data, len);
	if (h->c_tail)
		h->c_tail->next = c;
	else
		h->c_head = c;
	h->c_tail = c;
}

static void stream_wake(struct server *s, struct hreq *h)
{
	if (h->waiting_chunk) {
		h->waiting_chunk = 0;
		MHD_resume_connection(h->conn);
		s->resumed = 1;
	}
}

void http_stream_chunk(struct server *s, struct hreq *h, const char *ctype, const char *data,
		       size_t len)
{
	if (!h->streaming) {
		struct MHD_Response *resp =
			MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_reader,
							  h, NULL);
		h->streaming = 1;
		h->stream_sse = ctype && !strncmp(ctype, "text/event-stream", 17);
		MHD_add_response_header(resp, "Content-Type", ctype);
		MHD_add_response_header(resp, "Cache-Control", "no-cache");
		chunk_push(h, data, len);
		deliver(s, h, 200, resp);
		return;
	}
	chunk_push(h, data, len);
	stream_wake(s, h);
}

void http_stream_end(struct server *s, struct hreq *h, int status, const char *err)
{
	if (!h->streaming) {
		if (status == 200)
			status = 500;
		http_complete_error(s, h, status, err ? err : "stream ended without data");
		return;
	}
	if (status != 200 || err) {
		struct api_error e;
		struct buf b;
		api_error_set(&e, api_err_from_status(status), NULL, "%s",
			      err ? err : "stream failed");
		buf_init(&b, BUF_UNLIMITED);
		if (h->stream_sse)
			buf_puts(&b, "data: ");
		api_error_json(&e, &b);
		buf_puts(&b, h->stream_sse ? "\n\n" : "\n");
		chunk_push(h, b.data, b.len);
		buf_release(&b);
	}
	h->stream_ended = 1;
	stream_wake(s, h);
}

/* --- request bookkeeping --- */

static void hreq_free(struct hreq *h)
{
	struct chunk *c = h->c_head;

	while (c) {
		struct chunk *n = c->next;
		free(c);
		c = n;
	}
	if (h->form) {
		form_release(h->form);
		free(h->form);
	}
	if (h->resp)
		MHD_destroy_response(h->resp);
	if (h->in_fd >= 0)
		close(h->in_fd);
	buf_release(&h->body);
	free(h);
}

static void set_request_id(struct hreq *h, struct MHD_Connection *conn, struct server *s)
{
	const char *rid = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Request-Id");
	size_t n = rid ? strlen(rid) : 0;
	int ok = n > 0 && n <= 64;

	for (size_t i = 0; ok && i < n; i++) {
		char c = rid[i];
		ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		     c == '-' || c == '_' || c == '.' || c == ':';
	}
	if (ok) {
		memcpy(h->request_id, rid, n + 1);
		return;
	}
	/* a per-process random prefix and a counter: unique without a syscall
	 * per request */
	static uint64_t prefix;
	if (!prefix && getrandom(&prefix, sizeof(prefix), GRND_NONBLOCK) != sizeof(prefix))
		prefix = now_ns();
	snprintf(h->request_id, sizeof(h->request_id), "%016llx%08llx",
		 (unsigned long long)prefix, (unsigned long long)++s->next_id);
}

static int auth_ok(struct server *s, struct MHD_Connection *conn)
{
	const char *hdr;
	unsigned char a[32], b[32];

	if (s->cfg->no_auth)
		return 1;
	hdr = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
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

static void respond_unauthorized(struct server *s, struct hreq *h)
{
	struct buf b;
	struct api_error err;
	struct MHD_Response *resp;
	size_t len;
	char *data;

	api_error_set(&err, AE_UNAUTHORIZED, NULL, "Invalid or missing API Key");
	buf_init(&b, BUF_UNLIMITED);
	api_error_json(&err, &b);
	data = buf_detach(&b, &len);
	resp = MHD_create_response_from_buffer(len, data, MHD_RESPMEM_MUST_FREE);
	MHD_add_response_header(resp, "Content-Type", "application/json");
	MHD_add_response_header(resp, "WWW-Authenticate", "Bearer");
	deliver(s, h, 401, resp);
}

/* --- inference admission --- */

static uint64_t batch_key(enum task_kind kind, json_t *params)
{
	if (kind != TASK_IMAGE_GEN)
		return 0;
	return (uint64_t)json_integer_value(json_object_get(params, "width")) << 40 |
	       (uint64_t)json_integer_value(json_object_get(params, "height")) << 20 |
	       (uint64_t)json_integer_value(json_object_get(params, "num_inference_steps"));
}

/* Decode the JSON "file" (base64) of a transcription into a memfd. */
static int json_file_to_fd(struct hreq *h, json_t *body, struct api_error *err)
{
	json_t *f = json_object_get(body, "file");
	struct buf raw;
	int fd;

	if (!json_is_string(f))
		return 0; /* validation names the problem */
	buf_init(&raw, MAX_UPLOAD_BYTES);
	if (media_base64_decode(json_string_value(f), json_string_length(f), &raw) < 0) {
		buf_release(&raw);
		return api_error_set(err, AE_INVALID_FIELD, "file",
				     "file must be base64-encoded audio of at most %u bytes",
				     MAX_UPLOAD_BYTES);
	}
	fd = memfd_create("mediad-upload", MFD_CLOEXEC);
	if (fd < 0 || write_all(fd, raw.data, raw.len) < 0) {
		buf_release(&raw);
		if (fd >= 0)
			close(fd);
		return api_error_set(err, AE_INTERNAL, NULL, "cannot store the upload");
	}
	h->in_fd = fd;
	h->in_size = raw.len;
	buf_release(&raw);
	return 0;
}

static void handle_inference(struct server *s, struct hreq *h)
{
	const struct route *rt = h->match.route;
	struct api_error err;
	json_t *body = NULL, *params = NULL;
	json_error_t jerr;
	int multipart = h->form != NULL;

	if (h->too_large) {
		respond_err(s, h, AE_TOO_LARGE, NULL, "request body exceeds MAX_REQUEST_BODY_BYTES");
		return;
	}
	if (multipart) {
		form_finish(h->form);
		if (h->form->status) {
			respond_err(s, h, api_err_from_status(h->form->status),
				    h->form->param[0] ? h->form->param : NULL, h->form->msg);
			return;
		}
		h->in_fd = form_take_file(h->form, &h->in_size);
		if (h->in_fd < 0) {
			respond_err(s, h, AE_INVALID_FIELD, "file",
				    "file is required (a multipart field named \"file\")");
			return;
		}
		body = form_json(h->form);
		json_object_set_new(body, "file", json_string("AA=="));
	} else {
		if (h->body.len == 0) {
			respond_err(s, h, AE_BAD_JSON, NULL, "request body is empty; expected JSON");
			return;
		}
		body = json_loadb(h->body.data, h->body.len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY | JSON_ALLOW_NUL,
				  &jerr);
		if (!body) {
			api_error_set(&err, AE_BAD_JSON, NULL,
				      "request body is not valid JSON: %s (line %d, column %d)",
				      jerr.text, jerr.line, jerr.column);
			respond_error(s, h, &err);
			return;
		}
		if ((rt->task == TASK_TRANSCRIBE || rt->task == TASK_TRANSLATE) &&
		    json_is_object(body) && json_file_to_fd(h, body, &err) < 0) {
			json_decref(body);
			respond_error(s, h, &err);
			return;
		}
	}
	if (validate_request(rt->task, body, &s->limits, &params, &err) < 0) {
		json_decref(body);
		respond_error(s, h, &err);
		return;
	}
	json_decref(body);
	if (rt->task == TASK_TRANSCRIBE || rt->task == TASK_TRANSLATE) {
		json_object_del(params, "file");
		json_object_set_new(params, "file_bytes", json_integer((json_int_t)h->in_size));
		if (h->in_size == 0) {
			json_decref(params);
			respond_err(s, h, AE_INVALID_FIELD, "file", "file must not be empty");
			return;
		}
	}

	struct pending *p = xcalloc(1, sizeof(*p));
	double now = now_s();
	p->sr.id = server_new_id(s);
	p->sr.kind = rt->task;
	p->sr.batch_key = batch_key(rt->task, params);
	p->sr.arrival = now;
	p->sr.deadline = now + s->cfg->request_processing_timeout_seconds;
	p->sr.owner = p;
	p->in_fd = h->in_fd;
	h->in_fd = -1;
	p->params = json_dumps(params, JSON_COMPACT);
	p->params_len = strlen(p->params);

	if (rt->handler == H_JOB_CREATE) {
		const char *org = MHD_lookup_connection_value(h->conn, MHD_HEADER_KIND,
							      "X-TT-Organization");
		const char *model = json_string_value(json_object_get(params, "model"));
		struct job *j = jobs_create(s->jobs, rt->job_type, model ? model : s->workers[0].model,
					    params, org ? org : "");
		if (!j) {
			json_decref(params);
			free(p->params);
			if (p->in_fd >= 0)
				close(p->in_fd);
			free(p);
			respond_err(s, h, AE_QUEUE_FULL, NULL,
				    "job store is full of unfinished jobs; retry later");
			return;
		}
		p->kind = OWN_JOB;
		snprintf(p->job_id, sizeof(p->job_id), "%s", j->id);
		if (sched_admit(&s->sched, &p->sr) < 0) {
			jobs_fail(j, 429, "queue is full");
			json_decref(params);
			free(p->params);
			free(p);
			respond_err(s, h, AE_QUEUE_FULL, NULL, "queue is full (MAX_QUEUE_SIZE)");
			return;
		}
		j->task_id = p->sr.id;
		server_dispatch(s);
		json_t *jo = jobs_to_json(j);
		respond_json(s, h, rt->job_type == JOB_VIDEO ? 202 : 201, jo);
		json_decref(jo);
		json_decref(params);
		return;
	}
	json_decref(params);
	p->kind = OWN_HTTP;
	p->h = h;
	if (sched_admit(&s->sched, &p->sr) < 0) {
		char msg[96];
		free(p->params);
		if (p->in_fd >= 0)
			close(p->in_fd);
		free(p);
		snprintf(msg, sizeof(msg), "queue is full (MAX_QUEUE_SIZE=%d); retry later",
			 s->cfg->max_queue_size);
		respond_err(s, h, AE_QUEUE_FULL, NULL, msg);
		return;
	}
	h->pend = p;
	h->suspended = 1;
	MHD_suspend_connection(h->conn);
	/* dispatch now, so the queue bound counts only requests that really
	 * wait (a burst handled in one loop pass is not refused early) */
	server_dispatch(s);
}

/* --- operations --- */

static void handle_faults(struct server *s, struct hreq *h)
{
	json_t *body, *resp;
	json_error_t jerr;
	const char *wid = NULL, *fault = NULL;
	json_int_t value = 0, count = 0;
	int kind;

	if (h->method == M_DELETE) {
		for (int i = 0; i < s->n_workers; i++)
			workers_send(s, &s->workers[i], IPC_FAULT, 0, 0, 0, NULL, 0, -1);
		resp = json_pack("{s:s}", "status", "cleared");
		respond_json(s, h, 200, resp);
		json_decref(resp);
		log_warn("fault injection: all faults cleared");
		return;
	}
	body = json_loadb(h->body.data ? h->body.data : "", h->body.len, 0, &jerr);
	if (!json_is_object(body)) {
		json_decref(body);
		respond_err(s, h, AE_BAD_JSON, NULL, "request body must be a JSON object");
		return;
	}
	json_t *jw = json_object_get(body, "worker");
	if (jw && !json_is_string(jw)) {
		json_decref(body);
		respond_err(s, h, AE_INVALID_FIELD, "worker", "worker must be a string worker id");
		return;
	}
	wid = json_string_value(jw);
	fault = json_string_value(json_object_get(body, "fault"));
	json_t *jv = json_object_get(body, "value"), *jc = json_object_get(body, "count");
	if ((jv && !json_is_integer(jv)) || (jc && !json_is_integer(jc))) {
		json_decref(body);
		respond_err(s, h, AE_INVALID_FIELD, jv && !json_is_integer(jv) ? "value" : "count",
			    "value and count must be integers");
		return;
	}
	value = jv ? json_integer_value(jv) : 0;
	count = jc ? json_integer_value(jc) : 0;
	if (!fault || (kind = fault_parse(fault)) < 0) {
		char msg[200];
		snprintf(msg, sizeof(msg), "fault must be one of %s", fault_names_joined());
		json_decref(body);
		respond_err(s, h, AE_INVALID_FIELD, "fault", msg);
		return;
	}
	int hit = 0;
	json_t *fwd = json_pack("{s:s,s:I,s:I}", "fault", fault, "value", value, "count", count);
	char *text = json_dumps(fwd, JSON_COMPACT);
	for (int i = 0; i < s->n_workers; i++) {
		if (wid && strcmp(wid, s->workers[i].id))
			continue;
		hit++;
		workers_send(s, &s->workers[i], IPC_FAULT, 0, 0, 0, text, strlen(text), -1);
	}
	free(text);
	json_decref(fwd);
	if (!hit) {
		json_decref(body);
		respond_err(s, h, AE_NOT_FOUND, "worker", "no worker with this id");
		return;
	}
	log_warn("fault injection: %s on worker %s (value %lld, count %lld)", fault,
		 wid ? wid : "all", (long long)value, (long long)count);
	resp = json_pack("{s:s,s:s,s:s,s:I,s:I}", "status", "injected", "worker", wid ? wid : "all",
			 "fault", fault, "value", value, "count", count);
	respond_json(s, h, 200, resp);
	json_decref(resp);
	json_decref(body);
}

static void restart_worker(struct server *s, struct worker *w, const char *why)
{
	if (w->state == W_FAILED || w->state == W_DOWN) {
		workers_revive(s, w, why);
		return;
	}
	workers_kill(s, w, "manual", why);
}

static void handle_reset(struct server *s, struct hreq *h, int all)
{
	json_t *list = json_array(), *resp;

	if (!all) {
		const char *id = MHD_lookup_connection_value(h->conn, MHD_GET_ARGUMENT_KIND,
							     "device_id");
		struct worker *w = NULL;
		if (!id || !*id) {
			json_decref(list);
			respond_err(s, h, AE_INVALID_FIELD, "device_id",
				    "device_id query parameter is required");
			return;
		}
		for (int i = 0; i < s->n_workers; i++)
			if (!strcmp(s->workers[i].id, id))
				w = &s->workers[i];
		if (!w) {
			json_decref(list);
			respond_err(s, h, AE_NOT_FOUND, "device_id", "no device with this id");
			return;
		}
		restart_worker(s, w, "reset requested via /tt-reset-device");
		json_array_append_new(list, json_string(w->id));
	} else {
		for (int i = 0; i < s->n_workers; i++) {
			restart_worker(s, &s->workers[i], "reset requested via /tt-deep-reset");
			json_array_append_new(list, json_string(s->workers[i].id));
		}
	}
	resp = json_pack("{s:s,s:o}", "status", "scheduled", "restarting", list);
	respond_json(s, h, 200, resp);
	json_decref(resp);
}

/* --- jobs --- */

static struct job *job_for_request(struct server *s, struct hreq *h)
{
	struct job *j = jobs_get(s->jobs, h->match.id);
	const char *org;

	if (!j || (int)j->type != h->match.route->job_type)
		return NULL;
	if (j->type == JOB_TRAINING) {
		org = MHD_lookup_connection_value(h->conn, MHD_HEADER_KIND, "X-TT-Organization");
		if (!org || strcmp(org, j->organization))
			return NULL;
	}
	return j;
}

static void handle_job(struct server *s, struct hreq *h)
{
	const struct route *rt = h->match.route;
	const char *org = MHD_lookup_connection_value(h->conn, MHD_HEADER_KIND, "X-TT-Organization");
	struct job *j;
	json_t *o;

	if (rt->job_type == JOB_TRAINING && (!org || !*org)) {
		respond_err(s, h, AE_UNAUTHORIZED, NULL, "X-TT-Organization header is required");
		return;
	}
	if (rt->handler == H_JOB_LIST) {
		json_t *arr = jobs_list_json(s->jobs, rt->job_type,
					     rt->job_type == JOB_TRAINING ? org : NULL);
		if (rt->job_type == JOB_TRAINING) {
			o = json_pack("{s:s,s:o}", "object", "list", "data", arr);
			respond_json(s, h, 200, o);
			json_decref(o);
		} else {
			respond_json(s, h, 200, arr);
			json_decref(arr);
		}
		return;
	}
	if (rt->handler == H_CATALOG) {
		o = json_pack("{s:s,s:[{s:s,s:s,s:s,s:[s,s]}]}", "object", "list", "data", "id",
			      s->workers[0].model[0] ? s->workers[0].model : "mediad-mock", "object",
			      "model", "owned_by", "mediad", "methods", "lora", "full");
		respond_json(s, h, 200, o);
		json_decref(o);
		return;
	}
	j = job_for_request(s, h);
	if (!j) {
		respond_err(s, h, AE_NOT_FOUND, NULL, "job not found");
		return;
	}
	switch (rt->handler) {
	case H_JOB_GET:
		o = jobs_to_json(j);
		respond_json(s, h, 200, o);
		json_decref(o);
		return;
	case H_JOB_METRICS:
	case H_JOB_LOGS:
	case H_JOB_CHECKPOINTS: {
		json_t *arr = rt->handler == H_JOB_METRICS ? j->metrics
			      : rt->handler == H_JOB_LOGS  ? j->logs
							   : j->checkpoints;
		o = json_pack("{s:s,s:O}", "object", "list", "data", arr);
		respond_json(s, h, 200, o);
		json_decref(o);
		return;
	}
	case H_JOB_DOWNLOAD: {
		if (j->status != JOB_COMPLETED || j->artifact_fd < 0) {
			char msg[128];
			snprintf(msg, sizeof(msg), "job %s has no video yet (status %s)", j->id,
				 jobs_status_name(j->status));
			respond_err(s, h, AE_NOT_FOUND, NULL, msg);
			return;
		}
		int fd = dup(j->artifact_fd);
		struct MHD_Response *resp = MHD_create_response_from_fd(j->artifact_size, fd);
		char disp[96];
		snprintf(disp, sizeof(disp), "attachment; filename=\"%s.mp4\"", j->id);
		MHD_add_response_header(resp, "Content-Type", "video/mp4");
		MHD_add_response_header(resp, "Content-Disposition", disp);
		deliver(s, h, 200, resp);
		return;
	}
	case H_JOB_CANCEL: {
		if (jobs_is_final(j)) {
			char msg[128];
			snprintf(msg, sizeof(msg), "job %s is already %s", j->id,
				 jobs_status_name(j->status));
			respond_err(s, h, AE_CONFLICT, NULL, msg);
			return;
		}
		struct sched_req *r = j->task_id ? sched_find(&s->sched, j->task_id) : NULL;
		if (r) {
			struct pending *p = (struct pending *)r;
			if (r->worker >= 0) {
				struct worker *w = &s->workers[r->worker];
				canary_request_finished(&w->canary, now_s());
				workers_send(s, w, IPC_CANCEL, 0, 0, r->id, NULL, 0, -1);
			}
			sched_remove(&s->sched, r);
			if (p->in_fd >= 0)
				close(p->in_fd);
			free(p->params);
			free(p);
		}
		jobs_set_status(j, JOB_CANCELLED);
		o = jobs_to_json(j);
		respond_json(s, h, 200, o);
		json_decref(o);
		return;
	}
	default:
		respond_err(s, h, AE_INTERNAL, NULL, "unhandled job route");
	}
}

/* --- health and metadata --- */

static void update_gauges(struct server *s)
{
	const char *model = s->cfg->model_runner->name;

	metrics_set(s->m_queue, NULL, sched_waiting(&s->sched));
	metrics_clear(s->m_canary_state);
	for (int i = 0; i < s->n_workers; i++) {
		struct worker *w = &s->workers[i];
		const char *lw[] = {w->id};
		metrics_set(s->m_ready, lw, worker_is_ready(s, w));
		metrics_set(s->m_alive, lw, w->pid > 0);
		metrics_set(s->m_inflight, lw, s->sched.workers[i].n_inflight);
		metrics_set(s->m_deep_supported, lw, w->deep_supported);
		double stall = 0;
		if (w->canary.busy > 0)
			stall = now_s() - w->canary.progress_at;
		metrics_set(s->m_stall, lw, stall);
		for (int st = 0; st < CANARY_STATE_COUNT; st++) {
			const char *lc[] = {model, w->id, canary_state_name((enum canary_state)st)};
			metrics_set(s->m_canary_state, lc, w->canary.state == (enum canary_state)st);
		}
	}
}

static void handle_simple(struct server *s, struct hreq *h)
{
	struct buf b;
	int status = 200;
	json_t *o;

	buf_init(&b, BUF_UNLIMITED);
	switch (h->match.route->handler) {
	case H_HEALTH:
	case H_LIVENESS: {
		const struct buf *body = h->match.route->handler == H_HEALTH
			? api_health_cached(s, &status) : api_liveness_cached(s, &status);
		struct MHD_Response *resp = MHD_create_response_from_buffer(
			body->len, body->data, MHD_RESPMEM_MUST_COPY);
		MHD_add_response_header(resp, "Content-Type", "application/json");
		buf_release(&b);
		deliver(s, h, status, resp);
		return;
	}
	case H_LIVEZ: {
		int recoverable = 0;
		for (int i = 0; i < s->n_workers; i++)
			if (s->workers[i].state != W_FAILED)
				recoverable = 1;
		if (recoverable) {
			buf_puts(&b, "{\"status\":\"alive\"}");
		} else {
			status = 503;
			buf_puts(&b, "{\"status\":\"dead\",\"error\":\"no worker can recover: restart "
				     "budget exhausted on every worker\"}");
		}
		break;
	}
	case H_STARTUPZ:
		if (s->ever_ready) {
			buf_puts(&b, "{\"phase\":\"started\"}");
		} else {
			int warming = 0;
			for (int i = 0; i < s->n_workers; i++)
				if (s->workers[i].state == W_WARMING)
					warming = 1;
			status = 503;
			buf_printf(&b, "{\"phase\":\"%s\",\"elapsed_s\":%.3f}",
				   warming ? "warming_up" : "starting_workers",
				   now_s() - s->started_mono);
		}
		break;
	case H_METRICS:
		update_gauges(s);
		metrics_render(s->metrics, &b);
		respond_buf(s, h, 200, "text/plain; version=0.0.4; charset=utf-8", &b);
		return;
	case H_MODELS: {
		const char *model = s->workers[0].model[0] ? s->workers[0].model
			: (s->cfg->model_name[0] ? s->cfg->model_name : "mediad-mock");
		o = json_pack("{s:s,s:[{s:s,s:s,s:I,s:s,s:s,s:b}]}", "object", "list", "data", "id",
			      model, "object", "model", "created", (json_int_t)s->started_wall,
			      "owned_by", "mediad", "runner", s->cfg->model_runner->name,
			      "synthetic_weights", s->workers[0].synthetic_weights);
		char *t = json_dumps(o, JSON_COMPACT);
		buf_puts(&b, t);
		free(t);
		json_decref(o);
		break;
	}
	case H_CONFIG:
		config_dump_json(s->cfg, &b);
		break;
	default:
		buf_puts(&b, "{}");
	}
	respond_buf(s, h, status, "application/json", &b);
}

/* --- the access handler --- */

static int is_inference(const struct route *rt)
{
	return rt->handler == H_INFER || rt->handler == H_JOB_CREATE;
}

static void handle(struct server *s, struct hreq *h)
{
	const struct route *rt = h->match.route;

	switch (rt->handler) {
	case H_INFER:
	case H_JOB_CREATE:
		if (!server_is_serving(s)) {
			char why[512];
			server_not_serving_reason(s, why, sizeof(why));
			respond_err(s, h, s->draining ? AE_DRAINING : AE_NOT_READY, NULL, why);
			return;
		}
		handle_inference(s, h);
		return;
	case H_FAULTS:
		handle_faults(s, h);
		return;
	case H_RESET_DEVICE:
		handle_reset(s, h, 0);
		return;
	case H_DEEP_RESET:
		handle_reset(s, h, 1);
		return;
	case H_JOB_GET:
	case H_JOB_LIST:
	case H_JOB_DOWNLOAD:
	case H_JOB_CANCEL:
	case H_JOB_METRICS:
	case H_JOB_LOGS:
	case H_JOB_CHECKPOINTS:
	case H_CATALOG:
		handle_job(s, h);
		return;
	default:
		handle_simple(s, h);
	}
}

static int first_call(struct server *s, struct hreq *h, const char *url, const char *method)
{
	struct MHD_Connection *conn = h->conn;
	int m;

	h->method = router_method(method);
	snprintf(h->path, sizeof(h->path), "%s", url);
	set_request_id(h, conn, s);
	m = router_match(url, h->method, s->services, &h->match);
	if (!s->cfg->enable_fault_injection && !strcmp(url, "/debug/faults"))
		m = -1; /* fault injection off: the route does not exist */
	if (m < 0) {
		char msg[300];
		snprintf(msg, sizeof(msg), "Not Found: %.200s", url);
		h->match.route = NULL;
		respond_err(s, h, AE_NOT_FOUND, NULL, msg);
		return 1;
	}
	if (m == 0) {
		char allow[96], msg[320];
		struct api_error err;
		struct buf b;
		router_allow_header(h->match.allowed, allow, sizeof(allow));
		snprintf(msg, sizeof(msg), "Method %.10s not allowed on %.100s (allowed: %s)", method,
			 url, allow);
		api_error_set(&err, AE_METHOD, NULL, "%s", msg);
		buf_init(&b, BUF_UNLIMITED);
		api_error_json(&err, &b);
		size_t len;
		char *data = buf_detach(&b, &len);
		struct MHD_Response *resp =
			MHD_create_response_from_buffer(len, data, MHD_RESPMEM_MUST_FREE);
		MHD_add_response_header(resp, "Content-Type", "application/json");
		MHD_add_response_header(resp, "Allow", allow);
		deliver(s, h, 405, resp);
		return 1;
	}
	if (h->match.route->auth && !auth_ok(s, conn)) {
		respond_unauthorized(s, h);
		return 1;
	}
	if (h->match.route->services == SVC_TRAINING) {
		const char *org = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
							      "X-TT-Organization");
		if (!org || !*org) {
			respond_err(s, h, AE_UNAUTHORIZED, NULL,
				    "X-TT-Organization header is required");
			return 1;
		}
	}
	if (is_inference(h->match.route) && !server_is_serving(s)) {
		const char *cl0 = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
							      "Content-Length");
		int64_t n0 = 0;
		/* answer 503 before reading the body, unless the body is small: then
		 * read it first (handle() checks serving again), so a client that
		 * sends its whole body before reading gets the 503, not a reset */
		if (!cl0 || parse_i64(cl0, &n0) < 0 || n0 > (1 << 20)) {
			handle(s, h);
			return 1;
		}
	}
	const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
	int64_t clen;
	if (cl && parse_i64(cl, &clen) == 0 && clen > s->cfg->max_request_body_bytes) {
		char msg[128];
		snprintf(msg, sizeof(msg), "request body of %lld bytes exceeds %lld "
			 "(MAX_REQUEST_BODY_BYTES)", (long long)clen,
			 (long long)s->cfg->max_request_body_bytes);
		respond_err(s, h, AE_TOO_LARGE, NULL, msg);
		return 1;
	}
	const char *ct = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Type");
	if (ct && !strncasecmp(ct, "multipart/form-data", 19) &&
	    (h->match.route->task == TASK_TRANSCRIBE || h->match.route->task == TASK_TRANSLATE)) {
		size_t file_max = MIN((size_t)MAX_UPLOAD_BYTES,
				      (size_t)s->cfg->max_request_body_bytes);
		h->form = xmalloc(sizeof(*h->form));
		if (form_init(h->form, ct, file_max) < 0) {
			respond_err(s, h, AE_BAD_REQUEST, "Content-Type", h->form->msg);
			return 1;
		}
	}
	buf_init(&h->body, (size_t)s->cfg->max_request_body_bytes);
	return 0;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
				  const char *method, const char *version, const char *upload,
				  size_t *upload_size, void **con_cls)
{
	struct server *s = cls;
	struct hreq *h = *con_cls;

	if (!h) {
		struct hconn *c = hc_of(conn);
		h = xcalloc(1, sizeof(*h));
		h->conn = conn;
		h->in_fd = -1;
		h->t0 = now_s();
		buf_init(&h->body, 0);
		*con_cls = h;
		if (c) {
			c->h = h;
			hc_set_phase(c, HC_BODY, h->t0);
		}
		if (first_call(s, h, url, method) && c && c->phase == HC_BODY)
			hc_set_phase(c, HC_BUSY, h->t0);
		return MHD_YES;
	}
	if (h->resp) {
		struct MHD_Response *resp = h->resp;
		h->resp = NULL;
		h->done = 1;
		MHD_queue_response(conn, (unsigned)h->status, resp);
		MHD_destroy_response(resp);
		return MHD_YES;
	}
	if (h->done || h->suspended || h->pend)
		return MHD_YES;
	if (*upload_size) {
		struct hconn *c = hc_of(conn);
		if (c && c->phase == HC_BODY)
			c->body_bytes += *upload_size;
		if ((h->too_large || (h->form && h->form->status)) &&
		    now_s() - h->t0 > s->cfg->connection_timeout_seconds)
			return MHD_NO; /* discarding a body that does not end: close */
		if (h->form)
			form_feed(h->form, upload, *upload_size);
		else if (!h->too_large && buf_append(&h->body, upload, *upload_size) < 0) {
			h->too_large = 1;
			buf_release(&h->body);
		}
		*upload_size = 0;
		return MHD_YES;
	}
	struct hconn *c = hc_of(conn);
	if (c && c->phase == HC_BODY)
		hc_set_phase(c, HC_BUSY, now_s());
	handle(s, h);
	return MHD_YES;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct server *s = cls;
	struct hreq *h = *con_cls;

	struct hconn *c = hc_of(conn);
	if (c) {
		/* the next request on this connection has its own header deadline */
		c->h = NULL;
		hc_set_phase(c, HC_HEADERS, now_s());
	}
	if (!h)
		return;
	*con_cls = NULL;
	if (h->pend) {
		/* the client went away while its request was queued or running */
		struct pending *p = h->pend;
		int wi = p->sr.worker;
		sched_remove(&s->sched, &p->sr);
		if (wi >= 0) {
			canary_request_finished(&s->workers[wi].canary, now_s());
			workers_send(s, &s->workers[wi], IPC_CANCEL, 0, 0, p->sr.id, NULL, 0, -1);
		}
		if (p->in_fd >= 0)
			close(p->in_fd);
		free(p->params);
		free(p);
		h->pend = NULL;
	}
	const char *label = h->match.route ? h->match.route->metric : "unmatched";
	char code[8];
	snprintf(code, sizeof(code), "%d", h->status ? h->status : 499);
	const char *lrc[] = {label, code};
	const char *lr[] = {label};
	metrics_add(s->m_requests, lrc, 1);
	metrics_observe(s->m_duration, lr, now_s() - h->t0);
	if (log_enabled(LOG_DEBUG))
		log_write(LOG_DEBUG, h->request_id, NULL, "%s %s -> %d (%.3f ms)",
			  h->method == M_GET ? "GET" : "request", h->path, h->status,
			  (now_s() - h->t0) * 1000);
	hreq_free(h);
}

static void mhd_logger(void *cls, const char *fmt, va_list ap)
{
	char msg[512];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	size_t n = strlen(msg);
	while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
		msg[--n] = 0;
	log_warn("http: %s", msg);
}

int http_start(struct server *s)
{
	struct sockaddr_in6 a6;
	struct sockaddr_in a4;
	struct sockaddr *sa;
	unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG |
			 MHD_USE_TURBO;

	g_srv = s;
	static const char *const l_phase[] = {"phase", NULL};
	s->m_read_timeouts = metrics_family(
		s->metrics, METRIC_COUNTER, "mediad_http_read_timeouts_total",
		"Connections closed with 408 because a request's headers or body came too slowly "
		"(REQUEST_HEADER_TIMEOUT_SECONDS, REQUEST_BODY_TIMEOUT_SECONDS, REQUEST_BODY_MIN_RATE)",
		l_phase, NULL, 0);
	if (sodium_init() < 0) {
		log_error("libsodium failed to initialise");
		return -1;
	}
	memset(&a4, 0, sizeof(a4));
	memset(&a6, 0, sizeof(a6));
	if (inet_pton(AF_INET, s->cfg->service_host, &a4.sin_addr) == 1) {
		a4.sin_family = AF_INET;
		a4.sin_port = htons((uint16_t)s->cfg->service_port);
		sa = (struct sockaddr *)&a4;
	} else if (inet_pton(AF_INET6, s->cfg->service_host, &a6.sin6_addr) == 1) {
		a6.sin6_family = AF_INET6;
		a6.sin6_port = htons((uint16_t)s->cfg->service_port);
		sa = (struct sockaddr *)&a6;
		flags |= MHD_USE_IPv6;
	} else {
		log_error("invalid value \"%s\" for SERVICE_HOST: expected an IPv4 or IPv6 address",
			  s->cfg->service_host);
		return -2;
	}
	s->mhd = MHD_start_daemon(flags, (uint16_t)s->cfg->service_port, NULL, NULL, on_request, s,
				  MHD_OPTION_EXTERNAL_LOGGER, mhd_logger, NULL,
				  MHD_OPTION_SOCK_ADDR, sa,
				  MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
				  MHD_OPTION_NOTIFY_CONNECTION, on_connection, s,
				  MHD_OPTION_CONNECTION_LIMIT, (unsigned)s->cfg->max_connections,
				  MHD_OPTION_CONNECTION_TIMEOUT,
				  (unsigned)s->cfg->connection_timeout_seconds,
				  MHD_OPTION_LISTENING_ADDRESS_REUSE, 1,
				  MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024,
				  /* 16 KiB per connection (headers up to about that size;
				   * beyond, 431): 1,000 idle keep-alive connections cost
				   * about 17 MB instead of 33 MB with the 32 KiB default */
				  MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)16384,
				  MHD_OPTION_END);
	if (!s->mhd) {
		log_error("cannot listen on %s:%d (is the port in use?)", s->cfg->service_host,
			  s->cfg->service_port);
		return -1;
	}
	const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_EPOLL_FD);
	s->mhd_epfd = di->epoll_fd;
	di = MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_BIND_PORT);
	s->port = di ? di->port : s->cfg->service_port;
	char fields[64];
	snprintf(fields, sizeof(fields), "\"event\":\"listening\",\"port\":%d", s->port);
	log_write(LOG_INFO, NULL, fields, "listening on %s port %d", s->cfg->service_host, s->port);
	return 0;
}

void http_run(struct server *s)
{
	MHD_run(s->mhd);
}

void http_stop(struct server *s)
{
	if (s->mhd) {
		MHD_stop_daemon(s->mhd);
		s->mhd = NULL;
	}
}
