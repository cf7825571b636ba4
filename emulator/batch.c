/* emulator/batch.c: POST /batch/calendar/v3 (multipart/mixed of application/http parts). */
#include "emulator/emulator.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_PARTS 1000

void emu_parts_free(emu_part_t *parts, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(parts[i].content_id);
    free(parts);
}

int emu_multipart_boundary(const char *content_type, char *out, size_t outlen)
{
    if (content_type == NULL || strncasecmp(content_type, "multipart/", 10) != 0)
        return BM_EINVAL;
    const char *p = strcasestr(content_type, "boundary=");
    if (p == NULL)
        return BM_EINVAL;
    p += 9;
    size_t n = 0;
    if (*p == '"') {
        p++;
        while (p[n] != '\0' && p[n] != '"')
            n++;
    } else {
        while (p[n] != '\0' && p[n] != ';' && !isspace((unsigned char)p[n]))
            n++;
    }
    if (n == 0 || n > 70 || n >= outlen)
        return BM_EINVAL;
    memcpy(out, p, n);
    out[n] = '\0';
    return BM_OK;
}

/* Finds the end of a header block: returns the offset of the body, or -1. */
static ssize_t header_end(const char *s, size_t len)
{
    for (size_t i = 0; i + 1 < len; i++) {
        if (s[i] == '\n' && s[i + 1] == '\n')
            return (ssize_t)(i + 2);
        if (s[i] == '\n' && s[i + 1] == '\r' && i + 2 < len && s[i + 2] == '\n')
            return (ssize_t)(i + 3);
    }
    return -1;
}

/* Calls fn for each "Name: value" line of a header block [s, s+len). */
static void each_header(const char *s, size_t len,
                        void (*fn)(void *, const char *, size_t, const char *, size_t), void *arg)
{
    const char *p = s, *end = s + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl != NULL ? nl : end;
        const char *ve = le;
        if (ve > p && ve[-1] == '\r')
            ve--;
        const char *colon = memchr(p, ':', (size_t)(ve - p));
        if (colon != NULL) {
            const char *v = colon + 1;
            while (v < ve && (*v == ' ' || *v == '\t'))
                v++;
            fn(arg, p, (size_t)(colon - p), v, (size_t)(ve - v));
        }
        p = le + 1;
    }
}

static bool name_is(const char *n, size_t nlen, const char *want)
{
    return strlen(want) == nlen && strncasecmp(n, want, nlen) == 0;
}

static void part_header(void *arg, const char *n, size_t nlen, const char *v, size_t vlen)
{
    emu_part_t *part = arg;
    if (name_is(n, nlen, "Content-ID") && part->content_id == NULL)
        part->content_id = bm_strndup(v, vlen);
}

int emu_multipart_parse(const char *boundary, const char *body, size_t len, emu_part_t **out,
                        size_t *n_out, char *err, size_t errlen)
{
    char delim[80];
    int dl = snprintf(delim, sizeof(delim), "--%s", boundary);
    emu_part_t *parts = NULL;
    size_t n = 0, cap = 0;
    *out = NULL;
    *n_out = 0;
    const char *end = body + len;
    const char *p = memmem(body, len, delim, (size_t)dl);
    if (p == NULL)
        return bm_err(err, errlen, BM_EINVAL, "no multipart boundary in body");
    for (;;) {
        p += dl;
        if (end - p >= 2 && p[0] == '-' && p[1] == '-')
            break; /* closing delimiter */
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (nl == NULL)
            break; /* tolerate a missing closing delimiter */
        const char *start = nl + 1;
        /* the part ends at the next "\n--boundary" */
        const char *q = start;
        const char *next = NULL;
        while (q < end) {
            const char *hit = memmem(q, (size_t)(end - q), delim, (size_t)dl);
            if (hit == NULL)
                break;
            if (hit > start && hit[-1] == '\n') {
                next = hit;
                break;
            }
            q = hit + 1;
        }
        const char *pend = next != NULL ? next - 1 : end;
        if (pend > start && pend[-1] == '\r')
            pend--;
        if (n == MAX_PARTS) {
            emu_parts_free(parts, n);
            return bm_err(err, errlen, BM_ETOOBIG, "more than %d parts", MAX_PARTS);
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            parts = bm_realloc(parts, sizeof(*parts) * cap);
        }
        emu_part_t *part = &parts[n++];
        memset(part, 0, sizeof(*part));
        ssize_t he = header_end(start, (size_t)(pend - start));
        if (pend - start >= 2 && start[0] == '\r' && start[1] == '\n')
            he = 2; /* no part headers */
        else if (pend - start >= 1 && start[0] == '\n')
            he = 1;
        if (he < 0) {
            part->data = pend;
            part->len = 0;
        } else {
            each_header(start, (size_t)he, part_header, part);
            part->data = start + he;
            part->len = (size_t)(pend - part->data);
        }
        if (next == NULL)
            break;
        p = next;
    }
    *out = parts;
    *n_out = n;
    return BM_OK;
}

