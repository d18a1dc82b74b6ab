/* test_llama_model.c: unit tests for the llama model loader and the seeded
 * model writer (src/runners/llama/model.c, synth.c).
 *
 * Seeded files of both architectures and tokenizer kinds load with the
 * hyperparameters they were written with; a missing tensor, a tensor of the
 * wrong shape, a missing or inconsistent hyperparameter and an unknown
 * architecture are each refused with one line naming file, field and rule. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "runners/llama/gguf_write.h"
#include "runners/llama/model.h"
#include "runners/llama/synth.h"
#include "util.h"

static char path[64];

static int setup(void **state)
{
	snprintf(path, sizeof(path), "/tmp/mediad-test-llama-%d.gguf", (int)getpid());
	return 0;
}

static int teardown(void **state)
{
	unlink(path);
	return 0;
}

static void write_model(const struct llama_synth_opts *o)
{
	char err[512];

	if (llama_synth_write(o, path, err, sizeof(err)) < 0) {
		print_error("%s\n", err);
		fail();
	}
}

static void test_llama_spm(void **state)
{
	struct llama_synth_opts o;
	struct llama_model m;
	char err[512];

	llama_synth_defaults(&o);
	o.type = GGML_F16;
	write_model(&o);
	assert_int_equal(llama_model_load(&m, path, err, sizeof(err)), 0);
	assert_int_equal(m.hp.arch, LLAMA_ARCH_LLAMA);
	assert_int_equal(m.hp.n_embd, 64);
	assert_int_equal(m.hp.n_layer, 2);
	assert_int_equal(m.hp.n_head, 4);
	assert_int_equal(m.hp.n_head_kv, 2);
	assert_int_equal(m.hp.head_dim, 16);
	assert_int_equal(m.hp.n_rot, 16);
	assert_int_equal(m.hp.n_ff, 160);
	assert_int_equal(m.hp.n_ctx_train, 512);
	assert_int_equal(m.hp.rope, LLAMA_ROPE_NORM);
	assert_true(m.hp.rope_freq_base == 10000.0f && m.hp.rope_freq_scale == 1.0f);
	assert_true(m.hp.rms_eps == 1e-5f);
	assert_string_equal(m.hp.name, "mediad-seeded");
	assert_false(m.tied_output);
	assert_int_equal(m.layers[1].wq->type, GGML_F16);
	assert_int_equal(m.layers[1].attn_norm->type, GGML_F32);
	assert_null(m.layers[0].bq);
	assert_int_equal(m.tok_embd->ne[1], m.hp.n_vocab);
	assert_true(m.hp.n_vocab > 259);
	llama_model_release(&m);
}

static void test_qwen2_bpe_tied(void **state)
{
	struct llama_synth_opts o;
	struct llama_model m;
	char err[512];

	llama_synth_defaults(&o);
	o.arch = "qwen2";
	o.tokenizer = "gpt2";
	o.pre = "qwen2";
	o.tied = 1;
	o.n_head_kv = 1;
	write_model(&o);
	assert_int_equal(llama_model_load(&m, path, err, sizeof(err)), 0);
	assert_int_equal(m.hp.arch, LLAMA_ARCH_QWEN2);
	assert_int_equal(m.hp.rope, LLAMA_ROPE_NEOX);
	assert_true(m.hp.rope_freq_base == 1000000.0f);
	assert_true(m.tied_output);
	assert_ptr_equal(m.output, m.tok_embd);
	assert_non_null(m.layers[0].bq);
	assert_int_equal(m.layers[0].bk->ne[0], 16);
	llama_model_release(&m);
}

static void refused_with(const char *w1, const char *w2)
{
	struct llama_model m;
	char err[512] = "";

	assert_int_equal(llama_model_load(&m, path, err, sizeof(err)), -EINVAL);
	if (!strstr(err, path) || !strstr(err, w1) || (w2 && !strstr(err, w2))) {
		print_error("err '%s' lacks '%s' / '%s'\n", err, w1, w2 ? w2 : "");
		fail();
	}
	assert_null(strchr(err, '\n'));
}

static void test_refusals(void **state)
{
	struct llama_synth_opts o;

	llama_synth_defaults(&o);
	o.omit = "blk.1.ffn_up.weight";
	write_model(&o);
	refused_with("tensor blk.1.ffn_up.weight", "missing");
	o.omit = "output_norm.weight";
	write_model(&o);
	refused_with("tensor output_norm.weight", "missing");
	o.omit = "blk.0.attn_k.bias";
	o.arch = "qwen2";
	write_model(&o);
	refused_with("tensor blk.0.attn_k.bias", "missing");

	/* hand-written metadata around real tensors: a shape that disagrees,
	 * hyperparameters that are missing or inconsistent, an unknown arch */
	static const struct {
		const char *arch;
		uint32_t embd, heads, kv;
		int skip_eps;
		const char *w1, *w2;
	} cases[] = {
		{"llama", 64, 4, 2, 0, "tensor token_embd.weight", "does not match [64, "},
		{"llama", 32, 4, 2, 1, "layer_norm_rms_epsilon", "missing"},
		{"llama", 32, 4, 3, 0, "head_count_kv", "does not divide"},
		{"llama", 30, 4, 2, 0, "embedding_length", "not a multiple"},
		{"gptj", 32, 4, 2, 0, "general.architecture", "\"gptj\" is not supported"},
	};
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		struct gguf_writer w;
		char err[512], key[96];
		static float embd[32 * 2];
		static const char *const toks[] = {"a", "b"};
		gguf_writer_init(&w, 32);
		gguf_w_str(&w, "general.architecture", cases[c].arch);
#define K(s) (snprintf(key, sizeof(key), "%s." s, cases[c].arch), key)
		gguf_w_u32(&w, K("context_length"), 64);
		gguf_w_u32(&w, K("embedding_length"), cases[c].embd);
		gguf_w_u32(&w, K("block_count"), 1);
		gguf_w_u32(&w, K("feed_forward_length"), 64);
		gguf_w_u32(&w, K("attention.head_count"), cases[c].heads);
		gguf_w_u32(&w, K("attention.head_count_kv"), cases[c].kv);
		if (!cases[c].skip_eps)
			gguf_w_f32(&w, K("attention.layer_norm_rms_epsilon"), 1e-6f);
#undef K
		gguf_w_arr_str(&w, "tokenizer.ggml.tokens", toks, 2);
		uint64_t ne[2] = {32, 2};
		gguf_w_tensor(&w, "token_embd.weight", GGML_F32, 2, ne, embd);
		assert_int_equal(gguf_writer_save(&w, path, err, sizeof(err)), 0);
		gguf_writer_release(&w);
		refused_with(cases[c].w1, cases[c].w2);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_llama_spm, setup, teardown),
		cmocka_unit_test_setup_teardown(test_qwen2_bpe_tied, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refusals, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
