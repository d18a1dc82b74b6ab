/* test_multipart.c: unit tests for src/multipart.c and src/form.c.
 *
 * The regression of issue 12: the official openai client (npm 7.60.0) sends
 * its multipart upload in pieces, and the old parser took every offset-0 call
 * of libmicrohttpd's post processor for a new part ("form field model is
 * given more than once"). Here the client's exact request bytes
 * (tests/fixtures/openai-7.60.0-*.http, captured by tests/clients/capture.mjs)
 * and hand-built bodies are fed in every split pattern: whole, one byte at a
 * time, a cut at every offset around the part headers and boundaries (and
 * regularly through the data), the same with an empty feed at the cut,
 * fixed piece sizes, and random pieces with empty feeds. Every pattern must
 * give the same outcome as the whole body: the same fields, the same file
 * bytes, or the same error (status, field, message). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "form.h"
#include "multipart.h"
#include "util.h"

#define FILE_MAX (25u << 20)

struct outcome {
	int status;
	char param[48];
	char msg[160];
	char *fields; /* compact JSON of the fields */
	int has_file;
	size_t file_size;
	uint64_t file_hash;
};

static void outcome_release(struct outcome *o)
{
	free(o->fields);
	o->fields = NULL;
}

/* Feed body through a form in the pieces cuts[] names (cut offsets in
 * increasing order; a repeated offset is an empty feed). */
static void run(const char *ctype, const char *body, size_t len, const size_t *cuts, size_t ncuts,
		struct outcome *o)
{
	struct form f;
	size_t at = 0;

	memset(o, 0, sizeof(*o));
	form_init(&f, ctype, FILE_MAX);
	for (size_t i = 0; i <= ncuts; i++) {
		size_t end = i < ncuts ? cuts[i] : len;
		form_feed(&f, body + at, end - at);
		at = end;
	}
	form_finish(&f);
	o->status = f.status;
	snprintf(o->param, sizeof(o->param), "%s", f.param);
	snprintf(o->msg, sizeof(o->msg), "%s", f.msg);
	o->fields = f.status ? strdup("") : json_dumps(f.fields, JSON_COMPACT | JSON_SORT_KEYS);
	size_t size;
	int fd = form_take_file(&f, &size);
	if (fd >= 0 && !f.status) {
		char *data = xmalloc(size + 1);
		assert_int_equal(pread(fd, data, size, 0), (ssize_t)size);
		o->has_file = 1;
		o->file_size = size;
		o->file_hash = XXH3_64bits(data, size);
		free(data);
	}
	if (fd >= 0)
		close(fd);
	form_release(&f);
}

