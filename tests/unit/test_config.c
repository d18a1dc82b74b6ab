/* test_config.c: unit tests of the settings table (src/config.c).
 *
 * Covers defaults, the precedence CLI > environment > ./.env > default, every
 * kind of parse error and its message, DEVICE_IDS groups, the unknown-flag
 * callback, the JSON dump and the export/re-parse round trip that workers
 * depend on. Every test starts and ends with no setting in the environment. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "config.h"
#include "device.h"
#include "log.h"
#include "util.h"

/* Every setting the header declares; the dump must have exactly these keys. */
static const char *const all_names[] = {
	"SERVICE_HOST", "SERVICE_PORT", "DEVICE_IDS", "MODEL_RUNNER", "DEVICE", "DEVICE_PLUGIN",
	"MODEL_SERVICE",
	"MODEL_NAME", "API_KEY", "NO_AUTH", "MAX_QUEUE_SIZE", "MAX_BATCH_SIZE",
	"MAX_BATCH_DELAY_TIME_MS", "REQUEST_PROCESSING_TIMEOUT_SECONDS",
	"MAX_WORKER_RESTART_COUNT", "WORKER_RESTART_WINDOW_SECONDS",
	"WORKER_WARMUP_TIMEOUT_SECONDS", "MIN_READY_WORKERS",
	"MAX_REQUEST_BODY_BYTES", "LOG_LEVEL", "MAX_CONNECTIONS", "CONNECTION_TIMEOUT_SECONDS",
	"REQUEST_HEADER_TIMEOUT_SECONDS", "REQUEST_BODY_TIMEOUT_SECONDS", "REQUEST_BODY_MIN_RATE",
	"DRAIN_TIMEOUT_SECONDS", "WORKER_THREADS", "ENABLE_FAULT_INJECTION",
	"MAX_AUDIO_DURATION_SECONDS", "MODEL_WEIGHTS_PATH", "DIT_PRESET", "CANARY_ENABLED",
	"CANARY_GATE_READINESS", "CANARY_DEEP_PROBE_ENABLED", "CANARY_WAIT_SECONDS",
	"CANARY_PROBE_TIMEOUT_SECONDS", "CANARY_DEEP_PROBE_TIMEOUT_SECONDS", "CANARY_TICK_SECONDS",
	"CANARY_DEAD_MISSES", "CANARY_STARTUP_GRACE_SECONDS", "CANARY_DEEP_EVERY_N",
	"CANARY_PROGRESS_TIMEOUT_SECONDS", "CANARY_ON_DEAD", "RESET_DEVICE_COMMAND",
	"RESET_DEVICE_TIMEOUT_SECONDS",
	"MOCK_WARMUP_SECONDS", "MOCK_LATENCY_MS", "MOCK_STEPS", "MOCK_DEEP_FAIL",
	"MOCK_WARMUP_HANG", "MOCK_WARMUP_HANG_WORKER",
};

static struct buf err;

static void clear_env(void)
{
	for (size_t i = 0; i < ARRAY_SIZE(all_names); i++)
		unsetenv(all_names[i]);
}

/* A scratch directory holding .env, entered by a test; teardown removes it
 * even when the test failed half-way. */
static struct {
	int active;
	char path[64];
	char old_cwd[PATH_MAX];
} scratch;

static void tmpdir_leave(void)
{
	if (!scratch.active)
		return;
	scratch.active = 0;
	unlink(".env");
	assert_int_equal(chdir(scratch.old_cwd), 0);
	assert_int_equal(rmdir(scratch.path), 0);
}

static void tmpdir_enter(const char *dotenv)
{
	FILE *f;

	tmpdir_leave();
	snprintf(scratch.path, sizeof(scratch.path), "/tmp/test_config.XXXXXX");
	assert_non_null(getcwd(scratch.old_cwd, sizeof(scratch.old_cwd)));
	assert_non_null(mkdtemp(scratch.path));
	assert_int_equal(chdir(scratch.path), 0);
	scratch.active = 1;
	if (!dotenv)
		return;
	f = fopen(".env", "w");
	assert_non_null(f);
	assert_true(fputs(dotenv, f) >= 0);
	assert_int_equal(fclose(f), 0);
}

static int setup(void **state)
{
	clear_env();
	buf_init(&err, BUF_UNLIMITED);
	return 0;
}

static int teardown(void **state)
{
	tmpdir_leave();
	clear_env();
	buf_release(&err);
	return 0;
}

/* Load with argv = {"mediad", args..., NULL}; returns config_load's result. */
#define MAX_ARGS 48
static int load_v(struct config *cfg, int use_dotenv, config_unknown_fn fn, void *ctx,
		  const char *first, va_list ap)
{
	char *argv[MAX_ARGS + 2];
	int argc = 0;

	argv[argc++] = (char *)"mediad";
	for (const char *a = first; a; a = va_arg(ap, const char *)) {
		assert_true(argc <= MAX_ARGS);
		argv[argc++] = (char *)a;
	}
	argv[argc] = NULL;
	buf_reset(&err);
	return config_load(cfg, argc, argv, use_dotenv, fn, ctx, &err);
}

