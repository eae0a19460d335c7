/* core_refresh.c — fbconnect's core (connection.c, refresh.c, store.c, redis.c) driven
 * directly, below nginx: a private redis-server with a replica and the sandbox provider
 * (its plain-HTTP listener) on loopback, a svc per thread.  The single-flight refresh over
 * threads, a lost compare-and-set, a failed WAIT and the vault's flush, orphaned locks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <jansson.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sodium.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "config.h"
#include "connection.h"
#include "keys.h"
#include "oauth.h"
#include "refresh.h"
#include "store.h"
#include "svc.h"

#define CLIENT_ID "core-client"
#define CLIENT_SECRET "core-secret"
#define REDIRECT "http://127.0.0.1:9/callback"

static struct {
    char dir[PATH_MAX];
    int redis_port, replica_port, sandbox_port;
    pid_t redis, replica, sandbox;
    char env[32][512];
    size_t n_env;
    struct config cfg;
    struct keyring keys;
} t;

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof sa;
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || getsockname(fd, (struct sockaddr *)&sa, &sl) != 0)
        abort();
    close(fd);
    return ntohs(sa.sin_port);
}

static pid_t spawn(const char *const argv[], const char *const envp[])
{
    pid_t pid = fork();
    if (pid == 0) {
        int null = open("/dev/null", 1);
        dup2(null, 1);
        dup2(null, 2);
        setpgid(0, 0);
        execve(argv[0], (char *const *)argv, (char *const *)envp);
        _exit(127);
    }
    return pid;
}

static char *which(const char *name)
{
    static char path[PATH_MAX];
    const char *p = getenv("PATH");
    char *copy = strdup(p ? p : "/usr/bin:/bin"), *save = NULL;
    for (char *d = strtok_r(copy, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
        snprintf(path, sizeof path, "%s/%s", d, name);
        if (access(path, X_OK) == 0) {
            free(copy);
            return path;
        }
    }
    free(copy);
    return NULL;
}

static pid_t start_redis(int port, int primary_port)
{
    char portstr[16], replicaof[32], dir[PATH_MAX + 16];
    snprintf(portstr, sizeof portstr, "%d", port);
    snprintf(dir, sizeof dir, "%s/r%d", t.dir, port);
    mkdir(dir, 0700);
    char *exe = strdup(which("redis-server"));
    const char *argv[16] = {exe, "--port", portstr, "--bind", "127.0.0.1", "--save", "", "--appendonly",
                      "no", "--dir", dir};
    int n = 11;
    if (primary_port) {
        snprintf(replicaof, sizeof replicaof, "%d", primary_port);
        argv[n++] = "--replicaof";
        argv[n++] = "127.0.0.1";
        argv[n++] = replicaof;
    }
    argv[n] = NULL;
    const char *envp[] = {NULL};
    pid_t pid = spawn(argv, envp);
    free(exe);
    return pid;
}

/* A plain HTTP call to the sandbox; the body (malloc'd) and, for a redirect, Location. */
struct reply {
    long status;
    char *body;
    size_t len;
    char location[1024];
};

static size_t on_body(char *p, size_t sz, size_t n, void *arg)
{
    struct reply *r = arg;
    r->body = realloc(r->body, r->len + sz * n + 1);
    memcpy(r->body + r->len, p, sz * n);
    r->len += sz * n;
    r->body[r->len] = '\0';
    return sz * n;
}

static size_t on_header(char *p, size_t sz, size_t n, void *arg)
{
    struct reply *r = arg;
    if (strncasecmp(p, "Location: ", 10) == 0) {
        snprintf(r->location, sizeof r->location, "%.*s", (int)(sz * n - 12), p + 10);
    }
    return sz * n;
}

static struct reply sandbox(const char *method, const char *path, const char *body, const char *type)
{
    struct reply r = {0};
    char url[256];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", t.sandbox_port, path);
    CURL *c = curl_easy_init();
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    struct curl_slist *h = NULL;
    if (body) {
        char ct[128];
        snprintf(ct, sizeof ct, "Content-Type: %s", type);
        h = curl_slist_append(h, ct);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    }
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
    curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return r;
}

