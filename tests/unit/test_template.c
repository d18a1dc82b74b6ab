/* test_template.c: unit tests for the chat-template engine
 * (src/runners/llama/template.c).
 *
 * The subset feature by feature, with expected strings worked out by hand
 * (and cross-checked against Jinja2 configured as transformers configures
 * it: tests/fixtures/templates/jinja_check.py); refusals at parse time name
 * the construct, line and column; render errors (raise_exception, type
 * errors, ceilings) come back as errors, never crashes. Then whole
 * templates written in the style of five families (the .jinja files of
 * tests/fixtures/templates) rendered for one user message, system + user, a
 * multi-turn conversation and content given as parts, each with and
 * without add_generation_prompt; the Mistral one refuses roles that do not
 * alternate with its own message. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "buf.h"
#include "runners/llama/template.h"
#include "util.h"

static json_t *vars_of(const char *json)
{
	json_error_t je;
	json_t *v = json_loads(json ? json : "{}", 0, &je);

	if (!v)
		fail_msg("bad test context %s: %s", json, je.text);
	return v;
}

/* rc of the render; *out the rendering (or "" on error), err the message */
static int run(const char *src, const char *vars_json, size_t max, char **out, char *err,
               size_t errlen)
{
	struct tmpl *t = NULL;
	json_t *vars = vars_of(vars_json);
	struct buf b;
	int rc;

	if (tmpl_parse(&t, src, strlen(src), err, errlen))
		fail_msg("refused: %s\n  template: %s", err, src);
	buf_init(&b, max);
	rc = tmpl_render(t, vars, &b, err, errlen);
	*out = xstrdup(rc || !b.data ? "" : b.data);
	buf_release(&b);
	tmpl_free(t);
	json_decref(vars);
	return rc;
}

static void expect(const char *src, const char *vars_json, const char *want)
{
	char err[512], *got;
	int rc = run(src, vars_json, BUF_UNLIMITED, &got, err, sizeof(err));

	if (rc)
		fail_msg("render failed (%d): %s\n  template: %s", rc, err, src);
	if (strcmp(got, want))
		fail_msg("template: %s\n  got:  [%s]\n  want: [%s]", src, got, want);
	free(got);
}

static void expect_render_error(const char *src, const char *vars_json, int want_rc,
                                const char *want_err)
{
	char err[512], *got;
	int rc = run(src, vars_json, BUF_UNLIMITED, &got, err, sizeof(err));

	free(got);
	assert_int_equal(rc, want_rc);
	if (!strstr(err, want_err))
		fail_msg("template: %s\n  error: %s\n  wanted: %s", src, err, want_err);
	assert_null(strchr(err, '\n'));
}

static void expect_refused(const char *src, const char *want_err)
{
	struct tmpl *t = (struct tmpl *)1;
	char err[512];

	assert_int_equal(tmpl_parse(&t, src, strlen(src), err, sizeof(err)), -EINVAL);
	assert_null(t);
	if (strcmp(err, want_err))
		fail_msg("template: %s\n  error: %s\n  wanted: %s", src, err, want_err);
}

/* ---- the subset, feature by feature ---- */

static void test_output(void **state)
{
	expect("Hello {{ name }}!", "{\"name\":\"Ann\"}", "Hello Ann!");
	expect("Hello {{ nobody }}!", NULL, "Hello !");
	expect("{{ 1 }} {{ 1.5 }} {{ 2.0 }} {{ true }} {{ none }} {{ [1, 'a', none] }} "
	       "{{ {'k': 'v', \"it's\": 1} }} {{ 1e20 }} {{ 0.0001 }} {{ 1/3 }}",
	       NULL,
	       "1 1.5 2.0 True None [1, 'a', None] {'k': 'v', \"it's\": 1} 1e+20 0.0001 "
	       "0.3333333333333333");
	expect("{{ 'a' 'b' }} {{ \"q\\\"uote\" }} {{ 'tab\\tx' }}", NULL, "ab q\"uote tab\tx");
	/* one trailing newline of the template is dropped (keep_trailing_newline=False) */
	expect("x\n", NULL, "x");
	expect("x\n\n", NULL, "x\n");
}

