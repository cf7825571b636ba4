/*
 * tests/engine/test_channels.c: push channels (engine/channels.c) against the
 * real gcal-emulator on loopback, with a real store and key file: every enabled
 * calendar gets a granted channel and push mode, Google's first message carries
 * the derived token, live channels are reused, a refused watch leaves the
 * calendar polling, and stops reach Google (a repeated stop is fine).
 */
#include "core/crypto.h"
#include "core/store.h"
#include "core/util.h"
#include "engine/engine.h"
#include "tests/engine/emu_fixture.h"

#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <poll.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define CAL   EMU_FIXTURE_USER
#define CAL2  "alice-work@group.calendar.google.com"
#define OFF   "off@group.calendar.google.com"
#define TTL_S 3600

static emu_fixture_t fx;
static int64_t cal_id[3]; /* CAL and CAL2 enabled, OFF not */
static int listen_fd;     /* receives the emulator's push messages */
static char push_url[64]; /* the listener's address */

static void listener_start(void)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(listen_fd, 0);
    ck_assert_int_eq(bind(listen_fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ck_assert_int_eq(listen(listen_fd, 16), 0);
    ck_assert_int_eq(getsockname(listen_fd, (struct sockaddr *)&sa, &len), 0);
    snprintf(push_url, sizeof(push_url), "http://127.0.0.1:%d/notify", ntohs(sa.sin_port));
}

/* Adds calendar gcal_id of the fixture's account to the store (enabled or not); its id. */
static int64_t add_calendar(const char *gcal_id, bool enabled)
{
    char err[256] = "";
    int64_t id = 0;
    ck_assert_int_eq(bm_store_calendar_upsert(fx.st, fx.account_id, gcal_id, gcal_id, "UTC",
                                              "owner", false, &id, err, sizeof(err)),
                     0);
    if (enabled)
        ck_assert_int_eq(
            bm_store_calendar_set_enabled(fx.st, id, true, "g", BM_ROLE_BOTH, err, sizeof(err)), 0);
    return id;
}

static void setup(void)
{
    char err[256] = "";
    emu_fixture_setup(&fx, "channels");
    listener_start();
    const char *const more[] = {"{\"id\":\"" CAL2 "\",\"summary\":\"Work\"}",
                                "{\"id\":\"" OFF "\",\"summary\":\"Off\"}"};
    for (int i = 0; i < 2; i++) {
        resp_t *r =
            h_req(&fx.emu, "POST", "/_emulator/users/" CAL "/calendars", NULL, more[i], NULL, NULL);
        ck_assert_int_eq(r->status, 200);
        h_free(r);
    }
    cal_id[0] = fx.cal_id;
    ck_assert_int_eq(
        bm_store_calendar_set_enabled(fx.st, cal_id[0], true, "g", BM_ROLE_BOTH, err, sizeof(err)),
        0);
    cal_id[1] = add_calendar(CAL2, true);
    cal_id[2] = add_calendar(OFF, false);
}

static void teardown(void)
{
    close(listen_fd); /* first: deliveries waiting on it fail at once */
    emu_fixture_teardown(&fx);
}

static void watch_all(const char *address, size_t want_push, size_t want_poll)
{
    char err[256] = "";
    size_t n_push = 99, n_poll = 99;
    ck_assert_msg(bm_engine_watch_all(fx.e, address, TTL_S, &n_push, &n_poll, err, sizeof(err)) ==
                      0,
                  "%s", err);
    ck_assert_uint_eq(n_push, want_push);
    ck_assert_uint_eq(n_poll, want_poll);
}

/* The current channel of calendar i (the caller disposes); fails when none. */
static bm_channel_t current(int i)
{
    char err[256] = "";
    bm_channel_t ch = {0};
    ck_assert_int_eq(bm_store_channel_current(fx.st, cal_id[i], bm_now_ms(), &ch, err, sizeof(err)),
                     0);
    return ch;
}

static bm_mode_t mode(int i)
{
    char err[256] = "";
    bm_calendar_t c = {0};
    ck_assert_int_eq(bm_store_calendar_get(fx.st, cal_id[i], &c, err, sizeof(err)), 0);
    bm_mode_t m = c.mode;
    bm_calendar_dispose(&c);
    return m;
}

/* One push message: accepted within 10 s, answered 200; its request head
 * (the caller frees). */
static char *receive(void)
{
    struct pollfd p = {.fd = listen_fd, .events = POLLIN};
    ck_assert_int_eq(poll(&p, 1, 10000), 1);
    int c = accept(listen_fd, NULL, NULL);
    ck_assert_int_ge(c, 0);
    char buf[8192];
    size_t len = 0;
    while (len < sizeof(buf) - 1 && memmem(buf, len, "\r\n\r\n", 4) == NULL) {
        ssize_t k = read(c, buf + len, sizeof(buf) - 1 - len);
        ck_assert_int_gt(k, 0);
        len += (size_t)k;
    }
    buf[len] = '\0';
    const char *ok = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    ck_assert_int_eq(write(c, ok, strlen(ok)), (ssize_t)strlen(ok));
    close(c);
    return bm_strdup(buf);
}

/* The value of header name in a request head (the caller frees); fails when absent. */
static char *header(const char *head, const char *name)
{
    char *h = fmt("\r\n%s: ", name);
    const char *v = strcasestr(head, h);
    ck_assert_msg(v != NULL, "no %s in %s", name, head);
    v += strlen(h);
    free(h);
    return bm_strndup(v, strcspn(v, "\r\n"));
}

START_TEST(every_enabled_calendar_gets_a_channel_and_push)
{
    watch_all(push_url, 2, 0);
    ck_assert_int_eq(counter(&fx.emu, "watch"), 2);
    for (int i = 0; i < 2; i++) {
        bm_channel_t ch = current(i);
        ck_assert_ptr_nonnull(ch.resource_id);
        ck_assert_int_gt(ch.expiration, bm_now_ms() + (TTL_S - 60) * 1000LL);
        ck_assert_uint_le(strlen(ch.id), 64);
        ck_assert_int_eq(mode(i), BM_MODE_PUSH);
        bm_channel_dispose(&ch);
    }
    ck_assert_int_eq(mode(2), BM_MODE_POLL); /* not enabled: not watched */

    /* Google's first message: "sync", with the token derived from the id */
    char err[256] = "";
    unsigned char key[BM_CRYPTO_KEY_LEN];
    ck_assert_int_eq(bm_crypto_key_load(fx.cfg.store.key_file, false, key, err, sizeof(err)), 0);
    for (int i = 0; i < 2; i++) {
        char *head = receive(), *id = header(head, "X-Goog-Channel-ID");
        char *state = header(head, "X-Goog-Resource-State");
        char *token = header(head, "X-Goog-Channel-Token");
        ck_assert_str_eq(state, "sync");
        ck_assert(bm_crypto_channel_token_ok(key, id, token));
        bm_channel_t ch = {0};
        ck_assert_int_eq(bm_store_channel_get(fx.st, id, &ch, err, sizeof(err)), 0);
        ck_assert_int_lt(ch.calendar_id, cal_id[2]);
        bm_channel_dispose(&ch);
        free(head);
        free(id);
        free(state);
        free(token);
    }
    bm_crypto_wipe(key, sizeof(key));
}
END_TEST

START_TEST(a_second_watch_all_reuses_live_channels)
{
    watch_all(push_url, 2, 0);
    bm_channel_t first = current(1);
    watch_all(push_url, 2, 0);
    ck_assert_int_eq(counter(&fx.emu, "watch"), 2); /* no new watch */
    bm_channel_t again = current(1);
    ck_assert_str_eq(again.id, first.id);
    bm_channel_dispose(&first);
    bm_channel_dispose(&again);
}
END_TEST

/* Channels rows of calendar i that are stopped (read from the database). */
static int stopped_rows(int i)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *q = NULL;
    ck_assert_int_eq(sqlite3_open_v2(fx.cfg.store.path, &db, SQLITE_OPEN_READONLY, NULL),
                     SQLITE_OK);
    ck_assert_int_eq(sqlite3_prepare_v2(db,
                                        "SELECT count(*) FROM channels WHERE calendar_id = ?"
                                        " AND stopped_at IS NOT NULL",
                                        -1, &q, NULL),
                     SQLITE_OK);
    ck_assert_int_eq(sqlite3_bind_int64(q, 1, cal_id[i]), SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(q), SQLITE_ROW);
    int n = sqlite3_column_int(q, 0);
    ck_assert_int_eq(sqlite3_finalize(q), SQLITE_OK);
    ck_assert_int_eq(sqlite3_close(db), SQLITE_OK);
    return n;
}

