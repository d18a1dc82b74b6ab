/* log.c: see log.h. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"

static struct {
	char role[16];
	char worker[64];
	int has_worker;
	enum log_level level;
} g_log = {"supervisor", "", 0, LOG_INFO};

static const char *level_names[] = {"debug", "info", "warn", "error"};

void log_init(const char *role, const char *worker, enum log_level level)
{
	snprintf(g_log.role, sizeof(g_log.role), "%s", role);
	g_log.has_worker = worker != NULL;
	snprintf(g_log.worker, sizeof(g_log.worker), "%s", worker ? worker : "");
	g_log.level = level;
}

void log_set_level(enum log_level level)
{
	g_log.level = level;
}

int log_enabled(enum log_level level)
{
	return level >= g_log.level;
}

int log_level_parse(const char *s, enum log_level *out)
{
	for (int i = 0; i < 4; i++) {
		if (!strcasecmp(s, level_names[i])) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	if (!strcasecmp(s, "warning")) {
		*out = LOG_WARN;
		return 0;
	}
	return -1;
}

static void log_vwrite(enum log_level level, const char *worker, const char *request_id,
		       const char *fields, const char *fmt, va_list ap)
	__attribute__((format(printf, 5, 0)));

void log_write(enum log_level level, const char *request_id, const char *fields, const char *fmt, ...)
{
	va_list ap;

	if (!log_enabled(level))
		return;
	va_start(ap, fmt);
	log_vwrite(level, g_log.has_worker ? g_log.worker : NULL, request_id, fields, fmt, ap);
	va_end(ap);
}

void log_write_worker(enum log_level level, const char *worker, const char *request_id,
		      const char *fields, const char *fmt, ...)
{
	va_list ap;

	if (!log_enabled(level))
		return;
	va_start(ap, fmt);
	log_vwrite(level, worker, request_id, fields, fmt, ap);
	va_end(ap);
}

static void log_vwrite(enum log_level level, const char *worker, const char *request_id,
		       const char *fields, const char *fmt, va_list ap)
{
	struct buf b;
	struct timespec ts;
	struct tm tm;
	char tbuf[40];
	char msg[2048];

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(tbuf, sizeof(tbuf), "%Y-%m-%dT%H:%M:%S", &tm);
	vsnprintf(msg, sizeof(msg), fmt, ap);

	buf_init(&b, 1 << 20);
	buf_printf(&b, "{\"ts\":\"%s.%06ldZ\",\"level\":\"%s\",\"role\":\"%s\",\"worker\":", tbuf,
		   ts.tv_nsec / 1000, level_names[level], g_log.role);
	if (worker)
		buf_json_str(&b, worker);
	else
		buf_puts(&b, "null");
	if (request_id) {
		buf_puts(&b, ",\"request_id\":");
		buf_json_str(&b, request_id);
	}
	buf_puts(&b, ",\"msg\":");
	buf_json_str(&b, msg);
	if (fields && *fields) {
		buf_puts(&b, ",");
		buf_puts(&b, fields);
	}
	buf_puts(&b, "}\n");
	(void)!write(2, b.data, b.len);
	buf_release(&b);
}

void log_signal_safe(const char *msg)
{
	static const char pre[] = "{\"level\":\"warn\",\"msg\":\"";
	static const char post[] = "\"}\n";

	(void)!write(2, pre, sizeof(pre) - 1);
	(void)!write(2, msg, strlen(msg));
	(void)!write(2, post, sizeof(post) - 1);
}
