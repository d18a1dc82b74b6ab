/* metrics.c: the metrics registry behind GET /metrics (see metrics.h).
 *
 * A registry is an array of families in declaration order. A family holds its
 * series in insertion order (so the exposition is stable from scrape to
 * scrape) plus an open-addressing table of series indices keyed by a hash of
 * the label values. The hot path (metrics_add on an existing series) hashes
 * the caller's values and compares them with the stored copies: no allocation.
 * A series is one allocation made when it is first seen; it carries its raw
 * label values (for lookup) and its label block already escaped for the text
 * format (for rendering), so a scrape is a single pass of appends.
 *
 * Misuse (bad names, wrong label count, wrong type) is a programming error:
 * it is logged and aborts. */
#include "metrics.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util.h"

/* Longest text metrics_fmt_double() produces ("-2.2250738585072014e-308"). */
#define METRICS_NUM_MAX 32
#define METRICS_MIN_SLOTS 8

struct metric_series {
	uint32_t hash;
	double value;		/* counter/gauge value; histogram _sum */
	uint64_t count;		/* histogram _count (the +Inf bucket) */
	const char **values;	/* raw label values, in this allocation */
	const char *label_text;	/* `a="x",b="y"` escaped, in this allocation */
	size_t label_len;
	uint64_t buckets[];	/* histogram: cumulative count per finite bound */
};

struct metric_family {
	enum metric_type type;
	char *name;
	char *help;		/* already escaped for the HELP line */
	char **labels;
	size_t n_labels;
	double *bounds;		/* histogram upper bounds, ascending, finite */
	char **le;		/* the bounds formatted for le="..." */
	size_t n_bounds;
	struct metric_series **series;	/* insertion order */
	size_t n_series;
	size_t cap_series;
	uint32_t *slots;	/* 0 = empty, else index into series + 1 */
	size_t n_slots;		/* power of two */
};

struct metrics {
	struct metric_family **families;	/* declaration order */
	size_t n_families;
	size_t cap_families;
};

static const double metrics_default_buckets[] = {
	0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
	0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
};

static const char *const metrics_type_names[] = {
	[METRIC_COUNTER] = "counter",
	[METRIC_GAUGE] = "gauge",
	[METRIC_HISTOGRAM] = "histogram",
};

static void metrics_die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));

static void metrics_die(const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_error("metrics: %s", msg);
	abort();
}

/* Format v for the text format into out (METRICS_NUM_MAX bytes); returns the
 * length. Integral values print without exponent or fraction, others as the
 * shortest %g that reads back to the same double. */
static size_t metrics_fmt_double(char *out, double v)
{
	int n;

	if (isnan(v))
		return (size_t)snprintf(out, METRICS_NUM_MAX, "NaN");
	if (isinf(v))
		return (size_t)snprintf(out, METRICS_NUM_MAX, v > 0 ? "+Inf" : "-Inf");
	if (v == 0)
		return (size_t)snprintf(out, METRICS_NUM_MAX, "0");
	if (fabs(v) < 9007199254740992.0 && v == trunc(v))
		return (size_t)snprintf(out, METRICS_NUM_MAX, "%.0f", v);
	for (int prec = 15; prec < 17; prec++) {
		n = snprintf(out, METRICS_NUM_MAX, "%.*g", prec, v);
		if (strtod(out, NULL) == v)
			return (size_t)n;
	}
	return (size_t)snprintf(out, METRICS_NUM_MAX, "%.17g", v);
}

/* Escape src for a HELP line (backslash, newline) or, with quote set, for a
 * label value (also double quote). Writes to dst when it is not NULL; returns
 * the escaped length either way (no terminator written or counted). */
static size_t metrics_escape(char *dst, const char *src, int quote)
{
	size_t n = 0;

	for (const char *p = src; *p; p++) {
		char c = *p;

		if (c == '\\' || c == '\n' || (quote && c == '"')) {
			if (dst) {
				dst[n] = '\\';
				dst[n + 1] = c == '\n' ? 'n' : c;
			}
			n += 2;
		} else {
			if (dst)
				dst[n] = c;
			n++;
		}
	}
	return n;
}

static int metrics_name_ok(const char *s, int colon)
{
	if (!*s)
		return 0;
	for (const char *p = s; *p; p++) {
		char c = *p;
		int alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
			    (colon && c == ':');

		if (!alpha && (p == s || c < '0' || c > '9'))
			return 0;
	}
	return 1;
}

static int metrics_ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);

	return n >= k && !memcmp(s + n - k, suffix, k);
}

