#!/bin/sh
# One-shot (temporal-bootstrap service): waits for the frontend, creates the namespace if missing and
# registers the search attributes the recoverBatch workflow writes. Idempotent: what exists is left as is.
# SEARCH_ATTRIBUTES: space-separated Name=Type pairs (compose keeps them in line with workflows/search-attributes.ts).
set -eu

# The frontend takes a while to serve, and a new namespace a few seconds to reach every service.
retry() {
  attempt=1
  until "$@"; do
    if [ "$attempt" -ge 60 ]; then
      echo "gave up after $attempt attempts: $*" >&2
      return 1
    fi
    attempt=$((attempt + 1))
    sleep 2
  done
}

retry temporal operator cluster health >/dev/null

# Without the white space around it, as the worker and the CLI read TEMPORAL_NAMESPACE.
TEMPORAL_NAMESPACE=$(printf '%s' "$TEMPORAL_NAMESPACE" | sed 's/^[[:space:]]*//; s/[[:space:]]*$//')

if temporal operator namespace describe --namespace "$TEMPORAL_NAMESPACE" >/dev/null 2>&1; then
  echo "namespace $TEMPORAL_NAMESPACE exists"
else
  temporal operator namespace create --namespace "$TEMPORAL_NAMESPACE" --retention "$NAMESPACE_RETENTION"
fi

existing=$(retry temporal operator search-attribute list --namespace "$TEMPORAL_NAMESPACE")
for pair in $SEARCH_ATTRIBUTES; do
  name=${pair%%=*}
  type=${pair#*=}
  if printf '%s\n' "$existing" | grep -qw "$name"; then
    echo "search attribute $name exists"
  else
    retry temporal operator search-attribute create --namespace "$TEMPORAL_NAMESPACE" --name "$name" --type "$type"
  fi
done
echo "namespace $TEMPORAL_NAMESPACE is ready"
