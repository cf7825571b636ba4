/*
 * engine/plan.c: busy rules, the mirrored window (libical expansion), block
 * ids, block bodies and shapes. Pure functions, see plan.h.
 *
 * Time conventions (shared with core/event.h): every bm_evtime_t carries its
 * instant in epoch; an all-day date counts as midnight UTC of that date.
 */
#include "engine/plan.h"
#include "core/util.h"

#include <libical/ical.h>
#include <openssl/evp.h>
#include <yajl/yajl_gen.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* Upper bound on recurrence-iterator steps per event (all RRULE lines together). */
#define PLAN_MAX_STEPS 100000
/* Upper bound on RDATE/EXDATE values per event; more and we give up (in window). */
#define PLAN_MAX_DATES 10000

/* ---- busy rules --------------------------------------------------------------- */

static unsigned etype_bit(const char *type)
{
    return bm_config_event_type_bit(type); /* 0: a type Google added after us: not busy */
}

bool bm_plan_is_busy(const bm_event_t *ev, const bm_plan_opts_t *o, const char **reason)
{
    const char *why = "busy";
    const char *status = ev->status ? ev->status : "confirmed";

    if (ev->marker != NULL)
        why = "block";
    else if (strcmp(status, "tentative") == 0 && !o->tentative_is_busy)
        why = "tentative";
    else if (strcmp(status, "confirmed") != 0 && strcmp(status, "tentative") != 0)
        why = "cancelled";
    else if (ev->transparency != NULL && strcmp(ev->transparency, "transparent") == 0)
        why = "transparent";
    else if (ev->self_response != NULL && strcmp(ev->self_response, "declined") == 0)
        why = "declined";
    else if ((etype_bit(ev->event_type) & o->busy_event_types) == 0)
        why = "event_type";

    if (reason != NULL)
        *reason = why;
    return strcmp(why, "busy") == 0;
}

/* ---- window ------------------------------------------------------------------- */

static bool has_time(const bm_evtime_t *t)
{
    return t->date != NULL || t->date_time != NULL;
}

/* [s, e) against [ws, we); a zero-length event counts when its instant is inside. */
static bool overlaps(int64_t s, int64_t e, int64_t ws, int64_t we)
{
    if (e <= s)
        return s >= ws && s < we;
    return s < we && e > ws;
}

/* How a series' local wall times map to instants: an IANA zone from libical, or
 * (no or unknown timeZone) a fixed UTC offset taken from the dateTime string. */
typedef struct tzctx {
    icaltimezone *zone;
    int64_t offset; /* seconds east of UTC, used when zone is NULL */
} tzctx_t;

/* Offset of an RFC 3339 string: its wall-clock fields minus its instant. */
static int64_t wall_offset(const char *date_time, int64_t epoch)
{
    struct tm tm = {0};
    if (date_time == NULL || sscanf(date_time, "%4d-%2d-%2dT%2d:%2d:%2d", &tm.tm_year, &tm.tm_mon,
                                    &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec) != 6)
        return 0;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return (int64_t)timegm(&tm) - epoch;
}

static struct icaltimetype tt_from_utc_fields(int64_t t, bool is_date)
{
    time_t tt = (time_t)t;
    struct tm tm;
    struct icaltimetype r = icaltime_null_time();
    if (gmtime_r(&tt, &tm) == NULL)
        return r;
    r.year = tm.tm_year + 1900;
    r.month = tm.tm_mon + 1;
    r.day = tm.tm_mday;
    if (is_date) {
        r.is_date = 1;
    } else {
        r.hour = tm.tm_hour;
        r.minute = tm.tm_min;
        r.second = tm.tm_sec;
    }
    return r;
}

/* The local wall time (or date) of instant t. */
static struct icaltimetype tt_from_epoch(const tzctx_t *c, int64_t t, bool is_date)
{
    if (is_date)
        return tt_from_utc_fields(t, true);
    if (c->zone == NULL)
        return tt_from_utc_fields(t + c->offset, false); /* floating */
    struct icaltimetype r = icaltime_from_timet_with_zone((time_t)t, 0, c->zone);
    r.zone = c->zone; /* libical 3.0 leaves UTC here although the fields are local */
    return r;
}

/* The instant of tt: dates are midnight UTC, UTC values are absolute, zoned values
 * use their zone, floating ones the series' context. */
static int64_t tt_to_epoch(const tzctx_t *c, struct icaltimetype tt)
{
    if (tt.is_date || icaltime_is_utc(tt))
        return (int64_t)icaltime_as_timet(tt);
    /* Occurrences and EXDATE/RDATE values alike: one reading of local times */
    icaltimezone *zone = tt.zone != NULL ? (icaltimezone *)tt.zone : c->zone;
    if (zone != NULL)
        return bm_time_local_to_utc(zone, tt.year, tt.month, tt.day, tt.hour, tt.minute, tt.second);
    return (int64_t)icaltime_as_timet(tt) - c->offset;
}

typedef struct rdate {
    bool is_date;  /* a DATE value: matches by local date */
    int y, m, d;   /* the date as written (also for DATE-TIME values) */
    int64_t start; /* instant */
    int64_t end;   /* RDATE PERIOD end, else start + duration */
} rdate_t;

typedef struct dates {
    rdate_t *v;
    size_t n, cap;
} dates_t;

