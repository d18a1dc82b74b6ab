/* multipart.c: see multipart.h.
 *
 * The body is scanned byte by byte as a small state machine. The delimiter
 * is CRLF "--" boundary; the first one may start the body without the CRLF,
 * so the parser begins as if CRLF had just been seen. A boundary holds no CR
 * (multipart_init refuses control bytes), so when a partial delimiter match
 * fails the matched bytes are known (they are a prefix of the delimiter) and
 * a new match can only start at the failing byte itself: no buffering of
 * part data is ever needed. */
#include "multipart.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "banned.h"

static int fail(struct multipart *mp, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(struct multipart *mp, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(mp->err, sizeof(mp->err), fmt, ap);
	va_end(ap);
	mp->state = MP_ERROR;
	return -EBADMSG;
}

static int is_ws(char c)
{
	return c == ' ' || c == '\t';
}

/* Copy [p, p+n) into out (NUL-terminated), trimming blanks at both ends.
 * -ENAMETOOLONG when it does not fit. */
static int copy_trimmed(const char *p, size_t n, char *out, size_t outlen)
{
	while (n && is_ws(*p)) {
		p++;
		n--;
	}
	while (n && is_ws(p[n - 1]))
		n--;
	if (n >= outlen)
		return -ENAMETOOLONG;
	memcpy(out, p, n);
	out[n] = 0;
	return 0;
}

/* One parameter of a header value (`; key=value` or `; key="quoted"`),
 * starting at *pp (just after a ';' or the start of the parameters). On
 * success *pp moves past it. Returns 1 when one was read, 0 at the end, or
 * -EBADMSG with why filled. */
static int next_param(const char **pp, const char *end, char *key, size_t keylen, char *val,
		      size_t vallen, const char **why)
{
	const char *p = *pp;

	while (p < end && (is_ws(*p) || *p == ';'))
		p++;
	if (p == end)
		return 0;
	const char *k = p;
	while (p < end && *p != '=' && *p != ';')
		p++;
	if (copy_trimmed(k, (size_t)(p - k), key, keylen) < 0) {
		*why = "a parameter name is too long";
		return -EBADMSG;
	}
	val[0] = 0;
	if (p < end && *p == '=') {
		p++;
		while (p < end && is_ws(*p))
			p++;
		if (p < end && *p == '"') {
			size_t n = 0;
			p++;
			for (;;) {
				if (p == end) {
					*why = "a quoted parameter value is not closed";
					return -EBADMSG;
				}
				if (*p == '"')
					break;
				if (*p == '\\' && p + 1 < end)
					p++;
				if (n + 1 >= vallen) {
					*why = "a parameter value is too long";
					return -EBADMSG;
				}
				val[n++] = *p++;
			}
			val[n] = 0;
			p++; /* closing quote */
			while (p < end && is_ws(*p))
				p++;
			if (p < end && *p != ';') {
				*why = "a quoted parameter value is followed by stray bytes";
				return -EBADMSG;
			}
		} else {
			const char *v = p;
			while (p < end && *p != ';')
				p++;
			if (copy_trimmed(v, (size_t)(p - v), val, vallen) < 0) {
				*why = "a parameter value is too long";
				return -EBADMSG;
			}
		}
	}
	*pp = p;
	return 1;
}

int multipart_boundary(const char *content_type, char *out, size_t outlen, char *err,
		       size_t errlen)
{
	const char *p = strchr(content_type, ';');
	const char *end = content_type + strlen(content_type);
	char key[64], val[MULTIPART_BOUNDARY_MAX + 2];
	const char *why = NULL;
	int found = 0, r;

	while (p && (r = next_param(&p, end, key, sizeof(key), val, sizeof(val), &why)) != 0) {
		if (r < 0) {
			snprintf(err, errlen, "multipart Content-Type is malformed: %s", why);
			return -EINVAL;
		}
		if (strcasecmp(key, "boundary"))
			continue;
		if (found) {
			snprintf(err, errlen, "multipart Content-Type names more than one boundary");
			return -EINVAL;
		}
		found = 1;
		size_t n = strlen(val);
		if (n == 0 || n > MULTIPART_BOUNDARY_MAX || n >= outlen) {
			snprintf(err, errlen,
				 "multipart boundary must be 1 to %d bytes long", MULTIPART_BOUNDARY_MAX);
			return -EINVAL;
		}
		for (size_t i = 0; i < n; i++)
			if ((unsigned char)val[i] < 0x20 || (unsigned char)val[i] > 0x7e) {
				snprintf(err, errlen,
					 "multipart boundary must be printable ASCII");
				return -EINVAL;
			}
		memcpy(out, val, n + 1);
	}
	if (!found) {
		snprintf(err, errlen, "multipart body without a valid boundary "
			 "(Content-Type has no boundary parameter)");
		return -EINVAL;
	}
	return 0;
}

int multipart_init(struct multipart *mp, const char *boundary, const struct multipart_cb *cb,
		   void *user)
{
	size_t n = strlen(boundary);

	memset(mp, 0, sizeof(*mp));
	if (n == 0 || n > MULTIPART_BOUNDARY_MAX)
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)boundary[i] < 0x20 || (unsigned char)boundary[i] > 0x7e)
			return -EINVAL;
	memcpy(mp->delim, "\r\n--", 4);
	memcpy(mp->delim + 4, boundary, n);
	mp->dlen = n + 4;
	mp->cb = cb;
	mp->user = user;
	mp->state = MP_PREAMBLE;
	mp->match = 2; /* the body may open with "--boundary": as if after CRLF */
	return 0;
}

