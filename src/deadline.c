#include "deadline.h"

static void add(struct sl_deadline *d, int64_t ms, int64_t at)
{
    struct timeval tv = {.tv_sec = (time_t)(ms / 1000), .tv_usec = (suseconds_t)(ms % 1000) * 1000};
    event_add(&d->ev, &tv);
    d->armed_ms = at;
}

void sl_deadline_init(struct sl_deadline *d, struct event_base *base,
                      event_callback_fn cb, void *arg)
{
    evtimer_assign(&d->ev, base, cb, arg);
    d->due_ms = 0;
    d->armed_ms = 0;
}

void sl_deadline_set(struct sl_deadline *d, int64_t now_ms, int ms)
{
    int64_t at = now_ms + ms;
    d->due_ms = at;
    if (d->armed_ms != 0 && d->armed_ms <= at)
        return;
    add(d, ms, at);
}

bool sl_deadline_expired(struct sl_deadline *d, int64_t now_ms)
{
    d->armed_ms = 0;
    if (now_ms < d->due_ms) {
        add(d, d->due_ms - now_ms, d->due_ms);
        return false;
    }
    return true;
}

void sl_deadline_cancel(struct sl_deadline *d)
{
    event_del(&d->ev);
    d->armed_ms = 0;
}
