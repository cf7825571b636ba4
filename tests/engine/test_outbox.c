/*
 * tests/engine/test_outbox.c: the outbox drain (engine/outbox.c) against the
 * real gcal-emulator on loopback, with a real store and key file: what each
 * answer of Google does to an item (done, revived, re-inserted, retried, dead
 * letter), and that occurrence overrides wait for their series.
 */
#include "core/store.h"
#include "core/util.h"
#include "engine/engine.h"
#include "tests/engine/emu_fixture.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CAL EMU_FIXTURE_USER

static emu_fixture_t fx;

static void setup(void)
{
    emu_fixture_setup(&fx, "outbox");
}

static void teardown(void)
{
    emu_fixture_teardown(&fx);
}

/* A block's body, as the planner writes it (enough for the emulator). */
static char *block_body(const char *id, int hour, const char *extra)
{
    return fmt("{\"id\":\"%s\",\"summary\":\"Busy\",\"visibility\":\"private\","
               "\"transparency\":\"opaque\",\"start\":{\"dateTime\":\"2026-12-07T%02d:00:00Z\","
               "\"timeZone\":\"UTC\"},\"end\":{\"dateTime\":\"2026-12-07T%02d:30:00Z\","
               "\"timeZone\":\"UTC\"}%s,\"extendedProperties\":{\"private\":{\"busymirror\":"
               "\"1\"}}}",
               id, hour, hour, extra != NULL ? extra : "");
}

/* Plans a write of block id as the sync would: the block row, then the item. */
static void plan(const char *id, const char *master, char *body, bool created, bm_outbox_op_t op)
{
    char err[256] = "";
    bm_block_t b = {.target_calendar_id = fx.cal_id,
                    .block_id = (char *)id,
                    .source_calendar_id = fx.cal_id + 1000,
                    .source_event_id = "src",
                    .master_block_id = (char *)master,
                    .wanted = op == BM_OUTBOX_PUT ? "want" : NULL,
                    .body = body,
                    .created = created};
    ck_assert_msg(bm_store_block_put(fx.st, &b, err, sizeof(err)) == 0, "%s", err);
    ck_assert_msg(bm_store_outbox_put(fx.st, fx.cal_id, id, op, master != NULL, err, sizeof(err)) ==
                      0,
                  "%s", err);
}

static void drain(void)
{
    char err[256] = "";
    ck_assert_msg(bm_engine_drain(fx.e, err, sizeof(err)) == 0, "%s", err);
}

static int64_t pending(void)
{
    char err[256] = "";
    int64_t n = -1, next = 0;
    ck_assert_int_eq(bm_store_outbox_stats(fx.st, &n, &next, err, sizeof(err)), 0);
    return n;
}

static size_t dead_letters(void)
{
    char err[256] = "";
    bm_dead_letter_t *d = NULL;
    size_t n = 0;
    ck_assert_int_eq(bm_store_dead_letters(fx.st, &d, &n, err, sizeof(err)), 0);
    bm_store_dead_letters_free(d, n);
    return n;
}

/* The emulator's copy of an event (the caller frees), NULL when it has none. */
static resp_t *google_event(const char *id)
{
    char *path = fmt("/_emulator/calendars/%s/events/%s", CAL, id);
    resp_t *r = h_req(&fx.emu, "GET", path, NULL, NULL, NULL, NULL);
    free(path);
    return r;
}

static bool block_created(const char *id)
{
    char err[256] = "";
    bm_block_t b = {0};
    int rc = bm_store_block_get(fx.st, fx.cal_id, id, &b, err, sizeof(err));
    bool created = rc == 0 && b.created;
    bm_block_dispose(&b);
    return created;
}

START_TEST(puts_insert_new_blocks)
{
    char *b1 = block_body("blockaaaa1", 9, NULL), *b2 = block_body("blockaaaa2", 11, NULL);
    plan("blockaaaa1", NULL, b1, false, BM_OUTBOX_PUT);
    plan("blockaaaa2", NULL, b2, false, BM_OUTBOX_PUT);
    drain();
    ck_assert_int_eq(pending(), 0);
    ck_assert(block_created("blockaaaa1"));
    ck_assert(block_created("blockaaaa2"));
    ck_assert_int_eq(counter(&fx.emu, "insert"), 2);
    ck_assert_int_eq(counter(&fx.emu, "batch"), 1); /* both in one batch request */
    resp_t *r = google_event("blockaaaa2");
    ck_assert_int_eq(r->status, 200);
    ck_assert_str_eq(j_str(r->json, "start/dateTime"), "2026-12-07T11:00:00Z");
    h_free(r);
    free(b1);
    free(b2);
}
END_TEST

