/* sample.c: see sample.h.
 *
 * top_p needs the tokens in probability order, but sorting a 150k-token
 * vocabulary per token is too slow: tokens are first put into 64 buckets by
 * log2(p_max / p); only the bucket where the cumulative mass crosses top_p
 * is sorted, which keeps the cut exact. */
#include "sample.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

void llama_sample_defaults(struct llama_sample_params *p)
{
	memset(p, 0, sizeof(*p));
	p->temperature = 1.0f;
	p->top_p = 1.0f;
	p->repetition_penalty = 1.0f;
}

static uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

/* xoshiro256** */
static uint64_t next_u64(uint64_t *s)
{
	uint64_t r = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return r;
}

void llama_sampler_init(struct llama_sampler *s, const struct llama_sample_params *p,
			uint32_t n_vocab)
{
	uint64_t z = p->seed;

	memset(s, 0, sizeof(*s));
	s->p = *p;
	s->n_vocab = n_vocab;
	for (int i = 0; i < 4; i++) { /* splitmix64 expands the seed */
		z += 0x9e3779b97f4a7c15ull;
		uint64_t x = z;
		x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
		x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
		s->rng[i] = x ^ (x >> 31);
	}
	s->generated = xcalloc(n_vocab, sizeof(uint32_t));
	s->seen = xcalloc(n_vocab, 1);
	s->probs = xcalloc(n_vocab, sizeof(float));
	s->cand = xcalloc(n_vocab, sizeof(int32_t));
}

void llama_sampler_release(struct llama_sampler *s)
{
	free(s->generated);
	free(s->seen);
	free(s->probs);
	free(s->cand);
	free(s->orig);
	memset(s, 0, sizeof(*s));
}

void llama_sampler_prompt(struct llama_sampler *s, int32_t token)
{
	if (token >= 0 && (uint32_t)token < s->n_vocab)
		s->seen[token] = 1;
}

void llama_sampler_accept(struct llama_sampler *s, int32_t token)
{
	if (token >= 0 && (uint32_t)token < s->n_vocab) {
		s->seen[token] = 1;
		s->generated[token]++;
	}
}

/* Model log-probabilities for logprobs: chosen token and the n_top best. */
static void fill_logprobs(const struct llama_sampler *s, const float *logits, int32_t chosen,
			  struct llama_logprob *lp, int n_top)
{
	uint32_t V = s->n_vocab;
	float mx = logits[0];
	double sum = 0;

	for (uint32_t i = 1; i < V; i++)
		if (logits[i] > mx)
			mx = logits[i];
	for (uint32_t i = 0; i < V; i++)
		sum += exp((double)(logits[i] - mx));
	float lse = mx + (float)log(sum);
	lp[0].token = chosen;
	lp[0].logprob = logits[chosen] - lse;
	for (int k = 0; k < n_top; k++) {
		int32_t best = -1;
		for (uint32_t i = 0; i < V; i++) {
			int taken = 0;
			for (int j = 0; j < k && !taken; j++)
				taken = lp[1 + j].token == (int32_t)i;
			if (!taken && (best < 0 || logits[i] > logits[best]))
				best = (int32_t)i;
		}
		lp[1 + k].token = best;
		lp[1 + k].logprob = logits[best] - lse;
	}
}

static const float *cmp_probs;

static int cmp_desc(const void *a, const void *b)
{
	float x = cmp_probs[*(const int32_t *)a], y = cmp_probs[*(const int32_t *)b];

	if (x != y)
		return x < y ? 1 : -1;
	return *(const int32_t *)a - *(const int32_t *)b;
}

static void penalize(struct llama_sampler *s, float *logits)
{
	const struct llama_sample_params *p = &s->p;

	if (p->repetition_penalty == 1.0f && p->presence_penalty == 0 && p->frequency_penalty == 0)
		return;
	for (uint32_t i = 0; i < s->n_vocab; i++) {
		if (s->seen[i] && p->repetition_penalty != 1.0f)
			logits[i] = logits[i] > 0 ? logits[i] / p->repetition_penalty
						  : logits[i] * p->repetition_penalty;
		if (s->generated[i])
			logits[i] -= p->presence_penalty + p->frequency_penalty * (float)s->generated[i];
	}
}

