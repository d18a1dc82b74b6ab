/* tokenizer.c: loading a GGUF tokenizer, cutting text around special
 * tokens, SPM and BPE encoding, and decoding (see tokenizer.h).
 *
 * Conventions follow llama.cpp (llama-vocab.cpp) so that the ids agree
 * with it on the same file: which tokens count as special, the space
 * prefix repeated after every special token (SPM), ties broken leftmost,
 * byte fallback, and BPE's "ignore merges" for llama3 vocabularies. */
#include "runners/llama/tokenizer.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runners/llama/pretok.h"
#include "runners/llama/unicode.h"
#include "util.h"

#define K_MODEL  "tokenizer.ggml.model"
#define K_TOKENS "tokenizer.ggml.tokens"
#define K_SCORES "tokenizer.ggml.scores"
#define K_TYPES  "tokenizer.ggml.token_type"
#define K_MERGES "tokenizer.ggml.merges"
#define K_PRE    "tokenizer.ggml.pre"

/* ---- hashing ---- */

static uint64_t hash_bytes(const char *s, size_t n)
{
	uint64_t h = 1469598103934665603ull;

	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
	return h;
}

static uint64_t hash_u64(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	return x;
}

static uint32_t table_mask(uint64_t n)
{
	uint64_t size = 16;

	while (size < 2 * n)
		size *= 2;
	return (uint32_t)(size - 1);
}

int32_t tok_find(const struct tokenizer *t, const char *text, size_t len)
{
	uint32_t i = (uint32_t)hash_bytes(text, len) & t->index_mask;

	if (!len)
		return -1;
	for (; t->index[i]; i = (i + 1) & t->index_mask) {
		const struct tok_entry *e = &t->tok[t->index[i] - 1];
		if (e->len == len && !memcmp(t->text + e->off, text, len))
			return (int32_t)(t->index[i] - 1);
	}
	return -1;
}

/* Merge rank of (left, right), or -1. */
static int64_t merge_rank(const struct tokenizer *t, int32_t l, int32_t r)
{
	uint64_t key = ((uint64_t)(uint32_t)l << 32 | (uint32_t)r) + 1;
	uint32_t i;

	if (!t->merge_key || l < 0 || r < 0)
		return -1;
	for (i = (uint32_t)hash_u64(key) & t->merge_mask; t->merge_key[i];
	     i = (i + 1) & t->merge_mask)
		if (t->merge_key[i] == key)
			return t->merge_rank[i];
	return -1;
}

const char *tok_token_text(const struct tokenizer *t, int32_t id, size_t *len)
{
	if (id < 0 || (uint32_t)id >= t->n_vocab)
		return NULL;
	*len = t->tok[id].len;
	return t->text + t->tok[id].off;
}

/* ---- loading ---- */

static const struct gguf_value *find_array(const struct gguf *g, const char *key,
                                           enum gguf_vtype want, int required, char *err,
                                           size_t errlen)
{
	const struct gguf_kv *kv = gguf_find(g, key);

	if (!kv) {
		if (required)
			snprintf(err, errlen, "%s: %s: missing (required for this tokenizer)",
			         g->path, key);
		return NULL;
	}
	if (kv->v.type != GGUF_ARRAY) {
		snprintf(err, errlen, "%s: %s: is a %s, must be an array", g->path, key,
		         gguf_vtype_name(kv->v.type));
		return NULL;
	}
	int numeric = want != GGUF_STRING;
	int is_str = kv->v.arr.type == GGUF_STRING;
	if (numeric == is_str || (want == GGUF_FLOAT32 && kv->v.arr.type != GGUF_FLOAT32 &&
	                          kv->v.arr.type != GGUF_FLOAT64)) {
		snprintf(err, errlen, "%s: %s: array of %s, must be an array of %s", g->path, key,
		         gguf_vtype_name(kv->v.arr.type),
		         want == GGUF_STRING    ? "string"
		         : want == GGUF_FLOAT32 ? "float32"
		                                : "integers");
		return NULL;
	}
	return &kv->v;
}

static int load_id(const struct gguf *g, const char *key, uint32_t n, int32_t *id, char *err,
                   size_t errlen)
{
	uint32_t v;
	int rc = gguf_get_u32(g, key, &v, err, errlen);

	if (rc == -ENOENT)
		return 0;
	if (rc)
		return rc;
	if (v >= n) {
		snprintf(err, errlen, "%s: %s: %u is out of range (the vocabulary has %u tokens)",
		         g->path, key, v, n);
		return -EINVAL;
	}
	*id = (int32_t)v;
	return 0;
}

