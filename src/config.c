/* config.c: the one table of mediad's settings and everything derived from it.
 *
 * Each setting is declared once in `settings[]` (env var, short flag alias,
 * type, default as text, bounds or accepted names, help, offset into struct
 * config). Loading, --help, the JSON dump and the worker's exported
 * environment all walk that table, so a new setting is one new line.
 *
 * Loading picks, per setting, the text from the strongest source (CLI flag >
 * real environment > ./.env > default) and parses only that text; a bad value
 * in a weaker source that is overridden does no harm. Defaults go through the
 * same parser as user input, so the table's default text is what --help shows
 * and what the struct receives. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "device.h"
#include "log.h"
#include "runners/registry.h"
#include "util.h"

/* Enum-typed fields are written through an int pointer. */
_Static_assert(sizeof(enum on_dead) == sizeof(int), "enum on_dead is not int-sized");
_Static_assert(sizeof(enum mock_deep_fail) == sizeof(int), "enum mock_deep_fail is not int-sized");
_Static_assert(sizeof(enum dit_preset) == sizeof(int), "enum dit_preset is not int-sized");

/* CT_RUNNER: a runners/registry.c row by name; CT_DEVICE: "" or a
 * devices/registry.c name (kept as text: "" means the runner's default). */
enum cfg_type {
	CT_INT, CT_INT64, CT_DOUBLE, CT_BOOL, CT_STRING, CT_ENUM, CT_SERVICE, CT_DEVICES,
	CT_RUNNER, CT_DEVICE
};
enum cfg_group { CG_SERVER, CG_CANARY, CG_MOCK };

static const char *const group_titles[] = {"server", "canary (HEALTH.md section 4)", "mock runner"};

/* Accepted names of an enum; an alias is accepted but never printed. */
struct enum_name {
	const char *name;
	int value;
	int alias;
};

static const struct enum_name service_names[] = {
	{"image", SVC_IMAGE, 0}, {"audio", SVC_AUDIO, 0}, {"tts", SVC_TTS, 0},
	{"video", SVC_VIDEO, 0}, {"llm", SVC_LLM, 0},     {"training", SVC_TRAINING, 0},
	{"all", SVC_ALL, 0},     {NULL, 0, 0},
};

static const struct enum_name level_names[] = {
	{"debug", LOG_DEBUG, 0}, {"info", LOG_INFO, 0},      {"warn", LOG_WARN, 0},
	{"error", LOG_ERROR, 0}, {"warning", LOG_WARN, 1}, {NULL, 0, 0},
};

static const struct enum_name on_dead_names[] = {
	{"gate", ON_DEAD_GATE, 0}, {"restart", ON_DEAD_RESTART, 0}, {"exit", ON_DEAD_EXIT, 0},
	{NULL, 0, 0},
};

static const struct enum_name dit_preset_names[] = {
	{"tiny", DIT_PRESET_TINY, 0}, {"small", DIT_PRESET_SMALL, 0}, {"base", DIT_PRESET_BASE, 0},
	{NULL, 0, 0},
};

static const struct enum_name deep_fail_names[] = {
	{"none", MOCK_DEEP_NONE, 0}, {"error", MOCK_DEEP_ERROR, 0}, {"hang", MOCK_DEEP_HANG, 0},
	{NULL, 0, 0},
};

/* The built runners' names joined by sep (runners/registry.c). */
static void runner_names(const char *sep, struct buf *out)
{
	const struct runner_desc *d;

	for (size_t i = 0; (d = runner_registry_at(i)); i++)
		buf_printf(out, "%s%s", i ? sep : "", d->name);
}

struct setting {
	const char *env;           /* also gives the flag: lower case, '_' -> '-' */
	const char *alias;         /* short flag without dashes, or NULL */
	enum cfg_type type;
	enum cfg_group group;
	const char *def;           /* default, as text the parser accepts */
	double min, max;           /* bounds of CT_INT, CT_INT64, CT_DOUBLE */
	const struct enum_name *names; /* CT_ENUM */
	size_t off;                /* offsetof(struct config, field) */
	int secret;                /* never shown in the JSON dump */
	const char *help;
};

#define OFF(f) offsetof(struct config, f)
#define S_STR(g, env, alias, f, def, help) \
	{env, alias, CT_STRING, g, def, 0, 0, NULL, OFF(f), 0, help}
#define S_SECRET(g, env, f, def, help) {env, NULL, CT_STRING, g, def, 0, 0, NULL, OFF(f), 1, help}
#define S_INT(g, env, f, def, lo, hi, help) \
	{env, NULL, CT_INT, g, def, lo, hi, NULL, OFF(f), 0, help}
#define S_I64(g, env, f, def, lo, hi, help) \
	{env, NULL, CT_INT64, g, def, lo, hi, NULL, OFF(f), 0, help}
#define S_DBL(g, env, f, def, lo, hi, help) \
	{env, NULL, CT_DOUBLE, g, def, lo, hi, NULL, OFF(f), 0, help}
#define S_BOOL(g, env, f, def, help) {env, NULL, CT_BOOL, g, def, 0, 0, NULL, OFF(f), 0, help}
#define S_ENUM(g, env, alias, f, def, names, help) \
	{env, alias, CT_ENUM, g, def, 0, 0, names, OFF(f), 0, help}

