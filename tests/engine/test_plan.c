/*
 * tests/engine/test_plan.c: engine/plan.c. Events are built by hand (no JSON
 * parser involved), with instants computed here from RFC 3339 strings.
 */
#include "engine/plan.h"
#include "core/util.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <yajl/yajl_tree.h>

#include "check_main.h"

/* ---- helpers ------------------------------------------------------------------ */

/* "YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM)" or "YYYY-MM-DD" to UTC seconds. */
static int64_t ts(const char *s)
{
    struct tm tm = {0};
    int n = 0;
    if (strlen(s) == 10) {
        ck_assert_int_eq(sscanf(s, "%4d-%2d-%2d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday), 3);
        tm.tm_year -= 1900;
        tm.tm_mon -= 1;
        return (int64_t)timegm(&tm);
    }
    ck_assert_int_eq(sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                            &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &n),
                     6);
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    const char *p = s + n;
    if (*p == '.')
        while (*++p >= '0' && *p <= '9')
            ;
    int64_t off = 0;
    if (*p == '+' || *p == '-') {
        int h, m;
        ck_assert_int_eq(sscanf(p + 1, "%2d:%2d", &h, &m), 2);
        off = (*p == '-' ? -1 : 1) * (h * 3600 + m * 60);
    } else {
        ck_assert_int_eq(*p, 'Z');
    }
    return (int64_t)timegm(&tm) - off;
}

static bm_event_t *ev_new(const char *id)
{
    bm_event_t *e = bm_calloc(1, sizeof(*e));
    e->id = bm_strdup(id);
    e->status = bm_strdup("confirmed");
    e->summary = bm_strdup("Board meeting");
    return e;
}

static void time_free(bm_evtime_t *t)
{
    free(t->date);
    free(t->date_time);
    free(t->time_zone);
    memset(t, 0, sizeof(*t));
}

static void ev_free(bm_event_t *e)
{
    free(e->id);
    free(e->status);
    free(e->transparency);
    free(e->visibility);
    free(e->event_type);
    free(e->summary);
    free(e->etag);
    free(e->updated);
    free(e->ical_uid);
    time_free(&e->start);
    time_free(&e->end);
    for (size_t i = 0; i < e->n_recurrence; i++)
        free(e->recurrence[i]);
    free(e->recurrence);
    free(e->recurring_event_id);
    time_free(&e->original_start);
    free(e->self_response);
    free(e->marker);
    free(e->marker_src);
    free(e);
}

static void set_str(char **field, const char *v)
{
    free(*field);
    *field = bm_strdup(v);
}

static void set_timed(bm_evtime_t *t, const char *date_time, const char *tz)
{
    time_free(t);
    t->date_time = bm_strdup(date_time);
    t->time_zone = bm_strdup(tz);
    t->epoch = ts(date_time);
}

static void set_date(bm_evtime_t *t, const char *date)
{
    time_free(t);
    t->date = bm_strdup(date);
    t->epoch = ts(date);
}

static void add_rec(bm_event_t *e, const char *line)
{
    e->recurrence = bm_realloc(e->recurrence, (e->n_recurrence + 1) * sizeof(char *));
    e->recurrence[e->n_recurrence++] = bm_strdup(line);
}

/* A timed event [start, end) with optional zone. */
static bm_event_t *timed(const char *start, const char *end, const char *tz)
{
    bm_event_t *e = ev_new("ev1");
    set_timed(&e->start, start, tz);
    set_timed(&e->end, end, tz);
    return e;
}

static bm_event_t *allday(const char *start, const char *end)
{
    bm_event_t *e = ev_new("ev1");
    set_date(&e->start, start);
    set_date(&e->end, end);
    return e;
}

static bm_plan_opts_t opts(const char *ws, const char *we)
{
    bm_plan_opts_t o = {
        .window_start = ts(ws),
        .window_end = ts(we),
        .block_summary = "Busy",
        .busy_event_types = BM_ETYPE_BUSY_DEFAULT,
        .tentative_is_busy = false,
    };
    return o;
}

static bm_plan_opts_t default_opts(void)
{
    return opts("2026-11-01T00:00:00Z", "2027-02-01T00:00:00Z");
}

static void assert_busy(const bm_event_t *e, const bm_plan_opts_t *o, bool busy, const char *why)
{
    const char *reason = NULL;
    ck_assert_int_eq(bm_plan_is_busy(e, o, &reason), busy);
    ck_assert_ptr_nonnull(reason);
    ck_assert_str_eq(reason, why);
}

/* ---- busy rules --------------------------------------------------------------- */

START_TEST(busy_plain_event)
{
    bm_plan_opts_t o = default_opts();
    bm_event_t *e = timed("2026-11-25T10:00:00+01:00", "2026-11-25T11:00:00+01:00", NULL);
    assert_busy(e, &o, true, "busy");
    /* Absent status, transparency and eventType mean confirmed, opaque, default. */
    set_str(&e->status, NULL);
    assert_busy(e, &o, true, "busy");
    set_str(&e->transparency, "opaque");
    set_str(&e->event_type, "default");
    set_str(&e->self_response, "accepted");
    assert_busy(e, &o, true, "busy");
    set_str(&e->self_response, "needsAction");
    assert_busy(e, &o, true, "busy");
    ck_assert(bm_plan_is_busy(e, &o, NULL)); /* reason is optional */
    ev_free(e);
}
END_TEST

START_TEST(busy_cancelled)
{
    bm_plan_opts_t o = default_opts();
    bm_event_t *e = timed("2026-11-25T10:00:00Z", "2026-11-25T11:00:00Z", NULL);
    set_str(&e->status, "cancelled");
    assert_busy(e, &o, false, "cancelled");
    ev_free(e);
}
END_TEST

START_TEST(busy_tentative)
{
    bm_plan_opts_t o = default_opts();
    bm_event_t *e = timed("2026-11-25T10:00:00Z", "2026-11-25T11:00:00Z", NULL);
    set_str(&e->status, "tentative");
    assert_busy(e, &o, false, "tentative");
    o.tentative_is_busy = true;
    assert_busy(e, &o, true, "busy");
    ev_free(e);
}
END_TEST

START_TEST(busy_transparent)
{
    bm_plan_opts_t o = default_opts();
    bm_event_t *e = timed("2026-11-25T10:00:00Z", "2026-11-25T11:00:00Z", NULL);
    set_str(&e->transparency, "transparent");
    assert_busy(e, &o, false, "transparent");
    ev_free(e);
}
END_TEST

START_TEST(busy_declined)
{
    bm_plan_opts_t o = default_opts();
    bm_event_t *e = timed("2026-11-25T10:00:00Z", "2026-11-25T11:00:00Z", NULL);
    set_str(&e->self_response, "declined");
    assert_busy(e, &o, false, "declined");
    set_str(&e->self_response, "tentative"); /* answered maybe: still busy */
    assert_busy(e, &o, true, "busy");
    ev_free(e);
}
END_TEST

START_TEST(busy_event_types)
{
    bm_plan_opts_t o = default_opts();
    bm_event_t *e = timed("2026-11-25T10:00:00Z", "2026-11-25T11:00:00Z", NULL);
    const char *busy[] = {"default", "outOfOffice", "focusTime", "fromGmail"};
    for (size_t i = 0; i < 4; i++) {
        set_str(&e->event_type, busy[i]);
        assert_busy(e, &o, true, "busy");
    }
    const char *free_types[] = {"workingLocation", "birthday", "someFutureType"};
    for (size_t i = 0; i < 3; i++) {
        set_str(&e->event_type, free_types[i]);
        assert_busy(e, &o, false, "event_type");
    }
    /* The mask is configuration: a group may mirror working locations and
     * leave out-of-office alone. */
    o.busy_event_types = BM_ETYPE_WORKING_LOCATION;
    set_str(&e->event_type, "workingLocation");
    assert_busy(e, &o, true, "busy");
    set_str(&e->event_type, "outOfOffice");
    assert_busy(e, &o, false, "event_type");
    set_str(&e->event_type, NULL); /* absent = default, not in this mask */
    assert_busy(e, &o, false, "event_type");
    ev_free(e);
}
END_TEST

START_TEST(busy_block_never_source)
{
    bm_plan_opts_t o = default_opts();
    bm_event_t *e = timed("2026-11-25T10:00:00Z", "2026-11-25T11:00:00Z", NULL);
    set_str(&e->marker, "1");
    set_str(&e->marker_src, "work@example.com/abc");
    assert_busy(e, &o, false, "block");
    /* A marker wins over every other reason. */
    set_str(&e->status, "cancelled");
    assert_busy(e, &o, false, "block");
    ev_free(e);
}
END_TEST

/* ---- window: single events ---------------------------------------------------- */

START_TEST(window_timed_edges)
{
    bm_plan_opts_t o = opts("2026-11-20T12:00:00Z", "2026-11-30T12:00:00Z");
    struct {
        const char *s, *e;
        bool in;
    } cases[] = {
        {"2026-11-20T11:00:00Z", "2026-11-20T13:00:00Z", true},           /* straddles start */
        {"2026-11-20T12:30:00+01:00", "2026-11-20T13:30:00+01:00", true}, /* 11:30Z-12:30Z */
        {"2026-11-20T11:00:00Z", "2026-11-20T12:00:00Z", false},          /* ends at start */
        {"2026-11-30T11:00:00Z", "2026-11-30T13:00:00Z", true},           /* straddles end */
        {"2026-11-30T12:00:00Z", "2026-11-30T13:00:00Z", false},          /* starts at end */
        {"2026-11-01T10:00:00Z", "2026-11-01T11:00:00Z", false},          /* entirely before */
        {"2026-12-05T10:00:00Z", "2026-12-05T11:00:00Z", false},          /* entirely after */
        {"2026-11-01T10:00:00Z", "2026-12-05T11:00:00Z", true},           /* covers the window */
        {"2026-11-25T10:00:00Z", "2026-11-25T10:00:00Z", true},           /* zero length inside */
        {"2026-11-30T12:00:00Z", "2026-11-30T12:00:00Z", false},          /* zero length at end */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        bm_event_t *e = timed(cases[i].s, cases[i].e, "Europe/Berlin");
        ck_assert_msg(bm_plan_in_window(e, &o) == cases[i].in, "case %zu", i);
        ev_free(e);
    }
}
END_TEST

START_TEST(window_edges_are_end_exclusive_for_occurrences_and_original_slots)
{
    /* [start, end) against [window_start, window_end): touching an edge is outside. */
    bm_plan_opts_t o = opts("2026-11-20T12:00:00Z", "2026-11-21T11:00:00Z");
    /* Daily 11:00-12:00Z: the 11-20 occurrence ends at window_start, the 11-21 one
     * starts at window_end; none is inside. */
    bm_event_t *e = timed("2026-11-01T11:00:00Z", "2026-11-01T12:00:00Z", "UTC");
    add_rec(e, "RRULE:FREQ=DAILY");
    ck_assert(!bm_plan_in_window(e, &o));
    ev_free(e);
    /* One minute longer, the 11-20 occurrence reaches into the window. */
    e = timed("2026-11-01T11:00:00Z", "2026-11-01T12:01:00Z", "UTC");
    add_rec(e, "RRULE:FREQ=DAILY");
    ck_assert(bm_plan_in_window(e, &o));
    ev_free(e);
    /* The same through RDATE: one period ending at window_start, one starting at
     * window_end (the DTSTART occurrence is far before). */
    e = timed("2026-10-01T11:00:00Z", "2026-10-01T12:00:00Z", "UTC");
    add_rec(e, "RDATE:20261120T110000Z,20261121T110000Z");
    ck_assert(!bm_plan_in_window(e, &o));
    ev_free(e);

    /* A moved occurrence (now far away) whose original slot touches an edge. */
    e = timed("2026-12-10T10:00:00Z", "2026-12-10T11:00:00Z", "UTC");
    set_str(&e->recurring_event_id, "series1");
    set_timed(&e->original_start, "2026-11-20T11:00:00Z", NULL); /* ends at start */
    ck_assert(!bm_plan_in_window(e, &o));
    set_timed(&e->original_start, "2026-11-21T11:00:00Z", NULL); /* starts at end */
    ck_assert(!bm_plan_in_window(e, &o));
    set_timed(&e->original_start, "2026-11-20T11:30:00Z", NULL); /* reaches in */
    ck_assert(bm_plan_in_window(e, &o));
    ev_free(e);

    /* A cancelled occurrence knows only its original instant (zero length): at
     * window_start it is inside, at window_end outside. */
    e = ev_new("series1_20261120T120000Z");
    set_str(&e->status, "cancelled");
    set_str(&e->recurring_event_id, "series1");
    set_timed(&e->original_start, "2026-11-20T12:00:00Z", NULL);
    ck_assert(bm_plan_in_window(e, &o));
    set_timed(&e->original_start, "2026-11-21T11:00:00Z", NULL);
    ck_assert(!bm_plan_in_window(e, &o));
    ev_free(e);
}
END_TEST

START_TEST(window_allday_edges)
{
    /* A window starting mid-day: the all-day event of that first day counts. */
    bm_plan_opts_t o = opts("2026-11-20T15:00:00Z", "2026-11-30T09:00:00Z");
    struct {
        const char *s, *e;
        bool in;
    } cases[] = {
        {"2026-11-20", "2026-11-21", true},  /* first day */
        {"2026-11-19", "2026-11-20", false}, /* the day before */
        {"2026-11-30", "2026-12-01", true},  /* last day (window ends 09:00Z) */
        {"2026-12-01", "2026-12-02", false}, /* the day after */
        {"2026-11-10", "2026-11-12", false}, /* entirely before */
        {"2026-11-18", "2026-11-21", true},  /* multi-day reaching in */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        bm_event_t *e = allday(cases[i].s, cases[i].e);
        ck_assert_msg(bm_plan_in_window(e, &o) == cases[i].in, "case %zu", i);
        ev_free(e);
    }
    /* Window boundaries exactly at midnight: first day in, end day out. */
    o = opts("2026-11-20", "2026-11-30");
    bm_event_t *e = allday("2026-11-20", "2026-11-21");
    ck_assert(bm_plan_in_window(e, &o));
    set_date(&e->start, "2026-11-29");
    set_date(&e->end, "2026-11-30");
    ck_assert(bm_plan_in_window(e, &o));
    set_date(&e->start, "2026-11-30");
    set_date(&e->end, "2026-12-01");
    ck_assert(!bm_plan_in_window(e, &o));
    /* An all-day event without an end is one day long. */
    time_free(&e->end);
    set_date(&e->start, "2026-11-19");
    o = opts("2026-11-19T20:00:00Z", "2026-11-30");
    ck_assert(bm_plan_in_window(e, &o));
    ev_free(e);
}
END_TEST

START_TEST(window_instances_and_deletions)
{
    bm_plan_opts_t o = opts("2026-11-20T00:00:00Z", "2026-11-30T00:00:00Z");
    /* An occurrence moved out of the window still counts through its original slot. */
    bm_event_t *e = timed("2026-12-10T10:00:00Z", "2026-12-10T11:00:00Z", "Europe/Berlin");
    set_str(&e->recurring_event_id, "series1");
    ck_assert(!bm_plan_in_window(e, &o)); /* no originalStartTime yet */
    set_timed(&e->original_start, "2026-11-25T11:00:00+01:00", "Europe/Berlin");
    ck_assert(bm_plan_in_window(e, &o));
    set_timed(&e->original_start, "2026-12-03T11:00:00+01:00", "Europe/Berlin");
    ck_assert(!bm_plan_in_window(e, &o));
    /* An instance ignores recurrence lines (only masters expand). */
    add_rec(e, "RRULE:FREQ=DAILY");
    ck_assert(!bm_plan_in_window(e, &o));
    ev_free(e);

    /* A cancelled instance with only originalStartTime. */
    e = ev_new("series1_20261125T100000Z");
    set_str(&e->status, "cancelled");
    set_str(&e->recurring_event_id, "series1");
    set_timed(&e->original_start, "2026-11-25T10:00:00Z", NULL);
    ck_assert(bm_plan_in_window(e, &o));
    set_timed(&e->original_start, "2026-12-25T10:00:00Z", NULL);
    ck_assert(!bm_plan_in_window(e, &o));
    ev_free(e);

    /* A bare deletion (only id) counts: the engine must see it. */
    e = ev_new("gone");
    set_str(&e->status, "cancelled");
    ck_assert(bm_plan_in_window(e, &o));
    ev_free(e);
}
END_TEST

/* ---- window: series ----------------------------------------------------------- */

/* A weekly Monday 10:00-11:00 Berlin series starting on dtstart. */
static bm_event_t *weekly(const char *dtstart, const char *dtend, const char *rule)
{
    bm_event_t *e = timed(dtstart, dtend, "Europe/Berlin");
    add_rec(e, rule);
    return e;
}

START_TEST(series_started_long_before)
{
    bm_plan_opts_t o = opts("2026-11-20T00:00:00Z", "2026-11-27T00:00:00Z");
    bm_event_t *e = weekly("2012-01-02T10:00:00+01:00", "2012-01-02T11:00:00+01:00",
                           "RRULE:FREQ=WEEKLY;BYDAY=MO");
    ck_assert(bm_plan_in_window(e, &o)); /* Monday 2026-11-23 */
    /* A window with no Monday in it: Tue 2026-11-24 to Sun 2026-11-29. */
    o = opts("2026-11-24T00:00:00Z", "2026-11-30T00:00:00Z");
    ck_assert(!bm_plan_in_window(e, &o));
    ev_free(e);

    /* The series master's own start before the window does not count by itself. */
    e = timed("2012-01-02T10:00:00+01:00", "2012-01-02T11:00:00+01:00", "Europe/Berlin");
    ck_assert(!bm_plan_in_window(e, &o));
    ev_free(e);
}
END_TEST

START_TEST(series_ended_before)
{
    bm_plan_opts_t o = opts("2026-11-20T00:00:00Z", "2026-12-20T00:00:00Z");
    bm_event_t *e = weekly("2026-01-05T10:00:00+01:00", "2026-01-05T11:00:00+01:00",
                           "RRULE:FREQ=WEEKLY;BYDAY=MO;COUNT=10");
    ck_assert(!bm_plan_in_window(e, &o));
    set_str(&e->recurrence[0], "RRULE:FREQ=WEEKLY;BYDAY=MO;COUNT=100");
    ck_assert(bm_plan_in_window(e, &o));
    set_str(&e->recurrence[0], "RRULE:FREQ=WEEKLY;BYDAY=MO;UNTIL=20261116T235959Z");
    ck_assert(!bm_plan_in_window(e, &o));
    set_str(&e->recurrence[0], "RRULE:FREQ=WEEKLY;BYDAY=MO;UNTIL=20261123T235959Z");
    ck_assert(bm_plan_in_window(e, &o));
    ev_free(e);

    /* All-day yearly with UNTIL as a date. */
    e = allday("2020-11-25", "2020-11-26");
    add_rec(e, "RRULE:FREQ=YEARLY;UNTIL=20251125");
    ck_assert(!bm_plan_in_window(e, &o));
    set_str(&e->recurrence[0], "RRULE:FREQ=YEARLY");
    ck_assert(bm_plan_in_window(e, &o));
    ev_free(e);
}
END_TEST

START_TEST(series_exdate_removes_only_occurrence)
{
    /* The window holds exactly one Monday: 2026-11-23. */
    bm_plan_opts_t o = opts("2026-11-21T00:00:00Z", "2026-11-28T00:00:00Z");
    bm_event_t *e = weekly("2026-01-05T10:00:00+01:00", "2026-01-05T11:00:00+01:00",
                           "RRULE:FREQ=WEEKLY;BYDAY=MO");
    ck_assert(bm_plan_in_window(e, &o));
    add_rec(e, "EXDATE;TZID=Europe/Berlin:20261116T100000,20261123T100000");
    ck_assert(!bm_plan_in_window(e, &o));
    /* The same exclusion written in UTC. */
    set_str(&e->recurrence[1], "EXDATE:20261123T090000Z");
    ck_assert(!bm_plan_in_window(e, &o));
    /* ... or in another zone (09:00 London is 10:00 Berlin). */
    set_str(&e->recurrence[1], "EXDATE;TZID=Europe/London:20261123T090000");
    ck_assert(!bm_plan_in_window(e, &o));
    /* An EXDATE for another time of that day excludes nothing. */
    set_str(&e->recurrence[1], "EXDATE;TZID=Europe/Berlin:20261123T110000");
    ck_assert(bm_plan_in_window(e, &o));
    /* An unreadable EXDATE excludes nothing (err towards busy). */
    set_str(&e->recurrence[1], "EXDATE;TZID=Europe/Berlin:not-a-date");
    ck_assert(bm_plan_in_window(e, &o));
    ev_free(e);

    /* All-day daily series with a DATE exclusion. */
    o = opts("2026-11-23T00:00:00Z", "2026-11-24T00:00:00Z");
    e = allday("2026-11-01", "2026-11-02");
    add_rec(e, "RRULE:FREQ=DAILY");
    ck_assert(bm_plan_in_window(e, &o));
    add_rec(e, "EXDATE;VALUE=DATE:20261123");
    ck_assert(!bm_plan_in_window(e, &o));
    /* A DATE-TIME exclusion on an all-day series matches by its written date. */
    set_str(&e->recurrence[1], "EXDATE;TZID=Europe/Berlin:20261123T000000");
    ck_assert(!bm_plan_in_window(e, &o));
    ev_free(e);
}
END_TEST

START_TEST(series_weekly_across_dst)
{
    /* Mondays 10:00-11:00 Europe/Berlin from 2026-03-02 (CET, 09:00Z). Clocks go
     * forward on 2026-03-29: on 2026-03-30 the meeting is 10:00 CEST = 08:00Z. */
    bm_event_t *e = weekly("2026-03-02T10:00:00+01:00", "2026-03-02T11:00:00+01:00",
                           "RRULE:FREQ=WEEKLY;BYDAY=MO");
    bm_plan_opts_t o = opts("2026-03-30T08:00:00Z", "2026-03-30T08:30:00Z");
    ck_assert(bm_plan_in_window(e, &o));
    o = opts("2026-03-30T09:00:00Z", "2026-03-30T10:00:00Z"); /* the naive UTC slot */
    ck_assert(!bm_plan_in_window(e, &o));
    /* Before the change the UTC slot is 09:00Z. */
    o = opts("2026-03-23T09:00:00Z", "2026-03-23T09:30:00Z");
    ck_assert(bm_plan_in_window(e, &o));
    /* Back in October (2026-10-25): 10:00 CET = 09:00Z again. */
    o = opts("2026-10-26T08:00:00Z", "2026-10-26T09:00:00Z");
    ck_assert(!bm_plan_in_window(e, &o));
    o = opts("2026-10-26T09:00:00Z", "2026-10-26T09:30:00Z");
    ck_assert(bm_plan_in_window(e, &o));
    ev_free(e);
}
END_TEST

START_TEST(series_rdate_and_dtstart)
{
    bm_plan_opts_t o = opts("2026-11-20T00:00:00Z", "2026-11-27T00:00:00Z");
    bm_event_t *e = weekly("2026-01-05T10:00:00+01:00", "2026-01-05T11:00:00+01:00",
                           "RRULE:FREQ=WEEKLY;BYDAY=MO;COUNT=3");
    ck_assert(!bm_plan_in_window(e, &o));
    add_rec(e, "RDATE;TZID=Europe/Berlin:20261125T150000");
    ck_assert(bm_plan_in_window(e, &o));
    add_rec(e, "EXDATE;TZID=Europe/Berlin:20261125T150000");
    ck_assert(!bm_plan_in_window(e, &o));
    ev_free(e);

    /* RDATE as a PERIOD reaching into the window. */
    e = weekly("2026-01-05T10:00:00+01:00", "2026-01-05T11:00:00+01:00",
               "RRULE:FREQ=WEEKLY;COUNT=1");
    add_rec(e, "RDATE;VALUE=PERIOD:20261119T230000Z/PT2H");
    ck_assert(bm_plan_in_window(e, &o));
    set_str(&e->recurrence[1], "RDATE;VALUE=PERIOD:20261119T200000Z/20261119T210000Z");
    ck_assert(!bm_plan_in_window(e, &o));
    ev_free(e);

    /* DTSTART is an instance even when the rule does not produce it (a Monday
     * start of a Tuesday rule), unless excluded. */
    o = opts("2026-11-23T00:00:00Z", "2026-11-24T00:00:00Z");
    e = weekly("2026-11-23T10:00:00+01:00", "2026-11-23T11:00:00+01:00",
               "RRULE:FREQ=WEEKLY;BYDAY=TU");
    ck_assert(bm_plan_in_window(e, &o));
    add_rec(e, "EXDATE;TZID=Europe/Berlin:20261123T100000");
    ck_assert(!bm_plan_in_window(e, &o));
    ev_free(e);
}
END_TEST

START_TEST(series_future_and_unparsable)
{
    bm_plan_opts_t o = opts("2026-11-20T00:00:00Z", "2026-11-27T00:00:00Z");
    bm_event_t *e = weekly("2027-01-04T10:00:00+01:00", "2027-01-04T11:00:00+01:00",
                           "RRULE:FREQ=WEEKLY;BYDAY=MO");
    ck_assert(!bm_plan_in_window(e, &o));
    ev_free(e);

    /* A rule we cannot read is mirrored rather than lost, even when its start
     * lies long before the window. */
    const char *bad[] = {"RRULE:FREQ=FORTNIGHTLY", "RRULE:FREQ=WEEKLY;BYDAY=XX", "RRULE",
                         "RRULE:FREQ=DAILY;UNTIL=garbage"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        e = weekly("2020-01-06T10:00:00+01:00", "2020-01-06T11:00:00+01:00", bad[i]);
        ck_assert_msg(bm_plan_in_window(e, &o), "%s", bad[i]);
        ev_free(e);
    }
    /* So is an unreadable RDATE. */
    e = weekly("2020-01-06T10:00:00+01:00", "2020-01-06T11:00:00+01:00",
               "RRULE:FREQ=WEEKLY;COUNT=1");
    ck_assert(!bm_plan_in_window(e, &o));
    add_rec(e, "RDATE:tomorrow");
    ck_assert(bm_plan_in_window(e, &o));
    ev_free(e);
}
END_TEST

START_TEST(series_step_budget)
{
    /* Every second since 2025: far more than the step budget before the window.
     * Not knowing means in window. */
    bm_plan_opts_t o = opts("2026-11-20T00:00:00Z", "2026-11-27T00:00:00Z");
    bm_event_t *e = timed("2025-01-01T00:00:00Z", "2025-01-01T00:00:01Z", "UTC");
    add_rec(e, "RRULE:FREQ=SECONDLY;UNTIL=20250201T000000Z");
    ck_assert(bm_plan_in_window(e, &o));
    /* A rule that ends within the budget is judged exactly. */
    set_str(&e->recurrence[0], "RRULE:FREQ=MINUTELY;COUNT=5000");
    ck_assert(!bm_plan_in_window(e, &o));
    ev_free(e);
}
END_TEST

START_TEST(series_without_zone_uses_offset)
{
    /* No timeZone: the wall time of the dateTime's offset drives the rule.
     * Sundays 03:30-03:45 at +05:00 are Saturdays 22:30Z; expanding in UTC
     * would give Sundays 22:30Z instead. */
    bm_event_t *e = timed("2026-11-01T03:30:00+05:00", "2026-11-01T03:45:00+05:00", NULL);
    add_rec(e, "RRULE:FREQ=WEEKLY;BYDAY=SU");
    bm_plan_opts_t o = opts("2026-11-07T22:00:00Z", "2026-11-07T23:00:00Z");
    ck_assert(bm_plan_in_window(e, &o));
    o = opts("2026-11-08T22:00:00Z", "2026-11-08T23:00:00Z");
    ck_assert(!bm_plan_in_window(e, &o));
    /* The same with an unknown zone name. */
    set_timed(&e->start, "2026-11-01T03:30:00+05:00", "Mars/Olympus_Mons");
    o = opts("2026-11-07T22:00:00Z", "2026-11-07T23:00:00Z");
    ck_assert(bm_plan_in_window(e, &o));
    ev_free(e);
}
END_TEST

/* ---- block id ----------------------------------------------------------------- */

static bool is_base32hex(const char *s)
{
    for (; *s; s++)
        if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'v')))
            return false;
    return true;
}

