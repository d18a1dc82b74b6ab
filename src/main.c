/* main.c: role dispatch. `mediad` runs the supervisor; `mediad --worker ...`
 * (started by the supervisor only) runs one worker process. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "config.h"
#include "device.h"
#include "log.h"
#include "supervisor.h"
#include "util.h"
#include "worker/worker.h"

struct role {
	int worker;
	const char *worker_id;
	int incarnation;
	int ipc_fd;
	int progress_fd;
	int help;
};

static int on_unknown(const char *arg, const char *next, void *ctx)
{
	struct role *r = ctx;
	int64_t v;

	if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) {
		r->help = 1;
		return 1;
	}
	if (!strcmp(arg, "--worker")) {
		r->worker = 1;
		return 1;
	}
	if (!next)
		return 0;
	if (!strcmp(arg, "--worker-id")) {
		r->worker_id = next;
		return 2;
	}
	if (!strcmp(arg, "--worker-incarnation") && parse_i64(next, &v) == 0 && v >= 0 &&
	    v <= 1000000000) {
		r->incarnation = (int)v;
		return 2;
	}
	if (!strcmp(arg, "--ipc-fd") && parse_i64(next, &v) == 0) {
		r->ipc_fd = (int)v;
		return 2;
	}
	if (!strcmp(arg, "--progress-fd") && parse_i64(next, &v) == 0) {
		r->progress_fd = (int)v;
		return 2;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct config cfg;
	struct role role = {0, NULL, 0, -1, -1, 0};
	struct buf err;
	char self[4096];
	ssize_t n;
	int rc;

	buf_init(&err, 4096);
	/* workers take their settings from the environment the supervisor set */
	int is_worker = argc > 1 && !strcmp(argv[1], "--worker");
	if (config_load(&cfg, argc, argv, !is_worker, on_unknown, &role, &err) < 0) {
		fprintf(stderr, "mediad: %s\n", err.data ? err.data : "invalid configuration");
		buf_release(&err);
		return 2;
	}
	buf_release(&err);
	if (role.help) {
		struct buf out;
		buf_init(&out, BUF_UNLIMITED);
		config_help(&out);
		printf("mediad: media inference server\n\nusage: mediad [--flag value]...\n"
		       "Every setting is an environment variable (also read from ./.env) and a flag.\n\n"
		       "%s", out.data ? out.data : "");
		buf_release(&out);
		config_release(&cfg);
		return 0;
	}
	if (role.worker) {
		if (!role.worker_id || role.ipc_fd < 0 || role.progress_fd < 0) {
			fprintf(stderr, "mediad: worker mode needs --worker-id, --ipc-fd and "
					"--progress-fd (it is started by the supervisor)\n");
			return 2;
		}
		rc = worker_main(&cfg, role.worker_id, role.incarnation, role.ipc_fd,
				 role.progress_fd);
		config_release(&cfg);
		return rc;
	}
	if (!cfg.no_auth && !cfg.api_key[0]) {
		fprintf(stderr, "mediad: invalid value \"\" for API_KEY: expected a non-empty key "
				"(or NO_AUTH=true to serve without authentication)\n");
		config_release(&cfg);
		return 2;
	}
	if (cfg.device_plugin[0]) {
		/* a plugin that would fail every worker is a startup error */
		struct device_plugin plugin;
		char perr[512];

		if (device_plugin_open(&plugin, cfg.device_plugin, perr, sizeof(perr)) < 0) {
			fprintf(stderr, "mediad: invalid value for DEVICE_PLUGIN: %s\n", perr);
			config_release(&cfg);
			return 2;
		}
		device_plugin_close(&plugin);
	}
	log_init("supervisor", NULL, (enum log_level)cfg.log_level);
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n <= 0) {
		log_error("cannot find my own executable");
		return 1;
	}
	self[n] = 0;
	{
		struct buf dump;
		buf_init(&dump, BUF_UNLIMITED);
		config_dump_json(&cfg, &dump);
		char *fields = xmalloc(dump.len + 16);
		snprintf(fields, dump.len + 16, "\"config\":%s", dump.data);
		log_write(LOG_INFO, NULL, fields, "mediad starting: runner %s, %d worker(s)",
			  cfg.model_runner->name, cfg.n_devices);
		free(fields);
		buf_release(&dump);
	}
	rc = supervisor_run(&cfg, self);
	config_release(&cfg);
	return rc;
}
