/* test_tokenizer.c: unit tests for the llama runner's tokenizer
 * (src/runners/llama/tokenizer.c, pretok.c, unicode.c).
 *
 * Small vocabularies are written with gguf_write into /tmp files; every
 * expected segmentation below was worked out by hand from the merge rules
 * (comments show the work). The agreement with llama.cpp itself on larger
 * vocabularies is tests/blackbox/test_tokenizer_llamacpp.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "runners/llama/gguf.h"
#include "runners/llama/gguf_write.h"
#include "runners/llama/pretok.h"
#include "runners/llama/tokenizer.h"
#include "runners/llama/unicode.h"
#include "util.h"

static char tmp_path[64];

static int setup(void **state)
{
	snprintf(tmp_path, sizeof(tmp_path), "/tmp/mediad-test-tok-%d.gguf", (int)getpid());
	return 0;
}

static int teardown(void **state)
{
	unlink(tmp_path);
	return 0;
}

struct spec {
	const char *model, *pre;
	const char *const *tokens;
	const float *scores;
	const int32_t *types;
	size_t n, n_scores, n_types;
	const char *const *merges;
	size_t n_merges;
	int bos, eos, unk, add_bos, add_eos; /* -1: key left out */
};

static void write_spec(const struct spec *s)
{
	struct gguf_writer w;
	char err[256];

	gguf_writer_init(&w, 32);
	gguf_w_str(&w, "general.architecture", "llama");
	if (s->model)
		gguf_w_str(&w, "tokenizer.ggml.model", s->model);
	if (s->pre)
		gguf_w_str(&w, "tokenizer.ggml.pre", s->pre);
	if (s->tokens)
		gguf_w_arr_str(&w, "tokenizer.ggml.tokens", s->tokens, s->n);
	if (s->scores)
		gguf_w_arr(&w, "tokenizer.ggml.scores", GGUF_FLOAT32, s->scores, s->n_scores);
	if (s->types)
		gguf_w_arr(&w, "tokenizer.ggml.token_type", GGUF_INT32, s->types, s->n_types);
	if (s->merges)
		gguf_w_arr_str(&w, "tokenizer.ggml.merges", s->merges, s->n_merges);
	if (s->bos >= 0)
		gguf_w_u32(&w, "tokenizer.ggml.bos_token_id", (uint32_t)s->bos);
	if (s->eos >= 0)
		gguf_w_u32(&w, "tokenizer.ggml.eos_token_id", (uint32_t)s->eos);
	if (s->unk >= 0)
		gguf_w_u32(&w, "tokenizer.ggml.unknown_token_id", (uint32_t)s->unk);
	if (s->add_bos >= 0)
		gguf_w_bool(&w, "tokenizer.ggml.add_bos_token", s->add_bos);
	if (s->add_eos >= 0)
		gguf_w_bool(&w, "tokenizer.ggml.add_eos_token", s->add_eos);
	assert_int_equal(gguf_writer_save(&w, tmp_path, err, sizeof(err)), 0);
	gguf_writer_release(&w);
}

/* 0 or tok_load's error, with its message in err */
static int load_spec(const struct spec *s, struct tokenizer *t, char *err, size_t errlen)
{
	struct gguf *g;
	int rc;

	write_spec(s);
	assert_int_equal(gguf_open(tmp_path, &g, err, errlen), 0);
	rc = tok_load(t, g, err, errlen);
	gguf_free(g);
	return rc;
}

/* ---- SPM ---- */

#define SP "\xe2\x96\x81"

static const char *const spm_tokens[] = {
    "<unk>",    "<s>",      "</s>",        "<0xF0>",
    "<0x9F>",   "<0x98>",   "<0x80>",      "<0x0A>", /* 0-7 */
    SP,         "h",        "e",           "l",
    "o",        "w",        "r",           "d", /* 8-15 */
    "he",       "ll",       "llo",         SP "he",
    SP "hello", "wo",       "wor",         "ld", /* 16-23 */
    "world",    SP "w",     SP "wor",      "<|im_start|>",
    "<tool>",   "\xc3\xa9", SP "\xc3\xa9", /* 24-30 */
};
static const float spm_scores[] = {
    0,  0,  0,  0,  0, 0,  0,  0,     -10, -10, -10, -10, -10, -10, -10, -10,
    -3, -2, -1, -4, 0, -7, -6, -6.5f, -5,  -8,  -9,  0,   0,   -10, -20,
};
static const int32_t spm_types[] = {
    2, 3, 3, 6, 6, 6, 6, 6, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 3, 4, 1, 1,
};

