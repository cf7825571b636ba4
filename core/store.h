/*
 * core/store.h: busymirror's durable state in SQLite (WAL). Every SQL statement
 * of the project lives in core/store.c, behind these functions.
 *
 * A bm_store_t is one connection; use one per thread. Rows returned in structs
 * own their strings: release one row with the matching *_dispose function, an
 * array of rows (each function below names its own) with the matching *_free.
 * Structs passed in (const pointers, const char *) are borrowed for the call
 * only: the store copies what it keeps. On failure nothing is returned: an
 * out array is NULL with a count of 0, an out row is untouched.
 * Functions return 0 or a negative BM_E* code with a message in err.
 */
#ifndef BM_CORE_STORE_H
#define BM_CORE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct bm_store bm_store_t;

#define BM_STORE_SCHEMA_VERSION 13

/* Opens (creating 0600 if needed) and migrates to the newest schema. *out is
 * released with bm_store_close; NULL on failure. Safe when several processes
 * open a new database at once: it is migrated once. */
int bm_store_open(const char *path, bm_store_t **out, char *err, size_t errlen);
/* Opens and migrates only up to `version` (tests of migrations). */
int bm_store_open_at(const char *path, int version, bm_store_t **out, char *err, size_t errlen);
/* How long a statement waits for another connection's lock before BM_ESTORE
 * (default 10 s): short for callers that must answer in time. */
int bm_store_set_busy_timeout(bm_store_t *st, int ms, char *err, size_t errlen);
/* Storage unavailable: when (bm_mono_ms) a statement of any connection of this
 * process last failed with BM_ESTORE because the database could not take it
 * now (SQLITE_FULL, SQLITE_IOERR, SQLITE_READONLY, SQLITE_CANTOPEN, or
 * SQLITE_BUSY / SQLITE_LOCKED past the busy timeout); 0: never. Such a failure
 * may pass by itself (the disk frees up, the lock goes). */
int64_t bm_store_unavailable_at(void);
void bm_store_close(bm_store_t *st); /* NULL is a no-op */
/* PRAGMA user_version, -1 when it cannot be read. */
int bm_store_schema_version(bm_store_t *st);

/* Transactions (BEGIN IMMEDIATE). Nesting is not supported. */
int bm_store_begin(bm_store_t *st, char *err, size_t errlen);
int bm_store_commit(bm_store_t *st, char *err, size_t errlen);
void bm_store_rollback(bm_store_t *st);

/* ---- accounts ---- */
typedef enum { BM_ACCOUNT_OK = 0, BM_ACCOUNT_NEEDS_LOGIN = 1 } bm_account_state_t;

typedef struct bm_account {
    int64_t id;
    char *name;
    char *email;
    unsigned char *refresh_token_enc; /* sealed by core/crypto; never clear text */
    size_t refresh_token_enc_len;
    bm_account_state_t state;
    int breaker_failures;            /* consecutive failed runs against Google */
    int64_t breaker_until;           /* open (calls skipped) until this time; then half-open */
    unsigned char *access_token_enc; /* sealed (aad "access:<name>"), or NULL */
    size_t access_token_enc_len;
    int64_t access_expires_ms; /* when that access token expires (ms since the epoch) */
    int priority;              /* its jobs are claimed before those of lower ones (default 50) */
    int poll_interval;         /* seconds between polls of its calendars; 0: [sync] poll_interval */
} bm_account_t;

int bm_store_account_add(bm_store_t *st, const char *name, const char *email,
                         const unsigned char *token_enc, size_t token_enc_len, int64_t *id_out,
                         char *err, size_t errlen);
/* *out is the caller's: bm_account_dispose. BM_ENOTFOUND when absent. */
int bm_store_account_get(bm_store_t *st, const char *name, bm_account_t *out, char *err,
                         size_t errlen);
int bm_store_account_get_by_id(bm_store_t *st, int64_t id, bm_account_t *out, char *err,
                               size_t errlen);
/* All accounts, ordered by name; *out is a malloc'd array (bm_store_accounts_free). */
int bm_store_account_list(bm_store_t *st, bm_account_t **out, size_t *n, char *err, size_t errlen);
/* Another account (not except_id) of the Google user `email`: the same person
 * added twice. *out: bm_account_dispose. BM_ENOTFOUND (no message) when none. */
int bm_store_account_find_email(bm_store_t *st, const char *email, int64_t except_id,
                                bm_account_t *out, char *err, size_t errlen);
int bm_store_account_set_state(bm_store_t *st, int64_t id, bm_account_state_t state, char *err,
                               size_t errlen);
int bm_store_account_set_token(bm_store_t *st, int64_t id, const unsigned char *token_enc,
                               size_t len, char *err, size_t errlen);
/* Keeps the account's current access token, sealed (NULL, 0: none). */
int bm_store_account_set_access(bm_store_t *st, int64_t id, const unsigned char *token_enc,
                                size_t len, int64_t expires_ms, char *err, size_t errlen);
int bm_store_account_set_breaker(bm_store_t *st, int64_t id, int failures, int64_t until, char *err,
                                 size_t errlen);
int bm_store_account_set_email(bm_store_t *st, int64_t id, const char *email, char *err,
                               size_t errlen);
/* Sets the account's priority and poll interval (seconds, 0: the global one);
 * a negative value keeps what is set. */
