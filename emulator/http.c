/* emulator/http.c: h2o plumbing: listener, request conversion, latency faults, responses. */
#include "emulator/emulator.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <h2o.h>

#define MAX_LATENCY_TIMEOUTS 32

static h2o_globalconf_t config;
static h2o_context_t ctx;
static h2o_accept_ctx_t accept_ctx;
static h2o_evloop_t *loop;
static h2o_socket_t *listener;
static int n_connections;

/* one h2o_timeout_t per distinct latency value (2.2.5 timeouts have a fixed duration) */
static struct {
    uint64_t ms;
    h2o_timeout_t t;
} latency_timeouts[MAX_LATENCY_TIMEOUTS];
static size_t n_latency_timeouts;

typedef struct deferred {
    h2o_timeout_entry_t entry; /* first member: the callback recovers the struct */
    h2o_req_t *req;
    int status;
    const char *reason;
    h2o_iovec_t body;
} deferred_t;

typedef struct handler {
    h2o_handler_t super;
} handler_t;

static bool has_prefix(h2o_iovec_t s, const char *p)
{
    size_t n = strlen(p);
    return s.len >= n && memcmp(s.base, p, n) == 0;
}

static char *header_dup(h2o_req_t *req, const char *name, size_t len)
{
    ssize_t i = h2o_find_header_by_str(&req->headers, name, len, -1);
    if (i < 0)
        return NULL;
    h2o_iovec_t v = req->headers.entries[i].value;
    return bm_strndup(v.base, v.len);
}

static void send_now(h2o_req_t *req, int status, const char *reason, h2o_iovec_t body)
{
    req->res.status = status;
    req->res.reason = reason;
    req->res.content_length = body.len;
    h2o_send_inline(req, body.base, body.len);
}

static void on_deferred(h2o_timeout_entry_t *entry)
{
    deferred_t *d = (deferred_t *)entry;
    h2o_req_t *req = d->req;
    d->req = NULL;
    if (req != NULL)
        send_now(req, d->status, d->reason, d->body);
}

static void deferred_dispose(void *p)
{
    deferred_t *d = p;
    if (h2o_timeout_is_linked(&d->entry))
        h2o_timeout_unlink(&d->entry);
    d->req = NULL;
}

static h2o_timeout_t *latency_timeout(uint64_t ms)
{
    for (size_t i = 0; i < n_latency_timeouts; i++)
        if (latency_timeouts[i].ms == ms)
            return &latency_timeouts[i].t;
    if (n_latency_timeouts == MAX_LATENCY_TIMEOUTS)
        return NULL;
    latency_timeouts[n_latency_timeouts].ms = ms;
    h2o_timeout_init(ctx.loop, &latency_timeouts[n_latency_timeouts].t, ms);
    return &latency_timeouts[n_latency_timeouts++].t;
}

static void add_header(h2o_req_t *req, const h2o_token_t *tok, const char *value)
{
    h2o_iovec_t v = h2o_strdup(&req->pool, value, strlen(value));
    h2o_add_header(&req->pool, &req->res.headers, tok, NULL, v.base, v.len);
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    (void)self;
    emu_req_t rq;
    emu_resp_t rs;
    emu_req_init(&rq);
    emu_resp_init(&rs);
    size_t mlen = req->method.len < sizeof(rq.method) - 1 ? req->method.len : sizeof(rq.method) - 1;
    memcpy(rq.method, req->method.base, mlen);
    rq.method[mlen] = '\0';
    emu_req_set_target(&rq, req->path.base, req->path.len);
    rq.authorization = header_dup(req, H2O_STRLIT("authorization"));
    rq.if_match = header_dup(req, H2O_STRLIT("if-match"));
    rq.content_type = header_dup(req, H2O_STRLIT("content-type"));
    rq.body = req->entity.base;
    rq.body_len = req->entity.base != NULL ? req->entity.len : 0;

    h2o_iovec_t path = h2o_iovec_init(rq.path, strlen(rq.path));
    emu.pending_latency_ms = 0; /* api.c raises it for a user's latency fault */
    bool is_batch = has_prefix(path, "/batch/calendar/v3") || has_prefix(path, "/batch");
    bool is_api = has_prefix(path, "/calendar/v3/");
    size_t cap = is_batch ? EMU_MAX_BATCH_BODY : EMU_MAX_BODY;
    if (rq.body_len > cap) {
        emu_error(&rs, 413, "uploadTooLarge", "Request entity too large (limit %zu bytes).", cap);
    } else if (is_api) {
        emu_api_handle(&rq, &rs);
    } else if (is_batch) {
        emu_batch_handle(&rq, &rs);
    } else if (strcmp(rq.path, "/token") == 0) {
        emu_oauth_token(&rq, &rs);
    } else if (strcmp(rq.path, "/o/oauth2/v2/auth") == 0) {
        emu_oauth_auth(&rq, &rs);
    } else if (has_prefix(path, "/_emulator/")) {
        emu_admin_handle(&rq, &rs);
    } else {
        emu_error(&rs, 404, "notFound", "Not Found");
    }
    if (emu.cfg.verbose)
        BM_LOG(BM_LOG_INFO, BM_MSG("request"), BM_KS("method", rq.method), BM_KS("path", rq.path),
               BM_KI("status", rs.status), BM_KI("bytes", rs.body.len));

    if (rs.content_type[0] != '\0' && rs.status != 204)
        add_header(req, H2O_TOKEN_CONTENT_TYPE, rs.content_type);
    if (rs.etag[0] != '\0')
        add_header(req, H2O_TOKEN_ETAG, rs.etag);
    if (rs.location != NULL)
        add_header(req, H2O_TOKEN_LOCATION, rs.location);
    add_header(req, H2O_TOKEN_CACHE_CONTROL, "no-cache, no-store, max-age=0, must-revalidate");
    h2o_iovec_t body = h2o_iovec_init(NULL, 0);
    if (rs.status != 204 && rs.body.len > 0)
        body = h2o_strdup(&req->pool, rs.body.data, rs.body.len);
    int status = rs.status;
    const char *reason = emu_reason_phrase(status);

    uint64_t latency =
        (uint64_t)(emu.pending_latency_ms > emu.faults.latency_ms ? emu.pending_latency_ms
                                                                  : emu.faults.latency_ms);
    emu.pending_latency_ms = 0;
    if (!is_api && !is_batch)
        latency = strcmp(rq.path, "/token") == 0 ? (uint64_t)emu.faults.token_latency_ms : 0;
    h2o_timeout_t *t = latency > 0 ? latency_timeout(latency) : NULL;
    if (t != NULL) {
        deferred_t *d = h2o_mem_alloc_shared(&req->pool, sizeof(*d), deferred_dispose);
        memset(d, 0, sizeof(*d));
        d->entry.cb = on_deferred;
        d->req = req;
        d->status = status;
        d->reason = reason;
        d->body = body;
        h2o_timeout_link(ctx.loop, t, &d->entry);
    } else {
        send_now(req, status, reason, body);
    }
    emu_resp_dispose(&rs);
    emu_req_dispose(&rq);
    return 0;
}

