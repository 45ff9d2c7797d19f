package backend

import (
	"context"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vault-plugin-salesforce/vault-plugin-salesforce/internal/version"
)

func pathInfo(b *backend) *framework.Path {
	return pathSpec{pattern: "info", verb: "read", suffix: "info",
		ops:      map[logical.Operation]framework.OperationHandler{logical.ReadOperation: plain(b.pathInfoRead, "Report the plugin's version and build.")},
		synopsis: "Report the plugin's version, build commit and Go version.",
		help:     "Returns version (as registered with Vault), commit and go_version of the running plugin binary."}.path()
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
