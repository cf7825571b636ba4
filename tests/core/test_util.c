/* tests/core/test_util.c: bounded buffers (secret ones wiped), error helper, constant-time
 * compare, the file reader. */
#include "core/util.h"
#include "tests/core/wipe_probe.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

START_TEST(buf_grows_until_its_maximum)
{
    bm_buf_t b;
    bm_buf_init(&b, 10);
    ck_assert_int_eq(bm_buf_puts(&b, "hello"), BM_OK);
    ck_assert_int_eq(bm_buf_printf(&b, "%d", 1234), BM_OK);
    ck_assert_str_eq(b.data, "hello1234");
    ck_assert_int_eq(bm_buf_puts(&b, "xy"), BM_ETOOBIG);
    ck_assert_str_eq(b.data, "hello1234"); /* unchanged after the refusal */
    ck_assert_int_eq(bm_buf_puts(&b, "z"), BM_OK);
    ck_assert_uint_eq(b.len, 10);
    char *s = bm_buf_steal(&b);
    ck_assert_str_eq(s, "hello1234z");
    ck_assert_ptr_null(b.data);
    free(s);
    bm_buf_dispose(&b);
}
END_TEST

START_TEST(buf_printf_handles_long_output)
{
    bm_buf_t b;
    bm_buf_init(&b, 1 << 20);
    char big[2000];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    ck_assert_int_eq(bm_buf_printf(&b, "<%s>", big), BM_OK);
    ck_assert_uint_eq(b.len, sizeof(big) + 1);
    ck_assert_int_eq(b.data[0], '<');
    ck_assert_int_eq(b.data[b.len - 1], '>');
    bm_buf_dispose(&b);
}
END_TEST

START_TEST(err_formats_and_returns_code)
{
    char err[16];
    ck_assert_int_eq(bm_err(err, sizeof(err), BM_EINVAL, "bad %s value", "long"), BM_EINVAL);
    ck_assert_str_eq(err, "bad long value");
    ck_assert_int_eq(bm_err(NULL, 0, BM_EIO, "x"), BM_EIO);
    ck_assert_str_eq(bm_strerror(BM_EGONE), "gone");
}
END_TEST

START_TEST(consttime_streq_compares_content_and_length)
{
    ck_assert(bm_consttime_streq("token-1", "token-1"));
    ck_assert(!bm_consttime_streq("token-1", "token-2"));
    ck_assert(!bm_consttime_streq("token", "token-1"));
    ck_assert(!bm_consttime_streq("", "a"));
}
END_TEST

START_TEST(read_file_strips_and_bounds)
{
    char path[] = "/tmp/bm_test_util_XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, "secret-value\n\n", 14), 14);
    close(fd);
    char *out = NULL, err[256];
    ck_assert_int_eq(bm_read_file(path, 100, &out, err, sizeof(err)), BM_OK);
    ck_assert_str_eq(out, "secret-value");
    free(out);
    ck_assert_int_eq(bm_read_file(path, 4, &out, err, sizeof(err)), BM_ETOOBIG);
    unlink(path);
    ck_assert_int_eq(bm_read_file(path, 100, &out, err, sizeof(err)), BM_EIO);
    ck_assert_ptr_nonnull(strstr(err, path));
}
END_TEST

