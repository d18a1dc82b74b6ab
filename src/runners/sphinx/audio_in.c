/* audio_in.c: decode an uploaded audio file to mono 16-bit PCM at the
 * model's rate (libsndfile to read, libsoxr to resample). See audio_in.h. */
#include "audio_in.h"

#include <errno.h>
#include <math.h>
#include <sndfile.h>
#include <soxr.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

#define AUDIO_IN_BLOCK          4096 /* source frames read per step */
#define AUDIO_IN_PROGRESS_EVERY 16   /* blocks between progress calls */
#define AUDIO_IN_SLACK_S        0.05 /* decoded audio may fall this short of the header */

/* libsndfile virtual I/O over an fd, by pread, with its own offset. */
struct audio_fdfile {
	int fd;
	sf_count_t len;
	sf_count_t pos;
};

static sf_count_t audio_vio_len(void *user)
{
	return ((struct audio_fdfile *)user)->len;
}

static sf_count_t audio_vio_seek(sf_count_t off, int whence, void *user)
{
	struct audio_fdfile *f = user;
	sf_count_t base = whence == SEEK_CUR ? f->pos : whence == SEEK_END ? f->len : 0;

	if (base + off < 0)
		return -1;
	f->pos = base + off;
	return f->pos;
}

static sf_count_t audio_vio_read(void *ptr, sf_count_t count, void *user)
{
	struct audio_fdfile *f = user;
	sf_count_t done = 0;

	while (done < count && f->pos < f->len) {
		ssize_t n = pread(f->fd, (char *)ptr + done, (size_t)(count - done), (off_t)f->pos);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		done += n;
		f->pos += n;
	}
	return done;
}

static sf_count_t audio_vio_write(const void *ptr, sf_count_t count, void *user)
{
	return 0;
}

static sf_count_t audio_vio_tell(void *user)
{
	return ((struct audio_fdfile *)user)->pos;
}

/* A RIFF/WAVE file whose header declares more bytes than there are was cut
 * short: libsndfile would quietly read what is left. 0xFFFFFFFF and 0 are
 * what streaming writers put when they do not know the size. */
static int audio_wav_truncated(const struct audio_fdfile *f, char *err, size_t errlen)
{
	unsigned char h[12];
	struct audio_fdfile probe = *f;
	uint32_t riff;

	probe.pos = 0;
	if (audio_vio_read(h, sizeof(h), &probe) != (sf_count_t)sizeof(h) || memcmp(h, "RIFF", 4) ||
	    memcmp(h + 8, "WAVE", 4))
		return 0;
	riff = (uint32_t)h[4] | (uint32_t)h[5] << 8 | (uint32_t)h[6] << 16 | (uint32_t)h[7] << 24;
	if (riff == 0 || riff == 0xffffffffu || (sf_count_t)riff + 8 <= f->len)
		return 0;
	snprintf(err, errlen,
	         "file is truncated: its WAV header declares %llu bytes but the upload has %lld",
	         (unsigned long long)riff + 8, (long long)f->len);
	return 1;
}

/* The CRC of an Ogg page (polynomial 0x04c11db7, no reflection), computed
 * with its checksum field taken as zero. */
static uint32_t audio_ogg_crc(const unsigned char *p, size_t n)
{
	uint32_t crc = 0;

	for (size_t i = 0; i < n; i++) {
		crc ^= (uint32_t)(i >= 22 && i < 26 ? 0 : p[i]) << 24;
		for (int b = 0; b < 8; b++)
			crc = crc & 0x80000000u ? crc << 1 ^ 0x04c11db7u : crc << 1;
	}
	return crc;
}

/* Size of the valid Ogg page at p (n bytes available), or 0. */
static size_t audio_ogg_page(const unsigned char *p, size_t n)
{
	size_t size;

	if (n < 27 || memcmp(p, "OggS", 4) || p[4] != 0 || n < 27 + (size_t)p[26])
		return 0;
	size = 27 + (size_t)p[26];
	for (int i = 0; i < p[26]; i++)
		size += p[27 + i];
	if (size > n)
		return 0;
	uint32_t want =
	    (uint32_t)p[22] | (uint32_t)p[23] << 8 | (uint32_t)p[24] << 16 | (uint32_t)p[25] << 24;
	return audio_ogg_crc(p, size) == want ? size : 0;
}

