/* gguf.c: see gguf.h.
 *
 * Parsing walks a bounds-checked cursor over the mapping. Counts read from
 * the file are checked against what the rest of the file could hold before
 * anything is allocated for them, so a hostile header cannot make the reader
 * allocate more than a small multiple of the file's size. */
#include "gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

#define GGUF_NAME_MAX 255      /* tensor names */
#define GGUF_KEY_MAX 65535     /* metadata keys */
#define KV_MIN_BYTES 13        /* key length + type + 1-byte value */
#define TENSOR_MIN_BYTES 32    /* name length + n_dims + 1 dim + type + offset */

static const struct gguf_type_info types[GGML_TYPE_COUNT] = {
	[GGML_F32] = {"F32", 1, 4},       [GGML_F16] = {"F16", 1, 2},
	[GGML_Q4_0] = {"Q4_0", 32, 18},   [GGML_Q4_1] = {"Q4_1", 32, 20},
	[GGML_Q5_0] = {"Q5_0", 32, 22},   [GGML_Q5_1] = {"Q5_1", 32, 24},
	[GGML_Q8_0] = {"Q8_0", 32, 34},   [GGML_Q8_1] = {"Q8_1", 32, 36},
	[GGML_Q2_K] = {"Q2_K", 256, 84},  [GGML_Q3_K] = {"Q3_K", 256, 110},
	[GGML_Q4_K] = {"Q4_K", 256, 144}, [GGML_Q5_K] = {"Q5_K", 256, 176},
	[GGML_Q6_K] = {"Q6_K", 256, 210}, [GGML_Q8_K] = {"Q8_K", 256, 292},
	[GGML_I8] = {"I8", 1, 1},         [GGML_I16] = {"I16", 1, 2},
	[GGML_I32] = {"I32", 1, 4},       [GGML_I64] = {"I64", 1, 8},
	[GGML_F64] = {"F64", 1, 8},       [GGML_BF16] = {"BF16", 1, 2},
};

static const char *const vtype_names[GGUF_VTYPE_COUNT] = {
	"uint8", "int8", "uint16", "int16", "uint32", "int32", "float32",
	"bool", "string", "array", "uint64", "int64", "float64"};

static const uint8_t vtype_size[GGUF_VTYPE_COUNT] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};

const struct gguf_type_info *gguf_type_info(uint32_t type)
{
	return type < GGML_TYPE_COUNT && types[type].name ? &types[type] : NULL;
}

const char *gguf_vtype_name(uint32_t t)
{
	return t < GGUF_VTYPE_COUNT ? vtype_names[t] : "unknown";
}

struct cursor {
	struct gguf *g;
	size_t at;
	char *err;
	size_t errlen;
	uint64_t n_str;  /* string-array elements recorded in g->str_offs */
	uint64_t cap_str;
	uint64_t *kv_first; /* per kv: index of its first string element */
};

