/* tests/core/test_store.c: file mode, migrations from older schemas, accounts,
 * calendars, targets, sync state, leases, audit runs and the sync log read back. */
#include "core/store.h"
#include "core/util.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir[64], db[128];
static char err[512];

static void setup(void)
{
    strcpy(dir, "/tmp/bm_test_store_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(db, sizeof(db), "%s/bm.db", dir);
}

static void teardown(void)
{
    char cmd[160];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    ck_assert_int_eq(system(cmd), 0);
}

static bm_store_t *open_db(void)
{
    bm_store_t *st = NULL;
    ck_assert_msg(bm_store_open(db, &st, err, sizeof(err)) == BM_OK, "%s", err);
    return st;
}

START_TEST(database_is_created_0600_in_wal_mode)
{
    bm_store_t *st = open_db();
    struct stat sb;
    ck_assert_int_eq(stat(db, &sb), 0);
    ck_assert_int_eq(sb.st_mode & 0777, 0600);
    ck_assert_int_eq(bm_store_schema_version(st), BM_STORE_SCHEMA_VERSION);
    ck_assert_int_eq(bm_store_account_add(st, "w", NULL, NULL, 0, NULL, err, sizeof(err)), BM_OK);
    char wal[160];
    snprintf(wal, sizeof(wal), "%s-wal", db);
    ck_assert_int_eq(stat(wal, &sb), 0); /* WAL mode writes a -wal file */
    ck_assert_int_eq(sb.st_mode & 0777, 0600);
    bm_store_close(st);
}
END_TEST

START_TEST(old_schema_migrates_forward_keeping_data)
{
    bm_store_t *st = NULL;
    int64_t acc, cal;
    ck_assert_int_eq(bm_store_open_at(db, 1, &st, err, sizeof(err)), BM_OK);
    ck_assert_int_eq(bm_store_schema_version(st), 1);
    ck_assert_int_eq(bm_store_account_add(st, "work", "me@work.example",
                                          (const unsigned char *)"\x01\x02", 2, &acc, err,
                                          sizeof(err)),
                     BM_OK);
    ck_assert_int_eq(bm_store_calendar_upsert(st, acc, "me@work.example", "Work", "UTC", "owner",
                                              true, &cal, err, sizeof(err)),
                     BM_OK);
    bm_store_close(st);

    st = open_db();
    ck_assert_int_eq(bm_store_schema_version(st), BM_STORE_SCHEMA_VERSION);
    bm_account_t a;
    ck_assert_int_eq(bm_store_account_get(st, "work", &a, err, sizeof(err)), BM_OK);
    ck_assert_str_eq(a.email, "me@work.example");
    ck_assert_uint_eq(a.refresh_token_enc_len, 2);
    ck_assert_int_eq(a.breaker_failures, 0); /* schema 3's columns, with their defaults */
    ck_assert_int_eq(a.breaker_until, 0);
    ck_assert_int_eq(bm_store_account_set_breaker(st, a.id, 2, 12345, err, sizeof(err)), BM_OK);
    bm_account_dispose(&a);
    ck_assert_int_eq(bm_store_account_get(st, "work", &a, err, sizeof(err)), BM_OK);
    ck_assert_int_eq(a.breaker_failures, 2);
    ck_assert_int_eq(a.breaker_until, 12345);
    bm_account_dispose(&a);
    bm_calendar_t c;
    ck_assert_int_eq(bm_store_calendar_get(st, cal, &c, err, sizeof(err)), BM_OK);
    ck_assert_str_eq(c.summary, "Work");
    bm_calendar_dispose(&c);
    bm_store_close(st);
}
END_TEST

START_TEST(schema_5_keeps_what_blocks_want)
{
    /* Schema 5 renamed blocks.shape to blocks.wanted: a block recorded before
     * keeps what it wants. */
    bm_store_t *st = NULL;
    int64_t acc, cal;
    ck_assert_int_eq(bm_store_open_at(db, 4, &st, err, sizeof(err)), BM_OK);
    ck_assert_int_eq(bm_store_account_add(st, "w", NULL, NULL, 0, &acc, err, sizeof(err)), BM_OK);
    ck_assert_int_eq(
        bm_store_calendar_upsert(st, acc, "w@x", "W", "UTC", "owner", true, &cal, err, sizeof(err)),
        BM_OK);
    bm_store_close(st);
    char cmd[512];
    snprintf(cmd, sizeof(cmd),
             "sqlite3 %s \"INSERT INTO blocks(target_calendar_id, block_id, source_calendar_id,"
             " source_event_id, shape, body) VALUES(%lld, 'blk1', 9, 'ev', 'shape|n=Busy', '{}')\"",
             db, (long long)cal);
    if (system(cmd) != 0)
        return; /* no sqlite3 shell: nothing to check */
    st = open_db();
    bm_block_t b = {0};
    ck_assert_int_eq(bm_store_block_get(st, cal, "blk1", &b, err, sizeof(err)), BM_OK);
    ck_assert_str_eq(b.wanted, "shape|n=Busy");
    bm_block_dispose(&b);
    bm_store_close(st);
}
END_TEST

START_TEST(opening_again_keeps_the_locks_of_open_connections)
{
    /* Closing any descriptor of a file drops every POSIX lock the process holds
     * on it: a second open in the process must not pull the first connection's
     * write lock (another process would then write at the same time). */
    bm_store_t *a = open_db(), *b = NULL;
    ck_assert_int_eq(bm_store_begin(a, err, sizeof(err)), BM_OK); /* holds the write lock */
    ck_assert_int_eq(bm_store_open(db, &b, err, sizeof(err)), BM_OK);
    char cmd[512];
    snprintf(cmd, sizeof(cmd),
             "sqlite3 -cmd '.timeout 0' %s 'BEGIN IMMEDIATE; COMMIT;' >/dev/null 2>&1", db);
    int st = system(cmd);
    if (WIFEXITED(st) && WEXITSTATUS(st) == 127)
        return; /* no sqlite3 shell: nothing to check */
    ck_assert_msg(!(WIFEXITED(st) && WEXITSTATUS(st) == 0),
                  "another process took the write lock the first connection holds");
    bm_store_rollback(a);
    bm_store_close(b);
    bm_store_close(a);
}
END_TEST

START_TEST(newer_schema_is_refused)
{
    bm_store_t *st = open_db();
    bm_store_close(st);
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "sqlite3 %s 'PRAGMA user_version = 99' 2>/dev/null", db);
    if (system(cmd) != 0)
        return; /* no sqlite3 shell: nothing to check */
    ck_assert_int_eq(bm_store_open(db, &st, err, sizeof(err)), BM_ESTORE);
    ck_assert_ptr_nonnull(strstr(err, "newer"));
}
END_TEST

