/* Two nodes in one program, the second replicating the first over QUIC: a write on the
 * primary reaches the replica. Usage: replica <primary port> <replica port>. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "shoal.h"

#define CHECK(cond) do { if (!(cond)) { fprintf(stderr, "failed: %s (%s)\n", #cond, shoal_last_error()); return 1; } } while (0)

int main(int argc, char **argv) {
    CHECK(argc == 3);
    int primary_port = atoi(argv[1]), replica_port = atoi(argv[2]);
    char config[128];
    int n = snprintf(config, sizeof config, "port %d\nbind 127.0.0.1\n", primary_port);
    shoal_node *primary = shoal_open(config, (size_t)n);
    CHECK(primary != NULL);
    /* The same kind of configuration as name/value pairs. */
    char port[16];
    snprintf(port, sizeof port, "%d", replica_port);
    const char *names[] = {"port", "bind"};
    const char *values[] = {port, "127.0.0.1"};
    shoal_node *replica = shoal_open_pairs(names, values, 2);
    CHECK(replica != NULL);
    const char *bad_values[] = {"not a port", "127.0.0.1"};
    CHECK(shoal_open_pairs(names, bad_values, 2) == NULL);
    CHECK(shoal_open_pairs(NULL, values, 2) == NULL);

    char bus[64];
    snprintf(bus, sizeof bus, "127.0.0.1:%d", primary_port + 10000);
    CHECK(shoal_replicate_from(replica, bus) == SHOAL_OK);
    CHECK(shoal_replicate_from(replica, "not an address") == SHOAL_ERR_ARGUMENT);
    CHECK(shoal_set(primary, "k", 1, "replicated", 10) == SHOAL_OK);

    int found = 0;
    for (int waited = 0; waited < 1000 && !found; waited++) {
        char *value = NULL;
        size_t len = 0;
        if (shoal_get(replica, "k", 1, &value, &len) == SHOAL_OK) {
            found = len == 10 && memcmp(value, "replicated", 10) == 0;
            shoal_free(value, len);
        }
        if (!found) usleep(10000);
    }
    CHECK(found);
    const char *role[] = {"ROLE"};
    size_t rolelen[] = {4};
    shoal_reply *reply = shoal_exec(replica, 1, role, rolelen);
    CHECK(reply != NULL && reply->type == SHOAL_REPLY_ARRAY && strcmp(reply->element[0]->str, "slave") == 0);
    shoal_reply_free(reply);
    CHECK(shoal_promote(replica) == SHOAL_OK);
    CHECK(shoal_close(replica) == SHOAL_OK);
    CHECK(shoal_close(primary) == SHOAL_OK);
    printf("replica: the write arrived over QUIC\n");
    return 0;
}