static void assert_same(const struct outcome *a, const struct outcome *b, const char *how)
{
	if (a->status != b->status || strcmp(a->param, b->param) || strcmp(a->msg, b->msg) ||
	    strcmp(a->fields, b->fields) || a->has_file != b->has_file ||
	    a->file_size != b->file_size || a->file_hash != b->file_hash) {
		print_error("split %s changed the outcome: %d %s '%s' %s file %d/%zu vs "
			    "%d %s '%s' %s file %d/%zu\n", how, a->status, a->param, a->msg, a->fields,
			    a->has_file, a->file_size, b->status, b->param, b->msg, b->fields,
			    b->has_file, b->file_size);
		fail();
	}
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

/* Every split pattern against the whole-body outcome `ref`. dense: the byte
 * ranges where every cut offset is tried (part headers, boundaries). */
static void all_splits(const char *ctype, const char *body, size_t len, const struct outcome *ref)
{
	struct outcome o;
	size_t *cuts = xmalloc((len + 2) * 2 * sizeof(*cuts));
	char how[64];

	/* one byte at a time */
	for (size_t i = 0; i < len; i++)
		cuts[i] = i + 1;
	run(ctype, body, len, cuts, len ? len - 1 : 0, &o);
	assert_same(ref, &o, "one byte at a time");
	outcome_release(&o);
	/* one cut at each offset: everywhere near a boundary or a header end (every
	 * delimiter and header block), every 61st byte elsewhere; alone and with
	 * an empty feed at the cut */
	char *dense = calloc(len + 1, 1);
	char boundary[MULTIPART_BOUNDARY_MAX + 1], err[160];
	if (multipart_boundary(ctype, boundary, sizeof(boundary), err, sizeof(err)) == 0) {
		for (size_t i = 0; i < len; i++) {
			if ((len - i >= strlen(boundary) &&
			     !memcmp(body + i, boundary, strlen(boundary))) ||
			    (len - i >= 4 && !memcmp(body + i, "\r\n\r\n", 4)))
				for (size_t k = i >= 80 ? i - 80 : 0; k <= i + 150 && k <= len; k++)
					dense[k] = 1;
		}
	}
	for (size_t i = 0; i <= len; i++) {
		if (!dense[i] && i % 61)
			continue;
		cuts[0] = i;
		run(ctype, body, len, cuts, 1, &o);
		snprintf(how, sizeof(how), "at %zu", i);
		assert_same(ref, &o, how);
		outcome_release(&o);
		cuts[1] = i;
		run(ctype, body, len, cuts, 2, &o);
		snprintf(how, sizeof(how), "at %zu with an empty read", i);
		assert_same(ref, &o, how);
		outcome_release(&o);
	}
	free(dense);
	/* fixed piece sizes */
	static const size_t sizes[] = {2, 3, 7, 64, 1000, 4096};
	for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
		size_t n = 0;
		for (size_t at = sizes[s]; at < len; at += sizes[s])
			cuts[n++] = at;
		run(ctype, body, len, cuts, n, &o);
		snprintf(how, sizeof(how), "in pieces of %zu", sizes[s]);
		assert_same(ref, &o, how);
		outcome_release(&o);
	}
	/* random pieces of 0..200 bytes */
	for (int round = 0; round < 100; round++) {
		size_t n = 0, at = 0;
		for (;;) {
			at += rnd() % 201;
			if (at >= len)
				break;
			cuts[n++] = at;
		}
		run(ctype, body, len, cuts, n, &o);
		snprintf(how, sizeof(how), "random round %d", round);
		assert_same(ref, &o, how);
		outcome_release(&o);
	}
	free(cuts);
}

/* A captured HTTP request: its Content-Type and body. */
struct capture {
	char *raw;
	size_t raw_len;
	char ctype[160];
	const char *body;
	size_t len;
};

static void load_capture(const char *name, struct capture *c)
{
	const char *src = getenv("MEDIAD_SRC");
	char path[512];

	snprintf(path, sizeof(path), "%s/tests/fixtures/%s", src ? src : ".", name);
	FILE *fp = fopen(path, "rb");
	assert_non_null(fp);
	fseek(fp, 0, SEEK_END);
	c->raw_len = (size_t)ftell(fp);
	fseek(fp, 0, SEEK_SET);
	c->raw = xmalloc(c->raw_len + 1);
	assert_int_equal(fread(c->raw, 1, c->raw_len, fp), c->raw_len);
	c->raw[c->raw_len] = 0;
	fclose(fp);
	const char *end = memmem(c->raw, c->raw_len, "\r\n\r\n", 4);
	assert_non_null(end);
	const char *ct = strcasestr(c->raw, "\r\ncontent-type: ");
	assert_non_null(ct);
	ct += 16;
	const char *eol = strstr(ct, "\r\n");
	snprintf(c->ctype, sizeof(c->ctype), "%.*s", (int)(eol - ct), ct);
	c->body = end + 4;
	c->len = c->raw_len - (size_t)(c->body - c->raw);
}

/* The client's request parses to model=m and the WAV it sent, in
 * every split. */
static void check_capture(const char *name)
{
	struct capture c;
	struct outcome ref;

	load_capture(name, &c);
	run(c.ctype, c.body, c.len, NULL, 0, &ref);
	assert_int_equal(ref.status, 0);
	assert_string_equal(ref.fields, "{\"model\":\"m\"}");
	/* the file part's bytes: between its header block and the close
	 * delimiter, located independently of the parser */
	const char *fh = strstr(c.body, "name=\"file\"");
	assert_non_null(fh);
	const char *start = strstr(fh, "\r\n\r\n") + 4;
	const char *close = memmem(c.body, c.len, "\r\n------formdata-undici-", 24);
	while (close && close < start)
		close = memmem(close + 1, c.len - (size_t)(close + 1 - c.body),
			       "\r\n------formdata-undici-", 24);
	assert_non_null(close);
	assert_true(ref.has_file);
	assert_int_equal(ref.file_size, (size_t)(close - start));
	assert_int_equal(ref.file_hash, XXH3_64bits(start, (size_t)(close - start)));
	assert_memory_equal(start, "RIFF", 4);
	all_splits(c.ctype, c.body, c.len, &ref);
	outcome_release(&ref);
	free(c.raw);
}

