/* tests/core/test_util.c: bounded buffers, error helper, constant-time compare. */
#include "core/util.h"

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

Suite *make_suite(void)
{
    Suite *s = suite_create("util");
    TCase *tc = tcase_create("util");
    tcase_add_test(tc, buf_grows_until_its_maximum);
    tcase_add_test(tc, buf_printf_handles_long_output);
    tcase_add_test(tc, err_formats_and_returns_code);
    tcase_add_test(tc, consttime_streq_compares_content_and_length);
    tcase_add_test(tc, read_file_strips_and_bounds);
    suite_add_tcase(s, tc);
    return s;
}

#include "check_main.h"
