/* test_safetensors.c: unit tests of the safetensors reader and writer
 * (src/safetensors.c) and of the dit model loader built on it.
 *
 * Half and bfloat16 conversions (every half round-trips; rounding to
 * nearest even at the edges); a good file in F32, F16 and BF16 reads back;
 * metadata; a truncated file, a wrong dtype, a missing tensor, a wrong
 * shape and a malformed header each fail with an error naming the tensor
 * (or the file); dit_model_load reads what mediad-mkweights' writer wrote
 * and names an omitted tensor. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "runners/dit/dit_model.h"
#include "log.h"
#include "safetensors.h"
#include "util.h"

static char path[64];

static void expect_err(const char *err, const char *needle)
{
	if (!strstr(err, needle))
		fail_msg("error \"%s\" does not contain \"%s\"", err, needle);
}

static int setup(void **state)
{
	int fd;

	snprintf(path, sizeof(path), "/tmp/mediad-st-XXXXXX");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	close(fd);
	return 0;
}

static int teardown(void **state)
{
	unlink(path);
	return 0;
}

static void write_raw(const char *header, const void *data, size_t len)
{
	size_t hl = strlen(header);
	uint8_t l8[8];
	FILE *f = fopen(path, "wb");

	assert_non_null(f);
	for (int i = 0; i < 8; i++)
		l8[i] = (uint8_t)((uint64_t)hl >> (8 * i));
	fwrite(l8, 1, 8, f);
	fwrite(header, 1, hl, f);
	if (len)
		fwrite(data, 1, len, f);
	fclose(f);
}

/* --- conversions --- */

static void test_f16_round_trip(void **state)
{
	for (uint32_t h = 0; h < 0x10000; h++) {
		float f = safetensors_f16_to_f32((uint16_t)h);
		uint16_t back = safetensors_f32_to_f16(f);
		if (isnan(f)) {
			assert_true((back & 0x7c00) == 0x7c00 && (back & 0x3ff));
			continue;
		}
		if (back != h)
			fail_msg("half %#x -> %g -> %#x", h, (double)f, back);
	}
}

static void test_f16_rounding(void **state)
{
	static const struct {
		float f;
		uint16_t h;
	} cases[] = {
	    {1.0f, 0x3c00},
	    {-2.0f, 0xc000},
	    {65504.0f, 0x7bff},
	    {65519.0f, 0x7bff},
	    {65520.0f, 0x7c00},
	    {1e10f, 0x7c00},
	    {0x1p-24f, 0x0001},
	    {0x1p-25f, 0x0000},
	    {0x1.8p-25f, 0x0001},
	    {0x1.8p-24f, 0x0002},
	    {0x1p-14f, 0x0400},
	    {0.1f, 0x2e66},
	    {1.0f + 0x1p-11f, 0x3c00},
	    {1.0f + 0x3p-11f, 0x3c02},
	    {-0.0f, 0x8000},
	    {INFINITY, 0x7c00},
	    {-INFINITY, 0xfc00},
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		uint16_t h = safetensors_f32_to_f16(cases[i].f);
		if (h != cases[i].h)
			fail_msg("f16(%a) = %#x, want %#x", (double)cases[i].f, h, cases[i].h);
	}
	assert_true(isnan(safetensors_f16_to_f32(safetensors_f32_to_f16(NAN))));
}

static void test_bf16(void **state)
{
	assert_int_equal(safetensors_f32_to_bf16(1.0f), 0x3f80);
	assert_int_equal(safetensors_f32_to_bf16(-2.0f), 0xc000);
	/* ties to even: 1 + 2^-8 is halfway between 1 and 1 + 2^-7 */
	assert_int_equal(safetensors_f32_to_bf16(1.0f + 0x1p-8f), 0x3f80);
	assert_int_equal(safetensors_f32_to_bf16(1.0f + 0x3p-8f), 0x3f82);
	assert_true(safetensors_bf16_to_f32(0x3f80) == 1.0f);
	assert_true(isnan(safetensors_bf16_to_f32(safetensors_f32_to_bf16(NAN))));
	for (uint32_t h = 0; h < 0x10000; h++) {
		float f = safetensors_bf16_to_f32((uint16_t)h);
		if (!isnan(f))
			assert_int_equal(safetensors_f32_to_bf16(f), h);
	}
}

/* --- files --- */

static float a_data[6] = {1.0f, -2.5f, 3.25f, 0.1f, 1e-3f, 65504.0f};
static float b_data[4] = {0.5f, 0.25f, -0.125f, 7.0f};

static int write_two(enum safetensors_dtype dtype)
{
	const struct safetensors_out t[2] = {
	    {"layer.a", 2, {2, 3}, a_data},
	    {"layer.b", 1, {4}, b_data},
	};
	const char *meta[] = {"format", "test", "preset", "none", NULL};
	char err[256] = "";
	int r = safetensors_write(path, t, 2, dtype, meta, err, sizeof(err));

	if (r)
		fail_msg("write: %s", err);
	return r;
}

