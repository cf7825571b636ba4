/*
 * engine/engine-int.h: what engine/sync.c and engine/manage.c share. Private to
 * engine/.
 */
#ifndef BM_ENGINE_ENGINE_INT_H
#define BM_ENGINE_ENGINE_INT_H

#include "core/gcal.h"
#include "engine/engine.h"

typedef struct engine_account {
    int64_t id;
    char *name;
    char *refresh_token; /* clear text, wiped on free */
    bm_gcal_account_t g;
    bool broken;           /* needs login or no usable token: skip */
    int breaker_failures;  /* persisted: times the breaker opened in a row */
    int64_t breaker_until; /* persisted: open until then */
    int consecutive;       /* failed calls in a row in this process */
} engine_account_t;

struct bm_engine {
    bm_engine_opts_t o;
    bm_store_t *st;
    bm_gcal_t *gcal;
    bm_plan_opts_t plan;
    char *plan_key; /* the planning settings, as text: a change replans everything */
    unsigned char key[32];
    bool have_key;
    engine_account_t *accounts;
    size_t n_accounts;
    char owner[300]; /* lease owner: pid@host */
    uint64_t rng;
    bm_engine_totals_t totals;
    FILE *out;
};

/* The engine's account row with its Google identity, loaded (and its refresh
 * token decrypted) once. BM_EAUTH when it needs a new login. */
int bm__engine_account(bm_engine_t *e, int64_t id, engine_account_t **out, char *err,
                       size_t errlen);
/* Marks the account as needing a new login (store and memory). */
void bm__engine_needs_login(bm_engine_t *e, engine_account_t *a);
bool bm__engine_stopped(const bm_engine_t *e);
/* Requests per batch: [engine] batch_size, but never more than the quota's burst
 * (one batch must not exceed Google's per-user minute on its own). */
size_t bm__engine_batch_size(const bm_engine_t *e);
/* Feeds the account's circuit breaker with the outcome of a call to Google.
 * BM_ETRANSIENT counts a failure: `exhausted` (the client's own retries are
 * spent) opens the breaker at once, otherwise BREAKER_THRESHOLD failures in a
 * row do. It stays open a minute, doubling up to an hour while it keeps
 * opening; then one call is let through (half-open), and BM_OK closes it. */
#define BREAKER_THRESHOLD 5
void bm__engine_breaker(bm_engine_t *e, engine_account_t *a, int rc, bool exhausted);

#endif
