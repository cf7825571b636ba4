/*
 * core/gcal.c: the Google Calendar API client: authorised requests with the
 * retry policy (core/retry.h), the access-token cache of an account (the token
 * request's form and answer are core/oauth.c's), events.list / calendarList.list
 * paging, single calls, batches (codec in core/batch.c) and push channels.
 * HTTP is core/http.c's.
 */
#include "core/gcal.h"
#include "core/batch.h"
#include "core/http-int.h"
#include "core/json.h"
#include "core/log.h"
#include "core/oauth.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>
#include <yajl/yajl_gen.h>

#define TOKEN_RESP_MAX    (64u << 10)
#define TOKEN_EARLY_MS    60000 /* refresh when the access token expires this soon */
#define SLEEP_SLICE_MS    50
#define MAX_PAGES         4000 /* 10 million events at 2500 a page: a token cycle ends here */
#define CALENDAR_PAGE_MAX 250

struct bm_gcal {
    char *api_base; /* without trailing slash */
    char *api_prefix;
    char *batch_url;
    char *token_url;
    char *client_id;
    char *client_secret;
    int max_retries;
    long backoff_base_ms;
    long backoff_cap_ms;
    long quota_backoff_ms;
    int user_quota; /* per account per minute; 0 = no pacing */
    const volatile int *stop;
    void (*on_response)(void *ud, const char *method, long status);
    void *on_response_ud;

    bm_http_t *http;
    pthread_mutex_t rng_mu;
    uint64_t rng;

    atomic_long st_requests, st_list_calls, st_batch_calls, st_batch_parts, st_token_calls,
        st_retries;
};

/* ---------------------------------------------------------------- helpers */

char *bm_gcal_escape(const char *s)
{
    bm_buf_t b;
    if (s == NULL)
        return bm_strdup("");
    bm_buf_init(&b, strlen(s) * 3);
    bm_buf_url_encode(&b, s); /* cannot outgrow 3 bytes per byte */
    return bm_buf_steal(&b);
}

char *bm_gcal_url_path(const char *url)
{
    const char *p = strstr(url, "://");
    p = p != NULL ? p + 3 : url;
    p = strchr(p, '/');
    if (p == NULL)
        return bm_strdup("");
    size_t len = strcspn(p, "?#");
    while (len > 0 && p[len - 1] == '/')
        len--;
    return bm_strndup(p, len);
}

static yajl_val jget(yajl_val obj, const char *key)
{
    if (obj == NULL || !YAJL_IS_OBJECT(obj))
        return NULL;
    for (size_t i = 0; i < obj->u.object.len; i++)
        if (strcmp(obj->u.object.keys[i], key) == 0)
            return obj->u.object.values[i];
    return NULL;
}

static const char *jstr(yajl_val obj, const char *key)
{
    yajl_val v = jget(obj, key);
    return v != NULL && YAJL_IS_STRING(v) ? YAJL_GET_STRING(v) : NULL;
}

void bm_gcal_error_parse(const char *body, char *reason, size_t reason_len, char *message,
                         size_t message_len)
{
    if (reason_len > 0)
        reason[0] = '\0';
    if (message_len > 0)
        message[0] = '\0';
    if (body == NULL || *body == '\0')
        return;
    yajl_val root = bm_json_parse(body, strlen(body), NULL, 0);
    if (root == NULL)
        return;
    yajl_val e = jget(root, "error");
    /* Masked before they are cut to size, so that no secret's beginning survives. */
    if (e != NULL && YAJL_IS_OBJECT(e)) { /* API error */
        const char *r = NULL;
        yajl_val errs = jget(e, "errors");
        if (errs != NULL && YAJL_IS_ARRAY(errs) && errs->u.array.len > 0)
            r = jstr(errs->u.array.values[0], "reason");
        if (r == NULL)
            r = jstr(e, "status");
        if (r != NULL && reason_len > 0)
            bm_log_scrub(r, reason, reason_len);
        const char *m = jstr(e, "message");
        if (m != NULL && message_len > 0)
            bm_log_scrub(m, message, message_len);
    } else if (e != NULL && YAJL_IS_STRING(e)) { /* OAuth error */
        if (reason_len > 0)
            bm_log_scrub(YAJL_GET_STRING(e), reason, reason_len);
        const char *m = jstr(root, "error_description");
        if (m != NULL && message_len > 0)
            bm_log_scrub(m, message, message_len);
    }
    bm_json_free(root);
}

/* Copies a message into err with every registered secret masked. */
static int scrubbed_err(char *err, size_t errlen, int code, const char *msg)
{
    if (err != NULL && errlen > 0)
        bm_log_scrub(msg, err, errlen);
    return code;
}

static int stopped(const bm_gcal_t *g)
{
    /* atomic: set by another thread or a signal handler (TSan) */
    return g->stop != NULL && __atomic_load_n(g->stop, __ATOMIC_RELAXED) != 0;
}

/* Sleeps ms, checking *stop every SLEEP_SLICE_MS. */
static int sleep_ms(bm_gcal_t *g, long ms)
{
    int64_t end = bm_mono_ms() + ms;
    for (;;) {
        if (stopped(g))
            return BM_ECANCELED;
        int64_t left = end - bm_mono_ms();
        if (left <= 0)
            return BM_OK;
        if (left > SLEEP_SLICE_MS)
            left = SLEEP_SLICE_MS;
        struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)left * 1000000L};
        nanosleep(&ts, NULL);
    }
}

static long next_delay(bm_gcal_t *g, int attempt, long base, long cap)
{
    pthread_mutex_lock(&g->rng_mu);
    long d = bm_retry_backoff_ms(attempt, base, cap, &g->rng);
    pthread_mutex_unlock(&g->rng_mu);
    return d;
}