static void inner_header(void *arg, const char *n, size_t nlen, const char *v, size_t vlen)
{
    emu_req_t *rq = arg;
    if (name_is(n, nlen, "Authorization")) {
        free(rq->authorization);
        rq->authorization = bm_strndup(v, vlen);
    } else if (name_is(n, nlen, "If-Match")) {
        free(rq->if_match);
        rq->if_match = bm_strndup(v, vlen);
    } else if (name_is(n, nlen, "Content-Type")) {
        free(rq->content_type);
        rq->content_type = bm_strndup(v, vlen);
    }
}

int emu_http_request_parse(const char *data, size_t len, emu_req_t *rq)
{
    /* skip leading blank lines */
    while (len > 0 && (*data == '\r' || *data == '\n')) {
        data++;
        len--;
    }
    const char *nl = memchr(data, '\n', len);
    const char *le = nl != NULL ? nl : data + len;
    const char *sp1 = memchr(data, ' ', (size_t)(le - data));
    if (sp1 == NULL || (size_t)(sp1 - data) >= sizeof(rq->method))
        return BM_EINVAL;
    memcpy(rq->method, data, (size_t)(sp1 - data));
    rq->method[sp1 - data] = '\0';
    const char *t = sp1 + 1;
    const char *te = t;
    while (te < le && *te != ' ' && *te != '\r')
        te++;
    if (te == t)
        return BM_EINVAL;
    /* an absolute URL: keep the path */
    if ((size_t)(te - t) > 8 && (strncmp(t, "http://", 7) == 0 || strncmp(t, "https://", 8) == 0)) {
        const char *slash = memchr(t + 8, '/', (size_t)(te - t - 8));
        t = slash != NULL ? slash : te;
    }
    if (t == te || *t != '/')
        return BM_EINVAL;
    if (emu_req_set_target(rq, t, (size_t)(te - t)) != BM_OK)
        return BM_EINVAL;
    if (nl == NULL) {
        rq->body = NULL;
        rq->body_len = 0;
        return BM_OK;
    }
    const char *hs = nl + 1;
    size_t hlen = (size_t)(data + len - hs);
    rq->body = NULL;
    rq->body_len = 0;
    if (hlen >= 2 && hs[0] == '\r' && hs[1] == '\n') {
        rq->body = hs + 2;
        rq->body_len = hlen - 2;
    } else if (hlen >= 1 && hs[0] == '\n') {
        rq->body = hs + 1;
        rq->body_len = hlen - 1;
    } else {
        ssize_t he = header_end(hs, hlen);
        each_header(hs, he < 0 ? hlen : (size_t)he, inner_header, rq);
        if (he >= 0) {
            rq->body = hs + he;
            rq->body_len = hlen - (size_t)he;
        }
    }
    /* trailing whitespace is not part of a JSON body */
    while (rq->body_len > 0 && strchr(" \r\n\t", rq->body[rq->body_len - 1]) != NULL)
        rq->body_len--;
    return BM_OK;
}

