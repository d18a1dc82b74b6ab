/* task.c: the names of task kinds (task.h), for logs and error messages. */
#include "task.h"

#include <stddef.h>

#include "util.h"

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
