/* test_regress_base64.c: regression test for a fuzz finding in media_base64_decode.
 *
 * fuzz_base64 found that bytes >= 0x80 were decoded as '/' (value 63):
 * libsodium 1.0.18's sodium_base642bin maps a (signed) char of the upper
 * half to 63, so "QQQ\xff" decoded to 41 04 3f instead of failing. media.h
 * promises -EINVAL for characters outside the alphabet; a client's JSON
 * "file" (any UTF-8) is decoded with it. Every byte outside the standard
 * alphabet, in every position, must be refused and leave the buffer alone. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "buf.h"
#include "media.h"
#include "banned.h"

static int in_alphabet(int c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '+' || c == '/';
}

static void test_high_bytes_refused(void **state)
{
	struct buf b;

	(void)state;
	buf_init(&b, BUF_UNLIMITED);
	/* the fuzzer's input, reduced */
	assert_int_equal(media_base64_decode("QQQ\xff", 4, &b), -EINVAL);
	assert_int_equal(b.len, 0);
	assert_int_equal(media_base64_decode("\xc3\xa9QQ", 4, &b), -EINVAL); /* "é" in UTF-8 */
	assert_int_equal(b.len, 0);
	buf_release(&b);
}

static void test_every_byte_in_every_position(void **state)
{
	struct buf b;

	(void)state;
	buf_init(&b, BUF_UNLIMITED);
	assert_int_equal(buf_append(&b, "keep", 4), 0);
	for (int c = 0; c < 256; c++) {
		if (in_alphabet(c))
			continue;
		for (int pos = 0; pos < 4; pos++) {
			char text[5] = "QUFB"; /* "AAA" */
			int r;

			if (c == '=' && pos >= 2)
				continue; /* padding: "QUF=" and "QU==" are valid */
			text[pos] = (char)c;
			r = media_base64_decode(text, 4, &b);
			if (r != -EINVAL)
				fail_msg("byte 0x%02x at position %d: got %d, want -EINVAL", c, pos, r);
			assert_int_equal(b.len, 4);
			assert_memory_equal(b.data, "keep", 5);
		}
	}
	buf_release(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_high_bytes_refused),
		cmocka_unit_test(test_every_byte_in_every_position),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
