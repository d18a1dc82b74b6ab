/* router.c: see router.h. */
#include "router.h"

#include <stdio.h>
#include <string.h>

#include "config.h"
#include "jobs.h"

#define IMG SVC_IMAGE
#define AUD SVC_AUDIO
#define TTS SVC_TTS
#define VID SVC_VIDEO
#define LLM SVC_LLM
#define TRN SVC_TRAINING

const struct route router_routes[] = {
	/* health and operations: no auth */
	{"/health", M_GET, 0, 0, H_HEALTH, TASK_NONE, "/health", NULL, 0},
	{"/readyz", M_GET, 0, 0, H_HEALTH, TASK_NONE, "/readyz", NULL, 0},
	{"/v2/health/ready", M_GET, 0, 0, H_HEALTH, TASK_NONE, "/v2/health/ready", NULL, 0},
	{"/livez", M_GET, 0, 0, H_LIVEZ, TASK_NONE, "/livez", NULL, 0},
	{"/v2/health/live", M_GET, 0, 0, H_LIVEZ, TASK_NONE, "/v2/health/live", NULL, 0},
	{"/startupz", M_GET, 0, 0, H_STARTUPZ, TASK_NONE, "/startupz", NULL, 0},
	{"/tt-liveness", M_GET, 0, 0, H_LIVENESS, TASK_NONE, "/tt-liveness", NULL, 0},
	{"/metrics", M_GET, 0, 0, H_METRICS, TASK_NONE, "/metrics", NULL, 0},
	{"/v1/models", M_GET, 0, 0, H_MODELS, TASK_NONE, "/v1/models", NULL, 0},
	/* operations: auth */
	{"/v1/config", M_GET, 0, 1, H_CONFIG, TASK_NONE, "/v1/config", NULL, 0},
	{"/tt-reset-device", M_POST, 0, 1, H_RESET_DEVICE, TASK_NONE, "/tt-reset-device", NULL, 0},
	{"/tt-deep-reset", M_POST, 0, 1, H_DEEP_RESET, TASK_NONE, "/tt-deep-reset", NULL, 0},
	{"/debug/faults", M_POST, 0, 1, H_FAULTS, TASK_NONE, "/debug/faults", NULL, 0},
	{"/debug/faults", M_DELETE, 0, 1, H_FAULTS, TASK_NONE, "/debug/faults", NULL, 0},
	/* images */
	{"/v1/images/generations", M_POST, IMG, 1, H_INFER, TASK_IMAGE_GEN,
	 "/v1/images/generations", "/image/generations", 0},
	/* audio */
	{"/v1/audio/transcriptions", M_POST, AUD, 1, H_INFER, TASK_TRANSCRIBE,
	 "/v1/audio/transcriptions", "/audio/transcriptions", 0},
	{"/v1/audio/translations", M_POST, AUD, 1, H_INFER, TASK_TRANSLATE,
	 "/v1/audio/translations", "/audio/translations", 0},
	{"/v1/audio/speech", M_POST, TTS, 1, H_INFER, TASK_SPEECH, "/v1/audio/speech",
	 "/audio/speech", 0},
	/* video jobs */
	{"/v1/videos/generations", M_POST, VID, 1, H_JOB_CREATE, TASK_VIDEO_GEN,
	 "/v1/videos/generations", "/video/generations", JOB_VIDEO},
	{"/v1/videos/generations/{id}", M_GET, VID, 1, H_JOB_GET, TASK_NONE,
	 "/v1/videos/generations/{id}", "/video/generations/{id}", JOB_VIDEO},
	{"/v1/videos/generations/{id}/download", M_GET, VID, 1, H_JOB_DOWNLOAD, TASK_NONE,
	 "/v1/videos/generations/{id}/download", "/video/generations/{id}/download", JOB_VIDEO},
	{"/v1/videos/generations/{id}/cancel", M_POST, VID, 1, H_JOB_CANCEL, TASK_NONE,
	 "/v1/videos/generations/{id}/cancel", "/video/generations/{id}/cancel", JOB_VIDEO},
	{"/v1/videos/jobs", M_GET, VID, 1, H_JOB_LIST, TASK_NONE, "/v1/videos/jobs",
	 "/video/jobs", JOB_VIDEO},
	/* text */
	{"/v1/chat/completions", M_POST, LLM, 1, H_INFER, TASK_CHAT, "/v1/chat/completions", NULL,
	 0},
	{"/v1/completions", M_POST, LLM, 1, H_INFER, TASK_COMPLETION, "/v1/completions", NULL, 0},
	{"/v1/tokenize", M_POST, LLM, 1, H_INFER, TASK_TOKENIZE, "/v1/tokenize", NULL, 0},
	{"/v1/detokenize", M_POST, LLM, 1, H_INFER, TASK_DETOKENIZE, "/v1/detokenize", NULL, 0},
	{"/v1/embeddings", M_POST, LLM, 1, H_INFER, TASK_EMBED, "/v1/embeddings", NULL, 0},
	/* fine-tuning */
	{"/v1/catalog", M_GET, TRN, 1, H_CATALOG, TASK_NONE, "/v1/catalog", NULL, JOB_TRAINING},
	{"/v1/jobs", M_POST, TRN, 1, H_JOB_CREATE, TASK_TRAIN, "/v1/jobs", NULL, JOB_TRAINING},
	{"/v1/jobs", M_GET, TRN, 1, H_JOB_LIST, TASK_NONE, "/v1/jobs", NULL, JOB_TRAINING},
	{"/v1/jobs/{id}", M_GET, TRN, 1, H_JOB_GET, TASK_NONE, "/v1/jobs/{id}", NULL,
	 JOB_TRAINING},
	{"/v1/jobs/{id}/metrics", M_GET, TRN, 1, H_JOB_METRICS, TASK_NONE,
	 "/v1/jobs/{id}/metrics", NULL, JOB_TRAINING},
	{"/v1/jobs/{id}/logs", M_GET, TRN, 1, H_JOB_LOGS, TASK_NONE, "/v1/jobs/{id}/logs", NULL,
	 JOB_TRAINING},
	{"/v1/jobs/{id}/checkpoints", M_GET, TRN, 1, H_JOB_CHECKPOINTS, TASK_NONE,
	 "/v1/jobs/{id}/checkpoints", NULL, JOB_TRAINING},
	{"/v1/jobs/{id}/cancel", M_POST, TRN, 1, H_JOB_CANCEL, TASK_NONE, "/v1/jobs/{id}/cancel",
	 NULL, JOB_TRAINING},
};

