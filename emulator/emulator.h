/*
 * emulator/emulator.h: the one internal header of gcal-emulator, a standalone
 * emulator of Google Calendar API v3 + Google OAuth (see emulator/README.md).
 *
 * Threads: everything here runs on the single HTTP event-loop thread, except
 * push delivery (push.c), which has its own thread and only touches the
 * push_* state behind its mutex. libical is only ever called from the loop.
 *
 * Naming: the emulator is a program of its own, so its internals use the
 * `emu_` prefix (types `emu_*_t`) instead of core's `bm_`.
 */
#ifndef BM_EMULATOR_H
#define BM_EMULATOR_H

#include "core/log.h"
#include "core/util.h"

#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ------------------------------------------------------------------ json.c */

typedef enum { JV_NULL, JV_BOOL, JV_NUM, JV_STR, JV_ARR, JV_OBJ } jv_type_t;

/* A JSON value. Numbers keep their source text in s. Objects keep key order.
 * A parent owns its children; jv_free frees a whole tree. */
typedef struct jv {
    jv_type_t type;
    bool b;
    char *s; /* STR, NUM: NUL-terminated */
    size_t len;
    size_t n, cap;
    char **keys;      /* OBJ */
    struct jv **vals; /* ARR, OBJ */
} jv_t;

#define EMU_JSON_MAX_DEPTH 64

/* Parses buf[len]. On failure returns BM_EINVAL with a message in err. */
int emu_json_parse(const char *buf, size_t len, jv_t **out, char *err, size_t errlen);
void jv_free(jv_t *v);
jv_t *jv_clone(const jv_t *v);
jv_t *jv_new(jv_type_t t);
jv_t *jv_str(const char *s);
jv_t *jv_strn(const char *s, size_t n);
jv_t *jv_int(int64_t i);
jv_t *jv_bool(bool b);
jv_t *jv_get(const jv_t *obj, const char *key);
/* The string value of obj[key], or NULL when absent or not a string. */
const char *jv_get_str(const jv_t *obj, const char *key);
/* Sets obj[key] = val, taking ownership of val (freeing a replaced value). */
void jv_set(jv_t *obj, const char *key, jv_t *val);
void jv_set_str(jv_t *obj, const char *key, const char *s);
/* Removes obj[key] (and frees it); no-op when absent. */
void jv_del(jv_t *obj, const char *key);
/* Detaches obj[key] and returns it (caller owns), NULL when absent. */
jv_t *jv_take(jv_t *obj, const char *key);
void jv_push(jv_t *arr, jv_t *val);
/* Appends the JSON text of v. */
int jv_write(bm_buf_t *b, const jv_t *v);
/* Appends s as a JSON string literal (quoted, escaped). */
int emu_json_puts(bm_buf_t *b, const char *s);
int emu_json_putsn(bm_buf_t *b, const char *s, size_t n);

/* ------------------------------------------------------------------ time.c */

/* Days since 1970-01-01 of a proleptic Gregorian date, and back. */
int64_t emu_days_from_civil(int y, int m, int d);
void emu_civil_from_days(int64_t days, int *y, int *m, int *d);
/* RFC 3339 date-time. has_offset is false when the text had no Z/offset; then
 * *ms is the wall time read as if UTC ("floating"). */
int emu_parse_datetime(const char *s, int64_t *ms, bool *has_offset);
/* YYYY-MM-DD into floating ms (midnight UTC of that date). */
int emu_parse_date(const char *s, int64_t *ms);
/* 2024-01-02T03:04:05.678Z */
void emu_fmt_utc_ms(int64_t ms, char out[32]);
/* Sun, 06 Nov 1994 08:49:37 GMT */
void emu_fmt_rfc1123(int64_t ms, char out[40]);
/* 20240102T030405Z / 20240102 */
void emu_fmt_basic_utc(int64_t ms, char out[24]);
void emu_fmt_basic_date(int64_t floating_ms, char out[16]);
/* YYYY-MM-DD of a floating ms. */
void emu_fmt_date(int64_t floating_ms, char out[16]);

