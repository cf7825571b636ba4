/* tests/core/test_event.c: event JSON parsing and RFC 3339 time handling. */
#include "core/event.h"
#include "core/util.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_tree.h>

static int parse(const char *json, bm_event_t *ev, char *err, size_t errlen)
{
    return bm_event_parse_json(json, strlen(json), ev, err, errlen);
}

/* ---- time ---- */

START_TEST(time_parse_utc_and_offsets)
{
    int64_t t;
    ck_assert_int_eq(bm_time_parse("1970-01-01T00:00:00Z", &t), 0);
    ck_assert_int_eq(t, 0);
    ck_assert_int_eq(bm_time_parse("2026-11-24T10:00:00Z", &t), 0);
    ck_assert_int_eq(t, 1795514400);
    ck_assert_int_eq(bm_time_parse("2026-11-24T11:00:00+01:00", &t), 0);
    ck_assert_int_eq(t, 1795514400);
    ck_assert_int_eq(bm_time_parse("2026-11-24T04:30:00-05:30", &t), 0);
    ck_assert_int_eq(t, 1795514400);
    ck_assert_int_eq(bm_time_parse("2026-11-24t10:00:00z", &t), 0);
    ck_assert_int_eq(t, 1795514400);
    ck_assert_int_eq(bm_time_parse("2026-11-24T10:00:00.123456Z", &t), 0);
    ck_assert_int_eq(t, 1795514400);
    ck_assert_int_eq(bm_time_parse("2026-11-24T10:00:00.5+00:00", &t), 0);
    ck_assert_int_eq(t, 1795514400);
    /* crossing a day boundary backwards */
    ck_assert_int_eq(bm_time_parse("2026-01-01T00:30:00+01:00", &t), 0);
    ck_assert_int_eq(t, 1767223800);
    ck_assert_int_eq(bm_time_parse("1969-12-31T23:59:59Z", &t), 0);
    ck_assert_int_eq(t, -1);
}
END_TEST

START_TEST(time_parse_dates)
{
    int64_t t;
    ck_assert_int_eq(bm_time_parse("2026-11-24", &t), 0);
    ck_assert_int_eq(t, 1795478400);
    ck_assert_int_eq(bm_time_parse("2024-02-29", &t), 0);
    ck_assert_int_eq(t, 1709164800);
    ck_assert_int_eq(bm_time_parse("2000-02-29", &t), 0);
}
END_TEST

