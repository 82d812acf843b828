/* httpd loads the module afresh for every configuration (startup,
 * restart, graceful restart) and unloads the old one: rv_core.c's static
 * state starts over each time, while the process, its thread-specific
 * keys and OpenSSL stay.  This loads rv_core.c built as a shared object
 * (tests/unit/rv_core_reload.so) RELOADS times, doing what the parent does
 * per load (rv_digest_init and the configuration's digests in pre_config,
 * rv_digest_term as pconf's cleanup), and checks every digest.  A pthread
 * key made per load and never deleted ran out after about 1020 loads, and
 * OpenSSL then crashed in EVP_MD_fetch (fixed in d17d994; this is the
 * quick unit-level check of it, test_rv_core_restarts the httpd one). */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <dlfcn.h>
#include <cmocka.h>

#include <apr_general.h>

#ifndef RELOAD_SO
#error "build with -DRELOAD_SO=\"/path/to/rv_core_reload.so\""
#endif

#define RELOADS 1500 /* PTHREAD_KEYS_MAX is 1024 */

typedef int (*init_fn)(void);
typedef int (*digest_fn)(const void *, apr_size_t, unsigned char *);
typedef void (*term_fn)(void);

static void test_many_reloads(void **state)
{
    /* SHA-256("abc") */
    static const unsigned char want[32] = {
        0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40,
        0xde, 0x5d, 0xae, 0x22, 0x23, 0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17,
        0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad};
    int i;

    (void)state;
    for (i = 0; i < RELOADS; i++) {
        void *so = dlopen(RELOAD_SO, RTLD_NOW | RTLD_LOCAL);
        init_fn init;
        digest_fn digest;
        term_fn term;
        unsigned char d[32];

        if (so == NULL) {
            fail_msg("load %d: %s", i, dlerror());
        }
        init = (init_fn)dlsym(so, "rv_digest_init");
        digest = (digest_fn)dlsym(so, "rv_digest");
        term = (term_fn)dlsym(so, "rv_digest_term");
        assert_non_null(init);
        assert_non_null(digest);
        assert_non_null(term);
        if (!init() || !digest("abc", 3, d)) {
            fail_msg("load %d: digest failed", i);
        }
        assert_memory_equal(d, want, sizeof(want));
        term();
        assert_int_equal(dlclose(so), 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_many_reloads),
    };
    int failed;

    apr_initialize();
    failed = cmocka_run_group_tests_name("rv_reload", tests, NULL, NULL);
    apr_terminate();
    return failed;
}
