/*
 * cli/account_login.c: `busymirror account login`, Google's installed-app flow.
 *
 * PKCE (S256) and a random state; a one-shot HTTP listener on 127.0.0.1 with a
 * random port receives the browser's redirect; the code is exchanged for a
 * refresh token, which is sealed and stored (a new account, or a new token for
 * an existing one, which also clears needs-login). The e-mail is the id of the
 * account's primary calendar, and the calendar list is stored right away.
 *
 * The listener serves a few connections at once with poll() (browsers open
 * spare connections and may leave them idle), each request head bounded to
 * LOGIN_REQ_MAX bytes. Secrets (code, verifier, tokens) are registered with the
 * log scrubber, never printed, and wiped from memory when done.
 */
#include "cli/cli.h"
#include "core/crypto.h"
#include "core/gcal.h"
#include "core/log.h"
#include "core/util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define LOGIN_SCOPE           "https://www.googleapis.com/auth/calendar"
#define LOGIN_DEFAULT_TIMEOUT 300
#define LOGIN_REQ_MAX         8192  /* request line and headers */
#define LOGIN_MAX_CONNS       8     /* browser connections served at once */
#define LOGIN_CONN_IDLE_MS    30000 /* an idle browser connection is closed after this */
#define LOGIN_URL_MAX         8192
#define LOGIN_MAX_CALENDARS   10000
#define VERIFIER_BYTES        48 /* 64 base64url characters */
#define STATE_BYTES           24 /* 32 base64url characters */

/* ---------------------------------------------------------------- PKCE */

typedef struct pkce {
    char verifier[65];  /* base64url of VERIFIER_BYTES random bytes */
    char challenge[44]; /* base64url(SHA-256(verifier)) */
    char state[33];
} pkce_t;

/* base64url without padding into out, which holds 4 * ceil(n / 3) + 1 bytes. */
static void b64url(const unsigned char *in, size_t n, char *out)
{
    bm_buf_t b;
    bm_buf_init(&b, 4 * ((n + 2) / 3));
    bm_buf_b64url(&b, in, n);
    memcpy(out, b.data, b.len + 1);
    bm_crypto_wipe(b.data, b.len);
    bm_buf_dispose(&b);
}

static int pkce_init(pkce_t *p, char *err, size_t errlen)
{
    unsigned char rnd[VERIFIER_BYTES], dig[EVP_MAX_MD_SIZE];
    unsigned int dig_len = 0;
    int rc = BM_OK;
    if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
        rc = bm_err(err, errlen, BM_ECRYPTO, "no random bytes from OpenSSL");
        goto out;
    }
    b64url(rnd, sizeof(rnd), p->verifier);
    if (EVP_Digest(p->verifier, strlen(p->verifier), dig, &dig_len, EVP_sha256(), NULL) != 1 ||
        dig_len != 32) {
        rc = bm_err(err, errlen, BM_ECRYPTO, "SHA-256 failed");
        goto out;
    }
    b64url(dig, dig_len, p->challenge);
    if (RAND_bytes(rnd, STATE_BYTES) != 1) {
        rc = bm_err(err, errlen, BM_ECRYPTO, "no random bytes from OpenSSL");
        goto out;
    }
    b64url(rnd, STATE_BYTES, p->state);
    bm_log_add_secret(p->verifier);
out:
    bm_crypto_wipe(rnd, sizeof(rnd));
    return rc;
}

/* ---------------------------------------------------------------- the listener */

typedef struct conn {
    int fd; /* -1: free slot */
    int64_t since_ms;
    size_t len;
    char buf[LOGIN_REQ_MAX];
} conn_t;

typedef struct listener {
    int fd;
    int port;
    conn_t conns[LOGIN_MAX_CONNS];
} listener_t;

static void conn_close(conn_t *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    bm_crypto_wipe(c->buf, sizeof(c->buf)); /* may hold the code */
    c->len = 0;
}

static int listener_open(listener_t *l, char *err, size_t errlen)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
    socklen_t sa_len = sizeof(sa);
    int rc = BM_OK;
    for (size_t i = 0; i < LOGIN_MAX_CONNS; i++)
        l->conns[i].fd = -1;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    l->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (l->fd < 0) {
        rc = bm_err(err, errlen, BM_EIO, "socket: %s", strerror(errno));
        goto out;
    }
    if (bind(l->fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(l->fd, 16) != 0 ||
        getsockname(l->fd, (struct sockaddr *)&sa, &sa_len) != 0) {
        rc = bm_err(err, errlen, BM_EIO, "cannot listen on 127.0.0.1: %s", strerror(errno));
        goto out;
    }
    l->port = ntohs(sa.sin_port);
out:
    return rc;
}

