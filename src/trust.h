/* trust.h — one CA store per trust anchor file, shared by every curl handle that uses it.
 * libcurl loads the CA bundle into each handle's TLS context on its own (≈0.5 MB per handle
 * with the system bundle); the pool of FreshBooks handles would hold dozens of copies.
 * Here the bundle is read once and every handle's OpenSSL context takes a reference. */
#ifndef FBC_TRUST_H
#define FBC_TRUST_H

#include <curl/curl.h>

struct trust;

/* Loads ca_file (NULL: the system trust store libcurl would use).  NULL when it cannot be
 * read (the handles then load it themselves, as libcurl does).  Free with trust_free once
 * no handle uses it any more. */
struct trust *trust_load(const char *ca_file);
void trust_free(struct trust *t);

/* Makes handle c verify peers against t alone (t NULL: leaves c as libcurl sets it up).
 * Call after curl_easy_reset. */
void trust_apply(CURL *c, const struct trust *t);

#endif
