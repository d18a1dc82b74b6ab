/* test_dit_sampler.c: unit tests of dit image generation (src/runners/dit/dit_sampler.c,
 * src/runners/dit/dit_model.c) on the tiny preset with synthetic weights.
 *
 * Determinism: the same image, byte for byte, on 1, 2 and 3 pool threads,
 * alone or batched with other images of other sizes and step counts, with
 * the small-m product path on or off, and from synthetic weights made on
 * any thread count. Sensitivity: a different
 * seed, prompt, negative prompt or guidance gives a different image. The
 * deep-probe digest repeats, and changes when one weight bit flips. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "device.h"
#include "runners/dit/dit_model.h"
#include "runners/dit/dit_sampler.h"
#include "log.h"
#include "util.h"

struct rig {
	struct mediad_device dev;
	struct dit_exec ex;
	struct dit_model m;
	struct dit_work w;
	struct dit_sampler s;
};

static void rig_open(struct rig *r, int threads)
{
	char err[256] = "";

	memset(r, 0, sizeof(*r));
	r->dev.ops = &device_cpu_ops;
	snprintf(r->dev.ids, sizeof(r->dev.ids), "t%d", threads);
	r->dev.threads = threads;
	if (r->dev.ops->open(&r->dev, err, sizeof(err)))
		fail_msg("open: %s", err);
	assert_int_equal(dit_exec_init(&r->ex, &r->dev), 0);
	dit_model_init(&r->m, dit_arch_find("tiny"));
	dit_model_synthesize(&r->m, DIT_SYNTH_SEED, &r->ex);
	dit_work_init(&r->w, &r->m, 2 * DIT_MAX_TOKENS, 64, r->ex.slots);
	dit_sampler_init(&r->s, &r->m, &r->w, &r->ex);
}

static void rig_close(struct rig *r)
{
	dit_sampler_release(&r->s);
	dit_work_release(&r->w);
	dit_model_release(&r->m);
	r->dev.ops->close(&r->dev);
}

struct spec {
	const char *prompt, *negative;
	float guidance;
	int steps, width, height;
	uint64_t seed;
};

static const struct spec base_spec = {"a red fox in the snow", "blurry", 5.0f, 4, 64, 64, 7};

/* Generate the images of specs together (one batch); returns their RGB
 * bytes, each width * height * 3, concatenated in a new buffer. */
static uint8_t *generate(struct rig *r, const struct spec *specs, int n, size_t *len)
{
	struct dit_image *ims = xcalloc((size_t)n, sizeof(*ims));
	struct dit_image **list = xcalloc((size_t)n, sizeof(*list));
	uint8_t *out;
	size_t total = 0, off = 0;

	for (int i = 0; i < n; i++) {
		ims[i] = (struct dit_image){.prompt = specs[i].prompt,
		                            .negative = specs[i].negative,
		                            .guidance = specs[i].guidance,
		                            .steps = specs[i].steps,
		                            .seed = specs[i].seed,
		                            .width = specs[i].width,
		                            .height = specs[i].height};
		assert_int_equal(dit_image_alloc(&ims[i], &r->m), 0);
		dit_sampler_begin(&r->s, &ims[i]);
		list[i] = &ims[i];
		total += (size_t)specs[i].width * (size_t)specs[i].height * 3;
	}
	dit_sampler_run(&r->s, list, n);
	out = xmalloc(total);
	for (int i = 0; i < n; i++) {
		assert_int_equal(ims[i].step, specs[i].steps);
		dit_sampler_decode(&r->s, &ims[i], out + off);
		off += (size_t)specs[i].width * (size_t)specs[i].height * 3;
		dit_image_release(&ims[i]);
	}
	free(ims);
	free(list);
	*len = total;
	return out;
}

static uint8_t *one(struct rig *r, const struct spec *sp, size_t *len)
{
	return generate(r, sp, 1, len);
}

