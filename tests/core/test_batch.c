/*
 * tests/core/test_batch.c: the multipart/mixed codec of Google's batch endpoint
 * (core/batch.c): bm_batch_encode's exact bytes and refusals, bm_batch_decode's
 * matching of parts to requests (Content-ID, position), missing, repeated and
 * unknown parts, malformed input, bodies and error reasons.
 */
#include "core/batch.h"
#include "core/gcal.h"
#include "core/util.h"
#include "google_batch.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- encode ---- */

START_TEST(batch_encode_wire_format)
{
    bm_gcal_req_t reqs[3] = {
        {.method = "POST",
         .path = "/calendars/alice%40example.com/events?sendUpdates=none",
         .body = "{\"id\":\"bm01\",\"summary\":\"Busy\"}"},
        {.method = "DELETE", .path = "/calendars/alice%40example.com/events/bm02?sendUpdates=none"},
        {.method = "PUT",
         .path = "calendars/b%40x.com/events/bm03",
         .body = "{}",
         .if_match = "\"3412\""},
    };
    bm_buf_t b;
    bm_buf_init(&b, 1 << 20);
    ck_assert_int_eq(bm_batch_encode(reqs, 3, "/calendar/v3", "batch_xyz", &b), 0);
    const char *want = "--batch_xyz\r\n"
                       "Content-Type: application/http\r\n"
                       "Content-Transfer-Encoding: binary\r\n"
                       "Content-ID: <item-1>\r\n"
                       "\r\n"
                       "POST /calendar/v3/calendars/alice%40example.com/events?sendUpdates=none "
                       "HTTP/1.1\r\n"
                       "Content-Type: application/json; charset=UTF-8\r\n"
                       "Content-Length: 30\r\n"
                       "\r\n"
                       "{\"id\":\"bm01\",\"summary\":\"Busy\"}\r\n"
                       "--batch_xyz\r\n"
                       "Content-Type: application/http\r\n"
                       "Content-Transfer-Encoding: binary\r\n"
                       "Content-ID: <item-2>\r\n"
                       "\r\n"
                       "DELETE /calendar/v3/calendars/alice%40example.com/events/bm02?sendUpdates="
                       "none HTTP/1.1\r\n"
                       "\r\n"
                       "\r\n"
                       "--batch_xyz\r\n"
                       "Content-Type: application/http\r\n"
                       "Content-Transfer-Encoding: binary\r\n"
                       "Content-ID: <item-3>\r\n"
                       "\r\n"
                       "PUT /calendar/v3/calendars/b%40x.com/events/bm03 HTTP/1.1\r\n"
                       "Content-Type: application/json; charset=UTF-8\r\n"
                       "Content-Length: 2\r\n"
                       "If-Match: \"3412\"\r\n"
                       "\r\n"
                       "{}\r\n"
                       "--batch_xyz--\r\n";
    ck_assert_str_eq(b.data, want);
    ck_assert_uint_eq(b.len, strlen(want));
    bm_buf_dispose(&b);
}
END_TEST

