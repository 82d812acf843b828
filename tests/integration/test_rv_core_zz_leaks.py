"""Runs last (file order): no token configured or sent by this suite may
appear in any log or httpd output the suite produced."""

import rvhttpd


def _log_files():
    gen = rvhttpd.GEN_DIR
    files = []
    for p in sorted(gen.rglob("*")):
        if not p.is_file():
            continue
        rel = p.relative_to(gen).parts
        # logs/ holds error/access logs and captured apache2 stdout/stderr
        if "logs" in rel:
            files.append(p)
    return files


def test_rv_core_zz_no_token_in_logs():
    rvhttpd.stop_all()  # make sure every log is complete
    files = _log_files()
    assert files, "no logs found under %s: run the whole suite" % rvhttpd.GEN_DIR
    assert any(p.name == "error.log" for p in files)
    secrets = sorted(s for s in rvhttpd.SECRETS if len(s) >= 8)
    assert secrets
    hits = []
    for p in files:
        data = p.read_bytes().decode("utf-8", "replace")
        for s in secrets:
            if s in data:
                for line in data.splitlines():
                    if s in line:
                        hits.append("%s: %s" % (p, line.replace(s, "<TOKEN len=%d>" % len(s))))
                        break
    assert not hits, "tokens leaked into logs:\n" + "\n".join(hits)
