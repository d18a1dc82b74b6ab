/* test_quant.c: unit tests for the llama runner's tensor-type layer
 * (src/runners/llama/quant*.c).
 *
 * Hand-packed blocks of every type dequantise to values worked out by hand
 * (the K-quants' 6-bit scale/min packing, Q5_K's high bits and Q6_K's
 * split nibbles included); quantise -> dequantise stays within each type's
 * error on Gaussian data (printed, for the record); the vectorised product
 * matches the scalar reference to float rounding and the dequantised float
 * product to the activations' quantisation error, over token counts, block
 * counts and row ranges, with buffers sized exactly so that ASan and
 * valgrind see any read past them. Where llama.cpp's own ggml library is at
 * hand (node-llama-cpp's build under tests/clients), blocks of random bytes
 * dequantise here as they do there. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dlfcn.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runners/llama/quant.h"
#include "util.h"

static const uint32_t all_types[] = {GGML_F32,  GGML_F16,  GGML_BF16, GGML_Q8_0,
                                     GGML_Q4_0, GGML_Q4_K, GGML_Q5_K, GGML_Q6_K};

static uint64_t rng_state;

static uint32_t rng_u32(void)
{
	rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
	return (uint32_t)(rng_state >> 33);
}

static float rng_unit(void) /* (0, 1] */
{
	return ((float)(rng_u32() & 0xffffff) + 1.0f) / 16777216.0f;
}

static float rng_gauss(void)
{
	return sqrtf(-2.0f * logf(rng_unit())) * cosf(6.2831853f * rng_unit());
}

static void put16(uint8_t *p, uint16_t v)
{
	memcpy(p, &v, 2);
}

static void test_sizes(void **state)
{
	assert_int_equal(quant_row_bytes(GGML_Q8_0, 64), 68);
	assert_int_equal(quant_row_bytes(GGML_Q4_0, 64), 36);
	assert_int_equal(quant_row_bytes(GGML_Q4_K, 512), 288);
	assert_int_equal(quant_row_bytes(GGML_Q5_K, 256), 176);
	assert_int_equal(quant_row_bytes(GGML_Q6_K, 256), 210);
	assert_int_equal(quant_row_bytes(GGML_F16, 3), 6);
	assert_int_equal(quant_row_bytes(GGML_BF16, 3), 6);
	assert_int_equal(quant_row_bytes(GGML_F32, 3), 12);
	assert_int_equal(quant_row_bytes(GGML_Q4_K, 128), 0);
	assert_int_equal(quant_row_bytes(GGML_Q2_K, 256), 0);
	assert_false(quant_supported(GGML_Q4_1));
	float f[32];
	uint8_t b[64];
	assert_int_equal(quant_dequantize_row(GGML_Q8_0, b, f, 31), -EINVAL);
	assert_int_equal(quant_quantize_row(GGML_Q3_K, f, b, 256), -EINVAL);
	/* the gguf reader and this layer agree on every block size */
	for (size_t i = 0; i < ARRAY_SIZE(all_types); i++) {
		const struct gguf_type_info *ti = gguf_type_info(all_types[i]);

		assert_int_equal(quant_block_elems(all_types[i]), ti->block);
		assert_int_equal(quant_row_bytes(all_types[i], ti->block), ti->bytes);
	}
}

