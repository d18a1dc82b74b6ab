/* quant.c: see quant.h. Block layouts, the scalar dequantisers, activation
 * conversion and the choice of the product path.
 *
 * The layouts (little-endian, packed, no padding), as ggml writes them:
 *
 *   Q8_0 (32 elements, 34 bytes): fp16 d; int8 q[32].       x[i] = d * q[i]
 *   Q4_0 (32, 18): fp16 d; 16 bytes: byte j holds element j in its low
 *     nibble and element j+16 in its high nibble.           x = d * (n - 8)
 *   Q4_K (256, 144): fp16 d, fp16 dmin; 12 bytes of eight 6-bit scales and
 *     eight 6-bit mins (quant_k4_unpack); 128 bytes of nibbles: for pair p
 *     (0..3) byte 32p+l holds element 64p+l (low) and 64p+32+l (high).
 *     Sub-block j (elements 32j..32j+31):       x = d*sc[j]*n - dmin*mn[j]
 *   Q5_K (256, 176): as Q4_K, then qh[32] before the 128 nibble bytes: bit
 *     2p of qh[l] is bit 4 of element 64p+l, bit 2p+1 that of 64p+32+l.
 *   Q6_K (256, 210): ql[128], qh[64], int8 scales[16], fp16 d. For half h
 *     (0, 1), l < 32, with L = ql + 64h, H = qh + 32h, e = 128h + l:
 *       e      low nibble of L[l],    bits 0-1 of H[l]
 *       e + 32 low nibble of L[l+32], bits 2-3 of H[l]
 *       e + 64 high nibble of L[l],   bits 4-5 of H[l]
 *       e + 96 high nibble of L[l+32], bits 6-7 of H[l]
 *     giving 6-bit n; element e uses scale[e / 16]: x = d * scale * (n - 32)
 *   F16, BF16: one 16-bit value per element; F32 one float. */
#include "quant.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "runners/llama/quant_impl.h"
#include "util.h"

int quant_block_elems(uint32_t type)
{
	switch (type) {
	case GGML_F32:
	case GGML_F16:
	case GGML_BF16:
		return 1;
	case GGML_Q8_0:
	case GGML_Q4_0:
		return QK;
	case GGML_Q4_K:
	case GGML_Q5_K:
	case GGML_Q6_K:
		return QKK;
	default:
		return 0;
	}
}

int quant_supported(uint32_t type)
{
	return quant_block_elems(type) != 0;
}

static size_t block_bytes(uint32_t type)
{
	switch (type) {
	case GGML_F32:
		return 4;
	case GGML_F16:
	case GGML_BF16:
		return 2;
	case GGML_Q8_0:
		return Q8_0_BYTES;
	case GGML_Q4_0:
		return Q4_0_BYTES;
	case GGML_Q4_K:
		return Q4_K_BYTES;
	case GGML_Q5_K:
		return Q5_K_BYTES;
	case GGML_Q6_K:
		return Q6_K_BYTES;
	default:
		return 0;
	}
}

size_t quant_row_bytes(uint32_t type, int64_t n)
{
	int be = quant_block_elems(type);

	if (!be || n < 0 || n % be)
		return 0;
	return (size_t)(n / be) * block_bytes(type);
}

/* --- scalar conversions --- */

float quant_fp16_to_f32(uint16_t h)
{
	return quant_h2f(h);
}

uint16_t quant_f32_to_fp16(float f)
{
	uint32_t x, sign, r;

	memcpy(&x, &f, sizeof(x));
	sign = (x >> 16) & 0x8000;
	x &= 0x7fffffffu;
	if (x > 0x7f800000u)
		return (uint16_t)(sign | 0x7e00); /* NaN stays NaN */
	if (x < 0x38800000u) /* below 2^-14: a subnormal half, in units of 2^-24 */
		return (uint16_t)(sign | (uint32_t)lrintf(ldexpf(fabsf(f), 24)));
	/* rebias the exponent (127 -> 15) and round the 13 dropped bits to
	 * nearest even; a carry out of the mantissa bumps the exponent */
	r = (x + 0xfffu + ((x >> 13) & 1u) - 0x38000000u) >> 13;
	if (r >= 0x7c00u)
		r = 0x7c00u;
	return (uint16_t)(sign | r);
}

float quant_bf16_to_f32(uint16_t h)
{
	return quant_b2f(h);
}

