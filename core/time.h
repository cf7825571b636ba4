/*
 * core/time.h: instants as UTC seconds (int64_t) and their text forms: RFC 3339
 * parsing (with a time zone for local date-times) and formatting.
 *
 * Pure functions: nothing is allocated; output goes into the caller's buffer.
 */
#ifndef BM_CORE_TIME_H
#define BM_CORE_TIME_H

#include <stddef.h>
#include <stdint.h>

/* Parses RFC 3339 ("2026-11-24T10:00:00+01:00", "...Z", fractional seconds
 * allowed) or a date "YYYY-MM-DD" (midnight UTC) into UTC seconds. */
int bm_time_parse(const char *s, int64_t *out);
/* As bm_time_parse, but a date-time without offset ("2026-11-24T10:00:00") is
 * local time in the IANA zone time_zone (BM_EINVAL when the zone is unknown). */
int bm_time_parse_tz(const char *s, const char *time_zone, int64_t *out);
/* A local wall-clock time in a zone (an icaltimezone *) as UTC seconds, the way
 * RFC 5545 §3.3.5 reads it: a time that occurs twice (DST ends) is the first; a
 * time a gap skips (DST starts) uses the offset from before the gap. */
int64_t bm_time_local_to_utc(void *ical_zone, int year, int month, int day, int hour, int min,
                             int sec);
/* Formats UTC seconds as "YYYY-MM-DDTHH:MM:SSZ" into buf (at least 21 bytes). */
void bm_time_format(int64_t t, char *buf, size_t len);
/* Formats the UTC date of t as "YYYY-MM-DD" into buf (at least 11 bytes). */
void bm_time_format_date(int64_t t, char *buf, size_t len);

#endif
