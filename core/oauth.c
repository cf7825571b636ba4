/*
 * core/oauth.c: Google's OAuth 2.0 (see core/oauth.h): the token request's form
 * and answer, and the installed-app login.
 *
 * The login listener serves a few connections at once with poll() (browsers open
 * spare connections and may leave them idle), each request head bounded to
 * LOGIN_REQ_MAX bytes. Secrets (code, verifier, tokens) are registered with the
 * log scrubber, never printed, and wiped from memory when done.
 */
#include "core/oauth.h"
#include "core/crypto.h"
#include "core/gcal.h"
#include "core/json.h"
#include "core/log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <yajl/yajl_tree.h>

#define LOGIN_REQ_MAX      8192  /* request line and headers */
#define LOGIN_MAX_CONNS    8     /* browser connections served at once */
#define LOGIN_CONN_IDLE_MS 30000 /* an idle browser connection is closed after this */
#define LOGIN_URL_MAX      8192
#define VERIFIER_BYTES     48 /* 64 base64url characters */
#define STATE_BYTES        24 /* 32 base64url characters */

/* ---------------------------------------------------------------- the token request */

/* Appends "&key=value" to a form, the value escaped straight into it (no copy of
 * a secret elsewhere; a secret form buffer wipes what it outgrows). */
static int form_add(bm_buf_t *b, const char *key, const char *value)
{
    int rc = bm_buf_printf(b, "%s%s=", b->len > 0 ? "&" : "", key);
    return rc != BM_OK ? rc : bm_buf_url_encode(b, value != NULL ? value : "");
}

int bm_oauth_token_form(const char *client_id, const char *client_secret,
                        const bm_oauth_grant_t *grant, bm_buf_t *out, char *err, size_t errlen)
{
    int rc = BM_OK;
    bool refresh = grant->refresh_token != NULL;
    if (!refresh && (grant->code == NULL || grant->redirect_uri == NULL)) {
        rc = bm_err(err, errlen, BM_EINVAL, "code and redirect_uri are required");
        goto out;
    }
    if (refresh) {
        rc = form_add(out, "grant_type", "refresh_token");
        rc = rc != BM_OK ? rc : form_add(out, "client_id", client_id);
        rc = rc != BM_OK ? rc : form_add(out, "client_secret", client_secret);
        rc = rc != BM_OK ? rc : form_add(out, "refresh_token", grant->refresh_token);
    } else {
        rc = form_add(out, "grant_type", "authorization_code");
        rc = rc != BM_OK ? rc : form_add(out, "code", grant->code);
        rc = rc != BM_OK ? rc : form_add(out, "client_id", client_id);
        rc = rc != BM_OK ? rc : form_add(out, "client_secret", client_secret);
        rc = rc != BM_OK ? rc : form_add(out, "redirect_uri", grant->redirect_uri);
        if (rc == BM_OK && grant->code_verifier != NULL)
            rc = form_add(out, "code_verifier", grant->code_verifier);
    }
    if (rc != BM_OK)
        rc = bm_err(err, errlen, BM_ETOOBIG, "the token request is too large");
out:
    return rc;
}

/* A string member of a JSON object, or NULL (yajl's own lookup). */
static char *jstr(yajl_val obj, const char *key)
{
    const char *path[] = {key, NULL};
    yajl_val v = obj != NULL ? yajl_tree_get(obj, path, yajl_t_string) : NULL;
    return v != NULL ? YAJL_GET_STRING(v) : NULL;
}

/* Copies a message into err with every registered secret masked. */
static int scrubbed_err(char *err, size_t errlen, int code, const char *msg)
{
    if (err != NULL && errlen > 0)
        bm_log_scrub(msg, err, errlen);
    return code;
}

