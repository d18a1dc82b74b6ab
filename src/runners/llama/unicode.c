/* unicode.c: code point classes and UTF-8 coding for the tokenizer
 * (see unicode.h). */
#include "runners/llama/unicode.h"

#include "util.h"

enum ucat {
	UCAT_LETTER,
	UCAT_NUMBER,
	UCAT_PUNCT,
	UCAT_SYMBOL,
	UCAT_MARK,
	UCAT_SEPARATOR,
	UCAT_OTHER
};

struct ucat_range {
	uint32_t lo, hi;
	enum ucat cat;
};

#include "runners/llama/unicode_tab.h"

static const unsigned ucat_flag[] = {
    [UCAT_LETTER] = UNI_LETTER, [UCAT_NUMBER] = UNI_NUMBER, [UCAT_PUNCT] = UNI_PUNCT,
    [UCAT_SYMBOL] = UNI_SYMBOL, [UCAT_MARK] = UNI_MARK,     [UCAT_SEPARATOR] = UNI_SEPARATOR,
    [UCAT_OTHER] = UNI_OTHER,
};

/* llama.cpp's `\s`: ASCII tab..CR and space, NEL, NBSP and the Unicode
 * space separators, line and paragraph separators. */
static int is_space(uint32_t cp)
{
	if (cp < 0x80)
		return cp == ' ' || (cp >= 0x09 && cp <= 0x0d);
	return cp == 0x85 || cp == 0xa0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200a) ||
	       cp == 0x2028 || cp == 0x2029 || cp == 0x202f || cp == 0x205f || cp == 0x3000;
}

unsigned uni_flags(uint32_t cp)
{
	unsigned f = UNI_UNDEF;
	size_t lo = 0, hi = ARRAY_SIZE(ucat_ranges);

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (cp < ucat_ranges[mid].lo) {
			hi = mid;
		} else if (cp > ucat_ranges[mid].hi) {
			lo = mid + 1;
		} else {
			f = ucat_flag[ucat_ranges[mid].cat];
			break;
		}
	}
	return is_space(cp) ? f | UNI_SPACE : f;
}

size_t uni_lead_len(unsigned char c)
{
	static const unsigned char by_nibble[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
	return by_nibble[c >> 4];
}

size_t uni_decode(const char *s, size_t len, uint32_t *cp)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t n;
	uint32_t v;

	if (u[0] < 0x80) {
		*cp = u[0];
		return 1;
	}
	if ((u[0] & 0xe0) == 0xc0) {
		n = 2;
		v = u[0] & 0x1f;
	} else if ((u[0] & 0xf0) == 0xe0) {
		n = 3;
		v = u[0] & 0x0f;
	} else if ((u[0] & 0xf8) == 0xf0) {
		n = 4;
		v = u[0] & 0x07;
	} else {
		goto bad;
	}
	if (n > len)
		goto bad;
	for (size_t i = 1; i < n; i++) {
		if ((u[i] & 0xc0) != 0x80)
			goto bad;
		v = (v << 6) | (u[i] & 0x3f);
	}
	*cp = v;
	return n;
bad:
	*cp = 0xfffd;
	return 1;
}

size_t uni_encode(uint32_t cp, char *out)
{
	unsigned char *o = (unsigned char *)out;

	if (cp < 0x80) {
		o[0] = (unsigned char)cp;
		return 1;
	}
	if (cp < 0x800) {
		o[0] = (unsigned char)(0xc0 | (cp >> 6));
		o[1] = (unsigned char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		o[0] = (unsigned char)(0xe0 | (cp >> 12));
		o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
		o[2] = (unsigned char)(0x80 | (cp & 0x3f));
		return 3;
	}
	o[0] = (unsigned char)(0xf0 | (cp >> 18));
	o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
	o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
	o[3] = (unsigned char)(0x80 | (cp & 0x3f));
	return 4;
}
