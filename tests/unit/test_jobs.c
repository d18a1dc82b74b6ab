/* test_jobs.c: unit tests of the job store (src/jobs.c): ids and lookups,
 * listing order and filters, the job object's JSON, state transitions,
 * artifact fd ownership and the bound on the number of jobs. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "jobs.h"
#include "banned.h"

static int fd_is_open(int fd)
{
	if (fcntl(fd, F_GETFD) >= 0)
		return 1;
	assert_int_equal(errno, EBADF);
	return 0;
}

static int new_memfd(void)
{
	int fd = memfd_create("test_jobs", MFD_CLOEXEC);

	assert_true(fd >= 0);
	return fd;
}

static const char *str_field(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	assert_non_null(v);
	assert_true(json_is_string(v));
	return json_string_value(v);
}

static void test_create_get(void **state)
{
	struct jobs *js = jobs_new();
	json_t *params = json_pack("{s:s, s:i}", "prompt", "a cat", "num_frames", 8);
	struct job *j = jobs_create(js, JOB_VIDEO, "dit-video", params, NULL);

	json_decref(params); /* the job keeps its own reference */
	assert_non_null(j);
	assert_int_equal(jobs_count(js), 1);
	assert_ptr_equal(jobs_get(js, j->id), j);
	assert_int_equal(j->type, JOB_VIDEO);
	assert_int_equal(j->status, JOB_QUEUED);
	assert_string_equal(j->model, "dit-video");
	assert_string_equal(j->organization, "");
	assert_string_equal(json_string_value(json_object_get(j->request_parameters, "prompt")),
			    "a cat");
	assert_true(j->created_at > 1e9);
	assert_true(j->completed_at == 0);
	assert_true(j->progress == 0);
	assert_int_equal(j->artifact_fd, -1);
	assert_int_equal(j->task_id, 0);
	assert_true(json_is_array(j->metrics) && json_array_size(j->metrics) == 0);
	assert_true(json_is_array(j->logs) && json_array_size(j->logs) == 0);
	assert_true(json_is_array(j->checkpoints) && json_array_size(j->checkpoints) == 0);
	assert_false(jobs_is_final(j));
	/* well-formed but unknown */
	assert_null(jobs_get(js, "job-0123456789abcdef01234567"));
	jobs_free(js);
	jobs_free(NULL);
}

static void test_params_default_to_object(void **state)
{
	struct jobs *js = jobs_new();
	json_t *s = json_string("not an object");
	struct job *a = jobs_create(js, JOB_VIDEO, NULL, NULL, NULL);
	struct job *b = jobs_create(js, JOB_VIDEO, "m", s, NULL);

	json_decref(s);
	assert_true(json_is_object(a->request_parameters));
	assert_int_equal(json_object_size(a->request_parameters), 0);
	assert_true(json_is_object(b->request_parameters));
	assert_string_equal(a->model, "");
	jobs_free(js);
}

/* ids of the array a, in order, must be the given jobs */
static void assert_list(json_t *a, struct job **want, size_t n)
{
	assert_true(json_is_array(a));
	assert_int_equal(json_array_size(a), n);
	for (size_t i = 0; i < n; i++)
		assert_string_equal(str_field(json_array_get(a, i), "id"), want[i]->id);
	json_decref(a);
}