START_TEST(accounts_are_unique_by_name)
{
    bm_store_t *st = open_db();
    int64_t id;
    ck_assert_int_eq(bm_store_account_add(st, "a", NULL, NULL, 0, &id, err, sizeof(err)), BM_OK);
    ck_assert_int_eq(bm_store_account_add(st, "a", NULL, NULL, 0, NULL, err, sizeof(err)),
                     BM_EEXIST);
    ck_assert_int_eq(bm_store_account_set_state(st, id, BM_ACCOUNT_NEEDS_LOGIN, err, sizeof(err)),
                     BM_OK);
    bm_account_t a;
    ck_assert_int_eq(bm_store_account_get(st, "a", &a, err, sizeof(err)), BM_OK);
    ck_assert_int_eq(a.state, BM_ACCOUNT_NEEDS_LOGIN);
    bm_account_dispose(&a);
    ck_assert_int_eq(bm_store_account_get(st, "zz", &a, err, sizeof(err)), BM_ENOTFOUND);
    bm_store_close(st);
}
END_TEST

START_TEST(targets_are_enabled_group_members_that_receive)
{
    bm_store_t *st = open_db();
    int64_t acc, c1, c2, c3, c4;
    ck_assert_int_eq(bm_store_account_add(st, "a", NULL, NULL, 0, &acc, err, sizeof(err)), BM_OK);
    bm_store_calendar_upsert(st, acc, "one", "1", NULL, NULL, false, &c1, err, sizeof(err));
    bm_store_calendar_upsert(st, acc, "two", "2", NULL, NULL, false, &c2, err, sizeof(err));
    bm_store_calendar_upsert(st, acc, "three", "3", NULL, NULL, false, &c3, err, sizeof(err));
    bm_store_calendar_upsert(st, acc, "four", "4", NULL, NULL, false, &c4, err, sizeof(err));
    bm_store_calendar_set_enabled(st, c1, true, NULL, BM_ROLE_BOTH, err, sizeof(err));
    bm_store_calendar_set_enabled(st, c2, true, NULL, BM_ROLE_TARGET, err, sizeof(err));
    bm_store_calendar_set_enabled(st, c3, true, NULL, BM_ROLE_SOURCE, err, sizeof(err));
    bm_store_calendar_set_enabled(st, c4, true, "other", BM_ROLE_BOTH, err, sizeof(err));

    bm_calendar_t self, *t = NULL;
    size_t n = 0;
    ck_assert_int_eq(bm_store_calendar_get(st, c3, &self, err, sizeof(err)), BM_OK);
    ck_assert_int_eq(bm_store_calendar_targets(st, &self, &t, &n, err, sizeof(err)), BM_OK);
    ck_assert_uint_eq(n, 2); /* one (both) and two (target); not itself, not another group */
    ck_assert_str_eq(t[0].gcal_id, "one");
    ck_assert_str_eq(t[1].gcal_id, "two");
    bm_store_calendars_free(t, n);
    bm_calendar_dispose(&self);

    /* a rediscovery keeps enabled/group/role */
    ck_assert_int_eq(bm_store_calendar_upsert(st, acc, "four", "Four!", "UTC", "owner", false, NULL,
                                              err, sizeof(err)),
                     BM_OK);
    ck_assert_int_eq(bm_store_calendar_get(st, c4, &self, err, sizeof(err)), BM_OK);
    ck_assert_str_eq(self.summary, "Four!");
    ck_assert_str_eq(self.group_name, "other");
    ck_assert(self.enabled);
    bm_calendar_dispose(&self);
    bm_store_close(st);
}
END_TEST