/* The path of a URL relative to the API base without its query (for logs/errors). */
static void url_what(const bm_gcal_t *g, const char *method, const char *url, char *buf, size_t len)
{
    size_t blen = strlen(g->api_base);
    const char *p = strncmp(url, g->api_base, blen) == 0 ? url + blen : url;
    snprintf(buf, len, "%s %.*s", method, (int)strcspn(p, "?"), p);
}

/* ---------------------------------------------------------------- requests */

/* KIND_TOKEN and KIND_CODE go to the token endpoint without an access token; a
 * code is single-use, so KIND_CODE is not repeated after a network error. */
typedef enum { KIND_CALL, KIND_LIST, KIND_BATCH, KIND_TOKEN, KIND_CODE } req_kind_t;

typedef struct request {
    const char *method;
    const char *url;
    const char *content_type; /* or NULL */
    const char *body;         /* or NULL */
    size_t body_len;
    req_kind_t kind;
    size_t n_parts; /* KIND_BATCH: the requests it carries */
} request_t;

static bool to_token_endpoint(const request_t *rq)
{
    return rq->kind == KIND_TOKEN || rq->kind == KIND_CODE;
}

static int get_token(bm_gcal_t *g, bm_gcal_account_t *a, char *out, size_t outlen, char *err,
                     size_t errlen);

/* Waits until the account's bucket lets n calls go (see bm_retry_bucket_t). */
static int pace(bm_gcal_t *g, bm_gcal_account_t *a, size_t n)
{
    if (g->user_quota <= 0)
        return BM_OK;
    for (;;) {
        pthread_mutex_lock(&a->mu);
        if (a->bucket.capacity <= 0)
            bm_retry_bucket_init(&a->bucket, g->user_quota, bm_mono_ms());
        long wait = bm_retry_bucket_take(&a->bucket, (double)n, bm_mono_ms());
        pthread_mutex_unlock(&a->mu);
        if (wait == 0)
            return BM_OK;
        int rc = sleep_ms(g, wait);
        if (rc != BM_OK)
            return rc;
    }
}

/* The header lines of one attempt (at most 4) into hdrs; auth and ct are their
 * buffers (auth gets the bearer token: the caller wipes it). */
static size_t headers_for(const request_t *rq, const char *token, char *auth, size_t auth_len,
                          char *ct, size_t ct_len, const char **hdrs)
{
    size_t n = 0;
    if (to_token_endpoint(rq)) {
        hdrs[n++] = "Content-Type: application/x-www-form-urlencoded";
        hdrs[n++] = "Accept: application/json";
        return n;
    }
    snprintf(auth, auth_len, "Authorization: Bearer %s", token);
    hdrs[n++] = auth;
    hdrs[n++] = "Expect:";
    hdrs[n++] = "Accept: application/json";
    if (rq->content_type != NULL) {
        snprintf(ct, ct_len, "Content-Type: %s", rq->content_type);
        hdrs[n++] = ct;
    }
    return n;
}

/* Requests made by the calling thread, whatever the client (per-thread figures
 * while several threads share one client). */
static _Thread_local long thread_requests;

long bm_gcal_thread_requests(void)
{
    return thread_requests;
}

static void count_attempt(bm_gcal_t *g, const request_t *rq)
{
    thread_requests++;
    atomic_fetch_add(&g->st_requests, 1);
    if (rq->kind == KIND_LIST)
        atomic_fetch_add(&g->st_list_calls, 1);
    if (rq->kind == KIND_BATCH) {
        atomic_fetch_add(&g->st_batch_calls, 1);
        atomic_fetch_add(&g->st_batch_parts, (long)rq->n_parts);
    }
    if (to_token_endpoint(rq))
        atomic_fetch_add(&g->st_token_calls, 1);
}

/* A 401 to an API request: drops the refused token unless another thread
 * replaced it already, so that the next attempt gets a fresh one. */
static void drop_token(bm_gcal_t *g, bm_gcal_account_t *a, const char *token, const char *what)
{
    BM_LOG(BM_LOG_INFO, BM_MSG("access token refused, refreshing"), BM_KS("account", a->label),
           BM_KS("request", what));
    atomic_fetch_add(&g->st_retries, 1);
    pthread_mutex_lock(&a->mu);
    if (strcmp(token, a->access_token) == 0)
        a->access_expires_ms = 0;
    pthread_mutex_unlock(&a->mu);
}

/*
 * One request with the retry policy (core/gcal.h; the classification is
 * bm_retry_classify's, BM_RETRY_CALL). a is NULL for the token endpoint. Returns
 * 0 when a final response arrived (resp filled; any status the policy does not
 * retry), else an error.
 */
