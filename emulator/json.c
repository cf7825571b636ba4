/* emulator/json.c: a small mutable JSON tree on top of yajl's event parser. */
#include "emulator/emulator.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_parse.h>

jv_t *jv_new(jv_type_t t)
{
    jv_t *v = bm_calloc(1, sizeof(*v));
    v->type = t;
    return v;
}

jv_t *jv_strn(const char *s, size_t n)
{
    jv_t *v = jv_new(JV_STR);
    v->s = bm_strndup(s, n);
    v->len = n;
    return v;
}

jv_t *jv_str(const char *s)
{
    return jv_strn(s, strlen(s));
}

jv_t *jv_int(int64_t i)
{
    jv_t *v = jv_new(JV_NUM);
    v->s = bm_sprintf("%" PRId64, i);
    v->len = strlen(v->s);
    return v;
}

jv_t *jv_bool(bool b)
{
    jv_t *v = jv_new(JV_BOOL);
    v->b = b;
    return v;
}

void jv_free(jv_t *v)
{
    if (v == NULL)
        return;
    for (size_t i = 0; i < v->n; i++) {
        jv_free(v->vals[i]);
        if (v->keys != NULL)
            free(v->keys[i]);
    }
    free(v->vals);
    free(v->keys);
    free(v->s);
    free(v);
}

jv_t *jv_clone(const jv_t *v)
{
    if (v == NULL)
        return NULL;
    jv_t *c = jv_new(v->type);
    c->b = v->b;
    if (v->s != NULL) {
        c->s = bm_strndup(v->s, v->len);
        c->len = v->len;
    }
    if (v->n > 0) {
        c->cap = c->n = v->n;
        c->vals = bm_malloc(sizeof(*c->vals) * v->n);
        if (v->type == JV_OBJ)
            c->keys = bm_malloc(sizeof(*c->keys) * v->n);
        for (size_t i = 0; i < v->n; i++) {
            c->vals[i] = jv_clone(v->vals[i]);
            if (v->type == JV_OBJ)
                c->keys[i] = bm_strdup(v->keys[i]);
        }
    }
    return c;
}

static void grow(jv_t *v)
{
    if (v->n < v->cap)
        return;
    v->cap = v->cap ? v->cap * 2 : 8;
    v->vals = bm_realloc(v->vals, sizeof(*v->vals) * v->cap);
    if (v->type == JV_OBJ)
        v->keys = bm_realloc(v->keys, sizeof(*v->keys) * v->cap);
}

static ssize_t find_key(const jv_t *obj, const char *key)
{
    if (obj == NULL || obj->type != JV_OBJ)
        return -1;
    for (size_t i = 0; i < obj->n; i++)
        if (strcmp(obj->keys[i], key) == 0)
            return (ssize_t)i;
    return -1;
}

jv_t *jv_get(const jv_t *obj, const char *key)
{
    ssize_t i = find_key(obj, key);
    return i < 0 ? NULL : obj->vals[i];
}

const char *jv_get_str(const jv_t *obj, const char *key)
{
    jv_t *v = jv_get(obj, key);
    return v != NULL && v->type == JV_STR ? v->s : NULL;
}

void jv_set(jv_t *obj, const char *key, jv_t *val)
{
    ssize_t i = find_key(obj, key);
    if (i >= 0) {
        jv_free(obj->vals[i]);
        obj->vals[i] = val;
        return;
    }
    grow(obj);
    obj->keys[obj->n] = bm_strdup(key);
    obj->vals[obj->n++] = val;
}

void jv_set_str(jv_t *obj, const char *key, const char *s)
{
    jv_set(obj, key, jv_str(s));
}

jv_t *jv_take(jv_t *obj, const char *key)
{
    ssize_t i = find_key(obj, key);
    if (i < 0)
        return NULL;
    jv_t *v = obj->vals[i];
    free(obj->keys[i]);
    memmove(obj->keys + i, obj->keys + i + 1, sizeof(*obj->keys) * (obj->n - (size_t)i - 1));
    memmove(obj->vals + i, obj->vals + i + 1, sizeof(*obj->vals) * (obj->n - (size_t)i - 1));
    obj->n--;
    return v;
}

void jv_del(jv_t *obj, const char *key)
{
    jv_free(jv_take(obj, key));
}

void jv_push(jv_t *arr, jv_t *val)
{
    grow(arr);
    arr->vals[arr->n++] = val;
}

/* ---------------------------------------------------------------- parsing */

typedef struct pctx {
    jv_t *root;
    jv_t *stack[EMU_JSON_MAX_DEPTH + 1];
    size_t depth;
    char *pending_key;
    bool too_deep;
} pctx_t;

static int attach(pctx_t *p, jv_t *v)
{
    if (p->depth == 0) {
        if (p->root != NULL) {
            jv_free(v);
            return 0;
        }
        p->root = v;
    } else {
        jv_t *parent = p->stack[p->depth - 1];
        if (parent->type == JV_ARR) {
            jv_push(parent, v);
        } else {
            if (p->pending_key == NULL) {
                jv_free(v);
                return 0;
            }
            jv_set(parent, p->pending_key, v);
            free(p->pending_key);
            p->pending_key = NULL;
        }
    }
    if (v->type == JV_ARR || v->type == JV_OBJ) {
        if (p->depth >= EMU_JSON_MAX_DEPTH) {
            p->too_deep = true;
            return 0;
        }
        p->stack[p->depth++] = v;
    }
    return 1;
}