static int bad(struct cursor *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int bad(struct cursor *c, const char *fmt, ...)
{
	va_list ap;
	int n = snprintf(c->err, c->errlen, "%s: ", c->g->path);

	if (n < 0 || (size_t)n >= c->errlen)
		return -EINVAL;
	va_start(ap, fmt);
	vsnprintf(c->err + n, c->errlen - (size_t)n, fmt, ap);
	va_end(ap);
	/* names come from the file: keep the error one printable line */
	for (char *p = c->err; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	return -EINVAL;
}

static size_t left(const struct cursor *c)
{
	return c->g->size - c->at;
}

/* Read n bytes at the cursor; what names the field for the error. */
static int take(struct cursor *c, void *out, size_t n, const char *what)
{
	if (left(c) < n)
		return bad(c, "%s: truncated (needs %zu bytes at offset %zu, the file has %zu)", what,
			   n, c->at, c->g->size);
	memcpy(out, c->g->map + c->at, n);
	c->at += n;
	return 0;
}

static int take_u32(struct cursor *c, uint32_t *v, const char *what)
{
	return take(c, v, 4, what);
}

static int take_u64(struct cursor *c, uint64_t *v, const char *what)
{
	return take(c, v, 8, what);
}

static int take_str(struct cursor *c, struct gguf_str *s, const char *what)
{
	int r = take_u64(c, &s->len, what);

	if (r < 0)
		return r;
	if (s->len > left(c))
		return bad(c, "%s: string length %llu runs past the end of the file", what,
			   (unsigned long long)s->len);
	s->p = (const char *)c->g->map + c->at;
	c->at += s->len;
	return 0;
}

/* A NUL-terminated copy of a key or name, refusing NUL bytes and overlong
 * ones. */
static int copy_name(struct cursor *c, const struct gguf_str *s, size_t max, char **out,
		     const char *what)
{
	if (s->len == 0)
		return bad(c, "%s: is empty", what);
	if (s->len > max)
		return bad(c, "%s: is %llu bytes long, the limit is %zu", what,
			   (unsigned long long)s->len, max);
	if (memchr(s->p, 0, s->len))
		return bad(c, "%s: contains a NUL byte", what);
	*out = xmalloc(s->len + 1);
	memcpy(*out, s->p, s->len);
	(*out)[s->len] = 0;
	return 0;
}

static void note_string(struct cursor *c, uint64_t off)
{
	if (c->n_str == c->cap_str) {
		c->cap_str = c->cap_str ? c->cap_str * 2 : 256;
		c->g->str_offs = xrealloc(c->g->str_offs, c->cap_str * sizeof(uint64_t));
	}
	c->g->str_offs[c->n_str++] = off;
}

static int read_scalar(struct cursor *c, uint32_t type, struct gguf_value *v, const char *key)
{
	uint8_t b[8] = {0};
	char what[300];

	snprintf(what, sizeof(what), "metadata %s", key);
	v->type = (enum gguf_vtype)type;
	if (type == GGUF_STRING)
		return take_str(c, &v->str, what);
	int r = take(c, b, vtype_size[type], what);
	if (r < 0)
		return r;
	switch (type) {
	case GGUF_UINT8: v->u = b[0]; break;
	case GGUF_INT8: v->i = (int8_t)b[0]; break;
	case GGUF_UINT16: { uint16_t x; memcpy(&x, b, 2); v->u = x; break; }
	case GGUF_INT16: { int16_t x; memcpy(&x, b, 2); v->i = x; break; }
	case GGUF_UINT32: { uint32_t x; memcpy(&x, b, 4); v->u = x; break; }
	case GGUF_INT32: { int32_t x; memcpy(&x, b, 4); v->i = x; break; }
	case GGUF_FLOAT32: { float x; memcpy(&x, b, 4); v->f = x; break; }
	case GGUF_BOOL:
		if (b[0] > 1)
			return bad(c, "metadata %s: bool value %u is not 0 or 1", key, b[0]);
		v->u = b[0];
		break;
	case GGUF_UINT64: memcpy(&v->u, b, 8); break;
	case GGUF_INT64: memcpy(&v->i, b, 8); break;
	case GGUF_FLOAT64: memcpy(&v->f, b, 8); break;
	}
	return 0;
}

static int read_array(struct cursor *c, uint64_t kvi, struct gguf_value *v, const char *key)
{
	uint32_t et;
	uint64_t n;
	char what[300];
	int r;

	snprintf(what, sizeof(what), "metadata %s", key);
	if ((r = take_u32(c, &et, what)) < 0 || (r = take_u64(c, &n, what)) < 0)
		return r;
	if (et >= GGUF_VTYPE_COUNT)
		return bad(c, "metadata %s: array element type %u is unknown", key, et);
	if (et == GGUF_ARRAY)
		return bad(c, "metadata %s: arrays of arrays are not supported", key);
	v->type = GGUF_ARRAY;
	v->arr.type = (enum gguf_vtype)et;
	v->arr.n = n;
	if (et != GGUF_STRING) {
		if (n > left(c) / vtype_size[et])
			return bad(c, "metadata %s: %llu %s elements run past the end of the file", key,
				   (unsigned long long)n, vtype_names[et]);
		v->arr.data = c->g->map + c->at;
		if (et == GGUF_BOOL)
			for (uint64_t i = 0; i < n; i++)
				if (v->arr.data[i] > 1)
					return bad(c, "metadata %s: element %llu: bool value %u is "
						   "not 0 or 1", key, (unsigned long long)i,
						   v->arr.data[i]);
		c->at += n * vtype_size[et];
		return 0;
	}
	if (n > left(c) / 8)
		return bad(c, "metadata %s: %llu strings run past the end of the file", key,
			   (unsigned long long)n);
	c->kv_first[kvi] = c->n_str;
	for (uint64_t i = 0; i < n; i++) {
		struct gguf_str s;
		snprintf(what, sizeof(what), "metadata %s: element %llu", key, (unsigned long long)i);
		note_string(c, c->at);
		if ((r = take_str(c, &s, what)) < 0)
			return r;
	}
	return 0;
}

static uint64_t hash_name(const char *s)
{
	uint64_t h = 1469598103934665603ull;

	while (*s)
		h = (h ^ (uint8_t)*s++) * 1099511628211ull;
	return h;
}

/* Insert names[i] into an open-addressing table of size mask+1; the index
 * of an equal name already there, or -1. */
static int64_t name_insert(uint64_t *slots, uint64_t mask, char *const *names, uint64_t i)
{
	uint64_t at = hash_name(names[i]) & mask;

	while (slots[at]) {
		uint64_t j = slots[at] - 1;
		if (!strcmp(names[j], names[i]))
			return (int64_t)j;
		at = (at + 1) & mask;
	}
	slots[at] = i + 1;
	return -1;
}

static uint64_t table_size(uint64_t n)
{
	uint64_t s = 16;

	while (s < 2 * n)
		s *= 2;
	return s;
}

static int read_metadata(struct cursor *c)
{
	struct gguf *g = c->g;
	char **keys = xcalloc(g->n_kv ? g->n_kv : 1, sizeof(char *));
	uint64_t mask = table_size(g->n_kv) - 1;
	uint64_t *slots = xcalloc(mask + 1, sizeof(uint64_t));
	int r = 0;

	c->kv_first = xcalloc(g->n_kv ? g->n_kv : 1, sizeof(uint64_t));
	g->kv = xcalloc(g->n_kv ? g->n_kv : 1, sizeof(struct gguf_kv));
	for (uint64_t i = 0; i < g->n_kv && r == 0; i++) {
		struct gguf_str ks;
		char what[64];
		uint32_t type;
		snprintf(what, sizeof(what), "metadata key #%llu", (unsigned long long)i);
		if ((r = take_str(c, &ks, what)) < 0 ||
		    (r = copy_name(c, &ks, GGUF_KEY_MAX, &g->kv[i].key, what)) < 0)
			break;
		keys[i] = g->kv[i].key;
		if (name_insert(slots, mask, keys, i) >= 0) {
			r = bad(c, "metadata %s: the key is given twice", g->kv[i].key);
			break;
		}
		if ((r = take_u32(c, &type, g->kv[i].key)) < 0)
			break;
		if (type >= GGUF_VTYPE_COUNT)
			r = bad(c, "metadata %s: value type %u is unknown", g->kv[i].key, type);
		else if (type == GGUF_ARRAY)
			r = read_array(c, i, &g->kv[i].v, g->kv[i].key);
		else
			r = read_scalar(c, type, &g->kv[i].v, g->kv[i].key);
	}
	free(keys);
	free(slots);
	return r;
}

static int read_tensor_infos(struct cursor *c)
{
	struct gguf *g = c->g;
	int r = 0;

	g->tensors = xcalloc(g->n_tensors ? g->n_tensors : 1, sizeof(struct gguf_tensor));
	for (uint64_t i = 0; i < g->n_tensors; i++) {
		struct gguf_tensor *t = &g->tensors[i];
		struct gguf_str ns;
		char what[320];
		snprintf(what, sizeof(what), "tensor info #%llu", (unsigned long long)i);
		if ((r = take_str(c, &ns, what)) < 0 ||
		    (r = copy_name(c, &ns, GGUF_NAME_MAX, &t->name, what)) < 0)
			return r;
		snprintf(what, sizeof(what), "tensor %s", t->name);
		if ((r = take_u32(c, &t->n_dims, what)) < 0)
			return r;
		if (t->n_dims < 1 || t->n_dims > GGUF_MAX_DIMS)
			return bad(c, "tensor %s: n_dims %u is outside 1..%d", t->name, t->n_dims,
				   GGUF_MAX_DIMS);
		uint64_t nel = 1;
		for (uint32_t d = 0; d < GGUF_MAX_DIMS; d++) {
			t->ne[d] = 1;
			if (d < t->n_dims && (r = take_u64(c, &t->ne[d], what)) < 0)
				return r;
			if (t->ne[d] == 0)
				return bad(c, "tensor %s: dimension %u is 0", t->name, d);
			if (t->ne[d] > INT64_MAX || __builtin_mul_overflow(nel, t->ne[d], &nel) ||
			    nel > INT64_MAX)
				return bad(c, "tensor %s: the element count overflows 63 bits", t->name);
		}
		if ((r = take_u32(c, &t->type, what)) < 0 || (r = take_u64(c, &t->offset, what)) < 0)
			return r;
		const struct gguf_type_info *ti = gguf_type_info(t->type);
		if (!ti)
			return bad(c, "tensor %s: type %u is unknown", t->name, t->type);
		if (t->ne[0] % ti->block)
			return bad(c, "tensor %s: row length %llu is not a multiple of the %s block "
				   "(%u)", t->name, (unsigned long long)t->ne[0], ti->name, ti->block);
		t->nbytes = nel / ti->block * ti->bytes;
		if (nel / ti->block > UINT64_MAX / ti->bytes)
			return bad(c, "tensor %s: its size overflows 64 bits", t->name);
	}
	return 0;
}

static int cmp_offset(const void *a, const void *b)
{
	const struct gguf_tensor *x = *(const struct gguf_tensor *const *)a;
	const struct gguf_tensor *y = *(const struct gguf_tensor *const *)b;

	return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* Names unique, offsets aligned, data inside the file, no two tensors'
 * data overlapping. */
static int check_tensors(struct cursor *c)
{
	struct gguf *g = c->g;
	uint64_t n = g->n_tensors;
	uint64_t data_size = g->size > g->data_offset ? g->size - g->data_offset : 0;
	int r = 0;

	char **names = xcalloc(n ? n : 1, sizeof(char *));
	uint64_t mask = table_size(n) - 1;
	uint64_t *slots = xcalloc(mask + 1, sizeof(uint64_t));
	for (uint64_t i = 0; i < n && r == 0; i++) {
		names[i] = g->tensors[i].name;
		if (name_insert(slots, mask, names, i) >= 0)
			r = bad(c, "tensor %s: the name is given twice", names[i]);
	}
	free(names);
	free(slots);
	if (r < 0)
		return r;

	struct gguf_tensor **order = xcalloc(n ? n : 1, sizeof(*order));
	for (uint64_t i = 0; i < n; i++) {
		struct gguf_tensor *t = &g->tensors[i];
		if (t->offset % g->alignment) {
			r = bad(c, "tensor %s: offset %llu is not a multiple of the alignment %u",
				t->name, (unsigned long long)t->offset, g->alignment);
			break;
		}
		if (t->offset > data_size || t->nbytes > data_size - t->offset) {
			r = bad(c, "tensor %s: data [%llu, %llu) runs past the end of the file (the "
				"data section has %llu bytes)", t->name,
				(unsigned long long)t->offset,
				(unsigned long long)(t->offset + (t->nbytes < UINT64_MAX - t->offset
								  ? t->nbytes : 0)),
				(unsigned long long)data_size);
			break;
		}
		t->data = g->map + g->data_offset + t->offset;
		order[i] = t;
	}
	if (r == 0 && n > 1) {
		qsort(order, n, sizeof(*order), cmp_offset);
		for (uint64_t i = 0; i + 1 < n; i++)
			if (order[i]->offset + order[i]->nbytes > order[i + 1]->offset) {
				r = bad(c, "tensor %s: its data overlaps tensor %s", order[i + 1]->name,
					order[i]->name);
				break;
			}
	}
	free(order);
	return r;
}

static int parse(struct gguf *g, char *err, size_t errlen)
{
	struct cursor c = {.g = g, .err = err, .errlen = errlen};
	uint32_t magic;
	int r;

	if (g->size < 24)
		return bad(&c, "header: truncated (a GGUF header has 24 bytes, the file has %zu)",
			   g->size);
	take_u32(&c, &magic, "magic");
	if (memcmp(&magic, "GGUF", 4))
		return bad(&c, "magic: expected \"GGUF\", found %02x %02x %02x %02x (not a GGUF file)",
			   g->map[0], g->map[1], g->map[2], g->map[3]);
	take_u32(&c, &g->version, "version");
	if (g->version != 2 && g->version != 3)
		return bad(&c, "version: %u is not supported (2 or 3)", g->version);
	take_u64(&c, &g->n_tensors, "tensor_count");
	take_u64(&c, &g->n_kv, "metadata_kv_count");
	if (g->n_tensors > left(&c) / TENSOR_MIN_BYTES)
		return bad(&c, "tensor_count: %llu tensor infos cannot fit in a file of %zu bytes",
			   (unsigned long long)g->n_tensors, g->size);
	if (g->n_kv > left(&c) / KV_MIN_BYTES)
		return bad(&c, "metadata_kv_count: %llu entries cannot fit in a file of %zu bytes",
			   (unsigned long long)g->n_kv, g->size);
	r = read_metadata(&c);
	if (r == 0) {
		g->alignment = 32;
		const struct gguf_kv *al = gguf_find(g, "general.alignment");
		if (al) {
			if (al->v.type != GGUF_UINT32)
				r = bad(&c, "metadata general.alignment: must be a uint32, not %s",
					vtype_names[al->v.type]);
			else if (al->v.u == 0 || (al->v.u & (al->v.u - 1)) || al->v.u > (1u << 20))
				r = bad(&c, "metadata general.alignment: %llu is not a power of two "
					"up to 1048576", (unsigned long long)al->v.u);
			else
				g->alignment = (uint32_t)al->v.u;
		}
	}
	if (r == 0)
		r = read_tensor_infos(&c);
	if (r == 0) {
		g->data_offset = (c.at + g->alignment - 1) / g->alignment * g->alignment;
		r = check_tensors(&c);
	}
	/* string arrays: point each at its element offsets */
	for (uint64_t i = 0; r == 0 && i < g->n_kv; i++)
		if (g->kv[i].v.type == GGUF_ARRAY && g->kv[i].v.arr.type == GGUF_STRING)
			g->kv[i].v.arr.offs = g->str_offs + c.kv_first[i];
	free(c.kv_first);
	return r;
}

static void set_name(struct gguf *g, const char *path)
{
	snprintf(g->path, sizeof(g->path), "%s", path);
}

int gguf_open_mem(const void *data, size_t size, const char *name, struct gguf **out, char *err,
		  size_t errlen)
{
	struct gguf *g = xcalloc(1, sizeof(*g));
	int r;

	set_name(g, name);
	g->map = data;
	g->size = size;
	r = parse(g, err, errlen);
	if (r < 0) {
		gguf_free(g);
		return r;
	}
	*out = g;
	return 0;
}

int gguf_open(const char *path, struct gguf **out, char *err, size_t errlen)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		int e = errno;
		snprintf(err, errlen, "%s: cannot open: %s", path, strerror(e));
		return -e;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		snprintf(err, errlen, "%s: not a regular file", path);
		return -EINVAL;
	}
	void *map = st.st_size ? mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0)
			       : NULL;
	close(fd);
	if (st.st_size && map == MAP_FAILED) {
		int e = errno;
		snprintf(err, errlen, "%s: cannot map: %s", path, strerror(e));
		return -e;
	}
	struct gguf *g = NULL;
	int r = gguf_open_mem(map, (size_t)st.st_size, path, &g, err, errlen);
	if (r < 0) {
		if (map)
			munmap(map, (size_t)st.st_size);
		return r;
	}
	g->owns_map = 1;
	*out = g;
	return 0;
}

