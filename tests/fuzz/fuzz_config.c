/* fuzz_config.c: libFuzzer driver for settings loading (src/config.c).
 *
 * config_load reads ./.env (KEY=VALUE lines, export, quotes, comments) and
 * then argv flags; both are text an operator writes, so any text must give 0
 * or -1 with one line naming the problem, and nothing left allocated on
 * failure. On success the loaded values must survive the trip a worker
 * makes: config_export_env, then config_load from that environment alone
 * gives the same settings (the JSON dump, the API key and every string).
 *
 * Input: the .env text, then (after a NUL) argv entries separated by NULs.
 * A leading byte 0xff means "no .env file". The driver works in a private
 * temporary directory (removed at exit) and clears every setting from its
 * environment; give it absolute paths (corpus, -artifact_prefix).
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -iquote src -iquote include -D_GNU_SOURCE \
 *     $(pkg-config --cflags jansson) tests/fuzz/fuzz_config.c src/config.c src/buf.c \
 *     src/runners/registry.c tests/fuzz/runner_ops_stub.c src/devices/registry.c \
 *     src/devices/cpu.c src/devices/mock.c src/faults.c \
 *     src/util.c src/log.c $(pkg-config --libs jansson) -lm -o fuzz_config
 *   ./fuzz_config -dict=tests/fuzz/config.dict tests/fuzz/corpus/config */
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "config.h"
#include "banned.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define CHECK(c)                                                                                   \
	do {                                                                                       \
		if (!(c)) {                                                                        \
			fprintf(stderr, "fuzz_config: invariant failed: %s (line %d)\n", #c,       \
			        __LINE__);                                                         \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

#define MAX_ARGS 32

static char **names; /* every setting's env name, from the JSON dump of the defaults */
static size_t n_names;
static char workdir[] = "/tmp/fuzz-config-XXXXXX";

static void cleanup(void)
{
	unlink(".env");
	rmdir(workdir);
}

static void clear_env(void)
{
	for (size_t i = 0; i < n_names; i++)
		unsetenv(names[i]);
}

/* Flags main.c takes itself: --worker-id X and the like use 2 entries. */
static int unknown(const char *arg, const char *next, void *ctx)
{
	(void)ctx;
	if (!strcmp(arg, "--worker"))
		return 1;
	if (!strcmp(arg, "--worker-id") && next)
		return 2;
	return 0;
}

static json_t *dump(const struct config *cfg)
{
	struct buf b;
	json_t *j;

	buf_init(&b, BUF_UNLIMITED);
	config_dump_json(cfg, &b);
	CHECK(b.data);
	j = json_loadb(b.data, b.len, JSON_REJECT_DUPLICATES, NULL);
	CHECK(j && json_is_object(j));
	buf_release(&b);
	return j;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct config cfg;
	struct buf err;
	const char *k;
	json_t *d, *v;

	(void)argc;
	(void)argv;
	CHECK(mkdtemp(workdir));
	CHECK(chdir(workdir) == 0);
	atexit(cleanup);
	/* the names, from a load with nothing but defaults */
	buf_init(&err, BUF_UNLIMITED);
	/* drop anything that looks like a setting before the first load */
	for (int again = 1; again;) {
		again = 0;
		for (char **e = environ; *e; e++) {
			if (!strncmp(*e, "CANARY_", 7) || !strncmp(*e, "MOCK_", 5) ||
			    !strncmp(*e, "MODEL_", 6) || !strncmp(*e, "SERVICE_", 8)) {
				char *name = strndup(*e, strcspn(*e, "="));
				unsetenv(name);
				free(name);
				again = 1;
				break;
			}
		}
	}
	CHECK(config_load(&cfg, 1, (char *[]){"mediad", NULL}, 0, NULL, NULL, &err) == 0);
	d = dump(&cfg);
	names = calloc(json_object_size(d), sizeof(*names));
	CHECK(names);
	json_object_foreach(d, k, v) names[n_names++] = strdup(k);
	json_decref(d);
	config_release(&cfg);
	buf_release(&err);
	clear_env();
	return 0;
}

static int load(struct config *cfg, int argc, char **argv, int dotenv, struct buf *err)
{
	int r;

	buf_reset(err);
	r = config_load(cfg, argc, argv, dotenv, unknown, NULL, err);
	CHECK(r == 0 || r == -1);
	if (r) {
		/* one line naming the problem */
		CHECK(err->data && err->len > 0);
		CHECK(strlen(err->data) == err->len);
	}
	return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *argv[MAX_ARGS + 2];
	int argc = 1, use_file = 1;
	struct config cfg, again;
	struct buf err;
	const uint8_t *nul;
	size_t envlen;
	char *copy;
	json_t *d1, *d2;
	FILE *f;

	if (size && data[0] == 0xff) {
		use_file = 0;
		data++;
		size--;
	}
	nul = memchr(data, 0, size);
	envlen = nul ? (size_t)(nul - data) : size;
	unlink(".env");
	if (use_file) {
		f = fopen(".env", "w");
		CHECK(f);
		CHECK(fwrite(data, 1, envlen, f) == envlen);
		CHECK(fclose(f) == 0);
	}
	/* argv: NUL-separated entries after the .env text */
	copy = malloc(size + 1);
	CHECK(copy);
	memcpy(copy, data, size);
	copy[size] = 0;
	argv[0] = "mediad";
	for (size_t off = envlen + 1; nul && off <= size && argc <= MAX_ARGS;) {
		argv[argc++] = copy + off;
		off += strlen(copy + off) + 1;
	}
	argv[argc] = NULL;

	buf_init(&err, BUF_UNLIMITED);
	if (load(&cfg, argc, argv, 1, &err) == 0) {
		d1 = dump(&cfg);
		/* what a worker started with exec sees */
		config_export_env(&cfg);
		CHECK(load(&again, 1, argv, 0, &err) == 0);
		d2 = dump(&again);
		if (!json_equal(d1, d2)) {
			char *a = json_dumps(d1, JSON_SORT_KEYS), *b = json_dumps(d2, JSON_SORT_KEYS);
			fprintf(stderr, "fuzz_config: exported settings read back differently:\n%s\n%s\n",
				a, b);
			CHECK(0);
		}
		CHECK(!strcmp(cfg.api_key, again.api_key));
		CHECK(!strcmp(cfg.service_host, again.service_host));
		CHECK(!strcmp(cfg.device_ids, again.device_ids));
		CHECK(cfg.n_devices == again.n_devices && cfg.n_devices >= 1);
		CHECK(cfg.min_ready_workers <= cfg.n_devices);
		json_decref(d1);
		json_decref(d2);
		config_release(&again);
		config_release(&cfg);
		clear_env();
	}
	buf_release(&err);
	free(copy);
	return 0;
}