const size_t router_n_routes = sizeof(router_routes) / sizeof(router_routes[0]);

/* Match pattern against path; on a {id} segment copy it to id. */
static int path_match(const char *pat, const char *path, char *id, size_t idn)
{
	while (*pat && *path) {
		if (!strncmp(pat, "{id}", 4)) {
			const char *end = strchr(path, '/');
			size_t len = end ? (size_t)(end - path) : strlen(path);
			if (len == 0 || len >= idn)
				return 0;
			memcpy(id, path, len);
			id[len] = 0;
			path += len;
			pat += 4;
			continue;
		}
		if (*pat != *path)
			return 0;
		pat++;
		path++;
	}
	return *pat == 0 && *path == 0;
}

int router_match(const char *path, unsigned method, unsigned services, struct route_match *m)
{
	char id[sizeof(m->id)];
	int found_path = 0;

	memset(m, 0, sizeof(*m));
	for (size_t i = 0; i < router_n_routes; i++) {
		const struct route *r = &router_routes[i];
		int legacy = 0;

		if (r->services && !(r->services & services))
			continue;
		id[0] = 0;
		if (!path_match(r->path, path, id, sizeof(id))) {
			if (!r->legacy || !path_match(r->legacy, path, id, sizeof(id)))
				continue;
			legacy = 1;
		}
		found_path = 1;
		m->allowed |= r->method | (r->method == M_GET ? M_HEAD : 0);
		if (!m->route && (r->method == method || (r->method == M_GET && method == M_HEAD))) {
			m->route = r;
			m->legacy = legacy;
			memcpy(m->id, id, sizeof(m->id));
		}
	}
	if (m->route)
		return 1;
	return found_path ? 0 : -1;
}

unsigned router_method(const char *name)
{
	static const struct {
		const char *n;
		unsigned m;
	} t[] = {{"GET", M_GET}, {"HEAD", M_HEAD}, {"POST", M_POST}, {"DELETE", M_DELETE},
		 {"PUT", M_PUT}, {"PATCH", M_PATCH}, {"OPTIONS", M_OPTIONS}};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		if (!strcmp(name, t[i].n))
			return t[i].m;
	return M_OTHER;
}

void router_allow_header(unsigned methods, char *out, size_t n)
{
	static const char *names[] = {"GET", "HEAD", "POST", "DELETE", "PUT", "PATCH", "OPTIONS"};
	size_t len = 0;

	out[0] = 0;
	for (int i = 0; i < 7; i++) {
		if (!(methods & (1u << i)))
			continue;
		int w = snprintf(out + len, n - len, "%s%s", len ? ", " : "", names[i]);
		if (w < 0 || (size_t)w >= n - len) {
			out[len] = 0; /* never leave half a name */
			break;
		}
		len += (size_t)w;
	}
}