static void write_part(bm_buf_t *b, const char *boundary, const char *content_id,
                       const emu_resp_t *prs)
{
    bm_buf_printf(b, "--%s\r\nContent-Type: application/http\r\n", boundary);
    if (content_id != NULL) {
        size_t l = strlen(content_id);
        if (l >= 2 && content_id[0] == '<' && content_id[l - 1] == '>')
            bm_buf_printf(b, "Content-ID: <response-%.*s>\r\n", (int)(l - 2), content_id + 1);
        else
            bm_buf_printf(b, "Content-ID: response-%s\r\n", content_id);
    }
    bm_buf_printf(b, "\r\nHTTP/1.1 %d %s\r\n", prs->status, emu_reason_phrase(prs->status));
    if (prs->content_type[0] != '\0' && prs->status != 204)
        bm_buf_printf(b, "Content-Type: %s\r\n", prs->content_type);
    if (prs->etag[0] != '\0')
        bm_buf_printf(b, "ETag: %s\r\n", prs->etag);
    bm_buf_printf(b, "Content-Length: %zu\r\n\r\n", prs->status == 204 ? 0 : prs->body.len);
    if (prs->status != 204 && prs->body.len > 0)
        bm_buf_append(b, prs->body.data, prs->body.len);
    bm_buf_puts(b, "\r\n");
}

void emu_batch_handle(emu_req_t *rq, emu_resp_t *rs)
{
    atomic_fetch_add(&emu.counters.requests, 1);
    atomic_fetch_add(&emu.counters.batch, 1);
    if (strcmp(rq->method, "POST") != 0) {
        emu_error(rs, 405, "httpMethodNotAllowed", "Method Not Allowed");
        return;
    }
    if (rq->authorization == NULL) {
        emu_error(rs, 401, "authError", "Login Required.");
        return;
    }
    emu_user_t *bu = emu_api_user(rq->authorization);
    if (bu != NULL) { /* its parts count one by one, as calls */
        bu->n_requests++;
        if (bu->faults.latency_ms > emu.pending_latency_ms)
            emu.pending_latency_ms = bu->faults.latency_ms;
    }
    char boundary[80];
    if (emu_multipart_boundary(rq->content_type, boundary, sizeof(boundary)) != BM_OK) {
        emu_error(rs, 400, "badContent", "Content-Type must be multipart/mixed with a boundary.");
        return;
    }
    emu_part_t *parts = NULL;
    size_t n = 0;
    char err[128];
    int rc = emu_multipart_parse(boundary, rq->body != NULL ? rq->body : "", rq->body_len, &parts,
                                 &n, err, sizeof(err));
    if (rc == BM_ETOOBIG) {
        emu_error(rs, 400, "batchSizeTooLarge",
                  "A batch request cannot contain more than %d requests.", MAX_PARTS);
        return;
    }
    if (rc != BM_OK || n == 0) {
        emu_error(rs, 400, "badContent", "%s", rc != BM_OK ? err : "empty batch");
        emu_parts_free(parts, n);
        return;
    }
    char rb[40];
    emu_random_hex(rb, 24);
    char out_boundary[48];
    snprintf(out_boundary, sizeof(out_boundary), "batch_%s", rb);
    bm_buf_reset(&rs->body);
    for (size_t i = 0; i < n; i++) {
        atomic_fetch_add(&emu.counters.batch_parts, 1);
        emu_req_t prq;
        emu_req_init(&prq);
        prq.in_batch = true;
        emu_resp_t prs;
        emu_resp_init(&prs);
        if (emu_http_request_parse(parts[i].data, parts[i].len, &prq) != BM_OK) {
            emu_error(&prs, 400, "badRequest", "Malformed request in batch part.");
        } else {
            if (prq.authorization == NULL)
                prq.authorization = bm_strdup(rq->authorization);
            if (strncmp(prq.path, "/calendar/v3/", 13) == 0)
                emu_api_handle(&prq, &prs);
            else
                emu_error(&prs, 404, "notFound", "Not Found");
        }
        write_part(&rs->body, out_boundary, parts[i].content_id, &prs);
        emu_resp_dispose(&prs);
        emu_req_dispose(&prq);
    }
    bm_buf_printf(&rs->body, "--%s--\r\n", out_boundary);
    rs->status = 200;
    snprintf(rs->content_type, sizeof(rs->content_type), "multipart/mixed; boundary=%s",
             out_boundary);
    emu_parts_free(parts, n);
}