int bm_store_account_set_schedule(bm_store_t *st, int64_t id, int priority, int poll_interval,
                                  char *err, size_t errlen);
/* Removes the account and, by cascade, its calendars and their state. */
int bm_store_account_remove(bm_store_t *st, int64_t id, char *err, size_t errlen);
void bm_account_dispose(bm_account_t *a);
void bm_store_accounts_free(bm_account_t *a, size_t n);

/* ---- calendars ---- */
typedef enum { BM_ROLE_BOTH = 0, BM_ROLE_SOURCE = 1, BM_ROLE_TARGET = 2 } bm_role_t;
/* Poll until the renewer has a live watch channel. */
typedef enum { BM_MODE_POLL = 0, BM_MODE_PUSH = 1 } bm_mode_t;

typedef struct bm_calendar {
    int64_t id;
    int64_t account_id;
    char *account_name;
    char *gcal_id; /* Google's calendar id */
    char *summary;
    char *time_zone;
    char *access_role;
    bool primary;
    bool enabled;
    char *group_name;
    bm_role_t role;
    /* sync state */
    char *sync_token;
    int64_t last_full_sync;
    int64_t last_incr_sync;
    bm_mode_t mode;
    char *last_result; /* "ok", or an error code name */
    char *last_error;
    int64_t last_sync_at;
    char *plan_key;         /* planning settings of the last full listing */
    char *watch_refused;    /* why the last watch was refused (NULL: it was not) */
    int64_t watch_retry_at; /* ms: push is not tried again before then (0: no refusal) */
    int poll_interval;      /* its account's (seconds), 0: [sync] poll_interval */
    char *label;            /* calendar set --label; NULL: its summary (bm_calendar_label) */
} bm_calendar_t;

const char *bm_role_name(bm_role_t r); /* a static string */
int bm_role_parse(const char *s, bm_role_t *out);

/* Inserts or refreshes a calendar seen in calendarList (keeps enabled/group/role). */
int bm_store_calendar_upsert(bm_store_t *st, int64_t account_id, const char *gcal_id,
                             const char *summary, const char *time_zone, const char *access_role,
                             bool primary, int64_t *id_out, char *err, size_t errlen);
/* *out is the caller's: bm_calendar_dispose. BM_ENOTFOUND when absent. */
int bm_store_calendar_get(bm_store_t *st, int64_t id, bm_calendar_t *out, char *err, size_t errlen);
/* Calendars matching a filter: account_id 0 = any, gcal_id NULL = any,
 * enabled_only. Ordered by account name, then Google id. *out: malloc'd,
 * released with bm_store_calendars_free. */
int bm_store_calendar_list(bm_store_t *st, int64_t account_id, const char *gcal_id,
                           bool enabled_only, bm_calendar_t **out, size_t *n, char *err,
                           size_t errlen);
int bm_store_calendar_set_enabled(bm_store_t *st, int64_t id, bool enabled, const char *group,
                                  bm_role_t role, char *err, size_t errlen);
/* Sets (NULL: clears) the label of calendar id. */
int bm_store_calendar_set_label(bm_store_t *st, int64_t id, const char *label, char *err,
                                size_t errlen);
/* What {calendar} stands for: the label, else the summary, else the Google id
 * (borrowed from c). */
const char *bm_calendar_label(const bm_calendar_t *c);
/* Enabled calendars of cal's group that receive its blocks (role both|target),
 * never cal itself, whichever account reaches it (rows with its gcal_id).
 * *out: bm_store_calendars_free. */
int bm_store_calendar_targets(bm_store_t *st, const bm_calendar_t *cal, bm_calendar_t **out,
                              size_t *n, char *err, size_t errlen);
void bm_calendar_dispose(bm_calendar_t *c);
void bm_store_calendars_free(bm_calendar_t *c, size_t n);

/* Sync state. token NULL clears it (next sync lists in full). A full listing
 * also records plan_key, the planning settings it was planned with. */
int bm_store_sync_state_save(bm_store_t *st, int64_t calendar_id, const char *sync_token, bool full,
                             const char *plan_key, char *err, size_t errlen);
int bm_store_sync_result(bm_store_t *st, int64_t calendar_id, const char *result, const char *error,
                         char *err, size_t errlen);
int bm_store_sync_state_reset(bm_store_t *st, int64_t calendar_id, char *err, size_t errlen);
/* Clears the sync tokens of a group's enabled calendars: each is listed and
 * planned in full next time (a member joined, or blocks were put back). */
int bm_store_group_relist(bm_store_t *st, const char *group, char *err, size_t errlen);

/* ---- leases (one sync of a calendar at a time, across processes) ---- */
/* Takes or renews lease `name` for owner for ttl seconds. BM_EBUSY when another
 * live owner holds it. An owner "pid@host" whose process is gone loses it. */
int bm_store_lease_take(bm_store_t *st, const char *name, const char *owner, int ttl_s, char *err,
                        size_t errlen);
int bm_store_lease_release(bm_store_t *st, const char *name, const char *owner);

/* ---- the local mirror of source events ---- */
typedef struct bm_source {
    char *event_id;
    bool busy;                /* mirrored: busy and inside the window */
    char *shape;              /* bm_plan_shape of the event when busy, else NULL */
    char *recurring_event_id; /* set on a series' exceptions */
    char *ical_uid;           /* the event's iCalUID (NULL: unknown) */
} bm_source_t;

