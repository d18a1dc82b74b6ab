/* test_metrics.c: unit tests for the metrics registry (src/metrics.c).
 *
 * Exact exposition text for small registries, escaping, number spelling,
 * histogram bucket arithmetic, lookup across many series, clearing, the
 * output ceiling, aborts on programming errors, and a mediad-shaped registry
 * checked by `promtool check metrics`. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "buf.h"
#include "metrics.h"
#include "banned.h"

#define V(...) ((const char *const[]){__VA_ARGS__})

static char *render(struct metrics *m)
{
	struct buf b;

	buf_init(&b, BUF_UNLIMITED);
	metrics_render(m, &b);
	return buf_detach(&b, NULL);
}

static size_t count_lines(const char *s)
{
	size_t n = 0;

	for (; *s; s++)
		n += *s == '\n';
	return n;
}

static void test_counter_gauge_text(void **state)
{
	struct metrics *m = metrics_new();
	struct metric_family *c, *g;
	char *text;

	c = metrics_family(m, METRIC_COUNTER, "app_jobs_total", "Jobs done.", V("kind", NULL),
			   NULL, 0);
	metrics_family(m, METRIC_GAUGE, "app_idle_workers", "Idle workers.", NULL, NULL, 0);
	g = metrics_family(m, METRIC_GAUGE, "app_temperature_celsius", "Temperature.", NULL,
			   NULL, 0);
	/* "b" first: series print in insertion order, not sorted. */
	metrics_add(c, V("b"), 2.5);
	metrics_add(c, V("a"), 1);
	metrics_add(c, V("a"), 2);
	metrics_set(g, NULL, 21.5);
	metrics_add(g, NULL, -0.5);

	text = render(m);
	assert_string_equal(text,
			    "# HELP app_jobs_total Jobs done.\n"
			    "# TYPE app_jobs_total counter\n"
			    "app_jobs_total{kind=\"b\"} 2.5\n"
			    "app_jobs_total{kind=\"a\"} 3\n"
			    "# HELP app_idle_workers Idle workers.\n"
			    "# TYPE app_idle_workers gauge\n"
			    "# HELP app_temperature_celsius Temperature.\n"
			    "# TYPE app_temperature_celsius gauge\n"
			    "app_temperature_celsius 21\n");
	free(text);
	metrics_free(m);
}

static void test_histogram_text(void **state)
{
	static const double bounds[] = {0.125, 1, 2.5};
	struct metrics *m = metrics_new();
	struct metric_family *h;
	char *text;

	h = metrics_family(m, METRIC_HISTOGRAM, "app_wait_seconds", "Wait time.",
			   V("queue", "prio", NULL), bounds, 3);
	/* 0.125 sits on a bound: buckets are inclusive (le). */
	metrics_observe(h, V("q1", "hi"), 0.0625);
	metrics_observe(h, V("q1", "hi"), 0.125);
	metrics_observe(h, V("q1", "hi"), 0.5);
	metrics_observe(h, V("q1", "hi"), 3);
	metrics_observe(h, V("q2", "lo"), 100);

	text = render(m);
	assert_string_equal(text,
			    "# HELP app_wait_seconds Wait time.\n"
			    "# TYPE app_wait_seconds histogram\n"
			    "app_wait_seconds_bucket{queue=\"q1\",prio=\"hi\",le=\"0.125\"} 2\n"
			    "app_wait_seconds_bucket{queue=\"q1\",prio=\"hi\",le=\"1\"} 3\n"
			    "app_wait_seconds_bucket{queue=\"q1\",prio=\"hi\",le=\"2.5\"} 3\n"
			    "app_wait_seconds_bucket{queue=\"q1\",prio=\"hi\",le=\"+Inf\"} 4\n"
			    "app_wait_seconds_sum{queue=\"q1\",prio=\"hi\"} 3.6875\n"
			    "app_wait_seconds_count{queue=\"q1\",prio=\"hi\"} 4\n"
			    "app_wait_seconds_bucket{queue=\"q2\",prio=\"lo\",le=\"0.125\"} 0\n"
			    "app_wait_seconds_bucket{queue=\"q2\",prio=\"lo\",le=\"1\"} 0\n"
			    "app_wait_seconds_bucket{queue=\"q2\",prio=\"lo\",le=\"2.5\"} 0\n"
			    "app_wait_seconds_bucket{queue=\"q2\",prio=\"lo\",le=\"+Inf\"} 1\n"
			    "app_wait_seconds_sum{queue=\"q2\",prio=\"lo\"} 100\n"
			    "app_wait_seconds_count{queue=\"q2\",prio=\"lo\"} 1\n");
	assert_true(metrics_get(h, V("q1", "hi")) == 4);
	assert_true(metrics_get(h, V("q3", "hi")) == 0);
	free(text);
	metrics_free(m);
}

