/* fuzz_ipc.c: libFuzzer driver for the IPC frame reader (src/ipc.c).
 *
 * The supervisor parses whatever a worker writes, and a worker may be
 * broken, so ipc_reader_next must survive any byte stream: every frame it
 * returns lies inside the reader's buffer, has a sane header and no fd (none
 * can arrive through ipc_reader_feed), and a corrupt stream stays corrupt.
 * The input is parsed twice, fed at once and fed in uneven chunks, and both
 * must give the same frames and the same end state.
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Isrc -D_GNU_SOURCE \
 *     tests/fuzz/fuzz_ipc.c src/ipc.c src/buf.c src/util.c src/log.c -o fuzz_ipc
 *   ./fuzz_ipc tests/fuzz/corpus/ipc
 *
 * The seed corpus holds valid frames (little-endian struct ipc_hdr: u16
 * magic "MD" = 0x4d44, u16 type, u32 len, u32 flags, u32 aux, u64 id, then
 * len payload bytes). */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ipc.h"
#include "banned.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                                   \
	do {                                                                                       \
		if (!(c)) {                                                                        \
			fprintf(stderr, "fuzz_ipc: invariant failed: %s (line %d)\n", #c,          \
			        __LINE__);                                                         \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

struct seen {
	struct ipc_hdr hdr;
	const char *payload; /* into the whole-input reader's buffer */
};

/* Checks one ipc_reader_next result against what must hold for it. */
static void check_frame(const struct ipc_reader *r, const struct ipc_frame *f)
{
	const char *lo = r->in.data;
	const char *hi = r->in.data + r->in.len;

	CHECK(f->hdr.magic == IPC_MAGIC);
	CHECK(f->hdr.type > 0 && f->hdr.type < IPC_TYPE_MAX);
	CHECK(f->hdr.len <= IPC_MAX_PAYLOAD);
	CHECK(f->fd == -1);
	CHECK(!(f->hdr.flags & IPC_F_FD)); /* no fd can have arrived */
	CHECK(f->payload >= lo + sizeof(struct ipc_hdr));
	CHECK(f->payload <= hi && (size_t)(hi - f->payload) >= f->hdr.len);
	CHECK(r->off <= r->in.len);
	CHECK(strcmp(ipc_type_name(f->hdr.type), "unknown") != 0);
}

/* Drain r, checking every frame; with out, record them (whole input), else
 * compare them with expect (chunked input). Returns 0 (incomplete) or -EPROTO. */
static int drain(struct ipc_reader *r, struct seen *out, size_t *n, size_t cap,
                 const struct seen *expect, size_t n_expect)
{
	struct ipc_frame f;
	int rc;

	while ((rc = ipc_reader_next(r, &f)) == 1) {
		check_frame(r, &f);
		if (out) {
			CHECK(*n < cap);
			out[*n].hdr = f.hdr;
			out[*n].payload = f.payload;
		} else {
			CHECK(*n < n_expect);
			CHECK(!memcmp(&expect[*n].hdr, &f.hdr, sizeof(f.hdr)));
			CHECK(!memcmp(expect[*n].payload, f.payload, f.hdr.len));
		}
		(*n)++;
	}
	CHECK(rc == 0 || rc == -EPROTO);
	if (rc == 0) {
		/* incomplete: what is left is shorter than the frame it starts */
		size_t left = r->in.len - r->off;
		if (left >= sizeof(struct ipc_hdr)) {
			struct ipc_hdr h;
			memcpy(&h, r->in.data + r->off, sizeof(h));
			CHECK(left < sizeof(h) + h.len);
		}
	} else {
		/* a corrupt stream stays corrupt */
		CHECK(ipc_reader_next(r, &f) == -EPROTO);
	}
	return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t cap = size / sizeof(struct ipc_hdr) + 1;
	struct seen *frames = calloc(cap, sizeof(*frames));
	struct ipc_reader whole, chunked;
	size_t n_whole = 0, n_chunked = 0, off = 0;
	uint32_t rng = (uint32_t)size * 2654435761u + 1;
	int rc_whole, rc_chunked = 0;

	CHECK(frames);
	ipc_reader_init(&whole);
	ipc_reader_init(&chunked);

	if (ipc_reader_feed(&whole, data, size)) {
		/* larger than the reader's ceiling: refused whole */
		CHECK(size > whole.in.max);
		goto out;
	}
	rc_whole = drain(&whole, frames, &n_whole, cap, NULL, 0);

	/* the same bytes in chunks of 1..64 bytes, draining after each */
	while (off < size && rc_chunked == 0) {
		size_t k;
		rng = rng * 1103515245u + 12345u;
		k = 1 + (rng >> 16) % 64;
		if (k > size - off)
			k = size - off;
		CHECK(ipc_reader_feed(&chunked, data + off, k) == 0);
		off += k;
		rc_chunked = drain(&chunked, NULL, &n_chunked, 0, frames, n_whole);
	}
	CHECK(rc_chunked == rc_whole);
	CHECK(n_chunked == n_whole);
	if (rc_whole == 0) {
		/* every byte is in a frame or in the incomplete tail */
		CHECK(whole.in.len == size);
		CHECK(chunked.in.len - chunked.off == whole.in.len - whole.off);
	}
out:
	ipc_reader_release(&whole);
	ipc_reader_release(&chunked);
	free(frames);
	return 0;
}
