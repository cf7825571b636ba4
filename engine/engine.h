/*
 * engine/engine.h: synchronising calendars.
 *
 * A bm_engine_t syncs calendars one at a time on the store connection it is
 * given (one engine per thread): it takes the calendar's lease, lists what
 * changed (incremental with the stored sync token, full without one, after a
 * 410, when forced, or every [sync] full_resync_hours so events entering the
 * window are seen),
 * plans block writes for every target, and commits mirror, blocks, outbox and
 * the new sync token in one transaction. bm_engine_drain() then applies the
 * outbox in batch requests. Where each part lives: engine/engine-int.h.
 *
 * The engine borrows cfg and store (they must outlive it) and owns its Google
 * client and the decrypted refresh tokens (wiped on free).
 */
#ifndef BM_ENGINE_ENGINE_H
#define BM_ENGINE_ENGINE_H

#include "core/config.h"
#include "core/metrics.h"
#include "core/store.h"
#include "engine/plan.h"

#include <stdbool.h>
#include <stdio.h>

typedef struct bm_engine bm_engine_t;

/*
 * What the engines of one process share, so that several threads (serve's
 * workers, the parallel drain of `sync`) treat each Google account as one: the
 * Google client (its connections and counters), every account's access token,
 * quota bucket and circuit breaker, and the key file's key. Thread-safe. It
 * borrows cfg and stop, which must outlive it; bm_engine_hub_free() wipes the
 * decrypted refresh tokens and the key (no engine may use it any more then).
 */
typedef struct bm_engine_hub bm_engine_hub_t;
/* stop (may be NULL) aborts the client's waits; metrics (may be NULL) counts
 * every Google request by method and status (busymirror_api_calls_total). */
int bm_engine_hub_new(const bm_config_t *cfg, const volatile int *stop, bm_metrics_t *metrics,
                      bm_engine_hub_t **out, char *err, size_t errlen);
void bm_engine_hub_free(bm_engine_hub_t *h);

typedef struct bm_engine_opts {
    const bm_config_t *cfg;
    bool dry_run;             /* plan and print, write nothing anywhere */
    bool verbose;             /* a line per calendar and per operation on out */
    bool force_full;          /* ignore sync tokens */
    bool progress;            /* a live progress line on out (a TTY) */
    FILE *out;                /* where dry-run and verbose lines go; NULL: stdout */
    const volatile int *stop; /* nonzero: stop cleanly (outbox intact) */
    /* Shared with other engines of the process (borrowed), or NULL: the engine
     * makes a hub of its own. */
    bm_engine_hub_t *hub;
    /* Threads bm_engine_drain() works accounts on side by side, each with a
     * store connection of its own: 0 = [engine] workers, 1 = this one only. */
    int drain_threads;
    /* bm_engine_drain() applies what is due and returns, without waiting for
     * writes backed off or in flight elsewhere (serve's workers come back). */
    bool drain_no_wait;
} bm_engine_opts_t;

/* What a run did, summed over calendars. */
typedef struct bm_engine_totals {
    int calendars_ok;
    int calendars_failed;
    int calendars_busy; /* lease held elsewhere */
    int64_t listed;
    int64_t planned_inserts, planned_updates, planned_deletes;
    int64_t applied, dead_letters, pending;
} bm_engine_totals_t;

int bm_engine_new(const bm_engine_opts_t *o, bm_store_t *st, bm_engine_t **out, char *err,
                  size_t errlen);
void bm_engine_free(bm_engine_t *e);
void bm_engine_totals(const bm_engine_t *e, bm_engine_totals_t *out);
/* API requests made so far (token requests included). */
long bm_engine_api_calls(const bm_engine_t *e);

/* calendarList.list of an account into the store. */
int bm_engine_discover(bm_engine_t *e, const bm_account_t *acct, size_t *n_found, char *err,
                       size_t errlen);

/* Syncs one calendar into its targets (lists, plans, commits; does not drain).
 * BM_EBUSY when another process holds its lease. */
int bm_engine_sync_calendar(bm_engine_t *e, const bm_calendar_t *cal, char *err, size_t errlen);

