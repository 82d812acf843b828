# mod_redox_verify: build with apxs, test against Debian's apache2.
#
#   make          build .libs/mod_redox_verify.so
#   make run      install missing Debian packages, build, start a demo Apache
#   make test     install missing Debian packages, build, run every test
#   make install  apxs -i plus the a2enmod files and the man page
#                 (DESTDIR is honoured; make uninstall removes them)
#   make man      the man page redox_verify(5), from docs/mod_redox_verify.md
#   make deb      the Debian package, in build/deb/
#   make bench    install missing Debian packages, build, run the benchmarks
#                 (QUICK=1 or make bench-quick: a short smoke run for CI)

APXS      ?= $(shell command -v apxs2 || command -v apxs || echo apxs)
PYTHON    ?= /usr/bin/python3
CC        ?= cc
LIBEXECDIR = $(shell $(APXS) -q LIBEXECDIR 2>/dev/null)
SYSCONFDIR = $(shell $(APXS) -q SYSCONFDIR 2>/dev/null)
MODS_AVAILABLE = $(SYSCONFDIR)/mods-available
# Without a package, the man page goes where local additions go.
MANDIR    ?= /usr/local/share/man
VERSION    = $(shell sed -n '1s/^[^(]*(\([^)]*\)).*/\1/p' debian/changelog)

PKGS      = openssl jansson
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null || echo -lssl -lcrypto -ljansson)
WARN      = -Wall -Wextra
EXTRA_CFLAGS ?=
EXTRA_LDFLAGS ?=

SRCS      = mod_redox_verify.c rv_core.c rv_handshake.c rv_metrics.c
HDRS      = rv_core.h rv_handshake.h rv_metrics.h
MODULE    = .libs/mod_redox_verify.so
MANPAGE   = build/man/redox_verify.5
DEB_DIR   = build/deb

# Debian packages the build and the tests need.
DEB_BUILD = apache2 apache2-dev libssl-dev libjansson-dev pkg-config openssl python3
DEB_TEST  = python3-pytest python3-requests libcmocka-dev curl
# ... and the package build (make deb) and its tests (lintian, man).
DEB_PACKAGE = build-essential debhelper dpkg-dev apache2-ssl-dev libcmocka-dev \
              lintian man-db
# ... and the benchmarks (make bench).
DEB_BENCH = wrk valgrind util-linux gcc libc6-dev libapr1-dev libssl-dev

.PHONY: all deps deps-build deps-deb deps-bench run test unit integration \
        install-test install uninstall man deb bench bench-quick clean

all: $(MODULE)

$(MODULE): $(SRCS) $(HDRS)
	$(APXS) -c -n redox_verify -o mod_redox_verify.la \
	    $(addprefix -Wc$(,),$(WARN) $(PKG_CFLAGS) $(EXTRA_CFLAGS)) \
	    $(addprefix -Wl$(,),$(EXTRA_LDFLAGS)) \
	    $(SRCS) $(PKG_LIBS)

, := ,

# Installs only what is missing, so it is quick on a prepared machine.
deps-build:
	@tools/ensure-debs $(DEB_BUILD)

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
	@$(MAKE) --no-print-directory integration
	@$(MAKE) --no-print-directory install-test

UNIT_TESTS = tests/unit/test_rv_core tests/unit/test_rv_handshake \
             tests/unit/test_rv_metrics

unit: $(UNIT_TESTS)
	@for t in $(UNIT_TESTS); do $$t || exit 1; done

tests/unit/test_%: tests/unit/test_%.c %.c $(HDRS)
	$(CC) $(WARN) -g -O1 -I. $$(pkg-config --cflags apr-1 $(PKGS) cmocka) \
	    $(EXTRA_CFLAGS) -o $@ $< $*.c \
	    $$(pkg-config --libs apr-1 $(PKGS) cmocka) $(EXTRA_LDFLAGS)

integration: $(MODULE)
	$(PYTHON) -m pytest -q tests/integration

deps-bench: deps-build
	@tools/ensure-debs $(DEB_BENCH)

# Loopback only; server and wrk pinned to different cores.  See README.md,
# "Performance".  Results in bench/out/.
bench: deps-bench
	@$(MAKE) --no-print-directory all bench/micro
	$(PYTHON) bench/run.py $(if $(QUICK),--quick)

bench-quick:
	@$(MAKE) --no-print-directory bench QUICK=1

# Built like the module (-O2), so the figures match what Apache runs.
bench/micro: bench/micro.c rv_core.c $(HDRS)
	$(CC) $(WARN) -g -O2 -I. $$(pkg-config --cflags apr-1 openssl) \
	    $(EXTRA_CFLAGS) -o $@ bench/micro.c rv_core.c \
	    $$(pkg-config --libs apr-1 openssl) $(EXTRA_LDFLAGS)

# The package (make deb) and a2enmod, the apxs install and uninstall, and
# the reference manual against the directives the built module registers.
# Runs as root: it installs the package and starts the system's Apache.
install-test: $(MODULE) $(MANPAGE)
	@$(MAKE) --no-print-directory deb
	RV_DEB_BUILT=1 $(PYTHON) -m pytest -q tests/install

install: $(MODULE) $(MANPAGE)
	install -d $(DESTDIR)$(LIBEXECDIR) $(DESTDIR)$(MODS_AVAILABLE) \
	    $(DESTDIR)$(MANDIR)/man5
	$(APXS) -i -S LIBEXECDIR=$(DESTDIR)$(LIBEXECDIR) -n redox_verify \
	    mod_redox_verify.la
	install -m 644 conf/redox_verify.load conf/redox_verify.conf \
	    $(DESTDIR)$(MODS_AVAILABLE)/
	install -m 644 $(MANPAGE) $(DESTDIR)$(MANDIR)/man5/

uninstall:
	rm -f $(DESTDIR)$(LIBEXECDIR)/mod_redox_verify.so \
	    $(DESTDIR)$(MODS_AVAILABLE)/redox_verify.load \
	    $(DESTDIR)$(MODS_AVAILABLE)/redox_verify.conf \
	    $(DESTDIR)$(MANDIR)/man5/redox_verify.5

man: $(MANPAGE)

$(MANPAGE): docs/mod_redox_verify.md tools/md2man debian/changelog
	@mkdir -p $(@D)
	$(PYTHON) tools/md2man --version $(VERSION) $< $@

# dpkg-buildpackage writes next to the source tree, so it builds a copy in
# $(DEB_DIR) and the .deb lands there:
# $(DEB_DIR)/libapache2-mod-redox-verify_<version>_<arch>.deb
deb: deps-deb
	@tools/build-deb $(DEB_DIR)

clean:
	rm -rf .libs *.la *.lo *.o *.slo $(UNIT_TESTS) build bench/micro
