/* test_validate.c: unit tests of the request body rules (src/validate.c).
 *
 * For every task kind: a minimal valid body gives the normalized parameters
 * with every default; each rule, broken once, gives a 422 naming the field
 * and the rule; aliases resolve; non-object bodies give a 400; and the output
 * shares nothing with the body. Bodies are written as JSON text (parsed with
 * JSON_ALLOW_NUL so "\u0000" reaches the validator). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "apierr.h"
#include "validate.h"
#include "banned.h"

struct bad_case {
	const char *body;
	const char *param;
	const char *rule; /* a substring of the message */
};

static struct validate_limits lim;

static int setup(void **state)
{
	validate_limits_default(&lim);
	return 0;
}

static json_t *parse(const char *text)
{
	json_error_t e;
	json_t *j = json_loads(text, JSON_ALLOW_NUL | JSON_DECODE_ANY, &e);

	if (!j)
		fail_msg("test body does not parse: %s: %s", text, e.text);
	return j;
}

/* Validate a body that must pass; returns the normalized object (owned). */
static json_t *valid_json(enum task_kind kind, json_t *body, const struct validate_limits *l)
{
	struct api_error err = {0};
	json_t *out = NULL;

	if (validate_request(kind, body, l, &out, &err))
		fail_msg("unexpected error: %s (param %s)", err.message, err.param);
	assert_true(json_is_object(out));
	assert_true(out != body);
	return out;
}

static json_t *valid(enum task_kind kind, const char *text)
{
	json_t *body = parse(text);
	json_t *out = valid_json(kind, body, &lim);

	json_decref(body);
	return out;
}

/* Validate a body that must fail with code, param and a message holding rule. */
static void invalid_json(enum task_kind kind, json_t *body, const struct validate_limits *l,
			 enum api_err code, const char *param, const char *rule)
{
	struct api_error err = {0};
	json_t *sentinel = json_object(), *out = sentinel;
	char *before = json_dumps(body, JSON_SORT_KEYS | JSON_ENCODE_ANY);
	char *after;

	if (!validate_request(kind, body, l, &out, &err))
		fail_msg("%.200s: accepted, expected %s: %s", before, param, rule);
	assert_ptr_equal(out, sentinel);
	if (err.code != code)
		fail_msg("%.200s: code %d, expected %d: %s", before, err.code, code, err.message);
	if (strcmp(err.param, param))
		fail_msg("%.200s: param '%s', expected '%s' (%s)", before, err.param, param,
			 err.message);
	if (!strstr(err.message, rule))
		fail_msg("%.200s: message '%s' lacks '%s'", before, err.message, rule);
	after = json_dumps(body, JSON_SORT_KEYS | JSON_ENCODE_ANY);
	assert_string_equal(before, after);
	free(before);
	free(after);
	json_decref(sentinel);
}

static void invalid(enum task_kind kind, const char *text, const char *param, const char *rule)
{
	json_t *body = parse(text);

	invalid_json(kind, body, &lim, AE_INVALID_FIELD, param, rule);
	json_decref(body);
}

static void run_bad(enum task_kind kind, const struct bad_case *cases, size_t n)
{
	for (size_t i = 0; i < n; i++)
		invalid(kind, cases[i].body, cases[i].param, cases[i].rule);
}

#define RUN_BAD(kind, cases) run_bad(kind, cases, sizeof(cases) / sizeof(cases[0]))

/* Field accessors that fail the test when the field is missing or of the
 * wrong type. */
#define ASSERT_INT(o, key, want) do { \
	json_t *j_ = json_object_get(o, key); \
	assert_true(json_is_integer(j_)); \
	assert_int_equal(json_integer_value(j_), want); \
} while (0)
#define ASSERT_REAL(o, key, want) do { \
	json_t *j_ = json_object_get(o, key); \
	assert_true(json_is_real(j_)); \
	assert_float_equal(json_real_value(j_), want, 1e-12); \
} while (0)
#define ASSERT_STR(o, key, want) do { \
	json_t *j_ = json_object_get(o, key); \
	assert_true(json_is_string(j_)); \
	assert_string_equal(json_string_value(j_), want); \
} while (0)
#define ASSERT_BOOL(o, key, want) do { \
	json_t *j_ = json_object_get(o, key); \
	assert_true(json_is_boolean(j_)); \
	assert_int_equal(json_is_true(j_), want); \
} while (0)
#define ASSERT_ABSENT(o, key) assert_null(json_object_get(o, key))
/* The whole normalized object, compared with JSON text. */
#define ASSERT_JSON(o, text) do { \
	json_t *w_ = parse(text); \
	if (!json_equal(o, w_)) { \
		char *got_ = json_dumps(o, JSON_SORT_KEYS); \
		fail_msg("got %s, want %s", got_, text); \
	} \
	json_decref(w_); \
} while (0)

/* A body {"<key>": "<unit repeated n times>", <rest>} where rest is JSON
 * members without braces (may be ""). */
static json_t *body_with_long(const char *key, const char *unit, size_t n, const char *rest)
{
	size_t ul = strlen(unit);
	char *s = malloc(ul * n + 1);
	json_t *body = parse(*rest ? rest : "{}");

	for (size_t i = 0; i < n; i++)
		memcpy(s + i * ul, unit, ul);
	s[ul * n] = 0;
	json_object_set_new(body, key, json_string(s));
	free(s);
	return body;
}

static void check_long(enum task_kind kind, const char *key, size_t max, const char *rest,
		       const char *param_rule)
{
	json_t *body, *out;

	body = body_with_long(key, "\xc3\xa9", max, rest); /* max two-byte characters pass */
	out = valid_json(kind, body, &lim);
	json_decref(out);
	json_decref(body);
	body = body_with_long(key, "a", max + 1, rest);
	invalid_json(kind, body, &lim, AE_INVALID_FIELD, key, param_rule);
	json_decref(body);
}

/* ---- every kind ---- */

static void test_body_not_object(void **state)
{
	static const char *bodies[] = {"[]", "\"prompt\"", "1", "null", "true",
				       "[{\"prompt\":\"x\"}]"};
	struct api_error err;
	json_t *out;

	for (int k = TASK_IMAGE_GEN; k < TASK_KIND_COUNT; k++) {
		for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
			json_t *body = parse(bodies[i]);

			out = NULL;
			memset(&err, 0, sizeof(err));
			assert_int_equal(validate_request(k, body, &lim, &out, &err), -1);
			assert_null(out);
			assert_int_equal(err.code, AE_BAD_REQUEST);
			assert_int_equal(api_err_status(err.code), 400);
			assert_string_equal(err.message, "request body must be a JSON object");
			assert_string_equal(err.param, "");
			json_decref(body);
		}
		assert_int_equal(validate_request(k, NULL, &lim, &out, &err), -1);
		assert_int_equal(err.code, AE_BAD_REQUEST);
	}
}

static void test_unknown_kind(void **state)
{
	struct api_error err;
	json_t *body = parse("{}"), *out = NULL;

	assert_int_equal(validate_request(TASK_NONE, body, &lim, &out, &err), -1);
	assert_int_equal(err.code, AE_INTERNAL);
	assert_int_equal(validate_request(TASK_KIND_COUNT, body, &lim, &out, &err), -1);
	assert_int_equal(err.code, AE_INTERNAL);
	assert_null(out);
	json_decref(body);
}

static void test_null_limits_mean_defaults(void **state)
{
	json_t *body = parse("{\"prompt\":\"x\"}");
	json_t *out = valid_json(TASK_IMAGE_GEN, body, NULL);

	ASSERT_INT(out, "width", 512);
	json_decref(out);
	json_decref(body);
}

static void test_limits_default(void **state)
{
	struct validate_limits l;

	memset(&l, 0xff, sizeof(l));
	validate_limits_default(&l);
	assert_int_equal(l.image_min_size, 64);
	assert_int_equal(l.image_max_size, 1024);
	assert_int_equal(l.image_size_multiple, 16);
	assert_int_equal(l.image_default_size, 512);
	assert_int_equal(l.video_max_frames, 64);
	assert_int_equal(l.llm_max_tokens, 4096);
	assert_null(l.voices);
	assert_null(l.default_voice);
}

