/*
 * core/store.c: every SQL statement of busymirror.
 *
 * Statements are prepared once per connection and cached by the address of
 * their (static) SQL text. Schema changes are forward migrations, applied in
 * order at open; PRAGMA user_version records the newest applied.
 */
#include "core/store.h"
#include "core/log.h"
#include "core/util.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define STMT_CACHE 128

struct bm_store {
    sqlite3 *db;
    struct {
        const char *sql;
        sqlite3_stmt *stmt;
    } cache[STMT_CACHE];
};

/* ---- migrations ---- */

static const char *const migrations[] = {
    /* 1: the base schema */
    "CREATE TABLE accounts("
    "  id INTEGER PRIMARY KEY,"
    "  name TEXT NOT NULL UNIQUE,"
    "  email TEXT,"
    "  refresh_token_enc BLOB,"
    "  state INTEGER NOT NULL DEFAULT 0,"
    "  created_at INTEGER NOT NULL);"
    "CREATE TABLE calendars("
    "  id INTEGER PRIMARY KEY,"
    "  account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,"
    "  gcal_id TEXT NOT NULL,"
    "  summary TEXT, time_zone TEXT, access_role TEXT,"
    "  is_primary INTEGER NOT NULL DEFAULT 0,"
    "  enabled INTEGER NOT NULL DEFAULT 0,"
    "  group_name TEXT NOT NULL DEFAULT 'default',"
    "  role INTEGER NOT NULL DEFAULT 0,"
    "  UNIQUE(account_id, gcal_id));"
    "CREATE INDEX calendars_gcal ON calendars(gcal_id);"
    "CREATE INDEX calendars_group ON calendars(group_name, enabled);"
    "CREATE TABLE sync_state("
    "  calendar_id INTEGER PRIMARY KEY REFERENCES calendars(id) ON DELETE CASCADE,"
    "  sync_token TEXT,"
    "  last_full_sync INTEGER, last_incr_sync INTEGER,"
    "  mode INTEGER NOT NULL DEFAULT 0,"
    "  last_result TEXT, last_error TEXT, last_sync_at INTEGER);"
    /* the local mirror of each source calendar's events */
    "CREATE TABLE source_events("
    "  calendar_id INTEGER NOT NULL REFERENCES calendars(id) ON DELETE CASCADE,"
    "  event_id TEXT NOT NULL,"
    "  busy INTEGER NOT NULL,"
    "  shape TEXT,"
    "  recurring_event_id TEXT,"
    "  seen INTEGER NOT NULL DEFAULT 1,"
    "  PRIMARY KEY(calendar_id, event_id)) WITHOUT ROWID;"
    /* one row per block busymirror owns (or wants) in a target calendar */
    "CREATE TABLE blocks("
    "  target_calendar_id INTEGER NOT NULL REFERENCES calendars(id) ON DELETE CASCADE,"
    "  block_id TEXT NOT NULL,"
    "  source_calendar_id INTEGER NOT NULL,"
    "  source_event_id TEXT NOT NULL,"
    "  master_block_id TEXT,"
    "  shape TEXT,"
    "  body TEXT,"
    "  created INTEGER NOT NULL DEFAULT 0,"
    "  state INTEGER NOT NULL DEFAULT 0,"
    "  etag TEXT,"
    "  updated_at INTEGER,"
    "  PRIMARY KEY(target_calendar_id, block_id)) WITHOUT ROWID;"
    "CREATE INDEX blocks_source ON blocks(source_calendar_id, source_event_id);"
    "CREATE TABLE outbox("
    "  id INTEGER PRIMARY KEY,"
    "  target_calendar_id INTEGER NOT NULL REFERENCES calendars(id) ON DELETE CASCADE,"
    "  account_id INTEGER NOT NULL," /* the target's: batches are per account */
    "  block_id TEXT NOT NULL,"
    "  op INTEGER NOT NULL,"
    "  is_instance INTEGER NOT NULL DEFAULT 0,"
    "  attempts INTEGER NOT NULL DEFAULT 0,"
    "  next_at INTEGER NOT NULL DEFAULT 0,"
    "  last_error TEXT,"
    "  created_at INTEGER NOT NULL,"
    "  rev INTEGER NOT NULL DEFAULT 0," /* bumped by every new plan for the block */
    "  UNIQUE(target_calendar_id, block_id));"
    "CREATE INDEX outbox_due ON outbox(account_id, is_instance, id);"
    /* the queue: at most one pending and one running job per calendar */
    "CREATE TABLE jobs("
    "  id INTEGER PRIMARY KEY,"
    "  calendar_id INTEGER NOT NULL REFERENCES calendars(id) ON DELETE CASCADE,"
    "  state INTEGER NOT NULL,"
    "  reason TEXT,"
    "  enqueued_at INTEGER NOT NULL,"
    "  run_at INTEGER NOT NULL,"
    "  attempts INTEGER NOT NULL DEFAULT 0,"
    "  coalesced INTEGER NOT NULL DEFAULT 0,"
    "  lease_owner TEXT, lease_expires INTEGER,"
    "  last_error TEXT,"
    "  UNIQUE(calendar_id, state));"
    "CREATE INDEX jobs_due ON jobs(state, run_at);"
    "CREATE TABLE channels("
    "  id TEXT PRIMARY KEY,"
    "  calendar_id INTEGER NOT NULL REFERENCES calendars(id) ON DELETE CASCADE,"
    "  resource_id TEXT,"
    "  token_enc BLOB,"
    "  expiration INTEGER,"
    "  created_at INTEGER NOT NULL,"
    "  stopped_at INTEGER);"
    "CREATE INDEX channels_calendar ON channels(calendar_id);"
    "CREATE TABLE sync_log("
    "  id INTEGER PRIMARY KEY,"
    "  calendar_id INTEGER,"
    "  started_at INTEGER NOT NULL,"
    "  duration_ms INTEGER,"
    "  kind TEXT,"
    "  listed INTEGER, inserted INTEGER, updated INTEGER, deleted INTEGER,"
    "  api_calls INTEGER,"
    "  result TEXT, error TEXT);"
    "CREATE INDEX sync_log_calendar ON sync_log(calendar_id, started_at);"
    "CREATE INDEX sync_log_time ON sync_log(started_at);"
    "CREATE TABLE leases(name TEXT PRIMARY KEY, owner TEXT NOT NULL,"
    "  expires_at INTEGER NOT NULL) WITHOUT ROWID;",

    /* 2: dead letters and the audit log (deletions by reset, cleanup, removal) */
    "CREATE TABLE dead_letters("
    "  id INTEGER PRIMARY KEY,"
    "  target_calendar_id INTEGER REFERENCES calendars(id) ON DELETE CASCADE,"
    "  block_id TEXT NOT NULL,"
    "  op INTEGER NOT NULL,"
    "  is_instance INTEGER NOT NULL DEFAULT 0,"
    "  attempts INTEGER NOT NULL,"
    "  error TEXT,"
    "  failed_at INTEGER NOT NULL);"
    "CREATE INDEX dead_letters_time ON dead_letters(failed_at);"
    "CREATE TABLE audit_log("
    "  id INTEGER PRIMARY KEY,"
    "  run_id INTEGER NOT NULL,"
    "  at INTEGER NOT NULL,"
    "  action TEXT NOT NULL,"
    "  account_id INTEGER,"
    "  gcal_id TEXT,"
    "  block_id TEXT,"
    "  content TEXT,"
    "  undone_at INTEGER);"
    "CREATE INDEX audit_run ON audit_log(run_id);"
    "CREATE INDEX audit_time ON audit_log(at);",

    /* 3: a circuit breaker per account (open after repeated failures) */
    "ALTER TABLE accounts ADD COLUMN breaker_failures INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE accounts ADD COLUMN breaker_until INTEGER NOT NULL DEFAULT 0;",

    /* 4: the planning settings (block title, busy rules) of the last full listing:
     * when they change, every source is listed and planned again; a series'
     * exceptions found by their series */
    "ALTER TABLE sync_state ADD COLUMN plan_key TEXT;"
    "CREATE INDEX source_events_series ON source_events(calendar_id, recurring_event_id);",

    /* 5: a block's column says what it holds: everything the block must look
     * like (busy shape, title, show-as, visibility), not only its shape */
    "ALTER TABLE blocks RENAME COLUMN shape TO wanted;",

    /* 6: outbox items are claimed before they are applied (a lease per item), so
     * that overlapping runs and workers apply each write once */
    "ALTER TABLE outbox ADD COLUMN claim_owner TEXT;"
    "ALTER TABLE outbox ADD COLUMN claim_until INTEGER NOT NULL DEFAULT 0;",

    /* 7: a disable or regroup records the membership it ended (a row without a
     * block), so that undo can restore it along with the blocks */
    "ALTER TABLE audit_log ADD COLUMN group_name TEXT;"
    "ALTER TABLE audit_log ADD COLUMN role INTEGER NOT NULL DEFAULT 0;",

    /* 8: each account's access token, sealed like its refresh token, kept until
     * shortly before it expires (an idle run refreshes nothing) */
    "ALTER TABLE accounts ADD COLUMN access_token_enc BLOB;"
    "ALTER TABLE accounts ADD COLUMN access_expires INTEGER NOT NULL DEFAULT 0;",

    /* 9: scheduling: each account's priority (higher first) and poll interval
     * (seconds; 0: [sync] poll_interval), and the sequence number of its latest
     * job claim (equal priorities take turns: the longest unserved first) */
    "ALTER TABLE accounts ADD COLUMN priority INTEGER NOT NULL DEFAULT 50;"
    "ALTER TABLE accounts ADD COLUMN poll_interval INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE accounts ADD COLUMN claim_seq INTEGER NOT NULL DEFAULT 0;",

    /* 10: a refused watch is remembered with its reason and the time of the next
     * try (ms), so that status shows why a calendar polls and when push is
     * tried again; both are cleared when a channel works */
    "ALTER TABLE sync_state ADD COLUMN watch_refused TEXT;"
    "ALTER TABLE sync_state ADD COLUMN watch_retry_at INTEGER NOT NULL DEFAULT 0;",

    /* 11: a calendar's label ({calendar} in a group's block_summary; calendar
     * set --label), NULL: its summary */
    "ALTER TABLE calendars ADD COLUMN label TEXT;",

    /* 12: the same meeting in two calendars (a person invited through two
     * accounts). Each calendar's own events by iCalUID; each source's iCalUID;
     * the blocks held back because their target holds the meeting itself (what
     * they would be, to put them back when it no longer does); and whether any
     * write of a block was ever sent to Google (claimed): a block never sent can
     * be forgotten instead of deleted. Existing blocks count as sent. */
    "ALTER TABLE source_events ADD COLUMN ical_uid TEXT;"
    "CREATE INDEX source_events_uid ON source_events(ical_uid);"
    "CREATE TABLE own_events("
    "  calendar_id INTEGER NOT NULL REFERENCES calendars(id) ON DELETE CASCADE,"
    "  event_id TEXT NOT NULL,"
    "  ical_uid TEXT NOT NULL,"
    "  seen INTEGER NOT NULL DEFAULT 1,"
    "  PRIMARY KEY(calendar_id, event_id)) WITHOUT ROWID;"
    "CREATE INDEX own_events_uid ON own_events(calendar_id, ical_uid);"
    "CREATE TABLE shared_blocks("
    "  target_calendar_id INTEGER NOT NULL REFERENCES calendars(id) ON DELETE CASCADE,"
    "  block_id TEXT NOT NULL,"
    "  source_calendar_id INTEGER NOT NULL,"
    "  source_event_id TEXT NOT NULL,"
    "  master_block_id TEXT,"
    "  ical_uid TEXT,"
    "  wanted TEXT NOT NULL,"
    "  body TEXT,"
    "  existed INTEGER NOT NULL DEFAULT 0," /* it was in Google when held back */
    "  PRIMARY KEY(target_calendar_id, block_id)) WITHOUT ROWID;"
    "CREATE INDEX shared_blocks_uid ON shared_blocks(target_calendar_id, ical_uid);"
    "CREATE INDEX shared_blocks_master ON shared_blocks(target_calendar_id, master_block_id);"
    "ALTER TABLE blocks ADD COLUMN sent INTEGER NOT NULL DEFAULT 0;"
    "UPDATE blocks SET sent = 1;"
    "CREATE TRIGGER outbox_claim_sent AFTER UPDATE OF claim_owner ON outbox"
    "  WHEN NEW.claim_owner IS NOT NULL BEGIN"
    "  UPDATE blocks SET sent = 1 WHERE target_calendar_id = NEW.target_calendar_id"
    "   AND block_id = NEW.block_id AND sent = 0;"
    "  END;",

    /* 13: the ids of blocks deleted in Google. Google keeps a deleted event's id
     * (an insert of it answers 409): a block wanted again there is revived with
     * one update instead of an insert and an update. Forgotten once the block is
     * back (or known gone for good), and after BLOCK_TOMBSTONE_DAYS. */
    "CREATE TABLE block_tombstones("
    "  target_calendar_id INTEGER NOT NULL REFERENCES calendars(id) ON DELETE CASCADE,"
    "  block_id TEXT NOT NULL,"
    "  deleted_at INTEGER NOT NULL,"
    "  PRIMARY KEY(target_calendar_id, block_id)) WITHOUT ROWID;"
    "CREATE INDEX block_tombstones_age ON block_tombstones(target_calendar_id, deleted_at);",
};

_Static_assert(sizeof(migrations) / sizeof(migrations[0]) == BM_STORE_SCHEMA_VERSION,
               "BM_STORE_SCHEMA_VERSION must match the migrations");

/* ---- helpers ---- */

/* bm_mono_ms() of the latest "storage unavailable" failure (bm_store_unavailable_at). */
static atomic_llong unavailable_ms;

int64_t bm_store_unavailable_at(void)
{
    return atomic_load(&unavailable_ms);
}

static int db_err(bm_store_t *st, char *err, size_t errlen, const char *what)
{
    /* The database cannot take it now (disk full, I/O error, read-only, lock
     * not granted in time): the same statement may work once that passes. */
    switch (sqlite3_errcode(st->db) & 0xff) {
    case SQLITE_FULL:
    case SQLITE_IOERR:
    case SQLITE_READONLY:
    case SQLITE_CANTOPEN:
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        atomic_store(&unavailable_ms, bm_mono_ms());
        break;
    default:
        break;
    }
    return bm_err(err, errlen, BM_ESTORE, "store: %s: %s", what, sqlite3_errmsg(st->db));
}

/*
 * One use of a cached statement. The bind_* helpers record the first bind that
 * fails; step() then fails with it, so every bind error reaches the caller at
 * step, with SQLite's message, without a check after each bind.
 */
typedef struct query {
    sqlite3_stmt *s;
    int bind_rc; /* SQLITE_OK, or the code of the first failed bind */
} query_t;

/* The cached statement for sql (a static string), reset and unbound. */
static sqlite3_stmt *stmt(bm_store_t *st, const char *sql)
{
    size_t h = ((uintptr_t)sql >> 3) % STMT_CACHE;
    for (size_t i = 0; i < STMT_CACHE; i++) {
        size_t k = (h + i) % STMT_CACHE;
        if (st->cache[k].sql == sql) {
            /* reset answers the last step's error, already reported then;
             * clear_bindings cannot fail */
            (void)sqlite3_reset(st->cache[k].stmt);
            (void)sqlite3_clear_bindings(st->cache[k].stmt);
            return st->cache[k].stmt;
        }
        if (st->cache[k].sql == NULL) {
            sqlite3_stmt *s = NULL;
            if (sqlite3_prepare_v3(st->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s, NULL) !=
                SQLITE_OK)
                return NULL;
            st->cache[k].sql = sql;
            st->cache[k].stmt = s;
            return s;
        }
    }
    abort(); /* more distinct statements than STMT_CACHE: raise it */
}

static void bind_rc(query_t *q, int rc)
{
    if (q->bind_rc == SQLITE_OK)
        q->bind_rc = rc;
}

static void bind_text(query_t *q, int i, const char *v)
{
    bind_rc(q, v == NULL ? sqlite3_bind_null(q->s, i)
                         : sqlite3_bind_text(q->s, i, v, -1, SQLITE_TRANSIENT));
}

static void bind_int(query_t *q, int i, int v)
{
    bind_rc(q, sqlite3_bind_int(q->s, i, v));
}

static void bind_int64(query_t *q, int i, int64_t v)
{
    bind_rc(q, sqlite3_bind_int64(q->s, i, v));
}

static void bind_blob(query_t *q, int i, const void *p, size_t n)
{
    bind_rc(q, n > INT32_MAX ? SQLITE_TOOBIG
                             : sqlite3_bind_blob(q->s, i, p, (int)n, SQLITE_TRANSIENT));
}

/* sqlite3_step, unless a bind failed: then that bind's code. */
static int step(query_t *q)
{
    return q->bind_rc != SQLITE_OK ? q->bind_rc : sqlite3_step(q->s);
}

/* The message of a failed step (or bind). */
static int query_err(bm_store_t *st, const query_t *q, char *err, size_t errlen, const char *what)
{
    if (q->bind_rc != SQLITE_OK)
        return bm_err(err, errlen, BM_ESTORE, "store: %s: bind: %s", what,
                      sqlite3_errstr(q->bind_rc));
    return db_err(st, err, errlen, what);
}

/* Ends a use of q. After a failed step reset answers that step's error again,
 * which the caller reports (before calling this). */
static void done(query_t *q)
{
    (void)sqlite3_reset(q->s);
}