/* An Ogg file must end with a complete page flagged end-of-stream; a cut
 * one does not (libsndfile would otherwise fail to open it, and leak). */
static int audio_ogg_truncated(const struct audio_fdfile *f, char *err, size_t errlen)
{
	enum { TAIL = 65536 + 27 + 255 };
	struct audio_fdfile probe = *f;
	unsigned char head[4];
	unsigned char *tail;
	size_t n, page = 0;
	int eos = 0;

	probe.pos = 0;
	if (audio_vio_read(head, 4, &probe) != 4 || memcmp(head, "OggS", 4))
		return 0;
	n = (size_t)MIN((sf_count_t)TAIL, f->len);
	tail = xmalloc(n);
	probe.pos = f->len - (sf_count_t)n;
	n = (size_t)audio_vio_read(tail, (sf_count_t)n, &probe);
	for (size_t i = n >= 27 ? n - 27 + 1 : 0; i-- > 0;) {
		if (tail[i] == 'O' && (page = audio_ogg_page(tail + i, n - i))) {
			eos = tail[i + 5] & 0x04;
			break;
		}
	}
	free(tail);
	if (page && eos)
		return 0;
	snprintf(err, errlen, "file is truncated: the Ogg stream %s",
	         page ? "does not end with its end-of-stream page" : "has no complete final page");
	return 1;
}

/* Growable output of 16-bit samples. */
struct audio_out {
	int16_t *s;
	size_t n, cap;
};

static void audio_out_push(struct audio_out *o, const float *x, size_t n)
{
	if (o->n + n > o->cap) {
		o->cap = MAX(o->cap * 2, o->n + n + 16384);
		o->s = xrealloc(o->s, o->cap * sizeof(*o->s));
	}
	for (size_t i = 0; i < n; i++) {
		/* libsndfile reads integer PCM as s / 32768, so this is exact for
		 * 16-bit input at the output rate */
		float v = nearbyintf(x[i] * 32768.0f);
		if (isnan(v))
			v = 0; /* a float file may hold NaN: silence, not an undefined cast */
		o->s[o->n++] = (int16_t)(v > 32767.0f ? 32767.0f : v < -32768.0f ? -32768.0f : v);
	}
}

struct audio_dec {
	SNDFILE *sf;
	SF_INFO info;
	soxr_t soxr;
	float *in, *mono, *res;
	size_t res_cap;
	struct audio_out out;
};

static void audio_dec_release(struct audio_dec *d)
{
	if (d->sf)
		sf_close(d->sf);
	if (d->soxr)
		soxr_delete(d->soxr);
	free(d->in);
	free(d->mono);
	free(d->res);
	free(d->out.s);
	memset(d, 0, sizeof(*d));
}

/* Resample (or copy) n mono frames into the output; n == 0 with mono NULL
 * drains the resampler. 0 or -EIO. */
static int audio_dec_emit(struct audio_dec *d, const float *mono, size_t n)
{
	if (!d->soxr) {
		audio_out_push(&d->out, mono, n);
		return 0;
	}
	for (;;) {
		size_t idone = 0, odone = 0;
		soxr_error_t e = soxr_process(d->soxr, mono, n, &idone, d->res, d->res_cap, &odone);
		if (e)
			return -EIO;
		audio_out_push(&d->out, d->res, odone);
		if (mono && n && !idone && !odone)
			return -EIO; /* no headway: never spin */
		if (mono) {
			mono += idone;
			n -= idone;
			if (!n && odone < d->res_cap)
				return 0;
		} else if (!odone) {
			return 0;
		}
	}
}

/* The container the first bytes announce, or NULL: tells a damaged audio
 * file from something that is not audio at all. */
