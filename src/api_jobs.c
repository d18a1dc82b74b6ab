/* api_jobs.c: the job routes (video generations, fine-tuning jobs: get,
 * list, download, cancel, metrics, logs, checkpoints, the model catalog)
 * and the job as the owner of its request: worker events become job
 * progress, metrics, logs and checkpoints; its end becomes the job's
 * status and artifact. */
#include "api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "requests.h"
#include "server.h"
#include "util.h"
#include "banned.h"

static struct job *job_for_request(struct server *s, struct hreq *h)
{
	struct job *j = jobs_get(s->jobs, h->match.id);
	const char *org;

	if (!j || (int)j->type != h->match.route->job_type)
		return NULL;
	if (j->type == JOB_TRAINING) {
		org = http_header(h, "X-TT-Organization");
		if (!org || strcmp(org, j->organization))
			return NULL;
	}
	return j;
}

void api_job(struct server *s, struct hreq *h)
{
	const struct route *rt = h->match.route;
	const char *org = http_header(h, "X-TT-Organization");
	struct job *j;
	json_t *o;

	if (rt->job_type == JOB_TRAINING && (!org || !*org)) {
		http_reply_err(s, h, AE_UNAUTHORIZED, NULL, "X-TT-Organization header is required");
		return;
	}
	if (rt->handler == H_JOB_LIST) {
		json_t *arr = jobs_list_json(s->jobs, rt->job_type,
					     rt->job_type == JOB_TRAINING ? org : NULL);
		if (rt->job_type == JOB_TRAINING) {
			o = json_pack("{s:s,s:o}", "object", "list", "data", arr);
			http_reply_json(s, h, 200, o);
			json_decref(o);
		} else {
			http_reply_json(s, h, 200, arr);
			json_decref(arr);
		}
		return;
	}
	if (rt->handler == H_CATALOG) {
		o = json_pack("{s:s,s:[{s:s,s:s,s:s,s:[s,s]}]}", "object", "list", "data", "id",
			      s->workers[0].model[0] ? s->workers[0].model : "mediad-mock", "object",
			      "model", "owned_by", "mediad", "methods", "lora", "full");
		http_reply_json(s, h, 200, o);
		json_decref(o);
		return;
	}
	j = job_for_request(s, h);
	if (!j) {
		http_reply_err(s, h, AE_NOT_FOUND, NULL, "job not found");
		return;
	}
	switch (rt->handler) {
	case H_JOB_GET:
		o = jobs_to_json(j);
		http_reply_json(s, h, 200, o);
		json_decref(o);
		return;
	case H_JOB_METRICS:
	case H_JOB_LOGS:
	case H_JOB_CHECKPOINTS: {
		json_t *arr = rt->handler == H_JOB_METRICS ? j->metrics
			      : rt->handler == H_JOB_LOGS  ? j->logs
							   : j->checkpoints;
		o = json_pack("{s:s,s:O}", "object", "list", "data", arr);
		http_reply_json(s, h, 200, o);
		json_decref(o);
		return;
	}
	case H_JOB_DOWNLOAD: {
		if (j->status != JOB_COMPLETED || j->artifact_fd < 0) {
			char msg[128];
			snprintf(msg, sizeof(msg), "job %s has no video yet (status %s)", j->id,
				 jobs_status_name(j->status));
			http_reply_err(s, h, AE_NOT_FOUND, NULL, msg);
			return;
		}
		char disp[96];
		snprintf(disp, sizeof(disp), "attachment; filename=\"%s.mp4\"", j->id);
		http_add_header(h, "Content-Disposition", disp);
		http_reply_fd(s, h, 200, "video/mp4", dup(j->artifact_fd), j->artifact_size);
		return;
	}
	case H_JOB_CANCEL: {
		if (jobs_is_final(j)) {
			char msg[128];
			snprintf(msg, sizeof(msg), "job %s is already %s", j->id,
				 jobs_status_name(j->status));
			http_reply_err(s, h, AE_CONFLICT, NULL, msg);
			return;
		}
		struct request *r = j->task_id ? requests_find(s, j->task_id) : NULL;
		if (r)
			requests_cancel(s, r, REQ_END_CANCELLED);
		jobs_set_status(j, JOB_CANCELLED);
		o = jobs_to_json(j);
		http_reply_json(s, h, 200, o);
		json_decref(o);
		return;
	}
	default:
		http_reply_err(s, h, AE_INTERNAL, NULL, "unhandled job route");
	}
}

