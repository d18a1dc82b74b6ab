/* runners/sphinx/sphinx.c: speech to text with pocketsphinx and the en-us model.
 *
 * Service `audio`: POST /v1/audio/transcriptions (and /translations, which
 * for an English-only model is the same transcription). The upload is
 * decoded whole first (audio_in.h: libsndfile + libsoxr to 16 kHz mono), so
 * every problem with it is answered before anything streams; then the
 * samples go through the decoder in chunks of CHUNK_SAMPLES, one progress
 * unit per chunk. The decoder's voice activity detector splits the audio
 * into utterances on silence (an utterance is also closed after
 * MAX_UTT_SECONDS); each utterance becomes one segment with its start and
 * end taken from the decoder's word segmentation, and with stream=true one
 * NDJSON line {"text","chunk_id"} as soon as it is decoded.
 *
 * Every pocketsphinx call that computes runs on the device's execution context
 * (device_parallel with one index), so the device that the shallow
 * probe pings is the one doing the work: model loading, and each decode
 * whole, in one hand-off (its per-chunk progress and stream lines are sent
 * from the pool thread). Live cepstral mean normalisation
 * and the noise statistics are reset to the model's initial values at the
 * start of every decode, so the same audio always gives the same result,
 * whatever was decoded before: that makes transcripts reproducible and the
 * deep probe deterministic.
 *
 * Deep probe: the canary clip shipped as data/canary.wav (datafile.h says
 * where it is looked for; "please turn off the lights", made with flite's
 * rms voice) is decoded with the same front end, acoustic model and Viterbi
 * search, against a small grammar of the canary's words and a few
 * distractors rather than the 130k-word language model: that keeps one
 * replay around 50 ms (the full model takes 0.5 s on this clip), well under
 * 1% of the device's time at the default probe cadence. Its digest covers
 * the words, their frame boundaries and the path score, so a device that
 * computes differently changes it even when the words survive.
 * corrupt_deep replays the clip without its first 40%.
 *
 * Model files: MODEL_WEIGHTS_PATH when set (a directory laid out like
 * /usr/share/pocketsphinx/model/en-us: en-us/, en-us.lm.bin,
 * cmudict-en-us.dict), else the Debian package's directory. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <xxhash.h>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wstrict-prototypes"
#include <pocketsphinx.h>
#include <sphinxbase/cmn.h>
#include <sphinxbase/err.h>
#include <sphinxbase/feat.h>
#include <sphinxbase/jsgf.h>
#pragma GCC diagnostic pop

#include "audio_in.h"
#include "datafile.h"
#include "faults.h"
#include "log.h"
#include "runner.h"
#include "sphinx.h"
#include "util.h"

#define SPHINX_RATE         16000
#define CHUNK_SAMPLES       4096 /* 0.256 s of audio per decoder step */
#define MAX_UTT_SECONDS     20   /* an utterance with no pause is closed here */
#define SPHINX_MODEL_DIR    "/usr/share/pocketsphinx/model/en-us"
#define CANARY_FILE         "canary.wav"
#define CANARY_TEXT         "please turn off the lights"
#define CANARY_SEARCH       "mediad_canary"
#define CANARY_CORRUPT_SKIP 0.4 /* corrupt_deep drops this fraction of the clip */
#define CMN_MAX             64

static const char canary_grammar[] =
    "#JSGF V1.0;\n"
    "grammar canary;\n"
    "public <utt> = ( please | turn | off | on | the | a | lights | light | night | open |"
    " close | door | window | and | to | of | in | up | down )+ ;\n";

struct sphinx {
	const struct config *cfg;
	struct mediad_device *dev;
	ps_decoder_t *ps;
	char default_search[64];
	mfcc_t cmn_init[CMN_MAX];
	int cmn_len;
	int frate;
	int utt_open; /* an utterance is started and not yet ended */
	struct audio_pcm canary;
	char model_dir[PATH_MAX];
};