static const char *audio_magic(const struct audio_fdfile *f)
{
	struct audio_fdfile probe = *f;
	unsigned char h[12] = {0};

	probe.pos = 0;
	if (audio_vio_read(h, sizeof(h), &probe) < 4)
		return NULL;
	if (!memcmp(h, "OggS", 4))
		return "Ogg";
	if (!memcmp(h, "fLaC", 4))
		return "FLAC";
	if (!memcmp(h, "RIFF", 4) && !memcmp(h + 8, "WAVE", 4))
		return "WAV";
	if (!memcmp(h, "ID3", 3) || (h[0] == 0xff && (h[1] & 0xe0) == 0xe0))
		return "MP3";
	return NULL;
}

static int audio_dec_open(struct audio_dec *d, struct audio_fdfile *f, int rate, char *err,
                          size_t errlen)
{
	SF_VIRTUAL_IO vio = {audio_vio_len, audio_vio_seek, audio_vio_read, audio_vio_write,
	                     audio_vio_tell};

	d->sf = sf_open_virtual(&vio, SFM_READ, &d->info, f);
	if (!d->sf) {
		const char *kind = audio_magic(f);

		if (kind) {
			snprintf(err, errlen, "file is a truncated or corrupt %s file: %s", kind,
			         sf_strerror(NULL));
			return -EIO;
		}
		snprintf(err, errlen,
		         "file is not audio this server can decode (WAV, FLAC, OGG Vorbis/Opus, "
		         "MP3): %s",
		         sf_strerror(NULL));
		return -EINVAL;
	}
	if (d->info.samplerate <= 0 || d->info.channels <= 0) {
		snprintf(err, errlen, "file is not usable audio: it declares %d Hz and %d channels",
		         d->info.samplerate, d->info.channels);
		return -EINVAL;
	}
	if (d->info.samplerate != rate) {
		soxr_error_t e = NULL;
		soxr_io_spec_t io = soxr_io_spec(SOXR_FLOAT32_I, SOXR_FLOAT32_I);
		soxr_quality_spec_t q = soxr_quality_spec(SOXR_HQ, 0);

		d->soxr = soxr_create(d->info.samplerate, rate, 1, &e, &io, &q, NULL);
		if (!d->soxr) {
			snprintf(err, errlen, "cannot resample %d Hz audio to %d Hz: %s",
			         d->info.samplerate, rate, e ? e : "soxr failed");
			return -EINVAL;
		}
		d->res_cap = (size_t)ceil((double)AUDIO_IN_BLOCK * rate / d->info.samplerate) + 256;
		d->res = xmalloc(d->res_cap * sizeof(*d->res));
	}
	d->in = xmalloc((size_t)AUDIO_IN_BLOCK * (size_t)d->info.channels * sizeof(*d->in));
	d->mono = xmalloc(AUDIO_IN_BLOCK * sizeof(*d->mono));
	return 0;
}

static void audio_mixdown(const float *in, int channels, size_t frames, float *mono)
{
	if (channels == 1) {
		memcpy(mono, in, frames * sizeof(*mono));
		return;
	}
	for (size_t i = 0; i < frames; i++) {
		float s = 0;
		for (int c = 0; c < channels; c++)
			s += in[i * (size_t)channels + (size_t)c];
		mono[i] = s / (float)channels;
	}
}

static int audio_too_long(double seconds, double max_seconds, int partial, char *err, size_t errlen)
{
	snprintf(err, errlen,
	         "file holds %s%.1f s of audio; the limit is %g s (MAX_AUDIO_DURATION_SECONDS)",
	         partial ? "more than " : "", seconds, max_seconds);
	return -EFBIG;
}

