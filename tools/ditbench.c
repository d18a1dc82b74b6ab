/* tools/ditbench.c: mediad-ditbench, the dit runner's compute benchmark
 * (bench/dit.sh runs it).
 *
 * In one process, on a cpu device of --threads pool threads (the worker's
 * execution context), per preset: --rounds rounds of (the BLIS sgemm rate:
 * a square product of --gemm-size through the pool and through BLIS's own
 * threads; the time of one guided denoising step at --size), keeping the
 * best of each, so that the load of a shared machine hits both sides alike;
 * the sgemm GFLOP/s the step achieves and its ratio to the sgemm rate; the
 * latency of a whole image (--steps steps, decode, PNG encode); and the
 * deep probe's replay time as a fraction of the default probe interval
 * (CANARY_WAIT_SECONDS 5 s) and of the default deep-probe interval
 * (wait x CANARY_DEEP_EVERY_N = 15 s). The probe is the best of PROBE_REPS
 * replays.
 *
 * --small-rows N moves the limit of the small-m product path (products of
 * at most N rows stream their weights, dit_kernels.h; default
 * DIT_GEMM_SMALL_M, 0 = every product on BLIS) to compare the two.
 *
 *   mediad-ditbench [--threads N] [--size S] [--steps N] [--gemm-size N]
 *                   [--rounds N] [--small-rows N] [--json] preset... */
#include <blis.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "device.h"
#include "runners/dit/dit_kernels.h"
#include "runners/dit/dit_model.h"
#include "runners/dit/dit_sampler.h"
#include "log.h"
#include "media.h"
#include "util.h"

#define DEFAULT_WAIT_S       5.0
#define DEFAULT_DEEP_EVERY_N 3
#define MIN_TIME_S           0.5
#define PROBE_REPS           5

struct opts {
	int threads, size, steps, gemm, rounds, small_rows;
	int json;
};

struct result {
	const char *preset;
	double sgemm_pool, sgemm_blis, sgemm, s_per_step, gflops, image_s, probe_s;
	/* GFLOP per second of process CPU time, for a machine other jobs share */
	double sgemm_cpu, step_cpu;
};

static double cpu_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* GFLOP/s of c = a b^T (n x n x n) through the pool, best of repeats
 * lasting about MIN_TIME_S. */
static double sgemm_pool(const struct dit_exec *ex, int n, float *a, float *b, float *c,
                         double *per_cpu_s)
{
	struct dit_gemm g = {.m = n,
	                     .n = n,
	                     .k = n,
	                     .a = a,
	                     .lda = n,
	                     .w = b,
	                     .ldw = n,
	                     .c = c,
	                     .ldc = n,
	                     .epi = DIT_EPI_NONE};
	double best = 0, start, cpu0;
	int reps = 0;

	dit_gemm(ex, &g);
	start = now_s();
	cpu0 = cpu_s();
	while (now_s() - start < MIN_TIME_S) {
		double t0 = now_s(), dt;
		dit_gemm(ex, &g);
		dt = now_s() - t0;
		best = MAX(best, 2.0 * n * n * (double)n / dt / 1e9);
		reps++;
	}
	*per_cpu_s = MAX(*per_cpu_s, 2.0 * n * n * (double)n * reps / (cpu_s() - cpu0) / 1e9);
	return best;
}

/* The same product with BLIS's own threads (no sup, as the runner calls it). */
static double sgemm_blis(int threads, int n, float *a, float *b, float *c)
{
	rntm_t rntm = BLIS_RNTM_INITIALIZER;
	float one = 1.0f, zero = 0.0f;
	double best = 0, start = now_s();

	bli_rntm_set_num_threads(threads, &rntm);
	bli_rntm_disable_l3_sup(&rntm);
	do {
		double t0 = now_s(), dt;
		bli_sgemm_ex(BLIS_NO_TRANSPOSE, BLIS_TRANSPOSE, n, n, n, &one, a, n, 1, b, n, 1,
		             &zero, c, n, 1, NULL, &rntm);
		dt = now_s() - t0;
		best = MAX(best, 2.0 * n * n * (double)n / dt / 1e9);
	} while (now_s() - start < MIN_TIME_S);
	return best;
}

/* Best rates so far through the pool and through BLIS's own threads. */
static void sgemm_rate(const struct dit_exec *ex, const struct opts *o, struct result *res)
{
	size_t nn = (size_t)o->gemm * (size_t)o->gemm;
	float *a = xmalloc(nn * sizeof(float)), *b = xmalloc(nn * sizeof(float));
	float *c = xmalloc(nn * sizeof(float));

	for (size_t i = 0; i < nn; i++) {
		a[i] = (float)(i % 13) * 0.01f;
		b[i] = (float)(i % 7) * 0.02f;
	}
	res->sgemm_pool = MAX(res->sgemm_pool, sgemm_pool(ex, o->gemm, a, b, c, &res->sgemm_cpu));
	res->sgemm_blis = MAX(res->sgemm_blis, sgemm_blis(o->threads, o->gemm, a, b, c));
	res->sgemm = MAX(res->sgemm_pool, res->sgemm_blis);
	free(a);
	free(b);
	free(c);
}

