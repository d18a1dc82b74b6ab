/* test_router.c: unit tests of the route table and path matching (src/router.c).
 *
 * Walks router_routes so that a route added later is covered without
 * touching this file: every route matches its own path and method (and HEAD
 * when it is a GET route), its legacy alias maps to it, it is mounted only for
 * its services, and it requires the API key unless it is one of the
 * health/metrics/models routes that probes and scrapers call without one.
 * Then the edges of matching: {id} capture and its length limit, 404 for
 * unknown, prefix-only and trailing-slash paths, 405 with the Allow bits,
 * and the Allow header and method name helpers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"
#include "router.h"
#include "banned.h"

#define TEST_ID "job-7f3a_9"

static const unsigned all_methods[] = {M_GET, M_HEAD, M_POST, M_DELETE, M_PUT, M_PATCH, M_OPTIONS};
static const unsigned all_services[] = {SVC_IMAGE, SVC_AUDIO, SVC_TTS,
                                        SVC_VIDEO, SVC_LLM,   SVC_TRAINING};

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

/* Expand a route pattern into a concrete path, {id} replaced by id. */
static void expand(const char *pat, const char *id, char *out, size_t n)
{
	size_t len = 0;

	while (*pat) {
		if (!strncmp(pat, "{id}", 4)) {
			size_t k = strlen(id);
			assert_true(len + k < n);
			memcpy(out + len, id, k);
			len += k;
			pat += 4;
			continue;
		}
		assert_true(len + 1 < n);
		out[len++] = *pat++;
	}
	out[len] = 0;
}

static int has_id(const char *pat)
{
	return strstr(pat, "{id}") != NULL;
}

/* Methods routes on exactly this path pattern accept (HEAD with GET). */
static unsigned methods_of_pattern(const char *pat)
{
	unsigned m = 0;

	for (size_t i = 0; i < router_n_routes; i++) {
		const struct route *r = &router_routes[i];
		if (!strcmp(r->path, pat) || (r->legacy && !strcmp(r->legacy, pat)))
			m |= r->method | (r->method == M_GET ? M_HEAD : 0);
	}
	return m;
}

static void test_table_is_well_formed(void **state)
{
	assert_true(router_n_routes > 0);
	for (size_t i = 0; i < router_n_routes; i++) {
		const struct route *r = &router_routes[i];

		assert_non_null(r->path);
		assert_int_equal(r->path[0], '/');
		/* exactly one method bit, and a real method */
		assert_true(r->method != 0 && (r->method & (r->method - 1)) == 0);
		assert_true(r->method < M_OTHER);
		assert_int_equal(r->services & ~(unsigned)SVC_ALL, 0);
		assert_non_null(r->metric);
		if (r->handler == H_INFER || r->handler == H_JOB_CREATE)
			assert_int_not_equal(r->task, TASK_NONE);
		else
			assert_int_equal(r->task, TASK_NONE);
		if (r->legacy) {
			assert_int_equal(r->legacy[0], '/');
			assert_int_equal(has_id(r->legacy), has_id(r->path));
		}
		/* no two routes share path and method: the second would be dead */
		for (size_t j = i + 1; j < router_n_routes; j++) {
			const struct route *o = &router_routes[j];
			if (o->method != r->method)
				continue;
			assert_string_not_equal(o->path, r->path);
			if (r->legacy && o->legacy)
				assert_string_not_equal(o->legacy, r->legacy);
		}
	}
}

static void test_every_route_matches_itself(void **state)
{
	for (size_t i = 0; i < router_n_routes; i++) {
		const struct route *r = &router_routes[i];
		struct route_match m;
		char path[256];

		expand(r->path, TEST_ID, path, sizeof(path));
		if (router_match(path, r->method, SVC_ALL, &m) != 1)
			fail_msg("%s (method bit %u) does not match its own route", path,
			         r->method);
		assert_ptr_equal(m.route, r);
		assert_int_equal(m.legacy, 0);
		assert_string_equal(m.id, has_id(r->path) ? TEST_ID : "");
		assert_true(m.allowed & r->method);
		assert_int_equal(m.allowed, methods_of_pattern(r->path));
	}
}