START_TEST(insert_answering_409_revives_with_update)
{
    /* Google holds the id already (a run stopped before it heard back), with
     * other times: the insert answers 409 duplicate, and an update follows. */
    char *old = block_body("blockbbbb1", 8, NULL), *want = block_body("blockbbbb1", 15, NULL);
    resp_t *r =
        h_req(&fx.emu, "POST", "/_emulator/calendars/" CAL "/events", NULL, old, NULL, NULL);
    ck_assert_int_eq(r->status, 200);
    h_free(r);
    plan("blockbbbb1", NULL, want, false, BM_OUTBOX_PUT);
    drain();
    ck_assert_int_eq(pending(), 0);
    ck_assert_int_eq(dead_letters(), 0);
    ck_assert_int_eq(counter(&fx.emu, "insert"), 1);
    ck_assert_int_eq(counter(&fx.emu, "update"), 1);
    ck_assert(block_created("blockbbbb1"));
    r = google_event("blockbbbb1");
    ck_assert_str_eq(j_str(r->json, "start/dateTime"), "2026-12-07T15:00:00Z");
    h_free(r);
    free(old);
    free(want);
}
END_TEST

START_TEST(update_of_a_block_google_lost_inserts_it)
{
    /* Recorded as created, but Google never had it: the update answers 404,
     * and the block is inserted afresh. */
    char *want = block_body("blockcccc1", 10, NULL);
    plan("blockcccc1", NULL, want, true, BM_OUTBOX_PUT);
    drain();
    ck_assert_int_eq(pending(), 0);
    ck_assert_int_eq(counter(&fx.emu, "update"), 1);
    ck_assert_int_eq(counter(&fx.emu, "insert"), 1);
    resp_t *r = google_event("blockcccc1");
    ck_assert_int_eq(r->status, 200);
    h_free(r);
    free(want);
}
END_TEST

START_TEST(a_deleted_block_wanted_again_is_revived_with_one_update)
{
    /* inserted, deleted (a rule stopped wanting it), then wanted again: Google
     * keeps the id, so one update brings it back; no insert answering 409 */
    char *want = block_body("blockeeee1", 10, NULL);
    plan("blockeeee1", NULL, want, false, BM_OUTBOX_PUT);
    drain();
    plan("blockeeee1", NULL, NULL, true, BM_OUTBOX_DELETE);
    drain();
    ck_assert_int_eq(counter(&fx.emu, "insert"), 1);
    ck_assert_int_eq(counter(&fx.emu, "delete"), 1);
    plan("blockeeee1", NULL, want, false, BM_OUTBOX_PUT); /* a new row: created unknown */
    drain();
    ck_assert_int_eq(pending(), 0);
    ck_assert_int_eq(dead_letters(), 0);
    ck_assert_int_eq(counter(&fx.emu, "insert"), 1);
    ck_assert_int_eq(counter(&fx.emu, "update"), 1);
    ck_assert(block_created("blockeeee1"));
    resp_t *r = google_event("blockeeee1");
    ck_assert_int_eq(r->status, 200);
    ck_assert_str_eq(j_str(r->json, "status"), "confirmed");
    h_free(r);
    free(want);
}
END_TEST

START_TEST(a_tombstone_google_no_longer_knows_falls_back_to_an_insert)
{
    /* deleted by us (the id remembered), then gone from Google for good (purged,
     * or the calendar was emptied): the update answers 404 and an insert follows */
    char *want = block_body("blockffff1", 10, NULL);
    plan("blockffff1", NULL, NULL, false, BM_OUTBOX_DELETE); /* Google never had it */
    drain();
    plan("blockffff1", NULL, want, false, BM_OUTBOX_PUT);
    drain();
    ck_assert_int_eq(pending(), 0);
    ck_assert_int_eq(dead_letters(), 0);
    ck_assert_int_eq(counter(&fx.emu, "update"), 1);
    ck_assert_int_eq(counter(&fx.emu, "insert"), 1);
    ck_assert(block_created("blockffff1"));
    free(want);
}
END_TEST

START_TEST(delete_of_an_unknown_event_is_done)
{
    char err[256] = "";
    plan("blockdddd1", NULL, NULL, true, BM_OUTBOX_DELETE);
    drain();
    ck_assert_int_eq(pending(), 0);
    ck_assert_int_eq(dead_letters(), 0);
    ck_assert_int_eq(counter(&fx.emu, "delete"), 1);
    bm_block_t b = {0};
    ck_assert_int_eq(bm_store_block_get(fx.st, fx.cal_id, "blockdddd1", &b, err, sizeof(err)),
                     BM_ENOTFOUND);
}
END_TEST

