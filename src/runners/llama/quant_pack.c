/* quant_pack.c: the reference quantisers (quant_quantize_row), for the
 * project's own model writer: valid ggml blocks (layouts: quant.c) with
 * least-squares scales, not llama.cpp's exact bytes.
 *
 * Each block (or K-quant sub-block) tries a few scales around the one that
 * maps its extreme value to the extreme level, refits scale (and min) by
 * least squares for the levels each gives, and keeps the one of least
 * squared error. K-quant super-blocks then quantise those sub-block scales
 * and mins to 6 (Q6_K: 8) bits, and the elements are requantised against
 * the scales as stored, so rounding a scale never leaves levels that
 * belonged to another. */
#include "quant.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "runners/llama/quant_impl.h"
#include "util.h"

#define SEARCH_STEPS 10 /* candidate scales either side of the first guess */

static int clampi(long v, int lo, int hi)
{
	return v < lo ? lo : v > hi ? hi : (int)v;
}

/* x ~ a * L with L in [-nmax, nmax - 1] (levels in L); returns a. The value
 * of largest magnitude goes to -nmax first, using the extra negative level. */
static float sym_fit(const float *x, int n, int nmax, int8_t *L)
{
	float vmax = 0, best_a = 0, best_q = -1;
	int8_t cand[QKK];

	for (int i = 0; i < n; i++)
		if (fabsf(x[i]) > fabsf(vmax))
			vmax = x[i];
	memset(L, 0, (size_t)n);
	if (vmax == 0)
		return 0;
	for (int k = -SEARCH_STEPS; k <= SEARCH_STEPS; k++) {
		float is = -((float)nmax + 0.1f * (float)k) / vmax;
		float slx = 0, sll = 0, q;

		for (int i = 0; i < n; i++) {
			cand[i] = (int8_t)clampi(lrintf(x[i] * is), -nmax, nmax - 1);
			slx += x[i] * cand[i];
			sll += (float)(cand[i] * cand[i]);
		}
		/* error = sum x^2 - slx^2 / sll at the best a = slx / sll */
		q = sll > 0 ? slx * slx / sll : 0;
		if (q > best_q) {
			best_q = q;
			best_a = sll > 0 ? slx / sll : 0;
			memcpy(L, cand, (size_t)n);
		}
	}
	return best_a;
}

/* x ~ s * L - m with L in [0, nmax], s >= 0, m >= 0 (the form K-quant
 * sub-blocks take); returns s, *m_out = m. */
static float asym_fit(const float *x, int n, int nmax, float *m_out)
{
	float lo = 0, hi = x[0], best_s = 0, best_m = 0, best_err = INFINITY;

	for (int i = 0; i < n; i++) {
		lo = fminf(lo, x[i]);
		hi = fmaxf(hi, x[i]);
	}
	*m_out = -lo;
	if (hi <= lo)
		return 0;
	for (int k = -SEARCH_STEPS; k <= SEARCH_STEPS; k++) {
		float is = ((float)nmax + 0.1f * (float)k) / (hi - lo);
		float sl = 0, sll = 0, sx = 0, slx = 0, s, b, det, err = 0;
		int L[QK];

		for (int i = 0; i < n; i++) {
			L[i] = clampi(lrintf((x[i] - lo) * is), 0, nmax);
			sl += (float)L[i];
			sll += (float)(L[i] * L[i]);
			sx += x[i];
			slx += (float)L[i] * x[i];
		}
		det = (float)n * sll - sl * sl;
		if (det <= 0)
			continue;
		s = ((float)n * slx - sl * sx) / det;
		b = (sll * sx - sl * slx) / det;
		if (b > 0) { /* the form has no positive offset */
			b = 0;
			s = slx / sll;
		}
		if (s <= 0)
			continue;
		for (int i = 0; i < n; i++) {
			float e = s * (float)L[i] + b - x[i];

			err += e * e;
		}
		if (err < best_err) {
			best_err = err;
			best_s = s;
			best_m = -b;
		}
	}
	if (best_err == INFINITY)
		return 0;
	*m_out = best_m;
	return best_s;
}

static void put16(uint8_t *p, uint16_t v)
{
	memcpy(p, &v, sizeof(v));
}

static void pack_q8_0(const float *x, uint8_t *b)
{
	float amax = 0, d;

	for (int i = 0; i < QK; i++)
		amax = fmaxf(amax, fabsf(x[i]));
	put16(b, quant_f32_to_fp16(amax / 127.0f));
	d = quant_fp16_to_f32(quant_rd16(b));
	for (int i = 0; i < QK; i++)
		b[2 + i] = (uint8_t)(int8_t)(d > 0 ? clampi(lrintf(x[i] / d), -127, 127) : 0);
}

static void pack_q4_0(const float *x, uint8_t *b)
{
	int8_t L[QK];
	float d;

	put16(b, quant_f32_to_fp16(sym_fit(x, QK, 8, L)));
	d = quant_fp16_to_f32(quant_rd16(b));
	for (int j = 0; j < QK / 2; j++) {
		int lo = d != 0 ? clampi(lrintf(x[j] / d), -8, 7) + 8 : 8;
		int hi = d != 0 ? clampi(lrintf(x[j + QK / 2] / d), -8, 7) + 8 : 8;

		b[2 + j] = (uint8_t)(lo | hi << 4);
	}
}

