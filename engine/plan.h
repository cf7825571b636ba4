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

#include "core/config.h" /* bm_rules_t, BM_ETYPE_* */
#include "core/event.h"

#include <stdbool.h>
#include <stdint.h>

/* How one source calendar is planned: the window, and its group's rules. The
 * engine fills one per source calendar (engine/sync.c); every pointer is
 * borrowed. */
typedef struct bm_plan_opts {
    int64_t window_start;      /* UTC seconds: now - past_days */
    int64_t window_end;        /* UTC seconds: now + future_days */
    const char *block_summary; /* title template of blocks; {calendar}: label */
    unsigned busy_event_types; /* BM_ETYPE_* mask */
    bool tentative_is_busy;    /* status tentative makes busy */
    /* The group's other rules (title filters, all-day, unanswered, tentative
     * answers, working hours, buffers, copy_title); NULL: none of them. */
    const bm_rules_t *rules;
    const char *label;     /* the source calendar's label, for {calendar} */
    const char *time_zone; /* the source calendar's zone (working hours' default) */
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

/*
 * Whether ev is mirrored under the rules of o: bm_plan_is_busy (so declined,
 * transparent and cancelled events never are), then o->rules in this order:
 * tentative (an answer "maybe" of self), unanswered (self's needsAction),
 * all_day, exclude_title, include_title (the summary; none counts as ""),
 * working_hours (timed events only; a series master is kept when one of its
 * occurrences in the window overlaps the hours, see bm_plan_series_hours).
 * *reason (may be NULL) gets "busy" or a static word naming what skipped it:
 * bm_plan_is_busy's words, or "unanswered", "all_day", "exclude_title",
 * "include_title", "working_hours" ("tentative" for both tentative rules).
 */
bool bm_plan_keep(const bm_event_t *ev, const bm_plan_opts_t *o, const char **reason);

/*
 * For a timed series master and rules with working_hours: expands the series
 * in the window (as bm_plan_in_window does) and returns in *off (malloc'd,
 * caller frees; NULL when none) the original start instants of the
 * occurrences that do not overlap the working hours, at most BM_PLAN_MAX_OFF
 * (the rest counts as in hours), and in *any_on whether one does. Returns
 * false when the expansion could not tell (then *off is empty, *any_on true).
 * Without working hours, or for an all-day or non-series event: true, no
 * occurrence off, *any_on true.
 */
#define BM_PLAN_MAX_OFF 2000
bool bm_plan_series_hours(const bm_event_t *ev, const bm_plan_opts_t *o, int64_t **off,
                          size_t *n_off, bool *any_on);

/* Whether [start, end) overlaps o's working hours (true without any); a
 * zero-length event counts when its instant is inside. */
bool bm_plan_in_hours(const bm_plan_opts_t *o, int64_t start, int64_t end);

/* The title of the block mirroring ev: with rules copy_title, ev's summary
 * (when it has one); else o->block_summary (NULL: "Busy") with every
 * "{calendar}" replaced by o->label. Caller frees. */
char *bm_plan_block_title(const bm_event_t *ev, const bm_plan_opts_t *o);

/*
 * What the block mirroring src looks like in time: a copy of src's id,
 * status, start, end, recurrence, recurring_event_id and original_start (into
 * *out, which the caller releases with bm_event_dispose), with the rules'
 * buffers applied to a timed event: start (and original_start) buffer_before
 * minutes earlier, end buffer_after minutes later; a series' EXDATE, RDATE and
 * RRULE UNTIL date-times move with its start, so that the block series has the
 * same occurrences, each shifted alike. An all-day event is never shifted.
 * Without buffers the times are copied verbatim.
 */
void bm_plan_block_event(const bm_event_t *src, const bm_plan_opts_t *o, bm_event_t *out);

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