static void test_good_file(void **state)
{
	static const enum safetensors_dtype dts[] = {SAFETENSORS_F32, SAFETENSORS_F16,
	                                             SAFETENSORS_BF16};
	static const double tol[] = {0, 1.0 / 1024, 1.0 / 128};

	for (size_t d = 0; d < ARRAY_SIZE(dts); d++) {
		struct safetensors st;
		const struct safetensors_tensor *t;
		int64_t sa[2] = {2, 3}, sb[1] = {4};
		float a[6], b[4];
		char err[256] = "";

		write_two(dts[d]);
		assert_int_equal(safetensors_open(&st, path, err, sizeof(err)), 0);
		assert_int_equal(st.n_tensors, 2);
		assert_string_equal(safetensors_metadata(&st, "format"), "test");
		assert_null(safetensors_metadata(&st, "missing"));
		t = safetensors_find(&st, "layer.a");
		assert_non_null(t);
		assert_int_equal(t->dtype, dts[d]);
		assert_string_equal(t->dtype_name, safetensors_dtype_name(dts[d]));
		assert_int_equal(t->ndim, 2);
		assert_int_equal(safetensors_read_f32(&st, "layer.a", 2, sa, a, err, sizeof(err)),
		                 0);
		assert_int_equal(safetensors_read_f32(&st, "layer.b", 1, sb, b, err, sizeof(err)),
		                 0);
		for (int i = 0; i < 6; i++)
			assert_true(fabs(a[i] - a_data[i]) <= tol[d] * fabs(a_data[i]));
		for (int i = 0; i < 4; i++)
			assert_true(fabs(b[i] - b_data[i]) <= tol[d] * fabs(b_data[i]));
		/* the header is padded to 8 bytes, the data starts aligned */
		assert_int_equal((st.data - st.map) % 8, 0);
		safetensors_close(&st);
	}
}

static void test_truncated(void **state)
{
	struct safetensors st;
	int64_t sa[2] = {2, 3}, sb[1] = {4};
	float a[6], b[4];
	char err[256] = "";
	off_t size;
	int fd;

	write_two(SAFETENSORS_F32);
	fd = open(path, O_RDWR);
	size = lseek(fd, 0, SEEK_END);
	assert_int_equal(ftruncate(fd, size - 3), 0);
	close(fd);
	assert_int_equal(safetensors_open(&st, path, err, sizeof(err)), 0);
	assert_int_equal(safetensors_read_f32(&st, "layer.a", 2, sa, a, err, sizeof(err)), 0);
	assert_int_equal(safetensors_read_f32(&st, "layer.b", 1, sb, b, err, sizeof(err)),
	                 -ENODATA);
	expect_err(err, "tensor layer.b");
	expect_err(err, "truncated");
	safetensors_close(&st);

	/* cut inside the header */
	fd = open(path, O_RDWR);
	assert_int_equal(ftruncate(fd, 20), 0);
	close(fd);
	assert_int_equal(safetensors_open(&st, path, err, sizeof(err)), -ENODATA);
	expect_err(err, "truncated");
	fd = open(path, O_RDWR);
	assert_int_equal(ftruncate(fd, 3), 0);
	close(fd);
	assert_int_equal(safetensors_open(&st, path, err, sizeof(err)), -ENODATA);
	expect_err(err, path);
}

static void test_wrong_dtype(void **state)
{
	struct safetensors st;
	int32_t data[2] = {1, 2};
	int64_t s[1] = {2};
	float out[2];
	char err[256] = "";

	write_raw("{\"ids\":{\"dtype\":\"I32\",\"shape\":[2],\"data_offsets\":[0,8]}}", data,
	          sizeof(data));
	assert_int_equal(safetensors_open(&st, path, err, sizeof(err)), 0);
	assert_int_equal(safetensors_find(&st, "ids")->dtype, SAFETENSORS_OTHER);
	assert_int_equal(safetensors_read_f32(&st, "ids", 1, s, out, err, sizeof(err)), -ENOTSUP);
	expect_err(err, "tensor ids has dtype I32");
	safetensors_close(&st);
}