static void test_list_order_and_filter(void **state)
{
	struct jobs *js = jobs_new();
	struct job *v1 = jobs_create(js, JOB_VIDEO, "m", NULL, NULL);
	struct job *t1 = jobs_create(js, JOB_TRAINING, "m", NULL, "org-a");
	struct job *v2 = jobs_create(js, JOB_VIDEO, "m", NULL, NULL);
	struct job *t2 = jobs_create(js, JOB_TRAINING, "m", NULL, "org-b");
	struct job *t3 = jobs_create(js, JOB_TRAINING, "m", NULL, "org-a");

	assert_list(jobs_list_json(js, JOB_VIDEO, NULL), (struct job *[]){v2, v1}, 2);
	assert_list(jobs_list_json(js, JOB_TRAINING, NULL), (struct job *[]){t3, t2, t1}, 3);
	assert_list(jobs_list_json(js, JOB_TRAINING, "org-a"), (struct job *[]){t3, t1}, 2);
	assert_list(jobs_list_json(js, JOB_TRAINING, "org-b"), (struct job *[]){t2}, 1);
	assert_list(jobs_list_json(js, JOB_TRAINING, "org-"), NULL, 0);
	assert_list(jobs_list_json(js, JOB_TRAINING, ""), NULL, 0);
	/* video jobs have organization "": only an exact match lists them */
	assert_list(jobs_list_json(js, JOB_VIDEO, ""), (struct job *[]){v2, v1}, 2);
	assert_list(jobs_list_json(js, JOB_VIDEO, "org-a"), NULL, 0);
	jobs_free(js);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void test_id_shape_and_uniqueness(void **state)
{
	enum { N = 1000 };
	struct jobs *js = jobs_new();
	char **ids = calloc(N, sizeof(*ids));

	assert_non_null(ids);
	for (int i = 0; i < N; i++) {
		struct job *j = jobs_create(js, i % 2 ? JOB_TRAINING : JOB_VIDEO, "m", NULL, "o");

		assert_non_null(j);
		assert_int_equal(strlen(j->id), JOBS_ID_LEN);
		assert_memory_equal(j->id, "job-", 4);
		for (int k = 4; k < JOBS_ID_LEN; k++)
			assert_non_null(strchr("0123456789abcdef", j->id[k]));
		assert_true(jobs_id_valid(j->id));
		ids[i] = j->id;
	}
	assert_int_equal(jobs_count(js), N);
	for (int i = 0; i < N; i++)
		assert_non_null(jobs_get(js, ids[i]));
	qsort(ids, N, sizeof(*ids), cmp_str);
	for (int i = 1; i < N; i++)
		assert_string_not_equal(ids[i - 1], ids[i]);
	free(ids);
	jobs_free(js);
}

static void test_malformed_ids_rejected(void **state)
{
	static const char *bad[] = {
		"",
		"job-",
		"../etc/passwd",
		"job-../../etc/passwd",
		"job-%2e%2e",
		"job-%2e%2e%2f%2e%2e%2fetc%2fpasswd",
		"job-0123456789abcdef0123456",   /* 23 hex digits */
		"job-0123456789abcdef012345678", /* 25 hex digits */
		"job-0123456789ABCDEF01234567",  /* upper case */
		"JOB-0123456789abcdef01234567",
		"job_0123456789abcdef01234567",
		" job-0123456789abcdef01234567",
		"job-0123456789abcdef01234567 ",
		"job-0123456789abcdef0123456g",
		"job-0123456789abcdef0123456\xc3\xa9",
		"job-0123456789abcdef01234567/../x",
	};
	struct jobs *js = jobs_new();
	struct job *j = jobs_create(js, JOB_VIDEO, "m", NULL, NULL);
	char buf[64];

	assert_true(jobs_id_valid("job-0123456789abcdef01234567"));
	assert_false(jobs_id_valid(NULL));
	assert_null(jobs_get(js, NULL));
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_false(jobs_id_valid(bad[i]));
		assert_null(jobs_get(js, bad[i]));
	}

	/* the real id with a NUL inside: the string ends early */
	memcpy(buf, j->id, JOBS_ID_LEN + 1);
	buf[10] = 0;
	assert_null(jobs_get(js, buf));
	/* the real id with anything after it is overlong */
	memcpy(buf, j->id, JOBS_ID_LEN);
	memcpy(buf + JOBS_ID_LEN, "/x", 3);
	assert_null(jobs_get(js, buf));
	/* the real id upper-cased (prefix included) */
	for (int k = 0; k < JOBS_ID_LEN; k++)
		buf[k] = (j->id[k] >= 'a' && j->id[k] <= 'z') ? (char)(j->id[k] - 32) : j->id[k];
	buf[JOBS_ID_LEN] = 0;
	assert_null(jobs_get(js, buf));
	/* and the real id itself still works */
	assert_ptr_equal(jobs_get(js, j->id), j);
	jobs_free(js);
}

