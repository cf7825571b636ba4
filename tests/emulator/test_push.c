/*
 * tests/emulator/test_push.c: events.watch / channels.stop and real push
 * delivery to a tiny loopback HTTP listener run by the test itself.
 */
#include "harness.h"

#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define EV       "/calendar/v3/calendars/u%40example.com/events"
#define MAX_MSGS 64

typedef struct listener {
    int fd;
    int port;
    pthread_t thr;
    pthread_mutex_t mu;
    char *msgs[MAX_MSGS]; /* raw request heads */
    long at_ms[MAX_MSGS];
    int n;
    int fail_first; /* answer 503 to this many requests first */
    int served;
} listener_t;

static emu_proc_t E;
static char *T;
static listener_t L;

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void *serve(void *arg)
{
    listener_t *l = arg;
    for (;;) {
        int c = accept(l->fd, NULL, NULL);
        if (c < 0)
            return NULL;
        char buf[8192];
        size_t len = 0;
        while (len < sizeof(buf) - 1) {
            ssize_t k = read(c, buf + len, sizeof(buf) - 1 - len);
            if (k <= 0)
                break;
            len += (size_t)k;
            buf[len] = '\0';
            if (strstr(buf, "\r\n\r\n") != NULL)
                break;
        }
        buf[len] = '\0';
        pthread_mutex_lock(&l->mu);
        bool fail = l->served < l->fail_first;
        l->served++;
        if (l->n < MAX_MSGS) {
            l->at_ms[l->n] = now_ms();
            l->msgs[l->n++] = strdup(buf);
        }
        pthread_mutex_unlock(&l->mu);
        const char *resp =
            fail ? "HTTP/1.1 503 Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                 : "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
        if (write(c, resp, strlen(resp)) < 0) {
            /* the emulator hung up: nothing to do */
        }
        close(c);
    }
}

