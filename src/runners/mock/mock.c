/* runners/mock/mock.c: the mock runner, a test and drill tool (never the product).
 *
 * It serves every service with well-formed, deterministic outputs of the
 * right shape: a seeded picture as PNG/JPEG, a short tone as WAV/FLAC/OGG, a
 * fixed transcript, word tokens for chat (streamed as SSE), embeddings, an
 * MP4 for video jobs and a decreasing loss curve for fine-tuning jobs. Each
 * task takes MOCK_LATENCY_MS spread over MOCK_STEPS progress steps. Its deep
 * probe is real work: a fixed chain of small matrix products whose xxHash
 * digest is checked against the one taken at warmup; `corrupt_deep` flips a
 * weight bit for the replay and MOCK_DEEP_FAIL makes it fail or hang.
 * MOCK_WARMUP_HANG wedges the warmup itself (drills of the supervisor's
 * WORKER_WARMUP_TIMEOUT_SECONDS): the first N warmups on a device hang until
 * the worker is killed. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "faults.h"
#include "log.h"
#include "media.h"
#include "runner.h"
#include "mock.h"
#include "util.h"
#include "validate.h"

#define DIM 64

struct mock {
	const struct config *cfg;
	const struct mediad_device *dev;
	int golden_taken;
	float w[DIM * DIM];
};

static const char *words[] = {
	"the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "and", "a",
	"model", "serves", "media", "on", "every", "device", "with", "care", "today", "again",
};

static const char transcript[] = "the quick brown fox jumps over the lazy dog";

static uint64_t hash_str(const char *s, uint64_t seed)
{
	return XXH64(s, strlen(s), seed);
}

static void sleep_ns(uint64_t ns)
{
	struct timespec ts = {(time_t)(ns / 1000000000ull), (long)(ns % 1000000000ull)};

	if (ns == 0)
		return; /* nanosleep(0) still costs a timer-slack wait */
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static int mock_open(const struct config *cfg, struct mediad_device *dev, void **state, char *err,
		     size_t errlen)
{
	struct mock *m = xcalloc(1, sizeof(*m));
	uint64_t x = 0x9e3779b97f4a7c15ull;

	m->cfg = cfg;
	m->dev = dev;
	for (int i = 0; i < DIM * DIM; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		m->w[i] = ((float)(x % 2001) - 1000.0f) / (1000.0f * DIM);
	}
	*state = m;
	return 0;
}

/* The deep-probe replay: 8 rounds of v = tanh(W v) from a fixed start. */
static uint64_t forward_digest(const float *w)
{
	float v[DIM], t[DIM];

	for (int i = 0; i < DIM; i++)
		v[i] = (float)(i % 7) / 7.0f - 0.5f;
	for (int round = 0; round < 8; round++) {
		for (int i = 0; i < DIM; i++) {
			float s = 0;
			for (int j = 0; j < DIM; j++)
				s += w[i * DIM + j] * v[j];
			t[i] = tanhf(s + 0.1f * (float)round);
		}
		memcpy(v, t, sizeof(v));
	}
	return XXH64(v, sizeof(v), 0);
}

/* MOCK_WARMUP_HANG: the first N starts of a worker hang in warmup
 * (dev->incarnation counts the earlier starts), on every worker or only on
 * MOCK_WARMUP_HANG_WORKER. */
static int warmup_hangs(const struct mock *m)
{
	const char *only = m->cfg->mock_warmup_hang_worker;

	if (m->dev->incarnation >= m->cfg->mock_warmup_hang)
		return 0;
	return !only || !*only || !strcmp(only, m->dev->ids);
}

