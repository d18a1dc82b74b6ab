/* dit_kernels.c: the dit runner's kernels on BLIS and the cpu device pool.
 * See dit_kernels.h for the determinism argument. */
#include "dit_kernels.h"

#include <blis.h>
#include <errno.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "device.h"
#include "log.h"
#include "util.h"

/* --- element-wise kernels: dit_vec.h, once per instruction set --- */

struct vec_ops {
	const char *name;
	void (*map_silu)(float *x, const float *b, size_t n);
	void (*map_gelu)(float *x, const float *b, size_t n);
	void (*vexp)(float *y, const float *x, size_t n);
	void (*add_row)(float *c, const float *b, int n);
	void (*gated_row)(float *x, const float *g, const float *c, const float *b, int n);
	float (*exp_row)(float *x, int n);
	void (*ln_row)(const float *x, float *y, int d, const float *shift, const float *scale);
};

typedef float v4sf __attribute__((vector_size(16)));
typedef int32_t v4si __attribute__((vector_size(16)));

#define VEC_T  v4sf
#define VEC_I  v4si
#define VEC_W  4
#define VEC(n) n##_sse
#define VEC_ATTR
#define VEC_NAME "sse2"
#include "dit_vec.h"
#undef VEC_T
#undef VEC_I
#undef VEC_W
#undef VEC
#undef VEC_ATTR
#undef VEC_NAME

#if defined(__x86_64__)
typedef float v8sf __attribute__((vector_size(32)));
typedef int32_t v8si __attribute__((vector_size(32)));

#define VEC_T    v8sf
#define VEC_I    v8si
#define VEC_W    8
#define VEC(n)   n##_avx2
#define VEC_ATTR __attribute__((target("avx2,fma")))
#define VEC_NAME "avx2+fma"
#include "dit_vec.h"
#undef VEC_T
#undef VEC_I
#undef VEC_W
#undef VEC
#undef VEC_ATTR
#undef VEC_NAME
#endif

/* Chosen once by dit_kernels_init(); every thread uses the same table, so
 * results do not depend on the thread that computed them. */
static const struct vec_ops *vk = &ops_sse;

/* --- the small-m product's register tile: dit_gemm_small.h per instruction set --- */

struct small_kernel {
	const char *name;
	int lanes, nb; /* rows per vector; columns per tile */
	void (*tile)(int kc, int mv, const float *at, int ldat, const float *const *wr,
	             const float *const *wn, float *out, int first);
};

#define SMALL_NB_MAX 12
#define SMALL_M_CAP  256 /* most rows the small-m path takes (its stack buffer) */
_Static_assert(DIT_GEMM_SMALL_M <= SMALL_M_CAP, "the small-m row limit exceeds its buffer");

#if defined(__x86_64__)
#define SM_T            __m512
#define SM_W            16
#define SM_NB           12
#define SM_ZERO()       _mm512_setzero_ps()
#define SM_LOAD(p)      _mm512_loadu_ps(p)
#define SM_BCAST(p)     _mm512_set1_ps(*(p))
#define SM_STORE(p, v)  _mm512_storeu_ps(p, v)
#define SM_FMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define SM_ADD(a, b)    _mm512_add_ps(a, b)
#define SM(n)           n##_avx512
#define SM_ATTR         __attribute__((target("avx512f")))
#include "dit_gemm_small.h"

#define SM_T            __m256
#define SM_W            8
#define SM_NB           6
#define SM_ZERO()       _mm256_setzero_ps()
#define SM_LOAD(p)      _mm256_loadu_ps(p)
#define SM_BCAST(p)     _mm256_broadcast_ss(p)
#define SM_STORE(p, v)  _mm256_storeu_ps(p, v)
#define SM_FMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#define SM_ADD(a, b)    _mm256_add_ps(a, b)
#define SM(n)           n##_avx2
#define SM_ATTR         __attribute__((target("avx2,fma")))
#include "dit_gemm_small.h"

static const struct small_kernel sk_avx512 = {"avx512", 16, 12, tile_avx512};
static const struct small_kernel sk_avx2 = {"avx2+fma", 8, 6, tile_avx2};
#endif

/* Chosen once by dit_kernels_init() when it reproduces BLIS's bits, else
 * NULL (every product on BLIS). */
static const struct small_kernel *sk;
static int sk_rows = DIT_GEMM_SMALL_M;
static int sk_kc, sk_kc_max; /* BLIS's kc blocking of float products */
static char sk_why[160];

