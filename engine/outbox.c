/*
 * engine/outbox.c: the drain: applies planned block writes in batch requests
 * per account, records each result (done, retry later with backoff, dead
 * letter), and feeds the account's circuit breaker.
 */
#include "core/gcal.h"
#include "core/retry.h"
#include "core/log.h"
#include "core/util.h"
#include "engine/engine-int.h"

#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#define MAX_ATTEMPTS      8 /* per outbox item, then a dead letter */
#define RETRY_BASE_MS     250
#define RETRY_CAP_MS      8000
#define DRAIN_MAX_WAIT_MS 20000 /* a run waits this long at most for a backed-off item */
/* An item is claimed this long: longer than one batch request with its retries
 * (core/gcal's 120 s timeout), short enough that a crashed run's items are taken
 * over within minutes. */
#define CLAIM_TTL_MS 300000

/* Records the result of one applied item (inside the caller's transaction). */
static int settle(bm_engine_t *e, const bm_outbox_item_t *it, const bm_gcal_req_t *r,
                  bool inserting, char *err, size_t errlen)
{
    long s = r->status;
    bm_outcome_t o = bm_retry_classify(
        s, r->reason, it->op == BM_OUTBOX_DELETE ? BM_RETRY_DELETE : BM_RETRY_PART);
    char msg[160];
    bool current = true;
    if (it->op == BM_OUTBOX_DELETE && o == BM_OUTCOME_DONE) {
        /* Another process may have planned this block anew while the request was
         * in flight: then its plan stands, and only what Google did is recorded. */
        e->totals.applied++;
        atomic_fetch_add(&e->hub->applied, 1);
        int rc = bm_store_outbox_done(e->st, it, &current, err, errlen);
        if (rc != BM_OK || !current)
            return rc;
        return it->is_instance ? bm_store_block_applied(e->st, it->target_calendar_id, it->block_id,
                                                        true, NULL, err, errlen)
                               : bm_store_block_delete(e->st, it->target_calendar_id, it->block_id,
                                                       err, errlen);
    }
    if (it->op == BM_OUTBOX_PUT && o == BM_OUTCOME_DONE) {
        e->totals.applied++;
        atomic_fetch_add(&e->hub->applied, 1);
        int rc = bm_store_block_applied(e->st, it->target_calendar_id, it->block_id, true, NULL,
                                        err, errlen);
        return rc != BM_OK ? rc : bm_store_outbox_done(e->st, it, &current, err, errlen);
    }
    /* It exists (or existed): revive it with an update, now. Or it is gone for
     * good from Google: insert it afresh. Either way the item stays, unclaimed,
     * for the next batch. */
    bool revive = inserting && s == 409 && strcmp(r->reason, "duplicate") == 0;
    bool lost = !inserting && !it->is_instance && s == 404;
    if (it->op == BM_OUTBOX_PUT && (revive || lost)) {
        int rc = bm_store_block_applied(e->st, it->target_calendar_id, it->block_id, revive, NULL,
                                        err, errlen);
        return rc != BM_OK ? rc : bm_store_outbox_release(e->st, it, 1, err, errlen);
    }
    snprintf(msg, sizeof(msg), "HTTP %ld %s", s, r->reason);
    /* An occurrence Google does not know (yet): its series may still be changing. */
    bool retry = o == BM_OUTCOME_RETRY || (it->is_instance && s == 404);
    if (retry && it->attempts + 1 < MAX_ATTEMPTS) {
        long delay = bm_retry_backoff_ms(it->attempts, RETRY_BASE_MS, RETRY_CAP_MS, &e->rng);
        return bm_store_outbox_retry_later(e->st, it, bm_now_ms() + delay, msg, err, errlen);
    }
    e->totals.dead_letters++;
    BM_LOG(BM_LOG_ERROR, BM_MSG("block write failed for good: moved to dead letters"),
           BM_KS("calendar", it->target_gcal_id), BM_KS("block", it->block_id), BM_KS("error", msg),
           BM_KS("detail", r->response));
    return bm_store_outbox_to_dead_letters(e->st, it, msg, err, errlen);
}

static char *item_path(const bm_outbox_item_t *it, bool inserting)
{
    return inserting ? bm_gcal_path_events(it->target_gcal_id)
                     : bm_gcal_path_event(it->target_gcal_id, it->block_id);
}

