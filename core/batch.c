/*
 * core/batch.c: the multipart/mixed codec of Google's batch endpoint.
 *
 * Request: one part per call, "Content-Type: application/http", Content-ID
 * <item-N>, holding "METHOD /calendar/v3/path HTTP/1.1", headers and body.
 * Response: one part per call, each a whole HTTP response, Content-ID
 * <response-item-N>. Line ends are CRLF on the wire; LF alone is accepted.
 */
#include "core/batch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define CONTENT_ID_PREFIX "item-"

static bool has_ctl(const char *s)
{
    for (; *s != '\0'; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return true;
    return false;
}

int bm_batch_encode(const bm_gcal_req_t *reqs, size_t n, const char *api_path_prefix,
                    const char *boundary, bm_buf_t *out)
{
    int rc = BM_OK;
    size_t start = out->len;
    if (boundary == NULL || *boundary == '\0' || strlen(boundary) > 70 || has_ctl(boundary)) {
        rc = BM_EINVAL;
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        const bm_gcal_req_t *r = &reqs[i];
        if (r->method == NULL || *r->method == '\0' || strpbrk(r->method, " ") != NULL ||
            has_ctl(r->method) || r->path == NULL || strpbrk(r->path, " ") != NULL ||
            has_ctl(r->path) || (r->if_match != NULL && has_ctl(r->if_match)) ||
            (r->body != NULL && strstr(r->body, boundary) != NULL)) {
            rc = BM_EINVAL;
            goto out;
        }
        const char *sep = r->path[0] == '/' ? "" : "/";
        if ((rc = bm_buf_printf(out,
                                "--%s\r\n"
                                "Content-Type: application/http\r\n"
                                "Content-Transfer-Encoding: binary\r\n"
                                "Content-ID: <" CONTENT_ID_PREFIX "%zu>\r\n"
                                "\r\n"
                                "%s %s%s%s HTTP/1.1\r\n",
                                boundary, i + 1, r->method, api_path_prefix, sep, r->path)) !=
            BM_OK)
            goto out;
        if (r->body != NULL &&
            (rc = bm_buf_printf(out,
                                "Content-Type: application/json; charset=UTF-8\r\n"
                                "Content-Length: %zu\r\n",
                                strlen(r->body))) != BM_OK)
            goto out;
        if (r->if_match != NULL && (rc = bm_buf_printf(out, "If-Match: %s\r\n", r->if_match)) != 0)
            goto out;
        if ((rc = bm_buf_puts(out, "\r\n")) != BM_OK)
            goto out;
        if (r->body != NULL && (rc = bm_buf_puts(out, r->body)) != BM_OK)
            goto out;
        if ((rc = bm_buf_puts(out, "\r\n")) != BM_OK)
            goto out;
    }
    rc = bm_buf_printf(out, "--%s--\r\n", boundary);
out:
    if (rc != BM_OK) { /* leave out as it was */
        out->len = start;
        if (out->data != NULL)
            out->data[start] = '\0';
    }
    return rc;
}

/* ---- decoding ---- */

/* Next line in [*p, end): sets line/len (without CR LF) and advances *p. */
static bool next_line(const char **p, const char *end, const char **line, size_t *len)
{
    if (*p >= end)
        return false;
    const char *nl = memchr(*p, '\n', (size_t)(end - *p));
    const char *stop = nl != NULL ? nl : end;
    *line = *p;
    *len = (size_t)(stop - *p);
    if (*len > 0 && (*line)[*len - 1] == '\r')
        (*len)--;
    *p = nl != NULL ? nl + 1 : end;
    return true;
}

/* A header line "Name: value": true when the name matches, value trimmed. */
static bool header_is(const char *line, size_t len, const char *name, const char **val,
                      size_t *vlen)
{
    size_t nl = strlen(name);
    if (len <= nl || line[nl] != ':' || strncasecmp(line, name, nl) != 0)
        return false;
    const char *v = line + nl + 1, *e = line + len;
    while (v < e && (*v == ' ' || *v == '\t'))
        v++;
    while (e > v && (e[-1] == ' ' || e[-1] == '\t'))
        e--;
    *val = v;
    *vlen = (size_t)(e - v);
    return true;
}

/* The boundary parameter of a multipart Content-Type, into buf. */
static bool get_boundary(const char *ctype, char *buf, size_t len)
{
    if (ctype == NULL || strncasecmp(ctype, "multipart/", 10) != 0)
        return false;
    const char *p = ctype;
    while ((p = strchr(p, ';')) != NULL) {
        p++;
        while (*p == ' ' || *p == '\t')
            p++;
        if (strncasecmp(p, "boundary=", 9) != 0)
            continue;
        p += 9;
        size_t n;
        if (*p == '"') {
            p++;
            n = strcspn(p, "\"");
            if (p[n] != '"')
                return false;
        } else {
            n = strcspn(p, "; \t");
        }
        if (n == 0 || n >= len || n > 200)
            return false;
        memcpy(buf, p, n);
        buf[n] = '\0';
        return true;
    }
    return false;
}

/* Finds the delimiter "--boundary" at the beginning of a line at or after p. */
static const char *find_delim(const char *p, const char *start, const char *end, const char *delim,
                              size_t dlen)
{
    while (p < end && (size_t)(end - p) >= dlen) {
        const char *hit = memmem(p, (size_t)(end - p), delim, dlen);
        if (hit == NULL)
            return NULL;
        if (hit == start || hit[-1] == '\n')
            return hit;
        p = hit + 1;
    }
    return NULL;
}

/* Maps a Content-ID to a request index, or -1. */
static long content_id_index(const char *v, size_t len, size_t n)
{
    char id[128];
    if (len >= sizeof(id))
        return -1;
    memcpy(id, v, len);
    id[len] = '\0';
    char *p = id;
    if (*p == '<') {
        p++;
        char *gt = strchr(p, '>');
        if (gt == NULL)
            return -1;
        *gt = '\0';
    }
    if (strncasecmp(p, "response-", 9) != 0)
        return -1;
    p += 9;
    if (strncasecmp(p, CONTENT_ID_PREFIX, strlen(CONTENT_ID_PREFIX)) == 0)
        p += strlen(CONTENT_ID_PREFIX);
    if (*p < '0' || *p > '9')
        return -1;
    char *endp;
    unsigned long k = strtoul(p, &endp, 10);
    if (*endp != '\0' || k < 1 || k > n)
        return -1;
    return (long)k - 1;
}

/* Parses one part [p, end): its status, body and Content-ID index. */
static int parse_part(const char *p, const char *end, size_t n, long *cid_index, long *status,
                      const char **body, size_t *body_len)
{
    const char *line, *v;
    size_t len, vlen;
    *cid_index = -1;
    /* MIME headers of the part */
    for (;;) {
        if (!next_line(&p, end, &line, &len))
            return BM_EINVAL;
        if (len == 0)
            break;
        if (header_is(line, len, "Content-ID", &v, &vlen)) {
            long idx = content_id_index(v, vlen, n);
            *cid_index = idx >= 0 ? idx : -2; /* -2: an id that names no request */
        }
    }
    /* the embedded HTTP response: status line */
    do {
        if (!next_line(&p, end, &line, &len))
            return BM_EINVAL;
    } while (len == 0);
    if (len < 12 || strncmp(line, "HTTP/", 5) != 0)
        return BM_EINVAL;
    const char *sp = memchr(line, ' ', len);
    if (sp == NULL || line + len - sp < 4)
        return BM_EINVAL;
    long st = 0;
    for (int i = 1; i <= 3; i++) {
        if (sp[i] < '0' || sp[i] > '9')
            return BM_EINVAL;
        st = st * 10 + (sp[i] - '0');
    }
    if (st < 100)
        return BM_EINVAL;
    long content_length = -1;
    for (;;) {
        if (!next_line(&p, end, &line, &len)) {
            len = 0; /* headers up to the end of the part: empty body */
            break;
        }
        if (len == 0)
            break;
        if (header_is(line, len, "Content-Length", &v, &vlen) && vlen > 0 && vlen < 19) {
            char num[20];
            memcpy(num, v, vlen);
            num[vlen] = '\0';
            char *e;
            long cl = strtol(num, &e, 10);
            if (*e == '\0' && cl >= 0)
                content_length = cl;
        }
    }
    *status = st;
    *body = p;
    *body_len = (size_t)(end - p);
    if (content_length >= 0 && (size_t)content_length <= *body_len)
        *body_len = (size_t)content_length;
    return BM_OK;
}

int bm_batch_decode(const char *content_type, const char *body, size_t len, bm_gcal_req_t *reqs,
                    size_t n, char *err, size_t errlen)
{
    int rc = BM_OK;
    char boundary[256], delim[260];
    bm_gcal_reqs_dispose(reqs, n);
    if (!get_boundary(content_type, boundary, sizeof(boundary))) {
        rc = bm_err(err, errlen, BM_EINVAL, "batch response is not multipart with a boundary (%s)",
                    content_type != NULL ? content_type : "no Content-Type");
        goto out;
    }
    size_t dlen = (size_t)snprintf(delim, sizeof(delim), "--%s", boundary);
    const char *start = body, *end = body + len;
    const char *d = find_delim(start, start, end, delim, dlen);
    if (d == NULL) {
        rc = bm_err(err, errlen, BM_EINVAL, "batch response has no part");
        goto out;
    }
    size_t k = 0;
    bool closed = false;
    while (d != NULL) {
        const char *p = d + dlen;
        if (end - p >= 2 && p[0] == '-' && p[1] == '-') {
            closed = true;
            break;
        }
        const char *line;
        size_t llen;
        if (!next_line(&p, end, &line, &llen)) /* rest of the delimiter line */
            break;
        const char *next = find_delim(p, start, end, delim, dlen);
        if (next == NULL) {
            rc = bm_err(err, errlen, BM_EINVAL, "batch response part %zu is truncated", k + 1);
            goto out;
        }
        /* the CRLF before the next delimiter belongs to it */
        const char *pend = next;
        if (pend > p && pend[-1] == '\n')
            pend--;
        if (pend > p && pend[-1] == '\r')
            pend--;
        long idx, status;
        const char *pbody;
        size_t pbody_len;
        if (parse_part(p, pend, n, &idx, &status, &pbody, &pbody_len) != BM_OK) {
            rc = bm_err(err, errlen, BM_EINVAL, "batch response part %zu is malformed", k + 1);
            goto out;
        }
        /* Position decides only for a part with no Content-ID: an unknown or
         * repeated id answers no request (it stays unanswered, to be retried). */
        if (idx == -1)
            idx = k < n && reqs[k].status == 0 ? (long)k : -1;
        else if (idx >= 0 && reqs[idx].status != 0)
            idx = -1;
        if (idx >= 0) {
            bm_gcal_req_t *r = &reqs[idx];
            free(r->response);
            r->status = status;
            r->response = bm_strndup(pbody, pbody_len);
            r->reason[0] = '\0';
            if (status >= 300)
                bm_gcal_error_parse(r->response, r->reason, sizeof(r->reason), NULL, 0);
        }
        k++;
        d = next;
    }
    if (!closed) {
        rc = bm_err(err, errlen, BM_EINVAL, "batch response lacks its closing delimiter");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        if (reqs[i].status == 0) {
            rc = bm_err(err, errlen, BM_EINVAL, "batch response has %zu parts for %zu requests", k,
                        n);
            goto out;
        }
    }
out:
    return rc;
}
