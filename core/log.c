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

#define MAX_TRANSIENT 64 /* access tokens: the newest are the ones in use */
#define LINE_MAX_LEN  8192

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static FILE *log_stream;
static char **secrets; /* long-lived: refresh tokens, client secret; never dropped */
static size_t n_secrets, cap_secrets;
static char *transient[MAX_TRANSIENT];
static size_t n_transient, next_transient;

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

static bool known_locked(const char *value)
{
    for (size_t i = 0; i < n_secrets; i++)
        if (strcmp(secrets[i], value) == 0)
            return true;
    for (size_t i = 0; i < n_transient; i++)
        if (strcmp(transient[i], value) == 0)
            return true;
    return false;
}

void bm_log_add_secret(const char *value)
{
    if (value == NULL || strlen(value) < 6)
        return;
    pthread_mutex_lock(&log_mu);
    if (!known_locked(value)) {
        if (n_secrets == cap_secrets) {
            cap_secrets = cap_secrets ? cap_secrets * 2 : 16;
            secrets = bm_realloc(secrets, cap_secrets * sizeof(*secrets));
        }
        secrets[n_secrets++] = bm_strdup(value);
    }
    pthread_mutex_unlock(&log_mu);
}

void bm_log_add_transient_secret(const char *value)
{
    if (value == NULL || strlen(value) < 6)
        return;
    pthread_mutex_lock(&log_mu);
    if (!known_locked(value)) {
        free(transient[next_transient]);
        transient[next_transient] = bm_strdup(value);
        next_transient = (next_transient + 1) % MAX_TRANSIENT;
        if (n_transient < MAX_TRANSIENT)
            n_transient++;
    }
    pthread_mutex_unlock(&log_mu);
}

/* The length of the longest registered secret at src, 0 when none: a token that
 * extends a shorter registered one must not leak its tail. Caller holds log_mu. */
static size_t secret_at_locked(const char *src)
{
    size_t hit = 0;
    for (size_t i = 0; i < n_secrets + n_transient; i++) {
        const char *sec = i < n_secrets ? secrets[i] : transient[i - n_secrets];
        size_t l = strlen(sec);
        if (l > hit && strncmp(src, sec, l) == 0)
            hit = l;
    }
    return hit;
}

/* Matches on the whole of src and cuts only what is written to dst, so a secret
 * that begins before the cut is replaced as a whole. Caller holds log_mu. */
static void scrub_locked(const char *src, char *dst, size_t dstlen)
{
    size_t o = 0;
    while (*src != '\0' && o + 1 < dstlen) {
        size_t hit = secret_at_locked(src);
        if (hit > 0) {
            for (const char *m = "***"; *m != '\0' && o + 1 < dstlen; m++)
                dst[o++] = *m;
            src += hit;
        } else {
            dst[o++] = *src++;
        }
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
        if (*p == ' ' || *p == '"' || *p == '=' || (unsigned char)*p < 0x20)
            quote = 1;
    if (!quote)
        return put_cut(line, v, strlen(v));
    int rc = bm_buf_puts(line, "\"");
    for (const char *p = v; rc == BM_OK && *p != '\0'; p++) {
        if (*p == '"' || *p == '\\')
            rc = bm_buf_printf(line, "\\%c", *p);
        else if (*p == '\n')
            rc = bm_buf_puts(line, "\\n");
        else if ((unsigned char)*p < 0x20)
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
