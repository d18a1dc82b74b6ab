/* jobs.c: the in-memory job store of jobs.h.
 *
 * Each job sits in a node that links it into two structures: a chained hash
 * table keyed by id (lookups) and a doubly linked list in creation order
 * (listing newest first, evicting from the oldest end). */
#include "jobs.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

#define JOBS_ID_PREFIX "job-"
#define JOBS_ID_PREFIX_LEN 4
#define JOBS_ID_RANDOM_BYTES 12 /* 96 bits, 24 hex digits */
#define JOBS_MIN_BUCKETS 64

struct job_node {
	struct job job;
	struct job_node *hnext;         /* next in the hash chain */
	struct job_node *newer, *older; /* creation order */
};

struct jobs {
	struct job_node **buckets;
	size_t nbuckets; /* a power of two */
	size_t count;
	size_t max;
	struct job_node *newest, *oldest;
};

struct jobs *jobs_new(void)
{
	return jobs_new_bounded(JOBS_MAX);
}

struct jobs *jobs_new_bounded(size_t max)
{
	struct jobs *js = xcalloc(1, sizeof(*js));

	js->max = max ? max : 1;
	js->nbuckets = JOBS_MIN_BUCKETS;
	js->buckets = xcalloc(js->nbuckets, sizeof(*js->buckets));
	return js;
}

static void jobs_node_free(struct job_node *n)
{
	struct job *j = &n->job;

	free(j->model);
	free(j->organization);
	free(j->error_message);
	json_decref(j->request_parameters);
	json_decref(j->metrics);
	json_decref(j->logs);
	json_decref(j->checkpoints);
	if (j->artifact_fd >= 0)
		close(j->artifact_fd);
	free(n);
}

void jobs_free(struct jobs *js)
{
	struct job_node *n, *older;

	if (!js)
		return;
	for (n = js->newest; n; n = older) {
		older = n->older;
		jobs_node_free(n);
	}
	free(js->buckets);
	free(js);
}

int jobs_count(struct jobs *js)
{
	return (int)js->count;
}

/* FNV-1a over the id; the id is random, so anything that mixes will do. */
static size_t jobs_hash(const char *id)
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (const unsigned char *p = (const unsigned char *)id; *p; p++) {
		h ^= *p;
		h *= 0x100000001b3ull;
	}
	return (size_t)h;
}

/* The link that points at the node with this id, or the NULL link at the end
 * of its chain when there is none: read it to look up, write it to insert or
 * unlink. */
static struct job_node **jobs_slot(struct jobs *js, const char *id)
{
	struct job_node **pp = &js->buckets[jobs_hash(id) & (js->nbuckets - 1)];

	while (*pp && strcmp((*pp)->job.id, id))
		pp = &(*pp)->hnext;
	return pp;
}

static void jobs_grow(struct jobs *js)
{
	size_t nb = js->nbuckets * 2;
	struct job_node **b = xcalloc(nb, sizeof(*b));

	for (struct job_node *n = js->newest; n; n = n->older) {
		size_t i = jobs_hash(n->job.id) & (nb - 1);

		n->hnext = b[i];
		b[i] = n;
	}
	free(js->buckets);
	js->buckets = b;
	js->nbuckets = nb;
}

static void jobs_remove(struct jobs *js, struct job_node *n)
{
	*jobs_slot(js, n->job.id) = n->hnext;
	if (n->newer)
		n->newer->older = n->older;
	else
		js->newest = n->older;
	if (n->older)
		n->older->newer = n->newer;
	else
		js->oldest = n->newer;
	js->count--;
	jobs_node_free(n);
}

/* Drop the oldest final job: 0, or -ENOSPC when every job is still live. */
static int jobs_evict_one(struct jobs *js)
{
	for (struct job_node *n = js->oldest; n; n = n->newer) {
		if (jobs_is_final(&n->job)) {
			jobs_remove(js, n);
			return 0;
		}
	}
	return -ENOSPC;
}