void gguf_free(struct gguf *g)
{
	if (!g)
		return;
	for (uint64_t i = 0; g->kv && i < g->n_kv; i++)
		free(g->kv[i].key);
	for (uint64_t i = 0; g->tensors && i < g->n_tensors; i++)
		free(g->tensors[i].name);
	free(g->kv);
	free(g->tensors);
	free(g->str_offs);
	if (g->owns_map && g->map)
		munmap((void *)g->map, g->size);
	free(g);
}

const struct gguf_kv *gguf_find(const struct gguf *g, const char *key)
{
	for (uint64_t i = 0; i < g->n_kv; i++)
		if (g->kv[i].key && !strcmp(g->kv[i].key, key))
			return &g->kv[i];
	return NULL;
}

const struct gguf_tensor *gguf_find_tensor(const struct gguf *g, const char *name)
{
	for (uint64_t i = 0; i < g->n_tensors; i++)
		if (!strcmp(g->tensors[i].name, name))
			return &g->tensors[i];
	return NULL;
}

static int get_err(const struct gguf *g, char *err, size_t errlen, const char *key,
		   const char *rule, const struct gguf_value *v)
{
	snprintf(err, errlen, "%s: metadata %s: %s (it is a %s)", g->path, key, rule,
		 vtype_names[v->type]);
	return -EINVAL;
}