static void test_histogram_default_buckets(void **state)
{
	struct metrics *m = metrics_new();
	struct metric_family *h;
	char *text;

	h = metrics_family(m, METRIC_HISTOGRAM, "app_latency_seconds", "Latency.", NULL, NULL, 0);
	metrics_observe(h, NULL, 0.003);
	metrics_observe(h, NULL, 61);
	text = render(m);
	assert_string_equal(text,
			    "# HELP app_latency_seconds Latency.\n"
			    "# TYPE app_latency_seconds histogram\n"
			    "app_latency_seconds_bucket{le=\"0.0005\"} 0\n"
			    "app_latency_seconds_bucket{le=\"0.001\"} 0\n"
			    "app_latency_seconds_bucket{le=\"0.0025\"} 0\n"
			    "app_latency_seconds_bucket{le=\"0.005\"} 1\n"
			    "app_latency_seconds_bucket{le=\"0.01\"} 1\n"
			    "app_latency_seconds_bucket{le=\"0.025\"} 1\n"
			    "app_latency_seconds_bucket{le=\"0.05\"} 1\n"
			    "app_latency_seconds_bucket{le=\"0.1\"} 1\n"
			    "app_latency_seconds_bucket{le=\"0.25\"} 1\n"
			    "app_latency_seconds_bucket{le=\"0.5\"} 1\n"
			    "app_latency_seconds_bucket{le=\"1\"} 1\n"
			    "app_latency_seconds_bucket{le=\"2.5\"} 1\n"
			    "app_latency_seconds_bucket{le=\"5\"} 1\n"
			    "app_latency_seconds_bucket{le=\"10\"} 1\n"
			    "app_latency_seconds_bucket{le=\"30\"} 1\n"
			    "app_latency_seconds_bucket{le=\"60\"} 1\n"
			    "app_latency_seconds_bucket{le=\"+Inf\"} 2\n"
			    "app_latency_seconds_sum 61.003\n"
			    "app_latency_seconds_count 2\n");
	free(text);
	metrics_free(m);
}

static void test_escaping(void **state)
{
	struct metrics *m = metrics_new();
	struct metric_family *g;
	char *text;

	g = metrics_family(m, METRIC_GAUGE, "app_info", "Path \\ of the \"thing\".\nSecond line.",
			   V("path", "note", NULL), NULL, 0);
	metrics_set(g, V("C:\\dir", "say \"hi\"\nbye"), 1);
	metrics_set(g, V("", "plain"), 2);
	text = render(m);
	assert_string_equal(text,
			    "# HELP app_info Path \\\\ of the \"thing\".\\nSecond line.\n"
			    "# TYPE app_info gauge\n"
			    "app_info{path=\"C:\\\\dir\",note=\"say \\\"hi\\\"\\nbye\"} 1\n"
			    "app_info{path=\"\",note=\"plain\"} 2\n");
	/* Lookup uses the raw values, not the escaped text. */
	assert_true(metrics_get(g, V("C:\\dir", "say \"hi\"\nbye")) == 1);
	assert_true(metrics_get(g, V("C:\\\\dir", "say \"hi\"\nbye")) == 0);
	free(text);
	metrics_free(m);
}

static void test_number_spelling(void **state)
{
	static const struct {
		double v;
		const char *want;
	} cases[] = {
		{0, "0"},
		{3, "3"},
		{-2, "-2"},
		{1234567890123, "1234567890123"},
		{0.1, "0.1"},
		{0.1 + 0.2, "0.30000000000000004"},
		{-1.5e-7, "-1.5e-07"},
		{1.0 / 3, "0.3333333333333333"},
		{1e300, "1e+300"},
		{INFINITY, "+Inf"},
		{-INFINITY, "-Inf"},
		{NAN, "NaN"},
	};
	char want[128];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct metrics *m = metrics_new();
		struct metric_family *g;
		char *text;

		g = metrics_family(m, METRIC_GAUGE, "app_value", "A value.", NULL, NULL, 0);
		metrics_set(g, NULL, cases[i].v);
		text = render(m);
		snprintf(want, sizeof(want),
			 "# HELP app_value A value.\n# TYPE app_value gauge\napp_value %s\n",
			 cases[i].want);
		assert_string_equal(text, want);
		free(text);
		metrics_free(m);
	}
}