static int exec(bm_gcal_t *g, bm_gcal_account_t *a, const request_t *rq, bm_http_resp_t *resp,
                char *err, size_t errlen)
{
    int rc = BM_OK;
    char token[BM_GCAL_ACCESS_TOKEN_MAX] = "", auth[BM_GCAL_ACCESS_TOKEN_MAX + 64], ct[300];
    char what[200];
    const char *hdrs[4];
    bool refreshed = false, tokens = to_token_endpoint(rq);
    if (tokens)
        snprintf(what, sizeof(what), "token endpoint");
    else
        url_what(g, rq->method, rq->url, what, sizeof(what));
    for (int attempt = 0;;) {
        if (!tokens && (rc = get_token(g, a, token, sizeof(token), err, errlen)) != BM_OK)
            goto out;
        size_t n_hdrs = headers_for(rq, token, auth, sizeof(auth), ct, sizeof(ct), hdrs);
        if (!tokens && (rc = pace(g, a, rq->kind == KIND_BATCH ? rq->n_parts : 1)) != BM_OK) {
            rc = bm_err(err, errlen, rc, "stopped");
            goto out;
        }
        count_attempt(g, rq);
        rc = bm__http_perform(g->http, rq->method, rq->url, hdrs, n_hdrs, rq->body, rq->body_len,
                              resp, err, errlen);
        if (g->on_response != NULL)
            g->on_response(g->on_response_ud,
                           tokens                   ? "TOKEN"
                           : rq->kind == KIND_BATCH ? "BATCH"
                                                    : rq->method,
                           rc == BM_OK ? resp->status : 0);
        explicit_bzero(auth, sizeof(auth));
        if ((rc != BM_OK && rc != BM_ETRANSIENT) || (rc != BM_OK && rq->kind == KIND_CODE))
            goto out;

        char why[300] = "", reason[64] = "", message[200] = "";
        long floor_ms = 0;
        if (rc == BM_OK) {
            /* The token endpoint's reasons are OAuth's: none of them is a rate limit. */
            if (!tokens && (resp->status == 403 || resp->status == 429))
                bm_gcal_error_parse(resp->body.data, reason, sizeof(reason), message,
                                    sizeof(message));
            bm_outcome_t o = bm_retry_classify(resp->status, tokens ? NULL : reason, BM_RETRY_CALL);
            if (o == BM_OUTCOME_LOGIN && !tokens && !refreshed) {
                refreshed = true;
                drop_token(g, a, token, what);
                continue;
            }
            if (o != BM_OUTCOME_RETRY)
                goto out;
            snprintf(why, sizeof(why), "HTTP %ld%s%s", resp->status, reason[0] ? " " : "", reason);
            if (strcmp(reason, "quotaExceeded") == 0)
                floor_ms = g->quota_backoff_ms;
            if (resp->retry_after_ms > floor_ms)
                floor_ms = resp->retry_after_ms;
        } else {
            snprintf(why, sizeof(why), "%s", err != NULL ? err : "network error");
        }
        if (attempt >= g->max_retries || (a != NULL && atomic_load(&a->probing))) {
            char msg[600];
            snprintf(msg, sizeof(msg), "%s: %s (gave up after %d attempts)", what, why,
                     attempt + 1);
            rc = scrubbed_err(err, errlen, BM_ETRANSIENT, msg);
            goto out;
        }
        long delay = next_delay(g, attempt, g->backoff_base_ms, g->backoff_cap_ms);
        if (tokens) { /* Retry-After replaces the backoff there, and adds to it elsewhere */
            delay = floor_ms > delay ? floor_ms : delay;
            BM_LOG(BM_LOG_WARN, BM_MSG("token request failed, retrying"), BM_KS("error", why),
                   BM_KI("attempt", attempt + 1), BM_KI("delay_ms", delay));
        } else {
            delay += floor_ms;
            BM_LOG(BM_LOG_WARN, BM_MSG("google request failed, retrying"),
                   BM_KS("account", a->label), BM_KS("request", what), BM_KS("error", why),
                   BM_KI("attempt", attempt + 1), BM_KI("delay_ms", delay));
        }
        atomic_fetch_add(&g->st_retries, 1);
        if ((rc = sleep_ms(g, delay)) != BM_OK) {
            rc = bm_err(err, errlen, rc, "stopped");
            goto out;
        }
        attempt++;
    }
out:
    /* also when the pacing stopped the attempt after its headers were made */
    explicit_bzero(auth, sizeof(auth));
    explicit_bzero(token, sizeof(token));
    return rc;
}

/* ---------------------------------------------------------------- OAuth */

/* The token request of either grant (form and answer: core/oauth.c). */
static int token_request(bm_gcal_t *g, const bm_oauth_grant_t *grant, bm_oauth_tokens_t *out,
                         char *err, size_t errlen)
{
    int rc;
    bm_buf_t form;
    bm_http_resp_t resp;
    /* Both hold secrets: they are wiped as they grow and when they go. */
    bm_buf_init_secret(&form, 64 << 10);
    bm__http_resp_init_secret(&resp, TOKEN_RESP_MAX);
    memset(out, 0, sizeof(*out));
    if ((rc = bm_oauth_token_form(g->client_id, g->client_secret, grant, &form, err, errlen)) !=
        BM_OK)
        goto out;
    request_t rq = {.method = "POST",
                    .url = g->token_url,
                    .body = form.data,
                    .body_len = form.len,
                    .kind = grant->refresh_token != NULL ? KIND_TOKEN : KIND_CODE};
    if ((rc = exec(g, NULL, &rq, &resp, err, errlen)) != BM_OK)
        goto out;
    rc = bm_oauth_token_answer(grant, resp.status, resp.body.data, out, err, errlen);
out:
    bm__http_resp_dispose(&resp, true);
    bm_buf_dispose(&form);
    return rc;
}

/* Caller holds a->mu. */
static int refresh_locked(bm_gcal_t *g, bm_gcal_account_t *a, char *err, size_t errlen)
{
    int rc = BM_OK;
    bm_oauth_tokens_t tok = {0};
    if (a->needs_login) {
        rc = bm_err(err, errlen, BM_EAUTH, "the account needs a new login");
        goto out;
    }
    if (a->refresh_token == NULL || a->refresh_token[0] == '\0') {
        rc = bm_err(err, errlen, BM_EAUTH, "no refresh token: log in again");
        goto out;
    }
    bm_oauth_grant_t grant = {.refresh_token = a->refresh_token};
    if ((rc = token_request(g, &grant, &tok, err, errlen)) != BM_OK) {
        if (rc == BM_EAUTH) /* invalid_grant */
            a->needs_login = true;
        goto out;
    }
    snprintf(a->access_token, sizeof(a->access_token), "%s", tok.access_token);
    a->access_expires_ms = bm_now_ms() + tok.expires_in_s * 1000;
    BM_LOG(BM_LOG_DEBUG, BM_MSG("access token refreshed"), BM_KS("account", a->label),
           BM_KI("expires_in", tok.expires_in_s));
out:
    bm_oauth_tokens_dispose(&tok);
    return rc;
}

