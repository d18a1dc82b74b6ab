/* validate.c: the request body rules of API.md, one rule function per task kind.
 *
 * Each rule function reads fields from the client's body and writes the
 * normalized parameters into a fresh object: defaults filled in, aliases
 * resolved, every string copied (the output never shares a value with the
 * body). The first field that breaks a rule stops validation with a 422 that
 * names the field (err->param) and the rule ("width must be a multiple of 16
 * between 64 and 1024"). Conventions shared by every kind:
 *
 *  - a field whose value is JSON null counts as absent (clients send nulls
 *    for unset optional fields);
 *  - unknown fields are ignored (OpenAI clients send extras such as "user");
 *  - integers may be JSON integers or integral reals (20.0); numbers may be
 *    either; booleans must be JSON booleans;
 *  - strings must not contain NUL (jansson can hold one) and have a length
 *    cap counted in characters (UTF-8 code points);
 *  - enum values match case-insensitively and come out in their canonical
 *    spelling ("png" -> "PNG");
 *  - nested fields are named by their path: "messages[2].role",
 *    "hyperparameters.batch_size".
 *
 * Normalized shapes the workers read: a seed is present only when the client
 * gave one (validate_params_seed reads it); chat messages become
 * [{"role","content":string}]; completion prompts, embedding inputs and chat
 * stop sequences always become arrays of strings. */
#include "validate.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "util.h"

#define MEDIA_TEXT_MAX 10000        /* prompts of image, video and audio requests */
#define LLM_TEXT_MAX (1024 * 1024)  /* one string of a text or embedding request */
#define SPEECH_TEXT_MAX 4096
#define ID_MAX 256                  /* model ids, voice names */
#define LANGUAGE_MAX 32
#define STOP_MAX_ITEMS 4
#define STOP_TEXT_MAX 256
#define EMBED_MAX_ITEMS 2048
#define DATASET_NAME_MAX 4096
#define SUFFIX_MAX 64
#define AUDIO_MAX_BYTES (50 * 1024 * 1024)
#define AUDIO_MAX_B64 (4 * ((AUDIO_MAX_BYTES + 2) / 3))
#define VIDEO_DEFAULT_SIZE 256
#define TOKEN_ID_MAX INT32_MAX

/* Where fields are read from while checking one object of the body. */
struct vin {
	const json_t *obj;   /* may be NULL: every field is then absent */
	const char *prefix;  /* "" or the path of obj with a trailing '.' */
	const struct validate_limits *lim;
	struct api_error *err;
};

enum range_kind { RANGE_CLOSED, RANGE_OPEN_LO };

static const char *const image_formats[] = {"JPEG", "PNG", NULL};
static const char *const image_response_formats[] = {"b64_json", NULL};
static const char *const stt_formats[] = {"json", "verbose_json", "text", NULL};
static const char *const tts_formats[] = {"wav", "flac", "ogg", "mp3", "pcm", "json", NULL};
static const char *const message_roles[] = {"system", "user", "assistant", "tool", "developer",
					     NULL};
static const char *const embed_formats[] = {"float", "base64", NULL};

void validate_limits_default(struct validate_limits *lim)
{
	lim->image_min_size = 64;
	lim->image_max_size = 1024;
	lim->image_size_multiple = 16;
	lim->image_default_size = 512;
	lim->video_max_frames = 64;
	lim->llm_max_tokens = 4096;
	lim->voices = NULL;
	lim->default_voice = NULL;
}

