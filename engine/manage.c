/*
 * engine/manage.c: the operator's side of the engine: retiring a calendar,
 * reset, cleanup, undo and account removal. Every deletion is audited with the
 * block's content before it is made.
 */
#include "core/log.h"
#include "core/util.h"
#include "engine/engine-int.h"
#include "engine/engine.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DELETE_ATTEMPTS 6

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
        if (b[i].master_block_id != NULL || b[i].shape == NULL) /* goes with its series */
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
        free(b[i].shape);
        b[i].shape = NULL;
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

int bm_engine_retire_calendar(bm_engine_t *e, const bm_calendar_t *cal, const char *action,
                              bool enabled, const char *group, bm_role_t role, char *err,
                              size_t errlen)
{
    int64_t run;
    int rc = bm_store_begin(e->st, err, errlen);
    if (rc != BM_OK)
        return rc;
    rc = bm_store_audit_new_run(e->st, &run, err, errlen);
    if (rc == BM_OK)
        rc = plan_retire(e, cal, run, action, err, errlen);
    if (rc == BM_OK)
        rc = bm_store_calendar_set_enabled(e->st, cal->id, enabled, group, role, err, errlen);
    if (rc == BM_OK && enabled) /* the new group gained a member */
        rc = bm_store_group_relist(e->st, group != NULL ? group : cal->group_name, err, errlen);
    if (rc == BM_OK)
        rc = bm_store_commit(e->st, err, errlen);
    else
        bm_store_rollback(e->st);
    return rc == BM_OK ? bm_engine_drain(e, err, errlen) : rc;
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

/* Deletes events of one calendar now, in batches, retrying transient failures.
 * Returns how many could not be deleted. */
static size_t delete_now(bm_engine_t *e, engine_account_t *a, const char *gcal_id, const char **ids,
                         size_t n)
{
    size_t batch = bm__engine_batch_size(e), failed = 0;
    char err[512];
    bool *done = bm_calloc(n ? n : 1, sizeof(*done));
    bm_gcal_req_t *reqs = bm_calloc(batch, sizeof(*reqs));
    char **paths = bm_calloc(batch, sizeof(*paths));
    size_t idx[BM_GCAL_MAX_BATCH];
    for (int attempt = 0; attempt < DELETE_ATTEMPTS && !bm__engine_stopped(e); attempt++) {
        size_t left = 0;
        for (size_t lo = 0; lo < n;) {
            size_t k = 0;
            for (; lo < n && k < batch; lo++) {
                if (done[lo])
                    continue;
                idx[k] = lo;
                paths[k] = bm_gcal_path_event(gcal_id, ids[lo]);
                reqs[k].method = "DELETE";
                reqs[k].path = paths[k];
                k++;
            }
            if (k == 0)
                break;
            int rc = bm_gcal_batch(e->gcal, &a->g, reqs, k, err, sizeof(err));
            for (size_t j = 0; j < k; j++) {
                bm_outcome_t o =
                    rc == BM_OK ? bm_retry_classify(reqs[j].status, reqs[j].reason, BM_RETRY_DELETE)
                                : BM_OUTCOME_RETRY;
                if (o == BM_OUTCOME_DONE) {
                    done[idx[j]] = true;
                } else if (o == BM_OUTCOME_DEAD) {
                    done[idx[j]] = true; /* permanent: counted, not retried */
                    failed++;
                } else {
                    left++;
                }
                free(paths[j]);
            }
            bm_gcal_reqs_dispose(reqs, k);
        }
        if (left == 0)
            break;
        long ms = bm_retry_backoff_ms(attempt, 500, 8000, &e->rng);
        struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
    for (size_t i = 0; i < n; i++)
        failed += !done[i];
    free(done);
    free(reqs);
    free(paths);
    return failed;
}

static bool master_listed(const marked_t *m, const char *id)
{
    for (size_t i = 0; i < m->n; i++)
        if (strcmp(m->events[i].id, id) == 0)
            return true;
    return false;
}

int bm_engine_reset_calendar(bm_engine_t *e, const bm_calendar_t *cal, bool apply,
                             bm_found_block_t **found, size_t *n_found, size_t *n_failed, char *err,
                             size_t errlen)
{
    engine_account_t *a;
    marked_t m = {0};
    const char **ids = NULL;
    size_t n_ids = 0;
    char *token = NULL;
    int64_t run = 0;
    bool in_txn = false;
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
    if (rc != BM_OK)
        goto out;
    ids = bm_calloc(m.n ? m.n : 1, sizeof(*ids));
    if (apply) {
        rc = bm_store_begin(e->st, err, errlen);
        in_txn = rc == BM_OK;
        if (rc == BM_OK)
            rc = bm_store_audit_new_run(e->st, &run, err, errlen);
    }
    for (size_t i = 0; rc == BM_OK && i < m.n; i++) {
        bm_event_t *ev = &m.events[i];
        if (ev->recurring_event_id != NULL && master_listed(&m, ev->recurring_event_id))
            continue; /* deleting the series deletes its occurrences */
        found_add(found, n_found, cal->gcal_id, ev->id, ev);
        ids[n_ids++] = ev->id;
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
    }
    if (!apply || rc != BM_OK)
        goto out;
    rc = bm_store_commit(e->st, err, errlen); /* the audit first: undo can repair anything */
    in_txn = false;
    if (rc != BM_OK)
        goto out;
    *n_failed = delete_now(e, a, cal->gcal_id, ids, n_ids);
    rc = bm_store_begin(e->st, err, errlen);
    in_txn = rc == BM_OK;
    if (rc == BM_OK)
        rc = bm_store_calendar_forget(e->st, cal->id, err, errlen);
    /* Its sources list in full next time, so that blocks an undo puts back (or a
     * still enabled target's new ones) are known again. */
    if (rc == BM_OK && cal->enabled)
        rc = bm_store_group_relist(e->st, cal->group_name, err, errlen);
    if (rc == BM_OK)
        rc = bm_store_commit(e->st, err, errlen);
    in_txn = false;
out:
    if (in_txn)
        bm_store_rollback(e->st);
    for (size_t i = 0; i < m.n; i++)
        bm_event_dispose(&m.events[i]);
    free(m.events);
    free(ids);
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
        char *path = bm_gcal_path_event(au->gcal_id, au->block_id);
        /* A deleted event's id stays taken: an update revives it. */
        int r =
            bm_gcal_call(e->gcal, &a->g, "PUT", path, au->content, &status, NULL, one, sizeof(one));
        if (r == BM_ENOTFOUND) {
            free(path);
            path = bm_gcal_path_events(au->gcal_id);
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
