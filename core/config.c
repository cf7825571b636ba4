#include "core/config.h"
#include "core/log.h"
#include "core/util.h"

#include <errno.h>
#include <ini.h>
#include <libgen.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#define OFF(f) offsetof(bm_config_t, f)

const bm_config_key_t bm_config_keys[] = {
    {"store", "path", BM_CFG_PATH, "busymirror.db", OFF(store.path), 0, 0, false,
     "SQLite database (created 0600)"},
    {"store", "key_file", BM_CFG_PATH, "busymirror.key", OFF(store.key_file), 0, 0, false,
     "AES-256 key encrypting refresh tokens at rest (created 0600 on first use)"},
    {"google", "client_id", BM_CFG_STRING, NULL, OFF(google.client_id), 0, 0, false,
     "OAuth client id"},
    {"google", "client_secret", BM_CFG_STRING, NULL, OFF(google.client_secret), 0, 0, true,
     "OAuth client secret"},
    {"google", "api_base_url", BM_CFG_URL, "https://www.googleapis.com/calendar/v3",
     OFF(google.api_base_url), 0, 0, false, "Calendar API base URL"},
    {"google", "batch_url", BM_CFG_URL, "https://www.googleapis.com/batch/calendar/v3",
     OFF(google.batch_url), 0, 0, false, "batch endpoint"},
    {"google", "token_url", BM_CFG_URL, "https://oauth2.googleapis.com/token",
     OFF(google.token_url), 0, 0, false, "OAuth token endpoint"},
    {"google", "auth_url", BM_CFG_URL, "https://accounts.google.com/o/oauth2/v2/auth",
     OFF(google.auth_url), 0, 0, false, "OAuth authorization endpoint (account login)"},
    {"google", "user_quota", BM_CFG_INT, "600", OFF(google.user_quota), 0, 1000000, false,
     "requests per minute per account busymirror keeps under (Google's quota); 0: no pacing"},
    {"google", "request_timeout", BM_CFG_INT, "30", OFF(google.request_timeout), 1, 3600, false,
     "seconds one request to Google may take before it counts as failed (and is retried)"},
    {"gateway", "listen", BM_CFG_LISTEN, "127.0.0.1:8443", OFF(gateway.listen), 0, 0, false,
     "address the push gateway listens on"},
    {"gateway", "tls_cert", BM_CFG_PATH, NULL, OFF(gateway.tls_cert), 0, 0, false,
     "certificate chain (PEM); plain HTTP behind nginx when unset"},
    {"gateway", "tls_key", BM_CFG_PATH, NULL, OFF(gateway.tls_key), 0, 0, false,
     "private key (PEM)"},
    {"gateway", "public_url", BM_CFG_URL, NULL, OFF(gateway.public_url), 0, 0, false,
     "HTTPS address Google posts notifications to"},
    {"gateway", "threads", BM_CFG_INT, "1", OFF(gateway.threads), 1, 64, false,
     "event-loop threads"},
    {"gateway", "commit_timeout_ms", BM_CFG_INT, "2000", OFF(gateway.commit_timeout_ms), 50, 60000,
     false, "a notification not committed to the queue within this many ms is answered 503"},
    {"admin", "listen", BM_CFG_LISTEN, "127.0.0.1:9464", OFF(admin.listen), 0, 0, false,
     "plain-HTTP admin listener: /healthz, /readyz, /metrics"},
    {"admin", "allow_remote", BM_CFG_BOOL, "false", OFF(admin.allow_remote), 0, 0, false,
     "let [admin] listen be a non-loopback address"},
    {"engine", "workers", BM_CFG_INT, "2", OFF(engine.workers), 1, 64, false, "sync workers"},
    {"engine", "batch_size", BM_CFG_INT, "50", OFF(engine.batch_size), 1, 1000, false,
     "requests per batch call"},
    {"engine", "debounce_ms", BM_CFG_INT, "20", OFF(engine.debounce_ms), 0, 60000, false,
     "serve: a calendar's sync starts this long after its latest notification"},
    {"engine", "max_delay_ms", BM_CFG_INT, "250", OFF(engine.max_delay_ms), 0, 600000, false,
     "serve: ... but never later than this after its first (a burst costs few listings)"},
    {"renewer", "channel_ttl", BM_CFG_INT, "604800", OFF(renewer.channel_ttl), 60, 2592000, false,
     "seconds of life asked for each watch channel (Google grants what it grants)"},
    {"renewer", "renew_before", BM_CFG_INT, "0", OFF(renewer.renew_before), 0, 2592000, false,
     "seconds before its granted expiration a channel is renewed (each channel at its own point in"
     " the last half of that margin); 0: a fifth of its granted life, at most a day"},
    {"renewer", "seam_grace", BM_CFG_INT, "600", OFF(renewer.seam_grace), 0, 86400, false,
     "a notification of a channel stopped less than this many seconds ago still syncs its "
     "calendar"},
    {"renewer", "watch_retry", BM_CFG_INT, "60", OFF(renewer.watch_retry), 1, 3600, false,
     "seconds before a refused watch is tried again (doubling, at most an hour)"},
    {"sync", "past_days", BM_CFG_INT, "7", OFF(sync.past_days), 0, 3650, false,
     "mirror events ending at most this many days ago"},
    {"sync", "future_days", BM_CFG_INT, "90", OFF(sync.future_days), 1, 3650, false,
     "mirror events starting at most this many days ahead"},
    {"sync", "block_summary", BM_CFG_STRING, "Busy", OFF(sync.block_summary), 0, 0, false,
     "title of every busy block"},
    {"sync", "respect_deleted_blocks", BM_CFG_BOOL, "false", OFF(sync.respect_deleted_blocks), 0, 0,
     false, "leave blocks a person deleted alone instead of restoring them"},
    {"sync", "skip_shared_events", BM_CFG_BOOL, "true", OFF(sync.skip_shared_events), 0, 0, false,
     "make no block in a calendar that holds the same meeting (same iCalUID) itself"},
    {"sync", "poll_interval", BM_CFG_INT, "300", OFF(sync.poll_interval), 1, 86400, false,
     "seconds between listings of a calendar, push or not (serve, poll; account set"
     " --poll-interval overrides per account)"},
    {"sync", "full_resync_hours", BM_CFG_INT, "24", OFF(sync.full_resync_hours), 1, 8760, false,
     "hours after which a calendar is listed in full again (events entering the window)"},
    {"sync", "deadline", BM_CFG_INT, "600", OFF(sync.deadline), 0, 86400, false,
     "seconds a sync may run before it stops cleanly (exit 1; sync --timeout overrides); 0: none"},
    {"log", "level", BM_CFG_LEVEL, "info", OFF(log.level), 0, 0, false,
     "debug, info, warn, error or off"},
    {"log", "file", BM_CFG_PATH, NULL, OFF(log.file), 0, 0, false,
     "append log lines to this file (created 0600; reopened on SIGHUP) instead of stderr"},
    {"log", "retention_days", BM_CFG_INT, "30", OFF(log.retention_days), 1, 3650, false,
     "days of sync and audit log kept by cleanup"},
};
const size_t bm_config_n_keys = sizeof(bm_config_keys) / sizeof(bm_config_keys[0]);

