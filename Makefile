# mod_redox_verify: build with apxs, test against Debian's apache2.
#
#   make          build .libs/mod_redox_verify.so
#   make run      install missing Debian packages, build, start a demo Apache
#   make test     install missing Debian packages, build, run every test
#   make rules    promtool check rules and the alert rules' unit tests
#   make install  apxs -i plus the a2enmod files, the man pages and
#                 redox-verify-probe
#                 (DESTDIR is honoured; make uninstall removes them)
#   make man      the man pages redox_verify(5), from docs/mod_redox_verify.md,
#                 and redox-verify-probe(1), from docs/redox-verify-probe.md
#   make deb      the Debian package, in build/deb/
#   make bench    install missing Debian packages, build, run the benchmarks
#                 (QUICK=1 or make bench-quick: a short smoke run for CI)
#   make asan     unit + integration tests against an ASan+UBSan build
#   make lint     gcc -Wall -Wextra -Werror, cppcheck, clang-format, and
#                 pyflakes on redox-verify-probe
#   make fuzz     each libFuzzer harness for FUZZ_SECONDS (default 60)
#   make load     LOAD_SECONDS (default 60) of wrk load, graceful restarts
#                 and a token rotation against the built module
#   make load-asan  the same, shorter, against the ASan+UBSan build
#   make fresh-test the README's two commands (make test, make run and its
#                 curl lines) on the committed HEAD in a brand-new Debian 12
#                 root made by debootstrap, in a chroot (as root)

APXS      ?= $(shell command -v apxs2 || command -v apxs || echo apxs)
PYTHON    ?= /usr/bin/python3
CC        ?= cc
LIBEXECDIR = $(shell $(APXS) -q LIBEXECDIR 2>/dev/null)
SYSCONFDIR = $(shell $(APXS) -q SYSCONFDIR 2>/dev/null)
MODS_AVAILABLE = $(SYSCONFDIR)/mods-available
# Without a package, the man page goes where local additions go.
MANDIR    ?= /usr/local/share/man
BINDIR    ?= /usr/local/bin
VERSION    = $(shell sed -n '1s/^[^(]*(\([^)]*\)).*/\1/p' debian/changelog)

PKGS      = openssl jansson
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null || echo -lssl -lcrypto -ljansson)
WARN      = -Wall -Wextra
EXTRA_CFLAGS ?=
EXTRA_LDFLAGS ?=

SRCS      = mod_redox_verify.c mod_redox_verify_status.c rv_core.c \
            rv_handshake.c rv_metrics.c
HDRS      = mod_redox_verify.h rv_core.h rv_handshake.h rv_metrics.h
MODULE    = .libs/mod_redox_verify.so
MANPAGE   = build/man/redox_verify.5
PROBE     = probe/redox-verify-probe
PROBE_MAN = build/man/redox-verify-probe.1
MANPAGES  = $(MANPAGE) $(PROBE_MAN)
DEB_DIR   = build/deb

# Debian packages the build and the tests need.
DEB_BUILD = apache2 apache2-dev libssl-dev libjansson-dev pkg-config openssl python3
# The OAuth modules run beside this one in tests/integration/test_rv_oauth_*;
# prometheus (promtool, the server) and its client library check the
# metrics and the alert rules; fail2ban-regex and fail2ban-client test
# conf/fail2ban/.
DEB_TEST  = python3-pytest python3-requests libcmocka-dev curl \
            libapache2-mod-oauth2 libapache2-mod-auth-openidc \
            prometheus python3-prometheus-client fail2ban
# ... and the package build (make deb) and its tests (lintian, man).
DEB_PACKAGE = build-essential debhelper dpkg-dev apache2-ssl-dev libcmocka-dev \
              lintian man-db $(DEB_MAN)
# ... and the man pages (make man, also part of make deb and make install).
DEB_MAN   = go-md2man
# ... and the benchmarks (make bench).
# binutils: addr2line, for the native phase's per-function figures.
DEB_BENCH = wrk valgrind util-linux gcc libc6-dev libapr1-dev libssl-dev binutils

