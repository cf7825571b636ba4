/* emulator/persist.c: optional SQLite persistence (--db). */
#include "emulator/emulator.h"

int emu_persist_open(const char *path, char *err, size_t errlen)
{
    (void)path;
    return bm_err(err, errlen, BM_EINVAL, "--db not implemented yet");
}
void emu_persist_close(void) {}
int emu_persist_load(char *err, size_t errlen) { (void)err; (void)errlen; return BM_OK; }
void emu_persist_user(const emu_user_t *u) { (void)u; }
void emu_persist_calendar(const emu_calendar_t *cal) { (void)cal; }
void emu_persist_event(const emu_event_t *ev) { (void)ev; }
void emu_persist_token(const emu_token_t *t, const char *kind) { (void)t; (void)kind; }
void emu_persist_token_del(const char *token) { (void)token; }
void emu_persist_user_tokens_del(const emu_user_t *u) { (void)u; }
void emu_persist_channel(const emu_channel_t *ch) { (void)ch; }
void emu_persist_channel_del(const char *id) { (void)id; }
void emu_persist_meta(void) {}
void emu_persist_wipe(void) {}
void emu_persist_begin(void) {}
void emu_persist_commit(void) {}