static void dates_push(dates_t *ds, rdate_t r)
{
    if (ds->n == ds->cap) {
        ds->cap = ds->cap ? ds->cap * 2 : 8;
        ds->v = bm_realloc(ds->v, ds->cap * sizeof(*ds->v));
    }
    ds->v[ds->n++] = r;
}

/* Whether line is "<name>:..." or "<name>;...:..." (case-insensitive). */
static bool line_is(const char *line, const char *name)
{
    size_t n = strlen(name);
    return strncasecmp(line, name, n) == 0 && (line[n] == ':' || line[n] == ';' || line[n] == '\0');
}

/* The value part of a content line (after the first ':' outside quotes), or NULL. */
static const char *line_value(const char *line)
{
    bool quoted = false;
    for (const char *p = line; *p; p++) {
        if (*p == '"')
            quoted = !quoted;
        else if (*p == ':' && !quoted)
            return p + 1;
    }
    return NULL;
}

/* The TZID parameter of a content line, copied into buf (empty when absent). */
static void line_tzid(const char *line, const char *value, char *buf, size_t len)
{
    buf[0] = '\0';
    const char *p = strcasestr(line, ";TZID=");
    if (p == NULL || p >= value)
        return;
    p += 6;
    if (*p == '"')
        p++;
    size_t n = strcspn(p, "\";:");
    if (n >= len)
        n = len - 1;
    memcpy(buf, p, n);
    buf[n] = '\0';
}

/*
 * Parses the values of one RDATE or EXDATE line into ds. dur is the series'
 * duration, dtstart its first start (for DATE values on a timed series).
 * Returns false when a value cannot be parsed or there are too many.
 */
static bool parse_dates(const char *line, const tzctx_t *c, struct icaltimetype dtstart,
                        int64_t dur, dates_t *ds)
{
    const char *value = line_value(line);
    if (value == NULL)
        return false;
    char tzid[128];
    line_tzid(line, value, tzid, sizeof(tzid));
    icaltimezone *zone = tzid[0] ? icaltimezone_get_builtin_timezone(tzid) : NULL;
    bool ok = true;
    char *copy = bm_strdup(value);
    char *save = NULL;
    for (char *v = strtok_r(copy, ",", &save); v != NULL; v = strtok_r(NULL, ",", &save)) {
        if (ds->n >= PLAN_MAX_DATES) {
            ok = false;
            break;
        }
        char *slash = strchr(v, '/');
        if (slash != NULL)
            *slash = '\0';
        struct icaltimetype tt = icaltime_from_string(v);
        if (icaltime_is_null_time(tt)) {
            ok = false;
            continue;
        }
        if (!tt.is_date && !icaltime_is_utc(tt) && zone != NULL)
            tt.zone = zone;
        rdate_t r = {.is_date = tt.is_date != 0};
        if (tt.is_date && !dtstart.is_date) {
            /* a DATE in a timed series: that day at the series' time of day */
            struct icaltimetype at = dtstart;
            at.year = tt.year;
            at.month = tt.month;
            at.day = tt.day;
            r.start = tt_to_epoch(c, at);
        } else {
            r.start = tt_to_epoch(c, tt);
        }
        /* The date as written (in its own zone): what a DATE match compares. */
        r.y = tt.year;
        r.m = tt.month;
        r.d = tt.day;
        r.end = r.start + dur;
        if (slash != NULL) {
            const char *e = slash + 1;
            if (e[0] == 'P' || ((e[0] == '+' || e[0] == '-') && e[1] == 'P')) {
                struct icaldurationtype d = icaldurationtype_from_string(e);
                if (icaldurationtype_is_bad_duration(d))
                    ok = false;
                else
                    r.end = r.start + icaldurationtype_as_int(d);
            } else {
                struct icaltimetype et = icaltime_from_string(e);
                if (icaltime_is_null_time(et))
                    ok = false;
                else {
                    if (!icaltime_is_utc(et) && zone != NULL)
                        et.zone = zone;
                    r.end = tt_to_epoch(c, et);
                }
            }
        }
        dates_push(ds, r);
    }
    free(copy);
    return ok;
}

/* Whether the occurrence (local time occ, instant start) is an EXDATE. */
static bool excluded(const dates_t *ex, struct icaltimetype occ, int64_t start)
{
    for (size_t i = 0; i < ex->n; i++) {
        const rdate_t *x = &ex->v[i];
        if (x->is_date || occ.is_date) {
            if (x->y == occ.year && x->m == occ.month && x->d == occ.day)
                return true;
        } else if (x->start == start) {
            return true;
        }
    }
    return false;
}