static const bm_config_key_t *find_key(const char *section, const char *name)
{
    for (size_t i = 0; i < bm_config_n_keys; i++)
        if (strcmp(bm_config_keys[i].section, section) == 0 &&
            strcmp(bm_config_keys[i].name, name) == 0)
            return &bm_config_keys[i];
    return NULL;
}

static int parse_bool(const char *v, bool *out)
{
    static const char *yes[] = {"true", "yes", "on", "1"}, *no[] = {"false", "no", "off", "0"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(v, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcasecmp(v, no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return -1;
}

/* Well-formed UTF-8 (no overlongs, surrogates or code points past U+10FFFF). */
static bool valid_utf8(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p != '\0') {
        int n = *p < 0x80           ? 0
                : (*p >> 5) == 0x6  ? 1
                : (*p >> 4) == 0xE  ? 2
                : (*p >> 3) == 0x1E ? 3
                                    : -1;
        if (n < 0)
            return false;
        uint32_t cp = n == 0 ? *p : *p & (0x3F >> n);
        for (int i = 1; i <= n; i++) {
            if ((p[i] & 0xC0) != 0x80)
                return false;
            cp = (cp << 6) | (p[i] & 0x3F);
        }
        static const uint32_t min[] = {0, 0x80, 0x800, 0x10000};
        if (cp < min[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        p += n + 1;
    }
    return true;
}

static char *resolve_path(const char *value, const char *cfg_file)
{
    if (value[0] == '/' || cfg_file == NULL)
        return bm_strdup(value);
    char *copy = bm_strdup(cfg_file);
    char *res = bm_sprintf("%s/%s", dirname(copy), value);
    free(copy);
    return res;
}

/* Validates and stores one value. err gets "[section] key: problem". */
static int set_key(bm_config_t *cfg, const bm_config_key_t *k, const char *value,
                   const char *cfg_file, char *err, size_t errlen)
{
    char *base = (char *)cfg;
    switch (k->type) {
    case BM_CFG_INT: {
        char *end;
        errno = 0;
        long v = strtol(value, &end, 10);
        if (errno != 0 || end == value || *end != '\0' || v < k->min || v > k->max)
            return bm_err(err, errlen, BM_EINVAL,
                          "[%s] %s: \"%s\" is not a whole number from %ld to %ld", k->section,
                          k->name, value, k->min, k->max);
        *(int *)(base + k->offset) = (int)v;
        return BM_OK;
    }
    case BM_CFG_BOOL:
        if (parse_bool(value, (bool *)(base + k->offset)) != 0)
            return bm_err(err, errlen, BM_EINVAL, "[%s] %s: \"%s\" is not true or false",
                          k->section, k->name, value);
        return BM_OK;
    case BM_CFG_LEVEL: {
        int l = bm_log_level_parse(value);
        if (l < 0)
            return bm_err(err, errlen, BM_EINVAL,
                          "[%s] %s: \"%s\" is not one of debug, info, warn, error, off", k->section,
                          k->name, value);
        *(int *)(base + k->offset) = l;
        return BM_OK;
    }
    case BM_CFG_URL:
        if (strncmp(value, "http://", 7) != 0 && strncmp(value, "https://", 8) != 0)
            return bm_err(err, errlen, BM_EINVAL, "[%s] %s: \"%s\" is not an http(s) URL",
                          k->section, k->name, value);
        if (!bm_url_secure(value))
            return bm_err(err, errlen, BM_EINVAL,
                          "[%s] %s: \"%s\" must use https (plain http only to a loopback host)",
                          k->section, k->name, value);
        break;
    case BM_CFG_LISTEN: {
        const char *colon = strrchr(value, ':');
        char *end;
        long port = colon != NULL ? strtol(colon + 1, &end, 10) : -1;
        if (colon == NULL || colon == value || colon[1] == '\0' || *end != '\0' || port < 0 ||
            port > 65535)
            return bm_err(err, errlen, BM_EINVAL, "[%s] %s: \"%s\" is not host:port", k->section,
                          k->name, value);
        break;
    }
    case BM_CFG_STRING:
    case BM_CFG_PATH:
        if (value[0] == '\0' && k->type == BM_CFG_PATH)
            return bm_err(err, errlen, BM_EINVAL, "[%s] %s: empty path", k->section, k->name);
        if (!valid_utf8(value)) /* it reaches Google in JSON */
            return bm_err(err, errlen, BM_EINVAL, "[%s] %s: not UTF-8 text", k->section, k->name);
        break;
    }
    char **slot = (char **)(base + k->offset);
    free(*slot);
    *slot = k->type == BM_CFG_PATH ? resolve_path(value, cfg_file) : bm_strdup(value);
    return BM_OK;
}

void bm_config_init(bm_config_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    for (size_t i = 0; i < bm_config_n_keys; i++) {
        const bm_config_key_t *k = &bm_config_keys[i];
        if (k->def != NULL && set_key(cfg, k, k->def, NULL, NULL, 0) != BM_OK)
            abort(); /* the table's own defaults must validate */
    }
}

void bm_config_dispose(bm_config_t *cfg)
{
    for (size_t i = 0; i < bm_config_n_keys; i++) {
        const bm_config_key_t *k = &bm_config_keys[i];
        bm_cfg_type_t t = k->type;
        if (t == BM_CFG_STRING || t == BM_CFG_PATH || t == BM_CFG_URL || t == BM_CFG_LISTEN) {
            char **slot = (char **)((char *)cfg + k->offset);
            free(*slot);
            *slot = NULL;
        }
    }
    free(cfg->source);
    cfg->source = NULL;
}

int bm_config_set(bm_config_t *cfg, const char *section, const char *name, const char *value,
                  char *err, size_t errlen)
{
    const bm_config_key_t *k = find_key(section, name);
    /* A line "client_secret S&=T" (no '=' after the key, one in the secret)
     * reaches us as a key "client_secret S&": name only what looks like a key
     * (every real one is lowercase letters, digits and '_'), never a secret. */
    size_t n = strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789_");
    if (k == NULL && (name[n] != '\0' || n > 40))
        return bm_err(err, errlen, BM_EINVAL,
                      "[%s] not a key name (is '=' missing after the key?); the line is not "
                      "shown: it may hold a secret",
                      section);
    if (k == NULL)
        return bm_err(err, errlen, BM_EINVAL, "[%s] %s: unknown key", section, name);
    return set_key(cfg, k, value, cfg->source, err, errlen);
}

typedef struct load_ctx {
    bm_config_t *cfg;
    const char *path;
    FILE *f;
    int line; /* Debian's inih passes no line number: the reader counts */
    char *err;
    size_t errlen;
    int rc;
} load_ctx_t;

/* Hands inih one line at a time, refusing what inih would misread: a line longer
 * than its buffer (num bytes, newline and NUL included), a NUL byte, and an
 * unterminated "[section". The error goes to lc->rc; NULL then ends the file. */
static char *read_line(char *str, int num, void *stream)
{
    load_ctx_t *lc = stream;
    size_t n = 0, max = num > 2 ? (size_t)num - 2 : 0;
    int c = lc->rc == BM_OK ? getc(lc->f) : EOF;
    if (c == EOF)
        return NULL;
    lc->line++;
    for (; c != EOF; c = getc(lc->f)) {
        if (c == '\0') {
            lc->rc = bm_err(lc->err, lc->errlen, BM_EINVAL, "%s:%d: a NUL byte: not a text file",
                            lc->path, lc->line);
            return NULL;
        }
        if (n == max && c != '\n') {
            lc->rc = bm_err(lc->err, lc->errlen, BM_EINVAL,
                            "%s:%d: line longer than %zu characters (the limit)", lc->path,
                            lc->line, max);
            return NULL;
        }
        str[n++] = (char)c;
        if (c == '\n')
            break;
    }
    str[n] = '\0';
    const char *p = str + strspn(str, " \t");
    if (*p == '[' && strchr(p, ']') == NULL) {
        int len = (int)strcspn(p, "\r\n");
        while (len > 1 && strchr(" \t", p[len - 1]) != NULL)
            len--;
        lc->rc = bm_err(lc->err, lc->errlen, BM_EINVAL,
                        "%s:%d: unterminated section header '%.*s' (no ']')", lc->path, lc->line,
                        len, p);
        return NULL;
    }
    return str;
}

static int on_ini(void *user, const char *section, const char *name, const char *value)
{
    load_ctx_t *lc = user;
    int lineno = lc->line;
    char msg[512];
    if (lc->rc != BM_OK)
        return 0;
    if (name == NULL) /* a section header with no keys yet */
        return 1;
    int rc = bm_config_set(lc->cfg, section, name, value, msg, sizeof(msg));
    if (rc != BM_OK) {
        lc->rc = bm_err(lc->err, lc->errlen, rc, "%s:%d: %s", lc->path, lineno, msg);
        return 0;
    }
    return 1;
}

int bm_config_load(bm_config_t *cfg, const char *path, char *err, size_t errlen)
{
    int rc = BM_OK;
    load_ctx_t lc = {cfg, path, NULL, 0, err, errlen, BM_OK};
    struct stat sb;
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        rc = bm_err(err, errlen, BM_EIO, "%s: cannot read: %s", path, strerror(errno));
        goto out;
    }
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        rc = bm_err(err, errlen, BM_EIO, "%s: not a regular file", path);
        goto out;
    }
    free(cfg->source);
    cfg->source = bm_strdup(path);
    lc.f = f;
    int line = ini_parse_stream(read_line, &lc, on_ini, &lc);
    if (lc.rc != BM_OK) {
        rc = lc.rc;
    } else if (line > 0) {
        rc = bm_err(err, errlen, BM_EINVAL,
                    "%s:%d: syntax error (expected [section] or key = value)", path, line);
    } else if (line < 0 || ferror(f)) {
        rc = bm_err(err, errlen, BM_EIO, "%s: cannot read", path);
    }
out:
    if (f != NULL)
        fclose(f);
    if (rc != BM_OK) {
        bm_config_dispose(cfg);
        bm_config_init(cfg);
    }
    return rc;
}

int bm_config_batch_size(const bm_config_t *cfg)
{
    int n = cfg->engine.batch_size, quota = cfg->google.user_quota;
    int burst = quota >= 6 ? quota / 6 : 1;
    return quota > 0 && burst < n ? burst : n;
}

int bm_config_check_paths(const bm_config_t *cfg, char *err, size_t errlen)
{
    const struct {
        const char *key, *path;
    } paths[] = {{"[store] path", cfg->store.path}, {"[store] key_file", cfg->store.key_file}};
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        char *copy = bm_strdup(paths[i].path);
        const char *folder = dirname(copy);
        struct stat sb;
        int rc = stat(folder, &sb) != 0 || !S_ISDIR(sb.st_mode)
                     ? bm_err(err, errlen, BM_EINVAL, "%s: %s: folder %s does not exist",
                              paths[i].key, paths[i].path, folder)
                     : BM_OK;
        free(copy);
        if (rc != BM_OK)
            return rc;
    }
    return BM_OK;
}

static void format_value(const bm_config_t *cfg, const bm_config_key_t *k, char *buf, size_t len)
{
    const char *base = (const char *)cfg;
    switch (k->type) {
    case BM_CFG_INT:
        snprintf(buf, len, "%d", *(const int *)(base + k->offset));
        return;
    case BM_CFG_BOOL:
        snprintf(buf, len, "%s", *(const bool *)(base + k->offset) ? "true" : "false");
        return;
    case BM_CFG_LEVEL:
        snprintf(buf, len, "%s", bm_log_level_name(*(const int *)(base + k->offset)));
        return;
    default: {
        const char *s = *(char *const *)(base + k->offset);
        if (s == NULL)
            buf[0] = '\0';
        else
            snprintf(buf, len, "%s", k->secret ? "********" : s);
    }
    }
}

void bm_config_print(const bm_config_t *cfg, FILE *out)
{
    const char *section = "";
    char val[1024];
    if (cfg->source != NULL)
        fprintf(out, "# from %s\n", cfg->source);
    for (size_t i = 0; i < bm_config_n_keys; i++) {
        const bm_config_key_t *k = &bm_config_keys[i];
        if (strcmp(section, k->section) != 0) {
            fprintf(out, "%s[%s]\n", i > 0 ? "\n" : "", k->section);
            section = k->section;
        }
        format_value(cfg, k, val, sizeof(val));
        fprintf(out, "%s = %s\n", k->name, val);
    }
}

void bm_config_print_keys(FILE *out)
{
    for (size_t i = 0; i < bm_config_n_keys; i++) {
        const bm_config_key_t *k = &bm_config_keys[i];
        char key[64];
        snprintf(key, sizeof(key), "[%s] %s", k->section, k->name);
        char range[64] = "";
        if (k->type == BM_CFG_INT)
            snprintf(range, sizeof(range), "%ld..%ld, ", k->min, k->max);
        fprintf(out, "  %-30s %s (%sdefault: %s)\n", key, k->help, range,
                k->def != NULL ? k->def : "unset");
    }
}
