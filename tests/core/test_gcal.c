/*
 * tests/core/test_gcal.c: the Google client. Pure helpers (escaping, error
 * parsing; the batch codec is in test_batch.c, backoff and the bucket in
 * test_retry.c) and the HTTP behaviour (paging, 401 refresh,
 * invalid_grant, retries, stop, caps, secrets) against a scripted loopback server
 * in this file.
 */
#include "core/batch.h"
#include "core/gcal.h"
#include "core/log.h"
#include "core/oauth.h"
#include "core/util.h"
#include "emulator/harness.h"
#include "google_batch.h"
#include "tests/core/wipe_probe.h"

#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* ---------------------------------------------------------------- escaping */

START_TEST(escape_ids)
{
    char *s = bm_gcal_escape("alice@example.com");
    ck_assert_str_eq(s, "alice%40example.com");
    free(s);
    s = bm_gcal_escape("en.usa#holiday@group.v.calendar.google.com");
    ck_assert_str_eq(s, "en.usa%23holiday%40group.v.calendar.google.com");
    free(s);
    s = bm_gcal_escape("a b/c?d=e&f+g%h~i_j-k");
    ck_assert_str_eq(s, "a%20b%2Fc%3Fd%3De%26f%2Bg%25h~i_j-k");
    free(s);
    s = bm_gcal_escape("CAESCgoIp-7t5Y3VhAMaAQ==");
    ck_assert_str_eq(s, "CAESCgoIp-7t5Y3VhAMaAQ%3D%3D");
    free(s);
    s = bm_gcal_escape("caf\xc3\xa9");
    ck_assert_str_eq(s, "caf%C3%A9");
    free(s);
    s = bm_gcal_escape("");
    ck_assert_str_eq(s, "");
    free(s);
    s = bm_gcal_escape(NULL);
    ck_assert_str_eq(s, "");
    free(s);
}
END_TEST

