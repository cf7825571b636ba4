/* emulator/oauth.c: POST /token (refresh_token, authorization_code + PKCE) and the consent page. */
#include "emulator/emulator.h"

#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

static bool pkce_ok(const emu_token_t *code, const char *verifier)
{
    if (code->challenge == NULL)
        return true;
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
    emu_token_t *rt = emu_token_new(&emu.world.refresh, "1//emu-", c->user, c->scope, 0, NULL);
    emu_persist_token(rt, "refresh");
    issue(rs, c->user, c->scope, rt->token);
    emu_token_free(c);
out:
    free(target);
    emu_req_dispose(&form);
}

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
    if (cid == NULL || strcmp(cid, emu.cfg.client_id) != 0) {
        oauth_error(rs, 400, "invalid_client", "The OAuth client was not found.");
        return;
    }
    if (ru == NULL || *ru == '\0') {
        oauth_error(rs, 400, "invalid_request", "Missing required parameter: redirect_uri");
        return;
    }
    if (rt == NULL || strcmp(rt, "code") != 0) {
        oauth_error(rs, 400, "unsupported_response_type", "response_type must be code");
        return;
    }
    if (ch != NULL && chm != NULL && strcmp(chm, "S256") != 0 && strcmp(chm, "plain") != 0) {
        oauth_error(rs, 400, "invalid_request", "Invalid code_challenge_method");
        return;
    }
    emu_user_t *u = hint != NULL ? emu_user_find(hint) : NULL;
    if (u == NULL && emu.world.consent_email != NULL)
        u = emu_user_find(emu.world.consent_email);
    if (u == NULL) {
        oauth_error(rs, 400, "access_denied", "No user to consent (login_hint or admin consent).");
        return;
    }
    emu_token_t *c =
        emu_token_new(&emu.world.codes, "4/emu-", u,
                      scope != NULL && *scope != '\0' ? scope : DEFAULT_SCOPE, CODE_TTL_MS, NULL);
    c->redirect_uri = bm_strdup(ru);
    c->challenge = bm_strdup(ch);
    c->challenge_method = bm_strdup(ch != NULL ? (chm != NULL ? chm : "plain") : NULL);
    bm_buf_t loc;
    bm_buf_init(&loc, 16384);
    bm_buf_puts(&loc, ru);
    bm_buf_puts(&loc, strchr(ru, '?') != NULL ? "&code=" : "?code=");
    bm_buf_url_encode(&loc, c->token);
    bm_buf_puts(&loc, "&scope=");
    bm_buf_url_encode(&loc, c->scope);
    if (state != NULL) {
        bm_buf_puts(&loc, "&state=");
        bm_buf_url_encode(&loc, state);
    }
    rs->status = 302;
    rs->location = bm_buf_steal(&loc);
    bm_buf_reset(&rs->body);
    snprintf(rs->content_type, sizeof(rs->content_type), "text/html; charset=UTF-8");
}
