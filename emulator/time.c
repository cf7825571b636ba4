/* emulator/time.c: RFC 3339 / RFC 1123 / basic-format times and IANA zones (libical). */
#include "emulator/emulator.h"

#include <ctype.h>
#include <libical/ical.h>
#include <stdio.h>
#include <string.h>

/* Howard Hinnant's days_from_civil / civil_from_days. */
int64_t emu_days_from_civil(int y, int m, int d)
{
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = (unsigned)(y - era * 400);
    const unsigned doy = (153u * (unsigned)(m + (m > 2 ? -3 : 9)) + 2) / 5 + (unsigned)d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

void emu_civil_from_days(int64_t z, int *y, int *m, int *d)
{
    z += 719468;
    const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    const unsigned doe = (unsigned)(z - era * 146097);
    const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const int64_t yy = (int64_t)yoe + era * 400;
    const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const unsigned mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = (int)(yy + (*m <= 2));
}

static int digits(const char *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i]))
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

static int days_in_month(int y, int m)
{
    static const int dm[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
        return 29;
    return dm[m - 1];
}

static int parse_ymd(const char *s, int *y, int *m, int *d)
{
    if (digits(s, 4, y) || s[4] != '-' || digits(s + 5, 2, m) || s[7] != '-' || digits(s + 8, 2, d))
        return BM_EINVAL;
    if (*y < 1 || *m < 1 || *m > 12 || *d < 1 || *d > days_in_month(*y, *m))
        return BM_EINVAL;
    return BM_OK;
}

int emu_parse_date(const char *s, int64_t *ms)
{
    int y, m, d;
    if (strlen(s) != 10 || parse_ymd(s, &y, &m, &d) != BM_OK)
        return BM_EINVAL;
    *ms = emu_days_from_civil(y, m, d) * 86400000LL;
    return BM_OK;
}

int emu_parse_datetime(const char *s, int64_t *ms, bool *has_offset)
{
    int y, mo, d, H, M, S = 0, frac = 0;
    size_t len = strlen(s);
    if (len < 16 || parse_ymd(s, &y, &mo, &d) != BM_OK || (s[10] != 'T' && s[10] != 't') ||
        digits(s + 11, 2, &H) || s[13] != ':' || digits(s + 14, 2, &M))
        return BM_EINVAL;
    const char *p = s + 16;
    if (*p == ':') {
        if (digits(p + 1, 2, &S))
            return BM_EINVAL;
        p += 3;
        if (*p == '.') {
            p++;
            int n = 0, scale = 1000;
            while (isdigit((unsigned char)*p)) {
                if (n < 3) {
                    scale /= 10;
                    frac += (*p - '0') * scale;
                }
                n++;
                p++;
            }
            if (n == 0)
                return BM_EINVAL;
        }
    }
    if (H > 23 || M > 59 || S > 60)
        return BM_EINVAL;
    int64_t t = emu_days_from_civil(y, mo, d) * 86400000LL +
                ((int64_t)H * 3600 + M * 60 + (S == 60 ? 59 : S)) * 1000 + frac;
    *has_offset = true;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int oh, om;
        if (digits(p + 1, 2, &oh) || p[3] != ':' || digits(p + 4, 2, &om) || oh > 23 || om > 59)
            return BM_EINVAL;
        int64_t off = ((int64_t)oh * 60 + om) * 60000;
        t += *p == '+' ? -off : off;
        p += 6;
    } else {
        *has_offset = false;
    }
    if (*p != '\0')
        return BM_EINVAL;
    *ms = t;
    return BM_OK;
}

static void split(int64_t ms, int *y, int *mo, int *d, int *H, int *M, int *S, int *f)
{
    int64_t days = ms >= 0 ? ms / 86400000LL : -((-ms + 86399999LL) / 86400000LL);
    int64_t rem = ms - days * 86400000LL;
    emu_civil_from_days(days, y, mo, d);
    *H = (int)(rem / 3600000);
    *M = (int)(rem / 60000 % 60);
    *S = (int)(rem / 1000 % 60);
    *f = (int)(rem % 1000);
}