static struct spec spm_spec(void)
{
	return (struct spec){
	    .model = "llama",
	    .tokens = spm_tokens,
	    .n = ARRAY_SIZE(spm_tokens),
	    .scores = spm_scores,
	    .n_scores = ARRAY_SIZE(spm_scores),
	    .types = spm_types,
	    .n_types = ARRAY_SIZE(spm_types),
	    .bos = 1,
	    .eos = 2,
	    .unk = 0,
	    .add_bos = 1,
	    .add_eos = -1,
	};
}

static void expect_ids(const struct tokenizer *t, const char *text, int add, int special,
                       const int32_t *want, size_t n_want)
{
	int32_t got[64];
	size_t n = 0;

	assert_int_equal(tok_encode(t, text, strlen(text), add, special, got, 64, &n), 0);
	if (n != n_want || memcmp(got, want, n * sizeof(*got))) {
		fprintf(stderr, "text \"%s\": got", text);
		for (size_t i = 0; i < n; i++)
			fprintf(stderr, " %d", got[i]);
		fprintf(stderr, ", want");
		for (size_t i = 0; i < n_want; i++)
			fprintf(stderr, " %d", want[i]);
		fprintf(stderr, "\n");
		fail();
	}
}

#define EXPECT(t, text, add, special, ...)                                                         \
	do {                                                                                       \
		static const int32_t want_[] = {__VA_ARGS__};                                      \
		expect_ids(t, text, add, special, want_, ARRAY_SIZE(want_));                       \
	} while (0)

static void expect_none(const struct tokenizer *t, const char *text, int add)
{
	int32_t got[4];
	size_t n = 99;

	assert_int_equal(tok_encode(t, text, strlen(text), add, 0, got, 4, &n), 0);
	assert_int_equal(n, 0);
}

static void test_spm_encode(void **state)
{
	struct spec s = spm_spec();
	struct tokenizer t;
	char err[256];

	assert_int_equal(load_spec(&s, &t, err, sizeof(err)), 0);
	/* "_hello_world": ll(-2), llo(-1), he(-3), _he(-4), _hello(0), ld(-6.5),
	 * wo(-7), wor(-6), world(-5); _wor and _w are stale by then */
	EXPECT(&t, "hello world", 0, 0, 20, 8, 24);
	/* leading space: "__hello", no "__" token */
	EXPECT(&t, " hello", 0, 0, 8, 20);
	/* double and trailing spaces */
	EXPECT(&t, "hello  world", 0, 0, 20, 8, 8, 24);
	EXPECT(&t, "hello ", 0, 0, 20, 8);
	/* non-Latin in the vocabulary: _ + é has a token */
	EXPECT(&t, "\xc3\xa9", 0, 0, 30);
	/* emoji: byte fallback to <0xF0><0x9F><0x98><0x80> */
	EXPECT(&t, "\xf0\x9f\x98\x80", 0, 0, 8, 3, 4, 5, 6);
	/* newline: byte token */
	EXPECT(&t, "\n", 0, 0, 8, 7);
	/* "z": no token, no <0x7A>: the unknown token */
	EXPECT(&t, "z", 0, 0, 8, 0);
	/* BOS as the file says; empty text */
	EXPECT(&t, "hello", 1, 0, 1, 20);
	expect_none(&t, "", 0);
	EXPECT(&t, "", 1, 0, 1);
	/* a control token's text: a token only when parsing specials, and the
	 * space prefix comes back after it */
	EXPECT(&t, "<|im_start|>hello", 0, 1, 27, 20);
	EXPECT(&t, "hello<s>", 0, 1, 20, 1);
	/* not parsed: "<s>" is three unknown characters; "hello" without the
	 * prefix stops at he + llo */
	EXPECT(&t, "<s>hello", 0, 0, 8, 0, 0, 0, 16, 18);
	/* a user-defined token is matched even without parsing specials */
	EXPECT(&t, "<tool>hello", 0, 0, 28, 20);
	/* -ENOSPC reports the count needed */
	int32_t one[1];
	size_t n = 0;
	assert_int_equal(tok_encode(&t, "hello world", 11, 0, 0, one, 1, &n), -ENOSPC);
	assert_int_equal(n, 3);
	tok_release(&t);

	/* add_eos from the file; no byte tokens and no unknown: refused */
	s.add_eos = 1;
	assert_int_equal(load_spec(&s, &t, err, sizeof(err)), 0);
	EXPECT(&t, "hello", 1, 0, 1, 20, 2);
	tok_release(&t);
}

