/*
 * The metrics endpoint: a writer of the Prometheus text format (0.0.4) and
 * an evhttp listener that serves the page it writes at GET /metrics.
 */
#ifndef SMSGW_METRICS_H
#define SMSGW_METRICS_H

#include <stddef.h>
#include <stdint.h>

struct event_base;
struct metrics;
struct metrics_page;

/* One label; an array of them ends with { NULL, NULL }. */
struct metrics_label {
	const char	*key;
	const char	*value;
};

/*
 * A histogram with fixed upper bounds. COUNTS has NBOUNDS + 1 slots, per
 * bucket and not cumulative; the last is for values above every bound.
 * BOUNDS must increase strictly. Zero-initialise COUNTS, SUM and COUNT.
 */
struct metrics_histogram {
	const double	*bounds;
	size_t		 nbounds;
	uint64_t	*counts;
	double		 sum;
	uint64_t	 count;
};

/*
 * The page. A call that is given a bad name, a sample outside its family
 * or that runs out of memory records the first such error and makes every
 * later call a no-op; metrics_page_error() says what went wrong.
 */
struct metrics_page	*metrics_page_new(void);
void			 metrics_page_free(struct metrics_page *);
/* Empties the page and forgets its families and error. */
void			 metrics_page_reset(struct metrics_page *);
/* The text so far, NUL-terminated; its length in *LEN unless NULL. */
const char		*metrics_page_text(const struct metrics_page *,
			    size_t *len);
/* NULL while the page is well-formed, else the first error. */
const char		*metrics_page_error(const struct metrics_page *);

/*
 * Starts family NAME of TYPE ("counter", "gauge" or "histogram") with its
 * # HELP and # TYPE lines. A counter's name must end in "_total"; a name
 * may be used once per page.
 */
void	metrics_family(struct metrics_page *, const char *name,
	    const char *type, const char *help);
/* A sample of the current family (a counter or a gauge); LABELS or NULL. */
void	metrics_sample(struct metrics_page *, const char *name,
	    const struct metrics_label *labels, double value);
/* A family of one sample without labels: the two calls above in one. */
void	metrics_single(struct metrics_page *, const char *name,
	    const char *type, const char *help, double value);
/*
 * A series of the current family (a histogram called NAME): its cumulative
 * NAME_bucket{le="..."} lines up to le="+Inf", then NAME_sum and
 * NAME_count. LABELS (or NULL) must not hold "le".
 */
void	metrics_histogram_write(struct metrics_page *, const char *name,
	    const struct metrics_label *labels,
	    const struct metrics_histogram *);

/* Counts VALUE into its bucket; NaN is ignored, as it would poison sum. */
void	metrics_histogram_observe(struct metrics_histogram *, double value);

/*
 * Writes VALUE as the format spells it: integral values as integers,
 * others in the fewest digits that read back as the same double, and
 * "+Inf", "-Inf", "NaN". BUF needs METRICS_VALUE_MAX bytes.
 */
#define METRICS_VALUE_MAX	32
const char	*metrics_format_value(double value, char *buf, size_t len);

/*
 * 1 when ADDR ("127.0.0.1:9101", "[::1]:9101") is a loopback address,
 * 0 when it is another valid address, -1 when it is malformed (a host
 * name, no port, a port out of range).
 */
int	metrics_listen_is_loopback(const char *addr);

/*
 * Serves GET /metrics on LISTEN with the page FILL writes into on every
 * request (FILL must not free the metrics). Port 0 picks a free port.
 * Refuses an address other than loopback unless ALLOW_REMOTE is set.
 * Returns NULL with a reason in err.
 */
struct metrics	*metrics_new(struct event_base *, const char *listen,
		    int allow_remote,
		    void (*fill)(void *arg, struct metrics_page *), void *arg,
		    char *err, size_t errlen);
/* The port bound, useful after asking for port 0. */
int		 metrics_port(const struct metrics *);
void		 metrics_free(struct metrics *);

#endif
