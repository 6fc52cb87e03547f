#!/usr/bin/env bash
# Checks the operators' files against the server they watch: the alerting rules parse and pass their unit tests,
# every PromQL expression of the Grafana dashboard parses (as a recording rule, for promtool), and every metric
# they name is one the server exports (server/src/metrics.rs).
set -euo pipefail
cd "$(dirname "$0")"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

promtool check rules prometheus/sm8-webhooks.rules.yml
promtool test rules prometheus/sm8-webhooks.rules.test.yml

python3 - grafana/sm8-webhooks.json > "$work/dashboard.rules.yml" <<'PY'
import json, sys
dashboard = json.load(open(sys.argv[1]))
print("groups:\n  - name: dashboard\n    rules:")
for panel in dashboard["panels"]:
    for target in panel["targets"]:
        expr = target["expr"].replace("$__rate_interval", "5m").replace('"$account"', '".*"')
        print(f"      - record: dashboard:panel_{panel['id']}_{target['refId'].lower()}")
        print(f"        expr: {json.dumps(expr)}")
PY
promtool check rules "$work/dashboard.rules.yml"

exported=$(grep -o '"sm8_[a-z0-9_]*"' ../server/src/metrics.rs | tr -d '"' | sort -u)
missing=0
for name in $(grep -ho 'sm8_[a-z0-9_]*' prometheus/*.yml grafana/*.json | sed -E 's/_(bucket|sum|count)$//' | sort -u); do
  if ! grep -qx "$name" <<<"$exported"; then
    echo "ops/ names $name, which the server does not export" >&2
    missing=1
  fi
done
exit $missing