int bm_gcal_refresh(bm_gcal_t *g, bm_gcal_account_t *a, char *err, size_t errlen)
{
    pthread_mutex_lock(&a->mu);
    int rc = refresh_locked(g, a, err, errlen);
    pthread_mutex_unlock(&a->mu);
    return rc;
}

/* Copies a usable access token into out, refreshing when needed. */
static int get_token(bm_gcal_t *g, bm_gcal_account_t *a, char *out, size_t outlen, char *err,
                     size_t errlen)
{
    int rc = BM_OK;
    pthread_mutex_lock(&a->mu);
    if (a->needs_login) {
        rc = bm_err(err, errlen, BM_EAUTH, "the account needs a new login");
        goto out;
    }
    if (a->access_token[0] == '\0' || a->access_expires_ms - bm_now_ms() < TOKEN_EARLY_MS) {
        if ((rc = refresh_locked(g, a, err, errlen)) != BM_OK)
            goto out;
    }
    snprintf(out, outlen, "%s", a->access_token);
out:
    pthread_mutex_unlock(&a->mu);
    return rc;
}

void bm_gcal_account_init(bm_gcal_account_t *a, const char *refresh_token, const char *label)
{
    memset(a, 0, sizeof(*a));
    a->refresh_token = refresh_token;
    a->label = label;
    pthread_mutex_init(&a->mu, NULL);
    bm_log_add_secret(refresh_token);
}

void bm_gcal_account_set_access(bm_gcal_account_t *a, const char *token, int64_t expires_ms)
{
    if (strlen(token) >= sizeof(a->access_token))
        return; /* not one of Google's: refreshed when needed */
    bm_log_add_transient_secret(token, expires_ms - bm_now_ms());
    pthread_mutex_lock(&a->mu);
    snprintf(a->access_token, sizeof(a->access_token), "%s", token);
    a->access_expires_ms = expires_ms;
    pthread_mutex_unlock(&a->mu);
}

int64_t bm_gcal_account_access(bm_gcal_account_t *a, char *out, size_t outlen)
{
    pthread_mutex_lock(&a->mu);
    int64_t expires = a->access_token[0] != '\0' ? a->access_expires_ms : 0;
    snprintf(out, outlen, "%s", expires > 0 ? a->access_token : "");
    pthread_mutex_unlock(&a->mu);
    return expires;
}

void bm_gcal_account_dispose(bm_gcal_account_t *a)
{
    if (a == NULL)
        return;
    pthread_mutex_destroy(&a->mu);
    explicit_bzero(a->access_token, sizeof(a->access_token));
    a->access_expires_ms = 0;
}

int bm_gcal_exchange_code(bm_gcal_t *g, const char *code, const char *code_verifier,
                          const char *redirect_uri, char **refresh_token, char *err, size_t errlen)
{
    bm_oauth_tokens_t tok = {0};
    bm_oauth_grant_t grant = {
        .code = code, .code_verifier = code_verifier, .redirect_uri = redirect_uri};
    *refresh_token = NULL;
    int rc = token_request(g, &grant, &tok, err, errlen);
    if (rc == BM_OK) {
        *refresh_token = tok.refresh_token;
        tok.refresh_token = NULL;
    }
    bm_oauth_tokens_dispose(&tok);
    return rc;
}

/* ---------------------------------------------------------------- API requests */

/* The return code and message for a final response: 0 for 2xx. */
static int final_status(const char *what, const bm_http_resp_t *resp, char *err, size_t errlen)
{
    long st = resp->status;
    if (st >= 200 && st < 300)
        return BM_OK;
    char reason[64], message[256], msg[600];
    bm_gcal_error_parse(resp->body.data, reason, sizeof(reason), message, sizeof(message));
    int code = st == 401   ? BM_EAUTH
               : st == 404 ? BM_ENOTFOUND
               : st == 409 ? BM_EEXIST
               : st == 410 ? BM_EGONE
                           : BM_EAPI;
    snprintf(msg, sizeof(msg), "%s: HTTP %ld%s%s%s%s%s", what, st, reason[0] ? " " : "", reason,
             message[0] ? ": " : "", message,
             st == 401 ? " (refused even after a token refresh)" : "");
    return scrubbed_err(err, errlen, code, msg);
}

/* bm_gcal_call; secret: the answer holds one (wiped as it grows and goes). */
static int call(bm_gcal_t *g, bm_gcal_account_t *a, const char *method, const char *path,
                const char *body, bool secret, long *status, char **resp_body, char *err,
                size_t errlen)
{
    int rc;
    bm_http_resp_t resp;
    char what[200];
    if (secret)
        bm__http_resp_init_secret(&resp, BM_GCAL_MAX_RESPONSE);
    else
        bm__http_resp_init(&resp, BM_GCAL_MAX_RESPONSE);
    if (status != NULL)
        *status = 0;
    if (resp_body != NULL)
        *resp_body = NULL;
    char *url = bm_sprintf("%s%s%s", g->api_base, path[0] == '/' ? "" : "/", path);
    url_what(g, method, url, what, sizeof(what));
    request_t rq = {.method = method,
                    .url = url,
                    .content_type = body != NULL ? "application/json" : NULL,
                    .body = body,
                    .body_len = body != NULL ? strlen(body) : 0,
                    .kind = KIND_CALL};
    if ((rc = exec(g, a, &rq, &resp, err, errlen)) != BM_OK)
        goto out;
    if (status != NULL)
        *status = resp.status;
    rc = final_status(what, &resp, err, errlen);
    if (resp_body != NULL)
        *resp_body = bm_buf_steal(&resp.body);
out:
    bm__http_resp_dispose(&resp, false);
    free(url);
    return rc;
}

