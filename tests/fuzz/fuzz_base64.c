/* fuzz_base64.c: libFuzzer driver for base64 decoding (src/media.c).
 *
 * A transcription's JSON "file" is client base64 that media_base64_decode
 * turns into the upload. For any text it must agree with a strict reference
 * decoder written here (standard alphabet, padding optional but then
 * complete, no whitespace, zero trailing bits), append exactly the decoded
 * bytes on success, leave the buffer as it was on failure (same length and
 * bytes, still NUL-terminated), respect the buffer's ceiling, and re-encode
 * to the canonical (padded) text. Encoding any bytes must decode back.
 *
 * Input: byte 0 picks the output buffer's ceiling and whether it already
 * holds bytes; the rest is the base64 text (and, as bytes, the encoder's
 * input).
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -iquote src -D_GNU_SOURCE \
 *     $(pkg-config --cflags libsodium ...) tests/fuzz/fuzz_base64.c src/media.c src/buf.c \
 *     src/util.c src/log.c $(pkg-config --libs libsodium spng libturbojpeg sndfile \
 *     libavcodec libavformat libavutil libswscale) -lm -o fuzz_base64
 *   ./fuzz_base64 tests/fuzz/corpus/base64 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "media.h"
#include "banned.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                                   \
	do {                                                                                       \
		if (!(c)) {                                                                        \
			fprintf(stderr, "fuzz_base64: invariant failed: %s (line %d)\n", #c,       \
			        __LINE__);                                                         \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int sextet(char c)
{
	const char *p = c ? memchr(alphabet, c, 64) : NULL;

	return p ? (int)(p - alphabet) : -1;
}

/* The reference: decoded bytes into out (room for len bytes), their count,
 * or -1 when the text is not strict base64. */
static long ref_decode(const char *s, size_t len, uint8_t *out)
{
	size_t pad = 0, n, o = 0;
	uint32_t acc = 0;
	int bits = 0;

	if (len % 4 == 0)
		while (pad < len && s[len - 1 - pad] == '=')
			pad++;
	if (pad > 2)
		return -1;
	n = len - pad;
	if (n % 4 == 1)
		return -1;
	for (size_t i = 0; i < n; i++) {
		int v = sextet(s[i]);
		if (v < 0)
			return -1;
		acc = acc << 6 | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (uint8_t)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	if (acc) /* non-zero trailing bits: no encoder writes them */
		return -1;
	return (long)o;
}

/* Bytes a text of this length and padding would decode to, whatever its characters. */
static size_t shape_len(const char *s, size_t len)
{
	static const size_t tail[4] = {0, 0, 1, 2};
	size_t pad = 0;

	if (len % 4 == 0)
		while (pad < len && pad < 2 && s[len - 1 - pad] == '=')
			pad++;
	return len / 4 * 3 + tail[len % 4] - pad;
}

static void check_decode(const char *text, size_t len, size_t max, int prefill)
{
	static const char pre[] = "prefix bytes";
	uint8_t *expect = malloc(len + 1);
	struct buf b, enc;
	size_t base;
	long n;
	int r;

	CHECK(expect);
	n = ref_decode(text, len, expect);
	buf_init(&b, max);
	if (prefill && max >= sizeof(pre))
		CHECK(buf_append(&b, pre, sizeof(pre) - 1) == 0);
	base = b.len;
	r = media_base64_decode(len ? text : NULL, len, &b);
	if (r == 0) {
		CHECK(n >= 0);
		CHECK(b.len == base + (size_t)n);
		CHECK(!n || !memcmp(b.data + base, expect, (size_t)n));
		CHECK(!b.data || b.data[b.len] == 0);
		CHECK(b.len <= max);
		/* re-encoding gives the canonical text: the input, padded */
		buf_init(&enc, (size_t)-1);
		CHECK(media_base64_encode(n ? b.data + base : NULL, (size_t)n, &enc) == 0);
		CHECK(enc.len == (len + 3) / 4 * 4);
		CHECK(!len || !memcmp(enc.data, text, len));
		for (size_t i = len; i < enc.len; i++)
			CHECK(enc.data[i] == '=');
		buf_release(&enc);
	} else {
		CHECK(r == -EINVAL || r == -ENOSPC);
		/* refused junk is junk to the reference too; -ENOSPC only when the
		 * length alone says the output would pass the ceiling (the size is
		 * checked before the characters, so junk may get -ENOSPC too) */
		if (r == -EINVAL)
			CHECK(n < 0);
		else
			CHECK(base + shape_len(text, len) > max);
		CHECK(b.len == base);
		CHECK(!base || !memcmp(b.data, pre, base));
		CHECK(!b.data || b.data[b.len] == 0);
	}
	buf_release(&b);
	free(expect);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const size_t ceilings[] = {(size_t)-1, 0, 1, 2, 3, 16, 64, 4096};
	const char *text;
	size_t len, max;
	struct buf enc, dec;

	if (size < 1)
		return 0;
	max = ceilings[data[0] & 7];
	text = (const char *)data + 1;
	len = size - 1;
	check_decode(text, len, max, data[0] & 8);

	/* any bytes encode, and the text decodes back to them */
	buf_init(&enc, (size_t)-1);
	buf_init(&dec, (size_t)-1);
	CHECK(media_base64_encode(len ? text : NULL, len, &enc) == 0);
	CHECK(enc.len == (len + 2) / 3 * 4);
	CHECK(media_base64_decode(enc.data, enc.len, &dec) == 0);
	CHECK(dec.len == len && (!len || !memcmp(dec.data, text, len)));
	/* and without its padding too */
	while (enc.len && enc.data[enc.len - 1] == '=')
		enc.len--;
	buf_reset(&dec);
	CHECK(media_base64_decode(enc.data, enc.len, &dec) == 0);
	CHECK(dec.len == len && (!len || !memcmp(dec.data, text, len)));
	buf_release(&enc);
	buf_release(&dec);
	return 0;
}
