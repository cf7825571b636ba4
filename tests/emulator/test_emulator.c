/*
 * tests/emulator/test_emulator.c: black-box tests of gcal-emulator (OAuth,
 * calendarList, events CRUD, listing and sync, occurrences, batch, errors,
 * quotas, faults, counters, admin API, demo world). Each test starts the real
 * binary on loopback and talks HTTP to it.
 */
#include "harness.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define CAL "/calendar/v3/calendars/u%40example.com"
#define EV  CAL "/events"
/* the same, as a printf format */
#define EVF "/calendar/v3/calendars/u%%40example.com/events"

static emu_proc_t E;
static char *T;

static void up(void)
{
    emu_start(&E, NULL);
    T = emu_user(&E, "u@example.com");
}

static void down(void)
{
    free(T);
    T = NULL;
    ck_assert_int_eq(emu_stop(&E), 0);
}

static resp_t *api(const char *method, const char *path, const char *body)
{
    return h_req(&E, method, path, T, body, NULL, NULL);
}

static resp_t *admin(const char *method, const char *path, const char *body)
{
    return h_req(&E, method, path, NULL, body, NULL, NULL);
}

/* A request whose only check is its status. */
static void expect_api(const char *method, const char *path, const char *body, long status)
{
    resp_t *r = api(method, path, body);
    ck_assert_msg(r->status == status, "%s %s: %ld, not %ld", method, path, (long)r->status,
                  status);
    h_free(r);
}

static void expect_admin(const char *method, const char *path, const char *body, long status)
{
    resp_t *r = admin(method, path, body);
    ck_assert_msg(r->status == status, "%s %s: %ld, not %ld", method, path, (long)r->status,
                  status);
    h_free(r);
}

#define TIMED(id, start, end)                                                                      \
    "{" id "\"summary\":\"s\",\"start\":{\"dateTime\":\"" start "\"},\"end\":{\"dateTime\":\"" end \
    "\"}}"

/* Inserts a timed event on the test calendar and returns its id. */
static char *ins_at(const char *start, const char *end, const char *extra)
{
    char *body = fmt("{%s\"summary\":\"meeting\",\"start\":{\"dateTime\":\"%s\"},"
                     "\"end\":{\"dateTime\":\"%s\"}}",
                     extra != NULL ? extra : "", start, end);
    resp_t *r = api("POST", EV, body);
    ck_assert_msg(r->status == 200, "insert: %ld %s", r->status, r->body);
    char *id = strdup(j_str(r->json, "id"));
    h_free(r);
    free(body);
    return id;
}

static char *ins(void)
{
    return ins_at("2030-01-07T10:00:00Z", "2030-01-07T11:00:00Z", NULL);
}

static char *list_sync_token(const char *path)
{
    resp_t *r = api("GET", path, NULL);
    ck_assert_int_eq(r->status, 200);
    ck_assert(!j_has(r->json, "nextPageToken"));
    char *t = strdup(j_str(r->json, "nextSyncToken"));
    h_free(r);
    return t;
}

/* Follows nextPageToken; returns the number of items and the final sync token. */
static size_t list_all(const char *query, char **sync_out, size_t *pages_out)
{
    size_t n = 0, pages = 0;
    char *pt = NULL;
    for (;;) {
        char *path =
            fmt("%s?%s%s%s", EV, query, pt != NULL ? "&pageToken=" : "", pt != NULL ? pt : "");
        resp_t *r = api("GET", path, NULL);
        ck_assert_msg(r->status == 200, "%s -> %ld %s", path, r->status, r->body);
        pages++;
        n += j_len(r->json, "items");
        bool has_next = j_has(r->json, "nextPageToken"), has_sync = j_has(r->json, "nextSyncToken");
        ck_assert_msg(has_next != has_sync, "exactly one of nextPageToken/nextSyncToken");
        free(pt);
        pt = NULL;
        if (has_next) {
            pt = strdup(j_str(r->json, "nextPageToken"));
        } else if (sync_out != NULL) {
            *sync_out = strdup(j_str(r->json, "nextSyncToken"));
        }
        h_free(r);
        free(path);
        if (pt == NULL)
            break;
    }
    if (pages_out != NULL)
        *pages_out = pages;
    return n;
}

/* ---------------------------------------------------------------- process */

START_TEST(startup_line_port_file_and_clean_exit)
{
    char *p = fmt("%s/stdout", E.dir);
    FILE *f = fopen(p, "r");
    ck_assert_ptr_nonnull(f);
    char line[256] = {0};
    ck_assert_ptr_nonnull(fgets(line, sizeof(line), f));
    fclose(f);
    char *want = fmt("gcal-emulator listening on http://127.0.0.1:%d\n", E.port);
    ck_assert_str_eq(line, want);
    free(want);
    free(p);
    resp_t *r = admin("GET", "/_emulator/health", NULL);
    ck_assert_int_eq(r->status, 200);
    ck_assert(YAJL_IS_TRUE(j_get(r->json, "ok")));
    h_free(r);
}
END_TEST

START_TEST(bad_flag_exits_2)
{
    const char *bin = getenv("GCAL_EMULATOR");
    char *cmd = fmt("'%s' --no-such-flag 2>/dev/null", bin);
    int st = system(cmd);
    ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 2);
    free(cmd);
    cmd = fmt("'%s' --port notanumber 2>/dev/null", bin);
    st = system(cmd);
    ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 2);
    free(cmd);
}
END_TEST

/* ---------------------------------------------------------------- oauth */

START_TEST(oauth_refresh_grant)
{
    resp_t *r = admin("POST", "/_emulator/users",
                      "{\"email\":\"o@example.com\",\"refresh_token\":\"rt-fixed-123\"}");
    ck_assert_int_eq(r->status, 200);
    ck_assert_str_eq(j_str(r->json, "refresh_token"), "rt-fixed-123");
    h_free(r);
    r = h_req(&E, "POST", "/token", NULL,
              "grant_type=refresh_token&client_id=emu-client-id&client_secret=emu-client-secret&"
              "refresh_token=rt-fixed-123",
              "application/x-www-form-urlencoded", NULL);
    ck_assert_int_eq(r->status, 200);
    ck_assert_ptr_nonnull(j_str(r->json, "access_token"));
    ck_assert_int_eq(j_int(r->json, "expires_in"), 3599);
    ck_assert_str_eq(j_str(r->json, "token_type"), "Bearer");
    ck_assert_ptr_nonnull(j_str(r->json, "scope"));
    h_free(r);
    /* unknown refresh token */
    r = h_req(&E, "POST", "/token", NULL,
              "grant_type=refresh_token&client_id=emu-client-id&client_secret=emu-client-secret&"
              "refresh_token=nope",
              "application/x-www-form-urlencoded", NULL);
    ck_assert_int_eq(r->status, 400);
    ck_assert_str_eq(j_str(r->json, "error"), "invalid_grant");
    ck_assert_ptr_nonnull(j_str(r->json, "error_description"));
    h_free(r);
    /* wrong client secret */
    r = h_req(&E, "POST", "/token", NULL,
              "grant_type=refresh_token&client_id=emu-client-id&client_secret=wrong&"
              "refresh_token=rt-fixed-123",
              "application/x-www-form-urlencoded", NULL);
    ck_assert_int_eq(r->status, 401);
    ck_assert_str_eq(j_str(r->json, "error"), "invalid_client");
    h_free(r);
    ck_assert_int_eq(counter(&E, "token"), 4); /* the fixture's exchange + 3 */
}
END_TEST

START_TEST(oauth_revoke_kills_refresh_and_access_tokens)
{
    resp_t *r = api("GET", "/calendar/v3/users/me/calendarList", NULL);
    ck_assert_int_eq(r->status, 200);
    h_free(r);
    r = admin("POST", "/_emulator/users/u@example.com/refresh_tokens", NULL);
    ck_assert_int_eq(r->status, 200);
    char *rt = strdup(j_str(r->json, "refresh_token"));
    h_free(r);
    expect_admin("POST", "/_emulator/users/u@example.com/revoke", NULL, 200);
    r = api("GET", "/calendar/v3/users/me/calendarList", NULL);
    ck_assert_int_eq(r->status, 401);
    ck_assert_str_eq(j_reason(r), "authError");
    h_free(r);
    char *body = fmt("grant_type=refresh_token&client_id=emu-client-id&client_secret=emu-client-"
                     "secret&refresh_token=%s",
                     rt);
    r = h_req(&E, "POST", "/token", NULL, body, "application/x-www-form-urlencoded", NULL);
    ck_assert_int_eq(r->status, 400);
    ck_assert_str_eq(j_str(r->json, "error"), "invalid_grant");
    h_free(r);
    free(body);
    free(rt);
}
END_TEST

static char *query_value(const char *url, const char *name)
{
    char *key = fmt("%s=", name);
    const char *p = strstr(url, key);
    ck_assert_ptr_nonnull(p);
    p += strlen(key);
    size_t n = strcspn(p, "&");
    free(key);
    char *v = strndup(p, n);
    /* decode %XX */
    char *o = v;
    for (char *s = v; *s != '\0'; s++) {
        if (*s == '%' && s[1] && s[2]) {
            char hx[3] = {s[1], s[2], 0};
            *o++ = (char)strtol(hx, NULL, 16);
            s += 2;
        } else {
            *o++ = *s;
        }
    }
    *o = '\0';
    return v;
}

START_TEST(oauth_authorization_code_pkce)
{
    /* RFC 7636 appendix B test vector */
    const char *verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const char *challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    char *path = fmt("/o/oauth2/v2/auth?client_id=emu-client-id&redirect_uri=%s&response_type=code"
                     "&scope=https%%3A%%2F%%2Fwww.googleapis.com%%2Fauth%%2Fcalendar&state=xyz"
                     "&code_challenge=%s&code_challenge_method=S256&login_hint=u%%40example.com"
                     "&access_type=offline",
                     "http%3A%2F%2F127.0.0.1%3A9%2Fcb", challenge);
    resp_t *r = h_req(&E, "GET", path, NULL, NULL, NULL, NULL);
    ck_assert_int_eq(r->status, 302);
    char *loc = h_header(r, "location");
    ck_assert_ptr_nonnull(loc);
    ck_assert(strncmp(loc, "http://127.0.0.1:9/cb?code=", 27) == 0);
    char *state = query_value(loc, "state");
    ck_assert_str_eq(state, "xyz");
    char *code = query_value(loc, "code");
    h_free(r);
    char *ecode = url_enc(code);
    /* wrong verifier */
    char *body = fmt("grant_type=authorization_code&code=%s&code_verifier=%s&redirect_uri=%s&"
                     "client_id=emu-client-id&client_secret=emu-client-secret",
                     ecode, "wrong-verifier-wrong-verifier-wrong-verifier-0000",
                     "http%3A%2F%2F127.0.0.1%3A9%2Fcb");
    r = h_req(&E, "POST", "/token", NULL, body, "application/x-www-form-urlencoded", NULL);
    ck_assert_int_eq(r->status, 400);
    ck_assert_str_eq(j_str(r->json, "error"), "invalid_grant");
    h_free(r);
    free(body);
    body = fmt("grant_type=authorization_code&code=%s&code_verifier=%s&redirect_uri=%s&"
               "client_id=emu-client-id&client_secret=emu-client-secret",
               ecode, verifier, "http%3A%2F%2F127.0.0.1%3A9%2Fcb");
    r = h_req(&E, "POST", "/token", NULL, body, "application/x-www-form-urlencoded", NULL);
    ck_assert_msg(r->status == 200, "%s", r->body);
    ck_assert_ptr_nonnull(j_str(r->json, "refresh_token"));
    char *at = strdup(j_str(r->json, "access_token"));
    h_free(r);
    /* the code is single use */
    r = h_req(&E, "POST", "/token", NULL, body, "application/x-www-form-urlencoded", NULL);
    ck_assert_int_eq(r->status, 400);
    h_free(r);
    r = h_req(&E, "GET", "/calendar/v3/users/me/calendarList", at, NULL, NULL, NULL);
    ck_assert_int_eq(r->status, 200);
    ck_assert_str_eq(j_str(r->json, "items/0/id"), "u@example.com");
    h_free(r);
    /* unknown client */
    r = h_req(&E, "GET",
              "/o/oauth2/v2/auth?client_id=other&redirect_uri=http%3A%2F%2Fx%2F&response_type=code",
              NULL, NULL, NULL, NULL);
    ck_assert_int_eq(r->status, 400);
    h_free(r);
    free(at);
    free(body);
    free(ecode);
    free(code);
    free(state);
    free(loc);
    free(path);
}
END_TEST

START_TEST(oauth_consent_user_from_admin)
{
    resp_t *r = admin("POST", "/_emulator/consent", "{\"email\":\"u@example.com\"}");
    ck_assert_int_eq(r->status, 200);
    h_free(r);
    r = h_req(&E, "GET",
              "/o/oauth2/v2/auth?client_id=emu-client-id&redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2F"
              "&response_type=code&scope=x&state=s1",
              NULL, NULL, NULL, NULL);
    ck_assert_int_eq(r->status, 302);
    char *loc = h_header(r, "location");
    ck_assert_ptr_nonnull(strstr(loc, "state=s1"));
    free(loc);
    h_free(r);
}
END_TEST

/* the loopback redirect_uri the consent tests use, percent-encoded */
#define LOOP_CB "http%3A%2F%2F127.0.0.1%3A9%2Fcb"
#define HINT    "&login_hint=u%40example.com"

/* GETs the consent page with redirect_uri (encoded), state st-1 and extra query text. */
static resp_t *auth_req(const char *redirect_enc, const char *extra)
{
    char *path = fmt("/o/oauth2/v2/auth?client_id=emu-client-id&redirect_uri=%s"
                     "&response_type=code&scope=https%%3A%%2F%%2Fwww.googleapis.com%%2Fauth%%2F"
                     "calendar&state=st-1%s",
                     redirect_enc, extra);
    resp_t *r = h_req(&E, "GET", path, NULL, NULL, NULL, NULL);
    free(path);
    return r;
}

