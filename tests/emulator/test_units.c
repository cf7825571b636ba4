/*
 * tests/emulator/test_units.c: pure parts of the emulator, linked in directly:
 * multipart parsing, embedded HTTP requests, id validation, JSON tree, times,
 * recurrence expansion with time zones.
 */
#include "emulator/emulator.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

START_TEST(multipart_parts_and_content_ids)
{
    char b[80];
    ck_assert_int_eq(emu_multipart_boundary("multipart/mixed; boundary=\"abc 1\"", b, sizeof(b)),
                     0);
    ck_assert_str_eq(b, "abc 1");
    ck_assert_int_eq(
        emu_multipart_boundary("multipart/mixed; boundary=xyz; charset=x", b, sizeof(b)), 0);
    ck_assert_str_eq(b, "xyz");
    ck_assert_int_ne(emu_multipart_boundary("application/json", b, sizeof(b)), 0);
    ck_assert_int_ne(emu_multipart_boundary("multipart/mixed", b, sizeof(b)), 0);
    const char *body =
        "preamble\r\n--xyz\r\nContent-Type: application/http\r\nContent-ID: <a1>\r\n\r\n"
        "GET /calendar/v3/x HTTP/1.1\r\n\r\n"
        "\r\n--xyz\nContent-Type: application/http\n\n"
        "POST /calendar/v3/y HTTP/1.1\nIf-Match: \"e1\"\nContent-Type: "
        "application/json\n\n{\"a\":1}\n"
        "--xyz--\r\n";
    emu_part_t *parts;
    size_t n;
    char err[128];
    ck_assert_int_eq(emu_multipart_parse("xyz", body, strlen(body), &parts, &n, err, sizeof(err)),
                     0);
    ck_assert_uint_eq(n, 2);
    ck_assert_str_eq(parts[0].content_id, "<a1>");
    ck_assert_ptr_null(parts[1].content_id);
    emu_req_t rq;
    emu_req_init(&rq);
    ck_assert_int_eq(emu_http_request_parse(parts[0].data, parts[0].len, &rq), 0);
    ck_assert_str_eq(rq.method, "GET");
    ck_assert_str_eq(rq.path, "/calendar/v3/x");
    ck_assert_uint_eq(rq.body_len, 0);
    emu_req_dispose(&rq);
    emu_req_init(&rq);
    ck_assert_int_eq(emu_http_request_parse(parts[1].data, parts[1].len, &rq), 0);
    ck_assert_str_eq(rq.method, "POST");
    ck_assert_str_eq(rq.if_match, "\"e1\"");
    ck_assert_str_eq(rq.content_type, "application/json");
    ck_assert_uint_eq(rq.body_len, 7);
    ck_assert(memcmp(rq.body, "{\"a\":1}", 7) == 0);
    emu_req_dispose(&rq);
    emu_parts_free(parts, n);
    /* absolute URL and query */
    emu_req_init(&rq);
    const char *abs =
        "GET https://www.googleapis.com/calendar/v3/c/e?maxResults=5&q=a+b%21 HTTP/1.1\r\n\r\n";
    ck_assert_int_eq(emu_http_request_parse(abs, strlen(abs), &rq), 0);
    ck_assert_str_eq(rq.path, "/calendar/v3/c/e");
    ck_assert_str_eq(emu_param(&rq, "maxResults"), "5");
    ck_assert_str_eq(emu_param(&rq, "q"), "a b!");
    emu_req_dispose(&rq);
    emu_req_init(&rq);
    ck_assert_int_ne(emu_http_request_parse("garbage", 7, &rq), 0);
    emu_req_dispose(&rq);
    /* no boundary in the body */
    ck_assert_int_ne(emu_multipart_parse("nope", body, strlen(body), &parts, &n, err, sizeof(err)),
                     0);
}
END_TEST

START_TEST(event_ids)
{
    ck_assert(emu_event_id_valid("abcde"));
    ck_assert(emu_event_id_valid("0123456789abcdefghijklmnopqrstuv"));
    ck_assert(!emu_event_id_valid("abcd"));
    ck_assert(!emu_event_id_valid("abcdw"));
    ck_assert(!emu_event_id_valid("ABCDE"));
    ck_assert(!emu_event_id_valid("abc_de"));
    char *big = malloc(1026);
    memset(big, 'a', 1025);
    big[1025] = '\0';
    ck_assert(!emu_event_id_valid(big));
    big[1024] = '\0';
    ck_assert(emu_event_id_valid(big));
    free(big);
}
END_TEST

START_TEST(json_roundtrip_and_errors)
{
    jv_t *v;
    char err[64];
    const char *s = "{\"a\":[1,2.5,\"x\\n\\u00e9\"],\"b\":{\"c\":null,\"d\":true}}";
    ck_assert_int_eq(emu_json_parse(s, strlen(s), &v, err, sizeof(err)), 0);
    bm_buf_t b;
    bm_buf_init(&b, 1 << 20);
    jv_write(&b, v);
    ck_assert_str_eq(b.data, "{\"a\":[1,2.5,\"x\\né\"],\"b\":{\"c\":null,\"d\":true}}");
    jv_t *c = jv_clone(v);
    jv_set_str(c, "a", "replaced");
    jv_del(c, "b");
    bm_buf_reset(&b);
    jv_write(&b, c);
    ck_assert_str_eq(b.data, "{\"a\":\"replaced\"}");
    jv_free(c);
    jv_free(v);
    bm_buf_dispose(&b);
    ck_assert_int_ne(emu_json_parse("{\"a\":", 5, &v, err, sizeof(err)), 0);
    ck_assert_int_ne(emu_json_parse("{} {}", 5, &v, err, sizeof(err)), 0);
    ck_assert_int_ne(emu_json_parse("", 0, &v, err, sizeof(err)), 0);
    char deep[200];
    memset(deep, '[', 100);
    memset(deep + 100, ']', 100);
    ck_assert_int_ne(emu_json_parse(deep, 200, &v, err, sizeof(err)), 0);
}
END_TEST