static int load(struct config *cfg, const char *first, ...)
{
	va_list ap;
	int r;

	va_start(ap, first);
	r = load_v(cfg, 0, NULL, NULL, first, ap);
	va_end(ap);
	return r;
}

static int load_dotenv(struct config *cfg, const char *first, ...)
{
	va_list ap;
	int r;

	va_start(ap, first);
	r = load_v(cfg, 1, NULL, NULL, first, ap);
	va_end(ap);
	return r;
}

/* Expect a failed load whose one-line message contains every given part. */
static void expect_error(int r, const struct config *cfg, const char *first, ...)
{
	va_list ap;

	assert_int_equal(r, -1);
	assert_non_null(err.data);
	assert_null(strchr(err.data, '\n'));
	/* Nothing is left to release after a failure. */
	assert_null(cfg->service_host);
	assert_null(cfg->device_ids);
	assert_int_equal(cfg->n_devices, 0);
	va_start(ap, first);
	for (const char *part = first; part; part = va_arg(ap, const char *)) {
		if (!strstr(err.data, part))
			fail_msg("error \"%s\" does not contain \"%s\"", err.data, part);
	}
	va_end(ap);
}

static void test_defaults_match_header(void **state)
{
	struct config c;

	assert_int_equal(load(&c, NULL), 0);
	assert_string_equal(c.service_host, "0.0.0.0");
	assert_int_equal(c.service_port, 8000);
	assert_string_equal(c.device_ids, "(0)");
	assert_string_equal(c.model_runner->name, "dit");
	assert_int_equal(c.model_service, SVC_ALL);
	assert_string_equal(c.model_name, "");
	assert_string_equal(c.api_key, "your-secret-key");
	assert_int_equal(c.no_auth, 0);
	assert_int_equal(c.max_queue_size, 5000);
	assert_int_equal(c.max_batch_size, 1);
	assert_int_equal(c.max_batch_delay_time_ms, 0);
	assert_true(c.request_processing_timeout_seconds == 1000.0);
	assert_int_equal(c.max_worker_restart_count, 5);
	assert_int_equal(c.worker_restart_window_seconds, 1800);
	assert_int_equal(c.min_ready_workers, 1);
	assert_int_equal(c.max_request_body_bytes, 64 * 1024 * 1024);
	assert_int_equal(c.log_level, LOG_INFO);
	assert_int_equal(c.max_connections, 4096);
	assert_int_equal(c.connection_timeout_seconds, 30);
	assert_true(c.drain_timeout_seconds == 30.0);
	assert_int_equal(c.worker_threads, 0);
	assert_int_equal(c.enable_fault_injection, 0);
	assert_true(c.max_audio_duration_seconds == 60.0);
	assert_string_equal(c.model_weights_path, "");

	assert_int_equal(c.canary_enabled, 1);
	assert_int_equal(c.canary_gate_readiness, 1);
	assert_int_equal(c.canary_deep_probe_enabled, 1);
	assert_true(c.canary_wait_seconds == 5.0);
	assert_true(c.canary_probe_timeout_seconds == 3.0);
	assert_true(c.canary_deep_probe_timeout_seconds == 60.0);
	assert_true(c.canary_tick_seconds == 1.0);
	assert_int_equal(c.canary_dead_misses, 3);
	assert_true(c.canary_startup_grace_seconds == 30.0);
	assert_int_equal(c.canary_deep_every_n, 3);
	assert_true(c.canary_progress_timeout_seconds == 0.0);
	assert_int_equal(c.canary_on_dead, ON_DEAD_RESTART);
	assert_string_equal(c.reset_device_command, "");

	assert_true(c.mock_warmup_seconds == 2.0);
	assert_int_equal(c.mock_latency_ms, 50);
	assert_int_equal(c.mock_steps, 4);
	assert_int_equal(c.mock_deep_fail, MOCK_DEEP_NONE);
	assert_int_equal(c.mock_warmup_hang, 0);
	assert_string_equal(c.mock_warmup_hang_worker, "");
	assert_true(c.worker_warmup_timeout_seconds == 600.0);

	assert_int_equal(c.n_devices, 1);
	assert_string_equal(c.device_group[0], "0");
	assert_null(c.device_group[1]);
	config_release(&c);
	assert_null(c.service_host);
	assert_null(c.device_group[0]);
}

