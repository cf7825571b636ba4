/*
 * engine/manage.c: the operator's side of the engine: a calendar's membership
 * (enable, disable, group, role), reset, cleanup, undo and account removal. Every deletion is
 * audited with the block's content before it is made.
 */
#include "core/log.h"
#include "core/util.h"
#include "engine/engine-int.h"
#include "engine/engine.h"

#include <stdlib.h>
#include <string.h>

void bm_found_blocks_free(bm_found_block_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(b[i].gcal_id);
        free(b[i].block_id);
        free(b[i].start);
        free(b[i].end);
    }
    free(b);
}

static void found_add(bm_found_block_t **list, size_t *n, const char *gcal_id, const char *block_id,
                      const bm_event_t *ev)
{
    *list = bm_realloc(*list, (*n + 1) * sizeof(**list));
    bm_found_block_t *f = &(*list)[(*n)++];
    memset(f, 0, sizeof(*f));
    f->gcal_id = bm_strdup(gcal_id);
    f->block_id = bm_strdup(block_id);
    if (ev != NULL) {
        f->start = bm_strdup(ev->start.date != NULL ? ev->start.date : ev->start.date_time);
        f->end = bm_strdup(ev->end.date != NULL ? ev->end.date : ev->end.date_time);
        f->series = ev->n_recurrence > 0;
    }
}

/* Audits and plans the deletion of blocks (inside the caller's transaction). */
static int plan_deletes(bm_engine_t *e, bm_block_t *b, size_t n, int64_t run, const char *action,
                        bm_found_block_t **found, size_t *n_found, char *err, size_t errlen)
{
    int rc = BM_OK;
    for (size_t i = 0; rc == BM_OK && i < n; i++) {
        bm_calendar_t t = {0};
        if (b[i].master_block_id != NULL || b[i].wanted == NULL) /* goes with its series */
            continue;
        /* Even a block never confirmed may exist (a run stopped with its insert in
         * flight): delete it in Google too; 404 counts as done. */
        rc = bm_store_calendar_get(e->st, b[i].target_calendar_id, &t, err, errlen);
        if (rc != BM_OK)
            break;
        bm_audit_t a = {.run_id = run,
                        .action = (char *)action,
                        .account_id = t.account_id,
                        .gcal_id = t.gcal_id,
                        .block_id = b[i].block_id,
                        .content = b[i].body};
        if (found != NULL)
            found_add(found, n_found, t.gcal_id, b[i].block_id, NULL);
        rc = bm_store_audit_add(e->st, &a, err, errlen);
        free(b[i].wanted);
        b[i].wanted = NULL;
        if (rc == BM_OK)
            rc = bm_store_block_put(e->st, &b[i], err, errlen);
        if (rc == BM_OK)
            rc = bm_store_outbox_put(e->st, b[i].target_calendar_id, b[i].block_id,
                                     BM_OUTBOX_DELETE, false, err, errlen);
        e->totals.planned_deletes++;
        bm_calendar_dispose(&t);
    }
    return rc;
}

/* Plans the deletion of the blocks made from cal and of those living in it. */
static int plan_retire(bm_engine_t *e, const bm_calendar_t *cal, int64_t run, const char *action,
                       char *err, size_t errlen)
{
    bm_block_t *from = NULL, *in = NULL;
    size_t n_from = 0, n_in = 0;
    int rc = bm_store_blocks_for_source(e->st, cal->id, NULL, &from, &n_from, err, errlen);
    if (rc == BM_OK)
        rc = bm_store_blocks_in_target(e->st, cal->id, &in, &n_in, err, errlen);
    if (rc == BM_OK)
        rc = plan_deletes(e, from, n_from, run, action, NULL, NULL, err, errlen);
    if (rc == BM_OK)
        rc = plan_deletes(e, in, n_in, run, action, NULL, NULL, err, errlen);
    if (rc == BM_OK)
        rc = bm_store_sync_state_reset(e->st, cal->id, err, errlen);
    bm_store_blocks_free(from, n_from);
    bm_store_blocks_free(in, n_in);
    return rc;
}

/* A Google calendar is one calendar whichever account reaches it: enabled at
 * most once per group. BM_EEXIST names the account that has it enabled there. */
