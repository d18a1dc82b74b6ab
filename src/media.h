/* media.h: encoders and decoders for what mediad sends and receives.
 *
 * All encoders append to a struct buf (whose ceiling bounds the output) and
 * return 0 or a negative errno-style code (-EINVAL bad arguments, -ENOSPC
 * over the ceiling, -EIO library failure). On any failure the buf is left as
 * it was (same len; nothing appended). Except for JPEG, output goes into the
 * buf as it is produced, so an output over the ceiling stops early instead
 * of growing a second copy. All functions are thread-safe (library set-up
 * runs once).
 * Image and video sizes must be 1..16384 on each side (MEDIA_MAX_DIM). */
#ifndef MEDIAD_MEDIA_H
#define MEDIAD_MEDIA_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define MEDIA_MAX_DIM 16384

/* rgb: w*h*3 bytes, row-major, 8-bit. PNG is lossless (8-bit RGB, no alpha).
 * JPEG uses 4:2:0 chroma subsampling; quality 1..100. */
int media_encode_png(const uint8_t *rgb, int w, int h, struct buf *out);
int media_encode_jpeg(const uint8_t *rgb, int w, int h, int quality, struct buf *out);

/* Audio: interleaved signed 16-bit PCM, n_frames frames of `channels`
 * (1..8) at `rate` Hz (1..384000).
 * format (any case): "wav" | "flac" | "ogg" (Vorbis) | "mp3" (when
 * libsndfile can write it) | "pcm" (raw s16le, no header); returns -ENOTSUP
 * for a format this build cannot write (or cannot write at that rate and
 * channel count), -EINVAL for an unknown format name. */
int media_encode_audio(const int16_t *pcm, size_t n_frames, int rate, int channels,
		       const char *format, struct buf *out);
/* Content type of an audio format name ("audio/wav", "audio/flac",
 * "audio/ogg", "audio/mpeg", "audio/pcm"); NULL if unknown. */
const char *media_audio_content_type(const char *format);
/* 1 when media_encode_audio() can write `format` at rate and channels in
 * this build, 0 otherwise (unknown name and out-of-range values included).
 * Lets the API refuse "mp3" up front when the library lacks an encoder. */
int media_audio_format_supported(const char *format, int rate, int channels);

/* Video: n_frames (>= 1) RGB frames of w x h (w, h even), back to back,
 * into an MP4 at fps (1..240): H.264 via libx264 when available, else any
 * H.264 encoder, else MPEG-4 part 2. The moov atom is placed before the
 * media data ("faststart"), so players can start before the whole file
 * arrives. Single-threaded encoding and bit-exact flags: the same input
 * gives the same bytes with the same libraries.
 * The first call routes libav's log (level error and worse) into log.h. */
int media_encode_mp4(const uint8_t *rgb_frames, int n_frames, int w, int h, int fps,
		     struct buf *out);

/* Standard base64 (with padding), appended. data may be NULL when len is 0. */
int media_base64_encode(const void *data, size_t len, struct buf *out);
/* Decode standard base64 (padding optional, no whitespace); -EINVAL on junk
 * (characters outside the alphabet, bad padding, non-zero trailing bits,
 * a length that no encoding has). b64 may be NULL when len is 0. */
int media_base64_decode(const char *b64, size_t len, struct buf *out);

#endif
