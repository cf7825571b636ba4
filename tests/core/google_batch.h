/*
 * tests/core/google_batch.h: a batch response shaped like Google's, shared by the
 * codec tests (test_batch.c) and the client's HTTP tests (test_gcal.c).
 */
#ifndef BM_TESTS_GOOGLE_BATCH_H
#define BM_TESTS_GOOGLE_BATCH_H

static const char GOOGLE_BATCH[] =
    "--batch_nHlLLA7SZZc_AAjOXVvnmkQ\r\n"
    "Content-Type: application/http\r\n"
    "Content-ID: <response-item-1>\r\n"
    "\r\n"
    "HTTP/1.1 200 OK\r\n"
    "Content-Type: application/json; charset=UTF-8\r\n"
    "Vary: Origin\r\n"
    "Vary: X-Origin\r\n"
    "Content-Length: 45\r\n"
    "\r\n"
    "{\n \"kind\": \"calendar#event\",\n \"id\": \"bm01\"\n}\n"
    "\r\n"
    "--batch_nHlLLA7SZZc_AAjOXVvnmkQ\r\n"
    "Content-Type: application/http\r\n"
    "Content-ID: <response-item-2>\r\n"
    "\r\n"
    "HTTP/1.1 204 No Content\r\n"
    "Content-Length: 0\r\n"
    "\r\n"
    "\r\n"
    "--batch_nHlLLA7SZZc_AAjOXVvnmkQ\r\n"
    "Content-Type: application/http\r\n"
    "Content-ID: <response-item-3>\r\n"
    "\r\n"
    "HTTP/1.1 409 Conflict\r\n"
    "Content-Type: application/json; charset=UTF-8\r\n"
    "\r\n"
    "{\n \"error\": {\n  \"errors\": [\n   {\n    \"domain\": \"global\",\n    \"reason\": "
    "\"duplicate\",\n    \"message\": \"The requested identifier already exists.\"\n   }\n  ],\n"
    "  \"code\": 409,\n  \"message\": \"The requested identifier already exists.\"\n }\n}\n"
    "\r\n"
    "--batch_nHlLLA7SZZc_AAjOXVvnmkQ--\r\n";

static const char GOOGLE_CT[] = "multipart/mixed; boundary=batch_nHlLLA7SZZc_AAjOXVvnmkQ";

#endif