/* Any RRULE occurrence of the series in the window; *unsure when we could not tell. */
static bool rule_in_window(const char *line, const tzctx_t *c, struct icaltimetype dtstart,
                           int64_t dur, const dates_t *ex, const bm_plan_opts_t *o, long *budget,
                           bool *unsure)
{
    const char *value = line_value(line);
    if (value == NULL) {
        *unsure = true;
        return false;
    }
    struct icalrecurrencetype rule = icalrecurrencetype_from_string(value);
    /* A sub-daily rule filtered by day (BYMONTH, BYMONTHDAY, BYDAY, ...): one
     * libical step may search for centuries when the filter can never match
     * (BYMONTH=2;BYMONTHDAY=30), beyond any step budget. */
    bool sub_daily = rule.freq == ICAL_SECONDLY_RECURRENCE ||
                     rule.freq == ICAL_MINUTELY_RECURRENCE || rule.freq == ICAL_HOURLY_RECURRENCE;
    bool day_filter = rule.by_month[0] != ICAL_RECURRENCE_ARRAY_MAX ||
                      rule.by_month_day[0] != ICAL_RECURRENCE_ARRAY_MAX ||
                      rule.by_year_day[0] != ICAL_RECURRENCE_ARRAY_MAX ||
                      rule.by_week_no[0] != ICAL_RECURRENCE_ARRAY_MAX ||
                      rule.by_day[0] != ICAL_RECURRENCE_ARRAY_MAX ||
                      rule.by_set_pos[0] != ICAL_RECURRENCE_ARRAY_MAX;
    if (rule.freq == ICAL_NO_RECURRENCE || (sub_daily && day_filter)) {
        *unsure = true;
        return false;
    }
    icalrecur_iterator *it = icalrecur_iterator_new(rule, dtstart);
    if (it == NULL) {
        *unsure = true;
        return false;
    }
    bool found = false;
    for (;;) {
        if (*budget <= 0) {
            *unsure = true;
            break;
        }
        (*budget)--;
        struct icaltimetype occ = icalrecur_iterator_next(it);
        if (icaltime_is_null_time(occ))
            break;
        int64_t s = tt_to_epoch(c, occ);
        if (s >= o->window_end)
            break; /* occurrences only grow from here */
        if (!overlaps(s, s + dur, o->window_start, o->window_end) || excluded(ex, occ, s))
            continue;
        found = true;
        break;
    }
    icalrecur_iterator_free(it);
    return found;
}

static bool series_in_window(const bm_event_t *ev, const bm_plan_opts_t *o, int64_t dur)
{
    bool all_day = ev->start.date != NULL;
    tzctx_t c = {NULL, 0};
    if (!all_day) {
        if (ev->start.time_zone != NULL)
            c.zone = icaltimezone_get_builtin_timezone(ev->start.time_zone);
        if (c.zone == NULL)
            c.offset = wall_offset(ev->start.date_time, ev->start.epoch);
    }
    struct icaltimetype dtstart = tt_from_epoch(&c, ev->start.epoch, all_day);

    dates_t ex = {0}, rd = {0};
    bool found = false, unsure = false;
    long budget = PLAN_MAX_STEPS;

    for (size_t i = 0; i < ev->n_recurrence; i++) {
        const char *line = ev->recurrence[i];
        if (line == NULL)
            continue;
        /* An EXDATE we cannot read excludes nothing: we err towards busy. */
        if (line_is(line, "EXDATE"))
            (void)parse_dates(line, &c, dtstart, dur, &ex);
        else if (line_is(line, "RDATE") && !parse_dates(line, &c, dtstart, dur, &rd))
            unsure = true;
    }
    /* RFC 5545: DTSTART is always the first instance, whether or not it matches. */
    if (overlaps(ev->start.epoch, ev->start.epoch + dur, o->window_start, o->window_end) &&
        !excluded(&ex, dtstart, ev->start.epoch))
        found = true;
    for (size_t i = 0; i < rd.n && !found; i++) {
        struct icaltimetype occ = icaltime_null_time();
        occ.year = rd.v[i].y;
        occ.month = rd.v[i].m;
        occ.day = rd.v[i].d;
        occ.is_date = all_day;
        if (overlaps(rd.v[i].start, rd.v[i].end, o->window_start, o->window_end) &&
            !excluded(&ex, occ, rd.v[i].start))
            found = true;
    }
    /* EXRULE (deprecated, never written by Google's UI) is ignored: erring towards busy. */
    for (size_t i = 0; i < ev->n_recurrence && !found && !unsure; i++) {
        const char *line = ev->recurrence[i];
        if (line != NULL && line_is(line, "RRULE"))
            found = rule_in_window(line, &c, dtstart, dur, &ex, o, &budget, &unsure);
    }
    free(ex.v);
    free(rd.v);
    return found || unsure;
}

/*
 * Contract details beyond plan.h:
 * - Intervals are [start, end) against [window_start, window_end). A zero-length
 *   event counts when its instant is inside.
 * - All-day events use their dates as midnight UTC, end date exclusive: an event
 *   on the UTC day of window_start counts (it ends after window_start), one on
 *   the UTC day of window_end counts unless window_end is exactly that midnight.
 *   A user far from UTC may see an all-day event at the edge up to a day off.
 * - An exception instance counts if its new time or its originalStartTime slot
 *   is inside: the block series occupies the original slot until overridden.
 * - No start at all (a bare deletion, a cancelled instance without
 *   originalStartTime) counts as inside: the engine must see deletions.
 * - Series masters: DTSTART (always an instance, RFC 5545), every RRULE
 *   expanded by libical in start.timeZone (no or unknown zone: the fixed offset
 *   of start.dateTime), RDATE values (DATE, DATE-TIME, PERIOD), minus EXDATE
 *   values. At most PLAN_MAX_STEPS iterator steps; expansion stops at the first
 *   occurrence starting at or after window_end.
 * - When we cannot tell (unparsable RRULE or RDATE, a sub-daily RRULE filtered
 *   by day, step budget exhausted) the answer is true: mirroring a commitment
 *   too many beats losing one. An
 *   unreadable EXDATE value and EXRULE lines are ignored for the same reason.
 */
