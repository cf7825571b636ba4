/*
 * core/json.c: bounded JSON parsing into a yajl tree (see core/json.h).
 *
 * yajl's event parser calls back for every value; the tree is built here, each
 * node attached to its parent as soon as it is made, so the partial tree of a
 * failed parse is freed from its root like a whole one. A container opened past
 * BM_JSON_MAX_DEPTH cancels the parse there, before anything deeper is read. The
 * layout is yajl_tree's (struct yajl_val_s): yajl's readers work on it.
 */
#include "core/json.h"
#include "core/util.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_parse.h>

typedef struct frame {
    yajl_val v;
    size_t cap; /* room in v's keys/values arrays */
} frame_t;

typedef enum { FINE, TOO_DEEP, TOO_MANY } problem_t;

typedef struct builder {
    frame_t stack[BM_JSON_MAX_DEPTH];
    size_t depth;
    yajl_val root;
    char *key; /* the member name waiting for its value */
    size_t n_values;
    problem_t problem; /* why a callback stopped the parse */
} builder_t;

/* ---------------------------------------------------------------- yajl's scratch */

/* yajl's own allocations carry their size in front, so that each block is wiped
 * before it goes: the decoder's buffer holds every string that had an escape. */
typedef union scratch_head {
    size_t n;
    max_align_t align;
} scratch_head_t;

static void *scratch_malloc(void *ctx, size_t n)
{
    scratch_head_t *h = bm_malloc(sizeof(*h) + n);
    h->n = n;
    return h + 1;
}

static void scratch_free(void *ctx, void *p)
{
    if (p == NULL)
        return;
    scratch_head_t *h = (scratch_head_t *)p - 1;
    bm_wipe_free(h, sizeof(*h) + h->n);
}

static void *scratch_realloc(void *ctx, void *p, size_t n)
{
    void *q = scratch_malloc(ctx, n);
    if (p != NULL) {
        size_t old = ((scratch_head_t *)p - 1)->n;
        memcpy(q, p, old < n ? old : n);
        scratch_free(ctx, p);
    }
    return q;
}

/* ---------------------------------------------------------------- the tree */

static char *copy_text(const unsigned char *s, size_t len)
{
    const unsigned char *nul = memchr(s, '\0', len); /* "\u0000": the C string ends there */
    return bm_strndup((const char *)s, nul != NULL ? (size_t)(nul - s) : len);
}

static yajl_val node(yajl_type type)
{
    yajl_val v = bm_calloc(1, sizeof(*v));
    v->type = type;
    return v;
}

/* Makes room for one more member or element in the container of frame f. */
static void frame_grow(frame_t *f)
{
    yajl_val p = f->v;
    size_t len = p->type == yajl_t_object ? p->u.object.len : p->u.array.len;
    if (len < f->cap)
        return;
    f->cap = f->cap ? f->cap * 2 : 8;
    if (p->type == yajl_t_object) {
        p->u.object.keys = bm_realloc(p->u.object.keys, f->cap * sizeof(*p->u.object.keys));
        p->u.object.values = bm_realloc(p->u.object.values, f->cap * sizeof(*p->u.object.values));
    } else {
        p->u.array.values = bm_realloc(p->u.array.values, f->cap * sizeof(*p->u.array.values));
    }
}

/* Attaches v to the open container (or makes it the root); takes v. 0 stops. */
static int attach(builder_t *b, yajl_val v)
{
    if (++b->n_values > BM_JSON_MAX_VALUES) {
        bm_json_free(v);
        b->problem = TOO_MANY;
        return 0;
    }
    if (b->depth == 0) {
        b->root = v; /* yajl lets only one top-level value through */
        return 1;
    }
    frame_t *f = &b->stack[b->depth - 1];
    yajl_val p = f->v;
    frame_grow(f);
    if (p->type == yajl_t_object) {
        /* yajl calls map_key before every member value */
        p->u.object.keys[p->u.object.len] = b->key != NULL ? b->key : bm_strdup("");
        p->u.object.values[p->u.object.len++] = v;
        b->key = NULL;
    } else {
        p->u.array.values[p->u.array.len++] = v;
    }
    return 1;
}

static int on_null(void *ud)
{
    return attach(ud, node(yajl_t_null));
}

static int on_boolean(void *ud, int value)
{
    return attach(ud, node(value ? yajl_t_true : yajl_t_false));
}

static int on_number(void *ud, const char *s, size_t len)
{
    yajl_val v = node(yajl_t_number);
    char *end;
    v->u.number.r = bm_strndup(s, len);
    errno = 0;
    v->u.number.i = strtoll(v->u.number.r, &end, 10);
    if (errno == 0 && *end == '\0')
        v->u.number.flags |= YAJL_NUMBER_INT_VALID;
    errno = 0;
    v->u.number.d = strtod(v->u.number.r, &end);
    if (errno == 0 && *end == '\0')
        v->u.number.flags |= YAJL_NUMBER_DOUBLE_VALID;
    return attach(ud, v);
}

static int on_string(void *ud, const unsigned char *s, size_t len)
{
    yajl_val v = node(yajl_t_string);
    v->u.string = copy_text(s, len);
    return attach(ud, v);
}

