/* emulator/events.c: events.get/insert/update/patch/delete/import and occurrence overrides. */
#include "emulator/emulator.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_EXT_KEY   44
#define MAX_EXT_VALUE 1024
#define MAX_EXT_PROPS 300
#define MAX_EXT_BYTES 32768

static const char *const server_keys[] = {
    "kind",      "etag",    "id",        "htmlLink", "created",          "updated",
    "iCalUID",   "creator", "organizer", "status",   "recurringEventId", "originalStartTime",
    "eventType", "sequence"};

static bool is_server_key(const char *k)
{
    for (size_t i = 0; i < sizeof(server_keys) / sizeof(server_keys[0]); i++)
        if (strcmp(k, server_keys[i]) == 0)
            return true;
    return false;
}

int emu_event_id_valid(const char *id)
{
    size_t n = strlen(id);
    if (n < 5 || n > 1024)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = id[i];
        if (!((c >= 'a' && c <= 'v') || (c >= '0' && c <= '9')))
            return 0;
    }
    return 1;
}

/* ---------------------------------------------------------------- occurrences */

void emu_occurrence_id(const emu_event_t *master, int64_t key, char *out, size_t outlen)
{
    char stamp[24];
    if (master->all_day)
        emu_fmt_basic_date(key, stamp);
    else
        emu_fmt_basic_utc(key, stamp);
    snprintf(out, outlen, "%s_%s", master->id, stamp);
}

static void *master_tz(const emu_event_t *master, const char **name)
{
    const char *tzn = jv_get_str(jv_get(master->res, "start"), "timeZone");
    if (name != NULL)
        *name = tzn;
    return emu_tz_get(tzn != NULL ? tzn : master->cal->time_zone);
}

static jv_t *when_for(const emu_event_t *master, int64_t key)
{
    jv_t *w = jv_new(JV_OBJ);
    char buf[40];
    if (master->all_day) {
        emu_fmt_date(key, buf);
        jv_set_str(w, "date", buf);
    } else {
        const char *tzn;
        void *tz = master_tz(master, &tzn);
        emu_fmt_local(tz, key, buf);
        jv_set_str(w, "dateTime", buf);
        if (tzn != NULL)
            jv_set_str(w, "timeZone", tzn);
    }
    return w;
}

jv_t *emu_instance_render(emu_event_t *master, int64_t key)
{
    jv_t *r = jv_clone(master->res);
    char id[1100];
    emu_occurrence_id(master, key, id, sizeof(id));
    jv_set_str(r, "id", id);
    jv_del(r, "recurrence");
    jv_set(r, "start", when_for(master, key));
    jv_set(r, "end",
           when_for(master, key + (master->all_day ? master->end_key - master->start_key
                                                   : master->end_ms - master->start_ms)));
    /* keep Google's order: recurringEventId and originalStartTime after the times */
    jv_set_str(r, "recurringEventId", master->id);
    jv_set(r, "originalStartTime", when_for(master, key));
    return r;
}

int emu_write_cancelled(bm_buf_t *b, const jv_t *res)
{
    int rc = bm_buf_puts(b, "{\"kind\":\"calendar#event\",\"id\":");
    const char *id = jv_get_str(res, "id");
    rc |= emu_json_puts(b, id != NULL ? id : "");
    rc |= bm_buf_puts(b, ",\"status\":\"cancelled\"");
    const char *rid = jv_get_str(res, "recurringEventId");
    const jv_t *ost = jv_get(res, "originalStartTime");
    if (rid != NULL && ost != NULL) {
        rc |= bm_buf_puts(b, ",\"recurringEventId\":");
        rc |= emu_json_puts(b, rid);
        rc |= bm_buf_puts(b, ",\"originalStartTime\":");
        rc |= jv_write(b, ost);
    }
    rc |= bm_buf_puts(b, "}");
    return rc == 0 ? BM_OK : BM_ETOOBIG;
}