/* Fill v->err with a 422 for field key of v: "<prefix><key> <rule>". */
static int fail(const struct vin *v, const char *key, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail(const struct vin *v, const char *key, const char *fmt, ...)
{
	char name[sizeof(v->err->param)];
	char rule[sizeof(v->err->message)];
	va_list ap;

	snprintf(name, sizeof(name), "%s%s", v->prefix, key);
	va_start(ap, fmt);
	vsnprintf(rule, sizeof(rule), fmt, ap);
	va_end(ap);
	return api_error_set(v->err, AE_INVALID_FIELD, name, "%s %s", name, rule);
}

/* The value of field key, or NULL when it is absent or null. */
static json_t *field(const struct vin *v, const char *key)
{
	json_t *j = json_object_get(v->obj, key);

	return json_is_null(j) ? NULL : j;
}

/* Characters (UTF-8 code points) of s[0..n), counting no further than stop + 1. */
static size_t utf8_chars(const char *s, size_t n, size_t stop)
{
	size_t chars = 0;

	for (size_t i = 0; i < n && chars <= stop; i++)
		if (((unsigned char)s[i] & 0xC0) != 0x80)
			chars++;
	return chars;
}

/* A new string with the same bytes as the string j (never shared with j). */
static json_t *str_copy(const json_t *j)
{
	return json_stringn(json_string_value(j), json_string_length(j));
}

/* j is a string equal to lit, byte for byte (a NUL inside j never matches). */
static int str_is(const json_t *j, const char *lit)
{
	size_t n = strlen(lit);

	return json_is_string(j) && json_string_length(j) == n &&
	       !memcmp(json_string_value(j), lit, n);
}

/* An integer, or a real with an integral value in int64 range: 0 and *val. */
static int int_value(const json_t *j, int64_t *val)
{
	double d;

	if (json_is_integer(j)) {
		*val = json_integer_value(j);
		return 0;
	}
	if (!json_is_real(j))
		return -1;
	d = json_real_value(j);
	if (!isfinite(d) || d != floor(d) || d < -9.2e18 || d > 9.2e18)
		return -1;
	*val = (int64_t)d;
	return 0;
}

/* s[0..n) as 1 to 20 decimal digits that fit a uint64: 0 and *val. */
static int parse_u64_digits(const char *s, size_t n, uint64_t *val)
{
	uint64_t x = 0;

	if (n == 0 || n > 20)
		return -1;
	for (size_t i = 0; i < n; i++) {
		unsigned d = (unsigned)(s[i] - '0');

		if (d > 9 || x > (UINT64_MAX - d) / 10)
			return -1;
		x = x * 10 + d;
	}
	*val = x;
	return 0;
}

/* Check the present field name (value j): a string without NUL, non-empty
 * when nonempty is set, of at most max_chars characters (0 = no cap). */
static int check_str(const struct vin *v, const char *name, const json_t *j, size_t max_chars,
		     int nonempty)
{
	const char *s;
	size_t n;

	if (!json_is_string(j))
		return fail(v, name, "must be a %sstring", nonempty ? "non-empty " : "");
	s = json_string_value(j);
	n = json_string_length(j);
	if (memchr(s, 0, n))
		return fail(v, name, "must not contain NUL characters");
	if (nonempty && !n)
		return fail(v, name, "must be a non-empty string");
	if (max_chars && utf8_chars(s, n, max_chars) > max_chars)
		return fail(v, name, "must be at most %zu characters", max_chars);
	return 0;
}

/* The look_* functions return 1 and the value when the field is present and
 * valid, 0 when it is absent, -1 (err filled) when it breaks the rule. */

static int look_str(const struct vin *v, const char *key, size_t max_chars, int nonempty,
		    json_t **val)
{
	json_t *j = field(v, key);

	if (!j)
		return 0;
	if (check_str(v, key, j, max_chars, nonempty))
		return -1;
	*val = j;
	return 1;
}

/* An integer in [lo, hi] that is a multiple of mult (1 = any). */
static int look_int(const struct vin *v, const char *key, int64_t lo, int64_t hi, int64_t mult,
		    int64_t *val)
{
	json_t *j = field(v, key);
	int64_t x;

	if (!j)
		return 0;
	if (!int_value(j, &x) && x >= lo && x <= hi && x % mult == 0) {
		*val = x;
		return 1;
	}
	if (mult > 1)
		return fail(v, key,
			    "must be a multiple of %" PRId64 " between %" PRId64 " and %" PRId64,
			    mult, lo, hi);
	return fail(v, key, "must be an integer between %" PRId64 " and %" PRId64, lo, hi);
}

/* A number in [lo, hi], or in (lo, hi] for RANGE_OPEN_LO. */
static int look_num(const struct vin *v, const char *key, double lo, double hi,
		    enum range_kind range, double *val)
{
	json_t *j = field(v, key);
	double x;

	if (!j)
		return 0;
	x = json_number_value(j);
	if (json_is_number(j) && isfinite(x) && x <= hi &&
	    (range == RANGE_OPEN_LO ? x > lo : x >= lo)) {
		*val = x;
		return 1;
	}
	if (range == RANGE_OPEN_LO)
		return fail(v, key, "must be a number greater than %g and at most %g", lo, hi);
	return fail(v, key, "must be a number between %g and %g", lo, hi);
}

static int look_bool(const struct vin *v, const char *key, int *val)
{
	json_t *j = field(v, key);

	if (!j)
		return 0;
	if (!json_is_boolean(j))
		return fail(v, key, "must be a boolean (true or false)");
	*val = json_is_true(j);
	return 1;
}

/* One of the NULL-terminated names, any case; *val is the canonical spelling. */
static int look_enum(const struct vin *v, const char *key, const char *const *names,
		     const char **val)
{
	json_t *j = field(v, key);
	struct buf list;
	int r;

	if (!j)
		return 0;
	if (json_is_string(j) && memchr(json_string_value(j), 0, json_string_length(j)))
		return fail(v, key, "must not contain NUL characters");
	if (json_is_string(j)) {
		for (size_t i = 0; names[i]; i++) {
			if (!strcasecmp(json_string_value(j), names[i])) {
				*val = names[i];
				return 1;
			}
		}
	}
	buf_init(&list, sizeof(v->err->message) / 2);
	for (size_t i = 0; names[i]; i++)
		buf_printf(&list, "%s%s", i ? ", " : "", names[i]);
	r = fail(v, key, "must be %s%s", names[0] && names[1] ? "one of " : "",
		 list.data ? list.data : "");
	buf_release(&list);
	return r;
}

/* A uint64 seed: a non-negative integer (or integral real), or its digits as
 * a string. */
static int look_seed(const struct vin *v, const char *key, uint64_t *val)
{
	json_t *j = field(v, key);
	int64_t i;
	double d;

	if (!j)
		return 0;
	if (json_is_integer(j) && (i = json_integer_value(j)) >= 0) {
		*val = (uint64_t)i;
		return 1;
	}
	if (json_is_real(j)) {
		d = json_real_value(j);
		if (isfinite(d) && d == floor(d) && d >= 0 && d < 18446744073709551616.0) {
			*val = (uint64_t)d;
			return 1;
		}
	}
	if (json_is_string(j) &&
	    !parse_u64_digits(json_string_value(j), json_string_length(j), val))
		return 1;
	return fail(v, key, "must be an integer between 0 and %" PRIu64, UINT64_MAX);
}

/* Two names for one integer: when both are given they must agree (else the
 * alias is at fault). */
static int look_int_alias(const struct vin *v, const char *key, const char *alias, int64_t lo,
			  int64_t hi, int64_t *val)
{
	int64_t a = 0, b = 0;
	int ra, rb;

	ra = look_int(v, key, lo, hi, 1, &a);
	if (ra < 0)
		return -1;
	rb = look_int(v, alias, lo, hi, 1, &b);
	if (rb < 0)
		return -1;
	if (ra && rb && a != b)
		return fail(v, alias, "must equal %s%s when both are given", v->prefix, key);
	if (ra || rb)
		*val = ra ? a : b;
	return ra || rb;
}

/* The put_* functions write the field (or its default) into out: 0 / -1. */

static int put_str(const struct vin *v, json_t *out, const char *key, size_t max_chars,
		   int nonempty, const char *def)
{
	json_t *j = NULL;
	int r = look_str(v, key, max_chars, nonempty, &j);

	if (r < 0)
		return -1;
	if (r)
		json_object_set_new(out, key, str_copy(j));
	else if (def)
		json_object_set_new(out, key, json_string(def));
	return 0;
}

static int put_required_str(const struct vin *v, json_t *out, const char *key, size_t max_chars)
{
	json_t *j = NULL;
	int r = look_str(v, key, max_chars, 1, &j);

	if (r < 0)
		return -1;
	if (!r)
		return fail(v, key, "is required");
	json_object_set_new(out, key, str_copy(j));
	return 0;
}

static int put_int(const struct vin *v, json_t *out, const char *key, int64_t lo, int64_t hi,
		   int64_t def)
{
	int64_t x = def;
	int r = look_int(v, key, lo, hi, 1, &x);

	if (r < 0)
		return -1;
	json_object_set_new(out, key, json_integer(x));
	return 0;
}

static int put_int_alias(const struct vin *v, json_t *out, const char *key, const char *alias,
			 int64_t lo, int64_t hi, int64_t def)
{
	int64_t x = def;
	int r = look_int_alias(v, key, alias, lo, hi, &x);

	if (r < 0)
		return -1;
	json_object_set_new(out, key, json_integer(x));
	return 0;
}

/* def NAN: no default, the field stays absent when the client gives none. */
static int put_num(const struct vin *v, json_t *out, const char *key, double lo, double hi,
		   enum range_kind range, double def)
{
	double x = def;
	int r = look_num(v, key, lo, hi, range, &x);

	if (r < 0)
		return -1;
	if (r || !isnan(def))
		json_object_set_new(out, key, json_real(x));
	return 0;
}

static int put_bool(const struct vin *v, json_t *out, const char *key, int def)
{
	int x = def;
	int r = look_bool(v, key, &x);

	if (r < 0)
		return -1;
	json_object_set_new(out, key, json_boolean(x));
	return 0;
}

static int put_enum(const struct vin *v, json_t *out, const char *key, const char *const *names,
		    const char *def)
{
	const char *x = def;
	int r = look_enum(v, key, names, &x);

	if (r < 0)
		return -1;
	json_object_set_new(out, key, json_string(x));
	return 0;
}

/* jansson integers are int64: a seed above INT64_MAX is kept as its digits. */
static json_t *seed_json(uint64_t seed)
{
	char digits[24];

	if (seed <= INT64_MAX)
		return json_integer((json_int_t)seed);
	snprintf(digits, sizeof(digits), "%" PRIu64, seed);
	return json_string(digits);
}

int validate_params_seed(const json_t *params, uint64_t *seed)
{
	json_t *j = json_object_get(params, "seed");

	if (json_is_integer(j) && json_integer_value(j) >= 0) {
		*seed = (uint64_t)json_integer_value(j);
		return 1;
	}
	if (json_is_string(j))
		return !parse_u64_digits(json_string_value(j), json_string_length(j), seed);
	return 0;
}

/* Optional: absent stays absent, the worker picks a seed and reports it. */
static int put_seed(const struct vin *v, json_t *out)
{
	uint64_t seed = 0;
	int r = look_seed(v, "seed", &seed);

	if (r < 0)
		return -1;
	if (r)
		json_object_set_new(out, "seed", seed_json(seed));
	return 0;
}

/* "WxH" with 1 to 5 digits on each side: 0 and the sizes. */
static int parse_size(const char *s, size_t n, int64_t *w, int64_t *h)
{
	int64_t *dst = w;
	size_t digits = 0;

	*w = *h = 0;
	for (size_t i = 0; i < n; i++) {
		if ((s[i] == 'x' || s[i] == 'X') && dst == w && digits) {
			dst = h;
			digits = 0;
		} else if (s[i] >= '0' && s[i] <= '9' && digits < 5) {
			*dst = *dst * 10 + (s[i] - '0');
			digits++;
		} else {
			return -1;
		}
	}
	return dst == h && digits ? 0 : -1;
}

/* width and height (multiples of the runner's patch size within its bounds),
 * or size "WxH" as the OpenAI spelling; def when neither is given. */
static int put_dims(const struct vin *v, json_t *out, int64_t def)
{
	const struct validate_limits *lim = v->lim;
	int64_t lo = lim->image_min_size, hi = lim->image_max_size;
	int64_t mult = MAX(lim->image_size_multiple, 1);
	int64_t w = def, h = def, sw, sh;
	json_t *size;
	int rw, rh;

	rw = look_int(v, "width", lo, hi, mult, &w);
	if (rw < 0)
		return -1;
	rh = look_int(v, "height", lo, hi, mult, &h);
	if (rh < 0)
		return -1;
	size = field(v, "size");
	if (size) {
		if (!json_is_string(size) ||
		    parse_size(json_string_value(size), json_string_length(size), &sw, &sh))
			return fail(v, "size", "must be of the form WIDTHxHEIGHT");
		if (sw < lo || sw > hi || sw % mult || sh < lo || sh > hi || sh % mult)
			return fail(v, "size", "must be of the form WIDTHxHEIGHT with both "
				    "multiples of %" PRId64 " between %" PRId64 " and %" PRId64,
				    mult, lo, hi);
		if ((rw && w != sw) || (rh && h != sh))
			return fail(v, "size",
				    "must agree with width and height when both are given");
		w = sw;
		h = sh;
	}
	json_object_set_new(out, "width", json_integer(w));
	json_object_set_new(out, "height", json_integer(h));
	return 0;
}

/* A string, or an array of strings, as an array of copies. min_items and
 * max_items (0 = no cap) bound the array; nonempty applies to every string. */
static int look_str_list(const struct vin *v, const char *key, size_t min_items,
			 size_t max_items, int nonempty, size_t max_chars, json_t **val)
{
	json_t *j = field(v, key), *list, *item;
	char name[48];
	size_t i;

	if (!j)
		return 0;
	if (json_is_string(j)) {
		if (check_str(v, key, j, max_chars, nonempty))
			return -1;
		*val = json_array();
		json_array_append_new(*val, str_copy(j));
		return 1;
	}
	if (!json_is_array(j) || json_array_size(j) < min_items ||
	    (max_items && json_array_size(j) > max_items)) {
		if (max_items)
			return fail(v, key, "must be a string or %s array of at most %zu strings",
				    min_items ? "a non-empty" : "an", max_items);
		return fail(v, key, "must be a string or %s array of strings",
			    min_items ? "a non-empty" : "an");
	}
	list = json_array();
	json_array_foreach(j, i, item) {
		snprintf(name, sizeof(name), "%s[%zu]", key, i);
		if (check_str(v, name, item, max_chars, nonempty)) {
			json_decref(list);
			return -1;
		}
		json_array_append_new(list, str_copy(item));
	}
	*val = list;
	return 1;
}

/* The content of one chat message as a string: a string as is, an array of
 * {"type":"text","text":...} parts joined with newlines. */
static json_t *message_content(const struct vin *mv, const char *role)
{
	json_t *c = field(mv, "content"), *part, *res;
	struct buf text;
	char prefix[96];
	size_t i;

	if (!c) {
		if (!strcmp(role, "assistant")) /* a reply that only called tools */
			return json_string("");
		fail(mv, "content", "is required");
		return NULL;
	}
	if (json_is_string(c))
		return check_str(mv, "content", c, LLM_TEXT_MAX, 0) ? NULL : str_copy(c);
	if (!json_is_array(c)) {
		fail(mv, "content", "must be a string or an array of text parts");
		return NULL;
	}
	buf_init(&text, BUF_UNLIMITED);
	json_array_foreach(c, i, part) {
		struct vin pv = *mv;
		json_t *t;

		snprintf(prefix, sizeof(prefix), "%scontent[%zu].", mv->prefix, i);
		pv.obj = part;
		pv.prefix = prefix;
		if (!json_is_object(part)) {
			fail(mv, "content", "must be a string or an array of text parts");
			goto fail;
		}
		if (!str_is(field(&pv, "type"), "text")) {
			fail(&pv, "type", "must be text (only text parts are supported)");
			goto fail;
		}
		t = field(&pv, "text");
		if (!t) {
			fail(&pv, "text", "is required");
			goto fail;
		}
		if (check_str(&pv, "text", t, LLM_TEXT_MAX, 0))
			goto fail;
		if (i)
			buf_append(&text, "\n", 1);
		buf_append(&text, json_string_value(t), json_string_length(t));
	}
	res = json_stringn(text.data ? text.data : "", text.len);
	buf_release(&text);
	return res;
fail:
	buf_release(&text);
	return NULL;
}

static json_t *message_normalize(const struct vin *v, size_t i, const json_t *m)
{
	struct vin mv = *v;
	char prefix[48];
	const char *role;
	json_t *content, *res;
	int r;

	if (!json_is_object(m)) {
		snprintf(prefix, sizeof(prefix), "messages[%zu]", i);
		fail(v, prefix, "must be an object with role and content");
		return NULL;
	}
	snprintf(prefix, sizeof(prefix), "messages[%zu].", i);
	mv.obj = m;
	mv.prefix = prefix;
	r = look_enum(&mv, "role", message_roles, &role);
	if (r <= 0) {
		if (!r)
			fail(&mv, "role", "is required");
		return NULL;
	}
	content = message_content(&mv, role);
	if (!content)
		return NULL;
	res = json_object();
	json_object_set_new(res, "role", json_string(role));
	json_object_set_new(res, "content", content);
	return res;
}

static int put_messages(const struct vin *v, json_t *out)
{
	json_t *msgs = field(v, "messages"), *list, *m;
	size_t i;

	if (!msgs)
		return fail(v, "messages", "is required");
	if (!json_is_array(msgs) || !json_array_size(msgs))
		return fail(v, "messages", "must be a non-empty array of message objects");
	list = json_array();
	json_array_foreach(msgs, i, m) {
		json_t *nm = message_normalize(v, i, m);

		if (!nm) {
			json_decref(list);
			return -1;
		}
		json_array_append_new(list, nm);
	}
	json_object_set_new(out, "messages", list);
	return 0;
}

static int put_stream_options(const struct vin *v, json_t *out)
{
	json_t *so = field(v, "stream_options"), *opts;
	struct vin sv = *v;
	int usage, r;

	if (!so)
		return 0;
	if (!json_is_object(so))
		return fail(v, "stream_options", "must be an object");
	sv.obj = so;
	sv.prefix = "stream_options.";
	r = look_bool(&sv, "include_usage", &usage);
	if (r < 0)
		return -1;
	opts = json_object();
	if (r)
		json_object_set_new(opts, "include_usage", json_boolean(usage));
	json_object_set_new(out, "stream_options", opts);
	return 0;
}

/* The sampling fields shared by chat and text completions. */
static int put_sampling(const struct vin *v, json_t *out)
{
	int64_t max_tokens = MAX(v->lim->llm_max_tokens, 1);
	json_t *stop = NULL, *n = field(v, "n");
	int64_t n_val;
	int r;

	if (put_int_alias(v, out, "max_tokens", "max_completion_tokens", 1, max_tokens,
			  MIN(256, max_tokens)) ||
	    put_num(v, out, "temperature", 0, 2, RANGE_CLOSED, 1.0) ||
	    put_num(v, out, "top_p", 0, 1, RANGE_OPEN_LO, 1.0) ||
	    put_seed(v, out))
		return -1;
	r = look_str_list(v, "stop", 0, STOP_MAX_ITEMS, 1, STOP_TEXT_MAX, &stop);
	if (r < 0)
		return -1;
	json_object_set_new(out, "stop", r ? stop : json_array());
	if (put_bool(v, out, "stream", 0) || put_stream_options(v, out) ||
	    put_str(v, out, "model", ID_MAX, 1, NULL))
		return -1;
	if (n && (int_value(n, &n_val) || n_val != 1))
		return fail(v, "n", "must be 1 (one choice per request is supported)");
	return 0;
}

static int rules_image(const struct vin *v, json_t *out)
{
	if (put_required_str(v, out, "prompt", MEDIA_TEXT_MAX) ||
	    put_str(v, out, "negative_prompt", MEDIA_TEXT_MAX, 0, "") ||
	    put_int(v, out, "num_inference_steps", 4, 50, 20) ||
	    put_seed(v, out) ||
	    put_int_alias(v, out, "number_of_images", "n", 1, 4, 1) ||
	    put_enum(v, out, "image_return_format", image_formats, "JPEG") ||
	    put_int(v, out, "image_quality", 50, 100, 85) ||
	    put_num(v, out, "guidance_scale", 1, 20, RANGE_CLOSED, 5.0) ||
	    put_dims(v, out, v->lim->image_default_size) ||
	    put_enum(v, out, "response_format", image_response_formats, "b64_json"))
		return -1;
	return 0;
}

/* file: base64 text of the audio (standard alphabet, padding optional),
 * checked but not decoded here. */
static int put_audio_file(const struct vin *v, json_t *out)
{
	json_t *j = field(v, "file");
	const char *s;
	size_t n, pad = 0;

	if (!j)
		return fail(v, "file", "is required");
	if (!json_is_string(j))
		return fail(v, "file", "must be a non-empty base64 string");
	s = json_string_value(j);
	n = json_string_length(j);
	if (memchr(s, 0, n))
		return fail(v, "file", "must not contain NUL characters");
	if (n > AUDIO_MAX_B64)
		return api_error_set(v->err, AE_TOO_LARGE, "file",
				     "file must be at most %d MiB of audio", AUDIO_MAX_BYTES >> 20);
	while (n && s[n - 1] == '=' && pad < 2) {
		n--;
		pad++;
	}
	if (!n || n % 4 == 1 || (pad && (n + pad) % 4))
		return fail(v, "file", "must be a non-empty base64 string");
	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '+' || c == '/'))
			return fail(v, "file", "must be a non-empty base64 string");
	}
	json_object_set_new(out, "file", str_copy(j));
	return 0;
}