/* Parse the header block hdr[0..hlen) (lines ending in CRLF, the last one
 * empty) into part. 0 or -EBADMSG. */
static int parse_headers(struct multipart *mp, struct multipart_part *part)
{
	const char *p = mp->hdr, *end = mp->hdr + mp->hlen;
	int seen_disp = 0;

	memset(part, 0, sizeof(*part));
	while (p < end) {
		const char *eol = memchr(p, '\r', (size_t)(end - p));
		if (!eol)
			eol = end;
		if (eol == p)
			break; /* the empty line ending the block */
		if (is_ws(*p))
			return fail(mp, "multipart part header is folded over lines");
		const char *colon = memchr(p, ':', (size_t)(eol - p));
		if (!colon)
			return fail(mp, "multipart part header line has no colon");
		char hname[64];
		if (copy_trimmed(p, (size_t)(colon - p), hname, sizeof(hname)) < 0)
			hname[0] = 0; /* an unknown long header: ignored */
		const char *v = colon + 1;
		if (!strcasecmp(hname, "Content-Disposition")) {
			if (seen_disp++)
				return fail(mp, "multipart part has more than one Content-Disposition");
			const char *semi = memchr(v, ';', (size_t)(eol - v));
			char type[32];
			if (copy_trimmed(v, (size_t)((semi ? semi : eol) - v), type, sizeof(type)) < 0 ||
			    strcasecmp(type, "form-data"))
				return fail(mp, "multipart part is not form-data "
					    "(its Content-Disposition must start with form-data)");
			const char *q = semi ? semi : eol;
			char key[32], val[MULTIPART_NAME_MAX];
			const char *why = NULL;
			int r;
			while ((r = next_param(&q, eol, key, sizeof(key), val, sizeof(val), &why)) != 0) {
				if (r < 0)
					return fail(mp, "multipart Content-Disposition is malformed: %s",
						    why);
				if (!strcasecmp(key, "name") && !part->has_name) {
					memcpy(part->name, val, strlen(val) + 1);
					part->has_name = 1;
				} else if (!strcasecmp(key, "filename") && !part->has_filename) {
					memcpy(part->filename, val, strlen(val) + 1);
					part->has_filename = 1;
				}
			}
		} else if (!strcasecmp(hname, "Content-Type")) {
			if (copy_trimmed(v, (size_t)(eol - v), part->content_type,
					 sizeof(part->content_type)) < 0)
				return fail(mp, "multipart part Content-Type is too long");
		}
		p = eol + 2;
	}
	return 0;
}

static int cancel(struct multipart *mp)
{
	snprintf(mp->err, sizeof(mp->err), "multipart parse stopped by its consumer");
	mp->state = MP_ERROR;
	mp->stopped = 1;
	return -ECANCELED;
}

static int emit(struct multipart *mp, const char *data, size_t len)
{
	if (len && mp->cb->part_data && mp->cb->part_data(mp->user, data, len))
		return cancel(mp);
	return 0;
}