/* Consents to LOOP_CB (must redirect with a code) and returns the code. */
static char *auth_code(const char *extra)
{
    resp_t *r = auth_req(LOOP_CB, extra);
    ck_assert_msg(r->status == 302, "consent %s: %ld %s", extra, r->status, r->body);
    char *loc = h_header(r, "location");
    ck_assert_ptr_nonnull(loc);
    ck_assert_ptr_null(strstr(loc, "error="));
    char *code = query_value(loc, "code");
    free(loc);
    h_free(r);
    return code;
}

/* The code exchange; verifier NULL leaves code_verifier out. */
static resp_t *exchange(const char *code, const char *verifier, const char *redirect_enc)
{
    char *ecode = url_enc(code);
    char *body = fmt("grant_type=authorization_code&code=%s%s%s&redirect_uri=%s"
                     "&client_id=emu-client-id&client_secret=emu-client-secret",
                     ecode, verifier != NULL ? "&code_verifier=" : "",
                     verifier != NULL ? verifier : "", redirect_enc);
    resp_t *r = h_req(&E, "POST", "/token", NULL, body, "application/x-www-form-urlencoded", NULL);
    free(body);
    free(ecode);
    return r;
}

/* Consents with extra, exchanges the code (no PKCE) and returns the refresh token, or NULL
 * when the token response has none (it must have an access token). */
static char *consent_refresh_token(const char *extra)
{
    char *code = auth_code(extra);
    resp_t *r = exchange(code, NULL, LOOP_CB);
    ck_assert_msg(r->status == 200, "exchange: %ld %s", r->status, r->body);
    ck_assert_ptr_nonnull(j_str(r->json, "access_token"));
    const char *rt = j_str(r->json, "refresh_token");
    char *out = rt != NULL ? strdup(rt) : NULL;
    h_free(r);
    free(code);
    return out;
}

/* A 400 error page: JSON {"error"} and no redirect. */
static void assert_error_page(resp_t *r, const char *error)
{
    ck_assert_msg(r->status == 400, "%ld %s", r->status, r->body);
    char *loc = h_header(r, "location");
    ck_assert_msg(loc == NULL, "an error page redirected to %s", loc);
    ck_assert_str_eq(j_str(r->json, "error"), error);
}

START_TEST(oauth_consent_refused_redirects_access_denied)
{
    resp_t *r = admin("POST", "/_emulator/consent", "{\"email\":\"u@example.com\",\"deny\":true}");
    ck_assert_int_eq(r->status, 200);
    h_free(r);
    /* picked by login_hint, then as the default consenting user */
    const char *extras[] = {HINT "&access_type=offline&prompt=consent", ""};
    for (size_t i = 0; i < 2; i++) {
        r = auth_req(LOOP_CB, extras[i]);
        ck_assert_int_eq(r->status, 302);
        char *loc = h_header(r, "location");
        ck_assert_str_eq(loc, "http://127.0.0.1:9/cb?error=access_denied&state=st-1");
        free(loc);
        h_free(r);
    }
    /* no state, no state in the answer; a query in redirect_uri is kept */
    r = h_req(&E, "GET",
              "/o/oauth2/v2/auth?client_id=emu-client-id&response_type=code&redirect_uri="
              "http%3A%2F%2Flocalhost%3A8080%2Fcb%3Fx%3D1" HINT,
              NULL, NULL, NULL, NULL);
    ck_assert_int_eq(r->status, 302);
    char *loc = h_header(r, "location");
    ck_assert_str_eq(loc, "http://localhost:8080/cb?x=1&error=access_denied");
    free(loc);
    h_free(r);
    /* an unknown client or an unacceptable redirect_uri stays an error page */
    r = h_req(&E, "GET",
              "/o/oauth2/v2/auth?client_id=other&response_type=code&redirect_uri=" LOOP_CB HINT,
              NULL, NULL, NULL, NULL);
    assert_error_page(r, "invalid_client");
    h_free(r);
    r = auth_req("https%3A%2F%2Fevil.example%2Fcb", HINT);
    assert_error_page(r, "redirect_uri_mismatch");
    h_free(r);
    /* bad switches */
    expect_admin("POST", "/_emulator/consent", "{\"email\":\"u@example.com\",\"deny\":\"yes\"}",
                 400);
    expect_admin("POST", "/_emulator/consent", "{\"email\":\"nobody@example.com\",\"deny\":true}",
                 404);
    /* consenting again without deny */
    expect_admin("POST", "/_emulator/consent", "{\"email\":\"u@example.com\",\"deny\":false}", 200);
    free(auth_code(HINT));
    free(auth_code(""));
}
END_TEST

START_TEST(oauth_refresh_token_only_for_offline_access)
{
    /* online (the default) never gives a refresh token */
    ck_assert_ptr_null(consent_refresh_token(HINT));
    ck_assert_ptr_null(consent_refresh_token(HINT "&access_type=online&prompt=consent"));
    /* the first offline consent does */
    char *rt1 = consent_refresh_token(HINT "&access_type=offline");
    ck_assert_ptr_nonnull(rt1);
    char *at = emu_access_token(&E, rt1);
    free(at);
    /* a repeat offline consent only with prompt=consent */
    ck_assert_ptr_null(consent_refresh_token(HINT "&access_type=offline"));
    ck_assert_ptr_null(consent_refresh_token(HINT "&access_type=offline&prompt=select_account"));
    char *rt2 = consent_refresh_token(HINT "&access_type=offline&prompt=consent");
    ck_assert_ptr_nonnull(rt2);
    ck_assert_str_ne(rt1, rt2);
    char *rt3 = consent_refresh_token(HINT "&access_type=offline&prompt=select_account%20consent");
    ck_assert_ptr_nonnull(rt3);
    char *rt3b = consent_refresh_token(HINT "&access_type=offline&prompt=consent+select_account");
    ck_assert_ptr_nonnull(rt3b);
    free(rt3b);
    /* after a revoke, the next offline consent is a first one again */
    resp_t *r = admin("POST", "/_emulator/users/u@example.com/revoke", NULL);
    ck_assert_int_eq(r->status, 200);
    h_free(r);
    char *rt4 = consent_refresh_token(HINT "&access_type=offline");
    ck_assert_ptr_nonnull(rt4);
    at = emu_access_token(&E, rt4);
    free(at);
    /* an unknown access_type is an error page */
    r = auth_req(LOOP_CB, HINT "&access_type=forever");
    assert_error_page(r, "invalid_request");
    h_free(r);
    free(rt4);
    free(rt3);
    free(rt2);
    free(rt1);
}
END_TEST

START_TEST(oauth_pkce_rules_at_consent_and_exchange)
{
    const char *verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    /* an unknown method is refused on the consent page */
    resp_t *r = auth_req(LOOP_CB, HINT "&code_challenge=abc&code_challenge_method=S512");
    assert_error_page(r, "invalid_request");
    h_free(r);
    /* a code issued without challenge: no verifier is fine, a verifier is not */
    char *code = auth_code(HINT);
    r = exchange(code, verifier, LOOP_CB);
    ck_assert_int_eq(r->status, 400);
    ck_assert_str_eq(j_str(r->json, "error"), "invalid_grant");
    h_free(r);
    r = exchange(code, NULL, LOOP_CB);
    ck_assert_msg(r->status == 200, "%s", r->body);
    h_free(r);
    free(code);
    /* plain: the verifier is the challenge; a missing verifier is refused */
    code = auth_code(HINT "&code_challenge=dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
                          "&code_challenge_method=plain");
    r = exchange(code, NULL, LOOP_CB);
    ck_assert_int_eq(r->status, 400);
    ck_assert_str_eq(j_str(r->json, "error"), "invalid_grant");
    h_free(r);
    r = exchange(code, verifier, LOOP_CB);
    ck_assert_msg(r->status == 200, "%s", r->body);
    h_free(r);
    free(code);
}
END_TEST

START_TEST(oauth_redirect_uri_must_be_loopback_and_match)
{
    static const char *const good[] = {
        "http%3A%2F%2F127.0.0.1%3A9%2Fcb", "http%3A%2F%2F%5B%3A%3A1%5D%3A65535%2F",
        "http%3A%2F%2Flocalhost%3A8080", "http%3A%2F%2Flocalhost%3A8080%3Fa%3Db"};
    static const char *const want[] = {
        "http://127.0.0.1:9/cb?code=", "http://[::1]:65535/?code=", "http://localhost:8080?code=",
        "http://localhost:8080?a=b&code="};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        resp_t *r = auth_req(good[i], HINT);
        ck_assert_msg(r->status == 302, "%s: %ld %s", good[i], r->status, r->body);
        char *loc = h_header(r, "location");
        ck_assert_msg(strncmp(loc, want[i], strlen(want[i])) == 0, "%s -> %s", good[i], loc);
        free(loc);
        h_free(r);
    }
    static const char *const bad[] = {
        "https%3A%2F%2F127.0.0.1%3A9%2Fcb",             /* not http */
        "http%3A%2F%2Fexample.com%2Fcb",                /* not loopback */
        "http%3A%2F%2F127.0.0.1%2Fcb",                  /* no port */
        "http%3A%2F%2F127.0.0.1%3A0%2F",                /* port 0 */
        "http%3A%2F%2F127.0.0.1%3A70000%2F",            /* port too big */
        "http%3A%2F%2F127.0.0.1.evil.example%3A9%2F",   /* a longer host */
        "http%3A%2F%2Flocalhost%3A9%40evil.example%2F", /* userinfo trick */
        "http%3A%2F%2F127.0.0.1%3A9%2Fcb%23frag",       /* fragment */
        "http%3A%2F%2F127.0.0.1%3A9%2F%0D%0AX%3A%201",  /* header injection */
        "urn%3Aietf%3Awg%3Aoauth%3A2.0%3Aoob",          /* out of band, retired by Google */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        resp_t *r = auth_req(bad[i], HINT);
        assert_error_page(r, "redirect_uri_mismatch");
        h_free(r);
    }
    /* the exchange must name exactly the redirect_uri of the consent; Google answers a
     * mismatch with 400 redirect_uri_mismatch ("Bad Request") */
    char *code = auth_code(HINT "&access_type=offline");
    const char *others[] = {"http%3A%2F%2F127.0.0.1%3A9%2Fcb%2F", "http%3A%2F%2Flocalhost%3A9%2Fcb",
                            "http%3A%2F%2F127.0.0.1%3A10%2Fcb"};
    for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
        resp_t *r = exchange(code, NULL, others[i]);
        ck_assert_int_eq(r->status, 400);
        ck_assert_str_eq(j_str(r->json, "error"), "redirect_uri_mismatch");
        ck_assert(!j_has(r->json, "access_token"));
        h_free(r);
    }
    resp_t *r = exchange(code, NULL, LOOP_CB);
    ck_assert_msg(r->status == 200, "%s", r->body);
    ck_assert_ptr_nonnull(j_str(r->json, "refresh_token"));
    h_free(r);
    free(code);
}
END_TEST

static bool listed(const resp_t *r, const char *token)
{
    for (size_t i = 0; i < j_len(r->json, "items"); i++) {
        char *p = fmt("items/%zu/refresh_token", i);
        bool hit = strcmp(j_str(r->json, p), token) == 0;
        free(p);
        if (hit)
            return true;
    }
    return false;
}

START_TEST(admin_lists_refresh_tokens_of_a_user)
{
    resp_t *r = admin("GET", "/_emulator/users/u@example.com/refresh_tokens", NULL);
    ck_assert_int_eq(r->status, 200);
    ck_assert_uint_eq(j_len(r->json, "items"), 1); /* the fixture's */
    ck_assert_ptr_nonnull(j_str(r->json, "items/0/scope"));
    h_free(r);
    char *rt = consent_refresh_token(HINT "&access_type=offline");
    ck_assert_ptr_nonnull(rt);
    r = admin("POST", "/_emulator/users", "{\"email\":\"other@example.com\"}");
    ck_assert_int_eq(r->status, 200);
    char *other = strdup(j_str(r->json, "refresh_token"));
    h_free(r);
    r = admin("GET", "/_emulator/users/u@example.com/refresh_tokens", NULL);
    ck_assert_uint_eq(j_len(r->json, "items"), 2);
    ck_assert(listed(r, rt));
    ck_assert(!listed(r, other));
    h_free(r);
    r = admin("POST", "/_emulator/users/u@example.com/revoke", NULL);
    h_free(r);
    r = admin("GET", "/_emulator/users/u@example.com/refresh_tokens", NULL);
    ck_assert_uint_eq(j_len(r->json, "items"), 0);
    h_free(r);
    expect_admin("GET", "/_emulator/users/nobody@example.com/refresh_tokens", NULL, 404);
    free(other);
    free(rt);
}
END_TEST

START_TEST(auth_missing_bad_and_expired)
{
    resp_t *r = h_req(&E, "GET", "/calendar/v3/users/me/calendarList", NULL, NULL, NULL, NULL);
    ck_assert_int_eq(r->status, 401);
    ck_assert_str_eq(j_reason(r), "authError");
    ck_assert_int_eq(j_int(r->json, "error/code"), 401);
    h_free(r);
    r = h_req(&E, "GET", "/calendar/v3/users/me/calendarList", "bogus", NULL, NULL, NULL);
    ck_assert_int_eq(r->status, 401);
    ck_assert_str_eq(j_reason(r), "authError");
    h_free(r);
    expect_admin("POST", "/_emulator/users/u@example.com/expire_access_tokens", NULL, 200);
    r = api("GET", "/calendar/v3/users/me/calendarList", NULL);
    ck_assert_int_eq(r->status, 401);
    ck_assert_str_eq(j_reason(r), "authError");
    h_free(r);
}
END_TEST

START_TEST(token_ttl_flag_expires_tokens)
{
    emu_proc_t e2;
    emu_start(&e2, (const char *const[]){"--token-ttl", "1", NULL});
    char *at = emu_user(&e2, "t@example.com");
    resp_t *r = h_req(&e2, "GET", "/calendar/v3/users/me/calendarList", at, NULL, NULL, NULL);
    ck_assert_int_eq(r->status, 200);
    h_free(r);
    sleep_ms(1100);
    r = h_req(&e2, "GET", "/calendar/v3/users/me/calendarList", at, NULL, NULL, NULL);
    ck_assert_int_eq(r->status, 401);
    ck_assert_str_eq(j_reason(r), "authError");
    h_free(r);
    free(at);
    ck_assert_int_eq(emu_stop(&e2), 0);
}
END_TEST