/* *out is the caller's: bm_source_dispose. BM_ENOTFOUND (no message) when absent. */
int bm_store_source_get(bm_store_t *st, int64_t calendar_id, const char *event_id, bm_source_t *out,
                        char *err, size_t errlen);
/* Inserts or replaces, marking the row seen. */
int bm_store_source_put(bm_store_t *st, int64_t calendar_id, const bm_source_t *src, char *err,
                        size_t errlen);
int bm_store_source_delete(bm_store_t *st, int64_t calendar_id, const char *event_id, char *err,
                           size_t errlen);
/* Whether the mirror holds exceptions (moved, cancelled, declined occurrences)
 * of series_id, mirrored as occurrences of the series or alone. */
int bm_store_source_has_exceptions(bm_store_t *st, int64_t calendar_id, const char *series_id,
                                   bool *yes, char *err, size_t errlen);
/* Full listings: unmark every row, put what is listed, then read what was not
 * (*out: bm_store_sources_free). */
int bm_store_source_unmark(bm_store_t *st, int64_t calendar_id, char *err, size_t errlen);
int bm_store_source_unseen(bm_store_t *st, int64_t calendar_id, bm_source_t **out, size_t *n,
                           char *err, size_t errlen);
void bm_source_dispose(bm_source_t *r);
void bm_store_sources_free(bm_source_t *r, size_t n);

/* ---- blocks: what busymirror owns (or wants) in each target calendar ---- */
typedef enum { BM_BLOCK_LIVE = 0, BM_BLOCK_USER_DELETED = 1 } bm_block_state_t;

typedef struct bm_block {
    int64_t target_calendar_id;
    char *block_id; /* Google event id (an instance id for an occurrence override) */
    int64_t source_calendar_id;
    char *source_event_id;
    char *master_block_id; /* set on occurrence overrides: the series block */
    char *wanted;          /* what the block must look like: its source's busy shape, title,
                              show-as and visibility (engine/sync.c block_key), or "cancelled"
                              for a cancelled occurrence; NULL = the block must go */
    char *body;            /* desired JSON body (for puts) */
    bool created;          /* exists in Google (an insert succeeded or answered 409) */
    bm_block_state_t state;
    char *etag;
} bm_block_t;

/* *out is the caller's: bm_block_dispose. BM_ENOTFOUND (no message) when absent. */
int bm_store_block_get(bm_store_t *st, int64_t target_calendar_id, const char *block_id,
                       bm_block_t *out, char *err, size_t errlen);
/* Inserts or replaces the row of b. b and its strings are borrowed for the call
 * only: the store copies them (the caller still owns and disposes b). */
int bm_store_block_put(bm_store_t *st, const bm_block_t *b, char *err, size_t errlen);
/* Its delete applied in Google: deletes the block row and the rows of its
 * occurrence overrides, and remembers the id (a tombstone, 30 days), so that a
 * block wanted there again is claimed as an update that revives it. */
int bm_store_block_delete(bm_store_t *st, int64_t target_calendar_id, const char *block_id,
                          char *err, size_t errlen);
/* A write of the block applied: created says whether it is in Google now; the
 * block's tombstone is forgotten. */
int bm_store_block_applied(bm_store_t *st, int64_t target_calendar_id, const char *block_id,
                           bool created, const char *etag, char *err, size_t errlen);
/* Blocks made from one source event (NULL: from the whole source calendar).
 * For these lists of blocks, *out is released with bm_store_blocks_free. */
int bm_store_blocks_for_source(bm_store_t *st, int64_t source_calendar_id,
                               const char *source_event_id, bm_block_t **out, size_t *n, char *err,
                               size_t errlen);
/* The occurrence rows ("<master>_<suffix>") of series block master_block_id in
 * a target. */
int bm_store_block_instances(bm_store_t *st, int64_t target_calendar_id,
                             const char *master_block_id, bm_block_t **out, size_t *n, char *err,
                             size_t errlen);
int bm_store_blocks_in_target(bm_store_t *st, int64_t target_calendar_id, bm_block_t **out,
                              size_t *n, char *err, size_t errlen);
/* Live series/single blocks held in a target (0: everywhere). */
int bm_store_block_count(bm_store_t *st, int64_t target_calendar_id, int64_t *n, char *err,
                         size_t errlen);
void bm_block_dispose(bm_block_t *b);
void bm_store_blocks_free(bm_block_t *b, size_t n);

/* ---- the same meeting in two calendars ----
 * A person invited through two accounts has the real event in both calendars
 * (one iCalUID, two event ids). A calendar's own events (not cancelled, not
 * ours, busy-making in its own free/busy) are recorded by iCalUID; a block is
 * not made in a target that holds its source's iCalUID: it is held back in
 * shared_blocks, with what it would be, until the target no longer does. */

/* Records that calendar_id holds event_id with ical_uid (marked seen).
 * *newly: no event of the calendar held that iCalUID before. */
int bm_store_own_event_put(bm_store_t *st, int64_t calendar_id, const char *event_id,
                           const char *ical_uid, bool *newly, char *err, size_t errlen);
/* Forgets event_id of calendar_id. *ical_uid (caller frees; NULL when it was
 * not recorded) is the iCalUID it held; *gone: no other event of the calendar
 * holds it now. */
int bm_store_own_event_drop(bm_store_t *st, int64_t calendar_id, const char *event_id,
                            char **ical_uid, bool *gone, char *err, size_t errlen);