static void test_head_matches_get_routes(void **state)
{
	for (size_t i = 0; i < router_n_routes; i++) {
		const struct route *r = &router_routes[i];
		struct route_match m;
		char path[256];
		int rc;

		expand(r->path, TEST_ID, path, sizeof(path));
		rc = router_match(path, M_HEAD, SVC_ALL, &m);
		if (methods_of_pattern(r->path) & M_GET) {
			assert_int_equal(rc, 1);
			assert_non_null(m.route);
			assert_int_equal(m.route->method, M_GET);
			assert_string_equal(m.route->path, r->path);
			assert_true(m.allowed & M_HEAD);
		} else {
			/* POST-only paths do not answer HEAD */
			assert_int_equal(rc, 0);
			assert_null(m.route);
			assert_false(m.allowed & M_HEAD);
		}
	}
}

static void test_legacy_aliases(void **state)
{
	int n_legacy = 0;

	for (size_t i = 0; i < router_n_routes; i++) {
		const struct route *r = &router_routes[i];
		struct route_match m;
		char path[256];

		if (!r->legacy)
			continue;
		n_legacy++;
		expand(r->legacy, TEST_ID, path, sizeof(path));
		assert_int_equal(router_match(path, r->method, SVC_ALL, &m), 1);
		assert_ptr_equal(m.route, r); /* the /v1 route itself */
		assert_int_equal(m.legacy, 1);
		assert_string_equal(m.id, has_id(r->legacy) ? TEST_ID : "");
		/* its /v1 twin is not legacy */
		expand(r->path, TEST_ID, path, sizeof(path));
		assert_int_equal(router_match(path, r->method, SVC_ALL, &m), 1);
		assert_int_equal(m.legacy, 0);
	}
	assert_true(n_legacy > 0);

	/* spot checks of the upstream names */
	struct route_match m;
	assert_int_equal(router_match("/image/generations", M_POST, SVC_ALL, &m), 1);
	assert_string_equal(m.route->path, "/v1/images/generations");
	assert_int_equal(m.route->task, TASK_IMAGE_GEN);
	assert_int_equal(m.legacy, 1);
	assert_int_equal(router_match("/video/generations/v-42/download", M_GET, SVC_ALL, &m), 1);
	assert_string_equal(m.route->path, "/v1/videos/generations/{id}/download");
	assert_string_equal(m.id, "v-42");
	assert_int_equal(m.legacy, 1);
	/* a legacy alias answers 405 like its twin */
	assert_int_equal(router_match("/audio/speech", M_GET, SVC_ALL, &m), 0);
	assert_null(m.route);
	assert_int_equal(m.allowed, M_POST);
	/* routes without a legacy alias have none */
	assert_int_equal(router_match("/chat/completions", M_POST, SVC_ALL, &m), -1);
	assert_int_equal(router_match("/jobs", M_GET, SVC_ALL, &m), -1);
}