/* ---------------------------------------------------------------- calendarList */

START_TEST(calendar_list_pages_and_primary)
{
    resp_t *r = admin("POST", "/_emulator/users/u@example.com/calendars",
                      "{\"summary\":\"Second\",\"timeZone\":\"Europe/Berlin\"}");
    ck_assert_int_eq(r->status, 200);
    const char *gid = j_str(r->json, "id");
    ck_assert(strncmp(gid, "c_", 2) == 0 && strstr(gid, "@group.calendar.google.com") != NULL);
    h_free(r);
    r = admin("POST", "/_emulator/users/u@example.com/calendars",
              "{\"id\":\"third@group.calendar.google.com\",\"summary\":\"Third\"}");
    ck_assert_int_eq(r->status, 200);
    h_free(r);
    r = api("GET", "/calendar/v3/users/me/calendarList?maxResults=2", NULL);
    ck_assert_int_eq(r->status, 200);
    ck_assert_str_eq(j_str(r->json, "kind"), "calendar#calendarList");
    ck_assert_uint_eq(j_len(r->json, "items"), 2);
    ck_assert_str_eq(j_str(r->json, "items/0/id"), "u@example.com");
    ck_assert(YAJL_IS_TRUE(j_get(r->json, "items/0/primary")));
    ck_assert_str_eq(j_str(r->json, "items/0/accessRole"), "owner");
    ck_assert_ptr_nonnull(j_str(r->json, "items/0/timeZone"));
    ck_assert_str_eq(j_str(r->json, "items/1/summary"), "Second");
    ck_assert(!j_has(r->json, "items/1/primary"));
    ck_assert(!j_has(r->json, "nextSyncToken"));
    char *pt = strdup(j_str(r->json, "nextPageToken"));
    h_free(r);
    char *p = fmt("/calendar/v3/users/me/calendarList?maxResults=2&pageToken=%s", pt);
    r = api("GET", p, NULL);
    ck_assert_int_eq(r->status, 200);
    ck_assert_uint_eq(j_len(r->json, "items"), 1);
    ck_assert_str_eq(j_str(r->json, "items/0/id"), "third@group.calendar.google.com");
    ck_assert(!j_has(r->json, "nextPageToken"));
    h_free(r);
    free(p);
    free(pt);
    ck_assert_int_eq(counter(&E, "calendar_list"), 2);
}
END_TEST

/* ---------------------------------------------------------------- events CRUD */

START_TEST(insert_fills_server_fields)
{
    resp_t *r = api("POST", EV,
                    "{\"id\":\"abcdev0123\",\"summary\":\"x\",\"start\":{\"dateTime\":\"2030-01-"
                    "07T10:00:00+01:00\"},"
                    "\"end\":{\"dateTime\":\"2030-01-07T11:00:00+01:00\"}}");
    ck_assert_msg(r->status == 200, "%s", r->body);
    ck_assert_str_eq(j_str(r->json, "kind"), "calendar#event");
    ck_assert_str_eq(j_str(r->json, "id"), "abcdev0123");
    ck_assert_str_eq(j_str(r->json, "status"), "confirmed");
    ck_assert_str_eq(j_str(r->json, "iCalUID"), "abcdev0123@google.com");
    ck_assert_str_eq(j_str(r->json, "eventType"), "default");
    ck_assert_str_eq(j_str(r->json, "creator/email"), "u@example.com");
    ck_assert(YAJL_IS_TRUE(j_get(r->json, "organizer/self")));
    ck_assert_int_eq(j_int(r->json, "sequence"), 0);
    ck_assert_ptr_nonnull(j_str(r->json, "htmlLink"));
    ck_assert_ptr_nonnull(j_str(r->json, "created"));
    const char *upd = j_str(r->json, "updated");
    ck_assert_uint_eq(strlen(upd), 24); /* 2030-01-01T00:00:00.000Z */
    ck_assert(upd[19] == '.' && upd[23] == 'Z');
    const char *etag = j_str(r->json, "etag");
    ck_assert(etag[0] == '"');
    char *hdr = h_header(r, "etag");
    ck_assert_str_eq(hdr, etag);
    free(hdr);
    h_free(r);
    r = api("GET", EV "/abcdev0123", NULL);
    ck_assert_int_eq(r->status, 200);
    ck_assert_str_eq(j_str(r->json, "summary"), "x");
    h_free(r);
    /* server-chosen ids are valid base32hex */
    char *id = ins();
    ck_assert_uint_ge(strlen(id), 5);
    ck_assert_uint_eq(strspn(id, "0123456789abcdefghijklmnopqrstuv"), strlen(id));
    free(id);
}
END_TEST

START_TEST(insert_validates_ids_and_duplicates)
{
    const char *bad[] = {"ABCDE12345", "abc", "abcdwxyz00", "abc_def12", "abc-12345"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *b =
            fmt(TIMED("\"id\":\"%s\",", "2030-01-07T10:00:00Z", "2030-01-07T11:00:00Z"), bad[i]);
        resp_t *r = api("POST", EV, b);
        ck_assert_msg(r->status == 400, "%s: %ld", bad[i], r->status);
        ck_assert_str_eq(j_reason(r), "invalid");
        h_free(r);
        free(b);
    }
    char *id = ins_at("2030-01-07T10:00:00Z", "2030-01-07T11:00:00Z", "\"id\":\"dup0000001\",");
    resp_t *r =
        api("POST", EV,
            TIMED("\"id\":\"dup0000001\",", "2030-01-07T10:00:00Z", "2030-01-07T11:00:00Z"));
    ck_assert_int_eq(r->status, 409);
    ck_assert_str_eq(j_reason(r), "duplicate");
    h_free(r);
    expect_api("DELETE", EV "/dup0000001", NULL, 204);
    r = api("POST", EV,
            TIMED("\"id\":\"dup0000001\",", "2030-01-07T10:00:00Z", "2030-01-07T11:00:00Z"));
    ck_assert_int_eq(r->status, 409); /* a deleted event's id stays taken */
    ck_assert_str_eq(j_reason(r), "duplicate");
    h_free(r);
    free(id);
}
END_TEST

START_TEST(insert_validates_times)
{
    resp_t *r =
        api("POST", EV, "{\"summary\":\"x\",\"end\":{\"dateTime\":\"2030-01-07T11:00:00Z\"}}");
    ck_assert_int_eq(r->status, 400);
    ck_assert_str_eq(j_reason(r), "required");
    h_free(r);
    r = api("POST", EV, "{\"summary\":\"x\",\"start\":{\"dateTime\":\"2030-01-07T11:00:00Z\"}}");
    ck_assert_int_eq(r->status, 400);
    ck_assert_str_eq(j_reason(r), "required");
    h_free(r);
    r = api("POST", EV, TIMED("", "2030-01-07T11:00:00Z", "2030-01-07T10:00:00Z"));
    ck_assert_int_eq(r->status, 400);
    ck_assert_str_eq(j_reason(r), "timeRangeEmpty");
    h_free(r);
    r = api("POST", EV, "{\"start\":{\"date\":\"2030-01-07\"},\"end\":{\"date\":\"2030-01-07\"}}");
    ck_assert_int_eq(r->status, 400);
    ck_assert_str_eq(j_reason(r), "timeRangeEmpty");
    h_free(r);
    expect_api("POST", EV,
               "{\"start\":{\"date\":\"2030-01-07\"},\"end\":{\"date\":\"2030-01-08\"}}", 200);
    r = api("POST", EV,
            "{\"start\":{\"dateTime\":\"yesterday\"},\"end\":{\"date\":\"2030-01-08\"}}");
    ck_assert_int_eq(r->status, 400);
    h_free(r);
}
END_TEST

START_TEST(get_delete_semantics)
{
    char *id = ins();
    char *p = fmt(EVF "/%s", id);
    resp_t *r = api("DELETE", p, NULL);
    ck_assert_int_eq(r->status, 204);
    ck_assert_uint_eq(r->len, 0);
    h_free(r);
    r = api("GET", p, NULL);
    ck_assert_int_eq(r->status, 200);
    ck_assert_str_eq(j_str(r->json, "status"), "cancelled");
    h_free(r);
    r = api("DELETE", p, NULL);
    ck_assert_int_eq(r->status, 410);
    ck_assert_str_eq(j_reason(r), "deleted");
    h_free(r);
    r = api("GET", EV "/nosuchevent1", NULL);
    ck_assert_int_eq(r->status, 404);
    ck_assert_str_eq(j_reason(r), "notFound");
    h_free(r);
    expect_api("DELETE", EV "/nosuchevent1", NULL, 404);
    expect_api("GET", "/calendar/v3/calendars/other%40example.com/events", NULL, 404);
    /* primary alias */
    expect_api("GET", "/calendar/v3/calendars/primary/events/nosuchevent1", NULL, 404);
    free(p);
    free(id);
}
END_TEST

START_TEST(if_match_precondition)
{
    char *id = ins();
    char *p = fmt(EVF "/%s", id);
    resp_t *r = api("GET", p, NULL);
    char *etag = strdup(j_str(r->json, "etag"));
    h_free(r);
    r = h_req(&E, "PATCH", p, T, "{\"summary\":\"y\"}", NULL, "If-Match: \"123\"");
    ck_assert_int_eq(r->status, 412);
    ck_assert_str_eq(j_reason(r), "conditionNotMet");
    h_free(r);
    r = h_req(&E, "PUT", p, T, TIMED("", "2030-01-07T10:00:00Z", "2030-01-07T11:00:00Z"), NULL,
              "If-Match: \"123\"");
    ck_assert_int_eq(r->status, 412);
    h_free(r);
    r = h_req(&E, "DELETE", p, T, NULL, NULL, "If-Match: \"123\"");
    ck_assert_int_eq(r->status, 412);
    h_free(r);
    char *hm = fmt("If-Match: %s", etag);
    r = h_req(&E, "PATCH", p, T, "{\"summary\":\"y\"}", NULL, hm);
    ck_assert_int_eq(r->status, 200);
    ck_assert_str_ne(j_str(r->json, "etag"), etag);
    h_free(r);
    r = h_req(&E, "DELETE", p, T, NULL, NULL, hm); /* stale now */
    ck_assert_int_eq(r->status, 412);
    h_free(r);
    free(hm);
    free(etag);
    free(p);
    free(id);
}
END_TEST

START_TEST(put_replaces_patch_merges)
{
    char *id = ins_at(
        "2030-01-07T10:00:00Z", "2030-01-07T11:00:00Z",
        "\"description\":\"d\",\"attendees\":[{\"email\":\"a@x.com\"},{\"email\":\"b@x.com\"}],"
        "\"extendedProperties\":{\"private\":{\"a\":\"1\",\"b\":\"2\"}},");
    char *p = fmt(EVF "/%s", id);
    resp_t *r = api("GET", p, NULL);
    char *etag0 = strdup(j_str(r->json, "etag"));
    char *upd0 = strdup(j_str(r->json, "updated"));
    h_free(r);
    /* PATCH: objects merge, arrays replace whole */
    r = api("PATCH", p,
            "{\"extendedProperties\":{\"private\":{\"c\":\"3\"}},\"attendees\":[{\"email\":\"c@x."
            "com\"}]}");
    ck_assert_int_eq(r->status, 200);
    ck_assert_str_eq(j_str(r->json, "extendedProperties/private/a"), "1");
    ck_assert_str_eq(j_str(r->json, "extendedProperties/private/c"), "3");
    ck_assert_uint_eq(j_len(r->json, "attendees"), 1);
    ck_assert_str_eq(j_str(r->json, "description"), "d");
    ck_assert_str_ne(j_str(r->json, "etag"), etag0);
    ck_assert_str_eq(j_str(r->json, "id"), id);
    h_free(r);
    /* PUT: the whole resource; omitted fields (extendedProperties) are gone */
    r = api("PUT", p, TIMED("", "2030-01-07T12:00:00Z", "2030-01-07T13:00:00Z"));
    ck_assert_int_eq(r->status, 200);
    ck_assert(!j_has(r->json, "extendedProperties"));
    ck_assert(!j_has(r->json, "description"));
    ck_assert_str_eq(j_str(r->json, "start/dateTime"), "2030-01-07T12:00:00Z");
    ck_assert_str_ne(j_str(r->json, "updated"), upd0);
    h_free(r);
    /* a deleted event is revived by PUT */
    r = api("DELETE", p, NULL);
    h_free(r);
    r = api("PUT", p, TIMED("", "2030-01-07T12:00:00Z", "2030-01-07T13:00:00Z"));
    ck_assert_int_eq(r->status, 200);
    ck_assert_str_eq(j_str(r->json, "status"), "confirmed");
    h_free(r);
    /* ... and by PATCH with a status */
    r = api("DELETE", p, NULL);
    h_free(r);
    r = api("PATCH", p, "{\"status\":\"confirmed\"}");
    ck_assert_int_eq(r->status, 200);
    ck_assert_str_eq(j_str(r->json, "status"), "confirmed");
    h_free(r);
    free(etag0);
    free(upd0);
    free(p);
    free(id);
}
END_TEST

