/*
 * engine/worker.c: serve's worker threads. Each claims due jobs from the queue
 * (core/store's leases: the same calendar never runs twice at once, in this
 * process or another), runs the sync of that calendar and the drain of what it
 * planned, and records the outcome on the job. Between jobs a worker applies
 * block writes that came due after a backoff. Every thread has its own store
 * connection and engine; they share the process's hub, so an account's quota,
 * token and breaker are one whatever thread uses them.
 */
#include "core/log.h"
#include "core/retry.h"
#include "core/util.h"
#include "engine/engine-int.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define JOB_LEASE_MS      (15 * 60 * 1000) /* longer than any sync with its drain */
#define IDLE_WAIT_MS      500              /* a worker looks at the queue at least this often */
#define DRAIN_TICK_MS     1000             /* backed-off block writes are looked at this often */
#define RETRY_BASE_MS     1000
#define RETRY_CAP_MS      (5 * 60 * 1000)
#define BUSY_RETRY_MS     2000             /* another process holds the calendar's lease */
#define NEEDS_LOGIN_RETRY (60 * 60 * 1000) /* parked until a new login */
#define STORE_WAIT_MS     250              /* the database failed: first wait, doubling */
#define STORE_WAIT_CAP_MS 5000
#define RECORD_TRIES      120 /* a job's outcome is retried this often (~10 min) */

/* A claimed job whose account another worker held: it stays claimed (under
 * the claimer's owner) until a worker that can hold the account runs it. */
typedef struct handoff {
    engine_account_t *a;
    bm_job_t job; /* owned */
    char owner[400];
} handoff_t;

typedef struct worker {
    bm_workers_t *pool;
    pthread_t tid;
    bool started;
    int index;
    atomic_llong beat_ms; /* the last time its loop went round (monotonic) */
} worker_t;

struct bm_workers {
    bm_workers_opts_t o;
    worker_t *w;
    size_t n;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint64_t wake_gen;   /* bumped by every wake: each idle worker sees it */
    handoff_t *handoffs; /* under mu, oldest first */
    size_t n_handoffs, cap_handoffs;
    atomic_int stopping; /* no new claims */
    volatile int own_cancel;
    volatile int *cancel; /* running syncs stop (their jobs are released) */
    atomic_llong last_drain_ms;
};

static void metric(bm_metrics_t *m, const char *name, const char *labels)
{
    if (m != NULL)
        bm_metrics_counter_add(m, name, labels, 1);
}

/* Waits until woken, wait_ms pass or the pool stops. */
static void wait_wake(bm_workers_t *p, int64_t wait)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += wait / 1000;
    ts.tv_nsec += (wait % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&p->mu);
    uint64_t gen = p->wake_gen;
    while (p->wake_gen == gen && !p->stopping)
        if (pthread_cond_timedwait(&p->cv, &p->mu, &ts) == ETIMEDOUT)
            break;
    pthread_mutex_unlock(&p->mu);
}

/* Waits until woken, a job may be due, or IDLE_WAIT_MS. */
static void idle(bm_workers_t *p, bm_store_t *st)
{
    int64_t due = 0, wait = IDLE_WAIT_MS;
    char err[256];
    if (bm_store_job_next_due(st, &due, err, sizeof(err)) == BM_OK && due > 0) {
        int64_t d = due - bm_now_ms();
        wait = d < wait ? (d > 0 ? d : 0) : wait;
    }
    if (wait > 0)
        wait_wake(p, wait);
}

/* When a failed job runs again: while its account's circuit breaker is open,
 * once it half-opens (no sooner: nothing would be tried). */
