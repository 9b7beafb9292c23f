/*
 * Logging: levels, a target (stderr, syslog or a file), and helpers that
 * mask phone numbers and escape untrusted text before it reaches a line.
 * Lines read "subsystem event key=value ...".
 */
#ifndef SMSGW_LOG_H
#define SMSGW_LOG_H

#include <stddef.h>

/* The values are syslog priorities. */
enum log_level {
	LOG_LEVEL_CRIT = 2,
	LOG_LEVEL_ERR = 3,
	LOG_LEVEL_WARN = 4,
	LOG_LEVEL_NOTICE = 5,
	LOG_LEVEL_INFO = 6,
	LOG_LEVEL_DEBUG = 7,
};

/* Parses "debug", "info", "notice", "warn", "err", "crit"; -1 otherwise. */
int		 log_level_parse(const char *name);
const char	*log_level_name(enum log_level);

/*
 * Opens the target: "stderr", "syslog" or an absolute file path. On
 * failure returns -1 with a reason in err. Before the first call, lines go
 * to stderr at level info.
 */
int		 log_open(const char *target, enum log_level level,
		    int mask_numbers, char *err, size_t errlen);
/* Reopens a file target (after rotation); a no-op for the others. */
int		 log_reopen(void);
void		 log_close(void);
void		 log_set_level(enum log_level);
int		 log_enabled(enum log_level);

void		 log_msg(enum log_level, const char *fmt, ...)
		    __attribute__((format(printf, 2, 3)));

#define log_crit(...)	log_msg(LOG_LEVEL_CRIT, __VA_ARGS__)
#define log_err(...)	log_msg(LOG_LEVEL_ERR, __VA_ARGS__)
#define log_warn(...)	log_msg(LOG_LEVEL_WARN, __VA_ARGS__)
#define log_notice(...)	log_msg(LOG_LEVEL_NOTICE, __VA_ARGS__)
#define log_info(...)	log_msg(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_debug(...)	log_msg(LOG_LEVEL_DEBUG, __VA_ARGS__)

#define LOG_NUMBER_MAX	32
/*
 * Writes a phone number fit for a log line into buf: masked as
 * "+2782*****67" when masking is on, else as given. Returns buf.
 */
const char	*log_number(const char *number, char *buf, size_t len);

/*
 * Writes untrusted bytes into buf for a log line: printable ASCII as is,
 * everything else (and '"', '\\', '=', space) as \xNN; cut with "..." when
 * buf is too small. Returns buf.
 */
const char	*log_escape(const char *s, size_t n, char *buf, size_t len);

#endif
