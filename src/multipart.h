/* multipart.h: a streaming multipart/form-data parser (RFC 7578, RFC 2046).
 *
 * Written here because libmicrohttpd's post processor does not say where a
 * part starts: its field callback sees offset 0 both for a new part and for
 * the piece after an empty first call of the same part (it calls with size 0
 * when a read ends right after the part headers), so a repeated field could
 * not be told from the next piece of one field. This parser reports the part
 * boundary itself: part_begin once per part (with its parsed headers),
 * part_data for its bytes in as many pieces as the input happens to come in,
 * part_end once. Whatever the split of the body into feeds (one byte at a
 * time, boundaries cut across feeds, empty feeds), the sequence of begins and
 * ends and the concatenated data of each part are the same.
 *
 * No allocation after multipart_init; part headers are bounded
 * (MULTIPART_HEADER_MAX). Pure: no I/O, no clock. */
#ifndef MEDIAD_MULTIPART_H
#define MEDIAD_MULTIPART_H

#include <stddef.h>

#define MULTIPART_BOUNDARY_MAX 70 /* RFC 2046 */
#define MULTIPART_HEADER_MAX 8192 /* bytes of one part's header block */
#define MULTIPART_NAME_MAX 256

struct multipart_part {
	char name[MULTIPART_NAME_MAX];     /* "" when the part has no name= */
	int has_name;
	char filename[MULTIPART_NAME_MAX]; /* valid when has_filename */
	int has_filename;
	char content_type[128];            /* "" when absent */
};

/* Callbacks return 0 to go on, non-zero to stop parsing (the caller keeps
 * its own reason; multipart_feed then returns -ECANCELED). */
struct multipart_cb {
	int (*part_begin)(void *user, const struct multipart_part *part);
	int (*part_data)(void *user, const char *data, size_t len);
	int (*part_end)(void *user);
};

enum multipart_state {
	MP_PREAMBLE,   /* before the first delimiter */
	MP_AFTER_DELIM,/* "--" (close) or padding + CRLF */
	MP_HEADERS,    /* part header block up to the empty line */
	MP_DATA,       /* part body up to the next delimiter */
	MP_EPILOGUE,   /* after the close delimiter: ignored */
	MP_ERROR,
};

struct multipart {
	const struct multipart_cb *cb;
	void *user;
	char delim[MULTIPART_BOUNDARY_MAX + 5]; /* CRLF "--" boundary */
	size_t dlen;
	size_t match;    /* bytes of delim matched so far (MP_PREAMBLE, MP_DATA) */
	enum multipart_state state;
	int after_dash;  /* MP_AFTER_DELIM: saw the first '-' of "--" */
	int after_cr;    /* MP_AFTER_DELIM: saw CR of the line end */
	int in_padding;  /* MP_AFTER_DELIM: saw transport padding */
	char hdr[MULTIPART_HEADER_MAX];
	size_t hlen;
	int parts;       /* parts begun */
	int stopped;     /* a callback stopped the parse */
	char err[160];
};

/* Read the boundary parameter of a Content-Type value
 * ("multipart/form-data; boundary=..." quoted or not). 0, or -EINVAL with
 * err saying what is wrong. */
int multipart_boundary(const char *content_type, char *out, size_t outlen, char *err,
		       size_t errlen);

/* Set up a parser for this boundary (1..70 bytes). 0 or -EINVAL. */
int multipart_init(struct multipart *mp, const char *boundary, const struct multipart_cb *cb,
		   void *user);
/* Feed the next len bytes of the body (len may be 0). 0, -EBADMSG (malformed;
 * multipart_error says why), or -ECANCELED (a callback stopped the parse).
 * After an error further feeds return the same error and do nothing. */
int multipart_feed(struct multipart *mp, const char *data, size_t len);
/* The body has ended: 0 when it ended with the close delimiter, -EBADMSG
 * otherwise. */
int multipart_finish(struct multipart *mp);
const char *multipart_error(const struct multipart *mp);

#endif