/* ---- images ---- */

static void test_image_defaults(void **state)
{
	json_t *out = valid(TASK_IMAGE_GEN,
			    "{\"prompt\":\"a cat\",\"model\":\"x\",\"user\":\"u\"}");

	ASSERT_STR(out, "prompt", "a cat");
	ASSERT_STR(out, "negative_prompt", "");
	ASSERT_INT(out, "num_inference_steps", 20);
	ASSERT_ABSENT(out, "seed");
	ASSERT_INT(out, "number_of_images", 1);
	ASSERT_STR(out, "image_return_format", "JPEG");
	ASSERT_INT(out, "image_quality", 85);
	ASSERT_REAL(out, "guidance_scale", 5.0);
	ASSERT_INT(out, "width", 512);
	ASSERT_INT(out, "height", 512);
	ASSERT_STR(out, "response_format", "b64_json");
	ASSERT_ABSENT(out, "model"); /* ignored, like every unknown field */
	ASSERT_ABSENT(out, "user");
	ASSERT_ABSENT(out, "n");
	ASSERT_ABSENT(out, "size");
	assert_int_equal(json_object_size(out), 10);
	json_decref(out);
}

static void test_image_all_fields(void **state)
{
	json_t *out = valid(TASK_IMAGE_GEN,
			    "{\"prompt\":\"p\",\"negative_prompt\":\"n\",\"num_inference_steps\":4,"
			    "\"seed\":42,\"number_of_images\":4,\"image_return_format\":\"png\","
			    "\"image_quality\":100,\"guidance_scale\":1,\"width\":64,"
			    "\"height\":1024,"
			    "\"response_format\":\"B64_JSON\"}");

	ASSERT_JSON(out, "{\"prompt\":\"p\",\"negative_prompt\":\"n\",\"num_inference_steps\":4,"
			 "\"seed\":42,\"number_of_images\":4,\"image_return_format\":\"PNG\","
			 "\"image_quality\":100,\"guidance_scale\":1.0,\"width\":64,"
			 "\"height\":1024,"
			 "\"response_format\":\"b64_json\"}");
	json_decref(out);
	/* integral reals are integers; nulls are absent fields */
	out = valid(TASK_IMAGE_GEN, "{\"prompt\":\"p\",\"num_inference_steps\":30.0,\"seed\":null,"
				    "\"width\":null,\"guidance_scale\":7,\"image_quality\":50}");
	ASSERT_INT(out, "num_inference_steps", 30);
	ASSERT_ABSENT(out, "seed");
	ASSERT_INT(out, "width", 512);
	ASSERT_REAL(out, "guidance_scale", 7.0);
	ASSERT_INT(out, "image_quality", 50);
	json_decref(out);
}

static const struct bad_case image_bad[] = {
	{"{}", "prompt", "prompt is required"},
	{"{\"prompt\":null}", "prompt", "prompt is required"},
	{"{\"prompt\":\"\"}", "prompt", "prompt must be a non-empty string"},
	{"{\"prompt\":5}", "prompt", "prompt must be a non-empty string"},
	{"{\"prompt\":[\"a\"]}", "prompt", "prompt must be a non-empty string"},
	{"{\"prompt\":\"a\\u0000b\"}", "prompt", "prompt must not contain NUL characters"},
	{"{\"prompt\":\"p\",\"negative_prompt\":3}", "negative_prompt",
	 "negative_prompt must be a string"},
	{"{\"prompt\":\"p\",\"negative_prompt\":\"\\u0000\"}", "negative_prompt",
	 "negative_prompt must not contain NUL characters"},
	{"{\"prompt\":\"p\",\"num_inference_steps\":3}", "num_inference_steps",
	 "num_inference_steps must be an integer between 4 and 50"},
	{"{\"prompt\":\"p\",\"num_inference_steps\":51}", "num_inference_steps",
	 "num_inference_steps must be an integer between 4 and 50"},
	{"{\"prompt\":\"p\",\"num_inference_steps\":-1}", "num_inference_steps",
	 "between 4 and 50"},
	{"{\"prompt\":\"p\",\"num_inference_steps\":20.5}", "num_inference_steps", "an integer"},
	{"{\"prompt\":\"p\",\"num_inference_steps\":1e308}", "num_inference_steps", "between 4"},
	{"{\"prompt\":\"p\",\"num_inference_steps\":-1e308}", "num_inference_steps", "between 4"},
	{"{\"prompt\":\"p\",\"num_inference_steps\":9223372036854775807}", "num_inference_steps",
	 "between 4 and 50"},
	{"{\"prompt\":\"p\",\"num_inference_steps\":\"20\"}", "num_inference_steps", "an integer"},
	{"{\"prompt\":\"p\",\"num_inference_steps\":true}", "num_inference_steps", "an integer"},
	{"{\"prompt\":\"p\",\"seed\":-1}", "seed",
	 "seed must be an integer between 0 and 18446744073709551615"},
	{"{\"prompt\":\"p\",\"seed\":1.5}", "seed", "seed must be an integer"},
	{"{\"prompt\":\"p\",\"seed\":1e308}", "seed", "seed must be an integer"},
	{"{\"prompt\":\"p\",\"seed\":\"abc\"}", "seed", "seed must be an integer"},
	{"{\"prompt\":\"p\",\"seed\":\"-1\"}", "seed", "seed must be an integer"},
	{"{\"prompt\":\"p\",\"seed\":\"\"}", "seed", "seed must be an integer"},
	{"{\"prompt\":\"p\",\"seed\":\" 1\"}", "seed", "seed must be an integer"},
	{"{\"prompt\":\"p\",\"seed\":\"18446744073709551616\"}", "seed", "seed must be an integer"},
	{"{\"prompt\":\"p\",\"seed\":\"1\\u0000\"}", "seed", "seed must be an integer"},
	{"{\"prompt\":\"p\",\"seed\":true}", "seed", "seed must be an integer"},
	{"{\"prompt\":\"p\",\"number_of_images\":0}", "number_of_images",
	 "number_of_images must be an integer between 1 and 4"},
	{"{\"prompt\":\"p\",\"number_of_images\":5}", "number_of_images", "between 1 and 4"},
	{"{\"prompt\":\"p\",\"n\":5}", "n", "n must be an integer between 1 and 4"},
	{"{\"prompt\":\"p\",\"n\":2,\"number_of_images\":3}", "n",
	 "n must equal number_of_images when both are given"},
	{"{\"prompt\":\"p\",\"image_return_format\":\"gif\"}", "image_return_format",
	 "image_return_format must be one of JPEG, PNG"},
	{"{\"prompt\":\"p\",\"image_return_format\":1}", "image_return_format",
	 "image_return_format must be one of JPEG, PNG"},
	{"{\"prompt\":\"p\",\"image_return_format\":\"PNG\\u0000x\"}", "image_return_format",
	 "image_return_format must not contain NUL characters"},
	{"{\"prompt\":\"p\",\"image_quality\":49}", "image_quality",
	 "image_quality must be an integer between 50 and 100"},
	{"{\"prompt\":\"p\",\"image_quality\":101}", "image_quality", "between 50 and 100"},
	{"{\"prompt\":\"p\",\"guidance_scale\":\"5\"}", "guidance_scale",
	 "guidance_scale must be a number"},
	{"{\"prompt\":\"p\",\"guidance_scale\":0.5}", "guidance_scale",
	 "guidance_scale must be a number between 1 and 20"},
	{"{\"prompt\":\"p\",\"guidance_scale\":20.01}", "guidance_scale", "between 1 and 20"},
	{"{\"prompt\":\"p\",\"guidance_scale\":1e308}", "guidance_scale", "between 1 and 20"},
	{"{\"prompt\":\"p\",\"guidance_scale\":-1}", "guidance_scale", "between 1 and 20"},
	{"{\"prompt\":\"p\",\"width\":100}", "width",
	 "width must be a multiple of 16 between 64 and 1024"},
	{"{\"prompt\":\"p\",\"width\":48}", "width", "multiple of 16 between 64 and 1024"},
	{"{\"prompt\":\"p\",\"width\":1040}", "width", "multiple of 16 between 64 and 1024"},
	{"{\"prompt\":\"p\",\"width\":\"512\"}", "width", "multiple of 16"},
	{"{\"prompt\":\"p\",\"height\":0}", "height",
	 "height must be a multiple of 16 between 64 and 1024"},
	{"{\"prompt\":\"p\",\"height\":-512}", "height", "multiple of 16"},
	{"{\"prompt\":\"p\",\"size\":\"512\"}", "size", "size must be of the form WIDTHxHEIGHT"},
	{"{\"prompt\":\"p\",\"size\":512}", "size", "size must be of the form WIDTHxHEIGHT"},
	{"{\"prompt\":\"p\",\"size\":\"x512\"}", "size", "of the form WIDTHxHEIGHT"},
	{"{\"prompt\":\"p\",\"size\":\"512x\"}", "size", "of the form WIDTHxHEIGHT"},
	{"{\"prompt\":\"p\",\"size\":\"512x512x\"}", "size", "of the form WIDTHxHEIGHT"},
	{"{\"prompt\":\"p\",\"size\":\" 512x512\"}", "size", "of the form WIDTHxHEIGHT"},
	{"{\"prompt\":\"p\",\"size\":\"-512x512\"}", "size", "of the form WIDTHxHEIGHT"},
	{"{\"prompt\":\"p\",\"size\":\"99999999999x512\"}", "size", "of the form WIDTHxHEIGHT"},
	{"{\"prompt\":\"p\",\"size\":\"512x512\\u0000\"}", "size", "of the form WIDTHxHEIGHT"},
	{"{\"prompt\":\"p\",\"size\":\"auto\"}", "size", "of the form WIDTHxHEIGHT"},
	{"{\"prompt\":\"p\",\"size\":\"512x100\"}", "size",
	 "multiples of 16 between 64 and 1024"},
	{"{\"prompt\":\"p\",\"size\":\"2048x512\"}", "size", "multiples of 16 between 64 and 1024"},
	{"{\"prompt\":\"p\",\"size\":\"256x256\",\"width\":512}", "size",
	 "size must agree with width and height"},
	{"{\"prompt\":\"p\",\"size\":\"256x256\",\"height\":512}", "size", "must agree"},
	{"{\"prompt\":\"p\",\"response_format\":\"url\"}", "response_format",
	 "response_format must be b64_json"},
	{"{\"prompt\":\"p\",\"response_format\":false}", "response_format",
	 "response_format must be b64_json"},
};