#define SV CG_SERVER
#define CN CG_CANARY
#define MK CG_MOCK

static const struct setting settings[] = {
	/* server */
	S_STR(SV, "SERVICE_HOST", "host", service_host, "0.0.0.0", "address to listen on"),
	{"SERVICE_PORT", "port", CT_INT, SV, "8000", 0, 65535, NULL, OFF(service_port), 0,
	 "TCP port to listen on; 0 picks a free port"},
	{"DEVICE_IDS", NULL, CT_DEVICES, SV, "(0)", 0, 0, NULL, OFF(device_ids), 0,
	 "device groups, one worker process per group"},
	{"MODEL_RUNNER", "runner", CT_RUNNER, SV, "dit", 0, 0, NULL, OFF(model_runner), 0,
	 "the model runner every worker loads (only runners built into this binary)"},
	{"DEVICE", NULL, CT_DEVICE, SV, "", 0, 0, NULL, OFF(device), 0,
	 "device backend every worker opens; empty = the runner's default"},
	S_STR(SV, "DEVICE_PLUGIN", NULL, device_plugin, "",
	      "device backend from a shared object (ABI: include/mediad/device.h), used "
	      "instead of DEVICE; checked at startup"),
	{"MODEL_SERVICE", "service", CT_SERVICE, SV, "all", 0, 0, service_names, OFF(model_service),
	 0, "which APIs this instance serves"},
	S_STR(SV, "MODEL_NAME", NULL, model_name, "",
	      "model name reported by the API; empty = from the runner"),
	S_SECRET(SV, "API_KEY", api_key, "your-secret-key", "bearer token clients must send"),
	S_BOOL(SV, "NO_AUTH", no_auth, "false", "serve without checking the API key"),
	S_INT(SV, "MAX_QUEUE_SIZE", max_queue_size, "5000", 1, 1000000,
	      "requests admitted and waiting; beyond this 429"),
	S_INT(SV, "MAX_BATCH_SIZE", max_batch_size, "1", 1, 64,
	      "requests per batch sent to a worker"),
	S_INT(SV, "MAX_BATCH_DELAY_TIME_MS", max_batch_delay_time_ms, "0", 0, 10000,
	      "how long to wait to fill a batch"),
	S_DBL(SV, "REQUEST_PROCESSING_TIMEOUT_SECONDS", request_processing_timeout_seconds, "1000",
	      0.1, 86400, "hard deadline of one request; then 504"),
	S_INT(SV, "MAX_WORKER_RESTART_COUNT", max_worker_restart_count, "5", 0, 1000,
	      "restarts per worker within the restart window before giving up"),
	S_INT(SV, "WORKER_RESTART_WINDOW_SECONDS", worker_restart_window_seconds, "1800", 1, 604800,
	      "window of the restart budget"),
	S_DBL(SV, "WORKER_WARMUP_TIMEOUT_SECONDS", worker_warmup_timeout_seconds, "600", 0, 86400,
	      "a worker not ready this long after its start is dead in warmup "
	      "(CANARY_ON_DEAD acts); 0 = never"),
	S_INT(SV, "MIN_READY_WORKERS", min_ready_workers, "1", 1, CONFIG_MAX_DEVICES,
	      "ready workers needed to serve (at most the number of device groups)"),
	S_I64(SV, "MAX_REQUEST_BODY_BYTES", max_request_body_bytes, "67108864", 1024, 4294967296.0,
	      "largest request body accepted; beyond this 413"),
	S_ENUM(SV, "LOG_LEVEL", NULL, log_level, "info", level_names, "least severe level logged"),
	S_INT(SV, "MAX_CONNECTIONS", max_connections, "4096", 16, 100000, "open HTTP connections"),
	S_INT(SV, "CONNECTION_TIMEOUT_SECONDS", connection_timeout_seconds, "30", 1, 3600,
	      "idle HTTP connection timeout"),
	S_DBL(SV, "REQUEST_HEADER_TIMEOUT_SECONDS", request_header_timeout_seconds, "60", 0.1, 3600,
	      "a request's headers must be complete this long after the connection opened or "
	      "its previous response was sent; then 408 and close (slow-header clients)"),
	S_DBL(SV, "REQUEST_BODY_TIMEOUT_SECONDS", request_body_timeout_seconds, "30", 0.1, 3600,
	      "grace for a request body; past it the body must keep REQUEST_BODY_MIN_RATE, "
	      "else 408 and close (slow-body clients)"),
	S_INT(SV, "REQUEST_BODY_MIN_RATE", request_body_min_rate, "1024", 1, 1 << 30,
	      "average bytes per second a request body must reach after its grace"),
	S_DBL(SV, "DRAIN_TIMEOUT_SECONDS", drain_timeout_seconds, "30", 0, 3600,
	      "on shutdown, how long to let running requests finish"),
	S_INT(SV, "WORKER_THREADS", worker_threads, "0", 0, 256,
	      "compute threads per worker; 0 = cores / workers"),
	S_BOOL(SV, "ENABLE_FAULT_INJECTION", enable_fault_injection, "false",
	       "mount the fault injection endpoints (drills and tests only)"),
	S_DBL(SV, "MAX_AUDIO_DURATION_SECONDS", max_audio_duration_seconds, "60", 0.1, 86400,
	      "longest audio accepted for transcription"),
	S_STR(SV, "MODEL_WEIGHTS_PATH", NULL, model_weights_path, "",
	      "weights file for the runner; empty = runner default"),
	S_ENUM(SV, "DIT_PRESET", NULL, dit_preset, "small", dit_preset_names,
	       "dit runner model size: tiny (tests), small (about DiT-S), base (about DiT-B)"),

	/* canary */
	S_BOOL(CN, "CANARY_ENABLED", canary_enabled, "true",
	       "false = no monitor, state \"disabled\""),
	S_BOOL(CN, "CANARY_GATE_READINESS", canary_gate_readiness, "true",
	       "false = a dead canary is only reported, never gates readiness"),
	S_BOOL(CN, "CANARY_DEEP_PROBE_ENABLED", canary_deep_probe_enabled, "true",
	       "false = shallow probes only"),
	S_DBL(CN, "CANARY_WAIT_SECONDS", canary_wait_seconds, "5", 0, 86400,
	      "idle time on a worker before a probe"),
	S_DBL(CN, "CANARY_PROBE_TIMEOUT_SECONDS", canary_probe_timeout_seconds, "3", 0.01, 3600,
	      "shallow probe deadline; a timeout is a miss"),
	S_DBL(CN, "CANARY_DEEP_PROBE_TIMEOUT_SECONDS", canary_deep_probe_timeout_seconds, "60",
	      0.01, 86400, "deep probe deadline"),
	S_DBL(CN, "CANARY_TICK_SECONDS", canary_tick_seconds, "1", 0.05, 60,
	      "monitor cadence (floor 0.05)"),
	S_INT(CN, "CANARY_DEAD_MISSES", canary_dead_misses, "3", 1, 1000,
	      "consecutive misses of one tier -> dead"),
	S_DBL(CN, "CANARY_STARTUP_GRACE_SECONDS", canary_startup_grace_seconds, "30", 0, 86400,
	      "no probes this long after a worker became ready"),
	S_INT(CN, "CANARY_DEEP_EVERY_N", canary_deep_every_n, "3", 1, 1000,
	      "every Nth probe is deep"),
	S_DBL(CN, "CANARY_PROGRESS_TIMEOUT_SECONDS", canary_progress_timeout_seconds, "0", 0, 86400,
	      "busy with no progress this long -> miss; 0 = auto"),
	S_ENUM(CN, "CANARY_ON_DEAD", NULL, canary_on_dead, "restart", on_dead_names,
	       "what a dead worker triggers"),
	S_STR(CN, "RESET_DEVICE_COMMAND", NULL, reset_device_command, "",
	      "run with the device id between killing and respawning a worker"),
	S_DBL(CN, "RESET_DEVICE_TIMEOUT_SECONDS", reset_device_timeout_seconds, "60", 0.1, 3600,
	      "RESET_DEVICE_COMMAND is killed after this long"),

	/* mock runner */
	S_DBL(MK, "MOCK_WARMUP_SECONDS", mock_warmup_seconds, "2", 0, 3600,
	      "simulated warmup time"),
	S_INT(MK, "MOCK_LATENCY_MS", mock_latency_ms, "50", 0, 3600000,
	      "simulated compute time per request"),
	S_INT(MK, "MOCK_STEPS", mock_steps, "4", 1, 10000, "progress steps per request"),
	S_ENUM(MK, "MOCK_DEEP_FAIL", NULL, mock_deep_fail, "none", deep_fail_names,
	       "make deep probes fail: error or hang"),
	S_INT(MK, "MOCK_WARMUP_HANG", mock_warmup_hang, "0", 0, 1000,
	      "drills: the first N warmups of a worker hang until it is killed"),
	S_STR(MK, "MOCK_WARMUP_HANG_WORKER", NULL, mock_warmup_hang_worker, "",
	      "drills: the worker id MOCK_WARMUP_HANG applies to; empty = every worker"),
};