static void listener_close(listener_t *l)
{
    for (size_t i = 0; i < LOGIN_MAX_CONNS; i++)
        conn_close(&l->conns[i]);
    if (l->fd >= 0)
        close(l->fd);
    l->fd = -1;
}

/* Writes all of buf to a (blocking, SO_SNDTIMEO-bounded) socket. */
static int send_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return BM_EIO;
        buf += n;
        len -= (size_t)n;
    }
    return BM_OK;
}

/* Answers with a small HTML page; text is trusted (constant or sanitised). */
static void send_page(int fd, int status, const char *reason, const char *text)
{
    char body[1024], head[512];
    int bl = snprintf(body, sizeof(body),
                      "<!doctype html>\n<html><head><meta charset=\"utf-8\">"
                      "<title>busymirror</title></head>\n<body><p>%s</p></body></html>\n",
                      text);
    if (bl < 0 || (size_t)bl >= sizeof(body))
        return;
    int hl = snprintf(head, sizeof(head),
                      "HTTP/1.1 %d %s\r\nContent-Type: text/html; charset=utf-8\r\n"
                      "Content-Length: %d\r\nCache-Control: no-store\r\n"
                      "Referrer-Policy: no-referrer\r\nConnection: close\r\n\r\n",
                      status, reason, bl);
    if (hl < 0 || (size_t)hl >= sizeof(head))
        return;
    if (send_all(fd, head, (size_t)hl) == BM_OK)
        (void)send_all(fd, body, (size_t)bl);
    (void)shutdown(fd, SHUT_WR);
}

/* ---------------------------------------------------------------- the redirect */

/* What the browser brought back in the redirect's query. */
typedef struct answer {
    char *code;
    char *state;
    char *error;
} answer_t;

static void answer_dispose(answer_t *a)
{
    if (a->code != NULL)
        bm_crypto_wipe(a->code, strlen(a->code));
    free(a->code);
    free(a->state);
    free(a->error);
    memset(a, 0, sizeof(*a));
}

/* Parses "a=b&c=d" (n bytes) keeping code, state and error; a repeated one is BM_EINVAL. */
static int parse_query(const char *q, size_t n, answer_t *a)
{
    const char *p = q, *end = q + n;
    int rc = BM_OK;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *e = amp != NULL ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(e - p));
        const char *ne = eq != NULL ? eq : e;
        char *name = NULL, *value = NULL, **slot = NULL;
        if (bm_url_decode(p, (size_t)(ne - p), true, true, &name) != BM_OK ||
            bm_url_decode(eq != NULL ? eq + 1 : e, eq != NULL ? (size_t)(e - eq - 1) : 0, true,
                          true, &value) != BM_OK) {
            rc = BM_EINVAL;
        } else if (strcmp(name, "code") == 0) {
            slot = &a->code;
        } else if (strcmp(name, "state") == 0) {
            slot = &a->state;
        } else if (strcmp(name, "error") == 0) {
            slot = &a->error;
        }
        if (slot != NULL && *slot != NULL)
            rc = BM_EINVAL;
        else if (slot != NULL)
            *slot = value, value = NULL;
        free(name);
        if (value != NULL)
            bm_crypto_wipe(value, strlen(value));
        free(value);
        if (rc != BM_OK)
            break;
        p = e + 1;
    }
    return rc;
}

typedef enum { REQ_WAIT, REQ_CODE, REQ_DENIED } req_result_t;

/*
 * Handles one complete request head in c->buf. REQ_WAIT: answered (or not worth
 * an answer), the connection can go. REQ_CODE: *code is set (caller frees) and the
 * connection is kept for the final answer. REQ_DENIED: answered; err says why.
 */