void dit_vsilu(float *x, size_t n)
{
	vk->map_silu(x, NULL, n);
}

void dit_vgelu(float *x, size_t n)
{
	vk->map_gelu(x, NULL, n);
}

void dit_vexp(float *y, const float *x, size_t n)
{
	vk->vexp(y, x, n);
}

void dit_softmax_rows(float *x, int rows, int n, int ld)
{
	for (int r = 0; r < rows; r++) {
		float *row = x + (size_t)r * (size_t)ld;
		float inv = 1.0f / vk->exp_row(row, n);

		for (int j = 0; j < n; j++)
			row[j] *= inv;
	}
}

/* --- BLIS --- */

static pthread_once_t blis_once = PTHREAD_ONCE_INIT;
static char blis_arch[32];
static int blis_forced;

static void small_setup(void);

static int cpu_has_avx512(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_cpu_init();
	return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
	       __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
#else
	return 0;
#endif
}

static void blis_setup(void)
{
	const char *env = getenv("BLIS_ARCH_TYPE");

	if ((!env || !*env) && cpu_has_avx512()) {
		char id[16];
		snprintf(id, sizeof(id), "%d", (int)BLIS_ARCH_SKX);
		setenv("BLIS_ARCH_TYPE", id, 0);
		blis_forced = 1;
	}
	bli_thread_set_num_threads(1);
	snprintf(blis_arch, sizeof(blis_arch), "%s", bli_arch_string(bli_arch_query_id()));
#if defined(__x86_64__)
	__builtin_cpu_init();
	if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
		vk = &ops_avx2;
#endif
	small_setup();
	log_info("BLIS %s: sgemm kernels %s%s, single-threaded calls; element-wise kernels %s; "
	         "products of <= %d rows %s",
	         bli_info_get_version_str(), blis_arch,
	         blis_forced ? " (set by mediad: AVX-512 CPU)" : " (detected by BLIS)", vk->name,
	         DIT_GEMM_SMALL_M, sk_why);
}

void dit_kernels_init(void)
{
	pthread_once(&blis_once, blis_setup);
}

int dit_kernels_use_avx2(int avx2)
{
	dit_kernels_init();
	if (!avx2) {
		vk = &ops_sse;
		return 0;
	}
#if defined(__x86_64__)
	if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
		vk = &ops_avx2;
		return 0;
	}
#endif
	return -ENOTSUP;
}

const char *dit_kernels_vector_isa(void)
{
	return vk->name;
}

const char *dit_kernels_blis_arch(int *forced)
{
	dit_kernels_init();
	if (forced)
		*forced = blis_forced;
	return blis_arch;
}

static void sgemm_call(trans_t tb, int m, int n, int k, float alpha, const float *a, int lda,
                       const float *b, int ldb, float beta, float *c, int ldc)
{
	rntm_t rntm = BLIS_RNTM_INITIALIZER;

	if (m <= 0 || n <= 0)
		return;
	bli_rntm_set_num_threads(1, &rntm);
	bli_rntm_disable_l3_sup(&rntm);
	bli_sgemm_ex(BLIS_NO_TRANSPOSE, tb, m, n, k, &alpha, (float *)a, lda, 1, (float *)b, ldb, 1,
	             &beta, c, ldc, 1, NULL, &rntm);
}

