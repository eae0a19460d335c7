/* fbconnect — FastCGI daemon connecting a site's users to FreshBooks.  See README.md. */
#include <curl/curl.h>
#include <errno.h>
#include <signal.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "app.h"
#include "admin.h"
#include "ids.h"
#include "log.h"
#include "metrics.h"
#include "oauth.h"
#include "outbox.h"
#include "redis.h"
#include "refresh.h"
#include "rekey.h"
#include "wire.h"

static const char usage[] =
    "usage: fbconnect [command]\n"
    "\n"
    "  (no command)     serve FastCGI on FBCONNECT_LISTEN until SIGTERM\n"
    "  --check-config   validate the environment, print the effective settings\n"
    "                   (secrets masked); exit 0 when valid, 1 otherwise\n"
    "  keygen           print a new random secret key for FBCONNECT_SECRET_KEY\n"
    "  keygen --events  print a new signing secret for FBCONNECT_EVENTS_SECRET\n"
    "  rekey            re-seal every stored connection and bind every owner pointer with\n"
    "                   the current key (after a rotation, before dropping a key from\n"
    "                   FBCONNECT_OLD_SECRET_KEYS)\n"
    "  rekey --bind-unbound\n"
    "                   the same, and bind the owner pointers written before 0.2 (once,\n"
    "                   when upgrading from 0.1)\n"
    "  connections      list stored connections (who, state, expiry; never a token)\n"
    "  disconnect --user SITE_USER | --identity FRESHBOOKS_USER_ID\n"
    "                   revoke that connection at FreshBooks and delete it\n"
    "  purge --user SITE_USER | --identity FRESHBOOKS_USER_ID\n"
    "                   delete that connection without telling FreshBooks\n"
    "  events [--user SITE_USER | --identity FRESHBOOKS_USER_ID] [--failed]\n"
    "                   the connection events, newest first, with their delivery state\n"
    "  events retry EVENT_ID | --failed\n"
    "                   send that event (or every one given up) again\n"
    "  --service COMMAND …\n"
    "                   run COMMAND with the installed service's settings and secrets\n"
    "                   (/etc/fbconnect/fbconnect.env and /etc/fbconnect/credentials;\n"
    "                   as root), e.g. sudo fbconnect --service connections\n"
    "  --version        print the version\n"
    "  --help           this text\n"
    "\n"
    "Exit status: 0 done; 1 failed (e.g. Redis unavailable); 2 usage; 3 no such\n"
    "connection (or event); 4 deleted but FreshBooks did not confirm the revoke.\n"
    "\n"
    "Configuration comes from FBCONNECT_* environment variables; see README.md.\n";

static const char *env_get(const char *name)
{
    return getenv(name);
}

/* No core dumps and no ptrace from other processes of the same user: memory holds keys. */
static void harden_process(void)
{
    struct rlimit none = {0, 0};
    setrlimit(RLIMIT_CORE, &none);
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}

/* `keygen --events`: a Standard Webhooks secret, whsec_ + base64 of 32 random bytes. */
static int cmd_keygen_events(void)
{
    uint8_t key[32];
    char text[sodium_base64_ENCODED_LEN(32, sodium_base64_VARIANT_ORIGINAL)];
    randombytes_buf(key, sizeof key);
    sodium_bin2base64(text, sizeof text, key, sizeof key, sodium_base64_VARIANT_ORIGINAL);
    sodium_memzero(key, sizeof key);
    printf("whsec_%s\n", text);
    sodium_memzero(text, sizeof text);
    return 0;
}

static int cmd_keygen(void)
{
    uint8_t key[SECRET_KEY_BYTES];
    char text[sodium_base64_ENCODED_LEN(SECRET_KEY_BYTES, sodium_base64_VARIANT_ORIGINAL)];
    randombytes_buf(key, sizeof key);
    sodium_bin2base64(text, sizeof text, key, sizeof key, sodium_base64_VARIANT_ORIGINAL);
    sodium_memzero(key, sizeof key);
    puts(text);
    return 0;
}

extern char **environ;

