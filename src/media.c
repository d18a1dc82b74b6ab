/* media.c: PNG, JPEG, audio, MP4 and base64 encoding into a struct buf.
 *
 * Every encoder writes through a "memfile": a seekable file view of the tail
 * of a struct buf, starting where the output begins. Libraries that need to
 * seek back to patch headers (WAV sizes, the MP4 moov atom) get seek and
 * tell; every write goes through buf_reserve, so the buf's ceiling stops an
 * oversized output as soon as it passes the limit. On failure the buf is cut
 * back to its length at entry. */
#include "media.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/log.h>
#include <libswscale/swscale.h>
#include <sndfile.h>
#include <sodium.h>
#include <spng.h>
#include <turbojpeg.h>

#include "log.h"
#include "util.h"

/* Size of the I/O buffers handed to libavformat. */
#define MEDIA_AVIO_BUF 65536
#define MEDIA_MAX_CHANNELS 8
#define MEDIA_MAX_RATE 384000
#define MEDIA_MAX_FPS 240
/* Readable bytes swscale may need past the end of its input. */
#define MEDIA_SWS_PAD 64
/* Frames handed to libsndfile per call, so a full buf stops the encoder. */
#define MEDIA_AUDIO_CHUNK ((size_t)16384)

/* ---- memfile: a seekable file over the tail of a struct buf ---- */

struct memfile {
	struct buf *b;
	size_t base;	/* offset of the file's first byte in b->data */
	size_t pos;	/* current position, relative to base */
	int err;	/* first write error (-ENOSPC), 0 if none */
	int sink;	/* once full, drop writes but report success */
};

static void memfile_init(struct memfile *m, struct buf *b)
{
	m->b = b;
	m->base = b->len;
	m->pos = 0;
	m->err = 0;
	m->sink = 0;
}

static size_t memfile_size(const struct memfile *m)
{
	return m->b->len - m->base;
}

/* Note a full buf. In sink mode the write "succeeds" (the position moves,
 * nothing is stored) and so do all later ones: the caller reports m->err
 * when the library is done. */
static int memfile_full(struct memfile *m, size_t n)
{
	if (!m->err)
		m->err = -ENOSPC;
	if (!m->sink)
		return -ENOSPC;
	m->pos = n > SIZE_MAX - m->pos ? SIZE_MAX : m->pos + n;
	return 0;
}

/* Write n bytes at the current position, growing the file (a gap left by a
 * seek past the end reads as zeros). 0 or -ENOSPC, which is also kept in
 * m->err so callers behind a library can tell a full buf from other errors. */
static int memfile_write(struct memfile *m, const void *p, size_t n)
{
	struct buf *b = m->b;
	size_t size = memfile_size(m);
	size_t end;

	if (!n)
		return 0;
	if (n > SIZE_MAX - m->pos || (m->err && m->sink))
		return memfile_full(m, n);
	end = m->pos + n;
	if (end > size) {
		if (buf_reserve(b, end - size))
			return memfile_full(m, n);
		if (m->pos > size)
			memset(b->data + b->len, 0, m->pos - size);
		b->len = m->base + end;
		b->data[b->len] = 0;
	}
	memcpy(b->data + m->base + m->pos, p, n);
	m->pos = end;
	return 0;
}

/* Read up to n bytes from the current position; returns the count (0 at or
 * past the end). */
static size_t memfile_read(struct memfile *m, void *p, size_t n)
{
	size_t size = memfile_size(m);
	size_t avail = size > m->pos ? size - m->pos : 0;

	n = MIN(n, avail);
	if (n)
		memcpy(p, m->b->data + m->base + m->pos, n);
	m->pos += n;
	return n;
}

/* lseek(2) semantics: seeking past the end is allowed. Returns the new
 * position or -EINVAL. */
static int64_t memfile_seek(struct memfile *m, int64_t off, int whence)
{
	int64_t origin, target;

	switch (whence) {
	case SEEK_SET:
		origin = 0;
		break;
	case SEEK_CUR:
		origin = (int64_t)m->pos;
		break;
	case SEEK_END:
		origin = (int64_t)memfile_size(m);
		break;
	default:
		return -EINVAL;
	}
	if (__builtin_add_overflow(origin, off, &target) || target < 0 ||
	    (uint64_t)target > SIZE_MAX)
		return -EINVAL;
	m->pos = (size_t)target;
	return target;
}