START_TEST(sync_state_round_trips)
{
    bm_store_t *st = open_db();
    int64_t acc, c1;
    bm_store_account_add(st, "a", NULL, NULL, 0, &acc, err, sizeof(err));
    bm_store_calendar_upsert(st, acc, "one", "1", NULL, NULL, false, &c1, err, sizeof(err));
    ck_assert_int_eq(bm_store_sync_state_save(st, c1, "tok1", true, "k1", err, sizeof(err)), BM_OK);
    ck_assert_int_eq(bm_store_sync_state_save(st, c1, "tok1", false, "k2", err, sizeof(err)),
                     BM_OK); /* an incremental listing keeps the full one's plan key */
    ck_assert_int_eq(bm_store_sync_result(st, c1, "ok", NULL, err, sizeof(err)), BM_OK);
    bm_calendar_t c;
    bm_store_calendar_get(st, c1, &c, err, sizeof(err));
    ck_assert_str_eq(c.sync_token, "tok1");
    ck_assert_int_gt(c.last_full_sync, 0);
    ck_assert_int_gt(c.last_incr_sync, 0);
    ck_assert_str_eq(c.plan_key, "k1");
    ck_assert_str_eq(c.last_result, "ok");
    bm_calendar_dispose(&c);
    ck_assert_int_eq(bm_store_sync_state_reset(st, c1, err, sizeof(err)), BM_OK);
    bm_store_calendar_get(st, c1, &c, err, sizeof(err));
    ck_assert_ptr_null(c.sync_token);
    bm_calendar_dispose(&c);
    bm_store_close(st);
}
END_TEST

START_TEST(lease_excludes_live_owners_only)
{
    bm_store_t *st = open_db();
    char host[256], me[300], dead[300];
    gethostname(host, sizeof(host));
    snprintf(me, sizeof(me), "%d@%s", (int)getpid(), host);
    ck_assert_int_eq(bm_store_lease_take(st, "cal:1", me, 60, err, sizeof(err)), BM_OK);
    ck_assert_int_eq(bm_store_lease_take(st, "cal:1", me, 60, err, sizeof(err)), BM_OK);
    ck_assert_int_eq(bm_store_lease_take(st, "cal:1", "1@elsewhere", 60, err, sizeof(err)),
                     BM_EBUSY);
    ck_assert_int_eq(bm_store_lease_release(st, "cal:1", me), BM_OK);
    ck_assert_int_eq(bm_store_lease_take(st, "cal:1", "1@elsewhere", 60, err, sizeof(err)), BM_OK);

    /* a holder on this host whose process is gone loses the lease at once */
    pid_t pid = fork();
    if (pid == 0)
        _exit(0);
    waitpid(pid, NULL, 0);
    snprintf(dead, sizeof(dead), "%d@%s", (int)pid, host);
    ck_assert_int_eq(bm_store_lease_take(st, "cal:2", dead, 60, err, sizeof(err)), BM_OK);
    ck_assert_int_eq(bm_store_lease_take(st, "cal:2", me, 60, err, sizeof(err)), BM_OK);
    bm_store_close(st);
}
END_TEST

/* Two calendars of one account: a source and a target. */
static bm_store_t *two_calendars(int64_t *acc, int64_t *src, int64_t *dst)
{
    bm_store_t *st = open_db();
    bm_store_account_add(st, "a", NULL, NULL, 0, acc, err, sizeof(err));
    bm_store_calendar_upsert(st, *acc, "src", NULL, NULL, NULL, false, src, err, sizeof(err));
    bm_store_calendar_upsert(st, *acc, "dst", NULL, NULL, NULL, false, dst, err, sizeof(err));
    return st;
}

