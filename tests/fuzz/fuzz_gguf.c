/* fuzz_gguf.c: libFuzzer driver for the GGUF reader
 * (src/runners/llama/gguf.c).
 *
 * Any bytes are either refused with one line that names the file, or
 * accepted; an accepted file must then be safe to read everywhere the reader
 * says it may be: every metadata value through every typed getter, every
 * element of every array, the first and last byte of every tensor's data
 * (ASan catches a read past the input). Refusals carry no newline.
 *
 * Input: the file's bytes. Seeds (tests/fuzz/corpus/gguf, gen_corpus.py):
 * small llama-style files of versions 2 and 3 with every value type, string
 * arrays, tensors of several types and a non-default alignment. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runners/llama/gguf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                                   \
	do {                                                                                       \
		if (!(c)) {                                                                        \
			fprintf(stderr, "fuzz_gguf: invariant failed: %s (line %d)\n", #c,         \
				__LINE__);                                                         \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

static volatile uint64_t sink;
static volatile double fsink;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* a private copy sized exactly, so a read past it is caught */
	uint8_t *copy = malloc(size ? size : 1);
	struct gguf *g = NULL;
	char err[512];

	memcpy(copy, data, size);
	err[0] = 0;
	if (gguf_open_mem(copy, size, "fuzz.gguf", &g, err, sizeof(err)) < 0) {
		CHECK(g == NULL);
		CHECK(!strncmp(err, "fuzz.gguf: ", 11));
		CHECK(!strchr(err, '\n'));
		free(copy);
		return 0;
	}
	for (uint64_t i = 0; i < g->n_kv; i++) {
		const struct gguf_kv *kv = &g->kv[i];
		uint64_t u;
		uint32_t u32;
		float f;
		int b;
		char s[64];
		CHECK(gguf_find(g, kv->key) == kv);
		gguf_get_u64(g, kv->key, &u, err, sizeof(err));
		gguf_get_u32(g, kv->key, &u32, err, sizeof(err));
		gguf_get_f32(g, kv->key, &f, err, sizeof(err));
		gguf_get_bool(g, kv->key, &b, err, sizeof(err));
		gguf_get_str(g, kv->key, s, sizeof(s), err, sizeof(err));
		if (kv->v.type == GGUF_STRING && kv->v.str.len)
			sink += (uint8_t)kv->v.str.p[kv->v.str.len - 1];
		if (kv->v.type != GGUF_ARRAY)
			continue;
		for (uint64_t j = 0; j < kv->v.arr.n; j++) {
			if (kv->v.arr.type == GGUF_STRING) {
				struct gguf_str e = gguf_arr_str(g, &kv->v, j);
				CHECK(e.p >= (const char *)copy && e.p + e.len <= (const char *)copy + size);
				if (e.len)
					sink += (uint8_t)e.p[0] + (uint8_t)e.p[e.len - 1];
			} else {
				fsink += gguf_arr_num(&kv->v, j);
			}
		}
	}
	for (uint64_t i = 0; i < g->n_tensors; i++) {
		const struct gguf_tensor *t = &g->tensors[i];
		CHECK(gguf_find_tensor(g, t->name) != NULL);
		CHECK(t->nbytes > 0);
		const uint8_t *p = t->data;
		CHECK(p >= copy && p + t->nbytes <= copy + size);
		sink += p[0] + p[t->nbytes - 1];
	}
	gguf_free(g);
	free(copy);
	return 0;
}