static void test_missing_and_misshaped(void **state)
{
	struct safetensors st;
	int64_t wrong[2] = {3, 2}, s1[1] = {4};
	float out[6];
	char err[256] = "";

	write_two(SAFETENSORS_F32);
	assert_int_equal(safetensors_open(&st, path, err, sizeof(err)), 0);
	assert_null(safetensors_find(&st, "layer.c"));
	assert_int_equal(safetensors_read_f32(&st, "layer.c", 1, s1, out, err, sizeof(err)),
	                 -ENOENT);
	expect_err(err, "tensor layer.c is missing");
	assert_int_equal(safetensors_read_f32(&st, "layer.a", 2, wrong, out, err, sizeof(err)),
	                 -EINVAL);
	expect_err(err, "tensor layer.a has shape [2,3], expected [3,2]");
	safetensors_close(&st);

	/* offsets that do not match the shape */
	write_raw("{\"x\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,12]}}", b_data, 16);
	assert_int_equal(safetensors_open(&st, path, err, sizeof(err)), 0);
	assert_int_equal(safetensors_read_f32(&st, "x", 1, s1, out, err, sizeof(err)), -EINVAL);
	expect_err(err, "tensor x: data_offsets span 12 bytes");
	safetensors_close(&st);
}

static void test_bad_header(void **state)
{
	struct safetensors st;
	char err[256] = "";

	write_raw("not json", NULL, 0);
	assert_int_equal(safetensors_open(&st, path, err, sizeof(err)), -EINVAL);
	expect_err(err, "header is not a JSON object");
	write_raw("{\"x\":{\"dtype\":\"F32\",\"shape\":[1]}}", NULL, 0);
	assert_int_equal(safetensors_open(&st, path, err, sizeof(err)), -EINVAL);
	expect_err(err, "tensor x");
	write_raw("{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,0]}}", NULL, 0);
	assert_int_equal(safetensors_open(&st, path, err, sizeof(err)), -EINVAL);
	expect_err(err, "tensor x: data_offsets");
	assert_int_equal(safetensors_open(&st, "/nonexistent/w.safetensors", err, sizeof(err)),
	                 -ENOENT);
	expect_err(err, "/nonexistent/w.safetensors");
}

/* --- the dit model's loader --- */

static void write_model(const struct dit_model *m, const char *omit, enum safetensors_dtype dt)
{
	struct safetensors_out *t = xcalloc((size_t)m->n_tensors, sizeof(*t));
	const char *meta[] = {"preset", m->arch.name, NULL};
	char err[256] = "";
	int n = 0;

	for (int i = 0; i < m->n_tensors; i++) {
		if (omit && !strcmp(omit, m->tensors[i].name))
			continue;
		t[n].name = m->tensors[i].name;
		t[n].ndim = m->tensors[i].ndim;
		memcpy(t[n].shape, m->tensors[i].shape, sizeof(m->tensors[i].shape));
		t[n].data = m->tensors[i].data;
		n++;
	}
	assert_int_equal(safetensors_write(path, t, (size_t)n, dt, meta, err, sizeof(err)), 0);
	free(t);
}

static void test_model_load(void **state)
{
	const struct dit_arch *tiny = dit_arch_find("tiny");
	struct dit_model src, dst;
	struct dit_exec ex;
	char err[512] = "";
	int unused = -1;

	dit_exec_init(&ex, NULL);
	dit_model_init(&src, tiny);
	dit_model_synthesize(&src, 42, &ex);
	write_model(&src, NULL, SAFETENSORS_F32);
	dit_model_init(&dst, tiny);
	assert_int_equal(dit_model_load(&dst, path, &unused, err, sizeof(err)), 0);
	assert_int_equal(unused, 0);
	assert_memory_equal(dst.arena, src.arena, src.n_params * sizeof(float));

	/* BF16 loads too, close to the original */
	write_model(&src, NULL, SAFETENSORS_BF16);
	assert_int_equal(dit_model_load(&dst, path, NULL, err, sizeof(err)), 0);
	for (size_t i = 0; i < src.n_params; i++)
		assert_true(fabsf(dst.arena[i] - src.arena[i]) <= fabsf(src.arena[i]) / 128);

	write_model(&src, "blocks.1.mlp.fc2.bias", SAFETENSORS_F16);
	assert_int_equal(dit_model_load(&dst, path, NULL, err, sizeof(err)), -ENOENT);
	expect_err(err, "tensor blocks.1.mlp.fc2.bias is missing");
	dit_model_release(&dst);

	/* a file of another preset names the first mismatch and the presets */
	dit_model_init(&dst, dit_arch_find("small"));
	write_model(&src, NULL, SAFETENSORS_F16);
	assert_int_equal(dit_model_load(&dst, path, NULL, err, sizeof(err)), -EINVAL);
	expect_err(err, "tensor x_embedder.proj.weight has shape [64,4,2,2], expected [384,4,2,2]");
	expect_err(err, "the file is of preset tiny, DIT_PRESET is small");
	dit_model_release(&dst);
	dit_model_release(&src);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_f16_round_trip),
	    cmocka_unit_test(test_f16_rounding),
	    cmocka_unit_test(test_bf16),
	    cmocka_unit_test_setup_teardown(test_good_file, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_truncated, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_wrong_dtype, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_missing_and_misshaped, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bad_header, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_model_load, setup, teardown),
	};

	log_init("test", NULL, LOG_WARN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
