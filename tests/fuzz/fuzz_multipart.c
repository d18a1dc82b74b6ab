/* fuzz_multipart.c: libFuzzer driver for multipart upload parsing
 * (src/multipart.c through src/form.c).
 *
 * The outcome of a multipart body (its fields, its file bytes, or its first
 * error: status, field and message) must never depend on how the body is cut
 * into reads. Each input is parsed whole, then in pieces chosen by the
 * input's split seed (pieces of 0..255 bytes, so empty reads too), then one
 * byte at a time (bodies up to 4 KiB); any difference aborts. Sanitizers
 * watch every path for memory errors; the file's memfd and fields are
 * always released.
 *
 * Input: 4 bytes of split seed, the Content-Type up to the first '\n', then
 * the body. Seeds (tests/fuzz/corpus/multipart, written by gen_corpus.py)
 * hold the official openai client's captured uploads (tests/fixtures/) and
 * hand-made bodies: repeated and nameless parts, preamble, epilogue,
 * quoting, truncation. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "form.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct outcome {
	int status;
	char param[48];
	char msg[160];
	char *fields;
	size_t file_size;
	uint64_t file_sum;
	int has_file;
};

static uint64_t file_sum(int fd, size_t size)
{
	char buf[4096];
	uint64_t h = 1469598103934665603ull;
	size_t at = 0;

	while (at < size) {
		ssize_t n = pread(fd, buf, sizeof(buf), (off_t)at);
		if (n <= 0)
			abort();
		for (ssize_t i = 0; i < n; i++)
			h = (h ^ (uint8_t)buf[i]) * 1099511628211ull;
		at += (size_t)n;
	}
	return h;
}

/* mode 0: whole; 1: seeded pieces; 2: one byte at a time */
static void parse(const char *ctype, const char *body, size_t len, int mode, uint32_t seed,
		  struct outcome *o)
{
	struct form f;
	size_t at = 0;

	memset(o, 0, sizeof(*o));
	form_init(&f, ctype, 1u << 20);
	while (at < len) {
		size_t n = len - at;
		if (mode == 1) {
			seed = seed * 1103515245u + 12345u;
			n = (seed >> 16) & 0xff;
			if (n > len - at)
				n = len - at;
		} else if (mode == 2) {
			n = 1;
		}
		form_feed(&f, body + at, n);
		at += n;
	}
	form_finish(&f);
	o->status = f.status;
	memcpy(o->param, f.param, sizeof(o->param));
	memcpy(o->msg, f.msg, sizeof(o->msg));
	o->fields = f.status ? NULL : json_dumps(f.fields, JSON_COMPACT | JSON_SORT_KEYS);
	size_t fsize;
	int fd = form_take_file(&f, &fsize);
	if (fd >= 0) {
		if (!f.status) {
			o->has_file = 1;
			o->file_size = fsize;
			o->file_sum = file_sum(fd, fsize);
		}
		close(fd);
	}
	form_release(&f);
}

static void same(const struct outcome *a, const struct outcome *b, const char *how)
{
	if (a->status != b->status || strcmp(a->param, b->param) || strcmp(a->msg, b->msg) ||
	    (a->fields == NULL) != (b->fields == NULL) ||
	    (a->fields && strcmp(a->fields, b->fields)) || a->has_file != b->has_file ||
	    a->file_size != b->file_size || a->file_sum != b->file_sum) {
		fprintf(stderr, "fuzz_multipart: %s changed the outcome: %d '%s' %s vs %d '%s' %s\n",
			how, a->status, a->msg, a->fields ? a->fields : "-", b->status, b->msg,
			b->fields ? b->fields : "-");
		abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 5)
		return 0;
	uint32_t seed;
	memcpy(&seed, data, 4);
	const char *p = (const char *)data + 4;
	size_t n = size - 4;
	const char *nl = memchr(p, '\n', n);
	if (!nl || nl - p > 300)
		return 0;
	char ctype[301];
	memcpy(ctype, p, (size_t)(nl - p));
	ctype[nl - p] = 0;
	if (strlen(ctype) != (size_t)(nl - p))
		return 0; /* a NUL inside: not a header value */
	const char *body = nl + 1;
	size_t len = n - (size_t)(nl - p) - 1;

	struct outcome whole, cut;
	parse(ctype, body, len, 0, seed, &whole);
	parse(ctype, body, len, 1, seed, &cut);
	same(&whole, &cut, "a seeded split");
	free(cut.fields);
	if (len <= 4096) {
		parse(ctype, body, len, 2, seed, &cut);
		same(&whole, &cut, "one byte at a time");
		free(cut.fields);
	}
	free(whole.fields);
	return 0;
}
