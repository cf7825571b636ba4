/*
 * tests/core/wipe_probe.h: what bm_wipe_free let go of while the probe is hooked
 * in (bm__wipe_free_hook = wipe_probe_on_release): how many blocks, how many
 * bytes, and how many of them were not all zero. For the test files that check
 * secrets are wiped (test_util.c, test_json.c, test_gcal.c).
 */
#ifndef BM_TESTS_WIPE_PROBE_H
#define BM_TESTS_WIPE_PROBE_H

#include <stddef.h>

static struct {
    int blocks;
    size_t bytes;
    int dirty;
} released;

static void wipe_probe_on_release(const void *p, size_t n)
{
    const unsigned char *c = p;
    released.blocks++;
    released.bytes += n;
    for (size_t i = 0; i < n; i++)
        if (c[i] != 0) {
            released.dirty++;
            break;
        }
}

#endif
