/* test_wire.c — the socket under the Redis link against servers in this process: replies
 * trickling in a byte at a time, a reply split across many TLS records, a server that
 * never answers (the timeout holds), one that closes, a refused TLS peer, and TLS session
 * resumption on the second connect. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <hiredis.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clock.h"
#include "config.h"
#include "wire.h"

/* What the server thread does with each connection. */
enum script { TRICKLE, SPLIT_TLS, SILENT, CLOSE_AT_ONCE };

struct server {
    int listen_fd, port;
    enum script script;
    SSL_CTX *tls; /* NULL: plain */
    int connections;
    pthread_t thread;
};

static void drain_command(int fd, SSL *ssl)
{
    char buf[4096];
    if (ssl)
        SSL_read(ssl, buf, sizeof buf);
    else
        if (read(fd, buf, sizeof buf) < 0)
            return;
}

static void *serve(void *arg)
{
    struct server *sv = arg;
    for (int i = 0; i < sv->connections; i++) {
        int fd = accept(sv->listen_fd, NULL, NULL);
        if (fd < 0)
            return NULL;
        SSL *ssl = NULL;
        if (sv->script == CLOSE_AT_ONCE) { /* before any handshake: a restart, maxclients */
            close(fd);
            continue;
        }
        if (sv->tls) {
            ssl = SSL_new(sv->tls);
            SSL_set_fd(ssl, fd);
            if (SSL_accept(ssl) != 1) {
                SSL_free(ssl);
                close(fd);
                continue;
            }
        }
        drain_command(fd, ssl);
        if (sv->script == TRICKLE) {
            const char *reply = "$5\r\nhello\r\n";
            for (const char *p = reply; *p; p++) {
                if (write(fd, p, 1) != 1)
                    break;
                usleep(2000);
            }
        } else if (sv->script == SPLIT_TLS) {
            /* a 100 KB bulk string, written in 1000-byte TLS records */
            static char big[100 * 1024 + 32];
            int n = snprintf(big, sizeof big, "$%d\r\n", 100 * 1024);
            memset(big + n, 'z', 100 * 1024);
            memcpy(big + n + 100 * 1024, "\r\n", 2);
            int total = n + 100 * 1024 + 2;
            for (int off = 0; off < total; off += 1000)
                SSL_write(ssl, big + off, total - off < 1000 ? total - off : 1000);
        } else if (sv->script == SILENT) {
            usleep(600 * 1000);
        }
        if (ssl) {
            SSL_shutdown(ssl);
            SSL_free(ssl);
        }
        close(fd);
    }
    return NULL;
}

static void server_start(struct server *sv, enum script script, SSL_CTX *tls, int connections)
{
    sv->script = script;
    sv->tls = tls;
    sv->connections = connections;
    sv->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(sv->listen_fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t l = sizeof a;
    getsockname(sv->listen_fd, (struct sockaddr *)&a, &l);
    sv->port = ntohs(a.sin_port);
    listen(sv->listen_fd, 8);
    pthread_create(&sv->thread, NULL, serve, sv);
}

static void server_stop(struct server *sv)
{
    pthread_join(sv->thread, NULL);
    close(sv->listen_fd);
}

static struct redisReply *get(struct wire *w, long ms)
{
    return wire_commandv(w, ms, 2, "GET", "k");
}

static void test_plain_reply_a_byte_at_a_time(void **state)
{
    (void)state;
    struct server sv;
    server_start(&sv, TRICKLE, NULL, 1);
    struct wire_target t = {.host = "127.0.0.1", .port = sv.port};
    enum wire_failure why;
    char msg[256];
    struct wire *w = wire_connect(&t, 1000, &why, msg, sizeof msg);
    assert_non_null(w);
    redisReply *r = get(w, 2000);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    assert_string_equal(r->str, "hello");
    freeReplyObject(r);
    wire_close(w);
    server_stop(&sv);
}

static void test_timeout_and_close(void **state)
{
    (void)state;
    struct server sv;
    server_start(&sv, SILENT, NULL, 2);
    struct wire_target t = {.host = "127.0.0.1", .port = sv.port};
    enum wire_failure why;
    char msg[256];
    struct wire *w = wire_connect(&t, 1000, &why, msg, sizeof msg);
    assert_non_null(w);
    int64_t t0 = clock_mono_us();
    assert_null(get(w, 150));
    int64_t took = clock_mono_us() - t0;
    assert_int_equal(wire_failure(w), WIRE_TIMEOUT);
    assert_true(took >= 140000 && took < 400000);
    assert_null(get(w, 150)); /* unusable once failed */
    wire_close(w);
    /* the server closes after its silence: the next command sees it closed */
    w = wire_connect(&t, 1000, &why, msg, sizeof msg);
    assert_non_null(w);
    assert_null(get(w, 2000));
    assert_int_equal(wire_failure(w), WIRE_UNREACHABLE);
    wire_close(w);
    server_stop(&sv);
    /* nobody listening */
    assert_null(wire_connect(&t, 500, &why, msg, sizeof msg));
    assert_int_equal(why, WIRE_UNREACHABLE);
    assert_non_null(strstr(msg, "127.0.0.1"));
}

/* A self-signed certificate for 127.0.0.1 (and the name "redis.test"), written as PEM to
 * path; the key and certificate go into ctx. */
static SSL_CTX *tls_server(const char *pem_path)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), -60);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, key);
    X509_NAME *n = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)"wire test", -1, -1, 0);
    X509_set_issuer_name(x, n);
    X509V3_CTX v3;
    X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
    X509_EXTENSION *san = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, "IP:127.0.0.1,DNS:redis.test");
    X509_add_ext(x, san, -1);
    X509_EXTENSION_free(san);
    X509_EXTENSION *bc = X509V3_EXT_conf_nid(NULL, &v3, NID_basic_constraints, "critical,CA:TRUE");
    X509_add_ext(x, bc, -1);
    X509_EXTENSION_free(bc);
    X509_sign(x, key, EVP_sha256());
    FILE *f = fopen(pem_path, "w");
    PEM_write_X509(f, x);
    fclose(f);
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    SSL_CTX_use_certificate(ctx, x);
    SSL_CTX_use_PrivateKey(ctx, key);
    X509_free(x);
    EVP_PKEY_free(key);
    return ctx;
}