typedef struct target {
    emu_event_t *ev;     /* stored event (maybe an exception) */
    emu_event_t *master; /* virtual occurrence: its series */
    int64_t key;
} target_t;

static int64_t bsearch_key(const int64_t *v, size_t n, int64_t key)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (v[mid] < key)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n && v[lo] == key ? (int64_t)lo : -1;
}

static int resolve(emu_calendar_t *cal, const char *id, target_t *t)
{
    memset(t, 0, sizeof(*t));
    t->ev = emu_event_find(cal, id);
    if (t->ev != NULL)
        return BM_OK;
    const char *us = strrchr(id, '_');
    if (us == NULL || us == id)
        return BM_ENOTFOUND;
    char base[1100];
    size_t blen = (size_t)(us - id);
    if (blen >= sizeof(base))
        return BM_ENOTFOUND;
    memcpy(base, id, blen);
    base[blen] = '\0';
    emu_event_t *m = emu_event_find(cal, base);
    if (m == NULL || !m->is_master || m->status == EMU_ST_CANCELLED)
        return BM_ENOTFOUND;
    const char *s = us + 1;
    int64_t key;
    if (m->all_day) {
        char d[16];
        if (strlen(s) != 8)
            return BM_ENOTFOUND;
        snprintf(d, sizeof(d), "%.4s-%.2s-%.2s", s, s + 4, s + 6);
        if (emu_parse_date(d, &key) != BM_OK)
            return BM_ENOTFOUND;
    } else {
        char d[32];
        bool off;
        if (strlen(s) != 16 || s[8] != 'T' || s[15] != 'Z')
            return BM_ENOTFOUND;
        snprintf(d, sizeof(d), "%.4s-%.2s-%.2sT%.2s:%.2s:%.2sZ", s, s + 4, s + 6, s + 9, s + 11,
                 s + 13);
        if (emu_parse_datetime(d, &key, &off) != BM_OK)
            return BM_ENOTFOUND;
    }
    if (emu_event_occurrences(m) != BM_OK || bsearch_key(m->occ, m->n_occ, key) < 0)
        return BM_ENOTFOUND;
    t->master = m;
    t->key = key;
    return BM_OK;
}

static const char *target_etag(const target_t *t)
{
    const char *e = t->ev != NULL ? t->ev->etag : t->master->etag;
    return e != NULL ? e : "";
}

static bool if_match_fails(const emu_req_t *rq, const target_t *t)
{
    if (rq->if_match == NULL || strcmp(rq->if_match, "*") == 0)
        return false;
    const char *e = target_etag(t);
    /* tolerate a weak validator prefix */
    const char *m = rq->if_match;
    if (strncmp(m, "W/", 2) == 0)
        m += 2;
    return strcmp(m, e) != 0;
}

static void respond_event(emu_resp_t *rs, emu_event_t *ev)
{
    size_t len;
    const char *json = emu_event_json(ev, &len);
    rs->status = 200;
    bm_buf_reset(&rs->body);
    bm_buf_append(&rs->body, json, len);
    snprintf(rs->etag, sizeof(rs->etag), "%s", ev->etag != NULL ? ev->etag : "");
}

/* ---------------------------------------------------------------- validation */

static bool one_of(const char *s, const char *const *set)
{
    for (; *set != NULL; set++)
        if (strcmp(s, *set) == 0)
            return true;
    return false;
}

/* Length in characters (code points) of a UTF-8 string. */
static size_t utf8_chars(const char *s, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80)
            n++;
    return n;
}

/* Byte length of the first max characters of a UTF-8 string of len bytes. */
static size_t utf8_prefix(const char *s, size_t len, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (((unsigned char)s[i] & 0xC0) != 0x80 && n++ == max)
            return i;
    }
    return len;
}