/* Cut b back to len bytes (its length before a failed encode). */
static void media_buf_restore(struct buf *b, size_t len)
{
	b->len = len;
	if (b->data)
		b->data[len] = 0;
}

static int media_check_dims(int w, int h)
{
	if (w <= 0 || h <= 0 || w > MEDIA_MAX_DIM || h > MEDIA_MAX_DIM)
		return -EINVAL;
	return 0;
}

/* ---- images ---- */

static int media_png_write(spng_ctx *ctx, void *user, void *data, size_t len)
{
	return memfile_write(user, data, len) ? SPNG_IO_ERROR : 0;
}

int media_encode_png(const uint8_t *rgb, int w, int h, struct buf *out)
{
	struct spng_ihdr ihdr = {
		.width = (uint32_t)w,
		.height = (uint32_t)h,
		.bit_depth = 8,
		.color_type = SPNG_COLOR_TYPE_TRUECOLOR,
	};
	struct memfile mf;
	spng_ctx *ctx;
	int r;

	if (!rgb || !out || media_check_dims(w, h))
		return -EINVAL;
	ctx = spng_ctx_new(SPNG_CTX_ENCODER);
	if (!ctx)
		return -EIO;
	memfile_init(&mf, out);
	r = spng_set_png_stream(ctx, media_png_write, &mf);
	if (!r)
		r = spng_set_ihdr(ctx, &ihdr);
	if (!r)
		r = spng_encode_image(ctx, rgb, (size_t)w * (size_t)h * 3, SPNG_FMT_PNG,
				      SPNG_ENCODE_FINALIZE);
	spng_ctx_free(ctx);
	if (!r)
		return 0;
	media_buf_restore(out, mf.base);
	if (mf.err)
		return mf.err;
	log_warn("png encode: %s", spng_strerror(r));
	return -EIO;
}

int media_encode_jpeg(const uint8_t *rgb, int w, int h, int quality, struct buf *out)
{
	unsigned char *jpeg = NULL;
	unsigned long size = 0;
	tjhandle tj;
	int r;

	if (!rgb || !out || media_check_dims(w, h) || quality < 1 || quality > 100)
		return -EINVAL;
	tj = tjInitCompress();
	if (!tj)
		return -EIO;
	if (tjCompress2(tj, rgb, w, 0, h, TJPF_RGB, &jpeg, &size, TJSAMP_420, quality, 0)) {
		log_warn("jpeg encode: %s", tjGetErrorStr2(tj));
		r = -EIO;
	} else {
		r = buf_append(out, jpeg, size);
	}
	tjFree(jpeg);
	tjDestroy(tj);
	return r;
}

/* ---- audio ---- */

struct media_audio_format {
	const char *name;
	const char *content_type;
	int sf_format;		/* 0: raw PCM, written without libsndfile */
	int max_rate;		/* the codec's limits, within ours */
	int max_channels;
	const int *rates;	/* the only rates it takes (0-ended), or NULL */
};

/* MPEG-1, 2 and 2.5 layer III; LAME writes mono and stereo only. */
static const int media_mp3_rates[] = {8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100,
				      48000, 0};

static const struct media_audio_format media_audio_formats[] = {
	{"wav", "audio/wav", SF_FORMAT_WAV | SF_FORMAT_PCM_16, MEDIA_MAX_RATE,
	 MEDIA_MAX_CHANNELS, NULL},
	{"flac", "audio/flac", SF_FORMAT_FLAC | SF_FORMAT_PCM_16, MEDIA_MAX_RATE,
	 MEDIA_MAX_CHANNELS, NULL},
	/* libvorbisenc has no setup above 200 kHz. */
	{"ogg", "audio/ogg", SF_FORMAT_OGG | SF_FORMAT_VORBIS, 200000, MEDIA_MAX_CHANNELS,
	 NULL},
	{"mp3", "audio/mpeg", SF_FORMAT_MPEG | SF_FORMAT_MPEG_LAYER_III, 48000, 2,
	 media_mp3_rates},
	{"pcm", "audio/pcm", 0, MEDIA_MAX_RATE, MEDIA_MAX_CHANNELS, NULL},
};

