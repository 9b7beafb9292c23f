/*
 * The configuration: one table of keys (type, bounds, default) drives the
 * defaults, the checks of a libconfig file and the filling of struct config.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libconfig.h>

#include "config.h"
#include "log.h"
#include "message.h"

#define CONFIG_SECRET_MAX	4096
#define CONFIG_CREDENTIAL	"upstream-password"

enum config_type {
	CONFIG_STRING,
	CONFIG_INT,
	CONFIG_BOOL,
	CONFIG_MODE	/* an octal string such as "0660", kept as an int */
};

struct config_key {
	const char	*name;
	enum config_type type;
	size_t		 offset;
	/* Ints and modes: the value; strings: the length (min 0 or 1). */
	long long	 min;
	long long	 max;
	long long	 def;	/* ints and booleans */
	const char	*sdef;	/* strings and modes */
	/* Why a string value is wrong, or NULL when it is right. */
	const char	*(*check)(const char *);
	/* Whether a reload (SIGHUP) applies it, or only a restart. */
	int		 reload;
};

struct config_problem {
	char		*file;	/* a copy: libconfig's goes with it */
	unsigned int	 line;	/* 0: about the file as a whole */
	size_t		 seq;
	char		*text;
};

struct config_loader {
	const char		 *file;
	struct config		 *cfg;
	/* Per key: where the file sets it, and whether it had a problem. */
	const config_setting_t	**given;
	int			 *bad;
	struct config_problem	 *problems;
	size_t			  nproblems;
	int			  oom;
};

static const char	*config_check_url(const char *);
static const char	*config_check_sender(const char *);
static const char	*config_check_level(const char *);
static const char	*config_check_target(const char *);
static const char	*config_check_mode(const char *);
static const char	*config_check_user(const char *);
static const char	*config_check_report_url(const char *);
static const char	*config_check_address(const char *);

/* The last argument: RELOAD when SIGHUP applies the key, RESTART if not. */
#define RELOAD	1
#define RESTART	0
#define STR(n, f, lo, hi, d, c, r)					\
	{ n, CONFIG_STRING, offsetof(struct config, f), lo, hi, 0, d, c, r }
#define INT(n, f, lo, hi, d, r)						\
	{ n, CONFIG_INT, offsetof(struct config, f), lo, hi, d, NULL, NULL, \
	    r }
#define BOOL(n, f, d, r)						\
	{ n, CONFIG_BOOL, offsetof(struct config, f), 0, 1, d, NULL, NULL, r }
#define MODE(n, f, d, r)						\
	{ n, CONFIG_MODE, offsetof(struct config, f), 0, 0777, 0, d,	\
	    config_check_mode, r }