static int mock_warmup(void *state, struct runner_info *info, char *err, size_t errlen)
{
	struct mock *m = state;
	double left = m->cfg->mock_warmup_seconds;

	if (warmup_hangs(m)) {
		log_warn("MOCK_WARMUP_HANG=%d: warmup %d on device %s hangs until the worker is "
			 "killed (drill)",
			 m->cfg->mock_warmup_hang, m->dev->incarnation + 1, m->dev->ids);
		for (;;)
			pause();
	}
	sleep_ns((uint64_t)(left * 1e9));
	snprintf(info->model, sizeof(info->model), "%s",
		 m->cfg->model_name[0] ? m->cfg->model_name : "mediad-mock");
	snprintf(info->device, sizeof(info->device), "mock");
	info->services = SVC_ALL;
	info->deep_supported = 1;
	info->synthetic_weights = 1;
	return 0;
}

static int mock_deep_probe(void *state, uint64_t *digest, char *err, size_t errlen)
{
	struct mock *m = state;

	if (!m->golden_taken) {
		/* the worker takes the golden digest right after warmup: that
		 * replay is clean; MOCK_DEEP_FAIL acts on the probes after it */
		m->golden_taken = 1;
		*digest = forward_digest(m->w);
		return 0;
	}
	if (m->cfg->mock_deep_fail == MOCK_DEEP_ERROR) {
		snprintf(err, errlen, "MOCK_DEEP_FAIL=error");
		return -EIO;
	}
	if (m->cfg->mock_deep_fail == MOCK_DEEP_HANG)
		faults_hang();
	if (faults_take(FAULT_CORRUPT_DEEP, NULL)) {
		float w2[DIM * DIM];
		uint32_t bits;
		memcpy(w2, m->w, sizeof(w2));
		memcpy(&bits, &w2[DIM + 3], 4);
		bits ^= 1u << 22;
		memcpy(&w2[DIM + 3], &bits, 4);
		*digest = forward_digest(w2);
		return 0;
	}
	*digest = forward_digest(m->w);
	return 0;
}

/* Run the steps of one batch; 0, or -ECANCELED when every task was abandoned. */
static int run_steps(struct mock *m, struct runner_task **batch, size_t n,
		     struct runner_ctx *ctx, void (*on_step)(struct runner_ctx *, struct runner_task *,
							   int step, int steps, void *), void *arg)
{
	int steps = m->cfg->mock_steps;
	uint64_t per = (uint64_t)m->cfg->mock_latency_ms * 1000000ull / (uint64_t)steps;

	for (int s = 0; s < steps; s++) {
		size_t live = 0;
		sleep_ns(per);
		runner_progress(ctx);
		for (size_t i = 0; i < n; i++) {
			if (runner_cancelled(ctx, batch[i]))
				continue;
			live++;
			if (on_step)
				on_step(ctx, batch[i], s, steps, arg);
		}
		if (!live)
			return -ECANCELED;
	}
	return 0;
}

/* --- images --- */

static uint64_t task_seed(json_t *params)
{
	uint64_t seed;

	if (validate_params_seed(params, &seed) == 1)
		return seed;
	if (getrandom(&seed, sizeof(seed), 0) != sizeof(seed))
		seed = now_ns();
	return seed & 0x7fffffffffffffffull;
}

static void paint(uint8_t *rgb, int w, int h, uint64_t seed, uint64_t ph, double guidance)
{
	uint8_t r0 = (uint8_t)(seed), g0 = (uint8_t)(seed >> 8), b0 = (uint8_t)(seed >> 16);
	int cx = (int)(ph % (uint64_t)w), cy = (int)((ph >> 16) % (uint64_t)h);

	for (int y = 0; y < h; y++) {
		for (int x = 0; x < w; x++) {
			uint8_t *p = rgb + ((size_t)y * (size_t)w + (size_t)x) * 3;
			int d = abs(x - cx) + abs(y - cy);
			p[0] = (uint8_t)(r0 + x * 255 / w);
			p[1] = (uint8_t)(g0 + y * 255 / h);
			p[2] = (uint8_t)(b0 + (int)((double)d * guidance / 4.0));
		}
	}
}