static req_result_t handle_request(conn_t *c, const char *state, char **code, char *err,
                                   size_t errlen)
{
    answer_t a = {0};
    req_result_t res = REQ_WAIT;
    char *line_end = strstr(c->buf, "\r\n"), *sp1, *sp2;
    if (line_end == NULL)
        line_end = strchr(c->buf, '\n');
    if (line_end == NULL || (sp1 = memchr(c->buf, ' ', (size_t)(line_end - c->buf))) == NULL ||
        (sp2 = memchr(sp1 + 1, ' ', (size_t)(line_end - sp1 - 1))) == NULL ||
        strncmp(sp2 + 1, "HTTP/1.", 7) != 0) {
        send_page(c->fd, 400, "Bad Request", "busymirror: malformed request");
        goto out;
    }
    const char *target = sp1 + 1;
    size_t target_len = (size_t)(sp2 - target);
    for (size_t i = 0; i < target_len; i++) {
        if ((unsigned char)target[i] <= ' ' || (unsigned char)target[i] >= 0x7f) {
            send_page(c->fd, 400, "Bad Request", "busymirror: malformed request");
            goto out;
        }
    }
    if ((size_t)(sp1 - c->buf) != 3 || memcmp(c->buf, "GET", 3) != 0) {
        send_page(c->fd, 405, "Method Not Allowed", "busymirror: only GET is served here");
        goto out;
    }
    const char *qm = memchr(target, '?', target_len);
    size_t path_len = qm != NULL ? (size_t)(qm - target) : target_len;
    if (path_len != 1 || target[0] != '/') {
        send_page(c->fd, 404, "Not Found", "busymirror: not found");
        goto out;
    }
    if (qm == NULL || parse_query(qm + 1, target_len - path_len - 1, &a) != BM_OK) {
        send_page(c->fd, 400, "Bad Request",
                  "busymirror: this is not an answer to the login (no or malformed query)");
        goto out;
    }
    if (a.code != NULL)
        bm_log_add_secret(a.code);
    if (a.state == NULL || !bm_consttime_streq(a.state, state)) {
        send_page(c->fd, 400, "Bad Request",
                  "busymirror: this answer does not belong to the login in progress (state "
                  "mismatch). Open the address busymirror printed last.");
        goto out;
    }
    if (a.error != NULL) {
        char safe[64];
        size_t j = 0;
        for (const char *p = a.error; *p != '\0' && j + 1 < sizeof(safe); p++)
            safe[j++] = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                                (*p >= '0' && *p <= '9') || *p == '_' || *p == '-' || *p == '.'
                            ? *p
                            : '?';
        safe[j] = '\0';
        if (strcmp(a.error, "access_denied") == 0)
            bm_err(err, errlen, BM_EAUTH, "access was denied in the browser (error=access_denied)");
        else
            bm_err(err, errlen, BM_EAUTH, "Google answered the login with error=%s", safe);
        char page[160];
        snprintf(page, sizeof(page),
                 "busymirror: access was not granted (%s); you can close this tab", safe);
        send_page(c->fd, 200, "OK", page);
        res = REQ_DENIED;
        goto out;
    }
    if (a.code == NULL || a.code[0] == '\0') {
        send_page(c->fd, 400, "Bad Request",
                  "busymirror: the answer carries no authorization code");
        goto out;
    }
    *code = a.code;
    a.code = NULL;
    res = REQ_CODE;
out:
    answer_dispose(&a);
    return res;
}

/* Reads what is there from c; 1 when a whole request head is in, 0 to wait, -1 when
 * the connection was closed (or answered and closed). */
static int conn_read(conn_t *c)
{
    ssize_t n = recv(c->fd, c->buf + c->len, sizeof(c->buf) - 1 - c->len, 0);
    if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
        return 0;
    if (n <= 0) {
        conn_close(c);
        return -1;
    }
    c->len += (size_t)n;
    c->buf[c->len] = '\0';
    if (memchr(c->buf, '\0', c->len) != NULL) {
        send_page(c->fd, 400, "Bad Request", "busymirror: malformed request");
        conn_close(c);
        return -1;
    }
    if (strstr(c->buf, "\r\n\r\n") != NULL || strstr(c->buf, "\n\n") != NULL)
        return 1;
    if (c->len == sizeof(c->buf) - 1) {
        if (strchr(c->buf, '\n') == NULL)
            send_page(c->fd, 414, "URI Too Long", "busymirror: request too long");
        else
            send_page(c->fd, 431, "Request Header Fields Too Large",
                      "busymirror: request too long");
        conn_close(c);
        return -1;
    }
    return 0;
}

static void conn_accept(listener_t *l)
{
    conn_t *c = NULL;
    for (size_t i = 0; i < LOGIN_MAX_CONNS && c == NULL; i++)
        if (l->conns[i].fd < 0)
            c = &l->conns[i];
    if (c == NULL)
        return;
    int fd = accept4(l->fd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0)
        return; /* EAGAIN, ECONNABORTED ...: the next poll tells */
    struct timeval tv = {.tv_sec = 5};
    if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) != 0) {
        close(fd);
        return;
    }
    c->fd = fd;
    c->len = 0;
    c->since_ms = bm_mono_ms();
}

