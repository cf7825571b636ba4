/* emulator/admin.c: the /_emulator/ control API (no auth, never counted, never faulted). */
#include "emulator/emulator.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SEGS      8
#define DEFAULT_SCOPE "https://www.googleapis.com/auth/calendar"

static bool is(const char *a, const char *b)
{
    return strcmp(a, b) == 0;
}

static bool num_field(const jv_t *o, const char *k, double *out)
{
    const jv_t *v = jv_get(o, k);
    if (v == NULL || v->type != JV_NUM)
        return false;
    *out = strtod(v->s, NULL);
    return true;
}

static void ok(emu_resp_t *rs)
{
    rs->status = 200;
    bm_buf_reset(&rs->body);
    bm_buf_puts(&rs->body, "{\"ok\":true}");
}

static void write_cal(emu_resp_t *rs, const emu_calendar_t *c)
{
    rs->status = 200;
    bm_buf_reset(&rs->body);
    bm_buf_puts(&rs->body, "{\"kind\":\"calendar#calendar\",\"id\":");
    emu_json_puts(&rs->body, c->id);
    bm_buf_puts(&rs->body, ",\"summary\":");
    emu_json_puts(&rs->body, c->summary);
    bm_buf_puts(&rs->body, ",\"timeZone\":");
    emu_json_puts(&rs->body, c->time_zone);
    bm_buf_printf(&rs->body, ",\"primary\":%s,\"resourceId\":", c->primary ? "true" : "false");
    emu_json_puts(&rs->body, c->resource_id);
    bm_buf_puts(&rs->body, "}");
}

static void users_create(const emu_req_t *rq, emu_resp_t *rs)
{
    jv_t *b = emu_body_object(rq, rs, false);
    if (b == NULL)
        return;
    const char *email = jv_get_str(b, "email");
    const char *rt = jv_get_str(b, "refresh_token");
    const char *tz = jv_get_str(b, "timeZone");
    const char *scope = jv_get_str(b, "scope");
    emu_user_t *u = NULL;
    if (email == NULL || *email == '\0' || strchr(email, '/') != NULL) {
        emu_error(rs, 400, "required", "email is required");
    } else if (tz != NULL && emu_tz_get(tz) == NULL) {
        emu_error(rs, 400, "invalid", "unknown timeZone %s", tz);
    } else if (emu_user_create(email, tz, &u) != BM_OK) {
        emu_error(rs, 409, "duplicate", "user or calendar %s exists", email);
    } else {
        emu_token_t *t = emu_token_new(&emu.world.refresh, "1//emu-", u,
                                       scope != NULL ? scope : DEFAULT_SCOPE, 0, rt);
        emu_persist_token(t, "refresh");
        rs->status = 200;
        bm_buf_reset(&rs->body);
        bm_buf_puts(&rs->body, "{\"email\":");
        emu_json_puts(&rs->body, u->email);
        bm_buf_puts(&rs->body, ",\"refresh_token\":");
        emu_json_puts(&rs->body, t->token);
        bm_buf_puts(&rs->body, "}");
    }
    jv_free(b);
}

/* Fault settings from body b into *f (zeroed first); false when a value is out
 * of range or a key unknown. per_user: only the keys a user's faults have. */