START_TEST(outbox_keeps_one_item_per_block_and_gates_occurrences)
{
    int64_t acc, src, dst;
    bm_store_t *st = two_calendars(&acc, &src, &dst);
    bm_block_t master = {.target_calendar_id = dst,
                         .block_id = "m0000",
                         .source_calendar_id = src,
                         .source_event_id = "ev",
                         .wanted = "s1",
                         .body = "{}"};
    bm_block_t occ = {.target_calendar_id = dst,
                      .block_id = "m0000_20261125T100000Z",
                      .source_calendar_id = src,
                      .source_event_id = "ev_1",
                      .master_block_id = "m0000",
                      .wanted = "cancelled"};
    ck_assert_int_eq(bm_store_block_put(st, &master, err, sizeof(err)), BM_OK);
    ck_assert_int_eq(bm_store_block_put(st, &occ, err, sizeof(err)), BM_OK);
    ck_assert_int_eq(bm_store_outbox_put(st, dst, "m0000", BM_OUTBOX_PUT, false, err, sizeof(err)),
                     BM_OK);
    ck_assert_int_eq(
        bm_store_outbox_put(st, dst, occ.block_id, BM_OUTBOX_DELETE, true, err, sizeof(err)),
        BM_OK);
    /* a second plan for the same block replaces the first */
    ck_assert_int_eq(bm_store_outbox_put(st, dst, "m0000", BM_OUTBOX_PUT, false, err, sizeof(err)),
                     BM_OK);
    int64_t pending, next;
    bm_store_outbox_stats(st, &pending, &next, err, sizeof(err));
    ck_assert_int_eq(pending, 2);

    bm_outbox_item_t *items;
    size_t n;
    ck_assert_int_eq(bm_store_outbox_claim(st, acc, true, "me", bm_now_ms(), 60000, 10, &items, &n,
                                           err, sizeof(err)),
                     BM_OK);
    ck_assert_uint_eq(n, 0); /* the occurrence waits for its series */
    bm_store_outbox_items_free(items, n);
    ck_assert_int_eq(bm_store_outbox_claim(st, acc, false, "me", bm_now_ms(), 60000, 10, &items, &n,
                                           err, sizeof(err)),
                     BM_OK);
    ck_assert_uint_eq(n, 1);
    ck_assert_str_eq(items[0].body, "{}");
    ck_assert(!items[0].created);
    ck_assert_str_eq(items[0].target_gcal_id, "dst");
    ck_assert_int_eq(bm_store_block_applied(st, dst, "m0000", true, NULL, err, sizeof(err)), BM_OK);
    bool current;
    ck_assert_int_eq(bm_store_outbox_done(st, &items[0], &current, err, sizeof(err)), BM_OK);
    ck_assert(current);
    bm_store_outbox_items_free(items, n);
    ck_assert_int_eq(bm_store_outbox_claim(st, acc, true, "me", bm_now_ms(), 60000, 10, &items, &n,
                                           err, sizeof(err)),
                     BM_OK);
    ck_assert_uint_eq(n, 1);
    ck_assert(items[0].is_instance);
    ck_assert_int_eq(items[0].op, BM_OUTBOX_DELETE);

    /* backed off: not due now; then dead */
    ck_assert_int_eq(
        bm_store_outbox_retry_later(st, &items[0], bm_now_ms() + 60000, "503", err, sizeof(err)),
        BM_OK);
    bm_outbox_item_t *later;
    size_t n_later;
    bm_store_outbox_claim(st, acc, true, "me", bm_now_ms(), 60000, 10, &later, &n_later, err,
                          sizeof(err));
    ck_assert_uint_eq(n_later, 0);
    bm_store_outbox_items_free(later, n_later);
    ck_assert_int_eq(bm_store_outbox_to_dead_letters(st, &items[0], "HTTP 400", err, sizeof(err)),
                     BM_OK);
    bm_store_outbox_items_free(items, n);
    bm_store_outbox_stats(st, &pending, &next, err, sizeof(err));
    ck_assert_int_eq(pending, 0);

    /* a plan made while an item is in flight survives that item's result */
    ck_assert_int_eq(bm_store_outbox_put(st, dst, "m0000", BM_OUTBOX_PUT, false, err, sizeof(err)),
                     BM_OK);
    bm_store_outbox_claim(st, acc, false, "me", bm_now_ms(), 60000, 10, &items, &n, err,
                          sizeof(err));
    ck_assert_uint_eq(n, 1);
    ck_assert_int_eq(
        bm_store_outbox_put(st, dst, "m0000", BM_OUTBOX_DELETE, false, err, sizeof(err)), BM_OK);
    ck_assert_int_eq(
        bm_store_outbox_retry_later(st, &items[0], bm_now_ms() + 60000, "503", err, sizeof(err)),
        BM_OK);
    ck_assert_int_eq(bm_store_outbox_done(st, &items[0], &current, err, sizeof(err)), BM_OK);
    ck_assert(!current);
    ck_assert_int_eq(bm_store_outbox_to_dead_letters(st, &items[0], "x", err, sizeof(err)), BM_OK);
    bm_store_outbox_items_free(items, n);
    bm_store_outbox_claim(st, acc, false, "me", bm_now_ms(), 60000, 10, &items, &n, err,
                          sizeof(err));
    ck_assert_uint_eq(n, 1); /* the new plan, due now, untouched */
    ck_assert_int_eq(items[0].op, BM_OUTBOX_DELETE);
    ck_assert_int_eq(items[0].attempts, 0);
    ck_assert_int_eq(bm_store_outbox_done(st, &items[0], &current, err, sizeof(err)), BM_OK);
    ck_assert(current);
    bm_store_outbox_items_free(items, n);

    /* deleting a series block forgets its occurrence overrides */
    ck_assert_int_eq(bm_store_block_delete(st, dst, "m0000", err, sizeof(err)), BM_OK);
    bm_block_t b;
    ck_assert_int_eq(bm_store_block_get(st, dst, occ.block_id, &b, err, sizeof(err)), BM_ENOTFOUND);
    bm_store_close(st);
}
END_TEST

