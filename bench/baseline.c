/* baseline — the least a FastCGI program can do for the two routes make bench compares
 * fbconnect with, written the usual way with libfcgi (a pool of threads, each in
 * FCGX_Accept_r):
 *   /connect  32 random bytes (libsodium) as hex in a small HTML page
 *   /redis    the same, after one Redis GET on the thread's own connection
 * usage: baseline unix:/path.sock|HOST:PORT THREADS [REDIS_PORT] */
#include <fcgiapp.h>
#include <hiredis.h>
#include <pthread.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int listen_fd;
static int redis_port;

static void *serve(void *unused)
{
    (void)unused;
    FCGX_Request req;
    FCGX_InitRequest(&req, listen_fd, 0);
    redisContext *rc = NULL;
    char page[512];
    while (FCGX_Accept_r(&req) >= 0) {
        const char *uri = FCGX_GetParam("DOCUMENT_URI", req.envp);
        if (uri && strstr(uri, "redis") && redis_port) {
            if (!rc || rc->err) {
                if (rc)
                    redisFree(rc);
                rc = redisConnect("127.0.0.1", redis_port);
            }
            redisReply *r = rc && !rc->err ? redisCommand(rc, "GET bench:key") : NULL;
            if (r)
                freeReplyObject(r);
        }
        unsigned char rnd[32];
        char hex[65];
        randombytes_buf(rnd, sizeof rnd);
        sodium_bin2hex(hex, sizeof hex, rnd, sizeof rnd);
        int n = snprintf(page, sizeof page,
                         "Status: 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n"
                         "Cache-Control: no-store\r\n\r\n"
                         "<!doctype html><title>Connect</title><p><a href=\"/authorize?state=%s\">"
                         "Connect</a></p>\n", hex);
        FCGX_PutStr(page, n, req.out);
        FCGX_Finish_r(&req);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 3 || sodium_init() < 0) {
        fprintf(stderr, "usage: baseline unix:/path.sock|:PORT THREADS [REDIS_PORT]\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    FCGX_Init();
    const char *spec = strncmp(argv[1], "unix:", 5) == 0 ? argv[1] + 5 : argv[1];
    listen_fd = FCGX_OpenSocket(spec, 1024);
    if (listen_fd < 0) {
        perror("FCGX_OpenSocket");
        return 1;
    }
    int threads = atoi(argv[2]);
    redis_port = argc > 3 ? atoi(argv[3]) : 0;
    pthread_t *t = calloc((size_t)threads, sizeof *t);
    for (int i = 0; i < threads; i++)
        pthread_create(&t[i], NULL, serve, NULL);
    for (int i = 0; i < threads; i++)
        pthread_join(t[i], NULL);
    return 0;
}
