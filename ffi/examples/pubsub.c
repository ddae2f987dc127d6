/* A subscription with a callback: every published message arrives, in order. */
#include <stdio.h>
#include <string.h>
#include <pthread.h>
#include <unistd.h>
#include "shoal.h"

#define CHECK(cond) do { if (!(cond)) { fprintf(stderr, "failed: %s (%s)\n", #cond, shoal_last_error()); return 1; } } while (0)
#define MESSAGES 1000

struct seen {
    pthread_mutex_t lock;
    int count;
    int in_order;
};

/* Runs on a Shoal thread. */
static void on_message(void *user, const char *channel, size_t channel_len,
                       const char *payload, size_t payload_len) {
    struct seen *seen = user;
    char expected[32];
    pthread_mutex_lock(&seen->lock);
    int n = snprintf(expected, sizeof expected, "m%d", seen->count);
    if (channel_len != 4 || memcmp(channel, "news", 4) != 0 ||
        payload_len != (size_t)n || memcmp(payload, expected, (size_t)n) != 0) {
        seen->in_order = 0;
    }
    seen->count++;
    pthread_mutex_unlock(&seen->lock);
}

int main(void) {
    shoal_node *node = shoal_open(NULL, 0);
    CHECK(node != NULL);
    struct seen seen = {PTHREAD_MUTEX_INITIALIZER, 0, 1};
    shoal_subscription *subscription = NULL;
    CHECK(shoal_subscribe(node, SHOAL_CHANNEL, "news", 4, on_message, &seen, &subscription) == SHOAL_OK);
    CHECK(shoal_subscribe(node, SHOAL_CHANNEL, "news", 4, NULL, &seen, &subscription) == SHOAL_ERR_ARGUMENT);
    struct seen by_pattern = {PTHREAD_MUTEX_INITIALIZER, 0, 1};
    shoal_subscription *pattern = NULL;
    CHECK(shoal_subscribe(node, SHOAL_PATTERN, "n[e]w?", 6, on_message, &by_pattern, &pattern) == SHOAL_OK);

    for (int i = 0; i < MESSAGES; i++) {
        char payload[32];
        int n = snprintf(payload, sizeof payload, "m%d", i);
        const char *argv[] = {"PUBLISH", "news", payload};
        size_t argvlen[] = {7, 4, (size_t)n};
        shoal_reply *reply = shoal_exec(node, 3, argv, argvlen);
        CHECK(reply != NULL && reply->type == SHOAL_REPLY_INTEGER && reply->integer == 2);
        shoal_reply_free(reply);
    }
    for (int waited = 0; waited < 500; waited++) {
        pthread_mutex_lock(&seen.lock);
        int count = seen.count;
        pthread_mutex_unlock(&seen.lock);
        pthread_mutex_lock(&by_pattern.lock);
        int count_pattern = by_pattern.count;
        pthread_mutex_unlock(&by_pattern.lock);
        if (count == MESSAGES && count_pattern == MESSAGES) break;
        usleep(10000);
    }
    shoal_unsubscribe(subscription);
    shoal_unsubscribe(pattern);
    CHECK(seen.count == MESSAGES && seen.in_order);
    CHECK(by_pattern.count == MESSAGES && by_pattern.in_order);
    CHECK(shoal_close(node) == SHOAL_OK);
    printf("pubsub: %d messages in order\n", seen.count);
    return 0;
}
