/* tools/llamarun.c: mediad-llamarun, greedy decoding with the llama
 * runner's forward pass from token ids (no tokenizer), as the stage tool
 * that checks the forward pass against an independent implementation
 * (tests/blackbox/test_llama_forward.py compares it with llama.cpp).
 *
 *   mediad-llamarun FILE.gguf ID,ID,... [N]
 *
 * Prints one JSON line: {"greedy":[N ids],"top2":[[id,logit,id,logit],...]}
 * where top2 holds, for every step, the two largest logits. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "log.h"
#include "runners/llama/forward.h"
#include "runners/llama/model.h"
#include "util.h"

int main(int argc, char **argv)
{
	struct llama_model m;
	struct llama_exec ex;
	struct llama_kv kv;
	char err[512];
	int32_t toks[512];
	int n_tok = 0, steps = argc > 3 ? atoi(argv[3]) : 12;

	log_init("llamarun", NULL, LOG_WARN);
	if (argc < 3 || steps < 1 || steps > 256) {
		fprintf(stderr, "usage: mediad-llamarun FILE.gguf ID,ID,... [N]\n");
		return 2;
	}
	for (char *p = argv[2]; *p && n_tok < 512;) {
		toks[n_tok++] = (int32_t)strtol(p, &p, 10);
		if (*p == ',')
			p++;
	}
	if (llama_model_load(&m, argv[1], err, sizeof(err)) < 0) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	uint32_t ctx = (uint32_t)(n_tok + steps + 1);
	llama_exec_init(&ex, &m, NULL, (uint32_t)n_tok, ctx);
	llama_kv_init(&kv, &m, ctx);
	float *logits = xmalloc(m.hp.n_vocab * sizeof(float));
	struct llama_seq_step st = {&kv, toks, (uint32_t)n_tok, logits, NULL};
	printf("{\"greedy\":[");
	struct buf top;
	buf_init(&top, BUF_UNLIMITED);
	for (int s = 0; s < steps; s++) {
		int r = llama_forward(&ex, &st, 1);
		if (r < 0) {
			fprintf(stderr, "forward failed: %s\n", strerror(-r));
			return 1;
		}
		int a = 0, b = -1;
		for (uint32_t i = 1; i < m.hp.n_vocab; i++)
			if (logits[i] > logits[a])
				a = (int)i;
		for (uint32_t i = 0; i < m.hp.n_vocab; i++)
			if ((int)i != a && (b < 0 || logits[i] > logits[b]))
				b = (int)i;
		printf("%s%d", s ? "," : "", a);
		buf_printf(&top, "%s[%d,%.6g,%d,%.6g]", s ? "," : "", a, logits[a], b, logits[b]);
		toks[0] = a;
		st.tokens = toks;
		st.n = 1;
	}
	printf("],\"top2\":[%s]}\n", top.data ? top.data : "");
	buf_release(&top);
	free(logits);
	llama_kv_release(&kv);
	llama_exec_release(&ex);
	llama_model_release(&m);
	return 0;
}
