/*
 * tests/gateway/test_gateway.c: the gateway over real sockets. Each test starts
 * it on 127.0.0.1 port 0 with a self-signed certificate made here and a fake
 * commit callback, and talks to it with libcurl (HTTP/1.1 and HTTP/2 over TLS).
 */
#include "gateway/gateway.h"

#include "core/log.h"

#include <check.h>
#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#define CHANNEL  "chan-0001"
#define RESOURCE "res-abc_DEF-123"

/* ---- the fake commit callback ---- */

static struct {
    pthread_mutex_t mu;
    bm_gateway_note_t notes[512];
    size_t n_notes, n_batches;
    int status;   /* what every note gets */
    int delay_ms; /* before answering */
    bool fail;    /* return BM_ESTORE for the whole batch */
    bool ready;
} fake = {.mu = PTHREAD_MUTEX_INITIALIZER};

static int fake_commit(void *ud, bm_gateway_note_t *notes, size_t n)
{
    (void)ud;
    if (fake.delay_ms > 0)
        usleep((useconds_t)fake.delay_ms * 1000);
    pthread_mutex_lock(&fake.mu);
    fake.n_batches++;
    for (size_t i = 0; i < n; i++) {
        notes[i].status = fake.status;
        if (fake.n_notes < sizeof(fake.notes) / sizeof(fake.notes[0]))
            fake.notes[fake.n_notes++] = notes[i];
    }
    pthread_mutex_unlock(&fake.mu);
    return fake.fail ? BM_ESTORE : BM_OK;
}

static bool fake_ready(void *ud, char *why, size_t whylen)
{
    (void)ud;
    if (!fake.ready)
        snprintf(why, whylen, "store not open");
    return fake.ready;
}

static size_t n_notes(void)
{
    pthread_mutex_lock(&fake.mu);
    size_t n = fake.n_notes;
    pthread_mutex_unlock(&fake.mu);
    return n;
}

/* ---- fixture: certificate, key, gateway ---- */

static char dir[64], cert_path[128], key_path[128];
static unsigned char key[BM_CRYPTO_KEY_LEN];
static bm_gateway_t *gw;
static bm_metrics_t *metrics;
static char token[BM_CRYPTO_CHANNEL_TOKEN_LEN + 1];

static void write_cert(void)
{
    EVP_PKEY *pkey = EVP_EC_gen("P-256");
    ck_assert_ptr_nonnull(pkey);
    X509 *x = X509_new();
    ck_assert_ptr_nonnull(x);
    X509_NAME *name = X509_get_subject_name(x);
    ck_assert(X509_set_version(x, 2) == 1 && ASN1_INTEGER_set(X509_get_serialNumber(x), 1) == 1);
    ck_assert(X509_gmtime_adj(X509_getm_notBefore(x), -60) != NULL);
    ck_assert(X509_gmtime_adj(X509_getm_notAfter(x), 86400) != NULL);
    ck_assert(X509_set_pubkey(x, pkey) == 1);
    ck_assert(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                         (const unsigned char *)"localhost", -1, -1, 0) == 1);
    ck_assert(X509_set_issuer_name(x, name) == 1);
    ck_assert(X509_sign(x, pkey, EVP_sha256()) > 0);
    FILE *f = fopen(key_path, "w");
    ck_assert_ptr_nonnull(f);
    ck_assert(PEM_write_PrivateKey(f, pkey, NULL, NULL, 0, NULL, NULL) == 1);
    ck_assert_int_eq(fclose(f), 0);
    f = fopen(cert_path, "w");
    ck_assert_ptr_nonnull(f);
    ck_assert(PEM_write_X509(f, x) == 1);
    ck_assert_int_eq(fclose(f), 0);
    X509_free(x);
    EVP_PKEY_free(pkey);
}