int gguf_get_u64(const struct gguf *g, const char *key, uint64_t *out, char *err, size_t errlen)
{
	const struct gguf_kv *kv = gguf_find(g, key);

	if (!kv)
		return -ENOENT;
	switch (kv->v.type) {
	case GGUF_UINT8: case GGUF_UINT16: case GGUF_UINT32: case GGUF_UINT64:
		*out = kv->v.u;
		return 0;
	case GGUF_INT8: case GGUF_INT16: case GGUF_INT32: case GGUF_INT64:
		if (kv->v.i < 0)
			return get_err(g, err, errlen, key, "must not be negative", &kv->v);
		*out = (uint64_t)kv->v.i;
		return 0;
	default:
		return get_err(g, err, errlen, key, "must be an integer", &kv->v);
	}
}

int gguf_get_u32(const struct gguf *g, const char *key, uint32_t *out, char *err, size_t errlen)
{
	uint64_t v;
	int r = gguf_get_u64(g, key, &v, err, errlen);

	if (r < 0)
		return r;
	if (v > UINT32_MAX)
		return get_err(g, err, errlen, key, "must fit in 32 bits", &gguf_find(g, key)->v);
	*out = (uint32_t)v;
	return 0;
}

int gguf_get_f32(const struct gguf *g, const char *key, float *out, char *err, size_t errlen)
{
	const struct gguf_kv *kv = gguf_find(g, key);

	if (!kv)
		return -ENOENT;
	if (kv->v.type != GGUF_FLOAT32 && kv->v.type != GGUF_FLOAT64)
		return get_err(g, err, errlen, key, "must be a float", &kv->v);
	if (!isfinite(kv->v.f))
		return get_err(g, err, errlen, key, "must be finite", &kv->v);
	*out = (float)kv->v.f;
	return 0;
}

