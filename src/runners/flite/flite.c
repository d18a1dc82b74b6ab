/* runners/flite/flite.c: text to speech with flite's voices.
 *
 * Service `tts`: POST /v1/audio/speech. Voices are the ones Debian's
 * flite1-dev links: slt (the default), rms, awb (clustergen, 16 kHz), kal16
 * (diphone, 16 kHz) and kal (diphone, 8 kHz); a request may also name them
 * cmu_us_<name>. The answer's rate is the voice's. `speed` scales durations
 * (flite's duration_stretch = 1 / speed).
 *
 * Text is split into sentences (sentence.h) and synthesised one sentence at
 * a time on the cpu device's pool (the whole request in one hand-off to a
 * pool thread, which also sends the streamed pieces), one progress unit per
 * sentence. Without
 * stream the sentences are joined and encoded once (media_encode_audio).
 * With stream=true each sentence goes out as soon as it is made, with
 * chunked transfer:
 *   wav   a WAV header whose sizes say "unknown" (0xFFFFFFFF, as streaming
 *         writers do), then raw samples;
 *   pcm   raw s16le samples;
 *   ogg   one complete Ogg Vorbis stream per sentence: a chained Ogg file;
 *   mp3   one MP3 per sentence, back to back (players read them as one);
 *   flac  FLAC cannot be chained, so the whole file goes out as one chunk at
 *         the end;
 *   json  one NDJSON line per sentence: {"audio":"<base64 wav>","duration",
 *         "sample_rate","format":"wav","chunk_id"}.
 *
 * Determinism: the clustergen voices draw their excitation noise from the C
 * library's rand(), so every synthesis seeds it with a fixed value first;
 * the same text, voice and speed always give the same samples. rand() is
 * process-wide and only this runner uses it in a worker.
 *
 * Deep probe: the default voice synthesises a fixed sentence at speed 1 and
 * the digest is xxHash64 of its samples (about 30 ms, far under 1% of the
 * device's time at the default probe cadence); corrupt_deep flips one bit of
 * one sample of that replay before hashing. */
#include <errno.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <xxhash.h>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wstrict-prototypes"
#include <flite/flite.h>
#pragma GCC diagnostic pop

#include "faults.h"
#include "log.h"
#include "media.h"
#include "runner.h"
#include "flite.h"
#include "sentence.h"
#include "util.h"

#define SENTENCE_MAX_LEN 400         /* bytes of text per synthesis call */
#define FLITE_SEED       0x6d656469u /* rand() seed before every synthesis */
#define STREAM_PIECE     (1u << 20)  /* largest chunk sent in one frame */
#define PROBE_TEXT       "The device is healthy."

/* flite's voice libraries export these; no header declares them. */
cst_voice *register_cmu_us_slt(const char *voxdir);
cst_voice *register_cmu_us_rms(const char *voxdir);
cst_voice *register_cmu_us_awb(const char *voxdir);
cst_voice *register_cmu_us_kal16(const char *voxdir);
cst_voice *register_cmu_us_kal(const char *voxdir);
void unregister_cmu_us_slt(cst_voice *v);
void unregister_cmu_us_rms(cst_voice *v);
void unregister_cmu_us_awb(cst_voice *v);
void unregister_cmu_us_kal16(cst_voice *v);
void unregister_cmu_us_kal(cst_voice *v);

struct flite_voice {
	const char *name;
	cst_voice *(*reg)(const char *voxdir);
	void (*unreg)(cst_voice *v);
};

static const struct flite_voice flite_voices[] = {
    {"slt", register_cmu_us_slt, unregister_cmu_us_slt},
    {"rms", register_cmu_us_rms, unregister_cmu_us_rms},
    {"awb", register_cmu_us_awb, unregister_cmu_us_awb},
    {"kal16", register_cmu_us_kal16, unregister_cmu_us_kal16},
    {"kal", register_cmu_us_kal, unregister_cmu_us_kal},
};

#define N_VOICES ARRAY_SIZE(flite_voices)

struct tts {
	const struct config *cfg;
	struct mediad_device *dev;
	cst_voice *voice[N_VOICES];
	char voice_list[128]; /* "slt, rms, ..." for error messages */
};