int32_t llama_sample(struct llama_sampler *s, float *logits, struct llama_logprob *lp, int n_top)
{
	const struct llama_sample_params *p = &s->p;
	uint32_t V = s->n_vocab;
	int32_t chosen = 0;

	if (lp) { /* the model's distribution, before anything changes it */
		if (!s->orig)
			s->orig = xmalloc(V * sizeof(float));
		memcpy(s->orig, logits, V * sizeof(float));
	}
	penalize(s, logits);
	if (p->temperature <= 0) {
		for (uint32_t i = 1; i < V; i++)
			if (logits[i] > logits[chosen])
				chosen = (int32_t)i;
		goto done;
	}
	/* top_k by a threshold: the k-th largest logit */
	float kth = -INFINITY;
	if (p->top_k > 0 && (uint32_t)p->top_k < V) {
		memcpy(s->probs, logits, V * sizeof(float));
		for (uint32_t i = 0; i < V; i++)
			s->cand[i] = (int32_t)i;
		cmp_probs = s->probs;
		qsort(s->cand, V, sizeof(int32_t), cmp_desc); /* only with top_k set */
		kth = logits[s->cand[p->top_k - 1]];
	}
	float mx = -INFINITY;
	for (uint32_t i = 0; i < V; i++)
		if (logits[i] > mx)
			mx = logits[i];
	double sum = 0;
	for (uint32_t i = 0; i < V; i++) {
		float q = logits[i] >= kth ? expf((logits[i] - mx) / p->temperature) : 0.0f;
		s->probs[i] = q;
		sum += q;
	}
	/* min_p relative to the most likely token (whose unnormalised p is 1) */
	if (p->min_p > 0)
		for (uint32_t i = 0; i < V; i++)
			if (s->probs[i] < p->min_p) {
				sum -= s->probs[i];
				s->probs[i] = 0;
			}
	if (p->top_p < 1.0f) {
		/* buckets by log2 of p_max / p; p_max is 1 here */
		double mass[65] = {0};
		for (uint32_t i = 0; i < V; i++) {
			if (s->probs[i] <= 0)
				continue;
			int b = (int)(-log2f(s->probs[i]));
			mass[b < 0 ? 0 : b > 63 ? 63 : b] += s->probs[i];
		}
		double want = p->top_p * sum, acc = 0;
		int cross = 63;
		for (int b = 0; b < 64; b++) {
			if (acc + mass[b] >= want) {
				cross = b;
				break;
			}
			acc += mass[b];
		}
		/* keep buckets above cross; in cross keep the best until want */
		uint32_t n = 0;
		for (uint32_t i = 0; i < V; i++) {
			if (s->probs[i] <= 0)
				continue;
			int b = (int)(-log2f(s->probs[i]));
			b = b < 0 ? 0 : b > 63 ? 63 : b;
			if (b == cross)
				s->cand[n++] = (int32_t)i;
			else if (b > cross)
				s->probs[i] = 0;
		}
		cmp_probs = s->probs;
		qsort(s->cand, n, sizeof(int32_t), cmp_desc);
		for (uint32_t j = 0; j < n; j++) {
			if (acc >= want)
				s->probs[s->cand[j]] = 0;
			else
				acc += s->probs[s->cand[j]];
		}
		sum = 0;
		for (uint32_t i = 0; i < V; i++)
			sum += s->probs[i];
	}
	double r = (double)(next_u64(s->rng) >> 11) / 9007199254740992.0 * sum, c = 0;
	chosen = -1;
	for (uint32_t i = 0; i < V; i++) {
		if (s->probs[i] <= 0)
			continue;
		chosen = (int32_t)i;
		c += s->probs[i];
		if (c > r)
			break;
	}
	if (chosen < 0)
		chosen = 0;
done:
	if (lp)
		fill_logprobs(s, s->orig, chosen, lp, n_top);
	llama_sampler_accept(s, chosen);
	return chosen;
}
