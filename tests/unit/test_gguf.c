/* test_gguf.c: unit tests for the GGUF reader and writer
 * (src/runners/llama/gguf.c, gguf_write.c).
 *
 * A file written by the writer reads back with every value type, array
 * kind, tensor type and a non-default alignment; then hand-built files break
 * one rule each and must be refused with one line naming the file, the field
 * and the rule; every prefix of a valid file (a truncation anywhere) is
 * refused without reading past its end (ASan and valgrind builds watch). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "runners/llama/gguf.h"
#include "runners/llama/gguf_write.h"
#include "util.h"

static char tmp_path[64];

static int setup(void **state)
{
	snprintf(tmp_path, sizeof(tmp_path), "/tmp/mediad-test-gguf-%d.gguf", (int)getpid());
	return 0;
}

static int teardown(void **state)
{
	unlink(tmp_path);
	return 0;
}

static void test_round_trip(void **state)
{
	struct gguf_writer w;
	char err[512];
	float f32[2 * 64];
	uint16_t f16[64];
	uint8_t q8[2 * 34], q4k[144];
	static const char *const toks[] = {"<s>", "</s>", "\xe2\x96\x81hello", ""};
	int32_t ints[3] = {-1, 0, 7};
	uint8_t bools[2] = {1, 0};

	for (int i = 0; i < 128; i++)
		f32[i] = (float)i * 0.5f;
	for (int i = 0; i < 64; i++)
		f16[i] = (uint16_t)(0x3c00 + i);
	for (size_t i = 0; i < sizeof(q8); i++)
		q8[i] = (uint8_t)i;
	for (size_t i = 0; i < sizeof(q4k); i++)
		q4k[i] = (uint8_t)(255 - i);
	gguf_writer_init(&w, 64);
	gguf_w_str(&w, "general.architecture", "llama");
	gguf_w_u32(&w, "general.alignment", 64);
	gguf_w_u32(&w, "llama.context_length", 2048);
	gguf_w_i32(&w, "test.i32", -5);
	gguf_w_u64(&w, "test.u64", 1ull << 40);
	gguf_w_f32(&w, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
	gguf_w_bool(&w, "tokenizer.ggml.add_bos_token", 1);
	uint8_t u8 = 200;
	int16_t i16 = -300;
	double f64 = 2.5;
	gguf_w_raw(&w, "test.u8", GGUF_UINT8, &u8, 1);
	gguf_w_raw(&w, "test.i16", GGUF_INT16, &i16, 2);
	gguf_w_raw(&w, "test.f64", GGUF_FLOAT64, &f64, 8);
	gguf_w_arr_str(&w, "tokenizer.ggml.tokens", toks, 4);
	gguf_w_arr(&w, "test.ints", GGUF_INT32, ints, 3);
	gguf_w_arr(&w, "test.bools", GGUF_BOOL, bools, 2);
	gguf_w_arr(&w, "test.empty", GGUF_FLOAT32, NULL, 0);
	uint64_t ne_a[2] = {64, 2}, ne_b[1] = {64}, ne_c[1] = {64}, ne_d[1] = {256};
	assert_int_equal(gguf_w_tensor(&w, "a.weight", GGML_F32, 2, ne_a, f32), 0);
	assert_int_equal(gguf_w_tensor(&w, "b.weight", GGML_F16, 1, ne_b, f16), 0);
	assert_int_equal(gguf_w_tensor(&w, "c.weight", GGML_Q8_0, 1, ne_c, q8), 0);
	assert_int_equal(gguf_w_tensor(&w, "d.weight", GGML_Q4_K, 1, ne_d, q4k), 0);
	uint64_t bad_ne[1] = {33};
	assert_int_equal(gguf_w_tensor(&w, "e", GGML_Q8_0, 1, bad_ne, q8), -EINVAL);
	assert_int_equal(gguf_writer_save(&w, tmp_path, err, sizeof(err)), 0);
	gguf_writer_release(&w);

	struct gguf *g = NULL;
	assert_int_equal(gguf_open(tmp_path, &g, err, sizeof(err)), 0);
	assert_int_equal(g->version, 3);
	assert_int_equal(g->alignment, 64);
	assert_int_equal(g->n_tensors, 4);
	assert_int_equal(g->data_offset % 64, 0);
	char s[64];
	assert_int_equal(gguf_get_str(g, "general.architecture", s, sizeof(s), err, sizeof(err)), 0);
	assert_string_equal(s, "llama");
	assert_int_equal(gguf_get_str(g, "general.architecture", s, 3, err, sizeof(err)),
			 -ENAMETOOLONG);
	uint32_t u;
	assert_int_equal(gguf_get_u32(g, "llama.context_length", &u, err, sizeof(err)), 0);
	assert_int_equal(u, 2048);
	assert_int_equal(gguf_get_u32(g, "test.u8", &u, err, sizeof(err)), 0);
	assert_int_equal(u, 200);
	assert_int_equal(gguf_get_u32(g, "test.u64", &u, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "test.u64"));
	assert_non_null(strstr(err, "32 bits"));
	assert_int_equal(gguf_get_u32(g, "test.i32", &u, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "negative"));
	assert_int_equal(gguf_get_u32(g, "absent", &u, err, sizeof(err)), -ENOENT);
	assert_int_equal(gguf_get_u32(g, "general.architecture", &u, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "must be an integer (it is a string)"));
	float f;
	assert_int_equal(gguf_get_f32(g, "llama.attention.layer_norm_rms_epsilon", &f, err,
				      sizeof(err)), 0);
	assert_true(f == 1e-5f);
	assert_int_equal(gguf_get_f32(g, "test.f64", &f, err, sizeof(err)), 0);
	assert_true(f == 2.5f);
	int b;
	assert_int_equal(gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &b, err, sizeof(err)), 0);
	assert_int_equal(b, 1);
	const struct gguf_kv *kv = gguf_find(g, "test.i16");
	assert_int_equal(kv->v.type, GGUF_INT16);
	assert_int_equal(kv->v.i, -300);
	kv = gguf_find(g, "tokenizer.ggml.tokens");
	assert_int_equal(kv->v.arr.type, GGUF_STRING);
	assert_int_equal(kv->v.arr.n, 4);
	for (int i = 0; i < 4; i++) {
		struct gguf_str t = gguf_arr_str(g, &kv->v, (uint64_t)i);
		assert_int_equal(t.len, strlen(toks[i]));
		assert_memory_equal(t.p, toks[i], t.len);
	}
	kv = gguf_find(g, "test.ints");
	assert_true(gguf_arr_num(&kv->v, 0) == -1 && gguf_arr_num(&kv->v, 2) == 7);
	kv = gguf_find(g, "test.bools");
	assert_true(gguf_arr_num(&kv->v, 0) == 1 && gguf_arr_num(&kv->v, 1) == 0);
	assert_int_equal(gguf_find(g, "test.empty")->v.arr.n, 0);
	const struct gguf_tensor *t = gguf_find_tensor(g, "a.weight");
	assert_int_equal(t->ne[0], 64);
	assert_int_equal(t->ne[1], 2);
	assert_int_equal(t->ne[2], 1);
	assert_int_equal(t->nbytes, sizeof(f32));
	assert_memory_equal(t->data, f32, sizeof(f32));
	assert_int_equal(((uintptr_t)t->data - (uintptr_t)g->map) % 64, 0);
	t = gguf_find_tensor(g, "b.weight");
	assert_memory_equal(t->data, f16, sizeof(f16));
	t = gguf_find_tensor(g, "c.weight");
	assert_int_equal(t->nbytes, 68);
	assert_memory_equal(t->data, q8, sizeof(q8));
	t = gguf_find_tensor(g, "d.weight");
	assert_int_equal(t->nbytes, 144);
	assert_memory_equal(t->data, q4k, sizeof(q4k));
	assert_null(gguf_find_tensor(g, "e"));
	gguf_free(g);
}

/* --- hand-built files, one broken rule each --- */

