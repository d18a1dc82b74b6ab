/* quant_avx2.c: the products on AVX2+FMA+F16C (chosen at run time by
 * quant.c; compiled for any x86-64 through target attributes).
 *
 * Each weight row is walked once per group of up to four tokens; each
 * weight block is unpacked into registers once and multiplied against the
 * group's tokens, so a batch streams each weight row from memory once (the
 * row stays in L1 across the groups). The integer products use
 * vpmaddubsw (unsigned weight levels times signed activations, pairs into
 * int16 without saturation at these ranges: 63 * 127 * 2 < 32767) then
 * vpmaddwd (pairs into int32, times a sub-block scale where there is one);
 * each block's int32 sums become float once per block through an FMA with
 * the block's two scales. Same terms as quant_ref.c. */
#if defined(__x86_64__)

#include <immintrin.h>
#include <stdint.h>

#include "runners/llama/quant_impl.h"
#include "util.h"

#define ATTR   __attribute__((target("avx2,fma,f16c")))
#define INL    static inline __attribute__((always_inline)) ATTR
#define NT_MAX 4 /* tokens per weight-block unpack */

INL float hsum(__m256 v)
{
	__m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));

	s = _mm_add_ps(s, _mm_movehl_ps(s, s));
	s = _mm_add_ss(s, _mm_movehdup_ps(s));
	return _mm_cvtss_f32(s);
}

INL float h2f(const uint8_t *p)
{
	return _cvtsh_ss(quant_rd16(p));
}

INL __m256i load256(const void *p)
{
	return _mm256_loadu_si256((const __m256i *)p);
}

/* unsigned levels u (< 64) times signed a, summed in pairs then in fours
 * with weights sc (int16 lanes): 8 x int32. */
INL __m256i dot_u8s8(__m256i u, __m256i a, __m256i sc)
{
	return _mm256_madd_epi16(_mm256_maddubs_epi16(u, a), sc);
}

/* --- float weights --- */

/* 8 weights of row w from column c as floats. */
INL __m256 load_w8(uint32_t type, const uint8_t *w, int64_t c)
{
	if (type == GGML_F32)
		return _mm256_loadu_ps((const float *)(const void *)(w + 4 * c));
	if (type == GGML_F16)
		return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w + 2 * c)));
	return _mm256_castsi256_ps(_mm256_slli_epi32(
	    _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(w + 2 * c))), 16));
}

INL float load_w1(uint32_t type, const uint8_t *w, int64_t c)
{
	float v;

	if (type == GGML_F32) {
		memcpy(&v, w + 4 * c, sizeof(v));
		return v;
	}
	return type == GGML_F16 ? h2f(w + 2 * c) : quant_b2f(quant_rd16(w + 2 * c));
}

INL void row_float(uint32_t type, const uint8_t *w, const float *const *x, int nt, int64_t n,
                   float *out)
{
	__m256 acc0[NT_MAX], acc1[NT_MAX];
	int64_t c = 0;

#pragma GCC unroll 4
	for (int t = 0; t < nt; t++)
		acc0[t] = acc1[t] = _mm256_setzero_ps();
	for (; c + 16 <= n; c += 16) {
		__m256 w0 = load_w8(type, w, c), w1 = load_w8(type, w, c + 8);

#pragma GCC unroll 4
		for (int t = 0; t < nt; t++) {
			acc0[t] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x[t] + c), acc0[t]);
			acc1[t] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(x[t] + c + 8), acc1[t]);
		}
	}
	for (; c + 8 <= n; c += 8) {
		__m256 w0 = load_w8(type, w, c);

#pragma GCC unroll 4
		for (int t = 0; t < nt; t++)
			acc0[t] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x[t] + c), acc0[t]);
	}
#pragma GCC unroll 4
	for (int t = 0; t < nt; t++) {
		float s = hsum(_mm256_add_ps(acc0[t], acc1[t]));

		for (int64_t k = c; k < n; k++)
			s += load_w1(type, w, k) * x[t][k];
		out[t] = s;
	}
}

/* --- Q8_0 and Q4_0 weights against 32-element int8 activations --- */

