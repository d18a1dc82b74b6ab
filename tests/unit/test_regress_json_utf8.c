/* test_regress_json_utf8.c: regression test for a hostile-client finding.
 *
 * test_hostile.py found error bodies that were not valid JSON: a 404 echoes
 * the path ("Not Found: /%ff" arrives as the byte 0xff), a form error echoes
 * the field name, and "%.200s" can cut a UTF-8 character in half. The bytes
 * went through buf_json_str as they were, and JSON text must be UTF-8 (RFC
 * 8259 section 8.1): strict clients (and jansson, and Python's json) refuse
 * the whole body. Log lines are written with buf_json_str too. Whatever
 * bytes go in, buf_json_str and api_error_json must give valid JSON that
 * keeps every well-formed character. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <jansson.h>
#include <string.h>

#include "apierr.h"
#include "buf.h"
#include "banned.h"

static const char *const hostile[] = {
	"Not Found: /\xff\xfe",               /* bytes that never start UTF-8 */
	"form field f\xe8le must be valid UTF-8", /* Latin-1 */
	"cut \xc3",                            /* a sequence cut by %.200s */
	"cut \xe6\x97",
	"overlong \xc0\xaf and \xe0\x80\xaf",
	"surrogate \xed\xa0\x80",
	"past U+10FFFF \xf4\x90\x80\x80",
	"lone continuation \x80\xbf",
	"five bytes \xf8\x88\x80\x80\x80",
};

/* s as a JSON string literal, parsed back: the decoded string (owned). */
static char *round_trip(const char *s)
{
	struct buf b;
	json_error_t e;
	json_t *j;
	char *out;

	buf_init(&b, BUF_UNLIMITED);
	assert_int_equal(buf_json_str(&b, s), 0);
	j = json_loadb(b.data, b.len, JSON_DECODE_ANY, &e);
	if (!j)
		fail_msg("buf_json_str(\"%s\") is not JSON: %s: %s", s, e.text, b.data);
	assert_true(json_is_string(j));
	out = strdup(json_string_value(j));
	json_decref(j);
	buf_release(&b);
	return out;
}

static void test_json_str_always_valid(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(hostile) / sizeof(hostile[0]); i++)
		free(round_trip(hostile[i]));
}

static void test_json_str_keeps_utf8(void **state)
{
	const char *good = "caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80 \"q\" \\ \n\x01";
	char *back;

	(void)state;
	back = round_trip(good);
	assert_string_equal(back, good);
	free(back);
	/* the well-formed part around a bad byte survives */
	back = round_trip("a\xff" "b\xc3\xa9");
	assert_non_null(strstr(back, "a"));
	assert_non_null(strstr(back, "b\xc3\xa9"));
	free(back);
}

static void test_error_body_valid(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(hostile) / sizeof(hostile[0]); i++) {
		struct api_error err;
		struct buf b;
		json_error_t e;
		json_t *j;

		api_error_set(&err, AE_NOT_FOUND, NULL, "%s", hostile[i]);
		buf_init(&b, BUF_UNLIMITED);
		api_error_json(&err, &b);
		j = json_loadb(b.data, b.len, 0, &e);
		if (!j)
			fail_msg("error body for \"%s\" is not JSON: %s", hostile[i], e.text);
		assert_true(json_is_string(json_object_get(j, "detail")));
		json_decref(j);
		buf_release(&b);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_json_str_always_valid),
		cmocka_unit_test(test_json_str_keeps_utf8),
		cmocka_unit_test(test_error_body_valid),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
