/* tests/core/test_log.c: logfmt shape, level filtering, secrets never logged. */
#include "core/log.h"
#include "core/util.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

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

/* A secret with a quote, a backslash and control characters is scrubbed raw,
 * in the message as in a value: escaping first would hide it from the match. */
#define ODD_SECRET "odd\"sec\\ret\x01with\ttabs-and\nlines"

static void log_odd_secret(void)
{
    bm_log_set_level(BM_LOG_DEBUG);
    bm_log_add_secret(ODD_SECRET);
    BM_LOG(BM_LOG_ERROR, BM_MSG("failed on " ODD_SECRET " inside"),
           BM_KS("detail", "x=" ODD_SECRET ";"));
}

START_TEST(a_secret_with_quotes_and_controls_is_scrubbed)
{
    char *out = capture(log_odd_secret);
    ck_assert_ptr_null(strstr(out, "sec\\\\ret"));
    ck_assert_ptr_null(strstr(out, "tabs-and"));
    ck_assert_ptr_null(strstr(out, "with"));
    ck_assert_ptr_nonnull(strstr(out, "msg=\"failed on *** inside\""));
    ck_assert_ptr_nonnull(strstr(out, "detail=\"x=***;\""));
    free(out);
}
END_TEST

/* Two registered secrets that overlap in the text: neither leaves a piece. */
static void log_chained_secrets(void)
{
    bm_log_set_level(BM_LOG_DEBUG);
    bm_log_add_secret("abcdef-ghijkl-1234");
    bm_log_add_secret("ghijkl-1234-mnopqr-5678");
    BM_LOG(BM_LOG_ERROR, BM_MSG("x"), BM_KS("detail", "got abcdef-ghijkl-1234-mnopqr-5678!"));
}

START_TEST(overlapping_secrets_leave_no_piece)
{
    char *out = capture(log_chained_secrets);
    ck_assert_ptr_null(strstr(out, "mnopqr"));
    ck_assert_ptr_null(strstr(out, "5678"));
    ck_assert_ptr_nonnull(strstr(out, "detail=\"got ***!\""));
    free(out);
    assert_scrubbed("[ghijkl-1234-mnopqr-5678abcdef-ghijkl-1234]", "[***]");
    assert_scrubbed("ghijkl-1234-mnopqr-567", "ghijkl-1234-mnopqr-567"); /* not whole: kept */
}
END_TEST

/* A Google-shaped access token: the prefix every one shares, then random. */
static void fake_token(char *buf, size_t len, unsigned seed)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    int n = snprintf(buf, len, "ya29.a0A");
    uint64_t x = 0x9e3779b97f4a7c15ull * (seed + 1);
    for (size_t i = (size_t)n; i + 1 < len; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        buf[i] = alphabet[x & 63];
    }
    buf[len - 1] = '\0';
}

#define FLEET 1000

static void log_fleet_tokens(void)
{
    char tok[120];
    bm_log_set_level(BM_LOG_DEBUG);
    for (unsigned i = 0; i < FLEET; i++) {
        fake_token(tok, sizeof(tok), i);
        bm_log_add_transient_secret(tok, 3600 * 1000);
    }
    for (unsigned i = 0; i < FLEET; i++) {
        fake_token(tok, sizeof(tok), i);
        BM_LOG(BM_LOG_ERROR, BM_MSG("call failed"), BM_KS("detail", tok));
    }
}

/* Every live access token of a fleet is scrubbed, not only the newest few. */
START_TEST(every_live_access_token_is_scrubbed)
{
    char *out = capture(log_fleet_tokens);
    ck_assert_ptr_null(strstr(out, "ya29"));
    ck_assert_uint_eq(bm_log_secret_count(), FLEET);
    free(out);
}
END_TEST

/* Short-lived secrets go when their life is over, so the registry does not grow
 * without bound; long-lived ones stay, and a value registered twice counts once. */
