/*
 * core/event.c: Google Calendar event JSON (yajl tree) to bm_event_t. Times are
 * parsed by core/time.c.
 */
#include "core/event.h"
#include "core/json.h"
#include "core/time.h"
#include "core/util.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_tree.h>

/* ---- events ---- */

static yajl_val field(yajl_val obj, const char *name)
{
    if (!YAJL_IS_OBJECT(obj))
        return NULL;
    for (size_t i = 0; i < obj->u.object.len; i++)
        if (strcmp(obj->u.object.keys[i], name) == 0)
            return obj->u.object.values[i];
    return NULL;
}

/* A string member; BM_EINVAL when present but not a string (null counts as absent). */
static int get_str(yajl_val obj, const char *name, char **out, char *err, size_t errlen)
{
    yajl_val v = field(obj, name);
    if (v == NULL || YAJL_IS_NULL(v))
        return BM_OK;
    if (!YAJL_IS_STRING(v))
        return bm_err(err, errlen, BM_EINVAL, "event field %s is not a string", name);
    free(*out);
    *out = bm_strdup(YAJL_GET_STRING(v));
    return BM_OK;
}

static int parse_evtime(yajl_val obj, const char *name, bm_evtime_t *t, char *err, size_t errlen)
{
    int rc = BM_OK;
    yajl_val v = field(obj, name);
    if (v == NULL || YAJL_IS_NULL(v))
        goto out;
    if (!YAJL_IS_OBJECT(v)) {
        rc = bm_err(err, errlen, BM_EINVAL, "event field %s is not an object", name);
        goto out;
    }
    if ((rc = get_str(v, "date", &t->date, err, errlen)) != BM_OK ||
        (rc = get_str(v, "dateTime", &t->date_time, err, errlen)) != BM_OK ||
        (rc = get_str(v, "timeZone", &t->time_zone, err, errlen)) != BM_OK)
        goto out;
    if (t->date_time != NULL) {
        if (bm_time_parse_tz(t->date_time, t->time_zone, &t->epoch) != BM_OK) {
            rc = bm_err(err, errlen, BM_EINVAL, "%s.dateTime: bad time \"%.64s\"%s%.64s", name,
                        t->date_time, t->time_zone ? " in " : "", t->time_zone ? t->time_zone : "");
            goto out;
        }
    } else if (t->date != NULL) {
        if (strlen(t->date) != 10 || bm_time_parse(t->date, &t->epoch) != BM_OK) {
            rc = bm_err(err, errlen, BM_EINVAL, "%s.date: bad date \"%.64s\"", name, t->date);
            goto out;
        }
    } else {
        rc = bm_err(err, errlen, BM_EINVAL, "%s has neither date nor dateTime", name);
        goto out;
    }
out:
    return rc;
}

static void evtime_dispose(bm_evtime_t *t)
{
    free(t->date);
    free(t->date_time);
    free(t->time_zone);
    memset(t, 0, sizeof(*t));
}

void bm_event_dispose(bm_event_t *ev)
{
    if (ev == NULL)
        return;
    free(ev->id);
    free(ev->status);
    free(ev->transparency);
    free(ev->visibility);
    free(ev->event_type);
    free(ev->summary);
    free(ev->etag);
    free(ev->updated);
    free(ev->ical_uid);
    evtime_dispose(&ev->start);
    evtime_dispose(&ev->end);
    for (size_t i = 0; i < ev->n_recurrence; i++)
        free(ev->recurrence[i]);
    free(ev->recurrence);
    free(ev->recurring_event_id);
    evtime_dispose(&ev->original_start);
    free(ev->self_response);
    free(ev->marker);
    free(ev->marker_src);
    memset(ev, 0, sizeof(*ev));
}

static int parse_recurrence(yajl_val obj, bm_event_t *ev, char *err, size_t errlen)
{
    yajl_val v = field(obj, "recurrence");
    if (v == NULL || YAJL_IS_NULL(v))
        return BM_OK;
    if (!YAJL_IS_ARRAY(v))
        return bm_err(err, errlen, BM_EINVAL, "event field recurrence is not an array");
    size_t n = v->u.array.len;
    ev->recurrence = bm_calloc(n, sizeof(char *));
    for (size_t i = 0; i < n; i++) {
        yajl_val line = v->u.array.values[i];
        if (!YAJL_IS_STRING(line))
            return bm_err(err, errlen, BM_EINVAL, "recurrence[%zu] is not a string", i);
        ev->recurrence[ev->n_recurrence++] = bm_strdup(YAJL_GET_STRING(line));
    }
    return BM_OK;
}