/* One Q8_0 block times nt tokens' blocks b into acc. */
INL void blk_q8_0(const uint8_t *w, const struct quant_a8 *const *a, int nt, int64_t b, __m256 *acc)
{
	const __m256i ones = _mm256_set1_epi16(1);
	__m256i q = load256(w + 2), uq = _mm256_sign_epi8(q, q);
	float d = h2f(w);

	/* signed x signed through |q| and the activations' signs moved onto
	 * them (vpsignb), as vpmaddubsw wants one unsigned side */
#pragma GCC unroll 4
	for (int t = 0; t < nt; t++) {
		const struct quant_a8 *ab = a[t] + b;
		__m256i y = _mm256_sign_epi8(load256(ab->qs), q);
		__m256i p = dot_u8s8(uq, y, ones);

		acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(d * ab->d), acc[t]);
	}
}

INL void blk_q4_0(const uint8_t *w, const struct quant_a8 *const *a, int nt, int64_t b, __m256 *acc)
{
	const __m256i ones = _mm256_set1_epi16(1), m4 = _mm256_set1_epi8(0xf);
	__m128i raw = _mm_loadu_si128((const __m128i *)(w + 2));
	/* elements 0..15 (low nibbles) then 16..31 (high) */
	__m256i q = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(raw, 4), raw), m4);
	float d = h2f(w);

#pragma GCC unroll 4
	for (int t = 0; t < nt; t++) {
		const struct quant_a8 *ab = a[t] + b;
		__m256i p = dot_u8s8(q, load256(ab->qs), ones);

		/* the -8 offset: 8 lanes each less s sum to less 8 s */
		p = _mm256_sub_epi32(p, _mm256_set1_epi32(ab->s));
		acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(d * ab->d), acc[t]);
	}
}

/* Q8_0 (q4 = 0) or Q4_0 rows: two blocks a step into two accumulators
 * per token, so one token is not held to one FMA latency per block. */
INL void row_q8(const uint8_t *w, int q4, const struct quant_a8 *const *a, int nt, int64_t nb,
                float *out)
{
	const size_t bb = q4 ? Q4_0_BYTES : Q8_0_BYTES;
	__m256 acc0[NT_MAX], acc1[NT_MAX];
	int64_t b = 0;

#pragma GCC unroll 4
	for (int t = 0; t < nt; t++)
		acc0[t] = acc1[t] = _mm256_setzero_ps();
	for (; b + 2 <= nb; b += 2) {
		if (q4) {
			blk_q4_0(w + b * bb, a, nt, b, acc0);
			blk_q4_0(w + (b + 1) * bb, a, nt, b + 1, acc1);
		} else {
			blk_q8_0(w + b * bb, a, nt, b, acc0);
			blk_q8_0(w + (b + 1) * bb, a, nt, b + 1, acc1);
		}
	}
	if (b < nb) {
		if (q4)
			blk_q4_0(w + b * bb, a, nt, b, acc0);
		else
			blk_q8_0(w + b * bb, a, nt, b, acc0);
	}
#pragma GCC unroll 4
	for (int t = 0; t < nt; t++)
		out[t] = hsum(_mm256_add_ps(acc0[t], acc1[t]));
}

/* --- K-quants against 256-element int8 activations with sums of 16 --- */