static void test_openai_transcription_capture(void **state)
{
	check_capture("openai-7.60.0-transcription.http");
}

static void test_openai_translation_capture(void **state)
{
	check_capture("openai-7.60.0-translation.http");
}

#define B "mediad-b0undary"
#define CT "multipart/form-data; boundary=" B

static void expect(const char *ctype, const char *body, int status, const char *param,
		   const char *msg_part, const char *fields)
{
	struct outcome ref;
	size_t len = strlen(body);

	run(ctype, body, len, NULL, 0, &ref);
	assert_int_equal(ref.status, status);
	if (param)
		assert_string_equal(ref.param, param);
	if (msg_part && !strstr(ref.msg, msg_part)) {
		print_error("message '%s' lacks '%s'\n", ref.msg, msg_part);
		fail();
	}
	if (fields)
		assert_string_equal(ref.fields, fields);
	all_splits(ctype, body, len, &ref);
	outcome_release(&ref);
}

#define FILE_PART "--" B "\r\nContent-Disposition: form-data; name=\"file\"; " \
		  "filename=\"a.wav\"\r\nContent-Type: audio/wav\r\n\r\nRIFF....WAVE\r\n"

static void test_fields_and_file(void **state)
{
	/* preamble, transport padding, quoted values with an escape, an
	 * epilogue, a field that holds a partial delimiter and a multi-byte
	 * character a cut can fall inside */
	expect("multipart/form-data; boundary=\"" B "\"",
	       "preamble\r\n--" B "  \r\n"
	       "Content-Disposition: form-data; name=\"language\"\r\n\r\nen\r\n"
	       "--" B "\r\ncontent-disposition: FORM-DATA; name=prompt\r\n\r\n"
	       "caf\xc3\xa9\r\n--mediad-b0undaX\r\n-- \r\n--\r\r\n"
	       "\r\n--" B "\r\nContent-Disposition: form-data; name=\"q\\\"x\"\r\n\r\n\r\n"
	       FILE_PART "--" B "--\r\nepilogue --" B "\r\n",
	       0, "", "", "{\"language\":\"en\",\"prompt\":\"caf\xc3\xa9\\r\\n--mediad-b0undaX\\r\\n-- \\r\\n--\\r\\r\\n\",\"q\\\"x\":\"\"}");
	/* a body that is only the file */
	expect(CT, FILE_PART "--" B "--", 0, "", "", "{}");
}

static void test_repeated_and_nameless_parts(void **state)
{
	expect(CT, FILE_PART "--" B "\r\nContent-Disposition: form-data; name=\"language\"\r\n\r\n"
	       "en\r\n--" B "\r\nContent-Disposition: form-data; name=\"language\"\r\n\r\nfr\r\n"
	       "--" B "--\r\n", 400, "language", "form field language is given more than once",
	       NULL);
	expect(CT, FILE_PART FILE_PART "--" B "--\r\n", 400, "file",
	       "form field file is given more than once", NULL);
	expect(CT, "--" B "\r\nContent-Type: text/plain\r\n\r\nhello\r\n" FILE_PART "--" B "--\r\n",
	       400, "", "multipart part without a field name", NULL);
	expect(CT, "--" B "\r\nContent-Disposition: form-data; filename=\"a.wav\"\r\n\r\nx\r\n"
	       "--" B "--\r\n", 400, "", "without a field name", NULL);
	expect(CT, "--" B "\r\nContent-Disposition: form-data; name=\"prompt\"; filename=\"p\""
	       "\r\n\r\nx\r\n--" B "--\r\n", 422, "file", "got a file in field \"prompt\"", NULL);
}

