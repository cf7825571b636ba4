/*
 * core/gcal.c: the Google Calendar API client: HTTP (libcurl, shared connection
 * cache, pooled easy handles), OAuth token refresh, retries with full-jitter
 * backoff, events.list / calendarList.list paging, single calls and batches.
 * The multipart batch codec is in core/batch.c.
 */
#include "core/gcal.h"
#include "core/log.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>
#include <yajl/yajl_tree.h>

#define POOL_MAX          16
#define TOKEN_RESP_MAX    (64u << 10)
#define TOKEN_EARLY_MS    60000   /* refresh when the access token expires this soon */
#define RETRY_AFTER_MAX   600000L /* never wait longer than this for Retry-After */
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
    char *user_agent;
    long connect_timeout_ms;
    long timeout_ms;
    int max_retries;
    long backoff_base_ms;
    long backoff_cap_ms;
    long quota_backoff_ms;
    int user_quota; /* per account per minute; 0 = no pacing */
    const volatile int *stop;

    CURLSH *share;
    pthread_mutex_t share_mu[CURL_LOCK_DATA_LAST];
    pthread_mutex_t pool_mu;
    CURL *pool[POOL_MAX];
    size_t n_pool;
    pthread_mutex_t rng_mu;
    uint64_t rng;

    atomic_long st_requests, st_list_calls, st_batch_calls, st_batch_parts, st_token_calls,
        st_retries;
};

/* ---------------------------------------------------------------- helpers */

static uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void bm_bucket_init(bm_bucket_t *b, int quota_per_minute, int64_t now_ms)
{
    memset(b, 0, sizeof(*b));
    if (quota_per_minute <= 0)
        return; /* capacity 0: no pacing */
    b->capacity = quota_per_minute / 6.0;
    b->per_ms = (quota_per_minute - b->capacity) / 60000.0;
    if (b->capacity < 1.0) { /* a tiny quota: one call at a time, at the quota's rate */
        b->capacity = 1.0;
        b->per_ms = quota_per_minute / 60000.0;
    }
    b->tokens = b->capacity;
    b->last_ms = now_ms;
}

long bm_bucket_take(bm_bucket_t *b, double n, int64_t now_ms)
{
    if (b->capacity <= 0)
        return 0;
    if (now_ms > b->last_ms) {
        b->tokens += (double)(now_ms - b->last_ms) * b->per_ms;
        if (b->tokens > b->capacity)
            b->tokens = b->capacity;
        b->last_ms = now_ms;
    }
    double need = n < b->capacity ? n : b->capacity;
    if (b->tokens >= need) {
        b->tokens -= n;
        return 0;
    }
    long wait = (long)((need - b->tokens) / b->per_ms + 0.5); /* a float shortfall costs 1 ms */
    return wait > 0 ? wait : 1;
}

long bm_backoff_delay_ms(int attempt, long base_ms, long cap_ms, uint64_t *rng_state)
{
    if (base_ms <= 0 || cap_ms <= 0)
        return 0;
    if (attempt < 0)
        attempt = 0;
    long ceiling = base_ms;
    for (int i = 0; i < attempt && ceiling < cap_ms; i++)
        ceiling = ceiling > cap_ms / 2 ? cap_ms : ceiling * 2;
    if (ceiling > cap_ms)
        ceiling = cap_ms;
    return (long)(splitmix64(rng_state) % ((uint64_t)ceiling + 1));
}

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
    yajl_val root = yajl_tree_parse(body, NULL, 0);
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
    yajl_tree_free(root);
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
    return g->stop != NULL && *g->stop != 0;
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
    long d = bm_backoff_delay_ms(attempt, base, cap, &g->rng);
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

/* ---------------------------------------------------------------- HTTP */

typedef struct http_resp {
    long status;
    bm_buf_t body;
    char content_type[256];
    long retry_after_ms; /* -1 when absent */
    bool too_big;
} http_resp_t;

static void resp_init(http_resp_t *r, size_t max)
{
    memset(r, 0, sizeof(*r));
    bm_buf_init(&r->body, max);
    r->retry_after_ms = -1;
}

static void resp_reset(http_resp_t *r)
{
    bm_buf_reset(&r->body);
    r->status = 0;
    r->content_type[0] = '\0';
    r->retry_after_ms = -1;
    r->too_big = false;
}

static size_t on_write(char *ptr, size_t size, size_t nmemb, void *ud)
{
    http_resp_t *r = ud;
    size_t n = size * nmemb;
    if (bm_buf_append(&r->body, ptr, n) != BM_OK) {
        r->too_big = true;
        return 0;
    }
    return n;
}