.PHONY: all deps deps-build deps-deb deps-bench run test unit integration rules \
        install-test install uninstall man deb bench bench-quick format clean \
        deps-asan asan asan-build deps-lint lint deps-fuzz fuzz fuzz-build \
        deps-load load load-asan fresh-test

all: $(MODULE)

$(MODULE): $(SRCS) $(HDRS)
	$(APXS) -c -n redox_verify -o mod_redox_verify.la \
	    $(addprefix -Wc$(,),$(WARN) $(PKG_CFLAGS) $(EXTRA_CFLAGS)) \
	    $(addprefix -Wl$(,),$(EXTRA_LDFLAGS)) \
	    $(SRCS) $(PKG_LIBS)

, := ,

# Installs only what is missing, so it is quick on a prepared machine.
deps-build:
	@tools/ensure-debs --current $(DEB_BUILD)

deps-deb: deps-build
	@tools/ensure-debs $(DEB_PACKAGE)

deps: deps-build deps-deb
	@tools/ensure-debs $(DEB_TEST)

run: deps-build
	@$(MAKE) --no-print-directory all
	@demo/run

test: deps
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory unit
	@$(MAKE) --no-print-directory rules
	@$(MAKE) --no-print-directory integration
	@$(MAKE) --no-print-directory install-test

UNIT_TESTS = tests/unit/test_rv_core tests/unit/test_rv_handshake \
             tests/unit/test_rv_metrics tests/unit/test_rv_reload

unit: $(UNIT_TESTS)
	@for t in $(UNIT_TESTS); do $$t || exit 1; done

tests/unit/test_%: tests/unit/test_%.c %.c rv_core.c $(HDRS)
	$(CC) $(WARN) -g -O1 -I. $$(pkg-config --cflags apr-1 $(PKGS) cmocka) \
	    $(EXTRA_CFLAGS) -o $@ $< $(sort $*.c rv_core.c) \
	    $$(pkg-config --libs apr-1 $(PKGS) cmocka) $(EXTRA_LDFLAGS)

# rv_core.c as a shared object that test_rv_reload loads and unloads the
# way httpd reloads the module.
RELOAD_SO = tests/unit/rv_core_reload.so

$(RELOAD_SO): rv_core.c rv_core.h
	$(CC) $(WARN) -g -O1 -shared -fPIC -I. \
	    $$(pkg-config --cflags apr-1 $(PKGS)) $(EXTRA_CFLAGS) -o $@ rv_core.c \
	    $$(pkg-config --libs apr-1 $(PKGS)) $(EXTRA_LDFLAGS)

tests/unit/test_rv_reload: tests/unit/test_rv_reload.c $(RELOAD_SO)
	$(CC) $(WARN) -g -O1 -DRELOAD_SO='"$(CURDIR)/$(RELOAD_SO)"' \
	    $$(pkg-config --cflags apr-1 cmocka) $(EXTRA_CFLAGS) -o $@ $< \
	    -ldl $$(pkg-config --libs apr-1 cmocka) $(EXTRA_LDFLAGS)

integration: $(MODULE)
	$(PYTHON) -m pytest -q tests/integration

# The shipped Prometheus alert rules: valid for Prometheus, and each alert
# firing and not firing in the rule unit tests (Debian's prometheus).
RULES_FILE = conf/prometheus/redox_verify.rules.yml
RULES_TEST = tests/prometheus/redox_verify.rules.test.yml

rules:
	@tools/ensure-debs prometheus
	promtool check rules $(RULES_FILE)
	promtool test rules $(RULES_TEST)

deps-bench: deps-build
	@tools/ensure-debs $(DEB_BENCH)

# Loopback only; server and wrk pinned to different cores.  See
# bench/README.md.  Results in bench/out/.
bench: deps-bench
	@$(MAKE) --no-print-directory all bench/micro bench/stepcount
	$(PYTHON) bench/run.py $(if $(QUICK),--quick)

bench-quick:
	@$(MAKE) --no-print-directory bench QUICK=1