START_TEST(batch_encode_rejects)
{
    bm_buf_t b;
    bm_buf_init(&b, 1 << 20);
    bm_buf_puts(&b, "keep");
    bm_gcal_req_t ok = {.method = "GET", .path = "/x"};
    bm_gcal_req_t bad[] = {
        {.method = NULL, .path = "/x"},
        {.method = "GET", .path = NULL},
        {.method = "GET", .path = "/x y"},
        {.method = "GET", .path = "/x\r\nEvil: 1"},
        {.method = "GET", .path = "/x", .if_match = "\"a\"\r\nX: y"},
        {.method = "POST", .path = "/x", .body = "--bnd inside"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        bm_gcal_req_t two[2] = {ok, bad[i]};
        ck_assert_int_eq(bm_batch_encode(two, 2, "/calendar/v3", "bnd", &b), BM_EINVAL);
        ck_assert_str_eq(b.data, "keep"); /* unchanged */
    }
    ck_assert_int_eq(bm_batch_encode(&ok, 1, "", "", &b), BM_EINVAL);
    bm_buf_dispose(&b);

    bm_buf_init(&b, 300); /* room for one request, not ten */
    ck_assert_int_eq(bm_batch_encode(&ok, 1, "/calendar/v3", "b", &b), 0);
    bm_gcal_req_t many[10];
    for (int i = 0; i < 10; i++)
        many[i] = ok;
    ck_assert_int_eq(bm_batch_encode(many, 10, "/calendar/v3", "b", &b), BM_ETOOBIG);
    bm_buf_dispose(&b);
}
END_TEST

START_TEST(batch_encode_get_and_delete_with_if_match_exact_bytes)
{
    /* No body: no Content-Type or Content-Length; If-Match only when given. */
    bm_gcal_req_t reqs[2] = {
        {.method = "GET", .path = "/calendars/c/events/e1"},
        {.method = "DELETE", .path = "/calendars/c/events/e2", .if_match = "\"77\""},
    };
    bm_buf_t b;
    bm_buf_init(&b, 1 << 20);
    ck_assert_int_eq(bm_batch_encode(reqs, 2, "/calendar/v3", "B", &b), 0);
    ck_assert_str_eq(b.data, "--B\r\n"
                             "Content-Type: application/http\r\n"
                             "Content-Transfer-Encoding: binary\r\n"
                             "Content-ID: <item-1>\r\n"
                             "\r\n"
                             "GET /calendar/v3/calendars/c/events/e1 HTTP/1.1\r\n"
                             "\r\n"
                             "\r\n"
                             "--B\r\n"
                             "Content-Type: application/http\r\n"
                             "Content-Transfer-Encoding: binary\r\n"
                             "Content-ID: <item-2>\r\n"
                             "\r\n"
                             "DELETE /calendar/v3/calendars/c/events/e2 HTTP/1.1\r\n"
                             "If-Match: \"77\"\r\n"
                             "\r\n"
                             "\r\n"
                             "--B--\r\n");
    bm_buf_dispose(&b);
}
END_TEST

START_TEST(batch_encode_appends_to_what_the_buffer_holds)
{
    bm_gcal_req_t r = {.method = "POST", .path = "/x", .body = "{}"};
    bm_buf_t b;
    bm_buf_init(&b, 1 << 20);
    bm_buf_puts(&b, "head;");
    ck_assert_int_eq(bm_batch_encode(&r, 1, "/calendar/v3", "B", &b), 0);
    ck_assert_int_eq(strncmp(b.data, "head;--B\r\n", 10), 0);
    ck_assert_ptr_nonnull(strstr(b.data, "POST /calendar/v3/x HTTP/1.1\r\n"
                                         "Content-Type: application/json; charset=UTF-8\r\n"
                                         "Content-Length: 2\r\n\r\n{}\r\n--B--\r\n"));
    bm_buf_dispose(&b);
}
END_TEST

/* ---- decode ---- */

START_TEST(batch_decode_google_response)
{
    bm_gcal_req_t reqs[3] = {{.method = "POST"}, {.method = "DELETE"}, {.method = "POST"}};
    char err[256] = "";
    ck_assert_msg(bm_batch_decode(GOOGLE_CT, GOOGLE_BATCH, strlen(GOOGLE_BATCH), reqs, 3, err,
                                  sizeof(err)) == 0,
                  "%s", err);
    ck_assert_int_eq(reqs[0].status, 200);
    ck_assert_str_eq(reqs[0].response, "{\n \"kind\": \"calendar#event\",\n \"id\": \"bm01\"\n}\n");
    ck_assert_str_eq(reqs[0].reason, "");
    ck_assert_int_eq(reqs[1].status, 204);
    ck_assert_str_eq(reqs[1].response, "");
    ck_assert_int_eq(reqs[2].status, 409);
    ck_assert_str_eq(reqs[2].reason, "duplicate");
    ck_assert_ptr_nonnull(strstr(reqs[2].response, "already exists"));
    /* decoding again into the same array frees the old outputs (ASan checks) */
    ck_assert_int_eq(
        bm_batch_decode(GOOGLE_CT, GOOGLE_BATCH, strlen(GOOGLE_BATCH), reqs, 3, err, sizeof(err)),
        0);
    bm_gcal_reqs_dispose(reqs, 3);
    ck_assert_ptr_null(reqs[0].response);
    ck_assert_int_eq(reqs[0].status, 0);
}
END_TEST

START_TEST(batch_decode_out_of_order_and_lf)
{
    /* parts out of order, matched by Content-ID; LF-only line ends; quoted boundary;
     * a preamble; the "response-N" form without "item-" */
    const char *body = "This is a preamble\n"
                       "--b1\n"
                       "Content-Type: application/http\n"
                       "content-id: <response-item-3>\n"
                       "\n"
                       "HTTP/1.1 412 Precondition Failed\n"
                       "\n"
                       "{\"error\":{\"errors\":[{\"reason\":\"conditionNotMet\"}],\"code\":412}}\n"
                       "--b1\n"
                       "Content-Type: application/http\n"
                       "Content-ID: <response-1>\n"
                       "\n"
                       "HTTP/1.1 200 OK\n"
                       "\n"
                       "{\"id\":\"one\"}\n"
                       "--b1\n"
                       "Content-Type: application/http\n"
                       "Content-ID: <response-item-2>\n"
                       "\n"
                       "HTTP/1.1 410 Gone\n"
                       "\n"
                       "{\"error\":{\"errors\":[{\"reason\":\"deleted\"}],\"code\":410}}\n"
                       "--b1--\n"
                       "epilogue";
    bm_gcal_req_t reqs[3] = {{0}};
    char err[256] = "";
    ck_assert_msg(bm_batch_decode("multipart/mixed; charset=x; boundary=\"b1\"", body, strlen(body),
                                  reqs, 3, err, sizeof(err)) == 0,
                  "%s", err);
    ck_assert_int_eq(reqs[0].status, 200);
    ck_assert_str_eq(reqs[0].response, "{\"id\":\"one\"}");
    ck_assert_int_eq(reqs[1].status, 410);
    ck_assert_str_eq(reqs[1].reason, "deleted");
    ck_assert_int_eq(reqs[2].status, 412);
    ck_assert_str_eq(reqs[2].reason, "conditionNotMet");
    bm_gcal_reqs_dispose(reqs, 3);
}
END_TEST

START_TEST(batch_decode_positional)
{
    /* no Content-IDs: matched by position */
    const char *body = "--zz\r\nContent-Type: application/http\r\n\r\nHTTP/1.1 201 Created\r\n\r\n"
                       "{\"a\":1}\r\n--zz\r\nContent-Type: application/http\r\n\r\n"
                       "HTTP/1.1 503 Service Unavailable\r\n\r\n"
                       "{\"error\":{\"errors\":[{\"reason\":\"backendError\"}]}}\r\n--zz--";
    bm_gcal_req_t reqs[2] = {{0}};
    char err[256] = "";
    ck_assert_msg(bm_batch_decode("multipart/mixed; boundary=zz", body, strlen(body), reqs, 2, err,
                                  sizeof(err)) == 0,
                  "%s", err);
    ck_assert_int_eq(reqs[0].status, 201);
    ck_assert_str_eq(reqs[0].response, "{\"a\":1}");
    ck_assert_int_eq(reqs[1].status, 503);
    ck_assert_str_eq(reqs[1].reason, "backendError");
    bm_gcal_reqs_dispose(reqs, 2);
}
END_TEST

START_TEST(batch_decode_missing_part)
{
    const char *body = "--zz\r\nContent-ID: <response-item-2>\r\n\r\nHTTP/1.1 200 OK\r\n\r\n"
                       "{}\r\n--zz--\r\n";
    bm_gcal_req_t reqs[2] = {{0}};
    char err[256] = "";
    ck_assert_int_eq(bm_batch_decode("multipart/mixed; boundary=zz", body, strlen(body), reqs, 2,
                                     err, sizeof(err)),
                     BM_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "1 parts for 2 requests"));
    ck_assert_int_eq(reqs[0].status, 0); /* not answered */
    ck_assert_int_eq(reqs[1].status, 200);
    bm_gcal_reqs_dispose(reqs, 2);
}
END_TEST