static void test_half_floats(void **state)
{
	assert_true(quant_fp16_to_f32(0x3c00) == 1.0f);
	assert_true(quant_fp16_to_f32(0xc000) == -2.0f);
	assert_true(quant_fp16_to_f32(0x7bff) == 65504.0f);
	assert_true(quant_fp16_to_f32(0x0001) == ldexpf(1, -24)); /* smallest subnormal */
	assert_true(quant_fp16_to_f32(0x0400) == ldexpf(1, -14)); /* smallest normal */
	assert_true(quant_fp16_to_f32(0x3555) == 0.333251953125f);
	assert_true(isinf(quant_fp16_to_f32(0xfc00)) && quant_fp16_to_f32(0xfc00) < 0);
	assert_true(isnan(quant_fp16_to_f32(0x7e00)));
	assert_int_equal(quant_f32_to_fp16(1.0f / 3.0f), 0x3555);
	assert_int_equal(quant_f32_to_fp16(-2.0f), 0xc000);
	assert_int_equal(quant_f32_to_fp16(65519.0f), 0x7bff);
	assert_int_equal(quant_f32_to_fp16(65520.0f), 0x7c00);              /* rounds to infinity */
	assert_int_equal(quant_f32_to_fp16(ldexpf(3, -25)), 0x0002);        /* 1.5 units: to even */
	assert_int_equal(quant_f32_to_fp16(ldexpf(1, -25)), 0x0000);        /* 0.5 unit: to even */
	assert_int_equal(quant_f32_to_fp16(1.0f + ldexpf(1, -11)), 0x3c00); /* tie: to even */
	assert_int_equal(quant_f32_to_fp16(1.0f + ldexpf(3, -11)), 0x3c02);
	assert_int_equal(quant_f32_to_fp16(NAN) & 0x7e00, 0x7e00);
	for (uint32_t h = 0; h < 0x7c00; h++) /* every finite half round-trips */
		assert_int_equal(quant_f32_to_fp16(quant_fp16_to_f32((uint16_t)h)), h);
	assert_true(quant_bf16_to_f32(0x3f80) == 1.0f);
	assert_true(quant_bf16_to_f32(0xc040) == -3.0f);
	assert_int_equal(quant_f32_to_bf16(1.0f + ldexpf(1, -8)), 0x3f80); /* tie: to even */
	assert_int_equal(quant_f32_to_bf16(1.0f + ldexpf(3, -8)), 0x3f82);
	assert_true(isnan(quant_bf16_to_f32(quant_f32_to_bf16(NAN))));
}

static void expect_row(const float *y, const float *want, int n)
{
	for (int i = 0; i < n; i++)
		if (y[i] != want[i])
			fail_msg("element %d: %g, want %g", i, y[i], want[i]);
}

static void test_dequant_float_types(void **state)
{
	uint8_t b[8];
	float y[3], f32[3] = {1.5f, -0.25f, 3e38f};

	assert_int_equal(quant_dequantize_row(GGML_F32, f32, y, 3), 0);
	expect_row(y, f32, 3);
	put16(b, 0x3c00);
	put16(b + 2, 0xc000);
	put16(b + 4, 0x3555);
	assert_int_equal(quant_dequantize_row(GGML_F16, b, y, 3), 0);
	expect_row(y, (float[]){1.0f, -2.0f, 0.333251953125f}, 3);
	put16(b, 0x3f80);
	put16(b + 2, 0xc040);
	put16(b + 4, 0x4049); /* 3.140625 */
	assert_int_equal(quant_dequantize_row(GGML_BF16, b, y, 3), 0);
	expect_row(y, (float[]){1.0f, -3.0f, 3.140625f}, 3);
}

static void test_dequant_q8_0_q4_0(void **state)
{
	uint8_t b[34];
	float y[32], want[32];

	put16(b, 0x3800); /* d = 0.5 */
	for (int i = 0; i < 32; i++) {
		b[2 + i] = (uint8_t)(int8_t)(i - 16);
		want[i] = 0.5f * (float)(i - 16);
	}
	b[2 + 31] = 0x80; /* -128 is a valid level too */
	want[31] = -64.0f;
	assert_int_equal(quant_dequantize_row(GGML_Q8_0, b, y, 32), 0);
	expect_row(y, want, 32);

	put16(b, 0x4000); /* d = 2: byte j = element j (low), j + 16 (high) */
	for (int j = 0; j < 16; j++) {
		b[2 + j] = (uint8_t)(j | (15 - j) << 4);
		want[j] = 2.0f * (float)(j - 8);
		want[j + 16] = 2.0f * (float)(7 - j);
	}
	assert_int_equal(quant_dequantize_row(GGML_Q4_0, b, y, 32), 0);
	expect_row(y, want, 32);
	assert_true(y[0] == -16.0f && y[15] == 14.0f && y[16] == 14.0f && y[31] == -16.0f);
}