static void test_image_rules(void **state)
{
	RUN_BAD(TASK_IMAGE_GEN, image_bad);
	check_long(TASK_IMAGE_GEN, "prompt", 10000, "",
		   "prompt must be at most 10000 characters");
	check_long(TASK_IMAGE_GEN, "negative_prompt", 10000, "{\"prompt\":\"p\"}",
		   "negative_prompt must be at most 10000 characters");
}

static void test_image_aliases(void **state)
{
	json_t *out = valid(TASK_IMAGE_GEN, "{\"prompt\":\"p\",\"n\":3}");

	ASSERT_INT(out, "number_of_images", 3);
	ASSERT_ABSENT(out, "n");
	json_decref(out);
	out = valid(TASK_IMAGE_GEN, "{\"prompt\":\"p\",\"n\":2,\"number_of_images\":2}");
	ASSERT_INT(out, "number_of_images", 2);
	json_decref(out);
	out = valid(TASK_IMAGE_GEN, "{\"prompt\":\"p\",\"size\":\"256x384\"}");
	ASSERT_INT(out, "width", 256);
	ASSERT_INT(out, "height", 384);
	ASSERT_ABSENT(out, "size");
	json_decref(out);
	out = valid(TASK_IMAGE_GEN, "{\"prompt\":\"p\",\"size\":\"1024X64\",\"width\":1024,"
				    "\"height\":64}");
	ASSERT_INT(out, "width", 1024);
	ASSERT_INT(out, "height", 64);
	json_decref(out);
	out = valid(TASK_IMAGE_GEN, "{\"prompt\":\"p\",\"size\":\"128x128\",\"width\":128}");
	ASSERT_INT(out, "height", 128);
	json_decref(out);
	out = valid(TASK_IMAGE_GEN, "{\"prompt\":\"p\",\"width\":256}");
	ASSERT_INT(out, "width", 256);
	ASSERT_INT(out, "height", 512);
	json_decref(out);
}

static void test_image_limits(void **state)
{
	struct validate_limits l = lim;
	json_t *body = parse("{\"prompt\":\"p\"}"), *out;

	l.image_min_size = 128;
	l.image_max_size = 512;
	l.image_size_multiple = 64;
	l.image_default_size = 256;
	out = valid_json(TASK_IMAGE_GEN, body, &l);
	ASSERT_INT(out, "width", 256);
	ASSERT_INT(out, "height", 256);
	json_decref(out);
	json_object_set_new(body, "width", json_integer(320));
	out = valid_json(TASK_IMAGE_GEN, body, &l);
	ASSERT_INT(out, "width", 320);
	json_decref(out);
	json_object_set_new(body, "width", json_integer(336));
	invalid_json(TASK_IMAGE_GEN, body, &l, AE_INVALID_FIELD, "width",
		     "width must be a multiple of 64 between 128 and 512");
	json_object_set_new(body, "width", json_integer(576));
	invalid_json(TASK_IMAGE_GEN, body, &l, AE_INVALID_FIELD, "width", "between 128 and 512");
	json_decref(body);
}

static void test_seed(void **state)
{
	uint64_t seed = 7;
	json_t *out = valid(TASK_IMAGE_GEN, "{\"prompt\":\"p\"}");

	assert_int_equal(validate_params_seed(out, &seed), 0);
	assert_int_equal(seed, 7);
	json_decref(out);

	out = valid(TASK_IMAGE_GEN, "{\"prompt\":\"p\",\"seed\":0}");
	ASSERT_INT(out, "seed", 0);
	assert_int_equal(validate_params_seed(out, &seed), 1);
	assert_int_equal(seed, 0);
	json_decref(out);

	out = valid(TASK_IMAGE_GEN, "{\"prompt\":\"p\",\"seed\":9223372036854775807}");
	ASSERT_INT(out, "seed", INT64_MAX);
	assert_int_equal(validate_params_seed(out, &seed), 1);
	assert_true(seed == (uint64_t)INT64_MAX);
	json_decref(out);

	/* above INT64_MAX only a string can carry it; it stays digits */
	out = valid(TASK_IMAGE_GEN, "{\"prompt\":\"p\",\"seed\":\"18446744073709551615\"}");
	ASSERT_STR(out, "seed", "18446744073709551615");
	assert_int_equal(validate_params_seed(out, &seed), 1);
	assert_true(seed == UINT64_MAX);
	json_decref(out);

	out = valid(TASK_IMAGE_GEN, "{\"prompt\":\"p\",\"seed\":\"9223372036854775808\"}");
	ASSERT_STR(out, "seed", "9223372036854775808");
	assert_int_equal(validate_params_seed(out, &seed), 1);
	assert_true(seed == 9223372036854775808ull);
	json_decref(out);

	out = valid(TASK_IMAGE_GEN, "{\"prompt\":\"p\",\"seed\":\"42\"}");
	ASSERT_INT(out, "seed", 42);
	json_decref(out);

	out = valid(TASK_IMAGE_GEN, "{\"prompt\":\"p\",\"seed\":12.0}");
	ASSERT_INT(out, "seed", 12);
	json_decref(out);

	out = valid(TASK_IMAGE_GEN, "{\"prompt\":\"p\",\"seed\":1e19}");
	ASSERT_STR(out, "seed", "10000000000000000000");
	json_decref(out);
}

/* ---- audio ---- */

