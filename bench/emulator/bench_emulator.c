/*
 * bench/emulator/bench_emulator.c: throughput of gcal-emulator on loopback.
 *
 *   bench_emulator EMULATOR_BINARY [batches=200] [list_rounds=5]
 *
 * Starts the emulator, inserts batches*50 events through 50-part batch
 * requests, then lists the calendar in pages of 2500 (list_rounds full
 * passes), and prints batch inserts/s, list pages/s and ms per page. One
 * client connection (keep-alive), like busymirror's engine. Bounded in count.
 */
#include <curl/curl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

typedef struct buf {
    char *p;
    size_t len;
} buf_t;

static CURL *c;
static char base[64];

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static size_t on_data(char *p, size_t sz, size_t n, void *arg)
{
    buf_t *b = arg;
    char *q = realloc(b->p, b->len + sz * n + 1);
    if (q == NULL)
        return 0;
    b->p = q;
    memcpy(b->p + b->len, p, sz * n);
    b->len += sz * n;
    b->p[b->len] = '\0';
    return sz * n;
}

static long req(const char *method, const char *path, const char *auth, const char *ctype,
                const char *body, buf_t *out)
{
    char url[4096];
    snprintf(url, sizeof(url), "%s%s", base, path);
    struct curl_slist *h = NULL;
    char a[512], ct[256];
    if (auth != NULL) {
        snprintf(a, sizeof(a), "Authorization: Bearer %s", auth);
        h = curl_slist_append(h, a);
    }
    if (ctype != NULL) {
        snprintf(ct, sizeof(ct), "Content-Type: %s", ctype);
        h = curl_slist_append(h, ct);
    }
    h = curl_slist_append(h, "Expect:");
    out->len = 0;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
    if (body != NULL) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
    long status = -1;
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(h);
    return status;
}

static char *json_str(const char *body, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof(pat), "\"%s\":\"", key);
    const char *p = strstr(body, pat);
    if (p == NULL)
        return NULL;
    p += strlen(pat);
    return strndup(p, strcspn(p, "\""));
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bench_emulator EMULATOR [batches] [list_rounds]\n");
        return 2;
    }
    int batches = argc > 2 ? atoi(argv[2]) : 200;
    int rounds = argc > 3 ? atoi(argv[3]) : 5;
    if (batches < 1 || batches > 2000 || rounds < 1 || rounds > 100) {
        fprintf(stderr, "batches 1..2000, rounds 1..100\n");
        return 2;
    }
    char dir[] = "/tmp/emubench.XXXXXX";
    if (mkdtemp(dir) == NULL)
        return 1;
    char pf[128];
    snprintf(pf, sizeof(pf), "%s/port", dir);
    pid_t pid = fork();
    if (pid == 0) {
        execl(argv[1], argv[1], "--port", "0", "--port-file", pf, (char *)NULL);
        _exit(127);
    }
    int port = 0;
    for (int i = 0; i < 500 && port == 0; i++) {
        FILE *f = fopen(pf, "r");
        if (f != NULL) {
            if (fscanf(f, "%d", &port) != 1)
                port = 0;
            fclose(f);
        }
        usleep(10000);
    }
    if (port == 0) {
        fprintf(stderr, "emulator did not start\n");
        return 1;
    }
    snprintf(base, sizeof(base), "http://127.0.0.1:%d", port);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    c = curl_easy_init();
    buf_t b = {0};
    int rc = 1;
    if (req("POST", "/_emulator/users", NULL, "application/json",
            "{\"email\":\"bench@example.com\",\"refresh_token\":\"bench-refresh-token\"}",
            &b) != 200)
        goto out;
    if (req("POST", "/token", NULL, "application/x-www-form-urlencoded",
            "grant_type=refresh_token&client_id=emu-client-id&client_secret=emu-client-secret&"
            "refresh_token=bench-refresh-token",
            &b) != 200)
        goto out;
    char *tok = json_str(b.p, "access_token");

    /* batch inserts */
    size_t cap = 50 * 700 + 100;
    char *body = malloc(cap);
    double t0 = now_s();
    for (int k = 0; k < batches; k++) {
        size_t o = 0;
        for (int i = 0; i < 50; i++) {
            int n = k * 50 + i;
            o += (size_t)snprintf(
                body + o, cap - o,
                "--bb\r\nContent-Type: application/http\r\nContent-ID: <i%d>\r\n\r\n"
                "POST /calendar/v3/calendars/bench%%40example.com/events?sendUpdates=none "
                "HTTP/1.1\r\n"
                "Content-Type: application/json\r\n\r\n"
                "{\"id\":\"bm%08d\",\"summary\":\"Busy\",\"transparency\":\"opaque\","
                "\"start\":{\"dateTime\":\"2030-01-%02dT%02d:00:00Z\"},"
                "\"end\":{\"dateTime\":\"2030-01-%02dT%02d:30:00Z\"},"
                "\"extendedProperties\":{\"private\":{\"busymirror\":\"1\",\"src\":\"cal-%d\"}}}"
                "\r\n",
                i, n, 1 + n % 28, n % 24, 1 + n % 28, n % 24, n % 7);
        }
        snprintf(body + o, cap - o, "--bb--\r\n");
        long st = req("POST", "/batch/calendar/v3", tok, "multipart/mixed; boundary=bb", body, &b);
        if (st != 200 || strstr(b.p, "HTTP/1.1 200") == NULL) {
            fprintf(stderr, "batch failed: %ld\n", st);
            goto out;
        }
    }
    double t_batch = now_s() - t0;
    int inserted = batches * 50;

    /* list pages of 2500 */
    int pages = 0, items = 0;
    t0 = now_s();
    for (int r = 0; r < rounds; r++) {
        char *pt = NULL;
        do {
            char path[2048];
            snprintf(path, sizeof(path),
                     "/calendar/v3/calendars/bench%%40example.com/events?maxResults=2500%s%s",
                     pt ? "&pageToken=" : "", pt ? pt : "");
            free(pt);
            if (req("GET", path, tok, NULL, NULL, &b) != 200) {
                fprintf(stderr, "list failed\n");
                goto out;
            }
            pages++;
            for (const char *p = b.p; (p = strstr(p, "\"kind\":\"calendar#event\"")) != NULL; p++)
                items++;
            pt = json_str(b.p, "nextPageToken");
        } while (pt != NULL);
    }
    double t_list = now_s() - t0;
    printf("events inserted:        %d (%d batches of 50)\n", inserted, batches);
    printf("batch inserts/s:        %.0f\n", inserted / t_batch);
    printf("batch requests/s:       %.1f\n", batches / t_batch);
    printf("list pages (2500):      %d pages, %d items\n", pages, items);
    printf("list pages/s:           %.1f\n", pages / t_list);
    printf("ms per 2500-event page: %.2f\n", 1000.0 * t_list / pages);
    printf("list bytes/page:        %zu (last page)\n", b.len);
    free(tok);
    free(body);
    rc = 0;
out:
    free(b.p);
    curl_easy_cleanup(c);
    curl_global_cleanup();
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0)
        rc = 1;
    return rc;
}
