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
    free(e);
}

/* What bm__engine_plan_opts sets beyond the window (which *o keeps). */
static void rules_opts(const bm_config_t *cfg, const bm_calendar_t *cal, bm_plan_opts_t *o)
{
    const bm_rules_t *r = bm_config_rules(cfg, cal->group_name);
    o->block_summary = r->block_summary != NULL ? r->block_summary : cfg->sync.block_summary;
    o->busy_event_types = r->event_types;
    o->tentative_is_busy = r->tentative;
    o->rules = r;
    o->label = bm_calendar_label(cal);
    o->time_zone = cal->time_zone;
}

void bm__engine_plan_opts(const bm_engine_t *e, const bm_calendar_t *cal, bm_plan_opts_t *o)
{
    *o = e->plan; /* the window */
    rules_opts(e->o.cfg, cal, o);
}

/*
 * The defaults give the key of the releases before group rules
 * ("summary=...;types=...;tentative=..."), so that an upgrade lists nothing
 * again; every rule that differs from its default adds a part, and the label
 * counts when the title uses it, the zone when working hours are read in it.
 */
static char *plan_key(const bm_config_t *cfg, const bm_calendar_t *cal)
{
    bm_plan_opts_t o = {0};
    rules_opts(cfg, cal, &o);
    const bm_rules_t *r = o.rules;
    bm_buf_t b;
    bm_buf_init(&b, SIZE_MAX); /* config values and a label: bounded where they are read */
    bm_buf_printf(&b, "summary=%s;types=%u;tentative=%d", o.block_summary, o.busy_event_types,
                  o.tentative_is_busy);
    if (r->copy_title)
        bm_buf_puts(&b, ";copy_title=1");
    if (r->exclude_title.text != NULL)
        bm_buf_printf(&b, ";exclude=%s", r->exclude_title.text);
    if (r->include_title.text != NULL)
        bm_buf_printf(&b, ";include=%s", r->include_title.text);
    if (!r->all_day)
        bm_buf_puts(&b, ";all_day=0");
    if (!r->unanswered)
        bm_buf_puts(&b, ";unanswered=0");
    if (r->working_hours.text != NULL) {
        bm_buf_puts(&b, ";hours=");
        for (int d = 0; d < 7; d++)
            for (int i = 0; i < r->working_hours.n[d]; i++)
                bm_buf_printf(&b, "%d:%d-%d,", d, r->working_hours.iv[d][i].start,
                              r->working_hours.iv[d][i].end);
        const char *tz = r->time_zone != NULL ? r->time_zone : o.time_zone;
        bm_buf_printf(&b, ";tz=%s", tz != NULL ? tz : "UTC");
    }
    if (r->buffer_before != 0 || r->buffer_after != 0)
        bm_buf_printf(&b, ";buffers=%d,%d", r->buffer_before, r->buffer_after);
    /* the calendars' own meetings are recorded by full listings: a calendar
     * planned without that record lists in full once */
    bm_buf_puts(&b, r->skip_shared_events ? ";shared=1" : ";shared=0");
    if (strstr(o.block_summary, "{calendar}") != NULL)
        bm_buf_printf(&b, ";label=%s", o.label != NULL ? o.label : "");
    char *key = bm_buf_steal(&b);
    return key != NULL ? key : bm_strdup("");
}

char *bm__engine_plan_key(const bm_engine_t *e, const bm_calendar_t *cal)
{
    return plan_key(e->o.cfg, cal);
}

bool bm__engine_plan_stale(const bm_config_t *cfg, const bm_calendar_t *cal)
{
    char *key = plan_key(cfg, cal);
    bool stale = cal->plan_key == NULL || strcmp(cal->plan_key, key) != 0;
    free(key);
    return stale;
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