static bool parse_faults(const jv_t *b, emu_faults_t *f, bool per_user)
{
    static const char *const world_only[] = {
        "drop_notifications", "delay_notifications_ms",          "token_latency_ms",
        "short_pages",        "ignore_extended_property_filter", NULL};
    memset(f, 0, sizeof(*f));
    double v;
    bool bad = false;
    struct {
        const char *name;
        double *p;
    } probs[] = {{"error_500", &f->error_500},
                 {"error_502", &f->error_502},
                 {"error_503", &f->error_503},
                 {"error_504", &f->error_504},
                 {"error_429", &f->error_429},
                 {"error_403", &f->error_403},
                 {"drop_notifications", &f->drop_notifications},
                 {"short_pages", &f->short_pages}};
    for (size_t i = 0; i < sizeof(probs) / sizeof(probs[0]); i++) {
        if (num_field(b, probs[i].name, &v)) {
            if (v < 0 || v > 1)
                bad = true;
            *probs[i].p = v;
        }
    }
    if (num_field(b, "writes_only", &v))
        f->writes_only = v != 0;
    if (num_field(b, "ignore_extended_property_filter", &v))
        f->ignore_extended_property_filter = v != 0;
    if (num_field(b, "max_errors", &v)) {
        if (v < 0 || v > 1e9)
            bad = true;
        f->max_errors = (int64_t)v;
    }
    if (num_field(b, "latency_ms", &v)) {
        if (v < 0 || v > 600000)
            bad = true;
        f->latency_ms = (int64_t)v;
    }
    if (num_field(b, "token_latency_ms", &v)) {
        if (v < 0 || v > 600000)
            bad = true;
        f->token_latency_ms = (int64_t)v;
    }
    if (num_field(b, "refuse_watch", &v)) {
        if (v != 0 && v != 400 && v != 401 && v != 403)
            bad = true;
        f->refuse_watch = (int64_t)v;
    }
    if (num_field(b, "delay_notifications_ms", &v)) {
        if (v < 0 || v > 600000)
            bad = true;
        f->delay_notifications_ms = (int64_t)v;
    }
    for (size_t i = 0; i < b->n; i++) {
        const char *k = b->keys[i];
        if (!is(k, "seed") && !is(k, "latency_ms") && !is(k, "delay_notifications_ms") &&
            !is(k, "error_500") && !is(k, "error_502") && !is(k, "error_503") &&
            !is(k, "error_504") && !is(k, "error_429") && !is(k, "error_403") &&
            !is(k, "writes_only") && !is(k, "drop_notifications") && !is(k, "short_pages") &&
            !is(k, "max_errors") && !is(k, "ignore_extended_property_filter") &&
            !is(k, "refuse_watch") && !is(k, "token_latency_ms"))
            bad = true;
        for (size_t j = 0; per_user && world_only[j] != NULL; j++)
            if (is(k, world_only[j]))
                bad = true;
    }
    return !bad;
}

/* POST /_emulator/faults (u NULL) or /_emulator/users/{email}/faults. */
static void faults(emu_user_t *u, const emu_req_t *rq, emu_resp_t *rs)
{
    jv_t *b = emu_body_object(rq, rs, true);
    if (b == NULL)
        return;
    emu_faults_t f;
    double v;
    if (!parse_faults(b, &f, u != NULL)) {
        emu_error(rs, 400, "invalid",
                  u != NULL ? "bad fault settings (probabilities in 0..1, known keys; per user: "
                              "error faults, writes_only, max_errors, latency_ms, refuse_watch)"
                            : "bad fault settings (probabilities in 0..1, known keys)");
    } else {
        if (num_field(b, "seed", &v))
            emu.rng = (uint64_t)v;
        if (u != NULL)
            u->faults = f;
        else
            emu.faults = f;
        ok(rs);
    }
    jv_free(b);
}

static void user_counters(const emu_user_t *u, emu_resp_t *rs)
{
    rs->status = 200;
    bm_buf_reset(&rs->body);
    bm_buf_printf(&rs->body, "{\"requests\":%lld,\"calls\":%lld,\"errors_injected\":%lld}",
                  (long long)u->n_requests, (long long)u->n_calls, (long long)u->n_errors_injected);
}