static int64_t retry_at(bm_engine_t *e, const bm_job_t *job, int64_t account_id, int rc)
{
    int64_t now = bm_now_ms();
    if (rc == BM_EBUSY)
        return now + BUSY_RETRY_MS;
    if (rc == BM_EAUTH)
        return now + NEEDS_LOGIN_RETRY;
    int64_t at = now + RETRY_BASE_MS / 2 +
                 bm_retry_backoff_ms(job->attempts, RETRY_BASE_MS, RETRY_CAP_MS, &e->rng);
    engine_account_t *a = NULL;
    char err[256];
    if (rc == BM_ETRANSIENT && account_id > 0 &&
        bm__engine_account(e, account_id, &a, err, sizeof(err)) == BM_ETRANSIENT && a != NULL) {
        bm__engine_lock(e);
        int64_t until_ms = a->breaker_until * 1000;
        bm__engine_unlock(e);
        if (until_ms > at) /* a little after, so the half-open probe finds it due */
            at = until_ms + (int64_t)(bm_retry_rand(&e->rng) % RETRY_BASE_MS);
    }
    return at;
}

static bool stopped(const bm_engine_t *e)
{
    return e->o.stop != NULL && __atomic_load_n(e->o.stop, __ATOMIC_RELAXED) != 0;
}

/* How long to wait after the n-th failure in a row (n >= 1) of the store. */
static int64_t store_wait_ms(int n)
{
    int64_t ms = STORE_WAIT_MS;
    for (int i = 1; i < n && ms < STORE_WAIT_CAP_MS; i++)
        ms *= 2;
    return ms < STORE_WAIT_CAP_MS ? ms : STORE_WAIT_CAP_MS;
}

/* Sleeps ms unless e is stopped first (checked every 50 ms). */
static void nap(const bm_engine_t *e, int64_t ms)
{
    for (; ms > 0 && !stopped(e); ms -= 50) {
        struct timespec ts = {0, 50 * 1000000L};
        nanosleep(&ts, NULL);
    }
}

/* Whether to try recording a job's outcome again after rc: the database could
 * not take it (a full disk, a lock): a job left running would keep its
 * calendar waiting out its lease (15 minutes), so the worker waits for the
 * database instead (backing off; logged once), until stopped. *n counts. */
static bool record_again(const bm_engine_t *e, int rc, int *n, const char *what, const char *err)
{
    if (rc != BM_ESTORE || stopped(e) || *n >= RECORD_TRIES)
        return false;
    if ((*n)++ == 0)
        BM_LOG(BM_LOG_WARN, BM_MSG("cannot record a job's outcome: waiting for the database"),
               BM_KS("what", what), BM_KS("error", err));
    nap(e, store_wait_ms(*n));
    return true;
}

/* A job is done: deleted; its latency observed. */
static void job_done(bm_engine_t *e, const char *owner, const bm_job_t *job, bm_metrics_t *m)
{
    char e2[256];
    int rc, n = 0;
    while ((rc = bm_store_job_done(e->st, job->id, owner, e2, sizeof(e2))) != BM_OK &&
           record_again(e, rc, &n, "done", e2))
        ;
    if (rc != BM_OK)
        BM_LOG(BM_LOG_WARN, BM_MSG("cannot finish a job"), BM_KS("error", e2));
    metric(m, "busymirror_jobs_total", "result=\"done\"");
    if (m != NULL && job->enqueued_at > 0)
        bm_metrics_histogram_observe(m, "busymirror_job_latency_seconds",
                                     strcmp(job->reason != NULL ? job->reason : "", "push") == 0
                                         ? "reason=\"push\""
                                         : "reason=\"poll\"",
                                     (double)(bm_now_ms() - job->enqueued_at) / 1000.0);
}

/* Lets go of account a, which e holds (engine-int.h), after applying the
 * writes others asked for while it held it; wakes the pool, where a job given
 * back for a may wait. */