static int load_flag(const struct gguf *g, const char *key, int *flag, char *err, size_t errlen)
{
	int rc = gguf_get_bool(g, key, flag, err, errlen);
	return rc == -ENOENT ? 0 : rc;
}

static int pre_by_name(const char *name, enum tok_pre *pre)
{
	static const struct {
		const char *name;
		enum tok_pre pre;
	} names[] = {
	    {"default", TOK_PRE_DEFAULT}, {"llama3", TOK_PRE_LLAMA3},
	    {"llama-v3", TOK_PRE_LLAMA3}, {"llama-bpe", TOK_PRE_LLAMA3},
	    {"qwen2", TOK_PRE_QWEN2},     {"deepseek-r1-qwen", TOK_PRE_QWEN2},
	    {"smollm", TOK_PRE_SMOLLM},   {"gpt-2", TOK_PRE_GPT2},
	    {"phi-2", TOK_PRE_GPT2},
	};
	for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
		if (!strcmp(name, names[i].name)) {
			*pre = names[i].pre;
			return 0;
		}
	}
	return -EINVAL;
}

static void index_tokens(struct tokenizer *t)
{
	t->index_mask = table_mask(t->n_vocab);
	t->index = xcalloc((size_t)t->index_mask + 1, sizeof(*t->index));
}

/* Add token id to the index; the id of an earlier token with the same
 * text, or -1. */
static int32_t index_add(struct tokenizer *t, uint32_t id)
{
	const struct tok_entry *e = &t->tok[id];
	int32_t dup = tok_find(t, t->text + e->off, e->len);
	uint32_t i;

	if (dup >= 0 || !e->len)
		return dup;
	for (i = (uint32_t)hash_bytes(t->text + e->off, e->len) & t->index_mask; t->index[i];
	     i = (i + 1) & t->index_mask)
		;
	t->index[i] = id + 1;
	return -1;
}

static int load_tokens(struct tokenizer *t, const struct gguf *g, char *err, size_t errlen)
{
	const struct gguf_value *toks, *scores, *types;
	uint64_t n, total = 0;

	if (!(toks = find_array(g, K_TOKENS, GGUF_STRING, 1, err, errlen)))
		return -EINVAL;
	n = toks->arr.n;
	if (n == 0 || n > INT32_MAX) {
		snprintf(err, errlen, "%s: %s: %llu tokens, must be 1..%d", g->path, K_TOKENS,
		         (unsigned long long)n, INT32_MAX);
		return -EINVAL;
	}
	scores = find_array(g, K_SCORES, GGUF_FLOAT32, t->kind == TOK_SPM, err, errlen);
	if (!scores && (t->kind == TOK_SPM || gguf_find(g, K_SCORES)))
		return -EINVAL;
	if (!(types = find_array(g, K_TYPES, GGUF_INT32, 1, err, errlen)))
		return -EINVAL;
	if ((scores && scores->arr.n != n) || types->arr.n != n) {
		snprintf(err, errlen, "%s: %s: %llu entries, must match %s (%llu)", g->path,
		         types->arr.n != n ? K_TYPES : K_SCORES,
		         (unsigned long long)(types->arr.n != n ? types->arr.n : scores->arr.n),
		         K_TOKENS, (unsigned long long)n);
		return -EINVAL;
	}
	for (uint64_t i = 0; i < n; i++)
		total += gguf_arr_str(g, toks, i).len;
	if (total > UINT32_MAX) {
		snprintf(err, errlen, "%s: %s: token texts total %llu bytes, over 4 GiB", g->path,
		         K_TOKENS, (unsigned long long)total);
		return -EINVAL;
	}
	t->n_vocab = (uint32_t)n;
	t->tok = xcalloc(n, sizeof(*t->tok));
	t->text = xmalloc(total + 1);
	index_tokens(t);
	total = 0;
	for (uint32_t i = 0; i < t->n_vocab; i++) {
		struct gguf_str s = gguf_arr_str(g, toks, i);
		double ty = gguf_arr_num(types, i);
		struct tok_entry *e = &t->tok[i];

		memcpy(t->text + total, s.p, s.len);
		e->off = (uint32_t)total;
		e->len = (uint32_t)s.len;
		total += s.len;
		e->score = scores ? (float)gguf_arr_num(scores, i) : 0.0f;
		if (ty < TOK_TYPE_NORMAL || ty > TOK_TYPE_BYTE) {
			snprintf(err, errlen, "%s: %s: token %u has type %g, must be 1..6", g->path,
			         K_TYPES, i, ty);
			return -EINVAL;
		}
		e->type = (uint8_t)ty;
		int32_t dup = index_add(t, i);
		if (dup >= 0) {
			snprintf(err, errlen, "%s: %s: token %u \"%.*s\" repeats token %d", g->path,
			         K_TOKENS, i, (int)MIN(s.len, 64), s.p, dup);
			return -EINVAL;
		}
	}
	return 0;
}

