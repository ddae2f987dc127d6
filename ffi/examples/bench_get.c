/* GET of one local key through shoal_exec, as fast as it goes: prints ops per second. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "shoal.h"

int main(int argc, char **argv) {
    long ops = argc > 1 ? atol(argv[1]) : 2000000;
    shoal_node *node = shoal_open(NULL, 0);
    if (!node || shoal_set(node, "key:1", 5, "0123456789abcdef", 16) != SHOAL_OK) return 1;
    const char *get[] = {"GET", "key:1"};
    size_t getlen[] = {3, 5};
    struct timespec start, end;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (long i = 0; i < ops; i++) {
        shoal_reply *reply = shoal_exec(node, 2, get, getlen);
        if (!reply || reply->type != SHOAL_REPLY_BULK) return 1;
        shoal_reply_free(reply);
    }
    clock_gettime(CLOCK_MONOTONIC, &end);
    double secs = (end.tv_sec - start.tv_sec) + (end.tv_nsec - start.tv_nsec) / 1e9;
    printf("%.0f\n", ops / secs);
    shoal_close(node);
    return 0;
}
