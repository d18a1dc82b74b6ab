/* quant_impl.h: what quant.c, quant_pack.c, quant_ref.c and quant_avx2.c
 * share and nobody else needs: block geometry, the activation block forms
 * and the per-ISA row kernels' signature. */
#ifndef MEDIAD_QUANT_IMPL_H
#define MEDIAD_QUANT_IMPL_H

#include <stdint.h>
#include <string.h>

#include "runners/llama/quant.h"

/* Block sizes in bytes (ggml's). */
#define QK 32    /* Q8_0 / Q4_0 block elements */
#define QKK 256  /* K-quant super-block elements */
#define Q8_0_BYTES 34
#define Q4_0_BYTES 18
#define Q4_K_BYTES 144
#define Q5_K_BYTES 176
#define Q6_K_BYTES 210

/* Offsets inside the K-quant blocks. */
#define QK4_SCALES 4 /* Q4_K/Q5_K: d, dmin fp16 then 12 bytes of scales/mins */
#define QK4_QS 16
#define QK5_QH 16
#define QK5_QS 48
#define QK6_QL 0
#define QK6_QH 128
#define QK6_SC 192
#define QK6_D 208

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

/* Rows [r0, r1) of W times every token of a into Y (see quant_matmul_act). */
typedef void (*quant_rows_fn)(const struct quant_matrix *W, const struct quant_act *a,
			      float *Y, int64_t r0, int64_t r1);

/* NULL when that path has no kernel for the type. */
quant_rows_fn quant_rows_ref(uint32_t type);
quant_rows_fn quant_rows_avx2(uint32_t type);

static inline uint16_t quant_rd16(const uint8_t *p)
{
	uint16_t v;
	memcpy(&v, p, sizeof(v));
	return v;
}

/* Token t's activation blocks. */
static inline const void *quant_act_tok(const struct quant_act *a, int t)
{
	return (const char *)a->buf + (size_t)t * a->stride;
}

/* Q4_K/Q5_K: the eight 6-bit scales and mins packed in 12 bytes. */
void quant_k4_unpack(const uint8_t *s12, uint8_t sc[8], uint8_t mn[8]);

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
	*sc = (u0 & 0x3f3f3f3fu) |
	      (uint64_t)((u2 & 0x0f0f0f0fu) | ((u0 >> 6) & 0x03030303u) << 4) << 32;
	*mn = (u1 & 0x3f3f3f3fu) |
	      (uint64_t)(((u2 >> 4) & 0x0f0f0f0fu) | ((u1 >> 6) & 0x03030303u) << 4) << 32;
}

#endif
