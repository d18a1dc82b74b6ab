/* fuzz_validate.c: libFuzzer driver for request body validation (src/validate.c).
 *
 * A client's JSON body goes through jansson and then validate_request for
 * the route's task kind. Whatever the body, for every task kind:
 *  - the answer is 0 with a fresh object, or -1 with a 400 / 413 / 422 (a
 *    422 names its field, and the message names it too) and *out untouched;
 *  - the body is not changed, and the output shares no value with it;
 *  - the output serialises (compact, as http.c sends it to the worker) and
 *    reads back equal; no string in it holds a NUL; the normalized shapes
 *    the workers rely on hold (see check_shape);
 *  - the output is a fixed point: validating it again gives it back.
 *
 * Input: byte 0 picks the parse flags (as http.c parses, or with
 * JSON_ALLOW_NUL so "\u0000" reaches the rules) and the limits (defaults, a
 * voice list, tight sizes); the rest is the JSON text.
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -iquote src -D_GNU_SOURCE \
 *     $(pkg-config --cflags jansson) tests/fuzz/fuzz_validate.c src/validate.c \
 *     src/apierr.c src/buf.c src/util.c src/log.c $(pkg-config --libs jansson) -lm \
 *     -o fuzz_validate
 *   ./fuzz_validate -dict=tests/fuzz/validate.dict tests/fuzz/corpus/validate */
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apierr.h"
#include "task.h"
#include "validate.h"
#include "banned.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define CHECK(c)                                                                                   \
	do {                                                                                       \
		if (!(c)) {                                                                        \
			fprintf(stderr, "fuzz_validate: invariant failed: %s (line %d)\n", #c,     \
			        __LINE__);                                                         \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

/* --- the set of json_t nodes of the body (shared-value check) --- */

struct nodes {
	const json_t **p;
	size_t n, cap;
};

static void nodes_add(struct nodes *s, const json_t *j)
{
	const char *k;
	json_t *v;
	size_t i;

	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 64;
		s->p = realloc(s->p, s->cap * sizeof(*s->p));
		CHECK(s->p);
	}
	s->p[s->n++] = j;
	if (json_is_object(j))
		json_object_foreach((json_t *)j, k, v) nodes_add(s, v);
	else if (json_is_array(j))
		json_array_foreach(j, i, v) nodes_add(s, v);
}

static int ptr_cmp(const void *a, const void *b)
{
	uintptr_t x = (uintptr_t)*(const json_t *const *)a, y = (uintptr_t)*(const json_t *const *)b;
	return x < y ? -1 : x > y;
}

/* No node of out is a node of the body (true, false and null are jansson's
 * immutable singletons, shared by everyone); no string in out holds a NUL. */
static void check_fresh(const struct nodes *body, const json_t *out)
{
	const char *k;
	json_t *v;
	size_t i;

	CHECK(json_is_boolean(out) || json_is_null(out) ||
	      !bsearch(&out, body->p, body->n, sizeof(*body->p), ptr_cmp));
	if (json_is_string(out))
		CHECK(!memchr(json_string_value(out), 0, json_string_length(out)));
	if (json_is_object(out))
		json_object_foreach((json_t *)out, k, v) check_fresh(body, v);
	else if (json_is_array(out))
		json_array_foreach(out, i, v) check_fresh(body, v);
}

/* --- normalized shapes --- */

static json_int_t int_field(const json_t *o, const char *key, json_int_t lo, json_int_t hi)
{
	json_t *j = json_object_get(o, key);

	CHECK(json_is_integer(j));
	CHECK(json_integer_value(j) >= lo && json_integer_value(j) <= hi);
	return json_integer_value(j);
}

static void str_field(const json_t *o, const char *key, int nonempty)
{
	json_t *j = json_object_get(o, key);

	CHECK(json_is_string(j));
	CHECK(!nonempty || json_string_length(j) > 0);
}

static void str_array(const json_t *o, const char *key, size_t min, size_t max)
{
	json_t *a = json_object_get(o, key), *v;
	size_t i;

	CHECK(json_is_array(a));
	CHECK(json_array_size(a) >= min && (!max || json_array_size(a) <= max));
	json_array_foreach(a, i, v) CHECK(json_is_string(v));
}

static void check_dims(const json_t *out, const struct validate_limits *lim)
{
	json_int_t mult = lim->image_size_multiple > 1 ? lim->image_size_multiple : 1;
	json_int_t w = int_field(out, "width", lim->image_min_size, lim->image_max_size);
	json_int_t h = int_field(out, "height", lim->image_min_size, lim->image_max_size);

	CHECK(w % mult == 0 && h % mult == 0);
}

static void check_sampling(const json_t *out, const struct validate_limits *lim)
{
	int_field(out, "max_tokens", 1, lim->llm_max_tokens > 1 ? lim->llm_max_tokens : 1);
	CHECK(json_is_number(json_object_get(out, "temperature")));
	CHECK(json_is_number(json_object_get(out, "top_p")));
	str_array(out, "stop", 0, 4);
	CHECK(json_is_boolean(json_object_get(out, "stream")));
}

static void check_shape(enum task_kind kind, const json_t *out,
			const struct validate_limits *lim)
{
	uint64_t seed;
	json_t *j, *v;
	size_t i;

	CHECK(validate_params_seed(out, &seed) == (json_object_get(out, "seed") != NULL));
	switch (kind) {
	case TASK_IMAGE_GEN:
		str_field(out, "prompt", 1);
		int_field(out, "num_inference_steps", 4, 50);
		int_field(out, "number_of_images", 1, 4);
		int_field(out, "image_quality", 50, 100);
		check_dims(out, lim);
		break;
	case TASK_TRANSCRIBE:
	case TASK_TRANSLATE:
		str_field(out, "file", 1);
		str_field(out, "response_format", 1);
		break;
	case TASK_SPEECH:
		str_field(out, "input", 1);
		str_field(out, "voice", 1);
		str_field(out, "response_format", 1);
		break;
	case TASK_VIDEO_GEN:
		str_field(out, "prompt", 1);
		int_field(out, "num_frames", 1, lim->video_max_frames > 1 ? lim->video_max_frames : 1);
		int_field(out, "fps", 1, 60);
		check_dims(out, lim);
		break;
	case TASK_CHAT:
		j = json_object_get(out, "messages");
		CHECK(json_is_array(j) && json_array_size(j) > 0);
		json_array_foreach(j, i, v) {
			CHECK(json_is_object(v) && json_object_size(v) == 2);
			str_field(v, "role", 1);
			str_field(v, "content", 0);
		}
		check_sampling(out, lim);
		break;
	case TASK_COMPLETION:
		str_array(out, "prompt", 1, 0);
		check_sampling(out, lim);
		break;
	case TASK_TOKENIZE:
		CHECK(json_is_string(json_object_get(out, "prompt")) ||
		      json_is_array(json_object_get(out, "messages")));
		break;
	case TASK_DETOKENIZE:
		j = json_object_get(out, "tokens");
		CHECK(json_is_array(j));
		json_array_foreach(j, i, v)
			CHECK(json_is_integer(v) && json_integer_value(v) >= 0 &&
			      json_integer_value(v) <= INT32_MAX);
		break;
	case TASK_EMBED:
		str_array(out, "input", 1, 2048);
		break;
	case TASK_TRAIN:
		str_field(out, "model", 1);
		j = json_object_get(out, "dataset");
		CHECK(json_is_string(j) || json_is_object(j));
		j = json_object_get(out, "hyperparameters");
		CHECK(json_is_object(j));
		int_field(j, "n_steps", 1, 100000);
		int_field(j, "batch_size", 1, 1024);
		break;
	default:
		CHECK(0);
	}
}

/* --- the driver --- */

static const char *const voices[] = {"alice", "Bob", "kal16", NULL};
static struct validate_limits limits[3];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	validate_limits_default(&limits[0]);
	validate_limits_default(&limits[1]);
	limits[1].voices = voices;
	limits[1].default_voice = "Bob";
	validate_limits_default(&limits[2]);
	limits[2].image_min_size = 32;
	limits[2].image_max_size = 96;
	limits[2].image_size_multiple = 32;
	limits[2].image_default_size = 64;
	limits[2].video_max_frames = 1;
	limits[2].llm_max_tokens = 0;
	return 0;
}