static void test_json_queued(void **state)
{
	struct jobs *js = jobs_new();
	json_t *params = json_pack("{s:s, s:i}", "prompt", "waves", "seed", 7);
	struct job *v = jobs_create(js, JOB_VIDEO, "dit", params, NULL);
	struct job *t = jobs_create(js, JOB_TRAINING, "llama", NULL, "acme");
	json_t *o = jobs_to_json(v);
	char *text;

	assert_string_equal(str_field(o, "id"), v->id);
	assert_string_equal(str_field(o, "object"), "video.generation");
	assert_string_equal(str_field(o, "job_type"), "video");
	assert_string_equal(str_field(o, "status"), "queued");
	assert_string_equal(str_field(o, "model"), "dit");
	assert_true(json_is_integer(json_object_get(o, "created_at")));
	assert_int_equal(json_integer_value(json_object_get(o, "created_at")),
			 (json_int_t)v->created_at);
	assert_null(json_object_get(o, "completed_at"));
	assert_null(json_object_get(o, "error"));
	assert_null(json_object_get(o, "organization"));
	assert_true(json_is_number(json_object_get(o, "progress")));
	assert_true(json_number_value(json_object_get(o, "progress")) == 0);
	assert_true(json_equal(json_object_get(o, "request_parameters"), params));
	/* the output is a copy: changing it leaves the job alone */
	json_object_set_new(json_object_get(o, "request_parameters"), "x", json_true());
	assert_null(json_object_get(v->request_parameters, "x"));
	text = json_dumps(o, 0);
	assert_non_null(text);
	free(text);
	json_decref(o);
	json_decref(params);

	o = jobs_to_json(t);
	assert_string_equal(str_field(o, "object"), "fine_tuning.job");
	assert_string_equal(str_field(o, "job_type"), "training");
	assert_string_equal(str_field(o, "organization"), "acme");
	assert_true(json_is_object(json_object_get(o, "request_parameters")));
	json_decref(o);
	jobs_free(js);
}

static void test_json_completed(void **state)
{
	struct jobs *js = jobs_new();
	struct job *j = jobs_create(js, JOB_VIDEO, "dit", NULL, NULL);
	json_t *o;

	j->task_id = 42;
	assert_int_equal(jobs_set_status(j, JOB_IN_PROGRESS), 0);
	jobs_set_progress(j, 0.5);
	o = jobs_to_json(j);
	assert_string_equal(str_field(o, "status"), "in_progress");
	assert_true(json_number_value(json_object_get(o, "progress")) == 0.5);
	assert_null(json_object_get(o, "completed_at"));
	json_decref(o);

	assert_int_equal(jobs_set_status(j, JOB_COMPLETED), 0);
	assert_true(jobs_is_final(j));
	assert_int_equal(j->task_id, 0);
	o = jobs_to_json(j);
	assert_string_equal(str_field(o, "status"), "completed");
	assert_true(json_is_integer(json_object_get(o, "completed_at")));
	assert_true(json_integer_value(json_object_get(o, "completed_at")) >=
		    json_integer_value(json_object_get(o, "created_at")));
	assert_true(json_number_value(json_object_get(o, "progress")) == 1.0);
	assert_null(json_object_get(o, "error"));
	json_decref(o);
	jobs_free(js);
}

static void test_json_failed(void **state)
{
	struct jobs *js = jobs_new();
	struct job *j = jobs_create(js, JOB_TRAINING, "llama", NULL, "acme");
	struct job *k = jobs_create(js, JOB_VIDEO, "dit", NULL, NULL);
	json_t *o, *e;

	jobs_set_progress(j, 0.25);
	assert_int_equal(jobs_fail(j, 503, "worker lost"), 0);
	o = jobs_to_json(j);
	assert_string_equal(str_field(o, "status"), "failed");
	assert_true(json_is_integer(json_object_get(o, "completed_at")));
	assert_true(json_number_value(json_object_get(o, "progress")) == 0.25);
	e = json_object_get(o, "error");
	assert_true(json_is_object(e));
	assert_int_equal(json_integer_value(json_object_get(e, "code")), 503);
	assert_string_equal(str_field(e, "message"), "worker lost");
	json_decref(o);

	/* failed by status alone, or with a bogus code: a 500 with a message */
	assert_int_equal(jobs_set_status(k, JOB_FAILED), 0);
	assert_int_equal(k->error_code, 500);
	assert_string_equal(k->error_message, "job failed");
	k = jobs_create(js, JOB_VIDEO, "dit", NULL, NULL);
	assert_int_equal(jobs_fail(k, -1, NULL), 0);
	o = jobs_to_json(k);
	e = json_object_get(o, "error");
	assert_int_equal(json_integer_value(json_object_get(e, "code")), 500);
	assert_string_equal(str_field(e, "message"), "job failed");
	json_decref(o);
	jobs_free(js);
}

