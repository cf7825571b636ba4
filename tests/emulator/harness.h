/*
 * tests/emulator/harness.h: runs the real gcal-emulator binary on loopback and
 * talks HTTP to it (libcurl) and JSON (yajl_tree). Everything returned is
 * owned by the caller (h_free / yajl_tree_free); failures abort the test.
 */
#ifndef BM_TESTS_EMULATOR_HARNESS_H
#define BM_TESTS_EMULATOR_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <yajl/yajl_tree.h>

typedef struct emu_proc {
    pid_t pid;
    int port;
    char dir[256];
    char base[64];
} emu_proc_t;

typedef struct resp {
    long status;
    char *body;
    size_t len;
    char *headers; /* raw response header block */
    yajl_val json; /* NULL unless the body is JSON */
} resp_t;

/* Starts the emulator with extra args (NULL-terminated list) and waits for its port file. */
void emu_start(emu_proc_t *e, const char *const *extra_args);
/* SIGTERM, wait; returns the exit status (or 128+signal). */
int emu_stop(emu_proc_t *e);

/* method, url path (appended to e->base unless it starts with http), bearer token (or NULL),
 * body (or NULL), content type (or NULL: application/json when body), extra header (or NULL). */
resp_t *h_req(const emu_proc_t *e, const char *method, const char *path, const char *token,
              const char *body, const char *ctype, const char *extra_header);
void h_free(resp_t *r);
/* A response header's value (caller frees), NULL when absent. */
char *h_header(const resp_t *r, const char *name);

/* JSON helpers: path like "items/0/id" (numbers index arrays). */
yajl_val j_get(yajl_val v, const char *path);
const char *j_str(yajl_val v, const char *path);
long long j_int(yajl_val v, const char *path);
size_t j_len(yajl_val v, const char *path);
bool j_has(yajl_val v, const char *path);
/* error.errors[0].reason of a Google error. */
const char *j_reason(const resp_t *r);

/* Admin: creates a user, returns an access token for it (caller frees). */
char *emu_user(const emu_proc_t *e, const char *email);
/* Exchanges a refresh token for an access token. */
char *emu_access_token(const emu_proc_t *e, const char *refresh_token);
/* Percent-encodes s (caller frees). */
char *url_enc(const char *s);
/* printf into a new string. */
char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
long long counter(const emu_proc_t *e, const char *name);
void sleep_ms(long ms);

#endif
