/*
 * gateway/routes.c: what each listener answers.
 *
 * Public: POST <path of public_url> (notifications), GET /healthz, 404 else.
 * Admin:  GET /healthz, /readyz, /metrics, 404 else.
 */
#include "gateway/gateway-int.h"

#include "core/log.h"

#include <inttypes.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define METRICS_TEXT_MAX (4u << 20)

static const char *const result_names[BM__GW_N_RESULTS] = {
    "ok",
    "sync",
    "unknown_channel",
    "bad_token",
    "bad_resource",
    "missing_headers",
    "malformed_headers",
    "not_stored",
    "timeout",
    "queue_full",
    "too_large",
    "headers_too_large",
    "bad_method",
};

static const char *const result_labels[BM__GW_N_RESULTS] = {
    "result=\"ok\"",
    "result=\"sync\"",
    "result=\"unknown_channel\"",
    "result=\"bad_token\"",
    "result=\"bad_resource\"",
    "result=\"missing_headers\"",
    "result=\"malformed_headers\"",
    "result=\"not_stored\"",
    "result=\"timeout\"",
    "result=\"queue_full\"",
    "result=\"too_large\"",
    "result=\"headers_too_large\"",
    "result=\"bad_method\"",
};

bm__gw_loop_t *bm__gw_loop_of(h2o_req_t *req)
{
    return (bm__gw_loop_t *)((char *)req->conn->ctx - offsetof(bm__gw_loop_t, ctx));
}

static const char *reason_phrase(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 413:
        return "Payload Too Large";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    default:
        return "Service Unavailable";
    }
}

void bm__gw_respond(h2o_req_t *req, int status, const char *body, const char *allow)
{
    size_t len = strlen(body);
    req->res.status = status;
    req->res.reason = reason_phrase(status);
    req->res.content_length = len;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                   H2O_STRLIT("text/plain; charset=utf-8"));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL,
                   H2O_STRLIT("no-store"));
    if (allow != NULL)
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, NULL, allow, strlen(allow));
    h2o_send_inline(req, body, len);
}

void bm__gw_metrics_init(bm_gateway_t *gw)
{
    bm_metrics_t *m = gw->o.metrics;
    if (m == NULL)
        return;
    static const struct {
        const char *name;
        bm_metric_type_t type;
        const char *help;
    } families[] = {
        {"bm_gateway_notifications_total", BM_METRIC_COUNTER,
         "push notifications received, by result"},
        {"bm_gateway_commit_batches_total", BM_METRIC_COUNTER, "group commits of notifications"},
        {"bm_gateway_commit_notes_total", BM_METRIC_COUNTER, "notifications in those commits"},
        {"bm_gateway_commit_last_batch_size", BM_METRIC_GAUGE, "notifications in the last commit"},
        {"bm_gateway_commit_seconds", BM_METRIC_HISTOGRAM, "time a group commit took"},
        {"bm_gateway_connections", BM_METRIC_GAUGE, "open connections on the public listener"},
        {"bm_gateway_connections_refused_total", BM_METRIC_COUNTER,
         "connections closed at once: past max_connections"},
    };
    for (size_t i = 0; i < sizeof(families) / sizeof(families[0]); i++)
        if (bm_metrics_describe(m, families[i].name, families[i].type, families[i].help) != BM_OK)
            BM_LOG(BM_LOG_WARN, BM_MSG("gateway: metric not registered"),
                   BM_KS("name", families[i].name));
    for (size_t r = 0; r < BM__GW_N_RESULTS; r++)
        bm_metrics_counter_add(m, "bm_gateway_notifications_total", result_labels[r], 0);
    bm_metrics_counter_add(m, "bm_gateway_commit_batches_total", NULL, 0);
    bm_metrics_counter_add(m, "bm_gateway_commit_notes_total", NULL, 0);
    bm_metrics_gauge_set(m, "bm_gateway_commit_last_batch_size", NULL, 0);
    bm_metrics_gauge_set(m, "bm_gateway_connections", NULL, 0);
    bm_metrics_counter_add(m, "bm_gateway_connections_refused_total", NULL, 0);
}

/* The address nginx (on loopback) says the client has: X-Real-IP, when it is an
 * IP address's characters only (never trusted from a remote peer). */
static bool forwarded_for(h2o_req_t *req, char *buf, size_t len)
{
    static const char name[] = "x-real-ip";
    ssize_t i = h2o_find_header_by_str(&req->headers, name, sizeof(name) - 1, -1);
    if (i < 0)
        return false;
    const h2o_iovec_t *v = &req->headers.entries[i].value;
    if (v->len == 0 || v->len > 45 || v->len >= len)
        return false;
    for (size_t k = 0; k < v->len; k++)
        if (strchr("0123456789abcdefABCDEF.:", v->base[k]) == NULL)
            return false;
    memcpy(buf, v->base, v->len);
    buf[v->len] = '\0';
    return true;
}