static const struct media_audio_format *media_audio_find(const char *name)
{
	if (!name)
		return NULL;
	for (size_t i = 0; i < ARRAY_SIZE(media_audio_formats); i++)
		if (!strcasecmp(name, media_audio_formats[i].name))
			return &media_audio_formats[i];
	return NULL;
}

const char *media_audio_content_type(const char *format)
{
	const struct media_audio_format *f = media_audio_find(format);

	return f ? f->content_type : NULL;
}

static int media_audio_params_ok(int rate, int channels)
{
	return rate >= 1 && rate <= MEDIA_MAX_RATE && channels >= 1 &&
	       channels <= MEDIA_MAX_CHANNELS;
}

/* Whether this build writes f at rate and channels (already within
 * media_audio_params_ok): the codec's own limits, then libsndfile's say. */
static int media_audio_can_write(const struct media_audio_format *f, int rate, int channels)
{
	SF_INFO info = {.samplerate = rate, .channels = channels, .format = f->sf_format};
	int listed = !f->rates;

	if (rate > f->max_rate || channels > f->max_channels)
		return 0;
	for (const int *r = f->rates; r && *r && !listed; r++)
		listed = *r == rate;
	return listed && (!f->sf_format || sf_format_check(&info));
}

int media_audio_format_supported(const char *format, int rate, int channels)
{
	const struct media_audio_format *f = media_audio_find(format);

	return f && media_audio_params_ok(rate, channels) &&
	       media_audio_can_write(f, rate, channels);
}

static sf_count_t media_sf_filelen(void *user)
{
	return (sf_count_t)memfile_size(user);
}

static sf_count_t media_sf_seek(sf_count_t offset, int whence, void *user)
{
	int64_t r = memfile_seek(user, offset, whence);

	return r < 0 ? -1 : r;
}

static sf_count_t media_sf_read(void *ptr, sf_count_t count, void *user)
{
	return count <= 0 ? 0 : (sf_count_t)memfile_read(user, ptr, (size_t)count);
}

static sf_count_t media_sf_write(const void *ptr, sf_count_t count, void *user)
{
	if (count <= 0)
		return 0;
	return memfile_write(user, ptr, (size_t)count) ? 0 : count;
}

static sf_count_t media_sf_tell(void *user)
{
	return (sf_count_t)((struct memfile *)user)->pos;
}

/* Raw little-endian 16-bit samples, whatever the host byte order. */
static int media_write_pcm(const int16_t *pcm, size_t n_samples, struct buf *out)
{
	unsigned char *p;
	int r;

	if (n_samples > SIZE_MAX / 2)
		return -ENOSPC;
	r = buf_reserve(out, n_samples * 2);
	if (r)
		return r;
	p = (unsigned char *)out->data + out->len;
	for (size_t i = 0; i < n_samples; i++) {
		uint16_t v = (uint16_t)pcm[i];

		p[2 * i] = (unsigned char)(v & 0xff);
		p[2 * i + 1] = (unsigned char)(v >> 8);
	}
	out->len += n_samples * 2;
	out->data[out->len] = 0;
	return 0;
}

