/*
 * The configuration: one libconfig file checked against one table of keys
 * (type, bounds, default). Every problem is reported as FILE:LINE: text.
 */
#ifndef SMSGW_CONFIG_H
#define SMSGW_CONFIG_H

#include <stdint.h>

struct config {
	char	*file;			/* the file it was loaded from */
	char	*user;			/* "" keeps the user started as */
	int	 shutdown_timeout;	/* seconds in-flight may take */

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
		int	 balance_interval;	/* seconds, 0 turns it off */
		int	 low_balance;		/* warn below this; 0 off */
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
		char	*listen;	/* started with public_url or inbound */
		char	*public_url;	/* "" sends no report_url */
		char	*token;		/* signs report tokens */
		char	*inbound_token;	/* "" refuses inbound messages */
		int	 mask;
	} dlr;

	struct {
		char	*listen;	/* "" turns the endpoint off */
		int	 allow_remote;	/* boolean */
	} metrics;

	struct {
		char	*level;
		char	*target;	/* "stderr", "syslog" or a file path */
		int	 stats_interval;	/* seconds, 0 turns it off */
		int	 queue_age_warn;	/* seconds, 0 turns it off */
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

/*
 * Calls CB once for every key whose value differs between OLD and NEW, in
 * the table's order, with the key's name ("upstream.password") and whether
 * a reload applies it (1) or only a restart does (0). Values are never
 * passed, so that secrets stay out of whatever CB writes.
 */
void		 config_diff(const struct config *old, const struct config *new,
		    void (*cb)(void *arg, const char *key, int reloadable),
		    void *arg);

/*
 * Gives TO the values FROM has for every key that only a restart applies,
 * so that a reloaded configuration describes the running daemon. -1 when
 * out of memory (TO is then partly updated but consistent).
 */
int		 config_keep_fixed(struct config *to, const struct config *from);

/* 1 when a reload applies KEY, 0 when it needs a restart, -1 unknown. */
int		 config_key_reloadable(const char *key);

#endif
