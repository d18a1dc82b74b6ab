/* dit_model.c: the dit runner's transformer, text conditioning and decoder.
 * See dit_model.h for the architecture and docs/dit.md for the tensors. */
#include "dit_model.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "safetensors.h"
#include "util.h"

static const struct dit_arch presets[] = {
    {"tiny", 64, 2, 2, 32, 1024, {16, 16, 8}},
    {"small", 384, 12, 6, 256, 8192, {64, 32, 16}},
    {"base", 768, 12, 12, 512, 16384, {128, 64, 32}},
};

const struct dit_arch *dit_arch_find(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(presets); i++)
		if (!strcmp(presets[i].name, name))
			return &presets[i];
	return NULL;
}

/* --- the tensor table --- */

/* Gains of the synthetic weights: uniform with std gain / sqrt(fan_in).
 * The adaLN projections are small but not zero (a trained adaLN-Zero model
 * starts at zero; synthetic weights must make every block count). */
#define GAIN_LINEAR   1.0f
#define GAIN_ADA      0.5f
#define GAIN_CONV     1.6f
#define GAIN_CONV_OUT 0.4f /* the decoder's output std near 1: not all saturated */
#define BIAS_SCALE    0.02f

struct table {
	struct dit_model *m;
	float ***views;
	size_t cap;
};

static void add_tensor(struct table *tb, float **view, float scale, int ndim, const int64_t *shape,
                       const char *fmt, ...) __attribute__((format(printf, 6, 7)));

static void add_tensor(struct table *tb, float **view, float scale, int ndim, const int64_t *shape,
                       const char *fmt, ...)
{
	struct dit_model *m = tb->m;
	struct dit_tensor *t;
	va_list ap;

	if ((size_t)m->n_tensors == tb->cap) {
		tb->cap = tb->cap ? 2 * tb->cap : 64;
		m->tensors = xrealloc(m->tensors, tb->cap * sizeof(*m->tensors));
		tb->views = xrealloc(tb->views, tb->cap * sizeof(*tb->views));
	}
	t = &m->tensors[m->n_tensors];
	memset(t, 0, sizeof(*t));
	va_start(ap, fmt);
	vsnprintf(t->name, sizeof(t->name), fmt, ap);
	va_end(ap);
	t->ndim = ndim;
	t->numel = 1;
	for (int i = 0; i < ndim; i++) {
		t->shape[i] = shape[i];
		t->numel *= (size_t)shape[i];
	}
	t->init_scale = scale;
	t->off = m->n_params;
	m->n_params += t->numel;
	tb->views[m->n_tensors++] = view;
}

/* A linear layer [out, in] and its bias [out]. */
static void add_linear(struct table *tb, float **w, float **b, int out, int in, float gain,
                       const char *prefix)
{
	int64_t ws[2] = {out, in}, bs[1] = {out};

	add_tensor(tb, w, gain * sqrtf(3.0f / (float)in), 2, ws, "%s.weight", prefix);
	add_tensor(tb, b, BIAS_SCALE, 1, bs, "%s.bias", prefix);
}

static void add_conv(struct table *tb, float **w, float **b, int out, int in, float gain,
                     const char *prefix)
{
	int64_t ws[4] = {out, in, 3, 3}, bs[1] = {out};

	add_tensor(tb, w, gain * sqrtf(3.0f / (float)(in * 9)), 4, ws, "%s.weight", prefix);
	add_tensor(tb, b, BIAS_SCALE, 1, bs, "%s.bias", prefix);
}