/* Gives back the claims of items whose results could not be recorded (they are
 * applied again, by whoever claims them next); if even that fails, the claims
 * expire by themselves. */
static void unclaim(bm_engine_t *e, const bm_outbox_item_t *items, size_t n)
{
    char err[256];
    if (bm_store_outbox_release(e->st, items, n, err, sizeof(err)) != BM_OK) {
        if (!e->stale_claims)
            BM_LOG(BM_LOG_WARN,
                   BM_MSG("cannot release outbox claims: released once the database takes writes"),
                   BM_KS("error", err));
        e->stale_claims = true;
    }
}

void bm__engine_unclaim_stale(bm_engine_t *e)
{
    int64_t n = 0;
    char err[256];
    if (!e->stale_claims ||
        bm_store_outbox_unclaim_owner(e->st, e->claim_owner, &n, err, sizeof(err)) != BM_OK)
        return;
    e->stale_claims = false;
    BM_LOG(BM_LOG_INFO, BM_MSG("released the claims of block writes the database failed under"),
           BM_KI("count", n));
}

/* Items claimed by runs that crashed on this host are free again at once. */
static int unclaim_dead(bm_engine_t *e, char *err, size_t errlen)
{
    int64_t n = 0;
    int rc = bm_store_outbox_unclaim_dead(e->st, bm_now_ms(), &n, err, errlen);
    if (rc == BM_OK && n > 0)
        BM_LOG(BM_LOG_WARN, BM_MSG("took over block writes claimed by a run that is gone"),
               BM_KI("count", n));
    return rc;
}

/* One batch of due items of one account, claimed for this engine; *n_done gets
 * how many were claimed. */
static int drain_batch(bm_engine_t *e, engine_account_t *a, bool instances, size_t *n_done,
                       char *err, size_t errlen)
{
    bm_outbox_item_t *items = NULL;
    size_t n = 0;
    bm_gcal_req_t *reqs = NULL;
    char **paths = NULL;
    bool *inserting = NULL;
    /* An open breaker (it may have opened since this drain began: another
     * batch's answer) lets nothing through; a half-open one's probe is one
     * write: the others wait for its answer. */
    bm__engine_lock(e);
    bool shut = a->breaker_until > bm_now();
    bm__engine_unlock(e);
    bool probe = atomic_load(&a->g.probing);
    int rc = shut ? bm_err(err, errlen, BM_ETRANSIENT, "circuit breaker open")
                  : bm_store_outbox_claim(e->st, a->id, instances, e->claim_owner, bm_now_ms(),
                                          CLAIM_TTL_MS, probe ? 1 : bm__engine_batch_size(e),
                                          &items, &n, err, errlen);
    *n_done = n;
    if (rc != BM_OK || n == 0)
        goto out;
    reqs = bm_calloc(n, sizeof(*reqs));
    paths = bm_calloc(n, sizeof(*paths));
    inserting = bm_calloc(n, sizeof(*inserting));
    for (size_t i = 0; i < n; i++) {
        bm_outbox_item_t *it = &items[i];
        inserting[i] = it->op == BM_OUTBOX_PUT && !it->created && !it->is_instance;
        paths[i] = item_path(it, inserting[i]);
        reqs[i].path = paths[i];
        reqs[i].method = it->op == BM_OUTBOX_DELETE ? "DELETE" : inserting[i] ? "POST" : "PUT";
        reqs[i].body = it->op == BM_OUTBOX_PUT ? it->body : NULL;
    }
    int64_t t0 = bm_mono_ms();
    rc = bm_gcal_batch(e->gcal, &a->g, reqs, n, err, errlen);
    bm__engine_lock(e);
    a->batch_ms = bm_mono_ms() - t0;
    bm__engine_unlock(e);
    if (rc != BM_OK) {
        bm__engine_breaker_write(e, a, rc, true);
        if (rc == BM_EAUTH)
            bm__engine_needs_login(e, a);
        unclaim(e, items, n);
        goto out;
    }
    size_t n_transient = 0;
    rc = bm_store_begin(e->st, err, errlen);
    for (size_t i = 0; rc == BM_OK && i < n; i++) {
        n_transient += bm_retry_refused_for_now(reqs[i].status, reqs[i].reason);
        rc = settle(e, &items[i], &reqs[i], inserting[i], err, errlen);
    }
    if (rc == BM_OK)
        rc = bm_store_commit(e->st, err, errlen);
    if (rc != BM_OK) {
        bm_store_rollback(e->st);
        unclaim(e, items, n);
    }
    /* Every part refused for now (rate limits, outages): the account is failing;
     * a probe's failure opens the breaker again at once. */
    bm__engine_breaker_write(e, a, n_transient == n ? BM_ETRANSIENT : BM_OK, probe);
    bm__engine_lock(e);
    bool open = a->breaker_until > bm_now();
    bm__engine_unlock(e);
    if (rc == BM_OK && n_transient == n && open)
        rc = bm_err(err, errlen, BM_ETRANSIENT, "circuit breaker open");
out:
    if (reqs != NULL)
        bm_gcal_reqs_dispose(reqs, n);
    for (size_t i = 0; paths != NULL && i < n; i++)
        free(paths[i]);
    free(paths);
    free(reqs);
    free(inserting);
    bm_store_outbox_items_free(items, n);
    return rc;
}

