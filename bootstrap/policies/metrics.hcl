# salesforce-metrics: the Prometheus scraper's token (docs/operations.md, "Metrics").
#
# It reads the engine's metrics (Prometheus text at /v1/salesforce/metrics) and nothing else:
# no settings, no certificates, no roles, no tokens. The metrics hold names (connection, role,
# Salesforce username), fixed codes and numbers, never a secret or a token.

path "salesforce/metrics" {
  capabilities = ["read"]
}

# Never mint: the deny beats broader grants elsewhere (a "salesforce/*" rule).
path "salesforce/creds/*" {
  capabilities = ["deny"]
}
