/*
 * gateway/gateway.h: the h2o endpoint Google posts push notifications to, and
 * the admin listener (/healthz, /readyz, /metrics).
 *
 * A notification (POST on the path of [gateway] public_url) is checked (headers
 * present and bounded, channel token authentic) and handed to one committer
 * thread, which passes every note queued meanwhile to the caller's commit
 * callback at once (group commit: one transaction per batch) and answers each
 * request with the status the callback set. The gateway never answers 200 for
 * a note the callback has not committed: past commit_timeout_ms it answers 503
 * (Google retries).
 *
 * Threads: `threads` public event loops, one admin loop, one committer. The
 * commit callback runs on the committer thread, ready on the admin thread,
 * metrics collect callbacks on the admin thread (inside bm_metrics_render).
 */
#ifndef BM_GATEWAY_GATEWAY_H
#define BM_GATEWAY_GATEWAY_H

#include "core/config.h"
#include "core/crypto.h"
#include "core/metrics.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BM_GATEWAY_CHANNEL_ID_MAX  64  /* X-Goog-Channel-ID */
#define BM_GATEWAY_RESOURCE_ID_MAX 256 /* X-Goog-Resource-ID */
#define BM_GATEWAY_TOKEN_MAX       256 /* X-Goog-Channel-Token */

/* One authenticated notification of state exists or not_exists. */
typedef struct bm_gateway_note {
    char channel_id[BM_GATEWAY_CHANNEL_ID_MAX + 1];
    char resource_id[BM_GATEWAY_RESOURCE_ID_MAX + 1];
    char state[16];         /* "exists" or "not_exists" */
    int64_t message_number; /* X-Goog-Message-Number */
    int64_t received_ms;    /* wall clock, ms since the epoch */
    /* Out, set by the commit callback: 200 committed, 404 unknown channel, 400
     * resource id does not match the channel's, 503 not stored. Anything else
     * (or leaving it 0) answers 503. */
    int status;
} bm_gateway_note_t;

/*
 * Commits notes[0..n) in one transaction and sets each note's status. A
 * negative return (BM_E*) fails the whole batch: every note is answered 503.
 * Runs on the committer thread; the notes are the gateway's and valid only
 * during the call.
 */
typedef int (*bm_gateway_commit_fn)(void *ud, bm_gateway_note_t *notes, size_t n);
/* Whether the service is ready (for /readyz); if not, a reason in why. */
typedef bool (*bm_gateway_ready_fn)(void *ud, char *why, size_t whylen);

typedef struct bm_gateway_opts {
    const char *listen;       /* [gateway] listen, host:port (port 0: any free port) */
    const char *tls_cert;     /* PEM chain, or NULL: plain HTTP, loopback listen only */
    const char *tls_key;      /* PEM key, set exactly when tls_cert is */
    const char *public_url;   /* [gateway] public_url: its path is the notification route;
                                 NULL: no public listener (no push), the admin one only */
    int threads;              /* public event loops (0: 1) */
    int commit_timeout_ms;    /* 0: 2000 */
    const char *admin_listen; /* [admin] listen, or NULL for no admin listener */
    bool admin_allow_remote;  /* [admin] allow_remote */
    /* the key file's key (copied): channel tokens are checked with it */
    unsigned char key[BM_CRYPTO_KEY_LEN];
    bm_metrics_t *metrics; /* optional, the caller's; must outlive the gateway */
    bm_gateway_commit_fn commit;
    void *commit_ud;
    bm_gateway_ready_fn ready; /* optional: NULL is always ready */
    void *ready_ud;
    /* Limits; 0 picks the default shown. */
    size_t max_body;         /* request body bytes, past it 413 (4096) */
    size_t max_header_bytes; /* names and values of all request headers, past it 431 (8192) */
    int max_connections;     /* open connections on the public listener, past it closed (1024) */
    int max_queue;           /* notes waiting for the committer, past it 503 (4096) */
    int request_timeout_ms;  /* HTTP/1 request and keep-alive timeout (10000) */
    int idle_timeout_ms;     /* HTTP/2 idle timeout and TLS handshake timeout (10000) */
    int drain_ms;            /* stop: wait for open connections at most this long (3000, and
                                always more than commit_timeout_ms) */
    /* Benchmarks only: answer 200 on the notification path at once, before any
     * check or commit, to measure what h2o and TLS alone cost. */
    bool answer_at_once;
} bm_gateway_opts_t;

typedef struct bm_gateway bm_gateway_t;

/* Zeroes o and fills the [gateway] and [admin] keys of cfg (pointers into cfg,
 * which must outlive the start); key, metrics and callbacks stay the caller's. */
void bm_gateway_opts_from_config(bm_gateway_opts_t *o, const bm_config_t *cfg);

/*
 * Binds the listeners and starts every thread. BM_EINVAL (one line in err
 * naming the keys) for a bad option: a non-loopback [gateway] listen without
 * tls_cert/tls_key, a non-loopback [admin] listen without allow_remote, neither
 * public_url nor an admin listener, no commit callback. BM_EIO when a listener cannot be bound
 * or the certificate cannot be loaded. On failure nothing is left running.
 * *out is released with bm_gateway_free.
 */
int bm_gateway_start(const bm_gateway_opts_t *o, bm_gateway_t **out, char *err, size_t errlen);

/* The bound port of the public / admin listener (0 when there is none). */
int bm_gateway_port(const bm_gateway_t *gw);
int bm_gateway_admin_port(const bm_gateway_t *gw);

/*
 * Drains and stops: closes the listeners, lets requests in flight be answered
 * (the committer keeps committing), waits at most drain_ms for connections to
 * close, then closes the rest, stops the committer and every loop. Returns
 * once every thread has ended (after the commit callback in progress, if any,
 * returns). Idempotent.
 */
void bm_gateway_stop(bm_gateway_t *gw);
/* Stops (if needed) and frees everything; NULL is fine. */
void bm_gateway_free(bm_gateway_t *gw);

#endif