#define N_SETTINGS ARRAY_SIZE(settings)

#define DEVICE_IDS_FORMAT "groups of device ids like \"(0)\" or \"(0),(1)\" or \"(0,1)\""
#define BOOL_FORMAT "a boolean (1/0, true/false, yes/no, on/off)"
#define DOTENV_PATH ".env"
#define DEVICE_ID_MAX 999999999

/* Where the winning text of one setting came from, for error messages. */
enum src_kind { SRC_DEFAULT, SRC_DOTENV, SRC_ENV, SRC_CLI };

struct source {
	enum src_kind kind;
	const char *text;
	int line;           /* SRC_DOTENV */
	const char *flag;   /* SRC_CLI: the flag as typed ... */
	int flag_len;       /* ... up to any '=' */
};

static int fail(struct buf *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(struct buf *err, const char *fmt, ...)
{
	va_list ap;

	if (err) {
		va_start(ap, fmt);
		buf_vprintf(err, fmt, ap);
		va_end(ap);
	}
	return -1;
}

/* The shortest text that reads back as exactly v. */
static void fmt_double(double v, char *out, size_t n)
{
	snprintf(out, n, "%.15g", v);
	if (strtod(out, NULL) != v)
		snprintf(out, n, "%.17g", v);
}

static int flag_matches(const char *name, size_t len, const char *env)
{
	size_t i;

	for (i = 0; i < len && env[i]; i++) {
		char c = env[i] == '_' ? '-' : (char)tolower((unsigned char)env[i]);
		if (name[i] != c)
			return 0;
	}
	return i == len && !env[i];
}

static const struct setting *find_flag(const char *name, size_t len)
{
	for (size_t i = 0; i < N_SETTINGS; i++) {
		const struct setting *s = &settings[i];
		if (flag_matches(name, len, s->env))
			return s;
		if (s->alias && strlen(s->alias) == len && !memcmp(s->alias, name, len))
			return s;
	}
	return NULL;
}

static int find_env(const char *key, size_t len)
{
	for (size_t i = 0; i < N_SETTINGS; i++)
		if (strlen(settings[i].env) == len && !memcmp(settings[i].env, key, len))
			return (int)i;
	return -1;
}

static const char *enum_to_name(const struct enum_name *names, int value)
{
	for (; names->name; names++)
		if (!names->alias && names->value == value)
			return names->name;
	return "unknown";
}

static int enum_from_name(const struct enum_name *names, const char *s, size_t len, int *out)
{
	for (; names->name; names++) {
		if (strlen(names->name) == len && !strncasecmp(names->name, s, len)) {
			*out = names->value;
			return 0;
		}
	}
	return -EINVAL;
}

static void enum_list(const struct enum_name *names, const char *sep, struct buf *out)
{
	int first = 1;

	for (; names->name; names++) {
		if (names->alias)
			continue;
		buf_printf(out, "%s%s", first ? "" : sep, names->name);
		first = 0;
	}
}

/* "image,tts" / "all" -> SVC_* bits; 0 or -EINVAL. */
static int service_parse(const char *s, unsigned *out)
{
	unsigned bits = 0;

	for (;;) {
		const char *end = strchr(s, ',');
		size_t len = end ? (size_t)(end - s) : strlen(s);
		int v;

		while (len && isspace((unsigned char)*s)) {
			s++;
			len--;
		}
		while (len && isspace((unsigned char)s[len - 1]))
			len--;
		if (enum_from_name(service_names, s, len, &v))
			return -EINVAL;
		bits |= (unsigned)v;
		if (!end)
			break;
		s = end + 1;
	}
	*out = bits;
	return 0;
}

static void service_format(unsigned bits, struct buf *out)
{
	int first = 1;

	if ((bits & SVC_ALL) == SVC_ALL) {
		buf_puts(out, "all");
		return;
	}
	for (const struct enum_name *n = service_names; n->name; n++) {
		if ((unsigned)n->value == SVC_ALL || !(bits & (unsigned)n->value))
			continue;
		buf_printf(out, "%s%s", first ? "" : ",", n->name);
		first = 0;
	}
}

static void skip_space(const char **p)
{
	while (isspace((unsigned char)**p))
		(*p)++;
}

/* One device id: 1..9 digits, not seen before. 0 or -EINVAL with why set. */
static int device_id_parse(const char **p, int **seen, int *n_seen, struct buf *why)
{
	const char *s = *p;
	int id = 0, digits = 0;

	while (isdigit((unsigned char)*s)) {
		if (++digits > 9) {
			buf_printf(why, "device id too large (at most %d)", DEVICE_ID_MAX);
			return -EINVAL;
		}
		id = id * 10 + (*s++ - '0');
	}
	if (!digits)
		return -EINVAL;
	for (int i = 0; i < *n_seen; i++) {
		if ((*seen)[i] == id) {
			buf_printf(why, "device id %d is listed twice", id);
			return -EINVAL;
		}
	}
	*seen = xrealloc(*seen, sizeof(int) * (size_t)(*n_seen + 1));
	(*seen)[(*n_seen)++] = id;
	*p = s;
	return id;
}

/* Fill cfg->n_devices, device_group[] and a canonical cfg->device_ids from s.
 * 0, or -EINVAL with a reason (possibly empty) in why; cfg is left for
 * config_release either way. */
static int devices_parse(const char *s, struct config *cfg, struct buf *why)
{
	struct buf group, canon;
	int *seen = NULL, n_seen = 0, r = -EINVAL;

	buf_init(&group, BUF_UNLIMITED);
	buf_init(&canon, BUF_UNLIMITED);
	skip_space(&s);
	for (;;) {
		if (*s != '(')
			goto out;
		s++;
		if (cfg->n_devices == CONFIG_MAX_DEVICES) {
			buf_printf(why, "more than %d groups", CONFIG_MAX_DEVICES);
			goto out;
		}
		buf_reset(&group);
		for (;;) {
			int id;

			skip_space(&s);
			id = device_id_parse(&s, &seen, &n_seen, why);
			if (id < 0)
				goto out;
			buf_printf(&group, "%s%d", group.len ? "," : "", id);
			skip_space(&s);
			if (*s == ')')
				break;
			if (*s != ',')
				goto out;
			s++;
		}
		s++;
		buf_printf(&canon, "%s(%s)", canon.len ? "," : "", group.data);
		cfg->device_group[cfg->n_devices++] = xstrdup(group.data);
		skip_space(&s);
		if (!*s)
			break;
		if (*s != ',')
			goto out;
		s++;
		skip_space(&s);
	}
	cfg->device_ids = buf_detach(&canon, NULL);
	r = 0;
out:
	free(seen);
	buf_release(&group);
	buf_release(&canon);
	return r;
}

/* "SERVICE_PORT", "--port (SERVICE_PORT)" or "SERVICE_PORT (.env line 3)". */
static void source_describe(const struct setting *s, const struct source *src, struct buf *out)
{
	switch (src->kind) {
	case SRC_CLI:
		buf_printf(out, "%.*s (%s)", src->flag_len, src->flag, s->env);
		break;
	case SRC_DOTENV:
		buf_printf(out, "%s (%s line %d)", s->env, DOTENV_PATH, src->line);
		break;
	case SRC_DEFAULT:
		buf_printf(out, "%s (built-in default)", s->env);
		break;
	default:
		buf_puts(out, s->env);
	}
}

/* What a valid value of s looks like, for error messages. */
static void expected_describe(const struct setting *s, struct buf *out)
{
	char lo[32], hi[32];

	fmt_double(s->min, lo, sizeof(lo));
	fmt_double(s->max, hi, sizeof(hi));
	switch (s->type) {
	case CT_INT:
	case CT_INT64:
		buf_printf(out, "an integer between %s and %s", lo, hi);
		break;
	case CT_DOUBLE:
		buf_printf(out, "a number between %s and %s", lo, hi);
		break;
	case CT_BOOL:
		buf_puts(out, BOOL_FORMAT);
		break;
	case CT_ENUM:
		buf_puts(out, "one of ");
		enum_list(s->names, ", ", out);
		break;
	case CT_SERVICE:
		buf_puts(out, "one of ");
		enum_list(s->names, ", ", out);
		buf_puts(out, ", or a comma-separated list like \"image,tts\"");
		break;
	case CT_DEVICES:
		buf_puts(out, DEVICE_IDS_FORMAT);
		break;
	case CT_STRING:
		buf_puts(out, "a string");
		break;
	case CT_RUNNER:
		buf_puts(out, "one of ");
		runner_names(", ", out);
		break;
	case CT_DEVICE:
		buf_puts(out, "one of ");
		device_names(", ", out);
		buf_puts(out, ", or empty for the runner's default");
		break;
	}
}

static int invalid(const struct setting *s, const struct source *src, const char *why,
		   struct buf *err)
{
	size_t len = strlen(src->text);
	char *shown = xstrndup(src->text, 120);

	if (err) {
		buf_puts(err, "invalid value ");
		buf_json_str(err, shown);
		if (len > 120)
			buf_puts(err, "...");
		buf_puts(err, " for ");
		source_describe(s, src, err);
		buf_puts(err, ": ");
		if (why && *why)
			buf_printf(err, "%s; ", why);
		buf_puts(err, "expected ");
		expected_describe(s, err);
	}
	free(shown);
	return -1;
}

static int in_bounds(const struct setting *s, double v)
{
	return v >= s->min && v <= s->max;
}

/* text without its leading and trailing white space: the start, *len. */
static const char *trimmed(const char *text, size_t *len)
{
	while (isspace((unsigned char)*text))
		text++;
	*len = strlen(text);
	while (*len && isspace((unsigned char)text[*len - 1]))
		(*len)--;
	return text;
}

/* Parse src->text as setting s into cfg; 0 or -1 with the message in err. */
static int setting_apply(const struct setting *s, const struct source *src, struct config *cfg,
			 struct buf *err)
{
	void *field = (char *)cfg + s->off;
	const char *text = src->text;
	int64_t i64;
	size_t len;
	double d;
	int b, v, r = 0;

	switch (s->type) {
	case CT_INT:
	case CT_INT64:
		if (parse_i64(text, &i64) || !in_bounds(s, (double)i64))
			return invalid(s, src, NULL, err);
		if (s->type == CT_INT)
			*(int *)field = (int)i64;
		else
			*(int64_t *)field = i64;
		break;
	case CT_DOUBLE:
		if (parse_double(text, &d) || !in_bounds(s, d))
			return invalid(s, src, NULL, err);
		*(double *)field = d;
		break;
	case CT_BOOL:
		if (parse_bool(text, &b))
			return invalid(s, src, NULL, err);
		*(int *)field = b;
		break;
	case CT_STRING:
		/* every string setting ends up in JSON (logs, /v1/config, IPC) */
		if (!utf8_valid(text, strlen(text)))
			return invalid(s, src, "not valid UTF-8", err);
		*(char **)field = xstrdup(text);
		break;
	case CT_ENUM:
		text = trimmed(text, &len);
		if (enum_from_name(s->names, text, len, &v))
			return invalid(s, src, NULL, err);
		*(int *)field = v;
		break;
	case CT_RUNNER: {
		const struct runner_desc *row;

		text = trimmed(text, &len);
		row = runner_registry_find(text, len);
		if (!row)
			return invalid(s, src, "not a runner built into this binary", err);
		*(const struct runner_desc **)field = row;
		break;
	}
	case CT_DEVICE: {
		char *name;

		text = trimmed(text, &len);
		name = xstrndup(text, len);
		if (len && !device_find(name)) {
			free(name);
			return invalid(s, src, "not a device backend built into this binary", err);
		}
		*(char **)field = name;
		break;
	}
	case CT_SERVICE:
		if (service_parse(text, (unsigned *)field))
			return invalid(s, src, NULL, err);
		break;
	case CT_DEVICES: {
		struct buf why;

		buf_init(&why, BUF_UNLIMITED);
		if (devices_parse(text, cfg, &why))
			r = invalid(s, src, why.data, err);
		buf_release(&why);
		break;
	}
	}
	return r;
}

/* Canonical text of setting s in cfg: what config_export_env sets and what
 * parses back to the same value. */
static void setting_format(const struct setting *s, const struct config *cfg, struct buf *out)
{
	const void *field = (const char *)cfg + s->off;
	char num[32];

	switch (s->type) {
	case CT_INT:
		buf_printf(out, "%d", *(const int *)field);
		break;
	case CT_INT64:
		buf_printf(out, "%" PRId64, *(const int64_t *)field);
		break;
	case CT_DOUBLE:
		fmt_double(*(const double *)field, num, sizeof(num));
		buf_puts(out, num);
		break;
	case CT_BOOL:
		buf_puts(out, *(const int *)field ? "true" : "false");
		break;
	case CT_STRING:
	case CT_DEVICES:
	case CT_DEVICE: {
		const char *str = *(char *const *)field;
		buf_puts(out, str ? str : "");
		break;
	}
	case CT_RUNNER: {
		const struct runner_desc *d = *(const struct runner_desc *const *)field;
		buf_puts(out, d ? d->name : "");
		break;
	}
	case CT_ENUM:
		buf_puts(out, enum_to_name(s->names, *(const int *)field));
		break;
	case CT_SERVICE:
		service_format(*(const unsigned *)field, out);
		break;
	}
}

/* One .env line. Returns 1 for a KEY=VALUE entry (key/klen set, value in val),
 * 0 for a blank or comment line, -1 with a reason in why when malformed. */
static int dotenv_line(char *line, const char **key, size_t *klen, struct buf *val,
		       const char **why)
{
	char *p = line;
	size_t n = strlen(line);

	while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		line[--n] = 0;
	while (*p == ' ' || *p == '\t')
		p++;
	if (!*p || *p == '#')
		return 0;
	if (!strncmp(p, "export", 6) && (p[6] == ' ' || p[6] == '\t')) {
		p += 6;
		while (*p == ' ' || *p == '\t')
			p++;
	}
	*why = "expected KEY=VALUE, export KEY=VALUE, a blank line or a # comment";
	*key = p;
	if (!isalpha((unsigned char)*p) && *p != '_')
		return -1;
	while (isalnum((unsigned char)*p) || *p == '_')
		p++;
	*klen = (size_t)(p - *key);
	while (*p == ' ' || *p == '\t')
		p++;
	if (*p++ != '=')
		return -1;
	while (*p == ' ' || *p == '\t')
		p++;

	buf_reset(val);
	if (*p == '"' || *p == '\'') {
		char q = *p++;

		while (*p && *p != q) {
			if (q == '"' && *p == '\\' && (p[1] == '"' || p[1] == '\\')) {
				p++;
			} else if (q == '"' && *p == '\\' && p[1] == 'n') {
				buf_append(val, "\n", 1);
				p += 2;
				continue;
			}
			buf_append(val, p++, 1);
		}
		if (*p != q) {
			*why = "the quoted value has no closing quote";
			return -1;
		}
		p++;
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p && *p != '#') {
			*why = "unexpected text after the closing quote";
			return -1;
		}
	} else {
		char *end = p;

		/* An unquoted value ends at a '#' that follows whitespace (p > line:
		 * the '=' at least precedes it). */
		while (*end && !(*end == '#' && (end[-1] == ' ' || end[-1] == '\t')))
			end++;
		while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
			end--;
		buf_append(val, p, (size_t)(end - p));
	}
	if (!val->data)
		buf_puts(val, "");
	return 1;
}

