/*
 * The Panacea Mobile client, pure functions: the request URLs, and the
 * lenient parse of every answer into one outcome (the classification table
 * of the architecture, in one place).
 */
#ifndef SMSGW_PANACEA_H
#define SMSGW_PANACEA_H

#include <stddef.h>
#include <stdint.h>

enum panacea_outcome {
	PANACEA_SENT,		/* accepted; upstream id known */
	PANACEA_THROTTLED,	/* too many simultaneous requests */
	PANACEA_RETRY,		/* try again after backoff */
	PANACEA_FAILED,		/* this message is wrong */
	PANACEA_HOLD		/* the account or configuration is wrong */
};

struct panacea_result {
	enum panacea_outcome	 outcome;
	int			 has_code;	/* the envelope had a status */
	int			 code;
	char			 reason[48];	/* kebab-case, e.g. out-of-credit */
	char			 upstream_id[65];	/* for sent */
	int			 attempt_cap;	/* >0: retry at most this often */
	int			 has_balance;	/* user_get_balance answers */
	double			 balance;
};

struct panacea_account {
	const char	*url;		/* base, e.g. https://.../json */
	const char	*username;
	const char	*password;
};

const char	*panacea_outcome_name(enum panacea_outcome);

/*
 * Builds the message_send URL: every value escaped, TO sent as digits
 * without "+", auto_detect_encoding=1, SENDER omitted when empty,
 * report_mask and report_url added when REPORT_URL is not NULL. Returns a
 * malloc'd string, or NULL when out of memory.
 */
char		*panacea_send_url(const struct panacea_account *,
		    const char *to, const char *text, size_t text_len,
		    const char *sender, const char *report_url, int report_mask);
/* The user_get_balance URL, malloc'd. */
char		*panacea_balance_url(const struct panacea_account *);
/* A copy of URL with the password's value replaced by "***", malloc'd. */
char		*panacea_redact_url(const char *url);

/* Classifies a message_send answer (HTTP status and body) into R. */
void		 panacea_classify_send(long http_status, const char *body,
		    size_t len, struct panacea_result *r);
/*
 * Classifies a request that ended without an HTTP answer (connection
 * refused, reset, timeout): always retry, with REASON copied into R.
 */
void		 panacea_classify_transport(const char *reason,
		    struct panacea_result *r);
/*
 * Classifies a user_get_balance answer: sent (with the balance) on status
 * 0, otherwise as panacea_classify_send would.
 */
void		 panacea_classify_balance(long http_status, const char *body,
		    size_t len, struct panacea_result *r);

/*
 * Parses a Retry-After value (delay seconds or an HTTP date) into ms from
 * NOW (ms since the epoch), at least 0. Returns -1 when it cannot be read.
 */
int64_t		 panacea_retry_after(const char *value, int64_t now);

#endif