static void let_go(bm_workers_t *p, bm_engine_t *e, engine_account_t *a)
{
    char err[512];
    while (bm__engine_drain_end(e, a)) {
        if (stopped(e)) {
            bm__engine_drain_abandon(e, a);
            break;
        }
        if (bm__engine_drain_account(e, a, err, sizeof(err)) != BM_OK && !stopped(e))
            BM_LOG(BM_LOG_WARN, BM_MSG("drain failed"), BM_KS("account", a->name),
                   BM_KS("error", err));
    }
    if (p != NULL)
        bm_workers_wake(p);
}

/* bm_engine_run_job; *held (NULL: none) is the calendar's account, held by e
 * for a serve worker: once the sync is done its own writes are applied and it
 * is let go (*held = NULL) before the other accounts' writes, so that a slow
 * account's writes never keep this account's next job waiting. */
static int run_job(bm_workers_t *p, bm_engine_t *e, const char *owner, const bm_job_t *job,
                   bm_metrics_t *m, engine_account_t **held)
{
    bm_store_t *st = e->st;
    bm_calendar_t cal = {0};
    char err[512] = "", e2[256];
    int rc = bm_store_calendar_get(st, job->calendar_id, &cal, err, sizeof(err));
    if (rc == BM_OK && cal.enabled)
        rc = bm_engine_sync_calendar(e, &cal, err, sizeof(err));
    if (rc == BM_OK && cal.enabled) {
        char derr[512];
        if (*held != NULL) {
            if (bm__engine_drain_account(e, *held, derr, sizeof(derr)) != BM_OK && !stopped(e))
                BM_LOG(BM_LOG_WARN, BM_MSG("drain after a sync failed"),
                       BM_KS("calendar", cal.gcal_id), BM_KS("error", derr));
            let_go(p, e, *held);
            *held = NULL;
        }
        if (bm_engine_drain(e, derr, sizeof(derr)) != BM_OK && !stopped(e))
            BM_LOG(BM_LOG_WARN, BM_MSG("drain after a sync failed"), BM_KS("calendar", cal.gcal_id),
                   BM_KS("error", derr));
    }
    if (rc == BM_ENOTFOUND)
        rc = BM_OK; /* the calendar is gone: so is its job */
    if (rc == BM_OK) {
        job_done(e, owner, job, m);
    } else if (stopped(e)) {
        if (bm_store_job_release(st, job->id, owner, e2, sizeof(e2)) != BM_OK)
            BM_LOG(BM_LOG_WARN, BM_MSG("cannot release a job: its lease expires"),
                   BM_KS("error", e2));
        metric(m, "busymirror_jobs_total", "result=\"released\"");
    } else {
        int64_t at = retry_at(e, job, cal.account_id, rc);
        int frc, n = 0;
        while ((frc = bm_store_job_failed(st, job->id, owner, at, err, e2, sizeof(e2))) != BM_OK &&
               record_again(e, frc, &n, "failed", e2))
            ;
        if (frc != BM_OK)
            BM_LOG(BM_LOG_WARN, BM_MSG("cannot record a failed job"), BM_KS("error", e2));
        metric(m, "busymirror_jobs_total", "result=\"failed\"");
    }
    bm__engine_save_access(e); /* a refreshed token outlives a restart */
    bm_calendar_dispose(&cal);
    return rc;
}

int bm_engine_run_job(bm_engine_t *e, const char *owner, const bm_job_t *job, bm_metrics_t *m)
{
    engine_account_t *none = NULL;
    return run_job(NULL, e, owner, job, m, &none);
}

int bm_engine_run_due(bm_engine_t *e, int64_t account_id, int64_t until_ms,
                      bm_engine_run_counts_t *counts, char *err, size_t errlen)
{
    char owner[400];
    snprintf(owner, sizeof(owner), "%s/poll", e->claim_owner);
    while (!stopped(e) && (until_ms <= 0 || bm_now_ms() < until_ms)) {
        bm_job_t job = {0};
        int rc = bm_store_job_claim_for(e->st, account_id, owner, bm_now_ms(), JOB_LEASE_MS, &job,
                                        err, errlen);
        if (rc == BM_ENOTFOUND)
            return BM_OK;
        if (rc != BM_OK)
            return rc;
        rc = bm_engine_run_job(e, owner, &job, NULL);
        if (rc == BM_OK)
            counts->ok++;
        else if (rc == BM_EBUSY)
            counts->busy++;
        else
            counts->failed++;
        bm_job_dispose(&job);
    }
    return stopped(e) ? bm_err(err, errlen, BM_ECANCELED, "stopped") : BM_OK;
}

