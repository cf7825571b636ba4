/*
 * emulator/persist.c: optional SQLite persistence (--db FILE).
 *
 * Write-through: every mutation of the world upserts its row right away, so a
 * restarted emulator finds users, calendars (with their sync generation and
 * sequence), events (with their change sequence: the sync history is rebuilt
 * from it), refresh/access tokens and channels. Errors are logged, never fatal
 * once running. The file is created with mode 0600.
 */
#include "emulator/emulator.h"

#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static sqlite3 *db;
static bool loading;

enum {
    S_META,
    S_USER,
    S_CAL,
    S_EVENT,
    S_TOKEN,
    S_TOKEN_DEL,
    S_TOKENS_USER_DEL,
    S_CHAN,
    S_CHAN_DEL,
    N_STMTS
};

static sqlite3_stmt *stmts[N_STMTS];

static const char *const sql_text[N_STMTS] = {
    [S_META] = "INSERT INTO meta(key, value) VALUES(?1, ?2) ON CONFLICT(key) DO UPDATE SET "
               "value = excluded.value",
    [S_USER] = "INSERT INTO users(email, quota_rpm, quota_status) VALUES(?1, ?2, ?3) "
               "ON CONFLICT(email) DO UPDATE SET quota_rpm = excluded.quota_rpm, "
               "quota_status = excluded.quota_status",
    [S_CAL] = "INSERT INTO calendars(id, owner, summary, tz, resource_id, is_primary, gen, seq, "
              "updated_ms) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) ON CONFLICT(id) DO UPDATE "
              "SET summary = excluded.summary, tz = excluded.tz, gen = excluded.gen, "
              "seq = excluded.seq, updated_ms = excluded.updated_ms",
    [S_EVENT] = "INSERT INTO events(cal, id, ordinal, seq, res) VALUES(?1, ?2, ?3, ?4, ?5) "
                "ON CONFLICT(cal, id) DO UPDATE SET seq = excluded.seq, res = excluded.res",
    [S_TOKEN] = "INSERT INTO tokens(token, kind, email, scope, expires_ms) VALUES(?1, ?2, ?3, ?4, "
                "?5) ON CONFLICT(token) DO UPDATE SET expires_ms = excluded.expires_ms",
    [S_TOKEN_DEL] = "DELETE FROM tokens WHERE token = ?1",
    [S_TOKENS_USER_DEL] = "DELETE FROM tokens WHERE email = ?1",
    [S_CHAN] = "INSERT INTO channels(id, resource_id, resource_uri, token, address, cal_id, email, "
               "expiration_ms, msg_no) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) "
               "ON CONFLICT(id) DO UPDATE SET msg_no = excluded.msg_no",
    [S_CHAN_DEL] = "DELETE FROM channels WHERE id = ?1",
};

static const char schema[] =
    "PRAGMA journal_mode = WAL;"
    "PRAGMA synchronous = NORMAL;"
    "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS users(email TEXT PRIMARY KEY, quota_rpm INTEGER NOT NULL, "
    "  quota_status INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS calendars(id TEXT PRIMARY KEY, owner TEXT NOT NULL, "
    "  summary TEXT NOT NULL, tz TEXT NOT NULL, resource_id TEXT NOT NULL, "
    "  is_primary INTEGER NOT NULL, gen INTEGER NOT NULL, seq INTEGER NOT NULL, "
    "  updated_ms INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS events(cal TEXT NOT NULL, id TEXT NOT NULL, "
    "  ordinal INTEGER NOT NULL, seq INTEGER NOT NULL, res TEXT NOT NULL, PRIMARY KEY(cal, id));"
    "CREATE TABLE IF NOT EXISTS tokens(token TEXT PRIMARY KEY, kind TEXT NOT NULL, "
    "  email TEXT NOT NULL, scope TEXT, expires_ms INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS channels(id TEXT PRIMARY KEY, resource_id TEXT NOT NULL, "
    "  resource_uri TEXT NOT NULL, token TEXT, address TEXT NOT NULL, cal_id TEXT NOT NULL, "
    "  email TEXT NOT NULL, expiration_ms INTEGER NOT NULL, msg_no INTEGER NOT NULL);";

