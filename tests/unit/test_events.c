/* test_events.c — connection events as data: the Standard Webhooks signature against the
 * specification's published vector, the retry schedule, the body a recorded entry makes
 * and the session tag. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>
#include <sodium.h>

#include "events.h"
#include "ids.h"

static int group_setup(void **state)
{
    (void)state;
    return sodium_init() < 0 ? -1 : 0;
}

/* The specification's example: secret whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw, id
 * msg_p5jXN8AQM9LWM0D4loKWxJek, timestamp 1614265330, body {"test": 2432232314}. */
static void test_signature_vector(void **state)
{
    (void)state;
    uint8_t key[64];
    size_t n = 0;
    assert_int_equal(sodium_base642bin(key, sizeof key, "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", 32, NULL,
                                       &n, NULL, sodium_base64_VARIANT_ORIGINAL),
                     0);
    char sig[EVENT_SIGNATURE_MAX];
    const char *body = "{\"test\": 2432232314}";
    event_sign(key, n, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body, strlen(body), sig);
    assert_string_equal(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    /* a different timestamp, id or body signs differently */
    char other[EVENT_SIGNATURE_MAX];
    event_sign(key, n, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265331, body, strlen(body), other);
    assert_string_not_equal(sig, other);
    event_sign(key, n, "msg_p5jXN8AQM9LWM0D4loKWxJel", 1614265330, body, strlen(body), other);
    assert_string_not_equal(sig, other);
    event_sign(key, n, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body, strlen(body) - 1, other);
    assert_string_not_equal(sig, other);
}

static void test_retry_schedule(void **state)
{
    (void)state;
    /* 1 s doubling to 10 minutes, without jitter */
    static const int64_t want[] = {1000, 2000, 4000, 8000, 16000, 32000, 64000, 128000, 256000,
                                   512000, 600000, 600000};
    for (unsigned i = 0; i < sizeof want / sizeof want[0]; i++)
        assert_int_equal(event_retry_delay_ms(i + 1, 1.0), want[i]);
    assert_int_equal(event_retry_delay_ms(1000, 1.0), 600000);
    /* ±25 %, never more */
    assert_int_equal(event_retry_delay_ms(1, 0.75), 750);
    assert_int_equal(event_retry_delay_ms(1, 1.25), 1250);
    assert_int_equal(event_retry_delay_ms(3, 0.1), 3000);
    assert_int_equal(event_retry_delay_ms(3, 9.0), 5000);
    assert_int_equal(event_retry_delay_ms(11, 1.25), 750000);
}

static struct business biz[2] = {
    {.id = 77, .uuid = "u-77", .name = "Acme", .account_id = "AbC1", .role = "owner"},
    {.id = 78, .uuid = "u-78", .name = "Beta \"B\"", .account_id = "", .role = "manager"},
};
static struct identity ident = {.user_id = 4242, .email = "a@example.com", .businesses = biz,
                                .n_businesses = 2};

/* Parses a body; the previous one parsed is freed (parse(NULL) frees the last). */
static json_t *parse(const char *text)
{
    static json_t *last;
    json_decref(last);
    last = NULL;
    if (!text)
        return NULL;
    json_error_t err;
    last = json_loads(text, 0, &err);
    assert_non_null(last);
    return last;
}

static void test_body_one_owner(void **state)
{
    (void)state;
    struct event_change ch = {.type = EVENT_CONNECTED, .ident = &ident, .business = &biz[0]};
    char *data = event_data(&ch);
    char *body = event_body(event_type_name(ch.type), 1764644645123LL, "u:alice", 3, "", data);
    assert_non_null(body);
    json_t *j = parse(body);
    assert_string_equal(json_string_value(json_object_get(j, "type")), "connection.connected");
    assert_string_equal(json_string_value(json_object_get(j, "timestamp")), "2025-12-02T03:04:05.123Z");
    json_t *d = json_object_get(j, "data");
    assert_string_equal(json_string_value(json_object_get(json_object_get(d, "owner"), "site_user")), "alice");
    assert_true(json_is_null(json_object_get(json_object_get(d, "owner"), "session")));
    assert_int_equal(json_integer_value(json_object_get(d, "sequence")), 3);
    assert_int_equal(json_integer_value(json_object_get(d, "freshbooks_user_id")), 4242);
    assert_string_equal(json_string_value(json_object_get(d, "email")), "a@example.com");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(d, "business"), "id")), 77);
    assert_string_equal(json_string_value(json_object_get(json_object_get(d, "business"), "account_id")), "AbC1");
    /* the same entry makes the same bytes */
    char *again = event_body(event_type_name(ch.type), 1764644645123LL, "u:alice", 3, "", data);
    assert_string_equal(body, again);
    /* the documented order: type, timestamp, data{owner, sequence, freshbooks_user_id, email, business} */
    assert_non_null(strstr(body, "{\"type\":\"connection.connected\",\"timestamp\":"));
    assert_non_null(strstr(body, "\"data\":{\"owner\":{\"site_user\":\"alice\",\"session\":null},"
                                 "\"sequence\":3,\"freshbooks_user_id\":4242,\"email\":\"a@example.com\","
                                 "\"business\":{"));
    parse(NULL);
    free(again);
    free(body);
    free(data);
}

