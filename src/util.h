/* util.h: allocation that aborts on exhaustion, clocks, small helpers.
 *
 * Out of memory is not a recoverable condition for mediad: x*alloc log the
 * size and abort. Where recovery means something (a request body over its
 * cap) the caller checks a ceiling before allocating instead. */
#ifndef MEDIAD_UTIL_H
#define MEDIAD_UTIL_H

#include <stddef.h>
#include <stdint.h>

void *xmalloc(size_t n);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);

/* Monotonic clock in nanoseconds / seconds. */
uint64_t now_ns(void);
double now_s(void);
/* Wall clock, seconds since the epoch (for timestamps shown to users). */
double wall_s(void);

#include "banned.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

/* Parse helpers: 0 on success, -EINVAL on junk or trailing characters,
 * -ERANGE when out of the type's range. */
int parse_i64(const char *s, int64_t *out);
int parse_double(const char *s, double *out);
/* Booleans: 1/0 true/false yes/no on/off, any case. */
int parse_bool(const char *s, int *out);

/* 1 when s[0..len) is well-formed UTF-8 (no overlongs, no surrogates). */
int utf8_valid(const char *s, size_t len);
/* Length (1..4) of the well-formed UTF-8 sequence at s (of at most len
 * bytes), or 0 when the bytes there are not one. */
int utf8_seq_len(const char *s, size_t len);

/* Write all of buf to a blocking fd, retrying on EINTR; 0 or -errno. */
int write_all(int fd, const void *buf, size_t len);

#endif
