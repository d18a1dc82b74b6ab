/* gguf_write.c: see gguf_write.h. */
#include "gguf_write.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

static const uint8_t esize[GGUF_VTYPE_COUNT] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};

void gguf_writer_init(struct gguf_writer *w, uint32_t alignment)
{
	memset(w, 0, sizeof(*w));
	w->alignment = alignment ? alignment : 32;
	buf_init(&w->kv, BUF_UNLIMITED);
}

void gguf_writer_release(struct gguf_writer *w)
{
	buf_release(&w->kv);
	free(w->t);
	w->t = NULL;
}

static void put_u32(struct buf *b, uint32_t v)
{
	buf_append(b, &v, 4);
}

static void put_u64(struct buf *b, uint64_t v)
{
	buf_append(b, &v, 8);
}

static void put_str(struct buf *b, const char *s)
{
	put_u64(b, strlen(s));
	buf_append(b, s, strlen(s));
}

static void key(struct gguf_writer *w, const char *k, enum gguf_vtype t)
{
	put_str(&w->kv, k);
	put_u32(&w->kv, t);
	w->n_kv++;
}

void gguf_w_raw(struct gguf_writer *w, const char *k, enum gguf_vtype type, const void *v, size_t n)
{
	key(w, k, type);
	buf_append(&w->kv, v, n);
}

void gguf_w_u32(struct gguf_writer *w, const char *k, uint32_t v)
{
	gguf_w_raw(w, k, GGUF_UINT32, &v, 4);
}

void gguf_w_i32(struct gguf_writer *w, const char *k, int32_t v)
{
	gguf_w_raw(w, k, GGUF_INT32, &v, 4);
}

void gguf_w_u64(struct gguf_writer *w, const char *k, uint64_t v)
{
	gguf_w_raw(w, k, GGUF_UINT64, &v, 8);
}

void gguf_w_f32(struct gguf_writer *w, const char *k, float v)
{
	gguf_w_raw(w, k, GGUF_FLOAT32, &v, 4);
}

void gguf_w_bool(struct gguf_writer *w, const char *k, int v)
{
	uint8_t b = v ? 1 : 0;

	gguf_w_raw(w, k, GGUF_BOOL, &b, 1);
}

void gguf_w_str(struct gguf_writer *w, const char *k, const char *v)
{
	key(w, k, GGUF_STRING);
	put_str(&w->kv, v);
}

void gguf_w_arr_str(struct gguf_writer *w, const char *k, const char *const *v, size_t n)
{
	key(w, k, GGUF_ARRAY);
	put_u32(&w->kv, GGUF_STRING);
	put_u64(&w->kv, n);
	for (size_t i = 0; i < n; i++)
		put_str(&w->kv, v[i]);
}

void gguf_w_arr(struct gguf_writer *w, const char *k, enum gguf_vtype etype, const void *data,
		size_t n)
{
	key(w, k, GGUF_ARRAY);
	put_u32(&w->kv, etype);
	put_u64(&w->kv, n);
	buf_append(&w->kv, data, n * esize[etype]);
}

int gguf_w_tensor(struct gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims,
		  const uint64_t *ne, const void *data)
{
	const struct gguf_type_info *ti = gguf_type_info(type);
	uint64_t nel = 1;

	if (!ti || n_dims < 1 || n_dims > GGUF_MAX_DIMS || ne[0] % ti->block)
		return -EINVAL;
	w->t = xrealloc(w->t, (w->n_t + 1) * sizeof(*w->t));
	struct gguf_writer_tensor *t = &w->t[w->n_t++];
	memset(t, 0, sizeof(*t));
	snprintf(t->name, sizeof(t->name), "%s", name);
	t->n_dims = n_dims;
	for (uint32_t d = 0; d < n_dims; d++) {
		t->ne[d] = ne[d];
		nel *= ne[d];
	}
	t->type = type;
	t->data = data;
	t->nbytes = nel / ti->block * ti->bytes;
	t->offset = (w->data_size + w->alignment - 1) / w->alignment * w->alignment;
	w->data_size = t->offset + t->nbytes;
	return 0;
}

int gguf_writer_save(struct gguf_writer *w, const char *path, char *err, size_t errlen)
{
	struct buf h;
	static const char zeros[4096];
	int fd, r = 0;

	buf_init(&h, BUF_UNLIMITED);
	buf_append(&h, "GGUF", 4);
	put_u32(&h, 3);
	put_u64(&h, w->n_t);
	put_u64(&h, w->n_kv);
	buf_append(&h, w->kv.data, w->kv.len);
	for (uint64_t i = 0; i < w->n_t; i++) {
		put_str(&h, w->t[i].name);
		put_u32(&h, w->t[i].n_dims);
		for (uint32_t d = 0; d < w->t[i].n_dims; d++)
			put_u64(&h, w->t[i].ne[d]);
		put_u32(&h, w->t[i].type);
		put_u64(&h, w->t[i].offset);
	}
	size_t pad = (w->alignment - h.len % w->alignment) % w->alignment;
	buf_append(&h, zeros, pad);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || write_all(fd, h.data, h.len) < 0)
		r = -errno;
	uint64_t at = 0;
	for (uint64_t i = 0; r == 0 && i < w->n_t; i++) {
		while (r == 0 && at < w->t[i].offset) {
			size_t n = (size_t)MIN(sizeof(zeros), w->t[i].offset - at);
			if (write_all(fd, zeros, n) < 0)
				r = -errno;
			at += n;
		}
		if (r == 0 && write_all(fd, w->t[i].data, w->t[i].nbytes) < 0)
			r = -errno;
		at += w->t[i].nbytes;
	}
	if (fd >= 0 && close(fd) < 0 && r == 0)
		r = -errno;
	if (r < 0)
		snprintf(err, errlen, "%s: cannot write: %s", path, strerror(-r));
	buf_release(&h);
	return r;
}
