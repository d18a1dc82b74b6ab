/* pretok.h: the pre-tokenizer splits of byte-level BPE vocabularies,
 * llama.cpp's regexes written out as code over code points:
 *
 *  gpt-2:  's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 *  llama3: (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
 *          ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
 *  qwen2:  llama3 with \p{N} (single digits)
 *  smollm: \p{N} first (each digit alone), then gpt-2 on the rest
 *  default: [\p{P}$+<=>^~|]+, then gpt-2, then \p{N}+, then [0-9]{3}
 *
 * A multi-step split applies each regex to every piece of the step before;
 * text between matches stays a piece of its own (llama.cpp's
 * unicode_regex_split). Pieces never span the end of the text given. */
#ifndef MEDIAD_LLAMA_PRETOK_H
#define MEDIAD_LLAMA_PRETOK_H

#include <stddef.h>
#include <stdint.h>

/* The pre-tokenizers, by tokenizer.ggml.pre (names in tokenizer.c). */
enum tok_pre { TOK_PRE_DEFAULT, TOK_PRE_GPT2, TOK_PRE_LLAMA3, TOK_PRE_QWEN2, TOK_PRE_SMOLLM };

/* Split cps[0..n) (flags[i] = uni_flags(cps[i])): writes the end index of
 * each piece to ends (room for n) and returns the piece count. */
size_t pretok_split(enum tok_pre pre, const uint32_t *cps, const unsigned *flags, size_t n,
                    size_t *ends);

#endif
