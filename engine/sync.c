/*
 * engine/sync.c: sync of one calendar: list what changed, plan block writes for
 * every target, commit mirror, blocks, outbox and the new sync token in one
 * transaction. The order is architecture.md's "Sync of one calendar".
 */
#include "core/gcal.h"
#include "core/log.h"
#include "core/util.h"
#include "engine/engine-int.h"

#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#define LEASE_TTL_S 600

/* ---- planning ---- */

typedef struct sync_ctx {
    bm_engine_t *e;
    const bm_calendar_t *cal;
    bm_calendar_t *targets;
    size_t n_targets;
    bm_event_t *events; /* every listed event, owned */
    size_t n_events, cap_events;
    int64_t inserts, updates, deletes;
    bool force_full;     /* this pass lists in full whatever the state says */
    bool relist;         /* a series started or stopped being mirrored: plan its exceptions anew */
    bm_plan_opts_t plan; /* the source calendar's group rules (bm__engine_plan_opts) */
    char *plan_key;      /* and their text (bm__engine_plan_key), owned */
} sync_ctx_t;

static int on_page(void *ud, bm_event_t *events, size_t n)
{
    sync_ctx_t *c = ud;
    if (c->n_events + n > c->cap_events) {
        while (c->n_events + n > c->cap_events)
            c->cap_events = c->cap_events ? c->cap_events * 2 : 256;
        c->events = bm_realloc(c->events, c->cap_events * sizeof(*c->events));
    }
    for (size_t i = 0; i < n; i++) { /* take ownership of every field */
        c->events[c->n_events++] = events[i];
        memset(&events[i], 0, sizeof(events[i]));
    }
    return bm__engine_stopped(c->e) ? BM_ECANCELED : BM_OK;
}

