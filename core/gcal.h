/*
 * core/gcal.h: the Google Calendar API v3 client (libcurl + yajl).
 *
 * One bm_gcal_t per process, shared by every thread; its HTTP (core/http.c)
 * shares connections, DNS and TLS sessions and pools handles, so calls reuse
 * connections (HTTP/2 where the server offers it over TLS). Every call has a
 * connect and a total timeout. Responses are capped (BM_GCAL_MAX_RESPONSE):
 * a larger one fails with BM_ETOOBIG. OAuth's form and answers: core/oauth.h.
 *
 * Retries inside one call (bm_retry_classify, BM_RETRY_CALL): network errors,
 * 429, 500/502/503/504 and 403 rateLimitExceeded/userRateLimitExceeded are
 * retried up to max_retries times
 * with full-jitter exponential backoff (Retry-After is honoured as a floor);
 * 403 quotaExceeded is retried with a long back-off (quota_backoff_ms). A 401
 * refreshes the access token once and repeats the request. Waits end early with
 * BM_ECANCELED when *stop becomes nonzero.
 *
 * Return codes of the calls: 0, BM_EAUTH (invalid_grant: the account needs a new
 * login; or still 401 after a fresh token), BM_ETRANSIENT (retries exhausted),
 * BM_EGONE (410), BM_ENOTFOUND (404), BM_EEXIST (409), BM_EAPI (other permanent
 * errors; Google's reason and message in err), BM_ETOOBIG, BM_ECANCELED, BM_EINVAL.
 *
 * Secrets: access tokens, refresh tokens and the client secret never appear in
 * err or the log; tokens are registered with bm_log_add_secret() when obtained.
 */
#ifndef BM_CORE_GCAL_H
#define BM_CORE_GCAL_H

#include "core/event.h"
#include "core/oauth.h"
#include "core/retry.h"
#include "core/util.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BM_GCAL_MAX_RESPONSE     (64u << 20) /* list pages, batch responses, calls */
#define BM_GCAL_MAX_BATCH        1000        /* requests per batch (Google's limit) */
#define BM_GCAL_DEFAULT_PAGE     2500        /* events.list maxResults (Google's max) */
#define BM_GCAL_ACCESS_TOKEN_MAX BM_OAUTH_ACCESS_TOKEN_MAX

typedef struct bm_gcal bm_gcal_t;

/* Strings are copied by bm_gcal_new(); zero/NULL fields take the defaults. */
typedef struct bm_gcal_opts {
    const char *api_base_url; /* default https://www.googleapis.com/calendar/v3 */
    const char *batch_url;    /* default https://www.googleapis.com/batch/calendar/v3 */
    const char *token_url;    /* default https://oauth2.googleapis.com/token */
    const char *client_id;
    const char *client_secret;
    long connect_timeout_ms;  /* default 10000 */
    long timeout_ms;          /* whole request, default 120000 */
    int max_retries;          /* transient retries per call, default 5; negative: none */
    long backoff_base_ms;     /* default 500 */
    long backoff_cap_ms;      /* default 32000 */
    long quota_backoff_ms;    /* floor of the wait after 403 quotaExceeded, default 30000 */
    const char *user_agent;   /* default "busymirror" */
    int user_quota;           /* requests per minute per account (Google: 600); 0 = no pacing */
    const volatile int *stop; /* optional: nonzero aborts waits and reads; a write in
                                 flight completes */
    /* optional: called after every HTTP response (status 0: none came), on the
     * calling thread, with the request's method ("BATCH" for a batch call,
     * "TOKEN" for the token endpoint): for metrics. Must be thread-safe. */
    void (*on_response)(void *ud, const char *method, long status);
    void *on_response_ud;
} bm_gcal_opts_t;

/* Counters since bm_gcal_new(), each HTTP request counted once (retries too). */
typedef struct bm_gcal_stats {
    long requests;    /* every HTTP request, any endpoint */
    long list_calls;  /* events.list and calendarList.list page requests */
    long batch_calls; /* batch HTTP requests */
    long batch_parts; /* requests carried by those batch requests */
    long token_calls; /* token endpoint requests (refresh and code exchange) */
    long retries;     /* requests repeated after a transient failure or a 401 */
} bm_gcal_stats_t;

/*
 * One Google account: caller-owned, initialised with bm_gcal_account_init() and
 * released with bm_gcal_account_dispose(). refresh_token is borrowed clear text
 * (the caller decrypts it and keeps it alive while the account is used). The
 * access token cache is filled by the client under mu, so one account may be
 * used from several threads at once.
 */