static void test_id_capture(void **state)
{
	struct route_match m;
	char path[256];
	char id[128];

	assert_int_equal(router_match("/v1/jobs/abc", M_GET, SVC_ALL, &m), 1);
	assert_int_equal(m.route->handler, H_JOB_GET);
	assert_string_equal(m.id, "abc");
	assert_int_equal(router_match("/v1/jobs/abc/logs", M_GET, SVC_ALL, &m), 1);
	assert_int_equal(m.route->handler, H_JOB_LOGS);
	assert_string_equal(m.id, "abc");
	assert_int_equal(router_match("/v1/jobs/abc/cancel", M_POST, SVC_ALL, &m), 1);
	assert_int_equal(m.route->handler, H_JOB_CANCEL);
	assert_string_equal(m.id, "abc");
	/* an id that looks like a sub-resource name is still an id */
	assert_int_equal(router_match("/v1/jobs/metrics", M_GET, SVC_ALL, &m), 1);
	assert_int_equal(m.route->handler, H_JOB_GET);
	assert_string_equal(m.id, "metrics");
	/* ids never span a slash */
	assert_int_equal(router_match("/v1/jobs/a/b", M_GET, SVC_ALL, &m), -1);
	/* an empty id is no id */
	assert_int_equal(router_match("/v1/jobs//logs", M_GET, SVC_ALL, &m), -1);
	assert_int_equal(router_match("/v1/jobs/", M_GET, SVC_ALL, &m), -1);

	/* the longest id that fits m.id (with its terminator) is captured whole */
	memset(id, 'x', sizeof(m.id) - 1);
	id[sizeof(m.id) - 1] = 0;
	snprintf(path, sizeof(path), "/v1/jobs/%s/metrics", id);
	assert_int_equal(router_match(path, M_GET, SVC_ALL, &m), 1);
	assert_int_equal(m.route->handler, H_JOB_METRICS);
	assert_string_equal(m.id, id);
	/* one more byte is rejected, never truncated into another job's id */
	memset(id, 'x', sizeof(m.id));
	id[sizeof(m.id)] = 0;
	snprintf(path, sizeof(path), "/v1/jobs/%s/metrics", id);
	assert_int_equal(router_match(path, M_GET, SVC_ALL, &m), -1);
	assert_null(m.route);
	snprintf(path, sizeof(path), "/v1/jobs/%s", id);
	assert_int_equal(router_match(path, M_GET, SVC_ALL, &m), -1);
	snprintf(path, sizeof(path), "/video/generations/%s", id);
	assert_int_equal(router_match(path, M_GET, SVC_ALL, &m), -1);
	/* routes without {id} leave it empty */
	assert_int_equal(router_match("/health", M_GET, SVC_ALL, &m), 1);
	assert_string_equal(m.id, "");
}

static void test_not_found(void **state)
{
	static const char *const paths[] = {
	    "",
	    "/",
	    "/nope",
	    "/HEALTH",
	    "/health/",
	    "/healthz",
	    "/health/x",
	    "/v1",
	    "/v1/",
	    "/v1/images",
	    "/v1/images/",
	    "/v1/images/generations/",
	    "/v1/images/generations/extra",
	    "/v1/images/generationsX",
	    "/v1/jobs/",
	    "/v1/jobs/abc/",
	    "/v1/jobs/abc/unknown",
	    "/v1/jobs/abc/metrics/",
	    "/v2/health",
	    "/v2/health/",
	    "/v2/health/started",
	    "/debug",
	    "/debug/faults/",
	    "/image",
	    "/video/generations/",
	    "v1/jobs",
	    "/v1//jobs",
	};

	for (size_t i = 0; i < N_ELEMS(paths); i++) {
		for (size_t k = 0; k < N_ELEMS(all_methods); k++) {
			struct route_match m;
			int rc = router_match(paths[i], all_methods[k], SVC_ALL, &m);
			if (rc != -1)
				fail_msg("\"%s\" matched (%d) instead of 404", paths[i], rc);
			assert_null(m.route);
			assert_int_equal(m.allowed, 0);
			assert_int_equal(m.legacy, 0);
		}
	}
}