/* Whether an event of calendar_id holds ical_uid. */
int bm_store_own_uid_held(bm_store_t *st, int64_t calendar_id, const char *ical_uid, bool *held,
                          char *err, size_t errlen);
/* Full listings: unmark every row of the calendar, put what is listed, then
 * read the ids of what was not (*ids: bm_store_strings_free). */
int bm_store_own_events_unmark(bm_store_t *st, int64_t calendar_id, char *err, size_t errlen);
int bm_store_own_events_unseen(bm_store_t *st, int64_t calendar_id, char ***ids, size_t *n,
                               char *err, size_t errlen);
void bm_store_strings_free(char **v, size_t n);

/* A block held back (shared_blocks row): what it would be in its target. */
typedef struct bm_shared_block {
    int64_t target_calendar_id;
    char *block_id;
    int64_t source_calendar_id;
    char *source_gcal_id; /* read only: the source calendar's Google id */
    char *source_event_id;
    char *master_block_id; /* set on a held-back series' occurrences */
    char *ical_uid;
    char *wanted; /* as blocks.wanted would be ("cancelled" for a cancelled occurrence) */
    char *body;   /* NULL for a cancelled occurrence */
    bool existed; /* it was in Google when held back (coming back, it is revived) */
} bm_shared_block_t;

/* Inserts or replaces the row of b (borrowed). */
int bm_store_shared_put(bm_store_t *st, const bm_shared_block_t *b, char *err, size_t errlen);
/* BM_ENOTFOUND (no message) when block_id is not held back in the target. */
int bm_store_shared_get(bm_store_t *st, int64_t target_calendar_id, const char *block_id,
                        bm_shared_block_t *out, char *err, size_t errlen);
/* Removes and returns block_id's row and its occurrences' rows, the series
 * first (*out: bm_store_shared_free; none: *n 0). */
int bm_store_shared_take(bm_store_t *st, int64_t target_calendar_id, const char *block_id,
                         bm_shared_block_t **out, size_t *n, char *err, size_t errlen);
/* Held-back series/single blocks of the target whose source has ical_uid, and
 * whose source is still mirrored into it (enabled, same group, busy); rows not
 * read are left (*out: bm_store_shared_free). */
int bm_store_shared_of_uid(bm_store_t *st, int64_t target_calendar_id, const char *ical_uid,
                           bm_shared_block_t **out, size_t *n, char *err, size_t errlen);
/* Holds back the occurrence overrides of series block master_block_id in the
 * target (the series goes, and they with it): their rows move to
 * shared_blocks, their pending writes are dropped. */
int bm_store_shared_hold_occurrences(bm_store_t *st, int64_t target_calendar_id,
                                     const char *master_block_id, const char *ical_uid, char *err,
                                     size_t errlen);
/* Drops every held-back row whose target or source is calendar_id (it leaves
 * its group: nothing is held back for it or from it any more). */
int bm_store_shared_forget_calendar(bm_store_t *st, int64_t calendar_id, char *err, size_t errlen);
void bm_shared_block_dispose(bm_shared_block_t *b);
void bm_store_shared_free(bm_shared_block_t *b, size_t n);
/* Wanted series/single blocks in the target whose source event has ical_uid
 * (*out: bm_store_blocks_free). */
int bm_store_blocks_of_uid(bm_store_t *st, int64_t target_calendar_id, const char *ical_uid,
                           bm_block_t **out, size_t *n, char *err, size_t errlen);
/* A block no write of which was ever sent to Google (never claimed) is not in
 * Google: forgets its row, its occurrences' rows and their pending writes
 * (*forgotten true). A block that may be in Google is left (*forgotten false). */
int bm_store_block_forget_unsent(bm_store_t *st, int64_t target_calendar_id, const char *block_id,
                                 bool *forgotten, char *err, size_t errlen);

/* ---- the outbox: block writes planned but not yet applied ---- */
typedef enum { BM_OUTBOX_PUT = 1, BM_OUTBOX_DELETE = 2 } bm_outbox_op_t;

/* Items are claimed by bm_store_outbox_claim and released (as an array) with
 * bm_store_outbox_items_free; there is no single-item dispose. */
typedef struct bm_outbox_item {
    int64_t id;
    int64_t target_calendar_id;
    char *target_gcal_id;
    char *block_id;
    bm_outbox_op_t op;
    bool is_instance;
    int attempts;
    char *body;   /* the block's desired body (puts) */
    bool created; /* the block exists (or was deleted) in Google: a put is an update */
    char *master_block_id;
    int64_t rev;       /* the plan's revision: a newer plan for the block bumps it */
    char *claim_owner; /* who claimed it (bm_store_outbox_claim) */
} bm_outbox_item_t;

/* Plans a write; replaces any pending one for the same block (attempts reset).
 * A claimed item keeps its claim: the new plan (a new rev) is applied once the
 * write in flight is settled, never at the same time. */
int bm_store_outbox_put(bm_store_t *st, int64_t target_calendar_id, const char *block_id,
                        bm_outbox_op_t op, bool is_instance, char *err, size_t errlen);
/* Removes an applied item, unless a newer plan for its block replaced it
 * meanwhile (*current false: the item stays, with the new plan, unclaimed).
 * Settling an item (done, retry later, dead letter) ends its claim. */