int bm_gcal_call(bm_gcal_t *g, bm_gcal_account_t *a, const char *method, const char *path,
                 const char *body, long *status, char **resp_body, char *err, size_t errlen)
{
    return call(g, a, method, path, body, false, status, resp_body, err, errlen);
}

/* ---------------------------------------------------------------- paths */

char *bm_gcal_path_events(const char *gcal_id)
{
    char *cal = bm_gcal_escape(gcal_id);
    char *p = bm_sprintf("/calendars/%s/events?sendUpdates=none", cal);
    free(cal);
    return p;
}

char *bm_gcal_path_event(const char *gcal_id, const char *event_id)
{
    char *cal = bm_gcal_escape(gcal_id), *ev = bm_gcal_escape(event_id);
    char *p = bm_sprintf("/calendars/%s/events/%s?sendUpdates=none", cal, ev);
    free(cal);
    free(ev);
    return p;
}

/* ---------------------------------------------------------------- listings */

/* GETs url, checks the status and parses the JSON page into *root. */
static int get_page(bm_gcal_t *g, bm_gcal_account_t *a, const char *url, bm_http_resp_t *resp,
                    yajl_val *root, char *err, size_t errlen)
{
    char what[200];
    url_what(g, "GET", url, what, sizeof(what));
    request_t rq = {.method = "GET", .url = url, .kind = KIND_LIST};
    int rc = exec(g, a, &rq, resp, err, errlen);
    if (rc != BM_OK)
        return rc;
    if ((rc = final_status(what, resp, err, errlen)) != BM_OK)
        return rc;
    char perr[256] = "";
    *root = bm_json_parse(resp->body.data, resp->body.len, perr, sizeof(perr));
    if (*root == NULL || !YAJL_IS_OBJECT(*root))
        return bm_err(err, errlen, BM_ETRANSIENT, "%s: unparseable JSON page: %s", what,
                      *root == NULL ? perr : "not an object");
    return BM_OK;
}

/* One page of a listing; root is borrowed for the call. Nonzero stops the listing. */
typedef int (*page_fn)(void *ud, yajl_val root);

/*
 * GETs every page of a listing: base_url (with its query) plus &pageToken= of the
 * page before, until a page has no nextPageToken. what names the listing in
 * errors. A nonzero page result stops and is returned; a token that repeats or
 * more than MAX_PAGES pages are BM_EAPI.
 */
static int list_pages(bm_gcal_t *g, bm_gcal_account_t *a, const char *base_url, const char *what,
                      page_fn on_page, void *ud, char *err, size_t errlen)
{
    int rc = BM_OK;
    bm_buf_t url;
    bm_http_resp_t resp;
    yajl_val root = NULL;
    char *page_token = NULL;
    bm_buf_init(&url, 64 << 10);
    bm__http_resp_init(&resp, BM_GCAL_MAX_RESPONSE);
    for (int page = 0;; page++) {
        if (page >= MAX_PAGES) {
            rc = bm_err(err, errlen, BM_EAPI, "%s: more than %d pages", what, MAX_PAGES);
            goto out;
        }
        bm_buf_reset(&url);
        int r = bm_buf_puts(&url, base_url);
        if (r == BM_OK && page_token != NULL) {
            char *pt = bm_gcal_escape(page_token);
            r = bm_buf_printf(&url, "&pageToken=%s", pt);
            free(pt);
        }
        if (r != BM_OK) {
            rc = bm_err(err, errlen, BM_ETOOBIG, "%s: page token too long", what);
            goto out;
        }
        bm_json_free(root);
        root = NULL;
        if ((rc = get_page(g, a, url.data, &resp, &root, err, errlen)) != BM_OK)
            goto out;
        if ((rc = on_page(ud, root)) != 0)
            goto out;
        const char *npt = jstr(root, "nextPageToken");
        if (npt == NULL || *npt == '\0')
            break;
        if (page_token != NULL && strcmp(page_token, npt) == 0) {
            rc = bm_err(err, errlen, BM_EAPI, "%s: page token repeats", what);
            goto out;
        }
        free(page_token);
        page_token = bm_strdup(npt);
    }
out:
    bm_json_free(root);
    free(page_token);
    bm__http_resp_dispose(&resp, false);
    bm_buf_dispose(&url);
    return rc;
}

typedef struct events_ctx {
    const char *calendar_id;
    bm_gcal_page_cb cb;
    void *ud;
    char *next_sync_token;
} events_ctx_t;

static int events_page(void *ud, yajl_val root)
{
    events_ctx_t *x = ud;
    int rc = BM_OK;
    yajl_val items = jget(root, "items");
    size_t n_items = items != NULL && YAJL_IS_ARRAY(items) ? items->u.array.len : 0, n_events = 0;
    bm_event_t *events = bm_calloc(n_items ? n_items : 1, sizeof(*events));
    for (size_t i = 0; i < n_items; i++) {
        char perr[256];
        if (bm_event_parse(items->u.array.values[i], &events[n_events], perr, sizeof(perr)) ==
            BM_OK) {
            n_events++;
        } else {
            BM_LOG(BM_LOG_WARN, BM_MSG("skipping an event Google sent that does not parse"),
                   BM_KS("calendar", x->calendar_id),
                   BM_KS("event", jstr(items->u.array.values[i], "id")), BM_KS("error", perr));
        }
    }
    if (n_events > 0 && x->cb != NULL && (rc = x->cb(x->ud, events, n_events)) != 0)
        goto out;
    const char *npt = jstr(root, "nextPageToken"), *nst = jstr(root, "nextSyncToken");
    if ((npt == NULL || *npt == '\0') && nst != NULL && *nst != '\0')
        x->next_sync_token = bm_strdup(nst); /* the last page */
out:
    for (size_t i = 0; i < n_events; i++)
        bm_event_dispose(&events[i]);
    free(events);
    return rc;
}

