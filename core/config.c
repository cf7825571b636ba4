#include "core/config.h"
#include "core/log.h"
#include "core/util.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <libgen.h>
#include <libical/ical.h>
#include <locale.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#define OFF(f) offsetof(bm_config_t, f)

static bool valid_utf8(const char *s);

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
    {"serve", "stall_timeout", BM_CFG_INT, "900", OFF(serve.stall_timeout), 5, 86400, false,
     "serve: seconds a worker may spend in one job, or the renewer in one round, before it counts"
     " as stuck (the systemd watchdog is no longer fed and /readyz fails)"},
    {"admin", "listen", BM_CFG_LISTEN, "127.0.0.1:9464", OFF(admin.listen), 0, 0, false,
     "plain-HTTP admin listener: /healthz, /readyz, /metrics"},
    {"admin", "allow_remote", BM_CFG_BOOL, "false", OFF(admin.allow_remote), 0, 0, false,
     "let [admin] listen be a non-loopback address"},
    {"engine", "workers", BM_CFG_INT, "4", OFF(engine.workers), 1, 64, false,
     "sync workers (one account at a time each: a slow or failing account holds one)"},
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

#define ROFF(f) offsetof(bm_rules_t, f)

/* [group G] keys: one table as for the fixed sections; offsets into bm_rules_t. */
const bm_config_key_t bm_group_keys[] = {
    {"group G", "block_summary", BM_CFG_STRING, NULL, ROFF(block_summary), 0, 0, false,
     "title of the group's blocks; {calendar} stands for the source calendar's label"
     " (calendar set --label); unset: [sync] block_summary"},
    {"group G", "copy_title", BM_CFG_BOOL, "false", ROFF(copy_title), 0, 0, false,
     "a block takes its source event's title (the summary only; the block stays private)"},
    {"group G", "exclude_title", BM_CFG_REGEX, NULL, ROFF(exclude_title), 0, 0, false,
     "events whose title matches this POSIX extended regex (case-insensitive) are not mirrored"},
    {"group G", "include_title", BM_CFG_REGEX, NULL, ROFF(include_title), 0, 0, false,
     "when set, only events whose title matches this regex are mirrored"},
    {"group G", "event_types", BM_CFG_ETYPES, "default,outOfOffice,focusTime,fromGmail",
     ROFF(event_types), 0, 0, false,
     "event types that make a person busy (workingLocation may be added; birthday never)"},
    {"group G", "all_day", BM_CFG_BOOL, "true", ROFF(all_day), 0, 0, false,
     "false: all-day events are not mirrored"},
    {"group G", "tentative", BM_CFG_BOOL, "true", ROFF(tentative), 0, 0, false,
     "false: events answered maybe, or whose status is tentative, are not mirrored"},
    {"group G", "unanswered", BM_CFG_BOOL, "true", ROFF(unanswered), 0, 0, false,
     "false: invitations not answered yet (needsAction) are not mirrored"},
    {"group G", "working_hours", BM_CFG_HOURS, NULL, ROFF(working_hours), 0, 0, false,
     "e.g. Mon-Fri 08:00-18:00 (clauses joined by ;, days and times by ,): timed events"
     " that do not overlap these hours are not mirrored"},
    {"group G", "time_zone", BM_CFG_ZONE, NULL, ROFF(time_zone), 0, 0, false,
     "IANA zone working_hours is read in; unset: the source calendar's zone"},
    {"group G", "buffer_before", BM_CFG_INT, "0", ROFF(buffer_before), 0, 1440, false,
     "minutes added before each timed block (travel time; all-day blocks never)"},
    {"group G", "buffer_after", BM_CFG_INT, "0", ROFF(buffer_after), 0, 1440, false,
     "minutes added after each timed block"},
    {"group G", "skip_shared_events", BM_CFG_BOOL, "true", ROFF(skip_shared_events), 0, 0, false,
     "no block in a target that holds the same meeting itself (same iCalUID)"},
};
const size_t bm_group_n_keys = sizeof(bm_group_keys) / sizeof(bm_group_keys[0]);
_Static_assert(sizeof(bm_group_keys) / sizeof(bm_group_keys[0]) <= 32,
               "bm_rules_t.keys_set has a bit per group key");