/* Applies Google's limits to extendedProperties in place; 400 when over. */
static int normalize_ext(jv_t *res, emu_resp_t *rs)
{
    jv_t *ext = jv_get(res, "extendedProperties");
    if (ext == NULL)
        return BM_OK;
    if (ext->type == JV_NULL) {
        jv_del(res, "extendedProperties");
        return BM_OK;
    }
    if (ext->type != JV_OBJ) {
        emu_error(rs, 400, "invalid", "Invalid value for: extendedProperties");
        return BM_EINVAL;
    }
    size_t n_props = 0, bytes = 0;
    static const char *const scopes[] = {"private", "shared"};
    for (size_t s = 0; s < 2; s++) {
        jv_t *o = jv_get(ext, scopes[s]);
        if (o == NULL)
            continue;
        if (o->type == JV_NULL) {
            jv_del(ext, scopes[s]);
            continue;
        }
        if (o->type != JV_OBJ) {
            emu_error(rs, 400, "invalid", "Invalid value for: extendedProperties.%s", scopes[s]);
            return BM_EINVAL;
        }
        for (size_t i = 0; i < o->n;) {
            jv_t *v = o->vals[i];
            if (utf8_chars(o->keys[i], strlen(o->keys[i])) > MAX_EXT_KEY) { /* dropped silently */
                jv_del(o, o->keys[i]);
                continue;
            }
            if (v->type == JV_NULL) {
                jv_del(o, o->keys[i]);
                continue;
            }
            if (v->type != JV_STR) {
                emu_error(rs, 400, "invalid", "Invalid value for extended property %s", o->keys[i]);
                return BM_EINVAL;
            }
            if (utf8_chars(v->s, v->len) > MAX_EXT_VALUE) { /* limits count characters */
                v->len = utf8_prefix(v->s, v->len, MAX_EXT_VALUE);
                v->s[v->len] = '\0';
            }
            n_props++;
            bytes += strlen(o->keys[i]) + v->len;
            i++;
        }
    }
    if (n_props > MAX_EXT_PROPS || bytes > MAX_EXT_BYTES) {
        emu_error(rs, 400, "invalid",
                  "The extended properties exceed the limit of %d properties or %d bytes.",
                  MAX_EXT_PROPS, MAX_EXT_BYTES);
        return BM_EINVAL;
    }
    return BM_OK;
}

/* A dateTime without a UTC offset and without a timeZone (Google answers 400). */
static bool when_lacks_zone(const jv_t *when)
{
    const char *dt = jv_get_str(when, "dateTime");
    int64_t ms;
    bool off = true;
    if (dt == NULL || emu_parse_datetime(dt, &ms, &off) != BM_OK)
        return false;
    return !off && jv_get_str(when, "timeZone") == NULL;
}

static bool has_private_ext(const jv_t *res)
{
    const jv_t *p = jv_get(jv_get(res, "extendedProperties"), "private");
    return p != NULL && p->type == JV_OBJ && p->n > 0;
}

static const char *const event_types[] = {"default",  "outOfOffice", "focusTime", "workingLocation",
                                          "birthday", "fromGmail",   NULL};

/*
 * Turns a client body (owned, consumed) into a complete stored resource.
 * old: the current resource (update) or NULL (insert); id: the event id.
 * Returns NULL with rs filled on a 4xx.
 */
