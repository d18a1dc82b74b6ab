/* tools/tokvocab.c: mediad-tokvocab, write a small vocabulary-only GGUF
 * file for comparing the tokenizer with llama.cpp
 * (tests/blackbox/test_tokenizer_llamacpp.py).
 *
 *   mediad-tokvocab spm|llama3|qwen2|smollm|gpt-2|default FILE
 *
 * spm: <unk> <s> </s>, the 256 <0xXX> byte tokens, then the prefixes of a
 * word list (with and without the U+2581 word mark) scored by a hash, so
 * the greedy merge order is exercised. The others: byte-level BPE with the
 * 256 byte characters, merges that build the same word list (some left to
 * right, some right to left, so ranks matter), and special tokens; the
 * pre-tokenizer is the name given. Both carry control tokens (<|im_start|>
 * ...) and one user-defined token. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runners/llama/gguf_write.h"
#include "runners/llama/unicode.h"
#include "util.h"

static const char *const words[] = {
    "the",
    "hello",
    "world",
    "Hello",
    "World",
    "token",
    "tokenizer",
    "is",
    "a",
    "test",
    "ing",
    "er",
    "ed",
    "s",
    "it",
    "in",
    "on",
    "and",
    "of",
    "to",
    "don",
    "can",
    "won",
    "12",
    "123",
    "2024",
    "00",
    "caf\xc3\xa9",
    "\xc3\xa9t\xc3\xa9",
    "na\xc3\xafve",
    "\xe6\x97\xa5\xe6\x9c\xac",
    "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e",
    "\xd0\xbf\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82",
    "...",
    "!!",
    "?!",
    "://",
    "http",
    "https",
    "www",
    "com",
    "user",
    "assistant",
    "system",
    "re",
    "ve",
    "ll",
    "'s",
    "'t",
    "'re",
    "quick",
    "brown",
    "fox",
    "jumps",
    "over",
    "lazy",
    "dog",
    "Th",
    "TH",
    "THE",
    "\xce\xba\xce\xb1\xce\xbb\xce\xb7",
    "\xd9\x85\xd8\xb1\xd8\xad\xd8\xa8\xd8\xa7",
};

static const char *const controls[] = {"<|im_start|>", "<|im_end|>", "<|endoftext|>"};
static const char *const user_tok = "<tool>";

struct vocab {
	char **text;
	float *score;
	int32_t *type;
	size_t n, cap;
	char **merges;
	size_t n_merges, cap_merges;
};

static int vocab_find(const struct vocab *v, const char *s)
{
	for (size_t i = 0; i < v->n; i++)
		if (!strcmp(v->text[i], s))
			return (int)i;
	return -1;
}

static uint32_t hash_str(const char *s)
{
	uint32_t h = 2166136261u;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h;
}

static int vocab_add(struct vocab *v, const char *s, int32_t type)
{
	int id = vocab_find(v, s);

	if (id >= 0)
		return id;
	if (v->n == v->cap) {
		v->cap = v->cap ? 2 * v->cap : 512;
		v->text = xrealloc(v->text, v->cap * sizeof(*v->text));
		v->score = xrealloc(v->score, v->cap * sizeof(*v->score));
		v->type = xrealloc(v->type, v->cap * sizeof(*v->type));
	}
	v->text[v->n] = xstrdup(s);
	/* distinct scores, longer pieces tending higher */
	v->score[v->n] =
	    type == 1 ? -(float)(hash_str(s) % 10007) / 1000.0f + (float)strlen(s) : 0.0f;
	v->type[v->n] = type;
	return (int)v->n++;
}

static void merge_add(struct vocab *v, const char *l, const char *r)
{
	char buf[256];

	snprintf(buf, sizeof(buf), "%s %s", l, r);
	for (size_t i = 0; i < v->n_merges; i++)
		if (!strcmp(v->merges[i], buf))
			return;
	if (v->n_merges == v->cap_merges) {
		v->cap_merges = v->cap_merges ? 2 * v->cap_merges : 512;
		v->merges = xrealloc(v->merges, v->cap_merges * sizeof(*v->merges));
	}
	v->merges[v->n_merges++] = xstrdup(buf);
	snprintf(buf, sizeof(buf), "%s%s", l, r);
	vocab_add(v, buf, 1);
}

