/* tests/core/test_metrics.c: the metrics registry and its exposition text. */
#include "core/metrics.h"

#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *render(bm_metrics_t *m)
{
    bm_buf_t b;
    bm_buf_init(&b, 1 << 20);
    ck_assert_int_eq(bm_metrics_render(m, &b), BM_OK);
    return bm_buf_steal(&b);
}

static const char *refused_tail(void)
{
    return "# HELP bm_metrics_refused_total series updates dropped (cap, bad name or type clash)\n"
           "# TYPE bm_metrics_refused_total counter\n";
}

START_TEST(renders_exact_text)
{
    bm_metrics_t *m = bm_metrics_new(0);
    ck_assert_int_eq(bm_metrics_describe(m, "bm_req_total", BM_METRIC_COUNTER, "requests seen"),
                     BM_OK);
    bm_metrics_counter_add(m, "bm_req_total", "result=\"ok\"", 3);
    bm_metrics_counter_add(m, "bm_req_total", "result=\"bad\"", 1);
    bm_metrics_counter_add(m, "bm_req_total", "result=\"ok\"", 2);
    bm_metrics_gauge_set(m, "bm_depth", NULL, 7);
    bm_metrics_gauge_add(m, "bm_depth", NULL, -0.5);
    bm_metrics_histogram_observe(m, "bm_lat_seconds", "op=\"c\"", 0.003);
    bm_metrics_histogram_observe(m, "bm_lat_seconds", "op=\"c\"", 0.2);
    bm_metrics_histogram_observe(m, "bm_lat_seconds", "op=\"c\"", 60);
    char *text = render(m);
    char want[4096];
    snprintf(want, sizeof(want),
             "# HELP bm_req_total requests seen\n"
             "# TYPE bm_req_total counter\n"
             "bm_req_total{result=\"ok\"} 5\n"
             "bm_req_total{result=\"bad\"} 1\n"
             "# TYPE bm_depth gauge\n"
             "bm_depth 6.5\n"
             "# TYPE bm_lat_seconds histogram\n"
             "bm_lat_seconds_bucket{op=\"c\",le=\"0.005\"} 1\n"
             "bm_lat_seconds_bucket{op=\"c\",le=\"0.01\"} 1\n"
             "bm_lat_seconds_bucket{op=\"c\",le=\"0.025\"} 1\n"
             "bm_lat_seconds_bucket{op=\"c\",le=\"0.05\"} 1\n"
             "bm_lat_seconds_bucket{op=\"c\",le=\"0.1\"} 1\n"
             "bm_lat_seconds_bucket{op=\"c\",le=\"0.25\"} 2\n"
             "bm_lat_seconds_bucket{op=\"c\",le=\"0.5\"} 2\n"
             "bm_lat_seconds_bucket{op=\"c\",le=\"1\"} 2\n"
             "bm_lat_seconds_bucket{op=\"c\",le=\"2.5\"} 2\n"
             "bm_lat_seconds_bucket{op=\"c\",le=\"5\"} 2\n"
             "bm_lat_seconds_bucket{op=\"c\",le=\"10\"} 2\n"
             "bm_lat_seconds_bucket{op=\"c\",le=\"+Inf\"} 3\n"
             "bm_lat_seconds_sum{op=\"c\"} 60.203\n"
             "bm_lat_seconds_count{op=\"c\"} 3\n"
             "%sbm_metrics_refused_total 0\n",
             refused_tail());
    ck_assert_str_eq(text, want);
    free(text);
    bm_metrics_free(m);
}
END_TEST

START_TEST(refuses_past_cap_and_type_clashes)
{
    bm_metrics_t *m = bm_metrics_new(2);
    bm_metrics_counter_add(m, "a_total", NULL, 1);
    bm_metrics_counter_add(m, "b_total", NULL, 1);
    bm_metrics_counter_add(m, "c_total", NULL, 1);  /* past the cap */
    bm_metrics_gauge_set(m, "a_total", NULL, 1);    /* another type */
    bm_metrics_counter_add(m, "9bad", NULL, 1);     /* bad name */
    bm_metrics_counter_add(m, "a_total", NULL, 41); /* still fine */
    ck_assert_int_eq(bm_metrics_describe(m, "a_total", BM_METRIC_GAUGE, "x"), BM_EINVAL);
    char *text = render(m);
    char want[1024];
    snprintf(want, sizeof(want),
             "# TYPE a_total counter\na_total 42\n# TYPE b_total counter\nb_total 1\n"
             "%sbm_metrics_refused_total 3\n",
             refused_tail());
    ck_assert_str_eq(text, want);
    free(text);
    bm_metrics_free(m);
}
END_TEST

