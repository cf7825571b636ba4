/*
 * renewer/renewer.h: serve's channel keeper and polling backstop, one thread.
 *
 * With [gateway] public_url set, it gives every enabled calendar a live watch
 * channel (at start, when a calendar is enabled while serve runs, and again
 * before a channel runs out: bm_engine_watch_calendar keeps a channel while
 * more than its renew margin remains, [renewer] renew_before), retries a
 * refused watch with backoff ([renewer] watch_retry, doubling up to an hour;
 * the reason and next try persisted for status; the calendar polls meanwhile),
 * stops replaced, expired, disabled calendars' and stray channels and purges
 * rows expired a day ago. Every enabled calendar, push or not, is listed at
 * least every poll interval (its account's, else [sync] poll_interval; a
 * dropped notification is caught within one interval): it enqueues a "poll"
 * job for each calendar not synced since its latest poll slot
 * (bm_engine_poll_due: the slots of calendars are spread over the interval by
 * their ids), and wakes the workers.
 *
 * The renewer has its own store connection and an engine on the caller's hub;
 * borrowed options must outlive it.
 */
#ifndef BM_RENEWER_RENEWER_H
#define BM_RENEWER_RENEWER_H

#include "core/config.h"
#include "core/metrics.h"
#include "engine/engine.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct bm_renewer bm_renewer_t;

typedef struct bm_renewer_opts {
    const bm_config_t *cfg;
    bm_engine_hub_t *hub;
    bm_workers_t *workers; /* woken when polls are enqueued */
    bm_metrics_t *metrics; /* optional */
} bm_renewer_opts_t;

int bm_renewer_start(const bm_renewer_opts_t *o, bm_renewer_t **out, char *err, size_t errlen);
/* Whether its loop went round within max_age_ms. */
bool bm_renewer_alive(bm_renewer_t *r, int64_t max_age_ms);
/* Milliseconds since the renewer last came round (its loop beats once a round). */
int64_t bm_renewer_age_ms(bm_renewer_t *r);
/* Wakes it to look at the calendars now (one was enabled). */
void bm_renewer_wake(bm_renewer_t *r);
/* Ends the thread (a watch call in flight finishes first); channels stay live
 * for the next start. */
void bm_renewer_stop(bm_renewer_t *r);
void bm_renewer_free(bm_renewer_t *r);

#endif