static char *col_dup(sqlite3_stmt *s, int i)
{
    const unsigned char *t = sqlite3_column_text(s, i);
    return t != NULL ? bm_strdup((const char *)t) : NULL;
}

/* Runs a statement that returns no rows. */
static int exec_done(bm_store_t *st, query_t *q, char *err, size_t errlen, const char *what)
{
    int rc = step(q);
    int ret = (rc == SQLITE_DONE || rc == SQLITE_ROW) ? BM_OK : query_err(st, q, err, errlen, what);
    done(q);
    return ret;
}

static int count_changes(bm_store_t *st, query_t *q, int64_t *n, char *err, size_t errlen,
                         const char *what)
{
    int rc = exec_done(st, q, err, errlen, what);
    if (rc == BM_OK && n != NULL)
        *n = sqlite3_changes(st->db);
    return rc;
}

#define PREP(var, sql)                                                                             \
    query_t var = {stmt(st, sql), SQLITE_OK};                                                      \
    if (var.s == NULL)                                                                             \
        return query_err(st, &var, err, errlen, "prepare");

/* Steps q to its end, reading each row with read_row into a growing array of
 * size-byte elements (zeroed first), returned (caller frees). On failure (*ret)
 * what was read is released and NULL returned. */
static void *read_rows(bm_store_t *st, query_t *q, size_t size,
                       void (*read_row)(sqlite3_stmt *, void *), void (*release)(void *, size_t),
                       size_t *n, int *ret, char *err, size_t errlen, const char *what)
{
    char *rows = NULL;
    size_t cap = 0, count = 0;
    int rc;
    while ((rc = step(q)) == SQLITE_ROW) {
        if (count == cap) {
            cap = cap ? cap * 2 : 16;
            rows = bm_realloc(rows, cap * size);
        }
        memset(rows + count * size, 0, size);
        read_row(q->s, rows + count++ * size);
    }
    *ret = rc == SQLITE_DONE ? BM_OK : query_err(st, q, err, errlen, what);
    done(q);
    if (rc != SQLITE_DONE) {
        release(rows, count);
        rows = NULL;
        count = 0;
    }
    *n = count;
    return rows;
}

/* Steps a statement answering one row into read_row (NULL: nothing to read).
 * SQLITE_DONE gives BM_ENOTFOUND without a message. */
static int read_one(bm_store_t *st, query_t *q, void (*read_row)(sqlite3_stmt *, void *), void *row,
                    char *err, size_t errlen, const char *what)
{
    int rc = step(q);
    int ret = BM_OK;
    if (rc == SQLITE_ROW && read_row != NULL)
        read_row(q->s, row);
    else if (rc == SQLITE_DONE)
        ret = BM_ENOTFOUND;
    else if (rc != SQLITE_ROW)
        ret = query_err(st, q, err, errlen, what);
    done(q);
    return ret;
}

static void read_id(sqlite3_stmt *s, void *row)
{
    *(int64_t *)row = sqlite3_column_int64(s, 0);
}

/* Steps a statement answering one row of n integers into v[0..n). */
static int read_int64s(bm_store_t *st, query_t *q, int64_t *v, int n, char *err, size_t errlen,
                       const char *what)
{
    int rc = step(q);
    int ret = rc == SQLITE_ROW ? BM_OK : query_err(st, q, err, errlen, what);
    for (int i = 0; i < n; i++)
        v[i] = rc == SQLITE_ROW ? sqlite3_column_int64(q->s, i) : 0;
    done(q);
    return ret;
}

/* Steps a statement answering one integer (a count, an id) into *n. */
static int read_count(bm_store_t *st, query_t *q, int64_t *n, char *err, size_t errlen,
                      const char *what)
{
    return read_int64s(st, q, n, 1, err, errlen, what);
}

static void release_plain(void *rows, size_t n)
{
    (void)n;
    free(rows);
}

/* ---- open, migrate, close ---- */

static int read_user_version(bm_store_t *st, int *version, char *err, size_t errlen)
{
    sqlite3_stmt *s = NULL;
    int rc = BM_OK;
    if (sqlite3_prepare_v2(st->db, "PRAGMA user_version", -1, &s, NULL) != SQLITE_OK ||
        sqlite3_step(s) != SQLITE_ROW) {
        rc = db_err(st, err, errlen, "read schema version");
        goto out;
    }
    *version = sqlite3_column_int(s, 0);
    if (*version > BM_STORE_SCHEMA_VERSION)
        rc = bm_err(err, errlen, BM_ESTORE,
                    "store: database schema %d is newer than this busymirror (%d): upgrade it",
                    *version, BM_STORE_SCHEMA_VERSION);
out:
    (void)sqlite3_finalize(s); /* repeats the step's error, reported above */
    return rc;
}

/* Runs sql (one or more statements, no rows). */
static int exec_sql(bm_store_t *st, const char *sql, char *err, size_t errlen, const char *what)
{
    char *msg = NULL;
    int s = sqlite3_exec(st->db, sql, NULL, NULL, &msg);
    int rc = s == SQLITE_OK ? BM_OK
                            : bm_err(err, errlen, BM_ESTORE, "store: %s: %s", what,
                                     msg != NULL ? msg : sqlite3_errstr(s));
    sqlite3_free(msg);
    return rc;
}

/* Applies migrations [version, target) inside the caller's write transaction. */
static int apply_migrations(bm_store_t *st, int version, int target, char *err, size_t errlen)
{
    char what[64];
    int rc = BM_OK;
    for (int v = version; rc == BM_OK && v < target; v++) {
        char *set = bm_sprintf("PRAGMA user_version = %d", v + 1);
        snprintf(what, sizeof(what), "migration to schema %d failed", v + 1);
        rc = exec_sql(st, migrations[v], err, errlen, what);
        if (rc == BM_OK)
            rc = exec_sql(st, set, err, errlen, what);
        free(set);
        if (rc == BM_OK)
            BM_LOG(BM_LOG_DEBUG, BM_MSG("schema migrated"), BM_KI("version", v + 1));
    }
    return rc;
}

/* Migrates up to target. The version is read again under the write lock (BEGIN
 * IMMEDIATE): processes opening a new database at once migrate it only once. */
static int migrate(bm_store_t *st, int target, char *err, size_t errlen)
{
    int version = 0;
    int rc = read_user_version(st, &version, err, errlen);
    if (rc != BM_OK || version >= target) /* up to date: no write lock needed */
        goto out;
    if ((rc = exec_sql(st, "BEGIN IMMEDIATE", err, errlen, "begin migration")) != BM_OK)
        goto out;
    rc = read_user_version(st, &version, err, errlen);
    if (rc == BM_OK)
        rc = apply_migrations(st, version, target, err, errlen);
    if (rc == BM_OK)
        rc = exec_sql(st, "COMMIT", err, errlen, "commit migration");
    if (rc != BM_OK)
        bm_store_rollback(st);
out:
    return rc;
}

/* Switches a new database to WAL. Two connections doing so at once each hold a
 * read lock and want the write lock: SQLite answers one SQLITE_BUSY at once,
 * without the busy handler (that wait could deadlock). The statement is then
 * retried, for about as long as the busy timeout. */
static int use_wal(bm_store_t *st, char *err, size_t errlen, const char *path)
{
    int s = SQLITE_BUSY;
    for (int tries = 0; s == SQLITE_BUSY && tries < 1000; tries++) {
        if (tries > 0)
            (void)sqlite3_sleep(10); /* answers the time slept */
        s = sqlite3_exec(st->db, "PRAGMA journal_mode=WAL", NULL, NULL, NULL);
    }
    return s == SQLITE_OK ? BM_OK : db_err(st, err, errlen, path);
}

/* Makes path+suffix 0600 if it was more open (with a warning), refusing a
 * symbolic link; creates it 0600 when create and it is absent, else skips an
 * absent one. An existing file is never opened here: closing any descriptor of
 * a file drops every POSIX lock this process holds on it, which would pull the
 * locks from under another connection of the process (SQLite's own open
 * tracking knows nothing of ours) and let a newcomer reset the -shm under its
 * mapping. */
static int private_file(const char *path, const char *suffix, bool create, char *err, size_t errlen)
{
    char *name = bm_sprintf("%s%s", path, suffix);
    struct stat sb;
    int rc = BM_OK;
    if (lstat(name, &sb) != 0 && errno == ENOENT && create) {
        int fd = open(name, O_RDWR | O_CLOEXEC | O_NOFOLLOW | O_CREAT | O_EXCL, 0600);
        if (fd >= 0) { /* brand new: nobody holds a lock on it yet */
            if (close(fd) != 0)
                rc = bm_err(err, errlen, BM_EIO, "store: %s: %s", name, strerror(errno));
            goto out;
        }
        if (errno != EEXIST) {
            rc = bm_err(err, errlen, BM_EIO, "store: %s: %s", name, strerror(errno));
            goto out;
        }
        /* created meanwhile by another process: look at it as it is */
    }
    if (lstat(name, &sb) != 0) {
        if (errno != ENOENT || create)
            rc = bm_err(err, errlen, BM_EIO, "store: %s: %s", name, strerror(errno));
        goto out;
    }
    if (S_ISLNK(sb.st_mode)) {
        rc = bm_err(err, errlen, BM_EIO,
                    "store: %s: is a symbolic link (refused: name the file itself)", name);
        goto out;
    }
    if (!S_ISREG(sb.st_mode)) {
        rc = bm_err(err, errlen, BM_EIO, "store: %s: not a regular file", name);
        goto out;
    }
    if ((sb.st_mode & 077) != 0) {
        if (chmod(name, 0600) != 0) {
            rc = bm_err(err, errlen, BM_EIO, "store: %s: mode %04o, chmod 600: %s", name,
                        (unsigned)(sb.st_mode & 07777), strerror(errno));
            goto out;
        }
        char mode[8];
        snprintf(mode, sizeof(mode), "%04o", (unsigned)(sb.st_mode & 07777));
        BM_LOG(BM_LOG_WARN, BM_MSG("store file was open to group or others: made 0600"),
               BM_KS("file", name), BM_KS("mode", mode));
    }
out:
    free(name);
    return rc;
}

int bm_store_open_at(const char *path, int version, bm_store_t **out, char *err, size_t errlen)
{
    int rc = BM_OK;
    bm_store_t *st = bm_calloc(1, sizeof(*st));

    /* Create the file ourselves so that it (and SQLite's -wal/-shm, which copy
     * its mode) is 0600 from the first byte; an older one is made 0600. */
    rc = private_file(path, "", true, err, errlen);
    if (rc == BM_OK)
        rc = private_file(path, "-wal", false, err, errlen);
    if (rc == BM_OK)
        rc = private_file(path, "-shm", false, err, errlen);
    if (rc != BM_OK)
        goto out;
    if (sqlite3_open_v2(path, &st->db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX | SQLITE_OPEN_NOFOLLOW,
                        NULL) != SQLITE_OK) {
        rc = bm_err(err, errlen, BM_ESTORE, "store: %s: %s", path,
                    st->db != NULL ? sqlite3_errmsg(st->db) : "cannot open");
        goto out;
    }
    if (sqlite3_busy_timeout(st->db, 10000) != SQLITE_OK) {
        rc = db_err(st, err, errlen, "busy timeout");
        goto out;
    }
    rc = use_wal(st, err, errlen, path);
    if (rc == BM_OK)
        rc = exec_sql(st, "PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;", err, errlen, path);
    if (rc == BM_OK)
        rc = migrate(st, version, err, errlen);
out:
    if (rc != BM_OK) {
        bm_store_close(st);
        st = NULL;
    }
    *out = st;
    return rc;
}

int bm_store_open(const char *path, bm_store_t **out, char *err, size_t errlen)
{
    return bm_store_open_at(path, BM_STORE_SCHEMA_VERSION, out, err, errlen);
}

int bm_store_set_busy_timeout(bm_store_t *st, int ms, char *err, size_t errlen)
{
    return sqlite3_busy_timeout(st->db, ms) == SQLITE_OK ? BM_OK
                                                         : db_err(st, err, errlen, "busy timeout");
}

void bm_store_close(bm_store_t *st)
{
    if (st == NULL)
        return;
    /* finalize repeats a statement's last error, reported when it happened */
    for (size_t i = 0; i < STMT_CACHE; i++)
        (void)sqlite3_finalize(st->cache[i].stmt);
    /* every statement is finalized: close cannot be busy */
    (void)sqlite3_close(st->db);
    free(st);
}

int bm_store_schema_version(bm_store_t *st)
{
    int v = -1;
    int rc = read_user_version(st, &v, NULL, 0);
    return rc == BM_OK || v > BM_STORE_SCHEMA_VERSION ? v : -1; /* a newer one is named */
}

int bm_store_begin(bm_store_t *st, char *err, size_t errlen)
{
    PREP(s, "BEGIN IMMEDIATE");
    return exec_done(st, &s, err, errlen, "begin");
}

int bm_store_commit(bm_store_t *st, char *err, size_t errlen)
{
    PREP(s, "COMMIT");
    return exec_done(st, &s, err, errlen, "commit");
}

void bm_store_rollback(bm_store_t *st)
{
    /* A failed ROLLBACK leaves nothing to do: SQLite rolls back on close. */
    if (!sqlite3_get_autocommit(st->db))
        (void)sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
}

/* ---- accounts ---- */

#define ACCOUNT_COLS                                                                               \
    "id, name, email, refresh_token_enc, state, breaker_failures, breaker_until,"                  \
    " access_token_enc, access_expires, priority, poll_interval"

/* A copy of blob column i (NULL, 0 when empty). */
static unsigned char *col_blob(sqlite3_stmt *s, int i, size_t *len)
{
    int n = sqlite3_column_bytes(s, i);
    *len = 0;
    if (n <= 0)
        return NULL;
    unsigned char *p = bm_malloc((size_t)n);
    memcpy(p, sqlite3_column_blob(s, i), (size_t)n);
    *len = (size_t)n;
    return p;
}

static void read_account(sqlite3_stmt *s, void *row)
{
    bm_account_t *a = row;
    memset(a, 0, sizeof(*a));
    a->id = sqlite3_column_int64(s, 0);
    a->name = col_dup(s, 1);
    a->email = col_dup(s, 2);
    a->refresh_token_enc = col_blob(s, 3, &a->refresh_token_enc_len);
    a->state = (bm_account_state_t)sqlite3_column_int(s, 4);
    a->breaker_failures = sqlite3_column_int(s, 5);
    a->breaker_until = sqlite3_column_int64(s, 6);
    a->access_token_enc = col_blob(s, 7, &a->access_token_enc_len);
    a->access_expires_ms = sqlite3_column_int64(s, 8);
    a->priority = sqlite3_column_int(s, 9);
    a->poll_interval = sqlite3_column_int(s, 10);
}

int bm_store_account_add(bm_store_t *st, const char *name, const char *email,
                         const unsigned char *token_enc, size_t token_enc_len, int64_t *id_out,
                         char *err, size_t errlen)
{
    PREP(s, "INSERT INTO accounts(name, email, refresh_token_enc, created_at) VALUES(?,?,?,?)");
    bind_text(&s, 1, name);
    bind_text(&s, 2, email);
    bind_blob(&s, 3, token_enc, token_enc_len);
    bind_int64(&s, 4, bm_now());
    int rc = step(&s);
    int ret = BM_OK;
    if (rc == SQLITE_CONSTRAINT)
        ret = bm_err(err, errlen, BM_EEXIST, "account '%s' already exists", name);
    else if (rc != SQLITE_DONE)
        ret = query_err(st, &s, err, errlen, "add account");
    else if (id_out != NULL)
        *id_out = sqlite3_last_insert_rowid(st->db);
    done(&s);
    return ret;
}

static int account_get(bm_store_t *st, query_t *q, bm_account_t *out, const char *what, char *err,
                       size_t errlen)
{
    int rc = read_one(st, q, read_account, out, err, errlen, "get account");
    if (rc == BM_ENOTFOUND)
        rc = bm_err(err, errlen, BM_ENOTFOUND, "no account '%s'", what);
    return rc;
}

int bm_store_account_get(bm_store_t *st, const char *name, bm_account_t *out, char *err,
                         size_t errlen)
{
    PREP(s, "SELECT " ACCOUNT_COLS " FROM accounts WHERE name = ?");
    bind_text(&s, 1, name);
    return account_get(st, &s, out, name, err, errlen);
}

int bm_store_account_get_by_id(bm_store_t *st, int64_t id, bm_account_t *out, char *err,
                               size_t errlen)
{
    char what[32];
    PREP(s, "SELECT " ACCOUNT_COLS " FROM accounts WHERE id = ?");
    bind_int64(&s, 1, id);
    snprintf(what, sizeof(what), "#%lld", (long long)id);
    return account_get(st, &s, out, what, err, errlen);
}

static void release_accounts(void *rows, size_t n)
{
    bm_store_accounts_free(rows, n);
}

int bm_store_account_list(bm_store_t *st, bm_account_t **out, size_t *n, char *err, size_t errlen)
{
    PREP(s, "SELECT " ACCOUNT_COLS " FROM accounts ORDER BY name");
    int rc;
    *out = read_rows(st, &s, sizeof(**out), read_account, release_accounts, n, &rc, err, errlen,
                     "list accounts");
    return rc;
}

int bm_store_account_find_email(bm_store_t *st, const char *email, int64_t except_id,
                                bm_account_t *out, char *err, size_t errlen)
{
    PREP(s, "SELECT " ACCOUNT_COLS " FROM accounts WHERE email = ? AND id <> ? ORDER BY name"
            " LIMIT 1");
    bind_text(&s, 1, email);
    bind_int64(&s, 2, except_id);
    return read_one(st, &s, read_account, out, err, errlen, "find account by e-mail");
}