static jv_t *build_resource(emu_calendar_t *cal, const jv_t *old, jv_t *body, const char *id,
                            int flags, emu_resp_t *rs)
{
    jv_t *res = NULL;
    bool admin = flags & EMU_WF_ADMIN;
    if (body->type != JV_OBJ) {
        emu_error(rs, 400, "parseError", "This API does not support parsing form-encoded input.");
        goto fail;
    }
    /* times */
    const jv_t *start = jv_get(body, "start"), *end = jv_get(body, "end");
    if (start == NULL || start->type == JV_NULL) {
        emu_error(rs, 400, "required", "Missing start time.");
        goto fail;
    }
    if (end == NULL || end->type == JV_NULL) {
        emu_error(rs, 400, "required", "Missing end time.");
        goto fail;
    }
    bool ad_s, ad_e;
    int64_t ks, ke, us, ue;
    if (emu_when_parse(start, cal, &ad_s, &ks, &us) != BM_OK) {
        emu_error(rs, 400,
                  jv_get(start, "dateTime") || jv_get(start, "date") ? "invalid" : "required",
                  "Invalid start time.");
        goto fail;
    }
    if (emu_when_parse(end, cal, &ad_e, &ke, &ue) != BM_OK) {
        emu_error(rs, 400, jv_get(end, "dateTime") || jv_get(end, "date") ? "invalid" : "required",
                  "Invalid end time.");
        goto fail;
    }
    if (!admin && (!ad_s && (when_lacks_zone(start) || when_lacks_zone(end)))) {
        emu_error(rs, 400, "required", "Missing time zone definition for %s time.",
                  when_lacks_zone(start) ? "start" : "end");
        goto fail;
    }
    if (ad_s != ad_e) {
        emu_error(rs, 400, "invalid",
                  "Start and end times must either both be date or both be dateTime.");
        goto fail;
    }
    if ((ad_s && ke <= ks) || (!ad_s && ue < us)) {
        emu_error(rs, 400, "timeRangeEmpty", "The specified time range is empty.");
        goto fail;
    }
    const char *tzn = jv_get_str(start, "timeZone");
    if (tzn != NULL && emu_tz_get(tzn) == NULL) {
        emu_error(rs, 400, "invalid", "Invalid time zone definition for start time.");
        goto fail;
    }
    /* enums */
    static const char *const statuses[] = {"confirmed", "tentative", "cancelled", NULL};
    static const char *const transp[] = {"opaque", "transparent", NULL};
    static const char *const vis[] = {"default", "public", "private", "confidential", NULL};
    const jv_t *st = jv_get(body, "status");
    if (st != NULL && st->type != JV_NULL && (st->type != JV_STR || !one_of(st->s, statuses))) {
        emu_error(rs, 400, "invalid", "Invalid value for: status");
        goto fail;
    }
    const jv_t *tr = jv_get(body, "transparency");
    if (tr != NULL && tr->type != JV_NULL && (tr->type != JV_STR || !one_of(tr->s, transp))) {
        emu_error(rs, 400, "invalid", "Invalid value for: transparency");
        goto fail;
    }
    const jv_t *vi = jv_get(body, "visibility");
    if (vi != NULL && vi->type != JV_NULL && (vi->type != JV_STR || !one_of(vi->s, vis))) {
        emu_error(rs, 400, "invalid", "Invalid value for: visibility");
        goto fail;
    }
    /* eventType */
    const char *old_type = old != NULL ? jv_get_str(old, "eventType") : NULL;
    const jv_t *etv = jv_get(body, "eventType");
    const char *etype = etv != NULL && etv->type == JV_STR ? etv->s : NULL;
    if (etv != NULL && etv->type != JV_STR && etv->type != JV_NULL) {
        emu_error(rs, 400, "invalid", "Invalid value for: eventType");
        goto fail;
    }
    if (old != NULL) {
        if (old_type == NULL)
            old_type = "default";
        if (etype != NULL && strcmp(etype, old_type) != 0) {
            emu_error(rs, 400, "eventTypeRestriction", "The event type cannot be changed.");
            goto fail;
        }
        etype = old_type;
    } else {
        if (etype == NULL)
            etype = "default";
        if (!one_of(etype, event_types)) {
            emu_error(rs, 400, "invalid", "Invalid event type: %s", etype);
            goto fail;
        }
        if (!admin && strcmp(etype, "default") != 0 &&
            (!cal->primary || strcmp(etype, "fromGmail") == 0)) {
            emu_error(rs, 400, "eventTypeRestriction",
                      "Event type '%s' can only be created on the user's primary calendar.", etype);
            goto fail;
        }
    }
    /* recurrence */
    const jv_t *rec = jv_get(body, "recurrence");
    const char *recurring_id = old != NULL ? jv_get_str(old, "recurringEventId") : NULL;
    if (rec != NULL && rec->type != JV_NULL) {
        char err[160];
        if (emu_recur_validate(rec, err, sizeof(err)) != BM_OK) {
            emu_error(rs, 400, "invalid", "%s", err);
            goto fail;
        }
        if (recurring_id != NULL) {
            emu_error(rs, 400, "invalid", "An exception cannot have a recurrence.");
            goto fail;
        }
        if (rec->n > 0 && !ad_s && tzn == NULL) {
            emu_error(rs, 400, "required", "Missing time zone definition for start time.");
            goto fail;
        }
    }
    if (normalize_ext(body, rs) != BM_OK)
        goto fail;
    if (strcmp(etype, "birthday") == 0 && has_private_ext(body)) {
        emu_error(rs, 400, "invalid",
                  "Birthday events do not support private extended properties.");
        goto fail;
    }
    /* attendees */
    jv_t *att = jv_get(body, "attendees");
    if (att != NULL && att->type != JV_NULL) {
        if (att->type != JV_ARR) {
            emu_error(rs, 400, "invalid", "Invalid value for: attendees");
            goto fail;
        }
        for (size_t i = 0; i < att->n; i++) {
            jv_t *a = att->vals[i];
            const char *em = jv_get_str(a, "email");
            if (a->type != JV_OBJ || em == NULL) {
                emu_error(rs, 400, "required", "Missing attendee email.");
                goto fail;
            }
            if (!admin) {
                jv_del(a, "self");
                if (strcmp(em, cal->id) == 0 || strcmp(em, cal->owner->email) == 0)
                    jv_set(a, "self", jv_bool(true));
            }
            static const char *const rstat[] = {"needsAction", "declined", "tentative", "accepted",
                                                NULL};
            const jv_t *rsv = jv_get(a, "responseStatus");
            if (rsv != NULL && rsv->type != JV_NULL &&
                (rsv->type != JV_STR || !one_of(rsv->s, rstat))) {
                emu_error(rs, 400, "invalid", "Invalid attendee responseStatus.");
                goto fail;
            }
            if (rsv == NULL || rsv->type == JV_NULL)
                jv_set_str(a, "responseStatus", "needsAction");
        }
    }

    /* assemble: server fields first, then the client's, then trailing server fields */
    char buf[1200];
    res = jv_new(JV_OBJ);
    jv_set_str(res, "kind", "calendar#event");
    jv_set_str(res, "etag", "");
    jv_set_str(res, "id", id);
    const char *status = st != NULL && st->type == JV_STR ? st->s : "confirmed";
    jv_set_str(res, "status", status);
    bm_buf_t link;
    bm_buf_init(&link, 4096);
    char *raw = bm_sprintf("%s %s", id, cal->id);
    bm_buf_b64url(&link, raw, strlen(raw));
    free(raw);
    snprintf(buf, sizeof(buf), "https://www.google.com/calendar/event?eid=%s",
             link.data != NULL ? link.data : "");
    bm_buf_dispose(&link);
    jv_set_str(res, "htmlLink", buf);
    const char *created = old != NULL ? jv_get_str(old, "created") : NULL;
    if (created != NULL) {
        jv_set_str(res, "created", created);
    } else {
        emu_fmt_utc_ms(bm_now_ms(), buf);
        jv_set_str(res, "created", buf);
    }
    jv_set_str(res, "updated", "");
    for (size_t i = 0; i < body->n; i++) {
        const char *k = body->keys[i];
        if (is_server_key(k) || body->vals[i]->type == JV_NULL)
            continue;
        jv_set(res, k, jv_clone(body->vals[i]));
    }
    /* creator / organizer: the calendar's owner unless a person in the UI says otherwise */
    const jv_t *creator = admin ? jv_get(body, "creator") : NULL;
    if (creator == NULL && old != NULL)
        creator = jv_get(old, "creator");
    if (creator != NULL) {
        jv_set(res, "creator", jv_clone(creator));
    } else {
        jv_t *c = jv_new(JV_OBJ);
        jv_set_str(c, "email", cal->owner->email);
        jv_set(c, "self", jv_bool(true));
        jv_set(res, "creator", c);
    }
    const jv_t *organizer = admin ? jv_get(body, "organizer") : NULL;
    if (organizer == NULL && old != NULL)
        organizer = jv_get(old, "organizer");
    if (organizer != NULL) {
        jv_set(res, "organizer", jv_clone(organizer));
    } else {
        jv_t *o = jv_new(JV_OBJ);
        jv_set_str(o, "email", cal->id);
        if (!cal->primary)
            jv_set_str(o, "displayName", cal->summary);
        jv_set(o, "self", jv_bool(true));
        jv_set(res, "organizer", o);
    }
    /* start/end keep their place among client fields (already copied) */
    if (old != NULL && recurring_id != NULL) {
        jv_set_str(res, "recurringEventId", recurring_id);
        const jv_t *ost = jv_get(old, "originalStartTime");
        if (ost != NULL)
            jv_set(res, "originalStartTime", jv_clone(ost));
    }
    /* A new event takes the iCalUID it is given (insert, import, an invitation
     * landing in a calendar); an existing one keeps its own, except on import. */
    const char *ical = old != NULL ? jv_get_str(old, "iCalUID") : NULL;
    if ((old == NULL || (flags & EMU_WF_IMPORT)) && jv_get_str(body, "iCalUID") != NULL)
        ical = jv_get_str(body, "iCalUID");
    if (ical != NULL) {
        jv_set_str(res, "iCalUID", ical);
    } else {
        snprintf(buf, sizeof(buf), "%s@google.com", id);
        jv_set_str(res, "iCalUID", buf);
    }
    int64_t seq = 0;
    const jv_t *oseq = old != NULL ? jv_get(old, "sequence") : NULL;
    if (oseq != NULL && oseq->type == JV_NUM)
        seq = strtoll(oseq->s, NULL, 10);
    const jv_t *bseq = jv_get(body, "sequence");
    if (bseq != NULL && bseq->type == JV_NUM && strtoll(bseq->s, NULL, 10) > seq)
        seq = strtoll(bseq->s, NULL, 10);
    jv_set(res, "sequence", jv_int(seq));
    if (jv_get(res, "reminders") == NULL) {
        jv_t *r = jv_new(JV_OBJ);
        jv_set(r, "useDefault", jv_bool(true));
        jv_set(res, "reminders", r);
    }
    jv_set_str(res, "eventType", etype);
    jv_free(body);
    return res;
fail:
    jv_free(res);
    jv_free(body);
    return NULL;
}

