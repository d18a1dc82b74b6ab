/* api_infer.c: the inference routes and job creation: the request body
 * (JSON, or multipart for the task kinds that accept it, see admission.c),
 * validation, and admission of the work to the request owner (requests.c),
 * whose callbacks answer the HTTP request when the work ends. */
#include "api.h"

#include <errno.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "admission.h"
#include "form.h"
#include "log.h"
#include "media.h"
#include "requests.h"
#include "server.h"
#include "serving.h"
#include "util.h"
#include "banned.h"

#define MAX_UPLOAD_BYTES ADMISSION_MAX_UPLOAD

static struct server *g_srv;


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

/* Multipart bodies of the task kinds that accept them are parsed as they
 * arrive, whatever the pieces (form.c: fields, and the "file" part into a
 * memfd); a refusal stops the reading (form_error). */
static void multipart_sink(struct server *s, struct hreq *h, const char *upload, size_t size)
{
	form_feed(h->form, upload, size);
	if (h->form->status && !h->form_error)
		h->form_error = h->form->status;
}

int api_infer_begin(struct server *s, struct hreq *h)
{
	const char *ct = http_header(h, "Content-Type");

	g_srv = s;
	if (ct && !strncasecmp(ct, "multipart/form-data", 19) &&
	    admission_rules(h->match.route->task)->multipart) {
		size_t file_max = MIN((size_t)MAX_UPLOAD_BYTES,
				      (size_t)s->cfg->max_request_body_bytes);
		h->form = xmalloc(sizeof(*h->form));
		if (form_init(h->form, ct, file_max) < 0) {
			http_reply_err(s, h, AE_BAD_REQUEST, "Content-Type", h->form->msg);
			return 1;
		}
		h->body_sink = multipart_sink;
	}
	return 0;
}

/* --- the request owner's callbacks: answering the HTTP request --- */

static void http_owner_chunk(struct server *s, struct request *r, const char *ctype,
			     const char *data, size_t len)
{
	http_stream_chunk(s, r->owner, ctype, data, len);
}

static void http_owner_finish(struct server *s, struct request *r, const struct request_end *e)
{
	struct hreq *h = r->owner;

	h->work = NULL;
	switch (e->kind) {
	case REQ_END_RESULT:
		http_complete(s, h, e->status, e->ctype, e->body, e->len, e->fd);
		return;
	case REQ_END_STREAM:
		http_stream_end(s, h, e->status, NULL);
		break;
	case REQ_END_ERROR:
		log_write(e->status >= 500 ? LOG_WARN : LOG_INFO, h->request_id, NULL,
			  "request %s failed with %d: %s", h->path, e->status, e->msg);
		if (h->streaming)
			http_stream_end(s, h, e->status, e->msg);
		else
			http_complete_error(s, h, e->status, e->msg);
		return;
	case REQ_END_CLIENT_GONE:
	case REQ_END_CANCELLED:
		break; /* nobody to answer */
	}
	if (e->fd >= 0)
		close(e->fd);
}

static const struct request_ops http_owner_ops = {
	.chunk = http_owner_chunk,
	.finish = http_owner_finish,
};

void api_infer_gone(struct server *s, struct hreq *h)
{
	if (h->work)
		requests_cancel(s, h->work, REQ_END_CLIENT_GONE);
}