static int parse_byte_token(const char *s, size_t len)
{
	unsigned v = 0;

	if (len != 6 || memcmp(s, "<0x", 3) || s[5] != '>')
		return -1;
	for (int i = 3; i < 5; i++) {
		char c = s[i];
		int d = c >= '0' && c <= '9'   ? c - '0'
		        : c >= 'A' && c <= 'F' ? c - 'A' + 10
		        : c >= 'a' && c <= 'f' ? c - 'a' + 10
		                               : -1;
		if (d < 0)
			return -1;
		v = v * 16 + (unsigned)d;
	}
	return (int)v;
}

static int load_bytes(struct tokenizer *t, const struct gguf *g, char *err, size_t errlen)
{
	for (int b = 0; b < 256; b++)
		t->byte_tok[b] = -1;
	for (uint32_t i = 0; i < t->n_vocab; i++) {
		if (t->tok[i].type != TOK_TYPE_BYTE)
			continue;
		int b = parse_byte_token(t->text + t->tok[i].off, t->tok[i].len);
		if (b < 0) {
			snprintf(err, errlen,
			         "%s: %s: byte token %u \"%.*s\" is not of the form <0xXX>",
			         g->path, K_TOKENS, i, (int)MIN(t->tok[i].len, 64u),
			         t->text + t->tok[i].off);
			return -EINVAL;
		}
		t->byte_tok[b] = (int32_t)i;
	}
	/* GPT-2's byte mapping: printable bytes stand for themselves, the rest
	 * take code points from U+0100 on, in byte order */
	for (unsigned b = 0, next = 256; b < 256; b++) {
		int self = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174;
		t->byte_cp[b] = (uint16_t)(self ? b : next++);
	}
	return 0;
}

static int load_merges(struct tokenizer *t, const struct gguf *g, char *err, size_t errlen)
{
	const struct gguf_value *m = find_array(g, K_MERGES, GGUF_STRING, 1, err, errlen);

	if (!m)
		return -EINVAL;
	if (m->arr.n > INT32_MAX) {
		snprintf(err, errlen, "%s: %s: %llu merges, too many", g->path, K_MERGES,
		         (unsigned long long)m->arr.n);
		return -EINVAL;
	}
	t->merge_mask = table_mask(m->arr.n);
	t->merge_key = xcalloc((size_t)t->merge_mask + 1, sizeof(*t->merge_key));
	t->merge_rank = xcalloc((size_t)t->merge_mask + 1, sizeof(*t->merge_rank));
	for (uint64_t k = 0; k < m->arr.n; k++) {
		struct gguf_str s = gguf_arr_str(g, m, k);
		const char *sp = s.len > 1 ? memchr(s.p + 1, ' ', s.len - 1) : NULL;
		int32_t l, r;

		if (!sp) {
			snprintf(err, errlen,
			         "%s: %s: merge %llu \"%.*s\" has no space after its first "
			         "byte",
			         g->path, K_MERGES, (unsigned long long)k, (int)MIN(s.len, 64),
			         s.p);
			return -EINVAL;
		}
		l = tok_find(t, s.p, (size_t)(sp - s.p));
		r = tok_find(t, sp + 1, (size_t)(s.p + s.len - sp - 1));
		if (l < 0 || r < 0) {
			snprintf(err, errlen, "%s: %s: merge %llu \"%.*s\" names a token not in %s",
			         g->path, K_MERGES, (unsigned long long)k, (int)MIN(s.len, 64), s.p,
			         K_TOKENS);
			return -EINVAL;
		}
		if (merge_rank(t, l, r) >= 0)
			continue; /* the first rank wins, as llama.cpp */
		uint64_t key = ((uint64_t)(uint32_t)l << 32 | (uint32_t)r) + 1;
		uint32_t i = (uint32_t)hash_u64(key) & t->merge_mask;
		while (t->merge_key[i])
			i = (i + 1) & t->merge_mask;
		t->merge_key[i] = key;
		t->merge_rank[i] = (uint32_t)k;
	}
	return 0;
}