# Built like the module (-O2), so the figures match what Apache runs.
bench/micro: bench/micro.c rv_core.c $(HDRS)
	$(CC) $(WARN) -g -O2 -I. $$(pkg-config --cflags apr-1 openssl) \
	    $(EXTRA_CFLAGS) -o $@ bench/micro.c rv_core.c \
	    $$(pkg-config --libs apr-1 openssl) $(EXTRA_LDFLAGS)

# The native phase's single-step counter (bench/native.py drives it).
bench/stepcount: bench/stepcount.c
	$(CC) $(WARN) -g -O2 $(EXTRA_CFLAGS) -o $@ $< $(EXTRA_LDFLAGS)

# The package (make deb) and a2enmod, the apxs install and uninstall, and
# the reference manual against the directives the built module registers.
# Runs as root: it installs the package and starts the system's Apache.
install-test: $(MODULE) $(MANPAGE) $(PROBE_MAN)
	@$(MAKE) --no-print-directory deb
	RV_DEB_BUILT=1 $(PYTHON) -m pytest -q tests/install

install: $(MODULE) $(MANPAGE) $(PROBE_MAN)
	install -d $(DESTDIR)$(LIBEXECDIR) $(DESTDIR)$(MODS_AVAILABLE) \
	    $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(BINDIR)
	$(APXS) -i -S LIBEXECDIR=$(DESTDIR)$(LIBEXECDIR) -n redox_verify \
	    mod_redox_verify.la
	install -m 644 conf/redox_verify.load conf/redox_verify.conf \
	    $(DESTDIR)$(MODS_AVAILABLE)/
	install -m 644 $(MANPAGE) $(DESTDIR)$(MANDIR)/man5/
	install -m 755 $(PROBE) $(DESTDIR)$(BINDIR)/
	install -m 644 $(PROBE_MAN) $(DESTDIR)$(MANDIR)/man1/

uninstall:
	rm -f $(DESTDIR)$(LIBEXECDIR)/mod_redox_verify.so \
	    $(DESTDIR)$(MODS_AVAILABLE)/redox_verify.load \
	    $(DESTDIR)$(MODS_AVAILABLE)/redox_verify.conf \
	    $(DESTDIR)$(MANDIR)/man5/redox_verify.5 \
	    $(DESTDIR)$(BINDIR)/redox-verify-probe \
	    $(DESTDIR)$(MANDIR)/man1/redox-verify-probe.1

man: $(MANPAGES)

# Man pages: go-md2man renders each from its Markdown source.  A page is
# build/man/NAME.SECTION with its source as a prerequisite, and, where the
# defaults do not fit, MAN_NAMES_<page> (the names on its NAME line; the
# default is NAME) and MAN_MANUAL_<page> (the manual named in its title
# line; the default is User Commands).  The source's first line,
# "# name: what it is", becomes the NAME section; the title line (.TH:
# name, section, the changelog's date, version, manual) is written here.
# Anything go-md2man cannot render (it warns and leaves it out) fails.
# go-md2man 2.0.2 writes its .nh (no hyphenation) before .TH, which turns
# hyphenation back on: it is repeated after .TH, so that no directive name
# is split at a line end (later go-md2man releases write it there).
$(MANPAGE): docs/mod_redox_verify.md
$(PROBE_MAN): docs/redox-verify-probe.md
MAN_NAMES_redox_verify.5  = redox_verify, mod_redox_verify
MAN_MANUAL_redox_verify.5 = Apache HTTP Server modules
MAN_DATE  = $(shell date -u -d @$$(dpkg-parsechangelog -S Timestamp) +%Y-%m-%d)
GO_MD2MAN ?= go-md2man

