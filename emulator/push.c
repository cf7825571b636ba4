/*
 * emulator/push.c: events.watch / channels.stop and push delivery.
 *
 * The loop thread owns channels (emu.world.channels) and enqueues messages;
 * one delivery thread POSTs them with libcurl. The queue, the in-flight marker
 * and the cancel handshake live behind `mu`, so that after channels.stop
 * returns nothing of that channel is delivered any more.
 */
#include "emulator/emulator.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_ATTEMPTS    5
#define BACKOFF_BASE_MS 250
#define MAX_QUEUE       100000
#define DEFAULT_TTL_S   604800

typedef struct pmsg {
    struct pmsg *next;
    char *channel_id;
    char *address;
    char *hdr[8];
    size_t n_hdr;
    int64_t due_ms;
    int64_t expiration_ms;
    int attempt;
} pmsg_t;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv;
static pthread_cond_t done_cv;
static pmsg_t *queue;
static size_t n_queue;
static char *inflight;
static bool stopping;
static bool started;
static pthread_t thr;

static void msg_free(pmsg_t *m)
{
    if (m == NULL)
        return;
    free(m->channel_id);
    free(m->address);
    for (size_t i = 0; i < m->n_hdr; i++)
        free(m->hdr[i]);
    free(m);
}

static void cond_init_mono(pthread_cond_t *c)
{
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_cond_init(c, &a);
    pthread_condattr_destroy(&a);
}

static void abs_deadline(struct timespec *ts, int64_t ms_from_now)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += ms_from_now / 1000;
    ts->tv_nsec += (long)(ms_from_now % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

static size_t discard_body(char *p, size_t size, size_t n, void *arg)
{
    (void)p;
    (void)arg;
    return size * n;
}

/* Returns the HTTP status, or -1 when the connection failed. */
static long deliver(CURL *c, const pmsg_t *m)
{
    struct curl_slist *h = NULL;
    for (size_t i = 0; i < m->n_hdr; i++) {
        struct curl_slist *t = curl_slist_append(h, m->hdr[i]);
        if (t == NULL) {
            curl_slist_free_all(h);
            return -1;
        }
        h = t;
    }
    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, m->address);
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, 0L);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "APIs-Google");
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 2000L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard_body);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    CURLcode rc = curl_easy_perform(c);
    long status = -1;
    if (rc == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(h);
    return status;
}

static bool live_locked(const pmsg_t *m)
{
    return !stopping && (m->expiration_ms == 0 || bm_now_ms() < m->expiration_ms);
}

static void *push_main(void *arg)
{
    (void)arg;
    CURL *c = curl_easy_init();
    pthread_mutex_lock(&mu);
    while (!stopping) {
        pmsg_t **best = NULL;
        for (pmsg_t **pp = &queue; *pp != NULL; pp = &(*pp)->next)
            if (best == NULL || (*pp)->due_ms < (*best)->due_ms)
                best = pp;
        if (best == NULL) {
            pthread_cond_wait(&cv, &mu);
            continue;
        }
        int64_t wait = (*best)->due_ms - bm_mono_ms();
        if (wait > 0) {
            struct timespec ts;
            abs_deadline(&ts, wait);
            pthread_cond_timedwait(&cv, &mu, &ts);
            continue;
        }
        pmsg_t *m = *best;
        *best = m->next;
        n_queue--;
        if (!live_locked(m) || c == NULL) {
            msg_free(m);
            continue;
        }
        inflight = m->channel_id;
        pthread_mutex_unlock(&mu);
        long st = deliver(c, m);
        pthread_mutex_lock(&mu);
        inflight = NULL;
        pthread_cond_broadcast(&done_cv);
        if (st == 200 || st == 201 || st == 202 || st == 204 || st == 102) {
            atomic_fetch_add(&emu.counters.notifications, 1);
            msg_free(m);
        } else if ((st == -1 || st == 500 || st == 502 || st == 503 || st == 504) &&
                   m->attempt + 1 < MAX_ATTEMPTS && !stopping) {
            m->attempt++;
            m->due_ms = bm_mono_ms() + ((int64_t)BACKOFF_BASE_MS << (m->attempt - 1));
            m->next = queue;
            queue = m;
            n_queue++;
        } else {
            if (emu.cfg.verbose)
                BM_LOG(BM_LOG_WARN, BM_MSG("push failed"), BM_KS("channel", m->channel_id),
                       BM_KI("status", st));
            msg_free(m);
        }
    }
    while (queue != NULL) {
        pmsg_t *m = queue;
        queue = m->next;
        msg_free(m);
    }
    n_queue = 0;
    pthread_mutex_unlock(&mu);
    if (c != NULL)
        curl_easy_cleanup(c);
    return NULL;
}

