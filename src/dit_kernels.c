/* dit_kernels.c: the dit runner's kernels on BLIS and the cpu device pool.
 * See dit_kernels.h for the determinism argument. */
#include "dit_kernels.h"

#include <blis.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "device.h"
#include "devices/cpu.h"
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
	log_info("BLIS %s: sgemm kernels %s%s, single-threaded calls; element-wise kernels %s",
	         bli_info_get_version_str(), blis_arch,
	         blis_forced ? " (set by mediad: AVX-512 CPU)" : " (detected by BLIS)", vk->name);
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

int dit_exec_init(struct dit_exec *ex, struct device *dev)
{
	int n;

	dit_kernels_init();
	ex->dev = dev;
	ex->slots = 1;
	if (!dev)
		return 0;
	n = cpu_device_threads(dev);
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
	r = cpu_device_parallel(ex->dev, par_slot, &job, MIN(ex->slots, n_items));
	if (r < 0) {
		/* not a usable device: a programming error; still compute the right answer */
		log_error("dit: cpu_device_parallel failed (%s); running inline", strerror(-r));
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
