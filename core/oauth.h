/*
 * core/oauth.h: everything OAuth 2.0 about Google: the token request's form and
 * the reading of its answer (both grants: refresh_token and authorization_code),
 * and the installed-app login (PKCE S256, a random state, a loopback listener on
 * 127.0.0.1 that receives the browser's redirect, the consent address).
 *
 * The token request itself goes through bm_gcal_t (its HTTP client, retries and
 * counters): bm_gcal_refresh() and bm_gcal_exchange_code() in core/gcal.h.
 *
 * Secrets: every token, code and verifier is registered with bm_log_add_secret()
 * (access tokens with bm_log_add_transient_secret()) as soon as it is known, and
 * wiped from memory when the struct holding it is disposed.
 */
#ifndef BM_CORE_OAUTH_H
#define BM_CORE_OAUTH_H

#include "core/util.h"

#include <stddef.h>
#include <stdint.h>

#define BM_OAUTH_ACCESS_TOKEN_MAX 4096
/* The longest refresh token accepted, from a login or a file (Google's are about
 * 100 characters). */
#define BM_OAUTH_REFRESH_TOKEN_MAX 512
#define BM_OAUTH_SCOPE             "https://www.googleapis.com/auth/calendar"

struct bm_gcal;

/* ---- the token request ---- */

/* The grant: refresh_token set is the refresh grant, else code (with redirect_uri
 * and optionally code_verifier) is the authorization code grant. Borrowed. */
typedef struct bm_oauth_grant {
    const char *refresh_token;
    const char *code;
    const char *code_verifier;
    const char *redirect_uri;
} bm_oauth_grant_t;

/* The token endpoint's answer. Caller-owned; bm_oauth_tokens_dispose() wipes it. */
typedef struct bm_oauth_tokens {
    char access_token[BM_OAUTH_ACCESS_TOKEN_MAX];
    int64_t expires_in_s;
    char *refresh_token; /* authorization code grant only; malloc'd */
} bm_oauth_tokens_t;

/* The form-encoded body of the token request (client secret and grant included)
 * into out, which the caller wipes and disposes. BM_EINVAL when the grant lacks
 * what it needs, BM_ETOOBIG when out's maximum is reached. */
int bm_oauth_token_form(const char *client_id, const char *client_secret,
                        const bm_oauth_grant_t *grant, bm_buf_t *out, char *err, size_t errlen);

/*
 * Reads the token endpoint's final answer (status and JSON body) into out
 * (cleared first). 200 with what the grant must yield: 0. invalid_grant: BM_EAUTH
 * (the refresh token is dead, or the code expired or was used already). Any other
 * refusal, or an answer without the token: BM_EAPI with Google's reason in err.
 */
int bm_oauth_token_answer(const bm_oauth_grant_t *grant, long status, const char *body,
                          bm_oauth_tokens_t *out, char *err, size_t errlen);

void bm_oauth_tokens_dispose(bm_oauth_tokens_t *t);

/* ---- the installed-app login ---- */

typedef struct bm_oauth_login_opts {
    const char *auth_url; /* Google's consent endpoint */
    const char *client_id;
    const char *login_hint; /* optional e-mail address */
} bm_oauth_login_opts_t;

/* A login in progress: caller-owned, filled by bm_oauth_login_start() and
 * released by bm_oauth_login_dispose() (also after a failed start). */
typedef struct bm_oauth_login {
    char *url;                   /* the consent address to show the user */
    int port;                    /* the listener's port on 127.0.0.1 */
    char redirect_uri[64];       /* http://127.0.0.1:<port>/ */
    struct bm__oauth_flow *flow; /* private: PKCE, state, listener */
} bm_oauth_login_t;

/* Makes the PKCE verifier and challenge and the state, opens the listener on a
 * random loopback port and builds the consent address. BM_ECRYPTO, BM_EIO,
 * BM_ETOOBIG (the address would be too long). */
int bm_oauth_login_start(const bm_oauth_login_opts_t *o, bm_oauth_login_t *l, char *err,
                         size_t errlen);

/*
 * Serves the listener (a few browser connections at once, each request head
 * bounded, idle ones closed) until the redirect with the right state arrives or
 * timeout_s pass; exchanges its code with g (bm_gcal_exchange_code) and answers
 * the browser with a page saying how it went. On 0, *refresh_token (caller wipes
 * and frees) is Google's refresh token. BM_ECANCELED on timeout, BM_EAUTH when
 * access was denied or Google refused the code, the exchange's errors, BM_EIO.
 */
int bm_oauth_login_wait(bm_oauth_login_t *l, struct bm_gcal *g, int timeout_s, char **refresh_token,
                        char *err, size_t errlen);

/* Closes the listener and wipes the verifier and state. NULL fields are fine. */
void bm_oauth_login_dispose(bm_oauth_login_t *l);

#endif
