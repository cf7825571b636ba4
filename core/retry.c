/*
 * core/retry.c: the failure classifier, full-jitter backoff and the per-account
 * token bucket (see core/retry.h).
 */
#include "core/retry.h"

#include <stddef.h>
#include <string.h>

/* 403 with one of Google's rate or quota reasons. */
static bool rate_limited(long status, const char *reason)
{
    return status == 403 && reason != NULL &&
           (strcmp(reason, "rateLimitExceeded") == 0 ||
            strcmp(reason, "userRateLimitExceeded") == 0 || strcmp(reason, "quotaExceeded") == 0);
}

bool bm_retry_refused_for_now(long status, const char *reason)
{
    return status == 0 || status == 429 || status >= 500 || rate_limited(status, reason);
}

bm_outcome_t bm_retry_classify(long status, const char *reason, bm_retry_kind_t kind)
{
    if (status >= 200 && status < 300)
        return BM_OUTCOME_DONE;
    switch (kind) {
    case BM_RETRY_CALL:
        if (status == 401)
            return BM_OUTCOME_LOGIN;
        if (status == 0 || status == 429 || status == 500 || status == 502 || status == 503 ||
            status == 504 || rate_limited(status, reason))
            return BM_OUTCOME_RETRY;
        return BM_OUTCOME_DEAD;
    case BM_RETRY_DELETE:
    case BM_RETRY_PART:
        if (kind == BM_RETRY_DELETE && (status == 404 || status == 410))
            return BM_OUTCOME_DONE;
        /* 409: a duplicate insert of this batch was handled already; 401: the
         * token expired while the batch ran. */
        if (status == 401 || status == 409 || bm_retry_refused_for_now(status, reason))
            return BM_OUTCOME_RETRY;
        return BM_OUTCOME_DEAD;
    }
    return BM_OUTCOME_DEAD;
}

uint64_t bm_retry_rand(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

long bm_retry_backoff_ms(int attempt, long base_ms, long cap_ms, uint64_t *rng_state)
{
    if (base_ms <= 0 || cap_ms <= 0)
        return 0;
    if (attempt < 0)
        attempt = 0;
    long ceiling = base_ms;
    for (int i = 0; i < attempt && ceiling < cap_ms; i++)
        ceiling = ceiling > cap_ms / 2 ? cap_ms : ceiling * 2;
    if (ceiling > cap_ms)
        ceiling = cap_ms;
    return (long)(bm_retry_rand(rng_state) % ((uint64_t)ceiling + 1));
}

void bm_retry_bucket_init(bm_retry_bucket_t *b, int quota_per_minute, int64_t now_ms)
{
    memset(b, 0, sizeof(*b));
    if (quota_per_minute <= 0)
        return; /* capacity 0: no pacing */
    b->capacity = quota_per_minute / 6.0;
    b->per_ms = (quota_per_minute - b->capacity) / 60000.0;
    if (b->capacity < 1.0) { /* a tiny quota: one call at a time, at the quota's rate */
        b->capacity = 1.0;
        b->per_ms = quota_per_minute / 60000.0;
    }
    b->tokens = b->capacity;
    b->last_ms = now_ms;
}

long bm_retry_bucket_take(bm_retry_bucket_t *b, double n, int64_t now_ms)
{
    if (b->capacity <= 0)
        return 0;
    if (now_ms > b->last_ms) {
        b->tokens += (double)(now_ms - b->last_ms) * b->per_ms;
        if (b->tokens > b->capacity)
            b->tokens = b->capacity;
        b->last_ms = now_ms;
    }
    double need = n < b->capacity ? n : b->capacity;
    if (b->tokens >= need) {
        b->tokens -= n;
        return 0;
    }
    long wait = (long)((need - b->tokens) / b->per_ms + 0.5); /* a float shortfall costs 1 ms */
    return wait > 0 ? wait : 1;
}
