/* emulator/oauth.c: POST /token (refresh_token, authorization_code + PKCE) and the consent page. */
#include "emulator/emulator.h"

#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define CODE_TTL_MS   (10 * 60 * 1000)
#define DEFAULT_SCOPE "https://www.googleapis.com/auth/calendar"

static void oauth_error(emu_resp_t *rs, int status, const char *error, const char *desc)
{
    rs->status = status;
    bm_buf_reset(&rs->body);
    bm_buf_puts(&rs->body, "{\"error\":");
    emu_json_puts(&rs->body, error);
    if (desc != NULL) {
        bm_buf_puts(&rs->body, ",\"error_description\":");
        emu_json_puts(&rs->body, desc);
    }
    bm_buf_puts(&rs->body, "}");
}

static bool client_ok(const char *id, const char *secret)
{
    return id != NULL && secret != NULL && strcmp(id, emu.cfg.client_id) == 0 &&
           bm_consttime_streq(secret, emu.cfg.client_secret);
}

static void issue(emu_resp_t *rs, emu_user_t *u, const char *scope, const char *refresh)
{
    int64_t ttl = emu.cfg.token_ttl;
    emu_token_t *at = emu_token_new(&emu.world.access, "ya29.emu-", u, scope, ttl * 1000, NULL);
    emu_persist_token(at, "access");
    rs->status = 200;
    bm_buf_reset(&rs->body);
    bm_buf_puts(&rs->body, "{\"access_token\":");
    emu_json_puts(&rs->body, at->token);
    bm_buf_printf(&rs->body, ",\"expires_in\":%lld", (long long)(ttl > 1 ? ttl - 1 : ttl));
    if (refresh != NULL) {
        bm_buf_puts(&rs->body, ",\"refresh_token\":");
        emu_json_puts(&rs->body, refresh);
    }
    bm_buf_puts(&rs->body, ",\"scope\":");
    emu_json_puts(&rs->body, scope);
    bm_buf_puts(&rs->body, ",\"token_type\":\"Bearer\"}");
}

/* A code issued with a challenge needs its verifier; one issued without a challenge
 * must not get one (an empty parameter counts as absent, as some clients send it). */
static bool pkce_ok(const emu_token_t *code, const char *verifier)
{
    if (verifier != NULL && *verifier == '\0')
        verifier = NULL;
    if (code->challenge == NULL)
        return verifier == NULL;
    if (verifier == NULL || strlen(verifier) < 43 || strlen(verifier) > 128)
        return false;
    if (code->challenge_method != NULL && strcmp(code->challenge_method, "plain") == 0)
        return strcmp(verifier, code->challenge) == 0;
    unsigned char dig[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)verifier, strlen(verifier), dig);
    bm_buf_t b;
    bm_buf_init(&b, 128);
    bm_buf_b64url(&b, dig, sizeof(dig));
    bool ok = b.data != NULL && strcmp(b.data, code->challenge) == 0;
    bm_buf_dispose(&b);
    return ok;
}

