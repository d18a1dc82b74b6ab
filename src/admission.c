/* admission.c: the admission rules of each task kind (see admission.h). */
#include "admission.h"

#include "config.h"
#include "banned.h"

/* Images batch by shape and step count: one batch runs one shape. */
static uint64_t image_batch_key(json_t *params)
{
	return (uint64_t)json_integer_value(json_object_get(params, "width")) << 40 |
	       (uint64_t)json_integer_value(json_object_get(params, "height")) << 20 |
	       (uint64_t)json_integer_value(json_object_get(params, "num_inference_steps"));
}

static const struct task_rules rules[TASK_KIND_COUNT] = {
	[TASK_IMAGE_GEN] = {SVC_IMAGE, 0, 0, 0, image_batch_key},
	[TASK_TRANSCRIBE] = {SVC_AUDIO, 1, 1, ADMISSION_MAX_UPLOAD, NULL},
	[TASK_TRANSLATE] = {SVC_AUDIO, 1, 1, ADMISSION_MAX_UPLOAD, NULL},
	[TASK_SPEECH] = {SVC_TTS, 0, 0, 0, NULL},
	[TASK_VIDEO_GEN] = {SVC_VIDEO, 0, 0, 0, NULL},
	[TASK_CHAT] = {SVC_LLM, 0, 0, 0, NULL},
	[TASK_COMPLETION] = {SVC_LLM, 0, 0, 0, NULL},
	[TASK_TOKENIZE] = {SVC_LLM, 0, 0, 0, NULL},
	[TASK_DETOKENIZE] = {SVC_LLM, 0, 0, 0, NULL},
	[TASK_EMBED] = {SVC_LLM, 0, 0, 0, NULL},
	[TASK_TRAIN] = {SVC_TRAINING, 0, 0, 0, NULL},
};

const struct task_rules *admission_rules(enum task_kind kind)
{
	static const struct task_rules none;

	return (unsigned)kind < TASK_KIND_COUNT ? &rules[kind] : &none;
}
