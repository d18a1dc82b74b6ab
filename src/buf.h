/* buf.h: a growable byte buffer with a ceiling.
 *
 * Every buffer has a maximum size; an append that would pass it fails with
 * -ENOSPC and leaves the buffer as it was, so a request body over its cap
 * becomes a 413, never an unbounded allocation. The data is always
 * NUL-terminated (the terminator is not counted in len). */
#ifndef MEDIAD_BUF_H
#define MEDIAD_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct buf {
	char *data;
	size_t len;
	size_t cap;
	size_t max;
};

#define BUF_UNLIMITED ((size_t)-1)

void buf_init(struct buf *b, size_t max);
void buf_release(struct buf *b);
void buf_reset(struct buf *b);
/* 0 or -ENOSPC when the result would pass the ceiling. */
int buf_reserve(struct buf *b, size_t extra);
int buf_append(struct buf *b, const void *p, size_t n);
int buf_puts(struct buf *b, const char *s);
int buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int buf_vprintf(struct buf *b, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
/* Append s as a JSON string literal (quotes included), escaping as needed. */
int buf_json_str(struct buf *b, const char *s);
/* Hand the storage to the caller (who frees it) and reset the buffer. */
char *buf_detach(struct buf *b, size_t *len);

#endif