START_TEST(outbox_items_are_claimed_once_until_settled_or_expired)
{
    int64_t acc, src, dst;
    bm_store_t *st = two_calendars(&acc, &src, &dst);
    bm_outbox_item_t *a, *b;
    size_t na, nb;
    bool current;
    int64_t now = bm_now_ms(), busy;
    for (int i = 0; i < 3; i++) {
        char id[16];
        snprintf(id, sizeof(id), "b%d", i);
        ck_assert_int_eq(
            bm_store_outbox_put(st, dst, id, BM_OUTBOX_DELETE, false, err, sizeof(err)), BM_OK);
    }
    /* two claimers share the items, never one item */
    ck_assert_int_eq(
        bm_store_outbox_claim(st, acc, false, "one", now, 1000, 2, &a, &na, err, sizeof(err)),
        BM_OK);
    ck_assert_uint_eq(na, 2);
    ck_assert(a[0].id < a[1].id);
    ck_assert_str_eq(a[0].claim_owner, "one");
    ck_assert_int_eq(
        bm_store_outbox_claim(st, acc, false, "two", now, 1000, 10, &b, &nb, err, sizeof(err)),
        BM_OK);
    ck_assert_uint_eq(nb, 1);
    ck_assert_int_eq(bm_store_outbox_in_flight(st, "two", now, &busy, err, sizeof(err)), BM_OK);
    ck_assert_int_eq(busy, 2);
    bm_store_outbox_items_free(b, nb);
    /* settled: retry later ends the claim; a replanned item is claimable again
     * once its claimer settles it, with the new plan */
    ck_assert_int_eq(bm_store_outbox_retry_later(st, &a[0], now, "503", err, sizeof(err)), BM_OK);
    ck_assert_int_eq(
        bm_store_outbox_put(st, dst, a[1].block_id, BM_OUTBOX_PUT, false, err, sizeof(err)), BM_OK);
    ck_assert_int_eq(
        bm_store_outbox_claim(st, acc, false, "two", now, 1000, 10, &b, &nb, err, sizeof(err)),
        BM_OK);
    ck_assert_uint_eq(nb, 1); /* a[0] only: a[1]'s new plan waits for "one" */
    ck_assert_int_eq(b[0].id, a[0].id);
    bm_store_outbox_items_free(b, nb);
    ck_assert_int_eq(bm_store_outbox_done(st, &a[1], &current, err, sizeof(err)), BM_OK);
    ck_assert(!current);
    ck_assert_int_eq(
        bm_store_outbox_claim(st, acc, false, "two", now, 1000, 10, &b, &nb, err, sizeof(err)),
        BM_OK);
    ck_assert_uint_eq(nb, 1);
    ck_assert_int_eq(b[0].op, BM_OUTBOX_PUT);
    bm_store_outbox_items_free(b, nb);
    bm_store_outbox_items_free(a, na);
    /* a crashed claimer's items are taken over once its claims expire */
    ck_assert_int_eq(
        bm_store_outbox_claim(st, acc, false, "three", now, 1000, 10, &b, &nb, err, sizeof(err)),
        BM_OK);
    ck_assert_uint_eq(nb, 0);
    ck_assert_int_eq(bm_store_outbox_claim(st, acc, false, "three", now + 1000, 1000, 10, &b, &nb,
                                           err, sizeof(err)),
                     BM_OK);
    ck_assert_uint_eq(nb, 3);
    ck_assert_int_eq(bm_store_outbox_release(st, b, nb, err, sizeof(err)), BM_OK);
    bm_store_outbox_items_free(b, nb);
    ck_assert_int_eq(bm_store_outbox_in_flight(st, "x", now, &busy, err, sizeof(err)), BM_OK);
    ck_assert_int_eq(busy, 0);
    bm_store_close(st);
}
END_TEST

START_TEST(full_listing_sweep_finds_unseen_sources)
{
    int64_t acc, src, dst;
    bm_store_t *st = two_calendars(&acc, &src, &dst);
    bm_source_t a = {"a", true, "s", NULL, NULL}, b = {"b", true, "s", NULL, NULL};
    bm_store_source_put(st, src, &a, err, sizeof(err));
    bm_store_source_put(st, src, &b, err, sizeof(err));
    ck_assert_int_eq(bm_store_source_unmark(st, src, err, sizeof(err)), BM_OK);
    bm_store_source_put(st, src, &a, err, sizeof(err)); /* listed again */
    bm_source_t *gone;
    size_t n;
    ck_assert_int_eq(bm_store_source_unseen(st, src, &gone, &n, err, sizeof(err)), BM_OK);
    ck_assert_uint_eq(n, 1);
    ck_assert_str_eq(gone[0].event_id, "b");
    bm_store_sources_free(gone, n);
    bm_store_close(st);
}
END_TEST

