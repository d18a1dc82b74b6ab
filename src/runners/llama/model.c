/* model.c: see model.h. */
#include "model.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

static int refuse(const struct gguf *g, char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int refuse(const struct gguf *g, char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	int n = snprintf(err, errlen, "%s: ", g->path);

	if (n >= 0 && (size_t)n < errlen) {
		va_start(ap, fmt);
		vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

int llama_type_supported(uint32_t type)
{
	switch (type) {
	case GGML_F32: case GGML_F16: case GGML_BF16: case GGML_Q8_0: case GGML_Q4_0:
	case GGML_Q4_K: case GGML_Q5_K: case GGML_Q6_K:
		return 1;
	default:
		return 0;
	}
}

/* "<arch>.<suffix>" as a u32; required unless def is given (def >= 0). */
static int arch_u32(const struct gguf *g, const char *arch, const char *suffix, int64_t def,
		    uint32_t *out, char *err, size_t errlen)
{
	char key[128];
	int r;

	snprintf(key, sizeof(key), "%s.%s", arch, suffix);
	r = gguf_get_u32(g, key, out, err, errlen);
	if (r == -ENOENT) {
		if (def < 0)
			return refuse(g, err, errlen, "metadata %s: missing (required by the %s "
				      "architecture)", key, arch);
		*out = (uint32_t)def;
		return 0;
	}
	return r;
}

static int arch_f32(const struct gguf *g, const char *arch, const char *suffix, double def,
		    float *out, char *err, size_t errlen)
{
	char key[128];
	int r;

	snprintf(key, sizeof(key), "%s.%s", arch, suffix);
	r = gguf_get_f32(g, key, out, err, errlen);
	if (r == -ENOENT) {
		if (def != def)
			return refuse(g, err, errlen, "metadata %s: missing (required by the %s "
				      "architecture)", key, arch);
		*out = (float)def;
		return 0;
	}
	return r;
}

static int read_hparams(const struct gguf *g, struct llama_hparams *hp, char *err, size_t errlen)
{
	const char *a = hp->arch_name;
	int r;

	if ((r = arch_u32(g, a, "context_length", -1, &hp->n_ctx_train, err, errlen)) < 0 ||
	    (r = arch_u32(g, a, "embedding_length", -1, &hp->n_embd, err, errlen)) < 0 ||
	    (r = arch_u32(g, a, "block_count", -1, &hp->n_layer, err, errlen)) < 0 ||
	    (r = arch_u32(g, a, "feed_forward_length", -1, &hp->n_ff, err, errlen)) < 0 ||
	    (r = arch_u32(g, a, "attention.head_count", -1, &hp->n_head, err, errlen)) < 0)
		return r;
	if ((r = arch_u32(g, a, "attention.head_count_kv", hp->n_head, &hp->n_head_kv, err,
			  errlen)) < 0)
		return r;
	if ((r = arch_f32(g, a, "attention.layer_norm_rms_epsilon", 0.0 / 0.0, &hp->rms_eps, err,
			  errlen)) < 0 ||
	    (r = arch_f32(g, a, "rope.freq_base", 10000.0, &hp->rope_freq_base, err, errlen)) < 0)
		return r;
	if (hp->n_ctx_train == 0 || hp->n_embd == 0 || hp->n_layer == 0 || hp->n_ff == 0 ||
	    hp->n_head == 0 || hp->n_head_kv == 0)
		return refuse(g, err, errlen, "metadata %s.*: context_length, embedding_length, "
			      "block_count, feed_forward_length and the head counts must be > 0", a);
	if (hp->n_layer > 1024 || hp->n_embd > 65536 || hp->n_ff > 1 << 20 || hp->n_head > 1024)
		return refuse(g, err, errlen, "metadata %s.*: block_count %u, embedding_length %u, "
			      "feed_forward_length %u or head_count %u is beyond this runner's "
			      "limits (1024, 65536, 1048576, 1024)", a, hp->n_layer, hp->n_embd,
			      hp->n_ff, hp->n_head);
	if (hp->n_embd % hp->n_head)
		return refuse(g, err, errlen, "metadata %s.embedding_length: %u is not a multiple "
			      "of attention.head_count %u", a, hp->n_embd, hp->n_head);
	if (hp->n_head % hp->n_head_kv)
		return refuse(g, err, errlen, "metadata %s.attention.head_count_kv: %u does not "
			      "divide attention.head_count %u", a, hp->n_head_kv, hp->n_head);
	hp->head_dim = hp->n_embd / hp->n_head;
	if ((r = arch_u32(g, a, "rope.dimension_count", hp->head_dim, &hp->n_rot, err, errlen)) < 0)
		return r;
	if (hp->n_rot > hp->head_dim || hp->n_rot % 2)
		return refuse(g, err, errlen, "metadata %s.rope.dimension_count: %u must be even "
			      "and at most the head size %u", a, hp->n_rot, hp->head_dim);
	if (!(hp->rms_eps > 0 && hp->rms_eps < 1))
		return refuse(g, err, errlen, "metadata %s.attention.layer_norm_rms_epsilon: %g "
			      "is outside (0, 1)", a, hp->rms_eps);
	if (!(hp->rope_freq_base > 0))
		return refuse(g, err, errlen, "metadata %s.rope.freq_base: %g must be > 0", a,
			      hp->rope_freq_base);

	/* rope scaling: none or linear */
	char key[128], type[32] = "";
	float factor = 1;
	snprintf(key, sizeof(key), "%s.rope.scaling.type", a);
	r = gguf_get_str(g, key, type, sizeof(type), err, errlen);
	if (r < 0 && r != -ENOENT)
		return r;
	if (r == 0 && strcmp(type, "none") && strcmp(type, "linear"))
		return refuse(g, err, errlen, "metadata %s: rope scaling \"%s\" is not supported "
			      "(none, linear)", key, type);
	if (!strcmp(type, "linear") &&
	    (r = arch_f32(g, a, "rope.scaling.factor", 1.0, &factor, err, errlen)) < 0)
		return r;
	if (!type[0] && (r = arch_f32(g, a, "rope.scale_linear", 1.0, &factor, err, errlen)) < 0)
		return r;
	if (!(factor >= 1 && factor <= 1024))
		return refuse(g, err, errlen, "metadata %s.rope.scaling.factor: %g is outside "
			      "1..1024", a, factor);
	hp->rope_freq_scale = 1.0f / factor;
	hp->rope = hp->arch == LLAMA_ARCH_QWEN2 ? LLAMA_ROPE_NEOX : LLAMA_ROPE_NORM;

	const struct gguf_kv *toks = gguf_find(g, "tokenizer.ggml.tokens");
	if (!toks || toks->v.type != GGUF_ARRAY || toks->v.arr.type != GGUF_STRING ||
	    toks->v.arr.n == 0)
		return refuse(g, err, errlen, "metadata tokenizer.ggml.tokens: missing or not a "
			      "non-empty array of strings");
	if (toks->v.arr.n > INT32_MAX)
		return refuse(g, err, errlen, "metadata tokenizer.ggml.tokens: %llu tokens is too "
			      "many", (unsigned long long)toks->v.arr.n);
	hp->n_vocab = (uint32_t)toks->v.arr.n;
	gguf_get_str(g, "general.name", hp->name, sizeof(hp->name), err, errlen);
	return 0;
}

/* Find name (printf-formatted), check its type and shape [ne0, ne1]
 * (ne1 == 0: a vector). optional: absent is fine (*out NULL). */
static int want(const struct gguf *g, const struct gguf_tensor **out, int optional, int f32_only,
		uint64_t ne0, uint64_t ne1, const char *why, char *err, size_t errlen,
		const char *fmt, ...) __attribute__((format(printf, 10, 11)));

static int want(const struct gguf *g, const struct gguf_tensor **out, int optional, int f32_only,
		uint64_t ne0, uint64_t ne1, const char *why, char *err, size_t errlen,
		const char *fmt, ...)
{
	char name[128];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(name, sizeof(name), fmt, ap);
	va_end(ap);
	const struct gguf_tensor *t = gguf_find_tensor(g, name);
	*out = t;
	if (!t)
		return optional ? 0 : refuse(g, err, errlen, "tensor %s: missing (required by "
					     "the model's architecture)", name);
	uint32_t nd = ne1 ? 2 : 1;
	int ok = t->ne[0] == ne0 && (nd == 1 ? t->ne[1] == 1 : t->ne[1] == ne1) && t->ne[2] == 1 &&
		 t->ne[3] == 1;
	if (!ok) {
		if (nd == 1)
			return refuse(g, err, errlen, "tensor %s: shape [%llu, %llu, %llu, %llu] "
				      "does not match [%llu] (%s)", name,
				      (unsigned long long)t->ne[0], (unsigned long long)t->ne[1],
				      (unsigned long long)t->ne[2], (unsigned long long)t->ne[3],
				      (unsigned long long)ne0, why);
		return refuse(g, err, errlen, "tensor %s: shape [%llu, %llu, %llu, %llu] does "
			      "not match [%llu, %llu] (%s)", name, (unsigned long long)t->ne[0],
			      (unsigned long long)t->ne[1], (unsigned long long)t->ne[2],
			      (unsigned long long)t->ne[3], (unsigned long long)ne0,
			      (unsigned long long)ne1, why);
	}
	const struct gguf_type_info *ti = gguf_type_info(t->type);
	if (f32_only && t->type != GGML_F32)
		return refuse(g, err, errlen, "tensor %s: type %s is not supported here (F32)",
			      name, ti->name);
	if (!llama_type_supported(t->type))
		return refuse(g, err, errlen, "tensor %s: type %s is not supported (F32, F16, "
			      "BF16, Q8_0, Q4_0, Q4_K, Q5_K, Q6_K)", name, ti->name);
	return 0;
}

int llama_model_init(struct llama_model *m, struct gguf *g, char *err, size_t errlen)
{
	struct llama_hparams *hp = &m->hp;
	int r;

	memset(m, 0, sizeof(*m));
	m->g = g;
	r = gguf_get_str(g, "general.architecture", hp->arch_name, sizeof(hp->arch_name), err,
			 errlen);
	if (r == -ENOENT)
		r = refuse(g, err, errlen, "metadata general.architecture: missing");
	if (r < 0)
		goto fail;
	if (!strcmp(hp->arch_name, "llama"))
		hp->arch = LLAMA_ARCH_LLAMA;
	else if (!strcmp(hp->arch_name, "qwen2"))
		hp->arch = LLAMA_ARCH_QWEN2;
	else {
		r = refuse(g, err, errlen, "metadata general.architecture: \"%s\" is not supported "
			   "(llama, qwen2)", hp->arch_name);
		goto fail;
	}
	if ((r = read_hparams(g, hp, err, errlen)) < 0)
		goto fail;

	uint64_t E = hp->n_embd, KV = (uint64_t)hp->n_head_kv * hp->head_dim, F = hp->n_ff,
		 V = hp->n_vocab;
	if ((r = want(g, &m->tok_embd, 0, 0, E, V, "embedding_length x vocabulary", err, errlen,
		      "token_embd.weight")) < 0 ||
	    (r = want(g, &m->output_norm, 0, 1, E, 0, "embedding_length", err, errlen,
		      "output_norm.weight")) < 0 ||
	    (r = want(g, &m->output, 1, 0, E, V, "embedding_length x vocabulary", err, errlen,
		      "output.weight")) < 0 ||
	    (r = want(g, &m->rope_freqs, 1, 1, hp->n_rot / 2, 0, "rope.dimension_count / 2", err,
		      errlen, "rope_freqs.weight")) < 0)
		goto fail;
	if (!m->output) {
		m->output = m->tok_embd;
		m->tied_output = 1;
	}
	m->layers = xcalloc(hp->n_layer, sizeof(*m->layers));
	for (uint32_t i = 0; i < hp->n_layer; i++) {
		struct llama_layer *l = &m->layers[i];
		int bias = hp->arch == LLAMA_ARCH_QWEN2;
		if ((r = want(g, &l->attn_norm, 0, 1, E, 0, "embedding_length", err, errlen,
			      "blk.%u.attn_norm.weight", i)) < 0 ||
		    (r = want(g, &l->wq, 0, 0, E, E, "embedding_length x embedding_length", err,
			      errlen, "blk.%u.attn_q.weight", i)) < 0 ||
		    (r = want(g, &l->wk, 0, 0, E, KV, "embedding_length x head_count_kv * head size",
			      err, errlen, "blk.%u.attn_k.weight", i)) < 0 ||
		    (r = want(g, &l->wv, 0, 0, E, KV, "embedding_length x head_count_kv * head size",
			      err, errlen, "blk.%u.attn_v.weight", i)) < 0 ||
		    (r = want(g, &l->wo, 0, 0, E, E, "embedding_length x embedding_length", err,
			      errlen, "blk.%u.attn_output.weight", i)) < 0 ||
		    (r = want(g, &l->bq, !bias, 1, E, 0, "embedding_length", err, errlen,
			      "blk.%u.attn_q.bias", i)) < 0 ||
		    (r = want(g, &l->bk, !bias, 1, KV, 0, "head_count_kv * head size", err, errlen,
			      "blk.%u.attn_k.bias", i)) < 0 ||
		    (r = want(g, &l->bv, !bias, 1, KV, 0, "head_count_kv * head size", err, errlen,
			      "blk.%u.attn_v.bias", i)) < 0 ||
		    (r = want(g, &l->ffn_norm, 0, 1, E, 0, "embedding_length", err, errlen,
			      "blk.%u.ffn_norm.weight", i)) < 0 ||
		    (r = want(g, &l->w_gate, 0, 0, E, F, "embedding_length x feed_forward_length",
			      err, errlen, "blk.%u.ffn_gate.weight", i)) < 0 ||
		    (r = want(g, &l->w_up, 0, 0, E, F, "embedding_length x feed_forward_length",
			      err, errlen, "blk.%u.ffn_up.weight", i)) < 0 ||
		    (r = want(g, &l->w_down, 0, 0, F, E, "feed_forward_length x embedding_length",
			      err, errlen, "blk.%u.ffn_down.weight", i)) < 0)
			goto fail;
		if (!bias && (gguf_find_tensor(g, "blk.0.attn_q.bias") && i == 0)) {
			r = refuse(g, err, errlen, "tensor blk.0.attn_q.bias: q/k/v biases are not "
				   "part of the llama architecture (is this a qwen2 file?)");
			goto fail;
		}
	}
	return 0;
fail:
	free(m->layers);
	m->layers = NULL;
	m->g = NULL;
	gguf_free(g);
	return r;
}

int llama_model_load(struct llama_model *m, const char *path, char *err, size_t errlen)
{
	struct gguf *g = NULL;
	int r = gguf_open(path, &g, err, errlen);

	if (r < 0) {
		memset(m, 0, sizeof(*m));
		return r;
	}
	return llama_model_init(m, g, err, errlen);
}

void llama_model_release(struct llama_model *m)
{
	free(m->layers);
	gguf_free(m->g);
	memset(m, 0, sizeof(*m));
}
