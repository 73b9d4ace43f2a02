#!/usr/bin/env python3
"""Parses a Prometheus text exposition with the reference parser (the `prometheus_client`
package) and prints it as JSON: {family: {"type": T, "samples": [[name, labels, value]]}}.
Any text the parser refuses is an error (exit 1). Used by node/tests/observe.rs."""
import json
import math
import sys

from prometheus_client.parser import text_string_to_metric_families

text = open(sys.argv[1], encoding="utf-8").read()
out = {}
for family in text_string_to_metric_families(text):
    if family.name in out:
        sys.exit(f"family {family.name} appears twice")
    samples = []
    for s in family.samples:
        value = s.value if math.isfinite(s.value) else str(s.value)
        samples.append([s.name, s.labels, value])
    out[family.name] = {"type": family.type, "help": family.documentation, "samples": samples}
json.dump(out, sys.stdout)
