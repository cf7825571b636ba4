/* emulator/api.c: /calendar/v3 routing, authentication, scopes, quota, fault injection. */
#include "emulator/emulator.h"

#include <stdlib.h>
#include <string.h>

#define MAX_SEGS 8

/* Standard query parameters every Google API accepts. */
static const char *const std_params[] = {"alt",
                                         "fields",
                                         "key",
                                         "prettyPrint",
                                         "quotaUser",
                                         "userIp",
                                         "access_token",
                                         "oauth_token",
                                         "callback",
                                         "uploadType",
                                         "upload_protocol",
                                         "$.xgafv",
                                         NULL};

static const char *const p_list[] = {"alwaysIncludeEmail",
                                     "eventTypes",
                                     "iCalUID",
                                     "maxAttendees",
                                     "maxResults",
                                     "orderBy",
                                     "pageToken",
                                     "privateExtendedProperty",
                                     "q",
                                     "sharedExtendedProperty",
                                     "showDeleted",
                                     "showHiddenInvitations",
                                     "singleEvents",
                                     "syncToken",
                                     "timeMax",
                                     "timeMin",
                                     "timeZone",
                                     "updatedMin",
                                     NULL};
static const char *const p_get[] = {"alwaysIncludeEmail", "maxAttendees", "timeZone", NULL};
static const char *const p_insert[] = {"conferenceDataVersion", "maxAttendees",
                                       "sendNotifications",     "sendUpdates",
                                       "supportsAttachments",   NULL};
static const char *const p_update[] = {"alwaysIncludeEmail",
                                       "conferenceDataVersion",
                                       "maxAttendees",
                                       "sendNotifications",
                                       "sendUpdates",
                                       "supportsAttachments",
                                       NULL};
static const char *const p_delete[] = {"sendNotifications", "sendUpdates", NULL};
static const char *const p_import[] = {"conferenceDataVersion", "supportsAttachments", NULL};
static const char *const p_instances[] = {
    "alwaysIncludeEmail", "maxAttendees", "maxResults", "originalStart", "pageToken",
    "showDeleted",        "timeMax",      "timeMin",    "timeZone",      NULL};
/* events.watch takes the parameters of events.list (Google's discovery document). */
#define p_watch p_list
static const char *const p_callist[] = {"maxResults", "minAccessRole", "pageToken", "showDeleted",
                                        "showHidden", "syncToken",     NULL};
static const char *const p_none[] = {NULL};

static bool in_set(const char *s, const char *const *set)
{
    for (; *set != NULL; set++)
        if (strcmp(s, *set) == 0)
            return true;
    return false;
}

static bool params_ok(const emu_req_t *rq, const char *const *allowed, emu_resp_t *rs)
{
    for (size_t i = 0; i < rq->n_params; i++) {
        const char *n = rq->params[i].name;
        if (!in_set(n, allowed) && !in_set(n, std_params)) {
            emu_error(rs, 400, "invalidParameter", "Unknown parameter: '%s'", n);
            return false;
        }
    }
    return true;
}

/* ---------------------------------------------------------------- auth */

static const char *scope_name(const char *s, size_t *len)
{
    const char *p = strstr(s, "/auth/");
    if (p != NULL && p - s < (ptrdiff_t)*len) {
        *len -= (size_t)(p + 6 - s);
        return p + 6;
    }
    return s;
}

static bool has_scope(const emu_token_t *t, const char *const *wanted)
{
    const char *s = t->scope != NULL ? t->scope : "";
    while (*s != '\0') {
        while (*s == ' ')
            s++;
        size_t len = strcspn(s, " ");
        if (len == 0)
            break;
        size_t nlen = len;
        const char *name = scope_name(s, &nlen);
        for (size_t i = 0; wanted[i] != NULL; i++)
            if (strlen(wanted[i]) == nlen && strncmp(name, wanted[i], nlen) == 0)
                return true;
        s += len;
    }
    return false;
}

static const char *const scopes_read[] = {"calendar", "calendar.readonly", "calendar.events",
                                          "calendar.events.readonly", NULL};
static const char *const scopes_write[] = {"calendar", "calendar.events", NULL};
static const char *const scopes_callist[] = {"calendar", "calendar.readonly",
                                             "calendar.calendarlist",
                                             "calendar.calendarlist.readonly", NULL};

/* The live access token of an Authorization header value (Bearer or OAuth),
 * or NULL. */
