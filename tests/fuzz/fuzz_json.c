/*
 * The bounded JSON parser (core/json.c) on any bytes: a tree or a message, never a
 * crash, and a tree that can be wiped and freed whatever its shape.
 */
#include "core/json.h"

#include "tests/fuzz/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char perr[128];
    yajl_val root = bm_json_parse((const char *)data, size, perr, sizeof(perr));
    if (root == NULL && perr[0] == '\0')
        abort(); /* a refusal always says why */
    bm_json_wipe(root);
    bm_json_free(root);
    return 0;
}