static void reply_image(struct mock *m, struct runner_ctx *ctx, struct runner_task *t,
			double started)
{
	json_t *p = t->params;
	int w = (int)json_integer_value(json_object_get(p, "width"));
	int h = (int)json_integer_value(json_object_get(p, "height"));
	int n = (int)json_integer_value(json_object_get(p, "number_of_images"));
	int quality = (int)json_integer_value(json_object_get(p, "image_quality"));
	const char *fmt = json_string_value(json_object_get(p, "image_return_format"));
	const char *prompt = json_string_value(json_object_get(p, "prompt"));
	const char *neg = json_string_value(json_object_get(p, "negative_prompt"));
	double guidance = json_number_value(json_object_get(p, "guidance_scale"));
	int steps = (int)json_integer_value(json_object_get(p, "num_inference_steps"));
	uint64_t seed = task_seed(p);
	uint64_t ph = hash_str(prompt ? prompt : "", (uint64_t)steps) ^
		      hash_str(neg ? neg : "", 7);
	uint8_t *rgb = xmalloc((size_t)w * (size_t)h * 3);
	struct buf *b64 = xcalloc((size_t)n, sizeof(*b64));
	int png = fmt && !strcmp(fmt, "PNG");
	int r = 0;

	for (int i = 0; i < n && r == 0; i++) {
		struct buf img;
		buf_init(&img, BUF_UNLIMITED);
		buf_init(&b64[i], BUF_UNLIMITED);
		paint(rgb, w, h, seed + (uint64_t)i, ph, guidance);
		r = png ? media_encode_png(rgb, w, h, &img)
			: media_encode_jpeg(rgb, w, h, quality, &img);
		if (r == 0)
			r = media_base64_encode(img.data, img.len, &b64[i]);
		buf_release(&img);
	}
	free(rgb);
	if (r < 0)
		runner_reply_error(ctx, t, 500, NULL, "image encoding failed: %s", strerror(-r));
	else
		runner_reply_images(ctx, t, b64, n, now_s() - started, seed);
	for (int i = 0; i < n; i++)
		buf_release(&b64[i]);
	free(b64);
}

/* --- audio --- */

static void reply_transcript(struct runner_ctx *ctx, struct runner_task *t)
{
	const char *fmt = json_string_value(json_object_get(t->params, "response_format"));
	json_t *stream = json_object_get(t->params, "stream");
	off_t size = t->in_fd >= 0 ? lseek(t->in_fd, 0, SEEK_END) : 0;
	double duration = size > 44 ? (double)(size - 44) / 32000.0 : 0.0;
	struct buf body;

	if (size <= 0) {
		runner_reply_error(ctx, t, 422, "file", "file must not be empty");
		return;
	}
	if (duration < 1.0)
		duration = 1.0;
	buf_init(&body, BUF_UNLIMITED);
	if (json_is_true(stream)) {
		for (size_t i = 0; i < 9; i++) {
			buf_reset(&body);
			buf_puts(&body, "{\"text\":");
			buf_json_str(&body, words[i == 6 ? 0 : (i < 6 ? i : i - 1)]);
			buf_printf(&body, ",\"chunk_id\":%zu}\n", i);
			runner_chunk(ctx, t, "application/x-ndjson", body.data, body.len);
		}
		buf_release(&body);
		runner_end(ctx, t);
		return;
	}
	if (fmt && !strcmp(fmt, "text")) {
		buf_puts(&body, transcript);
		buf_puts(&body, "\n");
		runner_reply(ctx, t, 200, "text/plain; charset=utf-8", &body);
		return;
	}
	buf_puts(&body, "{\"text\":");
	buf_json_str(&body, transcript);
	if (fmt && !strcmp(fmt, "verbose_json")) {
		buf_printf(&body, ",\"task\":\"%s\",\"language\":",
			   t->kind == TASK_TRANSLATE ? "translate" : "transcribe");
		buf_json_str(&body, json_string_value(json_object_get(t->params, "language")));
		buf_printf(&body, ",\"duration\":%.3f,\"segments\":[", duration);
		buf_printf(&body, "{\"id\":0,\"start\":0.000,\"end\":%.3f,\"text\":\"the quick brown "
				  "fox\"},", duration / 2);
		buf_printf(&body, "{\"id\":1,\"start\":%.3f,\"end\":%.3f,\"text\":\"jumps over the "
				  "lazy dog\"}]", duration / 2, duration);
	}
	buf_puts(&body, "}");
	runner_reply(ctx, t, 200, "application/json", &body);
}