build/man/%: debian/changelog
	@tools/ensure-debs $(DEB_MAN)
	@mkdir -p $(@D)
	{ printf '%% %s %s "%s" "mod_redox_verify %s" "%s"\n\n' \
	      '$(shell echo '$(basename $*)' | tr a-z A-Z)' '$(subst .,,$(suffix $*))' \
	      '$(MAN_DATE)' '$(VERSION)' '$(or $(MAN_MANUAL_$*),User Commands)'; \
	  sed '1s/^# [^:]*: \(.*\)/# NAME\n\n$(or $(MAN_NAMES_$*),$(basename $*)) \\- \1/' \
	      $(filter %.md,$^); } | $(GO_MD2MAN) 2> $@.err | sed '/^\.TH /a .nh' > $@.tmp
	@if [ -s $@.err ]; then cat $@.err >&2; rm -f $@.tmp $@.err; exit 1; fi
	@rm -f $@.err && mv $@.tmp $@

# dpkg-buildpackage writes next to the source tree, so it builds a copy in
# $(DEB_DIR) and the .deb lands there:
# $(DEB_DIR)/libapache2-mod-redox-verify_<version>_<arch>.deb
deb: deps-deb
	@tools/build-deb $(DEB_DIR)

# ---------------------------------------------------------------------------
# Sanitizers: the module and the unit tests built with AddressSanitizer and
# UndefinedBehaviorSanitizer into build/asan (the normal build is left
# alone), libasan preloaded into Debian's apache2.
#  - ASan/LSan reports go to files under build/asan/reports (log_path; the
#    httpd children run as www-data, so the folder is world-writable): the
#    integration suite fails a test that leaves one there.
#  - gcc's separate UBSan runtime ignores log_path: it writes to stderr,
#    which is httpd's error log (checked by the suite after every test) or
#    the captured output of apache2 -k start / -t; -fno-sanitize-recover
#    makes the process abort too.
#  - At the end the target fails if any report file or any sanitizer line
#    in the generated logs is left.
# LeakSanitizer runs in httpd too, with suppressions for httpd's own
# exit-time leftovers (tests/sanitizers/lsan-httpd.supp).
DEB_ASAN    = gcc libasan8 libubsan1
ASAN_DIR    = build/asan
ASAN_MODULE = $(ASAN_DIR)/.libs/mod_redox_verify.so
# test_rv_reload is left out: it loads an uninstrumented rv_core.c 1500
# times, which says nothing more under ASan.
ASAN_UNIT   = $(addprefix $(ASAN_DIR)/,$(filter-out test_rv_reload,\
                                        $(notdir $(UNIT_TESTS))))
ASAN_REPORTS = $(CURDIR)/$(ASAN_DIR)/reports
ASAN_PYTEST_ARGS ?=
SAN_CFLAGS  = -fsanitize=address,undefined -fno-sanitize-recover=undefined \
              -fno-omit-frame-pointer
LIBASAN     = $(shell $(CC) -print-file-name=libasan.so)
SAN_ENV     = ASAN_OPTIONS=log_path=$(ASAN_REPORTS)/asan:halt_on_error=1:detect_leaks=1:strict_string_checks=1:detect_stack_use_after_return=1:fast_unwind_on_malloc=0:malloc_context_size=30 \
              LSAN_OPTIONS=suppressions=$(CURDIR)/tests/sanitizers/lsan-httpd.supp:print_suppressions=0 \
              UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

deps-asan:
	@tools/ensure-debs $(DEB_ASAN)

# libtool puts objects next to their sources: build from links in
# build/asan so that the normal build's .libs/ is not touched.
$(ASAN_MODULE): $(SRCS) $(HDRS)
	@mkdir -p $(ASAN_DIR)
	cd $(ASAN_DIR) && for f in $(SRCS); do ln -sf $(CURDIR)/$$f .; done && \
	$(APXS) -c -n redox_verify -o mod_redox_verify.la \
	    $(addprefix -Wc$(,),-I$(CURDIR) $(WARN) $(PKG_CFLAGS) $(SAN_CFLAGS)) \
	    -Wl$(,)-fsanitize=address$(,)undefined $(SRCS) $(PKG_LIBS)