static size_t on_header(char *ptr, size_t size, size_t nitems, void *ud)
{
    http_resp_t *r = ud;
    size_t n = size * nitems;
    size_t len = n;
    while (len > 0 && (ptr[len - 1] == '\r' || ptr[len - 1] == '\n'))
        len--;
    if (len >= 5 && strncmp(ptr, "HTTP/", 5) == 0) { /* a new response (after 100, 3xx) */
        r->content_type[0] = '\0';
        r->retry_after_ms = -1;
        return n;
    }
    const char *colon = memchr(ptr, ':', len);
    if (colon == NULL)
        return n;
    size_t name_len = (size_t)(colon - ptr);
    const char *v = colon + 1;
    while (v < ptr + len && (*v == ' ' || *v == '\t'))
        v++;
    size_t vlen = (size_t)(ptr + len - v);
    if (name_len == 12 && strncasecmp(ptr, "content-type", 12) == 0) {
        snprintf(r->content_type, sizeof(r->content_type), "%.*s", (int)vlen, v);
    } else if (name_len == 11 && strncasecmp(ptr, "retry-after", 11) == 0 && vlen < 64) {
        char val[64];
        while (vlen > 0 && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
            vlen--;
        memcpy(val, v, vlen);
        val[vlen] = '\0';
        char *end;
        long secs = strtol(val, &end, 10);
        if (end != val && *end == '\0' && secs >= 0) {
            r->retry_after_ms = secs > RETRY_AFTER_MAX / 1000 ? RETRY_AFTER_MAX : secs * 1000;
        } else {
            time_t when = curl_getdate(val, NULL);
            if (when != -1) {
                int64_t ms = ((int64_t)when - bm_now()) * 1000;
                r->retry_after_ms = ms < 0 ? 0 : ms > RETRY_AFTER_MAX ? RETRY_AFTER_MAX : (long)ms;
            }
        }
    }
    return n;
}

static int on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    const bm_gcal_t *g = ud;
    return stopped(g);
}

static CURL *handle_get(bm_gcal_t *g)
{
    CURL *h = NULL;
    pthread_mutex_lock(&g->pool_mu);
    if (g->n_pool > 0)
        h = g->pool[--g->n_pool];
    pthread_mutex_unlock(&g->pool_mu);
    return h != NULL ? h : curl_easy_init();
}

static void handle_put(bm_gcal_t *g, CURL *h)
{
    if (h == NULL)
        return;
    curl_easy_reset(h);
    pthread_mutex_lock(&g->pool_mu);
    if (g->n_pool < POOL_MAX) {
        g->pool[g->n_pool++] = h;
        h = NULL;
    }
    pthread_mutex_unlock(&g->pool_mu);
    if (h != NULL)
        curl_easy_cleanup(h);
}

#define SETOPT(h, opt, val)                                                                        \
    do {                                                                                           \
        if ((cc = curl_easy_setopt((h), (opt), (val))) != CURLE_OK)                                \
            goto setopt_failed;                                                                    \
    } while (0)

/*
 * One HTTP exchange. Returns 0 when a response arrived (resp->status set),
 * BM_ETRANSIENT on a network failure, BM_ETOOBIG, BM_ECANCELED or BM_EIO.
 */
static int http_perform(bm_gcal_t *g, const char *method, const char *url,
                        struct curl_slist *headers, const char *body, size_t body_len,
                        http_resp_t *resp, char *err, size_t errlen)
{
    int rc = BM_OK;
    CURLcode cc;
    char curl_err[CURL_ERROR_SIZE] = "";
    resp_reset(resp);
    CURL *h = handle_get(g);
    if (h == NULL) {
        rc = bm_err(err, errlen, BM_EIO, "curl_easy_init failed");
        goto out;
    }
    SETOPT(h, CURLOPT_URL, url);
    SETOPT(h, CURLOPT_SHARE, g->share);
    SETOPT(h, CURLOPT_NOSIGNAL, 1L);
    SETOPT(h, CURLOPT_ERRORBUFFER, curl_err);
    SETOPT(h, CURLOPT_CONNECTTIMEOUT_MS, g->connect_timeout_ms);
    SETOPT(h, CURLOPT_TIMEOUT_MS, g->timeout_ms);
#if LIBCURL_VERSION_NUM >= 0x075500
    SETOPT(h, CURLOPT_PROTOCOLS_STR, "http,https");
#else
    SETOPT(h, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    /* HTTP/2 over TLS when offered; plain http (the emulator) stays HTTP/1.1. */
    curl_easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
    SETOPT(h, CURLOPT_ACCEPT_ENCODING, "");
    SETOPT(h, CURLOPT_USERAGENT, g->user_agent);
    SETOPT(h, CURLOPT_HTTPHEADER, headers);
    SETOPT(h, CURLOPT_WRITEFUNCTION, on_write);
    SETOPT(h, CURLOPT_WRITEDATA, resp);
    SETOPT(h, CURLOPT_HEADERFUNCTION, on_header);
    SETOPT(h, CURLOPT_HEADERDATA, resp);
    /* A stop aborts reads at once; a write in flight completes (within the
     * timeout), so that its result is recorded and nothing is applied twice. */
    SETOPT(h, CURLOPT_NOPROGRESS, strcmp(method, "GET") == 0 ? 0L : 1L);
    SETOPT(h, CURLOPT_XFERINFOFUNCTION, on_progress);
    SETOPT(h, CURLOPT_XFERINFODATA, g);
    SETOPT(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)resp->body.max);
    if (strcmp(method, "GET") == 0) {
        SETOPT(h, CURLOPT_HTTPGET, 1L);
    } else {
        if (strcmp(method, "POST") != 0)
            SETOPT(h, CURLOPT_CUSTOMREQUEST, method);
        if (body != NULL || strcmp(method, "POST") == 0) {
            SETOPT(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
            SETOPT(h, CURLOPT_POSTFIELDS, body != NULL ? body : "");
        }
    }

    atomic_fetch_add(&g->st_requests, 1);
    cc = curl_easy_perform(h);
    if (cc == CURLE_OK) {
        SETOPT(h, CURLOPT_ERRORBUFFER, NULL);
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &resp->status);
        goto out;
    }
    if (resp->too_big || cc == CURLE_FILESIZE_EXCEEDED) {
        rc = bm_err(err, errlen, BM_ETOOBIG, "response larger than %zu bytes", resp->body.max);
    } else if (cc == CURLE_ABORTED_BY_CALLBACK && stopped(g)) {
        rc = bm_err(err, errlen, BM_ECANCELED, "stopped");
    } else {
        char msg[CURL_ERROR_SIZE + 64];
        snprintf(msg, sizeof(msg), "%s", curl_err[0] != '\0' ? curl_err : curl_easy_strerror(cc));
        rc = scrubbed_err(err, errlen, BM_ETRANSIENT, msg);
    }
    goto out;
setopt_failed:
    rc = bm_err(err, errlen, BM_EIO, "curl_easy_setopt: %s", curl_easy_strerror(cc));
out:
    if (h != NULL)
        curl_easy_setopt(h, CURLOPT_ERRORBUFFER, NULL);
    handle_put(g, h);
    return rc;
}

