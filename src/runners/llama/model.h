/* model.h: a llama-family model as a GGUF file describes it.
 *
 * Reads the hyperparameters of the `llama` (Llama 2/3, TinyLlama, Mistral
 * without sliding window, SmolLM2) and `qwen2` architectures from the file's
 * metadata and finds every weight tensor by llama.cpp's names, checking each
 * one's shape against the metadata and its type against what the runner
 * computes on. Nothing is copied: tensors point into the file's mapping.
 * Every problem is refused at load with one line naming the file, the field
 * (key or tensor) and the rule. */
#ifndef MEDIAD_LLAMA_MODEL_H
#define MEDIAD_LLAMA_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "gguf.h"

enum llama_arch { LLAMA_ARCH_LLAMA, LLAMA_ARCH_QWEN2 };

/* How rotary embeddings pair dimensions: llama.cpp's converter permutes the
 * q/k rows of llama-arch files so rotation is over adjacent pairs (NORM);
 * qwen2 keeps the halves layout (NEOX: dim i with dim i + n_rot/2). */
enum llama_rope { LLAMA_ROPE_NORM, LLAMA_ROPE_NEOX };

struct llama_hparams {
	enum llama_arch arch;
	char arch_name[16];
	char name[128];       /* general.name, "" when absent */
	uint32_t n_ctx_train; /* context length the model was trained with */
	uint32_t n_embd;
	uint32_t n_layer;
	uint32_t n_head;
	uint32_t n_head_kv;   /* grouped-query attention: n_head % n_head_kv == 0 */
	uint32_t head_dim;    /* n_embd / n_head */
	uint32_t n_ff;
	uint32_t n_vocab;
	uint32_t n_rot;       /* rotary dimensions per head (<= head_dim, even) */
	enum llama_rope rope;
	float rope_freq_base;
	float rope_freq_scale; /* 1 / linear scaling factor (1 = none) */
	float rms_eps;
};

struct llama_layer {
	const struct gguf_tensor *attn_norm, *wq, *wk, *wv, *wo;
	const struct gguf_tensor *bq, *bk, *bv; /* qwen2; NULL for llama */
	const struct gguf_tensor *ffn_norm, *w_gate, *w_up, *w_down;
};

struct llama_model {
	struct gguf *g;
	struct llama_hparams hp;
	const struct gguf_tensor *tok_embd;
	const struct gguf_tensor *output_norm;
	const struct gguf_tensor *output; /* tok_embd when the file ties them */
	const struct gguf_tensor *rope_freqs; /* Llama 3.1+ frequency factors [n_rot/2], or NULL */
	int tied_output;
	struct llama_layer *layers;
};

/* Types the runner computes on (F32 F16 BF16 Q8_0 Q4_0 Q4_K Q5_K Q6_K). */
int llama_type_supported(uint32_t type);

/* Load from an open GGUF (the model keeps g and frees it). 0 or -EINVAL
 * with err filled. */
int llama_model_init(struct llama_model *m, struct gguf *g, char *err, size_t errlen);
/* Open the file and load. */
int llama_model_load(struct llama_model *m, const char *path, char *err, size_t errlen);
void llama_model_release(struct llama_model *m);

#endif