/* The peer's address, or behind nginx (a loopback peer sending X-Real-IP) the
 * client's, followed by " via <peer>". */
static void client_address(h2o_req_t *req, char *buf, size_t len)
{
    struct sockaddr_storage ss;
    char host[NI_MAXHOST], real[64];
    snprintf(buf, len, "unknown");
    if (req == NULL || req->conn->callbacks->get_peername == NULL)
        return;
    socklen_t sl = req->conn->callbacks->get_peername(req->conn, (struct sockaddr *)&ss);
    if (sl == 0)
        return;
    size_t n = h2o_socket_getnumerichost((struct sockaddr *)&ss, sl, host);
    if (n == SIZE_MAX)
        return;
    if (bm__gw_is_loopback((const struct sockaddr *)&ss) && forwarded_for(req, real, sizeof(real)))
        snprintf(buf, len, "%s via %.*s", real, (int)n, host);
    else
        snprintf(buf, len, "%.*s", (int)n, host);
}

void bm__gw_account(bm_gateway_t *gw, bm__gw_result_t r, h2o_req_t *req, const char *channel_id)
{
    if (gw->o.metrics != NULL)
        bm_metrics_counter_add(gw->o.metrics, "bm_gateway_notifications_total", result_labels[r],
                               1);
    if (r == BM__GW_OK || r == BM__GW_SYNC || bm_log_threshold > BM_LOG_WARN)
        return;
    int64_t now = bm_now(), last = atomic_load(&gw->last_log_s[r]);
    if (last == now || !atomic_compare_exchange_strong(&gw->last_log_s[r], &last, now)) {
        atomic_fetch_add(&gw->suppressed[r], 1);
        return;
    }
    char client[NI_MAXHOST + 80];
    client_address(req, client, sizeof(client));
    BM_LOG(BM_LOG_WARN, BM_MSG("notification rejected"), BM_KS("reason", result_names[r]),
           BM_KS("channel", channel_id), BM_KS("client", client),
           BM_KI("suppressed", atomic_exchange(&gw->suppressed[r], 0)));
}

/* ---- the notification ---- */

/* Copies header `name` into out[cap]: 0, 1 when absent, -1 when empty, longer
 * than cap - 1 or not printable ASCII without spaces. */
static int header_copy(h2o_req_t *req, const char *name, size_t nlen, char *out, size_t cap)
{
    ssize_t i = h2o_find_header_by_str(&req->headers, name, nlen, -1);
    if (i < 0)
        return 1;
    h2o_iovec_t v = req->headers.entries[i].value;
    if (v.len == 0 || v.len >= cap)
        return -1;
    for (size_t k = 0; k < v.len; k++)
        if ((unsigned char)v.base[k] <= 0x20 || (unsigned char)v.base[k] >= 0x7f)
            return -1;
    memcpy(out, v.base, v.len);
    out[v.len] = '\0';
    return 0;
}

static size_t header_bytes(const h2o_req_t *req)
{
    size_t n = 0;
    for (size_t i = 0; i < req->headers.size; i++)
        n += req->headers.entries[i].name->len + req->headers.entries[i].value.len;
    return n;
}

/* Fills note and token from the X-Goog-* headers; the result on failure. */
static int read_note(h2o_req_t *req, bm_gateway_note_t *note, char *token, size_t token_cap)
{
    char number[24];
    int miss = 0, bad = 0, rc;
#define HDR(name, buf, cap)                                                                        \
    rc = header_copy(req, H2O_STRLIT(name), (buf), (cap));                                         \
    miss |= rc > 0;                                                                                \
    bad |= rc < 0
    HDR("x-goog-channel-id", note->channel_id, sizeof(note->channel_id));
    HDR("x-goog-resource-id", note->resource_id, sizeof(note->resource_id));
    HDR("x-goog-resource-state", note->state, sizeof(note->state));
    HDR("x-goog-channel-token", token, token_cap);
    HDR("x-goog-message-number", number, sizeof(number));
#undef HDR
    if (miss)
        return BM__GW_MISSING_HEADERS;
    if (bad || strspn(number, "0123456789") != strlen(number) || strlen(number) > 18)
        return BM__GW_MALFORMED_HEADERS;
    note->message_number = strtoll(number, NULL, 10);
    if (strcmp(note->state, "sync") != 0 && strcmp(note->state, "exists") != 0 &&
        strcmp(note->state, "not_exists") != 0)
        return BM__GW_MALFORMED_HEADERS;
    return BM__GW_OK;
}

static void reject(bm_gateway_t *gw, h2o_req_t *req, bm__gw_result_t r, int status,
                   const char *body, const char *channel_id)
{
    bm__gw_account(gw, r, req, channel_id);
    bm__gw_respond(req, status, body, r == BM__GW_BAD_METHOD ? "POST" : NULL);
}