static void test_spm_decode(void **state)
{
	struct spec s = spm_spec();
	struct tokenizer t;
	struct tok_stream st;
	struct buf out;
	char err[256];
	static const int32_t hw[] = {20, 8, 24};
	static const int32_t bos_hw[] = {1, 20};
	static const int32_t emoji[] = {8, 3, 4, 5, 6};

	assert_int_equal(load_spec(&s, &t, err, sizeof(err)), 0);
	buf_init(&out, BUF_UNLIMITED);
	/* the first token's space prefix is dropped */
	assert_int_equal(tok_decode(&t, hw, 3, 0, &out), 0);
	assert_string_equal(out.data, "hello world");
	/* llama.cpp keeps it when BOS comes first; BOS shows only with special */
	buf_reset(&out);
	assert_int_equal(tok_decode(&t, bos_hw, 2, 0, &out), 0);
	assert_string_equal(out.data, " hello");
	buf_reset(&out);
	assert_int_equal(tok_decode(&t, bos_hw, 2, 1, &out), 0);
	assert_string_equal(out.data, "<s> hello");
	/* streaming split inside a 4-byte character: nothing until it is whole */
	buf_reset(&out);
	tok_stream_init(&st, &t, 0);
	size_t lens[5];
	for (int i = 0; i < 5; i++) {
		assert_int_equal(tok_stream_push(&st, emoji[i], &out), 0);
		lens[i] = out.len;
		assert_true(utf8_valid(out.data, out.len));
	}
	assert_int_equal(lens[0], 0); /* the dropped space */
	assert_int_equal(lens[3], 0);
	assert_int_equal(lens[4], 4);
	assert_int_equal(tok_stream_flush(&st, &out), 0);
	assert_string_equal(out.data, "\xf0\x9f\x98\x80");
	/* an incomplete sequence at the end becomes U+FFFD */
	buf_reset(&out);
	tok_stream_init(&st, &t, 0);
	assert_int_equal(tok_stream_push(&st, 3, &out), 0);
	assert_int_equal(out.len, 0);
	assert_int_equal(tok_stream_flush(&st, &out), 0);
	assert_string_equal(out.data, "\xef\xbf\xbd");
	/* a byte that can never start a character: U+FFFD at once */
	buf_reset(&out);
	tok_stream_init(&st, &t, 0);
	assert_int_equal(tok_stream_push(&st, 6, &out), 0);
	assert_string_equal(out.data, "\xef\xbf\xbd");
	assert_int_equal(tok_stream_push(&st, 99, &out), -EINVAL);
	buf_release(&out);
	tok_release(&t);
}

/* ---- pre-tokenizers ---- */

static void expect_split(enum tok_pre pre, const char *text, const char *want)
{
	uint32_t cps[128];
	unsigned flags[128];
	size_t ends[128], offs[129], n = 0, len = strlen(text);
	struct buf got;

	offs[0] = 0;
	for (size_t off = 0; off < len; n++) {
		off += uni_decode(text + off, len - off, &cps[n]);
		flags[n] = uni_flags(cps[n]);
		offs[n + 1] = off;
	}
	size_t np = pretok_split(pre, cps, flags, n, ends);
	buf_init(&got, BUF_UNLIMITED);
	for (size_t p = 0, start = 0; p < np; start = ends[p++]) {
		if (p)
			buf_puts(&got, "|");
		buf_append(&got, text + offs[start], offs[ends[p]] - offs[start]);
	}
	buf_puts(&got, ""); /* data is NULL until something is appended */
	if (strcmp(got.data, want))
		fprintf(stderr, "pre %d \"%s\": got \"%s\" want \"%s\"\n", pre, text, got.data,
		        want);
	assert_string_equal(got.data, want);
	buf_release(&got);
}

