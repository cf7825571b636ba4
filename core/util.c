#include "core/util.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

const char *bm_strerror(int code)
{
    switch (code) {
    case BM_OK:
        return "ok";
    case BM_EINVAL:
        return "invalid";
    case BM_EIO:
        return "io";
    case BM_ESTORE:
        return "store";
    case BM_ENOTFOUND:
        return "not_found";
    case BM_EEXIST:
        return "exists";
    case BM_EBUSY:
        return "busy";
    case BM_EGONE:
        return "gone";
    case BM_EAUTH:
        return "needs_login";
    case BM_ETRANSIENT:
        return "transient";
    case BM_EAPI:
        return "api";
    case BM_ETOOBIG:
        return "too_big";
    case BM_ECANCELED:
        return "canceled";
    case BM_ECRYPTO:
        return "crypto";
    }
    return "unknown";
}

static void oom(void)
{
    fputs("busymirror: out of memory\n", stderr);
    abort();
}

void *bm_malloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p == NULL)
        oom();
    return p;
}

void *bm_calloc(size_t count, size_t n)
{
    void *p = calloc(count ? count : 1, n ? n : 1);
    if (p == NULL)
        oom();
    return p;
}

void *bm_realloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (q == NULL)
        oom();
    return q;
}

char *bm_strdup(const char *s)
{
    return s == NULL ? NULL : bm_strndup(s, strlen(s));
}

char *bm_strndup(const char *s, size_t n)
{
    char *d = bm_malloc(n + 1);
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

char *bm_sprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (n < 0)
        oom();
    return s;
}

int bm_err(char *err, size_t errlen, int code, const char *fmt, ...)
{
    if (err != NULL && errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return code;
}

void (*bm__wipe_free_hook)(const void *p, size_t n);

void bm_wipe_free(void *p, size_t n)
{
    if (p == NULL)
        return;
    explicit_bzero(p, n);
    if (bm__wipe_free_hook != NULL)
        bm__wipe_free_hook(p, n);
    free(p);
}

void bm_buf_init(bm_buf_t *b, size_t max)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max;
    b->secret = false;
}

void bm_buf_init_secret(bm_buf_t *b, size_t max)
{
    bm_buf_init(b, max);
    b->secret = true;
}

/* Empties b, keeping its maximum and its secret flag. */
static void buf_clear(bm_buf_t *b)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void bm_buf_dispose(bm_buf_t *b)
{
    if (b->secret)
        bm_wipe_free(b->data, b->cap);
    else
        free(b->data);
    buf_clear(b);
}

void bm_buf_reset(bm_buf_t *b)
{
    if (b->secret && b->data != NULL)
        explicit_bzero(b->data, b->len);
    b->len = 0;
    if (b->data != NULL)
        b->data[0] = '\0';
}

/* A secret buffer grows by copy and wipe: realloc would free the old block as it is. */
static void buf_grow(bm_buf_t *b, size_t cap)
{
    if (!b->secret) {
        b->data = bm_realloc(b->data, cap);
    } else {
        char *d = bm_malloc(cap);
        if (b->data != NULL)
            memcpy(d, b->data, b->len + 1);
        bm_wipe_free(b->data, b->cap);
        b->data = d;
    }
    b->cap = cap;
}

int bm_buf_append(bm_buf_t *b, const void *p, size_t n)
{
    if (n > b->max || b->len > b->max - n)
        return BM_ETOOBIG;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        buf_grow(b, cap);
    }
    if (n > 0)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return BM_OK;
}

int bm_buf_puts(bm_buf_t *b, const char *s)
{
    return bm_buf_append(b, s, strlen(s));
}

int bm_buf_printf(bm_buf_t *b, const char *fmt, ...)
{
    char small[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0)
        return BM_EINVAL;
    int rc;
    if ((size_t)n < sizeof(small)) {
        rc = bm_buf_append(b, small, (size_t)n);
    } else {
        char *big = bm_malloc((size_t)n + 1);
        va_start(ap, fmt);
        vsnprintf(big, (size_t)n + 1, fmt, ap);
        va_end(ap);
        rc = bm_buf_append(b, big, (size_t)n);
        if (b->secret)
            bm_wipe_free(big, (size_t)n + 1);
        else
            free(big);
    }
    if (b->secret)
        explicit_bzero(small, sizeof(small));
    return rc;
}

char *bm_buf_steal(bm_buf_t *b)
{
    char *d = b->data != NULL ? b->data : bm_strdup("");
    buf_clear(b);
    return d;
}

/* ---- codecs ---- */

static const char b64url_chars[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

int bm_buf_b64url(bm_buf_t *b, const void *p, size_t n)
{
    const unsigned char *s = p;
    int rc = BM_OK;
    for (size_t i = 0; rc == BM_OK && i < n; i += 3) {
        size_t k = n - i;
        uint32_t v = (uint32_t)s[i] << 16;
        if (k > 1)
            v |= (uint32_t)s[i + 1] << 8;
        if (k > 2)
            v |= s[i + 2];
        char out[4] = {b64url_chars[(v >> 18) & 63], b64url_chars[(v >> 12) & 63],
                       b64url_chars[(v >> 6) & 63], b64url_chars[v & 63]};
        rc = bm_buf_append(b, out, k > 2 ? 4 : k + 1);
    }
    return rc;
}

int bm_b64url_decode(const char *s, char *out, size_t outcap, size_t *outlen)
{
    uint32_t acc = 0;
    int bits = 0;
    size_t o = 0;
    if (outcap == 0)
        return BM_EINVAL;
    for (; *s != '\0'; s++) {
        const char *p = strchr(b64url_chars, *s);
        if (p == NULL)
            return BM_EINVAL;
        acc = (acc << 6) | (uint32_t)(p - b64url_chars);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (o + 1 >= outcap)
                return BM_EINVAL;
            out[o++] = (char)((acc >> bits) & 0xFF);
        }
    }
    out[o] = '\0';
    *outlen = o;
    return BM_OK;
}