static void build_table(struct dit_model *m)
{
	const struct dit_arch *a = &m->arch;
	int h = a->hidden;
	struct table tb = {.m = m};
	char prefix[64];
	int64_t xs[4] = {h, DIT_LATENT_CH, DIT_PATCH, DIT_PATCH}, hs[1] = {h};
	int64_t ys[2] = {a->vocab + 1, a->text_dim};

	add_tensor(&tb, &m->x_w, GAIN_LINEAR * sqrtf(3.0f / DIT_PATCH_DIM), 4, xs,
	           "x_embedder.proj.weight");
	add_tensor(&tb, &m->x_b, BIAS_SCALE, 1, hs, "x_embedder.proj.bias");
	add_linear(&tb, &m->t_w0, &m->t_b0, h, DIT_FREQ_DIM, GAIN_LINEAR, "t_embedder.mlp.0");
	add_linear(&tb, &m->t_w2, &m->t_b2, h, h, GAIN_LINEAR, "t_embedder.mlp.2");
	add_tensor(&tb, &m->y_table, sqrtf(3.0f), 2, ys, "y_embedder.embedding_table.weight");
	add_linear(&tb, &m->y_w0, &m->y_b0, h, a->text_dim, GAIN_LINEAR, "y_embedder.mlp.0");
	add_linear(&tb, &m->y_w2, &m->y_b2, h, h, GAIN_LINEAR, "y_embedder.mlp.2");
	for (int i = 0; i < a->depth; i++) {
		struct dit_block_weights *b = &m->blocks[i];

		snprintf(prefix, sizeof(prefix), "blocks.%d.attn.qkv", i);
		add_linear(&tb, &b->qkv_w, &b->qkv_b, 3 * h, h, GAIN_LINEAR, prefix);
		snprintf(prefix, sizeof(prefix), "blocks.%d.attn.proj", i);
		add_linear(&tb, &b->proj_w, &b->proj_b, h, h, GAIN_LINEAR, prefix);
		snprintf(prefix, sizeof(prefix), "blocks.%d.mlp.fc1", i);
		add_linear(&tb, &b->fc1_w, &b->fc1_b, 4 * h, h, GAIN_LINEAR, prefix);
		snprintf(prefix, sizeof(prefix), "blocks.%d.mlp.fc2", i);
		add_linear(&tb, &b->fc2_w, &b->fc2_b, h, 4 * h, GAIN_LINEAR, prefix);
		snprintf(prefix, sizeof(prefix), "blocks.%d.adaLN_modulation.1", i);
		add_linear(&tb, &b->ada_w, &b->ada_b, 6 * h, h, GAIN_ADA, prefix);
	}
	add_linear(&tb, &m->f_ada_w, &m->f_ada_b, 2 * h, h, GAIN_ADA,
	           "final_layer.adaLN_modulation.1");
	add_linear(&tb, &m->f_w, &m->f_b, DIT_PATCH_DIM, h, GAIN_LINEAR, "final_layer.linear");
	add_conv(&tb, &m->dec_w[0], &m->dec_b[0], m->dec_ch[1], m->dec_ch[0], GAIN_CONV,
	         "decoder.conv_in");
	add_conv(&tb, &m->dec_w[1], &m->dec_b[1], m->dec_ch[2], m->dec_ch[1], GAIN_CONV,
	         "decoder.up.0.conv");
	add_conv(&tb, &m->dec_w[2], &m->dec_b[2], m->dec_ch[3], m->dec_ch[2], GAIN_CONV,
	         "decoder.up.1.conv");
	add_conv(&tb, &m->dec_w[3], &m->dec_b[3], m->dec_ch[4], m->dec_ch[3], GAIN_CONV_OUT,
	         "decoder.conv_out");

	m->arena = xcalloc(m->n_params, sizeof(float));
	for (int i = 0; i < m->n_tensors; i++) {
		m->tensors[i].data = m->arena + m->tensors[i].off;
		*tb.views[i] = m->tensors[i].data;
	}
	free(tb.views);
}

/* pos[g][i] = sin(g w_i), pos[g][q + i] = cos(g w_i), w_i = 10000^(-i / q),
 * q = hidden / 4: one axis of the 2-D embedding (rows use the first half of
 * a token's vector, columns the second). */
static void build_pos(struct dit_model *m)
{
	int half = m->arch.hidden / 2, q = half / 2;

	m->pos = xcalloc((size_t)DIT_MAX_GRID * (size_t)half, sizeof(float));
	for (int g = 0; g < DIT_MAX_GRID; g++) {
		for (int i = 0; i < q; i++) {
			double w = pow(10000.0, -(double)i / q);
			m->pos[g * half + i] = (float)sin(g * w);
			m->pos[g * half + q + i] = (float)cos(g * w);
		}
	}
}