static int check_once_in_group(bm_engine_t *e, const bm_calendar_t *cal, const char *group,
                               char *err, size_t errlen)
{
    bm_calendar_t *same = NULL;
    size_t n = 0;
    int rc = bm_store_calendar_list(e->st, 0, cal->gcal_id, true, &same, &n, err, errlen);
    for (size_t i = 0; rc == BM_OK && i < n; i++)
        if (same[i].id != cal->id && strcmp(same[i].group_name, group) == 0)
            rc = bm_err(err, errlen, BM_EEXIST,
                        "calendar %s is already enabled in group %s through account '%s'",
                        cal->gcal_id, group, same[i].account_name);
    bm_store_calendars_free(same, n);
    return rc;
}

int bm_engine_set_membership(bm_engine_t *e, const bm_calendar_t *cal, bool enabled,
                             const char *group, bm_role_t role, char *err, size_t errlen)
{
    const char *new_group = group != NULL ? group : cal->group_name;
    /* Leaving the group, or another group or role in it: the blocks of the old
     * membership go, planned with the new membership in one transaction. */
    bool leaving = !enabled ||
                   (cal->enabled && (strcmp(new_group, cal->group_name) != 0 || role != cal->role));
    int64_t run;
    int rc = bm_store_begin(e->st, err, errlen);
    if (rc != BM_OK)
        return rc;
    if (enabled)
        rc = check_once_in_group(e, cal, new_group, err, errlen);
    const char *action = enabled ? "regroup" : "disable";
    if (rc == BM_OK && leaving)
        rc = bm_store_audit_new_run(e->st, &run, err, errlen);
    if (rc == BM_OK && leaving && cal->enabled) { /* what undo restores first */
        bm_audit_t m = {.run_id = run,
                        .action = (char *)action,
                        .account_id = cal->account_id,
                        .gcal_id = cal->gcal_id,
                        .group_name = cal->group_name,
                        .role = cal->role};
        rc = bm_store_audit_add(e->st, &m, err, errlen);
    }
    if (rc == BM_OK && leaving)
        rc = plan_retire(e, cal, run, action, err, errlen);
    if (rc == BM_OK && leaving) /* nothing is held back for it or from it any more */
        rc = bm_store_shared_forget_calendar(e->st, cal->id, err, errlen);
    if (rc == BM_OK)
        rc = bm_store_calendar_set_enabled(e->st, cal->id, enabled, group, role, err, errlen);
    if (rc == BM_OK && enabled) /* the group gained a member: its calendars list in full */
        rc = bm_store_group_relist(e->st, new_group, err, errlen);
    if (rc == BM_OK)
        rc = bm_store_commit(e->st, err, errlen);
    else
        bm_store_rollback(e->st);
    if (rc == BM_OK && !enabled) /* no more notifications: its channels stop (a failure: later) */
        rc = bm_engine_stop_calendar_channels(e, cal->id, NULL, err, errlen);
    return rc == BM_OK && leaving ? bm_engine_drain(e, err, errlen) : rc;
}

/* ---- reset ---- */

typedef struct marked {
    bm_event_t *events;
    size_t n;
} marked_t;

static int on_marked_page(void *ud, bm_event_t *events, size_t n)
{
    marked_t *m = ud;
    for (size_t i = 0; i < n; i++) {
        if (events[i].marker == NULL) /* only busymirror's own events, ever */
            continue;
        m->events = bm_realloc(m->events, (m->n + 1) * sizeof(*m->events));
        m->events[m->n++] = events[i];
        memset(&events[i], 0, sizeof(events[i]));
    }
    return BM_OK;
}

static void marked_dispose(marked_t *m)
{
    for (size_t i = 0; i < m->n; i++)
        bm_event_dispose(&m->events[i]);
    free(m->events);
    memset(m, 0, sizeof(*m));
}

/* Every event carrying busymirror's marker in cal, in Google: one listing with
 * the marker as filter (and the marker checked again on each event). */