static void db_warn(const char *what)
{
    BM_LOG(BM_LOG_WARN, BM_MSG("sqlite write failed"), BM_KS("what", what),
           BM_KS("error", sqlite3_errmsg(db)));
}

static void step(int which, const char *what)
{
    sqlite3_stmt *s = stmts[which];
    if (sqlite3_step(s) != SQLITE_DONE)
        db_warn(what);
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
}

static void bind_text(sqlite3_stmt *s, int i, const char *v)
{
    if (v == NULL)
        sqlite3_bind_null(s, i);
    else
        sqlite3_bind_text(s, i, v, -1, SQLITE_TRANSIENT);
}

int emu_persist_open(const char *path, char *err, size_t errlen)
{
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return bm_err(err, errlen, BM_EIO, "%s: %s", path, strerror(errno));
    if (fchmod(fd, 0600) != 0) {
        int e = errno;
        close(fd);
        return bm_err(err, errlen, BM_EIO, "chmod %s: %s", path, strerror(e));
    }
    close(fd);
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) {
        int rc = bm_err(err, errlen, BM_ESTORE, "%s: %s", path,
                        db != NULL ? sqlite3_errmsg(db) : "cannot open");
        sqlite3_close(db);
        db = NULL;
        return rc;
    }
    char *msg = NULL;
    if (sqlite3_exec(db, schema, NULL, NULL, &msg) != SQLITE_OK) {
        int rc = bm_err(err, errlen, BM_ESTORE, "%s: schema: %s", path, msg != NULL ? msg : "?");
        sqlite3_free(msg);
        emu_persist_close();
        return rc;
    }
    for (int i = 0; i < N_STMTS; i++) {
        if (sqlite3_prepare_v2(db, sql_text[i], -1, &stmts[i], NULL) != SQLITE_OK) {
            int rc = bm_err(err, errlen, BM_ESTORE, "prepare: %s", sqlite3_errmsg(db));
            emu_persist_close();
            return rc;
        }
    }
    return BM_OK;
}

void emu_persist_close(void)
{
    if (db == NULL)
        return;
    for (int i = 0; i < N_STMTS; i++) {
        sqlite3_finalize(stmts[i]);
        stmts[i] = NULL;
    }
    sqlite3_close(db);
    db = NULL;
}

void emu_persist_meta(void)
{
    if (db == NULL || loading)
        return;
    char clock[32];
    snprintf(clock, sizeof(clock), "%lld", (long long)emu.world.etag_clock);
    bind_text(stmts[S_META], 1, "world_id");
    bind_text(stmts[S_META], 2, emu.world.world_id);
    step(S_META, "meta");
    bind_text(stmts[S_META], 1, "etag_clock");
    bind_text(stmts[S_META], 2, clock);
    step(S_META, "meta");
}

void emu_persist_user(const emu_user_t *u)
{
    if (db == NULL || loading)
        return;
    sqlite3_stmt *s = stmts[S_USER];
    bind_text(s, 1, u->email);
    sqlite3_bind_int(s, 2, u->quota_rpm);
    sqlite3_bind_int(s, 3, u->quota_status);
    step(S_USER, "user");
}

void emu_persist_calendar(const emu_calendar_t *cal)
{
    if (db == NULL || loading)
        return;
    sqlite3_stmt *s = stmts[S_CAL];
    bind_text(s, 1, cal->id);
    bind_text(s, 2, cal->owner->email);
    bind_text(s, 3, cal->summary);
    bind_text(s, 4, cal->time_zone);
    bind_text(s, 5, cal->resource_id);
    sqlite3_bind_int(s, 6, cal->primary);
    sqlite3_bind_int64(s, 7, (sqlite3_int64)cal->gen);
    sqlite3_bind_int64(s, 8, (sqlite3_int64)cal->seq);
    sqlite3_bind_int64(s, 9, cal->updated_ms);
    step(S_CAL, "calendar");
}