/* Runs job while e holds a (NULL: none); lets go of a after, if run_job has not. */
static void run_held(bm_workers_t *p, bm_engine_t *e, const char *owner, const bm_job_t *job,
                     engine_account_t *a)
{
    (void)run_job(p, e, owner, job, p->o.metrics, &a);
    if (a != NULL) /* the sync failed: nothing of its own was planned */
        let_go(p, e, a);
}

/* Whether another engine holds a (a peek: the answer may change at once). */
static bool held_elsewhere(bm_engine_t *e, engine_account_t *a)
{
    bm__engine_lock(e);
    bool busy = a->holder != NULL && a->holder != e;
    bm__engine_unlock(e);
    return busy;
}

/* Takes (and holds the account of) the oldest handed-off job whose account is
 * free; false when there is none. */
static bool take_handoff(bm_workers_t *p, bm_engine_t *e, handoff_t *out)
{
    bool got = false;
    pthread_mutex_lock(&p->mu);
    for (size_t i = 0; !got && i < p->n_handoffs; i++) {
        handoff_t *h = &p->handoffs[i];
        if (held_elsewhere(e, h->a) || !bm__engine_drain_begin(e, h->a))
            continue;
        *out = *h;
        memmove(h, h + 1, (p->n_handoffs - i - 1) * sizeof(*h));
        p->n_handoffs--;
        got = true;
    }
    pthread_mutex_unlock(&p->mu);
    return got;
}

/* Gives back (due as they were) the handed-off jobs nobody will run: serve stops. */
static void release_handoffs(bm_workers_t *p, bm_store_t *st)
{
    char err[256];
    pthread_mutex_lock(&p->mu);
    for (size_t i = 0; i < p->n_handoffs; i++) {
        handoff_t *h = &p->handoffs[i];
        if (bm_store_job_release(st, h->job.id, h->owner, err, sizeof(err)) != BM_OK)
            BM_LOG(BM_LOG_WARN, BM_MSG("cannot release a job: its lease expires"),
                   BM_KS("error", err));
        bm_job_dispose(&h->job);
    }
    p->n_handoffs = 0;
    pthread_mutex_unlock(&p->mu);
}

/*
 * Runs a claimed job (*job, owned: taken over) while holding its calendar's
 * account (engine-int.h): one worker at a time works on an account, its jobs
 * and its block writes, so an account whose calls fail slowly or crawl holds
 * one worker, never all of them, and the other accounts' jobs find a free
 * one. When another worker holds the account, the job is handed off: it
 * stays claimed, and the first worker that can hold the account runs it (the
 * holder is woken when it lets go), while this one claims the next job.
 */
static void run_holding(bm_workers_t *p, bm_engine_t *e, const char *owner, bm_job_t *job)
{
    bm_calendar_t cal = {0};
    engine_account_t *a = NULL;
    char err[512];
    /* an unusable account (login, breaker) is still held: its job fails at once */
    if (bm_store_calendar_get(e->st, job->calendar_id, &cal, err, sizeof(err)) == BM_OK)
        (void)bm__engine_account(e, cal.account_id, &a, err, sizeof(err));
    bm_calendar_dispose(&cal);
    if (a != NULL) {
        pthread_mutex_lock(&p->mu);
        bool mine = bm__engine_drain_begin(e, a);
        if (!mine) { /* under mu: a worker letting go of a sees it (take_handoff) */
            if (p->n_handoffs == p->cap_handoffs) {
                p->cap_handoffs = p->cap_handoffs ? 2 * p->cap_handoffs : 8;
                p->handoffs = bm_realloc(p->handoffs, p->cap_handoffs * sizeof(*p->handoffs));
            }
            handoff_t *h = &p->handoffs[p->n_handoffs++];
            h->a = a;
            h->job = *job;
            snprintf(h->owner, sizeof(h->owner), "%s", owner);
            memset(job, 0, sizeof(*job));
        }
        pthread_mutex_unlock(&p->mu);
        if (!mine) {
            metric(p->o.metrics, "busymirror_jobs_total", "result=\"handed_off\"");
            return;
        }
    }
    run_held(p, e, owner, job, a);
}