/* FNV-1a over the label values, each followed by 0xff (never in UTF-8). */
static uint32_t metrics_hash(const struct metric_family *f, const char *const *values)
{
	uint32_t h = 2166136261u;

	for (size_t i = 0; i < f->n_labels; i++) {
		const unsigned char *p = (const unsigned char *)values[i];

		if (!p)
			metrics_die("%s: label value %zu (%s) is NULL", f->name, i, f->labels[i]);
		for (; *p; p++)
			h = (h ^ *p) * 16777619u;
		h = (h ^ 0xffu) * 16777619u;
	}
	return h;
}

static int metrics_series_match(const struct metric_family *f, const struct metric_series *s,
				uint32_t hash, const char *const *values)
{
	if (s->hash != hash)
		return 0;
	for (size_t i = 0; i < f->n_labels; i++)
		if (strcmp(s->values[i], values[i]))
			return 0;
	return 1;
}

/* Slot holding the series with these values, or the empty slot where it
 * would go. The table is never full (load <= 1/2). */
static size_t metrics_probe(const struct metric_family *f, const char *const *values,
			    uint32_t hash)
{
	size_t mask = f->n_slots - 1;
	size_t i = hash & mask;

	while (f->slots[i]) {
		if (metrics_series_match(f, f->series[f->slots[i] - 1], hash, values))
			break;
		i = (i + 1) & mask;
	}
	return i;
}

static void metrics_grow_slots(struct metric_family *f)
{
	size_t n = f->n_slots * 2, mask = n - 1;

	free(f->slots);
	f->slots = xcalloc(n, sizeof(*f->slots));
	f->n_slots = n;
	for (size_t k = 0; k < f->n_series; k++) {
		size_t i = f->series[k]->hash & mask;

		while (f->slots[i])
			i = (i + 1) & mask;
		f->slots[i] = (uint32_t)(k + 1);
	}
}

/* One allocation: the struct, bucket counts, value pointers, the raw values
 * and the escaped label block. */
static struct metric_series *metrics_series_new(const struct metric_family *f,
						const char *const *values, uint32_t hash)
{
	struct metric_series *s;
	size_t raw = 0, text = 0, size;
	char *p;

	for (size_t i = 0; i < f->n_labels; i++) {
		raw += strlen(values[i]) + 1;
		/* name="value", */
		text += strlen(f->labels[i]) + 4 + metrics_escape(NULL, values[i], 1);
	}
	size = sizeof(*s) + f->n_bounds * sizeof(s->buckets[0]) +
	       f->n_labels * sizeof(char *) + raw + text;
	s = xcalloc(1, size);
	s->hash = hash;
	s->values = (const char **)(void *)(s->buckets + f->n_bounds);
	p = (char *)(s->values + f->n_labels);
	for (size_t i = 0; i < f->n_labels; i++) {
		size_t len = strlen(values[i]) + 1;

		memcpy(p, values[i], len);
		s->values[i] = p;
		p += len;
	}
	s->label_text = p;
	for (size_t i = 0; i < f->n_labels; i++) {
		size_t len = strlen(f->labels[i]);

		if (i)
			*p++ = ',';
		memcpy(p, f->labels[i], len);
		p += len;
		*p++ = '=';
		*p++ = '"';
		p += metrics_escape(p, values[i], 1);
		*p++ = '"';
	}
	s->label_len = (size_t)(p - s->label_text);
	return s;
}

/* The series for these values, created (zeroed) if absent. */
static struct metric_series *metrics_series(struct metric_family *f, const char *const *values)
{
	uint32_t hash = metrics_hash(f, values);
	size_t i = metrics_probe(f, values, hash);
	struct metric_series *s;

	if (f->slots[i])
		return f->series[f->slots[i] - 1];
	if (f->n_series >= UINT32_MAX - 1)
		metrics_die("%s: too many series", f->name);
	s = metrics_series_new(f, values, hash);
	if (f->n_series == f->cap_series) {
		f->cap_series = f->cap_series ? f->cap_series * 2 : 4;
		f->series = xrealloc(f->series, f->cap_series * sizeof(*f->series));
	}
	f->series[f->n_series++] = s;
	f->slots[i] = (uint32_t)f->n_series;
	if (f->n_series * 2 > f->n_slots)
		metrics_grow_slots(f);
	return s;
}

struct metrics *metrics_new(void)
{
	return xcalloc(1, sizeof(struct metrics));
}

static void metrics_family_free(struct metric_family *f)
{
	metrics_clear(f);
	for (size_t i = 0; i < f->n_labels; i++)
		free(f->labels[i]);
	for (size_t i = 0; i < f->n_bounds; i++)
		free(f->le[i]);
	free(f->labels);
	free(f->le);
	free(f->bounds);
	free(f->series);
	free(f->slots);
	free(f->name);
	free(f->help);
	free(f);
}

