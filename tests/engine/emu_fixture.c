/* tests/engine/emu_fixture.c: see emu_fixture.h. */
#include "tests/engine/emu_fixture.h"
#include "core/crypto.h"
#include "core/util.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void cfg_set(emu_fixture_t *fx, const char *section, const char *key, char *value)
{
    char err[256] = "";
    ck_assert_msg(bm_config_set(&fx->cfg, section, key, value, err, sizeof(err)) == 0, "%s", err);
    free(value);
}

static void configure(emu_fixture_t *fx)
{
    bm_config_init(&fx->cfg);
    cfg_set(fx, "store", "path", fmt("%s/bm.db", fx->dir));
    cfg_set(fx, "store", "key_file", fmt("%s/bm.key", fx->dir));
    cfg_set(fx, "google", "client_id", bm_strdup("emu-client-id"));
    cfg_set(fx, "google", "client_secret", bm_strdup("emu-client-secret"));
    cfg_set(fx, "google", "api_base_url", fmt("%s/calendar/v3", fx->emu.base));
    cfg_set(fx, "google", "batch_url", fmt("%s/batch/calendar/v3", fx->emu.base));
    cfg_set(fx, "google", "token_url", fmt("%s/token", fx->emu.base));
}

void emu_fixture_setup(emu_fixture_t *fx, const char *name)
{
    char err[256] = "";
    memset(fx, 0, sizeof(*fx));
    snprintf(fx->dir, sizeof(fx->dir), "/tmp/bm-%s-XXXXXX", name);
    ck_assert_ptr_nonnull(mkdtemp(fx->dir));
    emu_start(&fx->emu, NULL);
    resp_t *r = h_req(&fx->emu, "POST", "/_emulator/users", NULL,
                      "{\"email\":\"" EMU_FIXTURE_USER "\"}", NULL, NULL);
    ck_assert_int_eq(r->status, 200);
    char *refresh = bm_strdup(j_str(r->json, "refresh_token"));
    h_free(r);
    configure(fx);

    unsigned char key[BM_CRYPTO_KEY_LEN], *sealed = NULL;
    size_t sealed_len = 0;
    ck_assert_msg(bm_store_open(fx->cfg.store.path, &fx->st, err, sizeof(err)) == 0, "%s", err);
    ck_assert_int_eq(bm_crypto_key_load(fx->cfg.store.key_file, true, key, err, sizeof(err)), 0);
    ck_assert_int_eq(bm_crypto_seal(key, "account:alice", refresh, strlen(refresh), &sealed,
                                    &sealed_len, err, sizeof(err)),
                     0);
    bm_crypto_wipe(key, sizeof(key));
    ck_assert_int_eq(bm_store_account_add(fx->st, "alice", EMU_FIXTURE_USER, sealed, sealed_len,
                                          &fx->account_id, err, sizeof(err)),
                     0);
    ck_assert_int_eq(bm_store_calendar_upsert(fx->st, fx->account_id, EMU_FIXTURE_USER, "Alice",
                                              "UTC", "owner", true, &fx->cal_id, err, sizeof(err)),
                     0);
    free(sealed);
    free(refresh);

    bm_engine_opts_t o = {.cfg = &fx->cfg};
    ck_assert_msg(bm_engine_new(&o, fx->st, &fx->e, err, sizeof(err)) == 0, "%s", err);
}

void emu_fixture_teardown(emu_fixture_t *fx)
{
    bm_engine_free(fx->e);
    bm_store_close(fx->st);
    bm_config_dispose(&fx->cfg);
    emu_stop(&fx->emu);
    char *cmd = fmt("rm -rf '%s'", fx->dir);
    ck_assert_int_eq(system(cmd), 0);
    free(cmd);
}

void emu_fixture_faults(emu_fixture_t *fx, const char *json)
{
    resp_t *r = h_req(&fx->emu, "POST", "/_emulator/faults", NULL, json, NULL, NULL);
    ck_assert_int_eq(r->status, 200);
    h_free(r);
}
