/*
 * engine/channels.c: push channels. Each enabled calendar gets an events.watch
 * channel; its row is committed before the watch call (Google's first message
 * can beat the answer), its token is derived from its id under the key file's
 * key (never stored, never logged), and the calendar's mode says whether
 * busymirror hears about its changes (push) or must list to find them (poll).
 */
#include "core/crypto.h"
#include "core/gcal.h"
#include "core/log.h"
#include "core/util.h"
#include "engine/engine-int.h"

#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>

#define CHANNEL_ID_BYTES    16                   /* "bm" and 32 hex digits: 34 of 64 allowed */
#define REUSE_MARGIN_MAX_MS (24LL * 3600 * 1000) /* renew at most a day early */

static int new_channel_id(char out[2 + 2 * CHANNEL_ID_BYTES + 1], char *err, size_t errlen)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char rnd[CHANNEL_ID_BYTES];
    if (RAND_bytes(rnd, sizeof(rnd)) != 1)
        return bm_err(err, errlen, BM_ECRYPTO, "RAND_bytes failed: no channel id");
    out[0] = 'b';
    out[1] = 'm';
    for (size_t i = 0; i < sizeof(rnd); i++) {
        out[2 + 2 * i] = hex[rnd[i] >> 4];
        out[3 + 2 * i] = hex[rnd[i] & 15];
    }
    out[2 + 2 * CHANNEL_ID_BYTES] = '\0';
    return BM_OK;
}

