/* test_regress_validate_nul.c: regression test for a fuzz finding in validate.c.
 *
 * fuzz_validate found that a NUL inside a training job's dataset object
 * ({"dataset":{"rows":["a\u0000b"]}}) passed validation into the normalized
 * parameters, although every other string is refused with "must not contain
 * NUL characters" (validate.h: strings must not contain NUL). The job's
 * parameters go to the job store and to the worker, which reads them without
 * JSON_ALLOW_NUL. Bodies are parsed with JSON_ALLOW_NUL, as the server does
 * once "\u0000" reaches the rules (test_hostile.py: a 422 naming the field). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "apierr.h"
#include "validate.h"
#include "banned.h"

static void expect_422(const char *text, const char *param)
{
	json_error_t e;
	json_t *body = json_loads(text, JSON_ALLOW_NUL, &e), *out = NULL;
	struct api_error err;

	if (!body)
		fail_msg("test body does not parse: %s", e.text);
	memset(&err, 0, sizeof(err));
	if (validate_request(TASK_TRAIN, body, NULL, &out, &err) == 0)
		fail_msg("accepted: %s", text);
	assert_null(out);
	assert_int_equal(err.code, AE_INVALID_FIELD);
	assert_string_equal(err.param, param);
	assert_non_null(strstr(err.message, "NUL"));
	json_decref(body);
}

static void test_dataset_object_with_nul(void **state)
{
	(void)state;
	expect_422("{\"model\":\"m\",\"dataset\":{\"rows\":[\"a\\u0000b\"]}}", "dataset");
	expect_422("{\"model\":\"m\",\"dataset\":{\"name\":\"\\u0000\"}}", "dataset");
	expect_422("{\"model\":\"m\",\"dataset\":{\"a\":{\"b\":[[{\"c\":\"x\\u0000\"}]]}}}",
		   "dataset");
	/* a string dataset was already checked */
	expect_422("{\"model\":\"m\",\"dataset\":\"d\\u0000\"}", "dataset");
}

static void test_dataset_object_without_nul_still_accepted(void **state)
{
	json_t *body = json_loads("{\"model\":\"m\",\"dataset\":{\"rows\":[\"a\",1,null]}}", 0,
				  NULL), *out = NULL;
	struct api_error err;

	(void)state;
	assert_non_null(body);
	assert_int_equal(validate_request(TASK_TRAIN, body, NULL, &out, &err), 0);
	assert_true(json_equal(json_object_get(out, "dataset"), json_object_get(body, "dataset")));
	json_decref(out);
	json_decref(body);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dataset_object_with_nul),
		cmocka_unit_test(test_dataset_object_without_nul_still_accepted),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