/* Scales and mins of the hand-packed K-quant block below. */
static const int k_sc[8] = {1, 2, 3, 4, 17, 33, 63, 40};
static const int k_mn[8] = {0, 5, 10, 63, 20, 48, 1, 16};
/* ...packed by hand: bytes 0-3 the low 6 bits of scales 0-3 with the top 2
 * bits of scales 4-7 above; bytes 4-7 the same for the mins; bytes 8-11 the
 * low nibbles of scale j+4 (low) and min j+4 (high). */
static const uint8_t k_s12[12] = {65, 130, 195, 132, 64, 197, 10, 127, 65, 1, 31, 8};

static void k_header(uint8_t *b)
{
	put16(b, 0x3c00);     /* d = 1 */
	put16(b + 2, 0x3800); /* dmin = 0.5 */
	memcpy(b + 4, k_s12, 12);
}

static void test_dequant_q4_k(void **state)
{
	uint8_t b[144];
	float y[256], want[256];

	k_header(b);
	memset(b + 16, 0x53, 128); /* low nibble 3, high 5 */
	b[16] = 0xf0;              /* element 0: 0, element 32: 15 */
	for (int e = 0; e < 256; e++) {
		int j = e / 32, n = j % 2 ? 5 : 3;

		if (e == 0)
			n = 0;
		if (e == 32)
			n = 15;
		want[e] = (float)(k_sc[j] * n) - 0.5f * (float)k_mn[j];
	}
	assert_int_equal(quant_dequantize_row(GGML_Q4_K, b, y, 256), 0);
	expect_row(y, want, 256);
	/* by hand: sc*n - dmin*mn */
	assert_true(y[0] == 0.0f && y[1] == 3.0f && y[32] == 27.5f && y[33] == 7.5f);
	assert_true(y[130] == 41.0f && y[200] == 188.5f && y[255] == 192.0f);
}

static void test_dequant_q5_k(void **state)
{
	uint8_t b[176];
	float y[256], want[256];

	k_header(b);
	memset(b + 16, 0, 32);     /* qh */
	b[16 + 1] = 0x04;          /* bit 2 = pair 1, low half: element 64 + 1 */
	b[16 + 2] = 0x80;          /* bit 7 = pair 3, high half: element 192 + 32 + 2 */
	memset(b + 48, 0x53, 128); /* qs */
	for (int e = 0; e < 256; e++) {
		int j = e / 32, n = j % 2 ? 5 : 3;

		if (e == 65 || e == 226)
			n += 16;
		want[e] = (float)(k_sc[j] * n) - 0.5f * (float)k_mn[j];
	}
	assert_int_equal(quant_dequantize_row(GGML_Q5_K, b, y, 256), 0);
	expect_row(y, want, 256);
	assert_true(y[64] == 4.0f && y[65] == 52.0f && y[226] == 832.0f);
}

static void test_dequant_q6_k(void **state)
{
	uint8_t b[210];
	float y[256], want[256];
	/* levels of quarter k (elements 32k.. of each half): ql nibble 1 (k
	 * 0, 1) or 2 (k 2, 3) and qh bit pair k = k */
	static const int lev[4] = {1, 17, 34, 50};

	memset(b, 0x21, 128);      /* ql: low nibble 1, high 2 */
	memset(b + 128, 0xe4, 64); /* qh: bit pairs 0, 1, 2, 3 */
	for (int g = 0; g < 16; g++)
		b[192 + g] = (uint8_t)(int8_t)(2 * g - 15);
	put16(b + 208, 0x3400); /* d = 0.25 */
	b[64 + 5] = 0x0f;       /* half 1, l = 5: elements 133 (15) and 197 (0 | 2 << 4) */
	for (int e = 0; e < 256; e++) {
		int n = lev[(e / 32) % 4];

		if (e == 133)
			n = 15;
		if (e == 197)
			n = 32;
		want[e] = 0.25f * (float)(2 * (e / 16) - 15) * (float)(n - 32);
	}
	assert_int_equal(quant_dequantize_row(GGML_Q6_K, b, y, 256), 0);
	expect_row(y, want, 256);
	assert_true(y[0] == 116.25f && y[40] == 41.25f && y[133] == -4.25f && y[197] == 0.0f);
	assert_true(y[255] == 67.5f);
}