typedef struct bm_gcal_account {
    const char *refresh_token;
    const char *label; /* optional, for logs (e.g. the e-mail address); borrowed */
    pthread_mutex_t mu;
    char access_token[BM_GCAL_ACCESS_TOKEN_MAX];
    int64_t access_expires_ms; /* wall clock; 0 = no token */
    bool needs_login;          /* set after invalid_grant: calls fail fast with BM_EAUTH */
    bm_retry_bucket_t bucket;  /* pacing under the per-user quota (under mu) */
    atomic_bool probing;       /* a half-open breaker's probe: a failed call is not retried */
} bm_gcal_account_t;

void bm_gcal_account_init(bm_gcal_account_t *a, const char *refresh_token, const char *label);
/* Destroys the mutex and wipes the cached access token. */
void bm_gcal_account_dispose(bm_gcal_account_t *a);
/* Gives the account an access token kept from an earlier run (it is used until
 * shortly before expires_ms, then refreshed); registered as a log secret. */
void bm_gcal_account_set_access(bm_gcal_account_t *a, const char *token, int64_t expires_ms);
/* Copies the current access token into out (at least BM_GCAL_ACCESS_TOKEN_MAX
 * bytes; the caller wipes it) and answers when it expires (0: none). */
int64_t bm_gcal_account_access(bm_gcal_account_t *a, char *out, size_t outlen);

int bm_gcal_new(const bm_gcal_opts_t *o, bm_gcal_t **out, char *err, size_t errlen);
/* Frees the client; no call may be in progress. NULL is fine. */
void bm_gcal_free(bm_gcal_t *g);
void bm_gcal_stats(bm_gcal_t *g, bm_gcal_stats_t *out);
/* HTTP requests the calling thread made so far, through any client (the share
 * of one thread while several use one client). */
long bm_gcal_thread_requests(void);

/* Gets a new access token now (also done automatically when the cached one is
 * missing or expires within a minute). BM_EAUTH on invalid_grant, which also sets
 * a->needs_login. */
int bm_gcal_refresh(bm_gcal_t *g, bm_gcal_account_t *a, char *err, size_t errlen);

/*
 * events.list following every page. With sync_token the call is incremental and
 * time_min/time_max/private_property are not sent (Google refuses them with a token); show_deleted
 * is sent only when true. max_results 0 means BM_GCAL_DEFAULT_PAGE. p may be NULL
 * (a full listing with defaults).
 */
typedef struct bm_gcal_list_params {
    const char *sync_token; /* NULL: full listing */
    int64_t time_min;       /* UTC seconds, 0 = unset */
    int64_t time_max;       /* UTC seconds, 0 = unset */
    bool show_deleted;
    bool single_events;
    int max_results;
    const char *private_property; /* "key=value" filter (full listings only), or NULL */
} bm_gcal_list_params_t;

/* Called once per page that holds at least one event; the events are borrowed for
 * the call (the callback may move fields out, setting them to NULL). Nonzero stops
 * the listing, and bm_gcal_list_events returns that value. */
typedef int (*bm_gcal_page_cb)(void *ud, bm_event_t *events, size_t n_events);

/* On success *next_sync_token (caller frees) is the token of the last page, or NULL
 * when Google gave none. BM_EGONE on 410 (fullSyncRequired): list again without a
 * token. Items that fail to parse are logged and skipped. */
int bm_gcal_list_events(bm_gcal_t *g, bm_gcal_account_t *a, const char *calendar_id,
                        const bm_gcal_list_params_t *p, bm_gcal_page_cb cb, void *ud,
                        char **next_sync_token, char *err, size_t errlen);

/* One calendarList entry; strings borrowed for the callback, NULL when absent. */
typedef struct bm_gcal_calendar {
    const char *id;
    const char *summary; /* summaryOverride when the user set one */
    const char *time_zone;
    const char *access_role; /* owner | writer | reader | freeBusyReader */
    bool primary;
} bm_gcal_calendar_t;
typedef int (*bm_gcal_calendar_cb)(void *ud, const bm_gcal_calendar_t *cal);

/* calendarList.list, every page. A nonzero callback result stops and is returned. */
int bm_gcal_list_calendars(bm_gcal_t *g, bm_gcal_account_t *a, bm_gcal_calendar_cb cb, void *ud,
                           char *err, size_t errlen);

/*
 * One request: path relative to api_base_url ("/calendars/a%40b/events/watch"),
 * body JSON or NULL. *status (may be NULL) gets the final HTTP status and
 * *resp_body (may be NULL; caller frees) its body whenever a response arrived, also
 * when the return is an error (404, 409, 410, 412 ...). 2xx returns 0.
 */
