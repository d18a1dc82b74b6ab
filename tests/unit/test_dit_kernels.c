/* test_dit_kernels.c: unit tests of the dit runner's kernels (src/runners/dit/dit_kernels.c)
 * against plain double-precision reference implementations.
 *
 * Tolerances (float32 kernels against double references):
 *   exp: relative error <= 4e-7 on [-87, 88] (a few ulp);
 *   silu, gelu: absolute error <= 1e-6 * (1 + |x|);
 *   softmax: absolute error <= 1e-6 per probability;
 *   products (gemm with its epilogues, attention, conv): absolute error
 *   <= 1e-5 * (1 + sum of |terms|) of each output, the scale of float32
 *   rounding over a sum;
 *   layer norm: absolute error <= 1e-5 * (1 + |y|).
 * Bitwise: every product gives identical bits on 1, 2 and 3 pool threads
 * and against one untiled BLIS call (the determinism the sampler relies on),
 * whether it runs on BLIS or on the small-m path (its own kernel, checked
 * with the same tolerance against the same reference, on every shape and
 * epilogue and with both its 16- and 8-lane kernels when the CPU has them).
 * Everything runs on each instruction set of the element-wise kernels the
 * CPU has (the SSE2 baseline, and AVX2+FMA).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "device.h"
#include "runners/dit/dit_kernels.h"
#include "log.h"
#include "util.h"

/* --- helpers --- */

static uint64_t rng_state = 88172645463325252ull;

static float frand(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (float)((double)(rng_state >> 11) * 0x1p-53 * 2.0 - 1.0);
}

static float *rand_vec(size_t n, float scale)
{
	float *v = xmalloc(n * sizeof(float));

	for (size_t i = 0; i < n; i++)
		v[i] = frand() * scale;
	return v;
}

static void open_dev(struct mediad_device *dev, int threads)
{
	char err[256] = "";

	memset(dev, 0, sizeof(*dev));
	dev->ops = &device_cpu_ops;
	snprintf(dev->ids, sizeof(dev->ids), "t%d", threads);
	dev->threads = threads;
	if (dev->ops->open(dev, err, sizeof(err)))
		fail_msg("open cpu device: %s", err);
}

