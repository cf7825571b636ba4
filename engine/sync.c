/*
 * engine/sync.c: sync of one calendar (list, plan, commit) and the outbox drain.
 * The order of a sync is architecture.md's "Sync of one calendar".
 */
#include "engine/engine.h"
#include "engine/engine-int.h"
#include "core/crypto.h"
#include "core/gcal.h"
#include "core/log.h"
#include "core/util.h"

#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LEASE_TTL_S       600
#define FULL_SYNC_EVERY   86400 /* a daily full listing lets events enter the window */
#define MAX_ATTEMPTS      8     /* per outbox item, then a dead letter */
#define RETRY_BASE_MS     250
#define RETRY_CAP_MS      8000
#define DRAIN_MAX_WAIT_MS 20000 /* a run waits this long at most for a backed-off item */

/* ---- accounts and tokens ---- */

static int load_key(bm_engine_t *e, char *err, size_t errlen)
{
    if (e->have_key)
        return BM_OK;
    int rc = bm_crypto_key_load(e->o.cfg->store.key_file, false, e->key, err, errlen);
    if (rc == BM_OK)
        e->have_key = true;
    return rc;
}

int bm__engine_account(bm_engine_t *e, int64_t id, engine_account_t **out, char *err, size_t errlen)
{
    int rc = BM_OK;
    bm_account_t row = {0};
    unsigned char *plain = NULL;
    size_t plain_len = 0;

    for (size_t i = 0; i < e->n_accounts; i++) {
        engine_account_t *a = &e->accounts[i];
        if (a->id != id)
            continue;
        *out = a;
        if (a->broken)
            return bm_err(err, errlen, BM_EAUTH, "account '%s' needs a new login", a->name);
        if (a->breaker_until > bm_now())
            return bm_err(err, errlen, BM_ETRANSIENT,
                          "account '%s': circuit breaker open for %llds more after %d failures",
                          a->name, (long long)(a->breaker_until - bm_now()), a->breaker_failures);
        return BM_OK;
    }
    rc = bm_store_account_get_by_id(e->st, id, &row, err, errlen);
    if (rc != BM_OK)
        goto out;
    e->accounts = bm_realloc(e->accounts, (e->n_accounts + 1) * sizeof(*e->accounts));
    engine_account_t *a = &e->accounts[e->n_accounts++];
    memset(a, 0, sizeof(*a));
    a->id = id;
    a->name = bm_strdup(row.name);
    a->breaker_failures = row.breaker_failures;
    a->breaker_until = row.breaker_until;
    *out = a;
    if (row.state == BM_ACCOUNT_NEEDS_LOGIN || row.refresh_token_enc == NULL) {
        a->broken = true;
        rc = bm_err(err, errlen, BM_EAUTH,
                    "account '%s' needs a new login (busymirror account login --name %s)", row.name,
                    row.name);
        goto out;
    }
    char aad[300];
    snprintf(aad, sizeof(aad), "account:%s", row.name);
    rc = load_key(e, err, errlen);
    if (rc == BM_OK)
        rc = bm_crypto_open(e->key, aad, row.refresh_token_enc, row.refresh_token_enc_len, &plain,
                            &plain_len, err, errlen);
    if (rc != BM_OK) {
        a->broken = true;
        goto out;
    }
    a->refresh_token = bm_strndup((const char *)plain, plain_len);
    bm_log_add_secret(a->refresh_token);
    bm_gcal_account_init(&a->g, a->refresh_token, a->name);
    if (a->breaker_until > bm_now())
        rc = bm_err(err, errlen, BM_ETRANSIENT,
                    "account '%s': circuit breaker open for %llds more after %d failures", a->name,
                    (long long)(a->breaker_until - bm_now()), a->breaker_failures);
out:
    bm_crypto_free(plain, plain_len);
    bm_account_dispose(&row);
    return rc;
}

void bm__engine_needs_login(bm_engine_t *e, engine_account_t *a)
{
    char err[256];
    a->broken = true;
    if (!e->o.dry_run &&
        bm_store_account_set_state(e->st, a->id, BM_ACCOUNT_NEEDS_LOGIN, err, sizeof(err)) != BM_OK)
        BM_LOG(BM_LOG_ERROR, BM_MSG("cannot mark account"), BM_KS("error", err));
    BM_LOG(BM_LOG_ERROR, BM_MSG("account needs a new login: its calendars are parked"),
           BM_KS("account", a->name));
}

#define BREAKER_FIRST_S 60
#define BREAKER_MAX_S   3600

void bm__engine_breaker(bm_engine_t *e, engine_account_t *a, int rc, bool exhausted)
{
    char err[256];
    if (rc == BM_OK)
        a->consecutive = 0;
    else if (rc == BM_ETRANSIENT)
        a->consecutive += exhausted ? BREAKER_THRESHOLD : 1;
    if (rc == BM_OK && a->breaker_failures > 0) {
        BM_LOG(BM_LOG_INFO, BM_MSG("circuit breaker closed"), BM_KS("account", a->name));
        a->breaker_failures = 0;
        a->breaker_until = 0;
    } else if (rc == BM_ETRANSIENT && a->consecutive >= BREAKER_THRESHOLD) {
        a->consecutive = 0;
        int64_t open_s = BREAKER_FIRST_S;
        for (int i = 0; i < a->breaker_failures && open_s < BREAKER_MAX_S; i++)
            open_s *= 2;
        a->breaker_failures++;
        a->breaker_until = bm_now() + (open_s < BREAKER_MAX_S ? open_s : BREAKER_MAX_S);
        BM_LOG(BM_LOG_WARN, BM_MSG("circuit breaker open: the account's calendars wait"),
               BM_KS("account", a->name), BM_KI("failures", a->breaker_failures),
               BM_KI("seconds", a->breaker_until - bm_now()));
    } else {
        return;
    }
    if (!e->o.dry_run && bm_store_account_set_breaker(e->st, a->id, a->breaker_failures,
                                                      a->breaker_until, err, sizeof(err)) != BM_OK)
        BM_LOG(BM_LOG_ERROR, BM_MSG("cannot save the circuit breaker"), BM_KS("error", err));
}