void metrics_free(struct metrics *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->n_families; i++)
		metrics_family_free(m->families[i]);
	free(m->families);
	free(m);
}

static void metrics_check_labels(enum metric_type type, const char *name,
				 const char *const *labels)
{
	for (size_t i = 0; labels && labels[i]; i++) {
		const char *l = labels[i];

		if (!metrics_name_ok(l, 0) || !strncmp(l, "__", 2))
			metrics_die("%s: invalid label name \"%s\"", name, l);
		if (type == METRIC_HISTOGRAM && !strcmp(l, "le"))
			metrics_die("%s: label \"le\" is reserved on histograms", name);
		for (size_t j = 0; j < i; j++)
			if (!strcmp(labels[j], l))
				metrics_die("%s: duplicate label \"%s\"", name, l);
	}
}

static void metrics_set_bounds(struct metric_family *f, const double *buckets, size_t n)
{
	char num[METRICS_NUM_MAX];

	if (!buckets) {
		buckets = metrics_default_buckets;
		n = ARRAY_SIZE(metrics_default_buckets);
	}
	f->n_bounds = n;
	f->bounds = xcalloc(n ? n : 1, sizeof(*f->bounds));
	f->le = xcalloc(n ? n : 1, sizeof(*f->le));
	for (size_t i = 0; i < n; i++) {
		if (!isfinite(buckets[i]) || (i && !(buckets[i] > buckets[i - 1])))
			metrics_die("%s: bucket bounds must be finite and ascending", f->name);
		f->bounds[i] = buckets[i];
		metrics_fmt_double(num, buckets[i]);
		f->le[i] = xstrdup(num);
	}
}

struct metric_family *metrics_family(struct metrics *m, enum metric_type type, const char *name,
				     const char *help, const char *const *labels,
				     const double *buckets, size_t n_buckets)
{
	struct metric_family *f;
	size_t n_labels = 0;

	if ((unsigned)type > METRIC_HISTOGRAM)
		metrics_die("unknown metric type %d", (int)type);
	if (!name || !metrics_name_ok(name, 1))
		metrics_die("invalid metric name \"%s\"", name ? name : "(null)");
	if (!help || !*help)
		metrics_die("%s: help text is required", name);
	if (type == METRIC_COUNTER && !metrics_ends_with(name, "_total"))
		metrics_die("%s: counter names must end in _total", name);
	if (type != METRIC_HISTOGRAM && buckets)
		metrics_die("%s: buckets given for a non-histogram", name);
	for (size_t i = 0; i < m->n_families; i++)
		if (!strcmp(m->families[i]->name, name))
			metrics_die("%s: family declared twice", name);
	metrics_check_labels(type, name, labels);
	while (labels && labels[n_labels])
		n_labels++;

	f = xcalloc(1, sizeof(*f));
	f->type = type;
	f->name = xstrdup(name);
	f->help = xmalloc(metrics_escape(NULL, help, 0) + 1);
	f->help[metrics_escape(f->help, help, 0)] = 0;
	f->n_labels = n_labels;
	f->labels = xcalloc(n_labels ? n_labels : 1, sizeof(*f->labels));
	for (size_t i = 0; i < n_labels; i++)
		f->labels[i] = xstrdup(labels[i]);
	if (type == METRIC_HISTOGRAM)
		metrics_set_bounds(f, buckets, n_buckets);
	f->n_slots = METRICS_MIN_SLOTS;
	f->slots = xcalloc(f->n_slots, sizeof(*f->slots));

	if (m->n_families == m->cap_families) {
		m->cap_families = m->cap_families ? m->cap_families * 2 : 16;
		m->families = xrealloc(m->families, m->cap_families * sizeof(*m->families));
	}
	m->families[m->n_families++] = f;
	return f;
}

static void metrics_check_type(const struct metric_family *f, int histogram, const char *op)
{
	if ((f->type == METRIC_HISTOGRAM) != histogram)
		metrics_die("%s: %s on a %s", f->name, op, metrics_type_names[f->type]);
}

void metrics_add(struct metric_family *f, const char *const *values, double delta)
{
	metrics_check_type(f, 0, "add");
	if (f->type == METRIC_COUNTER && !(delta >= 0))
		metrics_die("%s: counter delta %g is not >= 0", f->name, delta);
	metrics_series(f, values)->value += delta;
}

void metrics_set(struct metric_family *f, const char *const *values, double value)
{
	metrics_check_type(f, 0, "set");
	metrics_series(f, values)->value = value;
}

