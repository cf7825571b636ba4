/*
 * tests/core/test_retry.c: the failure classifier (checked over every status
 * against the rules its callers applied before it existed), full-jitter backoff
 * and the per-account token bucket.
 */
#include "core/retry.h"

#include <check.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

/* ---------------------------------------------------------------- classifier */

static const char *const reasons[] = {NULL,
                                      "",
                                      "rateLimitExceeded",
                                      "userRateLimitExceeded",
                                      "quotaExceeded",
                                      "forbidden",
                                      "duplicate",
                                      "notFound",
                                      "deleted"};
#define N_REASONS (sizeof(reasons) / sizeof(reasons[0]))

static bool rate_reason(const char *r)
{
    return r != NULL &&
           (strcmp(r, "rateLimitExceeded") == 0 || strcmp(r, "userRateLimitExceeded") == 0 ||
            strcmp(r, "quotaExceeded") == 0);
}

/* The rules as core/gcal.c (api_exec, token_post), engine/sync.c (refused_for_now,
 * transient_status, and the drain's deletes in settle) wrote them before. */
static bm_outcome_t old_call(long s, const char *r)
{
    if (s >= 200 && s < 300)
        return BM_OUTCOME_DONE;
    if (s == 401)
        return BM_OUTCOME_LOGIN;
    bool transient = s == 429 || s == 500 || s == 502 || s == 503 || s == 504;
    return transient || (s == 403 && rate_reason(r)) ? BM_OUTCOME_RETRY : BM_OUTCOME_DEAD;
}

static bool old_refused_for_now(long s, const char *r)
{
    return s == 0 || s == 429 || s >= 500 || (s == 403 && rate_reason(r));
}

static bm_outcome_t old_part(long s, const char *r)
{
    if (s >= 200 && s < 300)
        return BM_OUTCOME_DONE;
    return s == 401 || s == 409 || old_refused_for_now(s, r) ? BM_OUTCOME_RETRY : BM_OUTCOME_DEAD;
}

static bm_outcome_t old_delete(long s, const char *r)
{
    return s == 404 || s == 410 ? BM_OUTCOME_DONE : old_part(s, r);
}

START_TEST(classify_matches_every_former_rule)
{
    for (long s = -1; s <= 700; s++) {
        for (size_t i = 0; i < N_REASONS; i++) {
            const char *r = reasons[i];
            /* the former whole-call rule never saw status 0: a network error */
            if (s != 0)
                ck_assert_msg(bm_retry_classify(s, r, BM_RETRY_CALL) == old_call(s, r),
                              "CALL %ld %s", s, r ? r : "(null)");
            ck_assert_msg(bm_retry_classify(s, r, BM_RETRY_PART) == old_part(s, r), "PART %ld %s",
                          s, r ? r : "(null)");
            ck_assert_msg(bm_retry_classify(s, r, BM_RETRY_DELETE) == old_delete(s, r),
                          "DELETE %ld %s", s, r ? r : "(null)");
            ck_assert_msg(bm_retry_refused_for_now(s, r) == old_refused_for_now(s, r),
                          "refused %ld %s", s, r ? r : "(null)");
        }
    }
}
END_TEST