/* Time zones (libical; loop thread only). NULL when the name is unknown. */
void *emu_tz_get(const char *name);
/* Floating wall time in zone tz -> UTC ms; UTC ms -> floating wall time. */
int64_t emu_tz_to_utc(void *tz, int64_t floating_ms);
int64_t emu_tz_from_utc(void *tz, int64_t utc_ms);
/* 2024-01-05T10:00:00+01:00 for utc_ms seen in tz. */
void emu_fmt_local(void *tz, int64_t utc_ms, char out[40]);

/* ------------------------------------------------------------------ map.c */

/* String-keyed hash map; keys are borrowed (must outlive their entry). */
typedef struct emu_map {
    const char **keys;
    void **vals;
    size_t n, cap;
} emu_map_t;

void emu_map_init(emu_map_t *m);
void emu_map_dispose(emu_map_t *m);
void *emu_map_get(const emu_map_t *m, const char *key);
/* Inserts or replaces. */
void emu_map_put(emu_map_t *m, const char *key, void *val);
void *emu_map_del(emu_map_t *m, const char *key);
uint64_t emu_hash(const void *p, size_t n);

/* ------------------------------------------------------------------ world.c */

typedef struct emu_calendar emu_calendar_t;
typedef struct emu_event emu_event_t;

/* Fault knobs: the world's (POST /_emulator/faults) and each user's (POST
 * /_emulator/users/{email}/faults: error faults, latency and refuse_watch only,
 * applied to requests authenticated as that user). */
typedef struct emu_faults {
    double error_500, error_502, error_503, error_504, error_429, error_403, drop_notifications,
        short_pages;
    int64_t latency_ms, delay_notifications_ms;
    int64_t token_latency_ms; /* world only: /token answers this late */
    int64_t refuse_watch; /* 401/403 push.webhookUrlUnauthorized, 400 pushNotSupported...; 0: off */
    int64_t max_errors;   /* error faults stop after this many (0: no limit) */
    int64_t n_errors;     /* error faults injected since these settings were made */
    bool writes_only;     /* error faults hit writes (insert/update/patch/delete/import) only */
    bool ignore_extended_property_filter; /* events.list ignores private/sharedExtendedProperty */
} emu_faults_t;

typedef struct emu_user {
    char *email;
    emu_calendar_t *primary;
    emu_calendar_t **cals;
    size_t n_cals, cap_cals;
    int quota_rpm; /* 0: unlimited */
    int quota_status;
    int64_t quota_window_ms; /* the sliding window of quota_rpm; 0 means one minute */
    int64_t *qwin;           /* ring of accepted request times (ms) */
    size_t qwin_head, qwin_n;
    /* OAuth consent (oauth.c, admin.c; not persisted) */
    bool consent_deny;    /* clicks Cancel on the consent screen (POST /_emulator/consent) */
    bool offline_granted; /* has consented to the client with access_type=offline */
    /* this user's fault knobs (not persisted) and what reached the API as this user */
    emu_faults_t faults;
    int64_t n_requests; /* HTTP API requests (a batch counted once, by its Authorization) */
    int64_t n_calls;    /* API calls, batch parts one by one */
    int64_t n_errors_injected;
} emu_user_t;

typedef struct emu_logent {
    uint64_t seq;
    emu_event_t *ev;
} emu_logent_t;

struct emu_calendar {
    char *id;
    char *summary;
    char *time_zone;
    char *resource_id;
    emu_user_t *owner;
    bool primary;
    uint64_t gen; /* bumping it invalidates every sync token */
    uint64_t seq; /* change sequence of the last event change */
    int64_t updated_ms;
    emu_map_t events;    /* id -> emu_event_t */
    emu_event_t **order; /* creation order; index == ordinal */
    size_t n_order, cap_order;
    emu_logent_t *log; /* change log, seq ascending; stale entries skipped */
    size_t n_log, cap_log;
};

enum { EMU_ST_CONFIRMED, EMU_ST_TENTATIVE, EMU_ST_CANCELLED };

struct emu_event {
    emu_calendar_t *cal;
    char *id;
    jv_t *res;  /* the full stored resource */
    char *json; /* cached jv_write(res), NULL when stale */
    size_t json_len;
    uint64_t seq;
    size_t ordinal;
    /* derived from res by emu_event_reindex() */
    int status;
    bool all_day;
    int64_t start_ms, end_ms; /* UTC; all-day: midnight in the calendar's zone */
    int64_t start_key;        /* timed: UTC ms; all-day: floating ms of the date */
    int64_t end_key;
    int64_t updated_ms;
    bool is_master;
    const char *recurring_id; /* points into res */
    const char *etag;         /* points into res */
    const char *event_type;   /* points into res */
    /* master occurrence cache (keys like start_key), NULL when stale */
    int64_t *occ;
    size_t n_occ;
    bool occ_valid;
    bool occ_truncated;
};