void dit_model_init(struct dit_model *m, const struct dit_arch *arch)
{
	memset(m, 0, sizeof(*m));
	m->arch = *arch;
	m->blocks = xcalloc((size_t)arch->depth, sizeof(*m->blocks));
	m->dec_ch[0] = DIT_LATENT_CH;
	for (int i = 0; i < DIT_DEC_LAYERS - 1; i++)
		m->dec_ch[i + 1] = arch->dec[i];
	m->dec_ch[DIT_DEC_LAYERS] = 3;
	build_table(m);
	build_pos(m);
}

void dit_model_release(struct dit_model *m)
{
	free(m->arena);
	free(m->tensors);
	free(m->blocks);
	free(m->pos);
	memset(m, 0, sizeof(*m));
}

struct dit_tensor *dit_model_tensor(const struct dit_model *m, const char *name)
{
	for (int i = 0; i < m->n_tensors; i++)
		if (!strcmp(m->tensors[i].name, name))
			return &m->tensors[i];
	return NULL;
}

/* --- synthetic weights --- */

static uint64_t splitmix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

#define SYNTH_CHUNK 65536

struct synth_job {
	const struct dit_tensor *t;
	uint64_t seed;
};

static void synth_item(void *arg, int item, int slot)
{
	const struct synth_job *j = arg;
	size_t i0 = (size_t)item * SYNTH_CHUNK, i1 = MIN(i0 + SYNTH_CHUNK, j->t->numel);

	for (size_t i = i0; i < i1; i++) {
		uint64_t z = splitmix64(j->seed + i);
		float u = (float)(z >> 40) * 0x1p-24f; /* [0, 1) */
		j->t->data[i] = (2.0f * u - 1.0f) * j->t->init_scale;
	}
}

void dit_model_synthesize(struct dit_model *m, uint64_t seed, const struct dit_exec *ex)
{
	for (int i = 0; i < m->n_tensors; i++) {
		const struct dit_tensor *t = &m->tensors[i];
		struct synth_job j = {t, seed ^ XXH64(t->name, strlen(t->name), 0)};

		dit_parallel(ex, (int)((t->numel + SYNTH_CHUNK - 1) / SYNTH_CHUNK), synth_item, &j);
	}
}

int dit_model_load(struct dit_model *m, const char *path, int *n_unused, char *err, size_t errlen)
{
	struct safetensors st;
	const char *preset;
	int r;

	r = safetensors_open(&st, path, err, errlen);
	if (r < 0)
		return r;
	for (int i = 0; i < m->n_tensors; i++) {
		const struct dit_tensor *t = &m->tensors[i];
		char msg[400];

		r = safetensors_read_f32(&st, t->name, t->ndim, t->shape, t->data, msg,
		                         sizeof(msg));
		if (r < 0) {
			preset = safetensors_metadata(&st, "preset");
			if (preset && strcmp(preset, m->arch.name))
				snprintf(err, errlen,
				         "%s (the file is of preset %s, DIT_PRESET is %s)", msg,
				         preset, m->arch.name);
			else
				snprintf(err, errlen, "%s", msg);
			safetensors_close(&st);
			return r;
		}
	}
	if (n_unused)
		*n_unused = (int)st.n_tensors - m->n_tensors;
	safetensors_close(&st);
	return 0;
}

/* --- workspace --- */

static float *work_alloc(struct dit_work *w, size_t n)
{
	w->bytes += n * sizeof(float);
	return xcalloc(n, sizeof(float));
}