static void test_env_overrides_defaults(void **state)
{
	struct config c;

	setenv("SERVICE_PORT", "9001", 1);
	setenv("SERVICE_HOST", "127.0.0.1", 1);
	setenv("MODEL_RUNNER", "Dit", 1);
	setenv("MODEL_SERVICE", "image, tts", 1);
	setenv("LOG_LEVEL", "WARNING", 1);
	setenv("CANARY_TICK_SECONDS", "0.05", 1);
	setenv("CANARY_ON_DEAD", "exit", 1);
	setenv("MOCK_DEEP_FAIL", "hang", 1);
	setenv("MAX_REQUEST_BODY_BYTES", "4294967296", 1);
	setenv("API_KEY", "s3cret", 1);
	setenv("CANARY_GATE_READINESS", "no", 1);
	assert_int_equal(load(&c, NULL), 0);
	assert_int_equal(c.service_port, 9001);
	assert_string_equal(c.service_host, "127.0.0.1");
	assert_string_equal(c.model_runner->name, "dit");
	assert_int_equal(c.model_service, SVC_IMAGE | SVC_TTS);
	assert_int_equal(c.log_level, LOG_WARN);
	assert_true(c.canary_tick_seconds == 0.05);
	assert_int_equal(c.canary_on_dead, ON_DEAD_EXIT);
	assert_int_equal(c.mock_deep_fail, MOCK_DEEP_HANG);
	assert_true(c.max_request_body_bytes == INT64_C(4294967296));
	assert_string_equal(c.api_key, "s3cret");
	assert_int_equal(c.canary_gate_readiness, 0);
	config_release(&c);
}

static void test_cli_overrides_env(void **state)
{
	struct config c;

	setenv("SERVICE_PORT", "9001", 1);
	setenv("MODEL_RUNNER", "dit", 1);
	setenv("NO_AUTH", "false", 1);

	/* --flag VALUE and --flag=VALUE, long names and short aliases. */
	assert_int_equal(load(&c, "--port", "9000", NULL), 0);
	assert_int_equal(c.service_port, 9000);
	assert_string_equal(c.model_runner->name, "dit");
	config_release(&c);

	assert_int_equal(load(&c, "--port=9002", "--runner=Mock", "--no-auth", NULL), 0);
	assert_int_equal(c.service_port, 9002);
	assert_string_equal(c.model_runner->name, "mock");
	assert_int_equal(c.no_auth, 1);
	config_release(&c);

	assert_int_equal(load(&c, "--service-port", "9003", "--model-runner", "flite", "--host",
			      "::1", "--service", "audio", "--model-service=video,llm", NULL), 0);
	assert_int_equal(c.service_port, 9003);
	assert_string_equal(c.model_runner->name, "flite");
	assert_string_equal(c.service_host, "::1");
	/* The last occurrence of a setting wins. */
	assert_int_equal(c.model_service, SVC_VIDEO | SVC_LLM);
	config_release(&c);

	/* Every setting has a flag named after its env var. */
	assert_int_equal(load(&c, "--canary-tick-seconds", "0.5", "--mock-steps=7",
			      "--max-request-body-bytes", "2048", "--canary-on-dead=gate", NULL),
			 0);
	assert_true(c.canary_tick_seconds == 0.5);
	assert_int_equal(c.mock_steps, 7);
	assert_int_equal(c.max_request_body_bytes, 2048);
	assert_int_equal(c.canary_on_dead, ON_DEAD_GATE);
	config_release(&c);
}

static void test_bool_spellings(void **state)
{
	static const struct {
		const char *text;
		int value;
	} cases[] = {
		{"1", 1},    {"0", 0},    {"true", 1}, {"false", 0}, {"yes", 1}, {"no", 0},
		{"on", 1},   {"off", 0},  {"TRUE", 1}, {"False", 0}, {"YeS", 1}, {"OFF", 0},
	};
	struct config c;

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		setenv("NO_AUTH", cases[i].text, 1);
		setenv("CANARY_ENABLED", cases[i].text, 1);
		assert_int_equal(load(&c, NULL), 0);
		assert_int_equal(c.no_auth, cases[i].value);
		assert_int_equal(c.canary_enabled, cases[i].value);
		config_release(&c);
	}
	clear_env();

	/* A boolean flag alone means true; a boolean after it is its value. */
	assert_int_equal(load(&c, "--no-auth", "--port", "9000", NULL), 0);
	assert_int_equal(c.no_auth, 1);
	assert_int_equal(c.service_port, 9000);
	config_release(&c);
	assert_int_equal(load(&c, "--canary-enabled", "off", "--enable-fault-injection", NULL), 0);
	assert_int_equal(c.canary_enabled, 0);
	assert_int_equal(c.enable_fault_injection, 1);
	config_release(&c);
	assert_int_equal(load(&c, "--canary-deep-probe-enabled=No", NULL), 0);
	assert_int_equal(c.canary_deep_probe_enabled, 0);
	config_release(&c);
}

