/*
 * The configuration: one libconfig file checked against one table of keys
 * (type, bounds, default). Every problem is reported as FILE:LINE: text.
 */
#ifndef SMSGW_CONFIG_H
#define SMSGW_CONFIG_H

#include <stdint.h>

struct config {
	char	*file;			/* the file it was loaded from */

	struct {
		char	*path;
		int	 mode;		/* parsed from an octal string */
		char	*group;		/* "" keeps the daemon's group */
		int	 max_line;
		int	 max_connections;
		int	 max_pending;	/* unanswered requests before backpressure */
	} socket;

	struct {
		char	*path;
		int	 retention;	/* seconds finished messages are kept */
		int	 max_queued;
	} storage;

	struct {
		char	*url;
		char	*username;
		char	*password;	/* from password or password_file */
		char	*password_file;
		char	*sender;
		char	*ca_file;
		int	 max_concurrency;
		int	 timeout;		/* seconds, whole request */
		int	 connect_timeout;	/* seconds */
		int	 resend_ambiguous;	/* boolean */
		int	 shutdown_timeout;	/* seconds in-flight may take */
	} upstream;

	struct {
		int	 max_attempts;
		int	 base_ms;
		int	 cap_ms;
		int	 validity;	/* default valid_for, seconds */
		int	 max_validity;	/* largest valid_for a client may ask */
	} retry;

	struct {
		int	 max_parts;
	} message;

	struct {
		char	*level;
		char	*target;	/* "stderr", "syslog" or a file path */
		int	 stats_interval;	/* seconds, 0 turns it off */
		int	 mask_numbers;	/* boolean */
	} log;
};

/*
 * Loads and checks FILE. On success returns a new configuration. On failure
 * returns NULL and sets *problems to a malloc'd text of one line per problem,
 * each "FILE:LINE: what is wrong\n" (the caller frees it).
 */
struct config	*config_load(const char *file, char **problems);

/* A configuration holding every default, as if loaded from an empty file. */
struct config	*config_defaults(void);

void		 config_free(struct config *);

#endif
