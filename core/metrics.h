/*
 * core/metrics.h: a thread-safe registry of counters, gauges and histograms,
 * rendered in the Prometheus text exposition format (version 0.0.4).
 *
 *   bm_metrics_counter_add(m, "bm_gateway_notifications_total", "result=\"ok\"", 1);
 *
 * A series is a (name, labels) pair, created on first use: only creation takes
 * the registry's mutex; later updates find the series without a lock and change
 * it with atomic operations, so any thread may update any series. The labels
 * string is exposition syntax without the braces (`k="v",k2="v2"`, values
 * already escaped) or "" / NULL for none.
 *
 * Series of one name form a family with one type; an update that would create a
 * series past the registry's cap, give a name a second type, or use a bad name
 * or over-long labels is dropped and counted in bm_metrics_refused_total, which
 * every render shows. Updates never fail otherwise and return nothing.
 *
 * Ownership: the registry copies every name, label string and help text; the
 * caller's strings stay the caller's. bm_metrics_free releases everything.
 */
#ifndef BM_CORE_METRICS_H
#define BM_CORE_METRICS_H

#include "core/util.h"

#include <stddef.h>
#include <stdint.h>

#define BM_METRICS_NAME_MAX       96  /* bytes of a name, NUL included */
#define BM_METRICS_LABELS_MAX     256 /* bytes of a label string, NUL included */
#define BM_METRICS_DEFAULT_SERIES 4096
#define BM_METRICS_MAX_COLLECTORS 16
#define BM_METRICS_N_BUCKETS      11 /* histogram upper bounds, in seconds, plus +Inf */

/* The upper bounds of every histogram: .005 .01 .025 .05 .1 .25 .5 1 2.5 5 10. */
extern const double bm_metrics_buckets[BM_METRICS_N_BUCKETS];

typedef enum {
    BM_METRIC_COUNTER,
    BM_METRIC_GAUGE,
    BM_METRIC_HISTOGRAM,
} bm_metric_type_t;

typedef struct bm_metrics bm_metrics_t;

/* Called by bm_metrics_render before it renders, on the rendering thread, to
 * set gauges from elsewhere (queue depth, breaker states, ...). */
typedef void (*bm_metrics_collect_fn)(void *ud, bm_metrics_t *m);

/* A registry of at most max_series series (0: BM_METRICS_DEFAULT_SERIES). */
bm_metrics_t *bm_metrics_new(size_t max_series);
/* Frees the registry and every series; NULL is fine. No update may run then. */
void bm_metrics_free(bm_metrics_t *m);

/*
 * Gives the family `name` its type and the HELP text rendered above it
 * (copied). Optional: a family without it renders a TYPE line only.
 * BM_EINVAL for a bad name or a family that already has another type,
 * BM_ETOOBIG past the cap.
 */
int bm_metrics_describe(bm_metrics_t *m, const char *name, bm_metric_type_t type, const char *help);

/* Adds n to a counter. */
void bm_metrics_counter_add(bm_metrics_t *m, const char *name, const char *labels, uint64_t n);
/* Sets a gauge to v / adds delta (which may be negative) to it. */
void bm_metrics_gauge_set(bm_metrics_t *m, const char *name, const char *labels, double v);
void bm_metrics_gauge_add(bm_metrics_t *m, const char *name, const char *labels, double delta);
/* Counts one observation (e.g. a latency in seconds) into a histogram. */
void bm_metrics_histogram_observe(bm_metrics_t *m, const char *name, const char *labels,
                                  double seconds);

/* Registers fn(ud, m) to run at every render, in registration order; ud stays
 * the caller's and must outlive the registry. BM_ETOOBIG past
 * BM_METRICS_MAX_COLLECTORS. */
int bm_metrics_on_collect(bm_metrics_t *m, bm_metrics_collect_fn fn, void *ud);

/*
 * Runs the collect callbacks, then appends every family to out (the caller's
 * buffer, whose maximum bounds the text): families in the order they were
 * created, series in the order they were created. Renders are serialized.
 * BM_ETOOBIG when out is full (out then holds a cut text).
 */
int bm_metrics_render(bm_metrics_t *m, bm_buf_t *out);

#endif