static void test_whitespace(void **state)
{
	/* trim_blocks: the newline after a block tag goes */
	expect("{% if true %}\n  yes\n{% endif %}\nafter", NULL, "  yes\nafter");
	/* lstrip_blocks: indentation before a block tag goes */
	expect("  {% if true %}x{% endif %}", NULL, "x");
	expect("line\n    {% if true %}x{% endif %}", NULL, "line\nx");
	/* but not text before the tag on the same line */
	expect("a  {% if true %}x{% endif %}", NULL, "a  x");
	/* and not before an expression */
	expect("  {{ 'x' }}\n", NULL, "  x");
	expect("{{ 'x' }}\ny", NULL, "x\ny");
	/* explicit stripping */
	expect("a  {%- if true %} b {% endif -%}  c", NULL, "a b c");
	expect("a {{- ' b ' -}} c", NULL, "a b c");
	expect("a\n\n  {{- 'b' }}", NULL, "ab");
	/* + keeps what lstrip/trim would take */
	expect("{%+ if true %}x{% endif +%}\ny", NULL, "x\ny");
	expect("  {%+ if true %}x{% endif %}", NULL, "  x");
	/* comments follow the block rules */
	expect("{# comment #}\nx {#- trimmed -#} y", NULL, "xy");
	expect("a\n  {# c #}\nb", NULL, "a\nb");
}

static void test_if(void **state)
{
	const char *t = "{% if n == 1 %}one{% elif n == 2 %}two{% elif n == 3 %}three"
	                "{% else %}many{% endif %}";

	expect(t, "{\"n\":1}", "one");
	expect(t, "{\"n\":2}", "two");
	expect(t, "{\"n\":3}", "three");
	expect(t, "{\"n\":7}", "many");
	expect(t, NULL, "many");
	expect("{% if x %}y{% endif %}", "{\"x\":[]}", "");
	expect("{% if x %}y{% endif %}", "{\"x\":{\"a\":1}}", "y");
	expect("{% if not x %}n{% endif %}", NULL, "n");
}

static void test_for(void **state)
{
	expect("{% for x in xs %}{{ loop.index }}{{ loop.index0 }}{{ loop.first }}{{ loop.last }}"
	       "{{ loop.length }}{{ loop.revindex }}{{ x }}|{% endfor %}",
	       "{\"xs\":[\"a\",\"b\",\"c\"]}", "10TrueFalse33a|21FalseFalse32b|32FalseTrue31c|");
	expect("{% for x in xs if x != 'b' %}{{ x }}{{ loop.length }}{{ loop.last }},"
	       "{% else %}none{% endfor %}",
	       "{\"xs\":[\"a\",\"b\",\"c\"]}", "a2False,c2True,");
	expect("{% for x in xs %}{{ x }}{% else %}empty{% endfor %}", "{\"xs\":[]}", "empty");
	expect("{% for x in nothing %}{{ x }}{% else %}empty{% endfor %}", NULL, "empty");
	expect("{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}",
	       "{\"d\":{\"a\":1,\"b\":[2]}}", "a=1;b=[2];");
	expect("{% for k, v in d | items %}{{ k }}{{ v }}{% endfor %}", "{\"d\":{\"a\":1}}", "a1");
	expect(
	    "{% for k in d %}{{ k }}{% endfor %}{% for c in 'h\xc3\xa9!' %}[{{ c }}]{% endfor %}",
	    "{\"d\":{\"a\":1,\"b\":2}}", "ab[h][\xc3\xa9][!]");
	expect("{% for i in range(10) %}{% if i == 2 %}{% continue %}{% endif %}"
	       "{% if i == 5 %}{% break %}{% endif %}{{ i }}{% endfor %}",
	       NULL, "0134");
	expect(
	    "{% for r in rows %}{% for c in r %}{{ loop.index }}{{ c }}{% endfor %};{% endfor %}",
	    "{\"rows\":[[\"a\",\"b\"],[\"c\"]]}", "1a2b;1c;");
	expect("{% for x in xs %}{{ loop.previtem }}>{{ x }}>{{ loop.nextitem }} {% endfor %}",
	       "{\"xs\":[1,2,3]}", ">1>2 1>2>3 2>3> ");
}

