/* safetensors.c: the safetensors reader and writer. See safetensors.h.
 *
 * The header is parsed with jansson. Structural problems (bad JSON, a tensor
 * entry without dtype, shape or offsets, offsets out of order) fail the open
 * with the tensor named; a tensor whose data runs past the end of the file
 * fails only when it is read, so the error names the first tensor a loader
 * actually needs from a truncated file. */
#include "safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "util.h"

#define META_KEY "__metadata__"

struct dtype_info {
	const char *name;
	size_t size;
	enum safetensors_dtype dtype;
};

static const struct dtype_info dtypes[] = {
    {"F32", 4, SAFETENSORS_F32},       {"F16", 2, SAFETENSORS_F16},
    {"BF16", 2, SAFETENSORS_BF16},     {"F64", 8, SAFETENSORS_OTHER},
    {"I64", 8, SAFETENSORS_OTHER},     {"I32", 4, SAFETENSORS_OTHER},
    {"I16", 2, SAFETENSORS_OTHER},     {"I8", 1, SAFETENSORS_OTHER},
    {"U64", 8, SAFETENSORS_OTHER},     {"U32", 4, SAFETENSORS_OTHER},
    {"U16", 2, SAFETENSORS_OTHER},     {"U8", 1, SAFETENSORS_OTHER},
    {"BOOL", 1, SAFETENSORS_OTHER},    {"F8_E4M3", 1, SAFETENSORS_OTHER},
    {"F8_E5M2", 1, SAFETENSORS_OTHER},
};

/* --- number formats --- */

static uint32_t f32_bits(float f)
{
	uint32_t u;

	memcpy(&u, &f, sizeof(u));
	return u;
}

static float bits_f32(uint32_t u)
{
	float f;

	memcpy(&f, &u, sizeof(f));
	return f;
}

float safetensors_f16_to_f32(uint16_t h)
{
	uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
	uint32_t e = (h >> 10) & 0x1fu, m = h & 0x3ffu;

	if (e == 0) {
		/* zero or subnormal: m * 2^-24, exact in float */
		float v = (float)m * 0x1p-24f;
		return bits_f32(f32_bits(v) | sign);
	}
	if (e == 31)
		return bits_f32(sign | 0x7f800000u | (m << 13));
	return bits_f32(sign | ((e + 112) << 23) | (m << 13));
}

uint16_t safetensors_f32_to_f16(float f)
{
	uint32_t x = f32_bits(f);
	uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
	uint32_t a = x & 0x7fffffffu;

	if (a > 0x7f800000u) /* NaN: keep it quiet and non-zero */
		return (uint16_t)(sign | 0x7e00u | ((a >> 13) & 0x3ffu));
	if (a >= 0x477ff000u) /* >= 65520 rounds to infinity (and infinity itself) */
		return (uint16_t)(sign | 0x7c00u);
	if (a < 0x38800000u) {
		/* below 2^-14: a half subnormal or zero, in units of 2^-24 */
		uint32_t e = a >> 23, m, shift, q, rem, half;

		if (a <= 0x33000000u) /* <= 2^-25 rounds (ties to even) to zero */
			return sign;
		m = (a & 0x7fffffu) | 0x800000u;
		shift = 126 - e; /* 14..24 */
		q = m >> shift;
		rem = m & ((1u << shift) - 1);
		half = 1u << (shift - 1);
		if (rem > half || (rem == half && (q & 1)))
			q++;
		return (uint16_t)(sign | q);
	}
	/* normal: rebias the exponent, round the 13 dropped mantissa bits */
	a = a - 0x38000000u;
	a += 0xfffu + ((a >> 13) & 1u);
	return (uint16_t)(sign | (a >> 13));
}

float safetensors_bf16_to_f32(uint16_t h)
{
	return bits_f32((uint32_t)h << 16);
}

uint16_t safetensors_f32_to_bf16(float f)
{
	uint32_t x = f32_bits(f);

	if ((x & 0x7fffffffu) > 0x7f800000u)
		return (uint16_t)((x >> 16) | 0x40u);
	x += 0x7fffu + ((x >> 16) & 1u);
	return (uint16_t)(x >> 16);
}

size_t safetensors_dtype_size(enum safetensors_dtype dtype)
{
	switch (dtype) {
	case SAFETENSORS_F32:
		return 4;
	case SAFETENSORS_F16:
	case SAFETENSORS_BF16:
		return 2;
	default:
		return 0;
	}
}

const char *safetensors_dtype_name(enum safetensors_dtype dtype)
{
	switch (dtype) {
	case SAFETENSORS_F32:
		return "F32";
	case SAFETENSORS_F16:
		return "F16";
	case SAFETENSORS_BF16:
		return "BF16";
	default:
		return "?";
	}
}