/* Character boundaries of s: ends[i] = byte end of character i. */
static size_t chars_of(const char *s, size_t *ends)
{
	size_t n = 0, len = strlen(s);
	for (size_t off = 0; off < len;) {
		off += MIN(uni_lead_len((unsigned char)s[off]), len - off);
		ends[n++] = off;
	}
	return n;
}

static void build_spm(struct vocab *v)
{
	char b[16];

	vocab_add(v, "<unk>", 2);
	vocab_add(v, "<s>", 3);
	vocab_add(v, "</s>", 3);
	for (int i = 0; i < 256; i++) {
		snprintf(b, sizeof(b), "<0x%02X>", i);
		vocab_add(v, b, 6);
	}
	for (const char *c =
	         "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,!?'-:/";
	     *c; c++) {
		b[0] = *c;
		b[1] = 0;
		vocab_add(v, b, 1);
	}
	vocab_add(v, "\xe2\x96\x81", 1);
	vocab_add(v, "\xe2\x96\x81\xe2\x96\x81", 1);
	for (size_t w = 0; w < ARRAY_SIZE(words); w++) {
		char s[128];
		size_t ends[64], n;
		for (int mark = 0; mark < 2; mark++) {
			snprintf(s, sizeof(s), "%s%s", mark ? "\xe2\x96\x81" : "", words[w]);
			n = chars_of(s, ends);
			for (size_t k = 0; k < n; k++) {
				char p[128];
				memcpy(p, s, ends[k]);
				p[ends[k]] = 0;
				vocab_add(v, p, 1);
				/* and the suffixes, so merges can also grow leftward */
				vocab_add(v, s + (k ? ends[k - 1] : 0), 1);
			}
		}
	}
	for (size_t i = 0; i < ARRAY_SIZE(controls); i++)
		vocab_add(v, controls[i], 3);
	vocab_add(v, user_tok, 4);
}

static void byte_encode(const char *s, char *out, size_t cap)
{
	size_t o = 0;
	for (; *s; s++) {
		unsigned b = (unsigned char)*s;
		int self = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174;
		unsigned cp = b;
		if (!self) {
			cp = 256;
			for (unsigned c = 0; c < b; c++)
				if (!((c >= 33 && c <= 126) || (c >= 161 && c <= 172) || c >= 174))
					cp++;
		}
		if (o + 4 >= cap)
			break;
		o += uni_encode(cp, out + o);
	}
	out[o] = 0;
}

static void build_bpe(struct vocab *v)
{
	for (unsigned b = 0; b < 256; b++) {
		char raw[2] = {(char)b, 0}, enc[8];
		if (!b) {
			vocab_add(v, "\xc4\x80", 1); /* byte 0 -> U+0100 */
			continue;
		}
		byte_encode(raw, enc, sizeof(enc));
		vocab_add(v, enc, 1);
	}
	for (int pass = 0; pass < 3; pass++) {
		for (size_t w = 0; w < ARRAY_SIZE(words); w++) {
			char s[128], e[256];
			size_t ends[64], n;
			snprintf(s, sizeof(s), "%s%s",
			         pass == 1   ? " "
			         : pass == 2 ? "\n"
			                     : "",
			         words[w]);
			byte_encode(s, e, sizeof(e));
			n = chars_of(e, ends);
			if (n < 2)
				continue;
			if (w % 3 == 1) { /* right to left */
				for (size_t k = n - 1; k-- > 0;) {
					char l[128];
					size_t lo = k ? ends[k - 1] : 0;
					memcpy(l, e + lo, ends[k] - lo);
					l[ends[k] - lo] = 0;
					merge_add(v, l, e + ends[k]);
				}
			} else {
				for (size_t k = 1; k < n; k++) {
					char l[128], r[16];
					memcpy(l, e, ends[k - 1]);
					l[ends[k - 1]] = 0;
					memcpy(r, e + ends[k - 1], ends[k] - ends[k - 1]);
					r[ends[k] - ends[k - 1]] = 0;
					merge_add(v, l, r);
				}
			}
		}
	}
	/* a few whitespace merges: "  ", "\n\n", " \n" */
	merge_add(v, "\xc4\xa0", "\xc4\xa0");
	merge_add(v, "\xc4\x8a", "\xc4\x8a");
	merge_add(v, "\xc4\xa0", "\xc4\x8a");
	vocab_add(v, "<|begin_of_text|>", 3);
	vocab_add(v, "<|end_of_text|>", 3);
	for (size_t i = 0; i < ARRAY_SIZE(controls); i++)
		vocab_add(v, controls[i], 3);
	vocab_add(v, user_tok, 4);
}

