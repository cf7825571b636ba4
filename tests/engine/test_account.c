/*
 * tests/engine/test_account.c: engine/account.c's circuit breaker arithmetic
 * (bm__engine_breaker_step) on an account of its own, with a clock of the
 * test's: when it opens, for how long, and what closes it.
 */
#include "engine/engine-int.h"
#include "core/util.h"

#include <check.h>
#include <string.h>

#include "check_main.h"

#define T0 1000000

/* Opens a's breaker with failed writes (BREAKER_THRESHOLD batches in a row whose
 * every part was refused) at now. */
static void writes_fail(engine_account_t *a, int64_t now)
{
    for (int i = 0; i < BREAKER_THRESHOLD - 1; i++)
        ck_assert_int_eq(bm__engine_breaker_step(a, BM_ETRANSIENT, false, true, now), 0);
    ck_assert_int_eq(bm__engine_breaker_step(a, BM_ETRANSIENT, false, true, now), 1);
}

START_TEST(breaker_opens_and_doubles)
{
    engine_account_t a;
    memset(&a, 0, sizeof(a));
    writes_fail(&a, T0);
    ck_assert_int_eq(a.breaker_failures, 1);
    ck_assert_int_eq(a.breaker_until, T0 + 60);
    /* a call in flight when it opened: it stays as it is */
    ck_assert_int_eq(bm__engine_breaker_step(&a, BM_ETRANSIENT, true, true, T0 + 1), 0);
    ck_assert_int_eq(a.breaker_until, T0 + 60);
    /* half-open: the probe fails, open twice as long, and so on up to an hour */
    int64_t now = T0 + 60, want = 120;
    for (int i = 2; i <= 9; i++) {
        ck_assert_int_eq(bm__engine_breaker_step(&a, BM_ETRANSIENT, true, true, now), 1);
        ck_assert_int_eq(a.breaker_failures, i);
        ck_assert_int_eq(a.breaker_until - now, want);
        now = a.breaker_until;
        want = want * 2 < 3600 ? want * 2 : 3600;
    }
}
END_TEST

/* The writes fail, the listings work: a listing's success while half-open
 * does not close it, so the probe's failure doubles the open period. */
START_TEST(breaker_a_read_does_not_heal_failed_writes)
{
    engine_account_t a;
    memset(&a, 0, sizeof(a));
    writes_fail(&a, T0);
    ck_assert_int_eq(bm__engine_breaker_step(&a, BM_OK, false, false, T0 + 60), 0);
    ck_assert_int_eq(a.breaker_failures, 1);
    ck_assert_int_eq(bm__engine_breaker_step(&a, BM_ETRANSIENT, true, true, T0 + 61), 1);
    ck_assert_int_eq(a.breaker_failures, 2);
    ck_assert_int_eq(a.breaker_until, T0 + 61 + 120);
    /* reads working in between do not wipe the writes' run either */
    memset(&a, 0, sizeof(a));
    for (int i = 0; i < BREAKER_THRESHOLD - 1; i++) {
        ck_assert_int_eq(bm__engine_breaker_step(&a, BM_ETRANSIENT, false, true, T0), 0);
        ck_assert_int_eq(bm__engine_breaker_step(&a, BM_OK, false, false, T0), 0);
    }
    ck_assert_int_eq(bm__engine_breaker_step(&a, BM_ETRANSIENT, false, true, T0), 1);
}
END_TEST

/* The healthy path: a write's success closes a breaker writes opened, any
 * success one the other calls opened, and the next opening is a minute again. */
START_TEST(breaker_a_recovery_closes_and_resets)
{
    engine_account_t a;
    memset(&a, 0, sizeof(a));
    writes_fail(&a, T0);
    ck_assert_int_eq(bm__engine_breaker_step(&a, BM_ETRANSIENT, true, true, T0 + 60), 1);
    ck_assert_int_eq(bm__engine_breaker_step(&a, BM_OK, false, true, T0 + 180), -1);
    ck_assert_int_eq(a.breaker_failures, 0);
    ck_assert_int_eq(a.breaker_until, 0);
    writes_fail(&a, T0 + 200);
    ck_assert_int_eq(a.breaker_until, T0 + 260);

    memset(&a, 0, sizeof(a));
    ck_assert_int_eq(bm__engine_breaker_step(&a, BM_ETRANSIENT, true, false, T0), 1);
    ck_assert_int_eq(a.breaker_until, T0 + 60);
    ck_assert_int_eq(bm__engine_breaker_step(&a, BM_OK, false, false, T0 + 60), -1);
    ck_assert_int_eq(a.breaker_failures, 0);

    memset(&a, 0, sizeof(a)); /* a write heals what reads opened too */
    ck_assert_int_eq(bm__engine_breaker_step(&a, BM_ETRANSIENT, true, false, T0), 1);
    ck_assert_int_eq(bm__engine_breaker_step(&a, BM_OK, false, true, T0 + 60), -1);
    /* a closed breaker: successes change nothing; other errors count nothing */
    ck_assert_int_eq(bm__engine_breaker_step(&a, BM_OK, false, true, T0 + 61), 0);
    for (int i = 0; i < 2 * BREAKER_THRESHOLD; i++)
        ck_assert_int_eq(bm__engine_breaker_step(&a, BM_EAUTH, true, true, T0 + 61), 0);
}
END_TEST

/* serve against an account whose every write fails and whose listings work,
 * second by second for an hour: a listing each second while the breaker lets
 * calls through, and a drain batch of 50 parts (one while half-open). Returns
 * the parts sent in [from_s, to_s). */
static int serve_parts(int from_s, int to_s)
{
    engine_account_t a;
    memset(&a, 0, sizeof(a));
    int parts = 0;
    for (int s = 0; s < to_s; s++) {
        int64_t now = T0 + s;
        if (a.breaker_until > now)
            continue;
        bool probe = a.breaker_failures > 0;
        bm__engine_breaker_step(&a, BM_OK, false, false, now);
        if (a.breaker_until > now)
            continue;
        if (s >= from_s)
            parts += probe ? 1 : 50;
        bm__engine_breaker_step(&a, BM_ETRANSIENT, probe, true, now);
    }
    return parts;
}

START_TEST(breaker_calls_per_minute_stay_bounded)
{
    int first = serve_parts(0, 60), later = serve_parts(600, 3600);
    fprintf(stderr,
            "breaker: writes all failing: %d parts in the first minute, %d in minutes"
            " 10-60\n",
            first, later);
    ck_assert_int_eq(first, 5 * 50); /* it opens after five failed batches */
    ck_assert_int_le(later, 3);      /* then one probe each time it half-opens */
}
END_TEST

Suite *make_suite(void)
{
    Suite *s = suite_create("account");
    TCase *tc = tcase_create("breaker");
    tcase_add_test(tc, breaker_opens_and_doubles);
    tcase_add_test(tc, breaker_a_read_does_not_heal_failed_writes);
    tcase_add_test(tc, breaker_a_recovery_closes_and_resets);
    tcase_add_test(tc, breaker_calls_per_minute_stay_bounded);
    suite_add_tcase(s, tc);
    return s;
}