/* ---------------------------------------------------------------- OAuth */

static bool transient_status(long status)
{
    return status == 429 || status == 500 || status == 502 || status == 503 || status == 504;
}

/* POSTs a form to the token endpoint with retries on 429/5xx (and network errors
 * when retry_network). Returns 0 with resp filled for any final status. */
static int token_post(bm_gcal_t *g, const char *form, bool retry_network, http_resp_t *resp,
                      char *err, size_t errlen)
{
    int rc;
    struct curl_slist *hdrs = NULL, *tmp;
    if ((tmp = curl_slist_append(hdrs, "Content-Type: application/x-www-form-urlencoded")) == NULL)
        goto oom;
    hdrs = tmp;
    if ((tmp = curl_slist_append(hdrs, "Accept: application/json")) == NULL)
        goto oom;
    hdrs = tmp;
    for (int attempt = 0;; attempt++) {
        atomic_fetch_add(&g->st_token_calls, 1);
        rc = http_perform(g, "POST", g->token_url, hdrs, form, strlen(form), resp, err, errlen);
        if (rc == BM_ETRANSIENT && !retry_network)
            goto out;
        if (rc != BM_OK && rc != BM_ETRANSIENT)
            goto out;
        if (rc == BM_OK && !transient_status(resp->status))
            goto out;
        char why[256];
        if (rc == BM_OK)
            snprintf(why, sizeof(why), "HTTP %ld", resp->status);
        else
            snprintf(why, sizeof(why), "%s", err != NULL ? err : "network error");
        if (attempt >= g->max_retries) {
            char msg[320];
            snprintf(msg, sizeof(msg), "token endpoint: %s (gave up after %d attempts)", why,
                     attempt + 1);
            rc = scrubbed_err(err, errlen, BM_ETRANSIENT, msg);
            goto out;
        }
        long delay = next_delay(g, attempt, g->backoff_base_ms, g->backoff_cap_ms);
        if (rc == BM_OK && resp->retry_after_ms > delay)
            delay = resp->retry_after_ms;
        BM_LOG(BM_LOG_WARN, BM_MSG("token request failed, retrying"), BM_KS("error", why),
               BM_KI("attempt", attempt + 1), BM_KI("delay_ms", delay));
        atomic_fetch_add(&g->st_retries, 1);
        if ((rc = sleep_ms(g, delay)) != BM_OK) {
            rc = bm_err(err, errlen, rc, "stopped");
            goto out;
        }
    }
oom:
    rc = bm_err(err, errlen, BM_EIO, "curl_slist_append failed");
out:
    curl_slist_free_all(hdrs);
    return rc;
}

/* Appends "&key=value" (escaped) to a form. */
static void form_add(bm_buf_t *b, const char *key, const char *value)
{
    char *v = bm_gcal_escape(value);
    bm_buf_printf(b, "%s%s=%s", b->len > 0 ? "&" : "", key, v);
    explicit_bzero(v, strlen(v));
    free(v);
}

static void form_wipe(bm_buf_t *b)
{
    if (b->data != NULL)
        explicit_bzero(b->data, b->cap);
    bm_buf_dispose(b);
}

/* Turns a final non-200 token endpoint answer into an error. */
static int token_error(bm_gcal_account_t *a, const http_resp_t *resp, char *err, size_t errlen)
{
    char reason[64], message[256], msg[512];
    bm_gcal_error_parse(resp->body.data, reason, sizeof(reason), message, sizeof(message));
    if (strcmp(reason, "invalid_grant") == 0) {
        if (a != NULL)
            a->needs_login = true;
        snprintf(msg, sizeof(msg),
                 "Google refused the refresh token (invalid_grant%s%s): log in again",
                 message[0] ? ": " : "", message);
        return scrubbed_err(err, errlen, BM_EAUTH, msg);
    }
    snprintf(msg, sizeof(msg), "token endpoint: HTTP %ld %s%s%s", resp->status,
             reason[0] ? reason : "error", message[0] ? ": " : "", message);
    if (strcmp(reason, "invalid_client") == 0 || strcmp(reason, "unauthorized_client") == 0)
        snprintf(msg + strlen(msg), sizeof(msg) - strlen(msg),
                 " (check [google] client_id and client_secret)");
    return scrubbed_err(err, errlen, BM_EAPI, msg);
}