static void test_pretok(void **state)
{
	/* gpt-2: case-sensitive contractions, optional space before a run */
	expect_split(TOK_PRE_GPT2, "Hello world", "Hello| world");
	expect_split(TOK_PRE_GPT2, "Hello  world", "Hello| | world");
	expect_split(TOK_PRE_GPT2, "a  ", "a|  ");
	expect_split(TOK_PRE_GPT2, "it's IT'S", "it|'s| IT|'|S");
	expect_split(TOK_PRE_GPT2, "12345 x7", "12345| x|7");
	expect_split(TOK_PRE_GPT2, "hi!!! ok", "hi|!!!| ok");
	expect_split(TOK_PRE_GPT2, "a\n\nb", "a|\n|\n|b");
	expect_split(TOK_PRE_GPT2, "\xe6\x97\xa5\xe6\x9c\xac text",
	             "\xe6\x97\xa5\xe6\x9c\xac| text");
	expect_split(TOK_PRE_GPT2, "", "");
	/* llama3: any-case contractions, digits by three, newlines kept with
	 * the punctuation before them */
	expect_split(TOK_PRE_LLAMA3, "Hello world", "Hello| world");
	expect_split(TOK_PRE_LLAMA3, "12345", "123|45");
	expect_split(TOK_PRE_LLAMA3, "IT'S we'Re", "IT|'S| we|'Re");
	expect_split(TOK_PRE_LLAMA3, "a\n\nb", "a|\n\n|b");
	expect_split(TOK_PRE_LLAMA3, "hi!!!\n\nok", "hi|!!!\n\n|ok");
	expect_split(TOK_PRE_LLAMA3, "  x", " | x");
	expect_split(TOK_PRE_LLAMA3, " \xf0\x9f\x8e\x89\xf0\x9f\x9a\x80 x",
	             " \xf0\x9f\x8e\x89\xf0\x9f\x9a\x80| x");
	expect_split(TOK_PRE_LLAMA3, "$hello 3x", "$hello| |3|x");
	expect_split(TOK_PRE_LLAMA3, "end  ", "end|  ");
	/* qwen2: single digits */
	expect_split(TOK_PRE_QWEN2, "12345", "1|2|3|4|5");
	expect_split(TOK_PRE_QWEN2, "IT'S", "IT|'S");
	/* smollm: each digit alone first, then gpt-2 */
	expect_split(TOK_PRE_SMOLLM, "abc 123", "abc| |1|2|3");
	/* default: punctuation runs, gpt-2, numbers, ASCII digits by three */
	expect_split(TOK_PRE_DEFAULT, "hello, world!!", "hello|,| world|!!");
	expect_split(TOK_PRE_DEFAULT, "x 12345", "x| |123|45");
	expect_split(TOK_PRE_DEFAULT, "$100", "$|100");
}

/* ---- BPE ---- */

static const char *const bpe_tokens[] = {
    "h",
    "e",
    "l",
    "o",
    "\xc4\xa0" /* space */,
    "w",
    "r",
    "d", /* 0-7 */
    "1",
    "2",
    "3",
    "4",
    "5",
    "'",
    "s",
    "!", /* 8-15 */
    "\xc4\x8a" /* \n */,
    "34",
    "he",
    "ll",
    "hell",
    "hello",
    "\xc4\xa0w",
    "or", /* 16-23 */
    "\xc4\xa0wor",
    "ld",
    "\xc4\xa0world",
    "12",
    "123",
    "'s",
    "<|begin_of_text|>", /* 24-30 */
    "<|im_start|>",
    "<tool>",
    "\xc3\xa9" /* é = C3 A9 */,
    "\xc2\xa9", /* 31-34 */
};
static const int32_t bpe_types[] = {
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 3, 3, 4, 1, 1,
};
static const char *const bpe_merges[] = {
    "3 4",        "h e",  "l l",          "he ll", "hell o",
    "\xc4\xa0 w", "o r",  "\xc4\xa0w or", "l d",   "\xc4\xa0wor ld",
    "1 2",        "12 3", "' s",
};