/* RMS of (dequant(quant(x)) - x) over RMS of x, Gaussian x. */
static double round_trip_error(uint32_t type, int64_t n)
{
	float *x = xmalloc((size_t)n * sizeof(float)), *y = xmalloc((size_t)n * sizeof(float));
	uint8_t *q = xmalloc(quant_row_bytes(type, n));
	double se = 0, sx = 0;

	for (int64_t i = 0; i < n; i++)
		x[i] = rng_gauss();
	assert_int_equal(quant_quantize_row(type, x, q, n), 0);
	assert_int_equal(quant_dequantize_row(type, q, y, n), 0);
	for (int64_t i = 0; i < n; i++) {
		se += (double)(y[i] - x[i]) * (y[i] - x[i]);
		sx += (double)x[i] * x[i];
	}
	free(x);
	free(y);
	free(q);
	return sqrt(se / sx);
}

static void test_quantize_error(void **state)
{
	static const struct {
		uint32_t type;
		double max;
	} bounds[] = {
	    {GGML_F32, 0},      {GGML_F16, 5e-4},   {GGML_BF16, 4e-3}, {GGML_Q8_0, 0.01},
	    {GGML_Q6_K, 0.025}, {GGML_Q5_K, 0.045}, {GGML_Q4_K, 0.09}, {GGML_Q4_0, 0.11},
	};

	rng_state = 1;
	for (size_t i = 0; i < ARRAY_SIZE(bounds); i++) {
		double e = round_trip_error(bounds[i].type, 1 << 16);

		printf("quantise->dequantise, Gaussian data: %-5s RMS error %.3f%% of RMS\n",
		       gguf_type_info(bounds[i].type)->name, 100 * e);
		if (e > bounds[i].max)
			fail_msg("%s: relative RMS error %g over %g",
			         gguf_type_info(bounds[i].type)->name, e, bounds[i].max);
	}
}

/* Zeros, constants and one-signed data make valid blocks that come back
 * near exactly (scales of zero, K-quant mins of zero). */
static void test_quantize_edges(void **state)
{
	float x[256], y[256];
	uint8_t q[1024];

	for (size_t i = 0; i < ARRAY_SIZE(all_types); i++) {
		uint32_t t = all_types[i];

		memset(x, 0, sizeof(x));
		assert_int_equal(quant_quantize_row(t, x, q, 256), 0);
		assert_int_equal(quant_dequantize_row(t, q, y, 256), 0);
		for (int e = 0; e < 256; e++)
			assert_true(y[e] == 0.0f);
		for (int e = 0; e < 256; e++)
			x[e] = 1.0f + (float)(e % 32) / 32.0f; /* all positive */
		assert_int_equal(quant_quantize_row(t, x, q, 256), 0);
		assert_int_equal(quant_dequantize_row(t, q, y, 256), 0);
		for (int e = 0; e < 256; e++)
			if (fabsf(y[e] - x[e]) > 0.13f) /* half of Q4_0's step here */
				fail_msg("%s element %d: %g for %g", gguf_type_info(t)->name, e,
				         y[e], x[e]);
	}
}

/* --- products --- */

struct case_data {
	struct quant_matrix W;
	float *Wf; /* dequantised */
	float *X;
	int n_tok;
};