/* Caller holds a->mu. */
static int refresh_locked(bm_gcal_t *g, bm_gcal_account_t *a, char *err, size_t errlen)
{
    int rc = BM_OK;
    yajl_val root = NULL;
    bm_buf_t form;
    http_resp_t resp;
    bm_buf_init(&form, 64 << 10);
    resp_init(&resp, TOKEN_RESP_MAX);
    if (a->needs_login) {
        rc = bm_err(err, errlen, BM_EAUTH, "the account needs a new login");
        goto out;
    }
    if (a->refresh_token == NULL || a->refresh_token[0] == '\0') {
        rc = bm_err(err, errlen, BM_EAUTH, "no refresh token: log in again");
        goto out;
    }
    form_add(&form, "grant_type", "refresh_token");
    form_add(&form, "client_id", g->client_id);
    form_add(&form, "client_secret", g->client_secret);
    form_add(&form, "refresh_token", a->refresh_token);
    if ((rc = token_post(g, form.data, true, &resp, err, errlen)) != BM_OK)
        goto out;
    if (resp.status != 200) {
        rc = token_error(a, &resp, err, errlen);
        goto out;
    }
    root = yajl_tree_parse(resp.body.data, NULL, 0);
    const char *tok = jstr(root, "access_token");
    if (tok == NULL || *tok == '\0' || strlen(tok) >= sizeof(a->access_token)) {
        rc = bm_err(err, errlen, BM_EAPI, "token endpoint: no usable access_token in the answer");
        goto out;
    }
    yajl_val exp = jget(root, "expires_in");
    int64_t expires_s = exp != NULL && YAJL_IS_INTEGER(exp) ? YAJL_GET_INTEGER(exp) : 3600;
    if (expires_s <= 0)
        expires_s = 60;
    bm_log_add_transient_secret(tok);
    snprintf(a->access_token, sizeof(a->access_token), "%s", tok);
    a->access_expires_ms = bm_now_ms() + expires_s * 1000;
    BM_LOG(BM_LOG_DEBUG, BM_MSG("access token refreshed"), BM_KS("account", a->label),
           BM_KI("expires_in", expires_s));
out:
    if (root != NULL) {
        const char *t = jstr(root, "access_token");
        if (t != NULL)
            explicit_bzero((char *)t, strlen(t));
    }
    yajl_tree_free(root);
    if (resp.body.data != NULL)
        explicit_bzero(resp.body.data, resp.body.cap);
    bm_buf_dispose(&resp.body);
    form_wipe(&form);
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
    int rc = BM_OK;
    yajl_val root = NULL;
    bm_buf_t form;
    http_resp_t resp;
    bm_buf_init(&form, 64 << 10);
    resp_init(&resp, TOKEN_RESP_MAX);
    *refresh_token = NULL;
    if (code == NULL || redirect_uri == NULL) {
        rc = bm_err(err, errlen, BM_EINVAL, "code and redirect_uri are required");
        goto out;
    }
    form_add(&form, "grant_type", "authorization_code");
    form_add(&form, "code", code);
    form_add(&form, "client_id", g->client_id);
    form_add(&form, "client_secret", g->client_secret);
    form_add(&form, "redirect_uri", redirect_uri);
    if (code_verifier != NULL)
        form_add(&form, "code_verifier", code_verifier);
    if ((rc = token_post(g, form.data, false, &resp, err, errlen)) != BM_OK)
        goto out;
    if (resp.status != 200) {
        rc = token_error(NULL, &resp, err, errlen);
        if (rc == BM_EAUTH)
            rc = bm_err(err, errlen, BM_EAUTH,
                        "Google refused the authorization code (invalid_grant): it expired or "
                        "was used already; log in again");
        goto out;
    }
    root = yajl_tree_parse(resp.body.data, NULL, 0);
    const char *rt = jstr(root, "refresh_token");
    const char *at = jstr(root, "access_token");
    if (at != NULL)
        bm_log_add_transient_secret(at);
    if (rt == NULL || *rt == '\0') {
        rc = bm_err(err, errlen, BM_EAPI,
                    "Google returned no refresh token (the consent must ask for offline access "
                    "with prompt=consent)");
        goto out;
    }
    bm_log_add_secret(rt);
    *refresh_token = bm_strdup(rt);
out:
    yajl_tree_free(root);
    if (resp.body.data != NULL)
        explicit_bzero(resp.body.data, resp.body.cap);
    bm_buf_dispose(&resp.body);
    form_wipe(&form);
    return rc;
}

/* ---------------------------------------------------------------- API requests */

/* Waits until the account's bucket lets n calls go (see bm_bucket_t). */
static int pace(bm_gcal_t *g, bm_gcal_account_t *a, size_t n)
{
    if (g->user_quota <= 0)
        return BM_OK;
    for (;;) {
        pthread_mutex_lock(&a->mu);
        if (a->bucket.capacity <= 0)
            bm_bucket_init(&a->bucket, g->user_quota, bm_mono_ms());
        long wait = bm_bucket_take(&a->bucket, (double)n, bm_mono_ms());
        pthread_mutex_unlock(&a->mu);
        if (wait == 0)
            return BM_OK;
        int rc = sleep_ms(g, wait);
        if (rc != BM_OK)
            return rc;
    }
}