static const struct {
    const char *name;
    unsigned bit;
} etypes[] = {
    {"default", BM_ETYPE_DEFAULT},
    {"outOfOffice", BM_ETYPE_OUT_OF_OFFICE},
    {"focusTime", BM_ETYPE_FOCUS_TIME},
    {"fromGmail", BM_ETYPE_FROM_GMAIL},
    {"workingLocation", BM_ETYPE_WORKING_LOCATION},
    {"birthday", BM_ETYPE_BIRTHDAY},
};

unsigned bm_config_event_type_bit(const char *name)
{
    if (name == NULL)
        return BM_ETYPE_DEFAULT;
    for (size_t i = 0; i < sizeof(etypes) / sizeof(etypes[0]); i++)
        if (strcmp(name, etypes[i].name) == 0)
            return etypes[i].bit;
    return 0;
}

void bm_config_format_event_types(unsigned mask, char *buf, size_t len)
{
    size_t n = 0;
    if (len == 0)
        return;
    buf[0] = '\0';
    for (size_t i = 0; i < sizeof(etypes) / sizeof(etypes[0]); i++)
        if ((mask & etypes[i].bit) != 0 && n < len)
            n += (size_t)snprintf(buf + n, len - n, "%s%s", n > 0 ? "," : "", etypes[i].name);
}

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