/* --- synthesis on the device --- */

/* Synthesise text (NUL-terminated) with the voice at a duration stretch;
 * the wave (the caller deletes it), or NULL when flite failed. Runs on a
 * pool thread of the device. */
static cst_wave *synth_text(cst_voice *v, const char *text, float stretch)
{
	/* flite reports fatal errors by longjmp through cst_errjmp (or exits
	 * when it is unset): catch them as a failed synthesis. */
	cst_wave *volatile w = NULL;
	jmp_buf env;

	cst_errjmp = &env;
	if (setjmp(env) == 0) {
		flite_feat_set_float(v->features, "duration_stretch", stretch);
		srand(FLITE_SEED);
		w = flite_text_to_wave(text, v);
	}
	cst_errjmp = NULL;
	return w;
}

struct synth_job {
	cst_voice *voice;
	const char *text;
	cst_wave *wave;
};

static void synth_kernel(void *arg, int index, int count)
{
	struct synth_job *j = arg;

	j->wave = synth_text(j->voice, j->text, 1.0f);
}

/* One synthesis at speed 1 on the device (warmup, deep probe): 0 with
 * *wave set (the caller deletes it), -EIO, or a device error. */
static int synth(struct tts *ts, cst_voice *v, const char *text, cst_wave **wave)
{
	struct synth_job j = {.voice = v, .text = text};
	int r = device_parallel(ts->dev, synth_kernel, &j, 1);

	if (r < 0) {
		if (j.wave)
			delete_wave(j.wave);
		return r;
	}
	if (!j.wave)
		return -EIO;
	*wave = j.wave;
	return 0;
}

/* --- lifecycle --- */

static int tts_open(const struct config *cfg, struct mediad_device *dev, void **state, char *err,
                    size_t errlen)
{
	struct tts *ts;

	if (device_threads(dev) < 0) {
		snprintf(err, errlen, "the flite runner needs an open device with a parallel op");
		return -EINVAL;
	}
	ts = xcalloc(1, sizeof(*ts));
	ts->cfg = cfg;
	ts->dev = dev;
	*state = ts;
	return 0;
}

static uint64_t wave_digest(const cst_wave *w)
{
	XXH64_state_t *st = XXH64_createState();
	uint64_t meta[2] = {(uint64_t)w->sample_rate, (uint64_t)w->num_samples};
	uint64_t d;

	XXH64_reset(st, 0);
	XXH64_update(st, meta, sizeof(meta));
	XXH64_update(st, w->samples, (size_t)w->num_samples * sizeof(*w->samples));
	d = XXH64_digest(st);
	XXH64_freeState(st);
	return d;
}

static int tts_warmup(void *state, struct runner_info *info, char *err, size_t errlen)
{
	struct tts *ts = state;
	double t0 = now_s();
	size_t used = 0;

	flite_init();
	for (size_t i = 0; i < N_VOICES; i++) {
		cst_wave *w = NULL;
		int r;

		ts->voice[i] = flite_voices[i].reg(NULL);
		if (!ts->voice[i]) {
			snprintf(err, errlen, "flite voice %s failed to load",
			         flite_voices[i].name);
			return -EIO;
		}
		r = synth(ts, ts->voice[i], "Warming up.", &w);
		if (r < 0) {
			snprintf(err, errlen, "flite voice %s failed its first synthesis: %s",
			         flite_voices[i].name, strerror(-r));
			return r;
		}
		delete_wave(w);
		used += (size_t)snprintf(ts->voice_list + used, sizeof(ts->voice_list) - used,
		                         "%s%s", i ? ", " : "", flite_voices[i].name);
		if (used >= sizeof(ts->voice_list))
			used = sizeof(ts->voice_list) - 1;
	}
	log_info("flite: voices %s loaded and warmed in %.2f s", ts->voice_list, now_s() - t0);
	snprintf(info->model, sizeof(info->model), "%s",
	         ts->cfg->model_name && ts->cfg->model_name[0] ? ts->cfg->model_name : "flite");
	snprintf(info->device, sizeof(info->device), "cpu (%d threads)",
	         device_threads(ts->dev));
	info->services = SVC_TTS;
	/* short names first, then flite's own cmu_us_<name> spellings */
	for (size_t i = 0, vl = 0; i < 2 * N_VOICES && vl < sizeof(info->voices); i++)
		vl += (size_t)snprintf(info->voices + vl, sizeof(info->voices) - vl, "%s%s%s",
				       i ? "," : "", i < N_VOICES ? "" : "cmu_us_",
				       flite_voices[i % N_VOICES].name);
	snprintf(info->default_voice, sizeof(info->default_voice), "%s", flite_voices[0].name);
	info->deep_supported = 1;
	info->synthetic_weights = 0;
	return 0;
}