/* Deep merge for PATCH: objects merge, arrays and scalars replace, null deletes.
 * start/end/originalStartTime are replaced whole (a date must not mix with a dateTime). */
static void merge_into(jv_t *dst, const jv_t *src, int depth)
{
    for (size_t i = 0; i < src->n; i++) {
        const char *k = src->keys[i];
        const jv_t *v = src->vals[i];
        jv_t *cur = jv_get(dst, k);
        bool whole = depth == 0 && (strcmp(k, "start") == 0 || strcmp(k, "end") == 0 ||
                                    strcmp(k, "originalStartTime") == 0);
        if (v->type == JV_NULL) {
            jv_del(dst, k);
        } else if (!whole && v->type == JV_OBJ && cur != NULL && cur->type == JV_OBJ) {
            merge_into(cur, v, depth + 1);
        } else {
            jv_set(dst, k, jv_clone(v));
        }
    }
}

/* ---------------------------------------------------------------- handlers */

static void count_write(_Atomic int64_t *kind)
{
    atomic_fetch_add(kind, 1);
    atomic_fetch_add(&emu.counters.writes, 1);
}

static emu_event_t *find_by_ical(emu_calendar_t *cal, const char *ical)
{
    for (size_t i = 0; i < cal->n_order; i++) {
        const char *u = jv_get_str(cal->order[i]->res, "iCalUID");
        if (u != NULL && strcmp(u, ical) == 0 && cal->order[i]->recurring_id == NULL)
            return cal->order[i];
    }
    return NULL;
}