START_TEST(block_id_properties)
{
    char a[BM_BLOCK_ID_LEN + 1], b[BM_BLOCK_ID_LEN + 1];
    memset(a, 'x', sizeof(a));
    bm_plan_block_id("g1", "work@example.com", "abc123", "home@example.com", a);
    ck_assert_uint_eq(strlen(a), BM_BLOCK_ID_LEN);
    ck_assert(is_base32hex(a));
    /* Pinned: changing the derivation would duplicate every block in production. */
    ck_assert_str_eq(a, "an8dhhkmcbgdtnicnrdljqnh8qfd3cj1");

    bm_plan_block_id("g1", "work@example.com", "abc123", "home@example.com", b);
    ck_assert_str_eq(a, b);
    bm_plan_block_id("g1", "work@example.com", "abc123", "client@example.com", b);
    ck_assert_str_ne(a, b);
    bm_plan_block_id("g1", "work@example.com", "abc124", "home@example.com", b);
    ck_assert_str_ne(a, b);
    bm_plan_block_id("g2", "work@example.com", "abc123", "home@example.com", b);
    ck_assert_str_ne(a, b);
    bm_plan_block_id("g1", "work2@example.com", "abc123", "home@example.com", b);
    ck_assert_str_ne(a, b);
    /* The separator keeps field boundaries apart. */
    bm_plan_block_id("g1", "work@example.coma", "bc123", "home@example.com", b);
    ck_assert_str_ne(a, b);
    for (int i = 0; i < 200; i++) {
        char ev[32];
        snprintf(ev, sizeof(ev), "event%d", i);
        bm_plan_block_id("g", "c1", ev, "c2", b);
        ck_assert_uint_eq(strlen(b), BM_BLOCK_ID_LEN);
        ck_assert(is_base32hex(b));
    }
}
END_TEST