/* Applies the outbox until it is empty or only holds items that wait longer
 * than a run should (those stay for the next run). */
int bm_engine_drain(bm_engine_t *e, char *err, size_t errlen);

/* Syncs every enabled calendar matching the filter (account_id 0 / gcal_id NULL
 * = all), then drains. Returns 0 when all synced, BM_EBUSY when only lease
 * conflicts failed, or the first error. */
int bm_engine_sync_all(bm_engine_t *e, int64_t account_id, const char *gcal_id, char *err,
                       size_t errlen);

/* ---- management (engine/manage.c) ----
 * Every block deletion below is first recorded in the audit log with the block's
 * content, under one run id per call, so that bm_engine_undo() can re-create it. */

/* Gives cal its membership: enabled, group (NULL keeps it) and role. When it
 * leaves its group or changes group or role (or is disabled), every block made
 * from it and every block living in it is deleted, audited as "disable" or
 * "regroup": the deletions are planned in the same transaction that writes the
 * new membership, then drained (totals tell what failed). An enabled calendar's
 * group lists in full on its next sync, so a new member gets its blocks. A
 * disabled calendar's watch channels are stopped at Google
 * (bm_engine_stop_calendar_channels: a failed stop is left to the renewer). */
int bm_engine_set_membership(bm_engine_t *e, const bm_calendar_t *cal, bool enabled,
                             const char *group, bm_role_t role, char *err, size_t errlen);

/* One block found by reset or cleanup (printed by the commands). */
typedef struct bm_found_block {
    char *gcal_id;
    char *block_id;
    char *start;
    char *end;
    bool series;
} bm_found_block_t;
void bm_found_blocks_free(bm_found_block_t *b, size_t n);

/* Finds every event carrying busymirror's marker in cal, in Google (not only in
 * the local mapping). With apply, audits them, forgets cal's local state and
 * sync token and plans their deletion through the outbox in one transaction,
 * then drains; *n_failed counts deletions still pending or dead-lettered. */
int bm_engine_reset_calendar(bm_engine_t *e, const bm_calendar_t *cal, bool apply,
                             bm_found_block_t **found, size_t *n_found, size_t *n_failed, char *err,
                             size_t errlen);

typedef struct bm_cleanup_report {
    bm_found_block_t *orphans; /* blocks whose source is gone */
    size_t n_orphans;
    int64_t sources;  /* mirror rows nothing uses */
    int64_t sync_log; /* entries older than retention */
    int64_t audit_log;
} bm_cleanup_report_t;

/* Removes (apply) or reports orphaned blocks, unused mirror rows and log entries
 * older than [log] retention_days. */
int bm_engine_cleanup(bm_engine_t *e, bool apply, bm_cleanup_report_t *r, char *err, size_t errlen);
void bm_cleanup_report_dispose(bm_cleanup_report_t *r);

/* Re-creates what one audited run deleted (run_id 0: the newest run).
 * *restored and *failed count blocks; a block of a removed account fails. */
int bm_engine_undo(bm_engine_t *e, int64_t run_id, int64_t *run_out, size_t *restored,
                   size_t *failed, char *err, size_t errlen);

/* Removes an account: unless keep_blocks, first deletes the blocks in its
 * calendars and the blocks made from them (BM_EAPI, account kept, when some could
 * not be deleted); the watch channels of its calendars are stopped at Google
 * before it goes (a failed stop is logged: its rows go with the account). */
int bm_engine_remove_account(bm_engine_t *e, const bm_account_t *acct, bool keep_blocks,
                             size_t *n_deleted, char *err, size_t errlen);

/* ---- push channels (engine/channels.c) ----
 * A channel's token is bm_crypto_channel_token of its id under the key file's
 * key: the gateway derives it again to authenticate a notification; it is
 * never stored and never logged. Call these outside a transaction: a channel's
 * row is committed before Google is asked to watch. */