START_TEST(times)
{
    int64_t ms;
    bool off;
    ck_assert_int_eq(emu_parse_datetime("2030-01-07T10:00:00+02:00", &ms, &off), 0);
    ck_assert(off);
    char out[40];
    emu_fmt_utc_ms(ms, out);
    ck_assert_str_eq(out, "2030-01-07T08:00:00.000Z");
    ck_assert_int_eq(emu_parse_datetime("2030-01-07T10:00:00.5Z", &ms, &off), 0);
    emu_fmt_utc_ms(ms, out);
    ck_assert_str_eq(out, "2030-01-07T10:00:00.500Z");
    ck_assert_int_eq(emu_parse_datetime("2030-01-07T10:00:00", &ms, &off), 0);
    ck_assert(!off);
    ck_assert_int_ne(emu_parse_datetime("2030-02-30T10:00:00Z", &ms, &off), 0);
    ck_assert_int_ne(emu_parse_datetime("2030-01-07 10:00", &ms, &off), 0);
    ck_assert_int_ne(emu_parse_date("2030-1-7", &ms), 0);
    emu_fmt_rfc1123(0, out);
    ck_assert_str_eq(out, "Thu, 01 Jan 1970 00:00:00 GMT");
    void *berlin = emu_tz_get("Europe/Berlin");
    ck_assert_ptr_nonnull(berlin);
    ck_assert_ptr_null(emu_tz_get("Mars/Olympus"));
    ck_assert_int_eq(emu_parse_datetime("2030-07-01T12:00:00Z", &ms, &off), 0);
    emu_fmt_local(berlin, ms, out);
    ck_assert_str_eq(out, "2030-07-01T14:00:00+02:00");
    int64_t fl;
    ck_assert_int_eq(emu_parse_datetime("2030-12-01T12:00:00", &fl, &off), 0);
    emu_fmt_utc_ms(emu_tz_to_utc(berlin, fl), out);
    ck_assert_str_eq(out, "2030-12-01T11:00:00.000Z");
}
END_TEST

static jv_t *lines(const char *a, const char *b)
{
    jv_t *arr = jv_new(JV_ARR);
    jv_push(arr, jv_str(a));
    if (b != NULL)
        jv_push(arr, jv_str(b));
    return arr;
}

START_TEST(recurrence_expansion)
{
    void *ny = emu_tz_get("America/New_York");
    int64_t start;
    bool off;
    /* 9:00 New York daily across the US DST switch (2030-03-10) */
    ck_assert_int_eq(emu_parse_datetime("2030-03-08T14:00:00Z", &start, &off), 0);
    jv_t *l = lines("RRULE:FREQ=DAILY;COUNT=4", "EXDATE;TZID=America/New_York:20300309T090000");
    int64_t *occ;
    size_t n;
    bool trunc;
    char err[128];
    ck_assert_int_eq(emu_recur_expand(l, false, ny, start, 100, &occ, &n, &trunc, err, sizeof(err)),
                     0);
    ck_assert_uint_eq(n, 3);
    char out[32];
    emu_fmt_utc_ms(occ[0], out);
    ck_assert_str_eq(out, "2030-03-08T14:00:00.000Z");
    emu_fmt_utc_ms(occ[1], out);
    ck_assert_str_eq(out, "2030-03-10T13:00:00.000Z"); /* EDT now */
    ck_assert(!trunc);
    free(occ);
    jv_free(l);
    /* unbounded rules are cut at max */
    l = lines("RRULE:FREQ=WEEKLY;BYDAY=MO,WE", NULL);
    ck_assert_int_eq(emu_recur_expand(l, false, ny, start, 10, &occ, &n, &trunc, err, sizeof(err)),
                     0);
    ck_assert_uint_eq(n, 10);
    ck_assert(trunc);
    free(occ);
    jv_free(l);
    /* all-day with RDATE */
    int64_t day;
    ck_assert_int_eq(emu_parse_date("2030-01-01", &day), 0);
    l = lines("RRULE:FREQ=MONTHLY;COUNT=2", "RDATE;VALUE=DATE:20300115");
    ck_assert_int_eq(emu_recur_expand(l, true, NULL, day, 100, &occ, &n, &trunc, err, sizeof(err)),
                     0);
    ck_assert_uint_eq(n, 3);
    emu_fmt_date(occ[1], out);
    ck_assert_str_eq(out, "2030-01-15");
    emu_fmt_date(occ[2], out);
    ck_assert_str_eq(out, "2030-02-01");
    free(occ);
    jv_free(l);
    l = lines("RRULE:FREQ=NEVER", NULL);
    ck_assert_int_ne(emu_recur_validate(l, err, sizeof(err)), 0);
    jv_free(l);
    l = lines("FOO:BAR", NULL);
    ck_assert_int_ne(emu_recur_validate(l, err, sizeof(err)), 0);
    jv_free(l);
}
END_TEST

Suite *make_suite(void)
{
    Suite *s = suite_create("emulator-units");
    TCase *tc = tcase_create("units");
    tcase_set_timeout(tc, 0);
    tcase_add_test(tc, multipart_parts_and_content_ids);
    tcase_add_test(tc, event_ids);
    tcase_add_test(tc, json_roundtrip_and_errors);
    tcase_add_test(tc, times);
    tcase_add_test(tc, recurrence_expansion);
    suite_add_tcase(s, tc);
    return s;
}

#include "check_main.h"
