/* dit_gemm_small.h: the register tile of dit_kernels.c's small-m product
 * (c = a w^T for a few rows of a), included there once per instruction set
 * (16 lanes with AVX-512F, 8 lanes with AVX2 and FMA). Not a normal header:
 * no include guard, and the includer defines
 *   SM_T          the vector type (__m512, __m256), SM_W its lanes,
 *   SM_NB         output columns per tile,
 *   SM_ZERO(), SM_LOAD(p), SM_BCAST(p) (splat the float at p), SM_STORE(p, v),
 *   SM_FMA(a, b, c)  a * b + c with one rounding, SM_ADD(a, b),
 *   SM(n)         the name n with this instantiation's suffix,
 *   SM_ATTR       the attributes of every function (the target);
 * the end of this file undefines them.
 *
 * A tile is up to 2 SM_W rows of a (the lanes, from a packed transposed
 * copy: at[kk * ldat + i]) times SM_NB rows of w read in place (each w
 * element loaded once, splat across the lanes), over kc values of k. Every
 * output is one chain of fused multiply-adds in k order from zero: the
 * arithmetic of BLIS's packed sgemm kernels over one kc block, whatever the
 * tile's position, added to the previous blocks' sum as BLIS adds it to c,
 * so that dit_kernels.c can match BLIS bit for bit. */

static inline SM_ATTR __attribute__((always_inline)) void
SM(tile_mv)(int kc, int mv, const float *at, int ldat, const float *const *wr,
            const float *const *wn, float *out, int first)
{
	SM_T acc[SM_NB][2];

#pragma GCC unroll 32
	for (int j = 0; j < SM_NB; j++)
		for (int v = 0; v < 2; v++)
			acc[j][v] = SM_ZERO();
	for (int kk = 0; kk < kc; kk++) {
		const float *ak = at + (size_t)kk * (size_t)ldat;

		/* the next tile's rows, a cache line per row every 16 values: the
		 * hardware prefetcher alone starts SM_NB short streams too late */
		if (wn && !(kk & 15))
#pragma GCC unroll 32
			for (int j = 0; j < SM_NB; j++)
				_mm_prefetch((const char *)(wn[j] + kk), _MM_HINT_T0);
		SM_T a0 = SM_LOAD(ak), a1 = mv == 2 ? SM_LOAD(ak + SM_W) : SM_ZERO();

#pragma GCC unroll 32
		for (int j = 0; j < SM_NB; j++) {
			SM_T b = SM_BCAST(wr[j] + kk);

			acc[j][0] = SM_FMA(a0, b, acc[j][0]);
			if (mv == 2)
				acc[j][1] = SM_FMA(a1, b, acc[j][1]);
		}
	}
#pragma GCC unroll 32
	for (int j = 0; j < SM_NB; j++) {
		for (int v = 0; v < mv; v++) {
			float *o = out + (size_t)j * 2 * SM_W + (size_t)v * SM_W;
			SM_STORE(o, first ? acc[j][v] : SM_ADD(SM_LOAD(o), acc[j][v]));
		}
	}
}

/* p[j * 2 SM_W + i] = the sum over kk < kc of at[kk * ldat + i] * wr[j][kk],
 * for rows i < mv SM_W (mv 1 or 2) and columns j < SM_NB; out = p when
 * first, else out += p. wn (or NULL): rows of w to prefetch meanwhile,
 * from the same k. */
static SM_ATTR void SM(tile)(int kc, int mv, const float *at, int ldat, const float *const *wr,
                             const float *const *wn, float *out, int first)
{
	if (mv == 2)
		SM(tile_mv)(kc, 2, at, ldat, wr, wn, out, first);
	else
		SM(tile_mv)(kc, 1, at, ldat, wr, wn, out, first);
}

/* the template's parameters end here, so that it can be included again */
#undef SM_T
#undef SM_W
#undef SM_NB
#undef SM_ZERO
#undef SM_LOAD
#undef SM_BCAST
#undef SM_STORE
#undef SM_FMA
#undef SM_ADD
#undef SM
#undef SM_ATTR
