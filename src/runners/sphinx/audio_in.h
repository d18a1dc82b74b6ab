/* audio_in.h: decoding uploaded audio into the PCM a speech model reads.
 *
 * An upload arrives as the bytes of an audio file in a file descriptor (a
 * memfd). audio_in_decode() reads it through libsndfile (WAV, FLAC,
 * OGG Vorbis/Opus, MP3 and the other containers libsndfile knows), mixes
 * every channel down to mono, resamples with libsoxr to the rate the model
 * wants and converts to signed 16-bit samples. The whole file is decoded
 * before any recognition starts, so every problem with the upload (not
 * audio, no samples, truncated, too long) is known before a streamed answer
 * commits to a 200: decoding costs a few milliseconds per minute of audio,
 * recognition seconds.
 *
 * Thread safety: calls on different uploads may run in parallel, except
 * that the text of an open failure comes from libsndfile's process-wide
 * last error. */
#ifndef MEDIAD_AUDIO_IN_H
#define MEDIAD_AUDIO_IN_H

#include <stddef.h>
#include <stdint.h>

struct audio_pcm {
	int16_t *samples; /* mono, at rate; owned (audio_pcm_release) */
	size_t n;
	int rate;
	double duration; /* seconds of audio decoded from the source */
	int src_rate;    /* the file's own rate and channel count */
	int src_channels;
};

struct audio_in_opts {
	int rate;           /* output rate in Hz (1000..384000) */
	double max_seconds; /* longest audio accepted; <= 0 = no limit */
	/* Called now and then while decoding (progress for long files); may be NULL. */
	void (*progress)(void *arg);
	void *arg;
};

/* Decode the audio file in fd (read with pread from offset 0; the fd's
 * offset is not used or moved) into out, which the caller releases with
 * audio_pcm_release() on success; on failure out is left empty.
 * Returns 0, or a negative errno with err set to a sentence naming the
 * problem, meant for the client:
 *   -ENODATA  the file is empty or holds no audio samples;
 *   -EINVAL   the bytes are not audio this build decodes;
 *   -EIO      the file is truncated or corrupt (a WAV whose header declares
 *             more bytes than were uploaded, a FLAC/MP3 that decodes to less
 *             than its header declares, an Ogg stream without its end, a
 *             decoder error mid-stream);
 *   -EFBIG    the audio is longer than opts->max_seconds (known from the
 *             header when it says, otherwise found while decoding, which
 *             then stops at the limit);
 *   -errno    the fd cannot be read. */
int audio_in_decode(int fd, const struct audio_in_opts *opts, struct audio_pcm *out, char *err,
                    size_t errlen);

/* Free the samples and zero the struct; safe on a zeroed struct. */
void audio_pcm_release(struct audio_pcm *p);

#endif
