/* tokenizer.h: text <-> token ids for GGUF models, as llama.cpp does it.
 *
 * Two kinds, named by tokenizer.ggml.model:
 *  - "llama": SentencePiece-style. A space is prepended (unless
 *    tokenizer.ggml.add_space_prefix is false) and spaces become U+2581;
 *    adjacent symbols are merged greedily, the pair whose concatenation is
 *    the highest-scoring token first (leftmost on a tie); characters left
 *    without a token fall back to <0xXX> byte tokens, or to the unknown
 *    token when the vocabulary has no byte tokens.
 *  - "gpt2": byte-level BPE. The text is split by the pre-tokenizer that
 *    tokenizer.ggml.pre names (llama3/llama-bpe, qwen2, smollm, gpt-2,
 *    default), each piece's bytes are mapped to GPT-2's printable code
 *    points, then merged by tokenizer.ggml.merges rank.
 * Before either, the text is cut around special tokens' exact texts:
 * control and unknown tokens only when the caller asks to parse specials,
 * user-defined tokens always (as llama.cpp).
 *
 * The tokenizer copies what it needs: the gguf may be freed after tok_load. */
#ifndef MEDIAD_LLAMA_TOKENIZER_H
#define MEDIAD_LLAMA_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "runners/llama/gguf.h"
#include "runners/llama/pretok.h"

enum tok_kind { TOK_SPM, TOK_BPE };

/* tokenizer.ggml.token_type values */
enum tok_type {
	TOK_TYPE_NORMAL = 1,
	TOK_TYPE_UNKNOWN = 2,
	TOK_TYPE_CONTROL = 3,
	TOK_TYPE_USER = 4,
	TOK_TYPE_UNUSED = 5,
	TOK_TYPE_BYTE = 6,
};

struct tok_entry {
	uint32_t off, len; /* text in tokenizer.text */
	float score;
	uint8_t type;
};

struct tokenizer {
	enum tok_kind kind;
	enum tok_pre pre;
	uint32_t n_vocab;
	struct tok_entry *tok;
	char *text;      /* every token's text, back to back */
	uint32_t *index; /* open addressing: token text -> id + 1 (0 empty) */
	uint32_t index_mask;
	uint64_t *merge_key; /* open addressing: (left id, right id) + 1 -> rank */
	uint32_t *merge_rank;
	uint32_t merge_mask;
	int32_t *special; /* control, unknown and user-defined ids, longest text first */
	uint32_t n_special;
	int32_t byte_tok[256];      /* SPM <0xXX> tokens, -1 when absent */
	uint16_t byte_cp[256];      /* BPE: GPT-2's printable code point of each byte */
	int32_t bos, eos, unk, pad; /* -1 when none */
	int add_bos, add_eos, add_space_prefix, ignore_merges;
};

/* Read the tokenizer from g's metadata. 0, or -EINVAL with err holding one
 * line naming the file, the field and the rule. */
int tok_load(struct tokenizer *t, const struct gguf *g, char *err, size_t errlen);
void tok_release(struct tokenizer *t);

/* Tokenize text[0..len). add_special adds BOS/EOS as the file says;
 * parse_special turns control tokens' texts into those tokens. Writes at
 * most max ids to out and the full count to *n_out. 0; -ENOSPC when the
 * count passes max; -EINVAL when a character has no token, no byte token
 * and the vocabulary no unknown token. */
int tok_encode(const struct tokenizer *t, const char *text, size_t len, int add_special,
               int parse_special, int32_t *out, size_t max, size_t *n_out);

/* The id of a token by its exact stored text, or -1. */
int32_t tok_find(const struct tokenizer *t, const char *text, size_t len);
/* The token's stored text (not NUL-terminated) and its length; NULL when
 * the id is out of range. */
const char *tok_token_text(const struct tokenizer *t, int32_t id, size_t *len);
/* Append the bytes token id stands for (SPM: U+2581 as space, byte tokens
 * as their byte; BPE: GPT-2 byte mapping reversed). Control tokens give
 * their text only when special is set. 0, -EINVAL (bad id), -ENOSPC. */
int tok_piece(const struct tokenizer *t, int32_t id, int special, struct buf *out);

/* Streaming decode: each push appends only whole UTF-8 characters; an
 * incomplete sequence at a chunk's end is held for the next push, a
 * sequence that can never be valid is replaced by U+FFFD. For SPM the
 * leading space of the first text (at the start or right after BOS) is
 * dropped, as llama.cpp's detokenizer does. */
struct tok_stream {
	const struct tokenizer *t;
	int special;
	int at_start; /* no text yet: an SPM leading space is still to drop */
	unsigned char held[4];
	size_t n_held;
};

void tok_stream_init(struct tok_stream *s, const struct tokenizer *t, int special);
/* 0, -EINVAL (bad id) or -ENOSPC (out's ceiling). */
int tok_stream_push(struct tok_stream *s, int32_t id, struct buf *out);
/* End of stream: a held incomplete sequence becomes U+FFFD. */
int tok_stream_flush(struct tok_stream *s, struct buf *out);
/* Whole-sequence decode through a stream. */
int tok_decode(const struct tokenizer *t, const int32_t *ids, size_t n, int special,
               struct buf *out);

#endif