static void reply_speech(struct runner_ctx *ctx, struct runner_task *t)
{
	const char *input = json_string_value(json_object_get(t->params, "input"));
	const char *fmt = json_string_value(json_object_get(t->params, "response_format"));
	double speed = json_number_value(json_object_get(t->params, "speed"));
	const int rate = 16000;
	size_t len = input ? strlen(input) : 0;
	double dur = MIN(30.0, MAX(0.25, 0.06 * (double)len / (speed > 0 ? speed : 1.0)));
	size_t n = (size_t)(dur * rate);
	int16_t *pcm = xmalloc(n * sizeof(*pcm));
	uint64_t h = hash_str(input ? input : "", 1);
	struct buf audio, body;
	int r;

	for (size_t i = 0; i < n; i++) {
		size_t ci = len ? (i * len / n) : 0;
		double f = 200.0 + (double)((unsigned char)(input ? input[ci] : 'a') % 32) * 20.0 +
			   (double)(h % 50);
		pcm[i] = (int16_t)(8000.0 * sin(2.0 * M_PI * f * (double)i / rate));
	}
	buf_init(&audio, BUF_UNLIMITED);
	buf_init(&body, BUF_UNLIMITED);
	if (!strcmp(fmt, "pcm")) {
		buf_append(&audio, pcm, n * sizeof(*pcm));
		free(pcm);
		runner_reply(ctx, t, 200, "audio/pcm", &audio);
		return;
	}
	r = media_encode_audio(pcm, n, rate, 1, !strcmp(fmt, "json") ? "wav" : fmt, &audio);
	free(pcm);
	if (r == -ENOTSUP) {
		buf_release(&audio);
		runner_reply_error(ctx, t, 422, "response_format",
				   "response_format %s is not available in this build", fmt);
		return;
	}
	if (r < 0) {
		buf_release(&audio);
		runner_reply_error(ctx, t, 500, NULL, "audio encoding failed: %s", strerror(-r));
		return;
	}
	if (!strcmp(fmt, "json")) {
		buf_puts(&body, "{\"audio\":\"");
		media_base64_encode(audio.data, audio.len, &body);
		buf_printf(&body, "\",\"duration\":%.3f,\"sample_rate\":%d,\"format\":\"wav\"}",
			   (double)n / rate, rate);
		buf_release(&audio);
		runner_reply(ctx, t, 200, "application/json", &body);
		return;
	}
	buf_release(&body);
	runner_reply(ctx, t, 200, media_audio_content_type(fmt), &audio);
}

/* --- text --- */

struct gen {
	int n_tokens;
	uint64_t h;
	int emitted;
	char id[40];
	long long created;
	const char *model;
};

static const char *token_at(const struct gen *g, int i)
{
	return words[(g->h + (uint64_t)i * 2654435761u) % ARRAY_SIZE(words)];
}

static void prompt_text(json_t *p, struct buf *out)
{
	json_t *msgs = json_object_get(p, "messages");
	json_t *prompt = json_object_get(p, "prompt");
	size_t i;
	json_t *v;

	if (json_is_array(msgs)) {
		json_array_foreach(msgs, i, v) {
			const char *c = json_string_value(json_object_get(v, "content"));
			buf_puts(out, c ? c : "");
			buf_puts(out, "\n");
		}
	} else if (json_is_string(prompt)) {
		buf_puts(out, json_string_value(prompt));
	} else if (json_is_array(prompt)) {
		json_array_foreach(prompt, i, v) buf_puts(out, json_string_value(v) ? json_string_value(v) : "");
	}
}