static void test_set_namespace(void **state)
{
	/* a set inside a loop lasts one iteration and does not leak out */
	expect("{% set x = 1 %}{% for i in [1, 2] %}{% set x = x + i %}{{ x }}{% endfor %}{{ x }}",
	       NULL, "231");
	expect("{% set ns = namespace(total=0, seen=false) %}{% for i in range(4) %}"
	       "{% set ns.total = ns.total + i %}{% set ns.seen = true %}{% endfor %}"
	       "{{ ns.total }} {{ ns.seen }}",
	       NULL, "6 True");
	expect("{% set s = 'x' %}{{ s }}{% set t = [1, 2] + [3] %}{{ t }}"
	       "{% set u = {'a': 1}['a'] %}{{ u }}",
	       NULL, "x[1, 2, 3]1");
	/* the caller's variables can be shadowed, never changed */
	expect("{% set name = 'B' %}{{ name }}", "{\"name\":\"A\"}", "B");
	expect_render_error("{% set m = {'a': 1} %}{% set m.a = 2 %}", NULL, -EINVAL,
	                    "line 1, column 26: \"m\" is not a namespace");
	expect_render_error("{% set ns = namespace() %}{% set ns.a = ns %}", NULL, -EINVAL,
	                    "a namespace inside a namespace");
}

static void test_expressions(void **state)
{
	expect("{{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 2 ** 10 }} {{ 7 / 2 }} "
	       "{{ 1 + 2 * 3 }} {{ (1 + 2) * 3 }} {{ 'ab' * 3 }} {{ 'a' ~ 1 ~ none }} {{ -(3) }} "
	       "{{ 1.5 + 1 }} {{ 10 - 2 - 3 }}",
	       NULL, "3 -4 1 2 1024 3.5 7 9 ababab a1None -3 2.5 5");
	expect("{{ 1 < 2 }} {{ 'a' < 'b' }} {{ 2 >= 2 }} {{ 1 == 1.0 }} {{ 'x' != 'x' }} "
	       "{{ 'b' in 'abc' }} {{ 2 in [1,2] }} {{ 'k' in {'k':1} }} {{ 3 not in [1] }}",
	       NULL, "True True True True False True True True True");
	expect("{{ a and b }} {{ a or b }} {{ not a }} {{ 'y' if a else 'n' }} {{ 'y' if b }}"
	       "{{ 'y' if a }}",
	       "{\"a\":0,\"b\":\"B\"}", "0 B True n y");
	expect(
	    "{{ xs[0] }} {{ xs[-1] }} {{ xs[1:] }} {{ xs[:2] }} {{ xs[::-1] }} "
	    "{{ 'h\xc3\xa9llo'[1:3] }} {{ 'h\xc3\xa9llo'[1] }} {{ xs[9] }} {{ d['a'] }} {{ d.a }}",
	    "{\"xs\":[1,2,3],\"d\":{\"a\":\"A\"}}",
	    "1 3 [2, 3] [1, 2] [3, 2, 1] \xc3\xa9l \xc3\xa9  A A");
	/* attribute access on undefined stays undefined */
	expect("[{{ d.zz.yy }}]{{ d.zz.yy is defined }}", "{\"d\":{}}", "[]False");
	expect("{{ messages[0]['role'] }} {{ messages[1:] | length }} {{ messages[-1].content }}",
	       "{\"messages\":[{\"role\":\"system\",\"content\":\"s\"},"
	       "{\"role\":\"user\",\"content\":\"u\"}]}",
	       "system 1 u");
	expect("{{ 'ab' ~ 'cd' | upper }} {{ -2 if false else 5 }}", NULL, "abCD 5");
	expect("{{ range(3) }} {{ range(1, 7, 2) }} {{ range(5, 0, -2) }}", NULL,
	       "[0, 1, 2] [1, 3, 5] [5, 3, 1]");
}

static void test_filters(void **state)
{
	expect("{{ '  hi  ' | trim }}|{{ 'Hi' | upper }}{{ 'Hi' | lower }} "
	       "{{ 'hello world' | capitalize }} {{ 'hello wORLD' | title }} {{ xs | length }} "
	       "{{ 'h\xc3\xa9llo' | length }} {{ nope | default('dflt') }} {{ '' | default('e', "
	       "true) }} "
	       "{{ '' | default('e') }}{{ xs | join(', ') }} {{ xs | first }} {{ xs | last }} "
	       "{{ 'aXbX' | replace('X', '-') }} {{ 3 | string ~ '!' }} {{ d | items }} "
	       "{{ '<b>' | safe }} {{ xs | count }}",
	       "{\"xs\":[1,2,3],\"d\":{\"a\":\"A\"}}",
	       "hi|HIhi Hello world Hello World 3 5 dflt e 1, 2, 3 1 3 a-b- 3! [['a', 'A']] <b> 3");
	expect("{{ v | tojson }}",
	       "{\"v\":{\"a\":[1,2.5,\"x\\\"y\\n\"],\"b\":null,\"c\":true,"
	       "\"u\":\"\xc3\xa9<>\"}}",
	       "{\"a\": [1, 2.5, \"x\\\"y\\n\"], \"b\": null, \"c\": true, \"u\": \"\xc3\xa9<>\"}");
	expect("{{ v | tojson(indent=2) }}", "{\"v\":{\"a\":[1,{\"b\":[]}],\"c\":{}}}",
	       "{\n  \"a\": [\n    1,\n    {\n      \"b\": []\n    }\n  ],\n  \"c\": {}\n}");
	expect("{{ 1 | int }} {{ '42' | int }} {{ 'x' | int }} {{ 3.9 | int }} {{ 'abc' | list }}",
	       NULL, "1 42 0 3 ['a', 'b', 'c']");
}