static void check_error(const struct api_error *err)
{
	size_t mlen = strnlen(err->message, sizeof(err->message));
	size_t plen = strnlen(err->param, sizeof(err->param));

	CHECK(mlen > 0 && mlen < sizeof(err->message));
	CHECK(plen < sizeof(err->param));
	CHECK(err->code == AE_BAD_REQUEST || err->code == AE_INVALID_FIELD ||
	      err->code == AE_TOO_LARGE);
	if (err->code == AE_INVALID_FIELD) {
		CHECK(plen > 0);
		/* the message starts with the field's name (both may be cut short) */
		CHECK(!strncmp(err->message, err->param, plen < mlen ? plen : mlen));
	}
	CHECK(api_err_status(err->code) >= 400 && api_err_status(err->code) < 500);
}

static void check_kind(enum task_kind kind, json_t *body, const struct nodes *nodes,
		       const char *before, const struct validate_limits *lim)
{
	json_t *sentinel = (json_t *)(uintptr_t)0x1;
	json_t *out = sentinel, *again = sentinel, *back;
	struct api_error err;
	char *text, *after;
	int r;

	memset(&err, 0, sizeof(err));
	r = validate_request(kind, body, lim, &out, &err);
	CHECK(r == 0 || r == -1);
	after = json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY | JSON_SORT_KEYS);
	CHECK(after && !strcmp(before, after)); /* the body is unchanged */
	free(after);
	if (r < 0) {
		CHECK(out == sentinel);
		check_error(&err);
		if (!json_is_object(body))
			CHECK(err.code == AE_BAD_REQUEST);
		return;
	}
	CHECK(json_is_object(body));
	CHECK(out != sentinel && json_is_object(out) && out->refcount == 1);
	check_fresh(nodes, out);
	check_shape(kind, out, lim);

	/* serialises as http.c sends it, and reads back as the worker reads it */
	text = json_dumps(out, JSON_COMPACT);
	CHECK(text);
	back = json_loads(text, 0, NULL);
	CHECK(back && json_equal(back, out));
	json_decref(back);
	free(text);

	/* a normalized body is valid and normalizes to itself */
	memset(&err, 0, sizeof(err));
	r = validate_request(kind, out, lim, &again, &err);
	if (r) {
		fprintf(stderr, "fuzz_validate: normalized body of task kind %d refused: %s\n",
			(int)kind, err.message);
		CHECK(0);
	}
	CHECK(json_equal(again, out));
	json_decref(again);
	json_decref(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct validate_limits *lim;
	struct nodes nodes = {0};
	struct api_error err;
	json_t *body, *out = NULL;
	size_t flags;
	char *before;

	if (size < 1)
		return 0;
	flags = JSON_DECODE_ANY | JSON_REJECT_DUPLICATES | ((data[0] & 1) ? JSON_ALLOW_NUL : 0);
	lim = &limits[(data[0] >> 1) % 3];
	body = json_loadb((const char *)data + 1, size - 1, flags, NULL);
	if (!body)
		return 0;
	nodes_add(&nodes, body);
	qsort(nodes.p, nodes.n, sizeof(*nodes.p), ptr_cmp);
	before = json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY | JSON_SORT_KEYS);
	CHECK(before);

	for (int k = TASK_NONE + 1; k < TASK_KIND_COUNT; k++)
		check_kind((enum task_kind)k, body, &nodes, before, lim);
	/* no rules: an internal error, never a crash */
	CHECK(validate_request(TASK_NONE, body, lim, &out, &err) == -1 && !out);
	CHECK(err.code == AE_INTERNAL);
	CHECK(validate_request(TASK_KIND_COUNT, body, NULL, &out, &err) == -1 && !out);

	free(before);
	free(nodes.p);
	json_decref(body);
	return 0;
}