/* Keys without a dot are top-level settings; the others live in groups. */
static const struct config_key config_keys[] = {
	STR("user", user, 0, 255, "", config_check_user, RESTART),
	INT("shutdown_timeout", shutdown_timeout, 0, 600, 10, RELOAD),

	STR("socket.path", socket.path, 1, 107, "/run/smsgwd/smsgwd.sock",
	    NULL, RESTART),
	MODE("socket.mode", socket.mode, "0660", RESTART),
	STR("socket.group", socket.group, 0, 255, "", NULL, RESTART),
	INT("socket.max_line", socket.max_line, 256, 16777216, 65536, RELOAD),
	INT("socket.max_connections", socket.max_connections, 1, 1000000,
	    1024, RELOAD),
	INT("socket.max_pending", socket.max_pending, 1, 1000000, 1024,
	    RELOAD),

	STR("storage.path", storage.path, 1, PATH_MAX - 1,
	    "/var/lib/smsgwd/queue.db", NULL, RESTART),
	INT("storage.retention", storage.retention, 60, 315360000, 604800,
	    RELOAD),
	INT("storage.max_queued", storage.max_queued, 1, 100000000, 1000000,
	    RELOAD),

	STR("upstream.url", upstream.url, 1, 2048,
	    "https://api.panaceamobile.com/json", config_check_url, RELOAD),
	STR("upstream.username", upstream.username, 0, 256, "", NULL, RELOAD),
	STR("upstream.password", upstream.password, 0, CONFIG_SECRET_MAX, "",
	    NULL, RELOAD),
	STR("upstream.password_file", upstream.password_file, 0,
	    PATH_MAX - 1, "", NULL, RELOAD),
	STR("upstream.sender", upstream.sender, 0, 17, "",
	    config_check_sender, RELOAD),
	STR("upstream.ca_file", upstream.ca_file, 0, PATH_MAX - 1, "", NULL,
	    RELOAD),
	INT("upstream.max_concurrency", upstream.max_concurrency, 1, 1000, 32,
	    RELOAD),
	INT("upstream.timeout", upstream.timeout, 1, 600, 30, RELOAD),
	INT("upstream.connect_timeout", upstream.connect_timeout, 1, 600, 10,
	    RELOAD),
	BOOL("upstream.resend_ambiguous", upstream.resend_ambiguous, 1,
	    RELOAD),
	INT("upstream.balance_interval", upstream.balance_interval, 0, 86400,
	    300, RELOAD),
	INT("upstream.low_balance", upstream.low_balance, 0, 1000000000, 0,
	    RELOAD),

	INT("retry.max_attempts", retry.max_attempts, 1, 1000, 10, RELOAD),
	INT("retry.base_ms", retry.base_ms, 1, 3600000, 1000, RELOAD),
	INT("retry.cap_ms", retry.cap_ms, 1, 86400000, 600000, RELOAD),
	INT("retry.validity", retry.validity, 1, 31536000, 86400, RELOAD),
	INT("retry.max_validity", retry.max_validity, 1, 31536000, 604800,
	    RELOAD),

	INT("message.max_parts", message.max_parts, 1, 255, 8, RELOAD),

	STR("dlr.listen", dlr.listen, 1, 64, "127.0.0.1:8025",
	    config_check_address, RESTART),
	STR("dlr.public_url", dlr.public_url, 0, 1024, "",
	    config_check_report_url, RELOAD),
	STR("dlr.token", dlr.token, 0, CONFIG_SECRET_MAX, "", NULL, RELOAD),
	STR("dlr.inbound_token", dlr.inbound_token, 0, CONFIG_SECRET_MAX, "",
	    NULL, RELOAD),
	INT("dlr.mask", dlr.mask, 1, 31, 19, RELOAD),

	STR("metrics.listen", metrics.listen, 0, 64, "",
	    config_check_address, RESTART),
	BOOL("metrics.allow_remote", metrics.allow_remote, 0, RESTART),

	STR("log.level", log.level, 1, 16, "info", config_check_level,
	    RELOAD),
	STR("log.target", log.target, 1, PATH_MAX - 1, "stderr",
	    config_check_target, RELOAD),
	INT("log.stats_interval", log.stats_interval, 0, 86400, 60, RELOAD),
	INT("log.queue_age_warn", log.queue_age_warn, 0, 31536000, 600,
	    RELOAD),
	BOOL("log.mask_numbers", log.mask_numbers, 1, RELOAD),
};

#undef STR
#undef INT
#undef BOOL
#undef MODE
#undef RELOAD
#undef RESTART

#define CONFIG_NKEYS	(sizeof(config_keys) / sizeof(config_keys[0]))

/* A delivery report URL: the upstream replaces every %d in it. */
static const char *
config_check_report_url(const char *v)
{
	if (v[0] == '\0')
		return NULL;
	if (strstr(v, "%d") != NULL || strstr(v, "%D") != NULL)
		return "must not contain %d: the upstream replaces it";
	return config_check_url(v);
}

/* "host:port" with a numeric IPv4 host, or "[v6]:port". */
static const char *
config_check_address(const char *v)
{
	const char *colon = strrchr(v, ':');
	char *end;
	long port;

	if (v[0] == '\0')
		return NULL;
	if (colon == NULL || colon == v)
		return "is not host:port, such as 127.0.0.1:8025";
	port = strtol(colon + 1, &end, 10);
	if (*end != '\0' || colon[1] == '\0' || port < 0 || port > 65535)
		return "has no port from 0 to 65535";
	if (v[0] == '[' && colon[-1] != ']')
		return "is not host:port, such as [::1]:8025";
	return NULL;
}

