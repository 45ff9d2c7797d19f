package backend

import (
	"context"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vault-plugin-salesforce/vault-plugin-salesforce/internal/version"
)

func pathInfo(b *backend) *framework.Path {
	return &framework.Path{
		Pattern:      "info",
		DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: operationPrefix, OperationVerb: "read", OperationSuffix: "info"},
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.ReadOperation: &framework.PathOperation{Callback: b.pathInfoRead, Summary: "Report the plugin's version and build."},
		},
		HelpSynopsis:    "Report the plugin's version, build commit and Go version.",
		HelpDescription: "Returns version (as registered with Vault), commit and go_version of the running plugin binary.",
	}
}

func (b *backend) pathInfoRead(context.Context, *logical.Request, *framework.FieldData) (*logical.Response, error) {
	return &logical.Response{Data: map[string]any{
		"name":       "vault-plugin-salesforce",
		"version":    version.Version,
		"commit":     version.Commit,
		"go_version": version.GoVersion(),
	}}, nil
}

func userAgent() string { return "vault-plugin-salesforce/" + version.Version }
