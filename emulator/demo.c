/* emulator/demo.c: --seed-demo (see README). */
#include "emulator/emulator.h"

int emu_seed_demo(char *err, size_t errlen)
{
    (void)err;
    (void)errlen;
    return BM_OK;
}
