/*
 * gateway/committer.c: group commit. Loop threads queue notes; one committer
 * thread takes everything queued at once, hands it to the commit callback (one
 * transaction), and posts each note back to its loop, which answers there.
 *
 * A request and its pending note are tied by a waiter in the request's pool:
 * whichever of the answer, the commit timeout or the request's disposal comes
 * first unties them, so a late answer finds no request and is only freed.
 */
#include "gateway/gateway-int.h"

#include "core/log.h"

#include <stdlib.h>
#include <string.h>

struct bm__gw_waiter {
    h2o_timeout_entry_t timer; /* first member: the callback casts back */
    h2o_req_t *req;
    bm__gw_pending_t *pending;
    bm__gw_loop_t *loop;
};

/* Unties w from its pending note and its timer; the request stays w's. */
static void waiter_detach(bm__gw_waiter_t *w)
{
    if (h2o_timeout_is_linked(&w->timer))
        h2o_timeout_unlink(&w->timer);
    if (w->pending != NULL) {
        w->pending->waiter = NULL;
        w->pending = NULL;
        w->loop->n_waiting--;
    }
}

static void waiter_dispose(void *p)
{
    bm__gw_waiter_t *w = p;
    waiter_detach(w);
    w->req = NULL;
}

static void on_commit_timeout(h2o_timeout_entry_t *entry)
{
    bm__gw_waiter_t *w = (bm__gw_waiter_t *)entry;
    h2o_req_t *req = w->req;
    const char *channel = w->pending != NULL ? w->pending->note.channel_id : "";
    bm__gw_account(w->loop->gw, BM__GW_TIMEOUT, req, channel);
    waiter_detach(w);
    w->req = NULL;
    if (req != NULL)
        bm__gw_respond(req, 503, "not stored yet, retry\n", NULL);
}

/* The zero timeout of a loop iteration that queued notes: hands them all to the
 * committer with one lock and one wake-up (the first step of the group commit). */
static void on_flush(h2o_timeout_entry_t *entry)
{
    bm__gw_loop_t *l = H2O_STRUCT_FROM_MEMBER(bm__gw_loop_t, flush, entry);
    bm_gateway_t *gw = l->gw;
    bm__gw_pending_t *head = l->outbox_head, *tail = l->outbox_tail;
    size_t n = l->n_outbox;
    if (head == NULL)
        return;
    l->outbox_head = l->outbox_tail = NULL;
    l->n_outbox = 0;
    pthread_mutex_lock(&gw->committer.mu);
    bool stopped = gw->committer.stop;
    if (!stopped) {
        if (gw->committer.tail != NULL)
            gw->committer.tail->next = head;
        else
            gw->committer.head = head;
        gw->committer.tail = tail;
        gw->committer.n_queued += n;
        pthread_cond_signal(&gw->committer.cv);
    }
    pthread_mutex_unlock(&gw->committer.mu);
    for (bm__gw_pending_t *p = stopped ? head : NULL, *next; p != NULL; p = next) {
        next = p->next; /* too late for the committer: answered 503 like a failed commit */
        p->next = NULL;
        p->note.status = 503;
        atomic_fetch_sub(&gw->committer.n_pending, 1);
        h2o_multithread_send_message(&l->results, &p->msg);
    }
}

int bm__gw_submit(bm__gw_loop_t *l, h2o_req_t *req, const bm_gateway_note_t *note)
{
    bm_gateway_t *gw = l->gw;
    if (atomic_fetch_add(&gw->committer.n_pending, 1) >= (size_t)gw->o.max_queue) {
        atomic_fetch_sub(&gw->committer.n_pending, 1);
        return BM_EBUSY;
    }
    bm__gw_pending_t *p = bm_calloc(1, sizeof(*p));
    p->loop = l;
    p->note = *note;
    p->note.status = 0;
    bm__gw_waiter_t *w = h2o_mem_alloc_shared(&req->pool, sizeof(*w), waiter_dispose);
    memset(w, 0, sizeof(*w));
    w->timer.cb = on_commit_timeout;
    w->req = req;
    w->pending = p;
    w->loop = l;
    p->waiter = w;
    l->n_waiting++;
    h2o_timeout_link(l->evloop, &l->commit_timeout, &w->timer);
    if (l->outbox_tail != NULL)
        l->outbox_tail->next = p;
    else
        l->outbox_head = p;
    l->outbox_tail = p;
    l->n_outbox++;
    if (!h2o_timeout_is_linked(&l->flush)) {
        l->flush.cb = on_flush;
        h2o_timeout_link(l->evloop, &l->ctx.zero_timeout, &l->flush);
    }
    return BM_OK;
}