static int cmp_special(const void *a, const void *b, void *arg)
{
	const struct tokenizer *t = arg;
	int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;

	if (t->tok[x].len != t->tok[y].len)
		return t->tok[x].len > t->tok[y].len ? -1 : 1;
	return x < y ? -1 : x > y;
}

static void load_specials(struct tokenizer *t)
{
	t->special = xmalloc(t->n_vocab * sizeof(*t->special));
	for (uint32_t i = 0; i < t->n_vocab; i++) {
		uint8_t ty = t->tok[i].type;
		if (t->tok[i].len &&
		    (ty == TOK_TYPE_CONTROL || ty == TOK_TYPE_USER || ty == TOK_TYPE_UNKNOWN))
			t->special[t->n_special++] = (int32_t)i;
	}
	qsort_r(t->special, t->n_special, sizeof(*t->special), cmp_special, t);
}

static int load_settings(struct tokenizer *t, const struct gguf *g, char *err, size_t errlen)
{
	int rc;

	t->bos = t->eos = t->unk = t->pad = -1;
	if (t->kind == TOK_SPM) {
		/* llama.cpp's defaults for SentencePiece vocabularies */
		t->bos = t->n_vocab > 1 ? 1 : -1;
		t->eos = t->n_vocab > 2 ? 2 : -1;
		t->unk = 0;
		t->add_bos = 1;
		t->add_space_prefix = 1;
	} else {
		t->add_bos = t->pre == TOK_PRE_LLAMA3;
		t->ignore_merges = t->pre == TOK_PRE_LLAMA3;
	}
	if ((rc = load_id(g, "tokenizer.ggml.bos_token_id", t->n_vocab, &t->bos, err, errlen)) ||
	    (rc = load_id(g, "tokenizer.ggml.eos_token_id", t->n_vocab, &t->eos, err, errlen)) ||
	    (rc =
	         load_id(g, "tokenizer.ggml.unknown_token_id", t->n_vocab, &t->unk, err, errlen)) ||
	    (rc =
	         load_id(g, "tokenizer.ggml.padding_token_id", t->n_vocab, &t->pad, err, errlen)) ||
	    (rc = load_flag(g, "tokenizer.ggml.add_bos_token", &t->add_bos, err, errlen)) ||
	    (rc = load_flag(g, "tokenizer.ggml.add_eos_token", &t->add_eos, err, errlen)) ||
	    (rc = load_flag(g, "tokenizer.ggml.add_space_prefix", &t->add_space_prefix, err,
	                    errlen)))
		return rc;
	if (t->add_bos && t->bos < 0) {
		snprintf(err, errlen,
		         "%s: tokenizer.ggml.bos_token_id: missing, but "
		         "tokenizer.ggml.add_bos_token is true",
		         g->path);
		return -EINVAL;
	}
	if (t->add_eos && t->eos < 0) {
		snprintf(err, errlen,
		         "%s: tokenizer.ggml.eos_token_id: missing, but "
		         "tokenizer.ggml.add_eos_token is true",
		         g->path);
		return -EINVAL;
	}
	return 0;
}

int tok_load(struct tokenizer *t, const struct gguf *g, char *err, size_t errlen)
{
	char name[64];
	int rc;

	memset(t, 0, sizeof(*t));
	rc = gguf_get_str(g, K_MODEL, name, sizeof(name), err, errlen);
	if (rc == -ENOENT)
		snprintf(err, errlen, "%s: %s: missing", g->path, K_MODEL);
	if (rc)
		return -EINVAL;
	if (!strcmp(name, "llama")) {
		t->kind = TOK_SPM;
	} else if (!strcmp(name, "gpt2")) {
		t->kind = TOK_BPE;
	} else {
		snprintf(err, errlen, "%s: %s: \"%s\" is not a known model (llama, gpt2)", g->path,
		         K_MODEL, name);
		return -EINVAL;
	}
	t->pre = TOK_PRE_DEFAULT;
	if (t->kind == TOK_BPE) {
		rc = gguf_get_str(g, K_PRE, name, sizeof(name), err, errlen);
		if (rc && rc != -ENOENT)
			return -EINVAL;
		if (!rc && pre_by_name(name, &t->pre)) {
			snprintf(
			    err, errlen,
			    "%s: %s: \"%s\" is not a known pre-tokenizer (default, "
			    "llama3, llama-v3, llama-bpe, qwen2, deepseek-r1-qwen, smollm, gpt-2, "
			    "phi-2)",
			    g->path, K_PRE, name);
			return -EINVAL;
		}
	}
	if ((rc = load_tokens(t, g, err, errlen)) || (rc = load_bytes(t, g, err, errlen)) ||
	    (t->kind == TOK_BPE && (rc = load_merges(t, g, err, errlen))) ||
	    (rc = load_settings(t, g, err, errlen))) {
		tok_release(t);
		return rc;
	}
	load_specials(t);
	return 0;
}