static int rules_transcribe(const struct vin *v, json_t *out)
{
	if (put_audio_file(v, out) ||
	    put_enum(v, out, "response_format", stt_formats, "json") ||
	    put_bool(v, out, "stream", 0) ||
	    put_str(v, out, "language", LANGUAGE_MAX, 1, "en") ||
	    put_str(v, out, "prompt", MEDIA_TEXT_MAX, 0, "") ||
	    put_num(v, out, "temperature", 0, 1, RANGE_CLOSED, NAN))
		return -1;
	return 0;
}

static int rules_speech(const struct vin *v, json_t *out)
{
	const struct validate_limits *lim = v->lim;
	const char *voice = lim->default_voice;
	json_t *input = NULL, *text = NULL;
	int ri, rt;

	ri = look_str(v, "input", SPEECH_TEXT_MAX, 1, &input);
	if (ri < 0)
		return -1;
	rt = look_str(v, "text", SPEECH_TEXT_MAX, 1, &text);
	if (rt < 0)
		return -1;
	if (!ri && !rt)
		return fail(v, "input", "is required");
	if (ri && rt && !json_equal(input, text))
		return fail(v, "text", "must equal input when both are given");
	json_object_set_new(out, "input", str_copy(ri ? input : text));
	if (!voice)
		voice = lim->voices && lim->voices[0] ? lim->voices[0] : "default";
	if (lim->voices ? put_enum(v, out, "voice", lim->voices, voice)
			: put_str(v, out, "voice", ID_MAX, 1, voice))
		return -1;
	if (put_enum(v, out, "response_format", tts_formats, "wav") ||
	    put_num(v, out, "speed", 0.25, 4.0, RANGE_CLOSED, 1.0) ||
	    put_bool(v, out, "stream", 0))
		return -1;
	return 0;
}

