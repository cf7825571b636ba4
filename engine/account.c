/*
 * engine/account.c: the engine's accounts: each account's row loaded once, its
 * refresh token decrypted with the key file, its Google identity, the circuit
 * breaker, and calendarList discovery.
 */
#include "core/crypto.h"
#include "core/gcal.h"
#include "core/log.h"
#include "core/util.h"
#include "engine/engine-int.h"

#include <stdlib.h>
#include <string.h>

/* Why account a cannot be used now, or BM_OK (under the hub's lock). */
static int account_usable(const engine_account_t *a, char *err, size_t errlen)
{
    if (a->broken)
        return bm_err(err, errlen, BM_EAUTH, "account '%s' needs a new login", a->name);
    if (a->breaker_until > bm_now())
        return bm_err(err, errlen, BM_ETRANSIENT,
                      "account '%s': circuit breaker open for %llds more after %d failures",
                      a->name, (long long)(a->breaker_until - bm_now()), a->breaker_failures);
    return BM_OK;
}

/* Access tokens are kept while at least this much of their life is left. */
#define ACCESS_MARGIN_MS (2 * 60 * 1000)

/* The access token an earlier run kept for the account, if it still lives:
 * an idle run then asks Google for no new one. */
static void restore_access(engine_account_t *a, const bm_account_t *row, const unsigned char *key)
{
    unsigned char *plain = NULL;
    size_t len = 0;
    char aad[BM_CRYPTO_AAD_MAX], err[256];
    if (row->access_token_enc == NULL || row->access_expires_ms - bm_now_ms() < ACCESS_MARGIN_MS)
        return;
    if (bm_crypto_aad(BM_CRYPTO_ACCESS_TOKEN, row->name, aad, err, sizeof(err)) != BM_OK ||
        bm_crypto_open(key, aad, row->access_token_enc, row->access_token_enc_len, &plain, &len,
                       err, sizeof(err)) != BM_OK) {
        BM_LOG(BM_LOG_DEBUG, BM_MSG("kept access token unusable: a new one is asked for"),
               BM_KS("account", row->name), BM_KS("error", err));
        return;
    }
    bm_gcal_account_set_access(&a->g, (const char *)plain, row->access_expires_ms);
    a->saved_access_ms = row->access_expires_ms;
    bm_crypto_free(plain, len);
}

void bm__engine_save_access(bm_engine_t *e)
{
    bm_engine_hub_t *h = e->hub;
    char token[BM_GCAL_ACCESS_TOKEN_MAX], aad[BM_CRYPTO_AAD_MAX], err[256];
    const unsigned char *key;
    bm__engine_lock(e);
    size_t n = h->n_accounts;
    engine_account_t **accts = n > 0 ? bm_calloc(n, sizeof(*accts)) : NULL;
    if (n > 0)
        memcpy(accts, h->accounts, n * sizeof(*accts));
    bm__engine_unlock(e);
    if (n == 0 || e->o.dry_run || bm__engine_key(e, &key, err, sizeof(err)) != BM_OK) {
        free(accts);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        engine_account_t *a = accts[i];
        if (a->refresh_token == NULL)
            continue;
        int64_t expires = bm_gcal_account_access(&a->g, token, sizeof(token));
        bm__engine_lock(e);
        bool changed = expires > 0 && expires != a->saved_access_ms;
        bm__engine_unlock(e);
        unsigned char *sealed = NULL;
        size_t len = 0;
        if (changed &&
            (bm_crypto_aad(BM_CRYPTO_ACCESS_TOKEN, a->name, aad, err, sizeof(err)) != BM_OK ||
             bm_crypto_seal(key, aad, token, strlen(token), &sealed, &len, err, sizeof(err)) !=
                 BM_OK ||
             bm_store_account_set_access(e->st, a->id, sealed, len, expires, err, sizeof(err)) !=
                 BM_OK)) {
            BM_LOG(BM_LOG_WARN, BM_MSG("cannot keep the access token: the next run asks again"),
                   BM_KS("account", a->name), BM_KS("error", err));
        } else if (changed) {
            bm__engine_lock(e);
            a->saved_access_ms = expires;
            bm__engine_unlock(e);
        }
        free(sealed);
        bm_crypto_wipe(token, sizeof(token));
    }
    free(accts);
}