static double gelu_ref(double x)
{
	return 0.5 * x * (1.0 + tanh(sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
}

static double silu_ref(double x)
{
	return x / (1.0 + exp(-x));
}

/* --- element-wise --- */

static void test_exp(void **state)
{
	size_t n = 0;
	float *x = xmalloc(200000 * sizeof(float)), *y = xmalloc(200000 * sizeof(float));
	double worst = 0;

	for (double v = -87.0; v <= 88.0; v += 0.00093)
		x[n++] = (float)v;
	x[n++] = 0.0f;
	x[n++] = -0.0f;
	dit_vexp(y, x, n);
	for (size_t i = 0; i < n; i++) {
		double ref = exp((double)x[i]);
		double rel = fabs(y[i] - ref) / ref;
		if (rel > worst)
			worst = rel;
	}
	if (worst > 4e-7)
		fail_msg("exp: worst relative error %g", worst);
	/* clamped outside the range, never inf or nan */
	x[0] = -1000.0f;
	x[1] = 1000.0f;
	x[2] = -INFINITY;
	dit_vexp(y, x, 3);
	assert_true(y[0] > 0 && y[0] < 1e-37f);
	assert_true(isfinite(y[1]) && y[1] > 1e38f);
	assert_true(y[2] >= 0 && y[2] < 1e-37f);
	free(x);
	free(y);
}

static void test_silu_gelu(void **state)
{
	/* lengths with and without a vector tail */
	static const size_t lens[] = {1, 7, 8, 9, 1001};

	for (size_t l = 0; l < ARRAY_SIZE(lens); l++) {
		size_t n = lens[l];
		float *x = rand_vec(n, 12.0f), *s = xmalloc(n * sizeof(float));
		float *g = xmalloc(n * sizeof(float));

		memcpy(s, x, n * sizeof(float));
		memcpy(g, x, n * sizeof(float));
		dit_vsilu(s, n);
		dit_vgelu(g, n);
		for (size_t i = 0; i < n; i++) {
			double tol = 1e-6 * (1.0 + fabs(x[i]));
			if (fabs(s[i] - silu_ref(x[i])) > tol)
				fail_msg("silu(%g) = %g, want %g", x[i], s[i], silu_ref(x[i]));
			if (fabs(g[i] - gelu_ref(x[i])) > tol)
				fail_msg("gelu(%g) = %g, want %g", x[i], g[i], gelu_ref(x[i]));
		}
		free(x);
		free(s);
		free(g);
	}
}

static void test_softmax(void **state)
{
	static const int lens[] = {1, 7, 8, 9, 100, 1000};

	for (size_t l = 0; l < ARRAY_SIZE(lens); l++) {
		int n = lens[l], ld = n + 3, rows = 3;
		float *x = rand_vec((size_t)rows * (size_t)ld, 30.0f);
		double *ref = xmalloc((size_t)n * sizeof(double));

		for (int r = 0; r < rows; r++) {
			float *row = x + (size_t)r * (size_t)ld;
			double mx = -INFINITY, sum = 0, got = 0;
			for (int i = 0; i < n; i++)
				mx = fmax(mx, row[i]);
			for (int i = 0; i < n; i++)
				sum += ref[i] = exp(row[i] - mx);
			dit_softmax_rows(row, 1, n, ld);
			for (int i = 0; i < n; i++) {
				if (fabs(row[i] - ref[i] / sum) > 1e-6)
					fail_msg("softmax n=%d [%d] %g want %g", n, i, row[i],
					         ref[i] / sum);
				got += row[i];
			}
			assert_true(fabs(got - 1.0) < 1e-5);
		}
		free(x);
		free(ref);
	}
}

/* --- pool --- */

struct seen {
	atomic_int *hits;
	atomic_int bad_slot;
	int slots;
};

static void mark(void *arg, int item, int slot)
{
	struct seen *s = arg;

	atomic_fetch_add(&s->hits[item], 1);
	if (slot < 0 || slot >= s->slots)
		atomic_fetch_add(&s->bad_slot, 1);
}

static void test_parallel_each_item_once(void **state)
{
	for (int threads = 1; threads <= 3; threads++) {
		struct mediad_device dev;
		struct dit_exec ex;
		struct seen s = {.hits = xcalloc(1000, sizeof(atomic_int))};

		open_dev(&dev, threads);
		assert_int_equal(dit_exec_init(&ex, &dev), 0);
		assert_int_equal(ex.slots, threads);
		s.slots = ex.slots;
		dit_parallel(&ex, 1000, mark, &s);
		dit_parallel(&ex, 0, mark, &s);
		for (int i = 0; i < 1000; i++)
			assert_int_equal(atomic_load(&s.hits[i]), 1);
		assert_int_equal(atomic_load(&s.bad_slot), 0);
		free(s.hits);
		dev.ops->close(&dev);
	}
}

/* --- products --- */

/* c = a w^T + b with the epilogue, in double. */
static double gemm_ref(const float *a, const float *w, const float *bias, int k, int i, int j,
                       int lda, double *mag)
{
	double s = 0;

	*mag = 0;
	for (int p = 0; p < k; p++) {
		s += (double)a[(size_t)i * lda + p] * w[(size_t)j * k + p];
		*mag += fabs((double)a[(size_t)i * lda + p] * w[(size_t)j * k + p]);
	}
	if (bias) {
		s += bias[j];
		*mag += fabs(bias[j]);
	}
	return s;
}

/* small: give the product the small-m path's scratch, and check that the
 * path took it (it packs a there; BLIS leaves it alone). */
static void check_gemm(int m, int n, int k, enum dit_epilogue epi, int small)
{
	size_t pack_len = small ? dit_gemm_pack_floats(m, k) : 0;
	float *pack = small ? xmalloc(pack_len * sizeof(float)) : NULL;
	float *a = rand_vec((size_t)m * k, 1.0f), *w = rand_vec((size_t)n * k, 1.0f);
	float *bias = rand_vec((size_t)n, 1.0f), *gate = rand_vec(2 * (size_t)n, 1.0f);
	float *x0 = rand_vec((size_t)m * n, 1.0f);
	float *first_c = NULL, *first_x = NULL;
	int *row_seg = xmalloc((size_t)m * sizeof(int));

	for (int i = 0; i < m; i++)
		row_seg[i] = i < m / 3 ? 0 : 1;
	for (int threads = 1; threads <= 3; threads++) {
		struct mediad_device dev;
		struct dit_exec ex;
		float *c = xcalloc((size_t)m * n, sizeof(float)), *x = xmalloc((size_t)m * n * 4);
		struct dit_gemm g = {.m = m,
		                     .n = n,
		                     .k = k,
		                     .a = a,
		                     .lda = k,
		                     .w = w,
		                     .ldw = k,
		                     .c = c,
		                     .ldc = n,
		                     .bias = epi == DIT_EPI_NONE ? NULL : bias,
		                     .epi = epi,
		                     .x = x,
		                     .ldx = n,
		                     .gate = gate,
		                     .ld_gate = n,
		                     .row_seg = row_seg,
		                     .pack = pack,
		                     .pack_len = pack_len};

		memcpy(x, x0, (size_t)m * n * sizeof(float));
		for (size_t i = 0; i < pack_len; i++)
			pack[i] = NAN;
		open_dev(&dev, threads);
		dit_exec_init(&ex, &dev);
		dit_gemm(&ex, &g);
		dev.ops->close(&dev);
		if (small && isnan(pack[0]))
			fail_msg("gemm %dx%dx%d: the small-m path did not run", m, n, k);
		for (int i = 0; i < m; i++) {
			for (int j = 0; j < n; j++) {
				double mag, ref = gemm_ref(a, w, g.bias, k, i, j, k, &mag);
				double got = c[(size_t)i * n + j];
				double tol = 1e-5 * (1.0 + mag);
				switch (epi) {
				case DIT_EPI_BIAS_GELU:
					ref = gelu_ref(ref);
					break;
				case DIT_EPI_BIAS_SILU:
					ref = silu_ref(ref);
					break;
				case DIT_EPI_GATED:
					ref = x0[(size_t)i * n + j] +
					      gate[(size_t)row_seg[i] * n + j] * ref;
					got = x[(size_t)i * n + j];
					break;
				default:
					break;
				}
				if (fabs(got - ref) > tol)
					fail_msg("gemm %dx%dx%d epi %d [%d,%d]: %.9g want %.9g", m,
					         n, k, (int)epi, i, j, got, ref);
			}
		}
		if (!first_c) {
			first_c = c;
			first_x = x;
			continue;
		}
		if (memcmp(c, first_c, (size_t)m * n * sizeof(float)) ||
		    memcmp(x, first_x, (size_t)m * n * sizeof(float)))
			fail_msg("gemm %dx%dx%d%s: %d threads differ from 1 thread", m, n, k,
			         small ? " (small-m)" : "", threads);
		free(c);
		free(x);
	}
	/* one untiled call gives the same bits as the tiled ones */
	if (epi == DIT_EPI_NONE) {
		float *c1 = xcalloc((size_t)m * n, sizeof(float));
		dit_sgemm_nt(m, n, k, 1.0f, a, k, w, k, 0.0f, c1, n);
		assert_memory_equal(c1, first_c, (size_t)m * n * sizeof(float));
		free(c1);
	}
	free(first_c);
	free(first_x);
	free(a);
	free(w);
	free(bias);
	free(gate);
	free(x0);
	free(row_seg);
	free(pack);
}

static void test_gemm(void **state)
{
	static const int shapes[][3] = {
	    {1, 1, 1}, {3, 17, 5}, {17, 33, 65}, {128, 384, 64}, {300, 100, 513}, {40, 700, 96},
	};

	for (size_t s = 0; s < ARRAY_SIZE(shapes); s++)
		for (int e = DIT_EPI_NONE; e <= DIT_EPI_GATED; e++)
			check_gemm(shapes[s][0], shapes[s][1], shapes[s][2], (enum dit_epilogue)e,
			           0);
}

/* The small-m path, on each kernel the CPU has: against the reference,
 * bitwise on 1, 2 and 3 threads and against one untiled BLIS call; shapes
 * with one row, odd rows, columns and k, k across BLIS's kc blocks (384,
 * up to 480, on its skx kernels), a tile row group and a half one. */
static void test_gemm_small(void **state)
{
	static const int shapes[][3] = {
	    {1, 1, 1},      {1, 37, 513},  {2, 29, 768},  {3, 17, 5},
	    {16, 12, 384},  {17, 33, 65},  {31, 25, 481}, {32, 40, 1000},
	    {33, 13, 1249}, {64, 70, 300}, {100, 7, 97},  {DIT_GEMM_SMALL_M, 24, 96},
	};
	static const int isas[] = {16, 8};
	int rows = dit_gemm_small_rows(), tested = 0;

	if (!rows) {
		/* off: right only where BLIS sums without FMA (or the CPU cannot) */
#if defined(__x86_64__)
		static const char *const fma_archs[] = {"skx", "haswell", "zen", "zen2", "zen3"};
		const char *arch = dit_kernels_blis_arch(NULL);

		for (size_t i = 0; i < ARRAY_SIZE(fma_archs); i++)
			if (!strcmp(arch, fma_archs[i]) && __builtin_cpu_supports("avx2") &&
			    __builtin_cpu_supports("fma"))
				fail_msg("the small-m path is off on BLIS %s", arch);
#endif
		skip();
	}
	for (size_t i = 0; i < ARRAY_SIZE(isas); i++) {
		if (dit_gemm_use_small_isa(isas[i]) < 0)
			continue;
		tested++;
		for (size_t s = 0; s < ARRAY_SIZE(shapes); s++) {
			assert_true(shapes[s][0] <= dit_gemm_small_rows());
			for (int e = DIT_EPI_NONE; e <= DIT_EPI_GATED; e++)
				check_gemm(shapes[s][0], shapes[s][1], shapes[s][2],
				           (enum dit_epilogue)e, 1);
		}
	}
	/* back to the process's choice: the widest kernel */
	assert_int_equal(dit_gemm_use_small_isa(16) == 0 || dit_gemm_use_small_isa(8) == 0, 1);
	assert_true(tested > 0);
	assert_int_equal(dit_gemm_small_rows(), rows);
}

static void test_sgemm_nn(void **state)
{
	int m = 13, n = 9, k = 31;
	float *a = rand_vec((size_t)m * k, 1.0f), *b = rand_vec((size_t)k * n, 1.0f);
	float *c = rand_vec((size_t)m * n, 1.0f), *c0 = xmalloc((size_t)m * n * sizeof(float));

	memcpy(c0, c, (size_t)m * n * sizeof(float));
	dit_sgemm_nn(m, n, k, 0.5f, a, k, b, n, 2.0f, c, n);
	for (int i = 0; i < m; i++) {
		for (int j = 0; j < n; j++) {
			double s = 0, mag = 0;
			for (int p = 0; p < k; p++) {
				s += (double)a[i * k + p] * b[p * n + j];
				mag += fabs((double)a[i * k + p] * b[p * n + j]);
			}
			s = 0.5 * s + 2.0 * c0[i * n + j];
			assert_true(fabs(c[i * n + j] - s) <= 1e-5 * (1 + mag));
		}
	}
	free(a);
	free(b);
	free(c);
	free(c0);
}

static void test_layernorm_modulate(void **state)
{
	int rows = 37, dim = 70, ld = 75;
	float *x = rand_vec((size_t)rows * ld, 3.0f), *y = xcalloc((size_t)rows * ld, 4);
	float *mod = rand_vec(2 * 2 * (size_t)dim, 1.0f);
	int *seg = xmalloc((size_t)rows * sizeof(int));
	struct mediad_device dev;
	struct dit_exec ex;

	for (int r = 0; r < rows; r++) {
		seg[r] = r % 2;
		x[(size_t)r * ld] += 10.0f * (float)r; /* a large mean */
	}
	open_dev(&dev, 2);
	dit_exec_init(&ex, &dev);
	/* segment s: shift at mod + s * 2 dim, scale right after it */
	dit_layernorm_modulate(&ex, x, ld, y, ld, rows, dim, seg, mod, mod + dim, 2 * dim);
	dev.ops->close(&dev);
	for (int r = 0; r < rows; r++) {
		const float *xr = x + (size_t)r * ld, *shift = mod + (size_t)seg[r] * 2 * dim;
		double mean = 0, var = 0;
		for (int i = 0; i < dim; i++)
			mean += xr[i];
		mean /= dim;
		for (int i = 0; i < dim; i++)
			var += (xr[i] - mean) * (xr[i] - mean);
		var /= dim;
		for (int i = 0; i < dim; i++) {
			double ref =
			    (xr[i] - mean) / sqrt(var + 1e-6) * (1.0 + shift[dim + i]) + shift[i];
			double got = y[(size_t)r * ld + i];
			if (fabs(got - ref) > 1e-5 * (1 + fabs(ref)))
				fail_msg("layernorm [%d,%d] %g want %g", r, i, got, ref);
		}
	}
	free(x);
	free(y);
	free(mod);
	free(seg);
}

static void test_attention(void **state)
{
	const int dim = 32, heads = 2, hd = dim / heads;
	const struct dit_attn_seg segs[2] = {{0, 5}, {5, 2 * DIT_ATTN_QBLOCK + 3}};
	int rows = 5 + 2 * DIT_ATTN_QBLOCK + 3, longest = segs[1].n;
	float *qkv = rand_vec((size_t)rows * 3 * dim, 2.0f);
	float *first = NULL;

	for (int threads = 1; threads <= 3; threads++) {
		float *out = xcalloc((size_t)rows * dim, sizeof(float));
		float *scratch = xmalloc((size_t)threads * DIT_ATTN_QBLOCK * longest * 4);
		struct mediad_device dev;
		struct dit_exec ex;

		open_dev(&dev, threads);
		dit_exec_init(&ex, &dev);
		dit_attention(&ex, qkv, dim, heads, out, segs, 2, scratch,
		              (size_t)DIT_ATTN_QBLOCK * longest);
		dev.ops->close(&dev);
		free(scratch);
		if (first) {
			assert_memory_equal(out, first, (size_t)rows * dim * sizeof(float));
			free(out);
			continue;
		}
		first = out;
	}
	for (int s = 0; s < 2; s++) {
		for (int h = 0; h < heads; h++) {
			for (int i = 0; i < segs[s].n; i++) {
				const float *q =
				    qkv + (size_t)(segs[s].row0 + i) * 3 * dim + h * hd;
				double *p = xmalloc((size_t)segs[s].n * sizeof(double)),
				       mx = -1e300;
				double sum = 0;
				for (int j = 0; j < segs[s].n; j++) {
					const float *kk = qkv +
					                  (size_t)(segs[s].row0 + j) * 3 * dim +
					                  dim + h * hd;
					double d = 0;
					for (int e = 0; e < hd; e++)
						d += (double)q[e] * kk[e];
					p[j] = d / sqrt((double)hd);
					mx = fmax(mx, p[j]);
				}
				for (int j = 0; j < segs[s].n; j++)
					sum += p[j] = exp(p[j] - mx);
				for (int e = 0; e < hd; e++) {
					double o = 0, mag = 0, got;
					for (int j = 0; j < segs[s].n; j++) {
						double v =
						    qkv[(size_t)(segs[s].row0 + j) * 3 * dim +
						        2 * dim + h * hd + e];
						o += p[j] / sum * v;
						mag += fabs(p[j] / sum * v);
					}
					got = first[(size_t)(segs[s].row0 + i) * dim + h * hd + e];
					if (fabs(got - o) > 1e-5 * (1 + mag))
						fail_msg("attention seg %d head %d row %d [%d]: %g "
						         "want %g",
						         s, h, i, e, got, o);
				}
				free(p);
			}
		}
	}
	free(first);
	free(qkv);
}

static void check_conv(int h, int w, int cin, int cout, int up, int silu)
{
	int H = h * up, W = w * up;
	float *in = rand_vec((size_t)h * w * cin, 1.0f),
	      *wt = rand_vec((size_t)cout * cin * 9, 1.0f);
	float *bias = rand_vec((size_t)cout, 1.0f), *first = NULL;

	for (int threads = 1; threads <= 3; threads += 2) {
		size_t per = (size_t)DIT_CONV_TILE * 9 * cin;
		float *out = xcalloc((size_t)H * W * cout, sizeof(float));
		float *scratch = xmalloc(per * (size_t)threads * sizeof(float));
		struct mediad_device dev;
		struct dit_exec ex;

		open_dev(&dev, threads);
		dit_exec_init(&ex, &dev);
		dit_conv3x3(&ex, in, h, w, cin, up, wt, bias, cout, silu, out, scratch, per);
		dev.ops->close(&dev);
		free(scratch);
		if (first) {
			assert_memory_equal(out, first, (size_t)H * W * cout * sizeof(float));
			free(out);
			continue;
		}
		first = out;
	}
	for (int oy = 0; oy < H; oy++) {
		for (int ox = 0; ox < W; ox++) {
			for (int co = 0; co < cout; co++) {
				double s = bias[co], mag = fabs(bias[co]), got;
				for (int ci = 0; ci < cin; ci++) {
					for (int ky = 0; ky < 3; ky++) {
						for (int kx = 0; kx < 3; kx++) {
							int iy = oy + ky - 1, ix = ox + kx - 1;
							double t;
							if (iy < 0 || iy >= H || ix < 0 || ix >= W)
								continue;
							t = (double)in[((size_t)(iy / up) * w +
							                ix / up) *
							                   cin +
							               ci] *
							    wt[(((size_t)co * cin + ci) * 3 + ky) *
							           3 +
							       kx];
							s += t;
							mag += fabs(t);
						}
					}
				}
				if (silu)
					s = silu_ref(s);
				got = first[((size_t)oy * W + ox) * cout + co];
				if (fabs(got - s) > 1e-5 * (1 + mag))
					fail_msg("conv %dx%d up %d [%d,%d,%d]: %g want %g", h, w,
					         up, oy, ox, co, got, s);
			}
		}
	}
	free(first);
	free(in);
	free(wt);
	free(bias);
}

static void test_conv3x3(void **state)
{
	check_conv(5, 7, 3, 5, 1, 0);
	check_conv(5, 7, 3, 5, 2, 1);
	check_conv(20, 13, 4, 6, 2, 1); /* several tiles, a partial last one */
	check_conv(1, 1, 2, 3, 2, 0);
}

static int use_baseline(void **state)
{
	dit_kernels_use_avx2(0);
	return strcmp(dit_kernels_vector_isa(), "sse2") != 0;
}

static int use_avx2(void **state)
{
	return dit_kernels_use_avx2(1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_exp),       cmocka_unit_test(test_silu_gelu),
	    cmocka_unit_test(test_softmax),   cmocka_unit_test(test_parallel_each_item_once),
	    cmocka_unit_test(test_gemm),      cmocka_unit_test(test_gemm_small),
	    cmocka_unit_test(test_sgemm_nn),  cmocka_unit_test(test_layernorm_modulate),
	    cmocka_unit_test(test_attention), cmocka_unit_test(test_conv3x3),
	};

	int failed;

	log_init("test", NULL, LOG_WARN);
	dit_kernels_init();
	/* every test on each instruction set of the element-wise kernels */
	failed = cmocka_run_group_tests_name("sse2", tests, use_baseline, NULL);
	if (dit_kernels_use_avx2(1) == 0)
		failed += cmocka_run_group_tests_name("avx2+fma", tests, use_avx2, NULL);
	return failed;
}