static void test_many_series(void **state)
{
	struct metrics *m = metrics_new();
	struct metric_family *c;
	char a[32], b[32];
	char *text;

	c = metrics_family(m, METRIC_COUNTER, "app_hits_total", "Hits.", V("a", "b", NULL),
			   NULL, 0);
	for (int i = 0; i < 1000; i++) {
		snprintf(a, sizeof(a), "k%d", i);
		snprintf(b, sizeof(b), "v%d", i % 7);
		metrics_add(c, V(a, b), i);
	}
	/* A second round must find every series again, not create new ones. */
	for (int i = 0; i < 1000; i++) {
		snprintf(a, sizeof(a), "k%d", i);
		snprintf(b, sizeof(b), "v%d", i % 7);
		metrics_add(c, V(a, b), 1);
	}
	for (int i = 0; i < 1000; i++) {
		snprintf(a, sizeof(a), "k%d", i);
		snprintf(b, sizeof(b), "v%d", i % 7);
		assert_true(metrics_get(c, V(a, b)) == i + 1);
		/* Same first value, wrong second: a different (absent) series. */
		snprintf(b, sizeof(b), "v%d", i % 7 + 1);
		assert_true(metrics_get(c, V(a, b)) == 0);
	}
	/* Splitting the same bytes differently is a different series. */
	metrics_add(c, V("k1v", "1"), 5);
	assert_true(metrics_get(c, V("k1", "v1")) == 2);
	assert_true(metrics_get(c, V("k1v", "1")) == 5);

	text = render(m);
	assert_int_equal(count_lines(text), 2 + 1001);
	/* Insertion order survives the table growing. */
	assert_non_null(strstr(text, "# TYPE app_hits_total counter\n"
				     "app_hits_total{a=\"k0\",b=\"v0\"} 1\n"
				     "app_hits_total{a=\"k1\",b=\"v1\"} 2\n"));
	assert_non_null(strstr(text, "app_hits_total{a=\"k999\",b=\"v5\"} 1000\n"
				     "app_hits_total{a=\"k1v\",b=\"1\"} 5\n"));
	free(text);
	metrics_free(m);
}

static void test_clear(void **state)
{
	struct metrics *m = metrics_new();
	struct metric_family *st, *other;
	char *text;

	st = metrics_family(m, METRIC_GAUGE, "app_state", "One-hot state.", V("state", NULL),
			    NULL, 0);
	other = metrics_family(m, METRIC_GAUGE, "app_other", "Other.", NULL, NULL, 0);
	for (int i = 0; i < 20; i++) {
		char s[16];

		snprintf(s, sizeof(s), "s%d", i);
		metrics_set(st, V(s), 1);
	}
	metrics_set(other, NULL, 7);
	metrics_clear(st);
	assert_true(metrics_get(st, V("s3")) == 0);
	text = render(m);
	assert_string_equal(text,
			    "# HELP app_state One-hot state.\n"
			    "# TYPE app_state gauge\n"
			    "# HELP app_other Other.\n"
			    "# TYPE app_other gauge\n"
			    "app_other 7\n");
	free(text);

	/* Usable again, and starts from zero. */
	metrics_add(st, V("s3"), 1);
	metrics_add(st, V("s3"), 1);
	assert_true(metrics_get(st, V("s3")) == 2);
	text = render(m);
	assert_non_null(strstr(text, "# TYPE app_state gauge\napp_state{state=\"s3\"} 2\n# HELP"));
	free(text);

	metrics_clear(st);
	metrics_clear(st);
	metrics_free(m);
}

static void test_get(void **state)
{
	struct metrics *m = metrics_new();
	struct metric_family *c, *g;

	c = metrics_family(m, METRIC_COUNTER, "app_sent_total", "Sent.", V("to", NULL), NULL, 0);
	g = metrics_family(m, METRIC_GAUGE, "app_level", "Level.", NULL, NULL, 0);
	assert_true(metrics_get(c, V("x")) == 0);
	assert_true(metrics_get(g, NULL) == 0);
	metrics_add(c, V("x"), 0.25);
	metrics_add(c, V("x"), 0.5);
	metrics_set(c, V("y"), 40);
	metrics_set(g, NULL, -3);
	assert_true(metrics_get(c, V("x")) == 0.75);
	assert_true(metrics_get(c, V("y")) == 40);
	assert_true(metrics_get(c, V("z")) == 0);
	assert_true(metrics_get(g, NULL) == -3);
	metrics_free(m);
}

