/* form.h: the fields and the file of a multipart/form-data upload.
 *
 * Feeds the body, in whatever pieces it arrives, through the multipart
 * parser (multipart.h) and keeps what the inference routes need: the part
 * named "file" goes to a memfd (never held in memory), every other part
 * becomes a string field. The rules are checked per part, at the part
 * boundary the parser reports, so the outcome never depends on how the body
 * was split on the wire: a part without a name, a field or file given twice,
 * a file in a field other than "file", an over-long field, a file over its
 * limit, a field that is not UTF-8, or a malformed body each set one error
 * (the first one in body order) and stop the parse. */
#ifndef MEDIAD_FORM_H
#define MEDIAD_FORM_H

#include <jansson.h>
#include <stddef.h>

#include "buf.h"
#include "multipart.h"

#define FORM_FIELD_MAX 65536 /* bytes of one non-file field */

struct form {
	struct multipart mp;
	size_t file_max;   /* bytes of the file part */
	json_t *fields;    /* name -> string, the non-file parts */
	int file_fd;       /* memfd of the "file" part, -1 until it starts */
	size_t file_size;
	int cur;           /* part being read: 0 none, 1 field, 2 file */
	char cur_name[MULTIPART_NAME_MAX];
	struct buf val;    /* value of the field being read */
	int status;        /* 0, or the HTTP status of the first error */
	char param[48];    /* the field the error names ("" for none) */
	char msg[160];
};

/* Set up for a body with this Content-Type. 0, or -EINVAL with status 400
 * and msg set (no usable boundary); form_release is needed either way. */
int form_init(struct form *f, const char *content_type, size_t file_max);
/* The next piece of the body (len may be 0). Does nothing after an error. */
void form_feed(struct form *f, const char *data, size_t len);
/* The body ended: an error when it did not close properly. */
void form_finish(struct form *f);
/* The fields as the JSON body validate.c expects: strings, except stream
 * (boolean) and temperature (number) when they parse as such. New ref. */
json_t *form_json(const struct form *f);
/* Hand the file's memfd to the caller (-1 when no file part came). */
int form_take_file(struct form *f, size_t *size);
void form_release(struct form *f);

#endif
