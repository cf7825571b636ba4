/* cli/output.c: what several commands print the same way: times, texts for a
 * terminal, JSON documents. */
#include "cli/cli.h"
#include "core/util.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

void bm_cli_fmt_time(int64_t t, char *buf, size_t len)
{
    time_t tt = (time_t)t;
    struct tm tm;
    if (t <= 0 || gmtime_r(&tt, &tm) == NULL || strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(buf, len, "never");
}

/* The length of the character at p when it may reach a terminal as it is: valid
 * UTF-8 (no overlong form, surrogate or code point past U+10FFFF) that is no
 * control (C0, DEL, C1) and no line or bidirectional control (U+2028, U+2029,
 * U+202A..U+202E, U+2066..U+2069), which could move or reorder what a person
 * reads. 0 otherwise. */
static size_t printable_len(const unsigned char *p)
{
    unsigned char c = p[0], lo = 0x80, hi = 0xbf;
    if (c >= 0x20 && c < 0x7f)
        return 1;
    if (c < 0xc2 || c > 0xf4) /* C0, DEL, a lone continuation, overlong, too big */
        return 0;
    size_t n = c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
    if (c == 0xc2)
        lo = 0xa0; /* U+0080..U+009F: C1 (0x9b is CSI) */
    else if (c == 0xe0)
        lo = 0xa0;
    else if (c == 0xed)
        hi = 0x9f;
    else if (c == 0xf0)
        lo = 0x90;
    else if (c == 0xf4)
        hi = 0x8f;
    if (p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++) /* stops at the NUL: it is no continuation */
        if (p[i] < 0x80 || p[i] > 0xbf)
            return 0;
    if (c == 0xe2 && ((p[1] == 0x80 && p[2] >= 0xa8 && p[2] <= 0xae) ||
                      (p[1] == 0x81 && p[2] >= 0xa6 && p[2] <= 0xa9)))
        return 0;
    return n;
}

const char *bm_cli_text(const char *s, char *buf, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n, o = 0;
    if (s == NULL)
        return NULL;
    while (*p != '\0' && (n = printable_len(p)) > 0)
        p += n;
    if (*p == '\0')
        return s; /* nothing to replace: as it is, never cut */
    if (len == 0)
        return "";
    for (p = (const unsigned char *)s; *p != '\0';) {
        n = printable_len(p);
        size_t w = n > 0 ? n : 1; /* one '?' per refused byte */
        if (o + w >= len)
            break;
        if (n > 0)
            memcpy(buf + o, p, n);
        else
            buf[o] = '?';
        o += w;
        p += w;
    }
    buf[o] = '\0';
    return buf;
}

/* Records the first failure; every call after it is a no-op. */
static bool json_ok(bm_cli_json_t *j, yajl_gen_status s)
{
    if (s != yajl_gen_status_ok)
        j->bad = true;
    return !j->bad;
}

static bool json_key(bm_cli_json_t *j, const char *key)
{
    if (j->bad)
        return false;
    return key == NULL ||
           json_ok(j, yajl_gen_string(j->g, (const unsigned char *)key, strlen(key)));
}

void bm_cli_json_begin(bm_cli_json_t *j)
{
    j->g = yajl_gen_alloc(NULL);
    if (j->g == NULL)
        abort();
    j->bad = !yajl_gen_config(j->g, yajl_gen_beautify, 1) ||
             !yajl_gen_config(j->g, yajl_gen_validate_utf8, 1);
    if (!j->bad)
        json_ok(j, yajl_gen_map_open(j->g));
}

void bm_cli_json_open(bm_cli_json_t *j, const char *key, bool array)
{
    if (json_key(j, key))
        json_ok(j, array ? yajl_gen_array_open(j->g) : yajl_gen_map_open(j->g));
}

void bm_cli_json_close(bm_cli_json_t *j, bool array)
{
    if (!j->bad)
        json_ok(j, array ? yajl_gen_array_close(j->g) : yajl_gen_map_close(j->g));
}

void bm_cli_json_str(bm_cli_json_t *j, const char *key, const char *v)
{
    if (json_key(j, key))
        json_ok(j, v == NULL ? yajl_gen_null(j->g)
                             : yajl_gen_string(j->g, (const unsigned char *)v, strlen(v)));
}

void bm_cli_json_int(bm_cli_json_t *j, const char *key, int64_t v)
{
    if (json_key(j, key))
        json_ok(j, yajl_gen_integer(j->g, (long long)v));
}

void bm_cli_json_bool(bm_cli_json_t *j, const char *key, bool v)
{
    if (json_key(j, key))
        json_ok(j, yajl_gen_bool(j->g, v));
}

void bm_cli_json_time(bm_cli_json_t *j, const char *key, int64_t t)
{
    char when[40];
    bm_cli_fmt_time(t, when, sizeof(when));
    bm_cli_json_str(j, key, t > 0 ? when : NULL);
}

int bm_cli_json_end(bm_cli_json_t *j, const char *cmd)
{
    const unsigned char *buf = NULL;
    size_t len = 0;
    int rc = BM_EXIT_OK;
    if (!j->bad)
        json_ok(j, yajl_gen_map_close(j->g));
    if (!j->bad)
        json_ok(j, yajl_gen_get_buf(j->g, &buf, &len));
    if (j->bad) {
        fprintf(stderr, "busymirror %s: cannot write JSON (a text is not valid UTF-8)\n", cmd);
        rc = BM_EXIT_FAIL;
        goto out;
    }
    if (fwrite(buf, 1, len, stdout) != len || fflush(stdout) != 0) {
        fprintf(stderr, "busymirror %s: cannot write to stdout\n", cmd);
        rc = BM_EXIT_FAIL;
    }
out:
    bm_cli_json_dispose(j);
    return rc;
}

void bm_cli_json_dispose(bm_cli_json_t *j)
{
    if (j->g != NULL)
        yajl_gen_free(j->g);
    j->g = NULL;
}

void bm_cli_print_error(const char *cmd, const char *msg)
{
    char buf[2048];
    fprintf(stderr, "busymirror%s%s: %s\n", cmd != NULL ? " " : "", cmd != NULL ? cmd : "",
            bm_cli_text(msg, buf, sizeof(buf)));
}
