/* tools/quantbench.c: mediad-quantbench, the llama runner's product speed
 * per tensor type (src/runners/llama/quant.h), single thread.
 *
 * Per type: a rows x cols matrix (default 4096 x 4096) times 1 token (the
 * decode matvec: GB/s of weight bytes streamed, GFLOP/s) and times --batch
 * tokens (default 64, prefill: GFLOP/s), each the best of a few timed runs
 * of at least 0.2 s. Enough copies of the matrix are cycled through that
 * they never fit in cache, so the matvec's GB/s is comparable with the
 * memory bandwidth measured first (a read loop and a memcpy over 512 MiB).
 *
 *   mediad-quantbench [--rows N] [--cols N] [--batch N] [--scalar] [type...] */
#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runners/llama/quant.h"
#include "util.h"

#define BIG       (512ull << 20) /* bytes the weights (and the bandwidth test) span */
#define MIN_RUN_S 0.2
#define RUNS      3

static const uint32_t all_types[] = {GGML_F32,  GGML_F16,  GGML_BF16, GGML_Q8_0,
                                     GGML_Q4_0, GGML_Q4_K, GGML_Q5_K, GGML_Q6_K};

__attribute__((target("avx2"))) static uint64_t read_all(const uint8_t *p, size_t n)
{
	__m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;

	for (size_t i = 0; i + 128 <= n; i += 128) {
		a0 = _mm256_add_epi64(a0, _mm256_loadu_si256((const __m256i *)(p + i)));
		a1 = _mm256_add_epi64(a1, _mm256_loadu_si256((const __m256i *)(p + i + 32)));
		a2 = _mm256_add_epi64(a2, _mm256_loadu_si256((const __m256i *)(p + i + 64)));
		a3 = _mm256_add_epi64(a3, _mm256_loadu_si256((const __m256i *)(p + i + 96)));
	}
	a0 = _mm256_add_epi64(_mm256_add_epi64(a0, a1), _mm256_add_epi64(a2, a3));
	return (uint64_t)_mm256_extract_epi64(a0, 0) + (uint64_t)_mm256_extract_epi64(a0, 3);
}

static void bench_memory(void)
{
	uint8_t *a = xmalloc(BIG), *b = xmalloc(BIG);
	double best_r = 1e9, best_c = 1e9;
	volatile uint64_t sink = 0;

	memset(a, 1, BIG);
	memset(b, 2, BIG);
	for (int i = 0; i < RUNS; i++) {
		double t0 = now_s();

		sink += read_all(a, BIG);
		best_r = MIN(best_r, now_s() - t0);
		t0 = now_s();
		memcpy(b, a, BIG);
		best_c = MIN(best_c, now_s() - t0);
	}
	printf("memory: read %.1f GB/s, memcpy %.1f GB/s (read + write %.1f GB/s)\n",
	       BIG / best_r / 1e9, BIG / best_c / 1e9, 2 * BIG / best_c / 1e9);
	free(a);
	free(b);
	(void)sink;
}

/* Seconds per product, best of RUNS runs of at least MIN_RUN_S each,
 * cycling through the copies. */
static double time_product(struct quant_matrix *W, int n_copy, size_t bytes, const uint8_t *base,
                           const float *X, int n_tok, float *Y)
{
	double best = 1e9;
	int k = 0;

	for (int run = 0; run < RUNS; run++) {
		double t0 = now_s(), t;
		int n = 0;

		do {
			W->data = base + (size_t)(k++ % n_copy) * bytes;
			if (quant_matmul(W, X, n_tok, Y, 0, W->rows))
				abort();
			n++;
			t = now_s() - t0;
		} while (t < MIN_RUN_S);
		best = MIN(best, t / n);
	}
	return best;
}