static void test_transcribe_defaults(void **state)
{
	enum task_kind kinds[] = {TASK_TRANSCRIBE, TASK_TRANSLATE};

	for (size_t i = 0; i < 2; i++) {
		json_t *out = valid(kinds[i], "{\"file\":\"UklGRg==\",\"model\":\"whisper-1\"}");

		ASSERT_JSON(out, "{\"file\":\"UklGRg==\",\"response_format\":\"json\","
				 "\"stream\":false,\"language\":\"en\",\"prompt\":\"\"}");
		ASSERT_ABSENT(out, "temperature");
		json_decref(out);
	}
}

static void test_transcribe_fields(void **state)
{
	json_t *out = valid(TASK_TRANSCRIBE,
			    "{\"file\":\"QQ\",\"response_format\":\"verbose_json\",\"stream\":true,"
			    "\"language\":\"de\",\"prompt\":\"hint\",\"temperature\":0.2}");

	ASSERT_JSON(out, "{\"file\":\"QQ\",\"response_format\":\"verbose_json\",\"stream\":true,"
			 "\"language\":\"de\",\"prompt\":\"hint\",\"temperature\":0.2}");
	json_decref(out);
	out = valid(TASK_TRANSCRIBE, "{\"file\":\"QUI=\",\"temperature\":0}");
	ASSERT_REAL(out, "temperature", 0.0);
	json_decref(out);
	out = valid(TASK_TRANSCRIBE, "{\"file\":\"ab+/Zz09\",\"response_format\":\"TEXT\"}");
	ASSERT_STR(out, "response_format", "text");
	json_decref(out);
}

static const struct bad_case transcribe_bad[] = {
	{"{}", "file", "file is required"},
	{"{\"file\":5}", "file", "file must be a non-empty base64 string"},
	{"{\"file\":\"\"}", "file", "file must be a non-empty base64 string"},
	{"{\"file\":\"abc$\"}", "file", "file must be a non-empty base64 string"},
	{"{\"file\":\"ab cd\"}", "file", "base64"},
	{"{\"file\":\"A\"}", "file", "base64"},
	{"{\"file\":\"QQ=\"}", "file", "base64"},
	{"{\"file\":\"QQ===\"}", "file", "base64"},
	{"{\"file\":\"==\"}", "file", "base64"},
	{"{\"file\":\"Q=Q=\"}", "file", "base64"},
	{"{\"file\":\"QQ\\u0000=\"}", "file", "file must not contain NUL characters"},
	{"{\"file\":\"QQ==\",\"response_format\":\"srt\"}", "response_format",
	 "response_format must be one of json, verbose_json, text"},
	{"{\"file\":\"QQ==\",\"stream\":\"true\"}", "stream", "stream must be a boolean"},
	{"{\"file\":\"QQ==\",\"stream\":1}", "stream", "stream must be a boolean"},
	{"{\"file\":\"QQ==\",\"language\":\"\"}", "language",
	 "language must be a non-empty string"},
	{"{\"file\":\"QQ==\",\"language\":7}", "language", "language must be a non-empty string"},
	{"{\"file\":\"QQ==\",\"prompt\":{}}", "prompt", "prompt must be a string"},
	{"{\"file\":\"QQ==\",\"temperature\":1.5}", "temperature",
	 "temperature must be a number between 0 and 1"},
	{"{\"file\":\"QQ==\",\"temperature\":-0.1}", "temperature", "between 0 and 1"},
	{"{\"file\":\"QQ==\",\"temperature\":\"0\"}", "temperature", "must be a number"},
};

static void test_transcribe_rules(void **state)
{
	size_t n = 4 * ((50u * 1024 * 1024 + 2) / 3) + 4;
	char *big = malloc(n + 1);
	json_t *body;

	RUN_BAD(TASK_TRANSCRIBE, transcribe_bad);
	RUN_BAD(TASK_TRANSLATE, transcribe_bad);
	check_long(TASK_TRANSCRIBE, "language", 32, "{\"file\":\"QQ==\"}",
		   "language must be at most 32 characters");
	check_long(TASK_TRANSCRIBE, "prompt", 10000, "{\"file\":\"QQ==\"}",
		   "prompt must be at most 10000 characters");

	/* over 50 MiB of audio: 413 naming the limit */
	memset(big, 'A', n);
	big[n] = 0;
	body = json_object();
	json_object_set_new(body, "file", json_stringn(big, n));
	free(big);
	invalid_json(TASK_TRANSCRIBE, body, &lim, AE_TOO_LARGE, "file", "50 MiB");
	json_decref(body);
}

static void test_speech_defaults(void **state)
{
	json_t *out = valid(TASK_SPEECH, "{\"input\":\"hello\",\"model\":\"tts-1\"}");

	ASSERT_JSON(out, "{\"input\":\"hello\",\"voice\":\"default\",\"response_format\":\"wav\","
			 "\"speed\":1.0,\"stream\":false}");
	json_decref(out);
	out = valid(TASK_SPEECH, "{\"text\":\"hello\",\"voice\":\"kal\","
				 "\"response_format\":\"MP3\","
				 "\"speed\":0.25,\"stream\":true}");
	ASSERT_JSON(out, "{\"input\":\"hello\",\"voice\":\"kal\",\"response_format\":\"mp3\","
			 "\"speed\":0.25,\"stream\":true}");
	json_decref(out);
	out = valid(TASK_SPEECH, "{\"text\":\"same\",\"input\":\"same\",\"speed\":4}");
	ASSERT_STR(out, "input", "same");
	ASSERT_ABSENT(out, "text");
	ASSERT_REAL(out, "speed", 4.0);
	json_decref(out);
}

static const struct bad_case speech_bad[] = {
	{"{}", "input", "input is required"},
	{"{\"voice\":\"kal\"}", "input", "input is required"},
	{"{\"input\":\"\"}", "input", "input must be a non-empty string"},
	{"{\"input\":[]}", "input", "input must be a non-empty string"},
	{"{\"text\":\"\"}", "text", "text must be a non-empty string"},
	{"{\"input\":\"a\\u0000\"}", "input", "input must not contain NUL characters"},
	{"{\"input\":\"a\",\"text\":\"b\"}", "text", "text must equal input when both are given"},
	{"{\"input\":\"a\",\"voice\":\"\"}", "voice", "voice must be a non-empty string"},
	{"{\"input\":\"a\",\"voice\":3}", "voice", "voice must be a non-empty string"},
	{"{\"input\":\"a\",\"response_format\":\"aac\"}", "response_format",
	 "response_format must be one of wav, flac, ogg, mp3, pcm, json"},
	{"{\"input\":\"a\",\"speed\":0.2}", "speed", "speed must be a number between 0.25 and 4"},
	{"{\"input\":\"a\",\"speed\":4.5}", "speed", "between 0.25 and 4"},
	{"{\"input\":\"a\",\"speed\":\"1\"}", "speed", "speed must be a number"},
	{"{\"input\":\"a\",\"stream\":\"no\"}", "stream", "stream must be a boolean"},
};

static void test_speech_rules(void **state)
{
	RUN_BAD(TASK_SPEECH, speech_bad);
	check_long(TASK_SPEECH, "input", 4096, "", "input must be at most 4096 characters");
	check_long(TASK_SPEECH, "text", 4096, "", "text must be at most 4096 characters");
}

static void test_speech_voices(void **state)
{
	static const char *const voices[] = {"kal", "slt", NULL};
	struct validate_limits l = lim;
	json_t *body = parse("{\"input\":\"a\"}"), *out;

	l.voices = voices;
	out = valid_json(TASK_SPEECH, body, &l);
	ASSERT_STR(out, "voice", "kal"); /* no default_voice: the first one */
	json_decref(out);
	l.default_voice = "slt";
	out = valid_json(TASK_SPEECH, body, &l);
	ASSERT_STR(out, "voice", "slt");
	json_decref(out);
	json_object_set_new(body, "voice", json_string("SLT"));
	out = valid_json(TASK_SPEECH, body, &l);
	ASSERT_STR(out, "voice", "slt");
	json_decref(out);
	json_object_set_new(body, "voice", json_string("alloy"));
	invalid_json(TASK_SPEECH, body, &l, AE_INVALID_FIELD, "voice",
		     "voice must be one of kal, slt");
	/* any voice name passes when the runner lists none */
	out = valid_json(TASK_SPEECH, body, &lim);
	ASSERT_STR(out, "voice", "alloy");
	json_decref(out);
	json_decref(body);

	l.voices = NULL;
	l.default_voice = "awb";
	body = parse("{\"input\":\"a\"}");
	out = valid_json(TASK_SPEECH, body, &l);
	ASSERT_STR(out, "voice", "awb");
	json_decref(out);
	json_decref(body);
}