static void setup(void)
{
    snprintf(dir, sizeof(dir), "/tmp/bm-gw-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(cert_path, sizeof(cert_path), "%s/cert.pem", dir);
    snprintf(key_path, sizeof(key_path), "%s/key.pem", dir);
    write_cert();
    memset(key, 0x42, sizeof(key));
    ck_assert_int_eq(bm_crypto_channel_token(key, CHANNEL, token), BM_OK);
    ck_assert_int_eq(curl_global_init(CURL_GLOBAL_DEFAULT), CURLE_OK);
    fake.n_notes = fake.n_batches = 0;
    fake.status = 200;
    fake.delay_ms = 0;
    fake.fail = false;
    fake.ready = true;
    metrics = bm_metrics_new(0);
    gw = NULL;
}

static void teardown(void)
{
    bm_gateway_free(gw);
    bm_metrics_free(metrics);
    curl_global_cleanup();
    unlink(cert_path);
    unlink(key_path);
    rmdir(dir);
}

static void opts_init(bm_gateway_opts_t *o)
{
    memset(o, 0, sizeof(*o));
    o->listen = "127.0.0.1:0";
    o->tls_cert = cert_path;
    o->tls_key = key_path;
    o->public_url = "https://bm.example.com/google/notify?x=1";
    o->threads = 2;
    o->commit_timeout_ms = 2000;
    o->admin_listen = "127.0.0.1:0";
    memcpy(o->key, key, sizeof(key));
    o->metrics = metrics;
    o->commit = fake_commit;
    o->ready = fake_ready;
}

static void start_with(const bm_gateway_opts_t *o)
{
    char err[256] = "";
    int rc = bm_gateway_start(o, &gw, err, sizeof(err));
    ck_assert_msg(rc == BM_OK, "start: %s", err);
    ck_assert_int_gt(bm_gateway_port(gw), 0);
}

static void start(void)
{
    bm_gateway_opts_t o;
    opts_init(&o);
    start_with(&o);
}

/* ---- the client ---- */

typedef struct resp {
    long status;
    long version;
    char body[8192];
    size_t len;
    char allow[64];
    char ctype[128];
} resp_t;

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    resp_t *r = ud;
    size_t len = size * n, room = sizeof(r->body) - 1 - r->len;
    memcpy(r->body + r->len, p, len < room ? len : room);
    r->len += len < room ? len : room;
    r->body[r->len] = '\0';
    return len;
}

static void grab_header(const char *line, size_t len, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    if (len > nl && strncasecmp(line, name, nl) == 0) {
        size_t v = len - nl;
        while (v > 0 && (line[nl + v - 1] == '\r' || line[nl + v - 1] == '\n'))
            v--;
        snprintf(out, cap, "%.*s", (int)v, line + nl);
    }
}

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
    resp_t *r = ud;
    grab_header(p, size * n, "allow: ", r->allow, sizeof(r->allow));
    grab_header(p, size * n, "content-type: ", r->ctype, sizeof(r->ctype));
    return size * n;
}

