/* test_media.c: unit tests for src/media.c.
 *
 * Every encoder's output is read back with the library on the other side
 * (spng, turbojpeg, libsndfile, libavformat/libavcodec) from memory, and
 * compared with what went in. Outputs are appended after a prefix already in
 * the buf, so the tests also check that encoders leave earlier bytes alone
 * and that their seeks are relative to where their output starts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <sndfile.h>
#include <spng.h>
#include <turbojpeg.h>

#include "buf.h"
#include "media.h"
#include "util.h"

#define PREFIX "prefix:"
#define PREFIX_LEN (sizeof(PREFIX) - 1)

/* A gradient with some texture: smooth enough for JPEG, not constant. */
static uint8_t *make_image(int w, int h, int seed)
{
	uint8_t *rgb = xmalloc((size_t)w * (size_t)h * 3);

	for (int y = 0; y < h; y++) {
		for (int x = 0; x < w; x++) {
			uint8_t *p = rgb + ((size_t)y * (size_t)w + (size_t)x) * 3;

			p[0] = (uint8_t)(x * 255 / (w > 1 ? w - 1 : 1));
			p[1] = (uint8_t)(y * 255 / (h > 1 ? h - 1 : 1));
			p[2] = (uint8_t)((x + y + seed * 16) & 0xff);
		}
	}
	return rgb;
}

static void buf_with_prefix(struct buf *b, size_t max)
{
	buf_init(b, max);
	assert_int_equal(buf_append(b, PREFIX, PREFIX_LEN), 0);
}

static void assert_prefix_only(const struct buf *b)
{
	assert_int_equal(b->len, PREFIX_LEN);
	assert_memory_equal(b->data, PREFIX, PREFIX_LEN);
	assert_int_equal(b->data[b->len], 0);
}

/* ---- images ---- */

static void test_png_roundtrip(void **state)
{
	const int w = 37, h = 23;
	uint8_t *rgb = make_image(w, h, 1);
	struct buf b;
	spng_ctx *ctx;
	size_t size = 0;
	uint8_t *dec;
	uint32_t dw, dh;
	struct spng_ihdr ihdr;

	buf_with_prefix(&b, BUF_UNLIMITED);
	assert_int_equal(media_encode_png(rgb, w, h, &b), 0);
	assert_memory_equal(b.data, PREFIX, PREFIX_LEN);
	assert_memory_equal(b.data + PREFIX_LEN, "\x89PNG\r\n\x1a\n", 8);

	ctx = spng_ctx_new(0);
	assert_non_null(ctx);
	assert_int_equal(spng_set_png_buffer(ctx, b.data + PREFIX_LEN, b.len - PREFIX_LEN), 0);
	assert_int_equal(spng_get_ihdr(ctx, &ihdr), 0);
	dw = ihdr.width;
	dh = ihdr.height;
	assert_int_equal(dw, w);
	assert_int_equal(dh, h);
	assert_int_equal(spng_decoded_image_size(ctx, SPNG_FMT_RGB8, &size), 0);
	assert_int_equal(size, (size_t)w * h * 3);
	dec = xmalloc(size);
	assert_int_equal(spng_decode_image(ctx, dec, size, SPNG_FMT_RGB8, 0), 0);
	assert_memory_equal(dec, rgb, size);
	free(dec);
	spng_ctx_free(ctx);
	buf_release(&b);
	free(rgb);
}

static void test_png_invalid(void **state)
{
	uint8_t *rgb = make_image(4, 4, 0);
	struct buf b;

	buf_with_prefix(&b, BUF_UNLIMITED);
	assert_int_equal(media_encode_png(NULL, 4, 4, &b), -EINVAL);
	assert_int_equal(media_encode_png(rgb, 4, 4, NULL), -EINVAL);
	assert_int_equal(media_encode_png(rgb, 0, 4, &b), -EINVAL);
	assert_int_equal(media_encode_png(rgb, 4, -1, &b), -EINVAL);
	assert_int_equal(media_encode_png(rgb, MEDIA_MAX_DIM + 1, 4, &b), -EINVAL);
	assert_int_equal(media_encode_png(rgb, 4, MEDIA_MAX_DIM + 1, &b), -EINVAL);
	assert_prefix_only(&b);
	buf_release(&b);
	free(rgb);
}

