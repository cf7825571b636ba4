/*
 * engine/schedule.c: when each calendar is polled (see "scheduling" in
 * engine/engine.h). Used by serve's renewer and by the cron `poll`, so both
 * enqueue the same polls.
 */
#include "core/log.h"
#include "core/retry.h"
#include "engine/engine-int.h"

int bm_engine_poll_interval(const bm_config_t *cfg, const bm_calendar_t *cal)
{
    return cal->poll_interval > 0 ? cal->poll_interval : cfg->sync.poll_interval;
}

int64_t bm_engine_poll_slot(int64_t calendar_id, int64_t every_ms, int64_t now_ms)
{
    if (every_ms <= 0)
        return now_ms;
    uint64_t h = (uint64_t)calendar_id;
    int64_t phase = (int64_t)(bm_retry_rand(&h) % (uint64_t)every_ms);
    int64_t into = (now_ms - phase) % every_ms;
    if (into < 0)
        into += every_ms;
    return now_ms - into;
}

bool bm_engine_poll_due(const bm_config_t *cfg, const bm_calendar_t *cal, int64_t polled_ms,
                        int64_t since_ms, int64_t now_ms)
{
    if (cal->last_sync_at <= 0 && polled_ms <= 0)
        return true; /* never synced: its first listing is not a poll to spread */
    /* Rules (or the label its title shows) changed since its latest full
     * listing: replanned at once, not a poll interval after a restart, and once
     * (polled_ms is set from then on; its own backoff retries a failure). */
    if (polled_ms <= 0 && bm__engine_plan_stale(cfg, cal))
        return true;
    /* last_sync_at has seconds: count it as late in its second as it may be */
    int64_t last = cal->last_sync_at > 0 ? cal->last_sync_at * 1000 + 999 : 0;
    if (polled_ms > last)
        last = polled_ms;
    int64_t every = (int64_t)bm_engine_poll_interval(cfg, cal) * 1000;
    int64_t slot = bm_engine_poll_slot(cal->id, every, now_ms);
    return last < slot && slot >= since_ms;
}

int bm_engine_enqueue_polls(bm_store_t *st, const int64_t *ids, size_t n, int64_t now_ms, char *err,
                            size_t errlen)
{
    if (n == 0)
        return BM_OK;
    int rc = bm_store_begin(st, err, errlen);
    for (size_t i = 0; rc == BM_OK && i < n; i++)
        rc = bm_store_job_enqueue(st, ids[i], "poll", now_ms, 0, 0, NULL, err, errlen);
    if (rc == BM_OK)
        return bm_store_commit(st, err, errlen);
    bm_store_rollback(st);
    return rc;
}
