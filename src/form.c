/* form.c: see form.h. */
#include "form.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "util.h"

enum { CUR_NONE, CUR_FIELD, CUR_FILE };

static int form_fail(struct form *f, int status, const char *param, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Record the first error; returns 1 so a parser callback stops the parse. */
static int form_fail(struct form *f, int status, const char *param, const char *fmt, ...)
{
	va_list ap;

	if (f->status)
		return 1;
	f->status = status;
	snprintf(f->param, sizeof(f->param), "%s", param ? param : "");
	va_start(ap, fmt);
	vsnprintf(f->msg, sizeof(f->msg), fmt, ap);
	va_end(ap);
	return 1;
}

static int on_begin(void *user, const struct multipart_part *part)
{
	struct form *f = user;

	if (!part->has_name || !part->name[0])
		return form_fail(f, 400, NULL, "multipart part without a field name");
	if (!strcmp(part->name, "file")) {
		if (f->file_fd >= 0)
			return form_fail(f, 400, "file", "form field file is given more than once");
		f->file_fd = memfd_create("mediad-upload", MFD_CLOEXEC);
		if (f->file_fd < 0)
			return form_fail(f, 500, NULL, "cannot store the upload");
		f->cur = CUR_FILE;
		return 0;
	}
	if (part->has_filename)
		return form_fail(f, 422, "file",
				 "file is required (multipart field \"file\"; got a file in field "
				 "\"%.40s\")", part->name);
	if (json_object_get(f->fields, part->name))
		return form_fail(f, 400, part->name, "form field %.40s is given more than once",
				 part->name);
	snprintf(f->cur_name, sizeof(f->cur_name), "%s", part->name);
	buf_reset(&f->val);
	f->cur = CUR_FIELD;
	return 0;
}

static int on_data(void *user, const char *data, size_t len)
{
	struct form *f = user;

	if (f->cur == CUR_FILE) {
		if (len > f->file_max - f->file_size)
			return form_fail(f, 413, "file", "file must be at most %zu bytes",
					 f->file_max);
		if (write_all(f->file_fd, data, len) < 0)
			return form_fail(f, 500, NULL, "cannot store the upload");
		f->file_size += len;
		return 0;
	}
	if (buf_append(&f->val, data, len) < 0)
		return form_fail(f, 413, f->cur_name, "form field %.40s is longer than %d bytes",
				 f->cur_name, FORM_FIELD_MAX);
	return 0;
}

static int on_end(void *user)
{
	struct form *f = user;
	int cur = f->cur;

	f->cur = CUR_NONE;
	if (cur != CUR_FIELD)
		return 0;
	/* UTF-8 is checked on the whole value: a character cut across two
	 * reads is still one character */
	json_t *str = json_stringn(f->val.len ? f->val.data : "", f->val.len);
	if (!str)
		return form_fail(f, 422, f->cur_name, "form field %.40s must be valid UTF-8",
				 f->cur_name);
	json_object_set_new(f->fields, f->cur_name, str);
	return 0;
}

static const struct multipart_cb form_cb = {on_begin, on_data, on_end};

int form_init(struct form *f, const char *content_type, size_t file_max)
{
	char boundary[MULTIPART_BOUNDARY_MAX + 1];

	memset(f, 0, sizeof(*f));
	f->file_max = file_max;
	f->fields = json_object();
	f->file_fd = -1;
	buf_init(&f->val, FORM_FIELD_MAX);
	if (multipart_boundary(content_type, boundary, sizeof(boundary), f->msg,
			       sizeof(f->msg)) < 0) {
		f->status = 400;
		f->mp.state = MP_ERROR;
		return -EINVAL;
	}
	multipart_init(&f->mp, boundary, &form_cb, f);
	return 0;
}

void form_feed(struct form *f, const char *data, size_t len)
{
	if (f->status)
		return;
	if (multipart_feed(&f->mp, data, len) == -EBADMSG)
		form_fail(f, 400, NULL, "%s", multipart_error(&f->mp));
}

void form_finish(struct form *f)
{
	if (f->status)
		return;
	if (multipart_finish(&f->mp) < 0)
		form_fail(f, 400, NULL, "%s", multipart_error(&f->mp));
}

json_t *form_json(const struct form *f)
{
	json_t *o = json_object();
	const char *k;
	json_t *v;

	json_object_foreach(f->fields, k, v) {
		const char *sv = json_string_value(v);
		int b;
		double d;
		if (!strcmp(k, "stream") && parse_bool(sv, &b) == 0)
			json_object_set_new(o, k, json_boolean(b));
		else if (!strcmp(k, "temperature") && parse_double(sv, &d) == 0)
			json_object_set_new(o, k, json_real(d));
		else
			json_object_set(o, k, v);
	}
	return o;
}

int form_take_file(struct form *f, size_t *size)
{
	int fd = f->file_fd;

	*size = f->file_size;
	f->file_fd = -1;
	return fd;
}

void form_release(struct form *f)
{
	if (f->file_fd >= 0)
		close(f->file_fd);
	json_decref(f->fields);
	buf_release(&f->val);
	f->fields = NULL;
	f->file_fd = -1;
}
