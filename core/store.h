/*
 * core/store.h: busymirror's durable state in SQLite (WAL). Every SQL statement
 * of the project lives in core/store.c, behind these functions.
 *
 * A bm_store_t is one connection; use one per thread. Rows returned in structs
 * own their strings: release them with the matching *_dispose function.
 * Functions return 0 or a negative BM_E* code with a message in err.
 */
#ifndef BM_CORE_STORE_H
#define BM_CORE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct bm_store bm_store_t;

#define BM_STORE_SCHEMA_VERSION 2

/* Opens (creating 0600 if needed) and migrates to the newest schema. */
int bm_store_open(const char *path, bm_store_t **out, char *err, size_t errlen);
/* Opens and migrates only up to `version` (tests of migrations). */
int bm_store_open_at(const char *path, int version, bm_store_t **out, char *err, size_t errlen);
void bm_store_close(bm_store_t *st);
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
    int64_t created_at;
} bm_account_t;

int bm_store_account_add(bm_store_t *st, const char *name, const char *email,
                         const unsigned char *token_enc, size_t token_enc_len, int64_t *id_out,
                         char *err, size_t errlen);
int bm_store_account_get(bm_store_t *st, const char *name, bm_account_t *out, char *err,
                         size_t errlen); /* BM_ENOTFOUND when absent */
int bm_store_account_get_by_id(bm_store_t *st, int64_t id, bm_account_t *out, char *err,
                               size_t errlen);
/* All accounts, ordered by name; *out is a malloc'd array (bm_store_accounts_free). */
int bm_store_account_list(bm_store_t *st, bm_account_t **out, size_t *n, char *err,
                          size_t errlen);
int bm_store_account_set_state(bm_store_t *st, int64_t id, bm_account_state_t state, char *err,
                               size_t errlen);
int bm_store_account_set_token(bm_store_t *st, int64_t id, const unsigned char *token_enc,
                               size_t len, char *err, size_t errlen);
int bm_store_account_set_email(bm_store_t *st, int64_t id, const char *email, char *err,
                               size_t errlen);
/* Removes the account and, by cascade, its calendars and their state. */
int bm_store_account_remove(bm_store_t *st, int64_t id, char *err, size_t errlen);
void bm_account_dispose(bm_account_t *a);
void bm_store_accounts_free(bm_account_t *a, size_t n);

/* ---- calendars ---- */
typedef enum { BM_ROLE_BOTH = 0, BM_ROLE_SOURCE = 1, BM_ROLE_TARGET = 2 } bm_role_t;
typedef enum { BM_MODE_PUSH = 0, BM_MODE_POLL = 1 } bm_mode_t;

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
} bm_calendar_t;

const char *bm_role_name(bm_role_t r);
int bm_role_parse(const char *s, bm_role_t *out);

/* Inserts or refreshes a calendar seen in calendarList (keeps enabled/group/role). */
int bm_store_calendar_upsert(bm_store_t *st, int64_t account_id, const char *gcal_id,
                             const char *summary, const char *time_zone, const char *access_role,
                             bool primary, int64_t *id_out, char *err, size_t errlen);
int bm_store_calendar_get(bm_store_t *st, int64_t id, bm_calendar_t *out, char *err,
                          size_t errlen);
/* Calendars matching a filter: account_id 0 = any, gcal_id NULL = any,
 * enabled_only. Ordered by account name, then Google id. */
int bm_store_calendar_list(bm_store_t *st, int64_t account_id, const char *gcal_id,
                           bool enabled_only, bm_calendar_t **out, size_t *n, char *err,
                           size_t errlen);
int bm_store_calendar_set_enabled(bm_store_t *st, int64_t id, bool enabled, const char *group,
                                  bm_role_t role, char *err, size_t errlen);
/* Enabled calendars of cal's group that receive its blocks (role both|target, not cal). */
int bm_store_calendar_targets(bm_store_t *st, const bm_calendar_t *cal, bm_calendar_t **out,
                              size_t *n, char *err, size_t errlen);
void bm_calendar_dispose(bm_calendar_t *c);
void bm_store_calendars_free(bm_calendar_t *c, size_t n);

/* Sync state. token NULL clears it (next sync lists in full). */
int bm_store_sync_state_save(bm_store_t *st, int64_t calendar_id, const char *sync_token,
                             bool full, char *err, size_t errlen);
int bm_store_sync_result(bm_store_t *st, int64_t calendar_id, const char *result,
                         const char *error, char *err, size_t errlen);
int bm_store_sync_state_reset(bm_store_t *st, int64_t calendar_id, char *err, size_t errlen);

/* ---- leases (one sync of a calendar at a time, across processes) ---- */
/* Takes or renews lease `name` for owner for ttl seconds. BM_EBUSY when another
 * live owner holds it. An owner "pid@host" whose process is gone loses it. */
int bm_store_lease_take(bm_store_t *st, const char *name, const char *owner, int ttl_s, char *err,
                        size_t errlen);
int bm_store_lease_release(bm_store_t *st, const char *name, const char *owner);

#endif
