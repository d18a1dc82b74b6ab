/* test_llama_sample.c: unit tests for token sampling
 * (src/runners/llama/sample.c): greedy and its tie rule, seeded draws that
 * repeat, top_k, top_p (including the bucketed exact cut on a large
 * vocabulary), min_p, the three penalties, and log-probabilities of the
 * model's own distribution. Frequencies are checked with bounds many
 * standard deviations wide, from a fixed seed, so the tests cannot flake. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "runners/llama/sample.h"
#include "util.h"

/* logits whose softmax at temperature 1 is probs */
static void from_probs(float *logits, const double *probs, int n)
{
	for (int i = 0; i < n; i++)
		logits[i] = probs[i] > 0 ? (float)log(probs[i]) : -INFINITY;
}

static void counts(struct llama_sample_params *p, const double *probs, int n, int draws, int *out)
{
	struct llama_sampler s;
	float *l = xmalloc((size_t)n * sizeof(float));

	memset(out, 0, (size_t)n * sizeof(int));
	llama_sampler_init(&s, p, (uint32_t)n);
	for (int d = 0; d < draws; d++) {
		from_probs(l, probs, n);
		int32_t t = llama_sample(&s, l, NULL, 0);
		assert_true(t >= 0 && t < n);
		out[t]++;
		s.generated[t] = 0; /* no penalties accumulate here */
	}
	llama_sampler_release(&s);
	free(l);
}

static const double four[4] = {0.5, 0.3, 0.15, 0.05};

static void test_greedy(void **state)
{
	struct llama_sample_params p;
	struct llama_sampler s;
	float l[5] = {0.1f, 2.0f, -1.0f, 2.0f, 1.9f};

	llama_sample_defaults(&p);
	p.temperature = 0;
	llama_sampler_init(&s, &p, 5);
	assert_int_equal(llama_sample(&s, l, NULL, 0), 1); /* tie: lowest id */
	llama_sampler_release(&s);
}

static void test_seeded_draws_repeat(void **state)
{
	struct llama_sample_params p;
	int a[4], b[4], c[4];
	struct llama_sampler s1, s2;
	float l1[4], l2[4];

	llama_sample_defaults(&p);
	p.seed = 1234;
	llama_sampler_init(&s1, &p, 4);
	llama_sampler_init(&s2, &p, 4);
	for (int i = 0; i < 200; i++) {
		from_probs(l1, four, 4);
		from_probs(l2, four, 4);
		assert_int_equal(llama_sample(&s1, l1, NULL, 0), llama_sample(&s2, l2, NULL, 0));
	}
	llama_sampler_release(&s1);
	llama_sampler_release(&s2);
	counts(&p, four, 4, 20000, a);
	counts(&p, four, 4, 20000, b);
	assert_memory_equal(a, b, sizeof(a));
	p.seed = 99;
	counts(&p, four, 4, 20000, c);
	assert_memory_not_equal(a, c, sizeof(a));
	/* frequencies follow the distribution (sd of 20000 draws < 0.0036) */
	for (int i = 0; i < 4; i++)
		assert_true(fabs(a[i] / 20000.0 - four[i]) < 0.02);
}

static void test_top_k_top_p_min_p(void **state)
{
	struct llama_sample_params p;
	int c[4];

	llama_sample_defaults(&p);
	p.seed = 7;
	p.top_k = 1;
	p.temperature = 5;
	counts(&p, four, 4, 2000, c);
	assert_int_equal(c[0], 2000);
	p.top_k = 2;
	counts(&p, four, 4, 20000, c);
	assert_true(c[2] == 0 && c[3] == 0 && c[0] > 0 && c[1] > 0);
	llama_sample_defaults(&p);
	p.seed = 8;
	p.top_p = 0.79f; /* 0.5 + 0.3 reaches it: tokens 0 and 1, renormalised */
	counts(&p, four, 4, 20000, c);
	assert_true(c[2] == 0 && c[3] == 0);
	assert_true(fabs(c[0] / 20000.0 - 0.625) < 0.02);
	p.top_p = 0.81f; /* needs token 2 as well */
	counts(&p, four, 4, 20000, c);
	assert_true(c[2] > 0 && c[3] == 0);
	llama_sample_defaults(&p);
	p.seed = 9;
	p.min_p = 0.4f; /* p / p_max: 1, 0.6, 0.3, 0.1 */
	counts(&p, four, 4, 20000, c);
	assert_true(c[0] > 0 && c[1] > 0 && c[2] == 0 && c[3] == 0);
}