static void case_make(struct case_data *c, uint32_t type, int64_t rows, int64_t cols, int n_tok,
                      int random_bytes)
{
	size_t rb = quant_row_bytes(type, cols);
	uint8_t *data = xmalloc(rb * (size_t)rows);
	float *row = xmalloc((size_t)cols * sizeof(float));

	assert_true(rb > 0);
	for (int64_t r = 0; r < rows; r++) {
		uint8_t *w = data + (size_t)r * rb;

		if (random_bytes) { /* every level and scale, sane block scales */
			int be = quant_block_elems(type), bb = (int)(rb / (size_t)(cols / be));

			for (size_t i = 0; i < rb; i++)
				w[i] = (uint8_t)rng_u32();
			for (int64_t k = 0; k < cols / be; k++) {
				uint8_t *b = w + k * bb;
				uint16_t d = quant_f32_to_fp16(0.001f + 0.05f * rng_unit());

				if (type == GGML_Q6_K) {
					put16(b + 208, d);
				} else {
					put16(b, d);
					if (type == GGML_Q4_K || type == GGML_Q5_K)
						put16(b + 2, quant_f32_to_fp16(0.05f * rng_unit()));
				}
			}
		} else {
			for (int64_t i = 0; i < cols; i++)
				row[i] = rng_gauss();
			assert_int_equal(quant_quantize_row(type, row, w, cols), 0);
		}
	}
	c->W = (struct quant_matrix){.type = type, .rows = rows, .cols = cols, .data = data};
	c->Wf = xmalloc((size_t)(rows * cols) * sizeof(float));
	for (int64_t r = 0; r < rows; r++)
		assert_int_equal(
		    quant_dequantize_row(type, data + (size_t)r * rb, c->Wf + r * cols, cols), 0);
	c->n_tok = n_tok;
	c->X = xmalloc((size_t)(n_tok * cols) * sizeof(float));
	for (int64_t i = 0; i < n_tok * cols; i++)
		c->X[i] = rng_gauss() * (i % 7 == 3 ? 4.0f : 1.0f);
	free(row);
}

static void case_free(struct case_data *c)
{
	free((void *)c->W.data);
	free(c->Wf);
	free(c->X);
}

#define SENTINEL 12345.0f

static void check_case(struct case_data *c, int64_t r0, int64_t r1)
{
	int64_t rows = c->W.rows, cols = c->W.cols;
	size_t ny = (size_t)(c->n_tok * rows);
	float *yv = xmalloc(ny * sizeof(float)), *yr = xmalloc(ny * sizeof(float));
	int qa = c->W.type != GGML_F32 && c->W.type != GGML_F16 && c->W.type != GGML_BF16;
	int64_t ab = c->W.type == GGML_Q8_0 || c->W.type == GGML_Q4_0 ? 32 : 256;
	const char *name = gguf_type_info(c->W.type)->name;

	for (size_t i = 0; i < ny; i++)
		yv[i] = yr[i] = SENTINEL;
	quant_set_isa(QUANT_ISA_AVX2);
	assert_int_equal(quant_matmul(&c->W, c->X, c->n_tok, yv, r0, r1), 0);
	assert_int_equal(quant_matmul_ref(&c->W, c->X, c->n_tok, yr, r0, r1), 0);
	for (int t = 0; t < c->n_tok; t++) {
		const float *x = c->X + t * cols;

		for (int64_t r = 0; r < rows; r++) {
			float v = yv[t * rows + r], ref = yr[t * rows + r];
			const float *w = c->Wf + r * cols;
			double exact = 0, mag = 0, qerr = 0;

			if (r < r0 || r >= r1) {
				if (v != SENTINEL || ref != SENTINEL)
					fail_msg("%s: row %ld outside [%ld, %ld) written", name,
					         (long)r, (long)r0, (long)r1);
				continue;
			}
			for (int64_t k = 0; k < cols; k++) {
				exact += (double)w[k] * x[k];
				mag += fabs((double)w[k] * x[k]);
			}
			/* activations rounded to amax/127 steps of their block:
			 * at most half a step each */
			for (int64_t k0 = 0; qa && k0 < cols; k0 += ab) {
				double amax = 0, sw = 0;

				for (int64_t k = k0; k < k0 + ab; k++) {
					amax = fmax(amax, fabs(x[k]));
					sw += fabs(w[k]);
				}
				qerr += sw * amax / 254.0;
			}
			if (fabs(v - ref) > 1e-5 * mag + 1e-30)
				fail_msg("%s cols %ld tok %d/%d row %ld: vector %.9g, scalar %.9g "
				         "(|terms| %g)",
				         name, (long)cols, t, c->n_tok, (long)r, v, ref, mag);
			if (fabs(v - exact) > 1.001 * qerr + 2e-5 * mag + 1e-30)
				fail_msg("%s cols %ld tok %d row %ld: %.9g, float product %.9g "
				         "(bound %g)",
				         name, (long)cols, t, (long)r, v, exact, qerr);
		}
	}
	free(yv);
	free(yr);
}