static void test_png_ceiling(void **state)
{
	const int w = 64, h = 64;
	uint8_t *rgb = make_image(w, h, 2);
	struct buf b;

	buf_with_prefix(&b, PREFIX_LEN + 40);
	assert_int_equal(media_encode_png(rgb, w, h, &b), -ENOSPC);
	assert_prefix_only(&b);
	buf_release(&b);
	free(rgb);
}

static double jpeg_mae(const uint8_t *rgb, int w, int h, const struct buf *b, size_t off)
{
	tjhandle tj = tjInitDecompress();
	size_t n = (size_t)w * h * 3;
	uint8_t *dec = xmalloc(n);
	int dw = 0, dh = 0, sub = 0, cs = 0;
	double sum = 0;

	assert_non_null(tj);
	assert_int_equal(tjDecompressHeader3(tj, (const unsigned char *)b->data + off,
					     b->len - off, &dw, &dh, &sub, &cs), 0);
	assert_int_equal(dw, w);
	assert_int_equal(dh, h);
	assert_int_equal(sub, TJSAMP_420);
	assert_int_equal(tjDecompress2(tj, (const unsigned char *)b->data + off, b->len - off, dec,
				       w, 0, h, TJPF_RGB, 0), 0);
	for (size_t i = 0; i < n; i++)
		sum += abs((int)dec[i] - (int)rgb[i]);
	free(dec);
	tjDestroy(tj);
	return sum / (double)n;
}

static void test_jpeg(void **state)
{
	const int w = 96, h = 64;
	uint8_t *rgb = make_image(w, h, 3);
	struct buf hi, lo;

	buf_with_prefix(&hi, BUF_UNLIMITED);
	buf_init(&lo, BUF_UNLIMITED);
	assert_int_equal(media_encode_jpeg(rgb, w, h, 95, &hi), 0);
	assert_int_equal(media_encode_jpeg(rgb, w, h, 50, &lo), 0);
	assert_memory_equal(hi.data, PREFIX, PREFIX_LEN);
	assert_true(jpeg_mae(rgb, w, h, &hi, PREFIX_LEN) < 3.0);
	assert_true(lo.len < hi.len - PREFIX_LEN);
	buf_release(&hi);
	buf_release(&lo);
	free(rgb);
}

static void test_jpeg_invalid_and_ceiling(void **state)
{
	const int w = 32, h = 32;
	uint8_t *rgb = make_image(w, h, 4);
	struct buf b;

	buf_with_prefix(&b, PREFIX_LEN + 64);
	assert_int_equal(media_encode_jpeg(rgb, w, h, 0, &b), -EINVAL);
	assert_int_equal(media_encode_jpeg(rgb, w, h, 101, &b), -EINVAL);
	assert_int_equal(media_encode_jpeg(NULL, w, h, 80, &b), -EINVAL);
	assert_int_equal(media_encode_jpeg(rgb, w, 0, 80, &b), -EINVAL);
	assert_int_equal(media_encode_jpeg(rgb, w, h, 80, &b), -ENOSPC);
	assert_prefix_only(&b);
	buf_release(&b);
	free(rgb);
}

/* ---- audio ---- */

#define AUDIO_RATE 16000
#define AUDIO_FRAMES 8000

struct memreader {
	const unsigned char *p;
	sf_count_t len, pos;
};

static sf_count_t mr_filelen(void *user)
{
	return ((struct memreader *)user)->len;
}

static sf_count_t mr_seek(sf_count_t off, int whence, void *user)
{
	struct memreader *m = user;
	sf_count_t to = whence == SEEK_SET ? off : whence == SEEK_CUR ? m->pos + off : m->len + off;

	if (to < 0)
		return -1;
	m->pos = to;
	return to;
}

static sf_count_t mr_read(void *ptr, sf_count_t count, void *user)
{
	struct memreader *m = user;
	sf_count_t n = m->pos < m->len ? MIN(count, m->len - m->pos) : 0;

	if (n > 0)
		memcpy(ptr, m->p + m->pos, (size_t)n);
	m->pos += n;
	return n;
}