START_TEST(event_type_rules)
{
    resp_t *r = admin("POST", "/_emulator/users/u@example.com/calendars",
                      "{\"id\":\"sec@group.calendar.google.com\",\"summary\":\"S\"}");
    h_free(r);
    r = api("POST", "/calendar/v3/calendars/sec%40group.calendar.google.com/events",
            "{\"eventType\":\"outOfOffice\",\"start\":{\"dateTime\":\"2030-01-07T10:00:00Z\"},"
            "\"end\":{\"dateTime\":\"2030-01-07T11:00:00Z\"}}");
    ck_assert_int_eq(r->status, 400);
    h_free(r);
    r = api("POST", EV,
            "{\"eventType\":\"outOfOffice\",\"start\":{\"dateTime\":\"2030-01-07T10:00:00Z\"},"
            "\"end\":{\"dateTime\":\"2030-01-07T11:00:00Z\"}}");
    ck_assert_int_eq(r->status, 200);
    char *p = fmt(EVF "/%s", j_str(r->json, "id"));
    h_free(r);
    expect_api("PATCH", p, "{\"eventType\":\"default\"}", 400);
    r = api("PATCH", p, "{\"summary\":\"ooo\"}"); /* unchanged type is fine */
    ck_assert_int_eq(r->status, 200);
    ck_assert_str_eq(j_str(r->json, "eventType"), "outOfOffice");
    h_free(r);
    /* birthday: no private extended properties */
    r = admin("POST", "/_emulator/calendars/u@example.com/events",
              "{\"eventType\":\"birthday\",\"start\":{\"date\":\"2030-03-01\"},\"end\":{\"date\":"
              "\"2030-03-02\"}}");
    ck_assert_int_eq(r->status, 200);
    char *bp = fmt(EVF "/%s", j_str(r->json, "id"));
    h_free(r);
    expect_api("PATCH", bp, "{\"extendedProperties\":{\"private\":{\"k\":\"v\"}}}", 400);
    expect_api("PATCH", bp, "{\"extendedProperties\":{\"shared\":{\"k\":\"v\"}}}", 200);
    free(bp);
    free(p);
}
END_TEST

START_TEST(extended_property_limits)
{
    char longkey[50], longval[1100];
    memset(longkey, 'k', 45);
    longkey[45] = '\0';
    memset(longval, 'v', 1030);
    longval[1030] = '\0';
    char *b = fmt("{\"start\":{\"dateTime\":\"2030-01-07T10:00:00Z\"},\"end\":{\"dateTime\":"
                  "\"2030-01-07T11:00:00Z\"},\"extendedProperties\":{\"private\":{\"%s\":\"x\","
                  "\"ok\":\"%s\"}}}",
                  longkey, longval);
    resp_t *r = api("POST", EV, b);
    ck_assert_int_eq(r->status, 200);
    ck_assert(!j_has(r->json,
                     "extendedProperties/private/kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk"));
    ck_assert_uint_eq(strlen(j_str(r->json, "extendedProperties/private/ok")), 1024);
    h_free(r);
    free(b);
    /* 301 properties */
    char *big = malloc(301 * 20 + 200);
    size_t o = (size_t)sprintf(
        big, "{\"start\":{\"dateTime\":\"2030-01-07T10:00:00Z\"},\"end\":{\"dateTime\":\"2030-01-"
             "07T11:00:00Z\"},\"extendedProperties\":{\"shared\":{");
    for (int i = 0; i < 301; i++)
        o += (size_t)sprintf(big + o, "%s\"k%d\":\"v\"", i ? "," : "", i);
    sprintf(big + o, "}}}");
    expect_api("POST", EV, big, 400);
    free(big);
}
END_TEST

/* Google counts a patch as 3 quota units. */
START_TEST(quota_patch_costs_three_units)
{
    char *id = ins();
    resp_t *r = admin("POST", "/_emulator/users/u@example.com/quota", "{\"rpm\":3,\"status\":403}");
    ck_assert_int_eq(r->status, 200);
    h_free(r);
    char *path = fmt(EVF "/%s", id);
    expect_api("PATCH", path, "{\"summary\":\"p\"}", 200);
    r = api("GET", path, NULL);
    ck_assert_int_eq(r->status, 403);
    ck_assert_str_eq(j_reason(r), "rateLimitExceeded");
    h_free(r);
    /* with two units left a patch is refused, a get is not */
    r = admin("POST", "/_emulator/users/u@example.com/quota", "{\"rpm\":4,\"status\":429}");
    h_free(r);
    expect_api("GET", path, NULL, 200);
    expect_api("GET", path, NULL, 200);
    r = api("PATCH", path, "{\"summary\":\"q\"}");
    ck_assert_int_eq(r->status, 429);
    ck_assert_str_eq(j_reason(r), "rateLimitExceeded");
    h_free(r);
    free(path);
    free(id);
}
END_TEST

/* Extended property limits count characters, not UTF-8 bytes. */
START_TEST(extended_property_limits_count_characters)
{
    /* 600 x "é" (1200 bytes) is under the 1024-character limit: kept whole */
    char val[2200] = "";
    for (int i = 0; i < 600; i++)
        strcat(val, "\xc3\xa9");
    /* a 40-character key of 2-byte characters is under the 44-character limit */
    char key[100] = "";
    for (int i = 0; i < 40; i++)
        strcat(key, "\xc3\xa9");
    char *b = fmt("{\"start\":{\"dateTime\":\"2030-01-07T10:00:00Z\"},\"end\":{\"dateTime\":"
                  "\"2030-01-07T11:00:00Z\"},\"extendedProperties\":{\"private\":{\"v\":\"%s\","
                  "\"%s\":\"x\"}}}",
                  val, key);
    resp_t *r = api("POST", EV, b);
    ck_assert_int_eq(r->status, 200);
    ck_assert_str_eq(j_str(r->json, "extendedProperties/private/v"), val);
    yajl_val priv = j_get(r->json, "extendedProperties/private");
    ck_assert(priv != NULL && YAJL_IS_OBJECT(priv));
    ck_assert_uint_eq(priv->u.object.len, 2);
    h_free(r);
    free(b);
    /* 1100 x "é" is truncated to 1024 characters (2048 bytes) */
    char big[2300] = "";
    for (int i = 0; i < 1100; i++)
        strcat(big, "\xc3\xa9");
    b = fmt("{\"start\":{\"dateTime\":\"2030-01-07T10:00:00Z\"},\"end\":{\"dateTime\":"
            "\"2030-01-07T11:00:00Z\"},\"extendedProperties\":{\"shared\":{\"v\":\"%s\"}}}",
            big);
    r = api("POST", EV, b);
    ck_assert_int_eq(r->status, 200);
    ck_assert_uint_eq(strlen(j_str(r->json, "extendedProperties/shared/v")), 2048);
    h_free(r);
    free(b);
}
END_TEST

/* A timed start/end needs an offset in dateTime or an explicit timeZone. */
START_TEST(datetime_needs_offset_or_time_zone)
{
    resp_t *r = api("POST", EV,
                    "{\"start\":{\"dateTime\":\"2030-01-07T10:00:00\"},"
                    "\"end\":{\"dateTime\":\"2030-01-07T11:00:00Z\"}}");
    ck_assert_int_eq(r->status, 400);
    ck_assert_str_eq(j_reason(r), "required");
    h_free(r);
    r = api("POST", EV,
            "{\"start\":{\"dateTime\":\"2030-01-07T10:00:00Z\"},"
            "\"end\":{\"dateTime\":\"2030-01-07T11:00:00\"}}");
    ck_assert_int_eq(r->status, 400);
    h_free(r);
    r = api("POST", EV,
            "{\"start\":{\"dateTime\":\"2030-01-07T10:00:00\",\"timeZone\":\"Europe/Berlin\"},"
            "\"end\":{\"dateTime\":\"2030-01-07T11:00:00\",\"timeZone\":\"Europe/Berlin\"}}");
    ck_assert_int_eq(r->status, 200);
    ck_assert_str_eq(j_str(r->json, "start/timeZone"), "Europe/Berlin");
    h_free(r);
}
END_TEST

/* attendees[].responseStatus is an enum: needsAction | declined | tentative | accepted. */
START_TEST(attendee_response_status_enum)
{
    resp_t *r = api("POST", EV,
                    "{\"start\":{\"dateTime\":\"2030-01-07T10:00:00Z\"},\"end\":{\"dateTime\":"
                    "\"2030-01-07T11:00:00Z\"},\"attendees\":[{\"email\":\"a@example.com\","
                    "\"responseStatus\":\"maybe\"}]}");
    ck_assert_int_eq(r->status, 400);
    h_free(r);
    r = api("POST", EV,
            "{\"start\":{\"dateTime\":\"2030-01-07T10:00:00Z\"},\"end\":{\"dateTime\":"
            "\"2030-01-07T11:00:00Z\"},\"attendees\":[{\"email\":\"a@example.com\","
            "\"responseStatus\":\"tentative\"},{\"email\":\"b@example.com\"}]}");
    ck_assert_int_eq(r->status, 200);
    ck_assert_str_eq(j_str(r->json, "attendees/0/responseStatus"), "tentative");
    ck_assert_str_eq(j_str(r->json, "attendees/1/responseStatus"), "needsAction");
    h_free(r);
}
END_TEST

/* ---------------------------------------------------------------- list + sync */

START_TEST(list_paging_tokens)
{
    for (int i = 0; i < 7; i++)
        free(ins());
    size_t pages = 0;
    char *sync = NULL;
    ck_assert_uint_eq(list_all("maxResults=3", &sync, &pages), 7);
    ck_assert_uint_ge(pages, 3);
    ck_assert_ptr_nonnull(sync);
    free(sync);
    resp_t *r = api("GET", EV "?maxResults=3", NULL);
    ck_assert_str_eq(j_str(r->json, "kind"), "calendar#events");
    ck_assert_ptr_nonnull(j_str(r->json, "etag"));
    ck_assert_ptr_nonnull(j_str(r->json, "summary"));
    ck_assert_ptr_nonnull(j_str(r->json, "timeZone"));
    ck_assert_ptr_nonnull(j_str(r->json, "updated"));
    ck_assert_uint_eq(j_len(r->json, "items"), 3);
    ck_assert(j_has(r->json, "nextPageToken") && !j_has(r->json, "nextSyncToken"));
    h_free(r);
    expect_api("GET", EV "?pageToken=garbage", NULL, 400);
    expect_api("GET", EV "?maxResults=0", NULL, 400);
    r = api("GET", EV "?maxResults=999999", NULL); /* clamped, not refused */
    ck_assert_int_eq(r->status, 200);
    ck_assert_uint_eq(j_len(r->json, "items"), 7);
    h_free(r);
}
END_TEST

START_TEST(sync_incremental_with_deletions)
{
    char *a = ins(), *b = ins(), *c = ins();
    char *sync = list_sync_token(EV);
    char *p = fmt(EVF "?syncToken=%s", sync);
    resp_t *r = api("GET", p, NULL);
    ck_assert_int_eq(r->status, 200);
    ck_assert_uint_eq(j_len(r->json, "items"), 0);
    h_free(r);
    char *pb = fmt(EVF "/%s", b), *pc = fmt(EVF "/%s", c);
    h_free(api("PATCH", pb, "{\"summary\":\"changed\"}"));
    h_free(api("DELETE", pc, NULL));
    char *d = ins();
    r = api("GET", p, NULL);
    ck_assert_int_eq(r->status, 200);
    ck_assert_uint_eq(j_len(r->json, "items"), 3);
    ck_assert(j_has(r->json, "nextSyncToken"));
    bool saw_cancel = false;
    for (size_t i = 0; i < 3; i++) {
        char *ip = fmt("items/%zu", i);
        yajl_val it = j_get(r->json, ip);
        if (strcmp(j_str(it, "id"), c) == 0) {
            saw_cancel = true;
            ck_assert_str_eq(j_str(it, "status"), "cancelled");
            ck_assert_uint_eq(it->u.object.len, 3); /* kind, id, status */
        } else {
            ck_assert_str_ne(j_str(it, "id"), a);
        }
        free(ip);
    }
    ck_assert(saw_cancel);
    char *sync2 = strdup(j_str(r->json, "nextSyncToken"));
    h_free(r);
    char *p2 = fmt(EVF "?syncToken=%s", sync2);
    r = api("GET", p2, NULL);
    ck_assert_uint_eq(j_len(r->json, "items"), 0);
    h_free(r);
    /* full listing omits cancelled events unless showDeleted */
    r = api("GET", EV, NULL);
    ck_assert_uint_eq(j_len(r->json, "items"), 3);
    h_free(r);
    r = api("GET", EV "?showDeleted=true", NULL);
    ck_assert_uint_eq(j_len(r->json, "items"), 4);
    h_free(r);
    free(p2);
    free(sync2);
    free(pb);
    free(pc);
    free(p);
    free(sync);
    free(a);
    free(b);
    free(c);
    free(d);
}
END_TEST

START_TEST(sync_paging_incremental)
{
    char *sync = list_sync_token(EV);
    for (int i = 0; i < 5; i++)
        free(ins());
    char *q = fmt("syncToken=%s&maxResults=2", sync);
    char *sync2 = NULL;
    size_t pages;
    ck_assert_uint_eq(list_all(q, &sync2, &pages), 5);
    ck_assert_uint_ge(pages, 3);
    free(q);
    q = fmt("syncToken=%s", sync2);
    ck_assert_uint_eq(list_all(q, NULL, NULL), 0);
    free(q);
    free(sync2);
    free(sync);
}
END_TEST

START_TEST(sync_token_rules)
{
    free(ins());
    char *sync = list_sync_token(EV);
    const char *forbidden[] = {"iCalUID=x",
                               "orderBy=updated",
                               "privateExtendedProperty=a%3Db",
                               "q=x",
                               "sharedExtendedProperty=a%3Db",
                               "timeMin=2030-01-01T00:00:00Z",
                               "timeMax=2030-01-01T00:00:00Z",
                               "updatedMin=2030-01-01T00:00:00Z",
                               "showDeleted=false"};
    for (size_t i = 0; i < sizeof(forbidden) / sizeof(forbidden[0]); i++) {
        char *p = fmt(EVF "?syncToken=%s&%s", sync, forbidden[i]);
        resp_t *r = api("GET", p, NULL);
        ck_assert_msg(r->status == 400, "%s -> %ld", forbidden[i], r->status);
        h_free(r);
        free(p);
    }
    resp_t *r = api("GET", EV "?syncToken=bogus", NULL);
    ck_assert_int_eq(r->status, 410);
    ck_assert_str_eq(j_reason(r), "fullSyncRequired");
    h_free(r);
    char *p = fmt(EVF "?syncToken=%s&showDeleted=true", sync);
    expect_api("GET", p, NULL, 200);
    expect_admin("POST", "/_emulator/calendars/u@example.com/invalidate_sync_tokens", NULL, 200);
    r = api("GET", p, NULL);
    ck_assert_int_eq(r->status, 410);
    ck_assert_str_eq(j_reason(r), "fullSyncRequired");
    h_free(r);
    /* a token of another calendar is not valid here */
    r = admin("POST", "/_emulator/users/u@example.com/calendars",
              "{\"id\":\"o@group.calendar.google.com\",\"summary\":\"o\"}");
    h_free(r);
    char *s2 = NULL;
    r = api("GET", "/calendar/v3/calendars/o%40group.calendar.google.com/events", NULL);
    s2 = strdup(j_str(r->json, "nextSyncToken"));
    h_free(r);
    free(p);
    p = fmt(EVF "?syncToken=%s", s2);
    expect_api("GET", p, NULL, 410);
    /* after a reset of the world every old token is gone */
    free(p);
    free(s2);
    free(sync);
}
END_TEST

