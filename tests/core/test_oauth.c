/* tests/core/test_oauth.c: the installed-app login's loopback listener, with this
 * test playing the browser (and a forger) over 127.0.0.1. */
#include "core/gcal.h"
#include "core/log.h"
#include "core/oauth.h"
#include "core/util.h"

#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define FORGED 3000

/* Sends one GET of target to 127.0.0.1:port and reads the answer until the
 * listener closes; the status code, or -1. */
static int get(int port, const char *target)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    char req[1024], resp[2048];
    int status = -1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct timeval tv = {.tv_sec = 30};
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0 ||
        connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
        goto out;
    int n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", target);
    if (send(fd, req, (size_t)n, MSG_NOSIGNAL) != n)
        goto out;
    size_t len = 0;
    ssize_t r;
    while (len + 1 < sizeof(resp) && (r = recv(fd, resp + len, sizeof(resp) - 1 - len, 0)) > 0)
        len += (size_t)r;
    resp[len] = '\0';
    if (sscanf(resp, "HTTP/1.1 %d", &status) != 1)
        status = -1;
out:
    if (fd >= 0)
        close(fd);
    return status;
}

typedef struct browser {
    int port;
    char state[64];  /* the login's, from the consent address */
    int n_rejected;  /* forged answers refused with 400 */
    const char *end; /* the last request's query after state=... */
    int last_status;
} browser_t;

/* Forges FORGED answers with a wrong state, each with a code of its own, then
 * brings the real answer (end). */
static void *browse(void *arg)
{
    browser_t *b = arg;
    char target[512];
    for (int i = 0; i < FORGED; i++) {
        snprintf(target, sizeof(target), "/?code=forged-code-%06d-masks-words&state=wrong%d", i, i);
        if (get(b->port, target) == 400)
            b->n_rejected++;
    }
    snprintf(target, sizeof(target), "/?state=%s&%s", b->state, b->end);
    b->last_status = get(b->port, target);
    return NULL;
}

/* The state parameter of the consent address (base64url: no escaping). */
static void state_of(const char *url, char *out, size_t len)
{
    const char *p = strstr(url, "&state=");
    ck_assert_ptr_nonnull(p);
    p += strlen("&state=");
    size_t n = strcspn(p, "&");
    ck_assert_uint_lt(n, len);
    memcpy(out, p, n);
    out[n] = '\0';
}

/* Runs a login whose browser forges FORGED answers before the real one (end);
 * returns what bm_oauth_login_wait returned. */
static int login_with_forgers(bm_gcal_t *g, const char *end, browser_t *b, char *err, size_t errlen)
{
    bm_oauth_login_opts_t o = {.auth_url = "https://accounts.example.com/o/oauth2/auth",
                               .client_id = "client-id.apps.example.com"};
    bm_oauth_login_t l;
    char *rt = NULL;
    ck_assert_int_eq(bm_oauth_login_start(&o, &l, err, errlen), 0);
    memset(b, 0, sizeof(*b));
    b->port = l.port;
    b->end = end;
    state_of(l.url, b->state, sizeof(b->state));
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, browse, b), 0);
    int rc = bm_oauth_login_wait(&l, g, 120, &rt, err, errlen);
    ck_assert_int_eq(pthread_join(t, NULL), 0);
    ck_assert_ptr_null(rt);
    bm_oauth_login_dispose(&l);
    return rc;
}

/* Forged answers (a wrong state) register nothing: before the fix each one's
 * code became a log secret, so any local process could grow the registry
 * without bound and mask words in every later line. */
START_TEST(forged_answers_register_no_secret)
{
    char err[512] = "";
    browser_t b;
    size_t before = bm_log_secret_count();
    int rc = login_with_forgers(NULL, "error=access_denied", &b, err, sizeof(err));
    ck_assert_int_eq(rc, BM_EAUTH);
    ck_assert_msg(strstr(err, "access was denied") != NULL, "%s", err);
    ck_assert_int_eq(b.n_rejected, FORGED);
    ck_assert_int_eq(b.last_status, 200);
    /* the PKCE verifier is the only new secret */
    ck_assert_uint_eq(bm_log_secret_count(), before + 1);
    char dst[128];
    bm_log_scrub("forged-code-000042-masks-words", dst, sizeof(dst));
    ck_assert_str_eq(dst, "forged-code-000042-masks-words");
}
END_TEST

/* The real answer's code is registered once the state matched. */
START_TEST(the_real_code_is_registered)
{
    char err[512] = "";
    browser_t b;
    bm_gcal_t *g = NULL;
    /* Nothing listens on port 9: the exchange fails after the code is known. */
    bm_gcal_opts_t go = {.token_url = "http://127.0.0.1:9/token",
                         .client_id = "client-id.apps.example.com",
                         .client_secret = "client-secret-value",
                         .max_retries = -1};
    ck_assert_int_eq(bm_gcal_new(&go, &g, err, sizeof(err)), 0);
    size_t before = bm_log_secret_count();
    int rc = login_with_forgers(g, "code=4/0Athe-real-authorization-code", &b, err, sizeof(err));
    ck_assert_int_ne(rc, 0);
    ck_assert_int_eq(b.n_rejected, FORGED);
    ck_assert_int_eq(b.last_status, 502);
    ck_assert_uint_eq(bm_log_secret_count(), before + 2); /* the verifier and the code */
    char dst[128];
    bm_log_scrub("code 4/0Athe-real-authorization-code", dst, sizeof(dst));
    ck_assert_str_eq(dst, "code ***");
    bm_gcal_free(g);
}
END_TEST

Suite *make_suite(void)
{
    Suite *s = suite_create("oauth");
    TCase *tc = tcase_create("login");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, forged_answers_register_no_secret);
    tcase_add_test(tc, the_real_code_is_registered);
    suite_add_tcase(s, tc);
    return s;
}

#include "check_main.h"