static const struct dtype_info *dtype_lookup(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(dtypes); i++)
		if (!strcmp(dtypes[i].name, name))
			return &dtypes[i];
	return NULL;
}

/* --- reader --- */

static void shape_text(int ndim, const int64_t *shape, char *out, size_t n)
{
	size_t len = 0;

	len += (size_t)snprintf(out, n, "[");
	for (int i = 0; i < ndim && len < n; i++)
		len += (size_t)snprintf(out + len, n - len, "%s%lld", i ? "," : "",
		                        (long long)shape[i]);
	if (len < n)
		snprintf(out + len, n - len, "]");
}

/* Elements of a shape; -1 on overflow. */
static int64_t shape_numel(int ndim, const int64_t *shape)
{
	int64_t n = 1;

	for (int i = 0; i < ndim; i++) {
		if (shape[i] < 0 || (shape[i] && n > INT64_MAX / shape[i]))
			return -1;
		n *= shape[i];
	}
	return n;
}

static int json_u64(const json_t *j, uint64_t *out)
{
	if (!json_is_integer(j) || json_integer_value(j) < 0)
		return -1;
	*out = (uint64_t)json_integer_value(j);
	return 0;
}

static int parse_entry(const char *name, json_t *v, struct safetensors_tensor *t, char *err,
                       size_t errlen)
{
	json_t *dt = json_object_get(v, "dtype"), *shape = json_object_get(v, "shape");
	json_t *offs = json_object_get(v, "data_offsets");
	const struct dtype_info *info;
	size_t i;
	json_t *d;

	if (!json_is_object(v) || !json_is_string(dt) || !json_is_array(shape) ||
	    !json_is_array(offs) || json_array_size(offs) != 2) {
		snprintf(err, errlen,
		         "tensor %s: header entry needs dtype, shape and "
		         "data_offsets [begin, end]",
		         name);
		return -EINVAL;
	}
	if (json_array_size(shape) > SAFETENSORS_MAX_DIMS) {
		snprintf(err, errlen, "tensor %s: %zu dimensions (at most %d supported)", name,
		         json_array_size(shape), SAFETENSORS_MAX_DIMS);
		return -EINVAL;
	}
	t->name = xstrdup(name);
	snprintf(t->dtype_name, sizeof(t->dtype_name), "%s", json_string_value(dt));
	info = dtype_lookup(t->dtype_name);
	t->dtype = info ? info->dtype : SAFETENSORS_OTHER;
	t->ndim = (int)json_array_size(shape);
	json_array_foreach(shape, i, d)
	{
		uint64_t dim;
		if (json_u64(d, &dim) < 0) {
			snprintf(err, errlen, "tensor %s: shape must be non-negative integers",
			         name);
			return -EINVAL;
		}
		t->shape[i] = (int64_t)dim;
	}
	if (json_u64(json_array_get(offs, 0), &t->begin) < 0 ||
	    json_u64(json_array_get(offs, 1), &t->end) < 0 || t->begin > t->end) {
		snprintf(err, errlen,
		         "tensor %s: data_offsets must be [begin, end] with "
		         "0 <= begin <= end",
		         name);
		return -EINVAL;
	}
	if (shape_numel(t->ndim, t->shape) < 0) {
		snprintf(err, errlen, "tensor %s: shape too large", name);
		return -EINVAL;
	}
	return 0;
}

static int parse_header(struct safetensors *st, const char *text, size_t len, char *err,
                        size_t errlen)
{
	json_error_t jerr;
	json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	const char *key;
	json_t *v;
	int r = 0;

	if (!root || !json_is_object(root)) {
		snprintf(err, errlen, "%s: header is not a JSON object: %s", st->path,
		         root ? "wrong type" : jerr.text);
		json_decref(root);
		return -EINVAL;
	}
	st->tensors = xcalloc(json_object_size(root) + 1, sizeof(*st->tensors));
	json_object_foreach(root, key, v)
	{
		char msg[256];
		if (!strcmp(key, META_KEY)) {
			if (json_is_object(v))
				st->metadata = json_incref(v);
			continue;
		}
		r = parse_entry(key, v, &st->tensors[st->n_tensors], msg, sizeof(msg));
		if (st->tensors[st->n_tensors].name)
			st->n_tensors++;
		if (r < 0) {
			snprintf(err, errlen, "%s: %s", st->path, msg);
			break;
		}
	}
	json_decref(root);
	return r;
}