static int list_marked(bm_engine_t *e, const bm_calendar_t *cal, marked_t *m, char *err,
                       size_t errlen)
{
    engine_account_t *a;
    char *token = NULL;
    int rc = bm__engine_account(e, cal->account_id, &a, err, errlen);
    if (rc != BM_OK)
        return rc;
    bm_gcal_list_params_t p = {.private_property = BM_MARKER_KEY "=1"};
    rc = bm_gcal_list_events(e->gcal, &a->g, cal->gcal_id, &p, on_marked_page, m, &token, err,
                             errlen);
    if (rc == BM_EAUTH)
        bm__engine_needs_login(e, a);
    free(token);
    return rc;
}

/* Audits a marked event of cal (inside the caller's transaction) and plans its
 * deletion through the outbox, like every other block write. */
static int plan_marked_delete(bm_engine_t *e, const bm_calendar_t *cal, const bm_event_t *ev,
                              int64_t run, const char *action, char *err, size_t errlen)
{
    bm_plan_opts_t o = e->plan;
    o.block_summary = ev->summary;
    char *content = bm_plan_block_body(ev, ev->id, ev->marker_src, &o);
    bm_audit_t au = {.run_id = run,
                     .action = (char *)action,
                     .account_id = cal->account_id,
                     .gcal_id = cal->gcal_id,
                     .block_id = ev->id,
                     .content = content};
    int rc = bm_store_audit_add(e->st, &au, err, errlen);
    free(content);
    if (rc == BM_OK)
        rc = bm_store_outbox_put(e->st, cal->id, ev->id, BM_OUTBOX_DELETE, false, err, errlen);
    return rc;
}

static bool master_listed(const marked_t *m, const char *id)
{
    for (size_t i = 0; i < m->n; i++)
        if (strcmp(m->events[i].id, id) == 0)
            return true;
    return false;
}

/* Writes pending for a calendar's blocks, and those that failed for good. */
static int64_t unfinished(bm_engine_t *e, int64_t calendar_id, int64_t *dead, char *err,
                          size_t errlen)
{
    bm_health_t h = {0};
    int rc = bm_store_calendar_health(e->st, calendar_id, &h, err, errlen);
    *dead = h.dead_letters;
    return rc == BM_OK ? h.outbox : rc;
}

/* Audits each marked event found (inside the caller's transaction) and plans
 * its deletion through the outbox, like every other block write. */
static int plan_reset(bm_engine_t *e, const bm_calendar_t *cal, const marked_t *m,
                      bm_found_block_t **found, size_t *n_found, bool apply, char *err,
                      size_t errlen)
{
    int64_t run = 0;
    int rc = apply ? bm_store_audit_new_run(e->st, &run, err, errlen) : BM_OK;
    /* Forgotten first (its blocks, their pending writes, its sync token), so
     * that the planned deletions are what the outbox holds for it. */
    if (rc == BM_OK && apply)
        rc = bm_store_calendar_forget(e->st, cal->id, err, errlen);
    for (size_t i = 0; rc == BM_OK && i < m->n; i++) {
        bm_event_t *ev = &m->events[i];
        if (ev->recurring_event_id != NULL && master_listed(m, ev->recurring_event_id))
            continue; /* deleting the series deletes its occurrences */
        found_add(found, n_found, cal->gcal_id, ev->id, ev);
        if (apply)
            rc = plan_marked_delete(e, cal, ev, run, "reset", err, errlen);
    }
    /* Its sources list in full next time, so that blocks an undo puts back (or a
     * still enabled target's new ones) are known again. */
    if (rc == BM_OK && apply && cal->enabled)
        rc = bm_store_group_relist(e->st, cal->group_name, err, errlen);
    return rc;
}

int bm_engine_reset_calendar(bm_engine_t *e, const bm_calendar_t *cal, bool apply,
                             bm_found_block_t **found, size_t *n_found, size_t *n_failed, char *err,
                             size_t errlen)
{
    marked_t m = {0};
    int64_t dead0 = 0, dead = 0, left;
    *found = NULL;
    *n_found = 0;
    *n_failed = 0;
    int rc = list_marked(e, cal, &m, err, errlen);
    if (rc == BM_OK && apply && (left = unfinished(e, cal->id, &dead0, err, errlen)) < 0)
        rc = (int)left;
    if (rc != BM_OK)
        goto out;
    if (!apply) { /* only look */
        rc = plan_reset(e, cal, &m, found, n_found, false, err, errlen);
        goto out;
    }
    rc = bm_store_begin(e->st, err, errlen);
    if (rc != BM_OK)
        goto out;
    rc = plan_reset(e, cal, &m, found, n_found, true, err, errlen);
    if (rc == BM_OK)
        rc = bm_store_commit(e->st, err, errlen);
    else
        bm_store_rollback(e->st);
    if (rc == BM_OK)
        rc = bm_engine_drain(e, err, errlen);
    if (rc == BM_OK && (left = unfinished(e, cal->id, &dead, err, errlen)) < 0)
        rc = (int)left;
    if (rc == BM_OK)
        *n_failed = (size_t)(left + (dead > dead0 ? dead - dead0 : 0));
out:
    marked_dispose(&m);
    return rc;
}

