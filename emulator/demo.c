/*
 * emulator/demo.c: --seed-demo, a small world relative to today (README lists it):
 * alice@example.com (Europe/Berlin; primary + "Alice personal") and
 * bob@example.com (America/New_York), refresh tokens demo-refresh-alice/-bob.
 */
#include "emulator/emulator.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SCOPE "https://www.googleapis.com/auth/calendar"

typedef struct demo {
    void *tz;
    const char *tzname;
    int64_t today; /* floating ms of today's local midnight */
} demo_t;

static void demo_init(demo_t *d, const char *tzname)
{
    d->tzname = tzname;
    d->tz = emu_tz_get(tzname);
    int64_t local = emu_tz_from_utc(d->tz, bm_now_ms());
    d->today = local - ((local % 86400000LL) + 86400000LL) % 86400000LL;
}

/* "YYYY-MM-DDTHH:MM:00" local, day offset from today. */
static void local_dt(const demo_t *d, int day, int hour, int min, char out[32])
{
    char date[16];
    emu_fmt_date(d->today + (int64_t)day * 86400000LL, date);
    snprintf(out, 32, "%sT%02d:%02d:00", date, hour, min);
}

static void local_date(const demo_t *d, int day, char out[16])
{
    emu_fmt_date(d->today + (int64_t)day * 86400000LL, out);
}

static int run(int (*fn)(emu_calendar_t *, const char *, const char *, emu_resp_t *),
               emu_calendar_t *cal, const char *id, const char *json, char *err, size_t errlen)
{
    emu_resp_t rs;
    emu_resp_init(&rs);
    int rc = fn(cal, id, json, &rs);
    if (rc == BM_OK && rs.status != 200 && rs.status != 204)
        rc = bm_err(err, errlen, BM_EINVAL, "demo %s: %d %s", id != NULL ? id : "event", rs.status,
                    rs.body.data != NULL ? rs.body.data : "");
    emu_resp_dispose(&rs);
    return rc;
}

static int do_insert(emu_calendar_t *cal, const char *id, const char *json, emu_resp_t *rs)
{
    (void)id;
    emu_req_t rq;
    emu_req_init(&rq);
    rq.body = json;
    rq.body_len = strlen(json);
    emu_events_insert(cal, cal->owner, &rq, EMU_WF_ADMIN, rs);
    emu_req_dispose(&rq);
    return BM_OK;
}

static int do_patch(emu_calendar_t *cal, const char *id, const char *json, emu_resp_t *rs)
{
    emu_req_t rq;
    emu_req_init(&rq);
    rq.body = json;
    rq.body_len = strlen(json);
    emu_events_update(cal, id, &rq, true, EMU_WF_ADMIN, rs);
    emu_req_dispose(&rq);
    return BM_OK;
}

static int do_delete(emu_calendar_t *cal, const char *id, const char *json, emu_resp_t *rs)
{
    (void)json;
    emu_req_t rq;
    emu_req_init(&rq);
    emu_events_delete(cal, id, &rq, EMU_WF_ADMIN, rs);
    emu_req_dispose(&rq);
    return BM_OK;
}

static int timed(emu_calendar_t *cal, const demo_t *d, const char *id, const char *summary, int day,
                 int h, int m, int minutes, const char *extra, char *err, size_t errlen)
{
    char s[32], e[32];
    local_dt(d, day, h, m, s);
    int end_min = h * 60 + m + minutes;
    local_dt(d, day + end_min / 1440, (end_min % 1440) / 60, end_min % 60, e);
    char *json =
        bm_sprintf("{\"id\":\"%s\",\"summary\":\"%s\",\"start\":{\"dateTime\":\"%s\","
                   "\"timeZone\":\"%s\"},\"end\":{\"dateTime\":\"%s\",\"timeZone\":\"%s\"}%s%s}",
                   id, summary, s, d->tzname, e, d->tzname, extra != NULL ? "," : "",
                   extra != NULL ? extra : "");
    int rc = run(do_insert, cal, id, json, err, errlen);
    free(json);
    return rc;
}

