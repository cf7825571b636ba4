/* bm_config_load on a file holding the input (a memfd, reached by its /proc path). */
#include "tests/fuzz/fuzz.h"

#include "core/config.h"
#include "core/util.h"

#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int fd = -1;
    static char path[64];
    if (fd < 0) {
        fd = memfd_create("fuzz_config", 0);
        if (fd < 0)
            abort();
        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    }
    if (ftruncate(fd, 0) != 0 || pwrite(fd, data, size, 0) != (ssize_t)size)
        abort();
    bm_config_t cfg;
    char err[512];
    bm_config_init(&cfg);
    if (bm_config_load(&cfg, path, err, sizeof(err)) == BM_OK) {
        (void)bm_config_batch_size(&cfg);
        FILE *out = fopen("/dev/null", "w");
        if (out != NULL) {
            bm_config_print(&cfg, out);
            fclose(out);
        }
    }
    bm_config_dispose(&cfg);
    return 0;
}
