/* test_audio_in.c: unit tests for src/runners/sphinx/audio_in.c (upload decoding).
 *
 * Inputs are written with media_encode_audio() into a memfd, the way an
 * upload reaches a worker, then decoded: a 16 kHz mono WAV passes through
 * bit-exact; other rates are resampled to the right length with the tone's
 * frequency kept; stereo is mixed down; every bad upload gets its own error
 * code and a message naming the problem. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "runners/sphinx/audio_in.h"
#include "buf.h"
#include "media.h"
#include "util.h"

/* n frames of a tone at freq Hz, amplitude amp, in every channel (the
 * second channel, if any, scaled by right). */
static int16_t *tone(size_t n, int rate, int channels, double freq, double amp, double right)
{
	int16_t *pcm = xmalloc(n * (size_t)channels * sizeof(*pcm));

	for (size_t i = 0; i < n; i++) {
		double v = amp * sin(2.0 * M_PI * freq * (double)i / rate);
		for (int c = 0; c < channels; c++)
			pcm[i * (size_t)channels + (size_t)c] = (int16_t)lrint(c ? v * right : v);
	}
	return pcm;
}

static int memfd_with(const void *data, size_t len)
{
	int fd = memfd_create("test-upload", MFD_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(write_all(fd, data, len), 0);
	return fd;
}

static int encoded_fd(const int16_t *pcm, size_t n, int rate, int channels, const char *fmt)
{
	struct buf b;
	int fd;

	buf_init(&b, BUF_UNLIMITED);
	assert_int_equal(media_encode_audio(pcm, n, rate, channels, fmt, &b), 0);
	fd = memfd_with(b.data, b.len);
	buf_release(&b);
	return fd;
}

static int decode(int fd, double max_s, struct audio_pcm *out, char *err, size_t errlen)
{
	struct audio_in_opts o = {.rate = 16000, .max_seconds = max_s};

	return audio_in_decode(fd, &o, out, err, errlen);
}

/* Sign changes per second / 2 ~ the tone's frequency. */
static double zero_cross_freq(const int16_t *s, size_t n, int rate)
{
	size_t crossings = 0;

	for (size_t i = 1; i < n; i++)
		if ((s[i - 1] < 0) != (s[i] < 0))
			crossings++;
	return (double)crossings / 2.0 / ((double)n / rate);
}

static double rms(const int16_t *s, size_t n)
{
	double sum = 0;

	for (size_t i = 0; i < n; i++)
		sum += (double)s[i] * s[i];
	return sqrt(sum / (double)n);
}

static void test_wav_16k_mono_is_exact(void **state)
{
	int16_t *pcm = tone(8000, 16000, 1, 440, 12000, 0);
	int fd = encoded_fd(pcm, 8000, 16000, 1, "wav");
	struct audio_pcm out;
	char err[256] = "";

	assert_int_equal(decode(fd, 60, &out, err, sizeof(err)), 0);
	assert_int_equal(out.n, 8000);
	assert_int_equal(out.rate, 16000);
	assert_int_equal(out.src_rate, 16000);
	assert_int_equal(out.src_channels, 1);
	assert_true(fabs(out.duration - 0.5) < 1e-9);
	assert_memory_equal(out.samples, pcm, 8000 * sizeof(*pcm));
	audio_pcm_release(&out);
	assert_null(out.samples);
	close(fd);
	free(pcm);
}

static void check_resampled(const char *fmt, int rate, int channels)
{
	size_t n = (size_t)rate; /* one second */
	int16_t *pcm = tone(n, rate, channels, 440, 12000, 1.0);
	int fd = encoded_fd(pcm, n, rate, channels, fmt);
	struct audio_pcm out;
	char err[256] = "";
	double f;

	assert_int_equal(decode(fd, 60, &out, err, sizeof(err)), 0);
	/* lossy codecs may add or trim a few ms at the edges */
	assert_true(fabs((double)out.n - 16000.0) < 16000.0 * 0.02);
	assert_int_equal(out.src_rate, rate);
	assert_int_equal(out.src_channels, channels);
	f = zero_cross_freq(out.samples + 800, out.n - 1600, 16000);
	assert_true(fabs(f - 440.0) < 5.0);
	assert_true(fabs(rms(out.samples + 800, out.n - 1600) - 12000 / sqrt(2.0)) < 1000);
	audio_pcm_release(&out);
	close(fd);
	free(pcm);
}

static void test_resample_wav_44k_stereo(void **state)
{
	check_resampled("wav", 44100, 2);
}

static void test_resample_flac_48k(void **state)
{
	check_resampled("flac", 48000, 1);
}

static void test_resample_ogg_22k_stereo(void **state)
{
	check_resampled("ogg", 22050, 2);
}

static void test_resample_mp3_8k(void **state)
{
	if (!media_audio_format_supported("mp3", 8000, 1))
		skip();
	check_resampled("mp3", 8000, 1);
}

static void test_stereo_is_averaged(void **state)
{
	/* left a tone, right silent: the mono mix is the tone at half level */
	int16_t *pcm = tone(16000, 16000, 2, 300, 16000, 0.0);
	int fd = encoded_fd(pcm, 16000, 16000, 2, "wav");
	struct audio_pcm out;
	char err[256] = "";

	assert_int_equal(decode(fd, 60, &out, err, sizeof(err)), 0);
	assert_int_equal(out.n, 16000);
	for (size_t i = 0; i < out.n; i++)
		assert_true(abs(out.samples[i] - pcm[2 * i] / 2) <= 1);
	audio_pcm_release(&out);
	close(fd);
	free(pcm);
}

static void test_not_audio(void **state)
{
	const char text[] = "this is plainly not an audio file, just some text\n";
	int fd = memfd_with(text, sizeof(text) - 1);
	struct audio_pcm out;
	char err[256] = "";

	assert_int_equal(decode(fd, 60, &out, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "not audio"));
	assert_null(out.samples);
	close(fd);
}

static void test_empty(void **state)
{
	int fd = memfd_with("", 0);
	struct audio_pcm out;
	char err[256] = "";

	assert_int_equal(decode(fd, 60, &out, err, sizeof(err)), -ENODATA);
	assert_non_null(strstr(err, "empty"));
	close(fd);
}

static void test_no_samples(void **state)
{
	struct buf b;
	int16_t none = 0;
	int fd;
	struct audio_pcm out;
	char err[256] = "";

	buf_init(&b, BUF_UNLIMITED);
	assert_int_equal(media_encode_audio(&none, 0, 16000, 1, "wav", &b), 0);
	fd = memfd_with(b.data, b.len);
	buf_release(&b);
	assert_int_equal(decode(fd, 60, &out, err, sizeof(err)), -ENODATA);
	assert_non_null(strstr(err, "no audio"));
	close(fd);
}

static void check_truncated(const char *fmt, size_t keep_num, size_t keep_den)
{
	int16_t *pcm = tone(32000, 16000, 1, 440, 12000, 0);
	struct buf b;
	int fd;
	struct audio_pcm out;
	char err[256] = "";

	buf_init(&b, BUF_UNLIMITED);
	assert_int_equal(media_encode_audio(pcm, 32000, 16000, 1, fmt, &b), 0);
	fd = memfd_with(b.data, b.len * keep_num / keep_den);
	buf_release(&b);
	assert_int_equal(decode(fd, 60, &out, err, sizeof(err)), -EIO);
	if (!strstr(err, "truncated"))
		fail_msg("%s: %s", fmt, err);
	assert_null(out.samples);
	close(fd);
	free(pcm);
}

static void test_truncated_wav(void **state)
{
	check_truncated("wav", 6, 10);
}

static void test_truncated_flac(void **state)
{
	check_truncated("flac", 6, 10);
}

static void test_truncated_ogg(void **state)
{
	check_truncated("ogg", 6, 10);
	check_truncated("ogg", 20, 100);
}

static void test_ogg_cut_by_one_byte(void **state)
{
	int16_t *pcm = tone(16000, 16000, 1, 440, 12000, 0);
	struct buf b;
	int fd;
	struct audio_pcm out;
	char err[256] = "";

	buf_init(&b, BUF_UNLIMITED);
	assert_int_equal(media_encode_audio(pcm, 16000, 16000, 1, "ogg", &b), 0);
	fd = memfd_with(b.data, b.len - 1);
	assert_int_equal(decode(fd, 60, &out, err, sizeof(err)), -EIO);
	assert_non_null(strstr(err, "Ogg"));
	close(fd);
	fd = memfd_with(b.data, b.len);
	assert_int_equal(decode(fd, 60, &out, err, sizeof(err)), 0);
	audio_pcm_release(&out);
	close(fd);
	buf_release(&b);
	free(pcm);
}

static void test_too_long_from_header(void **state)
{
	int16_t *pcm = tone(48000, 16000, 1, 440, 12000, 0);
	int fd = encoded_fd(pcm, 48000, 16000, 1, "flac");
	struct audio_pcm out;
	char err[256] = "";

	assert_int_equal(decode(fd, 2.0, &out, err, sizeof(err)), -EFBIG);
	assert_non_null(strstr(err, "MAX_AUDIO_DURATION_SECONDS"));
	assert_non_null(strstr(err, "3.0 s"));
	close(fd);
	free(pcm);
}

static void test_streaming_wav_is_bounded(void **state)
{
	/* a streaming WAV (sizes 0xFFFFFFFF): the length comes from the data */
	int16_t *pcm = tone(48000, 16000, 1, 440, 12000, 0);
	struct buf b;
	int fd;
	struct audio_pcm out;
	char err[256] = "";

	buf_init(&b, BUF_UNLIMITED);
	assert_int_equal(media_encode_audio(pcm, 48000, 16000, 1, "wav", &b), 0);
	memset(b.data + 4, 0xff, 4);
	memset(b.data + 40, 0xff, 4);
	fd = memfd_with(b.data, b.len);
	buf_release(&b);
	assert_int_equal(decode(fd, 60, &out, err, sizeof(err)), 0);
	assert_int_equal(out.n, 48000);
	audio_pcm_release(&out);
	assert_int_equal(decode(fd, 2.0, &out, err, sizeof(err)), -EFBIG);
	assert_non_null(strstr(err, "the limit is 2 s (MAX_AUDIO_DURATION_SECONDS)"));
	close(fd);
	free(pcm);
}

static int progress_calls;

static void count_progress(void *arg)
{
	progress_calls++;
}

static void test_progress_and_fd_offset(void **state)
{
	int16_t *pcm = tone(16000 * 10, 16000, 1, 440, 12000, 0);
	int fd = encoded_fd(pcm, 16000 * 10, 16000, 1, "wav");
	struct audio_in_opts o = {.rate = 16000, .progress = count_progress};
	struct audio_pcm out;
	char err[256] = "";

	/* the fd's offset is at the end after writing: decoding must not care */
	progress_calls = 0;
	assert_int_equal(audio_in_decode(fd, &o, &out, err, sizeof(err)), 0);
	assert_int_equal(out.n, 160000);
	assert_true(progress_calls >= 2);
	assert_int_equal(lseek(fd, 0, SEEK_CUR), lseek(fd, 0, SEEK_END));
	audio_pcm_release(&out);
	close(fd);
	free(pcm);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_wav_16k_mono_is_exact),
	    cmocka_unit_test(test_resample_wav_44k_stereo),
	    cmocka_unit_test(test_resample_flac_48k),
	    cmocka_unit_test(test_resample_ogg_22k_stereo),
	    cmocka_unit_test(test_resample_mp3_8k),
	    cmocka_unit_test(test_stereo_is_averaged),
	    cmocka_unit_test(test_not_audio),
	    cmocka_unit_test(test_empty),
	    cmocka_unit_test(test_no_samples),
	    cmocka_unit_test(test_truncated_wav),
	    cmocka_unit_test(test_truncated_flac),
	    cmocka_unit_test(test_truncated_ogg),
	    cmocka_unit_test(test_ogg_cut_by_one_byte),
	    cmocka_unit_test(test_too_long_from_header),
	    cmocka_unit_test(test_streaming_wav_is_bounded),
	    cmocka_unit_test(test_progress_and_fd_offset),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