static int rules_video(const struct vin *v, json_t *out)
{
	const struct validate_limits *lim = v->lim;
	int64_t max_frames = MAX(lim->video_max_frames, 1);
	int64_t size = MIN(MAX(VIDEO_DEFAULT_SIZE, lim->image_min_size), lim->image_max_size);

	if (put_required_str(v, out, "prompt", MEDIA_TEXT_MAX) ||
	    put_str(v, out, "negative_prompt", MEDIA_TEXT_MAX, 0, "") ||
	    put_int(v, out, "num_inference_steps", 4, 50, 20) ||
	    put_seed(v, out) ||
	    put_int(v, out, "num_frames", 1, max_frames, MIN(16, max_frames)) ||
	    put_dims(v, out, size) ||
	    put_int(v, out, "fps", 1, 60, 8))
		return -1;
	return 0;
}

static int rules_chat(const struct vin *v, json_t *out)
{
	return put_messages(v, out) || put_sampling(v, out) ? -1 : 0;
}

static int rules_completion(const struct vin *v, json_t *out)
{
	json_t *prompt = NULL;
	int r = look_str_list(v, "prompt", 1, 0, 0, LLM_TEXT_MAX, &prompt);

	if (r < 0)
		return -1;
	if (!r)
		return fail(v, "prompt", "is required");
	json_object_set_new(out, "prompt", prompt);
	return put_sampling(v, out);
}