int bm_gcal_list_events(bm_gcal_t *g, bm_gcal_account_t *a, const char *calendar_id,
                        const bm_gcal_list_params_t *p, bm_gcal_page_cb cb, void *ud,
                        char **next_sync_token, char *err, size_t errlen)
{
    int rc = BM_OK;
    bm_buf_t base;
    char what[300];
    events_ctx_t x = {.calendar_id = calendar_id, .cb = cb, .ud = ud};
    bm_buf_init(&base, 64 << 10);
    *next_sync_token = NULL;
    const bm_gcal_list_params_t defaults = {0};
    if (p == NULL)
        p = &defaults;
    if (calendar_id == NULL || *calendar_id == '\0') {
        rc = bm_err(err, errlen, BM_EINVAL, "events.list needs a calendar id");
        goto out;
    }

    char *cal = bm_gcal_escape(calendar_id);
    rc = bm_buf_printf(&base, "%s/calendars/%s/events?maxResults=%d", g->api_base, cal,
                       p->max_results > 0 ? p->max_results : BM_GCAL_DEFAULT_PAGE);
    free(cal);
    /* Every append is checked: the URL has a hard maximum (a long sync token or
     * calendar id must fail, not be cut). */
    if (rc == BM_OK && p->sync_token != NULL) {
        char *st = bm_gcal_escape(p->sync_token);
        rc = bm_buf_printf(&base, "&syncToken=%s", st);
        free(st);
    } else if (rc == BM_OK) {
        char t[40];
        if (p->time_min != 0) {
            bm_time_format(p->time_min, t, sizeof(t));
            rc = bm_buf_printf(&base, "&timeMin=%s", t);
        }
        if (rc == BM_OK && p->time_max != 0) {
            bm_time_format(p->time_max, t, sizeof(t));
            rc = bm_buf_printf(&base, "&timeMax=%s", t);
        }
        if (rc == BM_OK && p->private_property != NULL) {
            char *pp = bm_gcal_escape(p->private_property);
            rc = bm_buf_printf(&base, "&privateExtendedProperty=%s", pp);
            free(pp);
        }
    }
    if (rc == BM_OK && p->show_deleted)
        rc = bm_buf_puts(&base, "&showDeleted=true");
    if (rc == BM_OK && p->single_events)
        rc = bm_buf_puts(&base, "&singleEvents=true");
    if (rc != BM_OK) {
        rc = bm_err(err, errlen, BM_ETOOBIG, "events.list of %s: request address too long",
                    calendar_id);
        goto out;
    }
    snprintf(what, sizeof(what), "events.list of %s", calendar_id);
    if ((rc = list_pages(g, a, base.data, what, events_page, &x, err, errlen)) != BM_OK)
        goto out;
    *next_sync_token = x.next_sync_token;
    x.next_sync_token = NULL;
out:
    free(x.next_sync_token);
    bm_buf_dispose(&base);
    return rc;
}

typedef struct calendars_ctx {
    bm_gcal_calendar_cb cb;
    void *ud;
} calendars_ctx_t;

static int calendars_page(void *ud, yajl_val root)
{
    calendars_ctx_t *x = ud;
    yajl_val items = jget(root, "items");
    size_t n_items = items != NULL && YAJL_IS_ARRAY(items) ? items->u.array.len : 0;
    for (size_t i = 0; i < n_items; i++) {
        yajl_val it = items->u.array.values[i];
        yajl_val prim = jget(it, "primary");
        bm_gcal_calendar_t cal = {
            .id = jstr(it, "id"),
            .summary =
                jstr(it, "summaryOverride") ? jstr(it, "summaryOverride") : jstr(it, "summary"),
            .time_zone = jstr(it, "timeZone"),
            .access_role = jstr(it, "accessRole"),
            .primary = prim != NULL && YAJL_IS_TRUE(prim),
        };
        int rc;
        if (cal.id != NULL && x->cb != NULL && (rc = x->cb(x->ud, &cal)) != 0)
            return rc;
    }
    return BM_OK;
}

int bm_gcal_list_calendars(bm_gcal_t *g, bm_gcal_account_t *a, bm_gcal_calendar_cb cb, void *ud,
                           char *err, size_t errlen)
{
    calendars_ctx_t x = {.cb = cb, .ud = ud};
    char *base =
        bm_sprintf("%s/users/me/calendarList?maxResults=%d", g->api_base, CALENDAR_PAGE_MAX);
    int rc = list_pages(g, a, base, "calendarList.list", calendars_page, &x, err, errlen);
    free(base);
    return rc;
}

/* ---------------------------------------------------------------- push channels */

/*
 * A JSON object of the string members kv[0]: kv[1], kv[2]: kv[3] ... (a NULL value
 * leaves its member out), then "params": {"ttl": ttl} when ttl is not NULL. NULL
 * when yajl refuses a string (not UTF-8). Caller frees; yajl's copy is wiped.
 */
static bool gen_str(yajl_gen y, const char *s)
{
    return yajl_gen_string(y, (const unsigned char *)s, strlen(s)) == yajl_gen_status_ok;
}

