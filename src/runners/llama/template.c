/* template.c: a Jinja-subset engine for GGUF chat templates (see template.h).
 *
 * Parse: a lexer splits the source into text and tag tokens, applying the
 * whitespace rules of the environment Hugging Face transformers uses for
 * apply_chat_template (trim_blocks=True: the first newline after a block or
 * comment tag is dropped; lstrip_blocks=True: spaces and tabs from the start
 * of a line up to a block or comment tag are dropped; `{%-`/`-%}` strip all
 * whitespace on that side, `{%+`/`+%}` disable lstrip/trim; a single
 * trailing newline of the template is dropped, keep_trailing_newline=False).
 * A recursive-descent parser builds a tree in an arena owned by the
 * template; everything outside the subset is refused there, so a render
 * never meets an unknown construct.
 *
 * The subset:
 *   statements  if/elif/else/endif; for T[, T...] in E [if C] ... [else]
 *               endfor (loop.index, index0, revindex, revindex0, first, last,
 *               length, previtem, nextitem); set x = E; set ns.attr = E;
 *               break; continue; generation/endgeneration (no-op block)
 *   expressions none/true/false (any case Jinja allows), numbers, strings
 *               with Python escapes, [lists], (tuples, as lists), {dicts};
 *               names, a.b, a[k], a[i:j:k]; + - * / // % ** ~; == != < >
 *               <= >= in, not in; and or not; a if c else b
 *   functions   raise_exception(msg), namespace(k=v...), range(...),
 *               strftime_now(fmt)
 *   filters     trim length count upper lower capitalize title default d
 *               tojson(indent) string join first last replace items safe
 *               list int
 *   tests       defined undefined none string mapping iterable sequence
 *               number integer float boolean true false
 *   methods     str: strip lstrip rstrip startswith endswith split upper
 *               lower title capitalize replace; dict: get items keys values
 * Case conversion is ASCII-only; other characters pass through unchanged.
 *
 * Values are jansson values; "undefined" is a NULL json_t pointer. Every
 * evaluation returns a new reference (or NULL). Scopes: the caller's object
 * (never modified), a root scope, one scope per for loop (as in Jinja, a set
 * inside a loop does not leak out; namespace() objects carry state out).
 * Ceilings: parse nesting, loop iterations, evaluation work, string length,
 * value nesting, the number of namespaces, and the output buffer's own. */
#include "runners/llama/template.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util.h"

#define MAX_NEST        64                /* nesting of blocks and expressions */
#define MAX_ITERS       100000UL          /* loop iterations in one render */
#define MAX_WORK        (16UL << 20)      /* evaluation steps + bytes built */
#define MAX_STR         ((size_t)4 << 20) /* one string value, bytes */
#define MAX_VALUE_DEPTH 512               /* nesting of values the template builds */
#define MAX_NAMESPACES  64                /* namespace() objects in one render */
#define MAX_RANGE       100000            /* elements of one range() */

/* ---- arena: every node and name of a parsed template ---- */

struct ablock {
	struct ablock *next;
	size_t used, cap;
	max_align_t data[];
};

static void *arena_alloc(struct ablock **head, size_t n)
{
	struct ablock *b = *head;
	void *p;

	n = (n + 15) & ~(size_t)15;
	if (!b || b->cap - b->used < n) {
		size_t cap = n > 8192 ? n : 8192;
		b = xmalloc(sizeof(*b) + cap);
		b->next = *head;
		b->used = 0;
		b->cap = cap;
		*head = b;
	}
	p = (char *)b->data + b->used;
	b->used += n;
	memset(p, 0, n);
	return p;
}

static char *arena_strndup(struct ablock **head, const char *s, size_t n)
{
	char *p = arena_alloc(head, n + 1);
	memcpy(p, s, n);
	p[n] = 0;
	return p;
}

/* ---- tree ---- */

enum nkind {
	/* statements */
	N_TEXT,
	N_OUT,
	N_IF,
	N_FOR,
	N_SET,
	N_BREAK,
	N_CONTINUE,
	/* expressions */
	E_LIT,
	E_NAME,
	E_ATTR,
	E_INDEX,
	E_SLICE,
	E_LIST,
	E_DICT,
	E_PAIR,
	E_BIN,
	E_NEG,
	E_POS,
	E_NOT,
	E_AND,
	E_OR,
	E_COND,
	E_CALL,
	E_METHOD,
	E_FILTER,
	E_TEST,
};

enum binop {
	OP_ADD,
	OP_SUB,
	OP_MUL,
	OP_DIV,
	OP_FDIV,
	OP_MOD,
	OP_POW,
	OP_CAT,
	OP_EQ,
	OP_NE,
	OP_LT,
	OP_GT,
	OP_LE,
	OP_GE,
	OP_IN,
	OP_NOTIN,
};

enum fn { FN_RAISE, FN_NAMESPACE, FN_RANGE, FN_STRFTIME };

enum filter {
	F_TRIM,
	F_LENGTH,
	F_UPPER,
	F_LOWER,
	F_CAPITALIZE,
	F_TITLE,
	F_DEFAULT,
	F_TOJSON,
	F_STRING,
	F_JOIN,
	F_FIRST,
	F_LAST,
	F_REPLACE,
	F_ITEMS,
	F_SAFE,
	F_LIST,
	F_INT,
};

enum test {
	T_DEFINED,
	T_UNDEFINED,
	T_NONE,
	T_STRING,
	T_MAPPING,
	T_ITERABLE,
	T_SEQUENCE,
	T_NUMBER,
	T_INTEGER,
	T_FLOAT,
	T_BOOLEAN,
	T_TRUE,
	T_FALSE,
};

enum method {
	M_STRIP,
	M_LSTRIP,
	M_RSTRIP,
	M_STARTSWITH,
	M_ENDSWITH,
	M_SPLIT,
	M_UPPER,
	M_LOWER,
	M_TITLE,
	M_CAPITALIZE,
	M_REPLACE,
	M_GET,
	M_ITEMS,
	M_KEYS,
	M_VALUES,
};

struct node {
	enum nkind kind;
	int op;           /* binop, fn, filter, test, method */
	int neg;          /* E_TEST: "is not" */
	size_t pos;       /* offset in the source, for messages */
	const char *name; /* E_NAME, E_ATTR, N_SET target */
	const char *kw;   /* the keyword of a keyword argument */
	const char *attr; /* N_SET: ns.attr */
	const char *text; /* N_TEXT */
	size_t text_len;
	json_t *lit; /* E_LIT (owned by the template's lits array) */
	struct node *a, *b, *c, *d;
	struct node *args; /* arguments, list items, dict pairs, for targets */
	struct node *next; /* next statement of a body, next argument */
};

struct tmpl {
	struct ablock *arena;
	json_t *lits;
	struct node *body;
	const char *src; /* copy of the source, for render-time positions */
	size_t src_len;
};

/* ---- name tables: what the parser accepts ---- */

struct callable {
	const char *name;
	int id;
	int min, max;    /* positional arguments */
	const char *kws; /* accepted keywords, space-separated; "*" any */
};

static const struct callable fns[] = {
    {"raise_exception", FN_RAISE, 1, 1, ""},
    {"namespace", FN_NAMESPACE, 0, 0, "*"},
    {"range", FN_RANGE, 1, 3, ""},
    {"strftime_now", FN_STRFTIME, 1, 1, ""},
};

static const struct callable filters[] = {
    {"trim", F_TRIM, 0, 1, ""},
    {"length", F_LENGTH, 0, 0, ""},
    {"count", F_LENGTH, 0, 0, ""},
    {"upper", F_UPPER, 0, 0, ""},
    {"lower", F_LOWER, 0, 0, ""},
    {"capitalize", F_CAPITALIZE, 0, 0, ""},
    {"title", F_TITLE, 0, 0, ""},
    {"default", F_DEFAULT, 0, 2, "default_value boolean"},
    {"d", F_DEFAULT, 0, 2, "default_value boolean"},
    {"tojson", F_TOJSON, 0, 1, "indent"},
    {"string", F_STRING, 0, 0, ""},
    {"join", F_JOIN, 0, 1, "d"},
    {"first", F_FIRST, 0, 0, ""},
    {"last", F_LAST, 0, 0, ""},
    {"replace", F_REPLACE, 2, 3, ""},
    {"items", F_ITEMS, 0, 0, ""},
    {"safe", F_SAFE, 0, 0, ""},
    {"list", F_LIST, 0, 0, ""},
    {"int", F_INT, 0, 1, "default"},
};

static const struct callable tests[] = {
    {"defined", T_DEFINED, 0, 0, ""},   {"undefined", T_UNDEFINED, 0, 0, ""},
    {"none", T_NONE, 0, 0, ""},         {"string", T_STRING, 0, 0, ""},
    {"mapping", T_MAPPING, 0, 0, ""},   {"iterable", T_ITERABLE, 0, 0, ""},
    {"sequence", T_SEQUENCE, 0, 0, ""}, {"number", T_NUMBER, 0, 0, ""},
    {"integer", T_INTEGER, 0, 0, ""},   {"float", T_FLOAT, 0, 0, ""},
    {"boolean", T_BOOLEAN, 0, 0, ""},   {"true", T_TRUE, 0, 0, ""},
    {"false", T_FALSE, 0, 0, ""},
};

static const struct callable methods[] = {
    {"strip", M_STRIP, 0, 1, ""},       {"lstrip", M_LSTRIP, 0, 1, ""},
    {"rstrip", M_RSTRIP, 0, 1, ""},     {"startswith", M_STARTSWITH, 1, 1, ""},
    {"endswith", M_ENDSWITH, 1, 1, ""}, {"split", M_SPLIT, 0, 2, "sep maxsplit"},
    {"upper", M_UPPER, 0, 0, ""},       {"lower", M_LOWER, 0, 0, ""},
    {"title", M_TITLE, 0, 0, ""},       {"capitalize", M_CAPITALIZE, 0, 0, ""},
    {"replace", M_REPLACE, 2, 3, ""},   {"get", M_GET, 1, 2, ""},
    {"items", M_ITEMS, 0, 0, ""},       {"keys", M_KEYS, 0, 0, ""},
    {"values", M_VALUES, 0, 0, ""},
};

static const struct callable *callable_find(const struct callable *tab, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(tab[i].name, name))
			return &tab[i];
	return NULL;
}

/* ---- positions and messages ---- */

static void where(const char *src, size_t len, size_t pos, unsigned *line, unsigned *col)
{
	*line = 1;
	*col = 1;
	for (size_t i = 0; i < pos && i < len; i++) {
		if (src[i] == '\n') {
			(*line)++;
			*col = 1;
		} else if (((unsigned char)src[i] & 0xc0) != 0x80) {
			(*col)++;
		}
	}
}

/* One printable line: control bytes in a quoted name become '?'. */
static void one_line(char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			*s = '?';
}

static void __attribute__((format(printf, 6, 0)))
vposerr(char *err, size_t errlen, const char *src, size_t len, size_t pos, const char *fmt,
        va_list ap)
{
	unsigned line, col;
	int n;

	if (!errlen)
		return;
	where(src, len, pos, &line, &col);
	n = snprintf(err, errlen, "chat template: line %u, column %u: ", line, col);
	if (n >= 0 && (size_t)n < errlen)
		vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
	one_line(err);
}

/* ---- lexer ---- */

enum tkind {
	K_TEXT,
	K_VAR_BEGIN,
	K_VAR_END,
	K_BLOCK_BEGIN,
	K_BLOCK_END,
	K_NAME,
	K_STRING,
	K_NUMBER,
	K_OP,
	K_EOF,
};

struct tok {
	enum tkind kind;
	size_t pos;
	const char *s; /* K_TEXT, K_NAME, K_OP: the bytes (K_NAME: NUL-terminated) */
	size_t len;
	json_t *lit; /* K_STRING, K_NUMBER (owned by the template) */
};

struct parser {
	struct tmpl *t;
	const char *src;
	size_t len;
	struct tok *tk;
	size_t n_tk, cap_tk, i;
	int nest;  /* current nesting, against MAX_NEST */
	int loops; /* for loops around the current statement */
	char *err;
	size_t errlen;
	int failed;
};

static int __attribute__((format(printf, 3, 4)))
perr(struct parser *p, size_t pos, const char *fmt, ...)
{
	va_list ap;

	if (!p->failed) {
		va_start(ap, fmt);
		vposerr(p->err, p->errlen, p->src, p->len, pos, fmt, ap);
		va_end(ap);
		p->failed = 1;
	}
	return -EINVAL;
}

static struct tok *tok_push(struct parser *p, enum tkind kind, size_t pos, const char *s,
                            size_t len)
{
	struct tok *t;

	if (p->n_tk == p->cap_tk) {
		p->cap_tk = p->cap_tk ? p->cap_tk * 2 : 256;
		p->tk = xrealloc(p->tk, p->cap_tk * sizeof(*p->tk));
	}
	t = &p->tk[p->n_tk++];
	memset(t, 0, sizeof(*t));
	t->kind = kind;
	t->pos = pos;
	t->s = s;
	t->len = len;
	return t;
}

static int is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

static int is_ident(char c, int first)
{
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (!first && c >= '0' && c <= '9');
}

/* A keeps-its-own-json literal: the template owns it. */
static json_t *lit_keep(struct parser *p, json_t *v)
{
	json_array_append_new(p->t->lits, v);
	return v;
}