START_TEST(list_time_window_and_unknown_params)
{
    free(ins_at("2030-01-07T10:00:00Z", "2030-01-07T11:00:00Z", NULL));
    free(ins_at("2030-01-09T10:00:00Z", "2030-01-09T11:00:00Z", NULL));
    resp_t *r = api("GET", EV "?timeMin=2030-01-08T00:00:00Z", NULL);
    ck_assert_uint_eq(j_len(r->json, "items"), 1);
    h_free(r);
    r = api("GET", EV "?timeMax=2030-01-07T10:30:00Z", NULL);
    ck_assert_uint_eq(j_len(r->json, "items"), 1);
    h_free(r);
    /* timeMax is exclusive for the start, timeMin for the end */
    r = api("GET", EV "?timeMin=2030-01-07T11:00:00Z&timeMax=2030-01-09T10:00:00Z", NULL);
    ck_assert_uint_eq(j_len(r->json, "items"), 0);
    h_free(r);
    expect_api("GET", EV "?timeMin=notatime", NULL, 400);
    r = api("GET", EV "?bogusParam=1", NULL);
    ck_assert_int_eq(r->status, 400);
    ck_assert_str_eq(j_reason(r), "invalidParameter");
    h_free(r);
    expect_api("GET", EV "?orderBy=startTime", NULL, 400);
}
END_TEST

/* ---------------------------------------------------------------- recurrence basics */

static char *ins_series(void)
{
    resp_t *r =
        api("POST", EV,
            "{\"summary\":\"daily\",\"start\":{\"dateTime\":\"2030-03-29T09:00:00\","
            "\"timeZone\":\"Europe/Berlin\"},\"end\":{\"dateTime\":\"2030-03-29T09:30:00\","
            "\"timeZone\":\"Europe/Berlin\"},\"recurrence\":[\"RRULE:FREQ=DAILY;COUNT=5\"]}");
    ck_assert_msg(r->status == 200, "%s", r->body);
    char *id = strdup(j_str(r->json, "id"));
    h_free(r);
    return id;
}

START_TEST(occurrence_ids_override_and_cancel)
{
    char *m = ins_series();
    char *sync = list_sync_token(EV);
    /* 2030-03-29 09:00 CET = 08:00Z; after the DST switch (31 March) 09:00 CEST = 07:00Z */
    char *p1 = fmt(EVF "/%s_20300329T080000Z", m);
    char *p3 = fmt(EVF "/%s_20300331T070000Z", m);
    resp_t *r = api("GET", p1, NULL);
    ck_assert_msg(r->status == 200, "%s", r->body);
    ck_assert_str_eq(j_str(r->json, "recurringEventId"), m);
    ck_assert_str_eq(j_str(r->json, "originalStartTime/dateTime"), "2030-03-29T09:00:00+01:00");
    h_free(r);
    r = api("GET", p3, NULL);
    ck_assert_int_eq(r->status, 200);
    ck_assert_str_eq(j_str(r->json, "start/dateTime"), "2030-03-31T09:00:00+02:00");
    h_free(r);
    char *bad = fmt(EVF "/%s_20300331T080000Z", m);
    expect_api("GET", bad, NULL, 404);
    /* patch an occurrence: an exception */
    r = api("PATCH", p3,
            "{\"summary\":\"moved\",\"start\":{\"dateTime\":\"2030-03-31T15:00:00+02:00\"},"
            "\"end\":{\"dateTime\":\"2030-03-31T15:30:00+02:00\"}}");
    ck_assert_msg(r->status == 200, "%s", r->body);
    ck_assert_str_eq(j_str(r->json, "recurringEventId"), m);
    ck_assert_str_eq(j_str(r->json, "originalStartTime/dateTime"), "2030-03-31T09:00:00+02:00");
    ck_assert(!j_has(r->json, "recurrence"));
    h_free(r);
    /* delete another occurrence */
    expect_api("DELETE", p1, NULL, 204);
    /* incremental: the exception and the cancelled instance (id, recurringEventId,
     * originalStartTime) */
    char *q = fmt(EVF "?syncToken=%s", sync);
    r = api("GET", q, NULL);
    ck_assert_uint_eq(j_len(r->json, "items"), 2);
    bool saw = false;
    for (size_t i = 0; i < 2; i++) {
        char *ip = fmt("items/%zu", i);
        yajl_val it = j_get(r->json, ip);
        if (strcmp(j_str(it, "status"), "cancelled") == 0) {
            saw = true;
            ck_assert_str_eq(j_str(it, "recurringEventId"), m);
            ck_assert(j_has(it, "originalStartTime"));
            ck_assert(!j_has(it, "summary") && !j_has(it, "start"));
        }
        free(ip);
    }
    ck_assert(saw);
    h_free(r);
    /* full listing: master plus the live exception */
    r = api("GET", EV, NULL);
    ck_assert_uint_eq(j_len(r->json, "items"), 2);
    h_free(r);
    /* singleEvents: 5 - 1 cancelled = 4 instances, master omitted */
    r = api("GET", EV "?singleEvents=true&orderBy=startTime", NULL);
    ck_assert_uint_eq(j_len(r->json, "items"), 4);
    ck_assert_str_eq(j_str(r->json, "items/1/summary"), "moved");
    ck_assert(j_has(r->json, "items/0/recurringEventId"));
    h_free(r);
    /* a master is listed when any occurrence overlaps the window */
    r = api("GET", EV "?timeMin=2030-04-02T00:00:00Z&timeMax=2030-04-03T00:00:00Z", NULL);
    ck_assert_uint_eq(j_len(r->json, "items"), 1);
    ck_assert_str_eq(j_str(r->json, "items/0/id"), m);
    h_free(r);
    r = api("GET", EV "?timeMin=2030-04-05T00:00:00Z", NULL);
    ck_assert_uint_eq(j_len(r->json, "items"), 0);
    h_free(r);
    free(q);
    free(bad);
    free(p1);
    free(p3);
    free(sync);
    free(m);
}
END_TEST

START_TEST(all_day_occurrence_ids)
{
    resp_t *r = api("POST", EV,
                    "{\"summary\":\"weekly\",\"start\":{\"date\":\"2030-01-07\"},\"end\":{\"date\":"
                    "\"2030-01-08\"},\"recurrence\":[\"RRULE:FREQ=WEEKLY;COUNT=3\"]}");
    ck_assert_int_eq(r->status, 200);
    char *m = strdup(j_str(r->json, "id"));
    h_free(r);
    char *p = fmt(EVF "/%s_20300114", m);
    r = api("GET", p, NULL);
    ck_assert_int_eq(r->status, 200);
    ck_assert_str_eq(j_str(r->json, "start/date"), "2030-01-14");
    ck_assert_str_eq(j_str(r->json, "end/date"), "2030-01-15");
    ck_assert_str_eq(j_str(r->json, "originalStartTime/date"), "2030-01-14");
    h_free(r);
    free(p);
    free(m);
}
END_TEST

/* ---------------------------------------------------------------- batch */

static char *batch_body(const char *boundary, size_t n_parts, const char *const *parts,
                        bool with_ids)
{
    size_t cap = 1024;
    for (size_t i = 0; i < n_parts; i++)
        cap += strlen(parts[i]) + 200;
    char *b = malloc(cap);
    size_t o = 0;
    for (size_t i = 0; i < n_parts; i++) {
        o += (size_t)sprintf(b + o, "--%s\r\nContent-Type: application/http\r\n", boundary);
        if (with_ids)
            o += (size_t)sprintf(b + o, "Content-ID: <item%zu>\r\n", i + 1);
        o += (size_t)sprintf(b + o, "\r\n%s\r\n", parts[i]);
    }
    sprintf(b + o, "--%s--\r\n", boundary);
    return b;
}

START_TEST(batch_mixed_parts)
{
    const char *parts[] = {
        "POST /calendar/v3/calendars/u%40example.com/events HTTP/1.1\r\nContent-Type: "
        "application/json\r\n\r\n"
        "{\"id\":\"batch00001\",\"start\":{\"dateTime\":\"2030-01-07T10:00:00Z\"},\"end\":{"
        "\"dateTime\":\"2030-01-07T11:00:00Z\"}}",
        "GET /calendar/v3/calendars/u%40example.com/events/batch00001 HTTP/1.1\r\n\r\n",
        "GET /calendar/v3/calendars/u%40example.com/events/nosuchevent1\r\n",
        "DELETE /calendar/v3/calendars/u%40example.com/events/batch00001 "
        "HTTP/1.1\r\nAuthorization: Bearer wrong\r\n\r\n",
    };
    char *body = batch_body("b0undary", 4, parts, true);
    resp_t *r = h_req(&E, "POST", "/batch/calendar/v3", T, body,
                      "multipart/mixed; boundary=b0undary", NULL);
    ck_assert_int_eq(r->status, 200);
    char *ct = h_header(r, "content-type");
    ck_assert(strncmp(ct, "multipart/mixed; boundary=", 26) == 0);
    const char *ob = ct + 26;
    ck_assert_ptr_nonnull(strstr(r->body, ob));
    /* order and content ids */
    const char *p1 = strstr(r->body, "Content-ID: <response-item1>");
    const char *p2 = strstr(r->body, "Content-ID: <response-item2>");
    const char *p3 = strstr(r->body, "Content-ID: <response-item3>");
    const char *p4 = strstr(r->body, "Content-ID: <response-item4>");
    ck_assert(p1 && p2 && p3 && p4 && p1 < p2 && p2 < p3 && p3 < p4);
    ck_assert_ptr_nonnull(strstr(p1, "HTTP/1.1 200 OK"));
    ck_assert(strstr(p1, "HTTP/1.1 200 OK") < p2);
    ck_assert(strstr(p2, "\"id\":\"batch00001\"") < p3);
    ck_assert(strstr(p3, "HTTP/1.1 404") < p4);
    ck_assert_ptr_nonnull(strstr(p4, "HTTP/1.1 401"));
    ck_assert_ptr_nonnull(strstr(p1, "Content-Type: application/http"));
    h_free(r);
    free(ct);
    ck_assert_int_eq(counter(&E, "batch"), 1);
    ck_assert_int_eq(counter(&E, "batch_parts"), 4);
    ck_assert_int_eq(counter(&E, "requests"), 1);
    ck_assert_int_eq(counter(&E, "insert"), 1);
    ck_assert_int_eq(counter(&E, "writes"), 2);
    /* the outer request needs credentials */
    r = h_req(&E, "POST", "/batch/calendar/v3", NULL, body, "multipart/mixed; boundary=b0undary",
              NULL);
    ck_assert_int_eq(r->status, 401);
    h_free(r);
    free(body);
}
END_TEST

START_TEST(batch_limits_and_many_inserts)
{
    /* 1001 parts: refused */
    const char *one =
        "GET /calendar/v3/calendars/u%40example.com/events/nosuchevent1 HTTP/1.1\r\n\r\n";
    const char **many = malloc(sizeof(*many) * 1001);
    for (size_t i = 0; i < 1001; i++)
        many[i] = one;
    char *body = batch_body("xx", 1001, many, false);
    resp_t *r =
        h_req(&E, "POST", "/batch/calendar/v3", T, body, "multipart/mixed; boundary=xx", NULL);
    ck_assert_int_eq(r->status, 400);
    h_free(r);
    free(body);
    free(many);
    /* 2501 events through 51 batches of 50; a page holds at most 2500 */
    char **ps = malloc(sizeof(*ps) * 50);
    for (int b = 0; b < 51; b++) {
        size_t n = b == 50 ? 1 : 50;
        for (size_t i = 0; i < n; i++)
            ps[i] =
                fmt("POST /calendar/v3/calendars/u%%40example.com/events HTTP/1.1\r\n"
                    "Content-Type: application/json\r\n\r\n"
                    "{\"summary\":\"blk %d-%zu\",\"start\":{\"dateTime\":\"2030-01-07T10:00:00Z\"},"
                    "\"end\":{\"dateTime\":\"2030-01-07T11:00:00Z\"}}",
                    b, i);
        body = batch_body("bb", n, (const char *const *)ps, false);
        r = h_req(&E, "POST", "/batch/calendar/v3", T, body, "multipart/mixed; boundary=bb", NULL);
        ck_assert_int_eq(r->status, 200);
        h_free(r);
        free(body);
        for (size_t i = 0; i < n; i++)
            free(ps[i]);
    }
    free(ps);
    r = api("GET", EV "?maxResults=5000", NULL);
    ck_assert_int_eq(r->status, 200);
    ck_assert_uint_eq(j_len(r->json, "items"), 2500);
    ck_assert(j_has(r->json, "nextPageToken"));
    h_free(r);
    ck_assert_uint_eq(list_all("maxResults=2500", NULL, NULL), 2501);
    ck_assert_int_eq(counter(&E, "writes"), 2501);
    ck_assert_int_eq(counter(&E, "batch_parts"), 1001 * 0 + 2501);
}
END_TEST

/* ---------------------------------------------------------------- errors */