int bm_store_account_set_state(bm_store_t *st, int64_t id, bm_account_state_t state, char *err,
                               size_t errlen)
{
    PREP(s, "UPDATE accounts SET state = ? WHERE id = ?");
    bind_int(&s, 1, (int)state);
    bind_int64(&s, 2, id);
    return exec_done(st, &s, err, errlen, "set account state");
}

int bm_store_account_set_token(bm_store_t *st, int64_t id, const unsigned char *token_enc,
                               size_t len, char *err, size_t errlen)
{
    /* A new login: the access token of the old refresh token goes with it. */
    PREP(s, "UPDATE accounts SET refresh_token_enc = ?, state = 0, access_token_enc = NULL,"
            " access_expires = 0 WHERE id = ?");
    bind_blob(&s, 1, token_enc, len);
    bind_int64(&s, 2, id);
    return exec_done(st, &s, err, errlen, "set account token");
}

int bm_store_account_set_access(bm_store_t *st, int64_t id, const unsigned char *token_enc,
                                size_t len, int64_t expires_ms, char *err, size_t errlen)
{
    PREP(s, "UPDATE accounts SET access_token_enc = ?, access_expires = ? WHERE id = ?");
    bind_blob(&s, 1, token_enc, len);
    bind_int64(&s, 2, expires_ms);
    bind_int64(&s, 3, id);
    return exec_done(st, &s, err, errlen, "set account access token");
}

int bm_store_account_set_breaker(bm_store_t *st, int64_t id, int failures, int64_t until, char *err,
                                 size_t errlen)
{
    PREP(s, "UPDATE accounts SET breaker_failures = ?, breaker_until = ? WHERE id = ?");
    bind_int(&s, 1, failures);
    bind_int64(&s, 2, until);
    bind_int64(&s, 3, id);
    return exec_done(st, &s, err, errlen, "set account breaker");
}

int bm_store_account_set_email(bm_store_t *st, int64_t id, const char *email, char *err,
                               size_t errlen)
{
    PREP(s, "UPDATE accounts SET email = ? WHERE id = ?");
    bind_text(&s, 1, email);
    bind_int64(&s, 2, id);
    return exec_done(st, &s, err, errlen, "set account email");
}

int bm_store_account_set_schedule(bm_store_t *st, int64_t id, int priority, int poll_interval,
                                  char *err, size_t errlen)
{
    PREP(s, "UPDATE accounts SET priority = CASE WHEN ?1 < 0 THEN priority ELSE ?1 END,"
            " poll_interval = CASE WHEN ?2 < 0 THEN poll_interval ELSE ?2 END WHERE id = ?3");
    bind_int(&s, 1, priority);
    bind_int(&s, 2, poll_interval);
    bind_int64(&s, 3, id);
    return exec_done(st, &s, err, errlen, "set account schedule");
}

int bm_store_account_remove(bm_store_t *st, int64_t id, char *err, size_t errlen)
{
    PREP(s, "DELETE FROM accounts WHERE id = ?");
    bind_int64(&s, 1, id);
    return exec_done(st, &s, err, errlen, "remove account");
}

void bm_account_dispose(bm_account_t *a)
{
    free(a->name);
    free(a->email);
    free(a->refresh_token_enc);
    free(a->access_token_enc);
    memset(a, 0, sizeof(*a));
}

void bm_store_accounts_free(bm_account_t *a, size_t n)
{
    for (size_t i = 0; i < n; i++)
        bm_account_dispose(&a[i]);
    free(a);
}

/* ---- calendars ---- */

static const char *const role_names[] = {"both", "source", "target"};

const char *bm_role_name(bm_role_t r)
{
    return (unsigned)r < 3 ? role_names[r] : "?";
}

int bm_role_parse(const char *s, bm_role_t *out)
{
    for (int i = 0; i < 3; i++) {
        if (strcmp(s, role_names[i]) == 0) {
            *out = (bm_role_t)i;
            return BM_OK;
        }
    }
    return BM_EINVAL;
}

#define CALENDAR_SELECT                                                                            \
    "SELECT c.id, c.account_id, a.name, c.gcal_id, c.summary, c.time_zone, c.access_role,"         \
    " c.is_primary, c.enabled, c.group_name, c.role, s.sync_token, s.last_full_sync,"              \
    " s.last_incr_sync, s.mode, s.last_result, s.last_error, s.last_sync_at, s.plan_key,"          \
    " s.watch_refused, COALESCE(s.watch_retry_at, 0), a.poll_interval, c.label"                    \
    " FROM calendars c JOIN accounts a ON a.id = c.account_id"                                     \
    " LEFT JOIN sync_state s ON s.calendar_id = c.id "

static void read_calendar(sqlite3_stmt *s, void *row)
{
    bm_calendar_t *c = row;
    memset(c, 0, sizeof(*c));
    c->id = sqlite3_column_int64(s, 0);
    c->account_id = sqlite3_column_int64(s, 1);
    c->account_name = col_dup(s, 2);
    c->gcal_id = col_dup(s, 3);
    c->summary = col_dup(s, 4);
    c->time_zone = col_dup(s, 5);
    c->access_role = col_dup(s, 6);
    c->primary = sqlite3_column_int(s, 7) != 0;
    c->enabled = sqlite3_column_int(s, 8) != 0;
    c->group_name = col_dup(s, 9);
    c->role = (bm_role_t)sqlite3_column_int(s, 10);
    c->sync_token = col_dup(s, 11);
    c->last_full_sync = sqlite3_column_int64(s, 12);
    c->last_incr_sync = sqlite3_column_int64(s, 13);
    c->mode = (bm_mode_t)sqlite3_column_int(s, 14);
    c->last_result = col_dup(s, 15);
    c->last_error = col_dup(s, 16);
    c->last_sync_at = sqlite3_column_int64(s, 17);
    c->plan_key = col_dup(s, 18);
    c->watch_refused = col_dup(s, 19);
    c->watch_retry_at = sqlite3_column_int64(s, 20);
    c->poll_interval = sqlite3_column_int(s, 21);
    c->label = col_dup(s, 22);
}

static void release_calendars(void *rows, size_t n)
{
    bm_store_calendars_free(rows, n);
}

static int read_calendars(bm_store_t *st, query_t *q, bm_calendar_t **out, size_t *n, char *err,
                          size_t errlen)
{
    int rc;
    *out = read_rows(st, q, sizeof(**out), read_calendar, release_calendars, n, &rc, err, errlen,
                     "list calendars");
    return rc;
}

int bm_store_calendar_upsert(bm_store_t *st, int64_t account_id, const char *gcal_id,
                             const char *summary, const char *time_zone, const char *access_role,
                             bool primary, int64_t *id_out, char *err, size_t errlen)
{
    PREP(s, "INSERT INTO calendars(account_id, gcal_id, summary, time_zone, access_role,"
            " is_primary) VALUES(?,?,?,?,?,?)"
            " ON CONFLICT(account_id, gcal_id) DO UPDATE SET summary = excluded.summary,"
            " time_zone = excluded.time_zone, access_role = excluded.access_role,"
            " is_primary = excluded.is_primary"
            " RETURNING id");
    bind_int64(&s, 1, account_id);
    bind_text(&s, 2, gcal_id);
    bind_text(&s, 3, summary);
    bind_text(&s, 4, time_zone);
    bind_text(&s, 5, access_role);
    bind_int(&s, 6, primary);
    int64_t id = 0;
    int rc = read_count(st, &s, &id, err, errlen, "upsert calendar");
    if (rc == BM_OK && id_out != NULL)
        *id_out = id;
    return rc;
}

int bm_store_calendar_get(bm_store_t *st, int64_t id, bm_calendar_t *out, char *err, size_t errlen)
{
    PREP(s, CALENDAR_SELECT "WHERE c.id = ?");
    bind_int64(&s, 1, id);
    int rc = read_one(st, &s, read_calendar, out, err, errlen, "get calendar");
    if (rc == BM_ENOTFOUND)
        rc = bm_err(err, errlen, BM_ENOTFOUND, "no calendar #%lld", (long long)id);
    return rc;
}

int bm_store_calendar_list(bm_store_t *st, int64_t account_id, const char *gcal_id,
                           bool enabled_only, bm_calendar_t **out, size_t *n, char *err,
                           size_t errlen)
{
    PREP(s, CALENDAR_SELECT "WHERE (?1 = 0 OR c.account_id = ?1) AND (?2 IS NULL OR c.gcal_id = ?2)"
                            " AND (?3 = 0 OR c.enabled = 1) ORDER BY a.name, c.gcal_id");
    bind_int64(&s, 1, account_id);
    bind_text(&s, 2, gcal_id);
    bind_int(&s, 3, enabled_only);
    return read_calendars(st, &s, out, n, err, errlen);
}

int bm_store_calendar_set_enabled(bm_store_t *st, int64_t id, bool enabled, const char *group,
                                  bm_role_t role, char *err, size_t errlen)
{
    PREP(s, "UPDATE calendars SET enabled = ?, group_name = COALESCE(?, group_name), role = ?"
            " WHERE id = ?");
    bind_int(&s, 1, enabled);
    bind_text(&s, 2, group);
    bind_int(&s, 3, (int)role);
    bind_int64(&s, 4, id);
    return exec_done(st, &s, err, errlen, "enable calendar");
}

int bm_store_calendar_set_label(bm_store_t *st, int64_t id, const char *label, char *err,
                                size_t errlen)
{
    PREP(s, "UPDATE calendars SET label = ? WHERE id = ?");
    bind_text(&s, 1, label);
    bind_int64(&s, 2, id);
    return exec_done(st, &s, err, errlen, "set calendar label");
}

const char *bm_calendar_label(const bm_calendar_t *c)
{
    return c->label != NULL ? c->label : c->summary != NULL ? c->summary : c->gcal_id;
}

int bm_store_calendar_targets(bm_store_t *st, const bm_calendar_t *cal, bm_calendar_t **out,
                              size_t *n, char *err, size_t errlen)
{
    /* One Google calendar reached through two accounts is two rows: neither is
     * ever a target of the other. */
    PREP(s, CALENDAR_SELECT "WHERE c.enabled = 1 AND c.group_name = ? AND c.role IN (0, 2)"
                            " AND c.gcal_id <> ? ORDER BY c.id");
    bind_text(&s, 1, cal->group_name);
    bind_text(&s, 2, cal->gcal_id);
    return read_calendars(st, &s, out, n, err, errlen);
}

void bm_calendar_dispose(bm_calendar_t *c)
{
    free(c->account_name);
    free(c->gcal_id);
    free(c->summary);
    free(c->time_zone);
    free(c->access_role);
    free(c->group_name);
    free(c->sync_token);
    free(c->last_result);
    free(c->last_error);
    free(c->plan_key);
    free(c->watch_refused);
    free(c->label);
    memset(c, 0, sizeof(*c));
}

void bm_store_calendars_free(bm_calendar_t *c, size_t n)
{
    for (size_t i = 0; i < n; i++)
        bm_calendar_dispose(&c[i]);
    free(c);
}

/* ---- sync state ---- */

int bm_store_sync_state_save(bm_store_t *st, int64_t calendar_id, const char *sync_token, bool full,
                             const char *plan_key, char *err, size_t errlen)
{
    PREP(s, "INSERT INTO sync_state(calendar_id, sync_token, last_full_sync, last_incr_sync,"
            " plan_key) VALUES(?1, ?2, CASE WHEN ?3 THEN ?4 END, CASE WHEN ?3 THEN NULL ELSE ?4"
            " END, ?5) ON CONFLICT(calendar_id) DO UPDATE SET sync_token = ?2,"
            " last_full_sync = CASE WHEN ?3 THEN ?4 ELSE last_full_sync END,"
            " last_incr_sync = CASE WHEN ?3 THEN last_incr_sync ELSE ?4 END,"
            " plan_key = CASE WHEN ?3 THEN ?5 ELSE plan_key END");
    bind_int64(&s, 1, calendar_id);
    bind_text(&s, 2, sync_token);
    bind_int(&s, 3, full);
    bind_int64(&s, 4, bm_now());
    bind_text(&s, 5, plan_key);
    return exec_done(st, &s, err, errlen, "save sync state");
}

int bm_store_sync_result(bm_store_t *st, int64_t calendar_id, const char *result, const char *error,
                         char *err, size_t errlen)
{
    PREP(s, "INSERT INTO sync_state(calendar_id, last_result, last_error, last_sync_at)"
            " VALUES(?1, ?2, ?3, ?4) ON CONFLICT(calendar_id) DO UPDATE SET"
            " last_result = ?2, last_error = ?3, last_sync_at = ?4");
    bind_int64(&s, 1, calendar_id);
    bind_text(&s, 2, result);
    bind_text(&s, 3, error);
    bind_int64(&s, 4, bm_now());
    return exec_done(st, &s, err, errlen, "save sync result");
}

int bm_store_group_relist(bm_store_t *st, const char *group, char *err, size_t errlen)
{
    PREP(s, "UPDATE sync_state SET sync_token = NULL WHERE calendar_id IN"
            " (SELECT id FROM calendars WHERE group_name = ? AND enabled = 1)");
    bind_text(&s, 1, group);
    return exec_done(st, &s, err, errlen, "relist group");
}

int bm_store_sync_state_reset(bm_store_t *st, int64_t calendar_id, char *err, size_t errlen)
{
    PREP(s, "UPDATE sync_state SET sync_token = NULL WHERE calendar_id = ?");
    bind_int64(&s, 1, calendar_id);
    return exec_done(st, &s, err, errlen, "reset sync state");
}

/* ---- leases ---- */

/* Whether owner "pid@host" (or "pid@host/N") names a process of this host that
 * is gone. */
static bool owner_is_dead(const char *owner)
{
    char host[256];
    const char *at = strchr(owner, '@');
    if (at == NULL || gethostname(host, sizeof(host)) != 0)
        return false;
    size_t len = strcspn(at + 1, "/");
    if (len != strlen(host) || strncmp(at + 1, host, len) != 0)
        return false;
    long pid = strtol(owner, NULL, 10);
    return pid > 0 && kill((pid_t)pid, 0) != 0 && errno == ESRCH;
}

static int lease_take(bm_store_t *st, const char *name, const char *owner, int ttl_s, char *err,
                      size_t errlen)
{
    int64_t now = bm_now();
    PREP(q, "SELECT owner, expires_at FROM leases WHERE name = ?");
    bind_text(&q, 1, name);
    int rc = step(&q);
    if (rc == SQLITE_ROW) {
        const char *holder = (const char *)sqlite3_column_text(q.s, 0);
        int64_t expires = sqlite3_column_int64(q.s, 1);
        if (strcmp(holder, owner) != 0 && expires > now && !owner_is_dead(holder)) {
            int ret = bm_err(err, errlen, BM_EBUSY, "%s is held by %s for %llds more", name, holder,
                             (long long)(expires - now));
            done(&q);
            return ret;
        }
    } else if (rc != SQLITE_DONE) {
        int ret = query_err(st, &q, err, errlen, "read lease");
        done(&q);
        return ret;
    }
    done(&q);
    PREP(s, "INSERT INTO leases(name, owner, expires_at) VALUES(?1, ?2, ?3)"
            " ON CONFLICT(name) DO UPDATE SET owner = ?2, expires_at = ?3");
    bind_text(&s, 1, name);
    bind_text(&s, 2, owner);
    bind_int64(&s, 3, now + ttl_s);
    return exec_done(st, &s, err, errlen, "take lease");
}

int bm_store_lease_take(bm_store_t *st, const char *name, const char *owner, int ttl_s, char *err,
                        size_t errlen)
{
    /* Read and write in one write transaction: two processes never both win. */
    bool own_txn = sqlite3_get_autocommit(st->db) != 0;
    int rc = own_txn ? bm_store_begin(st, err, errlen) : BM_OK;
    if (rc != BM_OK)
        return rc;
    rc = lease_take(st, name, owner, ttl_s, err, errlen);
    if (own_txn) {
        if (rc == BM_OK)
            rc = bm_store_commit(st, err, errlen);
        else
            bm_store_rollback(st);
    }
    return rc;
}

int bm_store_lease_release(bm_store_t *st, const char *name, const char *owner)
{
    char *err = NULL; /* no message: PREP and exec_done take none */
    size_t errlen = 0;
    PREP(s, "DELETE FROM leases WHERE name = ? AND owner = ?");
    bind_text(&s, 1, name);
    bind_text(&s, 2, owner);
    return exec_done(st, &s, err, errlen, "release lease");
}

/* ---- the mirror of source events ---- */

static void read_source(sqlite3_stmt *s, void *row)
{
    bm_source_t *r = row;
    r->event_id = col_dup(s, 0);
    r->busy = sqlite3_column_int(s, 1) != 0;
    r->shape = col_dup(s, 2);
    r->recurring_event_id = col_dup(s, 3);
    r->ical_uid = col_dup(s, 4);
}

int bm_store_source_get(bm_store_t *st, int64_t calendar_id, const char *event_id, bm_source_t *out,
                        char *err, size_t errlen)
{
    PREP(s, "SELECT event_id, busy, shape, recurring_event_id, ical_uid FROM source_events"
            " WHERE calendar_id = ? AND event_id = ?");
    bind_int64(&s, 1, calendar_id);
    bind_text(&s, 2, event_id);
    return read_one(st, &s, read_source, out, err, errlen, "get source event");
}

