/* synth.c: see synth.h. */
#include "synth.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "gguf_write.h"
#include "safetensors.h"
#include "util.h"

/* The words of the small vocabularies (and the tests' texts). */
static const char *const words[] = {
	"the", "of", "and", "to", "in", "is", "that", "it", "was", "for", "on", "are", "as",
	"with", "his", "they", "at", "be", "this", "from", "have", "or", "by", "one", "had",
	"not", "but", "what", "all", "were", "when", "we", "there", "can", "an", "your",
	"which", "their", "said", "if", "do", "will", "each", "about", "how", "up", "out",
	"them", "then", "she", "many", "some", "so", "these", "would", "other", "into", "has",
	"more", "her", "two", "like", "him", "see", "time", "could", "no", "make", "than",
	"first", "been", "its", "who", "now", "people", "my", "made", "over", "did", "down",
	"only", "way", "find", "use", "may", "water", "long", "little", "very", "after",
	"words", "called", "just", "where", "most", "know", "get", "through", "back", "much",
	"before", "go", "good", "new", "write", "our", "used", "me", "man", "too", "any",
	"day", "same", "right", "look", "think", "also", "around", "another", "came", "come",
	"work", "three", "word", "must", "because", "does", "part", "even", "place", "well",
	"such", "here", "take", "why", "things", "help", "put", "years", "different", "away",
	"again", "off", "went", "old", "number", "great", "tell", "men", "say", "small",
	"every", "found", "still", "between", "name", "should", "home", "big", "give", "air",
	"line", "set", "own", "under", "read", "last", "never", "us", "left", "end", "along",
	"while", "might", "next", "sound", "below", "saw", "something", "thought", "both",
	"few", "those", "always", "looked", "show", "large", "often", "together", "asked",
	"house", "don", "world", "going", "want", "school", "important", "until", "form",
	"food", "keep", "children", "feet", "land", "side", "without", "boy", "once", "animals",
	"life", "enough", "took", "sometimes", "four", "head", "above", "kind", "began",
	"almost", "live", "page", "got", "earth", "need", "far", "hand", "high", "year",
	"mother", "light", "lighthouse", "dusk", "hello", "world", "model", "server", "token",
	"text", "answer", "question", "please", "thank", "you", "quick", "brown", "fox",
	"jumps", "lazy", "dog", "ing", "ed", "er", "ly", "es", "tion",
};
#define N_WORDS (sizeof(words) / sizeof(words[0]))

struct vocab {
	char **tok;
	float *score;
	int32_t *type;
	size_t n, cap;
	char **merges;
	size_t n_merges, cap_merges;
};

static int vocab_find(const struct vocab *v, const char *s)
{
	for (size_t i = 0; i < v->n; i++)
		if (!strcmp(v->tok[i], s))
			return (int)i;
	return -1;
}

static int vocab_add(struct vocab *v, const char *s, float score, int32_t type)
{
	int at = vocab_find(v, s);

	if (at >= 0)
		return at;
	if (v->n == v->cap) {
		v->cap = v->cap ? v->cap * 2 : 512;
		v->tok = xrealloc(v->tok, v->cap * sizeof(*v->tok));
		v->score = xrealloc(v->score, v->cap * sizeof(*v->score));
		v->type = xrealloc(v->type, v->cap * sizeof(*v->type));
	}
	v->tok[v->n] = xstrdup(s);
	v->score[v->n] = score;
	v->type[v->n] = type;
	return (int)v->n++;
}

static void vocab_merge(struct vocab *v, const char *a, const char *b)
{
	char m[256];

	snprintf(m, sizeof(m), "%s %s", a, b);
	for (size_t i = 0; i < v->n_merges; i++)
		if (!strcmp(v->merges[i], m))
			return;
	if (v->n_merges == v->cap_merges) {
		v->cap_merges = v->cap_merges ? v->cap_merges * 2 : 512;
		v->merges = xrealloc(v->merges, v->cap_merges * sizeof(*v->merges));
	}
	v->merges[v->n_merges++] = xstrdup(m);
}

static void vocab_release(struct vocab *v)
{
	for (size_t i = 0; i < v->n; i++)
		free(v->tok[i]);
	for (size_t i = 0; i < v->n_merges; i++)
		free(v->merges[i]);
	free(v->tok);
	free(v->score);
	free(v->type);
	free(v->merges);
}

#define SPACE_SPM "\xe2\x96\x81" /* U+2581 */

/* SentencePiece-style: <unk> <s> </s>, the 256 byte tokens, characters,
 * then every prefix of "▁word" so words are reachable by merges. */