struct fb {
	struct buf b;
};

static void u32(struct buf *b, uint32_t v)
{
	buf_append(b, &v, 4);
}

static void u64(struct buf *b, uint64_t v)
{
	buf_append(b, &v, 8);
}

static void str(struct buf *b, const char *s)
{
	u64(b, strlen(s));
	buf_append(b, s, strlen(s));
}

static void header(struct buf *b, uint32_t version, uint64_t nt, uint64_t nkv)
{
	buf_init(b, BUF_UNLIMITED);
	buf_append(b, "GGUF", 4);
	u32(b, version);
	u64(b, nt);
	u64(b, nkv);
}

static void kv_u32(struct buf *b, const char *k, uint32_t v)
{
	str(b, k);
	u32(b, GGUF_UINT32);
	u32(b, v);
}

static void tinfo(struct buf *b, const char *name, uint32_t nd, const uint64_t *ne, uint32_t type,
		  uint64_t off)
{
	str(b, name);
	u32(b, nd);
	for (uint32_t i = 0; i < nd; i++)
		u64(b, ne[i]);
	u32(b, type);
	u64(b, off);
}

static void pad_data(struct buf *b, size_t data_bytes)
{
	while (b->len % 32)
		buf_append(b, "", 1);
	for (size_t i = 0; i < data_bytes; i++)
		buf_append(b, "\x01", 1);
}