static sf_count_t mr_write(const void *ptr, sf_count_t count, void *user)
{
	return 0;
}

static sf_count_t mr_tell(void *user)
{
	return ((struct memreader *)user)->pos;
}

/* Decode the audio file in b (after off) into a new array; fills *info. */
static int16_t *sf_decode(const struct buf *b, size_t off, SF_INFO *info)
{
	SF_VIRTUAL_IO vio = {mr_filelen, mr_seek, mr_read, mr_write, mr_tell};
	struct memreader mr = {(const unsigned char *)b->data + off, (sf_count_t)(b->len - off), 0};
	SNDFILE *sf;
	int16_t *pcm;
	sf_count_t got;

	memset(info, 0, sizeof(*info));
	sf = sf_open_virtual(&vio, SFM_READ, info, &mr);
	if (!sf)
		fail_msg("sf_open_virtual: %s", sf_strerror(NULL));
	pcm = xcalloc((size_t)info->frames + 1, sizeof(int16_t) * (size_t)info->channels);
	got = sf_readf_short(sf, pcm, info->frames);
	assert_int_equal(got, info->frames);
	sf_close(sf);
	return pcm;
}

static int16_t *make_sine(size_t frames, int channels)
{
	int16_t *pcm = xmalloc(frames * (size_t)channels * sizeof(int16_t));

	for (size_t i = 0; i < frames; i++)
		for (int c = 0; c < channels; c++)
			pcm[i * (size_t)channels + (size_t)c] = (int16_t)lrint(
				12000.0 * sin(2 * M_PI * 1000.0 * (double)i / AUDIO_RATE) /
				(c + 1));
	return pcm;
}

static void check_audio(const char *format, int channels, int exact)
{
	int16_t *pcm = make_sine(AUDIO_FRAMES, channels);
	struct buf b;
	SF_INFO info;
	int16_t *dec;

	buf_with_prefix(&b, BUF_UNLIMITED);
	assert_int_equal(media_encode_audio(pcm, AUDIO_FRAMES, AUDIO_RATE, channels, format, &b),
			 0);
	assert_memory_equal(b.data, PREFIX, PREFIX_LEN);
	dec = sf_decode(&b, PREFIX_LEN, &info);
	assert_int_equal(info.samplerate, AUDIO_RATE);
	assert_int_equal(info.channels, channels);
	if (exact) {
		assert_int_equal(info.frames, AUDIO_FRAMES);
		assert_memory_equal(dec, pcm, AUDIO_FRAMES * (size_t)channels * sizeof(int16_t));
	} else {
		assert_true(labs((long)info.frames - AUDIO_FRAMES) <= AUDIO_FRAMES / 100);
	}
	free(dec);
	buf_release(&b);
	free(pcm);
}

static void test_audio_wav(void **state)
{
	check_audio("wav", 1, 1);
	check_audio("WAV", 2, 1);
}

static void test_audio_flac(void **state)
{
	check_audio("flac", 1, 1);
	check_audio("flac", 2, 1);
}

static void test_audio_ogg(void **state)
{
	check_audio("ogg", 1, 0);
}

static void test_audio_mp3(void **state)
{
	int16_t *pcm = make_sine(AUDIO_FRAMES, 1);
	struct buf b;
	SF_INFO info;
	int r;

	buf_with_prefix(&b, BUF_UNLIMITED);
	r = media_encode_audio(pcm, AUDIO_FRAMES, AUDIO_RATE, 1, "mp3", &b);
	assert_true(r == 0 || r == -ENOTSUP);
	assert_int_equal(r == 0, media_audio_format_supported("mp3", AUDIO_RATE, 1));
	if (r == 0) {
		int16_t *dec = sf_decode(&b, PREFIX_LEN, &info);

		assert_int_equal(info.samplerate, AUDIO_RATE);
		assert_int_equal(info.channels, 1);
		/* The encoder adds priming and padding; the length is close. */
		assert_true(labs((long)info.frames - AUDIO_FRAMES) <= AUDIO_FRAMES / 5);
		free(dec);
	} else {
		assert_prefix_only(&b);
	}
	buf_release(&b);
	free(pcm);
}

