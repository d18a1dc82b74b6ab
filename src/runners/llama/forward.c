/* forward.c: see forward.h.
 *
 * Numerics follow llama.cpp's CPU path where it matters for agreement:
 * RMS norm sums in double, rotary angles advance by multiplying with
 * base^(-2/n_rot) in float, attention softmax in float with the scale
 * 1/sqrt(head_dim), SwiGLU feed-forward. */
#include "forward.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "safetensors.h"
#include "util.h"

void llama_kv_init(struct llama_kv *kv, const struct llama_model *m, uint32_t n_ctx)
{
	size_t per = (size_t)m->hp.n_layer * n_ctx * m->hp.n_head_kv * m->hp.head_dim;

	kv->n_ctx = n_ctx;
	kv->n_past = 0;
	kv->k = xcalloc(per, sizeof(float));
	kv->v = xcalloc(per, sizeof(float));
}

void llama_kv_release(struct llama_kv *kv)
{
	free(kv->k);
	free(kv->v);
	kv->k = kv->v = NULL;
}

int llama_exec_init(struct llama_exec *ex, const struct llama_model *m,
		    struct mediad_device *dev, uint32_t max_tokens, uint32_t max_ctx)
{
	const struct llama_hparams *hp = &m->hp;
	size_t T = max_tokens, E = hp->n_embd, KV = (size_t)hp->n_head_kv * hp->head_dim,
	       F = hp->n_ff;
	int threads = dev ? device_threads(dev) : 1;

	memset(ex, 0, sizeof(*ex));
	ex->m = m;
	ex->dev = dev;
	ex->max_tokens = max_tokens;
	ex->threads = threads > 0 ? threads : 1;
	ex->x = xcalloc(T * E, sizeof(float));
	ex->h = xcalloc(T * E, sizeof(float));
	ex->q = xcalloc(T * E, sizeof(float));
	ex->k = xcalloc(T * KV, sizeof(float));
	ex->v = xcalloc(T * KV, sizeof(float));
	ex->att = xcalloc(T * E, sizeof(float));
	ex->g = xcalloc(T * F, sizeof(float));
	ex->u = xcalloc(T * F, sizeof(float));
	ex->row = xcalloc((size_t)ex->threads * (E > F ? E : F), sizeof(float));
	ex->scores_ctx = max_ctx;
	ex->scores = xcalloc((size_t)ex->threads * max_ctx, sizeof(float));
	return 0;
}

void llama_exec_release(struct llama_exec *ex)
{
	free(ex->x);
	free(ex->h);
	free(ex->q);
	free(ex->k);
	free(ex->v);
	free(ex->att);
	free(ex->g);
	free(ex->u);
	free(ex->row);
	free(ex->scores);
	memset(ex, 0, sizeof(*ex));
}

/* Run fn over count slices on the device, or inline without one. */
static void run_parallel(struct llama_exec *ex, void (*fn)(void *, int, int), void *arg)
{
	if (ex->threads > 1 && ex->dev && device_parallel(ex->dev, fn, arg, ex->threads) == 0)
		return;
	for (int i = 0; i < ex->threads; i++)
		fn(arg, i, ex->threads);
}

/* Row r of a tensor as floats (the stored row itself for F32). */
static const float *row_f32(const struct gguf_tensor *w, uint64_t r, float *buf)
{
	uint64_t cols = w->ne[0];

	switch (w->type) {
	case GGML_F32:
		return (const float *)w->data + r * cols;
	case GGML_F16: {
		const uint16_t *p = (const uint16_t *)w->data + r * cols;
		for (uint64_t c = 0; c < cols; c++)
			buf[c] = safetensors_f16_to_f32(p[c]);
		return buf;
	}
	case GGML_BF16: {
		const uint16_t *p = (const uint16_t *)w->data + r * cols;
		for (uint64_t c = 0; c < cols; c++)
			buf[c] = safetensors_bf16_to_f32(p[c]);
		return buf;
	}
	default:
		return NULL;
	}
}

struct mm_job {
	struct llama_exec *ex;
	const struct gguf_tensor *w;
	const float *x;
	uint32_t n_tok;
	float *y;
};

static void mm_slice(void *arg, int index, int count)
{
	struct mm_job *j = arg;
	uint64_t rows = j->w->ne[1], cols = j->w->ne[0];
	uint64_t r0 = rows * (uint64_t)index / (uint64_t)count;
	uint64_t r1 = rows * (uint64_t)(index + 1) / (uint64_t)count;
	size_t width = j->ex->m->hp.n_embd > j->ex->m->hp.n_ff ? j->ex->m->hp.n_embd
							      : j->ex->m->hp.n_ff;
	float *buf = j->ex->row + (size_t)index * width;

	for (uint64_t r = r0; r < r1; r++) {
		const float *wr = row_f32(j->w, r, buf);
		for (uint32_t t = 0; t < j->n_tok; t++) {
			const float *xt = j->x + (size_t)t * cols;
			float s = 0;
			for (uint64_t c = 0; c < cols; c++)
				s += wr[c] * xt[c];
			j->y[(size_t)t * rows + r] = s;
		}
	}
}