/* ---- video ---- */

static void test_video_defaults(void **state)
{
	json_t *out = valid(TASK_VIDEO_GEN, "{\"prompt\":\"waves\"}");

	ASSERT_JSON(out, "{\"prompt\":\"waves\",\"negative_prompt\":\"\","
			 "\"num_inference_steps\":20,"
			 "\"num_frames\":16,\"width\":256,\"height\":256,\"fps\":8}");
	ASSERT_ABSENT(out, "seed");
	json_decref(out);
	out = valid(TASK_VIDEO_GEN, "{\"prompt\":\"w\",\"seed\":5,\"num_frames\":64,\"fps\":60,"
				    "\"width\":512,\"height\":128,\"negative_prompt\":\"x\"}");
	ASSERT_JSON(out, "{\"prompt\":\"w\",\"negative_prompt\":\"x\",\"num_inference_steps\":20,"
			 "\"seed\":5,\"num_frames\":64,\"width\":512,\"height\":128,\"fps\":60}");
	json_decref(out);
}

static const struct bad_case video_bad[] = {
	{"{}", "prompt", "prompt is required"},
	{"{\"prompt\":\"\"}", "prompt", "prompt must be a non-empty string"},
	{"{\"prompt\":\"w\",\"negative_prompt\":false}", "negative_prompt", "must be a string"},
	{"{\"prompt\":\"w\",\"num_inference_steps\":100}", "num_inference_steps",
	 "num_inference_steps must be an integer between 4 and 50"},
	{"{\"prompt\":\"w\",\"seed\":-5}", "seed", "seed must be an integer between 0 and"},
	{"{\"prompt\":\"w\",\"num_frames\":0}", "num_frames",
	 "num_frames must be an integer between 1 and 64"},
	{"{\"prompt\":\"w\",\"num_frames\":65}", "num_frames", "between 1 and 64"},
	{"{\"prompt\":\"w\",\"num_frames\":1e308}", "num_frames", "between 1 and 64"},
	{"{\"prompt\":\"w\",\"width\":250}", "width",
	 "width must be a multiple of 16 between 64 and 1024"},
	{"{\"prompt\":\"w\",\"height\":2048}", "height", "multiple of 16 between 64 and 1024"},
	{"{\"prompt\":\"w\",\"fps\":0}", "fps", "fps must be an integer between 1 and 60"},
	{"{\"prompt\":\"w\",\"fps\":61}", "fps", "between 1 and 60"},
	{"{\"prompt\":\"w\",\"fps\":\"8\"}", "fps", "an integer"},
};

static void test_video_rules(void **state)
{
	struct validate_limits l = lim;
	json_t *body, *out;

	RUN_BAD(TASK_VIDEO_GEN, video_bad);
	check_long(TASK_VIDEO_GEN, "prompt", 10000, "", "prompt must be at most 10000 characters");
	l.video_max_frames = 8;
	body = parse("{\"prompt\":\"w\"}");
	out = valid_json(TASK_VIDEO_GEN, body, &l);
	ASSERT_INT(out, "num_frames", 8);
	json_decref(out);
	json_object_set_new(body, "num_frames", json_integer(9));
	invalid_json(TASK_VIDEO_GEN, body, &l, AE_INVALID_FIELD, "num_frames", "between 1 and 8");
	json_decref(body);
}

/* ---- text ---- */

static void test_chat_defaults(void **state)
{
	json_t *out = valid(TASK_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\","
				       "\"name\":\"bob\"}],\"user\":\"x\",\"presence_penalty\":1}");

	ASSERT_JSON(out, "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],"
			 "\"max_tokens\":256,\"temperature\":1.0,\"top_p\":1.0,\"stop\":[],"
			 "\"stream\":false}");
	ASSERT_ABSENT(out, "seed");
	ASSERT_ABSENT(out, "model");
	ASSERT_ABSENT(out, "stream_options");
	json_decref(out);
}

static void test_chat_fields(void **state)
{
	json_t *out = valid(TASK_CHAT,
			    "{\"model\":\"llama\",\"messages\":["
			    "{\"role\":\"System\",\"content\":\"be brief\"},"
			    "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"a\"},"
			    "{\"type\":\"text\",\"text\":\"b\"}]},"
			    "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[]},"
			    "{\"role\":\"tool\",\"content\":\"\",\"tool_call_id\":\"t\"},"
			    "{\"role\":\"developer\",\"content\":[]}],"
			    "\"max_tokens\":4096,\"temperature\":0,\"top_p\":0.5,\"seed\":3,"
			    "\"stop\":\"END\",\"stream\":true,\"n\":1,"
			    "\"stream_options\":{\"include_usage\":true,\"x\":1}}");

	ASSERT_JSON(out, "{\"messages\":[{\"role\":\"system\",\"content\":\"be brief\"},"
			 "{\"role\":\"user\",\"content\":\"a\\nb\"},"
			 "{\"role\":\"assistant\",\"content\":\"\"},"
			 "{\"role\":\"tool\",\"content\":\"\"},"
			 "{\"role\":\"developer\",\"content\":\"\"}],"
			 "\"max_tokens\":4096,\"temperature\":0.0,\"top_p\":0.5,\"seed\":3,"
			 "\"stop\":[\"END\"],\"stream\":true,\"model\":\"llama\","
			 "\"stream_options\":{\"include_usage\":true}}");
	json_decref(out);
	out = valid(TASK_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
			       "\"max_completion_tokens\":100,\"stop\":[\"a\",\"b\",\"c\",\"d\"],"
			       "\"stream_options\":{}}");
	ASSERT_INT(out, "max_tokens", 100);
	ASSERT_ABSENT(out, "max_completion_tokens");
	ASSERT_JSON(json_object_get(out, "stop"), "[\"a\",\"b\",\"c\",\"d\"]");
	ASSERT_JSON(json_object_get(out, "stream_options"), "{}");
	json_decref(out);
	out = valid(TASK_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
			       "\"max_completion_tokens\":7,\"max_tokens\":7,\"temperature\":2}");
	ASSERT_INT(out, "max_tokens", 7);
	ASSERT_REAL(out, "temperature", 2.0);
	json_decref(out);
}