static int on_notification(bm_gateway_t *gw, h2o_req_t *req)
{
    bm_gateway_note_t note;
    char token[BM_GATEWAY_TOKEN_MAX + 1];
    memset(&note, 0, sizeof(note));
    if (!h2o_memis(req->method.base, req->method.len, H2O_STRLIT("POST"))) {
        reject(gw, req, BM__GW_BAD_METHOD, 405, "method not allowed\n", "");
        return 0;
    }
    if (gw->o.answer_at_once) {
        bm__gw_respond(req, 200, "ok\n", NULL);
        return 0;
    }
    if (req->entity.base != NULL && req->entity.len > gw->o.max_body) {
        reject(gw, req, BM__GW_TOO_LARGE, 413, "body too large\n", "");
        return 0;
    }
    if (header_bytes(req) > gw->o.max_header_bytes) {
        reject(gw, req, BM__GW_HEADERS_TOO_LARGE, 431, "headers too large\n", "");
        return 0;
    }
    int r = read_note(req, &note, token, sizeof(token));
    if (r != BM__GW_OK) {
        reject(gw, req, r, 400, "missing or malformed X-Goog headers\n", note.channel_id);
        return 0;
    }
    bool authentic = bm_crypto_channel_token_ok(gw->o.key, note.channel_id, token);
    bm_crypto_wipe(token, sizeof(token));
    if (!authentic) {
        reject(gw, req, BM__GW_BAD_TOKEN, 403, "bad channel token\n", note.channel_id);
        return 0;
    }
    if (strcmp(note.state, "sync") == 0) {
        bm__gw_account(gw, BM__GW_SYNC, req, note.channel_id);
        bm__gw_respond(req, 200, "ok\n", NULL);
        return 0;
    }
    note.received_ms = bm_now_ms();
    if (bm__gw_submit(bm__gw_loop_of(req), req, &note) != BM_OK)
        reject(gw, req, BM__GW_QUEUE_FULL, 503, "busy, retry\n", note.channel_id);
    return 0;
}

static bool path_is(const h2o_req_t *req, const char *path)
{
    return h2o_memis(req->path_normalized.base, req->path_normalized.len, path, strlen(path));
}

static bool is_get(const h2o_req_t *req)
{
    return h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET"));
}

int bm__gw_on_public_req(h2o_handler_t *self, h2o_req_t *req)
{
    bm_gateway_t *gw = ((bm__gw_handler_t *)self)->gw;
    if (path_is(req, gw->notify_path))
        return on_notification(gw, req);
    if (path_is(req, "/healthz"))
        bm__gw_respond(req, is_get(req) ? 200 : 405, is_get(req) ? "ok\n" : "method not allowed\n",
                       is_get(req) ? NULL : "GET");
    else
        bm__gw_respond(req, 404, "not found\n", NULL);
    return 0;
}

static void on_metrics(bm_gateway_t *gw, h2o_req_t *req)
{
    bm_buf_t b;
    bm_buf_init(&b, METRICS_TEXT_MAX);
    int rc = gw->o.metrics != NULL ? bm_metrics_render(gw->o.metrics, &b) : BM_OK;
    if (rc != BM_OK) {
        bm_buf_dispose(&b);
        bm__gw_respond(req, 500, "metrics too large\n", NULL);
        return;
    }
    req->res.status = 200;
    req->res.reason = "OK";
    req->res.content_length = b.len;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                   H2O_STRLIT("text/plain; version=0.0.4; charset=utf-8"));
    h2o_send_inline(req, b.data != NULL ? b.data : "", b.len);
    bm_buf_dispose(&b);
}

static void on_readyz(bm_gateway_t *gw, h2o_req_t *req)
{
    char why[256] = "not ready";
    if (gw->o.ready == NULL || gw->o.ready(gw->o.ready_ud, why, sizeof(why))) {
        bm__gw_respond(req, 200, "ready\n", NULL);
        return;
    }
    why[sizeof(why) - 2] = '\0';
    char *body = h2o_mem_alloc_pool(&req->pool, strlen(why) + 2);
    snprintf(body, strlen(why) + 2, "%s\n", why);
    bm__gw_respond(req, 503, body, NULL);
}

int bm__gw_on_admin_req(h2o_handler_t *self, h2o_req_t *req)
{
    bm_gateway_t *gw = ((bm__gw_handler_t *)self)->gw;
    bool known = path_is(req, "/healthz") || path_is(req, "/readyz") || path_is(req, "/metrics");
    if (!known)
        bm__gw_respond(req, 404, "not found\n", NULL);
    else if (!is_get(req))
        bm__gw_respond(req, 405, "method not allowed\n", "GET");
    else if (path_is(req, "/healthz"))
        bm__gw_respond(req, 200, "ok\n", NULL);
    else if (path_is(req, "/readyz"))
        on_readyz(gw, req);
    else
        on_metrics(gw, req);
    return 0;
}