START_TEST(secret_buf_wipes_every_block_it_lets_go)
{
    memset(&released, 0, sizeof(released));
    bm__wipe_free_hook = wipe_probe_on_release;
    bm_buf_t b;
    char chunk[100];
    memset(chunk, 'S', sizeof(chunk));
    bm_buf_init_secret(&b, 1 << 20);
    for (int i = 0; i < 200; i++) /* 20000 bytes: 256 doubles to 32768 */
        ck_assert_int_eq(bm_buf_append(&b, chunk, sizeof(chunk)), BM_OK);
    ck_assert_uint_eq(b.len, 20000);
    for (size_t i = 0; i < b.len; i++) /* growth by copy kept everything */
        ck_assert_int_eq(b.data[i], 'S');
    /* every old block (256, 512, ..., 16384) went through the wipe, zeroed */
    ck_assert_int_eq(released.blocks, 7);
    ck_assert_uint_eq(released.bytes, 32768 - 256);
    ck_assert_int_eq(released.dirty, 0);
    /* a reset leaves no secret in the block it keeps */
    bm_buf_reset(&b);
    for (size_t i = 0; i < 20000; i++)
        ck_assert_int_eq(b.data[i], 0);
    /* bm_buf_printf's heap scratch for a long output is wiped too */
    char big[2000];
    memset(big, 'T', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    ck_assert_int_eq(bm_buf_printf(&b, "%s", big), BM_OK);
    ck_assert_int_eq(released.blocks, 8);
    bm_buf_dispose(&b);
    ck_assert_int_eq(released.blocks, 9); /* the last block */
    ck_assert_int_eq(released.dirty, 0);
    ck_assert(b.secret); /* still a secret buffer after dispose */
    ck_assert_int_eq(bm_buf_puts(&b, "again"), BM_OK);
    char *s = bm_buf_steal(&b);
    ck_assert(b.secret);
    ck_assert_str_eq(s, "again");
    bm_wipe_free(s, strlen(s));
    ck_assert_int_eq(released.blocks, 10);
    /* an ordinary buffer does not pay for it */
    bm_buf_init(&b, 1 << 20);
    for (int i = 0; i < 200; i++)
        ck_assert_int_eq(bm_buf_append(&b, chunk, sizeof(chunk)), BM_OK);
    bm_buf_dispose(&b);
    ck_assert_int_eq(released.blocks, 10);
    bm__wipe_free_hook = NULL;
}
END_TEST

START_TEST(read_file_wipes_its_buffers_also_on_failure)
{
    char path[] = "/tmp/bm_test_util_XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    char text[10000];
    memset(text, 'K', sizeof(text));
    ck_assert_int_eq(write(fd, text, sizeof(text)), (ssize_t)sizeof(text));
    close(fd);
    memset(&released, 0, sizeof(released));
    bm__wipe_free_hook = wipe_probe_on_release;
    char *out = NULL, err[256];
    /* too big: what was read so far (a 4096-byte chunk in an 8192-byte block) is wiped */
    ck_assert_int_eq(bm_read_file(path, 5000, &out, err, sizeof(err)), BM_ETOOBIG);
    ck_assert_ptr_null(out);
    ck_assert_int_eq(released.blocks, 1);
    ck_assert_uint_eq(released.bytes, 8192);
    ck_assert_int_eq(released.dirty, 0);
    /* read whole: growth (8192 to 16384 bytes) leaves no copy either */
    memset(&released, 0, sizeof(released));
    ck_assert_int_eq(bm_read_file(path, 20000, &out, err, sizeof(err)), BM_OK);
    ck_assert_uint_eq(strlen(out), sizeof(text));
    ck_assert_int_eq(released.blocks, 1);
    ck_assert_int_eq(released.dirty, 0);
    bm_wipe_free(out, strlen(out));
    bm__wipe_free_hook = NULL;
    unlink(path);
}
END_TEST

START_TEST(base64url_round_trips_without_padding)
{
    static const struct {
        const char *plain, *coded;
    } v[] = {{"", ""}, {"f", "Zg"}, {"fo", "Zm8"}, {"foo", "Zm9v"}, {"\xfb\xff", "-_8"}};
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        bm_buf_t b;
        char out[16];
        size_t len = 99;
        bm_buf_init(&b, 64);
        ck_assert_int_eq(bm_buf_b64url(&b, v[i].plain, strlen(v[i].plain)), BM_OK);
        ck_assert_str_eq(b.data != NULL ? b.data : "", v[i].coded);
        ck_assert_int_eq(bm_b64url_decode(v[i].coded, out, sizeof(out), &len), BM_OK);
        ck_assert_uint_eq(len, strlen(v[i].plain));
        ck_assert_str_eq(out, v[i].plain);
        bm_buf_dispose(&b);
    }
    char small[2];
    size_t len;
    ck_assert_int_eq(bm_b64url_decode("Zm9v", small, sizeof(small), &len), BM_EINVAL);
    ck_assert_int_eq(bm_b64url_decode("Zm+v", small, sizeof(small), &len), BM_EINVAL);
}
END_TEST