/* The live line on a TTY: what is written, what remains, the pace since the
 * drain began (t0_ms, applied0 writes then; at most [google] user_quota) and
 * the time left at that pace. */
static void progress(bm_engine_t *e, int64_t pending, int64_t t0_ms, int64_t applied0)
{
    if (!e->o.progress)
        return;
    int64_t now_applied = atomic_load(&e->hub->applied);
    int64_t ms = bm_mono_ms() - t0_ms, applied = now_applied - applied0;
    fprintf(e->out, "\rapplying block writes: %lld done, %lld pending", (long long)now_applied,
            (long long)pending);
    if (ms > 0 && applied > 0) {
        double per_min = (double)applied * 60000.0 / (double)ms;
        /* A full token bucket lets the first batches go at once: that burst is
         * no pace. Over a minute writes never go faster than the quota. */
        int quota = e->o.cfg->google.user_quota;
        if (quota > 0 && per_min > quota)
            per_min = quota;
        long left_s = (long)((double)pending * 60.0 / per_min + 0.5);
        fprintf(e->out, ", %.0f writes/min, about ", per_min);
        if (left_s >= 3600)
            fprintf(e->out, "%ld h %ld min left", left_s / 3600, left_s % 3600 / 60);
        else if (left_s >= 60)
            fprintf(e->out, "%ld min %ld s left", left_s / 60, left_s % 60);
        else
            fprintf(e->out, "%ld s left", left_s);
    }
    fputs("\033[K", e->out); /* clear what a longer line left */
    fflush(e->out);
}

/* Applies account a's due writes (series first, then occurrence overrides),
 * unless another engine of the process is at it. *worked counts items claimed. */
static int drain_account(bm_engine_t *e, engine_account_t *a, size_t *worked, int64_t t0_ms,
                         int64_t applied0, char *err, size_t errlen)
{
    int rc = BM_OK;
    if (!bm__engine_drain_begin(e, a))
        return BM_OK; /* that engine looks once more before it stops */
    do {
        for (int pass = 0; pass < 2 && rc == BM_OK; pass++) {
            size_t done;
            int64_t pending = 0, next_due = 0;
            do {
                if (bm__engine_stopped(e)) {
                    rc = bm_err(err, errlen, BM_ECANCELED, "stopped");
                    break;
                }
                rc = drain_batch(e, a, pass == 1, &done, err, errlen);
                *worked += done;
                if (rc == BM_OK && done > 0 && e->o.progress &&
                    bm_store_outbox_stats(e->st, &pending, &next_due, err, errlen) == BM_OK)
                    progress(e, pending, t0_ms, applied0);
            } while (rc == BM_OK && done > 0);
            if (rc == BM_EAUTH || rc == BM_ETRANSIENT) { /* this account only */
                BM_LOG(BM_LOG_WARN, BM_MSG("drain stopped for account"), BM_KS("account", a->name),
                       BM_KS("error", err));
                rc = BM_OK;
                break;
            }
        }
    } while (bm__engine_drain_end(e, a) && rc == BM_OK);
    return rc;
}