/* ---- cleanup ---- */

void bm_cleanup_report_dispose(bm_cleanup_report_t *r)
{
    bm_found_blocks_free(r->orphans, r->n_orphans);
    memset(r, 0, sizeof(*r));
}

/* What the marker value msrc ("<hash>/<event>") of a block says about its source,
 * among the calendar rows all: *exists, some row is that calendar (any account,
 * any state); *wanted, an enabled source of group (NULL: none) other than the
 * calendar the block lives in (target_gcal_id) mirrors the event as busy. */
static int marker_source(bm_engine_t *e, const bm_calendar_t *all, size_t n_all, const char *msrc,
                         const char *group, const char *target_gcal_id, bool *exists, bool *wanted,
                         char *err, size_t errlen)
{
    const char *event = msrc != NULL ? strchr(msrc, '/') : NULL;
    int rc = BM_OK;
    *exists = *wanted = false;
    for (size_t i = 0; event != NULL && rc == BM_OK && i < n_all && !*wanted; i++) {
        const bm_calendar_t *c = &all[i];
        char *m = bm__engine_marker_src(c->gcal_id, event + 1);
        bool same = strcmp(m, msrc) == 0;
        free(m);
        if (!same)
            continue;
        *exists = true;
        if (!c->enabled || c->role == BM_ROLE_TARGET || group == NULL ||
            strcmp(c->group_name, group) != 0 || strcmp(c->gcal_id, target_gcal_id) == 0)
            continue;
        bm_source_t src = {0};
        rc = bm_store_source_get(e->st, c->id, event + 1, &src, err, errlen);
        *wanted = rc == BM_OK && src.busy;
        rc = rc == BM_ENOTFOUND ? BM_OK : rc;
        bm_source_dispose(&src);
    }
    return rc;
}

/* Whether block_id (or, for an occurrence, its series) has a row in cal. */
static int block_known(bm_engine_t *e, const bm_calendar_t *cal, const bm_event_t *ev, bool *yes,
                       char *err, size_t errlen)
{
    bm_block_t b = {0};
    int rc = bm_store_block_get(e->st, cal->id, ev->id, &b, err, errlen);
    if (rc == BM_ENOTFOUND && ev->recurring_event_id != NULL)
        rc = bm_store_block_get(e->st, cal->id, ev->recurring_event_id, &b, err, errlen);
    bm_block_dispose(&b);
    *yes = rc == BM_OK;
    return rc == BM_ENOTFOUND ? BM_OK : rc;
}

/* Marked events of cal, found in Google, that no block row manages and no source
 * wants (a lost row, a block put back by hand): orphans too (inside the caller's
 * transaction). */
static int plan_unmanaged(bm_engine_t *e, const bm_calendar_t *cal, const marked_t *m,
                          const bm_calendar_t *all, size_t n_all, int64_t run, bool apply,
                          bm_cleanup_report_t *r, char *err, size_t errlen)
{
    int rc = BM_OK;
    const char *group = cal->role != BM_ROLE_SOURCE ? cal->group_name : NULL; /* receives */
    for (size_t i = 0; rc == BM_OK && i < m->n; i++) {
        const bm_event_t *ev = &m->events[i];
        bool known, exists, wanted;
        if (ev->recurring_event_id != NULL && master_listed(m, ev->recurring_event_id))
            continue; /* goes with its series */
        rc = block_known(e, cal, ev, &known, err, errlen);
        if (rc == BM_OK && !known)
            rc = marker_source(e, all, n_all, ev->marker_src, group, cal->gcal_id, &exists, &wanted,
                               err, errlen);
        if (rc != BM_OK || known || wanted)
            continue;
        found_add(&r->orphans, &r->n_orphans, cal->gcal_id, ev->id, ev);
        if (apply)
            rc = plan_marked_delete(e, cal, ev, run, "cleanup", err, errlen);
    }
    return rc;
}