/* One header byte; ends the block at CRLF CRLF (or a leading CRLF). */
static int header_byte(struct multipart *mp, char c)
{
	if (mp->hlen == sizeof(mp->hdr))
		return fail(mp, "multipart part headers exceed %d bytes", MULTIPART_HEADER_MAX);
	if ((unsigned char)c < 0x20 && c != '\r' && c != '\n' && c != '\t')
		return fail(mp, "multipart part headers contain a control byte");
	mp->hdr[mp->hlen++] = c;
	size_t n = mp->hlen;
	if (c == '\n' && (n < 2 || mp->hdr[n - 2] != '\r'))
		return fail(mp, "multipart part header line does not end in CRLF");
	if (c != '\n')
		return 0;
	if (n == 2 || (n >= 4 && !memcmp(mp->hdr + n - 4, "\r\n\r\n", 4))) {
		struct multipart_part part;
		int r = parse_headers(mp, &part);
		if (r < 0)
			return r;
		mp->parts++;
		mp->state = MP_DATA;
		mp->match = 0;
		if (mp->cb->part_begin && mp->cb->part_begin(mp->user, &part))
			return cancel(mp);
	}
	return 0;
}

static int after_delim_byte(struct multipart *mp, char c)
{
	if (mp->after_dash) {
		if (c != '-')
			return fail(mp, "multipart boundary is followed by a single '-'");
		mp->state = MP_EPILOGUE;
		return 0;
	}
	if (mp->after_cr) {
		if (c != '\n')
			return fail(mp, "multipart boundary line does not end in CRLF");
		mp->state = MP_HEADERS;
		mp->hlen = 0;
		return 0;
	}
	if (c == '-' && !mp->in_padding)
		mp->after_dash = 1;
	else if (is_ws(c))
		mp->in_padding = 1;
	else if (c == '\r')
		mp->after_cr = 1;
	else
		return fail(mp, "multipart boundary is followed by other bytes on its line");
	return 0;
}

/* The delimiter has just been matched. */
static int delimiter_found(struct multipart *mp)
{
	int in_part = mp->state == MP_DATA;

	mp->state = MP_AFTER_DELIM;
	mp->after_dash = mp->after_cr = mp->in_padding = 0;
	mp->match = 0;
	if (in_part && mp->cb->part_end && mp->cb->part_end(mp->user))
		return cancel(mp);
	return 0;
}

/* Scan data (MP_DATA) or preamble bytes for the delimiter; returns the bytes
 * consumed (stops after a delimiter, so the caller switches state), or
 * -errno. */
static long scan_for_delim(struct multipart *mp, const char *p, size_t n)
{
	int data = mp->state == MP_DATA;
	size_t i = 0;

	while (i < n) {
		if (mp->match == 0) {
			const char *cr = memchr(p + i, '\r', n - i);
			size_t run = cr ? (size_t)(cr - (p + i)) : n - i;
			if (data && emit(mp, p + i, run) < 0)
				return -ECANCELED;
			i += run;
			if (i == n)
				break;
		}
		char c = p[i];
		if (c == mp->delim[mp->match]) {
			i++;
			if (++mp->match == mp->dlen) {
				int r = delimiter_found(mp);
				return r < 0 ? r : (long)i;
			}
			continue;
		}
		/* mismatch: the matched bytes were a delimiter prefix, so data */
		if (data && emit(mp, mp->delim, mp->match) < 0)
			return -ECANCELED;
		mp->match = 0; /* c itself is looked at again (it may be a CR) */
	}
	return (long)i;
}

int multipart_feed(struct multipart *mp, const char *data, size_t len)
{
	size_t i = 0;

	while (i < len) {
		switch (mp->state) {
		case MP_PREAMBLE:
		case MP_DATA: {
			long r = scan_for_delim(mp, data + i, len - i);
			if (r < 0)
				return (int)r;
			i += (size_t)r;
			break;
		}
		case MP_AFTER_DELIM:
			if (after_delim_byte(mp, data[i++]) < 0)
				return -EBADMSG;
			break;
		case MP_HEADERS: {
			int r = header_byte(mp, data[i++]);
			if (r < 0)
				return r;
			break;
		}
		case MP_EPILOGUE:
			return 0;
		case MP_ERROR:
			return mp->stopped ? -ECANCELED : -EBADMSG;
		}
	}
	if (mp->state == MP_ERROR)
		return mp->stopped ? -ECANCELED : -EBADMSG;
	return 0;
}

int multipart_finish(struct multipart *mp)
{
	switch (mp->state) {
	case MP_EPILOGUE:
		return 0;
	case MP_ERROR:
		return -EBADMSG;
	case MP_PREAMBLE:
		if (mp->parts == 0)
			return fail(mp, "multipart body does not contain the boundary "
				    "given in its Content-Type");
		/* fall through */
	default:
		return fail(mp, "multipart body ends before its closing boundary");
	}
}

const char *multipart_error(const struct multipart *mp)
{
	return mp->err;
}