static void handle_inference(struct server *s, struct hreq *h)
{
	const struct route *rt = h->match.route;
	const struct task_rules *rules = admission_rules(rt->task);
	struct api_error err;
	json_t *body = NULL, *params = NULL;
	json_error_t jerr;
	int multipart = h->form != NULL;

	if (h->too_large) {
		http_reply_err(s, h, AE_TOO_LARGE, NULL, "request body exceeds MAX_REQUEST_BODY_BYTES");
		return;
	}
	if (multipart) {
		form_finish(h->form);
		if (h->form->status) {
			http_reply_err(s, h, api_err_from_status(h->form->status),
				       h->form->param[0] ? h->form->param : NULL, h->form->msg);
			return;
		}
		h->in_fd = form_take_file(h->form, &h->in_size);
		if (h->in_fd < 0) {
			http_reply_err(s, h, AE_INVALID_FIELD, "file",
				    "file is required (a multipart field named \"file\")");
			return;
		}
		body = form_json(h->form);
		json_object_set_new(body, "file", json_string("AA=="));
	} else {
		if (h->body.len == 0) {
			http_reply_err(s, h, AE_BAD_JSON, NULL, "request body is empty; expected JSON");
			return;
		}
		body = json_loadb(h->body.data, h->body.len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY | JSON_ALLOW_NUL,
				  &jerr);
		if (!body) {
			api_error_set(&err, AE_BAD_JSON, NULL,
				      "request body is not valid JSON: %s (line %d, column %d)",
				      jerr.text, jerr.line, jerr.column);
			http_reply_error(s, h, &err);
			return;
		}
		if (rules->upload &&
		    json_is_object(body) && json_file_to_fd(h, body, &err) < 0) {
			json_decref(body);
			http_reply_error(s, h, &err);
			return;
		}
	}
	if (validate_request(rt->task, body, &s->limits, &params, &err) < 0) {
		json_decref(body);
		http_reply_error(s, h, &err);
		return;
	}
	json_decref(body);
	if (rules->upload) {
		json_object_del(params, "file");
		json_object_set_new(params, "file_bytes", json_integer((json_int_t)h->in_size));
		if (h->in_size == 0) {
			json_decref(params);
			http_reply_err(s, h, AE_INVALID_FIELD, "file", "file must not be empty");
			return;
		}
	}

	char *text = json_dumps(params, JSON_COMPACT);
	struct request *r = requests_new(s, rt->task, rules->batch_key ? rules->batch_key(params) : 0,
					 text, h->in_fd, NULL, NULL);
	free(text);
	h->in_fd = -1;

	if (rt->handler == H_JOB_CREATE) {
		const char *org = http_header(h, "X-TT-Organization");
		const char *model = json_string_value(json_object_get(params, "model"));
		struct job *j = jobs_create(s->jobs, rt->job_type, model ? model : s->workers[0].model,
					    params, org ? org : "");
		if (!j) {
			json_decref(params);
			requests_free(r);
			http_reply_err(s, h, AE_QUEUE_FULL, NULL,
				       "job store is full of unfinished jobs; retry later");
			return;
		}
		r->ops = &api_job_ops;
		snprintf(r->job_id, sizeof(r->job_id), "%s", j->id);
		if (requests_admit(s, r) < 0) {
			jobs_fail(j, 429, "queue is full");
			json_decref(params);
			requests_free(r);
			http_reply_err(s, h, AE_QUEUE_FULL, NULL, "queue is full (MAX_QUEUE_SIZE)");
			return;
		}
		j->task_id = r->sr.id;
		json_t *jo = jobs_to_json(j);
		http_reply_json(s, h, rt->job_type == JOB_VIDEO ? 202 : 201, jo);
		json_decref(jo);
		json_decref(params);
		return;
	}
	json_decref(params);
	r->ops = &http_owner_ops;
	r->owner = h;
	h->work = r;
	if (requests_admit(s, r) < 0) {
		char msg[96];
		h->work = NULL;
		requests_free(r);
		snprintf(msg, sizeof(msg), "queue is full (MAX_QUEUE_SIZE=%d); retry later",
			 s->cfg->max_queue_size);
		http_reply_err(s, h, AE_QUEUE_FULL, NULL, msg);
		return;
	}
	/* answered when the work ends (requests.c tells http_owner_finish) */
	http_hold(s, h);
}

void api_infer(struct server *s, struct hreq *h)
{
	if (!serving_is_serving(s)) {
		char why[512];
		serving_reason(s, why, sizeof(why));
		http_reply_err(s, h, s->draining ? AE_DRAINING : AE_NOT_READY, NULL, why);
		return;
	}
	if (!(s->services & admission_rules(h->match.route->task)->services)) {
		http_reply_err(s, h, AE_NOT_FOUND, NULL, "this server does not serve that task");
		return;
	}
	handle_inference(s, h);
}