static void bench_type(uint32_t type, int64_t rows, int64_t cols, int batch)
{
	size_t rb = quant_row_bytes(type, cols), bytes = rb * (size_t)rows;
	int n_copy = (int)MAX(1, BIG / bytes);
	uint8_t *base = xmalloc(bytes * (size_t)n_copy);
	float *row = xmalloc((size_t)cols * sizeof(float));
	float *X = xmalloc((size_t)(batch * cols) * sizeof(float));
	float *Y = xmalloc((size_t)(batch * rows) * sizeof(float));
	struct quant_matrix W = {.type = type, .rows = rows, .cols = cols};
	double flop = 2.0 * (double)rows * (double)cols, t1, tb;

	if (!rb) {
		printf("%-5s: cols %ld is not a whole number of blocks\n",
		       gguf_type_info(type)->name, (long)cols);
		goto out;
	}
	/* 64 quantised rows repeated: contents do not change the speed */
	for (int64_t r = 0; r < MIN(rows, 64); r++) {
		for (int64_t i = 0; i < cols; i++)
			row[i] = (float)((r * 7 + i * 13) % 101) / 50.0f - 1.0f;
		quant_quantize_row(type, row, base + (size_t)r * rb, cols);
	}
	for (int64_t r = 64; r < rows; r++)
		memcpy(base + (size_t)r * rb, base + (size_t)(r % 64) * rb, rb);
	for (int c = 1; c < n_copy; c++)
		memcpy(base + (size_t)c * bytes, base, bytes);
	for (int64_t i = 0; i < batch * cols; i++)
		X[i] = (float)(i % 17) / 8.0f - 1.0f;
	t1 = time_product(&W, n_copy, bytes, base, X, 1, Y);
	tb = time_product(&W, n_copy, bytes, base, X, batch, Y);
	printf("%-5s %5.2f bits/w: matvec %7.3f ms %6.1f GB/s %6.1f GFLOP/s | %d tokens %8.2f ms "
	       "%6.1f GFLOP/s\n",
	       gguf_type_info(type)->name, 8.0 * (double)rb / (double)cols, t1 * 1e3,
	       (double)bytes / t1 / 1e9, flop / t1 / 1e9, batch, tb * 1e3, flop * batch / tb / 1e9);
out:
	free(base);
	free(row);
	free(X);
	free(Y);
}

static uint32_t type_by_name(const char *s)
{
	for (size_t i = 0; i < ARRAY_SIZE(all_types); i++)
		if (!strcasecmp(gguf_type_info(all_types[i])->name, s))
			return all_types[i];
	return GGML_TYPE_COUNT;
}

int main(int argc, char **argv)
{
	int64_t rows = 4096, cols = 4096, batch = 64, v;
	uint32_t types[ARRAY_SIZE(all_types)];
	size_t n_types = 0;

	for (int i = 1; i < argc; i++) {
		if (i + 1 < argc && (!strcmp(argv[i], "--rows") || !strcmp(argv[i], "--cols") ||
		                     !strcmp(argv[i], "--batch"))) {
			if (parse_i64(argv[i + 1], &v) || v < 1 || v > (1 << 20)) {
				fprintf(stderr, "quantbench: %s: bad value %s\n", argv[i],
				        argv[i + 1]);
				return 2;
			}
			*(argv[i][2] == 'r' ? &rows : argv[i][2] == 'c' ? &cols : &batch) = v;
			i++;
		} else if (!strcmp(argv[i], "--scalar")) {
			quant_set_isa(QUANT_ISA_SCALAR);
		} else if (type_by_name(argv[i]) != GGML_TYPE_COUNT &&
		           n_types < ARRAY_SIZE(types)) {
			types[n_types++] = type_by_name(argv[i]);
		} else {
			fprintf(stderr,
			        "usage: mediad-quantbench [--rows N] [--cols N] [--batch N] "
			        "[--scalar] [F32|F16|BF16|Q8_0|Q4_0|Q4_K|Q5_K|Q6_K...]\n");
			return 2;
		}
	}
	if (!n_types) {
		memcpy(types, all_types, sizeof(all_types));
		n_types = ARRAY_SIZE(all_types);
	}
	printf("quantbench: %ld x %ld, 1 thread, path %s\n", (long)rows, (long)cols,
	       quant_isa_name());
	bench_memory();
	for (size_t i = 0; i < n_types; i++)
		bench_type(types[i], rows, cols, (int)batch);
	return 0;
}