static void test_tls_reply_split_across_records_and_resumption(void **state)
{
    (void)state;
    char pem[] = "/tmp/wire-test-ca-XXXXXX";
    int fd = mkstemp(pem);
    close(fd);
    SSL_CTX *server_ctx = tls_server(pem);
    struct config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.redis_tls = true;
    cfg.redis_ca_file = pem;
    char err[256];
    assert_int_equal(wire_tls_init(&cfg, err, sizeof err), 0);

    struct server sv;
    server_start(&sv, SPLIT_TLS, server_ctx, 3);
    struct wire_target t = {.host = "127.0.0.1", .port = sv.port, .tls = true};
    enum wire_failure why;
    char msg[256];
    struct wire *w = wire_connect(&t, 2000, &why, msg, sizeof msg);
    assert_non_null(w);
    assert_false(wire_resumed(w));
    redisReply *r = get(w, 5000);
    assert_non_null(r);
    assert_int_equal((int)r->len, 100 * 1024);
    assert_int_equal(r->str[0], 'z');
    assert_int_equal(r->str[r->len - 1], 'z');
    freeReplyObject(r);
    wire_close(w);
    /* the second connection resumes the first's session */
    w = wire_connect(&t, 2000, &why, msg, sizeof msg);
    assert_non_null(w);
    r = get(w, 5000);
    assert_non_null(r);
    freeReplyObject(r);
    assert_true(wire_resumed(w));
    wire_close(w);
    /* a name the certificate does not carry is refused, saying which */
    struct wire_target wrong = {.host = "127.0.0.1", .port = sv.port, .tls = true,
                                .server_name = "wrong.example"};
    assert_null(wire_connect(&wrong, 2000, &why, msg, sizeof msg));
    assert_int_equal(why, WIRE_TLS);
    assert_non_null(strstr(msg, "wrong.example"));
    server_stop(&sv);
    wire_tls_free();
    SSL_CTX_free(server_ctx);
    unlink(pem);
}

/* A peer that drops the connection mid-handshake is network trouble, not certificate
 * trouble (no "fix your certificates" for a Redis restarting or at maxclients). */
static void test_tls_dropped_during_handshake_is_unreachable(void **state)
{
    (void)state;
    struct config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.redis_tls = true;
    char err[256];
    assert_int_equal(wire_tls_init(&cfg, err, sizeof err), 0);
    struct server sv;
    server_start(&sv, CLOSE_AT_ONCE, NULL, 1);
    struct wire_target t = {.host = "127.0.0.1", .port = sv.port, .tls = true};
    enum wire_failure why;
    char msg[256];
    assert_null(wire_connect(&t, 2000, &why, msg, sizeof msg));
    assert_int_equal(why, WIRE_UNREACHABLE);
    server_stop(&sv);
    wire_tls_free();
}

static void test_tls_untrusted(void **state)
{
    (void)state;
    char pem[] = "/tmp/wire-test-ca-XXXXXX", other[] = "/tmp/wire-test-other-XXXXXX";
    close(mkstemp(pem));
    close(mkstemp(other));
    SSL_CTX *server_ctx = tls_server(pem);
    SSL_CTX *unused = tls_server(other); /* a CA that did not sign the server's */
    struct config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.redis_tls = true;
    cfg.redis_ca_file = other;
    char err[256];
    assert_int_equal(wire_tls_init(&cfg, err, sizeof err), 0);
    struct server sv;
    server_start(&sv, SPLIT_TLS, server_ctx, 1);
    struct wire_target t = {.host = "127.0.0.1", .port = sv.port, .tls = true};
    enum wire_failure why;
    char msg[256];
    assert_null(wire_connect(&t, 2000, &why, msg, sizeof msg));
    assert_int_equal(why, WIRE_TLS);
    assert_non_null(strstr(msg, "does not verify"));
    server_stop(&sv);
    wire_tls_free();
    SSL_CTX_free(server_ctx);
    SSL_CTX_free(unused);
    unlink(pem);
    unlink(other);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN); /* as fbconnect does: a peer gone mid-write is an error */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_reply_a_byte_at_a_time),
        cmocka_unit_test(test_timeout_and_close),
        cmocka_unit_test(test_tls_reply_split_across_records_and_resumption),
        cmocka_unit_test(test_tls_untrusted),
        cmocka_unit_test(test_tls_dropped_during_handshake_is_unreachable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