int bm_store_source_put(bm_store_t *st, int64_t calendar_id, const bm_source_t *src, char *err,
                        size_t errlen)
{
    PREP(s, "INSERT INTO source_events(calendar_id, event_id, busy, shape, recurring_event_id,"
            " ical_uid, seen) VALUES(?1, ?2, ?3, ?4, ?5, ?6, 1) ON CONFLICT(calendar_id, event_id)"
            " DO UPDATE SET busy = ?3, shape = ?4, recurring_event_id = ?5, ical_uid = ?6,"
            " seen = 1");
    bind_int64(&s, 1, calendar_id);
    bind_text(&s, 2, src->event_id);
    bind_int(&s, 3, src->busy);
    bind_text(&s, 4, src->shape);
    bind_text(&s, 5, src->recurring_event_id);
    bind_text(&s, 6, src->ical_uid);
    return exec_done(st, &s, err, errlen, "put source event");
}

int bm_store_source_delete(bm_store_t *st, int64_t calendar_id, const char *event_id, char *err,
                           size_t errlen)
{
    PREP(s, "DELETE FROM source_events WHERE calendar_id = ? AND event_id = ?");
    bind_int64(&s, 1, calendar_id);
    bind_text(&s, 2, event_id);
    return exec_done(st, &s, err, errlen, "delete source event");
}

int bm_store_source_has_exceptions(bm_store_t *st, int64_t calendar_id, const char *series_id,
                                   bool *yes, char *err, size_t errlen)
{
    PREP(s, "SELECT EXISTS (SELECT 1 FROM source_events WHERE calendar_id = ?"
            " AND recurring_event_id = ?)");
    bind_int64(&s, 1, calendar_id);
    bind_text(&s, 2, series_id);
    int64_t found = 0;
    int rc = read_count(st, &s, &found, err, errlen, "find exceptions");
    *yes = rc == BM_OK && found != 0;
    return rc;
}

int bm_store_source_unmark(bm_store_t *st, int64_t calendar_id, char *err, size_t errlen)
{
    PREP(s, "UPDATE source_events SET seen = 0 WHERE calendar_id = ?");
    bind_int64(&s, 1, calendar_id);
    return exec_done(st, &s, err, errlen, "unmark source events");
}

static void release_source_unseen_rows(void *rows, size_t n)
{
    bm_store_sources_free(rows, n);
}

int bm_store_source_unseen(bm_store_t *st, int64_t calendar_id, bm_source_t **out, size_t *n,
                           char *err, size_t errlen)
{
    PREP(s, "SELECT event_id, busy, shape, recurring_event_id, ical_uid FROM source_events"
            " WHERE calendar_id = ? AND seen = 0");
    bind_int64(&s, 1, calendar_id);
    int rc;
    *out = read_rows(st, &s, sizeof(**out), read_source, release_source_unseen_rows, n, &rc, err,
                     errlen, "list unseen source events");
    return rc;
}

void bm_source_dispose(bm_source_t *r)
{
    free(r->event_id);
    free(r->shape);
    free(r->recurring_event_id);
    free(r->ical_uid);
    memset(r, 0, sizeof(*r));
}

void bm_store_sources_free(bm_source_t *r, size_t n)
{
    for (size_t i = 0; i < n; i++)
        bm_source_dispose(&r[i]);
    free(r);
}

/* ---- blocks ---- */

#define BLOCK_COLS                                                                                 \
    "target_calendar_id, block_id, source_calendar_id, source_event_id, master_block_id, wanted,"  \
    " body, created, state, etag"

static void read_block(sqlite3_stmt *s, void *row)
{
    bm_block_t *b = row;
    memset(b, 0, sizeof(*b));
    b->target_calendar_id = sqlite3_column_int64(s, 0);
    b->block_id = col_dup(s, 1);
    b->source_calendar_id = sqlite3_column_int64(s, 2);
    b->source_event_id = col_dup(s, 3);
    b->master_block_id = col_dup(s, 4);
    b->wanted = col_dup(s, 5);
    b->body = col_dup(s, 6);
    b->created = sqlite3_column_int(s, 7) != 0;
    b->state = (bm_block_state_t)sqlite3_column_int(s, 8);
    b->etag = col_dup(s, 9);
}

static void release_blocks(void *rows, size_t n)
{
    bm_store_blocks_free(rows, n);
}

static int read_blocks(bm_store_t *st, query_t *q, bm_block_t **out, size_t *n, char *err,
                       size_t errlen)
{
    int rc;
    *out = read_rows(st, q, sizeof(**out), read_block, release_blocks, n, &rc, err, errlen,
                     "list blocks");
    return rc;
}

int bm_store_block_get(bm_store_t *st, int64_t target_calendar_id, const char *block_id,
                       bm_block_t *out, char *err, size_t errlen)
{
    PREP(s, "SELECT " BLOCK_COLS " FROM blocks WHERE target_calendar_id = ? AND block_id = ?");
    bind_int64(&s, 1, target_calendar_id);
    bind_text(&s, 2, block_id);
    return read_one(st, &s, read_block, out, err, errlen, "get block");
}

int bm_store_block_put(bm_store_t *st, const bm_block_t *b, char *err, size_t errlen)
{
    PREP(s,
         "INSERT INTO blocks(" BLOCK_COLS ", updated_at) VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11)"
         " ON CONFLICT(target_calendar_id, block_id) DO UPDATE SET source_calendar_id = ?3,"
         " source_event_id = ?4, master_block_id = ?5, wanted = ?6, body = ?7, created = ?8,"
         " state = ?9, etag = ?10, updated_at = ?11");
    bind_int64(&s, 1, b->target_calendar_id);
    bind_text(&s, 2, b->block_id);
    bind_int64(&s, 3, b->source_calendar_id);
    bind_text(&s, 4, b->source_event_id);
    bind_text(&s, 5, b->master_block_id);
    bind_text(&s, 6, b->wanted);
    bind_text(&s, 7, b->body);
    bind_int(&s, 8, b->created);
    bind_int(&s, 9, (int)b->state);
    bind_text(&s, 10, b->etag);
    bind_int64(&s, 11, bm_now());
    return exec_done(st, &s, err, errlen, "put block");
}

/* How long a deleted block's id is remembered (an update that finds it purged
 * from Google falls back to an insert). */
#define BLOCK_TOMBSTONE_DAYS 30

int bm_store_block_delete(bm_store_t *st, int64_t target_calendar_id, const char *block_id,
                          char *err, size_t errlen)
{
    static const char *const sql[] = {
        "DELETE FROM blocks WHERE target_calendar_id = ?1 AND (block_id = ?2"
        " OR master_block_id = ?2)",
        "INSERT OR REPLACE INTO block_tombstones(target_calendar_id, block_id, deleted_at)"
        " VALUES(?1, ?2, ?3)",
        "DELETE FROM block_tombstones WHERE target_calendar_id = ?1 AND deleted_at < ?4",
    };
    int64_t now = bm_now();
    int rc = BM_OK;
    for (size_t i = 0; rc == BM_OK && i < sizeof(sql) / sizeof(sql[0]); i++) {
        PREP(s, sql[i]);
        bind_int64(&s, 1, target_calendar_id);
        bind_text(&s, 2, block_id);
        if (i == 1)
            bind_int64(&s, 3, now);
        if (i == 2)
            bind_int64(&s, 4, now - (int64_t)BLOCK_TOMBSTONE_DAYS * 86400);
        rc = exec_done(st, &s, err, errlen, "delete block");
    }
    return rc;
}

int bm_store_block_applied(bm_store_t *st, int64_t target_calendar_id, const char *block_id,
                           bool created, const char *etag, char *err, size_t errlen)
{
    PREP(s, "UPDATE blocks SET created = ?3, etag = COALESCE(?4, etag), updated_at = ?5"
            " WHERE target_calendar_id = ?1 AND block_id = ?2");
    bind_int64(&s, 1, target_calendar_id);
    bind_text(&s, 2, block_id);
    bind_int(&s, 3, created);
    bind_text(&s, 4, etag);
    bind_int64(&s, 5, bm_now());
    int rc = exec_done(st, &s, err, errlen, "mark block applied");
    if (rc != BM_OK)
        return rc;
    /* back in Google, or known gone from it: its tombstone has served */
    PREP(t, "DELETE FROM block_tombstones WHERE target_calendar_id = ?1 AND block_id = ?2");
    bind_int64(&t, 1, target_calendar_id);
    bind_text(&t, 2, block_id);
    return exec_done(st, &t, err, errlen, "mark block applied");
}

int bm_store_blocks_for_source(bm_store_t *st, int64_t source_calendar_id,
                               const char *source_event_id, bm_block_t **out, size_t *n, char *err,
                               size_t errlen)
{
    PREP(s, "SELECT " BLOCK_COLS " FROM blocks WHERE source_calendar_id = ?1"
            " AND (?2 IS NULL OR source_event_id = ?2) ORDER BY target_calendar_id, block_id");
    bind_int64(&s, 1, source_calendar_id);
    bind_text(&s, 2, source_event_id);
    return read_blocks(st, &s, out, n, err, errlen);
}

int bm_store_block_instances(bm_store_t *st, int64_t target_calendar_id,
                             const char *master_block_id, bm_block_t **out, size_t *n, char *err,
                             size_t errlen)
{
    /* instance ids are "<master>_<suffix>": a range of the primary key */
    PREP(s, "SELECT " BLOCK_COLS " FROM blocks WHERE target_calendar_id = ?1"
            " AND block_id > ?2 || '_' AND block_id < ?2 || '`' AND master_block_id = ?2"
            " ORDER BY block_id");
    bind_int64(&s, 1, target_calendar_id);
    bind_text(&s, 2, master_block_id);
    return read_blocks(st, &s, out, n, err, errlen);
}

int bm_store_blocks_in_target(bm_store_t *st, int64_t target_calendar_id, bm_block_t **out,
                              size_t *n, char *err, size_t errlen)
{
    PREP(s, "SELECT " BLOCK_COLS " FROM blocks WHERE target_calendar_id = ? ORDER BY block_id");
    bind_int64(&s, 1, target_calendar_id);
    return read_blocks(st, &s, out, n, err, errlen);
}

int bm_store_block_count(bm_store_t *st, int64_t target_calendar_id, int64_t *n, char *err,
                         size_t errlen)
{
    PREP(s, "SELECT count(*) FROM blocks WHERE (?1 = 0 OR target_calendar_id = ?1)"
            " AND created = 1 AND wanted IS NOT NULL AND master_block_id IS NULL");
    bind_int64(&s, 1, target_calendar_id);
    return read_count(st, &s, n, err, errlen, "count blocks");
}

void bm_block_dispose(bm_block_t *b)
{
    free(b->block_id);
    free(b->source_event_id);
    free(b->master_block_id);
    free(b->wanted);
    free(b->body);
    free(b->etag);
    memset(b, 0, sizeof(*b));
}

void bm_store_blocks_free(bm_block_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        bm_block_dispose(&b[i]);
    free(b);
}

/* ---- the same meeting in two calendars ---- */

int bm_store_own_event_put(bm_store_t *st, int64_t calendar_id, const char *event_id,
                           const char *ical_uid, bool *newly, char *err, size_t errlen)
{
    PREP(q, "SELECT EXISTS (SELECT 1 FROM own_events WHERE calendar_id = ? AND ical_uid = ?)");
    bind_int64(&q, 1, calendar_id);
    bind_text(&q, 2, ical_uid);
    int64_t held = 0;
    int rc = read_count(st, &q, &held, err, errlen, "find own event");
    if (rc != BM_OK)
        return rc;
    *newly = held == 0;
    PREP(s, "INSERT INTO own_events(calendar_id, event_id, ical_uid, seen) VALUES(?1, ?2, ?3, 1)"
            " ON CONFLICT(calendar_id, event_id) DO UPDATE SET ical_uid = ?3, seen = 1");
    bind_int64(&s, 1, calendar_id);
    bind_text(&s, 2, event_id);
    bind_text(&s, 3, ical_uid);
    return exec_done(st, &s, err, errlen, "put own event");
}

static void read_text0(sqlite3_stmt *s, void *row)
{
    *(char **)row = col_dup(s, 0);
}

int bm_store_own_event_drop(bm_store_t *st, int64_t calendar_id, const char *event_id,
                            char **ical_uid, bool *gone, char *err, size_t errlen)
{
    char *uid = NULL;
    bool held = false;
    *ical_uid = NULL;
    *gone = false;
    PREP(q, "DELETE FROM own_events WHERE calendar_id = ? AND event_id = ? RETURNING ical_uid");
    bind_int64(&q, 1, calendar_id);
    bind_text(&q, 2, event_id);
    int rc = read_one(st, &q, read_text0, &uid, err, errlen, "drop own event");
    if (rc == BM_ENOTFOUND)
        return BM_OK;
    if (rc == BM_OK)
        rc = bm_store_own_uid_held(st, calendar_id, uid, &held, err, errlen);
    if (rc != BM_OK) {
        free(uid);
        return rc;
    }
    *ical_uid = uid;
    *gone = !held;
    return BM_OK;
}

int bm_store_own_uid_held(bm_store_t *st, int64_t calendar_id, const char *ical_uid, bool *held,
                          char *err, size_t errlen)
{
    PREP(q, "SELECT EXISTS (SELECT 1 FROM own_events WHERE calendar_id = ? AND ical_uid = ?)");
    bind_int64(&q, 1, calendar_id);
    bind_text(&q, 2, ical_uid);
    int64_t found = 0;
    int rc = read_count(st, &q, &found, err, errlen, "find own event");
    *held = rc == BM_OK && found != 0;
    return rc;
}

int bm_store_own_events_unmark(bm_store_t *st, int64_t calendar_id, char *err, size_t errlen)
{
    PREP(s, "UPDATE own_events SET seen = 0 WHERE calendar_id = ?");
    bind_int64(&s, 1, calendar_id);
    return exec_done(st, &s, err, errlen, "unmark own events");
}

static void release_strings(void *rows, size_t n)
{
    bm_store_strings_free(rows, n);
}

int bm_store_own_events_unseen(bm_store_t *st, int64_t calendar_id, char ***ids, size_t *n,
                               char *err, size_t errlen)
{
    PREP(s, "SELECT event_id FROM own_events WHERE calendar_id = ? AND seen = 0"
            " ORDER BY event_id");
    bind_int64(&s, 1, calendar_id);
    int rc;
    *ids = read_rows(st, &s, sizeof(**ids), read_text0, release_strings, n, &rc, err, errlen,
                     "list unseen own events");
    return rc;
}