void emu_events_insert(emu_calendar_t *cal, emu_user_t *u, const emu_req_t *rq, int flags,
                       emu_resp_t *rs)
{
    (void)u;
    if (!(flags & EMU_WF_ADMIN))
        count_write((flags & EMU_WF_IMPORT) ? &emu.counters.import : &emu.counters.insert);
    jv_t *body = emu_body_object(rq, rs, false);
    if (body == NULL)
        return;
    const jv_t *icalv = jv_get(body, "iCalUID");
    if (icalv != NULL && icalv->type != JV_NULL &&
        (icalv->type != JV_STR || icalv->s[0] == '\0' || strlen(icalv->s) > EMU_ICAL_UID_MAX)) {
        jv_free(body);
        emu_error(rs, 400, "invalid", "Invalid iCalUID value.");
        return;
    }
    if (!(flags & EMU_WF_IMPORT) && jv_get_str(body, "iCalUID") != NULL &&
        find_by_ical(cal, jv_get_str(body, "iCalUID")) != NULL) {
        /* one event per iCalUID and calendar, a deleted one's included */
        jv_free(body);
        emu_error(rs, 409, "duplicate", "The requested identifier already exists.");
        return;
    }
    if (flags & EMU_WF_IMPORT) {
        const char *ical = jv_get_str(body, "iCalUID");
        if (ical == NULL) {
            jv_free(body);
            emu_error(rs, 400, "required", "Missing iCalUID.");
            return;
        }
        emu_event_t *same = find_by_ical(cal, ical);
        if (same != NULL) { /* import is idempotent per iCalUID: it updates */
            jv_t *res = build_resource(cal, same->res, body, same->id, flags, rs);
            if (res == NULL)
                return;
            jv_free(same->res);
            same->res = res;
            emu_event_changed(same, true);
            respond_event(rs, same);
            return;
        }
    }
    char idbuf[32];
    const jv_t *idv = jv_get(body, "id");
    const char *id;
    if (idv != NULL && idv->type != JV_NULL) {
        if (idv->type != JV_STR || !emu_event_id_valid(idv->s)) {
            jv_free(body);
            emu_error(rs, 400, "invalid", "Invalid resource id value.");
            return;
        }
        id = idv->s;
        if (emu_event_find(cal, id) != NULL) {
            jv_free(body);
            emu_error(rs, 409, "duplicate", "The requested identifier already exists.");
            return;
        }
    } else {
        emu_random_base32hex(idbuf, 26);
        id = idbuf;
    }
    char *id_copy = bm_strdup(id);
    jv_t *res = build_resource(cal, NULL, body, id_copy, flags, rs);
    if (res != NULL) {
        emu_event_t *ev = emu_event_add(cal, id_copy, res);
        emu_event_changed(ev, true);
        respond_event(rs, ev);
    }
    free(id_copy);
}