static void test_tests(void **state)
{
	expect("{{ x is defined }} {{ y is defined }} {{ y is not defined }} {{ n is none }} "
	       "{{ x is string }} {{ d is mapping }} {{ xs is iterable }} {{ xs is sequence }} "
	       "{{ 1 is number }} {{ t is true }} {{ t is false }} {{ x is number }} "
	       "{{ n is not none }} {{ y is undefined }}",
	       "{\"x\":\"s\",\"n\":null,\"d\":{},\"xs\":[],\"t\":true}",
	       "True False True True True True True True True True False False False True");
}

static void test_methods(void **state)
{
	expect(
	    "{{ '  a b  '.strip() }}|{{ 'xxaxx'.lstrip('x') }}|{{ 'xxaxx'.rstrip('x') }}|"
	    "{{ 'abc'.startswith('ab') }} {{ 'abc'.endswith('bc') }} "
	    "{{ 'abc'.startswith(('x', 'a')) }} {{ ' a  b '.split() }} {{ 'a,b,,c'.split(',') }} "
	    "{{ 'a b c'.split(' ', 1) }} {{ 'ab'.upper() }} {{ 'AB'.lower() }} "
	    "{{ 'hello there'.title() }} {{ 'aaa'.replace('a', 'b', 2) }} "
	    "{{ 'hi you'.capitalize() }}",
	    NULL,
	    "a b|axx|xxa|True True True ['a', 'b'] ['a', 'b', '', 'c'] ['a', 'b c'] AB ab "
	    "Hello There bba Hi you");
	expect("{{ d.get('a') }} {{ d.get('z') }} {{ d.get('z', 'dz') }} {{ d.keys() }} "
	       "{{ d.values() }} {{ d.items() }}",
	       "{\"d\":{\"a\":1,\"b\":2}}", "1 None dz ['a', 'b'] [1, 2] [['a', 1], ['b', 2]]");
	/* content given as parts, the way templates read it */
	expect("{% for p in m.content %}{% if p.type == 'text' %}{{ p.text.strip() }}{% endif %}"
	       "{% endfor %}",
	       "{\"m\":{\"content\":[{\"type\":\"text\",\"text\":\" a \"},{\"type\":\"image\"}]}}",
	       "a");
}

/* ---- refusals at parse time: one line, construct, line, column ---- */

static void test_refusals(void **state)
{
	expect_refused("a\n\n{{ x | wordwrap }}",
	               "chat template: line 3, column 8: filter \"wordwrap\" is not supported");
	expect_refused("{% macro m() %}{% endmacro %}",
	               "chat template: line 1, column 4: statement \"macro\" is not supported");
	expect_refused("{{ x.format(1) }}",
	               "chat template: line 1, column 6: method \"format\" is not supported");
	expect_refused("{{ cycler(1) }}",
	               "chat template: line 1, column 4: function \"cycler\" is not supported");
	expect_refused("{% if x is divisibleby 3 %}{% endif %}",
	               "chat template: line 1, column 12: test \"divisibleby\" is not supported");
	expect_refused("{% for x in y %}\n{{ x }}",
	               "chat template: line 2, column 8: \"for\" opened at line 1, column 4 is "
	               "never closed");
	expect_refused("{% endif %}", "chat template: line 1, column 4: unexpected \"endif\"");
	expect_refused("{{ 'abc }}", "chat template: line 1, column 4: unterminated string");
	expect_refused("{{ x ", "chat template: line 1, column 1: unclosed {{ }} tag");
	expect_refused("{# x", "chat template: line 1, column 1: unclosed comment");
	expect_refused("{{ 1 < 2 < 3 }}",
	               "chat template: line 1, column 10: chained comparison is not supported");
	expect_refused("{% break %}",
	               "chat template: line 1, column 4: \"break\" outside a for loop");
	expect_refused("{{ x | replace('a') }}",
	               "chat template: line 1, column 8: filter \"replace\" takes 2 to 3 "
	               "arguments, not 1");
	expect_refused("{{ x | tojson(sort_keys=true) }}",
	               "chat template: line 1, column 15: keyword argument \"sort_keys\" of "
	               "filter \"tojson\" is not supported");
	expect_refused("{% set x %}a{% endset %}",
	               "chat template: line 1, column 4: block set ({% set x %}...{% endset %}) "
	               "is not supported");
	expect_refused("{{ x }\x01 }}", "chat template: line 1, column 7: unexpected byte 0x01");
	expect_refused("\xff", "chat template: line 1, column 1: the template is not valid UTF-8");
	expect_refused("{{ a $ b }}", "chat template: line 1, column 6: unexpected character '$'");
}