static emu_token_t *bearer_token(const char *authorization)
{
    const char *tok = NULL;
    if (authorization != NULL && (strncasecmp(authorization, "Bearer ", 7) == 0 ||
                                  strncasecmp(authorization, "OAuth ", 6) == 0))
        tok = strchr(authorization, ' ') + 1;
    emu_token_t *t = tok != NULL ? emu_map_get(&emu.world.access, tok) : NULL;
    return t != NULL && (t->expires_ms == 0 || t->expires_ms > bm_now_ms()) ? t : NULL;
}

emu_user_t *emu_api_user(const char *authorization)
{
    emu_token_t *t = bearer_token(authorization);
    return t != NULL ? t->user : NULL;
}

static emu_token_t *authenticate(const emu_req_t *rq, emu_resp_t *rs)
{
    const char *tok = NULL;
    if (rq->authorization != NULL) {
        const char *a = rq->authorization;
        if (strncasecmp(a, "Bearer ", 7) == 0 || strncasecmp(a, "OAuth ", 6) == 0)
            tok = strchr(a, ' ') + 1;
    }
    if (tok == NULL)
        tok = emu_param(rq, "access_token");
    if (tok == NULL) {
        emu_error(rs, 401, "authError", "Login Required.");
        return NULL;
    }
    emu_token_t *t = emu_map_get(&emu.world.access, tok);
    if (t == NULL || (t->expires_ms != 0 && t->expires_ms <= bm_now_ms())) {
        emu_error(rs, 401, "authError", "Invalid Credentials");
        return NULL;
    }
    return t;
}

/* Sliding window (one minute unless set) of accepted quota units per user (a patch
 * costs 3). */
static bool quota_ok(emu_user_t *u, size_t units, emu_resp_t *rs)
{
    if (u->quota_rpm <= 0)
        return true;
    size_t cap = (size_t)u->quota_rpm;
    int64_t now = bm_now_ms();
    if (u->qwin == NULL) {
        u->qwin = bm_calloc(cap, sizeof(*u->qwin));
        u->qwin_head = u->qwin_n = 0;
    }
    int64_t window = u->quota_window_ms > 0 ? u->quota_window_ms : 60000;
    while (u->qwin_n > 0 && u->qwin[u->qwin_head] <= now - window) {
        u->qwin_head = (u->qwin_head + 1) % cap;
        u->qwin_n--;
    }
    if (units > cap - u->qwin_n) {
        if (u->quota_status == 429)
            emu_error(rs, 429, "rateLimitExceeded", "Rate Limit Exceeded");
        else
            emu_error(rs, 403, "rateLimitExceeded", "Rate Limit Exceeded");
        return false;
    }
    for (size_t i = 0; i < units; i++) {
        u->qwin[(u->qwin_head + u->qwin_n) % cap] = now;
        u->qwin_n++;
    }
    return true;
}

/* Draws f's error faults for one request (or batch part); u (NULL for the
 * world's faults) counts what it got. */
static bool fault_injected(emu_faults_t *f, emu_user_t *u, emu_resp_t *rs, bool is_write)
{
    if (f->writes_only && !is_write)
        return false;
    if (f->max_errors > 0 && f->n_errors >= f->max_errors)
        return false;
    if (f->error_500 > 0 && emu_rand01() < f->error_500) {
        emu_error(rs, 500, "backendError", "Backend Error");
    } else if (f->error_502 > 0 && emu_rand01() < f->error_502) {
        emu_error(rs, 502, "backendError", "Bad Gateway");
    } else if (f->error_503 > 0 && emu_rand01() < f->error_503) {
        emu_error(rs, 503, "backendError", "The service is currently unavailable.");
    } else if (f->error_504 > 0 && emu_rand01() < f->error_504) {
        emu_error(rs, 504, "backendError", "Gateway Timeout");
    } else if (f->error_429 > 0 && emu_rand01() < f->error_429) {
        emu_error(rs, 429, "rateLimitExceeded", "Rate Limit Exceeded");
    } else if (f->error_403 > 0 && emu_rand01() < f->error_403) {
        /* a permanent refusal, as for a calendar shared read-only */
        emu_error(rs, 403, "requiredAccessLevel",
                  "You need to have writer access to this calendar.");
    } else {
        return false;
    }
    f->n_errors++;
    atomic_fetch_add(&emu.counters.errors_injected, 1);
    if (u != NULL)
        u->n_errors_injected++;
    return true;
}

/* ---------------------------------------------------------------- routing */