/* Read ./.env if it exists into vals[] (owned, indexed like settings[]) and
 * lines[]. 0, or -1 with the message in err. */
static int dotenv_read(char **vals, int *lines, struct buf *err)
{
	FILE *f = fopen(DOTENV_PATH, "re");
	struct buf val;
	char *line = NULL;
	size_t cap = 0;
	int lineno = 0, r = 0;

	if (!f) {
		if (errno == ENOENT)
			return 0;
		return fail(err, "cannot read %s: %s", DOTENV_PATH, strerror(errno));
	}
	buf_init(&val, BUF_UNLIMITED);
	errno = 0;
	while (getline(&line, &cap, f) >= 0) {
		const char *key = NULL, *why = NULL;
		size_t klen = 0;
		int kind, i;

		lineno++;
		kind = dotenv_line(line, &key, &klen, &val, &why);
		if (kind < 0) {
			r = fail(err, "%s line %d: %s", DOTENV_PATH, lineno, why);
			break;
		}
		if (kind == 0 || (i = find_env(key, klen)) < 0)
			continue;
		free(vals[i]);
		vals[i] = xstrdup(val.data);
		lines[i] = lineno;
	}
	if (!r && ferror(f))
		r = fail(err, "cannot read %s: %s", DOTENV_PATH, strerror(errno ? errno : EIO));
	free(line);
	buf_release(&val);
	fclose(f);
	return r;
}