int64_t bm_engine_renew_margin_ms(const char *channel_id, int64_t life_ms, int renew_before_s)
{
    int64_t margin = (int64_t)renew_before_s * 1000;
    if (margin <= 0) {
        margin = life_ms / 5;
        if (margin > REUSE_MARGIN_MAX_MS)
            margin = REUSE_MARGIN_MAX_MS;
    }
    /* FNV-1a of the id: each channel's own point in the last half of the margin */
    uint64_t h = 1469598103934665603ULL;
    for (const char *p = channel_id; p != NULL && *p != '\0'; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    int64_t half = margin / 2;
    return half + (half > 0 ? (int64_t)(h % (uint64_t)(half + 1)) : 0);
}

/* Whether ch lives long enough to be kept: more than its renew margin (see
 * bm_engine_renew_margin_ms) of its granted life is left. */
static bool lives_long_enough(const bm_engine_t *e, const bm_channel_t *ch, int64_t now_ms)
{
    int64_t margin =
        bm_engine_renew_margin_ms(ch->id, ch->expiration - ch->created_at,
                                  e->o.cfg != NULL ? e->o.cfg->renewer.renew_before : 0);
    return ch->expiration - now_ms > margin;
}

/* Google granted channel id: its resource id, expiration and push mode, together. */
static int record_granted(bm_engine_t *e, const bm_calendar_t *cal, const char *id,
                          const bm_gcal_channel_t *g, char *err, size_t errlen)
{
    int rc = bm_store_begin(e->st, err, errlen);
    if (rc != BM_OK)
        return rc;
    rc = bm_store_channel_set_granted(e->st, id, g->resource_id, g->expiration_ms, err, errlen);
    if (rc == BM_OK)
        rc = bm_store_calendar_set_mode(e->st, cal->id, BM_MODE_PUSH, err, errlen);
    if (rc == BM_OK)
        return bm_store_commit(e->st, err, errlen);
    bm_store_rollback(e->st);
    return rc;
}

/* The watch of channel id failed: its row is stopped and cal polls. Store
 * failures are logged: the watch's error is the one the caller gets. */
static void record_refused(bm_engine_t *e, const bm_calendar_t *cal, const char *id)
{
    char err[256];
    if (bm_store_channel_stopped(e->st, id, bm_now_ms(), err, sizeof(err)) != BM_OK ||
        bm_store_calendar_set_mode(e->st, cal->id, BM_MODE_POLL, err, sizeof(err)) != BM_OK)
        BM_LOG(BM_LOG_ERROR, BM_MSG("cannot record a refused watch"),
               BM_KS("calendar", cal->gcal_id), BM_KS("error", err));
}

/* Opens a new channel on cal for account a. */
static int open_channel(bm_engine_t *e, const bm_calendar_t *cal, engine_account_t *a,
                        const char *public_url, int ttl_s, char *err, size_t errlen)
{
    char id[2 + 2 * CHANNEL_ID_BYTES + 1], token[BM_CRYPTO_CHANNEL_TOKEN_LEN + 1] = "";
    bm_gcal_channel_t g = {0};
    const unsigned char *key = NULL;
    int rc = new_channel_id(id, err, errlen);
    if (rc == BM_OK)
        rc = bm__engine_key(e, &key, err, errlen);
    if (rc == BM_OK && bm_crypto_channel_token(key, id, token) != BM_OK)
        rc = bm_err(err, errlen, BM_ECRYPTO, "cannot derive the channel token");
    if (rc == BM_OK) /* committed first: the first message may beat the answer */
        rc = bm_store_channel_add(e->st, id, cal->id, bm_now_ms(), err, errlen);
    if (rc != BM_OK)
        goto out;
    bm_gcal_watch_params_t p = {
        .channel_id = id, .address = public_url, .token = token, .ttl_s = ttl_s};
    rc = bm_gcal_watch(e->gcal, &a->g, cal->gcal_id, &p, &g, err, errlen);
    bm__engine_breaker(e, a, rc, true);
    if (rc == BM_EAUTH && strstr(err, "webhookUrlUnauthorized") == NULL) /* the address, not us */
        bm__engine_needs_login(e, a);
    if (rc != BM_OK) {
        record_refused(e, cal, id);
        goto out;
    }
    rc = record_granted(e, cal, id, &g, err, errlen);
    if (rc == BM_OK)
        BM_LOG(BM_LOG_INFO, BM_MSG("watch channel opened"), BM_KS("calendar", cal->gcal_id),
               BM_KS("channel", id), BM_KI("expires_in_s", (g.expiration_ms - bm_now_ms()) / 1000));
out:
    bm_crypto_wipe(token, sizeof(token));
    return rc;
}

int bm_engine_watch_calendar(bm_engine_t *e, const bm_calendar_t *cal, const char *public_url,
                             int ttl_s, char *err, size_t errlen)
{
    bm_channel_t cur = {0};
    engine_account_t *a = NULL;
    int64_t now = bm_now_ms();
    int rc = bm_store_channel_current(e->st, cal->id, now, &cur, err, errlen);
    if (rc == BM_OK && lives_long_enough(e, &cur, now)) {
        rc = bm_store_calendar_set_mode(e->st, cal->id, BM_MODE_PUSH, err, errlen);
        goto out;
    }
    if (rc != BM_OK && rc != BM_ENOTFOUND)
        goto out;
    rc = bm__engine_account(e, cal->account_id, &a, err, errlen);
    if (rc == BM_OK)
        rc = open_channel(e, cal, a, public_url, ttl_s, err, errlen);
out:
    bm_channel_dispose(&cur);
    return rc;
}

int bm_engine_stop_channel(bm_engine_t *e, const bm_channel_t *ch, char *err, size_t errlen)
{
    bm_calendar_t cal = {0};
    engine_account_t *a = NULL;
    int rc = BM_OK;
    if (ch->resource_id != NULL) { /* else Google never answered the watch: nothing to name */
        rc = bm_store_calendar_get(e->st, ch->calendar_id, &cal, err, errlen);
        if (rc == BM_OK)
            rc = bm__engine_account(e, cal.account_id, &a, err, errlen);
        if (rc == BM_OK) {
            rc = bm_gcal_channel_stop(e->gcal, &a->g, ch->id, ch->resource_id, err, errlen);
            bm__engine_breaker(e, a, rc, true);
        }
    }
    if (rc == BM_OK)
        rc = bm_store_channel_stopped(e->st, ch->id, bm_now_ms(), err, errlen);
    if (rc == BM_OK)
        BM_LOG(BM_LOG_INFO, BM_MSG("watch channel stopped"), BM_KS("channel", ch->id));
    bm_calendar_dispose(&cal);
    return rc;
}

int bm_engine_watch_all(bm_engine_t *e, const char *public_url, int ttl_s, size_t *n_push,
                        size_t *n_poll, char *err, size_t errlen)
{
    bm_calendar_t *cals = NULL;
    size_t n = 0;
    *n_push = *n_poll = 0;
    int rc = bm_store_calendar_list(e->st, 0, NULL, true, &cals, &n, err, errlen);
    for (size_t i = 0; rc == BM_OK && i < n; i++) {
        char why[512];
        if (bm__engine_stopped(e)) {
            rc = bm_err(err, errlen, BM_ECANCELED, "stopped");
            break;
        }
        int w = bm_engine_watch_calendar(e, &cals[i], public_url, ttl_s, why, sizeof(why));
        if (w == BM_OK) {
            (*n_push)++;
            continue;
        }
        (*n_poll)++;
        BM_LOG(BM_LOG_WARN, BM_MSG("no push channel: the calendar is polled"),
               BM_KS("calendar", cals[i].gcal_id), BM_KS("error", why));
        if (w == BM_ESTORE)
            rc = bm_err(err, errlen, w, "%s", why);
    }
    bm_store_calendars_free(cals, n);
    return rc;
}

int bm_engine_stop_stale(bm_engine_t *e, size_t *n_stopped, char *err, size_t errlen)
{
    bm_channel_t *chs = NULL;
    size_t n = 0, stopped = 0;
    int rc = bm_store_channels_to_stop(e->st, bm_now_ms(), &chs, &n, err, errlen);
    for (size_t i = 0; rc == BM_OK && i < n && !bm__engine_stopped(e); i++) {
        char why[512];
        int s = bm_engine_stop_channel(e, &chs[i], why, sizeof(why));
        if (s == BM_OK) {
            stopped++;
            continue;
        }
        BM_LOG(BM_LOG_WARN, BM_MSG("cannot stop a watch channel: tried again later"),
               BM_KS("channel", chs[i].id), BM_KS("error", why));
        if (s == BM_ESTORE)
            rc = bm_err(err, errlen, s, "%s", why);
    }
    if (n_stopped != NULL)
        *n_stopped = stopped;
    bm_store_channels_free(chs, n);
    return rc;
}

int bm_engine_stop_calendar_channels(bm_engine_t *e, int64_t calendar_id, size_t *n_stopped,
                                     char *err, size_t errlen)
{
    bm_channel_t *chs = NULL;
    size_t n = 0, stopped = 0;
    int rc = bm_store_channels_of_calendar(e->st, calendar_id, &chs, &n, err, errlen);
    for (size_t i = 0; rc == BM_OK && i < n; i++) {
        char why[512];
        if (bm_engine_stop_channel(e, &chs[i], why, sizeof(why)) == BM_OK) {
            stopped++;
            continue;
        }
        BM_LOG(BM_LOG_WARN, BM_MSG("cannot stop a watch channel: the renewer tries again"),
               BM_KS("channel", chs[i].id), BM_KS("error", why));
    }
    if (n_stopped != NULL)
        *n_stopped = stopped;
    bm_store_channels_free(chs, n);
    return rc;
}
