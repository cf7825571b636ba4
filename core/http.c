/*
 * core/http.c: the only user of libcurl in busymirror's daemon and CLI: curl's
 * global init, the CURLSH shared by every thread (and its locks), the pool of
 * easy handles, and one bounded request (see core/http-int.h).
 */
#include "core/http-int.h"
#include "core/log.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define POOL_MAX 16

struct bm_http {
    char *user_agent;
    long connect_timeout_ms;
    long timeout_ms;
    const volatile int *stop;
    CURLSH *share;
    pthread_mutex_t share_mu[CURL_LOCK_DATA_LAST];
    pthread_mutex_t pool_mu;
    CURL *pool[POOL_MAX];
    size_t n_pool;
};

/* ---------------------------------------------------------------- responses */

void bm__http_resp_init(bm_http_resp_t *r, size_t max_body)
{
    memset(r, 0, sizeof(*r));
    bm_buf_init(&r->body, max_body);
    r->retry_after_ms = -1;
}

void bm__http_resp_init_secret(bm_http_resp_t *r, size_t max_body)
{
    bm__http_resp_init(r, max_body);
    bm_buf_init_secret(&r->body, max_body);
}

void bm__http_resp_dispose(bm_http_resp_t *r, bool wipe)
{
    if (wipe && r->body.data != NULL)
        explicit_bzero(r->body.data, r->body.cap);
    bm_buf_dispose(&r->body);
}

static void resp_reset(bm_http_resp_t *r)
{
    bm_buf_reset(&r->body);
    r->status = 0;
    r->content_type[0] = '\0';
    r->retry_after_ms = -1;
    r->too_big = false;
}

static size_t on_write(char *ptr, size_t size, size_t nmemb, void *ud)
{
    bm_http_resp_t *r = ud;
    size_t n = size * nmemb;
    if (bm_buf_append(&r->body, ptr, n) != BM_OK) {
        r->too_big = true;
        return 0;
    }
    return n;
}

/* Retry-After as delay-seconds or an HTTP date, in ms within [0, BM_HTTP_RETRY_AFTER_MAX]. */
static void parse_retry_after(bm_http_resp_t *r, const char *v, size_t vlen)
{
    char val[64];
    while (vlen > 0 && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
        vlen--;
    if (vlen >= sizeof(val))
        return;
    memcpy(val, v, vlen);
    val[vlen] = '\0';
    char *end;
    long secs = strtol(val, &end, 10);
    if (end != val && *end == '\0' && secs >= 0) {
        r->retry_after_ms =
            secs > BM_HTTP_RETRY_AFTER_MAX / 1000 ? BM_HTTP_RETRY_AFTER_MAX : secs * 1000;
        return;
    }
    time_t when = curl_getdate(val, NULL);
    if (when != -1) {
        int64_t ms = ((int64_t)when - bm_now()) * 1000;
        r->retry_after_ms = ms < 0                         ? 0
                            : ms > BM_HTTP_RETRY_AFTER_MAX ? BM_HTTP_RETRY_AFTER_MAX
                                                           : (long)ms;
    }
}

static size_t on_header(char *ptr, size_t size, size_t nitems, void *ud)
{
    bm_http_resp_t *r = ud;
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
    if (name_len == 12 && strncasecmp(ptr, "content-type", 12) == 0)
        snprintf(r->content_type, sizeof(r->content_type), "%.*s", (int)vlen, v);
    else if (name_len == 11 && strncasecmp(ptr, "retry-after", 11) == 0)
        parse_retry_after(r, v, vlen);
    return n;
}

static bool stopped(const bm_http_t *h)
{
    /* atomic: set by another thread or a signal handler (TSan) */
    return h->stop != NULL && __atomic_load_n(h->stop, __ATOMIC_RELAXED) != 0;
}

static int on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    return stopped(ud);
}

/* ---------------------------------------------------------------- handles */

static CURL *handle_get(bm_http_t *h)
{
    CURL *c = NULL;
    pthread_mutex_lock(&h->pool_mu);
    if (h->n_pool > 0)
        c = h->pool[--h->n_pool];
    pthread_mutex_unlock(&h->pool_mu);
    return c != NULL ? c : curl_easy_init();
}