typedef enum {
    R_NONE,
    R_CALLIST,
    R_CALLIST_GET,
    R_CAL_GET,
    R_LIST,
    R_INSERT,
    R_IMPORT,
    R_WATCH,
    R_GET,
    R_UPDATE,
    R_PATCH,
    R_DELETE,
    R_INSTANCES,
    R_STOP,
} route_t;

static bool is(const char *m, const char *want)
{
    return strcmp(m, want) == 0;
}

static route_t route(const emu_req_t *rq, char **seg, size_t n, bool *bad_method)
{
    const char *m = rq->method;
    *bad_method = false;
    /* seg[0]="calendar" seg[1]="v3" */
    if (n == 5 && is(seg[2], "users") && is(seg[3], "me") && is(seg[4], "calendarList"))
        return is(m, "GET") ? R_CALLIST : (*bad_method = true, R_NONE);
    if (n == 6 && is(seg[2], "users") && is(seg[3], "me") && is(seg[4], "calendarList"))
        return is(m, "GET") ? R_CALLIST_GET : (*bad_method = true, R_NONE);
    if (n == 4 && is(seg[2], "channels") && is(seg[3], "stop"))
        return is(m, "POST") ? R_STOP : (*bad_method = true, R_NONE);
    if (n < 4 || !is(seg[2], "calendars"))
        return R_NONE;
    if (n == 4)
        return is(m, "GET") ? R_CAL_GET : (*bad_method = true, R_NONE);
    if (!is(seg[4], "events"))
        return R_NONE;
    if (n == 5) {
        if (is(m, "GET"))
            return R_LIST;
        if (is(m, "POST"))
            return R_INSERT;
        *bad_method = true;
        return R_NONE;
    }
    if (n == 6) {
        if (is(m, "POST") && is(seg[5], "import"))
            return R_IMPORT;
        if (is(m, "POST") && is(seg[5], "watch"))
            return R_WATCH;
        if (is(m, "GET"))
            return R_GET;
        if (is(m, "PUT"))
            return R_UPDATE;
        if (is(m, "PATCH"))
            return R_PATCH;
        if (is(m, "DELETE"))
            return R_DELETE;
        *bad_method = true;
        return R_NONE;
    }
    if (n == 7 && is(seg[6], "instances"))
        return is(m, "GET") ? R_INSTANCES : (*bad_method = true, R_NONE);
    return R_NONE;
}

static void count_route(route_t r, const emu_req_t *rq)
{
    emu_counters_t *c = &emu.counters;
    switch (r) {
    case R_CALLIST:
    case R_CALLIST_GET:
        atomic_fetch_add(&c->calendar_list, 1);
        break;
    case R_LIST:
        atomic_fetch_add(&c->list, 1);
        atomic_fetch_add(emu_param(rq, "syncToken") != NULL ? &c->list_sync : &c->list_full, 1);
        break;
    case R_GET:
    case R_CAL_GET:
        atomic_fetch_add(&c->get, 1);
        break;
    case R_INSTANCES:
        atomic_fetch_add(&c->instances, 1);
        break;
    case R_WATCH:
        atomic_fetch_add(&c->watch, 1);
        break;
    case R_STOP:
        atomic_fetch_add(&c->stop, 1);
        break;
    default: /* writes are counted by events.c */
        break;
    }
}

static void write_calendar(emu_resp_t *rs, const emu_calendar_t *c)
{
    bm_buf_reset(&rs->body);
    rs->status = 200;
    bm_buf_printf(&rs->body, "{\"kind\":\"calendar#calendar\",\"etag\":\"\\\"%lld\\\"\",\"id\":",
                  (long long)c->updated_ms * 1000);
    emu_json_puts(&rs->body, c->id);
    bm_buf_puts(&rs->body, ",\"summary\":");
    emu_json_puts(&rs->body, c->summary);
    bm_buf_puts(&rs->body, ",\"timeZone\":");
    emu_json_puts(&rs->body, c->time_zone);
    bm_buf_puts(&rs->body, "}");
}

static void count_write_attempt(route_t r)
{
    _Atomic int64_t *k = r == R_INSERT   ? &emu.counters.insert
                         : r == R_IMPORT ? &emu.counters.import
                         : r == R_UPDATE ? &emu.counters.update
                         : r == R_PATCH  ? &emu.counters.patch
                                         : &emu.counters.del;
    atomic_fetch_add(k, 1);
    atomic_fetch_add(&emu.counters.writes, 1);
}