START_TEST(a_refused_watch_leaves_the_calendar_polling)
{
    char err[256] = "";
    bm_calendar_t cal = {0};
    /* an address Google will not post to: 400 push.webhookUrlNotHttps */
    ck_assert_int_eq(bm_store_calendar_get(fx.st, cal_id[0], &cal, err, sizeof(err)), 0);
    ck_assert_int_eq(
        bm_engine_watch_calendar(fx.e, &cal, "ftp://127.0.0.1/notify", TTL_S, err, sizeof(err)),
        BM_EAPI);
    ck_assert_ptr_nonnull(strstr(err, "webhookUrlNotHttps"));
    bm_calendar_dispose(&cal);
    ck_assert_int_eq(mode(0), BM_MODE_POLL);
    ck_assert_int_eq(stopped_rows(0), 1);

    /* a 403 refusal (as push.webhookUrlUnauthorized) of the first watch of a run:
     * calendars go by Google id, so CAL2's */
    emu_fixture_faults(&fx, "{\"error_403\":1,\"max_errors\":1}");
    watch_all(push_url, 1, 1);
    ck_assert_int_eq(mode(1), BM_MODE_POLL);
    ck_assert_int_eq(stopped_rows(1), 1);
    ck_assert_int_eq(mode(0), BM_MODE_PUSH); /* its earlier refusal is not held against it */
    ck_assert_int_eq(stopped_rows(0), 1);
}
END_TEST

