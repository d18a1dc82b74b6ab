/* sentence.c: the sentence splitter of text to speech. See sentence.h. */
#include "sentence.h"

#include <string.h>
#include <strings.h>

#include "util.h"

#define SENTENCE_MIN_LEN 16

static const char *const sentence_abbrev[] = {
    "mr",  "mrs", "ms", "dr", "prof",   "sr",   "jr",  "st",  "mt",  "vs",  "etc",  "e.g", "i.e",
    "inc", "ltd", "co", "no", "approx", "dept", "fig", "gen", "gov", "rev", "capt", "a.m", "p.m",
};

static int is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static int is_letter(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int is_closer(char c)
{
	return c == '"' || c == '\'' || c == ')' || c == ']' || c == '}';
}

/* Whether the '.' at text[dot] follows an abbreviation or an initial. */
static int after_abbrev(const char *text, size_t from, size_t dot)
{
	size_t b = dot;
	size_t n;

	while (b > from && (is_letter(text[b - 1]) || text[b - 1] == '.'))
		b--;
	n = dot - b;
	if (n == 1 && is_letter(text[b]))
		return 1;
	for (size_t i = 0; i < ARRAY_SIZE(sentence_abbrev); i++)
		if (strlen(sentence_abbrev[i]) == n &&
		    !strncasecmp(text + b, sentence_abbrev[i], n))
			return 1;
	return 0;
}

/* End (exclusive) of the sentence that starts at from, ignoring max_len. */
static size_t natural_end(const char *text, size_t len, size_t from)
{
	for (size_t i = from; i < len; i++) {
		char c = text[i];

		if (c == '\n') {
			size_t j = i + 1;
			while (j < len && (text[j] == ' ' || text[j] == '\t' || text[j] == '\r'))
				j++;
			if (j < len && text[j] == '\n')
				return i;
			continue;
		}
		if (c != '.' && c != '!' && c != '?')
			continue;
		size_t j = i;
		int only_dot = 1;
		while (j < len && (text[j] == '.' || text[j] == '!' || text[j] == '?')) {
			only_dot &= text[j] == '.';
			j++;
		}
		while (j < len && is_closer(text[j]))
			j++;
		if (j < len && !is_space(text[j])) {
			i = j - 1;
			continue;
		}
		if (only_dot && j - i == 1 && j < len && after_abbrev(text, from, i)) {
			i = j - 1;
			continue;
		}
		return j;
	}
	return len;
}

/* Where to cut a sentence [from, end) that is longer than max_len. */
static size_t cut_point(const char *text, size_t from, size_t max_len)
{
	size_t lim = from + max_len;
	size_t space = 0;

	for (size_t i = lim; i > from + 1; i--) {
		char c = text[i - 1];
		if ((c == ',' || c == ';' || c == ':') && is_space(text[i]))
			return i;
		if (!space && is_space(c))
			space = i - 1;
	}
	if (space > from)
		return space;
	/* one long word: back up to the start of a UTF-8 character */
	while (lim > from + 1 && ((unsigned char)text[lim] & 0xc0) == 0x80)
		lim--;
	return lim;
}

int sentence_next(const char *text, size_t len, size_t *pos, size_t max_len, struct sentence *s)
{
	size_t from = *pos, end;

	if (max_len < SENTENCE_MIN_LEN)
		max_len = SENTENCE_MIN_LEN;
	while (from < len && is_space(text[from]))
		from++;
	if (from >= len) {
		*pos = len;
		return 0;
	}
	end = natural_end(text, len, from);
	if (end - from > max_len)
		end = cut_point(text, from, max_len);
	*pos = end;
	while (end > from && is_space(text[end - 1]))
		end--;
	s->start = from;
	s->len = end - from;
	return 1;
}

size_t sentence_count(const char *text, size_t len, size_t max_len)
{
	struct sentence s;
	size_t pos = 0, n = 0;

	while (sentence_next(text, len, &pos, max_len, &s))
		n++;
	return n;
}
