/* sentence.h: splitting text to speak into sentences.
 *
 * Text to speech synthesises long input sentence by sentence, so the first
 * audio can be streamed while the rest is made and one call never holds an
 * unbounded amount of text. Pure functions, no allocation.
 *
 * A sentence ends after a run of '.', '!' or '?' (with any closing quotes or
 * brackets after it) that is followed by whitespace or the end of the text,
 * and at a blank line. A '.' after a common abbreviation ("Mr.", "e.g.",
 * "etc.") or a single letter (an initial: "J. Smith") does not end one, nor
 * does a '.' inside a word or number ("3.14", "example.com"). A sentence
 * longer than max_len bytes is cut at its last ',', ';', ':' or space before
 * the limit (a word longer than the limit is cut at a UTF-8 character
 * boundary). */
#ifndef MEDIAD_SENTENCE_H
#define MEDIAD_SENTENCE_H

#include <stddef.h>

struct sentence {
	size_t start; /* byte offset in the text */
	size_t len;   /* bytes; >= 1, no leading or trailing whitespace */
};

/* Find the next sentence of text[*pos .. len). Returns 1 with *s set and
 * *pos moved past the sentence, or 0 (with *pos = len) when nothing but
 * whitespace is left. max_len < 16 is taken as 16. */
int sentence_next(const char *text, size_t len, size_t *pos, size_t max_len, struct sentence *s);

/* Number of sentences sentence_next() finds in text[0 .. len). */
size_t sentence_count(const char *text, size_t len, size_t max_len);

#endif