void emu_events_get(emu_calendar_t *cal, const char *id, const emu_req_t *rq, emu_resp_t *rs)
{
    (void)rq;
    target_t t;
    if (resolve(cal, id, &t) != BM_OK) {
        emu_error(rs, 404, "notFound", "Not Found");
        return;
    }
    if (t.ev != NULL) {
        respond_event(rs, t.ev);
        return;
    }
    jv_t *inst = emu_instance_render(t.master, t.key);
    emu_resp_json(rs, 200, inst);
    snprintf(rs->etag, sizeof(rs->etag), "%s", target_etag(&t));
    jv_free(inst);
}

static void cancel_exceptions(emu_event_t *master)
{
    emu_calendar_t *cal = master->cal;
    for (size_t i = 0; i < cal->n_order; i++) {
        emu_event_t *e = cal->order[i];
        if (e->recurring_id != NULL && e->status != EMU_ST_CANCELLED &&
            strcmp(e->recurring_id, master->id) == 0) {
            jv_set_str(e->res, "status", "cancelled");
            emu_event_changed(e, true);
        }
    }
}

void emu_events_update(emu_calendar_t *cal, const char *id, const emu_req_t *rq, bool patch,
                       int flags, emu_resp_t *rs)
{
    if (!(flags & EMU_WF_ADMIN))
        count_write(patch ? &emu.counters.patch : &emu.counters.update);
    target_t t;
    if (resolve(cal, id, &t) != BM_OK) {
        emu_error(rs, 404, "notFound", "Not Found");
        return;
    }
    if (if_match_fails(rq, &t)) {
        emu_error(rs, 412, "conditionNotMet", "Precondition Failed");
        return;
    }
    jv_t *body = emu_body_object(rq, rs, false);
    if (body == NULL)
        return;
    jv_t *old = t.ev != NULL ? t.ev->res : emu_instance_render(t.master, t.key);
    const jv_t *bid = jv_get(body, "id");
    if (bid != NULL && bid->type == JV_STR && strcmp(bid->s, id) != 0) {
        emu_error(rs, 400, "invalid", "The event id cannot be changed.");
        jv_free(body);
        goto out;
    }
    if (patch) {
        jv_t *merged = jv_clone(old);
        merge_into(merged, body, 0);
        jv_free(body);
        body = merged;
    }
    bool was_cancelled = t.ev != NULL && t.ev->status == EMU_ST_CANCELLED;
    jv_t *res = build_resource(cal, old, body, id, flags, rs);
    if (res == NULL)
        goto out;
    emu_event_t *ev;
    if (t.ev != NULL) {
        jv_free(t.ev->res);
        t.ev->res = res;
        old = NULL;
        ev = t.ev;
    } else {
        ev = emu_event_add(cal, id, res);
    }
    emu_event_changed(ev, true);
    if (ev->is_master && ev->status == EMU_ST_CANCELLED && !was_cancelled)
        cancel_exceptions(ev);
    respond_event(rs, ev);
out:
    if (t.ev == NULL)
        jv_free(old);
}