static const struct bad_case chat_bad[] = {
	{"{}", "messages", "messages is required"},
	{"{\"messages\":[]}", "messages", "messages must be a non-empty array"},
	{"{\"messages\":\"hi\"}", "messages", "messages must be a non-empty array"},
	{"{\"messages\":[1]}", "messages[0]", "messages[0] must be an object"},
	{"{\"messages\":[{\"role\":\"user\",\"content\":\"a\"},{\"content\":\"a\"}]}",
	 "messages[1].role", "messages[1].role is required"},
	{"{\"messages\":[{\"role\":\"bot\",\"content\":\"a\"}]}", "messages[0].role",
	 "messages[0].role must be one of system, user, assistant, tool, developer"},
	{"{\"messages\":[{\"role\":5,\"content\":\"a\"}]}", "messages[0].role", "must be one of"},
	{"{\"messages\":[{\"role\":\"user\"}]}", "messages[0].content",
	 "messages[0].content is required"},
	{"{\"messages\":[{\"role\":\"user\",\"content\":5}]}", "messages[0].content",
	 "messages[0].content must be a string or an array of text parts"},
	{"{\"messages\":[{\"role\":\"user\",\"content\":\"a\\u0000\"}]}", "messages[0].content",
	 "messages[0].content must not contain NUL characters"},
	{"{\"messages\":[{\"role\":\"user\",\"content\":[\"a\"]}]}", "messages[0].content",
	 "an array of text parts"},
	{"{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\","
	 "\"image_url\":{}}]}]}",
	 "messages[0].content[0].type", "messages[0].content[0].type must be text"},
	{"{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\"}]}]}",
	 "messages[0].content[0].text", "messages[0].content[0].text is required"},
	{"{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"a\"},"
	 "{\"type\":\"text\",\"text\":3}]}]}",
	 "messages[0].content[1].text", "messages[0].content[1].text must be a string"},
	{"{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\","
	 "\"text\":\"\\u0000\"}]}]}",
	 "messages[0].content[0].text", "must not contain NUL characters"},
	{"{\"messages\":[{\"role\":\"user\",\"content\":\"a\"}],\"max_tokens\":0}", "max_tokens",
	 "max_tokens must be an integer between 1 and 4096"},
	{"{\"messages\":[{\"role\":\"user\",\"content\":\"a\"}],\"max_tokens\":4097}",
	 "max_tokens", "between 1 and 4096"},
	{"{\"messages\":[{\"role\":\"user\",\"content\":\"a\"}],\"max_tokens\":1e308}",
	 "max_tokens", "between 1 and 4096"},
	{"{\"messages\":[{\"role\":\"user\",\"content\":\"a\"}],\"max_completion_tokens\":-1}",
	 "max_completion_tokens", "max_completion_tokens must be an integer between 1 and 4096"},
	{"{\"messages\":[{\"role\":\"user\",\"content\":\"a\"}],\"max_tokens\":5,"
	 "\"max_completion_tokens\":6}",
	 "max_completion_tokens", "max_completion_tokens must equal max_tokens"},
	{"{\"messages\":[{\"role\":\"user\",\"content\":\"a\"}],\"temperature\":2.5}",
	 "temperature", "temperature must be a number between 0 and 2"},
	{"{\"messages\":[{\"role\":\"user\",\"content\":\"a\"}],\"temperature\":-0.1}",
	 "temperature", "between 0 and 2"},
	{"{\"messages\":[{\"role\":\"user\",\"content\":\"a\"}],\"temperature\":\"hot\"}",
	 "temperature", "temperature must be a number"},
	{"{\"messages\":[{\"role\":\"user\",\"content\":\"a\"}],\"top_p\":0}", "top_p",
	 "top_p must be a number greater than 0 and at most 1"},
	{"{\"messages\":[{\"role\":\"user\",\"content\":\"a\"}],\"top_p\":1.01}", "top_p",
	 "greater than 0 and at most 1"},
	{"{\"messages\":[{\"role\":\"user\",\"content\":\"a\"}],\"seed\":-1}", "seed",
	 "seed must be an integer between 0 and 18446744073709551615"},
	{"{\"messages\":[{\"role\":\"user\",\"content\":\"a\"}],\"stop\":5}", "stop",
	 "stop must be a string or an array of at most 4 strings"},
	{"{\"messages\":[{\"role\":\"user\",\"content\":\"a\"}],\"stop\":[\"a\",\"b\",\"c\","
	 "\"d\",\"e\"]}",
	 "stop", "stop must be a string or an array of at most 4 strings"},
	{"{\"messages\":[{\"role\":\"user\",\"content\":\"a\"}],\"stop\":[\"a\",\"\"]}",
	 "stop[1]", "stop[1] must be a non-empty string"},
	{"{\"messages\":[{\"role\":\"user\",\"content\":\"a\"}],\"stop\":[1]}", "stop[0]",
	 "stop[0] must be a non-empty string"},
	{"{\"messages\":[{\"role\":\"user\",\"content\":\"a\"}],\"stop\":\"\"}", "stop",
	 "stop must be a non-empty string"},
	{"{\"messages\":[{\"role\":\"user\",\"content\":\"a\"}],\"stop\":\"a\\u0000\"}", "stop",
	 "stop must not contain NUL characters"},
	{"{\"messages\":[{\"role\":\"user\",\"content\":\"a\"}],\"stream\":\"yes\"}", "stream",
	 "stream must be a boolean"},
	{"{\"messages\":[{\"role\":\"user\",\"content\":\"a\"}],\"stream_options\":5}",
	 "stream_options", "stream_options must be an object"},
	{"{\"messages\":[{\"role\":\"user\",\"content\":\"a\"}],"
	 "\"stream_options\":{\"include_usage\":\"yes\"}}",
	 "stream_options.include_usage", "stream_options.include_usage must be a boolean"},
	{"{\"messages\":[{\"role\":\"user\",\"content\":\"a\"}],\"model\":5}", "model",
	 "model must be a non-empty string"},
	{"{\"messages\":[{\"role\":\"user\",\"content\":\"a\"}],\"model\":\"\"}", "model",
	 "model must be a non-empty string"},
	{"{\"messages\":[{\"role\":\"user\",\"content\":\"a\"}],\"n\":2}", "n", "n must be 1"},
	{"{\"messages\":[{\"role\":\"user\",\"content\":\"a\"}],\"n\":0}", "n", "n must be 1"},
	{"{\"messages\":[{\"role\":\"user\",\"content\":\"a\"}],\"n\":\"1\"}", "n", "n must be 1"},
};

static void test_chat_rules(void **state)
{
	struct validate_limits l = lim;
	json_t *body, *out;

	RUN_BAD(TASK_CHAT, chat_bad);
	check_long(TASK_CHAT, "model", 256,
		   "{\"messages\":[{\"role\":\"user\",\"content\":\"a\"}]}",
		   "model must be at most 256 characters");

	l.llm_max_tokens = 100;
	body = parse("{\"messages\":[{\"role\":\"user\",\"content\":\"a\"}]}");
	out = valid_json(TASK_CHAT, body, &l);
	ASSERT_INT(out, "max_tokens", 100);
	json_decref(out);
	json_object_set_new(body, "max_tokens", json_integer(101));
	invalid_json(TASK_CHAT, body, &l, AE_INVALID_FIELD, "max_tokens", "between 1 and 100");
	json_decref(body);
}

static const struct bad_case completion_bad[] = {
	{"{}", "prompt", "prompt is required"},
	{"{\"prompt\":[]}", "prompt", "prompt must be a string or a non-empty array of strings"},
	{"{\"prompt\":5}", "prompt", "prompt must be a string or a non-empty array"},
	{"{\"prompt\":[1,2]}", "prompt[0]", "prompt[0] must be a string"},
	{"{\"prompt\":[\"a\",\"b\\u0000\"]}", "prompt[1]",
	 "prompt[1] must not contain NUL characters"},
	{"{\"prompt\":\"a\",\"max_tokens\":0}", "max_tokens", "between 1 and 4096"},
	{"{\"prompt\":\"a\",\"top_p\":-1}", "top_p", "greater than 0 and at most 1"},
	{"{\"prompt\":\"a\",\"stop\":{}}", "stop", "stop must be a string or an array"},
	{"{\"prompt\":\"a\",\"n\":3}", "n", "n must be 1"},
	{"{\"prompt\":\"a\",\"stream\":null,\"seed\":\"x\"}", "seed", "seed must be"},
};

static void test_completion(void **state)
{
	json_t *out = valid(TASK_COMPLETION, "{\"prompt\":\"once\"}");

	ASSERT_JSON(out, "{\"prompt\":[\"once\"],\"max_tokens\":256,\"temperature\":1.0,"
			 "\"top_p\":1.0,\"stop\":[],\"stream\":false}");
	json_decref(out);
	out = valid(TASK_COMPLETION, "{\"prompt\":[\"a\",\"\"],\"model\":\"m\",\"seed\":1,"
				     "\"stop\":[\"\\n\"]}");
	ASSERT_JSON(json_object_get(out, "prompt"), "[\"a\",\"\"]");
	ASSERT_STR(out, "model", "m");
	ASSERT_INT(out, "seed", 1);
	ASSERT_JSON(json_object_get(out, "stop"), "[\"\\n\"]");
	json_decref(out);
	out = valid(TASK_COMPLETION, "{\"prompt\":\"\"}");
	ASSERT_JSON(json_object_get(out, "prompt"), "[\"\"]");
	json_decref(out);
	RUN_BAD(TASK_COMPLETION, completion_bad);
}