static void handle_put(bm_http_t *h, CURL *c)
{
    if (c == NULL)
        return;
    curl_easy_reset(c);
    pthread_mutex_lock(&h->pool_mu);
    if (h->n_pool < POOL_MAX) {
        h->pool[h->n_pool++] = c;
        c = NULL;
    }
    pthread_mutex_unlock(&h->pool_mu);
    if (c != NULL)
        curl_easy_cleanup(c);
}

/* Frees a header list, wiping each line first (one may carry a bearer token). */
static void headers_free(struct curl_slist *l)
{
    for (struct curl_slist *p = l; p != NULL; p = p->next)
        if (p->data != NULL)
            explicit_bzero(p->data, strlen(p->data));
    curl_slist_free_all(l);
}

#define SETOPT(c, opt, val)                                                                        \
    do {                                                                                           \
        if ((cc = curl_easy_setopt((c), (opt), (val))) != CURLE_OK)                                \
            goto setopt_failed;                                                                    \
    } while (0)

int bm__http_perform(bm_http_t *h, const char *method, const char *url, const char *const *headers,
                     size_t n_headers, const char *body, size_t body_len, bm_http_resp_t *resp,
                     char *err, size_t errlen)
{
    int rc = BM_OK;
    CURLcode cc;
    char curl_err[CURL_ERROR_SIZE] = "";
    struct curl_slist *hdrs = NULL, *tmp;
    bool get = strcmp(method, "GET") == 0, post = strcmp(method, "POST") == 0;
    resp_reset(resp);
    CURL *c = handle_get(h);
    if (c == NULL) {
        rc = bm_err(err, errlen, BM_EIO, "curl_easy_init failed");
        goto out;
    }
    for (size_t i = 0; i < n_headers; i++) {
        if ((tmp = curl_slist_append(hdrs, headers[i])) == NULL) {
            rc = bm_err(err, errlen, BM_EIO, "curl_slist_append failed");
            goto out;
        }
        hdrs = tmp;
    }
    SETOPT(c, CURLOPT_URL, url);
    SETOPT(c, CURLOPT_SHARE, h->share);
    SETOPT(c, CURLOPT_NOSIGNAL, 1L);
    SETOPT(c, CURLOPT_ERRORBUFFER, curl_err);
    SETOPT(c, CURLOPT_CONNECTTIMEOUT_MS, h->connect_timeout_ms);
    SETOPT(c, CURLOPT_TIMEOUT_MS, h->timeout_ms);
#if LIBCURL_VERSION_NUM >= 0x075500
    SETOPT(c, CURLOPT_PROTOCOLS_STR, "http,https");
#else
    SETOPT(c, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    /* HTTP/2 over TLS when offered; plain http (the emulator) stays HTTP/1.1. An old
     * libcurl without HTTP/2 refuses the option: HTTP/1.1 then, which is fine. */
    (void)curl_easy_setopt(c, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
    SETOPT(c, CURLOPT_ACCEPT_ENCODING, "");
    SETOPT(c, CURLOPT_USERAGENT, h->user_agent);
    SETOPT(c, CURLOPT_HTTPHEADER, hdrs);
    SETOPT(c, CURLOPT_WRITEFUNCTION, on_write);
    SETOPT(c, CURLOPT_WRITEDATA, resp);
    SETOPT(c, CURLOPT_HEADERFUNCTION, on_header);
    SETOPT(c, CURLOPT_HEADERDATA, resp);
    /* A stop aborts reads at once; a write in flight completes (within the
     * timeout), so that its result is recorded and nothing is applied twice. */
    SETOPT(c, CURLOPT_NOPROGRESS, get ? 0L : 1L);
    SETOPT(c, CURLOPT_XFERINFOFUNCTION, on_progress);
    SETOPT(c, CURLOPT_XFERINFODATA, h);
    SETOPT(c, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)resp->body.max);
    if (get) {
        SETOPT(c, CURLOPT_HTTPGET, 1L);
    } else {
        if (!post)
            SETOPT(c, CURLOPT_CUSTOMREQUEST, method);
        if (body != NULL || post) {
            SETOPT(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
            SETOPT(c, CURLOPT_POSTFIELDS, body != NULL ? body : "");
        }
    }

    cc = curl_easy_perform(c);
    if (cc == CURLE_OK) {
        if ((cc = curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &resp->status)) != CURLE_OK)
            rc = bm_err(err, errlen, BM_EIO, "curl_easy_getinfo: %s", curl_easy_strerror(cc));
        goto out;
    }
    if (resp->too_big || cc == CURLE_FILESIZE_EXCEEDED) {
        rc = bm_err(err, errlen, BM_ETOOBIG, "response larger than %zu bytes", resp->body.max);
    } else if (cc == CURLE_ABORTED_BY_CALLBACK && stopped(h)) {
        rc = bm_err(err, errlen, BM_ECANCELED, "stopped");
    } else {
        rc = BM_ETRANSIENT;
        if (err != NULL && errlen > 0) /* curl's message may quote the URL */
            bm_log_scrub(curl_err[0] != '\0' ? curl_err : curl_easy_strerror(cc), err, errlen);
    }
    goto out;
setopt_failed:
    rc = bm_err(err, errlen, BM_EIO, "curl_easy_setopt: %s", curl_easy_strerror(cc));
out:
    if (c != NULL)
        (void)curl_easy_setopt(c, CURLOPT_ERRORBUFFER, NULL); /* curl_err goes out of scope */
    handle_put(h, c);
    headers_free(hdrs);
    return rc;
}

/* ---------------------------------------------------------------- lifecycle */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void curl_init_once(void)
{
    curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static void share_lock(CURL *c, curl_lock_data data, curl_lock_access access, void *ud)
{
    bm_http_t *h = ud;
    if ((int)data >= 0 && data < CURL_LOCK_DATA_LAST)
        pthread_mutex_lock(&h->share_mu[data]);
}

static void share_unlock(CURL *c, curl_lock_data data, void *ud)
{
    bm_http_t *h = ud;
    if ((int)data >= 0 && data < CURL_LOCK_DATA_LAST)
        pthread_mutex_unlock(&h->share_mu[data]);
}

int bm__http_new(const bm_http_opts_t *o, bm_http_t **out, char *err, size_t errlen)
{
    int rc = BM_OK;
    bm_http_t *h = NULL;
    CURLSHcode sc;
    *out = NULL;
    pthread_once(&curl_once, curl_init_once);
    if (curl_init_rc != CURLE_OK) {
        rc = bm_err(err, errlen, BM_EIO, "curl_global_init: %s", curl_easy_strerror(curl_init_rc));
        goto out;
    }
    h = bm_calloc(1, sizeof(*h));
    h->user_agent = bm_strdup(o->user_agent);
    h->connect_timeout_ms = o->connect_timeout_ms;
    h->timeout_ms = o->timeout_ms;
    h->stop = o->stop;
    for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
        pthread_mutex_init(&h->share_mu[i], NULL);
    pthread_mutex_init(&h->pool_mu, NULL);
    if ((h->share = curl_share_init()) == NULL) {
        rc = bm_err(err, errlen, BM_EIO, "curl_share_init failed");
        goto out;
    }
    if ((sc = curl_share_setopt(h->share, CURLSHOPT_LOCKFUNC, share_lock)) != CURLSHE_OK ||
        (sc = curl_share_setopt(h->share, CURLSHOPT_UNLOCKFUNC, share_unlock)) != CURLSHE_OK ||
        (sc = curl_share_setopt(h->share, CURLSHOPT_USERDATA, h)) != CURLSHE_OK ||
        (sc = curl_share_setopt(h->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS)) != CURLSHE_OK ||
        (sc = curl_share_setopt(h->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION)) !=
            CURLSHE_OK ||
        (sc = curl_share_setopt(h->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT)) != CURLSHE_OK) {
        rc = bm_err(err, errlen, BM_EIO, "curl_share_setopt: %s", curl_share_strerror(sc));
        goto out;
    }
    *out = h;
    h = NULL;
out:
    bm__http_free(h);
    return rc;
}

void bm__http_free(bm_http_t *h)
{
    if (h == NULL)
        return;
    for (size_t i = 0; i < h->n_pool; i++)
        curl_easy_cleanup(h->pool[i]);
    if (h->share != NULL)
        curl_share_cleanup(h->share);
    for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
        pthread_mutex_destroy(&h->share_mu[i]);
    pthread_mutex_destroy(&h->pool_mu);
    free(h->user_agent);
    free(h);
}
