/* config.h — every setting, read once at startup from the environment (PRODUCT.md's
 * table) and read-only afterwards. */
#ifndef FBC_CONFIG_H
#define FBC_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define CONFIG_MAX_OLD_KEYS 8
#define CONFIG_MAX_SENTINELS 8
#define SECRET_KEY_BYTES 32

struct redis_endpoint {
    char *host; /* NULL for a unix socket */
    int port;
    char *path; /* unix socket path, or NULL */
};

#define EVENTS_KEY_MIN 24 /* bytes of a Standard Webhooks secret */
#define EVENTS_KEY_MAX 64

struct config {
    char *listen;
    unsigned threads;

    char *client_id;
    char *client_secret;
    char *redirect_uri;
    bool redirect_https; /* the cookie is Secure */
    char *scopes;        /* NULL: none requested */
    char *authorize_url, *token_url, *revoke_url, *api_url;
    char *ca_file; /* NULL: system trust store */
    long http_timeout_ms;

    char *redis_url;
    struct redis_endpoint redis; /* from FBCONNECT_REDIS_URL */
    bool redis_tls;              /* rediss://: data nodes and sentinels over TLS */
    char *redis_ca_file, *redis_cert_file, *redis_key_file; /* NULL: system store; none */
    char *redis_tls_server_name; /* NULL: the host connected to */
    char *redis_user, *redis_password;
    int redis_db;
    char *redis_prefix;
    long redis_timeout_ms;
    struct redis_endpoint sentinels[CONFIG_MAX_SENTINELS];
    size_t n_sentinels;
    char *sentinel_master, *sentinel_password;
    int wait_replicas; /* -1: 1 when the primary has replicas, else 0 */
    long wait_timeout_ms;

    uint8_t secret_key[SECRET_KEY_BYTES];
    uint8_t old_keys[CONFIG_MAX_OLD_KEYS][SECRET_KEY_BYTES];
    size_t n_old_keys;

    char *base_path; /* starts and ends with '/' */
    char *template_dir;
    char *cookie_name; /* effective name, __Host- prefixed where PRODUCT.md says */
    char *earlier_cookie_name; /* the callback's cookie of earlier sessions (session.h) */
    long session_ttl;
    long refresh_margin;
    long refresh_wait_ms; /* the longest a request waits for someone else's refresh */
    char *site_home;  /* where the connected page leads back to: a path of the site */
    char *user_param; /* NULL: off */
    char *pkce_mode;  /* "s256" or "off" */
    bool pkce;        /* the authorize link carries a PKCE S256 challenge */

    /* Connection events (events.h): off when events_url is NULL. */
    char *events_url;
    char *events_secret;                /* "whsec_<base64>" as configured */
    uint8_t events_key[EVENTS_KEY_MAX]; /* its decoded bytes */
    size_t events_key_len;
    char *events_ca_file; /* NULL: system trust store */
    long events_timeout_ms;
    long events_retention; /* seconds */
};

/* Looks a variable up; getenv in production, a table in tests. */
typedef const char *(*config_getter)(const char *name);

/* Reads and validates every variable.  Returns 0, or -1 with every problem in err, one
 * line each, each naming its variable.  Never touches the network.  Free with
 * config_free. */
int config_load(struct config *c, config_getter get, char *err, size_t errsz);
void config_free(struct config *c);

/* The longest any request takes (README "Time bounds"): 2 × FBCONNECT_HTTP_TIMEOUT_MS (a
 * code exchange or refresh and an identity call) + FBCONNECT_REFRESH_WAIT_MS + 4 ×
 * FBCONNECT_REDIS_TIMEOUT_MS + 2 × FBCONNECT_REDIS_WAIT_TIMEOUT_MS.  Every request gets
 * this deadline; no wait of Redis, FreshBooks or a refresh goes beyond it. */
long config_request_bound_ms(const struct config *c);

/* The TTL (seconds) of connection records and session pointers: the session TTL, sliding;
 * 0 (none) when connections belong to site users (FBCONNECT_USER_PARAM), whose back end
 * relies on them. */
long config_record_ttl(const struct config *c);

/* A record's refresh lock lives this long: longer than the token call made under it
 * (FBCONNECT_HTTP_TIMEOUT_MS + 5 s). */
long config_lock_ttl_ms(const struct config *c);

/* The variables config_load reads, in order (README's configuration table lists each). */
size_t config_setting_count(void);
const char *config_setting_name(size_t i);
/* True when the variable may instead name a file (VAR_FILE): the secrets. */
bool config_setting_takes_file(size_t i);

/* Warns on out about every FBCONNECT_* variable of env that is no setting (a typo is
 * otherwise silently ignored), naming the closest setting.  Returns how many. */
int config_warn_unknown(char *const *env, FILE *out);

/* Prints the effective settings, one per line, secrets masked. */
void config_print(const struct config *c, FILE *out);

/* Decodes a 32-byte key given as 64 hex digits or base64 (standard or URL-safe, padding
 * optional).  Returns 0 or -1. */
int config_parse_key(const char *text, uint8_t out[SECRET_KEY_BYTES]);

/* True when the URL's host is localhost, 127.0.0.1 or [::1]. */
bool config_url_is_loopback(const char *url);

#endif
