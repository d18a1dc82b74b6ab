/* fuzz_safetensors.c: libFuzzer driver for the safetensors reader (src/safetensors.c).
 *
 * DIT_WEIGHTS may name any file, and a truncated download or a file of
 * another format must give an error that names the problem, never a crash.
 * The input is the whole file (held in a memfd and opened through
 * /proc/self/fd, so the reader maps it as it maps a real file). Checks:
 *  - safetensors_open returns 0 or -EINVAL / -ENODATA with err set, and
 *    leaves nothing to close on failure;
 *  - on success the header lies inside the file, every tensor has a name,
 *    at most SAFETENSORS_MAX_DIMS dimensions and begin <= end, find returns
 *    it (the first of that name), metadata is an object or absent;
 *  - reading every tensor (as a runner does: with its own shape, into a
 *    buffer of that many floats, when that is small) returns 0 or a
 *    documented error, and 0 only for F32/F16/BF16 data inside the file
 *    whose byte count matches the shape, with the same values the bytes say.
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -iquote src -D_GNU_SOURCE \
 *     $(pkg-config --cflags jansson) tests/fuzz/fuzz_safetensors.c src/safetensors.c \
 *     src/buf.c src/util.c src/log.c $(pkg-config --libs jansson) -lm -o fuzz_safetensors
 *   ./fuzz_safetensors tests/fuzz/corpus/safetensors */
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "safetensors.h"
#include "banned.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                                   \
	do {                                                                                       \
		if (!(c)) {                                                                        \
			fprintf(stderr, "fuzz_safetensors: invariant failed: %s (line %d)\n", #c,  \
			        __LINE__);                                                         \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

#define READ_MAX_ELEMS (1u << 20) /* a runner's tensors; larger shapes are not read */

static int fd = -1;
static char path[64];

static void check_err(const char *err, size_t n)
{
	size_t len = strnlen(err, n);

	CHECK(len > 0 && len < n);
}

/* numel of a shape, or 0 when it is over READ_MAX_ELEMS (or overflows). */
static uint64_t small_numel(const struct safetensors_tensor *t)
{
	uint64_t n = 1;

	for (int i = 0; i < t->ndim; i++) {
		if (t->shape[i] < 0)
			return 0;
		if (t->shape[i] && n > READ_MAX_ELEMS / (uint64_t)t->shape[i])
			return 0;
		n *= (uint64_t)t->shape[i];
	}
	return n <= READ_MAX_ELEMS ? n : 0;
}

static void check_read(const struct safetensors *st, const struct safetensors_tensor *t)
{
	uint64_t numel = small_numel(t);
	size_t esize = safetensors_dtype_size(t->dtype);
	char err[512];
	float *dst;
	int r;

	if (!numel && t->ndim) {
		/* zero elements, or too large to read here */
		for (int i = 0; i < t->ndim; i++)
			if (t->shape[i] == 0)
				goto read;
		return;
	}
read:
	dst = malloc((numel ? numel : 1) * sizeof(float));
	CHECK(dst);
	err[0] = 0;
	r = safetensors_read_f32(st, t->name, t->ndim, t->shape, dst, err, sizeof(err));
	CHECK(r == 0 || r == -EINVAL || r == -ENOTSUP || r == -ENODATA);
	if (r) {
		check_err(err, sizeof(err));
	} else {
		CHECK(esize == 2 || esize == 4);
		CHECK(t->end - t->begin == numel * esize);
		CHECK(t->end <= st->data_len);
		for (uint64_t i = 0; i < numel; i++) {
			const uint8_t *p = st->data + t->begin + i * esize;
			float want;
			uint16_t h;

			if (t->dtype == SAFETENSORS_F32) {
				memcpy(&want, p, 4);
			} else {
				memcpy(&h, p, 2);
				want = t->dtype == SAFETENSORS_F16 ? safetensors_f16_to_f32(h)
								   : safetensors_bf16_to_f32(h);
			}
			if (isnan(want)) {
				CHECK(isnan(dst[i]));
				continue;
			}
			CHECK(!memcmp(&want, &dst[i], 4));
		}
	}
	/* a wrong shape is refused */
	if (t->ndim < SAFETENSORS_MAX_DIMS) {
		int64_t shape[SAFETENSORS_MAX_DIMS];

		memcpy(shape, t->shape, sizeof(shape));
		shape[t->ndim] = 1;
		CHECK(safetensors_read_f32(st, t->name, t->ndim + 1, shape, dst, err, sizeof(err)) ==
		      -EINVAL);
	}
	free(dst);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct safetensors st;
	char err[512];
	int r;

	if (fd < 0) {
		fd = memfd_create("fuzz-safetensors", MFD_CLOEXEC);
		CHECK(fd >= 0);
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	}
	CHECK(ftruncate(fd, 0) == 0);
	CHECK(pwrite(fd, data, size, 0) == (ssize_t)size);

	memset(err, 0, sizeof(err));
	r = safetensors_open(&st, path, err, sizeof(err));
	if (r) {
		CHECK(r == -EINVAL || r == -ENODATA);
		check_err(err, sizeof(err));
		/* nothing left to close */
		CHECK(!st.map && !st.tensors && !st.path && !st.metadata && !st.n_tensors);
		return 0;
	}
	CHECK(size >= 8);
	CHECK(st.map_len == size);
	CHECK(st.data >= st.map + 8 && st.data + st.data_len == st.map + st.map_len);
	CHECK(!st.metadata || json_is_object(st.metadata));
	for (size_t i = 0; i < st.n_tensors; i++) {
		const struct safetensors_tensor *t = &st.tensors[i];

		CHECK(t->name);
		CHECK(t->ndim >= 0 && t->ndim <= SAFETENSORS_MAX_DIMS);
		CHECK(t->begin <= t->end);
		CHECK(strnlen(t->dtype_name, sizeof(t->dtype_name)) < sizeof(t->dtype_name));
		CHECK(safetensors_find(&st, t->name) != NULL);
		CHECK(!strcmp(safetensors_find(&st, t->name)->name, t->name));
		check_read(&st, t);
	}
	CHECK(safetensors_find(&st, "__metadata__") == NULL);
	(void)safetensors_metadata(&st, "preset");
	err[0] = 0;
	CHECK(safetensors_read_f32(&st, "\x01no such tensor", 0, NULL, NULL, err, sizeof(err)) ==
	      -ENOENT);
	check_err(err, sizeof(err));
	safetensors_close(&st);
	CHECK(!st.map && !st.tensors);
	return 0;
}
