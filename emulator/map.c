/* emulator/map.c: open-addressing string hash map (linear probing, backward-shift delete). */
#include "emulator/emulator.h"

#include <stdlib.h>
#include <string.h>

uint64_t emu_hash(const void *p, size_t n)
{
    const unsigned char *s = p;
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= 1099511628211ULL;
    }
    return h ^ (h >> 29);
}

void emu_map_init(emu_map_t *m)
{
    memset(m, 0, sizeof(*m));
}

void emu_map_dispose(emu_map_t *m)
{
    free(m->keys);
    free(m->vals);
    emu_map_init(m);
}

static size_t slot_of(const emu_map_t *m, const char *key)
{
    size_t mask = m->cap - 1;
    size_t i = (size_t)emu_hash(key, strlen(key)) & mask;
    while (m->keys[i] != NULL && strcmp(m->keys[i], key) != 0)
        i = (i + 1) & mask;
    return i;
}

void *emu_map_get(const emu_map_t *m, const char *key)
{
    if (m->cap == 0 || key == NULL)
        return NULL;
    size_t i = slot_of(m, key);
    return m->keys[i] != NULL ? m->vals[i] : NULL;
}

static void rehash(emu_map_t *m, size_t cap)
{
    emu_map_t n;
    n.cap = cap;
    n.n = 0;
    n.keys = bm_calloc(cap, sizeof(*n.keys));
    n.vals = bm_calloc(cap, sizeof(*n.vals));
    for (size_t i = 0; i < m->cap; i++) {
        if (m->keys[i] != NULL) {
            size_t j = slot_of(&n, m->keys[i]);
            n.keys[j] = m->keys[i];
            n.vals[j] = m->vals[i];
            n.n++;
        }
    }
    free(m->keys);
    free(m->vals);
    *m = n;
}

void emu_map_put(emu_map_t *m, const char *key, void *val)
{
    if ((m->n + 1) * 4 >= m->cap * 3)
        rehash(m, m->cap ? m->cap * 2 : 16);
    size_t i = slot_of(m, key);
    if (m->keys[i] == NULL)
        m->n++;
    m->keys[i] = key;
    m->vals[i] = val;
}

void *emu_map_del(emu_map_t *m, const char *key)
{
    if (m->cap == 0)
        return NULL;
    size_t mask = m->cap - 1;
    size_t i = slot_of(m, key);
    if (m->keys[i] == NULL)
        return NULL;
    void *val = m->vals[i];
    m->keys[i] = NULL;
    m->vals[i] = NULL;
    m->n--;
    /* backward-shift the following cluster so lookups never stop early */
    size_t j = (i + 1) & mask;
    while (m->keys[j] != NULL) {
        const char *k = m->keys[j];
        void *v = m->vals[j];
        m->keys[j] = NULL;
        m->vals[j] = NULL;
        size_t t = slot_of(m, k);
        m->keys[t] = k;
        m->vals[t] = v;
        j = (j + 1) & mask;
    }
    return val;
}
