/*
 * tests/check_main.h: the shared main() of every Check test program.
 * A test file defines `Suite *make_suite(void)` and includes this header.
 */
#ifndef BM_TESTS_CHECK_MAIN_H
#define BM_TESTS_CHECK_MAIN_H

#include <check.h>
#include <stdlib.h>

Suite *make_suite(void);

int main(void)
{
    SRunner *sr = srunner_create(make_suite());
    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

#endif