static void test_env_errors_name_variable_and_values(void **state)
{
	static const struct {
		const char *env, *value, *message;
	} cases[] = {
		{"SERVICE_PORT", "abc",
		 "invalid value \"abc\" for SERVICE_PORT: expected an integer between 0 and 65535"},
		{"SERVICE_PORT", "65536",
		 "invalid value \"65536\" for SERVICE_PORT: expected an integer between 0 and "
		 "65535"},
		{"SERVICE_PORT", "80.5",
		 "for SERVICE_PORT: expected an integer between 0 and 65535"},
		{"SERVICE_PORT", "", "invalid value \"\" for SERVICE_PORT"},
		{"MAX_QUEUE_SIZE", "0",
		 "for MAX_QUEUE_SIZE: expected an integer between 1 and 1000000"},
		{"MAX_REQUEST_BODY_BYTES", "4294967297",
		 "for MAX_REQUEST_BODY_BYTES: expected an integer between 1024 and 4294967296"},
		{"MAX_REQUEST_BODY_BYTES", "99999999999999999999999",
		 "for MAX_REQUEST_BODY_BYTES: expected an integer between 1024 and 4294967296"},
		{"MODEL_RUNNER", "foo",
		 "invalid value \"foo\" for MODEL_RUNNER: not a runner built into this binary; "
		 "expected one of mock, dit, sphinx, flite"},
		{"MODEL_RUNNER", "llama",
		 "invalid value \"llama\" for MODEL_RUNNER: not a runner built into this binary; "
		 "expected one of mock, dit, sphinx, flite"},
		{"DEVICE", "gpu",
		 "invalid value \"gpu\" for DEVICE: not a device backend built into this binary; "
		 "expected one of cpu, mock, or empty for the runner's default"},
		{"NO_AUTH", "maybe",
		 "invalid value \"maybe\" for NO_AUTH: "
		 "expected a boolean (1/0, true/false, yes/no, on/off)"},
		{"LOG_LEVEL", "loud",
		 "for LOG_LEVEL: expected one of debug, info, warn, error"},
		{"CANARY_ON_DEAD", "panic",
		 "for CANARY_ON_DEAD: expected one of gate, restart, exit"},
		{"MOCK_DEEP_FAIL", "crash",
		 "for MOCK_DEEP_FAIL: expected one of none, error, hang"},
		{"MODEL_SERVICE", "image,pictures",
		 "for MODEL_SERVICE: expected one of image, audio, tts, video, llm, training, all"},
		{"MODEL_SERVICE", "image,,tts", "for MODEL_SERVICE"},
		{"CANARY_TICK_SECONDS", "0.01",
		 "for CANARY_TICK_SECONDS: expected a number between 0.05 and 60"},
		{"CANARY_TICK_SECONDS", "nan", "for CANARY_TICK_SECONDS"},
		{"CANARY_WAIT_SECONDS", "-1",
		 "for CANARY_WAIT_SECONDS: expected a number between 0"},
		{"REQUEST_PROCESSING_TIMEOUT_SECONDS", "5s",
		 "for REQUEST_PROCESSING_TIMEOUT_SECONDS: expected a number between 0.1 and 86400"},
		{"MIN_READY_WORKERS", "17",
		 "for MIN_READY_WORKERS: expected an integer between 1 and 16"},
		{"WORKER_WARMUP_TIMEOUT_SECONDS", "-1",
		 "for WORKER_WARMUP_TIMEOUT_SECONDS: expected a number between 0 and 86400"},
		{"WORKER_WARMUP_TIMEOUT_SECONDS", "86401",
		 "for WORKER_WARMUP_TIMEOUT_SECONDS: expected a number between 0 and 86400"},
		{"REQUEST_HEADER_TIMEOUT_SECONDS", "0",
		 "for REQUEST_HEADER_TIMEOUT_SECONDS: expected a number between 0.1 and 3600"},
		{"REQUEST_BODY_MIN_RATE", "0",
		 "for REQUEST_BODY_MIN_RATE: expected an integer between 1 and 1073741824"},
		{"MOCK_WARMUP_HANG", "1001",
		 "for MOCK_WARMUP_HANG: expected an integer between 0 and 1000"},
	};
	struct config c;

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		clear_env();
		setenv(cases[i].env, cases[i].value, 1);
		expect_error(load(&c, NULL), &c, cases[i].message, NULL);
	}
}

static void test_cli_errors_name_flag_and_variable(void **state)
{
	struct config c;

	expect_error(load(&c, "--port", "x", NULL), &c,
		     "invalid value \"x\" for --port (SERVICE_PORT): expected an integer between 0 "
		     "and 65535", NULL);
	expect_error(load(&c, "--service-port=-1", NULL), &c,
		     "invalid value \"-1\" for --service-port (SERVICE_PORT)", NULL);
	expect_error(load(&c, "--runner=tensorflow", NULL), &c,
		     "for --runner (MODEL_RUNNER): not a runner built into this binary; "
		     "expected one of mock", NULL);
	expect_error(load(&c, "--no-auth=maybe", NULL), &c,
		     "invalid value \"maybe\" for --no-auth (NO_AUTH): expected a boolean", NULL);
	expect_error(load(&c, "--canary-tick-seconds", "0.049", NULL), &c,
		     "--canary-tick-seconds (CANARY_TICK_SECONDS)", "0.05", NULL);
	expect_error(load(&c, "--port", NULL), &c, "missing value for --port (SERVICE_PORT)", NULL);
	/* A bad value overridden by a valid later one does no harm. */
	assert_int_equal(load(&c, "--port", "x", "--port", "1", NULL), 0);
	assert_int_equal(c.service_port, 1);
	config_release(&c);
}

