/* emulator/list.c: events.list (full and incremental), events.instances, calendarList.list. */
#include "emulator/emulator.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define DEFAULT_MAX           250
#define HARD_MAX              2500
#define UPDATED_MIN_WINDOW_MS (30LL * 86400000LL)

/* ---------------------------------------------------------------- base64url */

/* ---------------------------------------------------------------- tokens */

typedef struct ptok {
    char mode;
    uint64_t fp, pos, sub, snap;
} ptok_t;

static char *encode_token(const char *text)
{
    bm_buf_t b;
    bm_buf_init(&b, 8192);
    bm_buf_b64url(&b, text, strlen(text));
    return bm_buf_steal(&b);
}

static char *sync_token_new(const emu_calendar_t *cal, uint64_t seq)
{
    char *t =
        bm_sprintf("S1|%s|%" PRIu64 "|%" PRIu64 "|%s", emu.world.world_id, cal->gen, seq, cal->id);
    char *e = encode_token(t);
    free(t);
    return e;
}

static int sync_token_parse(const emu_calendar_t *cal, const char *tok, uint64_t *seq)
{
    char buf[2048], world[40], calid[1100];
    size_t len;
    uint64_t gen;
    if (strlen(tok) > 2000 || bm_b64url_decode(tok, buf, sizeof(buf), &len) != BM_OK)
        return BM_EINVAL;
    if (sscanf(buf, "S1|%32[0-9a-f]|%" SCNu64 "|%" SCNu64 "|%1023[^\n]", world, &gen, seq, calid) !=
        4)
        return BM_EINVAL;
    if (strcmp(world, emu.world.world_id) != 0 || strcmp(calid, cal->id) != 0 || gen != cal->gen ||
        *seq > cal->seq)
        return BM_EGONE;
    return BM_OK;
}

static char *page_token_new(const emu_calendar_t *cal, const ptok_t *p)
{
    char *t = bm_sprintf("P1|%s|%c|%" PRIx64 "|%" PRIu64 "|%" PRIu64 "|%" PRIu64 "|%s",
                         emu.world.world_id, p->mode, p->fp, p->pos, p->sub, p->snap, cal->id);
    char *e = encode_token(t);
    free(t);
    return e;
}

static int page_token_parse(const emu_calendar_t *cal, const char *tok, ptok_t *p)
{
    char buf[2048], world[40], calid[1100];
    size_t len;
    if (strlen(tok) > 2000 || bm_b64url_decode(tok, buf, sizeof(buf), &len) != BM_OK)
        return BM_EINVAL;
    if (sscanf(buf, "P1|%32[0-9a-f]|%c|%" SCNx64 "|%" SCNu64 "|%" SCNu64 "|%" SCNu64 "|%1023[^\n]",
               world, &p->mode, &p->fp, &p->pos, &p->sub, &p->snap, calid) != 7)
        return BM_EINVAL;
    if (strcmp(world, emu.world.world_id) != 0 || strcmp(calid, cal->id) != 0)
        return BM_EINVAL;
    return BM_OK;
}

static uint64_t query_fingerprint(const emu_req_t *rq)
{
    uint64_t fp = 0;
    for (size_t i = 0; i < rq->n_params; i++) {
        const emu_param_t *p = &rq->params[i];
        if (strcmp(p->name, "pageToken") == 0 || strcmp(p->name, "maxResults") == 0 ||
            strcmp(p->name, "fields") == 0 || strcmp(p->name, "prettyPrint") == 0 ||
            strcmp(p->name, "alt") == 0)
            continue;
        char *kv = bm_sprintf("%s=%s", p->name, p->value);
        fp += emu_hash(kv, strlen(kv));
        free(kv);
    }
    return fp;
}

/* ---------------------------------------------------------------- parameters */

static int parse_bool(const emu_req_t *rq, const char *name, bool dflt, bool *out, emu_resp_t *rs)
{
    const char *v = emu_param(rq, name);
    *out = dflt;
    if (v == NULL)
        return BM_OK;
    if (strcmp(v, "true") == 0) {
        *out = true;
    } else if (strcmp(v, "false") == 0) {
        *out = false;
    } else {
        emu_error(rs, 400, "invalidParameter", "Invalid boolean value: '%s'.", v);
        return BM_EINVAL;
    }
    return BM_OK;
}