bool bm_plan_in_window(const bm_event_t *ev, const bm_plan_opts_t *o)
{
    int64_t ws = o->window_start, we = o->window_end;
    bool instance = ev->recurring_event_id != NULL;
    bool orig = instance && has_time(&ev->original_start);

    if (!has_time(&ev->start)) {
        /* A cancelled instance carries only originalStartTime; a bare deletion
         * nothing at all, and the engine must see it to remove blocks. */
        if (orig) {
            int64_t s = ev->original_start.epoch;
            int64_t e = s + (ev->original_start.date ? 86400 : 0);
            return overlaps(s, e, ws, we);
        }
        return true;
    }
    int64_t dur = 0;
    if (has_time(&ev->end) && ev->end.epoch > ev->start.epoch)
        dur = ev->end.epoch - ev->start.epoch;
    else if (ev->start.date != NULL)
        dur = 86400;

    if (ev->n_recurrence == 0 || instance) {
        if (overlaps(ev->start.epoch, ev->start.epoch + dur, ws, we))
            return true;
        /* A moved occurrence also matters where it was: the block series
         * occupies that slot until an override moves it away. */
        return orig && overlaps(ev->original_start.epoch, ev->original_start.epoch + dur, ws, we);
    }
    return series_in_window(ev, o, dur);
}

/* ---- group rules: working hours, titles, buffers -------------------------------- */

