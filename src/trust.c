#include "trust.h"

#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdlib.h>

struct trust {
    X509_STORE *store;
};

struct trust *trust_load(const char *ca_file)
{
    char *system_bundle = NULL;
    if (!ca_file) { /* the bundle libcurl was built to use */
        CURL *c = curl_easy_init();
        if (c && curl_easy_getinfo(c, CURLINFO_CAINFO, &system_bundle) == CURLE_OK && system_bundle)
            ca_file = system_bundle;
        struct trust *t = NULL;
        if (ca_file)
            t = trust_load(ca_file);
        curl_easy_cleanup(c);
        return t;
    }
    X509_STORE *store = X509_STORE_new();
    if (!store || X509_STORE_load_file(store, ca_file) != 1) {
        X509_STORE_free(store);
        return NULL;
    }
    struct trust *t = malloc(sizeof *t);
    if (!t)
        abort();
    t->store = store;
    return t;
}

void trust_free(struct trust *t)
{
    if (!t)
        return;
    X509_STORE_free(t->store);
    free(t);
}

/* Right before the handshake: the context verifies against the shared store. */
static CURLcode use_store(CURL *c, void *ssl_ctx, void *arg)
{
    (void)c;
    const struct trust *t = arg;
    SSL_CTX_set1_cert_store((SSL_CTX *)ssl_ctx, t->store);
    return CURLE_OK;
}

void trust_apply(CURL *c, const struct trust *t)
{
    if (!t)
        return;
    /* No bundle or directory of libcurl's own: nothing loaded per handle. */
    curl_easy_setopt(c, CURLOPT_CAINFO, NULL);
    curl_easy_setopt(c, CURLOPT_CAPATH, NULL);
    curl_easy_setopt(c, CURLOPT_SSL_CTX_FUNCTION, use_store);
    curl_easy_setopt(c, CURLOPT_SSL_CTX_DATA, (void *)t);
}