/* ---- instance suffix ---------------------------------------------------------- */

START_TEST(instance_suffix)
{
    char buf[32];
    bm_evtime_t t = {0};
    set_timed(&t, "2026-11-25T10:00:00+01:00", "Europe/Berlin");
    bm_plan_instance_suffix(&t, buf, sizeof(buf));
    ck_assert_str_eq(buf, "20261125T090000Z");
    set_timed(&t, "2026-07-01T00:30:00+02:00", "Europe/Berlin"); /* previous UTC day */
    bm_plan_instance_suffix(&t, buf, sizeof(buf));
    ck_assert_str_eq(buf, "20260630T223000Z");
    set_timed(&t, "2026-11-25T23:15:00-08:00", "America/Los_Angeles");
    bm_plan_instance_suffix(&t, buf, sizeof(buf));
    ck_assert_str_eq(buf, "20261126T071500Z");
    set_date(&t, "2026-11-25");
    bm_plan_instance_suffix(&t, buf, sizeof(buf));
    ck_assert_str_eq(buf, "20261125");
    time_free(&t);
}
END_TEST

/* ---- block body --------------------------------------------------------------- */

static yajl_val parse_json(const char *json)
{
    char err[256];
    ck_assert_ptr_nonnull(json);
    yajl_val v = yajl_tree_parse(json, err, sizeof(err));
    ck_assert_msg(v != NULL, "bad JSON: %s: %s", err, json);
    ck_assert(YAJL_IS_OBJECT(v));
    return v;
}

