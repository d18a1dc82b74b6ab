/* tools/tokdump.c: mediad-tokdump, print the token ids of texts as the
 * llama runner's tokenizer reads them, one JSON array per text file, for
 * comparing with llama.cpp (tests/blackbox/test_tokenizer_llamacpp.py).
 *
 *   mediad-tokdump [--special] [--add-special] MODEL.gguf TEXT-FILE...
 *
 * --special parses special tokens' texts; --add-special adds BOS/EOS as
 * the file says. Exit 1 with the reason on stderr when the file is
 * refused or a text cannot be tokenized. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "runners/llama/gguf.h"
#include "runners/llama/tokenizer.h"
#include "util.h"

static int read_file(const char *path, struct buf *b)
{
	char chunk[4096];
	size_t n;
	FILE *f = fopen(path, "rb");

	if (!f)
		return -errno;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		buf_append(b, chunk, n);
	fclose(f);
	return 0;
}

int main(int argc, char **argv)
{
	int special = 0, add_special = 0, argi = 1, status = 0;
	struct tokenizer t;
	struct gguf *g;
	char err[512];

	for (; argi < argc && !strncmp(argv[argi], "--", 2); argi++) {
		if (!strcmp(argv[argi], "--special"))
			special = 1;
		else if (!strcmp(argv[argi], "--add-special"))
			add_special = 1;
		else
			argi = argc;
	}
	if (argc - argi < 2) {
		fprintf(stderr, "usage: mediad-tokdump [--special] [--add-special] MODEL.gguf "
		                "TEXT-FILE...\n");
		return 2;
	}
	if (gguf_open(argv[argi], &g, err, sizeof(err)) || tok_load(&t, g, err, sizeof(err))) {
		fprintf(stderr, "mediad-tokdump: %s\n", err);
		return 1;
	}
	gguf_free(g);
	for (int i = argi + 1; i < argc; i++) {
		struct buf text, out;
		size_t n = 0;
		int32_t *ids;
		int rc;

		buf_init(&text, BUF_UNLIMITED);
		buf_init(&out, BUF_UNLIMITED);
		if ((rc = read_file(argv[i], &text))) {
			fprintf(stderr, "mediad-tokdump: %s: %s\n", argv[i], strerror(-rc));
			return 1;
		}
		ids = xmalloc((text.len + 4) * sizeof(*ids));
		rc = tok_encode(&t, text.data, text.len, add_special, special, ids, text.len + 4,
		                &n);
		if (rc) {
			fprintf(stderr, "mediad-tokdump: %s: %s\n", argv[i], strerror(-rc));
			status = 1;
		} else {
			buf_puts(&out, "[");
			for (size_t k = 0; k < n; k++)
				buf_printf(&out, "%s%d", k ? ", " : "", ids[k]);
			buf_puts(&out, "]\n");
			fwrite(out.data, 1, out.len, stdout);
		}
		free(ids);
		buf_release(&text);
		buf_release(&out);
	}
	tok_release(&t);
	return status;
}
