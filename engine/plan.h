/*
 * engine/plan.h: the pure part of the engine. Given a source event, decides
 * whether it makes its owner busy, whether it lies in the mirrored window, and
 * what the busy block mirroring it looks like. No I/O, no globals: every
 * function here is deterministic and unit-tested (tests/engine/test_plan.c).
 *
 * Strings returned by bm_plan_* are malloc'd and owned by the caller.
 */
#ifndef BM_ENGINE_PLAN_H
#define BM_ENGINE_PLAN_H

#include "core/event.h"

#include <stdbool.h>
#include <stdint.h>

/* Which eventTypes make an event busy (bit set). */
enum {
    BM_ETYPE_DEFAULT = 1 << 0,
    BM_ETYPE_OUT_OF_OFFICE = 1 << 1,
    BM_ETYPE_FOCUS_TIME = 1 << 2,
    BM_ETYPE_FROM_GMAIL = 1 << 3,
    BM_ETYPE_WORKING_LOCATION = 1 << 4,
    BM_ETYPE_BIRTHDAY = 1 << 5,
};
#define BM_ETYPE_BUSY_DEFAULT                                                                      \
    (BM_ETYPE_DEFAULT | BM_ETYPE_OUT_OF_OFFICE | BM_ETYPE_FOCUS_TIME | BM_ETYPE_FROM_GMAIL)

typedef struct bm_plan_opts {
    int64_t window_start; /* UTC seconds: now - past_days */
    int64_t window_end;   /* UTC seconds: now + future_days */
    const char *block_summary;
    unsigned busy_event_types; /* BM_ETYPE_* mask */
    bool tentative_is_busy;
} bm_plan_opts_t;

/* Length of a block id (base32hex, lowercase a-v and 0-9). */
#define BM_BLOCK_ID_LEN 32

/*
 * Whether ev makes its calendar's owner busy: status confirmed or tentative,
 * transparency opaque, not declined by the attendee marked self, an event type
 * in the mask, and not a busymirror block. *reason (may be NULL) gets a static
 * word ("busy", "cancelled", "tentative", "transparent", "declined",
 * "event_type", "block"); "tentative" when tentative events are not busy.
 * Absent status counts as confirmed; an eventType unknown to us is not busy.
 */
bool bm_plan_is_busy(const bm_event_t *ev, const bm_plan_opts_t *o, const char **reason);

/* Whether ev (single, or a series master through its recurrence, expanded with
 * libical in its time zone) has any time inside [window_start, window_end). */
bool bm_plan_in_window(const bm_event_t *ev, const bm_plan_opts_t *o);

/* The deterministic id of the block mirroring (group, source calendar, source
 * event) into target calendar: base32hex of a SHA-256 prefix, BM_BLOCK_ID_LEN
 * chars, NUL-terminated in out (at least BM_BLOCK_ID_LEN + 1 bytes). */
void bm_plan_block_id(const char *group, const char *src_calendar, const char *src_event,
                      const char *target_calendar, char *out);

/* The instance-id suffix Google uses for an occurrence starting at t:
 * "20261125T100000Z" (timed, in UTC) or "20261125" (all-day). */
void bm_plan_instance_suffix(const bm_evtime_t *original_start, char *out, size_t len);

/*
 * The JSON body of the block mirroring src: id (block_id), start/end copied
 * (all-day keeps date; timed keeps dateTime and timeZone), recurrence copied
 * for a series master, summary from opts, visibility private, transparency
 * opaque, status confirmed, reminders {useDefault:false, overrides:[]}, no
 * description/location/attendees/conferenceData, and
 * extendedProperties.private {BM_MARKER_KEY: "1", BM_MARKER_SRC_KEY: marker_src}.
 */
char *bm_plan_block_body(const bm_event_t *src, const char *block_id, const char *marker_src,
                         const bm_plan_opts_t *o);

/*
 * The busy-relevant shape of an event, as a canonical string: start and end
 * (date, or instant plus time zone), recurrence lines, and whether it is
 * cancelled. A block and its source have equal shapes when the block is right;
 * a title, description or attendee edit does not change it.
 */
char *bm_plan_shape(const bm_event_t *ev);

/* What the outbox must do for one (source event, target) pair. */
typedef enum { BM_OP_NONE = 0, BM_OP_PUT, BM_OP_DELETE } bm_op_kind_t;

/*
 * Compares what a block must look like with what was last recorded for it
 * (blocks.wanted). desired NULL = no block wanted; current NULL = no block
 * recorded. PUT when a block is wanted and none is recorded or it differs;
 * DELETE when none is wanted but one is recorded; NONE otherwise.
 */
bm_op_kind_t bm_plan_diff(const char *desired, const char *current);

#endif
