/* tests/core/test_json.c: the bounded JSON parser (depth, size, strictness, wiping). */
#include "core/json.h"
#include "core/util.h"
#include "tests/core/wipe_probe.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* n opening brackets (of open), then n closing ones when closed, around inner. */
static char *nested(size_t n, char open, const char *inner, bool closed)
{
    char close = open == '[' ? ']' : '}';
    size_t ilen = strlen(inner);
    char *s = bm_malloc(2 * n + ilen + 1), *p = s;
    for (size_t i = 0; i < n; i++)
        *p++ = open;
    memcpy(p, inner, ilen);
    p += ilen;
    for (size_t i = 0; closed && i < n; i++)
        *p++ = close;
    *p = '\0';
    return s;
}

/* {"k":{"k":...{"k":inner}...}} with n objects. */
static char *nested_objects(size_t n, const char *inner)
{
    bm_buf_t b;
    bm_buf_init(&b, 1 << 20);
    for (size_t i = 0; i < n; i++)
        ck_assert_int_eq(bm_buf_puts(&b, "{\"k\":"), BM_OK);
    ck_assert_int_eq(bm_buf_puts(&b, inner), BM_OK);
    for (size_t i = 0; i < n; i++)
        ck_assert_int_eq(bm_buf_puts(&b, "}"), BM_OK);
    return bm_buf_steal(&b);
}

static size_t depth_of(yajl_val v)
{
    size_t d = 0;
    while (v != NULL && ((YAJL_IS_ARRAY(v) && v->u.array.len > 0) ||
                         (YAJL_IS_OBJECT(v) && v->u.object.len > 0))) {
        d++;
        v = YAJL_IS_ARRAY(v) ? v->u.array.values[0] : v->u.object.values[0];
    }
    return d + (YAJL_IS_ARRAY(v) || YAJL_IS_OBJECT(v));
}

START_TEST(depth_limit_is_exact)
{
    char err[256] = "";
    char *ok = nested(BM_JSON_MAX_DEPTH, '[', "1", true);
    yajl_val v = bm_json_parse(ok, strlen(ok), err, sizeof(err));
    ck_assert_msg(v != NULL, "%s", err);
    ck_assert_uint_eq(depth_of(v), BM_JSON_MAX_DEPTH);
    bm_json_free(v);
    free(ok);

    char *deep = nested(BM_JSON_MAX_DEPTH + 1, '[', "1", true);
    ck_assert_ptr_null(bm_json_parse(deep, strlen(deep), err, sizeof(err)));
    ck_assert_str_eq(err, "JSON nested deeper than 64 levels");
    free(deep);

    /* the same through objects, and mixed */
    char *obj = nested_objects(BM_JSON_MAX_DEPTH, "[]");
    ck_assert_ptr_null(bm_json_parse(obj, strlen(obj), err, sizeof(err)));
    ck_assert_str_eq(err, "JSON nested deeper than 64 levels");
    free(obj);
    obj = nested_objects(BM_JSON_MAX_DEPTH - 1, "[]");
    v = bm_json_parse(obj, strlen(obj), err, sizeof(err));
    ck_assert_msg(v != NULL, "%s", err);
    ck_assert_uint_eq(depth_of(v), BM_JSON_MAX_DEPTH);
    bm_json_free(v);
    free(obj);
}
END_TEST

START_TEST(brackets_inside_strings_do_not_count)
{
    char err[256] = "";
    /* 64 levels of structure and a string full of brackets, braces, escaped quotes
     * and backslashes at the bottom */
    char inner[1024];
    snprintf(inner, sizeof(inner), "\"%s\\\"[[[{{{\\\\\\\"]]]\\\\\"",
             "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["
             "{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{");
    char *s = nested(BM_JSON_MAX_DEPTH, '[', inner, true);
    yajl_val v = bm_json_parse(s, strlen(s), err, sizeof(err));
    ck_assert_msg(v != NULL, "%s", err);
    yajl_val leaf = v;
    for (int i = 0; i < BM_JSON_MAX_DEPTH; i++)
        leaf = leaf->u.array.values[0];
    ck_assert(YAJL_IS_STRING(leaf));
    ck_assert_ptr_nonnull(strstr(leaf->u.string, "\"[[[{{{\\\"]]]\\"));
    bm_json_free(v);
    free(s);

    /* a key holding brackets, and an escaped quote before the real end */
    const char *k = "{\"a[[[\\\"{{\":[\"]]]\\\\\",\"\\u005b\"]}";
    v = bm_json_parse(k, strlen(k), err, sizeof(err));
    ck_assert_msg(v != NULL, "%s", err);
    ck_assert_str_eq(v->u.object.keys[0], "a[[[\"{{");
    ck_assert_str_eq(YAJL_GET_STRING(v->u.object.values[0]->u.array.values[0]), "]]]\\");
    ck_assert_str_eq(YAJL_GET_STRING(v->u.object.values[0]->u.array.values[1]), "[");
    bm_json_free(v);
}
END_TEST

