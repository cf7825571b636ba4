/*
 * gateway/gateway.c: options, TLS, listeners, one event loop per thread, and
 * the drain at stop (see gateway.h; the h2o 2.2.5 notes in shared/libh2o-2.2.5.md).
 */
#include "gateway/gateway-int.h"

#include "core/log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define FORCED_CLOSE_MS 1000 /* after the drain: how long closed sockets may take */
#define DRAIN_GRACE_MS  100  /* after the last answer, before closing what is idle */
/* Open admin connections past which a new one is closed at once: a few scrapers
 * need a handful, and every socket is a descriptor the store and curl need too. */
#define ADMIN_MAX_CONNS 64

typedef struct conn {
    h2o_linklist_t link; /* in loop->conns */
    bm__gw_loop_t *loop;
    h2o_socket_t *sock;
} conn_t;

void bm_gateway_opts_from_config(bm_gateway_opts_t *o, const bm_config_t *cfg)
{
    memset(o, 0, sizeof(*o));
    o->listen = cfg->gateway.listen;
    o->tls_cert = cfg->gateway.tls_cert;
    o->tls_key = cfg->gateway.tls_key;
    o->public_url = cfg->gateway.public_url;
    o->threads = cfg->gateway.threads;
    o->commit_timeout_ms = cfg->gateway.commit_timeout_ms;
    o->admin_listen = cfg->admin.listen;
    o->admin_allow_remote = cfg->admin.allow_remote;
}

static void apply_defaults(bm_gateway_opts_t *o)
{
#define DEF(field, v)                                                                              \
    if (o->field <= 0)                                                                             \
    o->field = (v)
    DEF(threads, 1);
    DEF(commit_timeout_ms, 2000);
    DEF(max_body, 4096);
    DEF(max_header_bytes, 8192);
    DEF(max_connections, 1024);
    DEF(max_queue, 4096);
    DEF(request_timeout_ms, 10000);
    DEF(idle_timeout_ms, 10000);
    DEF(drain_ms, 3000);
#undef DEF
    if (o->drain_ms <= o->commit_timeout_ms)
        o->drain_ms = o->commit_timeout_ms + 500;
}

/* The path of an http(s) URL ("/" when it has none), without query or fragment. */
static char *url_path(const char *url)
{
    const char *p = strstr(url, "://");
    p = p != NULL ? strchr(p + 3, '/') : NULL;
    if (p == NULL)
        return bm_strdup("/");
    return bm_strndup(p, strcspn(p, "?#"));
}

bool bm__gw_is_loopback(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
    if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        return IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
    }
    return false;
}

/* Resolves host:port (numeric port; "[v6]:port"; "*" or "" host = any address). */
static int resolve(const char *key, const char *hostport, struct addrinfo **res, char *err,
                   size_t errlen)
{
    char host[256];
    const char *colon = strrchr(hostport, ':');
    if (colon == NULL || (size_t)(colon - hostport) >= sizeof(host))
        return bm_err(err, errlen, BM_EINVAL, "%s: \"%s\" is not host:port", key, hostport);
    size_t hlen = (size_t)(colon - hostport);
    if (hlen >= 2 && hostport[0] == '[' && hostport[hlen - 1] == ']')
        snprintf(host, sizeof(host), "%.*s", (int)hlen - 2, hostport + 1);
    else
        snprintf(host, sizeof(host), "%.*s", (int)hlen, hostport);
    struct addrinfo hints;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    bool any = host[0] == '\0' || strcmp(host, "*") == 0;
    int e = getaddrinfo(any ? NULL : host, colon + 1, &hints, res);
    if (e != 0)
        return bm_err(err, errlen, BM_EINVAL, "%s: cannot resolve \"%s\": %s", key, hostport,
                      gai_strerror(e));
    return BM_OK;
}