int bm__engine_drain_account(bm_engine_t *e, engine_account_t *a, char *err, size_t errlen)
{
    size_t worked = 0;
    if (e->o.dry_run)
        return BM_OK;
    bm__engine_unclaim_stale(e);
    return drain_account(e, a, &worked, bm_mono_ms(), atomic_load(&e->hub->applied), err, errlen);
}

/* An account with pending writes, as a drain pass visits it. */
typedef struct drain_turn {
    engine_account_t *a;
    int64_t batch_ms;
    size_t order; /* as the store listed it (by id): ties keep it */
} drain_turn_t;

static int turn_cmp(const void *x, const void *y)
{
    const drain_turn_t *p = x, *q = y;
    if (p->batch_ms != q->batch_ms)
        return p->batch_ms < q->batch_ms ? -1 : 1;
    return p->order < q->order ? -1 : p->order > q->order;
}

/* The usable accounts among ids (one waiting for a new login or its breaker is
 * left out: its items wait), fastest first: an account whose batches crawl is
 * drained after every other, so a run stuck on it has already written the
 * others' blocks. Caller frees. */
static drain_turn_t *drain_turns(bm_engine_t *e, const int64_t *ids, size_t n, size_t *n_out)
{
    drain_turn_t *t = n > 0 ? bm_calloc(n, sizeof(*t)) : NULL;
    char err[256];
    *n_out = 0;
    for (size_t i = 0; i < n; i++) {
        engine_account_t *a;
        if (bm__engine_account(e, ids[i], &a, err, sizeof(err)) != BM_OK)
            continue;
        bm__engine_lock(e);
        t[*n_out] = (drain_turn_t){a, a->batch_ms, i};
        bm__engine_unlock(e);
        (*n_out)++;
    }
    if (*n_out > 1)
        qsort(t, *n_out, sizeof(*t), turn_cmp);
    return t;
}

/* The drain of one engine: passes over every account with pending writes until
 * nothing is left that this run should wait for. */
static int drain_loop(bm_engine_t *e, int64_t t0_ms, int64_t applied0, char *err, size_t errlen)
{
    int rc = BM_OK;
    int64_t *accounts = NULL;
    size_t n_accounts = 0;
    int64_t idle_ms = 0; /* waited without work */
    for (;;) {
        int64_t pending = 0, next_due = 0;
        size_t worked = 0;
        free(accounts);
        accounts = NULL;
        rc = bm_store_outbox_accounts(e->st, &accounts, &n_accounts, err, errlen);
        size_t n_turns = 0;
        drain_turn_t *turns = rc == BM_OK ? drain_turns(e, accounts, n_accounts, &n_turns) : NULL;
        for (size_t i = 0; rc == BM_OK && i < n_turns; i++)
            rc = drain_account(e, turns[i].a, &worked, t0_ms, applied0, err, errlen);
        free(turns);
        if (rc != BM_OK || e->o.drain_no_wait)
            break;
        rc = bm_store_outbox_stats(e->st, &pending, &next_due, err, errlen);
        if (rc != BM_OK)
            break;
        int64_t wait = next_due - bm_now_ms();
        if (pending == 0 || wait > DRAIN_MAX_WAIT_MS)
            break;
        if (worked == 0 && wait <= 0) {
            /* Nothing due for us. Writes in flight in another run (or another
             * engine) end within a batch: wait for them, then count again. */
            int64_t others = 0;
            rc = unclaim_dead(e, err, errlen);
            if (rc == BM_OK)
                rc = bm_store_outbox_in_flight(e->st, e->claim_owner, bm_now_ms(), &others, err,
                                               errlen);
            if (rc != BM_OK || others == 0 || idle_ms >= DRAIN_MAX_WAIT_MS)
                break;
            wait = 100;
        }
        idle_ms = worked > 0 ? 0 : idle_ms + wait;
        while (wait > 0 && !bm__engine_stopped(e)) { /* a backed-off item is due soon */
            struct timespec ts = {0, 50 * 1000000L};
            nanosleep(&ts, NULL);
            wait -= 50;
        }
    }
    free(accounts);
    return rc;
}

/* A helper thread of a parallel drain: an engine of its own on a store
 * connection of its own, sharing the hub. */