static void user_action(emu_user_t *u, const char *action, const emu_req_t *rq, emu_resp_t *rs)
{
    if (is(action, "refresh_tokens")) {
        jv_t *b = emu_body_object(rq, rs, true);
        if (b == NULL)
            return;
        const char *scope = jv_get_str(b, "scope");
        emu_token_t *t =
            emu_token_new(&emu.world.refresh, "1//emu-", u, scope != NULL ? scope : DEFAULT_SCOPE,
                          0, jv_get_str(b, "refresh_token"));
        emu_persist_token(t, "refresh");
        rs->status = 200;
        bm_buf_reset(&rs->body);
        bm_buf_puts(&rs->body, "{\"refresh_token\":");
        emu_json_puts(&rs->body, t->token);
        bm_buf_puts(&rs->body, "}");
        jv_free(b);
    } else if (is(action, "revoke")) {
        emu_user_revoke(u);
        u->offline_granted = false; /* the next offline consent is a first one again */
        ok(rs);
    } else if (is(action, "expire_access_tokens")) {
        emu_map_t *m = &emu.world.access;
        for (size_t i = 0; i < m->cap; i++) {
            emu_token_t *t = m->vals[i];
            if (m->keys[i] != NULL && t->user == u) {
                t->expires_ms = bm_now_ms() - 1;
                emu_persist_token(t, "access");
            }
        }
        ok(rs);
    } else if (is(action, "quota")) {
        jv_t *b = emu_body_object(rq, rs, false);
        if (b == NULL)
            return;
        double rpm = 0, st = 403, win = 60000;
        num_field(b, "rpm", &rpm);
        num_field(b, "status", &st);
        num_field(b, "window_ms", &win);
        if (rpm < 0 || rpm > 1e6 || (st != 403 && st != 429) || win < 1 || win > 3600000) {
            emu_error(rs, 400, "invalid",
                      "rpm must be 0..1000000, status 403 or 429, window_ms 1..3600000");
        } else {
            u->quota_rpm = (int)rpm;
            u->quota_status = (int)st;
            u->quota_window_ms = (int64_t)win;
            free(u->qwin);
            u->qwin = NULL;
            u->qwin_n = u->qwin_head = 0;
            emu_persist_user(u);
            ok(rs);
        }
        jv_free(b);
    } else if (is(action, "faults")) {
        faults(u, rq, rs);
    } else if (is(action, "calendars")) {
        jv_t *b = emu_body_object(rq, rs, false);
        if (b == NULL)
            return;
        const char *tz = jv_get_str(b, "timeZone");
        emu_calendar_t *c;
        if (tz != NULL && emu_tz_get(tz) == NULL)
            emu_error(rs, 400, "invalid", "unknown timeZone %s", tz);
        else if (emu_calendar_create(u, jv_get_str(b, "id"), jv_get_str(b, "summary"),
                                     tz != NULL ? tz : u->primary->time_zone, &c) != BM_OK)
            emu_error(rs, 409, "duplicate", "calendar exists");
        else
            write_cal(rs, c);
        jv_free(b);
    } else {
        emu_error(rs, 404, "notFound", "Not Found");
    }
}

/* {"email", "deny"?}: email becomes the user who consents without login_hint; deny (a
 * boolean, default false) makes that user refuse every consent, login_hint or not. */
static void consent(const emu_req_t *rq, emu_resp_t *rs)
{
    jv_t *b = emu_body_object(rq, rs, false);
    if (b == NULL)
        return;
    const char *e = jv_get_str(b, "email");
    const jv_t *deny = jv_get(b, "deny");
    emu_user_t *u = e != NULL ? emu_user_find(e) : NULL;
    if (deny != NULL && deny->type != JV_BOOL) {
        emu_error(rs, 400, "invalid", "deny must be true or false");
    } else if (u == NULL) {
        emu_error(rs, 404, "notFound", "no such user");
    } else {
        free(emu.world.consent_email);
        emu.world.consent_email = bm_strdup(e);
        u->consent_deny = deny != NULL && deny->b;
        ok(rs);
    }
    jv_free(b);
}

/* {"items":[{"refresh_token","scope"}]}: every live refresh token of u, in no order. */
static void refresh_tokens(const emu_user_t *u, emu_resp_t *rs)
{
    const emu_map_t *m = &emu.world.refresh;
    rs->status = 200;
    bm_buf_reset(&rs->body);
    bm_buf_puts(&rs->body, "{\"items\":[");
    bool first = true;
    for (size_t i = 0; i < m->cap; i++) {
        const emu_token_t *t = m->vals[i];
        if (m->keys[i] == NULL || t->user != u)
            continue;
        bm_buf_puts(&rs->body, first ? "{\"refresh_token\":" : ",{\"refresh_token\":");
        emu_json_puts(&rs->body, t->token);
        bm_buf_puts(&rs->body, ",\"scope\":");
        emu_json_puts(&rs->body, t->scope);
        bm_buf_puts(&rs->body, "}");
        first = false;
    }
    bm_buf_puts(&rs->body, "]}");
}

