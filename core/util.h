/*
 * core/util.h: error codes, allocation wrappers, bounded buffers, clocks.
 *
 * Allocation failure of small objects aborts (as h2o_mem_alloc does): callers
 * never check bm_malloc & co. Everything returned by bm_strdup/bm_sprintf and
 * a bm_buf_t's data is owned by the caller and released with free()/bm_buf_dispose.
 */
#ifndef BM_CORE_UTIL_H
#define BM_CORE_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Error codes: 0 is success, every failure is negative. */
enum {
    BM_OK = 0,
    BM_EINVAL = -1,     /* bad input (config, argument, malformed data) */
    BM_EIO = -2,        /* file or network I/O failed */
    BM_ESTORE = -3,     /* SQLite failed */
    BM_ENOTFOUND = -4,  /* no such account, calendar, row */
    BM_EEXIST = -5,     /* already there */
    BM_EBUSY = -6,      /* a lease is held by someone else */
    BM_EGONE = -7,      /* 410: the sync token is no longer valid */
    BM_EAUTH = -8,      /* the account needs a new login (invalid_grant) */
    BM_ETRANSIENT = -9, /* worth retrying later (5xx, 429, rate limits, network) */
    BM_EAPI = -10,      /* a permanent API error (400, 403 forbidden, ...) */
    BM_ETOOBIG = -11,   /* a bounded buffer would overflow */
    BM_ECANCELED = -12, /* stopped by a signal or a deadline */
    BM_ECRYPTO = -13,   /* key missing or wrong, ciphertext corrupt */
};

/* Process exit codes (sysexits.h values where one fits). */
enum {
    BM_EXIT_OK = 0,
    BM_EXIT_FAIL = 1,
    BM_EXIT_USAGE = 2,
    BM_EXIT_UNAVAILABLE = 69,
    BM_EXIT_TEMPFAIL = 75,
    BM_EXIT_CONFIG = 78,
};

/* Short name of an error code, e.g. "transient" (a static string). */
const char *bm_strerror(int code);

void *bm_malloc(size_t n);
void *bm_calloc(size_t count, size_t n);
void *bm_realloc(void *p, size_t n);
char *bm_strdup(const char *s); /* NULL in, NULL out */
char *bm_strndup(const char *s, size_t n);
char *bm_sprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* snprintf into err[errlen] when err is not NULL; always returns `code`. */
int bm_err(char *err, size_t errlen, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/*
 * A growable byte buffer with a hard maximum. data is NUL-terminated once
 * anything was appended (NULL before). Growing aborts on out-of-memory (through
 * bm_realloc), but every append can fail: past max with BM_ETOOBIG, leaving the
 * buffer as it was, and bm_buf_printf with BM_EINVAL on a bad format. Callers
 * check each append. The buffer owns data: bm_buf_dispose frees it,
 * bm_buf_steal hands it over.
 */
typedef struct bm_buf {
    char *data;
    size_t len;
    size_t cap;
    size_t max;
    bool secret; /* set by bm_buf_init_secret() */
} bm_buf_t;

void bm_buf_init(bm_buf_t *b, size_t max);
/* The same for a buffer that holds secrets (a token request's form, a token
 * answer, a key file): every block it lets go of is wiped first (the old block on
 * growth, bm_buf_printf's scratch, the contents on reset and dispose), so growth
 * leaves no copy behind. The flag survives dispose and steal; what bm_buf_steal
 * hands over, the caller wipes. */
void bm_buf_init_secret(bm_buf_t *b, size_t max);
void bm_buf_dispose(bm_buf_t *b);
void bm_buf_reset(bm_buf_t *b);
int bm_buf_append(bm_buf_t *b, const void *p, size_t n);
int bm_buf_puts(bm_buf_t *b, const char *s);
int bm_buf_printf(bm_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Takes the data out of the buffer (caller frees; "" when nothing was appended),
 * leaving it empty. */
char *bm_buf_steal(bm_buf_t *b);

/* Zeroes p[0..n) in a way the compiler keeps, then frees p (NULL is fine). */
void bm_wipe_free(void *p, size_t n);
/* Tests only: when set, bm_wipe_free calls it with each block, after the wipe and
 * before the free (what secret buffers let go of can then be checked). */
extern void (*bm__wipe_free_hook)(const void *p, size_t n);

/* ---- codecs ---- */

/* Appends base64url of n bytes, without padding (RFC 4648 §5). */
int bm_buf_b64url(bm_buf_t *b, const void *p, size_t n);
/* Decodes unpadded base64url s into out (NUL-terminated, at most outcap bytes with
 * the NUL); *outlen gets the length. BM_EINVAL on a bad character or no room. */
int bm_b64url_decode(const char *s, char *out, size_t outcap, size_t *outlen);
/* Appends s percent-encoded: all but RFC 3986's unreserved characters. */
int bm_buf_url_encode(bm_buf_t *b, const char *s);
/* Percent-decodes s[0..len) into *out (caller frees); form: '+' is a space. Strict
 * refuses (BM_EINVAL, *out NULL) a malformed escape or an encoded NUL; otherwise
 * they are kept as they are. */
int bm_url_decode(const char *s, size_t len, bool form, bool strict, char **out);

/* Wall clock in seconds / milliseconds since the epoch; monotonic milliseconds. */
int64_t bm_now(void);
int64_t bm_now_ms(void);
int64_t bm_mono_ms(void);

/* Constant-time comparison of two NUL-terminated strings (length leaks, content doesn't). */
/* True for an https URL, or an http URL whose host is loopback (127.0.0.0/8, ::1,
 * localhost): anything else would send tokens in clear. */
bool bm_url_secure(const char *url);

int bm_consttime_streq(const char *a, const char *b);

/* Account and group names: 1..BM_NAME_MAX characters of [A-Za-z0-9._@+-], so they
 * print, paste and log as they are. BM_EINVAL with "<what> name ..." in err (the
 * bad text itself is not copied into it). */
#define BM_NAME_MAX 64
int bm_name_check(const char *what, const char *name, char *err, size_t errlen);

/* Reads a whole small file (at most max bytes) into *out (caller wipes and frees),
 * trailing whitespace stripped. It may hold a secret: every buffer it used is wiped,
 * also on failure, and no stdio buffer keeps a copy. */
int bm_read_file(const char *path, size_t max, char **out, char *err, size_t errlen);

#endif
