/*
 * The suite's driver for a fuzz harness, without libFuzzer: replays every file of
 * the corpus directories given, then FUZZ_MUTATIONS (default 2000) variants of them
 * made with a fixed seed (FUZZ_SEED, default 1), so a run is reproducible. Runs
 * under the suite's ASan+UBSan; a finding aborts. With a file argument instead of
 * a directory it replays just that file (a crash reproducer).
 *
 *   fuzz_event_replay tests/fuzz/corpus/event
 */
#include "tests/fuzz/fuzz.h"

#include <dirent.h>
#include <stdio.h>
#include <sys/stat.h>

typedef struct {
    uint8_t *data;
    size_t len;
} input_t;

static input_t *inputs;
static size_t n_inputs;
static uint64_t rng_state;

static uint64_t rnd(void)
{
    uint64_t x = rng_state; /* xorshift64* */
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    rng_state = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static size_t below(size_t n)
{
    return n == 0 ? 0 : (size_t)(rnd() % n);
}

static void add_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        perror(path);
        exit(2);
    }
    input_t in = {NULL, 0};
    size_t cap = 0;
    int c;
    while ((c = getc(f)) != EOF) {
        if (in.len == cap) {
            cap = cap ? cap * 2 : 256;
            in.data = realloc(in.data, cap);
            if (in.data == NULL)
                abort();
        }
        in.data[in.len++] = (uint8_t)c;
    }
    fclose(f);
    inputs = realloc(inputs, (n_inputs + 1) * sizeof(*inputs));
    if (inputs == NULL)
        abort();
    inputs[n_inputs++] = in;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void add_path(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        perror(path);
        exit(2);
    }
    if (!S_ISDIR(st.st_mode)) {
        add_file(path);
        return;
    }
    DIR *d = opendir(path);
    if (d == NULL) {
        perror(path);
        exit(2);
    }
    char **names = NULL;
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        names = realloc(names, (n + 1) * sizeof(*names));
        size_t l = strlen(path) + strlen(e->d_name) + 2;
        names[n] = malloc(l);
        if (names == NULL || names[n] == NULL)
            abort();
        snprintf(names[n], l, "%s/%s", path, e->d_name);
        n++;
    }
    closedir(d);
    qsort(names, n, sizeof(*names), by_name); /* readdir order is not stable */
    for (size_t i = 0; i < n; i++) {
        add_file(names[i]);
        free(names[i]);
    }
    free(names);
}

static const char *const tokens[] = {
    "\"",
    "\\",
    "\\u0000",
    "\\ud800",
    "{",
    "}",
    "[",
    "]",
    ":",
    ",",
    "null",
    "true",
    "-1",
    "1e999",
    "99999999999999999999",
    "\r\n",
    "\r\n\r\n",
    "--",
    "=",
    "&",
    "%",
    "%00",
    "%zz",
    "+",
    "[",
    "]",
    ";",
    "#",
    "\n",
    "\0",
    "\xff",
    "\xc3\xa9",
    "boundary=",
    "Content-ID: ",
    "HTTP/1.1 200 OK\r\n",
    "response-item-",
    "dateTime",
    "date",
    "T",
    "Z",
    "+25:00",
};

/* One variant of a random input into buf (returns its length). */
static size_t mutate(uint8_t *buf, size_t cap)
{
    const input_t *in = &inputs[below(n_inputs)];
    size_t len = in->len < cap ? in->len : cap;
    memcpy(buf, in->data, len);
    int rounds = 1 + (int)below(8);
    for (int r = 0; r < rounds; r++) {
        switch (below(7)) {
        case 0: /* flip a bit */
            if (len)
                buf[below(len)] ^= (uint8_t)(1u << below(8));
            break;
        case 1: /* a random byte */
            if (len)
                buf[below(len)] = (uint8_t)rnd();
            break;
        case 2: { /* delete a run */
            if (!len)
                break;
            size_t at = below(len), n = 1 + below(len - at < 16 ? len - at : 16);
            memmove(buf + at, buf + at + n, len - at - n);
            len -= n;
            break;
        }
        case 3: { /* insert a token */
            const char *t = tokens[below(sizeof(tokens) / sizeof(tokens[0]))];
            size_t tl = strlen(t) ? strlen(t) : 1, at = below(len + 1);
            if (len + tl > cap)
                break;
            memmove(buf + at + tl, buf + at, len - at);
            memcpy(buf + at, t, tl);
            len += tl;
            break;
        }
        case 4: { /* duplicate a run */
            if (!len)
                break;
            size_t at = below(len), n = 1 + below(len - at < 64 ? len - at : 64),
                   to = below(len + 1);
            if (len + n > cap)
                break;
            uint8_t tmp[64];
            memcpy(tmp, buf + at, n);
            memmove(buf + to + n, buf + to, len - to);
            memcpy(buf + to, tmp, n);
            len += n;
            break;
        }
        case 5: /* truncate */
            len = below(len + 1);
            break;
        default: { /* splice the tail of another input */
            const input_t *o = &inputs[below(n_inputs)];
            size_t at = below(len + 1), from = below(o->len + 1), n = o->len - from;
            if (at + n > cap)
                n = cap - at;
            memcpy(buf + at, o->data + from, n);
            len = at + n;
            break;
        }
        }
    }
    return len;
}

static void run(const uint8_t *data, size_t len)
{
    /* an exact-size copy, so ASan sees any read past the end */
    uint8_t *copy = malloc(len ? len : 1);
    if (copy == NULL)
        abort();
    if (len)
        memcpy(copy, data, len);
    LLVMFuzzerTestOneInput(copy, len);
    free(copy);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s CORPUS_DIR_OR_FILE...\n", argv[0]);
        return 2;
    }
    int only_files = 1;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode))
            only_files = 0;
        add_path(argv[i]);
    }
    if (n_inputs == 0) {
        fprintf(stderr, "%s: empty corpus\n", argv[0]);
        return 2;
    }
    for (size_t i = 0; i < n_inputs; i++)
        run(inputs[i].data, inputs[i].len);
    const char *m = getenv("FUZZ_MUTATIONS"), *s = getenv("FUZZ_SEED");
    long n_mut = only_files ? 0 : (m != NULL ? atol(m) : 2000);
    rng_state = s != NULL ? strtoull(s, NULL, 10) : 1;
    if (rng_state == 0)
        rng_state = 1;
    size_t cap = 1 << 16;
    uint8_t *buf = malloc(cap);
    if (buf == NULL)
        abort();
    for (long i = 0; i < n_mut; i++)
        run(buf, mutate(buf, cap));
    free(buf);
    for (size_t i = 0; i < n_inputs; i++)
        free(inputs[i].data);
    free(inputs);
    printf("%zu inputs replayed, %ld variants\n", n_inputs, n_mut);
    return 0;
}