static void test_nesting_refused(void **state)
{
	char src[1024];
	size_t n = 0;
	struct tmpl *t;
	char err[256];

	n += (size_t)snprintf(src + n, sizeof(src) - n, "{{ ");
	for (int i = 0; i < 200; i++)
		src[n++] = '(';
	src[n++] = '1';
	for (int i = 0; i < 200; i++)
		src[n++] = ')';
	n += (size_t)snprintf(src + n, sizeof(src) - n, " }}");
	assert_int_equal(tmpl_parse(&t, src, n, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "nested more than"));
}

/* ---- render errors ---- */

static void test_render_errors(void **state)
{
	char err[512], *got;

	expect_render_error("{{ raise_exception('Bad roles: ' ~ r) }}", "{\"r\":\"x\"}", -EPERM,
	                    "Bad roles: x");
	expect_render_error("{{ 'a' + 1 }}", NULL, -EINVAL,
	                    "chat template: line 1, column 8: unsupported operand types for +: "
	                    "'str' and 'int'");
	expect_render_error("{{ 'x' + eos_token }}", NULL, -EINVAL,
	                    "\"eos_token\" is undefined (used with '+')");
	expect_render_error("{{ m.content + 'x' }}", "{\"m\":{}}", -EINVAL,
	                    "attribute \"content\" is undefined");
	expect_render_error("{{ 1 // 0 }}", NULL, -EINVAL, "by zero");
	expect_render_error("{{ 1 < 'a' }}", NULL, -EINVAL,
	                    "'<' is not supported between 'int' and 'str'");
	expect_render_error("{% for x in 5 %}{% endfor %}", NULL, -EINVAL,
	                    "'int' object is not iterable");
	expect_render_error("{{ x.strip() }}", NULL, -EINVAL,
	                    "method \"strip\" called on an undefined value");
	expect_render_error("{{ 5.strip() }}", NULL, -EINVAL,
	                    "'int' object has no method \"strip\"");
	expect_render_error("{{ 'x' % 1 }}", NULL, -EINVAL, "string formatting");
	expect_render_error("{{ 2 ** 64 }}", NULL, -EINVAL, "integer overflow");
	expect_render_error("{{ x | tojson }}", NULL, -EINVAL, "tojson of an undefined value");
	/* ceilings: loop iterations, string size, the output buffer */
	expect_render_error("{% for i in range(1000) %}{% for j in range(1000) %}{% endfor %}"
	                    "{% endfor %}",
	                    NULL, -EINVAL, "loops run more than 100000 times");
	expect_render_error("{{ 'x' * 100000000 }}", NULL, -EINVAL, "exceeds");
	expect_render_error("{{ range(1000000) }}", NULL, -EINVAL, "range() of more than");
	assert_int_equal(run("{% for i in range(100) %}0123456789{% endfor %}", NULL, 50, &got, err,
	                     sizeof(err)),
	                 -ENOSPC);
	assert_non_null(strstr(err, "exceeds 50 bytes"));
	free(got);
}