static int parse_max(const emu_req_t *rq, size_t dflt, size_t hard, size_t *out, emu_resp_t *rs)
{
    const char *v = emu_param(rq, "maxResults");
    *out = dflt;
    if (v == NULL)
        return BM_OK;
    char *end;
    long long n = strtoll(v, &end, 10);
    if (*v == '\0' || *end != '\0' || n < 1) {
        emu_error(rs, 400, "invalid",
                  "Invalid value '%s'. Values must be within the range: [1, %zu]", v, hard);
        return BM_EINVAL;
    }
    *out = (size_t)n > hard ? hard : (size_t)n; /* Google clamps silently */
    return BM_OK;
}

static int parse_time_param(const emu_req_t *rq, const char *name, bool *has, int64_t *out,
                            emu_resp_t *rs)
{
    const char *v = emu_param(rq, name);
    bool off;
    *has = false;
    if (v == NULL)
        return BM_OK;
    if (emu_parse_datetime(v, out, &off) != BM_OK || !off) {
        emu_error(rs, 400, "badRequest", "Bad Request");
        return BM_EINVAL;
    }
    *has = true;
    return BM_OK;
}

typedef struct lq {
    emu_calendar_t *cal;
    bool sync;
    uint64_t from_seq;
    bool show_deleted, single;
    char order; /* 0, 's'tartTime, 'u'pdated */
    bool has_tmin, has_tmax, has_updmin;
    int64_t tmin, tmax, updmin;
    const char *ical, *q;
    const emu_req_t *rq;
    size_t max;
} lq_t;

static bool prop_filters_match(const lq_t *lq, const jv_t *res)
{
    static const char *const names[] = {"privateExtendedProperty", "sharedExtendedProperty"};
    static const char *const scopes[] = {"private", "shared"};
    if (emu.faults.ignore_extended_property_filter)
        return true; /* a server that drops the filter: clients must check for themselves */
    for (size_t i = 0; i < lq->rq->n_params; i++) {
        const emu_param_t *p = &lq->rq->params[i];
        for (size_t s = 0; s < 2; s++) {
            if (strcmp(p->name, names[s]) != 0)
                continue;
            const char *eq = strchr(p->value, '=');
            char key[64];
            size_t kl = (size_t)(eq - p->value);
            if (kl >= sizeof(key))
                return false;
            memcpy(key, p->value, kl);
            key[kl] = '\0';
            const char *have =
                jv_get_str(jv_get(jv_get(res, "extendedProperties"), scopes[s]), key);
            if (have == NULL || strcmp(have, eq + 1) != 0)
                return false;
        }
    }
    return true;
}

static bool text_match(const jv_t *res, const char *q)
{
    static const char *const fields[] = {"summary", "description", "location"};
    for (size_t i = 0; i < 3; i++) {
        const char *v = jv_get_str(res, fields[i]);
        if (v != NULL && strcasestr(v, q) != NULL)
            return true;
    }
    const jv_t *att = jv_get(res, "attendees");
    for (size_t i = 0; att != NULL && att->type == JV_ARR && i < att->n; i++) {
        const char *v = jv_get_str(att->vals[i], "email");
        if (v != NULL && strcasestr(v, q) != NULL)
            return true;
    }
    return false;
}

/* Filters that depend on the resource content only (not on an occurrence). */
static bool content_match(const lq_t *lq, const emu_event_t *ev)
{
    if (lq->ical != NULL) {
        const char *u = jv_get_str(ev->res, "iCalUID");
        if (u == NULL || strcmp(u, lq->ical) != 0)
            return false;
    }
    if (lq->q != NULL && !text_match(ev->res, lq->q))
        return false;
    if (lq->has_updmin && ev->updated_ms < lq->updmin)
        return false;
    size_t n_types = emu_param_count(lq->rq, "eventTypes");
    if (n_types > 0) {
        bool ok = false;
        for (size_t i = 0; i < lq->rq->n_params && !ok; i++)
            if (strcmp(lq->rq->params[i].name, "eventTypes") == 0 &&
                strcmp(lq->rq->params[i].value, ev->event_type) == 0)
                ok = true;
        if (!ok)
            return false;
    }
    return prop_filters_match(lq, ev->res);
}