static void image_init(struct dit_image *im, const struct dit_model *m, int side, int steps,
                       uint64_t seed)
{
	*im = (struct dit_image){.prompt = "a lighthouse on a cliff at dawn",
	                         .negative = "blurry",
	                         .guidance = 5.0f,
	                         .steps = steps,
	                         .seed = seed,
	                         .width = side,
	                         .height = side};
	dit_image_alloc(im, m);
}

/* Best seconds of one guided step of im (a one-step image, rerun), over
 * about seconds of repeats. */
static double best_step(struct dit_sampler *s, struct dit_image *im, double seconds,
                        double *cpu_per_step)
{
	struct dit_image *list[1] = {im};
	double best = 1e300, start = now_s(), cpu0 = cpu_s();
	int reps = 0;

	do {
		double t0 = now_s();
		im->step = 0;
		im->active = 1;
		dit_sampler_run(s, list, 1);
		best = MIN(best, now_s() - t0);
		reps++;
	} while (now_s() - start < seconds);
	*cpu_per_step = MIN(*cpu_per_step, (cpu_s() - cpu0) / reps);
	return best;
}

static void bench_preset(const struct dit_exec *ex, const struct opts *o, const char *name,
                         struct result *res)
{
	const struct dit_arch *arch = dit_arch_find(name);
	struct dit_model m;
	struct dit_work w;
	struct dit_sampler s;
	struct dit_image im, probe;
	struct dit_image *list[1] = {&im};
	struct dit_segment segs[2] = {{0}, {0}};
	uint8_t *rgb = xmalloc((size_t)o->size * (size_t)o->size * 3);
	struct buf png;
	double t0, fl;

	memset(res, 0, sizeof(*res));
	res->preset = name;
	dit_model_init(&m, arch);
	dit_model_synthesize(&m, DIT_SYNTH_SEED, ex);
	dit_work_init(&w, &m, 2 * DIT_MAX_TOKENS, 512, ex->slots);
	dit_sampler_init(&s, &m, &w, ex);

	/* rounds of (sgemm rate, step time), the best of each: on a shared
	 * machine the best is the closest to the unloaded value, and taking the
	 * two in turns exposes both to the same load */
	image_init(&im, &m, o->size, 1, 7);
	segs[0].gh = segs[1].gh = im.gh;
	segs[0].gw = segs[1].gw = im.gw;
	fl = dit_forward_flops(arch, segs, 2);
	dit_sampler_begin(&s, &im);
	res->s_per_step = 1e300;
	double cpu_step = 1e300;
	for (int round = 0; round < o->rounds; round++) {
		sgemm_rate(ex, o, res);
		res->s_per_step = MIN(res->s_per_step, best_step(&s, &im, MIN_TIME_S, &cpu_step));
	}
	res->gflops = fl / res->s_per_step / 1e9;
	res->step_cpu = fl / cpu_step / 1e9;
	dit_image_release(&im);

	/* a whole image: text, steps, decode, PNG */
	image_init(&im, &m, o->size, o->steps, 11);
	list[0] = &im;
	t0 = now_s();
	dit_sampler_begin(&s, &im);
	dit_sampler_run(&s, list, 1);
	dit_sampler_decode(&s, &im, rgb);
	buf_init(&png, BUF_UNLIMITED);
	media_encode_png(rgb, o->size, o->size, &png);
	res->image_s = now_s() - t0;
	buf_release(&png);
	dit_image_release(&im);

	/* the deep probe's replay: 64x64, 2 guided steps, decode, digest */
	image_init(&probe, &m, 64, 2, 3);
	list[0] = &probe;
	res->probe_s = 1e300;
	for (int i = 0; i < PROBE_REPS; i++) {
		t0 = now_s();
		dit_sampler_begin(&s, &probe);
		dit_sampler_run(&s, list, 1);
		dit_image_digest(&probe, dit_sampler_decode(&s, &probe, NULL));
		res->probe_s = MIN(res->probe_s, now_s() - t0);
	}
	dit_image_release(&probe);

	dit_sampler_release(&s);
	dit_work_release(&w);
	dit_model_release(&m);
	free(rgb);
}