typedef enum { KIND_CALL, KIND_LIST, KIND_BATCH } req_kind_t;

/*
 * An authorised API request with the retry policy. Returns 0 when a final response
 * arrived (resp filled; any status but the transient ones), else an error.
 */
static int api_exec(bm_gcal_t *g, bm_gcal_account_t *a, const char *method, const char *url,
                    const char *content_type, const char *body, size_t body_len, req_kind_t kind,
                    size_t n_parts, http_resp_t *resp, char *err, size_t errlen)
{
    int rc = BM_OK;
    char token[BM_GCAL_ACCESS_TOKEN_MAX] = "";
    char hdr[BM_GCAL_ACCESS_TOKEN_MAX + 64];
    char what[200];
    bool refreshed = false;
    url_what(g, method, url, what, sizeof(what));
    for (int attempt = 0;;) {
        struct curl_slist *hdrs = NULL, *tmp;
        if ((rc = get_token(g, a, token, sizeof(token), err, errlen)) != BM_OK)
            goto out;
        snprintf(hdr, sizeof(hdr), "Authorization: Bearer %s", token);
        bool ok = (tmp = curl_slist_append(hdrs, hdr)) != NULL && (hdrs = tmp) != NULL &&
                  (tmp = curl_slist_append(hdrs, "Expect:")) != NULL && (hdrs = tmp) != NULL &&
                  (tmp = curl_slist_append(hdrs, "Accept: application/json")) != NULL &&
                  (hdrs = tmp) != NULL;
        explicit_bzero(hdr, sizeof(hdr));
        if (ok && content_type != NULL) {
            char ct[300];
            snprintf(ct, sizeof(ct), "Content-Type: %s", content_type);
            ok = (tmp = curl_slist_append(hdrs, ct)) != NULL && (hdrs = tmp) != NULL;
        }
        if (!ok) {
            curl_slist_free_all(hdrs);
            rc = bm_err(err, errlen, BM_EIO, "curl_slist_append failed");
            goto out;
        }
        if ((rc = pace(g, a, kind == KIND_BATCH ? n_parts : 1)) != BM_OK) {
            curl_slist_free_all(hdrs);
            rc = bm_err(err, errlen, rc, "stopped");
            goto out;
        }
        if (kind == KIND_LIST)
            atomic_fetch_add(&g->st_list_calls, 1);
        if (kind == KIND_BATCH) {
            atomic_fetch_add(&g->st_batch_calls, 1);
            atomic_fetch_add(&g->st_batch_parts, (long)n_parts);
        }
        rc = http_perform(g, method, url, hdrs, body, body_len, resp, err, errlen);
        curl_slist_free_all(hdrs);
        if (rc != BM_OK && rc != BM_ETRANSIENT)
            goto out;

        char why[300] = "";
        long floor_ms = 0;
        if (rc == BM_OK) {
            if (resp->status == 401 && !refreshed) {
                refreshed = true;
                BM_LOG(BM_LOG_INFO, BM_MSG("access token refused, refreshing"),
                       BM_KS("account", a->label), BM_KS("request", what));
                atomic_fetch_add(&g->st_retries, 1);
                /* drop the refused token unless another thread replaced it already */
                pthread_mutex_lock(&a->mu);
                if (strcmp(token, a->access_token) == 0)
                    a->access_expires_ms = 0;
                pthread_mutex_unlock(&a->mu);
                continue;
            }
            char reason[64] = "", message[200] = "";
            if (resp->status == 403 || resp->status == 429)
                bm_gcal_error_parse(resp->body.data, reason, sizeof(reason), message,
                                    sizeof(message));
            bool quota = resp->status == 403 && strcmp(reason, "quotaExceeded") == 0;
            bool rate = resp->status == 403 && (strcmp(reason, "rateLimitExceeded") == 0 ||
                                                strcmp(reason, "userRateLimitExceeded") == 0);
            if (!transient_status(resp->status) && !quota && !rate) {
                rc = BM_OK;
                goto out;
            }
            snprintf(why, sizeof(why), "HTTP %ld%s%s", resp->status, reason[0] ? " " : "", reason);
            if (quota)
                floor_ms = g->quota_backoff_ms;
            if (resp->retry_after_ms > floor_ms)
                floor_ms = resp->retry_after_ms;
        } else {
            snprintf(why, sizeof(why), "%s", err != NULL ? err : "network error");
        }
        if (attempt >= g->max_retries) {
            char msg[600];
            snprintf(msg, sizeof(msg), "%s: %s (gave up after %d attempts)", what, why,
                     attempt + 1);
            rc = scrubbed_err(err, errlen, BM_ETRANSIENT, msg);
            goto out;
        }
        long delay = floor_ms + next_delay(g, attempt, g->backoff_base_ms, g->backoff_cap_ms);
        BM_LOG(BM_LOG_WARN, BM_MSG("google request failed, retrying"), BM_KS("account", a->label),
               BM_KS("request", what), BM_KS("error", why), BM_KI("attempt", attempt + 1),
               BM_KI("delay_ms", delay));
        atomic_fetch_add(&g->st_retries, 1);
        if ((rc = sleep_ms(g, delay)) != BM_OK) {
            rc = bm_err(err, errlen, rc, "stopped");
            goto out;
        }
        attempt++;
    }
out:
    explicit_bzero(token, sizeof(token));
    return rc;
}