static void test_json_cancelled(void **state)
{
	struct jobs *js = jobs_new();
	struct job *j = jobs_create(js, JOB_VIDEO, "dit", NULL, NULL);
	json_t *o;

	jobs_set_progress(j, 0.3);
	assert_int_equal(jobs_set_status(j, JOB_CANCELLED), 0);
	o = jobs_to_json(j);
	assert_string_equal(str_field(o, "status"), "cancelled");
	assert_true(json_is_integer(json_object_get(o, "completed_at")));
	assert_null(json_object_get(o, "error"));
	assert_true(json_number_value(json_object_get(o, "progress")) == 0.3);
	json_decref(o);
	jobs_free(js);
}

static void test_json_bad_utf8_and_long_message(void **state)
{
	struct jobs *js = jobs_new();
	struct job *j = jobs_create(js, JOB_TRAINING, "m\xc3\xa9", NULL, "org\xc3");
	char longmsg[3000];
	json_t *o, *l;
	char *text;

	/* stray bytes, a surrogate, overlong '/' (3 and 4 bytes), past U+10FFFF,
	 * then valid U+20AC and U+1F600 */
	assert_int_equal(jobs_fail(j, 500, "bad \xff\xfe byte \xed\xa0\x80 \xe0\x80\xaf "
				  "\xf4\x90\x80\x80 \xf0\x80\x80\xaf "
				  "\xe2\x82\xac \xf0\x9f\x98\x80"), 0);
	o = jobs_to_json(j);
	assert_non_null(o);
	assert_string_equal(str_field(o, "model"), "m\xc3\xa9");
	assert_string_equal(str_field(o, "organization"), "org?");
	assert_string_equal(str_field(json_object_get(o, "error"), "message"),
			    "bad ?? byte ??? ??? ???? ???? \xe2\x82\xac \xf0\x9f\x98\x80");
	text = json_dumps(o, 0);
	assert_non_null(text);
	free(text);
	json_decref(o);

	/* filtering compares the raw bytes, not the rendered ones */
	l = jobs_list_json(js, JOB_TRAINING, "org?");
	assert_int_equal(json_array_size(l), 0);
	json_decref(l);
	l = jobs_list_json(js, JOB_TRAINING, "org\xc3");
	assert_int_equal(json_array_size(l), 1);
	json_decref(l);

	memset(longmsg, 'x', sizeof(longmsg) - 1);
	longmsg[sizeof(longmsg) - 1] = 0;
	j = jobs_create(js, JOB_VIDEO, "m", NULL, NULL);
	assert_int_equal(jobs_fail(j, 500, longmsg), 0);
	assert_int_equal(strlen(j->error_message), JOBS_MESSAGE_MAX);
	jobs_free(js);
}

static void test_final_states_sticky(void **state)
{
	static const enum job_status finals[] = {JOB_COMPLETED, JOB_FAILED, JOB_CANCELLED};
	static const enum job_status all[] = {JOB_QUEUED, JOB_IN_PROGRESS, JOB_COMPLETED,
					      JOB_FAILED, JOB_CANCELLED};
	struct jobs *js = jobs_new();

	for (size_t f = 0; f < 3; f++) {
		struct job *j = jobs_create(js, JOB_VIDEO, "m", NULL, NULL);
		double done, progress;

		assert_int_equal(jobs_set_status(j, finals[f]), 0);
		done = j->completed_at;
		progress = j->progress;
		assert_true(done > 0);
		for (size_t s = 0; s < 5; s++) {
			assert_int_equal(jobs_set_status(j, all[s]), -EALREADY);
			assert_int_equal(j->status, finals[f]);
		}
		assert_int_equal(jobs_fail(j, 418, "late"), -EALREADY);
		jobs_set_progress(j, 0.75);
		assert_int_equal(j->status, finals[f]);
		assert_true(j->completed_at == done);
		assert_true(j->progress == progress);
		if (finals[f] != JOB_FAILED)
			assert_null(j->error_message);
		else
			assert_int_equal(j->error_code, 500);
	}

	/* queued <-> in progress is free, an unknown status is refused */
	struct job *j = jobs_create(js, JOB_VIDEO, "m", NULL, NULL);

	assert_int_equal(jobs_set_status(j, JOB_IN_PROGRESS), 0);
	assert_int_equal(jobs_set_status(j, JOB_QUEUED), 0);
	assert_int_equal(j->status, JOB_QUEUED);
	assert_int_equal(jobs_set_status(j, (enum job_status)42), -EINVAL);
	assert_int_equal(j->status, JOB_QUEUED);
	assert_false(jobs_is_final(j));
	jobs_free(js);
}

