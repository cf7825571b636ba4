/*
 * engine/engine.c: the engine's lifecycle, its totals and settings shared by
 * sync, the outbox drain and management.
 */
#include "core/crypto.h"
#include "core/gcal.h"
#include "core/log.h"
#include "core/util.h"
#include "engine/engine-int.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Engines made by this process: each claims outbox items under a name of its own. */
static atomic_uint n_engines;

int bm_engine_new(const bm_engine_opts_t *o, bm_store_t *st, bm_engine_t **out, char *err,
                  size_t errlen)
{
    const bm_config_t *cfg = o->cfg;
    bm_engine_t *e = bm_calloc(1, sizeof(*e));
    e->o = *o;
    e->st = st;
    e->out = o->out != NULL ? o->out : stdout;
    if (o->hub != NULL) {
        e->hub = o->hub;
    } else {
        int rc = bm_engine_hub_new(cfg, o->stop, NULL, &e->hub, err, errlen);
        if (rc != BM_OK) {
            free(e);
            *out = NULL;
            return rc;
        }
        e->own_hub = true;
    }
    e->gcal = e->hub->gcal;
    int64_t now = bm_now();
    e->plan.window_start = now - (int64_t)cfg->sync.past_days * 86400;
    e->plan.window_end = now + (int64_t)cfg->sync.future_days * 86400;
    e->plan.block_summary = cfg->sync.block_summary;
    e->plan.busy_event_types = BM_ETYPE_BUSY_DEFAULT;
    e->plan.tentative_is_busy = true;
    e->plan_key = bm_sprintf("summary=%s;types=%u;tentative=%d;shared=%d", e->plan.block_summary,
                             e->plan.busy_event_types, e->plan.tentative_is_busy,
                             bm__engine_skip_shared(e, NULL));
    char host[256] = "localhost";
    gethostname(host, sizeof(host));
    host[sizeof(host) - 1] = '\0';
    snprintf(e->owner, sizeof(e->owner), "%ld@%s", (long)getpid(), host);
    snprintf(e->claim_owner, sizeof(e->claim_owner), "%s/%u", e->owner,
             atomic_fetch_add(&n_engines, 1u));
    e->rng = (uint64_t)bm_now_ms() ^ ((uint64_t)getpid() << 32);
    *out = e;
    return BM_OK;
}

void bm_engine_free(bm_engine_t *e)
{
    if (e == NULL)
        return;
    if (e->own_hub) { /* the last engine of the hub: its access tokens are kept */
        bm__engine_save_access(e);
        bm_engine_hub_free(e->hub);
    }
    free(e->plan_key);
    free(e);
}

void bm_engine_totals(const bm_engine_t *e, bm_engine_totals_t *out)
{
    *out = e->totals;
}

long bm_engine_api_calls(const bm_engine_t *e)
{
    bm_gcal_stats_t s;
    bm_gcal_stats(e->gcal, &s);
    return s.requests;
}

size_t bm__engine_batch_size(const bm_engine_t *e)
{
    return (size_t)bm_config_batch_size(e->o.cfg);
}

bool bm__engine_stopped(const bm_engine_t *e)
{
    /* atomic: set by another thread or a signal handler (TSan) */
    return e->o.stop != NULL && __atomic_load_n(e->o.stop, __ATOMIC_RELAXED) != 0;
}