static void sandbox_config(long expires_in)
{
    char body[64];
    snprintf(body, sizeof body, "{\"expires_in\":%ld}", expires_in);
    struct reply r = sandbox("POST", "/_sandbox/config", body, "application/json");
    assert_int_equal(r.status, 200);
    free(r.body);
}

static long stat_of(const char *name)
{
    struct reply r = sandbox("GET", "/_sandbox/stats", NULL, NULL);
    json_t *j = json_loads(r.body ? r.body : "{}", 0, NULL);
    long v = (long)json_integer_value(json_object_get(j, name));
    json_decref(j);
    free(r.body);
    return v;
}

static const char *getter(const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < t.n_env; i++)
        if (strncmp(t.env[i], name, n) == 0 && t.env[i][n] == '=')
            return t.env[i] + n + 1;
    return NULL;
}

static void setenv_t(const char *name, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char value[400];
    vsnprintf(value, sizeof value, fmt, ap);
    va_end(ap);
    snprintf(t.env[t.n_env++], sizeof t.env[0], "%s=%s", name, value);
}

static bool redis_up(int port)
{
    struct config c = t.cfg;
    char url[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", port);
    struct store *s = store_new(&t.cfg);
    (void)c;
    (void)url;
    bool ok = store_ping(s) == STORE_OK;
    store_free(s);
    return ok;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int group_setup(void **state)
{
    (void)state;
    if (sodium_init() < 0 || !which("redis-server"))
        return -1;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    snprintf(t.dir, sizeof t.dir, "/tmp/fbconnect-core-XXXXXX");
    if (!mkdtemp(t.dir))
        return -1;
    t.redis_port = free_port();
    t.replica_port = free_port();
    t.sandbox_port = free_port();
    t.redis = start_redis(t.redis_port, 0);
    t.replica = start_redis(t.replica_port, t.redis_port);

    /* The sandbox binary sits beside this test's build folder: build/tests/core_* → build/. */
    char exe[PATH_MAX], sbx[PATH_MAX + 32];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0)
        return -1;
    exe[n] = '\0';
    *strrchr(exe, '/') = '\0';
    *strrchr(exe, '/') = '\0';
    snprintf(sbx, sizeof sbx, "%s/fbsandbox", exe);
    char listen[PATH_MAX + 64], http[64];
    snprintf(listen, sizeof listen, "FBSANDBOX_LISTEN=unix:%s/sandbox.sock", t.dir);
    snprintf(http, sizeof http, "FBSANDBOX_HTTP_LISTEN=127.0.0.1:%d", t.sandbox_port);
    const char *sargv[] = {sbx, NULL};
    const char *senv[] = {listen, http, "FBSANDBOX_CLIENT_ID=" CLIENT_ID,
                    "FBSANDBOX_CLIENT_SECRET=" CLIENT_SECRET,
                    "FBSANDBOX_REDIRECT_URIS=" REDIRECT, "FBSANDBOX_THREADS=8", NULL};
    t.sandbox = spawn(sargv, senv);

    uint8_t key[32];
    randombytes_buf(key, sizeof key);
    char hex[65];
    sodium_bin2hex(hex, sizeof hex, key, sizeof key);
    setenv_t("FBCONNECT_CLIENT_ID", CLIENT_ID);
    setenv_t("FBCONNECT_CLIENT_SECRET", CLIENT_SECRET);
    setenv_t("FBCONNECT_REDIRECT_URI", REDIRECT);
    setenv_t("FBCONNECT_AUTHORIZE_URL", "http://127.0.0.1:%d/oauth/authorize", t.sandbox_port);
    setenv_t("FBCONNECT_TOKEN_URL", "http://127.0.0.1:%d/auth/oauth/token", t.sandbox_port);
    setenv_t("FBCONNECT_REVOKE_URL", "http://127.0.0.1:%d/auth/oauth/revoke", t.sandbox_port);
    setenv_t("FBCONNECT_API_URL", "http://127.0.0.1:%d", t.sandbox_port);
    setenv_t("FBCONNECT_REDIS_URL", "redis://127.0.0.1:%d", t.redis_port);
    setenv_t("FBCONNECT_REDIS_WAIT_REPLICAS", "1");
    setenv_t("FBCONNECT_REDIS_TIMEOUT_MS", "500");
    setenv_t("FBCONNECT_HTTP_TIMEOUT_MS", "2000");
    setenv_t("FBCONNECT_REFRESH_WAIT_MS", "600");
    setenv_t("FBCONNECT_USER_PARAM", "REMOTE_USER");
    setenv_t("FBCONNECT_SECRET_KEY", "%s", hex);
    char err[256];
    if (config_load(&t.cfg, getter, err, sizeof err) != 0) {
        fprintf(stderr, "config: %s\n", err);
        return -1;
    }
    keyring_init(&t.keys, t.cfg.secret_key, NULL, 0);
    if (oauth_global_init(&t.cfg) != 0 || refresh_init(&t.cfg, &t.keys) != 0)
        return -1;
    for (int i = 0; i < 200 && (!redis_up(t.redis_port) || stat_of("token_calls") < 0); i++)
        sleep_ms(25);
    /* The replica in sync: WAIT 1 answers. */
    for (int i = 0; i < 200; i++) {
        struct store *s = store_new(&t.cfg);
        bool ok = store_wait_durable(s) == STORE_OK;
        store_ping(s);
        ok = store_wait_durable(s) == STORE_OK;
        store_free(s);
        if (ok)
            break;
        sleep_ms(50);
    }
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    refresh_shutdown();
    for (pid_t *p = &t.redis; p <= &t.sandbox; p++)
        if (*p > 0) {
            kill(-*p, SIGKILL);
            kill(*p, SIGKILL);
            waitpid(*p, NULL, 0);
        }
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", t.dir);
    if (system(cmd) != 0)
        return -1;
    oauth_global_free();
    config_free(&t.cfg);
    return 0;
}

/* A site user connected through the sandbox's authorize flow, with pairs that live
 * expires_in seconds: the owner name, in the svc's arena. */
static const char *connect_user(struct svc *svc, const char *email, long expires_in)
{
    sandbox_config(expires_in);
    char form[512];
    snprintf(form, sizeof form,
             "client_id=" CLIENT_ID "&redirect_uri=http%%3A%%2F%%2F127.0.0.1%%3A9%%2Fcallback"
             "&state=s&scope=&email=%s&action=authorize", email);
    struct reply r = sandbox("POST", "/oauth/authorize", form, "application/x-www-form-urlencoded");
    assert_int_equal(r.status, 302);
    free(r.body);
    const char *code = strstr(r.location, "code=");
    assert_non_null(code);
    char codebuf[256];
    snprintf(codebuf, sizeof codebuf, "%s", code + 5);
    char *amp = strchr(codebuf, '&');
    if (amp)
        *amp = '\0';
    struct token_pair pair;
    struct identity ident;
    assert_int_equal(oauth_exchange_code(svc->oauth, svc->arena, codebuf, NULL, &pair), OAUTH_OK);
    assert_int_equal(oauth_fetch_identity(svc->oauth, svc->arena, pair.access_token, &ident), OAUTH_OK);
    sandbox_config(43200);
    const char *owner = store_owner_of_user(svc->arena, email);
    assert_int_equal(connection_connect(svc, &pair, &ident, owner, NULL, 0), STORE_OK);
    return owner;
}

struct storm_arg {
    const char *owner;
    enum token_result got;
    char token[64];
};

static void *storm_one(void *p)
{
    struct storm_arg *a = p;
    struct svc svc;
    svc_open(&svc, &t.cfg, &t.keys);
    svc_begin(&svc, clock_mono_us() + config_request_bound_ms(&t.cfg) * 1000);
    struct loaded l;
    enum refresh_outcome why;
    a->got = refresh_valid_token(&svc, a->owner, &l, &why);
    if (a->got == TOKEN_OK)
        snprintf(a->token, sizeof a->token, "%s", l.c.pair.access_token + strlen(l.c.pair.access_token) - 40);
    svc_close(&svc);
    return NULL;
}

/* 24 threads of one process at once, each its own svc: one refresh at the provider, no
 * spent refresh token presented, nobody refused. */
static void test_refresh_storm_over_threads(void **state)
{
    (void)state;
    struct svc svc;
    svc_open(&svc, &t.cfg, &t.keys);
    const char *owner = strdup(connect_user(&svc, "storm@example.com", 200));
    long refreshes = stat_of("refreshes"), spent = stat_of("spent_refresh_presented");
    enum { N = 24 };
    pthread_t th[N];
    struct storm_arg args[N];
    for (int i = 0; i < N; i++) {
        args[i] = (struct storm_arg){.owner = owner};
        pthread_create(&th[i], NULL, storm_one, &args[i]);
    }
    for (int i = 0; i < N; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < N; i++)
        assert_int_equal(args[i].got, TOKEN_OK);
    assert_int_equal(stat_of("refreshes") - refreshes, 1);
    assert_int_equal(stat_of("spent_refresh_presented"), spent);
    /* Afterwards everyone gets the refreshed pair, well away from expiry. */
    svc_begin(&svc, 0);
    struct loaded l;
    enum refresh_outcome why;
    assert_int_equal(refresh_valid_token(&svc, owner, &l, &why), TOKEN_OK);
    assert_true(l.c.pair.expires_at > time(NULL) + 40000);
    free((char *)owner);
    svc_close(&svc);
}

static int decided;

static enum update_step stamp(const struct connection *cur, struct connection *next, void *arg)
{
    (void)arg;
    decided++;
    if (!cur)
        return STEP_KEEP;
    next->connected_at = 4242;
    return STEP_WRITE;
}

/* A write from a stale read loses the compare-and-set, reads again and decides again: the
 * newer pair stays, with the change on top. */
static void test_compare_and_set_lost_and_retried(void **state)
{
    (void)state;
    struct svc a, b;
    svc_open(&a, &t.cfg, &t.keys);
    svc_open(&b, &t.cfg, &t.keys);
    const char *owner = connect_user(&a, "cas@example.com", 43200);
    struct loaded stale;
    assert_int_equal(connection_load(&a, owner, &stale), LOOKUP_FOUND);
    /* Meanwhile the same FreshBooks user connects again elsewhere: a newer pair. */
    const char *other = connect_user(&b, "cas@example.com", 43200);
    struct loaded fresh;
    assert_int_equal(connection_load(&b, other, &fresh), LOOKUP_FOUND);
    assert_string_equal(fresh.record_name, stale.record_name);
    assert_true(fresh.c.version != stale.c.version);
    decided = 0;
    struct record_change change = {.decide = stamp};
    struct connection now;
    assert_int_equal(record_update(&a, stale.record_name, &stale.c, &change, &now), UPDATE_WRITTEN);
    assert_int_equal(decided, 2); /* once on the stale read, once on the newer record */
    assert_string_equal(now.pair.refresh_token, fresh.c.pair.refresh_token);
    assert_int_equal(now.connected_at, 4242);
    struct connection stored;
    assert_int_equal(connection_read(&b, stale.record_name, &stored), STORE_OK);
    assert_int_equal(stored.version, now.version);
    svc_close(&a);
    svc_close(&b);
}

static void replica_attached(bool attached)
{
    char cmd[128];
    if (attached)
        snprintf(cmd, sizeof cmd, "redis-cli -p %d REPLICAOF 127.0.0.1 %d >/dev/null", t.replica_port,
                 t.redis_port);
    else
        snprintf(cmd, sizeof cmd, "redis-cli -p %d REPLICAOF NO ONE >/dev/null", t.replica_port);
    assert_int_equal(system(cmd), 0);
}

struct refresh_arg {
    const char *owner;
    enum token_result got;
    enum refresh_outcome why;
    char token[8192];
};

static void *refresh_one(void *p)
{
    struct refresh_arg *a = p;
    struct svc svc;
    svc_open(&svc, &t.cfg, &t.keys);
    svc_begin(&svc, 0);
    struct loaded l;
    a->got = refresh_valid_token(&svc, a->owner, &l, &a->why);
    if (a->got == TOKEN_OK)
        snprintf(a->token, sizeof a->token, "%s", l.c.pair.access_token);
    svc_close(&svc);
    return NULL;
}

/* The replica goes away while FreshBooks answers a refresh (the lock was acknowledged
 * before): no replica acknowledges the new pair, so it is kept in memory and served from
 * there; once the replica is back the background thread stores it, and Redis has it. */
static void test_failed_wait_then_vault_flush(void **state)
{
    (void)state;
    struct svc svc;
    svc_open(&svc, &t.cfg, &t.keys);
    const char *owner = strdup(connect_user(&svc, "vault@example.com", 200));
    struct reply f = sandbox("POST", "/_sandbox/fault",
                             "{\"endpoint\":\"token\",\"mode\":\"late\",\"delay_ms\":800,\"count\":1}",
                             "application/json");
    assert_int_equal(f.status, 200);
    free(f.body);
    struct refresh_arg a = {.owner = owner};
    pthread_t th;
    pthread_create(&th, NULL, refresh_one, &a);
    sleep_ms(300); /* the lock is taken and acknowledged; FreshBooks is answering late */
    replica_attached(false);
    pthread_join(th, NULL);
    int kept = (int)refresh_kept_count();
    replica_attached(true);
    assert_int_equal(a.got, TOKEN_OK);
    assert_int_equal(a.why, RO_REFRESHED);
    assert_int_equal(kept, 1);
    for (int i = 0; i < 200 && refresh_kept_count(); i++)
        sleep_ms(50);
    assert_int_equal(refresh_kept_count(), 0);
    svc_begin(&svc, 0);
    struct loaded l;
    enum refresh_outcome why;
    assert_int_equal(refresh_valid_token(&svc, owner, &l, &why), TOKEN_OK);
    assert_string_equal(l.c.pair.access_token, a.token); /* stored: the same pair from Redis */
    free((char *)owner);
    svc_close(&svc);
}

/* A lock whose holder vanished: a usable token is served at once; without one the request
 * waits FBCONNECT_REFRESH_WAIT_MS (600 ms here) and gives up, never breaking the lock. */
static void test_orphaned_lock(void **state)
{
    (void)state;
    struct svc svc;
    svc_open(&svc, &t.cfg, &t.keys);
    for (int usable = 1; usable >= 0; usable--) {
        const char *owner = strdup(connect_user(&svc, usable ? "orphan1@example.com" : "orphan2@example.com",
                                                usable ? 200 : 3));
        svc_begin(&svc, 0);
        struct loaded l;
        assert_int_equal(connection_load(&svc, owner, &l), LOOKUP_FOUND);
        struct store_lock vanished = {.owner = "a-holder-that-vanished"};
        assert_int_equal(store_lock_try(svc.store, l.record_name, &vanished, 15000), STORE_OK);
        svc_begin(&svc, clock_mono_us() + config_request_bound_ms(&t.cfg) * 1000);
        enum refresh_outcome why;
        int64_t t0 = clock_mono_us();
        enum token_result got = refresh_valid_token(&svc, owner, &l, &why);
        int64_t took_ms = (clock_mono_us() - t0) / 1000;
        if (usable) {
            assert_int_equal(got, TOKEN_OK);
            assert_int_equal(why, RO_ELSEWHERE);
            assert_true(took_ms < 200);
        } else {
            assert_int_equal(got, TOKEN_UNAVAILABLE);
            assert_int_equal(why, RO_WAITED);
            assert_true(took_ms >= 550 && took_ms < 1500);
        }
        struct store_lock again = {.owner = "someone-else"};
        assert_int_equal(store_lock_try(svc.store, l.record_name, &again, 1000), STORE_EXISTS);
        free((char *)owner);
    }
    svc_close(&svc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_refresh_storm_over_threads),
        cmocka_unit_test(test_compare_and_set_lost_and_retried),
        cmocka_unit_test(test_failed_wait_then_vault_flush),
        cmocka_unit_test(test_orphaned_lock),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