static void test_progress_clamped(void **state)
{
	struct jobs *js = jobs_new();
	struct job *j = jobs_create(js, JOB_VIDEO, "m", NULL, NULL);
	json_t *o;

	jobs_set_progress(j, 1.5);
	assert_true(j->progress == 1.0);
	jobs_set_progress(j, -0.5);
	assert_true(j->progress == 0.0);
	jobs_set_progress(j, NAN);
	assert_true(j->progress == 0.0);
	/* even a value written straight into the struct renders in range */
	j->progress = NAN;
	o = jobs_to_json(j);
	assert_true(json_number_value(json_object_get(o, "progress")) == 0.0);
	json_decref(o);
	j->progress = 7;
	o = jobs_to_json(j);
	assert_true(json_number_value(json_object_get(o, "progress")) == 1.0);
	json_decref(o);
	jobs_free(js);
}

static void test_status_names(void **state)
{
	assert_string_equal(jobs_status_name(JOB_QUEUED), "queued");
	assert_string_equal(jobs_status_name(JOB_IN_PROGRESS), "in_progress");
	assert_string_equal(jobs_status_name(JOB_COMPLETED), "completed");
	assert_string_equal(jobs_status_name(JOB_FAILED), "failed");
	assert_string_equal(jobs_status_name(JOB_CANCELLED), "cancelled");
	assert_string_equal(jobs_status_name((enum job_status)99), "unknown");
}

static void test_artifact_fd_ownership(void **state)
{
	struct jobs *js = jobs_new();
	struct job *j = jobs_create(js, JOB_VIDEO, "m", NULL, NULL);
	int a = new_memfd(), b = new_memfd();

	jobs_set_artifact(j, a, 100);
	assert_int_equal(j->artifact_fd, a);
	assert_int_equal(j->artifact_size, 100);
	assert_true(fd_is_open(a));
	/* replacing closes the old one */
	jobs_set_artifact(j, b, 200);
	assert_false(fd_is_open(a));
	assert_true(fd_is_open(b));
	assert_int_equal(j->artifact_size, 200);
	/* setting the same fd again keeps it */
	jobs_set_artifact(j, b, 300);
	assert_true(fd_is_open(b));
	assert_int_equal(j->artifact_size, 300);
	jobs_free(js);
	assert_false(fd_is_open(b));

	/* -1 drops the artifact */
	js = jobs_new();
	j = jobs_create(js, JOB_VIDEO, "m", NULL, NULL);
	a = new_memfd();
	jobs_set_artifact(j, a, 10);
	jobs_set_artifact(j, -1, 10);
	assert_false(fd_is_open(a));
	assert_int_equal(j->artifact_fd, -1);
	assert_int_equal(j->artifact_size, 0);
	jobs_free(js);
}