/* Gives cal a live watch channel posting to public_url (https), asking for
 * ttl_s seconds (0: Google's default). The current channel is kept (mode push)
 * while more than its renew margin (bm_engine_renew_margin_ms with [renewer]
 * renew_before) of its granted life remains; else a new one is opened: on success its resource id
 * and expiration are recorded and the calendar's mode is push; on failure (a refused address: 401
 * or 403 push.webhookUrlUnauthorized, 400 pushNotSupportedForRequestedResource;
 * the network) the row is stopped, the mode is poll and the error returned (the
 * caller logs it and polls). The replaced channel stays live until
 * bm_engine_stop_stale. */
int bm_engine_watch_calendar(bm_engine_t *e, const bm_calendar_t *cal, const char *public_url,
                             int ttl_s, char *err, size_t errlen);
/* When a channel of granted life life_ms is renewed: once less than this many
 * ms of it are left. The margin is renew_before_s seconds (0: a fifth of the
 * life, at most a day); each channel renews at its own point in the last half
 * of it, derived from its id (FNV-1a), so channels opened together (a restart,
 * many calendars enabled at once) do not come due together, and stay spread. */
int64_t bm_engine_renew_margin_ms(const char *channel_id, int64_t life_ms, int renew_before_s);
/* channels.stop of ch (borrowed), then the row is marked stopped; a channel
 * Google does not know (404) counts as stopped. A row never granted has nothing
 * to stop at Google: only marked. */
int bm_engine_stop_channel(bm_engine_t *e, const bm_channel_t *ch, char *err, size_t errlen);
/* bm_engine_watch_calendar over every enabled calendar: *n_push got (or kept) a
 * channel, *n_poll polls (each failure logged). Returns 0 unless the store
 * fails (BM_ESTORE) or the engine is stopped (BM_ECANCELED). */
int bm_engine_watch_all(bm_engine_t *e, const char *public_url, int ttl_s, size_t *n_push,
                        size_t *n_poll, char *err, size_t errlen);
/* Stops every unstopped channel of the calendar (it was disabled, or its
 * account goes); *n_stopped (may be NULL) counts them. A failed stop is logged
 * and its row left unstopped: bm_engine_stop_stale tries again (a disabled
 * calendar's channels are due for a stop). 0 unless the store fails. */
int bm_engine_stop_calendar_channels(bm_engine_t *e, int64_t calendar_id, size_t *n_stopped,
                                     char *err, size_t errlen);
/* Stops every channel that is replaced, expired, of a disabled calendar or a stray
 * (bm_store_channels_to_stop); *n_stopped (may be NULL) counts them. Failures are
 * logged and left for the next round; 0 unless the store fails. */
int bm_engine_stop_stale(bm_engine_t *e, size_t *n_stopped, char *err, size_t errlen);

/* ---- serve's workers (engine/worker.c) ----
 * n threads, each with a store connection and an engine of its own on the
 * shared hub: claim a due job (bm_store_job_claim), sync its calendar, drain
 * what it planned, record the outcome (done; failed: retried with full-jitter
 * backoff; released when stopped). Between jobs they apply block writes that
 * came due after a backoff. Borrowed options (cfg, hub, metrics) must outlive
 * the pool. */
typedef struct bm_workers bm_workers_t;
typedef struct bm_workers_opts {
    const bm_config_t *cfg;
    bm_engine_hub_t *hub;
    /* optional: the flag that cancels running syncs (set by bm_workers_stop
     * after the grace); give the hub the same, so that its waits end too */
    volatile int *cancel;
    int n;                 /* threads; 0: [engine] workers */
    bm_metrics_t *metrics; /* optional: jobs by result, job latency */
} bm_workers_opts_t;

int bm_workers_start(const bm_workers_opts_t *o, bm_workers_t **out, char *err, size_t errlen);
/* A job was enqueued: idle workers look at the queue now. */
void bm_workers_wake(bm_workers_t *w);
/* Whether every worker's loop went round within max_age_ms (a worker inside one
 * job counts from the job's start); if not, why. */
bool bm_workers_alive(bm_workers_t *w, int64_t max_age_ms, char *why, size_t whylen);
/* Claims nothing more; running jobs may finish within grace_ms, then their
 * syncs are cancelled and the jobs released (due at once for the next start).
 * Returns when every thread has ended. */