static void dump(emu_calendar_t *cal, emu_resp_t *rs)
{
    rs->status = 200;
    bm_buf_reset(&rs->body);
    bm_buf_puts(&rs->body, "{\"items\":[");
    for (size_t i = 0; i < cal->n_order; i++) {
        size_t len;
        const char *j = emu_event_json(cal->order[i], &len);
        if (i > 0)
            bm_buf_puts(&rs->body, ",");
        bm_buf_append(&rs->body, j, len);
    }
    bm_buf_puts(&rs->body, "]}");
}

static void counters(emu_resp_t *rs)
{
    emu_counters_t *c = &emu.counters;
    rs->status = 200;
    bm_buf_reset(&rs->body);
    bm_buf_printf(
        &rs->body,
        "{\"requests\":%lld,\"list\":%lld,\"get\":%lld,\"insert\":%lld,\"update\":%lld,"
        "\"patch\":%lld,\"delete\":%lld,\"instances\":%lld,\"import\":%lld,\"writes\":%lld,"
        "\"batch\":%lld,\"batch_parts\":%lld,\"watch\":%lld,\"stop\":%lld,\"token\":%lld,"
        "\"calendar_list\":%lld,\"notifications\":%lld,\"errors_injected\":%lld,"
        "\"list_sync\":%lld,\"list_full\":%lld}",
        (long long)c->requests, (long long)c->list, (long long)c->get, (long long)c->insert,
        (long long)c->update, (long long)c->patch, (long long)c->del, (long long)c->instances,
        (long long)c->import, (long long)c->writes, (long long)c->batch, (long long)c->batch_parts,
        (long long)c->watch, (long long)c->stop, (long long)c->token, (long long)c->calendar_list,
        (long long)c->notifications, (long long)c->errors_injected, (long long)c->list_sync,
        (long long)c->list_full);
}

static void counters_reset(void)
{
    emu_counters_t *c = &emu.counters;
    _Atomic int64_t *all[] = {&c->requests,      &c->list,          &c->get,
                              &c->insert,        &c->update,        &c->patch,
                              &c->del,           &c->instances,     &c->import,
                              &c->writes,        &c->batch,         &c->batch_parts,
                              &c->watch,         &c->stop,          &c->token,
                              &c->calendar_list, &c->notifications, &c->errors_injected,
                              &c->list_sync,     &c->list_full};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        atomic_store(all[i], 0);
    emu_map_t *users = &emu.world.users;
    for (size_t i = 0; i < users->cap; i++) {
        if (users->keys[i] != NULL) {
            emu_user_t *u = users->vals[i];
            u->n_requests = u->n_calls = u->n_errors_injected = 0;
        }
    }
}

static void channels(emu_resp_t *rs)
{
    emu_channels_expire();
    rs->status = 200;
    bm_buf_reset(&rs->body);
    bm_buf_puts(&rs->body, "{\"items\":[");
    for (size_t i = 0; i < emu.world.n_channels; i++) {
        emu_channel_t *ch = emu.world.channels[i];
        if (i > 0)
            bm_buf_puts(&rs->body, ",");
        bm_buf_puts(&rs->body, "{\"id\":");
        emu_json_puts(&rs->body, ch->id);
        bm_buf_puts(&rs->body, ",\"resourceId\":");
        emu_json_puts(&rs->body, ch->resource_id);
        bm_buf_puts(&rs->body, ",\"calendarId\":");
        emu_json_puts(&rs->body, ch->cal_id);
        bm_buf_puts(&rs->body, ",\"address\":");
        emu_json_puts(&rs->body, ch->address);
        bm_buf_printf(&rs->body, ",\"expiration\":\"%lld\"}", (long long)ch->expiration_ms);
    }
    bm_buf_puts(&rs->body, "]}");
}

