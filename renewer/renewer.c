/*
 * renewer/renewer.c: watch channels over time and the polling backstop (see
 * renewer/renewer.h).
 */
#include "renewer/renewer.h"
#include "core/log.h"
#include "core/store.h"
#include "core/util.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TICK_MS         1000 /* polls are looked at this often */
#define CHANNEL_TICK_MS 5000 /* channels (new calendars, renewals, strays) this often */
#define WATCH_RETRY_MAX                                                                            \
    3600 /* a refused watch is tried again after [renewer] watch_retry                             \
           seconds, doubling up to an hour */
#define PURGE_AFTER_MS (24LL * 3600 * 1000) /* expired channel rows kept a day */

/* What the renewer remembers of one calendar between rounds. */
typedef struct cal_state {
    int64_t calendar_id;
    int64_t polled_ms; /* when it last enqueued a poll */
    int watch_delay_s; /* of the last refusal; 0: none since the start */
} cal_state_t;

struct bm_renewer {
    bm_renewer_opts_t o;
    pthread_t tid;
    bool started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool woken;
    atomic_bool stopping;
    volatile int cancel; /* the engine's stop: set with stopping */
    atomic_llong beat_ms;
    cal_state_t *cals;
    size_t n_cals;
    int64_t since_ms; /* the loop's start: poll slots before it are not caught up at once */
};

static cal_state_t *state_of(bm_renewer_t *r, int64_t calendar_id)
{
    for (size_t i = 0; i < r->n_cals; i++)
        if (r->cals[i].calendar_id == calendar_id)
            return &r->cals[i];
    r->cals = bm_realloc(r->cals, (r->n_cals + 1) * sizeof(*r->cals));
    cal_state_t *c = &r->cals[r->n_cals++];
    memset(c, 0, sizeof(*c));
    c->calendar_id = calendar_id;
    return c;
}

/* The short reason of a failed watch, for status: Google's error reason
 * without "push." ("webhookUrlUnauthorized"), else the HTTP status, else the
 * error's first words. */
static void refusal_reason(const char *err, char *out, size_t len)
{
    const char *h = strstr(err, "HTTP ");
    if (h == NULL) {
        snprintf(out, len, "%.40s", err);
        return;
    }
    const char *p = h + 5;
    while (*p >= '0' && *p <= '9')
        p++;
    if (*p == ' ')
        p++;
    if (strncmp(p, "push.", 5) == 0)
        p += 5;
    size_t n = strcspn(p, ": ");
    if (n == 0) /* no reason: the status */
        snprintf(out, len, "%.*s", (int)(p - h), h);
    else
        snprintf(out, len, "%.*s", (int)n, p);
}

/* A refused watch of cal: backs off (persisted with its reason, for status). */
static void watch_refused(bm_renewer_t *r, bm_store_t *st, const bm_calendar_t *cal,
                          const char *why)
{
    cal_state_t *c = state_of(r, cal->id);
    int first = r->o.cfg->renewer.watch_retry > 0 ? r->o.cfg->renewer.watch_retry : 60;
    c->watch_delay_s = c->watch_delay_s == 0                    ? first
                       : c->watch_delay_s * 2 > WATCH_RETRY_MAX ? WATCH_RETRY_MAX
                                                                : c->watch_delay_s * 2;
    char reason[64], err[256];
    refusal_reason(why, reason, sizeof(reason));
    if (bm_store_calendar_watch_refused(st, cal->id, reason,
                                        bm_now_ms() + (int64_t)c->watch_delay_s * 1000, err,
                                        sizeof(err)) != BM_OK)
        BM_LOG(BM_LOG_WARN, BM_MSG("cannot record a refused watch"), BM_KS("error", err));
    BM_LOG(BM_LOG_WARN, BM_MSG("no push channel: the calendar is polled"),
           BM_KS("calendar", cal->gcal_id), BM_KS("error", why), BM_KS("reason", reason),
           BM_KI("retry_s", c->watch_delay_s));
    if (r->o.metrics != NULL)
        bm_metrics_counter_add(r->o.metrics, "busymirror_watch_failures_total", NULL, 1);
}

/* Gives each calendar a live channel (new or renewed; the replaced one is
 * stopped after its successor answered); refusals back off; expired rows go. */
static void keep_channels(bm_renewer_t *r, bm_store_t *st, bm_engine_t *e,
                          const bm_calendar_t *cals, size_t n)
{
    const bm_config_t *cfg = r->o.cfg;
    char err[512];
    int64_t now = bm_now_ms();
    for (size_t i = 0; i < n && !r->stopping; i++) {
        if (cals[i].watch_retry_at > now) /* persisted: a restart waits as well */
            continue;
        if (bm_engine_watch_calendar(e, &cals[i], cfg->gateway.public_url, cfg->renewer.channel_ttl,
                                     err, sizeof(err)) == BM_OK)
            state_of(r, cals[i].id)->watch_delay_s = 0;
        else
            watch_refused(r, st, &cals[i], err);
    }
    size_t stopped = 0;
    if (!r->stopping && bm_engine_stop_stale(e, &stopped, err, sizeof(err)) != BM_OK)
        BM_LOG(BM_LOG_WARN, BM_MSG("cannot stop stale channels"), BM_KS("error", err));
    if (!r->stopping &&
        bm_store_channels_purge(st, now - PURGE_AFTER_MS, NULL, err, sizeof(err)) != BM_OK)
        BM_LOG(BM_LOG_WARN, BM_MSG("cannot purge expired channels"), BM_KS("error", err));
}