static void test_audio_pcm(void **state)
{
	const int16_t pcm[] = {0, 1, -1, 32767, -32768, 0x1234};
	const unsigned char want[] = {0, 0, 1, 0, 0xff, 0xff, 0xff, 0x7f, 0, 0x80, 0x34, 0x12};
	struct buf b;

	buf_with_prefix(&b, BUF_UNLIMITED);
	assert_int_equal(media_encode_audio(pcm, 3, 8000, 2, "pcm", &b), 0);
	assert_int_equal(b.len, PREFIX_LEN + sizeof(want));
	assert_memory_equal(b.data + PREFIX_LEN, want, sizeof(want));
	buf_release(&b);
}

static void test_audio_invalid_and_ceiling(void **state)
{
	int16_t *pcm = make_sine(AUDIO_FRAMES, 1);
	struct buf b;

	buf_with_prefix(&b, PREFIX_LEN + 1000);
	assert_int_equal(media_encode_audio(pcm, 10, AUDIO_RATE, 1, "aiff", &b), -EINVAL);
	assert_int_equal(media_encode_audio(pcm, 10, AUDIO_RATE, 1, NULL, &b), -EINVAL);
	assert_int_equal(media_encode_audio(NULL, 10, AUDIO_RATE, 1, "wav", &b), -EINVAL);
	assert_int_equal(media_encode_audio(pcm, 10, 0, 1, "wav", &b), -EINVAL);
	assert_int_equal(media_encode_audio(pcm, 10, AUDIO_RATE, 0, "wav", &b), -EINVAL);
	assert_int_equal(media_encode_audio(pcm, 10, AUDIO_RATE, 9, "wav", &b), -EINVAL);
	assert_int_equal(media_encode_audio(pcm, 10, AUDIO_RATE, 1, "wav", NULL), -EINVAL);
	assert_prefix_only(&b);
	const char *formats[] = {"wav", "flac", "ogg", "pcm", "mp3"};
	for (size_t i = 0; i < ARRAY_SIZE(formats); i++) {
		if (!media_audio_format_supported(formats[i], AUDIO_RATE, 1))
			continue;
		assert_int_equal(media_encode_audio(pcm, AUDIO_FRAMES, AUDIO_RATE, 1, formats[i],
						    &b),
				 -ENOSPC);
		assert_prefix_only(&b);
	}
	/* Outside what the codec takes: not an error in the arguments. */
	assert_int_equal(media_encode_audio(pcm, 10, 7000, 1, "mp3", &b), -ENOTSUP);
	assert_int_equal(media_encode_audio(pcm, 10, AUDIO_RATE, 3, "mp3", &b), -ENOTSUP);
	assert_int_equal(media_encode_audio(pcm, 10, 250000, 1, "ogg", &b), -ENOTSUP);
	assert_prefix_only(&b);
	/* A header-only file fits. */
	assert_int_equal(media_encode_audio(pcm, 0, AUDIO_RATE, 1, "wav", &b), 0);
	assert_true(b.len > PREFIX_LEN);
	buf_release(&b);
	free(pcm);
}

static void test_audio_content_type(void **state)
{
	assert_string_equal(media_audio_content_type("wav"), "audio/wav");
	assert_string_equal(media_audio_content_type("flac"), "audio/flac");
	assert_string_equal(media_audio_content_type("ogg"), "audio/ogg");
	assert_string_equal(media_audio_content_type("mp3"), "audio/mpeg");
	assert_string_equal(media_audio_content_type("pcm"), "audio/pcm");
	assert_null(media_audio_content_type("json"));
	assert_null(media_audio_content_type(""));
	assert_null(media_audio_content_type(NULL));
	assert_true(media_audio_format_supported("wav", 22050, 1));
	assert_true(media_audio_format_supported("flac", 48000, 2));
	assert_true(media_audio_format_supported("ogg", 16000, 1));
	assert_true(media_audio_format_supported("pcm", 24000, 1));
	assert_false(media_audio_format_supported("json", 16000, 1));
	assert_false(media_audio_format_supported("wav", 0, 1));
	assert_false(media_audio_format_supported("wav", 16000, 0));
	assert_false(media_audio_format_supported("mp3", 7000, 1));
	assert_false(media_audio_format_supported("mp3", 16000, 3));
	assert_false(media_audio_format_supported("ogg", 250000, 1));
}