int bm_store_outbox_done(bm_store_t *st, const bm_outbox_item_t *it, bool *current, char *err,
                         size_t errlen);
/* Drops puts whose block has no body any more (its row is gone). */
int bm_store_outbox_drop_stale(bm_store_t *st, int64_t *n, char *err, size_t errlen);
/* Claims up to limit items due at now_ms for targets of one account, that no
 * one holds (or whose claim expired: a crashed owner's), for owner until
 * now_ms + ttl_ms, atomically: concurrent claimers never get the same item.
 * Occurrence overrides (instances) only once their series block exists and has
 * no write pending. *out is ordered by id: bm_store_outbox_items_free. */
int bm_store_outbox_claim(bm_store_t *st, int64_t account_id, bool instances, const char *owner,
                          int64_t now_ms, int64_t ttl_ms, size_t limit, bm_outbox_item_t **out,
                          size_t *n, char *err, size_t errlen);
/* Ends the claims of items that were not settled (their batch failed). */
int bm_store_outbox_release(bm_store_t *st, const bm_outbox_item_t *items, size_t n, char *err,
                            size_t errlen);
/* Ends the claims of owners "pid@host..." of this host whose process is gone
 * (a crash, kill -9): their items need not wait for the claims to expire. */
int bm_store_outbox_unclaim_dead(bm_store_t *st, int64_t now_ms, int64_t *n, char *err,
                                 size_t errlen);
/* Ends every claim of owner (*n: how many): its own claims, which it could
 * not give back when the database failed, need not wait out their expiry.
 * The caller must have no batch of owner's in flight. */
int bm_store_outbox_unclaim_owner(bm_store_t *st, const char *owner, int64_t *n, char *err,
                                  size_t errlen);
/* Items claimed, now, by owners other than owner: writes in flight elsewhere. */
int bm_store_outbox_in_flight(bm_store_t *st, const char *owner, int64_t now_ms, int64_t *n,
                              char *err, size_t errlen);
/* Counts a failed attempt and waits until next_at_ms (not when replaced meanwhile). */
int bm_store_outbox_retry_later(bm_store_t *st, const bm_outbox_item_t *it, int64_t next_at_ms,
                                const char *error, char *err, size_t errlen);
/* Moves an item to the dead letters. */
int bm_store_outbox_to_dead_letters(bm_store_t *st, const bm_outbox_item_t *it, const char *error,
                                    char *err, size_t errlen);
int bm_store_outbox_stats(bm_store_t *st, int64_t *pending, int64_t *next_due_ms, char *err,
                          size_t errlen);
/* Accounts owning a target with pending items (*ids malloc'd: free()). */
int bm_store_outbox_accounts(bm_store_t *st, int64_t **ids, size_t *n, char *err, size_t errlen);
void bm_store_outbox_items_free(bm_outbox_item_t *items, size_t n);

/* ---- sync log ---- */
/* One row to write: the strings are the caller's (often string literals),
 * borrowed for bm_store_sync_log_add; nothing to release. Rows are read back
 * as bm_sync_log_entry_t (bm_store_sync_log_list, at the end of this file). */
typedef struct bm_sync_log {
    int64_t calendar_id;
    int64_t started_at;
    int64_t duration_ms;
    const char *kind; /* full | incremental | drain */
    int64_t listed, inserted, updated, deleted, api_calls;
    const char *result; /* ok | error code name */
    const char *error;
} bm_sync_log_t;

int bm_store_sync_log_add(bm_store_t *st, const bm_sync_log_t *l, char *err, size_t errlen);

/* ---- audit log: every block deletion by reset, cleanup, disable or removal ---- */
/* Rows read by bm_store_audit_run own their strings and are released (as an
 * array) with bm_store_audits_free; one passed to bm_store_audit_add is the
 * caller's, borrowed for the call. */
typedef struct bm_audit {
    int64_t id;
    int64_t run_id; /* one per command run */
    int64_t at;
    char *action; /* reset | cleanup | disable | regroup | account-remove */
    int64_t account_id;
    char *gcal_id;  /* the calendar the block was deleted from */
    char *block_id; /* NULL: not a block but gcal_id's membership the run ended */
    char *content;  /* the block's JSON, enough to re-create it */
    int64_t undone_at;
    char *group_name; /* a membership's group and role */
    bm_role_t role;
} bm_audit_t;

int bm_store_audit_new_run(bm_store_t *st, int64_t *run_id, char *err, size_t errlen);
/* Inserts a (borrowed fields; id, at and undone_at ignored). */
int bm_store_audit_add(bm_store_t *st, const bm_audit_t *a, char *err, size_t errlen);
/* The entries of one run (run_id 0: the newest run); *out: bm_store_audits_free. */
int bm_store_audit_run(bm_store_t *st, int64_t run_id, bm_audit_t **out, size_t *n, char *err,
                       size_t errlen);
int bm_store_audit_mark_undone(bm_store_t *st, int64_t id, char *err, size_t errlen);
void bm_store_audits_free(bm_audit_t *a, size_t n);

/* Deletes (apply) or counts sync-log and audit entries older than before. */
int bm_store_logs_purge(bm_store_t *st, int64_t before, bool apply, int64_t *n_sync,
                        int64_t *n_audit, char *err, size_t errlen);

/* Live blocks whose source calendar is gone or disabled, whose source event is no
 * longer mirrored, or whose target left the source's group (bm_store_blocks_free). */