static int parse_attendees(yajl_val obj, bm_event_t *ev, char *err, size_t errlen)
{
    yajl_val org = field(field(obj, "organizer"), "self");
    ev->organizer_self = org != NULL && YAJL_IS_TRUE(org);
    yajl_val v = field(obj, "attendees");
    if (v == NULL || !YAJL_IS_ARRAY(v))
        return BM_OK;
    for (size_t i = 0; i < v->u.array.len; i++) {
        yajl_val a = v->u.array.values[i];
        yajl_val self = field(a, "self");
        if (self != NULL && YAJL_IS_TRUE(self)) {
            yajl_val organizes = field(a, "organizer");
            if (organizes != NULL && YAJL_IS_TRUE(organizes))
                ev->organizer_self = true;
            return get_str(a, "responseStatus", &ev->self_response, err, errlen);
        }
    }
    return BM_OK;
}

static int parse_markers(yajl_val obj, bm_event_t *ev, char *err, size_t errlen)
{
    yajl_val priv = field(field(obj, "extendedProperties"), "private");
    if (priv == NULL || !YAJL_IS_OBJECT(priv))
        return BM_OK;
    int rc = get_str(priv, BM_MARKER_KEY, &ev->marker, err, errlen);
    if (rc == BM_OK)
        rc = get_str(priv, BM_MARKER_SRC_KEY, &ev->marker_src, err, errlen);
    return rc;
}

int bm_event_parse(const void *yajl_obj, bm_event_t *ev, char *err, size_t errlen)
{
    int rc = BM_OK;
    yajl_val obj = (yajl_val)yajl_obj;
    memset(ev, 0, sizeof(*ev));
    if (obj == NULL || !YAJL_IS_OBJECT(obj)) {
        rc = bm_err(err, errlen, BM_EINVAL, "event is not a JSON object");
        goto out;
    }
    if ((rc = get_str(obj, "id", &ev->id, err, errlen)) != BM_OK)
        goto out;
    if (ev->id == NULL || ev->id[0] == '\0') {
        rc = bm_err(err, errlen, BM_EINVAL, "event has no id");
        goto out;
    }
    struct {
        const char *name;
        char **dst;
    } strs[] = {
        {"status", &ev->status},
        {"transparency", &ev->transparency},
        {"visibility", &ev->visibility},
        {"eventType", &ev->event_type},
        {"summary", &ev->summary},
        {"etag", &ev->etag},
        {"updated", &ev->updated},
        {"iCalUID", &ev->ical_uid},
        {"recurringEventId", &ev->recurring_event_id},
    };
    for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++)
        if ((rc = get_str(obj, strs[i].name, strs[i].dst, err, errlen)) != BM_OK)
            goto out;
    if (ev->transparency == NULL)
        ev->transparency = bm_strdup("opaque");
    if (ev->event_type == NULL)
        ev->event_type = bm_strdup("default");
    if ((rc = parse_evtime(obj, "start", &ev->start, err, errlen)) != BM_OK ||
        (rc = parse_evtime(obj, "end", &ev->end, err, errlen)) != BM_OK ||
        (rc = parse_evtime(obj, "originalStartTime", &ev->original_start, err, errlen)) != BM_OK ||
        (rc = parse_recurrence(obj, ev, err, errlen)) != BM_OK ||
        (rc = parse_attendees(obj, ev, err, errlen)) != BM_OK ||
        (rc = parse_markers(obj, ev, err, errlen)) != BM_OK)
        goto out;
out:
    if (rc != BM_OK)
        bm_event_dispose(ev);
    return rc;
}

int bm_event_parse_json(const char *json, size_t len, bm_event_t *ev, char *err, size_t errlen)
{
    int rc;
    char perr[256];
    yajl_val root = bm_json_parse(json, len, perr, sizeof(perr));
    memset(ev, 0, sizeof(*ev));
    if (root == NULL) {
        rc = bm_err(err, errlen, BM_EINVAL, "event JSON: %s", perr);
        goto out;
    }
    rc = bm_event_parse(root, ev, err, errlen);
out:
    bm_json_free(root);
    return rc;
}

bool bm_event_is_all_day(const bm_event_t *ev)
{
    return ev->start.date != NULL && ev->start.date_time == NULL;
}