void tok_release(struct tokenizer *t)
{
	free(t->tok);
	free(t->text);
	free(t->index);
	free(t->merge_key);
	free(t->merge_rank);
	free(t->special);
	memset(t, 0, sizeof(*t));
}

/* ---- encoding ---- */

struct ids {
	int32_t *v;
	size_t n, cap;
};

static void ids_push(struct ids *o, int32_t id)
{
	if (o->n == o->cap) {
		o->cap = o->cap ? 2 * o->cap : 64;
		o->v = xrealloc(o->v, o->cap * sizeof(*o->v));
	}
	o->v[o->n++] = id;
}

/* A piece of the input: raw text (id -1) or a special token. */
struct frag {
	size_t off, len;
	int32_t id;
};

/* Cut the text around special tokens' texts, longest token first, as
 * llama.cpp's tokenizer_st_partition. Returns the fragment count. */
static size_t partition(const struct tokenizer *t, const char *text, size_t len, int parse_special,
                        struct frag **out)
{
	struct frag *cur = xmalloc(sizeof(*cur)), *next = NULL;
	size_t n = 0;

	if (len)
		cur[n++] = (struct frag){0, len, -1};
	for (uint32_t k = 0; k < t->n_special && n; k++) {
		const struct tok_entry *e = &t->tok[t->special[k]];
		const char *s = t->text + e->off;
		size_t m = 0, cap = 0;

		if (!parse_special && e->type != TOK_TYPE_USER)
			continue;
		for (size_t f = 0; f < n; f++) {
			size_t pos = cur[f].off, end = cur[f].off + cur[f].len;
			for (;;) {
				const char *hit = NULL;
				if (cur[f].id < 0 && end - pos >= e->len)
					hit = memmem(text + pos, end - pos, s, e->len);
				size_t h = hit ? (size_t)(hit - text) : end;
				if (m + 2 > cap) {
					cap = cap ? 2 * cap : 2 * n + 4;
					next = xrealloc(next, cap * sizeof(*next));
				}
				if (cur[f].id >= 0) {
					next[m++] = cur[f];
					break;
				}
				if (h > pos)
					next[m++] = (struct frag){pos, h - pos, -1};
				if (!hit)
					break;
				next[m++] = (struct frag){h, e->len, t->special[k]};
				pos = h + e->len;
			}
		}
		struct frag *tmp = cur;
		cur = next;
		next = tmp;
		n = m;
		free(next);
		next = NULL;
	}
	*out = cur;
	return n;
}

/* A symbol of the merge loop: a span of the text, linked to its live
 * neighbours; n == 0 once merged into its left neighbour. */
struct sym {
	int prev, next;
	size_t off, n;
	int32_t id; /* BPE: the token the span is, or -1 */
};

struct bigram {
	double key; /* SPM: -score, BPE: rank; lowest first */
	int left, right;
	size_t size;
};

struct heap {
	struct bigram *v;
	size_t n, cap;
};

static int bigram_before(const struct bigram *a, const struct bigram *b)
{
	return a->key < b->key || (a->key == b->key && a->left < b->left);
}

static void heap_push(struct heap *h, struct bigram b)
{
	size_t i;

	if (h->n == h->cap) {
		h->cap = h->cap ? 2 * h->cap : 64;
		h->v = xrealloc(h->v, h->cap * sizeof(*h->v));
	}
	for (i = h->n++; i > 0 && bigram_before(&b, &h->v[(i - 1) / 2]); i = (i - 1) / 2)
		h->v[i] = h->v[(i - 1) / 2];
	h->v[i] = b;
}