START_TEST(url_codec_keeps_unreserved_and_checks_escapes)
{
    bm_buf_t b;
    bm_buf_init(&b, 256);
    ck_assert_int_eq(bm_buf_url_encode(&b, "a@b.c/d e~_-"), BM_OK);
    ck_assert_str_eq(b.data, "a%40b.c%2Fd%20e~_-");
    char *out = NULL;
    ck_assert_int_eq(bm_url_decode(b.data, b.len, false, true, &out), BM_OK);
    ck_assert_str_eq(out, "a@b.c/d e~_-");
    free(out);
    ck_assert_int_eq(bm_url_decode("a+b%2B", 6, true, true, &out), BM_OK);
    ck_assert_str_eq(out, "a b+");
    free(out);
    ck_assert_int_eq(bm_url_decode("a+b", 3, false, true, &out), BM_OK);
    ck_assert_str_eq(out, "a+b");
    free(out);
    /* strict refuses what lenient passes through */
    ck_assert_int_eq(bm_url_decode("x%zz", 4, true, true, &out), BM_EINVAL);
    ck_assert_ptr_null(out);
    ck_assert_int_eq(bm_url_decode("x%00y", 5, true, true, &out), BM_EINVAL);
    ck_assert_int_eq(bm_url_decode("x%4", 3, true, true, &out), BM_EINVAL);
    ck_assert_int_eq(bm_url_decode("x%zz%4", 6, true, false, &out), BM_OK);
    ck_assert_str_eq(out, "x%zz%4");
    free(out);
    bm_buf_dispose(&b);
}
END_TEST

START_TEST(names_are_short_and_plain)
{
    char err[256], big[70];
    const char *good[] = {"work", "a", "alice@example.com", "client.x_1+2-3"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        ck_assert_int_eq(bm_name_check("account", good[i], err, sizeof(err)), BM_OK);
    const char *bad[] = {"",      "two words", "line\nbreak", "\x1b[31mred",
                         "tab\t", "quote'",    "caf\xc3\xa9", "a/b"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ck_assert_int_eq(bm_name_check("account", bad[i], err, sizeof(err)), BM_EINVAL);
        ck_assert_msg(strstr(err, "account name") != NULL, "got: %s", err);
        ck_assert_msg(strchr(err, '\n') == NULL && strchr(err, '\x1b') == NULL,
                      "the bad text reached the message: %s", err);
    }
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    big[BM_NAME_MAX] = '\0';
    ck_assert_int_eq(bm_name_check("group", big, err, sizeof(err)), BM_OK);
    big[BM_NAME_MAX] = 'a';
    ck_assert_int_eq(bm_name_check("group", big, err, sizeof(err)), BM_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "group name"));
    ck_assert_ptr_nonnull(strstr(err, "64"));
}
END_TEST

Suite *make_suite(void)
{
    Suite *s = suite_create("util");
    TCase *tc = tcase_create("util");
    tcase_add_test(tc, buf_grows_until_its_maximum);
    tcase_add_test(tc, buf_printf_handles_long_output);
    tcase_add_test(tc, err_formats_and_returns_code);
    tcase_add_test(tc, consttime_streq_compares_content_and_length);
    tcase_add_test(tc, read_file_strips_and_bounds);
    tcase_add_test(tc, secret_buf_wipes_every_block_it_lets_go);
    tcase_add_test(tc, read_file_wipes_its_buffers_also_on_failure);
    tcase_add_test(tc, base64url_round_trips_without_padding);
    tcase_add_test(tc, url_codec_keeps_unreserved_and_checks_escapes);
    tcase_add_test(tc, names_are_short_and_plain);
    suite_add_tcase(s, tc);
    return s;
}

#include "check_main.h"
