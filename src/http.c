/* http.c: the libmicrohttpd adapter (see http.h).
 *
 * libmicrohttpd runs in external-epoll mode: its epoll fd sits in the
 * supervisor's epoll set and MHD_run is called when it is readable.
 * Requests whose work runs elsewhere are suspended and resumed when the
 * reply arrives; streamed replies come from a callback response that
 * suspends itself while it waits for the next chunk. A suspended
 * connection is not watched by libmicrohttpd, so every connection's socket
 * is also in a watch set of our own (edge-triggered EPOLLRDHUP, registered
 * once per connection, so the request path pays no syscall for it): a client
 * that goes away while its request is held is noticed at once and the layer
 * above cancels its work. */
#include "http.h"
#include "form.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "server.h"
#include "util.h"
#include "banned.h"

struct http_chunk {
	struct http_chunk *next;
	size_t len, off;
	char data[];
};

static struct http_handlers g_hh;

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
	int peer_closed;   /* the watch saw the peer's close while nothing was held */
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
		struct server *s = cls;
		c = xcalloc(1, sizeof(*c));
		c->fd = ci ? ci->connect_fd : -1;
		c->phase = HC_BUSY;
		hc_set_phase(c, HC_HEADERS, now_s());
		*socket_context = c;
		if (c->fd >= 0) {
			struct epoll_event ev = {.events = EPOLLRDHUP | EPOLLET, .data.ptr = c};
			epoll_ctl(s->http_watch_fd, EPOLL_CTL_ADD, c->fd, &ev);
		}
	} else if (c) {
		struct server *s = cls;
		/* libmicrohttpd closes the socket after this notification */
		if (c->fd >= 0)
			epoll_ctl(s->http_watch_fd, EPOLL_CTL_DEL, c->fd, NULL);
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

/* --- watching suspended connections --- */

static void resume(struct server *s, struct hreq *h)
{
	h->suspended = 0;
	h->waiting_chunk = 0;
	MHD_resume_connection(h->conn);
	s->resumed = 1;
}

/* The client of h went away while its work was not finished: the layer
 * above drops the work; the request is counted 499. */
static void client_gone(struct server *s, struct hreq *h, int may_resume)
{
	int was_suspended = h->suspended || h->waiting_chunk;

	if (!h->held)
		return;
	h->held = 0;
	h->client_gone = 1;
	h->status = 499;
	log_write(LOG_INFO, h->request_id, NULL, "client of %s went away: request cancelled",
		  h->path);
	if (g_hh.gone)
		g_hh.gone(s, h);
	if (may_resume && was_suspended)
		resume(s, h); /* libmicrohttpd then closes the connection */
}

void http_watch_run(struct server *s)
{
	struct epoll_event evs[64];
	int n = epoll_wait(s->http_watch_fd, evs, ARRAY_SIZE(evs), 0);

	for (int i = 0; i < n; i++) {
		struct hconn *c = evs[i].data.ptr;
		if (c->h && c->h->held)
			client_gone(s, c->h, 1);
		else
			c->peer_closed = 1; /* libmicrohttpd sees it unless we hold a request */
	}
}

void http_hold(struct server *s, struct hreq *h)
{
	struct hconn *c = hc_of(h->conn);

	h->held = 1;
	h->suspended = 1;
	MHD_suspend_connection(h->conn);
	if (c && c->peer_closed && c->fd >= 0) {
		/* the close came before the hold: re-arm the edge (MOD reports
		 * the current state), so the next watch run sees it */
		struct epoll_event ev = {.events = EPOLLRDHUP | EPOLLET, .data.ptr = c};
		epoll_ctl(s->http_watch_fd, EPOLL_CTL_MOD, c->fd, &ev);
	}
}

const char *http_header(const struct hreq *h, const char *name)
{
	return MHD_lookup_connection_value(h->conn, MHD_HEADER_KIND, name);
}

const char *http_query_arg(const struct hreq *h, const char *name)
{
	return MHD_lookup_connection_value(h->conn, MHD_GET_ARGUMENT_KIND, name);
}

void http_add_header(struct hreq *h, const char *name, const char *value)
{
	if (h->n_hdr >= (int)ARRAY_SIZE(h->hdr))
		return;
	h->hdr[h->n_hdr].name = name;
	snprintf(h->hdr[h->n_hdr].value, sizeof(h->hdr[0].value), "%s", value);
	h->n_hdr++;
}

/* --- responses --- */

static void add_common_headers(struct hreq *h, struct MHD_Response *resp, int status)
{
	MHD_add_response_header(resp, "X-Request-Id", h->request_id);
	if (status == 503)
		MHD_add_response_header(resp, "Retry-After", "5");
	if (h->successor) {
		char link[200];
		snprintf(link, sizeof(link), "<%s>; rel=\"successor-version\"", h->successor);
		MHD_add_response_header(resp, "Deprecation", "true");
		MHD_add_response_header(resp, "Sunset", "2026-06-30");
		MHD_add_response_header(resp, "Link", link);
	}
	for (int i = 0; i < h->n_hdr; i++)
		MHD_add_response_header(resp, h->hdr[i].name, h->hdr[i].value);
}

/* Queue now (inside the access handler) or park and resume (async). */
static void deliver(struct server *s, struct hreq *h, int status, struct MHD_Response *resp)
{
	if (h->client_gone) {
		MHD_destroy_response(resp);
		return;
	}
	add_common_headers(h, resp, status);
	h->status = status;
	if (!h->streaming)
		h->held = 0;
	if (h->suspended) {
		h->resp = resp;
		resume(s, h);
		return;
	}
	if (MHD_queue_response(h->conn, (unsigned)status, resp) != MHD_YES)
		log_warn("could not queue a %d response", status);
	h->done = 1;
	MHD_destroy_response(resp);
}

void http_reply_buf(struct server *s, struct hreq *h, int status, const char *ctype,
		    struct buf *b)
{
	size_t len;
	char *data = buf_detach(b, &len);
	struct MHD_Response *resp =
		MHD_create_response_from_buffer(len, data, MHD_RESPMEM_MUST_FREE);

	MHD_add_response_header(resp, "Content-Type", ctype);
	deliver(s, h, status, resp);
}

void http_reply_copy(struct server *s, struct hreq *h, int status, const char *ctype,
		     const void *data, size_t len)
{
	struct MHD_Response *resp =
		MHD_create_response_from_buffer(len, (void *)data, MHD_RESPMEM_MUST_COPY);

	MHD_add_response_header(resp, "Content-Type", ctype);
	deliver(s, h, status, resp);
}

void http_reply_json(struct server *s, struct hreq *h, int status, json_t *o)
{
	char *text = json_dumps(o, JSON_COMPACT);
	struct buf b;

	buf_init(&b, BUF_UNLIMITED);
	buf_puts(&b, text);
	free(text);
	http_reply_buf(s, h, status, "application/json", &b);
}

void http_reply_error(struct server *s, struct hreq *h, const struct api_error *err)
{
	struct buf b;

	buf_init(&b, BUF_UNLIMITED);
	api_error_json(err, &b);
	http_reply_buf(s, h, api_err_status(err->code), "application/json", &b);
}

void http_reply_err(struct server *s, struct hreq *h, enum api_err code, const char *param,
		    const char *msg)
{
	struct api_error err;

	api_error_set(&err, code, param, "%s", msg);
	http_reply_error(s, h, &err);
}

void http_complete_error(struct server *s, struct hreq *h, int status, const char *msg)
{
	http_reply_err(s, h, api_err_from_status(status), NULL, msg);
}

void http_reply_fd(struct server *s, struct hreq *h, int status, const char *ctype, int fd,
		   uint64_t size)
{
	struct MHD_Response *resp = MHD_create_response_from_fd(size, fd);

	MHD_add_response_header(resp, "Content-Type", ctype);
	deliver(s, h, status, resp);
}

void http_complete(struct server *s, struct hreq *h, int status, const char *ctype,
		   const char *body, size_t len, int fd)
{
	const char *ct = ctype && *ctype ? ctype : "application/json";

	if (fd >= 0) {
		struct stat st;
		if (fstat(fd, &st) < 0) {
			close(fd);
			http_complete_error(s, h, 500, "worker result could not be read");
			return;
		}
		http_reply_fd(s, h, status, ct, fd, (uint64_t)st.st_size);
		return;
	}
	http_reply_copy(s, h, status, ct, body, len);
}

/* --- streaming --- */

static ssize_t stream_reader(void *cls, uint64_t pos, char *out, size_t max)
{
	struct hreq *h = cls;
	size_t n = 0;

	if (h->client_gone)
		return MHD_CONTENT_READER_END_WITH_ERROR;
	while (h->c_head && n < max) {
		struct http_chunk *c = h->c_head;
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
	struct http_chunk *c = xmalloc(sizeof(*c) + len);

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
	if (h->waiting_chunk)
		resume(s, h);
}

void http_stream_chunk(struct server *s, struct hreq *h, const char *ctype, const char *data,
		       size_t len)
{
	if (h->client_gone)
		return;
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
	if (h->client_gone)
		return;
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
	h->held = 0;
	h->stream_ended = 1;
	stream_wake(s, h);
}

/* --- request bookkeeping --- */

static void hreq_free(struct server *s, struct hreq *h)
{
	struct http_chunk *c = h->c_head;

	while (c) {
		struct http_chunk *n = c->next;
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
		snprintf(h->path, sizeof(h->path), "%s", url);
		set_request_id(h, conn, s);
		*con_cls = h;
		if (c) {
			c->h = h;
			hc_set_phase(c, HC_BODY, h->t0);
		}
		if (g_hh.begin(s, h, url, method)) {
			if (c && c->phase == HC_BODY)
				hc_set_phase(c, HC_BUSY, h->t0);
		} else {
			buf_init(&h->body, (size_t)s->cfg->max_request_body_bytes);
		}
		return MHD_YES;
	}
	if (h->client_gone)
		return MHD_NO; /* close: nobody reads the answer */
	if (h->resp) {
		struct MHD_Response *resp = h->resp;
		h->resp = NULL;
		h->done = 1;
		MHD_queue_response(conn, (unsigned)h->status, resp);
		MHD_destroy_response(resp);
		return MHD_YES;
	}
	if (h->done || h->suspended || h->held)
		return MHD_YES;
	if (*upload_size) {
		struct hconn *c = hc_of(conn);
		if (c && c->phase == HC_BODY)
			c->body_bytes += *upload_size;
		if ((h->too_large || h->form_error) &&
		    now_s() - h->t0 > s->cfg->connection_timeout_seconds)
			return MHD_NO; /* discarding a body that does not end: close */
		if (h->body_sink) {
			h->body_sink(s, h, upload, *upload_size);
		} else if (!h->too_large && buf_append(&h->body, upload, *upload_size) < 0) {
			h->too_large = 1;
			buf_release(&h->body);
		}
		*upload_size = 0;
		return MHD_YES;
	}
	struct hconn *c = hc_of(conn);
	if (c && c->phase == HC_BODY)
		hc_set_phase(c, HC_BUSY, now_s());
	g_hh.handle(s, h);
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
	/* the client went away while its request was queued or running (a
	 * stream cut mid-way, or a connection libmicrohttpd closed itself) */
	client_gone(s, h, 0);
	const char *label = h->metric ? h->metric : "unmatched";
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
	hreq_free(s, h);
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

int http_start(struct server *s, const struct http_handlers *hh)
{
	struct sockaddr_in6 a6;
	struct sockaddr_in a4;
	struct sockaddr *sa;
	unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG |
			 MHD_USE_TURBO;

	g_hh = *hh;
	s->http_watch_fd = epoll_create1(EPOLL_CLOEXEC);
	if (s->http_watch_fd < 0) {
		log_error("epoll_create1 failed: %s", strerror(errno));
		return -1;
	}
	static const char *const l_phase[] = {"phase", NULL};
	s->m_read_timeouts = metrics_family(
		s->metrics, METRIC_COUNTER, "mediad_http_read_timeouts_total",
		"Connections closed with 408 because a request's headers or body came too slowly "
		"(REQUEST_HEADER_TIMEOUT_SECONDS, REQUEST_BODY_TIMEOUT_SECONDS, REQUEST_BODY_MIN_RATE)",
		l_phase, NULL, 0);
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
	if (s->http_watch_fd >= 0) {
		close(s->http_watch_fd);
		s->http_watch_fd = -1;
	}
}
