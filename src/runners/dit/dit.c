/* runners/dit/dit.c: the dit runner, image generation with a diffusion
 * transformer on the cpu device (dit_model.h, dit_sampler.h).
 *
 * open: BLIS set up, the device's pool as the execution context.
 * warmup: the preset's weights (MODEL_WEIGHTS_PATH, or seeded synthetic
 * weights, said plainly in the log and in /v1/models), the work area sized
 * for the largest pass served (two 1024x1024 images' tokens, i.e. one with
 * its guidance pass) and the largest decode, then the served shapes run
 * once: the deep-probe replay, twice, checked to give the same digest, and
 * one guided step plus a decode at the default 512x512. A request or a
 * probe never allocates a work area or plans anything new.
 * run: every image of every task of the batch is denoised together, a
 * progress step after every transformer block and every forward pass (a
 * pass of large images takes seconds); cancelled tasks drop out between
 * steps.
 * deep_probe: replays the warmup's 2-step forward of a 64x64 image with a
 * fixed seed and prompt and returns the digest of its latent and decoded
 * output. fault corrupt_deep flips one bit of a real weight (the largest
 * patch-embedding weight) for that replay and restores it after. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "dit.h"
#include "dit_kernels.h"
#include "dit_model.h"
#include "dit_sampler.h"
#include "faults.h"
#include "log.h"
#include "media.h"
#include "runner.h"
#include "util.h"
#include "validate.h"

#define PROBE_SEED     0x70726f6265ull
#define PROBE_SIDE     64
#define PROBE_STEPS    2
#define PROBE_PROMPT   "mediad deep probe: a red cube on a wooden table"
#define PROBE_NEGATIVE "blurry"
#define PROBE_GUIDANCE 4.0f
#define WARM_SIDE      512
/* Work area: the tokens of two 1024x1024 images per pass. */
#define MAX_ROWS (2 * DIT_MAX_TOKENS)
#define MAX_SEGS 512
#define FLIP_BIT 22 /* the top mantissa bit: changes the weight by 25-50% */

static const char *const preset_names[] = {
    [DIT_PRESET_TINY] = "tiny", [DIT_PRESET_SMALL] = "small", [DIT_PRESET_BASE] = "base"};

struct dit_runner {
	const struct config *cfg;
	struct dit_exec ex;
	const struct dit_arch *arch;
	struct dit_model model;
	struct dit_work work;
	struct dit_sampler sampler;
	struct dit_image probe;
	size_t flip; /* index into model.x_w */
	int ready;
};

static int dit_open(const struct config *cfg, struct mediad_device *dev, void **state, char *err,
                    size_t errlen)
{
	struct dit_runner *r;
	const struct dit_arch *arch;
	int rc;

	if ((unsigned)cfg->dit_preset >= ARRAY_SIZE(preset_names) ||
	    !(arch = dit_arch_find(preset_names[cfg->dit_preset]))) {
		snprintf(err, errlen, "unknown DIT_PRESET %d", (int)cfg->dit_preset);
		return -EINVAL;
	}
	dit_kernels_init();
	r = xcalloc(1, sizeof(*r));
	rc = dit_exec_init(&r->ex, dev);
	if (rc < 0) {
		snprintf(err, errlen, "the dit runner needs an open device (%s)",
		         strerror(-rc));
		free(r);
		return rc;
	}
	r->cfg = cfg;
	r->arch = arch;
	*state = r;
	return 0;
}

/* The deep-probe replay: the probe image from its seed, PROBE_STEPS steps,
 * decoded; the digest of latent and decoder output. */
static uint64_t probe_replay(struct dit_runner *r)
{
	struct dit_image *im = &r->probe;
	struct dit_image *list[1] = {im};
	const float *rgbf;

	dit_sampler_begin(&r->sampler, im);
	dit_sampler_run(&r->sampler, list, 1);
	rgbf = dit_sampler_decode(&r->sampler, im, NULL);
	return dit_image_digest(im, rgbf);
}