void dit_sgemm_nt(int m, int n, int k, float alpha, const float *a, int lda, const float *b,
                  int ldb, float beta, float *c, int ldc)
{
	sgemm_call(BLIS_TRANSPOSE, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

void dit_sgemm_nn(int m, int n, int k, float alpha, const float *a, int lda, const float *b,
                  int ldb, float beta, float *c, int ldc)
{
	sgemm_call(BLIS_NO_TRANSPOSE, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

/* --- the pool --- */

int dit_exec_init(struct dit_exec *ex, struct mediad_device *dev)
{
	int n;

	dit_kernels_init();
	ex->dev = dev;
	ex->slots = 1;
	if (!dev)
		return 0;
	n = device_threads(dev);
	if (n < 1)
		return n < 0 ? n : -EINVAL;
	ex->slots = n;
	return 0;
}

struct par_job {
	void (*fn)(void *arg, int item, int slot);
	void *arg;
	int n;
	atomic_int next;
};

static void par_slot(void *p, int slot, int count)
{
	struct par_job *j = p;
	int i;

	while ((i = atomic_fetch_add_explicit(&j->next, 1, memory_order_relaxed)) < j->n)
		j->fn(j->arg, i, slot);
}

void dit_parallel(const struct dit_exec *ex, int n_items, void (*fn)(void *arg, int item, int slot),
                  void *arg)
{
	struct par_job job = {.fn = fn, .arg = arg, .n = n_items};
	int r;

	if (n_items <= 0)
		return;
	atomic_init(&job.next, 0);
	if (!ex->dev) {
		par_slot(&job, 0, 1);
		return;
	}
	r = device_parallel(ex->dev, par_slot, &job, MIN(ex->slots, n_items));
	if (r < 0) {
		/* not a usable device: a programming error; still compute the right answer */
		log_error("dit: device_parallel failed (%s); running inline", strerror(-r));
		par_slot(&job, 0, 1);
	}
}

/* --- products --- */

struct gemm_job {
	const struct dit_gemm *g;
	int tm, tn, nt;
};

static void epilogue(const struct dit_gemm *g, int i0, int i1, int j0, int j1)
{
	int n = j1 - j0;

	for (int i = i0; i < i1; i++) {
		float *c = g->c + (size_t)i * (size_t)g->ldc + j0;

		switch (g->epi) {
		case DIT_EPI_NONE:
			break;
		case DIT_EPI_BIAS:
			if (g->bias)
				vk->add_row(c, g->bias + j0, n);
			break;
		case DIT_EPI_BIAS_GELU:
			vk->map_gelu(c, g->bias ? g->bias + j0 : NULL, (size_t)n);
			break;
		case DIT_EPI_BIAS_SILU:
			vk->map_silu(c, g->bias ? g->bias + j0 : NULL, (size_t)n);
			break;
		case DIT_EPI_GATED:
			vk->gated_row(g->x + (size_t)i * (size_t)g->ldx + j0,
			              g->gate + (size_t)g->row_seg[i] * (size_t)g->ld_gate + j0, c,
			              g->bias ? g->bias + j0 : NULL, n);
			break;
		}
	}
}

static void gemm_tile(void *arg, int item, int slot)
{
	const struct gemm_job *j = arg;
	const struct dit_gemm *g = j->g;
	int i0 = (item / j->nt) * j->tm, j0 = (item % j->nt) * j->tn;
	int i1 = MIN(i0 + j->tm, g->m), j1 = MIN(j0 + j->tn, g->n);

	if (i0 >= i1 || j0 >= j1)
		return;
	dit_sgemm_nt(i1 - i0, j1 - j0, g->k, 1.0f, g->a + (size_t)i0 * (size_t)g->lda, g->lda,
	             g->w + (size_t)j0 * (size_t)g->ldw, g->ldw, 0.0f,
	             g->c + (size_t)i0 * (size_t)g->ldc + j0, g->ldc);
	epilogue(g, i0, i1, j0, j1);
}

static int round_up(int v, int to)
{
	return (v + to - 1) / to * to;
}

/* --- small-m products --- */

/* A product of a few rows (the deep probe's 64x64 image, the conditioning)
 * is bound by reading w, which BLIS packs before every use (w read, written,
 * read again). Here a is packed instead (transposed, rows padded to the
 * vector width: small), and w is read once, in place, a tile of columns at
 * a time, each value splat across the rows. Items are ranges of columns
 * (never of k), and every output is summed as BLIS's packed kernels sum it:
 * over each kc block of k (BLIS's blocking: kc, the last block up to
 * kc_max) one fused multiply-add chain from zero, the blocks added to c in
 * order. So the result is BLIS's, bit for bit, which small_setup() checks
 * before it turns the path on. */

#define SMALL_PACK_K         128 /* k values per packing item */
#define SMALL_ITEMS_PER_SLOT 4

struct small_job {
	const struct dit_gemm *g;
	float *at; /* [k][ldat]: a transposed, rows ldat - m on zero */
	int ldat;
	int cols; /* columns per item, a multiple of the tile's */
};

static int kc_block(int k0, int k)
{
	return k - k0 <= sk_kc_max ? k - k0 : sk_kc;
}

static void small_pack(void *arg, int item, int slot)
{
	const struct small_job *j = arg;
	const struct dit_gemm *g = j->g;
	int k0 = item * SMALL_PACK_K, k1 = MIN(k0 + SMALL_PACK_K, g->k);

	for (int kk = k0; kk < k1; kk++) {
		float *dst = j->at + (size_t)kk * (size_t)j->ldat;
		for (int i = 0; i < g->m; i++)
			dst[i] = g->a[(size_t)i * (size_t)g->lda + (size_t)kk];
		for (int i = g->m; i < j->ldat; i++)
			dst[i] = 0.0f;
	}
}

static void small_item(void *arg, int item, int slot)
{
	const struct small_job *j = arg;
	const struct dit_gemm *g = j->g;
	int nb = sk->nb, rows = 2 * sk->lanes;
	int j0 = item * j->cols, j1 = MIN(j0 + j->cols, g->n);
	/* a tile's sums, [row group][column][row in group] */
	float sum[SMALL_NB_MAX * SMALL_M_CAP] __attribute__((aligned(64)));
	const float *wr[SMALL_NB_MAX], *wn[SMALL_NB_MAX];

	for (int jb = j0; jb < j1; jb += nb) {
		int nv = MIN(nb, j1 - jb), nn = MIN(nb, j1 - jb - nv), kc;
		for (int k0 = 0; k0 < g->k; k0 += kc) {
			kc = kc_block(k0, g->k);
			/* a partial tile repeats its last column; the copies are dropped */
			for (int t = 0; t < nb; t++) {
				wr[t] = g->w + (size_t)(jb + MIN(t, nv - 1)) * (size_t)g->ldw +
				        (size_t)k0;
				if (nn > 0)
					wn[t] =
					    g->w +
					    (size_t)(jb + nv + MIN(t, nn - 1)) * (size_t)g->ldw +
					    (size_t)k0;
			}
			for (int i0 = 0; i0 < g->m; i0 += rows)
				sk->tile(kc, g->m - i0 > sk->lanes ? 2 : 1,
				         j->at + (size_t)k0 * (size_t)j->ldat + (size_t)i0, j->ldat,
				         wr, nn > 0 && !i0 ? wn : NULL,
				         sum + (size_t)i0 * (size_t)nb, !k0);
		}
		for (int i = 0; i < g->m; i++) {
			const float *s = sum + (size_t)(i / rows) * (size_t)(nb * rows) + i % rows;
			float *c = g->c + (size_t)i * (size_t)g->ldc + jb;
			for (int t = 0; t < nv; t++)
				c[t] = s[t * rows];
		}
	}
	epilogue(g, 0, g->m, j0, j1);
}

static void small_gemm(const struct dit_exec *ex, const struct dit_gemm *g)
{
	struct small_job j = {.g = g, .at = g->pack};
	int nb = sk->nb, tiles = (g->n + nb - 1) / nb;
	int items = MIN(tiles, ex->slots > 1 ? SMALL_ITEMS_PER_SLOT * ex->slots : 1);

	j.ldat = round_up(g->m, sk->lanes);
	j.cols = (tiles + items - 1) / items * nb;
	dit_parallel(ex, (g->k + SMALL_PACK_K - 1) / SMALL_PACK_K, small_pack, &j);
	dit_parallel(ex, (g->n + j.cols - 1) / j.cols, small_item, &j);
}

size_t dit_gemm_pack_floats(int m, int k)
{
	return (size_t)round_up(MAX(m, 1), 16) * (size_t)MAX(k, 0);
}

int dit_gemm_small_rows(void)
{
	dit_kernels_init();
	return sk ? sk_rows : 0;
}

int dit_gemm_set_small_rows(int rows)
{
	dit_kernels_init();
	if (!sk)
		return -ENOTSUP;
	sk_rows = MIN(MAX(rows, 0), SMALL_M_CAP);
	return 0;
}

const char *dit_gemm_small_isa(void)
{
	dit_kernels_init();
	return sk ? sk->name : "off";
}

/* 0 when the small-m path gives BLIS's bits on products that cross every
 * case of the kc blocking, with partial tiles of rows and columns. */
static int small_matches_blis(void)
{
	const int ms[] = {1, 3, 17, 33}, n = 2 * SMALL_NB_MAX + 5;
	const int ks[] = {1,
	                  7,
	                  sk_kc - 1,
	                  sk_kc,
	                  sk_kc_max,
	                  sk_kc_max + 1,
	                  2 * sk_kc + 1,
	                  3 * sk_kc + (sk_kc_max - sk_kc)};
	const struct dit_exec inline_ex = {.dev = NULL, .slots = 1};
	int kmax = 3 * sk_kc + sk_kc_max, bad = 0;
	float *a = xmalloc((size_t)33 * (size_t)kmax * sizeof(float));
	float *w = xmalloc((size_t)n * (size_t)kmax * sizeof(float));
	float *c1 = xmalloc((size_t)33 * (size_t)n * sizeof(float));
	float *c2 = xmalloc((size_t)33 * (size_t)n * sizeof(float));
	float *pack = xmalloc(dit_gemm_pack_floats(33, kmax) * sizeof(float));
	uint32_t x = 12345;

	for (size_t i = 0; i < (size_t)33 * (size_t)kmax; i++)
		a[i] = (float)((x = x * 1664525u + 1013904223u) >> 8) * 0x1p-23f - 1.0f;
	for (size_t i = 0; i < (size_t)n * (size_t)kmax; i++)
		w[i] = (float)((x = x * 1664525u + 1013904223u) >> 8) * 0x1p-23f - 1.0f;
	for (size_t mi = 0; mi < ARRAY_SIZE(ms) && !bad; mi++) {
		for (size_t ki = 0; ki < ARRAY_SIZE(ks) && !bad; ki++) {
			int m = ms[mi], k = ks[ki];
			struct dit_gemm g = {.m = m,
			                     .n = n,
			                     .k = k,
			                     .a = a,
			                     .lda = k,
			                     .w = w,
			                     .ldw = k,
			                     .c = c2,
			                     .ldc = n,
			                     .pack = pack};
			if (k < 1)
				continue;
			dit_sgemm_nt(m, n, k, 1.0f, a, k, w, k, 0.0f, c1, n);
			small_gemm(&inline_ex, &g);
			bad = memcmp(c1, c2, (size_t)m * (size_t)n * sizeof(float)) != 0;
		}
	}
	free(a);
	free(w);
	free(c1);
	free(c2);
	free(pack);
	return bad ? -1 : 0;
}

/* The small-m kernel of lanes lanes (16, 8), or NULL when the CPU lacks it. */
static const struct small_kernel *small_kernel_of(int lanes)
{
#if defined(__x86_64__)
	if (lanes == 16 && __builtin_cpu_supports("avx512f"))
		return &sk_avx512;
	if (lanes == 8 && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
		return &sk_avx2;
#endif
	return NULL;
}

/* Use cand when it reproduces BLIS's bits; sk_why says what was chosen. */
static int small_select(const struct small_kernel *cand)
{
	sk = NULL;
	if (!cand) {
		snprintf(sk_why, sizeof(sk_why), "on BLIS (no AVX2+FMA for the small-m path)");
		return -ENOTSUP;
	}
	if (sk_kc < 1 || sk_kc_max < sk_kc) {
		snprintf(sk_why, sizeof(sk_why), "on BLIS (BLIS's kc %d/%d unusable)", sk_kc,
		         sk_kc_max);
		return -ENOTSUP;
	}
	sk = cand;
	if (small_matches_blis() < 0) {
		sk = NULL;
		snprintf(sk_why, sizeof(sk_why),
		         "on BLIS (the %s small-m path does not reproduce BLIS %s's bits: off)",
		         cand->name, blis_arch);
		return -EIO;
	}
	snprintf(sk_why, sizeof(sk_why), "stream their weights (%s, BLIS's kc %d/%d)", sk->name,
	         sk_kc, sk_kc_max);
	return 0;
}

/* Called from blis_setup(), after BLIS's kernel set is chosen. */
static void small_setup(void)
{
	cntx_t *cntx = bli_gks_query_cntx();
	const struct small_kernel *cand = small_kernel_of(16);

	sk_kc = (int)bli_cntx_get_blksz_def_dt(BLIS_FLOAT, BLIS_KC, cntx);
	sk_kc_max = (int)bli_cntx_get_blksz_max_dt(BLIS_FLOAT, BLIS_KC, cntx);
	small_select(cand ? cand : small_kernel_of(8));
}

int dit_gemm_use_small_isa(int lanes)
{
	dit_kernels_init();
	if (!lanes) {
		sk = NULL;
		snprintf(sk_why, sizeof(sk_why), "on BLIS (small-m path turned off)");
		return 0;
	}
	return small_select(small_kernel_of(lanes));
}

/* Tiles: TILES_PER_SLOT per pool thread (more lets an idle thread help a
 * slowed one), shaped to repeat the least packing: BLIS packs a tile's rows
 * of a and its columns of w, so the split minimises mt / m + nt / n. Any
 * tiling gives the same bits (see the header); this only chooses speed. */
#define TILES_PER_SLOT 2

void dit_gemm(const struct dit_exec *ex, const struct dit_gemm *g)
{
	struct gemm_job j = {.g = g};
	int target = ex->slots > 1 ? TILES_PER_SLOT * ex->slots : 1;
	int best_mt = 1;
	double best = 1e300;

	if (g->m <= 0 || g->n <= 0)
		return;
	if (sk && g->m <= sk_rows && g->k > 0 && g->pack &&
	    g->pack_len >= dit_gemm_pack_floats(g->m, g->k)) {
		small_gemm(ex, g);
		return;
	}
	for (int mt = 1; mt <= target; mt++) {
		int nt = (target + mt - 1) / mt;
		double cost = (double)mt / g->m + (double)nt / g->n;
		if (mt > MAX(1, g->m / 16) || nt > MAX(1, g->n / 16))
			continue;
		if (cost < best) {
			best = cost;
			best_mt = mt;
		}
	}
	j.tm = round_up((g->m + best_mt - 1) / best_mt, 16);
	j.nt = (target + best_mt - 1) / best_mt;
	j.tn = round_up((g->n + j.nt - 1) / j.nt, 16);
	j.nt = (g->n + j.tn - 1) / j.tn;
	dit_parallel(ex, ((g->m + j.tm - 1) / j.tm) * j.nt, gemm_tile, &j);
}

/* --- layer norm with modulation --- */

#define LN_ROWS 16

struct ln_job {
	const float *x;
	int ldx;
	float *y;
	int ldy, rows, dim;
	const int *row_seg;
	const float *shift, *scale;
	int ld_mod;
};

static void ln_item(void *arg, int item, int slot)
{
	const struct ln_job *j = arg;
	int r1 = MIN((item + 1) * LN_ROWS, j->rows);

	for (int r = item * LN_ROWS; r < r1; r++) {
		size_t mo = (size_t)j->row_seg[r] * (size_t)j->ld_mod;
		vk->ln_row(j->x + (size_t)r * (size_t)j->ldx, j->y + (size_t)r * (size_t)j->ldy,
		           j->dim, j->shift + mo, j->scale + mo);
	}
}

void dit_layernorm_modulate(const struct dit_exec *ex, const float *x, int ldx, float *y, int ldy,
                            int rows, int dim, const int *row_seg, const float *shift,
                            const float *scale, int ld_mod)
{
	struct ln_job j = {x, ldx, y, ldy, rows, dim, row_seg, shift, scale, ld_mod};

	dit_parallel(ex, (rows + LN_ROWS - 1) / LN_ROWS, ln_item, &j);
}

/* --- attention --- */

struct attn_job {
	const float *qkv;
	int dim, heads;
	float *out;
	const struct dit_attn_seg *segs;
	int n_segs;
	float *scratch;
	size_t per_slot;
};

static void attn_item(void *arg, int item, int slot)
{
	const struct attn_job *j = arg;
	int hd = j->dim / j->heads, ld = 3 * j->dim;
	const struct dit_attn_seg *s = NULL;
	int qb, head, q0, qn;
	const float *base;
	float *scores = j->scratch + (size_t)slot * j->per_slot, *out;
	float inv[DIT_ATTN_QBLOCK];

	for (int i = 0; i < j->n_segs; i++) {
		int count = j->heads * ((j->segs[i].n + DIT_ATTN_QBLOCK - 1) / DIT_ATTN_QBLOCK);
		if (item < count) {
			s = &j->segs[i];
			break;
		}
		item -= count;
	}
	if (!s)
		return;
	qb = (s->n + DIT_ATTN_QBLOCK - 1) / DIT_ATTN_QBLOCK;
	head = item / qb;
	q0 = (item % qb) * DIT_ATTN_QBLOCK;
	qn = MIN(DIT_ATTN_QBLOCK, s->n - q0);
	base = j->qkv + (size_t)s->row0 * (size_t)ld + (size_t)head * (size_t)hd;
	out = j->out + (size_t)(s->row0 + q0) * (size_t)j->dim + (size_t)head * (size_t)hd;
	/* scores = q k^T / sqrt(hd); e = exp(scores - row max); out = (e v) / row sum:
	 * the softmax's division is done on the hd outputs, not the n scores */
	dit_sgemm_nt(qn, s->n, hd, 1.0f / sqrtf((float)hd), base + (size_t)q0 * (size_t)ld, ld,
	             base + j->dim, ld, 0.0f, scores, s->n);
	for (int r = 0; r < qn; r++)
		inv[r] = 1.0f / vk->exp_row(scores + (size_t)r * (size_t)s->n, s->n);
	dit_sgemm_nn(qn, hd, s->n, 1.0f, scores, s->n, base + 2 * j->dim, ld, 0.0f, out, j->dim);
	for (int r = 0; r < qn; r++)
		for (int c = 0; c < hd; c++)
			out[(size_t)r * (size_t)j->dim + (size_t)c] *= inv[r];
}

void dit_attention(const struct dit_exec *ex, const float *qkv, int dim, int heads, float *out,
                   const struct dit_attn_seg *segs, int n_segs, float *scratch,
                   size_t scratch_per_slot)
{
	struct attn_job j = {qkv, dim, heads, out, segs, n_segs, scratch, scratch_per_slot};
	int items = 0;

	for (int i = 0; i < n_segs; i++)
		items += heads * ((segs[i].n + DIT_ATTN_QBLOCK - 1) / DIT_ATTN_QBLOCK);
	dit_parallel(ex, items, attn_item, &j);
}

/* --- convolution --- */

struct conv_job {
	const float *in;
	int h, w, cin, up;
	const float *wt, *bias;
	int cout, silu;
	float *out;
	float *scratch;
	size_t per_slot;
};

/* Columns of output pixels p0..p1-1, in the weight's (ci, ky, kx) order. */
static void im2col(const struct conv_job *j, int p0, int p1, float *col)
{
	int W = j->w * j->up, H = j->h * j->up, k9 = 9 * j->cin;

	for (int p = p0; p < p1; p++) {
		float *row = col + (size_t)(p - p0) * (size_t)k9;
		int oy = p / W, ox = p % W;

		for (int ky = 0; ky < 3; ky++) {
			int iy = oy + ky - 1;
			for (int kx = 0; kx < 3; kx++) {
				int ix = ox + kx - 1, tap = ky * 3 + kx;
				const float *src;
				if (iy < 0 || iy >= H || ix < 0 || ix >= W) {
					for (int c = 0; c < j->cin; c++)
						row[c * 9 + tap] = 0.0f;
					continue;
				}
				src = j->in +
				      ((size_t)(iy / j->up) * (size_t)j->w + (size_t)(ix / j->up)) *
				          (size_t)j->cin;
				for (int c = 0; c < j->cin; c++)
					row[c * 9 + tap] = src[c];
			}
		}
	}
}

static void conv_item(void *arg, int item, int slot)
{
	const struct conv_job *j = arg;
	int total = j->h * j->up * j->w * j->up;
	int p0 = item * DIT_CONV_TILE, p1 = MIN(p0 + DIT_CONV_TILE, total);
	float *col = j->scratch + (size_t)slot * j->per_slot;
	float *out = j->out + (size_t)p0 * (size_t)j->cout;

	im2col(j, p0, p1, col);
	dit_sgemm_nt(p1 - p0, j->cout, 9 * j->cin, 1.0f, col, 9 * j->cin, j->wt, 9 * j->cin, 0.0f,
	             out, j->cout);
	for (int p = 0; p < p1 - p0; p++) {
		float *o = out + (size_t)p * (size_t)j->cout;
		if (j->silu)
			vk->map_silu(o, j->bias, (size_t)j->cout);
		else
			vk->add_row(o, j->bias, j->cout);
	}
}

void dit_conv3x3(const struct dit_exec *ex, const float *in, int h, int w, int cin, int up,
                 const float *wt, const float *bias, int cout, int silu, float *out, float *scratch,
                 size_t scratch_per_slot)
{
	struct conv_job j = {in,   h,    w,    cin, up,      wt,
	                     bias, cout, silu, out, scratch, scratch_per_slot};
	int total = h * up * w * up;

	dit_parallel(ex, (total + DIT_CONV_TILE - 1) / DIT_CONV_TILE, conv_item, &j);
}