void emu_persist_event(const emu_event_t *ev)
{
    if (db == NULL || loading)
        return;
    sqlite3_stmt *s = stmts[S_EVENT];
    size_t len;
    const char *json = emu_event_json((emu_event_t *)ev, &len);
    bind_text(s, 1, ev->cal->id);
    bind_text(s, 2, ev->id);
    sqlite3_bind_int64(s, 3, (sqlite3_int64)ev->ordinal);
    sqlite3_bind_int64(s, 4, (sqlite3_int64)ev->seq);
    sqlite3_bind_text(s, 5, json, (int)len, SQLITE_TRANSIENT);
    step(S_EVENT, "event");
    emu_persist_meta(); /* the etag clock moved */
}

void emu_persist_token(const emu_token_t *t, const char *kind)
{
    if (db == NULL || loading || t == NULL)
        return;
    sqlite3_stmt *s = stmts[S_TOKEN];
    bind_text(s, 1, t->token);
    bind_text(s, 2, kind);
    bind_text(s, 3, t->user->email);
    bind_text(s, 4, t->scope);
    sqlite3_bind_int64(s, 5, t->expires_ms);
    step(S_TOKEN, "token");
}

void emu_persist_token_del(const char *token)
{
    if (db == NULL || loading)
        return;
    bind_text(stmts[S_TOKEN_DEL], 1, token);
    step(S_TOKEN_DEL, "token delete");
}

void emu_persist_user_tokens_del(const emu_user_t *u)
{
    if (db == NULL || loading)
        return;
    bind_text(stmts[S_TOKENS_USER_DEL], 1, u->email);
    step(S_TOKENS_USER_DEL, "token delete");
}

void emu_persist_channel(const emu_channel_t *ch)
{
    if (db == NULL || loading)
        return;
    sqlite3_stmt *s = stmts[S_CHAN];
    bind_text(s, 1, ch->id);
    bind_text(s, 2, ch->resource_id);
    bind_text(s, 3, ch->resource_uri);
    bind_text(s, 4, ch->token);
    bind_text(s, 5, ch->address);
    bind_text(s, 6, ch->cal_id);
    bind_text(s, 7, ch->user->email);
    sqlite3_bind_int64(s, 8, ch->expiration_ms);
    sqlite3_bind_int64(s, 9, (sqlite3_int64)ch->msg_no);
    step(S_CHAN, "channel");
}

void emu_persist_channel_del(const char *id)
{
    if (db == NULL || loading)
        return;
    bind_text(stmts[S_CHAN_DEL], 1, id);
    step(S_CHAN_DEL, "channel delete");
}

void emu_persist_wipe(void)
{
    if (db == NULL)
        return;
    char *msg = NULL;
    if (sqlite3_exec(db,
                     "BEGIN; DELETE FROM meta; DELETE FROM users; DELETE FROM calendars; "
                     "DELETE FROM events; DELETE FROM tokens; DELETE FROM channels; COMMIT;",
                     NULL, NULL, &msg) != SQLITE_OK) {
        BM_LOG(BM_LOG_WARN, BM_MSG("sqlite wipe failed"), BM_KS("error", msg));
        sqlite3_free(msg);
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    }
}

void emu_persist_begin(void)
{
    if (db != NULL && !loading)
        sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
}

void emu_persist_commit(void)
{
    if (db != NULL && !loading)
        sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
}

/* ---------------------------------------------------------------- loading */

static const char *col(sqlite3_stmt *s, int i)
{
    const unsigned char *t = sqlite3_column_text(s, i);
    return t != NULL ? (const char *)t : NULL;
}