START_TEST(batch_decode_malformed)
{
    struct {
        const char *ct, *body;
    } cases[] = {
        {NULL, "--zz\r\n\r\nHTTP/1.1 200 OK\r\n\r\n\r\n--zz--"},
        {"application/json", "{}"},
        {"multipart/mixed", "--zz--"},
        {"multipart/mixed; boundary=", "--zz--"},
        {"multipart/mixed; boundary=\"zz", "--zz--"},
        {"multipart/mixed; boundary=zz", ""},
        {"multipart/mixed; boundary=zz", "garbage without delimiters"},
        {"multipart/mixed; boundary=zz", "--zz\r\nContent-Type: application/http\r\n"},
        {"multipart/mixed; boundary=zz", "--zz\r\n\r\nHTTP/1.1 200 OK\r\n\r\n{}"}, /* truncated */
        {"multipart/mixed; boundary=zz", "--zz\r\n\r\nNOT HTTP\r\n\r\n\r\n--zz--"},
        {"multipart/mixed; boundary=zz", "--zz\r\n\r\nHTTP/1.1 2x0 OK\r\n\r\n\r\n--zz--"},
        {"multipart/mixed; boundary=zz", "--zz\r\n\r\nHTTP/1.1\r\n\r\n\r\n--zz--"},
        {"multipart/mixed; boundary=zz", "--zz\r\n\r\n\r\n--zz--"},
        {"multipart/mixed; boundary=zz", "--zz\r\n\r\nHTTP/1.1 200 OK\r\n\r\n\r\n--zz"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        bm_gcal_req_t reqs[1] = {{0}};
        char err[256] = "";
        ck_assert_msg(bm_batch_decode(cases[i].ct, cases[i].body, strlen(cases[i].body), reqs, 1,
                                      err, sizeof(err)) == BM_EINVAL,
                      "case %zu accepted", i);
        ck_assert_msg(err[0] != '\0', "case %zu: no message", i);
        bm_gcal_reqs_dispose(reqs, 1);
    }
    /* Content-Length larger than the part: the part's rest is the body, no overread */
    const char *body = "--zz\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 99999\r\n\r\n{}\r\n--zz--";
    bm_gcal_req_t r = {0};
    ck_assert_int_eq(
        bm_batch_decode("multipart/mixed; boundary=zz", body, strlen(body), &r, 1, NULL, 0), 0);
    ck_assert_str_eq(r.response, "{}");
    bm_gcal_reqs_dispose(&r, 1);
}
END_TEST

/* ---- decode: matching, bodies, reasons, outputs ---- */

START_TEST(batch_decode_unknown_content_id_answers_no_request)
{
    /* response-item-9 names no request of 2: it is not given to request 2 by
     * position; request 2 stays unanswered (to be retried). */
    const char *body = "--R\r\nContent-ID: <response-item-1>\r\n\r\nHTTP/1.1 200 OK\r\n\r\n"
                       "{\"id\":\"one\"}\r\n"
                       "--R\r\nContent-ID: <response-item-9>\r\n\r\nHTTP/1.1 200 OK\r\n\r\n"
                       "{\"id\":\"nine\"}\r\n"
                       "--R\r\nContent-ID: <other-2>\r\n\r\nHTTP/1.1 200 OK\r\n\r\n"
                       "{\"id\":\"other\"}\r\n--R--\r\n";
    bm_gcal_req_t reqs[2] = {{.method = "GET"}, {.method = "GET"}};
    char err[256] = "";
    ck_assert_int_eq(bm_batch_decode("multipart/mixed; boundary=R", body, strlen(body), reqs, 2,
                                     err, sizeof(err)),
                     BM_EINVAL);
    ck_assert_int_eq(reqs[0].status, 200);
    ck_assert_str_eq(reqs[0].response, "{\"id\":\"one\"}");
    ck_assert_int_eq(reqs[1].status, 0);
    ck_assert_ptr_null(reqs[1].response);
    bm_gcal_reqs_dispose(reqs, 2);
}
END_TEST

START_TEST(batch_decode_keeps_crlf_inside_a_part_body)
{
    /* Only the CRLF right before the next delimiter belongs to it; line ends and a
     * "--R" not at a line start inside the body are the body's. */
    const char *body = "--R\r\nContent-ID: <response-item-1>\r\n\r\nHTTP/1.1 200 OK\r\n\r\n"
                       "line one\r\n\r\nline two --R\r\n\r\n"
                       "--R\r\nContent-ID: <response-item-2>\r\n\r\nHTTP/1.1 200 OK\r\n"
                       "Content-Length: 5\r\n\r\na\r\nbcdef\r\n--R--\r\n";
    bm_gcal_req_t reqs[2] = {{0}};
    char err[256] = "";
    ck_assert_msg(bm_batch_decode("multipart/mixed; boundary=R", body, strlen(body), reqs, 2, err,
                                  sizeof(err)) == 0,
                  "%s", err);
    ck_assert_str_eq(reqs[0].response, "line one\r\n\r\nline two --R\r\n");
    ck_assert_str_eq(reqs[1].response, "a\r\nbc"); /* Content-Length bounds the body */
    bm_gcal_reqs_dispose(reqs, 2);
}
END_TEST

START_TEST(batch_decode_reason_only_for_failed_parts)
{
    const char *body =
        "--R\r\n\r\nHTTP/1.1 403 Forbidden\r\n\r\n"
        "{\"error\":{\"errors\":[{\"domain\":\"usageLimits\",\"reason\":\"rateLimitExceeded\"}],"
        "\"code\":403,\"message\":\"Rate Limit Exceeded\"}}\r\n"
        "--R\r\n\r\nHTTP/1.1 200 OK\r\n\r\n"
        "{\"error\":{\"errors\":[{\"reason\":\"looksLikeAnError\"}]}}\r\n"
        "--R\r\n\r\nHTTP/1.1 502 Bad Gateway\r\n\r\n<html>502</html>\r\n"
        "--R--\r\n";
    bm_gcal_req_t reqs[3] = {{0}};
    char err[256] = "";
    ck_assert_msg(bm_batch_decode("multipart/mixed; boundary=R", body, strlen(body), reqs, 3, err,
                                  sizeof(err)) == 0,
                  "%s", err);
    ck_assert_int_eq(reqs[0].status, 403);
    ck_assert_str_eq(reqs[0].reason, "rateLimitExceeded");
    ck_assert_int_eq(reqs[1].status, 200);
    ck_assert_str_eq(reqs[1].reason, ""); /* a success has no reason, whatever its body */
    ck_assert_int_eq(reqs[2].status, 502);
    ck_assert_str_eq(reqs[2].reason, ""); /* not JSON */
    ck_assert_str_eq(reqs[2].response, "<html>502</html>");
    bm_gcal_reqs_dispose(reqs, 3);
}
END_TEST

START_TEST(batch_decode_clears_outputs_first)
{
    /* An array reused for a retry: what the last decode left must not survive,
     * neither for the answered request nor for the one left unanswered. */
    const char *body = "--R\r\nContent-ID: <response-item-1>\r\n\r\nHTTP/1.1 204 No Content"
                       "\r\n\r\n\r\n--R--\r\n";
    bm_gcal_req_t reqs[2] = {{.method = "DELETE"}, {.method = "DELETE"}};
    for (int i = 0; i < 2; i++) {
        reqs[i].status = 503;
        reqs[i].response = bm_strdup("old");
        snprintf(reqs[i].reason, sizeof(reqs[i].reason), "backendError");
    }
    char err[256] = "";
    ck_assert_int_eq(bm_batch_decode("multipart/mixed; boundary=R", body, strlen(body), reqs, 2,
                                     err, sizeof(err)),
                     BM_EINVAL);
    ck_assert_int_eq(reqs[0].status, 204);
    ck_assert_str_eq(reqs[0].response, "");
    ck_assert_str_eq(reqs[0].reason, "");
    ck_assert_int_eq(reqs[1].status, 0);
    ck_assert_ptr_null(reqs[1].response);
    ck_assert_str_eq(reqs[1].reason, "");
    /* also when the input is refused outright */
    reqs[1].response = bm_strdup("old");
    reqs[1].status = 500;
    ck_assert_int_eq(bm_batch_decode("text/plain", "x", 1, reqs, 2, err, sizeof(err)), BM_EINVAL);
    ck_assert_int_eq(reqs[0].status, 0);
    ck_assert_ptr_null(reqs[0].response);
    ck_assert_int_eq(reqs[1].status, 0);
    ck_assert_ptr_null(reqs[1].response);
    bm_gcal_reqs_dispose(reqs, 2);
}
END_TEST

START_TEST(batch_round_trip_many)
{
    /* 1000 parts: encode, turn into a response, decode */
    enum { N = BM_GCAL_MAX_BATCH };
    static bm_gcal_req_t reqs[N];
    static char paths[N][64];
    for (int i = 0; i < N; i++) {
        snprintf(paths[i], sizeof(paths[i]), "/calendars/c/events/e%04d", i);
        reqs[i] = (bm_gcal_req_t){.method = "DELETE", .path = paths[i]};
    }
    bm_buf_t enc, resp;
    bm_buf_init(&enc, 64 << 20);
    bm_buf_init(&resp, 64 << 20);
    ck_assert_int_eq(bm_batch_encode(reqs, N, "/calendar/v3", "B", &enc), 0);
    /* answer in reverse order */
    for (int i = N - 1; i >= 0; i--)
        bm_buf_printf(&resp,
                      "--R\r\nContent-Type: application/http\r\nContent-ID: <response-item-%d>"
                      "\r\n\r\nHTTP/1.1 %d X\r\n\r\n%d\r\n",
                      i + 1, i % 2 ? 204 : 404, i);
    bm_buf_puts(&resp, "--R--\r\n");
    ck_assert_int_eq(
        bm_batch_decode("multipart/mixed; boundary=R", resp.data, resp.len, reqs, N, NULL, 0), 0);
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(reqs[i].status, i % 2 ? 204 : 404);
        ck_assert_int_eq(atoi(reqs[i].response), i);
    }
    bm_gcal_reqs_dispose(reqs, N);
    bm_buf_dispose(&enc);
    bm_buf_dispose(&resp);
}
END_TEST