static int count_words(const char *s)
{
	int n = 0, in = 0;

	for (; *s; s++) {
		int sp = *s == ' ' || *s == '\n' || *s == '\t';
		if (!sp && !in)
			n++;
		in = !sp;
	}
	return n;
}

static void sse_chunk(struct runner_ctx *ctx, struct runner_task *t, struct gen *g,
		      const char *delta_token, int role, const char *finish)
{
	struct buf b;
	int chat = t->kind == TASK_CHAT;

	buf_init(&b, BUF_UNLIMITED);
	buf_printf(&b, "data: {\"id\":\"%s\",\"object\":\"%s\",\"created\":%lld,\"model\":", g->id,
		   chat ? "chat.completion.chunk" : "text_completion", g->created);
	buf_json_str(&b, g->model);
	buf_puts(&b, ",\"choices\":[{\"index\":0,");
	if (chat) {
		buf_puts(&b, "\"delta\":{");
		if (role)
			buf_puts(&b, "\"role\":\"assistant\",\"content\":\"\"");
		else if (delta_token) {
			buf_puts(&b, "\"content\":");
			buf_json_str(&b, delta_token);
		}
		buf_puts(&b, "}");
	} else {
		buf_puts(&b, "\"text\":");
		buf_json_str(&b, delta_token ? delta_token : "");
		buf_puts(&b, ",\"logprobs\":null");
	}
	buf_puts(&b, ",\"finish_reason\":");
	if (finish)
		buf_json_str(&b, finish);
	else
		buf_puts(&b, "null");
	buf_puts(&b, "}]}\n\n");
	runner_chunk(ctx, t, "text/event-stream", b.data, b.len);
	buf_release(&b);
}

static void gen_emit_upto(struct runner_ctx *ctx, struct runner_task *t, struct gen *g, int upto)
{
	char tok[32];

	for (; g->emitted < upto; g->emitted++) {
		snprintf(tok, sizeof(tok), "%s%s", g->emitted ? " " : "", token_at(g, g->emitted));
		sse_chunk(ctx, t, g, tok, 0, NULL);
	}
}

