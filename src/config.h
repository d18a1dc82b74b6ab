/* config.h: every setting of mediad, declared once.
 *
 * config.c holds one table (name, env var, CLI flag, type, default, bounds or
 * accepted values, help). Environment parsing, `--help`, the startup log line,
 * the worker's inherited environment and the /v1/config dump all come from
 * that table. Precedence: CLI flag > real environment > ./.env > default. */
#ifndef MEDIAD_CONFIG_H
#define MEDIAD_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "runners/registry.h"

#define CONFIG_MAX_DEVICES 16

/* Service bits: what a server instance mounts. */
enum service {
	SVC_IMAGE = 1 << 0,
	SVC_AUDIO = 1 << 1,
	SVC_TTS = 1 << 2,
	SVC_VIDEO = 1 << 3,
	SVC_LLM = 1 << 4,
	SVC_TRAINING = 1 << 5,
	SVC_ALL = (1 << 6) - 1,
};

enum on_dead { ON_DEAD_GATE, ON_DEAD_RESTART, ON_DEAD_EXIT };
enum mock_deep_fail { MOCK_DEEP_NONE, MOCK_DEEP_ERROR, MOCK_DEEP_HANG };
enum dit_preset { DIT_PRESET_TINY, DIT_PRESET_SMALL, DIT_PRESET_BASE };

struct config {
	/* server */
	char *service_host;            /* SERVICE_HOST, "0.0.0.0" */
	int service_port;              /* SERVICE_PORT, 8000 (0..65535; 0 = any port) */
	char *device_ids;              /* DEVICE_IDS, "(0)" */
	const struct runner_desc *model_runner; /* MODEL_RUNNER, dit: its registry row */
	char *device;                  /* DEVICE, "" = the runner's default device */
	char *device_plugin;           /* DEVICE_PLUGIN, "": a device backend .so */
	unsigned model_service;        /* MODEL_SERVICE: SVC_* bits; "all" = SVC_ALL */
	char *model_name;              /* MODEL_NAME, "" = derived from runner */
	char *api_key;                 /* API_KEY, "your-secret-key" */
	int no_auth;                   /* NO_AUTH, false */
	int max_queue_size;            /* MAX_QUEUE_SIZE, 5000 (1..1000000) */
	int max_batch_size;            /* MAX_BATCH_SIZE, 1 (1..64) */
	int max_batch_delay_time_ms;   /* MAX_BATCH_DELAY_TIME_MS, 0 (0..10000) */
	double request_processing_timeout_seconds; /* 1000 (0.1..86400) */
	int max_worker_restart_count;  /* MAX_WORKER_RESTART_COUNT, 5 (0..1000) */
	int worker_restart_window_seconds; /* ..._SECONDS, 1800 (1..604800) */
	double worker_warmup_timeout_seconds; /* WORKER_WARMUP_TIMEOUT_SECONDS, 600 (0 = off..86400) */
	int min_ready_workers;         /* MIN_READY_WORKERS, 1 (1..CONFIG_MAX_DEVICES) */
	int64_t max_request_body_bytes; /* MAX_REQUEST_BODY_BYTES, 64 MiB (1 KiB..4 GiB) */
	int log_level;                 /* LOG_LEVEL: enum log_level, info */
	int max_connections;           /* MAX_CONNECTIONS, 4096 (16..100000) */
	int connection_timeout_seconds; /* CONNECTION_TIMEOUT_SECONDS, 30 (1..3600) */
	double request_header_timeout_seconds; /* REQUEST_HEADER_TIMEOUT_SECONDS, 60 */
	double request_body_timeout_seconds;   /* REQUEST_BODY_TIMEOUT_SECONDS, 30 */
	int request_body_min_rate;             /* REQUEST_BODY_MIN_RATE, 1024 bytes/s */
	double drain_timeout_seconds;  /* DRAIN_TIMEOUT_SECONDS, 30 (0..3600) */
	int worker_threads;            /* WORKER_THREADS, 0 = cores / workers (0..256) */
	int enable_fault_injection;    /* ENABLE_FAULT_INJECTION, false */
	double max_audio_duration_seconds; /* MAX_AUDIO_..., 60 (0.1..86400) */
	char *model_weights_path;      /* MODEL_WEIGHTS_PATH, "" */
	enum dit_preset dit_preset;    /* DIT_PRESET, small: size of the dit runner's model */