/* Walk argv: settings flags set srcs[], everything else goes to unknown. */
static int cli_scan(int argc, char **argv, struct source *srcs, config_unknown_fn unknown,
		    void *ctx, struct buf *err)
{
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *next = i + 1 < argc ? argv[i + 1] : NULL;
		int used;

		if (a[0] == '-' && a[1] == '-' && a[2]) {
			const char *eq = strchr(a + 2, '=');
			size_t len = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
			const struct setting *s = find_flag(a + 2, len);

			if (s) {
				struct source *src = &srcs[s - settings];
				int b;

				src->kind = SRC_CLI;
				src->flag = a;
				src->flag_len = (int)len + 2;
				if (eq) {
					src->text = eq + 1;
				} else if (s->type == CT_BOOL) {
					/* Alone it means true; a boolean after it is its value. */
					src->text = "true";
					if (next && !parse_bool(next, &b)) {
						src->text = next;
						i++;
					}
				} else if (next) {
					src->text = next;
					i++;
				} else {
					return fail(err, "missing value for %s (%s)", a, s->env);
				}
				continue;
			}
		}
		used = unknown ? unknown(a, next, ctx) : 0;
		if (used <= 0) {
			if (a[0] == '-') {
				const char *eq = strchr(a, '=');
				int len = eq ? (int)(eq - a) : (int)strlen(a);
				return fail(err, "unknown option %.*s (see --help)", len, a);
			}
			return fail(err, "unexpected argument \"%s\" (see --help)", a);
		}
		if (used >= 2 && next)
			i++;
	}
	return 0;
}