static int cb_null(void *ctx)
{
    return attach(ctx, jv_new(JV_NULL));
}

static int cb_bool(void *ctx, int b)
{
    return attach(ctx, jv_bool(b != 0));
}

static int cb_number(void *ctx, const char *s, size_t n)
{
    jv_t *v = jv_new(JV_NUM);
    v->s = bm_strndup(s, n);
    v->len = n;
    return attach(ctx, v);
}

static int cb_string(void *ctx, const unsigned char *s, size_t n)
{
    return attach(ctx, jv_strn((const char *)s, n));
}

static int cb_start_map(void *ctx)
{
    return attach(ctx, jv_new(JV_OBJ));
}

static int cb_map_key(void *ctx, const unsigned char *s, size_t n)
{
    pctx_t *p = ctx;
    free(p->pending_key);
    p->pending_key = bm_strndup((const char *)s, n);
    return 1;
}

static int cb_end(void *ctx)
{
    pctx_t *p = ctx;
    if (p->depth > 0)
        p->depth--;
    return 1;
}

static int cb_start_array(void *ctx)
{
    return attach(ctx, jv_new(JV_ARR));
}

static const yajl_callbacks callbacks = {
    cb_null,      cb_bool,    NULL,   NULL,           cb_number, cb_string,
    cb_start_map, cb_map_key, cb_end, cb_start_array, cb_end,
};

int emu_json_parse(const char *buf, size_t len, jv_t **out, char *err, size_t errlen)
{
    pctx_t p;
    memset(&p, 0, sizeof(p));
    int rc = BM_OK;
    *out = NULL;
    yajl_handle h = yajl_alloc(&callbacks, NULL, &p);
    if (h == NULL)
        return bm_err(err, errlen, BM_EINVAL, "out of memory");
    yajl_status st = yajl_parse(h, (const unsigned char *)buf, len);
    if (st == yajl_status_ok)
        st = yajl_complete_parse(h);
    if (st != yajl_status_ok || p.root == NULL) {
        if (p.too_deep)
            rc = bm_err(err, errlen, BM_EINVAL, "nesting deeper than %d", EMU_JSON_MAX_DEPTH);
        else
            rc = bm_err(err, errlen, BM_EINVAL, "malformed JSON");
        jv_free(p.root);
        goto out;
    }
    *out = p.root;
out:
    free(p.pending_key);
    yajl_free(h);
    return rc;
}

/* ---------------------------------------------------------------- writing */

int emu_json_putsn(bm_buf_t *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    char tmp[512];
    size_t t = 0;
    tmp[t++] = '"';
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (t > sizeof(tmp) - 8) {
            if (bm_buf_append(b, tmp, t) != BM_OK)
                return BM_ETOOBIG;
            t = 0;
        }
        if (c == '"' || c == '\\') {
            tmp[t++] = '\\';
            tmp[t++] = (char)c;
        } else if (c < 0x20) {
            tmp[t++] = '\\';
            switch (c) {
            case '\n':
                tmp[t++] = 'n';
                break;
            case '\r':
                tmp[t++] = 'r';
                break;
            case '\t':
                tmp[t++] = 't';
                break;
            default:
                tmp[t++] = 'u';
                tmp[t++] = '0';
                tmp[t++] = '0';
                tmp[t++] = hex[c >> 4];
                tmp[t++] = hex[c & 15];
            }
        } else {
            tmp[t++] = (char)c;
        }
    }
    tmp[t++] = '"';
    return bm_buf_append(b, tmp, t);
}

int emu_json_puts(bm_buf_t *b, const char *s)
{
    return emu_json_putsn(b, s, strlen(s));
}

int jv_write(bm_buf_t *b, const jv_t *v)
{
    int rc = BM_OK;
    switch (v->type) {
    case JV_NULL:
        return bm_buf_append(b, "null", 4);
    case JV_BOOL:
        return v->b ? bm_buf_append(b, "true", 4) : bm_buf_append(b, "false", 5);
    case JV_NUM:
        return bm_buf_append(b, v->s, v->len);
    case JV_STR:
        return emu_json_putsn(b, v->s, v->len);
    case JV_ARR:
        rc = bm_buf_append(b, "[", 1);
        for (size_t i = 0; i < v->n && rc == BM_OK; i++) {
            if (i > 0)
                rc = bm_buf_append(b, ",", 1);
            if (rc == BM_OK)
                rc = jv_write(b, v->vals[i]);
        }
        return rc != BM_OK ? rc : bm_buf_append(b, "]", 1);
    case JV_OBJ:
        rc = bm_buf_append(b, "{", 1);
        for (size_t i = 0; i < v->n && rc == BM_OK; i++) {
            if (i > 0)
                rc = bm_buf_append(b, ",", 1);
            if (rc == BM_OK)
                rc = emu_json_puts(b, v->keys[i]);
            if (rc == BM_OK)
                rc = bm_buf_append(b, ":", 1);
            if (rc == BM_OK)
                rc = jv_write(b, v->vals[i]);
        }
        return rc != BM_OK ? rc : bm_buf_append(b, "}", 1);
    }
    return rc;
}