static void reply_text(struct mock *m, struct runner_ctx *ctx, struct runner_task **batch,
		       size_t n)
{
	struct gen *gens = xcalloc(n, sizeof(*gens));
	int steps = m->cfg->mock_steps;
	uint64_t per = (uint64_t)m->cfg->mock_latency_ms * 1000000ull / (uint64_t)steps;
	struct buf pt;

	buf_init(&pt, BUF_UNLIMITED);
	for (size_t i = 0; i < n; i++) {
		struct gen *g = &gens[i];
		json_t *p = batch[i]->params;
		int max_tokens = (int)json_integer_value(json_object_get(p, "max_tokens"));
		json_t *model = json_object_get(p, "model");
		buf_reset(&pt);
		prompt_text(p, &pt);
		uint64_t seed = 0;
		validate_params_seed(p, &seed);
		g->h = hash_str(pt.data ? pt.data : "", seed);
		g->n_tokens = MIN(max_tokens, 16);
		snprintf(g->id, sizeof(g->id), "%s-%016llx", batch[i]->kind == TASK_CHAT ? "chatcmpl" : "cmpl",
			 (unsigned long long)batch[i]->id);
		g->created = (long long)wall_s();
		g->model = json_is_string(model) ? json_string_value(model)
						  : (m->cfg->model_name[0] ? m->cfg->model_name : "mediad-mock");
		if (json_is_true(json_object_get(p, "stream")) && batch[i]->kind == TASK_CHAT)
			sse_chunk(ctx, batch[i], g, NULL, 1, NULL);
	}
	for (int s = 0; s < steps; s++) {
		sleep_ns(per);
		runner_progress(ctx);
		for (size_t i = 0; i < n; i++)
			if (json_is_true(json_object_get(batch[i]->params, "stream")) &&
			    !runner_cancelled(ctx, batch[i]))
				gen_emit_upto(ctx, batch[i], &gens[i], gens[i].n_tokens * (s + 1) / steps);
	}
	for (size_t i = 0; i < n; i++) {
		struct runner_task *t = batch[i];
		struct gen *g = &gens[i];
		json_t *p = t->params;
		const char *finish = g->n_tokens < 16 ? "length" : "stop";
		int chat = t->kind == TASK_CHAT;
		struct buf body;

		buf_reset(&pt);
		prompt_text(p, &pt);
		int ptoks = count_words(pt.data ? pt.data : "");
		buf_init(&body, BUF_UNLIMITED);
		if (json_is_true(json_object_get(p, "stream"))) {
			gen_emit_upto(ctx, t, g, g->n_tokens);
			sse_chunk(ctx, t, g, NULL, 0, finish);
			if (json_is_true(json_object_get(json_object_get(p, "stream_options"),
							 "include_usage"))) {
				buf_printf(&body, "data: {\"id\":\"%s\",\"object\":\"%s\",\"created\":%lld,"
						  "\"choices\":[],\"usage\":{\"prompt_tokens\":%d,"
						  "\"completion_tokens\":%d,\"total_tokens\":%d}}\n\n",
					   g->id, chat ? "chat.completion.chunk" : "text_completion",
					   g->created, ptoks, g->n_tokens, ptoks + g->n_tokens);
				runner_chunk(ctx, t, "text/event-stream", body.data, body.len);
				buf_reset(&body);
			}
			runner_chunk(ctx, t, "text/event-stream", "data: [DONE]\n\n", 14);
			runner_end(ctx, t);
			buf_release(&body);
			continue;
		}
		struct buf text;
		buf_init(&text, BUF_UNLIMITED);
		for (int k = 0; k < g->n_tokens; k++)
			buf_printf(&text, "%s%s", k ? " " : "", token_at(g, k));
		buf_printf(&body, "{\"id\":\"%s\",\"object\":\"%s\",\"created\":%lld,\"model\":", g->id,
			   chat ? "chat.completion" : "text_completion", g->created);
		buf_json_str(&body, g->model);
		buf_puts(&body, ",\"choices\":[{\"index\":0,");
		if (chat) {
			buf_puts(&body, "\"message\":{\"role\":\"assistant\",\"content\":");
			buf_json_str(&body, text.data ? text.data : "");
			buf_puts(&body, "}");
		} else {
			buf_puts(&body, "\"text\":");
			buf_json_str(&body, text.data ? text.data : "");
			buf_puts(&body, ",\"logprobs\":null");
		}
		buf_printf(&body, ",\"finish_reason\":\"%s\"}],\"usage\":{\"prompt_tokens\":%d,"
				  "\"completion_tokens\":%d,\"total_tokens\":%d}}",
			   finish, ptoks, g->n_tokens, ptoks + g->n_tokens);
		buf_release(&text);
		runner_reply(ctx, t, 200, "application/json", &body);
	}
	buf_release(&pt);
	free(gens);
}

static void reply_tokenize(struct runner_ctx *ctx, struct runner_task *t)
{
	struct buf pt, body;

	buf_init(&pt, BUF_UNLIMITED);
	buf_init(&body, BUF_UNLIMITED);
	prompt_text(t->params, &pt);
	buf_puts(&body, "{\"tokens\":[");
	for (size_t i = 0; i < pt.len; i++)
		buf_printf(&body, "%s%u", i ? "," : "", (unsigned char)pt.data[i]);
	buf_printf(&body, "],\"count\":%zu,\"max_model_len\":4096}", pt.len);
	buf_release(&pt);
	runner_reply(ctx, t, 200, "application/json", &body);
}