typedef struct emu_token {
    char *token;
    emu_user_t *user;
    char *scope;
    int64_t expires_ms; /* 0: never */
    /* authorization codes only */
    char *redirect_uri;
    char *challenge; /* NULL: issued without PKCE, so the exchange must bring no verifier */
    char *challenge_method;
    bool offline; /* the exchange returns a refresh token */
} emu_token_t;

typedef struct emu_channel {
    char *id;
    char *resource_id;
    char *resource_uri;
    char *token;
    char *address;
    char *cal_id;
    emu_user_t *user;
    int64_t expiration_ms;
    uint64_t msg_no;
} emu_channel_t;

typedef struct emu_world {
    emu_map_t users;     /* email -> emu_user_t */
    emu_map_t calendars; /* id -> emu_calendar_t */
    emu_map_t refresh;   /* token -> emu_token_t */
    emu_map_t access;    /* token -> emu_token_t */
    emu_map_t codes;     /* code -> emu_token_t */
    emu_channel_t **channels;
    size_t n_channels, cap_channels;
    char world_id[17]; /* random per world; part of every sync/page token */
    int64_t etag_clock;
    char *consent_email;
} emu_world_t;

void emu_world_init(emu_world_t *w);
void emu_world_dispose(emu_world_t *w);
emu_user_t *emu_user_find(const char *email);
/* Creates user + primary calendar; BM_EEXIST when the email is taken. */
int emu_user_create(const char *email, const char *time_zone, emu_user_t **out);
emu_calendar_t *emu_calendar_find(const char *id);
int emu_calendar_create(emu_user_t *u, const char *id, const char *summary, const char *tz,
                        emu_calendar_t **out);
emu_event_t *emu_event_find(emu_calendar_t *cal, const char *id);
/* Adds a new event (res owned) to cal; does not bump (call emu_event_changed). */
emu_event_t *emu_event_add(emu_calendar_t *cal, const char *id, jv_t *res);
/* Resolves a start/end object: all-day flag, key (UTC ms, or floating ms of
 * the date) and the UTC instant (all-day: midnight in the calendar's zone). */
int emu_when_parse(const jv_t *when, const emu_calendar_t *cal, bool *all_day, int64_t *key,
                   int64_t *utc);
/* Refreshes derived fields after res changed. */
void emu_event_reindex(emu_event_t *ev);
/* Records a change: new seq, etag, updated; log; persist; push. */
void emu_event_changed(emu_event_t *ev, bool persist);
/* The cached serialization of ev->res. */
const char *emu_event_json(emu_event_t *ev, size_t *len);
/* Random ids/tokens. */
void emu_random_hex(char *out, size_t n_chars);
void emu_random_base32hex(char *out, size_t n_chars);
emu_token_t *emu_token_new(emu_map_t *m, const char *prefix, emu_user_t *u, const char *scope,
                           int64_t ttl_ms, const char *fixed);
void emu_token_free(emu_token_t *t);
void emu_user_revoke(emu_user_t *u);
/* Ensures ev's occurrence cache; BM_EINVAL when its recurrence is malformed. */
int emu_event_occurrences(emu_event_t *ev);
/* Occurrence key -> UTC ms of its start. */
int64_t emu_occ_utc(const emu_event_t *master, int64_t key);
void emu_calendar_invalidate_tokens(emu_calendar_t *cal);

/* ------------------------------------------------------------------ recur.c */

/* Expands recurrence lines (JSON array of strings) of a series starting at
 * start_key (UTC ms, or floating ms for all-day) in zone tz. Up to max keys,
 * sorted and unique, in *out (caller frees). */
int emu_recur_expand(const jv_t *lines, bool all_day, void *tz, int64_t start_key, size_t max,
                     int64_t **out, size_t *n_out, bool *truncated, char *err, size_t errlen);