/* ---- lifecycle ---- */

int bm_engine_new(const bm_engine_opts_t *o, bm_store_t *st, bm_engine_t **out, char *err,
                  size_t errlen)
{
    const bm_config_t *cfg = o->cfg;
    bm_engine_t *e = bm_calloc(1, sizeof(*e));
    e->o = *o;
    e->st = st;
    e->out = o->out != NULL ? o->out : stdout;
    bm_gcal_opts_t go = {
        .api_base_url = cfg->google.api_base_url,
        .batch_url = cfg->google.batch_url,
        .token_url = cfg->google.token_url,
        .client_id = cfg->google.client_id,
        .client_secret = cfg->google.client_secret,
        .user_quota = cfg->google.user_quota,
        .stop = o->stop,
    };
    int rc = bm_gcal_new(&go, &e->gcal, err, errlen);
    if (rc != BM_OK) {
        free(e);
        *out = NULL;
        return rc;
    }
    int64_t now = bm_now();
    e->plan.window_start = now - (int64_t)cfg->sync.past_days * 86400;
    e->plan.window_end = now + (int64_t)cfg->sync.future_days * 86400;
    e->plan.block_summary = cfg->sync.block_summary;
    e->plan.busy_event_types = BM_ETYPE_BUSY_DEFAULT;
    e->plan.tentative_is_busy = true;
    e->plan_key = bm_sprintf("summary=%s;types=%u;tentative=%d", e->plan.block_summary,
                             e->plan.busy_event_types, e->plan.tentative_is_busy);
    char host[256] = "localhost";
    gethostname(host, sizeof(host));
    host[sizeof(host) - 1] = '\0';
    snprintf(e->owner, sizeof(e->owner), "%ld@%s", (long)getpid(), host);
    e->rng = (uint64_t)bm_now_ms() ^ ((uint64_t)getpid() << 32);
    *out = e;
    return BM_OK;
}

void bm_engine_free(bm_engine_t *e)
{
    if (e == NULL)
        return;
    for (size_t i = 0; i < e->n_accounts; i++) {
        engine_account_t *a = &e->accounts[i];
        if (a->refresh_token != NULL) {
            bm_gcal_account_dispose(&a->g);
            bm_crypto_free(a->refresh_token, strlen(a->refresh_token));
        }
        free(a->name);
    }
    free(e->accounts);
    bm_gcal_free(e->gcal);
    free(e->plan_key);
    bm_crypto_wipe(e->key, sizeof(e->key));
    free(e);
}

void bm_engine_totals(const bm_engine_t *e, bm_engine_totals_t *out)
{
    *out = e->totals;
}

long bm_engine_api_calls(const bm_engine_t *e)
{
    bm_gcal_stats_t s;
    bm_gcal_stats(e->gcal, &s);
    return s.requests;
}

size_t bm__engine_batch_size(const bm_engine_t *e)
{
    size_t n = (size_t)e->o.cfg->engine.batch_size;
    int quota = e->o.cfg->google.user_quota;
    size_t burst = quota >= 6 ? (size_t)quota / 6 : 1;
    return quota > 0 && burst < n ? burst : n;
}

bool bm__engine_stopped(const bm_engine_t *e)
{
    return e->o.stop != NULL && *e->o.stop != 0;
}

/* ---- discover ---- */

typedef struct discover_ctx {
    bm_engine_t *e;
    int64_t account_id;
    size_t n;
    char *err;
    size_t errlen;
} discover_ctx_t;

static int on_calendar(void *ud, const bm_gcal_calendar_t *c)
{
    discover_ctx_t *d = ud;
    d->n++;
    int rc = bm_store_calendar_upsert(d->e->st, d->account_id, c->id, c->summary, c->time_zone,
                                      c->access_role, c->primary, NULL, d->err, d->errlen);
    if (rc == BM_OK && c->primary) /* a primary calendar's id is its owner's address */
        rc = bm_store_account_set_email(d->e->st, d->account_id, c->id, d->err, d->errlen);
    return rc;
}

int bm_engine_discover(bm_engine_t *e, const bm_account_t *acct, size_t *n_found, char *err,
                       size_t errlen)
{
    engine_account_t *a;
    int rc = bm__engine_account(e, acct->id, &a, err, errlen);
    if (rc != BM_OK)
        return rc;
    discover_ctx_t d = {e, acct->id, 0, err, errlen};
    rc = bm_store_begin(e->st, err, errlen);
    if (rc != BM_OK)
        return rc;
    rc = bm_gcal_list_calendars(e->gcal, &a->g, on_calendar, &d, err, errlen);
    if (rc == BM_EAUTH)
        bm__engine_needs_login(e, a);
    if (rc == BM_OK)
        rc = bm_store_commit(e->st, err, errlen);
    else
        bm_store_rollback(e->st);
    *n_found = d.n;
    return rc;
}

/* ---- planning ---- */

typedef struct sync_ctx {
    bm_engine_t *e;
    const bm_calendar_t *cal;
    bm_calendar_t *targets;
    size_t n_targets;
    bm_event_t *events; /* every listed event, owned */
    size_t n_events, cap_events;
    int64_t inserts, updates, deletes;
    bool force_full; /* this pass lists in full whatever the state says */
    bool relist;     /* a series started or stopped being mirrored: plan its exceptions anew */
} sync_ctx_t;