static int load_weights(struct dit_runner *r, char *err, size_t errlen)
{
	const char *path = r->cfg->model_weights_path;
	int unused = 0, rc;

	dit_model_init(&r->model, r->arch);
	if (!path || !path[0]) {
		dit_model_synthesize(&r->model, DIT_SYNTH_SEED, &r->ex);
		log_warn(
		    "dit: no MODEL_WEIGHTS_PATH: serving seeded synthetic weights of preset %s "
		    "(%zu parameters, seed %#llx); the pipeline and the device do real work, "
		    "the pictures are not meaningful without trained weights",
		    r->arch->name, r->model.n_params, (unsigned long long)DIT_SYNTH_SEED);
		return 0;
	}
	rc = dit_model_load(&r->model, path, &unused, err, errlen);
	if (rc < 0)
		return rc;
	log_info("dit: loaded %d tensors (%zu parameters) of preset %s from %s%s",
	         r->model.n_tensors, r->model.n_params, r->arch->name, path,
	         unused > 0 ? "; the file has tensors the model does not use" : "");
	return 0;
}

/* The flipped weight: the largest patch-embedding weight, so the flip
 * changes every token of every image. */
static size_t pick_flip(const struct dit_model *m)
{
	size_t n = (size_t)m->arch.hidden * DIT_PATCH_DIM, best = 0;

	for (size_t i = 1; i < n; i++)
		if (fabsf(m->x_w[i]) > fabsf(m->x_w[best]))
			best = i;
	return best;
}

/* One guided step and a decode at WARM_SIDE: the served path end to end. */
static void warm_served_shape(struct dit_runner *r)
{
	struct dit_image im = {.prompt = "warmup",
	                       .negative = "",
	                       .guidance = 5.0f,
	                       .steps = 1,
	                       .seed = 1,
	                       .width = WARM_SIDE,
	                       .height = WARM_SIDE};
	struct dit_image *list[1] = {&im};

	if (dit_image_alloc(&im, &r->model) < 0)
		return;
	dit_sampler_begin(&r->sampler, &im);
	dit_sampler_run(&r->sampler, list, 1);
	dit_sampler_decode(&r->sampler, &im, NULL);
	dit_image_release(&im);
}

static int dit_warmup(void *state, struct runner_info *info, char *err, size_t errlen)
{
	struct dit_runner *r = state;
	double t0 = now_s(), t1;
	uint64_t d1, d2;
	int forced, rc;
	const char *arch;

	rc = load_weights(r, err, errlen);
	if (rc < 0)
		return rc;
	dit_work_init(&r->work, &r->model, MAX_ROWS, MAX_SEGS, r->ex.slots);
	dit_sampler_init(&r->sampler, &r->model, &r->work, &r->ex);
	r->probe = (struct dit_image){.prompt = PROBE_PROMPT,
	                              .negative = PROBE_NEGATIVE,
	                              .guidance = PROBE_GUIDANCE,
	                              .steps = PROBE_STEPS,
	                              .seed = PROBE_SEED,
	                              .width = PROBE_SIDE,
	                              .height = PROBE_SIDE};
	dit_image_alloc(&r->probe, &r->model);
	r->flip = pick_flip(&r->model);
	t1 = now_s();
	d1 = probe_replay(r);
	d2 = probe_replay(r);
	if (d1 != d2) {
		snprintf(err, errlen,
		         "the deep-probe replay is not deterministic (%016llx then "
		         "%016llx): the device computes wrong results",
		         (unsigned long long)d1, (unsigned long long)d2);
		return -EIO;
	}
	warm_served_shape(r);
	arch = dit_kernels_blis_arch(&forced);
	log_info("dit: preset %s (hidden %d, depth %d, heads %d), %d threads, BLIS %s; work area "
	         "%.1f MiB; weights in %.2f s, served shapes warmed in %.2f s",
	         r->arch->name, r->arch->hidden, r->arch->depth, r->arch->heads, r->ex.slots, arch,
	         (double)r->work.bytes / (1 << 20), t1 - t0, now_s() - t1);
	snprintf(info->model, sizeof(info->model), "%s",
	         r->cfg->model_name[0] ? r->cfg->model_name : "");
	if (!info->model[0])
		snprintf(info->model, sizeof(info->model), "mediad-dit-%s", r->arch->name);
	snprintf(info->device, sizeof(info->device), "cpu x%d (BLIS %s)", r->ex.slots, arch);
	info->services = SVC_IMAGE;
	info->deep_supported = 1;
	info->synthetic_weights = !r->cfg->model_weights_path || !r->cfg->model_weights_path[0];
	info->max_batch = r->cfg->max_batch_size;
	r->ready = 1;
	return 0;
}