/* A template renders many times with different contexts. */
static void test_reuse(void **state)
{
	const char *src = "{% for m in messages %}{{ m.role }}:{{ m.content }};{% endfor %}";
	struct tmpl *t;
	char err[256];

	assert_int_equal(tmpl_parse(&t, src, strlen(src), err, sizeof(err)), 0);
	for (int i = 0; i < 3; i++) {
		struct buf b;
		char ctx[128];
		snprintf(ctx, sizeof(ctx),
		         "{\"messages\":[{\"role\":\"user\",\"content\":\"%d\"}]}", i);
		json_t *v = vars_of(ctx);
		char want[32];
		buf_init(&b, 1024);
		assert_int_equal(tmpl_render(t, v, &b, err, sizeof(err)), 0);
		snprintf(want, sizeof(want), "user:%d;", i);
		assert_string_equal(b.data, want);
		buf_release(&b);
		json_decref(v);
	}
	tmpl_free(t);
}

/* ---- whole templates of five families ---- */

enum conversation { ONE_USER, SYSTEM_USER, MULTI_TURN, PARTS };

static const char *const conversations[] = {
    [ONE_USER] = "[{\"role\":\"user\",\"content\":\"Hello\"}]",
    [SYSTEM_USER] = "[{\"role\":\"system\",\"content\":\"Be brief.\"},"
                    "{\"role\":\"user\",\"content\":\"Hello\"}]",
    [MULTI_TURN] = "[{\"role\":\"system\",\"content\":\"Be brief.\"},"
                   "{\"role\":\"user\",\"content\":\"Hi\"},"
                   "{\"role\":\"assistant\",\"content\":\" Hello! How can I help? \"},"
                   "{\"role\":\"user\",\"content\":\"Tell me a joke.\"}]",
    [PARTS] = "[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"Describe \"},"
              "{\"type\":\"image\"},{\"type\":\"text\",\"text\":\"this.\"}]}]",
};

struct family_case {
	enum conversation conv;
	int add_generation_prompt;
	const char *want;
};

static char *load_template(const char *name, size_t *len)
{
	const char *root = getenv("MEDIAD_SRC");
	char path[512];
	FILE *fp;
	char *s;
	long n;

	snprintf(path, sizeof(path), "%s/tests/fixtures/templates/%s", root ? root : ".", name);
	fp = fopen(path, "rb");
	if (!fp)
		fail_msg("cannot open %s", path);
	fseek(fp, 0, SEEK_END);
	n = ftell(fp);
	fseek(fp, 0, SEEK_SET);
	s = xmalloc((size_t)n + 1);
	assert_int_equal(fread(s, 1, (size_t)n, fp), (size_t)n);
	s[n] = 0;
	fclose(fp);
	*len = (size_t)n;
	return s;
}

static struct tmpl *parse_fixture(const char *name)
{
	size_t len;
	char *src = load_template(name, &len), err[512];
	struct tmpl *t;

	if (tmpl_parse(&t, src, len, err, sizeof(err)))
		fail_msg("%s refused: %s", name, err);
	free(src);
	return t;
}

static int render_conv(const struct tmpl *t, const char *messages, int gen, const char *extra,
                       struct buf *b, char *err, size_t errlen)
{
	char ctx[2048];
	json_t *v;
	int rc;

	snprintf(ctx, sizeof(ctx),
	         "{\"messages\":%s,\"add_generation_prompt\":%s,\"bos_token\":\"<s>\","
	         "\"eos_token\":\"</s>\"%s%s}",
	         messages, gen ? "true" : "false", extra ? "," : "", extra ? extra : "");
	v = vars_of(ctx);
	buf_init(b, 1 << 20);
	rc = tmpl_render(t, v, b, err, errlen);
	json_decref(v);
	return rc;
}

static void check_family(const char *name, const struct family_case *cases, size_t n)
{
	struct tmpl *t = parse_fixture(name);

	for (size_t i = 0; i < n; i++) {
		struct buf b;
		char err[512];
		int rc = render_conv(t, conversations[cases[i].conv],
		                     cases[i].add_generation_prompt, NULL, &b, err, sizeof(err));
		if (rc)
			fail_msg("%s case %zu: render failed: %s", name, i, err);
		if (strcmp(b.data, cases[i].want))
			fail_msg("%s case %zu:\n  got:  [%s]\n  want: [%s]", name, i, b.data,
			         cases[i].want);
		buf_release(&b);
	}
	tmpl_free(t);
}

#define SYS_QWEN "<|im_start|>system\nYou are Qwen, a helpful assistant.<|im_end|>\n"
#define SYS_SMOL                                                                                   \
	"<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "     \
	"Face<|im_end|>\n"
#define IM(role, text) "<|im_start|>" role "\n" text "<|im_end|>\n"
#define IM_GEN         "<|im_start|>assistant\n"
#define L3(role, text) "<|start_header_id|>" role "<|end_header_id|>\n\n" text "<|eot_id|>"
#define L3_GEN         "<|start_header_id|>assistant<|end_header_id|>\n\n"