static void test_threads_give_same_bytes(void **state)
{
	const struct spec wide = {"a tall lighthouse", "", 3.5f, 3, 96, 48, 99};
	uint8_t *ref = NULL, *ref_wide = NULL;
	size_t len, len_wide;

	for (int threads = 1; threads <= 3; threads++) {
		struct rig r;
		uint8_t *img, *img_wide;

		rig_open(&r, threads);
		img = one(&r, &base_spec, &len);
		img_wide = one(&r, &wide, &len_wide);
		rig_close(&r);
		if (!ref) {
			ref = img;
			ref_wide = img_wide;
			continue;
		}
		if (memcmp(img, ref, len) || memcmp(img_wide, ref_wide, len_wide))
			fail_msg("%d threads give different bytes than 1 thread", threads);
		free(img);
		free(img_wide);
	}
	free(ref);
	free(ref_wide);
}

static void test_batching_gives_same_bytes(void **state)
{
	struct spec batch[3] = {
	    {"a lighthouse", "fog", 2.0f, 6, 128, 80, 5},
	    base_spec,
	    {"noise", "", 1.0f, 2, 64, 128, 11},
	};
	struct rig r;
	uint8_t *alone, *together;
	size_t la, lt, off;

	rig_open(&r, 2);
	alone = one(&r, &base_spec, &la);
	together = generate(&r, batch, 3, &lt);
	off = (size_t)batch[0].width * (size_t)batch[0].height * 3;
	assert_memory_equal(together + off, alone, la);
	free(together);
	/* a pass that must be split: the work area holds fewer rows than the batch */
	dit_sampler_release(&r.s);
	dit_work_release(&r.w);
	dit_work_init(&r.w, &r.m, DIT_MAX_TOKENS, 3, r.ex.slots);
	dit_sampler_init(&r.s, &r.m, &r.w, &r.ex);
	together = generate(&r, batch, 3, &lt);
	assert_memory_equal(together + off, alone, la);
	free(together);
	free(alone);
	rig_close(&r);
}

static void expect_differs(struct rig *r, const struct spec *a, const struct spec *b,
                           const char *what)
{
	size_t la, lb;
	uint8_t *ia = one(r, a, &la), *ib = one(r, b, &lb);

	if (la == lb && !memcmp(ia, ib, la))
		fail_msg("changing the %s did not change the image", what);
	free(ia);
	free(ib);
}

static void test_parameters_change_the_image(void **state)
{
	struct rig r;
	struct spec s;
	size_t l1, l2;
	uint8_t *a, *b;

	rig_open(&r, 2);
	a = one(&r, &base_spec, &l1);
	b = one(&r, &base_spec, &l2);
	assert_memory_equal(a, b, l1); /* same seed, same bytes */
	free(a);
	free(b);
	s = base_spec;
	s.seed = 8;
	expect_differs(&r, &base_spec, &s, "seed");
	s = base_spec;
	s.prompt = "a blue whale in the sea";
	expect_differs(&r, &base_spec, &s, "prompt");
	s = base_spec;
	s.negative = "";
	expect_differs(&r, &base_spec, &s, "negative prompt");
	s = base_spec;
	s.guidance = 7.5f;
	expect_differs(&r, &base_spec, &s, "guidance");
	s = base_spec;
	s.guidance = 1.0f;
	expect_differs(&r, &base_spec, &s, "guidance (to 1, no unconditional pass)");
	s = base_spec;
	s.steps = 5;
	expect_differs(&r, &base_spec, &s, "step count");
	rig_close(&r);
}

static uint64_t probe_digest(struct rig *r)
{
	struct dit_image im = {.prompt = "probe",
	                       .negative = "x",
	                       .guidance = 4.0f,
	                       .steps = 2,
	                       .seed = 1234,
	                       .width = 64,
	                       .height = 64};
	struct dit_image *list[1] = {&im};
	uint64_t d;

	assert_int_equal(dit_image_alloc(&im, &r->m), 0);
	dit_sampler_begin(&r->s, &im);
	dit_sampler_run(&r->s, list, 1);
	d = dit_image_digest(&im, dit_sampler_decode(&r->s, &im, NULL));
	dit_image_release(&im);
	return d;
}