static const char *
config_check_url(const char *v)
{
	if ((strncmp(v, "http://", 7) == 0 && v[7] != '\0') ||
	    (strncmp(v, "https://", 8) == 0 && v[8] != '\0'))
		return NULL;
	return "does not start with http:// or https://";
}

/* Empty is the upstream account's default sender. */
static const char *
config_check_sender(const char *v)
{
	if (v[0] == '\0' || message_sender_check(v, strlen(v)) == 0)
		return NULL;
	return "is not a sender: 1 to 11 letters and digits, or 1 to 16 "
	    "digits with an optional leading +";
}

static const char *
config_check_level(const char *v)
{
	if (log_level_parse(v) != -1)
		return NULL;
	return "is not one of debug, info, notice, warn, err, crit";
}

static const char *
config_check_target(const char *v)
{
	if (strcmp(v, "stderr") == 0 || strcmp(v, "syslog") == 0 ||
	    v[0] == '/')
		return NULL;
	return "is not stderr, syslog or an absolute path";
}

/* Parses an octal mode from 0 to 0777; -1 when it is not one. */
static int
config_mode_parse(const char *v)
{
	long mode = 0;
	size_t i;

	if (v[0] == '\0' || strlen(v) > 4)
		return -1;
	for (i = 0; v[i] != '\0'; i++) {
		if (v[i] < '0' || v[i] > '7')
			return -1;
		mode = mode * 8 + (v[i] - '0');
	}
	return mode <= 0777 ? (int)mode : -1;
}

static const char *
config_check_mode(const char *v)
{
	if (config_mode_parse(v) != -1)
		return NULL;
	return "is not an octal mode from 0 to 0777 such as \"0660\"";
}

/* A user name as useradd(8) takes it; whether it exists is seen at start. */
static const char *
config_check_user(const char *v)
{
	size_t i;

	if (v[0] == '-')
		return "is not a user name: it starts with -";
	for (i = 0; v[i] != '\0'; i++)
		if (!((v[i] >= 'A' && v[i] <= 'Z') ||
		    (v[i] >= 'a' && v[i] <= 'z') ||
		    (v[i] >= '0' && v[i] <= '9') ||
		    v[i] == '_' || v[i] == '-' || v[i] == '.' ||
		    (v[i] == '$' && v[i + 1] == '\0')))
			return "is not a user name: letters, digits, _, - "
			    "and . only";
	return NULL;
}

static const struct config_key *
config_key_find(const char *name)
{
	size_t i;

	for (i = 0; i < CONFIG_NKEYS; i++)
		if (strcmp(config_keys[i].name, name) == 0)
			return &config_keys[i];
	return NULL;
}

/* True when some key lives in the group NAME. */
static int
config_group_known(const char *name)
{
	size_t i, n = strlen(name);

	for (i = 0; i < CONFIG_NKEYS; i++)
		if (strncmp(config_keys[i].name, name, n) == 0 &&
		    config_keys[i].name[n] == '.')
			return 1;
	return 0;
}

static char **
config_string_at(struct config *cfg, const struct config_key *k)
{
	return (char **)(void *)((char *)cfg + k->offset);
}

static int *
config_int_at(struct config *cfg, const struct config_key *k)
{
	return (int *)(void *)((char *)cfg + k->offset);
}

static const char *
config_string_of(const struct config *cfg, const struct config_key *k)
{
	return *(char *const *)(const void *)((const char *)cfg + k->offset);
}

static int
config_int_of(const struct config *cfg, const struct config_key *k)
{
	return *(const int *)(const void *)((const char *)cfg + k->offset);
}

static void	config_vproblem(struct config_loader *, const char *,
		    unsigned int, const char *, va_list)
		    __attribute__((format(printf, 4, 0)));

static void
config_vproblem(struct config_loader *ld, const char *file, unsigned int line,
    const char *fmt, va_list ap)
{
	struct config_problem *p;
	char *text, *copy;

	if (vasprintf(&text, fmt, ap) == -1) {
		ld->oom = 1;
		return;
	}
	if ((copy = strdup(file)) == NULL) {
		free(text);
		ld->oom = 1;
		return;
	}

	p = reallocarray(ld->problems, ld->nproblems + 1, sizeof(*p));
	if (p == NULL) {
		free(copy);
		free(text);
		ld->oom = 1;
		return;
	}
	ld->problems = p;
	p += ld->nproblems;
	p->file = copy;
	p->line = line;
	p->seq = ld->nproblems++;
	p->text = text;
}

