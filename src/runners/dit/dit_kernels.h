/* dit_kernels.h: the compute kernels of the dit runner, run on the cpu device.
 *
 * Matrix products go through BLIS sgemm, one single-threaded call per tile,
 * with the tiles spread over the cpu device's pool (dit_parallel). BLIS's
 * small-matrix ("sup") path is turned off for every call: its kernels sum in
 * an order that depends on the matrix extents, while the packed path gives
 * every output element the same arithmetic whatever the tiling. That is what
 * makes an image byte-identical on any thread count and whatever else is
 * batched with it. Products of few rows (DIT_GEMM_SMALL_M) run instead on
 * mediad's own kernel, which reads the weights once in place and gives
 * BLIS's packed path's bits (dit_kernels.c says how, and checks it once per
 * process before using it). Element-wise kernels (layer norm, softmax, GELU, SiLU,
 * exp; dit_vec.h) are written on GCC vector types, 4 lanes on the
 * x86-64 baseline and 8 lanes with FMA when the CPU has AVX2 and FMA (chosen
 * once per process); every element, tail included, gets the same
 * arithmetic.
 *
 * Matrices are row-major floats with explicit leading dimensions. Weights
 * follow the PyTorch layout: a linear layer's weight is [out, in] and
 * computes y = x w^T + b. */
#ifndef MEDIAD_DIT_KERNELS_H
#define MEDIAD_DIT_KERNELS_H

#include <stddef.h>
#include <stdint.h>

struct mediad_device;

/* Query rows per attention work item, and output pixels per conv work item. */
#define DIT_ATTN_QBLOCK 128
#define DIT_CONV_TILE   256

/* Set BLIS up once per process: single-threaded calls (the pool supplies
 * the parallelism), and the sgemm kernel chosen for the CPU. BLIS 0.9
 * (Debian 12) does not recognise AVX-512 AMD CPUs and falls back to its
 * generic kernels (about 6x slower here); when the CPU has AVX-512
 * (F, DQ, BW, VL) and BLIS_ARCH_TYPE is not set, this sets BLIS_ARCH_TYPE to
 * BLIS's skx kernels before BLIS initialises. Must run before any other
 * BLIS call in the process; later calls return at once. */
void dit_kernels_init(void);
/* The BLIS kernel set in use (e.g. "skx"), and whether mediad chose it. */
const char *dit_kernels_blis_arch(int *forced);

/* Tests only: run the element-wise kernels with the baseline (avx2 = 0) or
 * the AVX2+FMA (1) instruction set. 0, or -ENOTSUP when the CPU lacks it.
 * Results differ in the last bits between the two: never switch while a
 * model is serving. */
int dit_kernels_use_avx2(int avx2);
/* "sse2" or "avx2+fma". */
const char *dit_kernels_vector_isa(void);

/* Where kernels run: a device's execution context (device_parallel), or inline on the caller
 * (dev NULL: tests and tools). slots = number of parallel slots. */
struct dit_exec {
	struct mediad_device *dev;
	int slots;
};

/* 0, or -errno when dev is not an open device with a parallel op. */
int dit_exec_init(struct dit_exec *ex, struct mediad_device *dev);

/* Call fn(arg, item, slot) once for every item in 0..n_items-1. Items are
 * claimed dynamically; slot (0..slots-1) is unique among concurrent calls,
 * so fn can use per-slot scratch. Returns when all items are done. */
void dit_parallel(const struct dit_exec *ex, int n_items, void (*fn)(void *arg, int item, int slot),
                  void *arg);

/* What a product does with its result, per tile, while it is in cache. */
enum dit_epilogue {
	DIT_EPI_NONE,      /* c = a w^T */
	DIT_EPI_BIAS,      /* c = a w^T + b */
	DIT_EPI_BIAS_GELU, /* c = gelu(a w^T + b), tanh approximation */
	DIT_EPI_BIAS_SILU, /* c = silu(a w^T + b) */
	DIT_EPI_GATED,     /* x += gate[seg(row)] * (a w^T + b); c is scratch */
};

struct dit_gemm {
	int m, n, k;
	const float *a; /* [m, k] */
	int lda;
	const float *w; /* [n, k] */
	int ldw;
	float *c; /* [m, n] */
	int ldc;
	const float *bias; /* [n], or NULL for none */
	enum dit_epilogue epi;
	/* DIT_EPI_GATED only */
	float *x; /* [m, n] */
	int ldx;
	const float *gate; /* gate row of segment s at gate + s * ld_gate */
	int ld_gate;
	const int *row_seg; /* [m]: the segment of each row */
	/* scratch of the small-m path: at least dit_gemm_pack_floats(m, k)
	 * floats, or NULL (the product then runs on BLIS whatever its m) */
	float *pack;
	size_t pack_len;
};