struct unknown_seen {
	int calls;
	char args[4][32];
	char next3[32];
};

/* Accepts --worker ID (2 entries) and --role=NAME (1 entry); nothing else. */
static int unknown_cb(const char *arg, const char *next, void *ctx)
{
	struct unknown_seen *seen = ctx;

	if (seen->calls < 4)
		snprintf(seen->args[seen->calls], sizeof(seen->args[0]), "%s", arg);
	seen->calls++;
	if (!strcmp(arg, "--worker")) {
		snprintf(seen->next3, sizeof(seen->next3), "%s", next ? next : "(null)");
		return 2;
	}
	if (!strncmp(arg, "--role=", 7))
		return 1;
	return 0;
}

static int load_cb(struct config *cfg, struct unknown_seen *seen, const char *first, ...)
{
	va_list ap;
	int r;

	va_start(ap, first);
	r = load_v(cfg, 0, unknown_cb, seen, first, ap);
	va_end(ap);
	return r;
}

static void test_unknown_flags_go_to_callback(void **state)
{
	struct unknown_seen seen = {0};
	struct config c;

	assert_int_equal(load_cb(&c, &seen, "--worker", "3", "--port", "9000", "--role=worker",
				 NULL), 0);
	assert_int_equal(seen.calls, 2);
	assert_string_equal(seen.args[0], "--worker");
	assert_string_equal(seen.next3, "3");
	assert_string_equal(seen.args[1], "--role=worker");
	/* "3" was consumed by the callback, so --port still got its value. */
	assert_int_equal(c.service_port, 9000);
	config_release(&c);

	memset(&seen, 0, sizeof(seen));
	expect_error(load_cb(&c, &seen, "--frob", NULL), &c, "unknown option --frob (see --help)",
		     NULL);
	assert_int_equal(seen.calls, 1);
	assert_string_equal(seen.args[0], "--frob");

	expect_error(load(&c, "--frob=1", NULL), &c, "unknown option --frob (see --help)", NULL);
	expect_error(load(&c, "--worker", "3", NULL), &c, "unknown option --worker", NULL);
	expect_error(load(&c, "stray", NULL), &c, "unexpected argument \"stray\"", NULL);
}

static void test_dotenv_read_and_precedence(void **state)
{
	static const char dotenv[] =
		"# mediad settings\n"
		"\n"
		"SERVICE_PORT=7000\n"
		"export MODEL_RUNNER=sphinx\n"
		"  MODEL_NAME = \"my model # not a comment\"  # a comment\n"
		"API_KEY='single $quoted'\n"
		"RESET_DEVICE_COMMAND=tt-smi -r   # trailing comment\r\n"
		"MODEL_WEIGHTS_PATH=\"a \\\"b\\\" c\"\n"
		"SOMETHING_ELSE=ignored because unknown\n"
		"MOCK_STEPS=not-a-number\n"
		"MOCK_LATENCY_MS=5\n"
		"MOCK_LATENCY_MS=6\n"
		"NO_AUTH=yes";
	struct config c;
	int r;

	tmpdir_enter(dotenv);
	/* The real environment wins over .env; its bad MOCK_STEPS is never used. */
	setenv("SERVICE_PORT", "7001", 1);
	setenv("MOCK_STEPS", "9", 1);
	r = load_dotenv(&c, NULL);
	if (r)
		fail_msg("load failed: %s", err.data);
	assert_int_equal(c.service_port, 7001);
	assert_int_equal(c.mock_steps, 9);
	assert_string_equal(c.model_runner->name, "sphinx");
	assert_string_equal(c.model_name, "my model # not a comment");
	assert_string_equal(c.api_key, "single $quoted");
	assert_string_equal(c.reset_device_command, "tt-smi -r");
	assert_string_equal(c.model_weights_path, "a \"b\" c");
	assert_int_equal(c.mock_latency_ms, 6);
	assert_int_equal(c.no_auth, 1);
	/* .env values are applied, not exported into the process. */
	assert_null(getenv("MODEL_RUNNER"));
	assert_null(getenv("SOMETHING_ELSE"));
	config_release(&c);

	/* The command line wins over both. */
	assert_int_equal(load_dotenv(&c, "--port", "7002", "--runner", "mock", NULL), 0);
	assert_int_equal(c.service_port, 7002);
	assert_string_equal(c.model_runner->name, "mock");
	config_release(&c);

	/* Without use_dotenv the file is ignored. */
	assert_int_equal(load(&c, NULL), 0);
	assert_string_equal(c.model_runner->name, "dit");
	assert_string_equal(c.api_key, "your-secret-key");
	config_release(&c);

	/* The bad MOCK_STEPS in .env, no longer overridden, is named with its line. */
	unsetenv("MOCK_STEPS");
	expect_error(load_dotenv(&c, NULL), &c,
		     "invalid value \"not-a-number\" for MOCK_STEPS (.env line 10): expected an "
		     "integer between 1 and 10000", NULL);
	tmpdir_leave();
}