/* Read every block; 0 or a negative errno with err set. */
static int audio_dec_run(struct audio_dec *d, const struct audio_in_opts *o, sf_count_t *frames,
                         char *err, size_t errlen)
{
	const SF_INFO *in = &d->info;
	double max_frames = o->max_seconds > 0 ? o->max_seconds * in->samplerate : INFINITY;
	unsigned blocks = 0;

	*frames = 0;
	for (;;) {
		sf_count_t got = sf_readf_float(d->sf, d->in, AUDIO_IN_BLOCK);
		if (got <= 0)
			break;
		*frames += got;
		if ((double)*frames > max_frames)
			return audio_too_long(o->max_seconds, o->max_seconds, 1, err, errlen);
		audio_mixdown(d->in, in->channels, (size_t)got, d->mono);
		if (audio_dec_emit(d, d->mono, (size_t)got) < 0) {
			snprintf(err, errlen, "resampling failed");
			return -EIO;
		}
		if (o->progress && ++blocks % AUDIO_IN_PROGRESS_EVERY == 0)
			o->progress(o->arg);
	}
	if (sf_error(d->sf)) {
		snprintf(err, errlen, "file is truncated or corrupt after %.2f s of audio: %s",
		         (double)*frames / in->samplerate, sf_strerror(d->sf));
		return -EIO;
	}
	if (audio_dec_emit(d, NULL, 0) < 0) {
		snprintf(err, errlen, "resampling failed");
		return -EIO;
	}
	return 0;
}

/* What the header promised against what was decoded. */
static int audio_dec_check(const struct audio_dec *d, sf_count_t frames, char *err, size_t errlen)
{
	const SF_INFO *in = &d->info;
	double rate = in->samplerate;

	if (in->frames > 0 && in->frames != SF_COUNT_MAX &&
	    (double)frames < (double)in->frames - AUDIO_IN_SLACK_S * rate) {
		snprintf(err, errlen,
		         "file is truncated: its header declares %.2f s of audio but only %.2f s "
		         "could be decoded",
		         (double)in->frames / rate, (double)frames / rate);
		return -EIO;
	}
	if (!frames || !d->out.n) {
		snprintf(err, errlen, "file contains no audio samples");
		return -ENODATA;
	}
	return 0;
}

int audio_in_decode(int fd, const struct audio_in_opts *opts, struct audio_pcm *out, char *err,
                    size_t errlen)
{
	struct audio_fdfile f = {.fd = fd};
	struct audio_dec d;
	struct stat st;
	sf_count_t frames = 0;
	int r;

	memset(out, 0, sizeof(*out));
	memset(&d, 0, sizeof(d));
	if (opts->rate < 1000 || opts->rate > 384000) {
		snprintf(err, errlen, "output rate %d Hz is out of range", opts->rate);
		return -EINVAL;
	}
	if (fstat(fd, &st) < 0) {
		r = -errno;
		snprintf(err, errlen, "cannot read the upload: %s", strerror(-r));
		return r;
	}
	f.len = st.st_size;
	if (f.len == 0) {
		snprintf(err, errlen, "file is empty");
		return -ENODATA;
	}
	if (audio_wav_truncated(&f, err, errlen) || audio_ogg_truncated(&f, err, errlen))
		return -EIO;
	r = audio_dec_open(&d, &f, opts->rate, err, errlen);
	if (r == 0 && (d.info.format & SF_FORMAT_TYPEMASK) == SF_FORMAT_OGG &&
	    d.info.frames == SF_COUNT_MAX) {
		snprintf(err, errlen, "file is truncated or corrupt: the Ogg stream has no end");
		r = -EIO;
	}
	if (r == 0 && opts->max_seconds > 0 && d.info.frames != SF_COUNT_MAX &&
	    (double)d.info.frames > opts->max_seconds * d.info.samplerate)
		r = audio_too_long((double)d.info.frames / d.info.samplerate, opts->max_seconds, 0,
		                   err, errlen);
	if (r == 0)
		r = audio_dec_run(&d, opts, &frames, err, errlen);
	if (r == 0)
		r = audio_dec_check(&d, frames, err, errlen);
	if (r < 0) {
		audio_dec_release(&d);
		return r;
	}
	out->samples = d.out.s;
	out->n = d.out.n;
	out->rate = opts->rate;
	out->duration = (double)frames / d.info.samplerate;
	out->src_rate = d.info.samplerate;
	out->src_channels = d.info.channels;
	d.out.s = NULL;
	audio_dec_release(&d);
	return 0;
}

void audio_pcm_release(struct audio_pcm *p)
{
	free(p->samples);
	memset(p, 0, sizeof(*p));
}