static void vocab_spm(struct vocab *v)
{
	char s[64];
	float score = 0;

	vocab_add(v, "<unk>", 0, 2);
	vocab_add(v, "<s>", 0, 3);
	vocab_add(v, "</s>", 0, 3);
	for (int b = 0; b < 256; b++) {
		snprintf(s, sizeof(s), "<0x%02X>", b);
		vocab_add(v, s, 0, 6);
	}
	vocab_add(v, SPACE_SPM, score--, 1);
	for (int c = 0x21; c < 0x7f; c++) {
		s[0] = (char)c;
		s[1] = 0;
		vocab_add(v, s, score--, 1);
	}
	for (size_t w = 0; w < N_WORDS; w++) {
		size_t n = strlen(words[w]);
		for (size_t k = 1; k <= n; k++) {
			snprintf(s, sizeof(s), SPACE_SPM "%.*s", (int)k, words[w]);
			vocab_add(v, s, score--, 1);
			if (k >= 2) {
				snprintf(s, sizeof(s), "%.*s", (int)k, words[w]);
				vocab_add(v, s, score--, 1);
			}
		}
	}
}

/* GPT-2's byte to printable-character mapping, as UTF-8. */
static void byte_char(int b, char out[4])
{
	int cp;

	if ((b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff)) {
		cp = b;
	} else {
		int n = 0;
		for (int x = 0; x < b; x++)
			if (!((x >= 0x21 && x <= 0x7e) || (x >= 0xa1 && x <= 0xac) ||
			      (x >= 0xae && x <= 0xff)))
				n++;
		cp = 256 + n;
	}
	if (cp < 0x80) {
		out[0] = (char)cp;
		out[1] = 0;
	} else {
		out[0] = (char)(0xc0 | (cp >> 6));
		out[1] = (char)(0x80 | (cp & 0x3f));
		out[2] = 0;
	}
}

/* Byte-level BPE: the 256 byte characters, merges that build every word
 * with and without its leading space (Ġ) left to right, and the special
 * tokens of the pre-tokenizer's family. */
static void vocab_bpe(struct vocab *v, const char *pre, int *bos, int *eos)
{
	char bc[256][4], acc[128], piece[8];

	for (int b = 0; b < 256; b++) {
		byte_char(b, bc[b]);
		vocab_add(v, bc[b], 0, 1);
	}
	for (size_t w = 0; w < N_WORDS; w++) {
		for (int lead = 0; lead < 2; lead++) {
			const char *p = words[w];
			snprintf(acc, sizeof(acc), "%s", lead ? bc[' '] : bc[(uint8_t)*p++]);
			for (; *p; p++) {
				snprintf(piece, sizeof(piece), "%s", bc[(uint8_t)*p]);
				vocab_merge(v, acc, piece);
				size_t n = strlen(acc);
				snprintf(acc + n, sizeof(acc) - n, "%s", piece);
				vocab_add(v, acc, 0, 1);
			}
		}
	}
	if (!strcmp(pre, "llama-bpe")) {
		*bos = vocab_add(v, "<|begin_of_text|>", 0, 3);
		vocab_add(v, "<|end_of_text|>", 0, 3);
		vocab_add(v, "<|start_header_id|>", 0, 3);
		vocab_add(v, "<|end_header_id|>", 0, 3);
		*eos = vocab_add(v, "<|eot_id|>", 0, 3);
	} else {
		*bos = vocab_add(v, "<|endoftext|>", 0, 3);
		vocab_add(v, "<|im_start|>", 0, 3);
		*eos = vocab_add(v, "<|im_end|>", 0, 3);
	}
}

static const char tmpl_zephyr[] =
	"{% for message in messages %}{{ '<|' + message['role'] + '|>\\n' + message['content'] + "
	"eos_token + '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}"
	"{% endif %}";
static const char tmpl_llama3[] =
	"{{ bos_token }}{% for message in messages %}{{ '<|start_header_id|>' + message['role'] + "
	"'<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}{% endfor %}"
	"{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}"
	"{% endif %}";
static const char tmpl_chatml[] =
	"{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + "
	"message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}"
	"{{ '<|im_start|>assistant\\n' }}{% endif %}";

void llama_synth_defaults(struct llama_synth_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->arch = "llama";
	o->tokenizer = "llama";
	o->pre = "llama-bpe";
	o->type = GGML_F32;
	o->n_embd = 64;
	o->n_layer = 2;
	o->n_head = 4;
	o->n_head_kv = 2;
	o->n_ff = 160;
	o->n_ctx = 512;
	o->seed = 1;
	o->name = "mediad-seeded";
}

/* --- weights --- */

