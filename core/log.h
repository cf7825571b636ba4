/*
 * core/log.h: logfmt logging on stderr, one line per event.
 *
 *   BM_LOG(BM_LOG_INFO, BM_MSG("sync done"), BM_KS("calendar", id), BM_KI("inserted", n));
 *
 * The level is tested before any formatting. Values are quoted when needed; a
 * line longer than 8192 bytes is cut there.
 * Secrets never reach a line, not even a fragment: every value registered with
 * bm_log_add_secret() is replaced by "***" wherever it appears (message or
 * values), every byte of every registered secret found, where several overlap
 * or one extends another too; each value is scrubbed raw, before it is escaped
 * and before the line is cut. Values
 * of keys that name a secret (token, secret, password, authorization,
 * code_verifier) are masked whole.
 *
 * Ownership: nothing is kept from a bm_kv_t after BM_LOG returns; the keys and
 * strings are the caller's.
 */
#ifndef BM_CORE_LOG_H
#define BM_CORE_LOG_H

#include <stdint.h>
#include <stdio.h>

typedef enum {
    BM_LOG_DEBUG = 0,
    BM_LOG_INFO,
    BM_LOG_WARN,
    BM_LOG_ERROR,
    BM_LOG_OFF
} bm_log_level_t;

typedef struct bm_kv {
    const char *key;
    const char *s; /* string value, or NULL for an integer */
    int64_t i;
} bm_kv_t;

#define BM_MSG(m)   ((bm_kv_t){"msg", (m), 0})
#define BM_KS(k, v) ((bm_kv_t){(k), (v) != NULL ? (const char *)(v) : "", 0})
#define BM_KI(k, v) ((bm_kv_t){(k), NULL, (int64_t)(v)})

extern int bm_log_threshold;

/* The first pair is the message (BM_MSG). */
#define BM_LOG(lvl, ...)                                                                           \
    do {                                                                                           \
        if ((int)(lvl) >= bm_log_threshold) {                                                      \
            const bm_kv_t bm__kvs[] = {__VA_ARGS__};                                               \
            bm__log_emit((lvl), bm__kvs, sizeof(bm__kvs) / sizeof(bm__kvs[0]));                    \
        }                                                                                          \
    } while (0)

void bm__log_emit(bm_log_level_t lvl, const bm_kv_t *kvs, size_t n_kvs);

/* Parses "debug|info|warn|error|off"; -1 when unknown. */
int bm_log_level_parse(const char *s);
const char *bm_log_level_name(bm_log_level_t lvl);
void bm_log_set_level(bm_log_level_t lvl);
/* Sends lines to f instead of stderr (tests); NULL restores stderr. */
void bm_log_set_stream(FILE *f);
/* Appends lines to the file at path (created 0600, a symbolic link refused)
 * instead of stderr; the file is the log's, closed when it is replaced.
 * BM_EIO with the reason in err, the log unchanged. */
int bm_log_open_file(const char *path, char *err, size_t errlen);
/* Opens the log file again by its name (after logrotate moved it away: serve's
 * SIGHUP); nothing when lines go to stderr. */
int bm_log_reopen(char *err, size_t errlen);
/* Registers a secret value to be scrubbed from every later line, for the life of
 * the process (refresh tokens, the client secret). The string is copied; values
 * shorter than 6 characters are ignored (too likely to be words). Registering a
 * known value again adds nothing. */
void bm_log_add_secret(const char *value);
/* The same for a short-lived secret, scrubbed for lifetime_ms from now (longer
 * when registered again), then forgotten, so a long-running process holds the
 * secrets that live, however many that is, and no more. lifetime_ms <= 0: for
 * the life of the process. A long-lived value stays long-lived. */
void bm_log_add_secret_for(const char *value, int64_t lifetime_ms);
/* An access token valid for valid_ms more: a replaced one still works until it
 * expires, so each is scrubbed for twice its validity, and at least
 * BM_LOG_TRANSIENT_MS (twice the hour Google's live). */
#define BM_LOG_TRANSIENT_MS (2 * 3600 * 1000)
void bm_log_add_transient_secret(const char *value, int64_t valid_ms);
/* How many secrets are registered now (the expired ones gone): for tests. */
size_t bm_log_secret_count(void);
/* Copies src to dst (dstlen, cut there) with every registered secret in it replaced
 * by "***" (overlapping ones together by one). A lookup per byte of src, whatever
 * the number of secrets. */
void bm_log_scrub(const char *src, char *dst, size_t dstlen);

#endif