static void reply_detokenize(struct runner_ctx *ctx, struct runner_task *t)
{
	json_t *toks = json_object_get(t->params, "tokens");
	struct buf text, body;
	size_t i;
	json_t *v;

	buf_init(&text, BUF_UNLIMITED);
	json_array_foreach(toks, i, v) {
		json_int_t id = json_integer_value(v);
		if (id < 1 || id > 255) {
			buf_release(&text);
			runner_reply_error(ctx, t, 422, "tokens",
					   "tokens[%zu] must be a token id between 1 and 255 for "
					   "this model", i);
			return;
		}
		char c = (char)id;
		buf_append(&text, &c, 1);
	}
	buf_init(&body, BUF_UNLIMITED);
	buf_puts(&body, "{\"prompt\":");
	buf_json_str(&body, text.data ? text.data : "");
	buf_puts(&body, "}");
	buf_release(&text);
	runner_reply(ctx, t, 200, "application/json", &body);
}

static void reply_embed(struct mock *m, struct runner_ctx *ctx, struct runner_task *t)
{
	json_t *input = json_object_get(t->params, "input");
	json_t *model = json_object_get(t->params, "model");
	struct buf body;
	size_t n = json_is_array(input) ? json_array_size(input) : 1;
	int toks = 0;

	buf_init(&body, BUF_UNLIMITED);
	buf_puts(&body, "{\"object\":\"list\",\"data\":[");
	for (size_t i = 0; i < n; i++) {
		const char *s = json_string_value(json_is_array(input) ? json_array_get(input, i)
								       : input);
		float v[DIM];
		double norm = 0;
		toks += count_words(s ? s : "");
		for (int k = 0; k < DIM; k++) {
			v[k] = (float)((double)(hash_str(s ? s : "", (uint64_t)k) % 2001) - 1000.0);
			norm += (double)v[k] * v[k];
		}
		norm = sqrt(norm);
		buf_printf(&body, "%s{\"object\":\"embedding\",\"index\":%zu,\"embedding\":[",
			   i ? "," : "", i);
		for (int k = 0; k < DIM; k++)
			buf_printf(&body, "%s%.6f", k ? "," : "", (double)v[k] / norm);
		buf_puts(&body, "]}");
	}
	buf_puts(&body, "],\"model\":");
	buf_json_str(&body, json_is_string(model) ? json_string_value(model)
						  : (m->cfg->model_name[0] ? m->cfg->model_name
									   : "mediad-mock"));
	buf_printf(&body, ",\"usage\":{\"prompt_tokens\":%d,\"total_tokens\":%d}}", toks, toks);
	runner_reply(ctx, t, 200, "application/json", &body);
}

/* --- jobs --- */

static void job_progress(struct runner_ctx *ctx, struct runner_task *t, int step, int steps,
			 void *arg)
{
	char ev[64];
	int n = snprintf(ev, sizeof(ev), "{\"progress\":%.4f}", (double)(step + 1) / steps * 0.99);

	runner_chunk(ctx, t, "application/json", ev, (size_t)n);
}

static void reply_video(struct mock *m, struct runner_ctx *ctx, struct runner_task *t)
{
	json_t *p = t->params;
	int w = (int)json_integer_value(json_object_get(p, "width"));
	int h = (int)json_integer_value(json_object_get(p, "height"));
	int frames = (int)json_integer_value(json_object_get(p, "num_frames"));
	int fps = (int)json_integer_value(json_object_get(p, "fps"));
	const char *prompt = json_string_value(json_object_get(p, "prompt"));
	uint64_t seed = task_seed(p);
	uint8_t *rgb = xmalloc((size_t)w * (size_t)h * 3 * (size_t)frames);
	struct buf mp4;
	int r;

	for (int f = 0; f < frames; f++)
		paint(rgb + (size_t)f * (size_t)w * (size_t)h * 3, w, h, seed + (uint64_t)f * 3,
		      hash_str(prompt ? prompt : "", (uint64_t)f), 5.0);
	buf_init(&mp4, BUF_UNLIMITED);
	r = media_encode_mp4(rgb, frames, w, h, fps, &mp4);
	free(rgb);
	if (r < 0) {
		buf_release(&mp4);
		runner_reply_error(ctx, t, 500, NULL, "video encoding failed: %s", strerror(-r));
		return;
	}
	runner_reply(ctx, t, 200, "video/mp4", &mp4);
}