/* Enqueues a poll of every calendar due at its slot (bm_engine_poll_due: its
 * account's interval or the global one, its phase spread by its id). */
static void poll_due(bm_renewer_t *r, bm_store_t *st, const bm_calendar_t *cals, size_t n)
{
    int64_t now = bm_now_ms();
    int64_t *ids = bm_calloc(n > 0 ? n : 1, sizeof(*ids));
    size_t k = 0;
    char err[512];
    for (size_t i = 0; i < n; i++)
        if (bm_engine_poll_due(r->o.cfg, &cals[i], state_of(r, cals[i].id)->polled_ms, r->since_ms,
                               now))
            ids[k++] = cals[i].id;
    if (bm_engine_enqueue_polls(st, ids, k, now, err, sizeof(err)) != BM_OK) {
        BM_LOG(BM_LOG_WARN, BM_MSG("cannot enqueue polls"), BM_KS("error", err));
    } else if (k > 0) {
        for (size_t i = 0; i < k; i++)
            state_of(r, ids[i])->polled_ms = now;
        if (r->o.metrics != NULL)
            bm_metrics_counter_add(r->o.metrics, "busymirror_polls_total", NULL, k);
        bm_workers_wake(r->o.workers);
    }
    free(ids);
}

/* Sleeps until the next tick, a wake or the stop; whether it was woken. */
static bool rest(bm_renewer_t *r)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += TICK_MS / 1000;
    pthread_mutex_lock(&r->mu);
    while (!r->woken && !r->stopping)
        if (pthread_cond_timedwait(&r->cv, &r->mu, &ts) == ETIMEDOUT)
            break;
    bool woken = r->woken;
    r->woken = false;
    pthread_mutex_unlock(&r->mu);
    return woken;
}

static void renew(bm_renewer_t *r, bm_store_t *st, bm_engine_t *e)
{
    int64_t channels_ms = 0;
    bool woken = true; /* the first round looks at channels at once */
    r->since_ms = bm_now_ms();
    while (!r->stopping) {
        bm_calendar_t *cals = NULL;
        size_t n = 0;
        char err[512];
        atomic_store(&r->beat_ms, bm_mono_ms());
        if (bm_store_calendar_list(st, 0, NULL, true, &cals, &n, err, sizeof(err)) != BM_OK) {
            BM_LOG(BM_LOG_WARN, BM_MSG("renewer cannot list calendars"), BM_KS("error", err));
        } else {
            if (r->o.cfg->gateway.public_url != NULL &&
                (woken || bm_mono_ms() - channels_ms >= CHANNEL_TICK_MS)) {
                channels_ms = bm_mono_ms();
                keep_channels(r, st, e, cals, n);
            }
            poll_due(r, st, cals, n);
        }
        bm_store_calendars_free(cals, n);
        woken = rest(r);
    }
}

static void *renewer_main(void *ud)
{
    bm_renewer_t *r = ud;
    bm_store_t *st = NULL;
    bm_engine_t *e = NULL;
    char err[512];
    bm_engine_opts_t o = {.cfg = r->o.cfg, .hub = r->o.hub, .stop = &r->cancel, .drain_threads = 1};
    int rc = bm_store_open(r->o.cfg->store.path, &st, err, sizeof(err));
    if (rc == BM_OK)
        rc = bm_engine_new(&o, st, &e, err, sizeof(err));
    if (rc == BM_OK)
        renew(r, st, e);
    else
        BM_LOG(BM_LOG_ERROR, BM_MSG("renewer cannot start"), BM_KS("error", err));
    bm_engine_free(e);
    bm_store_close(st);
    return NULL;
}

int bm_renewer_start(const bm_renewer_opts_t *o, bm_renewer_t **out, char *err, size_t errlen)
{
    bm_renewer_t *r = bm_calloc(1, sizeof(*r));
    r->o = *o;
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    atomic_init(&r->beat_ms, bm_mono_ms());
    int e = pthread_create(&r->tid, NULL, renewer_main, r);
    if (e != 0) {
        bm_renewer_free(r);
        *out = NULL;
        return bm_err(err, errlen, BM_EIO, "cannot start the renewer: %s", strerror(e));
    }
    r->started = true;
    *out = r;
    return BM_OK;
}

bool bm_renewer_alive(bm_renewer_t *r, int64_t max_age_ms)
{
    return bm_renewer_age_ms(r) <= max_age_ms;
}

int64_t bm_renewer_age_ms(bm_renewer_t *r)
{
    return bm_mono_ms() - atomic_load(&r->beat_ms);
}

void bm_renewer_wake(bm_renewer_t *r)
{
    pthread_mutex_lock(&r->mu);
    r->woken = true;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

void bm_renewer_stop(bm_renewer_t *r)
{
    if (r == NULL || !r->started)
        return;
    pthread_mutex_lock(&r->mu);
    r->stopping = true;
    __atomic_store_n(&r->cancel, 1, __ATOMIC_RELAXED); /* read unlocked by the engine */
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    pthread_join(r->tid, NULL);
    r->started = false;
}

void bm_renewer_free(bm_renewer_t *r)
{
    if (r == NULL)
        return;
    bm_renewer_stop(r);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
    free(r->cals);
    free(r);
}