START_TEST(errors_are_google_shaped)
{
    resp_t *r = api("POST", EV, "{not json");
    ck_assert_int_eq(r->status, 400);
    ck_assert_str_eq(j_reason(r), "parseError");
    ck_assert_str_eq(j_str(r->json, "error/errors/0/domain"), "global");
    ck_assert_ptr_nonnull(j_str(r->json, "error/errors/0/message"));
    ck_assert_int_eq(j_int(r->json, "error/code"), 400);
    ck_assert_ptr_nonnull(j_str(r->json, "error/message"));
    h_free(r);
    expect_api("POST", EV, "[1,2]", 400);
    char *huge = malloc(1100 * 1024);
    memset(huge, ' ', 1100 * 1024 - 1);
    huge[0] = '{';
    huge[1100 * 1024 - 2] = '}';
    huge[1100 * 1024 - 1] = '\0';
    r = api("POST", EV, huge);
    ck_assert_int_eq(r->status, 413);
    ck_assert_int_eq(j_int(r->json, "error/code"), 413);
    h_free(r);
    free(huge);
    expect_api("GET", "/calendar/v3/nothing/here", NULL, 404);
    /* deeply nested JSON does not crash */
    char deep[400];
    memset(deep, '[', 300);
    deep[300] = '\0';
    expect_api("POST", EV, deep, 400);
}
END_TEST

START_TEST(quota_per_user)
{
    resp_t *r = admin("POST", "/_emulator/users/u@example.com/quota", "{\"rpm\":2,\"status\":429}");
    ck_assert_int_eq(r->status, 200);
    h_free(r);
    for (int i = 0; i < 2; i++) {
        expect_api("GET", EV, NULL, 200);
    }
    r = api("GET", EV, NULL);
    ck_assert_int_eq(r->status, 429);
    ck_assert_str_eq(j_reason(r), "rateLimitExceeded");
    h_free(r);
    r = admin("POST", "/_emulator/users/u@example.com/quota", "{\"rpm\":1,\"status\":403}");
    h_free(r);
    expect_api("GET", EV, NULL, 200);
    r = api("GET", EV, NULL);
    ck_assert_int_eq(r->status, 403);
    ck_assert_str_eq(j_reason(r), "rateLimitExceeded");
    h_free(r);
    /* each batch part counts */
    r = admin("POST", "/_emulator/users/u@example.com/quota", "{\"rpm\":2,\"status\":403}");
    h_free(r);
    const char *parts[] = {"GET /calendar/v3/calendars/u%40example.com/events HTTP/1.1\r\n\r\n",
                           "GET /calendar/v3/calendars/u%40example.com/events HTTP/1.1\r\n\r\n",
                           "GET /calendar/v3/calendars/u%40example.com/events HTTP/1.1\r\n\r\n"};
    char *body = batch_body("q", 3, parts, false);
    r = h_req(&E, "POST", "/batch/calendar/v3", T, body, "multipart/mixed; boundary=q", NULL);
    ck_assert_int_eq(r->status, 200);
    ck_assert_ptr_nonnull(strstr(r->body, "HTTP/1.1 403"));
    h_free(r);
    free(body);
}
END_TEST

static int fault_pattern(char *out, size_t n)
{
    resp_t *r =
        admin("POST", "/_emulator/faults", "{\"seed\":42,\"error_500\":0.3,\"error_503\":0.2}");
    ck_assert_int_eq(r->status, 200);
    h_free(r);
    int errors = 0;
    for (size_t i = 0; i < n; i++) {
        r = api("GET", EV, NULL);
        out[i] = r->status == 200 ? '.' : r->status == 500 ? '5' : r->status == 503 ? '3' : '?';
        if (r->status != 200) {
            errors++;
            ck_assert_str_eq(j_reason(r), "backendError");
        }
        h_free(r);
    }
    out[n] = '\0';
    return errors;
}

START_TEST(faults_seeded_and_repeatable)
{
    char a[41], b[41];
    int ea = fault_pattern(a, 40);
    int eb = fault_pattern(b, 40);
    ck_assert_str_eq(a, b);
    ck_assert_int_gt(ea, 0);
    ck_assert_int_lt(ea, 40);
    ck_assert_int_eq(counter(&E, "errors_injected"), ea + eb);
    ck_assert(strchr(a, '?') == NULL);
    /* admin is never faulted */
    resp_t *r = admin("POST", "/_emulator/faults", "{\"error_500\":1}");
    h_free(r);
    expect_admin("GET", "/_emulator/health", NULL, 200);
    expect_api("GET", EV, NULL, 500);
    r = admin("POST", "/_emulator/faults", "{\"error_429\":1}");
    h_free(r);
    expect_api("GET", EV, NULL, 429);
    r = admin("POST", "/_emulator/faults", "{}");
    h_free(r);
    expect_api("GET", EV, NULL, 200);
    expect_admin("POST", "/_emulator/faults", "{\"error_500\":2}", 400);
}
END_TEST

START_TEST(faults_latency_and_short_pages)
{
    for (int i = 0; i < 20; i++)
        free(ins());
    resp_t *r = admin("POST", "/_emulator/faults", "{\"seed\":7,\"short_pages\":1}");
    h_free(r);
    size_t pages = 0;
    ck_assert_uint_eq(list_all("maxResults=10", NULL, &pages), 20);
    ck_assert_uint_gt(pages, 2); /* shorter pages than asked, nothing lost */
    r = admin("POST", "/_emulator/faults", "{\"latency_ms\":300}");
    h_free(r);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    r = api("GET", EV "?maxResults=1", NULL);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    ck_assert_int_eq(r->status, 200);
    h_free(r);
    long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
    ck_assert_int_ge(ms, 280);
}
END_TEST

/* One of u's counters (GET /_emulator/users/{email}/counters). */
static long long user_counter(const char *email, const char *name)
{
    char *path = fmt("/_emulator/users/%s/counters", email);
    resp_t *r = admin("GET", path, NULL);
    ck_assert_int_eq(r->status, 200);
    long long v = j_int(r->json, name);
    h_free(r);
    free(path);
    return v;
}

static long elapsed_ms(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (t1.tv_sec - t0->tv_sec) * 1000 + (t1.tv_nsec - t0->tv_nsec) / 1000000;
}

START_TEST(faults_per_user_hit_that_user_only)
{
    char *tv = emu_user(&E, "v@example.com");
    const char *vev = "/calendar/v3/calendars/v%40example.com/events";
    expect_admin("POST", "/_emulator/users/u@example.com/faults", "{\"error_500\":1}", 200);
    expect_api("GET", EV, NULL, 500);
    resp_t *r = h_req(&E, "GET", vev, tv, NULL, NULL, NULL);
    ck_assert_int_eq(r->status, 200);
    h_free(r);
    ck_assert_int_eq(counter(&E, "errors_injected"), 1);
    ck_assert_int_eq(user_counter("u@example.com", "errors_injected"), 1);
    ck_assert_int_eq(user_counter("v@example.com", "errors_injected"), 0);

    /* batch parts: each as the user it is authenticated as (outer or its own) */
    char *own = fmt("GET %s HTTP/1.1\r\n\r\n", vev);
    char *as_u = fmt("GET %s HTTP/1.1\r\nAuthorization: Bearer %s\r\n\r\n", EV, T);
    const char *parts[] = {own, as_u};
    char *body = batch_body("pu", 2, parts, true);
    r = h_req(&E, "POST", "/batch/calendar/v3", tv, body, "multipart/mixed; boundary=pu", NULL);
    ck_assert_int_eq(r->status, 200);
    const char *p1 = strstr(r->body, "Content-ID: <response-item1>");
    const char *p2 = strstr(r->body, "Content-ID: <response-item2>");
    ck_assert(p1 != NULL && p2 != NULL && p1 < p2);
    ck_assert(strstr(p1, "HTTP/1.1 200") != NULL && strstr(p1, "HTTP/1.1 200") < p2);
    ck_assert_ptr_nonnull(strstr(p2, "HTTP/1.1 500"));
    h_free(r);
    free(body);
    /* per-user counters: requests (a batch once), calls (parts one by one) */
    ck_assert_int_eq(user_counter("v@example.com", "requests"), 2);
    ck_assert_int_eq(user_counter("v@example.com", "calls"), 2);
    ck_assert_int_eq(user_counter("u@example.com", "requests"), 1);
    ck_assert_int_eq(user_counter("u@example.com", "calls"), 2);
    ck_assert_int_eq(user_counter("u@example.com", "errors_injected"), 2);

    /* writes_only and max_errors work per user too */
    expect_admin("POST", "/_emulator/users/u@example.com/faults",
                 "{\"error_503\":1,\"writes_only\":1,\"max_errors\":1}", 200);
    expect_api("GET", EV, NULL, 200);
    resp_t *w = api("POST", EV, TIMED("", "2030-01-07T10:00:00Z", "2030-01-07T11:00:00Z"));
    ck_assert_int_eq(w->status, 503);
    h_free(w);
    free(ins()); /* max_errors spent */

    /* latency: u's requests (and a batch with a part as u) wait, v's do not */
    expect_admin("POST", "/_emulator/users/u@example.com/faults", "{\"latency_ms\":2000}", 200);
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    expect_api("GET", EV "?maxResults=1", NULL, 200);
    ck_assert_int_ge(elapsed_ms(&t0), 1900);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    r = h_req(&E, "GET", vev, tv, NULL, NULL, NULL);
    ck_assert_int_eq(r->status, 200);
    h_free(r);
    long v_ms = elapsed_ms(&t0);
    ck_assert_msg(v_ms < 1900, "v waited %ld ms for u's latency", v_ms);
    body = batch_body("pu", 2, parts, true);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    r = h_req(&E, "POST", "/batch/calendar/v3", tv, body, "multipart/mixed; boundary=pu", NULL);
    ck_assert_int_eq(r->status, 200);
    ck_assert_int_ge(elapsed_ms(&t0), 1900);
    h_free(r);
    free(body);

    /* {} clears; world-only keys, bad values and unknown users are refused */
    expect_admin("POST", "/_emulator/users/u@example.com/faults", "{}", 200);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    expect_api("GET", EV, NULL, 200);
    ck_assert_int_lt(elapsed_ms(&t0), 1900);
    expect_admin("POST", "/_emulator/users/u@example.com/faults", "{\"drop_notifications\":1}",
                 400);
    expect_admin("POST", "/_emulator/users/u@example.com/faults", "{\"error_500\":2}", 400);
    expect_admin("POST", "/_emulator/users/nobody@example.com/faults", "{}", 404);
    expect_admin("GET", "/_emulator/users/nobody@example.com/counters", NULL, 404);
    /* the world's counters reset zeroes the users' */
    h_free(admin("POST", "/_emulator/counters/reset", NULL));
    ck_assert_int_eq(user_counter("u@example.com", "calls"), 0);
    ck_assert_int_eq(user_counter("u@example.com", "errors_injected"), 0);
    free(own);
    free(as_u);
    free(tv);
}
END_TEST

START_TEST(counters_by_kind_and_reset)
{
    h_free(admin("POST", "/_emulator/counters/reset", NULL));
    char *id = ins();
    char *p = fmt(EVF "/%s", id);
    h_free(api("GET", p, NULL));
    h_free(api("PATCH", p, "{\"summary\":\"z\"}"));
    h_free(api("PUT", p, TIMED("", "2030-01-07T10:00:00Z", "2030-01-07T11:00:00Z")));
    h_free(api("GET", EV, NULL));
    h_free(api("DELETE", p, NULL));
    h_free(admin("GET", "/_emulator/counters", NULL));
    ck_assert_int_eq(counter(&E, "requests"), 6);
    ck_assert_int_eq(counter(&E, "insert"), 1);
    ck_assert_int_eq(counter(&E, "get"), 1);
    ck_assert_int_eq(counter(&E, "patch"), 1);
    ck_assert_int_eq(counter(&E, "update"), 1);
    ck_assert_int_eq(counter(&E, "delete"), 1);
    ck_assert_int_eq(counter(&E, "list"), 1);
    ck_assert_int_eq(counter(&E, "writes"), 4);
    ck_assert_int_eq(counter(&E, "token"), 0);
    h_free(admin("POST", "/_emulator/counters/reset", NULL));
    ck_assert_int_eq(counter(&E, "requests"), 0);
    ck_assert_int_eq(counter(&E, "writes"), 0);
    free(p);
    free(id);
}
END_TEST

/* ---------------------------------------------------------------- admin */

START_TEST(admin_writes_feed_sync_and_dump)
{
    char *sync = list_sync_token(EV);
    resp_t *r = admin("POST", "/_emulator/calendars/u@example.com/events",
                      "{\"summary\":\"office\",\"eventType\":\"workingLocation\","
                      "\"start\":{\"date\":\"2030-01-07\"},\"end\":{\"date\":\"2030-01-08\"},"
                      "\"attendees\":[{\"email\":\"u@example.com\",\"self\":true,"
                      "\"responseStatus\":\"declined\"}]}");
    ck_assert_msg(r->status == 200, "%s", r->body);
    ck_assert(YAJL_IS_TRUE(j_get(r->json, "attendees/0/self")));
    char *id = strdup(j_str(r->json, "id"));
    char *etag = strdup(j_str(r->json, "etag"));
    h_free(r);
    char *ap = fmt("/_emulator/calendars/u@example.com/events/%s", id);
    r = admin("PATCH", ap, "{\"summary\":\"home\"}");
    ck_assert_int_eq(r->status, 200);
    ck_assert_str_ne(j_str(r->json, "etag"), etag);
    h_free(r);
    char *q = fmt(EVF "?syncToken=%s", sync);
    r = api("GET", q, NULL);
    ck_assert_uint_eq(j_len(r->json, "items"), 1);
    ck_assert_str_eq(j_str(r->json, "items/0/summary"), "home");
    char *sync2 = strdup(j_str(r->json, "nextSyncToken"));
    h_free(r);
    expect_admin("DELETE", ap, NULL, 204);
    free(q);
    q = fmt(EVF "?syncToken=%s", sync2);
    r = api("GET", q, NULL);
    ck_assert_uint_eq(j_len(r->json, "items"), 1);
    ck_assert_str_eq(j_str(r->json, "items/0/status"), "cancelled");
    h_free(r);
    r = admin("GET", "/_emulator/calendars/u@example.com/dump", NULL);
    ck_assert_uint_eq(j_len(r->json, "items"), 1);
    ck_assert_str_eq(j_str(r->json, "items/0/status"), "cancelled");
    ck_assert_str_eq(j_str(r->json, "items/0/summary"), "home"); /* full resource */
    h_free(r);
    /* admin calls are not counted */
    ck_assert_int_eq(counter(&E, "writes"), 0);
    /* reset wipes the world */
    expect_admin("POST", "/_emulator/reset", NULL, 200);
    expect_api("GET", EV, NULL, 401);
    expect_admin("GET", "/_emulator/calendars/u@example.com/dump", NULL, 404);
    free(sync2);
    free(q);
    free(ap);
    free(etag);
    free(id);
    free(sync);
}
END_TEST