static void jobs_random(unsigned char *p, size_t n)
{
	while (n) {
		ssize_t r = getrandom(p, n, 0);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			log_error("getrandom failed: %s", strerror(errno));
			abort();
		}
		p += r;
		n -= (size_t)r;
	}
}

static void jobs_make_id(char *id)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char rnd[JOBS_ID_RANDOM_BYTES];
	char *p = id + JOBS_ID_PREFIX_LEN;

	jobs_random(rnd, sizeof(rnd));
	memcpy(id, JOBS_ID_PREFIX, JOBS_ID_PREFIX_LEN);
	for (size_t i = 0; i < sizeof(rnd); i++) {
		*p++ = hex[rnd[i] >> 4];
		*p++ = hex[rnd[i] & 15];
	}
	*p = 0;
}

struct job *jobs_create(struct jobs *js, enum job_type type, const char *model,
			json_t *params, const char *organization)
{
	struct job_node *n;
	struct job_node **slot;
	struct job *j;

	if (js->count >= js->max && jobs_evict_one(js))
		return NULL;
	if (js->count >= js->nbuckets)
		jobs_grow(js);

	n = xcalloc(1, sizeof(*n));
	j = &n->job;
	do {
		jobs_make_id(j->id);
		slot = jobs_slot(js, j->id);
	} while (*slot);
	*slot = n;

	j->type = type;
	j->status = JOB_QUEUED;
	j->created_at = wall_s();
	j->model = xstrdup(model ? model : "");
	j->organization = xstrdup(organization ? organization : "");
	j->request_parameters = json_is_object(params) ? json_incref(params) : json_object();
	j->metrics = json_array();
	j->logs = json_array();
	j->checkpoints = json_array();
	j->artifact_fd = -1;

	n->older = js->newest;
	if (js->newest)
		js->newest->newer = n;
	else
		js->oldest = n;
	js->newest = n;
	js->count++;
	return j;
}

static int jobs_is_lower_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

int jobs_id_valid(const char *id)
{
	if (!id || strncmp(id, JOBS_ID_PREFIX, JOBS_ID_PREFIX_LEN))
		return 0;
	for (size_t i = JOBS_ID_PREFIX_LEN; i < JOBS_ID_LEN; i++) {
		if (!jobs_is_lower_hex(id[i]))
			return 0;
	}
	return id[JOBS_ID_LEN] == 0;
}

struct job *jobs_get(struct jobs *js, const char *id)
{
	struct job_node *n;

	if (!jobs_id_valid(id))
		return NULL;
	n = *jobs_slot(js, id);
	return n ? &n->job : NULL;
}

/* Length of the well-formed UTF-8 sequence (RFC 3629) at p, 0 if there is
 * none. Stops at the first byte that does not fit, so never reads past the
 * terminating NUL. */
static size_t jobs_utf8_len(const unsigned char *p)
{
	unsigned char lo = 0x80, hi = 0xbf;
	size_t n;

	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf) {
		n = 2;
	} else if (p[0] >= 0xe0 && p[0] <= 0xef) {
		n = 3;
		lo = p[0] == 0xe0 ? 0xa0 : lo; /* overlong */
		hi = p[0] == 0xed ? 0x9f : hi; /* surrogates */
	} else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
		n = 4;
		lo = p[0] == 0xf0 ? 0x90 : lo; /* overlong */
		hi = p[0] == 0xf4 ? 0x8f : hi; /* past U+10FFFF */
	} else {
		return 0;
	}
	if (p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
	}
	return n;
}

/* A JSON string of s with every byte that is not part of valid UTF-8
 * replaced by '?' (organizations come from a header, messages from workers). */
static json_t *jobs_json_text(const char *s)
{
	const unsigned char *p = (const unsigned char *)(s ? s : "");
	char *out = xmalloc(strlen((const char *)p) + 1);
	size_t len = 0;
	json_t *v;

	while (*p) {
		size_t n = jobs_utf8_len(p);

		if (n) {
			memcpy(out + len, p, n);
			len += n;
			p += n;
		} else {
			out[len++] = '?';
			p++;
		}
	}
	v = json_stringn(out, len);
	free(out);
	return v;
}