/* Expect a refusal whose message holds every word given. */
static void refused(struct buf *b, const char *w1, const char *w2)
{
	struct gguf *g = NULL;
	char err[512] = "";
	int r = gguf_open_mem(b->data, b->len, "m.gguf", &g, err, sizeof(err));

	if (r == 0 || strncmp(err, "m.gguf: ", 8) || !strstr(err, w1) || (w2 && !strstr(err, w2))) {
		print_error("r=%d err='%s' (wanted '%s' and '%s')\n", r, err, w1, w2 ? w2 : "");
		fail();
	}
	assert_null(g);
	assert_null(strchr(err, '\n'));
	buf_release(b);
}

static void test_refusals(void **state)
{
	struct buf b;
	uint64_t ne64[1] = {64}, ne2[2] = {32, 2};

	header(&b, 3, 0, 0);
	memcpy(b.data, "GGML", 4);
	refused(&b, "magic", "not a GGUF file");
	header(&b, 1, 0, 0);
	refused(&b, "version", "1 is not supported");
	buf_init(&b, BUF_UNLIMITED);
	buf_append(&b, "GGUF\x03\0\0", 7);
	refused(&b, "header", "truncated");
	header(&b, 3, 1000000, 0);
	refused(&b, "tensor_count", "cannot fit");
	header(&b, 3, 0, UINT64_MAX);
	refused(&b, "metadata_kv_count", "cannot fit");
	header(&b, 3, 0, 1);
	str(&b, "k");
	u32(&b, 13);
	u32(&b, 0);
	refused(&b, "metadata k", "value type 13 is unknown");
	header(&b, 3, 0, 2);
	kv_u32(&b, "k", 1);
	kv_u32(&b, "k", 2);
	refused(&b, "metadata k", "given twice");
	header(&b, 3, 0, 1);
	u64(&b, 1ull << 40);
	buf_append(&b, "abcdefgh", 8);
	refused(&b, "metadata key #0", "runs past the end");
	header(&b, 3, 0, 1);
	str(&b, "k");
	u32(&b, GGUF_STRING);
	u64(&b, 1ull << 62);
	refused(&b, "metadata k", "runs past the end");
	header(&b, 3, 0, 1);
	str(&b, "arr");
	u32(&b, GGUF_ARRAY);
	u32(&b, GGUF_INT32);
	u64(&b, 1ull << 61);
	refused(&b, "metadata arr", "run past the end");
	header(&b, 3, 0, 1);
	str(&b, "arr");
	u32(&b, GGUF_ARRAY);
	u32(&b, GGUF_ARRAY);
	u64(&b, 0);
	refused(&b, "metadata arr", "arrays of arrays");
	header(&b, 3, 0, 1);
	str(&b, "b");
	u32(&b, GGUF_BOOL);
	buf_append(&b, "\x02", 1);
	refused(&b, "metadata b", "not 0 or 1");
	header(&b, 3, 0, 1);
	u64(&b, 3);
	buf_append(&b, "k\0x", 3);
	u32(&b, GGUF_UINT8);
	buf_append(&b, "\x02", 1);
	refused(&b, "metadata key #0", "NUL byte");
	header(&b, 3, 0, 1);
	kv_u32(&b, "general.alignment", 48);
	refused(&b, "general.alignment", "power of two");
	header(&b, 3, 0, 1);
	str(&b, "general.alignment");
	u32(&b, GGUF_UINT64);
	u64(&b, 64);
	refused(&b, "general.alignment", "must be a uint32");
	header(&b, 3, 1, 0);
	tinfo(&b, "t", 5, (uint64_t[]){1, 1, 1, 1, 1}, GGML_F32, 0);
	refused(&b, "tensor t", "n_dims 5 is outside 1..4");
	header(&b, 3, 1, 0);
	tinfo(&b, "t", 2, (uint64_t[]){4, 0}, GGML_F32, 0);
	refused(&b, "tensor t", "dimension 1 is 0");
	header(&b, 3, 1, 0);
	tinfo(&b, "t", 2, (uint64_t[]){1ull << 40, 1ull << 40}, GGML_F32, 0);
	refused(&b, "tensor t", "overflows");
	header(&b, 3, 1, 0);
	tinfo(&b, "t", 1, ne64, 19, 0);
	refused(&b, "tensor t", "type 19 is unknown");
	header(&b, 3, 1, 0);
	tinfo(&b, "t", 1, (uint64_t[]){48}, GGML_Q8_0, 0);
	refused(&b, "tensor t", "row length 48 is not a multiple of the Q8_0 block (32)");
	header(&b, 3, 1, 0);
	tinfo(&b, "t", 1, ne64, GGML_F32, 16);
	pad_data(&b, 512);
	refused(&b, "tensor t", "offset 16 is not a multiple of the alignment 32");
	header(&b, 3, 1, 0);
	tinfo(&b, "t", 1, ne64, GGML_F32, 0);
	pad_data(&b, 255);
	refused(&b, "tensor t", "data [0, 256) runs past the end of the file");
	header(&b, 3, 1, 0);
	tinfo(&b, "t", 1, ne64, GGML_F32, UINT64_MAX - 31);
	pad_data(&b, 256);
	refused(&b, "tensor t", "runs past the end");
	header(&b, 3, 2, 0);
	tinfo(&b, "t", 1, ne64, GGML_F32, 0);
	tinfo(&b, "t", 2, ne2, GGML_F32, 256);
	pad_data(&b, 512);
	refused(&b, "tensor t", "given twice");
	header(&b, 3, 2, 0);
	tinfo(&b, "t", 1, ne64, GGML_F32, 0);
	tinfo(&b, "u", 2, ne2, GGML_F32, 224);
	pad_data(&b, 512);
	refused(&b, "tensor u", "overlaps tensor t");
	header(&b, 3, 1, 0);
	tinfo(&b, "", 1, ne64, GGML_F32, 0);
	pad_data(&b, 256);
	refused(&b, "tensor info #0", "empty");

	/* version 2 with the same layout is read */
	header(&b, 2, 1, 1);
	kv_u32(&b, "x", 3);
	tinfo(&b, "t", 2, ne2, GGML_F32, 0);
	pad_data(&b, 256);
	struct gguf *g = NULL;
	char err[512];
	assert_int_equal(gguf_open_mem(b.data, b.len, "v2.gguf", &g, err, sizeof(err)), 0);
	assert_int_equal(g->version, 2);
	gguf_free(g);

	/* every truncation of that file is refused (the full one is not) */
	for (size_t n = 0; n < b.len - 256; n++) {
		g = NULL;
		assert_int_not_equal(gguf_open_mem(b.data, n, "cut.gguf", &g, err, sizeof(err)), 0);
		assert_null(g);
		assert_non_null(strstr(err, "cut.gguf: "));
	}
	for (size_t n = b.len - 256; n < b.len; n++)
		assert_int_not_equal(gguf_open_mem(b.data, n, "cut.gguf", &g, err, sizeof(err)), 0);
	buf_release(&b);

	/* a missing file names it */
	assert_int_equal(gguf_open("/nonexistent/x.gguf", &g, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "/nonexistent/x.gguf: cannot open"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
		cmocka_unit_test(test_refusals),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