static int dit_deep_probe(void *state, uint64_t *digest, char *err, size_t errlen)
{
	struct dit_runner *r = state;
	float *w, saved;
	uint32_t bits;

	if (!r->ready) {
		snprintf(err, errlen, "dit runner is not warmed up");
		return -EAGAIN;
	}
	if (!faults_take(FAULT_CORRUPT_DEEP, NULL)) {
		*digest = probe_replay(r);
		return 0;
	}
	w = &r->model.x_w[r->flip];
	saved = *w;
	memcpy(&bits, w, sizeof(bits));
	bits ^= 1u << FLIP_BIT;
	memcpy(w, &bits, sizeof(bits));
	log_warn("fault injection: corrupt_deep flips bit %d of x_embedder.proj.weight[%zu] "
	         "(%g -> %g) for this replay",
	         FLIP_BIT, r->flip, (double)saved, (double)*w);
	*digest = probe_replay(r);
	*w = saved;
	return 0;
}

/* --- run --- */

struct job {
	struct runner_task *t;
	uint64_t seed;
	int n;
	struct dit_image *ims;
	int png, quality;
	int skip; /* answered already (bad parameters) */
};

struct run_ctx {
	struct runner_ctx *ctx;
};

static void on_pass(void *arg)
{
	struct run_ctx *rc = arg;

	runner_progress(rc->ctx);
}

static int keep_image(void *arg, struct dit_image *im)
{
	struct run_ctx *rc = arg;
	struct job *j = im->owner;

	return !runner_cancelled(rc->ctx, j->t);
}

static uint64_t task_seed(const json_t *params)
{
	uint64_t seed;

	if (validate_params_seed(params, &seed) == 1)
		return seed;
	if (getrandom(&seed, sizeof(seed), 0) != sizeof(seed))
		seed = now_ns();
	return seed & 0x7fffffffffffffffull;
}

static int int_param(const json_t *p, const char *key)
{
	return (int)json_integer_value(json_object_get(p, key));
}

/* Fill j from its task's validated parameters; 0 or replies 422/404. */
static int job_init(struct dit_runner *r, struct job *j, struct runner_task *t,
                    struct runner_ctx *ctx)
{
	const json_t *p = t->params;
	const char *fmt = json_string_value(json_object_get(p, "image_return_format"));
	const char *neg = json_string_value(json_object_get(p, "negative_prompt"));

	memset(j, 0, sizeof(*j));
	j->t = t;
	if (t->kind != TASK_IMAGE_GEN) {
		runner_reply_error(ctx, t, 404, NULL,
		                   "runner dit serves image generation only, "
		                   "not %s (set MODEL_SERVICE=image)",
		                   task_kind_name(t->kind));
		return -1;
	}
	j->seed = task_seed(p);
	j->n = MAX(1, int_param(p, "number_of_images"));
	j->png = fmt && !strcmp(fmt, "PNG");
	j->quality = int_param(p, "image_quality");
	j->ims = xcalloc((size_t)j->n, sizeof(*j->ims));
	for (int i = 0; i < j->n; i++) {
		struct dit_image *im = &j->ims[i];

		im->prompt = json_string_value(json_object_get(p, "prompt"));
		im->negative = neg ? neg : "";
		im->guidance = (float)json_number_value(json_object_get(p, "guidance_scale"));
		im->steps = int_param(p, "num_inference_steps");
		im->seed = j->seed + (uint64_t)i;
		im->width = int_param(p, "width");
		im->height = int_param(p, "height");
		im->owner = j;
		if (dit_image_alloc(im, &r->model) < 0) {
			runner_reply_error(
			    ctx, t, 422, "width",
			    "width and height must be multiples of %d between %d and "
			    "%d for the dit runner, and steps at least 1",
			    DIT_PIXELS_PER_TOKEN, DIT_PIXELS_PER_TOKEN, DIT_MAX_SIDE);
			return -1;
		}
	}
	return 0;
}