START_TEST(time_parse_rejects)
{
    int64_t t = 42;
    const char *bad[] = {
        "",
        "2026",
        "2026-13-01",
        "2026-00-10",
        "2026-02-30",
        "2023-02-29",
        "1900-02-29",
        "2026-11-24T25:00:00Z",
        "2026-11-24T10:60:00Z",
        "2026-11-24T10:00:00",   /* no offset */
        "2026-11-24T10:00Z",     /* no seconds */
        "2026-11-24T10:00:00+1", /* short offset */
        "2026-11-24T10:00:00+01:00x",
        "2026-11-24T10:00:00.Z",
        "2026/11/24",
        "2026-11-24X10:00:00Z",
        "2026-11-24 ",
        "abcd-ef-gh",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(bm_time_parse(bad[i], &t) == BM_EINVAL, "accepted \"%s\"", bad[i]);
    ck_assert_int_eq(bm_time_parse(NULL, &t), BM_EINVAL);
    ck_assert_int_eq(t, 42);
}
END_TEST

START_TEST(time_parse_with_zone)
{
    int64_t t;
    /* local time in a zone: 10:00 in Berlin in November is 09:00 UTC */
    ck_assert_int_eq(bm_time_parse_tz("2026-11-24T10:00:00", "Europe/Berlin", &t), 0);
    ck_assert_int_eq(t, 1795510800);
    /* summer time: 10:00 CEST is 08:00 UTC */
    ck_assert_int_eq(bm_time_parse_tz("2026-07-01T10:00:00", "Europe/Berlin", &t), 0);
    ck_assert_int_eq(t, 1782892800);
    ck_assert_int_eq(bm_time_parse_tz("2026-07-01T10:00:00", "UTC", &t), 0);
    ck_assert_int_eq(t, 1782900000);
    /* an explicit offset wins over the zone */
    ck_assert_int_eq(bm_time_parse_tz("2026-11-24T10:00:00Z", "Europe/Berlin", &t), 0);
    ck_assert_int_eq(t, 1795514400);
    ck_assert_int_eq(bm_time_parse_tz("2026-11-24T10:00:00", NULL, &t), BM_EINVAL);
    ck_assert_int_eq(bm_time_parse_tz("2026-11-24T10:00:00", "Not/AZone", &t), BM_EINVAL);
}
END_TEST

START_TEST(time_format_round_trip)
{
    char buf[32];
    bm_time_format(0, buf, sizeof(buf));
    ck_assert_str_eq(buf, "1970-01-01T00:00:00Z");
    bm_time_format(1795514400, buf, sizeof(buf));
    ck_assert_str_eq(buf, "2026-11-24T10:00:00Z");
    bm_time_format(-1, buf, sizeof(buf));
    ck_assert_str_eq(buf, "1969-12-31T23:59:59Z");
    bm_time_format(951782400, buf, sizeof(buf)); /* 2000-02-29 */
    ck_assert_str_eq(buf, "2000-02-29T00:00:00Z");
    bm_time_format_date(1795514400, buf, sizeof(buf));
    ck_assert_str_eq(buf, "2026-11-24");
    /* every 7 hours over ~30 years round-trips */
    for (int64_t t = 946684800; t < 1900000000; t += 7 * 3600 + 13) {
        int64_t back;
        bm_time_format(t, buf, sizeof(buf));
        ck_assert_int_eq(bm_time_parse(buf, &back), 0);
        ck_assert_int_eq(back, t);
    }
}
END_TEST

/* ---- events ---- */

static const char *TIMED =
    "{\n"
    " \"kind\": \"calendar#event\",\n"
    " \"etag\": \"\\\"3412345678901234\\\"\",\n"
    " \"id\": \"7fj3n1e5kq8h1m4l2v0c9p6r3s\",\n"
    " \"status\": \"confirmed\",\n"
    " \"htmlLink\": \"https://www.google.com/calendar/event?eid=N2Zq\",\n"
    " \"created\": \"2026-11-01T08:12:44.000Z\",\n"
    " \"updated\": \"2026-11-02T09:13:45.117Z\",\n"
    " \"summary\": \"Quarterly review — Café\",\n"
    " \"description\": \"Agenda: \\\"numbers\\\"\",\n"
    " \"location\": \"Room 4\",\n"
    " \"creator\": {\"email\": \"alice@example.com\", \"self\": true},\n"
    " \"organizer\": {\"email\": \"bob@example.com\", \"displayName\": \"Bob\"},\n"
    " \"start\": {\"dateTime\": \"2026-11-24T10:00:00+01:00\", \"timeZone\": \"Europe/Berlin\"},\n"
    " \"end\": {\"dateTime\": \"2026-11-24T11:30:00+01:00\", \"timeZone\": \"Europe/Berlin\"},\n"
    " \"iCalUID\": \"7fj3n1e5kq8h1m4l2v0c9p6r3s@google.com\",\n"
    " \"sequence\": 2,\n"
    " \"attendees\": [\n"
    "  {\"email\": \"bob@example.com\", \"organizer\": true, \"responseStatus\": \"accepted\"},\n"
    "  {\"email\": \"alice@example.com\", \"self\": true, \"responseStatus\": \"tentative\"},\n"
    "  {\"email\": \"carol@example.com\", \"responseStatus\": \"declined\"}\n"
    " ],\n"
    " \"reminders\": {\"useDefault\": true},\n"
    " \"conferenceData\": {\"entryPoints\": [{\"entryPointType\": \"video\"}]},\n"
    " \"eventType\": \"default\"\n"
    "}";

START_TEST(event_timed_with_offsets)
{
    bm_event_t ev;
    char err[256] = "";
    ck_assert_msg(parse(TIMED, &ev, err, sizeof(err)) == 0, "%s", err);
    ck_assert_str_eq(ev.id, "7fj3n1e5kq8h1m4l2v0c9p6r3s");
    ck_assert_str_eq(ev.status, "confirmed");
    ck_assert_str_eq(ev.transparency, "opaque"); /* absent means opaque */
    ck_assert_ptr_null(ev.visibility);
    ck_assert_str_eq(ev.event_type, "default");
    ck_assert_str_eq(ev.summary, "Quarterly review — Café");
    ck_assert_str_eq(ev.etag, "\"3412345678901234\"");
    ck_assert_str_eq(ev.updated, "2026-11-02T09:13:45.117Z");
    ck_assert_str_eq(ev.ical_uid, "7fj3n1e5kq8h1m4l2v0c9p6r3s@google.com");
    ck_assert_ptr_null(ev.start.date);
    ck_assert_str_eq(ev.start.date_time, "2026-11-24T10:00:00+01:00");
    ck_assert_str_eq(ev.start.time_zone, "Europe/Berlin");
    ck_assert_int_eq(ev.start.epoch, 1795510800);
    ck_assert_int_eq(ev.end.epoch, 1795510800 + 5400);
    ck_assert_int_eq(ev.n_recurrence, 0);
    ck_assert_ptr_null(ev.recurring_event_id);
    ck_assert_ptr_null(ev.original_start.date_time);
    ck_assert_str_eq(ev.self_response, "tentative");
    ck_assert_ptr_null(ev.marker);
    ck_assert_ptr_null(ev.marker_src);
    ck_assert(!bm_event_is_all_day(&ev));
    bm_event_dispose(&ev);
    bm_event_dispose(&ev); /* idempotent */
}
END_TEST

START_TEST(event_all_day)
{
    const char *json = "{\"kind\":\"calendar#event\",\"etag\":\"\\\"1\\\"\",\"id\":\"allday01\","
                       "\"status\":\"confirmed\",\"summary\":\"Holiday\","
                       "\"transparency\":\"transparent\",\"visibility\":\"private\","
                       "\"start\":{\"date\":\"2026-12-24\"},\"end\":{\"date\":\"2026-12-27\"},"
                       "\"eventType\":\"outOfOffice\"}";
    bm_event_t ev;
    char err[256] = "";
    ck_assert_msg(parse(json, &ev, err, sizeof(err)) == 0, "%s", err);
    ck_assert(bm_event_is_all_day(&ev));
    ck_assert_str_eq(ev.start.date, "2026-12-24");
    ck_assert_ptr_null(ev.start.date_time);
    ck_assert_ptr_null(ev.start.time_zone);
    ck_assert_int_eq(ev.start.epoch, 1798070400);
    ck_assert_int_eq(ev.end.epoch, 1798070400 + 3 * 86400);
    ck_assert_str_eq(ev.transparency, "transparent");
    ck_assert_str_eq(ev.visibility, "private");
    ck_assert_str_eq(ev.event_type, "outOfOffice");
    ck_assert_ptr_null(ev.self_response);
    bm_event_dispose(&ev);
}
END_TEST

START_TEST(event_recurring_master_and_instance)
{
    const char *master =
        "{\"id\":\"weekly1\",\"status\":\"confirmed\",\"summary\":\"Standup\","
        "\"start\":{\"dateTime\":\"2026-11-02T09:00:00-08:00\",\"timeZone\":\"America/"
        "Los_Angeles\"},"
        "\"end\":{\"dateTime\":\"2026-11-02T09:15:00-08:00\",\"timeZone\":\"America/Los_Angeles\"},"
        "\"recurrence\":[\"RRULE:FREQ=WEEKLY;BYDAY=MO,WE,FR;UNTIL=20270101T000000Z\","
        "\"EXDATE;TZID=America/Los_Angeles:20261225T090000\","
        "\"RDATE;VALUE=DATE:20261231\"]}";
    bm_event_t ev;
    char err[256] = "";
    ck_assert_msg(parse(master, &ev, err, sizeof(err)) == 0, "%s", err);
    ck_assert_int_eq(ev.n_recurrence, 3);
    ck_assert_str_eq(ev.recurrence[0], "RRULE:FREQ=WEEKLY;BYDAY=MO,WE,FR;UNTIL=20270101T000000Z");
    ck_assert_str_eq(ev.recurrence[1], "EXDATE;TZID=America/Los_Angeles:20261225T090000");
    ck_assert_str_eq(ev.recurrence[2], "RDATE;VALUE=DATE:20261231");
    ck_assert_int_eq(ev.start.epoch, 1793638800);
    ck_assert_str_eq(ev.start.time_zone, "America/Los_Angeles");
    bm_event_dispose(&ev);

    const char *instance =
        "{\"id\":\"weekly1_20261104T170000Z\",\"status\":\"confirmed\",\"summary\":\"Standup\","
        "\"start\":{\"dateTime\":\"2026-11-04T10:00:00-08:00\",\"timeZone\":\"America/"
        "Los_Angeles\"},"
        "\"end\":{\"dateTime\":\"2026-11-04T10:15:00-08:00\",\"timeZone\":\"America/Los_Angeles\"},"
        "\"recurringEventId\":\"weekly1\","
        "\"originalStartTime\":{\"dateTime\":\"2026-11-04T09:00:00-08:00\",\"timeZone\":\"America/"
        "Los_Angeles\"}}";
    ck_assert_msg(parse(instance, &ev, err, sizeof(err)) == 0, "%s", err);
    ck_assert_str_eq(ev.recurring_event_id, "weekly1");
    ck_assert_str_eq(ev.original_start.date_time, "2026-11-04T09:00:00-08:00");
    ck_assert_int_eq(ev.original_start.epoch, 1793811600);
    ck_assert_int_eq(ev.start.epoch, 1793811600 + 3600);
    bm_event_dispose(&ev);
}
END_TEST

START_TEST(event_cancelled_stubs)
{
    bm_event_t ev;
    char err[256] = "";
    ck_assert_msg(parse("{\"kind\":\"calendar#event\",\"etag\":\"\\\"9\\\"\",\"id\":\"gone1\","
                        "\"status\":\"cancelled\"}",
                        &ev, err, sizeof(err)) == 0,
                  "%s", err);
    ck_assert_str_eq(ev.id, "gone1");
    ck_assert_str_eq(ev.status, "cancelled");
    ck_assert_ptr_null(ev.start.date);
    ck_assert_ptr_null(ev.start.date_time);
    ck_assert_int_eq(ev.start.epoch, 0);
    ck_assert_ptr_null(ev.summary);
    bm_event_dispose(&ev);

    /* a cancelled occurrence of a series */
    ck_assert_msg(parse("{\"id\":\"weekly1_20261106T170000Z\",\"status\":\"cancelled\","
                        "\"recurringEventId\":\"weekly1\",\"originalStartTime\":{\"dateTime\":"
                        "\"2026-11-06T09:00:00-08:00\",\"timeZone\":\"America/Los_Angeles\"}}",
                        &ev, err, sizeof(err)) == 0,
                  "%s", err);
    ck_assert_str_eq(ev.recurring_event_id, "weekly1");
    ck_assert_int_eq(ev.original_start.epoch, 1793984400);
    bm_event_dispose(&ev);

    /* a cancelled all-day occurrence */
    ck_assert_msg(parse("{\"id\":\"daily_20261106\",\"status\":\"cancelled\","
                        "\"recurringEventId\":\"daily\",\"originalStartTime\":{\"date\":"
                        "\"2026-11-06\"}}",
                        &ev, err, sizeof(err)) == 0,
                  "%s", err);
    ck_assert_str_eq(ev.original_start.date, "2026-11-06");
    ck_assert_int_eq(ev.original_start.epoch, 1793923200);
    bm_event_dispose(&ev);
}
END_TEST

START_TEST(event_self_declined)
{
    const char *json = "{\"id\":\"inv1\",\"status\":\"confirmed\","
                       "\"start\":{\"dateTime\":\"2026-11-24T10:00:00Z\"},"
                       "\"end\":{\"dateTime\":\"2026-11-24T11:00:00Z\"},"
                       "\"attendees\":[{\"email\":\"x@example.com\",\"responseStatus\":"
                       "\"accepted\",\"self\":false},"
                       "{\"email\":\"me@example.com\",\"self\":true,\"responseStatus\":"
                       "\"declined\",\"comment\":\"sorry\"}]}";
    bm_event_t ev;
    char err[256] = "";
    ck_assert_msg(parse(json, &ev, err, sizeof(err)) == 0, "%s", err);
    ck_assert_str_eq(ev.self_response, "declined");
    bm_event_dispose(&ev);
}
END_TEST

START_TEST(event_markers)
{
    const char *json = "{\"id\":\"bm0a1b2c3d4e5f\",\"status\":\"confirmed\",\"summary\":\"Busy\","
                       "\"transparency\":\"opaque\",\"visibility\":\"private\","
                       "\"start\":{\"date\":\"2026-11-24\"},\"end\":{\"date\":\"2026-11-25\"},"
                       "\"extendedProperties\":{\"private\":{\"busymirror\":\"1\","
                       "\"busymirror_src\":\"work@example.com/7fj3n1e5\",\"other\":\"x\"},"
                       "\"shared\":{\"busymirror\":\"shared-not-ours\"}}}";
    bm_event_t ev;
    char err[256] = "";
    ck_assert_msg(parse(json, &ev, err, sizeof(err)) == 0, "%s", err);
    ck_assert_str_eq(ev.marker, "1");
    ck_assert_str_eq(ev.marker_src, "work@example.com/7fj3n1e5");
    bm_event_dispose(&ev);

    /* only shared properties: not a block */
    ck_assert_int_eq(parse("{\"id\":\"x12345\",\"extendedProperties\":{\"shared\":{"
                           "\"busymirror\":\"1\"}}}",
                           &ev, err, sizeof(err)),
                     0);
    ck_assert_ptr_null(ev.marker);
    bm_event_dispose(&ev);
}
END_TEST

START_TEST(event_local_datetime_uses_zone)
{
    const char *json = "{\"id\":\"loc1\",\"start\":{\"dateTime\":\"2026-11-24T10:00:00\","
                       "\"timeZone\":\"Europe/Berlin\"},\"end\":{\"dateTime\":"
                       "\"2026-11-24T11:00:00\",\"timeZone\":\"Europe/Berlin\"}}";
    bm_event_t ev;
    char err[256] = "";
    ck_assert_msg(parse(json, &ev, err, sizeof(err)) == 0, "%s", err);
    ck_assert_int_eq(ev.start.epoch, 1795510800);
    ck_assert_int_eq(ev.end.epoch, 1795514400);
    bm_event_dispose(&ev);
}
END_TEST

START_TEST(event_rejects_malformed)
{
    bm_event_t ev;
    char err[256];
    const char *bad[] = {
        "[]",
        "{}",
        "{\"id\":\"\"}",
        "{\"id\":42}",
        "{\"id\":\"a1\",\"status\":7}",
        "{\"id\":\"a1\",\"start\":\"2026-11-24\"}",
        "{\"id\":\"a1\",\"start\":{}}",
        "{\"id\":\"a1\",\"start\":{\"dateTime\":\"yesterday\"}}",
        "{\"id\":\"a1\",\"start\":{\"date\":\"2026-11-24T10:00:00Z\"}}",
        "{\"id\":\"a1\",\"end\":{\"dateTime\":\"2026-11-24T10:00:00\"}}",
        "{\"id\":\"a1\",\"recurrence\":\"RRULE:FREQ=DAILY\"}",
        "{\"id\":\"a1\",\"recurrence\":[1]}",
        "{\"id\":\"a1\",\"extendedProperties\":{\"private\":{\"busymirror\":1}}}",
        "{\"id\":\"a1\"",
        "",
        "nonsense",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        ck_assert_msg(parse(bad[i], &ev, err, sizeof(err)) == BM_EINVAL, "accepted %s", bad[i]);
        ck_assert_msg(err[0] != '\0', "no message for %s", bad[i]);
        ck_assert_ptr_null(ev.id); /* disposed on failure */
    }
    ck_assert_int_eq(bm_event_parse(NULL, &ev, err, sizeof(err)), BM_EINVAL);
}
END_TEST

START_TEST(event_nulls_are_absent)
{
    bm_event_t ev;
    char err[256] = "";
    ck_assert_msg(parse("{\"id\":\"n1\",\"summary\":null,\"transparency\":null,\"start\":null,"
                        "\"recurrence\":null,\"attendees\":null,\"extendedProperties\":null}",
                        &ev, err, sizeof(err)) == 0,
                  "%s", err);
    ck_assert_ptr_null(ev.summary);
    ck_assert_str_eq(ev.transparency, "opaque");
    bm_event_dispose(&ev);
}
END_TEST

START_TEST(event_parse_from_tree)
{
    /* the yajl_val entry point, as the list code uses it */
    char perr[128];
    yajl_val root = yajl_tree_parse("{\"items\":[{\"id\":\"aa111\"},{\"id\":\"bb222\","
                                    "\"status\":\"tentative\"}]}",
                                    perr, sizeof(perr));
    ck_assert_ptr_nonnull(root);
    const char *path[] = {"items", NULL};
    yajl_val items = yajl_tree_get(root, path, yajl_t_array);
    ck_assert_ptr_nonnull(items);
    bm_event_t ev;
    char err[128];
    ck_assert_int_eq(bm_event_parse(items->u.array.values[1], &ev, err, sizeof(err)), 0);
    ck_assert_str_eq(ev.id, "bb222");
    ck_assert_str_eq(ev.status, "tentative");
    bm_event_dispose(&ev);
    yajl_tree_free(root);
}
END_TEST

/* ---- review ---- */

START_TEST(time_parse_zone_ambiguous_and_skipped_times_follow_rfc5545)
{
    /* RFC 5545 3.3.5, its own examples: TZID=America/New_York:20071104T013000
     * (occurs twice) is the first one, 01:30 EDT; 20070311T023000 (does not exist)
     * uses the offset before the gap: 03:30 EDT. */
    int64_t t, want;
    ck_assert_int_eq(bm_time_parse("2007-11-04T05:30:00Z", &want), 0);
    ck_assert_int_eq(bm_time_parse_tz("2007-11-04T01:30:00", "America/New_York", &t), 0);
    ck_assert_msg(t == want, "01:30 on the fall-back day is %+lld s off the first occurrence",
                  (long long)(t - want));
    ck_assert_int_eq(bm_time_parse("2007-03-11T07:30:00Z", &want), 0);
    ck_assert_int_eq(bm_time_parse_tz("2007-03-11T02:30:00", "America/New_York", &t), 0);
    ck_assert_msg(t == want, "02:30 in the spring gap is %+lld s off RFC 5545",
                  (long long)(t - want));
}
END_TEST

START_TEST(event_another_attendees_decline_is_not_self)
{
    const char *json = "{\"id\":\"m1\",\"attendees\":[{\"email\":\"bob@example.com\","
                       "\"responseStatus\":\"declined\"},{\"email\":\"alice@example.com\","
                       "\"self\":false,\"responseStatus\":\"declined\"},{\"email\":"
                       "\"me@example.com\",\"self\":true,\"organizer\":true,\"responseStatus\":"
                       "\"accepted\"}],\"extendedProperties\":{\"private\":{\"other\":\"x\"},"
                       "\"shared\":{\"busymirror\":\"1\"}}}";
    bm_event_t ev;
    char err[256] = "";
    ck_assert_msg(parse(json, &ev, err, sizeof(err)) == 0, "%s", err);
    ck_assert_str_eq(ev.self_response, "accepted");
    ck_assert(ev.organizer_self);  /* self's attendee entry says it organises */
    ck_assert_ptr_null(ev.marker); /* only the private copy marks a block */
    bm_event_dispose(&ev);
}
END_TEST

/* Who organises: organizer.self, or self's own attendee entry; else an invitation. */
START_TEST(event_organizer_self)
{
    bm_event_t ev;
    char err[256] = "";
    ck_assert_msg(parse("{\"id\":\"o1\",\"organizer\":{\"email\":\"me@example.com\","
                        "\"self\":true}}",
                        &ev, err, sizeof(err)) == 0,
                  "%s", err);
    ck_assert(ev.organizer_self);
    ck_assert_ptr_null(ev.self_response);
    bm_event_dispose(&ev);
    ck_assert_msg(parse("{\"id\":\"o2\",\"organizer\":{\"email\":\"bob@example.com\"},"
                        "\"attendees\":[{\"email\":\"me@example.com\",\"self\":true,"
                        "\"responseStatus\":\"needsAction\"}]}",
                        &ev, err, sizeof(err)) == 0,
                  "%s", err);
    ck_assert(!ev.organizer_self);
    ck_assert_str_eq(ev.self_response, "needsAction");
    bm_event_dispose(&ev);
}
END_TEST

Suite *make_suite(void)
{
    Suite *s = suite_create("event");
    TCase *tc = tcase_create("time");
    tcase_add_test(tc, time_parse_utc_and_offsets);
    tcase_add_test(tc, time_parse_dates);
    tcase_add_test(tc, time_parse_rejects);
    tcase_add_test(tc, time_parse_with_zone);
    tcase_add_test(tc, time_format_round_trip);
    suite_add_tcase(s, tc);
    tc = tcase_create("event");
    tcase_add_test(tc, event_timed_with_offsets);
    tcase_add_test(tc, event_all_day);
    tcase_add_test(tc, event_recurring_master_and_instance);
    tcase_add_test(tc, event_cancelled_stubs);
    tcase_add_test(tc, event_self_declined);
    tcase_add_test(tc, event_markers);
    tcase_add_test(tc, event_local_datetime_uses_zone);
    tcase_add_test(tc, event_rejects_malformed);
    tcase_add_test(tc, event_nulls_are_absent);
    tcase_add_test(tc, event_parse_from_tree);
    suite_add_tcase(s, tc);
    tc = tcase_create("zones_and_attendees");
    tcase_add_test(tc, time_parse_zone_ambiguous_and_skipped_times_follow_rfc5545);
    tcase_add_test(tc, event_another_attendees_decline_is_not_self);
    tcase_add_test(tc, event_organizer_self);
    suite_add_tcase(s, tc);
    return s;
}

#include "check_main.h"