/* The marked events of every enabled calendar, in Google (*ms[i] for cals[i]). A
 * calendar that cannot be listed is checked locally only (logged). */
static int list_enabled_marked(bm_engine_t *e, bm_calendar_t **cals, size_t *n, marked_t **ms,
                               char *err, size_t errlen)
{
    char one[512];
    int rc = bm_store_calendar_list(e->st, 0, NULL, true, cals, n, err, errlen);
    *ms = bm_calloc(*n > 0 ? *n : 1, sizeof(**ms));
    for (size_t i = 0; rc == BM_OK && i < *n && !bm__engine_stopped(e); i++)
        if (list_marked(e, &(*cals)[i], &(*ms)[i], one, sizeof(one)) != BM_OK)
            BM_LOG(BM_LOG_WARN, BM_MSG("cannot list blocks in Google: checked locally only"),
                   BM_KS("calendar", (*cals)[i].gcal_id), BM_KS("error", one));
    return rc;
}

int bm_engine_cleanup(bm_engine_t *e, bool apply, bm_cleanup_report_t *r, char *err, size_t errlen)
{
    bm_block_t *orphans = NULL;
    bm_calendar_t *cals = NULL, *all = NULL;
    marked_t *ms = NULL;
    size_t n = 0, n_cals = 0, n_all = 0;
    int64_t run = 0, before = bm_now() - (int64_t)e->o.cfg->log.retention_days * 86400;
    memset(r, 0, sizeof(*r));
    int rc = list_enabled_marked(e, &cals, &n_cals, &ms, err, errlen);
    if (rc == BM_OK)
        rc = bm_store_begin(e->st, err, errlen);
    if (rc != BM_OK)
        goto out;
    rc = bm_store_blocks_orphaned(e->st, &orphans, &n, err, errlen);
    if (rc == BM_OK && apply)
        rc = bm_store_audit_new_run(e->st, &run, err, errlen);
    if (rc == BM_OK)
        rc = plan_deletes(e, orphans, n, run, "cleanup", &r->orphans, &r->n_orphans, err, errlen);
    if (rc == BM_OK)
        rc = bm_store_calendar_list(e->st, 0, NULL, false, &all, &n_all, err, errlen);
    for (size_t i = 0; rc == BM_OK && i < n_cals; i++)
        rc = plan_unmanaged(e, &cals[i], &ms[i], all, n_all, run, apply, r, err, errlen);
    if (rc == BM_OK)
        rc = bm_store_sources_purge_unused(e->st, apply, &r->sources, err, errlen);
    if (rc == BM_OK)
        rc = bm_store_logs_purge(e->st, before, apply, &r->sync_log, &r->audit_log, err, errlen);
    if (rc == BM_OK && apply)
        rc = bm_store_commit(e->st, err, errlen);
    else
        bm_store_rollback(e->st); /* a dry run looked, and leaves everything as it was */
    if (rc == BM_OK && apply)
        rc = bm_engine_drain(e, err, errlen);
out:
    for (size_t i = 0; ms != NULL && i < n_cals; i++)
        marked_dispose(&ms[i]);
    free(ms);
    bm_store_calendars_free(cals, n_cals);
    bm_store_calendars_free(all, n_all);
    bm_store_blocks_free(orphans, n);
    return rc;
}

/* ---- undo ---- */

/* Enables the calendar of membership entry au again, in the group and with the
 * role it had before the run, so that the blocks put back are managed. */