static int tts_deep_probe(void *state, uint64_t *digest, char *err, size_t errlen)
{
	struct tts *ts = state;
	cst_wave *w = NULL;
	int r = synth(ts, ts->voice[0], PROBE_TEXT, &w);

	if (r < 0) {
		snprintf(err, errlen, "deep-probe synthesis failed: %s", strerror(-r));
		return r;
	}
	if (w->num_samples > 0 && faults_take(FAULT_CORRUPT_DEEP, NULL))
		w->samples[w->num_samples / 2] ^= 0x10;
	*digest = wave_digest(w);
	delete_wave(w);
	return 0;
}

static void tts_close(void *state)
{
	struct tts *ts = state;

	if (!ts)
		return;
	for (size_t i = 0; i < N_VOICES; i++)
		if (ts->voice[i])
			flite_voices[i].unreg(ts->voice[i]);
	free(ts);
}

/* --- requests --- */

/* Index of the voice a request names, or -1. "default" is the first. */
static int voice_index(const char *name)
{
	if (!name || !strcasecmp(name, "default"))
		return 0;
	if (!strncasecmp(name, "cmu_us_", 7))
		name += 7;
	for (size_t i = 0; i < N_VOICES; i++)
		if (!strcasecmp(name, flite_voices[i].name))
			return (int)i;
	return -1;
}