/* ---- video ---- */

#define VID_W 64
#define VID_H 48
#define VID_FRAMES 8
#define VID_FPS 8

struct avreader {
	const uint8_t *p;
	int64_t len, pos;
};

static int avr_read(void *opaque, uint8_t *dst, int size)
{
	struct avreader *r = opaque;
	int64_t n = MIN((int64_t)size, r->len - r->pos);

	if (n <= 0)
		return AVERROR_EOF;
	memcpy(dst, r->p + r->pos, (size_t)n);
	r->pos += n;
	return (int)n;
}

static int64_t avr_seek(void *opaque, int64_t off, int whence)
{
	struct avreader *r = opaque;

	if (whence & AVSEEK_SIZE)
		return r->len;
	whence &= ~AVSEEK_FORCE;
	if (whence == SEEK_CUR)
		off += r->pos;
	else if (whence == SEEK_END)
		off += r->len;
	if (off < 0 || off > r->len)
		return AVERROR(EINVAL);
	r->pos = off;
	return off;
}

static int decode_count(AVCodecContext *dec, const AVPacket *pkt, AVFrame *frame)
{
	int n = 0;

	assert_true(avcodec_send_packet(dec, pkt) >= 0);
	while (avcodec_receive_frame(dec, frame) >= 0) {
		assert_int_equal(frame->width, VID_W);
		assert_int_equal(frame->height, VID_H);
		n++;
	}
	return n;
}

/* Open the MP4 from memory; check its one stream and count decoded frames. */
static int mp4_count_frames(const uint8_t *data, size_t len)
{
	struct avreader rd = {data, (int64_t)len, 0};
	uint8_t *iobuf = av_malloc(4096);
	AVIOContext *pb = avio_alloc_context(iobuf, 4096, 0, &rd, avr_read, NULL, avr_seek);
	AVFormatContext *fc = avformat_alloc_context();
	const AVCodec *codec;
	AVCodecContext *dec;
	AVPacket *pkt = av_packet_alloc();
	AVFrame *frame = av_frame_alloc();
	AVStream *st;
	int n = 0;

	fc->pb = pb;
	assert_int_equal(avformat_open_input(&fc, NULL, NULL, NULL), 0);
	assert_true(avformat_find_stream_info(fc, NULL) >= 0);
	assert_int_equal(fc->nb_streams, 1);
	st = fc->streams[0];
	assert_int_equal(st->codecpar->codec_type, AVMEDIA_TYPE_VIDEO);
	assert_int_equal(st->codecpar->width, VID_W);
	assert_int_equal(st->codecpar->height, VID_H);
	assert_int_equal(st->nb_frames, VID_FRAMES);
	codec = avcodec_find_decoder(st->codecpar->codec_id);
	assert_non_null(codec);
	dec = avcodec_alloc_context3(codec);
	assert_true(avcodec_parameters_to_context(dec, st->codecpar) >= 0);
	assert_int_equal(avcodec_open2(dec, codec, NULL), 0);
	while (av_read_frame(fc, pkt) >= 0) {
		n += decode_count(dec, pkt, frame);
		av_packet_unref(pkt);
	}
	n += decode_count(dec, NULL, frame);
	avcodec_free_context(&dec);
	av_frame_free(&frame);
	av_packet_free(&pkt);
	avformat_close_input(&fc);
	av_freep(&pb->buffer);
	avio_context_free(&pb);
	return n;
}

/* Offset of the first top-level box of the given type, or -1. */
static long mp4_box(const uint8_t *p, size_t len, const char *type)
{
	size_t off = 0;

	while (off + 8 <= len) {
		uint32_t size = (uint32_t)p[off] << 24 | (uint32_t)p[off + 1] << 16 |
				(uint32_t)p[off + 2] << 8 | p[off + 3];

		if (!memcmp(p + off + 4, type, 4))
			return (long)off;
		if (size < 8)
			return -1;
		off += size;
	}
	return -1;
}