static int undo_membership(bm_engine_t *e, const bm_audit_t *au, char *err, size_t errlen)
{
    bm_calendar_t *cals = NULL;
    size_t n = 0;
    int rc =
        bm_store_calendar_list(e->st, au->account_id, au->gcal_id, false, &cals, &n, err, errlen);
    if (rc == BM_OK && n == 0)
        rc = bm_err(err, errlen, BM_ENOTFOUND, "calendar %s is gone", au->gcal_id);
    if (rc != BM_OK)
        goto out;
    if (!cals[0].enabled || strcmp(cals[0].group_name, au->group_name) != 0 ||
        cals[0].role != au->role)
        rc = bm_engine_set_membership(e, &cals[0], true, au->group_name, au->role, err, errlen);
    if (rc == BM_OK)
        rc = bm_store_audit_mark_undone(e->st, au->id, err, errlen);
    if (rc == BM_OK)
        fprintf(e->out, "calendar %s enabled again (group %s, role %s)\n", au->gcal_id,
                au->group_name, bm_role_name(au->role));
out:
    bm_store_calendars_free(cals, n);
    return rc;
}

/* The calendar block entry au lives in, if it and the block's source still exist:
 * a block of neither would be managed by nothing. */
static int undo_where(bm_engine_t *e, const bm_audit_t *au, const bm_calendar_t *all, size_t n_all,
                      const bm_calendar_t **target, char *err, size_t errlen)
{
    bm_event_t ev = {0};
    bool exists = false, wanted;
    *target = NULL;
    for (size_t i = 0; i < n_all && *target == NULL; i++)
        if (all[i].account_id == au->account_id && strcmp(all[i].gcal_id, au->gcal_id) == 0)
            *target = &all[i];
    if (*target == NULL)
        return bm_err(err, errlen, BM_ENOTFOUND, "its calendar is gone");
    int rc = bm_event_parse_json(au->content, strlen(au->content), &ev, err, errlen);
    if (rc == BM_OK)
        rc = marker_source(e, all, n_all, ev.marker_src, NULL, au->gcal_id, &exists, &wanted, err,
                           errlen);
    if (rc == BM_OK && !exists)
        rc = bm_err(err, errlen, BM_ENOTFOUND, "its source calendar is gone (account removed?)");
    bm_event_dispose(&ev);
    return rc;
}

/* A block that undo put back in t as au had it, where a source calendar of t's
 * group gives it (its id is that pair's): recorded as that source's block with
 * what it was, so that the group's next full listings keep it, rewrite it or
 * delete it as the rules of then want (a rule changed since the run), instead
 * of leaving an unmanaged block. A row already there, or no such source (an
 * orphan put back by undo of a cleanup): nothing recorded. */
static int adopt_restored(bm_engine_t *e, const bm_audit_t *au, const bm_calendar_t *t,
                          const bm_calendar_t *all, size_t n_all, char *err, size_t errlen)
{
    bm_event_t ev = {0};
    bm_block_t cur = {0};
    char *wanted = NULL;
    const char *event;
    int rc = bm_store_block_get(e->st, t->id, au->block_id, &cur, err, errlen);
    bm_block_dispose(&cur);
    if (rc != BM_ENOTFOUND)
        return rc; /* BM_OK: a row manages it already */
    if (au->action != NULL && strcmp(au->action, "cleanup") == 0)
        return BM_OK;
    rc = bm_event_parse_json(au->content, strlen(au->content), &ev, err, errlen);
    event = rc == BM_OK && ev.marker_src != NULL ? strchr(ev.marker_src, '/') : NULL;
    for (size_t i = 0; event != NULL && rc == BM_OK && i < n_all; i++) {
        const bm_calendar_t *c = &all[i];
        char bid[BM_BLOCK_ID_LEN + 1];
        if (!c->enabled || c->role == BM_ROLE_TARGET || !t->enabled || t->role == BM_ROLE_SOURCE ||
            strcmp(c->group_name, t->group_name) != 0)
            continue;
        bm_plan_block_id(c->group_name, c->gcal_id, event + 1, t->gcal_id, bid);
        if (strcmp(bid, au->block_id) != 0)
            continue;
        wanted = bm__engine_block_wanted(&ev);
        bm_block_t b = {.target_calendar_id = t->id,
                        .block_id = au->block_id,
                        .source_calendar_id = c->id,
                        .source_event_id = (char *)event + 1,
                        .wanted = wanted,
                        .body = au->content,
                        .created = true,
                        .state = BM_BLOCK_LIVE};
        rc = bm_store_block_put(e->st, &b, err, errlen);
        if (rc == BM_OK) /* in Google again: its tombstone goes */
            rc = bm_store_block_applied(e->st, t->id, au->block_id, true, NULL, err, errlen);
        break;
    }
    free(wanted);
    bm_event_dispose(&ev);
    return rc;
}

