/* emulator/world.c: users, calendars, events, tokens, indexes and sync history. */
#include "emulator/emulator.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#define MAX_OCCURRENCES 5000

emu_t emu;

/* ---------------------------------------------------------------- randomness */

static void fill_random(unsigned char *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = getrandom(buf + got, n - got, 0);
        if (r <= 0) { /* fall back to the fault RNG rather than fail */
            for (; got < n; got++)
                buf[got] = (unsigned char)emu_rand_u64();
            return;
        }
        got += (size_t)r;
    }
}

/* n_chars random characters of alphabet (16 or 32 long) into out, NUL-terminated. */
static void random_chars(char *out, size_t n_chars, const char *alphabet, unsigned mask)
{
    unsigned char raw[256];
    if (n_chars > sizeof(raw))
        n_chars = sizeof(raw);
    fill_random(raw, n_chars);
    for (size_t i = 0; i < n_chars; i++)
        out[i] = alphabet[raw[i] & mask];
    out[n_chars] = '\0';
}

void emu_random_hex(char *out, size_t n_chars)
{
    random_chars(out, n_chars, "0123456789abcdef", 15);
}

void emu_random_base32hex(char *out, size_t n_chars)
{
    random_chars(out, n_chars, "0123456789abcdefghijklmnopqrstuv", 31);
}

