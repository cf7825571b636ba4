/*
 * core/retry.h: when to try a Google request again, and how long to wait first.
 *
 * bm_retry_classify() is the one reading of an HTTP status (and Google's error
 * reason) as done / retry / dead / login, for a whole call made by core/gcal and
 * for the parts of a batch; bm_retry_backoff_ms() is the full-jitter wait before
 * attempt n; bm_retry_bucket_t paces one account under Google's per-user quota.
 *
 * Pure functions over caller-owned values: nothing is allocated, nothing locked
 * (a bucket shared by threads is guarded by its owner, see bm_gcal_account_t).
 */
#ifndef BM_CORE_RETRY_H
#define BM_CORE_RETRY_H

#include <stdbool.h>
#include <stdint.h>

typedef enum {
    BM_OUTCOME_DONE,  /* it worked (or, for a delete, the event is gone anyway) */
    BM_OUTCOME_RETRY, /* not now: no answer, rate limits, an outage, a conflict */
    BM_OUTCOME_DEAD,  /* a final answer; repeating the request gives it again */
    BM_OUTCOME_LOGIN, /* 401 to a whole call: get a fresh access token, then repeat */
} bm_outcome_t;

/* Which request the status answers; the kinds differ where their callers do. */
typedef enum {
    /* A whole HTTP request of core/gcal: an API call, a listing page, a batch
     * envelope, the token endpoint. */
    BM_RETRY_CALL,
    /* One part of a batch written by the sync drain (PUT, POST or DELETE). */
    BM_RETRY_PART,
    /* One DELETE part written by the drain: as PART, but an event already gone
     * (404, 410) counts as deleted. */
    BM_RETRY_DELETE,
} bm_retry_kind_t;

/*
 * What a failed (or finished) Google call's HTTP status and error reason mean.
 * status 0 is "no answer" (a network error, or a batch part Google did not
 * answer); reason is error.errors[0].reason ("" or NULL when unknown; it is only
 * read for 403).
 *
 *                        CALL                PART                DELETE
 *   2xx                  DONE                DONE                DONE
 *   404, 410             DEAD                DEAD                DONE
 *   0                    RETRY               RETRY               RETRY
 *   401                  LOGIN               RETRY               RETRY
 *   409                  DEAD                RETRY               RETRY
 *   429                  RETRY               RETRY               RETRY
 *   403 rate/quota (1)   RETRY               RETRY               RETRY
 *   403 other reason     DEAD                DEAD                DEAD
 *   500 502 503 504      RETRY               RETRY               RETRY
 *   other >= 500         DEAD                RETRY               RETRY
 *   other 4xx            DEAD                DEAD                DEAD
 *   1xx, 3xx, < 0        DEAD                DEAD                DEAD
 *
 * (1) rateLimitExceeded, userRateLimitExceeded, quotaExceeded.
 */
bm_outcome_t bm_retry_classify(long status, const char *reason, bm_retry_kind_t kind);

/* Google refuses work for now (no answer, 429, 5xx, a 403 rate or quota limit):
 * the statuses of a batch part that count towards an account's circuit breaker. */
bool bm_retry_refused_for_now(long status, const char *reason);

/* Full jitter: uniform in [0, min(cap, base * 2^attempt)]; rng_state is any seed
 * and advances. 0 when base or cap is not positive. */
long bm_retry_backoff_ms(int attempt, long base_ms, long cap_ms, uint64_t *rng_state);

/* splitmix64: the next value of a small, fast PRNG (state is any seed, advances). */
uint64_t bm_retry_rand(uint64_t *state);

/*
 * A token bucket that keeps one account under Google's per-user quota, a sliding
 * minute: it refills at 5/6 of the quota per minute and holds 1/6 of it, so no
 * minute ever sees more than the quota (below 6 a minute: one call at a time at
 * the quota's rate). A request of n calls (a batch counts each part) waits until
 * min(n, capacity) tokens are there, then takes n: the bucket may go below zero,
 * and later requests wait for it. Caller-owned; nothing to dispose.
 */
typedef struct bm_retry_bucket {
    double tokens;
    double capacity; /* 0: no pacing */
    double per_ms;
    int64_t last_ms;
} bm_retry_bucket_t;

/* quota_per_minute <= 0 gives a bucket that never waits. */
void bm_retry_bucket_init(bm_retry_bucket_t *b, int quota_per_minute, int64_t now_ms);
/* 0 when n calls may go now (taken), else the milliseconds to wait first. */
long bm_retry_bucket_take(bm_retry_bucket_t *b, double n, int64_t now_ms);

#endif