static void test_matmul_shapes(void **state)
{
	static const int toks[] = {1, 2, 3, 7, 16};

	rng_state = 7;
	for (size_t i = 0; i < ARRAY_SIZE(all_types); i++) {
		uint32_t type = all_types[i];
		int be = quant_block_elems(type);
		/* one block and many; the float types' vector tails too */
		int64_t cols_k[] = {be == 1 ? 1 : be, be == 1 ? 37 : 8 * be,
		                    be == 1 ? 300 : 3 * be};

		for (size_t ci = 0; ci < ARRAY_SIZE(cols_k); ci++)
			for (size_t ti = 0; ti < ARRAY_SIZE(toks); ti++) {
				struct case_data c;

				case_make(&c, type, 13, cols_k[ci], toks[ti], 0);
				check_case(&c, 0, 13);
				check_case(&c, 3, 10);
				check_case(&c, 12, 13);
				check_case(&c, 5, 5);
				case_free(&c);
			}
	}
	quant_set_isa(QUANT_ISA_AVX2);
	printf("products checked on the %s path against the scalar reference\n", quant_isa_name());
}

/* Random block contents: every level, Q8_0's -128, Q6_K's scales of
 * -128..127, K-quant scales and mins of 0..63. */
static void test_matmul_all_levels(void **state)
{
	rng_state = 11;
	for (size_t i = 3; i < ARRAY_SIZE(all_types); i++)
		for (int n_tok = 1; n_tok <= 5; n_tok += 4) {
			struct case_data c;

			case_make(&c, all_types[i], 9, 4 * quant_block_elems(all_types[i]), n_tok,
			          1);
			check_case(&c, 0, 9);
			check_case(&c, 1, 8);
			case_free(&c);
		}
}

/* One conversion of X shared by calls on disjoint row ranges, as the
 * runner's threads do, equals one call over all rows. */
static void test_matmul_prepared(void **state)
{
	struct case_data c;
	struct quant_act a;
	float whole[3 * 20], parts[3 * 20];

	rng_state = 3;
	case_make(&c, GGML_Q4_K, 20, 512, 3, 0);
	quant_act_init(&a);
	assert_int_equal(quant_act_prepare(&a, GGML_Q4_K, c.X, 3, 512), 0);
	assert_int_equal(quant_matmul_act(&c.W, &a, whole, 0, 20), 0);
	assert_int_equal(quant_matmul_act(&c.W, &a, parts, 0, 7), 0);
	assert_int_equal(quant_matmul_act(&c.W, &a, parts, 7, 20), 0);
	assert_memory_equal(whole, parts, sizeof(whole));
	/* prepared for another type, cols, or a range out of bounds */
	assert_int_equal(quant_act_prepare(&a, GGML_Q8_0, c.X, 3, 512), 0);
	assert_int_equal(quant_matmul_act(&c.W, &a, whole, 0, 20), -EINVAL);
	assert_int_equal(quant_act_prepare(&a, GGML_Q6_K, c.X, 1, 256), 0);
	assert_int_equal(quant_matmul_act(&c.W, &a, whole, 0, 20), -EINVAL);
	assert_int_equal(quant_act_prepare(&a, GGML_Q4_K, c.X, 3, 512), 0);
	assert_int_equal(quant_matmul_act(&c.W, &a, whole, 0, 21), -EINVAL);
	assert_int_equal(quant_matmul_act(&c.W, &a, whole, 5, 4), -EINVAL);
	assert_int_equal(quant_act_prepare(&a, GGML_Q4_K, c.X, 3, 300), -EINVAL);
	assert_int_equal(quant_act_prepare(&a, GGML_Q4_K, c.X, 0, 512), -EINVAL);
	case_free(&c);
	/* the struct reused for float weights: its old buffer is not read */
	case_make(&c, GGML_F16, 20, 512, 3, 0);
	assert_int_equal(quant_act_prepare(&a, GGML_F16, c.X, 3, 512), 0);
	assert_int_equal(quant_matmul_act(&c.W, &a, whole, 0, 20), 0);
	assert_int_equal(quant_matmul_ref(&c.W, c.X, 3, parts, 0, 20), 0);
	for (int i = 0; i < 3 * 20; i++)
		assert_true(fabsf(whole[i] - parts[i]) <= 1e-4f * (1 + fabsf(parts[i])));
	quant_act_release(&a);
	case_free(&c);
}