static char *json_object(const char *const *kv, size_t n_kv, const char *ttl)
{
    yajl_gen y = yajl_gen_alloc(NULL);
    const unsigned char *buf;
    size_t len;
    char *out = NULL;
    bool ok = y != NULL && yajl_gen_map_open(y) == yajl_gen_status_ok;
    for (size_t i = 0; ok && i + 1 < n_kv; i += 2)
        if (kv[i + 1] != NULL)
            ok = gen_str(y, kv[i]) && gen_str(y, kv[i + 1]);
    if (ok && ttl != NULL)
        ok = gen_str(y, "params") && yajl_gen_map_open(y) == yajl_gen_status_ok &&
             gen_str(y, "ttl") && gen_str(y, ttl) && yajl_gen_map_close(y) == yajl_gen_status_ok;
    ok = ok && yajl_gen_map_close(y) == yajl_gen_status_ok &&
         yajl_gen_get_buf(y, &buf, &len) == yajl_gen_status_ok;
    if (ok) {
        out = bm_strndup((const char *)buf, len);
        explicit_bzero((void *)buf, len); /* may hold a channel token */
    }
    if (y != NULL)
        yajl_gen_free(y);
    return out;
}

int bm_gcal_watch(bm_gcal_t *g, bm_gcal_account_t *a, const char *gcal_id,
                  const bm_gcal_watch_params_t *p, bm_gcal_channel_t *out, char *err, size_t errlen)
{
    int rc = BM_OK;
    char *path = NULL, *body = NULL, *resp = NULL;
    yajl_val root = NULL;
    memset(out, 0, sizeof(*out));
    if (gcal_id == NULL || p->channel_id == NULL || p->address == NULL) {
        rc =
            bm_err(err, errlen, BM_EINVAL, "events.watch needs a calendar, channel id and address");
        goto out;
    }
    if (p->token != NULL)
        bm_log_add_secret(p->token);
    char ttl[32];
    snprintf(ttl, sizeof(ttl), "%lld", (long long)p->ttl_s);
    const char *kv[] = {"id",      p->channel_id, "type",  "web_hook",
                        "address", p->address,    "token", p->token};
    if ((body = json_object(kv, 8, p->ttl_s > 0 ? ttl : NULL)) == NULL) {
        rc = bm_err(err, errlen, BM_EINVAL, "events.watch: cannot encode the channel (bad UTF-8?)");
        goto out;
    }
    char *cal = bm_gcal_escape(gcal_id);
    path = bm_sprintf("/calendars/%s/events/watch", cal);
    free(cal);
    /* Google echoes the channel token in the answer. */
    if ((rc = call(g, a, "POST", path, body, true, NULL, &resp, err, errlen)) != BM_OK)
        goto out;
    char perr[128];
    if ((root = bm_json_parse(resp, strlen(resp), perr, sizeof(perr))) == NULL) {
        rc = bm_err(err, errlen, BM_EAPI, "events.watch of %s: unparseable answer: %s", gcal_id,
                    perr);
        goto out;
    }
    const char *rid = jstr(root, "resourceId"), *exp = jstr(root, "expiration");
    yajl_val expn = jget(root, "expiration");
    char *end = NULL;
    long long ms = exp != NULL                             ? strtoll(exp, &end, 10)
                   : expn != NULL && YAJL_IS_INTEGER(expn) ? YAJL_GET_INTEGER(expn)
                                                           : -1;
    if (rid == NULL || *rid == '\0' || strlen(rid) >= sizeof(out->resource_id) || ms <= 0 ||
        (exp != NULL && (end == exp || *end != '\0'))) {
        rc = bm_err(err, errlen, BM_EAPI,
                    "events.watch of %s: the answer lacks a usable resourceId or expiration",
                    gcal_id);
        goto out;
    }
    snprintf(out->resource_id, sizeof(out->resource_id), "%s", rid);
    out->expiration_ms = ms;
out:
    bm_json_wipe(root);
    bm_json_free(root);
    if (body != NULL)
        explicit_bzero(body, strlen(body));
    if (resp != NULL)
        explicit_bzero(resp, strlen(resp)); /* Google echoes the token */
    free(body);
    free(resp);
    free(path);
    return rc;
}

int bm_gcal_channel_stop(bm_gcal_t *g, bm_gcal_account_t *a, const char *channel_id,
                         const char *resource_id, char *err, size_t errlen)
{
    int rc = BM_OK;
    const char *kv[] = {"id", channel_id, "resourceId", resource_id};
    char *body = NULL;
    if (channel_id == NULL || resource_id == NULL || (body = json_object(kv, 4, NULL)) == NULL) {
        rc = bm_err(err, errlen, BM_EINVAL, "channels.stop needs a channel id and resource id");
        goto out;
    }
    rc = bm_gcal_call(g, a, "POST", "/channels/stop", body, NULL, NULL, err, errlen);
    if (rc == BM_ENOTFOUND) /* expired or stopped already: what a stop wants */
        rc = BM_OK;
out:
    free(body);
    return rc;
}

/* ---------------------------------------------------------------- batch */

void bm_gcal_reqs_dispose(bm_gcal_req_t *reqs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(reqs[i].response);
        reqs[i].response = NULL;
        reqs[i].status = 0;
        reqs[i].reason[0] = '\0';
    }
}

