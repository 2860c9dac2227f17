#!/usr/bin/env python3
"""Checks a running Prometheus against the queries of the shop's dashboard
and alerting rules: every query parses and evaluates, every rule group is
loaded and healthy, and every metric a query names has at least one series.

    deploy/ci/metrics_used.py http://127.0.0.1:9090 DASHBOARD.json RULES.yml

Metric names are taken from the PromQL text: strings, label matchers,
range selectors and the label lists of `by`/`on`/... are removed, and what
remains of identifiers not followed by `(` and not keywords are metric
names. Prints what it checked; exits 1 listing every problem.
"""

import json
import re
import sys
import urllib.parse
import urllib.request

KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on",
            "ignoring", "group_left", "group_right", "inf", "nan"}


def exprs_of_dashboard(path):
    with open(path) as f:
        dash = json.load(f)
    out = []

    def walk(panels):
        for p in panels:
            for t in p.get("targets", []):
                if t.get("expr"):
                    out.append((f"panel {p['title']!r}", t["expr"]))
            walk(p.get("panels", []))

    walk(dash["panels"])
    return out


def exprs_of_rules(path):
    # The rules file is YAML; PyYAML may be missing, and Prometheus itself
    # reports what it loaded, so the expressions are read from its API
    # instead (see rules_from_prometheus). This only counts rules in the
    # file, to compare with what Prometheus loaded.
    with open(path) as f:
        return sum(1 for line in f if re.match(r"\s*- (alert|record):", line))


def metric_names(expr):
    e = re.sub(r'"(\\.|[^"\\])*"|\'(\\.|[^\'\\])*\'', '""', expr)
    e = re.sub(r"\{[^}]*\}", " ", e)          # label matchers
    e = re.sub(r"\[[^\]]*\]", " ", e)         # range and subquery selectors
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    names = set()
    for m in re.finditer(r"[a-zA-Z_:][a-zA-Z0-9_:]*", e):
        word = m.group(0)
        rest = e[m.end():].lstrip()
        if rest.startswith("("):
            continue                           # a function or aggregation
        if word.lower() in KEYWORDS:
            continue
        if re.fullmatch(r"\d+(ms|s|m|h|d|w|y)", word):
            continue
        names.add(word)
    return names


def get(prom, path, **params):
    url = f"{prom}{path}?{urllib.parse.urlencode(params)}"
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return json.load(r)
    except urllib.error.HTTPError as e:
        return json.load(e)


def main():
    prom, dashboard, rules_file = sys.argv[1:4]
    problems = []
    queries = exprs_of_dashboard(dashboard)

    rules = get(prom, "/api/v1/rules")["data"]["groups"]
    loaded = 0
    for group in rules:
        for rule in group["rules"]:
            loaded += 1
            queries.append((f"rule {rule['name']!r}", rule["query"]))
            if rule.get("health") != "ok":
                problems.append(f"rule {rule['name']}: health {rule.get('health')}: {rule.get('lastError')}")
    expected = exprs_of_rules(rules_file)
    if loaded != expected:
        problems.append(f"Prometheus loaded {loaded} rules, {rules_file} has {expected}")

    used = {}
    for where, expr in queries:
        answer = get(prom, "/api/v1/query", query=expr)
        if answer.get("status") != "success":
            problems.append(f"{where}: query does not evaluate: {answer.get('error')}: {expr}")
        for name in metric_names(expr):
            used.setdefault(name, []).append(where)

    missing = []
    for name in sorted(used):
        answer = get(prom, "/api/v1/query", query=f'count({{__name__="{name}"}})')
        result = answer.get("data", {}).get("result", [])
        count = int(float(result[0]["value"][1])) if result else 0
        print(f"  {name}: {count} series")
        if count == 0:
            missing.append(name)
            problems.append(f"{name} has no series (used by {', '.join(sorted(set(used[name])))})")

    print(f"checked {len(queries)} queries ({loaded} rules), {len(used)} metric names")
    if problems:
        print("FAILED:", *problems, sep="\n  ")
        if missing:
            print("metrics with no series: " + " ".join(missing))
        return 1
    print("every query evaluates and every metric it names has series")
    return 0


if __name__ == "__main__":
    sys.exit(main())