/* One request on c (a reused handle keeps its connection). */
static CURLcode perform(CURL *c, const char *method, const char *url, struct curl_slist *hdrs,
                        const char *body, bool h2, resp_t *r)
{
    memset(r, 0, sizeof(*r));
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    if (body != NULL || strcmp(method, "POST") == 0) { /* Google: Content-Length: 0 */
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body != NULL ? body : "");
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, body != NULL ? (long)strlen(body) : 0L);
    } else {
        curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
    }
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
    curl_easy_setopt(c, CURLOPT_HTTP_VERSION,
                     h2 ? (long)CURL_HTTP_VERSION_2TLS : (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
    CURLcode cc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    curl_easy_getinfo(c, CURLINFO_HTTP_VERSION, &r->version);
    return cc;
}

static long request(const char *method, const char *scheme, int port, const char *path,
                    struct curl_slist *hdrs, const char *body, bool h2, resp_t *r)
{
    char url[256];
    snprintf(url, sizeof(url), "%s://127.0.0.1:%d%s", scheme, port, path);
    CURL *c = curl_easy_init();
    ck_assert_ptr_nonnull(c);
    CURLcode cc = perform(c, method, url, hdrs, body, h2, r);
    curl_easy_cleanup(c);
    ck_assert_msg(cc == CURLE_OK, "%s %s: %s", method, url, curl_easy_strerror(cc));
    return r->status;
}

/* The X-Goog-* headers of a notification; NULL leaves one out. */
static struct curl_slist *goog(const char *channel, const char *resource, const char *state,
                               const char *tok, const char *number)
{
    struct curl_slist *h = NULL;
    char line[512];
    const char *names[] = {"X-Goog-Channel-ID", "X-Goog-Resource-ID", "X-Goog-Resource-State",
                           "X-Goog-Channel-Token", "X-Goog-Message-Number"};
    const char *values[] = {channel, resource, state, tok, number};
    for (size_t i = 0; i < 5; i++) {
        if (values[i] == NULL)
            continue;
        snprintf(line, sizeof(line), "%s: %s", names[i], values[i]);
        h = curl_slist_append(h, line);
    }
    return curl_slist_append(h, "User-Agent: APIs-Google");
}

static long notify(const char *state, const char *tok, bool h2, resp_t *r)
{
    struct curl_slist *h = goog(CHANNEL, RESOURCE, state, tok, "7");
    long s = request("POST", "https", bm_gateway_port(gw), "/google/notify", h, NULL, h2, r);
    curl_slist_free_all(h);
    return s;
}

static long admin_get(const char *path, resp_t *r)
{
    return request("GET", "http", bm_gateway_admin_port(gw), path, NULL, NULL, false, r);
}

/* ---- tests ---- */

START_TEST(valid_notification_is_committed_once)
{
    start();
    resp_t r;
    int64_t before = bm_now_ms();
    ck_assert_int_eq(notify("exists", token, false, &r), 200);
    ck_assert_str_eq(r.body, "ok\n");
    ck_assert_int_eq(r.version, CURL_HTTP_VERSION_1_1);
    ck_assert_uint_eq(n_notes(), 1);
    ck_assert_str_eq(fake.notes[0].channel_id, CHANNEL);
    ck_assert_str_eq(fake.notes[0].resource_id, RESOURCE);
    ck_assert_str_eq(fake.notes[0].state, "exists");
    ck_assert_int_eq(fake.notes[0].message_number, 7);
    ck_assert_int_ge(fake.notes[0].received_ms, before);
    ck_assert_int_le(fake.notes[0].received_ms, bm_now_ms());
    ck_assert_int_eq(notify("not_exists", token, false, &r), 200);
    ck_assert_uint_eq(n_notes(), 2);
    ck_assert_str_eq(fake.notes[1].state, "not_exists");
}
END_TEST

START_TEST(sync_state_answers_without_a_note)
{
    start();
    resp_t r;
    ck_assert_int_eq(notify("sync", token, false, &r), 200);
    ck_assert_uint_eq(n_notes(), 0);
}
END_TEST

START_TEST(wrong_token_is_refused_and_never_logged)
{
    char *logbuf = NULL;
    size_t loglen = 0;
    FILE *logf = open_memstream(&logbuf, &loglen);
    ck_assert_ptr_nonnull(logf);
    bm_log_set_stream(logf);
    start();
    resp_t r;
    char wrong[] = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAwrong";
    ck_assert_int_eq(notify("exists", wrong, false, &r), 403);
    char other[BM_CRYPTO_CHANNEL_TOKEN_LEN + 1];
    ck_assert_int_eq(bm_crypto_channel_token(key, "another-channel", other), BM_OK);
    ck_assert_int_eq(notify("exists", other, false, &r), 403); /* another channel's token */
    ck_assert_uint_eq(n_notes(), 0);
    bm_gateway_stop(gw);
    bm_log_set_stream(NULL);
    ck_assert_int_eq(fclose(logf), 0);
    ck_assert_ptr_nonnull(strstr(logbuf, "reason=bad_token"));
    ck_assert_ptr_nonnull(strstr(logbuf, "channel=" CHANNEL));
    ck_assert_ptr_nonnull(strstr(logbuf, "client=127.0.0.1"));
    ck_assert_ptr_null(strstr(logbuf, wrong));
    ck_assert_ptr_null(strstr(logbuf, other));
    ck_assert_ptr_null(strstr(logbuf, token));
    /* at most one line a second per reason */
    ck_assert_ptr_null(strstr(strstr(logbuf, "reason=bad_token") + 1, "reason=bad_token"));
    free(logbuf);
}
END_TEST

START_TEST(unknown_channel_status_comes_from_the_callback)
{
    start();
    resp_t r;
    fake.status = 404;
    ck_assert_int_eq(notify("exists", token, false, &r), 404);
    fake.status = 400;
    ck_assert_int_eq(notify("exists", token, false, &r), 400);
    fake.status = 0; /* not set by the callback: never a 200 */
    ck_assert_int_eq(notify("exists", token, false, &r), 503);
}
END_TEST

START_TEST(missing_or_malformed_headers_are_400)
{
    start();
    resp_t r;
    int port = bm_gateway_port(gw);
    struct curl_slist *cases[] = {
        goog(NULL, RESOURCE, "exists", token, "7"),
        goog(CHANNEL, NULL, "exists", token, "7"),
        goog(CHANNEL, RESOURCE, NULL, token, "7"),
        goog(CHANNEL, RESOURCE, "exists", NULL, "7"),
        goog(CHANNEL, RESOURCE, "exists", token, NULL),
        goog(CHANNEL, RESOURCE, "exists", token, "seven"),
        goog(CHANNEL, RESOURCE, "changed", token, "7"),
        goog("c-0123456789012345678901234567890123456789012345678901234567890123", RESOURCE,
             "exists", token, "7"), /* 65 characters */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ck_assert_int_eq(
            request("POST", "https", port, "/google/notify", cases[i], NULL, false, &r), 400);
        curl_slist_free_all(cases[i]);
    }
    ck_assert_uint_eq(n_notes(), 0);
}
END_TEST

START_TEST(routes_methods_and_paths)
{
    start();
    resp_t r;
    int port = bm_gateway_port(gw);
    ck_assert_int_eq(request("GET", "https", port, "/google/notify", NULL, NULL, false, &r), 405);
    ck_assert_str_eq(r.allow, "POST");
    ck_assert_int_eq(request("PUT", "https", port, "/google/notify", NULL, NULL, false, &r), 405);
    ck_assert_int_eq(request("GET", "https", port, "/elsewhere", NULL, NULL, false, &r), 404);
    ck_assert_int_eq(request("GET", "https", port, "/metrics", NULL, NULL, false, &r), 404);
    ck_assert_int_eq(request("GET", "https", port, "/readyz", NULL, NULL, false, &r), 404);
    ck_assert_int_eq(request("GET", "https", port, "/healthz", NULL, NULL, false, &r), 200);
    ck_assert_str_eq(r.body, "ok\n");
    ck_assert_str_eq(r.ctype, "text/plain; charset=utf-8");
    ck_assert_uint_eq(n_notes(), 0);
}
END_TEST

START_TEST(body_over_the_cap_is_413)
{
    start();
    resp_t r;
    char *big = malloc(5001);
    ck_assert_ptr_nonnull(big);
    memset(big, 'x', 5000);
    big[5000] = '\0';
    struct curl_slist *h = goog(CHANNEL, RESOURCE, "exists", token, "7");
    ck_assert_int_eq(
        request("POST", "https", bm_gateway_port(gw), "/google/notify", h, big, false, &r), 413);
    curl_slist_free_all(h);
    free(big);
    ck_assert_uint_eq(n_notes(), 0);
}
END_TEST

START_TEST(slow_commit_answers_503_and_survives_the_late_answer)
{
    bm_gateway_opts_t o;
    opts_init(&o);
    o.commit_timeout_ms = 200;
    start_with(&o);
    fake.delay_ms = 700;
    resp_t r;
    int64_t t0 = bm_mono_ms();
    ck_assert_int_eq(notify("exists", token, false, &r), 503);
    ck_assert_int_lt(bm_mono_ms() - t0, 650);
    usleep(900 * 1000); /* the late answer arrives and finds no request */
    ck_assert_uint_eq(n_notes(), 1);
    fake.delay_ms = 0;
    ck_assert_int_eq(notify("exists", token, false, &r), 200);
}
END_TEST

START_TEST(failing_commit_answers_503)
{
    start();
    fake.fail = true;
    resp_t r;
    ck_assert_int_eq(notify("exists", token, true, &r), 503);
}
END_TEST

#define N_CLIENTS 8
#define N_EACH    25

/* A client thread: n notifications on one connection (HTTP/2 every other one
 * when mix_h2), counting the 200s. */
typedef struct client {
    int n;
    bool mix_h2;
    int ok;
    long last_status;
} client_t;

static void *client_main(void *arg)
{
    client_t *cl = arg;
    char url[128];
    snprintf(url, sizeof(url), "https://127.0.0.1:%d/google/notify", bm_gateway_port(gw));
    struct curl_slist *h = goog(CHANNEL, RESOURCE, "exists", token, "9");
    CURL *c = curl_easy_init();
    resp_t r;
    for (int i = 0; c != NULL && i < cl->n; i++) {
        if (perform(c, "POST", url, h, NULL, cl->mix_h2 && i % 2 == 0, &r) != CURLE_OK)
            continue;
        cl->last_status = r.status;
        cl->ok += r.status == 200;
    }
    curl_easy_cleanup(c);
    curl_slist_free_all(h);
    return NULL;
}

START_TEST(concurrent_notifications_are_group_committed)
{
    start();
    fake.delay_ms = 10; /* one fsync's worth: notes pile up meanwhile */
    pthread_t t[N_CLIENTS];
    client_t cl[N_CLIENTS];
    for (int i = 0; i < N_CLIENTS; i++) {
        cl[i] = (client_t){.n = N_EACH, .mix_h2 = true};
        ck_assert_int_eq(pthread_create(&t[i], NULL, client_main, &cl[i]), 0);
    }
    int total = 0;
    for (int i = 0; i < N_CLIENTS; i++) {
        ck_assert_int_eq(pthread_join(t[i], NULL), 0);
        total += cl[i].ok;
    }
    ck_assert_int_eq(total, N_CLIENTS * N_EACH);
    ck_assert_uint_eq(n_notes(), N_CLIENTS * N_EACH);
    ck_assert_msg(fake.n_batches < N_CLIENTS * N_EACH / 2, "%zu batches", fake.n_batches);
}
END_TEST

START_TEST(non_loopback_without_cert_refuses_to_start)
{
    bm_gateway_opts_t o;
    char err[256];
    opts_init(&o);
    o.listen = "0.0.0.0:0";
    o.tls_cert = o.tls_key = NULL;
    ck_assert_int_eq(bm_gateway_start(&o, &gw, err, sizeof(err)), BM_EINVAL);
    ck_assert_ptr_null(gw);
    ck_assert_ptr_nonnull(strstr(err, "[gateway] tls_cert"));
    ck_assert_ptr_null(strchr(err, '\n'));
    opts_init(&o);
    o.admin_listen = "0.0.0.0:0";
    ck_assert_int_eq(bm_gateway_start(&o, &gw, err, sizeof(err)), BM_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "[admin] allow_remote"));
    /* plain HTTP on loopback (behind nginx) is fine */
    opts_init(&o);
    o.tls_cert = o.tls_key = NULL;
    start_with(&o);
    resp_t r;
    struct curl_slist *h = goog(CHANNEL, RESOURCE, "exists", token, "7");
    ck_assert_int_eq(
        request("POST", "http", bm_gateway_port(gw), "/google/notify", h, NULL, false, &r), 200);
    curl_slist_free_all(h);
}
END_TEST