static int rules_tokenize(const struct vin *v, json_t *out)
{
	json_t *prompt = NULL;
	int r = look_str(v, "prompt", LLM_TEXT_MAX, 0, &prompt);

	if (r < 0)
		return -1;
	if (r && field(v, "messages"))
		return fail(v, "messages", "must not be given together with prompt");
	if (r)
		json_object_set_new(out, "prompt", str_copy(prompt));
	else if (!field(v, "messages"))
		return fail(v, "prompt", "is required (or messages)");
	else if (put_messages(v, out))
		return -1;
	return put_str(v, out, "model", ID_MAX, 1, NULL);
}

static int rules_detokenize(const struct vin *v, json_t *out)
{
	json_t *tokens = field(v, "tokens"), *list, *t;
	char name[32];
	size_t i;

	if (!tokens)
		return fail(v, "tokens", "is required");
	if (!json_is_array(tokens))
		return fail(v, "tokens", "must be an array of non-negative integers");
	list = json_array();
	json_array_foreach(tokens, i, t) {
		int64_t id;

		if (int_value(t, &id) || id < 0 || id > TOKEN_ID_MAX) {
			json_decref(list);
			snprintf(name, sizeof(name), "tokens[%zu]", i);
			return fail(v, name, "must be an integer between 0 and %d", TOKEN_ID_MAX);
		}
		json_array_append_new(list, json_integer(id));
	}
	json_object_set_new(out, "tokens", list);
	return put_str(v, out, "model", ID_MAX, 1, NULL);
}