static int media_write_sndfile(const int16_t *pcm, size_t n_frames, int rate, int channels,
			       int sf_format, struct buf *out)
{
	SF_VIRTUAL_IO vio = {
		.get_filelen = media_sf_filelen,
		.seek = media_sf_seek,
		.read = media_sf_read,
		.write = media_sf_write,
		.tell = media_sf_tell,
	};
	SF_INFO info = {.samplerate = rate, .channels = channels, .format = sf_format};
	struct memfile mf;
	SNDFILE *sf;
	int r = 0;

	/* libsndfile's failed-write paths leak (a failed Ogg header write is
	 * set up again at close over the first one), so a full buf does not
	 * fail its writes: they are dropped, and we stop feeding it frames. */
	memfile_init(&mf, out);
	mf.sink = 1;
	sf = sf_open_virtual(&vio, SFM_WRITE, &info, &mf);
	if (!sf) {
		log_warn("audio encode: open: %s", sf_strerror(NULL));
		r = -EIO;
		goto out;
	}
	for (size_t done = 0; done < n_frames && !mf.err && !r;) {
		sf_count_t n = (sf_count_t)MIN(n_frames - done, MEDIA_AUDIO_CHUNK);

		if (sf_writef_short(sf, pcm + done * (size_t)channels, n) != n) {
			log_warn("audio encode: write: %s", sf_strerror(sf));
			r = -EIO;
		}
		done += (size_t)n;
	}
	if (sf_close(sf) && !r)
		r = -EIO;
out:
	if (mf.err)
		r = mf.err;
	if (r)
		media_buf_restore(out, mf.base);
	return r;
}

int media_encode_audio(const int16_t *pcm, size_t n_frames, int rate, int channels,
		       const char *format, struct buf *out)
{
	const struct media_audio_format *f;

	if (!pcm || !format || !out || !media_audio_params_ok(rate, channels))
		return -EINVAL;
	f = media_audio_find(format);
	if (!f)
		return -EINVAL;
	if (n_frames > (uint64_t)INT64_MAX / (unsigned)channels ||
	    n_frames > SIZE_MAX / (size_t)channels)
		return -ENOSPC;
	if (!f->sf_format)
		return media_write_pcm(pcm, n_frames * (size_t)channels, out);
	if (!media_audio_can_write(f, rate, channels))
		return -ENOTSUP;
	return media_write_sndfile(pcm, n_frames, rate, channels, f->sf_format, out);
}

/* ---- video ---- */

/* Set once per process; racing first calls store the same values. */
static atomic_bool media_av_ready;

/* libav writes plain text to stderr by default; mediad's stderr carries one
 * JSON object per line, so its messages go through log.h instead. */
static void media_av_log(void *avcl, int level, const char *fmt, va_list vl)
{
	char line[1024];
	int prefix = 1;
	size_t n;

	if (level > av_log_get_level())
		return;
	av_log_format_line2(avcl, level, fmt, vl, line, sizeof(line), &prefix);
	n = strlen(line);
	while (n && (line[n - 1] == '\n' || line[n - 1] == ' '))
		line[--n] = 0;
	if (n)
		log_write(level <= AV_LOG_ERROR ? LOG_ERROR : LOG_WARN, NULL, NULL, "libav: %s",
			  line);
}

static void media_av_init(void)
{
	if (atomic_load_explicit(&media_av_ready, memory_order_acquire))
		return;
	av_log_set_level(AV_LOG_ERROR);
	av_log_set_callback(media_av_log);
	atomic_store_explicit(&media_av_ready, true, memory_order_release);
}

static int media_av_write(void *opaque, uint8_t *data, int size)
{
	if (size < 0)
		return AVERROR(EINVAL);
	return memfile_write(opaque, data, (size_t)size) ? AVERROR(ENOSPC) : size;
}

static int media_av_read(void *opaque, uint8_t *data, int size)
{
	size_t n = size > 0 ? memfile_read(opaque, data, (size_t)size) : 0;

	return n ? (int)n : AVERROR_EOF;
}

static int64_t media_av_seek(void *opaque, int64_t offset, int whence)
{
	int64_t r;

	if (whence & AVSEEK_SIZE)
		return (int64_t)memfile_size(opaque);
	r = memfile_seek(opaque, offset, whence & ~AVSEEK_FORCE);
	return r < 0 ? AVERROR(EINVAL) : r;
}

/* An AVIOContext over a memfile: writable, or read-only when write is 0. */
static AVIOContext *media_avio_new(struct memfile *m, int write)
{
	uint8_t *iobuf = av_malloc(MEDIA_AVIO_BUF);
	AVIOContext *pb;

	if (!iobuf)
		return NULL;
	pb = avio_alloc_context(iobuf, MEDIA_AVIO_BUF, write, m, write ? NULL : media_av_read,
				write ? media_av_write : NULL, media_av_seek);
	if (!pb)
		av_free(iobuf);
	return pb;
}