/*
 * Serves the listener until a request with the right state arrives. BM_OK: *code
 * (caller frees) and *fd (caller answers and closes) are set. BM_ECANCELED on
 * timeout, BM_EAUTH when the browser reported an error (err), BM_EIO.
 */
static int wait_for_code(listener_t *l, const char *state, int timeout_s, char **code, int *fd,
                         char *err, size_t errlen)
{
    struct pollfd pfd[1 + LOGIN_MAX_CONNS];
    conn_t *who[1 + LOGIN_MAX_CONNS];
    int64_t deadline = bm_mono_ms() + (int64_t)timeout_s * 1000;
    int rc = BM_OK;
    *code = NULL;
    *fd = -1;
    for (;;) {
        int64_t now = bm_mono_ms(), wait = deadline - now;
        nfds_t n = 0;
        bool room = false;
        if (wait <= 0) {
            rc = bm_err(err, errlen, BM_ECANCELED, "no answer from the browser within %d s",
                        timeout_s);
            goto out;
        }
        for (size_t i = 0; i < LOGIN_MAX_CONNS; i++) {
            conn_t *c = &l->conns[i];
            if (c->fd >= 0 && now - c->since_ms >= LOGIN_CONN_IDLE_MS)
                conn_close(c);
            if (c->fd < 0) {
                room = true;
                continue;
            }
            if (c->since_ms + LOGIN_CONN_IDLE_MS - now < wait)
                wait = c->since_ms + LOGIN_CONN_IDLE_MS - now;
            pfd[n] = (struct pollfd){.fd = c->fd, .events = POLLIN};
            who[n++] = c;
        }
        if (room) {
            pfd[n] = (struct pollfd){.fd = l->fd, .events = POLLIN};
            who[n++] = NULL;
        }
        int ready = poll(pfd, n, (int)(wait < 1000 ? wait : 1000));
        if (ready < 0 && errno != EINTR) {
            rc = bm_err(err, errlen, BM_EIO, "poll: %s", strerror(errno));
            goto out;
        }
        for (nfds_t i = 0; ready > 0 && i < n; i++) {
            if (pfd[i].revents == 0)
                continue;
            conn_t *c = who[i];
            if (c == NULL) {
                conn_accept(l);
                continue;
            }
            if (conn_read(c) != 1)
                continue;
            req_result_t res = handle_request(c, state, code, err, errlen);
            if (res == REQ_CODE) {
                *fd = c->fd;
                c->fd = -1;
                conn_close(c);
                goto out;
            }
            conn_close(c);
            if (res == REQ_DENIED) {
                rc = BM_EAUTH;
                goto out;
            }
        }
    }
out:
    return rc;
}

/* ---------------------------------------------------------------- the account */

typedef struct found_cal {
    char *id, *summary, *time_zone, *access_role;
    bool primary;
} found_cal_t;

typedef struct found {
    found_cal_t *cals;
    size_t n, cap;
} found_t;

static int on_calendar(void *ud, const bm_gcal_calendar_t *c)
{
    found_t *f = ud;
    if (c->id == NULL)
        return BM_OK;
    if (f->n == LOGIN_MAX_CALENDARS)
        return BM_ETOOBIG;
    if (f->n == f->cap) {
        f->cap = f->cap != 0 ? f->cap * 2 : 16;
        f->cals = bm_realloc(f->cals, f->cap * sizeof(*f->cals));
    }
    f->cals[f->n++] = (found_cal_t){bm_strdup(c->id), bm_strdup(c->summary),
                                    bm_strdup(c->time_zone), bm_strdup(c->access_role), c->primary};
    return BM_OK;
}

static void found_dispose(found_t *f)
{
    for (size_t i = 0; i < f->n; i++) {
        free(f->cals[i].id);
        free(f->cals[i].summary);
        free(f->cals[i].time_zone);
        free(f->cals[i].access_role);
    }
    free(f->cals);
    memset(f, 0, sizeof(*f));
}

/* Stores the sealed token, the e-mail and the calendars in one transaction:
 * a new account, or the existing one (id > 0) with its token replaced. */