void dit_work_init(struct dit_work *w, const struct dit_model *m, int max_rows, int max_segs,
                   int slots)
{
	size_t h = (size_t)m->arch.hidden, R = (size_t)max_rows, S = (size_t)max_segs;
	size_t lmax = DIT_MAX_SIDE / DIT_VAE_FACTOR, cmax = 0;
	const int *ch = m->dec_ch;

	memset(w, 0, sizeof(*w));
	w->max_rows = max_rows;
	w->max_segs = max_segs;
	w->slots = slots;
	w->x = work_alloc(w, R * h);
	w->xn = work_alloc(w, R * h);
	w->qkv = work_alloc(w, R * 3 * h);
	w->att = work_alloc(w, R * h);
	w->mlp = work_alloc(w, R * MAX(4 * h, (size_t)DIT_PATCH_DIM));
	w->tfreq = work_alloc(w, S * DIT_FREQ_DIM);
	w->thid = work_alloc(w, S * h);
	w->c = work_alloc(w, S * h);
	w->c_silu = work_alloc(w, S * h);
	w->mod = work_alloc(w, S * 6 * h);
	w->row_seg = xcalloc(R, sizeof(int));
	w->aseg = xcalloc(S, sizeof(*w->aseg));
	w->attn_per_slot = (size_t)DIT_ATTN_QBLOCK * MIN(R, (size_t)DIT_MAX_TOKENS);
	w->attn_scratch = work_alloc(w, w->attn_per_slot * (size_t)slots);
	/* decoder: a at 1x (conv_in) and 4x (up.1), b at 2x (up.0), rgb at 8x */
	w->dec_a =
	    work_alloc(w, MAX(lmax * lmax * (size_t)ch[1], 16 * lmax * lmax * (size_t)ch[3]));
	w->dec_b = work_alloc(w, 4 * lmax * lmax * (size_t)ch[2]);
	w->dec_rgb = work_alloc(w, 64 * lmax * lmax * 3);
	for (int i = 0; i < DIT_DEC_LAYERS; i++)
		cmax = MAX(cmax, (size_t)ch[i]);
	w->conv_per_slot = (size_t)DIT_CONV_TILE * 9 * cmax;
	w->conv_scratch = work_alloc(w, w->conv_per_slot * (size_t)slots);
	w->text_pool = work_alloc(w, (size_t)m->arch.text_dim);
	w->text_hid = work_alloc(w, h);
	/* the small-m products' packed rows, for the widest k of any product */
	w->pack_len = dit_gemm_pack_floats(
	    DIT_GEMM_SMALL_M, MAX(MAX(4 * m->arch.hidden, DIT_FREQ_DIM), m->arch.text_dim));
	w->pack = work_alloc(w, w->pack_len);
}

void dit_work_release(struct dit_work *w)
{
	free(w->x);
	free(w->xn);
	free(w->qkv);
	free(w->att);
	free(w->mlp);
	free(w->tfreq);
	free(w->thid);
	free(w->c);
	free(w->c_silu);
	free(w->mod);
	free(w->row_seg);
	free(w->aseg);
	free(w->attn_scratch);
	free(w->dec_a);
	free(w->dec_b);
	free(w->dec_rgb);
	free(w->conv_scratch);
	free(w->text_pool);
	free(w->text_hid);
	free(w->pack);
	memset(w, 0, sizeof(*w));
}

/* --- forward --- */

/* The product c = a wt^T (+ bias, epilogue) of one of the model's linear layers. */
static struct dit_gemm layer_gemm(const struct dit_work *w, int m, int n, int k, const float *a,
                                  int lda, const float *wt, const float *bias, float *c, int ldc,
                                  enum dit_epilogue epi)
{
	return (struct dit_gemm){.m = m,
	                         .n = n,
	                         .k = k,
	                         .a = a,
	                         .lda = lda,
	                         .w = wt,
	                         .ldw = k,
	                         .c = c,
	                         .ldc = ldc,
	                         .bias = bias,
	                         .epi = epi,
	                         .pack = w->pack,
	                         .pack_len = w->pack_len};
}

static void linear(const struct dit_exec *ex, const struct dit_work *w, int m, int n, int k,
                   const float *a, int lda, const float *wt, const float *bias, float *c, int ldc,
                   enum dit_epilogue epi)
{
	struct dit_gemm g = layer_gemm(w, m, n, k, a, lda, wt, bias, c, ldc, epi);

	dit_gemm(ex, &g);
}

/* x += gate[seg] * (a w^T + b), with c as the product's scratch. */
static void gated_linear(const struct dit_exec *ex, const struct dit_work *w, int rows, int n,
                         int k, const float *a, int lda, const float *wt, const float *bias,
                         float *c, float *x, const float *gate, int ld_gate)
{
	struct dit_gemm g = layer_gemm(w, rows, n, k, a, lda, wt, bias, c, n, DIT_EPI_GATED);

	g.x = x;
	g.ldx = n;
	g.gate = gate;
	g.ld_gate = ld_gate;
	g.row_seg = w->row_seg;
	dit_gemm(ex, &g);
}