void metrics_observe(struct metric_family *f, const char *const *values, double value)
{
	struct metric_series *s;
	size_t i = 0;

	metrics_check_type(f, 1, "observe");
	s = metrics_series(f, values);
	/* Buckets are cumulative: every bound >= value counts it. NaN counts
	 * only in +Inf, as the Prometheus clients do. */
	while (i < f->n_bounds && !(value <= f->bounds[i]))
		i++;
	for (; i < f->n_bounds; i++)
		s->buckets[i]++;
	s->count++;
	s->value += value;
}

/* Histograms answer their _count (handy in tests). */
double metrics_get(struct metric_family *f, const char *const *values)
{
	uint32_t hash = metrics_hash(f, values);
	size_t i = metrics_probe(f, values, hash);
	const struct metric_series *s;

	if (!f->slots[i])
		return 0;
	s = f->series[f->slots[i] - 1];
	return f->type == METRIC_HISTOGRAM ? (double)s->count : s->value;
}

void metrics_clear(struct metric_family *f)
{
	for (size_t i = 0; i < f->n_series; i++)
		free(f->series[i]);
	f->n_series = 0;
	memset(f->slots, 0, f->n_slots * sizeof(*f->slots));
}

/* Rendering: appends accumulate the first failure in err; the caller rolls
 * back on failure, so a half-written scrape is never served. */
struct metrics_out {
	struct buf *b;
	int err;
};

static void metrics_put(struct metrics_out *o, const char *s, size_t n)
{
	if (!o->err)
		o->err = buf_append(o->b, s, n);
}

static void metrics_puts(struct metrics_out *o, const char *s)
{
	metrics_put(o, s, strlen(s));
}

/* `name<suffix>{labels[,le="x"]} ` -- everything before the value. */
static void metrics_put_head(struct metrics_out *o, const struct metric_family *f,
			     const struct metric_series *s, const char *suffix, const char *le)
{
	metrics_puts(o, f->name);
	metrics_puts(o, suffix);
	if (s->label_len || le) {
		metrics_put(o, "{", 1);
		metrics_put(o, s->label_text, s->label_len);
		if (le) {
			metrics_puts(o, s->label_len ? ",le=\"" : "le=\"");
			metrics_puts(o, le);
			metrics_put(o, "\"", 1);
		}
		metrics_put(o, "}", 1);
	}
	metrics_put(o, " ", 1);
}

static void metrics_put_double(struct metrics_out *o, double v)
{
	char num[METRICS_NUM_MAX];
	size_t n = metrics_fmt_double(num, v);

	num[n] = '\n';
	metrics_put(o, num, n + 1);
}

static void metrics_put_u64(struct metrics_out *o, uint64_t v)
{
	char num[METRICS_NUM_MAX];
	int n = snprintf(num, sizeof(num), "%" PRIu64 "\n", v);

	metrics_put(o, num, (size_t)n);
}

static void metrics_render_family(struct metrics_out *o, const struct metric_family *f)
{
	metrics_puts(o, "# HELP ");
	metrics_puts(o, f->name);
	metrics_put(o, " ", 1);
	metrics_puts(o, f->help);
	metrics_puts(o, "\n# TYPE ");
	metrics_puts(o, f->name);
	metrics_put(o, " ", 1);
	metrics_puts(o, metrics_type_names[f->type]);
	metrics_put(o, "\n", 1);
	for (size_t k = 0; k < f->n_series; k++) {
		const struct metric_series *s = f->series[k];

		if (f->type != METRIC_HISTOGRAM) {
			metrics_put_head(o, f, s, "", NULL);
			metrics_put_double(o, s->value);
			continue;
		}
		for (size_t i = 0; i < f->n_bounds; i++) {
			metrics_put_head(o, f, s, "_bucket", f->le[i]);
			metrics_put_u64(o, s->buckets[i]);
		}
		metrics_put_head(o, f, s, "_bucket", "+Inf");
		metrics_put_u64(o, s->count);
		metrics_put_head(o, f, s, "_sum", NULL);
		metrics_put_double(o, s->value);
		metrics_put_head(o, f, s, "_count", NULL);
		metrics_put_u64(o, s->count);
	}
}

/* If out's ceiling is reached, out is left as it was on entry (nothing is
 * appended) and a warning is logged: a truncated scrape would mislead. */
void metrics_render(struct metrics *m, struct buf *out)
{
	struct metrics_out o = { .b = out, .err = 0 };
	size_t start = out->len;

	for (size_t i = 0; i < m->n_families && !o.err; i++)
		metrics_render_family(&o, m->families[i]);
	if (o.err) {
		out->len = start;
		if (out->data)
			out->data[start] = 0;
		log_warn("metrics: exposition does not fit the output buffer (max %zu)", out->max);
	}
}