static struct spec bpe_spec(const char *pre)
{
	return (struct spec){
	    .model = "gpt2",
	    .pre = pre,
	    .tokens = bpe_tokens,
	    .n = ARRAY_SIZE(bpe_tokens),
	    .types = bpe_types,
	    .n_types = ARRAY_SIZE(bpe_types),
	    .merges = bpe_merges,
	    .n_merges = ARRAY_SIZE(bpe_merges),
	    .bos = 30,
	    .eos = -1,
	    .unk = -1,
	    .add_bos = -1,
	    .add_eos = -1,
	};
}

static void test_bpe_encode(void **state)
{
	struct spec s = bpe_spec("gpt-2");
	struct tokenizer t;
	char err[256];

	assert_int_equal(load_spec(&s, &t, err, sizeof(err)), 0);
	/* "hello": he(1), ll(2), hell(3), hello(4); " world": Gw(5), or(6),
	 * Gwor(7), ld(8), Gworld(9) */
	EXPECT(&t, "hello world", 0, 0, 21, 26);
	/* "1234" is one gpt-2 piece: 34 (rank 0) first, then 12 */
	EXPECT(&t, "1234", 0, 0, 27, 17);
	/* case-sensitive contraction */
	EXPECT(&t, "he's", 0, 0, 18, 29);
	/* spaces: " " alone before a word, trailing run whole */
	EXPECT(&t, "hello  world", 0, 0, 21, 4, 26);
	EXPECT(&t, "hello  ", 0, 0, 21, 4, 4);
	/* é is C3 A9: mapped to U+00C3 (Ã, absent) and U+00A9 (©, token 34);
	 * llama.cpp drops a byte that has no token */
	EXPECT(&t, "\xc3\xa9", 0, 0, 34);
	/* no BOS for gpt-2 unless the file says */
	EXPECT(&t, "hello", 1, 0, 21);
	/* specials */
	EXPECT(&t, "<|im_start|>hello", 0, 1, 31, 21);
	EXPECT(&t, "<tool>hello", 0, 0, 32, 21);
	expect_none(&t, "", 1);
	tok_release(&t);

	/* llama3: "1234" is 123 + 4; BOS added by default */
	s = bpe_spec("llama3");
	assert_int_equal(load_spec(&s, &t, err, sizeof(err)), 0);
	EXPECT(&t, "1234", 1, 0, 30, 28, 11);
	EXPECT(&t, "he'S", 0, 0, 18, 13);
	tok_release(&t);
	/* qwen2: single digits */
	s = bpe_spec("qwen2");
	assert_int_equal(load_spec(&s, &t, err, sizeof(err)), 0);
	EXPECT(&t, "1234", 0, 0, 8, 9, 10, 11);
	tok_release(&t);
}

static void test_bpe_round_trip(void **state)
{
	const char *tokens[256 + 3];
	char store[256][4];
	int32_t types[256 + 3];
	struct spec s = bpe_spec("llama3");
	struct tokenizer t;
	char err[256];
	static const char text[] = "h\xc3\xa9llo w\xc3\xb6rld \xf0\x9f\x8e\x89\n\t!";
	int32_t ids[64];
	size_t n;
	struct buf out, chunk;
	struct tok_stream st;

	/* every byte's character as a token, in byte order */
	for (unsigned b = 0, next = 256; b < 256; b++) {
		int self = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174;
		size_t k = uni_encode(self ? b : next++, store[b]);
		store[b][k] = 0;
		tokens[b] = store[b];
		types[b] = 1;
	}
	tokens[256] = "<|begin_of_text|>";
	types[256] = 3;
	tokens[257] = "ll";
	types[257] = 1;
	s.tokens = tokens;
	s.n = 258;
	s.types = types;
	s.n_types = 258;
	s.merges = NULL;
	s.n_merges = 0;
	s.bos = 256;
	/* merges are required for gpt2 */
	assert_int_equal(load_spec(&s, &t, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "tokenizer.ggml.merges: missing"));
	static const char *const one_merge[] = {"l l"};
	s.merges = one_merge;
	s.n_merges = 1;
	assert_int_equal(load_spec(&s, &t, err, sizeof(err)), 0);
	assert_int_equal(tok_encode(&t, text, strlen(text), 1, 0, ids, 64, &n), 0);
	assert_int_equal(ids[0], 256);
	buf_init(&out, BUF_UNLIMITED);
	buf_init(&chunk, BUF_UNLIMITED);
	assert_int_equal(tok_decode(&t, ids, n, 0, &out), 0);
	assert_string_equal(out.data, text);
	/* streamed: every chunk valid UTF-8, together the text */
	buf_reset(&out);
	tok_stream_init(&st, &t, 0);
	for (size_t i = 0; i < n; i++) {
		buf_reset(&chunk);
		assert_int_equal(tok_stream_push(&st, ids[i], &chunk), 0);
		assert_true(utf8_valid(chunk.data, chunk.len));
		buf_append(&out, chunk.data, chunk.len);
	}
	assert_int_equal(tok_stream_flush(&st, &out), 0);
	assert_string_equal(out.data, text);
	buf_release(&out);
	buf_release(&chunk);
	tok_release(&t);
}