static void test_ceiling_rolls_back(void **state)
{
	struct metrics *m = metrics_new();
	struct metric_family *g;
	struct buf b;

	g = metrics_family(m, METRIC_GAUGE, "app_level", "Level.", V("k", NULL), NULL, 0);
	for (int i = 0; i < 50; i++) {
		char k[16];

		snprintf(k, sizeof(k), "%d", i);
		metrics_set(g, V(k), i);
	}
	buf_init(&b, 256);
	assert_int_equal(buf_puts(&b, "prefix\n"), 0);
	metrics_render(m, &b);
	assert_string_equal(b.data, "prefix\n");
	assert_int_equal(b.len, 7);
	buf_release(&b);
	metrics_free(m);
}

/* Each case is a programming error that must abort, not limp on. */
static void misuse(int which)
{
	struct metrics *m = metrics_new();
	struct metric_family *h, *c;

	c = metrics_family(m, METRIC_COUNTER, "ok_total", "Fine.", V("a", NULL), NULL, 0);
	h = metrics_family(m, METRIC_HISTOGRAM, "ok_seconds", "Fine.", NULL, NULL, 0);
	switch (which) {
	case 0:
		metrics_family(m, METRIC_GAUGE, "1bad", "Bad.", NULL, NULL, 0);
		break;
	case 1:
		metrics_family(m, METRIC_COUNTER, "no_suffix", "Bad.", NULL, NULL, 0);
		break;
	case 2:
		metrics_family(m, METRIC_HISTOGRAM, "h_seconds", "Bad.", V("le", NULL), NULL, 0);
		break;
	case 3:
		metrics_family(m, METRIC_GAUGE, "g", "Bad.", V("a-b", NULL), NULL, 0);
		break;
	case 4:
		metrics_family(m, METRIC_GAUGE, "g", "Bad.", V("a:b", NULL), NULL, 0);
		break;
	case 5:
		metrics_family(m, METRIC_COUNTER, "ok_total", "Twice.", NULL, NULL, 0);
		break;
	case 6:
		metrics_add(h, NULL, 1);
		break;
	case 7:
		metrics_observe(c, V("x"), 1);
		break;
	case 8:
		metrics_add(c, V(NULL), 1);
		break;
	case 9:
		metrics_add(c, V("x"), -1);
		break;
	case 10:
		metrics_family(m, METRIC_HISTOGRAM, "h_seconds", "Bad.", NULL,
			       (const double[]){1, 0.5}, 2);
		break;
	case 11:
		metrics_family(m, METRIC_GAUGE, "g", "", NULL, NULL, 0);
		break;
	case 12:
		metrics_family(m, METRIC_GAUGE, "g", "Bad.", V("a", "a", NULL), NULL, 0);
		break;
	}
	metrics_free(m);
}

static void test_misuse_aborts(void **state)
{
	for (int which = 0; which <= 12; which++) {
		pid_t pid;
		int status;

		fflush(NULL);
		pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			int fd = open("/dev/null", O_WRONLY);

			if (fd >= 0)
				dup2(fd, 2);
			misuse(which);
			_exit(0);
		}
		assert_int_equal(waitpid(pid, &status, 0), pid);
		if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGABRT)
			fail_msg("misuse case %d did not abort (status 0x%x)", which, status);
	}
}

/* A registry shaped like mediad's (HEALTH.md section 7) must satisfy promtool:
 * no parse errors and no lint complaints. */