/* A non-blocking listening socket on ai; *port gets the bound port. */
static int bind_listener(const char *key, const char *hostport, const struct addrinfo *ai,
                         int *fd_out, int *port, char *err, size_t errlen)
{
    int rc = BM_OK, one = 1;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        rc = bm_err(err, errlen, BM_EIO, "%s: socket: %s", key, strerror(errno));
        goto out;
    }
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0 ||
        bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 1024) != 0 ||
        getsockname(fd, (struct sockaddr *)&ss, &sl) != 0) {
        rc = bm_err(err, errlen, BM_EIO, "%s: cannot listen on %s: %s", key, hostport,
                    strerror(errno));
        goto out;
    }
    *port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                           : ((struct sockaddr_in *)&ss)->sin_port);
    *fd_out = fd;
    fd = -1;
out:
    if (fd >= 0)
        close(fd);
    return rc;
}

/* Resolves, checks the loopback rule (remote_ok or else loopback only; refusal
 * names the keys in hint), binds. */
static int open_listener(const char *key, const char *hostport, bool remote_ok, const char *hint,
                         int *fd, int *port, char *err, size_t errlen)
{
    struct addrinfo *res = NULL;
    int rc = resolve(key, hostport, &res, err, errlen);
    if (rc != BM_OK)
        goto out;
    if (!remote_ok && !bm__gw_is_loopback(res->ai_addr)) {
        rc = bm_err(err, errlen, BM_EINVAL, "%s = %s is not a loopback address: %s", key, hostport,
                    hint);
        goto out;
    }
    rc = bind_listener(key, hostport, res, fd, port, err, errlen);
out:
    if (res != NULL)
        freeaddrinfo(res);
    return rc;
}

static int ssl_error(const char *what, const char *path, char *err, size_t errlen)
{
    char buf[256];
    ERR_error_string_n(ERR_get_error(), buf, sizeof(buf));
    ERR_clear_error();
    return bm_err(err, errlen, BM_EIO, "[gateway] %s: %s: %s", what, path, buf);
}

/* TLS 1.2 minimum, ECDHE with AES-GCM or ChaCha20 for 1.2, OpenSSL's 1.3 suites, ALPN h2 +
 * http/1.1. */
static int tls_init(bm_gateway_t *gw, const char *cert, const char *key, char *err, size_t errlen)
{
    static const char ciphers12[] = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
                                    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
                                    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";
    SSL_CTX *c = SSL_CTX_new(TLS_server_method());
    int rc = BM_OK;
    if (c == NULL) {
        rc = ssl_error("tls_cert", cert, err, errlen);
        goto out;
    }
    SSL_CTX_set_options(c, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                               SSL_OP_CIPHER_SERVER_PREFERENCE);
    if (SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION) != 1 ||
        SSL_CTX_set_cipher_list(c, ciphers12) != 1) {
        rc = ssl_error("tls_cert", cert, err, errlen);
        goto out;
    }
    if (SSL_CTX_use_certificate_chain_file(c, cert) != 1) {
        rc = ssl_error("tls_cert", cert, err, errlen);
        goto out;
    }
    if (SSL_CTX_use_PrivateKey_file(c, key, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(c) != 1) {
        rc = ssl_error("tls_key", key, err, errlen);
        goto out;
    }
    h2o_ssl_register_alpn_protocols(c, h2o_alpn_protocols);
    gw->ssl_ctx = c;
    c = NULL;
out:
    SSL_CTX_free(c);
    return rc;
}