/* Q4_K (q5 = 0) and Q5_K (q5 = 1). */
INL void row_k45(const uint8_t *w, int q5, const struct quant_a8k *const *a, int nt, int64_t nb,
                 float *out)
{
	const __m256i m4 = _mm256_set1_epi8(0xf), one = _mm256_set1_epi8(1);
	const size_t bb = q5 ? Q5_K_BYTES : Q4_K_BYTES;
	__m256 acc[NT_MAX];

#pragma GCC unroll 4
	for (int t = 0; t < nt; t++)
		acc[t] = _mm256_setzero_ps();
	for (int64_t b = 0; b < nb; b++, w += bb) {
		const uint8_t *qs = w + (q5 ? QK5_QS : QK4_QS);
		uint64_t sc, mn;
		__m256i isum[NT_MAX], mins, qh = q5 ? load256(w + QK5_QH) : _mm256_setzero_si256();
		__m128i m8;
		float d = h2f(w), dmin = h2f(w + 2);

		quant_k4_unpack64(w + QK4_SCALES, &sc, &mn);
		m8 = _mm_cvtsi64_si128((long long)mn);
		/* each min covers two sums of 16: m0 m0 m1 m1 ... */
		mins = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(m8, m8));
#pragma GCC unroll 4
		for (int t = 0; t < nt; t++)
			isum[t] = _mm256_setzero_si256();
		for (int p = 0; p < 4; p++) {
			__m256i q = load256(qs + 32 * p);
			__m256i lo = _mm256_and_si256(q, m4);
			__m256i hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
			__m256i s0 = _mm256_set1_epi16((short)((sc >> (16 * p)) & 0xff));
			__m256i s1 = _mm256_set1_epi16((short)((sc >> (16 * p + 8)) & 0xff));

			if (q5) { /* bit 2p of qh[l] tops element 64p+l, bit 2p+1 64p+32+l */
				lo = _mm256_or_si256(
				    lo, _mm256_slli_epi16(_mm256_and_si256(qh, one), 4));
				hi = _mm256_or_si256(
				    hi, _mm256_slli_epi16(
				            _mm256_and_si256(_mm256_srli_epi16(qh, 1), one), 4));
				qh = _mm256_srli_epi16(qh, 2);
			}
#pragma GCC unroll 4
			for (int t = 0; t < nt; t++) {
				const int8_t *y = a[t][b].qs + 64 * p;

				isum[t] = _mm256_add_epi32(
				    isum[t], _mm256_add_epi32(dot_u8s8(lo, load256(y), s0),
				                              dot_u8s8(hi, load256(y + 32), s1)));
			}
		}
#pragma GCC unroll 4
		for (int t = 0; t < nt; t++) {
			const struct quant_a8k *ab = a[t] + b;
			__m256i msum = _mm256_madd_epi16(load256(ab->bsums), mins);

			acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[t]),
			                         _mm256_set1_ps(d * ab->d), acc[t]);
			acc[t] = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(msum),
			                          _mm256_set1_ps(dmin * ab->d), acc[t]);
		}
	}
#pragma GCC unroll 4
	for (int t = 0; t < nt; t++)
		out[t] = hsum(acc[t]);
}

/* int16 lanes: scale s0 for the first 16 bytes' pairs, s1 for the rest. */
INL __m256i scale_pair(const int8_t *sc)
{
	return _mm256_set_m128i(_mm_set1_epi16(sc[1]), _mm_set1_epi16(sc[0]));
}

INL void row_q6_k(const uint8_t *w, const struct quant_a8k *const *a, int nt, int64_t nb,
                  float *out)
{
	const __m256i m4 = _mm256_set1_epi8(0xf), m3 = _mm256_set1_epi8(3);
	__m256 acc[NT_MAX];

#pragma GCC unroll 4
	for (int t = 0; t < nt; t++)
		acc[t] = _mm256_setzero_ps();
	for (int64_t b = 0; b < nb; b++, w += Q6_K_BYTES) {
		const int8_t *sc = (const int8_t *)(w + QK6_SC);
		__m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)sc));
		__m256i isum[NT_MAX];
		float d = h2f(w + QK6_D);

		/* the -32 offset: sum_g sc_g * 32 * (sum of 16 activations)_g */
#pragma GCC unroll 4
		for (int t = 0; t < nt; t++)
			isum[t] = _mm256_sub_epi32(
			    _mm256_setzero_si256(),
			    _mm256_slli_epi32(_mm256_madd_epi16(load256(a[t][b].bsums), sc16), 5));
		for (int h = 0; h < 2; h++) {
			const uint8_t *ql = w + QK6_QL + 64 * h;
			__m256i l0 = load256(ql), l1 = load256(ql + 32);
			__m256i qh = load256(w + QK6_QH + 32 * h);
			__m256i q[4], s[4];

			q[0] = _mm256_or_si256(_mm256_and_si256(l0, m4),
			                       _mm256_slli_epi16(_mm256_and_si256(qh, m3), 4));
			q[1] = _mm256_or_si256(
			    _mm256_and_si256(l1, m4),
			    _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2), m3), 4));
			q[2] = _mm256_or_si256(
			    _mm256_and_si256(_mm256_srli_epi16(l0, 4), m4),
			    _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 4), m3), 4));
			q[3] = _mm256_or_si256(
			    _mm256_and_si256(_mm256_srli_epi16(l1, 4), m4),
			    _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 6), m3), 4));
			for (int k = 0; k < 4; k++) /* elements 128h+32k.. use scales 8h+2k, +1 */
				s[k] = scale_pair(sc + 8 * h + 2 * k);