static struct bigram heap_pop(struct heap *h)
{
	struct bigram top = h->v[0], last = h->v[--h->n];
	size_t i = 0;

	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= h->n)
			break;
		if (c + 1 < h->n && bigram_before(&h->v[c + 1], &h->v[c]))
			c++;
		if (!bigram_before(&h->v[c], &last))
			break;
		h->v[i] = h->v[c];
		i = c;
	}
	if (h->n)
		h->v[i] = last;
	return top;
}

/* The merge loop shared by SPM and BPE over the symbols of s. */
struct merger {
	const struct tokenizer *t;
	const char *s;
	struct sym *sym;
	size_t n_sym;
	struct heap heap;
};

static void merger_split(struct merger *m, const char *s, size_t len)
{
	m->s = s;
	m->n_sym = 0;
	m->heap.n = 0;
	m->sym = xrealloc(m->sym, (len ? len : 1) * sizeof(*m->sym));
	for (size_t off = 0; off < len;) {
		size_t n = MIN(uni_lead_len((unsigned char)s[off]), len - off);
		struct sym *y = &m->sym[m->n_sym];
		y->prev = (int)m->n_sym - 1;
		y->next = off + n == len ? -1 : (int)m->n_sym + 1;
		y->off = off;
		y->n = n;
		y->id = tok_find(m->t, s + off, n);
		m->n_sym++;
		off += n;
	}
}

static void try_pair(struct merger *m, int l, int r)
{
	const struct tokenizer *t = m->t;
	struct bigram b;

	if (l < 0 || r < 0)
		return;
	b.left = l;
	b.right = r;
	b.size = m->sym[l].n + m->sym[r].n;
	if (t->kind == TOK_SPM) {
		int32_t id = tok_find(t, m->s + m->sym[l].off, b.size);
		if (id < 0)
			return;
		b.key = -(double)t->tok[id].score;
	} else {
		int64_t rank = merge_rank(t, m->sym[l].id, m->sym[r].id);
		if (rank < 0)
			return;
		b.key = (double)rank;
	}
	heap_push(&m->heap, b);
}

static void merger_run(struct merger *m)
{
	for (size_t i = 1; i < m->n_sym; i++)
		try_pair(m, (int)i - 1, (int)i);
	while (m->heap.n) {
		struct bigram b = heap_pop(&m->heap);
		struct sym *l = &m->sym[b.left], *r = &m->sym[b.right];

		/* stale: either side merged since the pair was queued */
		if (!l->n || !r->n || l->n + r->n != b.size)
			continue;
		l->n += r->n;
		r->n = 0;
		l->next = r->next;
		if (r->next >= 0)
			m->sym[r->next].prev = b.left;
		l->id = tok_find(m->t, m->s + l->off, l->n);
		try_pair(m, l->prev, b.left);
		try_pair(m, b.left, l->next);
	}
}

/* SPM: each live symbol is its token, or its bytes' byte tokens, or the
 * unknown token. */
static int spm_emit(struct merger *m, struct ids *o)
{
	const struct tokenizer *t = m->t;

	for (int i = m->n_sym ? 0 : -1; i >= 0; i = m->sym[i].next) {
		const struct sym *y = &m->sym[i];
		int unk = 0;

		if (y->id >= 0) {
			ids_push(o, y->id);
			continue;
		}
		for (size_t k = 0; k < y->n; k++) {
			unsigned char c = (unsigned char)m->s[y->off + k];
			int32_t id =
			    t->byte_tok[c] >= 0 ? t->byte_tok[c] : tok_find(t, (char *)&c, 1);
			if (id >= 0)
				ids_push(o, id);
			else
				unk = 1;
		}
		if (unk) {
			if (t->unk < 0)
				return -EINVAL;
			ids_push(o, t->unk);
		}
	}
	return 0;
}

static int spm_encode(struct merger *m, const char *text, size_t len, int space_prefix,
                      struct buf *scratch, struct ids *o)
{
	buf_reset(scratch);
	if (space_prefix)
		buf_puts(scratch, "\xe2\x96\x81");
	for (size_t i = 0; i < len; i++) {
		if (text[i] == ' ')
			buf_puts(scratch, "\xe2\x96\x81");
		else
			buf_append(scratch, text + i, 1);
	}
	merger_split(m, scratch->data, scratch->len);
	merger_run(m);
	return spm_emit(m, o);
}

/* BPE: code points (invalid UTF-8 read as U+FFFD, as llama.cpp), the
 * pre-tokenizer's pieces, each piece's UTF-8 mapped byte by byte to GPT-2's
 * code points, then merged. */
