/*
 * test_sha256.c — our SHA-256 against the FIPS 180-2 / NIST CAVS example
 * vectors, the padding edge cases around the 56- and 64-byte boundaries,
 * and the promise that any split of the input gives the same digest.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "sha256.h"

static void digest_hex(const void *data, size_t len, char hex[SHA256_HEX_SIZE])
{
    sha256_ctx ctx;
    uint8_t digest[SHA256_DIGEST_SIZE];

    sha256_init(&ctx);
    sha256_update(&ctx, data, len);
    sha256_final(&ctx, digest);
    sha256_hex(digest, hex);
}

static void assert_digest(const char *text, const char *want)
{
    char hex[SHA256_HEX_SIZE];
    digest_hex(text, strlen(text), hex);
    assert_string_equal(hex, want);
}

static void test_empty_message(void **state)
{
    (void)state;
    assert_digest("", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

static void test_abc(void **state)
{
    (void)state;
    assert_digest("abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

static void test_448_bit_message_spans_two_blocks_of_padding(void **state)
{
    (void)state;
    assert_digest("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
                  "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

static void test_896_bit_message(void **state)
{
    (void)state;
    assert_digest("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmn"
                  "hijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu",
                  "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
}

static void test_one_million_a_in_odd_chunks(void **state)
{
    (void)state;
    static char as[1000];
    static const size_t chunks[] = {1, 7, 63, 64, 65, 127, 333, 999};
    sha256_ctx ctx;
    uint8_t digest[SHA256_DIGEST_SIZE];
    char hex[SHA256_HEX_SIZE];
    size_t left = 1000000;

    memset(as, 'a', sizeof as);
    sha256_init(&ctx);
    for (size_t i = 0; left > 0; i++) {
        size_t n = chunks[i % (sizeof chunks / sizeof chunks[0])];
        if (n > left)
            n = left;
        sha256_update(&ctx, as, n);
        left -= n;
    }
    sha256_final(&ctx, digest);
    sha256_hex(digest, hex);
    assert_string_equal(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

/* Lengths where the padding does or does not fit in the last block. */
static void test_padding_boundaries(void **state)
{
    (void)state;
    static const struct {
        size_t len;
        const char *want;
    } cases[] = {
        {55, "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318"},
        {56, "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a"},
        {63, "7d3e74a05d7db15bce4ad9ec0658ea98e3f06eeecf16b4c6fff2da457ddc2f34"},
        {64, "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb"},
        {65, "635361c48bb9eab14198e76ea8ab7f1a41685d6ad62aa9146d301d4f17eb0ae0"},
        {119, "31eba51c313a5c08226adf18d4a359cfdfd8d2e816b13f4af952f7ea6584dcfb"},
        {120, "2f3d335432c70b580af0e8e1b3674a7c020d683aa5f73aaaedfdc55af904c21c"},
    };
    char as[128];
    char hex[SHA256_HEX_SIZE];

    memset(as, 'a', sizeof as);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        digest_hex(as, cases[i].len, hex);
        assert_string_equal(hex, cases[i].want);
    }
}

static void test_every_two_way_split_equals_one_shot(void **state)
{
    (void)state;
    uint8_t msg[1024];
    uint8_t whole[SHA256_DIGEST_SIZE];
    char hex[SHA256_HEX_SIZE];
    sha256_ctx ctx;

    for (size_t i = 0; i < sizeof msg; i++)
        msg[i] = (uint8_t)i;
    digest_hex(msg, sizeof msg, hex);
    assert_string_equal(hex, "785b0751fc2c53dc14a4ce3d800e69ef9ce1009eb327ccf458afe09c242c26c9");
    sha256_init(&ctx);
    sha256_update(&ctx, msg, sizeof msg);
    sha256_final(&ctx, whole);

    for (size_t cut = 0; cut <= 200; cut++) {
        uint8_t split[SHA256_DIGEST_SIZE];
        sha256_init(&ctx);
        sha256_update(&ctx, msg, cut);
        sha256_update(&ctx, msg + cut, sizeof msg - cut);
        sha256_final(&ctx, split);
        assert_memory_equal(split, whole, sizeof whole);
    }
}

static void test_byte_at_a_time_equals_one_shot(void **state)
{
    (void)state;
    const char *text = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    sha256_ctx ctx;
    uint8_t digest[SHA256_DIGEST_SIZE];
    char hex[SHA256_HEX_SIZE];

    sha256_init(&ctx);
    for (size_t i = 0; text[i] != '\0'; i++)
        sha256_update(&ctx, text + i, 1);
    sha256_update(&ctx, text, 0);
    sha256_final(&ctx, digest);
    sha256_hex(digest, hex);
    assert_string_equal(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

static void test_hex_is_lower_case_and_terminated(void **state)
{
    (void)state;
    uint8_t digest[SHA256_DIGEST_SIZE];
    char hex[SHA256_HEX_SIZE];

    memset(hex, 'x', sizeof hex);
    for (int i = 0; i < SHA256_DIGEST_SIZE; i++)
        digest[i] = (uint8_t)(i * 8 + 0x0f);
    sha256_hex(digest, hex);
    assert_int_equal(strlen(hex), 64);
    assert_memory_equal(hex, "0f171f272f373f47", 16);
    assert_string_equal(hex + 60, "ff07"); /* 31 * 8 + 15 wraps to 0x07 */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty_message),
        cmocka_unit_test(test_abc),
        cmocka_unit_test(test_448_bit_message_spans_two_blocks_of_padding),
        cmocka_unit_test(test_896_bit_message),
        cmocka_unit_test(test_one_million_a_in_odd_chunks),
        cmocka_unit_test(test_padding_boundaries),
        cmocka_unit_test(test_every_two_way_split_equals_one_shot),
        cmocka_unit_test(test_byte_at_a_time_equals_one_shot),
        cmocka_unit_test(test_hex_is_lower_case_and_terminated),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
