/* jobs.h: the store of asynchronous jobs (video generations, fine-tuning).
 *
 * Owned by the supervisor's event loop; no locking. Jobs live in memory for
 * now (durable storage comes with the video runner issue). Job ids are
 * generated here ("job-" + 24 hex chars) and a lookup of anything that is not
 * of that shape fails without touching any storage, so a path-traversal id
 * can never reach a file system call.
 *
 * The store is bounded (JOBS_MAX by default). When it is full, jobs_create
 * evicts the oldest job (by creation) that is in a final state; when no job
 * is final it refuses the new one (NULL; the API answers 429). A struct job
 * pointer therefore stays valid only until the next jobs_create or
 * jobs_free: keep the id, not the pointer, across event loop turns. */
#ifndef MEDIAD_JOBS_H
#define MEDIAD_JOBS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define JOBS_MAX 10000
#define JOBS_ID_LEN 28          /* strlen("job-") + 24 lowercase hex digits */
#define JOBS_MESSAGE_MAX 1024   /* error messages are cut to this many bytes */

enum job_type { JOB_VIDEO, JOB_TRAINING };
enum job_status { JOB_QUEUED, JOB_IN_PROGRESS, JOB_COMPLETED, JOB_FAILED, JOB_CANCELLED };

struct job {
	char id[32];
	enum job_type type;
	enum job_status status;
	double created_at;   /* wall clock seconds */
	double completed_at; /* 0 = not yet */
	char *model;
	char *organization;  /* X-TT-Organization for training jobs, "" otherwise */
	json_t *request_parameters;
	double progress;     /* 0..1 */
	int error_code;      /* HTTP-like code when failed */
	char *error_message;
	json_t *metrics;     /* array of objects (training: {"step","loss",...}) */
	json_t *logs;        /* array of strings */
	json_t *checkpoints; /* array of objects */
	int artifact_fd;     /* memfd with the result (video/mp4), -1 none; owned */
	size_t artifact_size;
	uint64_t task_id;    /* scheduler request id while queued/in progress, 0 otherwise */
};

struct jobs;

/* An empty store holding at most JOBS_MAX jobs. Free with jobs_free. */
struct jobs *jobs_new(void);
/* The same with a bound of max jobs (at least 1; 0 is taken as 1). */
struct jobs *jobs_new_bounded(size_t max);
/* Frees every job, closing their artifact fds. NULL is a no-op. */
void jobs_free(struct jobs *js);
/* How many jobs the store holds. */
int jobs_count(struct jobs *js);

/* Create a queued job with a fresh random id, created_at = now (wall clock),
 * progress 0, empty metrics/logs/checkpoints arrays and no artifact.
 * model and organization are copied (NULL is taken as ""); params borrowed
 * (a reference is taken; NULL or a non-object becomes {}). Returns NULL only
 * when the store is full and no job can be evicted (see above); the job is
 * owned by the store. */
struct job *jobs_create(struct jobs *js, enum job_type type, const char *model,
			json_t *params, const char *organization);
/* NULL when unknown or when id is not a well-formed job id (exactly "job-"
 * followed by 24 lowercase hex digits); a malformed id is never looked up. */
struct job *jobs_get(struct jobs *js, const char *id);
/* 1 when id has the shape of a job id, 0 otherwise (NULL included). */
int jobs_id_valid(const char *id);
/* A JSON array of job objects of this type (and organization when not NULL,
 * compared byte for byte), newest first. New reference. */
json_t *jobs_list_json(struct jobs *js, enum job_type type, const char *organization);
/* The job object of API.md: id, object ("video.generation" or
 * "fine_tuning.job"), job_type, status, created_at, completed_at (final
 * states only), model, request_parameters (a copy), progress, error
 * ({"code","message"}, failed only) and, for training jobs, organization.
 * Times are integer seconds; strings that are not valid UTF-8 are rendered
 * with '?' for each bad byte. New reference. */
json_t *jobs_to_json(const struct job *j);

/* Move j to st. A final state (completed, failed, cancelled) is sticky: a
 * call on a final job changes nothing and returns -EALREADY. Reaching a final
 * state sets completed_at to the wall clock and task_id to 0; completed also
 * sets progress to 1; failed without a prior jobs_fail records code 500,
 * "job failed". Queued <-> in progress moves are free (a re-queue after a
 * worker loss). Returns 0, -EALREADY, or -EINVAL for an unknown status. */
int jobs_set_status(struct job *j, enum job_status st);
/* Mark j failed with an HTTP-like code (500 when not positive) and message
 * (copied, cut to JOBS_MESSAGE_MAX bytes; NULL is taken as "job failed").
 * Returns 0, or -EALREADY when j was already final (nothing changes). */
int jobs_fail(struct job *j, int code, const char *message);
/* Set progress, clamped to 0..1 (NaN counts as 0). Ignored on final jobs. */
void jobs_set_progress(struct job *j, double progress);
/* Takes ownership of fd (-1 to drop the artifact): a previous artifact fd is
 * closed, and the fd is closed in jobs_free or when the job is evicted.
 * Whoever hands the fd to something that closes it (an HTTP response built
 * from an fd) must pass a dup() instead. */
void jobs_set_artifact(struct job *j, int fd, size_t size);
/* 1 when j is completed, failed or cancelled. */
int jobs_is_final(const struct job *j);
/* "queued", "in_progress", "completed", "failed", "cancelled" ("unknown"
 * for anything else). */
const char *jobs_status_name(enum job_status st);

#endif
