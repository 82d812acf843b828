"""A strict parser of the Prometheus text exposition format (version 0.0.4),
written for the metrics tests: it rejects anything the format does not
allow, rather than guessing.

    families = parse(text)
    families["redox_verify_requests_accepted_total"].samples
        -> [Sample(name, {"vhost": ..., "name": ...}, 12.0), ...]
"""

import math
import re

METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\Z")
LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")
TYPES = ("counter", "gauge", "histogram", "summary", "untyped")
# Go's strconv.ParseFloat, as Prometheus uses it, minus hex floats.
FLOAT = re.compile(r"[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|"
                   r"[Ii][Nn][Ff](?:[Ii][Nn][Ii][Tt][Yy])?|[Nn][Aa][Nn])\Z")
TIMESTAMP = re.compile(r"-?[0-9]+\Z")


class ParseError(ValueError):
    pass


class Sample:
    def __init__(self, name, labels, value, timestamp=None):
        self.name = name
        self.labels = labels
        self.value = value
        self.timestamp = timestamp

    def key(self):
        return (self.name, tuple(sorted(self.labels.items())))

    def __repr__(self):
        return "Sample(%r, %r, %r)" % (self.name, self.labels, self.value)


class Family:
    def __init__(self, name):
        self.name = name
        self.help = None
        self.type = None
        self.samples = []


def _unescape_help(s, lineno):
    out, i = [], 0
    while i < len(s):
        c = s[i]
        if c == "\\":
            if i + 1 >= len(s) or s[i + 1] not in "\\n":
                raise ParseError("line %d: bad escape in HELP" % lineno)
            out.append("\\" if s[i + 1] == "\\" else "\n")
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _labels(s, i, lineno):
    """Parses '{...}' starting at s[i] == '{'; returns (labels, next index)."""
    labels = {}
    i += 1
    while True:
        while i < len(s) and s[i] in " \t":
            i += 1
        if i < len(s) and s[i] == "}":
            return labels, i + 1
        m = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*").match(s, i)
        if not m:
            raise ParseError("line %d: bad label name at column %d" % (lineno, i + 1))
        name = m.group(0)
        if name.startswith("__"):
            raise ParseError("line %d: reserved label name %r" % (lineno, name))
        if name in labels:
            raise ParseError("line %d: duplicate label %r" % (lineno, name))
        i = m.end()
        while i < len(s) and s[i] in " \t":
            i += 1
        if i >= len(s) or s[i] != "=":
            raise ParseError("line %d: expected '=' after label %r" % (lineno, name))
        i += 1
        while i < len(s) and s[i] in " \t":
            i += 1
        if i >= len(s) or s[i] != '"':
            raise ParseError("line %d: expected '\"' for label %r" % (lineno, name))
        i += 1
        val = []
        while True:
            if i >= len(s):
                raise ParseError("line %d: unterminated label value" % lineno)
            c = s[i]
            if c == '"':
                i += 1
                break
            if c == "\\":
                if i + 1 >= len(s) or s[i + 1] not in '\\"n':
                    raise ParseError("line %d: bad escape in label value" % lineno)
                val.append({"\\": "\\", '"': '"', "n": "\n"}[s[i + 1]])
                i += 2
                continue
            val.append(c)
            i += 1
        labels[name] = "".join(val)
        while i < len(s) and s[i] in " \t":
            i += 1
        if i < len(s) and s[i] == ",":
            i += 1
            continue
        if i < len(s) and s[i] == "}":
            return labels, i + 1
        raise ParseError("line %d: expected ',' or '}' in labels" % lineno)


def _value(tok, lineno):
    if not FLOAT.match(tok):
        raise ParseError("line %d: bad value %r" % (lineno, tok))
    return float(tok)


def parse(text):
    """Returns {family name: Family}, in order of appearance."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ParseError("not UTF-8: %s" % e)
    if text and not text.endswith("\n"):
        raise ParseError("the last line does not end with a newline")
    if "\r" in text or "\0" in text:
        raise ParseError("carriage return or NUL in the exposition")
    families = {}
    order = []          # family names in the order their groups began
    seen = set()        # sample keys
    current = None      # family of the group in progress

    def group(name, lineno):
        nonlocal current
        fam = families.get(name)
        if fam is None:
            fam = families[name] = Family(name)
            order.append(name)
        elif current is not fam:
            raise ParseError("line %d: lines of %s are not one group" % (lineno, name))
        current = fam
        return fam

    for lineno, line in enumerate(text.split("\n")[:-1], 1):
        if line.strip() == "":
            continue
        if line.startswith("#"):
            parts = line[1:].lstrip(" \t").split(None, 2) if line[1:2] in (" ", "\t") else []
            if len(parts) >= 2 and parts[0] in ("HELP", "TYPE"):
                kind, name = parts[0], parts[1]
                rest = parts[2] if len(parts) > 2 else ""
                if not METRIC_NAME.match(name):
                    raise ParseError("line %d: bad metric name %r" % (lineno, name))
                fam = group(name, lineno)
                if kind == "HELP":
                    if fam.help is not None:
                        raise ParseError("line %d: second HELP for %s" % (lineno, name))
                    fam.help = _unescape_help(rest, lineno)
                else:
                    if fam.type is not None:
                        raise ParseError("line %d: second TYPE for %s" % (lineno, name))
                    if fam.samples:
                        raise ParseError("line %d: TYPE after samples of %s" % (lineno, name))
                    if rest not in TYPES:
                        raise ParseError("line %d: unknown type %r" % (lineno, rest))
                    fam.type = rest
            continue            # any other comment
        m = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*").match(line)
        if not m:
            raise ParseError("line %d: bad metric name" % lineno)
        name = m.group(0)
        i = m.end()
        labels = {}
        if i < len(line) and line[i] == "{":
            labels, i = _labels(line, i, lineno)
        rest = line[i:]
        if not rest or rest[0] not in " \t":
            raise ParseError("line %d: expected a blank before the value" % lineno)
        toks = rest.split()
        if len(toks) not in (1, 2):
            raise ParseError("line %d: expected value [timestamp]" % lineno)
        value = _value(toks[0], lineno)
        ts = None
        if len(toks) == 2:
            if not TIMESTAMP.match(toks[1]):
                raise ParseError("line %d: bad timestamp %r" % (lineno, toks[1]))
            ts = int(toks[1])
        fam = group(name, lineno)
        if fam.type == "counter":
            if math.isnan(value) or value < 0:
                raise ParseError("line %d: counter %s is negative or NaN" % (lineno, name))
        sample = Sample(name, labels, value, ts)
        if sample.key() in seen:
            raise ParseError("line %d: duplicate series %s%r" % (lineno, name, labels))
        seen.add(sample.key())
        fam.samples.append(sample)
    return {n: families[n] for n in order}


def values(families, metric):
    """{frozenset(labels.items()): value} of one family."""
    fam = families.get(metric)
    if fam is None:
        return {}
    return {frozenset(s.labels.items()): s.value for s in fam.samples}