int safetensors_open(struct safetensors *st, const char *path, char *err, size_t errlen)
{
	struct stat sb;
	uint64_t hlen = 0;
	void *map;
	int fd, r;

	memset(st, 0, sizeof(*st));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		r = -errno;
		snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
		return r;
	}
	if (fstat(fd, &sb) < 0) {
		r = -errno;
		snprintf(err, errlen, "%s: cannot stat: %s", path, strerror(errno));
		close(fd);
		return r;
	}
	if (sb.st_size < 8) {
		snprintf(err, errlen,
		         "%s: %lld bytes, too short for a safetensors header "
		         "(truncated file?)",
		         path, (long long)sb.st_size);
		close(fd);
		return -ENODATA;
	}
	map = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	r = errno;
	close(fd);
	if (map == MAP_FAILED) {
		snprintf(err, errlen, "%s: cannot map: %s", path, strerror(r));
		return -r;
	}
	st->path = xstrdup(path);
	st->map = map;
	st->map_len = (size_t)sb.st_size;
	for (int i = 7; i >= 0; i--)
		hlen = (hlen << 8) | st->map[i];
	if (hlen > SAFETENSORS_MAX_HEADER || hlen > st->map_len - 8) {
		snprintf(err, errlen,
		         "%s: header of %llu bytes does not fit in the file of "
		         "%zu bytes (truncated file, or not safetensors)",
		         path, (unsigned long long)hlen, st->map_len);
		safetensors_close(st);
		return hlen > SAFETENSORS_MAX_HEADER ? -EINVAL : -ENODATA;
	}
	st->data = st->map + 8 + hlen;
	st->data_len = st->map_len - 8 - hlen;
	r = parse_header(st, (const char *)st->map + 8, (size_t)hlen, err, errlen);
	if (r < 0) {
		safetensors_close(st);
		return r;
	}
	return 0;
}

void safetensors_close(struct safetensors *st)
{
	if (st->map)
		munmap((void *)st->map, st->map_len);
	for (size_t i = 0; i < st->n_tensors; i++)
		free(st->tensors[i].name);
	free(st->tensors);
	json_decref(st->metadata);
	free(st->path);
	memset(st, 0, sizeof(*st));
}

const struct safetensors_tensor *safetensors_find(const struct safetensors *st, const char *name)
{
	for (size_t i = 0; i < st->n_tensors; i++)
		if (!strcmp(st->tensors[i].name, name))
			return &st->tensors[i];
	return NULL;
}

const char *safetensors_metadata(const struct safetensors *st, const char *key)
{
	return json_string_value(json_object_get(st->metadata, key));
}

static void convert(const struct safetensors_tensor *t, const uint8_t *src, float *dst, size_t n)
{
	uint16_t h;

	switch (t->dtype) {
	case SAFETENSORS_F32:
		memcpy(dst, src, n * sizeof(float));
		break;
	case SAFETENSORS_F16:
		for (size_t i = 0; i < n; i++) {
			memcpy(&h, src + 2 * i, 2);
			dst[i] = safetensors_f16_to_f32(h);
		}
		break;
	case SAFETENSORS_BF16:
		for (size_t i = 0; i < n; i++) {
			memcpy(&h, src + 2 * i, 2);
			dst[i] = safetensors_bf16_to_f32(h);
		}
		break;
	default:
		break;
	}
}

int safetensors_read_f32(const struct safetensors *st, const char *name, int ndim,
                         const int64_t *shape, float *dst, char *err, size_t errlen)
{
	const struct safetensors_tensor *t = safetensors_find(st, name);
	char want[160], got[160];
	size_t esize;
	uint64_t numel;

	if (!t) {
		snprintf(err, errlen, "%s: tensor %s is missing", st->path, name);
		return -ENOENT;
	}
	shape_text(ndim, shape, want, sizeof(want));
	shape_text(t->ndim, t->shape, got, sizeof(got));
	if (t->ndim != ndim || memcmp(t->shape, shape, (size_t)ndim * sizeof(*shape))) {
		snprintf(err, errlen, "%s: tensor %s has shape %s, expected %s", st->path, name,
		         got, want);
		return -EINVAL;
	}
	esize = safetensors_dtype_size(t->dtype);
	if (!esize) {
		snprintf(err, errlen, "%s: tensor %s has dtype %s; supported: F32, F16, BF16",
		         st->path, name, t->dtype_name);
		return -ENOTSUP;
	}
	numel = (uint64_t)shape_numel(t->ndim, t->shape);
	if (numel > UINT64_MAX / esize || t->end - t->begin != numel * esize) {
		snprintf(err, errlen,
		         "%s: tensor %s: data_offsets span %llu bytes, but %s %s "
		         "needs %llu",
		         st->path, name, (unsigned long long)(t->end - t->begin), t->dtype_name,
		         got, (unsigned long long)(numel * esize));
		return -EINVAL;
	}
	if (t->end > st->data_len) {
		snprintf(err, errlen,
		         "%s: tensor %s: data [%llu, %llu) lies beyond the end of "
		         "the data region (%llu bytes): truncated file",
		         st->path, name, (unsigned long long)t->begin, (unsigned long long)t->end,
		         (unsigned long long)st->data_len);
		return -ENODATA;
	}
	convert(t, st->data + t->begin, dst, (size_t)numel);
	return 0;
}