START_TEST(http2_via_alpn)
{
    start();
    resp_t r;
    ck_assert_int_eq(notify("exists", token, true, &r), 200);
    ck_assert_int_eq(r.version, CURL_HTTP_VERSION_2_0);
    ck_assert_uint_eq(n_notes(), 1);
}
END_TEST

START_TEST(admin_health_readiness_and_metrics)
{
    start();
    resp_t r;
    ck_assert_int_eq(notify("exists", token, false, &r), 200);
    ck_assert_int_eq(notify("exists", "bad", false, &r), 403);
    ck_assert_int_eq(admin_get("/healthz", &r), 200);
    ck_assert_int_eq(admin_get("/readyz", &r), 200);
    fake.ready = false;
    ck_assert_int_eq(admin_get("/readyz", &r), 503);
    ck_assert_str_eq(r.body, "store not open\n");
    ck_assert_int_eq(admin_get("/metrics", &r), 200);
    ck_assert_str_eq(r.ctype, "text/plain; version=0.0.4; charset=utf-8");
    ck_assert_ptr_nonnull(strstr(r.body, "bm_gateway_notifications_total{result=\"ok\"} 1\n"));
    ck_assert_ptr_nonnull(
        strstr(r.body, "bm_gateway_notifications_total{result=\"bad_token\"} 1\n"));
    ck_assert_ptr_nonnull(strstr(r.body, "bm_gateway_commit_batches_total 1\n"));
    ck_assert_ptr_nonnull(strstr(r.body, "bm_gateway_commit_seconds_count 1\n"));
    ck_assert_ptr_nonnull(strstr(r.body, "# TYPE bm_gateway_connections gauge\n"));
    ck_assert_int_eq(admin_get("/google/notify", &r), 404);
    ck_assert_int_eq(
        request("POST", "http", bm_gateway_admin_port(gw), "/metrics", NULL, "", false, &r), 405);
}
END_TEST