START_TEST(stop_reaches_google_and_a_second_stop_is_fine)
{
    char err[256] = "";
    watch_all(push_url, 2, 0);
    bm_channel_t ch = current(0);
    ck_assert_int_eq(bm_engine_stop_channel(fx.e, &ch, err, sizeof(err)), 0);
    ck_assert_int_eq(counter(&fx.emu, "stop"), 1);
    resp_t *r = h_req(&fx.emu, "GET", "/_emulator/channels", NULL, NULL, NULL, NULL);
    ck_assert_ptr_null(strstr(r->body, ch.id));
    h_free(r);
    ck_assert_int_eq(stopped_rows(0), 1);
    ck_assert_int_eq(bm_engine_stop_channel(fx.e, &ch, err, sizeof(err)), 0); /* 404: done */
    ck_assert_int_eq(counter(&fx.emu, "stop"), 2);
    bm_channel_dispose(&ch);
    bm_channel_t none = {0};
    ck_assert_int_eq(
        bm_store_channel_current(fx.st, cal_id[0], bm_now_ms(), &none, err, sizeof(err)),
        BM_ENOTFOUND);
}
END_TEST

START_TEST(a_channel_near_its_end_is_replaced_then_stopped)
{
    char err[256] = "";
    size_t n = 99;
    watch_all(push_url, 2, 0);
    bm_channel_t old = current(0);
    /* as if Google had granted 100 ms and 10 were left: under a fifth of its life */
    sleep_ms(100);
    ck_assert_int_eq(bm_store_channel_set_granted(fx.st, old.id, old.resource_id, bm_now_ms() + 10,
                                                  err, sizeof(err)),
                     0);
    watch_all(push_url, 2, 0);
    ck_assert_int_eq(counter(&fx.emu, "watch"), 3); /* only the old one was renewed */
    bm_channel_t now = current(0);
    ck_assert_str_ne(now.id, old.id);
    ck_assert_int_eq(bm_engine_stop_stale(fx.e, &n, err, sizeof(err)), 0);
    ck_assert_uint_eq(n, 1);
    ck_assert_int_eq(counter(&fx.emu, "stop"), 1);
    ck_assert_int_eq(stopped_rows(0), 1);
    bm_channel_dispose(&old);
    bm_channel_dispose(&now);
    now = current(0); /* the new one stays */
    bm_channel_dispose(&now);
}
END_TEST

/* Channels opened together (a restart, a thousand calendars enabled at once)
 * renew at points spread over the last half of their margin, each within it. */
START_TEST(renewals_of_channels_opened_together_are_spread)
{
    const int64_t week = 7LL * 86400 * 1000, day = 86400LL * 1000;
    int per_minute[12 * 60 + 1] = {0}, busiest = 0, minutes = 0;
    for (int i = 0; i < 1000; i++) {
        char id[40];
        snprintf(id, sizeof(id), "bm%032x", (unsigned)(i * 2654435761u));
        int64_t m = bm_engine_renew_margin_ms(id, week, 0);
        ck_assert_int_ge(m, day / 2); /* a fifth of a week, capped at a day: its last half */
        ck_assert_int_le(m, day);
        int slot = (int)((m - day / 2) / 60000);
        if (per_minute[slot]++ == 0)
            minutes++;
        if (per_minute[slot] > busiest)
            busiest = per_minute[slot];
    }
    ck_assert_int_ge(minutes, 400); /* of 720 */
    ck_assert_int_le(busiest, 8);
    /* an explicit renew_before, and the same id always at the same point */
    ck_assert_int_eq(bm_engine_renew_margin_ms("bmx", week, 3600),
                     bm_engine_renew_margin_ms("bmx", week, 3600));
    ck_assert_int_ge(bm_engine_renew_margin_ms("bmx", week, 3600), 1800 * 1000);
    ck_assert_int_le(bm_engine_renew_margin_ms("bmx", week, 3600), 3600 * 1000);
}
END_TEST

Suite *make_suite(void)
{
    Suite *s = suite_create("engine/channels");
    TCase *tc = tcase_create("channels");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, every_enabled_calendar_gets_a_channel_and_push);
    tcase_add_test(tc, a_second_watch_all_reuses_live_channels);
    tcase_add_test(tc, a_refused_watch_leaves_the_calendar_polling);
    tcase_add_test(tc, stop_reaches_google_and_a_second_stop_is_fine);
    tcase_add_test(tc, a_channel_near_its_end_is_replaced_then_stopped);
    tcase_add_test(tc, renewals_of_channels_opened_together_are_spread);
    suite_add_tcase(s, tc);
    return s;
}

#include "tests/check_main.h"