/* Random bytes (finite scales) through ggml's dequantisers and ours. */
static void test_against_ggml(void **state)
{
	static const struct {
		uint32_t type;
		const char *fn;
	} fns[] = {
	    {GGML_F16, "ggml_fp16_to_fp32_row"}, {GGML_BF16, "ggml_bf16_to_fp32_row"},
	    {GGML_Q8_0, "dequantize_row_q8_0"},  {GGML_Q4_0, "dequantize_row_q4_0"},
	    {GGML_Q4_K, "dequantize_row_q4_K"},  {GGML_Q5_K, "dequantize_row_q5_K"},
	    {GGML_Q6_K, "dequantize_row_q6_K"},
	};
	const char *src = getenv("MEDIAD_SRC");
	char path[512];
	void *lib;

	snprintf(path, sizeof(path),
	         "%s/tests/clients/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64/"
	         "libggml-base.so",
	         src ? src : ".");
	lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!lib) {
		printf("llama.cpp's libggml-base.so not found (%s): skipped\n", path);
		skip();
	}
	rng_state = 5;
	for (size_t i = 0; i < ARRAY_SIZE(fns); i++) {
		void (*deq)(const void *, float *, int64_t);
		int64_t n = 8 * 256;
		size_t rb = quant_row_bytes(fns[i].type, n);
		uint8_t *b = xmalloc(rb);
		float *mine = xmalloc((size_t)n * sizeof(float)),
		      *theirs = xmalloc((size_t)n * sizeof(float));
		struct case_data c;

		*(void **)&deq = dlsym(lib, fns[i].fn);
		assert_non_null(deq);
		if (fns[i].type == GGML_F16 || fns[i].type == GGML_BF16) {
			for (int64_t k = 0; k < n; k++) /* finite values of either form */
				put16(b + 2 * k,
				      (uint16_t)(rng_u32() &
				                 (fns[i].type == GGML_F16 ? 0xfbff : 0xff7f)));
		} else {
			case_make(&c, fns[i].type, 1, n, 1, 1);
			memcpy(b, c.W.data, rb);
			case_free(&c);
		}
		assert_int_equal(quant_dequantize_row(fns[i].type, b, mine, n), 0);
		deq(b, theirs, n);
		for (int64_t k = 0; k < n; k++)
			if (fabsf(mine[k] - theirs[k]) > 1e-6f * fabsf(theirs[k]))
				fail_msg("%s element %ld: %.9g here, %.9g in ggml", fns[i].fn,
				         (long)k, mine[k], theirs[k]);
		free(b);
		free(mine);
		free(theirs);
	}
	printf("random blocks of every quantised type dequantise as llama.cpp's ggml does\n");
	dlclose(lib);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_sizes),
	    cmocka_unit_test(test_half_floats),
	    cmocka_unit_test(test_dequant_float_types),
	    cmocka_unit_test(test_dequant_q8_0_q4_0),
	    cmocka_unit_test(test_dequant_q4_k),
	    cmocka_unit_test(test_dequant_q5_k),
	    cmocka_unit_test(test_dequant_q6_k),
	    cmocka_unit_test(test_quantize_error),
	    cmocka_unit_test(test_quantize_edges),
	    cmocka_unit_test(test_matmul_shapes),
	    cmocka_unit_test(test_matmul_all_levels),
	    cmocka_unit_test(test_matmul_prepared),
	    cmocka_unit_test(test_against_ggml),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
