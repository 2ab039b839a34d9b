/* Lazy deadlines: one timer per connection whose due time moves on every
 * request. Moving a deadline later does not touch libevent's timer heap;
 * the timer fires at its old time, sees the deadline has moved and re-arms
 * itself for the remainder. Client and upstream connections share this. */
#ifndef SL_DEADLINE_H
#define SL_DEADLINE_H

#include <stdbool.h>
#include <stdint.h>

#include <event2/event.h>
#include <event2/event_struct.h>

struct sl_deadline {
    struct event ev;
    int64_t due_ms;     /* when the condition the timer watches is due */
    int64_t armed_ms;   /* when the pending timer fires; 0 if none */
};

/* Prepares d on base; cb(fd, what, arg) runs when the timer fires and must
 * first ask sl_deadline_expired whether the deadline really passed. */
void sl_deadline_init(struct sl_deadline *d, struct event_base *base,
                      event_callback_fn cb, void *arg);

/* Makes the deadline ms after now_ms; adds the timer only when none is
 * pending or the pending one would fire too late. */
void sl_deadline_set(struct sl_deadline *d, int64_t now_ms, int ms);

/* Called first in the timer's callback: false (and the timer re-armed for
 * the rest) when the deadline moved later since the timer was added, true
 * when it is really due. */
bool sl_deadline_expired(struct sl_deadline *d, int64_t now_ms);

/* Removes the pending timer. */
void sl_deadline_cancel(struct sl_deadline *d);

#endif