static yajl_val get(yajl_val root, const char *a, const char *b, const char *c)
{
    const char *path[] = {a, b, c, NULL};
    return yajl_tree_get(root, path, yajl_t_any);
}

static void assert_str_at(yajl_val root, const char *a, const char *b, const char *c,
                          const char *want)
{
    yajl_val v = get(root, a, b, c);
    ck_assert_msg(v != NULL && YAJL_IS_STRING(v), "%s.%s missing", a, b ? b : "");
    ck_assert_str_eq(YAJL_GET_STRING(v), want);
}

/* The invariants of every block body. */
static void assert_common(yajl_val root, const char *id)
{
    assert_str_at(root, "id", NULL, NULL, id);
    assert_str_at(root, "visibility", NULL, NULL, "private");
    assert_str_at(root, "transparency", NULL, NULL, "opaque");
    assert_str_at(root, "status", NULL, NULL, "confirmed");
    yajl_val ud = get(root, "reminders", "useDefault", NULL);
    ck_assert(ud != NULL && YAJL_IS_FALSE(ud));
    yajl_val ov = get(root, "reminders", "overrides", NULL);
    ck_assert(ov != NULL && YAJL_IS_ARRAY(ov) && YAJL_GET_ARRAY(ov)->len == 0);
    assert_str_at(root, "extendedProperties", "private", BM_MARKER_KEY, "1");
    assert_str_at(root, "extendedProperties", "private", BM_MARKER_SRC_KEY, "work/ev1");
    ck_assert_ptr_null(get(root, "extendedProperties", "shared", NULL));
    const char *never[] = {"description", "location",  "attendees",   "conferenceData",
                           "colorId",     "organizer", "hangoutLink", "attachments",
                           "source",      "eventType"};
    for (size_t i = 0; i < sizeof(never) / sizeof(never[0]); i++)
        ck_assert_msg(get(root, never[i], NULL, NULL) == NULL, "%s present", never[i]);
}

START_TEST(body_timed_single)
{
    bm_plan_opts_t o = default_opts();
    bm_event_t *e =
        timed("2026-11-25T10:00:00+01:00", "2026-11-25T11:30:00+01:00", "Europe/Berlin");
    set_str(&e->summary, "Secret merger talk");
    char *json = bm_plan_block_body(e, "blockid0001", "work/ev1", &o);
    ck_assert_ptr_null(strstr(json, "Secret"));
    yajl_val root = parse_json(json);
    assert_common(root, "blockid0001");
    assert_str_at(root, "summary", NULL, NULL, "Busy");
    assert_str_at(root, "start", "dateTime", NULL, "2026-11-25T10:00:00+01:00");
    assert_str_at(root, "start", "timeZone", NULL, "Europe/Berlin");
    assert_str_at(root, "end", "dateTime", NULL, "2026-11-25T11:30:00+01:00");
    assert_str_at(root, "end", "timeZone", NULL, "Europe/Berlin");
    ck_assert_ptr_null(get(root, "start", "date", NULL));
    ck_assert_ptr_null(get(root, "recurrence", NULL, NULL));
    yajl_tree_free(root);
    free(json);

    /* No timeZone in the source: none in the block. */
    free(e->start.time_zone);
    e->start.time_zone = NULL;
    json = bm_plan_block_body(e, "blockid0001", "work/ev1", &o);
    root = parse_json(json);
    assert_str_at(root, "start", "dateTime", NULL, "2026-11-25T10:00:00+01:00");
    ck_assert_ptr_null(get(root, "start", "timeZone", NULL));
    yajl_tree_free(root);
    free(json);
    ev_free(e);
}
END_TEST

START_TEST(body_allday)
{
    bm_plan_opts_t o = default_opts();
    bm_event_t *e = allday("2026-11-25", "2026-11-27");
    char *json = bm_plan_block_body(e, "blockid0002", "work/ev1", &o);
    yajl_val root = parse_json(json);
    assert_common(root, "blockid0002");
    assert_str_at(root, "start", "date", NULL, "2026-11-25");
    assert_str_at(root, "end", "date", NULL, "2026-11-27");
    ck_assert_ptr_null(get(root, "start", "dateTime", NULL));
    ck_assert_ptr_null(get(root, "end", "dateTime", NULL));
    ck_assert_ptr_null(get(root, "start", "timeZone", NULL));
    yajl_tree_free(root);
    free(json);
    ev_free(e);
}
END_TEST

START_TEST(body_recurrence_master_and_instance)
{
    bm_plan_opts_t o = default_opts();
    bm_event_t *e = weekly("2026-01-05T10:00:00+01:00", "2026-01-05T11:00:00+01:00",
                           "RRULE:FREQ=WEEKLY;BYDAY=MO,WE;UNTIL=20261231T225959Z");
    add_rec(e, "EXDATE;TZID=Europe/Berlin:20260107T100000");
    add_rec(e, "RDATE;TZID=Europe/Berlin:20260110T100000");
    char *json = bm_plan_block_body(e, "blockid0003", "work/ev1", &o);
    yajl_val root = parse_json(json);
    assert_common(root, "blockid0003");
    yajl_val rec = get(root, "recurrence", NULL, NULL);
    ck_assert(rec != NULL && YAJL_IS_ARRAY(rec));
    ck_assert_uint_eq(YAJL_GET_ARRAY(rec)->len, 3);
    for (size_t i = 0; i < 3; i++)
        ck_assert_str_eq(YAJL_GET_STRING(YAJL_GET_ARRAY(rec)->values[i]), e->recurrence[i]);
    assert_str_at(root, "start", "timeZone", NULL, "Europe/Berlin");
    yajl_tree_free(root);
    free(json);

    /* An exception instance (even one that carries lines) never gets recurrence. */
    set_str(&e->recurring_event_id, "series1");
    set_timed(&e->original_start, "2026-01-12T10:00:00+01:00", "Europe/Berlin");
    json = bm_plan_block_body(e, "blockid0003_20260112T090000Z", "work/ev1", &o);
    root = parse_json(json);
    assert_common(root, "blockid0003_20260112T090000Z");
    ck_assert_ptr_null(get(root, "recurrence", NULL, NULL));
    yajl_tree_free(root);
    free(json);
    ev_free(e);
}
END_TEST

START_TEST(body_summary_escaping)
{
    bm_plan_opts_t o = default_opts();
    const char *summary =
        "Busy \"quoted\" \\ back/slash\ttab\nline \xc3\xbc \xe6\x97\xa5 \xf0\x9f\x93\x85";
    o.block_summary = summary;
    bm_event_t *e = timed("2026-11-25T10:00:00Z", "2026-11-25T11:00:00Z", NULL);
    char *json = bm_plan_block_body(e, "blockid0004", "work/ev1", &o);
    yajl_val root = parse_json(json);
    assert_str_at(root, "summary", NULL, NULL, summary);
    yajl_tree_free(root);
    free(json);

    /* A marker_src with quotes round-trips too. */
    json = bm_plan_block_body(e, "blockid0004", "a\"b", &o);
    root = parse_json(json);
    assert_str_at(root, "extendedProperties", "private", BM_MARKER_SRC_KEY, "a\"b");
    yajl_tree_free(root);
    free(json);

    /* Invalid UTF-8 is refused rather than sent. */
    o.block_summary = "Busy \xff";
    ck_assert_ptr_null(bm_plan_block_body(e, "blockid0004", "work/ev1", &o));
    /* NULL summary falls back to "Busy". */
    o.block_summary = NULL;
    json = bm_plan_block_body(e, "blockid0004", "work/ev1", &o);
    root = parse_json(json);
    assert_str_at(root, "summary", NULL, NULL, "Busy");
    yajl_tree_free(root);
    free(json);
    ev_free(e);
}
END_TEST

/* ---- shape -------------------------------------------------------------------- */

static void assert_shape_eq(const bm_event_t *a, const bm_event_t *b, bool eq)
{
    char *sa = bm_plan_shape(a), *sb = bm_plan_shape(b);
    ck_assert_msg((strcmp(sa, sb) == 0) == eq, "%s vs %s", sa, sb);
    free(sa);
    free(sb);
}

START_TEST(shape_format)
{
    bm_event_t *e = allday("2026-11-25", "2026-11-26");
    char *s = bm_plan_shape(e);
    ck_assert_str_eq(s, "s=d:2026-11-25|e=d:2026-11-26|r=|c=0");
    free(s);
    ev_free(e);

    e = weekly("2026-11-25T10:00:00+01:00", "2026-11-25T11:00:00+01:00",
               "RRULE:FREQ=WEEKLY;BYDAY=WE");
    add_rec(e, "EXDATE;TZID=Europe/Berlin:20261202T100000");
    s = bm_plan_shape(e);
    ck_assert_str_eq(s, "s=t:1795597200@Europe/Berlin|e=t:1795600800@Europe/Berlin"
                        "|r=EXDATE;TZID=Europe/Berlin:20261202T100000\n"
                        "RRULE:FREQ=WEEKLY;BYDAY=WE|c=0");
    free(s);
    ev_free(e);
}
END_TEST