int emu_seed_demo(char *err, size_t errlen)
{
    emu_user_t *alice, *bob;
    emu_calendar_t *personal;
    int rc;
    if (emu_user_create("alice@example.com", "Europe/Berlin", &alice) != BM_OK ||
        emu_user_create("bob@example.com", "America/New_York", &bob) != BM_OK)
        return bm_err(err, errlen, BM_EEXIST, "demo users exist already");
    emu_persist_token(emu_token_new(&emu.world.refresh, "", alice, SCOPE, 0, "demo-refresh-alice"),
                      "refresh");
    emu_persist_token(emu_token_new(&emu.world.refresh, "", bob, SCOPE, 0, "demo-refresh-bob"),
                      "refresh");
    free(alice->primary->summary);
    alice->primary->summary = bm_strdup("alice@example.com");
    if (emu_calendar_create(alice, "alice-personal@group.calendar.google.com", "Alice personal",
                            "Europe/Berlin", &personal) != BM_OK)
        return bm_err(err, errlen, BM_EEXIST, "demo calendar exists already");

    demo_t a, b;
    demo_init(&a, "Europe/Berlin");
    demo_init(&b, "America/New_York");
    emu_calendar_t *ac = alice->primary, *bc = bob->primary;

    /* Alice, primary */
    if ((rc = timed(ac, &a, "demo0planning", "Sprint planning", 0, 10, 0, 60,
                    "\"location\":\"Room 4\"", err, errlen)) != BM_OK ||
        (rc = timed(ac, &a, "demo0one0on0one", "1:1 Alice / Bob", 1, 14, 0, 30,
                    "\"attendees\":[{\"email\":\"alice@example.com\",\"self\":true,"
                    "\"organizer\":true,\"responseStatus\":\"accepted\"},{\"email\":"
                    "\"bob@example.com\",\"responseStatus\":\"accepted\"}]",
                    err, errlen)) != BM_OK ||
        (rc = timed(ac, &a, "demo0customer", "Customer call", 3, 16, 0, 60, NULL, err, errlen)) !=
            BM_OK ||
        (rc = timed(ac, &a, "demo0reading", "Reading time (free)", 1, 8, 0, 60,
                    "\"transparency\":\"transparent\"", err, errlen)) != BM_OK ||
        (rc = timed(ac, &a, "demo0vendor", "Vendor pitch", 2, 13, 0, 60,
                    "\"organizer\":{\"email\":\"sales@vendor.example.net\"},"
                    "\"creator\":{\"email\":\"sales@vendor.example.net\"},"
                    "\"attendees\":[{\"email\":\"sales@vendor.example.net\",\"organizer\":true,"
                    "\"responseStatus\":\"accepted\"},{\"email\":\"alice@example.com\","
                    "\"self\":true,\"responseStatus\":\"declined\"}]",
                    err, errlen)) != BM_OK ||
        (rc = timed(ac, &a, "demo0standup", "Daily sync", 0, 9, 0, 15,
                    "\"recurrence\":[\"RRULE:FREQ=DAILY;COUNT=7\"]", err, errlen)) != BM_OK)
        return rc;
    /* the series: one occurrence moved, one cancelled */
    char stamp[24], id[64], s[32], e[32];
    emu_fmt_basic_utc(emu_tz_to_utc(a.tz, a.today + 2 * 86400000LL + 9 * 3600000LL), stamp);
    snprintf(id, sizeof(id), "demo0standup_%s", stamp);
    local_dt(&a, 2, 11, 0, s);
    local_dt(&a, 2, 11, 15, e);
    char *json = bm_sprintf("{\"summary\":\"Daily sync (moved)\",\"start\":{\"dateTime\":\"%s\","
                            "\"timeZone\":\"Europe/Berlin\"},\"end\":{\"dateTime\":\"%s\","
                            "\"timeZone\":\"Europe/Berlin\"}}",
                            s, e);
    rc = run(do_patch, ac, id, json, err, errlen);
    free(json);
    if (rc != BM_OK)
        return rc;
    emu_fmt_basic_utc(emu_tz_to_utc(a.tz, a.today + 4 * 86400000LL + 9 * 3600000LL), stamp);
    snprintf(id, sizeof(id), "demo0standup_%s", stamp);
    if ((rc = run(do_delete, ac, id, NULL, err, errlen)) != BM_OK)
        return rc;
    char d0[16], d1[16], d5[16], d6[16];
    local_date(&a, 5, d5);
    local_date(&a, 6, d6);
    json = bm_sprintf("{\"id\":\"demo0offsite\",\"summary\":\"Team offsite\",\"start\":{\"date\":"
                      "\"%s\"},\"end\":{\"date\":\"%s\"}}",
                      d5, d6);
    rc = run(do_insert, ac, NULL, json, err, errlen);
    free(json);
    if (rc != BM_OK)
        return rc;
    local_date(&a, 0, d0);
    local_date(&a, 1, d1);
    json =
        bm_sprintf("{\"id\":\"demo0office\",\"summary\":\"Office\",\"eventType\":"
                   "\"workingLocation\",\"transparency\":\"transparent\",\"visibility\":"
                   "\"public\",\"workingLocationProperties\":{\"type\":\"officeLocation\","
                   "\"officeLocation\":{\"label\":\"Berlin office\"}},\"start\":{\"date\":\"%s\"},"
                   "\"end\":{\"date\":\"%s\"}}",
                   d0, d1);
    rc = run(do_insert, ac, NULL, json, err, errlen);
    free(json);
    if (rc != BM_OK)
        return rc;

    /* Alice, personal */
    if ((rc = timed(personal, &a, "demo0sport", "Gym", 1, 18, 0, 60, NULL, err, errlen)) != BM_OK ||
        (rc = timed(personal, &a, "demo0dentist", "Dentist", 3, 8, 0, 60, NULL, err, errlen)) !=
            BM_OK)
        return rc;

    /* Bob */
    if ((rc = timed(bc, &b, "demo0design", "Design review", 1, 11, 0, 60, NULL, err, errlen)) !=
            BM_OK ||
        (rc = timed(bc, &b, "demo0lunch", "Lunch", 2, 12, 0, 60, NULL, err, errlen)) != BM_OK ||
        (rc = timed(bc, &b, "demo0demo", "Sprint demo", 4, 15, 0, 60, NULL, err, errlen)) != BM_OK)
        return rc;
    return BM_OK;
}