START_TEST(batch_decode_duplicate_content_id_is_not_given_to_another_request)
{
    /* Google answers item-1 twice and never item-2: request 2 was not answered and
     * must not receive item-1's response. */
    const char *body = "--R\r\nContent-Type: application/http\r\nContent-ID: <response-item-1>\r\n"
                       "\r\nHTTP/1.1 200 OK\r\n\r\n{\"id\":\"first\"}\r\n"
                       "--R\r\nContent-Type: application/http\r\nContent-ID: <response-item-1>\r\n"
                       "\r\nHTTP/1.1 200 OK\r\n\r\n{\"id\":\"first-again\"}\r\n"
                       "--R\r\nContent-Type: application/http\r\nContent-ID: <response-item-3>\r\n"
                       "\r\nHTTP/1.1 204 No Content\r\n\r\n\r\n"
                       "--R--\r\n";
    bm_gcal_req_t reqs[3] = {{.method = "POST"}, {.method = "DELETE"}, {.method = "PUT"}};
    char err[256] = "";
    int rc = bm_batch_decode("multipart/mixed; boundary=R", body, strlen(body), reqs, 3, err,
                             sizeof(err));
    ck_assert_int_eq(reqs[0].status, 200);
    ck_assert_str_eq(reqs[0].response, "{\"id\":\"first\"}"); /* the repeat answers nothing */
    ck_assert_int_eq(reqs[2].status, 204);
    ck_assert_msg(reqs[1].status == 0,
                  "request 2 (DELETE) got status %ld and body %s, which answer request 1",
                  reqs[1].status, reqs[1].response ? reqs[1].response : "(null)");
    ck_assert_int_eq(rc, BM_EINVAL);
    bm_gcal_reqs_dispose(reqs, 3);
}
END_TEST

