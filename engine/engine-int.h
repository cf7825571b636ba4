/*
 * engine/engine-int.h: what the engine's files share. Private to engine/.
 *
 *   engine.c   lifecycle, totals, settings shared by the others
 *   hub.c      what the engines of a process share: client, accounts, key
 *   account.c  accounts: token decryption, Google identity, circuit breaker, discovery
 *   sync.c     sync of one calendar: list, plan, commit (and sync of all)
 *   outbox.c   the drain: batched block writes, their results, dead letters
 *   manage.c   membership changes, reset, cleanup, undo, account removal
 *   channels.c push channels: watch, reuse, stop, the calendar's push/poll mode
 *   plan.c     the pure planner (engine/plan.h)
 */
#ifndef BM_ENGINE_ENGINE_INT_H
#define BM_ENGINE_ENGINE_INT_H

#include "core/gcal.h"
#include "engine/engine.h"

#include <pthread.h>
#include <stdatomic.h>

/* One account as the engines of a process use it. Heap-allocated, owned by the
 * hub's accounts array and freed with the hub; never moved (g holds a mutex).
 * id, name, refresh_token and g are set once, before the account is published;
 * the other fields change under the hub's mutex (bm__engine_lock). */
typedef struct engine_account {
    int64_t id;
    char *name;
    char *refresh_token; /* clear text, wiped on free */
    bm_gcal_account_t g;
    bool broken;            /* needs login or no usable token: skip */
    int breaker_failures;   /* persisted: times the breaker opened in a row */
    int64_t breaker_until;  /* persisted: open until then */
    int consecutive;        /* failed calls in a row in this process (reads, watches) */
    int consecutive_writes; /* failed block writes (batches) in a row in this process */
    /* The breaker opened on failed writes: only a write's success heals it (a
     * listing that works says nothing of them). Not persisted: a new process
     * takes any success as healing. */
    bool breaker_writes;
    int64_t saved_access_ms; /* expiry of the access token the store holds */
    /* The engine of this process working on the account (a serve worker running
     * one of its calendars' jobs, or a drain applying its writes), NULL: none;
     * hold_depth counts that engine's nested holds. */
    const bm_engine_t *holder;
    int hold_depth;
    bool drain_again; /* asked while held: the holder looks once more */
    int64_t batch_ms; /* how long its latest batch request took: drains go slowest last */
} engine_account_t;

struct bm_engine_hub {
    const bm_config_t *cfg;
    bm_gcal_t *gcal;
    pthread_mutex_t mu;
    engine_account_t **accounts; /* loaded on first use, each owned */
    size_t n_accounts;
    unsigned char key[32];
    bool have_key;
    atomic_llong applied; /* writes applied by every engine, for progress lines */
};

struct bm_engine {
    bm_engine_opts_t o;
    bm_store_t *st;
    bm_engine_hub_t *hub;
    bool own_hub;
    bm_gcal_t *gcal;       /* the hub's */
    bm_plan_opts_t plan;   /* the window and the defaults; per calendar: bm__engine_plan_opts */
    char owner[300];       /* lease owner: pid@host */
    char claim_owner[320]; /* outbox claims: pid@host/N, N unique per engine of the process */
    uint64_t rng;
    bm_engine_totals_t totals;
    FILE *out;
    bool stale_claims; /* claims of claim_owner could not be given back (the store failed) */
};

void bm__engine_lock(bm_engine_t *e);
void bm__engine_unlock(bm_engine_t *e);
/* Whether this engine may work on account a now (apply its writes, run its
 * jobs), and then it holds a: false when another engine of the process holds
 * it (which then looks once more before it lets go, so nothing planned
 * meanwhile waits). Holds nest within one engine. bm__engine_drain_end() lets
 * go of one hold; after the outermost it is true when the engine must apply
 * a's writes once more (and still holds a; call it again after). */
bool bm__engine_drain_begin(bm_engine_t *e, engine_account_t *a);
bool bm__engine_drain_end(bm_engine_t *e, engine_account_t *a);
/* Lets go of every hold e has on a, whatever others asked (a stopping engine);
 * the next drain applies what waits. */
void bm__engine_drain_abandon(bm_engine_t *e, engine_account_t *a);
/* Applies account a's due writes (engine/outbox.c), holding it meanwhile. */
int bm__engine_drain_account(bm_engine_t *e, engine_account_t *a, char *err, size_t errlen);

/* The engine's account row with its Google identity, loaded (and its refresh
 * token decrypted) once; *out stays valid for the engine's life. BM_EAUTH when
 * it needs a new login, BM_ETRANSIENT while its circuit breaker is open (*out
 * is set in both cases). */
