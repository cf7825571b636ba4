/* core/metrics.c: the metrics registry (see metrics.h for the contract). */
#include "core/metrics.h"

#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const double bm_metrics_buckets[BM_METRICS_N_BUCKETS] = {.005, .01, .025, .05, .1, .25,
                                                         .5,   1,   2.5,  5,   10};

static const char *const type_names[] = {"counter", "gauge", "histogram"};

typedef struct family family_t;

typedef struct series {
    family_t *family;
    struct series *next_in_family; /* creation order */
    char labels[BM_METRICS_LABELS_MAX];
    uint64_t hash;
    /* counter: the count; gauge: the bits of a double */
    _Atomic uint64_t value;
    /* histogram only: per-bucket counts (the last one is +Inf), sum bits, count */
    _Atomic uint64_t buckets[BM_METRICS_N_BUCKETS + 1];
    _Atomic uint64_t sum_bits;
    _Atomic uint64_t count;
} series_t;

struct family {
    char name[BM_METRICS_NAME_MAX];
    bm_metric_type_t type;
    char *help;
    series_t *head, *tail;
};

struct bm_metrics {
    pthread_mutex_t create_mu; /* creation of families and series */
    pthread_mutex_t render_mu; /* one render at a time */
    size_t max_series;
    size_t n_series;
    family_t **families; /* creation order, at most max_series */
    size_t n_families;
    /* open addressing, slots only ever go from NULL to a series: lock-free readers */
    _Atomic(series_t *) *slots;
    size_t n_slots; /* a power of two, at least twice max_series */
    _Atomic uint64_t refused;
    struct {
        bm_metrics_collect_fn fn;
        void *ud;
    } collectors[BM_METRICS_MAX_COLLECTORS];
    size_t n_collectors;
};