/* Checks recurrence lines syntactically. */
int emu_recur_validate(const jv_t *lines, char *err, size_t errlen);

/* ------------------------------------------------------------------ http layer */

typedef struct emu_param {
    char *name;
    char *value;
} emu_param_t;

typedef struct emu_req {
    char method[16];
    char *path; /* raw path without query */
    emu_param_t *params;
    size_t n_params;
    char *authorization;
    char *if_match;
    char *content_type;
    const char *body;
    size_t body_len;
    bool in_batch;
} emu_req_t;

typedef struct emu_resp {
    int status;
    bm_buf_t body;
    char etag[64];
    char content_type[96];
    char *location;
} emu_resp_t;

#define EMU_MAX_BODY       (1u << 20)
#define EMU_MAX_BATCH_BODY (16u << 20)
#define EMU_MAX_RESP       (256u << 20)

void emu_req_init(emu_req_t *rq);
void emu_req_dispose(emu_req_t *rq);
/* Splits "path?query" into rq->path and decoded rq->params. */
int emu_req_set_target(emu_req_t *rq, const char *target, size_t len);
void emu_resp_init(emu_resp_t *rs);
void emu_resp_dispose(emu_resp_t *rs);
/* Google-shaped error body. */
void emu_error(emu_resp_t *rs, int status, const char *reason, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void emu_resp_json(emu_resp_t *rs, int status, const jv_t *v);
const char *emu_reason_phrase(int status);
const char *emu_param(const emu_req_t *rq, const char *name);
size_t emu_param_count(const emu_req_t *rq, const char *name);
/* Splits rq->path after prefix into decoded segments (max n). Returns count. */
size_t emu_path_segments(const char *path, char **segs, size_t max);
/* The request's JSON object body (caller frees with jv_free), or NULL after
 * answering 400 (required when absent unless optional: then an empty object). */
jv_t *emu_body_object(const emu_req_t *rq, emu_resp_t *rs, bool optional);

/* batch.c: a part of a multipart body; data points into the body. */
typedef struct emu_part {
    char *content_id; /* NULL when absent */
    const char *data;
    size_t len;
} emu_part_t;

int emu_multipart_boundary(const char *content_type, char *out, size_t outlen);
/* Splits body into parts (*out freed with emu_parts_free); BM_ETOOBIG beyond 1000. */
int emu_multipart_parse(const char *boundary, const char *body, size_t len, emu_part_t **out,
                        size_t *n_out, char *err, size_t errlen);
void emu_parts_free(emu_part_t *parts, size_t n);
/* Parses "METHOD target HTTP/1.1", headers, blank line, body into rq (body borrowed). */
int emu_http_request_parse(const char *data, size_t len, emu_req_t *rq);

/* Entry points by URL family. Each fills rs. */
void emu_api_handle(emu_req_t *rq, emu_resp_t *rs);
/* The user whose live access token an Authorization value carries, or NULL. */
emu_user_t *emu_api_user(const char *authorization);
void emu_batch_handle(emu_req_t *rq, emu_resp_t *rs);
void emu_oauth_token(emu_req_t *rq, emu_resp_t *rs);
void emu_oauth_auth(emu_req_t *rq, emu_resp_t *rs);
void emu_admin_handle(emu_req_t *rq, emu_resp_t *rs);

/* http.c: the listener and the loop (loop thread). */
int emu_http_start(const char *bind_addr, int port, int *bound_port, char *err, size_t errlen);
void emu_http_run(volatile sig_atomic_t *stop);
/* false when connections were still open after the drain (nothing was disposed). */
bool emu_http_stop(void);

/* ------------------------------------------------------------------ events.c */

enum {
    EMU_WF_ADMIN = 1,  /* "a person in the UI": any eventType, attendees self kept */
    EMU_WF_IMPORT = 2, /* events.import */
};
/* Longest iCalUID accepted (Google documents none; RFC 5545 UIDs are short). */
#define EMU_ICAL_UID_MAX 1024

void emu_events_insert(emu_calendar_t *cal, emu_user_t *u, const emu_req_t *rq, int flags,
                       emu_resp_t *rs);
void emu_events_get(emu_calendar_t *cal, const char *id, const emu_req_t *rq, emu_resp_t *rs);
/* patch=false: PUT. */
void emu_events_update(emu_calendar_t *cal, const char *id, const emu_req_t *rq, bool patch,
                       int flags, emu_resp_t *rs);
void emu_events_delete(emu_calendar_t *cal, const char *id, const emu_req_t *rq, int flags,
                       emu_resp_t *rs);
/* 1 when id is base32hex (a-v, 0-9) of 5..1024 chars. */
int emu_event_id_valid(const char *id);
/* Renders occurrence `key` of master as an instance resource (caller frees). */
jv_t *emu_instance_render(emu_event_t *master, int64_t key);
/* "<id>_<stamp>" of an occurrence. */
void emu_occurrence_id(const emu_event_t *master, int64_t key, char *out, size_t outlen);
/* Minimal cancelled form (kind, id, status, + recurringEventId/originalStartTime). */
int emu_write_cancelled(bm_buf_t *b, const jv_t *res);

/* ------------------------------------------------------------------ list.c */

void emu_events_list(emu_calendar_t *cal, const emu_req_t *rq, emu_resp_t *rs);
void emu_events_instances(emu_calendar_t *cal, const char *id, const emu_req_t *rq, emu_resp_t *rs);
void emu_calendar_list(emu_user_t *u, const emu_req_t *rq, emu_resp_t *rs);

/* ------------------------------------------------------------------ push.c */

int emu_push_start(void);
void emu_push_stop(void);
/* Queues a message for ch (state "sync" or "exists"), honoring drop/delay faults. */
void emu_push_enqueue(emu_channel_t *ch, const char *state);
/* Forgets queued messages of channel id and waits for one in flight. */
void emu_push_cancel(const char *channel_id);
void emu_push_calendar_changed(emu_calendar_t *cal);
void emu_watch(emu_calendar_t *cal, emu_user_t *u, const emu_req_t *rq, emu_resp_t *rs);
void emu_channels_stop(emu_user_t *u, const emu_req_t *rq, emu_resp_t *rs);
void emu_channel_free(emu_channel_t *ch);
void emu_channels_expire(void);

/* ------------------------------------------------------------------ persist.c */

int emu_persist_open(const char *path, char *err, size_t errlen);
void emu_persist_close(void);
/* Loads the world from the db into emu.world (empty world when new). */
int emu_persist_load(char *err, size_t errlen);
void emu_persist_user(const emu_user_t *u);
void emu_persist_calendar(const emu_calendar_t *cal);
void emu_persist_event(const emu_event_t *ev);
void emu_persist_token(const emu_token_t *t, const char *kind);
void emu_persist_token_del(const char *token);
void emu_persist_user_tokens_del(const emu_user_t *u);
void emu_persist_channel(const emu_channel_t *ch);
void emu_persist_channel_del(const char *id);
void emu_persist_meta(void);
void emu_persist_wipe(void);
void emu_persist_begin(void);
void emu_persist_commit(void);

/* ------------------------------------------------------------------ demo.c */

int emu_seed_demo(char *err, size_t errlen);

/* ------------------------------------------------------------------ global state */

typedef struct emu_counters {
    _Atomic int64_t requests, list, get, insert, update, patch, del, instances, import, writes,
        batch, batch_parts, watch, stop, token, calendar_list, notifications, errors_injected,
        list_sync, list_full; /* events.list calls with / without a syncToken */
} emu_counters_t;

typedef struct emu_config {
    const char *bind;
    int port;
    const char *port_file;
    const char *db;
    bool seed_demo;
    const char *client_id;
    const char *client_secret;
    int64_t max_channel_ttl;
    int64_t token_ttl;
    uint64_t rng_seed;
    bool verbose;
} emu_config_t;

typedef struct emu {
    emu_config_t cfg;
    emu_world_t world;
    emu_counters_t counters;
    emu_faults_t faults;
    uint64_t rng; /* fault RNG (loop thread) */
    char base_url[128];
    /* the longest per-user latency fault among the users a request (or a batch
     * part) was authenticated as: set by api.c, consumed by http.c per request */
    int64_t pending_latency_ms;
} emu_t;

extern emu_t emu;

/* Fault RNG: uniform in [0,1). */
double emu_rand01(void);
uint64_t emu_rand_u64(void);
/* Wipes the world to empty (keeps config). */
void emu_world_reset(void);

#endif