/* A final refusal of the token endpoint as an error. */
static int token_refused(const bm_oauth_grant_t *grant, long status, const char *body, char *err,
                         size_t errlen)
{
    char reason[64], message[256], msg[512];
    bm_gcal_error_parse(body, reason, sizeof(reason), message, sizeof(message));
    if (strcmp(reason, "invalid_grant") == 0 && grant->refresh_token == NULL)
        return bm_err(err, errlen, BM_EAUTH,
                      "Google refused the authorization code (invalid_grant): it expired or "
                      "was used already; log in again");
    if (strcmp(reason, "invalid_grant") == 0) {
        snprintf(msg, sizeof(msg),
                 "Google refused the refresh token (invalid_grant%s%s): log in again",
                 message[0] ? ": " : "", message);
        return scrubbed_err(err, errlen, BM_EAUTH, msg);
    }
    snprintf(msg, sizeof(msg), "token endpoint: HTTP %ld %s%s%s", status,
             reason[0] ? reason : "error", message[0] ? ": " : "", message);
    if (strcmp(reason, "invalid_client") == 0 || strcmp(reason, "unauthorized_client") == 0)
        snprintf(msg + strlen(msg), sizeof(msg) - strlen(msg),
                 " (check [google] client_id and client_secret)");
    return scrubbed_err(err, errlen, BM_EAPI, msg);
}

int bm_oauth_token_answer(const bm_oauth_grant_t *grant, long status, const char *body,
                          bm_oauth_tokens_t *out, char *err, size_t errlen)
{
    int rc = BM_OK;
    yajl_val root = NULL;
    memset(out, 0, sizeof(*out));
    if (status != 200) {
        rc = token_refused(grant, status, body, err, errlen);
        goto out;
    }
    char perr[128];
    if ((root = bm_json_parse(body, body != NULL ? strlen(body) : 0, perr, sizeof(perr))) == NULL) {
        rc = bm_err(err, errlen, BM_EAPI, "token endpoint: unparseable answer: %s", perr);
        goto out;
    }
    const char *at = jstr(root, "access_token");
    const char *exp_path[] = {"expires_in", NULL};
    yajl_val exp = yajl_tree_get(root, exp_path, yajl_t_number);
    out->expires_in_s = exp != NULL && YAJL_IS_INTEGER(exp) ? YAJL_GET_INTEGER(exp) : 3600;
    if (out->expires_in_s <= 0)
        out->expires_in_s = 60;
    if (out->expires_in_s > 86400) /* Google's live an hour: no absurd cache or overflow */
        out->expires_in_s = 86400;
    if (at != NULL && *at != '\0')
        bm_log_add_transient_secret(at, out->expires_in_s * 1000);
    if (grant->refresh_token != NULL) {
        if (at == NULL || *at == '\0' || strlen(at) >= sizeof(out->access_token)) {
            rc = bm_err(err, errlen, BM_EAPI,
                        "token endpoint: no usable access_token in the answer");
            goto out;
        }
        snprintf(out->access_token, sizeof(out->access_token), "%s", at);
        goto out;
    }
    const char *rt = jstr(root, "refresh_token");
    if (rt == NULL || *rt == '\0') {
        rc = bm_err(err, errlen, BM_EAPI,
                    "Google returned no refresh token (the consent must ask for offline access "
                    "with prompt=consent)");
        goto out;
    }
    bm_log_add_secret(rt);
    if (strlen(rt) > BM_OAUTH_REFRESH_TOKEN_MAX) {
        rc = bm_err(err, errlen, BM_EAPI,
                    "Google returned a refresh token longer than %d characters",
                    BM_OAUTH_REFRESH_TOKEN_MAX);
        goto out;
    }
    out->refresh_token = bm_strdup(rt);
out:
    /* The tree's copies of the tokens (and of id_token, ...) are wiped before it goes;
     * yajl's scratch buffers were wiped by bm_json_parse. */
    bm_json_wipe(root);
    bm_json_free(root);
    if (rc != BM_OK)
        bm_oauth_tokens_dispose(out);
    return rc;
}

