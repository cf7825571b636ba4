/*
 * tests/engine/emu_fixture.h: what the engine's emulator tests start from: the
 * real gcal-emulator on loopback with user EMU_FIXTURE_USER, a config pointing
 * at it, a store and key file in a temporary folder, account "alice" (its
 * refresh token sealed under that key), the user's primary calendar in the
 * store (not enabled), and an engine. Everything is the fixture's, released by
 * emu_fixture_teardown; failures abort the test.
 */
#ifndef BM_TESTS_ENGINE_EMU_FIXTURE_H
#define BM_TESTS_ENGINE_EMU_FIXTURE_H

#include "core/config.h"
#include "core/store.h"
#include "engine/engine.h"
#include "tests/emulator/harness.h"

#define EMU_FIXTURE_USER "alice@example.com"

typedef struct emu_fixture {
    emu_proc_t emu;
    char dir[128];
    bm_config_t cfg;
    bm_store_t *st;
    bm_engine_t *e;
    int64_t account_id;
    int64_t cal_id; /* the user's primary calendar */
} emu_fixture_t;

/* name goes into the temporary folder's name. */
void emu_fixture_setup(emu_fixture_t *fx, const char *name);
void emu_fixture_teardown(emu_fixture_t *fx);
/* POST /_emulator/faults with json ("{}" clears). */
void emu_fixture_faults(emu_fixture_t *fx, const char *json);

#endif
