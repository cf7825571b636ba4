/*
 * core/time.c: RFC 3339 parsing and formatting, and local wall-clock time in an
 * IANA zone (libical) to UTC. Civil calendar arithmetic after H. Hinnant.
 */
#include "core/time.h"
#include "core/util.h"

#include <libical/ical.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* ---- civil calendar arithmetic (proleptic Gregorian, H. Hinnant's algorithms) ---- */

static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

static int days_in_month(int y, int m)
{
    static const int dim[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
        return 29;
    return dim[m - 1];
}

/* Reads exactly n digits; -1 when any is not a digit. */
static int digits(const char *s, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

/* The parts of an RFC 3339 text. has_offset is false for a bare local date-time. */
typedef struct rfc3339 {
    int year, mon, day, hour, min, sec;
    bool is_date;
    bool has_offset;
    int offset_s; /* local = UTC + offset */
} rfc3339_t;

static int split_rfc3339(const char *s, rfc3339_t *t)
{
    memset(t, 0, sizeof(*t));
    if (s == NULL || strlen(s) < 10)
        return BM_EINVAL;
    t->year = digits(s, 4);
    t->mon = digits(s + 5, 2);
    t->day = digits(s + 8, 2);
    if (t->year < 0 || s[4] != '-' || t->mon < 1 || t->mon > 12 || s[7] != '-' || t->day < 1 ||
        t->day > days_in_month(t->year, t->mon))
        return BM_EINVAL;
    if (s[10] == '\0') {
        t->is_date = true;
        t->has_offset = true;
        return BM_OK;
    }
    if (s[10] != 'T' && s[10] != 't' && s[10] != ' ')
        return BM_EINVAL;
    const char *p = s + 11;
    if (strlen(p) < 8)
        return BM_EINVAL;
    t->hour = digits(p, 2);
    t->min = digits(p + 3, 2);
    t->sec = digits(p + 6, 2);
    if (t->hour < 0 || t->hour > 23 || p[2] != ':' || t->min < 0 || t->min > 59 || p[5] != ':' ||
        t->sec < 0 || t->sec > 60) /* 60: a leap second */
        return BM_EINVAL;
    p += 8;
    if (*p == '.') { /* fractions are dropped: busymirror works in whole seconds */
        p++;
        if (*p < '0' || *p > '9')
            return BM_EINVAL;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    if (*p == '\0')
        return BM_OK; /* local time: the caller needs a time zone */
    t->has_offset = true;
    if ((*p == 'Z' || *p == 'z') && p[1] == '\0')
        return BM_OK;
    if ((*p != '+' && *p != '-') || strlen(p) != 6 || p[3] != ':')
        return BM_EINVAL;
    int oh = digits(p + 1, 2), om = digits(p + 4, 2);
    if (oh < 0 || oh > 23 || om < 0 || om > 59)
        return BM_EINVAL;
    t->offset_s = (oh * 3600 + om * 60) * (*p == '-' ? -1 : 1);
    return BM_OK;
}

static int64_t rfc3339_epoch_utc(const rfc3339_t *t)
{
    return days_from_civil(t->year, t->mon, t->day) * 86400 + t->hour * 3600 + t->min * 60 +
           t->sec - t->offset_s;
}

int bm_time_parse(const char *s, int64_t *out)
{
    rfc3339_t t;
    int rc = split_rfc3339(s, &t);
    if (rc != BM_OK)
        return rc;
    if (!t.has_offset)
        return BM_EINVAL;
    *out = rfc3339_epoch_utc(&t);
    return BM_OK;
}

/* The zone's UTC offset in seconds at instant t. */
static int offset_at(icaltimezone *zone, int64_t t)
{
    struct icaltimetype tt =
        icaltime_from_timet_with_zone((time_t)t, 0, icaltimezone_get_utc_timezone());
    int is_daylight = 0;
    return icaltimezone_get_utc_offset_of_utc_time(zone, &tt, &is_daylight);
}

int64_t bm_time_local_to_utc(void *ical_zone, int year, int month, int day, int hour, int min,
                             int sec)
{
    icaltimezone *zone = ical_zone;
    int64_t base = days_from_civil(year, month, day) * 86400 + hour * 3600 + min * 60 + sec;
    /* Offsets a day either side: no zone changes twice within two days. */
    int before = offset_at(zone, base - 86400), after = offset_at(zone, base + 86400);
    int64_t u1 = base - before, u2 = base - after;
    bool ok1 = offset_at(zone, u1) == before, ok2 = offset_at(zone, u2) == after;
    if (ok1 && ok2) /* the time occurs twice: the first */
        return u1 < u2 ? u1 : u2;
    if (ok1 || ok2)
        return ok1 ? u1 : u2;
    return u1; /* skipped by a gap: the offset from before it */
}

int bm_time_parse_tz(const char *s, const char *time_zone, int64_t *out)
{
    rfc3339_t t;
    int rc = split_rfc3339(s, &t);
    if (rc != BM_OK)
        return rc;
    if (t.has_offset) {
        *out = rfc3339_epoch_utc(&t);
        return BM_OK;
    }
    if (time_zone == NULL || *time_zone == '\0')
        return BM_EINVAL;
    if (strcmp(time_zone, "UTC") == 0 || strcmp(time_zone, "Etc/UTC") == 0) {
        *out = rfc3339_epoch_utc(&t);
        return BM_OK;
    }
    icaltimezone *zone = icaltimezone_get_builtin_timezone(time_zone);
    if (zone == NULL)
        return BM_EINVAL;
    *out = bm_time_local_to_utc(zone, t.year, t.mon, t.day, t.hour, t.min, t.sec);
    return BM_OK;
}

void bm_time_format(int64_t t, char *buf, size_t len)
{
    int64_t days = t >= 0 ? t / 86400 : -((-t + 86399) / 86400);
    int64_t rem = t - days * 86400;
    int64_t y;
    int m, d;
    civil_from_days(days, &y, &m, &d);
    snprintf(buf, len, "%04lld-%02d-%02dT%02d:%02d:%02dZ", (long long)y, m, d, (int)(rem / 3600),
             (int)(rem / 60 % 60), (int)(rem % 60));
}

void bm_time_format_date(int64_t t, char *buf, size_t len)
{
    char full[40];
    bm_time_format(t, full, sizeof(full));
    char *tee = strchr(full, 'T');
    if (tee != NULL)
        *tee = '\0';
    snprintf(buf, len, "%s", full);
}
