#include "core/log.h"
#include "core/util.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

int bm_log_threshold = BM_LOG_INFO;

#define LINE_MAX_LEN 8192

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static FILE *log_stream;

static const char *level_names[] = {"debug", "info", "warn", "error", "off"};

int bm_log_level_parse(const char *s)
{
    for (int i = 0; i <= BM_LOG_OFF; i++)
        if (strcasecmp(s, level_names[i]) == 0)
            return i;
    if (strcasecmp(s, "warning") == 0)
        return BM_LOG_WARN;
    return -1;
}

const char *bm_log_level_name(bm_log_level_t lvl)
{
    return (unsigned)lvl <= BM_LOG_OFF ? level_names[lvl] : "?";
}

void bm_log_set_level(bm_log_level_t lvl)
{
    bm_log_threshold = (int)lvl;
}

void bm_log_set_stream(FILE *f)
{
    pthread_mutex_lock(&log_mu);
    log_stream = f;
    pthread_mutex_unlock(&log_mu);
}

static char *log_path; /* [log] file, or NULL: stderr */
static FILE *log_file; /* opened from log_path, owned */

/* Opens path for appending, 0600, without following a symbolic link. */
static FILE *open_log(const char *path, char *err, size_t errlen)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    FILE *f = fd >= 0 ? fdopen(fd, "a") : NULL;
    if (f == NULL) {
        bm_err(err, errlen, BM_EIO, "[log] file %s: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    setvbuf(f, NULL, _IOLBF, 0);
    return f;
}

int bm_log_open_file(const char *path, char *err, size_t errlen)
{
    FILE *f = open_log(path, err, errlen);
    if (f == NULL)
        return BM_EIO;
    pthread_mutex_lock(&log_mu);
    FILE *old = log_file;
    free(log_path);
    log_path = bm_strdup(path);
    log_file = log_stream = f;
    pthread_mutex_unlock(&log_mu);
    if (old != NULL)
        fclose(old);
    return BM_OK;
}

int bm_log_reopen(char *err, size_t errlen)
{
    pthread_mutex_lock(&log_mu);
    char *path = log_path != NULL ? bm_strdup(log_path) : NULL;
    pthread_mutex_unlock(&log_mu);
    if (path == NULL)
        return BM_OK; /* stderr: nothing to reopen */
    int rc = bm_log_open_file(path, err, errlen);
    free(path);
    return rc;
}

/* ---------------------------------------------------------------- secrets */

/*
 * The registry: every secret in one of two hash tables, found by the bytes at a
 * fixed place in it, so scrubbing a position costs one or two lookups however
 * many secrets there are. Long secrets are found by their bytes [KEY_AT,
 * KEY_AT + KEY_LEN): past the prefixes Google's tokens share ("ya29.a0A...",
 * "1//0..."), where they differ. Shorter ones by their first SECRET_MIN bytes.
 * Each chain is kept longest first, so the first match is the longest.
 * Short-lived secrets (access tokens) are also in a list by expiry and leave
 * once their life is over: the registry holds what a fleet has live, never a
 * fixed number, and does not grow with the age of the process.
 */
#define SECRET_MIN 6 /* shorter values are too likely to be words */
#define KEY_AT     8
#define KEY_LEN    8
#define LONG_MIN   (KEY_AT + KEY_LEN)

typedef struct secret {
    struct secret *next;          /* in its bucket, longest first */
    struct secret *older, *newer; /* short-lived ones, by expiry */
    int64_t expires_ms;           /* bm_mono_ms() deadline; 0: for the life of the process */
    size_t len;
    char value[];
} secret_t;

typedef struct table {
    secret_t **buckets;
    unsigned bits; /* 1 << bits buckets, or none */
    size_t n;
} table_t;

static table_t long_secrets, short_secrets;
static secret_t *oldest, *newest; /* the short-lived ones, soonest to expire first */

static size_t key_hash(const char *key, size_t n, unsigned bits)
{
    uint64_t v = 0;
    memcpy(&v, key, n);
    v *= 0x9e3779b97f4a7c15ull; /* Fibonacci hashing: the top bits are the mixed ones */
    return bits > 0 ? (size_t)(v >> (64 - bits)) : 0;
}

static table_t *table_of(size_t len)
{
    return len >= LONG_MIN ? &long_secrets : &short_secrets;
}

static secret_t **bucket_of(table_t *t, const char *value)
{
    return t == &long_secrets ? &t->buckets[key_hash(value + KEY_AT, KEY_LEN, t->bits)]
                              : &t->buckets[key_hash(value, SECRET_MIN, t->bits)];
}

static void chain_insert(table_t *t, secret_t *e)
{
    secret_t **p = bucket_of(t, e->value);
    while (*p != NULL && (*p)->len > e->len)
        p = &(*p)->next;
    e->next = *p;
    *p = e;
}

static void table_insert(table_t *t, secret_t *e)
{
    if (t->n >= ((size_t)1 << t->bits) || t->buckets == NULL) { /* load 1: double */
        secret_t **old = t->buckets;
        size_t n_old = t->buckets != NULL ? (size_t)1 << t->bits : 0;
        t->bits = t->buckets != NULL ? t->bits + 1 : 4;
        t->buckets = bm_calloc((size_t)1 << t->bits, sizeof(*t->buckets));
        for (size_t i = 0; i < n_old; i++) {
            for (secret_t *c = old[i], *next; c != NULL; c = next) {
                next = c->next;
                chain_insert(t, c);
            }
        }
        free(old);
    }
    chain_insert(t, e);
    t->n++;
}

static secret_t *find_locked(const char *value, size_t len)
{
    table_t *t = table_of(len);
    if (t->n == 0)
        return NULL;
    for (secret_t *e = *bucket_of(t, value); e != NULL; e = e->next)
        if (e->len == len && memcmp(e->value, value, len) == 0)
            return e;
    return NULL;
}

/* Puts e in the expiry list; mostly at the end (one lifetime for all). */
static void age_link(secret_t *e)
{
    secret_t *after = newest;
    while (after != NULL && after->expires_ms > e->expires_ms)
        after = after->older;
    e->older = after;
    e->newer = after != NULL ? after->newer : oldest;
    if (e->newer != NULL)
        e->newer->older = e;
    else
        newest = e;
    if (after != NULL)
        after->newer = e;
    else
        oldest = e;
}

static void age_unlink(secret_t *e)
{
    if (e->older != NULL)
        e->older->newer = e->newer;
    else
        oldest = e->newer;
    if (e->newer != NULL)
        e->newer->older = e->older;
    else
        newest = e->older;
    e->older = e->newer = NULL;
}

static void remove_locked(secret_t *e)
{
    table_t *t = table_of(e->len);
    secret_t **p = bucket_of(t, e->value);
    while (*p != e)
        p = &(*p)->next;
    *p = e->next;
    t->n--;
    if (e->expires_ms != 0)
        age_unlink(e);
    explicit_bzero(e->value, e->len);
    free(e);
}

static void expire_locked(void)
{
    int64_t now = bm_mono_ms();
    while (oldest != NULL && oldest->expires_ms <= now)
        remove_locked(oldest);
}

/* lifetime_ms 0: for the life of the process. */
static void add_locked(const char *value, int64_t lifetime_ms)
{
    size_t len = strlen(value);
    int64_t expires = lifetime_ms > 0 ? bm_mono_ms() + lifetime_ms : 0;
    expire_locked();
    secret_t *e = find_locked(value, len);
    if (e != NULL) {
        if (e->expires_ms == 0 || (expires != 0 && expires <= e->expires_ms))
            return; /* it lives as long already */
        age_unlink(e);
        e->expires_ms = expires;
        if (expires != 0)
            age_link(e);
        return;
    }
    e = bm_malloc(sizeof(*e) + len + 1);
    memset(e, 0, sizeof(*e));
    e->len = len;
    e->expires_ms = expires;
    memcpy(e->value, value, len + 1);
    table_insert(table_of(len), e);
    if (expires != 0)
        age_link(e);
}

void bm_log_add_secret(const char *value)
{
    bm_log_add_secret_for(value, 0);
}

void bm_log_add_transient_secret(const char *value, int64_t valid_ms)
{
    int64_t life = valid_ms > BM_LOG_TRANSIENT_MS / 2 ? 2 * valid_ms : BM_LOG_TRANSIENT_MS;
    bm_log_add_secret_for(value, life);
}

void bm_log_add_secret_for(const char *value, int64_t lifetime_ms)
{
    if (value == NULL || strlen(value) < SECRET_MIN)
        return;
    pthread_mutex_lock(&log_mu);
    add_locked(value, lifetime_ms > 0 ? lifetime_ms : 0);
    pthread_mutex_unlock(&log_mu);
}

size_t bm_log_secret_count(void)
{
    pthread_mutex_lock(&log_mu);
    expire_locked();
    size_t n = long_secrets.n + short_secrets.n;
    pthread_mutex_unlock(&log_mu);
    return n;
}

/* The length of the longest registered secret at s (avail bytes there), 0 when
 * none. Caller holds log_mu. */
static size_t secret_at_locked(const char *s, size_t avail)
{
    if (avail >= LONG_MIN && long_secrets.n > 0)
        for (secret_t *e = *bucket_of(&long_secrets, s); e != NULL; e = e->next)
            if (e->len <= avail && memcmp(s, e->value, e->len) == 0)
                return e->len; /* a long one is longer than any short one */
    if (avail >= SECRET_MIN && short_secrets.n > 0)
        for (secret_t *e = *bucket_of(&short_secrets, s); e != NULL; e = e->next)
            if (e->len <= avail && memcmp(s, e->value, e->len) == 0)
                return e->len;
    return 0;
}

/*
 * Copies src to dst (dstlen) with every byte that belongs to an occurrence of a
 * registered secret replaced: a run of such bytes, however many secrets overlap
 * or touch in it (a token that extends a shorter one, two that share a middle),
 * becomes one "***". Matches on the whole of src and cuts only what is written, so a
 * secret that begins before the cut is replaced as a whole. Caller holds log_mu.
 */
static void scrub_locked(const char *src, char *dst, size_t dstlen)
{
    size_t n = strlen(src), i = 0, o = 0;
    while (i < n && o + 1 < dstlen) {
        size_t hit = secret_at_locked(src + i, n - i);
        if (hit == 0) {
            dst[o++] = src[i++];
            continue;
        }
        size_t end = i + hit;
        for (size_t j = i + 1; j <= end && j < n; j++) { /* adjacent ones too */
            size_t h = secret_at_locked(src + j, n - j);
            if (j + h > end)
                end = j + h;
        }
        for (const char *m = "***"; *m != '\0' && o + 1 < dstlen; m++)
            dst[o++] = *m;
        i = end;
    }
    dst[o] = '\0';
}

void bm_log_scrub(const char *src, char *dst, size_t dstlen)
{
    if (dstlen == 0)
        return;
    pthread_mutex_lock(&log_mu);
    scrub_locked(src, dst, dstlen);
    pthread_mutex_unlock(&log_mu);
}

static int key_is_secret(const char *key)
{
    static const char *words[] = {"token", "secret", "password", "authorization", "code_verifier"};
    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
        if (strcasestr(key, words[i]) != NULL)
            return 1;
    return 0;
}

/* Appends what fits of s[0..n) to the line; BM_ETOOBIG when s was cut. */
static int put_cut(bm_buf_t *line, const char *s, size_t n)
{
    size_t room = line->max - line->len;
    int rc = bm_buf_append(line, s, n < room ? n : room);
    return rc != BM_OK ? rc : n <= room ? BM_OK : BM_ETOOBIG;
}

/* Appends an already scrubbed value, quoted and escaped when needed; stops at the
 * first append that does not fit (BM_ETOOBIG: the line is full). */
static int append_value(bm_buf_t *line, const char *v)
{
    int quote = *v == '\0';
    for (const char *p = v; *p != '\0'; p++)
        if (*p == ' ' || *p == '"' || *p == '=' || (unsigned char)*p < 0x20 || *p == 0x7f)
            quote = 1;
    if (!quote)
        return put_cut(line, v, strlen(v));
    int rc = bm_buf_puts(line, "\"");
    for (const char *p = v; rc == BM_OK && *p != '\0'; p++) {
        if (*p == '"' || *p == '\\')
            rc = bm_buf_printf(line, "\\%c", *p);
        else if (*p == '\n')
            rc = bm_buf_puts(line, "\\n");
        else if ((unsigned char)*p < 0x20 || *p == 0x7f)
            rc = bm_buf_printf(line, "\\x%02x", (unsigned char)*p);
        else
            rc = bm_buf_append(line, p, 1);
    }
    return rc == BM_OK ? bm_buf_puts(line, "\"") : rc;
}

/* Appends one pair. A string value is scrubbed raw, before it is escaped and
 * before the line is cut, so no fragment of a secret survives. Caller holds log_mu. */
static int append_pair_locked(bm_buf_t *line, const bm_kv_t *kv)
{
    int rc = bm_buf_printf(line, " %s=", kv->key);
    if (rc != BM_OK)
        return rc;
    if (kv->s == NULL)
        return bm_buf_printf(line, "%lld", (long long)kv->i);
    if (key_is_secret(kv->key))
        return bm_buf_puts(line, "***");
    /* Only the first LINE_MAX_LEN characters can reach the line. */
    size_t len = strnlen(kv->s, LINE_MAX_LEN);
    char *clean = bm_malloc(len + 1);
    scrub_locked(kv->s, clean, len + 1);
    rc = append_value(line, clean);
    free(clean);
    return rc;
}

void bm__log_emit(bm_log_level_t lvl, const bm_kv_t *kvs, size_t n_kvs)
{
    struct timespec ts = {0};
    struct tm tm = {0};
    char stamp[96];
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0 || gmtime_r(&ts.tv_sec, &tm) == NULL)
        memset(&tm, 0, sizeof(tm)); /* a line without a good time beats no line */
    snprintf(stamp, sizeof(stamp), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             (long)(ts.tv_nsec / 1000000) % 1000);

    bm_buf_t line;
    bm_buf_init(&line, LINE_MAX_LEN);
    pthread_mutex_lock(&log_mu);
    /* A pair that does not fit cuts the line there. */
    int rc = bm_buf_printf(&line, "ts=%s level=%s", stamp, bm_log_level_name(lvl));
    for (size_t i = 0; rc == BM_OK && i < n_kvs; i++)
        rc = append_pair_locked(&line, &kvs[i]);
    FILE *f = log_stream != NULL ? log_stream : stderr;
    /* Nowhere to report a failed write of the log itself: it is dropped. */
    if (line.data != NULL && fputs(line.data, f) != EOF && fputc('\n', f) != EOF)
        (void)fflush(f);
    pthread_mutex_unlock(&log_mu);
    bm_buf_dispose(&line);
}