static int lex_string(struct parser *p, size_t *at)
{
	const char *s = p->src;
	size_t i = *at, start = i;
	char q = s[i++];
	struct buf b;
	struct tok *t;

	buf_init(&b, MAX_STR);
	while (i < p->len && s[i] != q) {
		char c = s[i++];
		if (c == '\\' && i < p->len) {
			char e = s[i++];
			switch (e) {
			case 'n':
				c = '\n';
				break;
			case 't':
				c = '\t';
				break;
			case 'r':
				c = '\r';
				break;
			case '\\':
			case '\'':
			case '"':
				c = e;
				break;
			default:
				/* Python keeps an unknown escape as written */
				if (buf_append(&b, "\\", 1))
					goto long_string;
				c = e;
			}
		}
		if (buf_append(&b, &c, 1))
			goto long_string;
	}
	if (i >= p->len) {
		buf_release(&b);
		return perr(p, start, "unterminated string");
	}
	t = tok_push(p, K_STRING, start, s + start, i + 1 - start);
	t->lit = lit_keep(p, json_stringn_nocheck(b.data ? b.data : "", b.len));
	buf_release(&b);
	*at = i + 1;
	return 0;
long_string:
	buf_release(&b);
	return perr(p, start, "string literal too long");
}

static int lex_number(struct parser *p, size_t *at)
{
	const char *s = p->src;
	size_t i = *at, start = i;
	int is_float = 0;
	char tmp[64];
	size_t n = 0;
	struct tok *t;

	while (i < p->len && ((s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
		i++;
	if (i + 1 < p->len && s[i] == '.' && s[i + 1] >= '0' && s[i + 1] <= '9') {
		is_float = 1;
		i++;
		while (i < p->len && ((s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
			i++;
	}
	if (i < p->len && (s[i] == 'e' || s[i] == 'E')) {
		size_t j = i + 1;
		if (j < p->len && (s[j] == '+' || s[j] == '-'))
			j++;
		if (j < p->len && s[j] >= '0' && s[j] <= '9') {
			is_float = 1;
			i = j;
			while (i < p->len && s[i] >= '0' && s[i] <= '9')
				i++;
		}
	}
	for (size_t k = start; k < i; k++) {
		if (s[k] == '_')
			continue;
		if (n + 1 >= sizeof(tmp))
			return perr(p, start, "number literal too long");
		tmp[n++] = s[k];
	}
	tmp[n] = 0;
	t = tok_push(p, K_NUMBER, start, s + start, i - start);
	if (is_float) {
		t->lit = lit_keep(p, json_real(strtod(tmp, NULL)));
	} else {
		int64_t v;
		if (parse_i64(tmp, &v))
			return perr(p, start, "integer literal too large");
		t->lit = lit_keep(p, json_integer(v));
	}
	*at = i;
	return 0;
}

static const char *const ops[] = {
    "//", "**", "==", "!=", "<=", ">=", "+", "-", "*", "/", "%", "~", "<",
    ">",  "(",  ")",  "[",  "]",  "{",  "}", ",", ":", ".", "|", "=",
};

/* Tokens of one tag from *at to its end marker; returns with *at past it.
 * *strip_after: the marker was "-%}" / "-}}"; *trim: trim_blocks applies. */
static int lex_tag(struct parser *p, size_t *at, int block, int *strip_after, int *trim)
{
	const char *s = p->src;
	size_t i = *at, start = p->tk[p->n_tk - 1].pos; /* the "{{" or "{%" */
	int braces = 0;

	for (;;) {
		while (i < p->len && is_space(s[i]))
			i++;
		if (i >= p->len)
			return perr(p, start, "unclosed %s tag", block ? "{% %}" : "{{ }}");
		const char *end = block ? "%}" : "}}";
		size_t mod = (s[i] == '-' || (block && s[i] == '+')) ? 1 : 0;
		if ((block || braces == 0) && p->len - i >= 2 + mod &&
		    !memcmp(s + i + mod, end, 2)) {
			*strip_after = mod && s[i] == '-';
			*trim = block && !mod;
			tok_push(p, block ? K_BLOCK_END : K_VAR_END, i, s + i, 2 + mod);
			*at = i + 2 + mod;
			return 0;
		}
		char c = s[i];
		if (c == '\'' || c == '"') {
			if (lex_string(p, &i))
				return -EINVAL;
			continue;
		}
		if (c >= '0' && c <= '9') {
			if (lex_number(p, &i))
				return -EINVAL;
			continue;
		}
		if (is_ident(c, 1)) {
			size_t st = i;
			while (i < p->len && is_ident(s[i], 0))
				i++;
			tok_push(p, K_NAME, st, arena_strndup(&p->t->arena, s + st, i - st),
			         i - st);
			continue;
		}
		size_t k;
		for (k = 0; k < ARRAY_SIZE(ops); k++) {
			size_t n = strlen(ops[k]);
			if (p->len - i >= n && !memcmp(s + i, ops[k], n))
				break;
		}
		if (k == ARRAY_SIZE(ops)) {
			if ((unsigned char)c < 0x20 || (unsigned char)c >= 0x7f)
				return perr(p, i, "unexpected byte 0x%02x", (unsigned char)c);
			return perr(p, i, "unexpected character '%c'", c);
		}
		if (c == '{')
			braces++;
		else if (c == '}' && braces > 0)
			braces--;
		tok_push(p, K_OP, i, ops[k], strlen(ops[k]));
		i += strlen(ops[k]);
	}
}

static size_t find2(const char *s, size_t from, size_t len, char a, char b)
{
	for (size_t i = from; i + 1 < len; i++)
		if (s[i] == a && s[i + 1] == b)
			return i;
	return len;
}

static size_t skip_newline(const char *s, size_t i, size_t len)
{
	if (i < len && s[i] == '\n')
		return i + 1;
	if (i + 1 < len && s[i] == '\r' && s[i + 1] == '\n')
		return i + 2;
	return i;
}

static int lex(struct parser *p)
{
	const char *s = p->src;
	size_t len = p->len, i = 0;

	/* keep_trailing_newline=False */
	if (len && s[len - 1] == '\n') {
		len--;
		if (len && s[len - 1] == '\r')
			len--;
	}
	p->len = len;
	while (i < len) {
		size_t t = i;
		while (t + 1 < len &&
		       !(s[t] == '{' && (s[t + 1] == '{' || s[t + 1] == '%' || s[t + 1] == '#')))
			t++;
		if (t + 1 >= len)
			t = len;
		size_t text_end = t;
		if (t < len) {
			char kind = s[t + 1];
			char mod = t + 2 < len ? s[t + 2] : 0;
			if (mod == '-') {
				while (text_end > i && is_space(s[text_end - 1]))
					text_end--;
			} else if (kind != '{' && mod != '+') {
				size_t k = text_end;
				while (k > i && (s[k - 1] == ' ' || s[k - 1] == '\t'))
					k--;
				if (k == 0 || s[k - 1] == '\n')
					text_end = k;
			}
		}
		if (text_end > i)
			tok_push(p, K_TEXT, i, s + i, text_end - i);
		if (t >= len)
			break;
		char kind = s[t + 1];
		size_t body = t + 2;
		if (body < len && (s[body] == '-' || (kind != '{' && s[body] == '+')))
			body++;
		int strip_after = 0, trim = 0;
		if (kind == '#') {
			size_t e = find2(s, body, len, '#', '}');
			if (e >= len)
				return perr(p, t, "unclosed comment");
			strip_after = e > body && s[e - 1] == '-';
			trim = !(e > body && (s[e - 1] == '-' || s[e - 1] == '+'));
			i = e + 2;
		} else {
			tok_push(p, kind == '%' ? K_BLOCK_BEGIN : K_VAR_BEGIN, t, s + t, body - t);
			i = body;
			if (lex_tag(p, &i, kind == '%', &strip_after, &trim))
				return -EINVAL;
		}
		if (strip_after)
			while (i < len && is_space(s[i]))
				i++;
		else if (trim)
			i = skip_newline(s, i, len);
	}
	tok_push(p, K_EOF, len, s + len, 0);
	return 0;
}

/* ---- parser ---- */

static struct tok *peek(struct parser *p)
{
	return &p->tk[p->i];
}

static int is_op(const struct tok *t, const char *op)
{
	return t->kind == K_OP && t->len == strlen(op) && !memcmp(t->s, op, t->len);
}

static int is_name(const struct tok *t, const char *name)
{
	return t->kind == K_NAME && !strcmp(t->s, name);
}

static int accept_op(struct parser *p, const char *op)
{
	if (!is_op(peek(p), op))
		return 0;
	p->i++;
	return 1;
}

static int accept_name(struct parser *p, const char *name)
{
	if (!is_name(peek(p), name))
		return 0;
	p->i++;
	return 1;
}

static const char *tok_desc(const struct tok *t, char *tmp, size_t n)
{
	switch (t->kind) {
	case K_EOF:
		return "end of template";
	case K_TEXT:
		return "text";
	case K_BLOCK_END:
		return "end of statement";
	case K_VAR_END:
		return "end of expression";
	case K_BLOCK_BEGIN:
		return "'{%'";
	case K_VAR_BEGIN:
		return "'{{'";
	default:
		snprintf(tmp, n, "'%.*s'", (int)MIN(t->len, (size_t)40), t->s);
		return tmp;
	}
}

static int unexpected(struct parser *p, const char *wanted)
{
	char tmp[64];
	struct tok *t = peek(p);

	return perr(p, t->pos, "expected %s, found %s", wanted, tok_desc(t, tmp, sizeof(tmp)));
}

static int expect_op(struct parser *p, const char *op)
{
	char want[16];

	if (accept_op(p, op))
		return 0;
	snprintf(want, sizeof(want), "'%s'", op);
	return unexpected(p, want);
}

static struct node *node_new(struct parser *p, enum nkind kind, size_t pos)
{
	struct node *n = arena_alloc(&p->t->arena, sizeof(*n));
	n->kind = kind;
	n->pos = pos;
	return n;
}

static int enter(struct parser *p, size_t pos)
{
	if (++p->nest > MAX_NEST)
		return perr(p, pos, "nested more than %d deep", MAX_NEST);
	return 0;
}

static struct node *parse_expr(struct parser *p);
static struct node *parse_or(struct parser *p);
static struct node *parse_unary(struct parser *p, int with_filter);

/* "(" already consumed: positional and keyword arguments up to ")", checked
 * against the callable's table entry. */
static int parse_args(struct parser *p, const struct callable *c, const char *what, size_t pos,
                      struct node **head)
{
	struct node **tail = head;
	int npos = 0;

	while (!accept_op(p, ")")) {
		const char *kw = NULL;
		struct tok *t = peek(p);
		if (t->kind == K_NAME && is_op(&p->tk[p->i + 1], "=")) {
			kw = t->s;
			if (strcmp(c->kws, "*")) {
				const char *k = strstr(c->kws, kw);
				size_t kl = strlen(kw);
				if (!k || (k != c->kws && k[-1] != ' ') ||
				    (k[kl] && k[kl] != ' ')) {
					return perr(
					    p, t->pos,
					    "keyword argument \"%s\" of %s \"%s\" is not supported",
					    kw, what, c->name);
				}
			}
			p->i += 2;
		}
		struct node *a = parse_expr(p);
		if (!a)
			return -EINVAL;
		if (kw) {
			a->kw = kw;
		} else {
			for (struct node *q = *head; q; q = q->next)
				if (q->kw)
					return perr(p, a->pos,
					            "positional argument after a keyword argument");
			npos++;
		}
		*tail = a;
		tail = &a->next;
		if (!accept_op(p, ",")) {
			if (expect_op(p, ")"))
				return -EINVAL;
			break;
		}
	}
	if (npos < c->min || npos > c->max) {
		if (c->min == c->max)
			return perr(p, pos, "%s \"%s\" takes %d argument%s, not %d", what, c->name,
			            c->min, c->min == 1 ? "" : "s", npos);
		return perr(p, pos, "%s \"%s\" takes %d to %d arguments, not %d", what, c->name,
		            c->min, c->max, npos);
	}
	return 0;
}

static int parse_list_items(struct parser *p, const char *close, struct node **items)
{
	struct node **tail = items;

	while (!accept_op(p, close)) {
		struct node *a = parse_expr(p);
		if (!a)
			return -EINVAL;
		*tail = a;
		tail = &a->next;
		if (!accept_op(p, ",")) {
			if (expect_op(p, close))
				return -EINVAL;
			break;
		}
	}
	return 0;
}

static struct node *parse_primary(struct parser *p)
{
	struct tok *t = peek(p);
	struct node *n;

	if (enter(p, t->pos))
		return NULL;
	switch (t->kind) {
	case K_NAME: {
		p->i++;
		if (!strcmp(t->s, "true") || !strcmp(t->s, "True") || !strcmp(t->s, "false") ||
		    !strcmp(t->s, "False") || !strcmp(t->s, "none") || !strcmp(t->s, "None")) {
			n = node_new(p, E_LIT, t->pos);
			n->lit = t->s[0] == 't' || t->s[0] == 'T'   ? json_true()
			         : t->s[0] == 'f' || t->s[0] == 'F' ? json_false()
			                                            : json_null();
			break;
		}
		if (is_op(peek(p), "(")) {
			const struct callable *c = callable_find(fns, ARRAY_SIZE(fns), t->s);
			if (!c) {
				perr(p, t->pos, "function \"%s\" is not supported", t->s);
				return NULL;
			}
			p->i++;
			n = node_new(p, E_CALL, t->pos);
			n->op = c->id;
			if (parse_args(p, c, "function", t->pos, &n->args))
				return NULL;
			break;
		}
		n = node_new(p, E_NAME, t->pos);
		n->name = t->s;
		break;
	}
	case K_STRING: {
		p->i++;
		n = node_new(p, E_LIT, t->pos);
		n->lit = t->lit;
		if (peek(p)->kind == K_STRING) {
			/* adjacent literals concatenate, as in Python */
			struct buf b;
			buf_init(&b, MAX_STR);
			while (peek(p)->kind == K_STRING) {
				json_t *s = peek(p)->lit;
				if (buf_append(&b, json_string_value(s), json_string_length(s))) {
					buf_release(&b);
					perr(p, t->pos, "string literal too long");
					return NULL;
				}
				p->i++;
			}
			json_t *s = t->lit;
			struct buf all;
			buf_init(&all, BUF_UNLIMITED);
			buf_append(&all, json_string_value(s), json_string_length(s));
			buf_append(&all, b.data ? b.data : "", b.len);
			n->lit = lit_keep(p, json_stringn_nocheck(all.data, all.len));
			buf_release(&b);
			buf_release(&all);
		}
		break;
	}
	case K_NUMBER:
		p->i++;
		n = node_new(p, E_LIT, t->pos);
		n->lit = t->lit;
		break;
	case K_OP:
		if (accept_op(p, "(")) {
			if (accept_op(p, ")")) {
				n = node_new(p, E_LIST, t->pos);
				break;
			}
			n = parse_expr(p);
			if (!n)
				return NULL;
			if (accept_op(p, ",")) {
				struct node *l = node_new(p, E_LIST, t->pos);
				l->args = n;
				if (parse_list_items(p, ")", &n->next))
					return NULL;
				n = l;
			} else if (expect_op(p, ")")) {
				return NULL;
			}
			break;
		}
		if (accept_op(p, "[")) {
			n = node_new(p, E_LIST, t->pos);
			if (parse_list_items(p, "]", &n->args))
				return NULL;
			break;
		}
		if (accept_op(p, "{")) {
			struct node **tail;
			n = node_new(p, E_DICT, t->pos);
			tail = &n->args;
			while (!accept_op(p, "}")) {
				struct node *pair = node_new(p, E_PAIR, peek(p)->pos);
				if (!(pair->a = parse_expr(p)) || expect_op(p, ":") ||
				    !(pair->b = parse_expr(p)))
					return NULL;
				*tail = pair;
				tail = &pair->next;
				if (!accept_op(p, ",")) {
					if (expect_op(p, "}"))
						return NULL;
					break;
				}
			}
			break;
		}
		/* fall through */
	default:
		unexpected(p, "an expression");
		return NULL;
	}
	p->nest--;
	return n;
}

static struct node *parse_postfix(struct parser *p, struct node *n)
{
	for (;;) {
		struct tok *t = peek(p);
		if (accept_op(p, ".")) {
			struct tok *name = peek(p);
			if (name->kind == K_NUMBER && json_is_integer(name->lit)) {
				struct node *x = node_new(p, E_INDEX, t->pos);
				p->i++;
				x->a = n;
				x->b = node_new(p, E_LIT, name->pos);
				x->b->lit = name->lit;
				n = x;
				continue;
			}
			if (name->kind != K_NAME) {
				unexpected(p, "an attribute name");
				return NULL;
			}
			p->i++;
			if (accept_op(p, "(")) {
				const struct callable *c =
				    callable_find(methods, ARRAY_SIZE(methods), name->s);
				if (!c) {
					perr(p, name->pos, "method \"%s\" is not supported",
					     name->s);
					return NULL;
				}
				struct node *m = node_new(p, E_METHOD, name->pos);
				m->op = c->id;
				m->a = n;
				if (parse_args(p, c, "method", name->pos, &m->args))
					return NULL;
				n = m;
				continue;
			}
			struct node *x = node_new(p, E_ATTR, t->pos);
			x->a = n;
			x->name = name->s;
			n = x;
			continue;
		}
		if (accept_op(p, "[")) {
			struct node *x = node_new(p, E_INDEX, t->pos);
			struct node *parts[3] = {NULL, NULL, NULL};
			int k = 0, slice = 0;
			x->a = n;
			for (;;) {
				if (!is_op(peek(p), ":") && !is_op(peek(p), "]")) {
					if (!(parts[k] = parse_expr(p)))
						return NULL;
				}
				if (k < 2 && accept_op(p, ":")) {
					slice = 1;
					k++;
					continue;
				}
				if (expect_op(p, "]"))
					return NULL;
				break;
			}
			if (slice) {
				x->kind = E_SLICE;
				x->b = parts[0];
				x->c = parts[1];
				x->d = parts[2];
			} else if (!parts[0]) {
				unexpected(p, "a subscript");
				return NULL;
			} else {
				x->b = parts[0];
			}
			n = x;
			continue;
		}
		if (is_op(t, "(")) {
			perr(p, t->pos, "calling this expression is not supported");
			return NULL;
		}
		return n;
	}
}

static struct node *parse_filters(struct parser *p, struct node *n)
{
	for (;;) {
		struct tok *t = peek(p);
		if (accept_op(p, "|")) {
			struct tok *name = peek(p);
			if (name->kind != K_NAME) {
				unexpected(p, "a filter name");
				return NULL;
			}
			p->i++;
			const struct callable *c =
			    callable_find(filters, ARRAY_SIZE(filters), name->s);
			if (!c) {
				perr(p, name->pos, "filter \"%s\" is not supported", name->s);
				return NULL;
			}
			struct node *f = node_new(p, E_FILTER, name->pos);
			f->op = c->id;
			f->a = n;
			if (accept_op(p, "(")) {
				if (parse_args(p, c, "filter", name->pos, &f->args))
					return NULL;
			} else if (c->min > 0) {
				perr(p, name->pos, "filter \"%s\" needs arguments", name->s);
				return NULL;
			}
			n = f;
			continue;
		}
		if (accept_name(p, "is")) {
			int neg = accept_name(p, "not");
			struct tok *name = peek(p);
			const struct callable *c;
			if (name->kind != K_NAME) {
				unexpected(p, "a test name");
				return NULL;
			}
			p->i++;
			/* "none", "true", "false" are names here, not literals */
			c = callable_find(tests, ARRAY_SIZE(tests), name->s);
			if (!c && !strcmp(name->s, "None"))
				c = callable_find(tests, ARRAY_SIZE(tests), "none");
			if (!c) {
				perr(p, name->pos, "test \"%s\" is not supported", name->s);
				return NULL;
			}
			if (is_op(peek(p), "(")) {
				perr(p, peek(p)->pos, "test \"%s\" takes no arguments", name->s);
				return NULL;
			}
			struct node *x = node_new(p, E_TEST, t->pos);
			x->op = c->id;
			x->neg = neg;
			x->a = n;
			n = x;
			continue;
		}
		return n;
	}
}

static struct node *parse_unary(struct parser *p, int with_filter)
{
	struct tok *t = peek(p);
	struct node *n;

	if (enter(p, t->pos))
		return NULL;
	if (accept_op(p, "-") || accept_op(p, "+")) {
		n = node_new(p, is_op(t, "-") ? E_NEG : E_POS, t->pos);
		if (!(n->a = parse_unary(p, 0)))
			return NULL;
	} else if (!(n = parse_primary(p))) {
		return NULL;
	}
	if (!(n = parse_postfix(p, n)))
		return NULL;
	if (with_filter && !(n = parse_filters(p, n)))
		return NULL;
	p->nest--;
	return n;
}

struct opdef {
	const char *tok;
	enum binop op;
};

static struct node *parse_binary(struct parser *p, int level);

static const struct opdef level_ops[][4] = {
    {{"+", OP_ADD}, {"-", OP_SUB}},                                 /* math1 */
    {{"~", OP_CAT}},                                                /* concat */
    {{"*", OP_MUL}, {"/", OP_DIV}, {"//", OP_FDIV}, {"%", OP_MOD}}, /* math2 */
    {{"**", OP_POW}},                                               /* pow */
};

/* Levels 0..3 of level_ops, tighter as the level grows; past them, unary. */
static struct node *parse_binary(struct parser *p, int level)
{
	struct node *n;

	if (level == (int)ARRAY_SIZE(level_ops))
		return parse_unary(p, 1);
	if (enter(p, peek(p)->pos) || !(n = parse_binary(p, level + 1)))
		return NULL;
	for (;;) {
		const struct opdef *d = NULL;
		for (int k = 0; k < 4 && level_ops[level][k].tok; k++)
			if (is_op(peek(p), level_ops[level][k].tok))
				d = &level_ops[level][k];
		if (!d)
			break;
		struct node *x = node_new(p, E_BIN, peek(p)->pos);
		p->i++;
		x->op = d->op;
		x->a = n;
		if (!(x->b = parse_binary(p, level + 1)))
			return NULL;
		n = x;
	}
	p->nest--;
	return n;
}

static int compare_op(struct parser *p, enum binop *op)
{
	static const struct opdef cmp[] = {
	    {"==", OP_EQ}, {"!=", OP_NE}, {"<=", OP_LE}, {">=", OP_GE}, {"<", OP_LT}, {">", OP_GT},
	};
	struct tok *t = peek(p);

	for (size_t k = 0; k < ARRAY_SIZE(cmp); k++)
		if (is_op(t, cmp[k].tok)) {
			p->i++;
			*op = cmp[k].op;
			return 1;
		}
	if (is_name(t, "in")) {
		p->i++;
		*op = OP_IN;
		return 1;
	}
	if (is_name(t, "not") && is_name(&p->tk[p->i + 1], "in")) {
		p->i += 2;
		*op = OP_NOTIN;
		return 1;
	}
	return 0;
}

static struct node *parse_compare(struct parser *p)
{
	struct node *n = parse_binary(p, 0);
	enum binop op;
	size_t pos = peek(p)->pos;

	if (!n || !compare_op(p, &op))
		return n;
	struct node *x = node_new(p, E_BIN, pos);
	x->op = op;
	x->a = n;
	if (!(x->b = parse_binary(p, 0)))
		return NULL;
	pos = peek(p)->pos;
	if (compare_op(p, &op)) {
		perr(p, pos, "chained comparison is not supported");
		return NULL;
	}
	return x;
}

static struct node *parse_not(struct parser *p)
{
	struct tok *t = peek(p);
	struct node *n;

	if (is_name(t, "not") && !is_name(&p->tk[p->i + 1], "in")) {
		p->i++;
		if (enter(p, t->pos))
			return NULL;
		n = node_new(p, E_NOT, t->pos);
		if (!(n->a = parse_not(p)))
			return NULL;
		p->nest--;
		return n;
	}
	return parse_compare(p);
}

static struct node *parse_logic(struct parser *p, int is_or)
{
	struct node *n = is_or ? parse_logic(p, 0) : parse_not(p);

	while (n && is_name(peek(p), is_or ? "or" : "and")) {
		struct node *x = node_new(p, is_or ? E_OR : E_AND, peek(p)->pos);
		p->i++;
		x->a = n;
		if (!(x->b = is_or ? parse_logic(p, 0) : parse_not(p)))
			return NULL;
		n = x;
	}
	return n;
}

static struct node *parse_or(struct parser *p)
{
	return parse_logic(p, 1);
}

static struct node *parse_expr(struct parser *p)
{
	struct node *n;

	if (enter(p, peek(p)->pos) || !(n = parse_or(p)))
		return NULL;
	while (is_name(peek(p), "if")) {
		struct node *x = node_new(p, E_COND, peek(p)->pos);
		p->i++;
		x->b = n;
		if (!(x->a = parse_or(p)))
			return NULL;
		if (accept_name(p, "else") && !(x->c = parse_expr(p)))
			return NULL;
		n = x;
	}
	p->nest--;
	return n;
}

/* ---- statements ---- */

static struct node *parse_body(struct parser *p, const char *const *ends, const char *opener,
                               size_t open_pos);

static int expect_block_end(struct parser *p)
{
	if (peek(p)->kind == K_BLOCK_END) {
		p->i++;
		return 0;
	}
	return unexpected(p, "'%}'");
}

/* Positioned on the keyword after "{%" that ended a body. */
static const char *end_word(struct parser *p)
{
	return peek(p)->s;
}

static struct node *parse_if(struct parser *p, size_t pos)
{
	static const char *const ends[] = {"elif", "else", "endif", NULL};
	struct node *n = node_new(p, N_IF, pos);

	if (!(n->a = parse_expr(p)) || expect_block_end(p))
		return NULL;
	n->b = parse_body(p, ends, "if", pos);
	if (p->failed)
		return NULL;
	if (!strcmp(end_word(p), "elif")) {
		size_t epos = peek(p)->pos;
		p->i++;
		n->op = 1; /* c is the elif, not an else body */
		if (enter(p, epos) || !(n->c = parse_if(p, epos)))
			return NULL;
		p->nest--;
		return n; /* the nested if consumed "endif" */
	}
	if (!strcmp(end_word(p), "else")) {
		static const char *const ends2[] = {"endif", NULL};
		p->i++;
		if (expect_block_end(p))
			return NULL;
		n->c = parse_body(p, ends2, "if", pos);
		if (p->failed)
			return NULL;
	}
	p->i++; /* endif */
	if (expect_block_end(p))
		return NULL;
	return n;
}

static struct node *parse_for(struct parser *p, size_t pos)
{
	static const char *const ends[] = {"else", "endfor", NULL};
	struct node *n = node_new(p, N_FOR, pos);
	struct node **tail = &n->args;

	do {
		struct tok *t = peek(p);
		if (t->kind != K_NAME) {
			unexpected(p, "a loop variable");
			return NULL;
		}
		p->i++;
		struct node *v = node_new(p, E_NAME, t->pos);
		v->name = t->s;
		*tail = v;
		tail = &v->next;
	} while (accept_op(p, ","));
	if (!accept_name(p, "in")) {
		unexpected(p, "'in'");
		return NULL;
	}
	if (!(n->a = parse_or(p)))
		return NULL;
	if (accept_name(p, "if") && !(n->d = parse_or(p)))
		return NULL;
	if (is_name(peek(p), "recursive")) {
		perr(p, peek(p)->pos, "recursive loops are not supported");
		return NULL;
	}
	if (expect_block_end(p))
		return NULL;
	p->loops++;
	n->b = parse_body(p, ends, "for", pos);
	p->loops--;
	if (p->failed)
		return NULL;
	if (!strcmp(end_word(p), "else")) {
		static const char *const ends2[] = {"endfor", NULL};
		p->i++;
		if (expect_block_end(p))
			return NULL;
		n->c = parse_body(p, ends2, "for", pos);
		if (p->failed)
			return NULL;
	}
	p->i++;
	if (expect_block_end(p))
		return NULL;
	return n;
}

static struct node *parse_set(struct parser *p, size_t pos)
{
	struct node *n = node_new(p, N_SET, pos);
	struct tok *t = peek(p);

	if (t->kind != K_NAME) {
		unexpected(p, "a variable name");
		return NULL;
	}
	p->i++;
	n->name = t->s;
	if (accept_op(p, ".")) {
		struct tok *a = peek(p);
		if (a->kind != K_NAME) {
			unexpected(p, "an attribute name");
			return NULL;
		}
		p->i++;
		n->attr = a->s;
	}
	if (is_op(peek(p), ",")) {
		perr(p, peek(p)->pos, "assigning to several names is not supported");
		return NULL;
	}
	if (peek(p)->kind == K_BLOCK_END) {
		perr(p, pos, "block set ({%% set x %%}...{%% endset %%}) is not supported");
		return NULL;
	}
	if (expect_op(p, "=") || !(n->a = parse_expr(p)) || expect_block_end(p))
		return NULL;
	return n;
}

static struct node *parse_statement(struct parser *p)
{
	struct tok *kw = peek(p);
	size_t pos = kw->pos;
	struct node *n;

	if (kw->kind != K_NAME) {
		unexpected(p, "a statement name");
		return NULL;
	}
	p->i++;
	if (enter(p, pos))
		return NULL;
	if (!strcmp(kw->s, "if")) {
		n = parse_if(p, pos);
	} else if (!strcmp(kw->s, "for")) {
		n = parse_for(p, pos);
	} else if (!strcmp(kw->s, "set")) {
		n = parse_set(p, pos);
	} else if (!strcmp(kw->s, "break") || !strcmp(kw->s, "continue")) {
		if (!p->loops) {
			perr(p, pos, "\"%s\" outside a for loop", kw->s);
			return NULL;
		}
		n = node_new(p, kw->s[0] == 'b' ? N_BREAK : N_CONTINUE, pos);
		if (expect_block_end(p))
			return NULL;
	} else if (!strcmp(kw->s, "generation")) {
		/* transformers' assistant-mask marker: renders its body */
		static const char *const ends[] = {"endgeneration", NULL};
		if (expect_block_end(p))
			return NULL;
		n = node_new(p, N_IF, pos);
		n->a = node_new(p, E_LIT, pos);
		n->a->lit = json_true();
		n->b = parse_body(p, ends, "generation", pos);
		if (p->failed)
			return NULL;
		p->i++;
		if (expect_block_end(p))
			return NULL;
	} else {
		perr(p, pos, "statement \"%s\" is not supported", kw->s);
		return NULL;
	}
	p->nest--;
	return n;
}

/* Statements up to "{% <one of ends> " (left with the keyword next) or the
 * end of the template (an error when ends is not empty). */
static struct node *parse_body(struct parser *p, const char *const *ends, const char *opener,
                               size_t open_pos)
{
	struct node *head = NULL, **tail = &head;

	for (;;) {
		struct tok *t = peek(p);
		struct node *n = NULL;
		if (t->kind == K_EOF) {
			if (ends && ends[0]) {
				unsigned line, col;
				where(p->src, p->len, open_pos, &line, &col);
				perr(p, t->pos,
				     "\"%s\" opened at line %u, column %u is never closed", opener,
				     line, col);
			}
			return head;
		}
		p->i++;
		if (t->kind == K_TEXT) {
			n = node_new(p, N_TEXT, t->pos);
			n->text = t->s; /* in the template's copy of the source */
			n->text_len = t->len;
		} else if (t->kind == K_VAR_BEGIN) {
			n = node_new(p, N_OUT, t->pos);
			if (!(n->a = parse_expr(p)))
				return NULL;
			if (peek(p)->kind != K_VAR_END) {
				unexpected(p, "'}}'");
				return NULL;
			}
			p->i++;
		} else if (t->kind == K_BLOCK_BEGIN) {
			struct tok *kw = peek(p);
			if (kw->kind == K_NAME) {
				for (size_t k = 0; ends && ends[k]; k++)
					if (!strcmp(kw->s, ends[k]))
						return head;
				if (!strcmp(kw->s, "elif") || !strcmp(kw->s, "else") ||
				    !strncmp(kw->s, "end", 3)) {
					perr(p, kw->pos, "unexpected \"%s\"", kw->s);
					return NULL;
				}
			}
			if (!(n = parse_statement(p)))
				return NULL;
		} else {
			unexpected(p, "text or a tag");
			return NULL;
		}
		*tail = n;
		tail = &n->next;
	}
}

void tmpl_free(struct tmpl *t)
{
	if (!t)
		return;
	while (t->arena) {
		struct ablock *b = t->arena;
		t->arena = b->next;
		free(b);
	}
	json_decref(t->lits);
	free(t);
}

int tmpl_parse(struct tmpl **out, const char *src, size_t len, char *err, size_t errlen)
{
	struct tmpl *t = xcalloc(1, sizeof(*t));
	struct parser p;

	*out = NULL;
	if (errlen)
		err[0] = 0;
	t->lits = json_array();
	t->src = arena_strndup(&t->arena, src, len);
	t->src_len = len;
	memset(&p, 0, sizeof(p));
	p.t = t;
	p.src = t->src;
	p.len = len;
	p.err = err;
	p.errlen = errlen;
	for (size_t i = 0; i < len;) {
		int n = utf8_seq_len(src + i, len - i);
		if (!n) {
			perr(&p, i, "the template is not valid UTF-8");
			goto fail;
		}
		i += (size_t)n;
	}
	if (lex(&p))
		goto fail;
	t->body = parse_body(&p, NULL, NULL, 0);
	if (p.failed)
		goto fail;
	free(p.tk);
	*out = t;
	return 0;
fail:
	free(p.tk);
	tmpl_free(t);
	return -EINVAL;
}

/* ---- values ---- */

struct rs {
	const struct tmpl *t;
	json_t *vars;
	json_t *scopes[MAX_NEST + 2];
	int n_scopes;
	json_t *nss[MAX_NAMESPACES]; /* borrowed: namespace() objects (for set ns.x) */
	int n_nss;
	struct buf *out;
	char *err;
	size_t errlen;
	unsigned long iters, work;
	int ctl; /* N_BREAK or N_CONTINUE pending */
};

static int __attribute__((format(printf, 3, 4)))
rerr(struct rs *st, const struct node *n, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vposerr(st->err, st->errlen, st->t->src, st->t->src_len, n->pos, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

static int charge(struct rs *st, const struct node *n, size_t units)
{
	st->work += units;
	if (st->work > MAX_WORK)
		return rerr(st, n, "the template does more than %lu steps of work", MAX_WORK);
	return 0;
}

static const char *type_name(const json_t *v)
{
	if (!v)
		return "undefined";
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		return "dict";
	case JSON_ARRAY:
		return "list";
	case JSON_STRING:
		return "str";
	case JSON_INTEGER:
		return "int";
	case JSON_REAL:
		return "float";
	case JSON_TRUE:
	case JSON_FALSE:
		return "bool";
	default:
		return "NoneType";
	}
}

static int truthy(const json_t *v)
{
	if (!v)
		return 0;
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		return json_object_size(v) > 0;
	case JSON_ARRAY:
		return json_array_size(v) > 0;
	case JSON_STRING:
		return json_string_length(v) > 0;
	case JSON_INTEGER:
		return json_integer_value(v) != 0;
	case JSON_REAL:
		return json_real_value(v) != 0;
	case JSON_TRUE:
		return 1;
	default:
		return 0;
	}
}

/* Python's numbers: int, float and bool (an int) */
static int is_num(const json_t *v)
{
	return v && (json_is_number(v) || json_is_boolean(v));
}

static int is_intlike(const json_t *v)
{
	return v && (json_is_integer(v) || json_is_boolean(v));
}

static int64_t int_of(const json_t *v)
{
	return json_is_boolean(v) ? json_is_true(v) : json_integer_value(v);
}

static double real_of(const json_t *v)
{
	return json_is_real(v) ? json_real_value(v) : (double)int_of(v);
}

static json_t *str_new(const char *s, size_t n)
{
	return json_stringn_nocheck(n ? s : "", n);
}

static size_t cp_step(const char *s, size_t n, size_t i)
{
	int k = utf8_seq_len(s + i, n - i);
	return i + (k ? (size_t)k : 1);
}

static size_t cp_count(const char *s, size_t n)
{
	size_t c = 0;
	for (size_t i = 0; i < n; i = cp_step(s, n, i))
		c++;
	return c;
}

/* A float as Python's repr writes it: the shortest digits that read back,
 * positional for exponents -4..15, else d.ddde+XX. */
static void fmt_real(double d, char *out, size_t n, int json)
{
	char e[40], digits[24];
	size_t nd = 0, o = 0;
	int exp, p;

	if (isnan(d)) {
		snprintf(out, n, "%s", json ? "NaN" : "nan");
		return;
	}
	if (isinf(d)) {
		snprintf(out, n, "%s%s", d < 0 ? "-" : "", json ? "Infinity" : "inf");
		return;
	}
	for (p = 1; p < 17; p++) {
		snprintf(e, sizeof(e), "%.*e", p - 1, d);
		if (strtod(e, NULL) == d)
			break;
	}
	snprintf(e, sizeof(e), "%.*e", p - 1, d);
	const char *c = e;
	char tmp[64];
	if (*c == '-')
		tmp[o++] = *c++;
	for (; *c && *c != 'e'; c++)
		if (*c != '.')
			digits[nd++] = *c;
	exp = atoi(c + 1);
	while (nd > 1 && digits[nd - 1] == '0')
		nd--;
	if (exp >= -4 && exp < 16) {
		if (exp < 0) {
			tmp[o++] = '0';
			tmp[o++] = '.';
			for (int k = 0; k < -exp - 1; k++)
				tmp[o++] = '0';
			for (size_t k = 0; k < nd; k++)
				tmp[o++] = digits[k];
		} else {
			for (int k = 0; k <= exp; k++)
				tmp[o++] = (size_t)k < nd ? digits[k] : '0';
			tmp[o++] = '.';
			if ((size_t)exp + 1 < nd)
				for (size_t k = (size_t)exp + 1; k < nd; k++)
					tmp[o++] = digits[k];
			else
				tmp[o++] = '0';
		}
		tmp[o] = 0;
	} else {
		tmp[o++] = digits[0];
		if (nd > 1) {
			tmp[o++] = '.';
			for (size_t k = 1; k < nd; k++)
				tmp[o++] = digits[k];
		}
		tmp[o] = 0;
		snprintf(tmp + o, sizeof(tmp) - o, "e%c%02d", exp < 0 ? '-' : '+', abs(exp));
	}
	snprintf(out, n, "%s", tmp);
}

static int py_repr_str(struct buf *b, const char *s, size_t n)
{
	char q = memchr(s, '\'', n) && !memchr(s, '"', n) ? '"' : '\'';
	int rc = buf_append(b, &q, 1);

	for (size_t i = 0; i < n && !rc; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '\\' || c == (unsigned char)q)
			rc = buf_printf(b, "\\%c", c);
		else if (c == '\n')
			rc = buf_puts(b, "\\n");
		else if (c == '\r')
			rc = buf_puts(b, "\\r");
		else if (c == '\t')
			rc = buf_puts(b, "\\t");
		else if (c < 0x20 || c == 0x7f)
			rc = buf_printf(b, "\\x%02x", c);
		else
			rc = buf_append(b, &c, 1);
	}
	return rc ? rc : buf_append(b, &q, 1);
}

/* Python's str(v) (repr=0) or repr(v); undefined writes nothing. */
static int py_write(struct buf *b, const json_t *v, int repr)
{
	char num[64];
	const char *key;
	json_t *x;
	size_t i;
	int rc = 0;

	if (!v)
		return 0;
	switch (json_typeof(v)) {
	case JSON_STRING:
		if (repr)
			return py_repr_str(b, json_string_value(v), json_string_length(v));
		return buf_append(b, json_string_value(v), json_string_length(v));
	case JSON_INTEGER:
		return buf_printf(b, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
	case JSON_REAL:
		fmt_real(json_real_value(v), num, sizeof(num), 0);
		return buf_puts(b, num);
	case JSON_TRUE:
		return buf_puts(b, "True");
	case JSON_FALSE:
		return buf_puts(b, "False");
	case JSON_NULL:
		return buf_puts(b, "None");
	case JSON_ARRAY:
		rc = buf_puts(b, "[");
		json_array_foreach(v, i, x)
		{
			if (!rc && i)
				rc = buf_puts(b, ", ");
			if (!rc)
				rc = py_write(b, x, 1);
		}
		return rc ? rc : buf_puts(b, "]");
	case JSON_OBJECT:
		rc = buf_puts(b, "{");
		i = 0;
		json_object_foreach((json_t *)v, key, x)
		{
			if (!rc && i++)
				rc = buf_puts(b, ", ");
			if (!rc)
				rc = py_repr_str(b, key, strlen(key));
			if (!rc)
				rc = buf_puts(b, ": ");
			if (!rc)
				rc = py_write(b, x, 1);
		}
		return rc ? rc : buf_puts(b, "}");
	}
	return 0;
}

static int json_str(struct buf *b, const char *s, size_t n)
{
	int rc = buf_append(b, "\"", 1);

	for (size_t i = 0; i < n && !rc; i++) {
		unsigned char c = (unsigned char)s[i];
		switch (c) {
		case '"':
			rc = buf_puts(b, "\\\"");
			break;
		case '\\':
			rc = buf_puts(b, "\\\\");
			break;
		case '\n':
			rc = buf_puts(b, "\\n");
			break;
		case '\r':
			rc = buf_puts(b, "\\r");
			break;
		case '\t':
			rc = buf_puts(b, "\\t");
			break;
		case '\b':
			rc = buf_puts(b, "\\b");
			break;
		case '\f':
			rc = buf_puts(b, "\\f");
			break;
		default:
			rc = c < 0x20 ? buf_printf(b, "\\u%04x", c) : buf_append(b, &c, 1);
		}
	}
	return rc ? rc : buf_append(b, "\"", 1);
}

static int json_nl(struct buf *b, int indent, int level)
{
	int rc = buf_puts(b, "\n");
	for (int k = 0; !rc && k < indent * level; k++)
		rc = buf_puts(b, " ");
	return rc;
}

/* Python's json.dumps(v, ensure_ascii=False, indent=indent) (indent < 0:
 * None), which is what transformers' tojson filter calls. */
static int json_write(struct buf *b, const json_t *v, int indent, int level)
{
	char num[64];
	const char *key;
	json_t *x;
	size_t i, n;
	int rc = 0;

	switch (json_typeof(v)) {
	case JSON_STRING:
		return json_str(b, json_string_value(v), json_string_length(v));
	case JSON_INTEGER:
		return buf_printf(b, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
	case JSON_REAL:
		fmt_real(json_real_value(v), num, sizeof(num), 1);
		return buf_puts(b, num);
	case JSON_TRUE:
		return buf_puts(b, "true");
	case JSON_FALSE:
		return buf_puts(b, "false");
	case JSON_NULL:
		return buf_puts(b, "null");
	case JSON_ARRAY:
	case JSON_OBJECT:
		n = json_is_array(v) ? json_array_size(v) : json_object_size(v);
		if (!n)
			return buf_puts(b, json_is_array(v) ? "[]" : "{}");
		rc = buf_puts(b, json_is_array(v) ? "[" : "{");
		i = 0;
		if (json_is_array(v)) {
			json_array_foreach(v, i, x)
			{
				if (!rc && i)
					rc = buf_puts(b, indent < 0 ? ", " : ",");
				if (!rc && indent >= 0)
					rc = json_nl(b, indent, level + 1);
				if (!rc)
					rc = json_write(b, x, indent, level + 1);
			}
		} else {
			json_object_foreach((json_t *)v, key, x)
			{
				if (!rc && i++)
					rc = buf_puts(b, indent < 0 ? ", " : ",");
				if (!rc && indent >= 0)
					rc = json_nl(b, indent, level + 1);
				if (!rc)
					rc = json_str(b, key, strlen(key));
				if (!rc)
					rc = buf_puts(b, ": ");
				if (!rc)
					rc = json_write(b, x, indent, level + 1);
			}
		}
		if (!rc && indent >= 0)
			rc = json_nl(b, indent, level);
		return rc ? rc : buf_puts(b, json_is_array(v) ? "]" : "}");
	}
	return 0;
}

/* Python ==: numbers by value (True == 1), containers element by element;
 * undefined equals only undefined. */
static int veq(const json_t *a, const json_t *b)
{
	const char *key;
	json_t *x;
	size_t i;

	if (!a || !b)
		return a == b;
	if (is_num(a) && is_num(b)) {
		if (is_intlike(a) && is_intlike(b))
			return int_of(a) == int_of(b);
		return real_of(a) == real_of(b);
	}
	if (json_typeof(a) != json_typeof(b))
		return 0;
	switch (json_typeof(a)) {
	case JSON_STRING:
		return json_string_length(a) == json_string_length(b) &&
		       !memcmp(json_string_value(a), json_string_value(b), json_string_length(a));
	case JSON_ARRAY:
		if (json_array_size(a) != json_array_size(b))
			return 0;
		json_array_foreach(a, i, x) if (!veq(x, json_array_get(b, i))) return 0;
		return 1;
	case JSON_OBJECT:
		if (json_object_size(a) != json_object_size(b))
			return 0;
		json_object_foreach((json_t *)a, key,
		                    x) if (!veq(x, json_object_get(b, key))) return 0;
		return 1;
	default:
		return 1;
	}
}

/* A value string built in a scratch buffer, with the string ceiling. */
static int str_of(struct rs *st, const struct node *n, const json_t *v, json_t **out)
{
	struct buf b;

	if (v && json_is_string(v)) {
		*out = json_incref((json_t *)v);
		return 0;
	}
	buf_init(&b, MAX_STR);
	if (py_write(&b, v, 0)) {
		buf_release(&b);
		return rerr(st, n, "a string value exceeds %zu bytes", MAX_STR);
	}
	*out = str_new(b.data, b.len);
	buf_release(&b);
	return charge(st, n, json_string_length(*out));
}

/* Values the template builds nest at most MAX_VALUE_DEPTH deep. */
static int depth_ok(struct rs *st, const json_t *v, int left)
{
	const char *key;
	json_t *x;
	size_t i;

	if (!v || !(json_is_array(v) || json_is_object(v)))
		return 1;
	if (left <= 0)
		return 0;
	st->work++;
	if (json_is_array(v)) {
		json_array_foreach(v, i, x) if (!depth_ok(st, x, left - 1)) return 0;
	} else {
		json_object_foreach((json_t *)v, key, x) if (!depth_ok(st, x, left - 1)) return 0;
	}
	return 1;
}

static int check_built(struct rs *st, const struct node *n, const json_t *v)
{
	if (!depth_ok(st, v, MAX_VALUE_DEPTH))
		return rerr(st, n, "a value nests more than %d deep", MAX_VALUE_DEPTH);
	return charge(st, n, 0);
}

/* The elements a for loop or a filter sees: a list's items, a dict's keys,
 * a string's characters; undefined is empty. */
static int items_of(struct rs *st, const struct node *n, json_t *v, json_t **out)
{
	const char *key;
	json_t *x, *arr;
	size_t i;

	if (!v) {
		*out = json_array();
		return 0;
	}
	switch (json_typeof(v)) {
	case JSON_ARRAY:
		*out = json_incref(v);
		return 0;
	case JSON_OBJECT:
		arr = json_array();
		json_object_foreach(v, key, x) json_array_append_new(arr, json_string_nocheck(key));
		*out = arr;
		return charge(st, n, json_object_size(v));
	case JSON_STRING: {
		const char *s = json_string_value(v);
		size_t len = json_string_length(v);
		arr = json_array();
		for (i = 0; i < len;) {
			size_t j = cp_step(s, len, i);
			json_array_append_new(arr, str_new(s + i, j - i));
			i = j;
		}
		*out = arr;
		return charge(st, n, len);
	}
	default:
		return rerr(st, n, "'%s' object is not iterable", type_name(v));
	}
}

static json_t *pairs_of(json_t *obj)
{
	json_t *arr = json_array(), *x;
	const char *key;

	json_object_foreach(obj, key, x)
	{
		json_t *pair = json_array();
		json_array_append_new(pair, json_string_nocheck(key));
		json_array_append(pair, x);
		json_array_append_new(arr, pair);
	}
	return arr;
}

/* ---- expressions ---- */

static int ev(struct rs *st, const struct node *n, json_t **out);

struct args {
	json_t *v[6];
	const char *kw[6];
	int n;
};

static void args_free(struct args *a)
{
	for (int i = 0; i < a->n; i++)
		json_decref(a->v[i]);
}

static int args_eval(struct rs *st, const struct node *list, struct args *a)
{
	memset(a, 0, sizeof(*a));
	for (const struct node *x = list; x; x = x->next) {
		if (a->n == (int)ARRAY_SIZE(a->v)) {
			args_free(a);
			return rerr(st, x, "too many arguments");
		}
		int rc = ev(st, x, &a->v[a->n]);
		a->kw[a->n++] = x->kw;
		if (rc) {
			args_free(a);
			return rc;
		}
	}
	return 0;
}

/* The idx-th positional argument, else the keyword one; borrowed. */
static json_t *arg(const struct args *a, int idx, const char *kw, int *given)
{
	int k = 0;

	for (int i = 0; i < a->n; i++) {
		if (!a->kw[i] && k++ == idx) {
			if (given)
				*given = 1;
			return a->v[i];
		}
		if (a->kw[i] && kw && !strcmp(a->kw[i], kw)) {
			if (given)
				*given = 1;
			return a->v[i];
		}
	}
	if (given)
		*given = 0;
	return NULL;
}

static json_t *lookup(struct rs *st, const char *name)
{
	json_t *v;

	for (int i = st->n_scopes - 1; i >= 0; i--)
		if ((v = json_object_get(st->scopes[i], name)))
			return json_incref(v);
	if ((v = json_object_get(st->vars, name)))
		return json_incref(v);
	if (callable_find(fns, ARRAY_SIZE(fns), name))
		return json_sprintf("<built-in function %s>", name);
	return NULL;
}

static int subscript(struct rs *st, const struct node *n, json_t *a, json_t *k, json_t **out)
{
	int64_t i;

	if (!a)
		return 0;
	if (json_is_object(a)) {
		if (k && json_is_string(k))
			*out = json_incref(json_object_get(a, json_string_value(k)));
		return 0;
	}
	if (!is_intlike(k))
		return 0;
	i = int_of(k);
	if (json_is_array(a)) {
		int64_t size = (int64_t)json_array_size(a);
		if (i < 0)
			i += size;
		if (i >= 0 && i < size)
			*out = json_incref(json_array_get(a, (size_t)i));
		return 0;
	}
	if (json_is_string(a)) {
		const char *s = json_string_value(a);
		size_t len = json_string_length(a), at = 0;
		int64_t count = (int64_t)cp_count(s, len);
		if (i < 0)
			i += count;
		if (i < 0 || i >= count)
			return 0;
		while (i-- > 0)
			at = cp_step(s, len, at);
		*out = str_new(s + at, cp_step(s, len, at) - at);
		return charge(st, n, len);
	}
	return 0;
}

static int slice_bound(struct rs *st, const struct node *n, json_t *v, int64_t dflt, int64_t size,
                       int64_t step, int64_t *out)
{
	int64_t x;

	if (!v || json_is_null(v)) {
		*out = dflt;
		return 0;
	}
	if (!is_intlike(v))
		return rerr(st, n, "slice indices must be integers or none, not '%s'",
		            type_name(v));
	x = int_of(v);
	if (x < 0) {
		x += size;
		if (x < 0)
			x = step < 0 ? -1 : 0;
	} else if (x >= size) {
		x = step < 0 ? size - 1 : size;
	}
	*out = x;
	return 0;
}

static int eval_slice(struct rs *st, const struct node *n, json_t **out)
{
	json_t *v[4] = {NULL, NULL, NULL, NULL};
	const struct node *src[4] = {n->a, n->b, n->c, n->d};
	size_t *offs = NULL;
	int64_t size, step = 1, lo, hi;
	int rc = 0;

	for (int k = 0; k < 4 && !rc; k++)
		if (src[k])
			rc = ev(st, src[k], &v[k]);
	if (rc || !v[0])
		goto done;
	if (!json_is_array(v[0]) && !json_is_string(v[0])) {
		rc = rerr(st, n, "'%s' object cannot be sliced", type_name(v[0]));
		goto done;
	}
	if (json_is_array(v[0])) {
		size = (int64_t)json_array_size(v[0]);
	} else {
		const char *s = json_string_value(v[0]);
		size_t len = json_string_length(v[0]), k = 0;
		size = (int64_t)cp_count(s, len);
		offs = xmalloc(((size_t)size + 1) * sizeof(*offs));
		for (size_t i = 0; i < len; i = cp_step(s, len, i))
			offs[k++] = i;
		offs[k] = len;
		if ((rc = charge(st, n, len)))
			goto done;
	}
	if (v[3] && !json_is_null(v[3])) {
		if (!is_intlike(v[3])) {
			rc = rerr(st, n, "slice indices must be integers or none, not '%s'",
			          type_name(v[3]));
			goto done;
		}
		step = int_of(v[3]);
		if (!step) {
			rc = rerr(st, n, "slice step cannot be zero");
			goto done;
		}
		step = step > size + 1 ? size + 1 : step < -size - 1 ? -size - 1 : step;
	}
	if ((rc = slice_bound(st, n, v[1], step > 0 ? 0 : size - 1, size, step, &lo)) ||
	    (rc = slice_bound(st, n, v[2], step > 0 ? size : -1, size, step, &hi)))
		goto done;
	if (json_is_array(v[0])) {
		json_t *r = json_array();
		for (int64_t i = lo; step > 0 ? i < hi : i > hi; i += step)
			json_array_append(r, json_array_get(v[0], (size_t)i));
		*out = r;
		rc = charge(st, n, json_array_size(r));
	} else {
		struct buf b;
		const char *s = json_string_value(v[0]);
		buf_init(&b, MAX_STR);
		for (int64_t i = lo; step > 0 ? i < hi : i > hi; i += step)
			buf_append(&b, s + offs[i], offs[i + 1] - offs[i]);
		*out = str_new(b.data, b.len);
		buf_release(&b);
	}
done:
	free(offs);
	for (int k = 0; k < 4; k++)
		json_decref(v[k]);
	return rc;
}

static int eval_container(struct rs *st, const struct node *n, json_t **out)
{
	json_t *c = n->kind == E_LIST ? json_array() : json_object();
	json_t *k = NULL, *v = NULL;
	int rc = 0;

	for (const struct node *x = n->args; x && !rc; x = x->next) {
		if (n->kind == E_LIST) {
			if (!(rc = ev(st, x, &v)))
				json_array_append_new(c, v ? v : json_null());
			continue;
		}
		if ((rc = ev(st, x->a, &k)))
			break;
		if (!k || !json_is_string(k) ||
		    memchr(json_string_value(k), 0, json_string_length(k)))
			rc = rerr(st, x, "dict keys must be strings, not '%s'", type_name(k));
		else if (!(rc = ev(st, x->b, &v)))
			json_object_set_new_nocheck(c, json_string_value(k), v ? v : json_null());
		json_decref(k);
	}
	if (!rc)
		rc = check_built(st, n, c);
	if (rc)
		json_decref(c);
	else
		*out = c;
	return rc;
}

static const char *op_name(int op)
{
	static const char *const names[] = {
	    "+",  "-",  "*", "/", "//", "%",  "**", "~",
	    "==", "!=", "<", ">", "<=", ">=", "in", "not in",
	};
	return names[op];
}

static int arith_int(struct rs *st, const struct node *n, int64_t x, int64_t y, json_t **out)
{
	int64_t r = 0;
	int ovf = 0;

	switch (n->op) {
	case OP_ADD:
		ovf = __builtin_add_overflow(x, y, &r);
		break;
	case OP_SUB:
		ovf = __builtin_sub_overflow(x, y, &r);
		break;
	case OP_MUL:
		ovf = __builtin_mul_overflow(x, y, &r);
		break;
	case OP_FDIV:
	case OP_MOD:
		if (!y)
			return rerr(st, n, "integer division or modulo by zero");
		if (y == -1) {
			ovf = n->op == OP_FDIV && x == INT64_MIN;
			r = n->op == OP_FDIV ? -x * !ovf : 0;
			break;
		}
		if (n->op == OP_FDIV) {
			r = x / y;
			if (x % y && ((x < 0) != (y < 0)))
				r--;
		} else {
			r = x % y;
			if (r && ((r < 0) != (y < 0)))
				r += y;
		}
		break;
	case OP_POW:
		if (y < 0) {
			*out = json_real(pow((double)x, (double)y));
			return 0;
		}
		/* by squaring: a square that overflows is always used later */
		r = 1;
		while (y > 0 && !ovf) {
			if (y & 1)
				ovf = __builtin_mul_overflow(r, x, &r);
			y >>= 1;
			if (y && !ovf)
				ovf = __builtin_mul_overflow(x, x, &x);
		}
		break;
	}
	if (ovf)
		return rerr(st, n, "integer overflow in '%s'", op_name(n->op));
	*out = json_integer(r);
	return 0;
}

static int arith(struct rs *st, const struct node *n, json_t *a, json_t *b, json_t **out)
{
	double x, y, r;

	if (n->op != OP_DIV && n->op != OP_POW && is_intlike(a) && is_intlike(b))
		return arith_int(st, n, int_of(a), int_of(b), out);
	if (n->op == OP_POW && is_intlike(a) && is_intlike(b))
		return arith_int(st, n, int_of(a), int_of(b), out);
	x = real_of(a);
	y = real_of(b);
	switch (n->op) {
	case OP_ADD:
		r = x + y;
		break;
	case OP_SUB:
		r = x - y;
		break;
	case OP_MUL:
		r = x * y;
		break;
	case OP_POW:
		r = pow(x, y);
		break;
	default:
		if (y == 0)
			return rerr(st, n, "division by zero");
		if (n->op == OP_DIV) {
			r = x / y;
		} else if (n->op == OP_FDIV) {
			r = floor(x / y);
		} else {
			r = fmod(x, y);
			if (r != 0 && ((r < 0) != (y < 0)))
				r += y;
		}
	}
	*out = json_real(r);
	return 0;
}

static int repeat(struct rs *st, const struct node *n, json_t *s, int64_t times, json_t **out)
{
	size_t len = json_string_length(s);
	struct buf b;

	if (times <= 0 || !len) {
		*out = str_new("", 0);
		return 0;
	}
	if ((uint64_t)times > MAX_STR / len)
		return rerr(st, n, "a string value exceeds %zu bytes", MAX_STR);
	buf_init(&b, MAX_STR);
	for (int64_t i = 0; i < times; i++)
		buf_append(&b, json_string_value(s), len);
	*out = str_new(b.data, b.len);
	buf_release(&b);
	return charge(st, n, len * (size_t)times);
}

static int concat(struct rs *st, const struct node *n, json_t *a, json_t *b, json_t **out)
{
	size_t la = json_string_length(a), lb = json_string_length(b);
	char *s;

	if (la + lb > MAX_STR)
		return rerr(st, n, "a string value exceeds %zu bytes", MAX_STR);
	s = xmalloc(la + lb + 1);
	memcpy(s, json_string_value(a), la);
	memcpy(s + la, json_string_value(b), lb);
	*out = str_new(s, la + lb);
	free(s);
	return charge(st, n, la + lb);
}

static int order(struct rs *st, const struct node *n, json_t *a, json_t *b, int *cmp)
{
	if (is_num(a) && is_num(b)) {
		if (is_intlike(a) && is_intlike(b))
			*cmp = int_of(a) < int_of(b) ? -1 : int_of(a) > int_of(b);
		else
			*cmp = real_of(a) < real_of(b) ? -1 : real_of(a) > real_of(b);
		return 0;
	}
	if (a && b && json_is_string(a) && json_is_string(b)) {
		size_t la = json_string_length(a), lb = json_string_length(b);
		int c = memcmp(json_string_value(a), json_string_value(b), MIN(la, lb));
		*cmp = c ? c : la < lb ? -1 : la > lb;
		return 0;
	}
	return rerr(st, n, "'%s' is not supported between '%s' and '%s'", op_name(n->op),
	            type_name(a), type_name(b));
}

static int contains(struct rs *st, const struct node *n, json_t *x, json_t *c, int *res)
{
	size_t i;
	json_t *e;

	*res = 0;
	if (!c)
		return 0;
	switch (json_typeof(c)) {
	case JSON_STRING:
		if (!x || !json_is_string(x))
			return rerr(st, n, "'in <string>' needs a string on the left, not '%s'",
			            type_name(x));
		*res =
		    !json_string_length(x) || memmem(json_string_value(c), json_string_length(c),
		                                     json_string_value(x), json_string_length(x));
		return charge(st, n, json_string_length(c));
	case JSON_ARRAY:
		json_array_foreach(c, i, e) if (veq(x, e))
		{
			*res = 1;
			break;
		}
		return charge(st, n, json_array_size(c));
	case JSON_OBJECT:
		*res = x && json_is_string(x) &&
		       !memchr(json_string_value(x), 0, json_string_length(x)) &&
		       json_object_get(c, json_string_value(x));
		return 0;
	default:
		return rerr(st, n, "argument of type '%s' is not iterable", type_name(c));
	}
}

static int binop(struct rs *st, const struct node *n, json_t *a, json_t *b, json_t **out)
{
	int r, rc;

	switch (n->op) {
	case OP_EQ:
	case OP_NE:
		*out = json_boolean(veq(a, b) == (n->op == OP_EQ));
		return 0;
	case OP_LT:
	case OP_GT:
	case OP_LE:
	case OP_GE:
		if ((rc = order(st, n, a, b, &r)))
			return rc;
		*out = json_boolean(n->op == OP_LT   ? r < 0
		                    : n->op == OP_GT ? r > 0
		                    : n->op == OP_LE ? r <= 0
		                                     : r >= 0);
		return 0;
	case OP_IN:
	case OP_NOTIN:
		if ((rc = contains(st, n, a, b, &r)))
			return rc;
		*out = json_boolean(r == (n->op == OP_IN));
		return 0;
	case OP_CAT: {
		json_t *sa = NULL, *sb = NULL;
		if (!(rc = str_of(st, n, a, &sa)) && !(rc = str_of(st, n, b, &sb)))
			rc = concat(st, n, sa, sb, out);
		json_decref(sa);
		json_decref(sb);
		return rc;
	}
	default:
		break;
	}
	if (!a || !b) {
		const struct node *u = !a ? n->a : n->b;
		if (u->kind == E_NAME)
			return rerr(st, n, "\"%s\" is undefined (used with '%s')", u->name,
			            op_name(n->op));
		if (u->kind == E_ATTR)
			return rerr(st, n, "attribute \"%s\" is undefined (used with '%s')",
			            u->name, op_name(n->op));
		return rerr(st, n, "an undefined value used with '%s'", op_name(n->op));
	}
	if (is_num(a) && is_num(b))
		return arith(st, n, a, b, out);
	if (n->op == OP_ADD && json_is_string(a) && json_is_string(b))
		return concat(st, n, a, b, out);
	if (n->op == OP_ADD && json_is_array(a) && json_is_array(b)) {
		json_t *r2 = json_array();
		json_array_extend(r2, a);
		json_array_extend(r2, b);
		*out = r2;
		return charge(st, n, json_array_size(r2));
	}
	if (n->op == OP_MUL && json_is_string(a) && is_intlike(b))
		return repeat(st, n, a, int_of(b), out);
	if (n->op == OP_MUL && is_intlike(a) && json_is_string(b))
		return repeat(st, n, b, int_of(a), out);
	if (n->op == OP_MOD && json_is_string(a))
		return rerr(st, n, "string formatting with '%%' is not supported");
	return rerr(st, n, "unsupported operand types for %s: '%s' and '%s'", op_name(n->op),
	            type_name(a), type_name(b));
}

/* ---- functions, filters, tests, methods ---- */

static int has_ns(struct rs *st, const json_t *v, int left)
{
	const char *key;
	json_t *x;
	size_t i;

	if (!v || !(json_is_array(v) || json_is_object(v)))
		return 0;
	if (left <= 0)
		return 1;
	st->work++;
	for (int k = 0; k < st->n_nss; k++)
		if (st->nss[k] == v)
			return 1;
	if (json_is_array(v)) {
		json_array_foreach(v, i, x) if (has_ns(st, x, left - 1)) return 1;
	} else {
		json_object_foreach((json_t *)v, key, x) if (has_ns(st, x, left - 1)) return 1;
	}
	return 0;
}

static int call_fn(struct rs *st, const struct node *n, json_t **out)
{
	struct args a;
	json_t *s = NULL;
	int rc;

	if (n->op == FN_NAMESPACE) {
		json_t *ns = json_object();
		json_t *v;
		for (const struct node *x = n->args; x; x = x->next) {
			if ((rc = ev(st, x, &v))) {
				json_decref(ns);
				return rc;
			}
			json_object_set_new(ns, x->kw, v ? v : json_null());
		}
		if (st->n_nss == MAX_NAMESPACES) {
			json_decref(ns);
			return rerr(st, n, "more than %d namespace() objects", MAX_NAMESPACES);
		}
		if (has_ns(st, ns, MAX_VALUE_DEPTH)) {
			json_decref(ns);
			return rerr(st, n, "a namespace inside a namespace is not supported");
		}
		st->nss[st->n_nss++] = json_incref(ns);
		*out = ns;
		return charge(st, n, 0);
	}
	if ((rc = args_eval(st, n->args, &a)))
		return rc;
	switch (n->op) {
	case FN_RAISE:
		if (!(rc = str_of(st, n, arg(&a, 0, NULL, NULL), &s))) {
			if (st->errlen)
				snprintf(st->err, st->errlen, "%s", json_string_value(s));
			rc = -EPERM;
		}
		break;
	case FN_RANGE: {
		int64_t v[3] = {0, 0, 1}, count;
		for (int k = 0; k < a.n; k++) {
			if (!is_intlike(a.v[k])) {
				rc = rerr(st, n, "range() needs integers, not '%s'",
				          type_name(a.v[k]));
				goto done;
			}
			v[a.n == 1 ? 1 : k] = int_of(a.v[k]);
		}
		if (!v[2]) {
			rc = rerr(st, n, "range() step cannot be zero");
			break;
		}
		if (v[2] > 0)
			count = v[1] > v[0] ? (int64_t)(((uint64_t)v[1] - (uint64_t)v[0] - 1) /
			                                (uint64_t)v[2]) +
			                          1
			                    : 0;
		else
			count = v[0] > v[1] ? (int64_t)(((uint64_t)v[0] - (uint64_t)v[1] - 1) /
			                                (uint64_t)(-(v[2] + 1) + 1)) +
			                          1
			                    : 0;
		if (count < 0 || count > MAX_RANGE) {
			rc = rerr(st, n, "range() of more than %d numbers", MAX_RANGE);
			break;
		}
		*out = json_array();
		for (int64_t k = 0; k < count; k++)
			json_array_append_new(*out, json_integer(v[0] + k * v[2]));
		rc = charge(st, n, (size_t)count);
		break;
	}
	case FN_STRFTIME: {
		json_t *f = arg(&a, 0, NULL, NULL);
		char tmp[256];
		struct tm tm;
		time_t now = time(NULL);
		size_t len = 0;
		if (!f || !json_is_string(f) || json_string_length(f) > 64) {
			rc = rerr(st, n, "strftime_now() needs a short format string");
			break;
		}
		localtime_r(&now, &tm);
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
		len = strftime(tmp, sizeof(tmp), json_string_value(f), &tm);
#pragma GCC diagnostic pop
		*out = str_new(tmp, len);
		break;
	}
	}
done:
	json_decref(s);
	args_free(&a);
	return rc;
}

static int in_set(const char *cp, size_t n, const json_t *chars)
{
	if (!chars || !json_is_string(chars))
		return n == 1 && is_space(*cp);
	const char *s = json_string_value(chars);
	size_t len = json_string_length(chars);
	for (size_t i = 0; i < len; i = cp_step(s, len, i))
		if (cp_step(s, len, i) - i == n && !memcmp(s + i, cp, n))
			return 1;
	return 0;
}

/* Python's strip family on s[0..len): chars NULL or none is whitespace. */
static json_t *strip(const char *s, size_t len, const json_t *chars, int left, int right)
{
	size_t b = 0, e = len;

	while (left && b < e && in_set(s + b, cp_step(s, e, b) - b, chars))
		b = cp_step(s, e, b);
	while (right && e > b) {
		size_t k = e - 1;
		while (k > b && ((unsigned char)s[k] & 0xc0) == 0x80)
			k--;
		if (!in_set(s + k, e - k, chars))
			break;
		e = k;
	}
	return str_new(s + b, e - b);
}

enum casemode { C_UPPER, C_LOWER, C_CAPITALIZE, C_TITLE };

static json_t *casemap(const char *s, size_t len, enum casemode m)
{
	char *o = xmalloc(len + 1);
	int prev_letter = 0;
	json_t *r;

	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		int letter = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
		int up =
		    m == C_UPPER || (m == C_CAPITALIZE && i == 0) || (m == C_TITLE && !prev_letter);
		if (up && c >= 'a' && c <= 'z')
			c = (char)(c - 'a' + 'A');
		else if (!up && m != C_UPPER && c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		o[i] = c;
		prev_letter = letter || ((unsigned char)c >= 0x80 && prev_letter);
	}
	r = str_new(o, len);
	free(o);
	return r;
}

static int replace(struct rs *st, const struct node *n, json_t *v, json_t *old, json_t *new_,
                   json_t *count, json_t **out)
{
	json_t *sv = NULL, *so = NULL, *sn = NULL;
	int64_t left = -1;
	struct buf b;
	int rc;

	if (count && !json_is_null(count)) {
		if (!is_intlike(count))
			return rerr(st, n, "replace() count must be an integer");
		left = int_of(count);
	}
	if ((rc = str_of(st, n, v, &sv)) || (rc = str_of(st, n, old, &so)) ||
	    (rc = str_of(st, n, new_, &sn)))
		goto done;
	const char *s = json_string_value(sv), *o = json_string_value(so);
	size_t len = json_string_length(sv), ol = json_string_length(so), i = 0;
	buf_init(&b, MAX_STR);
	while (i <= len && !rc) {
		const char *hit = NULL;
		if (left != 0) {
			if (!ol)
				hit = s + i;
			else if (len - i >= ol)
				hit = memmem(s + i, len - i, o, ol);
		}
		if (!hit) {
			rc = buf_append(&b, s + i, len - i);
			break;
		}
		size_t at = (size_t)(hit - s);
		rc = buf_append(&b, s + i, at - i);
		if (!rc)
			rc = buf_append(&b, json_string_value(sn), json_string_length(sn));
		if (left > 0)
			left--;
		if (ol) {
			i = at + ol;
		} else {
			if (at == len) {
				i = len + 1;
				break;
			}
			size_t j = cp_step(s, len, at);
			if (!rc)
				rc = buf_append(&b, s + at, j - at);
			i = j;
		}
	}
	if (rc)
		rc = rerr(st, n, "a string value exceeds %zu bytes", MAX_STR);
	else
		*out = str_new(b.data, b.len);
	buf_release(&b);
	if (!rc)
		rc = charge(st, n, json_string_length(*out));
done:
	json_decref(sv);
	json_decref(so);
	json_decref(sn);
	return rc;
}

static int split(struct rs *st, const struct node *n, json_t *v, json_t *sep, json_t *max,
                 json_t **out)
{
	const char *s = json_string_value(v), *sp;
	size_t len = json_string_length(v), i = 0, sl;
	int64_t left = -1;
	json_t *r;

	if (max && !json_is_null(max)) {
		if (!is_intlike(max))
			return rerr(st, n, "split() maxsplit must be an integer");
		left = int_of(max);
	}
	if (sep && !json_is_null(sep) && !json_is_string(sep))
		return rerr(st, n, "split() separator must be a string");
	if (sep && json_is_string(sep) && !json_string_length(sep))
		return rerr(st, n, "split() separator is empty");
	r = json_array();
	if (!sep || json_is_null(sep)) {
		for (;;) {
			while (i < len && is_space(s[i]))
				i++;
			if (i >= len)
				break;
			size_t e = i;
			if (left == 0) {
				e = len;
				while (e > i && is_space(s[e - 1]))
					e--;
			} else {
				while (e < len && !is_space(s[e]))
					e++;
			}
			json_array_append_new(r, str_new(s + i, e - i));
			if (left > 0)
				left--;
			i = e;
		}
	} else {
		sp = json_string_value(sep);
		sl = json_string_length(sep);
		for (;;) {
			const char *hit =
			    left != 0 && len - i >= sl ? memmem(s + i, len - i, sp, sl) : NULL;
			if (!hit) {
				json_array_append_new(r, str_new(s + i, len - i));
				break;
			}
			json_array_append_new(r, str_new(s + i, (size_t)(hit - s) - i));
			i = (size_t)(hit - s) + sl;
			if (left > 0)
				left--;
		}
	}
	*out = r;
	return charge(st, n, len + json_array_size(r));
}

static int affix(struct rs *st, const struct node *n, json_t *v, json_t *x, int end, int *res)
{
	const char *s = json_string_value(v);
	size_t len = json_string_length(v);
	json_t *one;
	size_t i;

	*res = 0;
	if (x && json_is_array(x)) {
		json_array_foreach(x, i, one)
		{
			int rc = affix(st, n, v, one, end, res);
			if (rc || *res)
				return rc;
		}
		return 0;
	}
	if (!x || !json_is_string(x))
		return rerr(st, n, "%s() needs a string or a list of strings, not '%s'",
		            end ? "endswith" : "startswith", type_name(x));
	size_t xl = json_string_length(x);
	*res = xl <= len && !memcmp(s + (end ? len - xl : 0), json_string_value(x), xl);
	return 0;
}

static int call_method(struct rs *st, const struct node *n, json_t *v, struct args *a, json_t **out)
{
	const struct callable *c = NULL;
	int r, rc = 0;

	for (size_t k = 0; k < ARRAY_SIZE(methods); k++)
		if (methods[k].id == n->op)
			c = &methods[k];
	if (!v)
		return rerr(st, n, "method \"%s\" called on an undefined value", c->name);
	if (n->op >= M_GET) {
		if (!json_is_object(v))
			return rerr(st, n, "'%s' object has no method \"%s\"", type_name(v),
			            c->name);
		switch (n->op) {
		case M_GET: {
			json_t *k = arg(a, 0, NULL, NULL), *d = arg(a, 1, NULL, NULL), *x = NULL;
			if (k && json_is_string(k) &&
			    !memchr(json_string_value(k), 0, json_string_length(k)))
				x = json_object_get(v, json_string_value(k));
			*out = json_incref(x ? x : d ? d : json_null());
			return 0;
		}
		case M_ITEMS:
			*out = pairs_of(v);
			break;
		case M_KEYS:
			return items_of(st, n, v, out);
		default: {
			const char *key;
			json_t *x;
			*out = json_array();
			json_object_foreach(v, key, x) json_array_append(*out, x);
		}
		}
		return charge(st, n, json_object_size(v));
	}
	if (!json_is_string(v))
		return rerr(st, n, "'%s' object has no method \"%s\"", type_name(v), c->name);
	const char *s = json_string_value(v);
	size_t len = json_string_length(v);
	switch (n->op) {
	case M_STRIP:
	case M_LSTRIP:
	case M_RSTRIP:
		*out = strip(s, len, arg(a, 0, NULL, NULL), n->op != M_RSTRIP, n->op != M_LSTRIP);
		break;
	case M_STARTSWITH:
	case M_ENDSWITH:
		if ((rc = affix(st, n, v, arg(a, 0, NULL, NULL), n->op == M_ENDSWITH, &r)))
			return rc;
		*out = json_boolean(r);
		break;
	case M_SPLIT:
		return split(st, n, v, arg(a, 0, "sep", NULL), arg(a, 1, "maxsplit", NULL), out);
	case M_UPPER:
		*out = casemap(s, len, C_UPPER);
		break;
	case M_LOWER:
		*out = casemap(s, len, C_LOWER);
		break;
	case M_TITLE:
		*out = casemap(s, len, C_TITLE);
		break;
	case M_CAPITALIZE:
		*out = casemap(s, len, C_CAPITALIZE);
		break;
	case M_REPLACE:
		return replace(st, n, v, arg(a, 0, NULL, NULL), arg(a, 1, NULL, NULL),
		               arg(a, 2, NULL, NULL), out);
	}
	return charge(st, n, len);
}

static int length_of(struct rs *st, const struct node *n, json_t *v, json_t **out)
{
	size_t len = 0;

	if (!v)
		len = 0;
	else if (json_is_string(v))
		len = cp_count(json_string_value(v), json_string_length(v));
	else if (json_is_array(v))
		len = json_array_size(v);
	else if (json_is_object(v))
		len = json_object_size(v);
	else
		return rerr(st, n, "object of type '%s' has no length", type_name(v));
	*out = json_integer((json_int_t)len);
	return 0;
}

static int to_int(struct rs *st, const struct node *n, json_t *v, json_t *dflt, json_t **out)
{
	int64_t i;
	double d;

	if (is_intlike(v)) {
		*out = json_integer(int_of(v));
	} else if (v && json_is_real(v) && json_real_value(v) > -9.2e18 &&
	           json_real_value(v) < 9.2e18) {
		*out = json_integer((json_int_t)json_real_value(v));
	} else if (v && json_is_string(v) && json_string_length(v) < 64) {
		char tmp[64];
		size_t b = 0, e = json_string_length(v);
		const char *s = json_string_value(v);
		while (b < e && is_space(s[b]))
			b++;
		while (e > b && is_space(s[e - 1]))
			e--;
		memcpy(tmp, s + b, e - b);
		tmp[e - b] = 0;
		if (!parse_i64(tmp, &i))
			*out = json_integer(i);
		else if (!parse_double(tmp, &d) && d > -9.2e18 && d < 9.2e18)
			*out = json_integer((json_int_t)d);
	}
	if (!*out)
		*out = dflt ? json_incref(dflt) : json_integer(0);
	return charge(st, n, 0);
}

static int call_filter(struct rs *st, const struct node *n, json_t *v, struct args *a, json_t **out)
{
	json_t *s = NULL, *x;
	struct buf b;
	size_t i;
	int rc = 0;

	switch (n->op) {
	case F_SAFE:
		*out = json_incref(v);
		return 0;
	case F_LENGTH:
		return length_of(st, n, v, out);
	case F_DEFAULT: {
		json_t *d = arg(a, 0, "default_value", NULL);
		json_t *boolean = arg(a, 1, "boolean", NULL);
		int use = !v || (truthy(boolean) && !truthy(v));
		*out = json_incref(use ? (d ? d : json_string("")) : v);
		if (use && !d)
			json_decref(*out);
		return 0;
	}
	case F_TOJSON: {
		json_t *ind = arg(a, 0, "indent", NULL);
		int indent = -1;
		if (!v)
			return rerr(st, n, "tojson of an undefined value");
		if (ind && !json_is_null(ind)) {
			if (!is_intlike(ind) || int_of(ind) < 0 || int_of(ind) > 16)
				return rerr(st, n, "tojson indent must be an integer 0..16");
			indent = (int)int_of(ind);
		}
		buf_init(&b, MAX_STR);
		if (json_write(&b, v, indent, 0)) {
			buf_release(&b);
			return rerr(st, n, "a string value exceeds %zu bytes", MAX_STR);
		}
		*out = str_new(b.data, b.len);
		buf_release(&b);
		return charge(st, n, json_string_length(*out));
	}
	case F_FIRST:
	case F_LAST:
		if (v && json_is_object(v)) {
			json_t *keys = NULL;
			if ((rc = items_of(st, n, v, &keys)))
				return rc;
			size_t sz = json_array_size(keys);
			if (sz)
				*out = json_incref(
				    json_array_get(keys, n->op == F_FIRST ? 0 : sz - 1));
			json_decref(keys);
			return 0;
		}
		if (v && json_is_array(v)) {
			size_t sz = json_array_size(v);
			if (sz)
				*out =
				    json_incref(json_array_get(v, n->op == F_FIRST ? 0 : sz - 1));
			return 0;
		}
		if (v && json_is_string(v)) {
			const char *str = json_string_value(v);
			size_t len = json_string_length(v), k = len;
			if (!len)
				return 0;
			if (n->op == F_FIRST) {
				*out = str_new(str, cp_step(str, len, 0));
				return 0;
			}
			while (k > 1 && ((unsigned char)str[k - 1] & 0xc0) == 0x80)
				k--;
			*out = str_new(str + k - 1, len - (k - 1));
			return charge(st, n, len);
		}
		if (!v)
			return 0;
		return rerr(st, n, "'%s' object has no first or last item", type_name(v));
	case F_ITEMS:
		if (!v) {
			*out = json_array();
			return 0;
		}
		if (!json_is_object(v))
			return rerr(st, n, "items of a '%s', not a dict", type_name(v));
		*out = pairs_of(v);
		return charge(st, n, json_object_size(v));
	case F_LIST:
		return items_of(st, n, v, out);
	case F_INT:
		return to_int(st, n, v, arg(a, 0, "default", NULL), out);
	case F_JOIN: {
		json_t *sep = arg(a, 0, "d", NULL), *seq = NULL, *ss = NULL;
		if ((rc = items_of(st, n, v, &seq)))
			return rc;
		if (!(rc = str_of(st, n, sep, &ss))) {
			buf_init(&b, MAX_STR);
			json_array_foreach(seq, i, x)
			{
				if (i &&
				    buf_append(&b, json_string_value(ss), json_string_length(ss)))
					rc = -ENOSPC;
				if (!rc && py_write(&b, x, 0))
					rc = -ENOSPC;
				if (rc)
					break;
			}
			if (rc)
				rc = rerr(st, n, "a string value exceeds %zu bytes", MAX_STR);
			else
				*out = str_new(b.data, b.len);
			buf_release(&b);
		}
		json_decref(seq);
		json_decref(ss);
		return rc ? rc : charge(st, n, json_string_length(*out));
	}
	case F_REPLACE:
		return replace(st, n, v, arg(a, 0, NULL, NULL), arg(a, 1, NULL, NULL),
		               arg(a, 2, NULL, NULL), out);
	default:
		break;
	}
	/* the string filters: on str(v), as Jinja's soft_str */
	if ((rc = str_of(st, n, v, &s)))
		return rc;
	const char *str = json_string_value(s);
	size_t len = json_string_length(s);
	switch (n->op) {
	case F_TRIM:
		*out = strip(str, len, arg(a, 0, NULL, NULL), 1, 1);
		break;
	case F_UPPER:
		*out = casemap(str, len, C_UPPER);
		break;
	case F_LOWER:
		*out = casemap(str, len, C_LOWER);
		break;
	case F_CAPITALIZE:
		*out = casemap(str, len, C_CAPITALIZE);
		break;
	case F_TITLE:
		*out = casemap(str, len, C_TITLE);
		break;
	default:
		*out = json_incref(s);
		break; /* F_STRING */
	}
	json_decref(s);
	return charge(st, n, len);
}

static int test(int op, const json_t *v)
{
	switch (op) {
	case T_DEFINED:
		return v != NULL;
	case T_UNDEFINED:
		return v == NULL;
	case T_NONE:
		return v && json_is_null(v);
	case T_STRING:
		return v && json_is_string(v);
	case T_MAPPING:
		return v && json_is_object(v);
	case T_ITERABLE:
		return !v || json_is_string(v) || json_is_array(v) || json_is_object(v);
	case T_SEQUENCE:
		return v && (json_is_string(v) || json_is_array(v) || json_is_object(v));
	case T_NUMBER:
		return is_num(v);
	case T_INTEGER:
		return v && json_is_integer(v);
	case T_FLOAT:
		return v && json_is_real(v);
	case T_BOOLEAN:
		return v && json_is_boolean(v);
	case T_TRUE:
		return v && json_is_true(v);
	default:
		return v && json_is_false(v); /* T_FALSE */
	}
}

static int ev(struct rs *st, const struct node *n, json_t **out)
{
	json_t *a = NULL, *b = NULL;
	struct args args;
	int rc = 0;

	*out = NULL;
	if ((rc = charge(st, n, 1)))
		return rc;
	switch (n->kind) {
	case E_LIT:
		*out = json_incref(n->lit);
		return 0;
	case E_NAME:
		*out = lookup(st, n->name);
		return 0;
	case E_ATTR:
		if ((rc = ev(st, n->a, &a)))
			return rc;
		if (a && json_is_object(a))
			*out = json_incref(json_object_get(a, n->name));
		break;
	case E_INDEX:
	case E_BIN:
		if ((rc = ev(st, n->a, &a)) || (rc = ev(st, n->b, &b)))
			break;
		rc = n->kind == E_INDEX ? subscript(st, n, a, b, out) : binop(st, n, a, b, out);
		break;
	case E_SLICE:
		return eval_slice(st, n, out);
	case E_LIST:
	case E_DICT:
		return eval_container(st, n, out);
	case E_NEG:
	case E_POS:
		if ((rc = ev(st, n->a, &a)))
			return rc;
		if (!is_num(a))
			rc = rerr(st, n, "bad operand type for unary %s: '%s'",
			          n->kind == E_NEG ? "-" : "+", type_name(a));
		else if (json_is_real(a))
			*out =
			    json_real(n->kind == E_NEG ? -json_real_value(a) : json_real_value(a));
		else if (n->kind == E_NEG && int_of(a) == INT64_MIN)
			rc = rerr(st, n, "integer overflow in unary -");
		else
			*out = json_integer(n->kind == E_NEG ? -int_of(a) : int_of(a));
		break;
	case E_NOT:
		if ((rc = ev(st, n->a, &a)))
			return rc;
		*out = json_boolean(!truthy(a));
		break;
	case E_AND:
	case E_OR:
		if ((rc = ev(st, n->a, &a)))
			return rc;
		if (truthy(a) == (n->kind == E_OR)) {
			*out = a;
			return 0;
		}
		json_decref(a);
		return ev(st, n->b, out);
	case E_COND:
		if ((rc = ev(st, n->a, &a)))
			return rc;
		rc = truthy(a);
		json_decref(a);
		if (rc)
			return ev(st, n->b, out);
		return n->c ? ev(st, n->c, out) : 0;
	case E_CALL:
		return call_fn(st, n, out);
	case E_METHOD:
	case E_FILTER:
		if ((rc = ev(st, n->a, &a)) || (rc = args_eval(st, n->args, &args)))
			break;
		rc = n->kind == E_METHOD ? call_method(st, n, a, &args, out)
		                         : call_filter(st, n, a, &args, out);
		args_free(&args);
		break;
	case E_TEST:
		if ((rc = ev(st, n->a, &a)))
			return rc;
		*out = json_boolean(test(n->op, a) != n->neg);
		break;
	default:
		rc = rerr(st, n, "not an expression");
	}
	json_decref(a);
	json_decref(b);
	if (rc) {
		json_decref(*out);
		*out = NULL;
	}
	return rc;
}

/* ---- statements ---- */

static int exec_body(struct rs *st, const struct node *n);

static int out_full(struct rs *st)
{
	if (st->errlen)
		snprintf(st->err, st->errlen,
		         "chat template: the rendered prompt exceeds %zu bytes", st->out->max);
	return -ENOSPC;
}

static int bind(struct rs *st, const struct node *n, json_t *scope, json_t *item)
{
	const struct node *t = n->args;

	if (!t->next) {
		json_object_set(scope, t->name, item);
		return 0;
	}
	size_t want = 0;
	for (const struct node *q = t; q; q = q->next)
		want++;
	if (!json_is_array(item) || json_array_size(item) != want)
		return rerr(st, n, "cannot unpack a '%s' of %zu items into %zu names",
		            type_name(item), json_is_array(item) ? json_array_size(item) : 1, want);
	for (size_t k = 0; t; t = t->next, k++)
		json_object_set(scope, t->name, json_array_get(item, k));
	return 0;
}

static int iterate(struct rs *st, const struct node *n)
{
	if (++st->iters > MAX_ITERS)
		return rerr(st, n, "loops run more than %lu times", MAX_ITERS);
	return 0;
}

/* Each iteration gets a fresh scope, as in Jinja: a set inside the body
 * does not carry over to the next iteration nor out of the loop. */
static json_t *scope_push(struct rs *st)
{
	json_t *scope = json_object();
	st->scopes[st->n_scopes++] = scope;
	return scope;
}

static void scope_pop(struct rs *st)
{
	json_decref(st->scopes[--st->n_scopes]);
}

static int exec_for(struct rs *st, const struct node *n)
{
	json_t *seq = NULL, *items = NULL, *scope, *c = NULL;
	size_t len, i;
	int rc;

	if ((rc = ev(st, n->a, &seq)))
		return rc;
	rc = items_of(st, n->a, seq, &items);
	json_decref(seq);
	if (rc)
		return rc;
	if (st->n_scopes == (int)ARRAY_SIZE(st->scopes)) {
		json_decref(items);
		return rerr(st, n, "loops nested too deep");
	}
	if (n->d) {
		json_t *kept = json_array(), *x;
		json_array_foreach(items, i, x)
		{
			scope = scope_push(st);
			if (!(rc = iterate(st, n)) && !(rc = bind(st, n, scope, x)) &&
			    !(rc = ev(st, n->d, &c)) && truthy(c))
				json_array_append(kept, x);
			json_decref(c);
			c = NULL;
			scope_pop(st);
			if (rc)
				break;
		}
		json_decref(items);
		items = kept;
	}
	len = json_array_size(items);
	for (i = 0; i < len && !rc; i++) {
		json_t *loop = json_object();
		json_object_set_new(loop, "index", json_integer((json_int_t)i + 1));
		json_object_set_new(loop, "index0", json_integer((json_int_t)i));
		json_object_set_new(loop, "revindex", json_integer((json_int_t)(len - i)));
		json_object_set_new(loop, "revindex0", json_integer((json_int_t)(len - i - 1)));
		json_object_set_new(loop, "first", json_boolean(i == 0));
		json_object_set_new(loop, "last", json_boolean(i + 1 == len));
		json_object_set_new(loop, "length", json_integer((json_int_t)len));
		if (i > 0)
			json_object_set(loop, "previtem", json_array_get(items, i - 1));
		if (i + 1 < len)
			json_object_set(loop, "nextitem", json_array_get(items, i + 1));
		scope = scope_push(st);
		json_object_set_new(scope, "loop", loop);
		if (!(rc = iterate(st, n)) && !(rc = bind(st, n, scope, json_array_get(items, i))))
			rc = exec_body(st, n->b);
		scope_pop(st);
		if (st->ctl == N_BREAK) {
			st->ctl = 0;
			break;
		}
		st->ctl = 0;
	}
	if (!rc && !len && n->c) {
		scope_push(st);
		rc = exec_body(st, n->c);
		scope_pop(st);
	}
	json_decref(items);
	return rc;
}

static int exec_set(struct rs *st, const struct node *n)
{
	json_t *v = NULL, *target;
	int rc;

	if ((rc = ev(st, n->a, &v)))
		return rc;
	if (!n->attr) {
		json_t *scope = st->scopes[st->n_scopes - 1];
		if (v)
			json_object_set_new(scope, n->name, v);
		else
			json_object_del(scope, n->name);
		return 0;
	}
	target = lookup(st, n->name);
	rc = 0;
	for (int k = 0; k < st->n_nss && target; k++)
		if (st->nss[k] == target)
			rc = 1;
	if (!rc)
		rc = rerr(st, n, "\"%s\" is not a namespace: set %s.%s needs namespace()", n->name,
		          n->name, n->attr);
	else if (has_ns(st, v, MAX_VALUE_DEPTH))
		rc = rerr(st, n, "a namespace inside a namespace is not supported");
	else if (!depth_ok(st, v, MAX_VALUE_DEPTH - 1))
		rc = rerr(st, n, "a value nests more than %d deep", MAX_VALUE_DEPTH);
	else
		rc = json_object_set(target, n->attr, v ? v : json_null()) ? -EINVAL : 0;
	json_decref(target);
	json_decref(v);
	return rc ? rc : charge(st, n, 0);
}

static int exec(struct rs *st, const struct node *n)
{
	json_t *v = NULL;
	int rc;

	switch (n->kind) {
	case N_TEXT:
		if ((rc = charge(st, n, n->text_len)))
			return rc;
		return buf_append(st->out, n->text, n->text_len) ? out_full(st) : 0;
	case N_OUT: {
		size_t before = st->out->len;
		if ((rc = ev(st, n->a, &v)))
			return rc;
		rc = py_write(st->out, v, 0) ? out_full(st) : 0;
		json_decref(v);
		return rc ? rc : charge(st, n, st->out->len - before);
	}
	case N_IF:
		for (;;) {
			if ((rc = ev(st, n->a, &v)))
				return rc;
			rc = truthy(v);
			json_decref(v);
			if (rc)
				return exec_body(st, n->b);
			if (!n->op)
				return exec_body(st, n->c);
			n = n->c; /* elif */
		}
	case N_FOR:
		return exec_for(st, n);
	case N_SET:
		return exec_set(st, n);
	case N_BREAK:
	case N_CONTINUE:
		st->ctl = n->kind;
		return 0;
	default:
		return rerr(st, n, "not a statement");
	}
}

static int exec_body(struct rs *st, const struct node *n)
{
	for (; n && !st->ctl; n = n->next) {
		int rc = exec(st, n);
		if (rc)
			return rc;
	}
	return 0;
}

int tmpl_render(const struct tmpl *t, json_t *vars, struct buf *out, char *err, size_t errlen)
{
	struct rs st;
	int rc;

	memset(&st, 0, sizeof(st));
	st.t = t;
	st.vars = vars;
	st.out = out;
	st.err = err;
	st.errlen = errlen;
	if (errlen)
		err[0] = 0;
	st.scopes[st.n_scopes++] = json_object();
	rc = exec_body(&st, t->body);
	json_decref(st.scopes[0]);
	for (int k = 0; k < st.n_nss; k++)
		json_decref(st.nss[k]);
	return rc;
}