void bm_store_strings_free(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

#define SHARED_COLS                                                                                \
    "s.target_calendar_id, s.block_id, s.source_calendar_id,"                                      \
    " (SELECT gcal_id FROM calendars c WHERE c.id = s.source_calendar_id), s.source_event_id,"     \
    " s.master_block_id, s.ical_uid, s.wanted, s.body, s.existed"

static void read_shared(sqlite3_stmt *s, void *row)
{
    bm_shared_block_t *b = row;
    memset(b, 0, sizeof(*b));
    b->target_calendar_id = sqlite3_column_int64(s, 0);
    b->block_id = col_dup(s, 1);
    b->source_calendar_id = sqlite3_column_int64(s, 2);
    b->source_gcal_id = col_dup(s, 3);
    b->source_event_id = col_dup(s, 4);
    b->master_block_id = col_dup(s, 5);
    b->ical_uid = col_dup(s, 6);
    b->wanted = col_dup(s, 7);
    b->body = col_dup(s, 8);
    b->existed = sqlite3_column_int(s, 9) != 0;
}

static void release_shared(void *rows, size_t n)
{
    bm_store_shared_free(rows, n);
}

int bm_store_shared_put(bm_store_t *st, const bm_shared_block_t *b, char *err, size_t errlen)
{
    PREP(s, "INSERT INTO shared_blocks(target_calendar_id, block_id, source_calendar_id,"
            " source_event_id, master_block_id, ical_uid, wanted, body, existed)"
            " VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9) ON CONFLICT(target_calendar_id, block_id)"
            " DO UPDATE SET source_calendar_id = ?3, source_event_id = ?4, master_block_id = ?5,"
            " ical_uid = ?6, wanted = ?7, body = ?8, existed = existed OR ?9");
    bind_int64(&s, 1, b->target_calendar_id);
    bind_text(&s, 2, b->block_id);
    bind_int64(&s, 3, b->source_calendar_id);
    bind_text(&s, 4, b->source_event_id);
    bind_text(&s, 5, b->master_block_id);
    bind_text(&s, 6, b->ical_uid);
    bind_text(&s, 7, b->wanted);
    bind_text(&s, 8, b->body);
    bind_int(&s, 9, b->existed);
    return exec_done(st, &s, err, errlen, "hold back block");
}

int bm_store_shared_get(bm_store_t *st, int64_t target_calendar_id, const char *block_id,
                        bm_shared_block_t *out, char *err, size_t errlen)
{
    PREP(s, "SELECT " SHARED_COLS " FROM shared_blocks s WHERE s.target_calendar_id = ?"
            " AND s.block_id = ?");
    bind_int64(&s, 1, target_calendar_id);
    bind_text(&s, 2, block_id);
    return read_one(st, &s, read_shared, out, err, errlen, "get held-back block");
}

int bm_store_shared_take(bm_store_t *st, int64_t target_calendar_id, const char *block_id,
                         bm_shared_block_t **out, size_t *n, char *err, size_t errlen)
{
    PREP(s, "SELECT " SHARED_COLS " FROM shared_blocks s WHERE s.target_calendar_id = ?1"
            " AND (s.block_id = ?2 OR s.master_block_id = ?2)"
            " ORDER BY s.master_block_id IS NOT NULL, s.block_id");
    bind_int64(&s, 1, target_calendar_id);
    bind_text(&s, 2, block_id);
    int rc;
    *out = read_rows(st, &s, sizeof(**out), read_shared, release_shared, n, &rc, err, errlen,
                     "take held-back blocks");
    if (rc != BM_OK || *n == 0)
        return rc;
    PREP(d, "DELETE FROM shared_blocks WHERE target_calendar_id = ?1"
            " AND (block_id = ?2 OR master_block_id = ?2)");
    bind_int64(&d, 1, target_calendar_id);
    bind_text(&d, 2, block_id);
    rc = exec_done(st, &d, err, errlen, "take held-back blocks");
    if (rc != BM_OK) {
        bm_store_shared_free(*out, *n);
        *out = NULL;
        *n = 0;
    }
    return rc;
}

int bm_store_shared_of_uid(bm_store_t *st, int64_t target_calendar_id, const char *ical_uid,
                           bm_shared_block_t **out, size_t *n, char *err, size_t errlen)
{
    PREP(s, "SELECT " SHARED_COLS " FROM shared_blocks s"
            " JOIN calendars t ON t.id = s.target_calendar_id AND t.enabled = 1"
            "  AND t.role IN (0, 2)"
            " JOIN calendars c ON c.id = s.source_calendar_id AND c.enabled = 1"
            "  AND c.role IN (0, 1) AND c.group_name = t.group_name"
            " JOIN source_events e ON e.calendar_id = s.source_calendar_id"
            "  AND e.event_id = s.source_event_id AND e.busy = 1"
            " WHERE s.target_calendar_id = ? AND s.ical_uid = ? AND s.master_block_id IS NULL"
            " ORDER BY s.block_id");
    bind_int64(&s, 1, target_calendar_id);
    bind_text(&s, 2, ical_uid);
    int rc;
    *out = read_rows(st, &s, sizeof(**out), read_shared, release_shared, n, &rc, err, errlen,
                     "list held-back blocks");
    return rc;
}

int bm_store_shared_hold_occurrences(bm_store_t *st, int64_t target_calendar_id,
                                     const char *master_block_id, const char *ical_uid, char *err,
                                     size_t errlen)
{
    static const char *const sql[] = {
        "INSERT INTO shared_blocks(target_calendar_id, block_id, source_calendar_id,"
        " source_event_id, master_block_id, ical_uid, wanted, body, existed)"
        " SELECT target_calendar_id, block_id, source_calendar_id, source_event_id,"
        " master_block_id, ?3, wanted, body, created FROM blocks WHERE target_calendar_id = ?1"
        " AND master_block_id = ?2 AND wanted IS NOT NULL"
        " ON CONFLICT(target_calendar_id, block_id) DO UPDATE SET"
        " source_calendar_id = excluded.source_calendar_id,"
        " source_event_id = excluded.source_event_id, master_block_id = excluded.master_block_id,"
        " ical_uid = excluded.ical_uid, wanted = excluded.wanted, body = excluded.body,"
        " existed = shared_blocks.existed OR excluded.existed",
        "DELETE FROM outbox WHERE target_calendar_id = ?1 AND block_id IN (SELECT block_id"
        " FROM blocks WHERE target_calendar_id = ?1 AND master_block_id = ?2)",
        "DELETE FROM blocks WHERE target_calendar_id = ?1 AND master_block_id = ?2",
    };
    int rc = BM_OK;
    for (size_t i = 0; rc == BM_OK && i < sizeof(sql) / sizeof(sql[0]); i++) {
        PREP(s, sql[i]);
        bind_int64(&s, 1, target_calendar_id);
        bind_text(&s, 2, master_block_id);
        if (i == 0)
            bind_text(&s, 3, ical_uid);
        rc = exec_done(st, &s, err, errlen, "hold back occurrences");
    }
    return rc;
}

int bm_store_shared_forget_calendar(bm_store_t *st, int64_t calendar_id, char *err, size_t errlen)
{
    PREP(s, "DELETE FROM shared_blocks WHERE target_calendar_id = ?1 OR source_calendar_id = ?1");
    bind_int64(&s, 1, calendar_id);
    return exec_done(st, &s, err, errlen, "forget held-back blocks");
}

void bm_shared_block_dispose(bm_shared_block_t *b)
{
    free(b->block_id);
    free(b->source_gcal_id);
    free(b->source_event_id);
    free(b->master_block_id);
    free(b->ical_uid);
    free(b->wanted);
    free(b->body);
    memset(b, 0, sizeof(*b));
}

void bm_store_shared_free(bm_shared_block_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        bm_shared_block_dispose(&b[i]);
    free(b);
}

int bm_store_blocks_of_uid(bm_store_t *st, int64_t target_calendar_id, const char *ical_uid,
                           bm_block_t **out, size_t *n, char *err, size_t errlen)
{
    PREP(s, "SELECT b.target_calendar_id, b.block_id, b.source_calendar_id, b.source_event_id,"
            " b.master_block_id, b.wanted, b.body, b.created, b.state, b.etag"
            " FROM source_events e JOIN blocks b ON b.source_calendar_id = e.calendar_id"
            "  AND b.source_event_id = e.event_id"
            " WHERE e.ical_uid = ?2 AND b.target_calendar_id = ?1 AND b.master_block_id IS NULL"
            "  AND b.wanted IS NOT NULL ORDER BY b.block_id");
    bind_int64(&s, 1, target_calendar_id);
    bind_text(&s, 2, ical_uid);
    return read_blocks(st, &s, out, n, err, errlen);
}

int bm_store_block_forget_unsent(bm_store_t *st, int64_t target_calendar_id, const char *block_id,
                                 bool *forgotten, char *err, size_t errlen)
{
    static const char *const sql[] = {
        /* its occurrences wait for the series to exist in Google: never sent either */
        "DELETE FROM outbox WHERE target_calendar_id = ?1 AND block_id IN (SELECT block_id"
        " FROM blocks WHERE target_calendar_id = ?1 AND (block_id = ?2 OR master_block_id = ?2))",
        "DELETE FROM blocks WHERE target_calendar_id = ?1 AND (block_id = ?2"
        " OR master_block_id = ?2)",
    };
    *forgotten = false;
    PREP(q, "SELECT EXISTS (SELECT 1 FROM blocks WHERE target_calendar_id = ? AND block_id = ?"
            " AND created = 0 AND sent = 0)");
    bind_int64(&q, 1, target_calendar_id);
    bind_text(&q, 2, block_id);
    int64_t unsent = 0;
    int rc = read_count(st, &q, &unsent, err, errlen, "find unsent block");
    for (size_t i = 0; rc == BM_OK && unsent != 0 && i < sizeof(sql) / sizeof(sql[0]); i++) {
        PREP(s, sql[i]);
        bind_int64(&s, 1, target_calendar_id);
        bind_text(&s, 2, block_id);
        rc = exec_done(st, &s, err, errlen, "forget unsent block");
    }
    *forgotten = rc == BM_OK && unsent != 0;
    return rc;
}

/* ---- the outbox ---- */

int bm_store_outbox_put(bm_store_t *st, int64_t target_calendar_id, const char *block_id,
                        bm_outbox_op_t op, bool is_instance, char *err, size_t errlen)
{
    PREP(s, "INSERT INTO outbox(target_calendar_id, account_id, block_id, op, is_instance,"
            " created_at) VALUES(?1, (SELECT account_id FROM calendars WHERE id = ?1), ?2, ?3,"
            " ?4, ?5) ON CONFLICT(target_calendar_id, block_id) DO UPDATE"
            " SET op = ?3, is_instance = ?4, attempts = 0, next_at = 0, last_error = NULL,"
            " rev = rev + 1");
    bind_int64(&s, 1, target_calendar_id);
    bind_text(&s, 2, block_id);
    bind_int(&s, 3, (int)op);
    bind_int(&s, 4, is_instance);
    bind_int64(&s, 5, bm_now());
    return exec_done(st, &s, err, errlen, "put outbox item");
}

/* Gives an item back, still claimed by it->claim_owner, to the next claimer. */
static int outbox_unclaim(bm_store_t *st, const bm_outbox_item_t *it, char *err, size_t errlen)
{
    PREP(s, "UPDATE outbox SET claim_owner = NULL, claim_until = 0"
            " WHERE id = ? AND claim_owner = ?");
    bind_int64(&s, 1, it->id);
    bind_text(&s, 2, it->claim_owner);
    return exec_done(st, &s, err, errlen, "release outbox claim");
}

int bm_store_outbox_done(bm_store_t *st, const bm_outbox_item_t *it, bool *current, char *err,
                         size_t errlen)
{
    PREP(s, "DELETE FROM outbox WHERE id = ? AND rev = ?");
    bind_int64(&s, 1, it->id);
    bind_int64(&s, 2, it->rev);
    int rc = exec_done(st, &s, err, errlen, "remove outbox item");
    *current = rc == BM_OK && sqlite3_changes(st->db) == 1;
    /* replanned meanwhile: the new plan waited for this claim, which ends here */
    if (rc == BM_OK && !*current && it->claim_owner != NULL)
        rc = outbox_unclaim(st, it, err, errlen);
    return rc;
}

int bm_store_outbox_drop_stale(bm_store_t *st, int64_t *n, char *err, size_t errlen)
{
    PREP(s, "DELETE FROM outbox WHERE op = 1 AND NOT EXISTS (SELECT 1 FROM blocks b"
            " WHERE b.target_calendar_id = outbox.target_calendar_id"
            " AND b.block_id = outbox.block_id AND b.body IS NOT NULL)");
    return count_changes(st, &s, n, err, errlen, "drop stale outbox items");
}

static void read_outbox_claim_row(sqlite3_stmt *s, void *row)
{
    bm_outbox_item_t *it = row;
    it->id = sqlite3_column_int64(s, 0);
    it->target_calendar_id = sqlite3_column_int64(s, 1);
    it->target_gcal_id = col_dup(s, 2);
    it->block_id = col_dup(s, 3);
    it->op = (bm_outbox_op_t)sqlite3_column_int(s, 4);
    it->is_instance = sqlite3_column_int(s, 5) != 0;
    it->attempts = sqlite3_column_int(s, 6);
    it->body = col_dup(s, 7);
    it->created = sqlite3_column_int(s, 8) != 0;
    it->master_block_id = col_dup(s, 9);
    it->rev = sqlite3_column_int64(s, 10);
    it->claim_owner = col_dup(s, 11);
}

static void release_outbox_claim_rows(void *rows, size_t n)
{
    bm_store_outbox_items_free(rows, n);
}

static int by_outbox_id(const void *a, const void *b)
{
    const bm_outbox_item_t *x = a, *y = b;
    return (x->id > y->id) - (x->id < y->id);
}

int bm_store_outbox_claim(bm_store_t *st, int64_t account_id, bool instances, const char *owner,
                          int64_t now_ms, int64_t ttl_ms, size_t limit, bm_outbox_item_t **out,
                          size_t *n, char *err, size_t errlen)
{
    /* One statement picks the due items nobody holds (never claimed, settled, or
     * a crashed owner's claim that expired) and claims them: two processes
     * never get the same item. On PostgreSQL the inner SELECT takes FOR UPDATE
     * SKIP LOCKED, so that concurrent claimers skip each other's rows instead
     * of waiting. An occurrence override waits until its series block exists in
     * Google, as planned (no write of the series pending). */
    PREP(s, "UPDATE outbox SET claim_owner = ?5, claim_until = ?3 + ?6 WHERE id IN ("
            " SELECT o.id FROM outbox o LEFT JOIN blocks b"
            "  ON b.target_calendar_id = o.target_calendar_id AND b.block_id = o.block_id"
            " WHERE o.account_id = ?1 AND o.is_instance = ?2 AND o.next_at <= ?3"
            "  AND o.claim_until <= ?3"
            "  AND (o.is_instance = 0 OR (EXISTS (SELECT 1 FROM blocks m"
            "   WHERE m.target_calendar_id = o.target_calendar_id"
            "   AND m.block_id = b.master_block_id AND m.created = 1)"
            "  AND NOT EXISTS (SELECT 1 FROM outbox mo"
            "   WHERE mo.target_calendar_id = o.target_calendar_id"
            "   AND mo.block_id = b.master_block_id)))"
            " ORDER BY o.id LIMIT ?4)"
            " RETURNING id, target_calendar_id,"
            " (SELECT gcal_id FROM calendars c WHERE c.id = outbox.target_calendar_id),"
            " block_id, op, is_instance, attempts,"
            " (SELECT body FROM blocks b WHERE b.target_calendar_id = outbox.target_calendar_id"
            "  AND b.block_id = outbox.block_id),"
            " COALESCE((SELECT created FROM blocks b"
            "  WHERE b.target_calendar_id = outbox.target_calendar_id"
            "  AND b.block_id = outbox.block_id), 0)"
            " OR EXISTS (SELECT 1 FROM block_tombstones t"
            "  WHERE t.target_calendar_id = outbox.target_calendar_id"
            "  AND t.block_id = outbox.block_id),"
            " (SELECT master_block_id FROM blocks b"
            "  WHERE b.target_calendar_id = outbox.target_calendar_id"
            "  AND b.block_id = outbox.block_id),"
            " rev, claim_owner");
    bind_int64(&s, 1, account_id);
    bind_int(&s, 2, instances);
    bind_int64(&s, 3, now_ms);
    bind_int64(&s, 4, (int64_t)limit);
    bind_text(&s, 5, owner);
    bind_int64(&s, 6, ttl_ms);
    int rc;
    *out = read_rows(st, &s, sizeof(**out), read_outbox_claim_row, release_outbox_claim_rows, n,
                     &rc, err, errlen, "claim outbox items");
    if (rc == BM_OK && *n > 1) /* RETURNING gives no order */
        qsort(*out, *n, sizeof(**out), by_outbox_id);
    return rc;
}

int bm_store_outbox_release(bm_store_t *st, const bm_outbox_item_t *items, size_t n, char *err,
                            size_t errlen)
{
    int rc = BM_OK;
    for (size_t i = 0; rc == BM_OK && i < n; i++)
        rc = outbox_unclaim(st, &items[i], err, errlen);
    return rc;
}

int bm_store_outbox_unclaim_dead(bm_store_t *st, int64_t now_ms, int64_t *n, char *err,
                                 size_t errlen)
{
    char **owners = NULL;
    size_t n_owners = 0, cap = 0;
    int rc = BM_OK, s;
    *n = 0;
    PREP(q, "SELECT DISTINCT claim_owner FROM outbox WHERE claim_until > ?");
    bind_int64(&q, 1, now_ms);
    while ((s = step(&q)) == SQLITE_ROW) {
        const char *o = (const char *)sqlite3_column_text(q.s, 0);
        if (o == NULL || !owner_is_dead(o))
            continue;
        if (n_owners == cap) {
            cap = cap ? cap * 2 : 4;
            owners = bm_realloc(owners, cap * sizeof(*owners));
        }
        owners[n_owners++] = bm_strdup(o);
    }
    if (s != SQLITE_DONE)
        rc = query_err(st, &q, err, errlen, "read outbox claims");
    done(&q);
    for (size_t i = 0; i < n_owners; i++) {
        int64_t k = 0;
        query_t u = {stmt(st, "UPDATE outbox SET claim_owner = NULL, claim_until = 0"
                              " WHERE claim_owner = ?"),
                     SQLITE_OK};
        if (rc == BM_OK && u.s == NULL)
            rc = query_err(st, &u, err, errlen, "prepare");
        if (rc == BM_OK) {
            bind_text(&u, 1, owners[i]);
            rc = count_changes(st, &u, &k, err, errlen, "release dead claims");
            *n += k;
        }
        free(owners[i]);
    }
    free(owners);
    return rc;
}

int bm_store_outbox_unclaim_owner(bm_store_t *st, const char *owner, int64_t *n, char *err,
                                  size_t errlen)
{
    *n = 0;
    PREP(s, "UPDATE outbox SET claim_owner = NULL, claim_until = 0 WHERE claim_owner = ?");
    bind_text(&s, 1, owner);
    return count_changes(st, &s, n, err, errlen, "release own claims");
}

int bm_store_outbox_in_flight(bm_store_t *st, const char *owner, int64_t now_ms, int64_t *n,
                              char *err, size_t errlen)
{
    PREP(s, "SELECT count(*) FROM outbox WHERE claim_until > ? AND claim_owner <> ?");
    bind_int64(&s, 1, now_ms);
    bind_text(&s, 2, owner);
    return read_count(st, &s, n, err, errlen, "count outbox claims");
}

int bm_store_outbox_retry_later(bm_store_t *st, const bm_outbox_item_t *it, int64_t next_at_ms,
                                const char *error, char *err, size_t errlen)
{
    /* A newer plan for the block (another rev) starts afresh instead. Either
     * way the claim ends, unless another owner took the item over meanwhile
     * (ours expired): then the item is that owner's. */
    PREP(s, "UPDATE outbox SET attempts = CASE WHEN rev = ?2 THEN ?3 ELSE attempts END,"
            " next_at = CASE WHEN rev = ?2 THEN ?4 ELSE next_at END,"
            " last_error = CASE WHEN rev = ?2 THEN ?5 ELSE last_error END,"
            " claim_owner = NULL, claim_until = 0"
            " WHERE id = ?1 AND (claim_owner IS NULL OR claim_owner = ?6)");
    bind_int64(&s, 1, it->id);
    bind_int64(&s, 2, it->rev);
    bind_int(&s, 3, it->attempts + 1);
    bind_int64(&s, 4, next_at_ms);
    bind_text(&s, 5, error);
    bind_text(&s, 6, it->claim_owner);
    return exec_done(st, &s, err, errlen, "reschedule outbox item");
}

int bm_store_outbox_to_dead_letters(bm_store_t *st, const bm_outbox_item_t *it, const char *error,
                                    char *err, size_t errlen)
{
    bool current;
    int rc = bm_store_outbox_done(st, it, &current, err, errlen);
    if (rc != BM_OK || !current) /* a newer plan replaced it: that one goes on */
        return rc;
    PREP(s, "INSERT INTO dead_letters(target_calendar_id, block_id, op, is_instance, attempts,"
            " error, failed_at) VALUES(?,?,?,?,?,?,?)");
    bind_int64(&s, 1, it->target_calendar_id);
    bind_text(&s, 2, it->block_id);
    bind_int(&s, 3, (int)it->op);
    bind_int(&s, 4, it->is_instance);
    bind_int(&s, 5, it->attempts + 1);
    bind_text(&s, 6, error);
    bind_int64(&s, 7, bm_now());
    return exec_done(st, &s, err, errlen, "add dead letter");
}

int bm_store_outbox_stats(bm_store_t *st, int64_t *pending, int64_t *next_due_ms, char *err,
                          size_t errlen)
{
    PREP(s, "SELECT count(*), min(next_at) FROM outbox");
    int64_t v[2];
    int rc = read_int64s(st, &s, v, 2, err, errlen, "outbox stats");
    if (rc == BM_OK) {
        *pending = v[0];
        *next_due_ms = v[1];
    }
    return rc;
}

int bm_store_outbox_accounts(bm_store_t *st, int64_t **ids, size_t *n, char *err, size_t errlen)
{
    PREP(s, "SELECT DISTINCT account_id FROM outbox ORDER BY 1");
    int rc;
    *ids = read_rows(st, &s, sizeof(**ids), read_id, release_plain, n, &rc, err, errlen,
                     "outbox accounts");
    return rc;
}

void bm_store_outbox_items_free(bm_outbox_item_t *items, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(items[i].target_gcal_id);
        free(items[i].block_id);
        free(items[i].body);
        free(items[i].master_block_id);
        free(items[i].claim_owner);
    }
    free(items);
}

