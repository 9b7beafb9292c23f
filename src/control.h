/*
 * The control socket: a Unix stream socket speaking JSON Lines. It frames
 * and parses requests, hands them to a handler, and writes the answers back
 * in request order, reading no more from a connection whose answers pile up.
 */
#ifndef SMSGW_CONTROL_H
#define SMSGW_CONTROL_H

#include <stddef.h>

struct event_base;
struct config;
struct protocol_request;
struct protocol_limits;

struct control;
struct control_slot;	/* one request waiting for its answer */

/*
 * Called once for every well-formed request. The handler owns RQ from then
 * on and answers SLOT with control_reply, at once or later.
 */
typedef void	(*control_request_cb)(void *arg, struct control_slot *,
		    struct protocol_request *rq);

/*
 * Listens on cfg->socket.path, or on LISTEN_FD when it is not -1 (a socket
 * passed by the service manager). Returns NULL with a reason in err.
 */
struct control	*control_new(struct event_base *, const struct config *,
		    const struct protocol_limits *, int listen_fd,
		    control_request_cb, void *arg, char *err, size_t errlen);
/* Stops accepting connections; the open ones go on being served. */
void		 control_stop(struct control *);
void		 control_free(struct control *);

/* Answers SLOT with LINE (newline included); the slot is gone after it. */
void		 control_reply(struct control_slot *, const char *line,
		    size_t len);
/* Applies new limits (line length, connections) to what comes next. */
void		 control_configure(struct control *, const struct config *,
		    const struct protocol_limits *);

#endif