static uint64_t splitmix(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static double gauss(uint64_t *s)
{
	double u1 = ((double)(splitmix(s) >> 11) + 1.0) / 9007199254740993.0;
	double u2 = (double)(splitmix(s) >> 11) / 9007199254740992.0;

	return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

struct tensors {
	void **data;
	size_t n;
};

/* A seeded tensor [ne0, ne1] (ne1 = 1: a vector) of mean `mean` and
 * standard deviation `sd`, stored as `type` (a type whose block does not
 * divide ne0 falls back to F16, as llama.cpp's quantizer does). */
static int add_tensor(struct gguf_writer *w, struct tensors *keep, const struct llama_synth_opts *o,
		      const char *name, uint32_t type, uint64_t ne0, uint64_t ne1, double mean,
		      double sd, char *err, size_t errlen)
{
	uint64_t s = o->seed;
	size_t n = (size_t)(ne0 * ne1);

	if (o->omit && !strcmp(o->omit, name))
		return 0;
	float *f = xmalloc(n * sizeof(float));
	void *out;

	for (const char *p = name; *p; p++)
		s = s * 1099511628211ull ^ (uint8_t)*p;
	for (size_t i = 0; i < n; i++)
		f[i] = (float)(mean + sd * gauss(&s));
	const struct gguf_type_info *ti = gguf_type_info(type);
	if (!ti || ne0 % ti->block)
		type = GGML_F16;
	if (type == GGML_F32) {
		out = f;
	} else if (type == GGML_F16 || type == GGML_BF16) {
		uint16_t *h = xmalloc(n * 2);
		for (size_t i = 0; i < n; i++)
			h[i] = type == GGML_F16 ? safetensors_f32_to_f16(f[i])
						: safetensors_f32_to_bf16(f[i]);
		free(f);
		out = h;
	} else {
		free(f);
		snprintf(err, errlen, "mkgguf: tensor type %s cannot be written yet", ti->name);
		return -ENOTSUP;
	}
	keep->data = xrealloc(keep->data, (keep->n + 1) * sizeof(void *));
	keep->data[keep->n++] = out;
	uint64_t ne[2] = {ne0, ne1};
	return gguf_w_tensor(w, name, type, ne1 > 1 ? 2 : 1, ne, out);
}

int llama_synth_write(const struct llama_synth_opts *o, const char *path, char *err, size_t errlen)
{
	struct gguf_writer w;
	struct vocab v = {0};
	struct tensors keep = {0};
	char key[128];
	int bos = 1, eos = 2, r = 0;
	int qwen = !strcmp(o->arch, "qwen2"), spm = !strcmp(o->tokenizer, "llama");

	if (strcmp(o->arch, "llama") && !qwen) {
		snprintf(err, errlen, "mkgguf: --arch must be llama or qwen2");
		return -EINVAL;
	}
	if (!spm && strcmp(o->tokenizer, "gpt2")) {
		snprintf(err, errlen, "mkgguf: --tokenizer must be llama or gpt2");
		return -EINVAL;
	}
	if (!o->n_head || !o->n_head_kv || o->n_embd % o->n_head || o->n_head % o->n_head_kv ||
	    (o->n_embd / o->n_head) % 2 || !o->n_layer || !o->n_ff || !o->n_ctx) {
		snprintf(err, errlen, "mkgguf: dimensions must be > 0, embd a multiple of heads, "
			 "heads a multiple of kv heads, and the head size even");
		return -EINVAL;
	}
	if (spm)
		vocab_spm(&v);
	else
		vocab_bpe(&v, o->pre, &bos, &eos);

	gguf_writer_init(&w, 32);
	gguf_w_str(&w, "general.architecture", o->arch);
	gguf_w_str(&w, "general.name", o->name);
	gguf_w_u32(&w, "general.file_type", o->type == GGML_F32 ? 0 : o->type == GGML_F16 ? 1 : 32);
#define ARCH_KEY(suffix) (snprintf(key, sizeof(key), "%s.%s", o->arch, suffix), key)
	gguf_w_u32(&w, ARCH_KEY("context_length"), o->n_ctx);
	gguf_w_u32(&w, ARCH_KEY("embedding_length"), o->n_embd);
	gguf_w_u32(&w, ARCH_KEY("block_count"), o->n_layer);
	gguf_w_u32(&w, ARCH_KEY("feed_forward_length"), o->n_ff);
	gguf_w_u32(&w, ARCH_KEY("attention.head_count"), o->n_head);
	gguf_w_u32(&w, ARCH_KEY("attention.head_count_kv"), o->n_head_kv);
	gguf_w_f32(&w, ARCH_KEY("attention.layer_norm_rms_epsilon"), 1e-5f);
	gguf_w_f32(&w, ARCH_KEY("rope.freq_base"), qwen ? 1000000.0f : 10000.0f);
	gguf_w_u32(&w, ARCH_KEY("rope.dimension_count"), o->n_embd / o->n_head);
	gguf_w_u32(&w, ARCH_KEY("vocab_size"), (uint32_t)v.n);
#undef ARCH_KEY
	gguf_w_str(&w, "tokenizer.ggml.model", spm ? "llama" : "gpt2");
	if (!spm)
		gguf_w_str(&w, "tokenizer.ggml.pre", o->pre);
	gguf_w_arr_str(&w, "tokenizer.ggml.tokens", (const char *const *)v.tok, v.n);
	if (spm)
		gguf_w_arr(&w, "tokenizer.ggml.scores", GGUF_FLOAT32, v.score, v.n);
	gguf_w_arr(&w, "tokenizer.ggml.token_type", GGUF_INT32, v.type, v.n);
	if (!spm)
		gguf_w_arr_str(&w, "tokenizer.ggml.merges", (const char *const *)v.merges,
			       v.n_merges);
	gguf_w_u32(&w, "tokenizer.ggml.bos_token_id", (uint32_t)bos);
	gguf_w_u32(&w, "tokenizer.ggml.eos_token_id", (uint32_t)eos);
	if (spm)
		gguf_w_u32(&w, "tokenizer.ggml.unknown_token_id", 0);
	gguf_w_bool(&w, "tokenizer.ggml.add_bos_token", spm || !strcmp(o->pre, "llama-bpe"));
	gguf_w_bool(&w, "tokenizer.ggml.add_eos_token", 0);
	gguf_w_str(&w, "tokenizer.chat_template",
		   spm ? tmpl_zephyr : !strcmp(o->pre, "llama-bpe") ? tmpl_llama3 : tmpl_chatml);

	uint64_t E = o->n_embd, KV = (uint64_t)o->n_head_kv * (o->n_embd / o->n_head), F = o->n_ff,
		 V = v.n;
	double sd_e = 1.0 / sqrt((double)E), sd_f = 1.0 / sqrt((double)F);
	char name[96];
	/* tied: a small embedding keeps the input token from dominating its own logit */
	r = add_tensor(&w, &keep, o, "token_embd.weight", o->type, E, V, 0, o->tied ? 0.1 : 1.0,
		       err, errlen);
	if (!r)
		r = add_tensor(&w, &keep, o, "output_norm.weight", GGML_F32, E, 1, 1, 0.1, err, errlen);
	if (!r && !o->tied)
		r = add_tensor(&w, &keep, o, "output.weight", o->type, E, V, 0, sd_e, err, errlen);
	for (uint32_t i = 0; i < o->n_layer && !r; i++) {
		struct {
			const char *suffix;
			uint32_t type;
			uint64_t ne0, ne1;
			double mean, sd;
			int want;
		} ts[] = {
			{"attn_norm.weight", GGML_F32, E, 1, 1, 0.1, 1},
			{"attn_q.weight", o->type, E, E, 0, sd_e, 1},
			{"attn_k.weight", o->type, E, KV, 0, sd_e, 1},
			{"attn_v.weight", o->type, E, KV, 0, sd_e, 1},
			{"attn_q.bias", GGML_F32, E, 1, 0, 0.1, qwen},
			{"attn_k.bias", GGML_F32, KV, 1, 0, 0.1, qwen},
			{"attn_v.bias", GGML_F32, KV, 1, 0, 0.1, qwen},
			{"attn_output.weight", o->type, E, E, 0, sd_e, 1},
			{"ffn_norm.weight", GGML_F32, E, 1, 1, 0.1, 1},
			{"ffn_gate.weight", o->type, E, F, 0, sd_e, 1},
			{"ffn_up.weight", o->type, E, F, 0, sd_e, 1},
			{"ffn_down.weight", o->type, F, E, 0, sd_f, 1},
		};
		for (size_t k = 0; k < sizeof(ts) / sizeof(ts[0]) && !r; k++) {
			if (!ts[k].want)
				continue;
			snprintf(name, sizeof(name), "blk.%u.%s", i, ts[k].suffix);
			r = add_tensor(&w, &keep, o, name, ts[k].type, ts[k].ne0, ts[k].ne1, ts[k].mean,
				       ts[k].sd, err, errlen);
		}
	}
	if (!r)
		r = gguf_writer_save(&w, path, err, errlen);
	for (size_t i = 0; i < keep.n; i++)
		free(keep.data[i]);
	free(keep.data);
	gguf_writer_release(&w);
	vocab_release(&v);
	return r;
}