static uint8_t *make_frames(void)
{
	size_t fb = (size_t)VID_W * VID_H * 3;
	uint8_t *frames = xmalloc(fb * VID_FRAMES);

	for (int i = 0; i < VID_FRAMES; i++) {
		uint8_t *img = make_image(VID_W, VID_H, i);

		memcpy(frames + (size_t)i * fb, img, fb);
		free(img);
	}
	return frames;
}

static void test_mp4(void **state)
{
	uint8_t *frames = make_frames();
	struct buf b, again;
	const uint8_t *mp4;
	size_t len;
	long moov, mdat;

	buf_with_prefix(&b, BUF_UNLIMITED);
	assert_int_equal(media_encode_mp4(frames, VID_FRAMES, VID_W, VID_H, VID_FPS, &b), 0);
	assert_memory_equal(b.data, PREFIX, PREFIX_LEN);
	mp4 = (const uint8_t *)b.data + PREFIX_LEN;
	len = b.len - PREFIX_LEN;
	assert_int_equal(mp4_box(mp4, len, "ftyp"), 0);
	moov = mp4_box(mp4, len, "moov");
	mdat = mp4_box(mp4, len, "mdat");
	assert_true(moov > 0 && mdat > moov);
	assert_int_equal(mp4_count_frames(mp4, len), VID_FRAMES);

	/* Deterministic: the same frames give the same bytes. */
	buf_init(&again, BUF_UNLIMITED);
	assert_int_equal(media_encode_mp4(frames, VID_FRAMES, VID_W, VID_H, VID_FPS, &again), 0);
	assert_int_equal(again.len, len);
	assert_memory_equal(again.data, mp4, len);
	buf_release(&again);
	buf_release(&b);
	free(frames);
}

static void test_mp4_invalid_and_ceiling(void **state)
{
	uint8_t *frames = make_frames();
	struct buf b;

	buf_with_prefix(&b, PREFIX_LEN + 600);
	assert_int_equal(media_encode_mp4(NULL, 1, VID_W, VID_H, VID_FPS, &b), -EINVAL);
	assert_int_equal(media_encode_mp4(frames, 0, VID_W, VID_H, VID_FPS, &b), -EINVAL);
	assert_int_equal(media_encode_mp4(frames, 1, VID_W - 1, VID_H, VID_FPS, &b), -EINVAL);
	assert_int_equal(media_encode_mp4(frames, 1, VID_W, VID_H + 1, VID_FPS, &b), -EINVAL);
	assert_int_equal(media_encode_mp4(frames, 1, VID_W, VID_H, 0, &b), -EINVAL);
	assert_int_equal(media_encode_mp4(frames, 1, VID_W, VID_H, VID_FPS, NULL), -EINVAL);
	assert_prefix_only(&b);
	assert_int_equal(media_encode_mp4(frames, VID_FRAMES, VID_W, VID_H, VID_FPS, &b),
			 -ENOSPC);
	assert_prefix_only(&b);
	buf_release(&b);
	free(frames);
}

/* ---- base64 ---- */

static void test_base64_roundtrip(void **state)
{
	unsigned char data[70];

	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (unsigned char)(i * 37 + 11);
	for (size_t len = 0; len <= sizeof(data); len++) {
		struct buf enc, dec;

		buf_init(&enc, BUF_UNLIMITED);
		buf_with_prefix(&dec, BUF_UNLIMITED);
		assert_int_equal(media_base64_encode(data, len, &enc), 0);
		assert_int_equal(enc.len, (len + 2) / 3 * 4);
		assert_int_equal(strlen(enc.data ? enc.data : ""), enc.len);
		assert_int_equal(media_base64_decode(enc.data, enc.len, &dec), 0);
		assert_int_equal(dec.len, PREFIX_LEN + len);
		assert_memory_equal(dec.data + PREFIX_LEN, data, len);

		/* The same without padding. */
		size_t unpadded = enc.len;
		while (unpadded && enc.data[unpadded - 1] == '=')
			unpadded--;
		buf_reset(&dec);
		assert_int_equal(media_base64_decode(enc.data, unpadded, &dec), 0);
		assert_int_equal(dec.len, len);
		if (len)
			assert_memory_equal(dec.data, data, len);
		buf_release(&enc);
		buf_release(&dec);
	}
}