static int store_account(bm_store_t *st, const char *name, int64_t id, const unsigned char *sealed,
                         size_t sealed_len, const char *email, const found_t *f, char *err,
                         size_t errlen)
{
    int rc = bm_store_begin(st, err, errlen);
    if (rc != BM_OK)
        goto out;
    if (id > 0)
        rc = bm_store_account_set_token(st, id, sealed, sealed_len, err, errlen);
    else
        rc = bm_store_account_add(st, name, email, sealed, sealed_len, &id, err, errlen);
    if (rc == BM_OK && email != NULL)
        rc = bm_store_account_set_email(st, id, email, err, errlen);
    for (size_t i = 0; rc == BM_OK && i < f->n; i++)
        rc = bm_store_calendar_upsert(st, id, f->cals[i].id, f->cals[i].summary,
                                      f->cals[i].time_zone, f->cals[i].access_role,
                                      f->cals[i].primary, NULL, err, errlen);
    if (rc == BM_OK)
        rc = bm_store_commit(st, err, errlen);
    else
        bm_store_rollback(st);
out:
    return rc;
}

/* The consent address: auth_url with the flow's parameters. Caller frees. */
static char *auth_address(const bm_config_t *cfg, const char *redirect_uri, const pkce_t *p,
                          const char *hint)
{
    const char *keys[] = {"client_id", "redirect_uri",   "response_type",
                          "scope",     "access_type",    "prompt",
                          "state",     "code_challenge", "code_challenge_method",
                          "login_hint"};
    const char *vals[] = {
        cfg->google.client_id, redirect_uri, "code", LOGIN_SCOPE, "offline", "consent", p->state,
        p->challenge,          "S256",       hint};
    bm_buf_t b;
    bm_buf_init(&b, LOGIN_URL_MAX);
    int rc = bm_buf_puts(&b, cfg->google.auth_url);
    char sep = strchr(cfg->google.auth_url, '?') != NULL ? '&' : '?';
    for (size_t i = 0; rc == BM_OK && i < sizeof(keys) / sizeof(keys[0]); i++) {
        if (vals[i] == NULL)
            continue;
        char *v = bm_gcal_escape(vals[i]);
        rc = bm_buf_printf(&b, "%c%s=%s", sep, keys[i], v);
        free(v);
        sep = '&';
    }
    if (rc != BM_OK) {
        bm_buf_dispose(&b);
        return NULL;
    }
    return bm_buf_steal(&b);
}

/* Prints "busymirror account login: <err>" with every registered secret scrubbed. */
static void say(const char *err)
{
    char clean[1024];
    bm_log_scrub(err, clean, sizeof(clean));
    fprintf(stderr, "busymirror account login: %s\n", clean);
}