/* --- one decode --- */

struct asr_seg {
	double start, end;
	char *text;
};

struct asr {
	struct sphinx *sp;
	double duration;    /* of the input, seconds: segments are clipped to it */
	int in_utt;         /* the decoder has heard speech in this utterance */
	size_t utt_samples; /* fed since the utterance started */
	XXH64_state_t *digest;
	struct asr_seg *segs;
	size_t n_segs, cap_segs;
	int fresh; /* a segment was added by the last step */
	int failed;
};

static void asr_digest_u64(struct asr *a, uint64_t v)
{
	XXH64_update(a->digest, &v, sizeof(v));
}

/* Turn the decoder's segmentation of the finished utterance into a segment. */
static void asr_collect(struct asr *a)
{
	struct sphinx *sp = a->sp;
	int32 score = 0;
	struct buf text;
	int first = -1, last = -1;

	ps_get_hyp(sp->ps, &score); /* also finishes the search's best path */
	buf_init(&text, BUF_UNLIMITED);
	for (ps_seg_t *seg = ps_seg_iter(sp->ps); seg; seg = ps_seg_next(seg)) {
		const char *w = ps_seg_word(seg);
		int sf = 0, ef = 0;
		size_t wl;

		ps_seg_frames(seg, &sf, &ef);
		if (!w || w[0] == '<' || w[0] == '[' || w[0] == '+')
			continue;     /* silence and fillers */
		wl = strcspn(w, "("); /* "and(2)": an alternative pronunciation */
		if (!wl)
			continue;
		if (text.len)
			buf_puts(&text, " ");
		buf_append(&text, w, wl);
		XXH64_update(a->digest, w, wl);
		asr_digest_u64(a, (uint64_t)sf << 32 | (uint32_t)ef);
		if (first < 0)
			first = sf;
		last = ef;
	}
	asr_digest_u64(a, (uint64_t)(int64_t)score);
	if (!text.len) {
		buf_release(&text);
		return;
	}
	if (a->n_segs == a->cap_segs) {
		a->cap_segs = MAX(8, a->cap_segs * 2);
		a->segs = xrealloc(a->segs, a->cap_segs * sizeof(*a->segs));
	}
	struct asr_seg *s = &a->segs[a->n_segs++];
	s->start = MIN((double)first / sp->frate, a->duration);
	s->end = MIN((double)(last + 1) / sp->frate, a->duration);
	if (s->end < s->start)
		s->end = s->start;
	s->text = buf_detach(&text, NULL);
	a->fresh = 1;
}

/* Feed one chunk; close the utterance when the detector heard its end,
 * when it is too long, or at the end of input. */
static void asr_step(struct asr *a, const int16_t *pcm, size_t n, int last)
{
	ps_decoder_t *ps = a->sp->ps;
	int in_speech;

	if (n && ps_process_raw(ps, pcm, n, FALSE, FALSE) < 0) {
		a->failed = 1;
		return;
	}
	a->utt_samples += n;
	in_speech = ps_get_in_speech(ps);
	if (in_speech)
		a->in_utt = 1;
	if (!last && !(a->in_utt && !in_speech) &&
	    a->utt_samples < (size_t)MAX_UTT_SECONDS * SPHINX_RATE)
		return;
	a->sp->utt_open = 0;
	if (ps_end_utt(ps) < 0) {
		a->failed = 1;
		return;
	}
	asr_collect(a);
	a->in_utt = 0;
	a->utt_samples = 0;
	if (!last) {
		if (ps_start_utt(ps) < 0)
			a->failed = 1;
		else
			a->sp->utt_open = 1;
	}
}

/* End an utterance a cancelled or failed decode left open. */
static void asr_close_open(struct sphinx *sp)
{
	if (sp->utt_open) {
		ps_end_utt(sp->ps);
		sp->utt_open = 0;
	}
}