static int on_page(void *ud, bm_event_t *events, size_t n)
{
    sync_ctx_t *c = ud;
    if (c->n_events + n > c->cap_events) {
        while (c->n_events + n > c->cap_events)
            c->cap_events = c->cap_events ? c->cap_events * 2 : 256;
        c->events = bm_realloc(c->events, c->cap_events * sizeof(*c->events));
    }
    for (size_t i = 0; i < n; i++) { /* take ownership of every field */
        c->events[c->n_events++] = events[i];
        memset(&events[i], 0, sizeof(events[i]));
    }
    return bm__engine_stopped(c->e) ? BM_ECANCELED : BM_OK;
}

/* "<sha256(calendar) prefix>/<event>": names the source without naming the calendar. */
static char *marker_src(const char *gcal_id, const char *event_id)
{
    unsigned char md[32];
    unsigned int md_len = 0;
    char hex[17];
    EVP_Digest(gcal_id, strlen(gcal_id), md, &md_len, EVP_sha256(), NULL);
    for (int i = 0; i < 8; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    return bm_sprintf("%s/%s", hex, event_id);
}

static void print_op(sync_ctx_t *c, const char *what, const bm_calendar_t *t, const char *block_id,
                     const char *src_event)
{
    if (!c->e->o.dry_run && !c->e->o.verbose)
        return;
    fprintf(c->e->out, "%s%s %s -> %s block=%s source=%s\n", c->e->o.dry_run ? "would " : "", what,
            c->cal->gcal_id, t->gcal_id, block_id, src_event);
}

/* Records the block wanted in t (key/body NULL: no block) and plans the write.
 * key is what the block must look like (block_key), stored as blocks.shape. */
static int reconcile_block(sync_ctx_t *c, const bm_calendar_t *t, const char *block_id,
                           const char *master_block_id, const char *src_event, const char *shape,
                           char *body, char *err, size_t errlen)
{
    bm_block_t cur = {0};
    int rc = bm_store_block_get(c->e->st, t->id, block_id, &cur, err, errlen);
    bool have = rc == BM_OK;
    bool instance = master_block_id != NULL;
    if (rc != BM_OK && rc != BM_ENOTFOUND)
        goto out;
    rc = BM_OK;
    bm_op_kind_t op = bm_plan_diff(shape, have ? cur.shape : NULL);
    if (op == BM_OP_NONE)
        goto out;
    /* A person deleted it and wants it left alone, whatever its source does. */
    if (op == BM_OP_PUT && have && cur.state == BM_BLOCK_USER_DELETED &&
        c->e->o.cfg->sync.respect_deleted_blocks)
        goto out;
    /* An occurrence that stops being busy is cancelled in the block series: its
     * shape is "cancelled" and it has no body. */
    bm_outbox_op_t what = op == BM_OP_PUT && body != NULL ? BM_OUTBOX_PUT : BM_OUTBOX_DELETE;
    bm_block_t b = {
        .target_calendar_id = t->id,
        .block_id = (char *)block_id,
        .source_calendar_id = c->cal->id,
        .source_event_id = (char *)src_event,
        .master_block_id = (char *)master_block_id,
        .shape = (char *)shape,
        .body = body,
        .created = have && cur.created,
        .state = BM_BLOCK_LIVE,
    };
    rc = bm_store_block_put(c->e->st, &b, err, errlen);
    if (rc == BM_OK)
        rc = bm_store_outbox_put(c->e->st, t->id, block_id, what, instance, err, errlen);
    if (what == BM_OUTBOX_DELETE) {
        c->deletes++;
        print_op(c, "delete", t, block_id, src_event);
    } else if (b.created) {
        c->updates++;
        print_op(c, "update", t, block_id, src_event);
    } else {
        c->inserts++;
        print_op(c, "insert", t, block_id, src_event);
    }
out:
    bm_block_dispose(&cur);
    return rc;
}

/* What a block must look like: its source's busy shape, plus what a person could
 * change on the block itself (title, show-as, visibility), so that such an edit
 * is seen and undone like a move. */
static char *block_key(const char *shape, const char *summary, const char *transparency,
                       const char *visibility)
{
    return bm_sprintf("%s|n=%s|t=%s|v=%s", shape, summary != NULL ? summary : "",
                      transparency != NULL ? transparency : "opaque",
                      visibility != NULL ? visibility : "default");
}

static char *wanted_key(const bm_engine_t *e, const char *shape)
{
    return block_key(shape, e->plan.block_summary, "opaque", "private");
}

static char *listed_key(const bm_event_t *ev)
{
    char *shape = bm_plan_shape(ev);
    char *key = block_key(shape, ev->summary, ev->transparency, ev->visibility);
    free(shape);
    return key;
}

/* An exception of a mirrored series: override or cancel the block's occurrence. */
static int plan_occurrence(sync_ctx_t *c, const bm_event_t *ev, char *err, size_t errlen)
{
    bm_engine_t *e = c->e;
    char suffix[32];
    const char *reason;
    bool busy = bm_plan_is_busy(ev, &e->plan, &reason);
    bm_plan_instance_suffix(&ev->original_start, suffix, sizeof(suffix));
    char *shape = busy ? bm_plan_shape(ev) : bm_strdup("cancelled");
    char *key = busy ? wanted_key(e, shape) : bm_strdup("cancelled");
    bm_source_t src = {ev->id, busy, shape, ev->recurring_event_id};
    int rc = bm_store_source_put(e->st, c->cal->id, &src, err, errlen);
    char *msrc = marker_src(c->cal->gcal_id, ev->id);
    for (size_t i = 0; rc == BM_OK && i < c->n_targets; i++) {
        char master[BM_BLOCK_ID_LEN + 1], inst[BM_BLOCK_ID_LEN + 40];
        bm_plan_block_id(c->cal->group_name, c->cal->gcal_id, ev->recurring_event_id,
                         c->targets[i].gcal_id, master);
        snprintf(inst, sizeof(inst), "%s_%s", master, suffix);
        char *body = busy ? bm_plan_block_body(ev, inst, msrc, &e->plan) : NULL;
        char lone[BM_BLOCK_ID_LEN + 1];
        /* mirrored alone while its series was not: the series covers it now */
        bm_plan_block_id(c->cal->group_name, c->cal->gcal_id, ev->id, c->targets[i].gcal_id, lone);
        rc = reconcile_block(c, &c->targets[i], lone, NULL, ev->id, NULL, NULL, err, errlen);
        if (rc == BM_OK && !(busy && body == NULL)) /* else: no start/end to override with */
            rc = reconcile_block(c, &c->targets[i], inst, master, ev->id, key, body, err, errlen);
        free(body);
    }
    free(msrc);
    free(key);
    free(shape);
    return rc;
}

/* A source event (or its deletion, ev->status cancelled or ev NULL with id). */
static int plan_source(sync_ctx_t *c, const bm_event_t *ev, const char *event_id, char *err,
                       size_t errlen)
{
    bm_engine_t *e = c->e;
    const char *reason = "deleted";
    bool busy =
        ev != NULL && bm_plan_is_busy(ev, &e->plan, &reason) && bm_plan_in_window(ev, &e->plan);
    char *shape = busy ? bm_plan_shape(ev) : NULL;
    char *key = busy ? wanted_key(e, shape) : NULL;
    char *msrc = busy ? marker_src(c->cal->gcal_id, event_id) : NULL;
    bm_source_t prev = {0};
    bool exceptions = false;
    int rc = bm_store_source_get(e->st, c->cal->id, event_id, &prev, err, errlen);
    if (rc == BM_ENOTFOUND)
        rc = BM_OK;
    /* A series that starts or stops being mirrored changes how each of its
     * exceptions is mirrored (an occurrence override, or a block of its own). */
    if (rc == BM_OK && prev.busy != busy)
        rc = bm_store_source_has_exceptions(e->st, c->cal->id, event_id, &exceptions, err, errlen);
    c->relist |= exceptions;
    if (rc == BM_OK && busy) {
        bm_source_t src = {(char *)event_id, true, shape, ev->recurring_event_id};
        rc = bm_store_source_put(e->st, c->cal->id, &src, err, errlen);
    } else if (rc == BM_OK) {
        rc = bm_store_source_delete(e->st, c->cal->id, event_id, err, errlen);
    }
    bm_source_dispose(&prev);
    for (size_t i = 0; rc == BM_OK && i < c->n_targets; i++) {
        char bid[BM_BLOCK_ID_LEN + 1];
        bm_plan_block_id(c->cal->group_name, c->cal->gcal_id, event_id, c->targets[i].gcal_id, bid);
        char *body = busy ? bm_plan_block_body(ev, bid, msrc, &e->plan) : NULL;
        if (busy && body == NULL) { /* no start/end, or text that is not UTF-8 */
            BM_LOG(BM_LOG_WARN, BM_MSG("cannot build a block for this event: skipped"),
                   BM_KS("calendar", c->cal->gcal_id), BM_KS("event", event_id));
            continue;
        }
        rc = reconcile_block(c, &c->targets[i], bid, NULL, event_id, key, body, err, errlen);
        free(body);
    }
    free(msrc);
    free(key);
    free(shape);
    return rc;
}

/* ev is one of our blocks living in this calendar: restore it if a person moved,
 * renamed, freed, published or deleted it. */
static int plan_echo(sync_ctx_t *c, const bm_event_t *ev, bm_block_t *cur, char *err, size_t errlen)
{
    bm_engine_t *e = c->e;
    int rc = BM_OK;
    bool cancelled = ev->status != NULL && strcmp(ev->status, "cancelled") == 0;
    char *listed = cancelled ? NULL : listed_key(ev);
    if (cur->shape == NULL) /* we are deleting it anyway */
        goto out;
    if (cur->master_block_id != NULL && strcmp(cur->shape, "cancelled") == 0) {
        if (!cancelled) /* a cancelled occurrence came back: cancel it again */
            rc = bm_store_outbox_put(e->st, cur->target_calendar_id, cur->block_id,
                                     BM_OUTBOX_DELETE, true, err, errlen);
        goto out;
    }
    if (!cur->created && !cancelled) /* Google has it although we never heard back */
        rc = bm_store_block_applied(e->st, cur->target_calendar_id, cur->block_id, true, NULL, err,
                                    errlen);
    if (rc != BM_OK)
        goto out;
    if (cancelled && cur->created) {
        if (e->o.cfg->sync.respect_deleted_blocks) {
            cur->state = BM_BLOCK_USER_DELETED;
            rc = bm_store_block_put(e->st, cur, err, errlen);
            goto out;
        }
    } else if (listed == NULL || strcmp(listed, cur->shape) == 0) {
        goto out;
    }
    if (e->o.dry_run || e->o.verbose)
        fprintf(e->out, "%srestore %s block=%s\n", e->o.dry_run ? "would " : "", c->cal->gcal_id,
                cur->block_id);
    c->updates++;
    rc = bm_store_outbox_put(e->st, cur->target_calendar_id, cur->block_id, BM_OUTBOX_PUT,
                             cur->master_block_id != NULL, err, errlen);
out:
    free(listed);
    return rc;
}

/* The occurrence of a block series at original_start, as the series defines it:
 * the series' duration from there. Strings are borrowed from `orig`/`series` or
 * written into the caller's buffers. */
static void series_occurrence(const bm_event_t *series, const bm_evtime_t *orig, bm_event_t *occ,
                              char bufs[2][40])
{
    memset(occ, 0, sizeof(*occ));
    occ->status = "confirmed";
    occ->start.epoch = orig->epoch;
    occ->end.epoch = orig->epoch + (series->end.epoch - series->start.epoch);
    occ->start.time_zone = series->start.time_zone;
    occ->end.time_zone = series->end.time_zone;
    if (orig->date != NULL) {
        occ->start.date = orig->date;
        bm_date_format(occ->end.epoch, bufs[1], 40);
        occ->end.date = bufs[1];
    } else { /* both ends in UTC: the instants are what matters */
        bm_time_format(occ->start.epoch, bufs[0], 40);
        bm_time_format(occ->end.epoch, bufs[1], 40);
        occ->start.date_time = bufs[0];
        occ->end.date_time = bufs[1];
    }
}

/* ev is an occurrence of one of our block series in this calendar that we never
 * overrode: a person moved, changed or deleted it. Put it back as the series has it. */
static int plan_series_echo(sync_ctx_t *c, const bm_event_t *ev, const bm_block_t *series,
                            char *err, size_t errlen)
{
    bm_engine_t *e = c->e;
    bm_event_t master = {0}, occ;
    char bufs[2][40], suffix[32];
    char *shape = NULL, *key = NULL, *listed = NULL, *body = NULL, *src_id = NULL;
    bool cancelled = ev->status != NULL && strcmp(ev->status, "cancelled") == 0;
    int rc = BM_OK;
    if (series->shape == NULL || series->body == NULL || ev->original_start.epoch == 0)
        goto out; /* the series is on its way out, or the stub says too little */
    if (bm_event_parse_json(series->body, strlen(series->body), &master, err, errlen) != BM_OK)
        goto out;
    series_occurrence(&master, &ev->original_start, &occ, bufs);
    occ.recurring_event_id = master.id;
    shape = bm_plan_shape(&occ);
    key = wanted_key(e, shape);
    listed = cancelled ? NULL : listed_key(ev);
    if (listed != NULL && strcmp(listed, key) == 0)
        goto out; /* as the series has it */
    bm_plan_instance_suffix(&ev->original_start, suffix, sizeof(suffix));
    src_id = bm_sprintf("%s_%s", series->source_event_id, suffix);
    bool respect = cancelled && e->o.cfg->sync.respect_deleted_blocks;
    body = respect ? NULL : bm_plan_block_body(&occ, ev->id, master.marker_src, &e->plan);
    bm_block_t b = {
        .target_calendar_id = c->cal->id,
        .block_id = ev->id,
        .source_calendar_id = series->source_calendar_id,
        .source_event_id = src_id,
        .master_block_id = series->block_id,
        .shape = respect ? "cancelled" : key,
        .body = body,
        .created = true,
        .state = respect ? BM_BLOCK_USER_DELETED : BM_BLOCK_LIVE,
    };
    rc = bm_store_block_put(e->st, &b, err, errlen);
    if (rc != BM_OK || respect || body == NULL)
        goto out;
    if (e->o.dry_run || e->o.verbose)
        fprintf(e->out, "%srestore %s block=%s\n", e->o.dry_run ? "would " : "", c->cal->gcal_id,
                ev->id);
    c->updates++;
    rc = bm_store_outbox_put(e->st, c->cal->id, ev->id, BM_OUTBOX_PUT, true, err, errlen);
out:
    bm_event_dispose(&master);
    free(shape);
    free(key);
    free(listed);
    free(body);
    free(src_id);
    return rc;
}

static int plan_event(sync_ctx_t *c, const bm_event_t *ev, char *err, size_t errlen)
{
    bm_engine_t *e = c->e;
    bm_block_t own = {0};
    int rc;
    if (ev->id == NULL)
        return BM_OK;
    /* Loop prevention, twice: the marker, and our own mapping of this calendar. */
    rc = bm_store_block_get(e->st, c->cal->id, ev->id, &own, err, errlen);
    if (rc == BM_OK) {
        rc = plan_echo(c, ev, &own, err, errlen);
        bm_block_dispose(&own);
        return rc;
    }
    if (rc != BM_ENOTFOUND)
        return rc;
    if (ev->recurring_event_id != NULL) { /* an occurrence of one of our block series? */
        rc = bm_store_block_get(e->st, c->cal->id, ev->recurring_event_id, &own, err, errlen);
        if (rc == BM_OK) {
            rc = plan_series_echo(c, ev, &own, err, errlen);
            bm_block_dispose(&own);
            return rc;
        }
        if (rc != BM_ENOTFOUND)
            return rc;
    }
    if (ev->marker != NULL || c->cal->role == BM_ROLE_TARGET)
        return BM_OK;
    if (ev->recurring_event_id != NULL) {
        bm_source_t master = {0};
        rc = bm_store_source_get(e->st, c->cal->id, ev->recurring_event_id, &master, err, errlen);
        bool series = rc == BM_OK && master.busy;
        bm_source_dispose(&master);
        if (rc != BM_OK && rc != BM_ENOTFOUND)
            return rc;
        if (series)
            return plan_occurrence(c, ev, err, errlen);
        /* An occurrence of a series we do not mirror stands alone. */
    }
    return plan_source(c, ev, ev->id, err, errlen);
}

/* Series masters first, so that their occurrences find them in the mirror. */
static int master_first(const void *a, const void *b)
{
    const bm_event_t *x = a, *y = b;
    return (x->recurring_event_id != NULL) - (y->recurring_event_id != NULL);
}

static int plan_all(sync_ctx_t *c, bool full, char *err, size_t errlen)
{
    bm_engine_t *e = c->e;
    int rc = BM_OK;
    bm_source_t *gone = NULL;
    size_t n_gone = 0;
    if (full)
        rc = bm_store_source_unmark(e->st, c->cal->id, err, errlen);
    if (c->n_events > 0)
        qsort(c->events, c->n_events, sizeof(*c->events), master_first);
    for (size_t i = 0; rc == BM_OK && i < c->n_events; i++)
        rc = plan_event(c, &c->events[i], err, errlen);
    if (rc != BM_OK || !full)
        goto out;
    /* What a full listing no longer shows is gone (or left the window). */
    rc = bm_store_source_unseen(e->st, c->cal->id, &gone, &n_gone, err, errlen);
    for (size_t i = 0; rc == BM_OK && i < n_gone; i++)
        rc = plan_source(c, NULL, gone[i].event_id, err, errlen);
out:
    bm_store_sources_free(gone, n_gone);
    return rc;
}

/* ---- sync of one calendar ---- */

static int list_changes(sync_ctx_t *c, engine_account_t *a, bool *full, char **token, char *err,
                        size_t errlen)
{
    bm_engine_t *e = c->e;
    bm_gcal_list_params_t p = {0};
    bool need_full = e->o.force_full || c->force_full || c->cal->sync_token == NULL ||
                     bm_now() - c->cal->last_full_sync > FULL_SYNC_EVERY ||
                     c->cal->plan_key == NULL || strcmp(c->cal->plan_key, e->plan_key) != 0;
    int rc;
    if (!need_full) {
        p.sync_token = c->cal->sync_token;
        rc = bm_gcal_list_events(e->gcal, &a->g, c->cal->gcal_id, &p, on_page, c, token, err,
                                 errlen);
        if (rc != BM_EGONE) {
            *full = false;
            return rc;
        }
        BM_LOG(BM_LOG_WARN, BM_MSG("sync token expired: listing in full"),
               BM_KS("calendar", c->cal->gcal_id));
        for (size_t i = 0; i < c->n_events; i++)
            bm_event_dispose(&c->events[i]);
        c->n_events = 0;
    }
    memset(&p, 0, sizeof(p));
    p.time_min = e->plan.window_start;
    p.time_max = e->plan.window_end;
    p.show_deleted = true; /* so that blocks a person deleted are seen and restored */
    *full = true;
    return bm_gcal_list_events(e->gcal, &a->g, c->cal->gcal_id, &p, on_page, c, token, err, errlen);
}

/* One pass: lease, list, plan, commit. *relist: a full pass must follow. */
static int sync_pass(bm_engine_t *e, const bm_calendar_t *cal, bool force_full, bool *relist,
                     char *err, size_t errlen)
{
    sync_ctx_t c = {.e = e, .cal = cal, .force_full = force_full};
    char lease[64], *token = NULL;
    engine_account_t *a = NULL;
    bool full = false, leased = false, in_txn = false;
    long calls0 = bm_engine_api_calls(e);
    int64_t t0 = bm_mono_ms(), started = bm_now();
    int rc;

    snprintf(lease, sizeof(lease), "calendar:%lld", (long long)cal->id);
    rc = bm_store_lease_take(e->st, lease, e->owner, LEASE_TTL_S, err, errlen);
    if (rc != BM_OK)
        goto out;
    leased = true;
    rc = bm__engine_account(e, cal->account_id, &a, err, errlen);
    if (rc != BM_OK)
        goto out;
    rc = bm_store_calendar_targets(e->st, cal, &c.targets, &c.n_targets, err, errlen);
    if (rc != BM_OK)
        goto out;
    rc = list_changes(&c, a, &full, &token, err, errlen);
    bm__engine_breaker(e, a, rc, true);
    if (rc == BM_EAUTH)
        bm__engine_needs_login(e, a);
    if (rc != BM_OK)
        goto out;

    /* Mirror, blocks, outbox and the new token: one transaction. */
    rc = bm_store_begin(e->st, err, errlen);
    if (rc != BM_OK)
        goto out;
    in_txn = true;
    rc = plan_all(&c, full, err, errlen);
    if (rc == BM_OK && token != NULL)
        rc = bm_store_sync_state_save(e->st, cal->id, token, full, e->plan_key, err, errlen);
    if (rc != BM_OK)
        goto out;
    if (e->o.dry_run) {
        bm_store_rollback(e->st);
    } else {
        rc = bm_store_commit(e->st, err, errlen);
        if (rc != BM_OK)
            goto out;
    }
    in_txn = false;
out:
    if (in_txn)
        bm_store_rollback(e->st);
    if (rc == BM_EBUSY) {
        e->totals.calendars_busy++;
    } else if (rc == BM_OK) {
        e->totals.calendars_ok++;
    } else {
        e->totals.calendars_failed++;
    }
    e->totals.listed += (int64_t)c.n_events;
    e->totals.planned_inserts += c.inserts;
    e->totals.planned_updates += c.updates;
    e->totals.planned_deletes += c.deletes;
    int64_t ms = bm_mono_ms() - t0;
    long calls = bm_engine_api_calls(e) - calls0;
    if (rc != BM_EBUSY && !e->o.dry_run) {
        char e2[256];
        bm_sync_log_t l = {cal->id,
                           started,
                           ms,
                           full ? "full" : "incremental",
                           (int64_t)c.n_events,
                           c.inserts,
                           c.updates,
                           c.deletes,
                           calls,
                           bm_strerror(rc),
                           rc == BM_OK ? NULL : err};
        bm_store_sync_log_add(e->st, &l, e2, sizeof(e2));
        bm_store_sync_result(e->st, cal->id, bm_strerror(rc), rc == BM_OK ? NULL : err, e2,
                             sizeof(e2));
    }
    BM_LOG(rc == BM_OK ? BM_LOG_INFO : BM_LOG_WARN, BM_MSG("calendar synced"),
           BM_KS("calendar", cal->gcal_id), BM_KS("kind", full ? "full" : "incremental"),
           BM_KI("listed", c.n_events), BM_KI("inserts", c.inserts), BM_KI("updates", c.updates),
           BM_KI("deletes", c.deletes), BM_KI("api_calls", calls), BM_KI("ms", ms),
           BM_KS("result", bm_strerror(rc)), BM_KS("error", rc == BM_OK ? "" : err));
    if (e->o.verbose)
        fprintf(e->out, "%s: %s, listed %zu, +%lld ~%lld -%lld in %lld ms%s%s\n", cal->gcal_id,
                full ? "full" : "incremental", c.n_events, (long long)c.inserts,
                (long long)c.updates, (long long)c.deletes, (long long)ms, rc == BM_OK ? "" : ": ",
                rc == BM_OK ? "" : err);
    if (leased)
        bm_store_lease_release(e->st, lease, e->owner);
    for (size_t i = 0; i < c.n_events; i++)
        bm_event_dispose(&c.events[i]);
    free(c.events);
    free(token);
    bm_store_calendars_free(c.targets, c.n_targets);
    *relist = rc == BM_OK && c.relist;
    return rc;
}

int bm_engine_sync_calendar(bm_engine_t *e, const bm_calendar_t *cal, char *err, size_t errlen)
{
    bool relist = false;
    int rc = sync_pass(e, cal, false, &relist, err, errlen);
    if (rc == BM_OK && relist && !e->o.dry_run) {
        /* The exceptions of a series whose mirroring changed are planned from a
         * fresh full listing (a dry run leaves it at what it printed). */
        BM_LOG(BM_LOG_INFO, BM_MSG("a series changed how it is mirrored: listing in full"),
               BM_KS("calendar", cal->gcal_id));
        e->totals.calendars_ok--; /* one calendar, counted once */
        rc = sync_pass(e, cal, true, &relist, err, errlen);
    }
    return rc;
}

/* ---- the drain ---- */

/* Google is refusing work for now: no answer, rate limits, an outage. */
static bool refused_for_now(long status, const char *reason)
{
    return bm_retry_refused_for_now(status, reason);
}

/* Worth trying the item again later. 409 here is a batch conflict (a duplicate
 * insert was handled already), 401 a token that expired mid-batch. */
static bool transient_status(long status, const char *reason)
{
    return bm_retry_classify(status, reason, BM_RETRY_PART) == BM_OUTCOME_RETRY;
}

/* Records the result of one applied item (inside the caller's transaction). */
static int settle(bm_engine_t *e, const bm_outbox_item_t *it, const bm_gcal_req_t *r,
                  bool inserting, char *err, size_t errlen)
{
    long s = r->status;
    bool ok = s >= 200 && s < 300;
    char msg[160];
    bool current = true;
    if (it->op == BM_OUTBOX_DELETE && (ok || s == 404 || s == 410)) {
        /* Another process may have planned this block anew while the request was
         * in flight: then its plan stands, and only what Google did is recorded. */
        e->totals.applied++;
        int rc = bm_store_outbox_done(e->st, it, &current, err, errlen);
        if (rc != BM_OK || !current)
            return rc;
        return it->is_instance ? bm_store_block_applied(e->st, it->target_calendar_id, it->block_id,
                                                        true, NULL, err, errlen)
                               : bm_store_block_delete(e->st, it->target_calendar_id, it->block_id,
                                                       err, errlen);
    }
    if (it->op == BM_OUTBOX_PUT && ok) {
        e->totals.applied++;
        int rc = bm_store_block_applied(e->st, it->target_calendar_id, it->block_id, true, NULL,
                                        err, errlen);
        return rc != BM_OK ? rc : bm_store_outbox_done(e->st, it, &current, err, errlen);
    }
    if (it->op == BM_OUTBOX_PUT && inserting && s == 409 && strcmp(r->reason, "duplicate") == 0)
        /* It exists (or existed): revive it with an update, now. */
        return bm_store_block_applied(e->st, it->target_calendar_id, it->block_id, true, NULL, err,
                                      errlen);
    if (it->op == BM_OUTBOX_PUT && !inserting && !it->is_instance && s == 404)
        /* Gone for good from Google: insert it afresh. */
        return bm_store_block_applied(e->st, it->target_calendar_id, it->block_id, false, NULL, err,
                                      errlen);
    snprintf(msg, sizeof(msg), "HTTP %ld %s", s, r->reason);
    /* An occurrence Google does not know (yet): its series may still be changing. */
    bool retry = transient_status(s, r->reason) || (it->is_instance && s == 404);
    if (retry && it->attempts + 1 < MAX_ATTEMPTS) {
        long delay = bm_retry_backoff_ms(it->attempts, RETRY_BASE_MS, RETRY_CAP_MS, &e->rng);
        return bm_store_outbox_retry_later(e->st, it, bm_now_ms() + delay, msg, err, errlen);
    }
    e->totals.dead_letters++;
    BM_LOG(BM_LOG_ERROR, BM_MSG("block write failed for good: moved to dead letters"),
           BM_KS("calendar", it->target_gcal_id), BM_KS("block", it->block_id), BM_KS("error", msg),
           BM_KS("detail", r->response));
    return bm_store_outbox_to_dead_letters(e->st, it, msg, err, errlen);
}

static char *item_path(const bm_outbox_item_t *it, bool inserting)
{
    return inserting ? bm_gcal_path_events(it->target_gcal_id)
                     : bm_gcal_path_event(it->target_gcal_id, it->block_id);
}

/* One batch of due items of one account; *n_done gets how many were due. */
static int drain_batch(bm_engine_t *e, engine_account_t *a, bool instances, size_t *n_done,
                       char *err, size_t errlen)
{
    bm_outbox_item_t *items = NULL;
    size_t n = 0;
    bm_gcal_req_t *reqs = NULL;
    char **paths = NULL;
    bool *inserting = NULL;
    int rc = bm_store_outbox_due(e->st, a->id, instances, bm_now_ms(), bm__engine_batch_size(e),
                                 &items, &n, err, errlen);
    *n_done = n;
    if (rc != BM_OK || n == 0)
        goto out;
    reqs = bm_calloc(n, sizeof(*reqs));
    paths = bm_calloc(n, sizeof(*paths));
    inserting = bm_calloc(n, sizeof(*inserting));
    for (size_t i = 0; i < n; i++) {
        bm_outbox_item_t *it = &items[i];
        inserting[i] = it->op == BM_OUTBOX_PUT && !it->created && !it->is_instance;
        paths[i] = item_path(it, inserting[i]);
        reqs[i].path = paths[i];
        reqs[i].method = it->op == BM_OUTBOX_DELETE ? "DELETE" : inserting[i] ? "POST" : "PUT";
        reqs[i].body = it->op == BM_OUTBOX_PUT ? it->body : NULL;
    }
    rc = bm_gcal_batch(e->gcal, &a->g, reqs, n, err, errlen);
    if (rc != BM_OK) {
        bm__engine_breaker(e, a, rc, true);
        if (rc == BM_EAUTH)
            bm__engine_needs_login(e, a);
        goto out;
    }
    size_t n_transient = 0;
    rc = bm_store_begin(e->st, err, errlen);
    for (size_t i = 0; rc == BM_OK && i < n; i++) {
        n_transient += refused_for_now(reqs[i].status, reqs[i].reason);
        rc = settle(e, &items[i], &reqs[i], inserting[i], err, errlen);
    }
    if (rc == BM_OK)
        rc = bm_store_commit(e->st, err, errlen);
    else
        bm_store_rollback(e->st);
    /* Every part refused for now (rate limits, outages): the account is failing. */
    bm__engine_breaker(e, a, n_transient == n ? BM_ETRANSIENT : BM_OK, false);
    if (rc == BM_OK && n_transient == n && a->breaker_until > bm_now())
        rc = bm_err(err, errlen, BM_ETRANSIENT, "circuit breaker open");
out:
    if (reqs != NULL)
        bm_gcal_reqs_dispose(reqs, n);
    for (size_t i = 0; paths != NULL && i < n; i++)
        free(paths[i]);
    free(paths);
    free(reqs);
    free(inserting);
    bm_store_outbox_items_free(items, n);
    return rc;
}

static void progress(bm_engine_t *e, int64_t pending)
{
    if (e->o.progress)
        fprintf(e->out, "\rapplying block writes: %lld done, %lld pending   ",
                (long long)e->totals.applied, (long long)pending);
}

int bm_engine_drain(bm_engine_t *e, char *err, size_t errlen)
{
    int rc = BM_OK;
    int64_t *accounts = NULL;
    size_t n_accounts = 0;
    if (e->o.dry_run)
        return BM_OK;
    int64_t stale = 0;
    rc = bm_store_outbox_drop_stale(e->st, &stale, err, errlen);
    if (rc != BM_OK)
        return rc;
    if (stale > 0)
        BM_LOG(BM_LOG_WARN, BM_MSG("dropped planned writes whose block is gone"),
               BM_KI("count", stale));
    for (;;) {
        int64_t pending = 0, next_due = 0;
        size_t worked = 0;
        free(accounts);
        accounts = NULL;
        rc = bm_store_outbox_accounts(e->st, &accounts, &n_accounts, err, errlen);
        for (size_t i = 0; rc == BM_OK && i < n_accounts; i++) {
            engine_account_t *a;
            if (bm__engine_account(e, accounts[i], &a, err, errlen) != BM_OK)
                continue; /* its items wait for a new login */
            for (int pass = 0; pass < 2 && rc == BM_OK; pass++) {
                size_t done;
                do {
                    if (bm__engine_stopped(e)) {
                        rc = bm_err(err, errlen, BM_ECANCELED, "stopped");
                        goto out;
                    }
                    rc = drain_batch(e, a, pass == 1, &done, err, errlen);
                    worked += done;
                    if (done > 0 && e->o.progress) {
                        bm_store_outbox_stats(e->st, &pending, &next_due, err, errlen);
                        progress(e, pending);
                    }
                } while (rc == BM_OK && done > 0);
                if (rc == BM_EAUTH || rc == BM_ETRANSIENT) { /* this account only */
                    BM_LOG(BM_LOG_WARN, BM_MSG("drain stopped for account"),
                           BM_KS("account", a->name), BM_KS("error", err));
                    rc = BM_OK;
                    break;
                }
            }
        }
        if (rc != BM_OK)
            goto out;
        rc = bm_store_outbox_stats(e->st, &pending, &next_due, err, errlen);
        if (rc != BM_OK)
            goto out;
        e->totals.pending = pending;
        int64_t wait = next_due - bm_now_ms();
        if (pending == 0 || (worked == 0 && wait <= 0) || wait > DRAIN_MAX_WAIT_MS)
            break;
        while (wait > 0 && !bm__engine_stopped(e)) { /* a backed-off item is due soon */
            struct timespec ts = {0, 50 * 1000000L};
            nanosleep(&ts, NULL);
            wait -= 50;
        }
    }
out:
    if (e->o.progress)
        fputs("\n", e->out);
    free(accounts);
    return rc;
}

int bm_engine_sync_all(bm_engine_t *e, int64_t account_id, const char *gcal_id, char *err,
                       size_t errlen)
{
    bm_calendar_t *cals = NULL;
    size_t n = 0;
    int first = BM_OK;
    char one[512];
    int rc = bm_store_calendar_list(e->st, account_id, gcal_id, true, &cals, &n, err, errlen);
    if (rc != BM_OK)
        return rc;
    for (size_t i = 0; i < n && !bm__engine_stopped(e); i++) {
        rc = bm_engine_sync_calendar(e, &cals[i], one, sizeof(one));
        if (rc != BM_OK && (first == BM_OK || first == BM_EBUSY)) {
            first = rc;
            snprintf(err, errlen, "%s: %s", cals[i].gcal_id, one);
        }
    }
    bm_store_calendars_free(cals, n);
    if (bm__engine_stopped(e))
        return bm_err(err, errlen, BM_ECANCELED, "stopped");
    rc = bm_engine_drain(e, one, sizeof(one));
    if (rc != BM_OK && (first == BM_OK || first == BM_EBUSY)) {
        first = rc;
        snprintf(err, errlen, "%s", one);
    }
    return first;
}