static void bpe_encode(struct merger *m, const char *text, size_t len, struct buf *scratch,
                       struct ids *o)
{
	const struct tokenizer *t = m->t;
	uint32_t *cps = xmalloc((len + 1) * sizeof(*cps));
	unsigned *flags = xmalloc((len + 1) * sizeof(*flags));
	size_t *ends = xmalloc((len + 1) * sizeof(*ends));
	size_t n = 0, n_pieces, start = 0;

	for (size_t off = 0; off < len; n++) {
		off += uni_decode(text + off, len - off, &cps[n]);
		flags[n] = uni_flags(cps[n]);
	}
	n_pieces = pretok_split(t->pre, cps, flags, n, ends);
	for (size_t p = 0; p < n_pieces; start = ends[p++]) {
		buf_reset(scratch);
		for (size_t i = start; i < ends[p]; i++) {
			char u[4], e[4];
			size_t nu = uni_encode(cps[i], u);
			for (size_t k = 0; k < nu; k++)
				buf_append(scratch, e,
				           uni_encode(t->byte_cp[(unsigned char)u[k]], e));
		}
		if (t->ignore_merges) {
			int32_t id = tok_find(t, scratch->data, scratch->len);
			if (id >= 0) {
				ids_push(o, id);
				continue;
			}
		}
		merger_split(m, scratch->data, scratch->len);
		merger_run(m);
		for (int i = m->n_sym ? 0 : -1; i >= 0; i = m->sym[i].next) {
			const struct sym *y = &m->sym[i];
			if (y->id >= 0) {
				ids_push(o, y->id);
				continue;
			}
			/* not a token: its single bytes that are tokens (llama.cpp) */
			for (size_t k = 0; k < y->n; k++) {
				int32_t id = tok_find(t, m->s + y->off + k, 1);
				if (id >= 0)
					ids_push(o, id);
			}
		}
	}
	free(cps);
	free(flags);
	free(ends);
}

int tok_encode(const struct tokenizer *t, const char *text, size_t len, int add_special,
               int parse_special, int32_t *out, size_t max, size_t *n_out)
{
	struct merger m = {.t = t};
	struct ids o = {0};
	struct buf scratch;
	struct frag *frags;
	size_t n_frags = partition(t, text, len, parse_special, &frags);
	int prev_special = 1, rc = 0;

	buf_init(&scratch, BUF_UNLIMITED);
	if (add_special && t->add_bos)
		ids_push(&o, t->bos);
	for (size_t f = 0; f < n_frags && !rc; f++) {
		if (frags[f].id >= 0) {
			ids_push(&o, frags[f].id);
			prev_special = 1;
			continue;
		}
		if (t->kind == TOK_SPM)
			rc = spm_encode(&m, text + frags[f].off, frags[f].len,
			                t->add_space_prefix && prev_special, &scratch, &o);
		else
			bpe_encode(&m, text + frags[f].off, frags[f].len, &scratch, &o);
		prev_special = 0;
	}
	if (add_special && t->add_eos)
		ids_push(&o, t->eos);
	if (!rc) {
		*n_out = o.n;
		if (o.n > max)
			rc = -ENOSPC;
		else if (o.n)
			memcpy(out, o.v, o.n * sizeof(*out));
	}
	free(o.v);
	free(frags);
	free(m.sym);
	free(m.heap.v);
	buf_release(&scratch);
	return rc;
}

/* ---- decoding ---- */