int bm_store_blocks_orphaned(bm_store_t *st, bm_block_t **out, size_t *n, char *err, size_t errlen);
/* Deletes (apply) or counts mirror rows nothing can use any more. */
int bm_store_sources_purge_unused(bm_store_t *st, bool apply, int64_t *n, char *err, size_t errlen);
/* Forgets (locally only) the blocks made from a source calendar and their
 * pending writes: the blocks stay in Google, unmanaged. */
int bm_store_blocks_forget_source(bm_store_t *st, int64_t source_calendar_id, char *err,
                                  size_t errlen);
/* Blocks to, or from, a calendar whose deletion is planned but not yet done. */
int bm_store_blocks_pending_delete(bm_store_t *st, int64_t calendar_id, int64_t *n, char *err,
                                   size_t errlen);
/* Forgets the blocks held in a calendar, their pending writes and its sync token
 * (reset); what it gives as a source stays. */
int bm_store_calendar_forget(bm_store_t *st, int64_t calendar_id, char *err, size_t errlen);

/* ---- dead letters ---- */
/* Rows own their strings; released (as an array) with bm_store_dead_letters_free. */
typedef struct bm_dead_letter {
    int64_t id;
    int64_t target_calendar_id;
    char *gcal_id;
    char *block_id;
    bm_outbox_op_t op;
    int attempts;
    char *error;
    int64_t failed_at;
} bm_dead_letter_t;

/* Every dead letter, oldest first; *out: bm_store_dead_letters_free. */
int bm_store_dead_letters(bm_store_t *st, bm_dead_letter_t **out, size_t *n, char *err,
                          size_t errlen);
/* Moves dead letter id (0: all) back to the outbox with fresh attempts, as the
 * write the block needs now (put or delete); *n moved. */
int bm_store_dead_letter_retry(bm_store_t *st, int64_t id, int64_t *n, char *err, size_t errlen);
int bm_store_dead_letters_purge(bm_store_t *st, int64_t before, int64_t *n, char *err,
                                size_t errlen);
void bm_store_dead_letters_free(bm_dead_letter_t *d, size_t n);

/* ---- health of one calendar, for status ---- */
/* Plain counters, filled in a caller's struct: nothing to release. */
typedef struct bm_health {
    int64_t outbox;   /* writes pending for it */
    int64_t retrying; /* of which failed at least once */
    int64_t dead_letters;
    int64_t jobs;               /* queued sync jobs */
    int64_t channel_expiration; /* ms, 0 = no live channel */
    int64_t blocks;             /* live blocks held */
} bm_health_t;

int bm_store_calendar_health(bm_store_t *st, int64_t calendar_id, bm_health_t *h, char *err,
                             size_t errlen);

/* ---- operator reports: audit runs and the sync log ---- */

/* One audited run (one reset, cleanup, disable, regroup or account removal),
 * as `undo --audit-id` takes it. Rows own their strings and the calendars
 * array; released (as an array) with bm_store_audit_summaries_free. */
typedef struct bm_audit_summary {
    int64_t run_id;
    int64_t at;       /* its first deletion */
    char *action;     /* reset | cleanup | disable | regroup | account-remove */
    char **calendars; /* the Google ids it deleted from, sorted, distinct */
    size_t n_calendars;
    int64_t blocks; /* deletions audited */
    int64_t undone; /* of which re-created by undo */
} bm_audit_summary_t;

/* The newest `limit` runs, newest first; *out: bm_store_audit_summaries_free. */
int bm_store_audit_list(bm_store_t *st, size_t limit, bm_audit_summary_t **out, size_t *n,
                        char *err, size_t errlen);
void bm_store_audit_summaries_free(bm_audit_summary_t *a, size_t n);

/* One sync of one calendar, read back from the sync log. Rows own their
 * strings; released (as an array) with bm_store_sync_log_entries_free. */
typedef struct bm_sync_log_entry {
    int64_t id;
    char *gcal_id;      /* NULL once the calendar is gone */
    char *account_name; /* NULL once the calendar is gone */
    int64_t started_at; /* seconds since the epoch */
    int64_t duration_ms;
    char *kind;                                 /* full | incremental */
    int64_t listed, inserted, updated, deleted; /* events listed; writes planned */
    int64_t api_calls;
    char *result; /* ok | error code name */
    char *error;  /* NULL when ok */
} bm_sync_log_entry_t;

/* The newest `limit` syncs of calendar_id (0: of every calendar), newest first;
 * *out: bm_store_sync_log_entries_free. */
int bm_store_sync_log_list(bm_store_t *st, int64_t calendar_id, size_t limit,
                           bm_sync_log_entry_t **out, size_t *n, char *err, size_t errlen);
void bm_store_sync_log_entries_free(bm_sync_log_entry_t *l, size_t n);

/* ---- the queue: sync jobs, at most one pending and one running per calendar ---- */
typedef enum { BM_JOB_PENDING = 0, BM_JOB_RUNNING = 1 } bm_job_state_t;

/* A claimed job. Owns reason, lease_owner and last_error: bm_job_dispose. */
typedef struct bm_job {
    int64_t id;
    int64_t calendar_id;
    bm_job_state_t state;
    char *reason;        /* why the first notification came ("push", "poll", ...) */
    int64_t enqueued_at; /* ms, the first notification folded into the job */
    int64_t run_at;      /* ms, due from then on */
    int attempts;        /* claims so far (a release does not count) */
    int64_t coalesced;   /* notifications folded into it after the first */
    char *lease_owner;
    int64_t lease_expires; /* ms */
    char *last_error;
} bm_job_t;

