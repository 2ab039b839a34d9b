/* The origin's response: reader callbacks for upstream connections. */
#ifndef SL_RESPONSE_H
#define SL_RESPONSE_H

#include "http1.h"

/* Reader callbacks for upstream connections; the owner is a struct
 * sl_upconn serving a client. They choose the framing towards the client,
 * relay interim responses, queue the head and body on the client's output
 * and pause the reader at the end of the final response. */
extern const struct sl_reader_ops sl_response_reader_ops;

#endif