int emu_push_start(void)
{
    cond_init_mono(&cv);
    cond_init_mono(&done_cv);
    if (pthread_create(&thr, NULL, push_main, NULL) != 0)
        return BM_EIO;
    started = true;
    return BM_OK;
}

void emu_push_stop(void)
{
    if (!started)
        return;
    pthread_mutex_lock(&mu);
    stopping = true;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
    pthread_join(thr, NULL);
    started = false;
}

void emu_push_cancel(const char *channel_id)
{
    pthread_mutex_lock(&mu);
    for (pmsg_t **pp = &queue; *pp != NULL;) {
        if (strcmp((*pp)->channel_id, channel_id) == 0) {
            pmsg_t *m = *pp;
            *pp = m->next;
            n_queue--;
            msg_free(m);
        } else {
            pp = &(*pp)->next;
        }
    }
    /* a message being delivered right now must land before stop returns */
    for (int i = 0; i < 60 && inflight != NULL && strcmp(inflight, channel_id) == 0; i++) {
        struct timespec ts;
        abs_deadline(&ts, 100);
        pthread_cond_timedwait(&done_cv, &mu, &ts);
    }
    pthread_mutex_unlock(&mu);
}

void emu_push_enqueue(emu_channel_t *ch, const char *state)
{
    ch->msg_no++;
    if (!started)
        return;
    if (strcmp(state, "sync") != 0 && emu.faults.drop_notifications > 0 &&
        emu_rand01() < emu.faults.drop_notifications)
        return;
    pmsg_t *m = bm_calloc(1, sizeof(*m));
    m->channel_id = bm_strdup(ch->id);
    m->address = bm_strdup(ch->address);
    char exp[40];
    emu_fmt_rfc1123(ch->expiration_ms, exp);
    m->hdr[m->n_hdr++] = bm_sprintf("X-Goog-Channel-ID: %s", ch->id);
    m->hdr[m->n_hdr++] = bm_sprintf("X-Goog-Message-Number: %llu", (unsigned long long)ch->msg_no);
    m->hdr[m->n_hdr++] = bm_sprintf("X-Goog-Resource-ID: %s", ch->resource_id);
    m->hdr[m->n_hdr++] = bm_sprintf("X-Goog-Resource-URI: %s", ch->resource_uri);
    m->hdr[m->n_hdr++] = bm_sprintf("X-Goog-Resource-State: %s", state);
    if (ch->token != NULL)
        m->hdr[m->n_hdr++] = bm_sprintf("X-Goog-Channel-Token: %s", ch->token);
    m->hdr[m->n_hdr++] = bm_sprintf("X-Goog-Channel-Expiration: %s", exp);
    m->hdr[m->n_hdr++] = bm_strdup("Content-Type:"); /* no body, no content type */
    m->expiration_ms = ch->expiration_ms;
    m->due_ms = bm_mono_ms() + (strcmp(state, "sync") != 0 ? emu.faults.delay_notifications_ms : 0);
    pthread_mutex_lock(&mu);
    if (n_queue >= MAX_QUEUE) {
        pthread_mutex_unlock(&mu);
        msg_free(m);
        return;
    }
    m->next = queue;
    queue = m;
    n_queue++;
    pthread_cond_signal(&cv);
    pthread_mutex_unlock(&mu);
}