/* Commits one batch (the committer thread) and posts every note back. */
static void commit_batch(bm_gateway_t *gw, bm__gw_pending_t *batch, size_t n)
{
    bm_gateway_note_t *notes = bm_calloc(n, sizeof(*notes));
    size_t i = 0;
    for (bm__gw_pending_t *p = batch; p != NULL; p = p->next)
        notes[i++] = p->note;
    int64_t t0 = bm_mono_ms();
    int rc = gw->o.commit(gw->o.commit_ud, notes, n);
    double secs = (double)(bm_mono_ms() - t0) / 1000.0;
    if (gw->o.metrics != NULL) {
        bm_metrics_counter_add(gw->o.metrics, "bm_gateway_commit_batches_total", NULL, 1);
        bm_metrics_counter_add(gw->o.metrics, "bm_gateway_commit_notes_total", NULL, n);
        bm_metrics_gauge_set(gw->o.metrics, "bm_gateway_commit_last_batch_size", NULL, (double)n);
        bm_metrics_histogram_observe(gw->o.metrics, "bm_gateway_commit_seconds", NULL, secs);
    }
    if (rc < 0)
        BM_LOG(BM_LOG_WARN, BM_MSG("notification batch not stored"), BM_KI("notes", n),
               BM_KS("error", bm_strerror(rc)));
    i = 0;
    for (bm__gw_pending_t *p = batch, *next; p != NULL; p = next) {
        next = p->next;
        p->next = NULL;
        p->note.status = rc < 0 ? 503 : notes[i].status;
        i++;
        h2o_multithread_send_message(&p->loop->results, &p->msg);
    }
    free(notes);
}

static void *committer_main(void *arg)
{
    bm_gateway_t *gw = arg;
    pthread_mutex_lock(&gw->committer.mu);
    for (;;) {
        while (gw->committer.head == NULL && !gw->committer.stop)
            pthread_cond_wait(&gw->committer.cv, &gw->committer.mu);
        if (gw->committer.head == NULL)
            break;
        bm__gw_pending_t *batch = gw->committer.head;
        size_t n = gw->committer.n_queued;
        gw->committer.head = gw->committer.tail = NULL;
        gw->committer.n_queued = 0;
        pthread_mutex_unlock(&gw->committer.mu);
        atomic_fetch_sub(&gw->committer.n_pending, n);
        commit_batch(gw, batch, n);
        pthread_mutex_lock(&gw->committer.mu);
    }
    pthread_mutex_unlock(&gw->committer.mu);
    return NULL;
}

int bm__gw_committer_start(bm_gateway_t *gw, char *err, size_t errlen)
{
    int e = pthread_create(&gw->committer.tid, NULL, committer_main, gw);
    if (e != 0)
        return bm_err(err, errlen, BM_EIO, "gateway: cannot start the committer: %s", strerror(e));
    gw->committer.started = true;
    return BM_OK;
}

void bm__gw_committer_stop(bm_gateway_t *gw)
{
    if (!gw->committer.started)
        return;
    pthread_mutex_lock(&gw->committer.mu);
    gw->committer.stop = true;
    pthread_cond_signal(&gw->committer.cv);
    pthread_mutex_unlock(&gw->committer.mu);
    int e = pthread_join(gw->committer.tid, NULL);
    if (e != 0)
        BM_LOG(BM_LOG_ERROR, BM_MSG("gateway: cannot join the committer"),
               BM_KS("error", strerror(e)));
    gw->committer.started = false;
}

static bm__gw_result_t result_of(int status)
{
    switch (status) {
    case 200:
        return BM__GW_OK;
    case 404:
        return BM__GW_UNKNOWN_CHANNEL;
    case 400:
        return BM__GW_BAD_RESOURCE;
    default:
        return BM__GW_NOT_STORED;
    }
}

static void answer(h2o_req_t *req, bm__gw_result_t r)
{
    switch (r) {
    case BM__GW_OK:
        bm__gw_respond(req, 200, "ok\n", NULL);
        break;
    case BM__GW_UNKNOWN_CHANNEL:
        bm__gw_respond(req, 404, "unknown channel\n", NULL);
        break;
    case BM__GW_BAD_RESOURCE:
        bm__gw_respond(req, 400, "resource id does not match the channel\n", NULL);
        break;
    default:
        bm__gw_respond(req, 503, "not stored, retry\n", NULL);
        break;
    }
}

void bm__gw_on_results(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    (void)receiver;
    while (!h2o_linklist_is_empty(messages)) {
        h2o_multithread_message_t *m =
            H2O_STRUCT_FROM_MEMBER(h2o_multithread_message_t, link, messages->next);
        h2o_linklist_unlink(&m->link);
        bm__gw_pending_t *p = (bm__gw_pending_t *)m;
        bm__gw_waiter_t *w = p->waiter;
        h2o_req_t *req = w != NULL ? w->req : NULL;
        bm__gw_result_t r = result_of(p->note.status);
        bm__gw_account(p->loop->gw, r, req, p->note.channel_id);
        if (w != NULL) {
            waiter_detach(w);
            w->req = NULL;
            if (req != NULL)
                answer(req, r);
        }
        free(p);
    }
}