/* Re-creates the block of entry au in its calendar, in Google. */
static int undo_block(bm_engine_t *e, const bm_audit_t *au, const bm_calendar_t *all, size_t n_all,
                      char *err, size_t errlen)
{
    const bm_calendar_t *t;
    engine_account_t *a;
    long status = 0;
    int rc = undo_where(e, au, all, n_all, &t, err, errlen);
    if (rc == BM_OK)
        rc = bm__engine_account(e, t->account_id, &a, err, errlen);
    if (rc != BM_OK)
        return rc;
    char *path = bm_gcal_path_event(au->gcal_id, au->block_id);
    /* A deleted event's id stays taken: an update revives it. */
    rc = bm_gcal_call(e->gcal, &a->g, "PUT", path, au->content, &status, NULL, err, errlen);
    if (rc == BM_ENOTFOUND) {
        free(path);
        path = bm_gcal_path_events(au->gcal_id);
        rc = bm_gcal_call(e->gcal, &a->g, "POST", path, au->content, &status, NULL, err, errlen);
    }
    if (rc == BM_OK)
        rc = adopt_restored(e, au, t, all, n_all, err, errlen);
    if (rc == BM_OK)
        rc = bm_store_audit_mark_undone(e->st, au->id, err, errlen);
    if (rc == BM_OK) /* the group's next full listings adopt the block again */
        rc = bm_store_group_relist(e->st, t->group_name, err, errlen);
    free(path);
    return rc;
}

int bm_engine_undo(bm_engine_t *e, int64_t run_id, int64_t *run_out, size_t *restored,
                   size_t *failed, char *err, size_t errlen)
{
    bm_audit_t *entries = NULL;
    bm_calendar_t *all = NULL;
    size_t n = 0, n_all = 0;
    char one[512];
    *restored = *failed = 0;
    int rc = bm_store_audit_run(e->st, run_id, &entries, &n, err, errlen);
    if (rc == BM_OK && n == 0)
        rc = run_id == 0
                 ? bm_err(err, errlen, BM_ENOTFOUND, "the audit log is empty")
                 : bm_err(err, errlen, BM_ENOTFOUND, "no audited run %lld", (long long)run_id);
    if (rc != BM_OK)
        goto out;
    *run_out = entries[0].run_id;
    /* Memberships first: the blocks then come back into calendars that manage them. */
    for (size_t i = 0; i < n && !bm__engine_stopped(e); i++)
        if (entries[i].block_id == NULL && entries[i].undone_at == 0 &&
            undo_membership(e, &entries[i], one, sizeof(one)) != BM_OK)
            fprintf(e->out, "calendar %s not enabled again: %s\n", entries[i].gcal_id, one);
    rc = bm_store_calendar_list(e->st, 0, NULL, false, &all, &n_all, err, errlen);
    for (size_t i = 0; rc == BM_OK && i < n && !bm__engine_stopped(e); i++) {
        bm_audit_t *au = &entries[i];
        if (au->undone_at != 0 || au->content == NULL || au->block_id == NULL)
            continue;
        if (undo_block(e, au, all, n_all, one, sizeof(one)) == BM_OK) {
            (*restored)++;
        } else {
            (*failed)++;
            fprintf(e->out, "block %s in %s not re-created: %s\n", au->block_id, au->gcal_id, one);
        }
    }
out:
    bm_store_calendars_free(all, n_all);
    bm_store_audits_free(entries, n);
    return rc;
}

/* ---- account removal ---- */

