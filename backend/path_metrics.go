package backend

import (
	"context"
	"net/http"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
	"github.com/prometheus/common/expfmt"
)

func pathMetrics(b *backend) *framework.Path {
	return pathSpec{pattern: "metrics", verb: "read", suffix: "metrics",
		ops:      map[logical.Operation]framework.OperationHandler{logical.ReadOperation: plain(b.pathMetricsRead, "Read the engine's metrics in Prometheus text format.")},
		synopsis: "Read the engine's metrics in Prometheus text exposition format.", help: metricsHelp}.path()
}

func (b *backend) pathMetricsRead(context.Context, *logical.Request, *framework.FieldData) (*logical.Response, error) {
	body, err := b.metrics.render()
	if err != nil {
		return nil, err
	}
	return &logical.Response{Data: map[string]any{
		logical.HTTPContentType:        string(expfmt.NewFormat(expfmt.TypeTextPlain)),
		logical.HTTPRawBody:            body,
		logical.HTTPStatusCode:         http.StatusOK,
		logical.HTTPCacheControlHeader: "no-store",
	}}, nil
}

const metricsHelp = `
Returns this mount's metrics in Prometheus text exposition format (version 0.0.4), for a
Prometheus job that scrapes /v1/<mount>/metrics with a Vault token (bearer_token_file). The
path is protected like any other: the token's policy needs "read" on <mount>/metrics.

Counters and the mint latency histogram count from the plugin's start (Prometheus handles the
reset); gauges are computed at each scrape from memory, with no storage read:

  vault_salesforce_tokens_minted_total{connection,role,result,error_code}
  vault_salesforce_mint_duration_seconds{connection,flow}           (histogram)
  vault_salesforce_token_cache_requests_total{connection,role,result=hit|miss}
  vault_salesforce_logins_last_hour{connection,username}            (against ..._login_limit_per_hour, 3600)
  vault_salesforce_rotation_state{kind,connection,target,state}     (1 for the current state)
  vault_salesforce_rotation_failures_total{kind,connection,target}
  vault_salesforce_certificate_expiry_seconds{connection}           (the active key's certificate)
  vault_salesforce_next_rotation_timestamp_seconds{kind,connection,target}

kind is key, consumer_secret or tenant_secret. Labels hold names only (connection, role,
username, fixed codes): never a secret or a token. Each mount has its own metrics, even when
several mounts share one plugin process.
`