void emu_fmt_utc_ms(int64_t ms, char out[32])
{
    int y, mo, d, H, M, S, f;
    split(ms, &y, &mo, &d, &H, &M, &S, &f);
    snprintf(out, 32, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", y, mo, d, H, M, S, f);
}

void emu_fmt_rfc1123(int64_t ms, char out[40])
{
    static const char *wd[] = {"Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"};
    static const char *mn[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                               "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    int y, mo, d, H, M, S, f;
    split(ms, &y, &mo, &d, &H, &M, &S, &f);
    int64_t days = ms / 86400000LL;
    snprintf(out, 40, "%s, %02d %s %04d %02d:%02d:%02d GMT", wd[((days % 7) + 7) % 7], d,
             mn[mo - 1], y, H, M, S);
}

void emu_fmt_basic_utc(int64_t ms, char out[24])
{
    int y, mo, d, H, M, S, f;
    split(ms, &y, &mo, &d, &H, &M, &S, &f);
    snprintf(out, 24, "%04d%02d%02dT%02d%02d%02dZ", y, mo, d, H, M, S);
}

void emu_fmt_basic_date(int64_t floating_ms, char out[16])
{
    int y, mo, d, H, M, S, f;
    split(floating_ms, &y, &mo, &d, &H, &M, &S, &f);
    snprintf(out, 16, "%04d%02d%02d", y, mo, d);
}

void emu_fmt_date(int64_t floating_ms, char out[16])
{
    int y, mo, d, H, M, S, f;
    split(floating_ms, &y, &mo, &d, &H, &M, &S, &f);
    snprintf(out, 16, "%04d-%02d-%02d", y, mo, d);
}

/* ---------------------------------------------------------------- zones */

void *emu_tz_get(const char *name)
{
    if (name == NULL || *name == '\0')
        return NULL;
    if (strcmp(name, "UTC") == 0 || strcmp(name, "Etc/UTC") == 0 || strcmp(name, "GMT") == 0)
        return icaltimezone_get_utc_timezone();
    return icaltimezone_get_builtin_timezone(name);
}

int64_t emu_tz_to_utc(void *tz, int64_t floating_ms)
{
    if (tz == NULL)
        return floating_ms;
    int y, mo, d, H, M, S, f;
    split(floating_ms, &y, &mo, &d, &H, &M, &S, &f);
    struct icaltimetype t = icaltime_null_time();
    t.year = y;
    t.month = mo;
    t.day = d;
    t.hour = H;
    t.minute = M;
    t.second = S;
    t.is_date = 0;
    t.zone = tz;
    return (int64_t)icaltime_as_timet_with_zone(t, tz) * 1000 + f;
}

int64_t emu_tz_from_utc(void *tz, int64_t utc_ms)
{
    if (tz == NULL)
        return utc_ms;
    int64_t sec = utc_ms >= 0 ? utc_ms / 1000 : -((-utc_ms + 999) / 1000);
    int64_t f = utc_ms - sec * 1000;
    struct icaltimetype t = icaltime_from_timet_with_zone((time_t)sec, 0, tz);
    return emu_days_from_civil(t.year, t.month, t.day) * 86400000LL +
           ((int64_t)t.hour * 3600 + t.minute * 60 + t.second) * 1000 + f;
}

void emu_fmt_local(void *tz, int64_t utc_ms, char out[40])
{
    int64_t local = emu_tz_from_utc(tz, utc_ms);
    int64_t off_min = (local - utc_ms) / 60000;
    int y, mo, d, H, M, S, f;
    split(local, &y, &mo, &d, &H, &M, &S, &f);
    if (off_min == 0 && tz == NULL) {
        snprintf(out, 40, "%04d-%02d-%02dT%02d:%02d:%02dZ", y, mo, d, H, M, S);
        return;
    }
    char sign = off_min < 0 ? '-' : '+';
    if (off_min < 0)
        off_min = -off_min;
    snprintf(out, 40, "%04d-%02d-%02dT%02d:%02d:%02d%c%02d:%02d", y, mo, d, H, M, S, sign,
             (int)(off_min / 60), (int)(off_min % 60));
}
