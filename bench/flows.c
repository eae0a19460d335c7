/* flows — drives complete connect flows through nginx, as a browser would, from N threads
 * for a while: GET /connect → POST the sandbox's authorize form → GET /callback (timed) →
 * GET /status.  Prints flows/s and the callback's latency percentiles as JSON.
 * usage: flows SITE_URL THREADS SECONDS   (SITE_URL like http://127.0.0.1:8080/) */
#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *site;
static double seconds;

struct body {
    char *data;
    size_t len;
};

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    struct body *b = arg;
    size_t add = size * n;
    b->data = realloc(b->data, b->len + add + 1);
    memcpy(b->data + b->len, p, add);
    b->len += add;
    b->data[b->len] = '\0';
    return add;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct result {
    double *lat;
    size_t n, cap;
    long flows, errors;
};

/* GET or POST url; returns the status, fills body and (for redirects) location. */
static long fetch(CURL *c, const char *url, const char *post, struct body *b, char *location,
                  size_t locsz)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
    curl_easy_setopt(c, CURLOPT_URL, url);
    if (post) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, post);
    } else {
        curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
    }
    if (curl_easy_perform(c) != CURLE_OK)
        return 0;
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    char *loc = NULL;
    if (location) {
        location[0] = '\0';
        if (curl_easy_getinfo(c, CURLINFO_REDIRECT_URL, &loc) == CURLE_OK && loc)
            snprintf(location, locsz, "%s", loc);
    }
    return status;
}

/* The value of `name` in an URL's query, still encoded. */
static int query_value(const char *url, const char *name, char *out, size_t outsz)
{
    char key[64];
    snprintf(key, sizeof key, "%s=", name);
    const char *p = strstr(url, key);
    while (p && p[-1] != '?' && p[-1] != '&')
        p = strstr(p + 1, key);
    if (!p)
        return -1;
    p += strlen(key);
    size_t n = strcspn(p, "&");
    if (n >= outsz)
        return -1;
    memcpy(out, p, n);
    out[n] = '\0';
    return 0;
}

static void *worker(void *arg)
{
    struct result *res = arg;
    CURL *c = curl_easy_init();
    struct body b = {0};
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_COOKIEFILE, "");
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    char url[4096], location[4096], link[4096], state[2048], client[256], redirect[1024], post[8192];
    unsigned seq = (unsigned)(size_t)pthread_self();
    double end = now() + seconds;
    while (now() < end) {
        curl_easy_setopt(c, CURLOPT_COOKIELIST, "ALL"); /* a new browser */
        snprintf(url, sizeof url, "%sconnect", site);
        if (fetch(c, url, NULL, &b, NULL, 0) != 200)
            goto bad;
        char *h = strstr(b.data, "<a class=\"button\" href=\"");
        if (!h)
            goto bad;
        h += strlen("<a class=\"button\" href=\"");
        size_t n = strcspn(h, "\"");
        size_t o = 0;
        for (size_t i = 0; i < n && o + 1 < sizeof link; i++) { /* undo &amp; */
            if (strncmp(h + i, "&amp;", 5) == 0) {
                link[o++] = '&';
                i += 4;
            } else {
                link[o++] = h[i];
            }
        }
        link[o] = '\0';
        if (query_value(link, "state", state, sizeof state) || query_value(link, "client_id", client, sizeof client) ||
            query_value(link, "redirect_uri", redirect, sizeof redirect))
            goto bad;
        char *q = strchr(link, '?');
        *q = '\0';
        snprintf(post, sizeof post, "client_id=%s&redirect_uri=%s&state=%s&scope=&email=bench-%u-%ld%%40example.com&action=authorize",
                 client, redirect, state, seq, res->flows);
        if (fetch(c, link, post, &b, location, sizeof location) != 302)
            goto bad;
        double t0 = now();
        long st = fetch(c, location, NULL, &b, NULL, 0);
        double dt = now() - t0;
        if (st != 303)
            goto bad;
        snprintf(url, sizeof url, "%sstatus", site);
        if (fetch(c, url, NULL, &b, NULL, 0) != 200 || !strstr(b.data, "\"connected\":true"))
            goto bad;
        if (res->n == res->cap) {
            res->cap = res->cap ? res->cap * 2 : 1024;
            res->lat = realloc(res->lat, res->cap * sizeof *res->lat);
        }
        res->lat[res->n++] = dt;
        res->flows++;
        continue;
    bad:
        res->errors++;
    }
    free(b.data);
    curl_easy_cleanup(c);
    return NULL;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: flows SITE_URL THREADS SECONDS\n");
        return 2;
    }
    site = argv[1];
    int threads = atoi(argv[2]);
    seconds = atof(argv[3]);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    pthread_t *t = calloc((size_t)threads, sizeof *t);
    struct result *r = calloc((size_t)threads, sizeof *r);
    double t0 = now();
    for (int i = 0; i < threads; i++)
        pthread_create(&t[i], NULL, worker, &r[i]);
    long flows = 0, errors = 0;
    size_t n = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(t[i], NULL);
        flows += r[i].flows;
        errors += r[i].errors;
        n += r[i].n;
    }
    double elapsed = now() - t0;
    double *all = malloc((n ? n : 1) * sizeof *all);
    size_t k = 0;
    for (int i = 0; i < threads; i++)
        for (size_t j = 0; j < r[i].n; j++)
            all[k++] = r[i].lat[j];
    qsort(all, n, sizeof *all, cmp);
    double p50 = n ? all[n / 2] : 0, p99 = n ? all[(size_t)((double)n * 0.99)] : 0;
    printf("{\"flows\": %ld, \"errors\": %ld, \"seconds\": %.2f, \"flows_per_s\": %.1f, "
           "\"callback_p50_ms\": %.3f, \"callback_p99_ms\": %.3f}\n",
           flows, errors, elapsed, (double)flows / elapsed, p50 * 1000, p99 * 1000);
    return errors && !flows ? 1 : 0;
}