static bool window_match(const lq_t *lq, int64_t start, int64_t end)
{
    if (lq->has_tmax && start >= lq->tmax)
        return false;
    if (lq->has_tmin && end <= lq->tmin && !(end == start && start == lq->tmin))
        return false;
    return true;
}

static int64_t inst_end_key(const emu_event_t *m, int64_t key)
{
    return key + (m->end_key - m->start_key);
}

static bool master_window_match(const lq_t *lq, emu_event_t *m)
{
    if (!lq->has_tmin && !lq->has_tmax)
        return true;
    if (emu_event_occurrences(m) != BM_OK)
        return window_match(lq, m->start_ms, m->end_ms);
    for (size_t i = 0; i < m->n_occ; i++) {
        int64_t s = emu_occ_utc(m, m->occ[i]);
        if (lq->has_tmax && s >= lq->tmax)
            return false;
        if (window_match(lq, s, emu_occ_utc(m, inst_end_key(m, m->occ[i]))))
            return true;
    }
    return m->occ_truncated;
}

/* ---------------------------------------------------------------- output */

typedef struct item {
    emu_event_t *ev; /* the event, or the master of an instance */
    int64_t key;
    bool inst;
    int64_t sort;
} item_t;

typedef struct out {
    bm_buf_t *b;
    size_t count;
} out_t;

static void write_item(out_t *o, const item_t *it)
{
    if (o->count++ > 0)
        bm_buf_append(o->b, ",", 1);
    if (!it->inst) {
        if (it->ev->status == EMU_ST_CANCELLED) {
            emu_write_cancelled(o->b, it->ev->res);
        } else {
            size_t len;
            const char *j = emu_event_json(it->ev, &len);
            bm_buf_append(o->b, j, len);
        }
        return;
    }
    jv_t *r = emu_instance_render(it->ev, it->key);
    if (it->ev->status == EMU_ST_CANCELLED)
        emu_write_cancelled(o->b, r);
    else
        jv_write(o->b, r);
    jv_free(r);
}

static bool has_exception(emu_event_t *m, int64_t key)
{
    char id[1100];
    emu_occurrence_id(m, key, id, sizeof(id));
    return emu_event_find(m->cal, id) != NULL;
}

/* Should the stored event itself be listed? */
static bool event_listed(const lq_t *lq, emu_event_t *ev)
{
    if (ev->status == EMU_ST_CANCELLED && !lq->show_deleted)
        return false;
    if (lq->single && ev->is_master)
        return false;
    if (!content_match(lq, ev))
        return false;
    if (ev->is_master)
        return master_window_match(lq, ev);
    return window_match(lq, ev->start_ms, ev->end_ms);
}

/* Whether occurrence i of master m is listed as an instance (singleEvents). */
static bool instance_listed(const lq_t *lq, emu_event_t *m, size_t i)
{
    int64_t key = m->occ[i];
    if (has_exception(m, key))
        return false;
    return window_match(lq, emu_occ_utc(m, key), emu_occ_utc(m, inst_end_key(m, key)));
}

static bool master_expandable(const lq_t *lq, emu_event_t *m)
{
    if (!lq->single || !m->is_master)
        return false;
    if (m->status == EMU_ST_CANCELLED && !lq->show_deleted)
        return false;
    if (!content_match(lq, m))
        return false;
    return emu_event_occurrences(m) == BM_OK;
}

static int cmp_items(const void *a, const void *b)
{
    const item_t *x = a, *y = b;
    if (x->sort != y->sort)
        return x->sort < y->sort ? -1 : 1;
    if (x->ev->ordinal != y->ev->ordinal)
        return x->ev->ordinal < y->ev->ordinal ? -1 : 1;
    return x->key < y->key ? -1 : x->key > y->key;
}

static void push_item(item_t **v, size_t *n, size_t *cap, item_t it)
{
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 1024;
        *v = bm_realloc(*v, sizeof(**v) * *cap);
    }
    (*v)[(*n)++] = it;
}