Suite *make_suite(void)
{
    Suite *s = suite_create("batch");
    TCase *tc = tcase_create("encode");
    tcase_add_test(tc, batch_encode_wire_format);
    tcase_add_test(tc, batch_encode_rejects);
    tcase_add_test(tc, batch_encode_get_and_delete_with_if_match_exact_bytes);
    tcase_add_test(tc, batch_encode_appends_to_what_the_buffer_holds);
    suite_add_tcase(s, tc);
    tc = tcase_create("decode");
    tcase_add_test(tc, batch_decode_google_response);
    tcase_add_test(tc, batch_decode_out_of_order_and_lf);
    tcase_add_test(tc, batch_decode_positional);
    tcase_add_test(tc, batch_decode_missing_part);
    tcase_add_test(tc, batch_decode_duplicate_content_id_is_not_given_to_another_request);
    tcase_add_test(tc, batch_decode_unknown_content_id_answers_no_request);
    tcase_add_test(tc, batch_decode_malformed);
    tcase_add_test(tc, batch_decode_keeps_crlf_inside_a_part_body);
    tcase_add_test(tc, batch_decode_reason_only_for_failed_parts);
    tcase_add_test(tc, batch_decode_clears_outputs_first);
    tcase_add_test(tc, batch_round_trip_many);
    suite_add_tcase(s, tc);
    return s;
}

#include "check_main.h"