static void test_base64_vectors(void **state)
{
	static const char *const vec[][2] = {
		{"", ""}, {"f", "Zg=="}, {"fo", "Zm8="}, {"foo", "Zm9v"},
		{"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="}, {"foobar", "Zm9vYmFy"},
	};
	struct buf b;

	buf_init(&b, BUF_UNLIMITED);
	for (size_t i = 0; i < ARRAY_SIZE(vec); i++) {
		buf_reset(&b);
		assert_int_equal(media_base64_encode(vec[i][0], strlen(vec[i][0]), &b), 0);
		assert_int_equal(b.len, strlen(vec[i][1]));
		if (b.len)
			assert_string_equal(b.data, vec[i][1]);
	}
	buf_reset(&b);
	assert_int_equal(media_base64_decode("Zg", 2, &b), 0);
	assert_int_equal(b.len, 1);
	assert_string_equal(b.data, "f");
	assert_int_equal(media_base64_encode(NULL, 0, &b), 0);
	assert_int_equal(media_base64_decode(NULL, 0, &b), 0);
	assert_int_equal(b.len, 1);
	assert_int_equal(media_base64_encode(NULL, 1, &b), -EINVAL);
	assert_int_equal(media_base64_encode("x", 1, NULL), -EINVAL);
	buf_release(&b);
}

static void test_base64_junk(void **state)
{
	static const char *const junk[] = {
		"Z", "Zg=", "Zg=a", "Zm9v!mFy", "Zm9vYmFy\n", " Zm9v", "Zh==", "Zm9=",
		"====", "Zg==Zg==", "Zm9vY", "Zm-_", "Zm9vYmF=y", "Z===",
	};
	struct buf b;

	buf_with_prefix(&b, BUF_UNLIMITED);
	for (size_t i = 0; i < ARRAY_SIZE(junk); i++) {
		int r = media_base64_decode(junk[i], strlen(junk[i]), &b);

		if (r != -EINVAL)
			fail_msg("\"%s\" decoded (%d)", junk[i], r);
		assert_prefix_only(&b);
	}
	/* A NUL inside the given length is junk too. */
	assert_int_equal(media_base64_decode("Zm\0v", 4, &b), -EINVAL);
	assert_prefix_only(&b);
	buf_release(&b);
}

static void test_base64_ceiling(void **state)
{
	struct buf b;

	buf_with_prefix(&b, PREFIX_LEN + 7);
	assert_int_equal(media_base64_encode("foobar", 6, &b), -ENOSPC);
	assert_prefix_only(&b);
	assert_int_equal(media_base64_encode("fooba", 5, &b), -ENOSPC);
	assert_prefix_only(&b);
	buf_reset(&b);
	assert_int_equal(media_base64_encode("foo", 3, &b), 0);
	assert_string_equal(b.data, "Zm9v");
	buf_release(&b);

	/* Decoding to exactly the ceiling fits: no slack is reserved. */
	buf_init(&b, 4);
	assert_int_equal(media_base64_decode("Zm9vYg==", 8, &b), 0);
	assert_int_equal(b.len, 4);
	assert_int_equal(media_base64_decode("Zg", 2, &b), -ENOSPC);
	assert_int_equal(b.len, 4);
	buf_release(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_png_roundtrip),
		cmocka_unit_test(test_png_invalid),
		cmocka_unit_test(test_png_ceiling),
		cmocka_unit_test(test_jpeg),
		cmocka_unit_test(test_jpeg_invalid_and_ceiling),
		cmocka_unit_test(test_audio_wav),
		cmocka_unit_test(test_audio_flac),
		cmocka_unit_test(test_audio_ogg),
		cmocka_unit_test(test_audio_mp3),
		cmocka_unit_test(test_audio_pcm),
		cmocka_unit_test(test_audio_invalid_and_ceiling),
		cmocka_unit_test(test_audio_content_type),
		cmocka_unit_test(test_mp4),
		cmocka_unit_test(test_mp4_invalid_and_ceiling),
		cmocka_unit_test(test_base64_roundtrip),
		cmocka_unit_test(test_base64_vectors),
		cmocka_unit_test(test_base64_junk),
		cmocka_unit_test(test_base64_ceiling),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