/* One worker's life: claim, run, repeat; between jobs, due block writes. */
static void work(worker_t *w, bm_engine_t *e, bm_store_t *st)
{
    bm_workers_t *p = w->pool;
    char owner[400], err[512];
    int claim_failures = 0; /* in a row */
    snprintf(owner, sizeof(owner), "%s/worker-%d", e->claim_owner, w->index);
    while (!atomic_load(&p->stopping)) {
        bm_job_t job = {0};
        handoff_t h;
        atomic_store(&w->beat_ms, bm_mono_ms());
        bm__engine_unclaim_stale(e);  /* between jobs: none of its batches is in flight */
        if (take_handoff(p, e, &h)) { /* claimed already, and its account is held now */
            run_held(p, e, h.owner, &h.job, h.a);
            bm_job_dispose(&h.job);
            continue;
        }
        int rc = bm_store_job_claim(st, owner, bm_now_ms(), JOB_LEASE_MS, &job, err, sizeof(err));
        if (rc == BM_OK) {
            metric(p->o.metrics, "busymirror_jobs_total", "result=\"claimed\"");
            run_holding(p, e, owner, &job);
            bm_job_dispose(&job);
            continue;
        }
        if (rc != BM_ENOTFOUND) {
            /* The database cannot take the claim (full, locked, ...): wait,
             * backing off, logged once per outage; a due job would make idle()
             * come straight back. */
            if (claim_failures++ == 0)
                BM_LOG(BM_LOG_WARN, BM_MSG("cannot claim a job: waiting for the database"),
                       BM_KS("error", err));
            wait_wake(p, store_wait_ms(claim_failures));
            continue;
        }
        if (claim_failures > 0) {
            BM_LOG(BM_LOG_INFO, BM_MSG("jobs are claimed again"),
                   BM_KI("failures", claim_failures));
            claim_failures = 0;
        }
        /* One worker at a time looks at writes that came due after a backoff,
         * and at jobs a process that is gone was running. */
        int64_t now = bm_mono_ms(), last = atomic_load(&p->last_drain_ms), freed = 0;
        if (now - last >= DRAIN_TICK_MS &&
            atomic_compare_exchange_strong(&p->last_drain_ms, &last, now)) {
            if (bm_store_jobs_release_dead(st, &freed, err, sizeof(err)) != BM_OK)
                BM_LOG(BM_LOG_WARN, BM_MSG("cannot take over jobs"), BM_KS("error", err));
            else if (freed > 0)
                BM_LOG(BM_LOG_WARN, BM_MSG("took over jobs of a process that is gone"),
                       BM_KI("count", freed));
            if (bm_engine_drain(e, err, sizeof(err)) != BM_OK &&
                !__atomic_load_n(p->cancel, __ATOMIC_RELAXED))
                BM_LOG(BM_LOG_WARN, BM_MSG("drain failed"), BM_KS("error", err));
            pthread_mutex_lock(&p->mu);
            bool handed = p->n_handoffs > 0; /* handed off while this drain held its account */
            pthread_mutex_unlock(&p->mu);
            if (freed > 0 || handed)
                continue;
        }
        idle(p, st);
    }
}