static int cmp_log(const void *a, const void *b)
{
    const emu_logent_t *x = a, *y = b;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static int load_rows(const char *sql, int (*row)(sqlite3_stmt *, char *, size_t), char *err,
                     size_t errlen)
{
    sqlite3_stmt *s = NULL;
    int rc = BM_OK;
    if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK)
        return bm_err(err, errlen, BM_ESTORE, "load: %s", sqlite3_errmsg(db));
    int st;
    while ((st = sqlite3_step(s)) == SQLITE_ROW) {
        rc = row(s, err, errlen);
        if (rc != BM_OK)
            goto out;
    }
    if (st != SQLITE_DONE)
        rc = bm_err(err, errlen, BM_ESTORE, "load: %s", sqlite3_errmsg(db));
out:
    sqlite3_finalize(s);
    return rc;
}

static int row_meta(sqlite3_stmt *s, char *err, size_t errlen)
{
    (void)err;
    (void)errlen;
    const char *k = col(s, 0), *v = col(s, 1);
    if (k == NULL || v == NULL)
        return BM_OK;
    if (strcmp(k, "world_id") == 0)
        snprintf(emu.world.world_id, sizeof(emu.world.world_id), "%s", v);
    else if (strcmp(k, "etag_clock") == 0)
        emu.world.etag_clock = strtoll(v, NULL, 10);
    return BM_OK;
}

static int row_user(sqlite3_stmt *s, char *err, size_t errlen)
{
    const char *email = col(s, 0);
    if (email == NULL || emu_user_find(email) != NULL)
        return bm_err(err, errlen, BM_ESTORE, "load: bad user row");
    emu_user_t *u = bm_calloc(1, sizeof(*u));
    u->email = bm_strdup(email);
    u->quota_rpm = sqlite3_column_int(s, 1);
    u->quota_status = sqlite3_column_int(s, 2);
    emu_map_put(&emu.world.users, u->email, u);
    return BM_OK;
}

static int row_cal(sqlite3_stmt *s, char *err, size_t errlen)
{
    emu_user_t *u = emu_user_find(col(s, 1) != NULL ? col(s, 1) : "");
    emu_calendar_t *cal;
    if (u == NULL || col(s, 0) == NULL ||
        emu_calendar_create(u, col(s, 0), col(s, 2), col(s, 3), &cal) != BM_OK)
        return bm_err(err, errlen, BM_ESTORE, "load: bad calendar row");
    free(cal->resource_id);
    cal->resource_id = bm_strdup(col(s, 4) != NULL ? col(s, 4) : "");
    if (sqlite3_column_int(s, 5) && !cal->primary) {
        if (u->primary != NULL)
            u->primary->primary = false;
        u->primary = cal;
        cal->primary = true;
    }
    cal->gen = (uint64_t)sqlite3_column_int64(s, 6);
    cal->seq = (uint64_t)sqlite3_column_int64(s, 7);
    cal->updated_ms = sqlite3_column_int64(s, 8);
    return BM_OK;
}

static int row_event(sqlite3_stmt *s, char *err, size_t errlen)
{
    emu_calendar_t *cal = emu_calendar_find(col(s, 0) != NULL ? col(s, 0) : "");
    const char *id = col(s, 1);
    const char *json = col(s, 4);
    jv_t *res = NULL;
    if (cal == NULL || id == NULL || json == NULL ||
        emu_json_parse(json, strlen(json), &res, err, errlen) != BM_OK)
        return bm_err(err, errlen, BM_ESTORE, "load: bad event row");
    emu_event_t *ev = emu_event_add(cal, id, res);
    ev->seq = (uint64_t)sqlite3_column_int64(s, 3);
    if (cal->n_log == cal->cap_log) {
        cal->cap_log = cal->cap_log ? cal->cap_log * 2 : 256;
        cal->log = bm_realloc(cal->log, sizeof(*cal->log) * cal->cap_log);
    }
    cal->log[cal->n_log].seq = ev->seq;
    cal->log[cal->n_log].ev = ev;
    cal->n_log++;
    return BM_OK;
}