static void write_header(bm_buf_t *b, const emu_calendar_t *cal)
{
    char upd[32];
    emu_fmt_utc_ms(cal->updated_ms, upd);
    bm_buf_printf(b, "{\"kind\":\"calendar#events\",\"etag\":\"\\\"%lld\\\"\",\"summary\":",
                  (long long)cal->updated_ms * 1000);
    emu_json_puts(b, cal->summary);
    bm_buf_printf(b, ",\"updated\":\"%s\",\"timeZone\":", upd);
    emu_json_puts(b, cal->time_zone);
    bm_buf_puts(b, ",\"accessRole\":\"owner\",\"defaultReminders\":[]");
}

static const char *const sync_forbidden[] = {"iCalUID",
                                             "orderBy",
                                             "privateExtendedProperty",
                                             "q",
                                             "sharedExtendedProperty",
                                             "timeMin",
                                             "timeMax",
                                             "updatedMin",
                                             NULL};

static const char *const known_types[] = {"default",  "outOfOffice", "focusTime", "workingLocation",
                                          "birthday", "fromGmail",   NULL};

void emu_events_list(emu_calendar_t *cal, const emu_req_t *rq, emu_resp_t *rs)
{
    lq_t lq;
    memset(&lq, 0, sizeof(lq));
    lq.cal = cal;
    lq.rq = rq;
    const char *sync = emu_param(rq, "syncToken");
    const char *ptok_s = emu_param(rq, "pageToken");
    if (sync != NULL) {
        for (size_t i = 0; sync_forbidden[i] != NULL; i++) {
            if (emu_param(rq, sync_forbidden[i]) != NULL) {
                emu_error(rs, 400, "invalid", "Sync token cannot be used with the %s parameter.",
                          sync_forbidden[i]);
                return;
            }
        }
        const char *sd = emu_param(rq, "showDeleted");
        if (sd != NULL && strcmp(sd, "false") == 0) {
            emu_error(rs, 400, "invalid",
                      "The showDeleted parameter cannot be false when using a sync token.");
            return;
        }
    }
    if (parse_bool(rq, "showDeleted", sync != NULL, &lq.show_deleted, rs) ||
        parse_bool(rq, "singleEvents", false, &lq.single, rs) ||
        parse_max(rq, DEFAULT_MAX, HARD_MAX, &lq.max, rs) ||
        parse_time_param(rq, "timeMin", &lq.has_tmin, &lq.tmin, rs) ||
        parse_time_param(rq, "timeMax", &lq.has_tmax, &lq.tmax, rs) ||
        parse_time_param(rq, "updatedMin", &lq.has_updmin, &lq.updmin, rs))
        return;
    bool dummy;
    if (parse_bool(rq, "showHiddenInvitations", false, &dummy, rs) ||
        parse_bool(rq, "alwaysIncludeEmail", false, &dummy, rs))
        return;
    if (lq.has_tmin && lq.has_tmax && lq.tmax < lq.tmin) {
        emu_error(rs, 400, "timeRangeEmpty", "The specified time range is empty.");
        return;
    }
    const char *ob = emu_param(rq, "orderBy");
    if (ob != NULL) {
        if (strcmp(ob, "startTime") == 0) {
            if (!lq.single) {
                emu_error(rs, 400, "invalid",
                          "The requested ordering is not available for the particular query.");
                return;
            }
            lq.order = 's';
        } else if (strcmp(ob, "updated") == 0) {
            lq.order = 'u';
        } else {
            emu_error(rs, 400, "invalidParameter", "Invalid value for orderBy: '%s'.", ob);
            return;
        }
    }
    for (size_t i = 0; i < rq->n_params; i++) {
        const emu_param_t *p = &rq->params[i];
        if ((strcmp(p->name, "privateExtendedProperty") == 0 ||
             strcmp(p->name, "sharedExtendedProperty") == 0) &&
            (strchr(p->value, '=') == NULL || p->value[0] == '=')) {
            emu_error(rs, 400, "invalid", "Invalid value for %s: '%s'.", p->name, p->value);
            return;
        }
        if (strcmp(p->name, "eventTypes") == 0) {
            bool ok = false;
            for (size_t k = 0; known_types[k] != NULL; k++)
                ok |= strcmp(known_types[k], p->value) == 0;
            if (!ok) {
                emu_error(rs, 400, "invalid", "Invalid event type: '%s'.", p->value);
                return;
            }
        }
    }
    if (lq.has_updmin && lq.updmin < bm_now_ms() - UPDATED_MIN_WINDOW_MS) {
        emu_error(rs, 410, "updatedMinTooLongAgo",
                  "The requested minimum modification time lies too far in the past.");
        return;
    }
    lq.ical = emu_param(rq, "iCalUID");
    lq.q = emu_param(rq, "q");
    if (lq.q != NULL && *lq.q == '\0')
        lq.q = NULL;
    if (sync != NULL) {
        int rc = sync_token_parse(cal, sync, &lq.from_seq);
        if (rc != BM_OK) {
            emu_error(rs, 410, "fullSyncRequired",
                      "Sync token is no longer valid, a full sync is required.");
            return;
        }
        lq.sync = true;
    }
    char mode = lq.sync ? 'S' : lq.order ? 'O' : 'F';
    ptok_t pt = {.mode = mode, .fp = query_fingerprint(rq), .pos = 0, .sub = 0, .snap = cal->seq};
    if (lq.sync)
        pt.pos = lq.from_seq + 1;
    if (ptok_s != NULL) {
        ptok_t in;
        if (page_token_parse(cal, ptok_s, &in) != BM_OK || in.mode != mode || in.fp != pt.fp) {
            emu_error(rs, 400, "invalid", "Invalid page token value.");
            return;
        }
        pt = in;
    }
    size_t limit = lq.max;
    if (emu.faults.short_pages > 0 && emu_rand01() < emu.faults.short_pages)
        limit = (size_t)(emu_rand_u64() % lq.max);

    bm_buf_t *b = &rs->body;
    bm_buf_reset(b);
    rs->status = 200;
    write_header(b, cal);
    bm_buf_t items;
    bm_buf_init(&items, EMU_MAX_RESP);
    out_t o = {&items, 0};
    bool more = false;
    ptok_t next = pt;

    if (mode == 'F') {
        size_t i = (size_t)pt.pos;
        uint64_t sub = pt.sub;
        for (; i < cal->n_order && !more; i++, sub = 0) {
            emu_event_t *ev = cal->order[i];
            if (master_expandable(&lq, ev)) {
                for (size_t k = (size_t)sub; k < ev->n_occ; k++) {
                    if (!instance_listed(&lq, ev, k))
                        continue;
                    if (o.count >= limit) {
                        more = true;
                        next.pos = i;
                        next.sub = k;
                        break;
                    }
                    item_t it = {ev, ev->occ[k], true, 0};
                    write_item(&o, &it);
                }
                continue;
            }
            if (sub > 0 || !event_listed(&lq, ev))
                continue;
            if (o.count >= limit) {
                more = true;
                next.pos = i;
                next.sub = 0;
                break;
            }
            item_t it = {ev, 0, false, 0};
            write_item(&o, &it);
        }
    } else if (mode == 'S') {
        /* first log entry with seq >= pos */
        size_t lo = 0, hi = cal->n_log;
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            if (cal->log[mid].seq < pt.pos)
                lo = mid + 1;
            else
                hi = mid;
        }
        uint64_t sub = pt.sub;
        for (size_t i = lo; i < cal->n_log && !more; i++, sub = 0) {
            emu_event_t *ev = cal->log[i].ev;
            if (ev->seq != cal->log[i].seq) /* superseded by a later change */
                continue;
            if (lq.single && ev->is_master) {
                if (!content_match(&lq, ev) || emu_event_occurrences(ev) != BM_OK)
                    continue;
                for (size_t k = (size_t)sub; k < ev->n_occ; k++) {
                    if (has_exception(ev, ev->occ[k]))
                        continue;
                    if (o.count >= limit) {
                        more = true;
                        next.pos = cal->log[i].seq;
                        next.sub = k;
                        break;
                    }
                    item_t it = {ev, ev->occ[k], true, 0};
                    write_item(&o, &it);
                }
                continue;
            }
            if (sub > 0 || !content_match(&lq, ev))
                continue;
            if (o.count >= limit) {
                more = true;
                next.pos = cal->log[i].seq;
                next.sub = 0;
                break;
            }
            item_t it = {ev, 0, false, 0};
            write_item(&o, &it);
        }
    } else {
        item_t *all = NULL;
        size_t n = 0, cap = 0;
        for (size_t i = 0; i < cal->n_order; i++) {
            emu_event_t *ev = cal->order[i];
            if (master_expandable(&lq, ev)) {
                for (size_t k = 0; k < ev->n_occ; k++) {
                    if (!instance_listed(&lq, ev, k))
                        continue;
                    item_t it = {ev, ev->occ[k], true,
                                 lq.order == 's' ? emu_occ_utc(ev, ev->occ[k]) : ev->updated_ms};
                    push_item(&all, &n, &cap, it);
                }
                continue;
            }
            if (!event_listed(&lq, ev))
                continue;
            item_t it = {ev, 0, false, lq.order == 's' ? ev->start_ms : ev->updated_ms};
            push_item(&all, &n, &cap, it);
        }
        qsort(all, n, sizeof(*all), cmp_items);
        size_t i = (size_t)pt.pos;
        for (; i < n; i++) {
            if (o.count >= limit) {
                more = true;
                next.pos = i;
                break;
            }
            write_item(&o, &all[i]);
        }
        free(all);
    }

    if (more) {
        char *t = page_token_new(cal, &next);
        bm_buf_puts(b, ",\"nextPageToken\":");
        emu_json_puts(b, t);
        free(t);
    } else {
        char *t = sync_token_new(cal, lq.sync ? cal->seq : pt.snap);
        bm_buf_puts(b, ",\"nextSyncToken\":");
        emu_json_puts(b, t);
        free(t);
    }
    bm_buf_puts(b, ",\"items\":[");
    if (items.len > 0)
        bm_buf_append(b, items.data, items.len);
    bm_buf_puts(b, "]}");
    bm_buf_dispose(&items);
}