/* Products of at most this many rows (a deep probe's 64x64 image with its
 * guidance pass has 32, the conditioning one per image) stream their
 * weights through mediad's own kernel instead of BLIS, when the CPU has
 * AVX-512F or AVX2+FMA and that kernel gives BLIS's bits (checked once per
 * process, see dit_kernels.c). Measured on 2 threads (AMD EPYC, AVX-512):
 * 3-4x BLIS's speed at 32 rows and still 1.5x at 128; the two meet
 * between 192 and 256 rows when k is 3072. */
#define DIT_GEMM_SMALL_M 128

/* Run g over the pool: rows above DIT_GEMM_SMALL_M (or without pack) as
 * BLIS tiles, fewer as column ranges of the small-m kernel. Either way,
 * the same bits. */
void dit_gemm(const struct dit_exec *ex, const struct dit_gemm *g);
/* Floats of scratch the small-m path needs for m rows and inner size k. */
size_t dit_gemm_pack_floats(int m, int k);
/* The row limit in use, 0 when the small-m path is off; its instruction set
 * ("avx512", "avx2+fma", or "off"). */
int dit_gemm_small_rows(void);
const char *dit_gemm_small_isa(void);
/* Tests and benchmarks only: products of at most rows rows (up to 256)
 * take the small-m path (0: none). 0, or -ENOTSUP when the path is off. */
int dit_gemm_set_small_rows(int rows);
/* Tests only: the small-m kernel of 16 lanes (AVX-512F), 8 (AVX2+FMA), or
 * none (0). 0; -ENOTSUP when the CPU lacks it, -EIO when it does not give
 * BLIS's bits (the path is then off). Never while a model is serving. */
int dit_gemm_use_small_isa(int lanes);

/* One single-threaded BLIS call on the calling thread:
 * c = alpha a b^T + beta c (dit_sgemm_nt) or alpha a b + beta c (_nn). */
void dit_sgemm_nt(int m, int n, int k, float alpha, const float *a, int lda, const float *b,
                  int ldb, float beta, float *c, int ldc);
void dit_sgemm_nn(int m, int n, int k, float alpha, const float *a, int lda, const float *b,
                  int ldb, float beta, float *c, int ldc);

/* y[r] = layernorm(x[r]) * (1 + scale[s]) + shift[s] for the rows r of
 * each segment s = row_seg[r] (no affine, eps 1e-6); shift and scale rows at
 * + s * ld_mod. */
void dit_layernorm_modulate(const struct dit_exec *ex, const float *x, int ldx, float *y, int ldy,
                            int rows, int dim, const int *row_seg, const float *shift,
                            const float *scale, int ld_mod);

/* A run of rows that attend to each other (one image's tokens). */
struct dit_attn_seg {
	int row0, n;
};

/* Multi-head self-attention within each segment. qkv: [rows, 3 * dim] with
 * q, k, v side by side, heads of dim / heads columns each; out: [rows, dim].
 * scratch: slots * DIT_ATTN_QBLOCK * (longest segment) floats. */
void dit_attention(const struct dit_exec *ex, const float *qkv, int dim, int heads, float *out,
                   const struct dit_attn_seg *segs, int n_segs, float *scratch,
                   size_t scratch_per_slot);

/* 3x3 convolution, stride 1, zero padding 1, on channels-last images.
 * in: [h, w, cin]; when up is 2 the input is first enlarged 2x by nearest
 * neighbour (never materialised). wt: [cout, cin, 3, 3], bias [cout].
 * out: [h * up, w * up, cout]; silu != 0 applies SiLU. scratch: per slot
 * DIT_CONV_TILE * 9 * cin floats. */
void dit_conv3x3(const struct dit_exec *ex, const float *in, int h, int w, int cin, int up,
                 const float *wt, const float *bias, int cout, int silu, float *out, float *scratch,
                 size_t scratch_per_slot);

/* Element-wise kernels (exported for the runner and the unit tests).
 * exp: relative error below 2e-7 on [-87, 88]; clamps outside. */
void dit_vexp(float *y, const float *x, size_t n);
void dit_vsilu(float *x, size_t n);
void dit_vgelu(float *x, size_t n);
/* In place, each of rows rows of n values, leading dimension ld. */
void dit_softmax_rows(float *x, int rows, int n, int ld);

#endif