#pragma GCC unroll 4
			for (int t = 0; t < nt; t++) {
				const int8_t *y = a[t][b].qs + 128 * h;
				__m256i p01 =
				    _mm256_add_epi32(dot_u8s8(q[0], load256(y), s[0]),
				                     dot_u8s8(q[1], load256(y + 32), s[1]));
				__m256i p23 =
				    _mm256_add_epi32(dot_u8s8(q[2], load256(y + 64), s[2]),
				                     dot_u8s8(q[3], load256(y + 96), s[3]));

				isum[t] = _mm256_add_epi32(isum[t], _mm256_add_epi32(p01, p23));
			}
		}
#pragma GCC unroll 4
		for (int t = 0; t < nt; t++)
			acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[t]),
			                         _mm256_set1_ps(d * a[t][b].d), acc[t]);
	}
#pragma GCC unroll 4
	for (int t = 0; t < nt; t++)
		out[t] = hsum(acc[t]);
}

/* --- drivers: rows outer, groups of tokens inner --- */

/* One kernel call for nt tokens, nt a constant in each case so the
 * token loops unroll into registers. */
#define DISPATCH_NT(call)                                                                          \
	switch (nt) {                                                                              \
	case 4: {                                                                                  \
		enum { NT = 4 };                                                                   \
		call;                                                                              \
		break;                                                                             \
	}                                                                                          \
	case 3: {                                                                                  \
		enum { NT = 3 };                                                                   \
		call;                                                                              \
		break;                                                                             \
	}                                                                                          \
	case 2: {                                                                                  \
		enum { NT = 2 };                                                                   \
		call;                                                                              \
		break;                                                                             \
	}                                                                                          \
	default: {                                                                                 \
		enum { NT = 1 };                                                                   \
		call;                                                                              \
		break;                                                                             \
	}                                                                                          \
	}

ATTR void quant_rows_avx2(const struct quant_job *j, int64_t r0, int64_t r1)
{
	int64_t nb = j->nb;

	for (int64_t r = r0; r < r1; r++) {
		const uint8_t *w = j->w + (size_t)r * j->row_bytes;

		for (int t0 = 0; t0 < j->n_tok; t0 += NT_MAX) {
			int nt = MIN(NT_MAX, j->n_tok - t0);
			const void *ap[NT_MAX];
			float out[NT_MAX];

			for (int t = 0; t < nt; t++)
				ap[t] =
				    j->act
				        ? quant_job_act(j, t0 + t)
				        : (const void *)(j->x + (size_t)(t0 + t) * (size_t)j->cols);
			switch (j->type) {
			case GGML_F32: /* the type a constant in each: no branch per load */
				DISPATCH_NT(row_float(GGML_F32, w, (const float *const *)ap, NT,
				                      j->cols, out));
				break;
			case GGML_F16:
				DISPATCH_NT(row_float(GGML_F16, w, (const float *const *)ap, NT,
				                      j->cols, out));
				break;
			case GGML_BF16:
				DISPATCH_NT(row_float(GGML_BF16, w, (const float *const *)ap, NT,
				                      j->cols, out));
				break;
			case GGML_Q8_0:
				DISPATCH_NT(
				    row_q8(w, 0, (const struct quant_a8 *const *)ap, NT, nb, out));
				break;
			case GGML_Q4_0:
				DISPATCH_NT(
				    row_q8(w, 1, (const struct quant_a8 *const *)ap, NT, nb, out));
				break;
			case GGML_Q4_K:
				DISPATCH_NT(row_k45(w, 0, (const struct quant_a8k *const *)ap, NT,
				                    nb, out));
				break;
			case GGML_Q5_K:
				DISPATCH_NT(row_k45(w, 1, (const struct quant_a8k *const *)ap, NT,
				                    nb, out));
				break;
			case GGML_Q6_K:
				DISPATCH_NT(
				    row_q6_k(w, (const struct quant_a8k *const *)ap, NT, nb, out));
				break;
			}
			for (int t = 0; t < nt; t++)
				j->Y[(size_t)(t0 + t) * (size_t)j->ldy + (size_t)r] = out[t];
		}
	}
}

#endif