void emu_events_instances(emu_calendar_t *cal, const char *id, const emu_req_t *rq, emu_resp_t *rs)
{
    lq_t lq;
    memset(&lq, 0, sizeof(lq));
    lq.cal = cal;
    lq.rq = rq;
    emu_event_t *m = emu_event_find(cal, id);
    if (m == NULL) {
        emu_error(rs, 404, "notFound", "Not Found");
        return;
    }
    if (m->status == EMU_ST_CANCELLED) {
        emu_error(rs, 410, "deleted", "Resource has been deleted");
        return;
    }
    if (parse_bool(rq, "showDeleted", false, &lq.show_deleted, rs) ||
        parse_max(rq, DEFAULT_MAX, HARD_MAX, &lq.max, rs) ||
        parse_time_param(rq, "timeMin", &lq.has_tmin, &lq.tmin, rs) ||
        parse_time_param(rq, "timeMax", &lq.has_tmax, &lq.tmax, rs))
        return;
    bool has_orig = false;
    int64_t orig = 0;
    if (parse_time_param(rq, "originalStart", &has_orig, &orig, rs))
        return;
    ptok_t pt = {.mode = 'I', .fp = query_fingerprint(rq)};
    const char *ptok_s = emu_param(rq, "pageToken");
    if (ptok_s != NULL) {
        ptok_t in;
        if (page_token_parse(cal, ptok_s, &in) != BM_OK || in.mode != 'I' || in.fp != pt.fp) {
            emu_error(rs, 400, "invalid", "Invalid page token value.");
            return;
        }
        pt = in;
    }
    bm_buf_t *b = &rs->body;
    bm_buf_reset(b);
    rs->status = 200;
    write_header(b, cal);
    bm_buf_t items;
    bm_buf_init(&items, EMU_MAX_RESP);
    out_t o = {&items, 0};
    bool more = false;
    ptok_t next = pt;
    if (m->is_master && emu_event_occurrences(m) == BM_OK) {
        for (size_t k = (size_t)pt.pos; k < m->n_occ; k++) {
            int64_t key = m->occ[k];
            char oid[1100];
            emu_occurrence_id(m, key, oid, sizeof(oid));
            emu_event_t *ex = emu_event_find(cal, oid);
            item_t it = {m, key, true, 0};
            int64_t s = emu_occ_utc(m, key), e = emu_occ_utc(m, inst_end_key(m, key));
            if (has_orig && s != orig)
                continue;
            if (ex != NULL) {
                if (ex->status == EMU_ST_CANCELLED && !lq.show_deleted)
                    continue;
                s = ex->start_ms;
                e = ex->end_ms;
                it.ev = ex;
                it.inst = false;
            }
            if (!window_match(&lq, s, e))
                continue;
            if (o.count >= lq.max) {
                more = true;
                next.pos = k;
                break;
            }
            write_item(&o, &it);
        }
    } else if (!m->is_master) {
        item_t it = {m, 0, false, 0};
        if (window_match(&lq, m->start_ms, m->end_ms))
            write_item(&o, &it);
    }
    if (more) {
        char *t = page_token_new(cal, &next);
        bm_buf_puts(b, ",\"nextPageToken\":");
        emu_json_puts(b, t);
        free(t);
    }
    bm_buf_puts(b, ",\"items\":[");
    if (items.len > 0)
        bm_buf_append(b, items.data, items.len);
    bm_buf_puts(b, "]}");
    bm_buf_dispose(&items);
}