int config_load(struct config *cfg, int argc, char **argv, int use_dotenv,
		config_unknown_fn unknown, void *ctx, struct buf *err)
{
	struct source srcs[N_SETTINGS];
	char *dotenv[N_SETTINGS] = {0};
	int lines[N_SETTINGS] = {0};
	int r = -1;

	memset(cfg, 0, sizeof(*cfg));
	memset(srcs, 0, sizeof(srcs));
	for (size_t i = 0; i < N_SETTINGS; i++)
		srcs[i].text = settings[i].def;
	if (use_dotenv && dotenv_read(dotenv, lines, err))
		goto out;
	for (size_t i = 0; i < N_SETTINGS; i++) {
		const char *v = getenv(settings[i].env);

		if (v) {
			srcs[i].kind = SRC_ENV;
			srcs[i].text = v;
		} else if (dotenv[i]) {
			srcs[i].kind = SRC_DOTENV;
			srcs[i].text = dotenv[i];
			srcs[i].line = lines[i];
		}
	}
	if (cli_scan(argc, argv, srcs, unknown, ctx, err))
		goto out;
	for (size_t i = 0; i < N_SETTINGS; i++)
		if (setting_apply(&settings[i], &srcs[i], cfg, err))
			goto out;
	if (cfg->min_ready_workers > cfg->n_devices) {
		fail(err, "MIN_READY_WORKERS is %d but DEVICE_IDS \"%s\" has only %d group%s "
		     "(one worker per group)", cfg->min_ready_workers, cfg->device_ids,
		     cfg->n_devices, cfg->n_devices == 1 ? "" : "s");
		goto out;
	}
	r = 0;
out:
	for (size_t i = 0; i < N_SETTINGS; i++)
		free(dotenv[i]);
	if (r)
		config_release(cfg);
	return r;
}