static void run_training(struct mock *m, struct runner_ctx *ctx, struct runner_task *t)
{
	json_t *hp = json_object_get(t->params, "hyperparameters");
	int n_steps = (int)json_integer_value(json_object_get(hp, "n_steps"));
	double lr = json_number_value(json_object_get(hp, "learning_rate"));
	uint64_t per = (uint64_t)m->cfg->mock_latency_ms * 1000000ull / (uint64_t)m->cfg->mock_steps;
	uint64_t h = hash_str(json_dumps(hp, 0) ? "hp" : "", 3);
	double loss = 0;
	char ev[256];
	int n;

	if (n_steps <= 0)
		n_steps = 100;
	for (int s = 1; s <= n_steps; s++) {
		if (runner_cancelled(ctx, t))
			return;
		sleep_ns(per);
		runner_progress(ctx);
		loss = 0.3 + 2.2 * exp(-3.0 * s / n_steps) +
		       0.02 * (double)((h + (uint64_t)s * 7919) % 100) / 100.0;
		n = snprintf(ev, sizeof(ev),
			     "{\"progress\":%.4f,\"metric\":{\"step\":%d,\"loss\":%.5f,"
			     "\"learning_rate\":%g}}",
			     (double)s / n_steps * 0.99, s, loss, lr);
		runner_chunk(ctx, t, "application/json", ev, (size_t)n);
		if (s % MAX(1, n_steps / 4) == 0 || s == n_steps) {
			n = snprintf(ev, sizeof(ev),
				     "{\"checkpoint\":{\"id\":\"ckpt-step-%d\",\"step\":%d,"
				     "\"loss\":%.5f},\"log\":\"step %d/%d loss %.4f, checkpoint "
				     "saved\"}",
				     s, s, loss, s, n_steps, loss);
			runner_chunk(ctx, t, "application/json", ev, (size_t)n);
		}
	}
	struct buf body;
	buf_init(&body, BUF_UNLIMITED);
	buf_printf(&body, "{\"trained_steps\":%d,\"final_loss\":%.5f}", n_steps, loss);
	runner_reply(ctx, t, 200, "application/json", &body);
}

static void mock_run(void *state, struct runner_task **batch, size_t n, struct runner_ctx *ctx)
{
	struct mock *m = state;
	double started = now_s();
	enum task_kind kind = batch[0]->kind;

	if (kind == TASK_CHAT || kind == TASK_COMPLETION) {
		reply_text(m, ctx, batch, n);
		return;
	}
	if (kind == TASK_TRAIN) {
		for (size_t i = 0; i < n; i++)
			run_training(m, ctx, batch[i]);
		return;
	}
	if (run_steps(m, batch, n, ctx, kind == TASK_VIDEO_GEN ? job_progress : NULL, NULL) < 0)
		return;
	for (size_t i = 0; i < n; i++) {
		struct runner_task *t = batch[i];
		if (runner_cancelled(ctx, t))
			continue;
		switch (t->kind) {
		case TASK_IMAGE_GEN: reply_image(m, ctx, t, started); break;
		case TASK_TRANSCRIBE:
		case TASK_TRANSLATE: reply_transcript(ctx, t); break;
		case TASK_SPEECH: reply_speech(ctx, t); break;
		case TASK_TOKENIZE: reply_tokenize(ctx, t); break;
		case TASK_DETOKENIZE: reply_detokenize(ctx, t); break;
		case TASK_EMBED: reply_embed(m, ctx, t); break;
		case TASK_VIDEO_GEN: reply_video(m, ctx, t); break;
		default:
			runner_reply_error(ctx, t, 500, NULL, "mock runner cannot run %s",
					   task_kind_name(t->kind));
		}
	}
}

static void mock_close(void *state)
{
	free(state);
}

const struct runner_ops runner_mock_ops = {
	.name = "mock",
	.open = mock_open,
	.warmup = mock_warmup,
	.run = mock_run,
	.deep_probe = mock_deep_probe,
	.close = mock_close,
};