static void test_top_p_large_vocabulary(void **state)
{
	/* 150000 tokens: one at 0.3, 100 at 0.005 each (0.5 in all), the rest
	 * share 0.2; top_p 0.79 keeps exactly the first 101 tokens */
	enum { V = 150000 };
	double *probs = xmalloc(V * sizeof(double));
	int *c = xmalloc(V * sizeof(int));
	struct llama_sample_params p;

	probs[0] = 0.3;
	for (int i = 1; i <= 100; i++)
		probs[i] = 0.005;
	for (int i = 101; i < V; i++)
		probs[i] = 0.2 / (V - 101);
	llama_sample_defaults(&p);
	p.seed = 3;
	p.top_p = 0.79f;
	counts(&p, probs, V, 300, c);
	long tail = 0;
	for (int i = 101; i < V; i++)
		tail += c[i];
	assert_int_equal(tail, 0);
	assert_true(c[0] > 70 && c[0] < 155); /* 0.375 of 300, sd 8.4 */
	free(probs);
	free(c);
}

static void test_penalties(void **state)
{
	struct llama_sample_params p;
	struct llama_sampler s;
	float l[3];

	llama_sample_defaults(&p);
	p.temperature = 0;
	p.frequency_penalty = 0.6f;
	llama_sampler_init(&s, &p, 3);
	l[0] = 2.0f, l[1] = 1.0f, l[2] = 0;
	assert_int_equal(llama_sample(&s, l, NULL, 0), 0); /* 0 generated once */
	l[0] = 2.0f, l[1] = 1.5f, l[2] = 0;
	assert_int_equal(llama_sample(&s, l, NULL, 0), 1); /* 2 - 0.6 = 1.4 < 1.5 */
	llama_sampler_release(&s);
}

static void test_penalty_values(void **state)
{
	struct llama_sample_params p;
	struct llama_sampler s;
	float l[4] = {2.0f, -2.0f, 1.0f, 1.0f};

	llama_sample_defaults(&p);
	p.temperature = 0;
	p.repetition_penalty = 2.0f;
	p.presence_penalty = 0.25f;
	p.frequency_penalty = 0.5f;
	llama_sampler_init(&s, &p, 4);
	llama_sampler_prompt(&s, 0);
	llama_sampler_prompt(&s, 1);
	llama_sampler_accept(&s, 2);
	llama_sampler_accept(&s, 2);
	llama_sample(&s, l, NULL, 0);
	assert_true(l[0] == 1.0f);           /* prompt, positive: divided */
	assert_true(l[1] == -4.0f);          /* prompt, negative: multiplied */
	assert_true(l[2] == 0.5f - 1.25f);   /* generated twice: /2, -0.25, -2*0.5 */
	assert_true(l[3] == 1.0f);
	llama_sampler_release(&s);
}

static void test_logprobs(void **state)
{
	struct llama_sample_params p;
	struct llama_sampler s;
	struct llama_logprob lp[4];
	float l[4];

	llama_sample_defaults(&p);
	p.temperature = 0;
	p.presence_penalty = 100; /* changes the choice, not the reported distribution */
	llama_sampler_init(&s, &p, 4);
	llama_sampler_accept(&s, 0);
	from_probs(l, four, 4);
	int32_t t = llama_sample(&s, l, lp, 3);
	assert_int_equal(t, 1);
	assert_int_equal(lp[0].token, 1);
	assert_true(fabsf(lp[0].logprob - logf(0.3f)) < 1e-5f);
	assert_int_equal(lp[1].token, 0);
	assert_int_equal(lp[2].token, 1);
	assert_int_equal(lp[3].token, 2);
	assert_true(fabsf(lp[1].logprob - logf(0.5f)) < 1e-5f);
	llama_sampler_release(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_greedy),
		cmocka_unit_test(test_seeded_draws_repeat),
		cmocka_unit_test(test_top_k_top_p_min_p),
		cmocka_unit_test(test_top_p_large_vocabulary),
		cmocka_unit_test(test_penalties),
		cmocka_unit_test(test_penalty_values),
		cmocka_unit_test(test_logprobs),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
