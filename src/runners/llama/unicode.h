/* unicode.h: the Unicode facts the tokenizer needs: UTF-8 decoding the way
 * llama.cpp does it (an invalid byte reads as U+FFFD and consumes one
 * byte), general category classes (letter, number, punctuation...) from a
 * table generated from Python's unicodedata (tools/gen_unicode_tab.py), and
 * the whitespace set of llama.cpp's pre-tokenizers (`\s`). */
#ifndef MEDIAD_LLAMA_UNICODE_H
#define MEDIAD_LLAMA_UNICODE_H

#include <stddef.h>
#include <stdint.h>

/* Flags of a code point: exactly one class bit (UNI_UNDEF for unassigned
 * code points), plus UNI_SPACE for the pre-tokenizers' whitespace. */
enum {
	UNI_UNDEF = 1 << 0,
	UNI_LETTER = 1 << 1,
	UNI_NUMBER = 1 << 2,
	UNI_PUNCT = 1 << 3,
	UNI_SYMBOL = 1 << 4,
	UNI_MARK = 1 << 5,
	UNI_SEPARATOR = 1 << 6,
	UNI_OTHER = 1 << 7,
	UNI_SPACE = 1 << 8,
};

unsigned uni_flags(uint32_t cp);

/* Decode the code point at s (len > 0 bytes left): its byte length, with
 * *cp = U+FFFD and length 1 when the bytes there are not a sequence. */
size_t uni_decode(const char *s, size_t len, uint32_t *cp);
/* Encode cp as UTF-8 into out (4 bytes room); its length. */
size_t uni_encode(uint32_t cp, char *out);
/* Length of the UTF-8 sequence a lead byte announces (1 for a stray
 * continuation byte), as SentencePiece and llama.cpp split characters. */
size_t uni_lead_len(unsigned char c);

#endif