/* Back to the state right after loading, then start an utterance. */
static void asr_start(struct asr *a)
{
	struct sphinx *sp = a->sp;
	feat_t *feat = ps_get_feat(sp->ps);

	asr_close_open(sp);
	if (feat && feat->cmn_struct && sp->cmn_len)
		cmn_live_set(feat->cmn_struct, sp->cmn_init);
	if (ps_start_stream(sp->ps) < 0 || ps_start_utt(sp->ps) < 0)
		a->failed = 1;
	else
		sp->utt_open = 1;
}

static void asr_init(struct asr *a, struct sphinx *sp, double duration)
{
	memset(a, 0, sizeof(*a));
	a->sp = sp;
	a->duration = duration;
	a->digest = XXH64_createState();
	XXH64_reset(a->digest, 0);
}

static void asr_release(struct asr *a)
{
	for (size_t i = 0; i < a->n_segs; i++)
		free(a->segs[i].text);
	free(a->segs);
	XXH64_freeState(a->digest);
	memset(a, 0, sizeof(*a));
}

/* Called after every chunk: progress, streaming; 1 = stop (cancelled). */
typedef int (*asr_chunk_fn)(struct asr *a, void *arg);

struct asr_job {
	struct asr *a;
	const int16_t *pcm;
	size_t n;
	const char *search; /* decode with this search, then go back; NULL = served one */
	asr_chunk_fn on_chunk;
	void *arg;
	int rv;
};

/* A whole decode on the device: one hand-off per request, not one per
 * chunk (on a loaded machine every hand-off waits for a scheduler slice).
 * on_chunk runs here too, on the pool thread: the runner_ctx calls it makes
 * (progress, chunks, cancel checks) are thread-safe. */
static void asr_kernel(void *arg, int index, int count)
{
	struct asr_job *j = arg;
	struct asr *a = j->a;
	struct sphinx *sp = a->sp;
	size_t off = 0;

	asr_close_open(sp);
	if (j->search && ps_set_search(sp->ps, j->search) < 0) {
		j->rv = -EIO;
		return;
	}
	j->rv = 0;
	asr_start(a);
	while (!a->failed && !j->rv) {
		size_t k = MIN(CHUNK_SAMPLES, j->n - off);
		int last = off + k >= j->n;

		a->fresh = 0;
		asr_step(a, j->pcm + off, k, last);
		off += k;
		if (!a->failed && j->on_chunk && j->on_chunk(a, j->arg))
			j->rv = -ECANCELED; /* the next decode closes the utterance */
		if (last)
			break;
	}
	if (a->failed)
		j->rv = -EIO;
	if (j->search) {
		asr_close_open(sp);
		if (ps_set_search(sp->ps, sp->default_search) < 0 && !j->rv)
			j->rv = -EIO;
	}
}

/* Decode pcm[0..n) (with search, NULL = the language model); 0, or -EIO
 * (decoder failure), -ECANCELED (by on_chunk), or a device error. The
 * caller owns a. */
static int asr_run(struct asr *a, const int16_t *pcm, size_t n, const char *search,
                   asr_chunk_fn on_chunk, void *arg)
{
	struct asr_job j = {
	    .a = a, .pcm = pcm, .n = n, .search = search, .on_chunk = on_chunk, .arg = arg};
	int r = device_parallel(a->sp->dev, asr_kernel, &j, 1);

	return r < 0 ? r : j.rv;
}

/* --- lifecycle --- */

static int model_file(const char *dir, const char *name, char *out, size_t outlen, char *err,
                      size_t errlen)
{
	if ((size_t)snprintf(out, outlen, "%s/%s", dir, name) >= outlen) {
		snprintf(err, errlen, "model path too long: %s/%s", dir, name);
		return -ENAMETOOLONG;
	}
	if (access(out, R_OK) < 0) {
		snprintf(
		    err, errlen,
		    "pocketsphinx model file %s is missing (install pocketsphinx-en-us, or set "
		    "MODEL_WEIGHTS_PATH to a directory holding en-us/, en-us.lm.bin and "
		    "cmudict-en-us.dict)",
		    out);
		return -ENOENT;
	}
	return 0;
}