/* The return code and message for a final response: 0 for 2xx. */
static int final_status(const char *what, const http_resp_t *resp, char *err, size_t errlen)
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

int bm_gcal_call(bm_gcal_t *g, bm_gcal_account_t *a, const char *method, const char *path,
                 const char *body, long *status, char **resp_body, char *err, size_t errlen)
{
    int rc;
    http_resp_t resp;
    char what[200];
    resp_init(&resp, BM_GCAL_MAX_RESPONSE);
    if (status != NULL)
        *status = 0;
    if (resp_body != NULL)
        *resp_body = NULL;
    char *url = bm_sprintf("%s%s%s", g->api_base, path[0] == '/' ? "" : "/", path);
    url_what(g, method, url, what, sizeof(what));
    rc = api_exec(g, a, method, url, body != NULL ? "application/json" : NULL, body,
                  body != NULL ? strlen(body) : 0, KIND_CALL, 0, &resp, err, errlen);
    if (rc != BM_OK)
        goto out;
    if (status != NULL)
        *status = resp.status;
    rc = final_status(what, &resp, err, errlen);
    if (resp_body != NULL)
        *resp_body = bm_buf_steal(&resp.body);
out:
    bm_buf_dispose(&resp.body);
    free(url);
    return rc;
}

/* ---------------------------------------------------------------- listings */

/* GETs url, checks the status and parses the JSON page into *root. */
static int get_page(bm_gcal_t *g, bm_gcal_account_t *a, const char *url, http_resp_t *resp,
                    yajl_val *root, char *err, size_t errlen)
{
    char what[200];
    url_what(g, "GET", url, what, sizeof(what));
    int rc = api_exec(g, a, "GET", url, NULL, NULL, 0, KIND_LIST, 0, resp, err, errlen);
    if (rc != BM_OK)
        return rc;
    if ((rc = final_status(what, resp, err, errlen)) != BM_OK)
        return rc;
    char perr[256] = "";
    *root = yajl_tree_parse(resp->body.data != NULL ? resp->body.data : "", perr, sizeof(perr));
    if (*root == NULL || !YAJL_IS_OBJECT(*root)) {
        perr[strcspn(perr, "\n")] = '\0';
        return bm_err(err, errlen, BM_ETRANSIENT, "%s: unparseable JSON page: %s", what, perr);
    }
    return BM_OK;
}