static int load_app(struct app *app)
{
    char err[4096];
    config_warn_unknown(environ, stderr);
    if (config_load(&app->cfg, env_get, err, sizeof err) != 0) {
        for (char *line = strtok(err, "\n"); line; line = strtok(NULL, "\n"))
            fprintf(stderr, "fbconnect: %s\n", line);
        return -1;
    }
    if (wire_tls_init(&app->cfg, err, sizeof err) != 0) {
        fprintf(stderr, "fbconnect: %s\n", err);
        config_free(&app->cfg);
        return -1;
    }
    keyring_init(&app->keys, app->cfg.secret_key, (const uint8_t(*)[SECRET_KEY_BYTES])app->cfg.old_keys,
                 app->cfg.n_old_keys);
    app->pages = pages_load(app->cfg.template_dir, err, sizeof err);
    if (!app->pages) {
        fprintf(stderr, "fbconnect: %s\n", err);
        return -1;
    }
    if (oauth_global_init(&app->cfg) != 0) {
        fprintf(stderr, "fbconnect: FBCONNECT_AUTHORIZE_URL: cannot build the authorize link\n");
        return -1;
    }
    return 0;
}

static void free_app(struct app *app)
{
    wire_tls_free();
    oauth_global_free();
    pages_free(app->pages);
    keyring_wipe(&app->keys);
    config_free(&app->cfg);
}

static int serve(struct app *app)
{
    char err[512];
    /* Signals are taken by sigwait() here; every thread inherits this mask. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGQUIT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    int fd = server_listen(app->cfg.listen, err, sizeof err);
    if (fd < 0) {
        fprintf(stderr, "fbconnect: %s\n", err);
        return 1;
    }
    bool own_path = strncmp(app->cfg.listen, "unix:", 5) == 0 && !getenv("LISTEN_FDS");
    struct stat own_st = {0};
    if (own_path)
        stat(app->cfg.listen + 5, &own_st);

    metrics_init(app->cfg.threads);
    if (refresh_init(&app->cfg, &app->keys) != 0 || redis_follow_start(&app->cfg) != 0 ||
        outbox_start(&app->cfg) != 0) {
        fprintf(stderr, "fbconnect: cannot start the token store threads\n");
        return 1;
    }
    struct server_app sa = fbconnect_server_app;
    sa.app = app;
    if (server_start(fd, app->cfg.threads, &sa, err, sizeof err) != 0) {
        fprintf(stderr, "fbconnect: %s\n", err);
        return 1;
    }
    log_msg(LOG_INFO, "fbconnect %s listening on %s with %u threads", FBCONNECT_VERSION,
            app->cfg.listen, app->cfg.threads);

    for (;;) {
        int sig = 0;
        if (sigwait(&set, &sig) != 0)
            continue;
        if (sig == SIGHUP) {
            log_msg(LOG_INFO, "SIGHUP ignored: logs go to stderr, configuration is read at start");
            continue;
        }
        break;
    }
    int deadline_ms = (int)(config_request_bound_ms(&app->cfg) + 1000); /* every request's bound */
    log_msg(LOG_INFO, "stopping: no new connections, finishing requests in flight (up to %d ms)",
            deadline_ms);
    unsigned left = server_stop(deadline_ms);
    if (own_path) {
        struct stat st;
        if (stat(app->cfg.listen + 5, &st) == 0 && st.st_ino == own_st.st_ino &&
            st.st_dev == own_st.st_dev)
            unlink(app->cfg.listen + 5);
    }
    if (left) {
        /* Workers still run and use the configuration and keys: leave without freeing. */
        log_msg(LOG_WARN, "stopped with %u requests still running after the deadline", left);
        _exit(0);
    }
    outbox_stop();
    refresh_shutdown();
    redis_follow_stop();
    log_msg(LOG_INFO, "stopped");
    return 0;
}

/* `fbconnect --service COMMAND …`: the service's own settings and secrets, as its unit
 * gives them — <dir>/fbconnect.env (KEY=VALUE lines; what the environment sets already
 * wins) and the credentials in <dir>/credentials — with dir /etc/fbconnect
 * (FBCONNECT_SERVICE_DIR elsewhere).  Returns 0, or 1 with a message. */
