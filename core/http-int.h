/*
 * core/http-int.h: HTTP for core/ (libcurl), private to core/ sources: nothing
 * outside core/ includes it, and nothing above core/http.c calls curl.
 *
 * One bm_http_t per client, shared by every thread: connections, DNS and TLS
 * sessions live in one CURLSH and easy handles are pooled, so requests reuse
 * connections (HTTP/2 where the server offers it over TLS). Every request has a
 * connect and a total timeout; a response body larger than the caller's
 * bm_http_resp_t maximum fails with BM_ETOOBIG. A nonzero *stop aborts reads
 * (GET) at once; a write in flight completes, so its result is known.
 *
 * Ownership: bm__http_new() copies nothing but the stop pointer, which must
 * outlive the client (user_agent is copied). bm_http_resp_t is caller-owned:
 * bm__http_resp_init() / bm__http_resp_dispose(); its body may be stolen.
 */
#ifndef BM_CORE_HTTP_INT_H
#define BM_CORE_HTTP_INT_H

#include "core/util.h"

#include <stdbool.h>
#include <stddef.h>

#define BM_HTTP_RETRY_AFTER_MAX 600000L /* never wait longer than this for Retry-After */

typedef struct bm_http bm_http_t;

typedef struct bm_http_opts {
    const char *user_agent;   /* copied */
    long connect_timeout_ms;  /* > 0 */
    long timeout_ms;          /* whole request, > 0 */
    const volatile int *stop; /* optional, borrowed */
} bm_http_opts_t;

typedef struct bm_http_resp {
    long status;   /* the final HTTP status */
    bm_buf_t body; /* bounded by the max given to bm__http_resp_init() */
    char content_type[256];
    long retry_after_ms; /* Retry-After (seconds or HTTP date) in ms, capped; -1 absent */
    bool too_big;
} bm_http_resp_t;

/* BM_EIO when curl cannot be initialised (message in err). */
int bm__http_new(const bm_http_opts_t *o, bm_http_t **out, char *err, size_t errlen);
/* No request may be in progress. NULL is fine. */
void bm__http_free(bm_http_t *h);

void bm__http_resp_init(bm_http_resp_t *r, size_t max_body);
/* The same for an answer that holds secrets (a token answer): the body is a secret
 * buffer (bm_buf_init_secret), wiped as it grows, on each retry and at dispose. */
void bm__http_resp_init_secret(bm_http_resp_t *r, size_t max_body);
/* Wipes the body first when wipe (it held secrets), then frees it. */
void bm__http_resp_dispose(bm_http_resp_t *r, bool wipe);

/*
 * One HTTP exchange. headers are n_headers complete "Name: value" lines (copied;
 * the copies are wiped after the request, so a bearer token may be among them).
 * body may be NULL; a POST without one sends an empty body. Returns 0 when a
 * response arrived (resp->status set, any status), BM_ETRANSIENT on a network
 * failure or timeout (curl's message in err, secrets masked), BM_ETOOBIG,
 * BM_ECANCELED (stopped) or BM_EIO. resp is reset first.
 */
int bm__http_perform(bm_http_t *h, const char *method, const char *url, const char *const *headers,
                     size_t n_headers, const char *body, size_t body_len, bm_http_resp_t *resp,
                     char *err, size_t errlen);

#endif