static void media_avio_free(AVIOContext **pb)
{
	if (!*pb)
		return;
	av_freep(&(*pb)->buffer);
	avio_context_free(pb);
}

/* The MP4 muxer's faststart pass reopens its output for reading to move the
 * media data up behind the moov atom. These callbacks give it a read-only
 * view of the same memory (opaque is the output memfile). */
static int media_mp4_io_open(AVFormatContext *s, AVIOContext **pb, const char *url, int flags,
			     AVDictionary **options)
{
	struct memfile *out = s->opaque;
	struct memfile *rd;

	if (!out || (flags & AVIO_FLAG_WRITE))
		return AVERROR(EPERM);
	rd = xmalloc(sizeof(*rd));
	*rd = (struct memfile){.b = out->b, .base = out->base};
	*pb = media_avio_new(rd, 0);
	if (!*pb) {
		free(rd);
		return AVERROR(ENOMEM);
	}
	return 0;
}

static int media_mp4_io_close2(AVFormatContext *s, AVIOContext *pb)
{
	free(pb->opaque);
	media_avio_free(&pb);
	return 0;
}

struct media_mp4 {
	struct memfile mf;
	AVFormatContext *oc;
	AVIOContext *pb;
	AVCodecContext *enc;
	AVStream *st;
	struct SwsContext *sws;
	AVFrame *frame;
	AVPacket *pkt;
	int w, h;
};

/* Open one encoder candidate; NULL when this codec cannot be opened. */
static AVCodecContext *media_mp4_try_codec(const AVCodec *codec, int w, int h, int fps,
					   int global_header)
{
	AVCodecContext *enc = avcodec_alloc_context3(codec);
	AVDictionary *opts = NULL;
	int r;

	if (!enc)
		return NULL;
	enc->width = w;
	enc->height = h;
	enc->pix_fmt = AV_PIX_FMT_YUV420P;
	enc->time_base = (AVRational){1, fps};
	enc->framerate = (AVRational){fps, 1};
	enc->gop_size = fps;
	enc->max_b_frames = 0;
	enc->thread_count = 1;
	enc->color_range = AVCOL_RANGE_MPEG;
	enc->colorspace = AVCOL_SPC_SMPTE170M;
	enc->flags |= AV_CODEC_FLAG_BITEXACT;
	if (global_header)
		enc->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
	if (codec->id == AV_CODEC_ID_MPEG4) {
		/* Constant quantizer: quality independent of the bit rate guess. */
		enc->flags |= AV_CODEC_FLAG_QSCALE;
		enc->global_quality = FF_QP2LAMBDA * 3;
	} else {
		/* x264 names; other H.264 encoders ignore what they lack. */
		av_dict_set(&opts, "preset", "ultrafast", 0);
		av_dict_set(&opts, "tune", "zerolatency", 0);
	}
	r = avcodec_open2(enc, codec, &opts);
	av_dict_free(&opts);
	if (r < 0)
		avcodec_free_context(&enc);
	return enc;
}

static AVCodecContext *media_mp4_open_encoder(int w, int h, int fps, int global_header)
{
	const AVCodec *cands[3];
	AVCodecContext *enc = NULL;

	cands[0] = avcodec_find_encoder_by_name("libx264");
	cands[1] = avcodec_find_encoder(AV_CODEC_ID_H264);
	cands[2] = avcodec_find_encoder(AV_CODEC_ID_MPEG4);
	for (size_t i = 0; i < ARRAY_SIZE(cands) && !enc; i++) {
		if (!cands[i] || (i && cands[i] == cands[i - 1]))
			continue;
		enc = media_mp4_try_codec(cands[i], w, h, fps, global_header);
	}
	return enc;
}

