/* runners/registry.c: the table of runners built into mediad. See
 * runners/registry.h. One row per runner; a runner's folder provides its
 * ops (and setup hook) through its own header. */
#include "runners/registry.h"

#include <string.h>
#include <strings.h>

#include "config.h"
#include "runners/dit/dit.h"
#include "runners/flite/flite.h"
#include "runners/mock/mock.h"
#include "runners/sphinx/sphinx.h"
#include "util.h"

static const struct runner_desc runners[] = {
	{"mock", SVC_ALL, &runner_mock_ops, "mock", NULL,
	 "MOCK_WARMUP_SECONDS, MOCK_LATENCY_MS, MOCK_STEPS, MOCK_DEEP_FAIL, MOCK_WARMUP_HANG[_WORKER]"},
	{"dit", SVC_IMAGE, &runner_dit_ops, "cpu", dit_runner_setup,
	 "DIT_PRESET, MODEL_WEIGHTS_PATH"},
	{"sphinx", SVC_AUDIO, &runner_sphinx_ops, "cpu", NULL,
	 "MODEL_WEIGHTS_PATH, MAX_AUDIO_DURATION_SECONDS"},
	{"flite", SVC_TTS, &runner_flite_ops, "cpu", NULL, ""},
};

const struct runner_desc *runner_registry_find(const char *name, size_t len)
{
	for (size_t i = 0; i < ARRAY_SIZE(runners); i++)
		if (strlen(runners[i].name) == len && !strncasecmp(runners[i].name, name, len))
			return &runners[i];
	return NULL;
}

const struct runner_desc *runner_registry_at(size_t i)
{
	return i < ARRAY_SIZE(runners) ? &runners[i] : NULL;
}