void emu_events_delete(emu_calendar_t *cal, const char *id, const emu_req_t *rq, int flags,
                       emu_resp_t *rs)
{
    if (!(flags & EMU_WF_ADMIN))
        count_write(&emu.counters.del);
    target_t t;
    if (resolve(cal, id, &t) != BM_OK) {
        emu_error(rs, 404, "notFound", "Not Found");
        return;
    }
    if (t.ev != NULL && t.ev->status == EMU_ST_CANCELLED) {
        emu_error(rs, 410, "deleted", "Resource has been deleted");
        return;
    }
    if (if_match_fails(rq, &t)) {
        emu_error(rs, 412, "conditionNotMet", "Precondition Failed");
        return;
    }
    emu_event_t *ev = t.ev;
    if (ev == NULL) { /* cancel one occurrence: a cancelled exception */
        jv_t *inst = emu_instance_render(t.master, t.key);
        jv_set_str(inst, "status", "cancelled");
        ev = emu_event_add(cal, id, inst);
    } else {
        jv_set_str(ev->res, "status", "cancelled");
    }
    emu_event_changed(ev, true);
    if (ev->is_master)
        cancel_exceptions(ev);
    rs->status = 204;
    bm_buf_reset(&rs->body);
    rs->content_type[0] = '\0';
}