void emu_api_handle(emu_req_t *rq, emu_resp_t *rs)
{
    char *seg[MAX_SEGS + 1] = {0};
    size_t n = emu_path_segments(rq->path, seg, MAX_SEGS);
    bool bad_method = false;
    route_t r = n <= MAX_SEGS && n >= 2 && is(seg[0], "calendar") && is(seg[1], "v3")
                    ? route(rq, seg, n, &bad_method)
                    : R_NONE;
    if (!rq->in_batch)
        atomic_fetch_add(&emu.counters.requests, 1);
    count_route(r, rq);
    bool is_write =
        r == R_INSERT || r == R_IMPORT || r == R_UPDATE || r == R_PATCH || r == R_DELETE;
    if (r == R_NONE) {
        if (bad_method)
            emu_error(rs, 405, "httpMethodNotAllowed", "Method Not Allowed");
        else
            emu_error(rs, 404, "notFound", "Not Found");
        goto out;
    }
    emu_token_t *tok = authenticate(rq, rs);
    if (tok != NULL) {
        emu_user_t *tu = tok->user;
        tu->n_calls++;
        if (!rq->in_batch)
            tu->n_requests++;
        if (tu->faults.latency_ms > emu.pending_latency_ms)
            emu.pending_latency_ms = tu->faults.latency_ms;
    }
    if (tok == NULL || !quota_ok(tok->user, r == R_PATCH ? 3 : 1, rs) ||
        fault_injected(&emu.faults, NULL, rs, is_write) ||
        fault_injected(&tok->user->faults, tok->user, rs, is_write)) {
        if (is_write)
            count_write_attempt(r);
        goto out;
    }
    emu_user_t *u = tok->user;
    const char *const *need = r == R_CALLIST || r == R_CALLIST_GET ? scopes_callist
                              : is_write                           ? scopes_write
                                                                   : scopes_read;
    if (!has_scope(tok, need)) {
        if (is_write)
            count_write_attempt(r);
        emu_error(rs, 403, "insufficientPermissions",
                  "Request had insufficient authentication scopes.");
        goto out;
    }
    if (r == R_CALLIST) {
        if (params_ok(rq, p_callist, rs))
            emu_calendar_list(u, rq, rs);
        goto out;
    }
    if (r == R_STOP) {
        if (params_ok(rq, p_none, rs))
            emu_channels_stop(u, rq, rs);
        goto out;
    }
    const char *cal_id = r == R_CALLIST_GET ? seg[5] : seg[3];
    emu_calendar_t *cal = strcmp(cal_id, "primary") == 0 ? u->primary : emu_calendar_find(cal_id);
    if (cal == NULL || cal->owner != u) {
        if (is_write)
            count_write_attempt(r);
        emu_error(rs, 404, "notFound", "Not Found");
        goto out;
    }
    switch (r) {
    case R_CALLIST_GET:
    case R_CAL_GET:
        if (params_ok(rq, p_none, rs))
            write_calendar(rs, cal);
        break;
    case R_LIST:
        if (params_ok(rq, p_list, rs))
            emu_events_list(cal, rq, rs);
        break;
    case R_INSTANCES:
        if (params_ok(rq, p_instances, rs))
            emu_events_instances(cal, seg[5], rq, rs);
        break;
    case R_WATCH:
        if (params_ok(rq, p_watch, rs))
            emu_watch(cal, u, rq, rs);
        break;
    case R_GET:
        if (params_ok(rq, p_get, rs))
            emu_events_get(cal, seg[5], rq, rs);
        break;
    case R_INSERT:
        if (params_ok(rq, p_insert, rs))
            emu_events_insert(cal, u, rq, 0, rs);
        else
            count_write_attempt(r);
        break;
    case R_IMPORT:
        if (params_ok(rq, p_import, rs))
            emu_events_insert(cal, u, rq, EMU_WF_IMPORT, rs);
        else
            count_write_attempt(r);
        break;
    case R_UPDATE:
    case R_PATCH:
        if (params_ok(rq, p_update, rs))
            emu_events_update(cal, seg[5], rq, r == R_PATCH, 0, rs);
        else
            count_write_attempt(r);
        break;
    case R_DELETE:
        if (params_ok(rq, p_delete, rs))
            emu_events_delete(cal, seg[5], rq, 0, rs);
        else
            count_write_attempt(r);
        break;
    default:
        emu_error(rs, 404, "notFound", "Not Found");
        break;
    }
out:
    for (size_t i = 0; i < n && i < MAX_SEGS; i++)
        free(seg[i]);
}