bool bm_config_valid_utf8(const char *s)
{
    return valid_utf8(s);
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

/* Compiles and runs regexes in a UTF-8 locale when there is one (thread-local,
 * so nothing else sees it): case-insensitivity and "." then work on characters
 * beyond ASCII. Without one, bytes match bytes. */
static locale_t utf8_locale(void)
{
    static locale_t loc;
    static bool tried;
    if (!__atomic_load_n(&tried, __ATOMIC_ACQUIRE)) {
        locale_t l = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
        locale_t expected = (locale_t)0;
        if (l != (locale_t)0 && !__atomic_compare_exchange_n(&loc, &expected, l, false,
                                                             __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
            freelocale(l); /* another thread won */
        __atomic_store_n(&tried, true, __ATOMIC_RELEASE);
    }
    return __atomic_load_n(&loc, __ATOMIC_ACQUIRE);
}

bool bm_regex_match(const bm_regex_t *r, const char *s)
{
    char head[BM_REGEX_TITLE_MAX + 1];
    size_t len = s != NULL ? strlen(s) : 0;
    if (len > BM_REGEX_TITLE_MAX) { /* cut at a character: the matcher's time grows with it */
        len = BM_REGEX_TITLE_MAX;
        while (len > 0 && ((unsigned char)s[len] & 0xc0) == 0x80)
            len--;
        memcpy(head, s, len);
        head[len] = '\0';
        s = head;
    }
    locale_t l = utf8_locale(), old = (locale_t)0;
    if (l != (locale_t)0)
        old = uselocale(l);
    bool m = regexec(&r->re, s != NULL ? s : "", 0, NULL, 0) == 0;
    if (l != (locale_t)0)
        uselocale(old);
    return m;
}

/* A number of an interval "{m,n}" at *p (advanced), capped: 0..100000. */
static int64_t interval_bound(const char **p)
{
    int64_t v = 0;
    while (**p >= '0' && **p <= '9') {
        if (v < 100000)
            v = v * 10 + (**p - '0');
        (*p)++;
    }
    return v;
}

/*
 * How many more atoms than it is written with an ERE becomes once its bounded
 * repetitions are expanded, as glibc's regcomp does ("(a{1,255}){1,255}" is
 * 65,024 more): an upper bound read from the text alone (every "{m,n}"
 * copies what it repeats n times, "{m,}" m + 1 times, glibc's "{,n}" n
 * times; alternatives add up).
 * What glibc's matcher costs grows with that size times the title's length:
 * measured, "(a{1,255}){1,255}b" takes 2.6 s and 218 MB on a 100-byte title.
 */
static int64_t regex_expansion(const char *rx)
{
    typedef struct {
        int64_t size, last;
    } level_t;
    size_t depth = 0, cap = strlen(rx) + 2;
    level_t *lv = bm_calloc(cap, sizeof(*lv));
    int64_t atoms = 0;
    const int64_t big = INT64_C(1) << 40;
    for (const char *p = rx; *p != '\0';) {
        int64_t item = -1; /* the size of an atom just read; -1: not an atom */
        if (*p == '\\') {
            p += p[1] != '\0' ? 2 : 1;
            item = 1;
        } else if (*p == '[') { /* a bracket expression: one atom */
            p++;
            if (*p == '^')
                p++;
            if (*p == ']')
                p++;
            while (*p != '\0' && *p != ']') {
                if (*p == '[' && (p[1] == ':' || p[1] == '=' || p[1] == '.')) {
                    char close = p[1];
                    p += 2;
                    while (*p != '\0' && !(*p == close && p[1] == ']'))
                        p++;
                    p += *p != '\0' ? 2 : 0;
                } else {
                    p++;
                }
            }
            p += *p == ']';
            item = 1;
        } else if (*p == '(') {
            p++;
            if (depth + 1 < cap)
                lv[++depth] = (level_t){0, 0};
            continue;
        } else if (*p == ')' && depth > 0) {
            p++;
            item = lv[depth--].size;
            atoms--; /* the group is not an atom of its own */
        } else if (*p == '|') {
            p++;
            lv[depth].last = 0;
            continue;
        } else if (*p == '{' && ((p[1] >= '0' && p[1] <= '9') || p[1] == ',')) { /* {,n}: GNU */
            const char *q = p + 1;
            int64_t m = interval_bound(&q), n = m;
            bool open = false;
            if (*q == ',') {
                q++;
                open = !(*q >= '0' && *q <= '9');
                n = open ? m + 1 : interval_bound(&q);
            }
            if (*q == '}') {
                int64_t rep = n > 0 ? n : 1, l = lv[depth].last;
                lv[depth].size += l * (rep - 1) < big ? l * (rep - 1) : big;
                lv[depth].last = l * rep < big ? l * rep : big;
                if (lv[depth].size > big)
                    lv[depth].size = big;
                p = q + 1;
                continue;
            }
            p++;
            item = 1; /* a '{' that is no interval stands for itself */
        } else {
            p++;
            item = 1;
        }
        atoms++;
        lv[depth].size = lv[depth].size + item < big ? lv[depth].size + item : big;
        lv[depth].last = item;
    }
    while (depth > 0) { /* an unclosed group: regcomp refuses it anyway */
        int64_t g = lv[depth--].size;
        lv[depth].size += g;
    }
    int64_t extra = lv[0].size - atoms;
    free(lv);
    return extra > 0 ? extra : 0;
}

static int parse_regex(const bm_config_key_t *k, const char *sect, const char *value,
                       bm_regex_t *out, char *err, size_t errlen)
{
    if (regex_expansion(value) > BM_REGEX_EXPANSION_MAX)
        return bm_err(err, errlen, BM_EINVAL,
                      "[%s] %s: \"%s\" is too costly to match: its bounded repetitions "
                      "({m,n}) expand to more than %d copies",
                      sect, k->name, value, BM_REGEX_EXPANSION_MAX);
    regex_t re;
    locale_t l = utf8_locale(), old = (locale_t)0;
    if (l != (locale_t)0)
        old = uselocale(l);
    int r = regcomp(&re, value, REG_EXTENDED | REG_ICASE | REG_NOSUB);
    char why[128] = "";
    if (r != 0) {
        regerror(r, &re, why, sizeof(why));
        regfree(&re);
    }
    if (l != (locale_t)0)
        uselocale(old);
    if (r != 0)
        return bm_err(err, errlen, BM_EINVAL, "[%s] %s: \"%s\" is not a POSIX extended regex: %s",
                      sect, k->name, value, why);
    if (out->text != NULL)
        regfree(&out->re);
    free(out->text);
    out->text = bm_strdup(value);
    out->re = re;
    return BM_OK;
}

static int parse_etypes(const bm_config_key_t *k, const char *sect, const char *value,
                        unsigned *out, char *err, size_t errlen)
{
    unsigned mask = 0;
    int rc = BM_OK;
    char *copy = bm_strdup(value), *save = NULL;
    for (char *t = strtok_r(copy, ",", &save); t != NULL; t = strtok_r(NULL, ",", &save)) {
        while (*t == ' ' || *t == '\t')
            t++;
        size_t n = strlen(t);
        while (n > 0 && (t[n - 1] == ' ' || t[n - 1] == '\t'))
            t[--n] = '\0';
        unsigned bit = bm_config_event_type_bit(t);
        if (bit == BM_ETYPE_BIRTHDAY) {
            rc = bm_err(err, errlen, BM_EINVAL, "[%s] %s: birthday events never make anyone busy",
                        sect, k->name);
            goto out;
        }
        if (bit == 0) {
            rc = bm_err(err, errlen, BM_EINVAL,
                        "[%s] %s: \"%s\" is not one of default, outOfOffice, focusTime, "
                        "fromGmail, workingLocation",
                        sect, k->name, t);
            goto out;
        }
        mask |= bit;
    }
    if (mask == 0)
        rc = bm_err(err, errlen, BM_EINVAL, "[%s] %s: no event type given", sect, k->name);
    else
        *out = mask;
out:
    free(copy);
    return rc;
}

static int day_index(const char *p)
{
    static const char *const days[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};
    for (int i = 0; i < 7; i++)
        if (strncasecmp(p, days[i], 3) == 0)
            return i;
    return -1;
}

/* "HH:MM" at *p (advanced), 00:00..24:00, as minutes; -1 when malformed. */
static int parse_hhmm(const char **p)
{
    const char *s = *p;
    if (!isdigit((unsigned char)s[0]) || !isdigit((unsigned char)s[1]) || s[2] != ':' ||
        !isdigit((unsigned char)s[3]) || !isdigit((unsigned char)s[4]))
        return -1;
    int h = (s[0] - '0') * 10 + (s[1] - '0'), m = (s[3] - '0') * 10 + (s[4] - '0');
    if (h > 24 || m > 59 || (h == 24 && m != 0))
        return -1;
    *p = s + 5;
    return h * 60 + m;
}

/* One clause "DAYS TIMES" into w; false when malformed (why says what). */
static bool parse_clause(const char *c, bm_work_hours_t *w, const char **why)
{
    bool days[7] = {false};
    const char *p = c;
    for (;;) { /* days */
        int a = day_index(p), b;
        if (a < 0) {
            *why = "expected a day (Mon, Tue, Wed, Thu, Fri, Sat, Sun)";
            return false;
        }
        p += 3;
        b = a;
        if (*p == '-') {
            b = day_index(p + 1);
            if (b < 0) {
                *why = "expected a day after '-'";
                return false;
            }
            p += 4;
        }
        for (int d = a;; d = (d + 1) % 7) {
            days[d] = true;
            if (d == b)
                break;
        }
        if (*p != ',')
            break;
        p++;
    }
    if (*p != ' ' && *p != '\t') {
        *why = "expected a blank between the days and the times";
        return false;
    }
    while (*p == ' ' || *p == '\t')
        p++;
    for (;;) { /* times */
        int s = parse_hhmm(&p), e = -1;
        if (s >= 0 && *p == '-') {
            p++;
            e = parse_hhmm(&p);
        }
        if (s < 0 || e < 0) {
            *why = "expected HH:MM-HH:MM";
            return false;
        }
        if (e <= s) {
            *why = "a time range must end after it starts (24:00 for midnight)";
            return false;
        }
        for (int d = 0; d < 7; d++) {
            if (!days[d])
                continue;
            if (w->n[d] == BM_WORK_MAX) {
                *why = "too many time ranges for one day";
                return false;
            }
            w->iv[d][w->n[d]].start = (short)s;
            w->iv[d][w->n[d]].end = (short)e;
            w->n[d]++;
        }
        if (*p != ',')
            break;
        p++;
    }
    while (*p == ' ' || *p == '\t')
        p++;
    if (*p != '\0') {
        *why = "unexpected text after the times";
        return false;
    }
    return true;
}

static int parse_hours(const bm_config_key_t *k, const char *sect, const char *value,
                       bm_work_hours_t *out, char *err, size_t errlen)
{
    bm_work_hours_t w;
    memset(&w, 0, sizeof(w));
    const char *why = NULL;
    char *copy = bm_strdup(value), *save = NULL;
    bool ok = true, any = false;
    for (char *c = strtok_r(copy, ";", &save); ok && c != NULL; c = strtok_r(NULL, ";", &save)) {
        while (*c == ' ' || *c == '\t')
            c++;
        size_t n = strlen(c);
        while (n > 0 && (c[n - 1] == ' ' || c[n - 1] == '\t'))
            c[--n] = '\0';
        ok = parse_clause(c, &w, &why);
        any = true;
    }
    free(copy);
    if (!any && ok) {
        ok = false;
        why = "expected e.g. Mon-Fri 08:00-18:00";
    }
    if (!ok)
        return bm_err(err, errlen, BM_EINVAL, "[%s] %s: \"%s\": %s", sect, k->name, value, why);
    free(out->text);
    w.text = bm_strdup(value);
    *out = w;
    return BM_OK;
}

/* Whether libical knows zone (its builtin database, or UTC). */
static bool known_zone(const char *zone)
{
    return strcmp(zone, "UTC") == 0 || strcmp(zone, "Etc/UTC") == 0 ||
           icaltimezone_get_builtin_timezone(zone) != NULL;
}

/* Validates and stores one value into base (a bm_config_t, or a bm_rules_t for
 * group keys). err gets "[sect] key: problem". */
static int set_key(void *cfg, const bm_config_key_t *k, const char *sect, const char *value,
                   const char *cfg_file, char *err, size_t errlen)
{
    char *base = (char *)cfg;
    if (sect == NULL)
        sect = k->section;
    if (k->type >= BM_CFG_REGEX && !valid_utf8(value))
        return bm_err(err, errlen, BM_EINVAL, "[%s] %s: not UTF-8 text", sect, k->name);
    switch (k->type) {
    case BM_CFG_REGEX: {
        bm_regex_t *r = (bm_regex_t *)(base + k->offset);
        if (value[0] == '\0') { /* empty: unset */
            if (r->text != NULL)
                regfree(&r->re);
            free(r->text);
            r->text = NULL;
            return BM_OK;
        }
        return parse_regex(k, sect, value, r, err, errlen);
    }
    case BM_CFG_ETYPES:
        return parse_etypes(k, sect, value, (unsigned *)(base + k->offset), err, errlen);
    case BM_CFG_HOURS: {
        bm_work_hours_t *w = (bm_work_hours_t *)(base + k->offset);
        if (value[0] == '\0') {
            free(w->text);
            memset(w, 0, sizeof(*w));
            return BM_OK;
        }
        return parse_hours(k, sect, value, w, err, errlen);
    }
    case BM_CFG_ZONE:
        if (value[0] != '\0' && !known_zone(value))
            return bm_err(err, errlen, BM_EINVAL, "[%s] %s: \"%s\" is not a known IANA time zone",
                          sect, k->name, value);
        break;
    default:
        break;
    }
    switch (k->type) {
    case BM_CFG_INT: {
        char *end;
        errno = 0;
        long v = strtol(value, &end, 10);
        if (errno != 0 || end == value || *end != '\0' || v < k->min || v > k->max)
            return bm_err(err, errlen, BM_EINVAL,
                          "[%s] %s: \"%s\" is not a whole number from %ld to %ld", sect, k->name,
                          value, k->min, k->max);
        *(int *)(base + k->offset) = (int)v;
        return BM_OK;
    }
    case BM_CFG_BOOL:
        if (parse_bool(value, (bool *)(base + k->offset)) != 0)
            return bm_err(err, errlen, BM_EINVAL, "[%s] %s: \"%s\" is not true or false", sect,
                          k->name, value);
        return BM_OK;
    case BM_CFG_LEVEL: {
        int l = bm_log_level_parse(value);
        if (l < 0)
            return bm_err(err, errlen, BM_EINVAL,
                          "[%s] %s: \"%s\" is not one of debug, info, warn, error, off", sect,
                          k->name, value);
        *(int *)(base + k->offset) = l;
        return BM_OK;
    }
    case BM_CFG_URL:
        if (strncmp(value, "http://", 7) != 0 && strncmp(value, "https://", 8) != 0)
            return bm_err(err, errlen, BM_EINVAL, "[%s] %s: \"%s\" is not an http(s) URL", sect,
                          k->name, value);
        if (!bm_url_secure(value))
            return bm_err(err, errlen, BM_EINVAL,
                          "[%s] %s: \"%s\" must use https (plain http only to a loopback host)",
                          sect, k->name, value);
        break;
    case BM_CFG_LISTEN: {
        const char *colon = strrchr(value, ':');
        char *end;
        long port = colon != NULL ? strtol(colon + 1, &end, 10) : -1;
        if (colon == NULL || colon == value || colon[1] == '\0' || *end != '\0' || port < 0 ||
            port > 65535)
            return bm_err(err, errlen, BM_EINVAL, "[%s] %s: \"%s\" is not host:port", sect, k->name,
                          value);
        break;
    }
    case BM_CFG_REGEX:
    case BM_CFG_ETYPES:
    case BM_CFG_HOURS:
        return BM_OK; /* done above */
    case BM_CFG_ZONE:
        break;
    case BM_CFG_STRING:
    case BM_CFG_PATH:
        if (value[0] == '\0' && k->type == BM_CFG_PATH)
            return bm_err(err, errlen, BM_EINVAL, "[%s] %s: empty path", sect, k->name);
        if (!valid_utf8(value)) /* it reaches Google in JSON */
            return bm_err(err, errlen, BM_EINVAL, "[%s] %s: not UTF-8 text", sect, k->name);
        break;
    }
    char **slot = (char **)(base + k->offset);
    free(*slot);
    if (k->type == BM_CFG_ZONE && value[0] == '\0')
        *slot = NULL; /* empty: unset */
    else
        *slot = k->type == BM_CFG_PATH ? resolve_path(value, cfg_file) : bm_strdup(value);
    return BM_OK;
}

static void rules_init(bm_rules_t *r, const char *group, int line)
{
    memset(r, 0, sizeof(*r));
    r->group = group != NULL ? bm_strdup(group) : NULL;
    r->line = line;
    for (size_t i = 0; i < bm_group_n_keys; i++) {
        const bm_config_key_t *k = &bm_group_keys[i];
        if (k->def != NULL && set_key(r, k, NULL, k->def, NULL, NULL, 0) != BM_OK)
            abort(); /* the table's own defaults must validate */
    }
}

static void rules_dispose(bm_rules_t *r)
{
    free(r->group);
    free(r->block_summary);
    free(r->time_zone);
    free(r->working_hours.text);
    bm_regex_t *res[] = {&r->exclude_title, &r->include_title};
    for (size_t i = 0; i < 2; i++) {
        if (res[i]->text != NULL)
            regfree(&res[i]->re);
        free(res[i]->text);
    }
    memset(r, 0, sizeof(*r));
}

void bm_config_init(bm_config_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    for (size_t i = 0; i < bm_config_n_keys; i++) {
        const bm_config_key_t *k = &bm_config_keys[i];
        if (k->def != NULL && set_key(cfg, k, NULL, k->def, NULL, NULL, 0) != BM_OK)
            abort(); /* the table's own defaults must validate */
    }
    rules_init(&cfg->rules_default, NULL, 0);
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
    rules_dispose(&cfg->rules_default);
    for (size_t i = 0; i < cfg->n_groups; i++)
        rules_dispose(&cfg->groups[i]);
    free(cfg->groups);
    cfg->groups = NULL;
    cfg->n_groups = 0;
}

const bm_rules_t *bm_config_rules(const bm_config_t *cfg, const char *group)
{
    for (size_t i = 0; group != NULL && i < cfg->n_groups; i++)
        if (strcmp(cfg->groups[i].group, group) == 0)
            return &cfg->groups[i];
    return &cfg->rules_default;
}

/* The group of a "group NAME" section, or NULL (err set) when NAME is not a
 * group name. */
static const char *group_of(const char *section)
{
    return strncmp(section, "group ", 6) == 0 ? section + 6 : NULL;
}

/* A new [group NAME] section: BM_EEXIST when it is there already. */
static int group_add(bm_config_t *cfg, const char *name, int line, char *err, size_t errlen)
{
    char why[160];
    if (bm_name_check("group", name, why, sizeof(why)) != BM_OK)
        return bm_err(err, errlen, BM_EINVAL, "[group %s]: %s", name, why);
    for (size_t i = 0; i < cfg->n_groups; i++)
        if (strcmp(cfg->groups[i].group, name) == 0)
            return bm_err(err, errlen, BM_EEXIST,
                          "[group %s]: a second section of this group "
                          "(the first is on line %d)",
                          name, cfg->groups[i].line);
    cfg->groups = bm_realloc(cfg->groups, (cfg->n_groups + 1) * sizeof(*cfg->groups));
    rules_init(&cfg->groups[cfg->n_groups++], name, line);
    return BM_OK;
}

static int group_set(bm_config_t *cfg, const char *section, const char *group, const char *name,
                     const char *value, char *err, size_t errlen)
{
    char why[160];
    size_t i = 0;
    if (bm_name_check("group", group, why, sizeof(why)) != BM_OK)
        return bm_err(err, errlen, BM_EINVAL, "[%s] %s: %s", section, name, why);
    while (i < bm_group_n_keys && strcmp(bm_group_keys[i].name, name) != 0)
        i++;
    if (i == bm_group_n_keys)
        return bm_err(err, errlen, BM_EINVAL, "[%s] %s: unknown key", section, name);
    if ((const bm_rules_t *)bm_config_rules(cfg, group) == &cfg->rules_default) {
        int rc = group_add(cfg, group, 0, err, errlen);
        if (rc != BM_OK)
            return rc;
    }
    bm_rules_t *r = (bm_rules_t *)bm_config_rules(cfg, group);
    if ((r->keys_set & (1u << i)) != 0)
        return bm_err(err, errlen, BM_EINVAL, "[%s] %s: given twice in this section", section,
                      name);
    const bm_config_key_t *k = &bm_group_keys[i];
    int rc;
    if (k->offset == ROFF(block_summary) && value[0] == '\0') { /* empty: unset */
        free(r->block_summary);
        r->block_summary = NULL;
        rc = BM_OK;
    } else {
        rc = set_key(r, k, section, value, cfg->source, err, errlen);
    }
    if (rc == BM_OK)
        r->keys_set |= 1u << i;
    return rc;
}

int bm_config_set(bm_config_t *cfg, const char *section, const char *name, const char *value,
                  char *err, size_t errlen)
{
    const char *group = group_of(section);
    if (group != NULL)
        return group_set(cfg, section, group, name, value, err, errlen);
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
    return set_key(cfg, k, NULL, value, cfg->source, err, errlen);
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

/* A section header "[name]..." seen by read_line: a [group NAME] section is
 * made here (so that an empty one counts, and a second one is refused with the
 * header's line). */
static int on_section(load_ctx_t *lc, const char *p)
{
    char name[256], msg[512];
    size_t n = strcspn(p, "]");
    while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
        n--;
    while (n > 0 && (*p == ' ' || *p == '\t')) {
        p++;
        n--;
    }
    if (n >= sizeof(name))
        n = sizeof(name) - 1;
    memcpy(name, p, n);
    name[n] = '\0';
    const char *group = group_of(name);
    if (group == NULL)
        return BM_OK;
    int rc = group_add(lc->cfg, group, lc->line, msg, sizeof(msg));
    if (rc != BM_OK)
        lc->rc = bm_err(lc->err, lc->errlen, BM_EINVAL, "%s:%d: %s", lc->path, lc->line, msg);
    return rc;
}

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
        /* echoed only when it reads as a section name: the line may hold a secret */
        bool echo =
            len <= 70 && (int)strspn(p + 1, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                            "0123456789._@+- ") == len - 1;
        lc->rc = bm_err(lc->err, lc->errlen, BM_EINVAL,
                        "%s:%d: unterminated section header%s%.*s%s (no ']')", lc->path, lc->line,
                        echo ? " '" : "", echo ? len : 0, p, echo ? "'" : "");
        return NULL;
    }
    if (*p == '[' && on_section(lc, p + 1) != BM_OK)
        return NULL;
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

static void format_value(const void *cfg, const bm_config_key_t *k, char *buf, size_t len)
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
    case BM_CFG_ETYPES:
        bm_config_format_event_types(*(const unsigned *)(base + k->offset), buf, len);
        return;
    case BM_CFG_REGEX: {
        const char *t = ((const bm_regex_t *)(base + k->offset))->text;
        snprintf(buf, len, "%s", t != NULL ? t : "");
        return;
    }
    case BM_CFG_HOURS: {
        const char *t = ((const bm_work_hours_t *)(base + k->offset))->text;
        snprintf(buf, len, "%s", t != NULL ? t : "");
        return;
    }
    default: {
        const char *s = *(char *const *)(base + k->offset);
        if (s == NULL)
            buf[0] = '\0';
        else
            snprintf(buf, len, "%s", k->secret ? "********" : s);
    }
    }
}

void bm_config_print_rules(const bm_config_t *cfg, const bm_rules_t *r, FILE *out)
{
    char val[1024];
    for (size_t i = 0; i < bm_group_n_keys; i++) {
        const bm_config_key_t *k = &bm_group_keys[i];
        if (k->offset == ROFF(block_summary) && r->block_summary == NULL)
            snprintf(val, sizeof(val), "%s", cfg->sync.block_summary);
        else
            format_value(r, k, val, sizeof(val));
        fprintf(out, "%s = %s\n", k->name, val);
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
    for (size_t i = 0; i < cfg->n_groups; i++) {
        fprintf(out, "\n[group %s]\n", cfg->groups[i].group);
        bm_config_print_rules(cfg, &cfg->groups[i], out);
    }
}

static void print_key(const bm_config_key_t *k, FILE *out)
{
    char key[64];
    snprintf(key, sizeof(key), "[%s] %s", k->section, k->name);
    char range[64] = "";
    if (k->type == BM_CFG_INT)
        snprintf(range, sizeof(range), "%ld..%ld, ", k->min, k->max);
    fprintf(out, "  %-30s %s (%sdefault: %s)\n", key, k->help, range,
            k->def != NULL ? k->def : "unset");
}

void bm_config_print_keys(FILE *out)
{
    for (size_t i = 0; i < bm_config_n_keys; i++)
        print_key(&bm_config_keys[i], out);
    for (size_t i = 0; i < bm_group_n_keys; i++)
        print_key(&bm_group_keys[i], out);
}