static int use_service_settings(void)
{
    const char *dir = getenv("FBCONNECT_SERVICE_DIR");
    if (!dir || !*dir)
        dir = "/etc/fbconnect";
    char path[4096];
    snprintf(path, sizeof path, "%s/fbconnect.env", dir);
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "fbconnect --service: cannot read %s: %s%s\n", path, strerror(errno),
                errno == EACCES ? " (run it as root: sudo fbconnect --service …)" : "");
        return 1;
    }
    char line[8192];
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = '\0';
        char *k = line + strspn(line, " \t");
        char *eq = strchr(k, '=');
        if (*k == '#' || *k == ';' || !eq)
            continue;
        *eq = '\0';
        char *v = eq + 1;
        size_t vl = strlen(v);
        if (vl >= 2 && (v[0] == '"' || v[0] == '\'') && v[vl - 1] == v[0]) { /* "value" */
            v[vl - 1] = '\0';
            v++;
        }
        if (strncmp(k, "FBCONNECT_", 10) == 0)
            setenv(k, v, 0);
    }
    fclose(f);
    snprintf(path, sizeof path, "%s/credentials", dir);
    setenv("CREDENTIALS_DIRECTORY", path, 0);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 2 && strcmp(argv[1], "--service") == 0) {
        if (use_service_settings() != 0)
            return 1;
        argv[1] = argv[0];
        argv++;
        argc--;
    }
    const char *cmd = argc > 1 ? argv[1] : NULL;
    if (cmd && (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0)) {
        fputs(usage, stdout);
        return 0;
    }
    if (cmd && strcmp(cmd, "--version") == 0) {
        printf("fbconnect %s\n", FBCONNECT_VERSION);
        return 0;
    }
    harden_process();
    signal(SIGPIPE, SIG_IGN); /* a peer gone mid-write (Redis over TLS, a back end) is an error, not death */
    if (sodium_init() < 0) {
        fputs("fbconnect: libsodium failed to initialise\n", stderr);
        return 1;
    }
    if (cmd && strcmp(cmd, "keygen") == 0) {
        if (argc == 3 && strcmp(argv[2], "--events") == 0)
            return cmd_keygen_events();
        if (argc != 2) {
            fputs("usage: fbconnect keygen [--events]\n", stderr);
            return 2;
        }
        return cmd_keygen();
    }
    static const char *const app_commands[] = {"--check-config", "rekey", "connections",
                                               "disconnect", "purge", "events"};
    bool known = !cmd;
    for (size_t i = 0; cmd && i < sizeof app_commands / sizeof app_commands[0]; i++)
        known |= strcmp(cmd, app_commands[i]) == 0;
    if (!known) {
        fprintf(stderr, "fbconnect: unknown command '%s'\n%s", cmd, usage);
        return 2;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    struct app app;
    memset(&app, 0, sizeof app);
    if (load_app(&app) != 0) {
        curl_global_cleanup();
        return 1;
    }
    int rc;
    if (cmd && strcmp(cmd, "rekey") == 0) {
        bool bind_unbound = argc > 2 && strcmp(argv[2], "--bind-unbound") == 0;
        if (argc > (bind_unbound ? 3 : 2)) {
            fprintf(stderr, "fbconnect rekey: usage: fbconnect rekey [--bind-unbound]\n");
            rc = 2;
        } else {
            rc = rekey_all(&app, bind_unbound, stdout);
        }
    } else if (cmd && strcmp(cmd, "connections") == 0) {
        rc = admin_list(&app, stdout);
    } else if (cmd && (strcmp(cmd, "disconnect") == 0 || strcmp(cmd, "purge") == 0)) {
        rc = admin_remove(&app, argc - 2, argv + 2, strcmp(cmd, "disconnect") == 0, stdout);
    } else if (cmd && strcmp(cmd, "events") == 0) {
        rc = admin_events(&app, argc - 2, argv + 2, stdout);
    } else if (cmd) {
        config_print(&app.cfg, stdout);
        if (admin_check_redis(&app, stdout)) {
            puts("configuration OK");
            rc = 0;
        } else {
            rc = 1;
        }
    } else {
        rc = serve(&app);
    }
    free_app(&app);
    curl_global_cleanup();
    return rc;
}
