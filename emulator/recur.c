/* emulator/recur.c: RRULE/EXRULE/RDATE/EXDATE expansion with time zones (libical). */
#include "emulator/emulator.h"

#include <ctype.h>
#include <libical/ical.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define HORIZON_YEARS 30

typedef struct keyset {
    int64_t *v;
    size_t n, cap;
} keyset_t;

static void ks_add(keyset_t *k, int64_t x)
{
    if (k->n == k->cap) {
        k->cap = k->cap ? k->cap * 2 : 64;
        k->v = bm_realloc(k->v, sizeof(*k->v) * k->cap);
    }
    k->v[k->n++] = x;
}

static int cmp64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static struct icaltimetype key_to_ical(int64_t key, bool all_day, void *tz)
{
    int64_t local = all_day ? key : emu_tz_from_utc(tz, key);
    int64_t days = local >= 0 ? local / 86400000LL : -((-local + 86399999LL) / 86400000LL);
    int64_t rem = (local - days * 86400000LL) / 1000;
    int y, m, d;
    emu_civil_from_days(days, &y, &m, &d);
    struct icaltimetype t = icaltime_null_time();
    t.year = y;
    t.month = m;
    t.day = d;
    if (all_day) {
        t.is_date = 1;
    } else {
        t.hour = (int)(rem / 3600);
        t.minute = (int)(rem / 60 % 60);
        t.second = (int)(rem % 60);
        t.zone = tz;
    }
    return t;
}

static int64_t ical_to_key(struct icaltimetype t, bool all_day, void *tz)
{
    int64_t floating = emu_days_from_civil(t.year, t.month, t.day) * 86400000LL;
    if (all_day)
        return floating;
    floating += ((int64_t)t.hour * 3600 + t.minute * 60 + t.second) * 1000;
    return emu_tz_to_utc(tz, floating);
}

/* Splits "NAME;P=V;...:VALUE" into upper-case name, params and value. */
static int split_line(const char *line, char *name, size_t namecap, const char **params,
                      size_t *params_len, const char **value)
{
    const char *colon = strchr(line, ':');
    if (colon == NULL)
        return BM_EINVAL;
    size_t i = 0;
    const char *p = line;
    while (p < colon && *p != ';' && i + 1 < namecap)
        name[i++] = (char)toupper((unsigned char)*p++);
    name[i] = '\0';
    *params = p;
    *params_len = (size_t)(colon - p);
    *value = colon + 1;
    return BM_OK;
}

static int rrule_expand(const char *rule_text, bool all_day, void *tz, int64_t start_key,
                        int64_t horizon, size_t max, keyset_t *out, bool *truncated)
{
    icalerror_clear_errno();
    struct icalrecurrencetype rule = icalrecurrencetype_from_string(rule_text);
    if (rule.freq == ICAL_NO_RECURRENCE || icalerrno != ICAL_NO_ERROR) {
        icalerror_clear_errno();
        return BM_EINVAL;
    }
    struct icaltimetype dtstart = key_to_ical(start_key, all_day, tz);
    icalrecur_iterator *it = icalrecur_iterator_new(rule, dtstart);
    if (it == NULL) {
        icalerror_clear_errno();
        return BM_EINVAL;
    }
    size_t n = 0;
    for (;;) {
        struct icaltimetype t = icalrecur_iterator_next(it);
        if (icaltime_is_null_time(t))
            break;
        int64_t k = ical_to_key(t, all_day, tz);
        if (k > horizon || n >= max) {
            if (rule.count == 0 && icaltime_is_null_time(rule.until))
                *truncated = true;
            else if (n >= max)
                *truncated = true;
            break;
        }
        if (k >= start_key)
            ks_add(out, k);
        n++;
    }
    icalrecur_iterator_free(it);
    icalerror_clear_errno();
    return BM_OK;
}

/* RDATE/EXDATE values: comma-separated DATE or DATE-TIME (Z, TZID= or floating). */
static int dates_parse(const char *params, size_t params_len, const char *value, bool all_day,
                       void *tz, keyset_t *out)
{
    void *vtz = tz;
    char pbuf[256];
    if (params_len >= sizeof(pbuf))
        return BM_EINVAL;
    memcpy(pbuf, params, params_len);
    pbuf[params_len] = '\0';
    char *save = NULL;
    for (char *tok = strtok_r(pbuf, ";", &save); tok != NULL; tok = strtok_r(NULL, ";", &save)) {
        if (strncasecmp(tok, "TZID=", 5) == 0) {
            vtz = emu_tz_get(tok + 5);
            if (vtz == NULL)
                return BM_EINVAL;
        }
    }
    const char *p = value;
    while (*p != '\0') {
        const char *e = strchr(p, ',');
        size_t len = e != NULL ? (size_t)(e - p) : strlen(p);
        char v[32];
        if (len < 8 || len >= sizeof(v))
            return BM_EINVAL;
        memcpy(v, p, len);
        v[len] = '\0';
        int y, m, d, H = 0, M = 0, S = 0;
        if (sscanf(v, "%4d%2d%2d", &y, &m, &d) != 3 || m < 1 || m > 12 || d < 1 || d > 31)
            return BM_EINVAL;
        int64_t floating = emu_days_from_civil(y, m, d) * 86400000LL;
        bool is_dt = len > 8;
        bool utc = false;
        if (is_dt) {
            if (v[8] != 'T' || sscanf(v + 9, "%2d%2d%2d", &H, &M, &S) != 3 ||
                (len != 15 && !(len == 16 && (v[15] == 'Z' || v[15] == 'z'))))
                return BM_EINVAL;
            utc = len == 16;
            floating += ((int64_t)H * 3600 + M * 60 + S) * 1000;
        }
        if (all_day) {
            ks_add(out, is_dt ? floating - floating % 86400000LL : floating);
        } else if (utc) {
            ks_add(out, floating);
        } else {
            ks_add(out, emu_tz_to_utc(vtz, floating));
        }
        p += len;
        if (*p == ',')
            p++;
    }
    return BM_OK;
}