/* The account's row, decrypted into a new engine_account_t (not yet shared).
 * *out is set unless the row cannot be read; a token that cannot be decrypted
 * leaves it broken, with the reason returned. */
static int account_load(bm_engine_t *e, int64_t id, engine_account_t **out, char *err,
                        size_t errlen)
{
    bm_account_t row = {0};
    unsigned char *plain = NULL;
    size_t plain_len = 0;
    const unsigned char *key;
    int rc = bm_store_account_get_by_id(e->st, id, &row, err, errlen);
    if (rc != BM_OK)
        return rc;
    engine_account_t *a = bm_calloc(1, sizeof(*a));
    a->id = id;
    a->name = bm_strdup(row.name);
    a->breaker_failures = row.breaker_failures;
    a->breaker_until = row.breaker_until;
    *out = a;
    if (row.state == BM_ACCOUNT_NEEDS_LOGIN || row.refresh_token_enc == NULL) {
        a->broken = true;
        goto out;
    }
    char aad[BM_CRYPTO_AAD_MAX];
    rc = bm_crypto_aad(BM_CRYPTO_REFRESH_TOKEN, row.name, aad, err, errlen);
    if (rc == BM_OK)
        rc = bm__engine_key(e, &key, err, errlen);
    if (rc == BM_OK)
        rc = bm_crypto_open(key, aad, row.refresh_token_enc, row.refresh_token_enc_len, &plain,
                            &plain_len, err, errlen);
    if (rc != BM_OK) { /* no usable token: the account waits for a new login */
        a->broken = true;
        goto out;
    }
    a->refresh_token = bm_strndup((const char *)plain, plain_len);
    bm_log_add_secret(a->refresh_token);
    bm_gcal_account_init(&a->g, a->refresh_token, a->name);
    restore_access(a, &row, key);
out:
    bm_crypto_free(plain, plain_len);
    bm_account_dispose(&row);
    return rc;
}

int bm__engine_account(bm_engine_t *e, int64_t id, engine_account_t **out, char *err, size_t errlen)
{
    bm_engine_hub_t *h = e->hub;
    engine_account_t *a = NULL, *loaded = NULL;
    int rc = BM_OK;
    bm__engine_lock(e);
    for (size_t i = 0; a == NULL && i < h->n_accounts; i++)
        if (h->accounts[i]->id == id)
            a = h->accounts[i];
    bm__engine_unlock(e);
    if (a == NULL) {
        /* Loaded outside the lock (store and key file I/O); the first engine to
         * publish it wins, a second copy is dropped. */
        rc = account_load(e, id, &loaded, err, errlen);
        if (loaded == NULL)
            return rc;
        bm__engine_lock(e);
        for (size_t i = 0; a == NULL && i < h->n_accounts; i++)
            if (h->accounts[i]->id == id)
                a = h->accounts[i];
        if (a == NULL) {
            /* Each account is a heap object of its own: its mutex never moves,
             * and pointers handed out stay valid while the array grows. */
            h->accounts = bm_realloc(h->accounts, (h->n_accounts + 1) * sizeof(*h->accounts));
            h->accounts[h->n_accounts++] = a = loaded;
            loaded = NULL;
        }
        bm__engine_unlock(e);
    }
    if (loaded != NULL) {
        if (loaded->refresh_token != NULL) {
            bm_gcal_account_dispose(&loaded->g);
            bm_crypto_free(loaded->refresh_token, strlen(loaded->refresh_token));
        }
        free(loaded->name);
        free(loaded);
    }
    *out = a;
    if (rc != BM_OK) /* its first load failed: that reason */
        return rc;
    bm__engine_lock(e);
    rc = account_usable(a, err, errlen);
    /* Half-open (its breaker opened, its open period is over): the next call
     * is the probe, and a failure of it is not retried: it opens the breaker
     * again at once, so a recovering account costs the API one call. */
    if (rc == BM_OK)
        atomic_store(&a->g.probing, a->breaker_failures > 0);
    bm__engine_unlock(e);
    if (rc == BM_EAUTH)
        bm_err(err, errlen, BM_EAUTH,
               "account '%s' needs a new login (busymirror account login --name '%s')", a->name,
               a->name);
    return rc;
}