START_TEST(url_path)
{
    const char *cases[][2] = {
        {"https://www.googleapis.com/calendar/v3", "/calendar/v3"},
        {"https://www.googleapis.com/calendar/v3/", "/calendar/v3"},
        {"http://127.0.0.1:8089/calendar/v3", "/calendar/v3"},
        {"http://127.0.0.1:8089", ""},
        {"http://127.0.0.1:8089/", ""},
        {"http://h/x/y?q=1", "/x/y"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *p = bm_gcal_url_path(cases[i][0]);
        ck_assert_str_eq(p, cases[i][1]);
        free(p);
    }
}
END_TEST

START_TEST(error_parse)
{
    char reason[64], message[128];
    bm_gcal_error_parse("{\"error\":{\"errors\":[{\"domain\":\"usageLimits\",\"reason\":"
                        "\"rateLimitExceeded\",\"message\":\"Rate Limit Exceeded\"}],"
                        "\"code\":403,\"message\":\"Rate Limit Exceeded\"}}",
                        reason, sizeof(reason), message, sizeof(message));
    ck_assert_str_eq(reason, "rateLimitExceeded");
    ck_assert_str_eq(message, "Rate Limit Exceeded");
    bm_gcal_error_parse("{\"error\":\"invalid_grant\",\"error_description\":\"Token has been "
                        "expired or revoked.\"}",
                        reason, sizeof(reason), message, sizeof(message));
    ck_assert_str_eq(reason, "invalid_grant");
    ck_assert_str_eq(message, "Token has been expired or revoked.");
    bm_gcal_error_parse("{\"error\":{\"code\":404,\"message\":\"Not Found\"}}", reason,
                        sizeof(reason), message, sizeof(message));
    ck_assert_str_eq(reason, "");
    ck_assert_str_eq(message, "Not Found");
    bm_gcal_error_parse("<html>502</html>", reason, sizeof(reason), message, sizeof(message));
    ck_assert_str_eq(reason, "");
    ck_assert_str_eq(message, "");
    bm_gcal_error_parse(NULL, reason, sizeof(reason), message, sizeof(message));
    ck_assert_str_eq(reason, "");
}
END_TEST

/* ---------------------------------------------------------------- loopback server */

typedef struct fake_resp {
    int status;
    const char *headers; /* extra header lines, each ending in \r\n, or NULL */
    const char *body;
    size_t big; /* when nonzero: a body of this many 'a's */
} fake_resp_t;

/* More of a scripted answer, by its index (set after fake_start, before fake_script). */
typedef struct fake_shape {
    size_t nest;    /* when nonzero: a body of this many '[', then as many ']' */
    bool nest_open; /* ... without the ']' */
    size_t dribble; /* when nonzero: the body in pieces of this many bytes */
} fake_shape_t;

/* Writes n bytes of c (nest bodies: brackets). 0 on success. */
static int write_fill(int fd, char c, size_t n)
{
    char chunk[65536];
    memset(chunk, c, sizeof(chunk));
    for (size_t sent = 0; sent < n;) {
        size_t k = n - sent < sizeof(chunk) ? n - sent : sizeof(chunk);
        ssize_t w = write(fd, chunk, k);
        if (w <= 0)
            return -1;
        sent += (size_t)w;
    }
    return 0;
}

#define FAKE_MAX 32

typedef struct fake {
    int lfd;
    int port;
    pthread_t th;
    fake_resp_t resps[FAKE_MAX];
    fake_shape_t shapes[FAKE_MAX];
    int n_resps;
    int next;
    char reqs[FAKE_MAX][16384];
    int n_reqs;
    int n_conns;
} fake_t;

static fake_t fake;

static void *fake_main(void *ud)
{
    fake_t *f = ud;
    for (;;) {
        int fd = accept(f->lfd, NULL, NULL);
        if (fd < 0)
            return NULL;
        f->n_conns++;
        char buf[1 << 16];
        size_t have = 0;
        for (;;) {
            char *hend;
            while ((hend = memmem(buf, have, "\r\n\r\n", 4)) == NULL) {
                ssize_t r = read(fd, buf + have, sizeof(buf) - have - 1);
                if (r <= 0)
                    goto closed;
                have += (size_t)r;
            }
            size_t hlen = (size_t)(hend - buf) + 4;
            buf[have] = '\0';
            size_t clen = 0;
            char *cl = strcasestr(buf, "\r\nContent-Length:");
            if (cl != NULL && cl < hend)
                clen = strtoul(cl + 17, NULL, 10);
            while (have < hlen + clen) {
                ssize_t r = read(fd, buf + have, sizeof(buf) - have - 1);
                if (r <= 0)
                    goto closed;
                have += (size_t)r;
            }
            if (f->n_reqs < FAKE_MAX) {
                size_t n =
                    hlen + clen < sizeof(f->reqs[0]) - 1 ? hlen + clen : sizeof(f->reqs[0]) - 1;
                memcpy(f->reqs[f->n_reqs], buf, n);
                f->reqs[f->n_reqs][n] = '\0';
                f->n_reqs++;
            }
            memmove(buf, buf + hlen + clen, have - hlen - clen);
            have -= hlen + clen;
            fake_shape_t sh = f->next < f->n_resps ? f->shapes[f->next] : (fake_shape_t){0};
            fake_resp_t r = f->next < f->n_resps
                                ? f->resps[f->next++]
                                : (fake_resp_t){500, NULL, "{\"error\":\"script ended\"}", 0};
            size_t blen = r.big     ? r.big
                          : sh.nest ? (sh.nest_open ? sh.nest : 2 * sh.nest)
                                    : strlen(r.body != NULL ? r.body : "");
            char head[1024];
            int hn = snprintf(head, sizeof(head), "HTTP/1.1 %d X\r\nContent-Length: %zu\r\n%s\r\n",
                              r.status, blen, r.headers != NULL ? r.headers : "");
            if (write(fd, head, (size_t)hn) != hn)
                goto closed;
            if (r.big) {
                if (write_fill(fd, 'a', blen) != 0)
                    goto closed;
            } else if (sh.nest) {
                if (write_fill(fd, '[', sh.nest) != 0 ||
                    (!sh.nest_open && write_fill(fd, ']', sh.nest) != 0))
                    goto closed;
            } else if (sh.dribble > 0) {
                for (size_t sent = 0; sent < blen;) {
                    size_t k = blen - sent < sh.dribble ? blen - sent : sh.dribble;
                    if (write(fd, r.body + sent, k) != (ssize_t)k)
                        goto closed;
                    sent += k;
                    struct timespec ts = {0, 2000000}; /* 2 ms: the client reads piece by piece */
                    nanosleep(&ts, NULL);
                }
            } else if (blen > 0 && write(fd, r.body, blen) != (ssize_t)blen) {
                goto closed;
            }
        }
closed:
        close(fd);
    }
}

static void fake_start(void)
{
    memset(&fake, 0, sizeof(fake));
    fake.lfd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fake.lfd, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ck_assert_int_eq(bind(fake.lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    socklen_t sl = sizeof(sa);
    ck_assert_int_eq(getsockname(fake.lfd, (struct sockaddr *)&sa, &sl), 0);
    fake.port = ntohs(sa.sin_port);
    ck_assert_int_eq(listen(fake.lfd, 16), 0);
    signal(SIGPIPE, SIG_IGN); /* the client may hang up mid-body */
}

static void fake_script(const fake_resp_t *r, int n)
{
    ck_assert_int_le(n, FAKE_MAX);
    memcpy(fake.resps, r, sizeof(*r) * (size_t)n);
    fake.n_resps = n;
    ck_assert_int_eq(pthread_create(&fake.th, NULL, fake_main, &fake), 0);
}

static const volatile int *test_stop;

static bm_gcal_t *client(int max_retries)
{
    char api[64], batch[64], token[64], err[256] = "";
    snprintf(api, sizeof(api), "http://127.0.0.1:%d/calendar/v3", fake.port);
    snprintf(batch, sizeof(batch), "http://127.0.0.1:%d/batch/calendar/v3", fake.port);
    snprintf(token, sizeof(token), "http://127.0.0.1:%d/token", fake.port);
    bm_gcal_opts_t o = {
        .api_base_url = api,
        .batch_url = batch,
        .token_url = token,
        .client_id = "emu-client-id",
        .client_secret = "emu-client-secret",
        .connect_timeout_ms = 2000,
        .timeout_ms = 10000,
        .max_retries = max_retries,
        .backoff_base_ms = 1,
        .backoff_cap_ms = 5,
        .quota_backoff_ms = 1,
        .stop = test_stop,
    };
    bm_gcal_t *g = NULL;
    ck_assert_msg(bm_gcal_new(&o, &g, err, sizeof(err)) == 0, "%s", err);
    return g;
}

#define TOKEN_OK(tok)                                                                              \
    {                                                                                              \
        200, "Content-Type: application/json\r\n",                                                 \
            "{\"access_token\":\"" tok                                                             \
            "\",\"expires_in\":3599,\"scope\":\"https://www.googleapis.com/"                       \
            "auth/calendar\",\"token_type\":\"Bearer\"}",                                          \
            0                                                                                      \
    }

typedef struct pages {
    int calls;
    size_t total;
    char ids[16][32];
} pages_t;

static int on_page(void *ud, bm_event_t *events, size_t n)
{
    pages_t *p = ud;
    p->calls++;
    for (size_t i = 0; i < n; i++) {
        if (p->total < 16)
            snprintf(p->ids[p->total], sizeof(p->ids[0]), "%s", events[i].id);
        p->total++;
    }
    return 0;
}

START_TEST(list_events_pages)
{
    fake_start();
    fake_resp_t script[] = {
        TOKEN_OK("ya29.access-one"),
        {200, "Content-Type: application/json; charset=UTF-8\r\n",
         "{\"kind\":\"calendar#events\",\"summary\":\"alice@example.com\",\"timeZone\":\"Europe/"
         "Berlin\",\"nextPageToken\":\"CiAKGjBpNDd2Nmp2Zml2cXRwYjBpOXA=\",\"items\":["
         "{\"id\":\"ev1\",\"status\":\"confirmed\",\"start\":{\"dateTime\":\"2026-11-24T10:00:00+"
         "01:00\"},\"end\":{\"dateTime\":\"2026-11-24T11:00:00+01:00\"}},"
         "{\"id\":\"bad\",\"start\":{\"dateTime\":\"never\"}},"
         "{\"id\":\"ev2\",\"status\":\"cancelled\"}]}",
         0},
        {200, NULL, "{\"nextPageToken\":\"page3\",\"items\":[]}", 0},
        {200, NULL,
         "{\"items\":[{\"id\":\"ev3\",\"start\":{\"date\":\"2026-11-25\"},\"end\":{\"date\":"
         "\"2026-11-26\"}}],\"nextSyncToken\":\"CPDAlvWDx70CEPDAlvWDx70CGAU=\"}",
         0},
    };
    fake_script(script, 4);
    bm_gcal_t *g = client(2);
    bm_gcal_account_t a;
    bm_gcal_account_init(&a, "1//refresh-alice", "alice@example.com");
    bm_gcal_list_params_t p = {
        .time_min = 1795478400, .time_max = 1795564800, .single_events = false};
    pages_t pg = {0};
    char *sync = NULL, err[256] = "";
    int rc =
        bm_gcal_list_events(g, &a, "alice@example.com", &p, on_page, &pg, &sync, err, sizeof(err));
    ck_assert_msg(rc == 0, "%d %s", rc, err);
    ck_assert_str_eq(sync, "CPDAlvWDx70CEPDAlvWDx70CGAU=");
    ck_assert_int_eq(pg.calls, 2); /* the empty page is not reported */
    ck_assert_int_eq(pg.total, 3); /* "bad" skipped */
    ck_assert_str_eq(pg.ids[0], "ev1");
    ck_assert_str_eq(pg.ids[1], "ev2");
    ck_assert_str_eq(pg.ids[2], "ev3");
    ck_assert_int_eq(fake.n_reqs, 4);
    ck_assert_ptr_nonnull(strstr(fake.reqs[0], "POST /token HTTP/1.1"));
    ck_assert_ptr_nonnull(strstr(fake.reqs[0], "grant_type=refresh_token"));
    ck_assert_ptr_nonnull(strstr(fake.reqs[0], "refresh_token=1%2F%2Frefresh-alice"));
    ck_assert_ptr_nonnull(strstr(fake.reqs[0], "client_secret=emu-client-secret"));
    ck_assert_msg(strstr(fake.reqs[1], "GET /calendar/v3/calendars/alice%40example.com/events?"
                                       "maxResults=2500&timeMin=2026-11-24T00:00:00Z&timeMax="
                                       "2026-11-25T00:00:00Z HTTP/1.1") != NULL,
                  "%s", fake.reqs[1]);
    ck_assert_ptr_nonnull(strstr(fake.reqs[1], "Authorization: Bearer ya29.access-one"));
    ck_assert_ptr_nonnull(
        strstr(fake.reqs[2], "&pageToken=CiAKGjBpNDd2Nmp2Zml2cXRwYjBpOXA%3D HTTP/1.1"));
    ck_assert_ptr_nonnull(strstr(fake.reqs[3], "&pageToken=page3 HTTP/1.1"));
    ck_assert_ptr_null(strstr(fake.reqs[1], "pageToken"));
    ck_assert_int_eq(fake.n_conns, 1); /* one connection reused */
    bm_gcal_stats_t st;
    bm_gcal_stats(g, &st);
    ck_assert_int_eq(st.requests, 4);
    ck_assert_int_eq(st.list_calls, 3);
    ck_assert_int_eq(st.token_calls, 1);
    ck_assert_int_eq(st.retries, 0);
    free(sync);
    bm_gcal_account_dispose(&a);
    bm_gcal_free(g);
}
END_TEST

START_TEST(list_events_sync_token_gone)
{
    fake_start();
    fake_resp_t script[] = {
        TOKEN_OK("ya29.access-one"),
        {410, "Content-Type: application/json\r\n",
         "{\"error\":{\"errors\":[{\"domain\":\"global\",\"reason\":\"fullSyncRequired\","
         "\"message\":\"Sync token is no longer valid, a full sync is required.\"}],\"code\":410,"
         "\"message\":\"Sync token is no longer valid, a full sync is required.\"}}",
         0},
    };
    fake_script(script, 2);
    bm_gcal_t *g = client(2);
    bm_gcal_account_t a;
    bm_gcal_account_init(&a, "1//refresh-alice", NULL);
    bm_gcal_list_params_t p = {.sync_token = "CPDA+/=",
                               .time_min = 1795478400,
                               .show_deleted = true,
                               .single_events = true,
                               .max_results = 50};
    char *sync = (char *)"x", err[256] = "";
    ck_assert_int_eq(
        bm_gcal_list_events(g, &a, "primary", &p, on_page, NULL, &sync, err, sizeof(err)),
        BM_EGONE);
    ck_assert_ptr_null(sync);
    ck_assert_ptr_nonnull(strstr(err, "fullSyncRequired"));
    ck_assert_ptr_nonnull(strstr(fake.reqs[1],
                                 "GET /calendar/v3/calendars/primary/events?maxResults=50&"
                                 "syncToken=CPDA%2B%2F%3D&showDeleted=true&singleEvents=true "
                                 "HTTP/1.1"));
    ck_assert_ptr_null(strstr(fake.reqs[1], "timeMin")); /* never with a sync token */
    bm_gcal_account_dispose(&a);
    bm_gcal_free(g);
}
END_TEST

START_TEST(unauthorized_refreshes_once)
{
    fake_start();
    fake_resp_t script[] = {
        TOKEN_OK("ya29.first-token"),
        {401, NULL,
         "{\"error\":{\"errors\":[{\"domain\":\"global\",\"reason\":\"authError\",\"message\":"
         "\"Invalid Credentials\",\"locationType\":\"header\",\"location\":\"Authorization\"}],"
         "\"code\":401,\"message\":\"Invalid Credentials\"}}",
         0},
        TOKEN_OK("ya29.second-token"),
        {200, NULL, "{\"kind\":\"api#channel\",\"id\":\"ch1\",\"resourceId\":\"r1\"}", 0},
        /* a second call: still 401 after a refresh gives up */
        {401, NULL, "{\"error\":{\"code\":401,\"message\":\"Invalid Credentials\"}}", 0},
        TOKEN_OK("ya29.third-token"),
        {401, NULL, "{\"error\":{\"code\":401,\"message\":\"Invalid Credentials\"}}", 0},
    };
    fake_script(script, 7);
    bm_gcal_t *g = client(2);
    bm_gcal_account_t a;
    bm_gcal_account_init(&a, "1//refresh-alice", NULL);
    long status = 0;
    char *body = NULL, err[256] = "";
    int rc =
        bm_gcal_call(g, &a, "POST", "/calendars/primary/events/watch",
                     "{\"id\":\"ch1\",\"type\":\"web_hook\"}", &status, &body, err, sizeof(err));
    ck_assert_msg(rc == 0, "%s", err);
    ck_assert_int_eq(status, 200);
    ck_assert_ptr_nonnull(strstr(body, "api#channel"));
    free(body);
    ck_assert_ptr_nonnull(strstr(fake.reqs[1], "Bearer ya29.first-token"));
    ck_assert_ptr_nonnull(strstr(fake.reqs[3], "Bearer ya29.second-token"));
    ck_assert_ptr_nonnull(strstr(fake.reqs[3], "Content-Type: application/json"));
    ck_assert_ptr_nonnull(strstr(fake.reqs[3], "{\"id\":\"ch1\",\"type\":\"web_hook\"}"));
    ck_assert_str_eq(a.access_token, "ya29.second-token");

    rc = bm_gcal_call(g, &a, "GET", "calendars/primary", NULL, &status, NULL, err, sizeof(err));
    ck_assert_int_eq(rc, BM_EAUTH);
    ck_assert_int_eq(status, 401);
    ck_assert(!a.needs_login);
    ck_assert_ptr_null(strstr(err, "ya29"));
    bm_gcal_stats_t st;
    bm_gcal_stats(g, &st);
    ck_assert_int_eq(st.token_calls, 3);
    ck_assert_int_eq(st.requests, 7);
    bm_gcal_account_dispose(&a);
    bm_gcal_free(g);
}
END_TEST

START_TEST(invalid_grant_needs_login)
{
    fake_start();
    fake_resp_t script[] = {
        {400, "Content-Type: application/json\r\n",
         "{\"error\":\"invalid_grant\",\"error_description\":\"Token has been expired or "
         "revoked.\"}",
         0},
    };
    fake_script(script, 1);
    bm_gcal_t *g = client(3);
    bm_gcal_account_t a;
    bm_gcal_account_init(&a, "1//revoked-refresh", NULL);
    char err[256] = "";
    ck_assert_int_eq(bm_gcal_refresh(g, &a, err, sizeof(err)), BM_EAUTH);
    ck_assert(a.needs_login);
    ck_assert_ptr_nonnull(strstr(err, "invalid_grant"));
    ck_assert_ptr_nonnull(strstr(err, "log in again"));
    ck_assert_ptr_null(strstr(err, "revoked-refresh"));
    /* later calls fail fast, without a request */
    ck_assert_int_eq(bm_gcal_call(g, &a, "GET", "/x", NULL, NULL, NULL, err, sizeof(err)),
                     BM_EAUTH);
    bm_gcal_req_t r = {.method = "GET", .path = "/x"};
    ck_assert_int_eq(bm_gcal_batch(g, &a, &r, 1, err, sizeof(err)), BM_EAUTH);
    ck_assert_int_eq(fake.n_reqs, 1);
    bm_gcal_account_dispose(&a);
    bm_gcal_free(g);
}
END_TEST

START_TEST(transient_errors_retried)
{
    fake_start();
    fake_resp_t script[] = {
        TOKEN_OK("ya29.access-one"),
        {503, NULL, "{\"error\":{\"errors\":[{\"reason\":\"backendError\"}],\"code\":503}}", 0},
        {403, NULL,
         "{\"error\":{\"errors\":[{\"domain\":\"usageLimits\",\"reason\":"
         "\"userRateLimitExceeded\",\"message\":\"Rate Limit Exceeded\"}],\"code\":403}}",
         0},
        {429, "Retry-After: 0\r\n",
         "{\"error\":{\"errors\":[{\"reason\":\"rateLimitExceeded\"}],\"code\":429}}", 0},
        {403, NULL,
         "{\"error\":{\"errors\":[{\"domain\":\"usageLimits\",\"reason\":\"quotaExceeded\","
         "\"message\":\"Calendar usage limits exceeded.\"}],\"code\":403}}",
         0},
        {500, NULL, "", 0},
        {200, NULL, "{\"id\":\"ok\"}", 0},
    };
    fake_script(script, 7);
    bm_gcal_t *g = client(5);
    bm_gcal_account_t a;
    bm_gcal_account_init(&a, "1//refresh-alice", NULL);
    long status = 0;
    char *body = NULL, err[256] = "";
    int rc = bm_gcal_call(g, &a, "GET", "/calendars/primary/events/ok", NULL, &status, &body, err,
                          sizeof(err));
    ck_assert_msg(rc == 0, "%s", err);
    ck_assert_str_eq(body, "{\"id\":\"ok\"}");
    free(body);
    bm_gcal_stats_t st;
    bm_gcal_stats(g, &st);
    ck_assert_int_eq(st.retries, 5);
    ck_assert_int_eq(st.requests, 7);
    bm_gcal_account_dispose(&a);
    bm_gcal_free(g);
}
END_TEST

START_TEST(transient_gives_up)
{
    fake_start();
    fake_resp_t script[] = {
        TOKEN_OK("ya29.access-one"),
        {502, NULL, "", 0},
        {502, NULL, "", 0},
        {502, NULL, "", 0},
    };
    fake_script(script, 4);
    bm_gcal_t *g = client(2);
    bm_gcal_account_t a;
    bm_gcal_account_init(&a, "1//refresh-alice", NULL);
    char err[256] = "";
    ck_assert_int_eq(
        bm_gcal_call(g, &a, "DELETE", "/calendars/c/events/e", NULL, NULL, NULL, err, sizeof(err)),
        BM_ETRANSIENT);
    ck_assert_ptr_nonnull(strstr(err, "HTTP 502"));
    ck_assert_ptr_nonnull(strstr(err, "3 attempts"));
    ck_assert_ptr_nonnull(strstr(fake.reqs[1], "DELETE /calendar/v3/calendars/c/events/e"));
    bm_gcal_account_dispose(&a);
    bm_gcal_free(g);
}
END_TEST

START_TEST(permanent_errors)
{
    fake_start();
    fake_resp_t script[] = {
        TOKEN_OK("ya29.access-one"),
        {400, NULL,
         "{\"error\":{\"errors\":[{\"domain\":\"calendar\",\"reason\":\"timeRangeEmpty\","
         "\"message\":\"The specified time range is empty.\"}],\"code\":400,\"message\":\"The "
         "specified time range is empty.\"}}",
         0},
        {404, NULL,
         "{\"error\":{\"errors\":[{\"reason\":\"notFound\"}],\"code\":404,"
         "\"message\":\"Not Found\"}}",
         0},
        {409, NULL, "{\"error\":{\"errors\":[{\"reason\":\"duplicate\"}],\"code\":409}}", 0},
        {403, NULL, "{\"error\":{\"errors\":[{\"reason\":\"forbidden\"}],\"code\":403}}", 0},
        {204, NULL, "", 0},
    };
    fake_script(script, 6);
    bm_gcal_t *g = client(3);
    bm_gcal_account_t a;
    bm_gcal_account_init(&a, "1//refresh-alice", NULL);
    long status = 0;
    char *body = NULL, err[256] = "";
    ck_assert_int_eq(bm_gcal_call(g, &a, "GET", "/a", NULL, &status, &body, err, sizeof(err)),
                     BM_EAPI);
    ck_assert_int_eq(status, 400);
    ck_assert_msg(strstr(err, "timeRangeEmpty") != NULL, "%s", err);
    ck_assert_ptr_nonnull(strstr(err, "The specified time range is empty."));
    ck_assert_ptr_nonnull(strstr(body, "timeRangeEmpty"));
    free(body);
    ck_assert_int_eq(bm_gcal_call(g, &a, "GET", "/b", NULL, &status, NULL, err, sizeof(err)),
                     BM_ENOTFOUND);
    ck_assert_int_eq(status, 404);
    ck_assert_int_eq(bm_gcal_call(g, &a, "POST", "/c", "{}", &status, NULL, err, sizeof(err)),
                     BM_EEXIST);
    ck_assert_int_eq(bm_gcal_call(g, &a, "GET", "/d", NULL, &status, NULL, err, sizeof(err)),
                     BM_EAPI);
    ck_assert_int_eq(status, 403);
    ck_assert_int_eq(bm_gcal_call(g, &a, "DELETE", "/e", NULL, &status, &body, err, sizeof(err)),
                     0);
    ck_assert_int_eq(status, 204);
    ck_assert_str_eq(body, "");
    free(body);
    bm_gcal_stats_t st;
    bm_gcal_stats(g, &st);
    ck_assert_int_eq(st.retries, 0);
    bm_gcal_account_dispose(&a);
    bm_gcal_free(g);
}
END_TEST

START_TEST(batch_over_http)
{
    fake_start();
    static char resp_headers[128];
    snprintf(resp_headers, sizeof(resp_headers),
             "Content-Type: multipart/mixed; boundary=batch_nHlLLA7SZZc_AAjOXVvnmkQ\r\n");
    fake_resp_t script[] = {
        TOKEN_OK("ya29.access-one"),
        {503, NULL, "", 0},
        {200, resp_headers, GOOGLE_BATCH, 0},
    };
    fake_script(script, 3);
    bm_gcal_t *g = client(3);
    bm_gcal_account_t a;
    bm_gcal_account_init(&a, "1//refresh-alice", NULL);
    bm_gcal_req_t reqs[3] = {
        {.method = "POST", .path = "/calendars/a%40b/events?sendUpdates=none", .body = "{}"},
        {.method = "DELETE", .path = "/calendars/a%40b/events/bm02?sendUpdates=none"},
        {.method = "POST", .path = "/calendars/a%40b/events?sendUpdates=none", .body = "{}"},
    };
    char err[256] = "";
    ck_assert_msg(bm_gcal_batch(g, &a, reqs, 3, err, sizeof(err)) == 0, "%s", err);
    ck_assert_int_eq(reqs[0].status, 200);
    ck_assert_int_eq(reqs[1].status, 204);
    ck_assert_int_eq(reqs[2].status, 409);
    ck_assert_str_eq(reqs[2].reason, "duplicate");
    const char *req = fake.reqs[2];
    ck_assert_ptr_nonnull(strstr(req, "POST /batch/calendar/v3 HTTP/1.1"));
    ck_assert_ptr_nonnull(strstr(req, "Content-Type: multipart/mixed; boundary=batch_"));
    ck_assert_ptr_nonnull(strstr(req, "Content-ID: <item-3>"));
    ck_assert_ptr_nonnull(
        strstr(req, "DELETE /calendar/v3/calendars/a%40b/events/bm02?sendUpdates=none HTTP/1.1"));
    bm_gcal_stats_t st;
    bm_gcal_stats(g, &st);
    ck_assert_int_eq(st.batch_calls, 2);
    ck_assert_int_eq(st.batch_parts, 6);
    ck_assert_int_eq(st.retries, 1);
    bm_gcal_reqs_dispose(reqs, 3);

    static bm_gcal_req_t too_many[BM_GCAL_MAX_BATCH + 1];
    ck_assert_int_eq(bm_gcal_batch(g, &a, too_many, BM_GCAL_MAX_BATCH + 1, err, sizeof(err)),
                     BM_EINVAL);
    ck_assert_int_eq(bm_gcal_batch(g, &a, reqs, 0, err, sizeof(err)), 0);
    bm_gcal_account_dispose(&a);
    bm_gcal_free(g);
}
END_TEST

static int on_calendar(void *ud, const bm_gcal_calendar_t *c)
{
    char *out = ud;
    snprintf(out + strlen(out), 512 - strlen(out), "%s|%s|%s|%s|%d;", c->id,
             c->summary ? c->summary : "-", c->time_zone ? c->time_zone : "-", c->access_role,
             c->primary);
    return 0;
}

START_TEST(list_calendars)
{
    fake_start();
    fake_resp_t script[] = {
        TOKEN_OK("ya29.access-one"),
        {200, NULL,
         "{\"kind\":\"calendar#calendarList\",\"nextPageToken\":\"p2\",\"items\":[{\"kind\":"
         "\"calendar#calendarListEntry\",\"id\":\"alice@example.com\",\"summary\":"
         "\"alice@example.com\",\"timeZone\":\"Europe/Berlin\",\"accessRole\":\"owner\","
         "\"primary\":true}]}",
         0},
        {200, NULL,
         "{\"items\":[{\"id\":\"en.usa#holiday@group.v.calendar.google.com\",\"summary\":"
         "\"Holidays\",\"summaryOverride\":\"US Holidays\",\"accessRole\":\"reader\"}]}",
         0},
    };
    fake_script(script, 3);
    bm_gcal_t *g = client(1);
    bm_gcal_account_t a;
    bm_gcal_account_init(&a, "1//refresh-alice", NULL);
    char out[512] = "", err[256] = "";
    ck_assert_msg(bm_gcal_list_calendars(g, &a, on_calendar, out, err, sizeof(err)) == 0, "%s",
                  err);
    ck_assert_str_eq(out, "alice@example.com|alice@example.com|Europe/Berlin|owner|1;"
                          "en.usa#holiday@group.v.calendar.google.com|US Holidays|-|reader|0;");
    ck_assert_ptr_nonnull(
        strstr(fake.reqs[1], "GET /calendar/v3/users/me/calendarList?maxResults=250 HTTP"));
    ck_assert_ptr_nonnull(strstr(fake.reqs[2], "&pageToken=p2 HTTP"));
    bm_gcal_account_dispose(&a);
    bm_gcal_free(g);
}
END_TEST

static volatile int stop_flag;

START_TEST(stop_before_call)
{
    fake_start();
    fake_resp_t script[] = {
        TOKEN_OK("ya29.access-one"),
        {200, NULL, "{}", 0},
    };
    fake_script(script, 2);
    stop_flag = 1;
    test_stop = &stop_flag;
    bm_gcal_t *g = client(5);
    bm_gcal_account_t a;
    bm_gcal_account_init(&a, "1//refresh-alice", NULL);
    char err[256] = "";
    ck_assert_int_eq(bm_gcal_call(g, &a, "GET", "/x", NULL, NULL, NULL, err, sizeof(err)),
                     BM_ECANCELED);
    bm_gcal_account_dispose(&a);
    bm_gcal_free(g);
    test_stop = NULL;
}
END_TEST

static void *set_stop_later(void *ud)
{
    struct timespec ts = {0, 300 * 1000000L};
    nanosleep(&ts, NULL);
    *(volatile int *)ud = 1;
    return NULL;
}

START_TEST(stop_during_retry_after)
{
    fake_start();
    fake_resp_t script[] = {
        TOKEN_OK("ya29.access-one"),
        {429, "Retry-After: 30\r\n", "", 0},
    };
    fake_script(script, 2);
    stop_flag = 0;
    test_stop = &stop_flag;
    bm_gcal_t *g = client(5);
    bm_gcal_account_t a;
    bm_gcal_account_init(&a, "1//refresh-alice", NULL);
    char err[256] = "";
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, set_stop_later, (void *)&stop_flag), 0);
    ck_assert_int_eq(bm_gcal_call(g, &a, "GET", "/x", NULL, NULL, NULL, err, sizeof(err)),
                     BM_ECANCELED);
    pthread_join(th, NULL);
    /* stopped while waiting out the Retry-After, not before the request */
    bm_gcal_stats_t st;
    bm_gcal_stats(g, &st);
    ck_assert_int_eq(st.requests, 2);
    ck_assert_int_eq(st.retries, 1);
    bm_gcal_account_dispose(&a);
    bm_gcal_free(g);
    test_stop = NULL;
}
END_TEST

START_TEST(response_too_big)
{
    fake_start();
    fake_resp_t script[] = {
        TOKEN_OK("ya29.access-one"),
        {200, NULL, NULL, BM_GCAL_MAX_RESPONSE + 1},
    };
    fake_script(script, 2);
    bm_gcal_t *g = client(2);
    bm_gcal_account_t a;
    bm_gcal_account_init(&a, "1//refresh-alice", NULL);
    char err[256] = "";
    ck_assert_int_eq(bm_gcal_call(g, &a, "GET", "/x", NULL, NULL, NULL, err, sizeof(err)),
                     BM_ETOOBIG);
    bm_gcal_account_dispose(&a);
    bm_gcal_free(g);
}
END_TEST

START_TEST(network_error_is_transient)
{
    /* nothing listens on the port once the socket is closed */
    fake_start();
    close(fake.lfd);
    bm_gcal_t *g = client(1);
    bm_gcal_account_t a;
    bm_gcal_account_init(&a, "1//refresh-alice", NULL);
    char err[256] = "";
    ck_assert_int_eq(bm_gcal_refresh(g, &a, err, sizeof(err)), BM_ETRANSIENT);
    ck_assert_ptr_nonnull(strstr(err, "gave up after 2 attempts"));
    ck_assert_ptr_null(strstr(err, "emu-client-secret"));
    bm_gcal_stats_t st;
    bm_gcal_stats(g, &st);
    ck_assert_int_eq(st.token_calls, 2);
    ck_assert_int_eq(st.retries, 1);
    bm_gcal_account_dispose(&a);
    bm_gcal_free(g);
}
END_TEST

START_TEST(secrets_never_leak)
{
    fake_start();
    /* a hostile token endpoint echoing the secrets back */
    fake_resp_t script[] = {
        {401, NULL,
         "{\"error\":\"invalid_client\",\"error_description\":\"bad emu-client-secret for "
         "1//refresh-alice\"}",
         0},
        TOKEN_OK("ya29.access-one"),
        {400, NULL, "{\"error\":{\"code\":400,\"message\":\"token ya29.access-one is odd\"}}", 0},
        {503, NULL, "{\"error\":{\"code\":503,\"message\":\"ya29.access-one\"}}", 0},
        {503, NULL, "{\"error\":{\"code\":503,\"message\":\"ya29.access-one\"}}", 0},
    };
    fake_script(script, 5);
    FILE *logf = tmpfile();
    ck_assert_ptr_nonnull(logf);
    bm_log_set_stream(logf);
    bm_log_set_level(BM_LOG_DEBUG);
    bm_gcal_t *g = client(1);
    bm_gcal_account_t a;
    bm_gcal_account_init(&a, "1//refresh-alice", "alice@example.com");
    char err[512] = "";
    ck_assert_int_eq(bm_gcal_refresh(g, &a, err, sizeof(err)), BM_EAPI);
    ck_assert_ptr_nonnull(strstr(err, "invalid_client"));
    ck_assert_ptr_null(strstr(err, "emu-client-secret"));
    ck_assert_ptr_null(strstr(err, "refresh-alice"));
    ck_assert_int_eq(bm_gcal_call(g, &a, "GET", "/x", NULL, NULL, NULL, err, sizeof(err)), BM_EAPI);
    ck_assert_ptr_null(strstr(err, "ya29.access-one"));
    ck_assert_ptr_nonnull(strstr(err, "***"));
    ck_assert_int_eq(bm_gcal_call(g, &a, "GET", "/y", NULL, NULL, NULL, err, sizeof(err)),
                     BM_ETRANSIENT);
    bm_log_set_stream(NULL);
    fflush(logf);
    rewind(logf);
    char line[4096];
    int lines = 0;
    while (fgets(line, sizeof(line), logf) != NULL) {
        lines++;
        ck_assert_msg(strstr(line, "ya29.access-one") == NULL, "leak: %s", line);
        ck_assert_msg(strstr(line, "emu-client-secret") == NULL, "leak: %s", line);
        ck_assert_msg(strstr(line, "refresh-alice") == NULL, "leak: %s", line);
    }
    ck_assert_int_gt(lines, 0);
    fclose(logf);
    bm_gcal_account_dispose(&a);
    bm_gcal_free(g);
}
END_TEST

START_TEST(exchange_code)
{
    /* a refresh token longer than any file may hold (BM_OAUTH_REFRESH_TOKEN_MAX) */
    char long_refresh[1024];
    snprintf(long_refresh, sizeof(long_refresh),
             "{\"access_token\":\"ya29.fresh3\",\"expires_in\":3599,\"refresh_token\":\"1//%0*d\"}",
             BM_OAUTH_REFRESH_TOKEN_MAX, 7);
    fake_start();
    fake_resp_t script[] = {
        {200, NULL,
         "{\"access_token\":\"ya29.fresh\",\"expires_in\":3599,\"refresh_token\":\"1//new-"
         "refresh\",\"scope\":\"https://www.googleapis.com/auth/calendar\",\"token_type\":"
         "\"Bearer\"}",
         0},
        {400, NULL, "{\"error\":\"invalid_grant\",\"error_description\":\"Bad Request\"}", 0},
        {200, NULL, "{\"access_token\":\"ya29.fresh2\",\"expires_in\":3599}", 0},
        {200, NULL, long_refresh, 0},
    };
    fake_script(script, 4);
    bm_gcal_t *g = client(1);
    char *rt = NULL, err[256] = "";
    ck_assert_msg(bm_gcal_exchange_code(g, "4/0Adeu5B-code", "verifier-abc_123",
                                        "http://127.0.0.1:8765/", &rt, err, sizeof(err)) == 0,
                  "%s", err);
    ck_assert_str_eq(rt, "1//new-refresh");
    free(rt);
    ck_assert_ptr_nonnull(strstr(fake.reqs[0], "grant_type=authorization_code"));
    ck_assert_ptr_nonnull(strstr(fake.reqs[0], "code=4%2F0Adeu5B-code"));
    ck_assert_ptr_nonnull(strstr(fake.reqs[0], "code_verifier=verifier-abc_123"));
    ck_assert_ptr_nonnull(strstr(fake.reqs[0], "redirect_uri=http%3A%2F%2F127.0.0.1%3A8765%2F"));
    ck_assert_int_eq(
        bm_gcal_exchange_code(g, "used", "v", "http://127.0.0.1:1/", &rt, err, sizeof(err)),
        BM_EAUTH);
    ck_assert_ptr_null(rt);
    ck_assert_int_eq(
        bm_gcal_exchange_code(g, "c", "v", "http://127.0.0.1:1/", &rt, err, sizeof(err)), BM_EAPI);
    ck_assert_ptr_nonnull(strstr(err, "no refresh token"));
    ck_assert_int_eq(
        bm_gcal_exchange_code(g, "c", "v", "http://127.0.0.1:1/", &rt, err, sizeof(err)), BM_EAPI);
    ck_assert_ptr_null(rt);
    ck_assert_msg(strstr(err, "refresh token longer than 512") != NULL, "%s", err);
    bm_gcal_free(g);
}
END_TEST

typedef struct worker {
    bm_gcal_t *g;
    bm_gcal_account_t *a;
    int ok;
} worker_t;

static void *worker_main(void *ud)
{
    worker_t *w = ud;
    for (int i = 0; i < 5; i++) {
        char err[256];
        long status = 0;
        if (bm_gcal_call(w->g, w->a, "GET", "/calendars/primary", NULL, &status, NULL, err,
                         sizeof(err)) == 0 &&
            status == 200)
            w->ok++;
    }
    return NULL;
}

START_TEST(threads_share_one_refresh)
{
    fake_start();
    fake_resp_t script[21];
    script[0] = (fake_resp_t)TOKEN_OK("ya29.shared-token");
    for (int i = 1; i < 21; i++)
        script[i] = (fake_resp_t){200, "Connection: close\r\n", "{\"id\":\"primary\"}", 0};
    script[0].headers = "Connection: close\r\n";
    fake_script(script, 21);
    bm_gcal_t *g = client(0);
    bm_gcal_account_t a;
    bm_gcal_account_init(&a, "1//refresh-alice", NULL);
    worker_t w[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (worker_t){g, &a, 0};
        ck_assert_int_eq(pthread_create(&th[i], NULL, worker_main, &w[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        ck_assert_int_eq(w[i].ok, 5);
    }
    bm_gcal_stats_t st;
    bm_gcal_stats(g, &st);
    ck_assert_int_eq(st.token_calls, 1);
    ck_assert_int_eq(st.requests, 21);
    bm_gcal_account_dispose(&a);
    bm_gcal_free(g);
}
END_TEST

/* ---------------------------------------------------------------- review: more bounds */

/* Sends the log to a temporary file (closed by logged_retry_delay). */
static FILE *log_to_tmpfile(void)
{
    FILE *f = tmpfile();
    ck_assert_ptr_nonnull(f);
    bm_log_set_stream(f);
    bm_log_set_level(BM_LOG_DEBUG);
    return f;
}

/* The delay_ms of the one "retrying" line in the log f; closes f. */
static long logged_retry_delay(FILE *f)
{
    char line[4096];
    long delay = -1;
    int n = 0;
    bm_log_set_stream(NULL);
    fflush(f);
    rewind(f);
    while (fgets(line, sizeof(line), f) != NULL) {
        const char *d = strstr(line, "delay_ms=");
        if (strstr(line, "retrying") != NULL && d != NULL) {
            delay = strtol(d + 9, NULL, 10);
            n++;
        }
    }
    fclose(f);
    ck_assert_int_eq(n, 1);
    return delay;
}

START_TEST(retry_after_with_trailing_whitespace_is_honoured)
{
    /* RFC 9110: optional whitespace around a field value is not part of it. */
    fake_start();
    fake_resp_t script[] = {
        TOKEN_OK("ya29.access-one"),
        {429, "Retry-After: 1 \r\n", "", 0},
        {200, NULL, "{\"id\":\"ok\"}", 0},
    };
    fake_script(script, 3);
    bm_gcal_t *g = client(2);
    bm_gcal_account_t a;
    bm_gcal_account_init(&a, "1//refresh-alice", NULL);
    char err[256] = "";
    FILE *logf = log_to_tmpfile();
    ck_assert_msg(bm_gcal_call(g, &a, "GET", "/x", NULL, NULL, NULL, err, sizeof(err)) == 0, "%s",
                  err);
    long delay = logged_retry_delay(logf);
    ck_assert_msg(delay >= 1000, "retry planned after %ld ms although Google asked for 1 s", delay);
    bm_gcal_account_dispose(&a);
    bm_gcal_free(g);
}
END_TEST

START_TEST(retry_after_http_date_is_honoured)
{
    fake_start();
    char when[64], hdr[96];
    time_t t = time(NULL) + 2;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(when, sizeof(when), "%a, %d %b %Y %H:%M:%S GMT", &tm);
    snprintf(hdr, sizeof(hdr), "Retry-After: %s\r\n", when);
    fake_resp_t script[] = {
        TOKEN_OK("ya29.access-one"),
        {503, hdr, "", 0},
        {200, NULL, "{\"id\":\"ok\"}", 0},
    };
    fake_script(script, 3);
    bm_gcal_t *g = client(2);
    bm_gcal_account_t a;
    bm_gcal_account_init(&a, "1//refresh-alice", NULL);
    char err[256] = "";
    FILE *logf = log_to_tmpfile();
    ck_assert_msg(bm_gcal_call(g, &a, "GET", "/x", NULL, NULL, NULL, err, sizeof(err)) == 0, "%s",
                  err);
    long delay = logged_retry_delay(logf);
    ck_assert_int_ge(delay, 1000);     /* the date is 1 to 2 s ahead */
    ck_assert_int_le(delay, 2000 + 5); /* plus at most backoff_cap_ms of jitter */
    bm_gcal_account_dispose(&a);
    bm_gcal_free(g);
}
END_TEST

START_TEST(list_events_gone_on_a_later_page)
{
    /* 410 on page 2 of an incremental listing: BM_EGONE, no sync token, and the
     * first page was delivered (the caller must drop it with everything else). */
    fake_start();
    fake_resp_t script[] = {
        TOKEN_OK("ya29.access-one"),
        {200, NULL,
         "{\"nextPageToken\":\"p2\",\"items\":[{\"id\":\"ev1\",\"status\":\"cancelled\"}]}", 0},
        {410, NULL, "{\"error\":{\"errors\":[{\"reason\":\"fullSyncRequired\"}],\"code\":410}}", 0},
    };
    fake_script(script, 3);
    bm_gcal_t *g = client(2);
    bm_gcal_account_t a;
    bm_gcal_account_init(&a, "1//refresh-alice", NULL);
    bm_gcal_list_params_t p = {.sync_token = "tok1", .show_deleted = true};
    pages_t pg = {0};
    char *sync = (char *)"x", err[256] = "";
    ck_assert_int_eq(
        bm_gcal_list_events(g, &a, "primary", &p, on_page, &pg, &sync, err, sizeof(err)), BM_EGONE);
    ck_assert_ptr_null(sync);
    ck_assert_int_eq(pg.calls, 1);
    ck_assert_ptr_nonnull(strstr(fake.reqs[2], "syncToken=tok1&showDeleted=true&pageToken=p2 "));
    bm_gcal_account_dispose(&a);
    bm_gcal_free(g);
}
END_TEST

START_TEST(client_secret_stays_masked_after_many_token_refreshes)
{
    /* A long-running daemon refreshes every account's access token hourly. Each new
     * access token is registered as a secret; the client secret and the refresh token
     * must stay masked however many of those came after them. */
    static char bodies[70][160];
    fake_start();
    snprintf(bodies[0], sizeof(bodies[0]),
             "{\"access_token\":\"ya29.rotating-%03d\",\"expires_in\":3599}", 0);
    fake_resp_t script[] = {{200, NULL, bodies[0], 0}};
    fake_script(script, 1);
    bm_gcal_t *g = client(0);
    bm_gcal_account_t a;
    bm_gcal_account_init(&a, "1//refresh-alice", "alice@example.com");
    char err[512] = "";
    ck_assert_msg(bm_gcal_refresh(g, &a, err, sizeof(err)) == 0, "%s", err);
    for (int i = 1; i < 70; i++) {
        /* the server thread is idle between two synchronous calls */
        snprintf(bodies[i], sizeof(bodies[i]),
                 "{\"access_token\":\"ya29.rotating-%03d\",\"expires_in\":3599}", i);
        fake.resps[0] = (fake_resp_t){200, NULL, bodies[i], 0};
        fake.next = 0;
        ck_assert_msg(bm_gcal_refresh(g, &a, err, sizeof(err)) == 0, "refresh %d: %s", i, err);
    }
    /* now the token endpoint echoes the secrets back */
    fake.resps[0] = (fake_resp_t){401, NULL,
                                  "{\"error\":\"invalid_client\",\"error_description\":\"bad "
                                  "emu-client-secret for 1//refresh-alice\"}",
                                  0};
    fake.next = 0;
    ck_assert_int_eq(bm_gcal_refresh(g, &a, err, sizeof(err)), BM_EAPI);
    ck_assert_ptr_nonnull(strstr(err, "invalid_client"));
    ck_assert_msg(strstr(err, "emu-client-secret") == NULL, "client secret leaked: %s", err);
    ck_assert_msg(strstr(err, "refresh-alice") == NULL, "refresh token leaked: %s", err);
    bm_gcal_account_dispose(&a);
    bm_gcal_free(g);
}
END_TEST

START_TEST(no_secret_prefix_survives_error_truncation)
{
    /* A long error_description with the client secret near its end: the message is
     * cut to fit a fixed buffer before the secrets are masked, so the secret's first
     * characters survive unmasked. */
    fake_start();
    static char body[512];
    char pad[241];
    memset(pad, 'x', 240);
    pad[240] = '\0';
    snprintf(body, sizeof(body),
             "{\"error\":\"invalid_client\",\"error_description\":\"%semu-client-secret\"}", pad);
    fake_resp_t script[] = {{401, NULL, body, 0}};
    fake_script(script, 1);
    bm_gcal_t *g = client(0);
    bm_gcal_account_t a;
    bm_gcal_account_init(&a, "1//refresh-alice", NULL);
    char err[1024] = "";
    ck_assert_int_eq(bm_gcal_refresh(g, &a, err, sizeof(err)), BM_EAPI);
    ck_assert_msg(strstr(err, "emu-client") == NULL, "client secret prefix leaked: %s",
                  strstr(err, "emu-client"));
    bm_gcal_account_dispose(&a);
    bm_gcal_free(g);
}
END_TEST

/* ---------------------------------------------------------------- push channels (emulator) */

/* A client of the emulator e and an account of a new user; *rt is its refresh
 * token (caller frees, after disposing the account). */
static bm_gcal_t *emu_client(const emu_proc_t *e, const char *email, bm_gcal_account_t *a,
                             char **rt)
{
    char api[96], batch[96], token[96], err[256] = "";
    snprintf(api, sizeof(api), "%s/calendar/v3", e->base);
    snprintf(batch, sizeof(batch), "%s/batch/calendar/v3", e->base);
    snprintf(token, sizeof(token), "%s/token", e->base);
    bm_gcal_opts_t o = {.api_base_url = api,
                        .batch_url = batch,
                        .token_url = token,
                        .client_id = "emu-client-id",
                        .client_secret = "emu-client-secret",
                        .max_retries = -1};
    bm_gcal_t *g = NULL;
    ck_assert_msg(bm_gcal_new(&o, &g, err, sizeof(err)) == 0, "%s", err);
    char *body = fmt("{\"email\":\"%s\"}", email);
    resp_t *r = h_req(e, "POST", "/_emulator/users", NULL, body, NULL, NULL);
    ck_assert_int_eq(r->status, 200);
    *rt = strdup(j_str(r->json, "refresh_token"));
    h_free(r);
    free(body);
    bm_gcal_account_init(a, *rt, email);
    return g;
}

static void emu_client_done(emu_proc_t *e, bm_gcal_t *g, bm_gcal_account_t *a, char *rt)
{
    bm_gcal_account_dispose(a);
    bm_gcal_free(g);
    free(rt);
    ck_assert_int_eq(emu_stop(e), 0);
}

START_TEST(watch_and_stop_a_channel)
{
    emu_proc_t e;
    emu_start(&e, NULL);
    bm_gcal_account_t a;
    char *rt, err[512] = "";
    bm_gcal_t *g = emu_client(&e, "w@example.com", &a, &rt);
    bm_gcal_watch_params_t p = {.channel_id = "bm-chan-1",
                                .address = "http://127.0.0.1:1/hook",
                                .token = "chan-token-secret",
                                .ttl_s = 600};
    bm_gcal_channel_t ch;
    int64_t before = bm_now_ms();
    ck_assert_msg(bm_gcal_watch(g, &a, "w@example.com", &p, &ch, err, sizeof(err)) == 0, "%s", err);
    ck_assert_msg(ch.resource_id[0] != '\0', "no resourceId");
    ck_assert_msg(ch.expiration_ms > before, "expiration %lld is not in the future",
                  (long long)ch.expiration_ms);
    ck_assert_int_eq(counter(&e, "watch"), 1);
    ck_assert_msg(bm_gcal_channel_stop(g, &a, "bm-chan-1", ch.resource_id, err, sizeof(err)) == 0,
                  "%s", err);
    ck_assert_int_eq(counter(&e, "stop"), 1);
    /* stopped already: Google answers 404, which counts as done */
    ck_assert_msg(bm_gcal_channel_stop(g, &a, "bm-chan-1", ch.resource_id, err, sizeof(err)) == 0,
                  "%s", err);
    emu_client_done(&e, g, &a, rt);
}
END_TEST

START_TEST(stop_of_an_unknown_channel_is_done)
{
    emu_proc_t e;
    emu_start(&e, NULL);
    bm_gcal_account_t a;
    char *rt, err[512] = "";
    bm_gcal_t *g = emu_client(&e, "s@example.com", &a, &rt);
    ck_assert_msg(
        bm_gcal_channel_stop(g, &a, "never-opened", "no-such-resource", err, sizeof(err)) == 0,
        "%s", err);
    emu_client_done(&e, g, &a, rt);
}
END_TEST

/* ---------------------------------------------------------------- hostile answers */

#define DEEP 3000000 /* what made calendar discover die with SIGSEGV */

static int count_calendar(void *ud, const bm_gcal_calendar_t *c)
{
    (*(int *)ud)++;
    return 0;
}

/* A batch answer whose one part is a 403 with a body of n nested arrays. */
static char *deep_batch(size_t n)
{
    bm_buf_t b;
    bm_buf_init(&b, 4 * n + 4096);
    ck_assert_int_eq(bm_buf_printf(&b,
                                   "--B\r\nContent-Type: application/http\r\nContent-ID: "
                                   "<response-item-1>\r\n\r\nHTTP/1.1 403 Forbidden\r\n"
                                   "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
                                   2 * n),
                     BM_OK);
    for (size_t i = 0; i < n; i++)
        ck_assert_int_eq(bm_buf_append(&b, "[", 1), BM_OK);
    for (size_t i = 0; i < n; i++)
        ck_assert_int_eq(bm_buf_append(&b, "]", 1), BM_OK);
    ck_assert_int_eq(bm_buf_puts(&b, "\r\n--B--\r\n"), BM_OK);
    return bm_buf_steal(&b);
}

START_TEST(deeply_nested_answers_are_errors_not_crashes)
{
    fake_start();
    static char *batch;
    batch = deep_batch(DEEP);
    fake_resp_t script[] = {
        {200, NULL, NULL, 0}, /* token answer */
        {200, NULL, NULL, 0}, /* token answer, never closed */
        TOKEN_OK("ya29.access-one"),
        {200, NULL, NULL, 0}, /* calendarList page */
        {200, NULL, NULL, 0}, /* events.list page */
        {403, NULL, NULL, 0}, /* an error body */
        {200, NULL, NULL, 0}, /* events.watch answer */
        {200, "Content-Type: multipart/mixed; boundary=B\r\n", batch, 0},
    };
    /* token answers are capped at 64 KiB: as deep as fits */
    for (int i = 0; i < 7; i++)
        fake.shapes[i] = (fake_shape_t){.nest = i == 2  ? 0
                                                : i < 2 ? 30000
                                                        : DEEP,
                                        .nest_open = i == 1};
    fake_script(script, 8);
    bm_gcal_t *g = client(-1);
    bm_gcal_account_t a;
    bm_gcal_account_init(&a, "1//refresh-alice", "alice@example.com");
    char err[512] = "";

    ck_assert_int_eq(bm_gcal_refresh(g, &a, err, sizeof(err)), BM_EAPI);
    ck_assert_str_eq(err, "token endpoint: unparseable answer: JSON nested deeper than 64 levels");
    ck_assert_int_eq(bm_gcal_refresh(g, &a, err, sizeof(err)), BM_EAPI);
    ck_assert_str_eq(err, "token endpoint: unparseable answer: JSON nested deeper than 64 levels");

    int n_cals = 0;
    ck_assert_int_eq(bm_gcal_list_calendars(g, &a, count_calendar, &n_cals, err, sizeof(err)),
                     BM_ETRANSIENT);
    ck_assert_msg(strstr(err, "unparseable JSON page: JSON nested deeper than 64 levels") != NULL,
                  "%s", err);
    ck_assert_int_eq(n_cals, 0);

    char *sync = NULL;
    ck_assert_int_eq(
        bm_gcal_list_events(g, &a, "primary", NULL, on_page, NULL, &sync, err, sizeof(err)),
        BM_ETRANSIENT);
    ck_assert_msg(strstr(err, "unparseable JSON page: JSON nested deeper than 64 levels") != NULL,
                  "%s", err);
    ck_assert_ptr_null(sync);

    long status = 0;
    ck_assert_int_eq(bm_gcal_call(g, &a, "GET", "/x", NULL, &status, NULL, err, sizeof(err)),
                     BM_EAPI);
    ck_assert_int_eq(status, 403);
    ck_assert_msg(strstr(err, "HTTP 403") != NULL, "%s", err);

    bm_gcal_watch_params_t wp = {.channel_id = "ch-1", .address = "https://example.com/n"};
    bm_gcal_channel_t ch;
    ck_assert_int_eq(bm_gcal_watch(g, &a, "primary", &wp, &ch, err, sizeof(err)), BM_EAPI);
    ck_assert_msg(strstr(err, "unparseable answer: JSON nested deeper than 64 levels") != NULL,
                  "%s", err);

    bm_gcal_req_t reqs[1] = {{.method = "DELETE", .path = "/calendars/a/events/b"}};
    ck_assert_msg(bm_gcal_batch(g, &a, reqs, 1, err, sizeof(err)) == 0, "%s", err);
    ck_assert_int_eq(reqs[0].status, 403);
    ck_assert_str_eq(reqs[0].reason, ""); /* the body does not parse: no reason, no crash */
    bm_gcal_reqs_dispose(reqs, 1);

    ck_assert_int_eq(fake.n_reqs, 8);
    free(batch);
    bm_gcal_account_dispose(&a);
    bm_gcal_free(g);
}
END_TEST

/* ---------------------------------------------------------------- event ids on the wire */

START_TEST(event_ids_are_escaped_in_paths)
{
    /* Ids come from Google's listings (reset, cleanup, undo, the drain): none may
     * change the path, add a query or a fragment. */
    const char *id = "a/b?c%d#e f&g=h+i\"\\";
    char *p = bm_gcal_path_event("alice@example.com", id);
    ck_assert_str_eq(p, "/calendars/alice%40example.com/events/"
                        "a%2Fb%3Fc%25d%23e%20f%26g%3Dh%2Bi%22%5C?sendUpdates=none");
    free(p);
    p = bm_gcal_path_event("en.usa#holiday@group.v.calendar.google.com", "../x");
    ck_assert_str_eq(p, "/calendars/en.usa%23holiday%40group.v.calendar.google.com/events/"
                        "..%2Fx?sendUpdates=none");
    free(p);
    p = bm_gcal_path_events("a/b?c");
    ck_assert_str_eq(p, "/calendars/a%2Fb%3Fc/events?sendUpdates=none");
    free(p);

    /* and so they reach the server: a single call and a batch part */
    fake_start();
    static char resp_headers[128];
    snprintf(resp_headers, sizeof(resp_headers),
             "Content-Type: multipart/mixed; boundary=batch_nHlLLA7SZZc_AAjOXVvnmkQ\r\n");
    fake_resp_t script[] = {
        TOKEN_OK("ya29.access-one"),
        {204, NULL, "", 0},
        {200, resp_headers, GOOGLE_BATCH, 0},
    };
    fake_script(script, 3);
    bm_gcal_t *g = client(-1);
    bm_gcal_account_t a;
    bm_gcal_account_init(&a, "1//refresh-alice", NULL);
    char err[256] = "";
    p = bm_gcal_path_event("alice@example.com", id);
    ck_assert_msg(bm_gcal_call(g, &a, "DELETE", p, NULL, NULL, NULL, err, sizeof(err)) == 0, "%s",
                  err);
    const char *wire = "/calendar/v3/calendars/alice%40example.com/events/"
                       "a%2Fb%3Fc%25d%23e%20f%26g%3Dh%2Bi%22%5C?sendUpdates=none HTTP/1.1";
    char line[512];
    snprintf(line, sizeof(line), "DELETE %s", wire);
    ck_assert_msg(strncmp(fake.reqs[1], line, strlen(line)) == 0, "%s", fake.reqs[1]);
    bm_gcal_req_t reqs[3] = {
        {.method = "POST", .path = "/calendars/a%40b/events?sendUpdates=none", .body = "{}"},
        {.method = "DELETE", .path = p},
        {.method = "POST", .path = "/calendars/a%40b/events?sendUpdates=none", .body = "{}"},
    };
    ck_assert_msg(bm_gcal_batch(g, &a, reqs, 3, err, sizeof(err)) == 0, "%s", err);
    ck_assert_msg(strstr(fake.reqs[2], line) != NULL, "%s", fake.reqs[2]);
    bm_gcal_reqs_dispose(reqs, 3);
    free(p);
    bm_gcal_account_dispose(&a);
    bm_gcal_free(g);
}
END_TEST

/* ---------------------------------------------------------------- secrets in memory */

START_TEST(token_request_and_answer_are_wiped)
{
    /* A long refresh token makes the form grow; a long access token, sent in small
     * pieces, makes the answer's buffer grow. Every block either lets go of must
     * reach the wipe, zeroed. */
    static char answer[4096], refresh[400];
    memset(refresh, 'R', sizeof(refresh) - 1);
    refresh[sizeof(refresh) - 1] = '\0';
    int n = snprintf(answer, sizeof(answer), "{\"access_token\":\"ya29.");
    memset(answer + n, 'A', 3000);
    snprintf(answer + n + 3000, sizeof(answer) - (size_t)n - 3000,
             "\",\"expires_in\":3599,\"token_type\":\"Bearer\"}");
    fake_start();
    fake_resp_t script[] = {{200, "Content-Type: application/json\r\n", answer, 0}};
    fake.shapes[0].dribble = 200;
    fake_script(script, 1);
    bm_gcal_t *g = client(-1);
    bm_gcal_account_t a;
    bm_gcal_account_init(&a, refresh, NULL);
    char err[256] = "";
    memset(&released, 0, sizeof(released));
    bm__wipe_free_hook = wipe_probe_on_release;
    int rc = bm_gcal_refresh(g, &a, err, sizeof(err));
    bm__wipe_free_hook = NULL;
    ck_assert_msg(rc == 0, "%s", err);
    char tok[4096];
    ck_assert_int_gt(bm_gcal_account_access(&a, tok, sizeof(tok)), 0);
    ck_assert_uint_eq(strlen(tok), 3005);
    /* yajl's scratch: 6 blocks (handle, lexer, buffers, stack); the form: its
     * outgrown 256-byte block and its last one; the answer: at least its last
     * block (more as it grows piece by piece). Without secret buffers: 6. */
    ck_assert_int_ge(released.blocks, 9);
    ck_assert_int_eq(released.dirty, 0);
    ck_assert_ptr_nonnull(strstr(fake.reqs[0], "refresh_token=RRRR"));
    explicit_bzero(tok, sizeof(tok));
    bm_gcal_account_dispose(&a);
    bm_gcal_free(g);
}
END_TEST

Suite *make_suite(void)
{
    Suite *s = suite_create("gcal");
    TCase *tc = tcase_create("pure");
    tcase_add_test(tc, escape_ids);
    tcase_add_test(tc, url_path);
    tcase_add_test(tc, error_parse);
    suite_add_tcase(s, tc);
    tc = tcase_create("http");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, list_events_pages);
    tcase_add_test(tc, list_events_sync_token_gone);
    tcase_add_test(tc, unauthorized_refreshes_once);
    tcase_add_test(tc, invalid_grant_needs_login);
    tcase_add_test(tc, transient_errors_retried);
    tcase_add_test(tc, transient_gives_up);
    tcase_add_test(tc, permanent_errors);
    tcase_add_test(tc, batch_over_http);
    tcase_add_test(tc, list_calendars);
    tcase_add_test(tc, stop_before_call);
    tcase_add_test(tc, stop_during_retry_after);
    tcase_add_test(tc, response_too_big);
    tcase_add_test(tc, network_error_is_transient);
    tcase_add_test(tc, secrets_never_leak);
    tcase_add_test(tc, exchange_code);
    tcase_add_test(tc, threads_share_one_refresh);
    suite_add_tcase(s, tc);
    tc = tcase_create("retry_after_paging_and_secrets");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, retry_after_with_trailing_whitespace_is_honoured);
    tcase_add_test(tc, retry_after_http_date_is_honoured);
    tcase_add_test(tc, list_events_gone_on_a_later_page);
    tcase_add_test(tc, client_secret_stays_masked_after_many_token_refreshes);
    tcase_add_test(tc, no_secret_prefix_survives_error_truncation);
    tcase_add_test(tc, watch_and_stop_a_channel);
    tcase_add_test(tc, stop_of_an_unknown_channel_is_done);
    suite_add_tcase(s, tc);
    tc = tcase_create("hostile");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, deeply_nested_answers_are_errors_not_crashes);
    tcase_add_test(tc, event_ids_are_escaped_in_paths);
    tcase_add_test(tc, token_request_and_answer_are_wiped);
    suite_add_tcase(s, tc);
    return s;
}

#include "check_main.h"
