/* test_llama_forward.c: unit tests for the llama forward pass
 * (src/runners/llama/forward.c) on seeded models (synth.c).
 *
 * Batching must not change a single bit: sequences advanced together give
 * the logits each gives alone, a prompt fed in chunks gives the logits of
 * the whole prompt, and the cpu device with 1 or 3 threads gives the same
 * bytes (each output is computed by one thread in a fixed order). The
 * agreement with an independent implementation is tested black-box
 * against llama.cpp (tests/blackbox/test_llama_forward.py). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "device.h"
#include "runners/llama/forward.h"
#include "runners/llama/synth.h"
#include "util.h"

static struct llama_model model;
static char path[64];

static int setup(void **state)
{
	struct llama_synth_opts o;
	char err[512];

	snprintf(path, sizeof(path), "/tmp/mediad-test-fwd-%d.gguf", (int)getpid());
	llama_synth_defaults(&o);
	o.arch = "qwen2";
	o.tokenizer = "gpt2";
	o.pre = "qwen2";
	o.type = GGML_F16;
	o.n_head_kv = 2;
	if (llama_synth_write(&o, path, err, sizeof(err)) < 0 ||
	    llama_model_load(&model, path, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s\n", err);
		return -1;
	}
	return 0;
}

static int teardown(void **state)
{
	llama_model_release(&model);
	unlink(path);
	return 0;
}

static const int32_t prompt_a[] = {3, 100, 200, 300, 400, 17};
static const int32_t prompt_b[] = {9, 8, 7};

/* Logits after the prompt and after two more tokens. */
static void alone(struct mediad_device *dev, const int32_t *p, uint32_t n, float *out)
{
	struct llama_exec ex;
	struct llama_kv kv;
	uint32_t V = model.hp.n_vocab;
	int32_t next[2] = {42, 43};

	llama_exec_init(&ex, &model, dev, 16, 64);
	llama_kv_init(&kv, &model, 64);
	struct llama_seq_step st = {&kv, p, n, out, NULL};
	assert_int_equal(llama_forward(&ex, &st, 1), 0);
	for (int i = 0; i < 2; i++) {
		struct llama_seq_step d = {&kv, &next[i], 1, out + (size_t)(i + 1) * V, NULL};
		assert_int_equal(llama_forward(&ex, &d, 1), 0);
	}
	assert_int_equal(kv.n_past, n + 2);
	for (uint32_t i = 0; i < 3 * V; i++)
		assert_true(isfinite(out[i]));
	llama_kv_release(&kv);
	llama_exec_release(&ex);
}

static void test_batched_equals_alone(void **state)
{
	uint32_t V = model.hp.n_vocab;
	float *a = xmalloc(3 * V * sizeof(float)), *b = xmalloc(3 * V * sizeof(float));
	float *ba = xmalloc(3 * V * sizeof(float)), *bb = xmalloc(3 * V * sizeof(float));
	struct llama_exec ex;
	struct llama_kv ka, kb;
	int32_t next[2] = {42, 43};

	alone(NULL, prompt_a, 6, a);
	alone(NULL, prompt_b, 3, b);
	llama_exec_init(&ex, &model, NULL, 16, 64);
	llama_kv_init(&ka, &model, 64);
	llama_kv_init(&kb, &model, 64);
	/* a's prompt in two chunks, the second batched with all of b's */
	struct llama_seq_step s1 = {&ka, prompt_a, 4, NULL, NULL};
	assert_int_equal(llama_forward(&ex, &s1, 1), 0);
	struct llama_seq_step s2[2] = {{&ka, prompt_a + 4, 2, ba, NULL}, {&kb, prompt_b, 3, bb, NULL}};
	assert_int_equal(llama_forward(&ex, s2, 2), 0);
	for (int i = 0; i < 2; i++) {
		struct llama_seq_step d[2] = {{&kb, &next[i], 1, bb + (size_t)(i + 1) * V, NULL},
					      {&ka, &next[i], 1, ba + (size_t)(i + 1) * V, NULL}};
		assert_int_equal(llama_forward(&ex, d, 2), 0);
	}
	assert_memory_equal(a, ba, 3 * V * sizeof(float));
	assert_memory_equal(b, bb, 3 * V * sizeof(float));
	/* a cache that would overflow, an id outside the vocabulary */
	struct llama_kv small;
	llama_kv_init(&small, &model, 4);
	struct llama_seq_step big = {&small, prompt_a, 6, NULL, NULL};
	assert_int_equal(llama_forward(&ex, &big, 1), -ENOSPC);
	int32_t bad = (int32_t)V;
	struct llama_seq_step oov = {&ka, &bad, 1, NULL, NULL};
	assert_int_equal(llama_forward(&ex, &oov, 1), -EINVAL);
	llama_kv_release(&small);
	llama_kv_release(&ka);
	llama_kv_release(&kb);
	llama_exec_release(&ex);
	free(a);
	free(b);
	free(ba);
	free(bb);
}

static void test_threads_do_not_change_bits(void **state)
{
	uint32_t V = model.hp.n_vocab;
	float *one = xmalloc(3 * V * sizeof(float)), *three = xmalloc(3 * V * sizeof(float));
	struct mediad_device dev = {.ops = &device_cpu_ops, .threads = 3};
	char err[256];

	alone(NULL, prompt_a, 6, one);
	assert_int_equal(dev.ops->open(&dev, err, sizeof(err)), 0);
	assert_int_equal(device_threads(&dev), 3);
	alone(&dev, prompt_a, 6, three);
	dev.ops->close(&dev);
	assert_memory_equal(one, three, 3 * V * sizeof(float));
	free(one);
	free(three);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_batched_equals_alone),
		cmocka_unit_test(test_threads_do_not_change_bits),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