	/* canary (HEALTH.md section 4) */
	int canary_enabled;                     /* CANARY_ENABLED, true */
	int canary_gate_readiness;              /* CANARY_GATE_READINESS, true */
	int canary_deep_probe_enabled;          /* CANARY_DEEP_PROBE_ENABLED, true */
	double canary_wait_seconds;             /* 5 (0..86400) */
	double canary_probe_timeout_seconds;    /* 3 (0.01..3600) */
	double canary_deep_probe_timeout_seconds; /* 60 (0.01..86400) */
	double canary_tick_seconds;             /* 1 (0.05..60) */
	int canary_dead_misses;                 /* 3 (1..1000) */
	double canary_startup_grace_seconds;    /* 30 (0..86400) */
	int canary_deep_every_n;                /* 3 (1..1000) */
	double canary_progress_timeout_seconds; /* 0 = auto (0..86400) */
	enum on_dead canary_on_dead;            /* CANARY_ON_DEAD, restart */
	char *reset_device_command;             /* RESET_DEVICE_COMMAND, "" */
	double reset_device_timeout_seconds;    /* RESET_DEVICE_TIMEOUT_SECONDS, 60 (0.1..3600) */

	/* mock runner */
	double mock_warmup_seconds;    /* MOCK_WARMUP_SECONDS, 2 (0..3600) */
	int mock_latency_ms;           /* MOCK_LATENCY_MS, 50 (0..3600000) */
	int mock_steps;                /* MOCK_STEPS, 4 (1..10000) */
	enum mock_deep_fail mock_deep_fail; /* MOCK_DEEP_FAIL, none */
	int mock_warmup_hang;          /* MOCK_WARMUP_HANG, 0: first N warmups hang (0..1000) */
	char *mock_warmup_hang_worker; /* MOCK_WARMUP_HANG_WORKER, "" = every worker */

	/* derived from device_ids by config_load: one entry per worker */
	int n_devices;
	char *device_group[CONFIG_MAX_DEVICES]; /* "0", "1", "0,1" */
};

/* Fill cfg with defaults, then .env (if present in the working directory and
 * use_dotenv), then the environment, then argv flags (--port 9000,
 * --port=9000, --no-auth for booleans with no value). On error returns -1 and
 * writes one line naming the variable and the accepted values to err.
 * `--help` is not handled here (see config_help). argv entries that are not
 * settings (e.g. --worker) are left to the caller when the callback accepts
 * them: unknown(arg, next, ctx) returns the number of argv entries it used
 * (1 or 2), or 0 if it does not know the flag (then config_load fails).
 * A boolean flag takes the next argv entry as its value only when that entry
 * is a boolean. Overwrites *cfg without releasing it; on success the caller
 * owns the strings (config_release), on failure nothing is left to release. */
typedef int (*config_unknown_fn)(const char *arg, const char *next, void *ctx);
int config_load(struct config *cfg, int argc, char **argv, int use_dotenv,
		config_unknown_fn unknown, void *ctx, struct buf *err);
void config_release(struct config *cfg);

/* The table as text for --help: flag, env, default, accepted values, help. */
void config_help(struct buf *out);
/* The effective values as a compact JSON object keyed by env name; secrets
 * (API_KEY) are shown as "***". */
void config_dump_json(const struct config *cfg, struct buf *out);
/* Export every setting into the current process environment (setenv), so a
 * worker started with exec sees exactly the supervisor's effective values. */
void config_export_env(const struct config *cfg);

/* The device backend workers open: DEVICE, else the runner's default
 * ("cpu", "mock"); "plugin" when DEVICE_PLUGIN names one. */
const char *config_device_name(const struct config *cfg);
/* "image", "audio", ... for one bit. */
const char *service_name(unsigned svc_bit);

#endif
