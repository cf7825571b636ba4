/*
 * One page of events.list and of calendarList.list, parsed as bm_gcal_list_events
 * and bm_gcal_list_calendars do (bm_json_parse, then the module's own page functions).
 * Those are static, so the module is compiled into the harness (its object is then
 * not taken from the library); core/gcal.c is not changed.
 */
#include "core/gcal.c"

#include "tests/fuzz/fuzz.h"

static int on_events(void *ud, bm_event_t *events, size_t n)
{
    size_t *seen = ud;
    for (size_t i = 0; i < n; i++)
        *seen +=
            (events[i].id != NULL ? strlen(events[i].id) : 0) + bm_event_is_all_day(&events[i]);
    return 0;
}

static int on_calendar(void *ud, const bm_gcal_calendar_t *cal)
{
    size_t *seen = ud;
    *seen += strlen(cal->id) + (cal->summary ? strlen(cal->summary) : 0) +
             (cal->time_zone ? strlen(cal->time_zone) : 0) +
             (cal->access_role ? strlen(cal->access_role) : 0);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int once;
    if (!once) {
        bm_log_set_level(BM_LOG_OFF); /* items that do not parse are logged */
        once = 1;
    }
    char perr[256];
    yajl_val root = bm_json_parse((const char *)data, size, perr, sizeof(perr));
    if (root != NULL) {
        size_t seen = 0;
        events_ctx_t x = {.calendar_id = "fuzz@example.com", .cb = on_events, .ud = &seen};
        (void)events_page(&x, root);
        free(x.next_sync_token);
        calendars_ctx_t c = {.cb = on_calendar, .ud = &seen};
        (void)calendars_page(&c, root);
        bm_json_free(root);
    }
    return 0;
}