int bm__engine_account(bm_engine_t *e, int64_t id, engine_account_t **out, char *err,
                       size_t errlen);
/* The key file's key, loaded once per hub (refresh tokens, channel tokens);
 * *key points into the hub (wiped when it is freed). BM_ECRYPTO / BM_EIO as
 * bm_crypto_key_load. */
int bm__engine_key(bm_engine_t *e, const unsigned char **key, char *err, size_t errlen);
/* Keeps every account's access token that changed since it was last kept,
 * sealed, in the store (nothing in a dry run); failures are logged. */
void bm__engine_save_access(bm_engine_t *e);
/* Marks the account as needing a new login (store and memory). */
void bm__engine_needs_login(bm_engine_t *e, engine_account_t *a);
bool bm__engine_stopped(const bm_engine_t *e);
/* How source calendar cal is planned: the window, its group's rules
 * ([group G] or the defaults), its label and zone. *o borrows from e's config
 * and from cal (both must outlive it). */
void bm__engine_plan_opts(const bm_engine_t *e, const bm_calendar_t *cal, bm_plan_opts_t *o);
/* cal's planning settings as text (caller frees): stored with each full
 * listing; when it changes, cal is listed and planned in full on its next
 * sync, so that a change of its group's rules (or of its label, when the title
 * shows it) replans exactly that group's calendars. */
char *bm__engine_plan_key(const bm_engine_t *e, const bm_calendar_t *cal);
/* Whether cal's stored plan key (of its latest full listing) differs from what
 * cfg and cal's row give now: its group's rules or its label changed since
 * (config read at a start, calendar set --label): its next sync replans. */
bool bm__engine_plan_stale(const bm_config_t *cfg, const bm_calendar_t *cal);
/* A block's busymirror_src: "<sha256(calendar) prefix>/<event>", naming its
 * source without naming the calendar (engine/sync.c; caller frees). */
char *bm__engine_marker_src(const char *gcal_id, const char *event_id);
/* What a block row records as wanted (blocks.wanted) for the block blk, as its
 * body reads back (bm_event_parse_json): its shape and title (engine/sync.c;
 * caller frees). A block put back by undo is recorded so, and its source's next
 * full listing writes only what the rules of then want otherwise. */
char *bm__engine_block_wanted(const bm_event_t *blk);
/* Whether group's blocks skip events their target holds itself (same iCalUID):
 * the group's skip_shared_events (engine/sync.c; group NULL: the default). */
bool bm__engine_skip_shared(const bm_engine_t *e, const char *group);
/* Gives back e's own outbox claims that a failed store kept (none: nothing
 * is done), so its writes go out as soon as the store takes writes again
 * instead of when the claims expire; call it when e has no batch in flight.
 * Failures leave them for the next call (engine/outbox.c). */
void bm__engine_unclaim_stale(bm_engine_t *e);
/* totals.pending := the outbox's size now, what a run leaves, whatever ended it
 * (engine/outbox.c; a dry run keeps 0). */
void bm__engine_count_pending(bm_engine_t *e);
/* Requests per batch: [engine] batch_size, but never more than the quota's burst
 * (one batch must not exceed Google's per-user minute on its own). */
size_t bm__engine_batch_size(const bm_engine_t *e);
/* Feeds the account's circuit breaker with the outcome of a call to Google.
 * BM_ETRANSIENT counts a failure: `exhausted` (the client's own retries are
 * spent) opens the breaker at once, otherwise BREAKER_THRESHOLD failures in a
 * row do. It stays open a minute, doubling up to an hour while it keeps
 * opening; then one call is let through (half-open), and BM_OK closes it. */
#define BREAKER_THRESHOLD 5
void bm__engine_breaker(bm_engine_t *e, engine_account_t *a, int rc, bool exhausted);
/* The same for a block write (a batch or its parts): writes count their
 * failures apart from the other calls, and a breaker that writes opened is
 * closed by a write's success only; a read's success leaves it as it is (its
 * open period over, the next write is a probe, and when that fails it opens
 * again for twice as long). */
void bm__engine_breaker_write(bm_engine_t *e, engine_account_t *a, int rc, bool exhausted);
/* The arithmetic of both, on a's breaker fields only (the caller holds the
 * hub's lock; exposed for the unit tests): 1 if the outcome opened it, -1 if it
 * closed it, else 0. now is bm_now()'s seconds. */
int bm__engine_breaker_step(engine_account_t *a, int rc, bool exhausted, bool write, int64_t now);
#endif