typedef struct drain_helper {
    pthread_t tid;
    bm_engine_t *parent;
    bm_engine_totals_t totals; /* what it applied */
    int64_t t0_ms, applied0;
    int rc;
    char err[256];
} drain_helper_t;

static void *drain_helper_main(void *ud)
{
    drain_helper_t *d = ud;
    bm_store_t *st = NULL;
    bm_engine_t *e = NULL;
    bm_engine_opts_t o = d->parent->o;
    o.hub = d->parent->hub;
    o.progress = false;
    o.verbose = false;
    o.drain_threads = 1;
    d->rc = bm_store_open(o.cfg->store.path, &st, d->err, sizeof(d->err));
    if (d->rc == BM_OK)
        d->rc = bm_engine_new(&o, st, &e, d->err, sizeof(d->err));
    if (d->rc == BM_OK)
        d->rc = drain_loop(e, d->t0_ms, d->applied0, d->err, sizeof(d->err));
    if (e != NULL)
        d->totals = e->totals;
    bm_engine_free(e);
    bm_store_close(st);
    return NULL;
}

/* How many threads drain: one per account with pending writes, at most
 * drain_threads ([engine] workers by default). */
static size_t drain_width(bm_engine_t *e, char *err, size_t errlen)
{
    int64_t *accounts = NULL;
    size_t n = 0;
    size_t want =
        e->o.drain_threads > 0 ? (size_t)e->o.drain_threads : (size_t)e->o.cfg->engine.workers;
    if (want <= 1 || bm_store_outbox_accounts(e->st, &accounts, &n, err, errlen) != BM_OK)
        n = 1;
    free(accounts);
    return n < want ? (n > 0 ? n : 1) : want;
}

int bm_engine_drain(bm_engine_t *e, char *err, size_t errlen)
{
    int rc = BM_OK;
    int64_t t0_ms = bm_mono_ms(), applied0 = atomic_load(&e->hub->applied); /* for progress */
    drain_helper_t *helpers = NULL;
    size_t n_helpers = 0;
    if (e->o.dry_run)
        return BM_OK;
    int64_t stale = 0;
    rc = bm_store_outbox_drop_stale(e->st, &stale, err, errlen);
    if (rc != BM_OK)
        return rc;
    if (stale > 0)
        BM_LOG(BM_LOG_WARN, BM_MSG("dropped planned writes whose block is gone"),
               BM_KI("count", stale));
    rc = unclaim_dead(e, err, errlen);
    if (rc != BM_OK)
        return rc;
    bm__engine_unclaim_stale(e); /* no batch of e's is in flight here */
    /* Accounts side by side: one account's pacing under its quota (or its open
     * breaker) never delays another's. */
    size_t width = drain_width(e, err, errlen);
    helpers = bm_calloc(width, sizeof(*helpers));
    for (size_t i = 0; i + 1 < width; i++) {
        drain_helper_t *d = &helpers[n_helpers];
        d->parent = e;
        d->t0_ms = t0_ms;
        d->applied0 = applied0;
        if (pthread_create(&d->tid, NULL, drain_helper_main, d) != 0)
            break; /* fewer threads: the drain is only slower */
        n_helpers++;
    }
    rc = drain_loop(e, t0_ms, applied0, err, errlen);
    for (size_t i = 0; i < n_helpers; i++) {
        drain_helper_t *d = &helpers[i];
        pthread_join(d->tid, NULL);
        e->totals.applied += d->totals.applied;
        e->totals.dead_letters += d->totals.dead_letters;
        if (d->rc != BM_OK && rc == BM_OK)
            rc = bm_err(err, errlen, d->rc, "%s", d->err);
    }
    free(helpers);
    if (e->o.progress)
        fputs("\n", e->out);
    bm__engine_count_pending(e);
    return rc;
}

void bm__engine_count_pending(bm_engine_t *e)
{
    int64_t pending = 0, next_due = 0;
    char err[256];
    if (e->o.dry_run) /* a dry run applies nothing: nothing it left */
        return;
    if (bm_store_outbox_stats(e->st, &pending, &next_due, err, sizeof(err)) == BM_OK)
        e->totals.pending = pending;
    else
        BM_LOG(BM_LOG_ERROR, BM_MSG("cannot count pending writes"), BM_KS("error", err));
}