void bm_workers_stop(bm_workers_t *w, int64_t grace_ms);
void bm_workers_free(bm_workers_t *w);

/* Runs one claimed job (borrowed) on e's store: its calendar's sync, then the
 * drain of what it planned, and records the outcome on the job: done (the job
 * is deleted, so the calendar's next job starts from zero attempts), failed
 * (due again after a full-jitter backoff that doubles with its attempts, from
 * a second up to five minutes; a lease held elsewhere: 2 s; an account that
 * needs login: an hour), or released when e's stop is set. metrics may be
 * NULL. Returns the sync's result (BM_OK when the calendar is gone or
 * disabled). */
int bm_engine_run_job(bm_engine_t *e, const char *owner, const bm_job_t *job,
                      bm_metrics_t *metrics);

/* What bm_engine_run_due did, in jobs. */
typedef struct bm_engine_run_counts {
    int ok, failed;
    int busy; /* its calendar's lease was held elsewhere (another sync runs it) */
} bm_engine_run_counts_t;
/* Claims (bm_store_job_claim_for: priority, account turns, overdue) and runs
 * due jobs of account_id's calendars (0: any) one after another, until none is
 * due, until_ms (ms since the epoch; 0: no limit) passes (0) or e's stop is
 * set (BM_ECANCELED); adds to *counts. The cron `poll` runs it on threads. */
int bm_engine_run_due(bm_engine_t *e, int64_t account_id, int64_t until_ms,
                      bm_engine_run_counts_t *counts, char *err, size_t errlen);

/* ---- rules check (engine/manage.c) ---- */

/* How cal's group rules treat its events now. */
#define BM_RULES_MAX_REASONS 16
typedef struct bm_rules_report {
    int64_t listed; /* events listed in the window (a series counts once) */
    int64_t kept;   /* mirrored */
    struct {
        const char *reason; /* static: bm_plan_keep's words, or "window" */
        int64_t n;
    } skipped[BM_RULES_MAX_REASONS];
    size_t n_skipped;
    int64_t blocks;          /* busymirror's own blocks (never sources) */
    int64_t occurrences_off; /* occurrences of kept series that working hours skip */
} bm_rules_report_t;

/* Lists cal's events in the window from Google (read-only: no sync token is
 * kept, nothing is written anywhere) and counts what its group's rules keep
 * and skip, by reason. */
int bm_engine_rules_check(bm_engine_t *e, const bm_calendar_t *cal, bm_rules_report_t *out,
                          char *err, size_t errlen);

/* ---- scheduling (engine/schedule.c) ----
 * Every enabled calendar is listed at least once per poll interval (its
 * account's, else [sync] poll_interval), push or not. Its polls fall on slots
 * one interval apart at a phase given by a hash of the calendar's id, so that
 * calendars spread evenly over the interval instead of firing together: one
 * synced (by push or a poll) since its latest slot waits for the next one. */

/* Seconds between polls of cal. */
int bm_engine_poll_interval(const bm_config_t *cfg, const bm_calendar_t *cal);
/* The latest slot of calendar_id at or before now_ms (ms since the epoch). */
int64_t bm_engine_poll_slot(int64_t calendar_id, int64_t every_ms, int64_t now_ms);
/* Whether cal is due for a poll at now_ms: not synced (nor polled, at
 * polled_ms, 0: never) since its latest slot, and that slot is not before
 * since_ms (serve's start: slots missed while it was down are not all caught
 * up at once but at their next slot; 0 for the cron poll). A calendar never
 * synced is due at once, and so is one not polled yet whose plan key is stale
 * (its group's rules or its label changed since its latest full listing). */
bool bm_engine_poll_due(const bm_config_t *cfg, const bm_calendar_t *cal, int64_t polled_ms,
                        int64_t since_ms, int64_t now_ms);
/* Enqueues a "poll" job for each calendar of ids, in one transaction. */
int bm_engine_enqueue_polls(bm_store_t *st, const int64_t *ids, size_t n, int64_t now_ms, char *err,
                            size_t errlen);

#endif