static const struct bad_case tokenize_bad[] = {
	{"{}", "prompt", "prompt is required"},
	{"{\"prompt\":5}", "prompt", "prompt must be a string"},
	{"{\"prompt\":\"\\u0000\"}", "prompt", "prompt must not contain NUL characters"},
	{"{\"prompt\":\"a\",\"messages\":[{\"role\":\"user\",\"content\":\"a\"}]}", "messages",
	 "messages must not be given together with prompt"},
	{"{\"messages\":[]}", "messages", "messages must be a non-empty array"},
	{"{\"messages\":[{\"role\":\"x\",\"content\":\"a\"}]}", "messages[0].role",
	 "must be one of"},
	{"{\"prompt\":\"a\",\"model\":1}", "model", "model must be a non-empty string"},
};

static void test_tokenize(void **state)
{
	json_t *out = valid(TASK_TOKENIZE, "{\"prompt\":\"hello\",\"model\":\"m\"}");

	ASSERT_JSON(out, "{\"prompt\":\"hello\",\"model\":\"m\"}");
	json_decref(out);
	out = valid(TASK_TOKENIZE, "{\"prompt\":\"\"}");
	ASSERT_JSON(out, "{\"prompt\":\"\"}");
	json_decref(out);
	out = valid(TASK_TOKENIZE, "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}");
	ASSERT_JSON(out, "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}");
	json_decref(out);
	RUN_BAD(TASK_TOKENIZE, tokenize_bad);
}

static const struct bad_case detokenize_bad[] = {
	{"{}", "tokens", "tokens is required"},
	{"{\"tokens\":\"1,2\"}", "tokens", "tokens must be an array of non-negative integers"},
	{"{\"tokens\":5}", "tokens", "tokens must be an array of non-negative integers"},
	{"{\"tokens\":[1,-1]}", "tokens[1]",
	 "tokens[1] must be an integer between 0 and 2147483647"},
	{"{\"tokens\":[1.5]}", "tokens[0]", "tokens[0] must be an integer"},
	{"{\"tokens\":[2147483648]}", "tokens[0]", "between 0 and 2147483647"},
	{"{\"tokens\":[1e308]}", "tokens[0]", "between 0 and 2147483647"},
	{"{\"tokens\":[\"1\"]}", "tokens[0]", "must be an integer"},
	{"{\"tokens\":[null]}", "tokens[0]", "must be an integer"},
};

static void test_detokenize(void **state)
{
	json_t *out = valid(TASK_DETOKENIZE, "{\"tokens\":[1,2,2147483647,3.0]}");

	ASSERT_JSON(out, "{\"tokens\":[1,2,2147483647,3]}");
	json_decref(out);
	out = valid(TASK_DETOKENIZE, "{\"tokens\":[],\"model\":\"m\"}");
	ASSERT_JSON(out, "{\"tokens\":[],\"model\":\"m\"}");
	json_decref(out);
	RUN_BAD(TASK_DETOKENIZE, detokenize_bad);
}

static const struct bad_case embed_bad[] = {
	{"{}", "input", "input is required"},
	{"{\"input\":\"\"}", "input", "input must be a non-empty string"},
	{"{\"input\":[]}", "input",
	 "input must be a string or a non-empty array of at most 2048 strings"},
	{"{\"input\":7}", "input", "input must be a string or a non-empty array"},
	{"{\"input\":[\"a\",\"\"]}", "input[1]", "input[1] must be a non-empty string"},
	{"{\"input\":[[1,2]]}", "input[0]", "input[0] must be a non-empty string"},
	{"{\"input\":[\"a\\u0000\"]}", "input[0]", "input[0] must not contain NUL characters"},
	{"{\"input\":\"a\",\"encoding_format\":\"int8\"}", "encoding_format",
	 "encoding_format must be one of float, base64"},
	{"{\"input\":\"a\",\"model\":[]}", "model", "model must be a non-empty string"},
};

static void test_embed(void **state)
{
	json_t *out = valid(TASK_EMBED, "{\"input\":\"text\"}");
	json_t *body, *items;

	ASSERT_JSON(out, "{\"input\":[\"text\"],\"encoding_format\":\"float\"}");
	json_decref(out);
	out = valid(TASK_EMBED, "{\"input\":[\"a\",\"b\"],\"model\":\"e5\","
				"\"encoding_format\":\"base64\",\"dimensions\":3}");
	ASSERT_JSON(out, "{\"input\":[\"a\",\"b\"],\"model\":\"e5\","
			 "\"encoding_format\":\"base64\"}");
	json_decref(out);
	RUN_BAD(TASK_EMBED, embed_bad);

	body = json_object();
	items = json_array();
	for (int i = 0; i < 2048; i++)
		json_array_append_new(items, json_string("x"));
	json_object_set_new(body, "input", items);
	out = valid_json(TASK_EMBED, body, &lim);
	assert_int_equal(json_array_size(json_object_get(out, "input")), 2048);
	json_decref(out);
	json_array_append_new(items, json_string("x"));
	invalid_json(TASK_EMBED, body, &lim, AE_INVALID_FIELD, "input", "at most 2048 strings");
	json_decref(body);
}

/* ---- fine-tuning ---- */

static const struct bad_case train_bad[] = {
	{"{\"dataset\":\"d\"}", "model", "model is required"},
	{"{\"model\":\"\",\"dataset\":\"d\"}", "model", "model must be a non-empty string"},
	{"{\"model\":\"m\"}", "dataset", "dataset is required"},
	{"{\"model\":\"m\",\"dataset\":5}", "dataset", "dataset must be a string or an object"},
	{"{\"model\":\"m\",\"dataset\":[]}", "dataset", "dataset must be a string or an object"},
	{"{\"model\":\"m\",\"dataset\":\"\"}", "dataset", "dataset must be a non-empty string"},
	{"{\"model\":\"m\",\"dataset\":\"d\\u0000\"}", "dataset",
	 "dataset must not contain NUL characters"},
	{"{\"model\":\"m\",\"dataset\":\"d\",\"hyperparameters\":\"x\"}", "hyperparameters",
	 "hyperparameters must be an object"},
	{"{\"model\":\"m\",\"dataset\":\"d\",\"hyperparameters\":{\"n_steps\":0}}",
	 "hyperparameters.n_steps",
	 "hyperparameters.n_steps must be an integer between 1 and 100000"},
	{"{\"model\":\"m\",\"dataset\":\"d\",\"hyperparameters\":{\"steps\":100001}}",
	 "hyperparameters.steps", "hyperparameters.steps must be an integer between 1 and 100000"},
	{"{\"model\":\"m\",\"dataset\":\"d\",\"hyperparameters\":{\"steps\":5,\"n_steps\":6}}",
	 "hyperparameters.steps", "hyperparameters.steps must equal hyperparameters.n_steps"},
	{"{\"model\":\"m\",\"dataset\":\"d\",\"hyperparameters\":{\"learning_rate\":0}}",
	 "hyperparameters.learning_rate",
	 "hyperparameters.learning_rate must be a number greater than 0 and at most 1"},
	{"{\"model\":\"m\",\"dataset\":\"d\",\"hyperparameters\":{\"learning_rate\":1.5}}",
	 "hyperparameters.learning_rate", "greater than 0 and at most 1"},
	{"{\"model\":\"m\",\"dataset\":\"d\",\"hyperparameters\":{\"learning_rate\":1e308}}",
	 "hyperparameters.learning_rate", "greater than 0 and at most 1"},
	{"{\"model\":\"m\",\"dataset\":\"d\",\"hyperparameters\":{\"batch_size\":1025}}",
	 "hyperparameters.batch_size",
	 "hyperparameters.batch_size must be an integer between 1 and 1024"},
	{"{\"model\":\"m\",\"dataset\":\"d\",\"hyperparameters\":{\"lora_rank\":257}}",
	 "hyperparameters.lora_rank",
	 "hyperparameters.lora_rank must be an integer between 1 and 256"},
	{"{\"model\":\"m\",\"dataset\":\"d\",\"hyperparameters\":{\"lora_rank\":-1}}",
	 "hyperparameters.lora_rank", "between 1 and 256"},
	{"{\"model\":\"m\",\"dataset\":\"d\",\"suffix\":1}", "suffix", "suffix must be a string"},
};