int emu_recur_validate(const jv_t *lines, char *err, size_t errlen)
{
    if (lines == NULL || lines->type != JV_ARR)
        return bm_err(err, errlen, BM_EINVAL, "recurrence must be an array of strings");
    for (size_t i = 0; i < lines->n; i++) {
        const jv_t *l = lines->vals[i];
        if (l->type != JV_STR)
            return bm_err(err, errlen, BM_EINVAL, "recurrence must be an array of strings");
        char name[16];
        const char *params, *value;
        size_t plen;
        if (split_line(l->s, name, sizeof(name), &params, &plen, &value) != BM_OK ||
            (strcmp(name, "RRULE") != 0 && strcmp(name, "EXRULE") != 0 &&
             strcmp(name, "RDATE") != 0 && strcmp(name, "EXDATE") != 0))
            return bm_err(err, errlen, BM_EINVAL, "Invalid recurrence rule.");
        if (strcmp(name, "RRULE") == 0 || strcmp(name, "EXRULE") == 0) {
            icalerror_clear_errno();
            struct icalrecurrencetype r = icalrecurrencetype_from_string(value);
            bool bad = r.freq == ICAL_NO_RECURRENCE || icalerrno != ICAL_NO_ERROR;
            icalerror_clear_errno();
            if (bad)
                return bm_err(err, errlen, BM_EINVAL, "Invalid recurrence rule.");
        } else {
            keyset_t k = {0};
            int rc = dates_parse(params, plen, value, false, icaltimezone_get_utc_timezone(), &k);
            free(k.v);
            if (rc != BM_OK)
                return bm_err(err, errlen, BM_EINVAL, "Invalid recurrence rule.");
        }
    }
    return BM_OK;
}

int emu_recur_expand(const jv_t *lines, bool all_day, void *tz, int64_t start_key, size_t max,
                     int64_t **out, size_t *n_out, bool *truncated, char *err, size_t errlen)
{
    keyset_t inc = {0}, exc = {0};
    int rc = BM_OK;
    *truncated = false;
    *out = NULL;
    *n_out = 0;
    if (tz == NULL)
        tz = icaltimezone_get_utc_timezone();
    int64_t horizon = start_key + (int64_t)HORIZON_YEARS * 366 * 86400000LL;
    bool has_rrule = false;
    ks_add(&inc, start_key); /* DTSTART is always the first instance */
    for (size_t i = 0; lines != NULL && i < lines->n; i++) {
        const jv_t *l = lines->vals[i];
        if (l->type != JV_STR)
            continue;
        char name[16];
        const char *params, *value;
        size_t plen;
        if (split_line(l->s, name, sizeof(name), &params, &plen, &value) != BM_OK) {
            rc = bm_err(err, errlen, BM_EINVAL, "bad recurrence line");
            goto out;
        }
        if (strcmp(name, "RRULE") == 0) {
            has_rrule = true;
            rc = rrule_expand(value, all_day, tz, start_key, horizon, max, &inc, truncated);
        } else if (strcmp(name, "EXRULE") == 0) {
            bool t2;
            rc = rrule_expand(value, all_day, tz, start_key, horizon, max * 4, &exc, &t2);
        } else if (strcmp(name, "RDATE") == 0) {
            rc = dates_parse(params, plen, value, all_day, tz, &inc);
        } else if (strcmp(name, "EXDATE") == 0) {
            rc = dates_parse(params, plen, value, all_day, tz, &exc);
        }
        if (rc != BM_OK) {
            rc = bm_err(err, errlen, BM_EINVAL, "bad recurrence line: %s", l->s);
            goto out;
        }
    }
    (void)has_rrule;
    qsort(inc.v, inc.n, sizeof(*inc.v), cmp64);
    if (exc.n > 0)
        qsort(exc.v, exc.n, sizeof(*exc.v), cmp64);
    size_t o = 0, j = 0;
    for (size_t i = 0; i < inc.n; i++) {
        if (o > 0 && inc.v[o - 1] == inc.v[i])
            continue;
        while (j < exc.n && exc.v[j] < inc.v[i])
            j++;
        if (j < exc.n && exc.v[j] == inc.v[i])
            continue;
        if (o >= max) {
            *truncated = true;
            break;
        }
        inc.v[o++] = inc.v[i];
    }
    *out = inc.v;
    *n_out = o;
    inc.v = NULL;
out:
    free(inc.v);
    free(exc.v);
    return rc;
}