int bm_account_login(bm_cli_t *cli, int argc, char **argv)
{
    static const struct option opts[] = {{"name", required_argument, NULL, 'n'},
                                         {"no-browser", no_argument, NULL, 'b'},
                                         {"timeout", required_argument, NULL, 't'},
                                         {"login-hint", required_argument, NULL, 'l'},
                                         {NULL, 0, NULL, 0}};
    const bm_cli_command_t *self = bm_cli_find("account");
    const bm_config_t *cfg = &cli->cfg;
    const char *name = NULL, *hint = NULL;
    long timeout = LOGIN_DEFAULT_TIMEOUT;
    listener_t *l = NULL;
    bm_gcal_t *g = NULL;
    bm_gcal_account_t ga;
    bool ga_init = false;
    bm_account_t acct = {0};
    found_t found = {0};
    pkce_t pkce = {0};
    char err[1024], redirect_uri[64], *end, *url = NULL, *code = NULL, *token = NULL;
    const char *email = NULL;
    unsigned char *sealed = NULL;
    size_t sealed_len = 0;
    int64_t id = 0;
    int c, fd = -1, rc = BM_EXIT_OK, r;
    bm_store_t *st;

    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'n':
            name = optarg;
            break;
        case 'b':
            break; /* busymirror never launches a browser; kept for compatibility */
        case 't':
            timeout = strtol(optarg, &end, 10);
            if (*end != '\0' || end == optarg || timeout <= 0 || timeout > 86400)
                return bm_cli_usage_error(self, "--timeout takes seconds from 1 to 86400, not '%s'",
                                          optarg);
            break;
        case 'l':
            hint = optarg;
            break;
        default:
            return bm_cli_usage_error(self, "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (name == NULL || name[0] == '\0' || optind != argc)
        return bm_cli_usage_error(self, "login needs --name NAME");
    if (cfg->google.client_id == NULL || cfg->google.client_id[0] == '\0' ||
        cfg->google.client_secret == NULL || cfg->google.client_secret[0] == '\0') {
        fprintf(stderr, "busymirror account login: set [google] client_id and [google] "
                        "client_secret in the config (an OAuth client of type Desktop app)\n");
        return BM_EXIT_CONFIG;
    }

    /* Everything that can fail locally fails before the user is sent to a browser. */
    if ((rc = bm_cli_store(cli, &st)) != BM_EXIT_OK)
        goto out;
    rc = BM_EXIT_FAIL;
    r = bm_store_account_get(st, name, &acct, err, sizeof(err));
    if (r == BM_OK)
        id = acct.id;
    else if (r != BM_ENOTFOUND) {
        say(err);
        goto out;
    }
    bm_gcal_opts_t go = {.api_base_url = cfg->google.api_base_url,
                         .batch_url = cfg->google.batch_url,
                         .token_url = cfg->google.token_url,
                         .client_id = cfg->google.client_id,
                         .client_secret = cfg->google.client_secret};
    if (bm_gcal_new(&go, &g, err, sizeof(err)) != BM_OK ||
        pkce_init(&pkce, err, sizeof(err)) != BM_OK) {
        say(err);
        goto out;
    }
    l = bm_calloc(1, sizeof(*l));
    if (listener_open(l, err, sizeof(err)) != BM_OK) {
        say(err);
        goto out;
    }
    snprintf(redirect_uri, sizeof(redirect_uri), "http://127.0.0.1:%d/", l->port);
    url = auth_address(cfg, redirect_uri, &pkce, hint);
    if (url == NULL) {
        bm_err(err, sizeof(err), BM_ETOOBIG, "the consent address is too long");
        say(err);
        goto out;
    }
    printf("Open this address in a browser and allow access:\n%s\n", url);
    if (fflush(stdout) != 0) {
        bm_err(err, sizeof(err), BM_EIO, "cannot write to stdout");
        say(err);
        goto out;
    }
    fprintf(stderr, "busymirror account login: waiting up to %ld s for the browser on port %d\n",
            timeout, l->port);

    if (wait_for_code(l, pkce.state, (int)timeout, &code, &fd, err, sizeof(err)) != BM_OK) {
        say(err);
        goto out;
    }
    listener_close(l); /* nothing else is served; fd stays open for the answer */
    r = bm_gcal_exchange_code(g, code, pkce.verifier, redirect_uri, &token, err, sizeof(err));
    if (r == BM_OK)
        send_page(fd, 200, "OK", "busymirror: you can close this tab");
    else
        send_page(fd, 502, "Bad Gateway",
                  "busymirror: Google refused the login; see the terminal for why");
    close(fd);
    fd = -1;
    if (r != BM_OK) {
        say(err);
        goto out;
    }

    /* The new token must work, and tells who logged in. */
    bm_gcal_account_init(&ga, token, name);
    ga_init = true;
    if (bm_gcal_list_calendars(g, &ga, on_calendar, &found, err, sizeof(err)) != BM_OK) {
        say(err);
        goto out;
    }
    for (size_t i = 0; i < found.n && email == NULL; i++)
        if (found.cals[i].primary)
            email = found.cals[i].id;
    if (id > 0 && acct.email != NULL && email != NULL && strcasecmp(acct.email, email) != 0) {
        bm_err(err, sizeof(err), BM_EINVAL,
               "account '%s' is %s, but the browser logged in as %s; nothing changed (log in as "
               "%s, or use another --name)",
               name, acct.email, email, acct.email);
        say(err);
        goto out;
    }
    if (bm_cli_seal_token(cli, name, token, &sealed, &sealed_len) != BM_OK)
        goto out; /* printed */
    if (store_account(st, name, id, sealed, sealed_len, email, &found, err, sizeof(err)) != BM_OK) {
        say(err);
        goto out;
    }
    printf("account '%s' logged in as %s; %zu calendars found\n", name,
           email != NULL ? email : "(no primary calendar)", found.n);
    rc = BM_EXIT_OK;
out:
    if (fd >= 0)
        close(fd);
    if (l != NULL) {
        listener_close(l);
        free(l);
    }
    if (ga_init)
        bm_gcal_account_dispose(&ga);
    bm_gcal_free(g);
    if (code != NULL) {
        bm_crypto_wipe(code, strlen(code));
        free(code);
    }
    if (token != NULL) {
        bm_crypto_wipe(token, strlen(token));
        free(token);
    }
    bm_crypto_wipe(&pkce, sizeof(pkce));
    free(sealed);
    free(url);
    found_dispose(&found);
    bm_account_dispose(&acct);
    return rc;
}
