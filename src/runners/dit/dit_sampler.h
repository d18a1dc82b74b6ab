/* dit_sampler.h: image generation with the dit model: seeded noise, a
 * flow-matching Euler sampler with classifier-free guidance, batching of
 * many images (of any sizes and step counts) into shared forward passes,
 * and decoding to 8-bit RGB.
 *
 * Flow matching (rectified flow): x_t = (1 - t) x_0 + t noise, the model
 * predicts v = dx/dt; sampling integrates from t = 1 (noise) to t = 0 in
 * `steps` equal Euler steps, x <- x + (t_next - t) v. Guidance:
 * v = v_uncond + g (v_cond - v_uncond), v_uncond conditioned on the
 * negative prompt; at g = 1 only the conditional pass runs.
 *
 * Determinism: an image depends only on its model, prompt, negative
 * prompt, guidance, steps, size and seed. The thread count and the other
 * images sharing its passes do not change a bit (dit_kernels.h). */
#ifndef MEDIAD_DIT_SAMPLER_H
#define MEDIAD_DIT_SAMPLER_H

#include <stddef.h>
#include <stdint.h>

#include "dit_model.h"

struct dit_image {
	/* what to generate (set before dit_image_alloc) */
	const char *prompt, *negative; /* borrowed; negative may be "" */
	float guidance;
	int steps;
	uint64_t seed; /* noise seed of this image */
	int width, height;
	void *owner; /* the caller's tag */
	/* state (dit_image_alloc) */
	int gh, gw, lh, lw;
	float *latent, *v_cond, *v_uncond; /* [lh, lw, 4] */
	float *y_cond, *y_uncond;          /* [hidden] */
	int step;                          /* steps done */
	int active;                        /* still being denoised */
};

/* Size im's buffers for model m (width and height multiples of
 * DIT_PIXELS_PER_TOKEN within DIT_MAX_SIDE; -EINVAL otherwise). */
int dit_image_alloc(struct dit_image *im, const struct dit_model *m);
void dit_image_release(struct dit_image *im);

struct dit_sampler {
	const struct dit_model *m;
	struct dit_work *w;
	const struct dit_exec *ex;
	struct dit_segment *segs; /* w->max_segs */
	/* called after every forward pass (progress) */
	void (*on_pass)(void *arg);
	/* called for each active image before each step: 0 drops it (cancelled) */
	int (*keep)(void *arg, struct dit_image *im);
	void *arg;
	int passes; /* forward passes run, for benchmarks */
};

/* w must hold at least DIT_MAX_TOKENS rows. */
void dit_sampler_init(struct dit_sampler *s, const struct dit_model *m, struct dit_work *w,
                      const struct dit_exec *ex);
void dit_sampler_release(struct dit_sampler *s);

/* Start im from its seed's noise, with its text conditioning. */
void dit_sampler_begin(struct dit_sampler *s, struct dit_image *im);
/* Denoise the n images (begun) until each has run its steps or was
 * dropped. Allocates nothing. */
void dit_sampler_run(struct dit_sampler *s, struct dit_image **ims, int n);
/* Decode im's latent: rgb8 (width * height * 3 bytes) when not NULL; the
 * decoder's float output stays in the work area; returns it. */
const float *dit_sampler_decode(struct dit_sampler *s, const struct dit_image *im, uint8_t *rgb8);
/* Digest of im's latent and of the decoder output rgbf (deep probe). */
uint64_t dit_image_digest(const struct dit_image *im, const float *rgbf);

/* The seeded standard normal noise of element i (for tests). */
float dit_noise(uint64_t seed, size_t i);

#endif