static int row_token(sqlite3_stmt *s, char *err, size_t errlen)
{
    (void)err;
    (void)errlen;
    const char *tok = col(s, 0), *kind = col(s, 1);
    emu_user_t *u = emu_user_find(col(s, 2) != NULL ? col(s, 2) : "");
    if (tok == NULL || kind == NULL || u == NULL)
        return BM_OK;
    emu_map_t *m = strcmp(kind, "refresh") == 0 ? &emu.world.refresh : &emu.world.access;
    emu_token_t *t = emu_token_new(m, "", u, col(s, 3), 0, tok);
    t->expires_ms = sqlite3_column_int64(s, 4);
    return BM_OK;
}

static int row_channel(sqlite3_stmt *s, char *err, size_t errlen)
{
    (void)err;
    (void)errlen;
    emu_user_t *u = emu_user_find(col(s, 6) != NULL ? col(s, 6) : "");
    if (u == NULL || col(s, 0) == NULL || col(s, 1) == NULL || col(s, 2) == NULL ||
        col(s, 4) == NULL || col(s, 5) == NULL)
        return BM_OK;
    emu_channel_t *ch = bm_calloc(1, sizeof(*ch));
    ch->id = bm_strdup(col(s, 0));
    ch->resource_id = bm_strdup(col(s, 1));
    ch->resource_uri = bm_strdup(col(s, 2));
    ch->token = bm_strdup(col(s, 3));
    ch->address = bm_strdup(col(s, 4));
    ch->cal_id = bm_strdup(col(s, 5));
    ch->user = u;
    ch->expiration_ms = sqlite3_column_int64(s, 7);
    ch->msg_no = (uint64_t)sqlite3_column_int64(s, 8);
    emu_world_t *w = &emu.world;
    if (w->n_channels == w->cap_channels) {
        w->cap_channels = w->cap_channels ? w->cap_channels * 2 : 8;
        w->channels = bm_realloc(w->channels, sizeof(*w->channels) * w->cap_channels);
    }
    w->channels[w->n_channels++] = ch;
    return BM_OK;
}

int emu_persist_load(char *err, size_t errlen)
{
    if (db == NULL)
        return BM_OK;
    loading = true;
    int rc = load_rows("SELECT key, value FROM meta", row_meta, err, errlen);
    if (rc == BM_OK)
        rc = load_rows("SELECT email, quota_rpm, quota_status FROM users ORDER BY rowid", row_user,
                       err, errlen);
    if (rc == BM_OK)
        rc = load_rows("SELECT id, owner, summary, tz, resource_id, is_primary, gen, seq, "
                       "updated_ms FROM calendars ORDER BY is_primary DESC, rowid",
                       row_cal, err, errlen);
    if (rc == BM_OK)
        rc = load_rows("SELECT cal, id, ordinal, seq, res FROM events ORDER BY cal, ordinal",
                       row_event, err, errlen);
    if (rc == BM_OK)
        rc = load_rows("SELECT token, kind, email, scope, expires_ms FROM tokens", row_token, err,
                       errlen);
    if (rc == BM_OK)
        rc = load_rows("SELECT id, resource_id, resource_uri, token, address, cal_id, email, "
                       "expiration_ms, msg_no FROM channels",
                       row_channel, err, errlen);
    loading = false;
    if (rc != BM_OK)
        return rc;
    for (size_t i = 0; i < emu.world.calendars.cap; i++) {
        emu_calendar_t *cal = emu.world.calendars.vals[i];
        if (emu.world.calendars.keys[i] != NULL && cal->n_log > 1)
            qsort(cal->log, cal->n_log, sizeof(*cal->log), cmp_log);
    }
    emu_persist_meta(); /* a new db remembers the world id from now on */
    return BM_OK;
}
