/* metrics.h: a small metrics registry with Prometheus text exposition 0.0.4.
 *
 * Families are declared once (name, help, type, label names); series are
 * found by their label values (a small hash per family) and created on first
 * use. Everything runs on the supervisor's event-loop thread: no locking.
 * The rendered text passes `promtool check metrics`. */
#ifndef MEDIAD_METRICS_H
#define MEDIAD_METRICS_H

#include <stddef.h>

#include "buf.h"

enum metric_type { METRIC_COUNTER, METRIC_GAUGE, METRIC_HISTOGRAM };

struct metrics;
struct metric_family;

/* An empty registry; metrics_free() releases it with every family and series
 * (NULL is a no-op). */
struct metrics *metrics_new(void);
void metrics_free(struct metrics *m);

/* labels: NULL-terminated array of label names (copied), may be NULL for no
 * labels. buckets (histograms only): ascending upper bounds, +Inf implied;
 * NULL selects default latency buckets (0.0005 .. 60 s). Counter names must
 * end in _total (asserted). Also asserted: metric name [a-zA-Z_:][a-zA-Z0-9_:]*,
 * label names [a-zA-Z_][a-zA-Z0-9_]* not starting "__", distinct, no "le" on
 * a histogram; non-empty help; family name not already declared; bounds finite
 * and strictly ascending. Returned family is owned by the registry. */
struct metric_family *metrics_family(struct metrics *m, enum metric_type type, const char *name,
				     const char *help, const char *const *labels,
				     const double *buckets, size_t n_buckets);

/* values: label values in the family's label order (count must match;
 * values are escaped on output); may be NULL for a family without labels.
 * A series is created, zeroed, on first use. Wrong type, a NULL value or a
 * negative counter delta is a programming error and aborts.
 * metrics_add: counter/gauge. metrics_set: gauge (or counter to an absolute
 * value). metrics_observe: histogram. */
void metrics_add(struct metric_family *f, const char *const *values, double delta);
void metrics_set(struct metric_family *f, const char *const *values, double value);
void metrics_observe(struct metric_family *f, const char *const *values, double value);
/* Value of a counter/gauge series, _count of a histogram series (0 if
 * absent); never creates a series. For tests. */
double metrics_get(struct metric_family *f, const char *const *values);
/* Remove every series of a family (e.g. before re-setting one-hot gauges). */
void metrics_clear(struct metric_family *f);

/* Append the whole registry in text format 0.0.4. If out's ceiling is
 * reached nothing is appended (out is left as it was) and a warning logged. */
void metrics_render(struct metrics *m, struct buf *out);

#endif