static void listener_start(listener_t *l)
{
    memset(l, 0, sizeof(*l));
    pthread_mutex_init(&l->mu, NULL);
    l->fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(l->fd, 0);
    struct sockaddr_in sa = {0};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(l->fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ck_assert_int_eq(listen(l->fd, 16), 0);
    socklen_t sl = sizeof(sa);
    getsockname(l->fd, (struct sockaddr *)&sa, &sl);
    l->port = ntohs(sa.sin_port);
    ck_assert_int_eq(pthread_create(&l->thr, NULL, serve, l), 0);
}

static int msg_count(listener_t *l)
{
    pthread_mutex_lock(&l->mu);
    int n = l->n;
    pthread_mutex_unlock(&l->mu);
    return n;
}

/* Waits until at least n messages arrived (or timeout); returns the count. */
static int wait_msgs(listener_t *l, int n, long timeout_ms)
{
    long end = now_ms() + timeout_ms;
    while (msg_count(l) < n && now_ms() < end)
        sleep_ms(10);
    return msg_count(l);
}

static char *hdr(listener_t *l, int i, const char *name)
{
    pthread_mutex_lock(&l->mu);
    char *out = NULL;
    const char *p = l->msgs[i];
    size_t nl = strlen(name);
    while (p != NULL && *p != '\0') {
        if (strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            const char *v = p + nl + 1;
            while (*v == ' ')
                v++;
            out = strndup(v, strcspn(v, "\r\n"));
            break;
        }
        p = strchr(p, '\n');
        if (p != NULL)
            p++;
    }
    pthread_mutex_unlock(&l->mu);
    return out;
}

static void up(void)
{
    emu_start(&E, (const char *const[]){"--max-channel-ttl", "3", NULL});
    T = emu_user(&E, "u@example.com");
    listener_start(&L);
}

static void down(void)
{
    free(T);
    ck_assert_int_eq(emu_stop(&E), 0);
}

static resp_t *watch(const char *id, const char *extra)
{
    char *b =
        fmt("{\"id\":\"%s\",\"type\":\"web_hook\",\"address\":\"http://127.0.0.1:%d/hook\"%s%s}",
            id, L.port, extra != NULL ? "," : "", extra != NULL ? extra : "");
    resp_t *r = h_req(&E, "POST", EV "/watch", T, b, NULL, NULL);
    free(b);
    return r;
}

static void insert_one(void)
{
    resp_t *r = h_req(&E, "POST", EV, T,
                      "{\"start\":{\"dateTime\":\"2030-01-07T10:00:00Z\"},\"end\":{\"dateTime\":"
                      "\"2030-01-07T11:00:00Z\"}}",
                      NULL, NULL);
    ck_assert_int_eq(r->status, 200);
    h_free(r);
}

START_TEST(watch_sync_then_exists)
{
    resp_t *r = watch("chan-1", "\"token\":\"tok=42\",\"params\":{\"ttl\":\"60\"}");
    ck_assert_msg(r->status == 200, "%s", r->body);
    ck_assert_str_eq(j_str(r->json, "kind"), "api#channel");
    ck_assert_str_eq(j_str(r->json, "id"), "chan-1");
    ck_assert_str_eq(j_str(r->json, "token"), "tok=42");
    char *rid = strdup(j_str(r->json, "resourceId"));
    ck_assert_ptr_nonnull(
        strstr(j_str(r->json, "resourceUri"), "/calendar/v3/calendars/u%40example.com/events"));
    long long exp = j_int(r->json, "expiration");
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    long long now = (long long)ts.tv_sec * 1000;
    ck_assert_int_le(exp, now + 3000 + 2000); /* capped by --max-channel-ttl 3 */
    ck_assert_int_gt(exp, now);
    h_free(r);
    ck_assert_int_eq(wait_msgs(&L, 1, 5000), 1);
    char *v = hdr(&L, 0, "X-Goog-Resource-State");
    ck_assert_str_eq(v, "sync");
    free(v);
    v = hdr(&L, 0, "X-Goog-Message-Number");
    ck_assert_str_eq(v, "1");
    free(v);
    v = hdr(&L, 0, "User-Agent");
    ck_assert_str_eq(v, "APIs-Google");
    free(v);
    v = hdr(&L, 0, "X-Goog-Channel-ID");
    ck_assert_str_eq(v, "chan-1");
    free(v);
    v = hdr(&L, 0, "X-Goog-Channel-Token");
    ck_assert_str_eq(v, "tok=42");
    free(v);
    v = hdr(&L, 0, "X-Goog-Resource-ID");
    ck_assert_str_eq(v, rid);
    free(v);
    v = hdr(&L, 0, "X-Goog-Resource-URI");
    ck_assert_ptr_nonnull(v);
    free(v);
    v = hdr(&L, 0, "X-Goog-Channel-Expiration");
    ck_assert_ptr_nonnull(v);
    ck_assert_ptr_nonnull(strstr(v, " GMT"));
    free(v);
    v = hdr(&L, 0, "Content-Length");
    ck_assert_str_eq(v, "0");
    free(v);
    ck_assert(strncmp(L.msgs[0], "POST /hook ", 11) == 0);
    insert_one();
    ck_assert_int_eq(wait_msgs(&L, 2, 5000), 2);
    v = hdr(&L, 1, "X-Goog-Resource-State");
    ck_assert_str_eq(v, "exists");
    free(v);
    v = hdr(&L, 1, "X-Goog-Message-Number");
    ck_assert_int_gt(atoi(v), 1);
    free(v);
    /* a change made "in the UI" notifies too */
    r = h_req(&E, "POST", "/_emulator/calendars/u@example.com/events", NULL,
              "{\"start\":{\"date\":\"2030-01-07\"},\"end\":{\"date\":\"2030-01-08\"}}", NULL,
              NULL);
    ck_assert_int_eq(r->status, 200);
    h_free(r);
    ck_assert_int_eq(wait_msgs(&L, 3, 5000), 3);
    char *n2 = hdr(&L, 1, "X-Goog-Message-Number"), *n3 = hdr(&L, 2, "X-Goog-Message-Number");
    ck_assert_int_gt(atoi(n3), atoi(n2));
    free(n2);
    free(n3);
    ck_assert_int_eq(counter(&E, "watch"), 1);
    ck_assert_int_eq(counter(&E, "notifications"), 3);
    free(rid);
}
END_TEST

START_TEST(watch_validation_and_resource_ids)
{
    resp_t *r = watch("chan-a", NULL);
    ck_assert_int_eq(r->status, 200);
    char *rid = strdup(j_str(r->json, "resourceId"));
    h_free(r);
    r = watch("chan-b", NULL);
    ck_assert_int_eq(r->status, 200);
    ck_assert_str_eq(j_str(r->json, "resourceId"), rid); /* stable per calendar */
    h_free(r);
    r = watch("chan-a", NULL);
    ck_assert_int_eq(r->status, 400); /* duplicate channel id */
    h_free(r);
    char longid[80];
    memset(longid, 'a', 65);
    longid[65] = '\0';
    r = watch(longid, NULL);
    ck_assert_int_eq(r->status, 400);
    h_free(r);
    char *tok = malloc(300);
    memset(tok, 't', 257);
    tok[257] = '\0';
    char *extra = fmt("\"token\":\"%s\"", tok);
    r = watch("chan-c", extra);
    ck_assert_int_eq(r->status, 400);
    h_free(r);
    free(extra);
    free(tok);
    r = h_req(&E, "POST", "/_emulator/users/u@example.com/calendars", NULL,
              "{\"id\":\"o@group.calendar.google.com\",\"summary\":\"o\"}", NULL, NULL);
    h_free(r);
    char *b = fmt("{\"id\":\"chan-o\",\"type\":\"web_hook\",\"address\":\"http://127.0.0.1:%d/\"}",
                  L.port);
    r = h_req(&E, "POST", "/calendar/v3/calendars/o%40group.calendar.google.com/events/watch", T, b,
              NULL, NULL);
    ck_assert_int_eq(r->status, 200);
    ck_assert_str_ne(j_str(r->json, "resourceId"), rid);
    h_free(r);
    free(b);
    r = h_req(&E, "GET", "/_emulator/channels", NULL, NULL, NULL, NULL);
    ck_assert_uint_eq(j_len(r->json, "items"), 3);
    h_free(r);
    free(rid);
}
END_TEST

START_TEST(stop_ends_delivery)
{
    resp_t *r = watch("chan-s", NULL);
    char *rid = strdup(j_str(r->json, "resourceId"));
    h_free(r);
    ck_assert_int_eq(wait_msgs(&L, 1, 5000), 1);
    r = h_req(&E, "POST", "/calendar/v3/channels/stop", T,
              "{\"id\":\"chan-s\",\"resourceId\":\"nope\"}", NULL, NULL);
    ck_assert_int_eq(r->status, 404);
    h_free(r);
    char *b = fmt("{\"id\":\"chan-s\",\"resourceId\":\"%s\"}", rid);
    r = h_req(&E, "POST", "/calendar/v3/channels/stop", T, b, NULL, NULL);
    ck_assert_int_eq(r->status, 204);
    h_free(r);
    r = h_req(&E, "POST", "/calendar/v3/channels/stop", T, b, NULL, NULL);
    ck_assert_int_eq(r->status, 404);
    h_free(r);
    insert_one();
    sleep_ms(500);
    ck_assert_int_eq(msg_count(&L), 1);
    ck_assert_int_eq(counter(&E, "stop"), 3);
    free(b);
    free(rid);
}
END_TEST

START_TEST(channels_expire)
{
    resp_t *r = watch("chan-e", "\"params\":{\"ttl\":\"1\"}");
    ck_assert_int_eq(r->status, 200);
    h_free(r);
    ck_assert_int_eq(wait_msgs(&L, 1, 5000), 1);
    sleep_ms(1300);
    insert_one();
    sleep_ms(400);
    ck_assert_int_eq(msg_count(&L), 1);
    r = h_req(&E, "GET", "/_emulator/channels", NULL, NULL, NULL, NULL);
    ck_assert_uint_eq(j_len(r->json, "items"), 0);
    h_free(r);
}
END_TEST

START_TEST(retry_with_backoff_on_503)
{
    L.fail_first = 2;
    resp_t *r = watch("chan-r", NULL);
    h_free(r);
    ck_assert_int_eq(wait_msgs(&L, 3, 8000), 3);
    for (int i = 0; i < 3; i++) {
        char *v = hdr(&L, i, "X-Goog-Message-Number");
        ck_assert_str_eq(v, "1"); /* the same message, retried */
        free(v);
    }
    ck_assert_int_ge(L.at_ms[2] - L.at_ms[1], L.at_ms[1] - L.at_ms[0]); /* backing off */
    sleep_ms(100);
    ck_assert_int_eq(counter(&E, "notifications"), 1);
}
END_TEST

START_TEST(dropped_and_delayed_notifications)
{
    resp_t *r = watch("chan-d", NULL);
    h_free(r);
    ck_assert_int_eq(wait_msgs(&L, 1, 5000), 1);
    r = h_req(&E, "POST", "/_emulator/faults", NULL, "{\"seed\":1,\"drop_notifications\":1}", NULL,
              NULL);
    h_free(r);
    insert_one();
    sleep_ms(400);
    ck_assert_int_eq(msg_count(&L), 1);
    r = h_req(&E, "POST", "/_emulator/faults", NULL, "{\"delay_notifications_ms\":600}", NULL,
              NULL);
    h_free(r);
    long t0 = now_ms();
    insert_one();
    ck_assert_int_eq(wait_msgs(&L, 2, 5000), 2);
    ck_assert_int_ge(L.at_ms[1] - t0, 550);
    /* message numbers still increase past the dropped one */
    char *v = hdr(&L, 1, "X-Goog-Message-Number");
    ck_assert_int_ge(atoi(v), 3);
    free(v);
}
END_TEST

Suite *make_suite(void)
{
    Suite *s = suite_create("emulator-push");
    TCase *tc = tcase_create("push");
    tcase_add_checked_fixture(tc, up, down);
    tcase_set_timeout(tc, 0);
    tcase_add_test(tc, watch_sync_then_exists);
    tcase_add_test(tc, watch_validation_and_resource_ids);
    tcase_add_test(tc, stop_ends_delivery);
    tcase_add_test(tc, channels_expire);
    tcase_add_test(tc, retry_with_backoff_on_503);
    tcase_add_test(tc, dropped_and_delayed_notifications);
    suite_add_tcase(s, tc);
    return s;
}

#include "check_main.h"
