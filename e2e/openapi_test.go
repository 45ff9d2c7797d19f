package e2e

import (
	"encoding/json"
	"strings"
	"testing"
)

// pluginPaths are a concrete instance of every path the plugin serves, with the OpenAPI form
// Vault renders for it.
var pluginPaths = []struct{ concrete, openapi string }{
	{"connections/", "/connections/"},
	{"connections/prod", "/connections/{name}"},
	{"connections/prod/certificate", "/connections/{name}/certificate"},
	{"connections/prod/keys/", "/connections/{name}/keys/"},
	{"connections/prod/keys/1", "/connections/{name}/keys/{version}"},
	{"connections/prod/import", "/connections/{name}/import"},
	{"connections/prod/rotate", "/connections/{name}/rotate"},
	{"connections/prod/rotation", "/connections/{name}/rotation"},
	{"connections/prod/promote", "/connections/{name}/promote"},
	{"roles/", "/roles/"},
	{"roles/app", "/roles/{name}"},
	{"roles/app/reset", "/roles/{name}/reset"},
	{"creds/app", "/creds/{name}"},
	{"info", "/info"},
	{"metrics", "/metrics"},
	{"connections/prod/cache-only-keys/", "/connections/{name}/cache-only-keys/"},
	{"connections/prod/cache-only-keys/k1", "/connections/{name}/cache-only-keys/{kid}"},
	{"connections/prod/cache-only-keys/k1/rotate-secret", "/connections/{name}/cache-only-keys/{kid}/rotate-secret"},
	{"cache-only/k1", "/cache-only/{kid}"},
}

// TestPathHelp: `vault path-help` shows a synopsis and a description for every path.
func TestPathHelp(t *testing.T) {
	e := NewEnv(t)
	root := e.Vault.CLI(t, "path-help", Mount+"/")
	if !strings.Contains(root, "JWT") || !strings.Contains(root, "creds/") {
		t.Errorf("root help lacks the engine description or path list:\n%s", root)
	}
	for _, p := range pluginPaths {
		out := e.Vault.CLI(t, "path-help", Mount+"/"+p.concrete)
		if !strings.Contains(out, "Request:") || !strings.Contains(out, "## DESCRIPTION") {
			t.Errorf("path-help %s lacks the request pattern or description:\n%s", p.concrete, out)
			continue
		}
		syn := strings.TrimSpace(strings.SplitN(strings.SplitN(out, "Matching Route:", 2)[0], "\n", 2)[0])
		desc := strings.TrimSpace(strings.SplitN(out, "## DESCRIPTION", 2)[1])
		if len(syn) < 10 || len(desc) < 20 {
			t.Errorf("path-help %s: synopsis %q or description too short", p.concrete, syn)
		}
	}
}

// TestOpenAPI: Vault's OpenAPI document lists every path with an operationId under the
// plugin's prefix, and the fields of the write paths.
func TestOpenAPI(t *testing.T) {
	e := NewEnv(t)
	resp, err := e.Vault.Client.Logical().ReadRaw("sys/internal/specs/openapi")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var doc struct {
		Paths      map[string]map[string]json.RawMessage `json:"paths"`
		Components struct {
			Schemas map[string]json.RawMessage `json:"schemas"`
		} `json:"components"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	for _, p := range pluginPaths {
		item, ok := doc.Paths["/"+Mount+p.openapi]
		if !ok {
			t.Errorf("OpenAPI lacks /%s%s", Mount, p.openapi)
			continue
		}
		ops := 0
		for method, raw := range item {
			if method == "parameters" || method == "description" || method == "x-vault-sudo" || method == "x-vault-displayAttrs" {
				continue
			}
			var op struct {
				OperationID string `json:"operationId"`
				Summary     string `json:"summary"`
			}
			if err := json.Unmarshal(raw, &op); err != nil {
				continue
			}
			ops++
			if !strings.HasPrefix(op.OperationID, "salesforce-") {
				t.Errorf("%s %s: operationId %q lacks the salesforce- prefix", method, p.openapi, op.OperationID)
			}
			if op.Summary == "" {
				t.Errorf("%s %s: no summary", method, p.openapi)
			}
		}
		if ops == 0 {
			t.Errorf("%s has no operations", p.openapi)
		}
	}
	// The write fields an operator and Terraform rely on are documented. Vault names each
	// request schema after its operationId (salesforce-write-connection →
	// SalesforceWriteConnectionRequest). Vault 1.21 drops an external plugin's "$ref" from the
	// path when it decodes the plugin's document (OASSchema.Ref has only a json tag, and core
	// decodes with mapstructure), so the schema is looked up by that name.
	schemaOf := func(path string) string {
		var post struct {
			OperationID string `json:"operationId"`
		}
		_ = json.Unmarshal(doc.Paths["/"+Mount+path]["post"], &post)
		name := ""
		for _, w := range strings.Split(post.OperationID, "-") {
			if w != "" {
				name += strings.ToUpper(w[:1]) + w[1:]
			}
		}
		schema, ok := doc.Components.Schemas[name+"Request"]
		if !ok {
			t.Errorf("no request schema %sRequest for %s", name, path)
		}
		return string(schema)
	}
	spec := schemaOf("/connections/{name}")
	for _, field := range []string{"consumer_key", "login_url", "audience", "allow_non_salesforce_host", "ca_cert", "key_type",
		"certificate_ttl", "key_rotation_period", "certificate_renew_before", "keep_archived_keys", "deploy", "app_type",
		"app_name", "deploy_username", "verify_username", "propagation_timeout", "api_version", "consumer_key_max_age"} {
		if !strings.Contains(spec, `"`+field+`"`) {
			t.Errorf("OpenAPI connections/{name} lacks field %s", field)
		}
	}
	spec = schemaOf("/roles/{name}")
	for _, field := range []string{"connection", "username", "ttl", "max_ttl", "token_mode", "session_timeout", "bound_cidrs"} {
		if !strings.Contains(spec, `"`+field+`"`) {
			t.Errorf("OpenAPI roles/{name} lacks field %s", field)
		}
	}
}