uint16_t quant_f32_to_bf16(float f)
{
	uint32_t x;

	memcpy(&x, &f, sizeof(x));
	if ((x & 0x7fffffffu) > 0x7f800000u)
		return (uint16_t)((x >> 16) | 0x40); /* quiet NaN */
	return (uint16_t)((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

/* --- dequantisation --- */

static void deq_q8_0(const uint8_t *b, float *y)
{
	float d = quant_fp16_to_f32(quant_rd16(b));

	for (int i = 0; i < QK; i++)
		y[i] = d * (float)(int8_t)b[2 + i];
}

static void deq_q4_0(const uint8_t *b, float *y)
{
	float d = quant_fp16_to_f32(quant_rd16(b));

	for (int j = 0; j < QK / 2; j++) {
		y[j] = d * (float)((b[2 + j] & 0xf) - 8);
		y[j + QK / 2] = d * (float)((b[2 + j] >> 4) - 8);
	}
}

/* Q4_K and Q5_K (qh NULL for Q4_K). */
static void deq_k45(const uint8_t *b, const uint8_t *qh, const uint8_t *qs, float *y)
{
	float d = quant_fp16_to_f32(quant_rd16(b));
	float dmin = quant_fp16_to_f32(quant_rd16(b + 2));
	uint8_t sc[8], mn[8];

	quant_k4_unpack(b + QK4_SCALES, sc, mn);
	for (int p = 0; p < 4; p++) {
		float d0 = d * sc[2 * p], m0 = dmin * mn[2 * p];
		float d1 = d * sc[2 * p + 1], m1 = dmin * mn[2 * p + 1];

		for (int l = 0; l < 32; l++) {
			int lo = qs[32 * p + l] & 0xf, hi = qs[32 * p + l] >> 4;

			if (qh) {
				lo |= ((qh[l] >> (2 * p)) & 1) << 4;
				hi |= ((qh[l] >> (2 * p + 1)) & 1) << 4;
			}
			y[64 * p + l] = d0 * (float)lo - m0;
			y[64 * p + 32 + l] = d1 * (float)hi - m1;
		}
	}
}

static void deq_q6_k(const uint8_t *b, float *y)
{
	float d = quant_fp16_to_f32(quant_rd16(b + QK6_D));
	const int8_t *sc = (const int8_t *)(b + QK6_SC);

	for (int h = 0; h < 2; h++) {
		const uint8_t *ql = b + QK6_QL + 64 * h, *qh = b + QK6_QH + 32 * h;
		float *o = y + 128 * h;

		for (int l = 0; l < 32; l++) {
			int n[4] = {
			    (ql[l] & 0xf) | ((qh[l] & 3) << 4),
			    (ql[l + 32] & 0xf) | (((qh[l] >> 2) & 3) << 4),
			    (ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4),
			    (ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4),
			};

			for (int k = 0; k < 4; k++) {
				int e = 128 * h + 32 * k + l;

				o[32 * k + l] = d * (float)sc[e / 16] * (float)(n[k] - 32);
			}
		}
	}
}

int quant_dequantize_row(uint32_t type, const void *src, float *dst, int64_t n)
{
	const uint8_t *s = src;
	size_t bb = block_bytes(type);
	int be = quant_block_elems(type);

	if (!be || n < 0 || n % be)
		return -EINVAL;
	for (int64_t i = 0; i < n / be; i++, s += bb) {
		float *y = dst + i * be;

		switch (type) {
		case GGML_F32:
			memcpy(y, s, sizeof(float));
			break;
		case GGML_F16:
			*y = quant_fp16_to_f32(quant_rd16(s));
			break;
		case GGML_BF16:
			*y = quant_bf16_to_f32(quant_rd16(s));
			break;
		case GGML_Q8_0:
			deq_q8_0(s, y);
			break;
		case GGML_Q4_0:
			deq_q4_0(s, y);
			break;
		case GGML_Q4_K:
			deq_k45(s, NULL, s + QK4_QS, y);
			break;
		case GGML_Q5_K:
			deq_k45(s, s + QK5_QH, s + QK5_QS, y);
			break;
		case GGML_Q6_K:
			deq_q6_k(s, y);
			break;
		}
	}
	return 0;
}

/* --- activations --- */

void quant_act_init(struct quant_act *a)
{
	memset(a, 0, sizeof(*a));
}

void quant_act_release(struct quant_act *a)
{
	free(a->buf);
	quant_act_init(a);
}

static int act_kind(uint32_t wtype)
{
	switch (wtype) {
	case GGML_F32:
	case GGML_F16:
	case GGML_BF16:
		return QUANT_ACT_F32;
	case GGML_Q8_0:
	case GGML_Q4_0:
		return QUANT_ACT_Q8;
	case GGML_Q4_K:
	case GGML_Q5_K:
	case GGML_Q6_K:
		return QUANT_ACT_Q8K;
	default:
		return 0;
	}
}

/* n floats to int8 with one scale: d = max|x| / 127, q = round(x / d). */
static float act_quantize(const float *x, int n, int8_t *q)
{
	float amax = 0, d, id;

	for (int i = 0; i < n; i++)
		amax = fmaxf(amax, fabsf(x[i]));
	d = amax / 127.0f;
	id = amax > 0 ? 127.0f / amax : 0.0f;
	for (int i = 0; i < n; i++) {
		long v = lrintf(x[i] * id);

		q[i] = (int8_t)(v > 127 ? 127 : v < -127 ? -127 : v);
	}
	return d;
}

static void act_q8(const float *x, int64_t cols, struct quant_a8 *o)
{
	for (int64_t b = 0; b < cols / QK; b++, x += QK, o++) {
		o->d = act_quantize(x, QK, o->qs);
		o->s = 0;
		for (int i = 0; i < QK; i++)
			o->s += o->qs[i];
	}
}

static void act_q8k(const float *x, int64_t cols, struct quant_a8k *o)
{
	for (int64_t b = 0; b < cols / QKK; b++, x += QKK, o++) {
		o->d = act_quantize(x, QKK, o->qs);
		for (int g = 0; g < QKK / 16; g++) {
			int s = 0;

			for (int i = 0; i < 16; i++)
				s += o->qs[16 * g + i];
			o->bsums[g] = (int16_t)s;
		}
	}
}

int quant_act_prepare(struct quant_act *a, uint32_t wtype, const float *X, int n_tok, int64_t cols)
{
	int kind = act_kind(wtype);
	size_t need;

	if (!kind || n_tok < 1 || cols < 1 || !quant_row_bytes(wtype, cols))
		return -EINVAL;
	a->kind = kind;
	a->n_tok = n_tok;
	a->cols = cols;
	a->x = X;
	if (kind == QUANT_ACT_F32) {
		a->stride = 0;
		return 0;
	}
	a->stride = kind == QUANT_ACT_Q8 ? (size_t)(cols / QK) * sizeof(struct quant_a8)
	                                 : (size_t)(cols / QKK) * sizeof(struct quant_a8k);
	need = a->stride * (size_t)n_tok;
	if (need > a->cap) {
		free(a->buf);
		a->buf = xmalloc(need);
		a->cap = need;
	}
	for (int t = 0; t < n_tok; t++) {
		const float *x = X + (size_t)t * (size_t)cols;
		void *o = (char *)a->buf + (size_t)t * a->stride;

		if (kind == QUANT_ACT_Q8)
			act_q8(x, cols, o);
		else
			act_q8k(x, cols, o);
	}
	return 0;
}

/* --- the product path --- */

static pthread_once_t isa_once = PTHREAD_ONCE_INIT;
static int isa_best, isa_cur;

static void isa_detect(void)
{
	isa_best = QUANT_ISA_SCALAR;
#if defined(__x86_64__)
	__builtin_cpu_init();
	if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
	    __builtin_cpu_supports("f16c"))
		isa_best = QUANT_ISA_AVX2;
#endif
	isa_cur = isa_best;
}

int quant_set_isa(int isa)
{
	int was;

	pthread_once(&isa_once, isa_detect);
	was = isa_cur;
	isa_cur = isa < QUANT_ISA_SCALAR ? QUANT_ISA_SCALAR : MIN(isa, isa_best);
	return was;
}

const char *quant_isa_name(void)
{
	pthread_once(&isa_once, isa_detect);
	return isa_cur == QUANT_ISA_AVX2 ? "avx2+fma+f16c" : "scalar";
}

static int matmul_on(const struct quant_matrix *W, const struct quant_act *a, float *Y, int64_t r0,
                     int64_t r1, int isa)
{
	struct quant_job j;

	if (!W || !a || act_kind(W->type) != a->kind || a->cols != W->cols || r0 < 0 || r1 < r0 ||
	    r1 > W->rows)
		return -EINVAL;
	j = (struct quant_job){
	    .type = W->type,
	    .w = W->data,
	    .row_bytes = quant_row_bytes(W->type, W->cols),
	    .cols = W->cols,
	    .nb = W->cols / quant_block_elems(W->type),
	    .n_tok = a->n_tok,
	    .act = a->kind == QUANT_ACT_F32 ? NULL : a->buf, /* buf may be stale */
	    .act_stride = a->stride,
	    .x = a->x,
	    .Y = Y,
	    .ldy = W->rows,
	};
	if (r1 == r0)
		return 0;
#if defined(__x86_64__)
	if (isa == QUANT_ISA_AVX2) {
		quant_rows_avx2(&j, r0, r1);
		return 0;
	}
#endif
	quant_rows_ref(&j, r0, r1);
	return 0;
}

int quant_matmul_act(const struct quant_matrix *W, const struct quant_act *a, float *Y,
                     int64_t row_begin, int64_t row_end)
{
	pthread_once(&isa_once, isa_detect);
	return matmul_on(W, a, Y, row_begin, row_end, isa_cur);
}

static int matmul_once(const struct quant_matrix *W, const float *X, int n_tok, float *Y,
                       int64_t r0, int64_t r1, int isa)
{
	struct quant_act a;
	int rc;

	quant_act_init(&a);
	rc = quant_act_prepare(&a, W->type, X, n_tok, W->cols);
	if (!rc)
		rc = matmul_on(W, &a, Y, r0, r1, isa);
	quant_act_release(&a);
	return rc;
}

int quant_matmul(const struct quant_matrix *W, const float *X, int n_tok, float *Y,
                 int64_t row_begin, int64_t row_end)
{
	pthread_once(&isa_once, isa_detect);
	return matmul_once(W, X, n_tok, Y, row_begin, row_end, isa_cur);
}

int quant_matmul_ref(const struct quant_matrix *W, const float *X, int n_tok, float *Y,
                     int64_t row_begin, int64_t row_end)
{
	return matmul_once(W, X, n_tok, Y, row_begin, row_end, QUANT_ISA_SCALAR);
}
