/* quant.h: the llama runner's tensor types, computed on as GGUF stores them.
 *
 * Types: F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q5_K, Q6_K, with ggml's block
 * layouts byte for byte (see quant.c for each layout), so the files people
 * download (llama.cpp's Q4_K_M, Q8_0...) compute as llama.cpp computes them.
 *
 * Products never dequantise a tensor: the activations are converted once
 * per call to an integer form that matches the weight type (32-element int8
 * blocks for Q8_0/Q4_0, 256-element int8 blocks with sums of 16 for the
 * K-quants), and each weight block is multiplied in integers against several
 * tokens at once, the partial sums scaled into float per block. F32, F16 and
 * BF16 weights multiply float activations directly.
 *
 * The vectorised path (AVX2+FMA+F16C) is chosen at first use by CPU
 * detection; quant_set_isa() forces the scalar reference for tests. */
#ifndef MEDIAD_QUANT_H
#define MEDIAD_QUANT_H

#include <stddef.h>
#include <stdint.h>

#include "runners/llama/gguf.h"

/* 1 when the type is one of the eight above. */
int quant_supported(uint32_t type);
/* Elements per block (1 for the float types), 0 for an unsupported type. */
int quant_block_elems(uint32_t type);
/* Bytes of a row of n elements; 0 when the type is unsupported or n is not
 * a whole number of blocks. */
size_t quant_row_bytes(uint32_t type, int64_t n);

/* Scalar conversions (IEEE binary16 and bfloat16, round to nearest even). */
float quant_fp16_to_f32(uint16_t h);
uint16_t quant_f32_to_fp16(float f);
float quant_bf16_to_f32(uint16_t h);
uint16_t quant_f32_to_bf16(float f);

/* n elements of type from src (quant_row_bytes(type, n) bytes) into dst.
 * 0, or -EINVAL for an unsupported type or n not a whole number of blocks. */
int quant_dequantize_row(uint32_t type, const void *src, float *dst, int64_t n);

/* n floats into quant_row_bytes(type, n) bytes of valid blocks. The
 * quantisers search each block's scales (and mins) for least squared error;
 * they need not match llama.cpp's bytes, only its format. 0 or -EINVAL. */
int quant_quantize_row(uint32_t type, const float *src, void *dst, int64_t n);

/* A weight matrix as GGUF stores it: rows of cols elements (ne[0] = cols,
 * ne[1] = rows), each row quant_row_bytes(type, cols) bytes, rows packed. */
struct quant_matrix {
	uint32_t type; /* enum ggml_type */
	int64_t rows, cols;
	const void *data;
};

/* Activations converted for one weight type: n_tok rows of cols. For the
 * float types x points at the caller's X (keep it alive); the quantised
 * forms live in buf, owned by the struct. Initialise with {0} or
 * quant_act_init; reuse across calls (buf grows); quant_act_release frees. */
struct quant_act {
	int kind; /* internal: QUANT_ACT_* in quant_impl.h */
	int n_tok;
	int64_t cols;
	const float *x;
	void *buf;
	size_t stride; /* bytes per token in buf */
	size_t cap;
};

void quant_act_init(struct quant_act *a);
void quant_act_release(struct quant_act *a);
/* Convert X (n_tok x cols floats, row-major) for products with weights of
 * wtype. 0, or -EINVAL (unsupported type, cols not whole blocks, n_tok < 1). */
int quant_act_prepare(struct quant_act *a, uint32_t wtype, const float *X, int n_tok, int64_t cols);

/* Y[t * W->rows + r] = sum_c W[r][c] * X[t][c] for t < n_tok and rows
 * row_begin <= r < row_end (other entries of Y untouched), so threads can
 * split the rows of one product. a must have been prepared for W's type and
 * cols. 0, or -EINVAL when they do not match or the range is out of
 * [0, rows]. Safe to call from several threads on one prepared a. */
int quant_matmul_act(const struct quant_matrix *W, const struct quant_act *a, float *Y,
                     int64_t row_begin, int64_t row_end);
/* Both steps in one call (X converted per call; threads sharing one X
 * should prepare once and call quant_matmul_act). 0 or -EINVAL. */
int quant_matmul(const struct quant_matrix *W, const float *X, int n_tok, float *Y,
                 int64_t row_begin, int64_t row_end);
/* The same computation on the scalar path, whatever the CPU (tests). */
int quant_matmul_ref(const struct quant_matrix *W, const float *X, int n_tok, float *Y,
                     int64_t row_begin, int64_t row_end);

enum quant_isa { QUANT_ISA_SCALAR = 0, QUANT_ISA_AVX2 = 1 };
/* Use isa (or the best the CPU has below it) for products from now on;
 * returns the isa in use before. Tests only: not thread-safe against
 * products running at the same time. */
int quant_set_isa(int isa);
/* "scalar" or "avx2+fma+f16c": the path products take. */
const char *quant_isa_name(void);

#endif