static int64_t days_from_civil_(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days_(int64_t z, int *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = (int)((int64_t)yoe + era * 400 + (*m <= 2));
}

static icaltimezone *zone_named(const char *name)
{
    icaltimezone *z = NULL;
    if (name != NULL && strcmp(name, "UTC") != 0 && strcmp(name, "Etc/UTC") != 0)
        z = icaltimezone_get_builtin_timezone(name);
    return z != NULL ? z : icaltimezone_get_utc_timezone();
}

static bool has_hours(const bm_plan_opts_t *o)
{
    return o->rules != NULL && o->rules->working_hours.text != NULL;
}

/* The zone working hours are read in: the rules' time_zone, else the source
 * calendar's, else UTC. */
static icaltimezone *hours_zone(const bm_plan_opts_t *o)
{
    return zone_named(o->rules->time_zone != NULL ? o->rules->time_zone : o->time_zone);
}

/* Every local day that [s, e] touches, from the day before (an interval is
 * read on its own local date, DST-correct through bm_time_local_to_utc). */
static bool hours_overlap(const bm_work_hours_t *w, icaltimezone *z, int64_t s, int64_t e)
{
    if (e < s)
        e = s;
    struct icaltimetype ls = icaltime_from_timet_with_zone((time_t)s, 0, z);
    struct icaltimetype le = icaltime_from_timet_with_zone((time_t)e, 0, z);
    int64_t d0 = days_from_civil_(ls.year, (unsigned)ls.month, (unsigned)ls.day) - 1;
    int64_t d1 = days_from_civil_(le.year, (unsigned)le.month, (unsigned)le.day);
    if (d1 - d0 > 8) /* longer than a week: every weekday is in it */
        d1 = d0 + 8;
    for (int64_t d = d0; d <= d1; d++) {
        int y, m, dd, ny, nm, nd;
        int wd = (int)(((d % 7) + 7 + 4) % 7); /* 1970-01-01 was a Thursday; 0 = Sunday */
        civil_from_days_(d, &y, &m, &dd);
        civil_from_days_(d + 1, &ny, &nm, &nd);
        for (int i = 0; i < w->n[wd]; i++) {
            int sm = w->iv[wd][i].start, em = w->iv[wd][i].end;
            int64_t a = bm_time_local_to_utc(z, y, m, dd, sm / 60, sm % 60, 0);
            int64_t b = em == 1440 ? bm_time_local_to_utc(z, ny, nm, nd, 0, 0, 0)
                                   : bm_time_local_to_utc(z, y, m, dd, em / 60, em % 60, 0);
            if (e == s ? s >= a && s < b : s < b && e > a)
                return true;
        }
    }
    return false;
}

bool bm_plan_in_hours(const bm_plan_opts_t *o, int64_t start, int64_t end)
{
    if (!has_hours(o))
        return true;
    return hours_overlap(&o->rules->working_hours, hours_zone(o), start, end);
}

typedef struct occ_acc {
    const bm_plan_opts_t *o;
    int64_t dur;
    icaltimezone *zone;
    int64_t *off;
    size_t n_off, cap_off;
    bool any_on;
} occ_acc_t;

static void occ_visit(occ_acc_t *a, int64_t start, int64_t end)
{
    if (!overlaps(start, end, a->o->window_start, a->o->window_end))
        return;
    if (hours_overlap(&a->o->rules->working_hours, a->zone, start, end)) {
        a->any_on = true;
        return;
    }
    for (size_t i = 0; i < a->n_off; i++)
        if (a->off[i] == start)
            return; /* DTSTART listed again as an RDATE */
    if (a->n_off == BM_PLAN_MAX_OFF)
        return; /* more than we track: the rest counts as in hours */
    if (a->n_off == a->cap_off) {
        a->cap_off = a->cap_off ? a->cap_off * 2 : 16;
        a->off = bm_realloc(a->off, a->cap_off * sizeof(*a->off));
    }
    a->off[a->n_off++] = start;
}

bool bm_plan_series_hours(const bm_event_t *ev, const bm_plan_opts_t *o, int64_t **off,
                          size_t *n_off, bool *any_on)
{
    *off = NULL;
    *n_off = 0;
    *any_on = true;
    if (!has_hours(o) || ev->n_recurrence == 0 || ev->recurring_event_id != NULL ||
        ev->start.date != NULL || !has_time(&ev->start))
        return true;
    int64_t dur =
        has_time(&ev->end) && ev->end.epoch > ev->start.epoch ? ev->end.epoch - ev->start.epoch : 0;
    tzctx_t c = {NULL, 0};
    if (ev->start.time_zone != NULL)
        c.zone = icaltimezone_get_builtin_timezone(ev->start.time_zone);
    if (c.zone == NULL)
        c.offset = wall_offset(ev->start.date_time, ev->start.epoch);
    struct icaltimetype dtstart = tt_from_epoch(&c, ev->start.epoch, false);
    occ_acc_t acc = {o, dur, hours_zone(o), NULL, 0, 0, false};
    dates_t ex = {0}, rd = {0};
    bool sure = true;
    long budget = PLAN_MAX_STEPS;

    for (size_t i = 0; i < ev->n_recurrence; i++) {
        const char *line = ev->recurrence[i];
        if (line == NULL)
            continue;
        if (line_is(line, "EXDATE"))
            (void)parse_dates(line, &c, dtstart, dur, &ex);
        else if (line_is(line, "RDATE") && !parse_dates(line, &c, dtstart, dur, &rd))
            sure = false;
        else if (line_is(line, "EXRULE"))
            sure = false; /* ignored by the window too; we cannot say which are left */
    }
    if (!excluded(&ex, dtstart, ev->start.epoch))
        occ_visit(&acc, ev->start.epoch, ev->start.epoch + dur);
    for (size_t i = 0; i < rd.n; i++) {
        struct icaltimetype occ = icaltime_null_time();
        occ.year = rd.v[i].y;
        occ.month = rd.v[i].m;
        occ.day = rd.v[i].d;
        if (!excluded(&ex, occ, rd.v[i].start))
            occ_visit(&acc, rd.v[i].start, rd.v[i].end);
    }
    for (size_t i = 0; i < ev->n_recurrence && sure; i++) {
        const char *line = ev->recurrence[i];
        if (line == NULL || !line_is(line, "RRULE"))
            continue;
        const char *value = line_value(line);
        struct icalrecurrencetype rule = icalrecurrencetype_from_string(value ? value : "");
        bool sub_daily = rule.freq == ICAL_SECONDLY_RECURRENCE ||
                         rule.freq == ICAL_MINUTELY_RECURRENCE ||
                         rule.freq == ICAL_HOURLY_RECURRENCE;
        icalrecur_iterator *it = rule.freq == ICAL_NO_RECURRENCE || sub_daily
                                     ? NULL
                                     : icalrecur_iterator_new(rule, dtstart);
        if (it == NULL) {
            sure = false;
            break;
        }
        for (;;) {
            if (budget-- <= 0) {
                sure = false;
                break;
            }
            struct icaltimetype occ = icalrecur_iterator_next(it);
            if (icaltime_is_null_time(occ))
                break;
            int64_t st = tt_to_epoch(&c, occ);
            if (st >= o->window_end)
                break;
            if (st == ev->start.epoch || excluded(&ex, occ, st))
                continue; /* DTSTART was visited above */
            occ_visit(&acc, st, st + dur);
        }
        icalrecur_iterator_free(it);
    }
    free(ex.v);
    free(rd.v);
    if (!sure) {
        free(acc.off);
        return false;
    }
    *off = acc.off;
    *n_off = acc.n_off;
    *any_on = acc.any_on;
    return true;
}

bool bm_plan_keep(const bm_event_t *ev, const bm_plan_opts_t *o, const char **reason)
{
    const char *why = "busy";
    const bm_rules_t *r = o->rules;
    bool all_day = ev->start.date != NULL;
    if (!bm_plan_is_busy(ev, o, &why) || r == NULL)
        goto out;
    /* self's answer to an invitation: an event self organises is no invitation
     * (busy whatever self's own attendee entry says), nor is one without a self
     * attendee */
    const char *answer = ev->organizer_self ? NULL : ev->self_response;
    if (!r->tentative && answer != NULL && strcmp(answer, "tentative") == 0)
        why = "tentative";
    else if (!r->unanswered && answer != NULL && strcmp(answer, "needsAction") == 0)
        why = "unanswered";
    else if (all_day && !r->all_day)
        why = "all_day";
    else if (r->exclude_title.text != NULL && bm_regex_match(&r->exclude_title, ev->summary))
        why = "exclude_title";
    else if (r->include_title.text != NULL && !bm_regex_match(&r->include_title, ev->summary))
        why = "include_title";
    else if (has_hours(o) && !all_day && has_time(&ev->start)) {
        if (ev->n_recurrence > 0 && ev->recurring_event_id == NULL) {
            int64_t *off;
            size_t n;
            bool any_on;
            bm_plan_series_hours(ev, o, &off, &n, &any_on);
            free(off);
            if (!any_on)
                why = "working_hours";
        } else {
            int64_t e = has_time(&ev->end) ? ev->end.epoch : ev->start.epoch;
            if (!bm_plan_in_hours(o, ev->start.epoch, e))
                why = "working_hours";
        }
    }
out:
    if (reason != NULL)
        *reason = why;
    return strcmp(why, "busy") == 0;
}

char *bm_plan_block_title(const bm_event_t *ev, const bm_plan_opts_t *o)
{
    if (o->rules != NULL && o->rules->copy_title && ev->summary != NULL && ev->summary[0] != '\0')
        return bm_strdup(ev->summary);
    const char *t = o->block_summary != NULL ? o->block_summary : "Busy";
    const char *label = o->label != NULL ? o->label : "";
    bm_buf_t b;
    bm_buf_init(&b, SIZE_MAX); /* a template and a label, both bounded by config and store */
    for (const char *p = t; *p != '\0';) {
        const char *q = strstr(p, "{calendar}");
        if (q == NULL) {
            bm_buf_puts(&b, p);
            break;
        }
        bm_buf_printf(&b, "%.*s%s", (int)(q - p), p, label);
        p = q + strlen("{calendar}");
    }
    char *out = bm_buf_steal(&b);
    return out != NULL ? out : bm_strdup("");
}

static void time_copy(const bm_evtime_t *t, int64_t delta, bm_evtime_t *out)
{
    memset(out, 0, sizeof(*out));
    out->epoch = t->epoch;
    out->date = t->date != NULL ? bm_strdup(t->date) : NULL;
    out->time_zone = t->time_zone != NULL ? bm_strdup(t->time_zone) : NULL;
    if (t->date_time == NULL) {
        if (t->date == NULL && t->epoch != 0)
            out->epoch = t->epoch + delta;
        return;
    }
    if (delta == 0 || t->date != NULL) {
        out->date_time = bm_strdup(t->date_time);
        return;
    }
    char buf[40];
    out->epoch = t->epoch + delta;
    bm_time_format(out->epoch, buf, sizeof(buf));
    out->date_time = bm_strdup(buf);
}

/* One iCalendar DATE-TIME value moved by delta seconds: UTC values as
 * instants, local and floating ones on the wall clock (the block series
 * recurs in wall time too). DATE values and what we cannot read stay. */
static void shift_value(bm_buf_t *b, const char *v, size_t len, int64_t delta)
{
    char tmp[64];
    if (len >= sizeof(tmp)) {
        bm_buf_printf(b, "%.*s", (int)len, v);
        return;
    }
    memcpy(tmp, v, len);
    tmp[len] = '\0';
    struct icaltimetype tt = icaltime_from_string(tmp);
    if (icaltime_is_null_time(tt) || tt.is_date) {
        bm_buf_puts(b, tmp);
        return;
    }
    int64_t t = days_from_civil_(tt.year, (unsigned)tt.month, (unsigned)tt.day) * 86400 +
                tt.hour * 3600 + tt.minute * 60 + tt.second + delta;
    time_t tv = (time_t)t;
    struct tm tm;
    if (gmtime_r(&tv, &tm) == NULL) {
        bm_buf_puts(b, tmp);
        return;
    }
    strftime(tmp, sizeof(tmp), "%Y%m%dT%H%M%S", &tm);
    bm_buf_printf(b, "%s%s", tmp, icaltime_is_utc(tt) ? "Z" : "");
}

/* The end of an RDATE PERIOD (after its '/'), for an occurrence whose start
 * moved by delta and whose end moves by after: an explicit end moves by after, a
 * duration grows by after - delta. What we cannot read stays. */
static void shift_period_end(bm_buf_t *b, const char *v, size_t len, int64_t delta, int64_t after)
{
    char tmp[64];
    if (len == 0 || len >= sizeof(tmp) || (v[0] != 'P' && v[0] != '+' && v[0] != '-')) {
        shift_value(b, v, len, after);
        return;
    }
    memcpy(tmp, v, len);
    tmp[len] = '\0';
    struct icaldurationtype d = icaldurationtype_from_string(tmp);
    int64_t secs = icaldurationtype_is_bad_duration(d) ? -1 : icaldurationtype_as_int(d);
    char *text = NULL;
    if (secs >= 0 && secs + after - delta > 0 && secs + after - delta <= INT32_MAX)
        text = icaldurationtype_as_ical_string_r(
            icaldurationtype_from_int((int)(secs + after - delta)));
    bm_buf_puts(b, text != NULL ? text : tmp);
    icalmemory_free_buffer(text);
}

static char *shift_line(const char *line, int64_t delta, int64_t after)
{
    const char *value = line_value(line);
    bool dates = line_is(line, "EXDATE") || line_is(line, "RDATE");
    if ((delta == 0 && after == 0) || value == NULL || (!dates && !line_is(line, "RRULE")))
        return bm_strdup(line);
    bm_buf_t b;
    bm_buf_init(&b, SIZE_MAX); /* a line already read through a bounded buffer */
    bm_buf_printf(&b, "%.*s", (int)(value - line), line);
    if (dates) {
        for (const char *p = value; *p != '\0';) {
            size_t n = strcspn(p, ",");
            size_t v = strcspn(p, ",/");
            shift_value(&b, p, v, delta);
            if (v < n) { /* a PERIOD: start/end or start/duration */
                bm_buf_puts(&b, "/");
                shift_period_end(&b, p + v + 1, n - v - 1, delta, after);
            }
            p += n;
            if (*p == ',') {
                bm_buf_puts(&b, ",");
                p++;
            }
        }
    } else {
        const char *u = strcasestr(value, "UNTIL=");
        if (u == NULL) {
            bm_buf_puts(&b, value);
        } else {
            u += 6;
            size_t n = strcspn(u, ";");
            bm_buf_printf(&b, "%.*s", (int)(u - value), value);
            shift_value(&b, u, n, delta);
            bm_buf_puts(&b, u + n);
        }
    }
    char *out = bm_buf_steal(&b);
    return out != NULL ? out : bm_strdup(line);
}

void bm_plan_block_event(const bm_event_t *src, const bm_plan_opts_t *o, bm_event_t *out)
{
    memset(out, 0, sizeof(*out));
    /* a cancelled occurrence's stub has no start: its original start tells */
    bool timed = src->start.date == NULL && src->original_start.date == NULL &&
                 (src->start.date_time != NULL || src->original_start.date_time != NULL);
    int64_t before = 0, after = 0;
    if (timed && o->rules != NULL) {
        before = (int64_t)o->rules->buffer_before * 60;
        after = (int64_t)o->rules->buffer_after * 60;
    }
    out->id = src->id != NULL ? bm_strdup(src->id) : NULL;
    out->status = src->status != NULL ? bm_strdup(src->status) : NULL;
    out->recurring_event_id =
        src->recurring_event_id != NULL ? bm_strdup(src->recurring_event_id) : NULL;
    time_copy(&src->start, -before, &out->start);
    time_copy(&src->end, after, &out->end);
    time_copy(&src->original_start, src->original_start.date != NULL ? 0 : -before,
              &out->original_start);
    if (src->n_recurrence > 0) {
        out->recurrence = bm_calloc(src->n_recurrence, sizeof(*out->recurrence));
        for (size_t i = 0; i < src->n_recurrence; i++)
            if (src->recurrence[i] != NULL)
                out->recurrence[out->n_recurrence++] =
                    shift_line(src->recurrence[i], -before, after);
    }
}

/* ---- block id, instance suffix ------------------------------------------------ */

void bm_plan_block_id(const char *group, const char *src_calendar, const char *src_event,
                      const char *target_calendar, char *out)
{
    static const char alphabet[] = "0123456789abcdefghijklmnopqrstuv";
    char *msg =
        bm_sprintf("%s\x1f%s\x1f%s\x1f%s", group ? group : "", src_calendar ? src_calendar : "",
                   src_event ? src_event : "", target_calendar ? target_calendar : "");
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    if (EVP_Digest(msg, strlen(msg), md, &md_len, EVP_sha256(), NULL) != 1 || md_len < 20)
        abort(); /* only on allocation failure inside OpenSSL: same policy as bm_malloc */
    free(msg);

    /* 20 bytes = 160 bits = exactly 32 five-bit groups, no padding. */
    uint32_t acc = 0;
    int bits = 0;
    size_t n = 0;
    for (size_t i = 0; i < 20; i++) {
        acc = (acc << 8) | md[i];
        bits += 8;
        while (bits >= 5) {
            bits -= 5;
            out[n++] = alphabet[(acc >> bits) & 31];
        }
    }
    out[n] = '\0';
}

void bm_plan_instance_suffix(const bm_evtime_t *original_start, char *out, size_t len)
{
    if (len == 0)
        return;
    out[0] = '\0';
    if (original_start->date != NULL) {
        int y, m, d;
        if (sscanf(original_start->date, "%4d-%2d-%2d", &y, &m, &d) == 3) {
            snprintf(out, len, "%04d%02d%02d", y, m, d);
            return;
        }
    }
    time_t t = (time_t)original_start->epoch;
    struct tm tm;
    if (gmtime_r(&t, &tm) == NULL)
        return;
    strftime(out, len, original_start->date ? "%Y%m%d" : "%Y%m%dT%H%M%SZ", &tm);
}

/* ---- block body --------------------------------------------------------------- */

/* yajl_gen with a sticky error flag, so building stays linear. */
typedef struct jw {
    yajl_gen g;
    bool bad;
} jw_t;

static void jw_str(jw_t *w, const char *s)
{
    if (!w->bad && yajl_gen_string(w->g, (const unsigned char *)s, strlen(s)) != yajl_gen_status_ok)
        w->bad = true;
}

static void jw_kv(jw_t *w, const char *k, const char *v)
{
    jw_str(w, k);
    jw_str(w, v);
}

static void jw_open(jw_t *w)
{
    if (!w->bad && yajl_gen_map_open(w->g) != yajl_gen_status_ok)
        w->bad = true;
}

static void jw_close(jw_t *w)
{
    if (!w->bad && yajl_gen_map_close(w->g) != yajl_gen_status_ok)
        w->bad = true;
}

static void jw_time(jw_t *w, const char *key, const bm_evtime_t *t)
{
    jw_str(w, key);
    jw_open(w);
    if (t->date != NULL) {
        jw_kv(w, "date", t->date);
    } else {
        jw_kv(w, "dateTime", t->date_time);
        if (t->time_zone != NULL)
            jw_kv(w, "timeZone", t->time_zone);
    }
    jw_close(w);
}

/*
 * Beyond plan.h: the source's dateTime string is copied verbatim (Google may
 * answer with another offset notation; bm_plan_shape compares instants).
 * recurrence is emitted for a series master only, never for an exception
 * instance (recurring_event_id set). Summary NULL means "Busy"; marker_src NULL
 * means "". Returns NULL when src has no start or end, or a string is not
 * valid UTF-8 (yajl validates).
 */
char *bm_plan_block_body(const bm_event_t *src, const char *block_id, const char *marker_src,
                         const bm_plan_opts_t *o)
{
    if (!has_time(&src->start) || !has_time(&src->end) || block_id == NULL)
        return NULL;
    jw_t w = {yajl_gen_alloc(NULL), false};
    if (w.g == NULL)
        abort();
    char *out = NULL;
    if (!yajl_gen_config(w.g, yajl_gen_validate_utf8, 1))
        w.bad = true;

    jw_open(&w);
    jw_kv(&w, "id", block_id);
    jw_kv(&w, "summary", o->block_summary ? o->block_summary : "Busy");
    jw_time(&w, "start", &src->start);
    jw_time(&w, "end", &src->end);
    if (src->n_recurrence > 0 && src->recurring_event_id == NULL) {
        jw_str(&w, "recurrence");
        if (!w.bad && yajl_gen_array_open(w.g) != yajl_gen_status_ok)
            w.bad = true;
        for (size_t i = 0; i < src->n_recurrence; i++)
            if (src->recurrence[i] != NULL)
                jw_str(&w, src->recurrence[i]);
        if (!w.bad && yajl_gen_array_close(w.g) != yajl_gen_status_ok)
            w.bad = true;
    }
    jw_kv(&w, "visibility", "private");
    jw_kv(&w, "transparency", "opaque");
    jw_kv(&w, "status", "confirmed");
    jw_str(&w, "reminders");
    jw_open(&w);
    jw_str(&w, "useDefault");
    if (!w.bad && yajl_gen_bool(w.g, 0) != yajl_gen_status_ok)
        w.bad = true;
    jw_str(&w, "overrides");
    if (!w.bad && (yajl_gen_array_open(w.g) != yajl_gen_status_ok ||
                   yajl_gen_array_close(w.g) != yajl_gen_status_ok))
        w.bad = true;
    jw_close(&w);
    jw_str(&w, "extendedProperties");
    jw_open(&w);
    jw_str(&w, "private");
    jw_open(&w);
    jw_kv(&w, BM_MARKER_KEY, "1");
    jw_kv(&w, BM_MARKER_SRC_KEY, marker_src ? marker_src : "");
    jw_close(&w);
    jw_close(&w);
    jw_close(&w);

    const unsigned char *buf;
    size_t len;
    if (!w.bad && yajl_gen_get_buf(w.g, &buf, &len) == yajl_gen_status_ok)
        out = bm_strndup((const char *)buf, len);
    yajl_gen_free(w.g);
    return out;
}

/* ---- shape, diff -------------------------------------------------------------- */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void shape_time(bm_buf_t *b, const bm_evtime_t *t, bool with_tz)
{
    if (t->date != NULL)
        bm_buf_printf(b, "d:%s", t->date);
    else if (t->date_time != NULL)
        bm_buf_printf(b, "t:%lld%s%s", (long long)t->epoch, with_tz && t->time_zone ? "@" : "",
                      with_tz && t->time_zone ? t->time_zone : "");
    else
        bm_buf_puts(b, "-");
}

/*
 * Format: "s=<t>|e=<t>|r=<lines>|c=<0|1>" where <t> is "d:YYYY-MM-DD" (all-day),
 * "t:<epoch>" (timed single event or instance), "t:<epoch>@<timeZone>" (timed
 * series master with a zone) or "-" (absent); <lines> are the recurrence lines,
 * trailing blanks dropped, sorted, joined by '\n'; c=1 for status cancelled.
 * The time zone counts only for series masters: it decides the wall times of
 * future occurrences, while a single event is fully described by its instants.
 * tentative and confirmed have the same shape (a block is always confirmed).
 */
char *bm_plan_shape(const bm_event_t *ev)
{
    bm_buf_t b;
    /* No cap of our own: the shape is a short function of an event that was
     * already read through a bounded buffer, so appends cannot fail. */
    bm_buf_init(&b, SIZE_MAX);
    /* The zone changes what a recurring rule means (its wall times); for a
     * single event only the instant matters. */
    bool recurring = ev->n_recurrence > 0;

    bm_buf_puts(&b, "s=");
    shape_time(&b, &ev->start, recurring);
    bm_buf_puts(&b, "|e=");
    shape_time(&b, &ev->end, recurring);
    bm_buf_puts(&b, "|r=");
    if (recurring) {
        /* Recurrence lines are a set: sorted, trailing blanks dropped. */
        char **lines = bm_calloc(ev->n_recurrence, sizeof(*lines));
        size_t n = 0;
        for (size_t i = 0; i < ev->n_recurrence; i++) {
            const char *l = ev->recurrence[i];
            if (l == NULL)
                continue;
            size_t len = strlen(l);
            while (len > 0 && (l[len - 1] == ' ' || l[len - 1] == '\r' || l[len - 1] == '\n' ||
                               l[len - 1] == '\t'))
                len--;
            lines[n++] = bm_strndup(l, len);
        }
        qsort(lines, n, sizeof(*lines), cmp_str);
        for (size_t i = 0; i < n; i++) {
            bm_buf_printf(&b, "%s%s", i ? "\n" : "", lines[i]);
            free(lines[i]);
        }
        free(lines);
    }
    bm_buf_printf(&b, "|c=%d", ev->status != NULL && strcmp(ev->status, "cancelled") == 0);
    return bm_buf_steal(&b);
}

bm_op_kind_t bm_plan_diff(const char *desired, const char *current)
{
    if (desired != NULL)
        return current == NULL || strcmp(desired, current) != 0 ? BM_OP_PUT : BM_OP_NONE;
    return current != NULL ? BM_OP_DELETE : BM_OP_NONE;
}