uint64_t emu_rand_u64(void)
{
    uint64_t z = (emu.rng += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

double emu_rand01(void)
{
    return (double)(emu_rand_u64() >> 11) / 9007199254740992.0;
}

/* ---------------------------------------------------------------- lifecycle */

void emu_world_init(emu_world_t *w)
{
    memset(w, 0, sizeof(*w));
    emu_map_init(&w->users);
    emu_map_init(&w->calendars);
    emu_map_init(&w->refresh);
    emu_map_init(&w->access);
    emu_map_init(&w->codes);
    emu_random_hex(w->world_id, 16);
}

void emu_token_free(emu_token_t *t)
{
    if (t == NULL)
        return;
    free(t->token);
    free(t->scope);
    free(t->redirect_uri);
    free(t->challenge);
    free(t->challenge_method);
    free(t);
}

static void event_free(emu_event_t *ev)
{
    jv_free(ev->res);
    free(ev->json);
    free(ev->id);
    free(ev->occ);
    free(ev);
}

static void calendar_free(emu_calendar_t *cal)
{
    for (size_t i = 0; i < cal->n_order; i++)
        event_free(cal->order[i]);
    free(cal->order);
    free(cal->log);
    emu_map_dispose(&cal->events);
    free(cal->id);
    free(cal->summary);
    free(cal->time_zone);
    free(cal->resource_id);
    free(cal);
}

static void free_tokens(emu_map_t *m)
{
    for (size_t i = 0; i < m->cap; i++)
        if (m->keys[i] != NULL)
            emu_token_free(m->vals[i]);
    emu_map_dispose(m);
}

void emu_world_dispose(emu_world_t *w)
{
    for (size_t i = 0; i < w->calendars.cap; i++)
        if (w->calendars.keys[i] != NULL)
            calendar_free(w->calendars.vals[i]);
    emu_map_dispose(&w->calendars);
    for (size_t i = 0; i < w->users.cap; i++) {
        if (w->users.keys[i] != NULL) {
            emu_user_t *u = w->users.vals[i];
            free(u->cals);
            free(u->qwin);
            free(u->email);
            free(u);
        }
    }
    emu_map_dispose(&w->users);
    free_tokens(&w->refresh);
    free_tokens(&w->access);
    free_tokens(&w->codes);
    for (size_t i = 0; i < w->n_channels; i++)
        emu_channel_free(w->channels[i]);
    free(w->channels);
    free(w->consent_email);
    memset(w, 0, sizeof(*w));
}

void emu_world_reset(void)
{
    for (size_t i = 0; i < emu.world.n_channels; i++)
        emu_push_cancel(emu.world.channels[i]->id);
    emu_world_dispose(&emu.world);
    emu_world_init(&emu.world);
    emu_persist_wipe();
    emu_persist_meta();
}

/* ---------------------------------------------------------------- users, calendars */

emu_user_t *emu_user_find(const char *email)
{
    return emu_map_get(&emu.world.users, email);
}

emu_calendar_t *emu_calendar_find(const char *id)
{
    return emu_map_get(&emu.world.calendars, id);
}

int emu_calendar_create(emu_user_t *u, const char *id, const char *summary, const char *tz,
                        emu_calendar_t **out)
{
    char gen_id[80];
    if (id == NULL || *id == '\0') {
        char hex[33];
        emu_random_hex(hex, 32);
        snprintf(gen_id, sizeof(gen_id), "c_%s@group.calendar.google.com", hex);
        id = gen_id;
    }
    if (emu_calendar_find(id) != NULL)
        return BM_EEXIST;
    emu_calendar_t *cal = bm_calloc(1, sizeof(*cal));
    cal->id = bm_strdup(id);
    cal->summary = bm_strdup(summary != NULL ? summary : id);
    cal->time_zone = bm_strdup(tz != NULL && *tz != '\0' ? tz : "UTC");
    char rid[28];
    emu_random_base32hex(rid, 27);
    cal->resource_id = bm_strdup(rid);
    cal->owner = u;
    cal->gen = 1;
    cal->updated_ms = bm_now_ms();
    emu_map_init(&cal->events);
    emu_map_put(&emu.world.calendars, cal->id, cal);
    if (u->n_cals == u->cap_cals) {
        u->cap_cals = u->cap_cals ? u->cap_cals * 2 : 4;
        u->cals = bm_realloc(u->cals, sizeof(*u->cals) * u->cap_cals);
    }
    u->cals[u->n_cals++] = cal;
    if (u->primary == NULL) {
        u->primary = cal;
        cal->primary = true;
    }
    emu_persist_calendar(cal);
    if (out != NULL)
        *out = cal;
    return BM_OK;
}

int emu_user_create(const char *email, const char *time_zone, emu_user_t **out)
{
    if (emu_user_find(email) != NULL || emu_calendar_find(email) != NULL)
        return BM_EEXIST;
    emu_user_t *u = bm_calloc(1, sizeof(*u));
    u->email = bm_strdup(email);
    u->quota_status = 403;
    emu_map_put(&emu.world.users, u->email, u);
    emu_persist_user(u);
    int rc = emu_calendar_create(u, email, email, time_zone, NULL);
    if (rc != BM_OK)
        return rc;
    if (out != NULL)
        *out = u;
    return BM_OK;
}

emu_token_t *emu_token_new(emu_map_t *m, const char *prefix, emu_user_t *u, const char *scope,
                           int64_t ttl_ms, const char *fixed)
{
    emu_token_t *t = bm_calloc(1, sizeof(*t));
    if (fixed != NULL) {
        t->token = bm_strdup(fixed);
    } else {
        char rnd[49];
        emu_random_base32hex(rnd, 48);
        t->token = bm_sprintf("%s%s", prefix, rnd);
    }
    t->user = u;
    t->scope = bm_strdup(scope);
    t->expires_ms = ttl_ms > 0 ? bm_now_ms() + ttl_ms : 0;
    emu_token_t *old = emu_map_get(m, t->token);
    if (old != NULL) {
        emu_map_del(m, old->token);
        emu_token_free(old);
    }
    emu_map_put(m, t->token, t);
    return t;
}

static void revoke_in(emu_map_t *m, emu_user_t *u)
{
    size_t n = 0;
    emu_token_t **del = bm_malloc(sizeof(*del) * (m->n + 1));
    for (size_t i = 0; i < m->cap; i++)
        if (m->keys[i] != NULL && ((emu_token_t *)m->vals[i])->user == u)
            del[n++] = m->vals[i];
    for (size_t i = 0; i < n; i++) {
        emu_map_del(m, del[i]->token);
        emu_token_free(del[i]);
    }
    free(del);
}

void emu_user_revoke(emu_user_t *u)
{
    revoke_in(&emu.world.refresh, u);
    revoke_in(&emu.world.access, u);
    revoke_in(&emu.world.codes, u);
    emu_persist_user_tokens_del(u);
}

void emu_calendar_invalidate_tokens(emu_calendar_t *cal)
{
    cal->gen++;
    emu_persist_calendar(cal);
}

/* ---------------------------------------------------------------- events */

emu_event_t *emu_event_find(emu_calendar_t *cal, const char *id)
{
    return emu_map_get(&cal->events, id);
}

emu_event_t *emu_event_add(emu_calendar_t *cal, const char *id, jv_t *res)
{
    emu_event_t *ev = bm_calloc(1, sizeof(*ev));
    ev->cal = cal;
    ev->id = bm_strdup(id);
    ev->res = res;
    ev->ordinal = cal->n_order;
    if (cal->n_order == cal->cap_order) {
        cal->cap_order = cal->cap_order ? cal->cap_order * 2 : 64;
        cal->order = bm_realloc(cal->order, sizeof(*cal->order) * cal->cap_order);
    }
    cal->order[cal->n_order++] = ev;
    emu_map_put(&cal->events, ev->id, ev);
    emu_event_reindex(ev);
    return ev;
}

/* Resolves a start/end object into (all_day, key, utc). */
int emu_when_parse(const jv_t *when, const emu_calendar_t *cal, bool *all_day, int64_t *key,
                   int64_t *utc)
{
    if (when == NULL || when->type != JV_OBJ)
        return BM_EINVAL;
    const char *date = jv_get_str(when, "date");
    const char *dt = jv_get_str(when, "dateTime");
    if (date != NULL && dt == NULL) {
        if (emu_parse_date(date, key) != BM_OK)
            return BM_EINVAL;
        *all_day = true;
        *utc = emu_tz_to_utc(emu_tz_get(cal->time_zone), *key);
        return BM_OK;
    }
    if (dt == NULL)
        return BM_EINVAL;
    bool has_off;
    int64_t ms;
    if (emu_parse_datetime(dt, &ms, &has_off) != BM_OK)
        return BM_EINVAL;
    if (!has_off) {
        const char *tzn = jv_get_str(when, "timeZone");
        void *tz = emu_tz_get(tzn != NULL ? tzn : cal->time_zone);
        if (tz == NULL)
            return BM_EINVAL;
        ms = emu_tz_to_utc(tz, ms);
    }
    *all_day = false;
    *key = *utc = ms;
    return BM_OK;
}

void emu_event_reindex(emu_event_t *ev)
{
    const char *st = jv_get_str(ev->res, "status");
    ev->status = st == NULL                     ? EMU_ST_CONFIRMED
                 : strcmp(st, "cancelled") == 0 ? EMU_ST_CANCELLED
                 : strcmp(st, "tentative") == 0 ? EMU_ST_TENTATIVE
                                                : EMU_ST_CONFIRMED;
    bool ad = false;
    int64_t key = 0, utc = 0;
    if (emu_when_parse(jv_get(ev->res, "start"), ev->cal, &ad, &key, &utc) == BM_OK) {
        ev->all_day = ad;
        ev->start_key = key;
        ev->start_ms = utc;
    }
    if (emu_when_parse(jv_get(ev->res, "end"), ev->cal, &ad, &key, &utc) == BM_OK) {
        ev->end_ms = utc;
        ev->end_key = key;
    } else {
        ev->end_ms = ev->start_ms;
        ev->end_key = ev->start_key;
    }
    const char *upd = jv_get_str(ev->res, "updated");
    bool off;
    int64_t ms;
    if (upd != NULL && emu_parse_datetime(upd, &ms, &off) == BM_OK)
        ev->updated_ms = ms;
    jv_t *rec = jv_get(ev->res, "recurrence");
    ev->is_master = rec != NULL && rec->type == JV_ARR && rec->n > 0;
    ev->recurring_id = jv_get_str(ev->res, "recurringEventId");
    ev->etag = jv_get_str(ev->res, "etag");
    ev->event_type = jv_get_str(ev->res, "eventType");
    if (ev->event_type == NULL)
        ev->event_type = "default";
    free(ev->occ);
    ev->occ = NULL;
    ev->n_occ = 0;
    ev->occ_valid = false;
    free(ev->json);
    ev->json = NULL;
}

static void log_compact(emu_calendar_t *cal)
{
    size_t o = 0;
    for (size_t i = 0; i < cal->n_log; i++)
        if (cal->log[i].ev->seq == cal->log[i].seq)
            cal->log[o++] = cal->log[i];
    cal->n_log = o;
}

void emu_event_changed(emu_event_t *ev, bool persist)
{
    emu_calendar_t *cal = ev->cal;
    int64_t now = bm_now_ms();
    int64_t clock = now * 1000;
    if (clock <= emu.world.etag_clock)
        clock = emu.world.etag_clock + 1;
    emu.world.etag_clock = clock;
    char buf[40];
    snprintf(buf, sizeof(buf), "\"%lld\"", (long long)clock);
    jv_set_str(ev->res, "etag", buf);
    emu_fmt_utc_ms(now, buf);
    jv_set_str(ev->res, "updated", buf);
    ev->seq = ++cal->seq;
    cal->updated_ms = now;
    if (cal->n_log == cal->cap_log) {
        if (cal->n_log > 2 * cal->n_order + 4096) {
            log_compact(cal);
        }
        if (cal->n_log == cal->cap_log) {
            cal->cap_log = cal->cap_log ? cal->cap_log * 2 : 256;
            cal->log = bm_realloc(cal->log, sizeof(*cal->log) * cal->cap_log);
        }
    }
    cal->log[cal->n_log].seq = ev->seq;
    cal->log[cal->n_log].ev = ev;
    cal->n_log++;
    emu_event_reindex(ev);
    if (persist) {
        emu_persist_event(ev);
        emu_persist_calendar(cal);
    }
    emu_push_calendar_changed(cal);
}

const char *emu_event_json(emu_event_t *ev, size_t *len)
{
    if (ev->json == NULL) {
        bm_buf_t b;
        bm_buf_init(&b, EMU_MAX_RESP);
        jv_write(&b, ev->res);
        ev->json_len = b.len;
        ev->json = bm_buf_steal(&b);
    }
    if (len != NULL)
        *len = ev->json_len;
    return ev->json;
}

int emu_event_occurrences(emu_event_t *ev)
{
    if (ev->occ_valid)
        return BM_OK;
    if (!ev->is_master) {
        ev->occ_valid = true;
        return BM_OK;
    }
    jv_t *start = jv_get(ev->res, "start");
    const char *tzn = jv_get_str(start, "timeZone");
    void *tz = emu_tz_get(tzn != NULL ? tzn : ev->cal->time_zone);
    char err[128];
    int rc = emu_recur_expand(jv_get(ev->res, "recurrence"), ev->all_day, tz, ev->start_key,
                              MAX_OCCURRENCES, &ev->occ, &ev->n_occ, &ev->occ_truncated, err,
                              sizeof(err));
    if (rc != BM_OK) {
        ev->occ = NULL;
        ev->n_occ = 0;
    }
    ev->occ_valid = true;
    return rc;
}

int64_t emu_occ_utc(const emu_event_t *master, int64_t key)
{
    if (!master->all_day)
        return key;
    return emu_tz_to_utc(emu_tz_get(master->cal->time_zone), key);
}
