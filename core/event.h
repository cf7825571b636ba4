/*
 * core/event.h: the part of a Google Calendar event busymirror reasons about.
 *
 * Parsed from events.list / events.get JSON by bm_event_parse(). Every string
 * is heap-owned by the event and released by bm_event_dispose(); NULL means the
 * field was absent. Unknown fields are ignored.
 */
#ifndef BM_CORE_EVENT_H
#define BM_CORE_EVENT_H

#include "core/time.h" /* event times are UTC seconds; their text forms */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* start, end or originalStartTime. */
typedef struct bm_evtime {
    char *date;      /* "YYYY-MM-DD" for all-day, else NULL */
    char *date_time; /* RFC 3339 as Google sent it, else NULL */
    char *time_zone; /* IANA name or NULL */
    int64_t epoch;   /* the instant in UTC seconds (all-day: midnight UTC of date) */
} bm_evtime_t;

typedef struct bm_event {
    char *id;
    char *status;       /* confirmed | tentative | cancelled */
    char *transparency; /* opaque (also when absent) | transparent */
    char *visibility;
    char *event_type; /* default when absent */
    char *summary;
    char *etag;
    char *updated;
    char *ical_uid;
    bm_evtime_t start;
    bm_evtime_t end;
    char **recurrence; /* RRULE/EXRULE/RDATE/EXDATE lines */
    size_t n_recurrence;
    char *recurring_event_id;
    bm_evtime_t original_start;
    char *self_response; /* responseStatus of the attendee with self:true, else NULL */
    bool organizer_self; /* organizer.self: the calendar's owner organises it */
    /* extendedProperties.private values busymirror writes on its blocks */
    char *marker;     /* value of "busymirror" (non-NULL means: a busymirror block) */
    char *marker_src; /* value of "busymirror_src": source calendar and event */
} bm_event_t;

/* Private extended property keys (at most 44 characters, Google drops longer). */
#define BM_MARKER_KEY     "busymirror"
#define BM_MARKER_SRC_KEY "busymirror_src"

/* Parses one event object (a yajl_val cast to void*, to keep yajl out of this
 * header). Returns 0 or BM_EINVAL with err set; on failure ev is disposed.
 * transparency is set to "opaque" and event_type to "default" when absent (as
 * Google means them); every other absent field stays NULL. Only "id" is required,
 * so the cancelled stubs of incremental listings parse (status "cancelled", maybe
 * recurring_event_id and original_start, nothing else). A start/end/originalStartTime
 * with a dateTime lacking an offset is resolved in its timeZone (libical). */
int bm_event_parse(const void *yajl_obj, bm_event_t *ev, char *err, size_t errlen);
/* Parses a JSON text holding one event. */
int bm_event_parse_json(const char *json, size_t len, bm_event_t *ev, char *err, size_t errlen);
void bm_event_dispose(bm_event_t *ev);

/* True when the event is all-day (start has a date and no dateTime). */
bool bm_event_is_all_day(const bm_event_t *ev);

#endif