static int sphinx_open(const struct config *cfg, struct mediad_device *dev, void **state, char *err,
                       size_t errlen)
{
	struct sphinx *sp = xcalloc(1, sizeof(*sp));
	const char *dir = cfg->model_weights_path && cfg->model_weights_path[0]
	                      ? cfg->model_weights_path
	                      : SPHINX_MODEL_DIR;

	sp->cfg = cfg;
	sp->dev = dev;
	snprintf(sp->model_dir, sizeof(sp->model_dir), "%s", dir);
	if (device_threads(dev) < 0) {
		snprintf(err, errlen, "the sphinx runner needs an open device with a parallel op");
		free(sp);
		return -EINVAL;
	}
	*state = sp;
	return 0;
}

static int load_canary(struct sphinx *sp, char *err, size_t errlen)
{
	struct audio_in_opts o = {.rate = SPHINX_RATE};
	char path[PATH_MAX], why[256];
	int fd, r;

	r = datafile_find(CANARY_FILE, path, sizeof(path));
	if (r < 0) {
		snprintf(err, errlen, "deep-probe clip %s not found (tried %.300s)", CANARY_FILE,
		         path);
		return r;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		r = -errno;
		snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
		return r;
	}
	r = audio_in_decode(fd, &o, &sp->canary, why, sizeof(why));
	close(fd);
	if (r < 0)
		snprintf(err, errlen, "deep-probe clip %s: %s", path, why);
	return r;
}

struct load_job {
	struct sphinx *sp;
	cmd_ln_t *cl;
	int failed;
};

/* ps_init reads the model and the language model: run it on the device,
 * like everything else the decoder computes. */
static void load_kernel(void *arg, int index, int count)
{
	struct load_job *j = arg;

	j->sp->ps = ps_init(j->cl);
	j->failed = !j->sp->ps;
}

/* The name of the language-model search that ps_init() set up (what
 * ps_get_search() would say, but that one leaks an iterator here). */
static int find_lm_search(struct sphinx *sp)
{
	for (ps_search_iter_t *it = ps_search_iter(sp->ps); it; it = ps_search_iter_next(it)) {
		const char *name = ps_search_iter_val(it);

		if (!sp->default_search[0] && name && ps_get_lm(sp->ps, name))
			snprintf(sp->default_search, sizeof(sp->default_search), "%s", name);
	}
	return sp->default_search[0] ? 0 : -1;
}

/* ps_set_jsgf_string() of this pocketsphinx leaks the parsed grammar: the
 * same steps, with the grammar freed. 0 or -1. */
static int add_grammar(struct sphinx *sp, const char *name, const char *text)
{
	jsgf_t *jsgf = jsgf_parse_string(text, NULL);
	jsgf_rule_t *rule = jsgf ? jsgf_get_public_rule(jsgf) : NULL;
	fsg_model_t *fsg = NULL;
	int r = -1;

	if (rule) {
		float lw = (float)cmd_ln_float32_r(ps_get_config(sp->ps), "-lw");
		fsg = jsgf_build_fsg(jsgf, rule, ps_get_logmath(sp->ps), lw);
	}
	if (fsg) {
		r = ps_set_fsg(sp->ps, name, fsg) < 0 ? -1 : 0;
		fsg_model_free(fsg); /* the search keeps its own reference */
	}
	if (jsgf)
		jsgf_grammar_free(jsgf);
	return r;
}