START_TEST(seed_demo_world)
{
    emu_proc_t d;
    emu_start(&d, (const char *const[]){"--seed-demo", NULL});
    char *at = emu_access_token(&d, "demo-refresh-alice");
    resp_t *r = h_req(&d, "GET", "/calendar/v3/users/me/calendarList", at, NULL, NULL, NULL);
    ck_assert_uint_eq(j_len(r->json, "items"), 2);
    ck_assert_str_eq(j_str(r->json, "items/0/id"), "alice@example.com");
    ck_assert_str_eq(j_str(r->json, "items/0/timeZone"), "Europe/Berlin");
    ck_assert_str_eq(j_str(r->json, "items/1/id"), "alice-personal@group.calendar.google.com");
    ck_assert_str_eq(j_str(r->json, "items/1/summary"), "Alice personal");
    h_free(r);
    r = h_req(&d, "GET", "/calendar/v3/calendars/alice%40example.com/events?showDeleted=true", at,
              NULL, NULL, NULL);
    ck_assert_int_eq(r->status, 200);
    size_t n = j_len(r->json, "items");
    ck_assert_uint_ge(n, 6);
    bool rec = false, moved = false, cancelled = false, allday = false, declined = false,
         transparent = false, working = false;
    for (size_t i = 0; i < n; i++) {
        char *ip = fmt("items/%zu", i);
        yajl_val it = j_get(r->json, ip);
        free(ip);
        if (j_has(it, "recurrence"))
            rec = true;
        const char *st = j_str(it, "status");
        if (j_has(it, "recurringEventId") && st != NULL && strcmp(st, "cancelled") == 0)
            cancelled = true;
        else if (j_has(it, "recurringEventId"))
            moved = true;
        if (j_has(it, "start/date"))
            allday = true;
        const char *tr = j_str(it, "transparency");
        if (tr != NULL && strcmp(tr, "transparent") == 0)
            transparent = true;
        const char *et = j_str(it, "eventType");
        if (et != NULL && strcmp(et, "workingLocation") == 0)
            working = true;
        for (size_t k = 0; k < j_len(it, "attendees"); k++) {
            char *ap = fmt("attendees/%zu", k);
            yajl_val a = j_get(it, ap);
            free(ap);
            const char *rs = j_str(a, "responseStatus");
            if (YAJL_IS_TRUE(j_get(a, "self")) && rs != NULL && strcmp(rs, "declined") == 0)
                declined = true;
        }
    }
    ck_assert(rec && moved && cancelled && allday && declined && transparent && working);
    h_free(r);
    free(at);
    at = emu_access_token(&d, "demo-refresh-bob");
    r = h_req(&d, "GET", "/calendar/v3/users/me/calendarList", at, NULL, NULL, NULL);
    ck_assert_uint_eq(j_len(r->json, "items"), 1);
    ck_assert_str_eq(j_str(r->json, "items/0/timeZone"), "America/New_York");
    h_free(r);
    r = h_req(&d, "GET", "/calendar/v3/calendars/bob%40example.com/events", at, NULL, NULL, NULL);
    ck_assert_uint_ge(j_len(r->json, "items"), 1);
    h_free(r);
    free(at);
    ck_assert_int_eq(emu_stop(&d), 0);
}
END_TEST

/* ---------------------------------------------------------------- P3: recurrence, filters, import,
 * --db */

static char *ins_body(const char *body)
{
    resp_t *r = api("POST", EV, body);
    ck_assert_msg(r->status == 200, "insert: %ld %s", r->status, r->body);
    char *id = strdup(j_str(r->json, "id"));
    h_free(r);
    return id;
}

START_TEST(recurrence_exdate_rdate_across_dst)
{
    free(ins_body(
        "{\"summary\":\"weekly\",\"start\":{\"dateTime\":\"2030-03-18T10:00:00\",\"timeZone\":"
        "\"Europe/Berlin\"},\"end\":{\"dateTime\":\"2030-03-18T11:00:00\",\"timeZone\":"
        "\"Europe/Berlin\"},\"recurrence\":[\"RRULE:FREQ=WEEKLY;COUNT=4\","
        "\"EXDATE;TZID=Europe/Berlin:20300325T100000\","
        "\"RDATE;TZID=Europe/Berlin:20300402T100000\"]}"));
    resp_t *r = api("GET", EV "?singleEvents=true&orderBy=startTime", NULL);
    ck_assert_int_eq(r->status, 200);
    ck_assert_uint_eq(j_len(r->json, "items"), 4);
    ck_assert_str_eq(j_str(r->json, "items/0/start/dateTime"), "2030-03-18T10:00:00+01:00");
    ck_assert_str_eq(j_str(r->json, "items/1/start/dateTime"), "2030-04-01T10:00:00+02:00");
    ck_assert_str_eq(j_str(r->json, "items/2/start/dateTime"), "2030-04-02T10:00:00+02:00");
    ck_assert_str_eq(j_str(r->json, "items/3/start/dateTime"), "2030-04-08T10:00:00+02:00");
    ck_assert_str_eq(j_str(r->json, "items/3/end/dateTime"), "2030-04-08T11:00:00+02:00");
    const char *id1 = j_str(r->json, "items/1/id");
    ck_assert_ptr_nonnull(strstr(id1, "_20300401T080000Z"));
    h_free(r);
    /* timeMin/timeMax on instances */
    r = api("GET",
            EV "?singleEvents=true&timeMin=2030-04-01T00:00:00Z&timeMax=2030-04-03T00:00:00Z",
            NULL);
    ck_assert_uint_eq(j_len(r->json, "items"), 2);
    h_free(r);
    /* a recurring timed event needs a time zone */
    r = api("POST", EV,
            "{\"start\":{\"dateTime\":\"2030-03-18T10:00:00Z\"},\"end\":{\"dateTime\":"
            "\"2030-03-18T11:00:00Z\"},\"recurrence\":[\"RRULE:FREQ=DAILY\"]}");
    ck_assert_int_eq(r->status, 400);
    h_free(r);
    r = api("POST", EV,
            "{\"start\":{\"dateTime\":\"2030-03-18T10:00:00\",\"timeZone\":\"UTC\"},"
            "\"end\":{\"dateTime\":\"2030-03-18T11:00:00\",\"timeZone\":\"UTC\"},"
            "\"recurrence\":[\"RRULE:FREQ=SOMETIMES\"]}");
    ck_assert_int_eq(r->status, 400);
    h_free(r);
}
END_TEST

START_TEST(instances_endpoint)
{
    char *m = ins_series(); /* 5 daily from 2030-03-29 09:00 Berlin */
    char *p = fmt(EVF "/%s_20300330T080000Z", m);
    h_free(api("DELETE", p, NULL));
    free(p);
    p = fmt(EVF "/%s_20300401T070000Z", m);
    h_free(api("PATCH", p, "{\"summary\":\"changed\"}"));
    free(p);
    p = fmt(EVF "/%s/instances", m);
    resp_t *r = api("GET", p, NULL);
    ck_assert_int_eq(r->status, 200);
    ck_assert_uint_eq(j_len(r->json, "items"), 4);
    ck_assert_str_eq(j_str(r->json, "items/2/summary"), "changed");
    h_free(r);
    free(p);
    p = fmt(EVF "/%s/instances?showDeleted=true", m);
    r = api("GET", p, NULL);
    ck_assert_uint_eq(j_len(r->json, "items"), 5);
    ck_assert_str_eq(j_str(r->json, "items/1/status"), "cancelled");
    h_free(r);
    free(p);
    p = fmt(EVF "/%s/instances?maxResults=2", m);
    r = api("GET", p, NULL);
    ck_assert_uint_eq(j_len(r->json, "items"), 2);
    char *pt = strdup(j_str(r->json, "nextPageToken"));
    h_free(r);
    char *p2 = fmt("%s&pageToken=%s", p, pt);
    r = api("GET", p2, NULL);
    ck_assert_uint_eq(j_len(r->json, "items"), 2);
    h_free(r);
    free(p2);
    free(pt);
    free(p);
    p = fmt(EVF "/%s/instances?timeMin=2030-04-01T12:00:00Z", m);
    r = api("GET", p, NULL);
    ck_assert_uint_eq(j_len(r->json, "items"), 1);
    h_free(r);
    free(p);
    expect_api("GET", EV "/nosuchseries/instances", NULL, 404);
    ck_assert_int_eq(counter(&E, "instances"), 6);
    free(m);
}
END_TEST

START_TEST(list_filters)
{
    char *a =
        ins_body("{\"summary\":\"Budget Review\",\"start\":{\"dateTime\":\"2030-01-07T10:00:00Z\"},"
                 "\"end\":{\"dateTime\":\"2030-01-07T11:00:00Z\"},\"extendedProperties\":"
                 "{\"private\":{\"bm\":\"1\",\"src\":\"x\"},\"shared\":{\"team\":\"red\"}}}");
    char *b =
        ins_body("{\"summary\":\"Lunch\",\"location\":\"Budget cafe\",\"start\":{\"dateTime\":"
                 "\"2030-01-08T10:00:00Z\"},\"end\":{\"dateTime\":\"2030-01-08T11:00:00Z\"},"
                 "\"extendedProperties\":{\"private\":{\"bm\":\"2\"}}}");
    char *c =
        ins_body("{\"summary\":\"Focus\",\"eventType\":\"focusTime\",\"start\":{\"dateTime\":"
                 "\"2030-01-09T10:00:00Z\"},\"end\":{\"dateTime\":\"2030-01-09T11:00:00Z\"}}");
    resp_t *r = api("GET", EV "?q=budget", NULL);
    ck_assert_uint_eq(j_len(r->json, "items"), 2);
    h_free(r);
    r = api("GET", EV "?privateExtendedProperty=bm%3D1", NULL);
    ck_assert_uint_eq(j_len(r->json, "items"), 1);
    ck_assert_str_eq(j_str(r->json, "items/0/id"), a);
    h_free(r);
    r = api("GET", EV "?privateExtendedProperty=bm%3D1&privateExtendedProperty=src%3Dx", NULL);
    ck_assert_uint_eq(j_len(r->json, "items"), 1);
    h_free(r);
    r = api("GET", EV "?sharedExtendedProperty=team%3Dred", NULL);
    ck_assert_uint_eq(j_len(r->json, "items"), 1);
    h_free(r);
    r = api("GET", EV "?sharedExtendedProperty=team%3Dblue", NULL);
    ck_assert_uint_eq(j_len(r->json, "items"), 0);
    h_free(r);
    expect_api("GET", EV "?privateExtendedProperty=novalue", NULL, 400);
    r = api("GET", EV "?eventTypes=focusTime", NULL);
    ck_assert_uint_eq(j_len(r->json, "items"), 1);
    ck_assert_str_eq(j_str(r->json, "items/0/id"), c);
    h_free(r);
    r = api("GET", EV "?eventTypes=default&eventTypes=focusTime", NULL);
    ck_assert_uint_eq(j_len(r->json, "items"), 3);
    h_free(r);
    expect_api("GET", EV "?eventTypes=party", NULL, 400);
    char *q = fmt(EVF "?iCalUID=%s%%40google.com", b);
    r = api("GET", q, NULL);
    ck_assert_uint_eq(j_len(r->json, "items"), 1);
    ck_assert_str_eq(j_str(r->json, "items/0/id"), b);
    h_free(r);
    free(q);
    /* orderBy=updated */
    sleep_ms(5);
    char *pa = fmt(EVF "/%s", a);
    h_free(api("PATCH", pa, "{\"summary\":\"Budget Review 2\"}"));
    r = api("GET", EV "?orderBy=updated", NULL);
    ck_assert_str_eq(j_str(r->json, "items/2/id"), a);
    h_free(r);
    /* updatedMin */
    time_t now = time(NULL);
    struct tm tm;
    char ts[64];
    gmtime_r(&now, &tm);
    tm.tm_hour -= 1;
    time_t hour_ago = timegm(&tm);
    gmtime_r(&hour_ago, &tm);
    strftime(ts, sizeof(ts), "%Y-%m-%dT%H%%3A%M%%3A%SZ", &tm);
    q = fmt(EVF "?updatedMin=%s", ts);
    r = api("GET", q, NULL);
    ck_assert_int_eq(r->status, 200);
    ck_assert_uint_eq(j_len(r->json, "items"), 3);
    h_free(r);
    free(q);
    time_t old = now - 40 * 86400;
    gmtime_r(&old, &tm);
    strftime(ts, sizeof(ts), "%Y-%m-%dT%H%%3A%M%%3A%SZ", &tm);
    q = fmt(EVF "?updatedMin=%s", ts);
    r = api("GET", q, NULL);
    ck_assert_int_eq(r->status, 410);
    ck_assert_str_eq(j_reason(r), "updatedMinTooLongAgo");
    h_free(r);
    free(q);
    free(pa);
    free(a);
    free(b);
    free(c);
}
END_TEST