char *bm__engine_marker_src(const char *gcal_id, const char *event_id)
{
    unsigned char md[32];
    unsigned int md_len = 0;
    char hex[17];
    EVP_Digest(gcal_id, strlen(gcal_id), md, &md_len, EVP_sha256(), NULL);
    for (int i = 0; i < 8; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    return bm_sprintf("%s/%s", hex, event_id);
}

static void print_op(sync_ctx_t *c, const char *what, const char *src_gcal, const bm_calendar_t *t,
                     const char *block_id, const char *src_event)
{
    if (!c->e->o.dry_run && !c->e->o.verbose)
        return;
    fprintf(c->e->out, "%s%s %s -> %s block=%s source=%s\n", c->e->o.dry_run ? "would " : "", what,
            src_gcal != NULL ? src_gcal : "?", t->gcal_id, block_id, src_event);
}

/* Records the block wanted in t from source calendar src_cal_id (wanted/body
 * NULL: no block) and plans the write. wanted is what the block must look like
 * (block_key), stored as blocks.wanted. existed: a block without a row is in
 * Google, deleted (held back earlier): it is revived with an update. */
static int reconcile_from(sync_ctx_t *c, int64_t src_cal_id, const char *src_gcal,
                          const bm_calendar_t *t, const char *block_id, const char *master_block_id,
                          const char *src_event, const char *wanted, char *body, bool existed,
                          char *err, size_t errlen)
{
    bm_block_t cur = {0};
    int rc = bm_store_block_get(c->e->st, t->id, block_id, &cur, err, errlen);
    bool have = rc == BM_OK;
    bool instance = master_block_id != NULL;
    if (rc != BM_OK && rc != BM_ENOTFOUND)
        goto out;
    rc = BM_OK;
    bm_op_kind_t op = bm_plan_diff(wanted, have ? cur.wanted : NULL);
    if (op == BM_OP_NONE)
        goto out;
    /* A person deleted it and wants it left alone, whatever its source does. */
    if (op == BM_OP_PUT && have && cur.state == BM_BLOCK_USER_DELETED &&
        c->e->o.cfg->sync.respect_deleted_blocks)
        goto out;
    /* A block no write of which ever left for Google is not there: forgotten,
     * not deleted (a block planned and held back in one run costs nothing). */
    if (op == BM_OP_DELETE && wanted == NULL && !cur.created) {
        bool forgotten = false;
        rc = bm_store_block_forget_unsent(c->e->st, t->id, block_id, &forgotten, err, errlen);
        if (rc != BM_OK || forgotten)
            goto out;
    }
    /* An occurrence that stops being busy is cancelled in the block series: it
     * is wanted "cancelled" and has no body. */
    bm_outbox_op_t what = op == BM_OP_PUT && body != NULL ? BM_OUTBOX_PUT : BM_OUTBOX_DELETE;
    bm_block_t b = {
        .target_calendar_id = t->id,
        .block_id = (char *)block_id,
        .source_calendar_id = src_cal_id,
        .source_event_id = (char *)src_event,
        .master_block_id = (char *)master_block_id,
        .wanted = (char *)wanted,
        .body = body,
        .created = have ? cur.created : existed,
        .state = BM_BLOCK_LIVE,
    };
    rc = bm_store_block_put(c->e->st, &b, err, errlen);
    if (rc == BM_OK)
        rc = bm_store_outbox_put(c->e->st, t->id, block_id, what, instance, err, errlen);
    if (what == BM_OUTBOX_DELETE) {
        c->deletes++;
        print_op(c, "delete", src_gcal, t, block_id, src_event);
    } else if (b.created) {
        c->updates++;
        print_op(c, "update", src_gcal, t, block_id, src_event);
    } else {
        c->inserts++;
        print_op(c, "insert", src_gcal, t, block_id, src_event);
    }
out:
    bm_block_dispose(&cur);
    return rc;
}

/* A block in t of this calendar's event (reconcile_from). */
static int reconcile_block(sync_ctx_t *c, const bm_calendar_t *t, const char *block_id,
                           const char *master_block_id, const char *src_event, const char *wanted,
                           char *body, char *err, size_t errlen)
{
    return reconcile_from(c, c->cal->id, c->cal->gcal_id, t, block_id, master_block_id, src_event,
                          wanted, body, false, err, errlen);
}

/* ---- the same meeting in two calendars ----
 * A person invited through two accounts has the real event in both calendars
 * (one iCalUID, two event ids). A block of one copy is not made in a calendar
 * that holds another copy itself: it is held back (shared_blocks, with what it
 * would be) and put back when that calendar's copy goes. Either calendar's
 * sync decides: the source's when it plans the block (the target's copies as
 * last listed), the target's when its own copy comes or goes. So whatever the
 * order of the two syncs, one run of both converges. */

bool bm__engine_skip_shared(const bm_engine_t *e, const char *group)
{
    return bm_config_rules(e->o.cfg, group)->skip_shared_events;
}

/* Whether ev, an event of the calendar itself (not a block), holds its meeting
 * there: a copy that shows the calendar's owner busy (not cancelled, not
 * "free", not declined). A declined copy leaves room for the block. */
static bool holds_meeting(const bm_event_t *ev)
{
    return ev->ical_uid != NULL && ev->marker == NULL &&
           (ev->status == NULL || strcmp(ev->status, "cancelled") != 0) &&
           (ev->transparency == NULL || strcmp(ev->transparency, "transparent") != 0) &&
           (ev->self_response == NULL || strcmp(ev->self_response, "declined") != 0);
}

/* Plans block_id in t from this calendar's event src_event: held back while t
 * holds the same meeting (ical_uid), else reconciled as wanted. A series held
 * back takes its occurrence overrides along; put back, it brings them back. */
static int place_block(sync_ctx_t *c, const bm_calendar_t *t, const char *block_id,
                       const char *src_event, const char *ical_uid, bool series, const char *wanted,
                       char *body, char *err, size_t errlen)
{
    bm_store_t *st = c->e->st;
    bm_shared_block_t *back = NULL;
    size_t n_back = 0;
    bool held = false;
    int rc = BM_OK;
    if (wanted != NULL && ical_uid != NULL && bm__engine_skip_shared(c->e, t->group_name))
        rc = bm_store_own_uid_held(st, t->id, ical_uid, &held, err, errlen);
    if (rc == BM_OK && held) {
        bm_block_t cur = {0};
        bm_shared_block_t h = {.target_calendar_id = t->id,
                               .block_id = (char *)block_id,
                               .source_calendar_id = c->cal->id,
                               .source_event_id = (char *)src_event,
                               .ical_uid = (char *)ical_uid,
                               .wanted = (char *)wanted,
                               .body = body};
        rc = bm_store_block_get(st, t->id, block_id, &cur, err, errlen);
        h.existed = rc == BM_OK && cur.created;
        bm_block_dispose(&cur);
        if (rc == BM_OK || rc == BM_ENOTFOUND)
            rc = bm_store_shared_put(st, &h, err, errlen);
        if (rc == BM_OK && series)
            rc = bm_store_shared_hold_occurrences(st, t->id, block_id, ical_uid, err, errlen);
        if (rc == BM_OK)
            rc = reconcile_block(c, t, block_id, NULL, src_event, NULL, NULL, err, errlen);
        goto out;
    }
    if (rc == BM_OK) /* not held back (any more, or gone): its rows leave shared_blocks */
        rc = bm_store_shared_take(st, t->id, block_id, &back, &n_back, err, errlen);
    if (rc == BM_OK) /* the series' row comes first */
        rc = reconcile_from(c, c->cal->id, c->cal->gcal_id, t, block_id, NULL, src_event, wanted,
                            body, n_back > 0 && back[0].master_block_id == NULL && back[0].existed,
                            err, errlen);
    for (size_t i = 0; rc == BM_OK && wanted != NULL && i < n_back; i++)
        if (back[i].master_block_id != NULL)
            rc =
                reconcile_block(c, t, back[i].block_id, back[i].master_block_id,
                                back[i].source_event_id, back[i].wanted, back[i].body, err, errlen);
out:
    bm_store_shared_free(back, n_back);
    return rc;
}

/* An occurrence override of series block master in t, while that series is held
 * back: it waits with the series. *held false: the series is not held back. */
static int hold_occurrence(sync_ctx_t *c, const bm_calendar_t *t, const char *master,
                           const char *inst, const char *src_event, const char *wanted, char *body,
                           bool *held, char *err, size_t errlen)
{
    bm_shared_block_t series = {0};
    *held = false;
    if (!bm__engine_skip_shared(c->e, t->group_name))
        return BM_OK;
    int rc = bm_store_shared_get(c->e->st, t->id, master, &series, err, errlen);
    if (rc == BM_ENOTFOUND)
        return BM_OK;
    if (rc == BM_OK) {
        bm_shared_block_t h = {.target_calendar_id = t->id,
                               .block_id = (char *)inst,
                               .source_calendar_id = c->cal->id,
                               .source_event_id = (char *)src_event,
                               .master_block_id = (char *)master,
                               .ical_uid = series.ical_uid,
                               .wanted = (char *)wanted,
                               .body = body};
        rc = bm_store_shared_put(c->e->st, &h, err, errlen);
        *held = rc == BM_OK;
    }
    bm_shared_block_dispose(&series);
    return rc;
}

/* This calendar now holds meeting ical_uid itself: the blocks other calendars'
 * copies have in it are held back. */
static int hold_blocks_of(sync_ctx_t *c, const char *ical_uid, char *err, size_t errlen)
{
    bm_store_t *st = c->e->st;
    bm_block_t *b = NULL;
    size_t n = 0;
    int rc = bm_store_blocks_of_uid(st, c->cal->id, ical_uid, &b, &n, err, errlen);
    for (size_t i = 0; rc == BM_OK && i < n; i++) {
        bm_calendar_t src = {0};
        bm_shared_block_t h = {.target_calendar_id = c->cal->id,
                               .block_id = b[i].block_id,
                               .source_calendar_id = b[i].source_calendar_id,
                               .source_event_id = b[i].source_event_id,
                               .ical_uid = (char *)ical_uid,
                               .wanted = b[i].wanted,
                               .body = b[i].body,
                               .existed = b[i].created};
        rc = bm_store_shared_put(st, &h, err, errlen);
        if (rc == BM_OK)
            rc = bm_store_shared_hold_occurrences(st, c->cal->id, b[i].block_id, ical_uid, err,
                                                  errlen);
        if (rc == BM_OK && (c->e->o.dry_run || c->e->o.verbose)) /* only to say which */
            (void)bm_store_calendar_get(st, b[i].source_calendar_id, &src, err, errlen);
        if (rc == BM_OK)
            rc = reconcile_from(c, b[i].source_calendar_id, src.gcal_id, c->cal, b[i].block_id,
                                NULL, b[i].source_event_id, NULL, NULL, false, err, errlen);
        bm_calendar_dispose(&src);
    }
    bm_store_blocks_free(b, n);
    return rc;
}

/* This calendar no longer holds meeting ical_uid: the blocks held back for it
 * come back (each series with its occurrence overrides). */
static int put_back_blocks_of(sync_ctx_t *c, const char *ical_uid, char *err, size_t errlen)
{
    bm_store_t *st = c->e->st;
    bm_shared_block_t *rows = NULL;
    size_t n = 0;
    int rc = bm_store_shared_of_uid(st, c->cal->id, ical_uid, &rows, &n, err, errlen);
    for (size_t i = 0; rc == BM_OK && i < n; i++) {
        bm_shared_block_t *back = NULL;
        size_t n_back = 0;
        rc = bm_store_shared_take(st, c->cal->id, rows[i].block_id, &back, &n_back, err, errlen);
        for (size_t k = 0; rc == BM_OK && k < n_back; k++)
            rc = reconcile_from(c, back[k].source_calendar_id, back[k].source_gcal_id, c->cal,
                                back[k].block_id, back[k].master_block_id, back[k].source_event_id,
                                back[k].wanted, back[k].body, back[k].existed, err, errlen);
        bm_store_shared_free(back, n_back);
    }
    bm_store_shared_free(rows, n);
    return rc;
}

/* event_id no longer holds its meeting here (cancelled, declined, freed, gone). */
static int own_event_gone(sync_ctx_t *c, const char *event_id, char *err, size_t errlen)
{
    char *uid = NULL;
    bool gone = false;
    int rc = bm_store_own_event_drop(c->e->st, c->cal->id, event_id, &uid, &gone, err, errlen);
    if (rc == BM_OK && gone && bm__engine_skip_shared(c->e, c->cal->group_name))
        rc = put_back_blocks_of(c, uid, err, errlen);
    free(uid);
    return rc;
}

/* ev is one of this calendar's own events (not a block): whether it holds its
 * meeting here, recorded; a change of that holds back or puts back the blocks
 * of the meeting's other copies. A calendar that only gives blocks has none. */
static int plan_own(sync_ctx_t *c, const bm_event_t *ev, char *err, size_t errlen)
{
    bool newly = false;
    if (c->cal->role == BM_ROLE_SOURCE)
        return BM_OK;
    if (!holds_meeting(ev))
        return own_event_gone(c, ev->id, err, errlen);
    int rc =
        bm_store_own_event_put(c->e->st, c->cal->id, ev->id, ev->ical_uid, &newly, err, errlen);
    if (rc == BM_OK && newly && bm__engine_skip_shared(c->e, c->cal->group_name))
        rc = hold_blocks_of(c, ev->ical_uid, err, errlen);
    return rc;
}

/* What a block must look like: its source's busy shape, plus what a person could
 * change on the block itself (title, show-as, visibility), so that such an edit
 * is seen and undone like a move. */
static char *block_key(const char *shape, const char *summary, const char *transparency,
                       const char *visibility)
{
    return bm_sprintf("%s|n=%s|t=%s|v=%s", shape, summary != NULL ? summary : "",
                      transparency != NULL ? transparency : "opaque",
                      visibility != NULL ? visibility : "default");
}

/* shape: of the block (bm_plan_block_event: its buffers included); title: its summary. */
static char *wanted_key(const char *shape, const char *title)
{
    return block_key(shape, title, "opaque", "private");
}

char *bm__engine_block_wanted(const bm_event_t *blk)
{
    char *shape = bm_plan_shape(blk);
    char *key = wanted_key(shape, blk->summary);
    free(shape);
    return key;
}

/* sync --dry-run --verbose (or --verbose): the rule that skipped an event. */
static void print_skip(const sync_ctx_t *c, const char *reason, const char *event_id)
{
    if (!c->e->o.verbose)
        return;
    fprintf(c->e->out, "skip reason=%s calendar=%s event=%s\n", reason, c->cal->gcal_id,
            event_id != NULL ? event_id : "");
}

/* The body of the block mirroring blk (a bm_plan_block_event) titled title. */
static char *block_body(const sync_ctx_t *c, const bm_event_t *blk, const char *block_id,
                        const char *marker_src, const char *title)
{
    bm_plan_opts_t o = c->plan;
    o.block_summary = title;
    return bm_plan_block_body(blk, block_id, marker_src, &o);
}

static char *listed_key(const bm_event_t *ev)
{
    char *shape = bm_plan_shape(ev);
    char *key = block_key(shape, ev->summary, ev->transparency, ev->visibility);
    free(shape);
    return key;
}

/* An exception of a mirrored series: override or cancel the block's occurrence
 * (cancelled too when the group's rules skip it: its title was edited to one
 * they exclude, it lies outside the working hours, ...). */
static int plan_occurrence(sync_ctx_t *c, const bm_event_t *ev, char *err, size_t errlen)
{
    bm_engine_t *e = c->e;
    char suffix[32];
    const char *reason;
    bm_event_t blk;
    bool busy = bm_plan_keep(ev, &c->plan, &reason);
    if (!busy && strcmp(reason, "cancelled") != 0)
        print_skip(c, reason, ev->id);
    bm_plan_block_event(ev, &c->plan, &blk);
    /* the block series' occurrence: the source's, moved by buffer_before */
    bm_plan_instance_suffix(&blk.original_start, suffix, sizeof(suffix));
    char *own = busy ? bm_plan_shape(ev) : bm_strdup("cancelled");
    char *shape = busy ? bm_plan_shape(&blk) : NULL;
    char *title = busy ? bm_plan_block_title(ev, &c->plan) : NULL;
    char *key = busy ? wanted_key(shape, title) : bm_strdup("cancelled");
    bm_source_t src = {ev->id, busy, own, ev->recurring_event_id, ev->ical_uid};
    int rc = bm_store_source_put(e->st, c->cal->id, &src, err, errlen);
    char *msrc = bm__engine_marker_src(c->cal->gcal_id, ev->id);
    for (size_t i = 0; rc == BM_OK && i < c->n_targets; i++) {
        char master[BM_BLOCK_ID_LEN + 1], inst[BM_BLOCK_ID_LEN + 40];
        bm_plan_block_id(c->cal->group_name, c->cal->gcal_id, ev->recurring_event_id,
                         c->targets[i].gcal_id, master);
        snprintf(inst, sizeof(inst), "%s_%s", master, suffix);
        char *body = busy ? block_body(c, &blk, inst, msrc, title) : NULL;
        char lone[BM_BLOCK_ID_LEN + 1];
        /* mirrored alone while its series was not: the series covers it now */
        bm_plan_block_id(c->cal->group_name, c->cal->gcal_id, ev->id, c->targets[i].gcal_id, lone);
        rc = reconcile_block(c, &c->targets[i], lone, NULL, ev->id, NULL, NULL, err, errlen);
        bool held = false; /* the series waits in shared_blocks: so does this override */
        if (rc == BM_OK && !(busy && body == NULL))
            rc = hold_occurrence(c, &c->targets[i], master, inst, ev->id, key, body, &held, err,
                                 errlen);
        if (rc == BM_OK && !held && !(busy && body == NULL)) /* else: no start/end to override */
            rc = reconcile_block(c, &c->targets[i], inst, master, ev->id, key, body, err, errlen);
        free(body);
    }
    free(msrc);
    free(key);
    free(title);
    free(shape);
    free(own);
    bm_event_dispose(&blk);
    return rc;
}

static void series_occurrence(const bm_event_t *series, const bm_evtime_t *orig, bm_event_t *occ,
                              char bufs[2][40]);

/* The instant of an instance suffix ("20261125T100000Z"; all-day "20261125"), or -1. */
static int64_t suffix_epoch(const char *suffix, bool *all_day)
{
    int y, m, d, hh = 0, mm = 0, ss = 0;
    char z = 0;
    *all_day = strlen(suffix) == 8;
    if (*all_day ? sscanf(suffix, "%4d%2d%2d", &y, &m, &d) != 3
                 : sscanf(suffix, "%4d%2d%2dT%2d%2d%2d%c", &y, &m, &d, &hh, &mm, &ss, &z) != 7 ||
                       z != 'Z')
        return -1;
    char buf[32];
    int64_t t;
    snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02dZ", y, m, d, hh, mm, ss);
    return bm_time_parse(buf, &t) == BM_OK ? t : -1;
}

/* Whether an exception of series_id at original start orig is listed in this
 * pass or in the mirror (then it is planned by itself, plan_occurrence). */
static int has_exception(sync_ctx_t *c, const char *series_id, int64_t orig, const char *id,
                         bool *yes, char *err, size_t errlen)
{
    bm_source_t row = {0};
    *yes = false;
    for (size_t i = 0; i < c->n_events && !*yes; i++) {
        const bm_event_t *x = &c->events[i];
        *yes = x->recurring_event_id != NULL && strcmp(x->recurring_event_id, series_id) == 0 &&
               x->original_start.epoch == orig;
    }
    if (*yes)
        return BM_OK;
    int rc = bm_store_source_get(c->e->st, c->cal->id, id, &row, err, errlen);
    *yes = rc == BM_OK;
    bm_source_dispose(&row);
    return rc == BM_ENOTFOUND ? BM_OK : rc;
}

static bool in_list(const int64_t *v, size_t n, int64_t x)
{
    for (size_t i = 0; i < n; i++)
        if (v[i] == x)
            return true;
    return false;
}

/*
 * The occurrences of a mirrored series that its group's working hours skip,
 * decided one by one: those in the window that do not overlap the hours are
 * cancelled in the block series (one write each), unless an exception of the
 * source decides them; occurrences cancelled so earlier that the rules keep
 * now (a rule change) are put back as the series has them. The series itself
 * stays one recurring block; nothing else is written per occurrence.
 */
static int plan_series_hours(sync_ctx_t *c, const bm_event_t *ev, const bm_event_t *blk,
                             const char *title, const char *msrc, char *err, size_t errlen)
{
    bm_engine_t *e = c->e;
    int64_t *off = NULL, before = blk->start.epoch - ev->start.epoch; /* <= 0 */
    size_t n_off = 0;
    bool any_on, *decided = NULL;
    int rc = BM_OK;
    if (ev->start.date != NULL || ev->start.date_time == NULL)
        return BM_OK; /* working hours never apply to all-day series */
    bm_plan_series_hours(ev, &c->plan, &off, &n_off, &any_on);
    decided = bm_calloc(n_off + 1, sizeof(*decided));
    for (size_t k = 0; rc == BM_OK && k < n_off; k++) {
        bm_evtime_t t = {.epoch = off[k]};
        char sfx[32], *id;
        bm_plan_instance_suffix(&t, sfx, sizeof(sfx));
        id = bm_sprintf("%s_%s", ev->id, sfx);
        rc = has_exception(c, ev->id, off[k], id, &decided[k], err, errlen);
        if (rc == BM_OK && !decided[k])
            print_skip(c, "working_hours", id);
        free(id);
    }
    for (size_t i = 0; rc == BM_OK && i < c->n_targets; i++) {
        const bm_calendar_t *t = &c->targets[i];
        char master[BM_BLOCK_ID_LEN + 1];
        bm_block_t *rows = NULL;
        size_t n_rows = 0;
        bm_plan_block_id(c->cal->group_name, c->cal->gcal_id, ev->id, t->gcal_id, master);
        for (size_t k = 0; rc == BM_OK && k < n_off; k++) {
            if (decided[k])
                continue;
            bm_evtime_t so = {.epoch = off[k]}, bo = {.epoch = off[k] + before};
            char ssfx[32], bsfx[32], inst[BM_BLOCK_ID_LEN + 40];
            bm_plan_instance_suffix(&so, ssfx, sizeof(ssfx));
            bm_plan_instance_suffix(&bo, bsfx, sizeof(bsfx));
            snprintf(inst, sizeof(inst), "%s_%s", master, bsfx);
            char *src_id = bm_sprintf("%s_%s", ev->id, ssfx);
            rc = reconcile_block(c, t, inst, master, src_id, "cancelled", NULL, err, errlen);
            free(src_id);
        }
        if (rc == BM_OK)
            rc = bm_store_block_instances(e->st, t->id, master, &rows, &n_rows, err, errlen);
        for (size_t k = 0; rc == BM_OK && k < n_rows; k++) {
            bm_block_t *r = &rows[k];
            const char *us = strrchr(r->block_id, '_');
            bool all_day, exc;
            int64_t bo = us != NULL ? suffix_epoch(us + 1, &all_day) : -1;
            if (r->wanted == NULL || strcmp(r->wanted, "cancelled") != 0 || bo < 0 || all_day ||
                r->source_event_id == NULL || r->state == BM_BLOCK_USER_DELETED)
                continue;
            int64_t so = bo - before;
            if (in_list(off, n_off, so) ||
                !(so < e->plan.window_end &&
                  so + (ev->end.epoch - ev->start.epoch) > e->plan.window_start))
                continue; /* still off, or out of the window: left as it is */
            rc = has_exception(c, ev->id, so, r->source_event_id, &exc, err, errlen);
            if (rc != BM_OK || exc)
                continue;
            /* cancelled by working hours that no longer skip it: as the series has it */
            bm_event_t occ = {0};
            char bufs[2][40];
            bm_evtime_t orig = {.epoch = bo};
            series_occurrence(blk, &orig, &occ, bufs);
            occ.recurring_event_id = blk->id;
            char *shape = bm_plan_shape(&occ);
            char *key = wanted_key(shape, title);
            char *body = block_body(c, &occ, r->block_id, msrc, title);
            if (body != NULL)
                rc = reconcile_block(c, t, r->block_id, master, r->source_event_id, key, body, err,
                                     errlen);
            free(body);
            free(key);
            free(shape);
        }
        bm_store_blocks_free(rows, n_rows);
    }
    free(decided);
    free(off);
    return rc;
}

/* A source event (or its deletion, ev->status cancelled or ev NULL with id). */
static int plan_source(sync_ctx_t *c, const bm_event_t *ev, const char *event_id, char *err,
                       size_t errlen)
{
    bm_engine_t *e = c->e;
    const char *reason = "deleted";
    bool kept = ev != NULL && bm_plan_keep(ev, &c->plan, &reason);
    bool busy = kept && bm_plan_in_window(ev, &c->plan);
    if (ev != NULL && !kept && strcmp(reason, "block") != 0 && bm_plan_in_window(ev, &c->plan))
        print_skip(c, reason, event_id);
    bm_event_t blk = {0};
    if (busy)
        bm_plan_block_event(ev, &c->plan, &blk);
    char *own = busy ? bm_plan_shape(ev) : NULL;
    char *shape = busy ? bm_plan_shape(&blk) : NULL;
    char *title = busy ? bm_plan_block_title(ev, &c->plan) : NULL;
    char *key = busy ? wanted_key(shape, title) : NULL;
    char *msrc = busy ? bm__engine_marker_src(c->cal->gcal_id, event_id) : NULL;
    bm_source_t prev = {0};
    bool exceptions = false;
    int rc = bm_store_source_get(e->st, c->cal->id, event_id, &prev, err, errlen);
    if (rc == BM_ENOTFOUND)
        rc = BM_OK;
    /* A series that starts or stops being mirrored changes how each of its
     * exceptions is mirrored (an occurrence override, or a block of its own). */
    if (rc == BM_OK && prev.busy != busy)
        rc = bm_store_source_has_exceptions(e->st, c->cal->id, event_id, &exceptions, err, errlen);
    c->relist |= exceptions;
    if (rc == BM_OK && busy) {
        bm_source_t src = {(char *)event_id, true, own, ev->recurring_event_id, ev->ical_uid};
        rc = bm_store_source_put(e->st, c->cal->id, &src, err, errlen);
    } else if (rc == BM_OK) {
        rc = bm_store_source_delete(e->st, c->cal->id, event_id, err, errlen);
    }
    bm_source_dispose(&prev);
    for (size_t i = 0; rc == BM_OK && i < c->n_targets; i++) {
        char bid[BM_BLOCK_ID_LEN + 1];
        bm_plan_block_id(c->cal->group_name, c->cal->gcal_id, event_id, c->targets[i].gcal_id, bid);
        char *body = busy ? block_body(c, &blk, bid, msrc, title) : NULL;
        if (busy && body == NULL) { /* no start/end, or text that is not UTF-8 */
            BM_LOG(BM_LOG_WARN, BM_MSG("cannot build a block for this event: skipped"),
                   BM_KS("calendar", c->cal->gcal_id), BM_KS("event", event_id));
            continue;
        }
        rc = place_block(c, &c->targets[i], bid, event_id, busy ? ev->ical_uid : NULL,
                         busy && ev->n_recurrence > 0, key, body, err, errlen);
        free(body);
    }
    if (rc == BM_OK && busy && ev->n_recurrence > 0 && ev->recurring_event_id == NULL)
        rc = plan_series_hours(c, ev, &blk, title, msrc, err, errlen);
    bm_event_dispose(&blk);
    free(msrc);
    free(key);
    free(title);
    free(shape);
    free(own);
    return rc;
}

/* ev is one of our blocks living in this calendar: restore it if a person moved,
 * renamed, freed, published or deleted it. */
static int plan_echo(sync_ctx_t *c, const bm_event_t *ev, bm_block_t *cur, char *err, size_t errlen)
{
    bm_engine_t *e = c->e;
    int rc = BM_OK;
    bool cancelled = ev->status != NULL && strcmp(ev->status, "cancelled") == 0;
    char *listed = cancelled ? NULL : listed_key(ev);
    if (cur->wanted == NULL) /* we are deleting it anyway */
        goto out;
    if (cur->master_block_id != NULL && strcmp(cur->wanted, "cancelled") == 0) {
        if (!cancelled) /* a cancelled occurrence came back: cancel it again */
            rc = bm_store_outbox_put(e->st, cur->target_calendar_id, cur->block_id,
                                     BM_OUTBOX_DELETE, true, err, errlen);
        goto out;
    }
    if (!cur->created && !cancelled) /* Google has it although we never heard back */
        rc = bm_store_block_applied(e->st, cur->target_calendar_id, cur->block_id, true, NULL, err,
                                    errlen);
    if (rc != BM_OK)
        goto out;
    if (cancelled && cur->created) {
        if (e->o.cfg->sync.respect_deleted_blocks) {
            cur->state = BM_BLOCK_USER_DELETED;
            rc = bm_store_block_put(e->st, cur, err, errlen);
            goto out;
        }
    } else if (listed == NULL || strcmp(listed, cur->wanted) == 0) {
        goto out;
    }
    if (e->o.dry_run || e->o.verbose)
        fprintf(e->out, "%srestore %s block=%s\n", e->o.dry_run ? "would " : "", c->cal->gcal_id,
                cur->block_id);
    c->updates++;
    rc = bm_store_outbox_put(e->st, cur->target_calendar_id, cur->block_id, BM_OUTBOX_PUT,
                             cur->master_block_id != NULL, err, errlen);
out:
    free(listed);
    return rc;
}

/* The occurrence of a block series at original_start, as the series defines it:
 * the series' duration from there. Strings are borrowed from `orig`/`series` or
 * written into the caller's buffers. */
static void series_occurrence(const bm_event_t *series, const bm_evtime_t *orig, bm_event_t *occ,
                              char bufs[2][40])
{
    memset(occ, 0, sizeof(*occ));
    occ->status = "confirmed";
    occ->start.epoch = orig->epoch;
    occ->end.epoch = orig->epoch + (series->end.epoch - series->start.epoch);
    occ->start.time_zone = series->start.time_zone;
    occ->end.time_zone = series->end.time_zone;
    if (orig->date != NULL) {
        occ->start.date = orig->date;
        bm_time_format_date(occ->end.epoch, bufs[1], 40);
        occ->end.date = bufs[1];
    } else { /* both ends in UTC: the instants are what matters */
        bm_time_format(occ->start.epoch, bufs[0], 40);
        bm_time_format(occ->end.epoch, bufs[1], 40);
        occ->start.date_time = bufs[0];
        occ->end.date_time = bufs[1];
    }
}

/* ev is an occurrence of one of our block series in this calendar that we never
 * overrode: a person moved, changed or deleted it. Put it back as the series has it. */
static int plan_series_echo(sync_ctx_t *c, const bm_event_t *ev, const bm_block_t *series,
                            char *err, size_t errlen)
{
    bm_engine_t *e = c->e;
    bm_event_t master = {0}, occ;
    char bufs[2][40], suffix[32];
    char *shape = NULL, *key = NULL, *listed = NULL, *body = NULL, *src_id = NULL;
    bool cancelled = ev->status != NULL && strcmp(ev->status, "cancelled") == 0;
    int rc = BM_OK;
    if (series->wanted == NULL || series->body == NULL || ev->original_start.epoch == 0)
        goto out; /* the series is on its way out, or the stub says too little */
    if (bm_event_parse_json(series->body, strlen(series->body), &master, err, errlen) != BM_OK)
        goto out;
    series_occurrence(&master, &ev->original_start, &occ, bufs);
    occ.recurring_event_id = master.id;
    shape = bm_plan_shape(&occ);
    key = wanted_key(shape, master.summary); /* the series block's own title */
    listed = cancelled ? NULL : listed_key(ev);
    if (listed != NULL && strcmp(listed, key) == 0)
        goto out; /* as the series has it */
    bm_plan_instance_suffix(&ev->original_start, suffix, sizeof(suffix));
    src_id = bm_sprintf("%s_%s", series->source_event_id, suffix);
    bool respect = cancelled && e->o.cfg->sync.respect_deleted_blocks;
    body = respect ? NULL : block_body(c, &occ, ev->id, master.marker_src, master.summary);
    bm_block_t b = {
        .target_calendar_id = c->cal->id,
        .block_id = ev->id,
        .source_calendar_id = series->source_calendar_id,
        .source_event_id = src_id,
        .master_block_id = series->block_id,
        .wanted = respect ? "cancelled" : key,
        .body = body,
        .created = true,
        .state = respect ? BM_BLOCK_USER_DELETED : BM_BLOCK_LIVE,
    };
    rc = bm_store_block_put(e->st, &b, err, errlen);
    if (rc != BM_OK || respect || body == NULL)
        goto out;
    if (e->o.dry_run || e->o.verbose)
        fprintf(e->out, "%srestore %s block=%s\n", e->o.dry_run ? "would " : "", c->cal->gcal_id,
                ev->id);
    c->updates++;
    rc = bm_store_outbox_put(e->st, c->cal->id, ev->id, BM_OUTBOX_PUT, true, err, errlen);
out:
    bm_event_dispose(&master);
    free(shape);
    free(key);
    free(listed);
    free(body);
    free(src_id);
    return rc;
}

static int plan_event(sync_ctx_t *c, const bm_event_t *ev, char *err, size_t errlen)
{
    bm_engine_t *e = c->e;
    bm_block_t own = {0};
    int rc;
    if (ev->id == NULL)
        return BM_OK;
    /* Loop prevention, twice: the marker, and our own mapping of this calendar. */
    rc = bm_store_block_get(e->st, c->cal->id, ev->id, &own, err, errlen);
    if (rc == BM_OK) {
        rc = plan_echo(c, ev, &own, err, errlen);
        bm_block_dispose(&own);
        return rc;
    }
    if (rc != BM_ENOTFOUND)
        return rc;
    if (ev->recurring_event_id != NULL) { /* an occurrence of one of our block series? */
        rc = bm_store_block_get(e->st, c->cal->id, ev->recurring_event_id, &own, err, errlen);
        if (rc == BM_OK) {
            rc = plan_series_echo(c, ev, &own, err, errlen);
            bm_block_dispose(&own);
            return rc;
        }
        if (rc != BM_ENOTFOUND)
            return rc;
    }
    rc = plan_own(c, ev, err, errlen);
    if (rc != BM_OK || ev->marker != NULL || c->cal->role == BM_ROLE_TARGET)
        return rc;
    if (ev->recurring_event_id != NULL) {
        bm_source_t master = {0};
        rc = bm_store_source_get(e->st, c->cal->id, ev->recurring_event_id, &master, err, errlen);
        bool series = rc == BM_OK && master.busy;
        bm_source_dispose(&master);
        if (rc != BM_OK && rc != BM_ENOTFOUND)
            return rc;
        if (series)
            return plan_occurrence(c, ev, err, errlen);
        /* An occurrence of a series we do not mirror stands alone. */
    }
    return plan_source(c, ev, ev->id, err, errlen);
}

/* Series masters first, so that their occurrences find them in the mirror. */
static int master_first(const void *a, const void *b)
{
    const bm_event_t *x = a, *y = b;
    return (x->recurring_event_id != NULL) - (y->recurring_event_id != NULL);
}

static int plan_all(sync_ctx_t *c, bool full, char *err, size_t errlen)
{
    bm_engine_t *e = c->e;
    int rc = BM_OK;
    bm_source_t *gone = NULL;
    size_t n_gone = 0;
    char **own_gone = NULL;
    size_t n_own_gone = 0;
    if (full)
        rc = bm_store_source_unmark(e->st, c->cal->id, err, errlen);
    if (full && rc == BM_OK)
        rc = bm_store_own_events_unmark(e->st, c->cal->id, err, errlen);
    if (c->n_events > 0)
        qsort(c->events, c->n_events, sizeof(*c->events), master_first);
    for (size_t i = 0; rc == BM_OK && i < c->n_events; i++)
        rc = plan_event(c, &c->events[i], err, errlen);
    if (rc != BM_OK || !full)
        goto out;
    /* What a full listing no longer shows is gone (or left the window). */
    rc = bm_store_source_unseen(e->st, c->cal->id, &gone, &n_gone, err, errlen);
    for (size_t i = 0; rc == BM_OK && i < n_gone; i++)
        rc = plan_source(c, NULL, gone[i].event_id, err, errlen);
    if (rc == BM_OK) /* the calendar's own copies of meetings, likewise */
        rc = bm_store_own_events_unseen(e->st, c->cal->id, &own_gone, &n_own_gone, err, errlen);
    for (size_t i = 0; rc == BM_OK && i < n_own_gone; i++)
        rc = own_event_gone(c, own_gone[i], err, errlen);
out:
    bm_store_strings_free(own_gone, n_own_gone);
    bm_store_sources_free(gone, n_gone);
    return rc;
}

/* ---- sync of one calendar ---- */

static int list_changes(sync_ctx_t *c, engine_account_t *a, bool *full, char **token, char *err,
                        size_t errlen)
{
    bm_engine_t *e = c->e;
    bm_gcal_list_params_t p = {0};
    bool need_full =
        e->o.force_full || c->force_full || c->cal->sync_token == NULL ||
        bm_now() - c->cal->last_full_sync > (int64_t)e->o.cfg->sync.full_resync_hours * 3600 ||
        c->cal->plan_key == NULL || strcmp(c->cal->plan_key, c->plan_key) != 0;
    int rc;
    if (!need_full) {
        p.sync_token = c->cal->sync_token;
        rc = bm_gcal_list_events(e->gcal, &a->g, c->cal->gcal_id, &p, on_page, c, token, err,
                                 errlen);
        if (rc != BM_EGONE) {
            *full = false;
            return rc;
        }
        BM_LOG(BM_LOG_WARN, BM_MSG("sync token expired: listing in full"),
               BM_KS("calendar", c->cal->gcal_id));
        for (size_t i = 0; i < c->n_events; i++)
            bm_event_dispose(&c->events[i]);
        c->n_events = 0;
    }
    memset(&p, 0, sizeof(p));
    p.time_min = e->plan.window_start;
    p.time_max = e->plan.window_end;
    p.show_deleted = true; /* so that blocks a person deleted are seen and restored */
    *full = true;
    return bm_gcal_list_events(e->gcal, &a->g, c->cal->gcal_id, &p, on_page, c, token, err, errlen);
}

/* Counts a pass in the totals, the sync log, the calendar's last result, the log
 * and (verbose) the output. A sync log that cannot be written is logged: the
 * pass itself stands. */
static void record_pass(const sync_ctx_t *c, int rc, bool full, long calls0, int64_t t0,
                        int64_t started, const char *err)
{
    bm_engine_t *e = c->e;
    const bm_calendar_t *cal = c->cal;
    const char *kind = full ? "full" : "incremental";
    if (rc == BM_EBUSY)
        e->totals.calendars_busy++;
    else if (rc == BM_OK)
        e->totals.calendars_ok++;
    else
        e->totals.calendars_failed++;
    e->totals.listed += (int64_t)c->n_events;
    e->totals.planned_inserts += c->inserts;
    e->totals.planned_updates += c->updates;
    e->totals.planned_deletes += c->deletes;
    int64_t ms = bm_mono_ms() - t0;
    long calls = bm_gcal_thread_requests() - calls0;
    if (rc != BM_EBUSY && !e->o.dry_run) {
        char e2[256];
        bm_sync_log_t l = {cal->id,
                           started,
                           ms,
                           kind,
                           (int64_t)c->n_events,
                           c->inserts,
                           c->updates,
                           c->deletes,
                           calls,
                           bm_strerror(rc),
                           rc == BM_OK ? NULL : err};
        if (bm_store_sync_log_add(e->st, &l, e2, sizeof(e2)) != BM_OK ||
            bm_store_sync_result(e->st, cal->id, bm_strerror(rc), rc == BM_OK ? NULL : err, e2,
                                 sizeof(e2)) != BM_OK)
            BM_LOG(BM_LOG_ERROR, BM_MSG("cannot record the sync"), BM_KS("calendar", cal->gcal_id),
                   BM_KS("error", e2));
    }
    BM_LOG(rc == BM_OK ? BM_LOG_INFO : BM_LOG_WARN, BM_MSG("calendar synced"),
           BM_KS("calendar", cal->gcal_id), BM_KS("kind", kind), BM_KI("listed", c->n_events),
           BM_KI("inserts", c->inserts), BM_KI("updates", c->updates), BM_KI("deletes", c->deletes),
           BM_KI("api_calls", calls), BM_KI("ms", ms), BM_KS("result", bm_strerror(rc)),
           BM_KS("error", rc == BM_OK ? "" : err));
    if (e->o.verbose)
        fprintf(e->out, "%s: %s, listed %zu, +%lld ~%lld -%lld in %lld ms%s%s\n", cal->gcal_id,
                kind, c->n_events, (long long)c->inserts, (long long)c->updates,
                (long long)c->deletes, (long long)ms, rc == BM_OK ? "" : ": ",
                rc == BM_OK ? "" : err);
}

/* One pass: lease, list, plan, commit. *relist: a full pass must follow. */
static int sync_pass(bm_engine_t *e, const bm_calendar_t *cal, bool force_full, bool *relist,
                     char *err, size_t errlen)
{
    sync_ctx_t c = {.e = e, .cal = cal, .force_full = force_full};
    bm__engine_plan_opts(e, cal, &c.plan);
    c.plan_key = bm__engine_plan_key(e, cal);
    char lease[64], *token = NULL;
    engine_account_t *a = NULL;
    bool full = false, leased = false, in_txn = false;
    long calls0 = bm_gcal_thread_requests(); /* this thread: a pass runs on one */
    int64_t t0 = bm_mono_ms(), started = bm_now();
    int rc;

    snprintf(lease, sizeof(lease), "calendar:%lld", (long long)cal->id);
    rc = bm_store_lease_take(e->st, lease, e->owner, LEASE_TTL_S, err, errlen);
    if (rc != BM_OK)
        goto out;
    leased = true;
    rc = bm__engine_account(e, cal->account_id, &a, err, errlen);
    if (rc != BM_OK)
        goto out;
    rc = bm_store_calendar_targets(e->st, cal, &c.targets, &c.n_targets, err, errlen);
    if (rc != BM_OK)
        goto out;
    rc = list_changes(&c, a, &full, &token, err, errlen);
    bm__engine_breaker(e, a, rc, true);
    if (rc == BM_EAUTH)
        bm__engine_needs_login(e, a);
    if (rc != BM_OK)
        goto out;

    /* Mirror, blocks, outbox and the new token: one transaction. */
    rc = bm_store_begin(e->st, err, errlen);
    if (rc != BM_OK)
        goto out;
    in_txn = true;
    rc = plan_all(&c, full, err, errlen);
    if (rc == BM_OK && token != NULL)
        rc = bm_store_sync_state_save(e->st, cal->id, token, full, c.plan_key, err, errlen);
    if (rc != BM_OK)
        goto out;
    if (e->o.dry_run) {
        bm_store_rollback(e->st);
    } else {
        rc = bm_store_commit(e->st, err, errlen);
        if (rc != BM_OK)
            goto out;
    }
    in_txn = false;
out:
    if (in_txn)
        bm_store_rollback(e->st);
    record_pass(&c, rc, full, calls0, t0, started, err);
    if (leased && bm_store_lease_release(e->st, lease, e->owner) != BM_OK)
        BM_LOG(BM_LOG_WARN, BM_MSG("cannot release a calendar lease: it expires by itself"),
               BM_KS("calendar", cal->gcal_id));
    for (size_t i = 0; i < c.n_events; i++)
        bm_event_dispose(&c.events[i]);
    free(c.events);
    free(c.plan_key);
    free(token);
    bm_store_calendars_free(c.targets, c.n_targets);
    *relist = rc == BM_OK && c.relist;
    return rc;
}

int bm_engine_sync_calendar(bm_engine_t *e, const bm_calendar_t *cal, char *err, size_t errlen)
{
    bool relist = false;
    int rc = sync_pass(e, cal, false, &relist, err, errlen);
    if (rc == BM_OK && relist && !e->o.dry_run) {
        /* The exceptions of a series whose mirroring changed are planned from a
         * fresh full listing (a dry run leaves it at what it printed). */
        BM_LOG(BM_LOG_INFO, BM_MSG("a series changed how it is mirrored: listing in full"),
               BM_KS("calendar", cal->gcal_id));
        e->totals.calendars_ok--; /* one calendar, counted once */
        rc = sync_pass(e, cal, true, &relist, err, errlen);
    }
    return rc;
}

int bm_engine_sync_all(bm_engine_t *e, int64_t account_id, const char *gcal_id, char *err,
                       size_t errlen)
{
    bm_calendar_t *cals = NULL;
    size_t n = 0;
    int first = BM_OK;
    char one[512];
    int rc = bm_store_calendar_list(e->st, account_id, gcal_id, true, &cals, &n, err, errlen);
    if (rc != BM_OK)
        return rc;
    for (size_t i = 0; i < n && !bm__engine_stopped(e); i++) {
        rc = bm_engine_sync_calendar(e, &cals[i], one, sizeof(one));
        if (rc != BM_OK && (first == BM_OK || first == BM_EBUSY)) {
            first = rc;
            snprintf(err, errlen, "%s: %s", cals[i].gcal_id, one);
        }
    }
    bm_store_calendars_free(cals, n);
    if (bm__engine_stopped(e)) {
        bm__engine_count_pending(e);
        return bm_err(err, errlen, BM_ECANCELED, "stopped");
    }
    rc = bm_engine_drain(e, one, sizeof(one));
    if (rc != BM_OK && (first == BM_OK || first == BM_EBUSY)) {
        first = rc;
        snprintf(err, errlen, "%s", one);
    }
    return first;
}