void bm__engine_needs_login(bm_engine_t *e, engine_account_t *a)
{
    char err[256];
    bm__engine_lock(e);
    a->broken = true;
    bm__engine_unlock(e);
    if (!e->o.dry_run &&
        bm_store_account_set_state(e->st, a->id, BM_ACCOUNT_NEEDS_LOGIN, err, sizeof(err)) != BM_OK)
        BM_LOG(BM_LOG_ERROR, BM_MSG("cannot mark account"), BM_KS("error", err));
    BM_LOG(BM_LOG_ERROR, BM_MSG("account needs a new login: its calendars are parked"),
           BM_KS("account", a->name));
}

#define BREAKER_FIRST_S 60
#define BREAKER_MAX_S   3600

int bm__engine_breaker_step(engine_account_t *a, int rc, bool exhausted, bool write, int64_t now)
{
    int *run = write ? &a->consecutive_writes : &a->consecutive;
    if (rc == BM_OK) {
        *run = 0;
        /* closed already, or a read's success: it says nothing of the writes
         * that opened it */
        if (a->breaker_failures == 0 || (a->breaker_writes && !write))
            return 0;
        a->breaker_failures = 0;
        a->breaker_until = 0;
        a->breaker_writes = false;
        a->consecutive = a->consecutive_writes = 0;
        return -1;
    }
    if (rc != BM_ETRANSIENT)
        return 0;
    if (a->breaker_until > now) {
        *run = 0; /* a call in flight when it opened: it stays open as it is */
        return 0;
    }
    *run += exhausted ? BREAKER_THRESHOLD : 1;
    if (*run < BREAKER_THRESHOLD)
        return 0;
    *run = 0;
    int64_t open_s = BREAKER_FIRST_S;
    for (int i = 0; i < a->breaker_failures && open_s < BREAKER_MAX_S; i++)
        open_s *= 2;
    a->breaker_failures++;
    a->breaker_until = now + (open_s < BREAKER_MAX_S ? open_s : BREAKER_MAX_S);
    a->breaker_writes = write;
    return 1;
}

static void breaker(bm_engine_t *e, engine_account_t *a, int rc, bool exhausted, bool write)
{
    char err[256];
    int failures;
    int64_t until;
    bm__engine_lock(e);
    int step = bm__engine_breaker_step(a, rc, exhausted, write, bm_now());
    if (step < 0)
        atomic_store(&a->g.probing, false);
    failures = a->breaker_failures;
    until = a->breaker_until;
    bm__engine_unlock(e);
    if (step == 0)
        return;
    if (step < 0)
        BM_LOG(BM_LOG_INFO, BM_MSG("circuit breaker closed"), BM_KS("account", a->name));
    else
        BM_LOG(BM_LOG_WARN, BM_MSG("circuit breaker open: the account's calendars wait"),
               BM_KS("account", a->name), BM_KI("failures", failures),
               BM_KI("seconds", until - bm_now()), BM_KS("calls", write ? "writes" : "any"));
    if (!e->o.dry_run &&
        bm_store_account_set_breaker(e->st, a->id, failures, until, err, sizeof(err)) != BM_OK)
        BM_LOG(BM_LOG_ERROR, BM_MSG("cannot save the circuit breaker"), BM_KS("error", err));
}

void bm__engine_breaker(bm_engine_t *e, engine_account_t *a, int rc, bool exhausted)
{
    breaker(e, a, rc, exhausted, false);
}

void bm__engine_breaker_write(bm_engine_t *e, engine_account_t *a, int rc, bool exhausted)
{
    breaker(e, a, rc, exhausted, true);
}

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
