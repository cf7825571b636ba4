/*
 * gateway/gateway-int.h: what the gateway's files share (private to gateway/).
 *
 *   gateway.c    options, TLS, listeners, event-loop threads, drain and stop
 *   routes.c     request handlers of the public and admin listeners, responses
 *   committer.c  the group-commit thread and the way its answers come back
 *
 * Thread ownership: a loop_t and everything h2o in it belong to its thread;
 * only the committer queue (committer.mu) and the atomics are shared.
 */
#ifndef BM_GATEWAY_GATEWAY_INT_H
#define BM_GATEWAY_GATEWAY_INT_H

#include "gateway/gateway.h"

#include <h2o.h>
#include <pthread.h>
#include <stdatomic.h>

/* What became of a notification: the label of bm_gateway_notifications_total. */
typedef enum {
    BM__GW_OK,
    BM__GW_SYNC,
    BM__GW_UNKNOWN_CHANNEL,
    BM__GW_BAD_TOKEN,
    BM__GW_BAD_RESOURCE,
    BM__GW_MISSING_HEADERS,
    BM__GW_MALFORMED_HEADERS,
    BM__GW_NOT_STORED,
    BM__GW_TIMEOUT,
    BM__GW_QUEUE_FULL,
    BM__GW_TOO_LARGE,
    BM__GW_HEADERS_TOO_LARGE,
    BM__GW_BAD_METHOD,
    BM__GW_N_RESULTS
} bm__gw_result_t;

typedef struct bm__gw_loop bm__gw_loop_t;
typedef struct bm__gw_waiter bm__gw_waiter_t;

/* A note on its way to the committer and back (heap; freed by the loop thread
 * that receives it back). */
typedef struct bm__gw_pending {
    h2o_multithread_message_t msg; /* first member: the receiver casts back */
    struct bm__gw_pending *next;   /* in the committer queue */
    bm__gw_loop_t *loop;           /* whose receiver gets the answer */
    bm__gw_waiter_t *waiter;       /* loop thread only; NULL once the request is gone */
    bm_gateway_note_t note;
} bm__gw_pending_t;

struct bm__gw_loop {
    bm_gateway_t *gw;
    bool admin;
    int fd; /* listening socket (owned until the listener wraps it) */
    pthread_t tid;
    bool started;
    h2o_evloop_t *evloop;
    h2o_context_t ctx;
    h2o_accept_ctx_t accept;
    h2o_socket_t *listener;
    h2o_multithread_receiver_t wake;                  /* NULL messages from bm_gateway_stop */
    h2o_multithread_receiver_t results;               /* public loops: answers of the committer */
    h2o_timeout_t commit_timeout;                     /* public loops */
    h2o_timeout_entry_t flush;                        /* on ctx.zero_timeout: hands `outbox` over */
    struct bm__gw_pending *outbox_head, *outbox_tail; /* queued during this loop iteration */
    size_t n_outbox;
    h2o_linklist_t conns; /* open connections (conn_t) */
    int n_conns;
    int n_waiting; /* requests waiting for the committer */
};

struct bm_gateway {
    bm_gateway_opts_t o; /* defaults applied; string members point into start's argument
                            only during start */
    char *notify_path;
    SSL_CTX *ssl_ctx;
    h2o_globalconf_t pub_conf, admin_conf;
    bool confs_inited;
    int port, admin_port;
    bm__gw_loop_t *loops; /* the public loops, then the admin loop */
    size_t n_loops, n_started;

    pthread_mutex_t mu; /* n_ready, n_drained */
    pthread_cond_t cv;
    size_t n_ready, n_drained;
    atomic_bool stopping, committer_done;
    bool stopped, leaked;
    atomic_int n_public_conns;

    struct {
        pthread_mutex_t mu;
        pthread_cond_t cv;
        bm__gw_pending_t *head, *tail;
        size_t n_queued;
        atomic_size_t n_pending; /* in loop outboxes or queued: bounded by max_queue */
        bool stop, started;
        pthread_t tid;
    } committer;

    /* rejections logged at most once a second per result */
    _Atomic int64_t last_log_s[BM__GW_N_RESULTS];
    _Atomic int64_t suppressed[BM__GW_N_RESULTS];
};

/* The one handler of each listener (h2o_create_handler allocates it). */
typedef struct bm__gw_handler {
    h2o_handler_t super; /* first member: h2o passes it back */
    bm_gateway_t *gw;
} bm__gw_handler_t;

/* gateway.c */
/* 127.0.0.0/8, ::1 or an IPv4-mapped 127.x address. */
bool bm__gw_is_loopback(const struct sockaddr *sa);

/* routes.c */
int bm__gw_on_public_req(h2o_handler_t *self, h2o_req_t *req);
int bm__gw_on_admin_req(h2o_handler_t *self, h2o_req_t *req);
/* Sends a short text/plain answer with Content-Length; allow (a static string)
 * adds an Allow header when not NULL. */
void bm__gw_respond(h2o_req_t *req, int status, const char *body, const char *allow);
/* Counts one result and, when it is a rejection, logs it (rate-limited); req
 * may be NULL when the client is gone. */
void bm__gw_account(bm_gateway_t *gw, bm__gw_result_t r, h2o_req_t *req, const char *channel_id);
/* Creates every gateway series at zero, with its help text. */
void bm__gw_metrics_init(bm_gateway_t *gw);
bm__gw_loop_t *bm__gw_loop_of(h2o_req_t *req);

/* committer.c */
int bm__gw_committer_start(bm_gateway_t *gw, char *err, size_t errlen);
/* Commits what is queued, then ends the thread (no more submits succeed). */
void bm__gw_committer_stop(bm_gateway_t *gw);
/* Queues note for req (loop thread): the loop hands what it queued to the
 * committer at the end of its iteration, and the answer comes back on the loop.
 * BM_EBUSY (answer 503) when max_queue notes are already on their way. */
int bm__gw_submit(bm__gw_loop_t *l, h2o_req_t *req, const bm_gateway_note_t *note);
/* The receiver callback of loop->results. */
void bm__gw_on_results(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages);

#endif
