/* bm_gcal_error_parse: Google's (or the OAuth server's) JSON error body. */
#include "tests/fuzz/fuzz.h"

#include "core/gcal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *body = fuzz_cstr(data, size);
    char reason[64], message[256];
    bm_gcal_error_parse(body, reason, sizeof(reason), message, sizeof(message));
    /* a tiny buffer too: truncation must stay in bounds */
    bm_gcal_error_parse(body, reason, 2, message, 1);
    free(body);
    return 0;
}