START_TEST(shape_source_equals_block)
{
    /* The source as its owner's calendar lists it. */
    bm_event_t *src = weekly("2026-11-25T10:00:00+01:00", "2026-11-25T11:00:00+01:00",
                             "RRULE:FREQ=WEEKLY;BYDAY=WE");
    add_rec(src, "EXDATE;TZID=Europe/Berlin:20261202T100000");
    set_str(&src->status, "tentative");
    set_str(&src->self_response, "accepted");
    /* The block as the target lists it: other offset notation, other title,
     * always confirmed, marked. */
    bm_event_t *blk =
        weekly("2026-11-25T09:00:00Z", "2026-11-25T10:00:00.000Z", "RRULE:FREQ=WEEKLY;BYDAY=WE");
    add_rec(blk, "EXDATE;TZID=Europe/Berlin:20261202T100000");
    set_str(&blk->summary, "Busy");
    set_str(&blk->visibility, "private");
    set_str(&blk->marker, "1");
    assert_shape_eq(src, blk, true);
    ev_free(blk);

    /* Google re-serialising the source with another offset. */
    blk = weekly("2026-11-25T04:00:00-05:00", "2026-11-25T05:00:00-05:00",
                 "RRULE:FREQ=WEEKLY;BYDAY=WE");
    add_rec(blk, "EXDATE;TZID=Europe/Berlin:20261202T100000");
    assert_shape_eq(src, blk, true);
    /* Recurrence lines are a set: order and trailing CR do not matter. */
    set_str(&blk->recurrence[0], "EXDATE;TZID=Europe/Berlin:20261202T100000\r");
    set_str(&blk->recurrence[1], "RRULE:FREQ=WEEKLY;BYDAY=WE");
    assert_shape_eq(src, blk, true);
    ev_free(blk);
    ev_free(src);

    bm_event_t *a = allday("2026-11-25", "2026-11-26"), *b = allday("2026-11-25", "2026-11-26");
    set_str(&b->summary, "Busy");
    assert_shape_eq(a, b, true);
    ev_free(a);
    ev_free(b);
}
END_TEST

START_TEST(shape_ignores_cosmetic_edits)
{
    bm_event_t *a =
        timed("2026-11-25T10:00:00+01:00", "2026-11-25T11:00:00+01:00", "Europe/Berlin");
    bm_event_t *b =
        timed("2026-11-25T10:00:00+01:00", "2026-11-25T11:00:00+01:00", "Europe/Berlin");
    set_str(&b->summary, "Renamed");
    set_str(&b->etag, "\"3\"");
    set_str(&b->updated, "2026-11-20T10:00:00.000Z");
    set_str(&b->self_response, "accepted"); /* an attendee change */
    set_str(&b->visibility, "public");
    set_str(&b->status, "tentative");
    assert_shape_eq(a, b, true);
    ev_free(a);
    ev_free(b);
}
END_TEST

START_TEST(shape_detects_busy_changes)
{
    bm_event_t *base = weekly("2026-11-25T10:00:00+01:00", "2026-11-25T11:00:00+01:00",
                              "RRULE:FREQ=WEEKLY;BYDAY=WE");
    bm_event_t *e;

    e = weekly("2026-11-25T10:30:00+01:00", "2026-11-25T11:00:00+01:00",
               "RRULE:FREQ=WEEKLY;BYDAY=WE");
    assert_shape_eq(base, e, false); /* start moved */
    ev_free(e);

    e = weekly("2026-11-25T10:00:00+01:00", "2026-11-25T11:30:00+01:00",
               "RRULE:FREQ=WEEKLY;BYDAY=WE");
    assert_shape_eq(base, e, false); /* end moved */
    ev_free(e);

    /* Same instants, another zone: the series' wall times differ after DST. */
    e = timed("2026-11-25T10:00:00+01:00", "2026-11-25T11:00:00+01:00", "Africa/Lagos");
    add_rec(e, "RRULE:FREQ=WEEKLY;BYDAY=WE");
    assert_shape_eq(base, e, false);
    ev_free(e);

    e = weekly("2026-11-25T10:00:00+01:00", "2026-11-25T11:00:00+01:00",
               "RRULE:FREQ=WEEKLY;BYDAY=WE;COUNT=4");
    assert_shape_eq(base, e, false); /* rule changed */
    ev_free(e);

    e = weekly("2026-11-25T10:00:00+01:00", "2026-11-25T11:00:00+01:00",
               "RRULE:FREQ=WEEKLY;BYDAY=WE");
    add_rec(e, "EXDATE;TZID=Europe/Berlin:20261202T100000");
    assert_shape_eq(base, e, false); /* an occurrence removed */
    ev_free(e);

    e = weekly("2026-11-25T10:00:00+01:00", "2026-11-25T11:00:00+01:00",
               "RRULE:FREQ=WEEKLY;BYDAY=WE");
    set_str(&e->status, "cancelled");
    assert_shape_eq(base, e, false); /* cancelled */
    ev_free(e);

    e = timed("2026-11-25T10:00:00+01:00", "2026-11-25T11:00:00+01:00", "Europe/Berlin");
    assert_shape_eq(base, e, false); /* no longer recurring */
    ev_free(e);
    ev_free(base);

    /* All-day versus timed midnight-to-midnight with the same instants. */
    bm_event_t *a = allday("2026-11-25", "2026-11-26");
    e = timed("2026-11-25T00:00:00Z", "2026-11-26T00:00:00Z", NULL);
    assert_shape_eq(a, e, false);
    ev_free(e);
    e = allday("2026-11-25", "2026-11-27");
    assert_shape_eq(a, e, false); /* all-day end moved */
    ev_free(e);
    ev_free(a);

    /* Single timed events: the zone alone does not matter, the instant does. */
    a = timed("2026-11-25T10:00:00+01:00", "2026-11-25T11:00:00+01:00", "Europe/Berlin");
    e = timed("2026-11-25T09:00:00Z", "2026-11-25T10:00:00Z", "UTC");
    assert_shape_eq(a, e, true);
    ev_free(e);
    e = timed("2026-11-25T10:00:00Z", "2026-11-25T11:00:00Z", "Europe/Berlin");
    assert_shape_eq(a, e, false);
    ev_free(e);
    ev_free(a);
}
END_TEST

/* ---- diff --------------------------------------------------------------------- */

START_TEST(diff_ops)
{
    ck_assert_int_eq(bm_plan_diff("s=d:2026-11-25|e=d:2026-11-26|r=|c=0", NULL), BM_OP_PUT);
    ck_assert_int_eq(bm_plan_diff("s=d:2026-11-25|e=d:2026-11-26|r=|c=0",
                                  "s=d:2026-11-25|e=d:2026-11-27|r=|c=0"),
                     BM_OP_PUT);
    ck_assert_int_eq(bm_plan_diff("s=d:2026-11-25|e=d:2026-11-26|r=|c=0",
                                  "s=d:2026-11-25|e=d:2026-11-26|r=|c=0"),
                     BM_OP_NONE);
    ck_assert_int_eq(bm_plan_diff(NULL, "s=d:2026-11-25|e=d:2026-11-26|r=|c=0"), BM_OP_DELETE);
    ck_assert_int_eq(bm_plan_diff(NULL, NULL), BM_OP_NONE);
    ck_assert_int_eq(BM_OP_NONE, 0);
}
END_TEST

START_TEST(diff_from_shapes)
{
    /* The engine's loop in miniature: a title edit costs nothing, a move a PUT. */
    bm_event_t *e = timed("2026-11-25T10:00:00+01:00", "2026-11-25T11:00:00+01:00", NULL);
    char *written = bm_plan_shape(e);
    set_str(&e->summary, "New title");
    char *now = bm_plan_shape(e);
    ck_assert_int_eq(bm_plan_diff(now, written), BM_OP_NONE);
    free(now);
    set_timed(&e->end, "2026-11-25T12:00:00+01:00", NULL);
    now = bm_plan_shape(e);
    ck_assert_int_eq(bm_plan_diff(now, written), BM_OP_PUT);
    free(now);
    free(written);
    ev_free(e);
}
END_TEST

/* ---- window: series at DST changes and rules libical cannot bound -------------- */

START_TEST(series_contradictory_rule_counts_as_in_window)
{
    /* Feb 30 never comes: libical searches for it second by second inside one
     * icalrecur_iterator_next call, which the step budget does not see. The
     * contract promises a bounded answer, and "cannot tell" means in window. */
    bm_plan_opts_t o = opts("2026-11-20T00:00:00Z", "2026-11-27T00:00:00Z");
    bm_event_t *e = timed("2026-01-01T10:00:00Z", "2026-01-01T11:00:00Z", "UTC");
    add_rec(e, "RRULE:FREQ=SECONDLY;BYMONTH=2;BYMONTHDAY=30");
    ck_assert(bm_plan_in_window(e, &o));
    ev_free(e);
}
END_TEST

START_TEST(series_exdate_at_an_ambiguous_local_time_removes_that_occurrence)
{
    /* Daily 01:30-01:45 New York from July. On 2026-11-01 01:30 happens twice; the
     * EXDATE names that very local time in the same zone, so whichever instant we
     * pick for the occurrence, the EXDATE must pick the same one. The window holds
     * only that day's occurrence (10-31 is 05:30Z, 11-02 is 06:30Z next day). */
    bm_plan_opts_t o = opts("2026-11-01T00:00:00Z", "2026-11-02T00:00:00Z");
    bm_event_t *e =
        timed("2026-07-01T01:30:00-04:00", "2026-07-01T01:45:00-04:00", "America/New_York");
    add_rec(e, "RRULE:FREQ=DAILY");
    ck_assert(bm_plan_in_window(e, &o));
    add_rec(e, "EXDATE;TZID=America/New_York:20261101T013000");
    ck_assert_msg(!bm_plan_in_window(e, &o), "the excluded occurrence still counts");
    ev_free(e);
}
END_TEST