static void test_probe_digest(void **state)
{
	struct rig r;
	uint64_t golden, d;
	struct dit_tensor *t;
	uint32_t bits;

	rig_open(&r, 2);
	golden = probe_digest(&r);
	assert_true(probe_digest(&r) == golden);
	/* flip one bit of one weight of every block kind: the digest moves */
	static const char *const names[] = {"x_embedder.proj.weight", "blocks.1.mlp.fc2.weight",
	                                    "blocks.0.adaLN_modulation.1.weight",
	                                    "y_embedder.mlp.2.bias", "decoder.conv_out.weight"};
	for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
		t = dit_model_tensor(&r.m, names[i]);
		assert_non_null(t);
		memcpy(&bits, &t->data[1], 4);
		bits ^= 1u << 22;
		memcpy(&t->data[1], &bits, 4);
		d = probe_digest(&r);
		bits ^= 1u << 22;
		memcpy(&t->data[1], &bits, 4);
		if (d == golden)
			fail_msg("a flipped bit in %s left the digest unchanged", names[i]);
	}
	assert_true(probe_digest(&r) == golden);
	rig_close(&r);
}

/* Products of few rows (this image's 32, the conditioning's 2) run on the
 * small-m path unless it is off: the bytes are the same either way, so an
 * image does not change with the rows batched next to it. */
static void test_small_m_path_gives_same_bytes(void **state)
{
	int rows = dit_gemm_small_rows();
	uint8_t *on, *off;
	size_t len;
	struct rig r;

	if (!rows)
		skip();
	rig_open(&r, 2);
	on = one(&r, &base_spec, &len);
	assert_int_equal(dit_gemm_set_small_rows(0), 0);
	off = one(&r, &base_spec, &len);
	assert_int_equal(dit_gemm_set_small_rows(rows), 0);
	assert_memory_equal(on, off, len);
	free(on);
	free(off);
	rig_close(&r);
}

static void test_synthetic_weights_any_threads(void **state)
{
	struct rig r1, r3;

	rig_open(&r1, 1);
	rig_open(&r3, 3);
	assert_int_equal(r1.m.n_params, r3.m.n_params);
	assert_memory_equal(r1.m.arena, r3.m.arena, r1.m.n_params * sizeof(float));
	rig_close(&r1);
	rig_close(&r3);
}

static void test_tokenize(void **state)
{
	uint32_t a[16], b[16];
	int na = dit_tokenize("A cat, a CAT!", a, 16, 1024);
	int nb = dit_tokenize("a   cat , a cat !", b, 16, 1024);

	assert_int_equal(na, 6); /* a cat , a cat ! */
	assert_int_equal(nb, 6);
	assert_memory_equal(a, b, sizeof(uint32_t) * 6);
	assert_int_equal(a[0], a[3]);
	assert_int_equal(a[1], a[4]);
	assert_int_equal(dit_tokenize("", a, 16, 1024), 0);
	assert_int_equal(dit_tokenize("   ", a, 16, 1024), 0);
	assert_int_equal(dit_tokenize("one two three", a, 2, 1024), 2);
	for (int i = 0; i < na; i++)
		assert_true(a[i] < 1024);
}

static void test_noise(void **state)
{
	double sum = 0, sq = 0;
	int n = 200000;

	for (int i = 0; i < n; i++) {
		double z = dit_noise(77, (size_t)i);
		assert_true(isfinite(z));
		sum += z;
		sq += z * z;
	}
	assert_true(fabs(sum / n) < 0.01);
	assert_true(fabs(sq / n - 1.0) < 0.02);
	assert_true(dit_noise(77, 5) == dit_noise(77, 5));
	assert_true(dit_noise(77, 5) != dit_noise(78, 5));
}

static void test_bad_sizes(void **state)
{
	const struct dit_model *m;
	struct rig r;
	static const int bad[][3] = {{0, 64, 4}, {64, 72, 4}, {2048, 64, 4}, {64, 64, 0}};

	rig_open(&r, 1);
	m = &r.m;
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		struct dit_image im = {.width = bad[i][0], .height = bad[i][1], .steps = bad[i][2]};
		assert_int_equal(dit_image_alloc(&im, m), -EINVAL);
	}
	rig_close(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_threads_give_same_bytes),
	    cmocka_unit_test(test_batching_gives_same_bytes),
	    cmocka_unit_test(test_parameters_change_the_image),
	    cmocka_unit_test(test_probe_digest),
	    cmocka_unit_test(test_small_m_path_gives_same_bytes),
	    cmocka_unit_test(test_synthetic_weights_any_threads),
	    cmocka_unit_test(test_tokenize),
	    cmocka_unit_test(test_noise),
	    cmocka_unit_test(test_bad_sizes),
	};

	log_init("test", NULL, LOG_WARN);
	dit_kernels_init();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
