/* bm_event_parse_json: one event resource as Google sends it. */
#include "tests/fuzz/fuzz.h"

#include "core/event.h"
#include "core/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    bm_event_t ev;
    char err[256];
    memset(&ev, 0, sizeof(ev));
    if (bm_event_parse_json((const char *)data, size, &ev, err, sizeof(err)) == BM_OK) {
        (void)bm_event_is_all_day(&ev);
        bm_event_dispose(&ev);
    }
    return 0;
}