static int rules_embed(const struct vin *v, json_t *out)
{
	json_t *input = NULL;
	int r = look_str_list(v, "input", 1, EMBED_MAX_ITEMS, 1, LLM_TEXT_MAX, &input);

	if (r < 0)
		return -1;
	if (!r)
		return fail(v, "input", "is required");
	json_object_set_new(out, "input", input);
	if (put_str(v, out, "model", ID_MAX, 1, NULL) ||
	    put_enum(v, out, "encoding_format", embed_formats, "float"))
		return -1;
	return 0;
}

static int put_hyperparameters(const struct vin *v, json_t *out)
{
	json_t *hp = field(v, "hyperparameters"), *norm;
	struct vin hv = *v;

	if (hp && !json_is_object(hp))
		return fail(v, "hyperparameters", "must be an object");
	hv.obj = hp; /* NULL: every default */
	hv.prefix = "hyperparameters.";
	norm = json_object();
	if (put_int_alias(&hv, norm, "n_steps", "steps", 1, 100000, 100) ||
	    put_num(&hv, norm, "learning_rate", 0, 1, RANGE_OPEN_LO, 1e-4) ||
	    put_int(&hv, norm, "batch_size", 1, 1024, 8) ||
	    put_int(&hv, norm, "lora_rank", 1, 256, 8)) {
		json_decref(norm);
		return -1;
	}
	json_object_set_new(out, "hyperparameters", norm);
	return 0;
}