static void test_promtool_accepts(void **state)
{
	static const char *const states[] = {"healthy", "degraded", "failed", "unknown"};
	struct metrics *m = metrics_new();
	struct metric_family *st, *fail, *lat, *last, *req, *dur, *queue, *stall;
	char path[] = "/tmp/test_metrics_XXXXXX";
	char out_path[sizeof(path) + 4];
	char cmd[256], output[4096];
	size_t n;
	char *text;
	FILE *fp;
	int fd, rc;

	st = metrics_family(m, METRIC_GAUGE, "tt_canary_state",
			    "Canary state of each worker, one-hot over the state label.",
			    V("model_type", "worker", "state", NULL), NULL, 0);
	fail = metrics_family(m, METRIC_COUNTER, "tt_canary_failures_total",
			      "Failed canary probes by depth.",
			      V("model_type", "worker", "depth", NULL), NULL, 0);
	lat = metrics_family(m, METRIC_HISTOGRAM, "tt_canary_probe_latency_seconds",
			     "Latency of canary probes.", V("model_type", "worker", "depth", NULL),
			     NULL, 0);
	last = metrics_family(m, METRIC_GAUGE, "tt_canary_last_success_timestamp",
			      "Wall-clock time of the last successful probe, seconds since epoch.",
			      V("model_type", "worker", NULL), NULL, 0);
	req = metrics_family(m, METRIC_COUNTER, "mediad_requests_total",
			     "HTTP requests answered, by route and status code.",
			     V("route", "code", NULL), NULL, 0);
	dur = metrics_family(m, METRIC_HISTOGRAM, "mediad_request_duration_seconds",
			     "Time from request arrival to the last byte of the response.",
			     V("route", NULL), NULL, 0);
	queue = metrics_family(m, METRIC_GAUGE, "mediad_queue_depth",
			       "Requests waiting for a worker.", NULL, NULL, 0);
	stall = metrics_family(m, METRIC_GAUGE, "mediad_progress_stall_seconds",
			       "Seconds since a worker last reported progress.", V("worker", NULL),
			       NULL, 0);
	metrics_family(m, METRIC_COUNTER, "mediad_worker_restarts_total",
		       "Worker restarts by reason.", V("worker", "reason", NULL), NULL, 0);

	for (int w = 0; w < 2; w++) {
		const char *worker = w ? "1" : "0";

		metrics_clear(st);
		for (size_t i = 0; i < sizeof(states) / sizeof(states[0]); i++)
			metrics_set(st, V("whisper", worker, states[i]), i == (size_t)w);
		metrics_add(fail, V("whisper", worker, "shallow"), 1);
		metrics_add(fail, V("whisper", worker, "deep"), 2);
		metrics_observe(lat, V("whisper", worker, "shallow"), 0.012);
		metrics_observe(lat, V("whisper", worker, "deep"), 1.7);
		metrics_set(last, V("whisper", worker), 1767225600.25);
		metrics_set(stall, V(worker), w ? INFINITY : 0.5);
	}
	metrics_add(req, V("/v1/audio/transcriptions", "200"), 12);
	metrics_add(req, V("/v1/\"odd\"\nroute\\x", "404"), 1);
	metrics_observe(dur, V("/v1/audio/transcriptions"), 0.8);
	metrics_observe(dur, V("/v1/\"odd\"\nroute\\x"), 0.0001);
	metrics_set(queue, NULL, 3);

	text = render(m);
	fd = mkstemp(path);
	assert_true(fd >= 0);
	fp = fdopen(fd, "w");
	assert_non_null(fp);
	assert_int_equal(fwrite(text, 1, strlen(text), fp), strlen(text));
	assert_int_equal(fclose(fp), 0);

	snprintf(out_path, sizeof(out_path), "%s.out", path);
	snprintf(cmd, sizeof(cmd), "promtool check metrics < %s > %s 2>&1", path, out_path);
	rc = system(cmd);
	fp = fopen(out_path, "r");
	assert_non_null(fp);
	n = fread(output, 1, sizeof(output) - 1, fp);
	output[n] = 0;
	fclose(fp);
	unlink(out_path);
	unlink(path);

	if (rc == -1 || !WIFEXITED(rc) || WEXITSTATUS(rc) != 0 || n != 0) {
		/* cmocka truncates long messages: show the evidence first. */
		fprintf(stderr, "--- promtool said ---\n%s\n--- input ---\n%s", output, text);
		fail_msg("promtool check metrics failed (status 0x%x%s)", rc,
			 WIFEXITED(rc) && WEXITSTATUS(rc) == 127 ? ", promtool missing" : "");
	}
	/* The escaped label value made it through as written. */
	assert_non_null(strstr(text, "route=\"/v1/\\\"odd\\\"\\nroute\\\\x\",code=\"404\"} 1\n"));
	free(text);
	metrics_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_counter_gauge_text),
		cmocka_unit_test(test_histogram_text),
		cmocka_unit_test(test_histogram_default_buckets),
		cmocka_unit_test(test_escaping),
		cmocka_unit_test(test_number_spelling),
		cmocka_unit_test(test_many_series),
		cmocka_unit_test(test_clear),
		cmocka_unit_test(test_get),
		cmocka_unit_test(test_ceiling_rolls_back),
		cmocka_unit_test(test_misuse_aborts),
		cmocka_unit_test(test_promtool_accepts),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
