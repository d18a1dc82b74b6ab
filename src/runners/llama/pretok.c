/* pretok.c: pre-tokenizer splits for byte-level BPE (see pretok.h).
 *
 * Each split walks one piece [lo, hi) of code points; looking outside the
 * piece reads as "no character" (flags 0), so a lookahead such as
 * \s+(?!\S) sees the piece's end as the end of the text, as in llama.cpp
 * where each regex step works on the pieces of the step before. */
#include "runners/llama/pretok.h"

#include <stdlib.h>
#include <string.h>

#include "runners/llama/unicode.h"
#include "util.h"

#define NO_CP UINT32_MAX

struct piece {
	const uint32_t *cps;
	const unsigned *flags;
	size_t lo, hi;
};

struct ends {
	size_t *v;
	size_t n;
};

static uint32_t cp_at(const struct piece *p, size_t i)
{
	return i >= p->lo && i < p->hi ? p->cps[i] : NO_CP;
}

static unsigned fl_at(const struct piece *p, size_t i)
{
	return i >= p->lo && i < p->hi ? p->flags[i] : 0;
}

/* Close a piece at e (no empty pieces). */
static void cut(struct ends *o, size_t e, size_t lo)
{
	size_t last = o->n ? o->v[o->n - 1] : 0;

	if (last < lo)
		last = lo;
	if (e > last)
		o->v[o->n++] = e;
}

static int is_crlf(uint32_t c)
{
	return c == '\r' || c == '\n';
}

/* [^\s\p{L}\p{N}] over a character that exists */
static int is_other(unsigned f)
{
	return f && !(f & (UNI_SPACE | UNI_LETTER | UNI_NUMBER));
}