/* Gather each token's 2x2x4 patch in (channel, ky, kx) order, the order of
 * x_embedder.proj.weight's last three dimensions. */
static void patchify(const struct dit_segment *s, float *rows)
{
	int lw = 2 * s->gw;

	for (int gy = 0; gy < s->gh; gy++) {
		for (int gx = 0; gx < s->gw; gx++) {
			float *r = rows + (size_t)(gy * s->gw + gx) * DIT_PATCH_DIM;
			for (int ky = 0; ky < DIT_PATCH; ky++) {
				for (int kx = 0; kx < DIT_PATCH; kx++) {
					const float *px =
					    s->latent + ((size_t)(2 * gy + ky) * (size_t)lw +
					                 (size_t)(2 * gx + kx)) *
					                    DIT_LATENT_CH;
					for (int c = 0; c < DIT_LATENT_CH; c++)
						r[c * 4 + ky * 2 + kx] = px[c];
				}
			}
		}
	}
}

/* The inverse for the model's output, whose columns are in (ky, kx,
 * channel) order as DiT's unpatchify reads them. */
static void unpatchify(const struct dit_segment *s, const float *rows)
{
	int lw = 2 * s->gw;

	for (int gy = 0; gy < s->gh; gy++) {
		for (int gx = 0; gx < s->gw; gx++) {
			const float *r = rows + (size_t)(gy * s->gw + gx) * DIT_PATCH_DIM;
			for (int ky = 0; ky < DIT_PATCH; ky++) {
				for (int kx = 0; kx < DIT_PATCH; kx++) {
					float *px = s->v + ((size_t)(2 * gy + ky) * (size_t)lw +
					                    (size_t)(2 * gx + kx)) *
					                       DIT_LATENT_CH;
					for (int c = 0; c < DIT_LATENT_CH; c++)
						px[c] = r[(ky * 2 + kx) * DIT_LATENT_CH + c];
				}
			}
		}
	}
}

struct pos_job {
	const struct dit_model *m;
	const struct dit_segment *segs;
	const struct dit_work *w;
	int rows;
};

#define POS_ROWS 64

static void pos_item(void *arg, int item, int slot)
{
	const struct pos_job *j = arg;
	int h = j->m->arch.hidden, half = h / 2;
	int r1 = MIN((item + 1) * POS_ROWS, j->rows);

	for (int r = item * POS_ROWS; r < r1; r++) {
		int s = j->w->row_seg[r], tok = r - j->w->aseg[s].row0;
		int gy = tok / j->segs[s].gw, gx = tok % j->segs[s].gw;
		float *x = j->w->x + (size_t)r * (size_t)h;

		for (int i = 0; i < half; i++) {
			x[i] += j->m->pos[gy * half + i];
			x[half + i] += j->m->pos[gx * half + i];
		}
	}
}

/* c = t_embedder(freq(t)) + y, per segment; c_silu = silu(c). */
static void conditioning(const struct dit_model *m, struct dit_work *w, const struct dit_exec *ex,
                         const struct dit_segment *segs, int n)
{
	int h = m->arch.hidden, half = DIT_FREQ_DIM / 2;

	for (int s = 0; s < n; s++) {
		float *f = w->tfreq + (size_t)s * DIT_FREQ_DIM;
		double t = 1000.0 * segs[s].t;
		for (int i = 0; i < half; i++) {
			double arg = t * exp(-log(10000.0) * i / half);
			f[i] = (float)cos(arg);
			f[half + i] = (float)sin(arg);
		}
	}
	linear(ex, w, n, h, DIT_FREQ_DIM, w->tfreq, DIT_FREQ_DIM, m->t_w0, m->t_b0, w->thid, h,
	       DIT_EPI_BIAS_SILU);
	linear(ex, w, n, h, h, w->thid, h, m->t_w2, m->t_b2, w->c, h, DIT_EPI_BIAS);
	for (int s = 0; s < n; s++) {
		float *c = w->c + (size_t)s * (size_t)h, *cs = w->c_silu + (size_t)s * (size_t)h;
		for (int i = 0; i < h; i++)
			c[i] += segs[s].y[i];
		memcpy(cs, c, (size_t)h * sizeof(float));
		dit_vsilu(cs, (size_t)h);
	}
}

