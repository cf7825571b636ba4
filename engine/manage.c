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
    if (rc == BM_OK && leaving)
        rc = bm_store_audit_new_run(e->st, &run, err, errlen);
    if (rc == BM_OK && leaving)
        rc = plan_retire(e, cal, run, enabled ? "regroup" : "disable", err, errlen);
    if (rc == BM_OK)
        rc = bm_store_calendar_set_enabled(e->st, cal->id, enabled, group, role, err, errlen);
    if (rc == BM_OK && enabled) /* the group gained a member: its calendars list in full */
        rc = bm_store_group_relist(e->st, new_group, err, errlen);
    if (rc == BM_OK)
        rc = bm_store_commit(e->st, err, errlen);
    else
        bm_store_rollback(e->st);
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
        if (!apply)
            continue;
        bm_plan_opts_t o = e->plan;
        o.block_summary = ev->summary;
        char *content = bm_plan_block_body(ev, ev->id, ev->marker_src, &o);
        bm_audit_t au = {.run_id = run,
                         .action = "reset",
                         .account_id = cal->account_id,
                         .gcal_id = cal->gcal_id,
                         .block_id = ev->id,
                         .content = content};
        rc = bm_store_audit_add(e->st, &au, err, errlen);
        free(content);
        if (rc == BM_OK)
            rc = bm_store_outbox_put(e->st, cal->id, ev->id, BM_OUTBOX_DELETE, false, err, errlen);
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
    engine_account_t *a;
    marked_t m = {0};
    char *token = NULL;
    int64_t dead0 = 0, dead = 0, left;
    *found = NULL;
    *n_found = 0;
    *n_failed = 0;
    int rc = bm__engine_account(e, cal->account_id, &a, err, errlen);
    if (rc != BM_OK)
        goto out;
    bm_gcal_list_params_t p = {.private_property = BM_MARKER_KEY "=1"};
    rc = bm_gcal_list_events(e->gcal, &a->g, cal->gcal_id, &p, on_marked_page, &m, &token, err,
                             errlen);
    if (rc == BM_EAUTH)
        bm__engine_needs_login(e, a);
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
    for (size_t i = 0; i < m.n; i++)
        bm_event_dispose(&m.events[i]);
    free(m.events);
    free(token);
    return rc;
}

/* ---- cleanup ---- */

void bm_cleanup_report_dispose(bm_cleanup_report_t *r)
{
    bm_found_blocks_free(r->orphans, r->n_orphans);
    memset(r, 0, sizeof(*r));
}

int bm_engine_cleanup(bm_engine_t *e, bool apply, bm_cleanup_report_t *r, char *err, size_t errlen)
{
    bm_block_t *orphans = NULL;
    size_t n = 0;
    int64_t run = 0, before = bm_now() - (int64_t)e->o.cfg->log.retention_days * 86400;
    memset(r, 0, sizeof(*r));
    int rc = bm_store_begin(e->st, err, errlen);
    if (rc != BM_OK)
        return rc;
    rc = bm_store_blocks_orphaned(e->st, &orphans, &n, err, errlen);
    if (rc == BM_OK && apply)
        rc = bm_store_audit_new_run(e->st, &run, err, errlen);
    if (rc == BM_OK)
        rc = plan_deletes(e, orphans, n, run, "cleanup", &r->orphans, &r->n_orphans, err, errlen);
    if (rc == BM_OK)
        rc = bm_store_sources_purge_unused(e->st, apply, &r->sources, err, errlen);
    if (rc == BM_OK)
        rc = bm_store_logs_purge(e->st, before, apply, &r->sync_log, &r->audit_log, err, errlen);
    if (rc == BM_OK && apply)
        rc = bm_store_commit(e->st, err, errlen);
    else
        bm_store_rollback(e->st); /* a dry run looked, and leaves everything as it was */
    bm_store_blocks_free(orphans, n);
    return rc == BM_OK && apply ? bm_engine_drain(e, err, errlen) : rc;
}

/* ---- undo ---- */

int bm_engine_undo(bm_engine_t *e, int64_t run_id, int64_t *run_out, size_t *restored,
                   size_t *failed, char *err, size_t errlen)
{
    bm_audit_t *entries = NULL;
    size_t n = 0;
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
    for (size_t i = 0; i < n && !bm__engine_stopped(e); i++) {
        bm_audit_t *au = &entries[i];
        bm_calendar_t *cals = NULL;
        size_t nc = 0;
        engine_account_t *a;
        long status = 0;
        if (au->undone_at != 0 || au->content == NULL)
            continue;
        if (bm_store_calendar_list(e->st, au->account_id, au->gcal_id, false, &cals, &nc, one,
                                   sizeof(one)) != BM_OK ||
            nc == 0 || bm__engine_account(e, cals[0].account_id, &a, one, sizeof(one)) != BM_OK) {
            BM_LOG(BM_LOG_WARN, BM_MSG("cannot restore a block: its account is gone or logged out"),
                   BM_KS("calendar", au->gcal_id), BM_KS("block", au->block_id));
            (*failed)++;
            bm_store_calendars_free(cals, nc);
            continue;
        }
        char *cal = bm_gcal_escape(au->gcal_id);
        char *path = bm_sprintf("/calendars/%s/events/%s?sendUpdates=none", cal, au->block_id);
        /* A deleted event's id stays taken: an update revives it. */
        int r =
            bm_gcal_call(e->gcal, &a->g, "PUT", path, au->content, &status, NULL, one, sizeof(one));
        if (r == BM_ENOTFOUND) {
            free(path);
            path = bm_sprintf("/calendars/%s/events?sendUpdates=none", cal);
            r = bm_gcal_call(e->gcal, &a->g, "POST", path, au->content, &status, NULL, one,
                             sizeof(one));
        }
        if (r == BM_OK)
            r = bm_store_audit_mark_undone(e->st, au->id, one, sizeof(one));
        if (r == BM_OK) /* the group's next full listings adopt the block again */
            r = bm_store_group_relist(e->st, cals[0].group_name, one, sizeof(one));
        if (r == BM_OK) {
            (*restored)++;
        } else {
            (*failed)++;
            BM_LOG(BM_LOG_WARN, BM_MSG("cannot restore a block"), BM_KS("calendar", au->gcal_id),
                   BM_KS("block", au->block_id), BM_KS("error", one));
        }
        free(path);
        free(cal);
        bm_store_calendars_free(cals, nc);
    }
out:
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
    if (rc == BM_OK)
        rc = bm_store_account_remove(e->st, acct->id, err, errlen);
out:
    bm_store_calendars_free(cals, n);
    return rc;
}