/* 1 when a string anywhere inside j (keys included) holds a NUL. */
static int json_has_nul(json_t *j, int depth)
{
	const char *k;
	json_t *x;
	size_t i;

	if (depth > 64)
		return 1; /* refuse absurd nesting too */
	if (json_is_string(j))
		return strlen(json_string_value(j)) != json_string_length(j);
	if (json_is_object(j)) {
		json_object_foreach(j, k, x) {
			if (json_has_nul(x, depth + 1))
				return 1;
		}
	} else if (json_is_array(j)) {
		json_array_foreach(j, i, x) {
			if (json_has_nul(x, depth + 1))
				return 1;
		}
	}
	return 0;
}

static int rules_train(const struct vin *v, json_t *out)
{
	json_t *ds;

	if (put_required_str(v, out, "model", ID_MAX))
		return -1;
	ds = field(v, "dataset");
	if (!ds)
		return fail(v, "dataset", "is required");
	if (json_is_string(ds)) {
		if (check_str(v, "dataset", ds, DATASET_NAME_MAX, 1))
			return -1;
		json_object_set_new(out, "dataset", str_copy(ds));
	} else if (json_is_object(ds)) {
		if (json_has_nul(ds, 0))
			return fail(v, "dataset", "must not contain NUL characters");
		json_object_set_new(out, "dataset", json_deep_copy(ds));
	} else {
		return fail(v, "dataset", "must be a string or an object");
	}
	if (put_hyperparameters(v, out) || put_str(v, out, "suffix", SUFFIX_MAX, 0, NULL))
		return -1;
	return 0;
}