static uint32_t lower_ascii(uint32_t c)
{
	return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

/* Length of a contraction ('s 't 'm 'd 're 've 'll) at i, or 0. */
static size_t contraction(const struct piece *p, size_t i, int any_case)
{
	uint32_t a, b;

	if (cp_at(p, i) != '\'' || i + 1 >= p->hi)
		return 0;
	a = cp_at(p, i + 1);
	if (any_case)
		a = lower_ascii(a);
	if (a == 's' || a == 't' || a == 'm' || a == 'd')
		return 2;
	if (i + 2 >= p->hi)
		return 0;
	b = cp_at(p, i + 2);
	if (any_case)
		b = lower_ascii(b);
	if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l'))
		return 3;
	return 0;
}

/* A whitespace run at i ending before a non-space: all but its last
 * character (\s+(?!\S)); at the piece's end or alone: all of it (\s+). */
static size_t space_run(const struct piece *p, size_t i)
{
	size_t n = 0;

	while (fl_at(p, i + n) & UNI_SPACE)
		n++;
	if (n > 1 && cp_at(p, i + n) != NO_CP)
		return n - 1;
	return n;
}

static void split_gpt2(const struct piece *p, struct ends *o)
{
	size_t i = p->lo;

	while (i < p->hi) {
		size_t n = contraction(p, i, 0);
		size_t sp = cp_at(p, i) == ' ';
		unsigned f = fl_at(p, i + sp);

		if (n) {
			i += n;
		} else if (f & (UNI_LETTER | UNI_NUMBER)) {
			unsigned cls = f & (UNI_LETTER | UNI_NUMBER);
			i += sp;
			while (fl_at(p, i) & cls)
				i++;
		} else if (is_other(f)) {
			i += sp;
			while (is_other(fl_at(p, i)))
				i++;
		} else if ((n = space_run(p, i))) {
			i += n;
		} else {
			i++;
		}
		cut(o, i, p->lo);
	}
}

/* llama3 (max_digits 3) and qwen2 (max_digits 1) */
static void split_llama3(const struct piece *p, struct ends *o, size_t max_digits)
{
	size_t i = p->lo;

	while (i < p->hi) {
		uint32_t c = cp_at(p, i);
		unsigned f = fl_at(p, i);
		size_t n = contraction(p, i, 1);

		if (n) {
			i += n;
			cut(o, i, p->lo);
			continue;
		}
		/* [^\r\n\p{L}\p{N}]?\p{L}+ */
		if (!is_crlf(c) && !(f & UNI_NUMBER) &&
		    ((f & UNI_LETTER) || (fl_at(p, i + 1) & UNI_LETTER))) {
			i++;
			while (fl_at(p, i) & UNI_LETTER)
				i++;
			cut(o, i, p->lo);
			continue;
		}
		/* \p{N}{1,max} */
		if (f & UNI_NUMBER) {
			size_t start = i;
			while ((fl_at(p, i) & UNI_NUMBER) && i - start < max_digits)
				i++;
			cut(o, i, p->lo);
			continue;
		}
		/* ' ?[^\s\p{L}\p{N}]+[\r\n]*' */
		size_t sp = c == ' ';
		if (is_other(fl_at(p, i + sp))) {
			i += sp;
			while (is_other(fl_at(p, i)))
				i++;
			while (is_crlf(cp_at(p, i)))
				i++;
			cut(o, i, p->lo);
			continue;
		}
		/* \s*[\r\n]+ : the whitespace run up to its last CR or LF */
		size_t run = 0, last_nl = 0;
		while (fl_at(p, i + run) & UNI_SPACE) {
			if (is_crlf(cp_at(p, i + run)))
				last_nl = run + 1;
			run++;
		}
		if (last_nl)
			i += last_nl;
		else if ((n = space_run(p, i)))
			i += n;
		else
			i++;
		cut(o, i, p->lo);
	}
}

typedef int cp_pred(uint32_t c, unsigned f);

static int pred_number(uint32_t c, unsigned f)
{
	return (f & UNI_NUMBER) != 0;
}

static int pred_ascii_digit(uint32_t c, unsigned f)
{
	return c >= '0' && c <= '9';
}

/* default's [\p{P}\$\+<=>\^~\|] */
static int pred_punct(uint32_t c, unsigned f)
{
	return (f & UNI_PUNCT) || c == '$' || c == '+' || c == '<' || c == '=' || c == '>' ||
	       c == '^' || c == '~' || c == '|';
}

/* A regex that matches runs of pred: chunk 0 takes whole runs (X+), chunk k
 * with exact takes runs of exactly k (X{k}, the rest of a run joins the
 * text between matches), chunk k without exact takes 1..k (X{1,k}). */
static void split_runs(const struct piece *p, struct ends *o, cp_pred *pred, size_t chunk,
                       int exact)
{
	size_t i = p->lo;

	while (i < p->hi) {
		if (!pred(p->cps[i], p->flags[i])) {
			i++;
			continue;
		}
		size_t r = i;
		while (r < p->hi && pred(p->cps[r], p->flags[r]))
			r++;
		size_t take = r - i;
		if (chunk && exact)
			take -= take % chunk;
		if (take) {
			cut(o, i, p->lo);
			for (size_t k = i; k < i + take;) {
				k += chunk ? MIN(chunk, i + take - k) : take;
				cut(o, k, p->lo);
			}
		}
		i = r;
	}
	cut(o, p->hi, p->lo);
}

enum step {
	STEP_GPT2,
	STEP_LLAMA3,
	STEP_QWEN2,
	STEP_DIGIT_EACH,
	STEP_PUNCT,
	STEP_NUMBERS,
	STEP_DIGIT3
};

static void run_step(enum step s, const struct piece *p, struct ends *o)
{
	switch (s) {
	case STEP_GPT2:
		split_gpt2(p, o);
		break;
	case STEP_LLAMA3:
		split_llama3(p, o, 3);
		break;
	case STEP_QWEN2:
		split_llama3(p, o, 1);
		break;
	case STEP_DIGIT_EACH:
		split_runs(p, o, pred_number, 1, 0);
		break;
	case STEP_PUNCT:
		split_runs(p, o, pred_punct, 0, 0);
		break;
	case STEP_NUMBERS:
		split_runs(p, o, pred_number, 0, 0);
		break;
	case STEP_DIGIT3:
		split_runs(p, o, pred_ascii_digit, 3, 1);
		break;
	}
	cut(o, p->hi, p->lo);
}

size_t pretok_split(enum tok_pre pre, const uint32_t *cps, const unsigned *flags, size_t n,
                    size_t *ends)
{
	static const enum step s_default[] = {STEP_PUNCT, STEP_GPT2, STEP_NUMBERS, STEP_DIGIT3};
	static const enum step s_gpt2[] = {STEP_GPT2};
	static const enum step s_llama3[] = {STEP_LLAMA3};
	static const enum step s_qwen2[] = {STEP_QWEN2};
	static const enum step s_smollm[] = {STEP_DIGIT_EACH, STEP_GPT2};
	const enum step *steps = s_default;
	size_t n_steps = ARRAY_SIZE(s_default);
	struct ends cur = {ends, 0}, next;

	switch (pre) {
	case TOK_PRE_DEFAULT:
		break;
	case TOK_PRE_GPT2:
		steps = s_gpt2, n_steps = 1;
		break;
	case TOK_PRE_LLAMA3:
		steps = s_llama3, n_steps = 1;
		break;
	case TOK_PRE_QWEN2:
		steps = s_qwen2, n_steps = 1;
		break;
	case TOK_PRE_SMOLLM:
		steps = s_smollm, n_steps = ARRAY_SIZE(s_smollm);
		break;
	}
	if (!n)
		return 0;
	next.v = xmalloc(n * sizeof(*next.v));
	cur.v[cur.n++] = n; /* one piece: the whole text */
	for (size_t s = 0; s < n_steps; s++) {
		size_t lo = 0;
		next.n = 0;
		for (size_t k = 0; k < cur.n; k++) {
			struct piece p = {cps, flags, lo, cur.v[k]};
			run_step(steps[s], &p, &next);
			lo = cur.v[k];
		}
		memcpy(cur.v, next.v, next.n * sizeof(*next.v));
		cur.n = next.n;
	}
	free(next.v);
	return cur.n;
}
