/*
 * engine/hub.c: what the engines of one process share (engine/engine.h): the
 * Google client, the accounts with their tokens, buckets and breakers, the key
 * file's key, and which account an engine is draining.
 */
#include "core/crypto.h"
#include "core/gcal.h"
#include "core/util.h"
#include "engine/engine-int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void count_response(void *ud, const char *method, long status)
{
    char labels[64];
    snprintf(labels, sizeof(labels), "method=\"%s\",status=\"%ld\"", method, status);
    bm_metrics_counter_add(ud, "busymirror_api_calls_total", labels, 1);
}

int bm_engine_hub_new(const bm_config_t *cfg, const volatile int *stop, bm_metrics_t *metrics,
                      bm_engine_hub_t **out, char *err, size_t errlen)
{
    bm_engine_hub_t *h = bm_calloc(1, sizeof(*h));
    bm_gcal_opts_t go = {
        .api_base_url = cfg->google.api_base_url,
        .batch_url = cfg->google.batch_url,
        .token_url = cfg->google.token_url,
        .client_id = cfg->google.client_id,
        .client_secret = cfg->google.client_secret,
        .user_quota = cfg->google.user_quota,
        .timeout_ms = (long)cfg->google.request_timeout * 1000,
        .stop = stop,
        .on_response = metrics != NULL ? count_response : NULL,
        .on_response_ud = metrics,
    };
    *out = NULL;
    int rc = bm_gcal_new(&go, &h->gcal, err, errlen);
    if (rc != BM_OK) {
        free(h);
        return rc;
    }
    h->cfg = cfg;
    pthread_mutex_init(&h->mu, NULL);
    atomic_init(&h->applied, 0);
    *out = h;
    return BM_OK;
}

void bm_engine_hub_free(bm_engine_hub_t *h)
{
    if (h == NULL)
        return;
    for (size_t i = 0; i < h->n_accounts; i++) {
        engine_account_t *a = h->accounts[i];
        if (a->refresh_token != NULL) {
            bm_gcal_account_dispose(&a->g);
            bm_crypto_free(a->refresh_token, strlen(a->refresh_token));
        }
        free(a->name);
        free(a);
    }
    free(h->accounts);
    bm_gcal_free(h->gcal);
    bm_crypto_wipe(h->key, sizeof(h->key));
    pthread_mutex_destroy(&h->mu);
    free(h);
}

void bm__engine_lock(bm_engine_t *e)
{
    pthread_mutex_lock(&e->hub->mu);
}

void bm__engine_unlock(bm_engine_t *e)
{
    pthread_mutex_unlock(&e->hub->mu);
}

int bm__engine_key(bm_engine_t *e, const unsigned char **key, char *err, size_t errlen)
{
    bm_engine_hub_t *h = e->hub;
    int rc = BM_OK;
    bm__engine_lock(e);
    if (!h->have_key) {
        rc = bm_crypto_key_load(h->cfg->store.key_file, false, h->key, err, errlen);
        h->have_key = rc == BM_OK;
    }
    bm__engine_unlock(e);
    *key = h->key;
    return rc;
}

bool bm__engine_drain_begin(bm_engine_t *e, engine_account_t *a)
{
    bm__engine_lock(e);
    bool mine = a->holder == NULL || a->holder == e;
    if (mine) {
        a->holder = e;
        a->hold_depth++;
    } else {
        a->drain_again = true;
    }
    bm__engine_unlock(e);
    return mine;
}

bool bm__engine_drain_end(bm_engine_t *e, engine_account_t *a)
{
    bool again = false;
    bm__engine_lock(e);
    if (a->holder == e && a->hold_depth > 1) {
        a->hold_depth--; /* the outer hold looks again */
    } else if (a->holder == e) {
        again = a->drain_again;
        a->drain_again = false;
        if (!again) {
            a->holder = NULL;
            a->hold_depth = 0;
        }
    }
    bm__engine_unlock(e);
    return again;
}

void bm__engine_drain_abandon(bm_engine_t *e, engine_account_t *a)
{
    bm__engine_lock(e);
    if (a->holder == e) {
        a->holder = NULL;
        a->hold_depth = 0;
    }
    bm__engine_unlock(e);
}
