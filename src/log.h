/* log.h: structured logging, one JSON object per line on stderr.
 *
 * Every line has ts, level, role (supervisor|worker), worker (id or null),
 * request_id (or absent) and msg; callers may add fields as a preformatted
 * JSON fragment ("\"k\":1,\"j\":\"x\""). The level check happens before any
 * formatting. log_signal_safe() writes a fixed message with write(2) only. */
#ifndef MEDIAD_LOG_H
#define MEDIAD_LOG_H

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

/* role and worker are copied; worker may be NULL. */
void log_init(const char *role, const char *worker, enum log_level level);
void log_set_level(enum log_level level);
int log_enabled(enum log_level level);
/* 0 on a known name (debug|info|warn|warning|error), -1 otherwise. */
int log_level_parse(const char *s, enum log_level *out);

void log_write(enum log_level level, const char *request_id, const char *fields,
	       const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* As log_write, with the "worker" field set to worker (the supervisor logs
 * events about one worker this way). */
void log_write_worker(enum log_level level, const char *worker, const char *request_id,
		      const char *fields, const char *fmt, ...) __attribute__((format(printf, 5, 6)));
void log_signal_safe(const char *msg);

#define log_debug(...) do { if (log_enabled(LOG_DEBUG)) log_write(LOG_DEBUG, NULL, NULL, __VA_ARGS__); } while (0)
#define log_info(...) do { if (log_enabled(LOG_INFO)) log_write(LOG_INFO, NULL, NULL, __VA_ARGS__); } while (0)
#define log_warn(...) do { if (log_enabled(LOG_WARN)) log_write(LOG_WARN, NULL, NULL, __VA_ARGS__); } while (0)
#define log_error(...) log_write(LOG_ERROR, NULL, NULL, __VA_ARGS__)

#endif