/*
 * Asks for a sync of calendar_id. No pending job: one is inserted, due at
 * now_ms + debounce_ms. A pending one: the notification is coalesced into it
 * (*coalesced true, may be NULL) and it becomes due debounce_ms after this one,
 * but never later than max_delay_ms after its first; a job waiting out a
 * failure's backoff (attempts > 0) keeps its run_at. A running job without a
 * follow-up gets its one pending follow-up. One statement: it runs inside the
 * caller's transaction when there is one (the gateway group-commits many
 * enqueues in one BEGIN IMMEDIATE ... COMMIT), and is durable only once that
 * commits.
 */
int bm_store_job_enqueue(bm_store_t *st, int64_t calendar_id, const char *reason, int64_t now_ms,
                         int64_t debounce_ms, int64_t max_delay_ms, bool *coalesced, char *err,
                         size_t errlen);
/*
 * Takes one due pending job (run_at <= now_ms) of a calendar
 * with no running job, marks it running for owner until now_ms + lease_ms and
 * counts an attempt; *out is the caller's (bm_job_dispose). A running job whose
 * lease expired (a crashed worker) is taken over first: it folds into its
 * calendar's pending follow-up, or becomes pending again itself. BM_ENOTFOUND
 * (no message) when nothing is due. Opens its own write transaction: must not
 * be called inside one (BM_EINVAL). Safe across threads and processes: a job is
 * never claimed twice, a calendar never runs twice.
 */
int bm_store_job_claim(bm_store_t *st, const char *owner, int64_t now_ms, int64_t lease_ms,
                       bm_job_t *out, char *err, size_t errlen);
/* The order of a claim: the account's priority (higher first); among equal
 * priorities the account served longest ago (accounts take turns: a due job
 * waits at most one claim per other account of its priority); then the most
 * overdue job (earliest run_at). bm_store_job_claim_for claims only jobs of
 * account_id's calendars (0: any). */
int bm_store_job_claim_for(bm_store_t *st, int64_t account_id, const char *owner, int64_t now_ms,
                           int64_t lease_ms, bm_job_t *out, char *err, size_t errlen);
/* The sync of a claimed job succeeded: deletes it. BM_ENOTFOUND when owner no
 * longer holds it (its lease expired and another worker took it over). */
int bm_store_job_done(bm_store_t *st, int64_t job_id, const char *owner, char *err, size_t errlen);
/* The sync failed: the job is pending again, due at next_run_ms (full-jitter
 * backoff, bm_retry_backoff_ms) with last_error. A pending follow-up of its
 * calendar absorbs it instead: one job, the earlier run_at, the coalesced counts
 * summed, the attempts kept. BM_ENOTFOUND when owner no longer holds it. */
int bm_store_job_failed(bm_store_t *st, int64_t job_id, const char *owner, int64_t next_run_ms,
                        const char *error, char *err, size_t errlen);
/* Renews owner's lease on a running job until lease_expires_ms (a long sync).
 * BM_ENOTFOUND when the lease is lost: stop working on it. */
int bm_store_job_extend(bm_store_t *st, int64_t job_id, const char *owner, int64_t lease_expires_ms,
                        char *err, size_t errlen);
/* Gives a running job back (shutdown): pending and due at once, its attempt
 * not counted, folded into a follow-up as bm_store_job_failed does.
 * BM_ENOTFOUND when owner no longer holds it. */
int bm_store_job_release(bm_store_t *st, int64_t job_id, const char *owner, char *err,
                         size_t errlen);
/* When bm_store_job_claim can next answer a job, for workers to sleep until:
 * the earliest run_at of a pending job whose calendar is not running (a running
 * calendar's follow-up counts from its lease's expiry, as does a running job's
 * takeover). *ms = 0 when the queue is empty. */
/* Running jobs whose owner is a process of this host that is gone (kill -9)
 * become pending and due at once, without waiting for their lease to expire;
 * *n counts them. Opens its own transaction per job. */
int bm_store_jobs_release_dead(bm_store_t *st, int64_t *n, char *err, size_t errlen);
int bm_store_job_next_due(bm_store_t *st, int64_t *ms, char *err, size_t errlen);
/* Jobs pending and running, and the notifications coalesced into them. */
int bm_store_queue_stats(bm_store_t *st, int64_t *pending, int64_t *running,
                         int64_t *coalesced_total, char *err, size_t errlen);
void bm_job_dispose(bm_job_t *j);

/* ---- watch channels (times in ms) ----
 * A channel's token is derived from its id (bm_crypto_channel_token): it is
 * never stored. A channel is current for its calendar when it is granted
 * (resource id and expiration known), not stopped, not expired, and expires
 * last among those; every other unstopped granted row is one the renewer stops
 * (bm_store_channels_to_stop): a replaced or expired channel, or a stray. */

/* A row of the channels table. Owns id and resource_id: bm_channel_dispose
 * (arrays: bm_store_channels_free). */
typedef struct bm_channel {
    char *id;
    int64_t calendar_id;
    char *resource_id;  /* Google's id of the watched calendar; NULL until granted */
    int64_t expiration; /* granted expiration; 0 until granted */
    int64_t created_at;
    int64_t stopped_at; /* 0 while not stopped */
} bm_channel_t;