static int on_key(void *ud, const unsigned char *s, size_t len)
{
    builder_t *b = ud;
    free(b->key);
    b->key = copy_text(s, len);
    return 1;
}

static int open_container(builder_t *b, yajl_type type)
{
    if (b->depth == BM_JSON_MAX_DEPTH) {
        b->problem = TOO_DEEP;
        return 0;
    }
    yajl_val v = node(type);
    if (!attach(b, v))
        return 0;
    b->stack[b->depth++] = (frame_t){.v = v, .cap = 0};
    return 1;
}

static int on_start_map(void *ud)
{
    return open_container(ud, yajl_t_object);
}

static int on_start_array(void *ud)
{
    return open_container(ud, yajl_t_array);
}

static int on_end(void *ud)
{
    builder_t *b = ud;
    b->depth--; /* yajl matches brackets: depth > 0 here */
    return 1;
}

static const yajl_callbacks callbacks = {
    .yajl_null = on_null,
    .yajl_boolean = on_boolean,
    .yajl_number = on_number, /* the text, so a big integer is no parse error */
    .yajl_string = on_string,
    .yajl_start_map = on_start_map,
    .yajl_map_key = on_key,
    .yajl_end_map = on_end,
    .yajl_start_array = on_start_array,
    .yajl_end_array = on_end,
};

yajl_val bm_json_parse(const char *text, size_t len, char *err, size_t errlen)
{
    builder_t b = {.problem = FINE};
    yajl_alloc_funcs af = {scratch_malloc, scratch_realloc, scratch_free, NULL};
    yajl_handle h = NULL;
    yajl_val out = NULL;
    if (len > BM_JSON_MAX_LEN) {
        bm_err(err, errlen, BM_ETOOBIG, "JSON larger than %u bytes", BM_JSON_MAX_LEN);
        goto out;
    }
    if ((h = yajl_alloc(&callbacks, &af, &b)) == NULL) {
        bm_err(err, errlen, BM_EIO, "yajl_alloc failed");
        goto out;
    }
    yajl_status st = yajl_parse(h, (const unsigned char *)(text != NULL ? text : ""), len);
    size_t at = yajl_get_bytes_consumed(h);
    if (st == yajl_status_ok) {
        st = yajl_complete_parse(h);
        at = len; /* what failed now is the end */
    }
    if (st == yajl_status_ok && b.root != NULL) {
        out = b.root;
        b.root = NULL;
    } else if (st == yajl_status_ok) {
        bm_err(err, errlen, BM_EINVAL, "invalid JSON: no value");
    } else if (b.problem == TOO_DEEP) {
        bm_err(err, errlen, BM_EINVAL, "JSON nested deeper than %d levels", BM_JSON_MAX_DEPTH);
    } else if (b.problem == TOO_MANY) {
        bm_err(err, errlen, BM_ETOOBIG, "JSON holds more than %u values", BM_JSON_MAX_VALUES);
    } else {
        /* Not verbose: that form quotes the text, which may hold a token. */
        unsigned char *msg = yajl_get_error(h, 0, NULL, 0);
        const char *m = msg != NULL ? (const char *)msg : "parse error";
        bm_err(err, errlen, BM_EINVAL, "invalid JSON at byte %zu: %.*s", at, (int)strcspn(m, "\n"),
               m);
        if (msg != NULL)
            yajl_free_error(h, msg);
    }
out:
    if (h != NULL)
        yajl_free(h);
    free(b.key);
    bm_json_free(b.root);
    return out;
}

void bm_json_free(yajl_val v)
{
    if (v == NULL)
        return;
    switch (v->type) {
    case yajl_t_string:
        free(v->u.string);
        break;
    case yajl_t_number:
        free(v->u.number.r);
        break;
    case yajl_t_object:
        for (size_t i = 0; i < v->u.object.len; i++) {
            free((char *)v->u.object.keys[i]);
            bm_json_free(v->u.object.values[i]);
        }
        free(v->u.object.keys);
        free(v->u.object.values);
        break;
    case yajl_t_array:
        for (size_t i = 0; i < v->u.array.len; i++)
            bm_json_free(v->u.array.values[i]);
        free(v->u.array.values);
        break;
    default:
        break;
    }
    free(v);
}

void bm_json_wipe(yajl_val v)
{
    if (v == NULL)
        return;
    if (v->type == yajl_t_string && v->u.string != NULL)
        explicit_bzero(v->u.string, strlen(v->u.string));
    if (v->type == yajl_t_number && v->u.number.r != NULL) {
        explicit_bzero(v->u.number.r, strlen(v->u.number.r));
        v->u.number.i = 0;
        v->u.number.d = 0;
    }
    if (v->type == yajl_t_object) {
        for (size_t i = 0; i < v->u.object.len; i++) {
            explicit_bzero((char *)v->u.object.keys[i], strlen(v->u.object.keys[i]));
            bm_json_wipe(v->u.object.values[i]);
        }
    }
    if (v->type == yajl_t_array)
        for (size_t i = 0; i < v->u.array.len; i++)
            bm_json_wipe(v->u.array.values[i]);
}