void config_release(struct config *cfg)
{
	for (size_t i = 0; i < N_SETTINGS; i++) {
		const struct setting *s = &settings[i];

		if (s->type == CT_STRING || s->type == CT_DEVICES || s->type == CT_DEVICE) {
			char **field = (char **)((char *)cfg + s->off);
			free(*field);
			*field = NULL;
		}
	}
	for (int i = 0; i < cfg->n_devices && i < CONFIG_MAX_DEVICES; i++) {
		free(cfg->device_group[i]);
		cfg->device_group[i] = NULL;
	}
	cfg->n_devices = 0;
}

static void flag_format(const struct setting *s, struct buf *out)
{
	buf_puts(out, "--");
	for (const char *p = s->env; *p; p++) {
		char c = *p == '_' ? '-' : (char)tolower((unsigned char)*p);
		buf_append(out, &c, 1);
	}
	if (s->alias)
		buf_printf(out, ", --%s", s->alias);
}

/* The terse "type / accepted values" column of --help. */
static void type_format(const struct setting *s, struct buf *out)
{
	char lo[32], hi[32];

	fmt_double(s->min, lo, sizeof(lo));
	fmt_double(s->max, hi, sizeof(hi));
	switch (s->type) {
	case CT_INT:
	case CT_INT64:
		buf_printf(out, "int %s..%s", lo, hi);
		break;
	case CT_DOUBLE:
		buf_printf(out, "number %s..%s", lo, hi);
		break;
	case CT_BOOL:
		buf_puts(out, "bool");
		break;
	case CT_STRING:
		buf_puts(out, "string");
		break;
	case CT_ENUM:
		enum_list(s->names, "|", out);
		break;
	case CT_SERVICE:
		enum_list(s->names, "|", out);
		buf_puts(out, " or a list a,b");
		break;
	case CT_DEVICES:
		buf_puts(out, "groups (0),(1) or (0,1)");
		break;
	case CT_RUNNER:
		runner_names("|", out);
		break;
	case CT_DEVICE:
		device_names("|", out);
		buf_puts(out, " or empty");
		break;
	}
}