START_TEST(series_occurrence_at_an_ambiguous_local_time_is_the_first_rfc5545)
{
    /* RFC 5545 3.3.5: a local time that occurs twice means the first one. Daily
     * 01:30 New York from January: on 2026-11-01 that is 01:30 EDT = 05:30Z; the
     * answer must not depend on whether DTSTART was in winter or summer. */
    bm_plan_opts_t o = opts("2026-11-01T05:30:00Z", "2026-11-01T05:45:00Z");
    bm_event_t *e =
        timed("2026-01-01T01:30:00-05:00", "2026-01-01T01:45:00-05:00", "America/New_York");
    add_rec(e, "RRULE:FREQ=DAILY");
    bm_event_t *s =
        timed("2026-07-01T01:30:00-04:00", "2026-07-01T01:45:00-04:00", "America/New_York");
    add_rec(s, "RRULE:FREQ=DAILY");
    ck_assert(bm_plan_in_window(s, &o)); /* summer DTSTART: first occurrence */
    ck_assert_msg(bm_plan_in_window(e, &o), "winter DTSTART puts it at 06:30Z (the second)");
    ev_free(s);
    ev_free(e);
}
END_TEST

START_TEST(shape_recurring_master_same_instant_other_notation_is_equal)
{
    /* A series with the same zone and instants written with another offset and
     * fractional seconds, lines in another order: same busy time, same shape. */
    bm_event_t *a = weekly("2026-11-25T10:00:00+01:00", "2026-11-25T11:00:00+01:00",
                           "RRULE:FREQ=WEEKLY;BYDAY=WE");
    add_rec(a, "EXDATE;TZID=Europe/Berlin:20261202T100000");
    add_rec(a, "RDATE;TZID=Europe/Berlin:20261203T100000");
    bm_event_t *b = timed("2026-11-25T09:00:00.000Z", "2026-11-25T10:00:00Z", "Europe/Berlin");
    add_rec(b, "RDATE;TZID=Europe/Berlin:20261203T100000");
    add_rec(b, "RRULE:FREQ=WEEKLY;BYDAY=WE");
    add_rec(b, "EXDATE;TZID=Europe/Berlin:20261202T100000");
    assert_shape_eq(a, b, true);
    ev_free(a);
    ev_free(b);
}
END_TEST

/* ---- group rules ([group G]) --------------------------------------------------- */

/* A config with one group "g" whose keys are given as "key", "value" pairs. */
static bm_config_t rules_cfg;

static const bm_rules_t *rules(const char *const *kv)
{
    char err[256];
    bm_config_init(&rules_cfg);
    ck_assert_int_eq(
        bm_config_set(&rules_cfg, "group g", "skip_shared_events", "true", err, sizeof(err)),
        BM_OK);
    for (size_t i = 0; kv != NULL && kv[i] != NULL; i += 2)
        ck_assert_msg(bm_config_set(&rules_cfg, "group g", kv[i], kv[i + 1], err, sizeof(err)) ==
                          BM_OK,
                      "%s: %s", kv[i], err);
    return bm_config_rules(&rules_cfg, "g");
}

static bm_plan_opts_t rules_opts(const bm_rules_t *r)
{
    bm_plan_opts_t o = opts("2026-01-01T00:00:00Z", "2027-06-01T00:00:00Z");
    o.busy_event_types = r->event_types;
    o.tentative_is_busy = r->tentative;
    o.rules = r;
    o.label = "Work";
    o.time_zone = "Europe/Berlin";
    return o;
}

static void assert_keep(const bm_event_t *e, const bm_plan_opts_t *o, bool keep, const char *why)
{
    const char *reason = NULL;
    ck_assert_int_eq(bm_plan_keep(e, o, &reason), keep);
    ck_assert_ptr_nonnull(reason);
    ck_assert_str_eq(reason, why);
}

START_TEST(rules_title_filters)
{
    static const char *const kv[] = {"exclude_title", "^(lunch|gym)\\b", NULL};
    bm_plan_opts_t o = rules_opts(rules(kv));
    bm_event_t *e = timed("2026-11-23T10:00:00Z", "2026-11-23T11:00:00Z", "UTC");
    assert_keep(e, &o, true, "busy");
    set_str(&e->summary, "LUNCH with Bob");
    assert_keep(e, &o, false, "exclude_title");
    set_str(&e->summary, "lunchtime talk"); /* \b: not a word boundary */
    assert_keep(e, &o, true, "busy");
    bm_config_dispose(&rules_cfg);

    static const char *const inc[] = {"include_title", "client|customer", NULL};
    o = rules_opts(rules(inc));
    assert_keep(e, &o, false, "include_title");
    set_str(&e->summary, "Call with Client X");
    assert_keep(e, &o, true, "busy");
    free(e->summary);
    e->summary = NULL; /* no title: matches nothing */
    assert_keep(e, &o, false, "include_title");
    ev_free(e);
    bm_config_dispose(&rules_cfg);
}
END_TEST

/* Titles beyond ASCII: case-insensitive and "." one character (read as UTF-8). */
START_TEST(rules_title_regex_unicode)
{
    static const char *const kv[] = {"exclude_title", "réunion|^.{3}$", "include_title", "é|日|Ü",
                                     NULL};
    bm_plan_opts_t o = rules_opts(rules(kv));
    bm_event_t *e = timed("2026-11-23T10:00:00Z", "2026-11-23T11:00:00Z", "UTC");
    set_str(&e->summary, "RÉUNION d'équipe");
    assert_keep(e, &o, false, "exclude_title");
    set_str(&e->summary, "日本語"); /* three characters, nine bytes */
    assert_keep(e, &o, false, "exclude_title");
    set_str(&e->summary, "日本語の会議");
    assert_keep(e, &o, true, "busy");
    set_str(&e->summary, "über alles"); /* ü matches Ü */
    assert_keep(e, &o, true, "busy");
    set_str(&e->summary, "plain ascii");
    assert_keep(e, &o, false, "include_title");
    ev_free(e);
    bm_config_dispose(&rules_cfg);
}
END_TEST

START_TEST(rules_types_all_day_tentative_unanswered)
{
    static const char *const kv[] = {"event_types", "default, workingLocation",
                                     "all_day",     "false",
                                     "tentative",   "false",
                                     "unanswered",  "false",
                                     NULL};
    bm_plan_opts_t o = rules_opts(rules(kv));
    bm_event_t *e = timed("2026-11-23T10:00:00Z", "2026-11-23T11:00:00Z", "UTC");
    assert_keep(e, &o, true, "busy");
    set_str(&e->event_type, "workingLocation");
    assert_keep(e, &o, true, "busy");
    set_str(&e->event_type, "outOfOffice");
    assert_keep(e, &o, false, "event_type");
    set_str(&e->event_type, "default");
    set_str(&e->self_response, "tentative");
    assert_keep(e, &o, false, "tentative");
    set_str(&e->self_response, "needsAction");
    assert_keep(e, &o, false, "unanswered");
    set_str(&e->self_response, "accepted");
    set_str(&e->status, "tentative");
    assert_keep(e, &o, false, "tentative");
    set_str(&e->status, "confirmed");
    bm_event_t *d = allday("2026-11-23", "2026-11-24");
    assert_keep(d, &o, false, "all_day");
    ev_free(d);
    ev_free(e);
    bm_config_dispose(&rules_cfg);

    /* the defaults keep all of them */
    o = rules_opts(rules(NULL));
    e = timed("2026-11-23T10:00:00Z", "2026-11-23T11:00:00Z", "UTC");
    set_str(&e->self_response, "needsAction");
    assert_keep(e, &o, true, "busy");
    set_str(&e->self_response, "tentative");
    assert_keep(e, &o, true, "busy");
    set_str(&e->event_type, "workingLocation");
    assert_keep(e, &o, false, "event_type");
    ev_free(e);
    bm_config_dispose(&rules_cfg);
}
END_TEST

/* tentative = false / unanswered = false read self's answer to an invitation.
 * An event with no self attendee that sits in my calendar is mine: busy. An
 * event I organise is mine too: busy, whatever my own attendee entry says (Google
 * leaves the organizer's entry at needsAction when attendees are added by API);
 * only its status tentative still counts as tentative. */
START_TEST(rules_tentative_unanswered_who_answers)
{
    static const char *const kv[] = {"tentative", "false", "unanswered", "false", NULL};
    bm_plan_opts_t o = rules_opts(rules(kv));
    bm_event_t *e = timed("2026-11-23T10:00:00Z", "2026-11-23T11:00:00Z", "UTC");
    /* attendees, none of them self: no answer of mine to wait for */
    assert_keep(e, &o, true, "busy");
    /* organizer self, no attendees */
    e->organizer_self = true;
    assert_keep(e, &o, true, "busy");
    /* organizer self, own attendee entry never answered or "maybe" */
    set_str(&e->self_response, "needsAction");
    assert_keep(e, &o, true, "busy");
    set_str(&e->self_response, "tentative");
    assert_keep(e, &o, true, "busy");
    set_str(&e->self_response, "declined"); /* declined stays declined */
    assert_keep(e, &o, false, "declined");
    set_str(&e->self_response, "accepted");
    set_str(&e->status, "tentative"); /* the event itself is tentative */
    assert_keep(e, &o, false, "tentative");
    set_str(&e->status, "confirmed");
    /* an invitation: self is an attendee, someone else organises */
    e->organizer_self = false;
    set_str(&e->self_response, "tentative");
    assert_keep(e, &o, false, "tentative");
    set_str(&e->self_response, "needsAction");
    assert_keep(e, &o, false, "unanswered");
    set_str(&e->self_response, "accepted");
    assert_keep(e, &o, true, "busy");
    ev_free(e);
    bm_config_dispose(&rules_cfg);

    /* only unanswered = false: a "maybe" is kept, an unanswered invitation not */
    static const char *const un[] = {"unanswered", "false", NULL};
    o = rules_opts(rules(un));
    e = timed("2026-11-23T10:00:00Z", "2026-11-23T11:00:00Z", "UTC");
    set_str(&e->self_response, "tentative");
    assert_keep(e, &o, true, "busy");
    set_str(&e->self_response, "needsAction");
    assert_keep(e, &o, false, "unanswered");
    ev_free(e);
    bm_config_dispose(&rules_cfg);
}
END_TEST

