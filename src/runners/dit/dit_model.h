/* dit_model.h: the dit runner's diffusion transformer: presets, weights,
 * one forward pass over a batch of images, the text conditioning and the
 * latent-to-RGB decoder.
 *
 * The model follows DiT (Peebles & Xie): a latent image of 4 channels at
 * 1/8 of the image size is cut into 2x2 patches (one token per 16x16
 * pixels), embedded with a 2-D sin-cos position; N blocks of self-attention
 * and MLP modulated by adaLN-Zero from the conditioning c; a final
 * modulated layer norm and linear layer give the velocity of each patch.
 * c = timestep embedding + text embedding, the text embedding being hashed
 * word embeddings, mean-pooled, through a small MLP. A small convolutional
 * decoder (3 nearest-neighbour 2x upsamplings) turns a latent into RGB.
 * docs/dit.md lists every tensor with its shape.
 *
 * Layouts: latents and decoder activations are channels-last [h, w, c];
 * token rows are [rows, hidden]. All weights live in one arena of floats
 * owned by the model. */
#ifndef MEDIAD_DIT_MODEL_H
#define MEDIAD_DIT_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "dit_kernels.h"

#define DIT_LATENT_CH         4
#define DIT_PATCH             2
#define DIT_PATCH_DIM         (DIT_LATENT_CH * DIT_PATCH * DIT_PATCH)
#define DIT_VAE_FACTOR        8 /* image pixels per latent pixel, per side */
#define DIT_PIXELS_PER_TOKEN  (DIT_VAE_FACTOR * DIT_PATCH) /* 16 */
#define DIT_MAX_SIDE          1024
#define DIT_MAX_GRID          (DIT_MAX_SIDE / DIT_PIXELS_PER_TOKEN) /* tokens per side */
#define DIT_MAX_TOKENS        (DIT_MAX_GRID * DIT_MAX_GRID)
#define DIT_FREQ_DIM          256
#define DIT_MAX_PROMPT_TOKENS 256
#define DIT_DEC_LAYERS        4
/* Seed of the synthetic weights served without MODEL_WEIGHTS_PATH (and
 * mediad-mkweights' default). */
#define DIT_SYNTH_SEED 0x6d65646961646974ull /* "mediadit" */

struct dit_arch {
	const char *name;
	int hidden, depth, heads;
	int text_dim, vocab;
	int dec[DIT_DEC_LAYERS - 1]; /* decoder widths; the last layer outputs RGB */
};

/* The preset called name (tiny, small, base), or NULL. */
const struct dit_arch *dit_arch_find(const char *name);

struct dit_tensor {
	char name[64];
	int ndim;
	int64_t shape[4];
	size_t numel;
	float *data;      /* in the model's arena */
	float init_scale; /* synthetic weights: uniform in [-s, s] */
	size_t off;
};

struct dit_block_weights {
	float *qkv_w, *qkv_b, *proj_w, *proj_b;
	float *fc1_w, *fc1_b, *fc2_w, *fc2_b;
	float *ada_w, *ada_b;
};

struct dit_model {
	struct dit_arch arch;
	float *arena;
	size_t n_params;
	struct dit_tensor *tensors;
	int n_tensors;
	/* views into the arena */
	float *x_w, *x_b;
	float *t_w0, *t_b0, *t_w2, *t_b2;
	float *y_table, *y_w0, *y_b0, *y_w2, *y_b2;
	struct dit_block_weights *blocks;
	float *f_ada_w, *f_ada_b, *f_w, *f_b;
	float *dec_w[DIT_DEC_LAYERS], *dec_b[DIT_DEC_LAYERS];
	int dec_ch[DIT_DEC_LAYERS + 1]; /* channels in and out of each decoder layer */
	float *pos;                     /* [DIT_MAX_GRID, hidden / 2] sin-cos table */
};

/* Lay out the model of arch (weights zeroed). Aborts on out of memory. */
void dit_model_init(struct dit_model *m, const struct dit_arch *arch);
void dit_model_release(struct dit_model *m);
/* Fill every weight from seed: the same seed gives the same model on any
 * thread count (what MODEL_WEIGHTS_PATH="" serves, and what
 * mediad-mkweights writes). */
void dit_model_synthesize(struct dit_model *m, uint64_t seed, const struct dit_exec *ex);
/* Read every tensor from a safetensors file. 0, or -errno with err naming
 * the file and the first tensor that is missing, mis-shaped, of an
 * unsupported dtype or cut off. *n_unused = tensors in the file the model
 * does not use (may be NULL). */
int dit_model_load(struct dit_model *m, const char *path, int *n_unused, char *err, size_t errlen);
/* The tensor called name, or NULL. */
struct dit_tensor *dit_model_tensor(const struct dit_model *m, const char *name);

/* One image's part of a forward pass. */
struct dit_segment {
	int gh, gw;          /* tokens per column and per row */
	float t;             /* flow time in [0, 1]; 1 is pure noise */
	const float *y;      /* [hidden] text conditioning (dit_text_encode) */
	const float *latent; /* in: [2 gh, 2 gw, 4] */
	float *v;            /* out: [2 gh, 2 gw, 4] predicted velocity */
};

/* Activations and scratch for passes of up to max_rows tokens in up to
 * max_segs segments and for decoding images up to DIT_MAX_SIDE, sized once
 * (warmup) so that a pass never allocates. */
struct dit_work {
	int max_rows, max_segs, slots;
	float *x, *xn, *qkv, *att, *mlp;
	float *tfreq, *thid, *c, *c_silu, *mod;
	int *row_seg;
	struct dit_attn_seg *aseg;
	float *attn_scratch;
	size_t attn_per_slot;
	float *dec_a, *dec_b, *dec_rgb;
	float *conv_scratch;
	size_t conv_per_slot;
	float *text_pool, *text_hid;
	float *pack; /* the small-m products' scratch (dit_gemm) */
	size_t pack_len;
	size_t bytes;
	/* called after every transformer block of a pass when set (progress of
	 * passes that take seconds) */
	void (*on_block)(void *arg);
	void *on_block_arg;
};

void dit_work_init(struct dit_work *w, const struct dit_model *m, int max_rows, int max_segs,
                   int slots);
void dit_work_release(struct dit_work *w);

/* Predict the velocity of every segment: one forward pass of the
 * transformer over all their tokens at once (sum of gh * gw <= max_rows,
 * n <= max_segs). */
void dit_forward(const struct dit_model *m, struct dit_work *w, const struct dit_exec *ex,
                 const struct dit_segment *segs, int n);

/* Token ids of text (lower-cased words, digits and other characters each a
 * token, hashed into the vocabulary); returns the count (<= max). */
int dit_tokenize(const char *text, uint32_t *ids, int max, int vocab);
/* y = the text conditioning of text ([hidden] floats). Empty text uses the
 * table's null row (the unconditional embedding). */
void dit_text_encode(const struct dit_model *m, struct dit_work *w, const struct dit_exec *ex,
                     const char *text, float *y);

/* Decode a latent [lh, lw, 4] into RGB before the output squashing:
 * returns [8 lh, 8 lw, 3] floats in w (valid until the next decode). */
const float *dit_decode(const struct dit_model *m, struct dit_work *w, const struct dit_exec *ex,
                        const float *latent, int lh, int lw);

/* Multiply-adds x 2 of one forward pass over segments of these token grids
 * (the sgemm work; element-wise work is not counted). */
double dit_forward_flops(const struct dit_arch *a, const struct dit_segment *segs, int n);
/* Same for decoding one latent of lh x lw. */
double dit_decode_flops(const struct dit_model *m, int lh, int lw);

#endif