START_TEST(millions_of_brackets_fail_cleanly)
{
    char err[256] = "";
    size_t n = 3000000;
    char *open = nested(n, '[', "", false);
    ck_assert_ptr_null(bm_json_parse(open, strlen(open), err, sizeof(err)));
    ck_assert_str_eq(err, "JSON nested deeper than 64 levels");
    free(open);
    char *balanced = nested(n, '[', "", true);
    ck_assert_ptr_null(bm_json_parse(balanced, strlen(balanced), err, sizeof(err)));
    ck_assert_str_eq(err, "JSON nested deeper than 64 levels");
    free(balanced);
    char *braces = nested(n, '{', "", false);
    ck_assert_ptr_null(bm_json_parse(braces, strlen(braces), err, sizeof(err)));
    ck_assert_ptr_nonnull(strstr(err, "invalid JSON")); /* "{{" is no object */
    free(braces);
}
END_TEST

START_TEST(values_and_types_like_yajl_tree)
{
    char err[256] = "";
    const char *t = "{\"s\":\"caf\\u00e9\",\"i\":-42,\"big\":123456789012345678901234567890,"
                    "\"d\":1.5e3,\"t\":true,\"f\":false,\"n\":null,\"a\":[1,\"x\",{}],"
                    "\"e\":{},\"z\":\"a\\u0000b\"}";
    yajl_val v = bm_json_parse(t, strlen(t), err, sizeof(err));
    ck_assert_msg(v != NULL, "%s", err);
    ck_assert(YAJL_IS_OBJECT(v));
    ck_assert_uint_eq(v->u.object.len, 10);
    const char *s_path[] = {"s", NULL}, *i_path[] = {"i", NULL}, *big_path[] = {"big", NULL},
               *d_path[] = {"d", NULL}, *a_path[] = {"a", NULL}, *z_path[] = {"z", NULL};
    ck_assert_str_eq(YAJL_GET_STRING(yajl_tree_get(v, s_path, yajl_t_string)), "caf\xc3\xa9");
    yajl_val i = yajl_tree_get(v, i_path, yajl_t_number);
    ck_assert(YAJL_IS_INTEGER(i));
    ck_assert_int_eq(YAJL_GET_INTEGER(i), -42);
    ck_assert_str_eq(YAJL_GET_NUMBER(i), "-42");
    yajl_val big = yajl_tree_get(v, big_path, yajl_t_number);
    ck_assert(!YAJL_IS_INTEGER(big)); /* out of range: no parse error, no integer */
    ck_assert(YAJL_IS_DOUBLE(big));
    yajl_val d = yajl_tree_get(v, d_path, yajl_t_number);
    ck_assert(!YAJL_IS_INTEGER(d));
    ck_assert(YAJL_GET_DOUBLE(d) == 1500.0);
    yajl_val a = yajl_tree_get(v, a_path, yajl_t_array);
    ck_assert_uint_eq(a->u.array.len, 3);
    ck_assert(YAJL_IS_OBJECT(a->u.array.values[2]));
    ck_assert(YAJL_IS_TRUE(v->u.object.values[4]));
    ck_assert(YAJL_IS_FALSE(v->u.object.values[5]));
    ck_assert(YAJL_IS_NULL(v->u.object.values[6]));
    ck_assert_str_eq(YAJL_GET_STRING(yajl_tree_get(v, z_path, yajl_t_string)), "a");
    bm_json_free(v);

    v = bm_json_parse("[]", 2, err, sizeof(err));
    ck_assert(YAJL_IS_ARRAY(v) && v->u.array.len == 0);
    bm_json_free(v);
    v = bm_json_parse("\"x\"", 3, err, sizeof(err));
    ck_assert_str_eq(YAJL_GET_STRING(v), "x");
    bm_json_free(v);
}
END_TEST