void emu_oauth_token(emu_req_t *rq, emu_resp_t *rs)
{
    atomic_fetch_add(&emu.counters.token, 1);
    if (strcmp(rq->method, "POST") != 0) {
        oauth_error(rs, 405, "invalid_request", "POST required");
        return;
    }
    /* the form body, parsed like a query string */
    emu_req_t form;
    emu_req_init(&form);
    char *target = bm_sprintf("/?%.*s", (int)rq->body_len, rq->body != NULL ? rq->body : "");
    if (emu_req_set_target(&form, target, strlen(target)) != BM_OK) {
        oauth_error(rs, 400, "invalid_request", "malformed form body");
        goto out;
    }
    const char *grant = emu_param(&form, "grant_type");
    const char *cid = emu_param(&form, "client_id");
    const char *secret = emu_param(&form, "client_secret");
    if (grant == NULL) {
        oauth_error(rs, 400, "invalid_request", "Missing required parameter: grant_type");
        goto out;
    }
    if (strcmp(grant, "refresh_token") != 0 && strcmp(grant, "authorization_code") != 0) {
        oauth_error(rs, 400, "unsupported_grant_type", "Invalid grant_type: ");
        goto out;
    }
    if (!client_ok(cid, secret)) {
        oauth_error(rs, 401, "invalid_client", "The OAuth client was not found.");
        goto out;
    }
    if (strcmp(grant, "refresh_token") == 0) {
        const char *rt = emu_param(&form, "refresh_token");
        emu_token_t *t = rt != NULL ? emu_map_get(&emu.world.refresh, rt) : NULL;
        if (rt == NULL) {
            oauth_error(rs, 400, "invalid_request", "Missing required parameter: refresh_token");
            goto out;
        }
        if (t == NULL) {
            oauth_error(rs, 400, "invalid_grant", "Token has been expired or revoked.");
            goto out;
        }
        issue(rs, t->user, t->scope, NULL);
        goto out;
    }
    const char *code = emu_param(&form, "code");
    emu_token_t *c = code != NULL ? emu_map_get(&emu.world.codes, code) : NULL;
    if (c == NULL || (c->expires_ms != 0 && c->expires_ms < bm_now_ms())) {
        oauth_error(rs, 400, "invalid_grant", "Malformed auth code.");
        goto out;
    }
    const char *ru = emu_param(&form, "redirect_uri");
    if (ru == NULL || c->redirect_uri == NULL || strcmp(ru, c->redirect_uri) != 0) {
        oauth_error(rs, 400, "redirect_uri_mismatch", "Bad Request");
        goto out;
    }
    if (!pkce_ok(c, emu_param(&form, "code_verifier"))) {
        oauth_error(rs, 400, "invalid_grant", "Invalid code verifier.");
        goto out;
    }
    emu_map_del(&emu.world.codes, c->token); /* single use */
    const char *refresh = NULL;
    if (c->offline) {
        emu_token_t *rt = emu_token_new(&emu.world.refresh, "1//emu-", c->user, c->scope, 0, NULL);
        emu_persist_token(rt, "refresh");
        refresh = rt->token;
    }
    issue(rs, c->user, c->scope, refresh);
    emu_token_free(c);
out:
    free(target);
    emu_req_dispose(&form);
}

/* Installed apps may only redirect to a loopback listener: http, host 127.0.0.1, [::1] or
 * localhost, an explicit port, then nothing, a path or a query (no fragment, no userinfo,
 * no byte that could break the Location header). */
static bool loopback_redirect_ok(const char *ru)
{
    static const char *const prefixes[] = {
        "http://127.0.0.1:", "http://[::1]:", "http://localhost:"};
    const char *p = NULL;
    for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]) && p == NULL; i++) {
        size_t n = strlen(prefixes[i]);
        if (strncasecmp(ru, prefixes[i], n) == 0)
            p = ru + n;
    }
    if (p == NULL)
        return false;
    long port = 0;
    size_t n_digits = 0;
    for (; *p >= '0' && *p <= '9' && n_digits < 6; p++, n_digits++)
        port = port * 10 + (*p - '0');
    if (n_digits == 0 || port < 1 || port > 65535 || (*p != '\0' && *p != '/' && *p != '?'))
        return false;
    for (; *p != '\0'; p++)
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f || *p == '#')
            return false;
    return true;
}

/* true when the space-separated list has word ('+' separates too: the query decoder keeps
 * a form-encoded space as '+'). */
static bool has_word(const char *list, const char *word)
{
    size_t n = strlen(word);
    for (const char *p = list; p != NULL && *p != '\0';) {
        p += strspn(p, " +");
        size_t len = strcspn(p, " +");
        if (len == n && strncmp(p, word, n) == 0)
            return true;
        p += len;
    }
    return false;
}

/* 302 to ru with the query parameters name=value (pairs, NULL value skipped); ru may have a
 * query already. */