START_TEST(transient_secrets_expire)
{
    char tok[64];
    bm_log_add_secret("1//a-refresh-token-kept-for-good");
    bm_log_add_secret("1//a-refresh-token-kept-for-good");
    bm_log_add_secret_for("1//a-refresh-token-kept-for-good", 1); /* stays long-lived */
    for (unsigned i = 0; i < 100; i++) {
        fake_token(tok, sizeof(tok), i);
        bm_log_add_secret_for(tok, 1);
    }
    fake_token(tok, sizeof(tok), 0);
    bm_log_add_secret_for(tok, 1);
    ck_assert_uint_le(bm_log_secret_count(), 101);
    usleep(20 * 1000);
    ck_assert_uint_eq(bm_log_secret_count(), 1);
    assert_scrubbed("a 1//a-refresh-token-kept-for-good b", "a *** b");
    fake_token(tok, sizeof(tok), 7);
    bm_log_add_transient_secret(tok, 3600 * 1000); /* the default life: an hour and more */
    ck_assert_uint_eq(bm_log_secret_count(), 2);
    char dst[128];
    bm_log_scrub(tok, dst, sizeof(dst));
    ck_assert_str_eq(dst, "***");
}
END_TEST

static double elapsed_us(const struct timespec *a, const struct timespec *b)
{
    return (double)(b->tv_sec - a->tv_sec) * 1e6 + (double)(b->tv_nsec - a->tv_nsec) / 1e3;
}

/* 10,000 registered secrets (tokens sharing their first 8 characters, as
 * Google's do): a line is still scrubbed exactly. Prints what a line costs
 * (a figure for the report, not a limit). */
START_TEST(ten_thousand_secrets)
{
    char tok[120], line[1024];
    for (unsigned i = 0; i < 10000; i++) {
        fake_token(tok, sizeof(tok), i);
        if (i % 2)
            bm_log_add_secret(tok);
        else
            bm_log_add_transient_secret(tok, 3600 * 1000);
    }
    ck_assert_uint_eq(bm_log_secret_count(), 10000);
    fake_token(tok, sizeof(tok), 4242);
    snprintf(line, sizeof(line),
             "POST https://oauth2.googleapis.com/token failed: HTTP 401 for Bearer %s while "
             "syncing calendar team@example.com (ya29.a0A not a token; ya29.a0Ax neither)",
             tok);
    FILE *sink = fopen("/dev/null", "w");
    ck_assert_ptr_nonnull(sink);
    bm_log_set_stream(sink);
    bm_log_set_level(BM_LOG_DEBUG);
    struct timespec t0, t1;
    enum { LINES = 2000 };
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < LINES; i++)
        BM_LOG(BM_LOG_ERROR, BM_MSG("sync failed"), BM_KS("calendar", "team@example.com"),
               BM_KS("error", line));
    clock_gettime(CLOCK_MONOTONIC, &t1);
    bm_log_set_stream(NULL);
    fclose(sink);
    fprintf(stderr, "log: %zu-byte value, 10000 secrets: %.1f us per line\n", strlen(line),
            elapsed_us(&t0, &t1) / LINES);
    char dst[1024];
    bm_log_scrub(line, dst, sizeof(dst));
    ck_assert_ptr_nonnull(strstr(dst, "for Bearer *** while"));
    ck_assert_ptr_nonnull(strstr(dst, "(ya29.a0A not a token; ya29.a0Ax neither)"));
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
    tcase_add_test(tc, a_secret_with_quotes_and_controls_is_scrubbed);
    tcase_add_test(tc, overlapping_secrets_leave_no_piece);
    tcase_add_test(tc, every_live_access_token_is_scrubbed);
    tcase_add_test(tc, transient_secrets_expire);
    tcase_add_test(tc, ten_thousand_secrets);
    tcase_add_test(tc, level_names_parse);
    suite_add_tcase(s, tc);
    return s;
}

#include "check_main.h"