/* --- the job as a request owner --- */

/* A job event from the worker: {"progress":x}, {"metric":{...}},
 * {"checkpoint":{...}}, {"log":"..."} (any combination). */
static void job_chunk(struct server *s, struct request *p, const char *ctype, const char *data,
		      size_t len)
{
	struct job *j = jobs_get(s->jobs, p->job_id);
	json_t *o, *v;

	if (!j || jobs_is_final(j))
		return;
	o = json_loadb(data, len, 0, NULL);
	if (!json_is_object(o)) {
		json_decref(o);
		return;
	}
	if ((v = json_object_get(o, "progress")) && json_is_number(v))
		jobs_set_progress(j, json_number_value(v));
	if ((v = json_object_get(o, "metric")) && json_is_object(v))
		json_array_append(j->metrics, v);
	if ((v = json_object_get(o, "checkpoint")) && json_is_object(v))
		json_array_append(j->checkpoints, v);
	if ((v = json_object_get(o, "log")) && json_is_string(v))
		json_array_append(j->logs, v);
	json_decref(o);
}

static void job_result(struct server *s, struct request *p, int status, const char *body,
		       size_t len, int fd)
{
	struct job *j = jobs_get(s->jobs, p->job_id);

	if (!j || jobs_is_final(j)) {
		if (fd >= 0)
			close(fd);
		return;
	}
	if (status != 200) {
		json_t *o = json_loadb(body, len, 0, NULL);
		const char *msg = json_string_value(json_object_get(o, "detail"));
		jobs_fail(j, status, msg ? msg : "job failed");
		json_decref(o);
		if (fd >= 0)
			close(fd);
		return;
	}
	if (j->type == JOB_VIDEO) {
		if (fd < 0) {
			/* small result sent inline: keep it in a memfd like large ones */
			fd = memfd_create("mediad-artifact", MFD_CLOEXEC);
			if (fd >= 0 && write_all(fd, body, len) < 0) {
				close(fd);
				fd = -1;
			}
		}
		struct stat st;
		if (fd >= 0 && fstat(fd, &st) == 0) {
			jobs_set_artifact(j, fd, (size_t)st.st_size);
		} else {
			if (fd >= 0)
				close(fd);
			jobs_fail(j, 500, "video result could not be stored");
			return;
		}
	} else if (fd >= 0) {
		close(fd);
	}
	if (j->type == JOB_TRAINING)
		json_array_append_new(j->logs, json_string("training completed"));
	jobs_set_status(j, JOB_COMPLETED);
	log_info("job %s completed", j->id);
}

static void job_started(struct server *s, struct request *r)
{
	struct job *j = jobs_get(s->jobs, r->job_id);

	if (j)
		jobs_set_status(j, JOB_IN_PROGRESS);
}

static void job_finish(struct server *s, struct request *r, const struct request_end *e)
{
	struct job *j;

	switch (e->kind) {
	case REQ_END_RESULT:
		job_result(s, r, e->status, e->body, e->len, e->fd);
		return;
	case REQ_END_STREAM:
		job_result(s, r, e->status, e->body, e->len, e->fd);
		return;
	case REQ_END_ERROR:
		j = jobs_get(s->jobs, r->job_id);
		if (j && !jobs_is_final(j))
			jobs_fail(j, e->status, e->msg);
		break;
	case REQ_END_CLIENT_GONE:
	case REQ_END_CANCELLED:
		break; /* the job's status is set by whoever cancelled it */
	}
	if (e->fd >= 0)
		close(e->fd);
}

const struct request_ops api_job_ops = {
	.started = job_started,
	.chunk = job_chunk,
	.finish = job_finish,
};
