/* safetensors.h: read and write safetensors files (the Hugging Face weights format).
 *
 * A file is: an unsigned 64-bit little-endian header length N; N bytes of a
 * JSON object mapping each tensor name to {"dtype", "shape", "data_offsets":
 * [begin, end]} (offsets relative to the data region, end exclusive), plus an
 * optional "__metadata__" object of string values; then the data region,
 * tensors stored row-major and little-endian. The reader maps the file
 * read-only and checks the header when it opens it; a tensor whose bytes lie
 * beyond the end of the file (a truncated file) or whose byte count does not
 * match its shape is reported when that tensor is read, with its name. F32,
 * F16 and BF16 tensors are read as F32; other dtypes are listed but refused
 * on read. The writer produces files the reader (and the Python safetensors
 * package) accepts: header padded with spaces to a multiple of 8 bytes. */
#ifndef MEDIAD_SAFETENSORS_H
#define MEDIAD_SAFETENSORS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define SAFETENSORS_MAX_DIMS 8
/* Headers larger than this are refused (the reference reader's limit). */
#define SAFETENSORS_MAX_HEADER (100u << 20)

enum safetensors_dtype { SAFETENSORS_F32, SAFETENSORS_F16, SAFETENSORS_BF16, SAFETENSORS_OTHER };

struct safetensors_tensor {
	char *name;
	enum safetensors_dtype dtype;
	char dtype_name[16]; /* as written in the file, e.g. "F16", "I32" */
	int ndim;
	int64_t shape[SAFETENSORS_MAX_DIMS];
	uint64_t begin, end; /* byte offsets in the data region */
};

struct safetensors {
	char *path;
	const uint8_t *map; /* the whole file, read-only */
	size_t map_len;
	const uint8_t *data; /* the data region */
	uint64_t data_len;
	struct safetensors_tensor *tensors;
	size_t n_tensors;
	json_t *metadata; /* "__metadata__" object, or NULL */
};

/* Map path and parse its header. 0, or -errno with err naming the file and
 * the problem (-EINVAL for a malformed header, -ENODATA for a file shorter
 * than its header says). On failure nothing is left to close. */
int safetensors_open(struct safetensors *st, const char *path, char *err, size_t errlen);
void safetensors_close(struct safetensors *st);

/* The tensor called name, or NULL. */
const struct safetensors_tensor *safetensors_find(const struct safetensors *st, const char *name);

/* Read tensor name into dst (numel floats) as F32, checking that it exists
 * with exactly the shape given (ndim dims). 0, or -errno with err naming the
 * tensor: -ENOENT missing, -EINVAL wrong shape or byte count, -ENOTSUP
 * unsupported dtype, -ENODATA data beyond the end of the file. */
int safetensors_read_f32(const struct safetensors *st, const char *name, int ndim,
                         const int64_t *shape, float *dst, char *err, size_t errlen);

/* A "__metadata__" string value, or NULL. */
const char *safetensors_metadata(const struct safetensors *st, const char *key);

/* One tensor to write: F32 values, converted to the file's dtype. */
struct safetensors_out {
	const char *name;
	int ndim;
	int64_t shape[SAFETENSORS_MAX_DIMS];
	const float *data;
};

/* Write n tensors (in this order) to path with dtype (F32, F16 or BF16);
 * meta is NULL or a NULL-terminated list of key, value strings stored in
 * "__metadata__". Writes path atomically (a temporary file, then rename).
 * 0, or -errno with err filled. */
int safetensors_write(const char *path, const struct safetensors_out *t, size_t n,
                      enum safetensors_dtype dtype, const char *const *meta, char *err,
                      size_t errlen);

/* Bytes per element of dtype (0 for SAFETENSORS_OTHER) and its file name. */
size_t safetensors_dtype_size(enum safetensors_dtype dtype);
const char *safetensors_dtype_name(enum safetensors_dtype dtype);

/* IEEE half and bfloat16 conversions, round to nearest even; NaN stays NaN,
 * overflow becomes infinity. */
float safetensors_f16_to_f32(uint16_t h);
uint16_t safetensors_f32_to_f16(float f);
float safetensors_bf16_to_f32(uint16_t h);
uint16_t safetensors_f32_to_bf16(float f);

#endif