static void test_body_every_owner(void **state)
{
    (void)state;
    struct event_change ch = {.type = EVENT_DISCONNECTED, .ident = &ident, .every_owner = true,
                              .by = "operator", .revoked = false};
    char *data = event_data(&ch);
    assert_null(strstr(data, "\"business\":")); /* each owner's is picked from "businesses" */
    char *body = event_body(event_type_name(ch.type), 0, "s:0a1b2c3d", 1, "78", data);
    json_t *d = json_object_get(parse(body), "data");
    assert_string_equal(json_string_value(json_object_get(json_object_get(d, "owner"), "session")), "0a1b2c3d");
    assert_true(json_is_null(json_object_get(json_object_get(d, "owner"), "site_user")));
    assert_string_equal(json_string_value(json_object_get(json_object_get(d, "business"), "name")), "Beta \"B\"");
    assert_string_equal(json_string_value(json_object_get(d, "by")), "operator");
    assert_true(json_is_false(json_object_get(d, "revoked")));
    assert_null(json_object_get(d, "businesses"));
    free(body);
    /* an owner that chose none, or a business no longer listed */
    body = event_body(event_type_name(ch.type), 0, "s:0a1b2c3d", 1, "", data);
    assert_true(json_is_null(json_object_get(json_object_get(parse(body), "data"), "business")));
    free(body);
    body = event_body(event_type_name(ch.type), 0, "s:0a1b2c3d", 1, "99", data);
    assert_true(json_is_null(json_object_get(json_object_get(parse(body), "data"), "business")));
    free(body);
    free(data);
    /* reconnect_required carries the reason; an unknown identity is null */
    struct event_change rr = {.type = EVENT_RECONNECT_REQUIRED, .every_owner = true,
                              .reason = RECONNECT_REFRESH_REFUSED};
    data = event_data(&rr);
    body = event_body(event_type_name(rr.type), 0, "u:bob", 2, "", data);
    d = json_object_get(parse(body), "data");
    assert_string_equal(json_string_value(json_object_get(d, "reason")), "refresh_refused");
    assert_true(json_is_null(json_object_get(d, "freshbooks_user_id")));
    assert_true(json_is_null(json_object_get(d, "email")));
    free(body);
    free(data);
    parse(NULL);
    /* malformed entries make no body */
    assert_null(event_body("connection.connected", 0, "x:1", 1, "", "{}"));
    assert_null(event_body("connection.connected", 0, "u:a", 1, "", "not json"));
    assert_null(event_body(NULL, 0, "u:a", 1, "", "{}"));
}

static void test_session_tag(void **state)
{
    (void)state;
    uint8_t raw[NAME_BYTES] = {0xde, 0xad, 0xbe, 0xef, 1, 2, 3};
    char owner[2 + NAME_TEXT_LEN + 1] = "s:";
    b64url_encode(raw, sizeof raw, owner + 2);
    char tag[9];
    event_session_tag(owner, tag);
    assert_string_equal(tag, "deadbeef");
    event_session_tag("u:alice", tag);
    assert_string_equal(tag, "");
    assert_string_equal(event_type_name(EVENT_BUSINESS_CHOSEN), "connection.business_chosen");
    assert_null(event_type_name(EVENT_NONE));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_signature_vector), cmocka_unit_test(test_retry_schedule),
        cmocka_unit_test(test_body_one_owner),   cmocka_unit_test(test_body_every_owner),
        cmocka_unit_test(test_session_tag),
    };
    return cmocka_run_group_tests(tests, group_setup, NULL);
}