int bm_buf_url_encode(bm_buf_t *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    int rc = BM_OK;
    for (const unsigned char *p = (const unsigned char *)s; rc == BM_OK && *p != '\0'; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            *p == '-' || *p == '_' || *p == '.' || *p == '~') {
            rc = bm_buf_append(b, p, 1);
        } else {
            char e[3] = {'%', hex[*p >> 4], hex[*p & 15]};
            rc = bm_buf_append(b, e, 3);
        }
    }
    return rc;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int bm_url_decode(const char *s, size_t len, bool form, bool strict, char **out)
{
    char *o = bm_malloc(len + 1);
    size_t j = 0;
    for (size_t i = 0; i < len; i++) {
        int hi = s[i] == '%' && i + 2 < len ? hexval(s[i + 1]) : -1;
        int lo = hi >= 0 ? hexval(s[i + 2]) : -1;
        if (form && s[i] == '+') {
            o[j++] = ' ';
        } else if (s[i] != '%') {
            o[j++] = s[i];
        } else if (lo >= 0 && (hi | lo) != 0) {
            o[j++] = (char)(hi << 4 | lo);
            i += 2;
        } else if (strict) {
            free(o);
            *out = NULL;
            return BM_EINVAL;
        } else {
            o[j++] = s[i];
        }
    }
    o[j] = '\0';
    *out = o;
    return BM_OK;
}

int64_t bm_now(void)
{
    return (int64_t)time(NULL);
}

int64_t bm_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t bm_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int bm_consttime_streq(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    unsigned char diff = la != lb;
    size_t n = la < lb ? la : lb;
    for (size_t i = 0; i < n; i++)
        diff |= (unsigned char)(a[i] ^ b[i]);
    return diff == 0;
}

int bm_read_file(const char *path, size_t max, char **out, char *err, size_t errlen)
{
    int rc = BM_OK;
    bm_buf_t b;
    char chunk[4096];
    bm_buf_init_secret(&b, max);
    /* read(2), not stdio: a FILE's buffer would be freed unwiped. */
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        rc = bm_err(err, errlen, BM_EIO, "%s: %s", path, strerror(errno));
        goto out;
    }
    for (;;) {
        ssize_t n = read(fd, chunk, sizeof(chunk));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = bm_err(err, errlen, BM_EIO, "%s: read error: %s", path, strerror(errno));
            goto out;
        }
        if (n == 0)
            break;
        if (bm_buf_append(&b, chunk, (size_t)n) != BM_OK) {
            rc = bm_err(err, errlen, BM_ETOOBIG, "%s: larger than %zu bytes", path, max);
            goto out;
        }
    }
    while (b.len > 0 && strchr(" \t\r\n", b.data[b.len - 1]) != NULL)
        b.data[--b.len] = '\0';
    *out = bm_buf_steal(&b);
out:
    if (fd >= 0)
        (void)close(fd); /* read only: a failed close loses nothing */
    explicit_bzero(chunk, sizeof(chunk));
    bm_buf_dispose(&b);
    return rc;
}

int bm_name_check(const char *what, const char *name, char *err, size_t errlen)
{
    static const char extra[] = "._@+-";
    size_t len = strlen(name);
    if (len == 0 || len > BM_NAME_MAX)
        return bm_err(err, errlen, BM_EINVAL, "%s name must be 1 to %d characters, not %zu", what,
                      BM_NAME_MAX, len);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        if (!(c < 0x80 && (isalnum(c) || strchr(extra, c) != NULL)))
            return bm_err(err, errlen, BM_EINVAL,
                          "%s name: character %zu is not one of A-Z a-z 0-9 . _ @ + -", what,
                          i + 1);
    }
    return BM_OK;
}

bool bm_url_secure(const char *url)
{
    if (strncasecmp(url, "https://", 8) == 0)
        return url[8] != '\0';
    if (strncasecmp(url, "http://", 7) != 0)
        return false;
    const char *auth = url + 7;
    size_t alen = strcspn(auth, "/?#");
    const char *at = memrchr(auth, '@', alen);
    const char *host = at != NULL ? at + 1 : auth;
    size_t hlen = (size_t)(auth + alen - host);
    if (hlen > 0 && host[0] == '[') {
        const char *close = memchr(host, ']', hlen);
        if (close == NULL || (close + 1 < host + hlen && close[1] != ':'))
            return false;
        return close - host == 4 && memcmp(host, "[::1", 4) == 0;
    }
    const char *colon = memchr(host, ':', hlen);
    if (colon != NULL)
        hlen = (size_t)(colon - host);
    if (hlen == 9 && strncasecmp(host, "localhost", 9) == 0)
        return true;
    char ip[16];
    struct in_addr a;
    if (hlen == 0 || hlen >= sizeof(ip))
        return false;
    memcpy(ip, host, hlen);
    ip[hlen] = '\0';
    return inet_pton(AF_INET, ip, &a) == 1 && (ntohl(a.s_addr) >> 24) == 127;
}