int bm_gcal_batch(bm_gcal_t *g, bm_gcal_account_t *a, bm_gcal_req_t *reqs, size_t n, char *err,
                  size_t errlen)
{
    int rc = BM_OK;
    bm_buf_t body;
    bm_http_resp_t resp;
    char boundary[64], ctype[128], what[200];
    bm_buf_init(&body, BM_GCAL_MAX_RESPONSE);
    bm__http_resp_init(&resp, BM_GCAL_MAX_RESPONSE);
    bm_gcal_reqs_dispose(reqs, n);
    if (n == 0)
        goto out;
    if (n > BM_GCAL_MAX_BATCH) {
        rc = bm_err(err, errlen, BM_EINVAL, "a batch holds at most %d requests, not %zu",
                    BM_GCAL_MAX_BATCH, n);
        goto out;
    }
    pthread_mutex_lock(&g->rng_mu);
    uint64_t r1 = bm_retry_rand(&g->rng), r2 = bm_retry_rand(&g->rng);
    pthread_mutex_unlock(&g->rng_mu);
    snprintf(boundary, sizeof(boundary), "batch_bm%016llx%016llx", (unsigned long long)r1,
             (unsigned long long)r2);
    snprintf(ctype, sizeof(ctype), "multipart/mixed; boundary=%s", boundary);
    if ((rc = bm_batch_encode(reqs, n, g->api_prefix, boundary, &body)) != BM_OK) {
        rc = bm_err(err, errlen, rc, "cannot encode the batch (bad method, path or too large)");
        goto out;
    }
    url_what(g, "POST", g->batch_url, what, sizeof(what));
    request_t rq = {.method = "POST",
                    .url = g->batch_url,
                    .content_type = ctype,
                    .body = body.data,
                    .body_len = body.len,
                    .kind = KIND_BATCH,
                    .n_parts = n};
    if ((rc = exec(g, a, &rq, &resp, err, errlen)) != BM_OK)
        goto out;
    if ((rc = final_status(what, &resp, err, errlen)) != BM_OK)
        goto out;
    char derr[256];
    int drc = bm_batch_decode(resp.content_type, resp.body.data != NULL ? resp.body.data : "",
                              resp.body.len, reqs, n, derr, sizeof(derr));
    if (drc != BM_OK) {
        size_t answered = 0;
        for (size_t i = 0; i < n; i++)
            answered += reqs[i].status != 0;
        BM_LOG(BM_LOG_WARN, BM_MSG("batch response incomplete"), BM_KS("account", a->label),
               BM_KS("error", derr), BM_KI("answered", answered), BM_KI("requests", n));
        if (answered == 0)
            rc = bm_err(err, errlen, BM_ETRANSIENT, "batch response: %s", derr);
    }
out:
    bm_buf_dispose(&body);
    bm__http_resp_dispose(&resp, false);
    return rc;
}

/* ---------------------------------------------------------------- lifecycle */

static char *dup_url(const char *s, const char *def)
{
    const char *v = s != NULL && *s != '\0' ? s : def;
    size_t len = strlen(v);
    while (len > 0 && v[len - 1] == '/')
        len--;
    return bm_strndup(v, len);
}

int bm_gcal_new(const bm_gcal_opts_t *o, bm_gcal_t **out, char *err, size_t errlen)
{
    int rc = BM_OK;
    bm_gcal_t *g = NULL;
    *out = NULL;
    g = bm_calloc(1, sizeof(*g));
    g->api_base = dup_url(o->api_base_url, "https://www.googleapis.com/calendar/v3");
    g->api_prefix = bm_gcal_url_path(g->api_base);
    g->batch_url = dup_url(o->batch_url, "https://www.googleapis.com/batch/calendar/v3");
    g->token_url = dup_url(o->token_url, "https://oauth2.googleapis.com/token");
    g->client_id = bm_strdup(o->client_id != NULL ? o->client_id : "");
    g->client_secret = bm_strdup(o->client_secret != NULL ? o->client_secret : "");
    g->max_retries = o->max_retries > 0 ? o->max_retries : o->max_retries < 0 ? 0 : 5;
    g->backoff_base_ms = o->backoff_base_ms > 0 ? o->backoff_base_ms : 500;
    g->backoff_cap_ms = o->backoff_cap_ms > 0 ? o->backoff_cap_ms : 32000;
    g->quota_backoff_ms = o->quota_backoff_ms > 0 ? o->quota_backoff_ms : 30000;
    g->user_quota = o->user_quota > 0 ? o->user_quota : 0;
    g->stop = o->stop;
    g->on_response = o->on_response;
    g->on_response_ud = o->on_response_ud;
    bm_log_add_secret(g->client_secret);
    pthread_mutex_init(&g->rng_mu, NULL);
    if (getrandom(&g->rng, sizeof(g->rng), 0) != (ssize_t)sizeof(g->rng))
        g->rng = (uint64_t)bm_mono_ms() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)g;
    bm_http_opts_t ho = {
        .user_agent = o->user_agent != NULL ? o->user_agent : "busymirror",
        .connect_timeout_ms = o->connect_timeout_ms > 0 ? o->connect_timeout_ms : 10000,
        .timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : 120000,
        .stop = o->stop,
    };
    if ((rc = bm__http_new(&ho, &g->http, err, errlen)) != BM_OK)
        goto out;
    if (g->client_id[0] == '\0')
        BM_LOG(BM_LOG_WARN, BM_MSG("google client_id is empty: token requests will fail"));
    *out = g;
    g = NULL;
out:
    bm_gcal_free(g);
    return rc;
}

void bm_gcal_free(bm_gcal_t *g)
{
    if (g == NULL)
        return;
    bm__http_free(g->http);
    pthread_mutex_destroy(&g->rng_mu);
    free(g->api_base);
    free(g->api_prefix);
    free(g->batch_url);
    free(g->token_url);
    free(g->client_id);
    if (g->client_secret != NULL)
        explicit_bzero(g->client_secret, strlen(g->client_secret));
    free(g->client_secret);
    free(g);
}

void bm_gcal_stats(bm_gcal_t *g, bm_gcal_stats_t *out)
{
    out->requests = atomic_load(&g->st_requests);
    out->list_calls = atomic_load(&g->st_list_calls);
    out->batch_calls = atomic_load(&g->st_batch_calls);
    out->batch_parts = atomic_load(&g->st_batch_parts);
    out->token_calls = atomic_load(&g->st_token_calls);
    out->retries = atomic_load(&g->st_retries);
}
