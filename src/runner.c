/* runner.c: the table of runners built into this binary, and task names. */
#include "runner.h"

#include <stddef.h>

const struct runner_ops *runner_find(enum runner_kind kind)
{
	switch (kind) {
	case RUNNER_MOCK:
		return &runner_mock_ops;
	case RUNNER_DIT:
		return &runner_dit_ops;
	case RUNNER_SPHINX:
		return &runner_sphinx_ops;
	case RUNNER_FLITE:
		return &runner_flite_ops;
	default:
		return NULL;
	}
}

unsigned runner_kind_services(enum runner_kind kind)
{
	switch (kind) {
	case RUNNER_MOCK: return SVC_ALL;
	case RUNNER_DIT: return SVC_IMAGE;
	case RUNNER_SPHINX: return SVC_AUDIO;
	case RUNNER_FLITE: return SVC_TTS;
	case RUNNER_LLAMA: return SVC_LLM | SVC_TRAINING;
	}
	return 0;
}

const char *task_kind_name(enum task_kind k)
{
	static const char *names[TASK_KIND_COUNT] = {
		[TASK_NONE] = "none", [TASK_IMAGE_GEN] = "image_generation",
		[TASK_TRANSCRIBE] = "transcription", [TASK_TRANSLATE] = "translation",
		[TASK_SPEECH] = "speech", [TASK_VIDEO_GEN] = "video_generation",
		[TASK_CHAT] = "chat_completion", [TASK_COMPLETION] = "completion",
		[TASK_TOKENIZE] = "tokenize", [TASK_DETOKENIZE] = "detokenize",
		[TASK_EMBED] = "embedding", [TASK_TRAIN] = "fine_tuning",
	};
	return k < TASK_KIND_COUNT && names[k] ? names[k] : "unknown";
}