/* ---------------------------------------------------------------- channels */

void emu_channel_free(emu_channel_t *ch)
{
    if (ch == NULL)
        return;
    free(ch->id);
    free(ch->resource_id);
    free(ch->resource_uri);
    free(ch->token);
    free(ch->address);
    free(ch->cal_id);
    free(ch);
}

static void channel_remove(size_t i)
{
    emu_world_t *w = &emu.world;
    emu_channel_t *ch = w->channels[i];
    memmove(w->channels + i, w->channels + i + 1, sizeof(*w->channels) * (w->n_channels - i - 1));
    w->n_channels--;
    emu_push_cancel(ch->id);
    emu_persist_channel_del(ch->id);
    emu_channel_free(ch);
}

void emu_channels_expire(void)
{
    int64_t now = bm_now_ms();
    for (size_t i = 0; i < emu.world.n_channels;) {
        if (emu.world.channels[i]->expiration_ms <= now)
            channel_remove(i);
        else
            i++;
    }
}

void emu_push_calendar_changed(emu_calendar_t *cal)
{
    if (emu.world.n_channels == 0)
        return;
    emu_channels_expire();
    for (size_t i = 0; i < emu.world.n_channels; i++) {
        emu_channel_t *ch = emu.world.channels[i];
        if (strcmp(ch->cal_id, cal->id) == 0) {
            emu_push_enqueue(ch, "exists");
            emu_persist_channel(ch);
        }
    }
}

static bool channel_id_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 64)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '+' || c == '/' || c == '=' || c == '.' || c == ':'))
            return false;
    }
    return true;
}