enum { COL_FLAG, COL_ENV, COL_TYPE, COL_DEFAULT, N_COLS };

static void help_cells(const struct setting *s, struct buf cells[N_COLS])
{
	for (int c = 0; c < N_COLS; c++)
		buf_reset(&cells[c]);
	flag_format(s, &cells[COL_FLAG]);
	buf_puts(&cells[COL_ENV], s->env);
	type_format(s, &cells[COL_TYPE]);
	buf_puts(&cells[COL_DEFAULT], *s->def ? s->def : "\"\"");
}

void config_help(struct buf *out)
{
	struct buf cells[N_COLS];
	int width[N_COLS] = {0};

	for (int c = 0; c < N_COLS; c++)
		buf_init(&cells[c], BUF_UNLIMITED);
	for (size_t i = 0; i < N_SETTINGS; i++) {
		help_cells(&settings[i], cells);
		for (int c = 0; c < N_COLS; c++)
			width[c] = MAX(width[c], (int)cells[c].len);
	}
	buf_puts(out,
		 "Settings. Each flag has an environment variable of the same name; precedence:\n"
		 "flag > environment > ./.env > default. Flags take --flag VALUE or --flag=VALUE;\n"
		 "a boolean flag alone means true. Booleans accept 1/0, true/false, yes/no,\n"
		 "on/off in any case.\n");
	buf_printf(out, "\n  %-*s  %-*s  %-*s  %-*s  %s\n", width[COL_FLAG], "FLAG", width[COL_ENV],
		   "ENV", width[COL_TYPE], "VALUES", width[COL_DEFAULT], "DEFAULT", "MEANING");
	for (size_t i = 0; i < N_SETTINGS; i++) {
		const struct setting *s = &settings[i];

		if (i == 0 || settings[i - 1].group != s->group)
			buf_printf(out, "\n%s:\n", group_titles[s->group]);
		help_cells(s, cells);
		buf_printf(out, "  %-*s  %-*s  %-*s  %-*s  %s\n", width[COL_FLAG],
			   cells[COL_FLAG].data, width[COL_ENV], cells[COL_ENV].data,
			   width[COL_TYPE], cells[COL_TYPE].data, width[COL_DEFAULT],
			   cells[COL_DEFAULT].data, s->help);
	}
	for (int c = 0; c < N_COLS; c++)
		buf_release(&cells[c]);
	buf_puts(out, "\nrunners built into this binary (MODEL_RUNNER):\n");
	for (size_t i = 0; runner_registry_at(i); i++) {
		const struct runner_desc *d = runner_registry_at(i);

		buf_printf(out, "  %-8s serves ", d->name);
		service_format(d->services, out);
		buf_printf(out, "; default device %s", d->default_device);
		if (d->settings[0])
			buf_printf(out, "; reads %s", d->settings);
		buf_puts(out, "\n");
	}
}

void config_dump_json(const struct config *cfg, struct buf *out)
{
	struct buf text;

	buf_init(&text, BUF_UNLIMITED);
	buf_puts(out, "{");
	for (size_t i = 0; i < N_SETTINGS; i++) {
		const struct setting *s = &settings[i];

		buf_reset(&text);
		setting_format(s, cfg, &text);
		buf_printf(out, "%s\"%s\":", i ? "," : "", s->env);
		if (s->secret)
			buf_puts(out, "\"***\"");
		else if (s->type == CT_INT || s->type == CT_INT64 || s->type == CT_DOUBLE ||
			 s->type == CT_BOOL)
			buf_puts(out, text.data);
		else
			buf_json_str(out, text.data ? text.data : "");
	}
	buf_puts(out, "}");
	buf_release(&text);
}

void config_export_env(const struct config *cfg)
{
	struct buf text;

	buf_init(&text, BUF_UNLIMITED);
	for (size_t i = 0; i < N_SETTINGS; i++) {
		buf_reset(&text);
		setting_format(&settings[i], cfg, &text);
		if (setenv(settings[i].env, text.data ? text.data : "", 1))
			log_warn("cannot export %s: %s", settings[i].env, strerror(errno));
	}
	buf_release(&text);
}

const char *config_device_name(const struct config *cfg)
{
	if (cfg->device_plugin && cfg->device_plugin[0])
		return "plugin";
	if (cfg->device && cfg->device[0])
		return cfg->device;
	return cfg->model_runner ? cfg->model_runner->default_device : "cpu";
}

const char *service_name(unsigned svc_bit)
{
	return enum_to_name(service_names, (int)svc_bit);
}
