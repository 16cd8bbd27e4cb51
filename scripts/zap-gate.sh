#!/usr/bin/env bash
# Fails (exit 1) when a ZAP JSON report holds a high-risk alert (riskcode 3), listing them;
# medium and lower alerts are reported in the uploaded artifacts without failing the job.
set -euo pipefail
report=${1:?usage: zap-gate.sh report_json.json}
high=$(jq -r '[.site[]?.alerts[]? | select(.riskcode == "3")] | length' "$report")
jq -r '.site[]?.alerts[]? | "\(.riskdesc)\t\(.pluginid)\t\(.name)"' "$report" | sort | uniq -c || true
if [ "$high" -gt 0 ]; then
  echo "zap-gate: $high high-risk alert(s) in $report" >&2
  jq -r '.site[]?.alerts[]? | select(.riskcode == "3") | "  \(.pluginid) \(.name): \(.instances | length) instance(s)"' "$report" >&2
  exit 1
fi
echo "zap-gate: no high-risk alert in $report"