/* The admin listener holds at most 64 connections (descriptors are shared with
 * the store and curl): the next is closed at once; once they go, it answers. */
START_TEST(admin_connections_are_bounded)
{
    start();
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)bm_gateway_admin_port(gw)),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int held[64], extra = -1;
    for (int i = 0; i < 64; i++) {
        held[i] = socket(AF_INET, SOCK_STREAM, 0);
        ck_assert_int_ge(held[i], 0);
        ck_assert_int_eq(connect(held[i], (struct sockaddr *)&sa, sizeof(sa)), 0);
    }
    usleep(200 * 1000); /* accepted by the admin loop */
    extra = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_eq(connect(extra, (struct sockaddr *)&sa, sizeof(sa)), 0);
    struct pollfd pfd = {.fd = extra, .events = POLLIN};
    ck_assert_int_eq(poll(&pfd, 1, 5000), 1);
    char c;
    ck_assert_int_eq((int)recv(extra, &c, 1, 0), 0); /* closed, nothing said */
    pfd.fd = held[0];
    ck_assert_int_eq(poll(&pfd, 1, 0), 0); /* the held ones stay open */
    close(extra);
    for (int i = 0; i < 64; i++)
        close(held[i]);
    bool accepted = false; /* once the closes reach the loop, a new one stays open */
    for (int tries = 0; tries < 50 && !accepted; tries++) {
        int s = socket(AF_INET, SOCK_STREAM, 0);
        ck_assert_int_eq(connect(s, (struct sockaddr *)&sa, sizeof(sa)), 0);
        pfd.fd = s;
        accepted = poll(&pfd, 1, 200) == 0;
        close(s);
    }
    ck_assert(accepted);
    resp_t r;
    ck_assert_int_eq(admin_get("/healthz", &r), 200);
}
END_TEST