/* A calendar's own copies of meetings, by iCalUID: held while one event holds it. */
START_TEST(own_events_hold_an_ical_uid_while_one_event_does)
{
    int64_t acc, src, dst;
    bm_store_t *st = two_calendars(&acc, &src, &dst);
    bool newly = false, gone = true, held = false;
    char *uid = NULL;
    ck_assert_int_eq(bm_store_own_event_put(st, dst, "e1", "U", &newly, err, sizeof(err)), BM_OK);
    ck_assert(newly);
    ck_assert_int_eq(bm_store_own_event_put(st, dst, "e2", "U", &newly, err, sizeof(err)), BM_OK);
    ck_assert(!newly); /* an exception of the same series, say */
    ck_assert_int_eq(bm_store_own_event_put(st, dst, "e1", "U", &newly, err, sizeof(err)), BM_OK);
    ck_assert(!newly); /* listed again */
    ck_assert_int_eq(bm_store_own_uid_held(st, src, "U", &held, err, sizeof(err)), BM_OK);
    ck_assert(!held); /* per calendar */
    ck_assert_int_eq(bm_store_own_event_drop(st, dst, "e1", &uid, &gone, err, sizeof(err)), BM_OK);
    ck_assert_str_eq(uid, "U");
    ck_assert(!gone);
    free(uid);
    ck_assert_int_eq(bm_store_own_event_drop(st, dst, "e2", &uid, &gone, err, sizeof(err)), BM_OK);
    ck_assert(gone);
    free(uid);
    ck_assert_int_eq(bm_store_own_event_drop(st, dst, "nope", &uid, &gone, err, sizeof(err)),
                     BM_OK);
    ck_assert_ptr_null(uid);
    ck_assert(!gone);
    /* full listings: what was not listed again is read back */
    bm_store_own_event_put(st, dst, "a", "UA", &newly, err, sizeof(err));
    bm_store_own_event_put(st, dst, "b", "UB", &newly, err, sizeof(err));
    ck_assert_int_eq(bm_store_own_events_unmark(st, dst, err, sizeof(err)), BM_OK);
    bm_store_own_event_put(st, dst, "a", "UA", &newly, err, sizeof(err));
    char **ids = NULL;
    size_t n = 0;
    ck_assert_int_eq(bm_store_own_events_unseen(st, dst, &ids, &n, err, sizeof(err)), BM_OK);
    ck_assert_uint_eq(n, 1);
    ck_assert_str_eq(ids[0], "b");
    bm_store_strings_free(ids, n);
    bm_store_close(st);
}
END_TEST

/* Blocks held back: found by their source's iCalUID, a series with its
 * occurrences, taken back whole; a block never sent is forgotten, one sent is not. */
START_TEST(shared_blocks_hold_back_and_come_back_whole)
{
    int64_t acc, src, dst;
    bm_store_t *st = two_calendars(&acc, &src, &dst);
    ck_assert_int_eq(
        bm_store_calendar_set_enabled(st, src, true, "g", BM_ROLE_BOTH, err, sizeof(err)), BM_OK);
    ck_assert_int_eq(
        bm_store_calendar_set_enabled(st, dst, true, "g", BM_ROLE_BOTH, err, sizeof(err)), BM_OK);
    bm_source_t ev = {"ev", true, "s", NULL, "U"};
    ck_assert_int_eq(bm_store_source_put(st, src, &ev, err, sizeof(err)), BM_OK);
    bm_block_t master = {.target_calendar_id = dst,
                         .block_id = "m0000",
                         .source_calendar_id = src,
                         .source_event_id = "ev",
                         .wanted = "s1",
                         .body = "{}",
                         .created = true};
    bm_block_t occ = {.target_calendar_id = dst,
                      .block_id = "m0000_20261125T100000Z",
                      .source_calendar_id = src,
                      .source_event_id = "ev_1",
                      .master_block_id = "m0000",
                      .wanted = "cancelled"};
    bm_store_block_put(st, &master, err, sizeof(err));
    bm_store_block_put(st, &occ, err, sizeof(err));
    bm_store_outbox_put(st, dst, occ.block_id, BM_OUTBOX_DELETE, true, err, sizeof(err));
    bm_block_t *b = NULL;
    size_t n = 0;
    ck_assert_int_eq(bm_store_blocks_of_uid(st, dst, "U", &b, &n, err, sizeof(err)), BM_OK);
    ck_assert_uint_eq(n, 1); /* the series, not its occurrence */
    ck_assert_str_eq(b[0].block_id, "m0000");
    bm_store_blocks_free(b, n);
    bm_shared_block_t h = {.target_calendar_id = dst,
                           .block_id = "m0000",
                           .source_calendar_id = src,
                           .source_event_id = "ev",
                           .ical_uid = "U",
                           .wanted = "s1",
                           .body = "{}",
                           .existed = true};
    ck_assert_int_eq(bm_store_shared_put(st, &h, err, sizeof(err)), BM_OK);
    ck_assert_int_eq(bm_store_shared_hold_occurrences(st, dst, "m0000", "U", err, sizeof(err)),
                     BM_OK);
    bm_block_t gone = {0};
    ck_assert_int_eq(bm_store_block_get(st, dst, occ.block_id, &gone, err, sizeof(err)),
                     BM_ENOTFOUND);
    int64_t pending = 0, next = 0;
    ck_assert_int_eq(bm_store_outbox_stats(st, &pending, &next, err, sizeof(err)), BM_OK);
    ck_assert_int_eq(pending, 0); /* the occurrence's write went with it */
    bm_shared_block_t *rows = NULL;
    ck_assert_int_eq(bm_store_shared_of_uid(st, dst, "U", &rows, &n, err, sizeof(err)), BM_OK);
    ck_assert_uint_eq(n, 1);
    ck_assert_str_eq(rows[0].source_gcal_id, "src");
    ck_assert(rows[0].existed);
    bm_store_shared_free(rows, n);
    ck_assert_int_eq(bm_store_shared_of_uid(st, src, "U", &rows, &n, err, sizeof(err)), BM_OK);
    ck_assert_uint_eq(n, 0);
    bm_store_shared_free(rows, n);
    ck_assert_int_eq(bm_store_shared_take(st, dst, "m0000", &rows, &n, err, sizeof(err)), BM_OK);
    ck_assert_uint_eq(n, 2);
    ck_assert_ptr_null(rows[0].master_block_id); /* the series first */
    ck_assert_str_eq(rows[1].wanted, "cancelled");
    bm_store_shared_free(rows, n);
    ck_assert_int_eq(bm_store_shared_take(st, dst, "m0000", &rows, &n, err, sizeof(err)), BM_OK);
    ck_assert_uint_eq(n, 0);
    /* a block planned and never sent is forgotten; once claimed (sent) it is not */
    bm_block_t fresh = {.target_calendar_id = dst,
                        .block_id = "f0000",
                        .source_calendar_id = src,
                        .source_event_id = "ev2",
                        .wanted = "s",
                        .body = "{}"};
    bool forgotten = false;
    bm_store_block_put(st, &fresh, err, sizeof(err));
    bm_store_outbox_put(st, dst, "f0000", BM_OUTBOX_PUT, false, err, sizeof(err));
    ck_assert_int_eq(bm_store_block_forget_unsent(st, dst, "f0000", &forgotten, err, sizeof(err)),
                     BM_OK);
    ck_assert(forgotten);
    ck_assert_int_eq(bm_store_block_get(st, dst, "f0000", &gone, err, sizeof(err)), BM_ENOTFOUND);
    bm_store_block_put(st, &fresh, err, sizeof(err));
    bm_store_outbox_put(st, dst, "f0000", BM_OUTBOX_PUT, false, err, sizeof(err));
    bm_outbox_item_t *items = NULL;
    ck_assert_int_eq(bm_store_outbox_claim(st, acc, false, "me", bm_now_ms(), 1000, 10, &items, &n,
                                           err, sizeof(err)),
                     BM_OK);
    ck_assert_uint_eq(n, 1);
    ck_assert_int_eq(bm_store_outbox_release(st, items, n, err, sizeof(err)), BM_OK);
    bm_store_outbox_items_free(items, n);
    ck_assert_int_eq(bm_store_block_forget_unsent(st, dst, "f0000", &forgotten, err, sizeof(err)),
                     BM_OK);
    ck_assert(!forgotten); /* it may be in Google: it must be deleted there */
    bm_store_close(st);
}
END_TEST