static void conf_init(bm_gateway_t *gw, h2o_globalconf_t *conf, bool admin)
{
    h2o_config_init(conf);
    conf->server_name = h2o_iovec_init(H2O_STRLIT("busymirror"));
    conf->max_request_entity_size = gw->o.max_body;
    conf->handshake_timeout = (uint64_t)gw->o.idle_timeout_ms;
    conf->http1.req_timeout = (uint64_t)gw->o.request_timeout_ms;
    conf->http1.upgrade_to_http2 = 0;
    conf->http2.idle_timeout = (uint64_t)gw->o.idle_timeout_ms;
    h2o_hostconf_t *host =
        h2o_config_register_host(conf, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *pc = h2o_config_register_path(host, "/", 0);
    bm__gw_handler_t *h = (bm__gw_handler_t *)h2o_create_handler(pc, sizeof(*h));
    h->super.on_req = admin ? bm__gw_on_admin_req : bm__gw_on_public_req;
    h->gw = gw;
}

/* ---- event-loop threads ---- */

static void on_conn_close(void *data)
{
    conn_t *c = data;
    bm__gw_loop_t *l = c->loop;
    h2o_linklist_unlink(&c->link);
    l->n_conns--;
    if (!l->admin) {
        atomic_fetch_sub(&l->gw->n_public_conns, 1);
        if (l->gw->o.metrics != NULL)
            bm_metrics_gauge_add(l->gw->o.metrics, "bm_gateway_connections", NULL, -1);
    }
    free(c);
}

static void on_accept(h2o_socket_t *lsock, const char *errstr)
{
    bm__gw_loop_t *l = lsock->data;
    bm_gateway_t *gw = l->gw;
    h2o_socket_t *sock;
    if (errstr != NULL)
        return;
    while ((sock = h2o_evloop_socket_accept(lsock)) != NULL) {
        if (l->admin && l->n_conns >= ADMIN_MAX_CONNS) {
            h2o_socket_close(sock);
            continue;
        }
        if (!l->admin && atomic_fetch_add(&gw->n_public_conns, 1) >= gw->o.max_connections) {
            atomic_fetch_sub(&gw->n_public_conns, 1);
            if (gw->o.metrics != NULL)
                bm_metrics_counter_add(gw->o.metrics, "bm_gateway_connections_refused_total", NULL,
                                       1);
            h2o_socket_close(sock);
            continue;
        }
        if (!l->admin && gw->o.metrics != NULL)
            bm_metrics_gauge_add(gw->o.metrics, "bm_gateway_connections", NULL, 1);
        conn_t *c = bm_calloc(1, sizeof(*c));
        c->loop = l;
        c->sock = sock;
        h2o_linklist_insert(&l->conns, &c->link);
        l->n_conns++;
        sock->on_close.cb = on_conn_close;
        sock->on_close.data = c;
        h2o_accept(&l->accept, sock);
    }
}

static void on_wake(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    (void)receiver;
    (void)messages; /* only NULL messages are sent: the list stays empty */
}

static void loop_init(bm__gw_loop_t *l)
{
    bm_gateway_t *gw = l->gw;
    l->evloop = h2o_evloop_create();
    h2o_context_init(&l->ctx, l->evloop, l->admin ? &gw->admin_conf : &gw->pub_conf);
    l->accept.ctx = &l->ctx;
    l->accept.hosts = l->admin ? gw->admin_conf.hosts : gw->pub_conf.hosts;
    l->accept.ssl_ctx = l->admin ? NULL : gw->ssl_ctx;
    h2o_linklist_init_anchor(&l->conns);
    h2o_multithread_register_receiver(l->ctx.queue, &l->wake, on_wake);
    if (!l->admin) {
        h2o_multithread_register_receiver(l->ctx.queue, &l->results, bm__gw_on_results);
        h2o_timeout_init(l->evloop, &l->commit_timeout, (uint64_t)gw->o.commit_timeout_ms);
    }
    l->listener = h2o_evloop_socket_create(l->evloop, l->fd, H2O_SOCKET_FLAG_DONT_READ);
    l->fd = -1;
    l->listener->data = l;
    h2o_socket_read_start(l->listener, on_accept);
}

static void run_until(bm__gw_loop_t *l, int64_t deadline, bool (*done)(const bm__gw_loop_t *))
{
    while (!done(l) && bm_mono_ms() < deadline)
        h2o_evloop_run(l->evloop, 10);
}

static bool no_waiting(const bm__gw_loop_t *l)
{
    return l->n_waiting == 0;
}

static bool no_conns(const bm__gw_loop_t *l)
{
    return l->n_conns == 0;
}

/* Stops accepting, lets what waits for the committer be answered, then closes
 * every connection still open (a shutdown() makes h2o see EOF and close it). */
static void loop_drain(bm__gw_loop_t *l)
{
    h2o_socket_read_stop(l->listener);
    h2o_socket_close(l->listener);
    l->listener = NULL;
    h2o_context_request_shutdown(&l->ctx);
    int64_t deadline = bm_mono_ms() + l->gw->o.drain_ms;
    run_until(l, deadline, no_waiting);
    run_until(l, bm_mono_ms() + DRAIN_GRACE_MS, no_conns);
    for (h2o_linklist_t *n = l->conns.next; n != &l->conns; n = n->next) {
        conn_t *c = H2O_STRUCT_FROM_MEMBER(conn_t, link, n);
        if (shutdown(h2o_socket_get_fd(c->sock), SHUT_RDWR) != 0)
            BM_LOG(BM_LOG_DEBUG, BM_MSG("gateway: shutdown failed"),
                   BM_KS("error", strerror(errno)));
    }
    run_until(l, bm_mono_ms() + FORCED_CLOSE_MS, no_conns);
}

/* After the committer ended: take the last answers, then dispose of the loop. */
static void loop_dispose(bm__gw_loop_t *l)
{
    h2o_evloop_run(l->evloop, 0);
    for (int i = 0; i < 100 && !l->admin && !h2o_linklist_is_empty(&l->results._messages); i++)
        h2o_evloop_run(l->evloop, 10);
    if (l->n_conns > 0 || l->n_waiting > 0) {
        /* h2o cannot dispose of a context with live connections: leave it */
        BM_LOG(BM_LOG_ERROR, BM_MSG("gateway: connections outlived the drain, not disposed"),
               BM_KI("connections", l->n_conns));
        l->gw->leaked = true;
        return;
    }
    /* h2o_context_request_shutdown leaves HTTP/2's GOAWAY resend on the one-second
     * timeout; with every connection gone it has nothing left to do */
    if (h2o_timeout_is_linked(&l->ctx.http2._graceful_shutdown_timeout))
        h2o_timeout_unlink(&l->ctx.http2._graceful_shutdown_timeout);
    if (h2o_timeout_is_linked(&l->flush))
        h2o_timeout_unlink(&l->flush);
    if (!l->admin) {
        h2o_timeout_dispose(l->evloop, &l->commit_timeout);
        h2o_multithread_unregister_receiver(l->ctx.queue, &l->results);
    }
    h2o_multithread_unregister_receiver(l->ctx.queue, &l->wake);
    h2o_multithread_queue_t *queue = l->ctx.queue;
    h2o_context_dispose(&l->ctx);
    h2o_evloop_run(l->evloop, 0); /* frees the sockets closed by the dispose */
#if H2O_VERSION_MAJOR == 2 && H2O_VERSION_MINOR <= 2
    free(queue); /* 2.2's evloop h2o_multithread_destroy_queue forgets it (later versions free) */
#else
    (void)queue;
#endif
    h2o_evloop_destroy(l->evloop);
    l->evloop = NULL;
    /* this thread's recycled socket buffers would die with its thread-local list */
    while (h2o_socket_buffer_prototype.allocator.cnt > 0)
        free(h2o_mem_alloc_recycle(&h2o_socket_buffer_prototype.allocator, 1));
}

static void *loop_main(void *arg)
{
    bm__gw_loop_t *l = arg;
    bm_gateway_t *gw = l->gw;
    loop_init(l);
    pthread_mutex_lock(&gw->mu);
    gw->n_ready++;
    pthread_cond_broadcast(&gw->cv);
    pthread_mutex_unlock(&gw->mu);

    while (!atomic_load(&gw->stopping))
        h2o_evloop_run(l->evloop, INT32_MAX);
    loop_drain(l);
    pthread_mutex_lock(&gw->mu);
    gw->n_drained++;
    pthread_cond_broadcast(&gw->cv);
    pthread_mutex_unlock(&gw->mu);
    /* answers may still come while the committer finishes */
    while (!atomic_load(&gw->committer_done))
        h2o_evloop_run(l->evloop, 20);
    loop_dispose(l);
    return NULL;
}

static void wait_count(bm_gateway_t *gw, size_t *count, size_t n)
{
    pthread_mutex_lock(&gw->mu);
    while (*count < n)
        pthread_cond_wait(&gw->cv, &gw->mu);
    pthread_mutex_unlock(&gw->mu);
}

/* ---- lifecycle ---- */

static int check_opts(const bm_gateway_opts_t *o, char *err, size_t errlen)
{
    if (o->listen == NULL)
        return bm_err(err, errlen, BM_EINVAL, "[gateway] listen is not set");
    if (o->public_url == NULL && o->admin_listen == NULL)
        return bm_err(err, errlen, BM_EINVAL,
                      "[gateway] public_url is not set: it names the notification path");
    if ((o->tls_cert == NULL) != (o->tls_key == NULL))
        return bm_err(err, errlen, BM_EINVAL, "[gateway] tls_cert and tls_key go together");
    if (o->commit == NULL)
        return bm_err(err, errlen, BM_EINVAL, "gateway: no commit callback");
    return BM_OK;
}

static int open_listeners(bm_gateway_t *gw, const bm_gateway_opts_t *o, int *pub_fd, int *admin_fd,
                          char *err, size_t errlen)
{
    int rc = BM_OK;
    if (o->public_url != NULL) /* else no push: the admin listener only */
        rc = open_listener("[gateway] listen", o->listen, o->tls_cert != NULL,
                           "set [gateway] tls_cert and tls_key, or listen on loopback behind nginx",
                           pub_fd, &gw->port, err, errlen);
    if (rc == BM_OK && o->admin_listen != NULL)
        rc = open_listener("[admin] listen", o->admin_listen, o->admin_allow_remote,
                           "set [admin] allow_remote = true to expose it", admin_fd,
                           &gw->admin_port, err, errlen);
    return rc;
}

/* One loop per public thread (each on its own dup of the listening socket), plus the admin loop. */
static int start_loops(bm_gateway_t *gw, int pub_fd, int admin_fd, char *err, size_t errlen)
{
    int rc = BM_OK;
    gw->n_loops = (size_t)gw->o.threads + (admin_fd >= 0 ? 1 : 0);
    gw->loops = bm_calloc(gw->n_loops, sizeof(*gw->loops));
    for (size_t i = 0; i < gw->n_loops; i++)
        gw->loops[i].fd = -1;
    for (size_t i = 0; i < gw->n_loops; i++) {
        bm__gw_loop_t *l = &gw->loops[i];
        l->gw = gw;
        l->admin = i == (size_t)gw->o.threads;
        l->fd = fcntl(l->admin ? admin_fd : pub_fd, F_DUPFD_CLOEXEC, 0);
        if (l->fd < 0) {
            rc = bm_err(err, errlen, BM_EIO, "gateway: dup: %s", strerror(errno));
            goto out;
        }
    }
    for (size_t i = 0; i < gw->n_loops; i++) {
        int e = pthread_create(&gw->loops[i].tid, NULL, loop_main, &gw->loops[i]);
        if (e != 0) {
            rc = bm_err(err, errlen, BM_EIO, "gateway: cannot start a thread: %s", strerror(e));
            goto out;
        }
        gw->loops[i].started = true;
        gw->n_started++;
    }
out:
    wait_count(gw, &gw->n_ready, gw->n_started);
    return rc;
}

int bm_gateway_start(const bm_gateway_opts_t *o, bm_gateway_t **out, char *err, size_t errlen)
{
    int pub_fd = -1, admin_fd = -1;
    bm_gateway_t *gw = NULL;
    int rc = check_opts(o, err, errlen);
    *out = NULL;
    if (rc != BM_OK)
        goto out;
    if (signal(SIGPIPE, SIG_IGN) == SIG_ERR) {
        rc = bm_err(err, errlen, BM_EIO, "gateway: signal: %s", strerror(errno));
        goto out;
    }
    gw = bm_calloc(1, sizeof(*gw));
    gw->o = *o;
    gw->o.listen = gw->o.admin_listen = gw->o.tls_cert = gw->o.tls_key = gw->o.public_url = NULL;
    apply_defaults(&gw->o);
    if (o->public_url == NULL)
        gw->o.threads = 0; /* no public listener, no public loops */
    gw->notify_path = o->public_url != NULL ? url_path(o->public_url) : bm_strdup("");
    if (pthread_mutex_init(&gw->mu, NULL) != 0 || pthread_cond_init(&gw->cv, NULL) != 0 ||
        pthread_mutex_init(&gw->committer.mu, NULL) != 0 ||
        pthread_cond_init(&gw->committer.cv, NULL) != 0)
        abort(); /* only fails without memory: as bm_malloc */
    rc = open_listeners(gw, o, &pub_fd, &admin_fd, err, errlen);
    if (rc == BM_OK && o->tls_cert != NULL)
        rc = tls_init(gw, o->tls_cert, o->tls_key, err, errlen);
    if (rc != BM_OK)
        goto out;
    conf_init(gw, &gw->pub_conf, false);
    conf_init(gw, &gw->admin_conf, true);
    gw->confs_inited = true;
    bm__gw_metrics_init(gw);
    rc = bm__gw_committer_start(gw, err, errlen);
    if (rc == BM_OK)
        rc = start_loops(gw, pub_fd, admin_fd, err, errlen);
    if (rc == BM_OK)
        BM_LOG(BM_LOG_INFO, BM_MSG("gateway listening"), BM_KI("port", gw->port),
               BM_KS("tls", gw->ssl_ctx != NULL ? "on" : "off"), BM_KS("path", gw->notify_path),
               BM_KI("admin_port", gw->admin_port), BM_KI("threads", gw->o.threads));
out:
    if (pub_fd >= 0)
        close(pub_fd);
    if (admin_fd >= 0)
        close(admin_fd);
    if (rc != BM_OK)
        bm_gateway_free(gw);
    else
        *out = gw;
    return rc;
}

int bm_gateway_port(const bm_gateway_t *gw)
{
    return gw->port;
}

int bm_gateway_admin_port(const bm_gateway_t *gw)
{
    return gw->admin_port;
}

void bm_gateway_stop(bm_gateway_t *gw)
{
    if (gw == NULL || gw->stopped)
        return;
    gw->stopped = true;
    atomic_store(&gw->stopping, true);
    for (size_t i = 0; i < gw->n_loops; i++)
        if (gw->loops[i].started)
            h2o_multithread_send_message(&gw->loops[i].wake, NULL);
    wait_count(gw, &gw->n_drained, gw->n_started);
    bm__gw_committer_stop(gw);
    atomic_store(&gw->committer_done, true);
    for (size_t i = 0; i < gw->n_loops; i++) {
        if (!gw->loops[i].started)
            continue;
        int e = pthread_join(gw->loops[i].tid, NULL);
        if (e != 0)
            BM_LOG(BM_LOG_ERROR, BM_MSG("gateway: cannot join a loop"),
                   BM_KS("error", strerror(e)));
        gw->loops[i].started = false;
    }
}

void bm_gateway_free(bm_gateway_t *gw)
{
    if (gw == NULL)
        return;
    bm_gateway_stop(gw);
    for (size_t i = 0; i < gw->n_loops; i++)
        if (gw->loops[i].fd >= 0)
            close(gw->loops[i].fd);
    free(gw->loops);
    if (gw->confs_inited && !gw->leaked) {
        h2o_config_dispose(&gw->pub_conf);
        h2o_config_dispose(&gw->admin_conf);
    }
    if (!gw->leaked)
        SSL_CTX_free(gw->ssl_ctx);
    pthread_mutex_destroy(&gw->mu);
    pthread_cond_destroy(&gw->cv);
    pthread_mutex_destroy(&gw->committer.mu);
    pthread_cond_destroy(&gw->committer.cv);
    bm_crypto_wipe(gw->o.key, sizeof(gw->o.key));
    free(gw->notify_path);
    free(gw);
}