/* Q4_K (nmax 15) and Q5_K (31). */
static void pack_k45(const float *x, uint8_t *b, int q5)
{
	int nmax = q5 ? 31 : 15;
	float s[8], m[8], smax = 0, mmax = 0, d, dmin;
	uint8_t sc[8], mn[8], *s12 = b + QK4_SCALES;
	uint8_t *qs = b + (q5 ? QK5_QS : QK4_QS), *qh = b + QK5_QH;

	for (int j = 0; j < 8; j++) {
		s[j] = asym_fit(x + 32 * j, 32, nmax, &m[j]);
		smax = fmaxf(smax, s[j]);
		mmax = fmaxf(mmax, m[j]);
	}
	put16(b, quant_f32_to_fp16(smax / 63.0f));
	put16(b + 2, quant_f32_to_fp16(mmax / 63.0f));
	d = quant_fp16_to_f32(quant_rd16(b));
	dmin = quant_fp16_to_f32(quant_rd16(b + 2));
	for (int j = 0; j < 8; j++) {
		sc[j] = (uint8_t)(d > 0 ? clampi(lrintf(s[j] / d), 0, 63) : 0);
		mn[j] = (uint8_t)(dmin > 0 ? clampi(lrintf(m[j] / dmin), 0, 63) : 0);
	}
	for (int j = 0; j < 4; j++) { /* the inverse of quant_k4_unpack */
		s12[j] = (uint8_t)(sc[j] | (sc[j + 4] >> 4) << 6);
		s12[j + 4] = (uint8_t)(mn[j] | (mn[j + 4] >> 4) << 6);
		s12[j + 8] = (uint8_t)((sc[j + 4] & 0xf) | (mn[j + 4] & 0xf) << 4);
	}
	memset(qs, 0, 128);
	if (q5)
		memset(qh, 0, 32);
	for (int j = 0; j < 8; j++) {
		float ds = d * sc[j], dm = dmin * mn[j];
		int p = j / 2, high = j & 1;

		for (int l = 0; l < 32; l++) {
			int n = ds > 0 ? clampi(lrintf((x[32 * j + l] + dm) / ds), 0, nmax) : 0;

			qs[32 * p + l] |= (uint8_t)((n & 0xf) << (4 * high));
			if (q5)
				qh[l] |= (uint8_t)((n >> 4) << j);
		}
	}
}

static void pack_q6_k(const float *x, uint8_t *b)
{
	float a[QKK / 16], amax = 0, d;
	int8_t L[16], *sc = (int8_t *)(b + QK6_SC);
	uint8_t *ql = b + QK6_QL, *qh = b + QK6_QH;

	for (int g = 0; g < QKK / 16; g++) {
		a[g] = sym_fit(x + 16 * g, 16, 32, L);
		if (fabsf(a[g]) > amax)
			amax = fabsf(a[g]);
	}
	put16(b + QK6_D, quant_f32_to_fp16(amax / 127.0f));
	d = quant_fp16_to_f32(quant_rd16(b + QK6_D));
	for (int g = 0; g < QKK / 16; g++)
		sc[g] = (int8_t)(d > 0 ? clampi(lrintf(a[g] / d), -127, 127) : 0);
	memset(ql, 0, 128);
	memset(qh, 0, 64);
	for (int e = 0; e < QKK; e++) {
		float ds = d * sc[e / 16];
		int n = ds != 0 ? clampi(lrintf(x[e] / ds), -32, 31) + 32 : 32;
		/* element e = 128h + 32k + l (see quant.c) */
		int h = e / 128, k = (e / 32) % 4, l = e % 32;

		ql[64 * h + 32 * (k & 1) + l] |= (uint8_t)((n & 0xf) << (4 * (k >> 1)));
		qh[32 * h + l] |= (uint8_t)((n >> 4) << (2 * k));
	}
}

int quant_quantize_row(uint32_t type, const float *src, void *dst, int64_t n)
{
	int be = quant_block_elems(type);
	uint8_t *o = dst;

	if (!be || n < 0 || n % be)
		return -EINVAL;
	for (int64_t i = 0; i < n; i += be) {
		const float *x = src + i;

		switch (type) {
		case GGML_F32:
			memcpy(o, x, sizeof(float));
			o += 4;
			break;
		case GGML_F16:
			put16(o, quant_f32_to_fp16(*x));
			o += 2;
			break;
		case GGML_BF16:
			put16(o, quant_f32_to_bf16(*x));
			o += 2;
			break;
		case GGML_Q8_0:
			pack_q8_0(x, o);
			o += Q8_0_BYTES;
			break;
		case GGML_Q4_0:
			pack_q4_0(x, o);
			o += Q4_0_BYTES;
			break;
		case GGML_Q4_K:
			pack_k45(x, o, 0);
			o += Q4_K_BYTES;
			break;
		case GGML_Q5_K:
			pack_k45(x, o, 1);
			o += Q5_K_BYTES;
			break;
		case GGML_Q6_K:
			pack_q6_k(x, o);
			o += Q6_K_BYTES;
			break;
		}
	}
	return 0;
}