void emu_calendar_list(emu_user_t *u, const emu_req_t *rq, emu_resp_t *rs)
{
    size_t max;
    if (parse_max(rq, 100, 250, &max, rs))
        return;
    size_t pos = 0;
    const char *pt = emu_param(rq, "pageToken");
    if (pt != NULL) {
        char buf[256], world[40];
        size_t len;
        unsigned long long p;
        if (strlen(pt) > 200 || bm_b64url_decode(pt, buf, sizeof(buf), &len) != BM_OK ||
            sscanf(buf, "L1|%32[0-9a-f]|%llu", world, &p) != 2 ||
            strcmp(world, emu.world.world_id) != 0) {
            emu_error(rs, 400, "invalid", "Invalid page token value.");
            return;
        }
        pos = (size_t)p;
    }
    bm_buf_t *b = &rs->body;
    bm_buf_reset(b);
    rs->status = 200;
    bm_buf_printf(b, "{\"kind\":\"calendar#calendarList\",\"etag\":\"\\\"%lld\\\"\"",
                  (long long)bm_now_ms());
    size_t end = pos + max < u->n_cals ? pos + max : u->n_cals;
    if (end < u->n_cals) {
        char *t = bm_sprintf("L1|%s|%zu", emu.world.world_id, end);
        char *e = encode_token(t);
        bm_buf_puts(b, ",\"nextPageToken\":");
        emu_json_puts(b, e);
        free(t);
        free(e);
    } else {
        char *t = bm_sprintf("C1|%s", emu.world.world_id);
        char *e = encode_token(t);
        bm_buf_puts(b, ",\"nextSyncToken\":");
        emu_json_puts(b, e);
        free(t);
        free(e);
    }
    bm_buf_puts(b, ",\"items\":[");
    for (size_t i = pos; i < end; i++) {
        emu_calendar_t *c = u->cals[i];
        if (i > pos)
            bm_buf_puts(b, ",");
        bm_buf_printf(b,
                      "{\"kind\":\"calendar#calendarListEntry\",\"etag\":\"\\\"%lld\\\"\",\"id\":",
                      (long long)c->updated_ms * 1000);
        emu_json_puts(b, c->id);
        bm_buf_puts(b, ",\"summary\":");
        emu_json_puts(b, c->summary);
        bm_buf_puts(b, ",\"timeZone\":");
        emu_json_puts(b, c->time_zone);
        bm_buf_puts(b, ",\"colorId\":\"14\",\"backgroundColor\":\"#9fe1e7\",\"foregroundColor\":"
                       "\"#000000\",\"selected\":true,\"accessRole\":\"owner\","
                       "\"defaultReminders\":[]");
        if (c->primary)
            bm_buf_puts(b, ",\"primary\":true");
        bm_buf_puts(b, "}");
    }
    bm_buf_puts(b, "]}");
}
