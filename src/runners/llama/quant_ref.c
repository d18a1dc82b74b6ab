/* quant_ref.c: the scalar reference of the products (quant_matmul_ref and
 * CPUs without AVX2). The same computation as the vectorised path, term for
 * term: integer sums per block (per sub-block scaled by its integer scale),
 * scaled into float once per block; only the order of the float additions
 * differs. Layouts: quant.c. */
#include <stdint.h>

#include "runners/llama/quant_impl.h"

static float dot_f32(const uint8_t *w, uint32_t type, const float *x, int64_t n)
{
	float acc = 0;

	for (int64_t i = 0; i < n; i++) {
		float v;

		if (type == GGML_F32)
			memcpy(&v, w + 4 * i, sizeof(v));
		else if (type == GGML_F16)
			v = quant_h2f(quant_rd16(w + 2 * i));
		else
			v = quant_b2f(quant_rd16(w + 2 * i));
		acc += v * x[i];
	}
	return acc;
}

static float dot_q8_0(const uint8_t *w, const struct quant_a8 *a, int64_t nb)
{
	float acc = 0;

	for (int64_t b = 0; b < nb; b++, w += Q8_0_BYTES, a++) {
		int32_t s = 0;

		for (int i = 0; i < QK; i++)
			s += (int8_t)w[2 + i] * a->qs[i];
		acc += quant_h2f(quant_rd16(w)) * a->d * (float)s;
	}
	return acc;
}

static float dot_q4_0(const uint8_t *w, const struct quant_a8 *a, int64_t nb)
{
	float acc = 0;

	for (int64_t b = 0; b < nb; b++, w += Q4_0_BYTES, a++) {
		int32_t s = 0;

		for (int j = 0; j < QK / 2; j++)
			s += (w[2 + j] & 0xf) * a->qs[j] + (w[2 + j] >> 4) * a->qs[j + QK / 2];
		s -= 8 * a->s; /* the nibbles' offset, through the block's sum */
		acc += quant_h2f(quant_rd16(w)) * a->d * (float)s;
	}
	return acc;
}

/* Q4_K and Q5_K: sum_j d*sc_j*(n . a)_j - dmin*mn_j*(sum of a)_j. */
static float dot_k45(const uint8_t *w, int q5, const struct quant_a8k *a, int64_t nb)
{
	float acc = 0;
	size_t bb = q5 ? Q5_K_BYTES : Q4_K_BYTES;

	for (int64_t b = 0; b < nb; b++, w += bb, a++) {
		const uint8_t *qs = w + (q5 ? QK5_QS : QK4_QS), *qh = w + QK5_QH;
		uint8_t sc[8], mn[8];
		int32_t s = 0, m = 0;

		quant_k4_unpack(w + QK4_SCALES, sc, mn);
		for (int p = 0; p < 4; p++) {
			int32_t s0 = 0, s1 = 0;

			for (int l = 0; l < 32; l++) {
				int lo = qs[32 * p + l] & 0xf, hi = qs[32 * p + l] >> 4;

				if (q5) {
					lo |= ((qh[l] >> (2 * p)) & 1) << 4;
					hi |= ((qh[l] >> (2 * p + 1)) & 1) << 4;
				}
				s0 += lo * a->qs[64 * p + l];
				s1 += hi * a->qs[64 * p + 32 + l];
			}
			s += sc[2 * p] * s0 + sc[2 * p + 1] * s1;
		}
		for (int j = 0; j < 8; j++)
			m += mn[j] * (a->bsums[2 * j] + a->bsums[2 * j + 1]);
		acc += quant_h2f(quant_rd16(w)) * a->d * (float)s -
		       quant_h2f(quant_rd16(w + 2)) * a->d * (float)m;
	}
	return acc;
}

static float dot_q6_k(const uint8_t *w, const struct quant_a8k *a, int64_t nb)
{
	float acc = 0;

	for (int64_t b = 0; b < nb; b++, w += Q6_K_BYTES, a++) {
		const int8_t *sc = (const int8_t *)(w + QK6_SC);
		int32_t g16[QKK / 16] = {0}, s = 0;

		for (int h = 0; h < 2; h++) {
			const uint8_t *ql = w + QK6_QL + 64 * h, *qh = w + QK6_QH + 32 * h;

			for (int l = 0; l < 32; l++) {
				int n[4] = {
				    (ql[l] & 0xf) | ((qh[l] & 3) << 4),
				    (ql[l + 32] & 0xf) | (((qh[l] >> 2) & 3) << 4),
				    (ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4),
				    (ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4),
				};

				for (int k = 0; k < 4; k++) {
					int e = 128 * h + 32 * k + l;

					g16[e / 16] += n[k] * a->qs[e];
				}
			}
		}
		/* n - 32: the offset through the sums of 16 */
		for (int g = 0; g < QKK / 16; g++)
			s += sc[g] * (g16[g] - 32 * a->bsums[g]);
		acc += quant_h2f(quant_rd16(w + QK6_D)) * a->d * (float)s;
	}
	return acc;
}

void quant_rows_ref(const struct quant_job *j, int64_t r0, int64_t r1)
{
	for (int64_t r = r0; r < r1; r++) {
		const uint8_t *w = j->w + (size_t)r * j->row_bytes;

		for (int t = 0; t < j->n_tok; t++) {
			const void *at = j->act ? quant_job_act(j, t) : NULL;
			float v = 0;

			switch (j->type) {
			case GGML_F32:
			case GGML_F16:
			case GGML_BF16:
				v = dot_f32(w, j->type, j->x + (size_t)t * (size_t)j->cols,
				            j->cols);
				break;
			case GGML_Q8_0:
				v = dot_q8_0(w, at, j->nb);
				break;
			case GGML_Q4_0:
				v = dot_q4_0(w, at, j->nb);
				break;
			case GGML_Q4_K:
				v = dot_k45(w, 0, at, j->nb);
				break;
			case GGML_Q5_K:
				v = dot_k45(w, 1, at, j->nb);
				break;
			case GGML_Q6_K:
				v = dot_q6_k(w, at, j->nb);
				break;
			}
			j->Y[(size_t)t * (size_t)j->ldy + (size_t)r] = v;
		}
	}
}
