/* tests/core/test_log.c: logfmt shape, level filtering, secrets never logged. */
#include "core/log.h"
#include "core/util.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *capture(void (*fn)(void))
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    bm_log_set_stream(f);
    fn();
    bm_log_set_stream(NULL);
    fclose(f);
    return buf;
}

static void log_fields(void)
{
    bm_log_set_level(BM_LOG_INFO);
    BM_LOG(BM_LOG_INFO, BM_MSG("sync done"), BM_KS("calendar", "a@b.c"), BM_KI("inserted", 3),
           BM_KS("note", "two words"), BM_KS("q", "say \"hi\""));
}

START_TEST(lines_are_logfmt)
{
    char *out = capture(log_fields);
    ck_assert_ptr_nonnull(strstr(out, " level=info msg=\"sync done\" calendar=a@b.c inserted=3"
                                      " note=\"two words\" q=\"say \\\"hi\\\"\"\n"));
    ck_assert(strncmp(out, "ts=", 3) == 0);
    free(out);
}
END_TEST

static int formatted;
static const char *count_format(void)
{
    formatted++;
    return "x";
}

static void log_below_level(void)
{
    bm_log_set_level(BM_LOG_WARN);
    BM_LOG(BM_LOG_INFO, BM_MSG("hidden"), BM_KS("v", count_format()));
    BM_LOG(BM_LOG_ERROR, BM_MSG("shown"));
}

START_TEST(level_filters_before_formatting)
{
    formatted = 0;
    char *out = capture(log_below_level);
    ck_assert_int_eq(formatted, 0);
    ck_assert_ptr_null(strstr(out, "hidden"));
    ck_assert_ptr_nonnull(strstr(out, "level=error msg=shown"));
    free(out);
}
END_TEST

static void assert_scrubbed(const char *src, const char *want)
{
    char dst[64];
    bm_log_scrub(src, dst, sizeof(dst));
    ck_assert_str_eq(dst, want);
}

static void log_secrets(void)
{
    bm_log_set_level(BM_LOG_DEBUG);
    bm_log_add_secret("ya29.A0secretAccessToken");
    bm_log_add_secret("1//refresh-token-value");
    BM_LOG(BM_LOG_ERROR, BM_MSG("call failed with ya29.A0secretAccessToken in the url"),
           BM_KS("detail", "Bearer ya29.A0secretAccessToken"),
           BM_KS("body", "refresh_token=1//refresh-token-value&x=1"),
           BM_KS("channel_token", "not-registered-but-named-token"),
           BM_KS("client_secret", "s3cr3t-unregistered"));
}

START_TEST(secrets_never_reach_a_line)
{
    char *out = capture(log_secrets);
    ck_assert_ptr_null(strstr(out, "A0secretAccessToken"));
    ck_assert_ptr_null(strstr(out, "refresh-token-value"));
    ck_assert_ptr_null(strstr(out, "not-registered-but-named-token"));
    ck_assert_ptr_null(strstr(out, "s3cr3t-unregistered"));
    ck_assert_ptr_nonnull(strstr(out, "Bearer ***"));
    ck_assert_ptr_nonnull(strstr(out, "channel_token=***"));
    free(out);
    assert_scrubbed("token=1//refresh-token-value;", "token=***;");
}
END_TEST

/* Whether out holds any 16-character piece of secret. */
static int leaks_fragment(const char *out, const char *secret)
{
    size_t len = strlen(secret);
    for (size_t i = 0; i + 16 <= len; i++) {
        char piece[17];
        memcpy(piece, secret + i, 16);
        piece[16] = '\0';
        if (strstr(out, piece) != NULL)
            return 1;
    }
    return 0;
}

#define LONG_SECRET "1//0gLongRefreshTokenValue-abcdefghijklmnopqrstuvwxy"

static void log_long_value_ending_in_secret(void)
{
    bm_log_set_level(BM_LOG_DEBUG);
    bm_log_add_secret(LONG_SECRET);
    /* The secret straddles the line cap: cutting first would leave a fragment. */
    for (size_t pad = 8100; pad < 8200; pad += 7) {
        char *v = bm_malloc(pad + sizeof(LONG_SECRET));
        memset(v, 'a', pad);
        v[0] = ' '; /* quoted: appended one character at a time */
        memcpy(v + pad, LONG_SECRET, sizeof(LONG_SECRET));
        BM_LOG(BM_LOG_ERROR, BM_MSG("refresh failed"), BM_KS("body", v));
        free(v);
    }
}

START_TEST(a_cut_line_leaks_no_fragment)
{
    ck_assert_int_eq((int)strlen(LONG_SECRET), 52);
    char *out = capture(log_long_value_ending_in_secret);
    ck_assert_ptr_nonnull(strstr(out, "msg=\"refresh failed\""));
    ck_assert(!leaks_fragment(out, LONG_SECRET));
    free(out);
}
END_TEST

static void log_overlapping_secrets(void)
{
    bm_log_set_level(BM_LOG_DEBUG);
    bm_log_add_secret("ya29.short-token");
    bm_log_add_secret("ya29.short-token-with-a-longer-tail");
    BM_LOG(BM_LOG_ERROR, BM_MSG("x"), BM_KS("detail", "got ya29.short-token-with-a-longer-tail!"));
}

START_TEST(the_longest_secret_wins)
{
    char *out = capture(log_overlapping_secrets);
    ck_assert_ptr_null(strstr(out, "longer-tail"));
    ck_assert_ptr_nonnull(strstr(out, "detail=\"got ***!\""));
    free(out);
    assert_scrubbed("a ya29.short-token-with-a-longer-tail b", "a *** b");
}
END_TEST

START_TEST(level_names_parse)
{
    ck_assert_int_eq(bm_log_level_parse("debug"), BM_LOG_DEBUG);
    ck_assert_int_eq(bm_log_level_parse("WARN"), BM_LOG_WARN);
    ck_assert_int_eq(bm_log_level_parse("off"), BM_LOG_OFF);
    ck_assert_int_eq(bm_log_level_parse("loud"), -1);
}
END_TEST

Suite *make_suite(void)
{
    Suite *s = suite_create("log");
    TCase *tc = tcase_create("log");
    tcase_add_test(tc, lines_are_logfmt);
    tcase_add_test(tc, level_filters_before_formatting);
    tcase_add_test(tc, secrets_never_reach_a_line);
    tcase_add_test(tc, a_cut_line_leaks_no_fragment);
    tcase_add_test(tc, the_longest_secret_wins);
    tcase_add_test(tc, level_names_parse);
    suite_add_tcase(s, tc);
    return s;
}

#include "check_main.h"