/* Records a new channel of calendar_id before events.watch is called (commit it
 * first: the first notification can arrive before the watch answers).
 * BM_EEXIST when the id is taken. */
int bm_store_channel_add(bm_store_t *st, const char *id, int64_t calendar_id, int64_t now_ms,
                         char *err, size_t errlen);
/* What Google granted: the resource id and the expiration. BM_ENOTFOUND without the row. */
int bm_store_channel_set_granted(bm_store_t *st, const char *id, const char *resource_id,
                                 int64_t expiration_ms, char *err, size_t errlen);
/* *out is the caller's (bm_channel_dispose). BM_ENOTFOUND (no message) when absent. */
int bm_store_channel_get(bm_store_t *st, const char *id, bm_channel_t *out, char *err,
                         size_t errlen);
/* The current channel of calendar_id at now_ms (see above); *out as for get.
 * BM_ENOTFOUND (no message) when it has none. */
int bm_store_channel_current(bm_store_t *st, int64_t calendar_id, int64_t now_ms, bm_channel_t *out,
                             char *err, size_t errlen);
/* The channel is stopped (channels.stop answered, or the watch failed). */
int bm_store_channel_stopped(bm_store_t *st, const char *id, int64_t now_ms, char *err,
                             size_t errlen);
/* Records an authenticated notification of a channel that is not current, for
 * the renewer to stop: a row stopped at least a minute ago becomes due for a
 * stop again (unstopped, expired as of now_ms, so never current); an unknown id is added to the
 * calendar whose channels carry resource_id (nothing is recorded when no
 * channel does: the row needs a calendar). A replaced or expired row is due
 * for a stop already. */
int bm_store_channel_stray(bm_store_t *st, const char *id, const char *resource_id, int64_t now_ms,
                           char *err, size_t errlen);
/* Unstopped granted channels that are not current at now_ms or whose calendar
 * is disabled, oldest first:
 * *out is the caller's (bm_store_channels_free). */
int bm_store_channels_to_stop(bm_store_t *st, int64_t now_ms, bm_channel_t **out, size_t *n,
                              char *err, size_t errlen);
/* The unstopped granted channels of calendar_id; *out as for to_stop. */
int bm_store_channels_of_calendar(bm_store_t *st, int64_t calendar_id, bm_channel_t **out,
                                  size_t *n, char *err, size_t errlen);
/* Deletes stopped rows that expired before before_ms (no notification can come
 * any more) and never-granted rows created before it; *n (may be NULL) deleted. */
int bm_store_channels_purge(bm_store_t *st, int64_t before_ms, int64_t *n, char *err,
                            size_t errlen);
/* sync_state.mode of the calendar (its sync_state row is made when missing);
 * BM_MODE_PUSH clears a recorded refusal. */
int bm_store_calendar_set_mode(bm_store_t *st, int64_t calendar_id, bm_mode_t mode, char *err,
                               size_t errlen);
/* The calendar's watch was refused: mode poll, the reason (Google's, e.g.
 * "webhookUrlUnauthorized") and when push is tried again (ms), for status. */
int bm_store_calendar_watch_refused(bm_store_t *st, int64_t calendar_id, const char *reason,
                                    int64_t retry_at_ms, char *err, size_t errlen);
/*
 * A push notification, once its channel token checked out: *status is what to
 * answer Google. Unknown channel: 404 (recorded as a stray when its resource id
 * is known). resource_id other than the channel's: 400. A channel stopped less
 * than grace_ms ago (the seam of a renewal: a message already on its way), a
 * replaced or an expired one: its calendar's sync is enqueued (a change may be
 * behind it): 200. A channel stopped longer ago: a stray, recorded for the
 * renewer to stop again (at most once a minute), nothing enqueued: 200. A row
 * never granted for a minute (its watch answer was lost) takes the resource id
 * and is due for a stop, and its sync is enqueued. Else the sync is enqueued:
 * 200 (bm_store_job_enqueue, reason "push"). Runs inside the caller's
 * transaction (group commit): answer only after it commits. Store failures
 * return BM_ESTORE (answer 503).
 */
int bm_store_notification_enqueue(bm_store_t *st, const char *channel_id, const char *resource_id,
                                  int64_t now_ms, int64_t debounce_ms, int64_t max_delay_ms,
                                  int64_t grace_ms, int *status, char *err, size_t errlen);
void bm_channel_dispose(bm_channel_t *c);
void bm_store_channels_free(bm_channel_t *c, size_t n);

/* ---- serve's gauges (for /metrics) ---- */
typedef struct bm_serve_gauges {
    int64_t jobs_pending, jobs_running;
    int64_t outbox, dead_letters;
    int64_t accounts_ok, accounts_needs_login, accounts_breaker_open;
    int64_t calendars_push, calendars_poll; /* enabled calendars by mode */
    int64_t calendars_refused;              /* ... polling after a refused watch */
    int64_t earliest_channel_expiry_ms;     /* of a live, granted channel; 0: none */
} bm_serve_gauges_t;

/* Everything /metrics shows from the store, read in one statement. */
int bm_store_serve_gauges(bm_store_t *st, int64_t now_ms, bm_serve_gauges_t *g, char *err,
                          size_t errlen);

#endif