int bm_gcal_call(bm_gcal_t *g, bm_gcal_account_t *a, const char *method, const char *path,
                 const char *body, long *status, char **resp_body, char *err, size_t errlen);

/* The paths of events.insert ("/calendars/<id>/events?sendUpdates=none") and of
 * one event for get/update/patch/delete ("/calendars/<id>/events/<event
 * id>?sendUpdates=none"), both ids percent-encoded. Caller frees. */
char *bm_gcal_path_events(const char *gcal_id);
char *bm_gcal_path_event(const char *gcal_id, const char *event_id);

/* ---- push channels (events.watch, channels.stop) ---- */

/* Borrowed strings. token (may be NULL) comes back in every notification's
 * X-Goog-Channel-Token; it is registered as a secret. ttl_s 0: Google's default. */
typedef struct bm_gcal_watch_params {
    const char *channel_id; /* ours, unique: [A-Za-z0-9-_+/=], at most 64 characters */
    const char *address;    /* https URL that receives the notifications */
    const char *token;
    int64_t ttl_s;
} bm_gcal_watch_params_t;

/* What Google made of a channel. Caller-owned, nothing to free. */
typedef struct bm_gcal_channel {
    char resource_id[256]; /* Google's id of the watched resource, for channels.stop */
    int64_t expiration_ms; /* wall clock, ms since the epoch */
} bm_gcal_channel_t;

/* events.watch on calendar gcal_id: opens a web_hook channel. The call's errors;
 * BM_EAPI also when the answer lacks resourceId or expiration. */
int bm_gcal_watch(bm_gcal_t *g, bm_gcal_account_t *a, const char *gcal_id,
                  const bm_gcal_watch_params_t *p, bm_gcal_channel_t *out, char *err,
                  size_t errlen);

/* channels.stop. A channel Google does not know (404: expired, or stopped
 * already) counts as stopped: 0. */
int bm_gcal_channel_stop(bm_gcal_t *g, bm_gcal_account_t *a, const char *channel_id,
                         const char *resource_id, char *err, size_t errlen);

/* One request of a batch. The caller fills the inputs; outputs are overwritten
 * (response must be NULL or malloc'd on entry: it is freed first, so an array can be
 * reused for a retry). Release outputs with bm_gcal_reqs_dispose(). */
typedef struct bm_gcal_req {
    const char *method;   /* GET POST PUT PATCH DELETE */
    const char *path;     /* relative to the API base, query included */
    const char *body;     /* JSON or NULL */
    const char *if_match; /* etag for If-Match, or NULL */
    long status;          /* out: the part's HTTP status, 0 when no answer for it */
    char *response;       /* out: malloc'd body of the part (maybe ""), or NULL */
    char reason[64];      /* out: error.errors[0].reason of a failed part, or "" */
} bm_gcal_req_t;

/* Frees every response and clears status and reason. */
void bm_gcal_reqs_dispose(bm_gcal_req_t *reqs, size_t n);

/*
 * Sends up to BM_GCAL_MAX_BATCH requests in one multipart/mixed call to batch_url.
 * Whole-call transient failures are retried; per-part results go to reqs[i]
 * (the caller retries failed parts). 0 means the batch itself went through:
 * check each part's status. Parts Google did not answer keep status 0.
 */
int bm_gcal_batch(bm_gcal_t *g, bm_gcal_account_t *a, bm_gcal_req_t *reqs, size_t n, char *err,
                  size_t errlen);

/* Authorization code exchange of the installed-app flow (PKCE). *refresh_token
 * (caller frees) is Google's refresh token. Not retried on network errors: a code
 * is single-use. */
int bm_gcal_exchange_code(bm_gcal_t *g, const char *code, const char *code_verifier,
                          const char *redirect_uri, char **refresh_token, char *err, size_t errlen);

/* ---- pure helpers (unit-tested) ---- */

/* Percent-encodes everything but RFC 3986 unreserved characters (for calendar
 * ids, event ids and query values). Caller frees. */
char *bm_gcal_escape(const char *s);

/* The path part of a URL ("https://h/calendar/v3/" gives "/calendar/v3"), caller
 * frees; "" when there is none. */
char *bm_gcal_url_path(const char *url);

/* Google's error from a JSON body: reason (errors[0].reason, or the OAuth "error")
 * and message; either may be set to "" when absent. */
void bm_gcal_error_parse(const char *body, char *reason, size_t reason_len, char *message,
                         size_t message_len);

#endif