/* ---- sync log ---- */

int bm_store_sync_log_add(bm_store_t *st, const bm_sync_log_t *l, char *err, size_t errlen)
{
    PREP(s, "INSERT INTO sync_log(calendar_id, started_at, duration_ms, kind, listed, inserted,"
            " updated, deleted, api_calls, result, error) VALUES(?,?,?,?,?,?,?,?,?,?,?)");
    bind_int64(&s, 1, l->calendar_id);
    bind_int64(&s, 2, l->started_at);
    bind_int64(&s, 3, l->duration_ms);
    bind_text(&s, 4, l->kind);
    bind_int64(&s, 5, l->listed);
    bind_int64(&s, 6, l->inserted);
    bind_int64(&s, 7, l->updated);
    bind_int64(&s, 8, l->deleted);
    bind_int64(&s, 9, l->api_calls);
    bind_text(&s, 10, l->result);
    bind_text(&s, 11, l->error);
    return exec_done(st, &s, err, errlen, "add sync log");
}

/* ---- audit log: what reset, cleanup and removals deleted ---- */

int bm_store_audit_new_run(bm_store_t *st, int64_t *run_id, char *err, size_t errlen)
{
    PREP(s, "SELECT COALESCE(MAX(run_id), 0) + 1 FROM audit_log");
    return read_count(st, &s, run_id, err, errlen, "new audit run");
}

int bm_store_audit_add(bm_store_t *st, const bm_audit_t *a, char *err, size_t errlen)
{
    PREP(s, "INSERT INTO audit_log(run_id, at, action, account_id, gcal_id, block_id, content,"
            " group_name, role) VALUES(?,?,?,?,?,?,?,?,?)");
    bind_int64(&s, 1, a->run_id);
    bind_int64(&s, 2, bm_now());
    bind_text(&s, 3, a->action);
    bind_int64(&s, 4, a->account_id);
    bind_text(&s, 5, a->gcal_id);
    bind_text(&s, 6, a->block_id);
    bind_text(&s, 7, a->content);
    bind_text(&s, 8, a->group_name);
    bind_int(&s, 9, (int)a->role);
    return exec_done(st, &s, err, errlen, "add audit entry");
}

static void read_audit_run_row(sqlite3_stmt *s, void *row)
{
    bm_audit_t *a = row;
    a->id = sqlite3_column_int64(s, 0);
    a->run_id = sqlite3_column_int64(s, 1);
    a->at = sqlite3_column_int64(s, 2);
    a->action = col_dup(s, 3);
    a->account_id = sqlite3_column_int64(s, 4);
    a->gcal_id = col_dup(s, 5);
    a->block_id = col_dup(s, 6);
    a->content = col_dup(s, 7);
    a->undone_at = sqlite3_column_int64(s, 8);
    a->group_name = col_dup(s, 9);
    a->role = (bm_role_t)sqlite3_column_int(s, 10);
}

static void release_audit_run_rows(void *rows, size_t n)
{
    bm_store_audits_free(rows, n);
}

int bm_store_audit_run(bm_store_t *st, int64_t run_id, bm_audit_t **out, size_t *n, char *err,
                       size_t errlen)
{
    /* run_id 0: the newest run */
    PREP(s, "SELECT id, run_id, at, action, account_id, gcal_id, block_id, content, undone_at,"
            " group_name, role FROM audit_log WHERE run_id = CASE WHEN ?1 = 0 THEN"
            " (SELECT MAX(run_id) FROM audit_log) ELSE ?1 END ORDER BY id");
    bind_int64(&s, 1, run_id);
    int rc;
    *out = read_rows(st, &s, sizeof(**out), read_audit_run_row, release_audit_run_rows, n, &rc, err,
                     errlen, "read audit run");
    return rc;
}

int bm_store_audit_mark_undone(bm_store_t *st, int64_t id, char *err, size_t errlen)
{
    PREP(s, "UPDATE audit_log SET undone_at = ? WHERE id = ?");
    bind_int64(&s, 1, bm_now());
    bind_int64(&s, 2, id);
    return exec_done(st, &s, err, errlen, "mark audit entry undone");
}

void bm_store_audits_free(bm_audit_t *a, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(a[i].action);
        free(a[i].gcal_id);
        free(a[i].block_id);
        free(a[i].content);
        free(a[i].group_name);
    }
    free(a);
}

/* ---- retention ---- */

int bm_store_logs_purge(bm_store_t *st, int64_t before, bool apply, int64_t *n_sync,
                        int64_t *n_audit, char *err, size_t errlen)
{
    if (!apply) {
        PREP(q, "SELECT (SELECT count(*) FROM sync_log WHERE started_at < ?1),"
                " (SELECT count(*) FROM audit_log WHERE at < ?1)");
        bind_int64(&q, 1, before);
        int64_t v[2];
        int rc = read_int64s(st, &q, v, 2, err, errlen, "count old logs");
        if (rc == BM_OK) {
            *n_sync = v[0];
            *n_audit = v[1];
        }
        return rc;
    }
    PREP(s, "DELETE FROM sync_log WHERE started_at < ?");
    bind_int64(&s, 1, before);
    int rc = count_changes(st, &s, n_sync, err, errlen, "purge sync log");
    if (rc != BM_OK)
        return rc;
    PREP(a, "DELETE FROM audit_log WHERE at < ?");
    bind_int64(&a, 1, before);
    return count_changes(st, &a, n_audit, err, errlen, "purge audit log");
}

/* ---- orphans ---- */

int bm_store_blocks_orphaned(bm_store_t *st, bm_block_t **out, size_t *n, char *err, size_t errlen)
{
    /* Live series/single blocks whose source calendar is gone or disabled, whose
     * source event is no longer mirrored, or whose target left its source's group. */
    PREP(s, "SELECT " BLOCK_COLS " FROM blocks b WHERE b.master_block_id IS NULL"
            " AND b.wanted IS NOT NULL AND ("
            "  NOT EXISTS (SELECT 1 FROM calendars c WHERE c.id = b.source_calendar_id"
            "   AND c.enabled = 1 AND c.role IN (0, 1))"
            "  OR NOT EXISTS (SELECT 1 FROM source_events e WHERE"
            "   e.calendar_id = b.source_calendar_id AND e.event_id = b.source_event_id"
            "   AND e.busy = 1)"
            "  OR NOT EXISTS (SELECT 1 FROM calendars t JOIN calendars c"
            "   ON c.id = b.source_calendar_id AND c.group_name = t.group_name"
            "   WHERE t.id = b.target_calendar_id AND t.enabled = 1 AND t.role IN (0, 2)))"
            " ORDER BY b.target_calendar_id, b.block_id");
    return read_blocks(st, &s, out, n, err, errlen);
}

int bm_store_sources_purge_unused(bm_store_t *st, bool apply, int64_t *n, char *err, size_t errlen)
{
    /* Mirror rows of calendars that no longer give blocks, and rows no block uses. */
#define UNUSED_SOURCES                                                                             \
    " FROM source_events WHERE NOT EXISTS (SELECT 1 FROM calendars c"                              \
    " WHERE c.id = source_events.calendar_id AND c.enabled = 1 AND c.role IN (0, 1))"              \
    " OR (busy = 0 AND recurring_event_id IS NULL)"
    if (!apply) {
        PREP(q, "SELECT count(*)" UNUSED_SOURCES);
        return read_count(st, &q, n, err, errlen, "count unused sources");
    }
    PREP(s, "DELETE" UNUSED_SOURCES);
    return count_changes(st, &s, n, err, errlen, "purge unused sources");
}

/* ---- a calendar's local state, for reset ---- */

int bm_store_calendar_forget(bm_store_t *st, int64_t calendar_id, char *err, size_t errlen)
{
    static const char *const sql[] = {
        "DELETE FROM outbox WHERE target_calendar_id = ?",
        "DELETE FROM blocks WHERE target_calendar_id = ?",
        "DELETE FROM shared_blocks WHERE target_calendar_id = ?",
        "UPDATE sync_state SET sync_token = NULL WHERE calendar_id = ?",
    };
    int rc = BM_OK;
    for (size_t i = 0; rc == BM_OK && i < sizeof(sql) / sizeof(sql[0]); i++) {
        PREP(s, sql[i]);
        bind_int64(&s, 1, calendar_id);
        rc = exec_done(st, &s, err, errlen, "forget calendar");
    }
    return rc;
}

/* ---- dead letters ---- */

static void read_dead_letters_row(sqlite3_stmt *s, void *row)
{
    bm_dead_letter_t *d = row;
    d->id = sqlite3_column_int64(s, 0);
    d->target_calendar_id = sqlite3_column_int64(s, 1);
    d->gcal_id = col_dup(s, 2);
    d->block_id = col_dup(s, 3);
    d->op = (bm_outbox_op_t)sqlite3_column_int(s, 4);
    d->attempts = sqlite3_column_int(s, 5);
    d->error = col_dup(s, 6);
    d->failed_at = sqlite3_column_int64(s, 7);
}

static void release_dead_letters_rows(void *rows, size_t n)
{
    bm_store_dead_letters_free(rows, n);
}

int bm_store_dead_letters(bm_store_t *st, bm_dead_letter_t **out, size_t *n, char *err,
                          size_t errlen)
{
    PREP(s, "SELECT d.id, d.target_calendar_id, COALESCE(c.gcal_id, '?'), d.block_id, d.op,"
            " d.attempts, d.error, d.failed_at FROM dead_letters d"
            " LEFT JOIN calendars c ON c.id = d.target_calendar_id ORDER BY d.id");
    int rc;
    *out = read_rows(st, &s, sizeof(**out), read_dead_letters_row, release_dead_letters_rows, n,
                     &rc, err, errlen, "list dead letters");
    return rc;
}

int bm_store_dead_letter_retry(bm_store_t *st, int64_t id, int64_t *n, char *err, size_t errlen)
{
    /* Back to the outbox with fresh attempts (id 0: all of them), as what the block
     * needs now: a put when it is wanted with a body, else a delete (the failed
     * write may be outdated by later plans). */
    PREP(s, "INSERT INTO outbox(target_calendar_id, account_id, block_id, op, is_instance,"
            " created_at) SELECT d.target_calendar_id, c.account_id, d.block_id,"
            " CASE WHEN EXISTS (SELECT 1 FROM blocks b WHERE"
            "  b.target_calendar_id = d.target_calendar_id AND b.block_id = d.block_id"
            "  AND b.wanted IS NOT NULL AND b.body IS NOT NULL) THEN 1 ELSE 2 END,"
            " d.is_instance, ?2 FROM dead_letters d JOIN calendars c ON c.id = d.target_calendar_id"
            " WHERE ?1 = 0 OR d.id = ?1 ORDER BY d.id"
            " ON CONFLICT(target_calendar_id, block_id) DO UPDATE SET op = excluded.op,"
            " attempts = 0, next_at = 0, last_error = NULL");
    bind_int64(&s, 1, id);
    bind_int64(&s, 2, bm_now());
    int rc = count_changes(st, &s, n, err, errlen, "retry dead letters");
    if (rc != BM_OK)
        return rc;
    PREP(d, "DELETE FROM dead_letters WHERE ?1 = 0 OR id = ?1");
    bind_int64(&d, 1, id);
    return exec_done(st, &d, err, errlen, "retry dead letters");
}

int bm_store_dead_letters_purge(bm_store_t *st, int64_t before, int64_t *n, char *err,
                                size_t errlen)
{
    PREP(s, "DELETE FROM dead_letters WHERE failed_at < ?");
    bind_int64(&s, 1, before);
    return count_changes(st, &s, n, err, errlen, "purge dead letters");
}

void bm_store_dead_letters_free(bm_dead_letter_t *d, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(d[i].gcal_id);
        free(d[i].block_id);
        free(d[i].error);
    }
    free(d);
}

/* ---- health, for status ---- */

int bm_store_calendar_health(bm_store_t *st, int64_t calendar_id, bm_health_t *h, char *err,
                             size_t errlen)
{
    PREP(s, "SELECT (SELECT count(*) FROM outbox WHERE target_calendar_id = ?1),"
            " (SELECT count(*) FROM outbox WHERE target_calendar_id = ?1 AND attempts > 0),"
            " (SELECT count(*) FROM dead_letters WHERE target_calendar_id = ?1),"
            " (SELECT count(*) FROM jobs WHERE calendar_id = ?1),"
            " (SELECT MAX(expiration) FROM channels WHERE calendar_id = ?1"
            "   AND stopped_at IS NULL),"
            " (SELECT count(*) FROM blocks WHERE target_calendar_id = ?1 AND created = 1"
            "   AND wanted IS NOT NULL AND master_block_id IS NULL)");
    bind_int64(&s, 1, calendar_id);
    int64_t v[6];
    int rc = read_int64s(st, &s, v, 6, err, errlen, "calendar health");
    if (rc == BM_OK)
        *h = (bm_health_t){.outbox = v[0],
                           .retrying = v[1],
                           .dead_letters = v[2],
                           .jobs = v[3],
                           .channel_expiration = v[4],
                           .blocks = v[5]};
    return rc;
}

int bm_store_blocks_forget_source(bm_store_t *st, int64_t source_calendar_id, char *err,
                                  size_t errlen)
{
    PREP(o, "DELETE FROM outbox WHERE EXISTS (SELECT 1 FROM blocks b WHERE"
            " b.target_calendar_id = outbox.target_calendar_id AND b.block_id = outbox.block_id"
            " AND b.source_calendar_id = ?)");
    bind_int64(&o, 1, source_calendar_id);
    int rc = exec_done(st, &o, err, errlen, "forget outbox of a source");
    if (rc != BM_OK)
        return rc;
    PREP(s, "DELETE FROM blocks WHERE source_calendar_id = ?");
    bind_int64(&s, 1, source_calendar_id);
    return exec_done(st, &s, err, errlen, "forget blocks of a source");
}

int bm_store_blocks_pending_delete(bm_store_t *st, int64_t calendar_id, int64_t *n, char *err,
                                   size_t errlen)
{
    PREP(s, "SELECT count(*) FROM blocks WHERE wanted IS NULL AND (target_calendar_id = ?1"
            " OR source_calendar_id = ?1)");
    bind_int64(&s, 1, calendar_id);
    return read_count(st, &s, n, err, errlen, "count pending deletes");
}

/* ---- operator reports: audit runs and the sync log ---- */

/* Splits a newline-joined list (NULL: empty) into a malloc'd array of copies. */
static char **split_lines(const char *s, size_t *n)
{
    char **v = NULL;
    *n = 0;
    for (const char *p = s; p != NULL && *p != '\0';) {
        const char *nl = strchr(p, '\n');
        size_t len = nl != NULL ? (size_t)(nl - p) : strlen(p);
        v = bm_realloc(v, (*n + 1) * sizeof(*v));
        v[(*n)++] = bm_strndup(p, len);
        p = nl != NULL ? nl + 1 : NULL;
    }
    return v;
}

static void read_audit_summary_row(sqlite3_stmt *s, void *row)
{
    bm_audit_summary_t *a = row;
    a->run_id = sqlite3_column_int64(s, 0);
    a->at = sqlite3_column_int64(s, 1);
    a->action = col_dup(s, 2);
    a->blocks = sqlite3_column_int64(s, 3);
    a->undone = sqlite3_column_int64(s, 4);
    a->calendars = split_lines((const char *)sqlite3_column_text(s, 5), &a->n_calendars);
}

