package backend

import (
	"context"
	"strings"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

// The table of a connection's consumer credential versions. Today a connection holds one pair,
// the active one; the staged-credentials rotation will add staged and previous versions.

func pathCredentials(b *backend) []*framework.Path {
	return []*framework.Path{
		pathSpec{pattern: entryPath("connections/", "/credentials"), verb: "read", suffix: "connection-credentials", fields: withName("connection", nil),
			ops:      map[logical.Operation]framework.OperationHandler{logical.ReadOperation: plain(b.pathCredentialsRead, "Read the consumer credential versions.")},
			synopsis: "Read a connection's consumer credential versions (never a secret).", help: credentialsHelp}.path(),
	}
}

func (b *backend) pathCredentialsRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name := d.Get("name").(string)
	conn, err := getConnection(ctx, req.Storage, name)
	if err != nil || conn == nil {
		return nil, err
	}
	v := map[string]any{"version": 1, "status": "active", "consumer_key": conn.ConsumerKey,
		"created_at": formatTime(conn.ConsumerKeySetAt), "activated_at": formatTime(conn.ConsumerKeySetAt), "deleted_at": "",
		"has_secret": false}
	if conn.clientCredentials() {
		sec, err := getConsumerSecret(ctx, req.Storage, name)
		if err != nil {
			return nil, err
		}
		if sec != nil {
			v["created_at"], v["activated_at"] = formatTime(sec.CreatedAt), formatTime(sec.CreatedAt)
			v["has_secret"] = true
		}
	}
	return &logical.Response{Data: map[string]any{"auth_flow": conn.flow(), "active_version": 1, "versions": []map[string]any{v}}}, nil
}

var credentialsHelp = strings.TrimSpace(`
The consumer credential versions of a connection: version, status (staged, active, previous,
deleted), consumer_key, created_at, activated_at, deleted_at, and has_secret (whether Vault
holds the version's consumer secret: client_credentials connections). The secret itself is
never returned. Today a connection has one active version; rotating consumer credentials
through Salesforce's staged-credentials API will add the others.
`)