static void *worker_main(void *ud)
{
    worker_t *w = ud;
    bm_workers_t *p = w->pool;
    bm_store_t *st = NULL;
    bm_engine_t *e = NULL;
    char err[512];
    bm_engine_opts_t o = {.cfg = p->o.cfg,
                          .hub = p->o.hub,
                          .stop = p->cancel,
                          .drain_threads = 1,
                          .drain_no_wait = true};
    int rc = bm_store_open(p->o.cfg->store.path, &st, err, sizeof(err));
    if (rc == BM_OK)
        rc = bm_engine_new(&o, st, &e, err, sizeof(err));
    if (rc == BM_OK) {
        work(w, e, st);
        release_handoffs(p, st);
    } else
        BM_LOG(BM_LOG_ERROR, BM_MSG("worker cannot start"), BM_KI("worker", w->index),
               BM_KS("error", err));
    bm_engine_free(e);
    bm_store_close(st);
    return NULL;
}

int bm_workers_start(const bm_workers_opts_t *o, bm_workers_t **out, char *err, size_t errlen)
{
    bm_workers_t *p = bm_calloc(1, sizeof(*p));
    int rc = BM_OK;
    p->o = *o;
    p->cancel = o->cancel != NULL ? o->cancel : &p->own_cancel;
    p->n = o->n > 0 ? (size_t)o->n : (size_t)o->cfg->engine.workers;
    p->w = bm_calloc(p->n, sizeof(*p->w));
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    atomic_init(&p->last_drain_ms, 0);
    for (size_t i = 0; i < p->n; i++) {
        worker_t *w = &p->w[i];
        w->pool = p;
        w->index = (int)i;
        atomic_init(&w->beat_ms, bm_mono_ms());
        int e = pthread_create(&w->tid, NULL, worker_main, w);
        if (e != 0) {
            rc = bm_err(err, errlen, BM_EIO, "cannot start a worker thread: %s", strerror(e));
            break;
        }
        w->started = true;
    }
    if (rc != BM_OK) {
        bm_workers_free(p);
        p = NULL;
    }
    *out = p;
    return rc;
}

void bm_workers_wake(bm_workers_t *p)
{
    pthread_mutex_lock(&p->mu);
    p->wake_gen++;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

bool bm_workers_alive(bm_workers_t *p, int64_t max_age_ms, char *why, size_t whylen)
{
    int64_t now = bm_mono_ms();
    for (size_t i = 0; i < p->n; i++) {
        int64_t age = now - atomic_load(&p->w[i].beat_ms);
        /* a worker in the middle of a job is not stuck while its job may run */
        if (age > max_age_ms) {
            snprintf(why, whylen, "worker %zu has not come round for %lld ms", i, (long long)age);
            return false;
        }
    }
    return true;
}

void bm_workers_stop(bm_workers_t *p, int64_t grace_ms)
{
    if (p == NULL)
        return;
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->stopping, 1);
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    /* Running jobs may finish within the grace; then they are cancelled, and
     * their jobs released for the next start. */
    int64_t until = bm_mono_ms() + grace_ms;
    for (size_t i = 0; i < p->n; i++) {
        if (!p->w[i].started)
            continue;
        struct timespec ts;
        while (pthread_tryjoin_np(p->w[i].tid, NULL) == EBUSY) {
            if (bm_mono_ms() >= until)
                __atomic_store_n(p->cancel, 1, __ATOMIC_RELAXED); /* workers read it */
            ts = (struct timespec){0, 20 * 1000000L};
            nanosleep(&ts, NULL);
        }
        p->w[i].started = false;
    }
}

void bm_workers_free(bm_workers_t *p)
{
    if (p == NULL)
        return;
    bm_workers_stop(p, 0);
    for (size_t i = 0; i < p->n_handoffs; i++) /* no worker started: nothing was claimed */
        bm_job_dispose(&p->handoffs[i].job);
    free(p->handoffs);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p->w);
    free(p);
}