$(ASAN_DIR)/test_%: tests/unit/test_%.c %.c rv_core.c $(HDRS)
	@mkdir -p $(ASAN_DIR)
	$(CC) $(WARN) -g -O1 $(SAN_CFLAGS) -I. \
	    $$(pkg-config --cflags apr-1 $(PKGS) cmocka) -o $@ $< $(sort $*.c rv_core.c) \
	    $$(pkg-config --libs apr-1 $(PKGS) cmocka)

asan-build: $(ASAN_MODULE) $(ASAN_UNIT)

asan: deps deps-asan
	@$(MAKE) --no-print-directory asan-build
	@rm -rf $(ASAN_REPORTS) && mkdir -p $(ASAN_REPORTS) && \
	    chmod 1777 $(ASAN_REPORTS)
	@for t in $(ASAN_UNIT); do $(SAN_ENV) $$t || exit 1; done
	$(SAN_ENV) RV_MODULE=$(CURDIR)/$(ASAN_MODULE) RV_HTTPD_PRELOAD=$(LIBASAN) \
	    RV_GEN_DIR=$(CURDIR)/$(ASAN_DIR)/gen RV_SANITIZER_LOG_DIR=$(ASAN_REPORTS) \
	    $(PYTHON) -m pytest -q tests/integration $(ASAN_PYTEST_ARGS)
	@if [ -n "$$(ls -A $(ASAN_REPORTS))" ]; then \
	    echo "sanitizer reports in $(ASAN_REPORTS):"; \
	    head -n 60 $(ASAN_REPORTS)/*; exit 1; fi
	@if grep -rlE 'runtime error:|Sanitizer|AH00052' $(ASAN_DIR)/gen; then \
	    echo "sanitizer or crash lines in the logs above"; exit 1; fi
	@echo "asan: no sanitizer reports"

# ---------------------------------------------------------------------------
# Lint: the sources compiled with the module's own compiler and flags plus
# -Werror (no warning may appear), and cppcheck on the configuration that
# is built (apxs's defines, APR/httpd/system headers); any finding of
# severity warning, portability or error fails.  varFuncNullUB is APR's
# NULL-terminated apr_pstrcat() idiom (NULL is (void *)0 on glibc).
DEB_LINT   = cppcheck clang-format pyflakes3
MULTIARCH  = $(shell $(CC) -print-multiarch 2>/dev/null)
APXS_CPPFLAGS = $(shell $(APXS) -q EXTRA_CPPFLAGS 2>/dev/null) -I. \
    -I$(shell $(APXS) -q INCLUDEDIR 2>/dev/null) \
    -I$(shell $(APXS) -q APR_INCLUDEDIR 2>/dev/null)
APXS_CFLAGS = $(shell $(APXS) -q CFLAGS 2>/dev/null) \
    $(shell $(APXS) -q CPPFLAGS 2>/dev/null)
FUZZ_SRCS  = $(wildcard fuzz/fuzz_*.c)

deps-lint:
	@tools/ensure-debs $(DEB_LINT)

lint: deps-build deps-lint
	for f in $(SRCS); do \
	    $(CC) -c -o /dev/null $(APXS_CFLAGS) $(WARN) -Werror $(APXS_CPPFLAGS) \
	        $(PKG_CFLAGS) $$f || exit 1; done
	$(CC) -c -o /dev/null $(WARN) -Werror bench/stepcount.c
	cppcheck -q --inconclusive --error-exitcode=1 \
	    --enable=warning,portability --suppress=missingIncludeSystem \
	    --suppress=varFuncNullUB $(APXS_CPPFLAGS) \
	    -I/usr/include -I/usr/include/$(MULTIARCH) $(SRCS) $(FUZZ_SRCS) \
	    bench/stepcount.c
	clang-format --dry-run --Werror $(C_FILES)
	pyflakes3 $(PROBE) bench/native.py
	@echo "lint: no warnings, formatted as .clang-format says"

# httpd style, as .clang-format encodes it, on every C file.
C_FILES = $(SRCS) $(HDRS) $(wildcard fuzz/*.c fuzz/*.h bench/*.c tests/unit/*.c)

format:
	clang-format -i $(C_FILES)

# ---------------------------------------------------------------------------
# Fuzzing: one libFuzzer harness per parser of untrusted bytes (fuzz/),
# built with clang and ASan+UBSan+LeakSanitizer, each run for FUZZ_SECONDS
# from its seed corpus fuzz/corpus/<harness> by fuzz/run.  `make -j4 fuzz`
# runs them side by side (CI: four on two cores, for a quarter of the wall
# time at about half the executions each).
DEB_FUZZ     = clang-14 libclang-rt-14-dev
FUZZ_CC      = clang-14
FUZZ_SECONDS ?= 60
FUZZERS      = fuzz_bearer fuzz_verify fuzz_hs_body fuzz_hs_query fuzz_request
FUZZ_DIR     = build/fuzz
FUZZ_BINS    = $(addprefix $(FUZZ_DIR)/,$(FUZZERS))
FUZZ_CFLAGS  = -g -O1 -fsanitize=fuzzer,address,undefined \
               -fno-sanitize-recover=all -fno-omit-frame-pointer

deps-fuzz:
	@tools/ensure-debs $(DEB_FUZZ)

$(FUZZ_DIR)/fuzz_%: fuzz/fuzz_%.c fuzz/fuzz_common.h rv_core.c rv_handshake.c $(HDRS)
	@mkdir -p $(FUZZ_DIR)
	$(FUZZ_CC) $(WARN) -Werror $(FUZZ_CFLAGS) -I. \
	    $$(pkg-config --cflags apr-1 $(PKGS)) -o $@ $< rv_core.c rv_handshake.c \
	    $$(pkg-config --libs apr-1 $(PKGS))

fuzz-build: $(FUZZ_BINS)

fuzz: deps-build deps-fuzz
	@$(MAKE) --no-print-directory fuzz-build
	@$(MAKE) --no-print-directory $(addprefix fuzz-run-,$(FUZZERS))

fuzz-run-%: $(FUZZ_DIR)/%
	@fuzz/run $* $(FUZZ_SECONDS)

# ---------------------------------------------------------------------------
# Load: tests/load/run drives a real apache2 on loopback with wrk (64
# connections, a Lua mix of valid and invalid requests) for LOAD_SECONDS
# while it does six graceful restarts, one adding a token and a later one
# removing the old token; it checks every answer, the error log and the
# children's memory.  The server root is build/load.
DEB_LOAD     = wrk
LOAD_SECONDS ?= 60

deps-load:
	@tools/ensure-debs $(DEB_LOAD)

load: deps-build deps-load
	@$(MAKE) --no-print-directory all
	$(PYTHON) tests/load/run --seconds $(LOAD_SECONDS)

# The same against the ASan+UBSan build (reports as for make asan; memory
# figures are not checked: ASan's quarantine grows RSS by design).
LOAD_ASAN_SECONDS ?= 30

load-asan: deps-build deps-asan deps-load
	@$(MAKE) --no-print-directory asan-build
	@rm -rf $(ASAN_REPORTS) && mkdir -p $(ASAN_REPORTS) && \
	    chmod 1777 $(ASAN_REPORTS)
	$(SAN_ENV) RV_MODULE=$(CURDIR)/$(ASAN_MODULE) RV_HTTPD_PRELOAD=$(LIBASAN) \
	    RV_LOAD_DIR=$(CURDIR)/$(ASAN_DIR)/load RV_SANITIZER_LOG_DIR=$(ASAN_REPORTS) \
	    $(PYTHON) tests/load/run --seconds $(LOAD_ASAN_SECONDS) --no-memory-check

clean:
	rm -rf .libs *.la *.lo *.o *.slo $(UNIT_TESTS) $(RELOAD_SO) build bench/micro \
	    bench/stepcount

# ---------------------------------------------------------------------------
# The README's two commands on a brand-new Debian 12: tools/fresh-test
# debootstraps a minbase root (kept as a tarball in /var/cache and unpacked
# afresh for every run), adds git and make, clones the committed HEAD and
# runs make test and make run there in a chroot.  Logs in build/fresh/.
fresh-test:
	@tools/fresh-test