static int sphinx_load(struct sphinx *sp, char *err, size_t errlen)
{
	char hmm[PATH_MAX], lm[PATH_MAX], dict[PATH_MAX];
	struct load_job j = {.sp = sp};
	feat_t *feat;
	int r;

	if ((r = model_file(sp->model_dir, "en-us", hmm, sizeof(hmm), err, errlen)) < 0 ||
	    (r = model_file(sp->model_dir, "en-us.lm.bin", lm, sizeof(lm), err, errlen)) < 0 ||
	    (r = model_file(sp->model_dir, "cmudict-en-us.dict", dict, sizeof(dict), err, errlen)) <
	        0)
		return r;
	err_set_logfp(NULL);
	j.cl = cmd_ln_init(NULL, ps_args(), TRUE, "-hmm", hmm, "-lm", lm, "-dict", dict,
	                   "-samprate", "16000", NULL);
	if (!j.cl) {
		snprintf(err, errlen, "pocketsphinx rejected its configuration");
		return -EINVAL;
	}
	r = device_parallel(sp->dev, load_kernel, &j, 1);
	cmd_ln_free_r(j.cl);
	if (r < 0 || j.failed) {
		snprintf(err, errlen, "pocketsphinx could not load the model in %s", sp->model_dir);
		return r < 0 ? r : -EIO;
	}
	if (find_lm_search(sp) < 0) {
		snprintf(err, errlen, "pocketsphinx loaded no language-model search");
		return -EINVAL;
	}
	sp->frate = (int)cmd_ln_int32_r(ps_get_config(sp->ps), "-frate");
	if (sp->frate <= 0)
		sp->frate = 100;
	feat = ps_get_feat(sp->ps);
	if (feat && feat->cmn_struct && feat->cmn_struct->veclen <= CMN_MAX) {
		sp->cmn_len = feat->cmn_struct->veclen;
		memcpy(sp->cmn_init, feat->cmn_struct->cmn_mean,
		       (size_t)sp->cmn_len * sizeof(mfcc_t));
	}
	if (add_grammar(sp, CANARY_SEARCH, canary_grammar) < 0 ||
	    ps_set_search(sp->ps, sp->default_search) < 0) {
		snprintf(err, errlen, "pocketsphinx rejected the deep-probe grammar");
		return -EINVAL;
	}
	return 0;
}

static void segs_text(const struct asr *a, struct buf *out)
{
	for (size_t i = 0; i < a->n_segs; i++) {
		if (i)
			buf_puts(out, " ");
		buf_puts(out, a->segs[i].text);
	}
}

/* Decode the canary with the served search (the language model): loads
 * everything a real request touches. */
static int warm_transcript(struct sphinx *sp, struct buf *text)
{
	struct asr a;
	int r;

	asr_init(&a, sp, (double)sp->canary.n / SPHINX_RATE);
	r = asr_run(&a, sp->canary.samples, sp->canary.n, NULL, NULL, NULL);
	if (r == 0)
		segs_text(&a, text);
	asr_release(&a);
	return r;
}

static int sphinx_warmup(void *state, struct runner_info *info, char *err, size_t errlen)
{
	struct sphinx *sp = state;
	struct buf text;
	double t0 = now_s();
	int r;

	if ((r = load_canary(sp, err, errlen)) < 0 || (r = sphinx_load(sp, err, errlen)) < 0)
		return r;
	buf_init(&text, BUF_UNLIMITED);
	r = warm_transcript(sp, &text);
	if (r < 0) {
		snprintf(err, errlen, "warmup decode failed: %s", strerror(-r));
		buf_release(&text);
		return r;
	}
	log_info("sphinx: model %s loaded, canary transcribed as \"%s\" in %.2f s", sp->model_dir,
	         text.data ? text.data : "", now_s() - t0);
	if (!text.data || strcmp(text.data, CANARY_TEXT))
		log_warn("sphinx: canary transcript \"%s\" differs from \"%s\"",
		         text.data ? text.data : "", CANARY_TEXT);
	buf_release(&text);
	snprintf(info->model, sizeof(info->model), "%s",
	         sp->cfg->model_name && sp->cfg->model_name[0] ? sp->cfg->model_name
	                                                       : "pocketsphinx-en-us");
	snprintf(info->device, sizeof(info->device), "cpu (%d threads)",
	         device_threads(sp->dev));
	info->services = SVC_AUDIO;
	info->deep_supported = 1;
	info->synthetic_weights = 0;
	return 0;
}