static void redirect(emu_resp_t *rs, const char *ru, const char *const *kv, size_t n_kv)
{
    bm_buf_t loc;
    bm_buf_init(&loc, 16384);
    bm_buf_puts(&loc, ru);
    char sep = strchr(ru, '?') != NULL ? '&' : '?';
    for (size_t i = 0; i + 1 < n_kv; i += 2) {
        if (kv[i + 1] == NULL)
            continue;
        bm_buf_printf(&loc, "%c%s=", sep, kv[i]);
        bm_buf_url_encode(&loc, kv[i + 1]);
        sep = '&';
    }
    rs->status = 302;
    free(rs->location);
    rs->location = bm_buf_steal(&loc);
    bm_buf_reset(&rs->body);
    snprintf(rs->content_type, sizeof(rs->content_type), "text/html; charset=UTF-8");
}

/*
 * The consent page, played without a browser. Errors before the redirect_uri is known to be
 * acceptable are a 400 page (Google shows an error page there, it never redirects to an
 * unchecked address); the user's refusal goes back to the app as error=access_denied.
 */
void emu_oauth_auth(emu_req_t *rq, emu_resp_t *rs)
{
    const char *cid = emu_param(rq, "client_id");
    const char *ru = emu_param(rq, "redirect_uri");
    const char *rt = emu_param(rq, "response_type");
    const char *scope = emu_param(rq, "scope");
    const char *state = emu_param(rq, "state");
    const char *ch = emu_param(rq, "code_challenge");
    const char *chm = emu_param(rq, "code_challenge_method");
    const char *hint = emu_param(rq, "login_hint");
    const char *access_type = emu_param(rq, "access_type");
    const char *prompt = emu_param(rq, "prompt");
    if (cid == NULL || strcmp(cid, emu.cfg.client_id) != 0) {
        oauth_error(rs, 400, "invalid_client", "The OAuth client was not found.");
        return;
    }
    if (ru == NULL || *ru == '\0') {
        oauth_error(rs, 400, "invalid_request", "Missing required parameter: redirect_uri");
        return;
    }
    if (!loopback_redirect_ok(ru)) {
        oauth_error(rs, 400, "redirect_uri_mismatch",
                    "The redirect URI in the request does not match the ones authorized for the "
                    "OAuth client (installed apps: http://127.0.0.1:PORT/, http://[::1]:PORT/ or "
                    "http://localhost:PORT/).");
        return;
    }
    if (rt == NULL || strcmp(rt, "code") != 0) {
        oauth_error(rs, 400, "unsupported_response_type", "response_type must be code");
        return;
    }
    if (chm != NULL && strcmp(chm, "S256") != 0 && strcmp(chm, "plain") != 0) {
        oauth_error(rs, 400, "invalid_request", "Invalid code_challenge_method");
        return;
    }
    if (ch != NULL && *ch == '\0')
        ch = NULL;
    if (access_type != NULL && strcmp(access_type, "offline") != 0 &&
        strcmp(access_type, "online") != 0) {
        oauth_error(rs, 400, "invalid_request", "Invalid access_type");
        return;
    }
    emu_user_t *u = hint != NULL ? emu_user_find(hint) : NULL;
    if (u == NULL && emu.world.consent_email != NULL)
        u = emu_user_find(emu.world.consent_email);
    if (u == NULL) {
        oauth_error(rs, 400, "access_denied", "No user to consent (login_hint or admin consent).");
        return;
    }
    if (u->consent_deny) {
        const char *kv[] = {"error", "access_denied", "state", state};
        redirect(rs, ru, kv, sizeof(kv) / sizeof(kv[0]));
        return;
    }
    emu_token_t *c =
        emu_token_new(&emu.world.codes, "4/emu-", u,
                      scope != NULL && *scope != '\0' ? scope : DEFAULT_SCOPE, CODE_TTL_MS, NULL);
    c->redirect_uri = bm_strdup(ru);
    c->challenge = bm_strdup(ch);
    c->challenge_method = bm_strdup(ch != NULL ? (chm != NULL ? chm : "plain") : NULL);
    /* a refresh token on the first offline consent, later only when consent is asked again */
    bool offline = access_type != NULL && strcmp(access_type, "offline") == 0;
    c->offline = offline && (!u->offline_granted || has_word(prompt, "consent"));
    if (offline)
        u->offline_granted = true;
    const char *kv[] = {"code", c->token, "scope", c->scope, "state", state};
    redirect(rs, ru, kv, sizeof(kv) / sizeof(kv[0]));
}