/* One process of the race: waits for the start (the pipe closing), then opens. */
static void open_racer(const char *path, int start_fd)
{
    char c, e[512];
    bm_store_t *st = NULL;
    ssize_t r = read(start_fd, &c, 1); /* 0 (EOF) when the parent lets everyone go */
    int rc = r == 0 ? bm_store_open(path, &st, e, sizeof(e)) : BM_EIO;
    if (rc != BM_OK)
        fprintf(stderr, "racer %d: %s\n", (int)getpid(), rc == BM_EIO ? "no start" : e);
    else if (bm_store_schema_version(st) != BM_STORE_SCHEMA_VERSION)
        rc = BM_ESTORE;
    bm_store_close(st);
    _exit(rc == BM_OK ? 0 : 1);
}

START_TEST(audit_runs_and_sync_log_read_back_newest_first)
{
    bm_store_t *st = open_db();
    int64_t acc, c1, c2, run;
    bm_store_account_add(st, "a", NULL, NULL, 0, &acc, err, sizeof(err));
    bm_store_calendar_upsert(st, acc, "one", "1", NULL, NULL, false, &c1, err, sizeof(err));
    bm_store_calendar_upsert(st, acc, "two", "2", NULL, NULL, false, &c2, err, sizeof(err));
    /* run 1 deletes from two, one, two; run 2 from one */
    const char *cals[] = {"two", "one", "two", "one"};
    for (int i = 0; i < 4; i++) {
        if (i == 0 || i == 3)
            ck_assert_int_eq(bm_store_audit_new_run(st, &run, err, sizeof(err)), BM_OK);
        bm_audit_t a = {.run_id = run,
                        .action = i < 3 ? "disable" : "reset",
                        .gcal_id = (char *)cals[i],
                        .block_id = "b",
                        .content = "{}"};
        ck_assert_int_eq(bm_store_audit_add(st, &a, err, sizeof(err)), BM_OK);
    }
    bm_audit_t *entries = NULL;
    size_t n = 0;
    ck_assert_int_eq(bm_store_audit_run(st, 1, &entries, &n, err, sizeof(err)), BM_OK);
    ck_assert_int_eq(bm_store_audit_mark_undone(st, entries[0].id, err, sizeof(err)), BM_OK);
    bm_store_audits_free(entries, n);
    bm_audit_summary_t *r = NULL;
    ck_assert_int_eq(bm_store_audit_list(st, 10, &r, &n, err, sizeof(err)), BM_OK);
    ck_assert_uint_eq(n, 2);
    ck_assert_int_eq(r[0].run_id, 2);
    ck_assert_str_eq(r[0].action, "reset");
    ck_assert_uint_eq(r[0].n_calendars, 1);
    ck_assert_int_eq(r[1].blocks, 3);
    ck_assert_int_eq(r[1].undone, 1);
    ck_assert_uint_eq(r[1].n_calendars, 2);
    ck_assert_str_eq(r[1].calendars[0], "one");
    ck_assert_str_eq(r[1].calendars[1], "two");
    ck_assert_int_gt(r[1].at, 0);
    bm_store_audit_summaries_free(r, n);
    ck_assert_int_eq(bm_store_audit_list(st, 1, &r, &n, err, sizeof(err)), BM_OK);
    ck_assert_uint_eq(n, 1);
    bm_store_audit_summaries_free(r, n);

    for (int i = 0; i < 3; i++) {
        bm_sync_log_t l = {i == 1 ? c2 : c1,
                           1000 + i,
                           5,
                           i == 0 ? "full" : "incremental",
                           3,
                           2,
                           1,
                           0,
                           4,
                           i == 2 ? "transient" : "ok",
                           i == 2 ? "HTTP 503" : NULL};
        ck_assert_int_eq(bm_store_sync_log_add(st, &l, err, sizeof(err)), BM_OK);
    }
    bm_sync_log_entry_t *l = NULL;
    ck_assert_int_eq(bm_store_sync_log_list(st, 0, 10, &l, &n, err, sizeof(err)), BM_OK);
    ck_assert_uint_eq(n, 3);
    ck_assert_int_eq(l[0].started_at, 1002);
    ck_assert_str_eq(l[0].gcal_id, "one");
    ck_assert_str_eq(l[0].account_name, "a");
    ck_assert_str_eq(l[0].error, "HTTP 503");
    ck_assert_str_eq(l[1].gcal_id, "two");
    ck_assert_ptr_null(l[2].error);
    ck_assert_str_eq(l[2].kind, "full");
    ck_assert_int_eq(l[2].api_calls, 4);
    bm_store_sync_log_entries_free(l, n);
    ck_assert_int_eq(bm_store_sync_log_list(st, c1, 1, &l, &n, err, sizeof(err)), BM_OK);
    ck_assert_uint_eq(n, 1);
    ck_assert_int_eq(l[0].started_at, 1002);
    bm_store_sync_log_entries_free(l, n);
    bm_store_close(st);
}
END_TEST

