/*
 * The query of the OAuth redirect ("code=...&state=...") as the login listener
 * parses it. parse_query is static, so the module is compiled into the harness
 * (its object is then not taken from the library); core/oauth.c is not changed.
 */
#include "core/oauth.c"

#include "tests/fuzz/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    answer_t a;
    memset(&a, 0, sizeof(a));
    /* data itself, not a NUL-terminated copy: parse_query takes a length */
    (void)parse_query((const char *)data, size, &a);
    if (a.code != NULL)
        (void)strlen(a.code);
    if (a.state != NULL)
        (void)strlen(a.state);
    answer_dispose(&a);
    return 0;
}