static void put_le(uint8_t *p, uint32_t v, int bytes)
{
	for (int i = 0; i < bytes; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* The streaming WAV header: 16-bit mono at rate, sizes unknown. */
static void wav_stream_header(int rate, struct buf *out)
{
	uint8_t h[44];

	memcpy(h, "RIFF", 4);
	put_le(h + 4, 0xffffffffu, 4);
	memcpy(h + 8, "WAVEfmt ", 8);
	put_le(h + 16, 16, 4); /* fmt chunk size */
	put_le(h + 20, 1, 2);  /* PCM */
	put_le(h + 22, 1, 2);  /* mono */
	put_le(h + 24, (uint32_t)rate, 4);
	put_le(h + 28, (uint32_t)rate * 2, 4); /* bytes per second */
	put_le(h + 32, 2, 2);                  /* block align */
	put_le(h + 34, 16, 2);                 /* bits per sample */
	memcpy(h + 36, "data", 4);
	put_le(h + 40, 0xffffffffu, 4);
	buf_append(out, h, sizeof(h));
}

struct speech {
	struct tts *ts;
	struct runner_ctx *ctx;
	struct runner_task *t;
	const char *fmt;
	int stream;
	int rate;
	size_t chunks;  /* stream pieces sent */
	struct buf pcm; /* samples not yet sent (stream) or all of them */
};

static void send_piece(struct speech *sp, const char *ctype, const void *data, size_t len)
{
	const char *p = data;

	do {
		size_t n = MIN(len, STREAM_PIECE);
		runner_chunk(sp->ctx, sp->t, ctype, p, n);
		p += n;
		len -= n;
	} while (len);
	sp->chunks++;
}

/* Encode n samples as fmt ("json" = a base64 WAV object) into out. */
static int encode(const int16_t *pcm, size_t n, int rate, const char *fmt, long chunk_id,
                  struct buf *out)
{
	struct buf audio;
	int r;

	if (!strcmp(fmt, "pcm"))
		return buf_append(out, pcm, n * sizeof(*pcm));
	if (strcmp(fmt, "json"))
		return media_encode_audio(pcm, n, rate, 1, fmt, out);
	buf_init(&audio, BUF_UNLIMITED);
	r = media_encode_audio(pcm, n, rate, 1, "wav", &audio);
	if (r == 0) {
		buf_puts(out, "{\"audio\":\"");
		media_base64_encode(audio.data, audio.len, out);
		buf_printf(out, "\",\"duration\":%.3f,\"sample_rate\":%d,\"format\":\"wav\"",
		           (double)n / rate, rate);
		if (chunk_id >= 0)
			buf_printf(out, ",\"chunk_id\":%ld", chunk_id);
		buf_puts(out, "}");
	}
	buf_release(&audio);
	return r;
}

static const char *ctype_of(const char *fmt, int stream)
{
	if (!strcmp(fmt, "json"))
		return stream ? "application/x-ndjson" : "application/json";
	return media_audio_content_type(fmt);
}

/* Stream out what one sentence made (samples in sp->pcm). 0 or -errno. */
static int stream_sentence(struct speech *sp)
{
	const int16_t *s = (const int16_t *)sp->pcm.data;
	size_t n = sp->pcm.len / sizeof(int16_t);
	struct buf out;
	int r = 0;

	if (!strcmp(sp->fmt, "flac") || !n)
		return 0; /* sent whole at the end */
	buf_init(&out, BUF_UNLIMITED);
	if (!strcmp(sp->fmt, "wav")) {
		if (!sp->chunks)
			wav_stream_header(sp->rate, &out);
		buf_append(&out, s, n * sizeof(*s));
	} else {
		r = encode(s, n, sp->rate, sp->fmt, (long)sp->chunks, &out);
		if (r == 0 && !strcmp(sp->fmt, "json"))
			buf_puts(&out, "\n");
	}
	if (r == 0)
		send_piece(sp, ctype_of(sp->fmt, 1), out.data, out.len);
	buf_release(&out);
	buf_reset(&sp->pcm);
	return r;
}

static void reply_encode_error(struct speech *sp, int r)
{
	if (r == -ENOTSUP)
		runner_reply_error(sp->ctx, sp->t, 422, "response_format",
		                   "response_format %s is not available in this build at %d Hz",
		                   sp->fmt, sp->rate);
	else
		runner_reply_error(sp->ctx, sp->t, 500, NULL, "audio encoding failed: %s",
		                   strerror(-r));
}

/* After the last sentence: the whole answer, or the end of the stream. */
static void finish(struct speech *sp)
{
	const int16_t *s = (const int16_t *)sp->pcm.data;
	size_t n = sp->pcm.len / sizeof(int16_t);
	struct buf out;
	int r;

	buf_init(&out, BUF_UNLIMITED);
	if (sp->stream && strcmp(sp->fmt, "flac") && sp->chunks) {
		runner_end(sp->ctx, sp->t);
		buf_release(&out);
		return;
	}
	/* not streamed, flac, or a stream whose sentences made no samples:
	 * the whole answer in one piece */
	r = encode(s, n, sp->rate, sp->fmt, -1, &out);
	if (r < 0) {
		buf_release(&out);
		reply_encode_error(sp, r);
		return;
	}
	if (sp->stream) {
		send_piece(sp, ctype_of(sp->fmt, 1), out.data, out.len);
		runner_end(sp->ctx, sp->t);
		buf_release(&out);
		return;
	}
	runner_reply(sp->ctx, sp->t, 200, ctype_of(sp->fmt, 0), &out);
}

struct speak_job {
	struct speech *sp;
	cst_voice *voice;
	const char *input;
	float stretch;
	int rv;
};

/* Synthesise every sentence, streaming each when asked: the whole request
 * runs in one hand-off to the device (on a loaded machine each hand-off
 * waits for a scheduler slice). The runner_ctx calls made here (progress,
 * chunks, replies, cancel checks) are thread-safe. rv: 0, -ECANCELED, or
 * -errno with the reply already sent. */
static void speak_kernel(void *arg, int index, int count)
{
	struct speak_job *j = arg;
	struct speech *sp = j->sp;
	size_t len = strlen(j->input), pos = 0;
	struct sentence s;
	char *text = xmalloc(SENTENCE_MAX_LEN + 1);

	j->rv = 0;
	while (sentence_next(j->input, len, &pos, SENTENCE_MAX_LEN, &s)) {
		cst_wave *w;

		memcpy(text, j->input + s.start, s.len);
		text[s.len] = 0;
		w = synth_text(j->voice, text, j->stretch);
		runner_progress(sp->ctx);
		if (!w) {
			j->rv = -EIO;
			if (sp->chunks) /* the 200 is committed: cut the stream short */
				runner_end(sp->ctx, sp->t);
			else
				runner_reply_error(sp->ctx, sp->t, 500, NULL,
				                   "speech synthesis failed");
			break;
		}
		sp->rate = w->sample_rate;
		buf_append(&sp->pcm, w->samples, (size_t)w->num_samples * sizeof(*w->samples));
		delete_wave(w);
		if (runner_cancelled(sp->ctx, sp->t)) {
			j->rv = -ECANCELED;
			break;
		}
		if (sp->stream && (j->rv = stream_sentence(sp)) < 0) {
			if (sp->chunks)
				runner_end(sp->ctx, sp->t);
			else
				reply_encode_error(sp, j->rv);
			break;
		}
	}
	free(text);
}

/* 0 when every sentence was made, else the reply is already sent (or the
 * task was cancelled). */
static int speak(struct speech *sp, cst_voice *v, const char *input, double speed)
{
	struct speak_job j = {
	    .sp = sp, .voice = v, .input = input, .stretch = (float)(1.0 / speed)};
	int r = device_parallel(sp->ts->dev, speak_kernel, &j, 1);

	if (r < 0) {
		runner_reply_error(sp->ctx, sp->t, 500, NULL, "device failed: %s", strerror(-r));
		return r;
	}
	return j.rv;
}

static void run_one(struct tts *ts, struct runner_ctx *ctx, struct runner_task *t)
{
	const char *input = json_string_value(json_object_get(t->params, "input"));
	const char *voice = json_string_value(json_object_get(t->params, "voice"));
	const char *fmt = json_string_value(json_object_get(t->params, "response_format"));
	double speed = json_number_value(json_object_get(t->params, "speed"));
	struct speech sp = {.ts = ts, .ctx = ctx, .t = t};
	int vi = voice_index(voice);

	if (vi < 0) {
		runner_reply_error(ctx, t, 422, "voice", "voice must be one of %s (got %.40s)",
		                   ts->voice_list, voice);
		return;
	}
	if (!input || !sentence_count(input, strlen(input), SENTENCE_MAX_LEN)) {
		runner_reply_error(ctx, t, 422, "input", "input must contain text to speak");
		return;
	}
	sp.fmt = fmt ? fmt : "wav";
	if (!media_audio_content_type(sp.fmt) && strcmp(sp.fmt, "json")) {
		runner_reply_error(ctx, t, 422, "response_format",
		                   "response_format must be one of wav, flac, ogg, mp3, pcm, json");
		return;
	}
	sp.stream = json_is_true(json_object_get(t->params, "stream"));
	if (!(speed > 0))
		speed = 1.0;
	buf_init(&sp.pcm, BUF_UNLIMITED);
	if (speak(&sp, ts->voice[vi], input, speed) == 0)
		finish(&sp);
	buf_release(&sp.pcm);
}

static void tts_run(void *state, struct runner_task **batch, size_t n, struct runner_ctx *ctx)
{
	struct tts *ts = state;

	for (size_t i = 0; i < n; i++) {
		struct runner_task *t = batch[i];

		if (runner_cancelled(ctx, t))
			continue;
		if (t->kind != TASK_SPEECH) {
			runner_reply_error(ctx, t, 500, NULL, "the flite runner cannot run %s",
			                   task_kind_name(t->kind));
			continue;
		}
		run_one(ts, ctx, t);
	}
}

const struct runner_ops runner_flite_ops = {
    .name = "flite",
    .open = tts_open,
    .warmup = tts_warmup,
    .run = tts_run,
    .deep_probe = tts_deep_probe,
    .close = tts_close,
};