START_TEST(new_database_opened_by_many_processes_at_once)
{
    enum { ROUNDS = 20, RACERS = 8 };
    for (int round = 0; round < ROUNDS; round++) {
        char path[160];
        int start[2];
        pid_t pids[RACERS];
        snprintf(path, sizeof(path), "%s/race%d.db", dir, round);
        ck_assert_int_eq(pipe(start), 0);
        for (int i = 0; i < RACERS; i++) {
            pids[i] = fork();
            ck_assert_int_ge(pids[i], 0);
            if (pids[i] == 0) {
                close(start[1]);
                open_racer(path, start[0]);
            }
        }
        close(start[0]);
        close(start[1]); /* go */
        for (int i = 0; i < RACERS; i++) {
            int status = 0;
            ck_assert_int_eq(waitpid(pids[i], &status, 0), pids[i]);
            ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                          "round %d: an open failed (see stderr)", round);
        }
    }
}
END_TEST

Suite *make_suite(void)
{
    Suite *s = suite_create("store");
    TCase *tc = tcase_create("store");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, database_is_created_0600_in_wal_mode);
    tcase_add_test(tc, old_schema_migrates_forward_keeping_data);
    tcase_add_test(tc, schema_5_keeps_what_blocks_want);
    tcase_add_test(tc, opening_again_keeps_the_locks_of_open_connections);
    tcase_add_test(tc, newer_schema_is_refused);
    tcase_add_test(tc, accounts_are_unique_by_name);
    tcase_add_test(tc, targets_are_enabled_group_members_that_receive);
    tcase_add_test(tc, sync_state_round_trips);
    tcase_add_test(tc, lease_excludes_live_owners_only);
    tcase_add_test(tc, outbox_keeps_one_item_per_block_and_gates_occurrences);
    tcase_add_test(tc, outbox_items_are_claimed_once_until_settled_or_expired);
    tcase_add_test(tc, full_listing_sweep_finds_unseen_sources);
    tcase_add_test(tc, own_events_hold_an_ical_uid_while_one_event_does);
    tcase_add_test(tc, shared_blocks_hold_back_and_come_back_whole);
    tcase_add_test(tc, audit_runs_and_sync_log_read_back_newest_first);
    tcase_add_test(tc, new_database_opened_by_many_processes_at_once);
    suite_add_tcase(s, tc);
    return s;
}

#include "check_main.h"