static void collect(void *ud, bm_metrics_t *m)
{
    int *calls = ud;
    (*calls)++;
    bm_metrics_gauge_set(m, "bm_queue_depth", NULL, *calls * 10);
}

START_TEST(collect_callbacks_run_at_render)
{
    bm_metrics_t *m = bm_metrics_new(0);
    int calls = 0;
    ck_assert_int_eq(bm_metrics_on_collect(m, collect, &calls), BM_OK);
    char *text = render(m);
    ck_assert_ptr_nonnull(strstr(text, "bm_queue_depth 10\n"));
    free(text);
    text = render(m);
    ck_assert_ptr_nonnull(strstr(text, "bm_queue_depth 20\n"));
    free(text);
    ck_assert_int_eq(calls, 2);
    bm_metrics_free(m);
}
END_TEST

START_TEST(render_is_bounded_by_the_buffer)
{
    bm_metrics_t *m = bm_metrics_new(0);
    bm_metrics_counter_add(m, "a_total", NULL, 1);
    bm_buf_t b;
    bm_buf_init(&b, 16);
    ck_assert_int_eq(bm_metrics_render(m, &b), BM_ETOOBIG);
    bm_buf_dispose(&b);
    bm_metrics_free(m);
}
END_TEST

#define N_THREADS 8
#define N_ADDS    20000

static void *hammer(void *arg)
{
    bm_metrics_t *m = arg;
    char labels[32];
    for (int i = 0; i < N_ADDS; i++) {
        snprintf(labels, sizeof(labels), "k=\"%d\"", i % 4); /* creation races too */
        bm_metrics_counter_add(m, "bm_hits_total", labels, 1);
        bm_metrics_gauge_add(m, "bm_open", NULL, 1);
        bm_metrics_histogram_observe(m, "bm_lat_seconds", NULL, 0.5);
    }
    return NULL;
}

START_TEST(concurrent_updates_sum_right)
{
    bm_metrics_t *m = bm_metrics_new(0);
    pthread_t t[N_THREADS];
    for (int i = 0; i < N_THREADS; i++)
        ck_assert_int_eq(pthread_create(&t[i], NULL, hammer, m), 0);
    for (int i = 0; i < N_THREADS; i++)
        ck_assert_int_eq(pthread_join(t[i], NULL), 0);
    char *text = render(m);
    char line[128];
    for (int k = 0; k < 4; k++) {
        snprintf(line, sizeof(line), "bm_hits_total{k=\"%d\"} %d\n", k, N_THREADS * N_ADDS / 4);
        ck_assert_ptr_nonnull(strstr(text, line));
    }
    snprintf(line, sizeof(line), "bm_open %d\n", N_THREADS * N_ADDS);
    ck_assert_ptr_nonnull(strstr(text, line));
    snprintf(line, sizeof(line), "bm_lat_seconds_count %d\n", N_THREADS * N_ADDS);
    ck_assert_ptr_nonnull(strstr(text, line));
    snprintf(line, sizeof(line), "bm_lat_seconds_sum %d\n", N_THREADS * N_ADDS / 2);
    ck_assert_ptr_nonnull(strstr(text, line));
    ck_assert_ptr_nonnull(strstr(text, "bm_metrics_refused_total 0\n"));
    free(text);
    bm_metrics_free(m);
}
END_TEST

Suite *make_suite(void)
{
    Suite *s = suite_create("metrics");
    TCase *tc = tcase_create("metrics");
    tcase_add_test(tc, renders_exact_text);
    tcase_add_test(tc, refuses_past_cap_and_type_clashes);
    tcase_add_test(tc, collect_callbacks_run_at_render);
    tcase_add_test(tc, render_is_bounded_by_the_buffer);
    tcase_add_test(tc, concurrent_updates_sum_right);
    suite_add_tcase(s, tc);
    return s;
}

#include "../check_main.h"