/* Declined and transparent are never mirrored, whatever the rules allow. */
START_TEST(rules_never_declined_or_transparent)
{
    static const char *const kv[] = {"event_types",
                                     "default,outOfOffice,focusTime,fromGmail,workingLocation",
                                     "include_title", ".", NULL};
    bm_plan_opts_t o = rules_opts(rules(kv));
    bm_event_t *e = timed("2026-11-23T10:00:00Z", "2026-11-23T11:00:00Z", "UTC");
    set_str(&e->self_response, "declined");
    assert_keep(e, &o, false, "declined");
    set_str(&e->self_response, "accepted");
    set_str(&e->transparency, "transparent");
    assert_keep(e, &o, false, "transparent");
    set_str(&e->transparency, "opaque");
    set_str(&e->status, "cancelled");
    assert_keep(e, &o, false, "cancelled");
    ev_free(e);
    bm_config_dispose(&rules_cfg);
}
END_TEST

START_TEST(rules_working_hours_single_events)
{
    static const char *const kv[] = {"working_hours", "Mon-Fri 08:00-18:00", NULL};
    bm_plan_opts_t o = rules_opts(rules(kv)); /* read in the calendar's zone, Europe/Berlin */
    /* Monday 2026-11-23 (CET, +01:00) */
    bm_event_t *e = timed("2026-11-23T06:00:00Z", "2026-11-23T07:00:00Z", "UTC"); /* 07-08 */
    assert_keep(e, &o, false, "working_hours"); /* ends as the hours start: no overlap */
    set_timed(&e->end, "2026-11-23T07:01:00Z", "UTC");
    assert_keep(e, &o, true, "busy");
    set_timed(&e->start, "2026-11-23T16:59:00Z", "UTC"); /* 17:59 local */
    set_timed(&e->end, "2026-11-23T19:00:00Z", "UTC");
    assert_keep(e, &o, true, "busy");
    set_timed(&e->start, "2026-11-23T17:00:00Z", "UTC"); /* 18:00 local */
    assert_keep(e, &o, false, "working_hours");
    /* Saturday */
    set_timed(&e->start, "2026-11-28T10:00:00Z", "UTC");
    set_timed(&e->end, "2026-11-28T11:00:00Z", "UTC");
    assert_keep(e, &o, false, "working_hours");
    /* Friday night into Saturday overlaps nothing; Sunday night into Monday does */
    set_timed(&e->start, "2026-11-27T20:00:00Z", "UTC");
    set_timed(&e->end, "2026-11-28T06:00:00Z", "UTC");
    assert_keep(e, &o, false, "working_hours");
    set_timed(&e->start, "2026-11-29T20:00:00Z", "UTC");
    set_timed(&e->end, "2026-11-30T07:30:00Z", "UTC");
    assert_keep(e, &o, true, "busy");
    /* an all-day event on a Saturday is not a timed event: working hours do not apply */
    bm_event_t *d = allday("2026-11-28", "2026-11-29");
    assert_keep(d, &o, true, "busy");
    ev_free(d);
    ev_free(e);
    bm_config_dispose(&rules_cfg);

    /* another zone than the calendar's, several clauses and a night shift */
    static const char *const kv2[] = {"working_hours",
                                      "Mon-Thu 09:00-12:00,13:00-17:00; Fri 22:00-24:00",
                                      "time_zone", "America/New_York", NULL};
    o = rules_opts(rules(kv2));
    e = timed("2026-11-23T17:00:00Z", "2026-11-23T18:00:00Z", "UTC"); /* Mon 12-13 EST */
    assert_keep(e, &o, false, "working_hours");
    set_timed(&e->start, "2026-11-23T17:30:00Z", "UTC");
    set_timed(&e->end, "2026-11-23T18:30:00Z", "UTC"); /* 12:30-13:30 */
    assert_keep(e, &o, true, "busy");
    set_timed(&e->start, "2026-11-28T04:30:00Z", "UTC"); /* Fri 23:30 EST */
    set_timed(&e->end, "2026-11-28T04:45:00Z", "UTC");
    assert_keep(e, &o, true, "busy");
    ev_free(e);
    bm_config_dispose(&rules_cfg);
}
END_TEST

/* The same UTC time is inside the hours on one side of a DST change and outside
 * on the other: hours are local. */
START_TEST(rules_working_hours_across_dst)
{
    static const char *const kv[] = {"working_hours", "Mon-Fri 08:00-18:00", "time_zone",
                                     "Europe/Berlin", NULL};
    bm_plan_opts_t o = rules_opts(rules(kv));
    o.time_zone = "UTC"; /* the rule's zone wins */
    /* DST starts 2026-03-29: 06:30Z is 07:30 CET on Monday 03-23, 08:30 CEST on 03-30 */
    bm_event_t *e = timed("2026-03-23T06:30:00Z", "2026-03-23T07:00:00Z", "UTC");
    assert_keep(e, &o, false, "working_hours");
    set_timed(&e->start, "2026-03-30T06:30:00Z", "UTC");
    set_timed(&e->end, "2026-03-30T07:00:00Z", "UTC");
    assert_keep(e, &o, true, "busy");
    /* DST ends 2026-10-25: 06:30Z is 08:30 CEST on 10-19, 07:30 CET on 10-26 */
    set_timed(&e->start, "2026-10-19T06:30:00Z", "UTC");
    set_timed(&e->end, "2026-10-19T07:00:00Z", "UTC");
    assert_keep(e, &o, true, "busy");
    set_timed(&e->start, "2026-10-26T06:30:00Z", "UTC");
    set_timed(&e->end, "2026-10-26T07:00:00Z", "UTC");
    assert_keep(e, &o, false, "working_hours");
    ev_free(e);

    /* A weekly series at a fixed UTC time: kept (some occurrences are in hours),
     * and exactly the occurrences before the change are off. */
    o.window_start = ts("2026-03-10T00:00:00Z");
    o.window_end = ts("2026-04-10T00:00:00Z");
    e = timed("2026-03-16T06:30:00Z", "2026-03-16T07:00:00Z", "UTC");
    add_rec(e, "RRULE:FREQ=WEEKLY;BYDAY=MO");
    int64_t *off;
    size_t n;
    bool any_on;
    ck_assert(bm_plan_series_hours(e, &o, &off, &n, &any_on));
    ck_assert(any_on);
    ck_assert_uint_eq(n, 2);
    ck_assert_int_eq(off[0], ts("2026-03-16T06:30:00Z"));
    ck_assert_int_eq(off[1], ts("2026-03-23T06:30:00Z"));
    free(off);
    assert_keep(e, &o, true, "busy");
    /* within the window only the off ones: a series that is never in hours is skipped */
    o.window_end = ts("2026-03-28T00:00:00Z");
    ck_assert(bm_plan_series_hours(e, &o, &off, &n, &any_on));
    ck_assert(!any_on);
    free(off);
    assert_keep(e, &o, false, "working_hours");
    /* a series in Berlin time is in hours on both sides: nothing off */
    o.window_end = ts("2026-04-10T00:00:00Z");
    bm_event_t *b = weekly("2026-03-16T08:30:00+01:00", "2026-03-16T09:00:00+01:00",
                           "RRULE:FREQ=WEEKLY;BYDAY=MO");
    ck_assert(bm_plan_series_hours(b, &o, &off, &n, &any_on));
    ck_assert(any_on);
    ck_assert_uint_eq(n, 0);
    free(off);
    ev_free(b);
    ev_free(e);
    bm_config_dispose(&rules_cfg);
}
END_TEST

START_TEST(rules_titles)
{
    static const char *const kv[] = {"block_summary", "Busy ({calendar}) {calendar}", NULL};
    bm_plan_opts_t o = rules_opts(rules(kv));
    o.block_summary = o.rules->block_summary;
    bm_event_t *e = timed("2026-11-23T10:00:00Z", "2026-11-23T11:00:00Z", "UTC");
    char *t = bm_plan_block_title(e, &o);
    ck_assert_str_eq(t, "Busy (Work) Work");
    free(t);
    bm_config_dispose(&rules_cfg);

    static const char *const kv2[] = {"copy_title", "true", NULL};
    o = rules_opts(rules(kv2));
    t = bm_plan_block_title(e, &o);
    ck_assert_str_eq(t, "Board meeting");
    /* the summary only: the body has no description, location or attendees */
    bm_plan_opts_t ob = o;
    ob.block_summary = t;
    char *body = bm_plan_block_body(e, "blockid0123456789abcdefghijklmno", "src", &ob);
    ck_assert_ptr_nonnull(strstr(body, "\"summary\":\"Board meeting\""));
    ck_assert_ptr_null(strstr(body, "location"));
    ck_assert_ptr_null(strstr(body, "attendees"));
    ck_assert_ptr_null(strstr(body, "description"));
    ck_assert_ptr_nonnull(strstr(body, "\"visibility\":\"private\""));
    free(body);
    free(t);
    free(e->summary);
    e->summary = NULL; /* no title: the group's title */
    t = bm_plan_block_title(e, &o);
    ck_assert_str_eq(t, "Busy");
    free(t);
    ev_free(e);
    bm_config_dispose(&rules_cfg);
}
END_TEST

START_TEST(rules_buffers)
{
    static const char *const kv[] = {"buffer_before", "15", "buffer_after", "10", NULL};
    bm_plan_opts_t o = rules_opts(rules(kv));
    bm_event_t *a =
        timed("2026-11-23T10:00:00+01:00", "2026-11-23T11:00:00+01:00", "Europe/Berlin");
    bm_event_t *b =
        timed("2026-11-23T11:15:00+01:00", "2026-11-23T12:00:00+01:00", "Europe/Berlin");
    bm_event_t ba, bb;
    bm_plan_block_event(a, &o, &ba);
    bm_plan_block_event(b, &o, &bb);
    ck_assert_int_eq(ba.start.epoch, a->start.epoch - 900);
    ck_assert_int_eq(ba.end.epoch, a->end.epoch + 600);
    ck_assert_str_eq(ba.start.date_time, "2026-11-23T08:45:00Z");
    ck_assert_str_eq(ba.start.time_zone, "Europe/Berlin");
    /* buffers make the two blocks overlap: both stay, each its own block */
    ck_assert_int_gt(ba.end.epoch, bb.start.epoch);
    assert_keep(a, &o, true, "busy");
    assert_keep(b, &o, true, "busy");
    char *sa = bm_plan_shape(&ba), *sb = bm_plan_shape(&bb), *src = bm_plan_shape(a);
    ck_assert_str_ne(sa, sb);
    ck_assert_str_ne(sa, src); /* the block's shape is its own, not the source's */
    free(sa);
    free(sb);
    free(src);
    bm_event_dispose(&ba);
    bm_event_dispose(&bb);
    /* all-day: no buffers */
    bm_event_t *d = allday("2026-11-23", "2026-11-24");
    bm_plan_block_event(d, &o, &ba);
    ck_assert_str_eq(ba.start.date, "2026-11-23");
    ck_assert_str_eq(ba.end.date, "2026-11-24");
    ck_assert_int_eq(ba.start.epoch, d->start.epoch);
    ck_assert_ptr_null(ba.start.date_time);
    bm_event_dispose(&ba);
    ev_free(d);
    ev_free(a);
    ev_free(b);
    bm_config_dispose(&rules_cfg);

    /* without buffers the times are copied as they are */
    o = rules_opts(rules(NULL));
    a = timed("2026-11-23T10:00:00+01:00", "2026-11-23T11:00:00+01:00", "Europe/Berlin");
    bm_plan_block_event(a, &o, &ba);
    ck_assert_str_eq(ba.start.date_time, "2026-11-23T10:00:00+01:00");
    bm_event_dispose(&ba);
    ev_free(a);
    bm_config_dispose(&rules_cfg);
}
END_TEST