int bm_gcal_list_events(bm_gcal_t *g, bm_gcal_account_t *a, const char *calendar_id,
                        const bm_gcal_list_params_t *p, bm_gcal_page_cb cb, void *ud,
                        char **next_sync_token, char *err, size_t errlen)
{
    int rc = BM_OK;
    bm_buf_t base, url;
    http_resp_t resp;
    yajl_val root = NULL;
    char *page_token = NULL;
    bm_event_t *events = NULL;
    size_t n_events = 0;
    bm_buf_init(&base, 64 << 10);
    bm_buf_init(&url, 64 << 10);
    resp_init(&resp, BM_GCAL_MAX_RESPONSE);
    *next_sync_token = NULL;
    const bm_gcal_list_params_t defaults = {0};
    if (p == NULL)
        p = &defaults;
    if (calendar_id == NULL || *calendar_id == '\0') {
        rc = bm_err(err, errlen, BM_EINVAL, "events.list needs a calendar id");
        goto out;
    }

    char *cal = bm_gcal_escape(calendar_id);
    bm_buf_printf(&base, "%s/calendars/%s/events?maxResults=%d", g->api_base, cal,
                  p->max_results > 0 ? p->max_results : BM_GCAL_DEFAULT_PAGE);
    free(cal);
    if (p->sync_token != NULL) {
        char *st = bm_gcal_escape(p->sync_token);
        rc = bm_buf_printf(&base, "&syncToken=%s", st);
        free(st);
    } else {
        char t[40];
        if (p->time_min != 0) {
            bm_time_format(p->time_min, t, sizeof(t));
            bm_buf_printf(&base, "&timeMin=%s", t);
        }
        if (p->time_max != 0) {
            bm_time_format(p->time_max, t, sizeof(t));
            bm_buf_printf(&base, "&timeMax=%s", t);
        }
        if (p->private_property != NULL) {
            char *pp = bm_gcal_escape(p->private_property);
            bm_buf_printf(&base, "&privateExtendedProperty=%s", pp);
            free(pp);
        }
    }
    if (p->show_deleted)
        bm_buf_puts(&base, "&showDeleted=true");
    if (p->single_events)
        bm_buf_puts(&base, "&singleEvents=true");
    if (rc != BM_OK) {
        rc = bm_err(err, errlen, BM_ETOOBIG, "sync token too long");
        goto out;
    }

    for (int page = 0;; page++) {
        if (page >= MAX_PAGES) {
            rc = bm_err(err, errlen, BM_EAPI, "events.list of %s: more than %d pages", calendar_id,
                        MAX_PAGES);
            goto out;
        }
        bm_buf_reset(&url);
        bm_buf_puts(&url, base.data);
        if (page_token != NULL) {
            char *pt = bm_gcal_escape(page_token);
            int r2 = bm_buf_printf(&url, "&pageToken=%s", pt);
            free(pt);
            if (r2 != BM_OK) {
                rc = bm_err(err, errlen, BM_ETOOBIG, "page token too long");
                goto out;
            }
        }
        yajl_tree_free(root);
        root = NULL;
        if ((rc = get_page(g, a, url.data, &resp, &root, err, errlen)) != BM_OK)
            goto out;

        yajl_val items = jget(root, "items");
        size_t n_items = items != NULL && YAJL_IS_ARRAY(items) ? items->u.array.len : 0;
        events = bm_calloc(n_items, sizeof(*events));
        n_events = 0;
        for (size_t i = 0; i < n_items; i++) {
            char perr[256];
            if (bm_event_parse(items->u.array.values[i], &events[n_events], perr, sizeof(perr)) ==
                BM_OK) {
                n_events++;
            } else {
                BM_LOG(BM_LOG_WARN, BM_MSG("skipping an event Google sent that does not parse"),
                       BM_KS("calendar", calendar_id),
                       BM_KS("event", jstr(items->u.array.values[i], "id")), BM_KS("error", perr));
            }
        }
        if (n_events > 0 && cb != NULL && (rc = cb(ud, events, n_events)) != 0)
            goto out;
        for (size_t i = 0; i < n_events; i++)
            bm_event_dispose(&events[i]);
        free(events);
        events = NULL;
        n_events = 0;

        const char *npt = jstr(root, "nextPageToken");
        if (npt != NULL && *npt != '\0') {
            if (page_token != NULL && strcmp(page_token, npt) == 0) {
                rc = bm_err(err, errlen, BM_EAPI, "events.list of %s: page token repeats",
                            calendar_id);
                goto out;
            }
            free(page_token);
            page_token = bm_strdup(npt);
            continue;
        }
        const char *nst = jstr(root, "nextSyncToken");
        *next_sync_token = nst != NULL && *nst != '\0' ? bm_strdup(nst) : NULL;
        break;
    }
out:
    for (size_t i = 0; i < n_events; i++)
        bm_event_dispose(&events[i]);
    free(events);
    yajl_tree_free(root);
    free(page_token);
    bm_buf_dispose(&resp.body);
    bm_buf_dispose(&base);
    bm_buf_dispose(&url);
    return rc;
}

int bm_gcal_list_calendars(bm_gcal_t *g, bm_gcal_account_t *a, bm_gcal_calendar_cb cb, void *ud,
                           char *err, size_t errlen)
{
    int rc = BM_OK;
    http_resp_t resp;
    yajl_val root = NULL;
    char *page_token = NULL;
    char *url = NULL;
    resp_init(&resp, BM_GCAL_MAX_RESPONSE);
    for (int page = 0;; page++) {
        if (page >= MAX_PAGES) {
            rc = bm_err(err, errlen, BM_EAPI, "calendarList.list: too many pages");
            goto out;
        }
        free(url);
        if (page_token != NULL) {
            char *pt = bm_gcal_escape(page_token);
            url = bm_sprintf("%s/users/me/calendarList?maxResults=%d&pageToken=%s", g->api_base,
                             CALENDAR_PAGE_MAX, pt);
            free(pt);
        } else {
            url = bm_sprintf("%s/users/me/calendarList?maxResults=%d", g->api_base,
                             CALENDAR_PAGE_MAX);
        }
        yajl_tree_free(root);
        root = NULL;
        if ((rc = get_page(g, a, url, &resp, &root, err, errlen)) != BM_OK)
            goto out;
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
            if (cal.id == NULL)
                continue;
            if (cb != NULL && (rc = cb(ud, &cal)) != 0)
                goto out;
        }
        const char *npt = jstr(root, "nextPageToken");
        if (npt == NULL || *npt == '\0')
            break;
        if (page_token != NULL && strcmp(page_token, npt) == 0) {
            rc = bm_err(err, errlen, BM_EAPI, "calendarList.list: page token repeats");
            goto out;
        }
        free(page_token);
        page_token = bm_strdup(npt);
    }
out:
    yajl_tree_free(root);
    free(page_token);
    free(url);
    bm_buf_dispose(&resp.body);
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
    http_resp_t resp;
    char boundary[64], ctype[128], what[200];
    bm_buf_init(&body, BM_GCAL_MAX_RESPONSE);
    resp_init(&resp, BM_GCAL_MAX_RESPONSE);
    bm_gcal_reqs_dispose(reqs, n);
    if (n == 0)
        goto out;
    if (n > BM_GCAL_MAX_BATCH) {
        rc = bm_err(err, errlen, BM_EINVAL, "a batch holds at most %d requests, not %zu",
                    BM_GCAL_MAX_BATCH, n);
        goto out;
    }
    pthread_mutex_lock(&g->rng_mu);
    uint64_t r1 = splitmix64(&g->rng), r2 = splitmix64(&g->rng);
    pthread_mutex_unlock(&g->rng_mu);
    snprintf(boundary, sizeof(boundary), "batch_bm%016llx%016llx", (unsigned long long)r1,
             (unsigned long long)r2);
    snprintf(ctype, sizeof(ctype), "multipart/mixed; boundary=%s", boundary);
    if ((rc = bm_batch_encode(reqs, n, g->api_prefix, boundary, &body)) != BM_OK) {
        rc = bm_err(err, errlen, rc, "cannot encode the batch (bad method, path or too large)");
        goto out;
    }
    url_what(g, "POST", g->batch_url, what, sizeof(what));
    rc = api_exec(g, a, "POST", g->batch_url, ctype, body.data, body.len, KIND_BATCH, n, &resp, err,
                  errlen);
    if (rc != BM_OK)
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
    bm_buf_dispose(&resp.body);
    return rc;
}