static void test_dotenv_missing_is_fine(void **state)
{
	struct config c;

	tmpdir_enter(NULL);
	assert_int_equal(load_dotenv(&c, NULL), 0);
	assert_int_equal(c.service_port, 8000);
	config_release(&c);
	tmpdir_leave();
}

static void test_dotenv_malformed_line(void **state)
{
	static const struct {
		const char *text, *message;
	} cases[] = {
		{"# ok\nSERVICE_PORT=1\nthis is not a setting\n",
		 ".env line 3: expected KEY=VALUE"},
		{"MODEL_NAME=\"unterminated\n",
		 ".env line 1: the quoted value has no closing quote"},
		{"\n\nMODEL_NAME='a' b\n", ".env line 3: unexpected text after the closing quote"},
		{"1ABC=2\n", ".env line 1"},
		{"export\n", ".env line 1"},
	};
	struct config c;

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		tmpdir_enter(cases[i].text);
		expect_error(load_dotenv(&c, NULL), &c, cases[i].message, NULL);
		tmpdir_leave();
	}
}

static void test_device_ids_forms(void **state)
{
	static const struct {
		const char *text, *canon;
		int n;
		const char *groups[3];
	} cases[] = {
		{"(0)", "(0)", 1, {"0"}},
		{"(0),(1)", "(0),(1)", 2, {"0", "1"}},
		{"(0,1)", "(0,1)", 1, {"0,1"}},
		{"(0,1),(2,3)", "(0,1),(2,3)", 2, {"0,1", "2,3"}},
		{" ( 3 , 1 ) , ( 2 ) ", "(3,1),(2)", 2, {"3,1", "2"}},
		{"(7),(12),(5)", "(7),(12),(5)", 3, {"7", "12", "5"}},
	};
	struct config c;

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		setenv("DEVICE_IDS", cases[i].text, 1);
		assert_int_equal(load(&c, NULL), 0);
		assert_string_equal(c.device_ids, cases[i].canon);
		assert_int_equal(c.n_devices, cases[i].n);
		for (int g = 0; g < cases[i].n; g++)
			assert_string_equal(c.device_group[g], cases[i].groups[g]);
		config_release(&c);
	}

	/* The most groups allowed (one more is an error, below). */
	setenv("DEVICE_IDS",
	       "(0),(1),(2),(3),(4),(5),(6),(7),(8),(9),(10),(11),(12),(13),(14),(15)", 1);
	assert_int_equal(load(&c, NULL), 0);
	assert_int_equal(c.n_devices, CONFIG_MAX_DEVICES);
	assert_string_equal(c.device_group[15], "15");
	config_release(&c);
}

static void test_device_ids_errors(void **state)
{
	static const char *const bad[] = {
		"", "0", "0,1", "(", "()", "(0", "(0))", "(0)(1)", "(0),", ",(0)", "(0;1)", "(a)",
		"(-1)", "(0,)", "(,0)", "(0),(0)", "(0,1),(1,2)", "(1234567890)",
		"(0),(1),(2),(3),(4),(5),(6),(7),(8),(9),(10),(11),(12),(13),(14),(15),(16)",
	};
	struct config c;

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		setenv("DEVICE_IDS", bad[i], 1);
		expect_error(load(&c, NULL), &c, "for DEVICE_IDS: ",
			     "expected groups of device ids like \"(0)\" or \"(0),(1)\" or "
			     "\"(0,1)\"", NULL);
	}
	setenv("DEVICE_IDS", "(0,1),(1,2)", 1);
	expect_error(load(&c, NULL), &c, "device id 1 is listed twice", NULL);
	expect_error(load(&c, "--device-ids", "(0),x", NULL), &c, "--device-ids (DEVICE_IDS)",
		     NULL);
}

static void test_min_ready_workers_vs_groups(void **state)
{
	struct config c;

	setenv("DEVICE_IDS", "(0),(1)", 1);
	setenv("MIN_READY_WORKERS", "3", 1);
	expect_error(load(&c, NULL), &c, "MIN_READY_WORKERS is 3", "DEVICE_IDS \"(0),(1)\"",
		     "2 groups", NULL);

	setenv("MIN_READY_WORKERS", "2", 1);
	assert_int_equal(load(&c, NULL), 0);
	assert_int_equal(c.min_ready_workers, 2);
	assert_int_equal(c.n_devices, 2);
	config_release(&c);

	setenv("DEVICE_IDS", "(0,1)", 1);
	expect_error(load(&c, NULL), &c, "MIN_READY_WORKERS", "DEVICE_IDS", NULL);
}

