#include "core/util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

void bm_buf_init(bm_buf_t *b, size_t max)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max;
}

void bm_buf_dispose(bm_buf_t *b)
{
    free(b->data);
    bm_buf_init(b, b->max);
}

void bm_buf_reset(bm_buf_t *b)
{
    b->len = 0;
    if (b->data != NULL)
        b->data[0] = '\0';
}

int bm_buf_append(bm_buf_t *b, const void *p, size_t n)
{
    if (n > b->max || b->len > b->max - n)
        return BM_ETOOBIG;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        b->data = bm_realloc(b->data, cap);
        b->cap = cap;
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
    if ((size_t)n < sizeof(small))
        return bm_buf_append(b, small, (size_t)n);
    char *big = bm_malloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    int rc = bm_buf_append(b, big, (size_t)n);
    free(big);
    return rc;
}

char *bm_buf_steal(bm_buf_t *b)
{
    char *d = b->data != NULL ? b->data : bm_strdup("");
    bm_buf_init(b, b->max);
    return d;
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
    bm_buf_init(&b, max);
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        rc = bm_err(err, errlen, BM_EIO, "%s: %s", path, strerror(errno));
        goto out;
    }
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        if (bm_buf_append(&b, chunk, n) != BM_OK) {
            rc = bm_err(err, errlen, BM_ETOOBIG, "%s: larger than %zu bytes", path, max);
            goto out;
        }
    }
    if (ferror(f)) {
        rc = bm_err(err, errlen, BM_EIO, "%s: read error", path);
        goto out;
    }
    while (b.len > 0 && strchr(" \t\r\n", b.data[b.len - 1]) != NULL)
        b.data[--b.len] = '\0';
    *out = bm_buf_steal(&b);
out:
    if (f != NULL)
        fclose(f);
    bm_buf_dispose(&b);
    return rc;
}
