/* emulator/req.c: transport-neutral requests and responses (shared by HTTP and batch parts). */
#include "emulator/emulator.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void emu_req_init(emu_req_t *rq)
{
    memset(rq, 0, sizeof(*rq));
}

void emu_req_dispose(emu_req_t *rq)
{
    for (size_t i = 0; i < rq->n_params; i++) {
        free(rq->params[i].name);
        free(rq->params[i].value);
    }
    free(rq->params);
    free(rq->path);
    free(rq->authorization);
    free(rq->if_match);
    free(rq->content_type);
    emu_req_init(rq);
}

int emu_req_set_target(emu_req_t *rq, const char *target, size_t len)
{
    const char *q = memchr(target, '?', len);
    size_t plen = q != NULL ? (size_t)(q - target) : len;
    free(rq->path);
    rq->path = bm_strndup(target, plen);
    if (q == NULL)
        return BM_OK;
    const char *p = q + 1, *end = target + len;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *e = amp != NULL ? amp : end;
        if (e > p) {
            const char *eq = memchr(p, '=', (size_t)(e - p));
            const char *ne = eq != NULL ? eq : e;
            if (rq->n_params >= 256)
                return BM_EINVAL;
            rq->params = bm_realloc(rq->params, sizeof(*rq->params) * (rq->n_params + 1));
            emu_param_t *pr = &rq->params[rq->n_params++];
            bm_url_decode(p, (size_t)(ne - p), true, false, &pr->name);
            if (eq != NULL)
                bm_url_decode(eq + 1, (size_t)(e - eq - 1), true, false, &pr->value);
            else
                pr->value = bm_strdup("");
        }
        p = e + 1;
    }
    return BM_OK;
}

const char *emu_param(const emu_req_t *rq, const char *name)
{
    for (size_t i = 0; i < rq->n_params; i++)
        if (strcmp(rq->params[i].name, name) == 0)
            return rq->params[i].value;
    return NULL;
}

size_t emu_param_count(const emu_req_t *rq, const char *name)
{
    size_t n = 0;
    for (size_t i = 0; i < rq->n_params; i++)
        if (strcmp(rq->params[i].name, name) == 0)
            n++;
    return n;
}

size_t emu_path_segments(const char *path, char **segs, size_t max)
{
    size_t n = 0;
    const char *p = path;
    while (*p == '/')
        p++;
    while (*p != '\0') {
        const char *e = strchr(p, '/');
        size_t len = e != NULL ? (size_t)(e - p) : strlen(p);
        if (n == max) {
            return max + 1;
        }
        bm_url_decode(p, len, false, false, &segs[n++]);
        p += len;
        if (*p == '/')
            p++;
    }
    return n;
}

void emu_resp_init(emu_resp_t *rs)
{
    memset(rs, 0, sizeof(*rs));
    rs->status = 200;
    bm_buf_init(&rs->body, EMU_MAX_RESP);
    snprintf(rs->content_type, sizeof(rs->content_type), "application/json; charset=UTF-8");
}

void emu_resp_dispose(emu_resp_t *rs)
{
    bm_buf_dispose(&rs->body);
    free(rs->location);
}

const char *emu_reason_phrase(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 204:
        return "No Content";
    case 302:
        return "Found";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 409:
        return "Conflict";
    case 410:
        return "Gone";
    case 412:
        return "Precondition Failed";
    case 413:
        return "Request Entity Too Large";
    case 429:
        return "Too Many Requests";
    case 500:
        return "Internal Server Error";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    }
    return "Unknown";
}

void emu_error(emu_resp_t *rs, int status, const char *reason, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    rs->status = status;
    rs->etag[0] = '\0';
    snprintf(rs->content_type, sizeof(rs->content_type), "application/json; charset=UTF-8");
    bm_buf_reset(&rs->body);
    bm_buf_puts(&rs->body, "{\"error\":{\"errors\":[{\"domain\":\"");
    bm_buf_puts(&rs->body, strcmp(reason, "rateLimitExceeded") == 0 ? "usageLimits" : "global");
    bm_buf_puts(&rs->body, "\",\"reason\":");
    emu_json_puts(&rs->body, reason);
    bm_buf_puts(&rs->body, ",\"message\":");
    emu_json_puts(&rs->body, msg);
    if (status == 401)
        bm_buf_puts(&rs->body, ",\"locationType\":\"header\",\"location\":\"Authorization\"");
    bm_buf_printf(&rs->body, "}],\"code\":%d,\"message\":", status);
    emu_json_puts(&rs->body, msg);
    bm_buf_puts(&rs->body, "}}");
}

void emu_resp_json(emu_resp_t *rs, int status, const jv_t *v)
{
    rs->status = status;
    bm_buf_reset(&rs->body);
    jv_write(&rs->body, v);
}

jv_t *emu_body_object(const emu_req_t *rq, emu_resp_t *rs, bool optional)
{
    jv_t *v = NULL;
    char err[128];
    if (rq->body == NULL || rq->body_len == 0) {
        if (optional)
            return jv_new(JV_OBJ);
        emu_error(rs, 400, "required", "A JSON body is required.");
        return NULL;
    }
    if (emu_json_parse(rq->body, rq->body_len, &v, err, sizeof(err)) != BM_OK ||
        v->type != JV_OBJ) {
        jv_free(v);
        emu_error(rs, 400, "parseError", "Parse Error");
        return NULL;
    }
    return v;
}
