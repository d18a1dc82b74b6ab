/* forward.h: the llama-family forward pass over a batch of sequences.
 *
 * One call advances several sequences at once: each brings its new tokens
 * (a prompt chunk, or the one token just sampled) and its KV cache; the
 * tokens of all of them form one matrix, so every weight matrix is read once
 * per layer per call (continuous batching), and attention runs per sequence
 * over its own cache. Products go through llama_matmul on the tensors as
 * stored, split by output rows over the device's threads: each output value
 * is computed by one thread in a fixed order, so results are bitwise the
 * same whatever the thread count. */
#ifndef MEDIAD_LLAMA_FORWARD_H
#define MEDIAD_LLAMA_FORWARD_H

#include <stddef.h>
#include <stdint.h>

#include "device.h"
#include "model.h"

/* A sequence's keys and values: [layer][position][n_head_kv * head_dim]. */
struct llama_kv {
	uint32_t n_ctx;
	uint32_t n_past; /* positions filled */
	float *k, *v;
};

void llama_kv_init(struct llama_kv *kv, const struct llama_model *m, uint32_t n_ctx);
void llama_kv_release(struct llama_kv *kv);

struct llama_seq_step {
	struct llama_kv *kv;
	const int32_t *tokens; /* new tokens, appended at kv->n_past */
	uint32_t n;
	float *logits;         /* n_vocab floats for the last new token, or NULL */
	float *hidden;         /* n_embd floats: mean of the final normed hidden states of the
			        * new tokens (embeddings), or NULL */
};

/* Scratch for up to max_tokens tokens per call. */
struct llama_exec {
	const struct llama_model *m;
	struct mediad_device *dev; /* NULL: run on the calling thread */
	uint32_t max_tokens;
	float *x, *h, *q, *k, *v, *att, *g, *u, *row;
	float *scores;            /* per thread: n_ctx floats */
	uint32_t scores_ctx;
	int threads;
};

int llama_exec_init(struct llama_exec *ex, const struct llama_model *m,
		    struct mediad_device *dev, uint32_t max_tokens, uint32_t max_ctx);
void llama_exec_release(struct llama_exec *ex);

/* Y[t][r] = sum_c W[r][c] * X[t][c] for the n_tok rows of X (W: rows =
 * ne[1], cols = ne[0], as stored). */
void llama_matmul(struct llama_exec *ex, const struct gguf_tensor *w, const float *x,
		  uint32_t n_tok, float *y);

/* Advance every sequence by its new tokens. 0, or -ENOSPC when a sequence's
 * cache would overflow or the batch exceeds max_tokens, -EINVAL for a token
 * id outside the vocabulary. */
int llama_forward(struct llama_exec *ex, struct llama_seq_step *steps, size_t n_steps);

#endif