static void on_conn_close(void *data)
{
    (void)data;
    n_connections--;
}

static void on_accept(h2o_socket_t *lsock, const char *err)
{
    if (err != NULL)
        return;
    h2o_socket_t *sock;
    while ((sock = h2o_evloop_socket_accept(lsock)) != NULL) {
        n_connections++;
        sock->on_close.cb = on_conn_close;
        sock->on_close.data = NULL;
        h2o_accept(&accept_ctx, sock);
    }
}

int emu_http_start(const char *bind_addr, int port, int *bound_port, char *err, size_t errlen)
{
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, bind_addr, &sa.sin_addr) != 1)
        return bm_err(err, errlen, BM_EINVAL, "--bind: not an IPv4 address: %s", bind_addr);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return bm_err(err, errlen, BM_EIO, "socket: %s", strerror(errno));
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(fd, 1024) != 0) {
        int e = errno;
        close(fd);
        return bm_err(err, errlen, BM_EIO, "listen on %s:%d: %s", bind_addr, port, strerror(e));
    }
    socklen_t sl = sizeof(sa);
    if (getsockname(fd, (struct sockaddr *)&sa, &sl) != 0) {
        int e = errno;
        close(fd);
        return bm_err(err, errlen, BM_EIO, "getsockname: %s", strerror(e));
    }
    *bound_port = ntohs(sa.sin_port);
    if (fcntl(fd, F_SETFL, O_NONBLOCK) != 0) {
        int e = errno;
        close(fd);
        return bm_err(err, errlen, BM_EIO, "fcntl: %s", strerror(e));
    }

    h2o_config_init(&config);
    config.max_request_entity_size = EMU_MAX_BATCH_BODY;
    h2o_hostconf_t *host =
        h2o_config_register_host(&config, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *pc = h2o_config_register_path(host, "/", 0);
    handler_t *h = (handler_t *)h2o_create_handler(pc, sizeof(*h));
    h->super.on_req = on_req;

    loop = h2o_evloop_create();
    h2o_context_init(&ctx, loop, &config);
    memset(&accept_ctx, 0, sizeof(accept_ctx));
    accept_ctx.ctx = &ctx;
    accept_ctx.hosts = config.hosts;
    listener = h2o_evloop_socket_create(loop, fd, H2O_SOCKET_FLAG_DONT_READ);
    h2o_socket_read_start(listener, on_accept);
    return BM_OK;
}

void emu_http_run(volatile sig_atomic_t *stop)
{
    while (!*stop)
        h2o_evloop_run(loop, 100);
}

bool emu_http_stop(void)
{
    if (listener != NULL) {
        h2o_socket_read_stop(listener);
        h2o_socket_close(listener);
        listener = NULL;
    }
    int64_t deadline = bm_mono_ms() + 1000;
    while (n_connections > 0 && bm_mono_ms() < deadline)
        h2o_evloop_run(loop, 50);
    if (n_connections > 0)
        return false; /* connections still open: the caller exits without disposing */
    for (size_t i = 0; i < n_latency_timeouts; i++)
        h2o_timeout_dispose(loop, &latency_timeouts[i].t);
    h2o_context_dispose(&ctx);
    h2o_evloop_destroy(loop);
    h2o_config_dispose(&config);
    return true;
}