/* Muxer, stream, encoder, scaler and frame; then the file header. */
static int media_mp4_open(struct media_mp4 *m, int w, int h, int fps)
{
	AVDictionary *opts = NULL;
	int r;

	m->w = w;
	m->h = h;
	if (avformat_alloc_output_context2(&m->oc, NULL, "mp4", NULL) < 0 || !m->oc)
		return -EIO;
	m->enc = media_mp4_open_encoder(w, h, fps, !!(m->oc->oformat->flags & AVFMT_GLOBALHEADER));
	if (!m->enc) {
		log_warn("mp4 encode: no usable video encoder");
		return -EIO;
	}
	m->st = avformat_new_stream(m->oc, NULL);
	m->pb = media_avio_new(&m->mf, 1);
	m->frame = av_frame_alloc();
	m->pkt = av_packet_alloc();
	m->sws = sws_getContext(w, h, AV_PIX_FMT_RGB24, w, h, AV_PIX_FMT_YUV420P,
				SWS_BILINEAR | SWS_ACCURATE_RND | SWS_BITEXACT, NULL, NULL, NULL);
	if (!m->st || !m->pb || !m->frame || !m->pkt || !m->sws)
		return -EIO;
	if (avcodec_parameters_from_context(m->st->codecpar, m->enc) < 0)
		return -EIO;
	m->st->time_base = m->enc->time_base;
	m->st->avg_frame_rate = m->enc->framerate;
	m->frame->format = AV_PIX_FMT_YUV420P;
	m->frame->width = w;
	m->frame->height = h;
	if (av_frame_get_buffer(m->frame, 0) < 0)
		return -EIO;
	m->oc->pb = m->pb;
	m->oc->opaque = &m->mf;
	m->oc->io_open = media_mp4_io_open;
	m->oc->io_close2 = media_mp4_io_close2;
	m->oc->flags |= AVFMT_FLAG_BITEXACT;
	av_dict_set(&opts, "movflags", "+faststart", 0);
	r = avformat_write_header(m->oc, &opts);
	av_dict_free(&opts);
	return r < 0 ? -EIO : 0;
}

/* Move every packet the encoder has ready into the muxer. */
static int media_mp4_drain(struct media_mp4 *m)
{
	for (;;) {
		int r = avcodec_receive_packet(m->enc, m->pkt);

		if (r == AVERROR(EAGAIN) || r == AVERROR_EOF)
			return 0;
		if (r < 0)
			return -EIO;
		av_packet_rescale_ts(m->pkt, m->enc->time_base, m->st->time_base);
		m->pkt->stream_index = m->st->index;
		if (av_interleaved_write_frame(m->oc, m->pkt) < 0)
			return -EIO;
	}
}

static int media_mp4_frame(struct media_mp4 *m, const uint8_t *rgb, int64_t pts)
{
	const uint8_t *src[1] = {rgb};
	const int stride[1] = {m->w * 3};

	if (av_frame_make_writable(m->frame) < 0)
		return -EIO;
	sws_scale(m->sws, src, stride, 0, m->h, m->frame->data, m->frame->linesize);
	m->frame->pts = pts;
	if (avcodec_send_frame(m->enc, m->frame) < 0)
		return -EIO;
	return media_mp4_drain(m);
}

static void media_mp4_release(struct media_mp4 *m)
{
	avcodec_free_context(&m->enc);
	sws_freeContext(m->sws);
	av_frame_free(&m->frame);
	av_packet_free(&m->pkt);
	avformat_free_context(m->oc);
	media_avio_free(&m->pb);
}

int media_encode_mp4(const uint8_t *rgb_frames, int n_frames, int w, int h, int fps,
		     struct buf *out)
{
	struct media_mp4 m = {0};
	uint8_t *last = NULL;
	size_t frame_bytes;
	int r;

