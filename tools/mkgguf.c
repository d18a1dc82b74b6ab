/* tools/mkgguf.c: mediad-mkgguf, write a seeded llama-family model as a
 * GGUF file (src/runners/llama/synth.c): the tests' and benchmarks' models,
 * which llama.cpp loads as well.
 *
 *   mediad-mkgguf [--arch llama|qwen2] [--tokenizer llama|gpt2]
 *                 [--pre llama-bpe|qwen2|smollm|gpt-2] [--type F32|F16|BF16|...]
 *                 [--embd N] [--layers N] [--heads N] [--kv-heads N] [--ff N]
 *                 [--ctx N] [--tied] [--seed N] [--name S] [--omit TENSOR] -o FILE
 *
 * A 2-D weight whose row length is not a multiple of the type's block is
 * written as F16 (norms are always F32). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "runners/llama/gguf.h"
#include "runners/llama/synth.h"
#include "util.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: mediad-mkgguf [--arch llama|qwen2] [--tokenizer llama|gpt2] "
		   "[--pre llama-bpe|qwen2|smollm|gpt-2]\n"
		   "                     [--type F32|F16|BF16|Q8_0|Q4_0|Q4_K|Q5_K|Q6_K] [--embd N] "
		   "[--layers N] [--heads N]\n"
		   "                     [--kv-heads N] [--ff N] [--ctx N] [--tied] [--seed N] "
		   "[--name S] [--omit TENSOR] -o FILE\n");
}

static int parse_type(const char *s, uint32_t *out)
{
	for (uint32_t t = 0; t < GGML_TYPE_COUNT; t++) {
		const struct gguf_type_info *ti = gguf_type_info(t);
		if (ti && !strcasecmp(ti->name, s)) {
			*out = t;
			return 0;
		}
	}
	return -1;
}

int main(int argc, char **argv)
{
	struct llama_synth_opts o;
	const char *out = NULL;
	char err[512];

	log_init("mkgguf", NULL, LOG_WARN);
	llama_synth_defaults(&o);
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		int64_t n = 0;

		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			usage(stdout);
			return 0;
		}
		if (!strcmp(a, "--tied")) {
			o.tied = 1;
			continue;
		}
		if (!v) {
			usage(stderr);
			return 2;
		}
		i++;
		int numeric = strcmp(a, "--arch") && strcmp(a, "--tokenizer") && strcmp(a, "--pre") &&
			      strcmp(a, "--type") && strcmp(a, "--name") && strcmp(a, "-o") && strcmp(a, "--omit");
		if (numeric && (parse_i64(v, &n) < 0 || n <= 0 || n > (1 << 24))) {
			fprintf(stderr, "mediad-mkgguf: %s needs a positive integer, not \"%s\"\n", a,
				v);
			return 2;
		}
		if (!strcmp(a, "--arch"))
			o.arch = v;
		else if (!strcmp(a, "--tokenizer"))
			o.tokenizer = v;
		else if (!strcmp(a, "--pre"))
			o.pre = v;
		else if (!strcmp(a, "--name"))
			o.name = v;
		else if (!strcmp(a, "-o"))
			out = v;
		else if (!strcmp(a, "--omit"))
			o.omit = v;
		else if (!strcmp(a, "--type")) {
			if (parse_type(v, &o.type) < 0) {
				fprintf(stderr, "mediad-mkgguf: unknown --type %s\n", v);
				return 2;
			}
		} else if (!strcmp(a, "--embd"))
			o.n_embd = (uint32_t)n;
		else if (!strcmp(a, "--layers"))
			o.n_layer = (uint32_t)n;
		else if (!strcmp(a, "--heads"))
			o.n_head = (uint32_t)n;
		else if (!strcmp(a, "--kv-heads"))
			o.n_head_kv = (uint32_t)n;
		else if (!strcmp(a, "--ff"))
			o.n_ff = (uint32_t)n;
		else if (!strcmp(a, "--ctx"))
			o.n_ctx = (uint32_t)n;
		else if (!strcmp(a, "--seed"))
			o.seed = (uint64_t)n;
		else {
			usage(stderr);
			return 2;
		}
	}
	if (!out) {
		usage(stderr);
		return 2;
	}
	if (llama_synth_write(&o, out, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	return 0;
}