START_TEST(classify_table)
{
    /* the rows of the table in core/retry.h */
    const struct {
        long status;
        const char *reason;
        bm_outcome_t call, part, del;
    } rows[] = {
        {200, NULL, BM_OUTCOME_DONE, BM_OUTCOME_DONE, BM_OUTCOME_DONE},
        {204, "", BM_OUTCOME_DONE, BM_OUTCOME_DONE, BM_OUTCOME_DONE},
        {404, "notFound", BM_OUTCOME_DEAD, BM_OUTCOME_DEAD, BM_OUTCOME_DONE},
        {410, "deleted", BM_OUTCOME_DEAD, BM_OUTCOME_DEAD, BM_OUTCOME_DONE},
        {0, "", BM_OUTCOME_RETRY, BM_OUTCOME_RETRY, BM_OUTCOME_RETRY},
        {401, "", BM_OUTCOME_LOGIN, BM_OUTCOME_RETRY, BM_OUTCOME_RETRY},
        {409, "duplicate", BM_OUTCOME_DEAD, BM_OUTCOME_RETRY, BM_OUTCOME_RETRY},
        {429, "", BM_OUTCOME_RETRY, BM_OUTCOME_RETRY, BM_OUTCOME_RETRY},
        {403, "rateLimitExceeded", BM_OUTCOME_RETRY, BM_OUTCOME_RETRY, BM_OUTCOME_RETRY},
        {403, "userRateLimitExceeded", BM_OUTCOME_RETRY, BM_OUTCOME_RETRY, BM_OUTCOME_RETRY},
        {403, "quotaExceeded", BM_OUTCOME_RETRY, BM_OUTCOME_RETRY, BM_OUTCOME_RETRY},
        {403, "forbidden", BM_OUTCOME_DEAD, BM_OUTCOME_DEAD, BM_OUTCOME_DEAD},
        {403, NULL, BM_OUTCOME_DEAD, BM_OUTCOME_DEAD, BM_OUTCOME_DEAD},
        {500, "", BM_OUTCOME_RETRY, BM_OUTCOME_RETRY, BM_OUTCOME_RETRY},
        {503, "", BM_OUTCOME_RETRY, BM_OUTCOME_RETRY, BM_OUTCOME_RETRY},
        {501, "", BM_OUTCOME_DEAD, BM_OUTCOME_RETRY, BM_OUTCOME_RETRY},
        {400, "invalid", BM_OUTCOME_DEAD, BM_OUTCOME_DEAD, BM_OUTCOME_DEAD},
        {412, "conditionNotMet", BM_OUTCOME_DEAD, BM_OUTCOME_DEAD, BM_OUTCOME_DEAD},
        {302, "", BM_OUTCOME_DEAD, BM_OUTCOME_DEAD, BM_OUTCOME_DEAD},
        {100, "", BM_OUTCOME_DEAD, BM_OUTCOME_DEAD, BM_OUTCOME_DEAD},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        ck_assert_msg(bm_retry_classify(rows[i].status, rows[i].reason, BM_RETRY_CALL) ==
                          rows[i].call,
                      "row %zu CALL", i);
        ck_assert_msg(bm_retry_classify(rows[i].status, rows[i].reason, BM_RETRY_PART) ==
                          rows[i].part,
                      "row %zu PART", i);
        ck_assert_msg(bm_retry_classify(rows[i].status, rows[i].reason, BM_RETRY_DELETE) ==
                          rows[i].del,
                      "row %zu DELETE", i);
    }
}
END_TEST

/* ---------------------------------------------------------------- backoff */

START_TEST(backoff_bounds)
{
    uint64_t rng = 12345;
    for (int attempt = 0; attempt < 70; attempt++) {
        long ceiling = 100;
        for (int i = 0; i < attempt && ceiling < 30000; i++)
            ceiling *= 2;
        if (ceiling > 30000)
            ceiling = 30000;
        for (int k = 0; k < 200; k++) {
            long d = bm_retry_backoff_ms(attempt, 100, 30000, &rng);
            ck_assert_int_ge(d, 0);
            ck_assert_int_le(d, ceiling);
        }
    }
    ck_assert_int_eq(bm_retry_backoff_ms(3, 0, 1000, &rng), 0);
    ck_assert_int_le(bm_retry_backoff_ms(-5, 100, 1000, &rng), 100);
    /* huge values never overflow */
    ck_assert_int_le(bm_retry_backoff_ms(1000, 1L << 40, 1L << 50, &rng), 1L << 50);
}
END_TEST

