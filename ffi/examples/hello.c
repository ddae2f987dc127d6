/* Embedded set/get through the C API: exits 0 only when every check holds. */
#include <stdio.h>
#include <string.h>
#include "shoal.h"

#define CHECK(cond) do { if (!(cond)) { fprintf(stderr, "failed: %s (%s)\n", #cond, shoal_last_error()); return 1; } } while (0)

int main(void) {
    shoal_node *node = shoal_open(NULL, 0);
    CHECK(node != NULL);
    CHECK(shoal_set(node, "greeting", 8, "hello", 5) == SHOAL_OK);

    char *value = NULL;
    size_t len = 0;
    CHECK(shoal_get(node, "greeting", 8, &value, &len) == SHOAL_OK);
    CHECK(len == 5 && memcmp(value, "hello", 5) == 0 && value[5] == '\0');
    shoal_free(value, len);
    CHECK(shoal_get(node, "missing", 7, &value, &len) == SHOAL_NOT_FOUND);

    const char *argv[] = {"RPUSH", "list", "a", "b", "c"};
    size_t argvlen[] = {5, 4, 1, 1, 1};
    shoal_reply *reply = shoal_exec(node, 5, argv, argvlen);
    CHECK(reply != NULL && reply->type == SHOAL_REPLY_INTEGER && reply->integer == 3);
    shoal_reply_free(reply);

    const char *range[] = {"LRANGE", "list", "0", "-1"};
    size_t rangelen[] = {6, 4, 1, 2};
    reply = shoal_exec(node, 4, range, rangelen);
    CHECK(reply != NULL && reply->type == SHOAL_REPLY_ARRAY && reply->elements == 3);
    CHECK(reply->element[2]->type == SHOAL_REPLY_BULK && strcmp(reply->element[2]->str, "c") == 0);
    shoal_reply_free(reply);

    const char *wrong[] = {"INCR", "list"};
    size_t wronglen[] = {4, 4};
    reply = shoal_exec(node, 2, wrong, wronglen);
    CHECK(reply != NULL && reply->type == SHOAL_REPLY_ERROR && strncmp(reply->str, "WRONGTYPE", 9) == 0);
    shoal_reply_free(reply);

    int deleted = 0;
    CHECK(shoal_del(node, "greeting", 8, &deleted) == SHOAL_OK && deleted == 1);

    /* Bad input: errors, never a crash. */
    CHECK(shoal_exec(node, 0, argv, argvlen) == NULL);
    CHECK(shoal_exec(NULL, 1, argv, argvlen) == NULL);
    CHECK(shoal_set(node, NULL, 3, "v", 1) == SHOAL_ERR_ARGUMENT);
    shoal_reply_free(NULL);
    shoal_free(NULL, 0);

    CHECK(shoal_close(node) == SHOAL_OK);
    CHECK(shoal_close(node) == SHOAL_ERR_CLOSED);
    CHECK(shoal_set(node, "k", 1, "v", 1) == SHOAL_ERR_CLOSED);
    printf("hello: shoal %s ok\n", shoal_version());
    return 0;
}