static void dump(const struct config *c, struct buf *out)
{
	buf_reset(out);
	config_dump_json(c, out);
}

static void test_export_reparse_round_trip(void **state)
{
	struct config a, b;
	struct buf ja, jb;

	buf_init(&ja, BUF_UNLIMITED);
	buf_init(&jb, BUF_UNLIMITED);
	assert_int_equal(load(&a, "--host", "127.0.0.1", "--port", "0", "--device-ids",
			      " (0, 2) ,(1)", "--runner", "FLITE", "--service", "tts,image,tts",
			      "--model-name", "name with \"quotes\" and spaces ", "--api-key",
			      "k=1 #2", "--no-auth", "--canary-tick-seconds", "0.1",
			      "--request-processing-timeout-seconds", "0.30000000000000004",
			      "--max-request-body-bytes", "4294967296", "--log-level", "warning",
			      "--canary-on-dead", "exit", "--mock-deep-fail", "error",
			      "--min-ready-workers", "2", "--canary-progress-timeout-seconds",
			      "1e-1", "--reset-device-command", "", NULL), 0);
	config_export_env(&a);
	assert_string_equal(getenv("MODEL_SERVICE"), "image,tts");
	assert_string_equal(getenv("LOG_LEVEL"), "warn");
	assert_string_equal(getenv("NO_AUTH"), "true");
	assert_string_equal(getenv("DEVICE_IDS"), "(0,2),(1)");
	assert_string_equal(getenv("API_KEY"), "k=1 #2");

	assert_int_equal(load(&b, NULL), 0);
	dump(&a, &ja);
	dump(&b, &jb);
	assert_string_equal(ja.data, jb.data);
	assert_string_equal(a.api_key, b.api_key);
	assert_string_equal(b.model_name, "name with \"quotes\" and spaces ");
	assert_true(a.request_processing_timeout_seconds == b.request_processing_timeout_seconds);
	assert_true(b.request_processing_timeout_seconds == 0.30000000000000004);
	assert_true(b.canary_tick_seconds == 0.1);
	assert_string_equal(b.model_runner->name, "flite");
	assert_int_equal(b.model_service, SVC_IMAGE | SVC_TTS);
	assert_int_equal(b.n_devices, 2);
	assert_string_equal(b.device_group[0], "0,2");
	assert_string_equal(b.device_group[1], "1");
	assert_int_equal(b.service_port, 0);
	assert_int_equal(b.min_ready_workers, 2);
	assert_int_equal(b.no_auth, 1);

	/* And defaults survive the trip too. */
	config_release(&a);
	config_release(&b);
	clear_env();
	assert_int_equal(load(&a, NULL), 0);
	config_export_env(&a);
	assert_int_equal(load(&b, NULL), 0);
	dump(&a, &ja);
	dump(&b, &jb);
	assert_string_equal(ja.data, jb.data);
	config_release(&a);
	config_release(&b);
	buf_release(&ja);
	buf_release(&jb);
}

static void test_dump_json_typed_and_hides_secret(void **state)
{
	struct config c;
	struct buf out;
	json_error_t jerr;
	json_t *root;

	buf_init(&out, BUF_UNLIMITED);
	setenv("API_KEY", "topsecret-value", 1);
	setenv("MODEL_NAME", "a \"quoted\"\tname", 1);
	setenv("MODEL_SERVICE", "audio,llm", 1);
	setenv("CANARY_TICK_SECONDS", "0.25", 1);
	assert_int_equal(load(&c, NULL), 0);
	config_dump_json(&c, &out);
	assert_null(strstr(out.data, "topsecret-value"));
	/* Compact: no space after separators. */
	assert_null(strstr(out.data, "\": "));
	assert_null(strstr(out.data, ", \""));

	root = json_loads(out.data, 0, &jerr);
	if (!root)
		fail_msg("dump is not JSON (%s): %s", jerr.text, out.data);
	assert_true(json_is_object(root));
	/* Exactly the settings of the header, no more, no fewer. */
	assert_int_equal(json_object_size(root), ARRAY_SIZE(all_names));
	for (size_t i = 0; i < ARRAY_SIZE(all_names); i++)
		if (!json_object_get(root, all_names[i]))
			fail_msg("dump lacks %s", all_names[i]);
	assert_string_equal(json_string_value(json_object_get(root, "API_KEY")), "***");
	assert_true(json_is_integer(json_object_get(root, "SERVICE_PORT")));
	assert_int_equal(json_integer_value(json_object_get(root, "SERVICE_PORT")), 8000);
	assert_true(json_is_integer(json_object_get(root, "MAX_REQUEST_BODY_BYTES")));
	assert_int_equal(json_integer_value(json_object_get(root, "MAX_REQUEST_BODY_BYTES")),
			 67108864);
	assert_true(json_is_false(json_object_get(root, "NO_AUTH")));
	assert_true(json_is_true(json_object_get(root, "CANARY_ENABLED")));
	assert_true(json_number_value(json_object_get(root, "CANARY_TICK_SECONDS")) == 0.25);
	assert_string_equal(json_string_value(json_object_get(root, "MODEL_RUNNER")), "dit");
	assert_string_equal(json_string_value(json_object_get(root, "MODEL_SERVICE")), "audio,llm");
	assert_string_equal(json_string_value(json_object_get(root, "LOG_LEVEL")), "info");
	assert_string_equal(json_string_value(json_object_get(root, "CANARY_ON_DEAD")), "restart");
	assert_string_equal(json_string_value(json_object_get(root, "DEVICE_IDS")), "(0)");
	assert_string_equal(json_string_value(json_object_get(root, "MODEL_NAME")),
			    "a \"quoted\"\tname");
	json_decref(root);
	config_release(&c);
	buf_release(&out);
}