void bm_oauth_tokens_dispose(bm_oauth_tokens_t *t)
{
    explicit_bzero(t->access_token, sizeof(t->access_token));
    t->expires_in_s = 0;
    if (t->refresh_token != NULL) {
        bm_crypto_wipe(t->refresh_token, strlen(t->refresh_token));
        free(t->refresh_token);
    }
    t->refresh_token = NULL;
}

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
    if (a.state == NULL || !bm_consttime_streq(a.state, state)) {
        send_page(c->fd, 400, "Bad Request",
                  "busymirror: this answer does not belong to the login in progress (state "
                  "mismatch). Open the address busymirror printed last.");
        goto out;
    }
    /* Only now: any local process can send answers, and each registered code
     * would grow the registry and mask its text in every later line. */
    if (a.code != NULL)
        bm_log_add_secret(a.code);
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

/* The consent address: auth_url with the flow's parameters. Caller frees; NULL when
 * longer than LOGIN_URL_MAX. */
static char *auth_address(const bm_oauth_login_opts_t *o, const char *redirect_uri, const pkce_t *p)
{
    const char *keys[] = {"client_id", "redirect_uri",   "response_type",
                          "scope",     "access_type",    "prompt",
                          "state",     "code_challenge", "code_challenge_method",
                          "login_hint"};
    const char *vals[] = {o->client_id, redirect_uri, "code",       BM_OAUTH_SCOPE, "offline",
                          "consent",    p->state,     p->challenge, "S256",         o->login_hint};
    bm_buf_t b;
    bm_buf_init(&b, LOGIN_URL_MAX);
    int rc = bm_buf_puts(&b, o->auth_url);
    char sep = strchr(o->auth_url, '?') != NULL ? '&' : '?';
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

/* ---------------------------------------------------------------- the login */

struct bm__oauth_flow {
    pkce_t pkce;
    listener_t listener;
};

int bm_oauth_login_start(const bm_oauth_login_opts_t *o, bm_oauth_login_t *l, char *err,
                         size_t errlen)
{
    int rc = BM_OK;
    memset(l, 0, sizeof(*l));
    l->flow = bm_calloc(1, sizeof(*l->flow));
    l->flow->listener.fd = -1;
    for (size_t i = 0; i < LOGIN_MAX_CONNS; i++)
        l->flow->listener.conns[i].fd = -1;
    if ((rc = pkce_init(&l->flow->pkce, err, errlen)) != BM_OK)
        goto out;
    if ((rc = listener_open(&l->flow->listener, err, errlen)) != BM_OK)
        goto out;
    l->port = l->flow->listener.port;
    snprintf(l->redirect_uri, sizeof(l->redirect_uri), "http://127.0.0.1:%d/", l->port);
    l->url = auth_address(o, l->redirect_uri, &l->flow->pkce);
    if (l->url == NULL)
        rc = bm_err(err, errlen, BM_ETOOBIG, "the consent address is too long");
out:
    return rc;
}

int bm_oauth_login_wait(bm_oauth_login_t *l, struct bm_gcal *g, int timeout_s, char **refresh_token,
                        char *err, size_t errlen)
{
    int fd = -1;
    char *code = NULL;
    *refresh_token = NULL;
    int rc =
        wait_for_code(&l->flow->listener, l->flow->pkce.state, timeout_s, &code, &fd, err, errlen);
    if (rc != BM_OK)
        goto out;
    listener_close(&l->flow->listener); /* nothing else is served; fd stays open for the answer */
    rc = bm_gcal_exchange_code(g, code, l->flow->pkce.verifier, l->redirect_uri, refresh_token, err,
                               errlen);
    if (rc == BM_OK)
        send_page(fd, 200, "OK", "busymirror: you can close this tab");
    else
        send_page(fd, 502, "Bad Gateway",
                  "busymirror: Google refused the login; see the terminal for why");
out:
    if (fd >= 0)
        close(fd);
    if (code != NULL) {
        bm_crypto_wipe(code, strlen(code));
        free(code);
    }
    return rc;
}

void bm_oauth_login_dispose(bm_oauth_login_t *l)
{
    if (l->flow != NULL) {
        listener_close(&l->flow->listener);
        bm_crypto_wipe(&l->flow->pkce, sizeof(l->flow->pkce));
        free(l->flow);
    }
    free(l->url);
    memset(l, 0, sizeof(*l));
}