static int (*const rules[TASK_KIND_COUNT])(const struct vin *v, json_t *out) = {
	[TASK_IMAGE_GEN] = rules_image,
	[TASK_TRANSCRIBE] = rules_transcribe,
	[TASK_TRANSLATE] = rules_transcribe,
	[TASK_SPEECH] = rules_speech,
	[TASK_VIDEO_GEN] = rules_video,
	[TASK_CHAT] = rules_chat,
	[TASK_COMPLETION] = rules_completion,
	[TASK_TOKENIZE] = rules_tokenize,
	[TASK_DETOKENIZE] = rules_detokenize,
	[TASK_EMBED] = rules_embed,
	[TASK_TRAIN] = rules_train,
};

int validate_request(enum task_kind kind, json_t *body, const struct validate_limits *lim,
		     json_t **out, struct api_error *err)
{
	struct validate_limits defaults;
	struct vin v;
	json_t *norm;

	if ((unsigned)kind >= TASK_KIND_COUNT || !rules[kind])
		return api_error_set(err, AE_INTERNAL, NULL, "no request rules for task kind %d",
				     (int)kind);
	if (!json_is_object(body))
		return api_error_set(err, AE_BAD_REQUEST, NULL,
				     "request body must be a JSON object");
	if (!lim) {
		validate_limits_default(&defaults);
		lim = &defaults;
	}
	v = (struct vin){.obj = body, .prefix = "", .lim = lim, .err = err};
	norm = json_object();
	if (rules[kind](&v, norm)) {
		json_decref(norm);
		return -1;
	}
	*out = norm;
	return 0;
}