static void test_eviction_at_bound(void **state)
{
	struct jobs *js = jobs_new_bounded(3);
	struct job *a = jobs_create(js, JOB_VIDEO, "m", NULL, NULL);
	struct job *b = jobs_create(js, JOB_VIDEO, "m", NULL, NULL);
	struct job *c = jobs_create(js, JOB_TRAINING, "m", NULL, "o");
	char a_id[32], b_id[32], c_id[32];
	struct job *d, *e;
	int fd = new_memfd();

	memcpy(a_id, a->id, sizeof(a_id));
	memcpy(b_id, b->id, sizeof(b_id));
	memcpy(c_id, c->id, sizeof(c_id));

	/* full and nothing final: refused, nothing lost */
	assert_null(jobs_create(js, JOB_VIDEO, "m", NULL, NULL));
	assert_int_equal(jobs_count(js), 3);

	/* b is the oldest final job (a is older but still running) */
	assert_int_equal(jobs_set_status(a, JOB_IN_PROGRESS), 0);
	jobs_set_artifact(b, fd, 1);
	assert_int_equal(jobs_set_status(b, JOB_COMPLETED), 0);
	d = jobs_create(js, JOB_VIDEO, "m", NULL, NULL);
	assert_non_null(d);
	assert_int_equal(jobs_count(js), 3);
	assert_null(jobs_get(js, b_id));
	assert_false(fd_is_open(fd));
	assert_ptr_equal(jobs_get(js, a_id), a);
	assert_ptr_equal(jobs_get(js, c_id), c);

	/* now c and a are final; a is older, so a goes */
	assert_int_equal(jobs_set_status(c, JOB_CANCELLED), 0);
	assert_int_equal(jobs_fail(a, 500, "boom"), 0);
	e = jobs_create(js, JOB_TRAINING, "m", NULL, "o");
	assert_non_null(e);
	assert_null(jobs_get(js, a_id));
	assert_ptr_equal(jobs_get(js, c_id), c);
	assert_int_equal(jobs_count(js), 3);

	/* the list stays in creation order after the removals */
	json_t *l = jobs_list_json(js, JOB_VIDEO, NULL);
	assert_int_equal(json_array_size(l), 1);
	assert_string_equal(str_field(json_array_get(l, 0), "id"), d->id);
	json_decref(l);
	l = jobs_list_json(js, JOB_TRAINING, NULL);
	assert_int_equal(json_array_size(l), 2);
	assert_string_equal(str_field(json_array_get(l, 0), "id"), e->id);
	assert_string_equal(str_field(json_array_get(l, 1), "id"), c_id);
	json_decref(l);

	/* c goes next, then nothing final is left */
	assert_non_null(jobs_create(js, JOB_VIDEO, "m", NULL, NULL));
	assert_null(jobs_get(js, c_id));
	assert_null(jobs_create(js, JOB_VIDEO, "m", NULL, NULL));
	assert_int_equal(jobs_count(js), 3);
	jobs_free(js);

	/* a bound of 0 is taken as 1 */
	js = jobs_new_bounded(0);
	a = jobs_create(js, JOB_VIDEO, "m", NULL, NULL);
	assert_non_null(a);
	assert_null(jobs_create(js, JOB_VIDEO, "m", NULL, NULL));
	jobs_free(js);
}

static void test_default_bound(void **state)
{
	struct jobs *js = jobs_new();
	struct job *first = NULL;
	char first_id[32];

	for (int i = 0; i < JOBS_MAX; i++) {
		struct job *j = jobs_create(js, JOB_VIDEO, "m", NULL, NULL);

		assert_non_null(j);
		if (!first)
			first = j;
	}
	assert_int_equal(jobs_count(js), JOBS_MAX);
	assert_null(jobs_create(js, JOB_VIDEO, "m", NULL, NULL));
	memcpy(first_id, first->id, sizeof(first_id));
	assert_int_equal(jobs_set_status(first, JOB_COMPLETED), 0);
	assert_non_null(jobs_create(js, JOB_VIDEO, "m", NULL, NULL));
	assert_null(jobs_get(js, first_id));
	assert_int_equal(jobs_count(js), JOBS_MAX);
	jobs_free(js);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_create_get),
		cmocka_unit_test(test_params_default_to_object),
		cmocka_unit_test(test_list_order_and_filter),
		cmocka_unit_test(test_id_shape_and_uniqueness),
		cmocka_unit_test(test_malformed_ids_rejected),
		cmocka_unit_test(test_json_queued),
		cmocka_unit_test(test_json_completed),
		cmocka_unit_test(test_json_failed),
		cmocka_unit_test(test_json_cancelled),
		cmocka_unit_test(test_json_bad_utf8_and_long_message),
		cmocka_unit_test(test_final_states_sticky),
		cmocka_unit_test(test_progress_clamped),
		cmocka_unit_test(test_status_names),
		cmocka_unit_test(test_artifact_fd_ownership),
		cmocka_unit_test(test_eviction_at_bound),
		cmocka_unit_test(test_default_bound),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