static void test_malformed_bodies(void **state)
{
	expect(CT, FILE_PART, 400, "", "ends before its closing boundary", NULL);
	expect(CT, "no boundary here", 400, "", "does not contain the boundary", NULL);
	expect(CT, "", 400, "", "does not contain the boundary", NULL);
	expect(CT, "--" B "\r\nContent-Disposition form-data\r\n\r\nx\r\n--" B "--", 400, "",
	       "has no colon", NULL);
	expect(CT, "--" B "\r\nContent-Disposition: attachment; name=\"a\"\r\n\r\nx\r\n--" B "--",
	       400, "", "not form-data", NULL);
	expect(CT, "--" B "\r\nContent-Disposition: form-data; name=\"a\r\n\r\nx\r\n--" B "--", 400,
	       "", "not closed", NULL);
	expect(CT, "--" B "\nContent-Disposition: form-data; name=\"a\"\n\nx\n--" B "--", 400, "",
	       "other bytes on its line", NULL);
	expect(CT, "--" B "\r\nContent-Disposition: form-data; name=\"a\"\nX: y\r\n\r\nx\r\n--" B
	       "--", 400, "", "does not end in CRLF", NULL);
	expect(CT, FILE_PART "\r\n--" B "x\r\n", 400, "", "other bytes on its line", NULL);
	expect(CT, "--" B "-x\r\n", 400, "", "single '-'", NULL);
	expect(CT, "--" B "\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n\xff\xfe\r\n--" B
	       "--", 422, "a", "valid UTF-8", NULL);
	expect(CT, "--" B "\r\nContent-Disposition: form-data; name=\"a\x01\"\r\n\r\nx\r\n--" B "--",
	       400, "", "control byte", NULL);
}

static void test_limits(void **state)
{
	/* a field one byte over its limit; the file over its limit */
	size_t n = FORM_FIELD_MAX + 1;
	const char *head = "--" B "\r\nContent-Disposition: form-data; name=\"prompt\"\r\n\r\n";
	char *body = xmalloc(strlen(head) + n + 64);
	size_t at = strlen(head);
	memcpy(body, head, at);
	memset(body + at, 'a', n);
	at += n;
	memcpy(body + at, "\r\n--" B "--\r\n", strlen("\r\n--" B "--\r\n") + 1);
	struct outcome o;
	run(CT, body, strlen(body), NULL, 0, &o);
	assert_int_equal(o.status, 413);
	assert_string_equal(o.param, "prompt");
	outcome_release(&o);
	body[strlen(head) + n - 1] = '\r'; /* exactly at the limit now */
	memmove(body + strlen(head) + n - 1, body + strlen(head) + n,
		strlen(body + strlen(head) + n) + 1);
	run(CT, body, strlen(body), NULL, 0, &o);
	assert_int_equal(o.status, 0);
	outcome_release(&o);
	free(body);

	struct form f;
	form_init(&f, CT, 8);
	const char *fb = "--" B "\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\n123456789";
	form_feed(&f, fb, strlen(fb));
	assert_int_equal(f.status, 413);
	assert_string_equal(f.param, "file");
	form_release(&f);
}

static void test_content_types(void **state)
{
	char b[MULTIPART_BOUNDARY_MAX + 1], err[160];

	assert_int_equal(multipart_boundary("multipart/form-data; boundary=abc", b, sizeof(b), err,
					    sizeof(err)), 0);
	assert_string_equal(b, "abc");
	assert_int_equal(multipart_boundary("multipart/form-data;charset=utf-8;BOUNDARY=\"a b\"", b,
					    sizeof(b), err, sizeof(err)), 0);
	assert_string_equal(b, "a b");
	static const char *bad[] = {
		"multipart/form-data", "multipart/form-data; boundary=",
		"multipart/form-data; boundary=\"\"", "multipart/form-data; boundary=x; boundary=y",
		"multipart/form-data; boundary=\"abc", "multipart/form-data; charset=utf-8",
		"multipart/form-data; boundary=xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
		"xxxxxxxxxxxxxxx"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = 0;
		assert_int_equal(multipart_boundary(bad[i], b, sizeof(b), err, sizeof(err)), -EINVAL);
		assert_true(strstr(err, "boundary") || strstr(err, "malformed"));
	}
	struct form f;
	assert_int_equal(form_init(&f, "multipart/form-data", 8), -EINVAL);
	assert_int_equal(f.status, 400);
	form_feed(&f, "x", 1);
	form_finish(&f);
	assert_int_equal(f.status, 400);
	form_release(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_openai_transcription_capture),
		cmocka_unit_test(test_openai_translation_capture),
		cmocka_unit_test(test_fields_and_file),
		cmocka_unit_test(test_repeated_and_nameless_parts),
		cmocka_unit_test(test_malformed_bodies),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_content_types),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
