/* gguf.h: reader of GGUF model files (versions 2 and 3), as llama.cpp and
 * the models people download write them.
 *
 * Layout: "GGUF", version, tensor count, metadata count; metadata as
 * (key, type, value) with scalars, strings and arrays; tensor infos (name,
 * dims, type, offset); then, at the file's alignment (general.alignment,
 * default 32), the tensor data. The file is mapped read-only and nothing is
 * copied: strings, arrays and tensor data point into the mapping.
 *
 * Every structural rule is checked at open, so a malformed file is refused
 * with one line naming the file, the field and the rule ("model.gguf:
 * tensor blk.0.attn_q.weight: data [..) runs past the end of the file"),
 * and later reads of what the reader accepted cannot go out of bounds. */
#ifndef MEDIAD_GGUF_H
#define MEDIAD_GGUF_H

#include <stddef.h>
#include <stdint.h>

enum gguf_vtype {
	GGUF_UINT8 = 0,
	GGUF_INT8 = 1,
	GGUF_UINT16 = 2,
	GGUF_INT16 = 3,
	GGUF_UINT32 = 4,
	GGUF_INT32 = 5,
	GGUF_FLOAT32 = 6,
	GGUF_BOOL = 7,
	GGUF_STRING = 8,
	GGUF_ARRAY = 9,
	GGUF_UINT64 = 10,
	GGUF_INT64 = 11,
	GGUF_FLOAT64 = 12,
	GGUF_VTYPE_COUNT
};

/* Tensor types (ggml's numbering). Sizes are known for all listed here;
 * which ones a runner computes on is its own business (gguf_type_info). */
enum ggml_type {
	GGML_F32 = 0,
	GGML_F16 = 1,
	GGML_Q4_0 = 2,
	GGML_Q4_1 = 3,
	GGML_Q5_0 = 6,
	GGML_Q5_1 = 7,
	GGML_Q8_0 = 8,
	GGML_Q8_1 = 9,
	GGML_Q2_K = 10,
	GGML_Q3_K = 11,
	GGML_Q4_K = 12,
	GGML_Q5_K = 13,
	GGML_Q6_K = 14,
	GGML_Q8_K = 15,
	GGML_I8 = 24,
	GGML_I16 = 25,
	GGML_I32 = 26,
	GGML_I64 = 27,
	GGML_F64 = 28,
	GGML_BF16 = 30,
	GGML_TYPE_COUNT = 40
};

struct gguf_type_info {
	const char *name; /* "Q4_K"; NULL for an unknown type */
	uint32_t block;   /* elements per block */
	uint32_t bytes;   /* bytes per block */
};

/* NULL when the type id is unknown. */
const struct gguf_type_info *gguf_type_info(uint32_t type);

struct gguf_str {
	const char *p; /* into the mapping, not NUL-terminated */
	uint64_t len;
};

struct gguf_value {
	enum gguf_vtype type;
	union {
		uint64_t u; /* UINT8..UINT64, BOOL */
		int64_t i;  /* INT8..INT64 */
		double f;   /* FLOAT32, FLOAT64 */
		struct gguf_str str;
		struct {
			enum gguf_vtype type; /* element type (never ARRAY: nested arrays are refused) */
			uint64_t n;
			const uint8_t *data;  /* numeric elements, packed little-endian */
			const uint64_t *offs; /* STRING elements: offset of each in the mapping */
		} arr;
	};
};

struct gguf_kv {
	char *key; /* NUL-terminated copy */
	struct gguf_value v;
};

#define GGUF_MAX_DIMS 4

struct gguf_tensor {
	char *name; /* NUL-terminated copy */
	uint32_t n_dims;
	uint64_t ne[GGUF_MAX_DIMS]; /* ne[0] is the row length; unused dims are 1 */
	uint32_t type;              /* enum ggml_type */
	uint64_t offset;            /* from the start of the data section */
	uint64_t nbytes;
	const void *data;           /* into the mapping */
};

struct gguf {
	char path[256];
	const uint8_t *map;
	size_t size;
	int owns_map;
	uint32_t version;
	uint32_t alignment;
	uint64_t data_offset;
	struct gguf_kv *kv;
	uint64_t n_kv;
	struct gguf_tensor *tensors;
	uint64_t n_tensors;
	uint64_t *str_offs; /* offsets of every string-array element */
};

/* Map and check the file. 0, or -errno with err holding one line naming
 * the file, the field and the rule. *out is freed with gguf_free. */
int gguf_open(const char *path, struct gguf **out, char *err, size_t errlen);
/* The same over bytes the caller keeps alive (name is used in errors). */
int gguf_open_mem(const void *data, size_t size, const char *name, struct gguf **out, char *err,
		  size_t errlen);
void gguf_free(struct gguf *g);

const struct gguf_kv *gguf_find(const struct gguf *g, const char *key);
const struct gguf_tensor *gguf_find_tensor(const struct gguf *g, const char *name);

/* Typed reads of a metadata value, for model loaders. Each returns 0,
 * -ENOENT when the key is absent (out untouched), or -EINVAL with err
 * naming the key and the rule (wrong type, value out of range). Integers of
 * any width and signedness are accepted when the value fits. */
int gguf_get_u64(const struct gguf *g, const char *key, uint64_t *out, char *err, size_t errlen);
int gguf_get_u32(const struct gguf *g, const char *key, uint32_t *out, char *err, size_t errlen);
int gguf_get_f32(const struct gguf *g, const char *key, float *out, char *err, size_t errlen);
int gguf_get_bool(const struct gguf *g, const char *key, int *out, char *err, size_t errlen);
/* A string value, NUL-terminated into out; -ENAMETOOLONG when it does not fit. */
int gguf_get_str(const struct gguf *g, const char *key, char *out, size_t outlen, char *err,
		 size_t errlen);
/* Array element access (no copy). */
struct gguf_str gguf_arr_str(const struct gguf *g, const struct gguf_value *v, uint64_t i);
double gguf_arr_num(const struct gguf_value *v, uint64_t i);

/* Name of a value type ("uint32", "array"...). */
const char *gguf_vtype_name(uint32_t t);

#endif
