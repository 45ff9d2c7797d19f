package backend

import (
	"context"
	"strings"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

// pathSpec is one path of the API: its pattern, fields, operations and help. Every path_*.go
// fills one in per path, so a path's definition says what it does and nothing else; path()
// adds what all of them share (the OpenAPI prefix, trimmed help).
type pathSpec struct {
	pattern  string
	verb     string // OpenAPI OperationVerb; "" derives it from the operation
	suffix   string // OpenAPI OperationSuffix
	fields   map[string]*framework.FieldSchema
	exists   framework.ExistenceFunc
	ops      map[logical.Operation]framework.OperationHandler
	synopsis string
	help     string
}

func (p pathSpec) path() *framework.Path {
	return &framework.Path{
		Pattern:         p.pattern,
		DisplayAttrs:    &framework.DisplayAttributes{OperationPrefix: operationPrefix, OperationVerb: p.verb, OperationSuffix: p.suffix},
		Fields:          p.fields,
		ExistenceCheck:  p.exists,
		Operations:      p.ops,
		HelpSynopsis:    p.synopsis,
		HelpDescription: strings.TrimSpace(p.help),
	}
}

// changes is an operation that writes storage or acts at Salesforce: forwarded from
// performance standbys and secondaries to the node that may write, so it runs once there
// rather than failing on a standby and running twice.
func changes(cb framework.OperationFunc, summary string) *framework.PathOperation {
	return &framework.PathOperation{Callback: cb, Summary: summary, ForwardPerformanceStandby: true, ForwardPerformanceSecondary: true}
}

// plain is an operation any node serves: a read, or a delete that Vault forwards from a
// performance standby by itself when its storage write is refused there.
func plain(cb framework.OperationFunc, summary string) *framework.PathOperation {
	return &framework.PathOperation{Callback: cb, Summary: summary}
}

// entryPath is the pattern of one named entry: prefix + name + suffix.
func entryPath(prefix, suffix string) string {
	return prefix + framework.GenericNameRegex("name") + suffix
}

// withName is fields plus the "name" captured from the path.
func withName(what string, fields map[string]*framework.FieldSchema) map[string]*framework.FieldSchema {
	out := map[string]*framework.FieldSchema{"name": {Type: framework.TypeLowerCaseString, Description: "Name of the " + what + "."}}
	for k, v := range fields {
		out[k] = v
	}
	return out
}

// listNames answers a LIST of the entries stored under prefix.
func listNames(prefix string) framework.OperationFunc {
	return func(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
		names, err := req.Storage.List(ctx, prefix)
		if err != nil {
			return nil, err
		}
		return logical.ListResponse(names), nil
	}
}

// listPath is the LIST of an entry family.
func listPath(pattern, suffix, what string, prefix string) *framework.Path {
	return pathSpec{pattern: pattern, suffix: suffix,
		ops:      map[logical.Operation]framework.OperationHandler{logical.ListOperation: plain(listNames(prefix), "List "+what+".")},
		synopsis: "List the " + what + ".", help: "Lists the names of the configured " + what + "."}.path()
}