static void print_result(const struct opts *o, const struct result *r, int first)
{
	double ratio = r->gflops / r->sgemm;
	double deep_interval = DEFAULT_WAIT_S * DEFAULT_DEEP_EVERY_N;

	if (o->json) {
		printf("%s{\"preset\":\"%s\",\"threads\":%d,\"size\":%d,\"steps\":%d,"
		       "\"sgemm_pool_gflops\":%.1f,\"sgemm_blis_threads_gflops\":%.1f,"
		       "\"sgemm_gflops\":%.1f,\"s_per_step\":%.4f,\"gflops\":%.1f,\"ratio\":%.3f,"
		       "\"image_s\":%.3f,\"probe_s\":%.4f,\"probe_of_wait\":%.4f,"
		       "\"probe_of_deep_interval\":%.4f,\"cpu_ratio\":%.3f}",
		       first ? "" : ",\n", r->preset, o->threads, o->size, o->steps, r->sgemm_pool,
		       r->sgemm_blis, r->sgemm, r->s_per_step, r->gflops, ratio, r->image_s,
		       r->probe_s, r->probe_s / DEFAULT_WAIT_S, r->probe_s / deep_interval,
		       r->step_cpu / r->sgemm_cpu);
		return;
	}
	printf("%-6s %6.1f %6.1f %9.4f %8.1f %6.2f %6.2f %8.3f %8.1f %6.2f%% %6.2f%%\n", r->preset,
	       r->sgemm_pool, r->sgemm_blis, r->s_per_step, r->gflops, ratio,
	       r->step_cpu / r->sgemm_cpu, r->image_s, r->probe_s * 1e3,
	       100.0 * r->probe_s / DEFAULT_WAIT_S, 100.0 * r->probe_s / deep_interval);
}

static int parse_int_opt(const char *v, int lo, int hi, int *out)
{
	int64_t x;

	if (!v || parse_i64(v, &x) < 0 || x < lo || x > hi)
		return -1;
	*out = (int)x;
	return 0;
}

int main(int argc, char **argv)
{
	struct opts o = {.threads = 2,
	                 .size = 256,
	                 .steps = 20,
	                 .gemm = 1024,
	                 .rounds = 4,
	                 .small_rows = DIT_GEMM_SMALL_M};
	struct mediad_device dev = {.ops = &device_cpu_ops};
	struct dit_exec ex;
	char err[256];
	int n = 0, bad = 0;

	log_init("ditbench", NULL, LOG_WARN);
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "--json"))
			o.json = 1;
		else if (!strcmp(a, "--threads") && ++i)
			bad |= parse_int_opt(v, 1, 256, &o.threads);
		else if (!strcmp(a, "--size") && ++i)
			bad |= parse_int_opt(v, 64, DIT_MAX_SIDE, &o.size);
		else if (!strcmp(a, "--steps") && ++i)
			bad |= parse_int_opt(v, 1, 1000, &o.steps);
		else if (!strcmp(a, "--gemm-size") && ++i)
			bad |= parse_int_opt(v, 64, 8192, &o.gemm);
		else if (!strcmp(a, "--rounds") && ++i)
			bad |= parse_int_opt(v, 1, 100, &o.rounds);
		else if (!strcmp(a, "--small-rows") && ++i)
			bad |= parse_int_opt(v, 0, 256, &o.small_rows);
		else if (a[0] != '-' && dit_arch_find(a))
			argv[++n] = argv[i];
		else
			bad = 1;
	}
	if (bad || !n || o.size % DIT_PIXELS_PER_TOKEN) {
		fprintf(stderr,
		        "usage: mediad-ditbench [--threads N] [--size S (multiple of 16)] "
		        "[--steps N] [--gemm-size N] [--rounds N] [--small-rows N] [--json] "
		        "tiny|small|base...\n");
		return 2;
	}
	dit_kernels_init();
	dit_gemm_set_small_rows(o.small_rows);
	snprintf(dev.ids, sizeof(dev.ids), "bench");
	dev.threads = o.threads;
	if (dev.ops->open(&dev, err, sizeof(err)) < 0) {
		fprintf(stderr, "mediad-ditbench: %s\n", err);
		return 1;
	}
	dit_exec_init(&ex, &dev);
	if (o.json)
		printf("[");
	else
		printf(
		    "# dit runner, %d threads, BLIS %s; products of <= %d rows on the small-m path "
		    "(%s);\n# sgemm %d^3 GFLOP/s through the pool and "
		    "with BLIS threads;\n# a guided step at %dx%d: s/step, sgemm GFLOP/s, ratio to "
		    "the better sgemm rate; cpu: the same ratio per\n# second of CPU time (pool "
		    "sgemm), steadier on a shared machine; image_s: %d steps + decode + PNG;\n"
		    "# the deep probe's replay (best of %d) in ms and as a share of 5 s and 15 s\n"
		    "%-6s %6s %6s %9s %8s %6s %6s %8s %8s %7s %7s\n",
		    o.threads, dit_kernels_blis_arch(NULL), dit_gemm_small_rows(),
		    dit_gemm_small_isa(), o.gemm, o.size, o.size, o.steps, PROBE_REPS, "preset",
		    "pool", "blis", "s/step", "GFLOP/s", "ratio", "cpu", "image_s", "probe_ms",
		    "/5s", "/15s");
	for (int i = 1; i <= n; i++) {
		struct result r;
		bench_preset(&ex, &o, argv[i], &r);
		print_result(&o, &r, i == 1);
		fflush(stdout);
	}
	if (o.json)
		printf("]\n");
	dev.ops->close(&dev);
	return 0;
}
