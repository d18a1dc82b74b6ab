/* synth.h: the seeded llama-family model, written as a real GGUF file.
 *
 * What `mediad-mkgguf` writes for the tests and benchmarks, and what the
 * llama runner serves (said plainly) when no MODEL_WEIGHTS_PATH is given:
 * a `llama` or `qwen2` model of any size with seeded Gaussian weights in any
 * supported tensor type, and a small vocabulary of either tokenizer kind
 * (`llama` SentencePiece-style with byte fallback, or `gpt2` byte-level BPE
 * with merges) plus a chat template. The weights mean nothing; the file is a
 * faithful GGUF that llama.cpp loads too. */
#ifndef MEDIAD_LLAMA_SYNTH_H
#define MEDIAD_LLAMA_SYNTH_H

#include <stddef.h>
#include <stdint.h>

struct llama_synth_opts {
	const char *arch;      /* "llama" or "qwen2" */
	const char *tokenizer; /* "llama" (SPM) or "gpt2" (BPE) */
	const char *pre;       /* gpt2 pre-tokenizer name: "llama-bpe", "qwen2", "smollm", "gpt-2" */
	uint32_t type;         /* enum ggml_type of the 2-D weights */
	uint32_t n_embd, n_layer, n_head, n_head_kv, n_ff, n_ctx;
	int tied;              /* no output.weight: the embeddings are reused */
	uint64_t seed;
	const char *name;      /* general.name */
	const char *omit;      /* a tensor left out (tests of the loader's refusals), or NULL */
};

/* The defaults: a tiny llama model with the SPM vocabulary, F32. */
void llama_synth_defaults(struct llama_synth_opts *o);
/* Write the model to path. 0 or -errno with err filled. */
int llama_synth_write(const struct llama_synth_opts *o, const char *path, char *err,
		      size_t errlen);

#endif