/* --- writer --- */

static size_t out_numel(const struct safetensors_out *t)
{
	return (size_t)shape_numel(t->ndim, t->shape);
}

static void build_header(struct buf *h, const struct safetensors_out *t, size_t n,
                         enum safetensors_dtype dtype, const char *const *meta)
{
	uint64_t off = 0;
	size_t esize = safetensors_dtype_size(dtype);

	buf_puts(h, "{");
	if (meta && meta[0]) {
		buf_puts(h, "\"" META_KEY "\":{");
		for (size_t i = 0; meta[i] && meta[i + 1]; i += 2) {
			if (i)
				buf_puts(h, ",");
			buf_json_str(h, meta[i]);
			buf_puts(h, ":");
			buf_json_str(h, meta[i + 1]);
		}
		buf_puts(h, "}");
	}
	for (size_t i = 0; i < n; i++) {
		uint64_t bytes = (uint64_t)out_numel(&t[i]) * esize;

		if (i || (meta && meta[0]))
			buf_puts(h, ",");
		buf_json_str(h, t[i].name);
		buf_printf(h, ":{\"dtype\":\"%s\",\"shape\":[", safetensors_dtype_name(dtype));
		for (int d = 0; d < t[i].ndim; d++)
			buf_printf(h, "%s%lld", d ? "," : "", (long long)t[i].shape[d]);
		buf_printf(h, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)off,
		           (unsigned long long)(off + bytes));
		off += bytes;
	}
	buf_puts(h, "}");
	while (h->len % 8)
		buf_puts(h, " ");
}

static int write_tensor(int fd, const struct safetensors_out *t, enum safetensors_dtype dtype)
{
	uint16_t chunk[8192];
	size_t n = out_numel(t);

	if (dtype == SAFETENSORS_F32)
		return write_all(fd, t->data, n * sizeof(float));
	for (size_t i = 0; i < n;) {
		size_t m = MIN(n - i, ARRAY_SIZE(chunk));
		int r;

		for (size_t j = 0; j < m; j++)
			chunk[j] = dtype == SAFETENSORS_F16
			               ? safetensors_f32_to_f16(t->data[i + j])
			               : safetensors_f32_to_bf16(t->data[i + j]);
		r = write_all(fd, chunk, m * sizeof(chunk[0]));
		if (r < 0)
			return r;
		i += m;
	}
	return 0;
}

int safetensors_write(const char *path, const struct safetensors_out *t, size_t n,
                      enum safetensors_dtype dtype, const char *const *meta, char *err,
                      size_t errlen)
{
	struct buf h, tmp;
	uint8_t len8[8];
	int fd, r = 0;

	if (!safetensors_dtype_size(dtype)) {
		snprintf(err, errlen, "%s: can only write F32, F16 or BF16", path);
		return -EINVAL;
	}
	buf_init(&h, BUF_UNLIMITED);
	buf_init(&tmp, BUF_UNLIMITED);
	build_header(&h, t, n, dtype, meta);
	for (int i = 0; i < 8; i++)
		len8[i] = (uint8_t)((uint64_t)h.len >> (8 * i));
	buf_printf(&tmp, "%s.tmp.%d", path, (int)getpid());
	fd = open(tmp.data, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		r = -errno;
		snprintf(err, errlen, "%s: cannot create: %s", tmp.data, strerror(errno));
		goto out;
	}
	r = write_all(fd, len8, sizeof(len8));
	if (!r)
		r = write_all(fd, h.data, h.len);
	for (size_t i = 0; i < n && !r; i++)
		r = write_tensor(fd, &t[i], dtype);
	if (close(fd) < 0 && !r)
		r = -errno;
	if (!r && rename(tmp.data, path) < 0)
		r = -errno;
	if (r) {
		snprintf(err, errlen, "%s: write failed: %s", path, strerror(-r));
		unlink(tmp.data);
	}
out:
	buf_release(&h);
	buf_release(&tmp);
	return r;
}