/* Records a problem at FILE:LINE; LINE 0 is about the file as a whole. */
static void
config_problem_at(struct config_loader *ld, const char *file,
    unsigned int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void
config_problem_at(struct config_loader *ld, const char *file,
    unsigned int line, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	config_vproblem(ld, file, line, fmt, ap);
	va_end(ap);
}

/* Records a problem at setting S, or about the whole file when S is NULL. */
static void
config_problem(struct config_loader *ld, const config_setting_t *s,
    const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
config_problem(struct config_loader *ld, const config_setting_t *s,
    const char *fmt, ...)
{
	const char *file = ld->file;
	unsigned int line = 0;
	va_list ap;

	if (s != NULL) {
		if (config_setting_source_file(s) != NULL)
			file = config_setting_source_file(s);
		line = config_setting_source_line(s);
	}

	va_start(ap, fmt);
	config_vproblem(ld, file, line, fmt, ap);
	va_end(ap);
}

/* Copies a value for an error message, without anything that breaks it. */
static const char *
config_quote(const char *v, char *buf, size_t len)
{
	size_t i;

	for (i = 0; v[i] != '\0' && i + 1 < len; i++)
		buf[i] = v[i] >= 0x20 && v[i] < 0x7f ? v[i] : '?';
	buf[i] = '\0';
	if (v[i] != '\0' && len > 4)
		memcpy(buf + len - 4, "...", 3);
	return buf;
}

static int
config_apply_int(struct config_loader *ld, const struct config_key *k,
    const config_setting_t *s)
{
	long long v;

	if (config_setting_type(s) != CONFIG_TYPE_INT &&
	    config_setting_type(s) != CONFIG_TYPE_INT64) {
		config_problem(ld, s, "%s: expected an integer", k->name);
		return -1;
	}

	v = config_setting_get_int64(s);
	if (v < k->min) {
		config_problem(ld, s, "%s: %lld is below the minimum %lld",
		    k->name, v, k->min);
		return -1;
	}
	if (v > k->max) {
		config_problem(ld, s, "%s: %lld is above the maximum %lld",
		    k->name, v, k->max);
		return -1;
	}
	*config_int_at(ld->cfg, k) = (int)v;
	return 0;
}

static int
config_apply_bool(struct config_loader *ld, const struct config_key *k,
    const config_setting_t *s)
{
	if (config_setting_type(s) != CONFIG_TYPE_BOOL) {
		config_problem(ld, s, "%s: expected true or false", k->name);
		return -1;
	}
	*config_int_at(ld->cfg, k) = config_setting_get_bool(s) ? 1 : 0;
	return 0;
}

static int
config_apply_string(struct config_loader *ld, const struct config_key *k,
    const config_setting_t *s)
{
	const char *v, *why;
	char quoted[64], *copy;
	size_t n;

	if (config_setting_type(s) != CONFIG_TYPE_STRING) {
		config_problem(ld, s, "%s: expected a string%s", k->name,
		    k->type == CONFIG_MODE ?
		    " of octal digits such as \"0660\"" : "");
		return -1;
	}

	v = config_setting_get_string(s);
	n = strlen(v);
	if (k->type == CONFIG_STRING && n < (size_t)k->min) {
		config_problem(ld, s, "%s: must not be empty", k->name);
		return -1;
	}
	if (k->type == CONFIG_STRING && n > (size_t)k->max) {
		config_problem(ld, s,
		    "%s: %zu bytes is longer than the maximum %lld",
		    k->name, n, k->max);
		return -1;
	}
	if (k->check != NULL && (why = k->check(v)) != NULL) {
		config_problem(ld, s, "%s: \"%s\" %s", k->name,
		    config_quote(v, quoted, sizeof(quoted)), why);
		return -1;
	}

	if (k->type == CONFIG_MODE) {
		*config_int_at(ld->cfg, k) = config_mode_parse(v);
		return 0;
	}
	if ((copy = strdup(v)) == NULL) {
		ld->oom = 1;
		return -1;
	}
	free(*config_string_at(ld->cfg, k));
	*config_string_at(ld->cfg, k) = copy;
	return 0;
}

/* Checks setting S against key K and stores its value. */
static void
config_apply(struct config_loader *ld, const struct config_key *k,
    const config_setting_t *s)
{
	size_t i = (size_t)(k - config_keys);
	int r;

	ld->given[i] = s;
	switch (k->type) {
	case CONFIG_INT:
		r = config_apply_int(ld, k, s);
		break;
	case CONFIG_BOOL:
		r = config_apply_bool(ld, k, s);
		break;
	default:
		r = config_apply_string(ld, k, s);
		break;
	}
	if (r == -1)
		ld->bad[i] = 1;
}

static void
config_walk_group(struct config_loader *ld, const config_setting_t *group)
{
	const struct config_key *k;
	const config_setting_t *s;
	char name[256];
	int i;

	for (i = 0; (s = config_setting_get_elem(group, i)) != NULL; i++) {
		snprintf(name, sizeof(name), "%s.%s",
		    config_setting_name(group), config_setting_name(s));
		if ((k = config_key_find(name)) == NULL)
			config_problem(ld, s, "unknown key '%s'", name);
		else
			config_apply(ld, k, s);
	}
}

static void
config_walk(struct config_loader *ld, const config_setting_t *root)
{
	const struct config_key *k;
	const config_setting_t *s;
	const char *name;
	int i;

	for (i = 0; (s = config_setting_get_elem(root, i)) != NULL; i++) {
		name = config_setting_name(s);
		if ((k = config_key_find(name)) != NULL)
			config_apply(ld, k, s);
		else if (!config_group_known(name))
			config_problem(ld, s, "unknown key '%s'", name);
		else if (!config_setting_is_group(s))
			config_problem(ld, s, "%s: expected a group", name);
		else
			config_walk_group(ld, s);
	}
}

static size_t
config_index(const char *name)
{
	return (size_t)(config_key_find(name) - config_keys);
}

/*
 * Checks that key LOW is at most key HIGH, reporting on HIGH's line when
 * the file sets it and on LOW's otherwise.
 */
static void
config_check_order(struct config_loader *ld, const char *low,
    const char *high)
{
	size_t l = config_index(low), h = config_index(high);
	int lv = *config_int_at(ld->cfg, &config_keys[l]);
	int hv = *config_int_at(ld->cfg, &config_keys[h]);

	if (ld->bad[l] || ld->bad[h] || lv <= hv)
		return;

	if (ld->given[h] != NULL)
		config_problem(ld, ld->given[h], "%s: %d is below %s %d", high,
		    hv, low, lv);
	else
		config_problem(ld, ld->given[l], "%s: %d is above %s %d", low,
		    lv, high, hv);
}

/* Reports cannot be authenticated without a secret to sign them. */
static void
config_check_dlr(struct config_loader *ld)
{
	size_t u = config_index("dlr.public_url");

	if (ld->bad[u] || ld->cfg->dlr.public_url[0] == '\0' ||
	    ld->cfg->dlr.token[0] != '\0')
		return;
	config_problem(ld, ld->given[u],
	    "dlr.public_url: needs dlr.token, the secret that signs reports");
}

/*
 * Reads a secret file into *out, without one trailing newline. Returns
 * NULL, or why it could not (errno's text or a reason of its own).
 */
static const char *
config_read_secret(const char *path, char **out)
{
	char buf[CONFIG_SECRET_MAX + 1];
	size_t n = 0;
	ssize_t r;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return strerror(errno);
	while (n < sizeof(buf)) {
		r = read(fd, buf + n, sizeof(buf) - n);
		if (r == -1 && errno == EINTR)
			continue;
		if (r == -1) {
			r = errno;
			close(fd);
			explicit_bzero(buf, sizeof(buf));
			return strerror((int)r);
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	close(fd);

	if (n == sizeof(buf)) {
		explicit_bzero(buf, sizeof(buf));
		return "longer than 4096 bytes";
	}
	if (n > 0 && buf[n - 1] == '\n')
		n--;
	if (memchr(buf, '\0', n) != NULL) {
		explicit_bzero(buf, sizeof(buf));
		return "contains a NUL byte";
	}
	*out = strndup(buf, n);
	explicit_bzero(buf, sizeof(buf));
	return *out == NULL ? strerror(ENOMEM) : NULL;
}

static void
config_set_password(struct config_loader *ld, char *password)
{
	struct config *cfg = ld->cfg;

	explicit_bzero(cfg->upstream.password, strlen(cfg->upstream.password));
	free(cfg->upstream.password);
	cfg->upstream.password = password;
}

/* Takes the password from password_file or a systemd credential. */
static void
config_load_password(struct config_loader *ld)
{
	struct config *cfg = ld->cfg;
	const config_setting_t *where;
	const char *dir, *why;
	char *password, *path;

	where = ld->given[config_index("upstream.password_file")];
	if (cfg->upstream.password_file[0] != '\0') {
		if (cfg->upstream.password[0] != '\0') {
			config_problem(ld, where, "upstream.password_file: "
			    "cannot be used together with upstream.password");
			return;
		}
		why = config_read_secret(cfg->upstream.password_file,
		    &password);
		if (why != NULL) {
			config_problem(ld, where, "upstream.password_file: "
			    "cannot read %s: %s", cfg->upstream.password_file,
			    why);
			return;
		}
		config_set_password(ld, password);
		return;
	}

	dir = getenv("CREDENTIALS_DIRECTORY");
	if (cfg->upstream.password[0] != '\0' || dir == NULL || *dir == '\0')
		return;
	if (asprintf(&path, "%s/%s", dir, CONFIG_CREDENTIAL) == -1) {
		ld->oom = 1;
		return;
	}
	if (access(path, F_OK) == 0) {
		if ((why = config_read_secret(path, &password)) != NULL)
			config_problem(ld, NULL, "cannot read credential %s: "
			    "%s", path, why);
		else
			config_set_password(ld, password);
	}
	free(path);
}

static int
config_problem_cmp(const void *a, const void *b)
{
	const struct config_problem *p = a, *q = b;
	unsigned int pl = p->line ? p->line : UINT_MAX;
	unsigned int ql = q->line ? q->line : UINT_MAX;

	if (pl != ql)
		return pl < ql ? -1 : 1;
	return p->seq < q->seq ? -1 : p->seq > q->seq;
}

/* Turns the problems into one text, in file order. */
static char *
config_problems_text(struct config_loader *ld)
{
	struct config_problem *p;
	char *text = NULL;
	size_t i, len;
	FILE *f;

	qsort(ld->problems, ld->nproblems, sizeof(*ld->problems),
	    config_problem_cmp);

	if ((f = open_memstream(&text, &len)) == NULL)
		return NULL;
	for (i = 0; i < ld->nproblems; i++) {
		p = &ld->problems[i];
		if (p->line != 0)
			fprintf(f, "%s:%u: %s\n", p->file, p->line, p->text);
		else
			fprintf(f, "%s: %s\n", p->file, p->text);
	}
	if (ld->oom)
		fprintf(f, "%s: out of memory\n", ld->file);
	if (fclose(f) != 0) {
		free(text);
		return NULL;
	}
	return text;
}

/* Checks that FILE can be read, so that the reason is errno's own. */
static int
config_readable(struct config_loader *ld)
{
	struct stat st;
	FILE *f;
	int e;

	if ((f = fopen(ld->file, "r")) == NULL) {
		config_problem(ld, NULL, "cannot read: %s", strerror(errno));
		return -1;
	}
	if (fstat(fileno(f), &st) == -1 || S_ISDIR(st.st_mode)) {
		e = S_ISDIR(st.st_mode) ? EISDIR : errno;
		fclose(f);
		config_problem(ld, NULL, "cannot read: %s", strerror(e));
		return -1;
	}
	fclose(f);
	return 0;
}

static void
config_parse(struct config_loader *ld)
{
	const char *file;
	config_t lc;
	int line;

	if (config_readable(ld) == -1)
		return;

	config_init(&lc);
	if (config_read_file(&lc, ld->file) != CONFIG_TRUE) {
		file = config_error_file(&lc);
		line = config_error_line(&lc);
		config_problem_at(ld, file != NULL ? file : ld->file,
		    line > 0 ? (unsigned int)line : 0, "%s",
		    config_error_text(&lc));
		config_destroy(&lc);
		return;
	}

	config_walk(ld, config_root_setting(&lc));
	config_check_order(ld, "retry.base_ms", "retry.cap_ms");
	config_check_order(ld, "retry.validity", "retry.max_validity");
	config_check_dlr(ld);
	if (!ld->bad[config_index("upstream.password")] &&
	    !ld->bad[config_index("upstream.password_file")])
		config_load_password(ld);
	config_destroy(&lc);
}

struct config *
config_load(const char *file, char **problems)
{
	const config_setting_t *given[CONFIG_NKEYS] = { NULL };
	int bad[CONFIG_NKEYS] = { 0 };
	struct config_loader ld = {
		.file = file,
		.given = given,
		.bad = bad,
	};
	size_t i;

	*problems = NULL;
	if ((ld.cfg = config_defaults()) != NULL) {
		free(ld.cfg->file);
		ld.cfg->file = strdup(file);
	}
	if (ld.cfg == NULL || ld.cfg->file == NULL)
		ld.oom = 1;
	else
		config_parse(&ld);

	if (ld.nproblems == 0 && !ld.oom)
		return ld.cfg;

	*problems = config_problems_text(&ld);
	for (i = 0; i < ld.nproblems; i++) {
		free(ld.problems[i].file);
		free(ld.problems[i].text);
	}
	free(ld.problems);
	config_free(ld.cfg);
	return NULL;
}

struct config *
config_defaults(void)
{
	const struct config_key *k;
	struct config *cfg;
	size_t i;

	if ((cfg = calloc(1, sizeof(*cfg))) == NULL)
		return NULL;

	for (i = 0; i < CONFIG_NKEYS; i++) {
		k = &config_keys[i];
		if (k->type == CONFIG_MODE)
			*config_int_at(cfg, k) = config_mode_parse(k->sdef);
		else if (k->type != CONFIG_STRING)
			*config_int_at(cfg, k) = (int)k->def;
		else if ((*config_string_at(cfg, k) = strdup(k->sdef)) == NULL)
			goto fail;
	}
	if ((cfg->file = strdup("")) == NULL)
		goto fail;
	return cfg;

fail:
	config_free(cfg);
	return NULL;
}

void
config_free(struct config *cfg)
{
	size_t i;

	if (cfg == NULL)
		return;

	if (cfg->upstream.password != NULL)
		explicit_bzero(cfg->upstream.password,
		    strlen(cfg->upstream.password));
	for (i = 0; i < CONFIG_NKEYS; i++)
		if (config_keys[i].type == CONFIG_STRING)
			free(*config_string_at(cfg, &config_keys[i]));
	free(cfg->file);
	free(cfg);
}

/* True when K has the same value in A and B. */
static int
config_same(const struct config *a, const struct config *b,
    const struct config_key *k)
{
	const char *x, *y;

	if (k->type != CONFIG_STRING)
		return config_int_of(a, k) == config_int_of(b, k);

	x = config_string_of(a, k);
	y = config_string_of(b, k);
	return strcmp(x != NULL ? x : "", y != NULL ? y : "") == 0;
}

void
config_diff(const struct config *old, const struct config *new,
    void (*cb)(void *arg, const char *key, int reloadable), void *arg)
{
	size_t i;

	for (i = 0; i < CONFIG_NKEYS; i++)
		if (!config_same(old, new, &config_keys[i]))
			cb(arg, config_keys[i].name, config_keys[i].reload);
}

int
config_keep_fixed(struct config *to, const struct config *from)
{
	const struct config_key *k;
	char **dst, *copy;
	size_t i;

	for (i = 0; i < CONFIG_NKEYS; i++) {
		k = &config_keys[i];
		if (k->reload || config_same(to, from, k))
			continue;
		if (k->type != CONFIG_STRING) {
			*config_int_at(to, k) = config_int_of(from, k);
			continue;
		}
		if ((copy = strdup(config_string_of(from, k))) == NULL)
			return -1;
		dst = config_string_at(to, k);
		free(*dst);
		*dst = copy;
	}
	return 0;
}

int
config_key_reloadable(const char *key)
{
	const struct config_key *k = config_key_find(key);

	return k != NULL ? k->reload : -1;
}