int main(int argc, char **argv)
{
	struct vocab v = {0};
	struct gguf_writer w;
	char err[512];
	int spm;

	if (argc != 3) {
		fprintf(stderr,
		        "usage: mediad-tokvocab spm|llama3|qwen2|smollm|gpt-2|default FILE\n");
		return 2;
	}
	spm = !strcmp(argv[1], "spm");
	if (spm)
		build_spm(&v);
	else
		build_bpe(&v);
	gguf_writer_init(&w, 32);
	gguf_w_str(&w, "general.architecture", "llama");
	gguf_w_str(&w, "general.name", "tokvocab");
	gguf_w_u32(&w, "llama.context_length", 512);
	gguf_w_u32(&w, "llama.embedding_length", 64);
	gguf_w_u32(&w, "llama.block_count", 1);
	gguf_w_u32(&w, "llama.feed_forward_length", 128);
	gguf_w_u32(&w, "llama.attention.head_count", 4);
	gguf_w_f32(&w, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
	gguf_w_str(&w, "tokenizer.ggml.model", spm ? "llama" : "gpt2");
	if (!spm)
		gguf_w_str(&w, "tokenizer.ggml.pre", argv[1]);
	gguf_w_arr_str(&w, "tokenizer.ggml.tokens", (const char *const *)v.text, v.n);
	gguf_w_arr(&w, "tokenizer.ggml.scores", GGUF_FLOAT32, v.score, v.n);
	gguf_w_arr(&w, "tokenizer.ggml.token_type", GGUF_INT32, v.type, v.n);
	if (!spm)
		gguf_w_arr_str(&w, "tokenizer.ggml.merges", (const char *const *)v.merges,
		               v.n_merges);
	gguf_w_u32(&w, "tokenizer.ggml.bos_token_id",
	           (uint32_t)vocab_find(&v, spm ? "<s>" : "<|begin_of_text|>"));
	gguf_w_u32(&w, "tokenizer.ggml.eos_token_id",
	           (uint32_t)vocab_find(&v, spm ? "</s>" : "<|end_of_text|>"));
	if (spm)
		gguf_w_u32(&w, "tokenizer.ggml.unknown_token_id", 0);
	gguf_w_bool(&w, "tokenizer.ggml.add_bos_token", spm || !strcmp(argv[1], "llama3"));
	gguf_w_bool(&w, "tokenizer.ggml.add_eos_token", 0);
	if (gguf_writer_save(&w, argv[2], err, sizeof(err))) {
		fprintf(stderr, "mediad-tokvocab: %s\n", err);
		return 1;
	}
	gguf_writer_release(&w);
	for (size_t i = 0; i < v.n; i++)
		free(v.text[i]);
	for (size_t i = 0; i < v.n_merges; i++)
		free(v.merges[i]);
	free(v.text);
	free(v.score);
	free(v.type);
	free(v.merges);
	return 0;
}