static void test_method_not_allowed(void **state)
{
	struct route_match m;

	assert_int_equal(router_match("/v1/jobs", M_PUT, SVC_ALL, &m), 0);
	assert_null(m.route);
	assert_int_equal(m.allowed, M_GET | M_HEAD | M_POST);
	assert_int_equal(router_match("/v1/jobs", M_DELETE, SVC_ALL, &m), 0);
	assert_int_equal(m.allowed, M_GET | M_HEAD | M_POST);
	/* both methods of the shared path reach their own route */
	assert_int_equal(router_match("/v1/jobs", M_GET, SVC_ALL, &m), 1);
	assert_int_equal(m.route->handler, H_JOB_LIST);
	assert_int_equal(router_match("/v1/jobs", M_POST, SVC_ALL, &m), 1);
	assert_int_equal(m.route->handler, H_JOB_CREATE);
	assert_int_equal(m.route->task, TASK_TRAIN);

	assert_int_equal(router_match("/debug/faults", M_GET, SVC_ALL, &m), 0);
	assert_null(m.route);
	assert_int_equal(m.allowed, M_POST | M_DELETE);
	assert_int_equal(router_match("/debug/faults", M_HEAD, SVC_ALL, &m), 0);
	assert_int_equal(m.allowed, M_POST | M_DELETE);
	assert_int_equal(router_match("/debug/faults", M_DELETE, SVC_ALL, &m), 1);
	assert_int_equal(m.route->method, M_DELETE);

	assert_int_equal(router_match("/health", M_POST, SVC_ALL, &m), 0);
	assert_int_equal(m.allowed, M_GET | M_HEAD);
	assert_int_equal(router_match("/v1/images/generations", M_GET, SVC_ALL, &m), 0);
	assert_int_equal(m.allowed, M_POST);
	assert_int_equal(router_match("/v1/jobs/abc/cancel", M_GET, SVC_ALL, &m), 0);
	assert_int_equal(m.allowed, M_POST);
	assert_int_equal(router_match("/v1/jobs/abc", M_DELETE, SVC_ALL, &m), 0);
	assert_int_equal(m.allowed, M_GET | M_HEAD);
	assert_int_equal(router_match("/v1/models", M_OTHER, SVC_ALL, &m), 0);
	assert_int_equal(m.allowed, M_GET | M_HEAD);

	/* every route: each method it does not accept gives 405 with its Allow */
	for (size_t i = 0; i < router_n_routes; i++) {
		const struct route *r = &router_routes[i];
		unsigned want = methods_of_pattern(r->path);
		char path[256];

		expand(r->path, TEST_ID, path, sizeof(path));
		for (size_t k = 0; k < N_ELEMS(all_methods); k++) {
			if (want & all_methods[k])
				continue;
			assert_int_equal(router_match(path, all_methods[k], SVC_ALL, &m), 0);
			assert_null(m.route);
			assert_int_equal(m.allowed, want);
		}
	}
}

static void test_services_filter(void **state)
{
	struct route_match m;

	/* an audio-only server mounts no image routes, not even their aliases */
	assert_int_equal(router_match("/v1/images/generations", M_POST, SVC_AUDIO, &m), -1);
	assert_null(m.route);
	assert_int_equal(router_match("/image/generations", M_POST, SVC_AUDIO, &m), -1);
	assert_int_equal(router_match("/v1/jobs", M_POST, SVC_AUDIO, &m), -1);
	assert_int_equal(router_match("/v1/audio/speech", M_POST, SVC_AUDIO, &m), -1);
	assert_int_equal(router_match("/v1/audio/transcriptions", M_POST, SVC_AUDIO, &m), 1);
	assert_int_equal(m.route->task, TASK_TRANSCRIBE);
	assert_int_equal(router_match("/audio/translations", M_POST, SVC_AUDIO, &m), 1);
	assert_int_equal(m.route->task, TASK_TRANSLATE);
	/* always-mounted routes stay */
	assert_int_equal(router_match("/health", M_GET, SVC_AUDIO, &m), 1);
	assert_int_equal(router_match("/debug/faults", M_POST, SVC_AUDIO, &m), 1);
	/* a combination mounts the union */
	assert_int_equal(router_match("/v1/audio/speech", M_POST, SVC_AUDIO | SVC_TTS, &m), 1);
	assert_int_equal(router_match("/v1/images/generations", M_POST, SVC_AUDIO | SVC_IMAGE, &m),
	                 1);

	/* every route, every single service */
	for (size_t i = 0; i < router_n_routes; i++) {
		const struct route *r = &router_routes[i];
		char path[256];

		expand(r->path, TEST_ID, path, sizeof(path));
		for (size_t k = 0; k < N_ELEMS(all_services); k++) {
			unsigned svc = all_services[k];
			int mounted = r->services == 0 || (r->services & svc);
			int rc = router_match(path, r->method, svc, &m);
			if (mounted) {
				assert_int_equal(rc, 1);
				assert_ptr_equal(m.route, r);
			} else {
				assert_int_not_equal(rc, 1);
				assert_null(m.route);
			}
		}
	}
}

/* Routes that orchestrators, probes and scrapers call without the API key. */
static int is_public_path(const char *p)
{
	static const char *const public_paths[] = {
	    "/health", "/readyz", "/livez", "/startupz", "/tt-liveness", "/metrics", "/v1/models",
	};

	for (size_t i = 0; i < N_ELEMS(public_paths); i++)
		if (!strcmp(p, public_paths[i]))
			return 1;
	return !strncmp(p, "/v2/health/", 11);
}