void llama_matmul(struct llama_exec *ex, const struct gguf_tensor *w, const float *x,
		  uint32_t n_tok, float *y)
{
	struct mm_job j = {ex, w, x, n_tok, y};

	run_parallel(ex, mm_slice, &j);
}

static void rms_norm(const float *x, const float *w, float *out, uint32_t n, float eps)
{
	double s = 0;

	for (uint32_t i = 0; i < n; i++)
		s += (double)x[i] * x[i];
	float scale = 1.0f / sqrtf((float)(s / n) + eps);
	for (uint32_t i = 0; i < n; i++)
		out[i] = x[i] * scale * w[i];
}

/* Rotate one head's first n_rot dims for position pos. */
static void rope(float *v, const struct llama_hparams *hp, const float *freq_factors,
		 uint32_t pos)
{
	float theta_scale = powf(hp->rope_freq_base, -2.0f / (float)hp->n_rot);
	float theta = (float)pos;
	uint32_t half = hp->n_rot / 2;

	for (uint32_t i = 0; i < half; i++) {
		float t = theta / (freq_factors ? freq_factors[i] : 1.0f) * hp->rope_freq_scale;
		float c = cosf(t), s = sinf(t);
		uint32_t a = hp->rope == LLAMA_ROPE_NORM ? 2 * i : i;
		uint32_t b = hp->rope == LLAMA_ROPE_NORM ? 2 * i + 1 : i + half;
		float x0 = v[a], x1 = v[b];
		v[a] = x0 * c - x1 * s;
		v[b] = x0 * s + x1 * c;
		theta *= theta_scale;
	}
}

struct att_job {
	struct llama_exec *ex;
	struct llama_seq_step *steps;
	size_t n_steps;
	uint32_t layer;
	uint32_t n_tok;
};

/* Attention of every (token, head) pair, split over threads. */
static void att_slice(void *arg, int index, int count)
{
	struct att_job *j = arg;
	const struct llama_hparams *hp = &j->ex->m->hp;
	uint32_t D = hp->head_dim, KV = hp->n_head_kv * D, group = hp->n_head / hp->n_head_kv;
	uint64_t pairs = (uint64_t)j->n_tok * hp->n_head;
	uint64_t p0 = pairs * (uint64_t)index / (uint64_t)count;
	uint64_t p1 = pairs * (uint64_t)(index + 1) / (uint64_t)count;
	float *sc = j->ex->scores + (size_t)index * j->ex->scores_ctx;
	float scale = 1.0f / sqrtf((float)D);

	for (uint64_t p = p0; p < p1; p++) {
		uint32_t t = (uint32_t)(p / hp->n_head), h = (uint32_t)(p % hp->n_head);
		/* the sequence of token t and its position */
		size_t s = 0;
		uint32_t first = 0;
		while (t >= first + j->steps[s].n) {
			first += j->steps[s].n;
			s++;
		}
		struct llama_kv *kv = j->steps[s].kv;
		uint32_t pos = kv->n_past + (t - first);
		const float *q = j->ex->q + (size_t)t * hp->n_embd + (size_t)h * D;
		size_t layer_off = (size_t)j->layer * kv->n_ctx * KV;
		const float *kc = kv->k + layer_off + (size_t)(h / group) * D;
		const float *vc = kv->v + layer_off + (size_t)(h / group) * D;
		float mx = -INFINITY;
		for (uint32_t i = 0; i <= pos; i++) {
			const float *kr = kc + (size_t)i * KV;
			float d = 0;
			for (uint32_t c = 0; c < D; c++)
				d += q[c] * kr[c];
			sc[i] = d * scale;
			if (sc[i] > mx)
				mx = sc[i];
		}
		float sum = 0;
		for (uint32_t i = 0; i <= pos; i++) {
			sc[i] = expf(sc[i] - mx);
			sum += sc[i];
		}
		float *out = j->ex->att + (size_t)t * hp->n_embd + (size_t)h * D;
		memset(out, 0, D * sizeof(float));
		for (uint32_t i = 0; i <= pos; i++) {
			const float *vr = vc + (size_t)i * KV;
			float a = sc[i] / sum;
			for (uint32_t c = 0; c < D; c++)
				out[c] += a * vr[c];
		}
	}
}

static void add_bias(float *y, const struct gguf_tensor *b, uint32_t n_tok, uint32_t n)
{
	if (!b)
		return;
	for (uint32_t t = 0; t < n_tok; t++)
		for (uint32_t i = 0; i < n; i++)
			y[(size_t)t * n + i] += ((const float *)b->data)[i];
}