	if (!rgb_frames || !out || media_check_dims(w, h) || ((w | h) & 1) || n_frames < 1 ||
	    fps < 1 || fps > MEDIA_MAX_FPS)
		return -EINVAL;
	frame_bytes = (size_t)w * (size_t)h * 3;
	if ((size_t)n_frames > SIZE_MAX / frame_bytes)
		return -EINVAL;
	media_av_init();
	memfile_init(&m.mf, out);
	r = media_mp4_open(&m, w, h, fps);
	for (int i = 0; i < n_frames && !r; i++) {
		const uint8_t *src = rgb_frames + (size_t)i * frame_bytes;

		/* swscale's SIMD loads read a few bytes past the end of the
		 * last row: give it a padded copy of the caller's last frame. */
		if (i == n_frames - 1) {
			last = xmalloc(frame_bytes + MEDIA_SWS_PAD);
			memcpy(last, src, frame_bytes);
			memset(last + frame_bytes, 0, MEDIA_SWS_PAD);
			src = last;
		}
		r = media_mp4_frame(&m, src, i);
	}
	free(last);
	if (!r && avcodec_send_frame(m.enc, NULL) < 0)
		r = -EIO;
	if (!r)
		r = media_mp4_drain(&m);
	if (!r && av_write_trailer(m.oc) < 0)
		r = -EIO;
	media_mp4_release(&m);
	if (m.mf.err)
		r = m.mf.err;
	if (r)
		media_buf_restore(out, m.mf.base);
	return r;
}

/* ---- base64 ---- */

static atomic_bool media_sodium_done;

/* sodium_init() is thread-safe and idempotent; the flag only skips its lock
 * after the first success. */
static int media_sodium_ready(void)
{
	if (atomic_load_explicit(&media_sodium_done, memory_order_acquire))
		return 1;
	if (sodium_init() < 0)
		return 0;
	atomic_store_explicit(&media_sodium_done, true, memory_order_release);
	return 1;
}

int media_base64_encode(const void *data, size_t len, struct buf *out)
{
	const int variant = sodium_base64_VARIANT_ORIGINAL;
	size_t enc_len;
	int r;

	if (!out || (!data && len))
		return -EINVAL;
	if (!media_sodium_ready())
		return -EIO;
	if (len > SIZE_MAX / 4 * 3 - 3)
		return -ENOSPC;
	/* Includes the NUL that buf_reserve always leaves room for. */
	enc_len = sodium_base64_ENCODED_LEN(len, variant);
	r = buf_reserve(out, enc_len - 1);
	if (r)
		return r;
	sodium_bin2base64(out->data + out->len, enc_len, data, len, variant);
	out->len += enc_len - 1;
	return 0;
}

/* Exact decoded size of a well-formed input of len bytes into *n; -EINVAL
 * when no encoding has that shape (a length of 4k+1, more than two '='). */
static int media_base64_decoded_len(const char *b64, size_t len, size_t *n)
{
	static const size_t tail[4] = {0, 0, 1, 2};
	size_t pad = 0;

	if (len % 4 == 1)
		return -EINVAL;
	if (len % 4 == 0)
		while (pad < len && pad < 3 && b64[len - 1 - pad] == '=')
			pad++;
	if (pad > 2)
		return -EINVAL;
	*n = len / 4 * 3 + tail[len % 4] - pad;
	return 0;
}

int media_base64_decode(const char *b64, size_t len, struct buf *out)
{
	/* Padding is required by one variant and refused by the other: a
	 * padded input has a length that is a multiple of 4. */
	const int variant = len % 4 ? sodium_base64_VARIANT_ORIGINAL_NO_PADDING
				    : sodium_base64_VARIANT_ORIGINAL;
	const char *end = NULL;
	size_t max, n = 0;
	int r;

	if (!out || (!b64 && len))
		return -EINVAL;
	if (!media_sodium_ready())
		return -EIO;
	if (!len)
		return 0;
	if (media_base64_decoded_len(b64, len, &max))
		return -EINVAL;
	/* libsodium 1.0.18 lets bytes >= 0x80 through its alphabet check:
	 * refuse anything outside the alphabet before decoding */
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)b64[i];
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '+' || c == '/' || c == '='))
			return -EINVAL;
	}
	r = buf_reserve(out, max);
	if (r)
		return r;
	if (sodium_base642bin((unsigned char *)out->data + out->len, max, b64, len, NULL, &n,
			      &end, variant) ||
	    end != b64 + len) {
		out->data[out->len] = 0;
		return -EINVAL;
	}
	out->len += n;
	out->data[out->len] = 0;
	return 0;
}