static int sphinx_deep_probe(void *state, uint64_t *digest, char *err, size_t errlen)
{
	struct sphinx *sp = state;
	const int16_t *pcm = sp->canary.samples;
	size_t n = sp->canary.n;
	struct asr a;
	int r;

	if (faults_take(FAULT_CORRUPT_DEEP, NULL)) {
		size_t skip = (size_t)((double)n * CANARY_CORRUPT_SKIP);
		pcm += skip;
		n -= skip;
	}
	asr_init(&a, sp, (double)n / SPHINX_RATE);
	r = asr_run(&a, pcm, n, CANARY_SEARCH, NULL, NULL);
	*digest = XXH64_digest(a.digest);
	asr_release(&a);
	if (r < 0)
		snprintf(err, errlen, "deep-probe decode failed: %s", strerror(-r));
	return r;
}

static void sphinx_close(void *state)
{
	struct sphinx *sp = state;

	if (!sp)
		return;
	if (sp->ps)
		ps_free(sp->ps);
	audio_pcm_release(&sp->canary);
	free(sp);
}

/* --- requests --- */

struct stream_ctx {
	struct runner_ctx *ctx;
	struct runner_task *t;
	int stream;
	size_t sent;
};

static void send_line(struct stream_ctx *sc, const char *text)
{
	struct buf line;

	buf_init(&line, BUF_UNLIMITED);
	buf_puts(&line, "{\"text\":");
	buf_json_str(&line, text);
	buf_printf(&line, ",\"chunk_id\":%zu}\n", sc->sent++);
	runner_chunk(sc->ctx, sc->t, "application/x-ndjson", line.data, line.len);
	buf_release(&line);
}

static int on_chunk(struct asr *a, void *arg)
{
	struct stream_ctx *sc = arg;

	runner_progress(sc->ctx);
	if (sc->stream && a->fresh)
		send_line(sc, a->segs[a->n_segs - 1].text);
	return runner_cancelled(sc->ctx, sc->t);
}

static void decode_progress(void *arg)
{
	runner_progress(arg);
}

static int language_ok(const char *lang)
{
	static const char *const ok[] = {"en", "en-us", "en_us", "english", "en-gb", "en_gb"};

	if (!lang || !lang[0])
		return 1;
	for (size_t i = 0; i < ARRAY_SIZE(ok); i++)
		if (!strcasecmp(lang, ok[i]))
			return 1;
	return 0;
}

static void reply_transcript(struct runner_ctx *ctx, struct runner_task *t, const struct asr *a,
                             const char *fmt, const char *lang)
{
	struct buf body, text;

	buf_init(&body, BUF_UNLIMITED);
	if (!strcmp(fmt, "text")) {
		segs_text(a, &body);
		buf_puts(&body, "\n");
		runner_reply(ctx, t, 200, "text/plain; charset=utf-8", &body);
		return;
	}
	buf_puts(&body, "{\"text\":");
	buf_init(&text, BUF_UNLIMITED);
	segs_text(a, &text);
	buf_json_str(&body, text.data ? text.data : "");
	buf_release(&text);
	if (!strcmp(fmt, "verbose_json")) {
		buf_printf(&body, ",\"task\":\"%s\",\"language\":",
		           t->kind == TASK_TRANSLATE ? "translate" : "transcribe");
		buf_json_str(&body, lang && lang[0] ? lang : "en");
		buf_printf(&body, ",\"duration\":%.3f,\"segments\":[", a->duration);
		for (size_t i = 0; i < a->n_segs; i++) {
			buf_printf(&body, "%s{\"id\":%zu,\"start\":%.2f,\"end\":%.2f,\"text\":",
			           i ? "," : "", i, a->segs[i].start, a->segs[i].end);
			buf_json_str(&body, a->segs[i].text);
			buf_puts(&body, "}");
		}
		buf_puts(&body, "]");
	}
	buf_puts(&body, "}");
	runner_reply(ctx, t, 200, "application/json", &body);
}

