/* tools/mkweights.c: mediad-mkweights, write a dit model's weights as a
 * safetensors file.
 *
 * The weights are the seeded synthetic weights of a preset (the same ones
 * the dit runner serves without MODEL_WEIGHTS_PATH when --seed is left at
 * its default), in F32, F16 or BF16. The tests use it to exercise the
 * loader, with --omit to leave a tensor out. The tensor names and shapes
 * are listed in docs/dit.md.
 *
 *   mediad-mkweights --preset tiny [--dtype f32|f16|bf16] [--seed N]
 *                    [--omit NAME]... -o FILE
 *   mediad-mkweights --preset tiny --list     (names and shapes, no file) */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "runners/dit/dit_model.h"
#include "log.h"
#include "safetensors.h"
#include "util.h"

#define MAX_OMIT 16

static void usage(FILE *f)
{
	fprintf(f, "usage: mediad-mkweights --preset tiny|small|base [--dtype f32|f16|bf16] "
	           "[--seed N] [--omit TENSOR]... -o FILE\n"
	           "       mediad-mkweights --preset tiny|small|base --list\n");
}

static int parse_dtype(const char *s, enum safetensors_dtype *out)
{
	if (!strcasecmp(s, "f32"))
		*out = SAFETENSORS_F32;
	else if (!strcasecmp(s, "f16"))
		*out = SAFETENSORS_F16;
	else if (!strcasecmp(s, "bf16"))
		*out = SAFETENSORS_BF16;
	else
		return -1;
	return 0;
}

static void list_tensors(const struct dit_model *m)
{
	for (int i = 0; i < m->n_tensors; i++) {
		const struct dit_tensor *t = &m->tensors[i];

		printf("%s [", t->name);
		for (int d = 0; d < t->ndim; d++)
			printf("%s%lld", d ? ", " : "", (long long)t->shape[d]);
		printf("]\n");
	}
	printf("# %d tensors, %zu parameters\n", m->n_tensors, m->n_params);
}

static int omitted(const char *name, const char *const *omit, int n_omit)
{
	for (int i = 0; i < n_omit; i++)
		if (!strcmp(omit[i], name))
			return 1;
	return 0;
}

int main(int argc, char **argv)
{
	const char *preset = NULL, *out = NULL, *omit[MAX_OMIT];
	enum safetensors_dtype dtype = SAFETENSORS_F32;
	uint64_t seed = DIT_SYNTH_SEED;
	const struct dit_arch *arch;
	struct safetensors_out *t;
	struct dit_exec ex;
	struct dit_model m;
	char seed_text[32], params[32], err[512];
	int n_omit = 0, n = 0, list = 0, r;

	log_init("mkweights", NULL, LOG_WARN);
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		int64_t sv;

		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			usage(stdout);
			return 0;
		}
		if (!strcmp(a, "--list")) {
			list = 1;
			continue;
		}
		if (!v) {
			usage(stderr);
			return 2;
		}
		i++;
		if (!strcmp(a, "--preset")) {
			preset = v;
		} else if (!strcmp(a, "-o") || !strcmp(a, "--output")) {
			out = v;
		} else if (!strcmp(a, "--dtype")) {
			if (parse_dtype(v, &dtype) < 0) {
				fprintf(stderr,
				        "mediad-mkweights: --dtype must be f32, f16 or bf16\n");
				return 2;
			}
		} else if (!strcmp(a, "--seed")) {
			if (parse_i64(v, &sv) < 0) {
				fprintf(stderr, "mediad-mkweights: --seed must be an integer\n");
				return 2;
			}
			seed = (uint64_t)sv;
		} else if (!strcmp(a, "--omit") && n_omit < MAX_OMIT) {
			omit[n_omit++] = v;
		} else {
			usage(stderr);
			return 2;
		}
	}
	if (!preset || (!out && !list)) {
		usage(stderr);
		return 2;
	}
	arch = dit_arch_find(preset);
	if (!arch) {
		fprintf(stderr, "mediad-mkweights: unknown preset %s (tiny, small, base)\n",
		        preset);
		return 2;
	}
	dit_exec_init(&ex, NULL);
	dit_model_init(&m, arch);
	if (list) {
		list_tensors(&m);
		dit_model_release(&m);
		return 0;
	}
	dit_model_synthesize(&m, seed, &ex);
	t = xcalloc((size_t)m.n_tensors, sizeof(*t));
	for (int i = 0; i < m.n_tensors; i++) {
		const struct dit_tensor *dt = &m.tensors[i];

		if (omitted(dt->name, omit, n_omit))
			continue;
		t[n].name = dt->name;
		t[n].ndim = dt->ndim;
		memcpy(t[n].shape, dt->shape, sizeof(dt->shape));
		t[n].data = dt->data;
		n++;
	}
	snprintf(seed_text, sizeof(seed_text), "%" PRIu64, seed);
	snprintf(params, sizeof(params), "%zu", m.n_params);
	{
		const char *meta[] = {"format",  "mediad-dit", "preset", arch->name, "seed",
		                      seed_text, "parameters", params,   NULL};
		r = safetensors_write(out, t, (size_t)n, dtype, meta, err, sizeof(err));
	}
	if (r < 0)
		fprintf(stderr, "mediad-mkweights: %s\n", err);
	else
		printf("%s: preset %s, %d tensors, %zu parameters, %s\n", out, arch->name, n,
		       m.n_params, safetensors_dtype_name(dtype));
	free(t);
	dit_model_release(&m);
	return r < 0 ? 1 : 0;
}