void emu_admin_handle(emu_req_t *rq, emu_resp_t *rs)
{
    char *seg[MAX_SEGS + 1] = {0};
    size_t n = emu_path_segments(rq->path, seg, MAX_SEGS);
    const char *m = rq->method;
    if (n > MAX_SEGS || n < 2) {
        emu_error(rs, 404, "notFound", "Not Found");
        goto out;
    }
    /* seg[0] == "_emulator" */
    if (n == 2 && is(seg[1], "health") && is(m, "GET")) {
        ok(rs);
    } else if (n == 2 && is(seg[1], "users") && is(m, "POST")) {
        users_create(rq, rs);
    } else if (n == 4 && is(seg[1], "users") && is(m, "POST")) {
        emu_user_t *u = emu_user_find(seg[2]);
        if (u == NULL)
            emu_error(rs, 404, "notFound", "no user %s", seg[2]);
        else
            user_action(u, seg[3], rq, rs);
    } else if (n == 4 && is(seg[1], "users") && is(seg[3], "counters") && is(m, "GET")) {
        emu_user_t *u = emu_user_find(seg[2]);
        if (u == NULL)
            emu_error(rs, 404, "notFound", "no user %s", seg[2]);
        else
            user_counters(u, rs);
    } else if (n == 4 && is(seg[1], "users") && is(seg[3], "refresh_tokens") && is(m, "GET")) {
        emu_user_t *u = emu_user_find(seg[2]);
        if (u == NULL)
            emu_error(rs, 404, "notFound", "no user %s", seg[2]);
        else
            refresh_tokens(u, rs);
    } else if (n == 2 && is(seg[1], "consent") && is(m, "POST")) {
        consent(rq, rs);
    } else if (n >= 4 && is(seg[1], "calendars")) {
        emu_calendar_t *cal = emu_calendar_find(seg[2]);
        if (cal == NULL) {
            emu_error(rs, 404, "notFound", "no calendar %s", seg[2]);
        } else if (n == 4 && is(seg[3], "dump") && is(m, "GET")) {
            dump(cal, rs);
        } else if (n == 4 && is(seg[3], "invalidate_sync_tokens") && is(m, "POST")) {
            emu_calendar_invalidate_tokens(cal);
            ok(rs);
        } else if (n == 4 && is(seg[3], "events") && is(m, "POST")) {
            emu_events_insert(cal, cal->owner, rq, EMU_WF_ADMIN, rs);
        } else if (n == 5 && is(seg[3], "events")) {
            if (is(m, "GET"))
                emu_events_get(cal, seg[4], rq, rs);
            else if (is(m, "PUT") || is(m, "PATCH"))
                emu_events_update(cal, seg[4], rq, is(m, "PATCH"), EMU_WF_ADMIN, rs);
            else if (is(m, "DELETE"))
                emu_events_delete(cal, seg[4], rq, EMU_WF_ADMIN, rs);
            else
                emu_error(rs, 405, "httpMethodNotAllowed", "Method Not Allowed");
        } else {
            emu_error(rs, 404, "notFound", "Not Found");
        }
    } else if (n == 2 && is(seg[1], "counters") && is(m, "GET")) {
        counters(rs);
    } else if (n == 3 && is(seg[1], "counters") && is(seg[2], "reset") && is(m, "POST")) {
        counters_reset();
        ok(rs);
    } else if (n == 2 && is(seg[1], "faults") && is(m, "POST")) {
        faults(NULL, rq, rs);
    } else if (n == 2 && is(seg[1], "reset") && is(m, "POST")) {
        emu_world_reset();
        counters_reset();
        memset(&emu.faults, 0, sizeof(emu.faults));
        ok(rs);
    } else if (n == 2 && is(seg[1], "channels") && is(m, "GET")) {
        channels(rs);
    } else {
        emu_error(rs, 404, "notFound", "Not Found");
    }
out:
    for (size_t i = 0; i < n && i < MAX_SEGS; i++)
        free(seg[i]);
}