static void block_forward(const struct dit_model *m, struct dit_work *w, const struct dit_exec *ex,
                          const struct dit_block_weights *b, int rows, int n)
{
	int h = m->arch.hidden, ld6 = 6 * h;

	/* shift, scale, gate of the attention; then of the MLP */
	linear(ex, w, n, 6 * h, h, w->c_silu, h, b->ada_w, b->ada_b, w->mod, ld6, DIT_EPI_BIAS);
	dit_layernorm_modulate(ex, w->x, h, w->xn, h, rows, h, w->row_seg, w->mod, w->mod + h, ld6);
	linear(ex, w, rows, 3 * h, h, w->xn, h, b->qkv_w, b->qkv_b, w->qkv, 3 * h, DIT_EPI_BIAS);
	dit_attention(ex, w->qkv, h, m->arch.heads, w->att, w->aseg, n, w->attn_scratch,
	              w->attn_per_slot);
	gated_linear(ex, w, rows, h, h, w->att, h, b->proj_w, b->proj_b, w->xn, w->x,
	             w->mod + 2 * h, ld6);
	dit_layernorm_modulate(ex, w->x, h, w->xn, h, rows, h, w->row_seg, w->mod + 3 * h,
	                       w->mod + 4 * h, ld6);
	linear(ex, w, rows, 4 * h, h, w->xn, h, b->fc1_w, b->fc1_b, w->mlp, 4 * h,
	       DIT_EPI_BIAS_GELU);
	gated_linear(ex, w, rows, h, 4 * h, w->mlp, 4 * h, b->fc2_w, b->fc2_b, w->xn, w->x,
	             w->mod + 5 * h, ld6);
}

void dit_forward(const struct dit_model *m, struct dit_work *w, const struct dit_exec *ex,
                 const struct dit_segment *segs, int n)
{
	int h = m->arch.hidden, rows = 0;
	struct pos_job pj = {m, segs, w, 0};

	for (int s = 0; s < n; s++) {
		int tok = segs[s].gh * segs[s].gw;
		w->aseg[s].row0 = rows;
		w->aseg[s].n = tok;
		for (int r = 0; r < tok; r++)
			w->row_seg[rows + r] = s;
		patchify(&segs[s], w->mlp + (size_t)rows * DIT_PATCH_DIM);
		rows += tok;
	}
	pj.rows = rows;
	linear(ex, w, rows, h, DIT_PATCH_DIM, w->mlp, DIT_PATCH_DIM, m->x_w, m->x_b, w->x, h,
	       DIT_EPI_BIAS);
	dit_parallel(ex, (rows + POS_ROWS - 1) / POS_ROWS, pos_item, &pj);
	conditioning(m, w, ex, segs, n);
	for (int i = 0; i < m->arch.depth; i++) {
		block_forward(m, w, ex, &m->blocks[i], rows, n);
		if (w->on_block)
			w->on_block(w->on_block_arg);
	}
	/* final layer: shift, scale; modulated norm; linear to the patch */
	linear(ex, w, n, 2 * h, h, w->c_silu, h, m->f_ada_w, m->f_ada_b, w->mod, 2 * h,
	       DIT_EPI_BIAS);
	dit_layernorm_modulate(ex, w->x, h, w->xn, h, rows, h, w->row_seg, w->mod, w->mod + h,
	                       2 * h);
	linear(ex, w, rows, DIT_PATCH_DIM, h, w->xn, h, m->f_w, m->f_b, w->qkv, DIT_PATCH_DIM,
	       DIT_EPI_BIAS);
	for (int s = 0; s < n; s++)
		unpatchify(&segs[s], w->qkv + (size_t)w->aseg[s].row0 * DIT_PATCH_DIM);
}

