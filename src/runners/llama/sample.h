/* sample.h: choosing the next token from a sequence's logits.
 *
 * Per sequence, with the OpenAI and vLLM/llama.cpp request fields:
 * penalties first (repetition_penalty over the prompt and the generated
 * tokens, llama.cpp style: a positive logit is divided, a negative one
 * multiplied; presence_penalty and frequency_penalty over the generated
 * tokens, OpenAI style), then temperature 0 = greedy (the lowest id wins a
 * tie), else logits / temperature, top_k, softmax, top_p, min_p, and a draw
 * from the sequence's own generator seeded by `seed` (same seed, same
 * tokens). Log-probabilities (for `logprobs`) are those of the model's own
 * distribution, before penalties and temperature, as vLLM reports them. */
#ifndef MEDIAD_LLAMA_SAMPLE_H
#define MEDIAD_LLAMA_SAMPLE_H

#include <stddef.h>
#include <stdint.h>

struct llama_sample_params {
	float temperature;        /* 0: greedy */
	int32_t top_k;            /* 0: off */
	float top_p;              /* 1: off */
	float min_p;              /* 0: off */
	float presence_penalty;   /* 0: off */
	float frequency_penalty;  /* 0: off */
	float repetition_penalty; /* 1: off */
	uint64_t seed;
};

void llama_sample_defaults(struct llama_sample_params *p);

struct llama_sampler {
	struct llama_sample_params p;
	uint32_t n_vocab;
	uint64_t rng[4];
	uint32_t *generated; /* count of each token generated so far */
	uint8_t *seen;       /* token in the prompt or generated (repetition penalty) */
	float *probs;        /* scratch */
	int32_t *cand;       /* scratch */
	float *orig;         /* the model's logits, kept when logprobs are asked for */
};

void llama_sampler_init(struct llama_sampler *s, const struct llama_sample_params *p,
			uint32_t n_vocab);
void llama_sampler_release(struct llama_sampler *s);
/* A prompt token (repetition penalty only) or a generated one. */
void llama_sampler_prompt(struct llama_sampler *s, int32_t token);
void llama_sampler_accept(struct llama_sampler *s, int32_t token);

struct llama_logprob {
	int32_t token;
	float logprob;
};

/* The next token. logits (n_vocab) are modified. When lp is given, lp[0]
 * gets the chosen token's log-probability and lp[1..n_top] the n_top most
 * likely tokens (model distribution). */
int32_t llama_sample(struct llama_sampler *s, float *logits, struct llama_logprob *lp,
		     int n_top);

#endif