START_TEST(import_by_ical_uid)
{
    resp_t *r = api("POST", EV "/import",
                    "{\"start\":{\"dateTime\":\"2030-01-07T10:00:00Z\"},"
                    "\"end\":{\"dateTime\":\"2030-01-07T11:00:00Z\"}}");
    ck_assert_int_eq(r->status, 400);
    h_free(r);
    r = api("POST", EV "/import",
            "{\"iCalUID\":\"ext-123@example.org\",\"summary\":\"one\","
            "\"start\":{\"dateTime\":\"2030-01-07T10:00:00Z\"},"
            "\"end\":{\"dateTime\":\"2030-01-07T11:00:00Z\"}}");
    ck_assert_int_eq(r->status, 200);
    ck_assert_str_eq(j_str(r->json, "iCalUID"), "ext-123@example.org");
    char *id = strdup(j_str(r->json, "id"));
    h_free(r);
    r = api("POST", EV "/import",
            "{\"iCalUID\":\"ext-123@example.org\",\"summary\":\"two\","
            "\"start\":{\"dateTime\":\"2030-01-07T10:00:00Z\"},"
            "\"end\":{\"dateTime\":\"2030-01-07T11:00:00Z\"}}");
    ck_assert_int_eq(r->status, 200);
    ck_assert_str_eq(j_str(r->json, "id"), id);
    ck_assert_str_eq(j_str(r->json, "summary"), "two");
    h_free(r);
    ck_assert_int_eq(counter(&E, "import"), 3);
    ck_assert_int_eq(counter(&E, "writes"), 3);
    free(id);
}
END_TEST

/* One meeting in two calendars: the same iCalUID, an id of each calendar's own. */
START_TEST(ical_uid_on_insert_and_in_two_calendars)
{
#define UID_BODY(uid, extra)                                                                       \
    "{\"iCalUID\":\"" uid "\"," extra "\"summary\":\"m\","                                         \
    "\"start\":{\"dateTime\":\"2030-01-07T10:00:00Z\"},"                                           \
    "\"end\":{\"dateTime\":\"2030-01-07T11:00:00Z\"}}"
    expect_admin("POST", "/_emulator/users/u@example.com/calendars",
                 "{\"id\":\"two@group.calendar.google.com\",\"summary\":\"two\"}", 200);
    resp_t *r = api("POST", EV, UID_BODY("meet-1@example.org", ""));
    ck_assert_msg(r->status == 200, "%ld %s", r->status, r->body);
    ck_assert_str_eq(j_str(r->json, "iCalUID"), "meet-1@example.org");
    char *id = strdup(j_str(r->json, "id"));
    h_free(r);
    /* one event per iCalUID and calendar, a deleted one's included */
    expect_api("POST", EV, UID_BODY("meet-1@example.org", ""), 409);
    char *path = fmt(EVF "/%s", id);
    expect_api("DELETE", path, NULL, 204);
    expect_api("POST", EV, UID_BODY("meet-1@example.org", ""), 409);
    expect_api("POST", EV, UID_BODY("", ""), 400);
    /* the same meeting imported into another calendar: same iCalUID, its own id */
    r = api("POST", "/calendar/v3/calendars/two%40group.calendar.google.com/events/import",
            UID_BODY("meet-1@example.org", ""));
    ck_assert_msg(r->status == 200, "%ld %s", r->status, r->body);
    ck_assert_str_eq(j_str(r->json, "iCalUID"), "meet-1@example.org");
    ck_assert_str_ne(j_str(r->json, "id"), id);
    char *id2 = strdup(j_str(r->json, "id"));
    h_free(r);
    /* an update keeps it (only import may set it on an existing event) */
    char *path2 = fmt("/calendar/v3/calendars/two%%40group.calendar.google.com/events/%s", id2);
    r = api("PUT", path2, UID_BODY("other@example.org", ""));
    ck_assert_int_eq(r->status, 200);
    ck_assert_str_eq(j_str(r->json, "iCalUID"), "meet-1@example.org");
    h_free(r);
    /* an invitation landing through the admin API keeps its iCalUID; a series'
     * occurrences share it */
    r = admin("POST", "/_emulator/calendars/u@example.com/events",
              "{\"iCalUID\":\"series-1@example.org\",\"summary\":\"weekly\","
              "\"start\":{\"dateTime\":\"2030-01-07T10:00:00Z\",\"timeZone\":\"UTC\"},"
              "\"end\":{\"dateTime\":\"2030-01-07T11:00:00Z\",\"timeZone\":\"UTC\"},"
              "\"recurrence\":[\"RRULE:FREQ=WEEKLY;COUNT=3\"]}");
    ck_assert_msg(r->status == 200, "%ld %s", r->status, r->body);
    ck_assert_str_eq(j_str(r->json, "iCalUID"), "series-1@example.org");
    char *sid = strdup(j_str(r->json, "id"));
    h_free(r);
    char *inst = fmt(EVF "/%s/instances", sid);
    r = api("GET", inst, NULL);
    ck_assert_int_eq(r->status, 200);
    ck_assert_uint_eq(j_len(r->json, "items"), 3);
    ck_assert_str_eq(j_str(r->json, "items/2/iCalUID"), "series-1@example.org");
    ck_assert_str_ne(j_str(r->json, "items/2/id"), sid);
    h_free(r);
    r = api("GET", EV "?iCalUID=series-1%40example.org", NULL);
    ck_assert_int_eq(r->status, 200);
    ck_assert_uint_eq(j_len(r->json, "items"), 1);
    h_free(r);
    free(inst);
    free(sid);
    free(path2);
    free(id2);
    free(path);
    free(id);
#undef UID_BODY
}
END_TEST

START_TEST(single_events_incremental)
{
    char *m = ins_series();
    char *sync = list_sync_token(EV "?singleEvents=true");
    char *p = fmt(EVF "/%s", m);
    h_free(api("PATCH", p, "{\"summary\":\"renamed\"}"));
    char *q = fmt(EVF "?singleEvents=true&syncToken=%s", sync);
    resp_t *r = api("GET", q, NULL);
    ck_assert_int_eq(r->status, 200);
    ck_assert_uint_eq(j_len(r->json, "items"), 5);
    ck_assert_str_eq(j_str(r->json, "items/0/summary"), "renamed");
    ck_assert_str_eq(j_str(r->json, "items/0/recurringEventId"), m);
    h_free(r);
    free(q);
    free(p);
    free(sync);
    free(m);
}
END_TEST

START_TEST(db_persists_world_across_restart)
{
    char dbdir[] = "/tmp/emudb.XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dbdir));
    char *dbpath = fmt("%s/world.db", dbdir);
    emu_proc_t d;
    emu_start(&d, (const char *const[]){"--db", dbpath, NULL});
    resp_t *r =
        h_req(&d, "POST", "/_emulator/users", NULL,
              "{\"email\":\"p@example.com\",\"refresh_token\":\"rt-persist-1\"}", NULL, NULL);
    ck_assert_int_eq(r->status, 200);
    h_free(r);
    h_free(h_req(&d, "POST", "/_emulator/users/p@example.com/calendars", NULL,
                 "{\"id\":\"p2@group.calendar.google.com\",\"summary\":\"P2\"}", NULL, NULL));
    char *at = emu_access_token(&d, "rt-persist-1");
    const char *ev = "/calendar/v3/calendars/p%40example.com/events";
    r = h_req(&d, "POST", ev, at,
              "{\"id\":\"persist001\",\"summary\":\"kept\",\"start\":{\"dateTime\":"
              "\"2030-01-07T10:00:00Z\"},\"end\":{\"dateTime\":\"2030-01-07T11:00:00Z\"}}",
              NULL, NULL);
    ck_assert_int_eq(r->status, 200);
    char *etag = strdup(j_str(r->json, "etag"));
    h_free(r);
    r = h_req(&d, "DELETE", "/calendar/v3/calendars/p%40example.com/events/persist001", at, NULL,
              NULL, NULL);
    ck_assert_int_eq(r->status, 204);
    h_free(r);
    r = h_req(&d, "GET", ev, at, NULL, NULL, NULL);
    char *sync = strdup(j_str(r->json, "nextSyncToken"));
    h_free(r);
    ck_assert_int_eq(emu_stop(&d), 0);
    struct stat st;
    ck_assert_int_eq(stat(dbpath, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0600);

    emu_start(&d, (const char *const[]){"--db", dbpath, NULL});
    /* the access token survived, and so did the sync history */
    char *q = fmt("%s?syncToken=%s", ev, sync);
    r = h_req(&d, "GET", q, at, NULL, NULL, NULL);
    ck_assert_msg(r->status == 200, "%s", r->body);
    ck_assert_uint_eq(j_len(r->json, "items"), 0);
    h_free(r);
    r = h_req(&d, "GET", "/calendar/v3/calendars/p%40example.com/events/persist001", at, NULL, NULL,
              NULL);
    ck_assert_int_eq(r->status, 200);
    ck_assert_str_eq(j_str(r->json, "status"), "cancelled");
    ck_assert_str_ne(j_str(r->json, "etag"), etag);
    h_free(r);
    r = h_req(&d, "POST", ev, at,
              "{\"id\":\"persist001\",\"start\":{\"dateTime\":\"2030-01-07T10:00:00Z\"},"
              "\"end\":{\"dateTime\":\"2030-01-07T11:00:00Z\"}}",
              NULL, NULL);
    ck_assert_int_eq(r->status, 409);
    h_free(r);
    r = h_req(&d, "PUT", "/calendar/v3/calendars/p%40example.com/events/persist001", at,
              "{\"summary\":\"back\",\"start\":{\"dateTime\":\"2030-01-07T10:00:00Z\"},"
              "\"end\":{\"dateTime\":\"2030-01-07T11:00:00Z\"}}",
              NULL, NULL);
    ck_assert_int_eq(r->status, 200);
    h_free(r);
    r = h_req(&d, "GET", q, at, NULL, NULL, NULL);
    ck_assert_uint_eq(j_len(r->json, "items"), 1);
    ck_assert_str_eq(j_str(r->json, "items/0/summary"), "back");
    h_free(r);
    r = h_req(&d, "GET", "/calendar/v3/users/me/calendarList", at, NULL, NULL, NULL);
    ck_assert_uint_eq(j_len(r->json, "items"), 2);
    ck_assert_str_eq(j_str(r->json, "items/0/id"), "p@example.com");
    h_free(r);
    free(emu_access_token(&d, "rt-persist-1"));
    ck_assert_int_eq(emu_stop(&d), 0);
    free(q);
    free(sync);
    free(etag);
    free(at);
    char *cmd = fmt("rm -rf '%s'", dbdir);
    ck_assert_int_eq(system(cmd), 0);
    free(cmd);
    free(dbpath);
}
END_TEST

Suite *make_suite(void)
{
    Suite *s = suite_create("emulator");
    TCase *tc = tcase_create("api");
    tcase_add_checked_fixture(tc, up, down);
    tcase_set_timeout(tc, 0);
    tcase_add_test(tc, startup_line_port_file_and_clean_exit);
    tcase_add_test(tc, bad_flag_exits_2);
    tcase_add_test(tc, oauth_refresh_grant);
    tcase_add_test(tc, oauth_revoke_kills_refresh_and_access_tokens);
    tcase_add_test(tc, oauth_authorization_code_pkce);
    tcase_add_test(tc, oauth_consent_user_from_admin);
    tcase_add_test(tc, oauth_consent_refused_redirects_access_denied);
    tcase_add_test(tc, oauth_refresh_token_only_for_offline_access);
    tcase_add_test(tc, oauth_pkce_rules_at_consent_and_exchange);
    tcase_add_test(tc, oauth_redirect_uri_must_be_loopback_and_match);
    tcase_add_test(tc, admin_lists_refresh_tokens_of_a_user);
    tcase_add_test(tc, auth_missing_bad_and_expired);
    tcase_add_test(tc, token_ttl_flag_expires_tokens);
    tcase_add_test(tc, calendar_list_pages_and_primary);
    tcase_add_test(tc, insert_fills_server_fields);
    tcase_add_test(tc, insert_validates_ids_and_duplicates);
    tcase_add_test(tc, insert_validates_times);
    tcase_add_test(tc, get_delete_semantics);
    tcase_add_test(tc, if_match_precondition);
    tcase_add_test(tc, put_replaces_patch_merges);
    tcase_add_test(tc, event_type_rules);
    tcase_add_test(tc, extended_property_limits);
    tcase_add_test(tc, list_paging_tokens);
    tcase_add_test(tc, sync_incremental_with_deletions);
    tcase_add_test(tc, sync_paging_incremental);
    tcase_add_test(tc, sync_token_rules);
    tcase_add_test(tc, list_time_window_and_unknown_params);
    tcase_add_test(tc, occurrence_ids_override_and_cancel);
    tcase_add_test(tc, all_day_occurrence_ids);
    tcase_add_test(tc, batch_mixed_parts);
    tcase_add_test(tc, batch_limits_and_many_inserts);
    tcase_add_test(tc, errors_are_google_shaped);
    tcase_add_test(tc, quota_per_user);
    tcase_add_test(tc, faults_seeded_and_repeatable);
    tcase_add_test(tc, faults_latency_and_short_pages);
    tcase_add_test(tc, faults_per_user_hit_that_user_only);
    tcase_add_test(tc, counters_by_kind_and_reset);
    tcase_add_test(tc, admin_writes_feed_sync_and_dump);
    tcase_add_test(tc, seed_demo_world);
    tcase_add_test(tc, quota_patch_costs_three_units);
    tcase_add_test(tc, extended_property_limits_count_characters);
    tcase_add_test(tc, datetime_needs_offset_or_time_zone);
    tcase_add_test(tc, attendee_response_status_enum);
    suite_add_tcase(s, tc);
    TCase *t3 = tcase_create("recurrence_filters_import_db");
    tcase_add_checked_fixture(t3, up, down);
    tcase_set_timeout(t3, 0);
    tcase_add_test(t3, recurrence_exdate_rdate_across_dst);
    tcase_add_test(t3, instances_endpoint);
    tcase_add_test(t3, list_filters);
    tcase_add_test(t3, import_by_ical_uid);
    tcase_add_test(t3, ical_uid_on_insert_and_in_two_calendars);
    tcase_add_test(t3, single_events_incremental);
    tcase_add_test(t3, db_persists_world_across_restart);
    suite_add_tcase(s, t3);
    return s;
}

#include "check_main.h"