int tok_piece(const struct tokenizer *t, int32_t id, int special, struct buf *out)
{
	const struct tok_entry *e;
	const char *s;

	if (id < 0 || (uint32_t)id >= t->n_vocab)
		return -EINVAL;
	e = &t->tok[id];
	s = t->text + e->off;
	switch (e->type) {
	case TOK_TYPE_CONTROL:
		return special ? buf_append(out, s, e->len) : 0;
	case TOK_TYPE_USER:
		return buf_append(out, s, e->len);
	case TOK_TYPE_UNUSED:
		return 0;
	case TOK_TYPE_UNKNOWN:
		return buf_puts(out, "\xe2\x96\x85"); /* as llama.cpp shows it */
	case TOK_TYPE_BYTE:
		if (t->kind == TOK_SPM) {
			char c = (char)parse_byte_token(s, e->len);
			return buf_append(out, &c, 1);
		}
		break;
	}
	if (t->kind == TOK_SPM) {
		for (size_t i = 0; i < e->len; i++) {
			int rc;
			if (i + 3 <= e->len && !memcmp(s + i, "\xe2\x96\x81", 3)) {
				rc = buf_append(out, " ", 1);
				i += 2;
			} else {
				rc = buf_append(out, s + i, 1);
			}
			if (rc)
				return rc;
		}
		return 0;
	}
	for (size_t i = 0; i < e->len;) {
		uint32_t cp;
		size_t n = uni_decode(s + i, e->len - i, &cp);
		char c = 0;
		int found = 0, rc;

		for (unsigned b = 0; b < 256 && !found; b++)
			if (t->byte_cp[b] == cp)
				c = (char)b, found = 1;
		rc = found ? buf_append(out, &c, 1) : buf_append(out, s + i, n);
		if (rc)
			return rc;
		i += n;
	}
	return 0;
}

void tok_stream_init(struct tok_stream *s, const struct tokenizer *t, int special)
{
	memset(s, 0, sizeof(*s));
	s->t = t;
	s->special = special;
	s->at_start = 1;
}

/* 1 when b[0..n) can begin a well-formed sequence that needs more bytes. */
static int utf8_prefix_ok(const unsigned char *b, size_t n)
{
	size_t need = b[0] >= 0xc2 && b[0] <= 0xdf   ? 2
	              : b[0] >= 0xe0 && b[0] <= 0xef ? 3
	              : b[0] >= 0xf0 && b[0] <= 0xf4 ? 4
	                                             : 0;

	if (!need || n >= need)
		return 0;
	for (size_t i = 1; i < n; i++) {
		unsigned lo = 0x80, hi = 0xbf;
		if (i == 1 && b[0] == 0xe0)
			lo = 0xa0;
		if (i == 1 && b[0] == 0xed)
			hi = 0x9f;
		if (i == 1 && b[0] == 0xf0)
			lo = 0x90;
		if (i == 1 && b[0] == 0xf4)
			hi = 0x8f;
		if (b[i] < lo || b[i] > hi)
			return 0;
	}
	return 1;
}

/* Append the whole characters of b[0..n), U+FFFD for bytes that cannot
 * start one, and hold an incomplete tail. */
static int stream_emit(struct tok_stream *s, const unsigned char *b, size_t n, struct buf *out)
{
	size_t i = 0;

	while (i < n) {
		int k = utf8_seq_len((const char *)b + i, n - i);
		int rc;
		if (k > 0) {
			rc = buf_append(out, b + i, (size_t)k);
			i += (size_t)k;
		} else if (utf8_prefix_ok(b + i, n - i)) {
			memcpy(s->held, b + i, n - i);
			s->n_held = n - i;
			return 0;
		} else {
			rc = buf_puts(out, "\xef\xbf\xbd");
			i++;
		}
		if (rc)
			return rc;
	}
	return 0;
}

int tok_stream_push(struct tok_stream *s, int32_t id, struct buf *out)
{
	struct buf piece;
	int rc;

	buf_init(&piece, BUF_UNLIMITED);
	buf_append(&piece, s->held, s->n_held);
	rc = tok_piece(s->t, id, s->special, &piece);
	if (!rc) {
		size_t skip = 0;
		/* llama.cpp drops the space prefix of the first token only: a BOS
		 * first keeps the next token's space */
		if (s->at_start && s->t->kind == TOK_SPM && s->t->add_space_prefix &&
		    piece.len > s->n_held && piece.data[s->n_held] == ' ' && !s->n_held)
			skip = 1;
		s->at_start = 0;
		s->n_held = 0;
		rc = stream_emit(s, (unsigned char *)piece.data + skip, piece.len - skip, out);
	}
	buf_release(&piece);
	return rc;
}

int tok_stream_flush(struct tok_stream *s, struct buf *out)
{
	int rc = 0;

	if (s->n_held)
		rc = buf_puts(out, "\xef\xbf\xbd");
	s->n_held = 0;
	return rc;
}

int tok_decode(const struct tokenizer *t, const int32_t *ids, size_t n, int special,
               struct buf *out)
{
	struct tok_stream s;
	int rc = 0;

	tok_stream_init(&s, t, special);
	for (size_t i = 0; i < n && !rc; i++)
		rc = tok_stream_push(&s, ids[i], out);
	return rc ? rc : tok_stream_flush(&s, out);
}
