/* tests/emulator/harness.c: see harness.h. */
#include "harness.h"

#include <check.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

char *fmt(const char *f, ...)
{
    va_list ap;
    va_start(ap, f);
    char *s = NULL;
    int n = vasprintf(&s, f, ap);
    va_end(ap);
    ck_assert_int_ge(n, 0);
    return s;
}

void emu_start(emu_proc_t *e, const char *const *extra)
{
    memset(e, 0, sizeof(*e));
    snprintf(e->dir, sizeof(e->dir), "/tmp/emutest.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(e->dir));
    const char *bin = getenv("GCAL_EMULATOR");
    ck_assert_msg(bin != NULL, "GCAL_EMULATOR not set");
    char portfile[300], out[300];
    snprintf(portfile, sizeof(portfile), "%s/port", e->dir);
    snprintf(out, sizeof(out), "%s/stdout", e->dir);
    const char *argv[40];
    size_t n = 0;
    argv[n++] = bin;
    argv[n++] = "--port";
    argv[n++] = "0";
    argv[n++] = "--port-file";
    argv[n++] = portfile;
    for (size_t i = 0; extra != NULL && extra[i] != NULL && n < 38; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd >= 0) {
            dup2(fd, 1);
            close(fd);
        }
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    e->pid = pid;
    for (int i = 0; i < 1000; i++) {
        FILE *f = fopen(portfile, "r");
        if (f != NULL) {
            int p = 0;
            int ok = fscanf(f, "%d", &p);
            fclose(f);
            if (ok == 1 && p > 0) {
                e->port = p;
                break;
            }
        }
        int st;
        ck_assert_msg(waitpid(pid, &st, WNOHANG) == 0, "emulator died at startup");
        sleep_ms(10);
    }
    ck_assert_int_gt(e->port, 0);
    snprintf(e->base, sizeof(e->base), "http://127.0.0.1:%d", e->port);
}

int emu_stop(emu_proc_t *e)
{
    int st = 0;
    if (e->pid <= 0)
        return -1;
    kill(e->pid, SIGTERM);
    ck_assert_int_eq(waitpid(e->pid, &st, 0), e->pid);
    e->pid = 0;
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", e->dir);
    if (system(cmd) != 0) {
        /* best effort */
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

typedef struct grow {
    char *p;
    size_t len;
} grow_t;

static size_t on_data(char *p, size_t sz, size_t n, void *arg)
{
    grow_t *g = arg;
    size_t k = sz * n;
    g->p = realloc(g->p, g->len + k + 1);
    ck_assert_ptr_nonnull(g->p);
    memcpy(g->p + g->len, p, k);
    g->len += k;
    g->p[g->len] = '\0';
    return k;
}

resp_t *h_req(const emu_proc_t *e, const char *method, const char *path, const char *token,
              const char *body, const char *ctype, const char *extra_header)
{
    CURL *c = curl_easy_init();
    ck_assert_ptr_nonnull(c);
    char *url = strncmp(path, "http", 4) == 0 ? strdup(path) : fmt("%s%s", e->base, path);
    struct curl_slist *h = NULL;
    char *auth = token != NULL ? fmt("Authorization: Bearer %s", token) : NULL;
    char *ct = NULL;
    if (auth != NULL)
        h = curl_slist_append(h, auth);
    if (body != NULL) {
        ct = fmt("Content-Type: %s", ctype != NULL ? ctype : "application/json");
        h = curl_slist_append(h, ct);
    }
    if (extra_header != NULL)
        h = curl_slist_append(h, extra_header);
    h = curl_slist_append(h, "Expect:");
    grow_t b = {0}, hd = {0};
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (body != NULL) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    } else if (strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0 ||
               strcmp(method, "PATCH") == 0) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, 0L);
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &hd);
    curl_easy_setopt(c, CURLOPT_FORBID_REUSE, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
    CURLcode rc = curl_easy_perform(c);
    ck_assert_msg(rc == CURLE_OK, "%s %s: %s", method, url, curl_easy_strerror(rc));
    resp_t *r = calloc(1, sizeof(*r));
    ck_assert_ptr_nonnull(r);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    r->body = b.p != NULL ? b.p : strdup("");
    r->len = b.len;
    r->headers = hd.p != NULL ? hd.p : strdup("");
    if (r->len > 0 && (r->body[0] == '{' || r->body[0] == '['))
        r->json = yajl_tree_parse(r->body, NULL, 0);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    free(url);
    free(auth);
    free(ct);
    return r;
}

void h_free(resp_t *r)
{
    if (r == NULL)
        return;
    if (r->json != NULL)
        yajl_tree_free(r->json);
    free(r->body);
    free(r->headers);
    free(r);
}

char *h_header(const resp_t *r, const char *name)
{
    size_t nl = strlen(name);
    const char *p = r->headers;
    while (p != NULL && *p != '\0') {
        if (strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            const char *v = p + nl + 1;
            while (*v == ' ')
                v++;
            size_t l = strcspn(v, "\r\n");
            return strndup(v, l);
        }
        p = strchr(p, '\n');
        if (p != NULL)
            p++;
    }
    return NULL;
}

yajl_val j_get(yajl_val v, const char *path)
{
    char buf[512];
    snprintf(buf, sizeof(buf), "%s", path);
    char *save = NULL;
    for (char *tok = strtok_r(buf, "/", &save); tok != NULL && v != NULL;
         tok = strtok_r(NULL, "/", &save)) {
        if (YAJL_IS_ARRAY(v)) {
            char *end;
            long i = strtol(tok, &end, 10);
            if (*end != '\0' || i < 0 || (size_t)i >= v->u.array.len)
                return NULL;
            v = v->u.array.values[i];
        } else if (YAJL_IS_OBJECT(v)) {
            yajl_val next = NULL;
            for (size_t i = 0; i < v->u.object.len; i++)
                if (strcmp(v->u.object.keys[i], tok) == 0)
                    next = v->u.object.values[i];
            v = next;
        } else {
            return NULL;
        }
    }
    return v;
}

const char *j_str(yajl_val v, const char *path)
{
    yajl_val x = j_get(v, path);
    return YAJL_IS_STRING(x) ? x->u.string : NULL;
}

long long j_int(yajl_val v, const char *path)
{
    yajl_val x = j_get(v, path);
    if (YAJL_IS_INTEGER(x))
        return x->u.number.i;
    if (YAJL_IS_STRING(x))
        return strtoll(x->u.string, NULL, 10);
    return -999999;
}

size_t j_len(yajl_val v, const char *path)
{
    yajl_val x = j_get(v, path);
    if (YAJL_IS_ARRAY(x))
        return x->u.array.len;
    if (YAJL_IS_OBJECT(x))
        return x->u.object.len;
    return 0;
}

bool j_has(yajl_val v, const char *path)
{
    return j_get(v, path) != NULL;
}

const char *j_reason(const resp_t *r)
{
    const char *s = j_str(r->json, "error/errors/0/reason");
    return s != NULL ? s : "";
}

char *emu_access_token(const emu_proc_t *e, const char *refresh_token)
{
    char *body = fmt("grant_type=refresh_token&client_id=emu-client-id&client_secret=emu-client-"
                     "secret&refresh_token=%s",
                     refresh_token);
    resp_t *r = h_req(e, "POST", "/token", NULL, body, "application/x-www-form-urlencoded", NULL);
    ck_assert_int_eq(r->status, 200);
    char *t = strdup(j_str(r->json, "access_token"));
    h_free(r);
    free(body);
    return t;
}

char *emu_user(const emu_proc_t *e, const char *email)
{
    char *body = fmt("{\"email\":\"%s\"}", email);
    resp_t *r = h_req(e, "POST", "/_emulator/users", NULL, body, NULL, NULL);
    ck_assert_int_eq(r->status, 200);
    char *at = emu_access_token(e, j_str(r->json, "refresh_token"));
    h_free(r);
    free(body);
    return at;
}

char *url_enc(const char *s)
{
    char *out = malloc(strlen(s) * 3 + 1);
    ck_assert_ptr_nonnull(out);
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            *p == '-' || *p == '_' || *p == '.' || *p == '~') {
            out[o++] = (char)*p;
        } else {
            o += (size_t)sprintf(out + o, "%%%02X", *p);
        }
    }
    out[o] = '\0';
    return out;
}

long long counter(const emu_proc_t *e, const char *name)
{
    resp_t *r = h_req(e, "GET", "/_emulator/counters", NULL, NULL, NULL, NULL);
    ck_assert_int_eq(r->status, 200);
    long long v = j_int(r->json, name);
    h_free(r);
    return v;
}