/* ---- refusals ---- */

static void expect_refused(const struct spec *s, const char *needle)
{
	struct tokenizer t;
	char err[256] = "";

	assert_int_equal(load_spec(s, &t, err, sizeof(err)), -EINVAL);
	if (!strstr(err, needle) || !strstr(err, tmp_path))
		fprintf(stderr, "error \"%s\" lacks \"%s\"\n", err, needle);
	assert_non_null(strstr(err, needle));
	assert_non_null(strstr(err, tmp_path));
	assert_null(strchr(err, '\n'));
}

static void test_refusals(void **state)
{
	struct spec s;
	static const int32_t bad_types[] = {1, 1, 9};
	static const char *const dup[] = {"a", "b", "a"};
	static const char *const bad_merge[] = {"h zz"};
	static const char *const no_space[] = {"he"};

	s = spm_spec();
	s.model = "bert";
	expect_refused(&s, "tokenizer.ggml.model: \"bert\" is not a known model");
	s = spm_spec();
	s.model = NULL;
	expect_refused(&s, "tokenizer.ggml.model: missing");
	s = spm_spec();
	s.tokens = NULL;
	expect_refused(&s, "tokenizer.ggml.tokens: missing");
	s = spm_spec();
	s.scores = NULL;
	expect_refused(&s, "tokenizer.ggml.scores: missing");
	s = spm_spec();
	s.n_scores = 5;
	expect_refused(&s, "tokenizer.ggml.scores: 5 entries, must match");
	s = spm_spec();
	s.n_types = 7;
	expect_refused(&s, "tokenizer.ggml.token_type: 7 entries, must match");
	s = spm_spec();
	s.bos = 500;
	expect_refused(&s, "tokenizer.ggml.bos_token_id: 500 is out of range");
	s = spm_spec();
	s.unk = 31;
	expect_refused(&s, "tokenizer.ggml.unknown_token_id: 31 is out of range");
	s = spm_spec();
	s.n = s.n_scores = s.n_types = 3;
	s.tokens = dup;
	s.types = bad_types;
	expect_refused(&s, "token 2 has type 9, must be 1..6");
	s.types = spm_types;
	expect_refused(&s, "token 2 \"a\" repeats token 0");
	s = bpe_spec("gpt-2");
	s.pre = "klingon";
	expect_refused(&s, "tokenizer.ggml.pre: \"klingon\" is not a known pre-tokenizer");
	s = bpe_spec("gpt-2");
	s.merges = bad_merge;
	s.n_merges = 1;
	expect_refused(&s, "tokenizer.ggml.merges: merge 0 \"h zz\" names a token not in");
	s.merges = no_space;
	expect_refused(&s, "merge 0 \"he\" has no space");
	s = bpe_spec("gpt-2");
	s.bos = -1;
	s.add_bos = 1;
	expect_refused(&s, "bos_token_id: missing, but tokenizer.ggml.add_bos_token is true");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_spm_encode, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_spm_decode, setup, teardown),
	    cmocka_unit_test(test_pretok),
	    cmocka_unit_test_setup_teardown(test_bpe_encode, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bpe_round_trip, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_refusals, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