int gguf_get_bool(const struct gguf *g, const char *key, int *out, char *err, size_t errlen)
{
	const struct gguf_kv *kv = gguf_find(g, key);

	if (!kv)
		return -ENOENT;
	if (kv->v.type != GGUF_BOOL)
		return get_err(g, err, errlen, key, "must be a bool", &kv->v);
	*out = (int)kv->v.u;
	return 0;
}

int gguf_get_str(const struct gguf *g, const char *key, char *out, size_t outlen, char *err,
		 size_t errlen)
{
	const struct gguf_kv *kv = gguf_find(g, key);

	if (!kv)
		return -ENOENT;
	if (kv->v.type != GGUF_STRING)
		return get_err(g, err, errlen, key, "must be a string", &kv->v);
	if (kv->v.str.len >= outlen) {
		snprintf(err, errlen, "%s: metadata %s: is %llu bytes long, the limit is %zu",
			 g->path, key, (unsigned long long)kv->v.str.len, outlen - 1);
		return -ENAMETOOLONG;
	}
	memcpy(out, kv->v.str.p, kv->v.str.len);
	out[kv->v.str.len] = 0;
	return 0;
}

struct gguf_str gguf_arr_str(const struct gguf *g, const struct gguf_value *v, uint64_t i)
{
	struct gguf_str s;
	uint64_t off = v->arr.offs[i];

	memcpy(&s.len, g->map + off, 8);
	s.p = (const char *)g->map + off + 8;
	return s;
}

double gguf_arr_num(const struct gguf_value *v, uint64_t i)
{
	const uint8_t *p = v->arr.data + i * vtype_size[v->arr.type];

	switch (v->arr.type) {
	case GGUF_UINT8: case GGUF_BOOL: return p[0];
	case GGUF_INT8: return (int8_t)p[0];
	case GGUF_UINT16: { uint16_t x; memcpy(&x, p, 2); return x; }
	case GGUF_INT16: { int16_t x; memcpy(&x, p, 2); return x; }
	case GGUF_UINT32: { uint32_t x; memcpy(&x, p, 4); return x; }
	case GGUF_INT32: { int32_t x; memcpy(&x, p, 4); return x; }
	case GGUF_FLOAT32: { float x; memcpy(&x, p, 4); return x; }
	case GGUF_UINT64: { uint64_t x; memcpy(&x, p, 8); return (double)x; }
	case GGUF_INT64: { int64_t x; memcpy(&x, p, 8); return (double)x; }
	case GGUF_FLOAT64: { double x; memcpy(&x, p, 8); return x; }
	default: return 0;
	}
}