int bm_engine_remove_account(bm_engine_t *e, const bm_account_t *acct, bool keep_blocks,
                             size_t *n_deleted, char *err, size_t errlen)
{
    bm_calendar_t *cals = NULL;
    size_t n = 0;
    int64_t run, applied0 = e->totals.applied, pending = 0;
    *n_deleted = 0;
    int rc = bm_store_calendar_list(e->st, acct->id, NULL, false, &cals, &n, err, errlen);
    if (rc != BM_OK)
        return rc;
    rc = bm_store_begin(e->st, err, errlen);
    if (rc != BM_OK)
        goto out;
    rc = bm_store_audit_new_run(e->st, &run, err, errlen);
    for (size_t i = 0; rc == BM_OK && i < n; i++) {
        if (keep_blocks) /* leave them in Google, forget that they are ours */
            rc = bm_store_blocks_forget_source(e->st, cals[i].id, err, errlen);
        else
            rc = plan_retire(e, &cals[i], run, "account-remove", err, errlen);
    }
    if (rc == BM_OK)
        rc = bm_store_commit(e->st, err, errlen);
    else
        bm_store_rollback(e->st);
    if (rc == BM_OK && !keep_blocks) {
        rc = bm_engine_drain(e, err, errlen);
        *n_deleted = (size_t)(e->totals.applied - applied0);
        for (size_t i = 0; rc == BM_OK && i < n; i++) {
            int64_t left = 0;
            rc = bm_store_blocks_pending_delete(e->st, cals[i].id, &left, err, errlen);
            pending += left;
        }
        if (rc == BM_OK && pending > 0)
            rc = bm_err(err, errlen, BM_EAPI,
                        "%lld blocks could not be deleted (see 'busymirror status'); the account "
                        "is kept: run again, or remove it with --keep-blocks",
                        (long long)pending);
    }
    for (size_t i = 0; rc == BM_OK && i < n; i++) /* while its credentials are still here */
        rc = bm_engine_stop_calendar_channels(e, cals[i].id, NULL, err, errlen);
    if (rc == BM_OK)
        rc = bm_store_account_remove(e->st, acct->id, err, errlen);
out:
    bm_store_calendars_free(cals, n);
    return rc;
}

/* ---- rules check ---- */

typedef struct rules_ctx {
    bm_plan_opts_t o;
    bm_rules_report_t *r;
    const volatile int *stop;
} rules_ctx_t;

static void count_skip(bm_rules_report_t *r, const char *reason)
{
    for (size_t i = 0; i < r->n_skipped; i++) {
        if (strcmp(r->skipped[i].reason, reason) == 0) {
            r->skipped[i].n++;
            return;
        }
    }
    if (r->n_skipped < BM_RULES_MAX_REASONS) {
        r->skipped[r->n_skipped].reason = reason;
        r->skipped[r->n_skipped++].n = 1;
    }
}

static int on_rules_page(void *ud, bm_event_t *events, size_t n)
{
    rules_ctx_t *c = ud;
    for (size_t i = 0; i < n; i++) {
        const bm_event_t *ev = &events[i];
        const char *why;
        if (ev->marker != NULL) {
            c->r->blocks++;
            continue;
        }
        c->r->listed++;
        if (!bm_plan_in_window(ev, &c->o)) {
            count_skip(c->r, "window");
        } else if (bm_plan_keep(ev, &c->o, &why)) {
            int64_t *off;
            size_t n_off;
            bool any_on;
            c->r->kept++;
            bm_plan_series_hours(ev, &c->o, &off, &n_off, &any_on);
            c->r->occurrences_off += (int64_t)n_off;
            free(off);
        } else {
            count_skip(c->r, why);
        }
    }
    return c->stop != NULL && *c->stop != 0 ? BM_ECANCELED : BM_OK;
}

int bm_engine_rules_check(bm_engine_t *e, const bm_calendar_t *cal, bm_rules_report_t *out,
                          char *err, size_t errlen)
{
    engine_account_t *a;
    char *token = NULL;
    memset(out, 0, sizeof(*out));
    int rc = bm__engine_account(e, cal->account_id, &a, err, errlen);
    if (rc != BM_OK)
        return rc;
    rules_ctx_t c = {.r = out, .stop = e->o.stop};
    bm__engine_plan_opts(e, cal, &c.o);
    /* As a sync's full listing, without deleted events: what is there now. */
    bm_gcal_list_params_t p = {.time_min = e->plan.window_start, .time_max = e->plan.window_end};
    rc = bm_gcal_list_events(e->gcal, &a->g, cal->gcal_id, &p, on_rules_page, &c, &token, err,
                             errlen);
    free(token); /* not kept: a check writes nothing (not even a needs-login mark) */
    return rc;
}