/* NaN and anything below 0 become 0, anything above 1 becomes 1. */
static double jobs_clamp_progress(double p)
{
	if (!(p > 0))
		return 0;
	return p > 1 ? 1 : p;
}

json_t *jobs_to_json(const struct job *j)
{
	int training = j->type == JOB_TRAINING;
	json_t *o = json_object();

	json_object_set_new(o, "id", json_string(j->id));
	json_object_set_new(o, "object",
			    json_string(training ? "fine_tuning.job" : "video.generation"));
	json_object_set_new(o, "job_type", json_string(training ? "training" : "video"));
	json_object_set_new(o, "status", json_string(jobs_status_name(j->status)));
	json_object_set_new(o, "created_at", json_integer((json_int_t)j->created_at));
	if (jobs_is_final(j))
		json_object_set_new(o, "completed_at", json_integer((json_int_t)j->completed_at));
	json_object_set_new(o, "model", jobs_json_text(j->model));
	if (training)
		json_object_set_new(o, "organization", jobs_json_text(j->organization));
	json_object_set_new(o, "request_parameters",
			    j->request_parameters ? json_deep_copy(j->request_parameters)
						  : json_object());
	json_object_set_new(o, "progress", json_real(jobs_clamp_progress(j->progress)));
	if (j->status == JOB_FAILED) {
		json_t *e = json_object();

		json_object_set_new(e, "code", json_integer(j->error_code));
		json_object_set_new(e, "message", jobs_json_text(j->error_message));
		json_object_set_new(o, "error", e);
	}
	return o;
}

json_t *jobs_list_json(struct jobs *js, enum job_type type, const char *organization)
{
	json_t *a = json_array();

	for (struct job_node *n = js->newest; n; n = n->older) {
		if (n->job.type != type)
			continue;
		if (organization && strcmp(n->job.organization, organization))
			continue;
		json_array_append_new(a, jobs_to_json(&n->job));
	}
	return a;
}

static void jobs_record_error(struct job *j, int code, const char *message)
{
	free(j->error_message);
	j->error_code = code > 0 ? code : 500;
	j->error_message = xstrndup(message ? message : "job failed", JOBS_MESSAGE_MAX);
}

int jobs_set_status(struct job *j, enum job_status st)
{
	if (jobs_is_final(j))
		return -EALREADY;
	switch (st) {
	case JOB_QUEUED:
	case JOB_IN_PROGRESS:
		j->status = st;
		return 0;
	case JOB_COMPLETED:
		j->progress = 1.0;
		break;
	case JOB_FAILED:
		if (!j->error_message)
			jobs_record_error(j, 500, NULL);
		break;
	case JOB_CANCELLED:
		break;
	default:
		return -EINVAL;
	}
	j->status = st;
	j->completed_at = wall_s();
	j->task_id = 0;
	return 0;
}

int jobs_fail(struct job *j, int code, const char *message)
{
	if (jobs_is_final(j))
		return -EALREADY;
	jobs_record_error(j, code, message);
	return jobs_set_status(j, JOB_FAILED);
}

void jobs_set_progress(struct job *j, double progress)
{
	if (!jobs_is_final(j))
		j->progress = jobs_clamp_progress(progress);
}

void jobs_set_artifact(struct job *j, int fd, size_t size)
{
	if (j->artifact_fd >= 0 && j->artifact_fd != fd)
		close(j->artifact_fd);
	j->artifact_fd = fd < 0 ? -1 : fd;
	j->artifact_size = fd < 0 ? 0 : size;
}

int jobs_is_final(const struct job *j)
{
	return j->status == JOB_COMPLETED || j->status == JOB_FAILED ||
	       j->status == JOB_CANCELLED;
}

const char *jobs_status_name(enum job_status st)
{
	switch (st) {
	case JOB_QUEUED:
		return "queued";
	case JOB_IN_PROGRESS:
		return "in_progress";
	case JOB_COMPLETED:
		return "completed";
	case JOB_FAILED:
		return "failed";
	case JOB_CANCELLED:
		return "cancelled";
	}
	return "unknown";
}