static void job_release(struct job *j)
{
	for (int i = 0; i < j->n && j->ims; i++)
		dit_image_release(&j->ims[i]);
	free(j->ims);
}

/* Decode, encode and answer one task. */
static void job_reply(struct dit_runner *r, struct job *j, struct runner_ctx *ctx, double started)
{
	struct runner_task *t = j->t;
	struct buf *b64 = xcalloc((size_t)j->n, sizeof(*b64));
	uint8_t *rgb = NULL;
	int rc = 0;

	for (int i = 0; i < j->n && !rc; i++) {
		struct dit_image *im = &j->ims[i];
		struct buf img;

		rgb = xrealloc(rgb, (size_t)im->width * (size_t)im->height * 3);
		dit_sampler_decode(&r->sampler, im, rgb);
		buf_init(&img, BUF_UNLIMITED);
		rc = j->png ? media_encode_png(rgb, im->width, im->height, &img)
		            : media_encode_jpeg(rgb, im->width, im->height, j->quality, &img);
		buf_init(&b64[i], BUF_UNLIMITED);
		if (!rc)
			rc = media_base64_encode(img.data, img.len, &b64[i]);
		buf_release(&img);
		runner_progress(ctx);
	}
	free(rgb);
	if (rc < 0) {
		runner_reply_error(ctx, t, 500, NULL, "image encoding failed: %s", strerror(-rc));
	} else {
		runner_reply_images(ctx, t, b64, j->n, now_s() - started, j->seed);
	}
	for (int i = 0; i < j->n; i++)
		buf_release(&b64[i]);
	free(b64);
}

static void dit_run(void *state, struct runner_task **batch, size_t n, struct runner_ctx *ctx)
{
	struct dit_runner *r = state;
	struct job *jobs = xcalloc(n, sizeof(*jobs));
	struct run_ctx rc = {ctx};
	struct dit_image **list;
	double started = now_s();
	int total = 0, k = 0;

	for (size_t i = 0; i < n; i++) {
		jobs[i].skip = job_init(r, &jobs[i], batch[i], ctx) < 0;
		if (!jobs[i].skip)
			total += jobs[i].n;
	}
	list = xcalloc((size_t)MAX(total, 1), sizeof(*list));
	for (size_t i = 0; i < n; i++) {
		for (int m = 0; !jobs[i].skip && m < jobs[i].n; m++) {
			dit_sampler_begin(&r->sampler, &jobs[i].ims[m]);
			list[k++] = &jobs[i].ims[m];
		}
	}
	r->sampler.on_pass = on_pass;
	r->sampler.keep = keep_image;
	r->sampler.arg = &rc;
	r->work.on_block = on_pass;
	r->work.on_block_arg = &rc;
	dit_sampler_run(&r->sampler, list, total);
	r->sampler.on_pass = NULL;
	r->sampler.keep = NULL;
	r->sampler.arg = NULL;
	r->work.on_block = NULL;
	r->work.on_block_arg = NULL;
	for (size_t i = 0; i < n; i++) {
		if (!jobs[i].skip && !runner_cancelled(ctx, jobs[i].t))
			job_reply(r, &jobs[i], ctx, started);
		job_release(&jobs[i]);
	}
	free(list);
	free(jobs);
}

static void dit_close(void *state)
{
	struct dit_runner *r = state;

	if (!r)
		return;
	dit_image_release(&r->probe);
	dit_sampler_release(&r->sampler);
	dit_work_release(&r->work);
	dit_model_release(&r->model);
	free(r);
}

int dit_runner_setup(const struct config *cfg)
{
	dit_kernels_init();
	return 0;
}

const struct runner_ops runner_dit_ops = {
    .name = "dit",
    .open = dit_open,
    .warmup = dit_warmup,
    .run = dit_run,
    .deep_probe = dit_deep_probe,
    .close = dit_close,
};
