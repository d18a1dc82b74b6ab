/* quant_impl.h: what quant.c, quant_pack.c, quant_ref.c and quant_avx2.c
 * share and nobody else needs: block geometry, the activation block forms,
 * the row kernels' job and the small decoders every path uses. The kernel
 * files see only this header (not quant.h), so they stay leaves under
 * quant.c: it checks a product and hands them a job. */
#ifndef MEDIAD_QUANT_IMPL_H
#define MEDIAD_QUANT_IMPL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "runners/llama/gguf.h"

/* Block sizes in bytes (ggml's). */
#define QK         32  /* Q8_0 / Q4_0 block elements */
#define QKK        256 /* K-quant super-block elements */
#define Q8_0_BYTES 34
#define Q4_0_BYTES 18
#define Q4_K_BYTES 144
#define Q5_K_BYTES 176
#define Q6_K_BYTES 210

/* Offsets inside the K-quant blocks. */
#define QK4_SCALES 4 /* Q4_K/Q5_K: d, dmin fp16 then 12 bytes of scales/mins */
#define QK4_QS     16
#define QK5_QH     16
#define QK5_QS     48
#define QK6_QL     0
#define QK6_QH     128
#define QK6_SC     192
#define QK6_D      208

enum { QUANT_ACT_F32 = 1, QUANT_ACT_Q8 = 2, QUANT_ACT_Q8K = 3 };

/* Activations for Q8_0/Q4_0 weights: x ~ d * qs, s = sum of qs. */
struct quant_a8 {
	float d;
	int32_t s;
	int8_t qs[QK];
};

/* Activations for K-quant weights: x ~ d * qs, bsums[g] = sum of qs over
 * elements 16g..16g+15. */
struct quant_a8k {
	float d;
	int8_t qs[QKK];
	int16_t bsums[QKK / 16];
};

/* One product as the row kernels see it (quant.c fills it in, checked):
 * rows of row_bytes at w, nb blocks of cols elements each; n_tok tokens of
 * activations, act + t * act_stride (quantised forms) or x + t * cols
 * (float weights); results at Y[t * ldy + r]. */
struct quant_job {
	uint32_t type;
	const uint8_t *w;
	size_t row_bytes;
	int64_t cols, nb;
	int n_tok;
	const void *act;
	size_t act_stride;
	const float *x;
	float *Y;
	int64_t ldy;
};

/* Rows [r0, r1) of the job's product, every token. */
void quant_rows_ref(const struct quant_job *j, int64_t r0, int64_t r1);
void quant_rows_avx2(const struct quant_job *j, int64_t r0, int64_t r1);

static inline uint16_t quant_rd16(const uint8_t *p)
{
	uint16_t v;
	memcpy(&v, p, sizeof(v));
	return v;
}

/* Token t's activation blocks. */
static inline const void *quant_job_act(const struct quant_job *j, int t)
{
	return (const char *)j->act + (size_t)t * j->act_stride;
}

/* IEEE binary16 and bfloat16 bits to float (exact). */
static inline float quant_h2f(uint16_t h)
{
	uint32_t sign = (uint32_t)(h & 0x8000) << 16;
	uint32_t e = (h >> 10) & 0x1f, m = h & 0x3ff, bits;
	float f;

	if (e == 0) { /* zero or subnormal: m * 2^-24, exact in float */
		f = (float)m * 0x1p-24f;
		return sign ? -f : f;
	}
	if (e == 31)
		bits = sign | 0x7f800000u | (m << 13);
	else
		bits = sign | ((e + 112) << 23) | (m << 13);
	memcpy(&f, &bits, sizeof(f));
	return f;
}

static inline float quant_b2f(uint16_t h)
{
	uint32_t bits = (uint32_t)h << 16;
	float f;

	memcpy(&f, &bits, sizeof(f));
	return f;
}

/* Q4_K/Q5_K: the eight 6-bit scales and mins packed in 12 bytes. */
static inline void quant_k4_unpack(const uint8_t *s12, uint8_t sc[8], uint8_t mn[8])
{
	for (int j = 0; j < 4; j++) {
		sc[j] = s12[j] & 63;
		mn[j] = s12[j + 4] & 63;
		/* the upper four: low 4 bits in bytes 8..11, top 2 bits in
		 * the spare top bits of bytes 0..3 (scales) and 4..7 (mins) */
		sc[j + 4] = (uint8_t)((s12[j + 8] & 0xf) | ((s12[j] >> 6) << 4));
		mn[j + 4] = (uint8_t)((s12[j + 8] >> 4) | ((s12[j + 4] >> 6) << 4));
	}
}

/* The same eight bytes at a time (byte j of *sc is scale j): bytes 0-3
 * hold scales 0-3 in their low 6 bits, 4-7 mins 0-3; 8-11 the low nibbles
 * of scale and min j+4; the top 2 bits of bytes 0-3 (4-7) are the top
 * bits of scales (mins) 4-7. The masks keep each byte to its own bits. */
static inline void quant_k4_unpack64(const uint8_t *s12, uint64_t *sc, uint64_t *mn)
{
	uint32_t u0, u1, u2;

	memcpy(&u0, s12, 4);
	memcpy(&u1, s12 + 4, 4);
	memcpy(&u2, s12 + 8, 4);
	*sc = (u0 & 0x3f3f3f3fu) | (uint64_t)((u2 & 0x0f0f0f0fu) | ((u0 >> 6) & 0x03030303u) << 4)
	                               << 32;
	*mn = (u1 & 0x3f3f3f3fu) |
	      (uint64_t)(((u2 >> 4) & 0x0f0f0f0fu) | ((u1 >> 6) & 0x03030303u) << 4) << 32;
}

#endif