static uint64_t hash_series(const char *name, const char *labels)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (const char *p = name; *p != '\0'; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    h = (h ^ 0xff) * 1099511628211ULL;
    for (const char *p = labels; *p != '\0'; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    return h;
}

static bool valid_name(const char *name)
{
    size_t len = strlen(name);
    if (len == 0 || len >= BM_METRICS_NAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
        if (!alpha && (i == 0 || c < '0' || c > '9'))
            return false;
    }
    return true;
}

bm_metrics_t *bm_metrics_new(size_t max_series)
{
    bm_metrics_t *m = bm_calloc(1, sizeof(*m));
    m->max_series = max_series > 0 ? max_series : BM_METRICS_DEFAULT_SERIES;
    m->n_slots = 16;
    while (m->n_slots < 2 * m->max_series)
        m->n_slots *= 2;
    m->slots = bm_calloc(m->n_slots, sizeof(*m->slots));
    m->families = bm_calloc(m->max_series, sizeof(*m->families));
    if (pthread_mutex_init(&m->create_mu, NULL) != 0 ||
        pthread_mutex_init(&m->render_mu, NULL) != 0)
        abort(); /* only fails without memory: as bm_malloc */
    return m;
}

void bm_metrics_free(bm_metrics_t *m)
{
    if (m == NULL)
        return;
    for (size_t i = 0; i < m->n_families; i++) {
        family_t *f = m->families[i];
        for (series_t *s = f->head, *next; s != NULL; s = next) {
            next = s->next_in_family;
            free(s);
        }
        free(f->help);
        free(f);
    }
    free(m->families);
    free(m->slots);
    pthread_mutex_destroy(&m->create_mu);
    pthread_mutex_destroy(&m->render_mu);
    free(m);
}

/* Under create_mu. NULL when a new family would pass the cap. */
static family_t *family_get(bm_metrics_t *m, const char *name, bm_metric_type_t type, bool *clash)
{
    *clash = false;
    for (size_t i = 0; i < m->n_families; i++) {
        if (strcmp(m->families[i]->name, name) == 0) {
            *clash = m->families[i]->type != type;
            return *clash ? NULL : m->families[i];
        }
    }
    if (m->n_families == m->max_series)
        return NULL;
    family_t *f = bm_calloc(1, sizeof(*f));
    snprintf(f->name, sizeof(f->name), "%s", name);
    f->type = type;
    m->families[m->n_families++] = f;
    return f;
}

int bm_metrics_describe(bm_metrics_t *m, const char *name, bm_metric_type_t type, const char *help)
{
    int rc = BM_OK;
    bool clash;
    if (!valid_name(name))
        return BM_EINVAL;
    pthread_mutex_lock(&m->create_mu);
    family_t *f = family_get(m, name, type, &clash);
    if (f == NULL) {
        rc = clash ? BM_EINVAL : BM_ETOOBIG;
        goto out;
    }
    free(f->help);
    f->help = bm_strdup(help);
out:
    pthread_mutex_unlock(&m->create_mu);
    return rc;
}

static bool series_matches(const series_t *s, uint64_t h, const char *name, const char *labels)
{
    return s->hash == h && strcmp(s->family->name, name) == 0 && strcmp(s->labels, labels) == 0;
}

/* Under create_mu: the series, created when absent; NULL when refused. */
static series_t *series_create(bm_metrics_t *m, uint64_t h, const char *name, const char *labels,
                               bm_metric_type_t type)
{
    size_t mask = m->n_slots - 1, i = h & mask;
    series_t *s;
    while ((s = atomic_load_explicit(&m->slots[i], memory_order_acquire)) != NULL) {
        if (series_matches(s, h, name, labels))
            return s->family->type == type ? s : NULL;
        i = (i + 1) & mask;
    }
    bool clash;
    if (m->n_series == m->max_series)
        return NULL;
    family_t *f = family_get(m, name, type, &clash);
    if (f == NULL)
        return NULL;
    s = bm_calloc(1, sizeof(*s));
    s->family = f;
    s->hash = h;
    snprintf(s->labels, sizeof(s->labels), "%s", labels);
    if (f->tail != NULL)
        f->tail->next_in_family = s;
    else
        f->head = s;
    f->tail = s;
    m->n_series++;
    atomic_store_explicit(&m->slots[i], s, memory_order_release);
    return s;
}

/* The series (name, labels) of the given type, or NULL (counted) when refused. */
static series_t *series_get(bm_metrics_t *m, const char *name, const char *labels,
                            bm_metric_type_t type)
{
    if (labels == NULL)
        labels = "";
    if (!valid_name(name) || strlen(labels) >= BM_METRICS_LABELS_MAX)
        goto refused;
    uint64_t h = hash_series(name, labels);
    size_t mask = m->n_slots - 1, i = h & mask;
    series_t *s;
    while ((s = atomic_load_explicit(&m->slots[i], memory_order_acquire)) != NULL) {
        if (series_matches(s, h, name, labels)) {
            if (s->family->type != type)
                goto refused;
            return s;
        }
        i = (i + 1) & mask;
    }
    pthread_mutex_lock(&m->create_mu);
    s = series_create(m, h, name, labels, type);
    pthread_mutex_unlock(&m->create_mu);
    if (s != NULL)
        return s;
refused:
    atomic_fetch_add_explicit(&m->refused, 1, memory_order_relaxed);
    return NULL;
}

static uint64_t double_bits(double v)
{
    uint64_t b;
    memcpy(&b, &v, sizeof(b));
    return b;
}

static double bits_double(uint64_t b)
{
    double v;
    memcpy(&v, &b, sizeof(v));
    return v;
}

static void atomic_add_double(_Atomic uint64_t *slot, double delta)
{
    uint64_t old = atomic_load_explicit(slot, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(slot, &old, double_bits(bits_double(old) + delta),
                                                  memory_order_relaxed, memory_order_relaxed))
        ;
}

void bm_metrics_counter_add(bm_metrics_t *m, const char *name, const char *labels, uint64_t n)
{
    series_t *s = series_get(m, name, labels, BM_METRIC_COUNTER);
    if (s != NULL)
        atomic_fetch_add_explicit(&s->value, n, memory_order_relaxed);
}

void bm_metrics_gauge_set(bm_metrics_t *m, const char *name, const char *labels, double v)
{
    series_t *s = series_get(m, name, labels, BM_METRIC_GAUGE);
    if (s != NULL)
        atomic_store_explicit(&s->value, double_bits(v), memory_order_relaxed);
}

void bm_metrics_gauge_add(bm_metrics_t *m, const char *name, const char *labels, double delta)
{
    series_t *s = series_get(m, name, labels, BM_METRIC_GAUGE);
    if (s != NULL)
        atomic_add_double(&s->value, delta);
}

void bm_metrics_histogram_observe(bm_metrics_t *m, const char *name, const char *labels,
                                  double seconds)
{
    series_t *s = series_get(m, name, labels, BM_METRIC_HISTOGRAM);
    if (s == NULL)
        return;
    size_t b = 0;
    while (b < BM_METRICS_N_BUCKETS && !(seconds <= bm_metrics_buckets[b]))
        b++;
    atomic_fetch_add_explicit(&s->buckets[b], 1, memory_order_relaxed);
    atomic_add_double(&s->sum_bits, seconds);
    atomic_fetch_add_explicit(&s->count, 1, memory_order_relaxed);
}

int bm_metrics_on_collect(bm_metrics_t *m, bm_metrics_collect_fn fn, void *ud)
{
    int rc = BM_OK;
    pthread_mutex_lock(&m->render_mu);
    if (m->n_collectors == BM_METRICS_MAX_COLLECTORS) {
        rc = BM_ETOOBIG;
        goto out;
    }
    m->collectors[m->n_collectors].fn = fn;
    m->collectors[m->n_collectors].ud = ud;
    m->n_collectors++;
out:
    pthread_mutex_unlock(&m->render_mu);
    return rc;
}

/* The shortest of %.15g / %.17g that reads back as v; NaN and infinities as Prometheus spells them.
 */
static void format_double(double v, char *buf, size_t len)
{
    if (isnan(v)) {
        snprintf(buf, len, "NaN");
    } else if (isinf(v)) {
        snprintf(buf, len, "%s", v > 0 ? "+Inf" : "-Inf");
    } else {
        snprintf(buf, len, "%.15g", v);
        if (strtod(buf, NULL) != v)
            snprintf(buf, len, "%.17g", v);
    }
}

/* Appends `name{labels[,extra]} ` (braces only when there is a label). */
static int put_series_name(bm_buf_t *out, const char *name, const char *suffix, const char *labels,
                           const char *extra)
{
    bool any = labels[0] != '\0' || extra != NULL;
    return bm_buf_printf(out, "%s%s%s%s%s%s%s ", name, suffix, any ? "{" : "", labels,
                         labels[0] != '\0' && extra != NULL ? "," : "", extra != NULL ? extra : "",
                         any ? "}" : "");
}

static int render_histogram(bm_buf_t *out, const family_t *f, series_t *s)
{
    int rc = BM_OK;
    char le[80], num[64];
    uint64_t cumulative = 0;
    for (size_t b = 0; b <= BM_METRICS_N_BUCKETS && rc == BM_OK; b++) {
        cumulative += atomic_load_explicit(&s->buckets[b], memory_order_relaxed);
        if (b < BM_METRICS_N_BUCKETS)
            format_double(bm_metrics_buckets[b], num, sizeof(num));
        snprintf(le, sizeof(le), "le=\"%s\"", b < BM_METRICS_N_BUCKETS ? num : "+Inf");
        rc = put_series_name(out, f->name, "_bucket", s->labels, le);
        if (rc == BM_OK)
            rc = bm_buf_printf(out, "%" PRIu64 "\n", cumulative);
    }
    format_double(bits_double(atomic_load_explicit(&s->sum_bits, memory_order_relaxed)), num,
                  sizeof(num));
    if (rc == BM_OK)
        rc = put_series_name(out, f->name, "_sum", s->labels, NULL);
    if (rc == BM_OK)
        rc = bm_buf_printf(out, "%s\n", num);
    if (rc == BM_OK)
        rc = put_series_name(out, f->name, "_count", s->labels, NULL);
    if (rc == BM_OK)
        rc = bm_buf_printf(out, "%" PRIu64 "\n",
                           atomic_load_explicit(&s->count, memory_order_relaxed));
    return rc;
}

static int render_family(bm_buf_t *out, const family_t *f)
{
    int rc = BM_OK;
    char num[64];
    if (f->help != NULL)
        rc = bm_buf_printf(out, "# HELP %s %s\n", f->name, f->help);
    if (rc == BM_OK)
        rc = bm_buf_printf(out, "# TYPE %s %s\n", f->name, type_names[f->type]);
    for (series_t *s = f->head; s != NULL && rc == BM_OK; s = s->next_in_family) {
        uint64_t v = atomic_load_explicit(&s->value, memory_order_relaxed);
        if (f->type == BM_METRIC_HISTOGRAM) {
            rc = render_histogram(out, f, s);
            continue;
        }
        if (f->type == BM_METRIC_COUNTER)
            snprintf(num, sizeof(num), "%" PRIu64, v);
        else
            format_double(bits_double(v), num, sizeof(num));
        rc = put_series_name(out, f->name, "", s->labels, NULL);
        if (rc == BM_OK)
            rc = bm_buf_printf(out, "%s\n", num);
    }
    return rc;
}

int bm_metrics_render(bm_metrics_t *m, bm_buf_t *out)
{
    int rc = BM_OK;
    pthread_mutex_lock(&m->render_mu);
    for (size_t i = 0; i < m->n_collectors; i++)
        m->collectors[i].fn(m->collectors[i].ud, m);
    pthread_mutex_lock(&m->create_mu);
    for (size_t i = 0; i < m->n_families && rc == BM_OK; i++)
        if (m->families[i]->head != NULL)
            rc = render_family(out, m->families[i]);
    pthread_mutex_unlock(&m->create_mu);
    if (rc == BM_OK)
        rc = bm_buf_printf(out,
                           "# HELP bm_metrics_refused_total series updates dropped (cap, bad name "
                           "or type clash)\n# TYPE bm_metrics_refused_total counter\n"
                           "bm_metrics_refused_total %" PRIu64 "\n",
                           atomic_load_explicit(&m->refused, memory_order_relaxed));
    pthread_mutex_unlock(&m->render_mu);
    return rc;
}
