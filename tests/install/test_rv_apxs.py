"""make install and make uninstall, into a staging root (DESTDIR): the
files land where apxs and Debian's layout say, and uninstall removes them
and nothing else."""

import os

import pytest

from conftest import MODULE_SO, TOP, apxs, run


def files_under(root):
    found = set()
    for d, _, names in os.walk(root):
        for n in names:
            found.add("/" + os.path.relpath(os.path.join(d, n), root))
    return found


@pytest.fixture(scope="module")
def layout():
    libexec = run([apxs(), "-q", "LIBEXECDIR"]).stdout.strip()
    sysconf = run([apxs(), "-q", "SYSCONFDIR"]).stdout.strip()
    return libexec, sysconf


def test_rv_apxs_debian_layout(layout):
    # Debian's apxs, which the Makefile asks, agrees with where Debian's
    # apache2 loads modules from and keeps mods-available.
    assert layout == ("/usr/lib/apache2/modules", "/etc/apache2")


def test_rv_apxs_install_and_uninstall(built_module, layout, tmp_path):
    libexec, sysconf = layout
    root = tmp_path / "root"
    root.mkdir()
    run(["make", "--no-print-directory", "install", "DESTDIR=%s" % root])

    so = libexec + "/mod_redox_verify.so"
    load = sysconf + "/mods-available/redox_verify.load"
    conf = sysconf + "/mods-available/redox_verify.conf"
    man = "/usr/local/share/man/man5/redox_verify.5"
    probe = "/usr/local/bin/redox-verify-probe"
    probe_man = "/usr/local/share/man/man1/redox-verify-probe.1"
    assert files_under(root) == {so, load, conf, man, probe, probe_man}

    with open(str(root) + so, "rb") as f, open(MODULE_SO, "rb") as g:
        assert f.read() == g.read(), "installed .so differs from the build"
    with open(str(root) + load) as f:
        load_text = f.read()
    # The .load file points at the installed module.
    assert load_text.split() == ["LoadModule", "redox_verify_module", so]
    with open(os.path.join(TOP, "conf", "redox_verify.conf")) as f, \
            open(str(root) + conf) as g:
        assert f.read() == g.read()
    with open(str(root) + man) as f, \
            open(os.path.join(TOP, "build", "man", "redox_verify.5")) as g:
        assert f.read() == g.read()
    with open(str(root) + probe) as f, \
            open(os.path.join(TOP, "probe", "redox-verify-probe")) as g:
        assert f.read() == g.read()
    assert os.stat(str(root) + probe).st_mode & 0o777 == 0o755
    with open(str(root) + probe_man) as f, \
            open(os.path.join(TOP, "build", "man", "redox-verify-probe.1")) as g:
        text = f.read()
        assert text == g.read()
        assert '.TH REDOX-VERIFY-PROBE 1 ' in text
    for path in (so, load, conf, man, probe_man):
        assert os.stat(str(root) + path).st_mode & 0o444 == 0o444, path

    # Something else in the same directories must survive uninstall.
    other = root / libexec.lstrip("/") / "mod_other.so"
    other.write_text("not ours")
    other_conf = root / sysconf.lstrip("/") / "mods-available" / "other.load"
    other_conf.write_text("not ours")

    run(["make", "--no-print-directory", "uninstall", "DESTDIR=%s" % root])
    assert files_under(root) == {libexec + "/mod_other.so",
                                 sysconf + "/mods-available/other.load"}