static void run_one(struct sphinx *sp, struct runner_ctx *ctx, struct runner_task *t)
{
	const char *fmt = json_string_value(json_object_get(t->params, "response_format"));
	const char *lang = json_string_value(json_object_get(t->params, "language"));
	struct stream_ctx sc = {.ctx = ctx, .t = t};
	struct audio_in_opts o = {.rate = SPHINX_RATE, .progress = decode_progress, .arg = ctx};
	struct audio_pcm pcm;
	struct asr a;
	char why[384];
	int r;

	sc.stream = json_is_true(json_object_get(t->params, "stream"));
	if (!fmt)
		fmt = "json";
	if (!language_ok(lang)) {
		runner_reply_error(ctx, t, 422, "language",
		                   "language %.40s is not supported: this model (pocketsphinx "
		                   "en-us) transcribes English (en)",
		                   lang);
		return;
	}
	if (t->in_fd < 0) {
		runner_reply_error(ctx, t, 422, "file", "file is required");
		return;
	}
	o.max_seconds = sp->cfg->max_audio_duration_seconds;
	r = audio_in_decode(t->in_fd, &o, &pcm, why, sizeof(why));
	if (r < 0) {
		int status = r == -EFBIG                                  ? 413
		             : r == -EINVAL || r == -ENODATA || r == -EIO ? 422
		                                                          : 500;
		runner_reply_error(ctx, t, status, "file", "%s", why);
		return;
	}
	asr_init(&a, sp, pcm.duration);
	r = asr_run(&a, pcm.samples, pcm.n, NULL, on_chunk, &sc);
	audio_pcm_release(&pcm);
	if (r == -ECANCELED) {
		asr_release(&a);
		return;
	}
	if (r < 0 && sc.stream && sc.sent) {
		/* the 200 is committed: the stream ends with an error line */
		char line[160];
		int len = snprintf(line, sizeof(line),
		                   "{\"error\":{\"message\":\"speech decoder failed: %s\","
		                   "\"type\":\"server_error\",\"code\":500}}\n",
		                   strerror(-r));
		runner_chunk(ctx, t, "application/x-ndjson", line, (size_t)len);
		runner_end(ctx, t);
	} else if (r < 0) {
		runner_reply_error(ctx, t, 500, NULL, "speech decoder failed: %s", strerror(-r));
	} else if (sc.stream) {
		if (!sc.sent)
			send_line(&sc, "");
		runner_end(ctx, t);
	} else {
		reply_transcript(ctx, t, &a, fmt, lang);
	}
	asr_release(&a);
}

static void sphinx_run(void *state, struct runner_task **batch, size_t n, struct runner_ctx *ctx)
{
	struct sphinx *sp = state;

	for (size_t i = 0; i < n; i++) {
		struct runner_task *t = batch[i];

		if (runner_cancelled(ctx, t))
			continue;
		if (t->kind != TASK_TRANSCRIBE && t->kind != TASK_TRANSLATE) {
			runner_reply_error(ctx, t, 500, NULL, "the sphinx runner cannot run %s",
			                   task_kind_name(t->kind));
			continue;
		}
		run_one(sp, ctx, t);
	}
}

const struct runner_ops runner_sphinx_ops = {
    .name = "sphinx",
    .open = sphinx_open,
    .warmup = sphinx_warmup,
    .run = sphinx_run,
    .deep_probe = sphinx_deep_probe,
    .close = sphinx_close,
};