static void test_auth_invariant(void **state)
{
	int n_public = 0;

	for (size_t i = 0; i < router_n_routes; i++) {
		const struct route *r = &router_routes[i];

		if (is_public_path(r->path)) {
			n_public++;
			if (r->auth != 0)
				fail_msg("%s must answer without the API key", r->path);
		} else if (r->auth != 1) {
			fail_msg("%s does not require the API key", r->path);
		}
		/* an alias never makes a protected route public */
		if (r->legacy)
			assert_false(is_public_path(r->legacy));
	}
	assert_true(n_public >= 9);
}

static void test_allow_header(void **state)
{
	char out[96];

	router_allow_header(M_GET | M_HEAD | M_POST, out, sizeof(out));
	assert_string_equal(out, "GET, HEAD, POST");
	router_allow_header(M_POST | M_DELETE, out, sizeof(out));
	assert_string_equal(out, "POST, DELETE");
	router_allow_header(M_POST, out, sizeof(out));
	assert_string_equal(out, "POST");
	router_allow_header(0, out, sizeof(out));
	assert_string_equal(out, "");
	/* M_OTHER is not a method to advertise */
	router_allow_header(M_OTHER | M_GET, out, sizeof(out));
	assert_string_equal(out, "GET");
	router_allow_header(M_GET | M_HEAD | M_POST | M_DELETE | M_PUT | M_PATCH | M_OPTIONS, out,
	                    sizeof(out));
	assert_string_equal(out, "GET, HEAD, POST, DELETE, PUT, PATCH, OPTIONS");

	/* the 405 Allow value of a real path */
	struct route_match m;
	assert_int_equal(router_match("/v1/jobs", M_PATCH, SVC_ALL, &m), 0);
	router_allow_header(m.allowed, out, sizeof(out));
	assert_string_equal(out, "GET, HEAD, POST");

	/* a small buffer: always terminated, never overrun, a prefix of the full text */
	for (size_t n = 1; n <= 20; n++) {
		char small[32];
		memset(small, '#', sizeof(small));
		router_allow_header(M_GET | M_HEAD | M_POST, small, n);
		assert_true(strlen(small) < n);
		assert_int_equal(strncmp(small, "GET, HEAD, POST", strlen(small)), 0);
		for (size_t k = n; k < sizeof(small); k++)
			assert_int_equal(small[k], '#');
	}
}

static void test_method_names(void **state)
{
	assert_int_equal(router_method("GET"), M_GET);
	assert_int_equal(router_method("HEAD"), M_HEAD);
	assert_int_equal(router_method("POST"), M_POST);
	assert_int_equal(router_method("DELETE"), M_DELETE);
	assert_int_equal(router_method("PUT"), M_PUT);
	assert_int_equal(router_method("PATCH"), M_PATCH);
	assert_int_equal(router_method("OPTIONS"), M_OPTIONS);
	/* method names are case-sensitive (RFC 9110 9.1) */
	assert_int_equal(router_method("get"), M_OTHER);
	assert_int_equal(router_method("Post"), M_OTHER);
	assert_int_equal(router_method("TRACE"), M_OTHER);
	assert_int_equal(router_method("CONNECT"), M_OTHER);
	assert_int_equal(router_method("GETX"), M_OTHER);
	assert_int_equal(router_method(""), M_OTHER);

	/* an unknown method on a known path is a 405, on an unknown path a 404 */
	struct route_match m;
	assert_int_equal(router_match("/health", router_method("TRACE"), SVC_ALL, &m), 0);
	assert_int_equal(m.allowed, M_GET | M_HEAD);
	assert_int_equal(router_match("/nope", router_method("TRACE"), SVC_ALL, &m), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_table_is_well_formed),
	    cmocka_unit_test(test_every_route_matches_itself),
	    cmocka_unit_test(test_head_matches_get_routes),
	    cmocka_unit_test(test_legacy_aliases),
	    cmocka_unit_test(test_id_capture),
	    cmocka_unit_test(test_not_found),
	    cmocka_unit_test(test_method_not_allowed),
	    cmocka_unit_test(test_services_filter),
	    cmocka_unit_test(test_auth_invariant),
	    cmocka_unit_test(test_allow_header),
	    cmocka_unit_test(test_method_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
