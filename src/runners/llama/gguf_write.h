/* gguf_write.h: writer of GGUF v3 files (the project's own model files for
 * tests and the seeded model: tools/mkgguf.c).
 *
 * Metadata is added in order and kept in memory; tensors are added with a
 * pointer to their data, which the caller keeps alive until
 * gguf_writer_save. Offsets are laid out at the writer's alignment. */
#ifndef MEDIAD_GGUF_WRITE_H
#define MEDIAD_GGUF_WRITE_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "gguf.h"

struct gguf_writer_tensor {
	char name[256];
	uint32_t n_dims;
	uint64_t ne[GGUF_MAX_DIMS];
	uint32_t type;
	const void *data;
	uint64_t nbytes;
	uint64_t offset;
};

struct gguf_writer {
	uint32_t alignment;
	uint64_t n_kv;
	struct buf kv; /* serialized metadata */
	struct gguf_writer_tensor *t;
	uint64_t n_t;
	uint64_t data_size;
};

void gguf_writer_init(struct gguf_writer *w, uint32_t alignment);
void gguf_writer_release(struct gguf_writer *w);

void gguf_w_u32(struct gguf_writer *w, const char *key, uint32_t v);
void gguf_w_i32(struct gguf_writer *w, const char *key, int32_t v);
void gguf_w_u64(struct gguf_writer *w, const char *key, uint64_t v);
void gguf_w_f32(struct gguf_writer *w, const char *key, float v);
void gguf_w_bool(struct gguf_writer *w, const char *key, int v);
void gguf_w_str(struct gguf_writer *w, const char *key, const char *v);
/* A scalar of any type given as raw little-endian bytes (tests). */
void gguf_w_raw(struct gguf_writer *w, const char *key, enum gguf_vtype type, const void *v,
		size_t n);
void gguf_w_arr_str(struct gguf_writer *w, const char *key, const char *const *v, size_t n);
/* A numeric array: n elements of etype, packed little-endian at data. */
void gguf_w_arr(struct gguf_writer *w, const char *key, enum gguf_vtype etype, const void *data,
		size_t n);
/* A tensor; ne[0] is the row length. nbytes must match the type and shape. */
int gguf_w_tensor(struct gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims,
		  const uint64_t *ne, const void *data);

/* Write the file (version 3). 0 or -errno with err filled. */
int gguf_writer_save(struct gguf_writer *w, const char *path, char *err, size_t errlen);

#endif