static void test_train(void **state)
{
	json_t *out = valid(TASK_TRAIN, "{\"model\":\"tiny-llama\",\"dataset\":\"alpaca\"}");

	ASSERT_JSON(out, "{\"model\":\"tiny-llama\",\"dataset\":\"alpaca\",\"hyperparameters\":"
			 "{\"n_steps\":100,\"learning_rate\":0.0001,\"batch_size\":8,"
			 "\"lora_rank\":8}}");
	ASSERT_ABSENT(out, "suffix");
	json_decref(out);
	out = valid(TASK_TRAIN, "{\"model\":\"m\",\"dataset\":{\"rows\":[{\"text\":\"a\"}]},"
				"\"hyperparameters\":{\"steps\":10,\"learning_rate\":1,"
				"\"batch_size\":1024,\"lora_rank\":1,\"extra\":true},"
				"\"suffix\":\"\"}");
	ASSERT_JSON(out, "{\"model\":\"m\",\"dataset\":{\"rows\":[{\"text\":\"a\"}]},"
			 "\"hyperparameters\":{\"n_steps\":10,\"learning_rate\":1.0,"
			 "\"batch_size\":1024,\"lora_rank\":1},\"suffix\":\"\"}");
	json_decref(out);
	out = valid(TASK_TRAIN, "{\"model\":\"m\",\"dataset\":\"d\",\"hyperparameters\":null,"
				"\"suffix\":\"v1\"}");
	ASSERT_INT(json_object_get(out, "hyperparameters"), "n_steps", 100);
	ASSERT_STR(out, "suffix", "v1");
	json_decref(out);
	out = valid(TASK_TRAIN, "{\"model\":\"m\",\"dataset\":\"d\","
				"\"hyperparameters\":{\"steps\":7,\"n_steps\":7}}");
	ASSERT_INT(json_object_get(out, "hyperparameters"), "n_steps", 7);
	json_decref(out);
	RUN_BAD(TASK_TRAIN, train_bad);
	check_long(TASK_TRAIN, "suffix", 64, "{\"model\":\"m\",\"dataset\":\"d\"}",
		   "suffix must be at most 64 characters");
}

/* ---- the output shares nothing with the body ---- */

/* Change every value reachable from j in place (strings, numbers, arrays,
 * objects), so that any value shared with an output would show. */
static void scribble(json_t *j)
{
	const char *key;
	json_t *v;
	size_t i;

	if (json_is_object(j)) {
		json_object_foreach(j, key, v)
			scribble(v);
		json_object_set_new(j, "scribbled", json_true());
	} else if (json_is_array(j)) {
		json_array_foreach(j, i, v)
			scribble(v);
		json_array_append_new(j, json_string("scribbled"));
	} else if (json_is_string(j)) {
		json_string_set(j, "scribbled");
	} else if (json_is_integer(j)) {
		json_integer_set(j, 999);
	} else if (json_is_real(j)) {
		json_real_set(j, 999.5);
	}
}

static void check_no_alias(enum task_kind kind, const char *text)
{
	json_t *body = parse(text);
	json_t *out = valid_json(kind, body, &lim);
	char *before = json_dumps(out, JSON_SORT_KEYS);
	char *after;

	scribble(body);
	json_decref(body);
	after = json_dumps(out, JSON_SORT_KEYS);
	assert_string_equal(before, after);
	free(before);
	free(after);
	json_decref(out);
}

static void test_output_never_aliases_input(void **state)
{
	check_no_alias(TASK_IMAGE_GEN, "{\"prompt\":\"p\",\"negative_prompt\":\"n\",\"seed\":5,"
				       "\"guidance_scale\":2.5,\"size\":\"64x64\"}");
	check_no_alias(TASK_TRANSCRIBE, "{\"file\":\"QQ==\",\"language\":\"fr\",\"prompt\":\"x\","
					"\"temperature\":0.5}");
	check_no_alias(TASK_SPEECH, "{\"text\":\"t\",\"voice\":\"v\",\"speed\":2.5}");
	check_no_alias(TASK_VIDEO_GEN, "{\"prompt\":\"p\",\"negative_prompt\":\"n\"}");
	check_no_alias(TASK_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"c\"},"
				  "{\"role\":\"user\",\"content\":[{\"type\":\"text\","
				  "\"text\":\"t\"}]}],\"stop\":[\"s\"],\"model\":\"m\","
				  "\"seed\":\"18446744073709551615\","
				  "\"stream_options\":{\"include_usage\":false},\"top_p\":0.5}");
	check_no_alias(TASK_COMPLETION, "{\"prompt\":[\"a\",\"b\"],\"stop\":\"s\"}");
	check_no_alias(TASK_TOKENIZE, "{\"prompt\":\"p\",\"model\":\"m\"}");
	check_no_alias(TASK_DETOKENIZE, "{\"tokens\":[1,2,3]}");
	check_no_alias(TASK_EMBED, "{\"input\":[\"a\",\"b\"],\"model\":\"m\"}");
	check_no_alias(TASK_TRAIN, "{\"model\":\"m\",\"dataset\":{\"rows\":[{\"text\":\"a\"}],"
				   "\"n\":1.5},\"hyperparameters\":{\"learning_rate\":0.5},"
				   "\"suffix\":\"s\"}");
}

static void test_body_unchanged_on_success(void **state)
{
	static const struct {
		enum task_kind kind;
		const char *body;
	} cases[] = {
		{TASK_IMAGE_GEN, "{\"prompt\":\"p\",\"n\":2,\"size\":\"64x64\","
				 "\"image_return_format\":"
				 "\"png\",\"model\":\"x\"}"},
		{TASK_SPEECH, "{\"text\":\"t\"}"},
		{TASK_CHAT, "{\"messages\":[{\"role\":\"USER\",\"content\":[{\"type\":\"text\","
			    "\"text\":\"t\"}]}],\"max_completion_tokens\":5,\"stop\":\"x\"}"},
		{TASK_TRAIN, "{\"model\":\"m\",\"dataset\":\"d\","
			     "\"hyperparameters\":{\"steps\":3}}"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_t *body = parse(cases[i].body), *want = parse(cases[i].body);
		json_t *out = valid_json(cases[i].kind, body, &lim);

		assert_true(json_equal(body, want));
		assert_int_equal(body->refcount, 1);
		json_decref(out);
		json_decref(want);
		json_decref(body);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_body_not_object),
		cmocka_unit_test(test_unknown_kind),
		cmocka_unit_test(test_null_limits_mean_defaults),
		cmocka_unit_test(test_limits_default),
		cmocka_unit_test(test_image_defaults),
		cmocka_unit_test(test_image_all_fields),
		cmocka_unit_test(test_image_rules),
		cmocka_unit_test(test_image_aliases),
		cmocka_unit_test(test_image_limits),
		cmocka_unit_test(test_seed),
		cmocka_unit_test(test_transcribe_defaults),
		cmocka_unit_test(test_transcribe_fields),
		cmocka_unit_test(test_transcribe_rules),
		cmocka_unit_test(test_speech_defaults),
		cmocka_unit_test(test_speech_rules),
		cmocka_unit_test(test_speech_voices),
		cmocka_unit_test(test_video_defaults),
		cmocka_unit_test(test_video_rules),
		cmocka_unit_test(test_chat_defaults),
		cmocka_unit_test(test_chat_fields),
		cmocka_unit_test(test_chat_rules),
		cmocka_unit_test(test_completion),
		cmocka_unit_test(test_tokenize),
		cmocka_unit_test(test_detokenize),
		cmocka_unit_test(test_embed),
		cmocka_unit_test(test_train),
		cmocka_unit_test(test_output_never_aliases_input),
		cmocka_unit_test(test_body_unchanged_on_success),
	};

	return cmocka_run_group_tests(tests, setup, NULL);
}