void emu_watch(emu_calendar_t *cal, emu_user_t *u, const emu_req_t *rq, emu_resp_t *rs)
{
    jv_t *b = emu_body_object(rq, rs, false);
    if (b == NULL)
        return;
    const char *id = jv_get_str(b, "id");
    const char *type = jv_get_str(b, "type");
    const char *addr = jv_get_str(b, "address");
    const char *token = jv_get_str(b, "token");
    int64_t ttl = DEFAULT_TTL_S;
    const jv_t *ttlv = jv_get(jv_get(b, "params"), "ttl");
    if (id == NULL) {
        emu_error(rs, 400, "required", "Required parameter: id");
        goto out;
    }
    if (!channel_id_ok(id)) {
        emu_error(rs, 400, "invalid",
                  "Invalid channel id (at most 64 characters of [A-Za-z0-9-_+/=]).");
        goto out;
    }
    if (type == NULL || (strcmp(type, "web_hook") != 0 && strcmp(type, "webhook") != 0)) {
        emu_error(rs, 400, "invalid", "Invalid channel type: %s", type != NULL ? type : "");
        goto out;
    }
    if (addr == NULL || (strncmp(addr, "https://", 8) != 0 && strncmp(addr, "http://", 7) != 0)) {
        emu_error(rs, 400, "push.webhookUrlNotHttps", "WebHook callback must be HTTPS: %s",
                  addr != NULL ? addr : "");
        goto out;
    }
    if (token != NULL && strlen(token) > 256) {
        emu_error(rs, 400, "invalid", "Channel token longer than 256 characters.");
        goto out;
    }
    if (ttlv != NULL) {
        char *end = NULL;
        long long t =
            ttlv->type == JV_STR || ttlv->type == JV_NUM ? strtoll(ttlv->s, &end, 10) : -1;
        if (end == NULL || *end != '\0' || t <= 0) {
            emu_error(rs, 400, "invalid", "Invalid ttl value.");
            goto out;
        }
        ttl = t;
    }
    if (ttl > emu.cfg.max_channel_ttl)
        ttl = emu.cfg.max_channel_ttl;
    int64_t refuse = u->faults.refuse_watch != 0 ? u->faults.refuse_watch : emu.faults.refuse_watch;
    if (refuse == 400) {
        emu_error(rs, 400, "pushNotSupportedForRequestedResource",
                  "Push notifications are not supported by this resource.");
        goto out;
    }
    if (refuse != 0) {
        emu_error(rs, (int)refuse, "push.webhookUrlUnauthorized",
                  "Unauthorized WebHook callback channel: %s", addr);
        goto out;
    }
    emu_channels_expire();
    for (size_t i = 0; i < emu.world.n_channels; i++) {
        if (strcmp(emu.world.channels[i]->id, id) == 0) {
            emu_error(rs, 400, "channelIdNotUnique", "Channel id not unique: %s", id);
            goto out;
        }
    }
    emu_channel_t *ch = bm_calloc(1, sizeof(*ch));
    ch->id = bm_strdup(id);
    ch->resource_id = bm_strdup(cal->resource_id);
    bm_buf_t uri;
    bm_buf_init(&uri, 8192);
    bm_buf_printf(&uri, "%s/calendar/v3/calendars/", emu.base_url);
    bm_buf_url_encode(&uri, cal->id);
    bm_buf_puts(&uri, "/events?alt=json");
    ch->resource_uri = bm_buf_steal(&uri);
    ch->token = bm_strdup(token);
    ch->address = bm_strdup(addr);
    ch->cal_id = bm_strdup(cal->id);
    ch->user = u;
    ch->expiration_ms = bm_now_ms() + ttl * 1000;
    emu_world_t *w = &emu.world;
    if (w->n_channels == w->cap_channels) {
        w->cap_channels = w->cap_channels ? w->cap_channels * 2 : 8;
        w->channels = bm_realloc(w->channels, sizeof(*w->channels) * w->cap_channels);
    }
    w->channels[w->n_channels++] = ch;
    /* "sync" goes out now: it may well arrive before this response */
    emu_push_enqueue(ch, "sync");
    emu_persist_channel(ch);
    rs->status = 200;
    bm_buf_reset(&rs->body);
    bm_buf_puts(&rs->body, "{\"kind\":\"api#channel\",\"id\":");
    emu_json_puts(&rs->body, ch->id);
    bm_buf_puts(&rs->body, ",\"resourceId\":");
    emu_json_puts(&rs->body, ch->resource_id);
    bm_buf_puts(&rs->body, ",\"resourceUri\":");
    emu_json_puts(&rs->body, ch->resource_uri);
    if (ch->token != NULL) {
        bm_buf_puts(&rs->body, ",\"token\":");
        emu_json_puts(&rs->body, ch->token);
    }
    bm_buf_printf(&rs->body, ",\"expiration\":\"%lld\"}", (long long)ch->expiration_ms);
out:
    jv_free(b);
}

void emu_channels_stop(emu_user_t *u, const emu_req_t *rq, emu_resp_t *rs)
{
    jv_t *b = emu_body_object(rq, rs, false);
    if (b == NULL)
        return;
    const char *id = jv_get_str(b, "id");
    const char *rid = jv_get_str(b, "resourceId");
    if (id == NULL || rid == NULL) {
        emu_error(rs, 400, "required", "Required: id and resourceId");
        goto out;
    }
    emu_channels_expire();
    for (size_t i = 0; i < emu.world.n_channels; i++) {
        emu_channel_t *ch = emu.world.channels[i];
        if (strcmp(ch->id, id) == 0 && strcmp(ch->resource_id, rid) == 0 && ch->user == u) {
            channel_remove(i);
            rs->status = 204;
            bm_buf_reset(&rs->body);
            rs->content_type[0] = '\0';
            goto out;
        }
    }
    emu_error(rs, 404, "notFound", "Channel '%s' not found for project", id);
out:
    jv_free(b);
}
