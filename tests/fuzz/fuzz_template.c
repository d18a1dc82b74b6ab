/* fuzz_template.c: libFuzzer driver for the chat-template engine
 * (src/runners/llama/template.c).
 *
 * Any text is either refused with one line "chat template: line L, column
 * C: ..." or parsed; a parsed template is rendered with a fixed small
 * context (messages with string and parts content, tools, the special
 * tokens) into a buffer with a 64 KiB ceiling. The render must end with 0,
 * -ENOSPC, -EINVAL or -EPERM, never past the ceiling, with a one-line
 * message for the errors the engine words itself; ASan/UBSan/LSan catch
 * the rest (a read past the input, overflow, a leaked value).
 *
 * Input: the template's bytes. Seeds (tests/fuzz/corpus/template): the five
 * family templates of tests/fixtures/templates and snippets of each
 * feature; tests/fuzz/template.dict holds the syntax's words. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "buf.h"
#include "runners/llama/template.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                                   \
	do {                                                                                       \
		if (!(c)) {                                                                        \
			fprintf(stderr, "fuzz_template: invariant failed: %s (line %d)\n", #c,     \
			        __LINE__);                                                         \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

#define OUT_MAX (64 << 10)

static const char context[] =
    "{\"messages\":["
    "{\"role\":\"system\",\"content\":\"Be brief.\"},"
    "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"Hi \"},{\"type\":\"image\"}]},"
    "{\"role\":\"assistant\",\"content\":\" Hello! \",\"tool_calls\":[{\"function\":"
    "{\"name\":\"f\",\"arguments\":{\"x\":1.5}}}]},"
    "{\"role\":\"tool\",\"name\":\"f\",\"content\":\"42\"},"
    "{\"role\":\"user\",\"content\":\"\\u00e9 more\"}],"
    "\"add_generation_prompt\":true,\"bos_token\":\"<s>\",\"eos_token\":\"</s>\","
    "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"parameters\":{}}}],"
    "\"date_string\":\"1 Jan 2025\",\"n\":3,\"f\":0.25,\"nothing\":null}";

static int one_line_with_prefix(const char *err)
{
	return !strncmp(err, "chat template: ", 15) && !strchr(err, '\n');
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static json_t *vars;
	struct tmpl *t = NULL;
	struct buf out;
	char err[512];
	char *copy;
	int rc;

	if (!vars) {
		json_error_t je;
		vars = json_loads(context, 0, &je);
		CHECK(vars);
	}
	/* a private copy sized exactly, so a read past it is caught */
	copy = malloc(size ? size : 1);
	memcpy(copy, data, size);
	err[0] = 0;
	if (tmpl_parse(&t, copy, size, err, sizeof(err)) < 0) {
		CHECK(t == NULL);
		CHECK(one_line_with_prefix(err));
		free(copy);
		return 0;
	}
	free(copy); /* the template keeps its own copy */
	buf_init(&out, OUT_MAX);
	rc = tmpl_render(t, vars, &out, err, sizeof(err));
	CHECK(out.len <= OUT_MAX);
	CHECK(rc == 0 || rc == -ENOSPC || rc == -EINVAL || rc == -EPERM);
	if (rc == -ENOSPC || rc == -EINVAL)
		CHECK(one_line_with_prefix(err));
	/* a template renders the same twice: no state survives a render
	 * (strftime_now reads the clock, so it may not) */
	if (rc == 0 && !memmem(data, size, "strftime", 8)) {
		struct buf again;
		buf_init(&again, OUT_MAX);
		CHECK(tmpl_render(t, vars, &again, err, sizeof(err)) == 0);
		CHECK(again.len == out.len && (!out.len || !memcmp(again.data, out.data, out.len)));
		buf_release(&again);
	}
	buf_release(&out);
	tmpl_free(t);
	return 0;
}