static void test_help_lists_every_setting(void **state)
{
	struct buf out;
	static const char *const flags[] = {
		"--port", "--service-port", "--host", "--service-host", "--device-ids", "--runner",
		"--model-runner", "--service", "--model-service", "--no-auth",
		"--canary-tick-seconds", "--mock-deep-fail",
	};

	buf_init(&out, BUF_UNLIMITED);
	config_help(&out);
	for (size_t i = 0; i < ARRAY_SIZE(all_names); i++)
		if (!strstr(out.data, all_names[i]))
			fail_msg("--help lacks %s", all_names[i]);
	for (size_t i = 0; i < ARRAY_SIZE(flags); i++)
		if (!strstr(out.data, flags[i]))
			fail_msg("--help lacks %s", flags[i]);
	assert_non_null(strstr(out.data, "mock|dit|sphinx|flite"));
	assert_non_null(strstr(out.data, "gate|restart|exit"));
	assert_non_null(strstr(out.data, "your-secret-key"));
	assert_non_null(strstr(out.data, "\nserver:\n"));
	assert_non_null(strstr(out.data, "\ncanary"));
	assert_non_null(strstr(out.data, "\nmock"));
	/* Groups come in order: server settings before canary before mock. */
	assert_true(strstr(out.data, "SERVICE_PORT") < strstr(out.data, "CANARY_TICK_SECONDS"));
	assert_true(strstr(out.data, "CANARY_TICK_SECONDS") < strstr(out.data, "MOCK_STEPS"));
	buf_release(&out);
}

static void test_names(void **state)
{
	static const char *const built[] = {"mock", "dit", "sphinx", "flite"};

	for (size_t i = 0; i < ARRAY_SIZE(built); i++) {
		const struct runner_desc *d = runner_registry_find(built[i], strlen(built[i]));
		assert_non_null(d);
		assert_ptr_equal(d, runner_registry_at(i));
		assert_string_equal(d->name, built[i]);
		assert_non_null(d->ops);
		assert_non_null(device_find(d->default_device));
	}
	assert_null(runner_registry_at(ARRAY_SIZE(built)));
	assert_null(runner_registry_find("llama", 5));
	assert_null(runner_registry_find("dit", 2));
	assert_int_equal(runner_registry_find("dit", 3)->services, SVC_IMAGE);
	assert_int_equal(runner_registry_find("mock", 4)->services, SVC_ALL);
	assert_string_equal(runner_registry_find("mock", 4)->default_device, "mock");
	assert_ptr_equal(device_find("cpu"), &device_cpu_ops);
	assert_ptr_equal(device_find("mock"), &device_mock_ops);
	assert_null(device_find("gpu"));
	assert_string_equal(service_name(SVC_IMAGE), "image");
	assert_string_equal(service_name(SVC_AUDIO), "audio");
	assert_string_equal(service_name(SVC_TTS), "tts");
	assert_string_equal(service_name(SVC_VIDEO), "video");
	assert_string_equal(service_name(SVC_LLM), "llm");
	assert_string_equal(service_name(SVC_TRAINING), "training");
	assert_string_equal(service_name(SVC_IMAGE | SVC_TTS), "unknown");
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_defaults_match_header),
		T(test_env_overrides_defaults),
		T(test_cli_overrides_env),
		T(test_bool_spellings),
		T(test_env_errors_name_variable_and_values),
		T(test_cli_errors_name_flag_and_variable),
		T(test_unknown_flags_go_to_callback),
		T(test_dotenv_read_and_precedence),
		T(test_dotenv_missing_is_fine),
		T(test_dotenv_malformed_line),
		T(test_device_ids_forms),
		T(test_device_ids_errors),
		T(test_min_ready_workers_vs_groups),
		T(test_export_reparse_round_trip),
		T(test_dump_json_typed_and_hides_secret),
		T(test_help_lists_every_setting),
		T(test_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
