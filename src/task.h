/* task.h: the kinds of work a worker does, shared by supervisor and worker. */
#ifndef MEDIAD_TASK_H
#define MEDIAD_TASK_H

enum task_kind {
	TASK_NONE = 0,
	TASK_IMAGE_GEN,   /* POST /v1/images/generations */
	TASK_TRANSCRIBE,  /* POST /v1/audio/transcriptions */
	TASK_TRANSLATE,   /* POST /v1/audio/translations */
	TASK_SPEECH,      /* POST /v1/audio/speech */
	TASK_VIDEO_GEN,   /* POST /v1/videos/generations (job) */
	TASK_CHAT,        /* POST /v1/chat/completions */
	TASK_COMPLETION,  /* POST /v1/completions */
	TASK_TOKENIZE,    /* POST /v1/tokenize */
	TASK_DETOKENIZE,  /* POST /v1/detokenize */
	TASK_EMBED,       /* POST /v1/embeddings */
	TASK_TRAIN,       /* POST /v1/jobs (job) */
	TASK_KIND_COUNT
};

const char *task_kind_name(enum task_kind k);

#endif