static void test_llama3(void **state)
{
	static const struct family_case cases[] = {
	    {ONE_USER, 0, "<s>" L3("user", "Hello")},
	    {ONE_USER, 1, "<s>" L3("user", "Hello") L3_GEN},
	    {SYSTEM_USER, 0, "<s>" L3("system", "Be brief.") L3("user", "Hello")},
	    {SYSTEM_USER, 1, "<s>" L3("system", "Be brief.") L3("user", "Hello") L3_GEN},
	    /* | trim takes the assistant turn's spaces */
	    {MULTI_TURN, 0,
	     "<s>" L3("system", "Be brief.") L3("user", "Hi")
	         L3("assistant", "Hello! How can I help?") L3("user", "Tell me a joke.")},
	    {MULTI_TURN, 1,
	     "<s>" L3("system", "Be brief.") L3("user", "Hi")
	         L3("assistant", "Hello! How can I help?") L3("user", "Tell me a joke.") L3_GEN},
	    {PARTS, 0, "<s>" L3("user", "Describe this.")},
	    {PARTS, 1, "<s>" L3("user", "Describe this.") L3_GEN},
	};
	check_family("llama3.jinja", cases, ARRAY_SIZE(cases));
}

static void test_chatml_qwen(void **state)
{
	static const struct family_case cases[] = {
	    {ONE_USER, 0, SYS_QWEN IM("user", "Hello")},
	    {ONE_USER, 1, SYS_QWEN IM("user", "Hello") IM_GEN},
	    {SYSTEM_USER, 0, IM("system", "Be brief.") IM("user", "Hello")},
	    {SYSTEM_USER, 1, IM("system", "Be brief.") IM("user", "Hello") IM_GEN},
	    {MULTI_TURN, 0,
	     IM("system", "Be brief.") IM("user", "Hi") IM("assistant", " Hello! How can I help? ")
	         IM("user", "Tell me a joke.")},
	    {MULTI_TURN, 1,
	     IM("system", "Be brief.") IM("user", "Hi") IM("assistant", " Hello! How can I help? ")
	         IM("user", "Tell me a joke.") IM_GEN},
	    {PARTS, 0, SYS_QWEN IM("user", "Describe this.")},
	    {PARTS, 1, SYS_QWEN IM("user", "Describe this.") IM_GEN},
	};
	struct tmpl *t;
	struct buf b;
	char err[512];

	check_family("chatml_qwen.jinja", cases, ARRAY_SIZE(cases));
	/* with tools: the system turn lists them as JSON, one a line */
	t = parse_fixture("chatml_qwen.jinja");
	assert_int_equal(
	    render_conv(t, conversations[SYSTEM_USER], 1,
	                "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"get_"
	                "weather\",\"parameters\":{\"city\":{\"type\":\"string\"}}}}]",
	                &b, err, sizeof(err)),
	    0);
	assert_string_equal(b.data,
	                    "<|im_start|>system\nBe brief.\n\n# Tools\n<tools>\n"
	                    "{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", "
	                    "\"parameters\": {\"city\": {\"type\": \"string\"}}}}\n"
	                    "</tools><|im_end|>\n" IM("user", "Hello") IM_GEN);
	buf_release(&b);
	tmpl_free(t);
}

static void test_mistral(void **state)
{
	/* add_generation_prompt changes nothing: the prompt ends with [/INST] */
	static const struct family_case cases[] = {
	    {ONE_USER, 0, "<s>[INST] Hello [/INST]"},
	    {ONE_USER, 1, "<s>[INST] Hello [/INST]"},
	    {SYSTEM_USER, 0, "<s>[INST] Be brief.\n\nHello [/INST]"},
	    {SYSTEM_USER, 1, "<s>[INST] Be brief.\n\nHello [/INST]"},
	    {MULTI_TURN, 0,
	     "<s>[INST] Be brief.\n\nHi [/INST]  Hello! How can I help? </s>"
	     "[INST] Tell me a joke. [/INST]"},
	    {MULTI_TURN, 1,
	     "<s>[INST] Be brief.\n\nHi [/INST]  Hello! How can I help? </s>"
	     "[INST] Tell me a joke. [/INST]"},
	    {PARTS, 0, "<s>[INST] Describe this. [/INST]"},
	    {PARTS, 1, "<s>[INST] Describe this. [/INST]"},
	};
	static const char *const bad[] = {
	    "[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"user\",\"content\":\"b\"}]",
	    "[{\"role\":\"assistant\",\"content\":\"a\"}]",
	    "[{\"role\":\"system\",\"content\":\"s\"},{\"role\":\"user\",\"content\":\"a\"},"
	    "{\"role\":\"assistant\",\"content\":\"b\"},{\"role\":\"assistant\",\"content\":\"c\"}"
	    "]",
	};
	struct tmpl *t;

	check_family("mistral.jinja", cases, ARRAY_SIZE(cases));
	t = parse_fixture("mistral.jinja");
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		struct buf b;
		char err[512];
		assert_int_equal(render_conv(t, bad[i], 1, NULL, &b, err, sizeof(err)), -EPERM);
		assert_string_equal(err, "Conversation roles must alternate "
		                         "user/assistant/user/assistant/...");
		buf_release(&b);
	}
	tmpl_free(t);
}