static void release_audit_summary_rows(void *rows, size_t n)
{
    bm_store_audit_summaries_free(rows, n);
}

int bm_store_audit_list(bm_store_t *st, size_t limit, bm_audit_summary_t **out, size_t *n,
                        char *err, size_t errlen)
{
    /* A run's rows without a block_id record a membership it ended (for undo),
     * not a deleted block. */
    PREP(s, "SELECT a.run_id, MIN(a.at), MIN(a.action), count(a.block_id),"
            " count(CASE WHEN a.block_id IS NOT NULL THEN a.undone_at END),"
            " (SELECT group_concat(g, char(10)) FROM (SELECT DISTINCT COALESCE(b.gcal_id, '?') g"
            "   FROM audit_log b WHERE b.run_id = a.run_id ORDER BY g))"
            " FROM audit_log a GROUP BY a.run_id ORDER BY a.run_id DESC LIMIT ?");
    bind_int64(&s, 1, limit > INT64_MAX ? INT64_MAX : (int64_t)limit);
    int rc;
    *out = read_rows(st, &s, sizeof(**out), read_audit_summary_row, release_audit_summary_rows, n,
                     &rc, err, errlen, "list audit runs");
    return rc;
}

void bm_store_audit_summaries_free(bm_audit_summary_t *a, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(a[i].action);
        for (size_t j = 0; j < a[i].n_calendars; j++)
            free(a[i].calendars[j]);
        free(a[i].calendars);
    }
    free(a);
}

static void read_sync_log_row(sqlite3_stmt *s, void *row)
{
    bm_sync_log_entry_t *l = row;
    l->id = sqlite3_column_int64(s, 0);
    l->gcal_id = col_dup(s, 1);
    l->account_name = col_dup(s, 2);
    l->started_at = sqlite3_column_int64(s, 3);
    l->duration_ms = sqlite3_column_int64(s, 4);
    l->kind = col_dup(s, 5);
    l->listed = sqlite3_column_int64(s, 6);
    l->inserted = sqlite3_column_int64(s, 7);
    l->updated = sqlite3_column_int64(s, 8);
    l->deleted = sqlite3_column_int64(s, 9);
    l->api_calls = sqlite3_column_int64(s, 10);
    l->result = col_dup(s, 11);
    l->error = col_dup(s, 12);
}

static void release_sync_log_rows(void *rows, size_t n)
{
    bm_store_sync_log_entries_free(rows, n);
}

int bm_store_sync_log_list(bm_store_t *st, int64_t calendar_id, size_t limit,
                           bm_sync_log_entry_t **out, size_t *n, char *err, size_t errlen)
{
    PREP(s, "SELECT l.id, c.gcal_id, a.name, l.started_at, l.duration_ms, l.kind, l.listed,"
            " l.inserted, l.updated, l.deleted, l.api_calls, l.result, l.error FROM sync_log l"
            " LEFT JOIN calendars c ON c.id = l.calendar_id"
            " LEFT JOIN accounts a ON a.id = c.account_id"
            " WHERE ?1 = 0 OR l.calendar_id = ?1 ORDER BY l.started_at DESC, l.id DESC LIMIT ?2");
    bind_int64(&s, 1, calendar_id);
    bind_int64(&s, 2, limit > INT64_MAX ? INT64_MAX : (int64_t)limit);
    int rc;
    *out = read_rows(st, &s, sizeof(**out), read_sync_log_row, release_sync_log_rows, n, &rc, err,
                     errlen, "list sync log");
    return rc;
}

void bm_store_sync_log_entries_free(bm_sync_log_entry_t *l, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(l[i].gcal_id);
        free(l[i].account_name);
        free(l[i].kind);
        free(l[i].result);
        free(l[i].error);
    }
    free(l);
}

/* ---- the queue ----
 * jobs.state is BM_JOB_PENDING or BM_JOB_RUNNING; UNIQUE(calendar_id, state)
 * keeps one of each per calendar. Times are ms. */

#define JOB_COLS                                                                                   \
    "id, calendar_id, state, reason, enqueued_at, run_at, attempts, coalesced, lease_owner,"       \
    " lease_expires, last_error"

static void read_job(sqlite3_stmt *s, void *row)
{
    bm_job_t *j = row;
    memset(j, 0, sizeof(*j));
    j->id = sqlite3_column_int64(s, 0);
    j->calendar_id = sqlite3_column_int64(s, 1);
    j->state = (bm_job_state_t)sqlite3_column_int(s, 2);
    j->reason = col_dup(s, 3);
    j->enqueued_at = sqlite3_column_int64(s, 4);
    j->run_at = sqlite3_column_int64(s, 5);
    j->attempts = sqlite3_column_int(s, 6);
    j->coalesced = sqlite3_column_int64(s, 7);
    j->lease_owner = col_dup(s, 8);
    j->lease_expires = sqlite3_column_int64(s, 9);
    j->last_error = col_dup(s, 10);
}

int bm_store_job_enqueue(bm_store_t *st, int64_t calendar_id, const char *reason, int64_t now_ms,
                         int64_t debounce_ms, int64_t max_delay_ms, bool *coalesced, char *err,
                         size_t errlen)
{
    /* A pending job conflicts (the running one has another state): debounce
     * from this notification, bounded by max_delay after the first; a job in
     * backoff (attempts > 0) keeps its time. */
    PREP(s, "INSERT INTO jobs(calendar_id, state, reason, enqueued_at, run_at)"
            " VALUES(?1, 0, ?2, ?3, min(?3 + ?4, ?3 + ?5))"
            " ON CONFLICT(calendar_id, state) DO UPDATE SET coalesced = coalesced + 1,"
            " run_at = CASE WHEN attempts > 0 THEN run_at"
            " ELSE min(?3 + ?4, enqueued_at + ?5) END"
            " RETURNING coalesced");
    bind_int64(&s, 1, calendar_id);
    bind_text(&s, 2, reason);
    bind_int64(&s, 3, now_ms);
    bind_int64(&s, 4, debounce_ms);
    bind_int64(&s, 5, max_delay_ms);
    int64_t n = 0;
    int rc = read_count(st, &s, &n, err, errlen, "enqueue job");
    if (rc == BM_OK && coalesced != NULL)
        *coalesced = n > 0;
    return rc;
}

/* The running jobs a requeue takes: job ?1 while owner ?2 holds it or, with
 * ?1 = 0, every running job whose lease expired by ?3. */
#define REQUEUED                                                                                   \
    " r.state = 1 AND ((?1 > 0 AND r.id = ?1 AND r.lease_owner = ?2)"                              \
    " OR (?1 = 0 AND r.lease_expires <= ?3))"

/* Puts running jobs back to pending: due at next_run_ms (< 0: their own run_at),
 * attempts moved by attempts_delta, last_error set (NULL: kept). Where the
 * calendar has a pending follow-up, the follow-up absorbs the job (earlier
 * run_at, coalesced summed, the higher attempts). *n: jobs requeued. Three
 * statements: the caller holds a write transaction or accepts that a crash
 * between them leaves the job running, to be taken over when its lease lapses. */
static int requeue(bm_store_t *st, int64_t job_id, const char *owner, int64_t now_ms,
                   int64_t next_run_ms, int attempts_delta, const char *error, int64_t *n,
                   char *err, size_t errlen)
{
    int64_t deleted = 0, updated = 0;
    PREP(m, "UPDATE jobs SET run_at = min(jobs.run_at, CASE WHEN ?4 < 0 THEN r.run_at ELSE ?4 END),"
            " coalesced = jobs.coalesced + r.coalesced,"
            " attempts = max(jobs.attempts, r.attempts + ?5),"
            " last_error = COALESCE(?6, r.last_error)"
            " FROM jobs AS r WHERE jobs.state = 0 AND r.calendar_id = jobs.calendar_id"
            " AND" REQUEUED);
    PREP(d, "DELETE FROM jobs AS r WHERE" REQUEUED " AND EXISTS (SELECT 1 FROM jobs p"
            " WHERE p.calendar_id = r.calendar_id AND p.state = 0)");
    PREP(u, "UPDATE jobs AS r SET state = 0, run_at = CASE WHEN ?4 < 0 THEN r.run_at ELSE ?4 END,"
            " attempts = max(r.attempts + ?5, 0), last_error = COALESCE(?6, r.last_error),"
            " lease_owner = NULL, lease_expires = NULL WHERE" REQUEUED);
    query_t *q[] = {&m, &d, &u};
    for (size_t i = 0; i < 3; i++) {
        bind_int64(q[i], 1, job_id);
        bind_text(q[i], 2, owner);
        bind_int64(q[i], 3, now_ms);
        if (q[i] != &d) {
            bind_int64(q[i], 4, next_run_ms);
            bind_int(q[i], 5, attempts_delta);
            bind_text(q[i], 6, error);
        }
    }
    int rc = exec_done(st, &m, err, errlen, "requeue job");
    if (rc == BM_OK)
        rc = count_changes(st, &d, &deleted, err, errlen, "requeue job");
    if (rc == BM_OK)
        rc = count_changes(st, &u, &updated, err, errlen, "requeue job");
    if (rc == BM_OK)
        *n = deleted + updated;
    return rc;
}

/* Runs a statement meant to change one row: BM_ENOTFOUND (no message) when it
 * changed none. */
static int exec_one(bm_store_t *st, query_t *q, char *err, size_t errlen, const char *what)
{
    int64_t n = 0;
    int rc = count_changes(st, q, &n, err, errlen, what);
    return rc == BM_OK && n == 0 ? BM_ENOTFOUND : rc;
}

/* rc, with the message of a job owner does not hold when it is BM_ENOTFOUND. */
static int not_held(int rc, int64_t job_id, const char *owner, char *err, size_t errlen)
{
    if (rc != BM_ENOTFOUND)
        return rc;
    return bm_err(err, errlen, rc, "job %lld is not held by %s", (long long)job_id,
                  owner != NULL ? owner : "?");
}

/* Opens a write transaction unless the caller holds one (*own says which). */
static int txn_begin(bm_store_t *st, bool *own, char *err, size_t errlen)
{
    *own = sqlite3_get_autocommit(st->db) != 0;
    return *own ? bm_store_begin(st, err, errlen) : BM_OK;
}

/* Ends what txn_begin opened: commits when rc is BM_OK, else rolls back. */
static int txn_end(bm_store_t *st, bool own, int rc, char *err, size_t errlen)
{
    if (!own)
        return rc;
    if (rc == BM_OK)
        return bm_store_commit(st, err, errlen);
    bm_store_rollback(st);
    return rc;
}

/* Requeues job_id of owner in one transaction; BM_ENOTFOUND when not held. */
static int requeue_one(bm_store_t *st, int64_t job_id, const char *owner, int64_t next_run_ms,
                       int attempts_delta, const char *error, char *err, size_t errlen)
{
    bool own;
    int64_t n = 0;
    int rc = txn_begin(st, &own, err, errlen);
    if (rc != BM_OK)
        return rc;
    rc = requeue(st, job_id, owner, 0, next_run_ms, attempts_delta, error, &n, err, errlen);
    if (rc == BM_OK && n == 0)
        rc = not_held(BM_ENOTFOUND, job_id, owner, err, errlen);
    return txn_end(st, own, rc, err, errlen);
}

/*
 * The claim: after the takeover of expired leases, one UPDATE picks the due
 * pending job and marks it running, in this order: the account's priority
 * (higher first); among equal priorities the account whose latest claim is the
 * oldest (accounts.claim_seq, bumped by every claim: accounts take turns, so an
 * account with a due job waits at most one claim per other account of its
 * priority and none starves another); then the most overdue job (run_at). On
 * PostgreSQL the same statement reads
 *   WITH next AS (SELECT p.id FROM jobs p JOIN calendars c ON c.id = p.calendar_id
 *     JOIN accounts a ON a.id = c.account_id WHERE p.state = 0 AND p.run_at <= $1
 *     AND ($4 = 0 OR c.account_id = $4)
 *     AND NOT EXISTS (SELECT 1 FROM jobs r WHERE r.calendar_id = p.calendar_id
 *     AND r.state = 1) ORDER BY a.priority DESC, a.claim_seq, p.run_at, p.id
 *     LIMIT 1 FOR UPDATE OF p SKIP LOCKED)
 *   UPDATE jobs SET ... FROM next WHERE jobs.id = next.id RETURNING ...
 * (concurrent claimers skip each other's rows instead of waiting; a calendar's
 * second running job is refused by UNIQUE(calendar_id, state), which a claimer
 * treats as "nothing due"; claim_seq from a sequence). SQLite has one writer:
 * BEGIN IMMEDIATE serialises claimers, so the subquery and the update see the
 * same rows.
 */
static int claim(bm_store_t *st, int64_t account_id, const char *owner, int64_t now_ms,
                 int64_t lease_ms, bm_job_t *out, char *err, size_t errlen)
{
    int64_t taken_over = 0;
    int rc =
        requeue(st, 0, NULL, now_ms, -1, 0, "lease expired: worker gone", &taken_over, err, errlen);
    if (rc != BM_OK)
        return rc;
    if (taken_over > 0)
        BM_LOG(BM_LOG_WARN, BM_MSG("jobs taken over from workers whose lease expired"),
               BM_KI("jobs", taken_over));
    PREP(s, "UPDATE jobs SET state = 1, lease_owner = ?2, lease_expires = ?1 + ?3,"
            " attempts = attempts + 1"
            " WHERE id = (SELECT p.id FROM jobs p JOIN calendars c ON c.id = p.calendar_id"
            "  JOIN accounts a ON a.id = c.account_id WHERE p.state = 0 AND p.run_at <= ?1"
            "  AND (?4 = 0 OR c.account_id = ?4)"
            "  AND NOT EXISTS (SELECT 1 FROM jobs r WHERE r.calendar_id = p.calendar_id"
            "  AND r.state = 1) ORDER BY a.priority DESC, a.claim_seq, p.run_at, p.id LIMIT 1)"
            " RETURNING " JOB_COLS);
    PREP(t, "UPDATE accounts SET claim_seq = (SELECT max(claim_seq) + 1 FROM accounts)"
            " WHERE id = (SELECT account_id FROM calendars WHERE id = ?)");
    bind_int64(&s, 1, now_ms);
    bind_text(&s, 2, owner);
    bind_int64(&s, 3, lease_ms);
    bind_int64(&s, 4, account_id);
    rc = read_one(st, &s, read_job, out, err, errlen, "claim job");
    if (rc != BM_OK)
        return rc;
    bind_int64(&t, 1, out->calendar_id);
    if ((rc = exec_done(st, &t, err, errlen, "claim job")) != BM_OK)
        bm_job_dispose(out);
    return rc;
}

int bm_store_job_claim_for(bm_store_t *st, int64_t account_id, const char *owner, int64_t now_ms,
                           int64_t lease_ms, bm_job_t *out, char *err, size_t errlen)
{
    if (!sqlite3_get_autocommit(st->db))
        return bm_err(err, errlen, BM_EINVAL, "store: a job claim needs its own transaction");
    int rc = bm_store_begin(st, err, errlen);
    if (rc != BM_OK)
        return rc;
    rc = claim(st, account_id, owner, now_ms, lease_ms, out, err, errlen);
    /* nothing due still commits the takeovers */
    int end = txn_end(st, true, rc == BM_ENOTFOUND ? BM_OK : rc, err, errlen);
    if (end != BM_OK && rc == BM_OK)
        bm_job_dispose(out); /* the claim did not commit */
    return end != BM_OK ? end : rc;
}

int bm_store_job_claim(bm_store_t *st, const char *owner, int64_t now_ms, int64_t lease_ms,
                       bm_job_t *out, char *err, size_t errlen)
{
    return bm_store_job_claim_for(st, 0, owner, now_ms, lease_ms, out, err, errlen);
}

int bm_store_job_done(bm_store_t *st, int64_t job_id, const char *owner, char *err, size_t errlen)
{
    PREP(s, "DELETE FROM jobs WHERE id = ? AND state = 1 AND lease_owner = ?");
    bind_int64(&s, 1, job_id);
    bind_text(&s, 2, owner);
    return not_held(exec_one(st, &s, err, errlen, "finish job"), job_id, owner, err, errlen);
}

int bm_store_job_failed(bm_store_t *st, int64_t job_id, const char *owner, int64_t next_run_ms,
                        const char *error, char *err, size_t errlen)
{
    return requeue_one(st, job_id, owner, next_run_ms < 0 ? 0 : next_run_ms, 0,
                       error != NULL ? error : "failed", err, errlen);
}

int bm_store_job_extend(bm_store_t *st, int64_t job_id, const char *owner, int64_t lease_expires_ms,
                        char *err, size_t errlen)
{
    PREP(s, "UPDATE jobs SET lease_expires = ?3 WHERE id = ?1 AND state = 1 AND lease_owner = ?2");
    bind_int64(&s, 1, job_id);
    bind_text(&s, 2, owner);
    bind_int64(&s, 3, lease_expires_ms);
    return not_held(exec_one(st, &s, err, errlen, "extend job lease"), job_id, owner, err, errlen);
}

int bm_store_job_release(bm_store_t *st, int64_t job_id, const char *owner, char *err,
                         size_t errlen)
{
    /* its run_at was due when it was claimed: it is due now */
    return requeue_one(st, job_id, owner, -1, -1, NULL, err, errlen);
}

