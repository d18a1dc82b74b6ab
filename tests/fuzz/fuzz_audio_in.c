/* fuzz_audio_in.c: libFuzzer driver for upload decoding (src/runners/sphinx/audio_in.c).
 *
 * A transcription upload is any bytes a client sends; audio_in_decode reads
 * them with libsndfile and libsoxr. Whatever they are it must return 0 or one
 * of the documented errors with a sentence in err, leave out empty on
 * failure, never read past the upload, never run past max_seconds of audio,
 * and on success give mono samples at the asked rate whose count matches the
 * decoded duration.
 *
 * Input: byte 0 picks the output rate and the duration limit; the rest is
 * the file (in a memfd, as the server stores uploads).
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -iquote src -D_GNU_SOURCE \
 *     tests/fuzz/fuzz_audio_in.c src/runners/sphinx/audio_in.c src/util.c \
 *     $(pkg-config --libs sndfile soxr) -lm -o fuzz_audio_in
 *   ./fuzz_audio_in -rss_limit_mb=4096 tests/fuzz/corpus/audio_in */
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "runners/sphinx/audio_in.h"
#include "banned.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                                   \
	do {                                                                                       \
		if (!(c)) {                                                                        \
			fprintf(stderr, "fuzz_audio_in: invariant failed: %s (line %d)\n", #c,     \
			        __LINE__);                                                         \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

static int fd = -1;

static void on_progress(void *arg)
{
	(*(unsigned *)arg)++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const int rates[] = {16000, 8000, 22050, 48000};
	static const double limits[] = {60, 0.5, 0, 5};
	struct audio_in_opts o = {0};
	struct audio_pcm pcm;
	unsigned calls = 0;
	char err[512];
	int r;

	if (size < 1)
		return 0;
	if (fd < 0) {
		fd = memfd_create("fuzz-audio", MFD_CLOEXEC);
		CHECK(fd >= 0);
	}
	o.rate = rates[data[0] & 3];
	o.max_seconds = limits[(data[0] >> 2) & 3];
	if (o.max_seconds == 0)
		o.max_seconds = 30; /* "no limit" would let a tiny FLAC decode for hours */
	o.progress = on_progress;
	o.arg = &calls;
	data++;
	size--;
	CHECK(ftruncate(fd, 0) == 0);
	CHECK(pwrite(fd, data, size, 0) == (ssize_t)size);
	/* the decoder must not use or move the fd's offset */
	CHECK(lseek(fd, 3, SEEK_SET) == 3);

	memset(&pcm, 0xa5, sizeof(pcm));
	memset(err, 0, sizeof(err));
	r = audio_in_decode(fd, &o, &pcm, err, sizeof(err));
	CHECK(lseek(fd, 0, SEEK_CUR) == 3);
	if (r) {
		size_t len = strnlen(err, sizeof(err));

		CHECK(r == -ENODATA || r == -EINVAL || r == -EIO || r == -EFBIG);
		CHECK(len > 0 && len < sizeof(err));
		CHECK(!pcm.samples && !pcm.n);
		return 0;
	}
	CHECK(pcm.samples && pcm.n > 0);
	CHECK(pcm.rate == o.rate);
	CHECK(pcm.src_rate > 0 && pcm.src_channels > 0);
	CHECK(isfinite(pcm.duration) && pcm.duration > 0);
	CHECK(pcm.duration <= o.max_seconds);
	/* the output covers the decoded duration at the output rate (the
	 * resampler may add or drop a little at the edges) */
	{
		double want = pcm.duration * o.rate;
		double slack = 64 + want * 0.01 + (double)o.rate / pcm.src_rate * 64;

		if (fabs((double)pcm.n - want) > slack) {
			fprintf(stderr, "fuzz_audio_in: %zu samples for %.6f s at %d Hz (from %d Hz)\n",
				pcm.n, pcm.duration, o.rate, pcm.src_rate);
			CHECK(0);
		}
	}
	/* every sample is readable (ASan checks the allocation) */
	{
		int64_t sum = 0;

		for (size_t i = 0; i < pcm.n; i++)
			sum += pcm.samples[i];
		(void)sum;
	}
	audio_pcm_release(&pcm);
	CHECK(!pcm.samples && !pcm.n);
	audio_pcm_release(&pcm); /* safe twice */
	return 0;
}