START_TEST(stop_with_requests_in_flight_is_bounded)
{
    start();
    fake.delay_ms = 300;
    pthread_t t[4];
    client_t cl[4];
    for (int i = 0; i < 4; i++) {
        cl[i] = (client_t){.n = 1};
        ck_assert_int_eq(pthread_create(&t[i], NULL, client_main, &cl[i]), 0);
    }
    /* an idle keep-alive connection too: the drain must not wait for its timeout */
    CURL *idle = curl_easy_init();
    resp_t r;
    char url[128];
    snprintf(url, sizeof(url), "https://127.0.0.1:%d/healthz", bm_gateway_port(gw));
    ck_assert_int_eq(perform(idle, "GET", url, NULL, NULL, false, &r), CURLE_OK);
    usleep(150 * 1000);
    int64_t t0 = bm_mono_ms();
    bm_gateway_stop(gw);
    int64_t took = bm_mono_ms() - t0;
    ck_assert_msg(took < 2500, "stop took %lld ms", (long long)took);
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(pthread_join(t[i], NULL), 0);
        ck_assert_int_eq(cl[i].last_status, 200); /* in flight: answered, not dropped */
    }
    curl_easy_cleanup(idle);
}
END_TEST

Suite *make_suite(void)
{
    Suite *s = suite_create("gateway");
    TCase *tc = tcase_create("gateway");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, valid_notification_is_committed_once);
    tcase_add_test(tc, sync_state_answers_without_a_note);
    tcase_add_test(tc, wrong_token_is_refused_and_never_logged);
    tcase_add_test(tc, unknown_channel_status_comes_from_the_callback);
    tcase_add_test(tc, missing_or_malformed_headers_are_400);
    tcase_add_test(tc, routes_methods_and_paths);
    tcase_add_test(tc, body_over_the_cap_is_413);
    tcase_add_test(tc, slow_commit_answers_503_and_survives_the_late_answer);
    tcase_add_test(tc, failing_commit_answers_503);
    tcase_add_test(tc, concurrent_notifications_are_group_committed);
    tcase_add_test(tc, non_loopback_without_cert_refuses_to_start);
    tcase_add_test(tc, http2_via_alpn);
    tcase_add_test(tc, admin_health_readiness_and_metrics);
    tcase_add_test(tc, admin_connections_are_bounded);
    tcase_add_test(tc, stop_with_requests_in_flight_is_bounded);
    suite_add_tcase(s, tc);
    return s;
}

#include "../check_main.h"