START_TEST(backoff_jitter_distribution)
{
    /* full jitter: uniform over [0, ceiling], so roughly 10% per decile, mean ~ceiling/2 */
    uint64_t rng = 99;
    int buckets[10] = {0};
    const int n = 100000;
    double sum = 0;
    for (int i = 0; i < n; i++) {
        long d = bm_retry_backoff_ms(4, 100, 100000, &rng); /* ceiling 1600 */
        sum += (double)d;
        int b = (int)(d * 10 / 1601);
        buckets[b]++;
    }
    for (int b = 0; b < 10; b++)
        ck_assert_msg(buckets[b] > n / 10 * 0.9 && buckets[b] < n / 10 * 1.1, "bucket %d: %d", b,
                      buckets[b]);
    ck_assert_double_ge(sum / n, 760);
    ck_assert_double_le(sum / n, 840);
    /* the state advances: two calls differ (almost surely) and two seeds differ */
    uint64_t a = 1, b = 2;
    int same = 0;
    for (int i = 0; i < 100; i++)
        same += bm_retry_backoff_ms(10, 1000, 1000000, &a) ==
                bm_retry_backoff_ms(10, 1000, 1000000, &b);
    ck_assert_int_lt(same, 5);
}
END_TEST

START_TEST(bucket_keeps_every_minute_under_the_quota)
{
    bm_retry_bucket_t b;
    int64_t now = 1000000;
    bm_retry_bucket_init(&b, 600, now); /* holds 100, refills 500 a minute */
    int sent = 0;
    /* a greedy caller for two minutes: count what goes out in each minute */
    int per_minute[2] = {0, 0};
    for (int64_t t = now; t < now + 120000; t += 10) {
        while (bm_retry_bucket_take(&b, 1, t) == 0) {
            per_minute[(t - now) / 60000]++;
            sent++;
        }
    }
    ck_assert_int_le(per_minute[0], 600);
    ck_assert_int_ge(per_minute[0], 590);
    ck_assert_int_le(per_minute[1], 510);
    ck_assert_int_ge(per_minute[1], 490);
    /* a batch larger than the bucket waits for a full bucket, then overdraws */
    bm_retry_bucket_init(&b, 60, now);
    ck_assert_int_eq(bm_retry_bucket_take(&b, 50, now), 0);
    long wait = bm_retry_bucket_take(&b, 1, now);
    ck_assert_int_ge(wait, 41 * 60000 / 50); /* 40 tokens of debt + 1, at 50 a minute */
    ck_assert_int_le(wait, 41 * 60000 / 50 + 2);
    ck_assert_int_eq(bm_retry_bucket_take(&b, 1, now + wait), 0);
    /* quota 0: no pacing at all */
    bm_retry_bucket_init(&b, 0, now);
    ck_assert_int_eq(bm_retry_bucket_take(&b, 1000, now), 0);
}
END_TEST

START_TEST(bucket_with_a_tiny_quota_still_refills)
{
    /* [google] user_quota accepts 1..1000000: a quota of 1 a minute must let one
     * request through per minute, not stall the account forever. */
    bm_retry_bucket_t b;
    int64_t now = 1000000;
    bm_retry_bucket_init(&b, 1, now);
    ck_assert_int_eq(bm_retry_bucket_take(&b, 1, now), 0);
    long wait = bm_retry_bucket_take(&b, 1, now);
    ck_assert_int_ge(wait, 1);
    ck_assert_int_le(wait, 60000);
    ck_assert_msg(bm_retry_bucket_take(&b, 1, now + 60000) == 0,
                  "a minute later the second request still may not go (per_ms=%g)", b.per_ms);
}
END_TEST

Suite *make_suite(void)
{
    Suite *s = suite_create("retry");
    TCase *tc = tcase_create("retry");
    tcase_add_test(tc, classify_matches_every_former_rule);
    tcase_add_test(tc, classify_table);
    tcase_add_test(tc, backoff_bounds);
    tcase_add_test(tc, backoff_jitter_distribution);
    tcase_add_test(tc, bucket_keeps_every_minute_under_the_quota);
    tcase_add_test(tc, bucket_with_a_tiny_quota_still_refills);
    suite_add_tcase(s, tc);
    return s;
}

#include "check_main.h"