int llama_forward(struct llama_exec *ex, struct llama_seq_step *steps, size_t n_steps)
{
	const struct llama_model *m = ex->m;
	const struct llama_hparams *hp = &m->hp;
	uint32_t E = hp->n_embd, D = hp->head_dim, KV = hp->n_head_kv * D, F = hp->n_ff;
	uint32_t T = 0;

	for (size_t s = 0; s < n_steps; s++) {
		if (steps[s].kv->n_past + steps[s].n > steps[s].kv->n_ctx ||
		    steps[s].kv->n_past + steps[s].n > ex->scores_ctx)
			return -ENOSPC;
		T += steps[s].n;
	}
	if (T == 0)
		return 0;
	if (T > ex->max_tokens)
		return -ENOSPC;
	/* embeddings */
	uint32_t t = 0;
	for (size_t s = 0; s < n_steps; s++)
		for (uint32_t i = 0; i < steps[s].n; i++, t++) {
			int32_t id = steps[s].tokens[i];
			if (id < 0 || (uint32_t)id >= hp->n_vocab)
				return -EINVAL;
			const float *r = row_f32(m->tok_embd, (uint64_t)id, ex->h);
			memmove(ex->x + (size_t)t * E, r, E * sizeof(float));
		}
	const float *ff = m->rope_freqs ? (const float *)m->rope_freqs->data : NULL;
	for (uint32_t l = 0; l < hp->n_layer; l++) {
		const struct llama_layer *L = &m->layers[l];
		for (t = 0; t < T; t++)
			rms_norm(ex->x + (size_t)t * E, L->attn_norm->data, ex->h + (size_t)t * E, E,
				 hp->rms_eps);
		llama_matmul(ex, L->wq, ex->h, T, ex->q);
		llama_matmul(ex, L->wk, ex->h, T, ex->k);
		llama_matmul(ex, L->wv, ex->h, T, ex->v);
		add_bias(ex->q, L->bq, T, E);
		add_bias(ex->k, L->bk, T, KV);
		add_bias(ex->v, L->bv, T, KV);
		/* rotate and store keys and values in each sequence's cache */
		t = 0;
		for (size_t s = 0; s < n_steps; s++) {
			struct llama_kv *kv = steps[s].kv;
			for (uint32_t i = 0; i < steps[s].n; i++, t++) {
				uint32_t pos = kv->n_past + i;
				for (uint32_t h = 0; h < hp->n_head; h++)
					rope(ex->q + (size_t)t * E + (size_t)h * D, hp, ff, pos);
				for (uint32_t h = 0; h < hp->n_head_kv; h++)
					rope(ex->k + (size_t)t * KV + (size_t)h * D, hp, ff, pos);
				size_t at = ((size_t)l * kv->n_ctx + pos) * KV;
				memcpy(kv->k + at, ex->k + (size_t)t * KV, KV * sizeof(float));
				memcpy(kv->v + at, ex->v + (size_t)t * KV, KV * sizeof(float));
			}
		}
		struct att_job aj = {ex, steps, n_steps, l, T};
		run_parallel(ex, att_slice, &aj);
		llama_matmul(ex, L->wo, ex->att, T, ex->h);
		for (size_t i = 0; i < (size_t)T * E; i++)
			ex->x[i] += ex->h[i];
		for (t = 0; t < T; t++)
			rms_norm(ex->x + (size_t)t * E, L->ffn_norm->data, ex->h + (size_t)t * E, E,
				 hp->rms_eps);
		llama_matmul(ex, L->w_gate, ex->h, T, ex->g);
		llama_matmul(ex, L->w_up, ex->h, T, ex->u);
		for (size_t i = 0; i < (size_t)T * F; i++) {
			float g = ex->g[i];
			ex->g[i] = g / (1.0f + expf(-g)) * ex->u[i];
		}
		llama_matmul(ex, L->w_down, ex->g, T, ex->h);
		for (size_t i = 0; i < (size_t)T * E; i++)
			ex->x[i] += ex->h[i];
	}
	/* final norm; logits of each sequence's last new token; mean hidden */
	for (t = 0; t < T; t++)
		rms_norm(ex->x + (size_t)t * E, m->output_norm->data, ex->h + (size_t)t * E, E,
			 hp->rms_eps);
	t = 0;
	for (size_t s = 0; s < n_steps; s++) {
		uint32_t last = t + steps[s].n - 1;
		if (steps[s].hidden) {
			for (uint32_t c = 0; c < E; c++) {
				double sum = 0;
				for (uint32_t i = t; i <= last; i++)
					sum += ex->h[(size_t)i * E + c];
				steps[s].hidden[c] = (float)(sum / steps[s].n);
			}
		}
		if (steps[s].logits)
			llama_matmul(ex, m->output, ex->h + (size_t)last * E, 1, steps[s].logits);
		steps[s].kv->n_past += steps[s].n;
		t = last + 1;
	}
	return 0;
}