static void test_zephyr(void **state)
{
	/* every {{ }} line keeps its newline: trim_blocks trims after block tags only */
	static const struct family_case cases[] = {
	    {ONE_USER, 0, "<|user|>\nHello</s>\n"},
	    {ONE_USER, 1, "<|user|>\nHello</s>\n<|assistant|>\n"},
	    {SYSTEM_USER, 0, "<|system|>\nBe brief.</s>\n<|user|>\nHello</s>\n"},
	    {SYSTEM_USER, 1, "<|system|>\nBe brief.</s>\n<|user|>\nHello</s>\n<|assistant|>\n"},
	    {MULTI_TURN, 0,
	     "<|system|>\nBe brief.</s>\n<|user|>\nHi</s>\n<|assistant|>\n Hello! How can I "
	     "help? </s>\n<|user|>\nTell me a joke.</s>\n"},
	    {MULTI_TURN, 1,
	     "<|system|>\nBe brief.</s>\n<|user|>\nHi</s>\n<|assistant|>\n Hello! How can I "
	     "help? </s>\n<|user|>\nTell me a joke.</s>\n<|assistant|>\n"},
	    {PARTS, 0, "<|user|>\nDescribe this.</s>\n"},
	    {PARTS, 1, "<|user|>\nDescribe this.</s>\n<|assistant|>\n"},
	};
	check_family("zephyr.jinja", cases, ARRAY_SIZE(cases));
}

static void test_smollm2(void **state)
{
	static const struct family_case cases[] = {
	    {ONE_USER, 0, SYS_SMOL IM("user", "Hello")},
	    {ONE_USER, 1, SYS_SMOL IM("user", "Hello") IM_GEN},
	    {SYSTEM_USER, 0, IM("system", "Be brief.") IM("user", "Hello")},
	    {SYSTEM_USER, 1, IM("system", "Be brief.") IM("user", "Hello") IM_GEN},
	    {MULTI_TURN, 0,
	     IM("system", "Be brief.") IM("user", "Hi") IM("assistant", " Hello! How can I help? ")
	         IM("user", "Tell me a joke.")},
	    {MULTI_TURN, 1,
	     IM("system", "Be brief.") IM("user", "Hi") IM("assistant", " Hello! How can I help? ")
	         IM("user", "Tell me a joke.") IM_GEN},
	    {PARTS, 0, SYS_SMOL IM("user", "Describe this.")},
	    {PARTS, 1, SYS_SMOL IM("user", "Describe this.") IM_GEN},
	};
	check_family("smollm2.jinja", cases, ARRAY_SIZE(cases));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_output),
	    cmocka_unit_test(test_whitespace),
	    cmocka_unit_test(test_if),
	    cmocka_unit_test(test_for),
	    cmocka_unit_test(test_set_namespace),
	    cmocka_unit_test(test_expressions),
	    cmocka_unit_test(test_filters),
	    cmocka_unit_test(test_tests),
	    cmocka_unit_test(test_methods),
	    cmocka_unit_test(test_refusals),
	    cmocka_unit_test(test_nesting_refused),
	    cmocka_unit_test(test_render_errors),
	    cmocka_unit_test(test_reuse),
	    cmocka_unit_test(test_llama3),
	    cmocka_unit_test(test_chatml_qwen),
	    cmocka_unit_test(test_mistral),
	    cmocka_unit_test(test_zephyr),
	    cmocka_unit_test(test_smollm2),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