START_TEST(strict_and_bounded)
{
    char err[256] = "";
    static const char *bad[] = {
        "",      "   ",         "{",        "[1,]",      "{\"a\" 1}",  "[1] [2]",
        "[1] x", "/* c */ [1]", "[1] // c", "[\"\\x\"]", "[\"\xff\"]", "[\"a\nb\"]",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        yajl_val v = bm_json_parse(bad[i], strlen(bad[i]), err, sizeof(err));
        ck_assert_msg(v == NULL, "accepted: %s", bad[i]);
        ck_assert_msg(strncmp(err, "invalid JSON", 12) == 0, "%s: %s", bad[i], err);
        ck_assert_ptr_null(strchr(err, '\n'));
    }
    /* len is the text: what follows is not read, a NUL inside is an error */
    yajl_val v = bm_json_parse("[1]garbage", 3, err, sizeof(err));
    ck_assert(YAJL_IS_ARRAY(v));
    bm_json_free(v);
    ck_assert_ptr_null(bm_json_parse("[1]\0", 4, err, sizeof(err)));
    ck_assert_ptr_null(bm_json_parse("[\"a\0b\"]", 7, err, sizeof(err)));
    /* the message never quotes the text (it may hold a token) */
    const char *tok = "{\"access_token\":\"ya29.SECRET\",]";
    ck_assert_ptr_null(bm_json_parse(tok, strlen(tok), err, sizeof(err)));
    ck_assert_ptr_null(strstr(err, "SECRET"));
    ck_assert_ptr_nonnull(strstr(err, "at byte"));
    /* NULL err is fine; so is NULL text with no length */
    ck_assert_ptr_null(bm_json_parse("[", 1, NULL, 0));
    ck_assert_ptr_null(bm_json_parse(NULL, 0, err, sizeof(err)));
    /* size bound, before anything is read */
    ck_assert_ptr_null(bm_json_parse("[]", (size_t)BM_JSON_MAX_LEN + 1, err, sizeof(err)));
    ck_assert_ptr_nonnull(strstr(err, "larger than"));
}
END_TEST

START_TEST(value_count_is_bounded)
{
    char err[256] = "";
    /* [0,0,...]: one more value than allowed (the array itself is one) */
    size_t n = BM_JSON_MAX_VALUES;
    char *s = bm_malloc(2 * n + 2), *p = s;
    *p++ = '[';
    for (size_t i = 0; i < n; i++) {
        *p++ = '0';
        *p++ = ',';
    }
    p[-1] = ']';
    *p = '\0';
    ck_assert_ptr_null(bm_json_parse(s, (size_t)(p - s), err, sizeof(err)));
    ck_assert_ptr_nonnull(strstr(err, "values"));
    /* one value fewer passes */
    s[2 * n - 2] = ']';
    yajl_val v = bm_json_parse(s, 2 * n - 1, err, sizeof(err));
    ck_assert_msg(v != NULL, "%s", err);
    ck_assert_uint_eq(v->u.array.len, n - 1);
    bm_json_free(v);
    free(s);
}
END_TEST

/* ---------------------------------------------------------------- wiping */

START_TEST(scratch_and_tree_are_wiped)
{
    /* A token with escapes goes through yajl's decode buffer; 5000 characters make
     * it grow, so that buffer is reallocated too. */
    bm_buf_t b;
    bm_buf_init(&b, 1 << 20);
    ck_assert_int_eq(bm_buf_puts(&b, "{\"access_token\":\"1\\/\\/"), BM_OK);
    for (int i = 0; i < 5000; i++)
        ck_assert_int_eq(bm_buf_puts(&b, "Z"), BM_OK);
    ck_assert_int_eq(bm_buf_puts(&b, "\",\"expires_in\":3599}"), BM_OK);
    memset(&released, 0, sizeof(released));
    bm__wipe_free_hook = wipe_probe_on_release;
    char err[256] = "";
    yajl_val v = bm_json_parse(b.data, b.len, err, sizeof(err));
    bm__wipe_free_hook = NULL;
    ck_assert_msg(v != NULL, "%s", err);
    /* yajl's handle, lexer, stack and decode buffer (grown) all went wiped */
    ck_assert_int_ge(released.blocks, 5);
    ck_assert_int_eq(released.dirty, 0);
    const char *path[] = {"access_token", NULL};
    char *t = YAJL_GET_STRING(yajl_tree_get(v, path, yajl_t_string));
    ck_assert_uint_eq(strlen(t), 5003);
    ck_assert(strncmp(t, "1//ZZZ", 6) == 0);
    bm_json_wipe(v);
    for (size_t i = 0; i < 5003; i++)
        ck_assert_int_eq(t[i], 0);
    ck_assert_str_eq(v->u.object.keys[0], "");
    ck_assert_str_eq(YAJL_GET_NUMBER(v->u.object.values[1]), "");
    bm_json_free(v);
    bm_buf_dispose(&b);
    bm_json_wipe(NULL);
    bm_json_free(NULL);
}
END_TEST

Suite *make_suite(void)
{
    Suite *s = suite_create("json");
    TCase *tc = tcase_create("json");
    tcase_add_test(tc, depth_limit_is_exact);
    tcase_add_test(tc, brackets_inside_strings_do_not_count);
    tcase_add_test(tc, millions_of_brackets_fail_cleanly);
    tcase_add_test(tc, values_and_types_like_yajl_tree);
    tcase_add_test(tc, strict_and_bounded);
    tcase_add_test(tc, value_count_is_bounded);
    tcase_add_test(tc, scratch_and_tree_are_wiped);
    suite_add_tcase(s, tc);
    return s;
}

#include "check_main.h"