/* A series' block moves as a whole: its EXDATE and UNTIL move with its start, so
 * it has the same occurrences, each shifted, and an instance keeps its id scheme. */
/* A PERIOD RDATE is an occurrence with its own end: buffers move both ends
 * (the start earlier, the end later), an explicit end and a duration alike. */
START_TEST(rules_buffers_on_a_period_rdate)
{
    static const char *const kv[] = {"buffer_before", "15", "buffer_after", "10", NULL};
    bm_plan_opts_t o = rules_opts(rules(kv));
    bm_event_t *e = weekly("2026-11-25T10:00:00+01:00", "2026-11-25T11:00:00+01:00",
                           "RRULE:FREQ=WEEKLY;COUNT=2");
    add_rec(e, "RDATE;VALUE=PERIOD:20261230T130000Z/20261230T150000Z,20261231T080000Z/PT3H");
    add_rec(e, "RDATE;TZID=Europe/Berlin:20261229T100000");
    bm_event_t blk;
    bm_plan_block_event(e, &o, &blk);
    ck_assert_int_eq(blk.n_recurrence, 3);
    ck_assert_str_eq(blk.recurrence[1], "RDATE;VALUE=PERIOD:20261230T124500Z/20261230T151000Z,"
                                        "20261231T074500Z/PT3H25M");
    ck_assert_str_eq(blk.recurrence[2], "RDATE;TZID=Europe/Berlin:20261229T094500");
    /* the block's period occurrence covers 12:45-15:10, not 12:45-15:00 */
    bm_plan_opts_t w = opts("2026-12-30T15:05:00Z", "2026-12-30T15:08:00Z");
    ck_assert(bm_plan_in_window(&blk, &w));
    w = opts("2026-12-30T12:46:00Z", "2026-12-30T12:50:00Z");
    ck_assert(bm_plan_in_window(&blk, &w));
    w = opts("2026-12-31T11:20:00Z", "2026-12-31T11:22:00Z"); /* 07:45 + 3h25m = 11:10 */
    ck_assert(!bm_plan_in_window(&blk, &w));
    w = opts("2026-12-31T11:05:00Z", "2026-12-31T11:08:00Z");
    ck_assert(bm_plan_in_window(&blk, &w));
    bm_event_dispose(&blk);
    /* without buffers the lines are copied as they are */
    bm_config_dispose(&rules_cfg);
    o = rules_opts(rules(NULL));
    bm_plan_block_event(e, &o, &blk);
    ck_assert_str_eq(blk.recurrence[1], e->recurrence[1]);
    bm_event_dispose(&blk);
    ev_free(e);
    bm_config_dispose(&rules_cfg);
}
END_TEST

START_TEST(rules_buffers_on_a_series)
{
    static const char *const kv[] = {"buffer_before", "15", NULL};
    bm_plan_opts_t o = rules_opts(rules(kv));
    bm_event_t *e = weekly("2026-11-25T10:00:00+01:00", "2026-11-25T11:00:00+01:00",
                           "RRULE:FREQ=WEEKLY;BYDAY=WE;UNTIL=20261216T090000Z");
    add_rec(e, "EXDATE;TZID=Europe/Berlin:20261202T100000,20261209T090000Z");
    bm_event_t blk;
    bm_plan_block_event(e, &o, &blk);
    ck_assert_str_eq(blk.recurrence[0], "RRULE:FREQ=WEEKLY;BYDAY=WE;UNTIL=20261216T084500Z");
    ck_assert_str_eq(blk.recurrence[1],
                     "EXDATE;TZID=Europe/Berlin:20261202T094500,20261209T084500Z");
    /* the excluded occurrences stay excluded in the block series */
    bm_plan_opts_t w = opts("2026-12-02T08:00:00Z", "2026-12-02T10:00:00Z");
    ck_assert(!bm_plan_in_window(&blk, &w));
    w = opts("2026-12-09T08:00:00Z", "2026-12-09T10:00:00Z");
    ck_assert(!bm_plan_in_window(&blk, &w));
    w = opts("2026-12-16T08:40:00Z", "2026-12-16T08:50:00Z"); /* the last, shifted */
    ck_assert(bm_plan_in_window(&blk, &w));
    w = opts("2026-12-23T08:00:00Z", "2026-12-23T10:00:00Z");
    ck_assert(!bm_plan_in_window(&blk, &w));
    bm_event_dispose(&blk);
    /* an exception: its original start moves too (the block series' occurrence) */
    bm_event_t *x =
        timed("2026-12-16T14:00:00+01:00", "2026-12-16T15:00:00+01:00", "Europe/Berlin");
    set_str(&x->recurring_event_id, "ev1");
    set_timed(&x->original_start, "2026-12-16T10:00:00+01:00", "Europe/Berlin");
    bm_plan_block_event(x, &o, &blk);
    char suffix[32];
    bm_plan_instance_suffix(&blk.original_start, suffix, sizeof(suffix));
    ck_assert_str_eq(suffix, "20261216T084500Z");
    ck_assert_int_eq(blk.n_recurrence, 0);
    bm_event_dispose(&blk);
    /* a cancelled occurrence's stub (no start): its original start moves too */
    bm_event_t *stub = ev_new("ev1_20261209T090000Z");
    set_str(&stub->status, "cancelled");
    set_str(&stub->recurring_event_id, "ev1");
    set_timed(&stub->original_start, "2026-12-09T10:00:00+01:00", "Europe/Berlin");
    bm_plan_block_event(stub, &o, &blk);
    bm_plan_instance_suffix(&blk.original_start, suffix, sizeof(suffix));
    ck_assert_str_eq(suffix, "20261209T084500Z");
    bm_event_dispose(&blk);
    ev_free(stub);
    ev_free(x);
    ev_free(e);
    bm_config_dispose(&rules_cfg);
}
END_TEST

Suite *make_suite(void)
{
    Suite *s = suite_create("engine/plan");
    TCase *tc = tcase_create("busy");
    tcase_add_test(tc, busy_plain_event);
    tcase_add_test(tc, busy_cancelled);
    tcase_add_test(tc, busy_tentative);
    tcase_add_test(tc, busy_transparent);
    tcase_add_test(tc, busy_declined);
    tcase_add_test(tc, busy_event_types);
    tcase_add_test(tc, busy_block_never_source);
    suite_add_tcase(s, tc);

    tc = tcase_create("window");
    tcase_add_test(tc, window_timed_edges);
    tcase_add_test(tc, window_allday_edges);
    tcase_add_test(tc, window_edges_are_end_exclusive_for_occurrences_and_original_slots);
    tcase_add_test(tc, window_instances_and_deletions);
    tcase_add_test(tc, series_started_long_before);
    tcase_add_test(tc, series_ended_before);
    tcase_add_test(tc, series_exdate_removes_only_occurrence);
    tcase_add_test(tc, series_weekly_across_dst);
    tcase_add_test(tc, series_rdate_and_dtstart);
    tcase_add_test(tc, series_future_and_unparsable);
    tcase_add_test(tc, series_step_budget);
    tcase_add_test(tc, series_without_zone_uses_offset);
    suite_add_tcase(s, tc);

    tc = tcase_create("ids");
    tcase_add_test(tc, block_id_properties);
    tcase_add_test(tc, instance_suffix);
    suite_add_tcase(s, tc);

    tc = tcase_create("body");
    tcase_add_test(tc, body_timed_single);
    tcase_add_test(tc, body_allday);
    tcase_add_test(tc, body_recurrence_master_and_instance);
    tcase_add_test(tc, body_summary_escaping);
    suite_add_tcase(s, tc);

    tc = tcase_create("shape");
    tcase_add_test(tc, shape_format);
    tcase_add_test(tc, shape_source_equals_block);
    tcase_add_test(tc, shape_ignores_cosmetic_edits);
    tcase_add_test(tc, shape_detects_busy_changes);
    tcase_add_test(tc, diff_ops);
    tcase_add_test(tc, diff_from_shapes);
    suite_add_tcase(s, tc);

    tc = tcase_create("series_edge_cases");
    tcase_add_test(tc, series_contradictory_rule_counts_as_in_window);
    tcase_add_test(tc, series_exdate_at_an_ambiguous_local_time_removes_that_occurrence);
    tcase_add_test(tc, series_occurrence_at_an_ambiguous_local_time_is_the_first_rfc5545);
    tcase_add_test(tc, shape_recurring_master_same_instant_other_notation_is_equal);
    suite_add_tcase(s, tc);

    tc = tcase_create("rules");
    tcase_add_test(tc, rules_title_filters);
    tcase_add_test(tc, rules_title_regex_unicode);
    tcase_add_test(tc, rules_types_all_day_tentative_unanswered);
    tcase_add_test(tc, rules_tentative_unanswered_who_answers);
    tcase_add_test(tc, rules_never_declined_or_transparent);
    tcase_add_test(tc, rules_working_hours_single_events);
    tcase_add_test(tc, rules_working_hours_across_dst);
    tcase_add_test(tc, rules_titles);
    tcase_add_test(tc, rules_buffers);
    tcase_add_test(tc, rules_buffers_on_a_series);
    tcase_add_test(tc, rules_buffers_on_a_period_rdate);
    suite_add_tcase(s, tc);
    return s;
}