START_TEST(permanent_error_goes_to_dead_letters_at_once)
{
    /* An end before the start: 400, which no retry can fix. */
    char *bad = fmt("{\"id\":\"blockeeee1\",\"start\":{\"dateTime\":\"2026-12-07T10:00:00Z\"},"
                    "\"end\":{\"dateTime\":\"2026-12-07T09:00:00Z\"}}");
    char *good = block_body("blockeeee2", 12, NULL);
    plan("blockeeee1", NULL, bad, false, BM_OUTBOX_PUT);
    plan("blockeeee2", NULL, good, false, BM_OUTBOX_PUT);
    drain();
    ck_assert_int_eq(pending(), 0);
    ck_assert_int_eq(dead_letters(), 1);
    ck_assert_int_eq(counter(&fx.emu, "insert"), 2); /* tried once, not retried */
    ck_assert(block_created("blockeeee2"));
    free(bad);
    free(good);
}
END_TEST

static void faults(const char *json)
{
    emu_fixture_faults(&fx, json);
}

START_TEST(transient_part_failures_are_retried)
{
    /* Every write answers 503: the items wait for a retry (none is
     * dead-lettered) until the account's breaker opens and the drain leaves
     * them. Once Google answers again, each lands. */
    char err[256] = "", id[6][16], *bodies[6];
    faults("{\"error_503\":1,\"writes_only\":1}");
    for (int i = 0; i < 6; i++) {
        snprintf(id[i], sizeof(id[i]), "blockffff%d", i);
        bodies[i] = block_body(id[i], 8 + i, NULL);
        plan(id[i], NULL, bodies[i], false, BM_OUTBOX_PUT);
    }
    drain();
    ck_assert_int_eq(pending(), 6);
    ck_assert_int_eq(dead_letters(), 0);
    ck_assert_int_gt(counter(&fx.emu, "errors_injected"), 6); /* tried again */

    faults("{}");
    bm_account_t acct = {0};
    ck_assert_int_eq(bm_store_account_get(fx.st, "alice", &acct, err, sizeof(err)), 0);
    ck_assert_int_gt(acct.breaker_until, 0); /* the breaker opened */
    ck_assert_int_eq(bm_store_account_set_breaker(fx.st, acct.id, 0, 0, err, sizeof(err)), 0);
    bm_account_dispose(&acct);
    bm_engine_free(fx.e);
    bm_engine_opts_t o = {.cfg = &fx.cfg};
    ck_assert_int_eq(bm_engine_new(&o, fx.st, &fx.e, err, sizeof(err)), 0);
    drain(); /* waits for the backed-off items to come due */
    ck_assert_int_eq(pending(), 0);
    ck_assert_int_eq(dead_letters(), 0);
    for (int i = 0; i < 6; i++) {
        ck_assert_msg(block_created(id[i]), "%s", id[i]);
        free(bodies[i]);
    }
}
END_TEST

START_TEST(occurrence_override_waits_for_its_series)
{
    /* Planned together, the override goes only once its series exists. */
    char *series = block_body("blockgggg1", 9, ",\"recurrence\":[\"RRULE:FREQ=DAILY;COUNT=5\"]");
    char *occ =
        fmt("{\"id\":\"blockgggg1_20261208T090000Z\",\"recurringEventId\":\"blockgggg1\","
            "\"originalStartTime\":{\"dateTime\":\"2026-12-08T09:00:00Z\",\"timeZone\":"
            "\"UTC\"},\"summary\":\"Busy\",\"start\":{\"dateTime\":\"2026-12-08T13:00:00Z\","
            "\"timeZone\":\"UTC\"},\"end\":{\"dateTime\":\"2026-12-08T13:30:00Z\","
            "\"timeZone\":\"UTC\"}}");
    plan("blockgggg1_20261208T090000Z", "blockgggg1", occ, true, BM_OUTBOX_PUT);
    plan("blockgggg1", NULL, series, false, BM_OUTBOX_PUT);
    drain();
    ck_assert_int_eq(pending(), 0);
    ck_assert_int_eq(dead_letters(), 0);
    ck_assert_int_eq(counter(&fx.emu, "batch"), 2); /* the series, then its override */
    resp_t *r = google_event("blockgggg1_20261208T090000Z");
    ck_assert_int_eq(r->status, 200);
    ck_assert_str_eq(j_str(r->json, "start/dateTime"), "2026-12-08T13:00:00Z");
    h_free(r);
    free(series);
    free(occ);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("engine/outbox");
    TCase *tc = tcase_create("drain");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, puts_insert_new_blocks);
    tcase_add_test(tc, insert_answering_409_revives_with_update);
    tcase_add_test(tc, update_of_a_block_google_lost_inserts_it);
    tcase_add_test(tc, a_deleted_block_wanted_again_is_revived_with_one_update);
    tcase_add_test(tc, a_tombstone_google_no_longer_knows_falls_back_to_an_insert);
    tcase_add_test(tc, delete_of_an_unknown_event_is_done);
    tcase_add_test(tc, permanent_error_goes_to_dead_letters_at_once);
    tcase_add_test(tc, transient_part_failures_are_retried);
    tcase_add_test(tc, occurrence_override_waits_for_its_series);
    suite_add_tcase(s, tc);
    return s;
}

#include "tests/check_main.h"