int bm_store_jobs_release_dead(bm_store_t *st, int64_t *n, char *err, size_t errlen)
{
    int64_t *ids = NULL;
    char **owners = NULL;
    size_t k = 0, cap = 0;
    int rc = BM_OK, s;
    *n = 0;
    PREP(q, "SELECT id, lease_owner FROM jobs WHERE state = 1 AND lease_owner IS NOT NULL");
    while ((s = step(&q)) == SQLITE_ROW) {
        const char *o = (const char *)sqlite3_column_text(q.s, 1);
        if (!owner_is_dead(o))
            continue;
        if (k == cap) {
            cap = cap ? cap * 2 : 4;
            ids = bm_realloc(ids, cap * sizeof(*ids));
            owners = bm_realloc(owners, cap * sizeof(*owners));
        }
        ids[k] = sqlite3_column_int64(q.s, 0);
        owners[k++] = bm_strdup(o);
    }
    if (s != SQLITE_DONE)
        rc = query_err(st, &q, err, errlen, "read running jobs");
    done(&q);
    for (size_t i = 0; i < k; i++) {
        /* as a release: due at once, the attempt not counted; ENOTFOUND: taken
         * over meanwhile */
        int r = rc == BM_OK ? requeue_one(st, ids[i], owners[i], -1, -1, NULL, err, errlen) : rc;
        if (r == BM_OK)
            (*n)++;
        else if (r != BM_ENOTFOUND)
            rc = r;
        free(owners[i]);
    }
    free(ids);
    free(owners);
    return rc;
}

int bm_store_job_next_due(bm_store_t *st, int64_t *ms, char *err, size_t errlen)
{
    PREP(s, "SELECT min(t) FROM ("
            " SELECT CASE WHEN r.id IS NULL THEN p.run_at"
            "  ELSE max(p.run_at, r.lease_expires) END AS t"
            "  FROM jobs p LEFT JOIN jobs r ON r.calendar_id = p.calendar_id AND r.state = 1"
            "  WHERE p.state = 0"
            " UNION ALL SELECT r.lease_expires FROM jobs r WHERE r.state = 1"
            "  AND NOT EXISTS (SELECT 1 FROM jobs p WHERE p.calendar_id = r.calendar_id"
            "  AND p.state = 0))");
    return read_count(st, &s, ms, err, errlen, "next due job");
}

int bm_store_queue_stats(bm_store_t *st, int64_t *pending, int64_t *running,
                         int64_t *coalesced_total, char *err, size_t errlen)
{
    PREP(s, "SELECT count(*) FILTER (WHERE state = 0), count(*) FILTER (WHERE state = 1),"
            " COALESCE(sum(coalesced), 0) FROM jobs");
    int64_t v[3];
    int rc = read_int64s(st, &s, v, 3, err, errlen, "queue stats");
    if (rc == BM_OK) {
        *pending = v[0];
        *running = v[1];
        *coalesced_total = v[2];
    }
    return rc;
}

void bm_job_dispose(bm_job_t *j)
{
    free(j->reason);
    free(j->lease_owner);
    free(j->last_error);
    memset(j, 0, sizeof(*j));
}

/* ---- watch channels ---- */

#define CHANNEL_COLS        "id, calendar_id, resource_id, expiration, created_at, stopped_at"
#define STRAY_STOP_EVERY_MS "60000" /* a stray is stopped at most once a minute */
#define ORPHAN_AFTER_MS     60000   /* a row never granted this long: its watch answer was lost */

static void read_channel(sqlite3_stmt *s, void *row)
{
    bm_channel_t *c = row;
    memset(c, 0, sizeof(*c));
    c->id = col_dup(s, 0);
    c->calendar_id = sqlite3_column_int64(s, 1);
    c->resource_id = col_dup(s, 2);
    c->expiration = sqlite3_column_int64(s, 3);
    c->created_at = sqlite3_column_int64(s, 4);
    c->stopped_at = sqlite3_column_int64(s, 5);
}

int bm_store_channel_add(bm_store_t *st, const char *id, int64_t calendar_id, int64_t now_ms,
                         char *err, size_t errlen)
{
    PREP(s, "INSERT INTO channels(id, calendar_id, created_at) VALUES(?, ?, ?)");
    bind_text(&s, 1, id);
    bind_int64(&s, 2, calendar_id);
    bind_int64(&s, 3, now_ms);
    int rc = step(&s);
    int ret = BM_OK;
    if (rc == SQLITE_CONSTRAINT && sqlite3_extended_errcode(st->db) == SQLITE_CONSTRAINT_PRIMARYKEY)
        ret = bm_err(err, errlen, BM_EEXIST, "channel %s exists already", id);
    else if (rc != SQLITE_DONE)
        ret = query_err(st, &s, err, errlen, "add channel");
    done(&s);
    return ret;
}

int bm_store_channel_set_granted(bm_store_t *st, const char *id, const char *resource_id,
                                 int64_t expiration_ms, char *err, size_t errlen)
{
    PREP(s, "UPDATE channels SET resource_id = ?2, expiration = ?3 WHERE id = ?1");
    bind_text(&s, 1, id);
    bind_text(&s, 2, resource_id);
    bind_int64(&s, 3, expiration_ms);
    int rc = exec_one(st, &s, err, errlen, "record granted channel");
    return rc == BM_ENOTFOUND ? bm_err(err, errlen, rc, "no channel %s", id) : rc;
}

int bm_store_channel_get(bm_store_t *st, const char *id, bm_channel_t *out, char *err,
                         size_t errlen)
{
    PREP(s, "SELECT " CHANNEL_COLS " FROM channels WHERE id = ?");
    bind_text(&s, 1, id);
    return read_one(st, &s, read_channel, out, err, errlen, "get channel");
}

int bm_store_channel_current(bm_store_t *st, int64_t calendar_id, int64_t now_ms, bm_channel_t *out,
                             char *err, size_t errlen)
{
    PREP(s, "SELECT " CHANNEL_COLS " FROM channels WHERE calendar_id = ?1 AND stopped_at IS NULL"
            " AND resource_id IS NOT NULL AND expiration > ?2"
            " ORDER BY expiration DESC, created_at DESC, id DESC LIMIT 1");
    bind_int64(&s, 1, calendar_id);
    bind_int64(&s, 2, now_ms);
    return read_one(st, &s, read_channel, out, err, errlen, "current channel");
}

int bm_store_channel_stopped(bm_store_t *st, const char *id, int64_t now_ms, char *err,
                             size_t errlen)
{
    PREP(s, "UPDATE channels SET stopped_at = ?2 WHERE id = ?1");
    bind_text(&s, 1, id);
    bind_int64(&s, 2, now_ms);
    int rc = exec_one(st, &s, err, errlen, "stop channel");
    return rc == BM_ENOTFOUND ? bm_err(err, errlen, rc, "no channel %s", id) : rc;
}

int bm_store_channel_stray(bm_store_t *st, const char *id, const char *resource_id, int64_t now_ms,
                           char *err, size_t errlen)
{
    int64_t n = 0;
    PREP(u, "UPDATE channels SET stopped_at = NULL, resource_id = COALESCE(resource_id, ?3),"
            " expiration = min(COALESCE(expiration, ?2), ?2)"
            " WHERE id = ?1 AND stopped_at IS NOT NULL AND COALESCE(resource_id, ?3) IS NOT NULL"
            " AND stopped_at <= ?2 - " STRAY_STOP_EVERY_MS);
    bind_text(&u, 1, id);
    bind_int64(&u, 2, now_ms);
    bind_text(&u, 3, resource_id);
    int rc = count_changes(st, &u, &n, err, errlen, "record stray channel");
    if (rc != BM_OK || n > 0)
        return rc;
    /* unknown: the calendar is the one whose channels watch the same resource */
    PREP(i, "INSERT INTO channels(id, calendar_id, resource_id, expiration, created_at)"
            " SELECT ?1, calendar_id, ?3, ?2, ?2 FROM channels WHERE resource_id = ?3"
            " ORDER BY created_at DESC LIMIT 1 ON CONFLICT(id) DO NOTHING");
    bind_text(&i, 1, id);
    bind_int64(&i, 2, now_ms);
    bind_text(&i, 3, resource_id);
    return exec_done(st, &i, err, errlen, "record stray channel");
}

static void release_channels(void *rows, size_t n)
{
    bm_store_channels_free(rows, n);
}

int bm_store_channels_to_stop(bm_store_t *st, int64_t now_ms, bm_channel_t **out, size_t *n,
                              char *err, size_t errlen)
{
    /* not current: expired, of a disabled calendar, or another granted live
     * channel expires later */
    PREP(s,
         "SELECT " CHANNEL_COLS " FROM channels c WHERE c.stopped_at IS NULL"
         " AND c.resource_id IS NOT NULL AND (c.expiration <= ?1"
         " OR NOT EXISTS (SELECT 1 FROM calendars k WHERE k.id = c.calendar_id AND k.enabled = 1)"
         " OR EXISTS (SELECT 1"
         " FROM channels x WHERE x.calendar_id = c.calendar_id AND x.stopped_at IS NULL"
         " AND x.resource_id IS NOT NULL"
         " AND (x.expiration, x.created_at, x.id) > (c.expiration, c.created_at, c.id)))"
         " ORDER BY c.created_at, c.id");
    bind_int64(&s, 1, now_ms);
    int rc;
    *out = read_rows(st, &s, sizeof(**out), read_channel, release_channels, n, &rc, err, errlen,
                     "channels to stop");
    return rc;
}

int bm_store_channels_of_calendar(bm_store_t *st, int64_t calendar_id, bm_channel_t **out,
                                  size_t *n, char *err, size_t errlen)
{
    PREP(s, "SELECT " CHANNEL_COLS " FROM channels WHERE calendar_id = ?"
            " AND stopped_at IS NULL AND resource_id IS NOT NULL ORDER BY created_at, id");
    bind_int64(&s, 1, calendar_id);
    int rc;
    *out = read_rows(st, &s, sizeof(**out), read_channel, release_channels, n, &rc, err, errlen,
                     "channels of a calendar");
    return rc;
}

int bm_store_channels_purge(bm_store_t *st, int64_t before_ms, int64_t *n, char *err, size_t errlen)
{
    PREP(s, "DELETE FROM channels WHERE (stopped_at IS NOT NULL"
            " AND COALESCE(expiration, created_at) < ?1)"
            " OR (resource_id IS NULL AND created_at < ?1)");
    bind_int64(&s, 1, before_ms);
    return count_changes(st, &s, n, err, errlen, "purge channels");
}

int bm_store_calendar_set_mode(bm_store_t *st, int64_t calendar_id, bm_mode_t mode, char *err,
                               size_t errlen)
{
    /* push: a working channel ends a refusal */
    PREP(s, "INSERT INTO sync_state(calendar_id, mode) VALUES(?1, ?2)"
            " ON CONFLICT(calendar_id) DO UPDATE SET mode = ?2,"
            " watch_refused = CASE WHEN ?2 = 1 THEN NULL ELSE watch_refused END,"
            " watch_retry_at = CASE WHEN ?2 = 1 THEN 0 ELSE watch_retry_at END");
    bind_int64(&s, 1, calendar_id);
    bind_int(&s, 2, (int)mode);
    return exec_done(st, &s, err, errlen, "set calendar mode");
}

int bm_store_calendar_watch_refused(bm_store_t *st, int64_t calendar_id, const char *reason,
                                    int64_t retry_at_ms, char *err, size_t errlen)
{
    PREP(s, "INSERT INTO sync_state(calendar_id, mode, watch_refused, watch_retry_at)"
            " VALUES(?1, 0, ?2, ?3) ON CONFLICT(calendar_id) DO UPDATE SET mode = 0,"
            " watch_refused = ?2, watch_retry_at = ?3");
    bind_int64(&s, 1, calendar_id);
    bind_text(&s, 2, reason);
    bind_int64(&s, 3, retry_at_ms);
    return exec_done(st, &s, err, errlen, "record a refused watch");
}

/* What a notification's channel is: its calendar, its recorded resource id
 * (NULL before the watch answered), when it was made and stopped (0: not). */
typedef struct notified {
    int64_t calendar_id;
    char *resource_id;
    int64_t created_at, stopped_at;
} notified_t;

static void read_notified(sqlite3_stmt *s, void *row)
{
    notified_t *n = row;
    n->calendar_id = sqlite3_column_int64(s, 0);
    n->resource_id = col_dup(s, 1);
    n->created_at = sqlite3_column_int64(s, 2);
    n->stopped_at = sqlite3_column_int64(s, 3);
}

/* A row whose watch answer never came (a crash between the watch and its
 * commit) names the resource now, expired: due for a stop, never current. */
static int orphan_granted(bm_store_t *st, const char *id, const char *resource_id, int64_t now_ms,
                          char *err, size_t errlen)
{
    PREP(s, "UPDATE channels SET resource_id = ?2, expiration = ?3"
            " WHERE id = ?1 AND resource_id IS NULL AND stopped_at IS NULL");
    bind_text(&s, 1, id);
    bind_text(&s, 2, resource_id);
    bind_int64(&s, 3, now_ms);
    return exec_done(st, &s, err, errlen, "record orphan channel");
}

int bm_store_notification_enqueue(bm_store_t *st, const char *channel_id, const char *resource_id,
                                  int64_t now_ms, int64_t debounce_ms, int64_t max_delay_ms,
                                  int64_t grace_ms, int *status, char *err, size_t errlen)
{
    notified_t ch = {0};
    bool sync = true;
    /* A replaced or expired channel is due for a stop already (to_stop): only a
     * stopped one (or an orphan) needs recording. */
    PREP(s, "SELECT calendar_id, resource_id, created_at, COALESCE(stopped_at, 0)"
            " FROM channels WHERE id = ?");
    bind_text(&s, 1, channel_id);
    int rc = read_one(st, &s, read_notified, &ch, err, errlen, "find channel");
    if (rc == BM_ENOTFOUND) {
        *status = 404;
        rc = resource_id != NULL
                 ? bm_store_channel_stray(st, channel_id, resource_id, now_ms, err, errlen)
                 : BM_OK;
        goto out;
    }
    if (rc != BM_OK)
        goto out;
    if (ch.resource_id != NULL && (resource_id == NULL || strcmp(ch.resource_id, resource_id))) {
        *status = 400;
        goto out;
    }
    if (ch.stopped_at > 0 && ch.stopped_at <= now_ms - grace_ms) { /* past the seam: a stray */
        sync = false;
        rc = bm_store_channel_stray(st, channel_id, resource_id, now_ms, err, errlen);
    } else if (ch.stopped_at == 0 && ch.resource_id == NULL && resource_id != NULL &&
               ch.created_at < now_ms - ORPHAN_AFTER_MS) {
        rc = orphan_granted(st, channel_id, resource_id, now_ms, err, errlen);
    }
    if (rc == BM_OK && sync) /* a stopped channel within the grace: a message on its way */
        rc = bm_store_job_enqueue(st, ch.calendar_id, "push", now_ms, debounce_ms, max_delay_ms,
                                  NULL, err, errlen);
    if (rc == BM_OK)
        *status = 200;
out:
    free(ch.resource_id);
    return rc;
}

void bm_channel_dispose(bm_channel_t *c)
{
    free(c->id);
    free(c->resource_id);
    memset(c, 0, sizeof(*c));
}

void bm_store_channels_free(bm_channel_t *c, size_t n)
{
    for (size_t i = 0; i < n; i++)
        bm_channel_dispose(&c[i]);
    free(c);
}

/* ---- serve's gauges ---- */

int bm_store_serve_gauges(bm_store_t *st, int64_t now_ms, bm_serve_gauges_t *g, char *err,
                          size_t errlen)
{
    PREP(s, "SELECT (SELECT count(*) FROM jobs WHERE state = 0),"
            " (SELECT count(*) FROM jobs WHERE state = 1),"
            " (SELECT count(*) FROM outbox), (SELECT count(*) FROM dead_letters),"
            " (SELECT count(*) FROM accounts WHERE state = 0 AND breaker_until <= ?1 / 1000),"
            " (SELECT count(*) FROM accounts WHERE state <> 0),"
            " (SELECT count(*) FROM accounts WHERE state = 0 AND breaker_until > ?1 / 1000),"
            " (SELECT count(*) FROM calendars c JOIN sync_state s ON s.calendar_id = c.id"
            "   WHERE c.enabled = 1 AND s.mode = 1),"
            " (SELECT count(*) FROM calendars c LEFT JOIN sync_state s ON s.calendar_id = c.id"
            "   WHERE c.enabled = 1 AND COALESCE(s.mode, 0) = 0),"
            " (SELECT COALESCE(min(expiration), 0) FROM channels"
            "   WHERE stopped_at IS NULL AND resource_id IS NOT NULL AND expiration > ?1),"
            " (SELECT count(*) FROM calendars c JOIN sync_state s ON s.calendar_id = c.id"
            "   WHERE c.enabled = 1 AND s.watch_refused IS NOT NULL)");
    bind_int64(&s, 1, now_ms);
    int64_t v[11];
    int rc = read_int64s(st, &s, v, 11, err, errlen, "serve gauges");
    if (rc == BM_OK)
        *g = (bm_serve_gauges_t){.jobs_pending = v[0],
                                 .jobs_running = v[1],
                                 .outbox = v[2],
                                 .dead_letters = v[3],
                                 .accounts_ok = v[4],
                                 .accounts_needs_login = v[5],
                                 .accounts_breaker_open = v[6],
                                 .calendars_push = v[7],
                                 .calendars_poll = v[8],
                                 .earliest_channel_expiry_ms = v[9],
                                 .calendars_refused = v[10]};
    return rc;
}
