/* dit_sampler.c: seeded noise, Euler flow sampling with guidance, batched
 * passes, decoding. See dit_sampler.h. */
#include "dit_sampler.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "util.h"

static uint64_t mix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

/* Box-Muller on the pair i / 2: the even element takes the cosine, the odd
 * one the sine. u1 in (0, 1] so the log is finite. */
float dit_noise(uint64_t seed, size_t i)
{
	uint64_t k = mix64(seed ^ 0x6e6f697365ull) + (uint64_t)(i / 2) * 2;
	double u1 = (double)((mix64(k) >> 11) + 1) * 0x1p-53;
	double u2 = (double)(mix64(k + 1) >> 11) * 0x1p-53;
	double r = sqrt(-2.0 * log(u1)), a = 2.0 * M_PI * u2;

	return (float)(r * (i & 1 ? sin(a) : cos(a)));
}

int dit_image_alloc(struct dit_image *im, const struct dit_model *m)
{
	size_t n, h = (size_t)m->arch.hidden;

	if (im->width < DIT_PIXELS_PER_TOKEN || im->height < DIT_PIXELS_PER_TOKEN ||
	    im->width > DIT_MAX_SIDE || im->height > DIT_MAX_SIDE ||
	    im->width % DIT_PIXELS_PER_TOKEN || im->height % DIT_PIXELS_PER_TOKEN || im->steps < 1)
		return -EINVAL;
	im->gw = im->width / DIT_PIXELS_PER_TOKEN;
	im->gh = im->height / DIT_PIXELS_PER_TOKEN;
	im->lw = im->gw * DIT_PATCH;
	im->lh = im->gh * DIT_PATCH;
	n = (size_t)im->lh * (size_t)im->lw * DIT_LATENT_CH;
	im->latent = xmalloc(n * sizeof(float));
	im->v_cond = xmalloc(n * sizeof(float));
	im->v_uncond = xmalloc(n * sizeof(float));
	im->y_cond = xmalloc(h * sizeof(float));
	im->y_uncond = xmalloc(h * sizeof(float));
	im->step = 0;
	im->active = 0;
	return 0;
}

void dit_image_release(struct dit_image *im)
{
	free(im->latent);
	free(im->v_cond);
	free(im->v_uncond);
	free(im->y_cond);
	free(im->y_uncond);
	im->latent = im->v_cond = im->v_uncond = im->y_cond = im->y_uncond = NULL;
}

void dit_sampler_init(struct dit_sampler *s, const struct dit_model *m, struct dit_work *w,
                      const struct dit_exec *ex)
{
	memset(s, 0, sizeof(*s));
	s->m = m;
	s->w = w;
	s->ex = ex;
	s->segs = xcalloc((size_t)w->max_segs, sizeof(*s->segs));
}

void dit_sampler_release(struct dit_sampler *s)
{
	free(s->segs);
	memset(s, 0, sizeof(*s));
}

static int uses_uncond(const struct dit_image *im)
{
	return im->guidance != 1.0f;
}

void dit_sampler_begin(struct dit_sampler *s, struct dit_image *im)
{
	size_t n = (size_t)im->lh * (size_t)im->lw * DIT_LATENT_CH;

	for (size_t i = 0; i < n; i++)
		im->latent[i] = dit_noise(im->seed, i);
	dit_text_encode(s->m, s->w, s->ex, im->prompt, im->y_cond);
	if (uses_uncond(im))
		dit_text_encode(s->m, s->w, s->ex, im->negative ? im->negative : "", im->y_uncond);
	im->step = 0;
	im->active = 1;
}

static float time_at(const struct dit_image *im, int step)
{
	return (float)(1.0 - (double)step / im->steps);
}

/* Run the queued segments 0..n-1 as one forward pass. */
static void flush(struct dit_sampler *s, int n)
{
	if (!n)
		return;
	dit_forward(s->m, s->w, s->ex, s->segs, n);
	s->passes++;
	if (s->on_pass)
		s->on_pass(s->arg);
}

/* One Euler step of every active image: all their segments, packed into
 * passes of at most max_rows tokens and max_segs segments, then the
 * updates. */
static void round_step(struct dit_sampler *s, struct dit_image **ims, int n)
{
	int queued = 0, rows = 0;

	for (int i = 0; i < n; i++) {
		struct dit_image *im = ims[i];
		int tokens = im->gh * im->gw;

		if (!im->active)
			continue;
		for (int u = 0; u <= uses_uncond(im); u++) {
			struct dit_segment *seg;
			if (queued == s->w->max_segs || rows + tokens > s->w->max_rows) {
				flush(s, queued);
				queued = rows = 0;
			}
			seg = &s->segs[queued];
			seg->gh = im->gh;
			seg->gw = im->gw;
			seg->t = time_at(im, im->step);
			seg->y = u ? im->y_uncond : im->y_cond;
			seg->latent = im->latent;
			seg->v = u ? im->v_uncond : im->v_cond;
			queued++;
			rows += tokens;
		}
	}
	flush(s, queued);
	for (int i = 0; i < n; i++) {
		struct dit_image *im = ims[i];
		size_t len = (size_t)im->lh * (size_t)im->lw * DIT_LATENT_CH;
		float dt, g = im->guidance;

		if (!im->active)
			continue;
		dt = time_at(im, im->step + 1) - time_at(im, im->step);
		if (uses_uncond(im)) {
			for (size_t k = 0; k < len; k++)
				im->latent[k] +=
				    dt * (im->v_uncond[k] + g * (im->v_cond[k] - im->v_uncond[k]));
		} else {
			for (size_t k = 0; k < len; k++)
				im->latent[k] += dt * im->v_cond[k];
		}
		if (++im->step == im->steps)
			im->active = 0;
	}
}

void dit_sampler_run(struct dit_sampler *s, struct dit_image **ims, int n)
{
	for (;;) {
		int live = 0;

		for (int i = 0; i < n; i++) {
			if (ims[i]->active && s->keep && !s->keep(s->arg, ims[i]))
				ims[i]->active = 0;
			live += ims[i]->active;
		}
		if (!live)
			return;
		round_step(s, ims, n);
	}
}

const float *dit_sampler_decode(struct dit_sampler *s, const struct dit_image *im, uint8_t *rgb8)
{
	const float *rgb = dit_decode(s->m, s->w, s->ex, im->latent, im->lh, im->lw);
	size_t n = (size_t)im->width * (size_t)im->height * 3;

	if (rgb8) {
		for (size_t i = 0; i < n; i++) {
			float v = 127.5f * (tanhf(rgb[i]) + 1.0f);
			rgb8[i] = (uint8_t)lrintf(v < 0.0f ? 0.0f : v > 255.0f ? 255.0f : v);
		}
	}
	return rgb;
}

uint64_t dit_image_digest(const struct dit_image *im, const float *rgbf)
{
	size_t nl = (size_t)im->lh * (size_t)im->lw * DIT_LATENT_CH;
	size_t nr = (size_t)im->width * (size_t)im->height * 3;
	uint64_t h = XXH64(im->latent, nl * sizeof(float), 0);

	return XXH64(rgbf, nr * sizeof(float), h);
}