double dit_forward_flops(const struct dit_arch *a, const struct dit_segment *segs, int n)
{
	double h = a->hidden, rows = 0, attn = 0, f;

	for (int s = 0; s < n; s++) {
		double tok = (double)segs[s].gh * segs[s].gw;
		rows += tok;
		attn += 4.0 * tok * tok * h;
	}
	f = 2.0 * rows * DIT_PATCH_DIM * h;        /* patch embedding */
	f += 2.0 * n * (DIT_FREQ_DIM * h + h * h); /* timestep MLP */
	f += a->depth * (24.0 * rows * h * h + attn + 12.0 * n * h * h);
	f += 4.0 * n * h * h + 2.0 * rows * h * DIT_PATCH_DIM; /* final layer */
	return f;
}

/* --- text --- */

static int word_char(unsigned char c)
{
	return isalnum(c) || c >= 0x80;
}

int dit_tokenize(const char *text, uint32_t *ids, int max, int vocab)
{
	char word[64];
	int n = 0;
	const unsigned char *p = (const unsigned char *)text;

	while (*p && n < max) {
		size_t len = 0;
		if (isspace(*p)) {
			p++;
			continue;
		}
		if (!word_char(*p)) {
			word[len++] = (char)*p++;
		} else {
			/* a long word is hashed by its first 64 bytes, the rest skipped */
			while (*p && word_char(*p)) {
				if (len < sizeof(word))
					word[len++] = (char)tolower(*p);
				p++;
			}
		}
		ids[n++] = (uint32_t)(XXH64(word, len, 0) % (uint64_t)vocab);
	}
	return n;
}

void dit_text_encode(const struct dit_model *m, struct dit_work *w, const struct dit_exec *ex,
                     const char *text, float *y)
{
	uint32_t ids[DIT_MAX_PROMPT_TOKENS];
	int n = dit_tokenize(text ? text : "", ids, DIT_MAX_PROMPT_TOKENS, m->arch.vocab);
	int td = m->arch.text_dim, h = m->arch.hidden;
	float *pool = w->text_pool;

	if (!n) {
		memcpy(pool, m->y_table + (size_t)m->arch.vocab * (size_t)td,
		       (size_t)td * sizeof(float));
	} else {
		memset(pool, 0, (size_t)td * sizeof(float));
		for (int i = 0; i < n; i++) {
			const float *e = m->y_table + (size_t)ids[i] * (size_t)td;
			for (int k = 0; k < td; k++)
				pool[k] += e[k];
		}
		for (int k = 0; k < td; k++)
			pool[k] /= (float)n;
	}
	linear(ex, w, 1, h, td, pool, td, m->y_w0, m->y_b0, w->text_hid, h, DIT_EPI_BIAS_SILU);
	linear(ex, w, 1, h, h, w->text_hid, h, m->y_w2, m->y_b2, y, h, DIT_EPI_BIAS);
}

/* --- decoder --- */

const float *dit_decode(const struct dit_model *m, struct dit_work *w, const struct dit_exec *ex,
                        const float *latent, int lh, int lw)
{
	const int *ch = m->dec_ch;

	dit_conv3x3(ex, latent, lh, lw, ch[0], 1, m->dec_w[0], m->dec_b[0], ch[1], 1, w->dec_a,
	            w->conv_scratch, w->conv_per_slot);
	dit_conv3x3(ex, w->dec_a, lh, lw, ch[1], 2, m->dec_w[1], m->dec_b[1], ch[2], 1, w->dec_b,
	            w->conv_scratch, w->conv_per_slot);
	dit_conv3x3(ex, w->dec_b, 2 * lh, 2 * lw, ch[2], 2, m->dec_w[2], m->dec_b[2], ch[3], 1,
	            w->dec_a, w->conv_scratch, w->conv_per_slot);
	dit_conv3x3(ex, w->dec_a, 4 * lh, 4 * lw, ch[3], 2, m->dec_w[3], m->dec_b[3], ch[4], 0,
	            w->dec_rgb, w->conv_scratch, w->conv_per_slot);
	return w->dec_rgb;
}

double dit_decode_flops(const struct dit_model *m, int lh, int lw)
{
	double px = (double)lh * lw, f = 0;

	/* conv_in at the latent size, then each layer at 2x the previous */
	for (int i = 0; i < DIT_DEC_LAYERS; i++) {
		f += 2.0 * px * 9.0 * m->dec_ch[i] * m->dec_ch[i + 1];
		px *= 4.0;
	}
	return f;
}
