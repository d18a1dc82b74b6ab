/* test_sentence.c: unit tests for src/runners/flite/sentence.c (the text-to-speech
 * sentence splitter) and src/runners/sphinx/datafile.c (finding shipped data files). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runners/sphinx/datafile.h"
#include "runners/flite/sentence.h"
#include "banned.h"

#define MAXS 16

/* Split text and compare with the expected sentences (NULL-terminated). */
static void expect_split(const char *text, size_t max_len, const char *const *want)
{
	size_t len = strlen(text), pos = 0, n = 0;
	struct sentence s;

	while (sentence_next(text, len, &pos, max_len, &s)) {
		assert_non_null(want[n]);
		assert_true(s.len >= 1);
		assert_true(s.len <= (max_len < 16 ? 16 : max_len));
		if (strlen(want[n]) != s.len || memcmp(text + s.start, want[n], s.len)) {
			print_error("sentence %zu: got \"%.*s\", want \"%s\"\n", n, (int)s.len,
			            text + s.start, want[n]);
			fail();
		}
		n++;
	}
	assert_null(want[n]);
	assert_int_equal(pos, len);
	assert_int_equal(sentence_count(text, len, max_len), n);
}

static void test_basic_sentences(void **state)
{
	const char *want[] = {"Hello there.", "How are you?", "Fine!", NULL};

	expect_split("  Hello there. How are you?\tFine!  ", 400, want);
}

static void test_single_without_terminator(void **state)
{
	const char *want[] = {"just some words", NULL};

	expect_split("just some words", 400, want);
}

static void test_empty_and_blank(void **state)
{
	const char *none[] = {NULL};

	expect_split("", 400, none);
	expect_split(" \n\t  \r\n", 400, none);
}

static void test_abbreviations_and_initials(void **state)
{
	const char *want[] = {"Mr. Smith met Dr. Jones at 3 p.m. on Main St. today.",
	                      "J. R. R. Tolkien wrote books, e.g. this one.", "Done.", NULL};

	expect_split("Mr. Smith met Dr. Jones at 3 p.m. on Main St. today. "
	             "J. R. R. Tolkien wrote books, e.g. this one. Done.",
	             400, want);
}

static void test_numbers_and_urls_do_not_split(void **state)
{
	const char *want[] = {"Pi is 3.14 and the site is example.com.", "Next.", NULL};

	expect_split("Pi is 3.14 and the site is example.com. Next.", 400, want);
}

static void test_runs_and_quotes(void **state)
{
	const char *want[] = {"Really?!", "He said \"stop.\"", "(Then he left.)", "Wait...", "ok",
	                      NULL};

	expect_split("Really?! He said \"stop.\" (Then he left.) Wait... ok", 400, want);
}

static void test_blank_line_is_a_break(void **state)
{
	const char *want[] = {"Title without a stop", "First paragraph line one\nline two",
	                      "Second", NULL};

	expect_split("Title without a stop\n\nFirst paragraph line one\nline two\n \n\nSecond", 400,
	             want);
}

static void test_long_sentence_cut_at_comma_or_space(void **state)
{
	const char *want[] = {"one two three four,", "five six seven eight", "nine ten.", NULL};

	expect_split("one two three four, five six seven eight nine ten.", 22, want);
}

static void test_long_word_cut_on_utf8_boundary(void **state)
{
	/* 20 two-byte characters (é) with no space: cut below 17 bytes */
	char text[64];
	size_t len = 40, pos = 0;
	struct sentence s;

	for (int i = 0; i < 20; i++)
		memcpy(text + 2 * i, "\xc3\xa9", 2);
	text[len] = 0;
	while (sentence_next(text, len, &pos, 17, &s)) {
		assert_true(s.len <= 17);
		assert_true(((unsigned char)text[s.start] & 0xc0) != 0x80);
		assert_int_equal(s.len % 2, 0);
	}
	assert_int_equal(sentence_count(text, len, 17), 3);
}

static void test_min_len_clamped(void **state)
{
	const char *want[] = {"aaaa bbbb cccc", "dddd", NULL};

	expect_split("aaaa bbbb cccc dddd", 1, want);
}

static void test_datafile_env_override_and_miss(void **state)
{
	char dir[] = "/tmp/mediad-datafile-XXXXXX";
	char path[PATH_MAX], out[PATH_MAX];
	FILE *f;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/probe.bin", dir);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("x", f);
	fclose(f);
	setenv("MEDIAD_DATA_DIR", dir, 1);
	assert_int_equal(datafile_find("probe.bin", out, sizeof(out)), 0);
	assert_string_equal(out, path);
	assert_int_equal(datafile_find("no-such-file.bin", out, sizeof(out)), -ENOENT);
	assert_non_null(strstr(out, dir));
	assert_non_null(strstr(out, MEDIAD_DATA_DIR_DEFAULT));
	unsetenv("MEDIAD_DATA_DIR");
	unlink(path);
	rmdir(dir);
}

static void test_datafile_finds_repo_canary(void **state)
{
	/* the unit binaries live in build/tests/: <exe>/../data is build/data,
	 * which does not exist; MEDIAD_SRC (set by `make unit`) points at the
	 * tree that ships data/canary.wav */
	const char *src = getenv("MEDIAD_SRC");
	char dir[PATH_MAX], out[PATH_MAX];

	if (!src)
		skip();
	snprintf(dir, sizeof(dir), "%s/data", src);
	setenv("MEDIAD_DATA_DIR", dir, 1);
	assert_int_equal(datafile_find("canary.wav", out, sizeof(out)), 0);
	assert_non_null(strstr(out, "canary.wav"));
	unsetenv("MEDIAD_DATA_DIR");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_basic_sentences),
	    cmocka_unit_test(test_single_without_terminator),
	    cmocka_unit_test(test_empty_and_blank),
	    cmocka_unit_test(test_abbreviations_and_initials),
	    cmocka_unit_test(test_numbers_and_urls_do_not_split),
	    cmocka_unit_test(test_runs_and_quotes),
	    cmocka_unit_test(test_blank_line_is_a_break),
	    cmocka_unit_test(test_long_sentence_cut_at_comma_or_space),
	    cmocka_unit_test(test_long_word_cut_on_utf8_boundary),
	    cmocka_unit_test(test_min_len_clamped),
	    cmocka_unit_test(test_datafile_env_override_and_miss),
	    cmocka_unit_test(test_datafile_finds_repo_canary),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
