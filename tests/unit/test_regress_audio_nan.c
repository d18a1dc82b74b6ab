/* test_regress_audio_nan.c: regression test for a fuzz finding in audio_in.c.
 *
 * fuzz_audio_in (clang's UBSan) found that a 32-bit float WAV holding a NaN
 * sample reached `(int16_t)v` with v NaN in audio_out_push: every comparison
 * with NaN is false, so the clamp let it through, and converting NaN to an
 * integer is undefined behaviour. A client controls the upload, so the
 * decoder must give a defined answer: NaN becomes silence, infinities and
 * out-of-range values clip. The fuzz seed tests/fuzz/corpus/audio_in/float_nan
 * holds the same file (make fuzz reports the UB until it is fixed; GCC's
 * -fsanitize=undefined does not include float-cast-overflow, so this test
 * checks the values instead). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "runners/sphinx/audio_in.h"
#include "banned.h"

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

/* A mono 32-bit float WAV of the samples, in a memfd. */
static int float_wav(const float *x, size_t n, int rate)
{
	uint8_t h[44];
	int fd = memfd_create("nan-wav", MFD_CLOEXEC);
	uint32_t data = (uint32_t)(n * 4);

	assert_true(fd >= 0);
	memcpy(h, "RIFF", 4);
	put32(h + 4, 36 + data);
	memcpy(h + 8, "WAVEfmt ", 8);
	put32(h + 16, 16);
	put16(h + 20, 3); /* WAVE_FORMAT_IEEE_FLOAT */
	put16(h + 22, 1);
	put32(h + 24, (uint32_t)rate);
	put32(h + 28, (uint32_t)rate * 4);
	put16(h + 32, 4);
	put16(h + 34, 32);
	memcpy(h + 36, "data", 4);
	put32(h + 40, data);
	assert_int_equal(write(fd, h, sizeof(h)), (ssize_t)sizeof(h));
	for (size_t i = 0; i < n; i++) {
		uint32_t u;
		memcpy(&u, &x[i], 4);
		uint8_t b[4];
		put32(b, u);
		assert_int_equal(write(fd, b, 4), 4);
	}
	return fd;
}

static void test_nan_and_inf_samples(void **state)
{
	enum { REPEAT = 200 };
	const float pattern[] = {0.5f, NAN, INFINITY, -INFINITY, 1e10f, -0.25f};
	const int16_t want[] = {16384, 0, 32767, -32768, 32767, -8192};
	float x[REPEAT * 6];
	struct audio_in_opts o = {.rate = 16000, .max_seconds = 60};
	struct audio_pcm pcm;
	char err[256];
	int fd;

	(void)state;
	for (size_t i = 0; i < REPEAT * 6; i++)
		x[i] = pattern[i % 6];
	fd = float_wav(x, REPEAT * 6, 16000);
	/* same rate: no resampling, every sample converted on its own */
	assert_int_equal(audio_in_decode(fd, &o, &pcm, err, sizeof(err)), 0);
	assert_int_equal(pcm.n, REPEAT * 6);
	for (size_t i = 0; i < pcm.n; i++)
		if (pcm.samples[i] != want[i % 6])
			fail_msg("sample %zu (%g) decoded as %d, want %d", i, (double)x[i],
				 pcm.samples[i], want[i % 6]);
	audio_pcm_release(&pcm);

	/* resampled: NaN spreads through the filter; the answer is still defined
	 * (0 or an error), never a crash */
	o.rate = 8000;
	if (audio_in_decode(fd, &o, &pcm, err, sizeof(err)) == 0) {
		assert_true(pcm.n > 0);
		audio_pcm_release(&pcm);
	}
	close(fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_nan_and_inf_samples),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