/* ---------------------------------------------------------------- lifecycle */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void curl_init_once(void)
{
    curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static void share_lock(CURL *h, curl_lock_data data, curl_lock_access access, void *ud)
{
    bm_gcal_t *g = ud;
    if ((int)data >= 0 && data < CURL_LOCK_DATA_LAST)
        pthread_mutex_lock(&g->share_mu[data]);
}

static void share_unlock(CURL *h, curl_lock_data data, void *ud)
{
    bm_gcal_t *g = ud;
    if ((int)data >= 0 && data < CURL_LOCK_DATA_LAST)
        pthread_mutex_unlock(&g->share_mu[data]);
}

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
    pthread_once(&curl_once, curl_init_once);
    if (curl_init_rc != CURLE_OK) {
        rc = bm_err(err, errlen, BM_EIO, "curl_global_init: %s", curl_easy_strerror(curl_init_rc));
        goto out;
    }
    g = bm_calloc(1, sizeof(*g));
    g->api_base = dup_url(o->api_base_url, "https://www.googleapis.com/calendar/v3");
    g->api_prefix = bm_gcal_url_path(g->api_base);
    g->batch_url = dup_url(o->batch_url, "https://www.googleapis.com/batch/calendar/v3");
    g->token_url = dup_url(o->token_url, "https://oauth2.googleapis.com/token");
    g->client_id = bm_strdup(o->client_id != NULL ? o->client_id : "");
    g->client_secret = bm_strdup(o->client_secret != NULL ? o->client_secret : "");
    g->user_agent = bm_strdup(o->user_agent != NULL ? o->user_agent : "busymirror");
    g->connect_timeout_ms = o->connect_timeout_ms > 0 ? o->connect_timeout_ms : 10000;
    g->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : 120000;
    g->max_retries = o->max_retries > 0 ? o->max_retries : o->max_retries < 0 ? 0 : 5;
    g->backoff_base_ms = o->backoff_base_ms > 0 ? o->backoff_base_ms : 500;
    g->backoff_cap_ms = o->backoff_cap_ms > 0 ? o->backoff_cap_ms : 32000;
    g->quota_backoff_ms = o->quota_backoff_ms > 0 ? o->quota_backoff_ms : 30000;
    g->user_quota = o->user_quota > 0 ? o->user_quota : 0;
    g->stop = o->stop;
    bm_log_add_secret(g->client_secret);
    for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
        pthread_mutex_init(&g->share_mu[i], NULL);
    pthread_mutex_init(&g->pool_mu, NULL);
    pthread_mutex_init(&g->rng_mu, NULL);
    if (getrandom(&g->rng, sizeof(g->rng), 0) != (ssize_t)sizeof(g->rng))
        g->rng = (uint64_t)bm_mono_ms() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)g;

    if ((g->share = curl_share_init()) == NULL) {
        rc = bm_err(err, errlen, BM_EIO, "curl_share_init failed");
        goto out;
    }
    CURLSHcode sc;
    if ((sc = curl_share_setopt(g->share, CURLSHOPT_LOCKFUNC, share_lock)) != CURLSHE_OK ||
        (sc = curl_share_setopt(g->share, CURLSHOPT_UNLOCKFUNC, share_unlock)) != CURLSHE_OK ||
        (sc = curl_share_setopt(g->share, CURLSHOPT_USERDATA, g)) != CURLSHE_OK ||
        (sc = curl_share_setopt(g->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS)) != CURLSHE_OK ||
        (sc = curl_share_setopt(g->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION)) !=
            CURLSHE_OK ||
        (sc = curl_share_setopt(g->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT)) != CURLSHE_OK) {
        rc = bm_err(err, errlen, BM_EIO, "curl_share_setopt: %s", curl_share_strerror(sc));
        goto out;
    }
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
    for (size_t i = 0; i < g->n_pool; i++)
        curl_easy_cleanup(g->pool[i]);
    if (g->share != NULL)
        curl_share_cleanup(g->share);
    for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
        pthread_mutex_destroy(&g->share_mu[i]);
    pthread_mutex_destroy(&g->pool_mu);
    pthread_mutex_destroy(&g->rng_mu);
    free(g->api_base);
    free(g->api_prefix);
    free(g->batch_url);
    free(g->token_url);
    free(g->client_id);
    if (g->client_secret != NULL)
        explicit_bzero(g->client_secret, strlen(g->client_secret));
    free(g->client_secret);
    free(g->user_agent);
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
